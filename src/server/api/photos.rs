//! Photos: how much of one the server has, appending its bytes resumably, and reading it
//! back through a record that names it.

use super::*;

/// A photo's name in a path: its SHA-256, 64 lower-case hex digits (422 naming `sha`).
pub(crate) fn check_sha(sha: &str) -> Result<(), Failure> {
    if is_sha256_hex(sha) {
        Ok(())
    } else {
        Err(Failure::invalid(
            "a photo is named by its SHA-256: 64 lower-case hex digits",
            Some("sha"),
        ))
    }
}

/// The resumable upload's headers: where it continues, the size, whether complete.
pub(crate) fn upload_headers(size: i64, received: i64, complete: bool) -> HeaderMap {
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
pub(super) async fn photo_head(
    State(s): State<AppState>,
    a: Auth,
    ApiPath(sha): ApiPath<String>,
) -> Result<Response, Failure> {
    head_for(&s, a.user.username, a.device, sha).await
}

/// How much of photo `sha` the server has, as the device `device` of `username` asks (its own
/// HEAD, or a village-office relay's for it).
pub(super) async fn head_for(
    s: &AppState,
    username: String,
    device: Uuid,
    sha: String,
) -> Result<Response, Failure> {
    check_sha(&sha)?;
    // A photo is known once a record names it: the device's own pushes first.
    s.inbox.settle(&s.db, device).await?;
    let state = s
        .read(move |db| Ok(repo::photo_state_for(db, &sha, &username, device)?))
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
pub(super) struct Offset {
    /// Where this chunk starts: the `Upload-Offset` the server answered.
    #[param(minimum = 0)]
    pub(super) offset: i64,
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
pub(super) async fn photo_put(
    State(s): State<AppState>,
    a: Auth,
    ApiPath(sha): ApiPath<String>,
    ApiQuery(Offset { offset }): ApiQuery<Offset>,
    Unpacked(body): Unpacked<MAX_PHOTO_BYTES>,
) -> Result<Response, Failure> {
    put_for(s, a.user.username, a.device, sha, offset, body).await
}

/// Appends a chunk of photo `sha` at `offset` as the device `device` of `username` sends it
/// (its own PUT, or a village-office relay's for it).
pub(super) async fn put_for(
    s: AppState,
    username: String,
    device: Uuid,
    sha: String,
    offset: i64,
    body: Bytes,
) -> Result<Response, Failure> {
    s.inbox.settle(&s.db, device).await?;
    check_sha(&sha)?;
    let _turn = s.db.write_turn().await;
    // A refusal is answered after its transaction commits: bytes that were not the photo
    // leave its upload at byte 0 for the next try.
    let up = blocking(move || {
        s.db.tx(|db| {
            Ok::<_, Failure>(records::put_photo_chunk(
                db,
                &username,
                device,
                &sha,
                offset,
                &body,
                Utc::now(),
            )?)
        })
    })
    .await?
    .map_err(records::Error::Refused)?;
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
pub(super) async fn photo_get(
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
