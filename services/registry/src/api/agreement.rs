use std::sync::Arc;

use interlock_api::registry::v1::agreement_service_server::{AgreementService, AgreementServiceServer};
use interlock_api::registry::v1::{self as pb, *};
use interlock_auth::Caller;
use interlock_rpc::{now_micros, page_size};
use tonic::{Request, Response, Status};

use super::convert::{mask_paths, micros, opt_ts, required, ts};
use super::{after, page};
use crate::Registry;
use crate::domain::agency::agency_name;
use crate::domain::agreement::{
    Agreement, AgreementState, Party, PartyRole, Scope, Signature, Terms, Version, VersionState,
    agreement_id_from_name,
};
use crate::domain::grants::{self, ChangeKind};
use crate::error::Error;
use crate::service::agreements::{AgreementChange, AgreementView, Amendment, Transition};
use crate::store::Resource;

pub(super) fn server(registry: Arc<Registry>) -> AgreementServiceServer<AgreementApi> {
    AgreementServiceServer::new(AgreementApi { registry })
}

pub(super) struct AgreementApi {
    registry: Arc<Registry>,
}

fn agreement_id<'a>(name: &'a str, field: &str) -> Result<&'a str, Error> {
    agreement_id_from_name(name)
        .ok_or_else(|| Error::invalid(field, "must be an agreement resource name such as agreements/123"))
}

