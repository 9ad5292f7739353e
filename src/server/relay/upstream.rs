//! The relay's link to the county: signing in as the relay's account, forwarding the entries
//! devices left at the office (`POST /api/v1/relay/push`, as each device pushed them) and
//! their photos (`HEAD`/`PUT /api/v1/relay/photos/{device}/{sha}`, as each device would upload
//! them), and mirroring the village's rows (`GET /api/v1/relay/mirror`), in rounds every `--every` and at
//! once when a device pushes.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use chrono::Utc;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::{Relay, mirror, store};
use crate::domain::codes::Coded;
use crate::server::db::DbError;
use crate::server::repo;
use crate::wire::relay::{MirrorPage, RelayPushRequest};
use crate::wire::{
    ApiError, Lane, LoginRequest, LoginResponse, OutboxEntry, PHOTO_CHUNK, PROTOCOL_HEADER,
    PROTOCOL_VERSION, PushResponse, RawFields,
};

/// Entries forwarded in one request, at most.
pub const FORWARD_BATCH: i64 = 500;
/// Mirror pages asked for in one round, at most (the next round goes on from the cursor).
pub const MIRROR_PAGES: usize = 1_000;
/// The first wait after a failed round; it doubles up to [`BACKOFF_CAP`].
pub const BACKOFF_BASE: Duration = Duration::from_secs(2);
/// The longest wait between tries while the county does not answer.
pub const BACKOFF_CAP: Duration = Duration::from_secs(300);

/// The settings key of the device id the relay signs in upstream with (made once).
pub const DEVICE_ID: &str = "relay_device_id";
/// The settings key of the relay's upstream session token.
pub const TOKEN: &str = "relay_token";
/// The settings key of the relay's village code (its account's scope).
pub const VILLAGE: &str = "relay_village";
/// The settings key of the last round that completed (RFC 3339).
pub const LAST_SYNC: &str = "relay_last_sync";

/// What went wrong talking to the county.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// No answer, or the county says it cannot answer now (5xx, 429): try again later.
    #[error("县里服务器暂时连不上 (the county server does not answer: {0})")]
    Down(String),
    /// The county refused the request.
    #[error("县里服务器拒绝了请求 (the county refused: {status} {}: {})", .error.error, .error.message)]
    Refused { status: u16, error: ApiError },
    #[error("中转站数据库出错 (the relay's database: {0})")]
    Db(#[from] DbError),
    /// The county's answer is not what the protocol says.
    #[error("县里服务器的回答无法读取 (the county's answer cannot be read: {0})")]
    Garbled(String),
}

impl LinkError {
    fn status(&self) -> Option<u16> {
        match self {
            LinkError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The HTTP side of the link: the county's address and a client.
#[derive(Debug, Clone)]
pub struct Link {
    http: reqwest::Client,
    base: String,
}

impl Link {
    pub fn new(upstream: &str) -> Result<Link, LinkError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| LinkError::Down(e.to_string()))?;
        Ok(Link {
            http,
            base: upstream.trim_end_matches('/').to_owned(),
        })
    }

    /// The county's address.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1/{path}", self.base)
    }

    /// Signs in upstream.
    pub async fn login(&self, req: &LoginRequest) -> Result<LoginResponse, LinkError> {
        let res = self
            .http
            .post(self.url("auth/login"))
            .header(PROTOCOL_HEADER, PROTOCOL_VERSION)
            .json(req)
            .send()
            .await
            .map_err(|e| LinkError::Down(e.to_string()))?;
        decode(res).await
    }

    /// A device's sign-in passed on: the county's status, `Retry-After` and body, as they are.
    pub async fn pass_login(
        &self,
        req: &LoginRequest,
    ) -> Result<(u16, Option<String>, Bytes), LinkError> {
        let res = self
            .http
            .post(self.url("auth/login"))
            .header(PROTOCOL_HEADER, PROTOCOL_VERSION)
            .json(req)
            .send()
            .await
            .map_err(|e| LinkError::Down(e.to_string()))?;
        let status = res.status().as_u16();
        if status >= 500 {
            return Err(LinkError::Down(format!("HTTP {status}")));
        }
        let retry_after = res
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = res
            .bytes()
            .await
            .map_err(|e| LinkError::Down(e.to_string()))?;
        Ok((status, retry_after, body))
    }

