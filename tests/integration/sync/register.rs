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
