//! Writes: create-or-replace by record number (single and in ingest batches), update, delete.

use std::collections::HashMap;
use std::sync::Arc;

use interlock_api::audit::v1::Action;
use interlock_api::records::v1::{ChangeKind, IngestBatchAck, IngestRecordError, Record, WriteOutcome};
use interlock_auth::Caller;
use interlock_rpc::{FieldViolations, now_micros};
use prost::Message;
use prost_types::FieldMask;
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use super::{Records, etag, record_id, to_record};
use crate::domain::access::{Decision, RecordFacts, decide};
use crate::domain::record::{Prepared, caveats_of, prepare};
use crate::error::{Error, Result};
use crate::store::{
    AuditOf, CreateRequest, IngestProgress, REQUEST_ID_TTL_US, RecordWrite, StoredRecord, WriteBatch,
};

/// Paths UpdateRecord may name.
const UPDATABLE: [&str; 15] = [
    "category",
    "sensitivity",
    "caveats",
    "title",
    "narrative",
    "occur_time",
    "report_time",
    "source_reliability",
    "content_validity",
    "control_official",
    "last_validate_time",
    "review_by_time",
    "persons",
    "organizations",
    "selectors",
];

/// The state of one record number while a batch is being prepared: what the database holds,
/// updated by earlier records of the same batch (records are processed in order).
#[derive(Clone)]
struct Current {
    stored: StoredRecord,
    content: Record,
}

/// What became of one input record.
pub struct Written {
    pub record: Record,
    pub outcome: WriteOutcome,
}

fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// Most resources one audit event may name (the audit service's limit).
const RESOURCES_PER_EVENT: usize = 100;

/// The audit events of a batch of writes by `caller`: per action, one event naming each stored
/// version (`records/{id}/versions/{n}`, owned by the caller's agency) for up to
/// RESOURCES_PER_EVENT writes, instead of one event per record.
fn write_events(method: &'static str, caller: &Caller, writes: Vec<(Action, String)>) -> AuditOf {
    let caller = caller.clone();
    Box::new(move |versions: &[Option<i64>]| {
        let mut events = Vec::new();
        for action in [Action::Create, Action::Update, Action::Delete] {
            let resources: Vec<String> = writes
                .iter()
                .zip(versions)
                .filter(|((a, _), _)| *a == action)
                .filter_map(|((_, id), version)| Some(format!("records/{id}/versions/{}", (*version)?)))
                .collect();
            for chunk in resources.chunks(RESOURCES_PER_EVENT) {
                let mut event =
                    Records::event(method, action, &caller).detail("count", chunk.len().to_string());
                for resource in chunk {
                    event = event.resource(resource.clone(), vec![caller.agency_name()]);
                }
                events.push(event.encode());
            }
        }
        events
    })
}

/// What became of one input record, decided before the commit.
struct Decided {
    stored: StoredRecord,
    outcome: WriteOutcome,
}

/// A batch of writes decided and ready to commit.
pub struct Planned {
    /// The inputs, kept to decide again if the batch planned before this one lost a race.
    inputs: Vec<Record>,
    /// Each input's fate; those listed in `pending` hold only if their write commits.
    outcomes: Vec<Result<Decided>>,
    /// (index into `outcomes`, index into the batch's writes) of each write.
    pending: Vec<(usize, usize)>,
    batch: Option<WriteBatch>,
    /// Every record number the batch read or wrote, as the batch leaves it: what the next batch
    /// is planned against while this one commits.
    after: HashMap<String, Current>,
}

