//! The sync client: one call runs a whole sync against the county server.
//!
//! The protocol (see ARCHITECTURE.md):
//! 1. **Push**, lane by lane (urgent first): the outbox entries in sequence order, in batches.
//!    The server applies a batch in one transaction and answers the sequence number it now
//!    holds; only then do those entries leave the outbox (kept a while as acknowledged). A
//!    batch sent twice (a lost answer, a retry) is answered as already applied. A server that
//!    expects an earlier entry than the outbox holds (a gap: its database was restored from a
//!    backup) gets the acknowledged entries it lost again, from where it stands.
//! 2. **Photos**: each photo not yet uploaded is asked for its upload offset and sent from
//!    there, so an upload cut at any byte continues where it stopped.
//! 3. **Pull**: pages of changes after the device's cursor; each page is stored together with
//!    its new cursor in one transaction, so a pull cut anywhere resumes without a gap or a
//!    repeat. The answer names the database's generation: under another one than the cursor
//!    belongs to (a restored database), the device resets its cursor, asks where each push
//!    lane stands and re-sends what the server lost, has its photos probed again, and pulls
//!    whole, all in the same sync ([`Store::take_generation`]).
//!
//! **The village office's relay.** Where the store names one ([`Store::relay_url`]) and it
//! answers `GET /api/v1/ping` within [`RELAY_PROBE_TIMEOUT`], the sync runs there: the same
//! protocol, token and cursor. A push answer's `held_through` marks entries held at the
//! office ([`Store::hold`]): they stay in the outbox, are not sent to the relay again, and
//! leave it with the county's acknowledgement, which a relay passes on as `acked_through`, or
//! which a later sync with the county gives (those entries go there too; its watermark answers
//! the ones the relay already forwarded as replayed). A photo the relay has whole is held the
//! same way. A relay answering 401 or 5xx (it does not know the session yet, has not mirrored
//! yet) or speaking another protocol is left for the county in the same sync, the session
//! untouched; a relay that stops answering mid-sync fails the sync as offline, and the next
//! one asks the relay again first. The way the last sync went is kept in `meta`
//! ([`Store::last_sync_via_relay`]).
//!
//! Every pull's answer says how long the session lasts; the device keeps it in `meta`
//! ([`Store::session_times`]). [`probe`] asks whether the server answers at all, without a
//! session: the [`schedule`]r's probe while idle or unreachable.
//!
//! Network errors, 5xx and 429 are retried with exponential backoff; 401/403 and an
//! incompatible server stop the sync with a message saying what to do. The store is held
//! behind a `Mutex` and locked only around store work, never across a request; the heavy
//! store work (reading the outbox, applying a pulled page) runs on a blocking thread, not on
//! the async executor, so the UI stays responsive while thousands of records are written and
//! many devices can sync from one process (tests, the load generator).

pub mod schedule;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::domain::codes::Coded;
use crate::domain::model::Conflict;
pub use crate::store::remote::SessionTimes;
use crate::store::remote::{LAST_SYNC_VIA, SERVER_URL, TOKEN, VIA_COUNTY, VIA_RELAY};
use crate::store::{Store, StoreError};
use crate::wire::{
    Account, ApiError, GENERATION_HEADER, Lane, LoginRequest, LoginResponse, PROTOCOL_HEADER,
    PROTOCOL_VERSION, PullResponse, PushRequest, PushResponse, SESSION_ENDS_HEADER,
    SESSION_EXPIRES_HEADER,
};

/// Entries per push request.
pub const PUSH_BATCH: usize = 500;
/// Bytes per photo upload request.
pub use crate::wire::PHOTO_CHUNK;
/// How long a reachability probe waits for the server's answer, connecting included.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the village office's relay has to answer its ping before a sync (or a probe)
/// goes to the county instead: it is on the office's own network or not there at all.
pub const RELAY_PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

/// The phases a sync reports progress in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Upload,
    Photos,
    Download,
}

/// Progress within a phase (`total` may grow during a download).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub phase: Phase,
    pub done: u64,
    pub total: u64,
}

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncSummary {
    /// Outbox entries the server took.
    pub pushed: u64,
    /// Changes pulled down.
    pub pulled: u64,
    pub photos: u64,
    /// New county feedback on this worker's records (replies, status changes).
    pub feedback: u64,
    /// Conflicts this sync brought down.
    pub conflicts: Vec<Conflict>,
    /// Pushed entries the server refused after acknowledging them, new with this sync's pulls.
    pub rejected: u64,
    /// Requests made (for benchmarks).
    pub requests: u64,
    /// When each push and pull request was sent and how long it took, answer body included
    /// (for the load generator): `Upload` for a push, `Download` for a pull.
    pub latencies: Vec<(Phase, std::time::Instant, Duration)>,
    /// How long the session lasts, as the pull's answer said (also kept in the store:
    /// [`Store::session_times`]); `None` from a server that does not say.
    pub session: Option<SessionTimes>,
    /// The county's database turned out to be restored from a backup (another generation):
    /// this sync re-sent what it lost and pulled it whole.
    pub restored: bool,
    /// Acknowledged entries this sync pushed again because the server had lost them.
    pub resent: u64,
    /// Entries the village office's relay took to hold (已交村办) in this sync, not yet
    /// acknowledged by the county.
    pub held: u64,
    /// The sync was completed at the village office's relay (not straight with the county).
    pub via_relay: bool,
}

