//! Accounts, their scope, sessions, sign-in failures and the devices enrolled to them.

use super::*;

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
            // An assignee reads and acts on only the records dispatched to it, one by one
            // (`records`); no area of its own.
            Role::Assignee => Scope::Grids(vec![]),
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
            relay_url: None,
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

pub(super) fn user_from_row(db: &mut dyn Sql, r: &[V]) -> Result<User, DbError> {
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
pub(super) fn user_columns(r: &[V], grids: Vec<(Uuid, String)>) -> Result<User, DbError> {
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

pub(super) const USER_COLUMNS: &str = "id, username, display_name, role, scope_code, disabled";

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
    db.exec(
        "DELETE FROM device_recovery WHERE device_id = $1",
        args![&d],
    )?;
    Ok(owner)
}

/// Keeps (or replaces) the recovery secret a device sent for its account.
pub fn put_recovery(
    db: &mut dyn Sql,
    device: Uuid,
    username: &str,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    db.exec(
        "INSERT INTO device_recovery (device_id, username, secret, stored_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (device_id) DO UPDATE SET username = excluded.username,
             secret = excluded.secret, stored_at = excluded.stored_at",
        args![device.to_string(), username, secret, ts(now)],
    )?;
    Ok(())
}

/// The recovery secret a device keeps at the county, only if it is `username`'s.
pub fn recovery_secret(
    db: &mut dyn Sql,
    device: Uuid,
    username: &str,
) -> Result<Option<String>, DbError> {
    db.query_opt(
        "SELECT secret FROM device_recovery WHERE device_id = $1 AND username = $2",
        args![device.to_string(), username],
    )?
    .map(|r| r[0].string())
    .transpose()
}
