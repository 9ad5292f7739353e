//! Answering pulls: the entities of the account's scope changed after the device's cursor,
//! with its refused entries and the visit cadence.

use super::*;

/// The default visit cadence, or what the county set.
pub fn cadence(db: &mut dyn Sql) -> Result<Vec<(Tag, u32)>, Error> {
    Ok(repo::cadence(db)?)
}

/// One page of changes in the user's scope after `cursor`. An event record the device holds
/// as of `base` (it was made at or before it) comes as a partial change: the fields whose
/// own version is after `base`, and the status changes after it. Every write of a record
/// stamps the fields it sets (see [`EntityMeta`]), which is what makes this exact.
pub fn pull(
    db: &mut dyn Sql,
    user: &User,
    device: Option<Uuid>,
    cursor: i64,
    base: i64,
    limit: usize,
) -> Result<PullResponse, Error> {
    let limit = limit.clamp(1, MAX_PAGE);
    let base = base.clamp(0, cursor);
    let mut rows = repo::changed_since(db, &user.scope(), cursor, limit)?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let record_ids: Vec<Uuid> = rows
        .iter()
        .filter(|r| r.0.is_record())
        .map(|r| r.1)
        .collect();
    let mut histories = repo::versioned_histories(db, &record_ids)?;
    let mut next = rows.last().map(|r| r.4).unwrap_or(cursor);
    // The device's refused entries up to this page's end (to the end when it is the last).
    let rejected = match device {
        Some(d) => repo::rejections_for(
            db,
            d,
            &user.username,
            cursor,
            if more { next } else { i64::MAX },
        )?,
        None => Vec::new(),
    };
    if !more && let Some(r) = rejected.last() {
        next = next.max(r.seq);
    }
    // The visit cadence comes with the first page, and again once the county changed it after
    // the device's cursor (on the last page, which moves the cursor past the change).
    let settings = repo::settings_seq(db)?;
    let send_cadence = cursor == 0 || (!more && settings > cursor);
    if !more {
        next = next.max(settings);
    }
    let internal = |e: serde_json::Error| Error::Internal(e.to_string());
    let mut changes = Vec::with_capacity(rows.len());
    for (kind, id, data, meta, seq) in rows {
        let mut data: Value = serde_json::from_str(&data).map_err(internal)?;
        if !kind.is_record() {
            changes.push(Change::whole(seq, kind, id, data));
            continue;
        }
        let history = histories.remove(&id).unwrap_or_default();
        let meta: Option<EntityMeta> = if base == 0 {
            None // everything comes whole: no need to read the stamps
        } else {
            Some(serde_json::from_str(&meta).map_err(internal)?)
        };
        let Some(meta) = meta.filter(|m| m.created.version <= base) else {
            changes.push(Change {
                history: Some(history.into_iter().map(|(_, h)| h).collect()),
                ..Change::whole(seq, kind, id, data)
            });
            continue;
        };
        if let Value::Object(fields) = &mut data {
            fields.retain(|f, _| meta.fields.get(f).is_some_and(|m| m.version > base));
        }
        let kept = history.iter().take_while(|(v, _)| *v <= base).count();
        let newer: Vec<StatusChange> = history.into_iter().skip(kept).map(|(_, h)| h).collect();
        changes.push(Change {
            seq,
            kind,
            id,
            data,
            partial: true,
            history: (!newer.is_empty()).then_some(newer),
            history_kept: kept as u32,
        });
    }
    Ok(PullResponse {
        changes,
        cursor: next,
        base,
        more,
        cadence: if send_cadence {
            Some(cadence(db)?)
        } else {
            None
        },
        rejected,
    })
}
