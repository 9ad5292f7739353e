//! The API's OpenAPI 3 description, served at `GET /api/v1/openapi.json`: made from the
//! handlers' `#[utoipa::path]` attributes (registered with their routes, see
//! [`super::api`]), the wire types' schemas, and here what every operation shares: the
//! protocol header, the bearer token, the security headers and the error answers, one for
//! each machine code a [`Failure`] or the API's edge can give.

use axum::http::StatusCode;
use serde_json::json;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, InfoBuilder, OpenApi, Ref, RefOr, Required, Tag,
};

use utoipa::{PartialSchema, ToSchema};

use super::error::Failure;
use super::{MAX_JSON_BYTES, MAX_PHOTO_BYTES};
use crate::wire::{
    ApiError, PROTOCOL_HEADER, PROTOCOL_VERSION, SESSION_ENDS_HEADER, SESSION_EXPIRES_HEADER,
};

/// Where the API lives; `/healthz` (the operators' check) is outside it.
pub const BASE: &str = "/api/v1";
/// The description's own path: read without a session or the protocol header.
pub const DOC_PATH: &str = "/api/v1/openapi.json";
/// The name of the bearer-token security scheme (as the handlers' `security(...)` name it).
pub const BEARER: &str = "bearer";
/// The protocol header as a parameter component: required, and (at sign-in) optional.
pub const PROTOCOL_PARAM: &str = "Protocol";
const PROTOCOL_PARAM_AT_SIGN_IN: &str = "ProtocolAtSignIn";

/// The description's introduction (`{MAX_JSON_BYTES}` and `{MAX_PHOTO_BYTES}` filled in).
const INTRO: &str = "The county server's sync and review API (the dashboard's HTML pages are \
not part of it).

**Protocol header.** Every request under `/api/v1` sends `x-gridwalk-protocol` with the \
protocol version it speaks; without it, or with another version, the answer is 426 \
`upgrade_required` naming the server's version (`expected`). Sign-in may leave it out (its \
answer says the version), and this description is read without it. Every answer under \
`/api/v1` carries the header with the server's version, and `X-Content-Type-Options: nosniff`.

**Sessions.** `POST /api/v1/auth/login` answers a token; send it as `Authorization: Bearer \
<token>`. Every answer to an authenticated request says when the session ends if unused \
(`x-gridwalk-session-expires`, slid out by each use) and at the latest \
(`x-gridwalk-session-ends`).

**Encodings.** A request body may be sent gzipped (`Content-Encoding: gzip`; the sync client \
gzips its pushes); a broken gzip body, or one over the limit once unpacked, is 422 `invalid`, \
any other encoding 415 `unsupported_encoding`. Answers of 1,024 bytes or more (but images) are \
compressed when the request's `Accept-Encoding` allows: zstd (level 6) or gzip. \
`GET /api/v1/sync/pull/stream` is one zstd stream flushed after each page when the request \
accepts zstd, and plain otherwise.

**Limits.** A JSON body is at most {MAX_JSON_BYTES} bytes, a photo chunk {MAX_PHOTO_BYTES} \
bytes, both as sent and once unpacked.

**Errors.** Every error under `/api/v1` is JSON (`ApiError`): a stable machine code \
(`error`), a message (Chinese first, English after in parentheses where a person reads it), \
and where it applies the field (`field`, a path such as `entries[3].fields.location.lat`) or \
the expected number (`expected`). Any path under `/api/v1` that is not listed here answers \
404 `not_found`, and a listed path asked with another method 405 `method_not_allowed`.";

