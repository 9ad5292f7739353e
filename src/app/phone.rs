//! The phone build (feature `mobile`): the app's data directory, the location provider over
//! robius-location, and the services the mobile launcher starts [`App`](super::App) with.
//!
//! robius-location covers Android (LocationManager, through a small Java helper it bundles)
//! and iOS (CoreLocation), and Linux through the location portal or GeoClue, so this module
//! compiles for the `mobile` feature on every target; only the data directory differs by
//! `target_os`. It gives coordinates and the time of each fix but no accuracy, so a phone's
//! fixes carry none: the forms say "精度未知" and the patrol track's jump rule
//! ([`MAX_SPEED_MPS`](super::platform::MAX_SPEED_MPS)) stands in for the accuracy limit.
//!
//! Threads: robius-location's manager must be made and driven on the main thread (iOS). The
//! mobile launcher runs the UI there, so the manager lives in a thread-local of that thread,
//! and the provider drives it only when called there; its callbacks push readings into a
//! [`FixFeed`] from whichever thread the platform uses.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::platform::{Fix, FixFeed, Fixes, Location, PlatformError};
use crate::domain::geo::GeoPoint;

/// The name of the device store in the app's data directory.
pub const STORE_FILE: &str = "device.db";

/// The app's private data directory: Android's `Context.getFilesDir()`
/// (`/data/data/<package>/files`), iOS's `Library/Application Support` in the app's sandbox,
/// elsewhere `$XDG_DATA_HOME/gridwalk` (or `~/.local/share/gridwalk`). Made if missing.
pub fn data_dir() -> Result<PathBuf, String> {
    let dir = platform_data_dir()?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

#[cfg(target_os = "android")]
fn platform_data_dir() -> Result<PathBuf, String> {
    use jni::objects::JString;
    robius_android_env::with_activity(|env, activity| -> jni::errors::Result<PathBuf> {
        let dir = env
            .call_method(activity, "getFilesDir", "()Ljava/io/File;", &[])?
            .l()?;
        let path = env
            .call_method(&dir, "getAbsolutePath", "()Ljava/lang/String;", &[])?
            .l()?;
        let path: String = env.get_string(&JString::from(path))?.into();
        Ok(PathBuf::from(path))
    })
    .and_then(|r| r)
    .map_err(|e| format!("Android files directory: {e}"))
}

#[cfg(target_os = "ios")]
fn platform_data_dir() -> Result<PathBuf, String> {
    // An iOS app's HOME is its sandbox container; Application Support is backed up and never
    // shown to the user.
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join("Library").join("Application Support"))
        .ok_or_else(|| "iOS: HOME is not set".into())
}

#[cfg(not(any(target_os = "android", target_os = "ios")))]
fn platform_data_dir() -> Result<PathBuf, String> {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("gridwalk"));
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".local/share/gridwalk"))
        .ok_or_else(|| "neither XDG_DATA_HOME nor HOME is set".into())
}

/// A robius-location reading as a fix or the reason there is none.
fn reading(
    coordinates: robius_location::Result<robius_location::Coordinates>,
    time: robius_location::Result<std::time::SystemTime>,
) -> Result<Fix, PlatformError> {
    let c = coordinates.map_err(reason)?;
    let point = GeoPoint::new(c.longitude, c.latitude, None).map_err(|_| {
        PlatformError::NoFix(format!(
            "定位给出的坐标无效 (the sensor gave {}, {})",
            c.longitude, c.latitude
        ))
    })?;
    let at = time
        .map(DateTime::<Utc>::from)
        .unwrap_or_else(|_| Utc::now());
    Ok(Fix::new(point, at))
}

fn reason(e: robius_location::Error) -> PlatformError {
    match e {
        robius_location::Error::AuthorizationDenied => PlatformError::Refused,
        robius_location::Error::PermanentlyUnavailable => {
            PlatformError::NoFix("此设备的定位服务不可用 (location services unavailable)".into())
        }
        other => PlatformError::NoFix(format!("{other:?}")),
    }
}

/// Where robius-location's callbacks land: every reading goes into the feed.
struct Sink(FixFeed);

impl robius_location::Handler for Sink {
    fn handle(&self, location: robius_location::Location<'_>) {
        self.0
            .push(reading(location.coordinates(), location.time()));
    }
    fn error(&self, error: robius_location::Error) {
        self.0.push(Err(reason(error)));
    }
}

thread_local! {
    /// The manager, on the thread that made it (the main thread): it is neither `Send` nor
    /// usable from another thread on iOS.
    static MANAGER: RefCell<Option<robius_location::Manager>> = const { RefCell::new(None) };
}

/// Runs `f` on the manager if this thread holds it.
fn with_manager(f: impl FnOnce(&mut robius_location::Manager)) {
    MANAGER.with(|m| {
        if let Some(m) = m.borrow_mut().as_mut() {
            f(m)
        }
    });
}

