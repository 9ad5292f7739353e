//! The county's side of a village-office relay (role RELAY): the mirror of its village, and
//! the pushes and photos devices left at the office, forwarded as theirs. A relay account may use only
//! these, `/me` and sign-out ([`auth::relay_may`]); no other account may use these.

use crate::wire::relay::{MirrorPage, RelayPushRequest};

use super::photos;
use super::*;

/// A relay account's request, and its village; 403 for every other role, before the body
/// is read.
pub(super) struct Relay {
    a: Auth,
    village: String,
}

impl axum::extract::FromRequestParts<AppState> for Relay {
    type Rejection = Failure;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let a = Auth::from_request_parts(parts, state).await?;
        if a.user.role != crate::wire::Role::Relay {
            return Err(Failure::Forbidden(
                "只有村办中转站账号可以使用中转站接口 (only a village-office relay account may use the relay routes)"
                    .into(),
            ));
        }
        let village = a.user.scope_code.clone();
        Ok(Relay { a, village })
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct MirrorQuery {
    /// The cursor the last page answered (0 at first, and after the county's generation
    /// changed): rows changed after it come.
    #[serde(default)]
    #[param(minimum = 0)]
    cursor: i64,
    /// Entities in the page, at most (at most 100,000).
    #[serde(default = "default_mirror_limit")]
    #[param(default = 20000, minimum = 1, maximum = 100000)]
    limit: usize,
    /// The relay's own address (`http://` or `https://`), which the county gives the
    /// village's workers and secretary in their account answers (`relay_url`).
    #[serde(default)]
    advertise: Option<String>,
    /// Sessions used at the office since the relay last said: their token hashes (64 hex
    /// digits each, comma-separated, at most 1,000). Each live one of the village's accounts
    /// slides as a use at the county would.
    #[serde(default)]
    used: Option<String>,
}

/// Most token hashes one mirror request may report as used.
const MAX_USED: usize = 1000;

fn parse_used(used: Option<&str>) -> Result<Vec<String>, Failure> {
    let Some(used) = used.filter(|u| !u.is_empty()) else {
        return Ok(Vec::new());
    };
    let hashes: Vec<String> = used.split(',').map(str::to_owned).collect();
    if hashes.len() > MAX_USED
        || hashes
            .iter()
            .any(|h| h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(Failure::invalid(
            format!(
                "used must be at most {MAX_USED} session token hashes (64 hex digits), comma-separated"
            ),
            Some("used"),
        ));
    }
    Ok(hashes)
}

fn default_mirror_limit() -> usize {
    repo::MIRROR_PAGE
}

/// An advertised relay address: an absolute `http` or `https` URL with a host, no longer
/// than 300 characters.
fn check_advertise(url: &str) -> Result<String, Failure> {
    let refuse = || {
        Failure::invalid(
            "中转站地址须为 http:// 或 https:// 开头的完整地址，如 http://192.168.1.20:8080 \
             (advertise must be an absolute http or https URL)",
            Some("advertise"),
        )
    };
    let url = url.trim();
    if url.len() > 300 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refuse());
    }
    let uri: axum::http::Uri = url.parse().map_err(|_| refuse())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let host_ok = uri.host().is_some_and(|h| !h.is_empty());
    if !scheme_ok || !host_ok {
        return Err(refuse());
    }
    Ok(url.trim_end_matches('/').to_owned())
}

#[utoipa::path(
    get,
    path = "/relay/mirror",
    tag = "relay",
    summary = "A page of the relay's village, to mirror",
    description = "Role RELAY only (403 otherwise). The relay's village's entities changed \
        after `cursor`, in version order, at most `limit`, every column as stored; the whole \
        status history of each record among them; the refused entries of the village's accounts \
        with a sequence number after `cursor` up to the page's; and the village's accounts (its \
        secretary and the workers whose grids are all in it, no password hashes), all their \
        sessions (revoked ones too), devices and watermarks, and the settings a pull answers \
        from. `cursor` answered means what a pull's does (on the last page it is past every \
        refusal and the settings' change); ask again from it while `more`. `generation` is the \
        county database's: under another one than the mirror's, mirror again from 0. \
        `advertise` stores the relay's address for the village's accounts (`relay_url`). \
        Compressed with zstd or gzip as `Accept-Encoding` allows.",
    params(MirrorQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page; ask again from its `cursor` while `more`.", body = MirrorPage),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn relay_mirror(
    State(s): State<AppState>,
    Relay { a, village }: Relay,
    q: Result<ApiQuery<MirrorQuery>, Failure>,
) -> Result<Response, Failure> {
    let ApiQuery(q) = q?;
    if q.cursor < 0 {
        return Err(Failure::invalid("cursor must be 0 or more", Some("cursor")));
    }
    if q.limit == 0 || q.limit > repo::MAX_MIRROR_PAGE {
        return Err(Failure::invalid(
            format!("limit must be 1 to {}", repo::MAX_MIRROR_PAGE),
            Some("limit"),
        ));
    }
    let advertise = q.advertise.as_deref().map(check_advertise).transpose()?;
    let used = parse_used(q.used.as_deref())?;
    let generation = s.generation().await?;
    if !used.is_empty() {
        let v = village.clone();
        s.write(move |db| Ok(repo::slide_used_sessions(db, &v, &used, Utc::now())?))
            .await?;
    }
    if let Some(url) = advertise {
        let v = village.clone();
        let known = s
            .read({
                let v = v.clone();
                move |db| Ok(repo::get_setting(db, &repo::relay_url_key(&v))?)
            })
            .await?;
        if known.as_deref() != Some(url.as_str()) {
            s.write(move |db| {
                repo::set_relay_url(db, &v, &url)?;
                repo::audit(
                    db,
                    Utc::now(),
                    &a.user.username,
                    Some(a.device),
                    "RELAY_URL",
                    None,
                    None,
                    Some(url),
                )?;
                Ok(())
            })
            .await?;
        }
    }
    let header = HeaderValue::from_str(&generation)
        .map_err(|e| Failure::Internal(format!("generation setting: {e}")))?;
    let _bulk = s.db.bulk_turn().await;
    let page = s
        .read(move |db| {
            Ok(repo::read_page(
                db, &village, q.cursor, q.limit, generation,
            )?)
        })
        .await?;
    Ok(([(GENERATION_HEADER, header)], Json(page)).into_response())
}

