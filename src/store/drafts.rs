//! Photos kept with a report draft: stored once in `photos` (content-addressed, encrypted with
//! the rest of the store) and listed per form in `draft_photos`, so a draft keeps its photos
//! when the worker leaves the screen or the app is closed. No outbox entry: a draft is not
//! data yet; the photos travel when the submitted record names them (`attach_photo`).

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use sha2::{Digest, Sha256};

use super::{Result, Store, ts};
use crate::domain::validate::ValidationErrors;

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
            return Err(
                ValidationErrors::single("mime", format!("{mime} is not an image type")).into(),
            );
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
