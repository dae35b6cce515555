use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo.domain` of every error Interlock returns.
pub const ERROR_DOMAIN: &str = "interlock";

/// A status carrying an `ErrorInfo` whose `reason` is a stable UPPER_SNAKE_CASE constant that
/// clients can branch on.
pub fn status_with_reason(code: Code, reason: &str, message: impl Into<String>) -> Status {
    let details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, HashMap::new());
    Status::with_error_details(code, message, details)
}

/// [`status_with_reason`] plus a `RetryInfo` telling the client how long to wait before the same
/// call can succeed, so it backs off for that long instead of retrying blindly.
pub fn status_with_retry(
    code: Code,
    reason: &str,
    message: impl Into<String>,
    retry_delay: Duration,
) -> Status {
    let mut details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, HashMap::new());
    details.set_retry_info(Some(retry_delay));
    Status::with_error_details(code, message, details)
}

/// UNAVAILABLE for a failure of `service`'s own database. The database's message may name tables
/// or values, so it is logged, never sent; `message` tells the client what to do.
pub fn storage_unavailable(service: &str, error: &dyn std::fmt::Display, message: &str) -> Status {
    tracing::error!(%error, service, "storage failure");
    status_with_reason(Code::Unavailable, "STORAGE_UNAVAILABLE", message)
}

/// INTERNAL for data `service` stored but cannot read back; the detail is logged, never sent.
pub fn corrupt_data(service: &str, detail: &str) -> Status {
    tracing::error!(%detail, service, "corrupt stored data");
    status_with_reason(Code::Internal, "CORRUPT_DATA", format!("the {service} holds data it cannot read"))
}

/// Collects every problem with a request so the caller can fix them all at once, then becomes an
/// INVALID_ARGUMENT status with a `BadRequest` detail.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FieldViolations {
    violations: Vec<(String, String)>,
    reason: Option<&'static str>,
}

impl FieldViolations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `field` (a request field path such as `agency.duty_desk.phone`) is wrong.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.violations.push((field.into(), description.into()));
    }

    /// Records a violation when `condition` holds.
    pub fn check(&mut self, condition: bool, field: &str, description: &str) {
        if condition {
            self.add(field, description);
        }
    }

    /// Merges violations found in a nested message, prefixing their paths with `prefix`.
    pub fn extend_nested(&mut self, prefix: &str, nested: FieldViolations) {
        for (field, description) in nested.violations {
            self.violations.push((format!("{prefix}.{field}"), description));
        }
        if let Some(reason) = nested.reason {
            self.reason.get_or_insert(reason);
        }
    }

    /// Records a violation that has a more specific `ErrorInfo.reason` than `INVALID_ARGUMENT`
    /// (for example `SELF_AGREEMENT`); the first such reason becomes the status's reason.
    pub fn add_with_reason(
        &mut self,
        reason: &'static str,
        field: impl Into<String>,
        description: impl Into<String>,
    ) {
        self.reason.get_or_insert(reason);
        self.add(field, description);
    }

    pub fn is_empty(&self) -> bool {
        self.violations.is_empty()
    }

    pub fn violations(&self) -> &[(String, String)] {
        &self.violations
    }

    /// `Ok(())` when nothing was recorded, otherwise the INVALID_ARGUMENT status.
    pub fn into_result(self) -> Result<(), Status> {
        if self.is_empty() { Ok(()) } else { Err(self.into_status()) }
    }

    pub fn into_status(self) -> Status {
        let message = self
            .violations
            .iter()
            .map(|(field, description)| format!("{field}: {description}"))
            .collect::<Vec<_>>()
            .join("; ");
        let reason = self.reason.unwrap_or("INVALID_ARGUMENT");
        let mut details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, HashMap::new());
        for (field, description) in self.violations {
            details.add_bad_request_violation(field, description);
        }
        Status::with_error_details(Code::InvalidArgument, format!("invalid request: {message}"), details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_and_corrupt_data_statuses_never_carry_the_database_text() {
        let database_text = "UNIQUE constraint failed: records.owner, records.record_number = 'ICE-7'";
        let status = storage_unavailable(
            "records service",
            &database_text,
            "the records database is unavailable; retry",
        );
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(
            status.get_details_error_info().map(|info| info.reason),
            Some("STORAGE_UNAVAILABLE".into())
        );
        assert_eq!(status.message(), "the records database is unavailable; retry");

        let status = corrupt_data("registry", "row agencies/ICE: invalid JSON at byte 17");
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.get_details_error_info().map(|info| info.reason), Some("CORRUPT_DATA".into()));
        assert_eq!(status.message(), "the registry holds data it cannot read");
    }

    #[test]
    fn violations_become_bad_request_details() {
        let mut violations = FieldViolations::new();
        violations.add("agency.code", "must not be empty");
        let mut nested = FieldViolations::new();
        nested.add("phone", "is not a telephone number");
        violations.extend_nested("agency.duty_desk", nested);

        let status = violations.into_status();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("agency.code: must not be empty"));
        let details = status.get_error_details();
        let fields: Vec<_> = details
            .bad_request()
            .expect("bad request detail")
            .field_violations
            .iter()
            .map(|v| v.field.clone())
            .collect();
        assert_eq!(fields, ["agency.code", "agency.duty_desk.phone"]);
        assert_eq!(details.error_info().expect("error info").domain, ERROR_DOMAIN);
    }

    #[test]
    fn no_violations_is_ok() {
        assert!(FieldViolations::new().into_result().is_ok());
    }
}
