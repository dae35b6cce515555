use interlock_storage::Pools;
use sqlx::{Sqlite, SqliteConnection, SqlitePool};

/// The audit store on SQLite. `UPDATE log_state` as a transaction's first statement takes
/// SQLite's write lock at once (waiting out the busy timeout), so appends never deadlock on a
/// read-to-write upgrade.
pub struct SqliteStore {
    pools: Pools<SqlitePool>,
}

impl SqliteStore {
    pub fn new(pools: Pools<SqlitePool>) -> Self {
        Self { pools }
    }
}

audit_store_impl!(SqliteStore, Sqlite, SqliteConnection);
