//! What the server stores, written once against [`Sql`]: accounts and sessions, scopes,
//! entities with per-field versions, the change sequence, watermarks, status history,
//! conflicts, audit and photos.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::db::{DbError, Sql, V};
use crate::args;
use crate::domain::codes::Coded;
use crate::domain::model::{EntityKind, StatusChange};
use crate::merge::FieldMeta;
use crate::wire::{Account, GridRef, Role};

/// The event-record kinds as an SQL list, for `kind IN (...)`.
pub const RECORD_KINDS: &str = "'OPINION','DISPUTE','PATROL','HAZARD','SPECIAL_POP','EMERGENCY','PUBLICITY','LIVELIHOOD','OTHER'";

pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn parse_ts(s: &str) -> Result<DateTime<Utc>, DbError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| DbError::Type(format!("bad time {s:?}: {e}")))
}

fn uuid(s: &str) -> Result<Uuid, DbError> {
    Uuid::parse_str(s).map_err(|e| DbError::Type(format!("bad id {s:?}: {e}")))
}

/// A signed-in (or looked-up) account.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub scope_code: String,
    pub disabled: bool,
    /// A worker's grids: id and code.
    pub grids: Vec<(Uuid, String)>,
}

impl User {
    /// What the account may read and write.
    pub fn scope(&self) -> Scope {
        match self.role {
            Role::Worker => Scope::Grids(self.grids.clone()),
            _ => Scope::Area(self.scope_code.clone()),
        }
    }

    pub fn account(&self, grid_names: &BTreeMap<Uuid, String>) -> Account {
        Account {
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            role: self.role,
            scope_code: self.scope_code.clone(),
            grids: self
                .grids
                .iter()
                .map(|(id, code)| GridRef {
                    id: *id,
                    code: code.clone(),
                    name: grid_names.get(id).cloned().unwrap_or_default(),
                })
                .collect(),
        }
    }
}

/// A scope: a worker's own grids, or an area by its code prefix (village, town, county).
#[derive(Debug, Clone, PartialEq)]
pub enum Scope {
    Grids(Vec<(Uuid, String)>),
    Area(String),
}

impl Scope {
    /// Whether a grid (by its code) is in scope.
    pub fn covers(&self, grid_code: &str) -> bool {
        match self {
            Scope::Grids(g) => g.iter().any(|(_, c)| c == grid_code),
            Scope::Area(prefix) => grid_code.starts_with(prefix.as_str()),
        }
    }

    /// A `grid_code` condition with parameters numbered from `$first`.
    pub fn clause(&self, first: usize) -> (String, Vec<V>) {
        match self {
            Scope::Grids(g) if g.is_empty() => ("1 = 0".into(), vec![]),
            Scope::Grids(g) => {
                let marks = params(first, g.len());
                (
                    format!("grid_code IN ({})", marks),
                    g.iter().map(|(_, c)| V::T(c.clone())).collect(),
                )
            }
            Scope::Area(prefix) => (
                format!("grid_code >= ${} AND grid_code < ${}", first, first + 1),
                vec![V::T(prefix.clone()), V::T(format!("{prefix}~"))],
            ),
        }
    }
}

/// A new account.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub scope_code: String,
    pub password_hash: String,
    pub grids: Vec<Uuid>,
}

pub fn create_user(db: &mut dyn Sql, u: &NewUser, now: DateTime<Utc>) -> Result<Uuid, DbError> {
    let id = Uuid::now_v7();
    db.exec(
        "INSERT INTO users (id, username, display_name, role, scope_code, password_hash, disabled, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, 0, $7)",
        args![id.to_string(), &u.username, &u.display_name, u.role.code(), &u.scope_code, &u.password_hash, ts(now)],
    )?;
    for g in &u.grids {
        db.exec(
            "INSERT INTO user_grids (user_id, grid_id) VALUES ($1, $2)",
            args![id.to_string(), g.to_string()],
        )?;
    }
    Ok(id)
}

fn user_from_row(db: &mut dyn Sql, r: &[V]) -> Result<User, DbError> {
    let grids = db
        .query(
            "SELECT g.grid_id, e.grid_code FROM user_grids g JOIN entities e ON e.id = g.grid_id
             WHERE g.user_id = $1 ORDER BY e.grid_code",
            args![r[0].str()?],
        )?
        .into_iter()
        .map(|r| Ok((uuid(r[0].str()?)?, r[1].string()?)))
        .collect::<Result<Vec<_>, DbError>>()?;
    user_columns(r, grids)
}

/// An account from a row that starts with [`USER_COLUMNS`], and its grids.
fn user_columns(r: &[V], grids: Vec<(Uuid, String)>) -> Result<User, DbError> {
    Ok(User {
        id: uuid(r[0].str()?)?,
        username: r[1].string()?,
        display_name: r[2].string()?,
        role: Role::from_code(r[3].str()?).map_err(|e| DbError::Type(e.to_string()))?,
        scope_code: r[4].string()?,
        disabled: r[5].i64()? != 0,
        grids,
    })
}

const USER_COLUMNS: &str = "id, username, display_name, role, scope_code, disabled";

/// An account and its password hash.
pub fn user_by_name(db: &mut dyn Sql, username: &str) -> Result<Option<(User, String)>, DbError> {
    let Some(r) = db.query_opt(
        &format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE username = $1"),
        args![username],
    )?
    else {
        return Ok(None);
    };
    let hash = r[6].string()?;
    Ok(Some((user_from_row(db, &r)?, hash)))
}

pub fn set_password(db: &mut dyn Sql, username: &str, hash: &str) -> Result<bool, DbError> {
    Ok(db.exec(
        "UPDATE users SET password_hash = $2 WHERE username = $1",
        args![username, hash],
    )? == 1)
}

/// Disables (or enables) an account; disabling revokes every session.
pub fn set_disabled(db: &mut dyn Sql, username: &str, disabled: bool) -> Result<bool, DbError> {
    let n = db.exec(
        "UPDATE users SET disabled = $2 WHERE username = $1",
        args![username, disabled as i64],
    )?;
    if disabled {
        db.exec(
            "UPDATE sessions SET revoked = 1 WHERE user_id = (SELECT id FROM users WHERE username = $1)",
            args![username],
        )?;
    }
    Ok(n == 1)
}

/// Opens a session: live until `expires`, which use slides out ([`renew_sessions`]) but never
/// past `ends`.
pub fn create_session(
    db: &mut dyn Sql,
    token_hash: &str,
    user: Uuid,
    device: Uuid,
    now: DateTime<Utc>,
    expires: DateTime<Utc>,
    ends: DateTime<Utc>,
) -> Result<(), DbError> {
    db.exec(
        "INSERT INTO sessions (token_hash, user_id, device_id, created_at, expires_at, ends_at, revoked)
         VALUES ($1, $2, $3, $4, $5, $6, 0)",
        args![
            token_hash,
            user.to_string(),
            device.to_string(),
            ts(now),
            ts(expires),
            ts(ends.max(expires))
        ],
    )?;
    Ok(())
}

