//! The village-office relay under load: its first sync of its village from the county, and a
//! crowd of the village's devices syncing at the office at once, each against one device
//! syncing straight with the county in the same run.
//!
//!     cargo bench --features server,client --bench relay             # the bench county's first village, 20 devices
//!     cargo bench --features server,client --bench relay -- --quick  # smoke: the small county's, 5 devices
//!     ... -- --no-peer                                               # without the PouchDB peer
//!     ... -- --devices N --records K                                 # N devices at the office, K records each
//!
//! One run: a county server (embedded SQLite) seeded with every grid of the county's first
//! village and its accounts, plus one worker account per device at the office (each with one
//! of the village's grids, in turn). Then:
//!
//! 1. The relay's first sync: a fresh relay (`office`, the village's relay account) started
//!    over a fresh database, its county link through a byte-counting TCP proxy (both
//!    directions, headers included, and the HTTP requests counted); timed from its start to
//!    the end of its first round (its sign-in at the county, then the mirror pages). The
//!    village's documents, as NDJSON, go through the PouchDB peer (`shared/bench-peer`) for
//!    the bytes its replication takes.
//! 2. The baseline: a device of the village's first grid (`worker-a`), a fresh store with a
//!    session at the county, doing its first sync and then a sync pushing K new records,
//!    straight with the county (median of 3 such devices; 1 in the smoke run). And for
//!    comparison N other devices of the village doing the same with the county at once.
//! 3. N devices of the village at the office at once: each a fresh store with its own
//!    session at the county (mirrored to the relay by one round before), doing the baseline's
//!    two syncs at the relay, all started together; before them, one more such device alone
//!    at the office (the relay's own cost, without the crowd). Then the round that takes their
//!    records to the county, timed, and the county's count of them.
//!
//! The sign-ins of the devices are not part of the figures (the peer has none): their
//! sessions are written at the county as a sign-in would. The device stores are plain SQLite
//! files. Every device, the relay and the county share this machine's cores. Prints medians;
//! no assertion.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{NaiveDate, Utc};
use gridwalk::client::{SyncClient, SyncSummary};
use gridwalk::demo::{County, CountySpec, write_ndjson};
use gridwalk::domain::codes::*;
use gridwalk::domain::geo::GeoPoint;
use gridwalk::domain::model::{Common, Hazard};
use gridwalk::server::db::Database;
use gridwalk::server::relay::{self, Relay};
use gridwalk::server::{AppState, auth, demo, repo, router};
use gridwalk::store::Store;
use gridwalk::wire::Role;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

/// A TCP proxy on 127.0.0.1 that counts every byte both ways, and the HTTP/1.1 requests
/// going through it (their request lines).
struct Proxy {
    url: String,
    bytes: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let bytes = Arc::new(AtomicU64::new(0));
        let requests = Arc::new(AtomicU64::new(0));
        let (counted, asked) = (bytes.clone(), requests.clone());
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let (counted, asked) = (counted.clone(), asked.clone());
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    tokio::join!(
                        pump(ri, wo, counted.clone(), Some(asked)),
                        pump(ro, wi, counted, None)
                    );
                });
            }
        });
        Ok(Proxy {
            url: format!("http://{addr}"),
            bytes,
            requests,
            task,
        })
    }

    fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What ends an HTTP/1.1 request line.
const REQUEST_LINE_END: &[u8] = b" HTTP/1.1\r\n";

async fn pump(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    bytes: Arc<AtomicU64>,
    requests: Option<Arc<AtomicU64>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    // The last bytes of the previous read, so a request line cut between reads counts.
    let mut tail: Vec<u8> = Vec::new();
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                bytes.fetch_add(n as u64, Ordering::SeqCst);
                if let Some(requests) = &requests {
                    tail.extend_from_slice(&buf[..n]);
                    let found = tail
                        .windows(REQUEST_LINE_END.len())
                        .filter(|w| *w == REQUEST_LINE_END)
                        .count();
                    requests.fetch_add(found as u64, Ordering::SeqCst);
                    let keep = tail.len().min(REQUEST_LINE_END.len() - 1);
                    tail.drain(..tail.len() - keep);
                }
                if w.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = w.shutdown().await;
}

