//! The village office end to end with real processes: the county (`gridwalk-server serve
//! --demo`) and its office's relay (`gridwalk-server relay`, account `office` of 山下村), a
//! loopback proxy on each link (office Wi-Fi: device → relay; the county line: relay →
//! county; and device → county), and two phones (real store files and the app's sync client)
//! of 山下村's workers.
//!
//! The county line down: both phones sync at the office (their entries held, 已交村办, and
//! pulls answered from the mirror); the relay killed and started again over its database;
//! the line back: the county has every entry once, and its answers (a reply) reach the phones
//! through the office. Mixed paths: a phone syncing with the county directly and then at the
//! office again sends nothing twice. A session revoked at the county stops working at the
//! office with the relay's next round.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use gridwalk::client::{SyncClient, enrol};
use gridwalk::server::db::Database;
use gridwalk::store::Store;
use gridwalk::wire::relay::RelayStatus;

use crate::sync::e2e::hazard;
use crate::sync::faults::{Mode, Proxy};
use crate::sync::util::api_client;

const PASSWORD: &str = "gridwalk-demo";

/// A `gridwalk-server` process, killed when dropped.
struct Process {
    child: std::process::Child,
    url: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    async fn spawn(args: &[&str], dir: &Path, password: Option<&str>) -> Process {
        let addr_file = dir.join(format!("addr-{}", uuid::Uuid::now_v7().simple()));
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gridwalk-server"));
        cmd.args(args)
            .arg("--addr-file")
            .arg(&addr_file)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some(p) = password {
            cmd.env("GRIDWALK_PASSWORD", p);
        }
        let mut p = Process {
            child: cmd.spawn().unwrap(),
            url: String::new(),
        };
        for _ in 0..1200 {
            if let Ok(a) = std::fs::read_to_string(&addr_file)
                && !a.is_empty()
            {
                p.url = format!("http://{}", a.trim());
                return p;
            }
            if let Ok(Some(st)) = p.child.try_wait() {
                panic!("gridwalk-server {args:?} exited: {st}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("gridwalk-server {args:?} did not start in 60 s");
    }
}

async fn relay_process(db: &str, uplink: &str, dir: &Path) -> Process {
    Process::spawn(
        &[
            "--db",
            db,
            "relay",
            "--upstream",
            uplink,
            "--user",
            "office",
            "--listen",
            "127.0.0.1:0",
            "--every",
            "1",
        ],
        dir,
        Some(PASSWORD),
    )
    .await
}

async fn status(relay: &str) -> RelayStatus {
    api_client()
        .get(format!("{relay}/status.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..600 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within 60 s: {what}");
}

struct Phone {
    store: Arc<Mutex<Store>>,
    _dir: tempfile::TempDir,
}

impl Phone {
    async fn enrol(county: &str, office: &str, username: &str) -> Phone {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Mutex::new(
            Store::open(dir.path().join("device.db")).unwrap(),
        ));
        enrol(county, username, PASSWORD, &store).await.unwrap();
        store.lock().unwrap().set_relay_url(Some(office)).unwrap();
        Phone { store, _dir: dir }
    }

    fn client(&self) -> SyncClient {
        SyncClient::from_store(&self.store.lock().unwrap()).unwrap()
    }

    /// Files `n` hazards in the phone's first grid; their ids.
    fn file_hazards(&self, username: &str, n: usize) -> Vec<uuid::Uuid> {
        let mut s = self.store.lock().unwrap();
        let grid = s.grids().unwrap()[0].id;
        (0..n)
            .map(|i| {
                let mut h = hazard(grid);
                h.common.author = username.into();
                h.description = format!("{username} 村办上报 {i}");
                s.create_record(&h, Utc::now()).unwrap();
                h.common.id
            })
            .collect()
    }

    fn token(&self) -> String {
        self.store
            .lock()
            .unwrap()
            .meta(gridwalk::store::remote::TOKEN)
            .unwrap()
            .unwrap()
    }
}

/// How many times the county's audit says a record was created (the county's database file,
/// read beside its process).
fn created_at_county(db: &Database, id: uuid::Uuid) -> i64 {
    db.read(|tx| {
        tx.query_one(
            "SELECT count(*) FROM audit WHERE action = 'CREATE' AND entity_id = $1",
            &[id.to_string().into()],
        )?[0]
            .i64()
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_office_syncs_through_a_county_outage_with_real_processes() {
    let dir = tempfile::tempdir().unwrap();
    let county_db = dir.path().join("county.db").display().to_string();
    let relay_db = dir.path().join("relay.db").display().to_string();
    let county = Process::spawn(
        &[
            "--db",
            &county_db,
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
        ],
        dir.path(),
        None,
    )
    .await;
    let county_read = Database::open(&county_db).unwrap();
    let uplink = Proxy::start(&county.url).await;
    let direct = Proxy::start(&county.url).await;
    let relay = relay_process(&relay_db, &uplink.url, dir.path()).await;
    let office = Proxy::start(&relay.url).await;

    // Two of 山下村's workers, enrolled with the county; the relay mirrors their sessions.
    let a = Phone::enrol(&direct.url, &office.url, "worker-a").await;
    let b = Phone::enrol(&direct.url, &office.url, "worker-b").await;
    until("the relay mirrors the phones' sessions", async || {
        let (st, _) = pull_status(&relay.url, &b.token()).await;
        st == 200
    })
    .await;
    let s = status(&relay.url).await;
    assert!(s.uplink_up, "{s:?}");
    assert_eq!(s.village.len(), 12);

    // The county line down: both sync at the office, entries held there.
    uplink.set(Mode::Down, 0);
    until("the relay sees the line down", async || {
        !status(&relay.url).await.uplink_up
    })
    .await;
    let mut filed = a.file_hazards("worker-a", 3);
    filed.extend(b.file_hazards("worker-b", 2));
    for (p, n) in [(&a, 3), (&b, 2)] {
        let sum = p.client().sync(&p.store, |_| {}).await.unwrap();
        assert!(sum.via_relay, "synced at the office");
        assert_eq!(sum.held, n, "{sum:?}");
        let s = p.store.lock().unwrap();
        assert_eq!(s.outbox_len().unwrap(), n, "kept until the county has them");
        assert_eq!(
            s.meta(gridwalk::store::remote::LAST_SYNC_VIA)
                .unwrap()
                .as_deref(),
            Some(gridwalk::store::remote::VIA_RELAY)
        );
    }
    let s = status(&relay.url).await;
    assert_eq!((s.uplink_up, s.waiting_entries), (false, 5), "{s:?}");
    assert_eq!(s.devices_seen_today, 2);
    for id in &filed {
        assert_eq!(
            created_at_county(&county_read, *id),
            0,
            "not at the county yet"
        );
    }
    // The office's status page says so, in Chinese.
    let page = api_client()
        .get(format!("{}/", relay.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("中转站"), "{page}");

    // The relay killed and started again over its database: nothing held is lost.
    drop(relay);
    let relay = relay_process(&relay_db, &uplink.url, dir.path()).await;
    office.retarget(&relay.url);
    assert_eq!(status(&relay.url).await.waiting_entries, 5);

    // The line back: the county has every entry once; the phones learn it at the office.
    uplink.set(Mode::Pass, 0);
    until("the relay forwards what it holds", async || {
        let s = status(&relay.url).await;
        s.uplink_up && s.waiting_entries == 0
    })
    .await;
    for id in &filed {
        until("the county applies the forwarded entry", async || {
            created_at_county(&county_read, *id) == 1
        })
        .await;
    }
    // The county answers one of worker-a's records.
    let clerk = gridwalk::client::login(&county.url, "secretary", PASSWORD, uuid::Uuid::now_v7())
        .await
        .unwrap();
    let res = api_client()
        .post(format!(
            "{}/api/v1/records/{}/replies",
            county.url, filed[0]
        ))
        .bearer_auth(&clerk.token)
        .json(&serde_json::json!({"text": "已派人查看"}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    until("the reply reaches a phone at the office", async || {
        let sum = a.client().sync(&a.store, |_| {}).await.unwrap();
        assert!(sum.via_relay);
        let s = a.store.lock().unwrap();
        s.outbox_len().unwrap() == 0
            && s.replies(filed[0])
                .unwrap()
                .iter()
                .any(|r| r.text.contains("已派人查看"))
    })
    .await;

    // Mixed paths: worker-b files more, syncs with the county directly (the office out of
    // reach), then at the office: nothing twice.
    let more = b.file_hazards("worker-b", 2);
    b.store
        .lock()
        .unwrap()
        .set_relay_url(Some("http://127.0.0.1:9"))
        .unwrap();
    let sum = b.client().sync(&b.store, |_| {}).await.unwrap();
    assert!(!sum.via_relay);
    b.store
        .lock()
        .unwrap()
        .set_relay_url(Some(&office.url))
        .unwrap();
    let sum = b.client().sync(&b.store, |_| {}).await.unwrap();
    assert!(sum.via_relay);
    assert_eq!(b.store.lock().unwrap().outbox_len().unwrap(), 0);
    for id in filed.iter().chain(&more) {
        until("each record at the county", async || {
            created_at_county(&county_read, *id) == 1
        })
        .await;
    }

    // worker-b signs out at the county: the office refuses the session by its next round.
    let res = api_client()
        .post(format!("{}/api/v1/auth/logout", county.url))
        .bearer_auth(b.token())
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    until("the revocation reaches the office", async || {
        pull_status(&relay.url, &b.token()).await.0 == 401
    })
    .await;
    // worker-a's session still works there.
    assert_eq!(pull_status(&relay.url, &a.token()).await.0, 200);

    // A phone that syncs only at the office stays signed in: its use there reaches the county
    // with the relay's next round and slides the session as a use at the county would.
    let hash = gridwalk::server::auth::token_hash(&a.token());
    let soon = gridwalk::server::repo::ts(Utc::now() + chrono::Duration::days(2));
    county_read
        .tx(|tx| {
            tx.exec(
                "UPDATE sessions SET expires_at = $1 WHERE token_hash = $2",
                &[soon.into(), hash.clone().into()],
            )
        })
        .unwrap();
    let sum = a.client().sync(&a.store, |_| {}).await.unwrap();
    assert!(sum.via_relay);
    until(
        "the county slides the session used at the office",
        async || {
            let expires = county_read
                .read(|tx| {
                    tx.query_one(
                        "SELECT expires_at FROM sessions WHERE token_hash = $1",
                        &[hash.clone().into()],
                    )?[0]
                        .string()
                })
                .unwrap();
            gridwalk::server::repo::parse_ts(&expires).unwrap()
                > Utc::now() + chrono::Duration::days(29)
        },
    )
    .await;
}

/// A raw pull at `url` with `token`: its status and body.
async fn pull_status(url: &str, token: &str) -> (u16, String) {
    let res = api_client()
        .get(format!("{url}/api/v1/sync/pull?cursor=0&limit=1"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap_or_default())
}
