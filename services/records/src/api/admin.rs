use std::sync::Arc;

use interlock_api::common::v1::SensitivityLevel;
use interlock_api::records::v1::records_admin_service_server::RecordsAdminService;
use interlock_api::records::v1::*;
use interlock_auth::{Caller, Role};
use interlock_rpc::{micros_from_timestamp, now_micros, timestamp_from_micros};
use tonic::{Request, Response, Status};

use super::{agency_code, require_role};
use crate::error::Error;
use crate::service::Records;

pub(super) struct AdminApi {
    pub records: Arc<Records>,
}

/// The owners an operator call covers: center roles (and the mesh) any, an agency
/// administrator only its own agency (empty means its own).
fn owners_for(caller: &Caller, requested: &[String], central: &[Role]) -> Result<Vec<String>, Status> {
    let codes = requested
        .iter()
        .enumerate()
        .map(|(i, o)| agency_code(o, &format!("owners[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    if central.iter().any(|r| caller.has_role(*r)) {
        return Ok(codes);
    }
    if codes.iter().any(|c| *c != caller.agency) {
        return Err(
            Error::denied("ROLE_REQUIRED", "an agency administrator may name only its own agency").into()
        );
    }
    Ok(vec![caller.agency.clone()])
}

#[tonic::async_trait]
impl RecordsAdminService for AdminApi {
    async fn purge_expired_records(
        &self,
        request: Request<PurgeExpiredRecordsRequest>,
    ) -> Result<Response<PurgeExpiredRecordsResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        require_role(&caller, &[Role::CenterAdministrator, Role::AgencyAdministrator])?;
        let request = request.into_inner();
        let now = now_micros();
        let before = request.expire_before.as_ref().map_or(now, micros_from_timestamp);
        if before > now {
            return Err(Error::invalid("expire_before", "must not be in the future").into());
        }
        let max = match request.max_records {
            0 => 10_000,
            n if n < 0 => return Err(Error::invalid("max_records", "must not be negative").into()),
            n => (n as u32).min(100_000),
        };
        let owners = owners_for(&caller, &request.owners, &[Role::CenterAdministrator])?;
        let (purged_count, more_remaining) =
            self.records.purge(&caller, before, &owners, max, request.validate_only).await?;
        Ok(Response::new(PurgeExpiredRecordsResponse { purged_count, more_remaining }))
    }

    async fn summarize_records(
        &self,
        request: Request<SummarizeRecordsRequest>,
    ) -> Result<Response<SummarizeRecordsResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let central = [Role::MeshService, Role::CenterAdministrator, Role::CenterAuditor];
        require_role(
            &caller,
            &[Role::MeshService, Role::CenterAdministrator, Role::CenterAuditor, Role::AgencyAdministrator],
        )?;
        let request = request.into_inner();
        if request.owners.len() > 1000 {
            return Err(Error::invalid("owners", "at most 1,000").into());
        }
        let owners = owners_for(&caller, &request.owners, &central)?;
        let max = (request.max_sensitivity != SensitivityLevel::Unspecified as i32)
            .then_some(request.max_sensitivity);
        let counts = self.records.summarize(&caller, &owners, &request.categories, max).await?;
        Ok(Response::new(SummarizeRecordsResponse {
            counts,
            compute_time: Some(timestamp_from_micros(now_micros())),
        }))
    }
}