impl Records {
    /// Decides each input as the caller's record, in order: create, replace by record number,
    /// or unchanged, or a per-record error. Record numbers in `before` (the state a batch not yet
    /// committed leaves) are taken from there, the others from the database.
    async fn plan(
        &self,
        caller: &Caller,
        method: &'static str,
        inputs: Vec<Record>,
        ingest: Option<IngestProgress>,
        request: Option<(String, String)>,
        before: Option<&HashMap<String, Current>>,
    ) -> Result<Planned> {
        let owner = caller.agency.clone();
        let user = caller.user.clone().unwrap_or_default();
        let now = now_micros();
        let mut current: HashMap<String, Current> = HashMap::new();
        let mut unknown = Vec::new();
        for input in &inputs {
            match before.and_then(|b| b.get(&input.record_number)) {
                Some(known) => {
                    current.insert(input.record_number.clone(), known.clone());
                }
                None => unknown.push(input.record_number.clone()),
            }
        }
        for stored in self.store.find_numbers(&owner, &unknown).await? {
            let content = Record::decode(stored.doc.as_slice())?;
            current.insert(stored.record_number.clone(), Current { stored, content });
        }

        let mut outcomes: Vec<Result<Decided>> = Vec::with_capacity(inputs.len());
        let mut pending: Vec<(usize, usize)> = Vec::new();
        let mut writes = Vec::new();
        // The audit action and record id of each write.
        let mut audited = Vec::new();
        for input in &inputs {
            let previous = current.get(&input.record_number);
            if let Some(previous) = previous
                && !input.etag.is_empty()
                && input.etag != etag(previous.stored.version)
            {
                outcomes.push(Err(Error::Aborted));
                continue;
            }
            let live_previous = previous.filter(|p| !p.stored.deleted);
            let prepared: Prepared = match prepare(input, previous.map(|p| &p.content), now) {
                Ok(prepared) => prepared,
                Err(violations) => {
                    outcomes.push(Err(Error::InvalidArgument(violations)));
                    continue;
                }
            };
            if let Some(previous) = live_previous
                && previous.stored.content_hash == prepared.hash
            {
                outcomes
                    .push(Ok(Decided { stored: previous.stored.clone(), outcome: WriteOutcome::Unchanged }));
                continue;
            }
            let (id, expected, create_us, change, outcome) = match previous {
                None => (new_id(), None, now, ChangeKind::Created, WriteOutcome::Created),
                Some(p) => {
                    let change = if p.stored.deleted { ChangeKind::Restored } else { ChangeKind::Updated };
                    (
                        p.stored.id.clone(),
                        Some(p.stored.version),
                        p.stored.create_us,
                        change,
                        WriteOutcome::Updated,
                    )
                }
            };
            let version = expected.map_or(1, |v| v + 1);
            let action = if outcome == WriteOutcome::Created { Action::Create } else { Action::Update };
            audited.push((action, id.clone()));
            let stored = StoredRecord {
                id: id.clone(),
                owner: owner.clone(),
                record_number: input.record_number.clone(),
                category: prepared.content.category,
                sensitivity: prepared.content.sensitivity,
                caveats: prepared.caveats_mask,
                report_us: prepared.report_us,
                review_by_us: prepared.review_by_us,
                version,
                deleted: false,
                create_us,
                update_us: now,
                content_hash: prepared.hash.clone(),
                doc: prepared.doc.clone(),
            };
            current.insert(
                input.record_number.clone(),
                Current { stored: stored.clone(), content: prepared.content.clone() },
            );
            pending.push((outcomes.len(), writes.len()));
            outcomes.push(Ok(Decided { stored, outcome }));
            writes.push(RecordWrite {
                id,
                owner: owner.clone(),
                record_number: input.record_number.clone(),
                expected_version: expected,
                change: change as i32,
                prepared: Some(prepared),
                user: user.clone(),
            });
        }
        let request = match (request, pending.first(), outcomes.first()) {
            (Some((request_id, input_hash)), Some(_), Some(Ok(decided))) => Some(CreateRequest {
                owner: owner.clone(),
                request_id,
                input_hash,
                record_id: decided.stored.id.clone(),
                version: decided.stored.version,
                outcome: decided.outcome as i32,
            }),
            _ => None,
        };
        let batch = (!writes.is_empty() || ingest.is_some()).then(|| WriteBatch {
            writes,
            ingest,
            request,
            now_us: now,
            audit: write_events(method, caller, audited),
        });
        Ok(Planned { inputs, outcomes, pending, batch, after: current })
    }

    /// Commits a planned batch in one transaction: each input's fate, and whether a write was
    /// lost to another writer of the same record number (then reported as ETAG_MISMATCH).
    async fn commit(&self, planned: Planned) -> Result<(Vec<Result<Decided>>, bool)> {
        let Planned { mut outcomes, pending, batch, .. } = planned;
        let Some(batch) = batch else { return Ok((outcomes, false)) };
        let results = self.store.write(batch).await?;
        let mut raced = false;
        for (outcome_index, write_index) in pending {
            if results.get(write_index).is_none_or(Option::is_none) {
                // Someone else wrote this record number between our read and our commit.
                outcomes[outcome_index] = Err(Error::Aborted);
                raced = true;
            }
        }
        Ok((outcomes, raced))
    }

