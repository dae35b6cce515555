use interlock_storage::Pools;
use sqlx::{PgConnection, PgPool, Postgres};

/// The audit store on PostgreSQL, shared by every replica: `UPDATE log_state` row-locks the log's
/// state until commit, so replicas assign leaf indexes one batch at a time.
pub struct PostgresStore {
    pools: Pools<PgPool>,
}

impl PostgresStore {
    pub fn new(pools: Pools<PgPool>) -> Self {
        Self { pools }
    }
}

audit_store_impl!(PostgresStore, Postgres, PgConnection);
