//! The field's own story: worker-a records a hazard offline and syncs; the county accepts
//! and assigns it; worker-a's next sync shows it. worker-b never sees worker-a's grid. Two
//! devices with clocks a day apart edit one household: the documented winner wins. Photos
//! upload resumably and are stored once.

use chrono::{Duration, Utc};
use gridwalk::domain::codes::*;
use gridwalk::domain::geo::GeoPoint;
use gridwalk::domain::lifecycle::Status;
use gridwalk::domain::model::*;
use gridwalk::store::records::RecordQuery;
use serde_json::json;

use super::util::{Backend, Device, TestServer};
use crate::both_backends;

pub fn hazard(grid: uuid::Uuid) -> Hazard {
    let mut c = Common::new(Domain::Hazard, grid, "worker-a", Utc::now());
    c.location = Some(GeoPoint::new(116.40, 28.05, Some(8.0)).unwrap());
    Hazard {
        common: c,
        category: HazardCategory::Water,
        severity: Severity::High,
        description: "村头池塘无护栏，暑期有儿童玩水".into(),
        place: "村头池塘".into(),
        owner: None,
        due_date: None,
    }
}

async fn api(
    server: &TestServer,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut req = super::util::api_client()
        .request(method, format!("{}{path}", server.url))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(serde_json::Value::Null))
}

async fn hazard_flow(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = Device::enrol(&server, "worker-a").await;
    let grid_a = server.county.grids[0].grid.id;
    let grid_b = server.county.grids[1].grid.id;
    // The first sync brought worker-a's grid and only it.
    let grids: Vec<_> = a
        .with(|s| s.grids().unwrap())
        .iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(grids, vec![grid_a]);
    let hh = a.with(|s| s.counts().unwrap()).households;
    assert_eq!(hh as usize, server.county.scope(&[0]).households.len());

    // Offline: record the hazard. Then sync.
    let h = hazard(grid_a);
    a.with(|s| s.create_record(&h, Utc::now())).unwrap();
    let sum = a.sync().await;
    assert_eq!(sum.pushed, 1);
    assert_eq!(a.with(|s| s.outbox_len()).unwrap(), 0);
    let on_server = server
        .entity(h.common.id)
        .await
        .expect("the hazard reached the county");
    assert_eq!(on_server["description"], "村头池塘无护栏，暑期有儿童玩水");

    // A county clerk (through the API for now) confirms and assigns it, with a reply.
    let admin = server.login("admin").await;
    let list = api(
        &server,
        &admin.token,
        reqwest::Method::GET,
        "/api/v1/records?kind=HAZARD&status=REPORTED",
        None,
    )
    .await;
    assert_eq!(list.0, 200);
    assert!(
        list.1
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == h.common.id.to_string())
    );
    let path = format!("/api/v1/records/{}/transition", h.common.id);
    let (st, body) = api(
        &server,
        &admin.token,
        reqwest::Method::POST,
        &path,
        Some(json!({"to": "CONFIRMED", "note": "已受理，安排村里设置护栏"})),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let (st, _) = api(
        &server,
        &admin.token,
        reqwest::Method::POST,
        &path,
        Some(json!({"to": "RECTIFYING"})),
    )
    .await;
    assert_eq!(st, 200);

    // worker-a's next sync shows the new status, the history and the reply.
    let sum = a.sync().await;
    assert!(sum.feedback >= 1, "{sum:?}");
    let local: Hazard = a.with(|s| s.record(h.common.id)).unwrap();
    assert_eq!(local.common.status, Status::Rectifying);
    let history = a.with(|s| s.status_history(h.common.id)).unwrap();
    assert_eq!(
        history.iter().map(|c| c.to).collect::<Vec<_>>(),
        vec![Status::Confirmed, Status::Rectifying]
    );
    let replies = a.with(|s| s.replies(h.common.id)).unwrap();
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].text, "已受理，安排村里设置护栏");

    // worker-b never receives anything of worker-a's grid.
    let b = Device::enrol(&server, "worker-b").await;
    b.sync().await;
    let b_grids: Vec<_> = b
        .with(|s| s.grids().unwrap())
        .iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(b_grids, vec![grid_b]);
    assert!(b.with(|s| s.any_record(h.common.id)).is_err());
    let b_records = b.with(|s| s.records(&RecordQuery::default())).unwrap();
    assert!(b_records.iter().all(|r| r.grid_id == grid_b));
    let b_households = b
        .with(|s| s.households(&Default::default(), super::util::today()))
        .unwrap();
    assert!(b_households.iter().all(|c| c.grid_id == grid_b));

    // A sync with nothing new is one small request.
    let sum = a.sync().await;
    assert_eq!((sum.pushed, sum.pulled, sum.requests), (0, 0, 1));
}
both_backends!(hazard_flow);

