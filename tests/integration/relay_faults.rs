//! Randomized fault runs over the two-hop path: a device syncing at its village office's
//! relay, or straight with the county, with a faulty loopback proxy on every link (device →
//! relay, relay → county, device → county), the device killed mid-sync, the relay's upstream
//! round cut short and the relay itself killed and started again over its database. After
//! each run, with the links healed: the county holds every entry the device wrote exactly
//! once (nothing lost, nothing doubled, nothing refused as a gap), and the county, the relay's
//! mirror and the device hold the same state for the device's scope.
//!
//! Knobs, as for the one-hop runs (`sync::faults`): `GRIDWALK_RELAY_FAULT_RUNS=N` (default
//! 200, SQLite), `GRIDWALK_RELAY_FAULT_SEED=S` (with `…_RUNS=1`, replays the run that printed
//! seed S). `GRIDWALK_FAULT_RUNS=2000 bash scripts/test.sh` (long mode) runs 2,000 here too.

use std::sync::Arc;
use std::time::Duration;

use gridwalk::server::db::Database;
use gridwalk::server::relay::{self, Relay};
use gridwalk::server::{records, repo};

use crate::relay::{RELAY_PASSWORD, RELAY_USER, closed_port, relay_account};
use crate::sync::faults::{
    Mode, Proxy, Rng, client_via, env_u64, futures_catch, reopen, verify_exactly_once,
    write_randomly,
};
use crate::sync::util::{Backend, Device, TestServer};

