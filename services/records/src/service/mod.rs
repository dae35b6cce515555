//! Orchestration: read, decide with the domain rules, commit with the audit events. Every read
//! makes its audit event durable in the service's own outbox (and the owners' notifications
//! with it) before any data is returned; if that write fails the read fails with
//! AUDIT_UNAVAILABLE (fail closed). Concurrent reads share that transaction (a group commit).
//! Writes commit their audit events in their own transaction.

pub mod deconfliction;
pub mod directory;
pub mod grants;
pub mod reads;
mod writes;

use std::sync::Arc;

use interlock_api::audit::v1::{Action, InterlockService};
use interlock_api::records::v1::Record;
use interlock_audit_client::EventBuilder;
use interlock_auth::Caller;
use interlock_rpc::timestamp_from_micros;
use prost::Message;

use interlock_storage::GroupCommit;

use crate::error::{Error, Result};
use crate::store::{ReadRecord, RecordsStore, StoredRecord};
pub use directory::Directory;
pub use grants::GrantsCache;
pub use writes::IngestPipeline;

/// At most this many reads share one audit transaction; more wait for the next.
const READS_PER_COMMIT: usize = 1_000;
/// Reads queued for the audit writer before callers wait for room (back-pressure, not loss).
const READ_QUEUE: usize = 8_192;

/// The records service: its store, the grants it decides with and the registry's directory.
pub struct Records {
    store: Arc<dyn RecordsStore>,
    grants: Arc<GrantsCache>,
    directory: Directory,
    /// The group commit of reads' audit events and owner notifications.
    reads: GroupCommit<ReadRecord, Error>,
}

impl Records {
    /// Must run inside a Tokio runtime: it spawns the reads' audit writer.
    pub fn new(store: Arc<dyn RecordsStore>, grants: Arc<GrantsCache>, directory: Directory) -> Arc<Self> {
        let writer = store.clone();
        let reads = GroupCommit::spawn(READS_PER_COMMIT, READ_QUEUE, move |reads| {
            let store = writer.clone();
            let count = reads.len();
            async move { store.record_reads(reads).await.map(|()| vec![(); count]) }
        });
        Arc::new(Self { store, grants, directory, reads })
    }

    pub fn store(&self) -> &Arc<dyn RecordsStore> {
        &self.store
    }

    pub(crate) fn event(method: &str, action: Action, caller: &Caller) -> EventBuilder {
        interlock_audit_client::event(InterlockService::Records, method, action, Some(caller))
    }
}

/// The etag of a record version.
pub fn etag(version: i64) -> String {
    format!("\"v{version}\"")
}

/// `records/{id}` → id; a malformed name is INVALID_ARGUMENT on `field`.
pub fn record_id<'a>(name: &'a str, field: &str) -> Result<&'a str> {
    name.strip_prefix("records/")
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
        .ok_or_else(|| Error::invalid(field, "must be a record name, records/{record_id}"))
}

/// The full record (for its owner) from its stored current version.
pub fn to_record(stored: &StoredRecord) -> Result<Record> {
    let mut record = Record::decode(stored.doc.as_slice())?;
    record.name = format!("records/{}", stored.id);
    record.owner = format!("agencies/{}", stored.owner);
    record.version = stored.version;
    record.create_time = Some(timestamp_from_micros(stored.create_us));
    record.update_time = Some(timestamp_from_micros(stored.update_us));
    record.etag = etag(stored.version);
    Ok(record)
}
