//! County crunch: N devices (default 1,000), each with its own account, token and device
//! store, all syncing against one server.
//!
//!     cargo bench --features server,client --bench crunch                        # 1,000 devices, SQLite
//!     cargo bench --features server,client --bench crunch -- --db postgres        # PostgreSQL at 127.0.0.1:5432
//!     cargo bench --features server,client --bench crunch -- --quick              # smoke: 50 devices
//!     ... -- --devices N --records M
//!     ... -- --timeline                                                           # pushes per 100 ms
//!     ... -- --idle [--minutes M]     # idle devices polling as the app's scheduler does (3 minutes)
//!     ... -- --reconnect              # the network returns to every device within one second
//!
//! The server is the real router on 127.0.0.1:0 in its own tokio runtime (2 threads), the
//! devices run in another. Accounts are worker accounts spread over the small demo county's
//! grids; their sessions are written straight into the database (a sign-in per account would
//! only measure argon2). Devices start in steady state: their grid on the device and the pull
//! cursor at the server's current sequence.
//!
//! The burst (default): all at once, each device pushes 50 new records, then pulls. Prints
//! total time, throughput, p50/p95/p99 per request type and errors, then checks that the
//! server holds exactly the records sent. Each push's latency, as the device measures it, is
//! split in three: `before` the server has its request's head (connecting, sending, the
//! server's accept and read), in the `server` (its handler, body included), and `after` (the
//! answer back, the device's runtime). Each pull's in four: `before`, `wait` (the server,
//! until its answer's head: the session, and the device's own pushes applied first), `send`
//! (the server making and handing over its pages), `after` (the last bytes to the device and
//! its applying them).
//!
//! `--idle`: enrolled devices with nothing to send, each driven by the app's scheduler
//! (`gridwalk::client::schedule`, default timings) while the server answers: a probe
//! (`GET /api/v1/ping`) every 45 s and a no-op sync (one pull) every 5 minutes. Each
//! scheduler's history is first replayed in its own time (a start drawn uniformly over the
//! last 5 minutes), so the devices are spread at random from the first second. Prints
//! requests and bytes a minute, and the server's CPU seconds a minute.
//!
//! `--reconnect`: every device has `--records` records saved while offline; the network comes
//! back to each at a moment within the same second (`Event::NetworkUp`), and its scheduler
//! decides when it probes and syncs (failures reported back, so they back off). Checks 0
//! errors, every record stored exactly once and push p99 under 500 ms.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{NaiveDate, Utc};
use gridwalk::client::schedule::{Action, Config as ScheduleConfig, Event, Failure, Scheduler};
use gridwalk::client::{Phase, Retry, SyncClient};
use gridwalk::demo::{County, CountySpec};
use gridwalk::domain::codes::*;
use gridwalk::domain::geo::GeoPoint;
use gridwalk::domain::model::{Common, Hazard};
use gridwalk::server::db::Database;
use gridwalk::server::repo::{self, NewUser};
use gridwalk::server::{AppState, auth, demo, router};
use gridwalk::store::Store;
use gridwalk::store::remote::PULL_CURSOR;
use gridwalk::store::scope::Scope;
use gridwalk::wire::{Lane, Role};

const PG_ADMIN: &str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";

struct Device {
    username: String,
    token: String,
    store: Arc<Mutex<Store>>,
}

fn hazard(grid: uuid::Uuid, worker: &str, i: usize) -> Hazard {
    let mut c = Common::new(Domain::Hazard, grid, worker, Utc::now());
    c.location = Some(GeoPoint::new(116.40 + i as f64 * 1e-5, 28.05, Some(8.0)).unwrap());
    Hazard {
        common: c,
        category: HazardCategory::CorridorEbike,
        severity: Severity::Medium,
        description: format!("楼道内电动车飞线充电 #{i}"),
        place: "3组12号".into(),
        owner: None,
        due_date: None,
    }
}

/// Per 100 ms of the run: the pushes sent then, their median and slowest latency, and the
/// pulls sent then (where a push's time goes: the burst, and what it shares the server with).
fn print_timeline(pushes: &[(Duration, Duration)], pulls: &[Duration]) {
    let slot = |d: &Duration| (d.as_millis() / 100) as usize;
    let last = pushes.iter().map(|(at, _)| slot(at)).max().unwrap_or(0);
    println!(
        "{:>8} {:>6} {:>9} {:>9} {:>6}",
        "sent at", "pushes", "p50 ms", "max ms", "pulls"
    );
    for i in 0..=last {
        let mut took: Vec<Duration> = pushes
            .iter()
            .filter(|(at, _)| slot(at) == i)
            .map(|(_, d)| *d)
            .collect();
        let pulls = pulls.iter().filter(|at| slot(at) == i).count();
        println!(
            "{:>6} s {:>6} {:>9.1} {:>9.1} {:>6}",
            format!("{:.1}", i as f64 / 10.0),
            took.len(),
            pct(&mut took, 0.5),
            pct(&mut took, 1.0),
            pulls
        );
    }
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort();
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i].as_secs_f64() * 1e3
}

