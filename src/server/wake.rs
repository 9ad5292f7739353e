//! Wake-ups between server processes on one PostgreSQL: every move of the push inbox is
//! announced on [`CHANNEL`] (`NOTIFY`, in the transaction that makes the move, so it is heard
//! at its commit, and never if it rolls back), and each server process keeps one connection
//! of its own listening, on a thread of its own (the `postgres` client blocks), that turns
//! what another process announced into the push inbox's own signals. Pushes queued elsewhere
//! start this process's applier (it may get the inbox lock if the other one is busy or has
//! died); rows applied elsewhere wake the pulls here that wait for them (which then read the
//! inbox again: a wake-up is a hint, the database has the last word). A dropped connection
//! is opened again with backoff; meanwhile, and always, the push inbox's poll
//! ([`super::inbox::poll_interval`]) is the safety net.
//!
//! SQLite is one process: nothing is announced there, and nobody listens.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use tokio::sync::mpsc;

use super::db::{Database, DbError, Sql, V};
use super::inbox::Inbox;

/// The channel the push inbox's moves are announced on.
pub const CHANNEL: &str = "gridwalk_inbox";

/// How long the listener waits on its connection before it looks whether its server is
/// still there.
const LOOK_UP: Duration = Duration::from_secs(1);
/// How often the listening connection is asked whether it still answers: one cut without a
/// word (a firewall, a lost host) says nothing otherwise.
const CHECK_EVERY: Duration = Duration::from_secs(30);
/// The first wait before connecting again; it doubles up to [`RECONNECT_MAX`].
const RECONNECT_FIRST: Duration = Duration::from_millis(250);
const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// A move of the push inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// Pushes were queued (received, or a quarantined row put back): an applier should look.
    Queued,
    /// The inbox was applied through this row.
    Applied(i64),
}

impl Move {
    /// The notification's payload: the move and who made it (`queued <from>`, `applied <row>
    /// <from>`).
    pub fn payload(self, from: &str) -> String {
        match self {
            Move::Queued => format!("queued {from}"),
            Move::Applied(row) => format!("applied {row} {from}"),
        }
    }

    /// A payload read back: the move and who made it; `None` for anything else.
    pub fn parse(payload: &str) -> Option<(Move, &str)> {
        let mut words = payload.split(' ');
        let m = match words.next()? {
            "queued" => Move::Queued,
            "applied" => Move::Applied(words.next()?.parse().ok()?),
            _ => return None,
        };
        let from = words.next()?;
        words.next().is_none().then_some((m, from))
    }
}

/// Announces `m`, made by `from` (a server process's [`Inbox::id`], or whoever else moved
/// the inbox), to every server listening, when `db`'s transaction commits. Nothing on SQLite.
pub fn notify(db: &mut dyn Sql, m: Move, from: &str) -> Result<(), DbError> {
    if db.backend() == "postgres" {
        db.exec(
            "SELECT pg_notify($1, $2)",
            &[V::T(CHANNEL.to_owned()), V::T(m.payload(from))],
        )?;
    }
    Ok(())
}

/// Listens for the other processes' inbox moves on `db` for as long as `inbox` is there
/// (PostgreSQL; nothing on SQLite). Needs a tokio runtime.
pub(super) fn listen(inbox: &Arc<Inbox>, db: &Database) {
    let Database::Postgres(pool) = db else {
        return;
    };
    let mut config = pool.config().clone();
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    let (events, mut heard) = mpsc::unbounded_channel();
    let me = inbox.id().to_owned();
    let weak = Arc::downgrade(inbox);
    let thread_weak = weak.clone();
    let started = std::thread::Builder::new()
        .name("gridwalk-listen".into())
        .spawn(move || listen_on_thread(config, &me, &events, &thread_weak));
    if let Err(e) = started {
        tracing::error!(error = %e, "cannot start listening for the other servers' inbox moves; polling only");
        return;
    }
    let db = db.clone();
    tokio::spawn(async move {
        while let Some(m) = heard.recv().await {
            let Some(inbox) = weak.upgrade() else {
                return;
            };
            match m {
                Move::Queued => inbox.rows_queued(&db),
                Move::Applied(row) => inbox.applied_through(row),
            }
        }
    });
}

