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
    include_str!("../fixtures/store/v6.sql"),
    include_str!("../fixtures/store/v7.sql"),
    include_str!("../fixtures/store/v8.sql"),
    include_str!("../fixtures/store/v9.sql"),
    include_str!("../fixtures/store/v10.sql"),
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
        // People from before the register's dates carry none; records no household.
        let members = s.household_detail(found[0].id, today()).unwrap().members;
        assert!(
            members
                .iter()
                .all(|p| p.status_on.is_none() && p.origin.is_none())
        );
        assert!(s.household_records(found[0].id).unwrap().is_empty());
        if version >= 5 {
            let staged = s.staged_photos("hazard").unwrap();
            assert_eq!(
                (staged.len(), staged[0].name.as_str(), staged[0].size),
                (1, "现场1.jpg", 3)
            );
        }
        if version >= 8 {
            assert_eq!(s.acked_len().unwrap(), 1, "the kept acknowledged entry");
        }
        if version >= 10 {
            // The second household's person keeps where they are registered.
            let other = s
                .households(
                    &HouseholdQuery {
                        text: Some("乐美阳".into()),
                        ..Default::default()
                    },
                    today(),
                )
                .unwrap();
            let members = s.household_detail(other[0].id, today()).unwrap().members;
            assert_eq!(members[0].origin.as_deref(), Some("江西省抚州市临川区"));
        }
        // Nothing of an upgraded device was left at a village office: what waits, waits.
        let unsent = s.unsent_states().unwrap();
        assert_eq!(
            unsent.get(&open[0].id),
            Some(&gridwalk::store::feedback::Unsent::Waiting),
            "v{version}"
        );
        let tasks = s.tasks().unwrap();
        if version >= 9 {
            // The open task is still on Today's list, about its hazard.
            let open = s.open_tasks().unwrap();
            assert_eq!((tasks.len(), open.len()), (1, 1));
            assert_eq!(open[0].note, "护栏装好后请复查");
        } else {
            // No task has come down to an upgraded device yet; the table is there and empty.
            assert!(tasks.is_empty());
        }
    }
}

/// A county database at schema 0005 (before devices, photo links and the inbox's quarantine)
/// upgrades with its data: each device enrolled to the account of its first session, each
/// record's photos linked to the photo's uploader, the queued push still queued.
#[cfg(all(feature = "server", feature = "client"))]
mod server_0006 {
    use chrono::Utc;
    use gridwalk::server::db::Database;
    use gridwalk::server::repo;

    const SQLITE: &[&str] = &[
        include_str!("../../src/server/db/migrations/sqlite/0001_init.sql"),
        include_str!("../../src/server/db/migrations/sqlite/0002_history_versions.sql"),
        include_str!("../../src/server/db/migrations/sqlite/0003_dashboard_indexes.sql"),
        include_str!("../../src/server/db/migrations/sqlite/0004_push_inbox.sql"),
        include_str!("../../src/server/db/migrations/sqlite/0005_inbox_zstd.sql"),
    ];
    const POSTGRES: &[(&str, &str)] = &[
        (
            "0001_init",
            include_str!("../../src/server/db/migrations/postgres/0001_init.sql"),
        ),
        (
            "0002_history_versions",
            include_str!("../../src/server/db/migrations/postgres/0002_history_versions.sql"),
        ),
        (
            "0003_dashboard_indexes",
            include_str!("../../src/server/db/migrations/postgres/0003_dashboard_indexes.sql"),
        ),
        (
            "0004_push_inbox",
            include_str!("../../src/server/db/migrations/postgres/0004_push_inbox.sql"),
        ),
        (
            "0005_inbox_zstd",
            include_str!("../../src/server/db/migrations/postgres/0005_inbox_zstd.sql"),
        ),
    ];