/// A device made: its store, account, grid index and the records waiting in its outbox.
type Made = (Store, String, usize, Vec<uuid::Uuid>);

/// Makes the device stores (their grid, steady-state cursor, `records` new records each) on
/// two threads; returns the devices' ids and the records' ids.
fn make_devices(
    dir: &Path,
    county: &County,
    n: usize,
    records: usize,
    cursor: i64,
) -> Result<Vec<Made>> {
    let today = county.spec.today.and_hms_opt(0, 0, 0).unwrap().and_utc();
    let work = |range: std::ops::Range<usize>| -> Result<Vec<_>> {
        let mut out = Vec::new();
        for i in range {
            let g = i % county.grids.len();
            let username = format!("crunch-{i:05}");
            let mut s = Store::open(dir.join(format!("device-{i:05}.db")))?;
            let scope = Scope {
                grids: vec![county.grids[g].grid.clone()],
                cadence: Tag::ALL
                    .iter()
                    .map(|t| (*t, t.default_cadence_days()))
                    .collect(),
                ..Default::default()
            };
            s.import_scope(&scope, today)?;
            s.set_worker(&username)?;
            s.set_meta(PULL_CURSOR, &cursor.to_string())?;
            let mut ids = Vec::with_capacity(records);
            for j in 0..records {
                let h = hazard(county.grids[g].grid.id, &username, j);
                ids.push(h.common.id);
                s.create_record(&h, Utc::now())?;
            }
            out.push((s, username, g, ids));
        }
        Ok(out)
    };
    let half = n / 2;
    let (a, b) = std::thread::scope(|sc| {
        let a = sc.spawn(|| work(0..half));
        let b = sc.spawn(|| work(half..n));
        (a.join().unwrap(), b.join().unwrap())
    });
    let mut all = a?;
    all.extend(b?);
    Ok(all)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Burst,
    Idle,
    Reconnect,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let flag = |name: &str| args.iter().any(|a| a == name);
    let quick = flag("--quick");
    let timeline = flag("--timeline");
    let mode = match (flag("--idle"), flag("--reconnect")) {
        (true, false) => Mode::Idle,
        (false, true) => Mode::Reconnect,
        (false, false) => Mode::Burst,
        (true, true) => bail!("--idle or --reconnect, not both"),
    };
    let devices: usize = match arg("--devices") {
        Some(s) => s.parse().context("--devices N")?,
        None if quick => 50,
        None => 1000,
    };
    let records: usize = match arg("--records") {
        Some(s) => s.parse().context("--records M")?,
        None if mode == Mode::Idle => 0,
        None => 50,
    };
    let minutes: f64 = match arg("--minutes") {
        Some(s) => s.parse().context("--minutes M")?,
        None if quick => 0.25,
        None => 3.0,
    };
    let backend = arg("--db").unwrap_or_else(|| "sqlite".into());
    let today = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
    let county = County::generate(&CountySpec::small(7, today));
    let dir = tempfile::tempdir()?;

    // The database.
    let (url, pg_name) = match backend.as_str() {
        "sqlite" => (dir.path().join("server.db").display().to_string(), None),
        "postgres" => {
            let name = format!("gridwalk_crunch_{}", uuid::Uuid::now_v7().simple());
            let mut c = postgres::Client::connect(PG_ADMIN, postgres::NoTls)
                .context("PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth)")?;
            c.batch_execute(&format!("CREATE DATABASE {name}"))?;
            (
                format!("postgres://postgres@127.0.0.1:5432/{name}"),
                Some(name),
            )
        }
        other => bail!("--db sqlite|postgres, not {other}"),
    };
    // The device stores stand for each phone's own flash: they go on a RAM disk when there
    // is one. On the server's disk, their writes (the pulled records applied, a thousand
    // stores at once) went into the same ext4 journal as the database's, whose commits can
    // wait for them (data=ordered); PostgreSQL logged single COMMITs of 225-343 ms.
    let shm = Path::new("/dev/shm");
    let device_dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)?
    } else {
        tempfile::tempdir()?
    };
    let result = (|| {
        let set = set_up(&url, &county, devices, records, device_dir.path(), &backend)?;
        match mode {
            Mode::Burst => run(set, timeline),
            Mode::Idle => run_idle(set, minutes, pg_name.as_deref()),
            Mode::Reconnect => run_reconnect(set),
        }
    })();
    if let Some(name) = pg_name {
        let mut c = postgres::Client::connect(PG_ADMIN, postgres::NoTls)?;
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
    }
    result
}