/// Why a sync stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("cannot reach the server ({0}); check the network and try again")]
    Offline(String),
    #[error("the server did not answer properly ({0}); try again later")]
    Server(String),
    #[error("your sign-in has expired or was revoked; sign in again")]
    Unauthorized,
    #[error("the server refused: {0}")]
    Forbidden(String),
    #[error("the server needs a newer app ({0}); update the app")]
    Incompatible(String),
    #[error("the server refused the data: {}{}", .0.message, .0.field.as_ref().map(|f| format!(" (at {f})")).unwrap_or_default())]
    Rejected(ApiError),
    #[error(
        "the county server expects upload entry {expected} next (its database was restored from a backup), which this device no longer keeps (it keeps what was uploaded for {days} days); do not uninstall the app or clear its data, and contact the county's service centre so they can take these records down again",
        days = crate::store::outbox::ACKED_KEEP_DAYS
    )]
    Gap { expected: u64 },
    #[error("this device is not enrolled with a server yet")]
    NotEnrolled,
    #[error("local storage: {0}")]
    Store(#[from] StoreError),
}

impl SyncError {
    /// Whether trying again later may help without anyone doing anything.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SyncError::Offline(_) | SyncError::Server(_))
    }

    /// The message in Chinese, for the UI.
    pub fn zh(&self) -> String {
        match self {
            SyncError::Offline(_) => "无法连接服务器，请检查网络后重试。".into(),
            SyncError::Server(_) => "服务器暂时无法处理，请稍后重试。".into(),
            SyncError::Unauthorized => "登录已过期或被撤销，请重新登录。".into(),
            SyncError::Forbidden(m) => format!("服务器拒绝了请求：{m}"),
            SyncError::Incompatible(_) => "服务器需要更新版本的应用，请升级应用。".into(),
            SyncError::Rejected(e) => format!("服务器拒收数据：{}", e.message),
            SyncError::Gap { expected } => format!(
                "县里的服务器从备份恢复后，需要本机第 {expected} 条上传记录，但本机只保留上传后 {} 天内的记录，这一条已经没有了。请不要卸载应用或清除数据，并联系县综治中心，由他们补录这段时间的记录。",
                crate::store::outbox::ACKED_KEEP_DAYS
            ),
            SyncError::NotEnrolled => "本机尚未登记到服务器。".into(),
            SyncError::Store(e) => format!("本地存储出错：{e}"),
        }
    }
}

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 6,
            first_delay: Duration::from_millis(300),
            max_delay: Duration::from_secs(10),
        }
    }
}

/// A client of one server, signed in with one token.
#[derive(Clone)]
pub struct SyncClient {
    http: reqwest::Client,
    base: String,
    token: String,
    pub retry: Retry,
    /// Most changes one pull request brings (a page; a stream of pages).
    pub page: usize,
    /// Most changes in each page of a streamed pull.
    pub frame: usize,
    /// How far this device's clock is off (zero on a real device, which uses its own clock;
    /// simulations and tests set it to play a device whose clock runs fast or slow).
    pub clock_offset: chrono::Duration,
    /// This client talks to the village office's relay, not the county.
    relay: bool,
}

fn http_client() -> Result<reqwest::Client, SyncError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120))
        .gzip(true)
        .build()
        .map_err(|e| SyncError::Offline(e.to_string()))
}

fn lock(store: &Mutex<Store>) -> std::sync::MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs store work on a blocking thread (inside a tokio runtime; in place otherwise), so a
/// page of thousands of records is written without holding up the executor it was awaited
/// on: the app's UI, or the other devices of a load test.
async fn on_store<R: Send + 'static>(
    store: &Arc<Mutex<Store>>,
    f: impl FnOnce(&mut Store) -> R + Send + 'static,
) -> R {
    let store = store.clone();
    off_runtime(move || f(&mut lock(&store))).await
}

/// Runs CPU work (parsing a page of thousands of changes) on a blocking thread inside a
/// tokio runtime, in place otherwise: like [`on_store`], without the store.
async fn off_runtime<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => match rt.spawn_blocking(f).await {
            Ok(r) => r,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        },
        Err(_) => f(),
    }
}

/// Signs in once (online): returns the session and the account.
pub async fn login(
    server: &str,
    username: &str,
    password: &str,
    device_id: Uuid,
) -> Result<LoginResponse, SyncError> {
    post_sign_in(server, "auth/login", username, password, device_id).await
}

