//! Photos kept with a report draft: stored once in `photos` (content-addressed, encrypted with
//! the rest of the store) and listed per form in `draft_photos`, so a draft keeps its photos
//! when the worker leaves the screen or the app is closed. No outbox entry: a draft is not
//! data yet; the photos travel when the submitted record names them (`attach_photo`).

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use sha2::{Digest, Sha256};

use super::records::{create_in, link_photo_in, transition_in};
use super::{Result, Store, ts};
use crate::domain::model::EventRecord;
use crate::domain::validate::ValidationErrors;

/// The `meta` key of the draft of `form` (its fields as the form keeps them, JSON).
pub fn draft_key(form: &str) -> String {
    format!("draft:{form}")
}

/// What filing a draft did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filed {
    /// The record is new, with this many photos.
    New { photos: usize },
    /// A record with the draft's id was already filed (a second tap, a retry): nothing was
    /// written again.
    Already,
}

/// A photo held by a draft.
#[derive(Debug, Clone, PartialEq)]
pub struct StagedPhoto {
    pub sha256: String,
    pub mime: String,
    /// The file name it was picked as (shown in the form).
    pub name: String,
    pub size: usize,
}

/// Deletes the bytes of `sha256` if nothing needs them any more: not uploaded, held by no
/// draft and named by no record.
fn drop_if_orphan(conn: &Connection, sha256: &str) -> Result<()> {
    conn.execute(
        "DELETE FROM photos WHERE sha256 = ?1 AND uploaded = 0
           AND NOT EXISTS (SELECT 1 FROM draft_photos d WHERE d.sha256 = photos.sha256)
           AND NOT EXISTS (SELECT 1 FROM records r, json_each(r.data, '$.photos') j
                           WHERE j.value = photos.sha256)",
        [sha256],
    )?;
    Ok(())
}

