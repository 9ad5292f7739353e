//! The relay's own tables (server migration 0015): entries held for the county, each device
//! lane's county acknowledgement and gap, photos received at the office (and how much of each
//! the county has), devices seen.

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use crate::args;
use crate::domain::codes::Coded;
use crate::server::db::{DbError, Sql};
use crate::server::repo::ts;
use crate::wire::Lane;

/// A device lane as the office knows it: what the county acknowledged through this relay, and
/// the entry the county said it expects after a gap answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LaneState {
    pub county_acked: i64,
    pub gap_expected: Option<i64>,
}

/// One held entry: its sequence number, the skew measured when it was pushed (relay's clock
/// less the device's, ms) and the entry's JSON as pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub seq: i64,
    pub skew_ms: i64,
    pub entry: String,
}

fn uuid(s: &str) -> Result<Uuid, DbError> {
    Uuid::parse_str(s).map_err(|e| DbError::Type(format!("bad id {s:?}: {e}")))
}

/// The lane's state, made (acknowledged through 0) if the office has not seen it.
pub fn lane(
    db: &mut dyn Sql,
    device: Uuid,
    lane: Lane,
    username: &str,
) -> Result<LaneState, DbError> {
    db.exec(
        "INSERT INTO relay_lanes (device_id, lane, username) VALUES ($1, $2, $3)
         ON CONFLICT (device_id, lane) DO NOTHING",
        args![device.to_string(), lane.code(), username],
    )?;
    let r = db.query_one(
        "SELECT county_acked, gap_expected FROM relay_lanes WHERE device_id = $1 AND lane = $2",
        args![device.to_string(), lane.code()],
    )?;
    Ok(LaneState {
        county_acked: r[0].i64()?,
        gap_expected: r[1].opt_i64()?,
    })
}

/// The highest sequence number held for the lane above `above`, if any.
pub fn held_top(
    db: &mut dyn Sql,
    device: Uuid,
    lane: Lane,
    above: i64,
) -> Result<Option<i64>, DbError> {
    db.query_one(
        "SELECT MAX(seq) FROM relay_held WHERE device_id = $1 AND lane = $2 AND seq > $3",
        args![device.to_string(), lane.code(), above],
    )?[0]
        .opt_i64()
}

/// Holds entries (sequence number and JSON) insert-or-ignore: an entry already held stays as
/// it was first pushed. Returns how many were new.
pub fn hold(
    db: &mut dyn Sql,
    device: Uuid,
    lane: Lane,
    username: &str,
    entries: &[(i64, String)],
    skew_ms: i64,
    now: DateTime<Utc>,
) -> Result<u32, DbError> {
    let mut new = 0;
    for (seq, entry) in entries {
        new += db.exec(
            "INSERT INTO relay_held (device_id, lane, seq, username, entry, skew_ms, received_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (device_id, lane, seq) DO NOTHING",
            args![
                device.to_string(),
                lane.code(),
                *seq,
                username,
                entry.as_str(),
                skew_ms,
                ts(now)
            ],
        )? as u32;
    }
    Ok(new)
}

/// The device sent the entry the county expects: the lane is no longer waiting for it.
pub fn clear_gap(db: &mut dyn Sql, device: Uuid, lane: Lane) -> Result<(), DbError> {
    db.exec(
        "UPDATE relay_lanes SET gap_expected = NULL WHERE device_id = $1 AND lane = $2",
        args![device.to_string(), lane.code()],
    )?;
    Ok(())
}

/// Lanes with entries held above what the county acknowledged: `(device, lane, state)`.
pub fn lanes_to_forward(db: &mut dyn Sql) -> Result<Vec<(Uuid, Lane, LaneState)>, DbError> {
    db.query(
        "SELECT l.device_id, l.lane, l.county_acked, l.gap_expected FROM relay_lanes l
         WHERE EXISTS (SELECT 1 FROM relay_held h WHERE h.device_id = l.device_id
                       AND h.lane = l.lane AND h.seq > l.county_acked)
         ORDER BY l.lane DESC, l.device_id",
        &[],
    )?
    .into_iter()
    .map(|r| {
        Ok((
            uuid(r[0].str()?)?,
            Lane::from_code(r[1].str()?).map_err(|e| DbError::Type(e.to_string()))?,
            LaneState {
                county_acked: r[2].i64()?,
                gap_expected: r[3].opt_i64()?,
            },
        ))
    })
    .collect()
}

