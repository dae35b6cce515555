//! The registry's persistence: one trait, a SQLite and a PostgreSQL implementation, and one test
//! suite that runs against both.

mod postgres;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use interlock_storage::{Database, Migrations};

use crate::domain::agency::{Agency, AgencyState, Contact};
use crate::error::{Error, Result};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The registry's migrations per backend.
pub const MIGRATIONS: Migrations = Migrations { sqlite: &SQLITE_MIGRATIONS, postgres: &POSTGRES_MIGRATIONS };

#[async_trait]
pub trait RegistryStore: Send + Sync + 'static {
    /// Succeeds when the database answers; drives the health status.
    async fn ping(&self) -> Result<()>;

    /// Stores a new agency. A retry carrying the `request_id` that created an agency with this
    /// code returns that agency; any other duplicate code is `AlreadyExists`.
    async fn create_agency(&self, agency: &Agency, request_id: Option<&str>) -> Result<Agency>;

    async fn get_agency(&self, code: &str) -> Result<Option<Agency>>;

    /// Agencies ordered by code, starting after `after_code`, optionally only those in `state`.
    async fn list_agencies(
        &self,
        after_code: Option<&str>,
        state: Option<AgencyState>,
        limit: u32,
    ) -> Result<Vec<Agency>>;
}

/// The registry's store on a database opened with [`MIGRATIONS`].
pub fn on(database: Database) -> Arc<dyn RegistryStore> {
    match database {
        Database::Sqlite(pool) => Arc::new(SqliteStore::new(pool)),
        Database::Postgres(pool) => Arc::new(PostgresStore::new(pool)),
    }
}

/// One agency row as both backends return it (contacts as JSON text).
#[derive(sqlx::FromRow)]
struct AgencyRow {
    code: String,
    display_name: String,
    parent_department: String,
    jurisdiction: String,
    state: String,
    duty_desk: String,
    contacts: String,
    suspend_reason: String,
    suspend_time_us: Option<i64>,
    create_time_us: i64,
    update_time_us: i64,
    revision: i64,
}

impl TryFrom<AgencyRow> for Agency {
    type Error = Error;

    fn try_from(row: AgencyRow) -> Result<Self> {
        let corrupt = |what: &str| Error::Corrupt(format!("agency {}: {what}", row.code));
        let duty_desk: Contact = serde_json::from_str(&row.duty_desk).map_err(|_| corrupt("duty desk"))?;
        let contacts: Vec<Contact> = serde_json::from_str(&row.contacts).map_err(|_| corrupt("contacts"))?;
        let state = AgencyState::parse(&row.state).ok_or_else(|| corrupt("state"))?;
        Ok(Agency {
            code: row.code,
            display_name: row.display_name,
            parent_department: row.parent_department,
            jurisdiction: row.jurisdiction,
            state,
            duty_desk,
            contacts,
            suspend_reason: row.suspend_reason,
            suspend_time_us: row.suspend_time_us,
            create_time_us: row.create_time_us,
            update_time_us: row.update_time_us,
            revision: row.revision,
        })
    }
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Serialising plain contact structs cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

/// After a unique violation on create: the agency the same request created, or `AlreadyExists`.
async fn resolve_duplicate(
    store: &dyn RegistryStore,
    code: &str,
    request_id: Option<&str>,
    stored_request_id: Option<String>,
) -> Result<Agency> {
    match (request_id, stored_request_id) {
        (Some(sent), Some(stored)) if sent == stored => {
            store.get_agency(code).await?.ok_or_else(|| Error::NotFound(format!("agency {code}")))
        }
        _ => Err(Error::AlreadyExists(format!("agency {code}"))),
    }
}

#[cfg(test)]
mod tests;
