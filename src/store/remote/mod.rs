//! The device side of sync that touches the store: applying a pulled page together with its
//! cursor in one transaction (rebasing edits still waiting in the outbox on top), the
//! enrolment settings, photos waiting for upload, conflicts, and the pushed entries the server
//! refused after acknowledging them (rejections, until the worker dismisses them).

use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::Serialize;
use uuid::Uuid;

use super::{Result, Store, StoreError, code, ts, uuid};
use crate::domain::model::Conflict;
use crate::wire::{Lane, Op, Rejection};

mod apply;

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

/// The village office's relay (its address, as the county named it at sign-in or the worker
/// typed it in Settings): a sync goes there when it answers, to the county otherwise.
pub const RELAY_URL: &str = "relay_url";
/// Which way the last sync that completed went: [`VIA_RELAY`] or [`VIA_COUNTY`].
pub const LAST_SYNC_VIA: &str = "last_sync_via";
pub const VIA_RELAY: &str = "relay";
pub const VIA_COUNTY: &str = "county";

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

    /// The village office's relay address, if any.
    pub fn relay_url(&self) -> Result<Option<String>> {
        Ok(self.meta(RELAY_URL)?.filter(|u| !u.trim().is_empty()))
    }

    /// Keeps the relay's address (`None` or blank: there is none).
    pub fn set_relay_url(&self, url: Option<&str>) -> Result<()> {
        match url.map(str::trim).filter(|u| !u.is_empty()) {
            Some(u) => self.set_meta(RELAY_URL, u.trim_end_matches('/')),
            None => {
                self.conn
                    .execute("DELETE FROM meta WHERE key = ?1", [RELAY_URL])?;
                Ok(())
            }
        }
    }

    /// Whether the last sync that completed went through the village office's relay
    /// (`Some(true)`), straight to the county (`Some(false)`), or none is known.
    pub fn last_sync_via_relay(&self) -> Result<Option<bool>> {
        Ok(match self.meta(LAST_SYNC_VIA)?.as_deref() {
            Some(VIA_RELAY) => Some(true),
            Some(VIA_COUNTY) => Some(false),
            _ => None,
        })
    }

    /// Photos not yet uploaded, oldest first. A photo only a report draft holds waits until a
    /// record names it (the server takes no photo that no record names).
    pub fn pending_photos(&self) -> Result<Vec<PendingPhoto>> {
        self.pending_photos_at(false)
    }

    /// [`Store::pending_photos`], leaving out those the village office holds whole when
    /// `skip_held` (an upload to the relay).
    pub fn pending_photos_at(&self, skip_held: bool) -> Result<Vec<PendingPhoto>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT sha256, mime, length(bytes) FROM photos WHERE uploaded = 0
               AND (?1 = 0 OR held_at IS NULL)
               AND (NOT EXISTS (SELECT 1 FROM draft_photos d WHERE d.sha256 = photos.sha256)
                    OR EXISTS (SELECT 1 FROM records r, json_each(r.data, '$.photos') j
                               WHERE j.value = photos.sha256))
             ORDER BY created_at",
        )?;
        stmt.query_map([skip_held], |r| {
            Ok(PendingPhoto {
                sha256: r.get(0)?,
                mime: r.get(1)?,
                size: r.get::<_, i64>(2)? as usize,
            })
        })?
        .map(|r| Ok(r?))
        .collect()
    }

    /// The village office's relay has the photo whole: it is held there (已交村办) until the
    /// county has it.
    pub fn mark_photo_held(&mut self, sha256: &str, now: DateTime<Utc>) -> Result<()> {
        self.conn.execute(
            "UPDATE photos SET held_at = coalesce(held_at, ?2) WHERE sha256 = ?1",
            params![sha256, ts(now)],
        )?;
        Ok(())
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
