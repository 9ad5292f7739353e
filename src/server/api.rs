//! HTTP routes under `/api/v1` (see ARCHITECTURE.md for the protocol) and `/healthz`, each
//! registered with its OpenAPI description (served at `/api/v1/openapi.json`, see
//! [`super::openapi`]). Handlers parse input at the edge, run the database work on the
//! blocking pool in one transaction, and answer JSON; every failure is a [`Failure`] with a
//! JSON body.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tower_http::CompressionLevel;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::auth::{self, Auth};
use super::body::{self, Unpacked};
use super::error::Failure;
use super::openapi::{
    self, Conflict, Forbidden, Gap, Internal, Invalid, NotFound, RateLimited, Unauthorized,
    Unavailable, UnsupportedEncoding,
};
use super::{AppState, MAX_JSON_BYTES, MAX_PHOTO_BYTES, records, repo};
use crate::domain::codes::Coded;
use crate::domain::lifecycle::Status;
use crate::domain::model::{EntityKind, is_sha256_hex, sniff_mime};
use crate::wire::{
    Account, GENERATION_HEADER, LoginRequest, LoginResponse, PROTOCOL_HEADER, PROTOCOL_VERSION,
    PullResponse, PushRequest, PushResponse, RawFields,
};

/// The API's routes and `/healthz`, each registered with its description by `routes!` (a
/// handler without a `#[utoipa::path]` does not compile there). Nothing is routed here any
/// other way: the description's test reads this file and fails on a route it cannot find
/// described.
fn routes() -> OpenApiRouter<AppState> {
    let api = OpenApiRouter::default()
        .routes(routes!(openapi_json))
        .routes(routes!(ping))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(push))
        .routes(routes!(pull))
        .routes(routes!(pull_stream))
        .routes(routes!(photo_get, photo_head, photo_put))
        .routes(routes!(records))
        .routes(routes!(record))
        .routes(routes!(transition))
        .routes(routes!(reply))
        .routes(routes!(settle))
        .fallback(|| async { Failure::NotFound("没有这个地址 (no such route)".into()) })
        .layer(DefaultBodyLimit::max(MAX_JSON_BYTES.max(MAX_PHOTO_BYTES)))
        .layer(middleware::from_fn(api_edge));
    OpenApiRouter::default()
        .routes(routes!(healthz))
        .nest(openapi::BASE, api)
}

/// The API's OpenAPI description, as served at `/api/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    openapi::finish(routes().into_openapi())
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    let (api, _) = routes().split_for_parts();
    api.merge(super::dashboard::routes())
        // zstd when the client takes it (the sync client does): a whole grid's first pull is
        // about 40% smaller than with gzip, and quicker to make. Level 6 of 22: level 9 made
        // the grid's page only slightly smaller for more CPU on every pull.
        // Answers under COMPRESS_ABOVE bytes go as they are.
        .layer(
            CompressionLayer::new()
                .quality(CompressionLevel::Precise(ZSTD_LEVEL))
                .compress_when(
                    SizeAbove::new(COMPRESS_ABOVE)
                        .and(NotForContentType::GRPC)
                        .and(NotForContentType::IMAGES)
                        .and(NotForContentType::SSE),
                ),
        )
        .with_state(state)
}

/// Answers smaller than this many bytes are sent uncompressed: a push's acknowledgement
/// (about 90 bytes of JSON) comes out of zstd no smaller, and making a compression context
/// for it, and another on the phone to undo it, cost a thousand pushes at once 1% of the
/// server's CPU and more of the devices'.
pub const COMPRESS_ABOVE: u16 = 1024;

