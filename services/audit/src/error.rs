use std::collections::HashMap;

use interlock_rpc::{ERROR_DOMAIN, FieldViolations, corrupt_data, status_with_reason, storage_unavailable};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// Everything the audit service can fail with; mapped to a gRPC status in one place below.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid request")]
    InvalidArgument(FieldViolations),
    #[error("{0} not found")]
    NotFound(String),
    #[error("event {0} was already appended with different fields")]
    EventIdConflict(String),
    #[error("{message}")]
    FailedPrecondition { reason: &'static str, message: String },
    #[error("{message}")]
    PermissionDenied { reason: &'static str, message: String },
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
            Error::EventIdConflict(event_id) => {
                // Clients branch on the reason and need to know which event of the batch clashed.
                let metadata = HashMap::from([("event_id".to_owned(), event_id.clone())]);
                let details = ErrorDetails::with_error_info("EVENT_ID_CONFLICT", ERROR_DOMAIN, metadata);
                Status::with_error_details(
                    Code::AlreadyExists,
                    format!(
                        "event {event_id} was already appended with different fields; nothing was appended"
                    ),
                    details,
                )
            }
            Error::FailedPrecondition { reason, message } => {
                status_with_reason(Code::FailedPrecondition, reason, message)
            }
            Error::PermissionDenied { reason, message } => {
                status_with_reason(Code::PermissionDenied, reason, message)
            }
            Error::Storage(error) => storage_unavailable(
                "audit log",
                &error,
                "the audit log's database is unavailable; nothing was made durable, retry",
            ),
            Error::Corrupt(detail) => corrupt_data("audit log", &detail),
        }
    }
}
