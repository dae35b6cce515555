use sqlx::{Sqlite, SqliteConnection, SqlitePool};

/// The audit store on SQLite. `UPDATE log_state` as a transaction's first statement takes
/// SQLite's write lock at once (waiting out the busy timeout), so appends never deadlock on a
/// read-to-write upgrade.
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

audit_store_impl!(SqliteStore, Sqlite, SqliteConnection);
