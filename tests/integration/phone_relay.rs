//! The phone at its village office: a sync goes to the office's relay when one is named and
//! answers its ping, to the county otherwise or when the relay turns it away (401, 503), the
//! session untouched; entries the relay holds (`held_through`) stay in the outbox, are not
//! sent to the relay again, and leave it with the county's acknowledgement, nothing doubled.
//!
//! The relay here is a tiny stand-in in front of a real county server: it passes every
//! request on to the county, but, as told, turns requests away or holds pushes itself.

use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use chrono::Utc;
use gridwalk::client::SyncError;
use gridwalk::store::feedback::Unsent;
use gridwalk::store::remote::TOKEN;
use gridwalk::wire::{Lane, PROTOCOL_HEADER, PROTOCOL_VERSION};

use crate::sync::e2e_hazard as hazard;
use crate::sync::util::{Backend, Device, TestServer, api_client};

/// What the stand-in relay does with a request other than its ping.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// Passes it on to the county.
    Pass,
    /// Answers with this status (401: the session is not known here yet; 503: not mirrored).
    Refuse(u16),
    /// Pushes are kept here and answered as held; everything else passes.
    Hold,
    /// The connection drops without an answer (the office's network went away mid-sync);
    /// with `ping` too, the relay is gone altogether.
    Drop { ping: bool },
}

#[derive(Clone)]
struct Relay {
    county: String,
    mode: Arc<Mutex<Mode>>,
    /// The sequence numbers of every entry pushed to the relay, in order.
    pushes: Arc<Mutex<Vec<u64>>>,
    /// The entries held here, as pushed (to forward to the county later).
    held: Arc<Mutex<Vec<serde_json::Value>>>,
    http: reqwest::Client,
}

