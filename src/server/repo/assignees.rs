//! Records dispatched to ASSIGNEE accounts (departments or people): the current assignee of
//! each record and every dispatch made.

use super::*;

/// A record's current assignee.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub record_id: Uuid,
    /// The assignee account's username.
    pub assignee: String,
    pub dispatched_by: String,
    pub dispatched_at: DateTime<Utc>,
}

/// One dispatch: who sent the record to whom, when, with the note.
#[derive(Debug, Clone, PartialEq)]
pub struct Dispatch {
    pub assignee: String,
    pub dispatched_by: String,
    pub dispatched_at: DateTime<Utc>,
    pub note: Option<String>,
}

/// An assignee account a record may be dispatched to.
#[derive(Debug, Clone, PartialEq)]
pub struct AssigneeAccount {
    pub username: String,
    pub display_name: String,
    pub scope_code: String,
}

/// Dispatches `record` to `assignee` (replacing any earlier assignee) and logs the dispatch.
pub fn dispatch(
    db: &mut dyn Sql,
    record: Uuid,
    assignee: &str,
    by: &str,
    note: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    db.exec(
        "DELETE FROM record_assignees WHERE record_id = $1",
        args![record.to_string()],
    )?;
    db.exec(
        "INSERT INTO record_assignees (record_id, assignee, dispatched_by, dispatched_at)
         VALUES ($1, $2, $3, $4)",
        args![record.to_string(), assignee, by, ts(now)],
    )?;
    db.exec(
        "INSERT INTO dispatches (record_id, assignee, dispatched_by, dispatched_at, note)
         VALUES ($1, $2, $3, $4, $5)",
        args![
            record.to_string(),
            assignee,
            by,
            ts(now),
            note.map(str::to_owned)
        ],
    )?;
    Ok(())
}

/// The username a record is dispatched to, if any.
pub fn assignee_of(db: &mut dyn Sql, record: Uuid) -> Result<Option<String>, DbError> {
    db.query_opt(
        "SELECT assignee FROM record_assignees WHERE record_id = $1",
        args![record.to_string()],
    )?
    .map(|r| r[0].string())
    .transpose()
}

/// The assignees of these records (those that have one).
pub fn assignees_of(db: &mut dyn Sql, ids: &[Uuid]) -> Result<BTreeMap<Uuid, String>, DbError> {
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(500) {
        let args: Vec<V> = chunk.iter().map(|i| V::T(i.to_string())).collect();
        for r in db.query(
            &format!(
                "SELECT record_id, assignee FROM record_assignees WHERE record_id IN ({})",
                params(1, chunk.len())
            ),
            &args,
        )? {
            out.insert(uuid(r[0].str()?)?, r[1].string()?);
        }
    }
    Ok(out)
}

/// Every record dispatched to `assignee`, newest dispatch first.
pub fn assigned_to(db: &mut dyn Sql, assignee: &str) -> Result<Vec<Assignment>, DbError> {
    db.query(
        "SELECT record_id, assignee, dispatched_by, dispatched_at FROM record_assignees
         WHERE assignee = $1 ORDER BY dispatched_at DESC",
        args![assignee],
    )?
    .into_iter()
    .map(|r| {
        Ok(Assignment {
            record_id: uuid(r[0].str()?)?,
            assignee: r[1].string()?,
            dispatched_by: r[2].string()?,
            dispatched_at: parse_ts(r[3].str()?)?,
        })
    })
    .collect()
}

/// A record's dispatches, oldest first.
pub fn dispatches(db: &mut dyn Sql, record: Uuid) -> Result<Vec<Dispatch>, DbError> {
    db.query(
        "SELECT assignee, dispatched_by, dispatched_at, note FROM dispatches
         WHERE record_id = $1 ORDER BY dispatched_at",
        args![record.to_string()],
    )?
    .into_iter()
    .map(|r| {
        Ok(Dispatch {
            assignee: r[0].string()?,
            dispatched_by: r[1].string()?,
            dispatched_at: parse_ts(r[2].str()?)?,
            note: r[3].opt_string()?,
        })
    })
    .collect()
}

/// Enabled assignee accounts whose area takes in `grid_code` (a county department takes in
/// every grid, a town's the town's, a village's the village's), by name.
pub fn assignees_for(db: &mut dyn Sql, grid_code: &str) -> Result<Vec<AssigneeAccount>, DbError> {
    Ok(db
        .query(
            "SELECT username, display_name, scope_code FROM users
             WHERE role = 'ASSIGNEE' AND disabled = 0 ORDER BY scope_code, display_name",
            &[],
        )?
        .into_iter()
        .map(|r| {
            Ok(AssigneeAccount {
                username: r[0].string()?,
                display_name: r[1].string()?,
                scope_code: r[2].string()?,
            })
        })
        .collect::<Result<Vec<_>, DbError>>()?
        .into_iter()
        .filter(|a| grid_code.starts_with(&a.scope_code))
        .collect())
}

/// A photo of a record dispatched to `assignee` ([`photo_in_scope`]'s rule, over those
/// records only).
pub fn photo_assigned_to(
    db: &mut dyn Sql,
    assignee: &str,
    sha: &str,
) -> Result<Option<(Vec<u8>, String)>, DbError> {
    db.query_opt(
        "SELECT p.data, p.mime FROM photos p
         WHERE p.sha256 = $1 AND p.complete = 1 AND EXISTS (
           SELECT 1 FROM record_photos r
           WHERE r.sha256 = p.sha256 AND r.username = p.uploaded_by AND r.record_id IN (
             SELECT record_id FROM record_assignees WHERE assignee = $2))",
        args![sha, assignee],
    )?
    .map(|r| Ok((r[0].bytes()?, r[1].string()?)))
    .transpose()
}
