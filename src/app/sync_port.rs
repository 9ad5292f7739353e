//! The Sync screen's view of the sync client: a small trait so the screen can be built and
//! tested before (and apart from) the real client in `crate::sync`, which plugs in behind it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

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
    pub pushed: u64,
    pub pulled: u64,
    pub photos: u64,
    /// New county feedback on this worker's records (replies, status changes).
    pub feedback: u64,
    /// Conflicts this sync brought down (the screen lists every unsettled one from the store).
    pub conflicts: u64,
    /// Pushed entries the county refused after taking them, brought down by this sync (the
    /// screen lists every one not yet dismissed from the store).
    pub rejected: u64,
}

/// A failed enrolment or sync, in plain words, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct SyncFailure {
    pub message: String,
    pub retryable: bool,
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
}

fn unavailable() -> SyncFailure {
    SyncFailure {
        message: "此版本未包含同步客户端，无法连接县级服务器 (this build has no sync client)"
            .into(),
        retryable: false,
    }
}
