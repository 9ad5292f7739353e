//! A test server (in-process axum on 127.0.0.1:0, seeded with a tiny demo county) on either
//! backend, and enrolled devices with real store files.

use std::sync::{Arc, Mutex};

use chrono::{NaiveDate, Utc};
use gridwalk::client::{SyncClient, enrol};
use gridwalk::demo::{County, CountySpec};
use gridwalk::server::db::Database;
use gridwalk::server::{AppState, demo, router};
use gridwalk::store::Store;
use gridwalk::wire::LoginResponse;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const PG_ADMIN: &str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";

/// Runs a test body once per backend.
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::sync::util::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::sync::util::Backend::Postgres).await;
            }
        }
    };
}

pub fn tiny_spec() -> CountySpec {
    CountySpec {
        seed: 5,
        villages: 2,
        grids: 4,
        households_per_grid: (8, 12),
        history_per_household: 2.0,
        today: Utc::now().date_naive(),
    }
}

pub struct TestServer {
    pub url: String,
    pub db: Database,
    /// The database's path or URL (for a second server process on the same database).
    pub db_url: String,
    pub county: County,
    pg_name: Option<String>,
    _dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let (url, pg_name) = match backend {
            Backend::Sqlite => (dir.path().join("server.db").display().to_string(), None),
            Backend::Postgres => {
                let name = format!("gridwalk_test_{}", uuid::Uuid::now_v7().simple());
                let n = name.clone();
                tokio::task::spawn_blocking(move || {
                    let mut c = postgres::Client::connect(PG_ADMIN, postgres::NoTls)
                        .expect("PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth)");
                    c.batch_execute(&format!("CREATE DATABASE {n}")).unwrap();
                })
                .await
                .unwrap();
                (
                    format!("postgres://postgres@127.0.0.1:5432/{name}"),
                    Some(name),
                )
            }
        };
        let county = County::generate(&tiny_spec());
        let c2 = county.clone();
        let db_url = url.clone();
        let db = tokio::task::spawn_blocking(move || {
            let db = Database::open(&url).unwrap();
            db.migrate().unwrap();
            db.tx(|tx| demo::seed(tx, &c2, Utc::now()))
                .unwrap()
                .expect("seeded");
            db
        })
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(AppState::new(db.clone()))
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move {
            axum::serve(gridwalk::server::no_delay(listener), app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        TestServer {
            url: format!("http://{addr}"),
            db,
            db_url,
            county,
            pg_name,
            _dir: dir,
            shutdown: Some(tx),
        }
    }

    /// Signs in through the API (as the dashboard or a clerk's script would).
    pub async fn login(&self, username: &str) -> LoginResponse {
        gridwalk::client::login(
            &self.url,
            username,
            demo::DEMO_PASSWORD,
            uuid::Uuid::now_v7(),
        )
        .await
        .unwrap()
    }

    /// Waits until the server has applied every push it acknowledged (the push inbox is
    /// empty): for tests that push over raw HTTP and then look at the database.
    pub async fn applied(&self) {
        for _ in 0..3000 {
            let queued = self.read(gridwalk::server::repo::queued_count).await;
            if queued == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the push inbox was not applied within 30 s");
    }

    /// Runs read-only SQL work on the server's database.
    pub async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn gridwalk::server::db::Sql) -> Result<R, gridwalk::server::db::DbError>
        + Send
        + 'static,
    ) -> R {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.read(f))
            .await
            .unwrap()
            .unwrap()
    }

    /// How many entities with this id the server holds (0 or 1), and its JSON.
    pub async fn entity(&self, id: uuid::Uuid) -> Option<serde_json::Value> {
        self.read(move |db| {
            Ok(db
                .query_opt(
                    "SELECT data FROM entities WHERE id = $1",
                    &[id.to_string().into()],
                )?
                .map(|r| serde_json::from_str(r[0].str().unwrap()).unwrap()))
        })
        .await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(name) = self.pg_name.take() {
            // The pool may still hold connections: FORCE ends them.
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

/// A phone: a real store file, enrolled with the server.
pub struct Device {
    pub store: Arc<Mutex<Store>>,
    /// The store file, to reopen it as after a crash.
    #[allow(dead_code)]
    pub path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Device {
    pub async fn enrol(server: &TestServer, username: &str) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.db");
        let store = Arc::new(Mutex::new(Store::open(&path).unwrap()));
        enrol(&server.url, username, demo::DEMO_PASSWORD, &store)
            .await
            .unwrap();
        Device {
            store,
            path,
            _dir: dir,
        }
    }

    pub fn client(&self) -> SyncClient {
        SyncClient::from_store(&self.store.lock().unwrap()).unwrap()
    }

    pub async fn sync(&self) -> gridwalk::client::SyncSummary {
        self.client().sync(&self.store, |_| {}).await.unwrap()
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        f(&mut self.store.lock().unwrap())
    }
}

/// An HTTP client that speaks the sync protocol's version, as the app does (the server
/// refuses API requests without it).
pub fn api_client() -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        gridwalk::wire::PROTOCOL_HEADER,
        reqwest::header::HeaderValue::from(gridwalk::wire::PROTOCOL_VERSION),
    );
    reqwest::Client::builder()
        .default_headers(h)
        .build()
        .unwrap()
}

pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// Pushes one entry as a hostile device would, past its own store (which refuses what the
/// county would): the device's session and id, the next sequence number of its normal lane.
/// Answers once the county has applied it.
pub async fn push_past_the_store(
    server: &TestServer,
    d: &Device,
    kind: gridwalk::domain::model::EntityKind,
    record_id: uuid::Uuid,
    op: gridwalk::wire::Op,
    fields: serde_json::Map<String, serde_json::Value>,
) {
    use gridwalk::wire::{Lane, OutboxEntry};
    let token = d.with(|s| s.meta("token")).unwrap().unwrap();
    let device = d.with(|s| s.device_id());
    let seq = d.with(|s| s.outbox_last_seq(Lane::Normal)).unwrap() + 1;
    let entry = OutboxEntry {
        lane: Lane::Normal,
        seq,
        kind,
        record_id,
        op,
        fields,
        base_version: 0,
        edited_at: Utc::now(),
    };
    let body = serde_json::json!({
        "device_id": device, "lane": "NORMAL", "device_now": Utc::now(), "entries": [entry],
    });
    let res = api_client()
        .post(format!("{}/api/v1/sync/push", server.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    server.applied().await;
}
