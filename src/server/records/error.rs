//! What the protocol's stages fail with: a [`Refusal`] (an entry or a county move refused, in
//! the words its device, the API's caller or the clerk is told), the database's error, or a
//! fault of the server's own. The HTTP answer is made from these at the edge
//! ([`crate::server::error::Failure`]).

use crate::domain::validate::ValidationErrors;
use crate::domain::{Lang, TransitionError};
use crate::server::db::DbError;

/// Why an entry, or a county move, is refused. Its text is what is stored in
/// `push_rejections` and answered by the API, so each case words itself as it always has.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// A value that is missing or wrong, with the field's path (`fields.grid_id`).
    #[error("{message}")]
    Invalid {
        message: String,
        field: Option<String>,
    },
    /// A status move its lifecycle does not allow, at the field that asked for it (answered
    /// as invalid input: Chinese first, then the English with the record and both codes).
    #[error("{} ({error})", error.text(Lang::Zh))]
    Lifecycle {
        error: TransitionError,
        field: String,
    },
    /// Not there, or not in the account's scope (the same answer for both).
    #[error("{0}")]
    NotFound(String),
    /// Not this account's to do.
    #[error("{0}")]
    Forbidden(String),
    /// At odds with what is stored: a record that already exists, a conflict already
    /// settled.
    #[error("{0}")]
    Conflict(String),
    /// The server could not store it (a fault of its own, or the database on its row's last
    /// try): the device is told only that; the details stay in the server's log.
    #[error("internal error")]
    Internal(String),
}

impl Refusal {
    pub fn invalid(message: impl Into<String>, field: Option<&str>) -> Refusal {
        Refusal::Invalid {
            message: message.into(),
            field: field.map(str::to_owned),
        }
    }

    /// Prefixes the field path (e.g. with `fields`), for refusals deep in an entry.
    pub fn at(self, prefix: &str) -> Refusal {
        match self {
            Refusal::Invalid { message, field } => Refusal::Invalid {
                message,
                field: Some(match field {
                    Some(f) => format!("{prefix}.{f}"),
                    None => prefix.to_owned(),
                }),
            },
            Refusal::Lifecycle { error, field } => Refusal::Lifecycle {
                error,
                field: format!("{prefix}.{field}"),
            },
            Refusal::NotFound(m) => Refusal::NotFound(format!("{prefix}: {m}")),
            Refusal::Forbidden(m) => Refusal::Forbidden(format!("{prefix}: {m}")),
            Refusal::Conflict(m) => Refusal::Conflict(format!("{prefix}: {m}")),
            other => other,
        }
    }

    /// The machine code an error answer has for it (`invalid`, `not_found`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Invalid { .. } | Refusal::Lifecycle { .. } => "invalid",
            Refusal::NotFound(_) => "not_found",
            Refusal::Forbidden(_) => "forbidden",
            Refusal::Conflict(_) => "conflict",
            Refusal::Internal(_) => "internal",
        }
    }

    /// The field path, for invalid input.
    pub fn field(&self) -> Option<&str> {
        match self {
            Refusal::Invalid { field, .. } => field.as_deref(),
            Refusal::Lifecycle { field, .. } => Some(field),
            _ => None,
        }
    }

    /// What a device is told when its pushed entry is refused for this (internals stay in
    /// the server's log).
    pub fn message(&self) -> String {
        match self {
            Refusal::Internal(_) => {
                "县里服务器无法保存这条记录，已通知管理员；请稍后再试或联系县综治中心 \
                 (the county server could not store this entry; its administrator has been told)"
                    .into()
            }
            other => other.to_string(),
        }
    }
}

impl From<ValidationErrors> for Refusal {
    /// Chinese first, naming each field as people do, then the English with the field paths
    /// (what a phone shows for a refused upload, and a clerk on the dashboard).
    fn from(e: ValidationErrors) -> Refusal {
        let field = e.errors.first().map(|f| f.field.clone());
        Refusal::Invalid {
            message: format!("{} ({e})", e.message(Lang::Zh)),
            field,
        }
    }
}

/// What a stage of the protocol fails with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Refused: the caller's (or the entry's) to mend.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The database failed; the whole transaction fails with it.
    #[error("the database is unavailable")]
    Db(#[from] DbError),
    /// A fault of the server's own (a bug, stored data it cannot read).
    #[error("internal error")]
    Internal(String),
}

impl Error {
    /// Prefixes a refusal's field path (see [`Refusal::at`]); other errors stay as they are.
    pub fn at(self, prefix: &str) -> Error {
        match self {
            Error::Refused(r) => Error::Refused(r.at(prefix)),
            other => other,
        }
    }

    /// An invalid-input refusal.
    pub fn invalid(message: impl Into<String>, field: Option<&str>) -> Error {
        Error::Refused(Refusal::invalid(message, field))
    }

    /// A refused status move, at `field`.
    pub fn lifecycle(error: TransitionError, field: &str) -> Error {
        Error::Refused(Refusal::Lifecycle {
            error,
            field: field.to_owned(),
        })
    }
}

impl From<ValidationErrors> for Error {
    fn from(e: ValidationErrors) -> Error {
        Error::Refused(e.into())
    }
}