async fn clock_skew(backend: Backend) {
    let server = TestServer::start(backend).await;
    // worker-a has a phone (clock a day fast) and a tablet (right clock).
    let phone = Device::enrol(&server, "worker-a").await;
    let tablet = Device::enrol(&server, "worker-a").await;
    let hh = phone
        .with(|s| s.households(&Default::default(), super::util::today()))
        .unwrap()[0]
        .id;
    let real = Utc::now();
    let day = Duration::days(1);
    // Offline, the phone edits two hours ago (its clock says a day later)...
    phone
        .with(|s| {
            s.update_household(
                hh,
                |h| h.address = "山下村1组（手机改）".into(),
                real - Duration::hours(2) + day,
            )
        })
        .unwrap();
    // ...and the tablet one hour ago.
    tablet
        .with(|s| {
            s.update_household(
                hh,
                |h| h.address = "山下村1组（平板改）".into(),
                real - Duration::hours(1),
            )
        })
        .unwrap();
    // The phone syncs first, then the tablet; by raw clocks the phone's edit looks newest.
    let mut pc = phone.client();
    pc.clock_offset = day;
    pc.sync(&phone.store, |_| {}).await.unwrap();
    let ts = tablet.sync().await;
    pc.sync(&phone.store, |_| {}).await.unwrap();
    // The rule: the later edit by corrected time wins, so the tablet's.
    let server_addr = server.entity(hh).await.unwrap()["address"].clone();
    assert_eq!(server_addr, "山下村1组（平板改）");
    let on_phone = phone.with(|s| s.household(hh)).unwrap();
    let on_tablet = tablet.with(|s| s.household(hh)).unwrap();
    assert_eq!(
        on_phone, on_tablet,
        "both devices end with identical content"
    );
    assert_eq!(on_phone.address, "山下村1组（平板改）");
    // The losing value is a visible conflict, on both devices and for the county.
    assert_eq!(ts.conflicts.len(), 1);
    let c = &phone.with(|s| s.conflicts(true)).unwrap()[0];
    assert_eq!(
        (c.field.as_str(), c.lost.clone(), c.kept.clone()),
        (
            "address",
            json!("山下村1组（手机改）"),
            json!("山下村1组（平板改）")
        )
    );
    assert_eq!(tablet.with(|s| s.conflicts(true)).unwrap().len(), 1);
    let conflicts = server
        .read(|db| {
            Ok(db
                .query("SELECT data FROM entities WHERE kind = 'CONFLICT'", &[])?
                .len())
        })
        .await;
    assert_eq!(conflicts, 1);
    // The secretary settles it by taking the phone's value; both devices follow.
    let sec = server.login("secretary").await;
    let (st, body) = api(
        &server,
        &sec.token,
        reqwest::Method::POST,
        &format!("/api/v1/conflicts/{}/settle", c.id),
        Some(json!({"take": "lost"})),
    )
    .await;
    assert_eq!(st, 204, "{body}");
    phone.sync().await;
    tablet.sync().await;
    assert_eq!(
        phone.with(|s| s.household(hh)).unwrap().address,
        "山下村1组（手机改）"
    );
    assert_eq!(
        tablet.with(|s| s.household(hh)).unwrap().address,
        "山下村1组（手机改）"
    );
    assert!(phone.with(|s| s.conflicts(true)).unwrap().is_empty());
}
both_backends!(clock_skew);