/// The seeded server database and the enrolled devices, ready to run.
struct SetUp {
    db: Database,
    devices: Vec<Device>,
    /// Every record the devices hold in their outboxes.
    sent: HashSet<uuid::Uuid>,
    n: usize,
    records: usize,
}

fn set_up(
    url: &str,
    county: &County,
    n: usize,
    records: usize,
    device_dir: &Path,
    backend: &str,
) -> Result<SetUp> {
    let t = Instant::now();
    let db = Database::open(url)?;
    db.migrate()?;
    let now = Utc::now();
    let seeded = db
        .tx(|tx| demo::seed(tx, county, now))
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .context("empty database")?;
    let cursor = db.read(|tx| {
        tx.query_one("SELECT value FROM counters WHERE name = 'change_seq'", &[])?[0].i64()
    })?;
    let mut made = make_devices(device_dir, county, n, records, cursor)?;
    // Accounts and sessions, one transaction; one argon2 hash shared by all.
    let hash = auth::hash_password(demo::DEMO_PASSWORD).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut devices = Vec::with_capacity(n);
    let mut sent: HashSet<uuid::Uuid> = HashSet::new();
    db.tx(|tx| -> Result<()> {
        for (store, username, g, ids) in made.drain(..) {
            let grid = &county.grids[g];
            let uid = repo::create_user(
                tx,
                &NewUser {
                    username: username.clone(),
                    display_name: username.clone(),
                    role: Role::Worker,
                    scope_code: county.villages[grid.village].code.clone(),
                    password_hash: hash.clone(),
                    grids: vec![grid.grid.id],
                },
                now,
            )?;
            let token = format!("{username}-{}", uuid::Uuid::now_v7().simple());
            // As a first sign-in does: the device is the account's.
            repo::enrol_device(tx, store.device_id(), &username, now)?;
            repo::create_session(
                tx,
                &auth::token_hash(&token),
                uid,
                store.device_id(),
                now,
                now + chrono::Duration::days(auth::SESSION_DAYS),
                now + chrono::Duration::days(auth::SESSION_MAX_DAYS),
            )?;
            sent.extend(ids);
            devices.push(Device {
                username,
                token,
                store: Arc::new(Mutex::new(store)),
            });
        }
        Ok(())
    })?;
    // The set-up leaves written pages (the seeded database; the device stores too, where
    // there is no RAM disk: about 2 GB) for the kernel to write back later. Left alone,
    // that write-back landed in some runs during the burst, where every commit's fsync
    // waited behind it: those runs were slow from their first push. They are written out
    // now, outside the timed run.
    let flush = Instant::now();
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    println!(
        "county crunch on {backend}: {n} devices × {records} records over {} grids ({} entities seeded); set up in {:.1} s (its writes flushed in {:.1} s)",
        county.grids.len(),
        seeded.entities,
        t.elapsed().as_secs_f64(),
        flush.elapsed().as_secs_f64()
    );
    Ok(SetUp {
        db,
        devices,
        sent,
        n,
        records,
    })
}

/// What the server saw of one push or pull: whose (token), when its head arrived, when the
/// handler answered its head, and when its body's last bytes were handed over.
struct Served {
    pull: bool,
    who: String,
    arrived: Instant,
    head: Instant,
    end: Arc<OnceLock<Instant>>,
}

/// A body that notes when its last bytes were handed over.
struct TimedBody {
    inner: axum::body::BodyDataStream,
    end: Arc<OnceLock<Instant>>,
}

impl tokio_stream::Stream for TimedBody {
    type Item = Result<axum::body::Bytes, axum::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_next(cx);
        if let std::task::Poll::Ready(None) = polled {
            let _ = self.end.set(Instant::now());
        }
        polled
    }
}

/// A listener counting the bytes of every connection it accepts, both ways (HTTP, headers
/// included: what the sync bench counts at its proxy).
struct Counting {
    inner: gridwalk::server::Listener,
    bytes: Arc<AtomicU64>,
}

impl axum::serve::Listener for Counting {
    type Io = CountingIo;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (CountingIo, std::net::SocketAddr) {
        let (io, addr) = self.inner.accept().await;
        (
            CountingIo {
                io,
                bytes: self.bytes.clone(),
            },
            addr,
        )
    }

    fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.inner.local_addr()
    }
}

struct CountingIo {
    io: tokio::net::TcpStream,
    bytes: Arc<AtomicU64>,
}

impl tokio::io::AsyncRead for CountingIo {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.io).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        polled
    }
}