/// A live session: its account, its device, and when it ends if unused (`expires_at`) and at
/// the latest (`ends_at`, fixed at sign-in).
#[derive(Debug, Clone)]
pub struct LiveSession {
    pub user: User,
    pub device: Uuid,
    pub expires_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

/// The account and device of a live session (not revoked, not expired, account enabled).
pub fn session(
    db: &mut dyn Sql,
    token_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<LiveSession>, DbError> {
    Ok(sessions(db, &[token_hash], now)?.remove(token_hash))
}

/// Sessions looked up together, at most, in one statement: more are read in several.
pub const SESSIONS_AT_ONCE: usize = 64;

/// [`session`] for several token hashes at once (the requests waiting together when a
/// thousand devices sync): the live ones, by token hash.
pub fn sessions(
    db: &mut dyn Sql,
    token_hashes: &[&str],
    now: DateTime<Utc>,
) -> Result<HashMap<String, LiveSession>, DbError> {
    let mut found = HashMap::new();
    for chunk in token_hashes.chunks(SESSIONS_AT_ONCE) {
        // The list is padded (with its last hash) to a power of two, so a handful of
        // statements serve every group size and each stays prepared.
        let n = chunk.len().next_power_of_two();
        let args: Vec<V> = (0..n)
            .map(|i| V::T(chunk[i.min(chunk.len() - 1)].to_owned()))
            .collect();
        // One statement: each account once per grid it works. Flat left joins (SQLite
        // materialises a parenthesised join for every lookup); a grid whose entity is
        // missing is left out, as by the inner join of the other account reads.
        let rows = db.query(
            &format!(
                "SELECT u.id, u.username, u.display_name, u.role, u.scope_code, u.disabled, s.device_id, s.expires_at,
                        g.grid_id, e.grid_code, s.token_hash, s.ends_at
                 FROM sessions s JOIN users u ON u.id = s.user_id
                 JOIN devices d ON d.device_id = s.device_id AND d.username = u.username
                 LEFT JOIN user_grids g ON g.user_id = u.id LEFT JOIN entities e ON e.id = g.grid_id
                 WHERE s.token_hash IN ({}) AND s.revoked = 0
                 ORDER BY s.token_hash, e.grid_code",
                params(1, n)
            ),
            &args,
        )?;
        for one in rows.chunk_by(|a, b| a[10] == b[10]) {
            let r = &one[0];
            let (expires_at, ends_at) = (parse_ts(r[7].str()?)?, parse_ts(r[11].str()?)?);
            if expires_at <= now || ends_at <= now || r[5].i64()? != 0 {
                continue;
            }
            let grids = one
                .iter()
                .filter(|r| !matches!(r[9], V::Null))
                .map(|r| Ok((uuid(r[8].str()?)?, r[9].string()?)))
                .collect::<Result<Vec<_>, DbError>>()?;
            found.insert(
                r[10].string()?,
                LiveSession {
                    user: user_columns(r, grids)?,
                    device: uuid(r[6].str()?)?,
                    expires_at,
                    ends_at,
                },
            );
        }
    }
    Ok(found)
}

/// Slides sessions out: those named in `to` to expire at `expires`, those in `to_end` at
/// their own `ends_at` (the sessions whose slide reaches their end). At most two statements,
/// their `IN` lists padded to a power of two as the lookup's are; a revoked session stays
/// revoked (only `expires_at` is written).
pub fn renew_sessions(
    db: &mut dyn Sql,
    to: &[&str],
    expires: DateTime<Utc>,
    to_end: &[&str],
) -> Result<(), DbError> {
    for chunk in to.chunks(SESSIONS_AT_ONCE) {
        let n = chunk.len().next_power_of_two();
        let mut args = vec![V::T(ts(expires))];
        args.extend((0..n).map(|i| V::T(chunk[i.min(chunk.len() - 1)].to_owned())));
        db.exec(
            &format!(
                "UPDATE sessions SET expires_at = $1 WHERE token_hash IN ({})",
                params(2, n)
            ),
            &args,
        )?;
    }
    for chunk in to_end.chunks(SESSIONS_AT_ONCE) {
        let n = chunk.len().next_power_of_two();
        let args: Vec<V> = (0..n)
            .map(|i| V::T(chunk[i.min(chunk.len() - 1)].to_owned()))
            .collect();
        db.exec(
            &format!(
                "UPDATE sessions SET expires_at = ends_at WHERE token_hash IN ({})",
                params(1, n)
            ),
            &args,
        )?;
    }
    Ok(())
}

pub fn revoke_session(db: &mut dyn Sql, token_hash: &str) -> Result<(), DbError> {
    db.exec(
        "UPDATE sessions SET revoked = 1 WHERE token_hash = $1",
        args![token_hash],
    )?;
    Ok(())
}

/// Notes a failed sign-in for `username` from `source` (an enrolled device or an address).
pub fn add_login_failure(
    db: &mut dyn Sql,
    username: &str,
    source: &str,
    device: Uuid,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    db.exec(
        "INSERT INTO login_failures (username, at, source, device_id) VALUES ($1, $2, $3, $4)",
        args![username, ts(now), source, device.to_string()],
    )?;
    Ok(())
}

/// Failed sign-ins for `username` since `since`: from `source`, or (`None`) from every
/// source but the account's enrolled devices.
pub fn login_failures_since(
    db: &mut dyn Sql,
    username: &str,
    source: Option<&str>,
    since: DateTime<Utc>,
) -> Result<i64, DbError> {
    match source {
        Some(source) => db.query_one(
            "SELECT count(*) FROM login_failures WHERE username = $1 AND source = $2 AND at > $3",
            args![username, source, ts(since)],
        )?[0]
            .i64(),
        None => db.query_one(
            "SELECT count(*) FROM login_failures WHERE username = $1 AND source NOT LIKE 'device:%' AND at > $2",
            args![username, ts(since)],
        )?[0]
            .i64(),
    }
}

/// Forgets the failed sign-ins of one source for `username` (after it signed in).
pub fn clear_login_failures(db: &mut dyn Sql, username: &str, source: &str) -> Result<(), DbError> {
    db.exec(
        "DELETE FROM login_failures WHERE username = $1 AND source = $2",
        args![username, source],
    )?;
    Ok(())
}

/// The account a device id is enrolled to, if any.
pub fn device_owner(db: &mut dyn Sql, device: Uuid) -> Result<Option<String>, DbError> {
    db.query_opt(
        "SELECT username FROM devices WHERE device_id = $1",
        args![device.to_string()],
    )?
    .map(|r| r[0].string())
    .transpose()
}

/// Enrols a device to an account on its first sign-in; false if it is enrolled to another.
pub fn enrol_device(
    db: &mut dyn Sql,
    device: Uuid,
    username: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    db.exec(
        "INSERT INTO devices (device_id, username, enrolled_at) VALUES ($1, $2, $3)
         ON CONFLICT (device_id) DO NOTHING",
        args![device.to_string(), username, ts(now)],
    )?;
    Ok(device_owner(db, device)?.as_deref() == Some(username))
}

/// Releases a device from its account (an administrator's act, for a phone that changes
/// hands): its sessions are revoked and its lanes' watermarks dropped, so the next account
/// to sign in with it starts afresh. Returns the account it was enrolled to.
pub fn release_device(db: &mut dyn Sql, device: Uuid) -> Result<Option<String>, DbError> {
    let owner = device_owner(db, device)?;
    let d = device.to_string();
    db.exec(
        "UPDATE sessions SET revoked = 1 WHERE device_id = $1",
        args![&d],
    )?;
    db.exec("DELETE FROM watermarks WHERE device_id = $1", args![&d])?;
    db.exec("DELETE FROM devices WHERE device_id = $1", args![&d])?;
    Ok(owner)
}

/// Reserves `n` sequence numbers at once (bulk imports); returns the first.
pub fn reserve_seqs(db: &mut dyn Sql, n: i64) -> Result<i64, DbError> {
    let last = db.query_one(
        "UPDATE counters SET value = value + $1 WHERE name = 'change_seq' RETURNING value",
        args![n],
    )?[0]
        .i64()?;
    Ok(last - n + 1)
}

/// The next server sequence number. In PostgreSQL the counter row stays locked until the
/// transaction ends, so numbers are handed out in commit order and a pull never skips one.
pub fn next_seq(db: &mut dyn Sql) -> Result<i64, DbError> {
    db.query_one(
        "UPDATE counters SET value = value + 1 WHERE name = 'change_seq' RETURNING value",
        &[],
    )?[0]
        .i64()
}

/// Per-field versions of an entity: the stamp of its creation, and of each field changed
/// since (a field without its own stamp was last set when the entity was made).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EntityMeta {
    pub created: FieldMeta,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, FieldMeta>,
}

impl EntityMeta {
    pub fn get(&self, field: &str) -> &FieldMeta {
        self.fields.get(field).unwrap_or(&self.created)
    }

