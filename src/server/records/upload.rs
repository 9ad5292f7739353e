//! Receiving a photo's bytes: resumable chunks from the device whose entry named the photo,
//! completed when the last one arrives, if the bytes match the photo's SHA-256 and sniff as a
//! JPEG, PNG or WebP image.

use sha2::{Digest, Sha256};

use super::*;
use crate::domain::model::sniff_mime;

/// Where an upload stands: the photo's size, the bytes the server has, and whether it is
/// complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upload {
    pub size: i64,
    pub received: i64,
    pub complete: bool,
}

/// Appends `bytes` at `offset` to the upload of photo `sha` by `username` from `device`; the
/// chunk that reaches its size completes the photo (stored as the type its bytes sniff as,
/// whatever was declared: the dashboard serves it to clerks from its own origin) and audits
/// it. A photo already complete is answered as it stands.
///
/// A refusal is the inner `Err`, and what it wrote is to be committed: bytes that turn out
/// not to be the photo start the upload again from byte 0, so the device's next try (which
/// asks where to continue) sends it whole instead of being refused at the same place for
/// ever. Only a database error (the outer `Err`) leaves nothing.
pub fn put_photo_chunk(
    db: &mut dyn Sql,
    username: &str,
    device: Uuid,
    sha: &str,
    offset: i64,
    bytes: &[u8],
    now: DateTime<Utc>,
) -> Result<Result<Upload, Refusal>, Error> {
    // Lock the photo's row first: two requests with the same chunk (a retry while the first
    // is still being applied) must not both read the same offset, or the later one sees only
    // its own chunk after the earlier completed the photo, and refuses a complete photo as a
    // SHA-256 mismatch.
    repo::lock_photo(db, sha)?;
    let Some((size, received, complete)) = repo::photo_state_for(db, sha, username, device)? else {
        return Ok(Err(Refusal::NotFound(
            "no record names this photo yet".into(),
        )));
    };
    if complete {
        return Ok(Ok(Upload {
            size,
            received,
            complete: true,
        }));
    }
    if offset != received {
        return Ok(Err(Refusal::Conflict(format!(
            "the upload continues at byte {received}, not {offset}"
        ))));
    }
    let now_received = received + bytes.len() as i64;
    if now_received > size {
        return Ok(Err(Refusal::invalid(
            format!("the photo is {size} bytes; this chunk would end past it"),
            Some("offset"),
        )));
    }
    repo::add_photo_chunk(db, sha, offset, bytes)?;
    if now_received < size {
        repo::set_photo_received(db, sha, now_received)?;
        return Ok(Ok(Upload {
            size,
            received: now_received,
            complete: false,
        }));
    }
    Ok(
        complete_photo(db, username, device, sha, size, now)?.map(|()| Upload {
            size,
            received: size,
            complete: true,
        }),
    )
}

/// The last chunk is in: the photo's bytes checked against its SHA-256 and sniffed, then
/// stored whole and audited; otherwise the upload starts again (the chunks are gone and the
/// photo has no bytes), which the caller commits with the refusal.
fn complete_photo(
    db: &mut dyn Sql,
    username: &str,
    device: Uuid,
    sha: &str,
    size: i64,
    now: DateTime<Utc>,
) -> Result<Result<(), Refusal>, Error> {
    let all = repo::take_photo_chunks(db, sha, size)?;
    if hex::encode(Sha256::digest(&all)) != sha {
        repo::set_photo_received(db, sha, 0)?;
        return Ok(Err(Refusal::invalid(
            "照片内容与其校验值不符，请重新上传 (the bytes do not match the photo's SHA-256; upload it again)",
            Some("body"),
        )));
    }
    let Some(mime) = sniff_mime(&all) else {
        repo::set_photo_received(db, sha, 0)?;
        return Ok(Err(Refusal::invalid(
            "这不是 JPEG、PNG 或 WebP 照片，服务器不接收 (not a JPEG, PNG or WebP photo)",
            Some("body"),
        )));
    };
    repo::complete_photo(db, sha, size, all, mime)?;
    repo::audit(
        db,
        now,
        username,
        Some(device),
        "PHOTO_UPLOADED",
        Some(EntityKind::Photo),
        None,
        Some(sha.to_owned()),
    )?;
    Ok(Ok(()))
}
