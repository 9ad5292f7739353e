//! The app's way out of every dead end, through the same [`ClientSync`] its screens call,
//! against a real county server: an expired session is fixed by signing in again on the same
//! store (another account refused), a moved server by a new address, and nothing queued is
//! lost or sent twice. Then, in a real browser, the app syncs with no click when the server
//! comes back and shows the county's answer as unread.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use gridwalk::app::sync_port::SyncPort;
use gridwalk::app::sync_port::client::ClientSync;
use gridwalk::client::schedule::Failure;
use gridwalk::store::Store;
use gridwalk::store::remote::SERVER_URL;
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};

use crate::sync::e2e_hazard as hazard;
use crate::sync::util::{Backend, TestServer};

/// A TCP gate in front of the server: while shut, every connection is dropped at once (the
/// phone sees "cannot connect"); open, it forwards. Its address stays while the gate opens and
/// shuts, as a server's does while it restarts.
pub struct Gate {
    pub url: String,
    open: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Gate {
    pub async fn start(upstream: &str) -> Gate {
        let upstream: SocketAddr = upstream.trim_start_matches("http://").parse().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let open = Arc::new(AtomicBool::new(true));
        let o = open.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                if !o.load(Ordering::SeqCst) {
                    drop(sock);
                    continue;
                }
                tokio::spawn(async move {
                    if let Ok(mut up) = TcpStream::connect(upstream).await {
                        let _ = copy_bidirectional(&mut sock, &mut up).await;
                    }
                });
            }
        });
        Gate { url, open, task }
    }
    pub fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::SeqCst);
    }
}

fn store() -> (tempfile::TempDir, Arc<Mutex<Store>>) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path().join("device.db")).unwrap();
    (dir, Arc::new(Mutex::new(s)))
}

async fn queue_hazards(store: &Arc<Mutex<Store>>, grid: uuid::Uuid, n: usize) -> Vec<uuid::Uuid> {
    let mut s = store.lock().unwrap();
    (0..n)
        .map(|_| {
            let h = hazard(grid);
            s.create_record(&h, Utc::now()).unwrap();
            h.common.id
        })
        .collect()
}

