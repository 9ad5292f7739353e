//! A village's rows as a village-office relay mirrors them: the county reads a page of them
//! ([`read_page`], `GET /api/v1/relay/mirror`) and the relay writes it into its own
//! server-schema database ([`apply_page`]), so the county's own pull code, run over the
//! mirror, answers a device at the office exactly as the county would.

use super::*;
use crate::wire::Lane;
use crate::wire::relay::{
    MirrorAccount, MirrorDevice, MirrorEntity, MirrorHistory, MirrorPage, MirrorRejection,
    MirrorSession, MirrorWatermark,
};

/// Entities in a mirror page unless the relay asks for fewer.
pub const MIRROR_PAGE: usize = 20_000;
/// Entities in a mirror page, at most.
pub const MAX_MIRROR_PAGE: usize = 100_000;

/// The relay database's settings key of the county change sequence its mirror reaches.
pub const RELAY_CURSOR: &str = "relay_cursor";

/// The password hash of every mirrored account: not a PHC string, so no password ever
/// verifies against it (a sign-in at the relay is a plain 401). Also what marks an account
/// in the relay's database as mirrored.
pub const MIRRORED_PASSWORD: &str = "!mirrored: signs in at the county only";

/// The county settings a pull answers from, which the mirror carries.
pub const MIRRORED_SETTINGS: [&str; 3] = [CADENCE, SETTINGS_SEQ, DEADLINE_POLICY];

/// The settings key of a village's relay address (what its relay advertised last).
pub fn relay_url_key(village: &str) -> String {
    format!("relay_url:{village}")
}

/// Stores the address a village's relay advertised; false if it was stored already.
pub fn set_relay_url(db: &mut dyn Sql, village: &str, url: &str) -> Result<bool, DbError> {
    let key = relay_url_key(village);
    if get_setting(db, &key)?.as_deref() == Some(url) {
        return Ok(false);
    }
    set_setting(db, &key, url)?;
    Ok(true)
}

/// The relay address of an account's village, for the account answers: a worker's or a
/// secretary's village's, if its relay advertised one.
pub fn relay_url_for(db: &mut dyn Sql, user: &User) -> Result<Option<String>, DbError> {
    if !matches!(user.role, Role::Worker | Role::Secretary) || user.scope_code.len() != 12 {
        return Ok(None);
    }
    get_setting(db, &relay_url_key(&user.scope_code))
}

/// Whether a village's relay mirrors this account: the village's secretary, or a worker
/// whose grids are all in the village.
pub fn mirrored_by(user: &User, village: &str) -> bool {
    match user.role {
        Role::Secretary => user.scope_code == village,
        Role::Worker => {
            !user.grids.is_empty() && user.grids.iter().all(|(_, c)| c.starts_with(village))
        }
        _ => false,
    }
}

/// Runs `sql`, whose `{}` is an `IN` list, over `values` 500 at a time, its list's
/// parameters numbered after `fixed`.
fn query_in(
    db: &mut dyn Sql,
    sql: &str,
    fixed: &[V],
    values: &[String],
) -> Result<Vec<Vec<V>>, DbError> {
    let mut out = Vec::new();
    for chunk in values.chunks(500) {
        let mut args = fixed.to_vec();
        args.extend(chunk.iter().map(|v| V::T(v.clone())));
        out.extend(db.query(
            &sql.replace("{}", &params(fixed.len() + 1, chunk.len())),
            &args,
        )?);
    }
    Ok(out)
}

/// `exec` of `sql`, whose `{}` is an `IN` list, over `values` 500 at a time.
fn exec_in(db: &mut dyn Sql, sql: &str, values: &[String]) -> Result<(), DbError> {
    for chunk in values.chunks(500) {
        let args: Vec<V> = chunk.iter().map(|v| V::T(v.clone())).collect();
        db.exec(&sql.replace("{}", &params(1, chunk.len())), &args)?;
    }
    Ok(())
}

fn bad(what: &str, e: impl std::fmt::Display) -> DbError {
    DbError::Type(format!("{what}: {e}"))
}

