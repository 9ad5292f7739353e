//! Sessions that slide with use: each use moves a session's expiry out to 30 days from then
//! (written about once a day), never past its end 180 days after sign-in; revocation and
//! disabled accounts hold at once; a device signs in again on its own store and pushes from
//! the server's watermark; another account cannot sign in on it. And the reachability probe.
//! Time is moved by moving a session's stored times back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, Utc};
use gridwalk::client::{SyncClient, SyncError, enrol, login, probe};
use gridwalk::server::{auth, demo, repo};
use gridwalk::store::remote::TOKEN;
use gridwalk::wire::{
    Lane, PROTOCOL_HEADER, PROTOCOL_VERSION, PushRequest, SESSION_ENDS_HEADER,
    SESSION_EXPIRES_HEADER,
};
use uuid::Uuid;

use super::util::{Backend, Device, TestServer, api_client};
use crate::both_backends;

fn token(device: &Device) -> String {
    device.with(|s| s.meta(TOKEN)).unwrap().unwrap()
}

/// The session's stored (created, expires, ends) times.
async fn stored(server: &TestServer, token: &str) -> (DateTime<Utc>, DateTime<Utc>, DateTime<Utc>) {
    let h = auth::token_hash(token);
    server
        .read(move |db| {
            let r = db.query_one(
                "SELECT created_at, expires_at, ends_at FROM sessions WHERE token_hash = $1",
                &[h.into()],
            )?;
            Ok((
                repo::parse_ts(r[0].str()?)?,
                repo::parse_ts(r[1].str()?)?,
                repo::parse_ts(r[2].str()?)?,
            ))
        })
        .await
}

/// Moves a session's times back by `by`: as if that much time had passed since.
async fn age(server: &TestServer, token: &str, by: Duration) {
    let (created, expires, ends) = stored(server, token).await;
    set_times(server, token, created - by, expires - by, ends - by).await;
}

async fn set_times(
    server: &TestServer,
    token: &str,
    created: DateTime<Utc>,
    expires: DateTime<Utc>,
    ends: DateTime<Utc>,
) {
    let h = auth::token_hash(token);
    let db = server.db.clone();
    tokio::task::spawn_blocking(move || {
        db.tx(|tx| {
            tx.exec(
                "UPDATE sessions SET created_at = $2, expires_at = $3, ends_at = $4 WHERE token_hash = $1",
                &[
                    h.into(),
                    repo::ts(created).into(),
                    repo::ts(expires).into(),
                    repo::ts(ends).into(),
                ],
            )
        })
    })
    .await
    .unwrap()
    .unwrap();
}

