//! County settings (the database's generation among them) and grid lookups.

use super::*;
use crate::domain::codes::Tag;
use crate::domain::deadline::DeadlinePolicy;

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

/// The settings key of the county's deadline policy (JSON of [`DeadlinePolicy`]).
pub const DEADLINE_POLICY: &str = "deadline_policy";
/// The settings key of the visit cadence per tag (JSON of `[(tag, days)]`).
pub const CADENCE: &str = "cadence";
/// The settings key of the change sequence number the settings devices hold last changed at:
/// a pull from a cursor before it carries them again.
pub const SETTINGS_SEQ: &str = "settings_seq";

/// The county's deadline policy, or the default when it set none.
pub fn deadline_policy(db: &mut dyn Sql) -> Result<DeadlinePolicy, DbError> {
    match get_setting(db, DEADLINE_POLICY)? {
        Some(s) => serde_json::from_str(&s)
            .map_err(|e| DbError::Type(format!("deadline policy setting: {e}"))),
        None => Ok(DeadlinePolicy::default()),
    }
}

/// The visit cadence per tag: every tag, the county's days where it set them, else the default.
pub fn cadence(db: &mut dyn Sql) -> Result<Vec<(Tag, u32)>, DbError> {
    let set: Vec<(Tag, u32)> = match get_setting(db, CADENCE)? {
        Some(s) => {
            serde_json::from_str(&s).map_err(|e| DbError::Type(format!("cadence setting: {e}")))?
        }
        None => Vec::new(),
    };
    Ok(Tag::ALL
        .iter()
        .map(|t| {
            let days = set
                .iter()
                .find(|(s, _)| s == t)
                .map(|(_, d)| *d)
                .unwrap_or_else(|| t.default_cadence_days());
            (*t, days)
        })
        .collect())
}

/// The change sequence number at which the settings devices hold (the visit cadence) last
/// changed; 0 when never.
pub fn settings_seq(db: &mut dyn Sql) -> Result<i64, DbError> {
    Ok(get_setting(db, SETTINGS_SEQ)?
        .and_then(|s| s.parse().ok())
        .unwrap_or(0))
}

/// Stores the county's settings (the one transaction of the settings page): the visit
/// cadence takes a new change sequence number, so every device's next pull carries it.
pub fn save_county_settings(
    db: &mut dyn Sql,
    policy: &DeadlinePolicy,
    cadence: &[(Tag, u32)],
) -> Result<(), DbError> {
    let bad = |e: serde_json::Error| DbError::Type(format!("settings: {e}"));
    set_setting(
        db,
        DEADLINE_POLICY,
        &serde_json::to_string(policy).map_err(bad)?,
    )?;
    let new_cadence = serde_json::to_string(cadence).map_err(bad)?;
    if get_setting(db, CADENCE)?.as_deref() != Some(new_cadence.as_str()) {
        set_setting(db, CADENCE, &new_cadence)?;
        let seq = next_seq(db)?;
        set_setting(db, SETTINGS_SEQ, &seq.to_string())?;
    }
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
