//! The outbox: every local write, appended in the same transaction as the write itself.
//!
//! Sequence numbers are dense per lane and never reused: `outbox_seq` remembers the last one
//! handed out, so acknowledging entries leaves the numbering intact. Sync pushes the entries
//! exactly as stored and takes them out of the outbox only when the server acknowledges them.
//!
//! Acknowledged entries are kept a while (`outbox_acked`): [`ACKED_KEEP_DAYS`] after the
//! acknowledgement, and never fewer than the lane's last [`ACKED_KEEP_LAST`]. A county
//! database restored from a backup has lost what it acknowledged after the backup; the device
//! puts those entries back in the outbox ([`Store::requeue_acked`]) and pushes them again.
//!
//! An entry a village office's relay took is *held* (`held_at`, [`Store::hold`]): it stays in
//! the outbox until the county's own acknowledgement covers it, is not sent to the relay
//! again, and is sent to the county like any other waiting entry.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use serde::Serialize;
use uuid::Uuid;

use super::{Result, Store, code, time, ts, uuid};
use crate::domain::codes::Coded;
use crate::domain::model::EntityKind;
use crate::wire::{Lane, Op, OutboxEntry, RawFields};

/// Acknowledged entries are kept this many days after the server acknowledged them: longer
/// than a county would take to notice a lost database and restore last night's backup.
pub const ACKED_KEEP_DAYS: i64 = 30;
/// ... and never fewer than this many of a lane's last, however old: a phone that syncs
/// rarely still reaches back past the backup before its last syncs.
pub const ACKED_KEEP_LAST: u64 = 1_000;

/// The columns of an entry, in `outbox` and `outbox_acked` alike.
const ENTRY: &str = "lane, seq, kind, record_id, op, fields, base_version, edited_at";

/// Appends one entry; returns its sequence number. Call inside the write's transaction.
pub(crate) fn append(
    conn: &Connection,
    kind: EntityKind,
    record_id: Uuid,
    op: Op,
    fields: serde_json::Map<String, serde_json::Value>,
    base_version: i64,
    edited_at: DateTime<Utc>,
) -> Result<u64> {
    let lane = Lane::for_kind(kind);
    let seq: i64 = conn
        .prepare_cached(
            "UPDATE outbox_seq SET last_seq = last_seq + 1 WHERE lane = ?1 RETURNING last_seq",
        )?
        .query_row([lane.code()], |r| r.get(0))?;
    conn.prepare_cached(
        "INSERT INTO outbox (lane, seq, kind, record_id, op, fields, base_version, edited_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        lane.code(),
        seq,
        kind.code(),
        record_id.to_string(),
        op.code(),
        serde_json::Value::Object(fields).to_string(),
        base_version,
        ts(edited_at),
    ])?;
    Ok(seq as u64)
}

/// Every field of a value that serialises to a JSON object.
pub(crate) fn all_fields<T: Serialize>(
    value: &T,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    match serde_json::to_value(value)? {
        serde_json::Value::Object(m) => Ok(m),
        other => Err(super::StoreError::Corrupt(format!(
            "expected an object, got {other}"
        ))),
    }
}

/// The fields whose values differ between `old` and `new` (both JSON objects).
pub(crate) fn changed_fields(
    old: &serde_json::Map<String, serde_json::Value>,
    new: &serde_json::Map<String, serde_json::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    new.iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .chain(
            old.keys()
                .filter(|k| !new.contains_key(*k))
                .map(|k| (k.clone(), serde_json::Value::Null)),
        )
        .collect()
}

impl Store {
    /// Pending entries of a lane, oldest first, at most `limit`.
    pub fn outbox(&self, lane: Lane, limit: usize) -> Result<Vec<OutboxEntry>> {
        self.outbox_with(lane, limit, |json| match serde_json::from_str(&json)? {
            serde_json::Value::Object(m) => Ok(m),
            _ => Err(super::StoreError::Corrupt(
                "outbox fields not an object".into(),
            )),
        })
    }

    /// [`Store::outbox`] as a push sends it: the fields as the outbox holds them, checked to
    /// be a JSON object but not parsed.
    pub fn outbox_to_push(&self, lane: Lane, limit: usize) -> Result<Vec<OutboxEntry<RawFields>>> {
        self.outbox_to_push_at(lane, limit, false)
    }