impl tokio::io::AsyncWrite for CountingIo {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.io).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = polled {
            self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if let std::task::Poll::Ready(Ok(n)) = polled {
            self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The server, in its own runtime (2 threads, named `server`), noting every push and pull
/// ([`Served`]) and counting bytes.
struct Server {
    rt: tokio::runtime::Runtime,
    base: String,
    served: Arc<Mutex<Vec<Served>>>,
    bytes: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    fn start(db: &Database) -> Result<Server> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("server")
            // Its blocking threads stay: the CPU of a thread that ended is no longer listed
            // per thread (the idle mode's CPU figure is the process's less the devices').
            .thread_keep_alive(Duration::from_secs(3600))
            .enable_all()
            .build()?;
        let listener =
            rt.block_on(async { gridwalk::server::listen(([127, 0, 0, 1], 0).into()) })?;
        let addr = listener.local_addr()?;
        let bytes: Arc<AtomicU64> = Default::default();
        let requests: Arc<AtomicU64> = Default::default();
        let listener = {
            use axum::serve::ListenerExt;
            Counting {
                inner: gridwalk::server::no_delay(listener),
                bytes: bytes.clone(),
            }
            .tap_io(|_: &mut CountingIo| {})
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        // How long the server itself takes over each push and pull, from its request's head
        // to its answer's head and last bytes: what the devices measure, less their side
        // (their runtime's turn, the connection, the upload, the download and the apply).
        let served: Arc<Mutex<Vec<Served>>> = Default::default();
        let (served2, requests2) = (served.clone(), requests.clone());
        let app = router(AppState::new(db.clone()))
            .layer(axum::middleware::from_fn(
                move |req: axum::extract::Request, next: axum::middleware::Next| {
                    let served = served2.clone();
                    requests2.fetch_add(1, Ordering::Relaxed);
                    async move {
                        let pull = match req.uri().path() {
                            "/api/v1/sync/push" => false,
                            "/api/v1/sync/pull/stream" => true,
                            _ => return next.run(req).await,
                        };
                        let who = req
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .trim_start_matches("Bearer ")
                            .to_owned();
                        let arrived = Instant::now();
                        let res = next.run(req).await;
                        let head = Instant::now();
                        let end: Arc<OnceLock<Instant>> = Default::default();
                        let res = if pull {
                            let (parts, body) = res.into_parts();
                            let timed = TimedBody {
                                inner: body.into_data_stream(),
                                end: end.clone(),
                            };
                            axum::response::Response::from_parts(
                                parts,
                                axum::body::Body::from_stream(timed),
                            )
                        } else {
                            let _ = end.set(head);
                            res
                        };
                        served.lock().unwrap().push(Served {
                            pull,
                            who,
                            arrived,
                            head,
                            end,
                        });
                        res
                    }
                },
            ))
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        let task = rt.spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(Server {
            rt,
            base: format!("http://{addr}"),
            served,
            bytes,
            requests,
            stop,
            task,
        })
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.rt.block_on(self.task);
    }
}

/// The devices' runtime. The simulated devices' store work runs at the lowest priority
/// (nice 19): on the day, each device applies what it pulls on its own phone, not on the
/// server's two cores, so here it must not take the server's turn on the CPU. The sync client
/// runs store work on blocking threads; they get two (as many as the cores) so hundreds of
/// appliers do not crowd the rest. The runtime's two workers, which send the requests and
/// read the answers (the latencies measured), are started first, when the runtime is built,
/// and keep the normal priority. Its threads are named `devices` and stay (their CPU is
/// counted per thread).
fn device_runtime() -> Result<tokio::runtime::Runtime> {
    let started_threads = std::sync::atomic::AtomicUsize::new(0);
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("devices")
        .max_blocking_threads(2)
        .thread_keep_alive(Duration::from_secs(3600))
        .on_thread_start(move || {
            if started_threads.fetch_add(1, Ordering::SeqCst) >= 2 {
                // SAFETY: setpriority on the calling thread (Linux: who = 0 is this thread).
                unsafe {
                    libc::setpriority(libc::PRIO_PROCESS, 0, 19);
                }
            }
        })
        .enable_all()
        .build()?)
}

/// A device's sync client, with one attempt per request: every failure counts, none is
/// hidden by a retry.
fn client_of(base: &str, d: &Device) -> Result<SyncClient> {
    let mut client = SyncClient::new(base, &d.token)?;
    client.retry = Retry {
        attempts: 1,
        ..Retry::default()
    };
    Ok(client)
}

/// Checks that the server holds exactly the records acknowledged: every record made, less
/// what is still in an outbox. Prints what it found; fails on a mismatch.
fn verify(db: &Database, sent: &HashSet<uuid::Uuid>, devices: &[Arc<Mutex<Store>>]) -> Result<()> {
    let mut unacked: HashSet<uuid::Uuid> = HashSet::new();
    for store in devices {
        // Read after the timed run: it is the benchmark's check, not the devices' work.
        let left = store.lock().unwrap().outbox(Lane::Normal, 1_000_000)?;
        unacked.extend(left.into_iter().map(|e| e.record_id));
    }
    let held: Vec<String> = db.read(|tx| {
        tx.query(
            "SELECT id FROM entities WHERE kind = 'HAZARD' AND author LIKE 'crunch-%'",
            &[],
        )?
        .into_iter()
        .map(|r| r[0].string())
        .collect::<Result<Vec<_>, _>>()
    })?;
    let held_set: HashSet<uuid::Uuid> = held
        .iter()
        .map(|s| uuid::Uuid::parse_str(s))
        .collect::<Result<_, _>>()?;
    let acked: HashSet<uuid::Uuid> = sent.difference(&unacked).copied().collect();
    let exact = held.len() == acked.len() && held_set == acked;
    println!(
        "verify: made {}, acknowledged {}, still in outboxes {}, server holds {} ({} distinct): {}",
        sent.len(),
        acked.len(),
        unacked.len(),
        held.len(),
        held_set.len(),
        if exact { "exact" } else { "MISMATCH" }
    );
    if !exact {
        // Where the missing ones went: refused when applied, or in a quarantined push row.
        let (refused, quarantined) = db.read(|tx| {
            let refused = tx.query_one("SELECT count(*) FROM push_rejections", &[])?[0].i64()?;
            repo::quarantined_pushes(tx).map(|q| (refused, q))
        })?;
        println!(
            "  refused entries: {refused}; quarantined push rows: {}",
            quarantined.len()
        );
        for q in quarantined.iter().take(5) {
            println!("  row {}: {} tries, {}", q.id, q.attempts, q.last_error);
        }
        bail!("the server does not hold exactly the records sent");
    }
    Ok(())
}

fn print_header() {
    println!(
        "{:<8} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "", "count", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
}

fn print_row(name: &str, v: &mut [Duration]) {
    println!(
        "{name:<8} {:>7} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
        v.len(),
        pct(v, 0.50),
        pct(v, 0.95),
        pct(v, 0.99),
        pct(v, 1.0)
    );
}

/// The latencies split by what the server saw: pushes in three (before, server, after),
/// pulls in four (before, wait, send, after). `first` maps a token to its device's first push
/// or pull: when sent and how long it took.
fn print_split(
    served: &[Served],
    pushes: &std::collections::HashMap<String, (Instant, Duration)>,
    pulls: &std::collections::HashMap<String, (Instant, Duration)>,
) {
    let (mut before, mut inside, mut after) = (Vec::new(), Vec::new(), Vec::new());
    let (mut p_before, mut p_wait, mut p_send, mut p_after) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut seen: HashSet<(bool, &str)> = HashSet::new();
    for s in served {
        // A device's first push and first pull (as the device's own figures are).
        if !seen.insert((s.pull, s.who.as_str())) {
            continue;
        }
        let end = s.end.get().copied().unwrap_or(s.head);
        if s.pull {
            if let Some(&(at, d)) = pulls.get(&s.who) {
                p_before.push(s.arrived.saturating_duration_since(at));
                p_wait.push(s.head - s.arrived);
                p_send.push(end.saturating_duration_since(s.head));
                p_after.push((at + d).saturating_duration_since(end));
            }
        } else if let Some(&(at, d)) = pushes.get(&s.who) {
            before.push(s.arrived.saturating_duration_since(at));
            inside.push(end - s.arrived);
            after.push((at + d).saturating_duration_since(end));
        }
    }
    for (name, v) in [
        ("push <", &mut before),
        ("  server", &mut inside),
        ("  after", &mut after),
        ("pull <", &mut p_before),
        ("  wait", &mut p_wait),
        ("  send", &mut p_send),
        ("  after", &mut p_after),
    ] {
        if !v.is_empty() {
            print_row(name, v);
        }
    }
}

fn run(set: SetUp, timeline: bool) -> Result<()> {
    let SetUp {
        db,
        devices,
        sent,
        n: _,
        records: _,
    } = set;
    let server = Server::start(&db)?;
    let rt = device_runtime()?;
    let base = server.base.clone();
    let started = Instant::now();
    let outcomes = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for d in devices {
            let client = client_of(&base, &d)?;
            set.spawn(async move {
                let t = Instant::now();
                let sum = client.sync(&d.store, |_| {}).await;
                let took = t.elapsed();
                anyhow::Ok((d.username, d.token, sum, took, d.store))
            });
        }
        let mut out = Vec::new();
        while let Some(r) = set.join_next().await {
            out.push(r?);
        }
        anyhow::Ok(out)
    })?;
    let total = started.elapsed();
    let served = std::mem::take(&mut *server.served.lock().unwrap());
    server.stop();