/// Every error answer, by machine code: its component's name, and what it means.
fn error_meaning(code: &str) -> (&'static str, &'static str) {
    match code {
        "unauthorized" => (
            "Unauthorized",
            "Sign in first: the token is missing, unknown, revoked or expired (at sign-in: wrong \
             user name or password, or a disabled account).",
        ),
        "forbidden" => (
            "Forbidden",
            "The account may not do this (e.g. a worker reviewing, a device enrolled to another \
             account, a push for a device that is not the session's).",
        ),
        "not_found" => (
            "NotFound",
            "No such thing in the account's scope: a missing id and one out of scope are \
             answered alike.",
        ),
        "invalid" => (
            "Invalid",
            "Malformed or refused input: `field` names where (a JSON path into the body, a path \
             or query parameter's name, or `body`).",
        ),
        "gap" => (
            "Gap",
            "The entries do not continue from the device lane's watermark: send again from the \
             sequence number in `expected`.",
        ),
        "conflict" => (
            "Conflict",
            "The request does not fit the state it found (e.g. a photo upload at the wrong \
             offset, a conflict already settled).",
        ),
        "unsupported_encoding" => (
            "UnsupportedEncoding",
            "The body's Content-Encoding is neither gzip nor identity.",
        ),
        "rate_limited" => (
            "RateLimited",
            "Too many failed sign-ins: try again after `Retry-After` seconds.",
        ),
        "upgrade_required" => (
            "UpgradeRequired",
            "The request has no x-gridwalk-protocol header, or another version than the \
             server's (in `expected`): update the app.",
        ),
        "unavailable" => (
            "Unavailable",
            "The database is unavailable: try again later.",
        ),
        "internal" => (
            "Internal",
            "An internal error (the server's log says what).",
        ),
        "method_not_allowed" => (
            "MethodNotAllowed",
            "The path exists, but not with this method.",
        ),
        "too_large" => (
            "TooLarge",
            "The body is over the limit and was refused before it was read.",
        ),
        _ => ("Other", "Another error."),
    }
}

/// The component name of the error answer with this machine code.
pub fn error_response_name(code: &str) -> &'static str {
    error_meaning(code).0
}

/// The error answer with one machine code: its status, an `ApiError` body and an example.
fn error_response(status: StatusCode, code: &str) -> Response {
    let (_, meaning) = error_meaning(code);
    let message = Failure::one_of_each()
        .into_iter()
        .find(|f| f.machine_code() == code)
        .map(|f| f.to_string())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| meaning.to_owned());
    let mut example = json!({"error": code, "message": message});
    match code {
        "gap" => example["expected"] = json!(42),
        "upgrade_required" => example["expected"] = json!(PROTOCOL_VERSION),
        "invalid" => example["field"] = json!("entries[3].fields.location.lat"),
        _ => {}
    }
    let mut r = ResponseBuilder::new()
        .description(format!("{} `{code}`: {meaning}", status.as_u16()))
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ApiError")))
                .example(Some(example))
                .build(),
        );
    if code == "rate_limited" {
        r = r.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
                .description(Some("Seconds to wait before signing in again."))
                .build(),
        );
    }
    r.build()
}

/// A reusable error answer in an operation's `responses(...)`: `(status = 401, response =
/// Unauthorized)`. Each names the machine code it answers; the description's test checks
/// that every operation lists it under that code's status.
macro_rules! error_responses {
    ($($name:ident = $code:literal;)+) => {
        $(
            #[doc = concat!("The `", $code, "` error answer.")]
            pub struct $name;

            impl<'r> utoipa::ToResponse<'r> for $name {
                fn response() -> (&'r str, RefOr<Response>) {
                    let status = status_of($code);
                    (stringify!($name), error_response(status, $code).into())
                }
            }
        )+
    };
}

error_responses! {
    Unauthorized = "unauthorized";
    Forbidden = "forbidden";
    NotFound = "not_found";
    Invalid = "invalid";
    Gap = "gap";
    Conflict = "conflict";
    UnsupportedEncoding = "unsupported_encoding";
    RateLimited = "rate_limited";
    UpgradeRequired = "upgrade_required";
    Unavailable = "unavailable";
    Internal = "internal";
}

/// The status an error with this machine code answers with.
fn status_of(code: &str) -> StatusCode {
    Failure::every_code()
        .into_iter()
        .find(|(_, c)| *c == code)
        .map(|(s, _)| s)
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Bytes as they are (a photo, a chunk of one).
pub struct Binary;

impl utoipa::PartialSchema for Binary {
    fn schema() -> RefOr<utoipa::openapi::Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Binary,
            )))
            .into()
    }
}

