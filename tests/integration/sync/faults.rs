//! Fault injection and randomized runs: a device stopped at every step of
//! push and pull and resumed delivers every record exactly once; a loopback proxy that drops,
//! duplicates, delays and cuts requests and answers changes nothing in the outcome; a server
//! killed mid-batch applies all of it or none.
//!
//! Randomized runs print their base seed; a failing run prints its own seed. Knobs:
//! - `GRIDWALK_FAULT_RUNS=N`: SQLite runs (default 200); PostgreSQL runs are N/4 (default 50:
//!   a PostgreSQL run took ~0.6 s against ~0.43 s on SQLite in a debug build on two cores, so
//!   200 + 50 is about 85 s + 30 s there; several times that while the machine is busy).
//! - `GRIDWALK_FAULT_SEED=S`: the base seed (default: from the clock); with
//!   `GRIDWALK_FAULT_RUNS=1` it replays exactly the run that printed seed S.
//!
//! Everything listens on 127.0.0.1 only.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use gridwalk::client::{Retry, SyncClient};
use gridwalk::domain::codes::*;
use gridwalk::domain::lifecycle::Status;
use gridwalk::domain::model::*;
use gridwalk::store::Store;
use gridwalk::wire::Lane;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::e2e::hazard;
use super::util::{Backend, Device, TestServer};
use crate::both_backends;

// ---------------------------------------------------------------------------------------------
// A small seeded RNG (SplitMix64): the same seed gives the same run.

#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

// ---------------------------------------------------------------------------------------------
// The fault proxy.

/// What the proxy does with each request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Forwards everything.
    Pass,
    /// Forwards nothing: every connection is closed unanswered (a link that is down).
    Down,
    /// A fault on `percent` of the requests, chosen by the seeded RNG.
    Random { percent: u64 },
    /// Kills the device at request number `k` (1-based, counted from the last reset): with
    /// `applied`, request k reaches the server and its answer is lost; without, requests
    /// before k are answered and request k never leaves the device.
    KillAt { k: u64, applied: bool },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    Pass,
    DropBefore,
    DropAnswer,
    CutAnswer,
    Duplicate,
    Delay,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Pass => "pass",
            Fault::DropBefore => "drop before forwarding",
            Fault::DropAnswer => "drop the answer",
            Fault::CutAnswer => "cut the answer",
            Fault::Duplicate => "duplicate",
            Fault::Delay => "delay",
        }
    }
}

struct ProxyState {
    upstream: Mutex<SocketAddr>,
    mode: Mutex<Mode>,
    rng: Mutex<Rng>,
    requests: AtomicU64,
    killed: tokio::sync::Notify,
    faults: Mutex<BTreeMap<&'static str, u64>>,
}

pub struct Proxy {
    pub url: String,
    state: Arc<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const IO_LIMIT: Duration = Duration::from_secs(30);

impl Proxy {
    pub async fn start(upstream: &str) -> Proxy {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .parse()
            .expect("a test server on 127.0.0.1");
        assert!(upstream.ip().is_loopback());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ProxyState {
            upstream: Mutex::new(upstream),
            mode: Mutex::new(Mode::Pass),
            rng: Mutex::new(Rng::new(0)),
            requests: AtomicU64::new(0),
            killed: tokio::sync::Notify::new(),
            faults: Mutex::new(BTreeMap::new()),
        });
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(IO_LIMIT, handle(st, sock)).await;
                });
            }
        });
        Proxy {
            url: format!("http://{addr}"),
            state,
            task,
        }
    }

    pub fn set(&self, mode: Mode, seed: u64) {
        *self.state.mode.lock().unwrap() = mode;
        *self.state.rng.lock().unwrap() = Rng::new(seed);
        self.state.requests.store(0, Ordering::SeqCst);
    }

    /// Sends what comes from now on to another server (a restarted one at a new address).
    pub fn retarget(&self, upstream: &str) {
        let addr: SocketAddr = upstream
            .trim_start_matches("http://")
            .parse()
            .expect("a test server on 127.0.0.1");
        assert!(addr.ip().is_loopback());
        *self.state.upstream.lock().unwrap() = addr;
    }

    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Resolves once the proxy has "killed the device" in [`Mode::KillAt`].
    pub async fn killed(&self) {
        self.state.killed.notified().await
    }

    pub fn faults(&self) -> BTreeMap<&'static str, u64> {
        self.state.faults.lock().unwrap().clone()
    }
}

