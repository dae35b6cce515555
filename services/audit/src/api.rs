//! gRPC handlers: decode, authorize, call the domain and the store, map errors. Nothing else.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use interlock_api::audit::v1::audit_service_server::{AuditService, AuditServiceServer};
use interlock_api::audit::v1::{
    self as pb, Action, AppendEventResult, AppendEventsRequest, AppendEventsResponse, AuditEvent, EventView,
    ExportEventsRequest, ExportEventsResponse, GetCheckpointRequest, GetCheckpointResponse,
    GetConsistencyProofRequest, GetConsistencyProofResponse, GetEventRequest, GetEventResponse,
    GetInclusionProofRequest, GetInclusionProofResponse, GetLatestCheckpointRequest,
    GetLatestCheckpointResponse, GetLeafHashesRequest, GetLeafHashesResponse, GetLogInfoRequest,
    GetLogInfoResponse, InterlockService, ListCheckpointsRequest, ListCheckpointsResponse, ListEventsRequest,
    ListEventsResponse, LogInfo, Outcome, get_inclusion_proof_request,
};
use interlock_auth::{Caller, Role};
use interlock_rpc::{
    FieldViolations, PageToken, micros_from_timestamp, now_micros, page_size, timestamp_from_micros,
};
use prost::Message;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};

use crate::Audit;
use crate::domain::checkpoint::verify_note;
use crate::domain::event::{
    self, MAX_BATCH, MAX_EVENT_BYTES, Reader, StoredEvent, event_id_from_name, present,
};
use crate::error::{Error, Result};
use crate::merkle::{Hash, Plan};
use crate::store::{EventQuery, StoredCheckpoint};

/// Events per ExportEvents message.
const EXPORT_CHUNK: u32 = 1_000;

pub(crate) fn server(audit: Arc<Audit>) -> AuditServiceServer<AuditApi> {
    AuditServiceServer::new(AuditApi { audit })
}

pub struct AuditApi {
    audit: Arc<Audit>,
}

fn invalid(field: &str, description: &str) -> Error {
    let mut violations = FieldViolations::new();
    violations.add(field, description);
    Error::InvalidArgument(violations)
}

fn role_required(message: &str) -> Error {
    Error::PermissionDenied { reason: "AUDIT_ROLE_REQUIRED", message: message.to_owned() }
}

/// Who reads event content: center auditors everything, agency administrators their view.
fn reader(caller: &Caller) -> Result<Reader> {
    if caller.has_role(Role::CenterAuditor) {
        Ok(Reader::Auditor)
    } else if caller.has_role(Role::AgencyAdministrator) {
        Ok(Reader::Agency(caller.agency_name()))
    } else {
        Err(role_required("reading audit events needs ROLE_CENTER_AUDITOR or ROLE_AGENCY_ADMINISTRATOR"))
    }
}

fn with_leaf_data(view: i32) -> bool {
    view == EventView::WithLeafData as i32
}

/// The filter as a store query for `reader`, after checking it.
fn event_query(filter: &pb::EventFilter, reader: &Reader) -> Result<EventQuery> {
    let mut violations = FieldViolations::new();
    let text = |value: &str| Some(value.to_owned()).filter(|v| !v.is_empty());
    let start_time_us = filter.start_time.as_ref().map(micros_from_timestamp);
    let end_time_us = filter.end_time.as_ref().map(micros_from_timestamp);
    if let (Some(start), Some(end)) = (start_time_us, end_time_us) {
        violations.check(end <= start, "filter.end_time", "must be after filter.start_time");
    }
    violations.check(
        filter.exclude_own_actions && filter.resource_owner.is_empty(),
        "filter.exclude_own_actions",
        "requires filter.resource_owner",
    );
    violations.check(
        filter.actions.iter().any(|a| Action::try_from(*a).is_err()),
        "filter.actions",
        "holds an unknown Action",
    );
    violations.check(
        filter.outcomes.iter().any(|o| Outcome::try_from(*o).is_err()),
        "filter.outcomes",
        "holds an unknown Outcome",
    );
    violations.check(
        filter.services.iter().any(|s| InterlockService::try_from(*s).is_err()),
        "filter.services",
        "holds an unknown InterlockService",
    );
    if !violations.is_empty() {
        return Err(Error::InvalidArgument(violations));
    }
    Ok(EventQuery {
        visible_to: match reader {
            Reader::Auditor => None,
            Reader::Agency(agency) => Some(agency.clone()),
        },
        actor_agency: text(&filter.actor_agency),
        actor_user: text(&filter.actor_user),
        resource: text(&filter.resource),
        resource_owner: text(&filter.resource_owner),
        agreement: text(&filter.agreement),
        actions: filter.actions.clone(),
        outcomes: filter.outcomes.clone(),
        services: filter.services.clone(),
        start_time_us,
        end_time_us,
        start_leaf: filter.start_leaf_index,
        end_leaf: Some(filter.end_leaf_index).filter(|end| *end > 0),
        trace_id: text(&filter.trace_id),
        case_reference: text(&filter.case_reference),
        exclude_own_actions: filter.exclude_own_actions,
        descending: false,
        limit: 0,
    })
}

