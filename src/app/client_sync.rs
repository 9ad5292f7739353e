//! The real sync client behind the Sync screen's [`SyncPort`]: enrolment and sync through
//! `crate::sync`, with progress, the summary and errors turned into the screen's
//! plain-words types (Chinese first, the English message after it).

use std::sync::{Arc, Mutex};

use crate::store::Store;
use crate::sync::{Phase, SyncClient, SyncError, enrol};

use super::sync_port::{LocalFuture, SyncFailure, SyncPhase, SyncPort, SyncProgress, SyncReport};

/// Talks to the county server saved in the store at enrolment.
pub struct ClientSync;

fn failure(e: SyncError) -> SyncFailure {
    SyncFailure {
        message: format!("{} ({e})", e.zh()),
        retryable: e.is_retryable(),
    }
}

impl SyncPort for ClientSync {
    fn enrol<'a>(
        &'a self,
        server: &'a str,
        username: &'a str,
        password: &'a str,
        store: Arc<Mutex<Store>>,
    ) -> LocalFuture<'a, Result<String, SyncFailure>> {
        Box::pin(async move {
            let e = enrol(server, username, password, &store)
                .await
                .map_err(failure)?;
            Ok(e.account.username)
        })
    }

    fn sync<'a>(
        &'a self,
        store: Arc<Mutex<Store>>,
        mut progress: Box<dyn FnMut(SyncProgress) + 'a>,
    ) -> LocalFuture<'a, Result<SyncReport, SyncFailure>> {
        Box::pin(async move {
            let client = {
                let s = store.lock().map_err(|_| SyncFailure {
                    message: "本地存储不可用 (the store lock was poisoned)".into(),
                    retryable: false,
                })?;
                SyncClient::from_store(&s).map_err(failure)?
            };
            let summary = client
                .sync(&store, |p| {
                    progress(SyncProgress {
                        phase: match p.phase {
                            Phase::Upload => SyncPhase::Upload,
                            Phase::Download => SyncPhase::Download,
                            Phase::Photos => SyncPhase::Photos,
                        },
                        done: p.done,
                        total: p.total,
                    })
                })
                .await
                .map_err(failure)?;
            Ok(SyncReport {
                pushed: summary.pushed,
                pulled: summary.pulled,
                photos: summary.photos,
                feedback: summary.feedback,
                conflicts: summary.conflicts.len() as u64,
                rejected: summary.rejected,
            })
        })
    }
}
