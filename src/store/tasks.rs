//! The county's tasks for this device's worker: written as pulls bring them (a new open task
//! is noted in the feedback inbox), listed for Today (open first, by due date), and completed
//! on the device (a note, photos; a hazard recheck needs one) with its outbox entry in the
//! same transaction.

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::outbox::append;
use super::{Result, Store, StoreError, ts};
use crate::domain::codes::{Coded, TaskStatus};
use crate::domain::model::{EntityKind, Task};
use crate::wire::Op;

/// The form a task's completion photo is staged under (`Store::stage_photo`) until it is done.
pub fn photo_form(task: Uuid) -> String {
    format!("task:{task}")
}

/// Writes a pulled task (its completion still in the outbox laid over it), and notes a new
/// open task for this worker in the feedback inbox when the pull is news. Inside the pull's
/// transaction.
pub(crate) fn apply_task(tx: &Connection, t: &Task, seq: i64, me: &str, news: bool) -> Result<()> {
    let known: bool = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM tasks WHERE id = ?1)")?
        .query_row([t.id.to_string()], |r| r.get(0))?;
    let mut t = t.clone();
    // A completion not yet pushed stands over what came down (the server decides it then).
    let pending: Option<String> = tx
        .prepare_cached(
            "SELECT fields FROM outbox WHERE record_id = ?1 AND kind = 'TASK' ORDER BY seq DESC LIMIT 1",
        )?
        .query_row([t.id.to_string()], |r| r.get(0))
        .optional()?;
    if let Some(fields) = pending
        && t.status == TaskStatus::Open
    {
        let f: Map<String, Value> = serde_json::from_str(&fields)?;
        t.status = TaskStatus::Done;
        t.done_note = f
            .get("done_note")
            .and_then(Value::as_str)
            .map(str::to_owned);
        t.done_photos = f
            .get("done_photos")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.get("sha256").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        t.done_photo = t.done_photos.first().cloned().or_else(|| {
            f.get("done_photo")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        t.done_by = Some(me.to_owned());
    }
    write_task(tx, &t, Some(seq))?;
    if !known && news && t.assignee == me && t.status == TaskStatus::Open {
        tx.prepare_cached(
            "INSERT INTO feedback (id, record_id, kind, actor, status, text, at)
             VALUES (?1, ?2, 'TASK', ?3, NULL, ?4, ?5) ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![
            format!("task:{}", t.id),
            t.id.to_string(),
            t.assigned_by_name,
            format!("{}：{}", t.kind.zh(), t.note),
            ts(t.created_at)
        ])?;
    }
    Ok(())
}

fn write_task(tx: &Connection, t: &Task, seq: Option<i64>) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO tasks (id, data, status, due_date, assignee, server_seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (id) DO UPDATE SET data = excluded.data, status = excluded.status,
           due_date = excluded.due_date, assignee = excluded.assignee,
           server_seq = coalesce(excluded.server_seq, tasks.server_seq)",
    )?
    .execute(params![
        t.id.to_string(),
        serde_json::to_string(t)?,
        t.status.code(),
        t.due_date.to_string(),
        t.assignee,
        seq
    ])?;
    Ok(())
}

