//! gRPC handlers: decode and check the submission, call the service, render for the caller.

use std::sync::Arc;
use std::time::Duration;

use interlock_api::deconfliction::v1::deconfliction_service_server::{
    DeconflictionService, DeconflictionServiceServer,
};
use interlock_api::deconfliction::v1::record_selector_service_server::{
    RecordSelectorService, RecordSelectorServiceServer,
};
use interlock_api::deconfliction::v1::*;
use interlock_auth::{Caller, Role};
use interlock_rpc::{FieldViolations, PageToken, micros_from_timestamp, now_micros, page_size};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use crate::domain::conflict::{ACKNOWLEDGED, Conflict, OUTCOME_RECORDED, Outcome};
use crate::domain::registration::{Kind, Registration, State};
use crate::error::Error;
use crate::intake;
use crate::render;
use crate::service::{Deconfliction, Registered, sees_all};

const SERVICE: &str = "/interlock.deconfliction.v1.DeconflictionService/";
const HEARTBEAT: Duration = Duration::from_secs(5);

pub fn servers(
    service: Arc<Deconfliction>,
) -> (DeconflictionServiceServer<DeconflictionApi>, RecordSelectorServiceServer<DeconflictionApi>) {
    let api = DeconflictionApi { service };
    (DeconflictionServiceServer::new(api.clone()), RecordSelectorServiceServer::new(api))
}

#[derive(Clone)]
pub struct DeconflictionApi {
    service: Arc<Deconfliction>,
}

fn agency_member(caller: &Caller) -> Result<(), Status> {
    caller.require_any_role(&[Role::AgencyMember, Role::AgencyAdministrator])
}

fn status_for(registered: &Registered) -> ReceiptStatus {
    if registered.conflicts.is_empty() {
        ReceiptStatus::AcceptedWithoutConflict
    } else {
        ReceiptStatus::AcceptedWithConflict
    }
}

/// `targets/DX-…` or `operations/DX-…` → the number.
fn number<'a>(name: &'a str, collection: &str) -> Result<&'a str, Status> {
    name.strip_prefix(collection)
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Error::invalid("name", format!("must look like {collection}/DX-2026-000123")).into())
}

impl DeconflictionApi {
    fn blank(&self, caller: &Caller, kind: Kind, case_reference: String, now: i64) -> Registration {
        Registration {
            id: 0,
            number: String::new(),
            kind,
            agency: caller.agency.clone(),
            case_reference,
            case_agent: Default::default(),
            duty_desk: Default::default(),
            on_scene_contact: None,
            officer_safety_flags: Vec::new(),
            key_id: self.service.key().id().to_owned(),
            selectors: Vec::new(),
            persons: Vec::new(),
            operation: None,
            related_targets: Vec::new(),
            expire_time_us: now + self.service.rules().target_lifetime_us,
            state: State::Active,
            withdrawal_reason: 0,
            renew_count: 0,
            create_time_us: now,
            update_time_us: now,
            withdraw_time_us: None,
        }
    }

    /// A target as submitted, checked; `prefix` names where it sits in the request.
    fn target(
        &self,
        caller: &Caller,
        target: &Target,
        prefix: &str,
        violations: &mut FieldViolations,
    ) -> Registration {
        let now = now_micros();
        let rules = self.service.rules();
        let mut registration = self.blank(caller, Kind::Target, target.case_reference.trim().to_owned(), now);
        check_case_reference(&registration.case_reference, &format!("{prefix}case_reference"), violations);
        registration.case_agent = intake::contact(target.case_agent.clone());
        registration.duty_desk = intake::contact(target.duty_desk.clone());
        intake::check_contact(&registration.case_agent, &format!("{prefix}case_agent"), violations);
        intake::check_contact(&registration.duty_desk, &format!("{prefix}duty_desk"), violations);
        registration.officer_safety_flags =
            intake::flags(&target.officer_safety_flags, &format!("{prefix}officer_safety_flags"), violations);
        let identifiers = intake::identifiers(
            self.service.key(),
            prefix,
            &target.selectors,
            &target.selector_digests,
            &target.persons,
            &target.person_digests,
            rules,
            violations,
        );
        violations.check(
            identifiers.selectors.is_empty() && identifiers.persons.is_empty() && violations.is_empty(),
            &format!("{prefix}selectors"),
            "name at least one selector or person to deconflict",
        );
        registration.selectors = identifiers.selectors;
        registration.persons = identifiers.persons;
        if let Some(expire) = target.expire_time.as_ref().map(micros_from_timestamp) {
            violations.check(
                expire <= now || expire > now + rules.max_target_lifetime_us,
                &format!("{prefix}expire_time"),
                "must be in the future and at most two years away",
            );
            registration.expire_time_us = expire;
        }
        registration
    }

    fn operation(
        &self,
        caller: &Caller,
        operation: &Operation,
        prefix: &str,
        violations: &mut FieldViolations,
    ) -> Registration {
        let now = now_micros();
        let mut registration =
            self.blank(caller, Kind::Operation, operation.case_reference.trim().to_owned(), now);
        check_case_reference(&registration.case_reference, &format!("{prefix}case_reference"), violations);
        registration.case_agent = intake::contact(operation.case_agent.clone());
        registration.duty_desk = intake::contact(operation.duty_desk.clone());
        intake::check_contact(&registration.case_agent, &format!("{prefix}case_agent"), violations);
        intake::check_contact(&registration.duty_desk, &format!("{prefix}duty_desk"), violations);
        registration.on_scene_contact = operation.on_scene_contact.clone().map(|c| intake::contact(Some(c)));
        registration.officer_safety_flags = intake::flags(
            &operation.officer_safety_flags,
            &format!("{prefix}officer_safety_flags"),
            violations,
        );
        registration.related_targets = operation.related_targets.clone();
        registration.operation =
            intake::operation(self.service.key(), prefix, operation, self.service.rules(), now, violations);
        if let Some(details) = &registration.operation {
            registration.expire_time_us = details.footprint.end_us + details.footprint.buffer_us;
        }
        registration
    }