/// Held entries of a lane after `after`, in order, at most `limit`.
pub fn held_after(
    db: &mut dyn Sql,
    device: Uuid,
    lane: Lane,
    after: i64,
    limit: i64,
) -> Result<Vec<Held>, DbError> {
    db.query(
        "SELECT seq, skew_ms, entry FROM relay_held WHERE device_id = $1 AND lane = $2 AND seq > $3
         ORDER BY seq LIMIT $4",
        args![device.to_string(), lane.code(), after, limit],
    )?
    .into_iter()
    .map(|r| {
        Ok(Held {
            seq: r[0].i64()?,
            skew_ms: r[1].i64()?,
            entry: r[2].string()?,
        })
    })
    .collect()
}

/// The county acknowledged the lane through `through`: held entries up to it are dropped.
pub fn county_acked(
    db: &mut dyn Sql,
    device: Uuid,
    lane: Lane,
    through: i64,
) -> Result<(), DbError> {
    db.exec(
        "UPDATE relay_lanes SET county_acked = CASE WHEN county_acked > $3 THEN county_acked ELSE $3 END,
         gap_expected = NULL WHERE device_id = $1 AND lane = $2",
        args![device.to_string(), lane.code(), through],
    )?;
    db.exec(
        "DELETE FROM relay_held WHERE device_id = $1 AND lane = $2 AND seq <= $3",
        args![device.to_string(), lane.code(), through],
    )?;
    Ok(())
}

/// The county answered a gap: it has the lane through `expected - 1` (its database was
/// restored). If the office does not hold `expected`, the lane waits for the device to send it
/// again (its next push here is answered with the gap).
pub fn county_gap(
    db: &mut dyn Sql,
    device: Uuid,
    lane: Lane,
    expected: i64,
) -> Result<(), DbError> {
    let holds = db
        .query_opt(
            "SELECT 1 FROM relay_held WHERE device_id = $1 AND lane = $2 AND seq = $3",
            args![device.to_string(), lane.code(), expected],
        )?
        .is_some();
    db.exec(
        "UPDATE relay_lanes SET county_acked = $3, gap_expected = $4
         WHERE device_id = $1 AND lane = $2",
        args![
            device.to_string(),
            lane.code(),
            expected - 1,
            (!holds).then_some(expected)
        ],
    )?;
    db.exec(
        "DELETE FROM relay_held WHERE device_id = $1 AND lane = $2 AND seq < $3",
        args![device.to_string(), lane.code(), expected],
    )?;
    Ok(())
}

/// The county's database is another generation (restored): what it acknowledged before says
/// nothing now, and the mirrored watermarks speak for it again.
pub fn forget_county_acks(db: &mut dyn Sql) -> Result<(), DbError> {
    db.exec(
        "UPDATE relay_lanes SET county_acked = 0, gap_expected = NULL",
        &[],
    )?;
    Ok(())
}

/// Entries held at the office.
pub fn waiting_entries(db: &mut dyn Sql) -> Result<u64, DbError> {
    Ok(db.query_one("SELECT COUNT(*) FROM relay_held", &[])?[0].i64()? as u64)
}

/// Photos named at the office whose whole bytes the county does not have yet.
pub fn waiting_photos(db: &mut dyn Sql) -> Result<u64, DbError> {
    Ok(db.query_one(
        "SELECT COUNT(*) FROM relay_photos WHERE forwarded_offset < size",
        &[],
    )?[0]
        .i64()? as u64)
}

/// A pushed entry named a photo of this size: its upload is expected here from that device.
pub fn name_photo(
    db: &mut dyn Sql,
    sha: &str,
    device: Uuid,
    username: &str,
    size: i64,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    db.exec(
        "INSERT INTO relay_photos (sha256, device_id, username, size, named_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sha256, device_id) DO NOTHING",
        args![sha, device.to_string(), username, size, ts(now)],
    )?;
    Ok(())
}

/// A photo's upload from this device: size, bytes received, complete.
pub fn photo_state(
    db: &mut dyn Sql,
    sha: &str,
    device: Uuid,
) -> Result<Option<(i64, i64, bool)>, DbError> {
    db.query_opt(
        "SELECT size, received, complete FROM relay_photos WHERE sha256 = $1 AND device_id = $2",
        args![sha, device.to_string()],
    )?
    .map(|r| Ok((r[0].i64()?, r[1].i64()?, r[2].i64()? != 0)))
    .transpose()
}

/// Whether the county has this device's photo whole (the relay forwarded all of it).
pub fn county_has_photo(db: &mut dyn Sql, sha: &str, device: Uuid) -> Result<bool, DbError> {
    Ok(db
        .query_opt(
            "SELECT 1 FROM relay_photos WHERE sha256 = $1 AND device_id = $2
               AND forwarded_offset >= size",
            args![sha, device.to_string()],
        )?
        .is_some())
}