/// Reads one HTTP/1.1 request (head and Content-Length body); returns it with the head
/// rewritten to `connection: close`, so the server closes after answering and the answer
/// can be read to the end.
async fn read_request(sock: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = [0u8; 16384];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut len = 0usize;
    let mut lines: Vec<&str> = Vec::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().ok()?;
        }
        assert!(
            !lower.starts_with("transfer-encoding:"),
            "the proxy expects Content-Length bodies: {line}"
        );
        if !lower.starts_with("connection:") {
            lines.push(line);
        }
    }
    while buf.len() < head_end + len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let mut out = lines.join("\r\n").into_bytes();
    out.extend_from_slice(b"\r\nconnection: close\r\n\r\n");
    out.extend_from_slice(&buf[head_end..head_end + len]);
    Some(out)
}

/// Sends a request to the server and reads its whole answer.
async fn forward(upstream: SocketAddr, req: &[u8]) -> Option<Vec<u8>> {
    let mut up = TcpStream::connect(upstream).await.ok()?;
    up.write_all(req).await.ok()?;
    let mut res = Vec::new();
    up.read_to_end(&mut res).await.ok()?;
    Some(res)
}

async fn handle(st: Arc<ProxyState>, mut sock: TcpStream) {
    let Some(req) = read_request(&mut sock).await else {
        return;
    };
    let n = st.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let upstream = *st.upstream.lock().unwrap();
    let mode = *st.mode.lock().unwrap();
    let (fault, r) = match mode {
        Mode::Pass => (Fault::Pass, 0),
        Mode::Down => (Fault::DropBefore, 0),
        Mode::Random { percent } => {
            let mut rng = st.rng.lock().unwrap();
            let fault = if rng.chance(percent) {
                match rng.below(5) {
                    0 => Fault::DropBefore,
                    1 => Fault::DropAnswer,
                    2 => Fault::CutAnswer,
                    3 => Fault::Duplicate,
                    _ => Fault::Delay,
                }
            } else {
                Fault::Pass
            };
            (fault, rng.next_u64())
        }
        Mode::KillAt { k, applied } if n == k => {
            if applied {
                // The server applies it; the device dies before hearing the answer.
                forward(upstream, &req).await;
            }
            st.killed.notify_one();
            return;
        }
        // After the kill nothing more is answered (the device is dead).
        Mode::KillAt { k, .. } if n > k => (Fault::DropBefore, 0),
        Mode::KillAt { .. } => (Fault::Pass, 0),
    };
    if fault != Fault::Pass {
        *st.faults.lock().unwrap().entry(fault.name()).or_default() += 1;
    }
    let answer = match fault {
        Fault::DropBefore => return,
        Fault::Pass => forward(upstream, &req).await,
        Fault::Delay => {
            tokio::time::sleep(Duration::from_millis(1 + r % 80)).await;
            forward(upstream, &req).await
        }
        Fault::DropAnswer => {
            forward(upstream, &req).await;
            return;
        }
        Fault::CutAnswer => {
            let Some(res) = forward(upstream, &req).await else {
                return;
            };
            let cut = (r as usize) % res.len().max(1);
            let _ = sock.write_all(&res[..cut]).await;
            let _ = sock.shutdown().await;
            return;
        }
        Fault::Duplicate => {
            forward(upstream, &req).await;
            forward(upstream, &req).await
        }
    };
    if let Some(res) = answer {
        let _ = sock.write_all(&res).await;
        let _ = sock.shutdown().await;
    }
}

/// An HTTP client without keep-alive: one TCP connection per request.
fn no_keepalive() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(IO_LIMIT)
        .build()
        .unwrap()
}

pub(crate) fn client_via(device: &Device, url: &str) -> SyncClient {
    let token = device
        .with(|s| s.meta(gridwalk::store::remote::TOKEN))
        .unwrap()
        .unwrap();
    let mut c = SyncClient::new(url, &token)
        .unwrap()
        .with_http(no_keepalive());
    c.retry = Retry {
        attempts: 4,
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(20),
    };
    // Small answers of small pages, so a pull has several answers, and each several pages,
    // to be cut between.
    c.page = 40;
    c.frame = 10;
    c
}

