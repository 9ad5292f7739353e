//! What devices at the office talk to: the county's protocol (`/api/v1`, same header checks,
//! error JSON and body handling), answered from the mirror and the relay's held entries, and
//! the status page (`/`, `/status.json`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, head, post};
use axum::{Json, Router};
use chrono::Utc;
use maud::html;
use serde_json::Value;
use tower_http::CompressionLevel;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use uuid::Uuid;

use super::{Relay, mirror, store};
use crate::domain::codes::Coded;
use crate::domain::cst;
use crate::domain::model::{EntityKind, is_sha256_hex, sniff_mime};
use crate::server::api::photos::{check_sha, upload_headers};
use crate::server::api::push_pull::{self, PullQuery};
use crate::server::api::{ApiPath, ApiQuery, COMPRESS_ABOVE, JsonBody, ZSTD_LEVEL, api_edge, ping};
use crate::server::auth::Auth;
use crate::server::body::Unpacked;
use crate::server::error::Failure;
use crate::server::records::{self, Incoming};
use crate::server::{AppState, MAX_JSON_BYTES, MAX_PHOTO_BYTES, dashboard, repo};
use crate::wire::relay::FORWARDED_HEADER;
use crate::wire::relay::RelayStatus;
use crate::wire::{ApiError, LoginRequest, Op, PushRequest, PushResponse, RawFields};

/// How long a sign-in passed to the county waits for the mirror to bring its session here.
pub const SIGN_IN_MIRROR_WAIT: Duration = Duration::from_secs(10);

/// Said when a device signs in while the county does not answer.
pub const SIGN_IN_NEEDS_COUNTY: &str = "登录需要连接县里服务器，请在有网络时再试；已登录的设备可以继续在村办同步 \
    (signing in needs the county server: try again when it answers; devices already signed in go on syncing at the office)";
/// Said to a pull before the relay has mirrored anything.
pub const NOT_MIRRORED: &str = "中转站尚未与县里同步，请稍后再试 (the office relay has not synced with the county yet: try again later)";

/// Notes the session of every request answered successfully, so the county hears of its use
/// with the relay's next round and slides it as its own use would.
async fn note_session_use(
    axum::extract::State(relay): axum::extract::State<Arc<Relay>>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    let token = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(crate::server::auth::token_hash);
    let res = next.run(req).await;
    if let Some(hash) = token
        && res.status().is_success()
    {
        relay.note_use(hash);
    }
    res
}

/// The relay's routes: the device API under `/api/v1`, `/healthz`, and the status page.
pub fn router(relay: Arc<Relay>) -> Router {
    let api = Router::new()
        .route("/ping", get(ping))
        .route("/auth/login", post(login))
        .route("/me", get(me))
        .route("/sync/push", post(push))
        .route("/sync/pull", get(pull))
        .route("/sync/pull/stream", get(pull_stream))
        .route("/photos/{sha}", head(photo_head).put(photo_put))
        .fallback(|| async { Failure::NotFound("没有这个地址 (no such route)".into()) })
        .layer(DefaultBodyLimit::max(MAX_JSON_BYTES.max(MAX_PHOTO_BYTES)))
        .layer(middleware::from_fn_with_state(
            relay.clone(),
            note_session_use,
        ))
        .layer(middleware::from_fn(api_edge));
    let pages = Router::new()
        .route("/", get(status_page))
        .route("/status.json", get(status_json))
        .route("/assets/dashboard.css", get(css))
        .layer(middleware::map_response(dashboard::guard::security_headers));
    Router::new()
        .route("/healthz", get(healthz))
        .nest("/api/v1", api)
        .merge(pages)
        .layer(Extension(relay.clone()))
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
        .with_state(relay.app.clone())
}

