//! Photos as the device keeps them: whatever the picker or camera gave (JPEG, PNG or WebP, up
//! to [`MAX_INPUT_BYTES`]) is decoded, turned upright by its EXIF orientation, scaled to a long
//! edge of at most [`LONG_EDGE`] pixels and re-encoded as JPEG (quality [`JPEG_QUALITY`]) with
//! no metadata at all: the record carries its own location, and a photo's EXIF can carry the
//! phone's serial number and where the worker lives. The stored bytes are what is hashed
//! (SHA-256), so the same picture picked twice is stored once.
//!
//! No I/O: bytes in, bytes out (callers run it off the UI thread).

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

use crate::domain::codes::Lang;
use crate::domain::model::sniff_mime;

/// The largest file taken from the picker (a phone's full-size photo is 3-12 MB).
pub const MAX_INPUT_BYTES: usize = 30 * 1024 * 1024;
/// The long edge of a stored photo, in pixels.
pub const LONG_EDGE: u32 = 1600;
pub const JPEG_QUALITY: u8 = 80;
/// The long edge of a thumbnail on lists and forms.
pub const THUMB_EDGE: u32 = 160;
/// The most pixels a photo may have before it is decoded (a 200-megapixel bomb is refused
/// rather than filling the phone's memory).
pub const MAX_PIXELS: u64 = 120_000_000;

/// Why a picked file was not taken.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PhotoError {
    #[error("{name} is {size} bytes, over the {max}-byte limit")]
    TooLarge {
        name: String,
        size: usize,
        max: usize,
    },
    #[error("{name} is not a JPEG, PNG or WebP photo")]
    NotAnImage { name: String },
    #[error("{name} could not be read as a photo: {why}")]
    Corrupt { name: String, why: String },
}

impl PhotoError {
    /// The message beside the photo field, in the worker's language.
    pub fn message(&self, l: Lang) -> String {
        match (l, self) {
            (Lang::Zh, PhotoError::TooLarge { name, size, max }) => format!(
                "照片「{name}」有 {} MB，超过 {} MB 的上限：请换一张或用相机重拍",
                size.div_ceil(1 << 20),
                max >> 20
            ),
            (Lang::Zh, PhotoError::NotAnImage { name }) => {
                format!("「{name}」不是照片（只收 JPEG、PNG、WebP）：请选择照片或用相机拍摄")
            }
            (Lang::Zh, PhotoError::Corrupt { name, .. }) => {
                format!("照片「{name}」已损坏，无法读取：请换一张或重拍")
            }
            (Lang::En, PhotoError::TooLarge { name, size, max }) => format!(
                "Photo \"{name}\" is {} MB, over the {} MB limit: pick another or take it again",
                size.div_ceil(1 << 20),
                max >> 20
            ),
            (Lang::En, PhotoError::NotAnImage { name }) => {
                format!(
                    "\"{name}\" is not a photo (JPEG, PNG or WebP only): pick a photo or take one"
                )
            }
            (Lang::En, PhotoError::Corrupt { name, .. }) => {
                format!(
                    "Photo \"{name}\" is damaged and cannot be read: pick another or take it again"
                )
            }
        }
    }
}

/// A photo ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub bytes: Vec<u8>,
    pub mime: &'static str,
    pub width: u32,
    pub height: u32,
}

fn decode(name: &str, bytes: &[u8]) -> Result<DynamicImage, PhotoError> {
    let corrupt = |why: String| PhotoError::Corrupt {
        name: name.to_owned(),
        why,
    };
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| corrupt(e.to_string()))?;
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_PIXELS * 4);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| corrupt(e.to_string()))?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(corrupt(format!("{w}×{h} pixels")));
    }
    // A photo whose orientation cannot be read is kept as it was taken.
    let orientation = decoder.orientation().ok();
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| corrupt(e.to_string()))?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    Ok(img)
}

fn jpeg(name: &str, img: &DynamicImage, quality: u8) -> Result<Vec<u8>, PhotoError> {
    let rgb = img.to_rgb8();
    let mut out = Vec::with_capacity(256 * 1024);
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(&rgb)
        .map_err(|e| PhotoError::Corrupt {
            name: name.to_owned(),
            why: e.to_string(),
        })?;
    Ok(out)
}

/// Checks, turns upright, scales and re-encodes a picked photo (see the module's comment).
pub fn prepare(name: &str, bytes: &[u8]) -> Result<Prepared, PhotoError> {
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(PhotoError::TooLarge {
            name: name.to_owned(),
            size: bytes.len(),
            max: MAX_INPUT_BYTES,
        });
    }
    if sniff_mime(bytes).is_none() {
        return Err(PhotoError::NotAnImage {
            name: name.to_owned(),
        });
    }
    let mut img = decode(name, bytes)?;
    if img.width().max(img.height()) > LONG_EDGE {
        img = img.resize(LONG_EDGE, LONG_EDGE, FilterType::Triangle);
    }
    Ok(Prepared {
        bytes: jpeg(name, &img, JPEG_QUALITY)?,
        mime: "image/jpeg",
        width: img.width(),
        height: img.height(),
    })
}

/// A small JPEG of a stored photo, for lists and forms (`None` if it cannot be read).
pub fn thumbnail(bytes: &[u8]) -> Option<Vec<u8>> {
    let img = decode("", bytes).ok()?;
    let small = img.thumbnail(THUMB_EDGE, THUMB_EDGE);
    jpeg("", &small, 70).ok()
}

