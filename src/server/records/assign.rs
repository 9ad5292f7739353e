//! Dispatching records to ASSIGNEE accounts, and what such an account may reach: only the
//! records dispatched to it, each as if its grid were the account's whole scope.

use super::*;

/// The context a county account acts on `record` with: a reviewer's own scope, or, for an
/// assignee, the record's grid if the record is dispatched to it (anything else answers "not
/// found", as a record out of scope does).
pub(super) fn acting_ctx<'a>(
    db: &mut dyn Sql,
    user: &'a User,
    record: Uuid,
    now: DateTime<Utc>,
) -> Result<Ctx<'a>, Error> {
    if user.role == crate::wire::Role::Assignee {
        let mut ctx = Ctx::new(user, None, now, now);
        ctx.scope = assigned_scope(db, user, record)?;
        return Ok(ctx);
    }
    if !user.role.reviews() {
        return Err(
            Refusal::Forbidden("only village, town and county staff may do this".into()).into(),
        );
    }
    Ok(Ctx::new(user, None, now, now))
}

/// An assignee's scope for one record: its grid, when the record is dispatched to the account.
pub(super) fn assigned_scope(db: &mut dyn Sql, user: &User, record: Uuid) -> Result<Scope, Error> {
    let mine = repo::assignee_of(db, record)?.is_some_and(|a| a == user.username);
    match repo::entity_head(db, record)? {
        Some((kind, code)) if mine && kind.is_record() => Ok(Scope::Area(code)),
        _ => Err(not_in_scope("record", record)),
    }
}

/// A reviewer dispatches a record in scope to an assignee account whose area takes in the
/// record's grid; a later dispatch replaces the earlier one. The dispatch is logged (who, to
/// whom, when, the note) and audited.
pub fn dispatch(
    db: &mut dyn Sql,
    user: &User,
    record: Uuid,
    assignee: &str,
    note: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let ctx = acting_ctx(db, user, record, now)?;
    if !user.role.reviews() {
        return Err(
            Refusal::Forbidden("only village, town and county staff dispatch".into()).into(),
        );
    }
    let ent = scoped(db, &ctx, record, "record")?;
    if !ent.kind.is_record() {
        return Err(not_in_scope("record", record));
    }
    let fits = repo::assignees_for(db, &ent.grid_code)?
        .into_iter()
        .any(|a| a.username == assignee);
    if !fits {
        return Err(Refusal::invalid(
            format!("「{assignee}」不是可接收这条记录的承办部门账号：请在「分派给」中从列表里选择"),
            Some("assignee"),
        )
        .into());
    }
    repo::dispatch(db, record, assignee, &user.username, note, now)?;
    repo::audit(
        db,
        now,
        &user.username,
        None,
        "DISPATCH",
        Some(ent.kind),
        Some(record),
        Some(assignee.to_owned()),
    )?;
    Ok(())
}
