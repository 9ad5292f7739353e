//! The Sync screen's view of the sync client: a small trait so the screen can be built and
//! tested before (and apart from) the real client in `crate::client`, which plugs in behind it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

pub mod client;

use crate::client::schedule::Failure;
use crate::store::Store;

/// A boxed future that stays on the UI thread (the progress callback updates UI state).
pub type LocalFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPhase {
    Upload,
    Download,
    Photos,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyncProgress {
    pub phase: SyncPhase,
    pub done: u64,
    pub total: u64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SyncReport {
    /// My records (with everything of them) that reached the county with this sync.
    pub pushed: u64,
    /// The outbox entries that went up (a patrol's track is many).
    pub entries: u64,
    pub pulled: u64,
    pub photos: u64,
    /// New county feedback on this worker's records (replies, status changes).
    pub feedback: u64,
    /// Conflicts this sync brought down (the screen lists every unsettled one from the store).
    pub conflicts: u64,
    /// Pushed entries the county refused after taking them, brought down by this sync (the
    /// screen lists every one not yet dismissed from the store).
    pub rejected: u64,
    /// My records this sync left at the village office's relay (已交村办), which forwards
    /// them to the county.
    pub held: u64,
    /// The sync went through the village office's relay, not straight to the county.
    pub via_relay: bool,
}

/// A failed enrolment, probe or sync, in plain words, whether trying again may help, and
/// what it means for the scheduler.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct SyncFailure {
    pub message: String,
    pub retryable: bool,
    pub kind: Failure,
}

/// What the app needs from a sync client.
pub trait SyncPort {
    /// Signs in once (online), saves the server and token in the store, then syncs.
    /// Returns the worker's username.
    fn enrol<'a>(
        &'a self,
        server: &'a str,
        username: &'a str,
        password: &'a str,
        store: Arc<Mutex<Store>>,
    ) -> LocalFuture<'a, Result<String, SyncFailure>>;

    /// Sends the outbox up, brings the county's changes and replies down, then photos.
    fn sync<'a>(
        &'a self,
        store: Arc<Mutex<Store>>,
        progress: Box<dyn FnMut(SyncProgress) + 'a>,
    ) -> LocalFuture<'a, Result<SyncReport, SyncFailure>>;

    /// Asks whether the enrolled server, or the village office's relay, answers (cheap,
    /// quick; no sign-in needed).
    fn probe<'a>(&'a self, store: Arc<Mutex<Store>>) -> LocalFuture<'a, Result<(), SyncFailure>>;

    /// Signs the store's own worker in again (an expired or revoked session) and keeps the
    /// new token; the outbox stays and goes up with the next sync. Another account is refused:
    /// the store's unsent work is its worker's.
    fn sign_in_again<'a>(
        &'a self,
        username: &'a str,
        password: &'a str,
        store: Arc<Mutex<Store>>,
    ) -> LocalFuture<'a, Result<(), SyncFailure>>;

    /// Checks that a county server answers at `server` (its `/healthz`) before the address
    /// is saved.
    fn check_server<'a>(&'a self, server: &'a str) -> LocalFuture<'a, Result<(), SyncFailure>>;
}

/// Used while this build has no sync client: says so in plain words instead of pretending.
pub struct NoSyncClient;

impl SyncPort for NoSyncClient {
    fn enrol<'a>(
        &'a self,
        _server: &'a str,
        _username: &'a str,
        _password: &'a str,
        _store: Arc<Mutex<Store>>,
    ) -> LocalFuture<'a, Result<String, SyncFailure>> {
        Box::pin(async { Err(unavailable()) })
    }

    fn sync<'a>(
        &'a self,
        _store: Arc<Mutex<Store>>,
        _progress: Box<dyn FnMut(SyncProgress) + 'a>,
    ) -> LocalFuture<'a, Result<SyncReport, SyncFailure>> {
        Box::pin(async { Err(unavailable()) })
    }

    fn probe<'a>(&'a self, _store: Arc<Mutex<Store>>) -> LocalFuture<'a, Result<(), SyncFailure>> {
        Box::pin(async { Err(unavailable()) })
    }

    fn sign_in_again<'a>(
        &'a self,
        _username: &'a str,
        _password: &'a str,
        _store: Arc<Mutex<Store>>,
    ) -> LocalFuture<'a, Result<(), SyncFailure>> {
        Box::pin(async { Err(unavailable()) })
    }

    fn check_server<'a>(&'a self, _server: &'a str) -> LocalFuture<'a, Result<(), SyncFailure>> {
        Box::pin(async { Err(unavailable()) })
    }
}

fn unavailable() -> SyncFailure {
    SyncFailure {
        message: "此版本未包含同步客户端，无法连接县级服务器 (this build has no sync client)"
            .into(),
        retryable: false,
        kind: Failure::NeedsUpdate,
    }
}
