//! Side-by-side sync benchmark: gridwalk against the PouchDB peer (`../shared/bench-peer`)
//! on the same grid, in one run, with the ratios and the sync goals.
//!
//!     cargo bench --features server,client,sqlcipher --bench sync             # grid 0 of the bench county, 3 runs
//!     cargo bench --features server,client,sqlcipher --bench sync -- --quick  # smoke: a small grid, 1 run
//!     ... -- --no-peer                                                        # gridwalk only
//!
//! Each run: a fresh embedded (SQLite) server seeded with the grid, a fresh device store, and
//! the device syncing over loopback through a byte-counting TCP proxy (both directions,
//! headers included, as the peer counts at its sockets). The device store is measured as the
//! app keeps it, encrypted with SQLCipher, and as a plain SQLite file, side by side in the
//! same run (a build without the `sqlcipher` feature measures only the plain one and says
//! so). The goals are judged on the app's store. Prints medians; no assertion.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chrono::{NaiveDate, Utc};
use gridwalk::client::SyncClient;
use gridwalk::demo::{County, CountySpec, write_ndjson};
use gridwalk::domain::codes::*;
use gridwalk::domain::geo::GeoPoint;
use gridwalk::domain::lifecycle::{Status, lifecycle};
use gridwalk::domain::model::{Common, Hazard};
use gridwalk::server::db::Database;
use gridwalk::server::{AppState, demo, records as server_sync, repo, router};
use gridwalk::store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy on 127.0.0.1 that counts every byte both ways.
struct Proxy {
    url: String,
    bytes: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let bytes = Arc::new(AtomicU64::new(0));
        let counted = bytes.clone();
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let counted = counted.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    tokio::join!(pump(ri, wo, counted.clone()), pump(ro, wi, counted));
                });
            }
        });
        Ok(Proxy {
            url: format!("http://{addr}"),
            bytes,
            task,
        })
    }

    fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pump(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    bytes: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                bytes.fetch_add(n as u64, Ordering::SeqCst);
                if w.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = w.shutdown().await;
}

/// One measured sync.
#[derive(Debug, Clone, Copy, Default)]
struct Step {
    ms: f64,
    bytes: u64,
    requests: u64,
}

/// One run's figures, named as the peer names them.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    initial: Step,
    noop: Step,
    incremental: Step,
    first_push: Step,
    push: Step,
}