async fn on_server_once(server: &TestServer, ids: &[uuid::Uuid]) {
    for id in ids {
        let n: i64 = server
            .read({
                let id = id.to_string();
                move |db| {
                    db.query_one("SELECT count(*) FROM entities WHERE id = $1", &[id.into()])?[0]
                        .i64()
                }
            })
            .await;
        assert_eq!(n, 1, "hazard {id} on the server exactly once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_is_fixed_by_signing_in_again_and_nothing_queued_is_lost() {
    let server = TestServer::start(Backend::Sqlite).await;
    let (_dir, store) = store();
    let port = ClientSync;
    port.enrol(&server.url, "worker-a", "gridwalk-demo", store.clone())
        .await
        .unwrap();
    let grid = server.county.grids[0].grid.id;
    let queued = queue_hazards(&store, grid, 3).await;

    // The session runs out in the server's database.
    server
        .db
        .tx(|db| {
            db.exec(
                "UPDATE sessions SET expires_at = '2000-01-01T00:00:00Z'",
                &[],
            )
        })
        .unwrap();
    let failed = port
        .sync(store.clone(), Box::new(|_| {}))
        .await
        .unwrap_err();
    assert_eq!(failed.kind, Failure::NeedsSignIn);
    assert!(
        failed.message.starts_with("登录已过期"),
        "{}",
        failed.message
    );
    assert_eq!(
        store.lock().unwrap().outbox_len().unwrap(),
        3,
        "nothing lost"
    );

    // Another account may not take the store's outbox: refused on the phone, in Chinese...
    let other = port
        .sign_in_again("worker-b", "gridwalk-demo", store.clone())
        .await
        .unwrap_err();
    assert!(
        other.message.contains("只能由本人重新登录"),
        "{}",
        other.message
    );
    // ...and by the county, whose device enrolment holds even if the phone's check is skipped.
    let device = store.lock().unwrap().device_id();
    let err = gridwalk::client::login(&server.url, "worker-b", "gridwalk-demo", device)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, gridwalk::client::SyncError::Forbidden(m) if m.contains("另一个账号")),
        "{err:?}"
    );
    // A wrong password says so.
    let wrong = port
        .sign_in_again("worker-a", "nope", store.clone())
        .await
        .unwrap_err();
    assert!(wrong.message.contains("密码"), "{}", wrong.message);

    // The worker signs in again: the queued entries go up, each once.
    port.sign_in_again(" worker-a ", "gridwalk-demo", store.clone())
        .await
        .unwrap();
    let report = port.sync(store.clone(), Box::new(|_| {})).await.unwrap();
    assert_eq!(store.lock().unwrap().outbox_len().unwrap(), 0);
    assert!(report.pushed >= 3, "{report:?}");
    on_server_once(&server, &queued).await;
    let again = port.sync(store.clone(), Box::new(|_| {})).await.unwrap();
    assert_eq!(again.pushed, 0);

    // A revoked session is fixed the same way.
    server
        .db
        .tx(|db| db.exec("UPDATE sessions SET revoked = 1", &[]))
        .unwrap();
    let queued2 = queue_hazards(&store, grid, 1).await;
    let failed = port
        .sync(store.clone(), Box::new(|_| {}))
        .await
        .unwrap_err();
    assert_eq!(failed.kind, Failure::NeedsSignIn);
    port.sign_in_again("worker-a", "gridwalk-demo", store.clone())
        .await
        .unwrap();
    port.sync(store.clone(), Box::new(|_| {})).await.unwrap();
    on_server_once(&server, &queued2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_server_gets_its_new_address_checked_and_nothing_queued_is_lost() {
    let server = TestServer::start(Backend::Sqlite).await;
    let old = Gate::start(&server.url).await;
    let (_dir, store) = store();
    let port = ClientSync;
    port.enrol(&old.url, "worker-a", "gridwalk-demo", store.clone())
        .await
        .unwrap();
    let queued = queue_hazards(&store, server.county.grids[0].grid.id, 2).await;

    // The server comes up somewhere else: the old address no longer answers.
    drop(old);
    let failed = port
        .sync(store.clone(), Box::new(|_| {}))
        .await
        .unwrap_err();
    assert_eq!(failed.kind, Failure::Unreachable);
    assert!(
        failed.message.starts_with("无法连接服务器"),
        "{}",
        failed.message
    );
    let probe = port.probe(store.clone()).await.unwrap_err();
    assert_eq!(probe.kind, Failure::Unreachable);

    // Settings checks an address before saving it: one that does not answer, and one that
    // answers but is no county server, are refused with what to do.
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let e = port.check_server(&dead_url).await.unwrap_err();
    assert!(e.message.starts_with("无法连接「"), "{}", e.message);
    assert!(e.message.contains("请核对地址"), "{}", e.message);
    let not_county = not_a_county_server().await;
    let e = port.check_server(&not_county).await.unwrap_err();
    assert!(e.message.contains("不是网格通县级服务器"), "{}", e.message);

    let new = Gate::start(&server.url).await;
    port.check_server(&new.url).await.unwrap();
    store
        .lock()
        .unwrap()
        .set_meta(SERVER_URL, &new.url)
        .unwrap();
    port.probe(store.clone()).await.unwrap();
    port.sync(store.clone(), Box::new(|_| {})).await.unwrap();
    assert_eq!(store.lock().unwrap().outbox_len().unwrap(), 0);
    on_server_once(&server, &queued).await;
}

/// A web server that answers `/healthz` with something else (a router's login page).
async fn not_a_county_server() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let body = "<html>router login</html>";
            let _ = s
                .write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await;
        }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    url
}