/// Gets this device's recovery secret back from the county: signs in with the account's
/// password from this device (the server checks it as a sign-in, with its limits) and
/// answers the secret the device stored, with a new session.
pub async fn release_recovery(
    server: &str,
    username: &str,
    password: &str,
    device_id: Uuid,
) -> Result<crate::wire::RecoveryRelease, SyncError> {
    post_sign_in(
        server,
        "device/recovery/release",
        username,
        password,
        device_id,
    )
    .await
}

/// Posts a sign-in (username, password, device) to `/api/v1/{path}` and decodes the answer.
async fn post_sign_in<T: DeserializeOwned>(
    server: &str,
    path: &str,
    username: &str,
    password: &str,
    device_id: Uuid,
) -> Result<T, SyncError> {
    let http = http_client()?;
    let base = server.trim_end_matches('/');
    let res = http
        .post(format!("{base}/api/v1/{path}"))
        .header(PROTOCOL_HEADER, PROTOCOL_VERSION)
        .json(&LoginRequest {
            username: username.to_owned(),
            password: password.to_owned(),
            device_id,
        })
        .send()
        .await
        .map_err(|e| SyncError::Offline(e.to_string()))?;
    decode(res).await
}

/// Checks that a gridwalk county server answers at `server`: its `/healthz` says it is up.
/// Quick (5 s at most), for the address a worker types before it is saved.
pub async fn check_health(server: &str) -> Result<(), SyncError> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(4))
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| SyncError::Offline(e.to_string()))?;
    let base = server.trim_end_matches('/');
    let res = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .map_err(|e| SyncError::Offline(e.to_string()))?;
    let status = res.status();
    let body: Option<serde_json::Value> = res.json().await.ok();
    let says = body
        .as_ref()
        .and_then(|b| b.get("status"))
        .and_then(|s| s.as_str());
    match (status, says) {
        (s, Some("ok")) if s.is_success() => Ok(()),
        (_, Some(_)) => Err(SyncError::Server(format!("/healthz answered {status}"))),
        _ => Err(SyncError::Forbidden(format!(
            "{base} is not a gridwalk county server (/healthz answered {status})"
        ))),
    }
}

/// What enrolment set up.
#[derive(Debug, Clone)]
pub struct Enrolment {
    pub account: Account,
    pub expires_at: DateTime<Utc>,
    pub first_sync: SyncSummary,
}

/// Enrols this device: signs in, keeps the server address, token and worker in the store,
/// and runs a first sync to bring the worker's grids down.
pub async fn enrol(
    server: &str,
    username: &str,
    password: &str,
    store: &Arc<Mutex<Store>>,
) -> Result<Enrolment, SyncError> {
    let device = lock(store).device_id();
    let res = login(server, username, password, device).await?;
    {
        let mut s = lock(store);
        s.set_meta(SERVER_URL, server.trim_end_matches('/'))?;
        s.set_meta(TOKEN, &res.token)?;
        s.set_worker(&res.account.username)?;
        if let Some(relay) = &res.account.relay_url {
            s.set_relay_url(Some(relay))?;
        }
        s.keep_session_times(&SessionTimes {
            expires_at: res.expires_at,
            ends_at: res.ends_at,
        })?;
    }
    let client = SyncClient::new(server, &res.token)?;
    let first_sync = client.sync(store, |_| {}).await?;
    Ok(Enrolment {
        account: res.account,
        expires_at: res.expires_at,
        first_sync,
    })
}

/// Whether the county server at `base` answers (`GET /api/v1/ping`, no session needed), within
/// [`PROBE_TIMEOUT`]: for the scheduler's probe while idle or unreachable. A new HTTP client
/// each time; [`SyncClient::probe`] reuses the client's connections.
pub async fn probe(base: &str) -> Result<(), SyncError> {
    probe_with(&http_client()?, base.trim_end_matches('/'), PROBE_TIMEOUT).await
}

/// [`probe`] for a device that may be at its village office: the relay (if any) answering
/// within [`RELAY_PROBE_TIMEOUT`] is enough, as a sync would go there; else the county.
pub async fn probe_either(county: &str, relay: Option<&str>) -> Result<(), SyncError> {
    let http = http_client()?;
    if let Some(relay) = relay
        && probe_with(&http, relay.trim_end_matches('/'), RELAY_PROBE_TIMEOUT)
            .await
            .is_ok()
    {
        return Ok(());
    }
    probe_with(&http, county.trim_end_matches('/'), PROBE_TIMEOUT).await
}