    pub fn set(&mut self, field: &str, m: FieldMeta) {
        self.fields.insert(field.to_owned(), m);
    }
}

/// One stored entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub id: Uuid,
    pub kind: EntityKind,
    pub grid_id: Uuid,
    pub grid_code: String,
    pub parent_id: Option<Uuid>,
    pub data: Map<String, Value>,
    pub meta: EntityMeta,
    pub version: i64,
    pub created_at: DateTime<Utc>,
}

impl Entity {
    pub fn status(&self) -> Option<&str> {
        self.data.get("status").and_then(Value::as_str)
    }
}

pub fn get_entity(db: &mut dyn Sql, id: Uuid) -> Result<Option<Entity>, DbError> {
    let Some(r) = db.query_opt(
        "SELECT kind, grid_id, grid_code, parent_id, data, meta, version, created_at FROM entities WHERE id = $1",
        args![id.to_string()],
    )?
    else {
        return Ok(None);
    };
    let data: Value =
        serde_json::from_str(r[4].str()?).map_err(|e| DbError::Type(e.to_string()))?;
    let Value::Object(data) = data else {
        return Err(DbError::Type(format!("entity {id} is not an object")));
    };
    Ok(Some(Entity {
        id,
        kind: EntityKind::from_code(r[0].str()?).map_err(|e| DbError::Type(e.to_string()))?,
        grid_id: uuid(r[1].str()?)?,
        grid_code: r[2].string()?,
        parent_id: r[3].opt_string()?.map(|s| uuid(&s)).transpose()?,
        data,
        meta: serde_json::from_str(r[5].str()?).map_err(|e| DbError::Type(e.to_string()))?,
        version: r[6].i64()?,
        created_at: parse_ts(r[7].str()?)?,
    }))
}

/// `$first, $first+1, ...`: `n` numbered parameters, for an `IN (...)` list or one row of a
/// multi-row `VALUES`.
fn params(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An entity's kind and grid code without reading its JSON (scope checks on the hot path).
pub fn entity_head(db: &mut dyn Sql, id: Uuid) -> Result<Option<(EntityKind, String)>, DbError> {
    db.query_opt(
        "SELECT kind, grid_code FROM entities WHERE id = $1",
        args![id.to_string()],
    )?
    .map(|r| {
        Ok((
            EntityKind::from_code(r[0].str()?).map_err(|e| DbError::Type(e.to_string()))?,
            r[1].string()?,
        ))
    })
    .transpose()
}

/// Inserts or replaces an entity (its indexed columns come from its data).
pub fn put_entity(db: &mut dyn Sql, e: &Entity, now: DateTime<Utc>) -> Result<(), DbError> {
    put_entities(db, std::slice::from_ref(e), now)
}

/// Inserts or replaces entities, 100 to a statement (one round trip each on PostgreSQL). No
/// id may appear twice in `es`.
pub fn put_entities(db: &mut dyn Sql, es: &[Entity], now: DateTime<Utc>) -> Result<(), DbError> {
    const COLS: usize = 14;
    for chunk in es.chunks(100) {
        let mut rows = Vec::with_capacity(chunk.len());
        let mut args: Vec<V> = Vec::with_capacity(chunk.len() * COLS);
        for (i, e) in chunk.iter().enumerate() {
            let s = |k: &str| e.data.get(k).and_then(Value::as_str).map(str::to_owned);
            let category = s("category").or_else(|| s("domain"));
            let marks = params(i * COLS + 1, COLS);
            rows.push(format!("({})", marks));
            args.extend([
                V::T(e.id.to_string()),
                V::T(e.kind.code().to_owned()),
                V::T(e.grid_id.to_string()),
                V::T(e.grid_code.clone()),
                e.parent_id.map(|p| p.to_string()).into(),
                s("status").into(),
                s("urgency").into(),
                category.into(),
                s("author").into(),
                V::T(ts(e.created_at)),
                V::T(ts(now)),
                V::T(Value::Object(e.data.clone()).to_string()),
                V::T(serde_json::to_string(&e.meta).map_err(|e| DbError::Type(e.to_string()))?),
                V::I(e.version),
            ]);
        }
        db.exec(
            &format!(
                "INSERT INTO entities (id, kind, grid_id, grid_code, parent_id, status, urgency, category, author,
                                       created_at, updated_at, data, meta, version)
                 VALUES {}
                 ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, grid_id = excluded.grid_id,
                   grid_code = excluded.grid_code, parent_id = excluded.parent_id, status = excluded.status,
                   urgency = excluded.urgency, category = excluded.category, author = excluded.author,
                   updated_at = excluded.updated_at, data = excluded.data, meta = excluded.meta,
                   version = excluded.version",
                rows.join(", ")
            ),
            &args,
        )?;
        let new_records: Vec<(Uuid, DateTime<Utc>)> = chunk
            .iter()
            .filter(|e| e.kind.is_record())
            .map(|e| (e.id, e.created_at))
            .collect();
        number_cases(db, new_records)?;
    }
    Ok(())
}

