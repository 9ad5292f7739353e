//! The sync scheduler: when the app syncs by itself and when it probes the server, decided
//! from events and a monotonic clock it is handed. No I/O and no timers of its own, so every
//! rule is tested with a fake clock; the app (and the load generator) run the actions.
//!
//! - A save syncs soon after, while the server is reachable: `debounce` after the last save,
//!   at most `max_wait` after the first one still unsent. An urgent save (an emergency, its
//!   report) syncs at once, reachable or not.
//! - The server becoming reachable after being unreachable starts a sync.
//! - While reachable, a sync every `feedback_every` brings the county's feedback, and a probe
//!   every `probe_every` while nothing else runs keeps "online" honest.
//! - A tap syncs at once, whatever the state (it also clears a sign-in or update block, so the
//!   worker sees the current answer).
//! - Never two syncs (or a sync and a probe) at once: an action marks itself running until the
//!   caller reports its outcome.
//! - While unreachable (or the server is busy), probes are spaced by exponential backoff with
//!   full jitter (`backoff_base` doubling to `backoff_cap`, a uniform draw below it), so a
//!   thousand phones joining the office Wi-Fi together spread out. A network-up report from
//!   the platform resets the backoff and probes within `reconnect_spread` (uniformly spread).
//! - "Online" means a probe or sync succeeded within `online_for`; a failure reads offline at
//!   once.
//!
//! The clock is `Instant` (monotonic): the wall clock jumping changes no decision.

use std::time::{Duration, Instant};

use super::SyncError;

/// The scheduler's timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Quiet time after the last save before its sync.
    pub debounce: Duration,
    /// Longest a save waits while saves keep coming.
    pub max_wait: Duration,
    /// While reachable, how often a sync brings the county's feedback (a setting).
    pub feedback_every: Duration,
    /// While reachable and idle, how often a probe checks the server still answers.
    pub probe_every: Duration,
    /// The first backoff step after a failure.
    pub backoff_base: Duration,
    /// The longest backoff step.
    pub backoff_cap: Duration,
    /// After the platform reports the network back, the window probes are spread over.
    pub reconnect_spread: Duration,
    /// How long a success keeps the state "online".
    pub online_for: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            debounce: Duration::from_secs(5),
            max_wait: Duration::from_secs(30),
            feedback_every: Duration::from_secs(5 * 60),
            probe_every: Duration::from_secs(45),
            backoff_base: Duration::from_secs(2),
            backoff_cap: Duration::from_secs(5 * 60),
            reconnect_spread: Duration::from_secs(10),
            online_for: Duration::from_secs(60),
        }
    }
}

/// The shortest wait between two tries, whatever the jitter draws.
pub const MIN_RETRY: Duration = Duration::from_millis(500);

/// Full-jitter backoff: a uniform draw (`unit` in [0, 1)) below `base · 2^(failures-1)`
/// capped at `cap`, and never under [`MIN_RETRY`].
pub fn backoff(config: &Config, failures: u32, unit: f64) -> Duration {
    let step = config
        .backoff_base
        .saturating_mul(1u32 << failures.saturating_sub(1).min(20))
        .min(config.backoff_cap);
    step.mul_f64(unit.clamp(0.0, 1.0)).max(MIN_RETRY)
}

/// Why a probe or sync failed, as far as scheduling goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No answer: no network, the server down or the address wrong.
    Unreachable,
    /// The server answered but could not serve (5xx, 429, garbage): it is reachable, try
    /// again later.
    Retryable,
    /// The session expired or was revoked: nothing more syncs until the worker signs in.
    NeedsSignIn,
    /// The server needs a newer app.
    NeedsUpdate,
    /// The server refused what was sent, or the device cannot go on (a gap, local storage):
    /// retried only slowly, since trying again soon gives the same answer.
    Refused,
}

