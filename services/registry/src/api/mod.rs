//! gRPC handlers: decode, authenticate the caller, call the service layer, encode, map errors.

mod agency;
mod agreement;
mod authentication;
mod center;
mod convert;
mod credential;
mod grant;

use std::sync::Arc;

use interlock_rpc::PageToken;
use tonic::service::RoutesBuilder;

use crate::Registry;

pub(crate) fn add_services(registry: &Arc<Registry>, routes: &mut RoutesBuilder) {
    routes
        .add_service(agency::server(registry.clone()))
        .add_service(authentication::server(registry.clone()))
        .add_service(center::server(registry.clone()))
        .add_service(credential::server(registry.clone()))
        .add_service(agreement::server(registry.clone()))
        .add_service(grant::server(registry.clone()));
}

/// Cuts a listing fetched with one row more than `limit` into a page and its next-page token
/// (the last returned resource name).
fn page<T>(mut items: Vec<T>, limit: u32, name: impl Fn(&T) -> String) -> (Vec<T>, String) {
    if items.len() > limit as usize {
        items.truncate(limit as usize);
        let token = items.last().map(|last| PageToken::encode(&name(last))).unwrap_or_default();
        (items, token)
    } else {
        (items, String::new())
    }
}

/// The resource name a page token resumes after ("" for the first page).
fn after(page_token: &str) -> Result<String, tonic::Status> {
    Ok(PageToken::decode::<String>(page_token)?.unwrap_or_default())
}