#[tonic::async_trait]
impl AgreementService for AgreementApi {
    async fn create_agreement(
        &self,
        request: Request<CreateAgreementRequest>,
    ) -> Result<Response<CreateAgreementResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let terms = terms_from_proto(required(request.agreement, "agreement")?)?;
        let request_id = Some(request.request_id.as_str()).filter(|id| !id.is_empty());
        let created = self.registry.create_agreement(&caller, terms, request_id).await?;
        Ok(Response::new(CreateAgreementResponse { agreement: Some(to_proto(&created)) }))
    }

    async fn get_agreement(
        &self,
        request: Request<GetAgreementRequest>,
    ) -> Result<Response<GetAgreementResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let agreement =
            self.registry.show_agreement(&caller, agreement_id(&request.get_ref().name, "name")?).await?;
        Ok(Response::new(GetAgreementResponse { agreement: Some(to_proto(&agreement)) }))
    }

    async fn list_agreements(
        &self,
        request: Request<ListAgreementsRequest>,
    ) -> Result<Response<ListAgreementsResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let limit = page_size(request.page_size, 50, 500)?;
        let state = match pb::AgreementState::try_from(request.state) {
            Ok(pb::AgreementState::Unspecified) => None,
            Ok(state) => Some(state_from_proto(state)),
            Err(_) => return Err(Error::invalid("state", "is not a known agreement state").into()),
        };
        let party = Some(request.party.as_str()).filter(|p| !p.is_empty());
        let listed = self.registry.list_agreements(&caller, state, party).await?;
        // Newest first: resume after the position of the last name returned.
        let after = after(&request.page_token)?;
        let start = if after.is_empty() {
            0
        } else {
            listed.iter().position(|a| a.agreement.value.name() == after).map_or(0, |i| i + 1)
        };
        let (agreements, next_page_token) =
            page(listed.into_iter().skip(start).take(limit as usize + 1).collect(), limit, |a| {
                a.agreement.value.name()
            });
        Ok(Response::new(ListAgreementsResponse {
            agreements: agreements.iter().map(to_proto).collect(),
            next_page_token,
        }))
    }

    async fn update_agreement(
        &self,
        request: Request<UpdateAgreementRequest>,
    ) -> Result<Response<UpdateAgreementResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let update = required(request.agreement, "agreement")?;
        let id = agreement_id(&update.name, "agreement.name")?.to_owned();
        let etag = update.etag.clone();
        let paths = mask_paths(request.update_mask);
        check_mask(&paths)?;
        let incoming = terms_from_proto(update)?;
        let updated = self
            .registry
            .update_agreement(&caller, &id, &etag, |current| merge(current, &incoming, &paths))
            .await?;
        Ok(Response::new(UpdateAgreementResponse { agreement: Some(to_proto(&updated)) }))
    }

    async fn propose_agreement(
        &self,
        request: Request<ProposeAgreementRequest>,
    ) -> Result<Response<ProposeAgreementResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let id = agreement_id(&request.name, "name")?;
        let (agreement, ()) = self
            .registry
            .act_on_agreement(
                &caller,
                id,
                AgreementChange { transition: Transition::Proposed, etag: &request.etag, reason: "" },
                |agreement, _, required, now| {
                    if agreement.terms().center().is_some() && required.len() < 2 {
                        return Err(Error::precondition(
                            "CENTER_TOO_SMALL",
                            "a center agreement needs at least two current members",
                        ));
                    }
                    let violations = agreement.terms().validate(now);
                    if !violations.is_empty() {
                        return Err(violations.into());
                    }
                    agreement.propose(now)
                },
            )
            .await?;
        Ok(Response::new(ProposeAgreementResponse { agreement: Some(to_proto(&agreement)) }))
    }

    async fn sign_agreement(
        &self,
        request: Request<SignAgreementRequest>,
    ) -> Result<Response<SignAgreementResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let id = agreement_id(&request.name, "name")?;
        let (agreement, _) =
            self.registry.sign_agreement(&caller, id, request.version, &request.etag).await?;
        let signature = agreement
            .agreement
            .value
            .versions
            .iter()
            .flat_map(|v| v.signatures.iter())
            .filter(|s| s.agency == caller.agency)
            .max_by_key(|s| s.sign_time_us)
            .map(signature_to_proto);
        Ok(Response::new(SignAgreementResponse { agreement: Some(to_proto(&agreement)), signature }))
    }

    async fn suspend_agreement(
        &self,
        request: Request<SuspendAgreementRequest>,
    ) -> Result<Response<SuspendAgreementResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let id = agreement_id(&request.name, "name")?;
        let (agreement, ()) = self
            .registry
            .act_on_agreement(
                &caller,
                id,
                AgreementChange {
                    transition: Transition::Suspended,
                    etag: &request.etag,
                    reason: &request.reason,
                },
                |agreement, actor, _, now| agreement.suspend(actor, &request.reason, now),
            )
            .await?;
        Ok(Response::new(SuspendAgreementResponse { agreement: Some(to_proto(&agreement)) }))
    }

    async fn resume_agreement(
        &self,
        request: Request<ResumeAgreementRequest>,
    ) -> Result<Response<ResumeAgreementResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let id = agreement_id(&request.name, "name")?;
        let (agreement, ()) = self
            .registry
            .act_on_agreement(
                &caller,
                id,
                AgreementChange {
                    transition: Transition::Resumed,
                    etag: &request.etag,
                    reason: &request.reason,
                },
                |agreement, actor, _, now| agreement.resume(actor, now),
            )
            .await?;
        Ok(Response::new(ResumeAgreementResponse { agreement: Some(to_proto(&agreement)) }))
    }

    async fn revoke_agreement(
        &self,
        request: Request<RevokeAgreementRequest>,
    ) -> Result<Response<RevokeAgreementResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let id = agreement_id(&request.name, "name")?;
        let (agreement, ()) = self
            .registry
            .act_on_agreement(
                &caller,
                id,
                AgreementChange {
                    transition: Transition::Revoked,
                    etag: &request.etag,
                    reason: &request.reason,
                },
                |agreement, actor, _, now| agreement.revoke(actor, &request.reason, now),
            )
            .await?;
        Ok(Response::new(RevokeAgreementResponse { agreement: Some(to_proto(&agreement)) }))
    }

    async fn amend_agreement(
        &self,
        request: Request<AmendAgreementRequest>,
    ) -> Result<Response<AmendAgreementResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let update = required(request.agreement, "agreement")?;
        let id = agreement_id(&update.name, "agreement.name")?.to_owned();
        let etag = update.etag.clone();
        let paths = mask_paths(request.update_mask);
        check_mask(&paths)?;
        let incoming = terms_from_proto(update)?;
        let amendment = Amendment {
            etag: &etag,
            change_note: &request.change_note,
            request_id: Some(request.request_id.as_str()).filter(|id| !id.is_empty()),
        };
        let (agreement, version) = self
            .registry
            .amend_agreement(&caller, &id, amendment, |current| merge(current, &incoming, &paths))
            .await?;
        Ok(Response::new(AmendAgreementResponse {
            version: Some(version_to_proto(&agreement.agreement.value, &version)),
            agreement: Some(to_proto(&agreement)),
        }))
    }

    async fn withdraw_amendment(
        &self,
        request: Request<WithdrawAmendmentRequest>,
    ) -> Result<Response<WithdrawAmendmentResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let id = agreement_id(&request.name, "name")?;
        let (agreement, ()) = self
            .registry
            .act_on_agreement(
                &caller,
                id,
                AgreementChange {
                    transition: Transition::AmendmentWithdrawn,
                    etag: &request.etag,
                    reason: &request.reason,
                },
                |agreement, _, _, now| agreement.withdraw_amendment(now),
            )
            .await?;
        Ok(Response::new(WithdrawAmendmentResponse { agreement: Some(to_proto(&agreement)) }))
    }

    async fn get_agreement_version(
        &self,
        request: Request<GetAgreementVersionRequest>,
    ) -> Result<Response<GetAgreementVersionResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let name = request.get_ref().name.clone();
        let (id, number) = name
            .strip_prefix("agreements/")
            .and_then(|rest| rest.split_once("/versions/"))
            .and_then(|(id, n)| n.parse::<i64>().ok().map(|n| (id, n)))
            .ok_or_else(|| Error::invalid("name", "must look like agreements/{id}/versions/{n}"))?;
        let (agreement, _) = self.registry.get_agreement(&caller, id).await?;
        let version = agreement
            .value
            .versions
            .iter()
            .find(|v| v.version == number)
            .ok_or_else(|| Error::NotFound(name.clone()))?;
        Ok(Response::new(GetAgreementVersionResponse {
            version: Some(version_to_proto(&agreement.value, version)),
        }))
    }

    async fn list_agreement_versions(
        &self,
        request: Request<ListAgreementVersionsRequest>,
    ) -> Result<Response<ListAgreementVersionsResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let (agreement, _) =
            self.registry.get_agreement(&caller, agreement_id(&request.parent, "parent")?).await?;
        let limit = page_size(request.page_size, 50, 500)?;
        let after = after(&request.page_token)?;
        let after: i64 = after.parse().unwrap_or(0);
        let versions: Vec<&Version> = agreement.value.versions.iter().filter(|v| v.version > after).collect();
        let (versions, next_page_token) = page(versions, limit, |v| v.version.to_string());
        Ok(Response::new(ListAgreementVersionsResponse {
            versions: versions.into_iter().map(|v| version_to_proto(&agreement.value, v)).collect(),
            next_page_token,
        }))
    }

    async fn preview_agreement(
        &self,
        request: Request<PreviewAgreementRequest>,
    ) -> Result<Response<PreviewAgreementResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let preview = self.registry.preview_agreement(&caller, agreement_id(&request.name, "name")?).await?;
        let changes = grants::diff(&preview.before, &preview.after);
        let holdings = if request.include_record_counts {
            let mut categories: Vec<i32> =
                changes.iter().filter(|c| c.provider == caller.agency).map(|c| c.category).collect();
            categories.sort_unstable();
            categories.dedup();
            self.registry.own_holdings(&caller, categories).await
        } else {
            None
        };
        let changes = changes
            .into_iter()
            .map(|change| {
                let level = |g: Option<&grants::Grant>| g.map_or(0, |g| g.access_level);
                let ceiling = |g: Option<&grants::Grant>| g.map_or(0, |g| g.sensitivity_ceiling);
                // A CLOSED change counts what was visible before it.
                let counted_ceiling = ceiling(change.after.or(change.before));
                let record_count = holdings
                    .as_ref()
                    .filter(|_| change.provider == caller.agency)
                    .map(|h| h.at_or_below(change.category, counted_ceiling));
                AccessChange {
                    consumer: format!("agencies/{}", change.consumer),
                    provider: format!("agencies/{}", change.provider),
                    category: change.category,
                    kind: match change.kind {
                        ChangeKind::Opened => AccessChangeKind::Opened,
                        ChangeKind::Widened => AccessChangeKind::Widened,
                        ChangeKind::Narrowed => AccessChangeKind::Narrowed,
                        ChangeKind::Closed => AccessChangeKind::Closed,
                    } as i32,
                    access_level: level(change.after),
                    previous_access_level: level(change.before),
                    sensitivity_ceiling: ceiling(change.after),
                    previous_sensitivity_ceiling: ceiling(change.before),
                    purposes: change.after.map(|g| g.purposes.clone()).unwrap_or_default(),
                    redacted_fields: change.after.map(|g| g.redacted_fields.clone()).unwrap_or_default(),
                    record_count,
                }
            })
            .collect();
        Ok(Response::new(PreviewAgreementResponse {
            agreement: preview.agreement,
            version: preview.version,
            baseline_version: preview.baseline_version,
            changes,
            record_counts_available: holdings.is_some(),
        }))
    }
}

