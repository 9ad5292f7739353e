//! The push inbox: received pushes are queued by [`records::receive_group`] and applied in
//! arrival order by one background task per server process, in short transactions, each taken
//! as a write turn like any request's, so pushes arriving meanwhile wait for at most one.
//!
//! A push is acknowledged once its row is committed: with a thousand devices pushing at once
//! each waits for a row insert, not for everyone else's records to be checked and written.
//! Pushes that arrive together are received together (group commit): one task takes the
//! write turn and receives every push waiting in one transaction of a few multi-row
//! statements, each push still decided on its own. Pulls and the applier let waiting pushes
//! go first (up to [`RECEIVE_FIRST`]).
//! A device's pull waits until the device's own queued pushes are applied, so a sync (push,
//! then pull) still brings back the device's records with their server versions, and
//! whatever the server refused.
//!
//! The inbox itself lives in the database (nothing is lost if the process stops); what is in
//! memory is only whether the task runs and a signal for pulls waiting on it. On PostgreSQL
//! several replicas may run an applier; an advisory lock lets one work at a time, and each
//! move of the inbox is announced to the others ([`wake`]): pushes received by one replica
//! start the others' appliers (one of them may take over from a busy or dead one), and rows
//! applied by one wake the pulls waiting for them on the others. Each replica also looks at
//! the inbox every [`poll_interval`] by itself, in case an announcement is not heard.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use uuid::Uuid;

use super::db::Database;
use super::error::Failure;
use super::records::Drained;
use super::repo::User;
use super::wake::{self, Move};
use super::{records, repo};
use crate::wire::{PushRequest, PushResponse, RawFields};

/// Entries applied per transaction, about (whole pushes): short enough that a push waiting
/// behind one is not kept long, long enough that a commit is shared by many records.
pub const APPLY_CHUNK: usize = 50;
/// How long the applier lets pushes waiting to be received go first, at most, before each
/// transaction: acknowledging a push is what a device waits for on the village Wi-Fi.
pub const RECEIVE_FIRST: Duration = Duration::from_millis(250);
/// How long a pull waits for its device's queued pushes before it answers anyway.
pub const PULL_WAIT: Duration = Duration::from_secs(30);
/// Pushes received in one transaction, at most.
pub const RECEIVE_GROUP: usize = 256;
/// How often a pull waiting for its device's pushes, and an applier waiting for another
/// server's lock, look at the inbox by themselves: the safety net under the wake-ups.
pub const POLL: Duration = Duration::from_secs(1);

/// [`POLL`], or `GRIDWALK_INBOX_POLL_MS` milliseconds (tests lengthen it to show that the
/// wake-ups alone are enough).
pub fn poll_interval() -> Duration {
    static POLL_MS: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    POLL_MS
        .get_or_init(|| {
            std::env::var("GRIDWALK_INBOX_POLL_MS")
                .ok()
                .and_then(|s| s.parse().ok())
        })
        .map_or(POLL, Duration::from_millis)
}

/// A push waiting to be received, and where its answer goes.
struct Received {
    user: User,
    device: Uuid,
    req: PushRequest<RawFields>,
    /// The entries as they will be queued, packed before the push waits for the writer.
    packed: Vec<u8>,
    answer: oneshot::Sender<Result<PushResponse, Failure>>,
}

#[derive(Debug)]
pub struct Inbox {
    /// This process's name in the inbox's announcements, to know its own when it hears them.
    id: String,
    running: AtomicBool,
    /// Set by every push after its commit; the applier clears it before it looks.
    pending: AtomicBool,
    /// Notified when pushes are queued here or elsewhere: an applier waiting for another
    /// server's lock looks again.
    queued: Notify,
    /// Whether the listener for the other servers' announcements has been started.
    listening: AtomicBool,
    /// The last inbox row applied, as far as this process has heard (its own applier, or
    /// another server's announcement): pulls wait on it, then read the inbox again. A hint,
    /// not the truth: rows of several servers may commit out of id order.
    applied: watch::Sender<i64>,
    /// Pushes waiting for the receiving task, which is started with the first one.
    to_receive: mpsc::UnboundedSender<Received>,
    /// Pushes sent to the receiving task and not yet taken into a transaction.
    waiting: std::sync::atomic::AtomicUsize,
    /// Notified when the receiving task has taken every push waiting.
    none_waiting: Notify,
    receiving: std::sync::Mutex<Option<mpsc::UnboundedReceiver<Received>>>,
}