    /// Creates or replaces each input as the caller's record, in order, in one transaction.
    /// Per-record failures are returned, not raised.
    async fn write_records(
        &self,
        caller: &Caller,
        method: &'static str,
        inputs: Vec<Record>,
        request: Option<(String, String)>,
    ) -> Result<Vec<Result<Written>>> {
        let planned = self.plan(caller, method, inputs, None, request, None).await?;
        let (outcomes, _) = self.commit(planned).await?;
        outcomes
            .into_iter()
            .map(|outcome| {
                Ok(outcome.and_then(|d| Ok(Written { record: to_record(&d.stored)?, outcome: d.outcome })))
            })
            .collect()
    }

    /// CreateRecord: create, replace by record number, or leave unchanged.
    pub async fn create(&self, caller: &Caller, input: Record, request_id: &str) -> Result<Written> {
        let input_hash = hex::encode(Sha256::digest(input.encode_to_vec()));
        if !request_id.is_empty() {
            if request_id.len() > 64 {
                return Err(Error::invalid("request_id", "is at most 64 characters"));
            }
            let since = now_micros() - REQUEST_ID_TTL_US;
            if let Some(first) = self.store.create_request(&caller.agency, request_id, since).await? {
                if first.input_hash != input_hash {
                    return Err(Error::invalid_because(
                        "REQUEST_ID_REUSED",
                        "request_id",
                        "was used before with a different record",
                    ));
                }
                return self.replay(&first).await;
            }
        }
        let request = (!request_id.is_empty()).then(|| (request_id.to_owned(), input_hash));
        let mut outcomes = self.write_records(caller, "CreateRecord", vec![input], request).await?;
        match outcomes.pop() {
            Some(Ok(written)) => Ok(written),
            Some(Err(Error::InvalidArgument(violations))) => {
                let mut nested = FieldViolations::new();
                nested.extend_nested("record", violations);
                Err(Error::InvalidArgument(nested))
            }
            Some(Err(error)) => Err(error),
            None => Err(Error::Corrupt("a write produced no outcome".into())),
        }
    }

    /// The response of a create that already happened.
    async fn replay(&self, first: &CreateRequest) -> Result<Written> {
        let stored = self.store.get(&first.record_id).await?.ok_or(Error::RecordNotFound)?;
        let version = self.store.version(&first.record_id, first.version).await?;
        let mut record = to_record(&stored)?;
        if let Some(doc) = version.as_ref().and_then(|v| v.doc.as_ref()) {
            let then = StoredRecord { doc: doc.clone(), version: first.version, ..stored };
            record = to_record(&then)?;
        }
        let outcome = WriteOutcome::try_from(first.outcome).unwrap_or(WriteOutcome::Unspecified);
        Ok(Written { record, outcome })
    }

    /// The caller's own live record `name`; NOT_FOUND, or PERMISSION_DENIED (NOT_RECORD_OWNER)
    /// when the caller can read it under an agreement but does not own it.
    async fn own_record(&self, caller: &Caller, name: &str, field: &str) -> Result<(StoredRecord, Record)> {
        let id = record_id(name, field)?;
        let stored = self.store.get(id).await?.filter(|r| !r.deleted).ok_or(Error::RecordNotFound)?;
        if stored.owner != caller.agency {
            let grants = self.grants.grants_for(&caller.agency);
            let caveats = caveats_of(stored.caveats);
            let facts = RecordFacts {
                owner: &stored.owner,
                category: stored.category,
                sensitivity: stored.sensitivity,
                caveats: &caveats,
            };
            let purpose = caller.purpose.map_or(0, |p| p.to_proto() as i32);
            let visible = stored.review_by_us > now_micros()
                && !matches!(decide(&caller.agency, purpose, facts, &grants, now_micros()), Decision::Hidden);
            return Err(if visible {
                Error::denied("NOT_RECORD_OWNER", "only the owning agency may change a record")
            } else {
                Error::RecordNotFound
            });
        }
        let content = Record::decode(stored.doc.as_slice())?;
        Ok((stored, content))
    }