/// "Kills the app and starts it again": drops the store and reopens it from its file.
pub(crate) fn reopen(device: &Device) {
    let mut s = device.store.lock().unwrap();
    *s = Store::open(&device.path).unwrap();
}

// ---------------------------------------------------------------------------------------------
// What a device wrote, and the check that the server holds exactly that.

#[derive(Default)]
pub(crate) struct Written {
    /// Records created (hazards, emergencies), with how many transitions each got.
    records: BTreeMap<uuid::Uuid, usize>,
    visits: BTreeMap<uuid::Uuid, Visit>,
    /// Households edited, with how many edits.
    households: BTreeMap<uuid::Uuid, usize>,
    photos: Vec<(String, Vec<u8>)>,
}

/// Random local writes: hazards, household edits, visits, a transition, a photo, emergencies
/// (urgent lane). `scale` multiplies the counts.
pub(crate) fn write_randomly(
    device: &Device,
    server: &TestServer,
    rng: &mut Rng,
    scale: u64,
) -> Written {
    let mut w = Written::default();
    let grid = server.county.grids[0].grid.id;
    let households: Vec<uuid::Uuid> = device
        .with(|s| s.households(&Default::default(), super::util::today()))
        .unwrap()
        .iter()
        .map(|h| h.id)
        .collect();
    assert!(!households.is_empty());
    let tag = rng.next_u64() % 1_000_000;
    let now = Utc::now();
    for i in 0..(1 + rng.below(4)) * scale {
        let mut h = hazard(grid);
        h.description = format!("隐患 {tag}-{i}");
        device.with(|s| s.create_record(&h, now)).unwrap();
        w.records.insert(h.common.id, 0);
    }
    for i in 0..rng.below(3) * scale {
        let mut c = Common::new(Domain::Emergency, grid, "worker-a", now);
        c.urgency = Urgency::Urgent;
        let e = Emergency {
            common: c,
            category: EmergencyCategory::Natural,
            level: EmergencyLevel::Iv,
            title: format!("山洪 {tag}-{i}"),
            occurred_at: now - chrono::Duration::minutes(5),
        };
        device.with(|s| s.create_record(&e, now)).unwrap();
        w.records.insert(e.common.id, 0);
    }
    // Each household edited at most once per sync: two offline edits of one field before a
    // sync are a known conflict case (see the report of this test), not a fault.
    let mut pool = households.clone();
    for i in 0..(rng.below(4) * scale).min(pool.len() as u64) {
        let hh = pool.swap_remove(rng.below(pool.len() as u64) as usize);
        device
            .with(|s| s.update_household(hh, |h| h.address = format!("山下村{tag}-{i}"), now))
            .unwrap();
        *w.households.entry(hh).or_default() += 1;
    }
    for i in 0..rng.below(4) * scale {
        let hh = households[rng.below(households.len() as u64) as usize];
        let v = Visit {
            id: new_id(),
            household_id: hh,
            grid_id: grid,
            author: "worker-a".into(),
            visited_on: super::util::today(),
            purpose: VisitPurpose::Care,
            notes: format!("走访 {tag}-{i}"),
            next_due: None,
            location: None,
            created_at: now,
        };
        device.with(|s| s.record_visit(&v, now)).unwrap();
        w.visits.insert(v.id, v);
    }
    let first = *w.records.keys().next().unwrap();
    if rng.chance(60) {
        device
            .with(|s| s.transition(first, Status::Rectified, Some("当场整改"), now))
            .unwrap();
        *w.records.get_mut(&first).unwrap() += 1;
    }
    if rng.chance(70) {
        // Several chunks (256 KiB each), content unique to this run.
        let len = 100_000 + rng.below(600_000) as usize;
        let mut r = Rng::new(rng.next_u64());
        let mut bytes: Vec<u8> = (0..len).map(|_| r.next_u64() as u8).collect();
        bytes[..3].copy_from_slice(&[0xFF, 0xD8, 0xFF]); // a JPEG, as the server checks
        let sha = device
            .with(|s| s.attach_photo(first, &bytes, "image/jpeg", now))
            .unwrap();
        w.photos.push((sha, bytes));
    }
    w
}

async fn count(server: &TestServer, sql: &'static str, args: Vec<String>) -> i64 {
    server
        .read(move |db| {
            let args: Vec<_> = args.into_iter().map(Into::into).collect();
            db.query_one(sql, &args)?[0].i64()
        })
        .await
}