/// The edge of every `/api/v1` request: the protocol header is required (426 without it or
/// with another version, naming the version this server speaks), except on sign-in, which
/// answers the version in its body; every answer says the server's version and is not to be
/// sniffed; and an error that did not come from a [`Failure`] (a route or method that does
/// not exist, a body over the limit) is turned into the JSON error all others are.
///
/// An authenticated answer also says when its session ends unused and at the latest
/// ([`auth::SESSION_EXPIRES_HEADER`], [`auth::SESSION_ENDS_HEADER`]).
///
/// The description (`/openapi.json`) is read whatever the header says: a client reads it
/// before it knows which version to speak.
async fn api_edge(mut req: Request, next: Next) -> Response {
    let sign_in = req.uri().path().ends_with("/auth/login");
    let description = req.uri().path().ends_with("/openapi.json");
    let session = auth::SessionTimes::default();
    req.extensions_mut().insert(session.clone());
    let client = req
        .headers()
        .get(PROTOCOL_HEADER)
        .map(|v| v.to_str().unwrap_or("?").to_owned());
    let mut res = match client {
        Some(c) if c == PROTOCOL_VERSION.to_string() => next.run(req).await,
        None if sign_in => next.run(req).await,
        _ if description => next.run(req).await,
        other => Failure::Upgrade {
            server: PROTOCOL_VERSION,
            client: other.unwrap_or_default(),
        }
        .into_response(),
    };
    let json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if (res.status().is_client_error() || res.status().is_server_error()) && !json {
        res = plain_error_as_json(res).await;
    }
    let h = res.headers_mut();
    h.insert(PROTOCOL_HEADER, HeaderValue::from(PROTOCOL_VERSION));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some((expires, ends)) = session.0.get() {
        for (name, at) in [
            (auth::SESSION_EXPIRES_HEADER, expires),
            (auth::SESSION_ENDS_HEADER, ends),
        ] {
            let at = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            if let Ok(v) = HeaderValue::from_str(&at) {
                h.insert(name, v);
            }
        }
    }
    res
}

/// `GET /api/v1/ping`: whether this server answers, for the app's reachability probe. No
/// session and no database: 204 with nothing but the protocol header [`api_edge`] adds (426
/// naming the server's version for an app that speaks another). `/healthz` is the operators'
/// check, which asks the database.
#[utoipa::path(
    get,
    path = "/ping",
    tag = "meta",
    summary = "Whether this server answers",
    description = "The app's reachability probe: no session and no database. 204 with only \
        the protocol header; 426 for an app that speaks another protocol. `GET /healthz` is the \
        operators' check, which asks the database.",
    responses((status = 204, description = "The server answers and speaks this protocol."))
)]
async fn ping() -> StatusCode {
    StatusCode::NO_CONTENT
}

/// The description, made once.
static DESCRIPTION: std::sync::LazyLock<Bytes> = std::sync::LazyLock::new(|| {
    Bytes::from(serde_json::to_vec(&openapi()).expect("the description serialises"))
});

/// `GET /api/v1/openapi.json`: this API's OpenAPI description.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    summary = "This description",
    description = "The API's OpenAPI 3 description, as JSON. Read without a session and \
        without the protocol header (whatever version it names), so that a client can read it \
        first; it carries the API's headers like every other answer.",
    responses((status = 200, description = "The OpenAPI document.", content_type = "application/json", body = Object))
)]
async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DESCRIPTION.clone(),
    )
        .into_response()
}

/// An error answer made outside our handlers (axum's own), as the JSON error.
async fn plain_error_as_json(res: Response) -> Response {
    let status = res.status();
    let text = axum::body::to_bytes(res.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let (error, message) = match status {
        StatusCode::NOT_FOUND => ("not_found", "没有这个地址 (no such route)".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => (
            super::error::METHOD_NOT_ALLOWED,
            "这个地址不接受这种请求 (method not allowed)".to_owned(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            super::error::TOO_LARGE,
            "请求内容太大 (the body is over the limit)".to_owned(),
        ),
        s if s.is_server_error() => ("internal", "internal error".to_owned()),
        _ => ("invalid", text.chars().take(300).collect()),
    };
    let body = crate::wire::ApiError {
        error: error.into(),
        message,
        field: None,
        expected: None,
    };
    (status, Json(body)).into_response()
}

/// A path parameter whose error is the JSON error naming it (e.g. `id` is not a UUID).
pub struct ApiPath<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Failure;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;
        // The parameters' names, for an error about the only one.
        let names: Vec<String> = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map(|p| p.iter().map(|(k, _)| k.to_owned()).collect())
            .unwrap_or_default();
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                let field = match e.kind() {
                    ErrorKind::ParseErrorAtKey { key, .. }
                    | ErrorKind::InvalidUtf8InPathParam { key } => key.clone(),
                    _ if names.len() == 1 => names[0].clone(),
                    _ => "path".to_owned(),
                };
                Err(Failure::invalid(
                    format!("地址中的 {field} 格式不对 (malformed {field} in the path)"),
                    Some(&field),
                ))
            }
            Err(e) => Err(Failure::invalid(e.body_text(), Some("path"))),
        }
    }
}

/// A query string whose errors are the JSON error naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Failure;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(q.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                let path = e.path().to_string();
                let field = if path == "." {
                    "query".to_owned()
                } else {
                    path
                };
                Failure::invalid(
                    format!(
                        "查询参数 {field} 无效 (invalid query parameter {field}: {})",
                        e.into_inner()
                    ),
                    Some(&field),
                )
            })
    }
}

