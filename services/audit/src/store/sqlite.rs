use interlock_storage::Database;
use sqlx::{Sqlite, SqliteConnection, SqlitePool};

/// The audit store on SQLite. `UPDATE log_state` as a transaction's first statement takes
/// SQLite's write lock at once (waiting out the busy timeout), so appends never deadlock on a
/// read-to-write upgrade.
pub struct SqliteStore {
    pool: SqlitePool,
    /// What writes run on (see `interlock_storage::SqliteFile`).
    writer: SqlitePool,
    /// Keeps the database's background work (SQLite's WAL checkpoints) running.
    _database: Database,
}

impl SqliteStore {
    pub fn new(pool: SqlitePool, writer: SqlitePool, database: Database) -> Self {
        Self { pool, writer, _database: database }
    }
}

audit_store_impl!(SqliteStore, Sqlite, SqliteConnection);
