//! The restore drill: the county server is backed up (`gridwalk-server backup`, as an
//! operator runs it) while phones push, keeps taking pushes after, is lost, and the backup is
//! restored (`gridwalk-server restore`) into a fresh database and served. The phones sync on
//! by themselves: everything each one ever filed is on the restored server exactly once, their
//! outboxes drain, a photo the restored database lacked is uploaded again, a phone signed in
//! after the backup signs in again with its records waiting, and a change made on the restored
//! server reaches them (their cursors were reset). And a phone that no longer keeps what the
//! restored server lacks says so, and keeps its unsent records.
//!
//! Both backends: PostgreSQL through `pg_dump` and `pg_restore` on the real server.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::Path;
use std::process::Output;

use chrono::Utc;
use gridwalk::client::SyncError;
use gridwalk::domain::codes::*;
use gridwalk::domain::geo::GeoPoint;
use gridwalk::domain::lifecycle::Status;
use gridwalk::domain::model::*;
use gridwalk::server::db::Database;
use gridwalk::store::remote::{SERVER_URL, SessionTimes, TOKEN};
use gridwalk::wire::Lane;
use serde_json::json;
use uuid::Uuid;

use super::faults::{ServerProcess, spawn_server};
use super::util::{Backend, Device, PG_ADMIN, TestServer, api_client};
use crate::both_backends;

/// What every record of the drill says where it is: the server's copies are found by it.
const PLACE: &str = "备份演练";

fn hazard(grid: Uuid, author: &str, n: usize) -> Hazard {
    let mut c = Common::new(Domain::Hazard, grid, author, Utc::now());
    c.location = Some(GeoPoint::new(116.40, 28.05, Some(8.0)).unwrap());
    Hazard {
        common: c,
        category: HazardCategory::Water,
        severity: Severity::Medium,
        description: format!("演练记录 {n}：池塘护栏松动"),
        place: PLACE.into(),
        owner: None,
        due_date: None,
    }
}

fn jpeg(seed: u8) -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0];
    b.extend((0..40_000u32).map(|i| (i as u8).wrapping_mul(seed) ^ (i >> 8) as u8));
    b
}

/// A phone of the drill and what it filed.
struct Phone {
    device: Device,
    worker: &'static str,
    grid: Uuid,
    filed: Vec<Uuid>,
}

impl Phone {
    fn file(&mut self) -> Uuid {
        let h = hazard(self.grid, self.worker, self.filed.len());
        self.device
            .with(|s| s.create_record(&h, Utc::now()))
            .unwrap();
        self.filed.push(h.common.id);
        h.common.id
    }

    fn file_with_photo(&mut self, seed: u8) -> (Uuid, String) {
        let id = self.file();
        let sha = self
            .device
            .with(|s| s.attach_photo(id, &jpeg(seed), "image/jpeg", Utc::now()))
            .unwrap();
        (id, sha)
    }

    async fn sync(&self) -> Result<gridwalk::client::SyncSummary, SyncError> {
        self.device.client().sync(&self.device.store, |_| {}).await
    }

    /// Pushes the outbox and nothing else (a sync cut before its photo phase).
    async fn push_only(&self, server: &TestServer) {
        let (entries, device, token) = self.device.with(|s| {
            (
                s.outbox(Lane::Normal, 1000).unwrap(),
                s.device_id(),
                s.meta(TOKEN).unwrap().unwrap(),
            )
        });
        let last = entries.last().unwrap().seq;
        let req = gridwalk::wire::PushRequest {
            device_id: device,
            lane: Lane::Normal,
            device_now: Utc::now(),
            entries,
        };
        let res = api_client()
            .post(format!("{}/api/v1/sync/push", server.url))
            .bearer_auth(&token)
            .json(&req)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        server.applied().await;
        self.device
            .with(|s| s.ack_outbox(Lane::Normal, last))
            .unwrap();
    }
}

