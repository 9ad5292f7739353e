//! The county's records through the API: lists and one record (with an audited reveal),
//! a reviewer's status move, a reply, settling a conflict.

use super::*;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct RecordsQuery {
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
pub(super) async fn records(
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
pub(super) struct RevealQuery {
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
pub(super) async fn record(
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
        s.write(move |db| {
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
        .await?
    } else {
        s.read(move |db| Ok(records::record_detail(db, &a.user, id, false)?))
            .await?
    };
    Ok(Json(v).into_response())
}

/// A reviewer's lifecycle move.
#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct TransitionBody {
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
pub(super) async fn transition(
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
pub(super) struct ReplyBody {
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
pub(super) async fn reply(
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
pub(super) enum Take {
    Kept,
    Lost,
}

/// How to settle a conflict.
#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct SettleBody {
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
pub(super) async fn settle(
    State(s): State<AppState>,
    a: Auth,
    ApiPath(id): ApiPath<Uuid>,
    JsonBody(b): JsonBody<SettleBody>,
) -> Result<StatusCode, Failure> {
    s.write(move |db| {
        let take_lost = matches!(b.take, Take::Lost);
        Ok(records::settle_conflict(
            db,
            &a.user,
            id,
            take_lost,
            Utc::now(),
        )?)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
