//! The village-office relay (`gridwalk-server relay`): a relay on 127.0.0.1:0 over its own
//! SQLite database, with devices talking raw HTTP to it. Without the county (its address a
//! closed port): pushes are held and answered with `held_through`, pulls are served from the
//! mirror under the county's generation, sign-ins are 503, and the status says the uplink is
//! down. With a real county: the relay mirrors, forwards held entries once, brings the county's
//! answers down, and a direct push of the same entries afterwards is replayed; photos left at
//! the office reach the county whole (through a link cut mid-photo), and the phone then sends
//! the county none of their bytes.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use gridwalk::demo::County;
use gridwalk::domain::codes::*;
use gridwalk::domain::model::*;
use gridwalk::server::db::{Database, Sql};
use gridwalk::server::relay::{self, Relay, mirror};
use gridwalk::server::{auth, demo, repo};
use gridwalk::wire::relay::{MirrorPage, RelayStatus};
use gridwalk::wire::{
    ApiError, GENERATION_HEADER, Lane, Op, OutboxEntry, PullResponse, PushRequest, PushResponse,
    Role,
};
use sha2::Digest;
use uuid::Uuid;

use crate::sync::util::{TestServer, api_client, tiny_spec};

/// The relay's account at the county.
pub(crate) const RELAY_USER: &str = "relay-village-1";
pub(crate) const RELAY_PASSWORD: &str = "relay-password-1";