/// One page of the village's rows after `cursor`, in version order: at most `limit`
/// entities, the whole histories of the records among them, the refused entries of the
/// village's accounts up to the page's cursor, and the village's accounts, sessions,
/// devices and watermarks as they stand. The cursor answered means what a device's pull
/// cursor means: everything of the village at or below it has been sent.
pub fn read_page(
    db: &mut dyn Sql,
    village: &str,
    cursor: i64,
    limit: usize,
    generation: String,
) -> Result<MirrorPage, DbError> {
    let limit = limit.clamp(1, MAX_MIRROR_PAGE);
    let (lo, hi) = (village.to_owned(), format!("{village}~"));
    let mut entities = db
        .query(
            "SELECT id, kind, grid_id, grid_code, parent_id, status, urgency, category, author,
                    created_at, updated_at, data, meta, version
             FROM entities WHERE grid_code >= $3 AND grid_code < $4 AND version > $1
             ORDER BY version LIMIT $2",
            args![cursor, limit as i64 + 1, &lo, &hi],
        )?
        .into_iter()
        .map(|mut r| {
            Ok(MirrorEntity {
                id: uuid(r[0].str()?)?,
                kind: r[1].string()?,
                grid_id: r[2].string()?,
                grid_code: r[3].string()?,
                parent_id: r[4].opt_string()?,
                status: r[5].opt_string()?,
                urgency: r[6].opt_string()?,
                category: r[7].opt_string()?,
                author: r[8].opt_string()?,
                created_at: r[9].string()?,
                updated_at: r[10].string()?,
                data: take_string(&mut r[11])?,
                meta: take_string(&mut r[12])?,
                version: r[13].i64()?,
            })
        })
        .collect::<Result<Vec<_>, DbError>>()?;
    let more = entities.len() > limit;
    entities.truncate(limit);
    let mut next = entities.last().map(|e| e.version).unwrap_or(cursor);

    let records: Vec<String> = entities
        .iter()
        .filter(|e| EntityKind::from_code(&e.kind).is_ok_and(|k| k.is_record()))
        .map(|e| e.id.to_string())
        .collect();
    let histories = query_in(
        db,
        "SELECT id, record_id, from_status, to_status, at, actor, note, version
         FROM status_history WHERE record_id IN ({}) ORDER BY record_id, id",
        &[],
        &records,
    )?
    .into_iter()
    .map(|r| {
        Ok(MirrorHistory {
            id: r[0].i64()?,
            record_id: uuid(r[1].str()?)?,
            from_status: r[2].string()?,
            to_status: r[3].string()?,
            at: r[4].string()?,
            actor: r[5].string()?,
            note: r[6].opt_string()?,
            version: r[7].opt_i64()?,
        })
    })
    .collect::<Result<Vec<_>, DbError>>()?;

    let accounts = village_accounts(db, village)?;
    let ids: Vec<String> = accounts.iter().map(|a| a.id.to_string()).collect();
    let names: Vec<String> = accounts.iter().map(|a| a.username.clone()).collect();

    let upto = if more { next } else { i64::MAX };
    let mut rejections = query_in(
        db,
        "SELECT seq, device_id, username, lane, entry_seq, kind, record_id, op, error, message,
                field, entry, at
         FROM push_rejections WHERE seq > $1 AND seq <= $2 AND username IN ({}) ORDER BY seq",
        args![cursor, upto],
        &names,
    )?
    .into_iter()
    .map(|mut r| {
        Ok(MirrorRejection {
            seq: r[0].i64()?,
            device_id: uuid(r[1].str()?)?,
            username: r[2].string()?,
            lane: r[3].string()?,
            entry_seq: r[4].i64()?,
            kind: r[5].string()?,
            record_id: r[6].string()?,
            op: r[7].string()?,
            error: r[8].string()?,
            message: r[9].string()?,
            field: r[10].opt_string()?,
            entry: take_string(&mut r[11])?,
            at: r[12].string()?,
        })
    })
    .collect::<Result<Vec<_>, DbError>>()?;
    rejections.sort_by_key(|r| r.seq);
    if !more {
        // As a pull's last page: past every refusal and the settings' change, never back.
        if let Some(r) = rejections.last() {
            next = next.max(r.seq);
        }
        next = next.max(settings_seq(db)?).max(cursor);
    }

    let sessions = query_in(
        db,
        "SELECT token_hash, user_id, device_id, created_at, expires_at, ends_at, revoked
         FROM sessions WHERE user_id IN ({}) ORDER BY created_at, token_hash",
        &[],
        &ids,
    )?
    .into_iter()
    .map(|r| {
        Ok(MirrorSession {
            token_hash: r[0].string()?,
            user_id: uuid(r[1].str()?)?,
            device_id: r[2].string()?,
            created_at: r[3].string()?,
            expires_at: r[4].string()?,
            ends_at: r[5].string()?,
            revoked: r[6].i64()? != 0,
        })
    })
    .collect::<Result<Vec<_>, DbError>>()?;
    let devices = query_in(
        db,
        "SELECT device_id, username, enrolled_at FROM devices WHERE username IN ({})
         ORDER BY device_id",
        &[],
        &names,
    )?
    .into_iter()
    .map(|r| {
        Ok(MirrorDevice {
            device_id: r[0].string()?,
            username: r[1].string()?,
            enrolled_at: r[2].string()?,
        })
    })
    .collect::<Result<Vec<_>, DbError>>()?;
    let watermarks = query_in(
        db,
        "SELECT w.device_id, w.lane, w.seq FROM watermarks w
         JOIN devices d ON d.device_id = w.device_id
         WHERE d.username IN ({}) ORDER BY w.device_id, w.lane",
        &[],
        &names,
    )?
    .into_iter()
    .map(|r| {
        Ok(MirrorWatermark {
            device_id: uuid(r[0].str()?)?,
            lane: Lane::from_code(r[1].str()?).map_err(|e| bad("watermarks.lane", e))?,
            seq: r[2].i64()?,
        })
    })
    .collect::<Result<Vec<_>, DbError>>()?;
    let mut settings = Vec::new();
    for key in MIRRORED_SETTINGS {
        if let Some(v) = get_setting(db, key)? {
            settings.push((key.to_owned(), v));
        }
    }
    Ok(MirrorPage {
        generation,
        cursor: next,
        more,
        entities,
        histories,
        rejections,
        accounts,
        sessions,
        devices,
        watermarks,
        settings,
    })
}

