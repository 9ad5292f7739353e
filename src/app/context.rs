//! What every screen shares, below the views: the [`Services`] the app is started with, the
//! [`Session`] signals (the unlocked store, its revision, a running patrol), the
//! [`StoreHandle`] screens read and write through, and the hooks that reach them.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, NaiveDate, Utc};
use dioxus::prelude::*;
use uuid::Uuid;

use super::Route;
use super::i18n;
use super::platform::{Camera, Location};
use super::sync_port::SyncPort;
use crate::domain::codes::Lang;
use crate::domain::labels::Explain;
use crate::store::{Store, StoreError};

/// Everything platform-specific the app is given when it starts.
#[derive(Clone)]
pub struct Services {
    /// Where the encrypted device store lives (unlocked with the PIN). `None` when the app is
    /// handed an already-open store (tests, previews).
    pub db_path: Option<PathBuf>,
    /// An already-open store: the app starts unlocked.
    pub store: Option<Arc<Mutex<Store>>>,
    pub location: Arc<dyn Location>,
    pub camera: Arc<dyn Camera>,
    pub sync: Arc<dyn SyncPort>,
    /// The clock (fixed in tests).
    pub clock: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
    /// How often a running patrol takes a fix, in milliseconds.
    pub fix_interval_ms: u64,
    /// The first screen after unlocking (tests start on any screen).
    pub start: Option<Route>,
    pub lang: Lang,
    /// Syncing by itself with these timings (`None`: only when the worker taps, as view
    /// tests want).
    pub autosync: Option<crate::client::schedule::Config>,
}

impl PartialEq for Services {
    fn eq(&self, other: &Self) -> bool {
        self.db_path == other.db_path
            && match (&self.store, &other.store) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
            && self.start == other.start
    }
}

impl Services {
    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }
    /// Today in China Standard Time (UTC+8), where the work happens.
    pub fn today(&self) -> NaiveDate {
        crate::domain::cst::today(self.now())
    }
}

/// A time as the worker reads it: China Standard Time (UTC+8), in a `chrono` format.
pub fn local_time(t: DateTime<Utc>, fmt: &str) -> String {
    crate::domain::cst::local(t).format(fmt).to_string()
}

/// A stored RFC 3339 time (e.g. the last sync) as the worker reads it, or "never".
pub fn local_stamp(stored: Option<&str>, never: &str) -> String {
    match stored {
        None => never.to_owned(),
        Some(s) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => local_time(t.with_timezone(&Utc), "%Y-%m-%d %H:%M"),
            Err(_) => s.to_owned(),
        },
    }
}

/// The unlocked store and a revision counter that screens read, so a write anywhere re-runs
/// every query that depends on it.
#[derive(Clone, Copy)]
pub struct Session {
    pub store: Signal<Option<Arc<Mutex<Store>>>>,
    pub rev: Signal<u64>,
    /// A running patrol (id), shared by the Patrol screen and the report forms.
    pub patrol: Signal<Option<Uuid>>,
    /// Bumped on every recorded fix (the Patrol and Map screens follow it).
    pub track: Signal<u64>,
    /// The last reading the patrol recorder received while a patrol runs (the Patrol screen
    /// shows its accuracy and age, or why there is none).
    pub located: Signal<Option<super::platform::Locating>>,
}

/// What a screen reaches the store through, and the language its errors are worded in.
#[derive(Clone)]
pub struct StoreHandle(pub Arc<Mutex<Store>>, pub Lang);

impl StoreHandle {
    pub fn lock(&self) -> Result<MutexGuard<'_, Store>, StoreError> {
        self.0
            .lock()
            .map_err(|_| StoreError::Corrupt("the store lock was poisoned by a crash".into()))
    }
    /// Runs a read against the store; the error comes back as words for the screen.
    pub fn read<T>(&self, f: impl FnOnce(&Store) -> Result<T, StoreError>) -> Result<T, String> {
        let s = self.lock().map_err(|e| e.explain(self.1))?;
        f(&s).map_err(|e| e.explain(self.1))
    }
    /// A store error in words for the screen.
    pub fn explain(&self, e: &StoreError) -> String {
        e.explain(self.1)
    }
    pub fn write<T>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut s = self.lock()?;
        f(&mut s)
    }
}

pub fn use_services() -> Services {
    use_context::<Services>()
}

pub fn use_session() -> Session {
    use_context::<Session>()
}

/// The unlocked store. Only screens behind the lock call this, so it is always there.
pub fn use_store() -> StoreHandle {
    let session = use_session();
    let lang = i18n::use_lang()();
    let s = session.store.read().clone();
    match s {
        Some(s) => StoreHandle(s, lang),
        // Unreachable in practice: `App` renders the router only once a store is unlocked.
        None => StoreHandle(
            Arc::new(Mutex::new(
                Store::open_in_memory().unwrap_or_else(|e| panic!("in-memory store: {e}")),
            )),
            lang,
        ),
    }
}

/// Tells every screen that the store changed.
pub fn bump(mut session: Session) {
    let next = *session.rev.peek() + 1;
    session.rev.set(next);
}

#[cfg(test)]
mod time_tests {
    use super::*;

    #[test]
    fn times_are_shown_in_china_standard_time() {
        let t = DateTime::parse_from_rfc3339("2026-11-29T17:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(local_time(t, "%m-%d %H:%M"), "11-30 01:30");
        assert_eq!(
            local_stamp(Some("2026-11-29T02:05:09.123Z"), "never"),
            "2026-11-29 10:05"
        );
        assert_eq!(local_stamp(None, "从未"), "从未");
    }
}
