//! Applying one received entry: scope, validation, lifecycle and the field-level merge, in a
//! savepoint, or its refusal kept for the device's next pull.

use super::*;

pub(super) fn apply_received(
    db: &mut dyn Sql,
    user: Option<&User>,
    q: &repo::Queued,
    raw: &[OutboxEntry<RawFields>],
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let Some(user) = user else {
        for e in raw {
            let f = Refusal::Forbidden(format!("the account {} no longer exists", q.username));
            reject(db, q, e, &f, now)?;
        }
        return Ok(());
    };
    // On its last try a row's database errors become its entries' refusals.
    let last_try = q.attempts + 1 >= MAX_INBOX_ATTEMPTS;
    let parsed: Vec<Result<OutboxEntry, Refusal>> = raw.iter().map(parse_entry).collect();
    // Fast path: the whole row at once.
    if parsed.iter().all(Result::is_ok) {
        let entries: Vec<&OutboxEntry> = parsed.iter().filter_map(|p| p.as_ref().ok()).collect();
        let whole = in_savepoint(db, last_try, |db| {
            let mut ctx = Ctx::new(user, Some(q.device), now, q.device_now);
            let n = entries.len() as i64;
            let first = repo::reserve_seqs(db, n)?;
            ctx.seqs = first..first + n;
            let ids: Vec<Uuid> = entries.iter().map(|e| e.record_id).collect();
            ctx.prefetch_heads(db, &ids)?;
            for e in &entries {
                apply_entry(db, &mut ctx, e)?;
            }
            ctx.flush(db)?;
            Ok(repo::audit_many(db, &ctx.audits)?)
        })?;
        if whole.is_ok() {
            return Ok(());
        }
    }
    // Entry by entry: the good ones are kept, each refused one is recorded.
    for (e, p) in raw.iter().zip(parsed) {
        let one = match p {
            Ok(p) => in_savepoint(db, last_try, |db| {
                let mut ctx = Ctx::new(user, Some(q.device), now, q.device_now);
                apply_entry(db, &mut ctx, &p)?;
                ctx.flush(db)?;
                Ok(repo::audit_many(db, &ctx.audits)?)
            })?,
            Err(f) => Err(f),
        };
        if let Err(f) = one {
            reject(db, q, e, &f, now)?;
        }
    }
    Ok(())
}

/// Runs `f` in a savepoint: kept if it succeeds, undone if it is refused (the inner error;
/// a fault of the server's own refuses the entry too, as `internal`). A database error is
/// the outer one (the whole transaction fails with it) unless `db_refuses` and it is not
/// transient ([`DbError::is_transient`]): then it too is undone and answered as the entry's
/// refusal (`internal`).
pub(super) fn in_savepoint<R>(
    db: &mut dyn Sql,
    db_refuses: bool,
    f: impl FnOnce(&mut dyn Sql) -> Result<R, Error>,
) -> Result<Result<R, Refusal>, DbError> {
    db.exec("SAVEPOINT step", &[])?;
    match f(db) {
        Ok(r) => {
            db.exec("RELEASE SAVEPOINT step", &[])?;
            Ok(Ok(r))
        }
        Err(Error::Db(e)) if !db_refuses || e.is_transient() => Err(e),
        Err(failed) => {
            db.exec("ROLLBACK TO SAVEPOINT step", &[])?;
            db.exec("RELEASE SAVEPOINT step", &[])?;
            Ok(Err(match failed {
                Error::Db(e) => {
                    tracing::error!(error = %e, "an entry failed in the database on its row's last try; refused");
                    Refusal::Internal(format!("the county server could not store this entry: {e}"))
                }
                Error::Internal(m) => Refusal::Internal(m),
                Error::Refused(r) => r,
            }))
        }
    }
}

