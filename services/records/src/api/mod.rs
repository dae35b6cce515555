//! gRPC handlers: decode the request, establish and check the caller, call the service, map
//! errors to statuses (in [`crate::error`]).

mod admin;
mod records;

use std::sync::Arc;

use interlock_api::records::v1::records_admin_service_server::RecordsAdminServiceServer;
use interlock_api::records::v1::records_service_server::RecordsServiceServer;
use interlock_auth::{Caller, Role};
use interlock_rpc::status_with_reason;
use tonic::service::RoutesBuilder;
use tonic::{Code, Status};

use crate::service::Records;

/// The largest request message the records services accept (RESOURCE_EXHAUSTED beyond), as
/// documented in the API. tonic's default is the same today; stated here so they cannot drift.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// Adds both records gRPC services to `routes`.
pub fn add_services(records: &Arc<Records>, routes: &mut RoutesBuilder) {
    routes
        .add_service(
            RecordsServiceServer::new(records::RecordsApi { records: records.clone() })
                .max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        .add_service(RecordsAdminServiceServer::new(admin::AdminApi { records: records.clone() }));
}

/// PERMISSION_DENIED (ROLE_REQUIRED) unless the caller holds one of `roles`.
fn require_role(caller: &Caller, roles: &[Role]) -> Result<(), Status> {
    if roles.iter().any(|role| caller.has_role(*role)) {
        return Ok(());
    }
    let wanted = roles.iter().map(|role| role.as_str()).collect::<Vec<_>>().join(" or ");
    Err(status_with_reason(Code::PermissionDenied, "ROLE_REQUIRED", format!("this call needs {wanted}")))
}

/// `agencies/{code}` → code, INVALID_ARGUMENT on `field` otherwise.
fn agency_code(name: &str, field: &str) -> Result<String, Status> {
    name.strip_prefix("agencies/")
        .filter(|code| {
            !code.is_empty()
                && code.len() <= 32
                && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        .map(str::to_owned)
        .ok_or_else(|| crate::error::Error::invalid(field, "must be an agency name, agencies/{code}").into())
}