    let mut push = Vec::new();
    let mut pull = Vec::new();
    let mut push_timeline = Vec::new();
    let mut push_at = std::collections::HashMap::new();
    let mut pull_at = std::collections::HashMap::new();
    let mut pull_starts = Vec::new();
    let mut syncs = Vec::new();
    let mut errors = Vec::new();
    let mut stores = Vec::new();
    let (mut pushed, mut pulled, mut requests) = (0u64, 0u64, 0u64);
    for o in outcomes {
        let (user, token, sum, took, store) = o?;
        stores.push(store);
        match sum {
            Ok(s) => {
                pushed += s.pushed;
                pulled += s.pulled;
                requests += s.requests;
                syncs.push(took);
                for (phase, at, d) in s.latencies {
                    match phase {
                        Phase::Upload => {
                            push.push(d);
                            push_at.entry(token.clone()).or_insert((at, d));
                            push_timeline.push((at - started, d));
                        }
                        _ => {
                            pull.push(d);
                            pull_at.entry(token.clone()).or_insert((at, d));
                            pull_starts.push(at - started);
                        }
                    }
                }
            }
            Err(e) => errors.push(format!("{user}: {e}")),
        }
    }
    let secs = total.as_secs_f64();
    println!(
        "total {secs:.2} s; {requests} requests ({:.0}/s); {pushed} records pushed ({:.0}/s); {pulled} changes pulled",
        requests as f64 / secs,
        pushed as f64 / secs,
    );
    print_header();
    print_row("push", &mut push);
    print_row("pull", &mut pull);
    print_row("sync", &mut syncs);
    // Each push's time split: before the server had its head, in the server, after; each
    // pull's: before, waiting in the server, sending its pages, after.
    print_split(&served, &push_at, &pull_at);
    if timeline {
        print_timeline(&push_timeline, &pull_starts);
    }
    println!("errors: {}", errors.len());
    for e in errors.iter().take(5) {
        println!("  {e}");
    }
    let verified = verify(&db, &sent, &stores);
    let p99 = pct(&mut push, 0.99);
    println!(
        "goals: under 60 s: {}; 0 errors: {}; p99 push under 500 ms: {}",
        if secs < 60.0 { "met" } else { "NOT met" },
        if errors.is_empty() { "met" } else { "NOT met" },
        if p99 < 500.0 { "met" } else { "NOT met" },
    );
    drop(db);
    verified
}