async fn probe_with(
    http: &reqwest::Client,
    base: &str,
    timeout: Duration,
) -> Result<(), SyncError> {
    let res = http
        .get(format!("{base}/api/v1/ping"))
        .header(PROTOCOL_HEADER, PROTOCOL_VERSION)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| SyncError::Offline(e.to_string()))?;
    let status = res.status();
    if status == StatusCode::UPGRADE_REQUIRED
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        return Err(error_of(status, res).await);
    }
    let theirs = res
        .headers()
        .get(PROTOCOL_HEADER)
        .map(|v| v.to_str().unwrap_or("?").to_owned());
    match theirs {
        // Not the county server: a Wi-Fi sign-in page, or a wrong address.
        None => Err(SyncError::Offline(format!(
            "answered {status} without the protocol header: not the county server"
        ))),
        Some(v) if v != PROTOCOL_VERSION.to_string() => Err(SyncError::Incompatible(format!(
            "the server speaks protocol {v}, this app {PROTOCOL_VERSION}"
        ))),
        // 404: a server of this protocol from before the probe's route; it answers.
        Some(_) if status.is_success() || status == StatusCode::NOT_FOUND => Ok(()),
        Some(_) => Err(SyncError::Server(format!(
            "the probe was answered {status}"
        ))),
    }
}