/// The phone's location: fixes from the platform's location service through
/// robius-location. It asks for permission (precise, while in use) when it starts; the system
/// shows the reasons `Dioxus.toml` gives. A refusal reaches the forms as
/// [`PlatformError::Refused`]. Continuous updates run only while someone watches (a patrol).
pub struct PhoneLocation {
    feed: FixFeed,
    updating: AtomicBool,
}

impl PhoneLocation {
    /// Makes the manager on this thread (call it on the main thread, before launching), asks
    /// for permission and for a first fix.
    pub fn start() -> Arc<PhoneLocation> {
        let feed = FixFeed::new("GPS");
        match robius_location::Manager::new(Sink(feed.clone())) {
            Ok(manager) => {
                let asked = manager
                    .request_authorization(
                        robius_location::Access::Foreground,
                        robius_location::Accuracy::Precise,
                    )
                    .and_then(|_| manager.update_once());
                if let Err(e) = asked {
                    feed.push(Err(reason(e)));
                }
                MANAGER.with(|m| *m.borrow_mut() = Some(manager));
            }
            Err(e) => feed.push(Err(reason(e))),
        }
        Arc::new(PhoneLocation {
            feed,
            updating: AtomicBool::new(false),
        })
    }

    fn set_updates(&self, on: bool) {
        if self.updating.load(Ordering::SeqCst) == on {
            return;
        }
        with_manager(|m| {
            let done = if on {
                m.start_updates()
            } else {
                m.stop_updates()
            };
            match done {
                Ok(()) => self.updating.store(on, Ordering::SeqCst),
                Err(e) => self.feed.push(Err(reason(e))),
            }
        });
    }
}

impl Location for PhoneLocation {
    fn fix(&self) -> Result<Fix, PlatformError> {
        // The latest reading now; a fresher one is asked for, for the next look
        // (重新定位), unless continuous updates already bring them.
        if !self.updating.load(Ordering::SeqCst) {
            with_manager(|m| {
                if let Err(e) = m.update_once() {
                    self.feed.push(Err(reason(e)));
                }
            });
        }
        self.feed.fix()
    }
    fn watch(&self, every: Duration) -> Fixes {
        let fixes = self.feed.watch(every);
        self.set_updates(true);
        fixes
    }
    fn rest(&self) {
        if self.feed.watchers() == 0 {
            self.set_updates(false);
        }
    }
    fn source(&self) -> &'static str {
        "GPS"
    }
}

/// The services of the phone app: the store in the app's data directory (made at enrolment,
/// unlocked with the PIN), the phone's location, photos through the webview's file input, the
/// sync client, syncing by itself.
pub fn services(location: Arc<PhoneLocation>) -> super::MakeServices {
    let db_path = match data_dir() {
        Ok(dir) => dir.join(STORE_FILE),
        Err(e) => {
            tracing::error!("no data directory ({e}); the store goes in the working directory");
            PathBuf::from(STORE_FILE)
        }
    };
    Arc::new(move || super::Services {
        db_path: Some(db_path.clone()),
        store: None,
        location: location.clone(),
        camera: Arc::new(super::platform::NoCamera),
        sync: Arc::new(super::sync_port::client::ClientSync),
        clock: Arc::new(Utc::now),
        fix_interval_ms: 5_000,
        start: None,
        lang: crate::domain::codes::Lang::Zh,
        autosync: Some(crate::client::schedule::Config::default()),
    })
}

/// Starts the phone app: location first (on this, the main thread), then the mobile launcher
/// with the phone's services. Never returns while the app runs.
pub fn launch() {
    let location = PhoneLocation::start();
    super::launch_mobile(services(location));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_permission_reaches_the_forms_as_refused() {
        assert_eq!(
            reason(robius_location::Error::AuthorizationDenied),
            PlatformError::Refused
        );
        assert!(matches!(
            reason(robius_location::Error::TemporarilyUnavailable),
            PlatformError::NoFix(_)
        ));
        let t = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
        let fix = reading(
            Ok(robius_location::Coordinates {
                latitude: 28.6765,
                longitude: 115.8921,
            }),
            Ok(t),
        )
        .unwrap();
        assert_eq!((fix.point.lon, fix.point.lat), (115.8921, 28.6765));
        assert_eq!(
            fix.point.accuracy_m, None,
            "robius-location gives no accuracy"
        );
        assert_eq!(fix.at.timestamp(), 1_790_000_000);
        // Latitude and longitude swapped out of range: no fix, not a point in the sea.
        assert!(
            reading(
                Ok(robius_location::Coordinates {
                    latitude: 115.8921,
                    longitude: 28.6765,
                }),
                Ok(t),
            )
            .is_err()
        );
    }
}