const EDITABLE: &[&str] = &["display_name", "description", "parties", "scope", "start_time", "end_time"];

/// Amendments may name `parties` too (to change roles); the domain refuses added or removed parties.
fn check_mask(paths: &[String]) -> Result<(), Error> {
    if paths.is_empty() {
        return Err(Error::invalid("update_mask", "name at least one field to change"));
    }
    for path in paths {
        let top = path.split('.').next().unwrap_or_default();
        if !EDITABLE.contains(&top) {
            return Err(Error::invalid("update_mask", format!("{path:?} cannot be changed")));
        }
    }
    Ok(())
}

/// `current` with the fields named by `paths` taken from `incoming`.
fn merge(current: &Terms, incoming: &Terms, paths: &[String]) -> Terms {
    let mut terms = current.clone();
    for path in paths {
        match path.as_str() {
            "display_name" => terms.display_name = incoming.display_name.clone(),
            "description" => terms.description = incoming.description.clone(),
            "parties" => terms.parties = incoming.parties.clone(),
            "scope" => terms.scope = incoming.scope.clone(),
            "scope.categories" => terms.scope.categories = incoming.scope.categories.clone(),
            "scope.sensitivity_ceiling" => {
                terms.scope.sensitivity_ceiling = incoming.scope.sensitivity_ceiling
            }
            "scope.purposes" => terms.scope.purposes = incoming.scope.purposes.clone(),
            "scope.access_level" => terms.scope.access_level = incoming.scope.access_level,
            "scope.redacted_fields" => terms.scope.redacted_fields = incoming.scope.redacted_fields.clone(),
            "scope.admitted_caveats" => {
                terms.scope.admitted_caveats = incoming.scope.admitted_caveats.clone()
            }
            "scope.may_reshare" => terms.scope.may_reshare = incoming.scope.may_reshare,
            "start_time" => terms.start_time_us = incoming.start_time_us,
            "end_time" => terms.end_time_us = incoming.end_time_us,
            _ => {}
        }
    }
    terms
}

