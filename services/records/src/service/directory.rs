//! Agencies' 24/7 duty desks, read from the registry's agency entries and cached for a minute:
//! POINTER results and access notifications hand them out.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use interlock_api::common::v1::Contact;
use interlock_api::registry::v1::GetAgencyRequest;
use interlock_api::registry::v1::agency_service_client::AgencyServiceClient;
use interlock_auth::MeshChannel;
use tokio::sync::Mutex;

const TTL: Duration = Duration::from_secs(60);

pub struct Directory {
    registry: Option<AgencyServiceClient<MeshChannel>>,
    cached: Mutex<HashMap<String, (Instant, Option<Contact>)>>,
}

impl Directory {
    pub fn new(registry: Option<AgencyServiceClient<MeshChannel>>) -> Self {
        Self { registry, cached: Mutex::new(HashMap::new()) }
    }

    /// The duty desk of agency `code`; `None` when the registry cannot say (the result is then
    /// returned without a contact rather than not at all).
    pub async fn duty_desk(&self, code: &str) -> Option<Contact> {
        if let Some((at, contact)) = self.cached.lock().await.get(code)
            && at.elapsed() < TTL
        {
            return contact.clone();
        }
        let mut registry = self.registry.clone()?;
        let contact = match registry.get_agency(GetAgencyRequest { name: format!("agencies/{code}") }).await {
            Ok(response) => response.into_inner().agency.and_then(|a| a.duty_desk),
            Err(status) => {
                tracing::warn!(agency = code, code = ?status.code(), "cannot read an agency's duty desk");
                return None;
            }
        };
        self.cached.lock().await.insert(code.to_owned(), (Instant::now(), contact.clone()));
        contact
    }
}