/// Keeps a refused entry, whole, with why, for its device's next pull and county staff.
pub(super) fn reject(
    db: &mut dyn Sql,
    q: &repo::Queued,
    e: &OutboxEntry<RawFields>,
    f: &Refusal,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let (error, field) = (f.code(), f.field().map(str::to_owned));
    // What a refusal says may quote the refused value, NUL and all; PostgreSQL's text holds
    // no NUL, and keeping the refusal must not fail on what it refuses.
    let clean = |s: String| s.replace('\0', "\\u0000");
    let field = field.map(clean);
    let seq = repo::next_seq(db)?;
    let entry = serde_json::to_string(e).map_err(|e| Error::Internal(e.to_string()))?;
    let r = Rejection {
        seq,
        lane: e.lane,
        entry_seq: e.seq,
        kind: e.kind,
        record_id: e.record_id,
        op: e.op,
        error: error.to_owned(),
        message: clean(f.message()),
        field,
        at: now,
    };
    repo::add_rejection(db, q.device, &q.username, &r, &entry)?;
    tracing::info!(device = %q.device, record = %e.record_id, error, message = %r.message, "pushed entry refused");
    repo::audit(
        db,
        now,
        &q.username,
        Some(q.device),
        "PUSH_REFUSED",
        Some(e.kind),
        Some(e.record_id),
        Some(match &r.field {
            Some(field) => format!("{}: {field}", r.message),
            None => r.message.clone(),
        }),
    )?;
    Ok(())
}

pub(super) fn apply_entry(
    db: &mut dyn Sql,
    ctx: &mut Ctx<'_>,
    e: &OutboxEntry,
) -> Result<(), Error> {
    let makes_new = match (e.op, e.kind) {
        (Op::Create, k) => !k.is_append_only(),
        (Op::Append, EntityKind::Photo | EntityKind::Audit | EntityKind::Reply) => false,
        (Op::Append, k) => k.is_append_only(),
        _ => false,
    };
    if !makes_new {
        // Everything else reads entities back or writes them in place: the new ones first.
        ctx.flush(db)?;
        ctx.heads.remove(&e.record_id);
    }
    let at = corrected_time(e.edited_at, ctx.device_now, ctx.server_now);
    let by = ctx.user.username.clone();
    let device = ctx.device;
    match (e.op, e.kind) {
        (Op::Create, k) if !k.is_append_only() => apply_create(db, ctx, e, k, at, by, device),
        (Op::Update, EntityKind::Task) => super::tasks::apply_done(db, ctx, e, at, by, device),
        (Op::Update, k) if !k.is_append_only() => apply_update(db, ctx, e, k, at, by, device),
        (Op::Transition, k) if k.is_record() => apply_transition(db, ctx, e, k, at, by),
        (Op::Append, EntityKind::Photo) => apply_photo(db, ctx, e, at, by, device),
        (Op::Append, EntityKind::Audit) => apply_audit(ctx, e, at, by),
        (Op::Append, k) if k.is_append_only() && k != EntityKind::Reply => {
            apply_append(db, ctx, e, k, at, by)
        }
        (op, k) => Err(Error::invalid(
            format!("{op} is not an operation on {k}"),
            Some("op"),
        )),
    }
}

/// A new record, household, person or house from the device.
fn apply_create(
    db: &mut dyn Sql,
    ctx: &mut Ctx<'_>,
    e: &OutboxEntry,
    k: EntityKind,
    at: DateTime<Utc>,
    by: String,
    device: Option<Uuid>,
) -> Result<(), Error> {
    let mut data = e.fields.clone();
    if data.get("id").and_then(Value::as_str) != Some(e.record_id.to_string().as_str()) {
        return Err(Error::invalid(
            "the id must be the entry's record id",
            Some("fields.id"),
        ));
    }
    if let Some(domain) = k.domain() {
        data.insert("author".into(), Value::String(by.clone()));
        if data
            .get("supervision")
            .is_some_and(|v| v.as_str() != Some("NONE"))
        {
            return Err(Error::invalid(
                "supervision is set by the county, not by a device",
                Some("fields.supervision"),
            ));
        }
        let initial = lifecycle(domain).initial;
        let status = data.get("status").and_then(Value::as_str);
        if status != Some(initial.code()) {
            return Err(crate::domain::ValidationErrors::single(
                "fields.status",
                match status.and_then(|c| Status::from_code(c).ok()) {
                    Some(status) => crate::domain::Problem::NotInitialStatus {
                        status,
                        initial,
                        domain,
                    },
                    None => crate::domain::Problem::Required,
                },
            )
            .into());
        }
    }
    let (grid, parent) = check_typed(db, ctx, k, &data, true).map_err(|f| f.at("fields"))?;
    let grid_code = grid_code_in_scope(db, ctx, grid).map_err(|f| f.at("fields.grid_id"))?;
    if ctx.head(db, e.record_id)?.is_some() {
        return Err(Refusal::Conflict(format!("{} {} already exists", k, e.record_id)).into());
    }
    if k.is_record() {
        link_photos(db, ctx, e.record_id, &grid_code, &photo_list(&data), &|i| {
            format!("fields.photos[{i}]")
        })?;
    }
    let seq = ctx.seq(db)?;
    let created = data
        .get("created_at")
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(at);
    let mut ent = new_entity(
        k,
        e.record_id,
        grid,
        grid_code,
        parent,
        data,
        seq,
        at,
        &by,
        created,
    );
    ent.meta.created.device = device;
    ctx.add(ent);
    audit_entry(ctx, e, "CREATE");
    Ok(())
}

