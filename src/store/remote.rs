//! The device side of sync that touches the store: applying a pulled page together with its
//! cursor in one transaction (rebasing edits still waiting in the outbox on top), the
//! enrolment settings, photos waiting for upload, conflicts, and the pushed entries the server
//! refused after acknowledging them (rejections, until the worker dismisses them).

use std::borrow::Cow;
use std::collections::HashSet;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::people::{
    Cadence, refresh_all_summaries, refresh_summary, write_house, write_household, write_person,
    write_visit,
};
use super::records::{write_entry, write_points, write_record, write_status_change};
use super::scope::write_grid;
use super::{Result, Store, StoreError, code, ts, uuid};
use crate::domain::codes::Coded;
use crate::domain::geo::Grid;
use crate::domain::model::{
    AnyRecord, Conflict, EmergencyReport, EntityKind, House, Household, MediationSession,
    PatrolPoints, Person, Reply, Visit,
};
use crate::wire::{Change, Lane, Op, PullResponse, Rejection};

/// Meta keys of the sync state.
pub const SERVER_URL: &str = "server_url";
pub const TOKEN: &str = "token";
pub const PULL_CURSOR: &str = "pull_cursor";
/// Where the last complete pull ended, kept while a pull of several pages is under way: the
/// server sends event records the device holds as of it as partial changes.
pub const PULL_BASE: &str = "pull_base";
pub const LAST_SYNC: &str = "last_sync_at";
/// The county database's generation the pull cursor belongs to (`x-gridwalk-generation`).
pub const PULL_GENERATION: &str = "pull_generation";
/// Set when the county's database turned out to be another generation (restored from a
/// backup), until the device has asked the server where each lane stands and put back in the
/// outbox what it lost.
pub const RESTORE_CHECK: &str = "restore_check";
/// When the session ends if the device does not sync again (RFC 3339), as the server last
/// said: each sync slides it out (at most once a day).
pub const SESSION_EXPIRES: &str = "session_expires_at";
/// When the session ends however often the device syncs (RFC 3339): the worker signs in
/// again before then.
pub const SESSION_ENDS: &str = "session_ends_at";

/// How long the device's session lasts, as the server last said (at sign-in or in a sync's
/// answer), for "登录有效至 …" and a warning before `ends_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimes {
    /// When it ends unused.
    pub expires_at: DateTime<Utc>,
    /// When it ends at the latest (unknown from servers that do not say).
    pub ends_at: Option<DateTime<Utc>>,
}

/// What applying a page did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Applied {
    pub changes: usize,
    /// Replies and status changes from the county on this worker's records.
    pub feedback: usize,
    pub conflicts: Vec<Conflict>,
    /// Refusals of this device's pushed entries that this page brought and the store did not
    /// hold yet (a page applied twice counts them once).
    pub rejected: usize,
}

/// A refusal the server sent down, as the device keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredRejection {
    pub rejection: Rejection,
    /// When the worker dismissed it (`None` while it is still shown).
    pub seen_at: Option<DateTime<Utc>>,
}

/// A photo waiting to be uploaded.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingPhoto {
    pub sha256: String,
    pub mime: String,
    pub size: usize,
}

fn parse<T: serde::de::DeserializeOwned>(kind: EntityKind, id: Uuid, v: &Value) -> Result<T> {
    T::deserialize(v).map_err(|e| {
        StoreError::Corrupt(format!(
            "the server sent a {kind} {id} this app cannot read: {e}"
        ))
    })
}

impl Store {
    /// How long the session lasts, as the server last said; `None` before the first sign-in
    /// that told it.
    pub fn session_times(&self) -> Result<Option<SessionTimes>> {
        let at = |key| -> Result<Option<DateTime<Utc>>> {
            Ok(self
                .meta(key)?
                .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
                .map(|t| t.with_timezone(&Utc)))
        };
        let Some(expires_at) = at(SESSION_EXPIRES)? else {
            return Ok(None);
        };
        Ok(Some(SessionTimes {
            expires_at,
            ends_at: at(SESSION_ENDS)?,
        }))
    }

    /// Keeps what the server said of the session; writes only what changed (a sync's answer
    /// says the same thing all day).
    pub fn keep_session_times(&self, t: &SessionTimes) -> Result<()> {
        for (key, at) in [
            (SESSION_EXPIRES, Some(t.expires_at)),
            (SESSION_ENDS, t.ends_at),
        ] {
            if let Some(at) = at {
                let v = ts(at);
                if self.meta(key)?.as_deref() != Some(v.as_str()) {
                    self.set_meta(key, &v)?;
                }
            }
        }
        Ok(())
    }

    /// The cursor after the last pulled page (0 before the first sync).
    pub fn pull_cursor(&self) -> Result<i64> {
        Ok(self
            .meta(PULL_CURSOR)?
            .and_then(|s| s.parse().ok())
            .unwrap_or(0))
    }

    /// The county database's generation the pull cursor belongs to; `None` before a server
    /// that names one has answered a pull.
    pub fn pull_generation(&self) -> Result<Option<String>> {
        self.meta(PULL_GENERATION)
    }