/// A 503 in the API's error JSON, worded for the device's user.
fn unavailable(message: &str) -> Response {
    let body = ApiError {
        error: "unavailable".into(),
        message: message.to_owned(),
        field: None,
        expected: None,
    };
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

/// 200 while the relay's database answers, with the link at a glance.
async fn healthz(Extension(r): Extension<Arc<Relay>>) -> Response {
    match r.status().await {
        Ok(s) => Json(serde_json::json!({
            "status": "ok",
            "role": "relay",
            "backend": r.app.db.backend(),
            "uplink_up": s.uplink_up,
            "waiting_entries": s.waiting_entries,
        }))
        .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "unavailable", "role": "relay"})),
        )
            .into_response(),
    }
}

/// A device's sign-in, passed to the county as it came (a password is checked only there);
/// once it succeeds the relay mirrors at once, so the new session works here too. With the
/// county out of reach: 503, saying that devices signed in already sync on here.
async fn login(
    Extension(r): Extension<Arc<Relay>>,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Response {
    match r.link.pass_login(&req).await {
        Ok((status, retry_after, body)) => {
            if status == 200 && !r.round_now(SIGN_IN_MIRROR_WAIT).await {
                tracing::warn!(
                    "a device signed in, but the mirror did not bring its session in time"
                );
            }
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut res = (
                status,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response();
            if let Some(v) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            res
        }
        Err(e) => {
            tracing::info!(error = %e, "a sign-in while the county does not answer");
            unavailable(SIGN_IN_NEEDS_COUNTY)
        }
    }
}

/// The session's account, from the mirror.
async fn me(State(s): State<AppState>, a: Auth) -> Result<Response, Failure> {
    let ids: Vec<Uuid> = a.user.grids.iter().map(|g| g.0).collect();
    let names = s.read(move |db| Ok(repo::grid_names(db, &ids)?)).await?;
    Ok(Json(a.user.account(&names)).into_response())
}

/// A photo an entry names: its SHA-256 and size.
fn named_photo(e: &crate::wire::OutboxEntry<RawFields>) -> Option<(String, i64)> {
    if e.kind != EntityKind::Photo || e.op != Op::Append {
        return None;
    }
    let fields: Value = serde_json::from_str(e.fields.get()).ok()?;
    let sha = fields
        .get("sha256")?
        .as_str()
        .filter(|s| is_sha256_hex(s))?;
    let size = fields.get("size")?.as_i64()?;
    Some((sha.to_owned(), size))
}

/// A device's push, held at the office for the county: checked as the county checks its shape;
/// entries the county has (its watermark as mirrored, or as it acknowledged here) answered as
/// replayed, the others held (one already held is replayed too); committed before the answer.
/// A lane whose county answered a gap wants that entry first (409 `gap` with it, as the county
/// would say). Then the forwarding round is woken.
async fn push(
    State(s): State<AppState>,
    Extension(r): Extension<Arc<Relay>>,
    a: Auth,
    JsonBody(req): JsonBody<PushRequest<RawFields>>,
) -> Result<Json<PushResponse>, Failure> {
    records::check_push_shape(&Incoming {
        user: &a.user,
        device: a.device,
        req: &req,
        packed: None,
    })?;
    let now = Utc::now();
    let skew_ms = (now - req.device_now).num_milliseconds();
    let mut entries = Vec::with_capacity(req.entries.len());
    let mut photos = Vec::new();
    for e in &req.entries {
        let json = serde_json::to_string(e).map_err(|e| Failure::Internal(e.to_string()))?;
        entries.push((e.seq as i64, json, named_photo(e)));
    }
    let (device, lane, username) = (a.device, req.lane, a.user.username.clone());
    let total = entries.len() as u32;
    let res = s
        .write(move |db| {
            let st = store::lane(db, device, lane, &username)?;
            let (wm, top) = match st.gap_expected {
                Some(e) => (e - 1, e - 1),
                None => {
                    let wm = mirror::county_watermark(db, device, lane)?.max(st.county_acked);
                    (wm, store::held_top(db, device, lane, wm)?.unwrap_or(wm))
                }
            };
            let fresh: Vec<(i64, String)> = entries
                .into_iter()
                .filter(|(seq, _, _)| *seq > wm)
                .map(|(seq, json, photo)| {
                    if let Some(p) = photo {
                        photos.push(p);
                    }
                    (seq, json)
                })
                .collect();
            if let Some((first, _)) = fresh.first()
                && *first > top + 1
            {
                return Err(Failure::Gap {
                    expected: (top + 1) as u64,
                });
            }
            let new = store::hold(db, device, lane, &username, &fresh, skew_ms, now)?;
            if st.gap_expected.is_some() && !fresh.is_empty() {
                store::clear_gap(db, device, lane)?;
            }
            for (sha, size) in &photos {
                store::name_photo(db, sha, device, &username, *size, now)?;
            }
            store::seen(db, device, cst::today(now))?;
            let held = fresh.last().map_or(top, |(seq, _)| *seq).max(top);
            Ok(PushResponse {
                lane,
                acked_through: wm as u64,
                queued: new,
                replayed: total - new,
                held_through: Some(held as u64),
            })
        })
        .await?;
    if res.queued > 0 {
        tracing::info!(%device, lane = lane.code(), held = res.queued, "entries held for the county");
    }
    r.wake();
    Ok(Json(res))
}

/// 503 until the first mirror page is in: before it there is no county generation to answer
/// with, nor anything to pull.
async fn mirrored(s: &AppState, device: Uuid) -> Result<(), Response> {
    let now = Utc::now();
    let generation = s
        .write(move |db| {
            store::seen(db, device, cst::today(now))?;
            Ok(mirror::mirror_cursor(db)?.1)
        })
        .await
        .map_err(IntoResponse::into_response)?;
    match generation {
        Some(_) => Ok(()),
        None => Err(unavailable(NOT_MIRRORED)),
    }
}

/// The county's pull, over the mirror (the generation is the county's, as mirrored).
async fn pull(
    State(s): State<AppState>,
    a: Auth,
    q: Result<ApiQuery<PullQuery>, Failure>,
) -> Response {
    if let Err(r) = mirrored(&s, a.device).await {
        return r;
    }
    push_pull::pull(State(s), a, q).await.into_response()
}

/// The county's streamed pull, over the mirror.
async fn pull_stream(
    State(s): State<AppState>,
    headers: HeaderMap,
    a: Auth,
    q: Result<ApiQuery<PullQuery>, Failure>,
) -> Response {
    if let Err(r) = mirrored(&s, a.device).await {
        return r;
    }
    push_pull::pull_stream(State(s), headers, a, q)
        .await
        .into_response()
}

/// How much of a photo the office has from this device: 404 until an entry the device pushed
/// here names it.
async fn photo_head(
    State(s): State<AppState>,
    a: Auth,
    ApiPath(sha): ApiPath<String>,
) -> Result<Response, Failure> {
    check_sha(&sha)?;
    let device = a.device;
    match s
        .read(move |db| {
            let state = store::photo_state(db, &sha, device)?;
            let forwarded = state.is_some() && store::county_has_photo(db, &sha, device)?;
            Ok(state.map(|st| (st, forwarded)))
        })
        .await?
    {
        Some(((size, received, complete), forwarded)) => {
            let mut h = upload_headers(size, received, complete);
            if forwarded {
                // The county has it whole: the phone may count it uploaded.
                h.insert(FORWARDED_HEADER, HeaderValue::from(1));
            }
            Ok((StatusCode::OK, h).into_response())
        }
        None => Err(Failure::NotFound("no record names this photo yet".into())),
    }
}

#[derive(serde::Deserialize)]
struct Offset {
    offset: i64,
}

/// Appends a chunk of a photo at `?offset=N`, as the county does: the chunk that completes it
/// is checked against its SHA-256 and must be a JPEG, PNG or WebP (otherwise the upload starts
/// again from 0, committed with the refusal).
async fn photo_put(
    State(s): State<AppState>,
    a: Auth,
    ApiPath(sha): ApiPath<String>,
    ApiQuery(Offset { offset }): ApiQuery<Offset>,
    Unpacked(body): Unpacked<MAX_PHOTO_BYTES>,
) -> Result<Response, Failure> {
    check_sha(&sha)?;
    let device = a.device;
    let answer = s
        .write(move |db| {
            let Some((size, received, complete)) = store::photo_state(db, &sha, device)? else {
                return Ok(Err(Failure::NotFound(
                    "no record names this photo yet".into(),
                )));
            };
            if complete {
                return Ok(Ok((size, size, true)));
            }
            if offset != received {
                return Ok(Err(Failure::Conflict(format!(
                    "the upload continues at byte {received}, not {offset}"
                ))));
            }
            let now_received = received + body.len() as i64;
            if now_received > size {
                return Ok(Err(Failure::invalid(
                    format!("the photo is {size} bytes; this chunk would end past it"),
                    Some("offset"),
                )));
            }
            store::add_photo_chunk(db, &sha, device, offset, &body)?;
            if now_received < size {
                return Ok(Ok((size, now_received, false)));
            }
            let all = store::photo_bytes(db, &sha, device)?;
            let refusal = if hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&all)) != sha {
                Some("照片内容与其校验值不符，请重新上传 (the bytes do not match the photo's SHA-256; upload it again)")
            } else if sniff_mime(&all).is_none() {
                Some("这不是 JPEG、PNG 或 WebP 照片，服务器不接收 (not a JPEG, PNG or WebP photo)")
            } else {
                None
            };
            store::finish_photo(db, &sha, device, refusal.is_none())?;
            Ok(match refusal {
                Some(m) => Err(Failure::invalid(m, Some("body"))),
                None => Ok((size, size, true)),
            })
        })
        .await??;
    let (size, received, complete) = answer;
    Ok((StatusCode::OK, upload_headers(size, received, complete)).into_response())
}