    /// [`Store::outbox_to_push`], leaving out the entries held at the village office when
    /// `skip_held` (a push to the relay, which has them already).
    pub fn outbox_to_push_at(
        &self,
        lane: Lane,
        limit: usize,
        skip_held: bool,
    ) -> Result<Vec<OutboxEntry<RawFields>>> {
        self.outbox_where(lane, limit, skip_held, |json| {
            RawFields::from_json(json)
                .map_err(|e| super::StoreError::Corrupt(format!("outbox fields: {e}")))
        })
    }

    fn outbox_with<F>(
        &self,
        lane: Lane,
        limit: usize,
        fields: impl Fn(String) -> Result<F>,
    ) -> Result<Vec<OutboxEntry<F>>> {
        self.outbox_where(lane, limit, false, fields)
    }

    fn outbox_where<F>(
        &self,
        lane: Lane,
        limit: usize,
        skip_held: bool,
        fields: impl Fn(String) -> Result<F>,
    ) -> Result<Vec<OutboxEntry<F>>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT lane, seq, kind, record_id, op, fields, base_version, edited_at
             FROM outbox WHERE lane = ?1 AND (?3 = 0 OR held_at IS NULL) ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![lane.code(), limit as i64, skip_held], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, String>(7)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (lane, seq, kind, id, op, json, base, at) = row?;
            out.push(OutboxEntry {
                lane: code(&lane)?,
                seq: seq as u64,
                kind: code(&kind)?,
                record_id: uuid(&id)?,
                op: code(&op)?,
                fields: fields(json)?,
                base_version: base,
                edited_at: time(&at)?,
            });
        }
        Ok(out)
    }

    /// How many entries wait to be pushed, in all lanes.
    pub fn outbox_len(&self) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// How many waiting entries, in all lanes, are held at the village office.
    pub fn held_len(&self) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM outbox WHERE held_at IS NOT NULL",
            [],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// The village office's relay holds the entries of a lane up to and including `seq`
    /// (已交村办, a push answer's `held_through`): they stay in the outbox, marked held at
    /// `now` (the first time), until the county's acknowledgement ([`Store::acknowledge`])
    /// takes them out. How many were newly marked.
    pub fn hold(&mut self, lane: Lane, seq: u64, now: DateTime<Utc>) -> Result<usize> {
        Ok(self
            .conn
            .prepare_cached(
                "UPDATE outbox SET held_at = ?3
                 WHERE lane = ?1 AND seq <= ?2 AND held_at IS NULL",
            )?
            .execute(params![lane.code(), seq as i64, ts(now)])?)
    }

    /// The relay does not have the entries of a lane from `from` on after all (it expects an
    /// earlier one: it lost them): they are no longer held and go to it again. How many.
    pub fn unhold(&mut self, lane: Lane, from: u64) -> Result<usize> {
        Ok(self
            .conn
            .prepare_cached(
                "UPDATE outbox SET held_at = NULL
                 WHERE lane = ?1 AND seq >= ?2 AND held_at IS NOT NULL",
            )?
            .execute(params![lane.code(), from as i64])?)
    }

    /// The last sequence number handed out in a lane.
    pub fn outbox_last_seq(&self, lane: Lane) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT last_seq FROM outbox_seq WHERE lane = ?1",
            [lane.code()],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// [`Store::acknowledge`] now, by this device's clock.
    pub fn ack_outbox(&mut self, lane: Lane, seq: u64) -> Result<usize> {
        self.acknowledge(lane, seq, Utc::now())
    }

    /// The server has the entries of a lane up to and including `seq`: they leave the outbox
    /// and are kept as acknowledged at `now`; those past keeping go (see [`ACKED_KEEP_DAYS`],
    /// [`ACKED_KEEP_LAST`]). How many left the outbox.
    pub fn acknowledge(&mut self, lane: Lane, seq: u64, now: DateTime<Utc>) -> Result<usize> {
        let (lane, seq) = (lane.code(), seq as i64);
        self.tx(|tx| {
            tx.prepare_cached(&format!(
                "INSERT INTO outbox_acked ({ENTRY}, acked_at)
                 SELECT {ENTRY}, ?3 FROM outbox WHERE lane = ?1 AND seq <= ?2"
            ))?
            .execute(params![lane, seq, ts(now)])?;
            let n = tx
                .prepare_cached("DELETE FROM outbox WHERE lane = ?1 AND seq <= ?2")?
                .execute(params![lane, seq])?;
            tx.prepare_cached(
                "DELETE FROM outbox_acked WHERE lane = ?1 AND acked_at < ?2
                   AND seq <= (SELECT max(seq) FROM outbox_acked WHERE lane = ?1) - ?3",
            )?
            .execute(params![
                lane,
                ts(now - chrono::Duration::days(ACKED_KEEP_DAYS)),
                ACKED_KEEP_LAST as i64
            ])?;
            Ok(n)
        })
    }

    /// How many acknowledged entries are kept, in all lanes.
    pub fn acked_len(&self) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM outbox_acked", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// Puts the acknowledged entries of `lane` from `from` on back in the outbox, to be pushed
    /// again: the server lost them (its database was restored from a backup older than their
    /// acknowledgement). The photos they name are marked not uploaded, so each is asked for
    /// again. How many went back; `None` if the kept entries do not reach back to `from`
    /// (pruned, or acknowledged before this device kept them), and then nothing moves.
    pub fn requeue_acked(&mut self, lane: Lane, from: u64) -> Result<Option<usize>> {
        let lane = lane.code();
        let from = from.max(1) as i64;
        self.tx(|tx| {
            // Up to the first entry still waiting (or the last handed out, if none waits).
            let upto: i64 = tx
                .prepare_cached(
                    "SELECT coalesce((SELECT min(seq) FROM outbox WHERE lane = ?1),
                                     (SELECT last_seq + 1 FROM outbox_seq WHERE lane = ?1)) - 1",
                )?
                .query_row([lane], |r| r.get(0))?;
            if from > upto {
                return Ok(Some(0));
            }
            let kept: i64 = tx
                .prepare_cached(
                    "SELECT count(*) FROM outbox_acked WHERE lane = ?1 AND seq BETWEEN ?2 AND ?3",
                )?
                .query_row(params![lane, from, upto], |r| r.get(0))?;
            if kept != upto - from + 1 {
                return Ok(None);
            }
            tx.prepare_cached(&format!(
                "INSERT INTO outbox ({ENTRY})
                 SELECT {ENTRY} FROM outbox_acked WHERE lane = ?1 AND seq BETWEEN ?2 AND ?3"
            ))?
            .execute(params![lane, from, upto])?;
            tx.prepare_cached(
                "DELETE FROM outbox_acked WHERE lane = ?1 AND seq BETWEEN ?2 AND ?3",
            )?
            .execute(params![lane, from, upto])?;
            // A photo entry names its photo by `sha256`, a record by its `photos` list: either
            // way the hash is in the entry's fields.
            tx.prepare_cached(
                "UPDATE photos SET uploaded = 0 WHERE uploaded = 1 AND EXISTS (
                   SELECT 1 FROM outbox o WHERE o.lane = ?1 AND o.seq BETWEEN ?2 AND ?3
                      AND instr(o.fields, photos.sha256) > 0)",
            )?
            .execute(params![lane, from, upto])?;
            Ok(Some((upto - from + 1) as usize))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changed_fields_lists_new_values_and_removed_keys() {
        let old = json!({"a": 1, "b": "x", "c": true});
        let new = json!({"a": 1, "b": "y", "d": 2});
        let ch = changed_fields(old.as_object().unwrap(), new.as_object().unwrap());
        assert_eq!(
            serde_json::Value::Object(ch),
            json!({"b": "y", "d": 2, "c": null})
        );
    }

    #[test]
    fn sequence_numbers_stay_dense_across_acknowledgements() {
        let mut s = Store::open_in_memory().unwrap();
        let now = Utc::now();
        for _ in 0..3 {
            s.tx(|tx| {
                append(
                    tx,
                    EntityKind::Hazard,
                    Uuid::now_v7(),
                    Op::Create,
                    Default::default(),
                    0,
                    now,
                )
            })
            .unwrap();
        }
        s.ack_outbox(Lane::Normal, 2).unwrap();
        let seq = s
            .tx(|tx| {
                append(
                    tx,
                    EntityKind::Hazard,
                    Uuid::now_v7(),
                    Op::Create,
                    Default::default(),
                    0,
                    now,
                )
            })
            .unwrap();
        assert_eq!(seq, 4);
        let pending: Vec<u64> = s
            .outbox(Lane::Normal, 10)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(pending, vec![3, 4]);
        let urgent = s
            .tx(|tx| {
                append(
                    tx,
                    EntityKind::Emergency,
                    Uuid::now_v7(),
                    Op::Create,
                    Default::default(),
                    0,
                    now,
                )
            })
            .unwrap();
        assert_eq!(urgent, 1, "the urgent lane counts on its own");
    }

    fn hazard(grid: Uuid, at: DateTime<Utc>) -> crate::domain::model::Hazard {
        use crate::domain::codes::{Domain, HazardCategory, Severity};
        use crate::domain::model::{Common, Hazard};
        Hazard {
            common: Common::new(Domain::Hazard, grid, "worker-a", at),
            category: HazardCategory::Fire,
            severity: Severity::Low,
            description: "楼道堆放杂物".into(),
            place: "2号楼".into(),
            owner: None,
            due_date: None,
        }
    }

    fn seqs(s: &Store) -> Vec<u64> {
        s.outbox(Lane::Normal, 100)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect()
    }

    #[test]
    fn acknowledged_entries_are_kept_and_go_back_to_a_server_that_lost_them() {
        let (mut s, grid) = crate::store::testing::store_with_grid();
        let now: DateTime<Utc> = "2026-11-29T09:30:00Z".parse().unwrap();
        let h = hazard(grid, now);
        s.create_record(&h, now).unwrap(); // 1
        let sha = s
            .attach_photo(h.common.id, b"\xFF\xD8\xFFphoto", "image/jpeg", now)
            .unwrap(); // 2
        s.create_record(&hazard(grid, now), now).unwrap(); // 3
        assert_eq!(s.acknowledge(Lane::Normal, 3, now).unwrap(), 3);
        s.mark_photo_uploaded(&sha).unwrap();
        s.create_record(&hazard(grid, now), now).unwrap(); // 4, not pushed yet
        assert_eq!((s.outbox_len().unwrap(), s.acked_len().unwrap()), (1, 3));
        assert!(s.pending_photos().unwrap().is_empty());
        // What waits is what it was: the kept entries are nowhere else.
        assert_eq!(seqs(&s), vec![4]);
        assert!(s.unsent_records().unwrap().len() == 1);

        // A server restored to before entry 2 expects it next: 2 and 3 go back, in order
        // before 4, and the photo entry 2 names is asked for again.
        assert_eq!(s.requeue_acked(Lane::Normal, 2).unwrap(), Some(2));
        assert_eq!(seqs(&s), vec![2, 3, 4]);
        assert_eq!(s.acked_len().unwrap(), 1);
        assert_eq!(s.pending_photos().unwrap()[0].sha256, sha);
        let e = &s.outbox(Lane::Normal, 1).unwrap()[0];
        assert_eq!((e.kind, e.op), (EntityKind::Photo, Op::Append));
        // A server that already has everything: nothing moves.
        assert_eq!(s.requeue_acked(Lane::Normal, 5).unwrap(), Some(0));
        // Before what is kept: nothing moves, and the caller says so.
        s.conn
            .execute("DELETE FROM outbox_acked WHERE seq = 1", [])
            .unwrap();
        assert_eq!(s.requeue_acked(Lane::Normal, 1).unwrap(), None);
        assert_eq!(seqs(&s), vec![2, 3, 4]);
    }

    #[test]
    fn entries_held_at_the_office_wait_for_the_county_and_are_not_sent_there_again() {
        use crate::store::feedback::Unsent;
        let (mut s, grid) = crate::store::testing::store_with_grid();
        let now: DateTime<Utc> = "2026-11-29T09:30:00Z".parse().unwrap();
        let a = hazard(grid, now);
        s.create_record(&a, now).unwrap(); // 1
        let sha = s
            .attach_photo(a.common.id, b"\xFF\xD8\xFFphoto", "image/jpeg", now)
            .unwrap(); // 2
        let b = hazard(grid, now);
        s.create_record(&b, now).unwrap(); // 3
        let states = s.unsent_states().unwrap();
        assert_eq!(states.get(&a.common.id), Some(&Unsent::Waiting));

        // The relay holds 1 and 2, and the photo whole: record a is 已交村办, b still waits.
        assert_eq!(s.hold(Lane::Normal, 2, now).unwrap(), 2);
        s.mark_photo_held(&sha, now).unwrap();
        let states = s.unsent_states().unwrap();
        assert_eq!(states.get(&a.common.id), Some(&Unsent::Held));
        assert_eq!(states.get(&b.common.id), Some(&Unsent::Waiting));
        assert_eq!((s.outbox_len().unwrap(), s.held_len().unwrap()), (3, 2));
        // The relay is sent only what it lacks; the county everything waiting.
        let to = |s: &Store, skip| -> Vec<u64> {
            s.outbox_to_push_at(Lane::Normal, 10, skip)
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect()
        };
        assert_eq!((to(&s, true), to(&s, false)), (vec![3], vec![1, 2, 3]));
        assert!(s.pending_photos_at(true).unwrap().is_empty());
        assert_eq!(s.pending_photos().unwrap()[0].sha256, sha);
        // Held again (a replayed answer): the first time stays, nothing newly marked.
        assert_eq!(s.hold(Lane::Normal, 2, now).unwrap(), 0);
        // The photo alone still only on the phone keeps the record waiting.
        s.conn
            .execute("UPDATE photos SET held_at = NULL", [])
            .unwrap();
        assert_eq!(s.unsent_state(a.common.id).unwrap(), Some(Unsent::Waiting));
        s.mark_photo_held(&sha, now).unwrap();

        // The county acknowledges through 2 (the relay forwarded them, or the phone pushed
        // them there): they leave the outbox; the photo goes once the county has it.
        assert_eq!(s.acknowledge(Lane::Normal, 2, now).unwrap(), 2);
        assert_eq!((s.outbox_len().unwrap(), s.held_len().unwrap()), (1, 0));
        assert_eq!(s.unsent_state(a.common.id).unwrap(), Some(Unsent::Held));
        s.mark_photo_uploaded(&sha).unwrap();
        assert_eq!(s.unsent_state(a.common.id).unwrap(), None);
        assert!(s.pending_photos().unwrap().is_empty());

        // A relay that lost what it held (it expects 3 again) gets it again.
        s.hold(Lane::Normal, 3, now).unwrap();
        assert!(to(&s, true).is_empty());
        assert_eq!(s.unhold(Lane::Normal, 3).unwrap(), 1);
        assert_eq!(to(&s, true), vec![3]);
        // An acknowledged entry put back for a restored county is waiting, not held.
        s.hold(Lane::Normal, 3, now).unwrap();
        s.acknowledge(Lane::Normal, 3, now).unwrap();
        assert_eq!(s.requeue_acked(Lane::Normal, 3).unwrap(), Some(1));
        assert_eq!((to(&s, true), s.held_len().unwrap()), (vec![3], 0));
    }

    #[test]
    fn acknowledged_entries_go_after_thirty_days_but_the_last_thousand_stay() {
        let (mut s, grid) = crate::store::testing::store_with_grid();
        let start: DateTime<Utc> = "2026-01-01T08:00:00Z".parse().unwrap();
        let n = ACKED_KEEP_LAST + 200;
        for i in 0..n {
            s.create_record(&hazard(grid, start), start).unwrap();
            if i % 100 == 99 {
                s.acknowledge(Lane::Normal, i + 1, start).unwrap();
            }
        }
        assert_eq!(s.acked_len().unwrap(), n, "all within 30 days");
        // Forty days on: only the last thousand of the old ones stay.
        s.create_record(&hazard(grid, start), start).unwrap();
        let later = start + chrono::Duration::days(40);
        s.acknowledge(Lane::Normal, n + 1, later).unwrap();
        assert_eq!(s.acked_len().unwrap(), ACKED_KEEP_LAST);
        assert_eq!(
            s.requeue_acked(Lane::Normal, n + 1 - ACKED_KEEP_LAST + 1)
                .unwrap(),
            Some(ACKED_KEEP_LAST as usize)
        );
        assert_eq!(s.outbox_len().unwrap(), ACKED_KEEP_LAST);
    }
}