    /// UpdateRecord: the fields named in `mask` replaced, as a new version.
    pub async fn update(&self, caller: &Caller, input: Record, mask: Option<FieldMask>) -> Result<Record> {
        let mut v = FieldViolations::new();
        v.check(input.etag.is_empty(), "record.etag", "is required: send the etag you read");
        let paths = mask.map(|m| m.paths).unwrap_or_default();
        v.check(paths.is_empty(), "update_mask", "is required: name the fields to update, or *");
        for (i, path) in paths.iter().enumerate() {
            if path != "*" && !UPDATABLE.contains(&path.as_str()) {
                v.add(format!("update_mask.paths[{i}]"), format!("{path:?} is not an updatable field"));
            }
        }
        if !v.is_empty() {
            return Err(v.into());
        }
        let (stored, content) = self.own_record(caller, &input.name, "record.name").await?;
        if input.etag != etag(stored.version) {
            return Err(Error::Aborted);
        }
        let all = paths.iter().any(|p| p == "*");
        let named = |field: &str| all || paths.iter().any(|p| p == field);
        let mut merged = content.clone();
        macro_rules! take {
            ($($field:ident),*) => {
                $(if named(stringify!($field)) { merged.$field = input.$field.clone(); })*
            };
        }
        take!(
            category,
            sensitivity,
            caveats,
            title,
            narrative,
            occur_time,
            report_time,
            source_reliability,
            content_validity,
            control_official,
            last_validate_time,
            review_by_time,
            persons,
            organizations,
            selectors
        );
        if named("last_validate_time") && !named("review_by_time") {
            // A new validation restarts the five-year review period.
            merged.review_by_time = None;
        }
        merged.record_number = stored.record_number.clone();
        merged.etag = input.etag.clone();
        let mut outcomes = self.write_records(caller, "UpdateRecord", vec![merged], None).await?;
        match outcomes.pop() {
            Some(Ok(written)) => Ok(written.record),
            Some(Err(Error::InvalidArgument(violations))) => {
                let mut nested = FieldViolations::new();
                nested.extend_nested("record", violations);
                Err(Error::InvalidArgument(nested))
            }
            Some(Err(error)) => Err(error),
            None => Err(Error::Corrupt("an update produced no outcome".into())),
        }
    }

    /// DeleteRecord: a deletion version; the record disappears from every read.
    pub async fn delete(&self, caller: &Caller, name: &str, given_etag: &str) -> Result<()> {
        if given_etag.is_empty() {
            return Err(Error::invalid("etag", "is required: send the etag you read"));
        }
        let (stored, _) = self.own_record(caller, name, "name").await?;
        if given_etag != etag(stored.version) {
            return Err(Error::Aborted);
        }
        let write = RecordWrite {
            id: stored.id.clone(),
            owner: stored.owner.clone(),
            record_number: stored.record_number.clone(),
            expected_version: Some(stored.version),
            change: ChangeKind::Deleted as i32,
            prepared: None,
            user: caller.user.clone().unwrap_or_default(),
        };
        let audit = write_events("DeleteRecord", caller, vec![(Action::Delete, stored.id.clone())]);
        let batch =
            WriteBatch { writes: vec![write], ingest: None, request: None, now_us: now_micros(), audit };
        let results = self.store.write(batch).await?;
        match results.first() {
            Some(Some(_)) => Ok(()),
            _ => Err(Error::Aborted),
        }
    }

    /// Makes a new stream the owner of the caller's ingest job: the highest committed batch and
    /// the stream's number, which every batch of the stream must name.
    pub async fn claim_ingest(&self, caller: &Caller, ingest_id: &str) -> Result<(i64, i64)> {
        self.store.claim_ingest(&caller.agency, ingest_id, now_micros()).await
    }

    /// IngestTakenOver once another stream claimed the job after `stream`.
    pub async fn check_ingest_owner(&self, caller: &Caller, ingest_id: &str, stream: i64) -> Result<()> {
        match self.store.ingest_owner(&caller.agency, ingest_id).await? {
            Some(owner) if owner == stream => Ok(()),
            _ => Err(Error::IngestTakenOver),
        }
    }

    /// An ingest stream's commit pipeline for a job the stream claimed.
    pub fn ingest_pipeline(
        self: &Arc<Self>,
        caller: &Caller,
        ingest_id: &str,
        stream: i64,
    ) -> IngestPipeline {
        IngestPipeline {
            records: self.clone(),
            caller: caller.clone(),
            ingest_id: ingest_id.to_owned(),
            stream,
            committing: None,
        }
    }
}