/// A case number as people read and type it: `2026-00042`.
pub fn case_label(year: i64, seq: i64) -> String {
    format!("{year}-{seq:05}")
}

/// Gives each of `records` that has no case number the next of its filing year's, in the
/// order they were filed. The per-year counter is one row, bumped once per year per call,
/// so replicas on one PostgreSQL never hand out a number twice.
fn number_cases(db: &mut dyn Sql, records: Vec<(Uuid, DateTime<Utc>)>) -> Result<(), DbError> {
    if records.is_empty() {
        return Ok(());
    }
    let args: Vec<V> = records.iter().map(|(id, _)| V::T(id.to_string())).collect();
    let mut have = std::collections::HashSet::new();
    for chunk in args.chunks(500) {
        for r in db.query(
            &format!(
                "SELECT record_id FROM case_numbers WHERE record_id IN ({})",
                params(1, chunk.len())
            ),
            chunk,
        )? {
            have.insert(r[0].string()?);
        }
    }
    let mut new: Vec<(i64, DateTime<Utc>, Uuid)> = records
        .into_iter()
        .filter(|(id, _)| !have.contains(&id.to_string()))
        .map(|(id, at)| (i64::from(crate::domain::cst::local(at).year()), at, id))
        .collect();
    new.sort();
    for year_group in new.chunk_by(|a, b| a.0 == b.0) {
        let year = year_group[0].0;
        let n = year_group.len() as i64;
        let last = db.query_one(
            "INSERT INTO counters (name, value) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value
             RETURNING value",
            &[V::T(format!("case_seq:{year}")), V::I(n)],
        )?[0]
            .i64()?;
        for (k, rows) in year_group.chunks(300).enumerate() {
            let mut args = Vec::with_capacity(rows.len() * 3);
            let mut values = Vec::with_capacity(rows.len());
            for (i, (_, _, id)) in rows.iter().enumerate() {
                let seq = last - n + 1 + (k * 300 + i) as i64;
                values.push(format!("({})", params(i * 3 + 1, 3)));
                args.extend([V::T(id.to_string()), V::I(year), V::I(seq)]);
            }
            db.exec(
                &format!(
                    "INSERT INTO case_numbers (record_id, year, seq) VALUES {}",
                    values.join(", ")
                ),
                &args,
            )?;
        }
    }
    Ok(())
}

/// Numbers the records stored before case numbers existed (run when the server starts; a
/// no-op once every record has one).
pub fn number_unnumbered_cases(db: &mut dyn Sql) -> Result<usize, DbError> {
    let mut missing = Vec::new();
    for r in db.query(
        &format!(
            "SELECT e.id, e.created_at FROM entities e WHERE e.kind IN ({RECORD_KINDS})
             AND NOT EXISTS (SELECT 1 FROM case_numbers c WHERE c.record_id = e.id)"
        ),
        &[],
    )? {
        missing.push((uuid(r[0].str()?)?, parse_ts(r[1].str()?)?));
    }
    let n = missing.len();
    number_cases(db, missing)?;
    Ok(n)
}

/// The case numbers of those of `ids` that have one.
pub fn case_numbers(db: &mut dyn Sql, ids: &[Uuid]) -> Result<BTreeMap<Uuid, String>, DbError> {
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(500) {
        let args: Vec<V> = chunk.iter().map(|i| V::T(i.to_string())).collect();
        for r in db.query(
            &format!(
                "SELECT record_id, year, seq FROM case_numbers WHERE record_id IN ({})",
                params(1, chunk.len())
            ),
            &args,
        )? {
            out.insert(uuid(r[0].str()?)?, case_label(r[1].i64()?, r[2].i64()?));
        }
    }
    Ok(out)
}

/// The record with case number `label` (`2026-42` and `2026-00042` alike), if any.
pub fn record_by_case(db: &mut dyn Sql, label: &str) -> Result<Option<Uuid>, DbError> {
    let Some((y, s)) = label.trim().split_once('-') else {
        return Ok(None);
    };
    let (Ok(year), Ok(seq)) = (y.parse::<i64>(), s.parse::<i64>()) else {
        return Ok(None);
    };
    db.query(
        "SELECT record_id FROM case_numbers WHERE year = $1 AND seq = $2",
        &[V::I(year), V::I(seq)],
    )?
    .first()
    .map(|r| uuid(r[0].str()?))
    .transpose()
}

/// Kind and grid code of those of `ids` that exist (one query per 500 ids).
pub fn entity_heads(
    db: &mut dyn Sql,
    ids: &[Uuid],
) -> Result<BTreeMap<Uuid, (EntityKind, String)>, DbError> {
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(500) {
        let marks = params(1, chunk.len());
        let args: Vec<V> = chunk.iter().map(|i| V::T(i.to_string())).collect();
        for r in db.query(
            &format!(
                "SELECT id, kind, grid_code FROM entities WHERE id IN ({})",
                marks
            ),
            &args,
        )? {
            out.insert(
                uuid(r[0].str()?)?,
                (
                    EntityKind::from_code(r[1].str()?).map_err(|e| DbError::Type(e.to_string()))?,
                    r[2].string()?,
                ),
            );
        }
    }
    Ok(out)
}

/// Adds a status change, stamped with the record's current version (write the record first):
/// a pull sends a device only the changes after its base.
pub fn add_status_change(db: &mut dyn Sql, c: &StatusChange) -> Result<(), DbError> {
    db.exec(
        "INSERT INTO status_history (record_id, from_status, to_status, at, actor, note, version)
         VALUES ($1, $2, $3, $4, $5, $6, (SELECT version FROM entities WHERE id = $1))",
        args![
            c.record_id.to_string(),
            c.from.code(),
            c.to.code(),
            ts(c.at),
            &c.actor,
            c.note.clone()
        ],
    )?;
    Ok(())
}

