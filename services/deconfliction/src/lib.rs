//! The deconfliction service: targets, operations and record selectors checked for conflicts,
//! both sides told who to call, and the conflict followed until it is settled.
//!
//! Reads top-down: [`api`] (gRPC handlers) → [`intake`] (what an agency sends, normalised and
//! blinded) → [`service`] (registration against the match index, conflict workflow) →
//! [`domain`] (geometry, rules, index, conflicts; no I/O) → [`store`] (sqlx).

pub mod api;
pub mod domain;
pub mod error;
pub mod intake;
mod render;
mod report;
pub mod service;
pub mod store;

use std::sync::Arc;

use tonic::service::RoutesBuilder;

pub use service::{Deconfliction, DeconflictionConfig};

/// The gRPC services this crate serves, for health reporting.
pub const SERVICE_NAMES: &[&str] =
    &["interlock.deconfliction.v1.DeconflictionService", "interlock.deconfliction.v1.RecordSelectorService"];

pub fn add_services(service: Arc<Deconfliction>, routes: &mut RoutesBuilder) {
    let (deconfliction, records) = api::servers(service);
    routes.add_service(deconfliction).add_service(records);
}
