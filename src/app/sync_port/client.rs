//! The real sync client behind the Sync screen's [`SyncPort`]: enrolment, sync, the probe,
//! signing in again and checking a server address through `crate::client`, with progress, the
//! summary and errors turned into the screen's plain-words types (Chinese first, the English
//! message after it).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::client::schedule::Failure;
use crate::client::{Phase, Retry, SyncClient, SyncError, enrol};
use crate::store::Store;
use crate::store::feedback::Unsent;
use crate::store::remote::{SERVER_URL, SessionTimes, TOKEN};

use super::{LocalFuture, SyncFailure, SyncPhase, SyncPort, SyncProgress, SyncReport};

/// Talks to the county server saved in the store at enrolment.
pub struct ClientSync;

/// Retries inside one sync: few and short, since the scheduler spaces the next try itself.
const IN_SYNC_RETRY: Retry = Retry {
    attempts: 2,
    first_delay: Duration::from_millis(500),
    max_delay: Duration::from_secs(2),
};

fn failure(e: SyncError) -> SyncFailure {
    SyncFailure {
        message: format!("{} ({e})", e.zh()),
        retryable: e.is_retryable(),
        kind: Failure::from(&e),
    }
}

fn poisoned() -> SyncFailure {
    SyncFailure {
        message: "本地存储不可用，请重新打开应用 (the store lock was poisoned)".into(),
        retryable: false,
        kind: Failure::Refused,
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
            let mut client = {
                let s = store.lock().map_err(|_| poisoned())?;
                SyncClient::from_store(&s).map_err(failure)?
            };
            client.retry = IN_SYNC_RETRY;
            // The worker counts records, not the rows they travel as (track points, sessions,
            // photos): what was unsent before and is not after.
            let unsent = |store: &Arc<Mutex<Store>>| {
                store
                    .lock()
                    .ok()
                    .and_then(|s| s.unsent_states().ok())
                    .unwrap_or_default()
            };
            let before = unsent(&store);
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
            let after = unsent(&store);
            Ok(SyncReport {
                pushed: before.keys().filter(|id| !after.contains_key(id)).count() as u64,
                held: after
                    .iter()
                    .filter(|(id, st)| {
                        **st == Unsent::Held && before.get(id) != Some(&Unsent::Held)
                    })
                    .count() as u64,
                via_relay: summary.via_relay,
                entries: summary.pushed,
                pulled: summary.pulled,
                photos: summary.photos,
                feedback: summary.feedback,
                conflicts: summary.conflicts.len() as u64,
                rejected: summary.rejected,
            })
        })
    }

    fn probe<'a>(&'a self, store: Arc<Mutex<Store>>) -> LocalFuture<'a, Result<(), SyncFailure>> {
        Box::pin(async move {
            let (server, relay) = {
                let s = store.lock().map_err(|_| poisoned())?;
                (
                    s.meta(SERVER_URL)
                        .map_err(|e| failure(e.into()))?
                        .ok_or_else(|| failure(SyncError::NotEnrolled))?,
                    s.relay_url().map_err(|e| failure(e.into()))?,
                )
            };
            // At the office the county may be out of reach while its relay answers: a sync
            // would go there, so the phone counts as online.
            crate::client::probe_either(&server, relay.as_deref())
                .await
                .map_err(failure)
        })
    }

    fn sign_in_again<'a>(
        &'a self,
        username: &'a str,
        password: &'a str,
        store: Arc<Mutex<Store>>,
    ) -> LocalFuture<'a, Result<(), SyncFailure>> {
        Box::pin(async move {
            let username = username.trim();
            let (server, worker, device) = {
                let s = store.lock().map_err(|_| poisoned())?;
                (
                    s.meta(SERVER_URL).map_err(|e| failure(e.into()))?,
                    s.worker().to_owned(),
                    s.device_id(),
                )
            };
            let server = server.ok_or_else(|| failure(SyncError::NotEnrolled))?;
            if !worker.is_empty() && username != worker {
                return Err(another_account(&worker, username));
            }
            let res = crate::client::login(&server, username, password, device)
                .await
                .map_err(|e| match e {
                    SyncError::Unauthorized => SyncFailure {
                        message: "用户名或密码不对，请核对后重试 (wrong username or password)"
                            .into(),
                        retryable: false,
                        kind: Failure::NeedsSignIn,
                    },
                    e => failure(e),
                })?;
            if !worker.is_empty() && res.account.username != worker {
                return Err(another_account(&worker, &res.account.username));
            }
            let s = store.lock().map_err(|_| poisoned())?;
            s.set_meta(TOKEN, &res.token)
                .and_then(|_| match &res.account.relay_url {
                    Some(relay) => s.set_relay_url(Some(relay)),
                    None => Ok(()),
                })
                .and_then(|_| {
                    s.keep_session_times(&SessionTimes {
                        expires_at: res.expires_at,
                        ends_at: res.ends_at,
                    })
                })
                .map_err(|e| failure(e.into()))?;
            Ok(())
        })
    }

    fn check_server<'a>(&'a self, server: &'a str) -> LocalFuture<'a, Result<(), SyncFailure>> {
        Box::pin(async move {
            crate::client::check_health(server)
                .await
                .map_err(|e| SyncFailure {
                    message: match &e {
                        SyncError::Offline(_) => format!(
                            "无法连接「{server}」：请核对地址（如 http://192.168.1.10:8080）和网络后重试 (cannot reach {server}: check the address and the network)"
                        ),
                        SyncError::Server(m) => format!(
                            "「{server}」上的县级服务器暂时不可用，请稍后重试 (the county server at {server} is not ready: {m})"
                        ),
                        _ => format!(
                            "「{server}」不是网格通县级服务器，请核对地址 ({e})"
                        ),
                    },
                    retryable: e.is_retryable(),
                    kind: Failure::from(&e),
                })
        })
    }
}

fn another_account(worker: &str, who: &str) -> SyncFailure {
    SyncFailure {
        message: format!(
            "这台手机上的记录属于网格员「{worker}」，只能由本人重新登录；「{who}」不能接管这些待上传的记录。换人使用这台手机，请先由县里解除登记 (this phone's records belong to {worker}: only they can sign in here)"
        ),
        retryable: false,
        kind: Failure::NeedsSignIn,
    }
}
