//! The registry's persistence: one trait, a SQLite and a PostgreSQL implementation (generated from
//! the same SQL in [`sql`]), and one test suite that runs against both.
//!
//! Every resource is a JSON document keyed by its resource name, with a revision for optimistic
//! concurrency. A [`Commit`] applies writes, appends one change-feed row per write (what the
//! revocation and grant watches follow on every replica) and queues the audit events recording
//! them — all in one transaction, so nothing is acknowledged that is not durable and audited.

mod sql;

use std::sync::Arc;

use async_trait::async_trait;
use interlock_storage::{BackendPools, Database, Migrations};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

pub use sql::{PostgresStore, SqliteStore};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The registry's migrations per backend.
pub const MIGRATIONS: Migrations = Migrations { sqlite: &SQLITE_MIGRATIONS, postgres: &POSTGRES_MIGRATIONS };

/// The kinds of registry resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Agency,
    User,
    Credential,
    Center,
    Agreement,
    /// Which version an AmendAgreement call with a `request_id` proposed.
    AmendmentReceipt,
    /// Which membership an AddCenterMember call with a `request_id` opened.
    MembershipReceipt,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Agency => "agency",
            Kind::User => "user",
            Kind::Credential => "credential",
            Kind::Center => "center",
            Kind::Agreement => "agreement",
            Kind::AmendmentReceipt => "amendment_receipt",
            Kind::MembershipReceipt => "membership_receipt",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [
            Kind::Agency,
            Kind::User,
            Kind::Credential,
            Kind::Center,
            Kind::Agreement,
            Kind::AmendmentReceipt,
            Kind::MembershipReceipt,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == value)
    }

    /// Whether writes of this kind go to the change feed. A receipt changes nothing a watcher
    /// follows (the agreement it points at has a change row of its own), and replicas from before
    /// receipts existed would take an unknown kind in the feed for corrupt data.
    pub fn is_watched(self) -> bool {
        !matches!(self, Kind::AmendmentReceipt | Kind::MembershipReceipt)
    }
}

/// A stored document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    pub name: String,
    pub doc: String,
    pub revision: i64,
}

/// One write of a [`Commit`].
#[derive(Clone, Debug)]
pub enum Write {
    /// A new resource; `AlreadyExists` when the name is taken.
    Insert { kind: Kind, name: String, parent: String, doc: String, request_id: Option<String> },
    /// A changed resource; `Aborted` unless it is still at `expected_revision`.
    Update { kind: Kind, name: String, doc: String, expected_revision: i64 },
    /// A removed resource; `Aborted` unless it is still at `expected_revision`.
    Delete { kind: Kind, name: String, expected_revision: i64 },
}

/// Writes and the audit events that record them, applied atomically.
#[derive(Clone, Debug, Default)]
pub struct Commit {
    pub writes: Vec<Write>,
    /// (event id, encoded `interlock.audit.v1.AuditEvent`).
    pub audit_events: Vec<(String, Vec<u8>)>,
}

/// One entry of the change feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub revision: i64,
    pub kind: Kind,
    pub name: String,
    pub time_us: i64,
}

#[async_trait]
pub trait RegistryStore: Send + Sync + 'static {
    /// Succeeds when the database answers.
    async fn ping(&self) -> Result<()>;

    async fn get(&self, kind: Kind, name: &str) -> Result<Option<StoredObject>>;

    /// The resource a create with this `request_id` made, if any.
    async fn get_by_request_id(&self, kind: Kind, request_id: &str) -> Result<Option<StoredObject>>;

    /// Resources of `kind` (under `parent`, when given) ordered by name, after `after_name`.
    async fn list(
        &self,
        kind: Kind,
        parent: Option<&str>,
        after_name: &str,
        limit: u32,
    ) -> Result<Vec<StoredObject>>;

    /// Applies `commit` atomically; returns the change-feed revision it reached.
    async fn commit(&self, commit: Commit) -> Result<i64>;

    /// Change-feed entries after `revision`, oldest first.
    async fn changes_after(&self, revision: i64, limit: u32) -> Result<Vec<Change>>;

    /// The newest change-feed revision (0 when empty).
    async fn latest_revision(&self) -> Result<i64>;
}

