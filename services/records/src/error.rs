use interlock_rpc::{FieldViolations, corrupt_data, status_with_reason, storage_unavailable};
use tonic::{Code, Status};

/// Everything the records service can fail with; mapped to a gRPC status in one place below.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid request")]
    InvalidArgument(FieldViolations),
    /// A record that does not exist, was deleted or purged, expired, or that the caller may not
    /// see: one variant so that every such answer is byte-for-byte the same.
    #[error("record not found")]
    RecordNotFound,
    /// The record changed since the caller read it (stale etag, or a concurrent writer).
    #[error("the record was changed by someone else")]
    Aborted,
    #[error("{message}")]
    PermissionDenied { reason: &'static str, message: String },
    /// Another IngestRecords stream claimed this stream's ingest job.
    #[error("the ingest job was taken over by another stream")]
    IngestTakenOver,
    /// A message over the server's size limit.
    #[error("message too large")]
    MessageTooLarge(String),
    /// The audit event of an action could not be made durable, so the action did not happen.
    #[error("the audit log is unavailable")]
    AuditUnavailable,
    #[error("storage failure: {0}")]
    Storage(#[from] sqlx::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn denied(reason: &'static str, message: impl Into<String>) -> Self {
        Error::PermissionDenied { reason, message: message.into() }
    }

    /// A single field violation.
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        let mut violations = FieldViolations::new();
        violations.add(field, description);
        Error::InvalidArgument(violations)
    }

    /// A single field violation with a specific reason.
    pub fn invalid_because(reason: &'static str, field: &str, description: impl Into<String>) -> Self {
        let mut violations = FieldViolations::new();
        violations.add_with_reason(reason, field, description);
        Error::InvalidArgument(violations)
    }
}

impl From<FieldViolations> for Error {
    fn from(violations: FieldViolations) -> Self {
        Error::InvalidArgument(violations)
    }
}

impl From<prost::DecodeError> for Error {
    fn from(error: prost::DecodeError) -> Self {
        Error::Corrupt(error.to_string())
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument(violations) => violations.into_status(),
            Error::RecordNotFound => {
                status_with_reason(Code::NotFound, "RECORD_NOT_FOUND", "record not found")
            }
            Error::Aborted => status_with_reason(
                Code::Aborted,
                "ETAG_MISMATCH",
                "the record was changed since you read it; read it again and retry with the new etag",
            ),
            Error::PermissionDenied { reason, message } => {
                status_with_reason(Code::PermissionDenied, reason, message)
            }
            Error::IngestTakenOver => status_with_reason(
                Code::Aborted,
                "INGEST_TAKEN_OVER",
                "another stream opened this ingest_id and continues the job; this stream ends",
            ),
            Error::MessageTooLarge(detail) => {
                status_with_reason(Code::ResourceExhausted, "MESSAGE_TOO_LARGE", detail)
            }
            Error::AuditUnavailable => status_with_reason(
                Code::Unavailable,
                "AUDIT_UNAVAILABLE",
                "the audit event of this call could not be made durable, so nothing was returned or written; retry",
            ),
            Error::Storage(error) => {
                storage_unavailable("records service", &error, "the records database is unavailable; retry")
            }
            Error::Corrupt(detail) => corrupt_data("records service", &detail),
        }
    }
}
