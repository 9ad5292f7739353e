//! The household register from the phone to the county: a newborn and a deceased mark reach
//! the server, and a county edit of the same person (a re-imported spreadsheet with a new
//! phone) merges with the phone's mark field by field, whichever reaches the server first.

use chrono::{Duration, Utc};
use gridwalk::domain::codes::*;
use gridwalk::domain::model::*;
use gridwalk::server::data::{self, ImportKind, Mode};
use gridwalk::server::repo;

use super::util::{Backend, Device, TestServer};
use crate::both_backends;

/// The county re-imports `person`'s household row with a new phone (and the head's row as
/// stored, which changes nothing).
async fn county_sets_phone(
    server: &TestServer,
    grid_code: &str,
    head: &Person,
    person: &Person,
    address: &str,
    phone: &str,
) {
    let row = |p: &Person, phone: &str| {
        format!(
            "{grid_code},H1,{address},{},{},{},{phone}\n",
            p.name,
            p.relation.code(),
            p.id_number.clone().unwrap_or_default()
        )
    };
    let csv = format!(
        "\u{feff}grid_code,household_no,address,name,relation,id_number,phone\n{}{}",
        row(head, head.phone.as_deref().unwrap_or("")),
        row(person, phone)
    );
    let db = server.db.clone();
    let report = tokio::task::spawn_blocking(move || {
        let admin = db
            .read(|tx| repo::user_by_name(tx, "admin"))
            .unwrap()
            .expect("admin")
            .0;
        db.tx(|tx| {
            data::import(
                tx,
                &admin,
                ImportKind::Households,
                "h.csv",
                csv.as_bytes(),
                Mode::AllOrNothing,
                &mut |_, _| {},
                Utc::now(),
            )
        })
    })
    .await
    .unwrap()
    .unwrap();
    assert!(report.is_clean(), "{:#?}", report.errors);
    assert_eq!(report.updated, 1, "only the person's phone: {report:#?}");
}