fn read_task(conn: &Connection, id: Uuid) -> Result<Option<(Task, i64)>> {
    let row: Option<(String, Option<i64>)> = conn
        .prepare_cached("SELECT data, server_seq FROM tasks WHERE id = ?1")?
        .query_row([id.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    row.map(|(d, v)| Ok((serde_json::from_str(&d)?, v.unwrap_or(0))))
        .transpose()
}

impl Store {
    /// This worker's tasks: open ones first by due date, then the others, newest first.
    pub fn tasks(&self) -> Result<Vec<Task>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT data FROM tasks WHERE assignee = ?1
             ORDER BY status <> 'OPEN', CASE WHEN status = 'OPEN' THEN due_date END,
                      json_extract(data, '$.created_at') DESC",
        )?;
        let rows = stmt.query_map([&self.worker], |r| r.get::<_, String>(0))?;
        rows.map(|d| Ok(serde_json::from_str(&d?)?)).collect()
    }

    /// This worker's open tasks (Today's list).
    pub fn open_tasks(&self) -> Result<Vec<Task>> {
        Ok(self
            .tasks()?
            .into_iter()
            .filter(|t| t.status == TaskStatus::Open)
            .collect())
    }

    /// How many open tasks are past their due date on `today`.
    pub fn overdue_tasks(&self, today: NaiveDate) -> Result<usize> {
        Ok(self
            .open_tasks()?
            .iter()
            .filter(|t| t.is_overdue(today))
            .count())
    }

    /// One task.
    pub fn task(&self, id: Uuid) -> Result<Task> {
        read_task(&self.conn, id)?
            .map(|(t, _)| t)
            .ok_or_else(|| StoreError::NotFound {
                kind: "task",
                id: id.to_string(),
            })
    }

    /// Completes an open task of this worker with `note` and the photos staged for it
    /// (`photo_form`; a hazard recheck needs one): the task, its outbox entry and the photos'
    /// move out of the staging in one transaction. A note missing, or the photo of a hazard recheck, is a
    /// field error and nothing is written.
    pub fn complete_task(&mut self, id: Uuid, note: &str, now: DateTime<Utc>) -> Result<Task> {
        let me = self.worker.clone();
        let form = photo_form(id);
        self.tx(|tx| {
            let (mut t, version) = read_task(tx, id)?.ok_or_else(|| StoreError::NotFound {
                kind: "task",
                id: id.to_string(),
            })?;
            if t.assignee != me {
                return Err(StoreError::Conflict(
                    "这项任务派给了其他网格员 (the task is another worker's)".into(),
                ));
            }
            if t.status != TaskStatus::Open {
                return Err(StoreError::Conflict(format!(
                    "这项任务{}，不能再完成 (the task is no longer open)",
                    t.status.zh()
                )));
            }
            // Every photo staged for it, in the order the worker added them.
            let staged: Vec<(String, String, i64)> = tx
                .prepare_cached(
                    "SELECT d.sha256, p.mime, length(p.bytes) FROM draft_photos d
                     JOIN photos p ON p.sha256 = d.sha256 WHERE d.form = ?1
                     ORDER BY d.position",
                )?
                .query_map([&form], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?;
            t.check_completion(note, staged.first().map(|p| p.0.as_str()))?;
            let mut fields = Map::new();
            fields.insert(
                "status".into(),
                Value::String(TaskStatus::Done.code().into()),
            );
            fields.insert("done_note".into(), Value::String(note.trim().to_owned()));
            if !staged.is_empty() {
                let photos = staged
                    .iter()
                    .map(|(sha, mime, size)| {
                        serde_json::json!({ "sha256": sha, "mime": mime, "size": size })
                    })
                    .collect();
                fields.insert("done_photos".into(), Value::Array(photos));
            }
            t.status = TaskStatus::Done;
            t.done_note = Some(note.trim().to_owned());
            t.done_photos = staged.iter().map(|p| p.0.clone()).collect();
            t.done_photo = t.done_photos.first().cloned();
            t.done_at = Some(now);
            t.done_by = Some(me.clone());
            write_task(tx, &t, None)?;
            // The photos leave the staging: now the task names them, they wait for upload.
            tx.prepare_cached("DELETE FROM draft_photos WHERE form = ?1")?
                .execute([&form])?;
            append(tx, EntityKind::Task, id, Op::Update, fields, version, now)?;
            Ok(t)
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::codes::TaskKind;
    use crate::store::feedback::FeedbackKind;
    use crate::wire::{Change, Lane, PullResponse};

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, h, 0, 0).unwrap()
    }

    fn task(grid: Uuid, kind: TaskKind, assignee: &str) -> Task {
        Task {
            id: crate::domain::model::new_id(),
            grid_id: grid,
            kind,
            assignee: assignee.into(),
            assigned_by: "clerk".into(),
            assigned_by_name: "县综治中心 李文".into(),
            note: "请复查楼道堆物是否清理".into(),
            due_date: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            record_id: Some(crate::domain::model::new_id()),
            household_id: None,
            about: "安全隐患 2026-00042".into(),
            status: TaskStatus::Open,
            created_at: at(1),
            done_at: None,
            done_by: None,
            done_note: None,
            done_photo: None,
            done_photos: vec![],
            cancelled_at: None,
        }
    }

    fn pull(s: &mut Store, seq: i64, base: i64, t: &Task) {
        let page = PullResponse {
            changes: vec![Change::whole(
                seq,
                EntityKind::Task,
                t.id,
                serde_json::to_value(t).unwrap(),
            )],
            cursor: seq,
            base,
            more: false,
            cadence: None,
            rejected: vec![],
        };
        s.apply_pull(&page, at(2)).unwrap();
    }

    #[test]
    fn a_pulled_task_is_listed_noted_once_in_the_inbox_and_completed_with_its_photos_in_the_outbox()
    {
        let (mut s, grid) = crate::store::testing::store_with_grid();
        let t = task(grid, TaskKind::RecheckHazard, "worker-a");
        let other = task(grid, TaskKind::Verify, "worker-b");
        pull(&mut s, 5, 3, &t);
        pull(&mut s, 6, 5, &other);
        pull(&mut s, 5, 3, &t); // the same page again
        let mine = s.open_tasks().unwrap();
        assert_eq!(mine, vec![t.clone()], "only my own tasks are listed");
        let inbox = s.feedback(10).unwrap();
        assert_eq!(inbox.len(), 1, "{inbox:?}");
        assert_eq!(inbox[0].kind, FeedbackKind::Task);
        assert_eq!(inbox[0].record_id, t.id);
        assert!(inbox[0].text.contains("复查隐患"), "{}", inbox[0].text);
        assert!(
            s.overdue_tasks(NaiveDate::from_ymd_opt(2026, 12, 2).unwrap())
                .unwrap()
                == 1
        );

        // A hazard recheck needs a photo: without one nothing is written.
        let e = s.complete_task(t.id, "已清理", at(3)).unwrap_err();
        let StoreError::Invalid(v) = e else {
            panic!("{e:?}")
        };
        assert_eq!(v.errors[0].field, "done_photo");
        assert_eq!(s.outbox_len().unwrap(), 0);
        // Someone else's task cannot be completed here.
        assert!(matches!(
            s.complete_task(other.id, "看过了", at(3)),
            Err(StoreError::Conflict(_))
        ));

        let sha = s
            .stage_photo(
                &photo_form(t.id),
                b"\xff\xd8\xff jpeg",
                "image/jpeg",
                "a.jpg",
                at(3),
            )
            .unwrap();
        let sha2 = s
            .stage_photo(
                &photo_form(t.id),
                b"\xff\xd8\xff second jpeg",
                "image/jpeg",
                "b.jpg",
                at(3),
            )
            .unwrap();
        let done = s.complete_task(t.id, "  已清理，通道畅通 ", at(3)).unwrap();
        assert_eq!(done.status, TaskStatus::Done);
        assert_eq!(done.done_photo.as_deref(), Some(sha.as_str()));
        assert_eq!(
            done.photos(),
            [sha.as_str(), sha2.as_str()],
            "both, in order"
        );
        assert!(s.open_tasks().unwrap().is_empty());
        let out = s.outbox(Lane::Normal, 10).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].kind, out[0].op, out[0].record_id),
            (EntityKind::Task, Op::Update, t.id)
        );
        assert_eq!(out[0].base_version, 5);
        assert_eq!(out[0].fields["status"], "DONE");
        assert_eq!(out[0].fields["done_note"], "已清理，通道畅通");
        let sent: Vec<&str> = out[0].fields["done_photos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["sha256"].as_str().unwrap())
            .collect();
        assert_eq!(sent, [sha.as_str(), sha2.as_str()]);
        assert_eq!(out[0].fields["done_photos"][1]["mime"], "image/jpeg");
        let pending = s.pending_photos().unwrap();
        assert_eq!(
            pending.len(),
            2,
            "both photos wait for upload once the task names them"
        );
        assert!(s.staged_photos(&photo_form(t.id)).unwrap().is_empty());
        // Completing twice is refused.
        assert!(matches!(
            s.complete_task(t.id, "again", at(4)),
            Err(StoreError::Conflict(_))
        ));
        // A pull of the task still open (before the push) keeps the completion.
        pull(&mut s, 7, 6, &t);
        assert_eq!(s.task(t.id).unwrap().status, TaskStatus::Done);
    }

    #[test]
    fn a_visit_task_needs_only_a_note_and_a_cancelled_one_cannot_be_completed() {
        let (mut s, grid) = crate::store::testing::store_with_grid();
        let mut t = task(grid, TaskKind::VisitHousehold, "worker-a");
        pull(&mut s, 5, 0, &t);
        assert!(
            s.feedback(10).unwrap().is_empty(),
            "the first pull is no news"
        );
        t.status = TaskStatus::Cancelled;
        pull(&mut s, 8, 5, &t);
        assert!(s.open_tasks().unwrap().is_empty());
        assert!(matches!(
            s.complete_task(t.id, "已走访", at(3)),
            Err(StoreError::Conflict(_))
        ));
        let v = task(grid, TaskKind::VisitHousehold, "worker-a");
        pull(&mut s, 9, 8, &v);
        assert!(matches!(
            s.complete_task(v.id, " ", at(3)),
            Err(StoreError::Invalid(_))
        ));
        let done = s.complete_task(v.id, "已走访，老人身体好", at(3)).unwrap();
        assert_eq!(done.done_photo, None);
        assert!(
            !s.outbox(Lane::Normal, 10).unwrap()[0]
                .fields
                .contains_key("done_photos")
        );
    }
}
