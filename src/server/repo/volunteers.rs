//! Volunteers (志愿者, e.g. 银龄使者服务队): people of a village who help with matters and never
//! sign in. Registered by the village or county within its area; deactivated, never deleted.

use super::*;

/// A registered volunteer.
#[derive(Debug, Clone, PartialEq)]
pub struct Volunteer {
    pub id: Uuid,
    pub name: String,
    /// As checked by [`crate::domain::validate::Phone`]; pages show it masked.
    pub phone: String,
    pub team: String,
    pub village_code: String,
    pub active: bool,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// Registers a volunteer (already checked by the caller).
pub fn add_volunteer(db: &mut dyn Sql, v: &Volunteer) -> Result<(), DbError> {
    db.exec(
        "INSERT INTO volunteers (id, name, phone, team, village_code, active, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        args![
            v.id.to_string(),
            v.name.as_str(),
            v.phone.as_str(),
            v.team.as_str(),
            v.village_code.as_str(),
            i64::from(v.active),
            v.created_by.as_str(),
            ts(v.created_at)
        ],
    )?;
    Ok(())
}

fn row(r: &[V]) -> Result<Volunteer, DbError> {
    Ok(Volunteer {
        id: uuid(r[0].str()?)?,
        name: r[1].string()?,
        phone: r[2].string()?,
        team: r[3].string()?,
        village_code: r[4].string()?,
        active: r[5].i64()? != 0,
        created_by: r[6].string()?,
        created_at: parse_ts(r[7].str()?)?,
    })
}

const COLUMNS: &str = "id, name, phone, team, village_code, active, created_by, created_at";

/// The volunteers of villages whose code starts with `area` (a village's, a town's, the
/// county's), by village then name.
pub fn volunteers_in(db: &mut dyn Sql, area: &str) -> Result<Vec<Volunteer>, DbError> {
    db.query(
        &format!(
            "SELECT {COLUMNS} FROM volunteers WHERE village_code LIKE $1
             ORDER BY village_code, name, created_at"
        ),
        args![format!("{area}%")],
    )?
    .iter()
    .map(|r| row(r))
    .collect()
}

/// One volunteer by id.
pub fn volunteer(db: &mut dyn Sql, id: Uuid) -> Result<Option<Volunteer>, DbError> {
    db.query_opt(
        &format!("SELECT {COLUMNS} FROM volunteers WHERE id = $1"),
        args![id.to_string()],
    )?
    .map(|r| row(&r))
    .transpose()
}

/// Deactivates a volunteer (kept for the history). Whether it was active.
pub fn deactivate_volunteer(db: &mut dyn Sql, id: Uuid) -> Result<bool, DbError> {
    Ok(db.exec(
        "UPDATE volunteers SET active = 0 WHERE id = $1 AND active = 1",
        args![id.to_string()],
    )? > 0)
}

/// A volunteer credited for a record they helped with.
#[derive(Debug, Clone, PartialEq)]
pub struct Credit {
    pub volunteer_id: Uuid,
    pub note: String,
    pub credited_by: String,
    pub credited_at: DateTime<Utc>,
}

/// Credits `volunteer` for `record`; false (nothing written) when already credited for it.
pub fn credit_volunteer(
    db: &mut dyn Sql,
    record: Uuid,
    volunteer: Uuid,
    note: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    let found = db.query_opt(
        "SELECT 1 FROM volunteer_credits WHERE record_id = $1 AND volunteer_id = $2",
        args![record.to_string(), volunteer.to_string()],
    )?;
    if found.is_some() {
        return Ok(false);
    }
    db.exec(
        "INSERT INTO volunteer_credits (record_id, volunteer_id, note, credited_by, credited_at)
         VALUES ($1, $2, $3, $4, $5)",
        args![record.to_string(), volunteer.to_string(), note, by, ts(now)],
    )?;
    Ok(true)
}

/// The volunteers credited for a record, oldest first.
pub fn credits_of_record(db: &mut dyn Sql, record: Uuid) -> Result<Vec<Credit>, DbError> {
    db.query(
        "SELECT volunteer_id, note, credited_by, credited_at FROM volunteer_credits
         WHERE record_id = $1 ORDER BY credited_at",
        args![record.to_string()],
    )?
    .into_iter()
    .map(|r| {
        Ok(Credit {
            volunteer_id: uuid(r[0].str()?)?,
            note: r[1].string()?,
            credited_by: r[2].string()?,
            credited_at: parse_ts(r[3].str()?)?,
        })
    })
    .collect()
}

/// The grid code of an entity (the caller has checked it is in scope).
pub fn grid_code_of(db: &mut dyn Sql, id: Uuid) -> Result<Option<String>, DbError> {
    db.query_opt(
        "SELECT grid_code FROM entities WHERE id = $1",
        args![id.to_string()],
    )?
    .map(|r| r[0].string())
    .transpose()
}
