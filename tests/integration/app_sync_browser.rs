//! The app against a real county server, in a real browser: enrol (online once), report a
//! hazard, sync; the county answers through its API; the next sync brings the answer to the
//! app. Reuses the sync tests' in-process server (SQLite backend).

use std::sync::{Arc, Mutex};

use gridwalk::app::platform::{FixedLocation, NoCamera};
use gridwalk::app::sync_port::client::ClientSync;
use gridwalk::app::{MakeServices, Services};
use gridwalk::domain::codes::{Domain, Lang};
use gridwalk::domain::geo::GeoPoint;
use gridwalk::store::Store;
use gridwalk::store::records::RecordQuery;
use serde_json::json;

use crate::sync::util::{Backend, TestServer};

fn node(args: &[&str]) -> String {
    crate::util::run_node("sync_flow.mjs", args, "flows: all steps passed")
}

/// The phone photo the worker attaches (EXIF with GPS, taken turned).
const PHOTO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/photos/pole-gps.jpg"
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and tests/browser/node_modules: run by scripts/test-app.sh"]
async fn enrol_report_sync_and_read_the_county_answer_in_a_real_browser() {
    let server = TestServer::start(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("device.db");
    let grid = &server.county.grids[0].grid;
    let c = geo::Centroid::centroid(&grid.boundary).unwrap();
    let here = GeoPoint::new(c.x(), c.y(), Some(5.0)).unwrap();
    let db2 = db.clone();
    let make: MakeServices = Arc::new(move || Services {
        db_path: Some(db2.clone()),
        store: None::<Arc<Mutex<Store>>>,
        location: Arc::new(FixedLocation::new(here, 0.0)),
        camera: Arc::new(NoCamera),
        sync: Arc::new(ClientSync),
        clock: Arc::new(chrono::Utc::now),
        fix_interval_ms: 1000,
        start: None,
        lang: Lang::Zh,
        autosync: None,
    });
    let (addr, app) = gridwalk::app::harness::bind("127.0.0.1:0".parse().unwrap(), make)
        .await
        .unwrap();
    tokio::spawn(app);
    let app_url = format!("http://{addr}/");

    let (u, s) = (app_url.clone(), server.url.clone());
    tokio::task::spawn_blocking(move || node(&["enrol", &u, &s, PHOTO]))
        .await
        .unwrap();

    // The hazard reached the county; a county clerk confirms it and replies.
    let hazard_id = {
        let s = gridwalk::store::vault::open_with_pin(&db, "123456").unwrap();
        assert_eq!(s.worker(), "worker-a");
        assert_eq!(s.outbox_len().unwrap(), 0, "everything went up");
        s.records(&RecordQuery {
            domain: Some(Domain::Hazard),
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .find(|r| r.summary.contains("村头池塘"))
        .expect("hazard in the device store")
        .id
    };
    assert!(
        server.entity(hazard_id).await.is_some(),
        "hazard on the server"
    );
    let admin = server.login("admin").await;
    let http = crate::sync::util::api_client();
    // Its photo went up as the device stored it (upright, 1600 px, no EXIF), and the county
    // sees it.
    let sha = {
        let s = gridwalk::store::vault::open_with_pin(&db, "123456").unwrap();
        let h: gridwalk::domain::model::Hazard = s.record(hazard_id).unwrap();
        assert_eq!(h.common.photos.len(), 1, "the photo attached");
        h.common.photos[0].clone()
    };
    let res = http
        .get(format!("{}/api/v1/photos/{sha}", server.url))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let bytes = res.bytes().await.unwrap();
    assert!(
        !bytes.windows(4).any(|w| w == b"Exif"),
        "no EXIF on the server"
    );
    let img = image::load_from_memory(&bytes).unwrap();
    assert_eq!((img.width(), img.height()), (800, 1600));
    let base = format!("{}/api/v1/records/{hazard_id}", server.url);
    let res = http
        .post(format!("{base}/transition"))
        .bearer_auth(&admin.token)
        .json(&json!({"to": "CONFIRMED", "note": "已受理"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200, "{:?}", res.text().await);
    let answer = "已安排村里设置护栏和警示牌";
    let res = http
        .post(format!("{base}/replies"))
        .bearer_auth(&admin.token)
        .json(&json!({"text": answer}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);

    let u = app_url.clone();
    let log = tokio::task::spawn_blocking(move || node(&["answer", &u, answer]))
        .await
        .unwrap();
    assert!(
        log.contains("已确认") || log.contains("CONFIRMED") || log.contains("确认"),
        "{log}"
    );
    let s = gridwalk::store::vault::open_with_pin(&db, "123456").unwrap();
    let replies = s.replies(hazard_id).unwrap();
    assert!(
        replies.iter().any(|r| r.text == answer),
        "the county's reply reached the device: {replies:?}"
    );
}

/// The phone app at 390 px's harness on 127.0.0.1:0, over the device store at `db` (made at
/// enrolment), located at `here`: its address.
pub(crate) async fn phone_app(db: &std::path::Path, here: GeoPoint) -> std::net::SocketAddr {
    let db = db.to_path_buf();
    let make: MakeServices = Arc::new(move || Services {
        db_path: Some(db.clone()),
        store: None::<Arc<Mutex<Store>>>,
        location: Arc::new(FixedLocation::new(here, 0.0)),
        camera: Arc::new(NoCamera),
        sync: Arc::new(ClientSync),
        clock: Arc::new(chrono::Utc::now),
        fix_interval_ms: 1000,
        start: None,
        lang: Lang::Zh,
        autosync: None,
    });
    let (addr, app) = gridwalk::app::harness::bind("127.0.0.1:0".parse().unwrap(), make)
        .await
        .unwrap();
    tokio::spawn(app);
    addr
}

/// The household register in a real browser: the worker adds a newborn and marks a member
/// deceased on the phone, syncs, and the county's household page shows both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and tests/browser/node_modules: run by scripts/test-app.sh"]
async fn a_newborn_and_a_death_on_the_phone_reach_the_countys_household_page() {
    let server = TestServer::start(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("device.db");
    let grid = &server.county.grids[0].grid;
    let c = geo::Centroid::centroid(&grid.boundary).unwrap();
    let here = GeoPoint::new(c.x(), c.y(), Some(5.0)).unwrap();
    let addr = phone_app(&db, here).await;
    let app_url = format!("http://{addr}/");
    let date =
        (gridwalk::domain::cst::today(chrono::Utc::now()) - chrono::Duration::days(2)).to_string();
    let (u, s, d) = (app_url, server.url.clone(), date.clone());
    let log = tokio::task::spawn_blocking(move || {
        crate::util::run_node(
            "register_flow.mjs",
            &["phone", &u, &s, &d],
            "flows: all steps passed",
        )
    })
    .await
    .unwrap();
    let line = |key: &str| {
        log.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("{key} in {log}"))
            .trim()
            .to_owned()
    };
    let (household, deceased) = (line("household:"), line("deceased:"));
    {
        let s = gridwalk::store::vault::open_with_pin(&db, "123456").unwrap();
        assert_eq!(s.outbox_len().unwrap(), 0, "everything went up");
    }
    // A push is acknowledged once queued in the county's inbox: wait until it is applied.
    server.applied().await;
    let s = server.url.clone();
    tokio::task::spawn_blocking(move || {
        crate::util::run_node(
            "register_flow.mjs",
            &["county", &s, &household, &deceased, &date],
            "flows: all steps passed",
        )
    })
    .await
    .unwrap();
}
