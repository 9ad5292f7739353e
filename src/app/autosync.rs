//! Syncing by itself: the [`Scheduler`] driven on the UI's executor, with the outcome every
//! screen reads ([`AutoSync`]: the online pill, the running sync's progress, the last result).
//!
//! One task per app instance runs every sync and probe, so there are never two at once. It
//! notices saves by the outbox's per-lane sequence numbers growing (checked whenever the store
//! revision moves, and at least every second), so no screen has to tell it; screens send
//! [`Event::Tapped`], and the settings screen a new address or a sign-in. A platform that
//! reports network changes sends [`Event::NetworkUp`] / [`Event::NetworkDown`] through
//! [`AutoSync::send`]; elsewhere the probe is all there is.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use dioxus::prelude::*;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::client::schedule::{Action, Config, Event, Failure, Reason, Scheduler, Status};
use crate::store::Store;
use crate::store::remote::SERVER_URL;
use crate::wire::Lane;

use super::sync_port::{SyncFailure, SyncPhase, SyncProgress, SyncReport};
use super::{Services, Session, bump};

/// The meta key of the feedback interval the worker chose, in minutes.
pub const FEEDBACK_MINUTES: &str = "sync_feedback_minutes";

/// The feedback intervals offered, in minutes.
pub const FEEDBACK_CHOICES: [u64; 4] = [2, 5, 15, 30];

/// The last sync the app ran, and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct LastRun {
    pub at: DateTime<Utc>,
    pub reason: Reason,
    pub result: Result<SyncReport, SyncFailure>,
}

/// What the sync task tells the screens, and how screens reach it.
#[derive(Clone, Copy)]
pub struct AutoSync {
    /// The pill's state; `None` while the store has no server (a demo store, not enrolled).
    pub status: Signal<Option<Status>>,
    /// The running sync's progress per phase (upload, download, photos).
    pub progress: Signal<[Option<SyncProgress>; 3]>,
    pub last: Signal<Option<LastRun>>,
    tx: CopyValue<Option<UnboundedSender<Msg>>>,
}

enum Msg {
    Event(Event),
    Config(Config),
}

impl AutoSync {
    /// Tells the scheduler something happened (a tap, a new address, a sign-in, the network).
    pub fn send(&self, e: Event) {
        if let Some(tx) = self.tx.peek().as_ref() {
            let _ = tx.send(Msg::Event(e));
        }
    }
    /// Changes the timings (the feedback interval setting).
    pub fn set_config(&self, c: Config) {
        if let Some(tx) = self.tx.peek().as_ref() {
            let _ = tx.send(Msg::Config(c));
        }
    }
    /// Whether a sync runs now.
    pub fn syncing(&self) -> bool {
        *self.status.read() == Some(Status::Syncing)
    }
}

pub fn use_autosync() -> AutoSync {
    use_context::<AutoSync>()
}

/// The scheduler's timings with the worker's feedback interval, if set.
pub fn config_of(store: &Store, base: Config) -> Config {
    let minutes = store
        .meta(FEEDBACK_MINUTES)
        .ok()
        .flatten()
        .and_then(|m| m.parse::<u64>().ok())
        .filter(|m| (1..=24 * 60).contains(m));
    match minutes {
        Some(m) => Config {
            feedback_every: Duration::from_secs(m * 60),
            ..base
        },
        None => base,
    }
}

/// Provides [`AutoSync`] and starts the task that runs every sync. With `config` it syncs by
/// itself; without (view tests, a build that wants only the button) it syncs only when tapped.
/// Called once by `App`.
pub fn use_autosync_provider(
    services: &Services,
    session: Session,
    config: Option<Config>,
) -> AutoSync {
    let status = use_signal(|| None);
    let progress = use_signal(|| [None; 3]);
    let last = use_signal(|| None);
    let (tx, rx) = use_hook(|| {
        let (tx, rx) = unbounded_channel();
        (CopyValue::new(Some(tx)), Rc::new(RefCell::new(Some(rx))))
    });
    let auto = use_context_provider(|| AutoSync {
        status,
        progress,
        last,
        tx,
    });
    let services = services.clone();
    use_future(move || {
        let services = services.clone();
        let rx = rx.borrow_mut().take();
        async move {
            if let Some(rx) = rx {
                run(services, session, auto, config, rx).await;
            }
        }
    });
    auto
}

/// The per-lane sequence numbers last seen, to notice saves.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Seen {
    urgent: u64,
    normal: u64,
}

fn seen(store: &Store) -> Option<(Seen, u64)> {
    Some((
        Seen {
            urgent: store.outbox_last_seq(Lane::Urgent).ok()?,
            normal: store.outbox_last_seq(Lane::Normal).ok()?,
        },
        store.outbox_len().ok()?,
    ))
}