    /// The caller's own registration of `kind`, NOT_FOUND for anyone else's.
    async fn own(&self, caller: &Caller, number: &str, kind: Kind) -> Result<(Registration, i64), Status> {
        match self.service.store.registration_by_number(number).await.map_err(Status::from)? {
            Some((registration, revision))
                if registration.agency == caller.agency && registration.kind == kind =>
            {
                Ok((registration, revision))
            }
            _ => Err(Error::NotFound(number.to_owned()).into()),
        }
    }

    async fn open_conflicts(&self, registration: &Registration) -> i32 {
        self.service
            .store
            .conflicts_of(registration.id)
            .await
            .map(|c| c.iter().filter(|(c, _)| c.outcome.is_none()).count() as i32)
            .unwrap_or(0)
    }

    async fn render_conflict(
        &self,
        conflict: &Conflict,
        revision: i64,
        viewer: Option<&str>,
    ) -> interlock_api::deconfliction::v1::Conflict {
        let registrations = [
            self.service.registration(conflict.parties[0].registration_id).await,
            self.service.registration(conflict.parties[1].registration_id).await,
        ];
        render::conflict(conflict, revision, viewer, &registrations)
    }

    async fn render_conflicts(
        &self,
        conflicts: &[Conflict],
        viewer: &str,
    ) -> Vec<interlock_api::deconfliction::v1::Conflict> {
        let mut rendered = Vec::with_capacity(conflicts.len());
        for conflict in conflicts {
            // Fresh conflicts are at revision 1.
            rendered.push(self.render_conflict(conflict, 1, Some(viewer)).await);
        }
        rendered
    }

    /// Re-registers an existing registration after `change`, returning the new conflicts.
    async fn reregister(
        &self,
        caller: &Caller,
        rpc: &str,
        registration: Registration,
        revision: i64,
    ) -> Result<Registered, Status> {
        let mut registered = self
            .service
            .register(caller, &format!("{SERVICE}{rpc}"), vec![(registration, Some(revision), None)])
            .await
            .map_err(Status::from)?;
        registered.pop().ok_or_else(|| Status::internal("registration vanished"))
    }

    async fn renew(
        &self,
        caller: &Caller,
        mut registration: Registration,
        revision: i64,
        expire: Option<i64>,
    ) -> Result<Registered, Status> {
        let now = now_micros();
        let rules = self.service.rules();
        let expire = expire.unwrap_or(now + rules.target_lifetime_us);
        if expire <= now || expire > now + rules.max_target_lifetime_us {
            return Err(
                Error::invalid("expire_time", "must be in the future and at most two years away").into()
            );
        }
        if registration.state != State::Active {
            return Err(Error::precondition(
                "TARGET_WITHDRAWN",
                "a withdrawn target cannot be renewed: register it again",
            )
            .into());
        }
        registration.expire_time_us = expire;
        registration.renew_count += 1;
        registration.update_time_us = now;
        self.reregister(caller, "RenewTarget", registration, revision).await
    }
}

/// What a create answers: the registration (the first one, for a retried request id), its
/// receipt status and its conflicts as the caller sees them.
struct Receipt {
    registration: Registration,
    revision: i64,
    open: i32,
    status: ReceiptStatus,
    conflicts: Vec<interlock_api::deconfliction::v1::Conflict>,
}

/// Paging and filters of a List of the caller's own registrations.
struct Page<'a> {
    size: i32,
    token: &'a str,
    case: &'a str,
    states: &'a [i32],
}

impl DeconflictionApi {
    /// Registers what `build` checked, or returns the registration a retry of `request_id` made.
    async fn create(
        &self,
        caller: &Caller,
        request_id: String,
        rpc: &str,
        build: impl FnOnce(&mut FieldViolations) -> Registration,
    ) -> Result<Receipt, Status> {
        agency_member(caller)?;
        let request_id = Some(request_id).filter(|id| !id.is_empty());
        if let Some(id) = &request_id
            && let Some((existing, revision)) =
                self.service.store.registration_by_request(&caller.agency, id).await.map_err(Status::from)?
        {
            let conflicts: Vec<Conflict> = self
                .service
                .store
                .conflicts_of(existing.id)
                .await
                .map_err(Status::from)?
                .into_iter()
                .map(|(c, _)| c)
                .collect();
            let status = if conflicts.is_empty() {
                ReceiptStatus::AcceptedWithoutConflict
            } else {
                ReceiptStatus::AcceptedWithConflict
            };
            return Ok(Receipt {
                open: self.open_conflicts(&existing).await,
                registration: existing,
                revision,
                status,
                conflicts: self.render_conflicts(&conflicts, &caller.agency).await,
            });
        }
        let mut violations = FieldViolations::new();
        let registration = build(&mut violations);
        violations.into_result()?;
        let registered = self
            .service
            .register(caller, &format!("{SERVICE}{rpc}"), vec![(registration, None, request_id)])
            .await
            .map_err(Status::from)?;
        let registered =
            registered.into_iter().next().ok_or_else(|| Status::internal("registration vanished"))?;
        Ok(Receipt {
            status: status_for(&registered),
            open: registered.conflicts.len() as i32,
            conflicts: self.render_conflicts(&registered.conflicts, &caller.agency).await,
            registration: registered.registration,
            revision: registered.revision,
        })
    }

