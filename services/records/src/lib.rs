//! The records service: what agencies contribute, and every read under the signed agreements.
//!
//! Reads top-down: [`api`] (gRPC handlers: decode, authorize, map errors) → [`service`]
//! (orchestration: read, decide, commit with the audit event) → [`domain`] (rules, no I/O) →
//! [`store`] (sqlx).

pub mod api;
pub mod domain;
pub mod error;
pub mod service;
pub mod store;

use std::sync::Arc;

use tonic::service::RoutesBuilder;

pub use service::{Directory, GrantsCache, Records};
pub use store::MIGRATIONS;

/// The gRPC services this crate serves, for health reporting.
pub const SERVICE_NAMES: &[&str] =
    &["interlock.records.v1.RecordsService", "interlock.records.v1.RecordsAdminService"];

impl Records {
    /// Adds both records gRPC services to `routes`.
    pub fn add_services(self: &Arc<Self>, routes: &mut RoutesBuilder) {
        api::add_services(self, routes);
    }
}
