//! The audit outbox of a service's database, on either backend: the one implementation of the
//! `audit_outbox` and `audit_dead_letters` SQL that every service with an outbox shares (each
//! service's migrations create the two tables with the same columns).

use interlock_rpc::now_micros;
use interlock_storage::Database;
use sqlx::QueryBuilder;

/// Runs the same sqlx code on whichever backend `database` is (both take `$n` placeholders, so
/// the SQL is written once): on its read pool, or with `writes` on the connection the database's
/// other writers take, so that the outbox's deletes queue behind the store's transactions instead
/// of contending for SQLite's lock.
macro_rules! on_pool {
    (writes $database:expr, |$pool:ident| $body:expr) => {
        match $database {
            Database::Sqlite(file) => {
                let $pool = file.writes();
                $body
            }
            Database::Postgres($pool) => $body,
        }
    };
    ($database:expr, |$pool:ident| $body:expr) => {
        match $database {
            Database::Sqlite(file) => {
                let $pool = file.reads();
                $body
            }
            Database::Postgres($pool) => $body,
        }
    };
}

/// An event the audit service rejected for good, moved out of the outbox so that the rest flows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its sequence number in the outbox it came from.
    pub sequence: i64,
    pub event_id: String,
    /// The encoded event, exactly as it was queued.
    pub event: Vec<u8>,
    /// Why it was rejected (the audit service's status code and message, or a decoding error).
    pub reason: String,
    pub rejected_time_us: i64,
}

/// The audit outbox and dead letters of one service's database.
#[derive(Clone, Debug)]
pub struct SqlOutbox {
    database: Database,
}

type DeadLetterRow = (i64, String, Vec<u8>, String, i64);

impl SqlOutbox {
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// Undelivered events, oldest first: (sequence, encoded event).
    pub async fn pending(&self, limit: u32) -> Result<Vec<(i64, Vec<u8>)>, sqlx::Error> {
        const QUERY: &str = "SELECT seq, event FROM audit_outbox ORDER BY seq LIMIT $1";
        on_pool!(&self.database, |pool| sqlx::query_as(QUERY).bind(i64::from(limit)).fetch_all(pool).await)
    }

    /// Forgets delivered events.
    pub async fn delivered(&self, sequences: &[i64]) -> Result<(), sqlx::Error> {
        if sequences.is_empty() {
            return Ok(());
        }
        on_pool!(writes & self.database, |pool| {
            let mut query = QueryBuilder::new("DELETE FROM audit_outbox WHERE seq IN (");
            let mut list = query.separated(", ");
            for sequence in sequences {
                list.push_bind(*sequence);
            }
            query.push(")");
            query.build().execute(pool).await.map(drop)
        })
    }

    /// Moves the event at `sequence` from the outbox to the dead letters with `reason`, in one
    /// transaction: it is never in neither table, so nothing is lost.
    pub async fn dead_letter(&self, sequence: i64, reason: &str) -> Result<(), sqlx::Error> {
        const MOVE: &str = "INSERT INTO audit_dead_letters (seq, event_id, event, reason, rejected_time_us) \
                            SELECT seq, event_id, event, $2, $3 FROM audit_outbox WHERE seq = $1";
        const DELETE: &str = "DELETE FROM audit_outbox WHERE seq = $1";
        on_pool!(writes & self.database, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(MOVE).bind(sequence).bind(reason).bind(now_micros()).execute(&mut *tx).await?;
            sqlx::query(DELETE).bind(sequence).execute(&mut *tx).await?;
            tx.commit().await
        })
    }

    /// Dead letters, oldest first.
    pub async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, sqlx::Error> {
        const QUERY: &str = "SELECT seq, event_id, event, reason, rejected_time_us FROM audit_dead_letters \
                             ORDER BY seq LIMIT $1";
        let rows: Vec<DeadLetterRow> = on_pool!(&self.database, |pool| sqlx::query_as(QUERY)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await)?;
        Ok(rows
            .into_iter()
            .map(|(sequence, event_id, event, reason, rejected_time_us)| DeadLetter {
                sequence,
                event_id,
                event,
                reason,
                rejected_time_us,
            })
            .collect())
    }

    /// How many dead letters the database holds.
    pub async fn dead_letter_count(&self) -> Result<i64, sqlx::Error> {
        const QUERY: &str = "SELECT COUNT(*) FROM audit_dead_letters";
        on_pool!(&self.database, |pool| sqlx::query_scalar(QUERY).fetch_one(pool).await)
    }
}
