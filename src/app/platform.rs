//! Location and camera behind small traits, so the desktop build, the browser harness and the
//! tests each plug in their own: desktop and harness use a configurable fixed point (or a slow
//! simulated walk); tests use fakes. Photos come through the webview's file input everywhere
//! (`capture` opens the camera on phones); [`Camera`] is for a platform whose webview cannot.

use std::sync::Mutex;

use crate::domain::geo::GeoPoint;

/// What can go wrong reading a sensor.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("no location fix: {0}")]
    NoFix(String),
    #[error("{0}")]
    Camera(String),
}

impl crate::domain::labels::Explain for PlatformError {
    fn explain(&self, lang: crate::domain::Lang) -> String {
        match (lang, self) {
            (crate::domain::Lang::Zh, PlatformError::NoFix(why)) => {
                format!("没有定位：请打开手机的定位并到开阔处重试，或手动输入经纬度（{why}）")
            }
            (crate::domain::Lang::Zh, PlatformError::Camera(why)) => {
                format!("相机没能拍照：请重试，或从相册选择照片（{why}）")
            }
            (_, e) => e.to_string(),
        }
    }
}

/// Where the device is now.
pub trait Location: Send + Sync {
    fn fix(&self) -> Result<GeoPoint, PlatformError>;
    /// A short description of the source, shown under the coordinates ("固定点", "GPS").
    fn source(&self) -> &'static str;
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

/// Desktop and harness location: a fixed point, optionally walking `step_m` metres east with
/// every fix (a simulated walk, so a patrol's live distance can be seen moving on a desk).
pub struct FixedLocation {
    point: Mutex<GeoPoint>,
    step_m: f64,
}

impl FixedLocation {
    pub fn new(point: GeoPoint, step_m: f64) -> FixedLocation {
        FixedLocation {
            point: Mutex::new(point),
            step_m,
        }
    }
}

impl Location for FixedLocation {
    fn fix(&self) -> Result<GeoPoint, PlatformError> {
        let mut p = self
            .point
            .lock()
            .map_err(|_| PlatformError::NoFix("location source failed".into()))?;
        let here = *p;
        if self.step_m > 0.0 {
            // One degree of longitude is about 111,320 m × cos(latitude).
            p.lon += self.step_m / (111_320.0 * p.lat.to_radians().cos());
        }
        Ok(here)
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
