//! Supervision (督办): a reviewer puts an open matter under supervision at the level their
//! role may set, with a note; it shows in the queue and on the record page, and reaches the
//! worker's phone with the next sync (the level on the record and in its list, the note as a
//! reply). A worker account cannot set it; a village secretary cannot set or lift the
//! county's.

use chrono::Utc;
use gridwalk::domain::codes::Supervision;
use gridwalk::domain::model::Hazard;
use gridwalk::store::records::RecordQuery;

use super::sign_in;
use crate::both_backends;
use crate::sync::e2e_hazard as hazard;
use crate::sync::util::{Backend, Device, TestServer};

async fn supervision_reaches_the_phone(backend: Backend) {
    let server = TestServer::start(backend).await;
    let phone = Device::enrol(&server, "worker-a").await;
    let h = hazard(server.county.grids[0].grid.id);
    let id = h.common.id;
    phone.with(|s| s.create_record(&h, Utc::now())).unwrap();
    phone.sync().await;
    let path = format!("/records/{id}");
    let act = format!("/records/{id}/supervise");
    let pw = gridwalk::server::demo::DEMO_PASSWORD;

    // A worker account sees no form and cannot set it.
    let worker = sign_in(&server, "worker-a", pw).await.ok().unwrap();
    let p = worker.get(&path).await;
    assert!(p.body.contains("id=\"supervision\""));
    assert!(!p.body.contains("id=\"supervise\""));
    let p = worker
        .act(
            &act,
            &[("level", "VILLAGE"), ("note", "x"), ("action", "set")],
        )
        .await;
    assert!(p.body.contains("未督办"), "{}", p.body);

    // The village secretary may set the village's only, and must say why.
    let sec = sign_in(&server, "secretary", pw).await.ok().unwrap();
    let p = sec.get(&path).await;
    assert!(p.body.contains("value=\"VILLAGE\"") && !p.body.contains("value=\"COUNTY\""));
    let p = sec
        .act(
            &act,
            &[("level", "COUNTY"), ("note", "尽快"), ("action", "set")],
        )
        .await;
    assert!(p.body.contains("只能设置或取消村级督办"), "{}", p.body);
    let p = sec
        .act(
            &act,
            &[("level", "VILLAGE"), ("note", " "), ("action", "set")],
        )
        .await;
    assert!(p.body.contains("督办说明"), "{}", p.body);
    assert!(p.body.contains("未督办"));

    // The county supervises it: on the page, in the queue, in the record's replies.
    let admin = sign_in(&server, "admin", pw).await.ok().unwrap();
    let p = admin
        .act(
            &act,
            &[
                ("level", "COUNTY"),
                ("note", "三日内整改到位"),
                ("action", "set"),
            ],
        )
        .await;
    assert!(p.body.contains("已设为区县督办"), "{}", p.body);
    assert!(
        p.body
            .contains("<strong id=\"supervision-level\">区县督办</strong>")
    );
    assert!(
        p.body.contains("区县督办：三日内整改到位"),
        "the note is in the thread"
    );
    let q = admin.get("/queue?domain=HAZARD&state=all").await;
    let row = q
        .body
        .split(&format!("data-id=\"{id}\""))
        .nth(1)
        .unwrap()
        .split("</tr>")
        .next()
        .unwrap();
    assert!(row.contains("class=\"supervised county\""), "{row}");

    // The secretary cannot lift the county's.
    let p = sec.act(&act, &[("note", ""), ("action", "clear")]).await;
    assert!(p.body.contains("只能设置或取消村级督办"), "{}", p.body);
    assert!(p.body.contains("区县督办"));

    // The worker's phone: the level on the record and in its list, the note as a reply.
    phone.sync().await;
    let got: Hazard = phone.with(|s| s.record(id)).unwrap();
    assert_eq!(got.common.supervision, Supervision::County);
    let listed = phone
        .with(|s| s.records(&RecordQuery::default()))
        .unwrap()
        .into_iter()
        .find(|r| r.id == id)
        .unwrap();
    assert_eq!(listed.supervision, Supervision::County);
    let replies = phone.with(|s| s.replies(id)).unwrap();
    assert!(replies.iter().any(|r| r.text == "区县督办：三日内整改到位"));

    // Lifted: the phone follows.
    let p = admin.act(&act, &[("note", ""), ("action", "clear")]).await;
    assert!(p.body.contains("已取消督办"), "{}", p.body);
    phone.sync().await;
    let got: Hazard = phone.with(|s| s.record(id)).unwrap();
    assert_eq!(got.common.supervision, Supervision::None);
}
both_backends!(supervision_reaches_the_phone);
