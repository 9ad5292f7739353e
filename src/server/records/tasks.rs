//! Tasks the county gives grid workers: a reviewer creates one for a worker whose grid holds
//! the record or household it is about, or cancels it; the assignee's device completes it with
//! a pushed update (a note, a photo where the task asks for one). A task is an entity of kind
//! `TASK` in the grid of what it is about, so it reaches the worker with the next pull.

use chrono::NaiveDate;

use super::*;
use crate::domain::codes::{TaskKind, TaskStatus};
use crate::domain::model::Task;

/// What the county fills in to give a task.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub kind: TaskKind,
    /// The record or household it is about.
    pub about: Uuid,
    pub assignee: String,
    pub due_date: NaiveDate,
    pub note: String,
}

/// The worker accounts whose grids hold `grid`: who a task there may go to, `(username,
/// display name)`, by name.
pub fn workers_of_grid(db: &mut dyn Sql, grid: Uuid) -> Result<Vec<(String, String)>, Error> {
    let rows = db.query(
        "SELECT u.username, u.display_name FROM users u JOIN user_grids g ON g.user_id = u.id
         WHERE g.grid_id = $1 AND u.role = 'WORKER' AND u.disabled = 0 ORDER BY u.username",
        crate::args![grid.to_string()],
    )?;
    rows.iter()
        .map(|r| Ok((r[0].string()?, r[1].string()?)))
        .collect()
}

/// What a task may be about, in words, and its grid: a record in scope (its kind, case number
/// and title) or a household (its address).
pub fn task_target(db: &mut dyn Sql, user: &User, id: Uuid) -> Result<(Entity, String), Error> {
    let ctx = Ctx::new(user, None, Utc::now(), Utc::now());
    let ent = scoped(db, &ctx, id, "record")?;
    let s = |k: &str| ent.data.get(k).and_then(Value::as_str).unwrap_or("");
    let about = if ent.kind.is_record() {
        let words = [s("case_no"), s("title"), s("description")]
            .into_iter()
            .filter(|w| !w.is_empty())
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let words: String = words.chars().take(60).collect();
        format!("{} {words}", ent.kind.zh())
    } else if ent.kind == EntityKind::Household {
        format!("户 {}", s("address"))
    } else {
        return Err(not_in_scope("record", id));
    };
    Ok((ent, about.trim().to_owned()))
}

/// A reviewer gives a task to a worker of the grid that holds what it is about.
pub fn create_task(
    db: &mut dyn Sql,
    user: &User,
    t: &NewTask,
    now: DateTime<Utc>,
) -> Result<Task, Error> {
    super::review::reviewer_ctx(user, now)?;
    let (target, about) = task_target(db, user, t.about)?;
    let workers = workers_of_grid(db, target.grid_id)?;
    if !workers.iter().any(|(u, _)| *u == t.assignee) {
        return Err(Error::invalid(
            "请选择在该网格工作的网格员 (choose a worker of the grid that holds it)",
            Some("assignee"),
        ));
    }
    let (record_id, household_id) = if target.kind == EntityKind::Household {
        (None, Some(target.id))
    } else {
        (Some(target.id), None)
    };
    let task = Task {
        id: new_id(),
        grid_id: target.grid_id,
        kind: t.kind,
        assignee: t.assignee.clone(),
        assigned_by: user.username.clone(),
        assigned_by_name: user.display_name.clone(),
        note: t.note.trim().to_owned(),
        due_date: t.due_date,
        record_id,
        household_id,
        about,
        status: TaskStatus::Open,
        created_at: now,
        done_at: None,
        done_by: None,
        done_note: None,
        done_photo: None,
        done_photos: vec![],
        cancelled_at: None,
    };
    task.validate()?;
    let seq = repo::next_seq(db)?;
    let data = object(serde_json::to_value(&task).map_err(|e| Error::Internal(e.to_string()))?);
    let ent = new_entity(
        EntityKind::Task,
        task.id,
        target.grid_id,
        target.grid_code,
        Some(target.id),
        data,
        seq,
        now,
        &user.username,
        now,
    );
    repo::put_entity(db, &ent, now)?;
    repo::audit(
        db,
        now,
        &user.username,
        None,
        "TASK_CREATE",
        Some(EntityKind::Task),
        Some(task.id),
        Some(format!("{} → {}", t.kind.zh(), t.assignee)),
    )?;
    Ok(task)
}