async fn newborn_and_death_reach_the_county_and_merge_with_its_edit(backend: Backend) {
    let server = TestServer::start(backend).await;
    let phone = Device::enrol(&server, "worker-a").await;
    let today = gridwalk::domain::cst::today(Utc::now());
    // A household with a head and at least two other members, all with ID numbers.
    let (hh, head, a, b) = phone
        .with(|s| {
            for c in s.households(&Default::default(), today)? {
                let d = s.household_detail(c.id, today)?;
                let head = d
                    .members
                    .iter()
                    .find(|m| m.relation == Relation::Head)
                    .cloned();
                let others: Vec<Person> = d
                    .members
                    .iter()
                    .filter(|m| m.relation != Relation::Head && m.id_number.is_some())
                    .cloned()
                    .collect();
                if let (Some(h), [a, b, ..]) = (head, others.as_slice())
                    && h.id_number.is_some()
                {
                    return Ok::<_, gridwalk::store::StoreError>(Some((
                        d.household,
                        h,
                        a.clone(),
                        b.clone(),
                    )));
                }
            }
            Ok(None)
        })
        .unwrap()
        .expect("a household of three with ID numbers");
    let grid_code = server.county.grids[0].grid.code.as_str().to_owned();

    // Offline: a newborn, and member a deceased yesterday.
    let mut baby = crate::register::blank(hh.id);
    baby.name = "新生宝宝".into();
    baby.sex = Sex::Female;
    baby.relation = Relation::Grandchild;
    baby.birth_date = Some(today - Duration::days(5));
    let died = today - Duration::days(1);
    phone
        .with(|s| {
            s.register_person(None, &baby, Registration::Newborn, Utc::now())?;
            s.mark_person(a.id, PersonStatus::Deceased, died, Utc::now())
        })
        .unwrap();
    // Order one: the county's edit of the same person reaches the server first.
    county_sets_phone(&server, &grid_code, &head, &a, &hh.address, "13907940001").await;
    phone.sync().await;
    server.applied().await;
    let on_server = server
        .entity(baby.id)
        .await
        .expect("the newborn on the server");
    assert_eq!(on_server["name"], "新生宝宝");
    assert_eq!(
        on_server["birth_date"],
        (today - Duration::days(5)).to_string()
    );
    assert_eq!(on_server["id_number"], serde_json::Value::Null);
    let parent: String = {
        let id = baby.id;
        server
            .read(move |db| {
                db.query_one(
                    "SELECT parent_id FROM entities WHERE id = $1",
                    &[id.to_string().into()],
                )
                .map(|r| r[0].string().unwrap())
            })
            .await
    };
    assert_eq!(
        parent,
        hh.id.to_string(),
        "the newborn belongs to the household"
    );
    let a_server = server.entity(a.id).await.unwrap();
    assert_eq!(a_server["status"], "DECEASED");
    assert_eq!(a_server["status_on"], died.to_string());
    assert_eq!(
        a_server["phone"], "13907940001",
        "the county's phone kept beside the mark"
    );
    // The phone ends with both, and no conflict: different fields.
    phone.sync().await;
    let a_phone = phone.with(|s| s.person(a.id)).unwrap();
    assert_eq!(
        (a_phone.status, a_phone.status_on, a_phone.phone.as_deref()),
        (PersonStatus::Deceased, Some(died), Some("13907940001"))
    );
    assert!(phone.with(|s| s.conflicts(true)).unwrap().is_empty());

    // Order two: the phone's mark reaches the server first, then the county's edit.
    phone
        .with(|s| s.mark_person(b.id, PersonStatus::MovedOut, today, Utc::now()))
        .unwrap();
    phone.sync().await;
    server.applied().await;
    county_sets_phone(&server, &grid_code, &head, &b, &hh.address, "13907940002").await;
    let b_server = server.entity(b.id).await.unwrap();
    assert_eq!(
        (
            b_server["status"].as_str(),
            b_server["status_on"].as_str(),
            b_server["phone"].as_str()
        ),
        (
            Some("MOVED_OUT"),
            Some(today.to_string().as_str()),
            Some("13907940002")
        )
    );
    phone.sync().await;
    let b_phone = phone.with(|s| s.person(b.id)).unwrap();
    assert_eq!(
        (b_phone.status, b_phone.status_on, b_phone.phone.as_deref()),
        (PersonStatus::MovedOut, Some(today), Some("13907940002"))
    );
    // Neither counts as a member any more; the newborn does.
    let d = phone.with(|s| s.household_detail(hh.id, today)).unwrap();
    let card = phone
        .with(|s| s.households(&Default::default(), today))
        .unwrap()
        .into_iter()
        .find(|c| c.id == hh.id)
        .unwrap();
    let active = d
        .members
        .iter()
        .filter(|m| m.status == PersonStatus::Active)
        .count();
    assert_eq!(card.members as usize, active);
    assert!(d.members.iter().any(|m| m.id == baby.id));

    // Merging people is the county's: a phone that marks someone merged is refused.
    phone
        .with(|s| s.update_person(head.id, |p| p.status = PersonStatus::Merged, Utc::now()))
        .unwrap();
    phone.sync().await;
    server.applied().await;
    phone.sync().await;
    assert_eq!(server.entity(head.id).await.unwrap()["status"], "ACTIVE");
    let refused = phone.with(|s| s.rejections(true)).unwrap();
    assert!(
        refused.iter().any(|r| r.rejection.record_id == head.id
            && r.rejection.field.as_deref() == Some("fields.status")),
        "{refused:#?}"
    );
}
both_backends!(newborn_and_death_reach_the_county_and_merge_with_its_edit);

/// A household pushed as a hostile device would, past its own store (which only knows its
/// own grids).
async fn push_household(server: &TestServer, d: &Device, h: &Household) {
    let fields = serde_json::to_value(h)
        .unwrap()
        .as_object()
        .unwrap()
        .clone();
    super::util::push_past_the_store(
        server,
        d,
        EntityKind::Household,
        h.id,
        gridwalk::wire::Op::Create,
        fields,
    )
    .await;
}

