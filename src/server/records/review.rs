//! The county's own moves (transitions, replies, settling conflicts, edits) and the reads the
//! dashboard and the API share; they reach devices with their next pull.

use super::*;

pub(super) fn reviewer_ctx(user: &User, now: DateTime<Utc>) -> Result<Ctx<'_>, Error> {
    if !user.role.reviews() {
        return Err(
            Refusal::Forbidden("only village, town and county staff may do this".into()).into(),
        );
    }
    Ok(Ctx::new(user, None, now, now))
}

/// A reviewer moves a record (accept, assign, reply, resolve, verify, return, escalate...),
/// optionally with a reply to the worker.
pub fn review_transition(
    db: &mut dyn Sql,
    user: &User,
    record: Uuid,
    to: Status,
    note: Option<String>,
    now: DateTime<Utc>,
) -> Result<Value, Error> {
    let mut ctx = acting_ctx(db, user, record, now)?;
    let mut ent = scoped(db, &ctx, record, "record")?;
    let domain = ent
        .kind
        .domain()
        .ok_or_else(|| not_in_scope("record", record))?;
    let from = ent
        .status()
        .and_then(|s| Status::from_code(s).ok())
        .ok_or_else(|| Error::Internal(format!("record {record} has no status")))?;
    if user.role == crate::wire::Role::Assignee && !crate::domain::lifecycle::assignee_may(from, to)
    {
        return Err(Refusal::Forbidden(format!(
            "承办部门只能把记录从「{}」改为办理中、已办结、已答复或已整改，不能改为「{}」",
            from.zh(),
            to.zh()
        ))
        .into());
    }
    check_transition(record, domain, from, to, Actor::Reviewer)
        .map_err(|e| Error::lifecycle(e, "to"))?;
    set_status(
        db,
        &mut ctx,
        &mut ent,
        from,
        to,
        note.clone(),
        &user.username,
        now,
    )?;
    repo::audit(
        db,
        now,
        &user.username,
        None,
        &format!("TRANSITION {from} -> {to}"),
        Some(ent.kind),
        Some(record),
        note.clone(),
    )?;
    if let Some(text) = note.filter(|t| !t.trim().is_empty()) {
        reply(db, user, record, &text, now)?;
    }
    Ok(Value::Object(ent.data))
}

/// A reviewer's reply on a record; it reaches the worker's phone with the next pull.
pub fn reply(
    db: &mut dyn Sql,
    user: &User,
    record: Uuid,
    text: &str,
    now: DateTime<Utc>,
) -> Result<Reply, Error> {
    let ctx = acting_ctx(db, user, record, now)?;
    if text.trim().is_empty() || text.chars().count() > 2000 {
        return Err(Error::invalid(
            "a reply is 1 to 2000 characters",
            Some("text"),
        ));
    }
    let rec = scoped(db, &ctx, record, "record")?;
    if !rec.kind.is_record() {
        return Err(not_in_scope("record", record));
    }
    let r = Reply {
        id: new_id(),
        record_id: record,
        author: user.display_name.clone(),
        text: text.to_owned(),
        created_at: now,
    };
    let seq = repo::next_seq(db)?;
    let data = object(serde_json::to_value(&r).map_err(|e| Error::Internal(e.to_string()))?);
    let ent = new_entity(
        EntityKind::Reply,
        r.id,
        rec.grid_id,
        rec.grid_code,
        Some(record),
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
        "REPLY",
        Some(rec.kind),
        Some(record),
        None,
    )?;
    Ok(r)
}

/// The highest supervision (督办) an account may set or lift: a village secretary the
/// village's, a town account the town's, the county's administrator any.
pub fn supervision_limit(role: crate::wire::Role) -> Supervision {
    use crate::wire::Role::*;
    match role {
        Admin => Supervision::County,
        Town => Supervision::Town,
        Secretary => Supervision::Village,
        Worker | Assignee | Relay => Supervision::None,
    }
}

