//! County crunch: N devices (default 1,000), each with its own account, token and device
//! store, all syncing at once against one server: each pushes 50 new records, then pulls.
//!
//!     cargo bench --features server,client --bench crunch                        # 1,000 devices, SQLite
//!     cargo bench --features server,client --bench crunch -- --db postgres        # PostgreSQL at 127.0.0.1:5432
//!     cargo bench --features server,client --bench crunch -- --quick              # smoke: 50 devices
//!     ... -- --devices N --records M
//!     ... -- --timeline                                                           # pushes per 100 ms
//!
//! The server is the real router on 127.0.0.1:0 in its own tokio runtime (2 threads), the
//! devices run in another. Accounts are worker accounts spread over the small demo county's
//! grids; their sessions are written straight into the database (a sign-in per account would
//! only measure argon2). Devices start in steady state: their grid on the device and the pull
//! cursor at the server's current sequence. Prints total time, throughput, p50/p95/p99 per
//! request type and errors, then checks that the server holds exactly the records sent.
//! Each push's latency, as the device measures it, is split in three: `before` the server
//! has its request's head (connecting, sending, the server's accept and read), in the
//! `server` (its handler, body included), and `after` (the answer back, the device's runtime).

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{NaiveDate, Utc};
use gridwalk::demo::{County, CountySpec};
use gridwalk::domain::codes::*;
use gridwalk::domain::geo::GeoPoint;
use gridwalk::domain::model::{Common, Hazard};
use gridwalk::server::db::Database;
use gridwalk::server::repo::{self, NewUser};
use gridwalk::server::{AppState, auth, demo, router};
use gridwalk::store::Store;
use gridwalk::store::scope::Scope;
use gridwalk::store::sync::PULL_CURSOR;
use gridwalk::sync::{Phase, Retry, SyncClient};
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

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let quick = args.iter().any(|a| a == "--quick");
    let timeline = args.iter().any(|a| a == "--timeline");
    let devices: usize = match arg("--devices") {
        Some(s) => s.parse().context("--devices N")?,
        None if quick => 50,
        None => 1000,
    };
    let records: usize = arg("--records")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(50);
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
    let result = run(
        &url,
        &county,
        devices,
        records,
        device_dir.path(),
        &backend,
        timeline,
    );
    if let Some(name) = pg_name {
        let mut c = postgres::Client::connect(PG_ADMIN, postgres::NoTls)?;
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
    }
    result
}

fn run(
    url: &str,
    county: &County,
    n: usize,
    records: usize,
    device_dir: &Path,
    backend: &str,
    timeline: bool,
) -> Result<()> {
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

    // The server, in its own runtime.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("server")
        .enable_all()
        .build()?;
    let listener =
        server_rt.block_on(async { gridwalk::server::listen(([127, 0, 0, 1], 0).into()) })?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // How long the server itself takes over each push, from its request's head to its
    // answer's: what the devices measure, less their side (their runtime's turn, the
    // connection, the body's upload).
    let served: Arc<Mutex<Vec<(String, Instant, Instant)>>> = Default::default();
    let served2 = served.clone();
    let app = router(AppState::new(db.clone()))
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let served = served2.clone();
                async move {
                    if req.uri().path() != "/api/v1/sync/push" {
                        return next.run(req).await;
                    }
                    let who = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .trim_start_matches("Bearer ")
                        .to_owned();
                    let t = Instant::now();
                    let res = next.run(req).await;
                    served.lock().unwrap().push((who, t, Instant::now()));
                    res
                }
            },
        ))
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = server_rt.spawn(async move {
        axum::serve(gridwalk::server::no_delay(listener), app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });

    // The devices, all at once, in another runtime.
    // The simulated devices' store work runs at the lowest priority (nice 19): on the day,
    // each device applies what it pulls on its own phone, not on the server's two cores, so
    // here it must not take the server's turn on the CPU. The sync client runs store work on
    // blocking threads; they get two (as many as the cores) so hundreds of appliers do not
    // crowd the rest. The runtime's two workers, which send the requests and read the
    // answers (the latencies measured), are started first, when the runtime is built, and
    // keep the normal priority.
    let started_threads = std::sync::atomic::AtomicUsize::new(0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("devices")
        .max_blocking_threads(2)
        .on_thread_start(move || {
            if started_threads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 2 {
                // SAFETY: setpriority on the calling thread (Linux: who = 0 is this thread).
                unsafe {
                    libc::setpriority(libc::PRIO_PROCESS, 0, 19);
                }
            }
        })
        .enable_all()
        .build()?;
    let base = format!("http://{addr}");
    let started = Instant::now();
    let outcomes = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for d in devices {
            let base = base.clone();
            set.spawn(async move {
                let mut client = SyncClient::new(&base, &d.token)?;
                // One attempt: every failure counts as an error, none is hidden by a retry.
                client.retry = Retry {
                    attempts: 1,
                    ..Retry::default()
                };
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
    let _ = stop.send(());
    let _ = server_rt.block_on(server);

    let mut push = Vec::new();
    let mut pull = Vec::new();
    let mut push_timeline = Vec::new();
    let mut push_at = std::collections::HashMap::new();
    let mut pull_starts = Vec::new();
    let mut syncs = Vec::new();
    let mut errors = Vec::new();
    let (mut pushed, mut pulled, mut requests) = (0u64, 0u64, 0u64);
    let mut unacked: HashSet<uuid::Uuid> = HashSet::new();
    for o in outcomes {
        let (user, token, sum, took, store) = o?;
        // What the server did not acknowledge stays in the outbox (read after the timed
        // run: it is the benchmark's check, not the devices' work).
        let left = store.lock().unwrap().outbox(Lane::Normal, 1_000_000)?;
        unacked.extend(left.into_iter().map(|e| e.record_id));
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
                            push_at.insert(token.clone(), (at, d));
                            push_timeline.push((at - started, d));
                        }
                        _ => {
                            pull.push(d);
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
    println!(
        "{:<6} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "", "count", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    // Each push's time split: before the server had its head, in the server, after.
    let (mut before, mut inside, mut after) = (Vec::new(), Vec::new(), Vec::new());
    for (who, arrived, answered) in std::mem::take(&mut *served.lock().unwrap()) {
        if let Some(&(at, d)) = push_at.get(&who) {
            before.push(arrived.saturating_duration_since(at));
            inside.push(answered - arrived);
            after.push((at + d).saturating_duration_since(answered));
        }
    }
    for (name, v) in [
        ("push", &mut push),
        ("  before", &mut before),
        ("  server", &mut inside),
        ("  after", &mut after),
        ("pull", &mut pull),
        ("sync", &mut syncs),
    ] {
        println!(
            "{name:<6} {:>7} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            v.len(),
            pct(v, 0.50),
            pct(v, 0.95),
            pct(v, 0.99),
            pct(v, 1.0)
        );
    }
    if timeline {
        print_timeline(&push_timeline, &pull_starts);
    }
    println!("errors: {}", errors.len());
    for e in errors.iter().take(5) {
        println!("  {e}");
    }

    // The server holds exactly the records sent: no more, no fewer.
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
    // Exactly what was acknowledged: every record made, less what is still in an outbox.
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
    let p99 = pct(&mut push, 0.99);
    println!(
        "goals: under 60 s: {}; 0 errors: {}; p99 push under 500 ms: {}",
        if secs < 60.0 { "met" } else { "NOT met" },
        if errors.is_empty() { "met" } else { "NOT met" },
        if p99 < 500.0 { "met" } else { "NOT met" },
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
    }
    drop(db);
    if !exact {
        bail!("the server does not hold exactly the records sent");
    }
    Ok(())
}