impl Default for Inbox {
    fn default() -> Self {
        let (to_receive, receiving) = mpsc::unbounded_channel();
        Inbox {
            id: Uuid::now_v7().simple().to_string(),
            running: AtomicBool::new(false),
            pending: AtomicBool::new(false),
            queued: Notify::new(),
            listening: AtomicBool::new(false),
            applied: watch::channel(0).0,
            to_receive,
            waiting: Default::default(),
            none_waiting: Notify::new(),
            receiving: std::sync::Mutex::new(Some(receiving)),
        }
    }
}

impl Inbox {
    /// This process's name in the inbox's announcements ([`wake::Move::payload`]).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Receives a push (see [`records::receive_group`]) together with the others waiting, and
    /// starts applying it. Needs a tokio runtime.
    pub async fn receive(
        self: &Arc<Self>,
        db: &Database,
        user: User,
        device: Uuid,
        req: PushRequest<RawFields>,
    ) -> Result<PushResponse, Failure> {
        let taken = self
            .receiving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(rx) = taken {
            tokio::spawn(receive_groups(Arc::downgrade(self), db.clone(), rx));
        }
        // Serialised and compressed here, by the request's own task, so the one writer does
        // not have to.
        let packed = repo::pack_entries(
            &serde_json::to_string(&req.entries).map_err(|e| Failure::Internal(e.to_string()))?,
        )?;
        let (answer, answered) = oneshot::channel();
        self.waiting.fetch_add(1, Ordering::SeqCst);
        self.to_receive
            .send(Received {
                user,
                device,
                req,
                packed,
                answer,
            })
            .map_err(|_| Failure::Internal("the push receiver has stopped".into()))?;
        answered
            .await
            .map_err(|_| Failure::Internal("the push receiver has stopped".into()))?
    }

    /// Makes sure the applier runs (call after a push commits, at start-up, or when a pull
    /// finds its device's pushes still queued), and that this process hears the other
    /// servers' inbox moves. Needs a tokio runtime.
    pub fn kick(self: &Arc<Self>, db: &Database) {
        if !self.listening.swap(true, Ordering::SeqCst) {
            wake::listen(self, db);
        }
        self.pending.store(true, Ordering::SeqCst);
        if !self.running.swap(true, Ordering::SeqCst) {
            tokio::spawn(run(self.clone(), db.clone()));
        }
    }

    /// Pushes were queued, here or on another server: the applier looks, at once even if it
    /// was waiting for another server's lock. Needs a tokio runtime.
    pub(super) fn rows_queued(self: &Arc<Self>, db: &Database) {
        self.queued.notify_one();
        self.kick(db);
    }

    /// The inbox was applied through `row` (here, or on another server): the pulls waiting
    /// for rows up to it read the inbox again.
    pub(super) fn applied_through(&self, row: i64) {
        self.applied.send_if_modified(|a| {
            let newer = row > *a;
            *a = (*a).max(row);
            newer
        });
    }

    /// Lets the pushes waiting to be received go first, for up to [`RECEIVE_FIRST`]: the
    /// applier and pulls call it before they take their turn, because acknowledging a push is
    /// what a device waits for on the village Wi-Fi, and pull pages are the heavy work.
    pub async fn pushes_first(&self) {
        let until = tokio::time::Instant::now() + RECEIVE_FIRST;
        loop {
            // Registered before the count is read, so the wake-up cannot be missed.
            let none_waiting = self.none_waiting.notified();
            tokio::pin!(none_waiting);
            none_waiting.as_mut().enable();
            if self.waiting.load(Ordering::SeqCst) == 0 {
                return;
            }
            if tokio::time::timeout_at(until, none_waiting).await.is_err() {
                return;
            }
        }
    }

