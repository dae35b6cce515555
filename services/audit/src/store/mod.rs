//! The audit log's persistence: one trait, a SQLite and a PostgreSQL implementation, and one test
//! suite that runs against both.
//!
//! Both backends run the same SQL (`$n` placeholders work in SQLite too), so the implementation is
//! written once in [`audit_store_impl`] and instantiated per backend in `sqlite.rs` and
//! `postgres.rs`; what differs between them is the pool type and the migrations.

#[macro_use]
mod shared;
mod postgres;
mod sqlite;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use interlock_storage::{BackendPools, Database, Migrations};
use sha2::Digest;

use crate::domain::event::{PendingEvent, StoredEvent};
use crate::error::{Error, Result};
use crate::merkle::{Hash, NodeId};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The audit log's migrations per backend.
pub const MIGRATIONS: Migrations = Migrations { sqlite: &SQLITE_MIGRATIONS, postgres: &POSTGRES_MIGRATIONS };

/// The result of appending one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    pub event_id: String,
    pub leaf_index: u64,
    pub leaf_hash: Hash,
    pub duplicate: bool,
}

/// The results of one batch, in request order, and the tree size after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendOutcome {
    pub results: Vec<Appended>,
    pub tree_size: u64,
}

/// A signed checkpoint as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub tree_size: u64,
    pub root_hash: Hash,
    pub signed_note: String,
    pub create_time_us: i64,
}

/// Which events to read (an EventFilter, resolved) and from whose point of view.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// `Some(agencies/X)`: only what that agency may see (its actions, accesses to its resources,
    /// nothing pruned). `None`: everything (a center auditor).
    pub visible_to: Option<String>,
    pub actor_agency: Option<String>,
    pub actor_user: Option<String>,
    pub resource: Option<String>,
    pub resource_owner: Option<String>,
    pub agreement: Option<String>,
    pub actions: Vec<i32>,
    pub outcomes: Vec<i32>,
    pub services: Vec<i32>,
    pub start_time_us: Option<i64>,
    pub end_time_us: Option<i64>,
    /// Leaf index range `[start_leaf, end_leaf)`; `end_leaf` None: unbounded.
    pub start_leaf: u64,
    pub end_leaf: Option<u64>,
    pub trace_id: Option<String>,
    pub case_reference: Option<String>,
    pub exclude_own_actions: bool,
    pub descending: bool,
    pub limit: u32,
}

#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Succeeds when the database answers; drives the health status.
    async fn ping(&self) -> Result<()>;

    /// Appends a batch in one transaction: leaf indexes are assigned under the log's row lock (so
    /// any number of replicas can append to one database), duplicates of stored or earlier events
    /// return their original leaf, and nothing is written when any event id conflicts. Returns
    /// only after the commit.
    async fn append(&self, events: &[PendingEvent]) -> Result<AppendOutcome>;

    /// Number of durable leaves.
    async fn tree_size(&self) -> Result<u64>;

    async fn get_event(&self, event_id: &str) -> Result<Option<StoredEvent>>;

    /// Events matching `query`, ordered by leaf index.
    async fn list_events(&self, query: &EventQuery) -> Result<Vec<StoredEvent>>;

    /// Up to `count` leaves from `start` in index order, bodies included, for verification.
    async fn leaves(&self, start: u64, count: u32) -> Result<Vec<StoredEvent>>;

    /// The hashes of the given tree nodes (level 0 from the events); missing nodes are absent.
    async fn nodes(&self, ids: &[NodeId]) -> Result<HashMap<NodeId, Hash>>;

    /// Up to `count` leaf hashes from `start`, in index order.
    async fn leaf_hashes(&self, start: u64, count: u32) -> Result<Vec<Hash>>;

    /// Stores a checkpoint unless one exists at its tree size (another replica may have signed the
    /// same size first); returns the stored one.
    async fn add_checkpoint(&self, checkpoint: &StoredCheckpoint) -> Result<StoredCheckpoint>;

    /// The checkpoint at `tree_size`, or the latest with `None`.
    async fn checkpoint(&self, tree_size: Option<u64>) -> Result<Option<StoredCheckpoint>>;

    /// Checkpoints with tree size at least `start` and beyond `after` (in the order's direction).
    async fn list_checkpoints(
        &self,
        start: u64,
        after: Option<u64>,
        descending: bool,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>>;

    /// The lowest leaf index whose body is kept (the tree size when every body is pruned).
    async fn first_unpruned_leaf(&self) -> Result<u64>;

    /// Removes the bodies of events received before `before_us`, keeping leaf hashes; returns how
    /// many were pruned.
    async fn prune(&self, before_us: i64) -> Result<u64>;
}

/// The audit store on a database opened with [`MIGRATIONS`].
pub fn on(database: Database) -> Arc<dyn AuditStore> {
    match database.pools() {
        BackendPools::Sqlite(pools) => Arc::new(SqliteStore::new(pools)),
        BackendPools::Postgres(pools) => Arc::new(PostgresStore::new(pools)),
    }
}

fn to_hash(bytes: Vec<u8>, what: impl FnOnce() -> String) -> Result<Hash> {
    bytes.try_into().map_err(|_| Error::Corrupt(format!("{}: not a 32-byte hash", what())))
}

/// Leaf indexes and sizes are stored as signed 64-bit integers (both backends' native integer).
fn db_int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn from_db_int(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// The index key of an event id: the UUID's first 8 bytes, which for UUIDv7 (what the mesh's
/// writers use) are its millisecond timestamp, so new ids land at the index's right edge. Not
/// unique: lookups compare the stored id too. `None` for text that is no UUID (validation rejects
/// such ids on append, so none is stored).
fn event_key(event_id: &str) -> Option<i64> {
    let (high, _) = uuid::Uuid::parse_str(event_id).ok()?.as_u64_pair();
    Some(high as i64)
}

/// The index key of a resource name: the first 8 bytes of its SHA-256 (a quarter of the index
/// pages a name would take); lookups compare the stored name too.
fn resource_key(resource: &str) -> i64 {
    let digest = sha2::Sha256::digest(resource.as_bytes());
    i64::from_be_bytes([
        digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7],
    ])
}

type EventRow = (i64, String, Vec<u8>, i64, i64, Option<Vec<u8>>);

fn stored_event(row: EventRow) -> Result<StoredEvent> {
    let (leaf_index, event_id, leaf_hash, time_us, receive_time_us, leaf_data) = row;
    Ok(StoredEvent {
        leaf_index: from_db_int(leaf_index),
        leaf_hash: to_hash(leaf_hash, || format!("leaf {leaf_index}"))?,
        event_id,
        time_us,
        receive_time_us,
        leaf_data,
    })
}

type CheckpointRow = (i64, Vec<u8>, String, i64);

fn stored_checkpoint(row: CheckpointRow) -> Result<StoredCheckpoint> {
    let (tree_size, root_hash, signed_note, create_time_us) = row;
    Ok(StoredCheckpoint {
        tree_size: from_db_int(tree_size),
        root_hash: to_hash(root_hash, || format!("checkpoint {tree_size}"))?,
        signed_note,
        create_time_us,
    })
}

#[cfg(test)]
mod tests;
