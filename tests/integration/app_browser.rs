//! Flow tests in a real browser: the same `App`, served by the liveview harness on
//! 127.0.0.1:0, driven by Playwright in Debian's headless Chromium (tests/browser/flows.mjs);
//! then the encrypted device store is checked for what the worker did.
//! Needs `chromium` and `npm install --prefix tests/browser`: scripts/test-app.sh does both.

use std::sync::{Arc, Mutex};

use geo::Centroid;
use gridwalk::app::platform::{FixedLocation, NoCamera};
use gridwalk::app::sync_port::NoSyncClient;
use gridwalk::app::{MakeServices, Services};
use gridwalk::demo::seed_device;
use gridwalk::domain::codes::{Domain, Lang};
use gridwalk::domain::geo::GeoPoint;
use gridwalk::domain::lifecycle::Status;
use gridwalk::domain::model::{AnyRecord, Dispute, Hazard, Patrol};
use gridwalk::store::Store;
use gridwalk::store::records::RecordQuery;

use crate::util::small_county;

/// A phone photo as a picker hands it over: 2,400×1,200 pixels, taken turned (EXIF
/// orientation 6) and carrying a GPS position in its EXIF.
fn phone_photo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photos/pole-gps.jpg")
}

#[test]
#[ignore = "needs chromium and tests/browser/node_modules: run by scripts/test-app.sh"]
fn worker_flows_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("device.db");
    let county = small_county();
    {
        let mut s = gridwalk::store::vault::open_with_pin(&db, "123456").unwrap();
        seed_device(&mut s, &county, &[0], "worker-a").unwrap();
    }
    let photo = phone_photo();
    let c = county.grids[0].grid.boundary.centroid().unwrap();
    let here = GeoPoint::new(c.x(), c.y(), Some(6.0)).unwrap();
    let db2 = db.clone();
    let make: MakeServices = Arc::new(move || Services {
        db_path: Some(db2.clone()),
        store: None::<Arc<Mutex<Store>>>,
        // A slow walk: 4 m east per fix, a fix every 150 ms, so the live distance moves.
        location: Arc::new(FixedLocation::new(here, 4.0)),
        camera: Arc::new(NoCamera),
        sync: Arc::new(NoSyncClient),
        clock: Arc::new(chrono::Utc::now),
        fix_interval_ms: 150,
        start: None,
        lang: Lang::Zh,
        autosync: None,
    });
    let started = chrono::Utc::now();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, server) = rt
        .block_on(gridwalk::app::harness::bind(
            "127.0.0.1:0".parse().unwrap(),
            make,
        ))
        .unwrap();
    rt.spawn(server);
    crate::util::run_node(
        "flows.mjs",
        &[&format!("http://{addr}/"), &photo.display().to_string()],
        "flows: all steps passed",
    );

    // What the worker did is in the encrypted device store.
    let s = gridwalk::store::vault::open_with_pin(&db, "123456").unwrap();
    let visits: i64 = s
        .conn()
        .query_row(
            "SELECT count(*) FROM visits WHERE author = 'worker-a' AND notes LIKE '%米面油%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(visits, 1, "the visit was recorded");

    let all = s.records(&RecordQuery::default()).unwrap();
    // Double taps on the submit buttons filed one of each.
    for (domain, text) in [(Domain::Hazard, "电动车"), (Domain::Dispute, "宅基地")] {
        let n = all
            .iter()
            .filter(|r| r.domain == domain && r.created_at >= started && r.summary.contains(text))
            .count();
        assert_eq!(n, 1, "one {domain:?} from a double tap");
    }
    let hazard = all
        .iter()
        .find(|r| {
            r.domain == Domain::Hazard && r.created_at >= started && r.summary.contains("电动车")
        })
        .expect("hazard");
    let h: Hazard = s.record(hazard.id).unwrap();
    assert_eq!(h.common.photos.len(), 1, "the photo is attached");
    // Stored upright, scaled to its long edge, re-encoded without its EXIF (no GPS, no serial).
    let (stored, mime) = s.photo(&h.common.photos[0]).unwrap();
    assert_eq!(mime, "image/jpeg");
    assert!(!stored.windows(4).any(|w| w == b"Exif"), "EXIF dropped");
    let img = image::load_from_memory(&stored).unwrap();
    assert_eq!(
        (img.width(), img.height()),
        (800, 1600),
        "upright, long edge 1600"
    );
    let loc = h.common.location.expect("location captured");
    assert_eq!(loc.accuracy_m, Some(6.0));
    assert_eq!(
        h.common.grid_id, county.grids[0].grid.id,
        "grid found by point-in-polygon"
    );

    let patrols: Vec<_> = s
        .records(&RecordQuery {
            domain: Some(Domain::Patrol),
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .filter(|r| r.created_at >= started)
        .collect();
    assert_eq!(patrols.len(), 1, "one patrol run in the browser");
    let p: Patrol = s.record(patrols[0].id).unwrap();
    assert_eq!(p.common.status, Status::Submitted, "stopped and submitted");
    assert!(p.ended_at.is_some());
    assert_eq!(
        p.notes, "村西路灯不亮两盏",
        "the notes typed before a tab switch and a restart"
    );
    assert!(p.distance_m >= 10.0, "distance {}", p.distance_m);
    assert!(s.patrol_track(p.common.id).unwrap().len() >= 3);

    let disputes = s
        .records(&RecordQuery {
            domain: Some(Domain::Dispute),
            ..Default::default()
        })
        .unwrap();
    let d = disputes
        .iter()
        .find(|r| r.created_at >= started && r.summary.contains("宅基地"))
        .expect("dispute");
    let dd: Dispute = s.record(d.id).unwrap();
    assert_eq!(dd.parties.len(), 2);
    let sessions = s.mediation_sessions(d.id).unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].participants.len(), 3);
    assert!(matches!(s.any_record(d.id).unwrap(), AnyRecord::Dispute(_)));
    assert!(s.outbox_len().unwrap() >= 6, "everything waits to upload");
}

