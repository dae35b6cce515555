//! The audit service: a tamper-evident log of every access.
//!
//! Its behaviour arrives with issue #6; until then every RPC answers UNIMPLEMENTED naming it.

pub mod merkle;

use interlock_api::audit::v1::audit_service_server::{AuditService, AuditServiceServer};
use tonic::service::RoutesBuilder;

/// The gRPC services this crate serves, for health reporting.
pub const SERVICE_NAMES: &[&str] = &["interlock.audit.v1.AuditService"];

pub fn add_services(routes: &mut RoutesBuilder) {
    routes.add_service(AuditServiceServer::new(Pending));
}

struct Pending;

impl AuditService for Pending {}
