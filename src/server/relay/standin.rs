//! STAND-IN for the county mirror's repository (`repo::mirror`, built on the county side):
//! the same signatures, just enough for the relay to run (the mirror's cursor and generation
//! in settings; the county's watermarks read from the mirrored `watermarks` table). Replaced
//! by the real module when both sides are merged.

use uuid::Uuid;

use crate::args;
use crate::domain::codes::Coded;
use crate::server::db::{DbError, Sql};
use crate::server::repo;
use crate::wire::Lane;
use crate::wire::relay::MirrorPage;

const CURSOR: &str = "mirror_cursor";
const GENERATION: &str = "mirror_generation";

/// Writes a page of the county's rows into the mirror (the stand-in keeps only its cursor and
/// generation).
pub fn apply_page(db: &mut dyn Sql, page: &MirrorPage) -> Result<(), DbError> {
    repo::set_setting(db, CURSOR, &page.cursor.to_string())?;
    repo::set_setting(db, GENERATION, &page.generation)?;
    for w in &page.watermarks {
        db.exec(
            "INSERT INTO watermarks (device_id, lane, seq, username, updated_at) VALUES ($1, $2, $3, '', '')
             ON CONFLICT (device_id, lane) DO UPDATE SET seq = excluded.seq",
            args![w.device_id.to_string(), w.lane.code(), w.seq],
        )?;
    }
    Ok(())
}

/// The county change sequence the mirror reaches, and the county's generation (none before the
/// first page).
pub fn mirror_cursor(db: &mut dyn Sql) -> Result<(i64, Option<String>), DbError> {
    let cursor = repo::get_setting(db, CURSOR)?
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((cursor, repo::get_setting(db, GENERATION)?))
}

/// The county's watermark of a device lane, as mirrored (0 when none).
pub fn county_watermark(db: &mut dyn Sql, device: Uuid, lane: Lane) -> Result<i64, DbError> {
    Ok(db
        .query_opt(
            "SELECT seq FROM watermarks WHERE device_id = $1 AND lane = $2",
            args![device.to_string(), lane.code()],
        )?
        .map(|r| r[0].i64())
        .transpose()?
        .unwrap_or(0))
}