/// The terms a client sent; party roles must be set (the rest is checked by `Terms::validate`).
fn terms_from_proto(agreement: pb::Agreement) -> Result<Terms, Error> {
    let mut violations = interlock_rpc::FieldViolations::new();
    for (index, party) in agreement.parties.iter().enumerate() {
        violations.check(
            !matches!(
                pb::PartyRole::try_from(party.role),
                Ok(pb::PartyRole::Provider | pb::PartyRole::Consumer | pb::PartyRole::Both)
            ),
            &format!("agreement.parties[{index}].role"),
            "must be PARTY_ROLE_PROVIDER, PARTY_ROLE_CONSUMER or PARTY_ROLE_BOTH",
        );
    }
    if !violations.is_empty() {
        return Err(violations.into());
    }
    let scope = agreement.scope.unwrap_or_default();
    Ok(Terms {
        display_name: agreement.display_name,
        description: agreement.description,
        parties: agreement
            .parties
            .into_iter()
            .map(|p| Party {
                party: p.party,
                role: match pb::PartyRole::try_from(p.role) {
                    Ok(pb::PartyRole::Provider) => PartyRole::Provider,
                    Ok(pb::PartyRole::Consumer) => PartyRole::Consumer,
                    _ => PartyRole::Both,
                },
            })
            .collect(),
        scope: Scope {
            categories: scope.categories,
            sensitivity_ceiling: scope.sensitivity_ceiling,
            purposes: scope.purposes,
            access_level: scope.access_level,
            redacted_fields: scope.redacted_fields,
            admitted_caveats: scope.admitted_caveats,
            may_reshare: scope.may_reshare,
        },
        start_time_us: micros(agreement.start_time.as_ref()).unwrap_or_else(now_micros),
        end_time_us: micros(agreement.end_time.as_ref()),
    })
}

fn state_from_proto(state: pb::AgreementState) -> AgreementState {
    match state {
        pb::AgreementState::Draft | pb::AgreementState::Unspecified => AgreementState::Draft,
        pb::AgreementState::Proposed => AgreementState::Proposed,
        pb::AgreementState::Active => AgreementState::Active,
        pb::AgreementState::Suspended => AgreementState::Suspended,
        pb::AgreementState::Revoked => AgreementState::Revoked,
        pb::AgreementState::Expired => AgreementState::Expired,
    }
}

fn state_to_proto(state: AgreementState) -> pb::AgreementState {
    match state {
        AgreementState::Draft => pb::AgreementState::Draft,
        AgreementState::Proposed => pb::AgreementState::Proposed,
        AgreementState::Active => pb::AgreementState::Active,
        AgreementState::Suspended => pb::AgreementState::Suspended,
        AgreementState::Revoked => pb::AgreementState::Revoked,
        AgreementState::Expired => pb::AgreementState::Expired,
    }
}

