use std::sync::Arc;

use interlock_api::registry::v1::center_service_server::{CenterService, CenterServiceServer};
use interlock_api::registry::v1::{self as pb, *};
use interlock_auth::Caller;
use interlock_rpc::{now_micros, page_size};
use tonic::{Request, Response, Status};

use super::convert::{agency_code, mask_paths, micros, opt_ts, required, ts};
use super::{after, page};
use crate::Registry;
use crate::domain::center::{Center, CenterState, Member, MemberState, center_id_from_name};
use crate::error::Error;
use crate::store::{Resource, Versioned};

pub(super) fn server(registry: Arc<Registry>) -> CenterServiceServer<CenterApi> {
    CenterServiceServer::new(CenterApi { registry })
}

pub(super) struct CenterApi {
    registry: Arc<Registry>,
}

fn center_id<'a>(name: &'a str, field: &str) -> Result<&'a str, Error> {
    center_id_from_name(name)
        .ok_or_else(|| Error::invalid(field, "must be a center resource name such as centers/ioc-2"))
}

/// Splits `centers/{id}/members/{code}`.
fn member_name<'a>(name: &'a str, field: &str) -> Result<(&'a str, &'a str), Error> {
    name.strip_prefix("centers/")
        .and_then(|rest| rest.split_once("/members/"))
        .filter(|(id, code)| center_id_from_name(&format!("centers/{id}")).is_some() && !code.is_empty())
        .ok_or_else(|| Error::invalid(field, "must look like centers/ioc-2/members/ICE"))
}

#[tonic::async_trait]
impl CenterService for CenterApi {
    async fn create_center(
        &self,
        request: Request<CreateCenterRequest>,
    ) -> Result<Response<CreateCenterResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let center = required(request.center, "center")?;
        let center = Center::new(center.center_id, center.display_name, center.description, now_micros())
            .map_err(Error::from)?;
        let request_id = Some(request.request_id.as_str()).filter(|id| !id.is_empty());
        let created = self.registry.create_center(&caller, center, request_id).await?;
        Ok(Response::new(CreateCenterResponse { center: Some(to_proto(&created)) }))
    }

    async fn get_center(
        &self,
        request: Request<GetCenterRequest>,
    ) -> Result<Response<GetCenterResponse>, Status> {
        Caller::of(&request)?;
        let center = self.registry.center(center_id(&request.get_ref().name, "name")?).await?;
        Ok(Response::new(GetCenterResponse { center: Some(to_proto(&center)) }))
    }

    async fn list_centers(
        &self,
        request: Request<ListCentersRequest>,
    ) -> Result<Response<ListCentersResponse>, Status> {
        Caller::of(&request)?;
        let request = request.into_inner();
        let limit = page_size(request.page_size, 50, 500)?;
        let member =
            if request.member.is_empty() { None } else { Some(agency_code(&request.member, "member")?) };
        let listed = self.registry.list_centers(member, &after(&request.page_token)?, limit + 1).await?;
        let (centers, next_page_token) = page(listed, limit, |c| c.value.name());
        Ok(Response::new(ListCentersResponse {
            centers: centers.iter().map(to_proto).collect(),
            next_page_token,
        }))
    }

    async fn update_center(
        &self,
        request: Request<UpdateCenterRequest>,
    ) -> Result<Response<UpdateCenterResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let update = required(request.center, "center")?;
        let id = center_id(&update.name, "center.name")?.to_owned();
        let paths = mask_paths(request.update_mask);
        let updated = self
            .registry
            .change_center(
                &caller,
                &id,
                "UpdateCenter",
                &update.etag,
                |center, _| {
                    if paths.is_empty() {
                        return Err(Error::invalid("update_mask", "name at least one field to change"));
                    }
                    for path in &paths {
                        match path.as_str() {
                            "display_name" if update.display_name.trim().is_empty() => {
                                return Err(Error::invalid("center.display_name", "is required"));
                            }
                            "display_name" => center.display_name = update.display_name.trim().to_owned(),
                            "description" => center.description = update.description.clone(),
                            other => {
                                return Err(Error::invalid(
                                    "update_mask",
                                    format!("{other:?} is not an editable center field"),
                                ));
                            }
                        }
                    }
                    Ok(())
                },
                None,
            )
            .await?;
        Ok(Response::new(UpdateCenterResponse { center: Some(to_proto(&updated)) }))
    }

    async fn suspend_center(
        &self,
        request: Request<SuspendCenterRequest>,
    ) -> Result<Response<SuspendCenterResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let id = center_id(&request.name, "name")?;
        let center =
            set_state(&self.registry, &caller, id, CenterState::Suspended, &request.reason, &request.etag)
                .await?;
        Ok(Response::new(SuspendCenterResponse { center: Some(to_proto(&center)) }))
    }

    async fn reactivate_center(
        &self,
        request: Request<ReactivateCenterRequest>,
    ) -> Result<Response<ReactivateCenterResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let id = center_id(&request.name, "name")?;
        let center =
            set_state(&self.registry, &caller, id, CenterState::Active, &request.reason, &request.etag)
                .await?;
        Ok(Response::new(ReactivateCenterResponse { center: Some(to_proto(&center)) }))
    }

    async fn add_center_member(
        &self,
        request: Request<AddCenterMemberRequest>,
    ) -> Result<Response<AddCenterMemberResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let id = center_id(&request.center, "center")?;
        let agency = agency_code(&request.agency, "agency")?;
        let request_id = Some(request.request_id.as_str()).filter(|id| !id.is_empty());
        let join_time_us = micros(request.join_time.as_ref());
        let center = self.registry.add_center_member(&caller, id, agency, join_time_us, request_id).await?;
        Ok(Response::new(AddCenterMemberResponse { member: member_proto(&center, agency) }))
    }

    async fn remove_center_member(
        &self,
        request: Request<RemoveCenterMemberRequest>,
    ) -> Result<Response<RemoveCenterMemberResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let (id, agency) = member_name(&request.name, "name")?;
        let center = self
            .registry
            .remove_center_member(&caller, id, agency, micros(request.leave_time.as_ref()), &request.etag)
            .await?;
        Ok(Response::new(RemoveCenterMemberResponse { member: member_proto(&center, agency) }))
    }

    async fn get_center_member(
        &self,
        request: Request<GetCenterMemberRequest>,
    ) -> Result<Response<GetCenterMemberResponse>, Status> {
        Caller::of(&request)?;
        let (id, agency) = member_name(&request.get_ref().name, "name")?;
        let center = self.registry.center(id).await?;
        let member =
            member_proto(&center, agency).ok_or_else(|| Error::NotFound(request.get_ref().name.clone()))?;
        Ok(Response::new(GetCenterMemberResponse { member: Some(member) }))
    }

    async fn list_center_members(
        &self,
        request: Request<ListCenterMembersRequest>,
    ) -> Result<Response<ListCenterMembersResponse>, Status> {
        Caller::of(&request)?;
        let request = request.into_inner();
        let center = self.registry.center(center_id(&request.parent, "parent")?).await?;
        let limit = page_size(request.page_size, 100, 1000)?;
        let after = after(&request.page_token)?;
        let now = now_micros();
        let mut members: Vec<&Member> = center
            .value
            .members
            .iter()
            .filter(|m| request.show_former || m.state(now) != MemberState::Former)
            .filter(|m| m.agency.as_str() > after.as_str())
            .collect();
        members.sort_by(|a, b| a.agency.cmp(&b.agency));
        let (members, next_page_token) = page(members, limit, |m| m.agency.clone());
        let members = members.into_iter().filter_map(|m| member_proto(&center, &m.agency)).collect();
        Ok(Response::new(ListCenterMembersResponse { members, next_page_token }))
    }
}

