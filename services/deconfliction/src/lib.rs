//! The deconfliction service: targets, operations and record selectors checked for conflicts.
//!
//! Its RPCs arrive with issue #5; until they do, each answers UNIMPLEMENTED naming it. The
//! matching rules and the index below are the first part of that work.

pub mod domain;
pub mod error;
pub mod intake;
pub mod service;
pub mod store;

use interlock_api::deconfliction::v1::deconfliction_service_server::{
    DeconflictionService, DeconflictionServiceServer,
};
use interlock_api::deconfliction::v1::record_selector_service_server::{
    RecordSelectorService, RecordSelectorServiceServer,
};
use tonic::service::RoutesBuilder;

/// The gRPC services this crate serves, for health reporting.
pub const SERVICE_NAMES: &[&str] =
    &["interlock.deconfliction.v1.DeconflictionService", "interlock.deconfliction.v1.RecordSelectorService"];

pub fn add_services(routes: &mut RoutesBuilder) {
    routes
        .add_service(DeconflictionServiceServer::new(Pending))
        .add_service(RecordSelectorServiceServer::new(Pending));
}

struct Pending;

impl DeconflictionService for Pending {}
impl RecordSelectorService for Pending {}
