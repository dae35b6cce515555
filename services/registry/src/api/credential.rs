use std::sync::Arc;

use interlock_api::registry::v1::credential_service_server::{CredentialService, CredentialServiceServer};
use interlock_api::registry::v1::{self as pb, *};
use interlock_auth::Caller;
use interlock_rpc::{FieldViolations, now_micros, page_size};
use tonic::{Request, Response, Status};

use super::agency::{roles_from_proto, roles_to_proto};
use super::convert::{agency_code, child_name, mask_paths, micros, opt_ts, required, ts};
use super::{after, page};
use crate::Registry;
use crate::domain::credential::{Credential, CredentialState};
use crate::error::Error;
use crate::service::credentials::{CredentialChange, CredentialUpdate, NewCredential};
use crate::store::{Resource, Versioned};

pub(super) fn server(registry: Arc<Registry>) -> CredentialServiceServer<CredentialApi> {
    CredentialServiceServer::new(CredentialApi { registry })
}

pub(super) struct CredentialApi {
    registry: Arc<Registry>,
}

#[tonic::async_trait]
impl CredentialService for CredentialApi {
    async fn create_credential(
        &self,
        request: Request<CreateCredentialRequest>,
    ) -> Result<Response<CreateCredentialResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let agency = agency_code(&request.parent, "parent")?.to_owned();
        let credential = required(request.credential, "credential")?;
        let new = NewCredential {
            agency,
            credential_id: Some(credential.credential_id).filter(|id| !id.is_empty()),
            display_name: credential.display_name,
            roles: roles_from_proto(&credential.roles),
            expire_time_us: micros(credential.expire_time.as_ref()),
            tls_certificate_sha256: credential.tls_certificate_sha256,
        };
        let request_id = Some(request.request_id.as_str()).filter(|id| !id.is_empty());
        let (created, secret) = self.registry.create_credential(&caller, new, request_id).await?;
        Ok(Response::new(CreateCredentialResponse { credential: Some(to_proto(&created)), secret }))
    }

    async fn get_credential(
        &self,
        request: Request<GetCredentialRequest>,
    ) -> Result<Response<GetCredentialResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let (agency, id) = child_name(&request.get_ref().name, "credentials", "name")?;
        let credential = self.registry.get_credential(&caller, agency, id).await?;
        Ok(Response::new(GetCredentialResponse { credential: Some(to_proto(&credential)) }))
    }

    async fn list_credentials(
        &self,
        request: Request<ListCredentialsRequest>,
    ) -> Result<Response<ListCredentialsResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let agency = agency_code(&request.parent, "parent")?;
        let limit = page_size(request.page_size, 50, 500)?;
        let wanted = pb::CredentialState::try_from(request.state).unwrap_or(pb::CredentialState::Unspecified);
        let listed =
            self.registry.list_credentials(&caller, agency, &after(&request.page_token)?, limit + 1).await?;
        let (mut credentials, next_page_token) = page(listed, limit, |c| c.value.name());
        let now = now_micros();
        credentials.retain(|c| wanted == pb::CredentialState::Unspecified || state(&c.value, now) == wanted);
        Ok(Response::new(ListCredentialsResponse {
            credentials: credentials.iter().map(to_proto).collect(),
            next_page_token,
        }))
    }

    async fn update_credential(
        &self,
        request: Request<UpdateCredentialRequest>,
    ) -> Result<Response<UpdateCredentialResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let update = required(request.credential, "credential")?;
        let (agency, id) = child_name(&update.name, "credentials", "credential.name")?;
        let paths = mask_paths(request.update_mask);
        let mut violations = FieldViolations::new();
        violations.check(paths.is_empty(), "update_mask", "name at least one field to change");
        for path in &paths {
            if !["display_name", "roles", "expire_time", "tls_certificate_sha256"].contains(&path.as_str()) {
                violations.add("update_mask", format!("{path:?} is not an editable credential field"));
            }
        }
        violations.into_result()?;
        let mut changes = CredentialUpdate::default();
        for path in &paths {
            match path.as_str() {
                "display_name" => changes.display_name = Some(update.display_name.clone()),
                "roles" => changes.roles = Some(roles_from_proto(&update.roles)),
                "expire_time" => changes.expire_time_us = Some(micros(update.expire_time.as_ref())),
                _ => changes.tls_certificate_sha256 = Some(update.tls_certificate_sha256.clone()),
            }
        }
        let updated = self.registry.update_credential(&caller, agency, id, &update.etag, changes).await?;
        Ok(Response::new(UpdateCredentialResponse { credential: Some(to_proto(&updated)) }))
    }

    async fn rotate_credential(
        &self,
        request: Request<RotateCredentialRequest>,
    ) -> Result<Response<RotateCredentialResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let (agency, id) = child_name(&request.name, "credentials", "name")?;
        let grace_us = request.grace_period.map_or(0, |d| d.seconds.saturating_mul(1_000_000));
        let (rotated, secret) =
            self.registry.rotate_credential(&caller, agency, id, grace_us, &request.etag).await?;
        Ok(Response::new(RotateCredentialResponse { credential: Some(to_proto(&rotated)), secret }))
    }

    async fn revoke_credential(
        &self,
        request: Request<RevokeCredentialRequest>,
    ) -> Result<Response<RevokeCredentialResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let (agency, id) = child_name(&request.name, "credentials", "name")?;
        let revoked = self
            .registry
            .change_credential(
                &caller,
                agency,
                id,
                change("RevokeCredential", &request.etag, &request.reason),
                |credential, now| {
                    if credential.revoked {
                        return Err(Error::precondition(
                            "CREDENTIAL_REVOKED",
                            "the credential is already revoked",
                        ));
                    }
                    credential.revoke(&request.reason, now);
                    Ok(())
                },
            )
            .await?;
        Ok(Response::new(RevokeCredentialResponse { credential: Some(to_proto(&revoked)) }))
    }

    async fn unlock_credential(
        &self,
        request: Request<UnlockCredentialRequest>,
    ) -> Result<Response<UnlockCredentialResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let (agency, id) = child_name(&request.name, "credentials", "name")?;
        let unlocked = self
            .registry
            .change_credential(
                &caller,
                agency,
                id,
                change("UnlockCredential", &request.etag, &request.reason),
                |credential, now| {
                    if !credential.is_locked(now) {
                        return Err(Error::precondition(
                            "CREDENTIAL_NOT_LOCKED",
                            "the credential is not locked",
                        ));
                    }
                    credential.lock_expire_us = None;
                    credential.consecutive_failures = 0;
                    credential.update_time_us = now;
                    Ok(())
                },
            )
            .await?;
        Ok(Response::new(UnlockCredentialResponse { credential: Some(to_proto(&unlocked)) }))
    }
}