async fn run(
    services: Services,
    session: Session,
    mut auto: AutoSync,
    config: Option<Config>,
    mut rx: UnboundedReceiver<Msg>,
) {
    let manual = config.is_none();
    let config = config.unwrap_or_default();
    let mut sched = Scheduler::new(config);
    let mut base = config;
    let mut rev = None;
    let mut last_seen: Option<Seen> = None;
    loop {
        let now = Instant::now();
        let store = session.store.peek().clone();
        let enrolled = store.as_ref().and_then(|s| {
            let s = s.lock().ok()?;
            Some(s.meta(SERVER_URL).ok().flatten().is_some())
        });
        if enrolled != Some(true) {
            // Locked, or a store with no server: nothing runs by itself; a tap still gets its
            // answer (e.g. "not enrolled").
            if auto.status.peek().is_some() {
                auto.status.set(None);
            }
            tokio::select! {
                m = rx.recv() => match (m, store) {
                    (None, _) => return,
                    (Some(Msg::Event(Event::Tapped)), Some(store)) => {
                        let _ = run_sync(&services, session, &mut auto, &store, Reason::Tapped).await;
                    }
                    (Some(m), _) => apply(&mut sched, &mut base, m),
                },
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            continue;
        }
        let store = store.expect("enrolled");
        // Saves: the outbox's sequence numbers grew since last looked.
        let r = *session.rev.peek();
        if rev != Some(r) || last_seen.is_none() {
            rev = Some(r);
            let now_seen = store.lock().ok().and_then(|s| {
                let c = config_of(&s, base);
                if c != *sched.config() {
                    sched.set_config(c);
                }
                seen(&s)
            });
            if let Some((s, pending)) = now_seen {
                match last_seen {
                    None if pending > 0 => sched.handle(
                        now,
                        Event::Saved {
                            urgent: s.urgent > 0 && has_urgent(&store),
                        },
                    ),
                    Some(before) if s != before && pending > 0 => sched.handle(
                        now,
                        Event::Saved {
                            urgent: s.urgent > before.urgent,
                        },
                    ),
                    _ => {}
                }
                last_seen = Some(s);
            }
        }
        while let Ok(m) = rx.try_recv() {
            apply(&mut sched, &mut base, m);
        }
        let action = if manual {
            // Only a tap syncs: anything else the scheduler would do waits.
            match sched.tick(now) {
                Some(
                    a @ Action::Sync {
                        reason: Reason::Tapped,
                    },
                ) => Some(a),
                Some(Action::Sync { .. }) => {
                    sched.handle(now, Event::SyncOk);
                    None
                }
                Some(Action::Probe) => {
                    sched.handle(now, Event::ProbeOk);
                    None
                }
                None => None,
            }
        } else {
            sched.tick(now)
        };
        match action {
            Some(Action::Probe) => {
                show(&mut auto, &sched, manual);
                let res = services.sync.probe(store.clone()).await;
                let now = Instant::now();
                match res {
                    Ok(()) => sched.handle(now, Event::ProbeOk),
                    Err(f) => sched.handle(now, Event::ProbeFailed(f.kind)),
                }
            }
            Some(Action::Sync { reason }) => {
                show(&mut auto, &sched, manual);
                let result = run_sync(&services, session, &mut auto, &store, reason).await;
                let now = Instant::now();
                match result {
                    Ok(()) => sched.handle(now, Event::SyncOk),
                    Err(kind) => sched.handle(now, Event::SyncFailed(kind)),
                }
                if let Ok(s) = store.lock()
                    && let Some((s, _)) = seen(&s)
                {
                    last_seen = Some(s);
                }
                rev = Some(*session.rev.peek());
            }
            None => {
                show(&mut auto, &sched, manual);
                // Sleep to the next wake, a message, or a second (the pill's countdown and
                // saves noticed by the store revision).
                let wait = sched
                    .next_wake(now)
                    .map(|w| w.saturating_duration_since(now))
                    .unwrap_or(Duration::from_secs(1))
                    .min(Duration::from_secs(1));
                tokio::select! {
                    m = rx.recv() => match m {
                        Some(m) => apply(&mut sched, &mut base, m),
                        None => return,
                    },
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
        show(&mut auto, &sched, manual);
    }
}

/// Runs one sync with its progress shown, keeps its outcome for the screens and tells them
/// the store changed.
async fn run_sync(
    services: &Services,
    session: Session,
    auto: &mut AutoSync,
    store: &Arc<Mutex<Store>>,
    reason: Reason,
) -> Result<(), Failure> {
    if *auto.status.peek() != Some(Status::Syncing) {
        auto.status.set(Some(Status::Syncing));
    }
    auto.progress.set([None; 3]);
    let mut progress = auto.progress;
    let on_progress = Box::new(move |p: SyncProgress| {
        let i = match p.phase {
            SyncPhase::Upload => 0,
            SyncPhase::Download => 1,
            SyncPhase::Photos => 2,
        };
        progress.write()[i] = Some(p);
    });
    let result = services.sync.sync(store.clone(), on_progress).await;
    let outcome = result.as_ref().map(|_| ()).map_err(|f| f.kind);
    auto.last.set(Some(LastRun {
        at: services.now(),
        reason,
        result,
    }));
    bump(session);
    outcome
}

fn has_urgent(store: &Arc<Mutex<Store>>) -> bool {
    store
        .lock()
        .ok()
        .and_then(|s| s.outbox(Lane::Urgent, 1).ok())
        .is_some_and(|e| !e.is_empty())
}

fn apply(sched: &mut Scheduler, base: &mut Config, m: Msg) {
    match m {
        Msg::Event(e) => sched.handle(Instant::now(), e),
        Msg::Config(c) => {
            *base = c;
            sched.set_config(c);
        }
    }
}

fn show(auto: &mut AutoSync, sched: &Scheduler, manual: bool) {
    // Without the scheduler running there is nothing true to say but "syncing".
    let s = Some(sched.status(Instant::now())).filter(|s| !manual || *s == Status::Syncing);
    if *auto.status.peek() != s {
        auto.status.set(s);
    }
}
