//! Protocol 2's partial pulls: an event record the device already holds comes down as the
//! fields and status changes made after the device's base, and the device ends up with exactly
//! the server's record and history, also when a pull takes several pages and a record changed
//! again after the page that would have held its earlier change.

use chrono::Utc;
use gridwalk::domain::codes::Coded;
use gridwalk::domain::lifecycle::{Actor, Status, lifecycle};
use gridwalk::domain::model::{AnyRecord, EntityKind, Hazard};
use gridwalk::server::{records as server_sync, repo};
use uuid::Uuid;

use super::util::{Backend, Device, TestServer};
use crate::both_backends;

/// Moves `id` one reviewer step on the server; returns the new status.
async fn county_moves(server: &TestServer, id: Uuid) -> Status {
    let db = server.db.clone();
    tokio::task::spawn_blocking(move || {
        db.tx(|tx| -> Result<Status, gridwalk::server::error::Failure> {
            let (admin, _) = repo::user_by_name(tx, "admin")?.expect("admin");
            let e = repo::get_entity(tx, id)?.expect("the record");
            let from = Status::from_code(e.status().unwrap()).unwrap();
            let (_, to, _) = lifecycle(e.kind.domain().unwrap())
                .transitions
                .iter()
                .find(|(a, _, who)| *a == from && who.admits(Actor::Reviewer))
                .copied()
                .expect("a reviewer's move");
            server_sync::review_transition(tx, &admin, id, to, None, Utc::now())?;
            Ok(to)
        })
    })
    .await
    .unwrap()
    .unwrap()
}

/// Event records of the grid that the county can still move twice, oldest version first.
async fn movable(server: &TestServer, grid_code: &str, n: usize) -> Vec<Uuid> {
    let code = grid_code.to_owned();
    let rows = server
        .read(move |db| {
            db.query(
                "SELECT id, kind, status FROM entities WHERE grid_code = $1 AND status IS NOT NULL ORDER BY version",
                &[code.into()],
            )
        })
        .await;
    let mut out = Vec::new();
    for r in rows {
        let kind = EntityKind::from_code(r[1].str().unwrap()).unwrap();
        let Ok(mut at) = Status::from_code(r[2].str().unwrap()) else {
            continue;
        };
        let l = lifecycle(kind.domain().unwrap());
        let mut steps = 0;
        while steps < 2 {
            match l
                .transitions
                .iter()
                .find(|(a, _, who)| *a == at && who.admits(Actor::Reviewer))
            {
                Some((_, to, _)) => {
                    at = *to;
                    steps += 1;
                }
                None => break,
            }
        }
        if steps == 2 {
            out.push(Uuid::parse_str(r[0].str().unwrap()).unwrap());
        }
        if out.len() == n {
            break;
        }
    }
    assert_eq!(out.len(), n, "enough movable records in the tiny county");
    out
}

/// The device's copy of each record equals the server's: data and status history.
async fn same_as_server(server: &TestServer, device: &Device, ids: &[Uuid]) {
    for id in ids {
        let id = *id;
        let (kind, data, history) = server
            .read(move |db| {
                let e = repo::get_entity(db, id)?.expect("on the server");
                let h = repo::status_histories(db, &[id])?
                    .remove(&id)
                    .unwrap_or_default();
                Ok((e.kind, serde_json::Value::Object(e.data), h))
            })
            .await;
        let remote = AnyRecord::from_json(kind.domain().unwrap(), data).unwrap();
        let local = device.with(|s| s.any_record(id)).unwrap();
        assert_eq!(local, remote, "record {id}: device = server");
        let local_history = device.with(|s| s.status_history(id)).unwrap();
        assert_eq!(local_history, history, "record {id}: same status history");
    }
}

async fn partial_pulls_end_exactly_at_the_server(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = Device::enrol(&server, "worker-a").await;
    let code = server.county.grids[0].grid.code.as_str().to_owned();
    let ids = movable(&server, &code, 3).await;
    let (r1, r2, r3) = (ids[0], ids[1], ids[2]);

    // One change each: the next pull sends each as a partial change of its status and its
    // new status change, not the whole record.
    for id in &ids {
        county_moves(&server, *id).await;
    }
    let base = a.with(|s| s.pull_cursor()).unwrap();
    let url = format!("{}/api/v1/sync/pull?cursor={base}&base={base}", server.url);
    let token = a
        .with(|s| s.meta(gridwalk::store::remote::TOKEN))
        .unwrap()
        .unwrap();
    let page: gridwalk::wire::PullResponse = super::util::api_client()
        .get(&url)
        .bearer_auth(&token)
        .header(
            gridwalk::wire::PROTOCOL_HEADER,
            gridwalk::wire::PROTOCOL_VERSION,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page.base, base);
    for c in page.changes.iter().filter(|c| c.kind.is_record()) {
        assert!(c.partial, "{} {} is partial", c.kind, c.id);
        let fields: Vec<&String> = c.data.as_object().unwrap().keys().collect();
        assert_eq!(fields, vec!["status"], "only the status changed");
        assert_eq!(
            c.history.as_ref().map(Vec::len),
            Some(1),
            "one new status change"
        );
        assert!(c.history_kept > 0 || c.history.is_some());
    }
    a.sync().await;
    same_as_server(&server, &a, &ids).await;

    // A worker's edit from a second device of the same account, and its own transition on
    // this one, still waiting in the outbox while the county moves the record again.
    let b = Device::enrol(&server, "worker-a").await;
    b.with(|s| {
        s.update_record::<Hazard>(r1, |h| h.description = "第二台设备改的".into(), Utc::now())
    })
    .ok();
    b.sync().await;

    // Then, in version order: r1 moves, r2 and r3 move, r1 moves again. Pulled two changes a
    // page, the first page (r2, r3) ends past r1's first move while r1 itself is on the
    // second page: that page must still bring r1's first move.
    county_moves(&server, r1).await;
    county_moves(&server, r2).await;
    county_moves(&server, r3).await;
    county_moves(&server, r1).await;
    let mut client = a.client();
    client.page = 2;
    let sum = client.sync(&a.store, |_| {}).await.unwrap();
    assert!(sum.requests >= 2, "several pages: {sum:?}");
    assert_eq!(
        a.with(|s| s.meta(gridwalk::store::remote::PULL_BASE))
            .unwrap(),
        None,
        "no pull under way"
    );
    same_as_server(&server, &a, &ids).await;
    b.sync().await;
    same_as_server(&server, &b, &ids).await;
}
both_backends!(partial_pulls_end_exactly_at_the_server);