/// `GET /api/v1/me` with this token: its status and the session headers of its answer.
async fn me(server: &TestServer, token: &str) -> (u16, Option<String>, Option<String>) {
    let res = api_client()
        .get(format!("{}/api/v1/me", server.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let h = |n: &str| res.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
    let (e, n) = (h(SESSION_EXPIRES_HEADER), h(SESSION_ENDS_HEADER));
    (res.status().as_u16(), e, n)
}

fn close(a: DateTime<Utc>, b: DateTime<Utc>) -> bool {
    (a - b).num_seconds().abs() <= 60
}

/// A worker who syncs once a day keeps their session for 40 days and more: each day's sync
/// slides it out to 30 days from then, and says so; several syncs in one day write it once.
async fn a_session_used_daily_slides(backend: Backend) {
    let server = TestServer::start(backend).await;
    let device = Device::enrol(&server, "worker-a").await;
    let t = token(&device);
    let (_, signed_in_expiry, ends) = stored(&server, &t).await;
    assert!(close(
        ends,
        Utc::now() + Duration::days(auth::SESSION_MAX_DAYS)
    ));
    let kept = device.with(|s| s.session_times()).unwrap().unwrap();
    assert!(close(kept.expires_at, signed_in_expiry), "kept at sign-in");
    assert!(close(kept.ends_at.unwrap(), ends));

    // Syncs on the day of sign-in write nothing.
    for _ in 0..3 {
        device.sync().await;
    }
    assert_eq!(stored(&server, &t).await.1, signed_in_expiry, "no write");

    for day in 1..=40 {
        age(&server, &t, Duration::days(1)).await;
        let sum = device.sync().await;
        let (_, expires, ends) = stored(&server, &t).await;
        assert!(
            close(expires, Utc::now() + Duration::days(auth::SESSION_DAYS)),
            "day {day}: slid to 30 days from now, stored {expires}"
        );
        let said = sum.session.expect("the pull's answer says");
        assert!(close(said.expires_at, expires), "day {day}: {said:?}");
        assert!(close(said.ends_at.unwrap(), ends), "day {day}: {said:?}");
        assert_eq!(device.with(|s| s.session_times()).unwrap(), Some(said));
        // The same day again: nothing written.
        device.sync().await;
        assert_eq!(
            stored(&server, &t).await.1,
            expires,
            "day {day}: once a day"
        );
    }
    let (created, _, ends) = stored(&server, &t).await;
    assert!(
        (Utc::now() - created - Duration::days(40))
            .num_seconds()
            .abs()
            < 60
    );
    assert_eq!(ends - created, Duration::days(auth::SESSION_MAX_DAYS));
}
both_backends!(a_session_used_daily_slides);

/// Unused for 31 days, a session is dead; signing in again makes a new one.
async fn a_session_idle_31_days_dies(backend: Backend) {
    let server = TestServer::start(backend).await;
    let device = Device::enrol(&server, "worker-a").await;
    let t = token(&device);
    age(&server, &t, Duration::days(29)).await;
    age(&server, &t, Duration::days(2)).await;
    let err = device
        .client()
        .sync(&device.store, |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, SyncError::Unauthorized), "{err}");
    let (status, expires, _) = me(&server, &t).await;
    assert_eq!((status, expires), (401, None));
}
both_backends!(a_session_idle_31_days_dies);

/// However often it is used, a session ends 180 days after its sign-in: the slide stops at
/// the end, and the answers say both times.
async fn the_absolute_end_holds(backend: Backend) {
    let server = TestServer::start(backend).await;
    let device = Device::enrol(&server, "worker-a").await;
    let t = token(&device);
    // Signed in 178 days ago, last used 29 days ago.
    let now = Utc::now();
    let created = now - Duration::days(178);
    let ends = created + Duration::days(auth::SESSION_MAX_DAYS);
    set_times(&server, &t, created, now + Duration::days(1), ends).await;
    let (status, expires, end) = me(&server, &t).await;
    assert_eq!(status, 200);
    let header = |s: Option<String>| {
        DateTime::parse_from_rfc3339(&s.unwrap())
            .unwrap()
            .with_timezone(&Utc)
    };
    let (said_expires, said_ends) = (header(expires), header(end));
    assert!(close(said_ends, ends), "{said_ends}");
    assert!(
        close(said_expires, ends),
        "the slide stops at the end: {said_expires}"
    );
    assert!(close(stored(&server, &t).await.1, ends));
    // A day later, still live (no more writes); two more days, past its end: dead.
    age(&server, &t, Duration::days(1)).await;
    assert_eq!(me(&server, &t).await.0, 200);
    age(&server, &t, Duration::days(1) + Duration::hours(1)).await;
    assert_eq!(me(&server, &t).await.0, 401);
    let err = device
        .client()
        .sync(&device.store, |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, SyncError::Unauthorized), "{err}");
    // Signing in again starts a new session with its own end.
    enrol(&server.url, "worker-a", demo::DEMO_PASSWORD, &device.store)
        .await
        .unwrap();
    let t2 = token(&device);
    assert_ne!(t, t2);
    let (_, _, ends2) = stored(&server, &t2).await;
    assert!(close(
        ends2,
        Utc::now() + Duration::days(auth::SESSION_MAX_DAYS)
    ));
}
both_backends!(the_absolute_end_holds);

