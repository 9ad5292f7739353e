//! Location and camera behind small traits, so phones, the desktop build, the browser harness
//! and the tests each plug in their own. A [`Location`] gives its latest [`Fix`] (a point with
//! its accuracy and the time it was taken) or says why there is none (permission refused, no
//! fix yet), and pushes fixes to whoever watches it ([`Location::watch`]): the patrol recorder
//! listens there instead of asking on a timer. [`Locating`] is what a form shows of a reading
//! (a good fix, a poor one, refused, none yet). Providers: [`FixedLocation`] (desktop and
//! harness: a fixed point or a simulated walk, on its own timer thread), [`FixFeed`] (readings
//! pushed in from outside: the phone's sensor callbacks, and tests), and on phones
//! `crate::app::phone::PhoneLocation`. Photos come through the webview's file input
//! everywhere (`capture` opens the camera on phones); [`Camera`] is for a platform whose
//! webview cannot.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::domain::geo::GeoPoint;

/// Worse than this (metres: the radius the source is 68 % sure of), a fix is poor: a report
/// form warns about it and offers manual entry, and a patrol track drops it.
pub const POOR_ACCURACY_M: f64 = 30.0;

/// A patrol fix closer than this to the last point kept is jitter (a worker standing still),
/// not a step: the track drops it, so standing at a gate adds no distance.
pub const MIN_STEP_M: f64 = 5.0;

/// Faster than this (metres a second, about 140 km/h) from the last point kept, a fix is a
/// jump, not a move: the track drops it. It catches bad fixes from a source that gives no
/// accuracy (robius-location on phones reports none).
pub const MAX_SPEED_MPS: f64 = 40.0;

/// How many readings a watcher may fall behind before the newest are dropped.
const WATCH_BUFFER: usize = 64;

/// What can go wrong reading a sensor.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlatformError {
    /// The worker (or the phone's policy) refused the app location permission.
    #[error("location permission refused")]
    Refused,
    /// No fix yet (just started, indoors, location switched off), or no source at all.
    #[error("no location fix: {0}")]
    NoFix(String),
    #[error("{0}")]
    Camera(String),
}

impl crate::domain::labels::Explain for PlatformError {
    fn explain(&self, lang: crate::domain::Lang) -> String {
        match (lang, self) {
            (crate::domain::Lang::Zh, PlatformError::Refused) => {
                "定位权限被拒绝：请在手机“设置 → 应用 → 网格通 → 权限”中允许使用位置，或在下方手动输入经纬度".into()
            }
            (crate::domain::Lang::Zh, PlatformError::NoFix(why)) => {
                format!("还没有定位：请打开手机的定位并到开阔处稍候，点“重新定位”，或在下方手动输入经纬度（{why}）")
            }
            (crate::domain::Lang::Zh, PlatformError::Camera(why)) => {
                format!("相机没能拍照：请重试，或从相册选择照片（{why}）")
            }
            (_, PlatformError::Refused) => {
                "Location permission refused: allow it in the phone's settings (Apps → gridwalk → Permissions), or type lon,lat below".into()
            }
            (_, PlatformError::NoFix(why)) => {
                format!("No location fix yet: switch location on and wait in the open, tap Locate again, or type lon,lat below ({why})")
            }
            (_, e) => e.to_string(),
        }
    }
}

/// One position reading: the point (with its accuracy in metres when the source gives one)
/// and when the source took it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fix {
    pub point: GeoPoint,
    pub at: DateTime<Utc>,
}

impl Fix {
    pub fn new(point: GeoPoint, at: DateTime<Utc>) -> Fix {
        Fix { point, at }
    }
    pub fn accuracy_m(&self) -> Option<f64> {
        self.point.accuracy_m
    }
    /// Whether its accuracy is worse than `limit_m`. A fix whose source gives no accuracy is
    /// not called poor: nothing says so.
    pub fn is_poor(&self, limit_m: f64) -> bool {
        self.point.accuracy_m.is_some_and(|a| a > limit_m)
    }
    /// How old the fix is at `now` (never below zero: a phone's clock may run ahead).
    pub fn age(&self, now: DateTime<Utc>) -> chrono::Duration {
        (now - self.at).max(chrono::Duration::zero())
    }
}

/// A reading as a form shows it: a fix good enough to use, a poor one (usable, with a
/// warning), permission refused, or no fix yet. The last two keep manual entry in front.
#[derive(Debug, Clone, PartialEq)]
pub enum Locating {
    Good(Fix),
    Poor(Fix),
    Refused,
    NoFix(String),
}