/// Ties a page or resume token to the request that produced it, so a token cannot be replayed
/// with another filter.
fn request_digest(filter: &Option<pb::EventFilter>, extra: &str, view: i32) -> String {
    let mut hasher = Sha256::new();
    hasher.update(filter.clone().unwrap_or_default().encode_to_vec());
    hasher.update(extra.as_bytes());
    hasher.update(view.to_le_bytes());
    hex::encode(&hasher.finalize()[..8])
}

fn present_all(events: &[StoredEvent], reader: &Reader, view: i32) -> Result<Vec<AuditEvent>> {
    let mut shown = Vec::with_capacity(events.len());
    for stored in events {
        let event = present(stored, reader, with_leaf_data(view))
            .map_err(|_| Error::Corrupt(format!("leaf {} does not decode", stored.leaf_index)))?;
        shown.extend(event);
    }
    Ok(shown)
}

fn hashes_to_bytes(hashes: &[Hash]) -> Vec<Vec<u8>> {
    hashes.iter().map(|hash| hash.to_vec()).collect()
}

impl AuditApi {
    /// Records a read of the log before anything is returned; if it cannot be made durable the
    /// read fails (UNAVAILABLE) rather than go unaudited.
    async fn audit_read(&self, caller: &Caller, method: &str, details: Vec<(&str, String)>) -> Result<()> {
        let mut trace = [0u8; 16];
        rand_fill(&mut trace);
        let raw = AuditEvent {
            event_id: uuid::Uuid::now_v7().to_string(),
            time: Some(timestamp_from_micros(now_micros())),
            service: InterlockService::Audit as i32,
            method: format!("/interlock.audit.v1.AuditService/{method}"),
            action: Action::AuditLogAccess as i32,
            actor_agency: caller.agency_name(),
            actor_user: caller.user.clone().unwrap_or_default(),
            credential: caller.credential.clone(),
            purpose: caller.purpose.map_or(0, |p| p.to_proto() as i32),
            case_reference: caller.case_reference.clone().unwrap_or_default(),
            outcome: Outcome::Allowed as i32,
            trace_id: hex::encode(trace),
            details: details
                .into_iter()
                .filter(|(_, value)| !value.is_empty())
                .map(|(key, value)| (key.to_owned(), value))
                .collect(),
            ..Default::default()
        };
        let mut violations = FieldViolations::new();
        let retention_us = i64::try_from(self.audit.config.retention.as_micros()).unwrap_or(i64::MAX);
        let pending = event::validate(
            &raw,
            "event",
            crate::SELF_SUBMITTER,
            now_micros(),
            retention_us,
            &mut violations,
        )
        .ok_or_else(|| Error::Corrupt(format!("self-audit event invalid: {violations:?}")))?;
        self.audit.store.append(&[pending]).await?;
        Ok(())
    }