/// The status history of records, oldest first, by record.
pub fn status_histories(
    db: &mut dyn Sql,
    ids: &[Uuid],
) -> Result<BTreeMap<Uuid, Vec<StatusChange>>, DbError> {
    let mut out: BTreeMap<Uuid, Vec<StatusChange>> = BTreeMap::new();
    for chunk in ids.chunks(500) {
        let marks = params(1, chunk.len());
        let args: Vec<V> = chunk.iter().map(|i| V::T(i.to_string())).collect();
        let rows = db.query(
            &format!(
                "SELECT record_id, from_status, to_status, at, actor, note FROM status_history
                 WHERE record_id IN ({}) ORDER BY id",
                marks
            ),
            &args,
        )?;
        for r in rows {
            let id = uuid(r[0].str()?)?;
            let code = |v: &V| -> Result<crate::domain::Status, DbError> {
                crate::domain::Status::from_code(v.str()?).map_err(|e| DbError::Type(e.to_string()))
            };
            out.entry(id).or_default().push(StatusChange {
                record_id: id,
                from: code(&r[1])?,
                to: code(&r[2])?,
                at: parse_ts(r[3].str()?)?,
                actor: r[4].string()?,
                note: r[5].opt_string()?,
            });
        }
    }
    Ok(out)
}

/// The status history of records, oldest first, by record, each change with the version
/// it was made at (a change from before versions were kept counts as its record's version
/// when that was recorded, never as older than it is).
pub fn versioned_histories(
    db: &mut dyn Sql,
    ids: &[Uuid],
) -> Result<BTreeMap<Uuid, Vec<(i64, StatusChange)>>, DbError> {
    let mut out: BTreeMap<Uuid, Vec<(i64, StatusChange)>> = BTreeMap::new();
    for chunk in ids.chunks(500) {
        let marks = params(1, chunk.len());
        let args: Vec<V> = chunk.iter().map(|i| V::T(i.to_string())).collect();
        let rows = db.query(
            &format!(
                "SELECT record_id, from_status, to_status, at, actor, note,
                        COALESCE(version, 9223372036854775807) FROM status_history
                 WHERE record_id IN ({}) ORDER BY id",
                marks
            ),
            &args,
        )?;
        for r in rows {
            let id = uuid(r[0].str()?)?;
            let code = |v: &V| -> Result<crate::domain::Status, DbError> {
                crate::domain::Status::from_code(v.str()?).map_err(|e| DbError::Type(e.to_string()))
            };
            out.entry(id).or_default().push((
                r[6].i64()?,
                StatusChange {
                    record_id: id,
                    from: code(&r[1])?,
                    to: code(&r[2])?,
                    at: parse_ts(r[3].str()?)?,
                    actor: r[4].string()?,
                    note: r[5].opt_string()?,
                },
            ));
        }
    }
    Ok(out)
}

/// One line of the audit log: who, what, when, which device.
#[allow(clippy::too_many_arguments)] // each is one column of the line
pub fn audit(
    db: &mut dyn Sql,
    now: DateTime<Utc>,
    username: &str,
    device: Option<Uuid>,
    action: &str,
    kind: Option<EntityKind>,
    entity: Option<Uuid>,
    detail: Option<String>,
) -> Result<(), DbError> {
    db.exec(
        "INSERT INTO audit (at, username, device_id, action, entity_kind, entity_id, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        args![
            ts(now),
            username,
            device.map(|d| d.to_string()),
            action,
            kind.map(|k| k.code()),
            entity.map(|e| e.to_string()),
            detail
        ],
    )?;
    Ok(())
}

/// One line of the audit log, to write later with others ([`audit_many`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditLine {
    pub at: DateTime<Utc>,
    pub username: String,
    pub device: Option<Uuid>,
    pub action: String,
    pub kind: Option<EntityKind>,
    pub entity: Option<Uuid>,
    pub detail: Option<String>,
}

/// Writes audit lines in order, many to a statement (a pushed batch's in one or two).
pub fn audit_many(db: &mut dyn Sql, lines: &[AuditLine]) -> Result<(), DbError> {
    for chunk in lines.chunks(100) {
        let mut rows = Vec::with_capacity(chunk.len());
        let mut args = Vec::with_capacity(chunk.len() * 7);
        for (i, l) in chunk.iter().enumerate() {
            let marks = params(i * 7 + 1, 7);
            rows.push(format!("({})", marks));
            args.extend([
                V::T(ts(l.at)),
                V::T(l.username.clone()),
                l.device.map(|d| d.to_string()).into(),
                V::T(l.action.clone()),
                l.kind.map(|k| k.code()).into(),
                l.entity.map(|e| e.to_string()).into(),
                l.detail.clone().into(),
            ]);
        }
        db.exec(
            &format!(
                "INSERT INTO audit (at, username, device_id, action, entity_kind, entity_id, detail) VALUES {}",
                rows.join(", ")
            ),
            &args,
        )?;
    }
    Ok(())
}

/// A device lane's watermark: the last sequence number received, and the account it
/// belongs to.
pub type Watermark = (i64, String);

/// Device lanes' watermarks, locking their rows for the rest of the transaction (a row is
/// made at 0 for a new device lane, owned by the account given), with the account each
/// belongs to: `(device, lane, account)` in, `(device, lane) -> (seq, owner)` out. One
/// statement; rows are locked in key order so that two receivers cannot deadlock. Only its
/// owner's push marks a row as seen.
pub fn lock_watermarks(
    db: &mut dyn Sql,
    keys: &[(Uuid, &str, &str)],
    now: DateTime<Utc>,
) -> Result<BTreeMap<(Uuid, String), Watermark>, DbError> {
    let mut keys: Vec<&(Uuid, &str, &str)> = keys.iter().collect();
    keys.sort_by_key(|k| (k.0, k.1));
    keys.dedup_by_key(|k| (k.0, k.1));
    let mut out = BTreeMap::new();
    for chunk in keys.chunks(500) {
        let mut rows = Vec::with_capacity(chunk.len());
        let mut args: Vec<V> = Vec::with_capacity(chunk.len() * 5);
        for (i, (device, lane, username)) in chunk.iter().enumerate() {
            rows.push(format!("({})", params(i * 5 + 1, 5)));
            args.extend([
                V::T(device.to_string()),
                V::T((*lane).to_owned()),
                V::I(0),
                V::T((*username).to_owned()),
                V::T(ts(now)),
            ]);
        }
        for r in db.query(
            &format!(
                "INSERT INTO watermarks (device_id, lane, seq, username, updated_at) VALUES {}
                 ON CONFLICT (device_id, lane) DO UPDATE SET updated_at = CASE
                   WHEN watermarks.username = excluded.username THEN excluded.updated_at
                   ELSE watermarks.updated_at END
                 RETURNING device_id, lane, seq, username",
                rows.join(", ")
            ),
            &args,
        )? {
            out.insert(
                (uuid(r[0].str()?)?, r[1].string()?),
                (r[2].i64()?, r[3].string()?),
            );
        }
    }
    Ok(out)
}

