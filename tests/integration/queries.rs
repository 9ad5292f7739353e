//! The queries of a worker's round, on a demo grid in a real SQLite file: search, tag filter,
//! who is due, nearest households, open records, records of a grid.

use chrono::Duration;
use gridwalk::domain::codes::*;
use gridwalk::domain::geo::GeoPoint;
use gridwalk::domain::lifecycle::{Status, lifecycle};
use gridwalk::domain::model::*;
use gridwalk::store::people::HouseholdQuery;
use gridwalk::store::records::RecordQuery;

use crate::util::{demo_store, now, today};

#[test]
fn search_by_name_address_and_last_digits_of_an_id_number() {
    let (_d, s, _c, scope) = demo_store();
    let p = scope
        .people
        .iter()
        .find(|p| p.relation != Relation::Head)
        .unwrap();
    let by_name = s
        .households(
            &HouseholdQuery {
                text: Some(p.name.clone()),
                ..Default::default()
            },
            today(),
        )
        .unwrap();
    assert!(
        by_name.iter().any(|c| c.id == p.household_id),
        "member name finds the household"
    );

    let id = p.id_number.as_ref().unwrap();
    let tail = &id[id.len() - 6..];
    let by_id = s
        .households(
            &HouseholdQuery {
                text: Some(tail.to_lowercase()),
                ..Default::default()
            },
            today(),
        )
        .unwrap();
    assert!(by_id.iter().any(|c| c.id == p.household_id));
    let expected = scope
        .people
        .iter()
        .filter(|q| q.id_number.as_ref().unwrap().ends_with(tail))
        .count();
    assert!(
        by_id.len() <= expected,
        "only households with a matching ID number"
    );

    let hh = &scope.households[3];
    let by_addr = s
        .households(
            &HouseholdQuery {
                text: Some(hh.address.clone()),
                ..Default::default()
            },
            today(),
        )
        .unwrap();
    assert_eq!(
        by_addr.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![hh.id]
    );

    let none = s
        .households(
            &HouseholdQuery {
                text: Some("不存在的名字".into()),
                ..Default::default()
            },
            today(),
        )
        .unwrap();
    assert!(none.is_empty());
}

#[test]
fn tag_filter_finds_managed_tags_but_cards_never_show_them() {
    let (_d, s, _c, scope) = demo_store();
    for tag in Tag::ALL {
        let expected: std::collections::HashSet<_> = scope
            .people
            .iter()
            .filter(|p| p.tags.contains(tag))
            .map(|p| p.household_id)
            .collect();
        let cards = s
            .households(
                &HouseholdQuery {
                    tag: Some(*tag),
                    ..Default::default()
                },
                today(),
            )
            .unwrap();
        let got: std::collections::HashSet<_> = cards.iter().map(|c| c.id).collect();
        assert_eq!(got, expected, "{tag}");
    }
    let all = s.households(&HouseholdQuery::default(), today()).unwrap();
    assert_eq!(all.len(), scope.households.len());
    assert!(
        all.iter()
            .all(|c| c.care_tags.iter().all(|t| !t.is_managed()))
    );
    assert!(
        all.iter().any(|c| !c.care_tags.is_empty()),
        "demo has care tags"
    );
}

#[test]
fn who_is_due_follows_cadence_and_last_visit() {
    let (_d, mut s, county, scope) = demo_store();
    let due = s.due_visits(today()).unwrap();
    assert!(!due.is_empty());
    assert!(
        due.windows(2).all(|w| w[0].due.due_on <= w[1].due.due_on),
        "most overdue first"
    );
    for c in &due {
        assert!(c.due.due_on <= today());
        if let Some(last) = c.due.last_visited_on {
            assert_eq!(
                c.due.due_on,
                last + Duration::days(c.due.cadence_days as i64)
            );
        }
    }
    // An elder living alone, visited today, is not due; a week later they are.
    let elder = scope
        .people
        .iter()
        .find(|p| {
            p.tags.contains(&Tag::ElderlyAlone)
                && !p.tags.iter().any(|t| t.default_cadence_days() < 7)
        })
        .expect("demo has an elder living alone");
    let grid = county.grids[0].grid.id;
    let visit = Visit {
        id: new_id(),
        household_id: elder.household_id,
        grid_id: grid,
        author: "worker-a".into(),
        visited_on: today(),
        purpose: VisitPurpose::Care,
        notes: String::new(),
        next_due: None,
        location: None,
        created_at: now(),
    };
    s.record_visit(&visit, now()).unwrap();
    let due_now = s.due_visits(today()).unwrap();
    assert!(due_now.iter().all(|c| c.id != elder.household_id));
    let in_a_week = s.due_visits(today() + Duration::days(7)).unwrap();
    let card = in_a_week
        .iter()
        .find(|c| c.id == elder.household_id)
        .expect("due again after a week");
    assert_eq!(card.due.cadence_days, 7);
    assert_eq!(card.due.reason, Some(Tag::ElderlyAlone));
    let detail = s.household_detail(elder.household_id, today()).unwrap();
    assert_eq!(detail.visits[0].id, visit.id, "newest visit first");
    assert_eq!(detail.due.due_on, today() + Duration::days(7));
    // A date agreed at the visit, sooner than the cadence, wins.
    let agreed = Visit {
        id: new_id(),
        next_due: Some(today() + Duration::days(3)),
        created_at: now() + Duration::minutes(1),
        ..visit
    };
    s.record_visit(&agreed, now() + Duration::minutes(1))
        .unwrap();
    assert_eq!(
        s.household_detail(elder.household_id, today())
            .unwrap()
            .due
            .due_on,
        today() + Duration::days(3)
    );
}