fn hazard(grid: Uuid, worker: &str, i: usize) -> Hazard {
    let mut c = Common::new(Domain::Hazard, grid, worker, Utc::now());
    c.location = Some(GeoPoint::new(116.40 + i as f64 * 1e-5, 28.05, Some(8.0)).unwrap());
    Hazard {
        common: c,
        category: HazardCategory::CorridorEbike,
        severity: Severity::Medium,
        description: format!("村办基准 楼道内电动车飞线充电 #{i}"),
        place: "3组12号".into(),
        owner: None,
        due_date: None,
    }
}

/// A device: a fresh store with a session at the county, as a sign-in would leave it.
struct Device {
    username: String,
    store: Arc<Mutex<Store>>,
    client: SyncClient,
    _dir: tempfile::TempDir,
}

impl Device {
    /// A fresh store for `username`, its session written at the county; syncing at the
    /// office's relay when `relay_url` is given.
    async fn new(
        county: &Database,
        county_url: &str,
        username: &str,
        relay_url: Option<&str>,
    ) -> Result<Device> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path().join("device.db"))?;
        let device = store.device_id();
        let token = Uuid::now_v7().to_string();
        let (db, user, hash) = (
            county.clone(),
            username.to_owned(),
            auth::token_hash(&token),
        );
        tokio::task::spawn_blocking(move || {
            db.tx(|tx| -> Result<()> {
                let (u, _) = repo::user_by_name(tx, &user)?.context("the device's account")?;
                let now = Utc::now();
                repo::enrol_device(tx, device, &user, now)?;
                repo::create_session(
                    tx,
                    &hash,
                    u.id,
                    device,
                    now,
                    now + chrono::Duration::days(30),
                    now + chrono::Duration::days(180),
                )?;
                Ok(())
            })
        })
        .await??;
        store.set_meta(gridwalk::store::remote::SERVER_URL, county_url)?;
        store.set_meta(gridwalk::store::remote::TOKEN, &token)?;
        let mut store = store;
        store.set_worker(username)?;
        store.set_relay_url(relay_url)?;
        let client = SyncClient::new(county_url, &token)?;
        Ok(Device {
            username: username.to_owned(),
            store: Arc::new(Mutex::new(store)),
            client,
            _dir: dir,
        })
    }

    /// The first sync, then `k` new records filed and a sync pushing them.
    async fn run(&self, k: usize) -> Result<DeviceRun> {
        let t = Instant::now();
        let first = self.client.sync(&self.store, |_| {}).await?;
        let first_ms = t.elapsed().as_secs_f64() * 1e3;
        {
            let mut s = self.store.lock().unwrap();
            let grid = s.grids()?.first().context("no grid pulled")?.id;
            for i in 0..k {
                s.create_record(&hazard(grid, &self.username, i), Utc::now())?;
            }
        }
        let t2 = Instant::now();
        let push = self.client.sync(&self.store, |_| {}).await?;
        let push_ms = t2.elapsed().as_secs_f64() * 1e3;
        Ok(DeviceRun {
            first_ms,
            push_ms,
            total_ms: t.elapsed().as_secs_f64() * 1e3,
            pulled: first.pulled,
            taken: push.pushed,
            requests: first.requests + push.requests,
            via_relay: first.via_relay && push.via_relay,
            wire_ms: wire_ms(&first) + wire_ms(&push),
        })
    }
}

/// The time a sync's push and pull requests took, answers included (not the store's work).
fn wire_ms(s: &SyncSummary) -> f64 {
    s.latencies
        .iter()
        .map(|(_, _, d)| d.as_secs_f64() * 1e3)
        .sum()
}

