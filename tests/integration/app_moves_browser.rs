//! The worker's moves (办理) in a real browser, end to end against the sync tests' in-process
//! server (SQLite backend): a hazard the county returns with a note is read, edited and
//! resubmitted on the phone, confirmed by the county and seen confirmed after a sync; a dispute
//! goes from registration through a mediation session to 调解成功 and a 回访 on the phone and
//! reaches the county as FOLLOW_UP with the resident's satisfaction.

use gridwalk::domain::geo::GeoPoint;

use crate::sync::util::{Backend, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and tests/browser/node_modules: run by scripts/test-app.sh"]
async fn a_returned_hazard_and_a_mediated_dispute_are_handled_on_the_phone_in_a_real_browser() {
    let server = TestServer::start(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("device.db");
    let grid = &server.county.grids[0].grid;
    let c = geo::Centroid::centroid(&grid.boundary).unwrap();
    let here = GeoPoint::new(c.x(), c.y(), Some(5.0)).unwrap();
    // worker-a's hazard on the county's books, 已上报.
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
        crate::util::run_node("moves_flow.mjs", &[&u, &s, &h], "flows: all steps passed")
    })
    .await
    .unwrap();

    // Everything the last sync pushed is applied (a push is acknowledged once queued).
    server.applied().await;
    // The county holds the hazard confirmed, with the worker's edit.
    let hz = server.entity(hazard).await.expect("the hazard");
    assert_eq!(hz["status"], "CONFIRMED");
    assert!(
        hz["description"].as_str().unwrap().contains("水深约2米"),
        "{hz}"
    );
    assert_eq!(hz["place"], "村委会东侧池塘", "{hz}");
    assert_eq!(hz["urgency"], "MAJOR", "{hz}");
    // And the dispute at 回访, with the resident's satisfaction and the mediation session.
    let disputes: Vec<serde_json::Value> = server
        .read(|db| {
            Ok(db
                .query("SELECT data FROM entities WHERE kind = 'DISPUTE'", &[])?
                .iter()
                .map(|r| serde_json::from_str(r[0].str().unwrap()).unwrap())
                .filter(|d: &serde_json::Value| d["summary"] == "两户因排水沟堵塞发生争执")
                .collect())
        })
        .await;
    assert_eq!(disputes.len(), 1, "{disputes:?}");
    let d = &disputes[0];
    assert_eq!(d["status"], "FOLLOW_UP", "{d}");
    assert_eq!(d["follow_up"]["satisfaction"], "SATISFIED", "{d}");
    assert!(
        d["follow_up"]["notes"]
            .as_str()
            .unwrap()
            .contains("排水通畅"),
        "{d}"
    );
    let sessions = server
        .read(|db| {
            Ok(db.query(
                "SELECT count(*) FROM entities WHERE kind = 'MEDIATION_SESSION' \
                 AND data LIKE '%双方同意共同清理排水沟%'",
                &[],
            )?[0][0]
                .i64()
                .unwrap())
        })
        .await;
    assert_eq!(sessions, 1, "the mediation session reached the county");
    let s = gridwalk::store::vault::open_with_pin(&db, "123456").unwrap();
    assert_eq!(s.outbox_len().unwrap(), 0, "everything went up");
}