/// A relay over its database, its upstream rounds and its listener: killed by aborting both
/// (whatever step they are at), started again over the same database.
struct RelayNode {
    relay: Arc<Relay>,
    url: String,
    rounds: tokio::task::JoinHandle<()>,
    serve: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RelayNode {
    async fn start(db: Database, upstream: &str) -> RelayNode {
        let relay = Relay::new(
            db,
            relay::Config {
                upstream: upstream.to_owned(),
                user: RELAY_USER.into(),
                password: RELAY_PASSWORD.into(),
                advertise: None,
                // Rounds only when a device pushes or signs in, or the test asks.
                every: Duration::from_secs(3600),
            },
        )
        .unwrap();
        let rounds = tokio::spawn(relay::upstream::run(relay.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let serve = tokio::spawn(relay::serve(
            relay.clone(),
            listener,
            std::future::pending(),
        ));
        RelayNode {
            relay,
            url,
            rounds,
            serve,
        }
    }

    fn kill(&self) {
        self.rounds.abort();
        self.serve.abort();
    }
}

impl Drop for RelayNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The links of one county–relay–device setup.
struct Links {
    /// Device → relay.
    office: Proxy,
    /// Relay → county.
    uplink: Proxy,
    /// Device → county.
    direct: Proxy,
}

impl Links {
    fn heal(&self) {
        for p in [&self.office, &self.uplink, &self.direct] {
            p.set(Mode::Pass, 0);
        }
    }

    fn break_randomly(&self, rng: &mut Rng) {
        for p in [&self.office, &self.uplink, &self.direct] {
            p.set(
                Mode::Random {
                    percent: 10 + rng.below(40),
                },
                rng.next_u64(),
            );
        }
    }
}

/// Syncs that completed at the office, completed with the county, were killed, failed and
/// were retried later: the runs' mix, printed at the end.
static TALLY: [std::sync::atomic::AtomicU64; 4] =
    [const { std::sync::atomic::AtomicU64::new(0) }; 4];

fn tally(i: usize) {
    TALLY[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Rounds with healed links until the relay holds no entry (and, with `photos`, no photo)
/// and the county answered.
async fn settle_relay(node: &RelayNode, photos: bool) {
    for _ in 0..20 {
        if node.relay.round_now(Duration::from_secs(30)).await {
            let s = node.relay.status().await.unwrap();
            if s.uplink_up && s.waiting_entries == 0 && (!photos || s.waiting_photos == 0) {
                return;
            }
        }
    }
    let photos = node
        .relay
        .db_read(|db| {
            Ok(db
                .query(
                    "SELECT sha256, size, received, complete, forwarded_offset FROM relay_photos
                     WHERE forwarded_offset < size",
                    &[],
                )?
                .iter()
                .map(|r| format!("{r:?}"))
                .collect::<Vec<_>>())
        })
        .await
        .unwrap();
    panic!(
        "the relay did not settle with the links healed: {:?}; photos waiting: {photos:?}",
        node.relay.status().await.unwrap()
    );
}

async fn one_run(
    server: &TestServer,
    relay_db: &Database,
    node: &mut RelayNode,
    links: &Links,
    seed: u64,
) {
    let mut rng = Rng::new(seed);
    let device = Device::enrol(server, "worker-a").await;
    let device_id = device.with(|s| s.device_id());
    let written = write_randomly(&device, server, &mut rng, 1);
    // The relay learns the new device's session with its next round.
    links.heal();
    settle_relay(node, false).await;

    let steps = 4 + rng.below(8);
    for step in 0..steps {
        links.break_randomly(&mut rng);
        match rng.below(10) {
            // The device syncs: at the office when the relay answers, else with the county.
            0..=5 => {
                let office = if rng.chance(25) {
                    closed_port()
                } else {
                    links.office.url.clone()
                };
                device.with(|s| s.set_relay_url(Some(&office))).unwrap();
                let client = client_via(&device, &links.direct.url);
                let kill = rng.chance(40);
                let limit = if kill {
                    Duration::from_millis(rng.below(600))
                } else {
                    Duration::from_secs(60)
                };
                match tokio::time::timeout(limit, client.sync(&device.store, |_| {})).await {
                    Ok(Ok(sum)) if sum.via_relay => tally(0),
                    Ok(Ok(_)) => tally(1),
                    Err(_) => tally(2),
                    Ok(Err(e)) if e.is_retryable() => tally(3),
                    Ok(Err(e)) => panic!("step {step}: a sync failed for good: {e:?}"),
                }
                if rng.chance(30) {
                    reopen(&device);
                }
            }
            // The relay's upstream round, sometimes cut short.
            6..=7 => {
                let limit = Duration::from_millis(if rng.chance(50) {
                    rng.below(300)
                } else {
                    20_000
                });
                let _ = node.relay.round_now(limit).await;
            }
            // The relay killed at whatever step it is at, and started again.
            _ => {
                node.kill();
                *node = RelayNode::start(relay_db.clone(), &links.uplink.url).await;
                links.office.retarget(&node.url);
            }
        }
    }

    // The links healed: the device leaves what it still has at the office, the relay
    // forwards everything (entries, then photos), and the device's next sync there learns
    // that the county has all of it.
    links.heal();
    settle_relay(node, false).await;
    device
        .with(|s| s.set_relay_url(Some(&links.office.url)))
        .unwrap();
    let sum = client_via(&device, &links.direct.url)
        .sync(&device.store, |_| {})
        .await
        .unwrap();
    assert!(sum.via_relay, "the healed office answers");
    settle_relay(node, true).await;
    let sum = client_via(&device, &links.direct.url)
        .sync(&device.store, |_| {})
        .await
        .unwrap();
    assert!(sum.via_relay);
    assert_eq!(
        device.with(|s| s.outbox_len()).unwrap(),
        0,
        "the county's acknowledgement of everything reaches the device at the office"
    );
    // Every photo is at the county and the device learnt it at the office, but for a photo
    // whose entry went to the county directly: the office was never told of it (its upload
    // there answers 404), so it waits for a sync with the county.
    let pending = device.with(|s| s.pending_photos()).unwrap();
    for p in &pending {
        let sha = p.sha256.clone();
        let at_office = node
            .relay
            .db_read(move |db| {
                Ok(db
                    .query_opt(
                        "SELECT 1 FROM relay_photos WHERE sha256 = $1",
                        &[sha.into()],
                    )?
                    .is_some())
            })
            .await
            .unwrap();
        assert!(
            !at_office,
            "photo {} left at the office, forwarded, and still waiting on the device",
            p.sha256
        );
    }
    // A direct sync afterwards has nothing to send.
    device.with(|s| s.set_relay_url(None)).unwrap();
    let sum = client_via(&device, &links.direct.url)
        .sync(&device.store, |_| {})
        .await
        .unwrap();
    assert_eq!(
        (sum.pushed, sum.photos),
        (0, pending.len() as u64),
        "a direct sync sends only the photos the office never had: {sum:?}"
    );
    verify_exactly_once(server, &device, &written).await;

    // Convergence: the relay's mirror answers this device's pull from 0 exactly as the
    // county does (changes, histories, refusals, cursor).
    settle_relay(node, true).await;
    let county = pull_from_zero(server.db.clone(), device_id).await;
    let mirrored = pull_from_zero(relay_db.clone(), device_id).await;
    assert_eq!(
        county.cursor, mirrored.cursor,
        "the mirror reaches the county's cursor"
    );
    assert!(county == mirrored, "the relay's mirror = the county");
    // And the device holds what the county holds: its store pulled to the same cursor.
    let local_cursor: i64 = device
        .with(|s| s.meta(gridwalk::store::remote::PULL_CURSOR))
        .unwrap()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    assert_eq!(local_cursor, county.cursor, "the device pulled all of it");
    drop(device);
}

async fn pull_from_zero(db: Database, device: uuid::Uuid) -> gridwalk::wire::PullResponse {
    tokio::task::spawn_blocking(move || {
        db.read(|tx| -> Result<_, gridwalk::server::db::DbError> {
            let (user, _) = repo::user_by_name(tx, "worker-a")?.expect("worker-a");
            records::pull(tx, &user, Some(device), 0, 0, 100_000)
                .map_err(|e| gridwalk::server::db::DbError::Type(e.to_string()))
        })
        .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_two_hop() {
    let runs = env_u64("GRIDWALK_RELAY_FAULT_RUNS")
        .or_else(|| env_u64("GRIDWALK_FAULT_RUNS"))
        .unwrap_or(200);
    let base = env_u64("GRIDWALK_RELAY_FAULT_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    println!(
        "two-hop fault runs: {runs} runs, base seed {base} (replay: GRIDWALK_RELAY_FAULT_SEED={base})"
    );
    let server = TestServer::start(Backend::Sqlite).await;
    relay_account(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.db").display().to_string();
    let relay_db = tokio::task::spawn_blocking(move || {
        let db = Database::open(&path).unwrap();
        db.migrate().unwrap();
        db
    })
    .await
    .unwrap();
    let uplink = Proxy::start(&server.url).await;
    let mut node = RelayNode::start(relay_db.clone(), &uplink.url).await;
    let links = Links {
        office: Proxy::start(&node.url).await,
        uplink,
        direct: Proxy::start(&server.url).await,
    };
    let started = std::time::Instant::now();
    for i in 0..runs {
        let seed = base.wrapping_add(i);
        let run =
            std::panic::AssertUnwindSafe(one_run(&server, &relay_db, &mut node, &links, seed));
        if let Err(e) = futures_catch(run).await {
            println!(
                "two-hop fault run {i} FAILED: replay with GRIDWALK_RELAY_FAULT_SEED={seed} GRIDWALK_RELAY_FAULT_RUNS=1"
            );
            std::panic::resume_unwind(e);
        }
    }
    let t: Vec<u64> = TALLY
        .iter()
        .map(|n| n.load(std::sync::atomic::Ordering::Relaxed))
        .collect();
    println!(
        "two-hop fault runs: {runs} passed in {:.1} s; syncs in the faulty phase: {} at the office, {} with the county, {} killed, {} failed and retried; faults injected: office {:?}, uplink {:?}, direct {:?}",
        started.elapsed().as_secs_f64(),
        t[0],
        t[1],
        t[2],
        t[3],
        links.office.faults(),
        links.uplink.faults(),
        links.direct.faults()
    );
}