/// One device's figures.
#[derive(Debug, Clone, Copy)]
struct DeviceRun {
    first_ms: f64,
    push_ms: f64,
    total_ms: f64,
    pulled: u64,
    /// Entries the server took (the county) or held (the relay).
    taken: u64,
    requests: u64,
    via_relay: bool,
    wire_ms: f64,
}

/// Where the mirror's bytes go: the village's whole mirror as one page, read at the county,
/// its parts as JSON and each compressed alone with zstd at the county's level (6).
fn mirror_breakdown(county: &Database, village: &str) -> Result<Vec<(&'static str, usize, usize)>> {
    let v = village.to_owned();
    let page =
        county.read(move |tx| repo::read_page(tx, &v, 0, repo::MAX_MIRROR_PAGE, "bench".into()))?;
    let data: Vec<&String> = page.entities.iter().map(|e| &e.data).collect();
    let meta: Vec<&String> = page.entities.iter().map(|e| &e.meta).collect();
    let mut columns = page.entities.clone();
    for e in &mut columns {
        e.data.clear();
        e.meta.clear();
    }
    let rest = serde_json::json!({
        "rejections": page.rejections,
        "accounts": page.accounts,
        "sessions": page.sessions,
        "devices": page.devices,
        "watermarks": page.watermarks,
        "settings": page.settings,
    });
    let parts: [(&'static str, Vec<u8>); 6] = [
        ("the whole page", serde_json::to_vec(&page)?),
        (
            "entities: data (JSON in a string)",
            serde_json::to_vec(&data)?,
        ),
        (
            "entities: meta, per-field stamps",
            serde_json::to_vec(&meta)?,
        ),
        ("entities: the other columns", serde_json::to_vec(&columns)?),
        ("status histories", serde_json::to_vec(&page.histories)?),
        (
            "accounts, sessions, devices, the rest",
            serde_json::to_vec(&rest)?,
        ),
    ];
    parts
        .into_iter()
        .map(|(name, json)| Ok((name, json.len(), zstd::encode_all(&json[..], 6)?.len())))
        .collect()
}

/// Runs every device's [`Device::run`] at once (started together); their figures and the
/// time until the last ended.
async fn all_at_once(devices: Vec<Device>, k: usize) -> Result<(Vec<DeviceRun>, f64)> {
    let gate = Arc::new(tokio::sync::Barrier::new(devices.len()));
    let t = Instant::now();
    let tasks: Vec<_> = devices
        .into_iter()
        .map(|d| {
            let gate = gate.clone();
            tokio::spawn(async move {
                gate.wait().await;
                d.run(k).await
            })
        })
        .collect();
    let mut runs = Vec::with_capacity(tasks.len());
    for task in tasks {
        runs.push(task.await??);
    }
    Ok((runs, t.elapsed().as_secs_f64() * 1e3))
}

/// The peer's medians line (the figures this benchmark uses).
#[derive(Debug, Clone, Default, serde::Deserialize)]
struct Peer {
    records: u64,
    initial_ms: f64,
    initial_bytes: u64,
    initial_requests: u64,
}

/// The peer's script: `shared/bench-peer/run.sh` beside this checkout, or beside the main
/// checkout of a linked worktree.
fn peer_script() -> Option<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let beside = manifest.join("../shared/bench-peer/run.sh");
    if beside.exists() {
        return Some(beside);
    }
    let out = Command::new("git")
        .args(["rev-parse", "--path-format=absolute", "--git-common-dir"])
        .current_dir(manifest)
        .output()
        .ok()?;
    let common = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let main = common.parent()?;
    let script = main.join("../shared/bench-peer/run.sh");
    script.exists().then_some(script)
}