/// A reviewer puts a matter under supervision (督办) at a level, or lifts it
/// ([`Supervision::None`]), with a note. Any open matter may be supervised (the dashboard
/// points at overdue ones); handled and ended ones and patrol logs may not. The note reaches
/// the worker as a reply on the record, so the record's thread keeps who did it and why.
pub fn set_supervision(
    db: &mut dyn Sql,
    user: &User,
    record: Uuid,
    level: Supervision,
    note: &str,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let ctx = reviewer_ctx(user, now)?;
    let mut ent = scoped(db, &ctx, record, "record")?;
    let domain = ent
        .kind
        .domain()
        .ok_or_else(|| not_in_scope("record", record))?;
    let status = ent
        .status()
        .and_then(|s| Status::from_code(s).ok())
        .ok_or_else(|| Error::Internal(format!("record {record} has no status")))?;
    if crate::domain::deadline::phase(domain, status) == crate::domain::deadline::Phase::Done {
        return Err(Error::invalid(
            format!(
                "督办：此事项{}，不在办理中，不能督办或取消督办",
                status.zh()
            ),
            Some("supervision"),
        ));
    }
    let current = ent
        .data
        .get("supervision")
        .and_then(Value::as_str)
        .and_then(|c| Supervision::from_code(c).ok())
        .unwrap_or_default();
    let limit = supervision_limit(user.role);
    if level.rank() > limit.rank() || current.rank() > limit.rank() {
        return Err(Refusal::Forbidden(format!(
            "督办：{}只能设置或取消{}及以下的督办（此事项现为{}）",
            user.role.zh(),
            limit.zh(),
            current.zh()
        ))
        .into());
    }
    let note = note.trim();
    if level != Supervision::None && note.is_empty() {
        return Err(Error::invalid(
            "督办说明：请写明督办的原因和要求（如限期几日内办结）",
            Some("note"),
        ));
    }
    if note.chars().count() > 500 {
        return Err(Error::invalid(
            "督办说明：最多 500 字，请精简后再提交",
            Some("note"),
        ));
    }
    if level == current {
        return Ok(());
    }
    let seq = repo::next_seq(db)?;
    ent.data
        .insert("supervision".into(), Value::String(level.code().into()));
    ent.meta.set(
        "supervision",
        FieldMeta {
            version: seq,
            at: now,
            by: user.username.clone(),
            device: None,
        },
    );
    ent.version = seq;
    repo::put_entity(db, &ent, now)?;
    let words = match level {
        Supervision::None => format!("取消{}", current.zh()),
        l => l.zh().to_owned(),
    };
    let text = if note.is_empty() {
        words.clone()
    } else {
        format!("{words}：{note}")
    };
    repo::audit(
        db,
        now,
        &user.username,
        None,
        &format!("SUPERVISE {}", level.code()),
        Some(ent.kind),
        Some(record),
        Some(text.clone()),
    )?;
    reply(db, user, record, &text, now)?;
    Ok(())
}

/// Settles a conflict: keep the value that won, or put the losing one in its place.
pub fn settle_conflict(
    db: &mut dyn Sql,
    user: &User,
    conflict: Uuid,
    take_lost: bool,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let ctx = reviewer_ctx(user, now)?;
    let mut ce = scoped(db, &ctx, conflict, "conflict")?;
    if ce.kind != EntityKind::Conflict {
        return Err(not_in_scope("conflict", conflict));
    }
    let mut c: Conflict = parse(&Value::Object(ce.data.clone()))?;
    if c.settled_at.is_some() {
        return Err(Refusal::Conflict(format!("conflict {conflict} is already settled")).into());
    }
    if take_lost {
        let mut ent = scoped(db, &ctx, c.entity_id, "record")?;
        if c.field == "status" {
            return Err(Error::invalid(
                "a status conflict is settled by a transition",
                Some("take"),
            ));
        }
        let seq = repo::next_seq(db)?;
        ent.data.insert(c.field.clone(), c.lost.clone());
        ent.meta.set(
            &c.field,
            FieldMeta {
                version: seq,
                at: now,
                by: user.username.clone(),
                device: None,
            },
        );
        ent.version = seq;
        repo::put_entity(db, &ent, now)?;
    }
    c.settled_by = Some(user.username.clone());
    c.settled_at = Some(now);
    let seq = repo::next_seq(db)?;
    ce.data = object(serde_json::to_value(&c).map_err(|e| Error::Internal(e.to_string()))?);
    ce.version = seq;
    repo::put_entity(db, &ce, now)?;
    repo::audit(
        db,
        now,
        &user.username,
        None,
        if take_lost {
            "SETTLE_TAKE_LOST"
        } else {
            "SETTLE_KEEP"
        },
        Some(c.entity_kind),
        Some(c.entity_id),
        Some(c.field),
    )?;
    Ok(())
}

/// A reviewer sets fields of a record that are the county's to fill (a hazard's owner and
/// rectification due date when it is dispatched). Each field gets a new version, so it flows
/// down to the worker's device with the next pull; the change is audited.
pub fn review_edit(
    db: &mut dyn Sql,
    user: &User,
    record: Uuid,
    fields: Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    const COUNTY_FIELDS: &[(EntityKind, &str)] = &[
        (EntityKind::Hazard, "owner"),
        (EntityKind::Hazard, "due_date"),
    ];
    let ctx = reviewer_ctx(user, now)?;
    let mut ent = scoped(db, &ctx, record, "record")?;
    for k in fields.keys() {
        if !COUNTY_FIELDS.contains(&(ent.kind, k.as_str())) {
            return Err(Error::invalid(
                format!(
                    "{} is not a field the county sets on a {} record",
                    k,
                    ent.kind.code()
                ),
                Some(k),
            ));
        }
    }
    let mut data = ent.data.clone();
    for (k, v) in &fields {
        data.insert(k.clone(), v.clone());
    }
    let domain = ent
        .kind
        .domain()
        .ok_or_else(|| not_in_scope("record", record))?;
    // The edited record must still be a valid record.
    AnyRecord::from_json(domain, Value::Object(data.clone()))
        .map_err(|e| Error::invalid(e.to_string(), None))?;
    let seq = repo::next_seq(db)?;
    for k in fields.keys() {
        ent.meta.set(
            k,
            FieldMeta {
                version: seq,
                at: now,
                by: user.username.clone(),
                device: None,
            },
        );
    }
    ent.data = data;
    ent.version = seq;
    repo::put_entity(db, &ent, now)?;
    repo::audit(
        db,
        now,
        &user.username,
        None,
        "EDIT",
        Some(ent.kind),
        Some(record),
        Some(fields.keys().cloned().collect::<Vec<_>>().join(", ")),
    )?;
    Ok(())
}