/// CPU seconds (user + system) of this process so far, ended threads included.
fn process_cpu() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// CPU seconds (user + system) of a process or thread from its `stat` file, with its name.
fn stat_cpu(path: &Path) -> Option<(String, f64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let (name, rest) = text.split_once(" (")?.1.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some((name.to_owned(), ticks / tick))
}

/// CPU seconds of this process's threads that are not the server's: the devices' runtime and
/// the main thread (which only waits for it).
fn not_server_cpu() -> f64 {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let mut sum = 0.0;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for t in dir.flatten() {
            let main = t.file_name().to_string_lossy() == pid.to_string();
            if let Some((name, cpu)) = stat_cpu(&t.path().join("stat"))
                && (main || name.starts_with("devices"))
            {
                sum += cpu;
            }
        }
    }
    sum
}

/// CPU seconds of the PostgreSQL backends serving database `name` (the pool's connections).
fn postgres_cpu(name: &str) -> Result<f64> {
    let mut c = postgres::Client::connect(PG_ADMIN, postgres::NoTls)?;
    let pids = c.query(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        &[&name],
    )?;
    Ok(pids
        .iter()
        .filter_map(|r| stat_cpu(Path::new(&format!("/proc/{}/stat", r.get::<_, i32>(0)))))
        .map(|(_, cpu)| cpu)
        .sum())
}

/// A small seeded random stream (splitmix64): each device's draws.
fn unit(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
}

/// What a device's scheduled actions did.
#[derive(Default)]
struct Tally {
    probes: u64,
    syncs: u64,
    requests: u64,
    failures: Vec<String>,
    pushes: Vec<Duration>,
    pulls: Vec<Duration>,
    probe_times: Vec<Duration>,
    /// From the network's return to the device's records all sent.
    done_after: Option<Duration>,
}