fn run_peer(data: &Path) -> Result<Peer> {
    let script = peer_script().context("no shared/bench-peer/run.sh beside the checkout")?;
    let out = Command::new(&script)
        .arg("--data")
        .arg(data)
        .args(["--runs", "1", "--changes", "100"])
        .output()
        .with_context(|| format!("running {}", script.display()))?;
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::MIN, f64::max)
}

fn kib(b: f64) -> String {
    if b >= 1024.0 * 1024.0 {
        format!("{:.2} MiB", b / 1024.0 / 1024.0)
    } else {
        format!("{:.1} KiB", b / 1024.0)
    }
}

/// Entities of the village in a database (the county's or the relay's mirror).
fn village_entities(db: &Database, village: &str) -> Result<i64> {
    let (lo, hi) = (village.to_owned(), format!("{village}~"));
    Ok(db.read(|tx| {
        tx.query_one(
            "SELECT count(*) FROM entities WHERE grid_code >= $1 AND grid_code < $2",
            gridwalk::args![lo, hi],
        )?[0]
            .i64()
    })?)
}

struct Options {
    quick: bool,
    no_peer: bool,
    devices: usize,
    records: usize,
}

fn options() -> Result<Options> {
    let args: Vec<String> = std::env::args().collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    let value = |f: &str| -> Result<Option<usize>> {
        match args.iter().position(|a| a == f) {
            Some(i) => Ok(Some(
                args.get(i + 1)
                    .with_context(|| format!("{f} needs a number"))?
                    .parse()?,
            )),
            None => Ok(None),
        }
    };
    let quick = flag("--quick");
    Ok(Options {
        quick,
        no_peer: flag("--no-peer"),
        devices: value("--devices")?.unwrap_or(if quick { 5 } else { 20 }),
        records: value("--records")?.unwrap_or(if quick { 20 } else { 100 }),
    })
}

fn main() -> Result<()> {
    let o = options()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(&o))
}