/// Every record, visit, edit and photo the device wrote is on the server exactly once with
/// the same data, nothing else from this device is there, the outbox is empty, and the
/// device's copy equals the server's.
pub(crate) async fn verify_exactly_once(server: &TestServer, device: &Device, w: &Written) {
    let device_id = device.with(|s| s.device_id()).to_string();
    assert_eq!(device.with(|s| s.outbox_len()).unwrap(), 0, "outbox empty");
    assert!(
        device.with(|s| s.pending_photos()).unwrap().is_empty(),
        "no photo waiting"
    );
    for (&id, &transitions) in &w.records {
        let local = device.with(|s| s.any_record(id)).unwrap();
        let data = server
            .entity(id)
            .await
            .unwrap_or_else(|| panic!("record {id} missing on the server"));
        let remote = AnyRecord::from_json(local.domain(), data).unwrap();
        assert_eq!(
            local.to_json(),
            remote.to_json(),
            "record {id}: device = server"
        );
        let n = count(
            server,
            "SELECT count(*) FROM audit WHERE action = 'CREATE' AND entity_id = $1",
            vec![id.to_string()],
        )
        .await;
        assert_eq!(n, 1, "record {id} created once");
        let n = count(
            server,
            "SELECT count(*) FROM status_history WHERE record_id = $1",
            vec![id.to_string()],
        )
        .await;
        assert_eq!(n as usize, transitions, "record {id}: each transition once");
        if transitions > 0 {
            assert_eq!(local.common().status, Status::Rectified);
        }
    }
    for (id, v) in &w.visits {
        let data = server
            .entity(*id)
            .await
            .unwrap_or_else(|| panic!("visit {id} missing on the server"));
        let remote: Visit = serde_json::from_value(data).unwrap();
        assert_eq!(&remote, v, "visit {id}: same data");
        let n = count(
            server,
            "SELECT count(*) FROM audit WHERE action = 'APPEND' AND entity_id = $1",
            vec![id.to_string()],
        )
        .await;
        assert_eq!(n, 1, "visit {id} appended once");
        let local: i64 = device.with(|s| {
            s.conn()
                .query_row(
                    "SELECT count(*) FROM visits WHERE id = ?1",
                    [id.to_string()],
                    |r| r.get(0),
                )
                .unwrap()
        });
        assert_eq!(local, 1, "visit {id} on the device once");
    }
    for (&id, &edits) in &w.households {
        let local = device.with(|s| s.household(id)).unwrap();
        let mut remote: Household =
            serde_json::from_value(server.entity(id).await.unwrap()).unwrap();
        // The device's households table keeps a location's lon/lat but not its accuracy
        // (src/store/migrations/0001_init.sql): compare the rest.
        if let (Some(r), Some(l)) = (remote.location.as_mut(), local.location.as_ref()) {
            r.accuracy_m = l.accuracy_m;
        }
        assert_eq!(local, remote, "household {id}: device = server");
        let n = count(
            server,
            "SELECT count(*) FROM audit WHERE action LIKE 'UPDATE%' AND entity_id = $1 AND device_id = $2",
            vec![id.to_string(), device_id.clone()],
        )
        .await;
        assert_eq!(n as usize, edits, "household {id}: each edit applied once");
    }
    // Nothing from this device that it did not write.
    let created: BTreeSet<String> = server
        .read({
            let d = device_id.clone();
            move |db| {
                db.query(
                    "SELECT entity_id FROM audit WHERE device_id = $1 AND action IN ('CREATE', 'APPEND')",
                    &[d.into()],
                )?
                .iter()
                .map(|r| Ok(r[0].str()?.to_owned()))
                .collect()
            }
        })
        .await;
    let expected: BTreeSet<String> = w
        .records
        .keys()
        .chain(w.visits.keys())
        .map(|id| id.to_string())
        .collect();
    assert_eq!(
        created, expected,
        "the server holds exactly what the device wrote"
    );
    let conflicts = count(
        server,
        "SELECT count(*) FROM audit WHERE device_id = $1 AND action LIKE '%CONFLICT%'",
        vec![device_id.clone()],
    )
    .await;
    assert_eq!(conflicts, 0, "a device's own edits never conflict");
    for (sha, bytes) in &w.photos {
        let sha2 = sha.clone();
        let (size, complete, stored): (i64, i64, Vec<u8>) = server
            .read(move |db| {
                let r = db.query_one(
                    "SELECT size, complete, data FROM photos WHERE sha256 = $1",
                    &[sha2.into()],
                )?;
                Ok((r[0].i64()?, r[1].i64()?, r[2].bytes()?))
            })
            .await;
        assert_eq!(
            (size as usize, complete),
            (bytes.len(), 1),
            "photo {sha} complete"
        );
        assert!(&stored == bytes, "photo {sha} byte-identical");
    }
}

