//! Accounts: password hashing (argon2), session tokens (random, stored hashed, revocable,
//! expiring), sign-in with rate limiting kept in the database (so replicas share it), and the
//! extractor that authorizes every API request.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use rand::RngExt;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::AppState;
use super::db::{Database, DbError};
use super::error::Failure;
use super::repo::{self, LiveSession, User};
use crate::wire::{Account, LoginRequest, LoginResponse, PROTOCOL_VERSION, Role};

/// How long a session lasts unused: a worker may stay offline for weeks between syncs. Each
/// use slides it out to this many days from then ([`renewal`]).
pub const SESSION_DAYS: i64 = 30;
/// How long a session lasts at most from its sign-in, however often it is used: the worker
/// types their password again twice a year, warned ahead by the app (the answers say when,
/// [`SESSION_ENDS_HEADER`]), and a phone lost without anyone revoking its session stops
/// syncing within half a year at the latest.
pub const SESSION_MAX_DAYS: i64 = 180;
/// A session's expiry is written again only when it would move by at least this much: a
/// phone syncing every few minutes costs one write a day, not one a request.
pub const RENEW_AFTER_HOURS: i64 = 24;
pub use crate::wire::{SESSION_ENDS_HEADER, SESSION_EXPIRES_HEADER};

/// The expiry a use of a live session at `now` should write, if any: `now` plus
/// [`SESSION_DAYS`], never past `ends_at`, and only when that moves it by
/// [`RENEW_AFTER_HOURS`] or more (or brings it to its end).
pub fn renewal(
    expires_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let target = (now + Duration::days(SESSION_DAYS)).min(ends_at);
    (target > expires_at
        && (target - expires_at >= Duration::hours(RENEW_AFTER_HOURS) || target == ends_at))
        .then_some(target)
}
/// Failed sign-ins allowed per account and source in the window before that source is
/// answered 429. A source is a device enrolled to the account (by its id) or, for anything
/// else, the network address the attempt came from.
pub const MAX_FAILURES: i64 = 5;
/// Failed sign-ins allowed per account in the window from all sources but its own enrolled
/// devices together: past it only those devices may still try (a guesser spreading over many
/// addresses gets this many tries per window, and the worker's own phone is never locked).
pub const MAX_ACCOUNT_FAILURES: i64 = 20;
pub const FAILURE_WINDOW_MINUTES: i64 = 15;

