//! The demo county: deterministic, in the article's shape, grids tiling villages, and every
//! generated value valid by the domain's own rules.

use geo::{Area, BooleanOps, Contains, Intersects};
use gridwalk::demo::{County, CountySpec, write_ndjson};
use gridwalk::domain::Coded;
use gridwalk::domain::codes::Tag;
use gridwalk::domain::lifecycle::lifecycle;
use gridwalk::domain::validate::{IdNumber, Phone};

use crate::util::{now, today};

fn ndjson(county: &County, grids: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    write_ndjson(&county.scope(grids), &mut out).unwrap();
    out
}

#[test]
fn same_seed_same_county_other_seed_other_county() {
    let a = County::generate(&CountySpec::small(42, today()));
    let b = County::generate(&CountySpec::small(42, today()));
    let c = County::generate(&CountySpec::small(43, today()));
    assert_eq!(a.grids, b.grids);
    assert_eq!(ndjson(&a, &[0, 5, 17]), ndjson(&b, &[0, 5, 17]));
    // A grid's population does not depend on which other grids are made, or their order.
    assert_eq!(ndjson(&a, &[5]), ndjson(&b, &[5]));
    assert_ne!(a.grids, c.grids);
    assert_ne!(ndjson(&a, &[0]), ndjson(&c, &[0]));
}

#[test]
fn full_county_has_the_articles_shape_and_grids_tile_villages() {
    let county = County::generate(&CountySpec::full(1, today()));
    assert_eq!(county.villages.len(), 132);
    assert_eq!(county.grids.len(), 693);
    assert!(county.towns.len() >= 10);
    let mut codes: Vec<_> = county.grids.iter().map(|g| g.grid.code.clone()).collect();
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), 693, "grid codes are unique");
    let mut total = 0.0;
    for v in &county.villages {
        let grids = &county.grids[v.grids.clone()];
        assert!(!grids.is_empty());
        let sum: f64 = grids.iter().map(|g| g.grid.boundary.unsigned_area()).sum();
        let area = v.boundary.unsigned_area();
        assert!(
            (sum - area).abs() < area * 1e-9,
            "{}: grids cover {sum}, village {area}",
            v.name
        );
        for (i, a) in grids.iter().enumerate() {
            assert!(a.grid.code.as_str().starts_with(&v.code));
            for b in &grids[i + 1..] {
                let overlap = a
                    .grid
                    .boundary
                    .intersection(&b.grid.boundary)
                    .unsigned_area();
                assert!(
                    overlap < area * 1e-9,
                    "{} and {} overlap by {overlap}",
                    a.grid.name,
                    b.grid.name
                );
            }
        }
        total += area;
    }
    let ([x0, y0], [x1, y1]) = gridwalk::demo::names::EXTENT;
    let extent = (x1 - x0) * (y1 - y0);
    assert!(
        (total - extent).abs() < extent * 1e-9,
        "villages tile the county"
    );
}

#[test]
fn generated_people_places_and_records_are_valid() {
    let county = County::generate(&CountySpec::small(9, today()));
    let scope = county.scope(&[0, 1, 2]);
    for h in &scope.households {
        let g = scope.grids.iter().find(|g| g.id == h.grid_id).unwrap();
        let p = h.location.unwrap().point();
        assert!(
            g.boundary.contains(&p),
            "household {} lies in its grid",
            h.address
        );
    }
    for p in &scope.people {
        p.validate(today())
            .unwrap_or_else(|e| panic!("{}: {e}", p.name));
        let id = IdNumber::parse(p.id_number.as_ref().unwrap(), today()).unwrap();
        assert_eq!(id.sex(), p.sex);
        assert_eq!(Some(id.birth_date()), p.birth_date);
        if let Some(ph) = &p.phone {
            Phone::parse(ph).unwrap();
        }
    }
    for v in &scope.visits {
        v.validate(now()).unwrap();
    }
    for r in &scope.records {
        r.validate(now())
            .unwrap_or_else(|e| panic!("{:?}: {e}", r.domain()));
        // The status history is a legal walk from the initial status to the current one.
        let lc = lifecycle(r.domain());
        let mut s = lc.initial;
        let mut steps: Vec<_> = scope
            .history
            .iter()
            .filter(|h| h.record_id == r.common().id)
            .collect();
        steps.sort_by_key(|h| h.at);
        for h in steps {
            assert_eq!(h.from, s);
            assert!(lc.find(h.from, h.to).is_some(), "{} → {}", h.from, h.to);
            s = h.to;
        }
        assert_eq!(s, r.common().status);
    }
    for m in &scope.sessions {
        m.validate(now()).unwrap();
    }
    for t in &scope.tracks {
        t.validate(now()).unwrap();
        let g = &scope
            .grids
            .iter()
            .find(|g| {
                scope
                    .records
                    .iter()
                    .any(|r| r.common().id == t.patrol_id && r.common().grid_id == g.id)
            })
            .unwrap();
        assert!(
            t.points
                .iter()
                .all(|p| g.boundary.intersects(&geo::Point::new(p.lon, p.lat)))
        );
    }
}

#[test]
fn tags_come_in_plausible_proportions() {
    let county = County::generate(&CountySpec::small(3, today()));
    let grids: Vec<usize> = (0..county.grids.len()).step_by(3).collect();
    let scope = county.scope(&grids);
    let n = scope.people.len() as f64;
    let share = |t: Tag| scope.people.iter().filter(|p| p.tags.contains(&t)).count() as f64 / n;
    assert!(n > 1000.0, "{n} people");
    assert!(
        (0.02..0.12).contains(&share(Tag::ElderlyAlone)),
        "{}",
        share(Tag::ElderlyAlone)
    );
    assert!((0.01..0.15).contains(&share(Tag::LeftBehindChild)));
    let managed = scope
        .people
        .iter()
        .filter(|p| p.tags.iter().any(|t| t.is_managed()))
        .count() as f64
        / n;
    assert!(managed > 0.0 && managed < 0.02, "managed share {managed}");
    for t in Tag::ALL {
        assert!(share(*t) < 0.25, "{t}: {}", share(*t));
    }
}

#[test]
fn the_bench_grid_has_the_sync_benchmarks_size() {
    let county = County::generate(&CountySpec::bench(1, today()));
    let s = county.scope(&[0]);
    assert_eq!(s.households.len(), 500);
    assert!(
        (1500..2500).contains(&s.people.len()),
        "{} people",
        s.people.len()
    );
    let history = s.visits.len()
        + s.records.len()
        + s.sessions.len()
        + s.reports.len()
        + s.replies.len()
        + s.tracks.len();
    assert!((4500..6000).contains(&history), "{history} history records");
    let mut out = Vec::new();
    let lines = write_ndjson(&s, &mut out).unwrap();
    assert!((7000..9000).contains(&lines), "{lines} NDJSON lines");
    for line in String::from_utf8(out).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["id"].is_string(), "{line}");
        assert!(v["type"].is_string());
    }
}