fn change<'a>(rpc: &'a str, etag: &'a str, reason: &'a str) -> CredentialChange<'a> {
    CredentialChange { rpc, etag, reason: Some(reason) }
}

fn state(credential: &Credential, now: i64) -> pb::CredentialState {
    match credential.state(now) {
        CredentialState::Active => pb::CredentialState::Active,
        CredentialState::Expired => pb::CredentialState::Expired,
        CredentialState::Revoked => pb::CredentialState::Revoked,
    }
}

fn to_proto(stored: &Versioned<Credential>) -> pb::Credential {
    let c = &stored.value;
    let now = now_micros();
    pb::Credential {
        name: c.name(),
        credential_id: c.credential_id.clone(),
        display_name: c.display_name.clone(),
        roles: roles_to_proto(&c.roles),
        state: state(c, now) as i32,
        expire_time: opt_ts(c.expire_time_us),
        tls_certificate_sha256: c.tls_certificate_sha256.clone(),
        secret_prefix: c.secret_prefix.clone(),
        consecutive_failures: c.consecutive_failures,
        lock_expire_time: opt_ts(c.lock_expire_us.filter(|until| *until > now)),
        last_authentication_time: opt_ts(c.last_authentication_us),
        rotate_time: opt_ts(c.rotate_time_us),
        previous_secret_expire_time: opt_ts(c.previous_secret_expire_us.filter(|until| *until > now)),
        revoke_time: opt_ts(c.revoke_time_us),
        revoke_reason: c.revoke_reason.clone(),
        create_time: ts(c.create_time_us),
        update_time: ts(c.update_time_us),
        etag: stored.etag(),
    }
}