async fn run(o: &Options) -> Result<()> {
    let today = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
    let spec = if o.quick {
        CountySpec::small(7, today)
    } else {
        CountySpec::bench(1, today)
    };
    let county = County::generate(&spec);
    let village = &county.villages[0];
    let grids: Vec<usize> = village.grids.clone().collect();
    let (n, k) = (o.devices, o.records);
    let dir = tempfile::tempdir()?;

    // The county: the village's grids, the demo accounts, one worker per office device.
    let db_path = dir.path().join("county.db").display().to_string();
    let (c2, g2, code) = (county.clone(), grids.clone(), village.code.clone());
    let (county_db, seeded) = tokio::task::spawn_blocking(move || -> Result<_> {
        let db = Database::open(&db_path)?;
        db.migrate()?;
        let seeded = db
            .tx(|tx| demo::seed_grids(tx, &c2, &g2, Utc::now()))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .context("empty database")?;
        db.tx(|tx| -> Result<()> {
            // At the office: device 00 alone first, then 01 to N together. At the county
            // (the crowd without the relay): 01 to N together.
            let office = (0..=n).map(|i| (i, format!("office-device-{i:02}")));
            let direct = (1..=n).map(|i| (i, format!("county-device-{i:02}")));
            for (i, username) in office.chain(direct) {
                let grid = &c2.grids[g2[i % g2.len()]].grid;
                repo::create_user(
                    tx,
                    &repo::NewUser {
                        display_name: username.clone(),
                        username,
                        role: Role::Worker,
                        scope_code: code.clone(),
                        // Nobody signs in with it: the sessions are written directly.
                        password_hash: "!bench: sessions only".into(),
                        grids: vec![grid.id],
                    },
                    Utc::now(),
                )?;
            }
            Ok(())
        })?;
        Ok((db, seeded))
    })
    .await??;
    let village_rows = village_entities(&county_db, &village.code)?;
    println!(
        "relay benchmark: village {} {} of the {} county: {} grids, {} records ({} entities at the county); {n} devices at the office, {k} records each",
        village.code,
        village.name,
        if o.quick { "small" } else { "bench" },
        grids.len(),
        seeded.entities,
        village_rows
    );

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let county_addr = listener.local_addr()?;
    let county_url = format!("http://{county_addr}");
    let app = router(AppState::new(county_db.clone()))
        .into_make_service_with_connect_info::<SocketAddr>();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let county_server = tokio::spawn(async move {
        axum::serve(gridwalk::server::no_delay(listener), app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });

    // The PouchDB peer over the same documents: every grid of the village.
    let peer = if o.no_peer {
        None
    } else {
        let data = dir.path().join("village.ndjson");
        let lines = write_ndjson(
            &county.scope(&grids),
            std::io::BufWriter::new(std::fs::File::create(&data)?),
        )?;
        println!(
            "PouchDB peer (shared/bench-peer/run.sh --runs 1), the village's {lines} documents ({:.0} B of JSON each):",
            std::fs::metadata(&data)?.len() as f64 / lines as f64
        );
        match run_peer(&data) {
            Ok(p) => Some(p),
            Err(e) => {
                println!("  peer unavailable, gridwalk only: {e:#}");
                None
            }
        }
    };

    // 1. The relay's first sync of its village (exactly the peer's documents), through the counting proxy.
    let uplink = Proxy::start(county_addr).await?;
    let relay_path = dir.path().join("relay.db").display().to_string();
    let relay_db = tokio::task::spawn_blocking(move || -> Result<Database> {
        let db = Database::open(&relay_path)?;
        db.migrate()?;
        Ok(db)
    })
    .await??;
    let relay_listener = TcpListener::bind("127.0.0.1:0").await?;
    let relay_url = format!("http://{}", relay_listener.local_addr()?);
    let relay = Relay::new(
        relay_db.clone(),
        relay::Config {
            upstream: uplink.url.clone(),
            user: "office".into(),
            password: demo::DEMO_PASSWORD.into(),
            advertise: Some(relay_url.clone()),
            every: relay::DEFAULT_EVERY,
        },
    )?;
    let (relay_stop, relay_stopped) = tokio::sync::oneshot::channel::<()>();
    let relay_server = tokio::spawn(relay::serve(relay.clone(), relay_listener, async {
        let _ = relay_stopped.await;
    }));
    let t = Instant::now();
    relay.start();
    // The first round ends with the link marked up (or a problem named).
    let mut checked = Instant::now();
    while !relay.uplink_up() {
        tokio::time::sleep(Duration::from_millis(2)).await;
        if checked.elapsed() > Duration::from_millis(500) {
            checked = Instant::now();
            if let Some(e) = relay.status().await?.last_error {
                bail!("the relay's first round failed: {e}");
            }
            if t.elapsed() > Duration::from_secs(600) {
                bail!("the relay's first round took over 10 minutes");
            }
        }
    }
    let relay_ms = t.elapsed().as_secs_f64() * 1e3;
    let (relay_bytes, relay_requests) = (uplink.bytes(), uplink.requests());
    let mirrored = village_entities(&relay_db, &village.code)?;
    let at_county_now = village_entities(&county_db, &village.code)?;
    println!(
        "  relay's first sync: {relay_ms:.0} ms, {relay_bytes} B, {relay_requests} requests (its sign-in, then the mirror pages of up to {} entities), {mirrored} of the village's {at_county_now} entities mirrored",
        repo::MIRROR_PAGE
    );

    println!(
        "  where the mirror's bytes go (the village as one page, each part compressed alone):"
    );
    for (part, json, zstd) in mirror_breakdown(&county_db, &village.code)? {
        println!(
            "    {part:<40} {:>11} of JSON, {:>11} zstd",
            kib(json as f64),
            kib(zstd as f64)
        );
    }

    // 2. The baseline: one device straight with the county.
    let baseline_runs = if o.quick { 1 } else { 3 };
    let mut baseline = Vec::new();
    for run in 1..=baseline_runs {
        let d = Device::new(&county_db, &county_url, "worker-a", None).await?;
        let r = d.run(k).await?;
        println!(
            "  baseline {run}: one device with the county: first sync {:.0} ms ({} pulled), push of {k} {:.0} ms ({} taken), total {:.0} ms, {} requests",
            r.first_ms, r.pulled, r.push_ms, r.taken, r.total_ms, r.requests
        );
        baseline.push(r);
    }
    let base_total = median(baseline.iter().map(|r| r.total_ms).collect());
    let base_first = median(baseline.iter().map(|r| r.first_ms).collect());
    let base_push = median(baseline.iter().map(|r| r.push_ms).collect());
    let base_wire = median(baseline.iter().map(|r| r.wire_ms).collect());

    // The same crowd straight with the county, for comparison.
    let mut direct = Vec::with_capacity(n);
    for i in 1..=n {
        direct.push(
            Device::new(
                &county_db,
                &county_url,
                &format!("county-device-{i:02}"),
                None,
            )
            .await?,
        );
    }
    let (county_crowd, county_crowd_ms) = all_at_once(direct, k).await?;
    println!(
        "  {n} devices with the county at once (no relay): all done in {county_crowd_ms:.0} ms; total median {:.0} ms, max {:.0} ms",
        median(county_crowd.iter().map(|r| r.total_ms).collect()),
        max(&county_crowd.iter().map(|r| r.total_ms).collect::<Vec<_>>())
    );

    // 3. N devices at the office at once; their sessions mirrored by one round first.
    let mut devices = Vec::with_capacity(n + 1);
    for i in 0..=n {
        devices.push(
            Device::new(
                &county_db,
                &county_url,
                &format!("office-device-{i:02}"),
                Some(&relay_url),
            )
            .await?,
        );
    }
    if !relay.round_now(Duration::from_secs(120)).await {
        bail!("the relay's round mirroring the devices' sessions did not end");
    }
    // One device alone at the office: the relay's own cost, without the crowd.
    let solo = devices.remove(0).run(k).await?;
    println!(
        "  one device alone at the office: first sync {:.0} ms ({} pulled), push of {k} {:.0} ms ({} held), total {:.0} ms, {} requests{}",
        solo.first_ms,
        solo.pulled,
        solo.push_ms,
        solo.taken,
        solo.total_ms,
        solo.requests,
        if solo.via_relay {
            ""
        } else {
            " (NOT via the relay)"
        }
    );
    let (crowd, crowd_ms) = all_at_once(devices, k).await?;
    let not_relayed = crowd.iter().filter(|r| !r.via_relay).count();
    let pulled: Vec<u64> = crowd.iter().map(|r| r.pulled).collect();
    let held: u64 = crowd.iter().map(|r| r.taken).sum();
    println!(
        "  {n} devices at the office at once: all done in {crowd_ms:.0} ms; pulled {} to {} records each; {held} of {} records held; {} requests each (median)",
        pulled.iter().min().unwrap_or(&0),
        pulled.iter().max().unwrap_or(&0),
        n * k,
        median(crowd.iter().map(|r| r.requests as f64).collect())
    );
    if not_relayed > 0 {
        println!("  note: {not_relayed} device(s) synced with the county instead of the relay");
    }

    // What the office took, to the county.
    let t = Instant::now();
    let forwarded = relay.round_now(Duration::from_secs(300)).await;
    let sent = (n + 1) * k;
    let forward_ms = t.elapsed().as_secs_f64() * 1e3;
    let at_county = county_db.read(|tx| {
        tx.query_one(
            "SELECT count(*) FROM entities WHERE author LIKE 'office-device-%'",
            &[],
        )?[0]
            .i64()
    })?;
    println!(
        "  the next round to the county: {forward_ms:.0} ms{}; the county holds {at_county} of the {} records the office's devices filed",
        if forwarded { "" } else { " (not ended)" },
        sent
    );

    let _ = relay_stop.send(());
    let _ = relay_server.await;
    drop(uplink);
    let _ = stop.send(());
    let _ = county_server.await;

    // Medians and goals.
    let stats = |runs: &[DeviceRun], f: fn(&DeviceRun) -> f64| -> (f64, f64) {
        let v: Vec<f64> = runs.iter().map(f).collect();
        (median(v.clone()), max(&v))
    };
    let (total_med, total_max) = stats(&crowd, |r| r.total_ms);
    println!(
        "\n{:<48} {:>10} {:>10} {:>14} {:>10} {:>8}",
        "", "median", "max", "one at county", "median/one", "max/one"
    );
    let rows: [(String, (f64, f64), f64); 7] = [
        (
            format!("{n} at the office at once: first sync + push"),
            (total_med, total_max),
            base_total,
        ),
        (
            format!("{n} at the office at once: first sync"),
            stats(&crowd, |r| r.first_ms),
            base_first,
        ),
        (
            format!("{n} at the office at once: push of {k}"),
            stats(&crowd, |r| r.push_ms),
            base_push,
        ),
        (
            format!("{n} at the office at once: in requests"),
            stats(&crowd, |r| r.wire_ms),
            base_wire,
        ),
        (
            format!("{n} at the county at once: first sync + push"),
            stats(&county_crowd, |r| r.total_ms),
            base_total,
        ),
        (
            "one alone at the office: first sync + push".into(),
            (solo.total_ms, solo.total_ms),
            base_total,
        ),
        (
            "one alone at the office: in requests".into(),
            (solo.wire_ms, solo.wire_ms),
            base_wire,
        ),
    ];
    for (name, (med, mx), base) in rows {
        println!(
            "{name:<48} {med:>7.0} ms {mx:>7.0} ms {base:>11.0} ms {:>9.2}× {:>7.2}×",
            med / base,
            mx / base
        );
    }
    println!(
        "\n{:<48} {:>10} {:>12} {:>10}",
        "the village's records, first sync", "time", "bytes", "requests"
    );
    println!(
        "{:<48} {relay_ms:>7.0} ms {:>12} {relay_requests:>10}",
        "the relay from the county",
        kib(relay_bytes as f64)
    );
    if let Some(p) = &peer {
        println!(
            "{:<48} {:>7.0} ms {:>12} {:>10}",
            "PouchDB's replication of the same documents",
            p.initial_ms,
            kib(p.initial_bytes as f64),
            p.initial_requests
        );
        if p.records != seeded.entities as u64 {
            println!(
                "  note: the peer holds {} documents, the county {} records",
                p.records, seeded.entities
            );
        }
    }

    let yes = |b: bool| if b { "met" } else { "NOT met" };
    println!("\ngoals:");
    println!(
        "  relay's first sync of the village ≤ 3 s: {:.2} s — {}",
        relay_ms / 1e3,
        yes(relay_ms <= 3000.0)
    );
    println!(
        "  in one request stream: {relay_requests} requests (sign-in + mirror pages) — {}",
        if relay_requests <= 2 {
            "one stream"
        } else {
            "paged, not one stream"
        }
    );
    match &peer {
        Some(p) => println!(
            "  ≤ 1/5 of the peer's bytes: 1/{:.1} ({} against {}) — {}",
            p.initial_bytes as f64 / relay_bytes as f64,
            kib(relay_bytes as f64),
            kib(p.initial_bytes as f64),
            yes(p.initial_bytes as f64 / relay_bytes as f64 >= 5.0)
        ),
        None => println!("  ≤ 1/5 of the peer's bytes: no peer in this run"),
    }
    println!(
        "  {n} devices at the office at once, each as fast as one with the county (max within 10%): median {:.2}×, max {:.2}× the one's time — {}",
        total_med / base_total,
        total_max / base_total,
        yes(total_max <= base_total * 1.1)
    );
    Ok(())
}