async fn a_new_household_reaches_the_county_with_its_head_only_in_the_workers_grid(
    backend: Backend,
) {
    let server = TestServer::start(backend).await;
    let phone = Device::enrol(&server, "worker-a").await;
    let today = gridwalk::domain::cst::today(Utc::now());
    let (from, house) = phone
        .with(|s| {
            for c in s.households(&Default::default(), today)? {
                let d = s.household_detail(c.id, today)?;
                if let Some(house) = d.house {
                    return Ok::<_, gridwalk::store::StoreError>(Some((d.household, house)));
                }
            }
            Ok(None)
        })
        .unwrap()
        .expect("a household in a house");
    // 同址分户: a son's family in the same house, its own room.
    let split = Household {
        id: new_id(),
        grid_id: from.grid_id,
        house_id: Some(house.id),
        head_id: None,
        address: format!("{}（东厢房）", from.address),
        location: from.location,
    };
    let mut head = crate::register::blank(split.id);
    head.name = "陈分户".into();
    head.id_number = Some(crate::register::id_number(
        chrono::NaiveDate::from_ymd_opt(1988, 3, 9).unwrap(),
        31,
    ));
    head.phone = Some("13907941234".into());
    // 新立户: a floating family with no house yet, in the worker's grid.
    let fresh = Household {
        id: new_id(),
        grid_id: from.grid_id,
        house_id: None,
        head_id: None,
        address: "新村路 8 号".into(),
        location: None,
    };
    let mut head2 = crate::register::blank(fresh.id);
    head2.name = "王外来".into();
    head2.id_number = Some(crate::register::id_number(
        chrono::NaiveDate::from_ymd_opt(1990, 7, 1).unwrap(),
        33,
    ));
    head2.phone = Some("13807945678".into());
    head2.person_type = PersonType::Floating;
    head2.residence = ResidenceStatus::PersonOnly;
    head2.origin = Some("湖南省长沙市".into());
    phone
        .with(|s| {
            s.register_household(None, &split, &head, Utc::now())?;
            s.register_household(None, &fresh, &head2, Utc::now())
        })
        .unwrap();
    phone.sync().await;
    server.applied().await;
    assert!(phone.with(|s| s.rejections(true)).unwrap().is_empty());
    for (h, p) in [(&split, &head), (&fresh, &head2)] {
        let on_server = server.entity(h.id).await.expect("the household");
        assert_eq!(on_server["address"], h.address.as_str());
        assert_eq!(on_server["head_id"], p.id.to_string());
        assert_eq!(on_server["grid_id"], from.grid_id.to_string());
        let person = server.entity(p.id).await.expect("its head");
        assert_eq!(person["relation"], "HEAD");
        assert_eq!(person["household_id"], h.id.to_string());
        assert_eq!(person["phone"], p.phone.as_deref().unwrap());
    }
    assert_eq!(
        server.entity(fresh.id).await.unwrap()["house_id"],
        serde_json::Value::Null
    );
    assert_eq!(
        server.entity(head2.id).await.unwrap()["origin"],
        "湖南省长沙市"
    );

    // A household in a grid that is not the worker's, and one in a house of such a grid:
    // refused, and the refusal reaches the phone.
    let far = server.county.grids.last().unwrap().grid.id;
    assert_ne!(far, from.grid_id);
    let outside = Household {
        id: new_id(),
        grid_id: far,
        house_id: None,
        head_id: None,
        address: "别村 1 号".into(),
        location: None,
    };
    push_household(&server, &phone, &outside).await;
    phone.sync().await;
    assert!(server.entity(outside.id).await.is_none());
    let refused = phone.with(|s| s.rejections(true)).unwrap();
    assert!(
        refused
            .iter()
            .any(|r| r.rejection.record_id == outside.id && r.rejection.error == "not_found"),
        "{refused:#?}"
    );
}
both_backends!(a_new_household_reaches_the_county_with_its_head_only_in_the_workers_grid);
