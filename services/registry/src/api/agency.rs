use std::sync::Arc;

use interlock_api::common::v1 as common;
use interlock_api::registry::v1::agency_service_server::{AgencyService, AgencyServiceServer};
use interlock_api::registry::v1::{
    self as pb, CreateAgencyRequest, CreateAgencyResponse, GetAgencyRequest, GetAgencyResponse,
    ListAgenciesRequest, ListAgenciesResponse,
};
use interlock_auth::{Caller, Role};
use interlock_rpc::{FieldViolations, PageToken, now_micros, page_size, timestamp_from_micros};
use tonic::{Request, Response, Status};

use crate::Registry;
use crate::domain::agency::{Agency, AgencyState, Contact, NewAgency, code_from_name};
use crate::error::Error;

pub(super) fn server(registry: Arc<Registry>) -> AgencyServiceServer<AgencyApi> {
    AgencyServiceServer::new(AgencyApi { registry })
}

pub(super) struct AgencyApi {
    registry: Arc<Registry>,
}

#[tonic::async_trait]
impl AgencyService for AgencyApi {
    async fn create_agency(
        &self,
        request: Request<CreateAgencyRequest>,
    ) -> Result<Response<CreateAgencyResponse>, Status> {
        Caller::of(&request)?.require_any_role(&[Role::CenterAdministrator])?;
        let request = request.into_inner();
        let Some(agency) = request.agency else {
            let mut violations = FieldViolations::new();
            violations.add("agency", "is required");
            return Err(violations.into_status());
        };
        let agency = new_agency(agency).validate("agency", now_micros()).map_err(Error::from)?;
        let request_id = Some(request.request_id.as_str()).filter(|id| !id.is_empty());
        let created = self.registry.store.create_agency(&agency, request_id).await?;
        tracing::info!(agency = %created.code, "agency created");
        Ok(Response::new(CreateAgencyResponse { agency: Some(to_proto(&created)) }))
    }

    async fn get_agency(
        &self,
        request: Request<GetAgencyRequest>,
    ) -> Result<Response<GetAgencyResponse>, Status> {
        Caller::of(&request)?;
        let name = request.into_inner().name;
        let code = parse_name(&name)?;
        let agency =
            self.registry.store.get_agency(code).await?.ok_or_else(|| Error::NotFound(name.clone()))?;
        Ok(Response::new(GetAgencyResponse { agency: Some(to_proto(&agency)) }))
    }

    async fn list_agencies(
        &self,
        request: Request<ListAgenciesRequest>,
    ) -> Result<Response<ListAgenciesResponse>, Status> {
        Caller::of(&request)?;
        let request = request.into_inner();
        let limit = page_size(request.page_size, 50, 500)?;
        let after: Option<String> = PageToken::decode(&request.page_token)?;
        let state = match pb::AgencyState::try_from(request.state) {
            Ok(pb::AgencyState::Unspecified) => None,
            Ok(pb::AgencyState::Active) => Some(AgencyState::Active),
            Ok(pb::AgencyState::Suspended) => Some(AgencyState::Suspended),
            Err(_) => {
                let mut violations = FieldViolations::new();
                violations.add("state", "is not a known agency state");
                return Err(violations.into_status());
            }
        };
        // One row more than asked tells whether another page follows.
        let mut agencies = self.registry.store.list_agencies(after.as_deref(), state, limit + 1).await?;
        let next_page_token = if agencies.len() > limit as usize {
            agencies.truncate(limit as usize);
            agencies.last().map(|last| PageToken::encode(&last.code)).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(ListAgenciesResponse {
            agencies: agencies.iter().map(to_proto).collect(),
            next_page_token,
        }))
    }
}

fn parse_name(name: &str) -> Result<&str, Status> {
    code_from_name(name).ok_or_else(|| {
        let mut violations = FieldViolations::new();
        violations.add("name", "must be an agency resource name such as agencies/DEA");
        violations.into_status()
    })
}

fn new_agency(agency: pb::Agency) -> NewAgency {
    NewAgency {
        code: agency.code,
        display_name: agency.display_name,
        parent_department: agency.parent_department,
        jurisdiction: agency.jurisdiction,
        duty_desk: agency.duty_desk.map(contact_from_proto),
        contacts: agency.contacts.into_iter().map(contact_from_proto).collect(),
    }
}

fn contact_from_proto(contact: common::Contact) -> Contact {
    Contact {
        name: contact.name,
        phone: contact.phone,
        email: contact.email,
        around_the_clock: contact.around_the_clock,
    }
}

fn contact_to_proto(contact: &Contact) -> common::Contact {
    common::Contact {
        name: contact.name.clone(),
        phone: contact.phone.clone(),
        email: contact.email.clone(),
        around_the_clock: contact.around_the_clock,
    }
}

fn to_proto(agency: &Agency) -> pb::Agency {
    pb::Agency {
        name: agency.name(),
        code: agency.code.clone(),
        display_name: agency.display_name.clone(),
        parent_department: agency.parent_department.clone(),
        jurisdiction: agency.jurisdiction.clone(),
        state: match agency.state {
            AgencyState::Active => pb::AgencyState::Active,
            AgencyState::Suspended => pb::AgencyState::Suspended,
        } as i32,
        duty_desk: Some(contact_to_proto(&agency.duty_desk)),
        contacts: agency.contacts.iter().map(contact_to_proto).collect(),
        suspend_reason: agency.suspend_reason.clone(),
        suspend_time: agency.suspend_time_us.map(timestamp_from_micros),
        create_time: Some(timestamp_from_micros(agency.create_time_us)),
        update_time: Some(timestamp_from_micros(agency.update_time_us)),
        etag: agency.etag(),
    }
}
