//! The one error type of the API: each case maps to a status code and a JSON body
//! ([`ApiError`]) that says what was wrong and where, never internals.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::db::DbError;
use super::records::{self, Refusal};
use crate::wire::ApiError;

/// Machine codes of errors made outside the handlers (axum's own, turned into the JSON error
/// at the API's edge): a path that exists with another method, and a body refused before a
/// handler read it. The edge also answers `not_found`, `invalid` and `internal`, as the
/// [`Failure`]s of those names do.
pub const EDGE_CODES: [(StatusCode, &str); 2] = [
    (StatusCode::METHOD_NOT_ALLOWED, METHOD_NOT_ALLOWED),
    (StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE),
];
/// See [`EDGE_CODES`].
pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
/// See [`EDGE_CODES`].
pub const TOO_LARGE: &str = "too_large";

/// Every case answers with its status and machine code (`code`, listed for the API's
/// description by [`Failure::one_of_each`]).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("sign in first: the token is missing, unknown, revoked or expired")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Invalid {
        message: String,
        field: Option<String>,
    },
    #[error("entries must continue from sequence number {expected}")]
    Gap { expected: u64 },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    UnsupportedEncoding(String),
    #[error("too many failed sign-ins; try again in {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error(
        "{}",
        if client.is_empty() {
            format!("请求缺少协议版本头，请更新应用 (send the x-gridwalk-protocol header: this server speaks protocol {server})")
        } else {
            format!("应用版本与县里服务器不一致，请更新应用 (this server speaks protocol {server}; the app speaks {client}: update the app)")
        }
    )]
    Upgrade { server: u32, client: String },
    #[error("the database is unavailable")]
    Db(#[from] DbError),
    #[error("internal error")]
    Internal(String),
}

impl Failure {
    pub fn invalid(message: impl Into<String>, field: Option<&str>) -> Failure {
        Failure::Invalid {
            message: message.into(),
            field: field.map(str::to_owned),
        }
    }

    /// The HTTP status it answers with.
    pub fn status(&self) -> StatusCode {
        self.code().0
    }

    /// The machine code of its answer (`error` in the JSON body).
    pub fn machine_code(&self) -> &'static str {
        self.code().1
    }

    /// One failure of each kind, for the API's description (its list of machine codes).
    pub fn one_of_each() -> Vec<Failure> {
        let all = vec![
            Failure::Unauthorized,
            Failure::Forbidden(String::new()),
            Failure::NotFound(String::new()),
            Failure::invalid("", None),
            Failure::Gap { expected: 1 },
            Failure::Conflict(String::new()),
            Failure::UnsupportedEncoding(String::new()),
            Failure::RateLimited { retry_after: 1 },
            Failure::Upgrade {
                server: crate::wire::PROTOCOL_VERSION,
                client: String::new(),
            },
            Failure::Db(DbError::Type(String::new())),
            Failure::Internal(String::new()),
        ];
        // No catch-all: a new kind of failure stops the build here until it is listed above.
        for f in &all {
            match f {
                Failure::Unauthorized
                | Failure::Forbidden(_)
                | Failure::NotFound(_)
                | Failure::Invalid { .. }
                | Failure::Gap { .. }
                | Failure::Conflict(_)
                | Failure::UnsupportedEncoding(_)
                | Failure::RateLimited { .. }
                | Failure::Upgrade { .. }
                | Failure::Db(_)
                | Failure::Internal(_) => {}
            }
        }
        all
    }

    /// Every machine code an API error can carry, with its status: each [`Failure`]'s, then
    /// those the API's edge gives errors no handler made ([`EDGE_CODES`]).
    pub fn every_code() -> Vec<(StatusCode, &'static str)> {
        let mut codes: Vec<_> = Failure::one_of_each().iter().map(Failure::code).collect();
        codes.extend(EDGE_CODES);
        codes
    }

    fn code(&self) -> (StatusCode, &'static str) {
        match self {
            Failure::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Failure::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Failure::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Failure::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            Failure::Gap { .. } => (StatusCode::CONFLICT, "gap"),
            Failure::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Failure::UnsupportedEncoding(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_encoding")
            }
            Failure::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Failure::Upgrade { .. } => (StatusCode::UPGRADE_REQUIRED, "upgrade_required"),
            Failure::Db(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Failure::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<Refusal> for Failure {
    fn from(r: Refusal) -> Failure {
        match r {
            Refusal::Invalid { message, field } => Failure::Invalid { message, field },
            r @ Refusal::Lifecycle { .. } => Failure::Invalid {
                message: r.to_string(),
                field: r.field().map(str::to_owned),
            },
            Refusal::NotFound(m) => Failure::NotFound(m),
            Refusal::Forbidden(m) => Failure::Forbidden(m),
            Refusal::Conflict(m) => Failure::Conflict(m),
            Refusal::Internal(m) => Failure::Internal(m),
        }
    }
}

impl From<records::Error> for Failure {
    fn from(e: records::Error) -> Failure {
        match e {
            records::Error::Refused(r) => r.into(),
            records::Error::Db(e) => Failure::Db(e),
            records::Error::Internal(m) => Failure::Internal(m),
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let (status, code) = self.code();
        match &self {
            Failure::Db(e) => tracing::error!(error = %e, "database error"),
            Failure::Internal(e) => tracing::error!(error = %e, "internal error"),
            _ => {}
        }
        let body = ApiError {
            error: code.to_owned(),
            message: self.to_string(),
            field: match &self {
                Failure::Invalid { field, .. } => field.clone(),
                _ => None,
            },
            expected: match &self {
                Failure::Gap { expected } => Some(*expected),
                Failure::Upgrade { server, .. } => Some(u64::from(*server)),
                _ => None,
            },
        };
        let mut res = (status, axum::Json(body)).into_response();
        if let Failure::RateLimited { retry_after } = self
            && let Ok(v) = HeaderValue::from_str(&retry_after.to_string())
        {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        res
    }
}
