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
