//! Writes: create-or-replace by record number (single and in ingest batches), update, delete.

use std::collections::HashMap;

use interlock_api::audit::v1::Action;
use interlock_api::records::v1::{ChangeKind, IngestBatchAck, IngestRecordError, Record, WriteOutcome};
use interlock_auth::Caller;
use interlock_rpc::{FieldViolations, now_micros};
use prost::Message;
use prost_types::FieldMask;
use sha2::{Digest, Sha256};

use super::{Records, etag, record_id, to_record};
use crate::domain::access::{Decision, RecordFacts, decide};
use crate::domain::record::{Prepared, caveats_of, prepare};
use crate::error::{Error, Result};
use crate::store::{CreateRequest, IngestProgress, RecordWrite, StoredRecord, WriteBatch};

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

impl Records {
    /// Creates or replaces each input as the caller's record, in order, in one transaction
    /// (with the ingest progress, when given). Per-record failures are returned, not raised.
    async fn write_records(
        &self,
        caller: &Caller,
        method: &str,
        inputs: Vec<Record>,
        ingest: Option<IngestProgress>,
        request: Option<(String, String)>,
    ) -> Result<Vec<Result<Written>>> {
        let owner = caller.agency.clone();
        let user = caller.user.clone().unwrap_or_default();
        let now = now_micros();
        let numbers: Vec<String> = inputs.iter().map(|r| r.record_number.clone()).collect();
        let mut current: HashMap<String, Current> = HashMap::new();
        for stored in self.store.find_numbers(&owner, &numbers).await? {
            let content = Record::decode(stored.doc.as_slice())?;
            current.insert(stored.record_number.clone(), Current { stored, content });
        }

        let mut outcomes: Vec<Result<Written>> = Vec::with_capacity(inputs.len());
        // Index into `writes` of each outcome that waits for the commit.
        let mut pending: Vec<(usize, usize)> = Vec::new();
        let mut writes = Vec::new();
        for input in inputs {
            let previous = current.get(&input.record_number);
            if let Some(previous) = previous
                && !input.etag.is_empty()
                && input.etag != etag(previous.stored.version)
            {
                outcomes.push(Err(Error::Aborted));
                continue;
            }
            let live_previous = previous.filter(|p| !p.stored.deleted);
            let prepared: Prepared = match prepare(&input, previous.map(|p| &p.content), now) {
                Ok(prepared) => prepared,
                Err(violations) => {
                    outcomes.push(Err(Error::InvalidArgument(violations)));
                    continue;
                }
            };
            if let Some(previous) = live_previous
                && previous.stored.content_hash == prepared.hash
            {
                outcomes.push(Ok(Written {
                    record: to_record(&previous.stored)?,
                    outcome: WriteOutcome::Unchanged,
                }));
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
            let audit_event = Records::event(method, action, caller)
                .resource(format!("records/{id}"), vec![caller.agency_name()])
                .detail("record_number", input.record_number.clone())
                .detail("version", version.to_string())
                .encode();
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
            outcomes.push(Ok(Written { record: to_record(&stored)?, outcome }));
            writes.push(RecordWrite {
                id,
                owner: owner.clone(),
                record_number: input.record_number,
                expected_version: expected,
                change: change as i32,
                prepared: Some(prepared),
                user: user.clone(),
                audit_event,
            });
        }
        let request = match (request, pending.first(), outcomes.first()) {
            (Some((request_id, input_hash)), Some(_), Some(Ok(written))) => Some(CreateRequest {
                owner: owner.clone(),
                request_id,
                input_hash,
                record_id: record_id(&written.record.name, "record.name")?.to_owned(),
                version: written.record.version,
                outcome: written.outcome as i32,
            }),
            _ => None,
        };
        if writes.is_empty() && ingest.is_none() {
            return Ok(outcomes);
        }
        let results = self.store.write(WriteBatch { writes, ingest, request, now_us: now }).await?;
        for (outcome_index, write_index) in pending {
            if results.get(write_index).is_none_or(Option::is_none) {
                // Someone else wrote this record number between our read and our commit.
                outcomes[outcome_index] = Err(Error::Aborted);
            }
        }
        Ok(outcomes)
    }

    /// CreateRecord: create, replace by record number, or leave unchanged.
    pub async fn create(&self, caller: &Caller, input: Record, request_id: &str) -> Result<Written> {
        let input_hash = hex::encode(Sha256::digest(input.encode_to_vec()));
        if !request_id.is_empty() {
            if request_id.len() > 64 {
                return Err(Error::invalid("request_id", "is at most 64 characters"));
            }
            if let Some(first) = self.store.create_request(&caller.agency, request_id).await? {
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
        let mut outcomes = self.write_records(caller, "CreateRecord", vec![input], None, request).await?;
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
        let mut outcomes = self.write_records(caller, "UpdateRecord", vec![merged], None, None).await?;
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
        let audit_event = Records::event("DeleteRecord", Action::Delete, caller)
            .resource(format!("records/{}", stored.id), vec![caller.agency_name()])
            .detail("record_number", stored.record_number.clone())
            .encode();
        let write = RecordWrite {
            id: stored.id.clone(),
            owner: stored.owner.clone(),
            record_number: stored.record_number.clone(),
            expected_version: Some(stored.version),
            change: ChangeKind::Deleted as i32,
            prepared: None,
            user: caller.user.clone().unwrap_or_default(),
            audit_event,
        };
        let results = self
            .store
            .write(WriteBatch { writes: vec![write], now_us: now_micros(), ..Default::default() })
            .await?;
        match results.first() {
            Some(Some(_)) => Ok(()),
            _ => Err(Error::Aborted),
        }
    }

    /// The highest committed batch of an ingest job.
    pub async fn ingest_progress(&self, caller: &Caller, ingest_id: &str) -> Result<i64> {
        self.store.ingest_progress(&caller.agency, ingest_id).await
    }

    /// Commits one ingest batch (its accepted records and the job's progress in one
    /// transaction) and reports what became of each record.
    pub async fn ingest_batch(
        &self,
        caller: &Caller,
        ingest_id: &str,
        batch_sequence: i64,
        records: Vec<Record>,
    ) -> Result<IngestBatchAck> {
        let numbers: Vec<String> = records.iter().map(|r| r.record_number.clone()).collect();
        let progress =
            IngestProgress { owner: caller.agency.clone(), ingest_id: ingest_id.to_owned(), batch_sequence };
        let outcomes = self.write_records(caller, "IngestRecords", records, Some(progress), None).await?;
        let mut ack = IngestBatchAck { batch_sequence, ..IngestBatchAck::default() };
        for (index, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                Ok(Written { outcome: WriteOutcome::Created, .. }) => ack.created_count += 1,
                Ok(Written { outcome: WriteOutcome::Unchanged, .. }) => ack.unchanged_count += 1,
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
}