/// A thumbnail as a `data:` URL for an `img` (empty if it cannot be made).
pub fn thumbnail_url(bytes: &[u8]) -> String {
    thumbnail(bytes)
        .map(|t| {
            format!(
                "data:image/jpeg;base64,{}",
                crate::app::components::base64(&t)
            )
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageEncoder, Rgb, RgbImage};

    /// A JPEG of `w`×`h` with an EXIF block: orientation `orientation` and a GPS position.
    pub fn jpeg_with_exif(w: u32, h: u32, orientation: u16) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| {
            Rgb([(x * 255 / w.max(1)) as u8, (y * 255 / h.max(1)) as u8, 90])
        });
        let mut plain = Vec::new();
        JpegEncoder::new_with_quality(&mut plain, 90)
            .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
            .unwrap();
        // TIFF, big-endian: IFD0 {Orientation, GPSInfo → GPS IFD {GPSLatitudeRef "N",
        // GPSLatitude 28/1 3/1 0/1}}.
        let mut t: Vec<u8> = b"MM\x00\x2a\x00\x00\x00\x08".to_vec();
        t.extend_from_slice(&2u16.to_be_bytes());
        t.extend_from_slice(&[0x01, 0x12, 0x00, 0x03, 0, 0, 0, 1]);
        t.extend_from_slice(&orientation.to_be_bytes());
        t.extend_from_slice(&[0, 0]);
        t.extend_from_slice(&[0x88, 0x25, 0x00, 0x04, 0, 0, 0, 1, 0, 0, 0, 38]);
        t.extend_from_slice(&[0, 0, 0, 0]);
        // GPS IFD at 38.
        assert_eq!(t.len(), 38);
        t.extend_from_slice(&2u16.to_be_bytes());
        t.extend_from_slice(&[0x00, 0x01, 0x00, 0x02, 0, 0, 0, 2, b'N', 0, 0, 0]);
        t.extend_from_slice(&[0x00, 0x02, 0x00, 0x05, 0, 0, 0, 3, 0, 0, 0, 68]);
        t.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(t.len(), 68);
        for (n, d) in [(28u32, 1u32), (3, 1), (0, 1)] {
            t.extend_from_slice(&n.to_be_bytes());
            t.extend_from_slice(&d.to_be_bytes());
        }
        let mut app1 = b"Exif\x00\x00".to_vec();
        app1.extend_from_slice(&t);
        let mut out = plain[..2].to_vec(); // SOI
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&app1);
        out.extend_from_slice(&plain[2..]);
        out
    }

    #[test]
    fn exif_is_dropped_and_the_photo_turned_upright() {
        let input = jpeg_with_exif(40, 20, 6);
        assert!(input.windows(4).any(|w| w == b"Exif"));
        let p = prepare("pole.jpg", &input).unwrap();
        assert_eq!(p.mime, "image/jpeg");
        // Orientation 6 (rotate 90° clockwise): 40×20 as taken stands 20×40.
        assert_eq!((p.width, p.height), (20, 40));
        assert!(!p.bytes.windows(4).any(|w| w == b"Exif"), "no EXIF left");
        assert!(
            !p.bytes.windows(2).any(|w| w == [0xFF, 0xE1]),
            "no APP1 segment"
        );
        let back = image::load_from_memory(&p.bytes).unwrap();
        assert_eq!((back.width(), back.height()), (20, 40));
    }

    #[test]
    fn a_large_photo_is_scaled_to_its_long_edge() {
        let input = jpeg_with_exif(2400, 1200, 1);
        let p = prepare("big.jpg", &input).unwrap();
        assert_eq!((p.width, p.height), (LONG_EDGE, LONG_EDGE / 2));
        assert!(p.bytes.len() < input.len());
        // Deterministic: the same picture gives the same bytes (stored once by its hash).
        assert_eq!(prepare("again.jpg", &input).unwrap().bytes, p.bytes);
        let thumb = thumbnail(&p.bytes).unwrap();
        let t = image::load_from_memory(&thumb).unwrap();
        assert_eq!(t.width().max(t.height()), THUMB_EDGE);
    }

    #[test]
    fn what_is_not_a_photo_is_refused_in_the_workers_language() {
        let e = prepare("notes.txt", b"hello, not a photo").unwrap_err();
        assert!(matches!(e, PhotoError::NotAnImage { .. }));
        assert!(e.message(Lang::Zh).starts_with("「notes.txt」不是照片"));
        assert!(e.message(Lang::En).contains("not a photo"));
        // A JPEG cut in half.
        let whole = jpeg_with_exif(64, 64, 1);
        let e = prepare("cut.jpg", &whole[..whole.len() / 3]).unwrap_err();
        assert!(matches!(e, PhotoError::Corrupt { .. }), "{e:?}");
        assert!(e.message(Lang::Zh).contains("已损坏"));
        let big = vec![0xFFu8; MAX_INPUT_BYTES + 1];
        let e = prepare("huge.jpg", &big).unwrap_err();
        assert!(matches!(e, PhotoError::TooLarge { .. }));
        assert!(e.message(Lang::Zh).contains("超过 30 MB"));
    }
}