    /// One mirror page after `cursor`.
    pub async fn mirror(
        &self,
        token: &str,
        cursor: i64,
        advertise: Option<&str>,
        used: &[String],
    ) -> Result<MirrorPage, LinkError> {
        let mut q = vec![("cursor", cursor.to_string())];
        if let Some(a) = advertise {
            q.push(("advertise", a.to_owned()));
        }
        if !used.is_empty() {
            q.push(("used", used.join(",")));
        }
        let res = self
            .http
            .get(self.url("relay/mirror"))
            .header(PROTOCOL_HEADER, PROTOCOL_VERSION)
            .bearer_auth(token)
            .query(&q)
            .send()
            .await
            .map_err(|e| LinkError::Down(e.to_string()))?;
        decode(res).await
    }

    /// Forwards a device's entries.
    pub async fn push(
        &self,
        token: &str,
        req: &RelayPushRequest,
    ) -> Result<PushResponse, LinkError> {
        let res = self
            .http
            .post(self.url("relay/push"))
            .header(PROTOCOL_HEADER, PROTOCOL_VERSION)
            .bearer_auth(token)
            .json(req)
            .send()
            .await
            .map_err(|e| LinkError::Down(e.to_string()))?;
        decode(res).await
    }

    /// How much of photo `sha` the county has from `device` (what the device's own `HEAD`
    /// would answer); `None` while no entry the county applied names it (404).
    pub async fn photo_head(
        &self,
        token: &str,
        device: Uuid,
        sha: &str,
    ) -> Result<Option<CountyPhoto>, LinkError> {
        let res = self
            .http
            .head(self.url(&format!("relay/photos/{device}/{sha}")))
            .header(PROTOCOL_HEADER, PROTOCOL_VERSION)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| LinkError::Down(e.to_string()))?;
        if res.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        upload_answer(res).await.map(Some)
    }

    /// Sends a chunk of `device`'s photo `sha` at `offset` (as the device's own `PUT`).
    pub async fn photo_put(
        &self,
        token: &str,
        device: Uuid,
        sha: &str,
        offset: usize,
        chunk: Bytes,
    ) -> Result<CountyPhoto, LinkError> {
        let res = self
            .http
            .put(self.url(&format!("relay/photos/{device}/{sha}")))
            .header(PROTOCOL_HEADER, PROTOCOL_VERSION)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .bearer_auth(token)
            .query(&[("offset", offset)])
            .body(chunk)
            .send()
            .await
            .map_err(|e| LinkError::Down(e.to_string()))?;
        upload_answer(res).await
    }
}

/// Where a photo's upload stands at the county, as its `Upload-*` headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountyPhoto {
    pub size: i64,
    pub offset: i64,
    pub complete: bool,
}

/// A photo upload's answer: its `Upload-*` headers on success, the error otherwise.
async fn upload_answer(res: reqwest::Response) -> Result<CountyPhoto, LinkError> {
    let status = res.status();
    if !status.is_success() {
        let bytes = res.bytes().await.unwrap_or_default();
        return Err(failure(status, &bytes));
    }
    let header = |name: &str| -> Result<i64, LinkError> {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| LinkError::Garbled(format!("photo upload answer without {name}")))
    };
    Ok(CountyPhoto {
        size: header("upload-length")?,
        offset: header("upload-offset")?,
        complete: header("upload-complete")? == 1,
    })
}

/// A county answer: the body on success, the error otherwise (5xx and 429 as down).
async fn decode<T: DeserializeOwned>(res: reqwest::Response) -> Result<T, LinkError> {
    let status = res.status();
    let bytes = res
        .bytes()
        .await
        .map_err(|e| LinkError::Down(e.to_string()))?;
    if status.is_success() {
        return serde_json::from_slice(&bytes).map_err(|e| LinkError::Garbled(e.to_string()));
    }
    Err(failure(status, &bytes))
}