/// The scheduler's timings shrunk so the browser flow takes seconds, not minutes.
fn fast() -> gridwalk::client::schedule::Config {
    gridwalk::client::schedule::Config {
        debounce: Duration::from_millis(800),
        max_wait: Duration::from_secs(4),
        feedback_every: Duration::from_secs(3),
        probe_every: Duration::from_secs(2),
        backoff_base: Duration::from_millis(500),
        backoff_cap: Duration::from_secs(2),
        reconnect_spread: Duration::from_secs(1),
        online_for: Duration::from_secs(5),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and tests/browser/node_modules: run by scripts/test-app.sh"]
async fn the_app_syncs_with_no_click_when_the_server_comes_back_in_a_real_browser() {
    use gridwalk::app::platform::{FixedLocation, NoCamera};
    use gridwalk::app::{MakeServices, Services};
    use gridwalk::domain::codes::{Domain, Lang};
    use gridwalk::domain::geo::GeoPoint;
    use gridwalk::store::records::RecordQuery;
    use serde_json::json;

    let server = TestServer::start(Backend::Sqlite).await;
    let gate = Arc::new(Gate::start(&server.url).await);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("device.db");
    {
        let s = Arc::new(Mutex::new(
            gridwalk::store::vault::open_with_pin(&db, "123456").unwrap(),
        ));
        gridwalk::client::enrol(&gate.url, "worker-a", "gridwalk-demo", &s)
            .await
            .unwrap();
    }
    gate.set_open(false);
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
        clock: Arc::new(Utc::now),
        fix_interval_ms: 1000,
        start: None,
        lang: Lang::Zh,
        autosync: Some(fast()),
    });
    let (addr, app) = gridwalk::app::harness::bind("127.0.0.1:0".parse().unwrap(), make)
        .await
        .unwrap();
    tokio::spawn(app);
    // The browser opens the gate itself, when it has saved the hazard offline.
    let g = gate.clone();
    let control = axum::Router::new().route(
        "/open",
        axum::routing::get(move || {
            g.set_open(true);
            async { "open" }
        }),
    );
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let control_url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, control).await.unwrap() });

    let app_url = format!("http://{addr}/");
    let flow = tokio::task::spawn_blocking(move || {
        crate::util::run_node(
            "autosync_flow.mjs",
            &[&app_url, &control_url],
            "flows: all steps passed",
        )
    });

    // The hazard the worker saves, as the device store holds it.
    let mut hazard_id = None;
    for _ in 0..1200 {
        if let Ok(s) = gridwalk::store::vault::open_with_pin(&db, "123456")
            && let Some(r) = s
                .records(&RecordQuery {
                    domain: Some(Domain::Hazard),
                    ..Default::default()
                })
                .unwrap()
                .into_iter()
                .find(|r| r.summary.contains("村口变压器"))
        {
            hazard_id = Some(r.id);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hazard_id = hazard_id.expect("the worker saved the hazard");
    // It reaches the county with no click.
    let mut arrived = false;
    for _ in 0..600 {
        if server.entity(hazard_id).await.is_some() {
            arrived = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(arrived, "the hazard reached the county by itself");
    on_server_once(&server, &[hazard_id]).await;

    // The county answers.
    let admin = server.login("admin").await;
    let http = crate::sync::util::api_client();
    let base = format!("{}/api/v1/records/{hazard_id}", server.url);
    let res = http
        .post(format!("{base}/transition"))
        .bearer_auth(&admin.token)
        .json(&json!({"to": "CONFIRMED", "note": "已受理"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200, "{:?}", res.text().await);
    let res = http
        .post(format!("{base}/replies"))
        .bearer_auth(&admin.token)
        .json(&json!({"text": "供电所明天上午来修围栏"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);

    let log = flow.await.unwrap();
    assert!(
        log.contains("reply: 供电所明天上午来修围栏") || log.contains("供电所"),
        "{log}"
    );
    on_server_once(&server, &[hazard_id]).await;
}

/// A server that answers every request the same way.
async fn answering(status: u16, body: &'static str) -> String {
    let app = axum::Router::new().fallback(move || async move {
        (
            axum::http::StatusCode::from_u16(status).unwrap(),
            [("content-type", "application/json")],
            body,
        )
    });
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misbehaving_server_gives_a_chinese_state_and_loses_nothing() {
    let server = TestServer::start(Backend::Sqlite).await;
    let (_dir, store) = store();
    let port = ClientSync;
    port.enrol(&server.url, "worker-a", "gridwalk-demo", store.clone())
        .await
        .unwrap();
    let queued = queue_hazards(&store, server.county.grids[0].grid.id, 2).await;
    let real = store.lock().unwrap().meta(SERVER_URL).unwrap().unwrap();
    let cases: [(u16, &'static str, Failure, &str); 5] = [
        (
            500,
            r#"{"error":"internal","message":"boom"}"#,
            Failure::Retryable,
            "服务器暂时无法处理",
        ),
        (
            503,
            "<html>bad gateway</html>",
            Failure::Retryable,
            "服务器暂时无法处理",
        ),
        (
            429,
            r#"{"error":"rate_limited","message":"slow down"}"#,
            Failure::Retryable,
            "服务器暂时无法处理",
        ),
        (
            426,
            r#"{"error":"upgrade","message":"protocol 9","expected":9}"#,
            Failure::NeedsUpdate,
            "服务器需要更新版本的应用",
        ),
        (
            200,
            "this is not json",
            Failure::Retryable,
            "服务器暂时无法处理",
        ),
    ];
    for (status, body, kind, zh) in cases {
        let url = answering(status, body).await;
        store.lock().unwrap().set_meta(SERVER_URL, &url).unwrap();
        let e = port
            .sync(store.clone(), Box::new(|_| {}))
            .await
            .unwrap_err();
        assert_eq!(e.kind, kind, "{status} {body}: {e:?}");
        assert!(e.message.starts_with(zh), "{status}: {}", e.message);
        assert_eq!(
            store.lock().unwrap().outbox_len().unwrap(),
            2,
            "{status}: nothing lost"
        );
    }
    // Back to the real server: each queued entry goes up once.
    store.lock().unwrap().set_meta(SERVER_URL, &real).unwrap();
    port.sync(store.clone(), Box::new(|_| {})).await.unwrap();
    assert_eq!(store.lock().unwrap().outbox_len().unwrap(), 0);
    on_server_once(&server, &queued).await;
}
