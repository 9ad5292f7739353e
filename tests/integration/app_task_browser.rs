//! A county task in a real browser, end to end: the county gives worker-a a hazard recheck on
//! its dashboard, the app (liveview harness, phone size) shows it first on Today after the
//! next sync, the worker completes it with a photo, and the county's 任务 page shows it done
//! with who, the note and the photo. The sync tests' in-process server (SQLite backend).

use gridwalk::domain::codes::TaskStatus;
use gridwalk::domain::geo::GeoPoint;
use gridwalk::domain::model::Task;

use crate::sync::util::{Backend, TestServer};

/// The phone photo the worker takes of the site.
const PHOTO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/photos/pole-gps.jpg"
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and tests/browser/node_modules: run by scripts/test-app.sh"]
async fn the_county_gives_a_recheck_and_sees_it_done_with_a_photo_in_a_real_browser() {
    let server = TestServer::start(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("device.db");
    let grid = &server.county.grids[0].grid;
    let c = geo::Centroid::centroid(&grid.boundary).unwrap();
    let here = GeoPoint::new(c.x(), c.y(), Some(5.0)).unwrap();
    // A hazard of worker-a's grid on the county's books.
    let h = crate::sync::e2e_hazard(grid.id);
    let hazard = h.common.id;
    let (code, gid, server_db) = (grid.code.as_str().to_owned(), grid.id, server.db.clone());
    tokio::task::spawn_blocking(move || {
        server_db.tx(|db| {
            let now = chrono::Utc::now();
            let seq = gridwalk::server::repo::next_seq(db)?;
            gridwalk::server::records::import_entity(
                db,
                seq,
                gridwalk::domain::model::EntityKind::Hazard,
                hazard,
                gid,
                &code,
                None,
                serde_json::to_value(&h).unwrap(),
                now,
                now,
            )
            .map_err(gridwalk::server::error::Failure::from)
        })
    })
    .await
    .unwrap()
    .unwrap();
    let addr = crate::app_sync_browser::phone_app(&db, here).await;
    let (u, s, h) = (
        format!("http://{addr}/"),
        server.url.clone(),
        hazard.to_string(),
    );
    tokio::task::spawn_blocking(move || {
        crate::util::run_node(
            "task_flow.mjs",
            &[&u, &s, &h, PHOTO],
            "flows: all steps passed",
        )
    })
    .await
    .unwrap();

    // On the county's books: done by worker-a, with the photo's bytes whole.
    let tasks: Vec<Task> = server
        .read(|db| {
            Ok(db
                .query("SELECT data FROM entities WHERE kind = 'TASK'", &[])?
                .iter()
                .map(|r| serde_json::from_str(r[0].str().unwrap()).unwrap())
                .collect())
        })
        .await;
    assert_eq!(tasks.len(), 1);
    let t = &tasks[0];
    assert_eq!(t.status, TaskStatus::Done);
    assert_eq!(t.record_id, Some(hazard));
    assert_eq!(t.done_by.as_deref(), Some("worker-a"));
    let sha = t.done_photo.clone().expect("the photo is named");
    let complete = server
        .read(move |db| {
            Ok(db.query_one(
                "SELECT complete FROM photos WHERE sha256 = $1",
                &[sha.into()],
            )?[0]
                .i64()
                .unwrap())
        })
        .await;
    assert_eq!(complete, 1, "the photo's bytes reached the county");
    let s = gridwalk::store::vault::open_with_pin(&db, "123456").unwrap();
    assert_eq!(s.outbox_len().unwrap(), 0, "everything went up");
    assert!(s.open_tasks().unwrap().is_empty());
}