/// Moves device lanes' watermarks (rows locked by [`lock_watermarks`]): `(device, lane, seq)`,
/// each key once.
pub fn set_watermarks(db: &mut dyn Sql, marks: &[(Uuid, &str, i64)]) -> Result<(), DbError> {
    for chunk in marks.chunks(500) {
        let mut rows = Vec::with_capacity(chunk.len());
        let mut args: Vec<V> = Vec::with_capacity(chunk.len() * 3);
        for (i, (device, lane, seq)) in chunk.iter().enumerate() {
            // The rows exist: this insert always takes its update branch.
            rows.push(format!("({}, '', '')", params(i * 3 + 1, 3)));
            args.extend([
                V::T(device.to_string()),
                V::T((*lane).to_owned()),
                V::I(*seq),
            ]);
        }
        db.exec(
            &format!(
                "INSERT INTO watermarks (device_id, lane, seq, username, updated_at) VALUES {}
                 ON CONFLICT (device_id, lane) DO UPDATE SET seq = excluded.seq",
                rows.join(", ")
            ),
            &args,
        )?;
    }
    Ok(())
}

/// One entity in a pull page: kind, id, data and per-field versions (JSON), version.
pub type ChangedRow = (EntityKind, Uuid, String, String, i64);

/// Entities in scope changed after `cursor`, in version order, at most `limit` (+1 to tell
/// whether more wait).
pub fn changed_since(
    db: &mut dyn Sql,
    scope: &Scope,
    cursor: i64,
    limit: usize,
) -> Result<Vec<ChangedRow>, DbError> {
    let (clause, mut args) = scope.clause(3);
    let mut all = vec![V::I(cursor), V::I(limit as i64 + 1)];
    all.append(&mut args);
    db.query(
        &format!(
            "SELECT kind, id, data, meta, version FROM entities WHERE {clause} AND version > $1
             ORDER BY version LIMIT $2"
        ),
        &all,
    )?
    .into_iter()
    .map(|mut r| {
        Ok((
            EntityKind::from_code(r[0].str()?).map_err(|e| DbError::Type(e.to_string()))?,
            uuid(r[1].str()?)?,
            take_string(&mut r[2])?,
            take_string(&mut r[3])?,
            r[4].i64()?,
        ))
    })
    .collect()
}

fn take_string(v: &mut V) -> Result<String, DbError> {
    match std::mem::replace(v, V::Null) {
        V::T(s) => Ok(s),
        other => Err(DbError::Type(format!("expected text, got {other:?}"))),
    }
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

/// A complete photo's bytes and stored type, if the account's `scope` holds a record that
/// the photo's uploader attached it to (a photo is only as visible as the records its own
/// uploader put it on: naming someone else's hash in one's own record grants nothing).
pub fn photo_in_scope(
    db: &mut dyn Sql,
    scope: &Scope,
    sha: &str,
) -> Result<Option<(Vec<u8>, String)>, DbError> {
    let (clause, mut args) = scope.clause(2);
    let mut all = vec![V::T(sha.to_owned())];
    all.append(&mut args);
    db.query_opt(
        &format!(
            "SELECT p.data, p.mime FROM photos p
             WHERE p.sha256 = $1 AND p.complete = 1 AND EXISTS (
               SELECT 1 FROM record_photos
               WHERE sha256 = p.sha256 AND username = p.uploaded_by AND {clause})"
        ),
        &all,
    )?
    .map(|r| Ok((r[0].bytes()?, r[1].string()?)))
    .transpose()
}

/// Whether `username` may attach photo `sha` to a record: nobody has it yet, it is theirs,
/// or their scope already shows it ([`photo_in_scope`]'s rule, complete or not).
pub fn may_name_photo(
    db: &mut dyn Sql,
    sha: &str,
    username: &str,
    scope: &Scope,
) -> Result<bool, DbError> {
    let Some(r) = db.query_opt(
        "SELECT uploaded_by FROM photos WHERE sha256 = $1",
        args![sha],
    )?
    else {
        return Ok(true);
    };
    if r[0].str()? == username {
        return Ok(true);
    }
    let (clause, mut args) = scope.clause(3);
    let mut all = vec![V::T(sha.to_owned()), V::T(r[0].string()?)];
    all.append(&mut args);
    Ok(db
        .query_opt(
            &format!(
                "SELECT 1 FROM record_photos WHERE sha256 = $1 AND username = $2 AND {clause}"
            ),
            &all,
        )?
        .is_some())
}

/// Notes that `record` (in grid `grid_code`) carries photo `sha`, attached by `username`.
pub fn link_photo(
    db: &mut dyn Sql,
    sha: &str,
    record: Uuid,
    grid_code: &str,
    username: &str,
) -> Result<(), DbError> {
    db.exec(
        "INSERT INTO record_photos (sha256, record_id, grid_code, username) VALUES ($1, $2, $3, $4)
         ON CONFLICT (sha256, record_id) DO NOTHING",
        args![sha, record.to_string(), grid_code, username],
    )?;
    Ok(())
}

/// A record moved to another grid: its photos go with it.
pub fn move_record_photos(db: &mut dyn Sql, record: Uuid, grid_code: &str) -> Result<(), DbError> {
    db.exec(
        "UPDATE record_photos SET grid_code = $2 WHERE record_id = $1",
        args![record.to_string(), grid_code],
    )?;
    Ok(())
}

/// Expects a photo's upload (the first entry naming it makes the row; its account and
/// device upload it).
pub fn add_photo(
    db: &mut dyn Sql,
    sha: &str,
    size: i64,
    mime: &str,
    username: &str,
    device: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    db.exec(
        "INSERT INTO photos (sha256, size, mime, received, complete, data, uploaded_by, device_id, created_at)
         VALUES ($1, $2, $3, 0, 0, NULL, $4, $5, $6) ON CONFLICT (sha256) DO NOTHING",
        args![
            sha,
            size,
            mime,
            username,
            device.map(|d| d.to_string()),
            ts(now)
        ],
    )?;
    Ok(())
}

/// What an upload has received so far, `(size, received, complete)`, if this account and
/// device may upload it: the photo's uploader, from the device whose entry named it (any of
/// the uploader's devices once it is complete). Anyone else is answered as for a photo no
/// record names.
pub fn photo_state_for(
    db: &mut dyn Sql,
    sha: &str,
    username: &str,
    device: Uuid,
) -> Result<Option<(i64, i64, bool)>, DbError> {
    let Some(r) = db.query_opt(
        "SELECT size, received, complete, uploaded_by, device_id FROM photos WHERE sha256 = $1",
        args![sha],
    )?
    else {
        return Ok(None);
    };
    let complete = r[2].i64()? != 0;
    let own_device = match r[4].opt_string()? {
        Some(d) => d == device.to_string(),
        None => true,
    };
    if r[3].str()? != username || !(own_device || complete) {
        return Ok(None);
    }
    Ok(Some((r[0].i64()?, r[1].i64()?, complete)))
}

/// A received push, to queue in the inbox.
pub struct QueuedPush<'a> {
    pub device: Uuid,
    pub lane: &'a str,
    pub username: &'a str,
    pub device_now: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    /// The entries, JSON in sequence order, zstd-compressed ([`pack_entries`]).
    pub entries_zstd: Vec<u8>,
}