/// Changed fields of an entity: merged field by field ([`crate::merge`]).
fn apply_update(
    db: &mut dyn Sql,
    ctx: &mut Ctx<'_>,
    e: &OutboxEntry,
    k: EntityKind,
    at: DateTime<Utc>,
    by: String,
    device: Option<Uuid>,
) -> Result<(), Error> {
    let what = k.code().to_lowercase();
    let mut ent = scoped(db, ctx, e.record_id, &what)?;
    if ent.kind != k {
        return Err(not_in_scope(&what, e.record_id));
    }
    // A record's status moves only by its lifecycle; a person's (在册, 迁出, 死亡) is a plain
    // field the worker keeps, but merging two people is the county's. Supervision (督办) is
    // the county's to set, never a device's.
    for f in ["id", "created_at", "author", "status", "supervision"] {
        if f == "status" && k == EntityKind::Person {
            if e.fields.get(f).and_then(Value::as_str) == Some(PersonStatus::Merged.code()) {
                return Err(Error::invalid(
                    "only the county merges people",
                    Some("fields.status"),
                ));
            }
            continue;
        }
        if e.fields.contains_key(f) {
            return Err(Error::invalid(
                format!("{f} cannot be edited"),
                Some(&format!("fields.{f}")),
            ));
        }
    }
    let mut changed = Vec::new();
    let mut lost = Vec::new();
    for (field, value) in &e.fields {
        let meta = ent.meta.get(field).clone();
        let current = ent.data.get(field).cloned().unwrap_or(Value::Null);
        let edit = FieldEdit {
            value,
            base_version: e.base_version,
            at,
            by: &by,
            device,
        };
        match decide(Some((&current, &meta)), &edit) {
            Decision::Apply => changed.push((field.clone(), value.clone())),
            Decision::Same => {}
            Decision::WinsConflict => {
                lost.push((
                    field.clone(),
                    current.clone(),
                    meta.clone(),
                    value.clone(),
                    false,
                ));
                changed.push((field.clone(), value.clone()));
            }
            Decision::LosesConflict => {
                lost.push((field.clone(), current, meta, value.clone(), true))
            }
        }
    }
    if changed.is_empty() && lost.is_empty() {
        audit_entry(ctx, e, "UPDATE_NOOP");
        return Ok(());
    }
    if !changed.is_empty() {
        let seq = ctx.seq(db)?;
        for (f, v) in &changed {
            ent.data.insert(f.clone(), v.clone());
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
        let (grid, parent) =
            check_typed(db, ctx, k, &ent.data, false).map_err(|f| f.at("fields"))?;
        if grid != ent.grid_id {
            ent.grid_code =
                grid_code_in_scope(db, ctx, grid).map_err(|f| f.at("fields.grid_id"))?;
            ent.grid_id = grid;
            repo::move_record_photos(db, ent.id, &ent.grid_code)?;
        }
        if k.is_record() && changed.iter().any(|(f, _)| f == "photos") {
            link_photos(
                db,
                ctx,
                ent.id,
                &ent.grid_code,
                &photo_list(&ent.data),
                &|i| format!("fields.photos[{i}]"),
            )?;
        }
        ent.parent_id = parent.or(ent.parent_id);
        ent.version = seq;
        repo::put_entity(db, &ent, ctx.server_now)?;
    }
    for (field, current, meta, edit_value, edit_lost) in lost {
        let (kept, lost_v, kept_by, lost_by, kept_at, lost_at) = if edit_lost {
            (current, edit_value, meta.by, by.clone(), meta.at, at)
        } else {
            (edit_value, current, by.clone(), meta.by, at, meta.at)
        };
        record_conflict(
            db, ctx, &ent, &field, kept, lost_v, kept_by, lost_by, kept_at, lost_at,
        )?;
    }
    audit_entry(ctx, e, "UPDATE");
    Ok(())
}

/// A status move the worker made, checked against the lifecycle; a move that crosses the
/// county's is decided by the merge rule.
fn apply_transition(
    db: &mut dyn Sql,
    ctx: &mut Ctx<'_>,
    e: &OutboxEntry,
    k: EntityKind,
    at: DateTime<Utc>,
    by: String,
) -> Result<(), Error> {
    let what = k.code().to_lowercase();
    let mut ent = scoped(db, ctx, e.record_id, &what)?;
    let domain = k.domain().expect("records have domains");
    let code = |f: &str| -> Result<Status, Error> {
        let s = e.fields.get(f).and_then(Value::as_str).ok_or_else(|| {
            Error::invalid(format!("{f} is required"), Some(&format!("fields.{f}")))
        })?;
        Status::from_code(s)
            .map_err(|err| Error::invalid(err.to_string(), Some(&format!("fields.{f}"))))
    };
    let (to, from) = (code("status")?, code("from")?);
    let note = e
        .fields
        .get("note")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let current = ent
        .status()
        .and_then(|s| Status::from_code(s).ok())
        .ok_or_else(|| Error::Internal(format!("record {} has no status", ent.id)))?;
    if current == from {
        check_transition(ent.id, domain, from, to, Actor::Worker)
            .map_err(|err| Error::lifecycle(err, "fields.status"))?;
    } else if check_transition(ent.id, domain, current, to, Actor::Worker).is_err() {
        // The county moved it meanwhile and the worker's move no longer fits: keep the
        // county's status, and show the worker's as a conflict.
        let meta = ent.meta.get("status").clone();
        record_conflict(
            db,
            ctx,
            &ent,
            "status",
            Value::String(current.code().into()),
            Value::String(to.code().into()),
            meta.by,
            by.clone(),
            meta.at,
            at,
        )?;
        audit_entry(ctx, e, "TRANSITION_CONFLICT");
        return Ok(());
    }
    set_status(db, ctx, &mut ent, current, to, note, &by, at)?;
    audit_entry(ctx, e, &format!("TRANSITION {} -> {}", current, to));
    Ok(())
}

/// A photo named by a record: linked once its bytes are here.
fn apply_photo(
    db: &mut dyn Sql,
    ctx: &mut Ctx<'_>,
    e: &OutboxEntry,
    at: DateTime<Utc>,
    by: String,
    device: Option<Uuid>,
) -> Result<(), Error> {
    let record_id = e
        .fields
        .get("record_id")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| Error::invalid("record_id is required", Some("fields.record_id")))?;
    let sha = e
        .fields
        .get("sha256")
        .and_then(Value::as_str)
        .filter(|s| crate::domain::model::is_sha256_hex(s))
        .ok_or_else(|| {
            Error::invalid(
                "sha256 must be 64 lower-case hex digits",
                Some("fields.sha256"),
            )
        })?
        .to_owned();
    let size = e.fields.get("size").and_then(Value::as_i64).unwrap_or(0);
    let mime = e
        .fields
        .get("mime")
        .and_then(Value::as_str)
        .unwrap_or("image/jpeg")
        .to_owned();
    if !crate::domain::model::PHOTO_MIMES.contains(&mime.as_str()) {
        return Err(Error::invalid(
            format!(
                "照片只能是 JPEG、PNG 或 WebP 图片 (a photo is a JPEG, PNG or WebP image, not {mime})"
            ),
            Some("fields.mime"),
        ));
    }
    if !(1..=crate::server::MAX_PHOTO_BYTES as i64).contains(&size) {
        return Err(Error::invalid(
            format!(
                "照片大小须在 1 到 {} 字节之间 (a photo is an image of 1 to {} bytes)",
                crate::server::MAX_PHOTO_BYTES,
                crate::server::MAX_PHOTO_BYTES
            ),
            Some("fields.size"),
        ));
    }
    let mut rec = scoped(db, ctx, record_id, "record")?;
    if !rec.kind.is_record() {
        return Err(not_in_scope("record", record_id).at("fields.record_id"));
    }
    link_photos(
        db,
        ctx,
        rec.id,
        &rec.grid_code.clone(),
        std::slice::from_ref(&sha),
        &|_| "fields.sha256".to_owned(),
    )?;
    let photos = rec
        .data
        .entry("photos")
        .or_insert_with(|| Value::Array(vec![]));
    if let Value::Array(list) = photos
        && !list.iter().any(|v| v.as_str() == Some(&sha))
    {
        list.push(Value::String(sha.clone()));
        let seq = ctx.seq(db)?;
        rec.meta.set(
            "photos",
            FieldMeta {
                version: seq,
                at,
                by: by.clone(),
                device,
            },
        );
        rec.version = seq;
        repo::put_entity(db, &rec, ctx.server_now)?;
    }
    repo::add_photo(db, &sha, size, &mime, &by, device, ctx.server_now)?;
    audit_entry(ctx, e, "PHOTO");
    Ok(())
}

