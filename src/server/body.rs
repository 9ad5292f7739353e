//! Request bodies as sent, and un-gzipped when they say `Content-Encoding: gzip` (every push
//! does). Each worker thread keeps one inflate state and resets it per body: building a fresh
//! one for every request (as a decompression middleware does) costs a large allocation and
//! clearing per push, which shows when a thousand devices push at once.

use std::cell::RefCell;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use flate2::{Crc, Decompress, FlushDecompress, Status};

use super::error::Failure;

/// The request's body, un-gzipped, at most `LIMIT` bytes both as sent and as unpacked.
pub struct Unpacked<const LIMIT: usize>(pub Bytes);

impl<const LIMIT: usize, S: Send + Sync> FromRequest<S> for Unpacked<LIMIT> {
    type Rejection = Failure;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        read(req, state, LIMIT).await.map(Unpacked)
    }
}

/// Reads `req`'s body whole (see [`Unpacked`]).
pub async fn read<S: Send + Sync>(req: Request, state: &S, limit: usize) -> Result<Bytes, Failure> {
    let gzipped = gzipped(req.headers())?;
    let bytes = Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large(limit)
        } else {
            Failure::invalid(format!("could not read the body: {e}"), None)
        }
    })?;
    if bytes.len() > limit {
        return Err(too_large(limit));
    }
    if !gzipped {
        return Ok(bytes);
    }
    gunzip(&bytes, limit).map(Bytes::from).map_err(|e| match e {
        GzipError::TooLarge => too_large(limit),
        GzipError::Malformed(why) => {
            Failure::invalid(format!("the gzip body is broken: {why}"), None)
        }
    })
}

fn too_large(limit: usize) -> Failure {
    Failure::invalid(format!("the body is larger than {limit} bytes"), None)
}

/// Whether the body is gzip; an encoding other than gzip or identity is refused with 415.
fn gzipped(headers: &HeaderMap) -> Result<bool, Failure> {
    let Some(v) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(false);
    };
    match v.to_str().map(|s| s.trim().to_ascii_lowercase()) {
        Ok(s) if s == "gzip" || s == "x-gzip" => Ok(true),
        Ok(s) if s.is_empty() || s == "identity" => Ok(false),
        _ => Err(Failure::UnsupportedEncoding(format!(
            "the body's Content-Encoding is {v:?}; send it as gzip or as it is"
        ))),
    }
}