/// Records in scope for the county's lists: newest first, with optional filters.
pub fn list_records(
    db: &mut dyn Sql,
    user: &User,
    kind: Option<EntityKind>,
    status: Option<Status>,
    limit: usize,
) -> Result<Vec<Value>, Error> {
    let (clause, mut args) = if user.role == crate::wire::Role::Assignee {
        (
            "id IN (SELECT record_id FROM record_assignees WHERE assignee = $1)".to_owned(),
            vec![crate::server::db::V::T(user.username.clone())],
        )
    } else {
        user.scope().clause(1)
    };
    let mut sql = format!(
        "SELECT data FROM entities WHERE {clause} AND kind IN ({})",
        repo::RECORD_KINDS
    );
    if let Some(k) = kind {
        args.push(k.code().into());
        sql.push_str(&format!(" AND kind = ${}", args.len()));
    }
    if let Some(s) = status {
        args.push(s.code().into());
        sql.push_str(&format!(" AND status = ${}", args.len()));
    }
    args.push(crate::server::db::V::I(limit.min(10_000) as i64));
    sql.push_str(&format!(" ORDER BY created_at DESC LIMIT ${}", args.len()));
    db.query(&sql, &args)?
        .into_iter()
        .map(|r| {
            let mut v: Value =
                serde_json::from_str(r[0].str()?).map_err(|e| Error::Internal(e.to_string()))?;
            crate::domain::validate::mask_personal(&mut v);
            Ok(v)
        })
        .collect()
}

/// One record in scope with its history and replies; phones and ID numbers masked unless
/// `reveal` (the caller checks who may, and audits it).
pub fn record_detail(
    db: &mut dyn Sql,
    user: &User,
    id: Uuid,
    reveal: bool,
) -> Result<Value, Error> {
    let now = Utc::now();
    let mut ctx = Ctx::new(user, None, now, now);
    if user.role == crate::wire::Role::Assignee {
        ctx.scope = assign::assigned_scope(db, user, id)?;
    }
    let ent = scoped(db, &ctx, id, "record")?;
    if !ent.kind.is_record() {
        return Err(not_in_scope("record", id));
    }
    let history = repo::status_histories(db, &[id])?
        .remove(&id)
        .unwrap_or_default();
    let children = db.query(
        "SELECT kind, data FROM entities WHERE parent_id = $1 ORDER BY version",
        crate::args![id.to_string()],
    )?;
    let mut by_kind: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in children {
        by_kind
            .entry(r[0].string()?)
            .or_default()
            .push(serde_json::from_str(r[1].str()?).map_err(|e| Error::Internal(e.to_string()))?);
    }
    let mut v = serde_json::json!({
        "kind": ent.kind,
        "version": ent.version,
        "record": Value::Object(ent.data),
        "history": history,
        "children": by_kind,
    });
    if !reveal {
        crate::domain::validate::mask_personal(&mut v);
    }
    Ok(v)
}

/// Writes remote-origin state (imports, the demo seeder) as an entity with version `seq`
/// (reserve numbers with [`repo::reserve_seqs`]).
#[allow(clippy::too_many_arguments)] // each is one column of the entity
pub fn import_entity(
    db: &mut dyn Sql,
    seq: i64,
    kind: EntityKind,
    id: Uuid,
    grid_id: Uuid,
    grid_code: &str,
    parent_id: Option<Uuid>,
    data: Value,
    created_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let ent = new_entity(
        kind,
        id,
        grid_id,
        grid_code.to_owned(),
        parent_id,
        object(data),
        seq,
        created_at,
        "import",
        created_at,
    );
    repo::put_entity(db, &ent, now)?;
    // Its photos are its author's, as if pushed by them.
    if kind.is_record() {
        let author = ent
            .data
            .get("author")
            .and_then(Value::as_str)
            .unwrap_or("import")
            .to_owned();
        for sha in photo_list(&ent.data) {
            repo::link_photo(db, &sha, id, grid_code, &author)?;
        }
    }
    Ok(())
}