/// `gridwalk-server` with these arguments, as an operator runs it.
async fn gridwalk_server(args: Vec<std::ffi::OsString>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_gridwalk-server"))
            .args(&args)
            .env("RUST_LOG", "warn")
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn args(list: &[&dyn AsRef<OsStr>]) -> Vec<std::ffi::OsString> {
    list.iter().map(|a| a.as_ref().to_owned()).collect()
}

fn says(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A restored county database, served by the `gridwalk-server` binary; dropped with its
/// PostgreSQL database.
struct Restored {
    server: Option<ServerProcess>,
    db: Option<Database>,
    url: String,
    db_url: String,
    pg_name: Option<String>,
    _dir: tempfile::TempDir,
}

impl Restored {
    /// Restores `file` into a database that does not exist yet (the restore makes it), with
    /// the binary, and serves it.
    async fn from(backend: Backend, file: &Path) -> Restored {
        let dir = tempfile::tempdir().unwrap();
        let (db_url, pg_name) = match backend {
            Backend::Sqlite => (dir.path().join("restored.db").display().to_string(), None),
            Backend::Postgres => {
                let name = format!("gridwalk_test_{}", Uuid::now_v7().simple());
                (
                    format!("postgres://postgres@127.0.0.1:5432/{name}"),
                    Some(name),
                )
            }
        };
        let out = gridwalk_server(args(&[&"--db", &db_url, &"restore", &"--from", &file])).await;
        let mut restored = Restored {
            server: None,
            db: None,
            url: String::new(),
            db_url: db_url.clone(),
            pg_name,
            _dir: dir,
        };
        assert!(out.status.success(), "restore failed: {}", says(&out));
        assert!(says(&out).contains("new generation"), "{}", says(&out));
        let server = spawn_server(&db_url, restored._dir.path()).await;
        restored.url = server.url.clone();
        restored.server = Some(server);
        let u = db_url.clone();
        restored.db = Some(
            tokio::task::spawn_blocking(move || Database::open(&u).unwrap())
                .await
                .unwrap(),
        );
        restored
    }

    /// Stops its server and closes its connections.
    fn stop(&mut self) {
        drop(self.server.take());
        if let Some(db) = self.db.take() {
            std::thread::spawn(move || drop(db)).join().ok();
        }
    }

    async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn gridwalk::server::db::Sql) -> Result<R, gridwalk::server::db::DbError>
        + Send
        + 'static,
    ) -> R {
        let db = self.db.clone().unwrap();
        tokio::task::spawn_blocking(move || db.read(f).unwrap())
            .await
            .unwrap()
    }

    /// The ids of the drill's records on the server, each with how many times it is there
    /// and how many times it was created (the audit's CREATE lines).
    async fn drill_records(&self) -> Vec<(Uuid, i64, i64)> {
        self.read(|db| {
            let rows = db.query(
                "SELECT e.id, count(*), (SELECT count(*) FROM audit a WHERE a.action = 'CREATE' AND a.entity_id = e.id)
                 FROM entities e WHERE e.kind = 'HAZARD' AND e.data LIKE $1 GROUP BY e.id",
                &[format!("%{PLACE}%").into()],
            )?;
            rows.iter()
                .map(|r| Ok((Uuid::parse_str(r[0].str()?).unwrap(), r[1].i64()?, r[2].i64()?)))
                .collect()
        })
        .await
    }

    async fn api(&self, token: &str, path: &str, body: serde_json::Value) -> u16 {
        api_client()
            .post(format!("{}{path}", self.url))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

impl Drop for Restored {
    fn drop(&mut self) {
        self.stop();
        if let Some(name) = self.pg_name.take() {
            std::thread::spawn(move || {
                if let Ok(mut c) = postgres::Client::connect(PG_ADMIN, postgres::NoTls) {
                    let _ =
                        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
                }
            })
            .join()
            .ok();
        }
    }
}

/// Points a phone at the restored server (the county's address would not change; the test's
/// server listens on another port).
fn move_to(phone: &Device, url: &str) {
    phone.with(|s| s.set_meta(SERVER_URL, url)).unwrap();
}

async fn drill(backend: Backend) {
    let server = TestServer::start(backend).await;
    let work = tempfile::tempdir().unwrap();
    let backup_file = work.path().join(match backend {
        Backend::Sqlite => "county.db",
        Backend::Postgres => "county.dump",
    });
    let (grid_a, grid_b) = (
        server.county.grids[0].grid.id,
        server.county.grids[1].grid.id,
    );
    let mut a = Phone {
        device: Device::enrol(&server, "worker-a").await,
        worker: "worker-a",
        grid: grid_a,
        filed: Vec::new(),
    };
    let mut b = Phone {
        device: Device::enrol(&server, "worker-b").await,
        worker: "worker-b",
        grid: grid_b,
        filed: Vec::new(),
    };

    // Before the backup: a record with a photo, uploaded; one of b's; the county's reply,
    // which a's next sync puts in its feedback inbox.
    let (first, first_photo) = a.file_with_photo(1);
    b.file();
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    let admin = server.login("admin").await;
    let reply = |text: &str| json!({ "text": text });
    let status = api_client()
        .post(format!("{}/api/v1/records/{first}/replies", server.url))
        .bearer_auth(&admin.token)
        .json(&reply("县里已收到，请继续关注"))
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "{status}");
    a.sync().await.unwrap();
    assert_eq!(a.device.with(|s| s.feedback(10)).unwrap().len(), 1);
    // A record whose photo goes up only after the backup: the restored server has the record
    // and expects the photo, and no entry naming it will be sent again.
    let (_, early_photo) = a.file_with_photo(3);
    a.push_only(&server).await;
    assert_eq!(a.device.with(|s| s.pending_photos()).unwrap().len(), 1);

    // The backup runs while both phones keep filing and pushing.
    let backup = {
        let out = args(&[
            &"--db",
            &server.db_url,
            &"backup",
            &"--out",
            &backup_file,
            &"--pages-per-step",
            &"4",
            &"--pause-ms",
            &"20",
        ]);
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_gridwalk-server"))
                .args(out)
                .env("RUST_LOG", "warn")
                .env_remove("RUST_BACKTRACE")
                .output()
                .unwrap()
        })
    };
    let mut during = 0;
    while !backup.is_finished() || during < 2 {
        a.file();
        b.file();
        a.sync().await.unwrap();
        b.sync().await.unwrap();
        during += 1;
    }
    let out = backup.await.unwrap();
    assert!(out.status.success(), "backup failed: {}", says(&out));
    println!(
        "{backend:?}: {during} rounds of pushes while the backup ran; {}",
        says(&out).trim()
    );

    // After the backup, all lost with the server: more records; a photo uploaded; an edit of
    // the first record; a new phone of worker-a's (its enrolment and session too); replies by
    // the county (changes the restored sequence will number again); and one record of a's
    // filed but not pushed when the server is lost.
    let (late, late_photo) = a.file_with_photo(2);
    a.device
        .with(|s| {
            s.update_record::<Hazard>(first, |h| h.place = format!("{PLACE}（东侧）"), Utc::now())
        })
        .unwrap();
    b.file();
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    let mut c = Phone {
        device: Device::enrol(&server, "worker-a").await,
        worker: "worker-a",
        grid: grid_a,
        filed: Vec::new(),
    };
    c.file();
    c.sync().await.unwrap();
    for i in 0..30 {
        let status = api_client()
            .post(format!("{}/api/v1/records/{first}/replies", server.url))
            .bearer_auth(&admin.token)
            .json(&reply(&format!("第{i}次跟进")))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success(), "{status}");
    }
    a.sync().await.unwrap();
    let unsent = a.file();
    c.file();
    let cursor_before = a.device.with(|s| s.pull_cursor()).unwrap();
    let feedback_before = a.device.with(|s| s.feedback(100)).unwrap().len();
    assert!(feedback_before > 1);

    // A restore over the database the server is using is refused, even with --force.
    let out = gridwalk_server(args(&[
        &"--db",
        &server.db_url,
        &"restore",
        &"--from",
        &backup_file,
        &"--force",
    ]))
    .await;
    assert!(!out.status.success());
    assert!(says(&out).contains("in use"), "{}", says(&out));

    // The server is lost; the backup is restored into a new database and served.
    drop(server);
    let restored = Restored::from(backend, &backup_file).await;
    for phone in [&a, &b, &c] {
        move_to(&phone.device, &restored.url);
    }

    // The phones signed in before the backup sync on by themselves.
    let sum = a.sync().await.unwrap();
    assert!(sum.restored, "{sum:?}");
    assert!(sum.resent > 0, "what the backup lacked went again: {sum:?}");
    let sum = b.sync().await.unwrap();
    assert!(sum.restored && sum.resent > 0, "{sum:?}");
    // The one signed in after it is asked to sign in again; its records wait meanwhile.
    let waiting = c.device.with(|s| s.outbox_len()).unwrap();
    assert!(matches!(c.sync().await, Err(SyncError::Unauthorized)));
    assert_eq!(c.device.with(|s| s.outbox_len()).unwrap(), waiting);
    let (device, worker) = c.device.with(|s| (s.device_id(), s.worker().to_owned()));
    let again = gridwalk::client::login(
        &restored.url,
        &worker,
        gridwalk::server::demo::DEMO_PASSWORD,
        device,
    )
    .await
    .unwrap();
    c.device
        .with(|s| {
            s.set_meta(TOKEN, &again.token)?;
            s.keep_session_times(&SessionTimes {
                expires_at: again.expires_at,
                ends_at: again.ends_at,
            })
        })
        .unwrap();
    let sum = c.sync().await.unwrap();
    assert!(sum.restored && sum.resent > 0, "{sum:?}");
    // One more round each: nothing left to do.
    for phone in [&a, &b, &c] {
        let sum = phone.sync().await.unwrap();
        assert!(!sum.restored, "{sum:?}");
        assert_eq!((sum.pushed, sum.resent), (0, 0), "{sum:?}");
    }

    // Every record each phone ever filed is on the server exactly once, and nothing else.
    let on_server = restored.drill_records().await;
    let filed: BTreeSet<Uuid> = [&a, &b, &c]
        .iter()
        .flat_map(|p| p.filed.iter().copied())
        .collect();
    assert_eq!(filed.len(), a.filed.len() + b.filed.len() + c.filed.len());
    assert_eq!(
        on_server.iter().map(|r| r.0).collect::<BTreeSet<_>>(),
        filed,
        "the server holds exactly what the phones filed"
    );
    for (id, copies, created) in &on_server {
        assert_eq!(
            (*copies, *created),
            (1, 1),
            "record {id} once, created once"
        );
    }
    assert!(filed.contains(&unsent));
    for phone in [&a, &b, &c] {
        assert_eq!(
            phone.device.with(|s| s.outbox_len()).unwrap(),
            0,
            "{}",
            phone.worker
        );
        assert!(
            phone
                .device
                .with(|s| s.pending_photos())
                .unwrap()
                .is_empty()
        );
        for id in &phone.filed {
            let r: Hazard = phone.device.with(|s| s.record(*id)).unwrap();
            assert_eq!(r.common.author, phone.worker);
        }
    }
    // The pulls brought the county's state: each phone holds every drill record of its grid.
    for phone in [&a, &b, &c] {
        let mine: BTreeSet<Uuid> = [&a, &b, &c]
            .iter()
            .filter(|p| p.grid == phone.grid)
            .flat_map(|p| p.filed.iter().copied())
            .collect();
        let held: BTreeSet<Uuid> = phone
            .device
            .with(|s| s.records(&Default::default()))
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .filter(|id| filed.contains(id))
            .collect();
        assert_eq!(held, mine, "{}", phone.worker);
    }
    // The edit made after the backup went again.
    let place = restored
        .read(move |db| {
            db.query_one(
                "SELECT data FROM entities WHERE id = $1",
                &[first.to_string().into()],
            )?[0]
                .string()
        })
        .await;
    assert!(place.contains("（东侧）"), "{place}");
    // Every photo is whole on the server: those uploaded after the backup went again.
    for (sha, seed) in [(&first_photo, 1), (&late_photo, 2), (&early_photo, 3)] {
        let s = sha.clone();
        let (complete, size) = restored
            .read(move |db| {
                let r = db.query_one(
                    "SELECT complete, length(data) FROM photos WHERE sha256 = $1",
                    &[s.into()],
                )?;
                Ok((r[0].i64()?, r[1].opt_i64()?))
            })
            .await;
        assert_eq!(
            (complete, size),
            (1, Some(jpeg(seed).len() as i64)),
            "{sha}"
        );
    }
    // The whole re-pull doubled no reply and noted no feedback twice.
    let replies_on_server = restored
        .read(move |db| {
            db.query_one(
                "SELECT count(*) FROM entities WHERE kind = 'REPLY' AND parent_id = $1",
                &[first.to_string().into()],
            )?[0]
                .i64()
        })
        .await;
    assert_eq!(replies_on_server, 1, "the county's later replies were lost");
    assert_eq!(
        a.device.with(|s| s.replies(first)).unwrap().len(),
        31,
        "the phone keeps what it saw, each once"
    );
    assert_eq!(
        a.device.with(|s| s.feedback(100)).unwrap().len(),
        feedback_before
    );

    // A change made on the restored server reaches the phones, though the restored sequence
    // numbers it below what a's cursor had reached.
    let admin = gridwalk::client::login(
        &restored.url,
        "admin",
        gridwalk::server::demo::DEMO_PASSWORD,
        Uuid::now_v7(),
    )
    .await
    .unwrap();
    let st = restored
        .api(
            &admin.token,
            &format!("/api/v1/records/{late}/transition"),
            json!({"to": "CONFIRMED"}),
        )
        .await;
    assert_eq!(st, 200);
    let version = restored
        .read(move |db| {
            db.query_one(
                "SELECT version FROM entities WHERE id = $1",
                &[late.to_string().into()],
            )?[0]
                .i64()
        })
        .await;
    assert!(
        version <= cursor_before,
        "the restored sequence reuses numbers a has seen ({version} ≤ {cursor_before})"
    );
    for phone in [&a, &c] {
        phone.sync().await.unwrap();
        let r: Hazard = phone.device.with(|s| s.record(late)).unwrap();
        assert_eq!(r.common.status, Status::Confirmed, "{}", phone.worker);
    }
    assert_eq!(
        a.device.with(|s| s.feedback(100)).unwrap().len(),
        feedback_before + 1,
        "the county's move is news"
    );
}
both_backends!(drill);

