//! Push and pull: receiving a lane's entries into the push inbox, and the pages of changes
//! after a cursor (one page, or a stream of them).

use super::*;

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
pub(super) async fn push(
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
pub(crate) struct PullQuery {
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
        (cursor 0) and on the last page of a pull from before the county last changed it, the \
        visit cadence. Entities the device holds as of `base` may come as partial \
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
pub(crate) async fn pull(
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
pub(super) async fn generation_header(s: &AppState) -> Result<HeaderValue, Failure> {
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
pub(crate) async fn pull_stream(
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
pub(super) async fn stream_pages(
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