    /// Rows as the 0005 schema had them: two accounts, worker-b's session made later on
    /// worker-a's device (a takeover before devices were enrolled), a hazard naming two
    /// photos (one uploaded by worker-a, one never uploaded) and a queued push.
    const FIXTURE: &str = "
        INSERT INTO users (id, username, display_name, role, scope_code, password_hash, disabled, created_at) VALUES
          ('00000000-0000-7000-8000-00000000000a', 'worker-a', 'A', 'WORKER', '361003100200', 'x', 0, '2026-01-01T00:00:00Z'),
          ('00000000-0000-7000-8000-00000000000b', 'worker-b', 'B', 'WORKER', '361003100200', 'x', 0, '2026-01-01T00:00:00Z');
        INSERT INTO sessions (token_hash, user_id, device_id, created_at, expires_at, revoked) VALUES
          ('t1', '00000000-0000-7000-8000-00000000000a', '00000000-0000-7000-8000-0000000000d1', '2026-02-01T00:00:00Z', '2099-01-01T00:00:00Z', 0),
          ('t2', '00000000-0000-7000-8000-00000000000b', '00000000-0000-7000-8000-0000000000d1', '2026-03-01T00:00:00Z', '2099-01-01T00:00:00Z', 0),
          ('t3', '00000000-0000-7000-8000-00000000000b', '00000000-0000-7000-8000-0000000000d2', '2026-03-02T00:00:00Z', '2099-01-01T00:00:00Z', 0),
          ('t4', '00000000-0000-7000-8000-00000000000a', '00000000-0000-7000-8000-0000000000d1', '2026-02-04T00:00:00.000Z', '2026-03-06T00:00:00.000Z', 0);
        INSERT INTO photos (sha256, size, mime, received, complete, data, uploaded_by, created_at) VALUES
          ('aaaa', 3, 'image/jpeg', 3, 1, NULL, 'worker-a', '2026-02-02T00:00:00Z');
        INSERT INTO entities (id, kind, grid_id, grid_code, parent_id, status, urgency, category, author, created_at, updated_at, data, meta, version) VALUES
          ('h-1', 'HAZARD', 'g-1', '361003100200001', NULL, 'SUBMITTED', 'NORMAL', 'FIRE', 'worker-a',
           '2026-02-02T00:00:00Z', '2026-02-02T00:00:00Z', '{\"id\":\"h-1\",\"photos\":[\"aaaa\",\"bbbb\"]}', '{}', 1),
          ('h-2', 'HAZARD', 'g-1', '361003100200001', NULL, 'SUBMITTED', 'NORMAL', 'FIRE', 'worker-a',
           '2026-02-02T00:00:00Z', '2026-02-02T00:00:00Z', '{\"id\":\"h-2\",\"note\":\"photos\"}', '{}', 2);
        INSERT INTO push_inbox (device_id, lane, username, device_now, received_at, entries) VALUES
          ('00000000-0000-7000-8000-0000000000d1', 'NORMAL', 'worker-a', '2026-02-03T00:00:00Z', '2026-02-03T00:00:00Z', '[]');
    ";

    fn check(db: &Database) {
        db.read(|tx| -> Result<(), gridwalk::server::db::DbError> {
            let owner = |tx: &mut dyn gridwalk::server::db::Sql, d: &str| {
                tx.query_opt(
                    "SELECT username FROM devices WHERE device_id = $1",
                    &[d.into()],
                )
                .map(|r| r.map(|r| r[0].string().unwrap()))
            };
            assert_eq!(
                owner(tx, "00000000-0000-7000-8000-0000000000d1")?.as_deref(),
                Some("worker-a"),
                "first session's account"
            );
            assert_eq!(
                owner(tx, "00000000-0000-7000-8000-0000000000d2")?.as_deref(),
                Some("worker-b")
            );
            let links = tx.query(
                "SELECT sha256, record_id, grid_code, username FROM record_photos ORDER BY sha256",
                &[],
            )?;
            let links: Vec<Vec<String>> = links
                .iter()
                .map(|r| r.iter().map(|v| v.string().unwrap()).collect())
                .collect();
            assert_eq!(
                links,
                vec![
                    vec!["aaaa", "h-1", "361003100200001", "worker-a"],
                    vec!["bbbb", "h-1", "361003100200001", "worker-a"],
                ]
            );
            assert_eq!(
                repo::queued_count(tx)?,
                1,
                "the queued push is still queued"
            );
            let (queued, _, quarantined) = repo::inbox_health(tx)?;
            assert_eq!((queued, quarantined), (1, 0));
            // worker-b's old session on worker-a's device no longer counts.
            assert!(repo::session(tx, "t1", Utc::now())?.is_some());
            assert!(repo::session(tx, "t2", Utc::now())?.is_none());
            assert!(repo::session(tx, "t3", Utc::now())?.is_some());
            // Sessions end 180 days after they were made, or when they were due to expire
            // if that is later.
            let ends = |tx: &mut dyn gridwalk::server::db::Sql, t: &str| {
                tx.query_one(
                    "SELECT ends_at FROM sessions WHERE token_hash = $1",
                    &[t.into()],
                )
                .map(|r| repo::parse_ts(r[0].str().unwrap()).unwrap())
            };
            let at = |s: &str| repo::parse_ts(s).unwrap();
            assert_eq!(ends(tx, "t1")?, at("2099-01-01T00:00:00Z"));
            assert_eq!(ends(tx, "t4")?, at("2026-08-03T00:00:00Z"));
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("county.db");
        {
            let c = rusqlite::Connection::open(&path).unwrap();
            for m in SQLITE {
                c.execute_batch(m).unwrap();
            }
            c.pragma_update(None, "user_version", SQLITE.len() as i64)
                .unwrap();
            c.execute_batch(FIXTURE).unwrap();
        }
        let db = Database::open(path.to_str().unwrap()).unwrap();
        db.migrate().unwrap();
        check(&db);
    }

    #[test]
    fn postgres() {
        let name = format!("gridwalk_upgrade_{}", uuid::Uuid::now_v7().simple());
        let admin = crate::sync::util::PG_ADMIN;
        let mut c = postgres::Client::connect(admin, postgres::NoTls).unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        {
            let mut d = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            d.batch_execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())").unwrap();
            for (n, m) in POSTGRES {
                d.batch_execute(m).unwrap();
                d.execute("INSERT INTO schema_migrations (name) VALUES ($1)", &[n])
                    .unwrap();
            }
            d.batch_execute(FIXTURE).unwrap();
        }
        let db = Database::open(&url).unwrap();
        db.migrate().unwrap();
        check(&db);
        drop(db);
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .unwrap();
    }
}