    async fn checkpoint_to_proto(&self, checkpoint: &StoredCheckpoint) -> Result<pb::Checkpoint> {
        let signer = &self.audit.signer;
        // Re-verifying our own note costs microseconds and guarantees we never hand out a
        // checkpoint whose signature does not hold.
        let verified = verify_note(&checkpoint.signed_note, signer.origin(), &signer.public_key())
            .map_err(|error| Error::Corrupt(format!("checkpoint {}: {error}", checkpoint.tree_size)))?;
        Ok(pb::Checkpoint {
            name: format!("checkpoints/{}", checkpoint.tree_size),
            origin: verified.origin.clone(),
            tree_size: checkpoint.tree_size,
            root_hash: checkpoint.root_hash.to_vec(),
            create_time: Some(timestamp_from_micros(checkpoint.create_time_us)),
            signed_note: checkpoint.signed_note.clone(),
            key_name: verified.origin,
            key_id: signer.key_id().to_vec(),
            signature: verified.signature.to_vec(),
        })
    }

    async fn latest_checkpoint(&self) -> Result<StoredCheckpoint> {
        match self.audit.store.checkpoint(None).await? {
            Some(checkpoint) => Ok(checkpoint),
            // Only before the first publication has run; sign the current tree now.
            None => self.audit.publish_checkpoint().await,
        }
    }

    /// A tree size a proof may be asked against: 0 means the latest checkpoint's.
    async fn provable_size(&self, requested: u64) -> Result<(u64, Option<StoredCheckpoint>)> {
        let latest = self.latest_checkpoint().await?;
        if requested == 0 || requested == latest.tree_size {
            return Ok((latest.tree_size, Some(latest)));
        }
        if requested > latest.tree_size {
            return Err(Error::FailedPrecondition {
                reason: "TREE_SIZE_NOT_CHECKPOINTED",
                message: format!(
                    "tree size {requested} is beyond the latest checkpoint ({}); retry after the next checkpoint",
                    latest.tree_size
                ),
            });
        }
        Ok((requested, self.audit.store.checkpoint(Some(requested)).await?))
    }

    async fn proof(&self, plan: &Plan) -> Result<Vec<Hash>> {
        let nodes = self.audit.store.nodes(&plan.nodes()).await?;
        plan.assemble(&nodes).ok_or_else(|| Error::Corrupt("tree nodes missing for a proof".into()))
    }

    async fn append_events(
        &self,
        caller: &Caller,
        request: AppendEventsRequest,
    ) -> Result<AppendEventsResponse> {
        if !caller.has_role(Role::MeshService) {
            return Err(role_required("only Interlock's services (ROLE_MESH_SERVICE) append audit events"));
        }
        if request.events.is_empty() || request.events.len() > MAX_BATCH {
            return Err(invalid("events", "must hold 1 to 1,000 events"));
        }
        let now = now_micros();
        let retention_us = i64::try_from(self.audit.config.retention.as_micros()).unwrap_or(i64::MAX);
        let mut violations = FieldViolations::new();
        let pending: Vec<_> = request
            .events
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                event::validate(
                    e,
                    &format!("events[{i}]"),
                    &caller.credential,
                    now,
                    retention_us,
                    &mut violations,
                )
            })
            .collect();
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        let outcome = self.audit.store.append(&pending).await?;
        Ok(AppendEventsResponse {
            results: outcome
                .results
                .into_iter()
                .map(|result| AppendEventResult {
                    name: format!("events/{}", result.event_id),
                    leaf_index: result.leaf_index,
                    leaf_hash: result.leaf_hash.to_vec(),
                    duplicate: result.duplicate,
                })
                .collect(),
            tree_size: outcome.tree_size,
        })
    }
}

fn rand_fill(bytes: &mut [u8]) {
    // UUIDv4s are 122 random bits from the OS generator; two of them make a 16-byte trace id.
    let a = uuid::Uuid::new_v4();
    let b = uuid::Uuid::new_v4();
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = if i % 2 == 0 { a.as_bytes()[i] } else { b.as_bytes()[i] };
    }
}

