//! Applying a pulled page and its cursor in one transaction: each change written as the
//! store keeps its kind, edits still waiting in the outbox laid over what came down, the
//! county's history of a record put in place of the device's, the feedback and conflicts
//! noted, the refusals kept, and the households' summaries brought up to date.

use std::borrow::Cow;
use std::collections::HashSet;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{Applied, LAST_SYNC, PULL_BASE, PULL_CURSOR};
use crate::domain::codes::Coded;
use crate::domain::geo::Grid;
use crate::domain::model::{
    AnyRecord, Conflict, EmergencyReport, EntityKind, House, Household, MediationSession,
    PatrolPoints, Person, Reply, Visit,
};
use crate::store::people::{
    Cadence, refresh_all_summaries, refresh_summary, write_house, write_household, write_person,
    write_visit,
};
use crate::store::records::{write_entry, write_points, write_record, write_status_change};
use crate::store::scope::write_grid;
use crate::store::{Result, Store, StoreError, ts, uuid};
use crate::wire::{Change, Op, PullResponse, Rejection};

impl Store {
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
            crate::store::set_meta(tx, PULL_CURSOR, &page.cursor.to_string())?;
            if page.more {
                // Later pages of this pull are relative to the same base.
                crate::store::set_meta(tx, PULL_BASE, &page.base.to_string())?;
            } else {
                tx.prepare_cached("DELETE FROM meta WHERE key = ?1")?
                    .execute([PULL_BASE])?;
            }
            crate::store::set_meta(tx, LAST_SYNC, &ts(now))?;
            Ok(out)
        })
    }
}

fn parse<T: serde::de::DeserializeOwned>(kind: EntityKind, id: Uuid, v: &Value) -> Result<T> {
    T::deserialize(v).map_err(|e| {
        StoreError::Corrupt(format!(
            "the server sent a {kind} {id} this app cannot read: {e}"
        ))
    })
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

/// Writes one pulled change as the store keeps its kind; notes the households whose summary
/// it touches, and in `out` the feedback and new conflicts it brings.
fn apply_change(
    tx: &rusqlite::Connection,
    c: &Change,
    reader: &Reader,
    now: DateTime<Utc>,
    households: &mut HashSet<String>,
    pending: &HashSet<Uuid>,
    out: &mut Applied,
) -> Result<()> {
    let (kind, id, v) = (c.kind, c.id, &c.data);
    let Value::Object(fields) = v else {
        return Err(StoreError::Corrupt(format!(
            "the server sent {kind} {id} without data"
        )));
    };
    // What the server sent, with the worker's edits still in the outbox laid over it (for
    // the kinds a worker edits).
    let edited = || with_outbox_edits(tx, pending, id, v, fields);
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
            apply_person(tx, id, &p, c.seq, households)?;
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
        EntityKind::Reply => apply_reply(tx, id, &parse(kind, id, v)?, v, reader, out)?,
        EntityKind::PatrolPoints => apply_points(tx, id, &parse(kind, id, v)?)?,
        EntityKind::Conflict => {
            let cf: Conflict = parse(kind, id, v)?;
            if write_conflict(tx, id, &cf, c.seq)? {
                out.conflicts.push(cf);
            }
        }
        EntityKind::Task => {
            let t: crate::domain::model::Task = parse(kind, id, v)?;
            crate::store::tasks::apply_task(tx, &t, c.seq, reader.me, reader.news)?;
        }
        k if k.is_record() => {
            let data = if c.partial {
                with_stored_record(tx, k, id, fields)?
            } else {
                edited()?
            };
            apply_record(tx, c, k, data.as_ref(), reader, now, out)?;
        }
        // Photos' bytes and audit entries do not come down.
        _ => {}
    }
    Ok(())
}

/// What the server sent, with the edits still in the outbox for it laid over it (a copy only
/// when there are any).
fn with_outbox_edits<'v>(
    tx: &rusqlite::Connection,
    pending: &HashSet<Uuid>,
    id: Uuid,
    v: &'v Value,
    fields: &Map<String, Value>,
) -> Result<Cow<'v, Value>> {
    if !pending.contains(&id) {
        return Ok(Cow::Borrowed(v));
    }
    let mut data = fields.clone();
    rebase(tx, id, &mut data)?;
    Ok(Cow::Owned(Value::Object(data)))
}

