//! Tables, JSON documents, timestamps and error reports of the operator commands.

use prost_types::Timestamp;
use serde_json::Value;
use tonic::Code;
use tonic_types::StatusExt;

/// How a command prints its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// One JSON document (an object or an array) for scripts.
    Json,
}

impl Output {
    /// Prints `json` as one document, or calls `table` to print for people.
    pub fn show(self, json: Value, table: impl FnOnce()) -> anyhow::Result<()> {
        match self {
            Output::Json => println!("{}", serde_json::to_string_pretty(&json)?),
            Output::Table => table(),
        }
        Ok(())
    }
}

/// Rows under a header, each column as wide as its widest cell.
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&'static str]) -> Self {
        Self { header: header.to_vec(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let header: Vec<String> = self.header.iter().map(|h| (*h).to_owned()).collect();
        let lines: Vec<&Vec<String>> = std::iter::once(&header).chain(&self.rows).collect();
        let mut widths = vec![0; self.header.len()];
        for line in &lines {
            for (width, cell) in widths.iter_mut().zip(line.iter()) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in lines {
            let mut text = String::new();
            for (cell, width) in line.iter().zip(&widths) {
                text.push_str(cell);
                text.extend(std::iter::repeat_n(' ', width - cell.chars().count() + 2));
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }

    pub fn print(&self) {
        print!("{}", self.render());
    }
}

/// One resource as aligned `field  value` lines.
pub fn print_details(fields: &[(&str, String)]) {
    let width = fields.iter().map(|(key, _)| key.chars().count()).max().unwrap_or(0);
    for (key, value) in fields {
        let value = if value.is_empty() { "-" } else { value.as_str() };
        println!("{key:<width$}  {value}");
    }
}

/// A cell: `-` for nothing.
pub fn cell(value: impl Into<String>) -> String {
    let value = value.into();
    if value.is_empty() { "-".into() } else { value }
}

/// RFC 3339 in UTC, or empty when unset.
pub fn time(timestamp: Option<&Timestamp>) -> String {
    timestamp
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// A timestamp as JSON: an RFC 3339 string, or null when unset.
pub fn time_json(timestamp: Option<&Timestamp>) -> Value {
    let text = time(timestamp);
    if text.is_empty() { Value::Null } else { Value::String(text) }
}

/// Parses `2026-01-31T12:00:00Z` (any RFC 3339 offset) or a date `2026-01-31` (midnight UTC).
pub fn parse_time(value: &str) -> Result<Timestamp, String> {
    let parsed = chrono::DateTime::parse_from_rfc3339(value.trim())
        .map(|t| t.with_timezone(&chrono::Utc))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d")
                .map(|date| date.and_time(chrono::NaiveTime::MIN).and_utc())
        })
        .map_err(|_| {
            format!("'{value}' is not a time: use RFC 3339 (2026-01-31T12:00:00Z) or a date (2026-01-31)")
        })?;
    Ok(Timestamp { seconds: parsed.timestamp(), nanos: parsed.timestamp_subsec_nanos() as i32 })
}

/// Prints a failed command on standard error: for a gRPC failure its status code, message,
/// reason and every field violation.
pub fn report(error: &anyhow::Error) {
    let status = error.chain().find_map(|cause| cause.downcast_ref::<tonic::Status>());
    match status {
        Some(status) => {
            // The context added around the status (what the command was doing), if any.
            let context: Vec<String> = error
                .chain()
                .take_while(|cause| cause.downcast_ref::<tonic::Status>().is_none())
                .map(ToString::to_string)
                .collect();
            let mut prefix = String::from("error: ");
            for part in context {
                prefix.push_str(&part);
                prefix.push_str(": ");
            }
            eprint!("{prefix}{}", describe_status(status));
        }
        None => eprintln!("error: {error:#}"),
    }
}

/// The text of a failed call: `CODE: message`, then the reason, field violations and retry hint.
pub fn describe_status(status: &tonic::Status) -> String {
    let mut text = format!("{}: {}\n", code_name(status.code()), status.message());
    let details = status.get_error_details();
    if let Some(info) = details.error_info() {
        text.push_str(&format!("  reason: {}\n", info.reason));
    }
    if let Some(bad_request) = details.bad_request()
        && !bad_request.field_violations.is_empty()
    {
        text.push_str("  field violations:\n");
        for violation in &bad_request.field_violations {
            text.push_str(&format!("    {}: {}\n", violation.field, violation.description));
        }
    }
    if let Some(precondition) = details.precondition_failure() {
        for violation in &precondition.violations {
            text.push_str(&format!("  precondition {}: {}\n", violation.subject, violation.description));
        }
    }
    if let Some(retry) = details.retry_info()
        && let Some(delay) = retry.retry_delay
    {
        text.push_str(&format!("  retry after: {}s\n", delay.as_secs()));
    }
    text
}

/// The canonical name of a gRPC status code, as in `google.rpc.Code`.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Printed on standard error next to a secret that is shown only once.
pub fn warn_secret_once() {
    eprintln!(
        "warning: store this secret now, somewhere safe (a secrets manager): it is shown only once \
         and cannot be retrieved again; a lost secret can only be replaced with \
         `interlock credentials rotate`."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_trim_trailing_space() {
        let mut table = Table::new(&["CODE", "NAME"]);
        table.row(vec!["DEA".into(), "Drug Enforcement Administration".into()]);
        table.row(vec!["DOJ-OCDETF".into(), "OCDETF".into()]);
        assert_eq!(
            table.render(),
            "CODE        NAME\nDEA         Drug Enforcement Administration\nDOJ-OCDETF  OCDETF\n"
        );
    }

    #[test]
    fn times_parse_and_print_in_utc() {
        let t = parse_time("2030-01-31").unwrap();
        assert_eq!(time(Some(&t)), "2030-01-31T00:00:00Z");
        let t = parse_time("2030-01-31T12:00:00+02:00").unwrap();
        assert_eq!(time(Some(&t)), "2030-01-31T10:00:00Z");
        assert!(parse_time("next tuesday").unwrap_err().contains("RFC 3339"));
        assert_eq!(time_json(None), Value::Null);
    }

    #[test]
    fn field_violations_are_described() {
        let status = tonic::Status::with_error_details(
            Code::InvalidArgument,
            "the agency is not valid",
            tonic_types::ErrorDetails::with_bad_request_violation("agency.code", "must be upper case"),
        );
        let text = describe_status(&status);
        assert!(text.starts_with("INVALID_ARGUMENT: the agency is not valid\n"), "{text}");
        assert!(text.contains("    agency.code: must be upper case\n"), "{text}");
    }
}
