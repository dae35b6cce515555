use std::sync::Arc;

use interlock_api::registry::v1::agency_service_server::{AgencyService, AgencyServiceServer};
use interlock_api::registry::v1::{self as pb, *};
use interlock_auth::{Caller, Role};
use interlock_rpc::{FieldViolations, now_micros, page_size};
use tonic::{Request, Response, Status};

use super::convert::{
    agency_code, child_name, contact_from_proto, contact_to_proto, mask_paths, opt_ts, required, ts,
};
use super::{after, page};
use crate::Registry;
use crate::domain::agency::{Agency, AgencyState, NewAgency};
use crate::domain::user::{User, UserState, is_user_id, validate_user_roles};
use crate::error::Error;
use crate::store::Versioned;

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
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let agency = required(request.agency, "agency")?;
        let request_id = Some(request.request_id.as_str()).filter(|id| !id.is_empty());
        let created = self.registry.create_agency(&caller, new_agency(agency), request_id).await?;
        Ok(Response::new(CreateAgencyResponse { agency: Some(to_proto(&created)) }))
    }

    async fn get_agency(
        &self,
        request: Request<GetAgencyRequest>,
    ) -> Result<Response<GetAgencyResponse>, Status> {
        Caller::of(&request)?;
        let code = agency_code(&request.get_ref().name, "name")?;
        let agency = self.registry.agency(code).await?;
        Ok(Response::new(GetAgencyResponse { agency: Some(to_proto(&agency)) }))
    }

    async fn list_agencies(
        &self,
        request: Request<ListAgenciesRequest>,
    ) -> Result<Response<ListAgenciesResponse>, Status> {
        Caller::of(&request)?;
        let request = request.into_inner();
        let limit = page_size(request.page_size, 50, 500)?;
        let state = match pb::AgencyState::try_from(request.state) {
            Ok(pb::AgencyState::Unspecified) => None,
            Ok(pb::AgencyState::Active) => Some(AgencyState::Active),
            Ok(pb::AgencyState::Suspended) => Some(AgencyState::Suspended),
            Err(_) => return Err(Error::invalid("state", "is not a known agency state").into()),
        };
        let listed = self.registry.list_agencies(&after(&request.page_token)?, state, limit + 1).await?;
        let (agencies, next_page_token) = page(listed, limit, |a| crate::store::Resource::name(&a.value));
        Ok(Response::new(ListAgenciesResponse {
            agencies: agencies.iter().map(to_proto).collect(),
            next_page_token,
        }))
    }

    async fn update_agency(
        &self,
        request: Request<UpdateAgencyRequest>,
    ) -> Result<Response<UpdateAgencyResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let agency = required(request.agency, "agency")?;
        let code = agency_code(&agency.name, "agency.name")?.to_owned();
        let etag = agency.etag.clone();
        let paths = mask_paths(request.update_mask);
        let updated = self.registry.update_agency(&caller, &code, new_agency(agency), &paths, &etag).await?;
        Ok(Response::new(UpdateAgencyResponse { agency: Some(to_proto(&updated)) }))
    }

    async fn suspend_agency(
        &self,
        request: Request<SuspendAgencyRequest>,
    ) -> Result<Response<SuspendAgencyResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let code = agency_code(&request.name, "name")?;
        let agency =
            self.registry.set_agency_suspended(&caller, code, true, &request.reason, &request.etag).await?;
        Ok(Response::new(SuspendAgencyResponse { agency: Some(to_proto(&agency)) }))
    }

    async fn reactivate_agency(
        &self,
        request: Request<ReactivateAgencyRequest>,
    ) -> Result<Response<ReactivateAgencyResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let code = agency_code(&request.name, "name")?;
        let agency =
            self.registry.set_agency_suspended(&caller, code, false, &request.reason, &request.etag).await?;
        Ok(Response::new(ReactivateAgencyResponse { agency: Some(to_proto(&agency)) }))
    }

    async fn create_user(
        &self,
        request: Request<CreateUserRequest>,
    ) -> Result<Response<CreateUserResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let agency = agency_code(&request.parent, "parent")?.to_owned();
        let user = required(request.user, "user")?;
        let roles = roles_from_proto(&user.roles);
        let mut violations = FieldViolations::new();
        violations.check(
            !is_user_id(&user.user_id),
            "user.user_id",
            "must be 1 to 64 letters, digits, '.', '_', '-' or '@'",
        );
        violations.check(user.display_name.trim().is_empty(), "user.display_name", "is required");
        validate_user_roles(&roles, "user.roles", &mut violations);
        violations.into_result()?;
        let now = now_micros();
        let user = User {
            agency,
            user_id: user.user_id,
            display_name: user.display_name,
            email: user.email,
            roles: roles.iter().map(|role| role.as_str().to_owned()).collect(),
            state: UserState::Active,
            create_time_us: now,
            update_time_us: now,
        };
        let request_id = Some(request.request_id.as_str()).filter(|id| !id.is_empty());
        let created = self.registry.create_user(&caller, user, request_id).await?;
        Ok(Response::new(CreateUserResponse { user: Some(user_to_proto(&created)) }))
    }

    async fn get_user(&self, request: Request<GetUserRequest>) -> Result<Response<GetUserResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let (agency, id) = child_name(&request.get_ref().name, "users", "name")?;
        let user = self.registry.get_user(&caller, agency, id).await?;
        Ok(Response::new(GetUserResponse { user: Some(user_to_proto(&user)) }))
    }

    async fn list_users(
        &self,
        request: Request<ListUsersRequest>,
    ) -> Result<Response<ListUsersResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let agency = agency_code(&request.parent, "parent")?;
        let limit = page_size(request.page_size, 50, 500)?;
        let listed =
            self.registry.list_users(&caller, agency, &after(&request.page_token)?, limit + 1).await?;
        let (users, next_page_token) = page(listed, limit, |u| crate::store::Resource::name(&u.value));
        Ok(Response::new(ListUsersResponse {
            users: users.iter().map(user_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn update_user(
        &self,
        request: Request<UpdateUserRequest>,
    ) -> Result<Response<UpdateUserResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let update = required(request.user, "user")?;
        let (agency, id) = child_name(&update.name, "users", "user.name")?;
        let paths = mask_paths(request.update_mask);
        let roles = roles_from_proto(&update.roles);
        let mut violations = FieldViolations::new();
        violations.check(paths.is_empty(), "update_mask", "name at least one field to change");
        for path in &paths {
            match path.as_str() {
                "roles" => validate_user_roles(&roles, "user.roles", &mut violations),
                "display_name" => violations.check(
                    update.display_name.trim().is_empty(),
                    "user.display_name",
                    "is required",
                ),
                "email" | "state" => {}
                other => violations.add("update_mask", format!("{other:?} is not an editable user field")),
            }
        }
        violations.into_result()?;
        let state = match pb::UserState::try_from(update.state) {
            Ok(pb::UserState::Disabled) => UserState::Disabled,
            _ => UserState::Active,
        };
        let apply = |user: &mut User| {
            for path in &paths {
                match path.as_str() {
                    "roles" => user.roles = roles.iter().map(|role| role.as_str().to_owned()).collect(),
                    "display_name" => user.display_name = update.display_name.clone(),
                    "email" => user.email = update.email.clone(),
                    "state" => user.state = state,
                    _ => {}
                }
            }
            Ok(())
        };
        let updated = self.registry.update_user(&caller, agency, id, apply, &update.etag).await?;
        Ok(Response::new(UpdateUserResponse { user: Some(user_to_proto(&updated)) }))
    }

    async fn delete_user(
        &self,
        request: Request<DeleteUserRequest>,
    ) -> Result<Response<DeleteUserResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let (agency, id) = child_name(&request.name, "users", "name")?;
        self.registry.delete_user(&caller, agency, id, &request.etag).await?;
        Ok(Response::new(DeleteUserResponse {}))
    }
}

pub(super) fn roles_from_proto(roles: &[i32]) -> Vec<Role> {
    roles.iter().filter_map(|role| pb::Role::try_from(*role).ok()).filter_map(Role::from_proto).collect()
}

pub(super) fn roles_to_proto(roles: &[String]) -> Vec<i32> {
    roles.iter().filter_map(|role| Role::parse(role)).map(|role| role.to_proto() as i32).collect()
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

pub(super) fn to_proto(stored: &Versioned<Agency>) -> pb::Agency {
    let agency = &stored.value;
    pb::Agency {
        name: crate::store::Resource::name(agency),
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
        suspend_time: opt_ts(agency.suspend_time_us),
        create_time: ts(agency.create_time_us),
        update_time: ts(agency.update_time_us),
        etag: stored.etag(),
    }
}

fn user_to_proto(stored: &Versioned<User>) -> pb::User {
    let user = &stored.value;
    pb::User {
        name: crate::store::Resource::name(user),
        user_id: user.user_id.clone(),
        display_name: user.display_name.clone(),
        email: user.email.clone(),
        roles: roles_to_proto(&user.roles),
        state: match user.state {
            UserState::Active => pb::UserState::Active,
            UserState::Disabled => pb::UserState::Disabled,
        } as i32,
        create_time: ts(user.create_time_us),
        update_time: ts(user.update_time_us),
        etag: stored.etag(),
    }
}