struct TestRelay {
    url: String,
    relay: Arc<Relay>,
    db: Database,
    _dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl TestRelay {
    /// A relay on 127.0.0.1:0 over a fresh database, its county at `upstream`, syncing every
    /// `every`; `prepare` runs on its database before it starts.
    async fn start(
        upstream: &str,
        every: Duration,
        prepare: impl FnOnce(&mut dyn Sql) + Send + 'static,
    ) -> TestRelay {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.db").display().to_string();
        let db = tokio::task::spawn_blocking(move || {
            let db = Database::open(&path).unwrap();
            db.migrate().unwrap();
            db.tx(|tx| -> Result<(), gridwalk::server::db::DbError> {
                prepare(tx);
                Ok(())
            })
            .unwrap();
            db
        })
        .await
        .unwrap();
        let relay = Relay::new(
            db.clone(),
            relay::Config {
                upstream: upstream.to_owned(),
                user: RELAY_USER.into(),
                password: RELAY_PASSWORD.into(),
                advertise: Some("http://192.168.1.10:8090".into()),
                every,
            },
        )
        .unwrap();
        relay.start();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(relay::serve(relay.clone(), listener, async {
            let _ = rx.await;
        }));
        TestRelay {
            url,
            relay,
            db,
            _dir: dir,
            shutdown: Some(tx),
        }
    }

    async fn status(&self) -> RelayStatus {
        reqwest::get(format!("{}/status.json", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn tx<R: Send + 'static>(&self, f: impl FnOnce(&mut dyn Sql) -> R + Send + 'static) -> R {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            db.tx(|tx| -> Result<R, gridwalk::server::db::DbError> { Ok(f(tx)) })
                .unwrap()
        })
        .await
        .unwrap()
    }
}

/// An address where nothing answers (a county out of reach).
pub(crate) fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

/// The demo county's rows and accounts in a database, as a mirror would hold them, and a
/// session of `worker-a` on a new device: its token and device id.
fn seed_as_mirrored(db: &mut dyn Sql, county: &County) -> (String, Uuid) {
    demo::seed(db, county, Utc::now()).unwrap();
    session(db, "worker-a")
}

/// A session of `username` on a new device, as the county's would be mirrored.
fn session(db: &mut dyn Sql, username: &str) -> (String, Uuid) {
    let (user, _) = repo::user_by_name(db, username).unwrap().unwrap();
    let (token, device, now) = (Uuid::now_v7().to_string(), Uuid::now_v7(), Utc::now());
    assert!(repo::enrol_device(db, device, username, now).unwrap());
    repo::create_session(
        db,
        &auth::token_hash(&token),
        user.id,
        device,
        now,
        now + chrono::Duration::days(30),
        now + chrono::Duration::days(180),
    )
    .unwrap();
    (token, device)
}

/// A mirror page with nothing but the county's generation and cursor.
fn empty_page(generation: &str, cursor: i64) -> MirrorPage {
    MirrorPage {
        generation: generation.into(),
        cursor,
        more: false,
        entities: vec![],
        histories: vec![],
        rejections: vec![],
        accounts: vec![],
        sessions: vec![],
        devices: vec![],
        watermarks: vec![],
        settings: vec![],
    }
}

fn hazard_entry(seq: u64, grid: Uuid) -> OutboxEntry {
    let h = Hazard {
        common: Common::new(Domain::Hazard, grid, "worker-a", Utc::now()),
        category: HazardCategory::Fire,
        severity: Severity::Low,
        description: "柴草堆靠近灶台".into(),
        place: String::new(),
        owner: None,
        due_date: None,
    };
    let serde_json::Value::Object(fields) = serde_json::to_value(&h).unwrap() else {
        unreachable!()
    };
    OutboxEntry {
        lane: Lane::Normal,
        seq,
        kind: EntityKind::Hazard,
        record_id: h.common.id,
        op: Op::Create,
        fields,
        base_version: 0,
        edited_at: Utc::now(),
    }
}

async fn push(
    url: &str,
    token: &str,
    device: Uuid,
    entries: Vec<OutboxEntry>,
) -> (u16, serde_json::Value) {
    push_at(url, token, device, entries, Utc::now()).await
}

/// A push from a device whose clock says `device_now`.
async fn push_at(
    url: &str,
    token: &str,
    device: Uuid,
    entries: Vec<OutboxEntry>,
    device_now: chrono::DateTime<Utc>,
) -> (u16, serde_json::Value) {
    let req = PushRequest {
        device_id: device,
        lane: Lane::Normal,
        device_now,
        entries,
    };
    let res = api_client()
        .post(format!("{url}/api/v1/sync/push"))
        .bearer_auth(token)
        .json(&req)
        .send()
        .await
        .unwrap();
    let st = res.status().as_u16();
    (st, res.json().await.unwrap_or_default())
}

fn answer(v: serde_json::Value) -> PushResponse {
    serde_json::from_value(v).unwrap()
}

/// A pull page at `url` from `cursor`: status, generation header, page.
async fn pull(url: &str, token: &str, cursor: i64) -> (u16, Option<String>, Option<PullResponse>) {
    let res = api_client()
        .get(format!("{url}/api/v1/sync/pull?cursor={cursor}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let st = res.status().as_u16();
    let generation = res
        .headers()
        .get(GENERATION_HEADER)
        .map(|v| v.to_str().unwrap().to_owned());
    let page = if st == 200 {
        Some(res.json().await.unwrap())
    } else {
        let e: ApiError = res.json().await.unwrap();
        assert!(!e.message.is_empty());
        None
    };
    (st, generation, page)
}

async fn sign_in(url: &str, username: &str) -> reqwest::Response {
    api_client()
        .post(format!("{url}/api/v1/auth/login"))
        .json(&serde_json::json!({
            "username": username, "password": demo::DEMO_PASSWORD, "device_id": Uuid::now_v7(),
        }))
        .send()
        .await
        .unwrap()
}

/// Waits until `f` holds, at most 30 s.
pub(crate) async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut f: impl FnMut() -> F,
) {
    for _ in 0..300 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within 30 s: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_its_first_mirror_page_the_relay_answers_pulls_503() {
    let county = County::generate(&tiny_spec());
    let (tx, rx) = std::sync::mpsc::channel();
    let r = TestRelay::start(&closed_port(), Duration::from_secs(3600), move |db| {
        tx.send(seed_as_mirrored(db, &county)).unwrap();
    })
    .await;
    let (token, _) = rx.recv().unwrap();
    let res = api_client()
        .get(format!("{}/api/v1/sync/pull?cursor=0", r.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 503);
    let e: ApiError = res.json().await.unwrap();
    assert_eq!(e.error, "unavailable");
    assert!(
        e.message.starts_with("中转站尚未与县里同步"),
        "{}",
        e.message
    );
    // The stream too.
    let res = api_client()
        .get(format!("{}/api/v1/sync/pull/stream?cursor=0", r.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_county_out_of_reach_pushes_are_held_and_pulls_served_from_the_mirror() {
    let county = County::generate(&tiny_spec());
    let grid = county.grids[0].grid.id;
    let (tx, rx) = std::sync::mpsc::channel();
    let r = TestRelay::start(&closed_port(), Duration::from_secs(3600), move |db| {
        mirror::apply_page(db, &empty_page("county-generation-1", 0)).unwrap();
        tx.send(seed_as_mirrored(db, &county)).unwrap();
    })
    .await;
    let (token, device) = rx.recv().unwrap();

    // Held: nothing acknowledged by the county, everything held.
    let entries: Vec<OutboxEntry> = (1..=3).map(|s| hazard_entry(s, grid)).collect();
    let (st, v) = push(&r.url, &token, device, entries.clone()).await;
    assert_eq!(st, 200, "{v}");
    let a = answer(v);
    assert_eq!(
        (a.acked_through, a.queued, a.replayed, a.held_through),
        (0, 3, 0, Some(3))
    );
    // Again: already held, replayed.
    let (st, v) = push(&r.url, &token, device, entries.clone()).await;
    assert_eq!(st, 200);
    let a = answer(v);
    assert_eq!((a.queued, a.replayed, a.held_through), (0, 3, Some(3)));
    // A gap is answered as the county would.
    let (st, v) = push(&r.url, &token, device, vec![hazard_entry(5, grid)]).await;
    assert_eq!(st, 409, "{v}");
    let e: ApiError = serde_json::from_value(v).unwrap();
    assert_eq!((e.error.as_str(), e.expected), ("gap", Some(4)));
    // The whole outbox again with one more: one new.
    let mut more = entries.clone();
    more.push(hazard_entry(4, grid));
    let a = answer(push(&r.url, &token, device, more).await.1);
    assert_eq!((a.queued, a.replayed, a.held_through), (1, 3, Some(4)));
    // Another device's id with this session: refused as the county refuses it.
    let (st, _) = push(&r.url, &token, Uuid::now_v7(), vec![hazard_entry(1, grid)]).await;
    assert_eq!(st, 403);
    // An unknown token.
    let (st, _) = push(&r.url, "no-such-token", device, vec![]).await;
    assert_eq!(st, 401);

    // Pulls from the mirror, under the county's generation.
    let (st, generation, page) = pull(&r.url, &token, 0).await;
    assert_eq!(st, 200);
    assert_eq!(generation.as_deref(), Some("county-generation-1"));
    let page = page.unwrap();
    assert!(!page.changes.is_empty());
    // A cursor ahead of the mirror: nothing, and the cursor kept.
    let (st, _, page) = pull(&r.url, &token, 1_000_000_000).await;
    assert_eq!(st, 200);
    let page = page.unwrap();
    assert!(page.changes.is_empty() && !page.more);
    assert_eq!(page.cursor, 1_000_000_000);
    // The streamed pull too, without waiting for the held entries.
    let started = std::time::Instant::now();
    let res = api_client()
        .get(format!("{}/api/v1/sync/pull/stream?cursor=0", r.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.headers().get(GENERATION_HEADER).unwrap(),
        "county-generation-1"
    );
    let body = res.text().await.unwrap();
    assert!(body.lines().count() >= 1);
    assert!(started.elapsed() < Duration::from_secs(5));
    // The account, from the mirror.
    let me: gridwalk::wire::Account = api_client()
        .get(format!("{}/api/v1/me", r.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me.username, "worker-a");

    // A photo an entry named: uploaded here resumably, checked on completion.
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0];
    jpeg.extend((0..2000u32).map(|i| (i % 251) as u8));
    let sha = hex::encode(sha2::Sha256::digest(&jpeg));
    let photo = OutboxEntry {
        lane: Lane::Normal,
        seq: 5,
        kind: EntityKind::Photo,
        record_id: Uuid::now_v7(),
        op: Op::Append,
        fields: serde_json::from_value(serde_json::json!({
            "record_id": entries[0].record_id, "sha256": sha, "size": jpeg.len(), "mime": "image/jpeg",
        }))
        .unwrap(),
        base_version: 0,
        edited_at: Utc::now(),
    };
    let other_sha = hex::encode(sha2::Sha256::digest(b"not named"));
    let head = |sha: String| {
        let (url, token) = (r.url.clone(), token.clone());
        async move {
            api_client()
                .head(format!("{url}/api/v1/photos/{sha}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(head(sha.clone()).await.status().as_u16(), 404);
    let a = answer(push(&r.url, &token, device, vec![photo]).await.1);
    assert_eq!(a.held_through, Some(5));
    let h = head(sha.clone()).await;
    assert_eq!(h.status().as_u16(), 200);
    assert_eq!(h.headers()["upload-offset"], "0");
    assert_eq!(head(other_sha).await.status().as_u16(), 404);
    let put = |offset: usize, bytes: Vec<u8>| {
        let (url, token, sha) = (r.url.clone(), token.clone(), sha.clone());
        async move {
            api_client()
                .put(format!("{url}/api/v1/photos/{sha}?offset={offset}"))
                .bearer_auth(token)
                .body(bytes)
                .send()
                .await
                .unwrap()
        }
    };
    let res = put(0, jpeg[..1000].to_vec()).await;
    assert_eq!(res.headers()["upload-offset"], "1000");
    assert_eq!(put(0, jpeg[..10].to_vec()).await.status().as_u16(), 409);
    let res = put(1000, jpeg[1000..].to_vec()).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["upload-complete"], "1");

    // Sign-in needs the county.
    let res = sign_in(&r.url, "worker-a").await;
    assert_eq!(res.status().as_u16(), 503);
    let e: ApiError = res.json().await.unwrap();
    assert!(
        e.message.starts_with("登录需要连接县里服务器"),
        "{}",
        e.message
    );
    // The edge is the county's: unknown routes, a missing protocol header.
    let res = api_client()
        .get(format!("{}/api/v1/records", r.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
    assert_eq!(res.json::<ApiError>().await.unwrap().error, "not_found");
    let res = reqwest::Client::new()
        .get(format!("{}/api/v1/sync/pull", r.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 426);
    let res = api_client()
        .get(format!("{}/api/v1/ping", r.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 204);

    // The status says the county is out of reach and what waits.
    eventually("a failed round", || {
        let r = r.relay.clone();
        async move { r.status().await.unwrap().last_error.is_some() }
    })
    .await;
    let s = r.status().await;
    assert!(!s.uplink_up);
    assert_eq!((s.waiting_entries, s.waiting_photos), (5, 1));
    assert_eq!(s.devices_seen_today, 1);
    assert!(s.last_upstream_sync.is_none());
    assert!(s.last_error.unwrap().starts_with("县里服务器暂时连不上"));
    let res = reqwest::get(format!("{}/", r.url)).await.unwrap();
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'none'"), "{csp}");
    let page = res.text().await.unwrap();
    assert!(page.contains("未连接") && page.contains("5 条"), "{page}");
    assert!(!page.contains("<script") && !page.contains("style="));
}

/// A relay account at the county for the village of `worker-a`'s first grid.
pub(crate) async fn relay_account(server: &TestServer) {
    let village = server.county.grids[0].grid.code.village().to_owned();
    let hash = auth::hash_password(RELAY_PASSWORD).unwrap();
    let db = server.db.clone();
    tokio::task::spawn_blocking(move || {
        db.tx(|tx| {
            repo::create_user(
                tx,
                &repo::NewUser {
                    username: RELAY_USER.into(),
                    display_name: "一村村办".into(),
                    role: Role::Relay,
                    scope_code: village,
                    password_hash: hash,
                    grids: vec![],
                },
                Utc::now(),
            )
        })
        .unwrap()
    })
    .await
    .unwrap();
}

/// The whole way round with a real county (its relay routes and mirror): the relay
/// mirrors, a sign-in through it works there at once, entries pushed there reach the county
/// once, the county's reply comes down at the relay, and the county's acknowledgement is
/// relayed; then the county goes away and the relay goes on holding and serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_mirrors_forwards_once_and_brings_the_countys_answers() {
    let server = TestServer::start(crate::sync::util::Backend::Sqlite).await;
    relay_account(&server).await;
    let grid = server.county.grids[0].grid.id;
    let r = TestRelay::start(&server.url, Duration::from_secs(3600), |_| {}).await;
    eventually("the first mirror", || {
        let r = r.relay.clone();
        async move { r.status().await.unwrap().last_upstream_sync.is_some() }
    })
    .await;
    assert!(r.status().await.uplink_up);

    // Signed in through the relay; the token works here at once.
    let res = sign_in(&r.url, "worker-a").await;
    assert_eq!(res.status().as_u16(), 200);
    let login: gridwalk::wire::LoginResponse = res.json().await.unwrap();
    let device = r
        .tx(|db| {
            db.query_one(
                "SELECT device_id FROM devices WHERE username = 'worker-a'",
                &[],
            )
            .unwrap()[0]
                .string()
                .unwrap()
        })
        .await;
    let device = Uuid::parse_str(&device).unwrap();
    let (st, generation, _) = pull(&r.url, &login.token, 0).await;
    assert_eq!(st, 200);
    let county_generation = server
        .read(|db| repo::get_setting(db, repo::GENERATION))
        .await
        .unwrap();
    assert_eq!(generation, Some(county_generation));

    // Pushed at the relay: held, then forwarded; the county has each entry once.
    let entries: Vec<OutboxEntry> = (1..=2).map(|s| hazard_entry(s, grid)).collect();
    let a = answer(push(&r.url, &login.token, device, entries.clone()).await.1);
    assert_eq!((a.queued, a.held_through), (2, Some(2)));
    assert!(r.relay.round_now(Duration::from_secs(20)).await);
    server.applied().await;
    for e in &entries {
        assert!(server.entity(e.record_id).await.is_some());
    }
    assert_eq!(r.status().await.waiting_entries, 0);
    // The county answers one of them; the answer comes down at the relay.
    let clerk = server.login("secretary").await;
    let id = entries[0].record_id;
    let res = api_client()
        .post(format!("{}/api/v1/records/{id}/replies", server.url))
        .bearer_auth(&clerk.token)
        .json(&serde_json::json!({"text": "已收到，明天来看"}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    assert!(r.relay.round_now(Duration::from_secs(20)).await);
    let (_, _, page) = pull(&r.url, &login.token, 0).await;
    let page = page.unwrap();
    assert!(
        page.changes
            .iter()
            .any(|c| c.kind == EntityKind::Reply && c.data.to_string().contains("明天来看")),
        "the county's reply at the relay"
    );
    // Pushed at the relay again: the county's acknowledgement, relayed.
    let a = answer(push(&r.url, &login.token, device, entries.clone()).await.1);
    assert_eq!((a.acked_through, a.replayed), (2, 2));
    // Pushed straight to the county afterwards: replayed there too.
    let (st, v) = push(&server.url, &login.token, device, entries.clone()).await;
    assert_eq!(st, 200, "{v}");
    let a = answer(v);
    assert_eq!((a.queued, a.replayed, a.acked_through), (0, 2, 2));

    // The county goes away: pushes held, pulls served, status down; back: forwarded.
    let upstream = server.url.clone();
    drop(server);
    let held = vec![hazard_entry(3, grid)];
    let a = answer(push(&r.url, &login.token, device, held.clone()).await.1);
    assert_eq!((a.acked_through, a.held_through), (2, Some(3)));
    assert!(r.relay.round_now(Duration::from_secs(20)).await);
    assert!(!r.status().await.uplink_up);
    assert_eq!(pull(&r.url, &login.token, 0).await.0, 200);
    assert_eq!(r.status().await.waiting_entries, 1);
    let _ = upstream;
}

/// A county as far as the relay's link sees it: sign-in, mirror pages (the county's
/// generation and the village's accounts as the relay's database holds them) and forwarded
/// pushes, recorded and answered by a watermark per device lane as the county answers; it can
/// be out of reach (503), revoke the relay's token, or lose entries (a restore).
#[derive(Default)]
struct FakeCounty {
    down: bool,
    token: Option<String>,
    logins: u32,
    advertised: Option<String>,
    /// Each forwarded push: device, sequence numbers, device_now.
    pushes: Vec<(Uuid, Vec<u64>, chrono::DateTime<Utc>)>,
    watermarks: std::collections::HashMap<Uuid, u64>,
    page: Option<MirrorPage>,
}

type Fake = Arc<std::sync::Mutex<FakeCounty>>;

async fn fake_county(fake: Fake) -> String {
    use axum::extract::{Query, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::{get, post};
    use axum::{Json, Router};
    fn refused(status: u16, error: &str, expected: Option<u64>) -> axum::response::Response {
        let body = ApiError {
            error: error.into(),
            message: error.into(),
            field: None,
            expected,
        };
        (StatusCode::from_u16(status).unwrap(), Json(body)).into_response()
    }
    fn authorized(f: &FakeCounty, h: &HeaderMap) -> bool {
        let sent = h
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        f.token.is_some() && sent == f.token.as_deref()
    }
    let app = Router::new()
        .route(
            "/api/v1/auth/login",
            post(
                |State(f): State<Fake>, Json(req): Json<gridwalk::wire::LoginRequest>| async move {
                    let mut f = f.lock().unwrap();
                    if f.down {
                        return refused(503, "unavailable", None);
                    }
                    assert_eq!(
                        (req.username.as_str(), req.password.as_str()),
                        (RELAY_USER, RELAY_PASSWORD)
                    );
                    f.logins += 1;
                    let token = format!("relay-token-{}", f.logins);
                    f.token = Some(token.clone());
                    Json(gridwalk::wire::LoginResponse {
                        token,
                        expires_at: Utc::now(),
                        ends_at: None,
                        account: gridwalk::wire::Account {
                            username: RELAY_USER.into(),
                            display_name: "一村村办".into(),
                            role: Role::Relay,
                            scope_code: "360102001001".into(),
                            grids: vec![],
                            relay_url: None,
                        },
                        protocol: gridwalk::wire::PROTOCOL_VERSION,
                    })
                    .into_response()
                },
            ),
        )
        .route(
            "/api/v1/relay/mirror",
            get(
                |State(f): State<Fake>,
                 h: HeaderMap,
                 Query(q): Query<std::collections::HashMap<String, String>>| async move {
                    let mut f = f.lock().unwrap();
                    if f.down {
                        return refused(503, "unavailable", None);
                    }
                    if !authorized(&f, &h) {
                        return refused(401, "unauthorized", None);
                    }
                    f.advertised = q.get("advertise").cloned();
                    Json(f.page.clone().unwrap()).into_response()
                },
            ),
        )
        .route(
            "/api/v1/relay/push",
            post(
                |State(f): State<Fake>,
                 h: HeaderMap,
                 Json(req): Json<PushRequest<gridwalk::wire::RawFields>>| async move {
                    let mut f = f.lock().unwrap();
                    if f.down {
                        return refused(503, "unavailable", None);
                    }
                    if !authorized(&f, &h) {
                        return refused(401, "unauthorized", None);
                    }
                    let wm = f.watermarks.get(&req.device_id).copied().unwrap_or(0);
                    let seqs: Vec<u64> = req.entries.iter().map(|e| e.seq).collect();
                    let fresh: Vec<u64> = seqs.iter().copied().filter(|s| *s > wm).collect();
                    if let Some(first) = fresh.first()
                        && *first != wm + 1
                    {
                        return refused(409, "gap", Some(wm + 1));
                    }
                    f.pushes
                        .push((req.device_id, fresh.clone(), req.device_now));
                    let acked = fresh.last().copied().unwrap_or(wm).max(wm);
                    f.watermarks.insert(req.device_id, acked);
                    Json(PushResponse {
                        lane: req.lane,
                        acked_through: acked,
                        queued: fresh.len() as u32,
                        replayed: (seqs.len() - fresh.len()) as u32,
                        held_through: None,
                    })
                    .into_response()
                },
            ),
        )
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// The village's accounts, sessions and devices as a mirror page carries them, read from a
/// database that holds them.
fn page_of(db: &mut dyn Sql, generation: &str, cursor: i64) -> MirrorPage {
    use gridwalk::wire::relay::{MirrorAccount, MirrorDevice, MirrorSession};
    let mut page = empty_page(generation, cursor);
    let (user, _) = repo::user_by_name(db, "worker-a").unwrap().unwrap();
    page.accounts.push(MirrorAccount {
        id: user.id,
        username: user.username.clone(),
        display_name: user.display_name.clone(),
        role: user.role.code().to_owned(),
        scope_code: user.scope_code.clone(),
        disabled: false,
        created_at: repo::ts(Utc::now()),
        grids: user.grids.iter().map(|g| g.0).collect(),
    });
    for r in db
        .query(
            "SELECT token_hash, device_id, created_at, expires_at, ends_at FROM sessions",
            &[],
        )
        .unwrap()
    {
        page.sessions.push(MirrorSession {
            token_hash: r[0].string().unwrap(),
            user_id: user.id,
            device_id: r[1].string().unwrap(),
            created_at: r[2].string().unwrap(),
            expires_at: r[3].string().unwrap(),
            ends_at: r[4].string().unwrap(),
            revoked: false,
        });
        page.devices.push(MirrorDevice {
            device_id: r[1].string().unwrap(),
            username: "worker-a".into(),
            enrolled_at: r[2].string().unwrap(),
        });
    }
    page
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_forwards_each_entry_once_through_outages_revoked_tokens_and_gaps() {
    let county = County::generate(&tiny_spec());
    let grid = county.grids[0].grid.id;
    let fake: Fake = Default::default();
    let upstream = fake_county(fake.clone()).await;
    let (tx, rx) = std::sync::mpsc::channel();
    let f2 = fake.clone();
    let r = TestRelay::start(&upstream, Duration::from_secs(3600), move |db| {
        mirror::apply_page(db, &empty_page("county-generation-1", 0)).unwrap();
        let s = seed_as_mirrored(db, &county);
        f2.lock().unwrap().page = Some(page_of(db, "county-generation-1", 7));
        // worker-a, its session and device come with the first mirror page.
        for sql in [
            "DELETE FROM sessions",
            "DELETE FROM devices",
            "DELETE FROM user_grids WHERE user_id IN (SELECT id FROM users WHERE username = 'worker-a')",
            "DELETE FROM users WHERE username = 'worker-a'",
        ] {
            db.exec(sql, &[]).unwrap();
        }
        tx.send(s).unwrap();
    })
    .await;
    let (token, device) = rx.recv().unwrap();
    let forwarded = |fake: &Fake| -> Vec<u64> {
        let f = fake.lock().unwrap();
        f.pushes.iter().flat_map(|p| p.1.clone()).collect()
    };
    eventually("the first round", || {
        let r = r.relay.clone();
        async move { r.status().await.unwrap().last_upstream_sync.is_some() }
    })
    .await;
    let s = r.status().await;
    assert!(s.uplink_up, "{s:?}");
    assert_eq!((s.village.as_str(), s.mirror_cursor), ("360102001001", 7));
    assert_eq!(
        fake.lock().unwrap().advertised.as_deref(),
        Some("http://192.168.1.10:8090")
    );

    // Held, forwarded at once with the device's clock as the relay measured it.
    let entries: Vec<OutboxEntry> = (1..=5).map(|s| hazard_entry(s, grid)).collect();
    let behind = Utc::now() - chrono::Duration::hours(1);
    let a = answer(
        push_at(&r.url, &token, device, entries[..3].to_vec(), behind)
            .await
            .1,
    );
    assert_eq!((a.acked_through, a.held_through), (0, Some(3)));
    eventually("forwarded", || {
        let r = r.relay.clone();
        async move { r.status().await.unwrap().waiting_entries == 0 }
    })
    .await;
    assert_eq!(forwarded(&fake), vec![1, 2, 3]);
    let sent_now = fake.lock().unwrap().pushes[0].2;
    let off = (Utc::now() - chrono::Duration::hours(1) - sent_now)
        .num_seconds()
        .abs();
    assert!(
        off < 60,
        "device_now forwarded {off} s off the device's clock"
    );
    // The county's acknowledgement, relayed.
    let a = answer(push(&r.url, &token, device, entries[..3].to_vec()).await.1);
    assert_eq!((a.acked_through, a.replayed, a.queued), (3, 3, 0));

    // The county out of reach: held, the status says so.
    fake.lock().unwrap().down = true;
    let a = answer(push(&r.url, &token, device, entries[..4].to_vec()).await.1);
    assert_eq!((a.acked_through, a.held_through, a.queued), (3, Some(4), 1));
    assert!(r.relay.round_now(Duration::from_secs(20)).await);
    let s = r.status().await;
    assert!(!s.uplink_up);
    assert_eq!(s.waiting_entries, 1);
    assert!(s.last_error.unwrap().starts_with("县里服务器暂时连不上"));
    // Back, with the relay's token revoked meanwhile: signed in again, forwarded once.
    {
        let mut f = fake.lock().unwrap();
        f.down = false;
        f.token = Some("revoked-meanwhile".into());
    }
    assert!(r.relay.round_now(Duration::from_secs(20)).await);
    assert!(r.status().await.uplink_up);
    assert_eq!(r.status().await.waiting_entries, 0);
    assert_eq!(forwarded(&fake), vec![1, 2, 3, 4]);
    assert_eq!(fake.lock().unwrap().logins, 2);

    // The county restored from a backup: it has this device's lane only through 1.
    fake.lock().unwrap().watermarks.insert(device, 1);
    let a = answer(
        push(&r.url, &token, device, vec![entries[4].clone()])
            .await
            .1,
    );
    assert_eq!(a.held_through, Some(5));
    assert!(r.relay.round_now(Duration::from_secs(20)).await);
    // The relay now asks the device for 2 onwards, as the county would.
    let (st, v) = push(&r.url, &token, device, vec![entries[4].clone()]).await;
    assert_eq!(st, 409, "{v}");
    assert_eq!(
        serde_json::from_value::<ApiError>(v).unwrap().expected,
        Some(2)
    );
    let a = answer(push(&r.url, &token, device, entries[1..].to_vec()).await.1);
    assert_eq!(
        (a.acked_through, a.queued, a.replayed, a.held_through),
        (1, 3, 1, Some(5))
    );
    eventually("forwarded after the gap", || {
        let r = r.relay.clone();
        async move { r.status().await.unwrap().waiting_entries == 0 }
    })
    .await;
    assert_eq!(forwarded(&fake), vec![1, 2, 3, 4, 2, 3, 4, 5]);
    let a = answer(push(&r.url, &token, device, entries.clone()).await.1);
    assert_eq!((a.acked_through, a.queued), (5, 0));
}

/// A county behind a switch, as the relay's link sees it: each request passes on to the county
/// while the budget lasts; past it the connection drops without an answer (the county out of
/// reach, or the link cut mid-round).
#[derive(Clone)]
struct Switch {
    county: String,
    budget: Arc<std::sync::atomic::AtomicI64>,
    /// Bytes of `PUT` bodies passed on (photo chunks).
    put_bytes: Arc<std::sync::atomic::AtomicU64>,
    http: reqwest::Client,
}

impl Switch {
    async fn start(county: &str) -> (Switch, String) {
        let switch = Switch {
            county: county.to_owned(),
            budget: Arc::new(std::sync::atomic::AtomicI64::new(i64::MAX)),
            put_bytes: Arc::default(),
            http: reqwest::Client::new(),
        };
        let app = axum::Router::new()
            .fallback(pass)
            .with_state(switch.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (switch, url)
    }

    /// Lets `n` more requests through (`i64::MAX`: all of them).
    fn allow(&self, n: i64) {
        self.budget.store(n, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn pass(
    axum::extract::State(sw): axum::extract::State<Switch>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    if sw.budget.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) <= 0 {
        // A panicking handler ends the connection without an answer.
        std::panic::resume_unwind(Box::new("the county's link went away"));
    }
    if method == axum::http::Method::PUT {
        sw.put_bytes
            .fetch_add(body.len() as u64, std::sync::atomic::Ordering::SeqCst);
    }
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut req = sw
        .http
        .request(method, format!("{}{path}", sw.county))
        .body(body);
    for (name, value) in &headers {
        if name != "host" && name != "accept-encoding" && name != "content-length" {
            req = req.header(name, value);
        }
    }
    let res = req.send().await.unwrap();
    let mut out = axum::response::Response::builder().status(res.status().as_u16());
    for (name, value) in res.headers() {
        if name != "content-encoding" && name != "content-length" && name != "transfer-encoding" {
            out = out.header(name, value);
        }
    }
    out.body(axum::body::Body::from(res.bytes().await.unwrap()))
        .unwrap()
}

/// A JPEG-looking photo of `len` bytes (its content varied by `salt`) and its SHA-256.
fn jpeg_of(len: usize, salt: u8) -> (Vec<u8>, String) {
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0];
    jpeg.extend((0..len as u32 - 4).map(|i| ((i % 251) as u8) ^ salt));
    let sha = hex::encode(sha2::Sha256::digest(&jpeg));
    (jpeg, sha)
}

/// The entry naming a photo of `record`.
fn photo_entry(seq: u64, record: Uuid, sha: &str, size: usize) -> OutboxEntry {
    OutboxEntry {
        lane: Lane::Normal,
        seq,
        kind: EntityKind::Photo,
        record_id: Uuid::now_v7(),
        op: Op::Append,
        fields: serde_json::from_value(serde_json::json!({
            "record_id": record, "sha256": sha, "size": size, "mime": "image/jpeg",
        }))
        .unwrap(),
        base_version: 0,
        edited_at: Utc::now(),
    }
}

/// A photo left at the office while the county is out of reach reaches the county whole and
/// byte for byte, in the phone's chunks from the county's offset (a link cut mid-photo goes on
/// from there next round), as the device that named it: the worker reads it at the county, and
/// the device's own upload there answers it complete (its next direct sync sends no bytes).
/// The relay photo routes answer only a relay account, and only for its village's devices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photos_left_at_the_office_reach_the_county_whole() {
    let server = TestServer::start(crate::sync::util::Backend::Sqlite).await;
    relay_account(&server).await;
    let grid = server.county.grids[0].grid.id;
    let (switch, upstream) = Switch::start(&server.url).await;
    let r = TestRelay::start(&upstream, Duration::from_secs(3600), |_| {}).await;
    eventually("the first mirror", || {
        let r = r.relay.clone();
        async move { r.status().await.unwrap().last_upstream_sync.is_some() }
    })
    .await;
    let res = sign_in(&r.url, "worker-a").await;
    assert_eq!(res.status().as_u16(), 200);
    let login: gridwalk::wire::LoginResponse = res.json().await.unwrap();
    let device = r
        .tx(|db| {
            db.query_one(
                "SELECT device_id FROM devices WHERE username = 'worker-a'",
                &[],
            )
            .unwrap()[0]
                .string()
                .unwrap()
        })
        .await;
    let device = Uuid::parse_str(&device).unwrap();

    // The county goes out of reach; a record and its photo (three of the phone's chunks) are
    // left at the office.
    switch.allow(0);
    let chunk = gridwalk::wire::PHOTO_CHUNK;
    let (jpeg, sha) = jpeg_of(2 * chunk + 1000, 7);
    let hazard = hazard_entry(1, grid);
    let entries = vec![
        hazard.clone(),
        photo_entry(2, hazard.record_id, &sha, jpeg.len()),
    ];
    let a = answer(push(&r.url, &login.token, device, entries).await.1);
    assert_eq!(a.held_through, Some(2));
    let res = api_client()
        .put(format!("{}/api/v1/photos/{sha}?offset=0", r.url))
        .bearer_auth(&login.token)
        .body(jpeg.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["upload-complete"], "1");
    assert!(r.relay.round_now(Duration::from_secs(20)).await);
    let st = r.status().await;
    assert!(!st.uplink_up);
    assert_eq!((st.waiting_entries, st.waiting_photos), (1 + 1, 1));

    // The county answers again, but the link is cut after the push, the photo's HEAD and its
    // first chunk: the county has that chunk, and the relay knows it.
    switch.allow(3);
    assert!(r.relay.round_now(Duration::from_secs(20)).await);
    let county_state = |sha: String| {
        server.read(move |db| {
            Ok(db
                .query_opt(
                    "SELECT received, complete FROM photos WHERE sha256 = $1",
                    gridwalk::args![sha],
                )?
                .map(|r| (r[0].i64().unwrap(), r[1].i64().unwrap())))
        })
    };
    assert_eq!(county_state(sha.clone()).await, Some((chunk as i64, 0)));
    let st = r.status().await;
    assert_eq!((st.waiting_entries, st.waiting_photos), (0, 1));
    let forwarded = r
        .tx({
            let sha = sha.clone();
            move |db| {
                db.query_one(
                    "SELECT forwarded_offset FROM relay_photos WHERE sha256 = $1",
                    gridwalk::args![sha],
                )
                .unwrap()[0]
                    .i64()
                    .unwrap()
            }
        })
        .await;
    assert_eq!(forwarded, chunk as i64);

    // Whole: the rest from the county's offset; the office drops its copy.
    switch.allow(i64::MAX);
    assert!(r.relay.round_now(Duration::from_secs(20)).await);
    assert_eq!(
        county_state(sha.clone()).await,
        Some((jpeg.len() as i64, 1))
    );
    let st = r.status().await;
    assert!(st.uplink_up);
    assert_eq!((st.waiting_entries, st.waiting_photos), (0, 0));
    let chunks_left = r
        .tx(|db| {
            db.query_one("SELECT COUNT(*) FROM relay_photo_chunks", &[])
                .unwrap()[0]
                .i64()
                .unwrap()
        })
        .await;
    assert_eq!(chunks_left, 0);
    // The office still answers the device's upload there as complete.
    let res = api_client()
        .head(format!("{}/api/v1/photos/{sha}", r.url))
        .bearer_auth(&login.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["upload-complete"], "1");
    // The worker reads it at the county, byte for byte.
    let res = api_client()
        .get(format!("{}/api/v1/photos/{sha}", server.url))
        .bearer_auth(&login.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    assert_eq!(res.bytes().await.unwrap().to_vec(), jpeg);
    // The device's own HEAD at the county: complete, so its direct sync sends no bytes.
    let res = api_client()
        .head(format!("{}/api/v1/photos/{sha}", server.url))
        .bearer_auth(&login.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["upload-complete"], "1");
    assert_eq!(res.headers()["upload-offset"], jpeg.len().to_string());

    // The county's relay photo routes: the relay account only, its village's devices only.
    let relay_login =
        gridwalk::client::login(&server.url, RELAY_USER, RELAY_PASSWORD, Uuid::now_v7())
            .await
            .unwrap();
    let relay_photo = |token: String, device: Uuid, sha: String| {
        let url = server.url.clone();
        async move {
            api_client()
                .head(format!("{url}/api/v1/relay/photos/{device}/{sha}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        relay_photo(relay_login.token.clone(), device, sha.clone()).await,
        200
    );
    // A photo no entry of the device named: 404, as the device's own HEAD.
    let (_, unnamed) = jpeg_of(100, 9);
    assert_eq!(
        relay_photo(relay_login.token.clone(), device, unnamed.clone()).await,
        404
    );
    // Another village's device (and a device nobody enrolled): 404, for HEAD and PUT.
    let village = server.county.grids[0].grid.code.village().to_owned();
    let elsewhere = server
        .county
        .grids
        .iter()
        .find(|g| g.grid.code.village() != village)
        .map(|g| g.worker.username.clone())
        .expect("a worker of another village");
    let stranger = server.login(&elsewhere).await;
    let stranger_device = server
        .read({
            let name = elsewhere.clone();
            move |db| {
                db.query_one(
                    "SELECT device_id FROM devices WHERE username = $1 LIMIT 1",
                    gridwalk::args![name],
                )?[0]
                    .string()
            }
        })
        .await;
    let stranger_device = Uuid::parse_str(&stranger_device).unwrap();
    assert_eq!(
        relay_photo(relay_login.token.clone(), stranger_device, sha.clone()).await,
        404
    );
    assert_eq!(
        relay_photo(relay_login.token.clone(), Uuid::now_v7(), sha.clone()).await,
        404
    );
    let res = api_client()
        .put(format!(
            "{}/api/v1/relay/photos/{stranger_device}/{sha}?offset=0",
            server.url
        ))
        .bearer_auth(&relay_login.token)
        .body(jpeg[..10].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
    assert_eq!(res.json::<ApiError>().await.unwrap().error, "not_found");
    // A worker (even the device's own account): 403.
    assert_eq!(
        relay_photo(login.token.clone(), device, sha.clone()).await,
        403
    );
    assert_eq!(
        relay_photo(stranger.token.clone(), device, sha.clone()).await,
        403
    );
    drop(r);
}

/// The phone's own way round: its sync at the office (county out of reach) leaves a record and
/// its photo there, held; the relay forwards both once the county answers; the phone's next
/// sync straight with the county finds the photo complete there and sends no photo bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_whose_photo_the_relay_forwarded_sends_the_county_no_bytes() {
    let server = TestServer::start(crate::sync::util::Backend::Sqlite).await;
    relay_account(&server).await;
    let grid = server.county.grids[0].grid.id;
    let (uplink, upstream) = Switch::start(&server.url).await;
    let r = TestRelay::start(&upstream, Duration::from_secs(3600), |_| {}).await;
    let phone = crate::sync::util::Device::enrol(&server, "worker-a").await;
    // The relay mirrors the phone's session.
    assert!(r.relay.round_now(Duration::from_secs(20)).await);

    uplink.allow(0);
    let (jpeg, _) = jpeg_of(gridwalk::wire::PHOTO_CHUNK + 5000, 3);
    let h = crate::sync::e2e_hazard(grid);
    let sha = phone
        .with(|s| {
            s.create_record(&h, Utc::now())?;
            s.attach_photo(h.common.id, &jpeg, "image/jpeg", Utc::now())
        })
        .unwrap();
    phone.with(|s| s.set_relay_url(Some(&r.url))).unwrap();
    let sum = phone.sync().await;
    assert!(sum.via_relay);
    assert_eq!((sum.held, sum.photos), (2, 1));
    assert!(
        phone
            .with(|s| s.pending_photos_at(true))
            .unwrap()
            .is_empty()
    );
    assert_eq!(phone.with(|s| s.pending_photos_at(false)).unwrap().len(), 1);

    // The county answers: the relay forwards the record, then the photo.
    uplink.allow(i64::MAX);
    assert!(r.relay.round_now(Duration::from_secs(20)).await);
    assert_eq!(r.status().await.waiting_photos, 0);
    assert!(uplink.put_bytes.load(std::sync::atomic::Ordering::SeqCst) >= jpeg.len() as u64);

    // At the office again: the county's acknowledgement and the forwarded photo reach the
    // phone there; nothing of the record waits any more.
    let sum = phone.sync().await;
    assert!(sum.via_relay);
    assert_eq!(sum.photos, 1, "{sum:?}");
    assert!(
        phone
            .with(|s| s.pending_photos_at(false))
            .unwrap()
            .is_empty()
    );
    assert_eq!(phone.with(|s| s.outbox_len()).unwrap(), 0);

    // Straight with the county (through a switch counting what is uploaded): nothing sent.
    phone.with(|s| s.set_relay_url(None)).unwrap();
    let (direct, county) = Switch::start(&server.url).await;
    let token = phone
        .with(|s| s.meta(gridwalk::store::remote::TOKEN))
        .unwrap()
        .unwrap();
    let sum = gridwalk::client::SyncClient::new(&county, &token)
        .unwrap()
        .sync(&phone.store, |_| {})
        .await
        .unwrap();
    assert!(!sum.via_relay);
    assert_eq!(sum.photos, 0);
    assert_eq!(
        direct.put_bytes.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    assert!(
        phone
            .with(|s| s.pending_photos_at(false))
            .unwrap()
            .is_empty()
    );
    assert_eq!(phone.with(|s| s.outbox_len()).unwrap(), 0);
    let res = api_client()
        .get(format!("{}/api/v1/photos/{sha}", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.bytes().await.unwrap().to_vec(), jpeg);
}
