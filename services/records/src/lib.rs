//! The records service: what agencies contribute, and every read under the signed agreements.
//!
//! Its behaviour arrives with issue #4; until then every RPC answers UNIMPLEMENTED naming it.

use interlock_api::records::v1::records_admin_service_server::{
    RecordsAdminService, RecordsAdminServiceServer,
};
use interlock_api::records::v1::records_service_server::{RecordsService, RecordsServiceServer};
use tonic::service::RoutesBuilder;

/// The gRPC services this crate serves, for health reporting.
pub const SERVICE_NAMES: &[&str] =
    &["interlock.records.v1.RecordsService", "interlock.records.v1.RecordsAdminService"];

pub fn add_services(routes: &mut RoutesBuilder) {
    routes
        .add_service(RecordsServiceServer::new(Pending))
        .add_service(RecordsAdminServiceServer::new(Pending));
}

struct Pending;

impl RecordsService for Pending {}
impl RecordsAdminService for Pending {}