/// Sessions used at a village's office since its relay last said (token hashes): each one of
/// the village's mirrored accounts, live at `now`, slides as a use at the county would
/// ([`crate::server::auth::renewal`]), so a phone that syncs only at the office stays signed
/// in. Others (another village's, revoked, lapsed, unknown) are left as they are. Returns how
/// many slid.
pub fn slide_used_sessions(
    db: &mut dyn Sql,
    village: &str,
    hashes: &[String],
    now: DateTime<Utc>,
) -> Result<usize, DbError> {
    if hashes.is_empty() {
        return Ok(0);
    }
    let ours: std::collections::BTreeSet<String> = village_accounts(db, village)?
        .into_iter()
        .map(|a| a.id.to_string())
        .collect();
    let mut slid = 0;
    for chunk in hashes.chunks(256) {
        let args: Vec<V> = chunk.iter().map(|h| V::T(h.clone())).collect();
        let rows = db.query(
            &format!(
                "SELECT token_hash, user_id, expires_at, ends_at FROM sessions
                 WHERE revoked = 0 AND token_hash IN ({})",
                params(1, chunk.len())
            ),
            &args,
        )?;
        for r in rows {
            let (hash, user) = (r[0].str()?.to_owned(), r[1].str()?.to_owned());
            let (expires, ends) = (parse_ts(r[2].str()?)?, parse_ts(r[3].str()?)?);
            if !ours.contains(&user) || expires <= now {
                continue;
            }
            if let Some(to) = crate::server::auth::renewal(expires, ends, now) {
                if to == ends {
                    super::renew_sessions(db, &[], to, &[hash.as_str()])?;
                } else {
                    super::renew_sessions(db, &[hash.as_str()], to, &[])?;
                }
                slid += 1;
            }
        }
    }
    Ok(slid)
}

