//! County settings and grid lookups.

use super::*;

pub fn get_setting(db: &mut dyn Sql, key: &str) -> Result<Option<String>, DbError> {
    db.query_opt("SELECT value FROM settings WHERE key = $1", args![key])?
        .map(|r| r[0].string())
        .transpose()
}

pub fn set_setting(db: &mut dyn Sql, key: &str, value: &str) -> Result<(), DbError> {
    db.exec(
        "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        args![key, value],
    )?;
    Ok(())
}

/// Grid names by id (for account answers).
pub fn grid_names(db: &mut dyn Sql, ids: &[Uuid]) -> Result<BTreeMap<Uuid, String>, DbError> {
    let mut out = BTreeMap::new();
    for id in ids {
        if let Some(e) = get_entity(db, *id)? {
            out.insert(
                *id,
                e.data
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
    }
    Ok(out)
}

/// A grid by code, for operators (`user add --grid CODE`).
pub fn grid_id_by_code(db: &mut dyn Sql, code: &str) -> Result<Option<Uuid>, DbError> {
    db.query_opt(
        "SELECT id FROM entities WHERE kind = 'GRID' AND grid_code = $1",
        args![code],
    )?
    .map(|r| uuid(r[0].str()?))
    .transpose()
}
