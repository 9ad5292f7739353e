//! Replicas: two real `gridwalk-server serve` processes on one PostgreSQL (SQLite is one
//! process, so these run on PostgreSQL only). Devices push to one replica and pull from the
//! other and get every record back once; a pull waiting on one replica is woken by the other
//! replica's announcement (the safety-net poll made ten minutes long, so nothing else could
//! wake it), and an operator's `inbox retry` likewise; a replica killed while it applies a
//! backlog leaves the work to the other, each entry applied once; and Debian's haproxy with
//! `deploy/haproxy.cfg` in front of two replicas syncs a device, also with one replica down.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use gridwalk::client::SyncClient;
use gridwalk::domain::codes::*;
use gridwalk::domain::geo::TrackPoint;
use gridwalk::domain::model::*;
use gridwalk::server::db::{Database, V};
use gridwalk::server::{records, repo, wake};
use gridwalk::store::Store;
use gridwalk::wire::{Lane, PushRequest, PushResponse};
use uuid::Uuid;

use super::e2e::hazard;
use super::util::{Backend, TestServer, api_client};

/// How long a test waits for something that takes a moment, at most, before it fails: a
/// guard against hanging, not a measure of speed.
const PATIENCE: Duration = Duration::from_secs(60);

/// The safety-net poll of the replicas that must be woken by announcements: far longer than
/// any test waits, and than a pull waits for its device's pushes (30 s).
const NO_POLL_MS: &str = "600000";