    /// One page of the caller's own registrations of `kind`, rendered and filtered by state.
    async fn list_own<T>(
        &self,
        caller: &Caller,
        kind: &str,
        page: Page<'_>,
        render: fn(&Registration, i64, i32, i64) -> T,
        state: fn(&T) -> i32,
    ) -> Result<(Vec<T>, String), Status> {
        let limit = page_size(page.size, 50, 500)?;
        let after: i64 = PageToken::decode(page.token)?.unwrap_or(0);
        let case = Some(page.case).filter(|c| !c.is_empty());
        let listed = self
            .service
            .store
            .list_registrations(&caller.agency, kind, case, after, limit + 1)
            .await
            .map_err(Status::from)?;
        let next_page_token = if listed.len() > limit as usize {
            PageToken::encode(&listed[limit as usize - 1].0.id)
        } else {
            String::new()
        };
        let now = now_micros();
        let mut rendered = Vec::new();
        for (registration, revision) in listed.into_iter().take(limit as usize) {
            let item = render(&registration, revision, self.open_conflicts(&registration).await, now);
            if page.states.is_empty() || page.states.contains(&state(&item)) {
                rendered.push(item);
            }
        }
        Ok((rendered, next_page_token))
    }
}

fn check_case_reference(case: &str, field: &str, violations: &mut FieldViolations) {
    violations.check(case.is_empty(), field, "is required: the case this registration belongs to");
    violations.check(case.chars().count() > 100, field, "must be at most 100 characters");
}

#[tonic::async_trait]
impl DeconflictionService for DeconflictionApi {
    type WatchEscalationsStream = tonic::codegen::BoxStream<WatchEscalationsResponse>;

    type WatchConflictsStream = tonic::codegen::BoxStream<WatchConflictsResponse>;