/// The accounts a village's relay mirrors: its secretaries, and the workers whose grids are
/// all in it, each with its grids.
fn village_accounts(db: &mut dyn Sql, village: &str) -> Result<Vec<MirrorAccount>, DbError> {
    let inside = "e.grid_code >= $2 AND e.grid_code < $3";
    let rows = db.query(
        &format!(
            "SELECT u.id, u.username, u.display_name, u.role, u.scope_code, u.disabled, u.created_at
             FROM users u
             WHERE (u.role = 'SECRETARY' AND u.scope_code = $1)
                OR (u.role = 'WORKER'
                    AND EXISTS (SELECT 1 FROM user_grids g JOIN entities e ON e.id = g.grid_id
                                WHERE g.user_id = u.id AND {inside})
                    AND NOT EXISTS (SELECT 1 FROM user_grids g JOIN entities e ON e.id = g.grid_id
                                    WHERE g.user_id = u.id AND NOT ({inside})))
             ORDER BY u.username"
        ),
        args![village, village, format!("{village}~")],
    )?;
    let mut accounts = rows
        .into_iter()
        .map(|r| {
            Ok(MirrorAccount {
                id: uuid(r[0].str()?)?,
                username: r[1].string()?,
                display_name: r[2].string()?,
                role: r[3].string()?,
                scope_code: r[4].string()?,
                disabled: r[5].i64()? != 0,
                created_at: r[6].string()?,
                grids: Vec::new(),
            })
        })
        .collect::<Result<Vec<_>, DbError>>()?;
    let ids: Vec<String> = accounts.iter().map(|a| a.id.to_string()).collect();
    let mut grids: BTreeMap<Uuid, Vec<Uuid>> = BTreeMap::new();
    for r in query_in(
        db,
        "SELECT user_id, grid_id FROM user_grids WHERE user_id IN ({}) ORDER BY user_id, grid_id",
        &[],
        &ids,
    )? {
        grids
            .entry(uuid(r[0].str()?)?)
            .or_default()
            .push(uuid(r[1].str()?)?);
    }
    for a in &mut accounts {
        a.grids = grids.remove(&a.id).unwrap_or_default();
    }
    Ok(accounts)
}

/// The county change sequence the relay's mirror reaches, and the county generation it was
/// read under: `(0, None)` before the first page. A relay asks from 0 when the county
/// answers under another generation (the county was restored).
pub fn mirror_cursor(db: &mut dyn Sql) -> Result<(i64, Option<String>), DbError> {
    let Some(cursor) = get_setting(db, RELAY_CURSOR)? else {
        return Ok((0, None));
    };
    let cursor = cursor.parse().map_err(|e| bad(RELAY_CURSOR, e))?;
    Ok((cursor, get_setting(db, GENERATION)?))
}

/// The county's watermark of a device lane as the mirror last saw it (0 if none).
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