/// Appends a chunk at `pos` and sets the bytes received.
pub fn add_photo_chunk(
    db: &mut dyn Sql,
    sha: &str,
    device: Uuid,
    pos: i64,
    bytes: &[u8],
) -> Result<(), DbError> {
    db.exec(
        "INSERT INTO relay_photo_chunks (sha256, device_id, pos, bytes) VALUES ($1, $2, $3, $4)",
        args![sha, device.to_string(), pos, bytes.to_vec()],
    )?;
    db.exec(
        "UPDATE relay_photos SET received = $3 WHERE sha256 = $1 AND device_id = $2",
        args![sha, device.to_string(), pos + bytes.len() as i64],
    )?;
    Ok(())
}

/// A photo's bytes received so far, in order.
pub fn photo_bytes(db: &mut dyn Sql, sha: &str, device: Uuid) -> Result<Vec<u8>, DbError> {
    let mut all = Vec::new();
    for c in db.query(
        "SELECT bytes FROM relay_photo_chunks WHERE sha256 = $1 AND device_id = $2 ORDER BY pos",
        args![sha, device.to_string()],
    )? {
        all.extend(c[0].bytes()?);
    }
    Ok(all)
}

/// The upload is whole and checked; or (`complete` false) it starts again from byte 0.
pub fn finish_photo(
    db: &mut dyn Sql,
    sha: &str,
    device: Uuid,
    complete: bool,
) -> Result<(), DbError> {
    if complete {
        db.exec(
            "UPDATE relay_photos SET complete = 1 WHERE sha256 = $1 AND device_id = $2",
            args![sha, device.to_string()],
        )?;
    } else {
        db.exec(
            "DELETE FROM relay_photo_chunks WHERE sha256 = $1 AND device_id = $2",
            args![sha, device.to_string()],
        )?;
        db.exec(
            "UPDATE relay_photos SET received = 0 WHERE sha256 = $1 AND device_id = $2",
            args![sha, device.to_string()],
        )?;
    }
    Ok(())
}

/// Photos whole at the office that the county does not have whole yet, the oldest named
/// first: `(sha256, device, size)`.
pub fn photos_to_forward(db: &mut dyn Sql) -> Result<Vec<(String, Uuid, i64, bool)>, DbError> {
    db.query(
        "SELECT sha256, device_id, size, complete FROM relay_photos
         WHERE forwarded_offset < size ORDER BY named_at, sha256, device_id",
        &[],
    )?
    .into_iter()
    .map(|r| {
        Ok((
            r[0].string()?,
            uuid(r[1].str()?)?,
            r[2].i64()?,
            r[3].i64()? != 0,
        ))
    })
    .collect()
}

/// How much of a photo the county has, as it last answered. Once it has it whole the photo is
/// forwarded and the office's copy of its bytes is dropped (the row stays, so the device's
/// upload here still answers complete).
pub fn photo_forwarded(
    db: &mut dyn Sql,
    sha: &str,
    device: Uuid,
    county_offset: i64,
    whole: bool,
) -> Result<(), DbError> {
    if whole {
        db.exec(
            "UPDATE relay_photos SET forwarded_offset = size WHERE sha256 = $1 AND device_id = $2",
            args![sha, device.to_string()],
        )?;
        db.exec(
            "DELETE FROM relay_photo_chunks WHERE sha256 = $1 AND device_id = $2",
            args![sha, device.to_string()],
        )?;
    } else {
        db.exec(
            "UPDATE relay_photos SET forwarded_offset = $3 WHERE sha256 = $1 AND device_id = $2",
            args![sha, device.to_string(), county_offset],
        )?;
    }
    Ok(())
}

/// Notes a device seen at the office on this day (China time).
pub fn seen(db: &mut dyn Sql, device: Uuid, day: NaiveDate) -> Result<(), DbError> {
    db.exec(
        "INSERT INTO relay_devices_seen (day, device_id) VALUES ($1, $2) ON CONFLICT (day, device_id) DO NOTHING",
        args![day.to_string(), device.to_string()],
    )?;
    Ok(())
}

/// Devices seen at the office on this day.
pub fn seen_on(db: &mut dyn Sql, day: NaiveDate) -> Result<u64, DbError> {
    Ok(db.query_one(
        "SELECT COUNT(*) FROM relay_devices_seen WHERE day = $1",
        args![day.to_string()],
    )?[0]
        .i64()? as u64)
}