impl From<&SyncError> for Failure {
    fn from(e: &SyncError) -> Failure {
        match e {
            SyncError::Offline(_) => Failure::Unreachable,
            SyncError::Server(_) => Failure::Retryable,
            SyncError::Unauthorized | SyncError::NotEnrolled => Failure::NeedsSignIn,
            SyncError::Incompatible(_) => Failure::NeedsUpdate,
            SyncError::Forbidden(_)
            | SyncError::Rejected(_)
            | SyncError::Gap { .. }
            | SyncError::Store(_) => Failure::Refused,
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A record was saved (its outbox entries written). `urgent`: an emergency or its report.
    Saved {
        urgent: bool,
    },
    /// The worker tapped sync.
    Tapped,
    SyncOk,
    SyncFailed(Failure),
    ProbeOk,
    ProbeFailed(Failure),
    /// The platform reports the network back (phones); there is no such report elsewhere.
    NetworkUp,
    /// The platform reports no network.
    NetworkDown,
    /// The worker signed in again (a new token).
    SignedIn,
    /// The server address was changed.
    ServerChanged,
}

/// Why a sync starts (for the screen and the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Tapped,
    Urgent,
    Saved,
    /// The server answers again after being unreachable (or for the first time since start).
    Reachable,
    Feedback,
}

/// What the caller should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Run a sync (urgent lane first, as every sync does) and report `SyncOk`/`SyncFailed`.
    Sync { reason: Reason },
    /// Ask whether the server answers and report `ProbeOk`/`ProbeFailed`.
    Probe,
}

/// What the online pill says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Syncing,
    /// A probe or sync succeeded within `online_for`.
    Online,
    /// Not known yet, or the last success is older than `online_for`.
    Checking,
    /// The platform reports no network.
    NoNetwork,
    /// The server does not answer; the next try in `retry_in`.
    Offline {
        retry_in: Option<Duration>,
    },
    /// The server answers but cannot serve now.
    Busy {
        retry_in: Option<Duration>,
    },
    NeedsSignIn,
    NeedsUpdate,
    /// The last sync was refused.
    Refused {
        retry_in: Option<Duration>,
    },
}

fn secs(d: Option<Duration>) -> String {
    d.map(|d| d.as_secs().max(1).to_string())
        .unwrap_or_else(|| "?".into())
}