/// Writes a mirror page into the relay's database, in the caller's transaction: entities by
/// id (every column), the histories of their records replaced, refused entries once by
/// sequence number, the village's accounts, their grids, sessions and devices replaced
/// (a revocation or a removal at the county takes effect), watermarks only raised, the
/// settings, and the page's cursor and generation. Under another county generation than
/// the mirror's (the county was restored), the mirror is emptied first and starts over
/// from this page (which must then be asked from 0).
pub fn apply_page(db: &mut dyn Sql, page: &MirrorPage) -> Result<(), DbError> {
    let now = ts(Utc::now());
    if mirror_cursor(db)?.1.as_deref() != Some(page.generation.as_str()) {
        for table in [
            "entities",
            "status_history",
            "push_rejections",
            "watermarks",
        ] {
            db.exec(&format!("DELETE FROM {table}"), &[])?;
        }
        db.exec("DELETE FROM settings WHERE key = $1", args![RELAY_CURSOR])?;
    }
    put_mirrored_entities(db, &page.entities)?;
    put_mirrored_histories(db, page)?;
    for chunk in page.rejections.chunks(100) {
        const COLS: usize = 13;
        let mut rows = Vec::with_capacity(chunk.len());
        let mut args: Vec<V> = Vec::with_capacity(chunk.len() * COLS);
        for (i, r) in chunk.iter().enumerate() {
            rows.push(format!("({})", params(i * COLS + 1, COLS)));
            args.extend([
                V::I(r.seq),
                V::T(r.device_id.to_string()),
                V::T(r.username.clone()),
                V::T(r.lane.clone()),
                V::I(r.entry_seq),
                V::T(r.kind.clone()),
                V::T(r.record_id.clone()),
                V::T(r.op.clone()),
                V::T(r.error.clone()),
                V::T(r.message.clone()),
                r.field.clone().into(),
                V::T(r.entry.clone()),
                V::T(r.at.clone()),
            ]);
        }
        db.exec(
            &format!(
                "INSERT INTO push_rejections (seq, device_id, username, lane, entry_seq, kind,
                     record_id, op, error, message, field, entry, at)
                 VALUES {} ON CONFLICT (seq) DO NOTHING",
                rows.join(", ")
            ),
            &args,
        )?;
    }
    put_mirrored_accounts(db, page)?;
    let owners: BTreeMap<&str, &str> = page
        .devices
        .iter()
        .map(|d| (d.device_id.as_str(), d.username.as_str()))
        .collect();
    for w in &page.watermarks {
        let device = w.device_id.to_string();
        let owner = owners.get(device.as_str()).copied().unwrap_or_default();
        db.exec(
            "INSERT INTO watermarks (device_id, lane, seq, username, updated_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (device_id, lane) DO UPDATE SET
               seq = CASE WHEN excluded.seq > watermarks.seq THEN excluded.seq ELSE watermarks.seq END,
               username = excluded.username",
            args![device, w.lane.code(), w.seq, owner, &now],
        )?;
    }
    for (key, value) in &page.settings {
        set_setting(db, key, value)?;
    }
    set_setting(db, RELAY_CURSOR, &page.cursor.to_string())?;
    set_setting(db, GENERATION, &page.generation)?;
    Ok(())
}

/// Entities as the county stores them, by id (a record's household column from its data,
/// as the county's own writes set it).
fn put_mirrored_entities(db: &mut dyn Sql, entities: &[MirrorEntity]) -> Result<(), DbError> {
    const COLS: usize = 15;
    for chunk in entities.chunks(100) {
        let mut rows = Vec::with_capacity(chunk.len());
        let mut args: Vec<V> = Vec::with_capacity(chunk.len() * COLS);
        for (i, e) in chunk.iter().enumerate() {
            let household = if EntityKind::from_code(&e.kind).is_ok_and(|k| k.is_record()) {
                serde_json::from_str::<Value>(&e.data)
                    .map_err(|err| bad("entity data", err))?
                    .get("household_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            } else {
                None
            };
            rows.push(format!("({})", params(i * COLS + 1, COLS)));
            args.extend([
                V::T(e.id.to_string()),
                V::T(e.kind.clone()),
                V::T(e.grid_id.clone()),
                V::T(e.grid_code.clone()),
                e.parent_id.clone().into(),
                e.status.clone().into(),
                e.urgency.clone().into(),
                e.category.clone().into(),
                e.author.clone().into(),
                V::T(e.created_at.clone()),
                V::T(e.updated_at.clone()),
                V::T(e.data.clone()),
                V::T(e.meta.clone()),
                V::I(e.version),
                household.into(),
            ]);
        }
        db.exec(
            &format!(
                "INSERT INTO entities (id, kind, grid_id, grid_code, parent_id, status, urgency, category, author,
                                       created_at, updated_at, data, meta, version, household_id)
                 VALUES {}
                 ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, grid_id = excluded.grid_id,
                   grid_code = excluded.grid_code, parent_id = excluded.parent_id, status = excluded.status,
                   urgency = excluded.urgency, category = excluded.category, author = excluded.author,
                   created_at = excluded.created_at, updated_at = excluded.updated_at,
                   data = excluded.data, meta = excluded.meta, version = excluded.version,
                   household_id = excluded.household_id",
                rows.join(", ")
            ),
            &args,
        )?;
    }
    Ok(())
}