/// A JSON body whose errors say which field is wrong.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = Failure;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body::read(req, state, MAX_JSON_BYTES).await?;
        // Parsed plainly first (a push is tens of kilobytes); only a body that fails is
        // parsed again, tracking the path, to say where it is wrong.
        if let Ok(v) = serde_json::from_slice(&bytes) {
            return Ok(JsonBody(v));
        }
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(de)
            .map(JsonBody)
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                Failure::invalid(
                    format!("malformed JSON: {inner}"),
                    (path != ".").then_some(path.as_str()),
                )
            })
    }
}

/// Runs database work on the blocking pool.
async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, Failure> + Send + 'static,
) -> Result<R, Failure> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Failure::Internal(format!("task failed: {e}")))?
}

/// 200 while the database answers, with the push inbox at a glance: rows waiting to be
/// applied, how old the oldest is, and rows quarantined (an administrator's to look at).
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "meta",
    summary = "Health, for operators",
    description = "200 while the database answers, with the push inbox at a glance; 503 when \
        it does not. Outside `/api/v1`: no protocol header, no session, and not the API's \
        error body.",
    responses(
        (status = 200, description = "The database answers.", body = openapi::Health),
        (status = 503, description = "The database does not answer.", body = openapi::HealthDown),
    )
)]
async fn healthz(State(s): State<AppState>) -> Response {
    let db = s.db.clone();
    match tokio::task::spawn_blocking(move || {
        db.ping()?;
        db.read(repo::inbox_health)
    })
    .await
    {
        Ok(Ok((queued, oldest, quarantined))) => {
            let age = oldest.map(|t| (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0);
            Json(serde_json::json!({
                "status": "ok",
                "backend": s.db.backend(),
                "inbox": {
                    "queued": queued,
                    "oldest_age_s": age.unwrap_or(0.0),
                    "quarantined": quarantined,
                },
            }))
            .into_response()
        }
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "unavailable", "backend": s.db.backend()})),
        )
            .into_response(),
    }
}

#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "session",
    summary = "Sign in",
    description = "Opens a session for the account on this device: the token is sent as \
        `Authorization: Bearer` on every other request. The session ends after 30 days unused \
        (each use slides it out) and 180 days after sign-in at the latest. Signing in again from \
        the same device and account opens a new session. A device id is enrolled to the first \
        account that signs in with it (403 for another). After 5 failures in 15 minutes from one \
        source (the device if enrolled to this account, else the address), or 20 from all \
        sources but the account's enrolled devices, 429 with `Retry-After`. The body may be \
        gzipped.",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in.", body = LoginResponse),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 415, response = UnsupportedEncoding),
        (status = 422, response = Invalid),
        (status = 429, response = RateLimited),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
