//! The village-office relay (`gridwalk-server relay`): the same server, run at a village
//! office where phones have Wi-Fi and the county link often does not. It mirrors the county's
//! rows of its village (so the county's own pull code, over the mirror, answers a device as
//! the county would), holds what devices push until the county takes it, and answers a push
//! with what it holds (`held_through`) and what the county acknowledged (`acked_through`).
//!
//! The relay never applies an entry: the county decides every one, as for a direct push
//! (the entries go up with the device's own id, lane and sequence numbers).
//!
//! - [`api`]: what devices at the office talk to, and the status page.
//! - [`upstream`]: the link to the county (sign-in, forwarding, mirroring) and its rounds.
//! - [`store`]: the relay's own tables (server migration 0015).

pub mod api;
pub mod store;
pub mod upstream;

/// The county's mirror, as the relay's database holds it.
pub mod mirror {
    pub use crate::server::repo::{apply_page, county_watermark, mirror_cursor};
}

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, watch};

use super::AppState;
use super::db::{Database, DbError, Sql};
use super::repo;
use crate::wire::relay::RelayStatus;

/// How often the relay syncs with the county while it answers, unless told otherwise.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(30);
/// Where the relay listens unless told otherwise: every address, port 8090, so the office's
/// phones reach it over the Wi-Fi.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8090";

/// How the relay was started.
#[derive(Debug, Clone)]
pub struct Config {
    /// The county server's address.
    pub upstream: String,
    /// The relay's account at the county (role RELAY).
    pub user: String,
    pub password: String,
    /// The address devices reach this relay at, told to the county (which tells the village's
    /// accounts).
    pub advertise: Option<String>,
    /// Time between rounds while the county answers.
    pub every: Duration,
}

/// The link's state as the status page shows it.
#[derive(Debug, Clone, Default)]
struct LinkState {
    up: bool,
    last_error: Option<String>,
}

/// What the relay's handlers and its upstream rounds share.
#[derive(Debug)]
pub struct Relay {
    pub config: Config,
    /// The server state over the relay's database: the mirror answers pulls and sessions.
    pub app: AppState,
    pub link: upstream::Link,
    state: std::sync::Mutex<LinkState>,
    /// Wakes the upstream rounds (a device pushed, a device signed in).
    wake: Notify,
    /// Rounds begun; and rounds ended (their number), for a request waiting for a round.
    begun: AtomicU64,
    ended: watch::Sender<u64>,
    /// Sessions (token hashes) that devices used here since the county was last told: the
    /// next mirror request reports them, so the county slides them as if used there. Kept in
    /// memory only: a restart loses at most one round's uses, and the next use records again.
    used: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl Relay {
    /// The relay over its database (migrated), talking to `config.upstream`.
    pub fn new(db: Database, config: Config) -> Result<Arc<Relay>, upstream::LinkError> {
        let link = upstream::Link::new(&config.upstream)?;
        Ok(Arc::new(Relay {
            app: AppState::new(db).with_generation_from(county_generation),
            link,
            config,
            state: Default::default(),
            wake: Notify::new(),
            begun: AtomicU64::new(0),
            ended: watch::channel(0).0,
            used: Default::default(),
        }))
    }

    /// Starts the upstream rounds. Needs a tokio runtime.
    pub fn start(self: &Arc<Self>) {
        tokio::spawn(upstream::run(self.clone()));
    }

    /// Notes a session a device used here (its token's hash).
    pub fn note_use(&self, token_hash: String) {
        self.used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token_hash);
    }

    /// The sessions used here since the last call (at most 1,000; the rest stay).
    fn take_used(&self) -> Vec<String> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let taken: Vec<String> = used.iter().take(1000).cloned().collect();
        for h in &taken {
            used.remove(h);
        }
        taken
    }

    /// Puts back uses the county was not told of (the request failed).
    fn keep_used(&self, hashes: Vec<String>) {
        self.used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(hashes);
    }

    /// Asks for a round now (a device pushed).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Asks for a round now and waits (up to `at_most`) until one that began after this call
    /// has ended. Whether it did.
    pub async fn round_now(&self, at_most: Duration) -> bool {
        let target = self.begun.load(Ordering::SeqCst) + 1;
        let mut ended = self.ended.subscribe();
        self.wake();
        tokio::time::timeout(at_most, ended.wait_for(|n| *n >= target))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    fn begin_round(&self) -> u64 {
        self.begun.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn end_round(&self, n: u64, error: Option<upstream::LinkError>) {
        {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            match &error {
                None => {
                    s.up = true;
                }
                Some(e) => {
                    s.up = matches!(
                        e,
                        upstream::LinkError::Refused { .. } | upstream::LinkError::Garbled(_)
                    );
                    s.last_error = Some(e.to_string());
                }
            }
        }
        self.ended.send_replace(n);
    }

    /// Notes a failure that did not end the round (a lane the county refused).
    fn note_error(&self, e: &upstream::LinkError) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.last_error = Some(e.to_string());
    }

    /// Whether the county answered the last round.
    pub fn uplink_up(&self) -> bool {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).up
    }

    /// The relay's status, as `/status.json` and the page show it.
    pub async fn status(&self) -> Result<RelayStatus, DbError> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let upstream = self.link.base().to_owned();
        let now = Utc::now();
        self.db_read(move |db| {
            let (cursor, _) = mirror::mirror_cursor(db)?;
            let last = repo::get_setting(db, upstream::LAST_SYNC)?
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&Utc));
            Ok(RelayStatus {
                village: repo::get_setting(db, upstream::VILLAGE)?.unwrap_or_default(),
                upstream,
                uplink_up: s.up,
                waiting_entries: store::waiting_entries(db)?,
                waiting_photos: store::waiting_photos(db)?,
                last_upstream_sync: last,
                mirror_cursor: cursor,
                devices_seen_today: store::seen_on(db, crate::domain::cst::today(now))?,
                last_error: s.last_error,
            })
        })
        .await
    }

    /// A read of the relay's database, off the async threads.
    pub async fn db_read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<R, DbError> + Send + 'static,
    ) -> Result<R, DbError> {
        let _turn = self.app.db.read_turn().await;
        let db = self.app.db.clone();
        tokio::task::spawn_blocking(move || db.read(f))
            .await
            .map_err(|e| DbError::Type(format!("task failed: {e}")))?
    }

    /// A transaction on the relay's database, off the async threads.
    pub async fn db_write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<R, DbError> + Send + 'static,
    ) -> Result<R, DbError> {
        let _turn = self.app.db.write_turn().await;
        let db = self.app.db.clone();
        tokio::task::spawn_blocking(move || db.tx(f))
            .await
            .map_err(|e| DbError::Type(format!("task failed: {e}")))?
    }
}

/// The county's generation as mirrored (none before the first mirror page): what a pull at
/// the relay answers in `x-gridwalk-generation`, read for every pull.
fn county_generation(db: &mut dyn Sql) -> Result<Option<String>, DbError> {
    Ok(mirror::mirror_cursor(db)?.1)
}

/// Serves the relay's routes on `listener` until `shutdown` resolves (the upstream rounds run
/// meanwhile: see [`Relay::start`]).
pub async fn serve(
    relay: Arc<Relay>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = api::router(relay).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(super::no_delay(listener), app)
        .with_graceful_shutdown(shutdown)
        .await
}
