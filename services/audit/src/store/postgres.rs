use sqlx::{PgConnection, PgPool, Postgres};

/// The audit store on PostgreSQL, shared by every replica: `UPDATE log_state` row-locks the log's
/// state until commit, so replicas assign leaf indexes one batch at a time.
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

audit_store_impl!(PostgresStore, Postgres, PgConnection);