/// An audit line from the device (a reveal of a phone or an ID number).
fn apply_audit(
    ctx: &mut Ctx<'_>,
    e: &OutboxEntry,
    at: DateTime<Utc>,
    by: String,
) -> Result<(), Error> {
    let action = e
        .fields
        .get("action")
        .and_then(Value::as_str)
        .unwrap_or("DEVICE")
        .to_owned();
    let detail = Value::Object(e.fields.clone()).to_string();
    ctx.audits.push(repo::AuditLine {
        at,
        username: by.clone(),
        device: ctx.device,
        action: format!("DEVICE {action}"),
        kind: Some(EntityKind::Person),
        entity: e
            .fields
            .get("target_id")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok()),
        detail: Some(detail),
    });
    Ok(())
}

/// An append-only child (visit, mediation session, report, track points): kept once.
fn apply_append(
    db: &mut dyn Sql,
    ctx: &mut Ctx<'_>,
    e: &OutboxEntry,
    k: EntityKind,
    at: DateTime<Utc>,
    by: String,
) -> Result<(), Error> {
    if ctx.head(db, e.record_id)?.is_some() {
        return Ok(()); // append-only: already here, nothing to do
    }
    let data = e.fields.clone();
    if data.get("id").and_then(Value::as_str) != Some(e.record_id.to_string().as_str()) {
        return Err(Error::invalid(
            "the id must be the entry's record id",
            Some("fields.id"),
        ));
    }
    let (grid, parent) = check_typed(db, ctx, k, &data, false).map_err(|f| f.at("fields"))?;
    let grid_code = grid_code_in_scope(db, ctx, grid)?;
    let seq = ctx.seq(db)?;
    let ent = new_entity(
        k,
        e.record_id,
        grid,
        grid_code,
        parent,
        data,
        seq,
        at,
        &by,
        at,
    );
    ctx.add(ent);
    if k == EntityKind::PatrolPoints
        && let Some(p) = parent
    {
        update_patrol_distance(db, ctx, p, at)?;
    }
    audit_entry(ctx, e, "APPEND");
    Ok(())
}