/// The histories of the page's records, replaced whole.
fn put_mirrored_histories(db: &mut dyn Sql, page: &MirrorPage) -> Result<(), DbError> {
    let records: Vec<String> = page
        .entities
        .iter()
        .filter(|e| EntityKind::from_code(&e.kind).is_ok_and(|k| k.is_record()))
        .map(|e| e.id.to_string())
        .collect();
    exec_in(
        db,
        "DELETE FROM status_history WHERE record_id IN ({})",
        &records,
    )?;
    for chunk in page.histories.chunks(100) {
        const COLS: usize = 8;
        let mut rows = Vec::with_capacity(chunk.len());
        let mut args: Vec<V> = Vec::with_capacity(chunk.len() * COLS);
        for (i, h) in chunk.iter().enumerate() {
            rows.push(format!("({})", params(i * COLS + 1, COLS)));
            args.extend([
                V::I(h.id),
                V::T(h.record_id.to_string()),
                V::T(h.from_status.clone()),
                V::T(h.to_status.clone()),
                V::T(h.at.clone()),
                V::T(h.actor.clone()),
                h.note.clone().into(),
                h.version.into(),
            ]);
        }
        db.exec(
            &format!(
                "INSERT INTO status_history (id, record_id, from_status, to_status, at, actor, note, version)
                 VALUES {}
                 ON CONFLICT (id) DO UPDATE SET record_id = excluded.record_id,
                   from_status = excluded.from_status, to_status = excluded.to_status,
                   at = excluded.at, actor = excluded.actor, note = excluded.note,
                   version = excluded.version",
                rows.join(", ")
            ),
            &args,
        )?;
    }
    Ok(())
}

/// The village's accounts, their grids, sessions and devices, replacing the mirrored ones.
fn put_mirrored_accounts(db: &mut dyn Sql, page: &MirrorPage) -> Result<(), DbError> {
    let mirrored = "SELECT id FROM users WHERE password_hash = $1";
    db.exec(
        &format!("DELETE FROM sessions WHERE user_id IN ({mirrored})"),
        args![MIRRORED_PASSWORD],
    )?;
    db.exec(
        &format!("DELETE FROM user_grids WHERE user_id IN ({mirrored})"),
        args![MIRRORED_PASSWORD],
    )?;
    db.exec(
        "DELETE FROM devices WHERE username IN (SELECT username FROM users WHERE password_hash = $1)",
        args![MIRRORED_PASSWORD],
    )?;
    db.exec(
        "DELETE FROM users WHERE password_hash = $1",
        args![MIRRORED_PASSWORD],
    )?;
    for a in &page.accounts {
        db.exec(
            "INSERT INTO users (id, username, display_name, role, scope_code, password_hash, disabled, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            args![
                a.id.to_string(),
                &a.username,
                &a.display_name,
                &a.role,
                &a.scope_code,
                MIRRORED_PASSWORD,
                a.disabled as i64,
                &a.created_at
            ],
        )?;
        for g in &a.grids {
            db.exec(
                "INSERT INTO user_grids (user_id, grid_id) VALUES ($1, $2)",
                args![a.id.to_string(), g.to_string()],
            )?;
        }
    }
    for s in &page.sessions {
        db.exec(
            "INSERT INTO sessions (token_hash, user_id, device_id, created_at, expires_at, ends_at, revoked)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (token_hash) DO UPDATE SET user_id = excluded.user_id,
               device_id = excluded.device_id, created_at = excluded.created_at,
               expires_at = excluded.expires_at, ends_at = excluded.ends_at, revoked = excluded.revoked",
            args![
                &s.token_hash,
                s.user_id.to_string(),
                &s.device_id,
                &s.created_at,
                &s.expires_at,
                &s.ends_at,
                s.revoked as i64
            ],
        )?;
    }
    for d in &page.devices {
        db.exec(
            "INSERT INTO devices (device_id, username, enrolled_at) VALUES ($1, $2, $3)
             ON CONFLICT (device_id) DO UPDATE SET username = excluded.username,
               enrolled_at = excluded.enrolled_at",
            args![&d.device_id, &d.username, &d.enrolled_at],
        )?;
    }
    Ok(())
}
