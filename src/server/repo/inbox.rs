//! The push inbox as stored: queued pushes, their failures and quarantine, refused entries.

use super::*;

/// A received push, to queue in the inbox.
pub struct QueuedPush<'a> {
    pub device: Uuid,
    pub lane: &'a str,
    pub username: &'a str,
    pub device_now: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    /// The entries, JSON in sequence order, zstd-compressed ([`pack_entries`]).
    pub entries_zstd: Vec<u8>,
}

thread_local! {
    /// Each thread's zstd contexts, kept: a fresh compression context allocates and clears
    /// about a megabyte, which in a burst of pushes cost more than the compression itself.
    static ZSTD: std::cell::RefCell<Option<(zstd::bulk::Compressor<'static>, zstd::bulk::Decompressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f` with this thread's zstd contexts (made on first use).
pub(super) fn with_zstd<R>(
    f: impl FnOnce(
        &mut zstd::bulk::Compressor<'static>,
        &mut zstd::bulk::Decompressor<'static>,
    ) -> std::io::Result<R>,
) -> std::io::Result<R> {
    ZSTD.with(|z| {
        let mut z = z.borrow_mut();
        if z.is_none() {
            *z = Some((
                zstd::bulk::Compressor::new(1)?,
                zstd::bulk::Decompressor::new()?,
            ));
        }
        let (c, d) = z.as_mut().expect("made above");
        f(c, d)
    })
}

/// A push's entries (JSON) as the inbox keeps them: zstd, level 1 (fast: the compression is
/// done by the request's task before it waits for the writer).
pub fn pack_entries(json: &str) -> Result<Vec<u8>, DbError> {
    with_zstd(|c, _| c.compress(json.as_bytes()))
        .map_err(|e| DbError::Type(format!("compressing a push: {e}")))
}

/// The JSON of packed entries ([`pack_entries`]).
pub fn unpack_entries(packed: &[u8]) -> Result<String, DbError> {
    let size = zstd::zstd_safe::get_frame_content_size(packed)
        .ok()
        .flatten()
        .ok_or_else(|| DbError::Type("push inbox row: not a zstd frame with its size".into()))?;
    // A push's entries are part of its body, at most MAX_JSON_BYTES: a row claiming more is
    // not one of ours (and is not given the memory it asks for).
    if size > crate::server::MAX_JSON_BYTES as u64 {
        return Err(DbError::Type(format!(
            "push inbox row: claims {size} bytes of entries"
        )));
    }
    let json = with_zstd(|_, d| d.decompress(packed, size as usize))
        .map_err(|e| DbError::Type(format!("push inbox row: {e}")))?;
    String::from_utf8(json).map_err(|e| DbError::Type(format!("push inbox row: {e}")))
}

/// Queues pushes, in the order given (rows get increasing ids: the applier's order).
pub fn queue_pushes(db: &mut dyn Sql, qs: Vec<QueuedPush<'_>>) -> Result<(), DbError> {
    let mut qs = qs.into_iter().peekable();
    while qs.peek().is_some() {
        let (mut rows, mut args) = (Vec::new(), Vec::new());
        for (i, q) in qs.by_ref().take(100).enumerate() {
            let marks = params(i * 6 + 1, 6);
            rows.push(format!("({}, '')", marks));
            args.extend([
                V::T(q.device.to_string()),
                V::T(q.lane.to_owned()),
                V::T(q.username.to_owned()),
                V::T(ts(q.device_now)),
                V::T(ts(q.received_at)),
                V::B(q.entries_zstd),
            ]);
        }
        db.exec(
            &format!(
                "INSERT INTO push_inbox (device_id, lane, username, device_now, received_at, entries_zstd, entries)
                 VALUES {}",
                rows.join(", ")
            ),
            &args,
        )?;
    }
    Ok(())
}

/// A push waiting in the inbox.
pub struct Queued {
    pub id: i64,
    pub device: Uuid,
    pub username: String,
    pub device_now: DateTime<Utc>,
    pub entries: String,
    /// Why the row's entries could not be unpacked, if they could not.
    pub unreadable: Option<String>,
    /// Earlier applications of this row that failed (not by one entry's refusal).
    pub attempts: i64,
}

/// The oldest queued pushes after row `after` (0: from the first), in arrival order, at
/// most `limit`; quarantined rows are left out.
pub fn queued_pushes(db: &mut dyn Sql, after: i64, limit: i64) -> Result<Vec<Queued>, DbError> {
    db.query(
        "SELECT id, device_id, username, device_now, entries, entries_zstd, attempts FROM push_inbox
         WHERE id > $1 AND quarantined_at IS NULL ORDER BY id LIMIT $2",
        args![after, limit],
    )?
    .into_iter()
    .map(|r| {
        let mut unreadable = None;
        Ok(Queued {
            id: r[0].i64()?,
            device: uuid(r[1].str()?)?,
            username: r[2].string()?,
            device_now: parse_ts(r[3].str()?)?,
            // A row that cannot be unpacked is the applier's to set aside, not a reason to
            // stop reading the rows behind it.
            entries: match &r[5] {
                V::Null => r[4].string()?,
                packed => match unpack_entries(&packed.bytes()?) {
                    Ok(json) => json,
                    Err(e) => {
                        unreadable = Some(e.to_string());
                        String::new()
                    }
                },
            },
            unreadable,
            attempts: r[6].i64()?,
        })
    })
    .collect()
}

/// Notes a failed application of inbox row `id` (in its own transaction, after the one
/// that failed was undone): its attempts and the error; at `max_attempts` the row is
/// quarantined, so the rows behind it move on. Returns whether it was quarantined now.
pub fn note_inbox_failure(
    db: &mut dyn Sql,
    id: i64,
    error: &str,
    max_attempts: i64,
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    let Some(r) = db.query_opt(
        "UPDATE push_inbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1 RETURNING attempts",
        args![id, error],
    )?
    else {
        return Ok(false);
    };
    if r[0].i64()? < max_attempts {
        return Ok(false);
    }
    db.exec(
        "UPDATE push_inbox SET quarantined_at = $2 WHERE id = $1",
        args![id, ts(now)],
    )?;
    Ok(true)
}

/// Sets inbox row `id` aside at once (a row that cannot be read at all).
pub fn quarantine_push(
    db: &mut dyn Sql,
    id: i64,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    db.exec(
        "UPDATE push_inbox SET attempts = attempts + 1, last_error = $2, quarantined_at = $3 WHERE id = $1",
        args![id, error, ts(now)],
    )?;
    Ok(())
}

/// A quarantined inbox row, as an administrator sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QuarantinedPush {
    pub id: i64,
    pub device: String,
    pub lane: String,
    pub username: String,
    pub received_at: String,
    pub quarantined_at: String,
    pub attempts: i64,
    pub last_error: String,
}

/// Every quarantined inbox row, oldest first.
pub fn quarantined_pushes(db: &mut dyn Sql) -> Result<Vec<QuarantinedPush>, DbError> {
    db.query(
        "SELECT id, device_id, lane, username, received_at, quarantined_at, attempts, last_error
         FROM push_inbox WHERE quarantined_at IS NOT NULL ORDER BY id",
        &[],
    )?
    .into_iter()
    .map(|r| {
        Ok(QuarantinedPush {
            id: r[0].i64()?,
            device: r[1].string()?,
            lane: r[2].string()?,
            username: r[3].string()?,
            received_at: r[4].string()?,
            quarantined_at: r[5].string()?,
            attempts: r[6].i64()?,
            last_error: r[7].opt_string()?.unwrap_or_default(),
        })
    })
    .collect()
}

/// Puts a quarantined row back in the queue, with its attempts reset, audited as `who`'s;
/// false if there is no such quarantined row.
pub fn retry_quarantined(
    db: &mut dyn Sql,
    id: i64,
    who: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    let ok = db.exec(
        "UPDATE push_inbox SET quarantined_at = NULL, attempts = 0 WHERE id = $1 AND quarantined_at IS NOT NULL",
        args![id],
    )? == 1;
    if ok {
        audit(
            db,
            now,
            who,
            None,
            "INBOX_RETRY",
            None,
            None,
            Some(id.to_string()),
        )?;
    }
    Ok(ok)
}

/// The inbox at a glance: rows queued (not quarantined), when the oldest of them was
/// received, and rows quarantined.
pub fn inbox_health(db: &mut dyn Sql) -> Result<(i64, Option<DateTime<Utc>>, i64), DbError> {
    let r = db.query_one(
        "SELECT COUNT(*) FILTER (WHERE quarantined_at IS NULL),
                MIN(received_at) FILTER (WHERE quarantined_at IS NULL),
                COUNT(*) FILTER (WHERE quarantined_at IS NOT NULL)
         FROM push_inbox",
        &[],
    )?;
    let oldest = r[1].opt_string()?.map(|s| parse_ts(&s)).transpose()?;
    Ok((r[0].i64()?, oldest, r[2].i64()?))
}

/// Removes applied rows from the inbox.
pub fn unqueue_pushes(db: &mut dyn Sql, ids: &[i64]) -> Result<(), DbError> {
    for chunk in ids.chunks(500) {
        let marks = params(1, chunk.len());
        let args: Vec<V> = chunk.iter().map(|&i| V::I(i)).collect();
        db.exec(
            &format!("DELETE FROM push_inbox WHERE id IN ({})", marks),
            &args,
        )?;
    }
    Ok(())
}

/// The last inbox row of this device's pushes still queued, if any.
pub fn last_queued_for(db: &mut dyn Sql, device: Uuid) -> Result<Option<i64>, DbError> {
    db.query_opt(
        "SELECT id FROM push_inbox WHERE device_id = $1 AND quarantined_at IS NULL ORDER BY id DESC LIMIT 1",
        args![device.to_string()],
    )?
    .map(|r| r[0].i64())
    .transpose()
}

/// How many pushes wait in the inbox, quarantined ones left out (health and load tests).
pub fn queued_count(db: &mut dyn Sql) -> Result<i64, DbError> {
    db.query_one(
        "SELECT COUNT(*) FROM push_inbox WHERE quarantined_at IS NULL",
        &[],
    )?[0]
        .i64()
}

/// Keeps a refused entry (the entry as pushed, JSON) for its device and county staff.
pub fn add_rejection(
    db: &mut dyn Sql,
    device: Uuid,
    username: &str,
    r: &crate::wire::Rejection,
    entry: &str,
) -> Result<(), DbError> {
    db.exec(
        "INSERT INTO push_rejections (seq, device_id, username, lane, entry_seq, kind, record_id, op,
                                      error, message, field, entry, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        args![
            r.seq,
            device.to_string(),
            username,
            r.lane.code(),
            r.entry_seq as i64,
            r.kind.code(),
            r.record_id.to_string(),
            r.op.code(),
            &r.error,
            &r.message,
            r.field.clone(),
            entry,
            ts(r.at)
        ],
    )?;
    Ok(())
}

/// A device's refused entries with `after < seq <= upto`, in order: only those pushed by
/// `username` (a device's refusals are its account's).
pub fn rejections_for(
    db: &mut dyn Sql,
    device: Uuid,
    username: &str,
    after: i64,
    upto: i64,
) -> Result<Vec<crate::wire::Rejection>, DbError> {
    use crate::wire::{Lane, Op};
    let bad = |what: &str, e: String| DbError::Type(format!("push_rejections.{what}: {e}"));
    db.query(
        "SELECT seq, lane, entry_seq, kind, record_id, op, error, message, field, at
         FROM push_rejections WHERE device_id = $1 AND username = $2 AND seq > $3 AND seq <= $4
         ORDER BY seq",
        args![device.to_string(), username, after, upto],
    )?
    .into_iter()
    .map(|r| {
        Ok(crate::wire::Rejection {
            seq: r[0].i64()?,
            lane: Lane::from_code(r[1].str()?).map_err(|e| bad("lane", e.to_string()))?,
            entry_seq: r[2].i64()? as u64,
            kind: EntityKind::from_code(r[3].str()?).map_err(|e| bad("kind", e.to_string()))?,
            record_id: uuid(r[4].str()?)?,
            op: Op::from_code(r[5].str()?).map_err(|e| bad("op", e.to_string()))?,
            error: r[6].string()?,
            message: r[7].string()?,
            field: r[8].opt_string()?,
            at: parse_ts(r[9].str()?)?,
        })
    })
    .collect()
}
