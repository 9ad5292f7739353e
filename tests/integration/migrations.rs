//! A device database made by any earlier schema version opens in this version with its data.
//!
//! For each version v below the latest, the test builds a database at v from the migrations
//! themselves, fills it with the fixture written for v (tests/fixtures/store/vN.sql), opens it
//! with the store and checks that every fixture row is still there and usable.

use gridwalk::store::people::HouseholdQuery;
use gridwalk::store::records::RecordQuery;
use gridwalk::store::{MIGRATIONS, Store};
use rusqlite::Connection;

use crate::util::today;

/// Fixture data valid at each schema version (index = version). Version 0 is an empty file.
const FIXTURES: &[&str] = &[
    "",
    include_str!("../fixtures/store/v1.sql"),
    include_str!("../fixtures/store/v2.sql"),
    include_str!("../fixtures/store/v3.sql"),
    include_str!("../fixtures/store/v4.sql"),
    include_str!("../fixtures/store/v5.sql"),
];

#[test]
fn every_earlier_schema_version_upgrades_with_its_data() {
    assert_eq!(
        FIXTURES.len(),
        MIGRATIONS.len(),
        "a new migration needs a fixture of the version before it"
    );
    for version in 0..MIGRATIONS.len() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let c = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..version] {
                c.execute_batch(sql).unwrap();
            }
            c.pragma_update(None, "user_version", version as i64)
                .unwrap();
            c.execute_batch(FIXTURES[version]).unwrap();
        }
        let s = Store::open(&path).unwrap_or_else(|e| panic!("opening a v{version} database: {e}"));
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len());
        if version == 0 {
            continue;
        }
        // Every fixture: one grid, two households, three people, a visit, a hazard, an
        // outbox entry not yet pushed.
        let counts = s.counts().unwrap();
        assert_eq!(
            (
                counts.grids,
                counts.households,
                counts.people,
                counts.visits,
                counts.records,
                counts.outbox
            ),
            (1, 2, 3, 1, 1, 1),
            "v{version}"
        );
        let found = s
            .households(
                &HouseholdQuery {
                    text: Some("张振行".into()),
                    ..Default::default()
                },
                today(),
            )
            .unwrap();
        assert_eq!(found.len(), 1);
        let open = s
            .records(&RecordQuery {
                open_only: true,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(open[0].summary, "村头池塘无护栏");
        let pending = s.outbox(gridwalk::wire::Lane::Normal, 10).unwrap();
        assert_eq!(pending[0].seq, 1);
        // Data made before the spatial index existed is in it after the upgrade.
        let here = gridwalk::domain::geo::GeoPoint::new(116.4001, 28.1001, None).unwrap();
        let near = s.nearest_households(&here, 1, today()).unwrap();
        assert_eq!(near[0].address, "山下村1组1号");
        assert_eq!(s.grids().unwrap()[0].name, "山下村第1网格");
        // Who is due works on old data (the summary is filled on open).
        let due = s.due_visits(today()).unwrap();
        assert_eq!(
            due.len(),
            2,
            "one never visited, one elder living alone last seen 9 days ago"
        );
        if version >= 2 {
            let sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
            assert_eq!(s.photo(sha).unwrap().0, b"test");
            let h: gridwalk::domain::model::Hazard = s.record(open[0].id).unwrap();
            assert_eq!(h.common.photos, vec![sha.to_owned()]);
        }
        if version >= 4 {
            assert_eq!(s.pull_cursor().unwrap(), 42);
            let c = s.conflicts(true).unwrap();
            assert_eq!(
                (c.len(), c[0].field.as_str(), c[0].lost.clone()),
                (1, "address", serde_json::json!("山下村1组1号（东）"))
            );
            // A photo a record names still goes up; one only a draft holds (v5) waits.
            assert_eq!(s.pending_photos().unwrap().len(), 1);
            // No refusal has come down yet; the table is there and empty.
            assert!(s.rejections(false).unwrap().is_empty());
        }
        if version >= 5 {
            let staged = s.staged_photos("hazard").unwrap();
            assert_eq!(
                (staged.len(), staged[0].name.as_str(), staged[0].size),
                (1, "现场1.jpg", 3)
            );
        }
    }
}
