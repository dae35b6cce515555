use interlock_rpc::{FieldViolations, corrupt_data, status_with_reason, storage_unavailable};
use tonic::{Code, Status};

/// Everything the deconfliction service can fail with; mapped to a gRPC status in one place.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid request")]
    InvalidArgument(FieldViolations),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{message}")]
    FailedPrecondition { reason: &'static str, message: String },
    #[error("{message}")]
    PermissionDenied { reason: &'static str, message: String },
    /// A stale etag, or another writer changed the resource first.
    #[error("{0} was changed by someone else")]
    Aborted(String),
    /// The match index moved on while a registration was being decided; decide again.
    #[error("the match index changed during the registration")]
    Stale,
    #[error("storage failure: {0}")]
    Storage(#[from] sqlx::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The group commit a request's write was part of failed (shared by all its requests).
    #[error("{0}")]
    GroupCommit(std::sync::Arc<Error>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        let mut violations = FieldViolations::new();
        violations.add(field, description);
        Error::InvalidArgument(violations)
    }

    pub fn precondition(reason: &'static str, message: impl Into<String>) -> Self {
        Error::FailedPrecondition { reason, message: message.into() }
    }
}

impl From<FieldViolations> for Error {
    fn from(violations: FieldViolations) -> Self {
        Error::InvalidArgument(violations)
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument(violations) => violations.into_status(),
            Error::NotFound(what) => {
                status_with_reason(Code::NotFound, "NOT_FOUND", format!("{what} not found"))
            }
            Error::FailedPrecondition { reason, message } => {
                status_with_reason(Code::FailedPrecondition, reason, message)
            }
            Error::PermissionDenied { reason, message } => {
                status_with_reason(Code::PermissionDenied, reason, message)
            }
            Error::Aborted(what) => status_with_reason(
                Code::Aborted,
                "ETAG_MISMATCH",
                format!("{what} was changed since you read it; read it again and retry"),
            ),
            Error::Stale => status_with_reason(
                Code::Aborted,
                "CONCURRENT_REGISTRATION",
                "retry: another registration landed first",
            ),
            Error::Storage(error) => storage_unavailable(
                "deconfliction service",
                &error,
                "the deconfliction database is unavailable; retry",
            ),
            Error::GroupCommit(error) => {
                tracing::error!(%error, "deconfliction group commit failed");
                status_with_reason(
                    Code::Unavailable,
                    "STORAGE_UNAVAILABLE",
                    "the deconfliction database is unavailable; retry",
                )
            }
            Error::Corrupt(detail) => corrupt_data("deconfliction service", &detail),
        }
    }
}