impl Relay {
    async fn start(county: &str, mode: Mode) -> (Relay, String) {
        let relay = Relay {
            county: county.to_owned(),
            mode: Arc::new(Mutex::new(mode)),
            pushes: Arc::default(),
            held: Arc::default(),
            http: reqwest::Client::new(),
        };
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(relay.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (relay, url)
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn pushed_seqs(&self) -> Vec<u64> {
        self.pushes.lock().unwrap().clone()
    }
}

async fn handle(
    State(relay): State<Relay>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mode = *relay.mode.lock().unwrap();
    let json = |status: u16, v: serde_json::Value| {
        Response::builder()
            .status(status)
            .header(PROTOCOL_HEADER, PROTOCOL_VERSION)
            .header("content-type", "application/json")
            .body(Body::from(v.to_string()))
            .unwrap()
    };
    if let Mode::Drop { ping } = mode
        && (ping || path != "/api/v1/ping")
    {
        // A panicking handler ends the connection without an answer.
        std::panic::resume_unwind(Box::new("the office's network went away"));
    }
    if path != "/api/v1/ping" {
        if let Mode::Refuse(status) = mode {
            return json(
                status,
                serde_json::json!({"error": "relay", "message": "村办中转站尚未就绪"}),
            );
        }
        if path == "/api/v1/sync/push" {
            let raw = if headers.get("content-encoding").is_some() {
                let mut out = Vec::new();
                std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut out)
                    .unwrap();
                out
            } else {
                body.to_vec()
            };
            let push: serde_json::Value = serde_json::from_slice(&raw).unwrap();
            let lane = push["lane"].as_str().unwrap().to_owned();
            let seqs: Vec<u64> = push["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_u64().unwrap())
                .collect();
            relay.pushes.lock().unwrap().extend(&seqs);
            if mode == Mode::Hold && !seqs.is_empty() {
                relay.held.lock().unwrap().push(push);
                return json(
                    200,
                    serde_json::json!({
                        "lane": lane, "acked_through": 0, "queued": seqs.len(), "replayed": 0,
                        "held_through": seqs.last(),
                    }),
                );
            }
        }
    }
    // On to the county, as the phone asked.
    let mut req = relay
        .http
        .request(method, format!("{}{path}", relay.county))
        .body(body);
    for (name, value) in &headers {
        if name != "host" && name != "accept-encoding" && name != "content-length" {
            req = req.header(name, value);
        }
    }
    let res = req.send().await.unwrap();
    let mut out = Response::builder().status(res.status().as_u16());
    for (name, value) in res.headers() {
        if name != "content-encoding" && name != "content-length" && name != "transfer-encoding" {
            out = out.header(name, value);
        }
    }
    out.body(Body::from(res.bytes().await.unwrap())).unwrap()
}

async fn phone(server: &TestServer) -> Device {
    Device::enrol(server, "worker-a").await
}

fn set_relay(d: &Device, url: &str) {
    d.with(|s| s.set_relay_url(Some(url))).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_does_not_answer_leaves_the_sync_to_the_county() {
    let server = TestServer::start(Backend::Sqlite).await;
    let d = phone(&server).await;
    let grid = server.county.grids[0].grid.id;
    // Nothing listens there (the phone is away from the office).
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    set_relay(&d, &url);
    let h = hazard(grid);
    d.with(|s| s.create_record(&h, Utc::now())).unwrap();
    let sum = d.sync().await;
    assert!(!sum.via_relay);
    assert_eq!((sum.pushed, sum.held), (1, 0));
    assert_eq!(d.with(|s| s.outbox_len()).unwrap(), 0);
    assert!(server.entity(h.common.id).await.is_some());
    assert_eq!(d.with(|s| s.last_sync_via_relay()).unwrap(), Some(false));

    // One that accepts the connection but never answers: after its short wait, the county.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    set_relay(&d, &format!("http://{}", silent.local_addr().unwrap()));
    let started = std::time::Instant::now();
    let sum = d.sync().await;
    assert!(!sum.via_relay);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the relay's ping waits {:?} at most",
        gridwalk::client::RELAY_PROBE_TIMEOUT
    );
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_does_not_know_the_session_yet_leaves_the_sync_to_the_county() {
    let server = TestServer::start(Backend::Sqlite).await;
    let d = phone(&server).await;
    let grid = server.county.grids[0].grid.id;
    let (relay, url) = Relay::start(&server.url, Mode::Refuse(401)).await;
    set_relay(&d, &url);
    let token = d.with(|s| s.meta(TOKEN)).unwrap();
    let h = hazard(grid);
    d.with(|s| s.create_record(&h, Utc::now())).unwrap();
    // 401 at the relay: the county takes the sync; the session is not ended.
    let sum = d.sync().await;
    assert!(!sum.via_relay);
    assert_eq!(sum.pushed, 1);
    assert!(server.entity(h.common.id).await.is_some());
    assert_eq!(d.with(|s| s.meta(TOKEN)).unwrap(), token);
    assert_eq!(d.with(|s| s.last_sync_via_relay()).unwrap(), Some(false));
    // 503 (not mirrored yet): the same, at once.
    relay.set(Mode::Refuse(503));
    let h2 = hazard(grid);
    d.with(|s| s.create_record(&h2, Utc::now())).unwrap();
    let sum = d.sync().await;
    assert!(!sum.via_relay);
    assert!(server.entity(h2.common.id).await.is_some());
    // Once the relay knows the session, the sync stays there.
    relay.set(Mode::Pass);
    let h3 = hazard(grid);
    d.with(|s| s.create_record(&h3, Utc::now())).unwrap();
    let sum = d.sync().await;
    assert!(sum.via_relay);
    assert_eq!(d.with(|s| s.last_sync_via_relay()).unwrap(), Some(true));
    assert!(server.entity(h3.common.id).await.is_some());
    assert_eq!(d.with(|s| s.outbox_len()).unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_held_at_the_relay_leave_the_outbox_with_the_countys_acknowledgement() {
    let server = TestServer::start(Backend::Sqlite).await;
    let d = phone(&server).await;
    let grid = server.county.grids[0].grid.id;
    let (relay, url) = Relay::start(&server.url, Mode::Hold).await;
    set_relay(&d, &url);
    let (a, b) = (hazard(grid), hazard(grid));
    d.with(|s| s.create_record(&a, Utc::now())).unwrap();
    d.with(|s| s.create_record(&b, Utc::now())).unwrap();

    // At the office: both held there, still in the outbox, 已交村办; the county has neither.
    let sum = d.sync().await;
    assert!(sum.via_relay);
    assert_eq!(sum.held, 2);
    assert_eq!(
        d.with(|s| (s.outbox_len().unwrap(), s.held_len().unwrap())),
        (2, 2)
    );
    let states = d.with(|s| s.unsent_states()).unwrap();
    assert_eq!(states.get(&a.common.id), Some(&Unsent::Held));
    assert!(server.entity(a.common.id).await.is_none());

    // A third record, synced at the office again: only it goes to the relay.
    let c = hazard(grid);
    d.with(|s| s.create_record(&c, Utc::now())).unwrap();
    let sum = d.sync().await;
    assert!(sum.via_relay);
    assert_eq!(
        relay.pushed_seqs(),
        vec![1, 2, 3],
        "nothing sent to the relay twice"
    );
    assert_eq!(d.with(|s| s.held_len()).unwrap(), 3);

    // The relay forwards the first push to the county (as the phone made it).
    let first = relay.held.lock().unwrap()[0].clone();
    let token = d.with(|s| s.meta(TOKEN)).unwrap().unwrap();
    let res = api_client()
        .post(format!("{}/api/v1/sync/push", server.url))
        .bearer_auth(&token)
        .json(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    server.applied().await;
    assert!(server.entity(a.common.id).await.is_some());

    // Next day, away from the office: the county gets everything waiting, held or not; the
    // two it already has are answered as received, so nothing doubles, and the outbox empties.
    relay.set(Mode::Refuse(503));
    let sum = d.sync().await;
    assert!(!sum.via_relay);
    assert_eq!(
        d.with(|s| (s.outbox_len().unwrap(), s.held_len().unwrap())),
        (0, 0)
    );
    assert!(d.with(|s| s.unsent_states()).unwrap().is_empty());
    for r in [&a, &b, &c] {
        assert!(server.entity(r.common.id).await.is_some());
    }
    let (entities, history) = server
        .read(move |db| {
            let ids = [a.common.id, b.common.id, c.common.id].map(|i| i.to_string());
            let mut n = |sql: &str| -> Result<i64, gridwalk::server::db::DbError> {
                db.query_one(
                    sql,
                    &[
                        ids[0].clone().into(),
                        ids[1].clone().into(),
                        ids[2].clone().into(),
                    ],
                )?[0]
                    .i64()
            };
            Ok((
                n("SELECT count(*) FROM entities WHERE id IN ($1, $2, $3)")?,
                n("SELECT count(*) FROM status_history WHERE record_id IN ($1, $2, $3)")?,
            ))
        })
        .await;
    assert_eq!(entities, 3, "each record once at the county");
    assert!(
        history <= 3,
        "no record filed twice: {history} status changes"
    );
    let watermark = server
        .read(|db| db.query_one("SELECT max(seq) FROM watermarks", &[])?[0].i64())
        .await;
    assert_eq!(watermark, 3);
    assert_eq!(d.with(|s| s.outbox_last_seq(Lane::Normal)).unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_gone_mid_sync_fails_that_sync_and_the_next_one_asks_it_then_the_county() {
    let server = TestServer::start(Backend::Sqlite).await;
    let d = phone(&server).await;
    let grid = server.county.grids[0].grid.id;
    let (relay, url) = Relay::start(&server.url, Mode::Drop { ping: false }).await;
    set_relay(&d, &url);
    let token = d.with(|s| s.meta(TOKEN)).unwrap();
    let h = hazard(grid);
    d.with(|s| s.create_record(&h, Utc::now())).unwrap();
    let mut client = d.client();
    client.retry.attempts = 2;
    client.retry.first_delay = std::time::Duration::from_millis(50);
    // Its ping answered, then nothing: the sync fails as offline, nothing marked held, the
    // session kept.
    let e = client.sync(&d.store, |_| {}).await.unwrap_err();
    assert!(matches!(e, SyncError::Offline(_)), "{e:?}");
    assert_eq!(
        d.with(|s| (s.outbox_len().unwrap(), s.held_len().unwrap())),
        (1, 0)
    );
    assert_eq!(d.with(|s| s.meta(TOKEN)).unwrap(), token);
    // Next time the relay does not answer its ping at all: the county, in the same sync.
    relay.set(Mode::Drop { ping: true });
    let sum = client.sync(&d.store, |_| {}).await.unwrap();
    assert!(!sum.via_relay);
    assert_eq!(d.with(|s| s.outbox_len()).unwrap(), 0);
    assert!(server.entity(h.common.id).await.is_some());
}