#[test]
#[ignore = "needs chromium and tests/browser/node_modules: run by scripts/test-app.sh"]
fn duty_forms_in_a_real_browser() {
    use gridwalk::domain::codes::{LivelihoodMatter, ServiceKind, Urgency};
    use gridwalk::domain::model::Event;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("device.db");
    let county = small_county();
    {
        let mut s = gridwalk::store::vault::open_with_pin(&db, "123456").unwrap();
        seed_device(&mut s, &county, &[0], "worker-a").unwrap();
    }
    let c = county.grids[0].grid.boundary.centroid().unwrap();
    let here = GeoPoint::new(c.x(), c.y(), Some(6.0)).unwrap();
    let db2 = db.clone();
    let make: MakeServices = Arc::new(move || Services {
        db_path: Some(db2.clone()),
        store: None::<Arc<Mutex<Store>>>,
        location: Arc::new(FixedLocation::new(here, 0.0)),
        camera: Arc::new(NoCamera),
        sync: Arc::new(NoSyncClient),
        clock: Arc::new(chrono::Utc::now),
        fix_interval_ms: 60_000,
        start: None,
        lang: Lang::Zh,
        autosync: None,
    });
    let started = chrono::Utc::now();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, server) = rt
        .block_on(gridwalk::app::harness::bind(
            "127.0.0.1:0".parse().unwrap(),
            make,
        ))
        .unwrap();
    rt.spawn(server);
    crate::util::run_node(
        "duties.mjs",
        &[&format!("http://{addr}/")],
        "duties: all steps passed",
    );

    // One record of each duty (double taps filed once), with the fields the worker gave.
    let s = gridwalk::store::vault::open_with_pin(&db, "123456").unwrap();
    let mine = |domain: Domain| -> Vec<Event> {
        s.records(&RecordQuery {
            domain: Some(domain),
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .filter(|r| r.created_at >= started)
        .map(|r| s.record::<Event>(r.id).unwrap())
        .collect()
    };
    let sp = mine(Domain::SpecialPop);
    assert_eq!(sp.len(), 1, "one 特殊人群服务");
    assert_eq!(sp[0].service, Some(ServiceKind::CareVisit));
    let person = s.person(sp[0].served_person_id.expect("a person")).unwrap();
    assert!(
        !person.tags.is_empty(),
        "the person served is on the register"
    );
    assert_eq!(sp[0].content, "上门看望，送去米油");
    let pb = mine(Domain::Publicity);
    assert_eq!(pb.len(), 1, "one 政策宣传");
    assert_eq!(
        (pb[0].title.as_str(), pb[0].place.as_deref(), pb[0].audience),
        ("防范电信诈骗", Some("村委会"), Some(45))
    );
    let lv = mine(Domain::Livelihood);
    assert_eq!(lv.len(), 1, "one 民生服务");
    assert_eq!(lv[0].matter, Some(LivelihoodMatter::Insurance));
    assert!(lv[0].common.household_id.is_some());
    assert_eq!(lv[0].common.status, Status::Resolved);
    let ot = mine(Domain::Other);
    assert_eq!(ot.len(), 1, "one 其他");
    assert_eq!(ot[0].title, "村口路灯不亮");
    assert_eq!(ot[0].common.urgency, Urgency::Urgent);
}