// ---------------------------------------------------------------------------------------------
// Randomized runs.

pub(crate) fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
    })
}

/// Syncs through the faulty proxy, "killing the app" at random moments (the sync future
/// dropped, sometimes the store reopened) until one sync completes.
async fn sync_through_faults(device: &Device, proxy: &Proxy, rng: &mut Rng) {
    let client = client_via(device, &proxy.url);
    for attempt in 0..300 {
        proxy.set(
            Mode::Random {
                percent: 10 + rng.below(40),
            },
            rng.next_u64(),
        );
        let kill = rng.chance(40);
        let limit = if kill {
            Duration::from_millis(rng.below(400))
        } else {
            IO_LIMIT * 2
        };
        match tokio::time::timeout(limit, client.sync(&device.store, |_| {})).await {
            Ok(Ok(_)) => return,
            Ok(Err(e)) if e.is_retryable() => {}
            Ok(Err(e)) => panic!("sync attempt {attempt} failed for good: {e:?}"),
            Err(_) => assert!(kill, "a sync without a kill took over a minute"),
        }
        if rng.chance(50) {
            reopen(device);
        }
    }
    panic!("no sync completed in 300 attempts");
}

async fn one_run(server: &TestServer, proxy: &Proxy, seed: u64) {
    let mut rng = Rng::new(seed);
    let device = Device::enrol(server, "worker-a").await;
    let written = write_randomly(&device, server, &mut rng, 1);
    sync_through_faults(&device, proxy, &mut rng).await;
    // One clean sync, straight to the server.
    proxy.set(Mode::Pass, 0);
    client_via(&device, &server.url)
        .sync(&device.store, |_| {})
        .await
        .unwrap();
    verify_exactly_once(server, &device, &written).await;
}

async fn randomized(backend: Backend) {
    let sqlite_runs = env_u64("GRIDWALK_FAULT_RUNS").unwrap_or(200);
    let runs = match backend {
        Backend::Sqlite => sqlite_runs,
        Backend::Postgres => sqlite_runs.div_ceil(4),
    };
    let base = env_u64("GRIDWALK_FAULT_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    println!(
        "fault runs ({backend:?}): {runs} runs, base seed {base} (replay: GRIDWALK_FAULT_SEED={base})"
    );
    let server = TestServer::start(backend).await;
    let proxy = Proxy::start(&server.url).await;
    let started = std::time::Instant::now();
    for i in 0..runs {
        let seed = base.wrapping_add(i);
        let run = std::panic::AssertUnwindSafe(one_run(&server, &proxy, seed));
        if let Err(e) = futures_catch(run).await {
            println!(
                "fault run {i} ({backend:?}) FAILED: replay with GRIDWALK_FAULT_SEED={seed} GRIDWALK_FAULT_RUNS=1"
            );
            std::panic::resume_unwind(e);
        }
    }
    println!(
        "fault runs ({backend:?}): {runs} passed in {:.1} s; faults injected: {:?}",
        started.elapsed().as_secs_f64(),
        proxy.faults()
    );
}
both_backends!(randomized);