/// A partial change (only the fields changed after the base) laid over the stored record,
/// with the edits still in the outbox over both.
fn with_stored_record(
    tx: &rusqlite::Connection,
    k: EntityKind,
    id: Uuid,
    fields: &Map<String, Value>,
) -> Result<Cow<'static, Value>> {
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
    Ok(Cow::Owned(Value::Object(whole)))
}

/// A person, and the households whose summaries change: the one they are in, and the one
/// they were in.
fn apply_person(
    tx: &rusqlite::Connection,
    id: Uuid,
    p: &Person,
    seq: i64,
    households: &mut HashSet<String>,
) -> Result<()> {
    let old: Option<String> = tx
        .prepare_cached("SELECT household_id FROM people WHERE id = ?1")?
        .query_row([id.to_string()], |r| r.get(0))
        .optional()?;
    write_person(tx, p, seq, old.is_none())?;
    households.insert(p.household_id.to_string());
    households.extend(old);
    Ok(())
}

/// A reply on a record: someone else's new reply is feedback (noted in the inbox unless it
/// is the device's first pull).
fn apply_reply(
    tx: &rusqlite::Connection,
    id: Uuid,
    r: &Reply,
    v: &Value,
    reader: &Reader,
    out: &mut Applied,
) -> Result<()> {
    let new: bool = !tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM entries WHERE id = ?1)")?
        .query_row([id.to_string()], |r| r.get(0))?;
    write_entry(
        tx,
        r.id,
        r.record_id,
        EntityKind::Reply,
        v,
        &r.author,
        r.created_at,
    )?;
    if new && r.author != reader.me {
        out.feedback += 1;
        if reader.news {
            crate::store::feedback::note_reply(tx, r)?;
        }
    }
    Ok(())
}

/// A batch of patrol track points, stored once: looked up among its patrol's points (indexed
/// by patrol).
fn apply_points(tx: &rusqlite::Connection, id: Uuid, points: &PatrolPoints) -> Result<()> {
    let exists: bool = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM patrol_points WHERE patrol_id = ?1 AND batch_id = ?2)",
        )?
        .query_row(params![points.patrol_id.to_string(), id.to_string()], |r| {
            r.get(0)
        })?;
    if !exists {
        write_points(tx, points)?;
    }
    Ok(())
}

/// Stores a conflict, or its settlement; true if it was new to this device.
fn write_conflict(tx: &rusqlite::Connection, id: Uuid, cf: &Conflict, seq: i64) -> Result<bool> {
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
            seq
        ],
    )?;
    Ok(new)
}

/// An event record (`data`, whole), and the server's history of it in place of what came
/// after the steps the device keeps; a move the county made is feedback.
fn apply_record(
    tx: &rusqlite::Connection,
    c: &Change,
    k: EntityKind,
    data: &Value,
    reader: &Reader,
    now: DateTime<Utc>,
    out: &mut Applied,
) -> Result<()> {
    let id = c.id;
    let domain = k.domain().expect("records have a domain");
    let rec = AnyRecord::from_json(domain, data).map_err(|e| {
        StoreError::Corrupt(format!(
            "the server sent a {k} {id} this app cannot read: {e}"
        ))
    })?;
    let before: Option<String> = tx
        .prepare_cached("SELECT status FROM records WHERE id = ?1")?
        .query_row([id.to_string()], |r| r.get(0))
        .optional()?;
    write_record(tx, &rec, c.seq, now, before.is_none())?;
    let Some(history) = &c.history else {
        return Ok(());
    };
    // Keep the earliest `history_kept` (the device holds them as of the base); the rest, and
    // any change made here since, become the server's. A record new to this device has none
    // to keep.
    if before.is_some() {
        trim_history(tx, id, c.history_kept as usize)?;
    }
    for h in history {
        write_status_change(tx, h)?;
    }
    let county_moved = history.last().filter(|h| h.actor != reader.me);
    if let Some(h) = county_moved
        && before.as_deref() != Some(rec.common().status.code())
    {
        out.feedback += 1;
        if reader.news && rec.common().author == reader.me {
            crate::store::feedback::note_status(tx, h)?;
        }
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
    use crate::wire::Lane;

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