impl utoipa::ToSchema for Binary {}

/// `GET /healthz`'s answer while the database answers.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // a description only: the handler writes the same JSON
pub struct Health {
    /// `ok`.
    status: String,
    /// `sqlite` or `postgres`.
    backend: String,
    inbox: HealthInbox,
}

/// The push inbox at a glance.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct HealthInbox {
    /// Pushes received and waiting to be applied.
    queued: i64,
    /// How long the oldest has waited, in seconds (0 when none waits).
    oldest_age_s: f64,
    /// Rows set aside after failing for a reason outside their entries (an administrator's
    /// to look at).
    quarantined: i64,
}

/// `GET /healthz`'s answer while the database does not answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct HealthDown {
    /// `unavailable`.
    status: String,
    backend: String,
}

/// `GET /api/v1/records/{id}`: a record with its history and its children.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // a description only: `records::record_detail` writes the same JSON
pub struct RecordDetail {
    kind: crate::domain::model::EntityKind,
    /// The record's version (the server sequence number of its last change).
    version: i64,
    /// The record as stored (its type's JSON), phones and ID numbers masked unless revealed.
    #[schema(value_type = Object)]
    record: serde_json::Value,
    /// Its status changes, oldest first.
    history: Vec<crate::domain::model::StatusChange>,
    /// Its children (replies, mediation sessions, reports, photos ...) by kind code, each
    /// list in version order, as stored.
    #[schema(value_type = Object)]
    children: serde_json::Value,
}

/// The description as the routes registered it, finished with what every operation shares.
pub fn finish(mut doc: OpenApi) -> OpenApi {
    doc.info = InfoBuilder::new()
        .title("gridwalk county server API")
        .version(format!("protocol {PROTOCOL_VERSION}"))
        .description(Some(
            INTRO
                .replace("{MAX_JSON_BYTES}", &MAX_JSON_BYTES.to_string())
                .replace("{MAX_PHOTO_BYTES}", &MAX_PHOTO_BYTES.to_string()),
        ))
        .build();
    doc.tags = Some(
        [
            ("meta", "Reachability, health and this description."),
            ("session", "Signing in and out, and who is signed in."),
            ("sync", "The device's push and pull."),
            (
                "photos",
                "Resumable photo uploads and downloads, by SHA-256.",
            ),
            (
                "records",
                "The county's reads and moves on records in scope.",
            ),
            (
                "relay",
                "A village-office relay (role RELAY): the mirror of its village, and the pushes \
                 its devices left at the office.",
            ),
        ]
        .into_iter()
        .map(|(name, what)| {
            let mut t = Tag::new(name);
            t.description = Some(what.to_owned());
            t
        })
        .collect(),
    );
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "The token `POST /api/v1/auth/login` answers (opaque, not a JWT).",
                ))
                .build(),
        ),
    );
    components
        .parameters
        .insert(PROTOCOL_PARAM.to_owned(), protocol_param(true).into());
    components.parameters.insert(
        PROTOCOL_PARAM_AT_SIGN_IN.to_owned(),
        protocol_param(false).into(),
    );
    // The error body, which the error answers name.
    let mut schemas = vec![(ApiError::name().into_owned(), ApiError::schema())];
    ApiError::schemas(&mut schemas);
    components.schemas.extend(schemas);
    for (status, code) in Failure::every_code() {
        let mut r = error_response(status, code);
        edge_headers(&mut r, false);
        components
            .responses
            .insert(error_response_name(code).to_owned(), r.into());
    }
    // Every machine code, listed on the error body.
    let codes = Failure::every_code();
    let listed: Vec<String> = codes
        .iter()
        .map(|(s, c)| format!("`{c}` ({})", s.as_u16()))
        .collect();
    if let Some(RefOr::T(utoipa::openapi::Schema::Object(error))) =
        components.schemas.get_mut("ApiError")
        && let Some(RefOr::T(utoipa::openapi::Schema::Object(code))) =
            error.properties.get_mut("error")
    {
        code.enum_values = Some(codes.iter().map(|(_, c)| json!(c)).collect());
        code.description = Some(format!(
            "A stable machine code, with the status it answers with: {}.",
            listed.join(", ")
        ));
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        if !path.starts_with(BASE) {
            continue;
        }
        let login = path.ends_with("/auth/login");
        let open = path == DOC_PATH;
        for op in operations(item) {
            let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
            if !open {
                protocol_header(op, !login);
            }
            // A relay account is refused every route but its own, `/me` and sign-out.
            if secured && !super::auth::relay_may(path) {
                op.responses
                    .responses
                    .entry("403".to_owned())
                    .or_insert_with(|| {
                        RefOr::Ref(Ref::from_response_name(error_response_name("forbidden")))
                    });
            }
            for (status, response) in op.responses.responses.iter_mut() {
                let RefOr::T(r) = response else { continue };
                edge_headers(r, secured && status.starts_with('2'));
            }
        }
    }
    doc
}

