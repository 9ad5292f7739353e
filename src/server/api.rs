//! HTTP routes under `/api/v1` (see ARCHITECTURE.md for the protocol) and `/healthz`.
//! Handlers parse input at the edge, run the database work on the blocking pool in one
//! transaction, and answer JSON; every failure is a [`Failure`] with a JSON body.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tower_http::CompressionLevel;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use uuid::Uuid;

use super::auth::{self, Auth};
use super::body::{self, Unpacked};
use super::db::Sql;
use super::error::Failure;
use super::{AppState, MAX_JSON_BYTES, MAX_PHOTO_BYTES, repo, sync};
use crate::args;
use crate::domain::codes::Coded;
use crate::domain::lifecycle::Status;
use crate::domain::model::{EntityKind, is_sha256_hex};
use crate::wire::{
    LoginRequest, PROTOCOL_HEADER, PROTOCOL_VERSION, PullResponse, PushRequest, PushResponse,
    RawFields,
};

/// The whole API.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
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
        .layer(DefaultBodyLimit::max(MAX_JSON_BYTES.max(MAX_PHOTO_BYTES)))
        .layer(middleware::from_fn(protocol_check));
    Router::new()
        .route("/healthz", get(healthz))
        .nest("/api/v1", api)
        .merge(super::dashboard::routes())
        // zstd when the client takes it (the sync client does): a whole grid's first pull is
        // about 40% smaller than with gzip, and quicker to make. Level 6 of 22: level 9 made
        // the grid's page only 2.5% smaller (BENCHMARKS.md) for more CPU on every pull.
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

