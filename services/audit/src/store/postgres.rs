use interlock_storage::Database;
use sqlx::{PgConnection, PgPool, Postgres};

/// The audit store on PostgreSQL, shared by every replica: `UPDATE log_state` row-locks the log's
/// state until commit, so replicas assign leaf indexes one batch at a time.
pub struct PostgresStore {
    pool: PgPool,
    /// What writes run on (see `interlock_storage::SqliteFile`).
    writer: PgPool,
    /// Keeps the database's background work (SQLite's WAL checkpoints) running.
    _database: Database,
}

impl PostgresStore {
    pub fn new(pool: PgPool, writer: PgPool, database: Database) -> Self {
        Self { pool, writer, _database: database }
    }
}

audit_store_impl!(PostgresStore, Postgres, PgConnection);