#[derive(Debug, PartialEq)]
enum GzipError {
    /// Unpacked, it would be more than the limit.
    TooLarge,
    Malformed(&'static str),
}

thread_local! {
    static INFLATE: RefCell<Decompress> = RefCell::new(Decompress::new(false));
}

/// One gzip member (RFC 1952), checked against its CRC-32 and length, at most `limit` bytes
/// unpacked. Bytes after the member are refused.
fn gunzip(z: &[u8], limit: usize) -> Result<Vec<u8>, GzipError> {
    use GzipError::Malformed;
    let start = member_start(z)?;
    if z.len() < start + 8 {
        return Err(Malformed("it ends before its data"));
    }
    // The trailer's length (modulo 2^32) sizes the buffer; it is checked, not trusted.
    let claimed = u32::from_le_bytes(z[z.len() - 4..].try_into().expect("4 bytes")) as usize;
    let mut out = Vec::with_capacity(claimed.min(limit) + 1);
    let used = INFLATE.with_borrow_mut(|d| -> Result<usize, GzipError> {
        d.reset(false);
        let data = &z[start..];
        loop {
            let (read, made) = (d.total_in(), out.len());
            let status = d
                .decompress_vec(&data[read as usize..], &mut out, FlushDecompress::None)
                .map_err(|_| Malformed("its deflate data is corrupt"))?;
            if out.len() > limit {
                return Err(GzipError::TooLarge);
            }
            match status {
                Status::StreamEnd => return Ok(d.total_in() as usize),
                _ if out.len() == out.capacity() => {
                    out.reserve((out.capacity() * 2).min(limit + 1) - out.len());
                }
                _ if d.total_in() == read && out.len() == made => {
                    return Err(Malformed("it ends before its data does"));
                }
                _ => {}
            }
        }
    })?;
    let trailer = &z[start + used..];
    if trailer.len() < 8 {
        return Err(Malformed("it ends before its CRC-32 and length"));
    }
    if trailer.len() > 8 {
        return Err(Malformed("there are bytes after it"));
    }
    let mut crc = Crc::new();
    crc.update(&out);
    if crc.sum().to_le_bytes() != trailer[..4] {
        return Err(Malformed("its CRC-32 does not match its data"));
    }
    if (out.len() as u32).to_le_bytes() != trailer[4..] {
        return Err(Malformed("its length does not match its data"));
    }
    Ok(out)
}

/// Where a gzip member's deflate data starts, past its header and optional fields.
fn member_start(z: &[u8]) -> Result<usize, GzipError> {
    use GzipError::Malformed;
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    if z.len() < 10 || z[..2] != [0x1f, 0x8b] {
        return Err(Malformed("it does not start as gzip does"));
    }
    if z[2] != 8 {
        return Err(Malformed("it is not deflate"));
    }
    let flags = z[3];
    if flags & 0xe0 != 0 {
        return Err(Malformed("its header has reserved flags set"));
    }
    let mut pos = 10;
    if flags & FEXTRA != 0 {
        let len = z
            .get(pos..pos + 2)
            .ok_or(Malformed("its header is cut short"))?;
        pos += 2 + u16::from_le_bytes([len[0], len[1]]) as usize;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let rest = z.get(pos..).ok_or(Malformed("its header is cut short"))?;
            let nul = rest.iter().position(|&b| b == 0);
            pos += nul.ok_or(Malformed("its header is cut short"))? + 1;
        }
    }
    if flags & FHCRC != 0 {
        pos += 2;
    }
    if pos > z.len() {
        return Err(Malformed("its header is cut short"));
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::{Compression, GzBuilder};

    use super::{GzipError, gunzip};

    fn gz(bytes: &[u8], builder: GzBuilder) -> Vec<u8> {
        let mut e = builder.write(Vec::new(), Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn sample(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| format!("{{\"i\":{i}}}"))
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn any_gzip_member_comes_back_whole_and_the_kept_state_leaks_nothing() {
        // Sizes across the buffer's growth, with the header's optional fields, one after
        // another on the same thread's state.
        for (n, builder) in [
            (0, GzBuilder::new()),
            (1, GzBuilder::new().filename("push.json")),
            (5_000, GzBuilder::new().comment("c").extra(vec![1, 2, 3])),
            (200_000, GzBuilder::new()),
            (3, GzBuilder::new()),
        ] {
            let body = sample(n);
            assert_eq!(gunzip(&gz(&body, builder), 1 << 24).unwrap(), body, "{n}");
        }
        // A body whose trailer understates its length still unpacks past it, then fails its check.
        let body = sample(10_000);
        let mut z = gz(&body, GzBuilder::new());
        let n = z.len();
        z[n - 4..].copy_from_slice(&10u32.to_le_bytes());
        assert_eq!(
            gunzip(&z, 1 << 24),
            Err(GzipError::Malformed("its length does not match its data"))
        );
    }

    #[test]
    fn a_broken_or_oversized_member_is_refused_with_why() {
        let body = sample(10_000);
        let z = gz(&body, GzBuilder::new());
        let at_limit = gunzip(&z, body.len()).unwrap();
        assert_eq!(at_limit, body);
        assert_eq!(gunzip(&z, body.len() - 1), Err(GzipError::TooLarge));
        let cut = &z[..z.len() / 2];
        assert!(matches!(gunzip(cut, 1 << 24), Err(GzipError::Malformed(_))));
        let mut crc = z.clone();
        let n = crc.len();
        crc[n - 8] ^= 1;
        assert_eq!(
            gunzip(&crc, 1 << 24),
            Err(GzipError::Malformed("its CRC-32 does not match its data"))
        );
        let mut more = z.clone();
        more.extend_from_slice(&z);
        assert_eq!(
            gunzip(&more, 1 << 24),
            Err(GzipError::Malformed("there are bytes after it"))
        );
        assert_eq!(
            gunzip(b"{\"not\":\"gzip\"}", 1 << 24),
            Err(GzipError::Malformed("it does not start as gzip does"))
        );
        let mut corrupt = z.clone();
        corrupt[12] ^= 0xff;
        assert!(matches!(
            gunzip(&corrupt, 1 << 24),
            Err(GzipError::Malformed(_))
        ));
        // The state kept after a failure unpacks the next body.
        assert_eq!(gunzip(&z, 1 << 24).unwrap(), body);
    }
}