impl Store {
    /// Keeps a photo with the draft of `form` (after the ones it already holds); the same
    /// photo twice is kept once. Returns its SHA-256.
    pub fn stage_photo(
        &mut self,
        form: &str,
        bytes: &[u8],
        mime: &str,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<String> {
        if !mime.starts_with("image/") {
            return Err(ValidationErrors::single("mime", crate::domain::Problem::NotImage).into());
        }
        let sha = hex::encode(Sha256::digest(bytes));
        self.tx(|tx| {
            tx.execute(
                "INSERT INTO photos (sha256, mime, bytes, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (sha256) DO NOTHING",
                params![sha, mime, bytes, ts(now)],
            )?;
            tx.execute(
                "INSERT INTO draft_photos (form, sha256, name, position)
                 SELECT ?1, ?2, ?3, coalesce(max(position), 0) + 1 FROM draft_photos WHERE form = ?1
                 ON CONFLICT (form, sha256) DO NOTHING",
                params![form, sha, name],
            )?;
            Ok(sha.clone())
        })
    }

    /// The photos the draft of `form` holds, in the order they were added.
    pub fn staged_photos(&self, form: &str) -> Result<Vec<StagedPhoto>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT d.sha256, p.mime, d.name, length(p.bytes) FROM draft_photos d
             JOIN photos p ON p.sha256 = d.sha256 WHERE d.form = ?1 ORDER BY d.position",
        )?;
        stmt.query_map([form], |r| {
            Ok(StagedPhoto {
                sha256: r.get(0)?,
                mime: r.get(1)?,
                name: r.get(2)?,
                size: r.get::<_, i64>(3)? as usize,
            })
        })?
        .map(|r| Ok(r?))
        .collect()
    }

    /// Takes a photo out of the draft of `form` (its bytes go too unless something else
    /// holds them).
    pub fn unstage_photo(&mut self, form: &str, sha256: &str) -> Result<()> {
        self.tx(|tx| {
            tx.execute(
                "DELETE FROM draft_photos WHERE form = ?1 AND sha256 = ?2",
                params![form, sha256],
            )?;
            drop_if_orphan(tx, sha256)
        })
    }

    /// Files the record a form's draft became, with every photo the draft holds, their outbox
    /// entries and the draft's removal, in one transaction: a failure anywhere leaves the draft
    /// as it was and nothing filed. The record's id is the draft's, so a second tap or a retry
    /// after a crash finds the record already filed and writes nothing twice.
    pub fn file_draft<T: EventRecord>(
        &mut self,
        form: &str,
        record: &T,
        now: DateTime<Utc>,
    ) -> Result<Filed> {
        self.file_draft_with(form, record, now, |_| Ok(()))
    }

    /// [`Store::file_draft`] with more written in the same transaction after the record (an
    /// emergency's initial report): all of it or nothing.
    pub fn file_draft_with<T: EventRecord>(
        &mut self,
        form: &str,
        record: &T,
        now: DateTime<Utc>,
        then: impl FnOnce(&Connection) -> Result<()>,
    ) -> Result<Filed> {
        let id = record.common().id;
        self.tx(|tx| {
            let exists: bool = tx
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM records WHERE id = ?1)")?
                .query_row([id.to_string()], |r| r.get(0))?;
            if exists {
                return Ok(Filed::Already);
            }
            create_in(tx, record, now)?;
            let staged: Vec<(String, String, i64)> = tx
                .prepare_cached(
                    "SELECT d.sha256, p.mime, length(p.bytes) FROM draft_photos d
                     JOIN photos p ON p.sha256 = d.sha256 WHERE d.form = ?1 ORDER BY d.position",
                )?
                .query_map([form], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (sha, mime, size) in &staged {
                link_photo_in(tx, id, sha, mime, *size as usize, now)?;
            }
            then(tx)?;
            tx.execute("DELETE FROM draft_photos WHERE form = ?1", [form])?;
            super::set_meta(tx, &draft_key(form), "null")?;
            Ok(Filed::New {
                photos: staged.len(),
            })
        })
    }

    /// Moves record `id` to `to` with the photos the draft of `form` holds linked to the record
    /// (each with its outbox entry) and the draft emptied, in one transaction: a refused move
    /// leaves the photos in the draft. Returns how many photos went with the move.
    pub fn transition_with_photos(
        &mut self,
        id: uuid::Uuid,
        to: crate::domain::lifecycle::Status,
        note: Option<&str>,
        form: &str,
        now: DateTime<Utc>,
    ) -> Result<usize> {
        let actor = self.worker.clone();
        self.tx(|tx| {
            transition_in(tx, id, to, note, &actor, now)?;
            let staged: Vec<(String, String, i64)> = tx
                .prepare_cached(
                    "SELECT d.sha256, p.mime, length(p.bytes) FROM draft_photos d
                     JOIN photos p ON p.sha256 = d.sha256 WHERE d.form = ?1 ORDER BY d.position",
                )?
                .query_map([form], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (sha, mime, size) in &staged {
                link_photo_in(tx, id, sha, mime, *size as usize, now)?;
            }
            tx.execute("DELETE FROM draft_photos WHERE form = ?1", [form])?;
            Ok(staged.len())
        })
    }

    /// The id the record of the draft of `form` will have: the same for every submit of one
    /// draft (so a second tap finds the record filed), a new one once that record exists.
    /// A form reads it when it opens.
    pub fn draft_id(&self, form: &str) -> Result<uuid::Uuid> {
        let key = format!("draft-id:{form}");
        if let Some(id) = self
            .meta(&key)?
            .and_then(|v| uuid::Uuid::parse_str(&v).ok())
        {
            let filed: bool = self
                .conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM records WHERE id = ?1)
                         OR EXISTS (SELECT 1 FROM visits WHERE id = ?1)
                         OR EXISTS (SELECT 1 FROM people WHERE id = ?1)
                         OR EXISTS (SELECT 1 FROM households WHERE id = ?1)",
                )?
                .query_row([id.to_string()], |r| r.get(0))?;
            if !filed {
                return Ok(id);
            }
        }
        let id = crate::domain::model::new_id();
        self.set_meta(&key, &id.to_string())?;
        Ok(id)
    }

    /// Empties the draft of `form` of photos (after it was submitted: the record holds them
    /// now; a photo nothing else holds is deleted).
    pub fn clear_staged_photos(&mut self, form: &str) -> Result<()> {
        self.tx(|tx| {
            let shas: Vec<String> = tx
                .prepare("SELECT sha256 FROM draft_photos WHERE form = ?1")?
                .query_map([form], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            tx.execute("DELETE FROM draft_photos WHERE form = ?1", [form])?;
            for sha in shas {
                drop_if_orphan(tx, &sha)?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::codes::{Domain, HazardCategory, Severity};
    use crate::domain::model::{Common, Hazard};

    fn now() -> DateTime<Utc> {
        "2026-11-29T09:30:00Z".parse().unwrap()
    }

    fn hazard(grid: uuid::Uuid) -> Hazard {
        Hazard {
            common: Common::new(Domain::Hazard, grid, "worker-a", now()),
            category: HazardCategory::Fire,
            severity: Severity::Low,
            description: "楼道堆放杂物".into(),
            place: "2号楼".into(),
            owner: None,
            due_date: None,
        }
    }

    #[test]
    fn a_draft_is_filed_once_with_its_photos_however_often_it_is_sent() {
        let (mut s, grid) = crate::store::testing::store_with_grid();
        s.set_meta(&draft_key("hazard"), r#"{"description":"楼道堆放杂物"}"#)
            .unwrap();
        let a = s
            .stage_photo("hazard", b"\xFF\xD8\xFFa", "image/jpeg", "a.jpg", now())
            .unwrap();
        let b = s
            .stage_photo("hazard", b"\xFF\xD8\xFFb", "image/jpeg", "b.jpg", now())
            .unwrap();
        let h = hazard(grid);
        assert_eq!(
            s.file_draft("hazard", &h, now()).unwrap(),
            Filed::New { photos: 2 }
        );
        let filed: Hazard = s.record(h.common.id).unwrap();
        assert_eq!(filed.common.photos, vec![a.clone(), b.clone()]);
        // The record and one entry per photo.
        assert_eq!(s.outbox_len().unwrap(), 3);
        assert!(s.staged_photos("hazard").unwrap().is_empty());
        assert_eq!(
            s.meta(&draft_key("hazard")).unwrap().as_deref(),
            Some("null")
        );
        // A second tap, a retry after a crash: the same record, nothing written again.
        assert_eq!(s.file_draft("hazard", &h, now()).unwrap(), Filed::Already);
        assert_eq!(s.outbox_len().unwrap(), 3);
        assert_eq!(
            s.records(&crate::store::records::RecordQuery::default())
                .unwrap()
                .iter()
                .filter(|r| r.summary.contains("楼道堆放杂物"))
                .count(),
            1
        );
    }

    #[test]
    fn a_failure_between_the_record_and_its_photos_files_nothing() {
        let (mut s, grid) = crate::store::testing::store_with_grid();
        s.set_meta(&draft_key("hazard"), r#"{"description":"楼道堆放杂物"}"#)
            .unwrap();
        s.stage_photo("hazard", b"\xFF\xD8\xFFa", "image/jpeg", "a.jpg", now())
            .unwrap();
        // The photo's outbox entry fails after the record's was written.
        s.conn()
            .execute_batch(
                "CREATE TEMP TRIGGER fail_photo BEFORE INSERT ON outbox WHEN NEW.kind = 'PHOTO'
                 BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
            )
            .unwrap();
        let h = hazard(grid);
        assert!(s.file_draft("hazard", &h, now()).is_err());
        assert!(s.record::<Hazard>(h.common.id).is_err(), "no record");
        assert_eq!(s.outbox_len().unwrap(), 0, "no entry");
        assert_eq!(
            s.staged_photos("hazard").unwrap().len(),
            1,
            "the draft keeps its photo"
        );
        assert!(
            s.meta(&draft_key("hazard"))
                .unwrap()
                .unwrap()
                .contains("楼道")
        );
        // Fixed, the same draft files whole.
        s.conn().execute_batch("DROP TRIGGER fail_photo").unwrap();
        assert_eq!(
            s.file_draft("hazard", &h, now()).unwrap(),
            Filed::New { photos: 1 }
        );
    }

    #[test]
    fn a_draft_keeps_its_photos_in_order_once_each_and_they_wait_for_a_record() {
        let (mut s, grid) = crate::store::testing::store_with_grid();
        let a = s
            .stage_photo("hazard", b"\xFF\xD8\xFFa", "image/jpeg", "a.jpg", now())
            .unwrap();
        let b = s
            .stage_photo("hazard", b"\x89PNG\r\n\x1a\nb", "image/png", "b.png", now())
            .unwrap();
        s.stage_photo("hazard", b"\xFF\xD8\xFFa", "image/jpeg", "again.jpg", now())
            .unwrap();
        let staged = s.staged_photos("hazard").unwrap();
        assert_eq!(
            staged.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["a.jpg", "b.png"]
        );
        assert_eq!(staged[1].mime, "image/png");
        assert!(s.staged_photos("opinion").unwrap().is_empty());
        assert_eq!(s.outbox_len().unwrap(), 0, "a draft is not data yet");
        assert!(
            s.pending_photos().unwrap().is_empty(),
            "no record names them: nothing to upload"
        );
        // Submitted: the record names photo a; the draft is emptied; a is uploaded, b (taken
        // out before submitting) is gone.
        s.unstage_photo("hazard", &b).unwrap();
        assert!(s.photo(&b).is_err(), "unstaged bytes are deleted");
        let h = Hazard {
            common: Common::new(Domain::Hazard, grid, "worker-a", now()),
            category: HazardCategory::Fire,
            severity: Severity::Low,
            description: "楼道堆放杂物".into(),
            place: String::new(),
            owner: None,
            due_date: None,
        };
        s.create_record(&h, now()).unwrap();
        let (bytes, mime) = s.photo(&a).unwrap();
        s.attach_photo(h.common.id, &bytes, &mime, now()).unwrap();
        s.clear_staged_photos("hazard").unwrap();
        assert!(s.staged_photos("hazard").unwrap().is_empty());
        assert_eq!(
            s.photo(&a).unwrap().0,
            b"\xFF\xD8\xFFa",
            "the record keeps it"
        );
        assert_eq!(
            s.pending_photos()
                .unwrap()
                .into_iter()
                .map(|p| p.sha256)
                .collect::<Vec<_>>(),
            [a]
        );
        assert!(
            s.stage_photo("hazard", b"x", "text/plain", "x.txt", now())
                .is_err()
        );
    }
}
