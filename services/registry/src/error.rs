use std::time::Duration;

use interlock_rpc::{
    FieldViolations, corrupt_data, status_with_reason, status_with_retry, storage_unavailable,
};
use tonic::{Code, Status};

/// Everything the registry can fail with; mapped to a gRPC status in one place below.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid request")]
    InvalidArgument(FieldViolations),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{message}")]
    NotFoundBecause { reason: &'static str, message: String },
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{message}")]
    Conflict { reason: &'static str, message: String },
    /// The resource changed since the caller read it (stale etag, or a concurrent writer).
    #[error("{0} was changed by someone else")]
    Aborted(String),
    #[error("{message}")]
    FailedPrecondition { reason: &'static str, message: String },
    #[error("{message}")]
    PermissionDenied { reason: &'static str, message: String },
    #[error("{message}")]
    Unauthenticated { reason: &'static str, message: String },
    /// Locked after too many failed logons; `retry_after` is what remains of the lock, which the
    /// status carries as `RetryInfo` so the client waits that long rather than failing again.
    #[error("the credential is locked for another {retry_after:?}")]
    CredentialLocked { retry_after: Duration },
    #[error("storage failure: {0}")]
    Storage(#[from] sqlx::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn precondition(reason: &'static str, message: impl Into<String>) -> Self {
        Error::FailedPrecondition { reason, message: message.into() }
    }

    pub fn denied(reason: &'static str, message: impl Into<String>) -> Self {
        Error::PermissionDenied { reason, message: message.into() }
    }

    /// A single field violation.
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        let mut violations = FieldViolations::new();
        violations.add(field, description);
        Error::InvalidArgument(violations)
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
            Error::NotFoundBecause { reason, message } => status_with_reason(Code::NotFound, reason, message),
            Error::AlreadyExists(what) => {
                status_with_reason(Code::AlreadyExists, "ALREADY_EXISTS", format!("{what} already exists"))
            }
            Error::Conflict { reason, message } => status_with_reason(Code::AlreadyExists, reason, message),
            Error::Aborted(what) => status_with_reason(
                Code::Aborted,
                "ETAG_MISMATCH",
                format!("{what} was changed since you read it; read it again and retry with the new etag"),
            ),
            Error::FailedPrecondition { reason, message } => {
                status_with_reason(Code::FailedPrecondition, reason, message)
            }
            Error::PermissionDenied { reason, message } => {
                status_with_reason(Code::PermissionDenied, reason, message)
            }
            Error::Unauthenticated { reason, message } => {
                status_with_reason(Code::Unauthenticated, reason, message)
            }
            Error::CredentialLocked { retry_after } => status_with_retry(
                Code::Unauthenticated,
                "CREDENTIAL_LOCKED",
                format!(
                    "too many failed attempts: the credential is locked for another {}s; retry then, or ask an administrator to unlock it",
                    retry_after.as_secs().max(1)
                ),
                retry_after,
            ),
            Error::Storage(error) => {
                storage_unavailable("registry", &error, "the registry's database is unavailable; retry")
            }
            Error::Corrupt(detail) => corrupt_data("registry", &detail),
        }
    }
}
