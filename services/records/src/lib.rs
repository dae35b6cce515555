//! The records service: what agencies contribute, and every read under the signed agreements.
//!
//! Reads top-down: [`api`] (gRPC handlers: decode, authorize, map errors) → [`service`]
//! (orchestration: read, decide, commit with the audit event) → [`domain`] (rules, no I/O) →
//! [`store`] (sqlx).

pub mod domain;
pub mod error;
pub mod store;

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