/// Why the listening connection was given up.
#[derive(Debug, thiserror::Error)]
enum Lost {
    #[error("PostgreSQL: {0}")]
    Pg(#[from] postgres::Error),
    #[error("the connection closed")]
    Closed,
}

/// The listener's thread: connects, listens and forwards, connecting again with backoff
/// whenever the connection is lost, until the inbox or its runtime is gone.
fn listen_on_thread(
    config: postgres::Config,
    me: &str,
    events: &mpsc::UnboundedSender<Move>,
    inbox: &Weak<Inbox>,
) {
    let there = || inbox.strong_count() > 0 && !events.is_closed();
    let mut wait = RECONNECT_FIRST;
    let mut deaf = false;
    while there() {
        let listening = config.connect(postgres::NoTls).and_then(|mut client| {
            client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
            Ok(client)
        });
        let lost = match listening {
            Ok(mut client) => {
                if deaf {
                    tracing::info!("hearing the other servers' inbox moves again");
                } else {
                    tracing::info!(
                        "listening for the other servers' inbox moves (LISTEN {CHANNEL})"
                    );
                }
                deaf = false;
                wait = RECONNECT_FIRST;
                // Whatever was queued while nobody listened: the applier looks.
                if events.send(Move::Queued).is_err() {
                    return;
                }
                match forward(&mut client, me, events, &there) {
                    Ok(()) => return,
                    Err(e) => e,
                }
            }
            Err(e) => Lost::Pg(e),
        };
        if deaf {
            tracing::debug!(error = %lost, "still not hearing the other servers' inbox moves");
        } else {
            tracing::warn!(error = %lost, "not hearing the other servers' inbox moves; polling the inbox until the connection is back");
            deaf = true;
        }
        let until = Instant::now() + wait;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            if !there() {
                return;
            }
            std::thread::sleep(left.min(LOOK_UP));
        }
        wait = (wait * 2).min(RECONNECT_MAX);
    }
}

/// Forwards the other processes' moves heard on `client` until the server is gone (`Ok`) or
/// the connection is lost.
fn forward(
    client: &mut postgres::Client,
    me: &str,
    events: &mpsc::UnboundedSender<Move>,
    there: &impl Fn() -> bool,
) -> Result<(), Lost> {
    let mut checked = Instant::now();
    loop {
        let looked = Instant::now();
        {
            let mut notes = client.notifications();
            let mut heard = notes.timeout_iter(LOOK_UP);
            while let Some(n) = heard.next()? {
                match Move::parse(n.payload()) {
                    Some((_, from)) if from == me => {}
                    Some((m, from)) => {
                        tracing::debug!(from, ?m, "the inbox moved on another server");
                        if events.send(m).is_err() {
                            return Ok(());
                        }
                    }
                    None => tracing::debug!(payload = n.payload(), "not an inbox move; ignored"),
                }
                if looked.elapsed() >= LOOK_UP {
                    break;
                }
            }
        }
        if !there() {
            return Ok(());
        }
        if client.is_closed() {
            return Err(Lost::Closed);
        }
        if checked.elapsed() >= CHECK_EVERY {
            client.is_valid(Duration::from_secs(10))?;
            checked = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_read_back() {
        for m in [Move::Queued, Move::Applied(42)] {
            assert_eq!(Move::parse(&m.payload("abc")), Some((m, "abc")));
        }
        for bad in [
            "",
            "queued",
            "applied x abc",
            "applied 1",
            "moved abc",
            "queued a b",
        ] {
            assert_eq!(Move::parse(bad), None, "{bad}");
        }
    }
}