async fn photos_resume_and_are_stored_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = Device::enrol(&server, "worker-a").await;
    let grid = server.county.grids[0].grid.id;
    let mut bytes: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 251) as u8).collect();
    bytes[..3].copy_from_slice(&[0xFF, 0xD8, 0xFF]); // a JPEG, as the server checks
    let (h1, h2) = (hazard(grid), hazard(grid));
    a.with(|s| s.create_record(&h1, Utc::now())).unwrap();
    a.with(|s| s.create_record(&h2, Utc::now())).unwrap();
    let sha = a
        .with(|s| s.attach_photo(h1.common.id, &bytes, "image/jpeg", Utc::now()))
        .unwrap();
    assert_eq!(
        a.with(|s| s.attach_photo(h2.common.id, &bytes, "image/jpeg", Utc::now()))
            .unwrap(),
        sha
    );
    // The records arrive before the photo: push only (a sync cut before its photo phase).
    let client = a.client();
    let entries = a
        .with(|s| s.outbox(gridwalk::wire::Lane::Normal, 100))
        .unwrap();
    let req = gridwalk::wire::PushRequest {
        device_id: a.with(|s| s.device_id()),
        lane: gridwalk::wire::Lane::Normal,
        device_now: Utc::now(),
        entries,
    };
    let token = a.with(|s| s.meta("token")).unwrap().unwrap();
    let res = super::util::api_client()
        .post(format!("{}/api/v1/sync/push", server.url))
        .bearer_auth(&token)
        .json(&req)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    server.applied().await;
    assert_eq!(
        server.entity(h2.common.id).await.unwrap()["photos"],
        json!([sha.clone()])
    );
    // An upload cut after 123,457 bytes...
    let url = format!("{}/api/v1/photos/{sha}", server.url);
    let res = super::util::api_client()
        .put(format!("{url}?offset=0"))
        .bearer_auth(&token)
        .body(bytes[..123_457].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["upload-offset"], "123457");
    // ...a chunk at the wrong offset is refused with where to continue...
    let res = super::util::api_client()
        .put(format!("{url}?offset=5"))
        .bearer_auth(&token)
        .body(vec![1, 2, 3])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    // ...the rest arriving damaged is refused, and the upload starts again from byte 0 (not
    // refused at the same place on every try)...
    let mut damaged = bytes[123_457..].to_vec();
    damaged[10] ^= 0xFF;
    let res = super::util::api_client()
        .put(format!("{url}?offset=123457"))
        .bearer_auth(&token)
        .body(damaged)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().starts_with("照片内容"),
        "{body}"
    );
    let res = super::util::api_client()
        .head(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["upload-offset"], "0");
    // ...and the next sync uploads it whole.
    let sum = client.sync(&a.store, |_| {}).await.unwrap();
    assert_eq!(sum.photos, 1);
    let (size, stored): (i64, Vec<u8>) = server
        .read(move |db| {
            let r = db.query_one(
                "SELECT size, data FROM photos WHERE sha256 = $1",
                &[sha.clone().into()],
            )?;
            Ok((r[0].i64()?, r[1].bytes()?))
        })
        .await;
    assert_eq!(size as usize, bytes.len());
    assert_eq!(stored, bytes, "stored once, byte for byte");
    let photos = server
        .read(|db| db.query_one("SELECT count(*) FROM photos", &[])?[0].i64())
        .await;
    assert_eq!(photos, 1);
    // The county can fetch it; worker-b (other grid) cannot.
    let admin = server.login("admin").await;
    let got = super::util::api_client()
        .get(&url)
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().len(), bytes.len());
    let b = server.login("worker-b").await;
    assert_eq!(
        super::util::api_client()
            .get(&url)
            .bearer_auth(&b.token)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}
both_backends!(photos_resume_and_are_stored_once);
