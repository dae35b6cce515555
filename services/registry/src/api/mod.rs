//! gRPC handlers: decode, authorize, call the domain and the store, map errors. Nothing else.

mod agency;
mod authentication;

use std::sync::Arc;

use interlock_api::registry::v1::agreement_service_server::{AgreementService, AgreementServiceServer};
use interlock_api::registry::v1::center_service_server::{CenterService, CenterServiceServer};
use interlock_api::registry::v1::credential_service_server::{CredentialService, CredentialServiceServer};
use interlock_api::registry::v1::grant_service_server::{GrantService, GrantServiceServer};
use tonic::service::RoutesBuilder;

use crate::Registry;

pub(crate) fn add_services(registry: &Arc<Registry>, routes: &mut RoutesBuilder) {
    routes
        .add_service(agency::server(registry.clone()))
        .add_service(authentication::server(registry.clone()))
        .add_service(CenterServiceServer::new(Pending))
        .add_service(CredentialServiceServer::new(Pending))
        .add_service(AgreementServiceServer::new(Pending))
        .add_service(GrantServiceServer::new(Pending));
}

/// Services whose behaviour arrives with the registry issue (#3). Their generated default methods
/// answer UNIMPLEMENTED; the serve crate's pending-RPC layer names the issue.
struct Pending;

impl CenterService for Pending {}
impl CredentialService for Pending {}
impl AgreementService for Pending {}
impl GrantService for Pending {}