thread_local! {
    /// Each thread's zstd contexts, kept: a fresh compression context allocates and clears
    /// about a megabyte, which in a burst of pushes cost more than the compression itself.
    static ZSTD: std::cell::RefCell<Option<(zstd::bulk::Compressor<'static>, zstd::bulk::Decompressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f` with this thread's zstd contexts (made on first use).
fn with_zstd<R>(
    f: impl FnOnce(
        &mut zstd::bulk::Compressor<'static>,
        &mut zstd::bulk::Decompressor<'static>,
    ) -> std::io::Result<R>,
) -> std::io::Result<R> {
    ZSTD.with(|z| {
        let mut z = z.borrow_mut();
        if z.is_none() {
            *z = Some((
                zstd::bulk::Compressor::new(1)?,
                zstd::bulk::Decompressor::new()?,
            ));
        }
        let (c, d) = z.as_mut().expect("made above");
        f(c, d)
    })
}

/// A push's entries (JSON) as the inbox keeps them: zstd, level 1 (fast: the compression is
/// done by the request's task before it waits for the writer).
pub fn pack_entries(json: &str) -> Result<Vec<u8>, DbError> {
    with_zstd(|c, _| c.compress(json.as_bytes()))
        .map_err(|e| DbError::Type(format!("compressing a push: {e}")))
}

/// The JSON of packed entries ([`pack_entries`]).
pub fn unpack_entries(packed: &[u8]) -> Result<String, DbError> {
    let size = zstd::zstd_safe::get_frame_content_size(packed)
        .ok()
        .flatten()
        .ok_or_else(|| DbError::Type("push inbox row: not a zstd frame with its size".into()))?;
    // A push's entries are part of its body, at most MAX_JSON_BYTES: a row claiming more is
    // not one of ours (and is not given the memory it asks for).
    if size > crate::server::MAX_JSON_BYTES as u64 {
        return Err(DbError::Type(format!(
            "push inbox row: claims {size} bytes of entries"
        )));
    }
    let json = with_zstd(|_, d| d.decompress(packed, size as usize))
        .map_err(|e| DbError::Type(format!("push inbox row: {e}")))?;
    String::from_utf8(json).map_err(|e| DbError::Type(format!("push inbox row: {e}")))
}

/// Queues pushes, in the order given (rows get increasing ids: the applier's order).
pub fn queue_pushes(db: &mut dyn Sql, qs: Vec<QueuedPush<'_>>) -> Result<(), DbError> {
    let mut qs = qs.into_iter().peekable();
    while qs.peek().is_some() {
        let (mut rows, mut args) = (Vec::new(), Vec::new());
        for (i, q) in qs.by_ref().take(100).enumerate() {
            let marks = params(i * 6 + 1, 6);
            rows.push(format!("({}, '')", marks));
            args.extend([
                V::T(q.device.to_string()),
                V::T(q.lane.to_owned()),
                V::T(q.username.to_owned()),
                V::T(ts(q.device_now)),
                V::T(ts(q.received_at)),
                V::B(q.entries_zstd),
            ]);
        }
        db.exec(
            &format!(
                "INSERT INTO push_inbox (device_id, lane, username, device_now, received_at, entries_zstd, entries)
                 VALUES {}",
                rows.join(", ")
            ),
            &args,
        )?;
    }
    Ok(())
}

/// A push waiting in the inbox.
pub struct Queued {
    pub id: i64,
    pub device: Uuid,
    pub username: String,
    pub device_now: DateTime<Utc>,
    pub entries: String,
    /// Why the row's entries could not be unpacked, if they could not.
    pub unreadable: Option<String>,
    /// Earlier applications of this row that failed (not by one entry's refusal).
    pub attempts: i64,
}

/// The oldest queued pushes after row `after` (0: from the first), in arrival order, at
/// most `limit`; quarantined rows are left out.
pub fn queued_pushes(db: &mut dyn Sql, after: i64, limit: i64) -> Result<Vec<Queued>, DbError> {
    db.query(
        "SELECT id, device_id, username, device_now, entries, entries_zstd, attempts FROM push_inbox
         WHERE id > $1 AND quarantined_at IS NULL ORDER BY id LIMIT $2",
        args![after, limit],
    )?
    .into_iter()
    .map(|r| {
        let mut unreadable = None;
        Ok(Queued {
            id: r[0].i64()?,
            device: uuid(r[1].str()?)?,
            username: r[2].string()?,
            device_now: parse_ts(r[3].str()?)?,
            // A row that cannot be unpacked is the applier's to set aside, not a reason to
            // stop reading the rows behind it.
            entries: match &r[5] {
                V::Null => r[4].string()?,
                packed => match unpack_entries(&packed.bytes()?) {
                    Ok(json) => json,
                    Err(e) => {
                        unreadable = Some(e.to_string());
                        String::new()
                    }
                },
            },
            unreadable,
            attempts: r[6].i64()?,
        })
    })
    .collect()
}

/// Notes a failed application of inbox row `id` (in its own transaction, after the one
/// that failed was undone): its attempts and the error; at `max_attempts` the row is
/// quarantined, so the rows behind it move on. Returns whether it was quarantined now.
pub fn note_inbox_failure(
    db: &mut dyn Sql,
    id: i64,
    error: &str,
    max_attempts: i64,
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    let Some(r) = db.query_opt(
        "UPDATE push_inbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1 RETURNING attempts",
        args![id, error],
    )?
    else {
        return Ok(false);
    };
    if r[0].i64()? < max_attempts {
        return Ok(false);
    }
    db.exec(
        "UPDATE push_inbox SET quarantined_at = $2 WHERE id = $1",
        args![id, ts(now)],
    )?;
    Ok(true)
}

/// Sets inbox row `id` aside at once (a row that cannot be read at all).
pub fn quarantine_push(
    db: &mut dyn Sql,
    id: i64,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    db.exec(
        "UPDATE push_inbox SET attempts = attempts + 1, last_error = $2, quarantined_at = $3 WHERE id = $1",
        args![id, error, ts(now)],
    )?;
    Ok(())
}

/// A quarantined inbox row, as an administrator sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QuarantinedPush {
    pub id: i64,
    pub device: String,
    pub lane: String,
    pub username: String,
    pub received_at: String,
    pub quarantined_at: String,
    pub attempts: i64,
    pub last_error: String,
}

/// Every quarantined inbox row, oldest first.
pub fn quarantined_pushes(db: &mut dyn Sql) -> Result<Vec<QuarantinedPush>, DbError> {
    db.query(
        "SELECT id, device_id, lane, username, received_at, quarantined_at, attempts, last_error
         FROM push_inbox WHERE quarantined_at IS NOT NULL ORDER BY id",
        &[],
    )?
    .into_iter()
    .map(|r| {
        Ok(QuarantinedPush {
            id: r[0].i64()?,
            device: r[1].string()?,
            lane: r[2].string()?,
            username: r[3].string()?,
            received_at: r[4].string()?,
            quarantined_at: r[5].string()?,
            attempts: r[6].i64()?,
            last_error: r[7].opt_string()?.unwrap_or_default(),
        })
    })
    .collect()
}

/// Puts a quarantined row back in the queue, with its attempts reset, audited as `who`'s;
/// false if there is no such quarantined row.
pub fn retry_quarantined(
    db: &mut dyn Sql,
    id: i64,
    who: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    let ok = db.exec(
        "UPDATE push_inbox SET quarantined_at = NULL, attempts = 0 WHERE id = $1 AND quarantined_at IS NOT NULL",
        args![id],
    )? == 1;
    if ok {
        audit(
            db,
            now,
            who,
            None,
            "INBOX_RETRY",
            None,
            None,
            Some(id.to_string()),
        )?;
    }
    Ok(ok)
}

/// The inbox at a glance: rows queued (not quarantined), when the oldest of them was
/// received, and rows quarantined.
pub fn inbox_health(db: &mut dyn Sql) -> Result<(i64, Option<DateTime<Utc>>, i64), DbError> {
    let r = db.query_one(
        "SELECT COUNT(*) FILTER (WHERE quarantined_at IS NULL),
                MIN(received_at) FILTER (WHERE quarantined_at IS NULL),
                COUNT(*) FILTER (WHERE quarantined_at IS NOT NULL)
         FROM push_inbox",
        &[],
    )?;
    let oldest = r[1].opt_string()?.map(|s| parse_ts(&s)).transpose()?;
    Ok((r[0].i64()?, oldest, r[2].i64()?))
}

/// Removes applied rows from the inbox.
pub fn unqueue_pushes(db: &mut dyn Sql, ids: &[i64]) -> Result<(), DbError> {
    for chunk in ids.chunks(500) {
        let marks = params(1, chunk.len());
        let args: Vec<V> = chunk.iter().map(|&i| V::I(i)).collect();
        db.exec(
            &format!("DELETE FROM push_inbox WHERE id IN ({})", marks),
            &args,
        )?;
    }
    Ok(())
}

/// The last inbox row of this device's pushes still queued, if any.
pub fn last_queued_for(db: &mut dyn Sql, device: Uuid) -> Result<Option<i64>, DbError> {
    db.query_opt(
        "SELECT id FROM push_inbox WHERE device_id = $1 AND quarantined_at IS NULL ORDER BY id DESC LIMIT 1",
        args![device.to_string()],
    )?
    .map(|r| r[0].i64())
    .transpose()
}

/// How many pushes wait in the inbox, quarantined ones left out (health and load tests).
pub fn queued_count(db: &mut dyn Sql) -> Result<i64, DbError> {
    db.query_one(
        "SELECT COUNT(*) FROM push_inbox WHERE quarantined_at IS NULL",
        &[],
    )?[0]
        .i64()
}

/// Keeps a refused entry (the entry as pushed, JSON) for its device and county staff.
pub fn add_rejection(
    db: &mut dyn Sql,
    device: Uuid,
    username: &str,
    r: &crate::wire::Rejection,
    entry: &str,
) -> Result<(), DbError> {
    db.exec(
        "INSERT INTO push_rejections (seq, device_id, username, lane, entry_seq, kind, record_id, op,
                                      error, message, field, entry, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        args![
            r.seq,
            device.to_string(),
            username,
            r.lane.code(),
            r.entry_seq as i64,
            r.kind.code(),
            r.record_id.to_string(),
            r.op.code(),
            &r.error,
            &r.message,
            r.field.clone(),
            entry,
            ts(r.at)
        ],
    )?;
    Ok(())
}

/// A device's refused entries with `after < seq <= upto`, in order: only those pushed by
/// `username` (a device's refusals are its account's).
pub fn rejections_for(
    db: &mut dyn Sql,
    device: Uuid,
    username: &str,
    after: i64,
    upto: i64,
) -> Result<Vec<crate::wire::Rejection>, DbError> {
    use crate::wire::{Lane, Op};
    let bad = |what: &str, e: String| DbError::Type(format!("push_rejections.{what}: {e}"));
    db.query(
        "SELECT seq, lane, entry_seq, kind, record_id, op, error, message, field, at
         FROM push_rejections WHERE device_id = $1 AND username = $2 AND seq > $3 AND seq <= $4
         ORDER BY seq",
        args![device.to_string(), username, after, upto],
    )?
    .into_iter()
    .map(|r| {
        Ok(crate::wire::Rejection {
            seq: r[0].i64()?,
            lane: Lane::from_code(r[1].str()?).map_err(|e| bad("lane", e.to_string()))?,
            entry_seq: r[2].i64()? as u64,
            kind: EntityKind::from_code(r[3].str()?).map_err(|e| bad("kind", e.to_string()))?,
            record_id: uuid(r[4].str()?)?,
            op: Op::from_code(r[5].str()?).map_err(|e| bad("op", e.to_string()))?,
            error: r[6].string()?,
            message: r[7].string()?,
            field: r[8].opt_string()?,
            at: parse_ts(r[9].str()?)?,
        })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_entries_come_back_whole_and_a_row_claiming_too_much_is_refused() {
        let a = r#"[{"seq":1,"fields":{"description":"楼道内电动车飞线充电"}}]"#.repeat(40);
        let b = "[]";
        // The thread's contexts are reused: each packing stands on its own.
        for json in [&a[..], b, &a[..]] {
            assert_eq!(unpack_entries(&pack_entries(json).unwrap()).unwrap(), json);
        }
        let huge = vec![b' '; crate::server::MAX_JSON_BYTES + 1];
        let packed = zstd::bulk::compress(&huge, 1).unwrap();
        let e = unpack_entries(&packed).unwrap_err().to_string();
        assert!(e.contains("claims"), "{e}");
        let e = unpack_entries(b"not zstd").unwrap_err().to_string();
        assert!(e.contains("not a zstd frame"), "{e}");
    }
}