#[utoipa::path(
    post,
    path = "/relay/push",
    tag = "relay",
    summary = "Forward a device's push left at the office",
    description = "Role RELAY only (403 otherwise). One lane's entries as a device of the \
        relay's village pushed them at the office (its id, lane and sequence numbers, the \
        fields as they came; `device_now` the device's clock as the relay measured it), \
        received exactly as that device's own push to `/sync/push`: the same answer, 409 `gap` \
        with the number expected, 422; refused entries go to the device's account with its next \
        pull. A device not enrolled to an account of the relay's village is not found (404). \
        The body may be gzipped.",
    request_body(content = RelayPushRequest, description = "One lane's entries of one device, \
        in order; `Content-Encoding: gzip` accepted."),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Received; applied just after.", body = PushResponse),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Gap),
        (status = 415, response = UnsupportedEncoding),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn relay_push(
    State(s): State<AppState>,
    Relay { village, .. }: Relay,
    JsonBody(req): JsonBody<RelayPushRequest>,
) -> Result<Json<PushResponse>, Failure> {
    let device = req.device_id;
    let user = village_device(&s, &village, device).await?;
    // Exactly the device's own push: its watermarks decide, its account applies.
    let res = s.inbox.receive(&s.db, user, device, req).await?;
    Ok(Json(res))
}

/// The account `device` is enrolled to, if the relay's `village` mirrors it (404 otherwise)
/// and it is not disabled (403).
async fn village_device(s: &AppState, village: &str, device: Uuid) -> Result<repo::User, Failure> {
    let owner = s
        .read(move |db| {
            let Some(owner) = repo::device_owner(db, device)? else {
                return Ok(None);
            };
            Ok(repo::user_by_name(db, &owner)?.map(|(u, _)| u))
        })
        .await?;
    let Some(user) = owner.filter(|u| repo::mirrored_by(u, village)) else {
        return Err(Failure::NotFound(format!(
            "设备 {device} 不是本村账号登记的设备 (no device {device} of this village's accounts)"
        )));
    };
    if user.disabled {
        return Err(Failure::Forbidden(format!(
            "账号 {} 已停用，这台设备的记录不能再上报 (the account of device {device} is disabled)",
            user.username
        )));
    }
    Ok(user)
}

#[utoipa::path(
    head,
    path = "/relay/photos/{device}/{sha}",
    tag = "relay",
    summary = "How much of a device's photo the county has, for the relay",
    description = "Role RELAY only (403 otherwise). Answers exactly what the device's own \
        `HEAD /photos/{sha}` would answer it (the device's queued pushes are applied first): 404 \
        until an entry the device pushed names the photo. A device not enrolled to an account \
        of the relay's village is not found (404).",
    params(
        ("device" = Uuid, Path, description = "The id of the device whose entry named the photo."),
        ("sha" = String, Path, description = "The photo's SHA-256: 64 lower-case hex digits.", pattern = "^[0-9a-f]{64}$"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Where the device's upload continues.", headers(
            ("Upload-Offset" = i64, description = "Bytes the server has: where an upload continues."),
            ("Upload-Length" = i64, description = "The photo's size in bytes, as the record named it."),
            ("Upload-Complete" = i64, description = "1 once the whole photo is stored and checked, else 0."),
        )),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn relay_photo_head(
    State(s): State<AppState>,
    Relay { village, .. }: Relay,
    ApiPath((device, sha)): ApiPath<(Uuid, String)>,
) -> Result<Response, Failure> {
    let user = village_device(&s, &village, device).await?;
    photos::head_for(&s, user.username, device, sha).await
}

#[utoipa::path(
    put,
    path = "/relay/photos/{device}/{sha}",
    tag = "relay",
    summary = "Forward a chunk of a photo a device left at the office",
    description = "Role RELAY only (403 otherwise). Appends the body's bytes at `offset` exactly \
        as the device's own `PUT /photos/{sha}` would: 409 `conflict` unless it is where the \
        upload continues; the chunk that completes the photo is checked against its SHA-256 and \
        must be a JPEG, PNG or WebP (422 otherwise, and the upload starts again from 0); a \
        complete photo answers as complete. 404 until an entry the device pushed names the \
        photo, and for a device not enrolled to an account of the relay's village. The body \
        may be gzipped.",
    params(
        ("device" = Uuid, Path, description = "The id of the device whose entry named the photo."),
        ("sha" = String, Path, description = "The photo's SHA-256: 64 lower-case hex digits.", pattern = "^[0-9a-f]{64}$"),
        photos::Offset,
    ),
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
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 415, response = UnsupportedEncoding),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn relay_photo_put(
    State(s): State<AppState>,
    Relay { village, .. }: Relay,
    ApiPath((device, sha)): ApiPath<(Uuid, String)>,
    ApiQuery(photos::Offset { offset }): ApiQuery<photos::Offset>,
    Unpacked(body): Unpacked<MAX_PHOTO_BYTES>,
) -> Result<Response, Failure> {
    let user = village_device(&s, &village, device).await?;
    photos::put_for(s, user.username, device, sha, offset, body).await
}
