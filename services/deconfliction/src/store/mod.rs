//! The deconfliction store: one trait, its SQL written once for SQLite and PostgreSQL in
//! [`sql`], and one test suite for both.
//!
//! Registrations are committed optimistically against the match index: the caller computes
//! conflicts with its index at change-feed revision R, and the commit succeeds only if the feed
//! is still at R (writers are serialised in the database), so no two replicas can both miss a
//! conflict between registrations they accept at the same moment.

mod sql;

use std::sync::Arc;

use async_trait::async_trait;
use interlock_storage::{BackendPools, Database, Migrations};

use crate::domain::conflict::Conflict;
use crate::domain::registration::Registration;
use crate::error::Result;

pub use sql::{PostgresStore, SqliteStore};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The deconfliction service's migrations per backend.
pub const MIGRATIONS: Migrations = Migrations { sqlite: &SQLITE_MIGRATIONS, postgres: &POSTGRES_MIGRATIONS };

/// The store on a database opened with [`MIGRATIONS`].
pub fn on(database: Database) -> Arc<dyn DeconflictionStore> {
    match database.pools() {
        BackendPools::Sqlite(pools) => Arc::new(SqliteStore::new(pools)),
        BackendPools::Postgres(pools) => Arc::new(PostgresStore::new(pools)),
    }
}

/// A registration to insert (id 0, number assigned on commit for targets and operations) or to
/// replace (its stored revision given), with the conflicts it found.
#[derive(Clone, Debug)]
pub struct RegistrationWrite {
    pub registration: Registration,
    pub expected_revision: Option<i64>,
    pub request_id: Option<String>,
    /// Conflicts with party 1 being this registration; id, number and party 1's id and number
    /// are filled in on commit.
    pub conflicts: Vec<Conflict>,
}

/// A watch event for one audience: an agency code, or "" for the center watch desk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub sequence: i64,
    pub audience: String,
    pub conflict_id: i64,
    pub event_type: i32,
    pub actor_agency: String,
    pub time_us: i64,
}

/// A dry-run check to record: the agency that checked, when, the watch events its hits caused
/// and its audit events.
#[derive(Clone, Debug)]
pub struct CheckRecord {
    pub agency: String,
    pub time_us: i64,
    /// The index revision the hits were decided at, when the index is to be proved current by
    /// the recording transaction; `None` when a feed read begun after the call proved it.
    pub index_revision: Option<i64>,
    pub events: Vec<Event>,
    pub audit: Vec<(String, Vec<u8>)>,
}

/// What a registration commit stored.
#[derive(Clone, Debug)]
pub struct Committed {
    pub registrations: Vec<(Registration, i64)>,
    pub conflicts: Vec<Conflict>,
    pub index_revision: i64,
}

#[async_trait]
pub trait DeconflictionStore: Send + Sync + 'static {
    async fn ping(&self) -> Result<()>;

    /// A registration and its revision.
    async fn registration(&self, id: i64) -> Result<Option<(Registration, i64)>>;
    async fn registration_by_number(&self, number: &str) -> Result<Option<(Registration, i64)>>;
    async fn registration_by_request(
        &self,
        agency: &str,
        request_id: &str,
    ) -> Result<Option<(Registration, i64)>>;
    /// One agency's registrations of `kind` ("target", "operation", "record"), by id after `after_id`.
    async fn list_registrations(
        &self,
        agency: &str,
        kind: &str,
        case_reference: Option<&str>,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<(Registration, i64)>>;
    /// Every registration with an id above `after_id`, for building the index.
    async fn scan_registrations(&self, after_id: i64, limit: u32) -> Result<Vec<Registration>>;

    /// Index-feed entries after `revision`: (revision, registration id).
    async fn index_changes_after(&self, revision: i64, limit: u32) -> Result<Vec<(i64, i64)>>;
    async fn latest_index_revision(&self) -> Result<i64>;

    /// The next deconfliction number of `year`, `DX-{year}-{NNNNNN}`. Numbers are unique; one
    /// taken by a registration that then fails is not reused.
    async fn next_number(&self, year: i32) -> Result<String>;

    /// Commits registrations and their conflicts if the index feed is still at
    /// `index_revision`; `Error::Stale` otherwise. Each conflict also queues a DETECTED event
    /// for both agencies.
    async fn commit_registrations(
        &self,
        index_revision: i64,
        year: i32,
        writes: Vec<RegistrationWrite>,
        audit: Vec<(String, Vec<u8>)>,
    ) -> Result<Committed>;

    /// Replaces a conflict still at `expected_revision`, queueing `events`.
    async fn update_conflict(
        &self,
        conflict: &Conflict,
        expected_revision: i64,
        events: Vec<Event>,
        audit: Vec<(String, Vec<u8>)>,
    ) -> Result<i64>;

    /// Records checks that registered nothing, with the events their hits caused, all in one
    /// transaction (the group commit of concurrent checks): of the checks that name an index
    /// revision, only those decided at the latest revision the transaction sees, so a recorded
    /// check missed nothing committed before it. Answers, per check, whether it was recorded
    /// (`false`: catch up and decide it again).
    async fn record_checks(&self, checks: Vec<CheckRecord>) -> Result<Vec<bool>>;

    /// Queues audit events of an action that writes nothing else (a watch delivery).
    async fn record_audit(&self, audit: Vec<(String, Vec<u8>)>) -> Result<()>;

    async fn conflict(&self, id: i64) -> Result<Option<(Conflict, i64)>>;
    async fn conflict_by_number(&self, number: &str) -> Result<Option<(Conflict, i64)>>;
    /// Conflicts involving `agency` (every conflict when `None`), newest first, below `before_id`.
    async fn list_conflicts(
        &self,
        agency: Option<&str>,
        before_id: i64,
        limit: u32,
    ) -> Result<Vec<(Conflict, i64)>>;
    /// Conflicts involving a registration.
    async fn conflicts_of(&self, registration_id: i64) -> Result<Vec<(Conflict, i64)>>;
    /// Conflicts whose escalation is due at `now_us`.
    async fn due_escalations(&self, now_us: i64, limit: u32) -> Result<Vec<(Conflict, i64)>>;

    /// Watch events for `audience` after `sequence`, oldest first.
    async fn events_after(&self, audience: &str, sequence: i64, limit: u32) -> Result<Vec<Event>>;

    /// Dry-run checks by `agency` in [start, end), counted per second: every second that begins
    /// in [start rounded down to its second, end) counts whole.
    async fn count_checks(&self, agency: &str, start_us: i64, end_us: i64) -> Result<i64>;
}

#[cfg(test)]
mod tests;