async fn set_state(
    registry: &Registry,
    caller: &Caller,
    id: &str,
    state: CenterState,
    reason: &str,
    etag: &str,
) -> Result<Versioned<Center>, Error> {
    let rpc = if state == CenterState::Suspended { "SuspendCenter" } else { "ReactivateCenter" };
    registry
        .change_center(
            caller,
            id,
            rpc,
            etag,
            |center, _| {
                if center.state == state {
                    return Err(Error::precondition(
                        "CENTER_STATE_UNCHANGED",
                        format!("the center is already {state:?}"),
                    ));
                }
                center.state = state;
                center.suspend_reason =
                    if state == CenterState::Suspended { reason.to_owned() } else { String::new() };
                Ok(())
            },
            None,
        )
        .await
}

fn to_proto(stored: &Versioned<Center>) -> pb::Center {
    let center = &stored.value;
    pb::Center {
        name: center.name(),
        center_id: center.center_id.clone(),
        display_name: center.display_name.clone(),
        description: center.description.clone(),
        state: match center.state {
            CenterState::Active => pb::CenterState::Active,
            CenterState::Suspended => pb::CenterState::Suspended,
        } as i32,
        current_member_count: center.current_members(now_micros()).len() as i32,
        suspend_reason: center.suspend_reason.clone(),
        create_time: ts(center.create_time_us),
        update_time: ts(center.update_time_us),
        etag: stored.etag(),
    }
}

fn member_proto(stored: &Versioned<Center>, agency: &str) -> Option<pb::CenterMember> {
    let member = stored.value.member(agency)?;
    Some(pb::CenterMember {
        name: format!("{}/members/{agency}", stored.value.name()),
        agency: format!("agencies/{agency}"),
        join_time: ts(member.period.join_time_us),
        leave_time: opt_ts(member.period.leave_time_us),
        state: match member.state(now_micros()) {
            MemberState::Scheduled => pb::CenterMemberState::Scheduled,
            MemberState::Current => pb::CenterMemberState::Current,
            MemberState::Former => pb::CenterMemberState::Former,
        } as i32,
        previous_periods: member
            .previous_periods
            .iter()
            .map(|p| pb::MembershipPeriod {
                join_time: ts(p.join_time_us),
                leave_time: opt_ts(p.leave_time_us),
            })
            .collect(),
        etag: stored.etag(),
    })
}