/// A batch being committed in its own task, and the state it leaves.
struct Committing {
    task: JoinHandle<Result<(IngestBatchAck, bool)>>,
    after: HashMap<String, Current>,
}

/// The commits of one ingest stream: batch n+1 is decided (decoded, normalised, hashed, its
/// record numbers looked up) while batch n commits, against the state batch n leaves. Batches
/// still commit one at a time and in order, and each is acknowledged only after its commit.
pub struct IngestPipeline {
    records: Arc<Records>,
    caller: Caller,
    ingest_id: String,
    stream: i64,
    committing: Option<Committing>,
}

impl IngestPipeline {
    /// Whether a batch is committing.
    pub fn busy(&self) -> bool {
        self.committing.is_some()
    }

    /// The acknowledgement of the batch committing, once committed; never resolves when idle.
    /// Cancel-safe.
    pub async fn committed(&mut self) -> Result<IngestBatchAck> {
        let Some(committing) = self.committing.as_mut() else { return std::future::pending().await };
        let joined = (&mut committing.task).await;
        self.committing = None;
        let (ack, _) =
            joined.map_err(|error| Error::Corrupt(format!("an ingest commit failed: {error}")))??;
        Ok(ack)
    }

    /// Decides `records` as batch `batch_sequence`, waits for the batch before it (returning its
    /// acknowledgement), and starts committing this one.
    pub async fn push(
        &mut self,
        batch_sequence: i64,
        records: Vec<Record>,
    ) -> Result<Option<IngestBatchAck>> {
        let progress = || IngestProgress {
            owner: self.caller.agency.clone(),
            ingest_id: self.ingest_id.clone(),
            batch_sequence,
            stream: self.stream,
        };
        let before = self.committing.as_ref().map(|c| &c.after);
        let mut planned =
            self.records.plan(&self.caller, "IngestRecords", records, Some(progress()), None, before).await?;
        let mut ack = None;
        if let Some(committing) = self.committing.take() {
            let (previous, raced) = committing
                .task
                .await
                .map_err(|error| Error::Corrupt(format!("an ingest commit failed: {error}")))??;
            ack = Some(previous);
            if raced {
                // Planned against a state that did not commit: decide again from the database.
                let inputs = std::mem::take(&mut planned.inputs);
                planned = self
                    .records
                    .plan(&self.caller, "IngestRecords", inputs, Some(progress()), None, None)
                    .await?;
            }
        }
        let after = std::mem::take(&mut planned.after);
        let records = self.records.clone();
        let task = tokio::spawn(async move {
            let numbers: Vec<String> = planned.inputs.iter().map(|r| r.record_number.clone()).collect();
            let (outcomes, raced) = records.commit(planned).await?;
            Ok((ingest_ack(batch_sequence, &numbers, outcomes)?, raced))
        });
        self.committing = Some(Committing { task, after });
        Ok(ack)
    }
}

/// The acknowledgement of a committed batch: counts, and each rejected record with why.
fn ingest_ack(
    batch_sequence: i64,
    numbers: &[String],
    outcomes: Vec<Result<Decided>>,
) -> Result<IngestBatchAck> {
    let mut ack = IngestBatchAck { batch_sequence, ..IngestBatchAck::default() };
    for (index, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            Ok(Decided { outcome: WriteOutcome::Created, .. }) => ack.created_count += 1,
            Ok(Decided { outcome: WriteOutcome::Unchanged, .. }) => ack.unchanged_count += 1,
            Ok(_) => ack.updated_count += 1,
            Err(error) => {
                let (reason, message, violations) = match error {
                    Error::InvalidArgument(v) => {
                        ("INVALID_RECORD", "the record is not valid".to_owned(), v.violations().to_vec())
                    }
                    Error::Aborted => (
                        "ETAG_MISMATCH",
                        "the record was changed by someone else; read it and send it again".to_owned(),
                        vec![],
                    ),
                    other => return Err(other),
                };
                ack.errors.push(IngestRecordError {
                    index: index as i32,
                    record_number: numbers.get(index).cloned().unwrap_or_default(),
                    reason: reason.to_owned(),
                    message,
                    field_violations: violations
                        .into_iter()
                        .map(|(field, description)| interlock_api::records::v1::FieldViolation {
                            field,
                            description,
                        })
                        .collect(),
                });
            }
        }
    }
    Ok(ack)
}