/// Signing out, and disabling the account, hold at once and for good: a use that would have
/// slid the session out does not bring it back.
async fn revoked_stays_revoked(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = Device::enrol(&server, "worker-a").await;
    let b = Device::enrol(&server, "worker-b").await;
    let (ta, tb) = (token(&a), token(&b));
    age(&server, &ta, Duration::days(3)).await;
    age(&server, &tb, Duration::days(3)).await;
    let res = api_client()
        .post(format!("{}/api/v1/auth/logout", server.url))
        .bearer_auth(&ta)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    let db = server.db.clone();
    tokio::task::spawn_blocking(move || db.tx(|tx| repo::set_disabled(tx, "worker-b", true)))
        .await
        .unwrap()
        .unwrap();
    for _ in 0..3 {
        assert_eq!(me(&server, &ta).await, (401, None, None));
        assert_eq!(me(&server, &tb).await, (401, None, None));
        age(&server, &ta, Duration::days(2)).await;
        age(&server, &tb, Duration::days(2)).await;
    }
    // Enabled again, worker-b's old session stays revoked.
    let db = server.db.clone();
    tokio::task::spawn_blocking(move || db.tx(|tx| repo::set_disabled(tx, "worker-b", false)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(me(&server, &tb).await.0, 401);
}
both_backends!(revoked_stays_revoked);

/// A session that expired with entries waiting (some the server received while the device
/// never heard back): signing in again on the same store, the device pushes with the new
/// token from the server's watermark, and every entry is on the server exactly once.
async fn signing_in_again_pushes_each_entry_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    let device = Device::enrol(&server, "worker-a").await;
    let old = token(&device);
    let grid = server.county.grids[0].grid.id;
    let mut ids = Vec::new();
    let mut make = |n: usize| {
        for _ in 0..n {
            let h = super::e2e_hazard(grid);
            ids.push(h.common.id);
            device.with(|s| s.create_record(&h, Utc::now())).unwrap();
        }
    };
    make(3);
    device.sync().await;
    make(4);
    // These four reach the server, but the answer is lost: the device still holds them.
    let (dev, entries) = device.with(|s| (s.device_id(), s.outbox_to_push(Lane::Normal, 100)));
    let entries = entries.unwrap();
    assert_eq!(entries.len(), 4);
    let body = PushRequest {
        device_id: dev,
        lane: Lane::Normal,
        device_now: Utc::now(),
        entries,
    };
    let res = api_client()
        .post(format!("{}/api/v1/sync/push", server.url))
        .bearer_auth(&old)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    make(2);
    // The session expires (as the server's database has it).
    let (created, _, ends) = stored(&server, &old).await;
    set_times(
        &server,
        &old,
        created,
        Utc::now() - Duration::minutes(1),
        ends,
    )
    .await;
    let err = device
        .client()
        .sync(&device.store, |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, SyncError::Unauthorized), "{err}");
    assert_eq!(device.with(|s| s.outbox_len()).unwrap(), 6);

    // Signed in again on the same store: a new token, the same device.
    let again = enrol(&server.url, "worker-a", demo::DEMO_PASSWORD, &device.store)
        .await
        .unwrap();
    assert_ne!(token(&device), old);
    assert_eq!(again.first_sync.pushed, 6, "the four again and the two new");
    assert_eq!(device.with(|s| s.outbox_len()).unwrap(), 0);
    server.applied().await;
    let ids2: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    let (entities, creates, refused) = server
        .read(move |db| {
            let (mut e, mut c) = (0, 0);
            for id in &ids2 {
                e += db.query_one(
                    "SELECT count(*) FROM entities WHERE id = $1",
                    &[id.clone().into()],
                )?[0]
                    .i64()?;
                c += db.query_one(
                    "SELECT count(*) FROM audit WHERE action = 'CREATE' AND entity_id = $1",
                    &[id.clone().into()],
                )?[0]
                    .i64()?;
            }
            let r = db.query_one("SELECT count(*) FROM push_rejections", &[])?[0].i64()?;
            Ok((e, c, r))
        })
        .await;
    assert_eq!((entities, creates, refused), (9, 9, 0), "each once");
}
both_backends!(signing_in_again_pushes_each_entry_once);

/// Another account signing in on an enrolled device is refused with a Chinese-first 403;
/// the device's own enrolment (its token) is left as it was and goes on syncing.
async fn another_account_on_the_device_is_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let device = Device::enrol(&server, "worker-a").await;
    let before = token(&device);
    let err = enrol(&server.url, "worker-b", demo::DEMO_PASSWORD, &device.store)
        .await
        .unwrap_err();
    let SyncError::Forbidden(message) = &err else {
        panic!("{err:?}");
    };
    assert!(
        message.starts_with("这台设备已登记在另一个账号下"),
        "{message}"
    );
    assert!(message.contains("(this device is enrolled to another account"));
    assert!(err.zh().contains("另一个账号"));
    let dev = device.with(|s| s.device_id());
    let raw = login(&server.url, "worker-b", demo::DEMO_PASSWORD, dev).await;
    assert!(matches!(raw, Err(SyncError::Forbidden(_))));
    assert_eq!(token(&device), before);
    assert_eq!(device.with(|s| s.worker().to_owned()), "worker-a");
    device.sync().await;
}
both_backends!(another_account_on_the_device_is_refused);

