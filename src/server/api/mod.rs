//! HTTP routes under `/api/v1` (see ARCHITECTURE.md for the protocol) and `/healthz`, each
//! registered with its OpenAPI description (served at `/api/v1/openapi.json`, see
//! [`super::openapi`]). Handlers parse input at the edge, run the database work on the
//! blocking pool in one transaction, and answer JSON; every failure is a [`Failure`] with a
//! JSON body.

pub(crate) mod photos;
pub(crate) mod push_pull;
mod recovery;
mod relay;
pub use push_pull::{DEFAULT_FRAME, FIRST_FRAME, MAX_STREAM};
mod review;

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
        .routes(routes!(recovery::recovery_store))
        .routes(routes!(recovery::recovery_release))
        .routes(routes!(push_pull::push))
        .routes(routes!(push_pull::pull))
        .routes(routes!(push_pull::pull_stream))
        .routes(routes!(
            photos::photo_get,
            photos::photo_head,
            photos::photo_put
        ))
        .routes(routes!(review::records))
        .routes(routes!(review::record))
        .routes(routes!(review::transition))
        .routes(routes!(review::reply))
        .routes(routes!(review::settle))
        .routes(routes!(relay::relay_mirror))
        .routes(routes!(relay::relay_push))
        .routes(routes!(relay::relay_photo_head, relay::relay_photo_put))
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

/// zstd level of every compressed answer, streamed pulls' included.
pub(crate) const ZSTD_LEVEL: i32 = 6;

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
pub(crate) async fn api_edge(mut req: Request, next: Next) -> Response {
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
pub(crate) async fn ping() -> StatusCode {
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
    description = "The session's account and, for a worker, their grids; for a worker or \
        secretary of a village whose office relay the county knows, its address (`relay_url`).",
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
    let user = a.user.clone();
    let (names, relay_url) = s
        .read(move |db| Ok((repo::grid_names(db, &ids)?, repo::relay_url_for(db, &user)?)))
        .await?;
    Ok(Json(Account {
        relay_url,
        ..a.user.account(&names)
    })
    .into_response())
}