impl Status {
    /// The pill's words, Chinese.
    pub fn zh(&self) -> String {
        match self {
            Status::Syncing => "正在同步…".into(),
            Status::Online => "在线".into(),
            Status::Checking => "正在检查网络…".into(),
            Status::NoNetwork => "无网络（可照常工作）".into(),
            Status::Offline { retry_in } => {
                format!("离线（可照常工作），{} 秒后重试", secs(*retry_in))
            }
            Status::Busy { retry_in } => format!("服务器繁忙，{} 秒后重试", secs(*retry_in)),
            Status::NeedsSignIn => "登录已失效，请重新登录".into(),
            Status::NeedsUpdate => "需要升级应用".into(),
            Status::Refused { .. } => "同步出错，见同步页".into(),
        }
    }
    /// The pill's words, English.
    pub fn en(&self) -> String {
        match self {
            Status::Syncing => "Syncing…".into(),
            Status::Online => "Online".into(),
            Status::Checking => "Checking the network…".into(),
            Status::NoNetwork => "No network (keep working)".into(),
            Status::Offline { retry_in } => {
                format!("Offline (keep working), retry in {} s", secs(*retry_in))
            }
            Status::Busy { retry_in } => format!("Server busy, retry in {} s", secs(*retry_in)),
            Status::NeedsSignIn => "Signed out: sign in again".into(),
            Status::NeedsUpdate => "Update the app".into(),
            Status::Refused { .. } => "Sync failed: see Sync".into(),
        }
    }
    /// Whether the pill reads as good news.
    pub fn is_ok(&self) -> bool {
        matches!(self, Status::Online | Status::Syncing)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Running {
    Sync(Instant),
    Probe,
}

/// The scheduler of one device.
#[derive(Debug, Clone)]
pub struct Scheduler {
    config: Config,
    rng: u64,
    running: Option<Running>,
    /// The last success (probe or sync) and the last failure.
    last_ok: Option<Instant>,
    last_failure: Option<(Instant, Failure)>,
    /// Consecutive failed tries (reset only by a sync that succeeds, a sign-in, a new address
    /// or the network coming back), and when to try again after them.
    failures: u32,
    retry_at: Option<Instant>,
    /// The last successful sync (feedback is due `feedback_every` after it).
    last_sync: Option<Instant>,
    /// Saves not yet sent: the first and the last.
    first_unsent: Option<Instant>,
    last_save: Option<Instant>,
    /// An urgent save not yet tried.
    urgent: bool,
    tapped: bool,
    /// The server answers again after being unreachable: sync at once.
    reachable_again: bool,
    network_down: bool,
    /// Sign-in or update needed: no sync until the worker acts.
    blocked: Option<Failure>,
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Scheduler {
    /// A scheduler with its jitter seeded from the system's randomness.
    pub fn new(config: Config) -> Scheduler {
        Scheduler::seeded(config, rand::random())
    }

    /// A scheduler with a fixed jitter seed (tests, simulations).
    pub fn seeded(config: Config, seed: u64) -> Scheduler {
        Scheduler {
            config,
            rng: seed,
            running: None,
            last_ok: None,
            last_failure: None,
            failures: 0,
            retry_at: None,
            last_sync: None,
            first_unsent: None,
            last_save: None,
            urgent: false,
            tapped: false,
            reachable_again: true,
            network_down: false,
            blocked: None,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Changes the timings (the feedback interval is a setting); keeps the state.
    pub fn set_config(&mut self, config: Config) {
        self.config = config;
    }

    fn unit(&mut self) -> f64 {
        (splitmix(&mut self.rng) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Whether a sync is running.
    pub fn syncing(&self) -> bool {
        matches!(self.running, Some(Running::Sync(_)))
    }

    /// Whether saves are waiting for a sync.
    pub fn work_waiting(&self) -> bool {
        self.first_unsent.is_some()
    }

    /// Consecutive failed tries.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Whether the last outcome was a success.
    fn answering(&self) -> bool {
        match (self.last_ok, self.last_failure) {
            (Some(ok), f) => f.is_none_or(|(at, _)| at < ok),
            (None, _) => false,
        }
    }

    /// Whether a probe or sync succeeded within `online_for` and nothing failed since.
    pub fn online(&self, now: Instant) -> bool {
        self.answering()
            && !self.network_down
            && self
                .last_ok
                .is_some_and(|ok| now.saturating_duration_since(ok) < self.config.online_for)
    }

    /// What the pill says now.
    pub fn status(&self, now: Instant) -> Status {
        if self.syncing() {
            return Status::Syncing;
        }
        match self.blocked {
            Some(Failure::NeedsSignIn) => return Status::NeedsSignIn,
            Some(Failure::NeedsUpdate) => return Status::NeedsUpdate,
            _ => {}
        }
        if self.network_down {
            return Status::NoNetwork;
        }
        if self.online(now) {
            return Status::Online;
        }
        let retry_in = self.retry_at.map(|t| t.saturating_duration_since(now));
        match self.last_failure {
            Some((_, f)) if !self.answering() => match f {
                Failure::Unreachable => Status::Offline { retry_in },
                Failure::Retryable => Status::Busy { retry_in },
                Failure::Refused => Status::Refused { retry_in },
                Failure::NeedsSignIn => Status::NeedsSignIn,
                Failure::NeedsUpdate => Status::NeedsUpdate,
            },
            _ => Status::Checking,
        }
    }

    /// Takes an event.
    pub fn handle(&mut self, now: Instant, event: Event) {
        match event {
            Event::Saved { urgent } => {
                self.first_unsent.get_or_insert(now);
                self.last_save = Some(now);
                self.urgent |= urgent;
            }
            Event::Tapped => {
                self.tapped = true;
                self.blocked = None;
            }
            Event::SyncOk => {
                let started = match self.running {
                    Some(Running::Sync(at)) => Some(at),
                    _ => None,
                };
                self.running = None;
                self.last_ok = Some(now);
                self.last_sync = Some(now);
                self.failures = 0;
                self.retry_at = None;
                self.blocked = None;
                self.reachable_again = false;
                // A save made while the sync ran may have missed it: it waits for the next.
                match (self.last_save, started) {
                    (Some(saved), Some(started)) if saved > started => {
                        self.first_unsent = Some(saved);
                    }
                    _ => {
                        self.first_unsent = None;
                        self.last_save = None;
                        self.urgent = false;
                    }
                }
            }
            Event::ProbeOk => {
                self.running = None;
                if !self.answering() {
                    self.reachable_again = true;
                }
                self.last_ok = Some(now);
                self.retry_at = None;
            }
            Event::SyncFailed(f) | Event::ProbeFailed(f) => {
                self.running = None;
                self.failed(now, f);
            }
            Event::NetworkUp => {
                self.network_down = false;
                self.failures = 0;
                let spread = self.config.reconnect_spread.mul_f64(self.unit());
                self.retry_at = Some(now + spread);
                self.last_ok = None;
                self.reachable_again = true;
            }
            Event::NetworkDown => {
                self.network_down = true;
                self.last_ok = None;
            }
            Event::SignedIn | Event::ServerChanged => {
                self.blocked = None;
                self.failures = 0;
                self.retry_at = None;
                self.last_ok = None;
                self.last_failure = None;
                self.reachable_again = true;
            }
        }
    }

    fn failed(&mut self, now: Instant, f: Failure) {
        self.last_failure = Some((now, f));
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Some(match f {
            // Nothing automatic helps: wait for the worker (a tap, a sign-in, a new address);
            // probes go on slowly so the pill stays true.
            Failure::NeedsSignIn | Failure::NeedsUpdate => {
                self.blocked = Some(f);
                now + self.config.backoff_cap
            }
            // The same answer would come again soon.
            Failure::Refused => now + self.config.backoff_cap,
            Failure::Unreachable | Failure::Retryable => {
                let unit = self.unit();
                now + backoff(&self.config, self.failures, unit)
            }
        });
    }

    /// When a save waiting would sync (reachable): debounced, capped by `max_wait`.
    fn save_due(&self) -> Option<Instant> {
        let first = self.first_unsent?;
        let last = self.last_save.unwrap_or(first);
        Some((last + self.config.debounce).min(first + self.config.max_wait))
    }

    /// The next action and when it is due.
    fn due(&self, now: Instant) -> Option<(Instant, Action)> {
        if self.running.is_some() {
            return None;
        }
        if self.tapped {
            return Some((
                now,
                Action::Sync {
                    reason: Reason::Tapped,
                },
            ));
        }
        if self.network_down {
            return None;
        }
        if self.urgent && self.blocked.is_none() {
            return Some((
                now,
                Action::Sync {
                    reason: Reason::Urgent,
                },
            ));
        }
        if self.blocked.is_some() {
            // Only probes, spaced out, so the pill stays true.
            let at = self
                .retry_at
                .or(self.last_ok.map(|ok| ok + self.config.probe_every))
                .unwrap_or(now);
            return Some((at, Action::Probe));
        }
        if !self.answering() {
            let at = self.retry_at.unwrap_or(now);
            // A busy or refusing server answers a probe: retry the sync itself, spaced.
            return Some(match self.last_failure {
                Some((_, Failure::Retryable | Failure::Refused)) if self.last_ok.is_some() => (
                    at,
                    Action::Sync {
                        reason: Reason::Reachable,
                    },
                ),
                _ => (at, Action::Probe),
            });
        }
        if self.reachable_again {
            return Some((
                now,
                Action::Sync {
                    reason: Reason::Reachable,
                },
            ));
        }
        let ok = self.last_ok.expect("answering");
        let feedback = self
            .last_sync
            .map_or(now, |s| s + self.config.feedback_every);
        let mut next = (
            feedback,
            Action::Sync {
                reason: Reason::Feedback,
            },
        );
        if let Some(due) = self.save_due()
            && due <= next.0
        {
            next = (
                due,
                Action::Sync {
                    reason: Reason::Saved,
                },
            );
        }
        let probe = ok + self.config.probe_every;
        if probe < next.0 {
            next = (probe, Action::Probe);
        }
        Some(next)
    }

    /// The next moment something is due (the caller sleeps until then or the next event).
    /// `None` while an action runs or until an event.
    pub fn next_wake(&self, now: Instant) -> Option<Instant> {
        self.due(now).map(|(at, _)| at.max(now))
    }

    /// What to do now, if anything. A returned action is marked running until its outcome is
    /// reported.
    pub fn tick(&mut self, now: Instant) -> Option<Action> {
        let (at, action) = self.due(now)?;
        if at > now {
            return None;
        }
        match action {
            Action::Sync { reason } => {
                if reason == Reason::Tapped {
                    self.tapped = false;
                }
                self.urgent = false;
                self.running = Some(Running::Sync(now));
            }
            Action::Probe => self.running = Some(Running::Probe),
        }
        self.retry_at = None;
        Some(action)
    }
}

#[cfg(test)]
mod tests;