/// The relay's status as JSON.
async fn status_json(Extension(r): Extension<Arc<Relay>>) -> Result<Json<RelayStatus>, Failure> {
    Ok(Json(r.status().await?))
}

/// The status page: plain HTML in Chinese, no script, no inline style (the dashboard's
/// stylesheet and security headers).
async fn status_page(Extension(r): Extension<Arc<Relay>>) -> Result<Response, Failure> {
    let s = r.status().await?;
    let when = |t: Option<chrono::DateTime<Utc>>| match t {
        Some(t) => cst::local(t).format("%Y-%m-%d %H:%M").to_string(),
        None => "从未".to_owned(),
    };
    let content = html! {
        main {
            h1 { "村办中转站" }
            table.relay-status {
                tr { th { "村" } td { (s.village) } }
                tr { th { "县里服务器" } td { (s.upstream) } }
                tr {
                    th { "与县里连接" }
                    td { @if s.uplink_up { "已连接" } @else { "未连接（手机照常在这里同步，连上后自动转交县里）" } }
                }
                tr { th { "待转交县里的记录" } td { (s.waiting_entries) " 条" } }
                tr { th { "待转交县里的照片" } td { (s.waiting_photos) " 张" } }
                tr { th { "上次与县里同步" } td { (when(s.last_upstream_sync)) } }
                tr { th { "今天来同步的手机" } td { (s.devices_seen_today) " 台" } }
                // The last problem only while it lasts: once the county answers again it is
                // history (`/status.json` keeps it).
                @if let (false, Some(e)) = (s.uplink_up, &s.last_error) {
                    tr { th { "最近的问题" } td { (e) } }
                }
            }
        }
    };
    Ok(dashboard::bare("村办中转站", content).into_response())
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("../../../assets/dashboard.css"),
    )
        .into_response()
}
