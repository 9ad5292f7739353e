//! Draining the push inbox: applying queued entries in arrival order under the inbox lock, and
//! parsing a queued entry back into its typed form.

use super::*;

/// Applies queued pushes in arrival order, whole rows, until about `max_entries` entries are
/// done; returns the last row it applied (none: the inbox is empty, or on PostgreSQL another
/// replica is applying it: [`apply_inbox_watched`] tells the two apart). Each row is tried whole in a savepoint first; if an entry is
/// refused, the row is applied entry by entry instead, and each refused entry is kept in
/// `push_rejections` (with a sequence number, for its device's next pull) and audited.
/// An entry whose fields cannot be read (a number out of range, a lone surrogate, nesting
/// past [`MAX_FIELD_DEPTH`]) is refused like any other, naming the field; a row that cannot
/// be read at all is quarantined at once. Only a database error (or a bug) fails the call:
/// then nothing of it is kept, the rows stay queued, and `current` names the row it was on
/// (the caller counts the failure against that row: [`repo::note_inbox_failure`]).
pub fn apply_inbox(
    db: &mut dyn Sql,
    max_entries: usize,
    now: DateTime<Utc>,
) -> Result<Option<i64>, Error> {
    Ok(
        match apply_inbox_watched(db, max_entries, now, &std::sync::atomic::AtomicI64::new(0))? {
            Drained::Through(row) => Some(row),
            Drained::Empty | Drained::Busy => None,
        },
    )
}

/// What one call of [`apply_inbox_watched`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Rows applied (or set aside) through this inbox row.
    Through(i64),
    /// Nothing queued.
    Empty,
    /// Another server holds the inbox lock (PostgreSQL): it is applying the inbox, and goes
    /// on until the inbox is empty.
    Busy,
}

/// [`apply_inbox`], saying in `current` which row it is applying (0: none), so that a
/// failure, or a panic, can be counted against that row, and whether it found the inbox
/// empty or another server applying it.
pub fn apply_inbox_watched(
    db: &mut dyn Sql,
    max_entries: usize,
    now: DateTime<Utc>,
    current: &std::sync::atomic::AtomicI64,
) -> Result<Drained, Error> {
    use std::sync::atomic::Ordering::SeqCst;
    current.store(0, SeqCst);
    if db.backend() == "postgres"
        && db.query_one("SELECT pg_try_advisory_xact_lock($1)", &[V::I(INBOX_LOCK)])?[0].i64()? == 0
    {
        return Ok(Drained::Busy);
    }
    let mut users: BTreeMap<String, Option<User>> = BTreeMap::new();
    let (mut done, mut after, mut entries_done) = (None, 0, 0);
    let mut applied = Vec::new();
    // A few rows at a time: a push is often as big as a whole chunk, and each row fetched is
    // decompressed and parsed.
    'rows: loop {
        let rows = repo::queued_pushes(db, after, INBOX_FETCH)?;
        if rows.is_empty() {
            break;
        }
        for q in rows {
            current.store(q.id, SeqCst);
            after = q.id;
            let read = match &q.unreadable {
                Some(why) => Err(why.clone()),
                None => serde_json::from_str(&q.entries).map_err(|e| e.to_string()),
            };
            let entries: Vec<OutboxEntry<RawFields>> = match read {
                Ok(e) => e,
                Err(e) => {
                    // Not one entry's fault, and reading it again will not help.
                    let why = format!("push inbox row {} cannot be read: {e}", q.id);
                    tracing::error!(row = q.id, device = %q.device, error = %why, "push inbox row quarantined");
                    repo::quarantine_push(db, q.id, &why, now)?;
                    continue;
                }
            };
            if !users.contains_key(&q.username) {
                let u = repo::user_by_name(db, &q.username)?.map(|(u, _)| u);
                users.insert(q.username.clone(), u);
            }
            let user = users[&q.username].as_ref();
            apply_received(db, user, &q, &entries, now)?;
            applied.push(q.id);
            done = Some(q.id);
            entries_done += entries.len();
            if entries_done >= max_entries {
                break 'rows;
            }
        }
    }
    current.store(0, SeqCst);
    repo::unqueue_pushes(db, &applied)?;
    Ok(match done.or((after > 0).then_some(after)) {
        Some(row) => Drained::Through(row),
        None => Drained::Empty,
    })
}

/// Inbox rows fetched at a time by [`apply_inbox`].
pub(super) const INBOX_FETCH: i64 = 4;

/// Failed applications of one inbox row (database or program errors, not refusals) before
/// it is quarantined. On its last try, an entry that fails with a database error is refused
/// (as `internal`) instead, so only a row that fails outside its entries is set aside.
pub const MAX_INBOX_ATTEMPTS: i64 = 3;

/// How deep an entry's fields may nest (objects and arrays): a record's deepest field is a
/// dispute party's or a track point's value, at depth 3.
pub const MAX_FIELD_DEPTH: usize = 8;

/// The PostgreSQL advisory lock one replica holds while it applies the inbox (rows of one
/// device lane must be applied in order, so only one applier runs at a time). A transaction
/// lock: it goes with the transaction, or with the connection of a server that died.
pub const INBOX_LOCK: i64 = 0x6772_6964_7761;

/// An entry's fields read from their text, or the refusal that names the field: a value
/// JSON allows but the server cannot hold (a number out of range, a lone surrogate, a NUL
/// character, nesting past [`MAX_FIELD_DEPTH`]).
pub fn parse_entry(e: &OutboxEntry<RawFields>) -> Result<OutboxEntry, Refusal> {
    let de = &mut serde_json::Deserializer::from_str(e.fields.get());
    let fields: crate::wire::Fields = serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        Refusal::invalid(
            format!("无法读取的值，请在手机上修改这条记录后重新提交 (unreadable value: {inner})"),
            Some(&if path == "." || path.is_empty() {
                "fields".to_owned()
            } else {
                format!("fields.{path}")
            }),
        )
    })?;
    for (k, v) in &fields {
        check_value(v, &format!("fields.{k}"), 1)?;
    }
    Ok(OutboxEntry {
        lane: e.lane,
        seq: e.seq,
        kind: e.kind,
        record_id: e.record_id,
        op: e.op,
        fields,
        base_version: e.base_version,
        edited_at: e.edited_at,
    })
}

/// What JSON allows but no field of ours holds: nesting past [`MAX_FIELD_DEPTH`] and NUL
/// characters (which PostgreSQL's text refuses).
pub(super) fn check_value(v: &Value, path: &str, depth: usize) -> Result<(), Refusal> {
    match v {
        Value::String(s) if s.contains('\0') => Err(Refusal::invalid(
            "文字中含有不可见的控制字符，请删除后重新提交 (text holds a NUL character)",
            Some(path),
        )),
        Value::Array(_) | Value::Object(_) if depth > MAX_FIELD_DEPTH => Err(Refusal::invalid(
            format!(
                "数据嵌套超过 {MAX_FIELD_DEPTH} 层 (nested deeper than {MAX_FIELD_DEPTH} levels)"
            ),
            Some(path),
        )),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, x)| check_value(x, &format!("{path}[{i}]"), depth + 1)),
        Value::Object(m) => m
            .iter()
            .try_for_each(|(k, x)| check_value(x, &format!("{path}.{k}"), depth + 1)),
        _ => Ok(()),
    }
}
