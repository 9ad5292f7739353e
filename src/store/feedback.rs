//! The feedback inbox: what the county did on this worker's records since they last looked
//! (replies, status moves made by someone else), written once per change while a pull is
//! applied, read and marked read by the app; and which records still have something unsent,
//! and whether that is held at the village office.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::{Result, Store, StoreError, ts};
use crate::domain::codes::Coded;
use crate::domain::lifecycle::Status;
use crate::domain::model::{Reply, StatusChange};

/// Where a record with something not yet at the county stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsent {
    /// Something of it is only on this phone (待上传).
    Waiting,
    /// Everything of it not yet at the county is held at the village office, which forwards
    /// it (已交村办).
    Held,
}

/// What kind of feedback an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedbackKind {
    Reply,
    Status,
    /// A task the county gave (`record_id` is the task's id).
    Task,
}

/// One thing the county did on one of my records.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackItem {
    pub id: String,
    pub record_id: Uuid,
    pub kind: FeedbackKind,
    /// Who did it (an account name).
    pub actor: String,
    /// The status it moved to (status moves).
    pub status: Option<Status>,
    /// The reply, or the note of the move.
    pub text: String,
    pub at: DateTime<Utc>,
    pub read: bool,
}

/// Notes a reply someone else wrote on a record (once; inside the pull's transaction).
pub(crate) fn note_reply(tx: &Connection, r: &Reply) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO feedback (id, record_id, kind, actor, status, text, at)
         VALUES (?1, ?2, 'REPLY', ?3, NULL, ?4, ?5) ON CONFLICT (id) DO NOTHING",
    )?
    .execute(params![
        r.id.to_string(),
        r.record_id.to_string(),
        r.author,
        r.text,
        ts(r.created_at)
    ])?;
    Ok(())
}

/// Notes a status move someone else made on a record (once; inside the pull's transaction).
pub(crate) fn note_status(tx: &Connection, h: &StatusChange) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO feedback (id, record_id, kind, actor, status, text, at)
         VALUES (?1, ?2, 'STATUS', ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING",
    )?
    .execute(params![
        format!("status:{}:{}:{}", h.record_id, h.to.code(), ts(h.at)),
        h.record_id.to_string(),
        h.actor,
        h.to.code(),
        h.note.clone().unwrap_or_default(),
        ts(h.at)
    ])?;
    Ok(())
}

impl Store {
    /// The feedback inbox, unread first, newest first within each, at most `limit` items.
    pub fn feedback(&self, limit: usize) -> Result<Vec<FeedbackItem>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, record_id, kind, actor, status, text, at, read_at IS NOT NULL FROM feedback
             ORDER BY read_at IS NOT NULL, at DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, bool>(7)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, record, kind, actor, status, text, at, read) = row?;
            out.push(FeedbackItem {
                id,
                record_id: Uuid::parse_str(&record)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                kind: match kind.as_str() {
                    "REPLY" => FeedbackKind::Reply,
                    "TASK" => FeedbackKind::Task,
                    _ => FeedbackKind::Status,
                },
                actor,
                status: status.and_then(|s| Status::from_code(&s).ok()),
                text,
                at: DateTime::parse_from_rfc3339(&at)
                    .map_err(|e| StoreError::Corrupt(format!("feedback time {at}: {e}")))?
                    .with_timezone(&Utc),
                read,
            });
        }
        Ok(out)
    }

    /// How many feedback items the worker has not read.
    pub fn unread_feedback(&self) -> Result<u64> {
        Ok(self
            .conn
            .prepare_cached("SELECT count(*) FROM feedback WHERE read_at IS NULL")?
            .query_row([], |r| r.get::<_, i64>(0))? as u64)
    }

    /// Marks every feedback item of a record read (the worker opened it).
    pub fn read_record_feedback(&self, record: Uuid, now: DateTime<Utc>) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE feedback SET read_at = ?2 WHERE record_id = ?1 AND read_at IS NULL",
            params![record.to_string(), ts(now)],
        )?)
    }

    /// Marks everything read.
    pub fn read_all_feedback(&self, now: DateTime<Utc>) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE feedback SET read_at = ?1 WHERE read_at IS NULL",
            [ts(now)],
        )?)
    }

    /// The records with something not yet on the server: an outbox entry of the record or of
    /// a child of it (a mediation session, an emergency report, a patrol's track, a photo), or
    /// a photo it names not uploaded yet. One pass over the outbox, for a whole list. Those
    /// held at the village office are among them: the county does not have them yet.
    pub fn unsent_records(&self) -> Result<HashSet<Uuid>> {
        Ok(self.unsent_states()?.into_keys().collect())
    }

    /// [`Store::unsent_records`] with where each stands: [`Unsent::Held`] when everything of
    /// it not yet at the county is held at the village office (its entries, and its photos the
    /// office has whole), [`Unsent::Waiting`] while anything of it is still only on this phone.
    pub fn unsent_states(&self) -> Result<HashMap<Uuid, Unsent>> {
        let mut out = HashMap::new();
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, max(waiting) FROM (
               SELECT coalesce(json_extract(fields, '$.dispute_id'), json_extract(fields, '$.emergency_id'),
                               json_extract(fields, '$.patrol_id'), json_extract(fields, '$.record_id'),
                               record_id) AS id, held_at IS NULL AS waiting
               FROM outbox
               UNION ALL
               SELECT r.id, p.held_at IS NULL FROM records r, json_each(r.data, '$.photos') j
               JOIN photos p ON p.sha256 = j.value WHERE p.uploaded = 0)
             GROUP BY id",
        )?;
        for row in stmt.query_map([], |r| {
            Ok((r.get::<_, Option<String>>(0)?, r.get::<_, bool>(1)?))
        })? {
            let (id, waiting) = row?;
            if let Some(id) = id.and_then(|s| Uuid::parse_str(&s).ok()) {
                out.insert(
                    id,
                    if waiting {
                        Unsent::Waiting
                    } else {
                        Unsent::Held
                    },
                );
            }
        }
        Ok(out)
    }

    /// Whether one record has something not yet on the server.
    pub fn is_unsent(&self, record: Uuid) -> Result<bool> {
        Ok(self.unsent_state(record)?.is_some())
    }

    /// Where one record stands on its way to the county (`None`: all of it is there).
    pub fn unsent_state(&self, record: Uuid) -> Result<Option<Unsent>> {
        Ok(self.unsent_states()?.get(&record).copied())
    }

    /// The record a feedback item belongs to, if this device holds it.
    pub fn feedback_record(&self, id: &str) -> Result<Option<Uuid>> {
        Ok(self
            .conn
            .query_row("SELECT record_id FROM feedback WHERE id = ?1", [id], |r| {
                r.get::<_, String>(0)
            })
            .optional()?
            .and_then(|s| Uuid::parse_str(&s).ok()))
    }
}