impl Locating {
    pub fn of(reading: Result<Fix, PlatformError>) -> Locating {
        match reading {
            Ok(f) if f.is_poor(POOR_ACCURACY_M) => Locating::Poor(f),
            Ok(f) => Locating::Good(f),
            Err(PlatformError::Refused) => Locating::Refused,
            Err(PlatformError::NoFix(why)) | Err(PlatformError::Camera(why)) => {
                Locating::NoFix(why)
            }
        }
    }
    pub fn fix(&self) -> Option<&Fix> {
        match self {
            Locating::Good(f) | Locating::Poor(f) => Some(f),
            _ => None,
        }
    }
}

/// Readings pushed by a [`Location`] to one watcher; dropping it stops the watch.
pub type Fixes = mpsc::Receiver<Result<Fix, PlatformError>>;

/// Where the device is.
pub trait Location: Send + Sync {
    /// The latest fix, or why there is none. Never waits for the sensor.
    fn fix(&self) -> Result<Fix, PlatformError>;
    /// Readings as the source makes them, about every `every` (a phone's sensor may deliver
    /// more or fewer), until the receiver is dropped. A refusal or an outage comes as an
    /// error in the stream, and the stream goes on.
    fn watch(&self, every: Duration) -> Fixes;
    /// Nobody watches any more (the patrol ended): a source that runs a sensor for its
    /// watchers may stop it. Readings already pushed stay the latest.
    fn rest(&self) {}
    /// A short description of the source, shown beside the coordinates ("固定点", "GPS").
    fn source(&self) -> &'static str;
}

/// What the patrol track does with a fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Keep,
    /// Accuracy worse than the filter's limit.
    Poor,
    /// Closer than the filter's step to the last point kept.
    Jitter,
    /// Farther from the last point kept than anyone moves in the time between them.
    Jump,
}

/// The patrol track's filter: drops fixes worse than [`POOR_ACCURACY_M`], steps shorter than
/// [`MIN_STEP_M`] and jumps faster than [`MAX_SPEED_MPS`] from the last point kept.
#[derive(Debug, Clone)]
pub struct TrackFilter {
    pub max_accuracy_m: f64,
    pub min_step_m: f64,
    pub max_speed_mps: f64,
    last: Option<Fix>,
}

impl TrackFilter {
    /// A filter continuing a track whose last kept point is `last`.
    pub fn new(last: Option<Fix>) -> TrackFilter {
        TrackFilter {
            max_accuracy_m: POOR_ACCURACY_M,
            min_step_m: MIN_STEP_M,
            max_speed_mps: MAX_SPEED_MPS,
            last,
        }
    }
    pub fn admit(&mut self, fix: &Fix) -> Admit {
        if fix.is_poor(self.max_accuracy_m) {
            return Admit::Poor;
        }
        if let Some(last) = &self.last {
            let d = last.point.distance_m(&fix.point);
            if d < self.min_step_m {
                return Admit::Jitter;
            }
            // At least a second between them: two fixes stamped alike are not infinitely fast.
            let secs = ((fix.at - last.at).num_milliseconds() as f64 / 1000.0).max(1.0);
            if d / secs > self.max_speed_mps {
                return Admit::Jump;
            }
        }
        self.last = Some(*fix);
        Admit::Keep
    }
}

/// The readings of a source and its watchers: the latest reading, and a sender per watcher.
/// A reading pushed reaches every watcher still listening; a watcher that has gone is
/// forgotten at the next push.
#[derive(Default)]
struct Hub {
    last: Option<Result<Fix, PlatformError>>,
    watchers: Vec<mpsc::Sender<Result<Fix, PlatformError>>>,
}

impl Hub {
    fn publish(&mut self, reading: Result<Fix, PlatformError>) {
        self.watchers.retain(|w| {
            !matches!(
                w.try_send(reading.clone()),
                Err(mpsc::error::TrySendError::Closed(_))
            )
        });
        self.last = Some(reading);
    }
    fn subscribe(&mut self) -> Fixes {
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        self.watchers.push(tx);
        rx
    }
}

/// A location whose readings are pushed in from outside: the phone's sensor callbacks, or a
/// test standing in for them. Every reading pushed goes to every watcher.
#[derive(Clone)]
pub struct FixFeed {
    hub: Arc<Mutex<Hub>>,
    source: &'static str,
}