#[test]
fn nearest_households_come_nearest_first_and_match_a_full_scan() {
    let (_d, s, county, scope) = demo_store();
    let g = &county.grids[0].grid;
    let c = geo::Centroid::centroid(&g.boundary).unwrap();
    let here = GeoPoint::new(c.x(), c.y(), None).unwrap();
    let near = s.nearest_households(&here, 5, today()).unwrap();
    assert_eq!(near.len(), 5);
    let mut all: Vec<(f64, uuid::Uuid)> = scope
        .households
        .iter()
        .map(|h| (h.location.unwrap().distance_m(&here), h.id))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(
        near.iter().map(|c| c.id).collect::<Vec<_>>(),
        all[..5].iter().map(|x| x.1).collect::<Vec<_>>()
    );
    // Sorting the list by distance gives the same order.
    let list = s
        .households(
            &HouseholdQuery {
                near: Some(here),
                limit: Some(5),
                ..Default::default()
            },
            today(),
        )
        .unwrap();
    assert_eq!(
        list.iter().map(|c| c.id).collect::<Vec<_>>(),
        near.iter().map(|c| c.id).collect::<Vec<_>>()
    );
    // Far away, it still finds the k nearest.
    let far = GeoPoint::new(c.x() + 0.5, c.y() + 0.5, None).unwrap();
    assert_eq!(s.nearest_households(&far, 3, today()).unwrap().len(), 3);
}

#[test]
fn open_records_by_status_and_records_of_a_grid() {
    let (_d, s, county, scope) = demo_store();
    let open = s
        .records(&RecordQuery {
            open_only: true,
            ..Default::default()
        })
        .unwrap();
    let expected = scope
        .records
        .iter()
        .filter(|r| lifecycle(r.domain()).is_open(r.common().status))
        .count();
    assert_eq!(open.len(), expected);
    assert!(open.iter().all(|r| lifecycle(r.domain).is_open(r.status)));
    let reported = s
        .records(&RecordQuery {
            domain: Some(Domain::Hazard),
            statuses: vec![Status::Reported],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        reported.len(),
        scope
            .records
            .iter()
            .filter(|r| r.domain() == Domain::Hazard && r.common().status == Status::Reported)
            .count()
    );
    let of_grid = s
        .records(&RecordQuery {
            grid_id: Some(county.grids[0].grid.id),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(of_grid.len(), scope.records.len());
    assert!(
        of_grid
            .windows(2)
            .all(|w| w[0].created_at >= w[1].created_at),
        "newest first"
    );
    let other = s
        .records(&RecordQuery {
            grid_id: Some(county.grids[1].grid.id),
            ..Default::default()
        })
        .unwrap();
    assert!(other.is_empty());
}

#[test]
fn household_detail_has_members_head_first_and_visits() {
    let (_d, s, _c, scope) = demo_store();
    let hh = scope
        .households
        .iter()
        .find(|h| {
            scope
                .people
                .iter()
                .filter(|p| p.household_id == h.id)
                .count()
                > 2
        })
        .unwrap();
    let d = s.household_detail(hh.id, today()).unwrap();
    assert_eq!(d.members[0].relation, Relation::Head);
    assert_eq!(
        d.members.len(),
        scope
            .people
            .iter()
            .filter(|p| p.household_id == hh.id)
            .count()
    );
    assert_eq!(d.house.as_ref().map(|h| h.id), hh.house_id);
    assert!(
        d.visits
            .windows(2)
            .all(|w| w[0].visited_on >= w[1].visited_on)
    );
}