/// Runs a future, catching a panic (to print the failing seed first).
pub(crate) async fn futures_catch<F: std::future::Future<Output = ()>>(
    f: std::panic::AssertUnwindSafe<F>,
) -> Result<(), Box<dyn std::any::Any + Send>> {
    let mut f = std::pin::pin!(f);
    std::future::poll_fn(move |cx| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f.as_mut().poll(cx))) {
            Ok(std::task::Poll::Ready(())) => std::task::Poll::Ready(Ok(())),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(e) => std::task::Poll::Ready(Err(e)),
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// A device stopped at every step.

/// Syncs with the device killed at request `k`, for k = 1, 2, ...: each time the sync is
/// cancelled and the store reopened, until a sync completes with no kill.
async fn sweep(server: &TestServer, proxy: &Proxy, device: &Device, applied: bool) -> u64 {
    let client = client_via(device, &proxy.url);
    for k in 1..500 {
        proxy.set(Mode::KillAt { k, applied }, k);
        tokio::select! {
            r = client.sync(&device.store, |_| {}) => {
                match r {
                    Ok(_) => {
                        assert!(proxy.requests() < k, "the sync completed without its kill");
                        return k;
                    }
                    Err(e) => panic!("sync killed at request {k} failed for good: {e:?}"),
                }
            }
            _ = proxy.killed() => {}
            _ = tokio::time::sleep(IO_LIMIT * 2) => panic!("sync {k} hung"),
        }
        reopen(device);
    }
    let _ = server;
    panic!("the sweep did not end");
}

async fn stopped_at_every_step(backend: Backend) {
    let server = TestServer::start(backend).await;
    let proxy = Proxy::start(&server.url).await;
    for applied in [false, true] {
        // Enough to need several push batches (500 each) and pull pages (40 each).
        let device = Device::enrol(&server, "worker-a").await;
        let mut rng = Rng::new(7 + applied as u64);
        let mut written = write_randomly(&device, &server, &mut rng, 1);
        let grid = server.county.grids[0].grid.id;
        let now = Utc::now();
        device.with(|s| {
            for _ in 0..520 {
                let h = hazard(grid);
                s.create_record(&h, now).unwrap();
                written.records.insert(h.common.id, 0);
            }
        });
        let mut c = Common::new(Domain::Emergency, grid, "worker-a", now);
        c.urgency = Urgency::Urgent;
        let e = Emergency {
            common: c,
            category: EmergencyCategory::Natural,
            level: EmergencyLevel::Iii,
            title: "桥梁垮塌".into(),
            occurred_at: now,
        };
        device.with(|s| s.create_record(&e, now)).unwrap();
        written.records.insert(e.common.id, 0);
        let mut bytes: Vec<u8> = (0..600_000u32).map(|i| (i * 31 % 253) as u8).collect();
        bytes[..8].copy_from_slice(b"\x89PNG\r\n\x1a\n"); // a PNG, as the server checks
        let first = *written.records.keys().next().unwrap();
        let sha = device
            .with(|s| s.attach_photo(first, &bytes, "image/png", now))
            .unwrap();
        written.photos.push((sha, bytes));
        let steps = sweep(&server, &proxy, &device, applied).await;
        println!("stopped at every step (applied = {applied}): {steps} syncs");
        client_via(&device, &server.url)
            .sync(&device.store, |_| {})
            .await
            .unwrap();
        verify_exactly_once(&server, &device, &written).await;
    }
    // And each step of one whole sync from its start: a fresh device per step.
    let mut k = 1;
    loop {
        let device = Device::enrol(&server, "worker-a").await;
        let mut rng = Rng::new(1000 + k);
        let written = write_randomly(&device, &server, &mut rng, 2);
        let client = client_via(&device, &proxy.url);
        proxy.set(
            Mode::KillAt {
                k,
                applied: k % 2 == 0,
            },
            k,
        );
        let done = tokio::select! {
            r = client.sync(&device.store, |_| {}) => { r.unwrap(); true }
            _ = proxy.killed() => false,
            _ = tokio::time::sleep(IO_LIMIT * 2) => panic!("sync {k} hung"),
        };
        reopen(&device);
        proxy.set(Mode::Pass, 0);
        client.sync(&device.store, |_| {}).await.unwrap();
        verify_exactly_once(&server, &device, &written).await;
        if done {
            break;
        }
        k += 1;
        assert!(k < 100, "a small sync takes fewer than 100 requests");
    }
}
both_backends!(stopped_at_every_step);

// ---------------------------------------------------------------------------------------------
// A server killed mid-batch.

pub struct ServerProcess {
    child: std::process::Child,
    pub url: String,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn spawn_server(db: &str, dir: &Path) -> ServerProcess {
    let addr_file = dir.join(format!("addr-{}", uuid::Uuid::now_v7().simple()));
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_gridwalk-server"))
        .args([
            "--db",
            db,
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--addr-file",
        ])
        .arg(&addr_file)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut p = ServerProcess {
        child,
        url: String::new(),
    };
    for _ in 0..600 {
        if let Ok(a) = std::fs::read_to_string(&addr_file)
            && !a.is_empty()
        {
            p.url = format!("http://{}", a.trim());
            return p;
        }
        if let Ok(Some(st)) = p.child.try_wait() {
            panic!("gridwalk-server exited: {st}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gridwalk-server did not start in 30 s");
}

async fn killed_mid_batch(backend: Backend) {
    // The test server seeds the tiny county in the database; it is stopped and the real
    // binary serves the same database from then on.
    let seeded = TestServer::start(backend).await;
    let db_url = seeded.db_url.clone();
    let dir = tempfile::tempdir().unwrap();
    let mut server = spawn_server(&db_url, dir.path()).await;
    let device = {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("device.db");
        let store = Arc::new(Mutex::new(Store::open(&path).unwrap()));
        gridwalk::client::enrol(
            &server.url,
            "worker-a",
            gridwalk::server::demo::DEMO_PASSWORD,
            &store,
        )
        .await
        .unwrap();
        (store, path, d)
    };
    let store = device.0.clone();
    let grid = seeded.county.grids[0].grid.id;
    let seed = env_u64("GRIDWALK_FAULT_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    println!("server killed mid-batch ({backend:?}): seed {seed}");
    let mut rng = Rng::new(seed);
    let mut all = BTreeSet::new();
    let now = Utc::now();
    for round in 0..3 {
        let mut batch = Vec::new();
        {
            let mut s = store.lock().unwrap();
            for _ in 0..2_000 {
                let h = hazard(grid);
                s.create_record(&h, now).unwrap();
                batch.push(h.common.id.to_string());
            }
        }
        all.extend(batch.iter().cloned());
        // One push of the whole lane (the client's batches are 500; this one is bigger so
        // applying it takes a while).
        let (entries, device_id, token) = {
            let s = store.lock().unwrap();
            (
                s.outbox(Lane::Normal, 100_000).unwrap(),
                s.device_id(),
                s.meta(gridwalk::store::remote::TOKEN).unwrap().unwrap(),
            )
        };
        let req = gridwalk::wire::PushRequest {
            device_id,
            lane: Lane::Normal,
            device_now: Utc::now(),
            entries,
        };
        let url = format!("{}/api/v1/sync/push", server.url);
        let push = tokio::spawn(async move {
            no_keepalive()
                .post(url)
                .bearer_auth(token)
                .header(
                    gridwalk::wire::PROTOCOL_HEADER,
                    gridwalk::wire::PROTOCOL_VERSION,
                )
                .json(&req)
                .send()
                .await
        });
        // Rounds kill later and later: before the request is read, while it is applied,
        // after it committed (an outcome of "all" is then right too).
        let delay = [
            rng.below(300),
            200 + rng.below(1_500),
            800 + rng.below(4_000),
        ][round];
        tokio::time::sleep(Duration::from_millis(delay)).await;
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        let answered = push.await.unwrap().map(|r| r.status().as_u16());
        server = spawn_server(&db_url, dir.path()).await;
        let ids = batch.clone();
        // One statement, so one snapshot: a push answered before the kill is in the inbox,
        // and the restarted server's applier may commit it while this counts (counting id by
        // id once saw 138 of 2,000 that way on PostgreSQL).
        let held = seeded
            .read(move |db| {
                let list = (1..=ids.len())
                    .map(|i| format!("${i}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let args: Vec<_> = ids.iter().map(|id| id.clone().into()).collect();
                let n = db.query_one(
                    &format!("SELECT count(*) FROM entities WHERE id IN ({list})"),
                    &args,
                )?[0]
                    .i64()?;
                Ok(n as usize)
            })
            .await;
        println!(
            "round {round}: killed after {delay} ms; the server held {held} of {} (answer: {})",
            batch.len(),
            match &answered {
                Ok(s) => format!("HTTP {s}"),
                Err(e) => format!("none: {e}"),
            }
        );
        assert!(
            held == 0 || held == batch.len(),
            "a killed server applied {held} of {} entries",
            batch.len()
        );
    }
    // The device now syncs with the restarted server and everything arrives exactly once.
    let token = store.lock().unwrap().meta("token").unwrap().unwrap();
    let client = SyncClient::new(&server.url, &token).unwrap();
    client.sync(&store, |_| {}).await.unwrap();
    assert_eq!(store.lock().unwrap().outbox_len().unwrap(), 0);
    let ids: Vec<String> = all.iter().cloned().collect();
    let (entities, creates) = seeded
        .read(move |db| {
            let mut e = 0;
            let mut c = 0;
            for id in &ids {
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
            Ok((e, c))
        })
        .await;
    assert_eq!(entities as usize, all.len(), "every entry delivered");
    assert_eq!(
        creates as usize,
        all.len(),
        "every entry created exactly once"
    );
}
both_backends!(killed_mid_batch);

/// Regression (found by the fault runs): a device that edits one field twice before
/// syncing sends both edits on the version it last pulled; the second was taken as
/// concurrent with the first and became a conflict (and, on equal times, lost). The server
/// now records which device made each field's change, and a device's own earlier change is
/// not concurrent with its later one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_offline_edits_of_one_field_do_not_conflict() {
    let server = TestServer::start(Backend::Sqlite).await;
    let device = Device::enrol(&server, "worker-a").await;
    let hh = device
        .with(|s| s.households(&Default::default(), super::util::today()))
        .unwrap()[0]
        .id;
    let t = Utc::now() - chrono::Duration::minutes(2);
    for (i, at) in [t, t + chrono::Duration::minutes(1)]
        .into_iter()
        .enumerate()
    {
        device
            .with(|s| s.update_household(hh, |h| h.address = format!("第{i}次修改"), at))
            .unwrap();
    }
    device.sync().await;
    assert_eq!(server.entity(hh).await.unwrap()["address"], "第1次修改");
    assert_eq!(
        device.with(|s| s.household(hh)).unwrap().address,
        "第1次修改"
    );
    let conflicts = server
        .read(|db| {
            db.query_one("SELECT count(*) FROM entities WHERE kind = 'CONFLICT'", &[])?[0].i64()
        })
        .await;
    assert_eq!(
        conflicts, 0,
        "a device's own sequential edits are not a conflict"
    );
}

/// Regression (found by the randomized runs on PostgreSQL): the same last photo chunk sent
/// twice at once (a retry while the first attempt is still being applied) was refused as a
/// SHA-256 mismatch, failing the sync for good although the photo was complete.
async fn concurrent_last_chunk(backend: Backend) {
    let server = TestServer::start(backend).await;
    let device = Device::enrol(&server, "worker-a").await;
    let h = hazard(server.county.grids[0].grid.id);
    let mut bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 13 % 251) as u8).collect();
    bytes[..3].copy_from_slice(&[0xFF, 0xD8, 0xFF]); // a JPEG, as the server checks
    device.with(|s| s.create_record(&h, Utc::now())).unwrap();
    let sha = device
        .with(|s| s.attach_photo(h.common.id, &bytes, "image/jpeg", Utc::now()))
        .unwrap();
    let (entries, device_id, token) = device.with(|s| {
        (
            s.outbox(Lane::Normal, 100).unwrap(),
            s.device_id(),
            s.meta(gridwalk::store::remote::TOKEN).unwrap().unwrap(),
        )
    });
    let req = gridwalk::wire::PushRequest {
        device_id,
        lane: Lane::Normal,
        device_now: Utc::now(),
        entries,
    };
    let http = super::util::api_client();
    let res = http
        .post(format!("{}/api/v1/sync/push", server.url))
        .bearer_auth(&token)
        .json(&req)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let url = format!("{}/api/v1/photos/{sha}", server.url);
    let split = gridwalk::client::PHOTO_CHUNK;
    let res = http
        .put(format!("{url}?offset=0"))
        .bearer_auth(&token)
        .body(bytes[..split].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let puts: Vec<_> = (0..6)
        .map(|_| {
            let put = http
                .put(format!("{url}?offset={split}"))
                .bearer_auth(&token)
                .body(bytes[split..].to_vec());
            tokio::spawn(async move { put.send().await.unwrap().status().as_u16() })
        })
        .collect();
    for p in puts {
        let status = p.await.unwrap();
        assert!(
            status == 200 || status == 409,
            "a repeated last chunk is answered as done or as a stale offset, not {status}"
        );
    }
    let (complete, stored): (i64, Vec<u8>) = server
        .read(move |db| {
            let r = db.query_one(
                "SELECT complete, data FROM photos WHERE sha256 = $1",
                &[sha.into()],
            )?;
            Ok((r[0].i64()?, r[1].bytes()?))
        })
        .await;
    assert_eq!(complete, 1);
    assert!(stored == bytes, "the photo is stored byte for byte");
}
both_backends!(concurrent_last_chunk);