/// How long the session lasts, from an answer's headers.
fn session_times(headers: &reqwest::header::HeaderMap) -> Option<SessionTimes> {
    let at = |name: &str| {
        headers
            .get(name)?
            .to_str()
            .ok()
            .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    Some(SessionTimes {
        expires_at: at(SESSION_EXPIRES_HEADER)?,
        ends_at: at(SESSION_ENDS_HEADER),
    })
}

async fn decode<T: DeserializeOwned>(res: Response) -> Result<T, SyncError> {
    let status = res.status();
    if status.is_success() {
        return res
            .json()
            .await
            .map_err(|e| SyncError::Server(format!("unreadable answer: {e}")));
    }
    Err(error_of(status, res).await)
}

async fn error_of(status: StatusCode, res: Response) -> SyncError {
    let body: Option<ApiError> = res.json().await.ok();
    let message = body
        .as_ref()
        .map(|b| b.message.clone())
        .unwrap_or_else(|| status.to_string());
    match status {
        StatusCode::UNAUTHORIZED => SyncError::Unauthorized,
        StatusCode::FORBIDDEN => SyncError::Forbidden(message),
        StatusCode::UPGRADE_REQUIRED => SyncError::Incompatible(message),
        StatusCode::TOO_MANY_REQUESTS => SyncError::Server(message),
        s if s.is_server_error() => SyncError::Server(message),
        _ => match body {
            Some(b) if b.error == "gap" => SyncError::Gap {
                expected: b.expected.unwrap_or(0),
            },
            Some(b) => SyncError::Rejected(b),
            None => SyncError::Rejected(ApiError {
                error: status.as_str().into(),
                message,
                field: None,
                expected: None,
            }),
        },
    }
}

impl SyncClient {
    pub fn new(server: &str, token: &str) -> Result<SyncClient, SyncError> {
        Ok(SyncClient {
            http: http_client()?,
            base: server.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            retry: Retry::default(),
            page: 20_000,
            frame: 2_000,
            clock_offset: chrono::Duration::zero(),
            relay: false,
        })
    }

    /// Uses a given HTTP client (e.g. one without keep-alive, for fault-injection tests).
    pub fn with_http(mut self, http: reqwest::Client) -> SyncClient {
        self.http = http;
        self
    }

    /// The client for the server and session saved at enrolment.
    pub fn from_store(store: &Store) -> Result<SyncClient, SyncError> {
        match (store.meta(SERVER_URL)?, store.meta(TOKEN)?) {
            (Some(url), Some(token)) => SyncClient::new(&url, &token),
            _ => Err(SyncError::NotEnrolled),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Whether the server answers ([`probe`]), over this client's connections.
    pub async fn probe(&self) -> Result<(), SyncError> {
        probe_with(&self.http, &self.base, PROBE_TIMEOUT).await
    }

    /// Whether this client talks to a village office's relay.
    pub fn is_relay(&self) -> bool {
        self.relay
    }

    /// The same session at the village office's relay at `url`.
    pub fn at_relay(&self, url: &str) -> SyncClient {
        SyncClient {
            base: url.trim_end_matches('/').to_owned(),
            relay: true,
            ..self.clone()
        }
    }

    /// Keeps this device's recovery secret (base64) at the county.
    pub async fn store_recovery(&self, secret: &str) -> Result<(), SyncError> {
        let body = crate::wire::RecoveryStore {
            secret: secret.to_owned(),
        };
        let url = format!("{}/api/v1/device/recovery", self.base);
        let res = self
            .send(|| self.http.put(&url).json(&body), &mut 0)
            .await?;
        let status = res.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(error_of(status, res).await)
        }
    }

    /// Sends a request, retrying network errors, 5xx and 429 with exponential backoff.
    async fn send(
        &self,
        make: impl Fn() -> RequestBuilder,
        requests: &mut u64,
    ) -> Result<Response, SyncError> {
        let mut delay = self.retry.first_delay;
        let mut attempt = 0;
        loop {
            attempt += 1;
            *requests += 1;
            let res = make()
                .bearer_auth(&self.token)
                .header(PROTOCOL_HEADER, PROTOCOL_VERSION)
                .send()
                .await;
            let retry_err = match res {
                // A relay not ready for this device (not mirrored yet): the county, at once.
                Ok(r) if self.relay && r.status() == StatusCode::SERVICE_UNAVAILABLE => {
                    return Err(error_of(r.status(), r).await);
                }
                Ok(r)
                    if r.status().is_server_error()
                        || r.status() == StatusCode::TOO_MANY_REQUESTS =>
                {
                    let status = r.status();
                    error_of(status, r).await
                }
                Ok(r) => return Ok(r),
                Err(e) => SyncError::Offline(e.to_string()),
            };
            if attempt >= self.retry.attempts {
                return Err(retry_err);
            }
            tracing::debug!(attempt, error = %retry_err, "retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(self.retry.max_delay);
        }
    }

    /// Runs a whole sync: at the village office's relay when the store names one and it
    /// answers its ping within [`RELAY_PROBE_TIMEOUT`], else (or when the relay turns it away:
    /// 401, 5xx, another protocol) with the county; see the module's documentation. Which way
    /// it went is kept in `meta` ([`Store::last_sync_via_relay`]) and in the summary.
    pub async fn sync(
        &self,
        store: &Arc<Mutex<Store>>,
        mut progress: impl FnMut(Progress),
    ) -> Result<SyncSummary, SyncError> {
        let mut sum = SyncSummary::default();
        let relay = if self.relay {
            None
        } else {
            on_store(store, |s| s.relay_url()).await?
        };
        if let Some(url) = relay {
            let at = self.at_relay(&url);
            if probe_with(&at.http, &at.base, RELAY_PROBE_TIMEOUT)
                .await
                .is_ok()
            {
                match at.sync_here(store, &mut progress, &mut sum).await {
                    Ok(()) => {
                        sum.via_relay = true;
                        on_store(store, |s| s.set_meta(LAST_SYNC_VIA, VIA_RELAY)).await?;
                        return Ok(sum);
                    }
                    Err(
                        e @ (SyncError::Unauthorized
                        | SyncError::Server(_)
                        | SyncError::Incompatible(_)),
                    ) => {
                        tracing::info!(error = %e, "the office relay turned the sync away; the county");
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        self.sync_here(store, &mut progress, &mut sum).await?;
        sum.via_relay = self.relay;
        let via = if self.relay { VIA_RELAY } else { VIA_COUNTY };
        on_store(store, move |s| s.set_meta(LAST_SYNC_VIA, via)).await?;
        Ok(sum)
    }

    /// A whole sync at this client's server: push (urgent lane first), photos, pull. A pull
    /// that finds the county's database restored from a backup resets the store for it
    /// ([`Store::take_generation`]), and the sync runs once more: push (re-sending what the
    /// server lost first), photos (each asked for again), and a pull from 0.
    async fn sync_here(
        &self,
        store: &Arc<Mutex<Store>>,
        progress: &mut impl FnMut(Progress),
        sum: &mut SyncSummary,
    ) -> Result<(), SyncError> {
        for _ in 0..2 {
            self.push(store, progress, sum).await?;
            self.photos(store, progress, sum).await?;
            if !self.pull(store, progress, sum).await? {
                return Ok(());
            }
            sum.restored = true;
        }
        Err(SyncError::Server(
            "the county's database changed generation twice during one sync".into(),
        ))
    }

    /// Sends one push body (gzipped JSON); the server's acknowledgement.
    async fn post_push(
        &self,
        body: Vec<u8>,
        sum: &mut SyncSummary,
    ) -> Result<PushResponse, SyncError> {
        let url = format!("{}/api/v1/sync/push", self.base);
        let started = std::time::Instant::now();
        let res = self
            .send(
                || {
                    self.http
                        .post(&url)
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .header(reqwest::header::CONTENT_ENCODING, "gzip")
                        .body(body.clone())
                },
                &mut sum.requests,
            )
            .await?;
        let ack = decode(res).await?;
        sum.latencies
            .push((Phase::Upload, started, started.elapsed()));
        Ok(ack)
    }

    /// After a restore ([`Store::take_generation`]): asks where each lane stands (a push of
    /// no entries is answered with the lane's watermark) and puts back in the outbox the
    /// acknowledged entries after it. A device whose outbox is empty would otherwise never
    /// learn that the server lost them.
    async fn restore_check(
        &self,
        store: &Arc<Mutex<Store>>,
        device: Uuid,
        sum: &mut SyncSummary,
    ) -> Result<(), SyncError> {
        for lane in [Lane::Urgent, Lane::Normal] {
            let req: PushRequest<crate::wire::RawFields> = PushRequest {
                device_id: device,
                lane,
                device_now: Utc::now() + self.clock_offset,
                entries: Vec::new(),
            };
            let json = serde_json::to_vec(&req).map_err(|e| SyncError::Server(e.to_string()))?;
            let ack = self.post_push(gzip(&json), sum).await?;
            let from = ack.acked_through + 1;
            match on_store(store, move |s| s.requeue_acked(lane, from)).await? {
                Some(n) => sum.resent += n as u64,
                None => return Err(SyncError::Gap { expected: from }),
            }
        }
        on_store(store, |s| s.restore_checked()).await?;
        Ok(())
    }

    async fn push(
        &self,
        store: &Arc<Mutex<Store>>,
        progress: &mut impl FnMut(Progress),
        sum: &mut SyncSummary,
    ) -> Result<(), SyncError> {
        let (device, check) = on_store(store, |s| -> Result<_, SyncError> {
            Ok((s.device_id(), s.restore_check_due()?))
        })
        .await?;
        if check {
            self.restore_check(store, device, sum).await?;
        }
        let relay = self.relay;
        let mut total = on_store(store, move |s| -> Result<u64, StoreError> {
            Ok(s.outbox_len()? - if relay { s.held_len()? } else { 0 })
        })
        .await?;
        let pushed_before = sum.pushed;
        progress(Progress {
            phase: Phase::Upload,
            done: 0,
            total,
        });
        for lane in [Lane::Urgent, Lane::Normal] {
            let mut gap_filled = false;
            let mut asked_acks = false;
            loop {
                // The batch is read and its body made (JSON, gzip) off the runtime, like the
                // rest of the store work: with hundreds of syncs on one runtime (a load test)
                // or the UI on it (the app), making them in place held up everything else.
                let offset = self.clock_offset;
                let batch = on_store(
                    store,
                    move |s| -> Result<Option<(u64, u64, Vec<u8>)>, SyncError> {
                        // The relay is not sent what it holds already; the county is.
                        let entries = s.outbox_to_push_at(lane, PUSH_BATCH, relay)?;
                        let first = match entries.first() {
                            Some(e) => e.seq,
                            // Only entries the relay holds wait in this lane: a push of none
                            // asks the relay what the county has acknowledged of them since
                            // (once a sync), so they leave the outbox at the office too.
                            None if relay
                                && !asked_acks
                                && !s.outbox_to_push_at(lane, 1, false)?.is_empty() =>
                            {
                                0
                            }
                            None => return Ok(None),
                        };
                        let n = entries.len() as u64;
                        let req = PushRequest {
                            device_id: device,
                            lane,
                            device_now: Utc::now() + offset,
                            entries,
                        };
                        let json = serde_json::to_vec(&req)
                            .map_err(|e| SyncError::Server(e.to_string()))?;
                        Ok(Some((first, n, gzip(&json))))
                    },
                )
                .await?;
                let Some((first, n, body)) = batch else {
                    break;
                };
                let asking = first == 0;
                asked_acks |= asking;
                let ack = match self.post_push(body, sum).await {
                    // The server lost entries it had acknowledged (its database was restored
                    // from a backup): they go again from where it stands, once, if this
                    // device still keeps them.
                    // A relay that lost what it held expects it again: it is no longer held.
                    Err(SyncError::Gap { expected }) if !gap_filled => {
                        gap_filled = true;
                        let again = on_store(store, move |s| -> Result<_, StoreError> {
                            let unheld = if relay { s.unhold(lane, expected)? } else { 0 };
                            Ok(match s.requeue_acked(lane, expected)? {
                                Some(k) => Some(k + unheld),
                                None if unheld > 0 => Some(unheld),
                                None => None,
                            })
                        })
                        .await?;
                        match again {
                            Some(k) if k > 0 => {
                                sum.resent += k as u64;
                                total += k as u64;
                                continue;
                            }
                            _ => return Err(SyncError::Gap { expected }),
                        }
                    }
                    other => other?,
                };
                let now = Utc::now() + self.clock_offset;
                let held = on_store(store, move |s| -> Result<_, StoreError> {
                    s.acknowledge(lane, ack.acked_through, now)?;
                    match ack.held_through {
                        Some(h) => s.hold(lane, h, now),
                        None => Ok(0),
                    }
                })
                .await?;
                sum.held += held as u64;
                // A relay that neither holds nor passes on an acknowledgement for what it was
                // sent would be sent it forever: the county takes it instead.
                if relay && ack.acked_through.max(ack.held_through.unwrap_or(0)) < first {
                    return Err(SyncError::Server(format!(
                        "the office relay took none of entries {first}.. of lane {}",
                        lane.code()
                    )));
                }
                sum.pushed += n;
                progress(Progress {
                    phase: Phase::Upload,
                    done: sum.pushed - pushed_before,
                    total,
                });
            }
        }
        Ok(())
    }

    async fn photos(
        &self,
        store: &Arc<Mutex<Store>>,
        progress: &mut impl FnMut(Progress),
        sum: &mut SyncSummary,
    ) -> Result<(), SyncError> {
        let relay = self.relay;
        // At the relay the photos it holds are asked about too (one HEAD each): the relay
        // says when it has forwarded one whole to the county, and the photo then counts as
        // uploaded, as the entries do with the county's acknowledgement.
        let pending = on_store(store, move |s| s.pending_photos_at(false)).await?;
        let total = pending.len() as u64;
        for (i, p) in pending.into_iter().enumerate() {
            progress(Progress {
                phase: Phase::Photos,
                done: i as u64,
                total,
            });
            let url = format!("{}/api/v1/photos/{}", self.base, p.sha256);
            let head = self
                .send(|| self.http.head(&url), &mut sum.requests)
                .await?;
            if head.status() == StatusCode::NOT_FOUND {
                // The record naming it has not reached the server yet: next sync.
                continue;
            }
            if !head.status().is_success() {
                return Err(error_of(head.status(), head).await);
            }
            let header = |name: &str| -> u64 {
                head.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            let (mut offset, complete) = (
                header("upload-offset") as usize,
                header("upload-complete") == 1,
            );
            if relay && header(crate::wire::relay::FORWARDED_HEADER) == 1 {
                let sha = p.sha256.clone();
                on_store(store, move |s| s.mark_photo_uploaded(&sha)).await?;
                sum.photos += 1;
                continue;
            }
            if !complete {
                let sha = p.sha256.clone();
                let (bytes, _) = on_store(store, move |s| s.photo(&sha)).await?;
                while offset < bytes.len() {
                    let end = (offset + PHOTO_CHUNK).min(bytes.len());
                    let chunk = bytes[offset..end].to_vec();
                    let res = self
                        .send(
                            || {
                                self.http
                                    .put(format!("{url}?offset={offset}"))
                                    .header(reqwest::header::CONTENT_TYPE, p.mime.clone())
                                    .body(chunk.clone())
                            },
                            &mut sum.requests,
                        )
                        .await?;
                    match res.status() {
                        s if s.is_success() => offset = end,
                        StatusCode::CONFLICT => {
                            // Our view of the offset was stale (a lost answer): ask again.
                            let again = self
                                .send(|| self.http.head(&url), &mut sum.requests)
                                .await?;
                            offset = again
                                .headers()
                                .get("upload-offset")
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| v.parse().ok())
                                .unwrap_or(0);
                        }
                        s => return Err(error_of(s, res).await),
                    }
                }
            }
            let sha = p.sha256.clone();
            // Whole at the relay: held there (the county may not have it yet).
            let now = Utc::now() + self.clock_offset;
            on_store(store, move |s| match relay {
                true => s.mark_photo_held(&sha, now),
                false => s.mark_photo_uploaded(&sha),
            })
            .await?;
            sum.photos += 1;
        }
        progress(Progress {
            phase: Phase::Photos,
            done: total,
            total,
        });
        Ok(())
    }

    /// Pulls until the server has no more; whether the county's database turned out to be
    /// another generation (restored), in which case the store was reset for it and nothing
    /// of the answer was applied.
    async fn pull(
        &self,
        store: &Arc<Mutex<Store>>,
        progress: &mut impl FnMut(Progress),
        sum: &mut SyncSummary,
    ) -> Result<bool, SyncError> {
        loop {
            let (cursor, base) = on_store(store, |s| -> Result<_, SyncError> {
                Ok((s.pull_cursor()?, s.pull_base()?))
            })
            .await?;
            match self.pull_stream(store, cursor, base, progress, sum).await? {
                Pulled::Done => return Ok(false),
                Pulled::Restored => return Ok(true),
                // The answer stopped at its limit: ask for the rest.
                Pulled::More => {}
            }
        }
    }

    /// One streamed pull: the server's pages, one a line, each stored in its own transaction
    /// as soon as it has arrived, while the next one is still on its way (so an answer cut
    /// short keeps what came).
    async fn pull_stream(
        &self,
        store: &Arc<Mutex<Store>>,
        cursor: i64,
        base: i64,
        progress: &mut impl FnMut(Progress),
        sum: &mut SyncSummary,
    ) -> Result<Pulled, SyncError> {
        let url = format!(
            "{}/api/v1/sync/pull/stream?cursor={cursor}&base={base}&limit={}&frame={}",
            self.base, self.page, self.frame
        );
        let started = std::time::Instant::now();
        let mut res = self.send(|| self.http.get(&url), &mut sum.requests).await?;
        if !res.status().is_success() {
            return Err(error_of(res.status(), res).await);
        }
        let generation = res
            .headers()
            .get(GENERATION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let Some(g) = generation
            && on_store(store, move |s| s.take_generation(&g)).await?
        {
            // The cursor was of the database before the restore: this answer is not for us.
            return Ok(Pulled::Restored);
        }
        let mut session = session_times(res.headers());
        if session.is_some() {
            sum.session = session;
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<PullResponse>(2);
        let read = async move {
            let cut = |e: String| SyncError::Offline(format!("the pull was cut short: {e}"));
            let mut buf: Vec<u8> = Vec::new();
            let mut scanned = 0;
            while let Some(chunk) = res.chunk().await.map_err(|e| cut(e.to_string()))? {
                buf.extend_from_slice(&chunk);
                let mut start = 0;
                while let Some(i) = buf[scanned..].iter().position(|b| *b == b'\n') {
                    let line = buf[start..scanned + i].to_vec();
                    let page = off_runtime(move || serde_json::from_slice::<PullResponse>(&line))
                        .await
                        .map_err(|e| SyncError::Server(format!("unreadable answer: {e}")))?;
                    (start, scanned) = (scanned + i + 1, scanned + i + 1);
                    if tx.send(page).await.is_err() {
                        return Ok(()); // the store failed; that error is the one to give
                    }
                }
                buf.drain(..start);
                scanned = buf.len();
            }
            if buf.is_empty() {
                Ok(())
            } else {
                Err(cut("in the middle of a page".into()))
            }
        };
        let apply = async {
            let mut more = None;
            while let Some(page) = rx.recv().await {
                more = Some(page.more);
                // The session's times are kept with the first page (written when they moved).
                let keep = session.take();
                let applied = on_store(store, move |s| {
                    let applied = s.apply_pull(&page, Utc::now())?;
                    if let Some(t) = keep {
                        s.keep_session_times(&t)?;
                    }
                    Ok::<_, StoreError>(applied)
                })
                .await?;
                sum.pulled += applied.changes as u64;
                sum.feedback += applied.feedback as u64;
                sum.conflicts.extend(applied.conflicts);
                sum.rejected += applied.rejected as u64;
                progress(Progress {
                    phase: Phase::Download,
                    done: sum.pulled,
                    total: sum.pulled
                        + if more == Some(true) {
                            self.frame as u64
                        } else {
                            0
                        },
                });
            }
            Ok::<_, SyncError>(more)
        };
        let (read, more) = tokio::join!(read, apply);
        sum.latencies
            .push((Phase::Download, started, started.elapsed()));
        let more = more?;
        read?;
        match more {
            Some(true) => Ok(Pulled::More),
            Some(false) => Ok(Pulled::Done),
            None => Err(SyncError::Server("the server's answer held no page".into())),
        }
    }
}

/// How a streamed pull ended.
enum Pulled {
    /// At its limit, with more to come.
    More,
    Done,
    /// Under another generation of the county's database than the cursor's: nothing applied.
    Restored,
}

thread_local! {
    /// This thread's deflate state, reset for each push: a fresh one allocates and clears a
    /// few hundred kilobytes, more work than compressing a push of 50 records.
    static DEFLATE: std::cell::RefCell<Compress> =
        std::cell::RefCell::new(Compress::new(Compression::fast(), false));
}

/// `bytes` as one gzip member (RFC 1952): the fixed header, raw deflate, CRC-32 and length.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    // Deflate, no time stamp, no name; XFL 4 (fastest); OS 255 (unknown).
    const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255];
    let mut out = Vec::with_capacity(bytes.len() / 3 + 64);
    out.extend_from_slice(&HEADER);
    DEFLATE.with(|d| {
        let mut d = d.borrow_mut();
        d.reset();
        let mut read = 0;
        loop {
            if out.capacity() - out.len() < 1024 {
                out.reserve(out.capacity());
            }
            let before = d.total_in();
            let status = d
                .compress_vec(&bytes[read..], &mut out, FlushCompress::Finish)
                .expect("deflating memory");
            read += (d.total_in() - before) as usize;
            if status == Status::StreamEnd {
                break;
            }
        }
    });
    let mut crc = Crc::new();
    crc.update(bytes);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::gzip;

    fn gunzip(z: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(z)
            .read_to_end(&mut out)
            .expect("a valid gzip member");
        out
    }

    #[test]
    fn a_push_body_is_gzip_any_decoder_reads_and_the_kept_state_leaks_nothing() {
        // Big enough to need more output room than first reserved, and incompressible
        // enough that deflate cannot shrink it much.
        let mut x = 0x2545_f491_u32;
        let noise: Vec<u8> = (0..300_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let json = "{\"description\":\"楼道内电动车飞线充电\"}"
            .repeat(500)
            .into_bytes();
        for body in [&json[..], &noise[..], b"", &json[..]] {
            let z = gzip(body);
            assert_eq!(&z[..3], &[0x1f, 0x8b, 8], "gzip magic and deflate");
            assert_eq!(gunzip(&z), body, "round trip of {} bytes", body.len());
        }
        // The same input gives the same bytes whatever was compressed before on the thread.
        assert_eq!(gzip(&json), gzip(&json));
        assert!(
            gzip(&json).len() < json.len() / 10,
            "repetitive JSON compresses"
        );
    }
}
