//! The SQL behind [`RegistryStore`], written once and instantiated for SQLite and PostgreSQL
//! (both accept `$N` placeholders). Only how a write transaction starts differs: SQLite takes the
//! write lock up front (`BEGIN IMMEDIATE`, so concurrent writers wait instead of failing), and
//! PostgreSQL locks the change feed so change revisions are assigned in commit order.

use async_trait::async_trait;
use interlock_storage::Pools;
use sqlx::{PgPool, Row, SqlitePool};

use super::{Change, Commit, Kind, RegistryStore, StoredObject, Write};
use crate::error::{Error, Result};

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

fn kind_of(value: &str) -> Result<Kind> {
    Kind::parse(value).ok_or_else(|| Error::Corrupt(format!("unknown change kind {value:?}")))
}

macro_rules! sql_store {
    ($store:ident, $pool:ty, $begin:expr) => {
        pub struct $store {
            pools: Pools<$pool>,
        }

        impl $store {
            pub fn new(pools: Pools<$pool>) -> Self {
                Self { pools }
            }
        }

        #[async_trait]
        impl RegistryStore for $store {
            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1").execute(&self.pools.reads).await?;
                Ok(())
            }

            async fn get(&self, kind: Kind, name: &str) -> Result<Option<StoredObject>> {
                let row = sqlx::query("SELECT name, doc, revision FROM registry_objects WHERE kind = $1 AND name = $2")
                    .bind(kind.as_str())
                    .bind(name)
                    .fetch_optional(&self.pools.reads)
                    .await?;
                row.map(|row| Ok(StoredObject { name: row.try_get(0)?, doc: row.try_get(1)?, revision: row.try_get(2)? }))
                    .transpose()
            }

            async fn get_by_request_id(&self, kind: Kind, request_id: &str) -> Result<Option<StoredObject>> {
                let row = sqlx::query(
                    "SELECT name, doc, revision FROM registry_objects WHERE kind = $1 AND request_id = $2",
                )
                .bind(kind.as_str())
                .bind(request_id)
                .fetch_optional(&self.pools.reads)
                .await?;
                row.map(|row| Ok(StoredObject { name: row.try_get(0)?, doc: row.try_get(1)?, revision: row.try_get(2)? }))
                    .transpose()
            }

            async fn list(
                &self,
                kind: Kind,
                parent: Option<&str>,
                after_name: &str,
                limit: u32,
            ) -> Result<Vec<StoredObject>> {
                let rows = sqlx::query(
                    "SELECT name, doc, revision FROM registry_objects \
                     WHERE kind = $1 AND ($2 IS NULL OR parent = $2) AND name > $3 ORDER BY name LIMIT $4",
                )
                .bind(kind.as_str())
                .bind(parent)
                .bind(after_name)
                .bind(i64::from(limit))
                .fetch_all(&self.pools.reads)
                .await?;
                rows.into_iter()
                    .map(|row| Ok(StoredObject { name: row.try_get(0)?, doc: row.try_get(1)?, revision: row.try_get(2)? }))
                    .collect()
            }

            async fn commit(&self, commit: Commit) -> Result<i64> {
                let now = interlock_rpc::now_micros();
                let mut tx = $begin(&self.pools.writes).await?;
                for write in &commit.writes {
                    let (kind, name) = match write {
                        Write::Insert { kind, name, parent, doc, request_id } => {
                            let inserted = sqlx::query(
                                "INSERT INTO registry_objects (kind, name, parent, doc, revision, request_id) \
                                 VALUES ($1, $2, $3, $4, 1, $5)",
                            )
                            .bind(kind.as_str())
                            .bind(name)
                            .bind(parent)
                            .bind(doc)
                            .bind(request_id.as_deref())
                            .execute(&mut *tx)
                            .await;
                            match inserted {
                                Ok(_) => {}
                                Err(error) if is_unique_violation(&error) => {
                                    return Err(Error::AlreadyExists(name.clone()));
                                }
                                Err(error) => return Err(error.into()),
                            }
                            (kind, name)
                        }
                        Write::Update { kind, name, doc, expected_revision } => {
                            let updated = sqlx::query(
                                "UPDATE registry_objects SET doc = $1, revision = revision + 1 \
                                 WHERE kind = $2 AND name = $3 AND revision = $4",
                            )
                            .bind(doc)
                            .bind(kind.as_str())
                            .bind(name)
                            .bind(expected_revision)
                            .execute(&mut *tx)
                            .await?;
                            if updated.rows_affected() != 1 {
                                return Err(Error::Aborted(name.clone()));
                            }
                            (kind, name)
                        }
                        Write::Delete { kind, name, expected_revision } => {
                            let deleted = sqlx::query(
                                "DELETE FROM registry_objects WHERE kind = $1 AND name = $2 AND revision = $3",
                            )
                            .bind(kind.as_str())
                            .bind(name)
                            .bind(expected_revision)
                            .execute(&mut *tx)
                            .await?;
                            if deleted.rows_affected() != 1 {
                                return Err(Error::Aborted(name.clone()));
                            }
                            (kind, name)
                        }
                    };
                    if !kind.is_watched() {
                        continue;
                    }
                    sqlx::query("INSERT INTO registry_changes (kind, name, time_us) VALUES ($1, $2, $3)")
                        .bind(kind.as_str())
                        .bind(name)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                for (event_id, event) in &commit.audit_events {
                    sqlx::query("INSERT INTO audit_outbox (event_id, event) VALUES ($1, $2)")
                        .bind(event_id)
                        .bind(event.as_slice())
                        .execute(&mut *tx)
                        .await?;
                }
                let revision: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(revision), 0) FROM registry_changes")
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(revision)
            }

            async fn changes_after(&self, revision: i64, limit: u32) -> Result<Vec<Change>> {
                let rows = sqlx::query(
                    "SELECT revision, kind, name, time_us FROM registry_changes \
                     WHERE revision > $1 ORDER BY revision LIMIT $2",
                )
                .bind(revision)
                .bind(i64::from(limit))
                .fetch_all(&self.pools.reads)
                .await?;
                rows.into_iter()
                    .map(|row| {
                        let kind: String = row.try_get(1)?;
                        Ok(Change {
                            revision: row.try_get(0)?,
                            kind: kind_of(&kind)?,
                            name: row.try_get(2)?,
                            time_us: row.try_get(3)?,
                        })
                    })
                    .collect()
            }

            async fn latest_revision(&self) -> Result<i64> {
                Ok(sqlx::query_scalar("SELECT COALESCE(MAX(revision), 0) FROM registry_changes")
                    .fetch_one(&self.pools.reads)
                    .await?)
            }
        }
    };
}

async fn begin_sqlite(pool: &SqlitePool) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
    Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
}

async fn begin_postgres(pool: &PgPool) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    let mut tx = pool.begin().await?;
    sqlx::query("LOCK TABLE registry_changes IN EXCLUSIVE MODE").execute(&mut *tx).await?;
    Ok(tx)
}

sql_store!(SqliteStore, SqlitePool, begin_sqlite);
sql_store!(PostgresStore, PgPool, begin_postgres);