    /// Waits (up to [`PULL_WAIT`]) until none of this device's pushes are queued: a look at
    /// the inbox for the device's last queued row, then a wait until an applier, here or on
    /// another server, has gone past it, and a look again (or every [`poll_interval`], in
    /// case an announcement went unheard).
    pub async fn settle(self: &Arc<Self>, db: &Database, device: Uuid) -> Result<(), Failure> {
        let deadline = tokio::time::Instant::now() + PULL_WAIT;
        let mut applied = self.applied.subscribe();
        let mut waited = false;
        loop {
            let last = {
                let _turn = db.read_turn().await;
                let db = db.clone();
                tokio::task::spawn_blocking(move || db.read(|tx| repo::last_queued_for(tx, device)))
                    .await
                    .map_err(|e| Failure::Internal(format!("task failed: {e}")))??
            };
            let Some(last) = last else {
                if waited {
                    tracing::debug!(%device, "the device's pushes are applied; its pull goes on");
                }
                return Ok(());
            };
            if !waited {
                tracing::debug!(%device, row = last, "a pull waits for its device's pushes");
                waited = true;
            }
            self.kick(db);
            let look_again = (tokio::time::Instant::now() + poll_interval()).min(deadline);
            // Until the inbox is applied past `last`; if it already is as far as this process
            // has heard (yet the row is queued: another server's row that committed after
            // higher ones), until the next move.
            if *applied.borrow_and_update() >= last {
                let _ = tokio::time::timeout_at(look_again, applied.changed()).await;
            } else {
                let _ = tokio::time::timeout_at(look_again, applied.wait_for(|a| *a >= last)).await;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(%device, "pushes still queued after {PULL_WAIT:?}; pulling anyway");
                return Ok(());
            }
        }
    }
}

/// The receiving task. It holds the inbox only while it works on a group, so that the inbox,
/// and with it the channel this task waits on, goes when the server does.
async fn receive_groups(
    inbox: std::sync::Weak<Inbox>,
    db: Database,
    mut rx: mpsc::UnboundedReceiver<Received>,
) {
    while let Some(first) = rx.recv().await {
        let Some(inbox) = inbox.upgrade() else {
            return;
        };
        let turn = db.write_turn().await;
        // Everything that arrived meanwhile goes in the same transaction.
        let mut group = vec![first];
        while group.len() < RECEIVE_GROUP {
            match rx.try_recv() {
                Ok(r) => group.push(r),
                Err(_) => break,
            }
        }
        if inbox.waiting.fetch_sub(group.len(), Ordering::SeqCst) == group.len() {
            inbox.none_waiting.notify_waiters();
        }
        let (db2, me) = (db.clone(), inbox.id.clone());
        let done = tokio::task::spawn_blocking(move || {
            let now = Utc::now();
            let answers = db2.tx(|tx| {
                let incoming: Vec<records::Incoming<'_>> = group
                    .iter()
                    .map(|r| records::Incoming {
                        user: &r.user,
                        device: r.device,
                        req: &r.req,
                        packed: Some(&r.packed),
                    })
                    .collect();
                let answers = records::receive_group(tx, &incoming, now)?;
                if answers.iter().any(|a| matches!(a, Ok(r) if r.queued > 0)) {
                    wake::notify(tx, Move::Queued, &me)?;
                }
                Ok::<_, Failure>(answers)
            });
            (group, answers)
        })
        .await;
        drop(turn);
        let Ok((group, answers)) = done else {
            tracing::error!("receiving a group of pushes panicked");
            continue; // the answers' senders are dropped: those requests fail (500)
        };
        match answers {
            Ok(answers) => {
                let queued = answers.iter().any(|a| matches!(a, Ok(r) if r.queued > 0));
                for (r, a) in group.into_iter().zip(answers) {
                    let _ = r.answer.send(a);
                }
                if queued {
                    inbox.rows_queued(&db);
                }
            }
            Err(e) => {
                let message = e.to_string();
                for r in group {
                    let _ = r.answer.send(Err(Failure::Internal(format!(
                        "receiving the push failed: {message}"
                    ))));
                }
            }
        }
    }
}

