//! Location and camera behind small traits, so the desktop build, the browser harness and the
//! tests each plug in their own: desktop and harness use a configurable fixed point (or a slow
//! simulated walk) and photos from files; tests use fakes.

use std::path::PathBuf;
use std::sync::Mutex;

use crate::domain::geo::GeoPoint;

/// What can go wrong reading a sensor.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("no location fix: {0}")]
    NoFix(String),
    #[error("could not read the photo {path}: {source}")]
    Photo {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} is not a JPEG, PNG or WebP photo")]
    NotAPhoto(String),
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

/// Where photos come from.
pub trait Camera: Send + Sync {
    /// Reads a photo from a path the worker typed or picked.
    fn read_path(&self, path: &str) -> Result<Photo, PlatformError>;
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

/// Photos read from files (desktop; the webview's own file picker also feeds the same path).
pub struct FileCamera;

pub use crate::domain::model::sniff_mime;

impl Camera for FileCamera {
    fn read_path(&self, path: &str) -> Result<Photo, PlatformError> {
        let p = PathBuf::from(path.trim());
        let bytes = std::fs::read(&p).map_err(|source| PlatformError::Photo {
            path: p.display().to_string(),
            source,
        })?;
        let mime =
            sniff_mime(&bytes).ok_or_else(|| PlatformError::NotAPhoto(p.display().to_string()))?;
        Ok(Photo {
            mime: mime.to_owned(),
            name: p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            bytes,
        })
    }
}
