//! Photos: stored once by SHA-256, resumable uploads, linked to the records that name them.

use super::*;

/// A complete photo's bytes and stored type, if the account's `scope` holds a record that
/// the photo's uploader attached it to (a photo is only as visible as the records its own
/// uploader put it on: naming someone else's hash in one's own record grants nothing).
pub fn photo_in_scope(
    db: &mut dyn Sql,
    scope: &Scope,
    sha: &str,
) -> Result<Option<(Vec<u8>, String)>, DbError> {
    let (clause, mut args) = scope.clause(2);
    let mut all = vec![V::T(sha.to_owned())];
    all.append(&mut args);
    db.query_opt(
        &format!(
            "SELECT p.data, p.mime FROM photos p
             WHERE p.sha256 = $1 AND p.complete = 1 AND EXISTS (
               SELECT 1 FROM record_photos
               WHERE sha256 = p.sha256 AND username = p.uploaded_by AND {clause})"
        ),
        &all,
    )?
    .map(|r| Ok((r[0].bytes()?, r[1].string()?)))
    .transpose()
}

/// Whether `username` may attach photo `sha` to a record: nobody has it yet, it is theirs,
/// or their scope already shows it ([`photo_in_scope`]'s rule, complete or not).
pub fn may_name_photo(
    db: &mut dyn Sql,
    sha: &str,
    username: &str,
    scope: &Scope,
) -> Result<bool, DbError> {
    let Some(r) = db.query_opt(
        "SELECT uploaded_by FROM photos WHERE sha256 = $1",
        args![sha],
    )?
    else {
        return Ok(true);
    };
    if r[0].str()? == username {
        return Ok(true);
    }
    let (clause, mut args) = scope.clause(3);
    let mut all = vec![V::T(sha.to_owned()), V::T(r[0].string()?)];
    all.append(&mut args);
    Ok(db
        .query_opt(
            &format!(
                "SELECT 1 FROM record_photos WHERE sha256 = $1 AND username = $2 AND {clause}"
            ),
            &all,
        )?
        .is_some())
}

/// Notes that `record` (in grid `grid_code`) carries photo `sha`, attached by `username`.
pub fn link_photo(
    db: &mut dyn Sql,
    sha: &str,
    record: Uuid,
    grid_code: &str,
    username: &str,
) -> Result<(), DbError> {
    db.exec(
        "INSERT INTO record_photos (sha256, record_id, grid_code, username) VALUES ($1, $2, $3, $4)
         ON CONFLICT (sha256, record_id) DO NOTHING",
        args![sha, record.to_string(), grid_code, username],
    )?;
    Ok(())
}

/// A record moved to another grid: its photos go with it.
pub fn move_record_photos(db: &mut dyn Sql, record: Uuid, grid_code: &str) -> Result<(), DbError> {
    db.exec(
        "UPDATE record_photos SET grid_code = $2 WHERE record_id = $1",
        args![record.to_string(), grid_code],
    )?;
    Ok(())
}

/// Expects a photo's upload (the first entry naming it makes the row; its account and
/// device upload it).
pub fn add_photo(
    db: &mut dyn Sql,
    sha: &str,
    size: i64,
    mime: &str,
    username: &str,
    device: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    db.exec(
        "INSERT INTO photos (sha256, size, mime, received, complete, data, uploaded_by, device_id, created_at)
         VALUES ($1, $2, $3, 0, 0, NULL, $4, $5, $6) ON CONFLICT (sha256) DO NOTHING",
        args![
            sha,
            size,
            mime,
            username,
            device.map(|d| d.to_string()),
            ts(now)
        ],
    )?;
    Ok(())
}

/// What an upload has received so far, `(size, received, complete)`, if this account and
/// device may upload it: the photo's uploader, from the device whose entry named it (any of
/// the uploader's devices once it is complete). Anyone else is answered as for a photo no
/// record names.
pub fn photo_state_for(
    db: &mut dyn Sql,
    sha: &str,
    username: &str,
    device: Uuid,
) -> Result<Option<(i64, i64, bool)>, DbError> {
    let Some(r) = db.query_opt(
        "SELECT size, received, complete, uploaded_by, device_id FROM photos WHERE sha256 = $1",
        args![sha],
    )?
    else {
        return Ok(None);
    };
    let complete = r[2].i64()? != 0;
    let own_device = match r[4].opt_string()? {
        Some(d) => d == device.to_string(),
        None => true,
    };
    if r[3].str()? != username || !(own_device || complete) {
        return Ok(None);
    }
    Ok(Some((r[0].i64()?, r[1].i64()?, complete)))
}

/// Locks a photo's row for the rest of the transaction (PostgreSQL runs READ COMMITTED), so
/// two uploads of the same chunk cannot both read the same offset.
pub fn lock_photo(db: &mut dyn Sql, sha: &str) -> Result<(), DbError> {
    db.exec(
        "UPDATE photos SET received = received WHERE sha256 = $1",
        args![sha],
    )?;
    Ok(())
}

/// Keeps a chunk of an upload at byte `pos`.
pub fn add_photo_chunk(db: &mut dyn Sql, sha: &str, pos: i64, bytes: &[u8]) -> Result<(), DbError> {
    db.exec(
        "INSERT INTO photo_chunks (sha256, pos, bytes) VALUES ($1, $2, $3)",
        args![sha, pos, bytes.to_vec()],
    )?;
    Ok(())
}

/// Sets how many bytes of an upload the server has (0: it starts again).
pub fn set_photo_received(db: &mut dyn Sql, sha: &str, received: i64) -> Result<(), DbError> {
    db.exec(
        "UPDATE photos SET received = $2 WHERE sha256 = $1",
        args![sha, received],
    )?;
    Ok(())
}

/// An upload's chunks joined in order, taken out of `photo_chunks`.
pub fn take_photo_chunks(db: &mut dyn Sql, sha: &str, size: i64) -> Result<Vec<u8>, DbError> {
    let chunks = db.query(
        "SELECT bytes FROM photo_chunks WHERE sha256 = $1 ORDER BY pos",
        args![sha],
    )?;
    let mut all = Vec::with_capacity(size as usize);
    for c in chunks {
        all.extend(c[0].bytes()?);
    }
    db.exec("DELETE FROM photo_chunks WHERE sha256 = $1", args![sha])?;
    Ok(all)
}

/// Stores a whole photo's bytes, as the type they sniff as.
pub fn complete_photo(
    db: &mut dyn Sql,
    sha: &str,
    size: i64,
    data: Vec<u8>,
    mime: &str,
) -> Result<(), DbError> {
    db.exec(
        "UPDATE photos SET received = $2, complete = 1, data = $3, mime = $4 WHERE sha256 = $1",
        args![sha, size, data, mime],
    )?;
    Ok(())
}
