//! Orchestration: read, decide with the domain rules, commit with the audit events. Every read
//! makes its audit event durable in the service's own outbox (and the owners' notifications
//! with it) before any data is returned; if that write fails the read fails with
//! AUDIT_UNAVAILABLE (fail closed). Writes commit their audit events in their own transaction.

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

use crate::error::{Error, Result};
use crate::store::{RecordsStore, StoredRecord};
pub use directory::Directory;
pub use grants::GrantsCache;

/// The records service: its store, the grants it decides with and the registry's directory.
pub struct Records {
    store: Arc<dyn RecordsStore>,
    grants: Arc<GrantsCache>,
    directory: Directory,
}

impl Records {
    pub fn new(store: Arc<dyn RecordsStore>, grants: Arc<GrantsCache>, directory: Directory) -> Arc<Self> {
        Arc::new(Self { store, grants, directory })
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
