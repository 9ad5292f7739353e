//! Each device lane's watermark, and what changed after a pull cursor.

use super::*;

/// A device lane's watermark: the last sequence number received, and the account it
/// belongs to.
pub type Watermark = (i64, String);

/// Device lanes' watermarks, locking their rows for the rest of the transaction (a row is
/// made at 0 for a new device lane, owned by the account given), with the account each
/// belongs to: `(device, lane, account)` in, `(device, lane) -> (seq, owner)` out. One
/// statement; rows are locked in key order so that two receivers cannot deadlock. Only its
/// owner's push marks a row as seen.
pub fn lock_watermarks(
    db: &mut dyn Sql,
    keys: &[(Uuid, &str, &str)],
    now: DateTime<Utc>,
) -> Result<BTreeMap<(Uuid, String), Watermark>, DbError> {
    let mut keys: Vec<&(Uuid, &str, &str)> = keys.iter().collect();
    keys.sort_by_key(|k| (k.0, k.1));
    keys.dedup_by_key(|k| (k.0, k.1));
    let mut out = BTreeMap::new();
    for chunk in keys.chunks(500) {
        let mut rows = Vec::with_capacity(chunk.len());
        let mut args: Vec<V> = Vec::with_capacity(chunk.len() * 5);
        for (i, (device, lane, username)) in chunk.iter().enumerate() {
            rows.push(format!("({})", params(i * 5 + 1, 5)));
            args.extend([
                V::T(device.to_string()),
                V::T((*lane).to_owned()),
                V::I(0),
                V::T((*username).to_owned()),
                V::T(ts(now)),
            ]);
        }
        for r in db.query(
            &format!(
                "INSERT INTO watermarks (device_id, lane, seq, username, updated_at) VALUES {}
                 ON CONFLICT (device_id, lane) DO UPDATE SET updated_at = CASE
                   WHEN watermarks.username = excluded.username THEN excluded.updated_at
                   ELSE watermarks.updated_at END
                 RETURNING device_id, lane, seq, username",
                rows.join(", ")
            ),
            &args,
        )? {
            out.insert(
                (uuid(r[0].str()?)?, r[1].string()?),
                (r[2].i64()?, r[3].string()?),
            );
        }
    }
    Ok(out)
}

/// Moves device lanes' watermarks (rows locked by [`lock_watermarks`]): `(device, lane, seq)`,
/// each key once.
pub fn set_watermarks(db: &mut dyn Sql, marks: &[(Uuid, &str, i64)]) -> Result<(), DbError> {
    for chunk in marks.chunks(500) {
        let mut rows = Vec::with_capacity(chunk.len());
        let mut args: Vec<V> = Vec::with_capacity(chunk.len() * 3);
        for (i, (device, lane, seq)) in chunk.iter().enumerate() {
            // The rows exist: this insert always takes its update branch.
            rows.push(format!("({}, '', '')", params(i * 3 + 1, 3)));
            args.extend([
                V::T(device.to_string()),
                V::T((*lane).to_owned()),
                V::I(*seq),
            ]);
        }
        db.exec(
            &format!(
                "INSERT INTO watermarks (device_id, lane, seq, username, updated_at) VALUES {}
                 ON CONFLICT (device_id, lane) DO UPDATE SET seq = excluded.seq",
                rows.join(", ")
            ),
            &args,
        )?;
    }
    Ok(())
}

/// One entity in a pull page: kind, id, data and per-field versions (JSON), version.
pub type ChangedRow = (EntityKind, Uuid, String, String, i64);

/// Entities in scope changed after `cursor`, in version order, at most `limit` (+1 to tell
/// whether more wait).
pub fn changed_since(
    db: &mut dyn Sql,
    scope: &Scope,
    cursor: i64,
    limit: usize,
) -> Result<Vec<ChangedRow>, DbError> {
    let (clause, mut args) = scope.clause(3);
    let mut all = vec![V::I(cursor), V::I(limit as i64 + 1)];
    all.append(&mut args);
    db.query(
        &format!(
            "SELECT kind, id, data, meta, version FROM entities WHERE {clause} AND version > $1
             ORDER BY version LIMIT $2"
        ),
        &all,
    )?
    .into_iter()
    .map(|mut r| {
        Ok((
            EntityKind::from_code(r[0].str()?).map_err(|e| DbError::Type(e.to_string()))?,
            uuid(r[1].str()?)?,
            take_string(&mut r[2])?,
            take_string(&mut r[3])?,
            r[4].i64()?,
        ))
    })
    .collect()
}

pub(super) fn take_string(v: &mut V) -> Result<String, DbError> {
    match std::mem::replace(v, V::Null) {
        V::T(s) => Ok(s),
        other => Err(DbError::Type(format!("expected text, got {other:?}"))),
    }
}