async fn login(
    State(s): State<AppState>,
    extensions: axum::http::Extensions,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Response, Failure> {
    let from = peer(&extensions);
    let _turn = s.db.write_turn().await;
    let res = blocking(move || auth::login_from(&s, &req, from, Utc::now())).await?;
    Ok(Json(res).into_response())
}

/// The address a request came from (when the server is served with connect info).
pub fn peer(extensions: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "session",
    summary = "Sign out",
    description = "Revokes the session's token (audited).",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out."),
        (status = 401, response = Unauthorized),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
async fn logout(State(s): State<AppState>, a: Auth) -> Result<StatusCode, Failure> {
    let _turn = s.db.write_turn().await;
    blocking(move || {
        s.db.tx(|db| -> Result<(), Failure> {
            repo::revoke_session(db, &a.token_hash)?;
            repo::audit(
                db,
                Utc::now(),
                &a.user.username,
                Some(a.device),
                "LOGOUT",
                None,
                None,
                None,
            )?;
            Ok(())
        })
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/me",
    tag = "session",
    summary = "Who is signed in",
    description = "The session's account and, for a worker, their grids.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account.", body = Account),
        (status = 401, response = Unauthorized),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
async fn me(State(s): State<AppState>, a: Auth) -> Result<Response, Failure> {
    let ids: Vec<Uuid> = a.user.grids.iter().map(|g| g.0).collect();
    let names = s.read(move |db| Ok(repo::grid_names(db, &ids)?)).await?;
    Ok(Json(a.user.account(&names)).into_response())
}

#[utoipa::path(
    post,
    path = "/sync/push",
    tag = "sync",
    summary = "Push one lane's outbox entries",
    description = "Receives the entries into the push inbox and answers once they are \
        committed there: delete every entry up to `acked_through`. Entries at or below the \
        device lane's watermark are answered as already received (`replayed`); the first new \
        one must continue it (409 `gap` otherwise, with the number expected). The server applies \
        the entries just after, in order; one refused then (scope, validation, lifecycle) comes \
        down with the device's next pull (`rejected`). The body may be gzipped (the sync client \
        gzips every push).",
    request_body(content = PushRequest<RawFields>, description = "One lane's entries, in \
        order; `Content-Encoding: gzip` accepted."),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Received; applied just after.", body = PushResponse),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 409, response = Gap),
        (status = 415, response = UnsupportedEncoding),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
async fn push(
    State(s): State<AppState>,
    a: Auth,
    JsonBody(req): JsonBody<PushRequest<RawFields>>,
) -> Result<Json<PushResponse>, Failure> {
    // Received with the other pushes waiting, in one transaction; applied just after.
    let res = s.inbox.receive(&s.db, a.user, a.device, req).await?;
    Ok(Json(res))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PullQuery {
    /// The cursor the last page answered (0 at first): changes after it come.
    #[serde(default)]
    #[param(minimum = 0)]
    cursor: i64,
    /// Where the device's last complete pull ended, 0 to `cursor` (0: send whole entities).
    #[serde(default)]
    #[param(minimum = 0)]
    base: i64,
    /// Changes in the answer, at most (a page; in a stream, all its pages together, at most
    /// 100,000).
    #[serde(default = "default_limit")]
    #[param(default = 20000, minimum = 1)]
    limit: usize,
    /// In a stream: changes per page, at most (default 2,000; the first page holds at most
    /// 1,000).
    #[serde(default)]
    #[param(minimum = 1)]
    frame: Option<usize>,
}

fn default_limit() -> usize {
    records::MAX_PAGE
}

impl PullQuery {
    fn parse(q: Result<ApiQuery<PullQuery>, Failure>) -> Result<PullQuery, Failure> {
        let ApiQuery(q) = q?;
        if q.cursor < 0 {
            return Err(Failure::invalid("cursor must be 0 or more", Some("cursor")));
        }
        if q.base < 0 || q.base > q.cursor {
            return Err(Failure::invalid(
                "base must be between 0 and the cursor",
                Some("base"),
            ));
        }
        Ok(q)
    }
}

#[utoipa::path(
    get,
    path = "/sync/pull",
    tag = "sync",
    summary = "Pull one page of changes",
    description = "Waits until the device's own queued pushes are applied (30 s at most), then \
        answers the entities in the account's scope changed after `cursor`, in version order, \
        with the device's pushed entries refused when applied (`rejected`) and, on the first page \
        (cursor 0), the visit cadence. Entities the device holds as of `base` may come as partial \
        changes. `changes` travel column-wise (see ARCHITECTURE.md, \"Pull pages\"). \
        Compressed with zstd or gzip as `Accept-Encoding` allows. `frame` is ignored here.",
    params(PullQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page; ask again from its `cursor` while `more`.", body = PullResponse),
        (status = 401, response = Unauthorized),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
async fn pull(
    State(s): State<AppState>,
    a: Auth,
    q: Result<ApiQuery<PullQuery>, Failure>,
) -> Result<Response, Failure> {
    let q = PullQuery::parse(q)?;
    let generation = generation_header(&s).await?;
    // The device's own pushes first: its sync brings back what it sent, or why not.
    s.inbox.settle(&s.db, a.device).await?;
    s.inbox.pushes_first().await;
    let _bulk = s.db.bulk_turn().await;
    let res = s
        .read(move |db| {
            Ok(records::pull(
                db,
                &a.user,
                Some(a.device),
                q.cursor,
                q.base,
                q.limit,
            )?)
        })
        .await?;
    Ok(([(GENERATION_HEADER, generation)], Json(res)).into_response())
}

/// The database's generation as a pull answer says it: a cursor is a place in its change
/// sequence, and a restored database starts another.
async fn generation_header(s: &AppState) -> Result<HeaderValue, Failure> {
    HeaderValue::from_str(&s.generation().await?)
        .map_err(|e| Failure::Internal(format!("generation setting: {e}")))
}

/// Changes in a stream's first page, at most: small, so the device starts storing early.
pub const FIRST_FRAME: usize = 1_000;
/// Changes in each later page of a stream unless the device asks for fewer.
pub const DEFAULT_FRAME: usize = 2_000;
/// Changes in one streamed answer, at most.
pub const MAX_STREAM: usize = 100_000;

/// The pages of `/sync/pull`, one after another in one answer: NDJSON, one page a line, in
/// one zstd stream flushed after each page (tower-http's compression would hold them back
/// until the end). The next page is built while the device stores the one before, so a
/// first sync costs about the server's work or the phone's, not both one after the other.
/// Each page is read in its own turn and transaction, exactly as if asked for by itself.
#[utoipa::path(
    get,
    path = "/sync/pull/stream",
    tag = "sync",
    summary = "Pull many pages in one answer",
    description = "The pages `GET /sync/pull` would give, one after another in one NDJSON \
        answer, one `PullResponse` a line: the first of at most min(`frame`, 1,000) changes, then \
        `frame` (default 2,000) each, up to `limit` changes in all (at most 100,000); the last \
        line's `more` says whether to ask again. Each page is read in its own transaction. With \
        `Accept-Encoding: zstd` the answer is one zstd stream (`Content-Encoding: zstd`) flushed \
        after each page; otherwise it is plain. A failure while streaming ends the answer \
        unfinished: keep the pages that arrived whole and ask again from the last one's cursor.",
    params(PullQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "NDJSON: one `PullResponse` (see its schema) a line.", content_type = "application/x-ndjson", body = String),
        (status = 401, response = Unauthorized),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
async fn pull_stream(
    State(s): State<AppState>,
    headers: HeaderMap,
    a: Auth,
    q: Result<ApiQuery<PullQuery>, Failure>,
) -> Result<Response, Failure> {
    let q = PullQuery::parse(q)?;
    let generation = generation_header(&s).await?;
    s.inbox.settle(&s.db, a.device).await?;
    s.inbox.pushes_first().await;
    let zstd = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| e.split(';').next().unwrap_or("").trim() == "zstd");
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::spawn(stream_pages(s, a, q, zstd, tx));
    let mut res = axum::body::Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    h.insert(GENERATION_HEADER, generation);
    if zstd {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("zstd"));
    }
    Ok(res)
}

type Encoder = zstd::stream::write::Encoder<'static, Vec<u8>>;

/// Builds and sends a stream's pages until the last or the limit. A failure ends the
/// answer unfinished (the device keeps the pages it stored and asks again).
async fn stream_pages(
    s: AppState,
    a: Auth,
    q: PullQuery,
    zstd: bool,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let limit = q.limit.clamp(1, MAX_STREAM);
    let frame = q.frame.unwrap_or(DEFAULT_FRAME).clamp(1, records::MAX_PAGE);
    let (mut cursor, base, mut sent) = (q.cursor, q.base, 0);
    let mut size = frame.min(FIRST_FRAME);
    let mut encoder = match zstd
        .then(|| Encoder::new(Vec::new(), ZSTD_LEVEL))
        .transpose()
    {
        Ok(e) => e,
        Err(e) => {
            let _ = tx.send(Err(e)).await;
            return;
        }
    };
    let user = std::sync::Arc::new(a.user);
    loop {
        let n = size.min(limit - sent);
        let bulk = s.db.bulk_turn().await;
        let turn = s.db.read_turn().await;
        let (db, user) = (s.db.clone(), user.clone());
        let built = blocking(move || {
            let page = db.read(|db| records::pull(db, &user, Some(a.device), cursor, base, n))?;
            let mut line =
                serde_json::to_vec(&page).map_err(|e| Failure::Internal(e.to_string()))?;
            line.push(b'\n');
            let io = |e: std::io::Error| Failure::Internal(e.to_string());
            let last = !page.more || sent + page.changes.len() >= limit;
            let (bytes, encoder) = match encoder {
                // The last page goes with the end of the zstd stream, in one write.
                Some(mut e) => {
                    std::io::Write::write_all(&mut e, &line).map_err(io)?;
                    if last {
                        (e.finish().map_err(io)?, None)
                    } else {
                        std::io::Write::flush(&mut e).map_err(io)?;
                        (std::mem::take(e.get_mut()), Some(e))
                    }
                }
                None => (line, None),
            };
            Ok((page.cursor, page.more, page.changes.len(), bytes, encoder))
        })
        .await;
        drop(turn);
        drop(bulk);
        let (next, more, k, bytes);
        (next, more, k, bytes, encoder) = match built {
            Ok(b) => b,
            Err(f) => {
                tracing::warn!(error = %f, "a streamed pull ended early");
                let _ = tx.send(Err(std::io::Error::other(f.to_string()))).await;
                return;
            }
        };
        if tx.send(Ok(Bytes::from(bytes))).await.is_err() {
            return; // the device went away
        }
        (cursor, sent) = (next, sent + k);
        if !more || sent >= limit {
            return;
        }
        size = frame;
    }
}

/// zstd level of streamed pulls: the one the compression layer uses for every other answer.
const ZSTD_LEVEL: i32 = 6;

fn check_sha(sha: &str) -> Result<(), Failure> {
    if is_sha256_hex(sha) {
        Ok(())
    } else {
        Err(Failure::invalid(
            "a photo is named by its SHA-256: 64 lower-case hex digits",
            Some("sha"),
        ))
    }
}

fn upload_headers(size: i64, received: i64, complete: bool) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("upload-offset", HeaderValue::from(received));
    h.insert("upload-length", HeaderValue::from(size));
    h.insert("upload-complete", HeaderValue::from(complete as i64));
    h
}

/// How much of a photo the server has: `Upload-Offset` is where an upload continues.
#[utoipa::path(
    head,
    path = "/photos/{sha}",
    tag = "photos",
    summary = "How much of a photo the server has",
    description = "For the device whose pushed record named the photo (any device of its \
        account once complete); the device's queued pushes are applied first. 404 until a pushed \
        record names it, and for anyone else.",
    params(("sha" = String, Path, description = "The photo's SHA-256: 64 lower-case hex digits.", pattern = "^[0-9a-f]{64}$")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Where an upload continues.", headers(
            ("Upload-Offset" = i64, description = "Bytes the server has: where an upload continues."),
            ("Upload-Length" = i64, description = "The photo's size in bytes, as the record named it."),
            ("Upload-Complete" = i64, description = "1 once the whole photo is stored and checked, else 0."),
        )),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
async fn photo_head(
    State(s): State<AppState>,
    a: Auth,
    ApiPath(sha): ApiPath<String>,
) -> Result<Response, Failure> {
    check_sha(&sha)?;
    // A photo is known once a record names it: the device's own pushes first.
    s.inbox.settle(&s.db, a.device).await?;
    let state = s
        .read(move |db| Ok(repo::photo_state_for(db, &sha, &a.user.username, a.device)?))
        .await?;
    match state {
        Some((size, received, complete)) => {
            Ok((StatusCode::OK, upload_headers(size, received, complete)).into_response())
        }
        None => Err(Failure::NotFound("no record names this photo yet".into())),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Offset {
    /// Where this chunk starts: the `Upload-Offset` the server answered.
    #[param(minimum = 0)]
    offset: i64,
}

/// Appends bytes at `?offset=N`; the last chunk completes the photo if its SHA-256 matches.
#[utoipa::path(
    put,
    path = "/photos/{sha}",
    tag = "photos",
    summary = "Upload a chunk of a photo",
    description = "Appends the body's bytes at `offset` (409 `conflict` unless it is where the \
        upload continues). The chunk that completes the photo is checked against its SHA-256 and \
        must be a JPEG, PNG or WebP (422 otherwise, and the upload starts again from 0); the \
        photo is stored once. A complete photo answers as complete whatever is sent. 404 as for \
        HEAD. The body may be gzipped.",
    params(("sha" = String, Path, description = "The photo's SHA-256: 64 lower-case hex digits.", pattern = "^[0-9a-f]{64}$"), Offset),
    request_body(content = inline(openapi::Binary), content_type = "application/octet-stream", description = "The \
        chunk's bytes; `Content-Encoding: gzip` accepted."),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Stored; where the upload continues.", headers(
            ("Upload-Offset" = i64, description = "Bytes the server has: where an upload continues."),
            ("Upload-Length" = i64, description = "The photo's size in bytes, as the record named it."),
            ("Upload-Complete" = i64, description = "1 once the whole photo is stored and checked, else 0."),
        )),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 415, response = UnsupportedEncoding),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
async fn photo_put(
    State(s): State<AppState>,
    a: Auth,
    ApiPath(sha): ApiPath<String>,
    ApiQuery(Offset { offset }): ApiQuery<Offset>,
    Unpacked(body): Unpacked<MAX_PHOTO_BYTES>,
) -> Result<Response, Failure> {
    s.inbox.settle(&s.db, a.device).await?;
    check_sha(&sha)?;
    let _turn = s.db.write_turn().await;
    let up = blocking(move || {
        s.db.tx(|db| {
            let (user, device) = (&a.user.username, a.device);
            Ok(records::put_photo_chunk(
                db,
                user,
                device,
                &sha,
                offset,
                &body,
                Utc::now(),
            )?)
        })
    })
    .await?;
    let headers = upload_headers(up.size, up.received, up.complete);
    Ok((StatusCode::OK, headers).into_response())
}

/// A photo's bytes, for an account whose scope holds a record that names it.
#[utoipa::path(
    get,
    path = "/photos/{sha}",
    tag = "photos",
    summary = "A photo's bytes",
    description = "For an account whose scope holds a record the photo's uploader attached it \
        to; served as the type its bytes are (JPEG, PNG or WebP), never as declared.",
    params(("sha" = String, Path, description = "The photo's SHA-256: 64 lower-case hex digits.", pattern = "^[0-9a-f]{64}$")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The photo.", content(
            (inline(openapi::Binary) = "image/jpeg"),
            (inline(openapi::Binary) = "image/png"),
            (inline(openapi::Binary) = "image/webp"),
        )),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