/// A county's error answer: down on 5xx and 429, refused otherwise.
fn failure(status: reqwest::StatusCode, bytes: &[u8]) -> LinkError {
    if status.is_server_error() || status.as_u16() == 429 {
        return LinkError::Down(format!("HTTP {}", status.as_u16()));
    }
    let error = serde_json::from_slice(bytes).unwrap_or_else(|_| ApiError {
        error: "unknown".into(),
        message: String::from_utf8_lossy(bytes).chars().take(200).collect(),
        field: None,
        expected: None,
    });
    LinkError::Refused {
        status: status.as_u16(),
        error,
    }
}

/// Runs rounds until the process ends: one at once, then every `every` while the county
/// answers (or at once when woken), and after a failure with a growing wait.
pub async fn run(relay: Arc<Relay>) {
    let mut backoff = BACKOFF_BASE;
    loop {
        let n = relay.begin_round();
        let outcome = round(&relay).await;
        let wait = match &outcome {
            Ok(()) => {
                backoff = BACKOFF_BASE;
                relay.config.every
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_s = backoff.as_secs(), "upstream round failed");
                let w = backoff;
                backoff = (backoff * 2).min(BACKOFF_CAP);
                w
            }
        };
        relay.end_round(n, outcome.err());
        let _ = tokio::time::timeout(wait, relay.wake.notified()).await;
    }
}

/// One round: signed in, held entries forwarded, then the photos whole here, the mirror
/// brought up to date.
async fn round(relay: &Relay) -> Result<(), LinkError> {
    let forwarded = forward(relay).await?;
    let photos = forward_photos(relay).await?;
    let (pages, rows) = mirror_all(relay).await?;
    let now = Utc::now();
    relay
        .app
        .write(move |db| Ok(repo::set_setting(db, LAST_SYNC, &repo::ts(now))?))
        .await
        .map_err(|f| LinkError::Garbled(f.to_string()))?;
    if forwarded > 0 || photos > 0 || rows > 0 {
        tracing::info!(forwarded, photos, pages, rows, "upstream round done");
    } else {
        tracing::debug!(pages, "upstream round done, nothing new");
    }
    Ok(())
}

/// The upstream token, signing in if there is none.
async fn token(relay: &Relay) -> Result<String, LinkError> {
    let stored = relay.db_read(|db| repo::get_setting(db, TOKEN)).await?;
    match stored {
        Some(t) => Ok(t),
        None => sign_in(relay).await,
    }
}

/// Signs in upstream as the relay's account (its device id made once and kept), and keeps the
/// token and the village.
async fn sign_in(relay: &Relay) -> Result<String, LinkError> {
    let device = relay
        .db_write(|db| {
            let made = Uuid::now_v7().to_string();
            db.exec(
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                crate::args![DEVICE_ID, made],
            )?;
            repo::get_setting(db, DEVICE_ID)
        })
        .await?
        .and_then(|d| Uuid::parse_str(&d).ok())
        .ok_or_else(|| LinkError::Garbled("relay device id".into()))?;
    let res = relay
        .link
        .login(&LoginRequest {
            username: relay.config.user.clone(),
            password: relay.config.password.clone(),
            device_id: device,
        })
        .await?;
    let (token, village) = (res.token.clone(), res.account.scope_code.clone());
    relay
        .db_write(move |db| {
            repo::set_setting(db, TOKEN, &token)?;
            repo::set_setting(db, VILLAGE, &village)
        })
        .await?;
    tracing::info!(user = %relay.config.user, village = %res.account.scope_code, "signed in upstream");
    Ok(res.token)
}

/// Runs an upstream call with the token, signing in again once on 401.
async fn authed<T, F, Fut>(relay: &Relay, call: F) -> Result<T, LinkError>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<T, LinkError>>,
{
    let t = token(relay).await?;
    match call(t).await {
        Err(e) if e.status() == Some(401) => {
            let t = sign_in(relay).await?;
            call(t).await
        }
        other => other,
    }
}