/// Runs a device's scheduler until `until` (or, with `stop_when_sent`, until a sync has sent
/// everything): sleeps to its next wake, runs the action it gives (a real probe or sync) and
/// reports the outcome back.
async fn drive(
    mut sched: Scheduler,
    client: SyncClient,
    store: Arc<Mutex<Store>>,
    until: Instant,
    stop_when_sent: Option<Instant>,
) -> Tally {
    let mut tally = Tally::default();
    loop {
        let now = Instant::now();
        if now >= until {
            return tally;
        }
        let Some(action) = sched.tick(now) else {
            let wake = sched.next_wake(now).unwrap_or(until).min(until);
            tokio::time::sleep_until(wake.into()).await;
            continue;
        };
        match action {
            Action::Probe => {
                let t = Instant::now();
                let r = client.probe().await;
                tally.probes += 1;
                tally.requests += 1;
                tally.probe_times.push(t.elapsed());
                let event = match &r {
                    Ok(()) => Event::ProbeOk,
                    Err(e) => {
                        tally.failures.push(format!("probe: {e}"));
                        Event::ProbeFailed(Failure::from(e))
                    }
                };
                sched.handle(Instant::now(), event);
            }
            Action::Sync { .. } => {
                let r = client.sync(&store, |_| {}).await;
                tally.syncs += 1;
                let event = match &r {
                    Ok(sum) => {
                        tally.requests += sum.requests;
                        for (phase, _, d) in &sum.latencies {
                            match phase {
                                Phase::Upload => tally.pushes.push(*d),
                                _ => tally.pulls.push(*d),
                            }
                        }
                        Event::SyncOk
                    }
                    Err(e) => {
                        tally.failures.push(format!("sync: {e}"));
                        Event::SyncFailed(Failure::from(e))
                    }
                };
                sched.handle(Instant::now(), event);
                if let (Some(up), Ok(_)) = (stop_when_sent, &r) {
                    let left = {
                        let store = store.clone();
                        tokio::task::spawn_blocking(move || store.lock().unwrap().outbox_len())
                            .await
                            .expect("outbox count")
                    };
                    if matches!(left, Ok(0)) {
                        tally.done_after = Some(up.elapsed());
                        return tally;
                    }
                }
            }
        }
    }
}

fn run_idle(set: SetUp, minutes: f64, pg_name: Option<&str>) -> Result<()> {
    let SetUp { db, devices, n, .. } = set;
    let server = Server::start(&db)?;
    let rt = device_runtime()?;
    let config = ScheduleConfig::default();
    let window = Duration::from_secs_f64(minutes * 60.0);
    println!(
        "idle: {n} devices, a probe every {} s and a sync every {} s while the server answers (the scheduler's defaults), {:.2} minutes",
        config.probe_every.as_secs(),
        config.feedback_every.as_secs(),
        minutes
    );
    // Each scheduler's history, replayed in its own time from a start drawn uniformly over
    // the last `feedback_every`: as if every device had been running for a while, each at
    // its own phase. No request is made for it (the scheduler is pure).
    let now = Instant::now();
    let mut seed = 0x1d1e_u64;
    let mut scheds = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = Scheduler::seeded(config, 1000 + i as u64);
        let mut t = now - config.feedback_every.mul_f64(unit(&mut seed));
        while t < now {
            match s.tick(t) {
                Some(Action::Probe) => s.handle(t, Event::ProbeOk),
                Some(Action::Sync { .. }) => s.handle(t, Event::SyncOk),
                None => match s.next_wake(t) {
                    Some(w) if w > t => t = w,
                    _ => bail!("the scheduler has nothing due while idle"),
                },
            }
        }
        scheds.push(s);
    }
    let base = server.base.clone();
    let (cpu0, others0) = (process_cpu(), not_server_cpu());
    let pg0 = pg_name.map(postgres_cpu).transpose()?;
    server.bytes.store(0, Ordering::SeqCst);
    server.requests.store(0, Ordering::SeqCst);
    let started = Instant::now();
    let until = started + window;
    let tallies = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for (d, s) in devices.into_iter().zip(scheds) {
            let client = client_of(&base, &d)?;
            set.spawn(drive(s, client, d.store, until, None));
        }
        let mut out = Vec::new();
        while let Some(r) = set.join_next().await {
            out.push(r?);
        }
        anyhow::Ok(out)
    })?;
    let elapsed = started.elapsed().as_secs_f64() / 60.0;
    let (cpu1, others1) = (process_cpu(), not_server_cpu());
    let pg1 = pg_name.map(postgres_cpu).transpose()?;
    let bytes = server.bytes.load(Ordering::SeqCst);
    let seen = server.requests.load(Ordering::SeqCst);
    server.stop();

    let (mut probes, mut syncs, mut requests) = (0, 0, 0);
    let (mut pulls, mut probe_times, mut failures) = (Vec::new(), Vec::new(), Vec::new());
    for t in tallies {
        probes += t.probes;
        syncs += t.syncs;
        requests += t.requests;
        pulls.extend(t.pulls);
        probe_times.extend(t.probe_times);
        failures.extend(t.failures);
    }
    let server_cpu = (cpu1 - cpu0) - (others1 - others0);
    let per_min = |x: f64| x / elapsed;
    println!(
        "{elapsed:.2} min: {probes} probes, {syncs} syncs, {requests} requests ({seen} seen by the server): {:.0} requests/min ({:.0} probes, {:.0} syncs); {:.1} KiB/min, {:.0} B a request",
        per_min(requests as f64),
        per_min(probes as f64),
        per_min(syncs as f64),
        per_min(bytes as f64) / 1024.0,
        bytes as f64 / seen.max(1) as f64
    );
    println!(
        "server CPU: {:.2} s/min (the process's CPU less the devices' threads'; devices: {:.2} s/min){}",
        per_min(server_cpu),
        per_min(others1 - others0),
        match (pg0, pg1) {
            (Some(a), Some(b)) => format!("; PostgreSQL backends: {:.2} s/min", per_min(b - a)),
            _ => String::new(),
        }
    );
    print_header();
    print_row("probe", &mut probe_times);
    print_row("pull", &mut pulls);
    println!("errors: {}", failures.len());
    for e in failures.iter().take(5) {
        println!("  {e}");
    }
    drop(db);
    if !failures.is_empty() {
        bail!("{} probes or syncs failed", failures.len());
    }
    Ok(())
}