/// A task in the account's scope (not found otherwise).
pub fn task_in_scope(db: &mut dyn Sql, user: &User, id: Uuid) -> Result<Task, Error> {
    let ctx = Ctx::new(user, None, Utc::now(), Utc::now());
    let ent = scoped(db, &ctx, id, "task")?;
    if ent.kind != EntityKind::Task {
        return Err(not_in_scope("task", id));
    }
    parse::<Task>(&Value::Object(ent.data)).map_err(Error::Refused)
}

/// The tasks in the account's scope, open ones first by due date, then the others newest
/// first.
pub fn list_tasks(db: &mut dyn Sql, user: &User) -> Result<Vec<Task>, Error> {
    let (clause, args) = user.scope().clause(1);
    let rows = db.query(
        &format!("SELECT data FROM entities WHERE kind = 'TASK' AND {clause}"),
        &args,
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let t: Task =
            serde_json::from_str(r[0].str()?).map_err(|e| Error::Internal(e.to_string()))?;
        out.push(t);
    }
    out.sort_by(|a, b| {
        let open = |t: &Task| t.status != TaskStatus::Open;
        (open(a), a.due_date, std::cmp::Reverse(a.created_at)).cmp(&(
            open(b),
            b.due_date,
            std::cmp::Reverse(b.created_at),
        ))
    });
    Ok(out)
}

/// A reviewer cancels an open task; it comes down to the worker's phone cancelled.
pub fn cancel_task(
    db: &mut dyn Sql,
    user: &User,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let mut ctx = super::review::reviewer_ctx(user, now)?;
    let mut ent = scoped(db, &ctx, id, "task")?;
    if ent.kind != EntityKind::Task {
        return Err(not_in_scope("task", id));
    }
    if ent.data.get("status").and_then(Value::as_str) != Some(TaskStatus::Open.code()) {
        return Err(Refusal::Conflict(
            "这项任务已完成或已撤销，不能再撤销 (the task is no longer open)".into(),
        )
        .into());
    }
    let seq = ctx.seq(db)?;
    let by = user.username.clone();
    for (f, v) in [
        ("status", Value::String(TaskStatus::Cancelled.code().into())),
        (
            "cancelled_at",
            Value::String(now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        ),
    ] {
        ent.data.insert(f.into(), v);
        ent.meta.set(
            f,
            FieldMeta {
                version: seq,
                at: now,
                by: by.clone(),
                device: None,
            },
        );
    }
    ent.version = seq;
    repo::put_entity(db, &ent, now)?;
    repo::audit(
        db,
        now,
        &user.username,
        None,
        "TASK_CANCEL",
        Some(EntityKind::Task),
        Some(id),
        None,
    )?;
    Ok(())
}

/// The fields a device may send to complete a task.
const DONE_FIELDS: &[&str] = &[
    "status",
    "done_note",
    "done_photo",
    "done_photo_size",
    "done_photo_mime",
    "done_photos",
];

/// The most photos one completion may carry.
const MAX_DONE_PHOTOS: usize = 9;

/// The photos a completion sends, as (SHA-256, size, mime): the list `done_photos` of
/// `{sha256, size, mime}`, or the single `done_photo` (with `done_photo_size` and
/// `done_photo_mime`) of a phone that sends one.
fn done_photos(fields: &Map<String, Value>) -> Result<Vec<(String, i64, String)>, Error> {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let list = match fields.get("done_photos") {
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let sha = text(p, "sha256").ok_or_else(|| {
                    Error::invalid(
                        "照片缺少编号 (a photo without its sha256)",
                        Some(&format!("fields.done_photos[{i}]")),
                    )
                })?;
                let size = p.get("size").and_then(Value::as_i64).unwrap_or(0);
                let mime = text(p, "mime").unwrap_or_else(|| "image/jpeg".into());
                Ok((sha, size, mime))
            })
            .collect::<Result<Vec<_>, Error>>()?,
        Some(Value::Null) | None => {
            let f = Value::Object(fields.clone());
            match text(&f, "done_photo").filter(|p| !p.is_empty()) {
                Some(sha) => vec![(
                    sha,
                    f.get("done_photo_size")
                        .and_then(Value::as_i64)
                        .unwrap_or(0),
                    text(&f, "done_photo_mime").unwrap_or_else(|| "image/jpeg".into()),
                )],
                None => vec![],
            }
        }
        Some(_) => {
            return Err(Error::invalid(
                "照片应为列表 (done_photos must be a list)",
                Some("fields.done_photos"),
            ));
        }
    };
    if list.len() > MAX_DONE_PHOTOS {
        return Err(Error::invalid(
            format!("一次完成最多附 {MAX_DONE_PHOTOS} 张照片 (at most {MAX_DONE_PHOTOS} photos)"),
            Some("fields.done_photos"),
        ));
    }
    Ok(list)
}