/// An argon2id hash of a password, in PHC format.
pub fn hash_password(password: &str) -> Result<String, Failure> {
    let mut salt = [0u8; 16];
    rand::rng().fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| Failure::Internal(e.to_string()))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| Failure::Internal(e.to_string()))?
        .to_string())
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A stored token is only its SHA-256: a leaked database reveals no usable token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs in: checks the rate limits, the password, the account and that the device is not
/// enrolled to another account, then opens a session (enrolling the device on its first).
///
/// Failures are counted per account and source ([`MAX_FAILURES`]): the source is the device
/// when it is enrolled to this account, else the address `from`. The failures of sources
/// other than the account's own devices also count together ([`MAX_ACCOUNT_FAILURES`]). So a
/// stranger guessing a worker's password locks out only their own address, and at worst
/// everyone but the worker's enrolled phones, never the phones.
pub fn login_from(
    state: &AppState,
    req: &LoginRequest,
    from: Option<std::net::IpAddr>,
    now: DateTime<Utc>,
) -> Result<LoginResponse, Failure> {
    let since = now - Duration::minutes(FAILURE_WINDOW_MINUTES);
    let owner = state.db.read(|db| repo::device_owner(db, req.device_id))?;
    let enrolled = owner.as_deref() == Some(req.username.as_str());
    let source = match (enrolled, from) {
        (true, _) => format!("device:{}", req.device_id),
        (false, Some(ip)) => format!("addr:{ip}"),
        (false, None) => "addr:unknown".to_owned(),
    };
    let (mine, others) = state.db.read(|db| {
        Ok::<_, DbError>((
            repo::login_failures_since(db, &req.username, Some(&source), since)?,
            repo::login_failures_since(db, &req.username, None, since)?,
        ))
    })?;
    if mine >= MAX_FAILURES || (!enrolled && others >= MAX_ACCOUNT_FAILURES) {
        return Err(Failure::RateLimited {
            retry_after: (FAILURE_WINDOW_MINUTES * 60) as u64,
        });
    }
    let found = state.db.read(|db| repo::user_by_name(db, &req.username))?;
    // Hash even for an unknown name, so timing does not tell which names exist.
    let dummy = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0mlI9e7tqT0c8Jk4wYmU0fb1Fg3ZbGg0j0bKXbJ5R9c";
    let ok = match &found {
        Some((u, hash)) => verify_password(&req.password, hash) && !u.disabled,
        None => {
            verify_password(&req.password, dummy);
            false
        }
    };
    let Some((user, _)) = found.filter(|_| ok) else {
        state
            .db
            .tx(|db| repo::add_login_failure(db, &req.username, &source, req.device_id, now))?;
        return Err(Failure::Unauthorized);
    };
    if owner.is_some() && !enrolled {
        return Err(Failure::Forbidden(
            "这台设备已登记在另一个账号下，不能用来登录本账号：换人使用的手机请在应用里重新登记为新设备，\
             或请管理员解除原登记 (this device is enrolled to another account: a phone that changes \
             hands enrols again as a new device, or an administrator releases it)"
                .into(),
        ));
    }
    let token = new_token();
    let expires = now + Duration::days(SESSION_DAYS);
    let ends = now + Duration::days(SESSION_MAX_DAYS);
    let grid_ids: Vec<Uuid> = user.grids.iter().map(|g| g.0).collect();
    let (names, relay_url) = state.db.tx(|db| -> Result<_, Failure> {
        // Enrolled by its first sign-in; two first sign-ins at once: the first to commit
        // keeps it, the other is refused.
        if !repo::enrol_device(db, req.device_id, &user.username, now)? {
            return Err(Failure::Forbidden(
                "这台设备已登记在另一个账号下 (this device is enrolled to another account)".into(),
            ));
        }
        repo::clear_login_failures(db, &user.username, &source)?;
        repo::create_session(
            db,
            &token_hash(&token),
            user.id,
            req.device_id,
            now,
            expires,
            ends,
        )?;
        repo::audit(
            db,
            now,
            &user.username,
            Some(req.device_id),
            "LOGIN",
            None,
            None,
            None,
        )?;
        Ok((
            repo::grid_names(db, &grid_ids)?,
            repo::relay_url_for(db, &user)?,
        ))
    })?;
    Ok(LoginResponse {
        token,
        expires_at: expires,
        ends_at: Some(ends),
        account: Account {
            relay_url,
            ..user.account(&names)
        },
        protocol: PROTOCOL_VERSION,
    })
}

/// The signed-in account of a request: `Authorization: Bearer <token>`.
pub struct Auth {
    pub user: User,
    pub device: Uuid,
    pub token_hash: String,
    /// When the session expires unused (after this request's use) and at the latest.
    pub expires_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

/// Where the [`Auth`] extractor leaves the session's times for the API's edge, which puts
/// them on the answer ([`SESSION_EXPIRES_HEADER`], [`SESSION_ENDS_HEADER`]).
#[derive(Clone, Default)]
pub struct SessionTimes(pub std::sync::Arc<std::sync::OnceLock<(DateTime<Utc>, DateTime<Utc>)>>);

impl FromRequestParts<AppState> for Auth {
    type Rejection = Failure;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(Failure::Unauthorized)?
            .trim()
            .to_owned();
        let hash = token_hash(&token);
        let live = state
            .sessions
            .look_up(&state.db, hash.clone())
            .await?
            .ok_or(Failure::Unauthorized)?;
        if let Some(times) = parts.extensions.get::<SessionTimes>() {
            let _ = times.0.set((live.expires_at, live.ends_at));
        }
        if live.user.role == Role::Relay {
            let path = parts
                .extensions
                .get::<axum::extract::OriginalUri>()
                .map(|u| u.path().to_owned())
                .unwrap_or_else(|| parts.uri.path().to_owned());
            if !relay_may(&path) {
                return Err(Failure::Forbidden(RELAY_ONLY.into()));
            }
        }
        Ok(Auth {
            user: live.user,
            device: live.device,
            token_hash: hash,
            expires_at: live.expires_at,
            ends_at: live.ends_at,
        })
    }
}