/// The probe's route answers without a token or the database, in a few bytes, naming the
/// protocol; the client's probe reads a wrong server, a closed port and a stranger rightly.
async fn ping_answers_without_a_token(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start(backend).await;
    let res = api_client()
        .get(format!("{}/api/v1/ping", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 204);
    assert_eq!(
        res.headers()[PROTOCOL_HEADER].to_str().unwrap(),
        PROTOCOL_VERSION.to_string()
    );
    assert!(res.headers().get(SESSION_EXPIRES_HEADER).is_none());
    // Another protocol: 426 naming the server's.
    let res = reqwest::Client::new()
        .get(format!("{}/api/v1/ping", server.url))
        .header(PROTOCOL_HEADER, "2")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 426);
    // The whole answer on the wire, head included.
    let addr = server.url.trim_start_matches("http://");
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(
        format!("GET /api/v1/ping HTTP/1.1\r\nhost: {addr}\r\n{PROTOCOL_HEADER}: {PROTOCOL_VERSION}\r\nconnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    c.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 204"), "{text}");
    assert!(answer.len() < 200, "{} bytes: {text}", answer.len());

    probe(&server.url).await.unwrap();
    // A closed port: offline.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    assert!(matches!(
        probe(&closed_url).await,
        Err(SyncError::Offline(_))
    ));
    // A server of another protocol, and a stranger (a Wi-Fi sign-in page).
    let other = fake(|| {
        axum::response::Response::builder()
            .status(426)
            .header(PROTOCOL_HEADER, "4")
            .body(axum::body::Body::empty())
            .unwrap()
    })
    .await;
    assert!(matches!(
        probe(&other).await,
        Err(SyncError::Incompatible(_))
    ));
    let newer = fake(|| {
        axum::response::Response::builder()
            .status(204)
            .header(PROTOCOL_HEADER, "4")
            .body(axum::body::Body::empty())
            .unwrap()
    })
    .await;
    assert!(matches!(
        probe(&newer).await,
        Err(SyncError::Incompatible(_))
    ));
    let portal = fake(|| {
        axum::response::Response::builder()
            .status(200)
            .body(axum::body::Body::from("<html>请登录 Wi-Fi</html>"))
            .unwrap()
    })
    .await;
    assert!(matches!(probe(&portal).await, Err(SyncError::Offline(_))));
    let busy = fake(|| {
        axum::response::Response::builder()
            .status(503)
            .body(axum::body::Body::empty())
            .unwrap()
    })
    .await;
    assert!(matches!(probe(&busy).await, Err(SyncError::Server(_))));

    // No database: on PostgreSQL, with the database gone, the probe still answers.
    if backend == Backend::Postgres {
        let name = server.db_url.rsplit('/').next().unwrap().to_owned();
        tokio::task::spawn_blocking(move || {
            let mut c = postgres::Client::connect(super::util::PG_ADMIN, postgres::NoTls).unwrap();
            c.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
                .unwrap();
        })
        .await
        .unwrap();
        probe(&server.url).await.unwrap();
        let health = reqwest::get(format!("{}/healthz", server.url))
            .await
            .unwrap();
        assert!(health.status().is_server_error());
    }
}
both_backends!(ping_answers_without_a_token);

/// A server on 127.0.0.1:0 answering every request with `answer()`.
async fn fake(answer: fn() -> axum::response::Response) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let app = axum::Router::new().fallback(move || async move { answer() });
    tokio::spawn(async move { axum::serve(l, app).await });
    url
}

/// A sync with nothing to do is one request under 1 KB both ways, headers included, the
/// session's times with it; the device keeps them.
async fn a_no_op_sync_is_one_small_request(backend: Backend) {
    let server = TestServer::start(backend).await;
    let device = Device::enrol(&server, "worker-a").await;
    let counted = Arc::new(AtomicU64::new(0));
    let proxy = counting_proxy(&server.url, counted.clone()).await;
    let client = SyncClient::new(&proxy, &token(&device)).unwrap();
    client.sync(&device.store, |_| {}).await.unwrap(); // warm: the connection is made
    counted.store(0, Ordering::SeqCst);
    let sum = client.sync(&device.store, |_| {}).await.unwrap();
    let bytes = counted.load(Ordering::SeqCst);
    assert_eq!(sum.requests, 1);
    assert!(bytes < 1000, "{bytes} bytes");
    let said = sum
        .session
        .expect("the answer says how long the session lasts");
    assert_eq!(device.with(|s| s.session_times()).unwrap(), Some(said));
}
both_backends!(a_no_op_sync_is_one_small_request);

/// A loopback proxy to `upstream` counting the bytes both ways.
async fn counting_proxy(upstream: &str, counted: Arc<AtomicU64>) -> String {
    let upstream = upstream.trim_start_matches("http://").to_owned();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((down, _)) = l.accept().await {
            let up = tokio::net::TcpStream::connect(&upstream).await.unwrap();
            let (down_r, down_w) = down.into_split();
            let (up_r, up_w) = up.into_split();
            tokio::spawn(pump(down_r, up_w, counted.clone()));
            tokio::spawn(pump(up_r, down_w, counted.clone()));
        }
    });
    url
}

/// Copies one direction, counting as it goes (a kept-alive connection never ends).
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    counted: Arc<AtomicU64>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        counted.fetch_add(n as u64, Ordering::SeqCst);
        if n == 0 || to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}