    /// The county's database is `generation` from now on. Taken as it is when the device knew
    /// none (its first pull, or the first since its server named generations); another one
    /// than the device knew means the database was restored from a backup, and in one
    /// transaction:
    /// - the cursor and base go back to 0: the restored change sequence reuses numbers the
    ///   device has seen, so the next pull brings everything whole (the device's edits still
    ///   in the outbox are laid over it as on every pull, and a pull from base 0 notes no
    ///   feedback, so none doubles);
    /// - [`RESTORE_CHECK`] is set: the next push first asks where each lane stands and puts
    ///   back in the outbox what the server lost ([`Store::requeue_acked`]);
    /// - every uploaded photo is asked for again (the server may have lost its bytes);
    /// - the refusals kept move below every number the server will give (they were numbered
    ///   in the old sequence; the same entry's refusal coming again is kept once).
    ///
    /// Whether it was another generation.
    pub fn take_generation(&mut self, generation: &str) -> Result<bool> {
        let known = self.pull_generation()?;
        if known.as_deref() == Some(generation) {
            return Ok(false);
        }
        let restored = known.is_some();
        self.tx(|tx| {
            super::set_meta(tx, PULL_GENERATION, generation)?;
            if restored {
                super::set_meta(tx, PULL_CURSOR, "0")?;
                super::set_meta(tx, RESTORE_CHECK, "1")?;
                tx.prepare_cached("DELETE FROM meta WHERE key = ?1")?
                    .execute([PULL_BASE])?;
                tx.prepare_cached("UPDATE photos SET uploaded = 0 WHERE uploaded = 1")?
                    .execute([])?;
                tx.prepare_cached(
                    "UPDATE rejections SET seq = seq - (
                       SELECT max(seq) - min(min(seq), 0) + 1 FROM rejections)",
                )?
                .execute([])?;
            }
            Ok(())
        })?;
        Ok(restored)
    }

    /// Whether the device still has to ask the server where its lanes stand after a restore
    /// ([`Store::take_generation`]).
    pub fn restore_check_due(&self) -> Result<bool> {
        Ok(self.meta(RESTORE_CHECK)?.is_some())
    }

    /// The lanes are checked after a restore: what the server lost is back in the outbox.
    pub fn restore_checked(&self) -> Result<()> {
        self.conn
            .execute("DELETE FROM meta WHERE key = ?1", [RESTORE_CHECK])?;
        Ok(())
    }

    /// The base for the next pull page: where the last complete pull ended (the cursor,
    /// unless a pull of several pages is under way).
    pub fn pull_base(&self) -> Result<i64> {
        match self.meta(PULL_BASE)?.and_then(|s| s.parse().ok()) {
            Some(b) => Ok(b),
            None => self.pull_cursor(),
        }
    }

    /// Applies one pulled page and stores its cursor, in one transaction.
    ///
    /// A pull's pages are in version order, not dependency order: a person can come a page
    /// before the household it belongs to, when the household changed after the person.
    /// A pull of one page has its references checked when it commits; in a pull of several
    /// they are not enforced while its pages are written, and are all checked after its
    /// last page. Either way a dangling reference at the end is an error.
    pub fn apply_pull(&mut self, page: &PullResponse, now: DateTime<Utc>) -> Result<Applied> {
        let whole = !page.more && self.meta(PULL_BASE)?.is_none();
        if whole {
            return self.apply_page(page, now, true);
        }
        self.conn.pragma_update(None, "foreign_keys", "OFF")?;
        let applied = self.apply_page(page, now, false);
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        let applied = applied?;
        if !page.more {
            dangling_reference(&self.conn)?;
        }
        Ok(applied)
    }

    fn apply_page(
        &mut self,
        page: &PullResponse,
        now: DateTime<Utc>,
        check: bool,
    ) -> Result<Applied> {
        let me = self.worker.clone();
        self.tx(|tx| {
            if check {
                tx.pragma_update(None, "defer_foreign_keys", "ON")?;
            }
            let mut households: HashSet<String> = HashSet::new();
            let mut out = Applied::default();
            // Entities with edits still in the outbox (few, usually none): only these are
            // rebased.
            let pending: HashSet<Uuid> = tx
                .prepare_cached("SELECT DISTINCT record_id FROM outbox")?
                .query_map([], |r| r.get::<_, String>(0))?
                .map(|id| uuid(&id?))
                .collect::<Result<_>>()?;
            for c in &page.changes {
                let reader = Reader {
                    me: &me,
                    news: page.base > 0,
                };
                apply_change(tx, c, &reader, now, &mut households, &pending, &mut out)?;
                out.changes += 1;
            }
            for r in &page.rejected {
                out.rejected += insert_rejection(tx, r)?;
            }
            let all = if let Some(cadence) = &page.cadence {
                tx.prepare_cached("DELETE FROM visit_cadence")?
                    .execute([])?;
                for (tag, days) in cadence {
                    tx.prepare_cached("INSERT INTO visit_cadence (tag, days) VALUES (?1, ?2)")?
                        .execute(params![tag.code(), *days as i64])?;
                }
                true
            } else {
                false
            };
            if all {
                refresh_all_summaries(tx)?;
            } else if !households.is_empty() {
                let cadence = Cadence::load(tx)?;
                for h in &households {
                    let exists: bool = tx
                        .prepare_cached("SELECT EXISTS (SELECT 1 FROM households WHERE id = ?1)")?
                        .query_row([h], |r| r.get(0))?;
                    if exists {
                        refresh_summary(tx, &cadence, h)?;
                    }
                }
            }
            super::set_meta(tx, PULL_CURSOR, &page.cursor.to_string())?;
            if page.more {
                // Later pages of this pull are relative to the same base.
                super::set_meta(tx, PULL_BASE, &page.base.to_string())?;
            } else {
                tx.prepare_cached("DELETE FROM meta WHERE key = ?1")?
                    .execute([PULL_BASE])?;
            }
            super::set_meta(tx, LAST_SYNC, &ts(now))?;
            Ok(out)
        })
    }

    /// Photos not yet uploaded, oldest first. A photo only a report draft holds waits until a
    /// record names it (the server takes no photo that no record names).
    pub fn pending_photos(&self) -> Result<Vec<PendingPhoto>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT sha256, mime, length(bytes) FROM photos WHERE uploaded = 0
               AND (NOT EXISTS (SELECT 1 FROM draft_photos d WHERE d.sha256 = photos.sha256)
                    OR EXISTS (SELECT 1 FROM records r, json_each(r.data, '$.photos') j
                               WHERE j.value = photos.sha256))
             ORDER BY created_at",
        )?;
        stmt.query_map([], |r| {
            Ok(PendingPhoto {
                sha256: r.get(0)?,
                mime: r.get(1)?,
                size: r.get::<_, i64>(2)? as usize,
            })
        })?
        .map(|r| Ok(r?))
        .collect()
    }

    pub fn mark_photo_uploaded(&mut self, sha256: &str) -> Result<()> {
        self.conn
            .execute("UPDATE photos SET uploaded = 1 WHERE sha256 = ?1", [sha256])?;
        Ok(())
    }

    /// Conflicts on this device's data, newest first; `open_only` leaves out settled ones.
    pub fn conflicts(&self, open_only: bool) -> Result<Vec<Conflict>> {
        let sql = if open_only {
            "SELECT * FROM conflicts WHERE settled_at IS NULL ORDER BY created_at DESC"
        } else {
            "SELECT * FROM conflicts ORDER BY created_at DESC"
        };
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>("id")?,
                r.get::<_, String>("entity_kind")?,
                r.get::<_, String>("entity_id")?,
                r.get::<_, String>("field")?,
                r.get::<_, String>("kept")?,
                r.get::<_, String>("lost")?,
                r.get::<_, String>("kept_by")?,
                r.get::<_, String>("lost_by")?,
                r.get::<_, String>("kept_at")?,
                r.get::<_, String>("lost_at")?,
                r.get::<_, String>("created_at")?,
                r.get::<_, Option<String>>("settled_by")?,
                r.get::<_, Option<String>>("settled_at")?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (
                id,
                kind,
                entity,
                field,
                kept,
                lost,
                kept_by,
                lost_by,
                kept_at,
                lost_at,
                created,
                settled_by,
                settled_at,
            ) = row?;
            out.push(Conflict {
                id: uuid(&id)?,
                entity_kind: code(&kind)?,
                entity_id: uuid(&entity)?,
                grid_id: Uuid::nil(),
                field,
                kept: serde_json::from_str(&kept)?,
                lost: serde_json::from_str(&lost)?,
                kept_by,
                lost_by,
                kept_at: super::time(&kept_at)?,
                lost_at: super::time(&lost_at)?,
                created_at: super::time(&created)?,
                settled_by,
                settled_at: settled_at.map(|s| super::time(&s)).transpose()?,
            });
        }
        Ok(out)
    }

    /// Refusals of this device's pushed entries, newest first; `open_only` leaves out the
    /// ones the worker dismissed.
    pub fn rejections(&self, open_only: bool) -> Result<Vec<StoredRejection>> {
        let sql = if open_only {
            "SELECT * FROM rejections WHERE seen_at IS NULL ORDER BY seq DESC"
        } else {
            "SELECT * FROM rejections ORDER BY seq DESC"
        };
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>("seq")?,
                r.get::<_, String>("lane")?,
                r.get::<_, i64>("entry_seq")?,
                r.get::<_, String>("kind")?,
                r.get::<_, String>("record_id")?,
                r.get::<_, String>("op")?,
                r.get::<_, String>("error")?,
                r.get::<_, String>("message")?,
                r.get::<_, Option<String>>("field")?,
                r.get::<_, String>("at")?,
                r.get::<_, Option<String>>("seen_at")?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, lane, entry_seq, kind, record, op, error, message, field, at, seen_at) = row?;
            out.push(StoredRejection {
                rejection: Rejection {
                    seq,
                    lane: code::<Lane>(&lane)?,
                    entry_seq: entry_seq as u64,
                    kind: code(&kind)?,
                    record_id: uuid(&record)?,
                    op: code::<Op>(&op)?,
                    error,
                    message,
                    field,
                    at: super::time(&at)?,
                },
                seen_at: seen_at.map(|s| super::time(&s)).transpose()?,
            });
        }
        Ok(out)
    }

    /// The worker has read the refusal `seq`: it leaves the open list. Dismissing it again
    /// keeps the first time. Device state only: nothing goes to the server.
    pub fn dismiss_rejection(&mut self, seq: i64, now: DateTime<Utc>) -> Result<()> {
        let found = self.conn.execute(
            "UPDATE rejections SET seen_at = coalesce(seen_at, ?2) WHERE seq = ?1",
            params![seq, ts(now)],
        )?;
        if found == 0 {
            return Err(StoreError::NotFound {
                kind: "rejection",
                id: seq.to_string(),
            });
        }
        Ok(())
    }
}