async fn timed(
    client: &SyncClient,
    store: &Arc<Mutex<Store>>,
    proxy: &Proxy,
    expect_pulled: Option<u64>,
    expect_pushed: u64,
) -> Result<Step> {
    let b0 = proxy.bytes();
    let t = Instant::now();
    let sum = client.sync(store, |_| {}).await?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let bytes = proxy.bytes() - b0;
    if let Some(n) = expect_pulled
        && sum.pulled != n
    {
        bail!("expected {n} changes pulled, got {}", sum.pulled);
    }
    if sum.pushed != expect_pushed {
        bail!(
            "expected {expect_pushed} entries pushed, got {}",
            sum.pushed
        );
    }
    Ok(Step {
        ms,
        bytes,
        requests: sum.requests,
    })
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

/// The county changes `k` records of the grid (a reviewer's status move each), in one
/// transaction, as the peer's server changes `k` documents in one bulk write.
fn change_on_server(db: &Database, grid_code: &str, k: usize) -> Result<usize> {
    let code = grid_code.to_owned();
    db.tx(|tx| -> Result<usize> {
        let (admin, _) = repo::user_by_name(tx, "admin")?.context("admin account")?;
        let rows = tx.query(
            "SELECT id, kind, status FROM entities WHERE grid_code = $1 AND status IS NOT NULL ORDER BY version",
            gridwalk::args![code],
        )?;
        let mut n = 0;
        for r in rows {
            if n == k {
                break;
            }
            let kind = gridwalk::domain::model::EntityKind::from_code(r[1].str()?)?;
            let (Some(domain), Ok(from)) = (kind.domain(), Status::from_code(r[2].str()?)) else {
                continue;
            };
            let to = lifecycle(domain).transitions.iter().find(|(a, _, who)| {
                *a == from && who.admits(gridwalk::domain::lifecycle::Actor::Reviewer)
            });
            let Some((_, to, _)) = to else { continue };
            let id = uuid::Uuid::parse_str(r[0].str()?)?;
            server_sync::review_transition(tx, &admin, id, *to, None, Utc::now())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            n += 1;
        }
        Ok(n)
    })
}

async fn gridwalk_run(
    county: &County,
    grid: usize,
    k: usize,
    expect_initial: u64,
    dir: &Path,
    key: Option<&str>,
) -> Result<Run> {
    // A fresh embedded server with only this grid.
    let db_path = dir.join("server.db").display().to_string();
    let c2 = county.clone();
    let db = tokio::task::spawn_blocking(move || -> Result<Database> {
        let db = Database::open(&db_path)?;
        db.migrate()?;
        db.tx(|tx| demo::seed_grids(tx, &c2, &[grid], Utc::now()))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .context("empty database")?;
        Ok(db)
    })
    .await??;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let server_addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = router(AppState::new(db.clone()))
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = tokio::spawn(async move {
        axum::serve(gridwalk::server::no_delay(listener), app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    let proxy = Proxy::start(server_addr).await?;

    // A fresh device, signed in directly (sign-in is not part of the figures: the peer has none).
    let path = dir.join("device.db");
    let store = match key {
        Some(key) => Store::open_encrypted(&path, key)?,
        None => Store::open(&path)?,
    };
    let store = Arc::new(Mutex::new(store));
    let device = store.lock().unwrap().device_id();
    let worker = "worker-a";
    let login = gridwalk::client::login(
        &format!("http://{server_addr}"),
        worker,
        demo::DEMO_PASSWORD,
        device,
    )
    .await?;
    store.lock().unwrap().set_worker(worker)?;
    let client = SyncClient::new(&proxy.url, &login.token)?;

    let initial = timed(&client, &store, &proxy, Some(expect_initial), 0).await?;
    let noop = timed(&client, &store, &proxy, Some(0), 0).await?;
    let d2 = db.clone();
    let code = county.grids[grid].grid.code.as_str().to_owned();
    let changed = tokio::task::spawn_blocking(move || change_on_server(&d2, &code, k)).await??;
    if changed != k {
        bail!("only {changed} records could be changed on the server");
    }
    let incremental = timed(&client, &store, &proxy, Some(k as u64), 0).await?;
    let gid = county.grids[grid].grid.id;
    let push = async |tag: usize| -> Result<Step> {
        {
            let mut s = store.lock().unwrap();
            for i in 0..k {
                s.create_record(&hazard(gid, worker, tag * k + i), Utc::now())?;
            }
        }
        // The pull after the push brings the pushed records back with their server versions.
        timed(&client, &store, &proxy, Some(k as u64), k as u64).await
    };
    let first_push = push(1).await?;
    let steady = push(2).await?;
    drop(proxy);
    let _ = stop.send(());
    let _ = server.await;
    Ok(Run {
        initial,
        noop,
        incremental,
        first_push,
        push: steady,
    })
}

/// The peer's medians line.
#[derive(Debug, Clone, Default, serde::Deserialize)]
struct Peer {
    records: u64,
    initial_ms: f64,
    initial_bytes: u64,
    initial_requests: u64,
    noop_ms: f64,
    noop_bytes: u64,
    incremental_ms: f64,
    incremental_bytes: u64,
    push_ms: f64,
    push_bytes: u64,
    first_push_ms: f64,
    first_push_bytes: u64,
}

fn run_peer(data: &Path, runs: usize, k: usize) -> Result<Peer> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/bench-peer/run.sh");
    let out = Command::new(script)
        .arg("--data")
        .arg(data)
        .args(["--runs", &runs.to_string(), "--changes", &k.to_string()])
        .output()
        .with_context(|| format!("running {script}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in stdout.lines() {
        println!("  peer: {line}");
    }
    if !out.status.success() {
        bail!(
            "the peer failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let last = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("the peer printed no JSON medians line")?;
    Ok(serde_json::from_str(last)?)
}

/// Whether this build's SQLite is SQLCipher (the `sqlcipher` feature).
fn sqlcipher_available() -> bool {
    let Ok(dir) = tempfile::tempdir() else {
        return false;
    };
    Store::open_encrypted(dir.path().join("probe.db"), "probe").is_ok()
}

fn median_by(runs: &[Run], f: impl Fn(&Run) -> f64) -> f64 {
    let mut v: Vec<f64> = runs.iter().map(f).collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn kib(b: f64) -> String {
    if b >= 1024.0 * 1024.0 {
        format!("{:.2} MiB", b / 1024.0 / 1024.0)
    } else {
        format!("{:.1} KiB", b / 1024.0)
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let no_peer = args.iter().any(|a| a == "--no-peer");
    let (runs, k) = if quick { (1, 20) } else { (3, 100) };
    let today = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
    let spec = if quick {
        CountySpec::small(1, today)
    } else {
        CountySpec::bench(1, today)
    };
    let county = County::generate(&spec);
    let grid = 0;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("grid.ndjson");
    let scope = county.scope(&[grid]);
    let lines = write_ndjson(
        &scope,
        std::io::BufWriter::new(std::fs::File::create(&data)?),
    )?;
    let json_bytes = std::fs::metadata(&data)?.len();
    println!(
        "sync benchmark: grid {} of the {} county, {lines} records ({:.0} B of JSON each), {runs} run(s), {k} changes",
        county.grids[grid].grid.code.as_str(),
        if quick { "small" } else { "bench" },
        json_bytes as f64 / lines as f64
    );

    let peer = if no_peer {
        None
    } else {
        println!("PouchDB peer (../shared/bench-peer/run.sh --runs {runs} --changes {k}):");
        match run_peer(&data, runs, k) {
            Ok(p) => Some(p),
            Err(e) if quick => {
                println!("  peer unavailable, gridwalk only: {e:#}");
                None
            }
            Err(e) => return Err(e),
        }
    };

    // The app's store is SQLCipher with a key from the worker's PIN; a plain file beside it.
    let cipher = sqlcipher_available();
    let stores: Vec<(&str, Option<&str>)> = if cipher {
        vec![("SQLCipher", Some("123456")), ("plain", None)]
    } else {
        println!("  note: built without the `sqlcipher` feature: the plain store only");
        vec![("plain", None)]
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // Runs alternate between the stores, so a noisy moment weighs on both alike.
    let mut results: Vec<Vec<Run>> = vec![Vec::new(); stores.len()];
    for run in 1..=runs {
        for (i, (name, key)) in stores.iter().enumerate() {
            let rdir = tempfile::tempdir()?;
            let r = rt.block_on(gridwalk_run(
                &county,
                grid,
                k,
                lines as u64,
                rdir.path(),
                *key,
            ))?;
            println!(
                "  gridwalk, {name} store, run {run}: initial {:.0} ms {} B {} req; no-op {:.0} ms {} B {} req; incremental({k}) {:.0} ms {} B; first push({k}) {:.0} ms {} B; push({k}) {:.0} ms {} B",
                r.initial.ms,
                r.initial.bytes,
                r.initial.requests,
                r.noop.ms,
                r.noop.bytes,
                r.noop.requests,
                r.incremental.ms,
                r.incremental.bytes,
                r.first_push.ms,
                r.first_push.bytes,
                r.push.ms,
                r.push.bytes
            );
            results[i].push(r);
        }
    }
    let figures = |runs: &[Run]| -> [(&'static str, f64, &'static str); 12] {
        let m = |f: fn(&Run) -> f64| median_by(runs, f);
        [
            ("initial sync: time", m(|r| r.initial.ms), "ms"),
            ("initial sync: bytes", m(|r| r.initial.bytes as f64), "B"),
            (
                "initial sync: requests",
                m(|r| r.initial.requests as f64),
                "",
            ),
            ("no-op sync: time", m(|r| r.noop.ms), "ms"),
            ("no-op sync: bytes", m(|r| r.noop.bytes as f64), "B"),
            ("no-op sync: requests", m(|r| r.noop.requests as f64), ""),
            ("incremental pull: time", m(|r| r.incremental.ms), "ms"),
            (
                "incremental pull: bytes",
                m(|r| r.incremental.bytes as f64),
                "B",
            ),
            ("first push: time", m(|r| r.first_push.ms), "ms"),
            ("first push: bytes", m(|r| r.first_push.bytes as f64), "B"),
            ("steady push: time", m(|r| r.push.ms), "ms"),
            ("steady push: bytes", m(|r| r.push.bytes as f64), "B"),
        ]
    };
    // The goals and the peer's ratios are the app's store's (the first).
    let g = figures(&results[0]);
    let plain = (stores.len() > 1).then(|| figures(&results[1]));
    let p: Option<[f64; 12]> = peer.as_ref().map(|p| {
        [
            p.initial_ms,
            p.initial_bytes as f64,
            p.initial_requests as f64,
            p.noop_ms,
            p.noop_bytes as f64,
            f64::NAN, // the peer prints no request count for the no-op
            p.incremental_ms,
            p.incremental_bytes as f64,
            p.first_push_ms,
            p.first_push_bytes as f64,
            p.push_ms,
            p.push_bytes as f64,
        ]
    });
    if let Some(p) = &peer
        && p.records != lines as u64
    {
        println!(
            "  note: the peer holds {} records, gridwalk {lines}",
            p.records
        );
    }
    let show = |v: f64, unit: &str| match unit {
        "ms" => format!("{v:.0} ms"),
        "B" => kib(v),
        _ if v.is_nan() => "-".into(),
        _ => format!("{v:.0}"),
    };
    println!(
        "\nmedians                   {:>14} {:>12} {:>12} {:>12} {:>14}",
        format!("{} store", stores[0].0),
        "plain store",
        "cipher/plain",
        "pouchdb",
        "pouchdb/gridwalk"
    );
    for (i, (name, v, unit)) in g.iter().enumerate() {
        let (pv, ratio) = match &p {
            Some(p) if !p[i].is_nan() => (show(p[i], unit), format!("{:.1}×", p[i] / v)),
            _ => ("-".into(), "-".into()),
        };
        let (plain_v, cipher_ratio) = match &plain {
            Some(pl) => (show(pl[i].1, unit), format!("{:.2}×", v / pl[i].1)),
            None => ("-".into(), "-".into()),
        };
        println!(
            "{name:<25} {:>14} {:>12} {:>12} {:>12} {:>14}",
            show(*v, unit),
            plain_v,
            cipher_ratio,
            pv,
            ratio
        );
    }
    let yes = |b: bool| if b { "met" } else { "NOT met" };
    println!("\ngoals (on the {} store):", stores[0].0);
    if let Some(p) = &p {
        println!(
            "  initial sync ≥ 10× faster than the peer: {:.1}× — {}",
            p[0] / g[0].1,
            yes(p[0] / g[0].1 >= 10.0)
        );
        println!(
            "  initial sync ≤ 1/5 of the peer's bytes: 1/{:.1} — {}",
            p[1] / g[1].1,
            yes(p[1] / g[1].1 >= 5.0)
        );
    }
    println!(
        "  initial sync ≤ 3 requests: {:.0} — {}",
        g[2].1,
        yes(g[2].1 <= 3.0)
    );
    println!(
        "  no-op sync: 1 request of ≤ 1 KB: {:.0} request(s), {:.0} B — {}",
        g[5].1,
        g[4].1,
        yes(g[5].1 <= 1.0 && g[4].1 <= 1000.0)
    );
    println!(
        "  incremental pull ≤ 8 KB: {:.0} B — {}",
        g[7].1,
        yes(g[7].1 <= 8000.0)
    );
    println!(
        "  first push ≤ 2× a steady push's bytes: {:.2}× — {}",
        g[9].1 / g[11].1,
        yes(g[9].1 <= 2.0 * g[11].1)
    );
    Ok(())
}