/// The photo hashes a record's data names.
pub(super) fn photo_list(data: &Map<String, Value>) -> Vec<String> {
    match data.get("photos") {
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// Records that record `record` (in grid `grid_code`) names these photos, as attached by
/// this entry's account. A photo already uploaded by another account may be named only by
/// an account that can already read it (its scope holds a record the uploader attached it
/// to); otherwise the entry is refused, as if the photo did not exist, so a hash cannot be
/// used to read another account's photo. The same worker's two records may share a photo.
pub(super) fn link_photos(
    db: &mut dyn Sql,
    ctx: &mut Ctx<'_>,
    record: Uuid,
    grid_code: &str,
    shas: &[String],
    field: &dyn Fn(usize) -> String,
) -> Result<(), Error> {
    for (i, sha) in shas.iter().enumerate() {
        if !crate::domain::model::is_sha256_hex(sha) {
            return Err(Error::invalid(
                "照片编号应为 64 位小写十六进制 SHA-256 (must be a SHA-256 digest in 64 lower-case hex digits)",
                Some(&field(i)),
            ));
        }
        if !repo::may_name_photo(db, sha, &ctx.user.username, &ctx.scope)? {
            return Err(Error::invalid(
                "这张照片由其他账号上传，不能用在您的记录里；请用手机重新拍摄 \
                 (this photo was uploaded by another account and is not yours to attach)",
                Some(&field(i)),
            ));
        }
        repo::link_photo(db, sha, record, grid_code, &ctx.user.username)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(super) fn set_status(
    db: &mut dyn Sql,
    ctx: &mut Ctx<'_>,
    ent: &mut Entity,
    from: Status,
    to: Status,
    note: Option<String>,
    by: &str,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    let seq = ctx.seq(db)?;
    ent.data
        .insert("status".into(), Value::String(to.code().into()));
    ent.meta.set(
        "status",
        FieldMeta {
            version: seq,
            at,
            by: by.to_owned(),
            device: ctx.device,
        },
    );
    ent.version = seq;
    repo::put_entity(db, ent, ctx.server_now)?;
    repo::add_status_change(
        db,
        &StatusChange {
            record_id: ent.id,
            from,
            to,
            at,
            actor: by.to_owned(),
            note,
        },
    )?;
    Ok(())
}

pub(super) fn update_patrol_distance(
    db: &mut dyn Sql,
    ctx: &mut Ctx<'_>,
    patrol: Uuid,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    ctx.flush(db)?;
    let rows = db.query(
        "SELECT data FROM entities WHERE parent_id = $1 AND kind = 'PATROL_POINTS'",
        crate::args![patrol.to_string()],
    )?;
    let mut points = Vec::new();
    for r in rows {
        let b: PatrolPoints = parse(
            &serde_json::from_str::<Value>(r[0].str()?)
                .map_err(|e| Error::Internal(e.to_string()))?,
        )?;
        points.extend(b.points);
    }
    points.sort_by_key(|p| p.at);
    let Some(mut ent) = repo::get_entity(db, patrol)? else {
        return Ok(());
    };
    let d = track_length_m(&points);
    ent.data.insert("distance_m".into(), serde_json::json!(d));
    let seq = ctx.seq(db)?;
    ent.meta.set(
        "distance_m",
        FieldMeta {
            version: seq,
            at,
            by: "server".into(),
            device: None,
        },
    );
    ent.version = seq;
    repo::put_entity(db, &ent, ctx.server_now)?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(super) fn record_conflict(
    db: &mut dyn Sql,
    ctx: &mut Ctx<'_>,
    ent: &Entity,
    field: &str,
    kept: Value,
    lost: Value,
    kept_by: String,
    lost_by: String,
    kept_at: DateTime<Utc>,
    lost_at: DateTime<Utc>,
) -> Result<(), Error> {
    let c = Conflict {
        id: new_id(),
        entity_kind: ent.kind,
        entity_id: ent.id,
        grid_id: ent.grid_id,
        field: field.to_owned(),
        kept,
        lost,
        kept_by,
        lost_by,
        kept_at,
        lost_at,
        created_at: ctx.server_now,
        settled_by: None,
        settled_at: None,
    };
    let seq = ctx.seq(db)?;
    let data = object(serde_json::to_value(&c).map_err(|e| Error::Internal(e.to_string()))?);
    let ce = new_entity(
        EntityKind::Conflict,
        c.id,
        ent.grid_id,
        ent.grid_code.clone(),
        Some(ent.id),
        data,
        seq,
        ctx.server_now,
        "server",
        ctx.server_now,
    );
    repo::put_entity(db, &ce, ctx.server_now)?;
    ctx.audits.push(repo::AuditLine {
        at: ctx.server_now,
        username: ctx.user.username.clone(),
        device: ctx.device,
        action: "CONFLICT".into(),
        kind: Some(ent.kind),
        entity: Some(ent.id),
        detail: Some(format!("field {field}")),
    });
    ctx.conflicts += 1;
    Ok(())
}