/// Stores a refusal once (keyed by the server's sequence number); 1 if it was new.
fn insert_rejection(tx: &rusqlite::Connection, r: &Rejection) -> Result<usize> {
    Ok(tx
        .prepare_cached(
            "INSERT OR IGNORE INTO rejections (seq, lane, entry_seq, kind, record_id, op, error,
                                               message, field, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            r.seq,
            r.lane.code(),
            r.entry_seq as i64,
            r.kind.code(),
            r.record_id.to_string(),
            r.op.code(),
            r.error,
            r.message,
            r.field,
            ts(r.at),
        ])?)
}

/// Fails on the first row whose reference names a row this device does not hold.
fn dangling_reference(conn: &rusqlite::Connection) -> Result<()> {
    // (rowid is NULL for a table without one.)
    let found: Option<(String, Option<i64>, String)> = conn
        .prepare_cached("PRAGMA foreign_key_check")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    match found {
        None => Ok(()),
        Some((table, rowid, parent)) => Err(StoreError::Corrupt(format!(
            "after the pull, a row of {table} (rowid {}) refers to a row of {parent} the server did not send; enrol the device again",
            rowid.map_or("-".into(), |r| r.to_string())
        ))),
    }
}

/// Deletes a record's status changes after its earliest `kept`. (Not one `DELETE ... NOT IN
/// (... LIMIT ?)`: SQLite re-prepares a statement whose LIMIT is a parameter at every new
/// binding, which was a fifth of applying a first pull.)
fn trim_history(tx: &rusqlite::Connection, id: Uuid, kept: usize) -> Result<()> {
    let ids: Vec<i64> = tx
        .prepare_cached("SELECT id FROM status_history WHERE record_id = ?1 ORDER BY id")?
        .query_map([id.to_string()], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if ids.len() > kept {
        let first_gone = ids[kept];
        tx.prepare_cached("DELETE FROM status_history WHERE record_id = ?1 AND id >= ?2")?
            .execute(params![id.to_string(), first_gone])?;
    }
    Ok(())
}

/// Edits still waiting in the outbox for an entity, applied over what the server sent, so a
/// pull never hides an edit the worker made after the last push.
fn rebase(tx: &rusqlite::Connection, id: Uuid, data: &mut Map<String, Value>) -> Result<()> {
    let mut stmt =
        tx.prepare_cached("SELECT op, fields FROM outbox WHERE record_id = ?1 ORDER BY lane, seq")?;
    let rows = stmt.query_map([id.to_string()], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    for row in rows {
        let (op, fields) = row?;
        let fields: Map<String, Value> = serde_json::from_str(&fields)?;
        match Op::from_code(&op)? {
            Op::Update => data.extend(fields),
            Op::Transition => {
                if let Some(s) = fields.get("status") {
                    data.insert("status".into(), s.clone());
                }
            }
            Op::Create | Op::Append => {}
        }
    }
    Ok(())
}

/// Who applies a page, and whether what it brings is news to them.
struct Reader<'a> {
    me: &'a str,
    /// False for the first pull a device makes (its base is 0): it brings the records' past,
    /// which is no news, so nothing goes into the feedback inbox.
    news: bool,
}

fn apply_change(
    tx: &rusqlite::Connection,
    c: &Change,
    reader: &Reader,
    now: DateTime<Utc>,
    households: &mut HashSet<String>,
    pending: &HashSet<Uuid>,
    out: &mut Applied,
) -> Result<()> {
    let me = reader.me;
    let (kind, id, v) = (c.kind, c.id, &c.data);
    let Value::Object(fields) = v else {
        return Err(StoreError::Corrupt(format!(
            "the server sent {kind} {id} without data"
        )));
    };
    // What the server sent, with the worker's edits still in the outbox laid over it (for
    // the kinds a worker edits; a copy only when there are any).
    let edited = || -> Result<Cow<'_, Value>> {
        if !pending.contains(&id) {
            return Ok(Cow::Borrowed(v));
        }
        let mut data = fields.clone();
        rebase(tx, id, &mut data)?;
        Ok(Cow::Owned(Value::Object(data)))
    };
    match kind {
        EntityKind::Grid => write_grid(tx, &parse::<Grid>(kind, id, v)?, c.seq)?,
        EntityKind::House => {
            write_house(tx, &parse::<House>(kind, id, edited()?.as_ref())?, c.seq)?
        }
        EntityKind::Household => {
            write_household(
                tx,
                &parse::<Household>(kind, id, edited()?.as_ref())?,
                c.seq,
            )?;
            households.insert(id.to_string());
        }
        EntityKind::Person => {
            let p: Person = parse(kind, id, edited()?.as_ref())?;
            let old: Option<String> = tx
                .prepare_cached("SELECT household_id FROM people WHERE id = ?1")?
                .query_row([id.to_string()], |r| r.get(0))
                .optional()?;
            write_person(tx, &p, c.seq, old.is_none())?;
            households.insert(p.household_id.to_string());
            households.extend(old);
        }
        EntityKind::Visit => {
            let vi: Visit = parse(kind, id, v)?;
            write_visit(tx, &vi)?;
            households.insert(vi.household_id.to_string());
        }
        EntityKind::MediationSession => {
            let m: MediationSession = parse(kind, id, v)?;
            write_entry(tx, m.id, m.dispute_id, kind, v, &m.author, m.created_at)?;
        }
        EntityKind::EmergencyReport => {
            let r: EmergencyReport = parse(kind, id, v)?;
            write_entry(tx, r.id, r.emergency_id, kind, v, &r.author, r.created_at)?;
        }
        EntityKind::Reply => {
            let r: Reply = parse(kind, id, v)?;
            let new: bool = !tx
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM entries WHERE id = ?1)")?
                .query_row([id.to_string()], |r| r.get(0))?;
            write_entry(tx, r.id, r.record_id, kind, v, &r.author, r.created_at)?;
            if new && r.author != me {
                out.feedback += 1;
                if reader.news {
                    super::feedback::note_reply(tx, &r)?;
                }
            }
        }
        EntityKind::PatrolPoints => {
            // Stored once: looked up among its patrol's points (indexed by patrol).
            let points = parse::<PatrolPoints>(kind, id, v)?;
            let exists: bool = tx
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM patrol_points WHERE patrol_id = ?1 AND batch_id = ?2)",
                )?
                .query_row(params![points.patrol_id.to_string(), id.to_string()], |r| {
                    r.get(0)
                })?;
            if !exists {
                write_points(tx, &points)?;
            }
        }
        EntityKind::Conflict => {
            let cf: Conflict = parse(kind, id, v)?;
            let new: bool = !tx
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM conflicts WHERE id = ?1)")?
                .query_row([id.to_string()], |r| r.get(0))?;
            tx.prepare_cached("INSERT INTO conflicts (id, entity_kind, entity_id, field, kept, lost, kept_by, lost_by, kept_at,
                                        lost_at, created_at, settled_by, settled_at, version)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                 ON CONFLICT (id) DO UPDATE SET settled_by = excluded.settled_by,
                   settled_at = excluded.settled_at, version = excluded.version")?.execute(params![
                    cf.id.to_string(),
                    cf.entity_kind.code(),
                    cf.entity_id.to_string(),
                    cf.field,
                    cf.kept.to_string(),
                    cf.lost.to_string(),
                    cf.kept_by,
                    cf.lost_by,
                    ts(cf.kept_at),
                    ts(cf.lost_at),
                    ts(cf.created_at),
                    cf.settled_by,
                    cf.settled_at.map(ts),
                    c.seq
                ],
            )?;
            if new {
                out.conflicts.push(cf);
            }
        }
        k if k.is_record() => {
            let data = if c.partial {
                // Only the fields changed after the base: lay them over the stored record.
                let stored: Option<String> = tx
                    .prepare_cached("SELECT data FROM records WHERE id = ?1")?
                    .query_row([id.to_string()], |r| r.get(0))
                    .optional()?;
                let stored = stored.ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "the server sent changes to {k} {id}, which this device does not hold; enrol the device again"
                    ))
                })?;
                let mut whole: Map<String, Value> = serde_json::from_str(&stored)?;
                whole.extend(fields.clone());
                rebase(tx, id, &mut whole)?;
                Cow::Owned(Value::Object(whole))
            } else {
                edited()?
            };
            let domain = k.domain().expect("records have a domain");
            let rec = AnyRecord::from_json(domain, data.as_ref()).map_err(|e| {
                StoreError::Corrupt(format!(
                    "the server sent a {k} {id} this app cannot read: {e}"
                ))
            })?;
            let before: Option<String> = tx
                .prepare_cached("SELECT status FROM records WHERE id = ?1")?
                .query_row([id.to_string()], |r| r.get(0))
                .optional()?;
            write_record(tx, &rec, c.seq, now, before.is_none())?;
            if let Some(history) = &c.history {
                // Keep the earliest `history_kept` (the device holds them as of the base);
                // the rest, and any change made here since, become the server's. A record
                // new to this device has none to keep.
                if before.is_some() {
                    trim_history(tx, id, c.history_kept as usize)?;
                }
                for h in history {
                    write_status_change(tx, h)?;
                }
                let county_moved = history.last().filter(|h| h.actor != me);
                if let Some(h) = county_moved
                    && before.as_deref() != Some(rec.common().status.code())
                {
                    out.feedback += 1;
                    if reader.news && rec.common().author == me {
                        super::feedback::note_status(tx, h)?;
                    }
                }
            }
        }
        // Photos' bytes and audit entries do not come down.
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::domain::lifecycle::Status;
    use crate::domain::model::StatusChange;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, h, 0, 0).unwrap()
    }

    fn refusal(seq: i64, entry_seq: u64, message: &str, field: Option<&str>) -> Rejection {
        Rejection {
            seq,
            lane: Lane::Normal,
            entry_seq,
            kind: EntityKind::Hazard,
            record_id: crate::domain::model::new_id(),
            op: Op::Create,
            error: "invalid".into(),
            message: message.into(),
            field: field.map(str::to_owned),
            at: at(2),
        }
    }

    fn page(cursor: i64, changes: Vec<Change>, rejected: Vec<Rejection>) -> PullResponse {
        PullResponse {
            changes,
            cursor,
            base: 0,
            more: false,
            cadence: None,
            rejected,
        }
    }

    #[test]
    fn refusals_are_stored_once_listed_and_dismissed() {
        let mut s = Store::open_in_memory().unwrap();
        let scope = refusal(7, 3, "该网格不在你的范围内", Some("grid_id"));
        let bad = refusal(9, 4, "经度超出范围", Some("fields.location.lon"));
        let p = page(10, Vec::new(), vec![scope.clone(), bad.clone()]);
        assert_eq!(s.apply_pull(&p, at(3)).unwrap().rejected, 2);
        // The same page again (an answer lost, the pull repeated): nothing doubles.
        assert_eq!(s.apply_pull(&p, at(4)).unwrap().rejected, 0);
        let all = s.rejections(false).unwrap();
        assert_eq!(
            all.iter().map(|r| &r.rejection).collect::<Vec<_>>(),
            vec![&bad, &scope],
            "each once, newest first, as the server sent it"
        );
        assert!(all.iter().all(|r| r.seen_at.is_none()));

        s.dismiss_rejection(9, at(5)).unwrap();
        let open = s.rejections(true).unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].rejection, scope);
        // Dismissing again keeps the first time; the full list still has both.
        s.dismiss_rejection(9, at(6)).unwrap();
        let all = s.rejections(false).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].seen_at, Some(at(5)));
        assert!(matches!(
            s.dismiss_rejection(8, at(6)),
            Err(StoreError::NotFound { .. })
        ));
    }

    fn step(record: Uuid, from: Status, to: Status, h: u32, actor: &str) -> StatusChange {
        StatusChange {
            record_id: record,
            from,
            to,
            at: at(h),
            actor: actor.into(),
            note: None,
        }
    }

    fn hazard(grid: Uuid, status: Status) -> crate::domain::model::Hazard {
        use crate::domain::codes::{Domain, HazardCategory, Severity};
        use crate::domain::model::{Common, Hazard};
        let mut c = Common::new(Domain::Hazard, grid, "worker-a", at(1));
        c.status = status;
        Hazard {
            common: c,
            category: HazardCategory::CorridorEbike,
            severity: Severity::Medium,
            description: "楼道内电动车飞线充电".into(),
            place: "3组12号".into(),
            owner: None,
            due_date: None,
        }
    }

    #[test]
    fn a_reference_may_come_a_page_before_what_it_names_but_not_stay_dangling() {
        let (mut s, _) = crate::store::testing::store_with_grid();
        let g = s.grids().unwrap().remove(0);
        // A second grid changed after a record filed in it: the record comes first, on a page
        // of its own.
        let other = crate::domain::geo::Grid {
            id: Uuid::now_v7(),
            code: crate::domain::geo::GridCode::parse("361003100200002").unwrap(),
            name: "山下村第2网格".into(),
            ..g.clone()
        };
        let h = hazard(other.id, Status::Reported);
        let mut first = page(
            5,
            vec![Change::whole(5, EntityKind::Hazard, h.common.id, json!(h))],
            vec![],
        );
        first.more = true;
        s.apply_pull(&first, at(2)).unwrap();
        let second = page(
            6,
            vec![Change::whole(6, EntityKind::Grid, other.id, json!(other))],
            vec![],
        );
        s.apply_pull(&second, at(2)).unwrap();
        assert_eq!(s.grids().unwrap().len(), 2);
        assert_eq!(
            s.record::<crate::domain::model::Hazard>(h.common.id)
                .unwrap(),
            h
        );

        // A record in a grid the server never sent is an error, not silence: a pull of one
        // page is not stored at all...
        let lost = hazard(Uuid::now_v7(), Status::Reported);
        let lost_page = |seq, more| {
            let mut p = page(
                seq,
                vec![Change::whole(
                    seq,
                    EntityKind::Hazard,
                    lost.common.id,
                    json!(lost),
                )],
                vec![],
            );
            p.more = more;
            p
        };
        assert!(s.apply_pull(&lost_page(7, false), at(3)).is_err());
        assert_eq!(s.pull_cursor().unwrap(), 6);
        assert!(
            s.record::<crate::domain::model::Hazard>(lost.common.id)
                .is_err()
        );
        // ...and one of several fails at its end.
        s.apply_pull(&lost_page(7, true), at(3)).unwrap();
        let e = s.apply_pull(&page(8, vec![], vec![]), at(3)).unwrap_err();
        assert!(
            matches!(&e, StoreError::Corrupt(m) if m.contains("records") && m.contains("grids")),
            "{e}"
        );
    }

    #[test]
    fn the_countys_feedback_on_my_records_is_kept_once_until_read() {
        use crate::domain::model::Reply;
        let (mut s, grid) = crate::store::testing::store_with_grid();
        let h = hazard(grid, Status::Reported);
        let id = h.common.id;
        let mine = step(id, Status::Draft, Status::Reported, 1, "worker-a");
        let record = |seq, h: &crate::domain::model::Hazard, history: Vec<StatusChange>| Change {
            history: Some(history),
            history_kept: 0,
            ..Change::whole(
                seq,
                EntityKind::Hazard,
                id,
                serde_json::to_value(h).unwrap(),
            )
        };
        s.apply_pull(
            &page(1, vec![record(1, &h, vec![mine.clone()])], vec![]),
            at(2),
        )
        .unwrap();
        assert_eq!(
            s.unread_feedback().unwrap(),
            0,
            "my own filing is no feedback"
        );
        let mut moved = h.clone();
        moved.common.status = Status::Confirmed;
        let accept = StatusChange {
            note: Some("已受理".into()),
            ..step(id, Status::Reported, Status::Confirmed, 3, "secretary")
        };
        let reply = |author: &str, text: &str| Reply {
            id: crate::domain::model::new_id(),
            record_id: id,
            author: author.into(),
            text: text.into(),
            created_at: at(4),
        };
        let theirs = reply("secretary", "明天上午去看");
        let own = reply("worker-a", "好的");
        let change_of = |seq, r: &Reply| {
            Change::whole(
                seq,
                EntityKind::Reply,
                r.id,
                serde_json::to_value(r).unwrap(),
            )
        };
        let p = page(
            4,
            vec![
                record(2, &moved, vec![mine.clone(), accept.clone()]),
                change_of(3, &theirs),
                change_of(4, &own),
            ],
            vec![],
        );
        // The first sync (enrolment) brings the past, which is no news.
        let past = reply("secretary", "去年已整改过一次");
        s.apply_pull(&page(2, vec![change_of(2, &past)], vec![]), at(4))
            .unwrap();
        assert_eq!(s.unread_feedback().unwrap(), 0);
        // A device that has pulled before (its base is where that pull ended): news.
        let p = PullResponse { base: 2, ..p };
        s.apply_pull(&p, at(5)).unwrap();
        // The same page again (a retried pull) adds nothing.
        s.apply_pull(&p, at(5)).unwrap();
        assert_eq!(s.unread_feedback().unwrap(), 2);
        let items = s.feedback(10).unwrap();
        assert_eq!(items.len(), 2);
        assert!(items.iter().all(|i| i.record_id == id && !i.read));
        assert!(
            items
                .iter()
                .any(|i| i.status == Some(Status::Confirmed) && i.text == "已受理")
        );
        assert!(
            items
                .iter()
                .any(|i| i.text == "明天上午去看" && i.actor == "secretary")
        );
        // Opening the record reads them.
        assert_eq!(s.read_record_feedback(id, at(6)).unwrap(), 2);
        assert_eq!(s.unread_feedback().unwrap(), 0);
        assert!(s.feedback(10).unwrap().iter().all(|i| i.read));
    }

    #[test]
    fn a_record_reads_unsent_until_it_and_its_children_are_on_the_server() {
        use crate::domain::codes::ReportStage;
        use crate::domain::model::{Common, Emergency, EmergencyReport};
        let (mut s, grid) = crate::store::testing::store_with_grid();
        let h = hazard(grid, Status::Reported);
        s.create_record(&h, at(1)).unwrap();
        let e = Emergency {
            common: Common::new(
                crate::domain::codes::Domain::Emergency,
                grid,
                "worker-a",
                at(1),
            ),
            category: crate::domain::codes::EmergencyCategory::Natural,
            level: crate::domain::codes::EmergencyLevel::Iv,
            title: "山体滑坡".into(),
            occurred_at: at(1),
        };
        s.create_record(&e, at(1)).unwrap();
        let unsent = s.unsent_records().unwrap();
        assert!(unsent.contains(&h.common.id) && unsent.contains(&e.common.id));
        // Everything acknowledged: nothing unsent.
        for lane in [Lane::Urgent, Lane::Normal] {
            let last = s.outbox_last_seq(lane).unwrap();
            s.ack_outbox(lane, last).unwrap();
        }
        assert!(s.unsent_records().unwrap().is_empty());
        // A follow-up report waits: its emergency reads unsent again, the hazard does not.
        let rep = EmergencyReport {
            id: crate::domain::model::new_id(),
            emergency_id: e.common.id,
            stage: ReportStage::Update,
            text: "已疏散 12 户".into(),
            casualties: Some(0),
            author: "worker-a".into(),
            created_at: at(2),
        };
        s.add_emergency_report(&rep, at(2)).unwrap();
        assert!(s.is_unsent(e.common.id).unwrap());
        assert!(!s.is_unsent(h.common.id).unwrap());
    }

    #[test]
    fn a_pulled_history_replaces_what_came_after_the_kept_steps() {
        let (mut s, grid) = crate::store::testing::store_with_grid();
        let h = hazard(grid, Status::Rectifying);
        let id = h.common.id;
        let change = |seq, history: Vec<StatusChange>, kept| Change {
            history: Some(history),
            history_kept: kept,
            ..Change::whole(
                seq,
                EntityKind::Hazard,
                id,
                serde_json::to_value(&h).unwrap(),
            )
        };
        let three = vec![
            step(id, Status::Draft, Status::Reported, 1, "worker-a"),
            step(id, Status::Reported, Status::Confirmed, 2, "村书记"),
            step(id, Status::Confirmed, Status::Rectifying, 3, "村书记"),
        ];
        s.apply_pull(&page(1, vec![change(1, three.clone(), 0)], vec![]), at(4))
            .unwrap();
        assert_eq!(
            s.status_history(id).unwrap(),
            three,
            "a new record: all of it"
        );
        // The server kept the first two and replaced the third.
        let moved = step(id, Status::Confirmed, Status::Transferred, 5, "镇干部");
        s.apply_pull(
            &page(2, vec![change(2, vec![moved.clone()], 2)], vec![]),
            at(6),
        )
        .unwrap();
        assert_eq!(
            s.status_history(id).unwrap(),
            vec![three[0].clone(), three[1].clone(), moved.clone()]
        );
        // Keeping everything only adds; keeping nothing replaces it all.
        let back = step(id, Status::Transferred, Status::Closed, 7, "镇干部");
        s.apply_pull(
            &page(3, vec![change(3, vec![back.clone()], 3)], vec![]),
            at(8),
        )
        .unwrap();
        assert_eq!(s.status_history(id).unwrap().len(), 4);
        s.apply_pull(
            &page(4, vec![change(4, vec![back.clone()], 0)], vec![]),
            at(9),
        )
        .unwrap();
        assert_eq!(s.status_history(id).unwrap(), vec![back]);
    }

    #[test]
    fn refusals_are_stored_with_their_page_or_not_at_all() {
        let mut s = Store::open_in_memory().unwrap();
        // A partial change to a record this device does not hold fails the page.
        let broken = Change {
            seq: 5,
            kind: EntityKind::Hazard,
            id: crate::domain::model::new_id(),
            data: json!({"place": "村口"}),
            partial: true,
            history: None,
            history_kept: 0,
        };
        let p = page(5, vec![broken], vec![refusal(4, 1, "拒收", None)]);
        assert!(s.apply_pull(&p, at(3)).is_err());
        assert!(s.rejections(false).unwrap().is_empty());
        assert_eq!(s.pull_cursor().unwrap(), 0);
    }

    #[test]
    fn a_restored_county_database_is_pulled_whole_over_what_the_device_holds_and_nothing_doubles() {
        let (mut s, grid) = crate::store::testing::store_with_grid();
        let h = hazard(grid, Status::Reported);
        let id = h.common.id;
        s.create_record(&h, at(1)).unwrap();
        let sha = s
            .attach_photo(id, b"\xFF\xD8\xFFp", "image/jpeg", at(1))
            .unwrap();
        s.ack_outbox(Lane::Normal, 2).unwrap();
        s.mark_photo_uploaded(&sha).unwrap();
        let reply = |n: u32| Reply {
            id: Uuid::now_v7(),
            record_id: id,
            author: "secretary".into(),
            text: format!("第{n}次答复"),
            created_at: at(n),
        };
        let (first, second) = (reply(2), reply(3));
        let as_change = |seq: i64, r: &Reply| Change::whole(seq, EntityKind::Reply, r.id, json!(r));
        let mut stored = h.clone();
        stored.common.photos = vec![sha.clone()];
        let record = |seq: i64| Change {
            history: Some(vec![]),
            ..Change::whole(seq, EntityKind::Hazard, id, json!(stored))
        };
        // Generation one: the first pull (no news), then a reply that is news.
        assert!(!s.take_generation("one").unwrap());
        s.apply_pull(
            &page(10, vec![record(9), as_change(10, &first)], vec![]),
            at(4),
        )
        .unwrap();
        let mut later = page(
            12,
            vec![as_change(12, &second)],
            vec![refusal(11, 7, "拒收", None)],
        );
        later.base = 10;
        s.apply_pull(&later, at(5)).unwrap();
        assert_eq!(s.feedback(10).unwrap().len(), 1);
        // An edit waiting to go up.
        s.update_record::<crate::domain::model::Hazard>(id, |x| x.place = "3组14号".into(), at(6))
            .unwrap();

        // The same generation again changes nothing; another one resets the pull.
        assert!(!s.take_generation("one").unwrap());
        assert!(s.take_generation("two").unwrap());
        assert_eq!((s.pull_cursor().unwrap(), s.pull_base().unwrap()), (0, 0));
        assert!(s.restore_check_due().unwrap());
        assert_eq!(s.pending_photos().unwrap().len(), 1, "asked for again");
        assert!(s.rejections(false).unwrap()[0].rejection.seq < 0);

        // The restored database's whole pull: what the device holds, the same refusal under
        // the new sequence, and a new refusal under a number the old one had.
        let p = page(
            5,
            vec![record(3), as_change(4, &first), as_change(5, &second)],
            vec![
                refusal(2, 7, "拒收", None),
                refusal(11, 8, "经度超出范围", None),
            ],
        );
        let applied = s.apply_pull(&p, at(7)).unwrap();
        assert_eq!(applied.rejected, 1, "only the new refusal");
        assert_eq!(s.rejections(false).unwrap().len(), 2);
        assert_eq!(s.replies(id).unwrap().len(), 2);
        assert_eq!(s.feedback(10).unwrap().len(), 1, "no feedback noted twice");
        let now: crate::domain::model::Hazard = s.record(id).unwrap();
        assert_eq!(
            now.place, "3组14号",
            "the edit still waiting stays over the pull"
        );
        assert_eq!(s.outbox_len().unwrap(), 1);
        s.restore_checked().unwrap();
        assert!(!s.restore_check_due().unwrap());
    }
}