/// Forwards every lane's held entries above what the county acknowledged, in order, grouped
/// by the push they came in (one skew). A lane the county refuses is logged and left; the
/// others go on. Returns the entries the county took.
async fn forward(relay: &Relay) -> Result<u64, LinkError> {
    let lanes = relay.db_read(store::lanes_to_forward).await?;
    let mut forwarded = 0;
    for (device, lane, state) in lanes {
        match forward_lane(relay, device, lane, state).await {
            Ok(n) => forwarded += n,
            Err(e @ LinkError::Refused { .. }) => {
                tracing::warn!(%device, lane = lane.code(), error = %e, "the county refused a lane's entries; left held");
                relay.note_error(&e);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(forwarded)
}

async fn forward_lane(
    relay: &Relay,
    device: Uuid,
    lane: Lane,
    state: store::LaneState,
) -> Result<u64, LinkError> {
    if state.gap_expected.is_some() {
        // The county expects an entry the office does not hold: the device sends it again
        // (its next push here is answered with the gap).
        return Ok(0);
    }
    let mut after = state.county_acked;
    let mut forwarded = 0;
    loop {
        let held = relay
            .db_read(move |db| store::held_after(db, device, lane, after, FORWARD_BATCH))
            .await?;
        let Some(first) = held.first() else {
            return Ok(forwarded);
        };
        // One request per run of entries pushed together (one skew).
        let skew = first.skew_ms;
        let run: Vec<&store::Held> = held.iter().take_while(|h| h.skew_ms == skew).collect();
        let mut entries = Vec::with_capacity(run.len());
        for h in &run {
            let e: OutboxEntry<RawFields> = serde_json::from_str(&h.entry)
                .map_err(|e| LinkError::Garbled(format!("held entry: {e}")))?;
            entries.push(e);
        }
        let req = RelayPushRequest {
            device_id: device,
            lane,
            device_now: Utc::now() - chrono::Duration::milliseconds(skew),
            entries,
        };
        let last = run.last().map(|h| h.seq).unwrap_or(after);
        match authed(relay, |t| {
            let req = &req;
            async move { relay.link.push(&t, req).await }
        })
        .await
        {
            Ok(res) => {
                let through = res.acked_through as i64;
                relay
                    .db_write(move |db| store::county_acked(db, device, lane, through))
                    .await?;
                forwarded += u64::from(res.queued);
                tracing::debug!(%device, lane = lane.code(), through, "forwarded");
                if through < last {
                    return Ok(forwarded); // the county took less than sent: next round
                }
                after = through;
            }
            Err(LinkError::Refused { status: 409, error }) if error.error == "gap" => {
                let expected = error.expected.unwrap_or(1) as i64;
                tracing::warn!(%device, lane = lane.code(), expected, "the county expects earlier entries");
                relay
                    .db_write(move |db| store::county_gap(db, device, lane, expected))
                    .await?;
                return Ok(forwarded);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Sends the county every photo whole at the office that it does not have whole, as the
/// device that named it would upload it: from the county's offset, in the phone's chunks. A
/// photo no entry the county applied names yet (404) waits for the next round; one the county
/// refuses is logged and left, the others go on. Returns the photos the county now has whole.
async fn forward_photos(relay: &Relay) -> Result<u64, LinkError> {
    let photos = relay.db_read(store::photos_to_forward).await?;
    let mut whole = 0;
    for (sha, device, size, complete) in photos {
        if !complete {
            // Not whole here (the device went on with the county directly, or will come
            // back): nothing to send, but once the county has it whole it waits here no more.
            if county_photo(relay, device, &sha)
                .await?
                .is_some_and(|c| c.complete)
            {
                let s = sha.clone();
                relay
                    .db_write(move |db| store::photo_forwarded(db, &s, device, size, true))
                    .await?;
            }
            continue;
        }
        match forward_photo(relay, &sha, device, size).await {
            Ok(true) => whole += 1,
            Ok(false) => {}
            Err(e @ LinkError::Refused { .. }) => {
                tracing::warn!(%device, %sha, error = %e, "the county refused a photo; left at the office");
                relay.note_error(&e);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(whole)
}

/// Where the county stands on a device's photo (`None`: not named there yet).
async fn county_photo(
    relay: &Relay,
    device: Uuid,
    sha: &str,
) -> Result<Option<CountyPhoto>, LinkError> {
    authed(relay, |t| async move {
        relay.link.photo_head(&t, device, sha).await
    })
    .await
}

/// One photo to the county, from its offset there; whether the county has it whole. A cut
/// connection leaves what the county took: the next round goes on from its offset.
async fn forward_photo(
    relay: &Relay,
    sha: &str,
    device: Uuid,
    size: i64,
) -> Result<bool, LinkError> {
    let Some(mut at) = county_photo(relay, device, sha).await? else {
        return Ok(false); // the entry naming it is not applied there yet
    };
    let mut bytes: Option<Bytes> = None;
    let mut conflicts = 0;
    while !at.complete {
        let all = match &bytes {
            Some(b) => b.clone(),
            None => {
                let s = sha.to_owned();
                let b = Bytes::from(
                    relay
                        .db_read(move |db| store::photo_bytes(db, &s, device))
                        .await?,
                );
                bytes = Some(b.clone());
                b
            }
        };
        let offset = usize::try_from(at.offset).unwrap_or(usize::MAX);
        if at.size != size || all.len() as i64 != size || offset >= all.len() {
            tracing::warn!(%device, %sha, county_size = at.size, county_offset = at.offset, size, held = all.len(), "the county's upload does not fit the photo held here; left at the office");
            return Ok(false);
        }
        let end = (offset + PHOTO_CHUNK).min(all.len());
        let chunk = all.slice(offset..end);
        match authed(relay, |t| {
            let chunk = chunk.clone();
            async move { relay.link.photo_put(&t, device, sha, offset, chunk).await }
        })
        .await
        {
            Ok(next) => {
                at = next;
                if !at.complete {
                    let (s, o) = (sha.to_owned(), at.offset);
                    relay
                        .db_write(move |db| store::photo_forwarded(db, &s, device, o, false))
                        .await?;
                }
            }
            // The county's offset moved (an answer lost, or the device sent some itself).
            Err(LinkError::Refused { status: 409, .. }) if conflicts < 3 => {
                conflicts += 1;
                match county_photo(relay, device, sha).await? {
                    Some(now) => at = now,
                    None => return Ok(false),
                }
            }
            Err(e) => return Err(e),
        }
    }
    let s = sha.to_owned();
    relay
        .db_write(move |db| store::photo_forwarded(db, &s, device, size, true))
        .await?;
    tracing::debug!(%device, %sha, "photo forwarded");
    Ok(true)
}

/// Asks mirror pages from the mirror's cursor while `more`, each applied in its own
/// transaction. Under a new county generation the mirror starts again from 0, and what the
/// county acknowledged before is forgotten. Returns pages and rows applied.
async fn mirror_all(relay: &Relay) -> Result<(u64, u64), LinkError> {
    let (mut pages, mut rows) = (0, 0);
    for page_no in 0..MIRROR_PAGES {
        let (cursor, generation) = relay.db_read(mirror::mirror_cursor).await?;
        let advertise = relay.config.advertise.clone();
        // The first page of a round reports the sessions used here since the last one.
        let used = if page_no == 0 {
            relay.take_used()
        } else {
            Vec::new()
        };
        let asked = authed(relay, |t| {
            let advertise = advertise.clone();
            let used = &used;
            async move {
                relay
                    .link
                    .mirror(&t, cursor, advertise.as_deref(), used)
                    .await
            }
        })
        .await;
        let page = match asked {
            Ok(p) => p,
            Err(e) => {
                relay.keep_used(used);
                return Err(e);
            }
        };
        let renewed = generation.as_deref().is_some_and(|g| g != page.generation);
        if renewed && cursor != 0 {
            tracing::warn!(county = %page.generation, "the county's database is another generation; mirroring again from 0");
            let page0 = authed(relay, |t| {
                let advertise = advertise.clone();
                async move { relay.link.mirror(&t, 0, advertise.as_deref(), &[]).await }
            })
            .await?;
            rows += apply(relay, page0, true).await?;
            pages += 1;
            continue;
        }
        let more = page.more;
        rows += apply(relay, page, renewed).await?;
        pages += 1;
        if !more {
            break;
        }
    }
    Ok((pages, rows))
}

/// Applies one mirror page in its own transaction (forgetting the county's acknowledgements
/// too when it is another generation's). Returns its rows.
async fn apply(relay: &Relay, page: MirrorPage, renewed: bool) -> Result<u64, LinkError> {
    let rows = (page.entities.len() + page.rejections.len()) as u64;
    relay
        .db_write(move |db| {
            if renewed {
                store::forget_county_acks(db)?;
            }
            mirror::apply_page(db, &page)
        })
        .await?;
    Ok(rows)
}