/// A phone that no longer keeps what a restored server lacks stops with the clear message,
/// and keeps its unsent records.
async fn beyond_what_a_phone_keeps(backend: Backend) {
    let server = TestServer::start(backend).await;
    let grid = server.county.grids[0].grid.id;
    let mut a = Phone {
        device: Device::enrol(&server, "worker-a").await,
        worker: "worker-a",
        grid,
        filed: Vec::new(),
    };
    a.file();
    a.sync().await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("county.backup");
    let out = gridwalk_server(args(&[&"--db", &server.db_url, &"backup", &"--out", &file])).await;
    assert!(out.status.success(), "{}", says(&out));
    a.file();
    a.file();
    a.sync().await.unwrap();
    drop(server);
    let restored = Restored::from(backend, &file).await;
    move_to(&a.device, &restored.url);
    // The two records after the backup were acknowledged long ago and are kept no more.
    a.device
        .with(|s| s.conn().execute("DELETE FROM outbox_acked", []))
        .unwrap();
    let waiting = a.file();
    let e = a.sync().await.unwrap_err();
    assert!(matches!(e, SyncError::Gap { expected: 2 }), "{e}");
    let zh = e.zh();
    assert!(
        zh.starts_with("县里的服务器从备份恢复后，需要本机第 2 条上传记录")
            && zh.contains("请不要卸载应用")
            && zh.contains("联系县综治中心"),
        "{zh}"
    );
    assert_eq!(a.device.with(|s| s.outbox_len()).unwrap(), 1);
    let r: Hazard = a.device.with(|s| s.record(waiting)).unwrap();
    assert_eq!(r.place, PLACE);

    // Restoring again over the restored database, stopped: only with --force, which replaces
    // what it holds and gives it another generation.
    let mut restored = restored;
    restored.stop();
    let again = |force: bool| {
        let mut a = args(&[&"--db", &restored.db_url, &"restore", &"--from", &file]);
        if force {
            a.push("--force".into());
        }
        gridwalk_server(a)
    };
    let out = again(false).await;
    assert!(!out.status.success());
    assert!(says(&out).contains("already holds data"), "{}", says(&out));
    let out = again(true).await;
    assert!(out.status.success(), "{}", says(&out));
    assert!(
        says(&out).contains("replacing what it held"),
        "{}",
        says(&out)
    );
}
both_backends!(beyond_what_a_phone_keeps);