/// The assignee's device completes an open task: `status` DONE, `done_note`, and its photos
/// (`done_photos`, each with its size and mime so its upload is expected; a hazard recheck
/// needs one). Anyone else's completion, or one of a task no longer open, is refused.
pub(super) fn apply_done(
    db: &mut dyn Sql,
    ctx: &mut Ctx<'_>,
    e: &OutboxEntry,
    at: DateTime<Utc>,
    by: String,
    device: Option<Uuid>,
) -> Result<(), Error> {
    let mut ent = scoped(db, ctx, e.record_id, "task")?;
    if ent.kind != EntityKind::Task {
        return Err(not_in_scope("task", e.record_id));
    }
    let task: Task = parse(&Value::Object(ent.data.clone()))?;
    if task.assignee != by {
        return Err(Refusal::Forbidden(
            "这项任务派给了其他网格员，您不能完成它 (the task is another worker's)".into(),
        )
        .into());
    }
    for f in e.fields.keys() {
        if !DONE_FIELDS.contains(&f.as_str()) {
            return Err(Error::invalid(
                format!("完成任务时不能修改「{f}」 (only the completion may be sent)"),
                Some(&format!("fields.{f}")),
            ));
        }
    }
    let text = |k: &str| e.fields.get(k).and_then(Value::as_str);
    if text("status") != Some(TaskStatus::Done.code()) {
        return Err(Error::invalid(
            "任务只能改为「已完成」 (a task can only be completed)",
            Some("fields.status"),
        ));
    }
    match task.status {
        TaskStatus::Open => {}
        TaskStatus::Done if task.done_by.as_deref() == Some(by.as_str()) => {
            audit_entry(ctx, e, "UPDATE_NOOP");
            return Ok(()); // the same completion again
        }
        TaskStatus::Done => {
            return Err(
                Refusal::Conflict("这项任务已经完成 (the task is already done)".into()).into(),
            );
        }
        TaskStatus::Cancelled => {
            return Err(Refusal::Conflict(
                "县里已撤销这项任务，无需再完成 (the county cancelled the task)".into(),
            )
            .into());
        }
    }
    let note = text("done_note").unwrap_or("");
    let photos = done_photos(&e.fields)?;
    task.check_completion(note, photos.first().map(|p| p.0.as_str()))
        .map_err(|v| Error::from(v).at("fields"))?;
    let grid_code = ent.grid_code.clone();
    for (i, (sha, size, mime)) in photos.iter().enumerate() {
        let field = |_| {
            if e.fields.contains_key("done_photos") {
                format!("fields.done_photos[{i}]")
            } else {
                "fields.done_photo".to_owned()
            }
        };
        link_photos(
            db,
            ctx,
            ent.id,
            &grid_code,
            std::slice::from_ref(sha),
            &field,
        )?;
        if !crate::domain::model::PHOTO_MIMES.contains(&mime.as_str())
            || !(1..=crate::server::MAX_PHOTO_BYTES as i64).contains(size)
        {
            return Err(Error::invalid(
                "照片应为 JPEG、PNG 或 WebP 图片，且不超过上限 (the photo's type or size is wrong)",
                Some(&field(0)),
            ));
        }
        repo::add_photo(db, sha, *size, mime, &by, device, ctx.server_now)?;
    }
    let seq = ctx.seq(db)?;
    let stamp = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut set = vec![
        ("status", Value::String(TaskStatus::Done.code().into())),
        ("done_note", Value::String(note.trim().to_owned())),
        ("done_at", Value::String(stamp)),
        ("done_by", Value::String(by.clone())),
    ];
    if let Some((sha, _, _)) = photos.first() {
        set.push(("done_photo", Value::String(sha.clone())));
        set.push((
            "done_photos",
            Value::Array(photos.iter().map(|p| Value::String(p.0.clone())).collect()),
        ));
    }
    for (f, v) in set {
        ent.data.insert(f.into(), v);
        ent.meta.set(
            f,
            FieldMeta {
                version: seq,
                at,
                by: by.clone(),
                device,
            },
        );
    }
    ent.version = seq;
    repo::put_entity(db, &ent, ctx.server_now)?;
    audit_entry(ctx, e, "TASK_DONE");
    Ok(())
}