/// The registry's store on a database opened with [`MIGRATIONS`].
pub fn on(database: Database) -> Arc<dyn RegistryStore> {
    match database.pools() {
        BackendPools::Sqlite(pools) => Arc::new(SqliteStore::new(pools)),
        BackendPools::Postgres(pools) => Arc::new(PostgresStore::new(pools)),
    }
}

/// A registry resource stored as a JSON document.
pub trait Resource: Serialize + DeserializeOwned + Clone + Send + Sync {
    const KIND: Kind;
    fn name(&self) -> String;
    /// The resource name of the parent: listing children filters on it.
    fn parent(&self) -> String {
        String::new()
    }
}

/// A decoded resource with the revision it was read at.
#[derive(Clone, Debug, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub revision: i64,
}

impl<T> Versioned<T> {
    /// The etag clients send back: the revision, quoted.
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.revision)
    }
}

/// Typed access over a [`RegistryStore`].
#[derive(Clone)]
pub struct Repository {
    store: Arc<dyn RegistryStore>,
}

impl Repository {
    pub fn new(store: Arc<dyn RegistryStore>) -> Self {
        Self { store }
    }

    pub fn store(&self) -> &Arc<dyn RegistryStore> {
        &self.store
    }

    pub async fn get<T: Resource>(&self, name: &str) -> Result<Option<Versioned<T>>> {
        self.store.get(T::KIND, name).await?.map(decode).transpose()
    }

    pub async fn get_by_request_id<T: Resource>(&self, request_id: &str) -> Result<Option<Versioned<T>>> {
        self.store.get_by_request_id(T::KIND, request_id).await?.map(decode).transpose()
    }

    pub async fn list<T: Resource>(
        &self,
        parent: Option<&str>,
        after: &str,
        limit: u32,
    ) -> Result<Vec<Versioned<T>>> {
        self.store.list(T::KIND, parent, after, limit).await?.into_iter().map(decode).collect()
    }

    /// Every resource of a kind (the registry's kinds hold hundreds to thousands of documents).
    pub async fn all<T: Resource>(&self) -> Result<Vec<Versioned<T>>> {
        let mut all = Vec::new();
        let mut after = String::new();
        loop {
            let page = self.list::<T>(None, &after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = last.value.name();
            let full = page.len() == 1000;
            all.extend(page);
            if !full {
                break;
            }
        }
        Ok(all)
    }
}

fn decode<T: Resource>(object: StoredObject) -> Result<Versioned<T>> {
    let value = serde_json::from_str(&object.doc)
        .map_err(|error| Error::Corrupt(format!("{} {}: {error}", T::KIND.as_str(), object.name)))?;
    Ok(Versioned { value, revision: object.revision })
}

impl Commit {
    pub fn insert<T: Resource>(&mut self, value: &T, request_id: Option<&str>) -> &mut Self {
        self.writes.push(Write::Insert {
            kind: T::KIND,
            name: value.name(),
            parent: value.parent(),
            doc: encode(value),
            request_id: request_id.map(str::to_owned),
        });
        self
    }

    pub fn update<T: Resource>(&mut self, value: &T, expected_revision: i64) -> &mut Self {
        self.writes.push(Write::Update {
            kind: T::KIND,
            name: value.name(),
            doc: encode(value),
            expected_revision,
        });
        self
    }

    pub fn delete<T: Resource>(&mut self, value: &T, expected_revision: i64) -> &mut Self {
        self.writes.push(Write::Delete { kind: T::KIND, name: value.name(), expected_revision });
        self
    }

    pub fn audit(&mut self, event_id: String, event: Vec<u8>) -> &mut Self {
        self.audit_events.push((event_id, event));
        self
    }
}

fn encode<T: Serialize>(value: &T) -> String {
    // Registry documents are plain structs with string keys: serialising cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests;