/// The operations of a path item, whichever their methods.
fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.options.as_mut(),
        item.head.as_mut(),
        item.patch.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// The protocol header as the API's edge requires it, and its 426.
fn protocol_header(op: &mut Operation, required: bool) {
    let name = if required {
        PROTOCOL_PARAM
    } else {
        PROTOCOL_PARAM_AT_SIGN_IN
    };
    op.parameters.get_or_insert_with(Vec::new).insert(
        0,
        RefOr::Ref(Ref::new(format!("#/components/parameters/{name}"))),
    );
    op.responses
        .responses
        .entry(StatusCode::UPGRADE_REQUIRED.as_u16().to_string())
        .or_insert_with(|| Ref::from_response_name(error_response_name("upgrade_required")).into());
}

/// The protocol header's parameter.
fn protocol_param(required: bool) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(PROTOCOL_HEADER)
        .parameter_in(ParameterIn::Header)
        .required(if required {
            Required::True
        } else {
            Required::False
        })
        .description(Some(if required {
            format!(
                "The protocol version the client speaks: {PROTOCOL_VERSION}. Without it, or \
                 with another, the answer is 426 `upgrade_required`."
            )
        } else {
            format!(
                "The protocol version the client speaks: {PROTOCOL_VERSION}. May be left out \
                 here (the answer says the server's version); another version is 426 \
                 `upgrade_required`."
            )
        }))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .enum_values(Some([PROTOCOL_VERSION])),
        ))
        .build()
}

/// The headers the API's edge puts on every answer, and on an authenticated one the
/// session's times.
fn edge_headers(r: &mut Response, session: bool) {
    let text = || ObjectBuilder::new().schema_type(Type::String);
    r.headers.insert(
        PROTOCOL_HEADER.to_owned(),
        HeaderBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
            .description(Some("The protocol version the server speaks."))
            .build()
            .into(),
    );
    r.headers.insert(
        "X-Content-Type-Options".to_owned(),
        HeaderBuilder::new()
            .schema(Some(text().enum_values(Some(["nosniff"]))))
            .build()
            .into(),
    );
    if session {
        for (name, what) in [
            (
                SESSION_EXPIRES_HEADER,
                "When the session ends if the device does not use it again (RFC 3339, UTC): \
                 each use slides it out.",
            ),
            (
                SESSION_ENDS_HEADER,
                "When the session ends however often it is used (RFC 3339, UTC): sign in \
                 again before then.",
            ),
        ] {
            r.headers.insert(
                name.to_owned(),
                HeaderBuilder::new()
                    .schema(Some(text().format(Some(
                        utoipa::openapi::SchemaFormat::KnownFormat(
                            utoipa::openapi::KnownFormat::DateTime,
                        ),
                    ))))
                    .description(Some(what))
                    .build()
                    .into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_machine_code_has_an_error_answer_of_its_own() {
        let codes = Failure::every_code();
        let names: std::collections::BTreeSet<_> =
            codes.iter().map(|(_, c)| error_response_name(c)).collect();
        assert_eq!(names.len(), codes.len(), "{names:?}");
        assert!(!names.contains("Other"), "{names:?}");
    }
}
