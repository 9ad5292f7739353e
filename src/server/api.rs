//! HTTP routes under `/api/v1` (see ARCHITECTURE.md for the protocol) and `/healthz`.
//! Handlers parse input at the edge, run the database work on the blocking pool in one
//! transaction, and answer JSON; every failure is a [`Failure`] with a JSON body.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tower_http::CompressionLevel;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use uuid::Uuid;

use super::auth::{self, Auth};
use super::body::{self, Unpacked};
use super::error::Failure;
use super::{AppState, MAX_JSON_BYTES, MAX_PHOTO_BYTES, records, repo};
use crate::domain::codes::Coded;
use crate::domain::lifecycle::Status;
use crate::domain::model::{EntityKind, is_sha256_hex, sniff_mime};
use crate::wire::{
    LoginRequest, PROTOCOL_HEADER, PROTOCOL_VERSION, PullResponse, PushRequest, PushResponse,
    RawFields,
};

/// The whole API.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/ping", get(ping))
        .route("/auth/login", post(login))
        .route("/auth/logout", post(logout))
        .route("/me", get(me))
        .route("/sync/push", post(push))
        .route("/sync/pull", get(pull))
        .route("/sync/pull/stream", get(pull_stream))
        .route(
            "/photos/{sha}",
            get(photo_get).head(photo_head).put(photo_put),
        )
        .route("/records", get(records))
        .route("/records/{id}", get(record))
        .route("/records/{id}/transition", post(transition))
        .route("/records/{id}/replies", post(reply))
        .route("/conflicts/{id}/settle", post(settle))
        .fallback(|| async { Failure::NotFound("没有这个地址 (no such route)".into()) })
        .layer(DefaultBodyLimit::max(MAX_JSON_BYTES.max(MAX_PHOTO_BYTES)))
        .layer(middleware::from_fn(api_edge));
    Router::new()
        .route("/healthz", get(healthz))
        .nest("/api/v1", api)
        .merge(super::dashboard::routes())
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
async fn api_edge(mut req: Request, next: Next) -> Response {
    let sign_in = req.uri().path().ends_with("/auth/login");
    let session = auth::SessionTimes::default();
    req.extensions_mut().insert(session.clone());
    let client = req
        .headers()
        .get(PROTOCOL_HEADER)
        .map(|v| v.to_str().unwrap_or("?").to_owned());
    let mut res = match client {
        Some(c) if c == PROTOCOL_VERSION.to_string() => next.run(req).await,
        None if sign_in => next.run(req).await,
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
async fn ping() -> StatusCode {
    StatusCode::NO_CONTENT
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
            "method_not_allowed",
            "这个地址不接受这种请求 (method not allowed)".to_owned(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "too_large",
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

async fn me(State(s): State<AppState>, a: Auth) -> Result<Response, Failure> {
    let ids: Vec<Uuid> = a.user.grids.iter().map(|g| g.0).collect();
    let names = s.read(move |db| Ok(repo::grid_names(db, &ids)?)).await?;
    Ok(Json(a.user.account(&names)).into_response())
}

async fn push(
    State(s): State<AppState>,
    a: Auth,
    JsonBody(req): JsonBody<PushRequest<RawFields>>,
) -> Result<Json<PushResponse>, Failure> {
    // Received with the other pushes waiting, in one transaction; applied just after.
    let res = s.inbox.receive(&s.db, a.user, a.device, req).await?;
    Ok(Json(res))
}

#[derive(Deserialize)]
struct PullQuery {
    #[serde(default)]
    cursor: i64,
    /// Where the device's last complete pull ended (0: send whole entities).
    #[serde(default)]
    base: i64,
    /// Changes in the answer, at most (a page; in a stream, all its pages together).
    #[serde(default = "default_limit")]
    limit: usize,
    /// In a stream: changes per page, at most (the first page is smaller, see
    /// [`FIRST_FRAME`]).
    #[serde(default)]
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

async fn pull(
    State(s): State<AppState>,
    a: Auth,
    q: Result<ApiQuery<PullQuery>, Failure>,
) -> Result<Json<PullResponse>, Failure> {
    let q = PullQuery::parse(q)?;
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
    Ok(Json(res))
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
async fn pull_stream(
    State(s): State<AppState>,
    headers: HeaderMap,
    a: Auth,
    q: Result<ApiQuery<PullQuery>, Failure>,
) -> Result<Response, Failure> {
    let q = PullQuery::parse(q)?;
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

#[derive(Deserialize)]
struct Offset {
    offset: i64,
}

/// Appends bytes at `?offset=N`; the last chunk completes the photo if its SHA-256 matches.
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

#[derive(Deserialize)]
struct RecordsQuery {
    kind: Option<String>,
    status: Option<String>,
    #[serde(default = "default_list")]
    limit: usize,
}

fn default_list() -> usize {
    200
}

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

#[derive(Deserialize)]
struct RevealQuery {
    /// `1`: phones and ID numbers unmasked (reviewers only; audited).
    #[serde(default)]
    reveal: Option<u8>,
}

/// One record in scope; phones and ID numbers masked as the dashboard shows them, unless a
/// reviewer asks to reveal them (audited, as every reveal).
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

#[derive(Deserialize)]
struct TransitionBody {
    to: Status,
    #[serde(default)]
    note: Option<String>,
}

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

#[derive(Deserialize)]
struct ReplyBody {
    text: String,
}

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

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Take {
    Kept,
    Lost,
}

#[derive(Deserialize)]
struct SettleBody {
    take: Take,
}

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