fn parties_to_proto(terms: &Terms) -> Vec<AgreementParty> {
    terms
        .parties
        .iter()
        .map(|p| AgreementParty {
            party: p.party.clone(),
            role: match p.role {
                PartyRole::Provider => pb::PartyRole::Provider,
                PartyRole::Consumer => pb::PartyRole::Consumer,
                PartyRole::Both => pb::PartyRole::Both,
            } as i32,
        })
        .collect()
}

fn scope_to_proto(scope: &Scope) -> AgreementScope {
    AgreementScope {
        categories: scope.categories.clone(),
        sensitivity_ceiling: scope.sensitivity_ceiling,
        purposes: scope.purposes.clone(),
        access_level: scope.access_level,
        redacted_fields: scope.redacted_fields.clone(),
        admitted_caveats: scope.admitted_caveats.clone(),
        may_reshare: scope.may_reshare,
    }
}

fn signature_to_proto(signature: &Signature) -> pb::Signature {
    pb::Signature {
        agency: format!("agencies/{}", signature.agency),
        credential: signature.credential.clone(),
        user: if signature.user.is_empty() {
            String::new()
        } else {
            format!("agencies/{}/users/{}", signature.agency, signature.user)
        },
        version: signature.version,
        sign_time: ts(signature.sign_time_us),
    }
}

fn to_proto(view: &AgreementView) -> pb::Agreement {
    let stored = &view.agreement;
    let agreement = &stored.value;
    let now = now_micros();
    let current = agreement.current();
    let pending = agreement.pending();
    pb::Agreement {
        name: agreement.name(),
        display_name: current.terms.display_name.clone(),
        description: current.terms.description.clone(),
        parties: parties_to_proto(&current.terms),
        scope: Some(scope_to_proto(&current.terms.scope)),
        start_time: ts(current.terms.start_time_us),
        end_time: opt_ts(current.terms.end_time_us),
        state: state_to_proto(agreement.state(now)) as i32,
        version: current.version,
        pending_version: pending.filter(|p| p.version != current.version).map_or(0, |p| p.version),
        // The signatures of the version shown: those of other versions are in the version history.
        signatures: current.signatures.iter().map(signature_to_proto).collect(),
        pending_signers: view.pending_signers.iter().map(|code| agency_name(code)).collect(),
        suspensions: agreement
            .suspensions
            .iter()
            .map(|s| pb::Suspension {
                agency: format!("agencies/{}", s.agency),
                user: s.user.clone(),
                reason: s.reason.clone(),
                suspend_time: ts(s.suspend_time_us),
            })
            .collect(),
        creator: format!("agencies/{}", agreement.creator),
        create_time: ts(agreement.create_time_us),
        update_time: ts(agreement.update_time_us),
        activate_time: opt_ts(agreement.activate_time_us),
        revoke_time: opt_ts(agreement.revocation.as_ref().map(|r| r.time_us)),
        revoked_by: agreement
            .revocation
            .as_ref()
            .map(|r| format!("agencies/{}", r.agency))
            .unwrap_or_default(),
        revoke_reason: agreement.revocation.as_ref().map(|r| r.reason.clone()).unwrap_or_default(),
        etag: stored.etag(),
    }
}

fn version_to_proto(agreement: &Agreement, version: &Version) -> pb::AgreementVersion {
    pb::AgreementVersion {
        name: format!("{}/versions/{}", agreement.name(), version.version),
        version: version.version,
        display_name: version.terms.display_name.clone(),
        description: version.terms.description.clone(),
        parties: parties_to_proto(&version.terms),
        scope: Some(scope_to_proto(&version.terms.scope)),
        start_time: ts(version.terms.start_time_us),
        end_time: opt_ts(version.terms.end_time_us),
        state: match version.state {
            VersionState::Draft => AgreementVersionState::Draft,
            VersionState::Proposed => AgreementVersionState::Proposed,
            VersionState::InForce => AgreementVersionState::InForce,
            VersionState::Superseded => AgreementVersionState::Superseded,
            VersionState::Withdrawn => AgreementVersionState::Withdrawn,
            VersionState::Ended => AgreementVersionState::Ended,
        } as i32,
        signatures: version.signatures.iter().map(signature_to_proto).collect(),
        change_note: version.change_note.clone(),
        author: version.author.clone(),
        create_time: ts(version.create_time_us),
        propose_time: opt_ts(version.propose_time_us),
        in_force_time: opt_ts(version.in_force_time_us),
        retire_time: opt_ts(version.retire_time_us),
    }
}