/// Refuses clients of another protocol version with 426 and a message to update.
async fn protocol_check(req: Request, next: Next) -> Response {
    if let Some(v) = req.headers().get(PROTOCOL_HEADER) {
        let client = v.to_str().unwrap_or("?").to_owned();
        if client != PROTOCOL_VERSION.to_string() {
            return Failure::Upgrade {
                server: PROTOCOL_VERSION,
                client,
            }
            .into_response();
        }
    }
    let mut res = next.run(req).await;
    res.headers_mut()
        .insert(PROTOCOL_HEADER, HeaderValue::from(PROTOCOL_VERSION));
    res
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

async fn healthz(State(s): State<AppState>) -> Response {
    let db = s.db.clone();
    match tokio::task::spawn_blocking(move || db.ping()).await {
        Ok(Ok(())) => {
            Json(serde_json::json!({"status": "ok", "backend": s.db.backend()})).into_response()
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
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Response, Failure> {
    let _turn = s.db.write_turn().await;
    let res = blocking(move || auth::login(&s, &req, Utc::now())).await?;
    Ok(Json(res).into_response())
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
    let _turn = s.db.read_turn().await;
    let names = blocking(move || {
        s.db.read(|db| repo::grid_names(db, &ids))
            .map_err(Failure::from)
    })
    .await?;
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
    sync::MAX_PAGE
}

impl PullQuery {
    fn parse(
        q: Result<Query<PullQuery>, axum::extract::rejection::QueryRejection>,
    ) -> Result<PullQuery, Failure> {
        let Query(q) = q.map_err(|e| Failure::invalid(e.body_text(), Some("query")))?;
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
    q: Result<Query<PullQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<PullResponse>, Failure> {
    let q = PullQuery::parse(q)?;
    // The device's own pushes first: its sync brings back what it sent, or why not.
    s.inbox.settle(&s.db, a.device).await?;
    s.inbox.pushes_first().await;
    let _bulk = s.db.bulk_turn().await;
    let _turn = s.db.read_turn().await;
    let res = blocking(move || {
        s.db.read(|db| sync::pull(db, &a.user, Some(a.device), q.cursor, q.base, q.limit))
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
    q: Result<Query<PullQuery>, axum::extract::rejection::QueryRejection>,
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
    let frame = q.frame.unwrap_or(DEFAULT_FRAME).clamp(1, sync::MAX_PAGE);
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
            let page = db.read(|db| sync::pull(db, &user, Some(a.device), cursor, base, n))?;
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
    Path(sha): Path<String>,
) -> Result<Response, Failure> {
    check_sha(&sha)?;
    // A photo is known once a record names it: the device's own pushes first.
    s.inbox.settle(&s.db, a.device).await?;
    let _turn = s.db.read_turn().await;
    let state = blocking(move || {
        s.db.read(|db| repo::photo_state(db, &sha))
            .map_err(Failure::from)
    })
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
    Path(sha): Path<String>,
    Query(Offset { offset }): Query<Offset>,
    Unpacked(body): Unpacked<MAX_PHOTO_BYTES>,
) -> Result<Response, Failure> {
    s.inbox.settle(&s.db, a.device).await?;
    check_sha(&sha)?;
    let _turn = s.db.write_turn().await;
    let res = blocking(move || {
        s.db.tx(|db| -> Result<(i64, i64, bool), Failure> {
            // Lock the photo's row first (PostgreSQL runs READ COMMITTED): two requests with
            // the same chunk (a retry while the first is still being applied) must not both
            // read the same offset, or the later one sees only its own chunk after the earlier
            // completed the photo, and refuses a complete photo as a SHA-256 mismatch.
            db.exec(
                "UPDATE photos SET received = received WHERE sha256 = $1",
                args![&sha],
            )?;
            let (size, received, complete) = repo::photo_state(db, &sha)?
                .ok_or_else(|| Failure::NotFound("no record names this photo yet".into()))?;
            if complete {
                return Ok((size, received, true));
            }
            if offset != received {
                return Err(Failure::Conflict(format!(
                    "the upload continues at byte {received}, not {offset}"
                )));
            }
            if received + body.len() as i64 > size {
                return Err(Failure::invalid(
                    format!("the photo is {size} bytes; this chunk would end past it"),
                    Some("offset"),
                ));
            }
            db.exec(
                "INSERT INTO photo_chunks (sha256, pos, bytes) VALUES ($1, $2, $3)",
                args![&sha, offset, body.to_vec()],
            )?;
            let now_received = received + body.len() as i64;
            if now_received < size {
                db.exec(
                    "UPDATE photos SET received = $2 WHERE sha256 = $1",
                    args![&sha, now_received],
                )?;
                return Ok((size, now_received, false));
            }
            let chunks = db.query(
                "SELECT bytes FROM photo_chunks WHERE sha256 = $1 ORDER BY pos",
                args![&sha],
            )?;
            let mut all = Vec::with_capacity(size as usize);
            for c in chunks {
                all.extend(c[0].bytes()?);
            }
            db.exec("DELETE FROM photo_chunks WHERE sha256 = $1", args![&sha])?;
            if hex::encode(Sha256::digest(&all)) != sha {
                db.exec(
                    "UPDATE photos SET received = 0 WHERE sha256 = $1",
                    args![&sha],
                )?;
                return Err(Failure::invalid(
                    "the bytes do not match the photo's SHA-256; upload it again",
                    Some("body"),
                ));
            }
            db.exec(
                "UPDATE photos SET received = $2, complete = 1, data = $3 WHERE sha256 = $1",
                args![&sha, size, all],
            )?;
            repo::audit(
                db,
                Utc::now(),
                &a.user.username,
                Some(a.device),
                "PHOTO_UPLOADED",
                Some(EntityKind::Photo),
                None,
                Some(sha.clone()),
            )?;
            Ok((size, size, true))
        })
    })
    .await;
    match res {
        Ok((size, received, complete)) => {
            Ok((StatusCode::OK, upload_headers(size, received, complete)).into_response())
        }
        Err(e) => Err(e),
    }
}

/// A photo's bytes, for an account whose scope holds a record that names it.
async fn photo_get(
    State(s): State<AppState>,
    a: Auth,
    Path(sha): Path<String>,
) -> Result<Response, Failure> {
    check_sha(&sha)?;
    let _turn = s.db.read_turn().await;
    let found = blocking(move || {
        s.db.read(|db: &mut dyn Sql| repo::photo_in_scope(db, &a.user.scope(), &sha))
            .map_err(Failure::from)
    })
    .await?;
    let (bytes, mime) =
        found.ok_or_else(|| Failure::NotFound("no such photo in your scope".into()))?;
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
    Query(q): Query<RecordsQuery>,
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
    let _turn = s.db.read_turn().await;
    let list = blocking(move || {
        s.db.read(|db| sync::list_records(db, &a.user, kind, status, q.limit))
    })
    .await?;
    Ok(Json(list).into_response())
}

async fn record(
    State(s): State<AppState>,
    a: Auth,
    Path(id): Path<Uuid>,
) -> Result<Response, Failure> {
    let _turn = s.db.read_turn().await;
    let v = blocking(move || s.db.read(|db| sync::record_detail(db, &a.user, id))).await?;
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
    Path(id): Path<Uuid>,
    JsonBody(b): JsonBody<TransitionBody>,
) -> Result<Response, Failure> {
    let _turn = s.db.write_turn().await;
    let v = blocking(move || {
        s.db.tx(|db| sync::review_transition(db, &a.user, id, b.to, b.note, Utc::now()))
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
    Path(id): Path<Uuid>,
    JsonBody(b): JsonBody<ReplyBody>,
) -> Result<Response, Failure> {
    let _turn = s.db.write_turn().await;
    let r = blocking(move || {
        s.db.tx(|db| sync::reply(db, &a.user, id, &b.text, Utc::now()))
    })
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
    Path(id): Path<Uuid>,
    JsonBody(b): JsonBody<SettleBody>,
) -> Result<StatusCode, Failure> {
    let _turn = s.db.write_turn().await;
    blocking(move || {
        s.db.tx(|db| {
            sync::settle_conflict(db, &a.user, id, matches!(b.take, Take::Lost), Utc::now())
        })
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