/// A `gridwalk-server serve` process on the test's database, its log in a file.
struct Replica {
    name: &'static str,
    child: std::process::Child,
    url: String,
    log: PathBuf,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    /// Starts a replica named `name` (its PostgreSQL connections carry it as their
    /// `application_name`), with its inbox log at debug level.
    async fn start(db_url: &str, name: &'static str, dir: &Path, env: &[(&str, &str)]) -> Replica {
        let addr_file = dir.join(format!("{name}.addr"));
        let log = dir.join(format!("{name}.log"));
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_gridwalk-server"))
            .args([
                "--db",
                &format!("{db_url}?application_name=gridwalk-{name}"),
            ])
            .args(["serve", "--listen", "127.0.0.1:0", "--addr-file"])
            .arg(&addr_file)
            .env(
                "RUST_LOG",
                "warn,gridwalk::server::inbox=debug,gridwalk::server::wake=debug",
            )
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut r = Replica {
            name,
            child,
            url: String::new(),
            log,
        };
        let started = tokio::time::Instant::now();
        while r.url.is_empty() {
            if let Ok(a) = std::fs::read_to_string(&addr_file)
                && !a.is_empty()
            {
                r.url = format!("http://{}", a.trim());
            } else if let Ok(Some(st)) = r.child.try_wait() {
                panic!("replica {name} exited ({st}):\n{}", r.log());
            } else {
                assert!(started.elapsed() < PATIENCE, "replica {name} did not start");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        // It hears the other replicas before it is used.
        r.wait_log("listening for the other servers' inbox moves")
            .await;
        r
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the replica's log says `what`.
    async fn wait_log(&self, what: &str) {
        let started = tokio::time::Instant::now();
        while !self.log().contains(what) {
            assert!(
                started.elapsed() < PATIENCE,
                "replica {} never logged {what:?}:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// A phone: a real store file, enrolled through `url`.
struct Phone {
    store: Arc<Mutex<Store>>,
    _dir: tempfile::TempDir,
}

impl Phone {
    async fn enrol(url: &str, username: &str) -> Phone {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Mutex::new(
            Store::open(dir.path().join("device.db")).unwrap(),
        ));
        gridwalk::client::enrol(url, username, gridwalk::server::demo::DEMO_PASSWORD, &store)
            .await
            .unwrap();
        Phone { store, _dir: dir }
    }

    fn token(&self) -> String {
        let s = self.store.lock().unwrap();
        s.meta(gridwalk::store::remote::TOKEN).unwrap().unwrap()
    }

    /// Records `n` hazards in `grid` as `author`; their ids.
    fn hazards(&self, grid: Uuid, author: &str, n: usize) -> Vec<Uuid> {
        let mut s = self.store.lock().unwrap();
        (0..n)
            .map(|_| {
                let mut h = hazard(grid);
                h.common.author = author.to_owned();
                s.create_record(&h, Utc::now()).unwrap();
                h.common.id
            })
            .collect()
    }

    /// Pushes the outbox's normal lane to `url` alone (no pull), `chunk` entries a push, and
    /// acknowledges each push in the store as the sync client does.
    async fn push_to(&self, url: &str, chunk: usize) -> usize {
        let token = self.token();
        let mut pushed = 0;
        loop {
            let (entries, device_id) = {
                let s = self.store.lock().unwrap();
                (s.outbox(Lane::Normal, chunk).unwrap(), s.device_id())
            };
            if entries.is_empty() {
                return pushed;
            }
            let n = entries.len();
            let req = PushRequest {
                device_id,
                lane: Lane::Normal,
                device_now: Utc::now(),
                entries,
            };
            let res = api_client()
                .post(format!("{url}/api/v1/sync/push"))
                .bearer_auth(&token)
                .json(&req)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
            let ack: PushResponse = res.json().await.unwrap();
            self.store
                .lock()
                .unwrap()
                .ack_outbox(Lane::Normal, ack.acked_through)
                .unwrap();
            pushed += n;
        }
    }

    /// A whole sync (push, photos, pull) with the real client, through `url`.
    async fn sync_via(&self, url: &str) -> gridwalk::client::SyncSummary {
        SyncClient::new(url, &self.token())
            .unwrap()
            .sync(&self.store, |_| {})
            .await
            .unwrap()
    }
}

/// The test's own database work, on a plain thread (the `postgres` client blocks).
async fn on_db<R: Send + 'static>(
    db: &Database,
    f: impl FnOnce(&mut dyn gridwalk::server::db::Sql) -> Result<R, gridwalk::server::db::DbError>
    + Send
    + 'static,
) -> R {
    let db = db.clone();
    tokio::task::spawn_blocking(move || db.tx(f))
        .await
        .unwrap()
        .unwrap()
}

async fn queued(db: &Database) -> i64 {
    on_db(db, repo::queued_count).await
}

/// Waits until the push inbox is empty.
async fn inbox_empty(db: &Database) {
    let started = tokio::time::Instant::now();
    while queued(db).await > 0 {
        assert!(
            started.elapsed() < PATIENCE,
            "the push inbox was not applied"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every id stored once, with one audit line each for its creation or append, and nothing
/// else of this device's pushes audited twice.
async fn stored_once(db: &Database, device: Uuid, ids: &[Uuid]) {
    let list: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    let (entities, audits, doubled) = on_db(db, move |tx| {
        let marks = (1..=list.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let args: Vec<V> = list.iter().map(|id| id.as_str().into()).collect();
        let entities = tx.query_one(
            &format!("SELECT count(*) FROM entities WHERE id IN ({marks})"),
            &args,
        )?[0]
            .i64()?;
        let audits = tx.query_one(
            &format!(
                "SELECT count(*) FROM audit WHERE action IN ('CREATE', 'APPEND') AND entity_id IN ({marks})"
            ),
            &args,
        )?[0]
            .i64()?;
        let doubled = tx.query(
            "SELECT action, entity_id, count(*) FROM audit WHERE device_id = $1
             GROUP BY action, entity_id HAVING count(*) > 1",
            &[device.to_string().into()],
        )?;
        Ok((entities, audits, doubled))
    })
    .await;
    assert_eq!(entities as usize, ids.len(), "every entry stored, once");
    assert_eq!(audits as usize, ids.len(), "one audit line per entry");
    assert!(doubled.is_empty(), "audited twice: {doubled:?}");
}

async fn two_replicas(seeded: &TestServer, dir: &Path, env: &[(&str, &str)]) -> (Replica, Replica) {
    let a = Replica::start(&seeded.db_url, "a", dir, env).await;
    let b = Replica::start(&seeded.db_url, "b", dir, env).await;
    (a, b)
}

/// Two workers, each pushing to one replica and syncing (the real client: its pull) through
/// the other, by turns: each pull brings back exactly the records just pushed, and the county
/// holds every record once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_push_to_one_replica_and_pull_from_the_other() {
    let seeded = TestServer::start(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_replicas(&seeded, dir.path(), &[]).await;
    let replicas = [&a, &b];
    let workers = [("worker-a", 0), ("worker-b", 1)];
    let mut phones = Vec::new();
    for (i, (who, _)) in workers.iter().enumerate() {
        phones.push(Phone::enrol(&replicas[i].url, who).await);
    }
    let mut all = [Vec::new(), Vec::new()];
    for round in 0..4 {
        for (i, (who, grid)) in workers.iter().enumerate() {
            let phone = &phones[i];
            let ids = phone.hazards(seeded.county.grids[*grid].grid.id, who, 5);
            let (to, from) = (replicas[(round + i) % 2], replicas[(round + i + 1) % 2]);
            assert_eq!(phone.push_to(&to.url, 500).await, 5);
            let sum = phone.sync_via(&from.url).await;
            assert_eq!(sum.pushed, 0, "pushed already");
            assert_eq!(
                sum.pulled, 5,
                "round {round}: {who}'s pull from replica {} brings back its 5 records",
                from.name
            );
            assert_eq!(sum.rejected, 0);
            all[i].extend(ids);
        }
    }
    inbox_empty(&seeded.db).await;
    for (i, phone) in phones.iter().enumerate() {
        let device = phone.store.lock().unwrap().device_id();
        stored_once(&seeded.db, device, &all[i]).await;
        let held: BTreeSet<Uuid> = phone
            .store
            .lock()
            .unwrap()
            .records(&Default::default())
            .unwrap()
            .iter()
            .map(|r| r.id)
            .filter(|id| all[i].contains(id))
            .collect();
        assert_eq!(held.len(), all[i].len(), "the phone holds each record once");
    }
    for r in replicas {
        assert!(!r.log().contains("pulling anyway"), "{}", r.log());
    }
}

/// Holds the inbox lock, as a replica applying the inbox would, until told to go on; then
/// runs `then` in the same transaction.
struct HeldLock {
    go: std::sync::mpsc::Sender<()>,
    done: tokio::task::JoinHandle<()>,
}

impl HeldLock {
    async fn take(
        db: &Database,
        then: impl FnOnce(&mut dyn gridwalk::server::db::Sql) + Send + 'static,
    ) -> HeldLock {
        let (locked, is_locked) = tokio::sync::oneshot::channel();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let db = db.clone();
        let done = tokio::task::spawn_blocking(move || {
            db.tx(|tx| {
                tx.exec(
                    "SELECT pg_advisory_xact_lock($1)",
                    &[V::I(records::INBOX_LOCK)],
                )?;
                locked.send(()).unwrap();
                wait.recv().unwrap();
                then(tx);
                Ok::<_, gridwalk::server::db::DbError>(())
            })
            .unwrap();
        });
        is_locked.await.unwrap();
        HeldLock { go, done }
    }

    /// Runs the rest and commits, which releases the lock.
    async fn release(self) {
        self.go.send(()).unwrap();
        self.done.await.unwrap();
    }
}

/// The test's own connection listening to the announcements, on its own thread.
struct Heard {
    payloads: Arc<Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Heard {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Heard {
    async fn listen(db_url: &str) -> Heard {
        use postgres::fallible_iterator::FallibleIterator;
        let payloads = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (ready, is_ready) = tokio::sync::oneshot::channel();
        let (p, s, url) = (payloads.clone(), stop.clone(), db_url.to_owned());
        std::thread::spawn(move || {
            let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            c.batch_execute(&format!("LISTEN {}", wake::CHANNEL))
                .unwrap();
            ready.send(()).unwrap();
            while !s.load(std::sync::atomic::Ordering::SeqCst) {
                let mut n = c.notifications();
                let mut it = n.timeout_iter(Duration::from_millis(200));
                while let Ok(Some(note)) = it.next() {
                    p.lock().unwrap().push(note.payload().to_owned());
                }
            }
        });
        is_ready.await.unwrap();
        Heard { payloads, stop }
    }

    /// Waits until an announcement `is` was heard; returns it.
    async fn wait(&self, what: &str, is: impl Fn(&str) -> bool) -> String {
        let started = tokio::time::Instant::now();
        loop {
            if let Some(p) = self.payloads.lock().unwrap().iter().find(|p| is(p)) {
                return p.clone();
            }
            assert!(
                started.elapsed() < PATIENCE,
                "never heard {what}: {:?}",
                self.payloads.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// With the safety-net poll ten minutes long, only the announcements can move things along:
/// a pull waiting on replica B for pushes that were received by replica A is answered when
/// the inbox is applied elsewhere (here by the test itself, holding the inbox lock as a third
/// replica would, so that neither A nor B can be the one that applied it), and not after the
/// 30 s a pull waits at most; the replicas announce what they receive and apply; and an
/// operator's `inbox retry` is applied by the running replicas at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcements_wake_the_other_replica() {
    let seeded = TestServer::start(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_replicas(
        &seeded,
        dir.path(),
        &[("GRIDWALK_INBOX_POLL_MS", NO_POLL_MS)],
    )
    .await;
    let heard = Heard::listen(&seeded.db_url).await;
    let phone = Phone::enrol(&a.url, "worker-a").await;
    let grid = seeded.county.grids[0].grid.id;

    // A pull on B waits for pushes received by A, which nobody may apply yet.
    let lock = HeldLock::take(&seeded.db, |tx| {
        let last = records::apply_inbox(tx, 100_000, Utc::now())
            .unwrap()
            .expect("the pushes were queued");
        wake::notify(tx, wake::Move::Applied(last), "test").unwrap();
    })
    .await;
    let ids = phone.hazards(grid, "worker-a", 3);
    phone.push_to(&a.url, 500).await;
    heard
        .wait("A announce the push it received", |p| {
            p.starts_with("queued ")
        })
        .await;
    let pull = {
        let (url, token, store) = (b.url.clone(), phone.token(), phone.store.clone());
        tokio::spawn(async move {
            SyncClient::new(&url, &token)
                .unwrap()
                .sync(&store, |_| {})
                .await
                .unwrap()
        })
    };
    b.wait_log("a pull waits for its device's pushes").await;
    lock.release().await;
    let sum = tokio::time::timeout(PATIENCE, pull)
        .await
        .expect("the pull was answered")
        .unwrap();
    assert_eq!(sum.pulled, 3, "the pull brought back the pushed records");
    b.wait_log("its pull goes on").await;
    assert!(
        !b.log().contains("pulling anyway"),
        "the pull was not woken: {}",
        b.log()
    );
    let device = phone.store.lock().unwrap().device_id();
    stored_once(&seeded.db, device, &ids).await;

    // The replicas announce what they apply, too (whichever of them gets the lock).
    let more = phone.hazards(grid, "worker-a", 2);
    phone.push_to(&a.url, 500).await;
    heard
        .wait("a replica announce what it applied", |p| {
            p.starts_with("applied ") && !p.ends_with(" test")
        })
        .await;
    assert_eq!(phone.sync_via(&b.url).await.pulled, 2);

    // A push set aside (as after failing to apply) and put back by the operator: the
    // running replicas apply it at once, told by the command's announcement.
    let lock = HeldLock::take(&seeded.db, |tx| {
        let n = tx
            .exec(
                "UPDATE push_inbox SET quarantined_at = $1, attempts = 3, last_error = 'test'",
                &[Utc::now().to_rfc3339().into()],
            )
            .unwrap();
        assert_eq!(n, 1);
    })
    .await;
    let retried = phone.hazards(grid, "worker-a", 2);
    phone.push_to(&b.url, 500).await;
    lock.release().await;
    let row = on_db(&seeded.db, repo::quarantined_pushes).await[0].id;
    let out = tokio::task::spawn_blocking({
        let url = seeded.db_url.clone();
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_gridwalk-server"))
                .args(["--db", &url, "inbox", "retry", &row.to_string()])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    heard
        .wait("the retry announced", |p| p == "queued operator")
        .await;
    inbox_empty(&seeded.db).await;
    assert_eq!(on_db(&seeded.db, repo::quarantined_pushes).await.len(), 0);
    let all: Vec<Uuid> = ids.iter().chain(&more).chain(&retried).copied().collect();
    stored_once(&seeded.db, device, &all).await;
    assert_eq!(phone.sync_via(&a.url).await.pulled, 2);
    for r in [&a, &b] {
        assert!(!r.log().contains("pulling anyway"), "{}", r.log());
    }
}

/// Which replica holds the inbox lock, if any: its name and its connection's process id.
async fn lock_holder(db: &Database) -> Option<(String, i64)> {
    on_db(db, |tx| {
        tx.query_opt(
            "SELECT a.application_name, l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = $1
               AND l.objid::bigint = $2
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[
                V::I(records::INBOX_LOCK >> 32),
                V::I(records::INBOX_LOCK & 0xffff_ffff),
            ],
        )?
        .map(|r| Ok((r[0].string()?, r[1].i64()?)))
        .transpose()
    })
    .await
}

/// A replica SIGKILLed while it applies a backlog of thousands of entries: its transaction
/// and its advisory lock go with its connection, the other replica applies the whole backlog
/// (each entry once: entities, audit lines, patrol points), and the phone gets everything
/// back through the survivor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_while_applying_leaves_the_work_to_the_other() {
    let seeded = TestServer::start(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_replicas(&seeded, dir.path(), &[]).await;
    let mut replicas = [a, b];
    let phone = Phone::enrol(&replicas[0].url, "worker-a").await;
    let grid = seeded.county.grids[0].grid.id;

    // The backlog: a patrol and its track in batches, and thousands of hazards.
    let now = Utc::now();
    let patrol = Patrol {
        common: Common::new(
            Domain::Patrol,
            grid,
            "worker-a",
            now - chrono::Duration::hours(1),
        ),
        started_at: now - chrono::Duration::hours(1),
        ended_at: None,
        notes: String::new(),
        distance_m: 0.0,
    };
    let mut ids = vec![patrol.common.id];
    let mut points = 0;
    {
        let mut s = phone.store.lock().unwrap();
        s.create_record(&patrol, now).unwrap();
        for batch in 0..20 {
            let pp = PatrolPoints {
                id: new_id(),
                patrol_id: patrol.common.id,
                points: (0..10)
                    .map(|i| TrackPoint {
                        at: now - chrono::Duration::minutes(50)
                            + chrono::Duration::seconds(batch * 60 + i * 5),
                        lon: 116.4 + (batch * 10 + i) as f64 * 0.0001,
                        lat: 28.10,
                        accuracy_m: Some(5.0),
                    })
                    .collect(),
            };
            s.append_patrol_points(&pp, now).unwrap();
            ids.push(pp.id);
            points += pp.points.len();
        }
    }
    ids.extend(phone.hazards(grid, "worker-a", 3_000));
    let entries = phone.push_to(&replicas[0].url, 600).await;
    assert_eq!(entries, ids.len());

    // Whichever replica is applying it is killed at once.
    let started = tokio::time::Instant::now();
    let (holder, pid) = loop {
        if let Some(h) = lock_holder(&seeded.db).await {
            break h;
        }
        assert!(
            queued(&seeded.db).await > 0,
            "the backlog was applied before a replica was seen applying it"
        );
        assert!(started.elapsed() < PATIENCE, "nobody applies the backlog");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let dead = replicas
        .iter()
        .position(|r| holder == format!("gridwalk-{}", r.name))
        .unwrap_or_else(|| panic!("the lock is held by {holder}"));
    replicas[dead].kill();
    let left = queued(&seeded.db).await;
    println!(
        "killed replica {} while applying; {left} pushes left",
        replicas[dead].name
    );
    assert!(left > 0, "the killed replica had applied the whole backlog");
    let survivor = &replicas[1 - dead];

    // Its connection ends, and the advisory lock with it.
    let started = tokio::time::Instant::now();
    while on_db(&seeded.db, move |tx| {
        tx.query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
            &[V::I(pid)],
        )?[0]
            .i64()
    })
    .await
        > 0
    {
        assert!(
            started.elapsed() < PATIENCE,
            "the dead replica's connection stays"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    inbox_empty(&seeded.db).await;
    assert_eq!(on_db(&seeded.db, repo::quarantined_pushes).await.len(), 0);
    let device = phone.store.lock().unwrap().device_id();
    stored_once(&seeded.db, device, &ids).await;
    let patrol_id = patrol.common.id.to_string();
    let batches = on_db(&seeded.db, move |tx| {
        tx.query_one(
            "SELECT count(*) FROM entities WHERE parent_id = $1 AND kind = 'PATROL_POINTS'",
            &[patrol_id.into()],
        )?[0]
            .i64()
    })
    .await;
    assert_eq!(batches, 20, "every track batch once");

    // The phone syncs through the survivor and gets it all back.
    let sum = phone.sync_via(&survivor.url).await;
    assert_eq!(sum.pulled as usize, ids.len());
    assert_eq!(sum.rejected, 0);
    let s = phone.store.lock().unwrap();
    assert_eq!(s.outbox_len().unwrap(), 0);
    assert_eq!(s.patrol_track(patrol.common.id).unwrap().len(), points);
    assert!(!survivor.log().contains("pulling anyway"));
}

/// Debian's haproxy, if the machine has it.
fn haproxy() -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("haproxy"))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `deploy/haproxy.cfg` as it is, in front of two replicas on loopback: a phone enrols and
/// syncs through it, and goes on syncing when one replica is gone. Skipped, saying so, where
/// haproxy is not installed (scripts/test.sh installs it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_in_front_of_two_replicas() {
    let Some(haproxy) = haproxy() else {
        eprintln!(
            "SKIPPED haproxy_in_front_of_two_replicas: haproxy is not installed \
             (apt-get install haproxy, as scripts/test.sh does)"
        );
        return;
    };
    let seeded = TestServer::start(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_replicas(&seeded, dir.path(), &[]).await;
    let mut replicas = [a, b];
    let front = format!("127.0.0.1:{}", free_port());
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/haproxy.cfg");
    let log = dir.path().join("haproxy.log");
    let mut cmd = std::process::Command::new(&haproxy);
    cmd.arg("-db")
        .arg("-f")
        .arg(&config)
        .env("GRIDWALK_PROXY", &front)
        .env(
            "GRIDWALK_REPLICA_A",
            replicas[0].url.trim_start_matches("http://"),
        )
        .env(
            "GRIDWALK_REPLICA_B",
            replicas[1].url.trim_start_matches("http://"),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    // Debian's lines switch to the haproxy user: only root can.
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if !root {
        cmd.env("GRIDWALK_HAPROXY_UNPRIVILEGED", "1");
    }
    struct Proxy(std::process::Child);
    impl Drop for Proxy {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut proxy = Proxy(cmd.spawn().unwrap());
    let url = format!("http://{front}");

    // Up once it answers the replicas' health check through.
    let started = tokio::time::Instant::now();
    loop {
        let ok = reqwest::get(format!("{url}/healthz"))
            .await
            .is_ok_and(|r| r.status() == 200);
        if ok {
            break;
        }
        if let Ok(Some(st)) = proxy.0.try_wait() {
            panic!(
                "haproxy exited ({st}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(started.elapsed() < PATIENCE, "haproxy never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let grid = seeded.county.grids[0].grid.id;
    let phone = Phone::enrol(&url, "worker-a").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.extend(phone.hazards(grid, "worker-a", 4));
        let sum = phone.sync_via(&url).await;
        assert_eq!((sum.pushed, sum.pulled), (4, 4));
    }
    // One replica goes away; the proxy sends everything to the other.
    replicas[0].kill();
    for _ in 0..3 {
        ids.extend(phone.hazards(grid, "worker-a", 4));
        let sum = phone.sync_via(&url).await;
        assert_eq!((sum.pushed, sum.pulled), (4, 4));
    }
    let device = phone.store.lock().unwrap().device_id();
    stored_once(&seeded.db, device, &ids).await;
    assert!(!replicas[1].log().contains("pulling anyway"));
}