/// What a relay account is told anywhere but its own routes (the API's and the dashboard's).
pub const RELAY_ONLY: &str = "中转站账号只用于村办中转站同步，不能登录工作台或办理业务 \
     (a village-office relay account only syncs its office)";

/// The API paths a relay account may use (its own routes, `/me` and sign-out), as the
/// request names them, with or without the API's prefix.
pub fn relay_may(path: &str) -> bool {
    let path = path.strip_prefix(super::openapi::BASE).unwrap_or(path);
    path.starts_with("/relay/") || path == "/me" || path == "/auth/logout"
}

/// Session lookups waiting together, at most, in one group.
pub const LOOKUP_GROUP: usize = 256;

type Found = Option<LiveSession>;
/// A token hash to look up, and where its answer goes.
type Lookup = (String, oneshot::Sender<Found>);

/// Every API request's session lookup. A lookup waiting for a read turn is looked up together
/// with the others waiting then, in one statement ([`repo::sessions`]): a thousand devices
/// syncing at once cost a few dozen queries instead of a thousand. Each request still sees
/// the session as the database has it after the request arrived (a revoked or disabled
/// account is refused at once, on every replica). The sessions of a group that are due to
/// slide ([`renewal`]: about once a day each) are written together, in one statement (two
/// when some reach their end), before those requests are answered; the others are answered
/// at once.
#[derive(Debug)]
pub struct Sessions {
    to_look_up: mpsc::UnboundedSender<Lookup>,
    waiting: std::sync::Mutex<Option<mpsc::UnboundedReceiver<Lookup>>>,
}

impl Default for Sessions {
    fn default() -> Self {
        let (to_look_up, waiting) = mpsc::unbounded_channel();
        Sessions {
            to_look_up,
            waiting: std::sync::Mutex::new(Some(waiting)),
        }
    }
}

impl Sessions {
    /// The account and device of the live session with this token hash. Needs a tokio
    /// runtime.
    pub async fn look_up(&self, db: &Database, hash: String) -> Result<Found, Failure> {
        let taken = self
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(rx) = taken {
            tokio::spawn(look_up_groups(db.clone(), rx));
        }
        let (answer, answered) = oneshot::channel();
        if self.to_look_up.send((hash.clone(), answer)).is_ok()
            && let Ok(found) = answered.await
        {
            return Ok(found);
        }
        // The group's statement failed (or the task has stopped): this request looks up
        // alone, so the error it answers is its own (503 for a database that is down).
        let _turn = db.read_turn().await;
        let db = db.clone();
        tokio::task::spawn_blocking(move || db.lookup(|db| repo::session(db, &hash, Utc::now())))
            .await
            .map_err(|e| Failure::Internal(e.to_string()))?
            .map_err(Failure::from)
    }
}