    async fn create_target(
        &self,
        request: Request<CreateTargetRequest>,
    ) -> Result<Response<CreateTargetResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let target = request.target.unwrap_or_default();
        let receipt = self
            .create(&caller, request.request_id, "CreateTarget", |violations| {
                self.target(&caller, &target, "target.", violations)
            })
            .await?;
        Ok(Response::new(CreateTargetResponse {
            target: Some(render::target(&receipt.registration, receipt.revision, receipt.open, now_micros())),
            status: receipt.status as i32,
            conflicts: receipt.conflicts,
        }))
    }

    async fn get_target(
        &self,
        request: Request<GetTargetRequest>,
    ) -> Result<Response<GetTargetResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let (registration, revision) =
            self.own(&caller, number(&request.get_ref().name, "targets")?, Kind::Target).await?;
        let open = self.open_conflicts(&registration).await;
        Ok(Response::new(GetTargetResponse {
            target: Some(render::target(&registration, revision, open, now_micros())),
        }))
    }

    async fn list_targets(
        &self,
        request: Request<ListTargetsRequest>,
    ) -> Result<Response<ListTargetsResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let page = Page {
            size: request.page_size,
            token: &request.page_token,
            case: &request.case_reference,
            states: &request.states,
        };
        let (targets, next_page_token) =
            self.list_own(&caller, "target", page, render::target, |t| t.state).await?;
        Ok(Response::new(ListTargetsResponse { targets, next_page_token }))
    }

    async fn update_target(
        &self,
        request: Request<UpdateTargetRequest>,
    ) -> Result<Response<UpdateTargetResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let update = request.target.unwrap_or_default();
        let (current, revision) = self.own(&caller, number(&update.name, "targets")?, Kind::Target).await?;
        if !update.etag.is_empty() && update.etag != render::etag(revision) {
            return Err(Error::Aborted(update.name).into());
        }
        let paths = request.update_mask.map(|m| m.paths).unwrap_or_default();
        let mut violations = FieldViolations::new();
        violations.check(paths.is_empty(), "update_mask", "name at least one field to change");
        let submitted = self.target(&caller, &update, "target.", &mut FieldViolations::new());
        let mut updated = current.clone();
        for path in &paths {
            match path.as_str() {
                "case_agent" => updated.case_agent = submitted.case_agent.clone(),
                "duty_desk" => updated.duty_desk = submitted.duty_desk.clone(),
                "officer_safety_flags" => {
                    updated.officer_safety_flags = submitted.officer_safety_flags.clone()
                }
                "selectors" | "selector_digests" | "persons" | "person_digests" => {
                    // Raw values are never kept, so identifiers are replaced as a whole set.
                    let identifiers = intake::identifiers(
                        self.service.key(),
                        "target.",
                        &update.selectors,
                        &update.selector_digests,
                        &update.persons,
                        &update.person_digests,
                        self.service.rules(),
                        &mut violations,
                    );
                    updated.selectors = identifiers.selectors;
                    updated.persons = identifiers.persons;
                }
                other => violations.add("update_mask", format!("{other:?} cannot be changed here")),
            }
        }
        violations.into_result()?;
        updated.update_time_us = now_micros();
        let registered = self.reregister(&caller, "UpdateTarget", updated, revision).await?;
        let open = self.open_conflicts(&registered.registration).await;
        Ok(Response::new(UpdateTargetResponse {
            target: Some(render::target(&registered.registration, registered.revision, open, now_micros())),
            new_conflicts: self.render_conflicts(&registered.conflicts, &caller.agency).await,
        }))
    }

    async fn renew_target(
        &self,
        request: Request<RenewTargetRequest>,
    ) -> Result<Response<RenewTargetResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let (registration, revision) =
            self.own(&caller, number(&request.name, "targets")?, Kind::Target).await?;
        if !request.etag.is_empty() && request.etag != render::etag(revision) {
            return Err(Error::Aborted(request.name).into());
        }
        let registered = self
            .renew(&caller, registration, revision, request.expire_time.as_ref().map(micros_from_timestamp))
            .await?;
        let open = self.open_conflicts(&registered.registration).await;
        Ok(Response::new(RenewTargetResponse {
            target: Some(render::target(&registered.registration, registered.revision, open, now_micros())),
            new_conflicts: self.render_conflicts(&registered.conflicts, &caller.agency).await,
        }))
    }

    async fn renew_case_targets(
        &self,
        request: Request<RenewCaseTargetsRequest>,
    ) -> Result<Response<RenewCaseTargetsResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let case = request.case_reference.trim();
        let listed = self
            .service
            .store
            .list_registrations(&caller.agency, "target", Some(case), 0, 10_000)
            .await
            .map_err(Status::from)?;
        let now = now_micros();
        let renewable: Vec<_> = listed
            .into_iter()
            .filter(|(r, _)| r.state == State::Active && (request.include_expired || r.expire_time_us > now))
            .collect();
        if renewable.is_empty() {
            return Err(Error::NotFound(format!("renewable targets of case {case:?}")).into());
        }
        let mut targets = Vec::new();
        let mut new_conflicts = Vec::new();
        for (registration, revision) in renewable {
            let registered = self
                .renew(
                    &caller,
                    registration,
                    revision,
                    request.expire_time.as_ref().map(micros_from_timestamp),
                )
                .await?;
            new_conflicts.extend(self.render_conflicts(&registered.conflicts, &caller.agency).await);
            let open = self.open_conflicts(&registered.registration).await;
            targets.push(render::target(&registered.registration, registered.revision, open, now));
        }
        Ok(Response::new(RenewCaseTargetsResponse { targets, new_conflicts }))
    }

    async fn withdraw_target(
        &self,
        request: Request<WithdrawTargetRequest>,
    ) -> Result<Response<WithdrawTargetResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let (mut registration, revision) =
            self.own(&caller, number(&request.name, "targets")?, Kind::Target).await?;
        if registration.state != State::Active {
            return Err(Error::precondition("TARGET_WITHDRAWN", "the target is already withdrawn").into());
        }
        let now = now_micros();
        registration.state = State::Withdrawn;
        registration.withdrawal_reason = request.reason;
        registration.withdraw_time_us = Some(now);
        registration.update_time_us = now;
        let registered = self.reregister(&caller, "WithdrawTarget", registration, revision).await?;
        Ok(Response::new(WithdrawTargetResponse {
            target: Some(render::target(&registered.registration, registered.revision, 0, now)),
        }))
    }

    async fn create_operation(
        &self,
        request: Request<CreateOperationRequest>,
    ) -> Result<Response<CreateOperationResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let operation = request.operation.unwrap_or_default();
        let receipt = self
            .create(&caller, request.request_id, "CreateOperation", |violations| {
                self.operation(&caller, &operation, "operation.", violations)
            })
            .await?;
        Ok(Response::new(CreateOperationResponse {
            operation: Some(render::operation(
                &receipt.registration,
                receipt.revision,
                receipt.open,
                now_micros(),
            )),
            status: receipt.status as i32,
            conflicts: receipt.conflicts,
        }))
    }

    async fn get_operation(
        &self,
        request: Request<GetOperationRequest>,
    ) -> Result<Response<GetOperationResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let (registration, revision) =
            self.own(&caller, number(&request.get_ref().name, "operations")?, Kind::Operation).await?;
        let open = self.open_conflicts(&registration).await;
        Ok(Response::new(GetOperationResponse {
            operation: Some(render::operation(&registration, revision, open, now_micros())),
        }))
    }

    async fn list_operations(
        &self,
        request: Request<ListOperationsRequest>,
    ) -> Result<Response<ListOperationsResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let page = Page {
            size: request.page_size,
            token: &request.page_token,
            case: &request.case_reference,
            states: &request.states,
        };
        let (operations, next_page_token) =
            self.list_own(&caller, "operation", page, render::operation, |o| o.state).await?;
        Ok(Response::new(ListOperationsResponse { operations, next_page_token }))
    }

    async fn update_operation(
        &self,
        request: Request<UpdateOperationRequest>,
    ) -> Result<Response<UpdateOperationResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let update = request.operation.unwrap_or_default();
        let (current, revision) =
            self.own(&caller, number(&update.name, "operations")?, Kind::Operation).await?;
        if !update.etag.is_empty() && update.etag != render::etag(revision) {
            return Err(Error::Aborted(update.name).into());
        }
        if current.state != State::Active {
            return Err(
                Error::precondition("OPERATION_CANCELLED", "a cancelled operation cannot change").into()
            );
        }
        // Place, time and contacts are replaced by the submitted operation as a whole, checked
        // like a new one.
        let mut violations = FieldViolations::new();
        let submitted = self.operation(&caller, &update, "operation.", &mut violations);
        violations.into_result()?;
        let updated = Registration {
            id: current.id,
            number: current.number.clone(),
            create_time_us: current.create_time_us,
            update_time_us: now_micros(),
            ..submitted
        };
        let registered = self.reregister(&caller, "UpdateOperation", updated, revision).await?;
        let open = self.open_conflicts(&registered.registration).await;
        Ok(Response::new(UpdateOperationResponse {
            operation: Some(render::operation(
                &registered.registration,
                registered.revision,
                open,
                now_micros(),
            )),
            new_conflicts: self.render_conflicts(&registered.conflicts, &caller.agency).await,
        }))
    }

    async fn cancel_operation(
        &self,
        request: Request<CancelOperationRequest>,
    ) -> Result<Response<CancelOperationResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let (mut registration, revision) =
            self.own(&caller, number(&request.name, "operations")?, Kind::Operation).await?;
        if registration.state != State::Active {
            return Err(
                Error::precondition("OPERATION_CANCELLED", "the operation is already cancelled").into()
            );
        }
        let now = now_micros();
        registration.state = State::Cancelled;
        registration.withdraw_time_us = Some(now);
        registration.update_time_us = now;
        let registered = self.reregister(&caller, "CancelOperation", registration, revision).await?;
        Ok(Response::new(CancelOperationResponse {
            operation: Some(render::operation(&registered.registration, registered.revision, 0, now)),
        }))
    }

    async fn check_case(
        &self,
        request: Request<CheckCaseRequest>,
    ) -> Result<Response<CheckCaseResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        agency_member(&caller)?;
        let request = request.into_inner();
        let rules = self.service.rules();
        let mut violations = FieldViolations::new();
        check_case_reference(request.case_reference.trim(), "case_reference", &mut violations);
        violations.check(
            request.targets.len() > rules.max_targets_per_check,
            "targets",
            &format!("at most {} targets per check", rules.max_targets_per_check),
        );
        violations.check(
            request.operations.len() > rules.max_operations_per_check,
            "operations",
            &format!("at most {} operations per check", rules.max_operations_per_check),
        );
        violations.check(
            request.targets.is_empty() && request.operations.is_empty(),
            "targets",
            "send at least one target or operation",
        );
        let mut submitted = Vec::new();
        for (index, target) in request.targets.iter().enumerate() {
            let mut target = target.clone();
            target.case_reference = request.case_reference.clone();
            submitted.push(self.target(&caller, &target, &format!("targets[{index}]."), &mut violations));
        }
        for (index, operation) in request.operations.iter().enumerate() {
            let mut operation = operation.clone();
            operation.case_reference = request.case_reference.clone();
            submitted.push(self.operation(
                &caller,
                &operation,
                &format!("operations[{index}]."),
                &mut violations,
            ));
        }
        violations.into_result()?;

        let now = now_micros();
        let mut target_results = Vec::new();
        let mut operation_results = Vec::new();
        let mut any_conflict = false;
        if request.validate_only {
            let checked = self
                .service
                .dry_run(&caller, &format!("{SERVICE}CheckCase"), &submitted)
                .await
                .map_err(Status::from)?;
            for (registration, hits) in submitted.iter().zip(checked) {
                any_conflict |= !hits.is_empty();
                let status = if hits.is_empty() {
                    ReceiptStatus::CheckedWithoutConflict
                } else {
                    ReceiptStatus::CheckedWithConflict
                };
                // A dry run stores no conflict; it shows who to call.
                let own = Arc::new(registration.clone());
                let rendered = hits
                    .iter()
                    .map(|hit| {
                        render::conflict(
                            &Conflict::found(registration, hit, now),
                            0,
                            Some(&caller.agency),
                            &[Some(hit.other.clone()), Some(own.clone())],
                        )
                    })
                    .collect();
                match registration.kind {
                    Kind::Operation => operation_results.push(OperationCheckResult {
                        operation: Some(render::operation(registration, 0, hits.len() as i32, now)),
                        status: status as i32,
                        conflicts: rendered,
                    }),
                    _ => target_results.push(TargetCheckResult {
                        target: Some(render::target(registration, 0, hits.len() as i32, now)),
                        status: status as i32,
                        conflicts: rendered,
                    }),
                }
            }
        } else {
            let batch = submitted.into_iter().map(|registration| (registration, None, None)).collect();
            let registered = self
                .service
                .register(&caller, &format!("{SERVICE}CheckCase"), batch)
                .await
                .map_err(Status::from)?;
            for registered in registered {
                any_conflict |= !registered.conflicts.is_empty();
                let status = status_for(&registered) as i32;
                let conflicts = self.render_conflicts(&registered.conflicts, &caller.agency).await;
                let open = registered.conflicts.len() as i32;
                match registered.registration.kind {
                    Kind::Operation => operation_results.push(OperationCheckResult {
                        operation: Some(render::operation(
                            &registered.registration,
                            registered.revision,
                            open,
                            now,
                        )),
                        status,
                        conflicts,
                    }),
                    _ => target_results.push(TargetCheckResult {
                        target: Some(render::target(
                            &registered.registration,
                            registered.revision,
                            open,
                            now,
                        )),
                        status,
                        conflicts,
                    }),
                }
            }
        }
        let status = match (request.validate_only, any_conflict) {
            (true, false) => ReceiptStatus::CheckedWithoutConflict,
            (true, true) => ReceiptStatus::CheckedWithConflict,
            (false, false) => ReceiptStatus::AcceptedWithoutConflict,
            (false, true) => ReceiptStatus::AcceptedWithConflict,
        };
        let mut existing_conflicts = Vec::new();
        if request.include_existing_conflicts {
            let case = request.case_reference.trim();
            for kind in ["target", "operation"] {
                let own = self
                    .service
                    .store
                    .list_registrations(&caller.agency, kind, Some(case), 0, 10_000)
                    .await
                    .map_err(Status::from)?;
                for (registration, _) in own {
                    for (conflict, revision) in
                        self.service.store.conflicts_of(registration.id).await.map_err(Status::from)?
                    {
                        existing_conflicts
                            .push(self.render_conflict(&conflict, revision, Some(&caller.agency)).await);
                    }
                }
            }
        }
        Ok(Response::new(CheckCaseResponse {
            status: status as i32,
            target_results,
            operation_results,
            existing_conflicts,
        }))
    }

    async fn get_matching_rules(
        &self,
        request: Request<GetMatchingRulesRequest>,
    ) -> Result<Response<GetMatchingRulesResponse>, Status> {
        Caller::of(&request)?;
        Ok(Response::new(GetMatchingRulesResponse { rules: Some(rules_to_proto(&self.service)) }))
    }

    async fn get_conflict(
        &self,
        request: Request<GetConflictRequest>,
    ) -> Result<Response<GetConflictResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let number = number(&request.get_ref().name, "conflicts")?;
        let (conflict, revision) = self.service.conflict(&caller, number).await.map_err(Status::from)?;
        let viewer = conflict.party_of(&caller.agency).map(|p| p.agency.clone());
        Ok(Response::new(GetConflictResponse {
            conflict: Some(self.render_conflict(&conflict, revision, viewer.as_deref()).await),
        }))
    }

    async fn list_conflicts(
        &self,
        request: Request<ListConflictsRequest>,
    ) -> Result<Response<ListConflictsResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        if request.all_agencies && !sees_all(&caller) {
            return Err(Error::PermissionDenied {
                reason: "NOT_CENTER_STAFF",
                message: "all_agencies is for center administrators and auditors".into(),
            }
            .into());
        }
        let limit = page_size(request.page_size, 50, 500)?;
        let before: i64 = PageToken::decode(&request.page_token)?.unwrap_or(i64::MAX);
        let agency = if request.all_agencies { None } else { Some(caller.agency.as_str()) };
        let listed =
            self.service.store.list_conflicts(agency, before, limit + 1).await.map_err(Status::from)?;
        let next_page_token = if listed.len() > limit as usize {
            PageToken::encode(&listed[limit as usize - 1].0.id)
        } else {
            String::new()
        };
        let mut conflicts = Vec::new();
        for (conflict, revision) in listed.into_iter().take(limit as usize) {
            let rendered = self.render_conflict(&conflict, revision, Some(&caller.agency)).await;
            let unacknowledged =
                conflict.party_of(&caller.agency).is_some_and(|p| p.acknowledge_time_us.is_none());
            let keep = (request.states.is_empty() || request.states.contains(&rendered.state))
                && (request.sources.is_empty() || request.sources.contains(&rendered.source))
                && (!request.unacknowledged_only || unacknowledged)
                && (!request.escalated_only || rendered.escalate_time.is_some());
            if keep {
                conflicts.push(rendered);
            }
        }
        Ok(Response::new(ListConflictsResponse { conflicts, next_page_token }))
    }

    async fn acknowledge_conflict(
        &self,
        request: Request<AcknowledgeConflictRequest>,
    ) -> Result<Response<AcknowledgeConflictResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let user = caller.user.clone().unwrap_or_default();
        let note = request.note.clone();
        let (conflict, revision) = self
            .service
            .change_conflict(
                &caller,
                number(&request.name, "conflicts")?,
                "",
                ACKNOWLEDGED,
                |conflict, now| conflict.acknowledge(&caller.agency, &user, &note, now),
            )
            .await
            .map_err(Status::from)?;
        Ok(Response::new(AcknowledgeConflictResponse {
            conflict: Some(self.render_conflict(&conflict, revision, Some(&caller.agency)).await),
        }))
    }

    async fn record_conflict_outcome(
        &self,
        request: Request<RecordConflictOutcomeRequest>,
    ) -> Result<Response<RecordConflictOutcomeResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        if request.note.chars().count() > self.service.rules().max_note_chars {
            return Err(Error::invalid("note", "must be at most 2000 characters").into());
        }
        let user = caller.user.clone().unwrap_or_default();
        let (conflict, revision) = self
            .service
            .change_conflict(
                &caller,
                number(&request.name, "conflicts")?,
                &request.etag,
                OUTCOME_RECORDED,
                |conflict, now| {
                    conflict.record_outcome(
                        Outcome {
                            outcome: request.outcome,
                            note: request.note.clone(),
                            deferring_agency: request
                                .deferring_agency
                                .trim_start_matches("agencies/")
                                .to_owned(),
                            recorded_by_agency: caller.agency.clone(),
                            recorded_by_user: user.clone(),
                            record_time_us: now,
                        },
                        now,
                    )
                },
            )
            .await
            .map_err(Status::from)?;
        Ok(Response::new(RecordConflictOutcomeResponse {
            conflict: Some(self.render_conflict(&conflict, revision, Some(&caller.agency)).await),
        }))
    }

    async fn watch_conflicts(
        &self,
        request: Request<WatchConflictsRequest>,
    ) -> Result<Response<BoxStream<WatchConflictsResponse>>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let (sender, receiver) = mpsc::channel(64);
        let api = self.clone();
        tokio::spawn(async move {
            let mut sequence = request.after_sequence;
            let mut last_sent = std::time::Instant::now();
            loop {
                let events = match api.service.store.events_after(&caller.agency, sequence, 100).await {
                    Ok(events) => events,
                    Err(error) => {
                        let _ = sender.send(Err(Status::from(error))).await;
                        return;
                    }
                };
                let mut page = Vec::with_capacity(events.len());
                for event in events {
                    sequence = event.sequence;
                    if !request.event_types.is_empty() && !request.event_types.contains(&event.event_type) {
                        continue;
                    }
                    // A check hit names no conflict (id 0): the notification carries none.
                    let conflict = api.service.store.conflict(event.conflict_id).await.ok().flatten();
                    page.push((event, conflict));
                }
                let delivered: Vec<_> =
                    page.iter().map(|(event, conflict)| (event, conflict.as_ref().map(|(c, _)| c))).collect();
                if let Err(error) = api
                    .service
                    .record_deliveries(&caller, &format!("{SERVICE}WatchConflicts"), &delivered)
                    .await
                {
                    let _ = sender.send(Err(Status::from(error))).await;
                    return;
                }
                for (event, conflict) in page {
                    let conflict = match conflict {
                        Some((conflict, revision)) => {
                            Some(api.render_conflict(&conflict, revision, Some(&caller.agency)).await)
                        }
                        None => None,
                    };
                    let message = WatchConflictsResponse {
                        sequence: event.sequence,
                        event_type: event.event_type,
                        event_time: Some(interlock_rpc::timestamp_from_micros(event.time_us)),
                        conflict,
                        actor_agency: if event.actor_agency.is_empty() {
                            String::new()
                        } else {
                            format!("agencies/{}", event.actor_agency)
                        },
                    };
                    if sender.send(Ok(message)).await.is_err() {
                        return;
                    }
                    last_sent = std::time::Instant::now();
                }
                if last_sent.elapsed() >= HEARTBEAT {
                    let heartbeat = WatchConflictsResponse {
                        sequence,
                        event_type: ConflictEventType::Heartbeat as i32,
                        ..WatchConflictsResponse::default()
                    };
                    if sender.send(Ok(heartbeat)).await.is_err() {
                        return;
                    }
                    last_sent = std::time::Instant::now();
                }
                tokio::select! {
                    () = tokio::time::sleep(api.service.config.poll_interval) => {},
                    () = sender.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn watch_escalations(
        &self,
        request: Request<WatchEscalationsRequest>,
    ) -> Result<Response<BoxStream<WatchEscalationsResponse>>, Status> {
        let caller = Caller::of(&request)?.clone();
        caller.require_any_role(&[Role::CenterAdministrator])?;
        let mut sequence = request.into_inner().after_sequence;
        let (sender, receiver) = mpsc::channel(64);
        let api = self.clone();
        tokio::spawn(async move {
            loop {
                let events = match api.service.store.events_after("", sequence, 100).await {
                    Ok(events) => events,
                    Err(error) => {
                        let _ = sender.send(Err(Status::from(error))).await;
                        return;
                    }
                };
                let mut page = Vec::with_capacity(events.len());
                for event in events {
                    sequence = event.sequence;
                    if let Ok(Some(conflict)) = api.service.store.conflict(event.conflict_id).await {
                        page.push((event, conflict));
                    }
                }
                let delivered: Vec<_> =
                    page.iter().map(|(event, (conflict, _))| (event, Some(conflict))).collect();
                if let Err(error) = api
                    .service
                    .record_deliveries(&caller, &format!("{SERVICE}WatchEscalations"), &delivered)
                    .await
                {
                    let _ = sender.send(Err(Status::from(error))).await;
                    return;
                }
                for (event, (conflict, revision)) in page {
                    let message = WatchEscalationsResponse {
                        sequence: event.sequence,
                        event_type: event.event_type,
                        event_time: Some(interlock_rpc::timestamp_from_micros(event.time_us)),
                        unacknowledged_agencies: conflict
                            .unacknowledged()
                            .iter()
                            .map(|a| format!("agencies/{a}"))
                            .collect(),
                        conflict: Some(api.render_conflict(&conflict, revision, None).await),
                    };
                    if sender.send(Ok(message)).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(api.service.config.poll_interval) => {},
                    () = sender.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn get_participation_report(
        &self,
        request: Request<GetParticipationReportRequest>,
    ) -> Result<Response<GetParticipationReportResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let now = now_micros();
        let end = request.end_time.as_ref().map_or(now, micros_from_timestamp);
        let start = request
            .start_time
            .as_ref()
            .map_or(end - 30 * crate::domain::rules::DAY_US, micros_from_timestamp);
        if end <= start {
            return Err(Error::invalid("end_time", "must be after start_time").into());
        }
        let agencies: Vec<String> = if request.agencies.is_empty() {
            vec![caller.agency.clone()]
        } else {
            request.agencies.iter().map(|a| a.trim_start_matches("agencies/").to_owned()).collect()
        };
        if agencies.iter().any(|a| *a != caller.agency) && !sees_all(&caller) {
            return Err(Error::PermissionDenied {
                reason: "NOT_CENTER_STAFF",
                message: "only center staff see other agencies' figures".into(),
            }
            .into());
        }
        let mut reports = Vec::new();
        for agency in agencies {
            reports.push(
                crate::report::participation(&self.service, &agency, start, end)
                    .await
                    .map_err(Status::from)?,
            );
        }
        Ok(Response::new(GetParticipationReportResponse { reports }))
    }
}

/// What a dry-run hit would look like as a conflict, without storing one.
fn rules_to_proto(service: &Deconfliction) -> MatchingRules {
    let rules = service.rules();
    let duration = |us: i64| Some(prost_types::Duration { seconds: us / 1_000_000, nanos: 0 });
    MatchingRules {
        operation_type_rules: rules
            .operation_types
            .iter()
            .map(|(kind, (radius, buffer))| OperationTypeRule {
                operation_type: *kind,
                default_radius_meters: *radius as i32,
                time_buffer: duration(*buffer),
            })
            .collect(),
        max_radius_meters: rules.max_radius_m as i32,
        max_operation_duration: duration(rules.max_operation_duration_us),
        max_operation_lead_time: None,
        target_lifetime: duration(rules.target_lifetime_us),
        max_target_lifetime: duration(rules.max_target_lifetime_us),
        expired_target_retention: None,
        person_matching: Some(PersonMatchingRules {
            phonetic_algorithm: PhoneticAlgorithm::DoubleMetaphone as i32,
            score_threshold: f64::from(rules.person_score_threshold),
            birth_date_required: true,
            scoring_description: interlock_selectors::SCORING_DESCRIPTION.to_owned(),
        }),
        escalation_after: duration(rules.escalation_after_us),
        watch_retention: None,
        digest_spec_version: interlock_selectors::DIGEST_SPEC_VERSION.to_owned(),
        digest_keys: vec![DigestKey {
            key_id: service.key().id().to_owned(),
            state: DigestKeyState::Current as i32,
            accept_until: None,
        }],
        limits: Some(RequestLimits {
            max_selectors_per_target: rules.max_selectors_per_target as i32,
            max_persons_per_target: rules.max_persons_per_target as i32,
            max_targets_per_check: rules.max_targets_per_check as i32,
            max_operations_per_check: rules.max_operations_per_check as i32,
            max_note_length: rules.max_note_chars as i32,
            max_records_per_batch: 1000,
        }),
    }
}

#[tonic::async_trait]
impl RecordSelectorService for DeconflictionApi {
    async fn register_record_selectors(
        &self,
        request: Request<RegisterRecordSelectorsRequest>,
    ) -> Result<Response<RegisterRecordSelectorsResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        caller.require_any_role(&[Role::MeshService])?;
        let request = request.into_inner();
        if request.records.len() > 1000 {
            return Err(Error::invalid("records", "at most 1000 records per call").into());
        }
        let now = now_micros();
        let mut violations = FieldViolations::new();
        let mut batch = Vec::new();
        let mut results = Vec::new();
        for (index, set) in request.records.iter().enumerate() {
            let prefix = format!("records[{index}].");
            violations.check(
                !set.record.starts_with("records/"),
                &format!("{prefix}record"),
                "must be a record resource name",
            );
            let identifiers = intake::identifiers(
                self.service.key(),
                &prefix,
                &set.selectors,
                &set.selector_digests,
                &set.persons,
                &set.person_digests,
                self.service.rules(),
                &mut violations,
            );
            let owner = set.owner_agency.trim_start_matches("agencies/").to_owned();
            let existing =
                self.service.store.registration_by_number(&set.record).await.map_err(Status::from)?;
            let mut registration = Registration {
                id: existing.as_ref().map_or(0, |(r, _)| r.id),
                number: set.record.clone(),
                kind: Kind::Record,
                agency: owner,
                case_reference: String::new(),
                case_agent: intake::contact(set.owner_contact.clone()),
                duty_desk: intake::contact(set.owner_contact.clone()),
                on_scene_contact: None,
                officer_safety_flags: Vec::new(),
                key_id: self.service.key().id().to_owned(),
                selectors: identifiers.selectors,
                persons: identifiers.persons,
                operation: None,
                related_targets: Vec::new(),
                expire_time_us: set.expire_time.as_ref().map_or(i64::MAX, micros_from_timestamp),
                state: State::Active,
                withdrawal_reason: 0,
                // The record version orders re-registrations: an older one is ignored.
                renew_count: set.record_version as i32,
                create_time_us: existing.as_ref().map_or(now, |(r, _)| r.create_time_us),
                update_time_us: now,
                withdraw_time_us: None,
            };
            let stale = existing.as_ref().is_some_and(|(r, _)| i64::from(r.renew_count) > set.record_version);
            results.push(RecordSelectorResult {
                record: set.record.clone(),
                applied: !stale,
                conflicts_found: 0,
            });
            if !stale {
                registration.case_reference = String::new();
                batch.push((registration, existing.map(|(_, revision)| revision), None));
            }
        }
        violations.into_result()?;
        let registered = self
            .service
            .register(
                &caller,
                "/interlock.deconfliction.v1.RecordSelectorService/RegisterRecordSelectors",
                batch,
            )
            .await
            .map_err(Status::from)?;
        for registered in registered {
            if let Some(result) = results.iter_mut().find(|r| r.record == registered.registration.number) {
                result.conflicts_found = registered.conflicts.len() as i32;
            }
        }
        Ok(Response::new(RegisterRecordSelectorsResponse { results }))
    }

    async fn withdraw_record_selectors(
        &self,
        request: Request<WithdrawRecordSelectorsRequest>,
    ) -> Result<Response<WithdrawRecordSelectorsResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        caller.require_any_role(&[Role::MeshService])?;
        let now = now_micros();
        let mut batch = Vec::new();
        for record in &request.get_ref().records {
            if let Some((mut registration, revision)) =
                self.service.store.registration_by_number(record).await.map_err(Status::from)?
                && registration.state == State::Active
            {
                registration.state = State::Withdrawn;
                registration.withdraw_time_us = Some(now);
                batch.push((registration, Some(revision), None));
            }
        }
        let withdrawn_count = batch.len() as i32;
        self.service
            .register(
                &caller,
                "/interlock.deconfliction.v1.RecordSelectorService/WithdrawRecordSelectors",
                batch,
            )
            .await
            .map_err(Status::from)?;
        Ok(Response::new(WithdrawRecordSelectorsResponse { withdrawn_count }))
    }
}