fn run_reconnect(set: SetUp) -> Result<()> {
    let SetUp {
        db,
        devices,
        sent,
        n,
        records,
        ..
    } = set;
    let server = Server::start(&db)?;
    let rt = device_runtime()?;
    let config = ScheduleConfig::default();
    println!(
        "reconnect: {n} devices with {records} records each saved offline; the network returns to each within the same second; each scheduler probes within {} s and syncs",
        config.reconnect_spread.as_secs()
    );
    let base = server.base.clone();
    let stores: Vec<Arc<Mutex<Store>>> = devices.iter().map(|d| d.store.clone()).collect();
    let started = Instant::now();
    // No device should take this long; one that does is an error.
    let deadline = started + Duration::from_secs(300);
    let mut seed = 0x7ec0_u64;
    let tallies = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for (i, d) in devices.into_iter().enumerate() {
            let client = client_of(&base, &d)?;
            let mut s = Scheduler::seeded(config, 5000 + i as u64);
            // Offline, the records were saved: nothing runs until the network is back.
            s.handle(started, Event::NetworkDown);
            s.handle(started, Event::Saved { urgent: false });
            let up = started + Duration::from_secs_f64(unit(&mut seed));
            set.spawn(async move {
                tokio::time::sleep_until(up.into()).await;
                s.handle(Instant::now(), Event::NetworkUp);
                drive(s, client, d.store, deadline, Some(up)).await
            });
        }
        let mut out = Vec::new();
        while let Some(r) = set.join_next().await {
            out.push(r?);
        }
        anyhow::Ok(out)
    })?;
    let total = started.elapsed();
    server.stop();
    let (mut probes, mut syncs, mut requests) = (0, 0, 0);
    let (mut pushes, mut pulls, mut probe_times, mut done, mut failures) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut unfinished = 0;
    for t in tallies {
        probes += t.probes;
        syncs += t.syncs;
        requests += t.requests;
        pushes.extend(t.pushes);
        pulls.extend(t.pulls);
        probe_times.extend(t.probe_times);
        failures.extend(t.failures);
        match t.done_after {
            Some(d) => done.push(d),
            None => unfinished += 1,
        }
    }
    println!(
        "total {:.2} s; {probes} probes, {syncs} syncs, {requests} requests; {} devices done, {unfinished} not",
        total.as_secs_f64(),
        done.len()
    );
    print_header();
    print_row("probe", &mut probe_times);
    print_row("push", &mut pushes);
    print_row("pull", &mut pulls);
    print_row("done", &mut done);
    println!("errors: {} (failed probes and syncs)", failures.len());
    for e in failures.iter().take(5) {
        println!("  {e}");
    }
    let verified = verify(&db, &sent, &stores);
    let p99 = pct(&mut pushes, 0.99);
    let ok = failures.is_empty() && unfinished == 0 && verified.is_ok() && p99 < 500.0;
    println!(
        "pass: 0 errors: {}; every device done: {}; every record exactly once: {}; p99 push under 500 ms: {} ({p99:.0} ms)",
        if failures.is_empty() {
            "met"
        } else {
            "NOT met"
        },
        if unfinished == 0 { "met" } else { "NOT met" },
        if verified.is_ok() { "met" } else { "NOT met" },
        if p99 < 500.0 { "met" } else { "NOT met" },
    );
    drop(db);
    verified?;
    if !ok {
        bail!("the reconnect run did not pass");
    }
    Ok(())
}
