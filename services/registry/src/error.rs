use interlock_rpc::{FieldViolations, status_with_reason};
use tonic::{Code, Status};

/// Everything the registry can fail with; mapped to a gRPC status in one place below.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid request")]
    InvalidArgument(FieldViolations),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{message}")]
    FailedPrecondition { reason: &'static str, message: String },
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{message}")]
    Unauthenticated { reason: &'static str, message: String },
    #[error("storage failure: {0}")]
    Storage(#[from] sqlx::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

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
            Error::AlreadyExists(what) => {
                status_with_reason(Code::AlreadyExists, "ALREADY_EXISTS", format!("{what} already exists"))
            }
            Error::FailedPrecondition { reason, message } => {
                status_with_reason(Code::FailedPrecondition, reason, message)
            }
            Error::PermissionDenied(message) => {
                status_with_reason(Code::PermissionDenied, "PERMISSION_DENIED", message)
            }
            Error::Unauthenticated { reason, message } => {
                status_with_reason(Code::Unauthenticated, reason, message)
            }
            Error::Storage(error) => {
                // The database's own message may name tables or values: log it, don't send it.
                tracing::error!(%error, "registry storage failure");
                status_with_reason(
                    Code::Unavailable,
                    "STORAGE_UNAVAILABLE",
                    "the registry's database is unavailable; retry",
                )
            }
            Error::Corrupt(detail) => {
                tracing::error!(%detail, "corrupt registry data");
                status_with_reason(Code::Internal, "CORRUPT_DATA", "the registry holds data it cannot read")
            }
        }
    }
}
