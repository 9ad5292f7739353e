//! County settings (the database's generation among them) and grid lookups.

use super::*;

/// The settings key of the database's generation: a random UUID made when the database is
/// first migrated and replaced when a backup is restored into it. Pull answers carry it
/// (`x-gridwalk-generation`); a device that sees another one than its cursor was read under
/// knows the change sequence started over, and pulls whole.
pub const GENERATION: &str = "generation";

/// A new random generation id.
fn fresh_generation() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string()
}

/// The database's generation, made now if it has none yet (a database first migrated, or one
/// from before generations existed).
pub fn ensure_generation(db: &mut dyn Sql) -> Result<String, DbError> {
    db.exec(
        "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        args![GENERATION, fresh_generation()],
    )?;
    get_setting(db, GENERATION)?.ok_or_else(|| DbError::Type("no generation setting".into()))
}

/// Gives the database a new generation (after a restore): every device's cursor belongs to
/// the one before, so each pulls whole. Returns the new one.
pub fn renew_generation(db: &mut dyn Sql) -> Result<String, DbError> {
    let g = fresh_generation();
    set_setting(db, GENERATION, &g)?;
    Ok(g)
}

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