type ExportStream = Pin<Box<dyn Stream<Item = Result<ExportEventsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AuditService for AuditApi {
    type ExportEventsStream = tonic::codegen::BoxStream<ExportEventsResponse>;

    async fn append_events(
        &self,
        request: Request<AppendEventsRequest>,
    ) -> Result<Response<AppendEventsResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let response = AuditApi::append_events(self, &caller, request.into_inner()).await?;
        Ok(Response::new(response))
    }

    async fn get_event(
        &self,
        request: Request<GetEventRequest>,
    ) -> Result<Response<GetEventResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let reader = reader(&caller)?;
        caller.require_user()?;
        let request = request.into_inner();
        let event_id = event_id_from_name(&request.name)
            .ok_or_else(|| invalid("name", "must be events/{event_id} with a canonical UUID"))?;
        self.audit_read(&caller, "GetEvent", vec![("event", request.name.clone())]).await?;
        let stored = self.audit.store.get_event(event_id).await?;
        let event = match stored {
            Some(stored) => present_all(&[stored], &reader, request.view)?.pop(),
            None => None,
        };
        let event = event.ok_or_else(|| Error::NotFound(request.name.clone()))?;
        Ok(Response::new(GetEventResponse { event: Some(event) }))
    }

    async fn list_events(
        &self,
        request: Request<ListEventsRequest>,
    ) -> Result<Response<ListEventsResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let reader = reader(&caller)?;
        caller.require_user()?;
        let request = request.into_inner();
        let limit = page_size(request.page_size, 100, 1_000)?;
        let descending = match request.order_by.trim() {
            "" | "leaf_index" => false,
            "leaf_index desc" => true,
            _ => return Err(invalid("order_by", "must be empty, `leaf_index` or `leaf_index desc`").into()),
        };
        let filter = request.filter.clone().unwrap_or_default();
        let mut query = event_query(&filter, &reader)?;
        let digest = request_digest(&request.filter, &request.order_by, request.view);
        let cursor: Option<(u64, String)> = PageToken::decode(&request.page_token)?;
        if let Some((last, token_digest)) = cursor {
            if token_digest != digest {
                return Err(invalid(
                    "page_token",
                    "belongs to a request with another filter, order_by or view",
                )
                .into());
            }
            if descending {
                query.end_leaf = Some(query.end_leaf.map_or(last, |end| end.min(last)));
            } else {
                query.start_leaf = query.start_leaf.max(last + 1);
            }
        }
        query.descending = descending;
        query.limit = limit + 1;
        self.audit_read(&caller, "ListEvents", vec![("filter", event::describe_filter(&filter))]).await?;
        let mut stored = self.audit.store.list_events(&query).await?;
        let next_page_token = if stored.len() > limit as usize {
            stored.truncate(limit as usize);
            stored
                .last()
                .map(|last| PageToken::encode(&(last.leaf_index, digest.clone())))
                .unwrap_or_default()
        } else {
            String::new()
        };
        let events = present_all(&stored, &reader, request.view)?;
        Ok(Response::new(ListEventsResponse { events, next_page_token }))
    }

    async fn export_events(
        &self,
        request: Request<ExportEventsRequest>,
    ) -> Result<Response<ExportStream>, Status> {
        let caller = Caller::of(&request)?.clone();
        let reader = reader(&caller)?;
        caller.require_user()?;
        let request = request.into_inner();
        let filter = request.filter.clone().unwrap_or_default();
        let base = event_query(&filter, &reader)?;
        let digest = request_digest(&request.filter, "export", request.view);
        let current = self.audit.store.tree_size().await?;
        let resume: Option<(u64, u64, String)> = PageToken::decode(&request.resume_token)?;
        let (mut next, snapshot) = match resume {
            Some((next, snapshot, token_digest)) => {
                if token_digest != digest {
                    return Err(
                        invalid("resume_token", "belongs to an export with another filter or view").into()
                    );
                }
                (next, snapshot)
            }
            None if request.snapshot_tree_size > current => {
                return Err(invalid("snapshot_tree_size", "is larger than the current tree size").into());
            }
            None if request.snapshot_tree_size == 0 => (0, current),
            None => (0, request.snapshot_tree_size),
        };
        next = next.max(base.start_leaf);
        let end = base.end_leaf.map_or(snapshot, |end| end.min(snapshot));
        self.audit_read(&caller, "ExportEvents", vec![("filter", event::describe_filter(&filter))]).await?;

        let audit = self.audit.clone();
        let view = request.view;
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            loop {
                let query =
                    EventQuery { start_leaf: next, end_leaf: Some(end), limit: EXPORT_CHUNK, ..base.clone() };
                let chunk = if next >= end { Ok(Vec::new()) } else { audit.store.list_events(&query).await };
                let message = chunk.and_then(|stored| {
                    let done = stored.len() < EXPORT_CHUNK as usize;
                    next = if done { end } else { stored.last().map_or(end, |last| last.leaf_index + 1) };
                    Ok((present_all(&stored, &reader, view)?, done))
                });
                let (events, done) = match message {
                    Ok(message) => message,
                    Err(error) => {
                        let _ = sender.send(Err(Status::from(error))).await;
                        return;
                    }
                };
                let response = ExportEventsResponse {
                    events,
                    snapshot_tree_size: snapshot,
                    resume_token: PageToken::encode(&(next, snapshot, digest.clone())),
                };
                if sender.send(Ok(response)).await.is_err() || done {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))))
    }

    async fn get_log_info(
        &self,
        request: Request<GetLogInfoRequest>,
    ) -> Result<Response<GetLogInfoResponse>, Status> {
        Caller::of(&request)?;
        let store = &self.audit.store;
        let config = &self.audit.config;
        let signer = &self.audit.signer;
        let duration = |d: std::time::Duration| prost_types::Duration {
            seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nanos: d.subsec_nanos() as i32,
        };
        Ok(Response::new(GetLogInfoResponse {
            log_info: Some(LogInfo {
                name: "log".into(),
                origin: signer.origin().to_owned(),
                verifier_key: signer.verifier_key(),
                public_key: signer.public_key().to_bytes().to_vec(),
                tree_size: store.tree_size().await?,
                checkpoint_interval: Some(duration(config.checkpoint_interval)),
                retention: Some(duration(config.retention)),
                first_unpruned_leaf_index: store.first_unpruned_leaf().await?,
                max_append_batch_size: MAX_BATCH as i32,
                max_event_size_bytes: MAX_EVENT_BYTES as i32,
            }),
        }))
    }

    async fn get_latest_checkpoint(
        &self,
        request: Request<GetLatestCheckpointRequest>,
    ) -> Result<Response<GetLatestCheckpointResponse>, Status> {
        Caller::of(&request)?;
        let latest = self.latest_checkpoint().await?;
        Ok(Response::new(GetLatestCheckpointResponse {
            checkpoint: Some(self.checkpoint_to_proto(&latest).await?),
        }))
    }

    async fn get_checkpoint(
        &self,
        request: Request<GetCheckpointRequest>,
    ) -> Result<Response<GetCheckpointResponse>, Status> {
        Caller::of(&request)?;
        let name = request.into_inner().name;
        let size: u64 = name
            .strip_prefix("checkpoints/")
            .and_then(|size| size.parse().ok())
            .ok_or_else(|| invalid("name", "must be checkpoints/{tree_size}"))?;
        let checkpoint = self.audit.store.checkpoint(Some(size)).await?.ok_or(Error::NotFound(name))?;
        Ok(Response::new(GetCheckpointResponse {
            checkpoint: Some(self.checkpoint_to_proto(&checkpoint).await?),
        }))
    }

    async fn list_checkpoints(
        &self,
        request: Request<ListCheckpointsRequest>,
    ) -> Result<Response<ListCheckpointsResponse>, Status> {
        Caller::of(&request)?;
        let request = request.into_inner();
        let limit = page_size(request.page_size, 100, 1_000)?;
        let descending = match request.order_by.trim() {
            "" | "tree_size" => false,
            "tree_size desc" => true,
            _ => return Err(invalid("order_by", "must be empty, `tree_size` or `tree_size desc`").into()),
        };
        let digest = format!("{}:{}", request.start_tree_size, request.order_by);
        let cursor: Option<(u64, String)> = PageToken::decode(&request.page_token)?;
        let after = match cursor {
            Some((last, token_digest)) if token_digest == digest => Some(last),
            Some(_) => return Err(invalid("page_token", "belongs to a request with other fields").into()),
            None => None,
        };
        let mut checkpoints =
            self.audit.store.list_checkpoints(request.start_tree_size, after, descending, limit + 1).await?;
        let next_page_token = if checkpoints.len() > limit as usize {
            checkpoints.truncate(limit as usize);
            checkpoints
                .last()
                .map(|last| PageToken::encode(&(last.tree_size, digest.clone())))
                .unwrap_or_default()
        } else {
            String::new()
        };
        let mut shown = Vec::with_capacity(checkpoints.len());
        for checkpoint in &checkpoints {
            shown.push(self.checkpoint_to_proto(checkpoint).await?);
        }
        Ok(Response::new(ListCheckpointsResponse { checkpoints: shown, next_page_token }))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<GetInclusionProofRequest>,
    ) -> Result<Response<GetInclusionProofResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let leaf_index = match request.leaf {
            None => return Err(invalid("leaf", "set event or leaf_index").into()),
            Some(get_inclusion_proof_request::Leaf::LeafIndex(index)) => index,
            Some(get_inclusion_proof_request::Leaf::Event(name)) => {
                let reader = reader(&caller)?;
                let event_id = event_id_from_name(&name)
                    .ok_or_else(|| invalid("event", "must be events/{event_id} with a canonical UUID"))?;
                let stored = self.audit.store.get_event(event_id).await?;
                // Same visibility as GetEvent: an event the caller may not see is not found.
                let visible = match &stored {
                    Some(stored) => !present_all(std::slice::from_ref(stored), &reader, 0)?.is_empty(),
                    None => false,
                };
                match stored {
                    Some(stored) if visible => stored.leaf_index,
                    _ => return Err(Error::NotFound(name).into()),
                }
            }
        };
        let (tree_size, checkpoint) = self.provable_size(request.tree_size).await?;
        if leaf_index >= tree_size {
            return Err(Error::FailedPrecondition {
                reason: "LEAF_NOT_IN_TREE_SIZE",
                message: format!("leaf {leaf_index} is not in the tree of size {tree_size}"),
            }
            .into());
        }
        let hashes = self.proof(&Plan::inclusion(leaf_index, tree_size)).await?;
        let leaf = self.audit.store.nodes(&[crate::merkle::NodeId::leaf(leaf_index)]).await?;
        let leaf_hash =
            leaf.values().next().copied().ok_or_else(|| Error::Corrupt(format!("leaf {leaf_index}")))?;
        let checkpoint = match checkpoint {
            Some(checkpoint) => Some(self.checkpoint_to_proto(&checkpoint).await?),
            None => None,
        };
        Ok(Response::new(GetInclusionProofResponse {
            leaf_index,
            tree_size,
            leaf_hash: leaf_hash.to_vec(),
            hashes: hashes_to_bytes(&hashes),
            checkpoint,
        }))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<GetConsistencyProofRequest>,
    ) -> Result<Response<GetConsistencyProofResponse>, Status> {
        Caller::of(&request)?;
        let request = request.into_inner();
        let (second, checkpoint) = self.provable_size(request.second_tree_size).await?;
        if request.first_tree_size == 0 || request.first_tree_size > second {
            return Err(invalid("first_tree_size", "must be at least 1 and at most second_tree_size").into());
        }
        let hashes = self.proof(&Plan::consistency(request.first_tree_size, second)).await?;
        let second_checkpoint = match checkpoint {
            Some(checkpoint) => Some(self.checkpoint_to_proto(&checkpoint).await?),
            None => None,
        };
        Ok(Response::new(GetConsistencyProofResponse {
            first_tree_size: request.first_tree_size,
            second_tree_size: second,
            hashes: hashes_to_bytes(&hashes),
            second_checkpoint,
        }))
    }

    async fn get_leaf_hashes(
        &self,
        request: Request<GetLeafHashesRequest>,
    ) -> Result<Response<GetLeafHashesResponse>, Status> {
        Caller::of(&request)?;
        let request = request.into_inner();
        if request.max_count < 0 {
            return Err(invalid("max_count", "must not be negative").into());
        }
        let max = if request.max_count == 0 { 1_000 } else { request.max_count.min(10_000) as u64 };
        let checkpointed = self.latest_checkpoint().await?.tree_size;
        let count = checkpointed.saturating_sub(request.start_leaf_index).min(max);
        let hashes = if count == 0 {
            Vec::new()
        } else {
            self.audit.store.leaf_hashes(request.start_leaf_index, count as u32).await?
        };
        Ok(Response::new(GetLeafHashesResponse {
            start_leaf_index: request.start_leaf_index,
            leaf_hashes: hashes_to_bytes(&hashes),
            checkpointed_tree_size: checkpointed,
        }))
    }
}