impl FixFeed {
    pub fn new(source: &'static str) -> FixFeed {
        FixFeed {
            hub: Arc::new(Mutex::new(Hub::default())),
            source,
        }
    }
    fn hub(&self) -> MutexGuard<'_, Hub> {
        self.hub.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// A new reading: the latest from now on, and sent to every watcher.
    pub fn push(&self, reading: Result<Fix, PlatformError>) {
        self.hub().publish(reading);
    }
    /// How many watchers are listening (a phone source stops its sensor at none).
    pub fn watchers(&self) -> usize {
        let mut hub = self.hub();
        hub.watchers.retain(|w| !w.is_closed());
        hub.watchers.len()
    }
}

impl Location for FixFeed {
    fn fix(&self) -> Result<Fix, PlatformError> {
        self.hub().last.clone().unwrap_or_else(|| {
            Err(PlatformError::NoFix(
                "正在等待第一次定位 (waiting for the first fix)".into(),
            ))
        })
    }
    fn watch(&self, _every: Duration) -> Fixes {
        self.hub().subscribe()
    }
    fn source(&self) -> &'static str {
        self.source
    }
}

/// A photo the worker took or chose.
#[derive(Debug, Clone, PartialEq)]
pub struct Photo {
    pub bytes: Vec<u8>,
    pub mime: String,
    pub name: String,
}

/// A camera the app opens itself, where the webview's file input cannot (none on desktop and
/// in the browser harness: the file input is the picker there, and the camera on phones).
pub trait Camera: Send + Sync {
    /// Whether there is such a camera (the form shows its button only then).
    fn available(&self) -> bool;
    /// Takes a photo.
    fn take(&self) -> Result<Photo, PlatformError>;
}

/// The clock a simulated source stamps its fixes with.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Desktop and harness location: a fixed point, optionally walking `step_m` metres east with
/// every fix it pushes (a simulated walk, so a patrol's live distance can be seen moving on a
/// desk). Each watch runs on its own timer thread, as a phone's sensor pushes from outside the
/// UI; it ends at the first tick after its receiver is dropped.
pub struct FixedLocation {
    point: Arc<Mutex<GeoPoint>>,
    step_m: f64,
    clock: Clock,
}

impl FixedLocation {
    pub fn new(point: GeoPoint, step_m: f64) -> FixedLocation {
        FixedLocation {
            point: Arc::new(Mutex::new(point)),
            step_m,
            clock: Arc::new(Utc::now),
        }
    }
    /// Stamps fixes with `clock` (tests with a fixed clock).
    pub fn with_clock(mut self, clock: Clock) -> FixedLocation {
        self.clock = clock;
        self
    }
}

fn lock_point(point: &Mutex<GeoPoint>) -> MutexGuard<'_, GeoPoint> {
    point.lock().unwrap_or_else(|e| e.into_inner())
}

impl Location for FixedLocation {
    fn fix(&self) -> Result<Fix, PlatformError> {
        Ok(Fix::new(*lock_point(&self.point), (self.clock)()))
    }
    fn watch(&self, every: Duration) -> Fixes {
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let (point, step, clock) = (self.point.clone(), self.step_m, self.clock.clone());
        let spawned = std::thread::Builder::new()
            .name("simulated-location".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(every);
                    let fix = {
                        let mut p = lock_point(&point);
                        if step > 0.0 {
                            // One degree of longitude is about 111,320 m × cos(latitude).
                            p.lon += step / (111_320.0 * p.lat.to_radians().cos());
                        }
                        Fix::new(*p, clock())
                    };
                    if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(Ok(fix)) {
                        break;
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("simulated location: no timer thread: {e}");
        }
        rx
    }
    fn source(&self) -> &'static str {
        if self.step_m > 0.0 {
            "模拟步行 simulated walk"
        } else {
            "固定点 fixed point"
        }
    }
}

/// No camera of the app's own: photos come through the file input.
pub struct NoCamera;

pub use crate::domain::model::sniff_mime;

impl Camera for NoCamera {
    fn available(&self) -> bool {
        false
    }
    fn take(&self) -> Result<Photo, PlatformError> {
        Err(PlatformError::Camera(
            "此设备没有可直接打开的相机，请用“选择照片”拍摄或选取 (no camera here: use the photo picker)".into(),
        ))
    }
}
