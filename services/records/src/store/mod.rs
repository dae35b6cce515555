//! The records service's persistence: one trait, a SQLite and a PostgreSQL implementation
//! (generated from the same SQL in [`sql`]; only the full-text clause differs), and one test
//! suite that runs against both.
//!
//! The current version of each record is one row of `records` (filter columns plus the encoded
//! content); every version is kept in `record_versions`; normalised selectors and person names
//! are index rows of the current version. A [`WriteBatch`] applies record writes, their audit
//! events and the ingest progress in one transaction, so nothing is acknowledged that is not
//! durable and audited.

mod sql;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;
use interlock_storage::{BackendPools, Database, Migrations};

use crate::domain::query::Term;
use crate::domain::record::{IndexedSelector, Prepared};
use crate::error::Result;

pub use sql::{PostgresStore, SqliteStore};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The records service's migrations per backend.
pub const MIGRATIONS: Migrations = Migrations { sqlite: &SQLITE_MIGRATIONS, postgres: &POSTGRES_MIGRATIONS };

/// The current version of a record as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRecord {
    pub id: String,
    /// Owner agency code.
    pub owner: String,
    pub record_number: String,
    pub category: i32,
    pub sensitivity: i32,
    pub caveats: i64,
    pub report_us: i64,
    pub review_by_us: i64,
    pub version: i64,
    pub deleted: bool,
    pub create_us: i64,
    pub update_us: i64,
    pub content_hash: String,
    /// The encoded interlock.records.v1.Record content (output-only fields unset).
    pub doc: Vec<u8>,
}

/// One kept version.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredVersion {
    pub version: i64,
    /// interlock.records.v1.ChangeKind.
    pub change: i32,
    /// The content; `None` for a deletion.
    pub doc: Option<Vec<u8>>,
    pub create_us: i64,
    pub user: String,
}

/// One record write of a [`WriteBatch`].
#[derive(Clone, Debug)]
pub struct RecordWrite {
    pub id: String,
    pub owner: String,
    pub record_number: String,
    /// `None`: a new record (fails if the owner's number is taken meanwhile); otherwise the
    /// version the write replaces (fails if it changed meanwhile).
    pub expected_version: Option<i64>,
    /// interlock.records.v1.ChangeKind of the version written.
    pub change: i32,
    /// The new content; `None` deletes.
    pub prepared: Option<Prepared>,
    pub user: String,
}

/// Ingest progress committed with a batch.
#[derive(Clone, Debug)]
pub struct IngestProgress {
    pub owner: String,
    pub ingest_id: String,
    pub batch_sequence: i64,
    /// The stream number [`RecordsStore::claim_ingest`] gave the writing stream: the batch
    /// fails with [`crate::error::Error::IngestTakenOver`] if another stream claimed the job since.
    pub stream: i64,
}

/// How long a CreateRecord request id is honoured; older entries are ignored and pruned.
pub const REQUEST_ID_TTL_US: i64 = 24 * 3_600_000_000;

/// A CreateRecord request id, remembered with the write it made.
#[derive(Clone, Debug, PartialEq)]
pub struct CreateRequest {
    pub owner: String,
    pub request_id: String,
    pub input_hash: String,
    pub record_id: String,
    pub version: i64,
    /// interlock.records.v1.WriteOutcome.
    pub outcome: i32,
}

/// The audit events of a batch's writes, made from the version each write produced (`None`:
/// not stored); they are committed in the batch's transaction. Built by the service, so the
/// store knows nothing of events but stores them with exactly the writes that happened.
pub type AuditOf = Box<dyn FnOnce(&[Option<i64>]) -> Vec<(String, Vec<u8>)> + Send + Sync>;

/// Writes applied in one transaction. A write whose expected version no longer holds is
/// skipped (reported as `None`) without failing the others.
pub struct WriteBatch {
    pub writes: Vec<RecordWrite>,
    pub ingest: Option<IngestProgress>,
    /// Recorded for the first write, when it succeeds.
    pub request: Option<CreateRequest>,
    pub now_us: i64,
    pub audit: AuditOf,
}

/// The query of a search, on normalised forms.
#[derive(Clone, Debug)]
pub enum Match {
    Selectors(Vec<IndexedSelector>),
    /// Empty parts match anything; `birth_date` is a `YYYY`, `YYYY-MM` or `YYYY-MM-DD` prefix.
    Person {
        surname: String,
        given: String,
        middle: String,
        suffix: String,
        birth_date: String,
    },
    Text(Vec<Term>),
}

/// Filters of a search.
#[derive(Clone, Debug, Default)]
pub struct SearchFilter {
    pub categories: Vec<i32>,
    /// Owner agency codes.
    pub owners: Vec<String>,
    pub occur_from_us: Option<i64>,
    pub occur_to_us: Option<i64>,
}

/// Filters of the owner's listing.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    pub record_numbers: Vec<String>,
    pub categories: Vec<i32>,
    pub update_from_us: Option<i64>,
    pub update_to_us: Option<i64>,
    pub include_expired: bool,
}