async fn run(inbox: Arc<Inbox>, db: Database) {
    let mut failures = 0u32;
    loop {
        inbox.pushes_first().await;
        inbox.pending.store(false, Ordering::SeqCst);
        let current = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let done = {
            let _bulk = db.bulk_turn().await;
            let _turn = db.write_turn().await;
            let (db, current, me) = (db.clone(), current.clone(), inbox.id.clone());
            tokio::task::spawn_blocking(move || {
                db.tx(|tx| {
                    let drained =
                        records::apply_inbox_watched(tx, APPLY_CHUNK, Utc::now(), &current)?;
                    if let Drained::Through(last) = drained {
                        wake::notify(tx, Move::Applied(last), &me)?;
                    }
                    Ok::<_, records::Error>(drained)
                })
            })
            .await
            .unwrap_or_else(|e| Err(records::Error::Internal(format!("task failed: {e}"))))
        };
        match done {
            Ok(Drained::Empty) => {
                inbox.running.store(false, Ordering::SeqCst);
                // A push that committed after the look above set `pending`: look again,
                // unless a new task has already been started for it.
                if inbox.pending.load(Ordering::SeqCst)
                    && !inbox.running.swap(true, Ordering::SeqCst)
                {
                    continue;
                }
                return;
            }
            Ok(Drained::Through(last)) => {
                failures = 0;
                inbox.applied_through(last);
            }
            Ok(Drained::Busy) => {
                // Another server is applying the inbox, and goes on until it is empty. Look
                // again when pushes are queued (it may have just stopped) or after the poll
                // (it may have died: its lock went with its connection).
                failures = 0;
                let _ = tokio::time::timeout(poll_interval(), inbox.queued.notified()).await;
            }
            Err(e) => {
                // Nothing of the failed transaction was kept. The row it was on counts the
                // failure; after a few it is set aside, so one row cannot hold up the rest.
                // A transient failure (a lost connection, a lock conflict, a full disk) is not
                // the row's: it is retried as long as it takes, and counts against nothing.
                failures += 1;
                let row = current.load(Ordering::SeqCst);
                let transient = matches!(&e, records::Error::Db(d) if d.is_transient());
                tracing::error!(error = %e, row, failures, transient, "applying the push inbox failed; retrying");
                if row > 0 && !transient {
                    note_failure(&db, row, &e).await;
                }
                tokio::time::sleep(Duration::from_millis(100 * u64::from(failures.min(50)))).await;
            }
        }
    }
}

/// Counts a failed application against inbox row `row`, quarantining it at
/// [`records::MAX_INBOX_ATTEMPTS`].
async fn note_failure(db: &Database, row: i64, e: &records::Error) {
    let why = match e {
        records::Error::Internal(m) => m.clone(),
        records::Error::Db(d) => d.to_string(),
        other => other.to_string(),
    };
    let _turn = db.write_turn().await;
    let db = db.clone();
    let noted = tokio::task::spawn_blocking(move || {
        db.tx(|tx| {
            repo::note_inbox_failure(tx, row, &why, records::MAX_INBOX_ATTEMPTS, Utc::now())
                .map_err(Failure::from)
        })
        .map(|q| (q, why))
    })
    .await;
    match noted {
        Ok(Ok((true, why))) => tracing::error!(
            row,
            error = %why,
            "push inbox row quarantined after {} failed tries; `gridwalk-server inbox retry {row}` puts it back",
            records::MAX_INBOX_ATTEMPTS
        ),
        Ok(Ok((false, _))) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, row, "could not count the failure against its row")
        }
        Err(e) => tracing::warn!(error = %e, row, "counting the failure against its row panicked"),
    }
}