async fn photo_get(
    State(s): State<AppState>,
    a: Auth,
    ApiPath(sha): ApiPath<String>,
) -> Result<Response, Failure> {
    check_sha(&sha)?;
    let found = s
        .read(move |db| Ok(repo::photo_in_scope(db, &a.user.scope(), &sha)?))
        .await?;
    let (bytes, _) =
        found.ok_or_else(|| Failure::NotFound("no such photo in your scope".into()))?;
    // The type its bytes are, never the one declared; nothing else is served.
    let mime = sniff_mime(&bytes)
        .ok_or_else(|| Failure::NotFound("no such photo in your scope".into()))?;
    Ok(([(header::CONTENT_TYPE, mime)], bytes).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct RecordsQuery {
    /// Only records of this kind (an entity kind code, e.g. `HAZARD`).
    #[param(value_type = Option<EntityKind>)]
    kind: Option<String>,
    /// Only records in this status (a status code, e.g. `REPORTED`).
    #[param(value_type = Option<Status>)]
    status: Option<String>,
    /// Records at most (at most 10,000).
    #[serde(default = "default_list")]
    #[param(default = 200)]
    limit: usize,
}

fn default_list() -> usize {
    200
}

#[utoipa::path(
    get,
    path = "/records",
    tag = "records",
    summary = "Records in scope",
    description = "The event records in the account's scope, newest first, as stored (each \
        its type's JSON), phones and ID numbers masked.",
    params(RecordsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The records.", body = Vec<Object>),
        (status = 401, response = Unauthorized),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
async fn records(
    State(s): State<AppState>,
    a: Auth,
    ApiQuery(q): ApiQuery<RecordsQuery>,
) -> Result<Response, Failure> {
    let kind = q
        .kind
        .map(|k| {
            EntityKind::from_code(&k).map_err(|e| Failure::invalid(e.to_string(), Some("kind")))
        })
        .transpose()?;
    let status = q
        .status
        .map(|k| Status::from_code(&k).map_err(|e| Failure::invalid(e.to_string(), Some("status"))))
        .transpose()?;
    let list = s
        .read(move |db| Ok(records::list_records(db, &a.user, kind, status, q.limit)?))
        .await?;
    Ok(Json(list).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct RevealQuery {
    /// `1`: phones and ID numbers unmasked (reviewers only; audited).
    #[serde(default)]
    reveal: Option<u8>,
}

/// One record in scope; phones and ID numbers masked as the dashboard shows them, unless a
/// reviewer asks to reveal them (audited, as every reveal).
#[utoipa::path(
    get,
    path = "/records/{id}",
    tag = "records",
    summary = "One record",
    description = "A record in scope with its status history and its children; phones and ID \
        numbers masked unless a reviewer asks `reveal=1` (audited; 403 for a worker). Out of \
        scope answers 404, as a missing id does.",
    params(("id" = Uuid, Path, description = "The record's id."), RevealQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The record.", body = openapi::RecordDetail),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
async fn record(
    State(s): State<AppState>,
    a: Auth,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<RevealQuery>,
) -> Result<Response, Failure> {
    let reveal = q.reveal == Some(1);
    if reveal && !a.user.role.reviews() {
        return Err(Failure::Forbidden(
            "只有县、镇、村的审核人员可以查看完整的电话和身份证号 (only reviewers may reveal phones and ID numbers)"
                .into(),
        ));
    }
    let v = if reveal {
        let _turn = s.db.write_turn().await;
        blocking(move || {
            s.db.tx(|db| {
                let v = records::record_detail(db, &a.user, id, true)?;
                repo::audit(
                    db,
                    Utc::now(),
                    &a.user.username,
                    Some(a.device),
                    "REVEAL",
                    None,
                    Some(id),
                    Some("phones and ID numbers of the record (API)".into()),
                )?;
                Ok(v)
            })
        })
        .await?
    } else {
        let _turn = s.db.read_turn().await;
        blocking(move || {
            s.db.read(|db| Ok(records::record_detail(db, &a.user, id, false)?))
        })
        .await?
    };
    Ok(Json(v).into_response())
}

/// A reviewer's lifecycle move.
#[derive(Deserialize, utoipa::ToSchema)]
struct TransitionBody {
    /// The status to move the record to.
    to: Status,
    /// A note; when not blank it also becomes a reply to the worker.
    #[serde(default)]
    note: Option<String>,
}

#[utoipa::path(
    post,
    path = "/records/{id}/transition",
    tag = "records",
    summary = "Move a record",
    description = "A reviewer's lifecycle move (village, town and county staff; 403 for a \
        worker), checked against the record's lifecycle (422 on `to` when the move is not \
        allowed); audited, and it reaches the devices with their next pull. The body may be \
        gzipped.",
    params(("id" = Uuid, Path, description = "The record's id.")),
    request_body = TransitionBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The record as it now is (its type's JSON).", body = Object),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 415, response = UnsupportedEncoding),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
async fn transition(
    State(s): State<AppState>,
    a: Auth,
    ApiPath(id): ApiPath<Uuid>,
    JsonBody(b): JsonBody<TransitionBody>,
) -> Result<Response, Failure> {
    let v = s
        .write(move |db| {
            Ok(records::review_transition(
                db,
                &a.user,
                id,
                b.to,
                b.note,
                Utc::now(),
            )?)
        })
        .await?;
    Ok(Json(v).into_response())
}

/// A reply to the record's worker.
#[derive(Deserialize, utoipa::ToSchema)]
struct ReplyBody {
    /// 1 to 2,000 characters.
    #[schema(min_length = 1, max_length = 2000)]
    text: String,
}

#[utoipa::path(
    post,
    path = "/records/{id}/replies",
    tag = "records",
    summary = "Reply on a record",
    description = "A reviewer's reply (403 for a worker); it comes down with the worker's next \
        pull. The body may be gzipped.",
    params(("id" = Uuid, Path, description = "The record's id.")),
    request_body = ReplyBody,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The reply.", body = crate::domain::model::Reply),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 415, response = UnsupportedEncoding),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
async fn reply(
    State(s): State<AppState>,
    a: Auth,
    ApiPath(id): ApiPath<Uuid>,
    JsonBody(b): JsonBody<ReplyBody>,
) -> Result<Response, Failure> {
    let r = s
        .write(move |db| Ok(records::reply(db, &a.user, id, &b.text, Utc::now())?))
        .await?;
    Ok((StatusCode::CREATED, Json(r)).into_response())
}

/// Which value of a conflict stays: the one kept when it arose, or the one that lost.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
enum Take {
    Kept,
    Lost,
}

/// How to settle a conflict.
#[derive(Deserialize, utoipa::ToSchema)]
struct SettleBody {
    take: Take,
}

#[utoipa::path(
    post,
    path = "/conflicts/{id}/settle",
    tag = "records",
    summary = "Settle a conflict",
    description = "Keeps the value that won, or puts the one that lost in its place \
        (village, town and county staff; 403 for a worker). 409 when already settled; a status \
        conflict is settled by a transition (422). The body may be gzipped.",
    params(("id" = Uuid, Path, description = "The conflict's id.")),
    request_body = SettleBody,
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Settled."),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 415, response = UnsupportedEncoding),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
async fn settle(
    State(s): State<AppState>,
    a: Auth,
    ApiPath(id): ApiPath<Uuid>,
    JsonBody(b): JsonBody<SettleBody>,
) -> Result<StatusCode, Failure> {
    let _turn = s.db.write_turn().await;
    blocking(move || {
        s.db.tx(|db| {
            let take_lost = matches!(b.take, Take::Lost);
            Ok(records::settle_conflict(
                db,
                &a.user,
                id,
                take_lost,
                Utc::now(),
            )?)
        })
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
