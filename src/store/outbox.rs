//! The outbox: every local write, appended in the same transaction as the write itself.
//!
//! Sequence numbers are dense per lane and never reused: `outbox_seq` remembers the last one
//! handed out, so acknowledging (deleting) entries leaves the numbering intact. Sync pushes
//! the entries exactly as stored and deletes them only when the server acknowledges them.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use serde::Serialize;
use uuid::Uuid;

use super::{Result, Store, code, time, ts, uuid};
use crate::domain::codes::Coded;
use crate::domain::model::EntityKind;
use crate::wire::{Lane, Op, OutboxEntry, RawFields};

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
        self.outbox_with(lane, limit, |json| {
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
        let mut stmt = self.conn.prepare_cached(
            "SELECT lane, seq, kind, record_id, op, fields, base_version, edited_at
             FROM outbox WHERE lane = ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![lane.code(), limit as i64], |r| {
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

    /// The last sequence number handed out in a lane.
    pub fn outbox_last_seq(&self, lane: Lane) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT last_seq FROM outbox_seq WHERE lane = ?1",
            [lane.code()],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// Deletes the entries of a lane up to and including `seq`: the server has them.
    pub fn ack_outbox(&mut self, lane: Lane, seq: u64) -> Result<usize> {
        Ok(self
            .conn
            .prepare_cached("DELETE FROM outbox WHERE lane = ?1 AND seq <= ?2")?
            .execute(params![lane.code(), seq as i64])?)
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
}