/// Takes a read turn for the first lookup waiting, then looks up it and every other one
/// waiting by then together, while it goes on collecting the next group.
async fn look_up_groups(db: Database, mut rx: mpsc::UnboundedReceiver<Lookup>) {
    while let Some(first) = rx.recv().await {
        let turn = db.read_turn().await;
        let mut group = vec![first];
        while group.len() < LOOKUP_GROUP {
            match rx.try_recv() {
                Ok(l) => group.push(l),
                Err(_) => break,
            }
        }
        let db = db.clone();
        tokio::spawn(async move {
            let hashes: Vec<String> = group.iter().map(|(h, _)| h.clone()).collect();
            let now = Utc::now();
            let db2 = db.clone();
            let found = tokio::task::spawn_blocking(move || {
                let hashes: Vec<&str> = hashes.iter().map(String::as_str).collect();
                db2.lookup(|db| repo::sessions(db, &hashes, now))
            })
            .await;
            drop(turn);
            match found {
                Ok(Ok(found)) => answer_and_renew(&db, group, found, now).await,
                // Dropping the group's answers sends each request to look up alone.
                Ok(Err(e)) => tracing::warn!(error = %e, "looking up sessions together"),
                Err(e) => tracing::error!(error = %e, "looking up sessions together panicked"),
            }
        });
    }
}

/// Answers a looked-up group: at once where the session need not slide; the others after
/// their sessions' new expiry is written (all of them together). If that write fails, they
/// are answered with the expiry as stored (the session is live; its next use tries again).
async fn answer_and_renew(
    db: &Database,
    group: Vec<Lookup>,
    found: std::collections::HashMap<String, LiveSession>,
    now: DateTime<Utc>,
) {
    let expires = now + Duration::days(SESSION_DAYS);
    let (mut to, mut to_end, mut later) = (Vec::new(), Vec::new(), Vec::new());
    for (h, answer) in group {
        let live = found.get(&h).cloned();
        match live
            .as_ref()
            .and_then(|l| renewal(l.expires_at, l.ends_at, now))
        {
            Some(t) => {
                (if t == expires { &mut to } else { &mut to_end }).push(h);
                later.push((answer, live, t));
            }
            None => {
                let _ = answer.send(live);
            }
        }
    }
    if later.is_empty() {
        return;
    }
    for v in [&mut to, &mut to_end] {
        v.sort();
        v.dedup();
    }
    let turn = db.write_turn().await;
    let db = db.clone();
    let written = tokio::task::spawn_blocking(move || {
        let to: Vec<&str> = to.iter().map(String::as_str).collect();
        let to_end: Vec<&str> = to_end.iter().map(String::as_str).collect();
        db.tx(|tx| repo::renew_sessions(tx, &to, expires, &to_end))
    })
    .await;
    drop(turn);
    let ok = match written {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "sliding sessions out");
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "sliding sessions out panicked");
            false
        }
    };
    for (answer, mut live, t) in later {
        if ok && let Some(l) = live.as_mut() {
            l.expires_at = t;
        }
        let _ = answer.send(live);
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone, Utc};

    use super::{SESSION_DAYS, SESSION_MAX_DAYS, renewal};

    #[test]
    fn a_session_slides_once_a_day_and_never_past_its_end() {
        let signed_in = Utc.with_ymd_and_hms(2026, 1, 1, 8, 0, 0).unwrap();
        let ends = signed_in + Duration::days(SESSION_MAX_DAYS);
        let mut expires = signed_in + Duration::days(SESSION_DAYS);
        // Used every 5 minutes for a year: one write a day until the end, then none.
        let (mut writes, mut now) = (0, signed_in);
        while now < ends {
            if let Some(t) = renewal(expires, ends, now) {
                assert!(t <= ends && t > expires);
                expires = t;
                writes += 1;
            }
            assert!(expires > now, "live while used");
            now += Duration::minutes(5);
        }
        assert_eq!(expires, ends);
        assert!(
            (SESSION_MAX_DAYS - SESSION_DAYS - 1..=SESSION_MAX_DAYS - SESSION_DAYS + 1)
                .contains(&writes),
            "{writes} writes"
        );
        // Unused, nothing to write; an idle session that is used slides at once.
        assert_eq!(renewal(expires, ends, signed_in), None);
        let e = signed_in + Duration::days(3);
        assert_eq!(
            renewal(e, ends, signed_in + Duration::days(2)),
            Some(signed_in + Duration::days(2 + SESSION_DAYS))
        );
    }
}