/// A notice to an owner that a restricted record matched someone else's search.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    pub seq: i64,
    pub id: String,
    pub owner: String,
    pub record_id: String,
    pub record_number: String,
    pub searcher_agency: String,
    pub searcher_user: String,
    pub search_us: i64,
    pub purpose: i32,
    pub case_reference: String,
    pub search_kind: i32,
    /// Encoded interlock.records.v1.Record holding only the matched selectors.
    pub matched: Vec<u8>,
    pub access_level: i32,
}

/// What one read makes durable before it answers.
#[derive(Clone, Debug, Default)]
pub struct ReadRecord {
    pub audit_events: Vec<(String, Vec<u8>)>,
    pub notifications: Vec<Notification>,
}

/// Filters of the notification listing.
#[derive(Clone, Debug, Default)]
pub struct NotificationFilter {
    pub record_id: Option<String>,
    pub searcher_agencies: Vec<String>,
    pub from_us: Option<i64>,
    pub to_us: Option<i64>,
}

/// Current records of one owner, category and sensitivity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountRow {
    pub owner: String,
    pub category: i32,
    pub sensitivity: i32,
    pub records: i64,
    pub originator_controlled: i64,
    pub title_iii: i64,
    pub both: i64,
}

#[async_trait]
pub trait RecordsStore: Send + Sync + 'static {
    /// Succeeds when the database answers.
    async fn ping(&self) -> Result<()>;

    /// The owner's records with these record numbers (deleted ones included).
    async fn find_numbers(&self, owner: &str, numbers: &[String]) -> Result<Vec<StoredRecord>>;

    /// A record by id (deleted ones included).
    async fn get(&self, id: &str) -> Result<Option<StoredRecord>>;

    /// Applies `batch` atomically; for each write its new version, or `None` when its expected
    /// version no longer held (nothing of that write is stored). Fails with IngestTakenOver,
    /// storing nothing, when the batch's ingest stream no longer owns its job.
    async fn write(&self, batch: WriteBatch) -> Result<Vec<Option<i64>>>;

    /// The owner's records (not deleted) ordered by (create time, id) after `after`.
    async fn list_own(
        &self,
        owner: &str,
        filter: &ListFilter,
        after: Option<(i64, String)>,
        now_us: i64,
        limit: u32,
    ) -> Result<Vec<StoredRecord>>;

    /// Versions of a record older than `before_version`, newest first.
    async fn versions(&self, id: &str, before_version: i64, limit: u32) -> Result<Vec<StoredVersion>>;

    /// One version of a record.
    async fn version(&self, id: &str, version: i64) -> Result<Option<StoredVersion>>;

    /// Current, unexpired records matching `query` and `filter`, in result order (newest
    /// contributed first for text, newest report first otherwise), skipping `offset`.
    async fn search(
        &self,
        query: &Match,
        filter: &SearchFilter,
        now_us: i64,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<StoredRecord>>;

    /// Makes the audit events and owner notifications of several reads durable in one
    /// transaction, before any of their data is returned.
    async fn record_reads(&self, reads: Vec<ReadRecord>) -> Result<()>;

    /// The owner's notifications newest first, with `seq` below `before_seq`.
    async fn notifications(
        &self,
        owner: &str,
        filter: &NotificationFilter,
        before_seq: i64,
        limit: u32,
    ) -> Result<Vec<Notification>>;

    /// Makes a new stream the owner of an ingest job (created when new): returns the job's last
    /// committed batch (0 when new) and the new stream's number.
    async fn claim_ingest(&self, owner: &str, ingest_id: &str, now_us: i64) -> Result<(i64, i64)>;

    /// The number of the stream that owns an ingest job now.
    async fn ingest_owner(&self, owner: &str, ingest_id: &str) -> Result<Option<i64>>;

    /// The first write made with a CreateRecord request id, if made after `since_us`.
    async fn create_request(
        &self,
        owner: &str,
        request_id: &str,
        since_us: i64,
    ) -> Result<Option<CreateRequest>>;

    /// Records (deleted ones included) whose review-by time is before `before_us`, oldest first.
    async fn expired(&self, before_us: i64, owners: &[String], limit: u32) -> Result<Vec<StoredRecord>>;

    /// Removes records, their versions and index rows for good, with their audit events.
    async fn purge(&self, ids: &[String], audit_events: Vec<(String, Vec<u8>)>) -> Result<()>;

    /// Counts of current records per owner, category and sensitivity.
    async fn summarize(
        &self,
        owners: &[String],
        categories: &[i32],
        max_sensitivity: Option<i32>,
        now_us: i64,
    ) -> Result<Vec<CountRow>>;

    /// Audit events not yet delivered, oldest first: (sequence, event).
    /// Records whose selectors wait to be sent to the deconfliction service: (sequence, record id).
    async fn pending_deconfliction(&self, limit: u32) -> Result<Vec<(i64, String)>>;

    /// Forgets delivered entries of the deconfliction outbox.
    async fn remove_deconfliction(&self, sequences: &[i64]) -> Result<()>;
}

/// The records store on a database opened with [`MIGRATIONS`].
pub fn on(database: Database) -> Arc<dyn RecordsStore> {
    match database.pools() {
        BackendPools::Sqlite(pools) => Arc::new(SqliteStore::new(pools)),
        BackendPools::Postgres(pools) => Arc::new(PostgresStore::new(pools)),
    }
}
