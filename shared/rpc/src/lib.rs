//! gRPC plumbing shared by every service: `google.rpc` error details and page tokens.
//!
//! Each service crate keeps its own `thiserror` enum and maps it to [`tonic::Status`] in one
//! `From` impl; the builders here make sure every service shapes those statuses the same way
//! (an `ErrorInfo` with domain `interlock`, and `BadRequest` field violations).

mod errors;
mod paging;
mod time;

pub use errors::{
    ERROR_DOMAIN, FieldViolations, corrupt_data, status_with_reason, status_with_retry, storage_unavailable,
};
pub use paging::{PageToken, page_size};
pub use time::{micros_from_timestamp, now_micros, timestamp_from_micros};
