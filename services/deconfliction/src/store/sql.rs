//! The SQL behind [`DeconflictionStore`], written once for SQLite and PostgreSQL (both take `$N`
//! placeholders). Writers are serialised: SQLite by `BEGIN IMMEDIATE`, PostgreSQL by an
//! exclusive lock on the index feed, so feed revisions and event sequences follow commit order.

use async_trait::async_trait;
use interlock_storage::Pools;
use sqlx::{PgPool, Row, SqlitePool};

use super::{CheckRecord, Committed, DeconflictionStore, Event, RegistrationWrite};
use crate::domain::conflict::{Conflict, DETECTED};
use crate::domain::registration::{Kind, Registration};
use crate::error::{Error, Result};

fn decode<T: serde::de::DeserializeOwned>(doc: &str, what: &str) -> Result<T> {
    serde_json::from_str(doc).map_err(|error| Error::Corrupt(format!("{what}: {error}")))
}

fn encode<T: serde::Serialize>(value: &T) -> String {
    // Plain structs with string keys: serialising cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

fn kind_str(kind: Kind) -> &'static str {
    match kind {
        Kind::Target => "target",
        Kind::Operation => "operation",
        Kind::Record => "record",
    }
}

const REGISTRATION: &str = "SELECT doc, revision FROM registrations";
const CONFLICT: &str = "SELECT doc, revision FROM conflicts";

macro_rules! sql_store {
    ($store:ident, $pool:ty, $begin:expr, $feed:expr) => {
        pub struct $store {
            pools: Pools<$pool>,
            /// What the index feed is read on (see `sqlite_feed`).
            feed: $pool,
        }

        impl $store {
            pub fn new(pools: Pools<$pool>) -> Self {
                Self { feed: $feed(&pools.reads), pools }
            }

            async fn registrations_where(&self, clause: &str, binds: &[&str], ints: &[i64]) -> Result<Vec<(Registration, i64)>> {
                let sql = format!("{REGISTRATION} {clause}");
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for value in binds {
                    query = query.bind(*value);
                }
                for value in ints {
                    query = query.bind(*value);
                }
                let rows = query.fetch_all(&self.pools.reads).await?;
                rows.iter()
                    .map(|row| Ok((decode(&row.try_get::<String, _>(0)?, "registration")?, row.try_get(1)?)))
                    .collect()
            }

            async fn conflicts_where(&self, clause: &str, binds: &[&str], ints: &[i64]) -> Result<Vec<(Conflict, i64)>> {
                let sql = format!("{CONFLICT} {clause}");
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for value in binds {
                    query = query.bind(*value);
                }
                for value in ints {
                    query = query.bind(*value);
                }
                let rows = query.fetch_all(&self.pools.reads).await?;
                rows.iter()
                    .map(|row| Ok((decode(&row.try_get::<String, _>(0)?, "conflict")?, row.try_get(1)?)))
                    .collect()
            }
        }

        #[async_trait]
        impl DeconflictionStore for $store {
            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1").execute(&self.pools.reads).await?;
                Ok(())
            }

            async fn registration(&self, id: i64) -> Result<Option<(Registration, i64)>> {
                Ok(self.registrations_where("WHERE id = $1", &[], &[id]).await?.pop())
            }

            async fn registration_by_number(&self, number: &str) -> Result<Option<(Registration, i64)>> {
                Ok(self.registrations_where("WHERE number = $1", &[number], &[]).await?.pop())
            }

            async fn registration_by_request(&self, agency: &str, request_id: &str) -> Result<Option<(Registration, i64)>> {
                Ok(self.registrations_where("WHERE agency = $1 AND request_id = $2", &[agency, request_id], &[]).await?.pop())
            }

            async fn list_registrations(
                &self,
                agency: &str,
                kind: &str,
                case_reference: Option<&str>,
                after_id: i64,
                limit: u32,
            ) -> Result<Vec<(Registration, i64)>> {
                match case_reference {
                    Some(case) => {
                        self.registrations_where(
                            "WHERE agency = $1 AND kind = $2 AND case_reference = $3 AND id > $4 ORDER BY id LIMIT $5",
                            &[agency, kind, case],
                            &[after_id, i64::from(limit)],
                        )
                        .await
                    }
                    None => {
                        self.registrations_where(
                            "WHERE agency = $1 AND kind = $2 AND id > $3 ORDER BY id LIMIT $4",
                            &[agency, kind],
                            &[after_id, i64::from(limit)],
                        )
                        .await
                    }
                }
            }

            async fn scan_registrations(&self, after_id: i64, limit: u32) -> Result<Vec<Registration>> {
                let rows = self.registrations_where("WHERE id > $1 ORDER BY id LIMIT $2", &[], &[after_id, i64::from(limit)]).await?;
                Ok(rows.into_iter().map(|(registration, _)| registration).collect())
            }

            async fn index_changes_after(&self, revision: i64, limit: u32) -> Result<Vec<(i64, i64)>> {
                let rows = sqlx::query(
                    "SELECT revision, registration_id FROM index_changes WHERE revision > $1 ORDER BY revision LIMIT $2",
                )
                .bind(revision)
                .bind(i64::from(limit))
                .fetch_all(&self.feed)
                .await?;
                rows.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).collect()
            }

            async fn latest_index_revision(&self) -> Result<i64> {
                Ok(sqlx::query_scalar("SELECT COALESCE(MAX(revision), 0) FROM index_changes").fetch_one(&self.pools.reads).await?)
            }

            async fn next_number(&self, year: i32) -> Result<String> {
                let mut tx = $begin(&self.pools.writes).await?;
                let value = next_counter(&mut tx, &format!("DX-{year}")).await?;
                tx.commit().await?;
                Ok(format!("DX-{year}-{value:06}"))
            }

            async fn commit_registrations(
                &self,
                index_revision: i64,
                year: i32,
                writes: Vec<RegistrationWrite>,
                audit: Vec<(String, Vec<u8>)>,
            ) -> Result<Committed> {
                let now = interlock_rpc::now_micros();
                let mut tx = $begin(&self.pools.writes).await?;
                let latest: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(revision), 0) FROM index_changes")
                    .fetch_one(&mut *tx)
                    .await?;
                if latest != index_revision {
                    return Err(Error::Stale);
                }
                let mut committed = Committed { registrations: Vec::new(), conflicts: Vec::new(), index_revision: latest };
                for write in writes {
                    let mut registration = write.registration;
                    let revision = match write.expected_revision {
                        Some(expected) => {
                            let updated = sqlx::query(
                                "UPDATE registrations SET doc = $1, case_reference = $2, revision = revision + 1 \
                                 WHERE id = $3 AND revision = $4",
                            )
                            .bind(encode(&registration))
                            .bind(&registration.case_reference)
                            .bind(registration.id)
                            .bind(expected)
                            .execute(&mut *tx)
                            .await?;
                            if updated.rows_affected() != 1 {
                                return Err(Error::Aborted(registration.number.clone()));
                            }
                            expected + 1
                        }
                        None => {
                            if registration.number.is_empty() {
                                let value = next_counter(&mut tx, &format!("DX-{year}")).await?;
                                registration.number = format!("DX-{year}-{value:06}");
                            }
                            let id: i64 = sqlx::query_scalar(
                                "INSERT INTO registrations (number, agency, kind, case_reference, doc, revision, request_id, create_time_us) \
                                 VALUES ($1, $2, $3, $4, '{}', 1, $5, $6) RETURNING id",
                            )
                            .bind(&registration.number)
                            .bind(&registration.agency)
                            .bind(kind_str(registration.kind))
                            .bind(&registration.case_reference)
                            .bind(write.request_id.as_deref())
                            .bind(now)
                            .fetch_one(&mut *tx)
                            .await?;
                            registration.id = id;
                            sqlx::query("UPDATE registrations SET doc = $1 WHERE id = $2")
                                .bind(encode(&registration))
                                .bind(id)
                                .execute(&mut *tx)
                                .await?;
                            1
                        }
                    };
                    sqlx::query("INSERT INTO index_changes (registration_id, time_us) VALUES ($1, $2)")
                        .bind(registration.id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    for mut conflict in write.conflicts {
                        conflict.parties[1].registration_id = registration.id;
                        conflict.parties[1].number = registration.number.clone();
                        let (low, high) = {
                            let (a, b) = (conflict.parties[0].registration_id, conflict.parties[1].registration_id);
                            (a.min(b), a.max(b))
                        };
                        let value = next_counter(&mut tx, &format!("CF-{year}")).await?;
                        conflict.number = format!("CF-{year}-{value:06}");
                        let inserted: Option<i64> = sqlx::query_scalar(
                            "INSERT INTO conflicts (name, pair, doc, escalation_due_us, detect_time_us, revision) \
                             VALUES ($1, $2, '{}', $3, $4, 1) ON CONFLICT (pair) DO NOTHING RETURNING id",
                        )
                        .bind(&conflict.number)
                        .bind(format!("{low}:{high}"))
                        .bind(conflict.escalation_due_us)
                        .bind(conflict.detect_time_us)
                        .fetch_optional(&mut *tx)
                        .await?;
                        // The pair already has a conflict (a renewed or updated registration): keep it.
                        let Some(id) = inserted else { continue };
                        conflict.id = id;
                        sqlx::query("UPDATE conflicts SET doc = $1 WHERE id = $2").bind(encode(&conflict)).bind(id).execute(&mut *tx).await?;
                        for party in &conflict.parties {
                            sqlx::query("INSERT INTO conflict_parties (conflict_id, agency, registration_id) VALUES ($1, $2, $3)")
                                .bind(id)
                                .bind(&party.agency)
                                .bind(party.registration_id)
                                .execute(&mut *tx)
                                .await?;
                            insert_event(&mut tx, &party.agency, id, DETECTED, &registration.agency, now).await?;
                        }
                        committed.conflicts.push(conflict);
                    }
                    committed.registrations.push((registration, revision));
                }
                insert_audit(&mut tx, &audit).await?;
                committed.index_revision = sqlx::query_scalar("SELECT COALESCE(MAX(revision), 0) FROM index_changes")
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(committed)
            }

            async fn update_conflict(
                &self,
                conflict: &Conflict,
                expected_revision: i64,
                events: Vec<Event>,
                audit: Vec<(String, Vec<u8>)>,
            ) -> Result<i64> {
                let mut tx = $begin(&self.pools.writes).await?;
                let updated = sqlx::query(
                    "UPDATE conflicts SET doc = $1, escalation_due_us = $2, revision = revision + 1 WHERE id = $3 AND revision = $4",
                )
                .bind(encode(conflict))
                .bind(conflict.escalation_due_us)
                .bind(conflict.id)
                .bind(expected_revision)
                .execute(&mut *tx)
                .await?;
                if updated.rows_affected() != 1 {
                    return Err(Error::Aborted(conflict.name()));
                }
                for event in &events {
                    insert_event(&mut tx, &event.audience, event.conflict_id, event.event_type, &event.actor_agency, event.time_us)
                        .await?;
                }
                insert_audit(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok(expected_revision + 1)
            }

            async fn record_checks(&self, checks: Vec<CheckRecord>) -> Result<Vec<bool>> {
                if checks.is_empty() {
                    return Ok(Vec::new());
                }
                // `$begin` locks the feed, so no registration commits between this read and ours.
                let mut tx = $begin(&self.pools.writes).await?;
                let latest: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(revision), 0) FROM index_changes")
                    .fetch_one(&mut *tx)
                    .await?;
                let recorded: Vec<bool> =
                    checks.iter().map(|check| check.index_revision.is_none_or(|revision| revision >= latest)).collect();
                let checks: Vec<CheckRecord> =
                    checks.into_iter().zip(&recorded).filter(|(_, recorded)| **recorded).map(|(check, _)| check).collect();
                if checks.is_empty() {
                    return Ok(recorded);
                }
                insert_checks(&mut tx, &checks).await?;
                let events: Vec<&Event> = checks.iter().flat_map(|check| &check.events).collect();
                insert_events(&mut tx, &events).await?;
                let audit: Vec<(String, Vec<u8>)> = checks.into_iter().flat_map(|check| check.audit).collect();
                insert_audit(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok(recorded)
            }

            async fn record_audit(&self, audit: Vec<(String, Vec<u8>)>) -> Result<()> {
                // Not `$begin`: audit rows need no lock on the index feed.
                let mut tx = self.pools.writes.begin().await?;
                insert_audit(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn conflict(&self, id: i64) -> Result<Option<(Conflict, i64)>> {
                Ok(self.conflicts_where("WHERE id = $1", &[], &[id]).await?.pop())
            }

            async fn conflict_by_number(&self, number: &str) -> Result<Option<(Conflict, i64)>> {
                Ok(self.conflicts_where("WHERE name = $1", &[number], &[]).await?.pop())
            }

            async fn list_conflicts(&self, agency: Option<&str>, before_id: i64, limit: u32) -> Result<Vec<(Conflict, i64)>> {
                match agency {
                    Some(agency) => {
                        self.conflicts_where(
                            "WHERE id IN (SELECT conflict_id FROM conflict_parties WHERE agency = $1) AND id < $2 ORDER BY id DESC LIMIT $3",
                            &[agency],
                            &[before_id, i64::from(limit)],
                        )
                        .await
                    }
                    None => self.conflicts_where("WHERE id < $1 ORDER BY id DESC LIMIT $2", &[], &[before_id, i64::from(limit)]).await,
                }
            }

            async fn conflicts_of(&self, registration_id: i64) -> Result<Vec<(Conflict, i64)>> {
                self.conflicts_where(
                    "WHERE id IN (SELECT conflict_id FROM conflict_parties WHERE registration_id = $1) ORDER BY id",
                    &[],
                    &[registration_id],
                )
                .await
            }

            async fn due_escalations(&self, now_us: i64, limit: u32) -> Result<Vec<(Conflict, i64)>> {
                self.conflicts_where(
                    "WHERE escalation_due_us IS NOT NULL AND escalation_due_us <= $1 ORDER BY escalation_due_us LIMIT $2",
                    &[],
                    &[now_us, i64::from(limit)],
                )
                .await
            }

            async fn events_after(&self, audience: &str, sequence: i64, limit: u32) -> Result<Vec<Event>> {
                let rows = sqlx::query(
                    "SELECT sequence, audience, conflict_id, event_type, actor_agency, time_us FROM conflict_events \
                     WHERE audience = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
                )
                .bind(audience)
                .bind(sequence)
                .bind(i64::from(limit))
                .fetch_all(&self.pools.reads)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok(Event {
                            sequence: row.try_get(0)?,
                            audience: row.try_get(1)?,
                            conflict_id: row.try_get(2)?,
                            event_type: row.try_get::<i64, _>(3)? as i32,
                            actor_agency: row.try_get(4)?,
                            time_us: row.try_get(5)?,
                        })
                    })
                    .collect()
            }

            async fn count_checks(&self, agency: &str, start_us: i64, end_us: i64) -> Result<i64> {
                Ok(sqlx::query_scalar(
                    "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM check_counts \
                     WHERE agency = $1 AND second_us >= $2 AND second_us < $3",
                )
                    .bind(agency)
                    .bind(check_second(start_us))
                    .bind(end_us)
                    .fetch_one(&self.pools.reads)
                    .await?)
            }
        }
    };
}

macro_rules! transaction_helpers {
    ($db:ty) => {
        pub(super) async fn next_counter(tx: &mut sqlx::Transaction<'static, $db>, name: &str) -> Result<i64> {
            Ok(sqlx::query_scalar(
                "INSERT INTO counters (name, value) VALUES ($1, 1) \
                 ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value",
            )
            .bind(name)
            .fetch_one(&mut **tx)
            .await?)
        }

        pub(super) async fn insert_event(
            tx: &mut sqlx::Transaction<'static, $db>,
            audience: &str,
            conflict_id: i64,
            event_type: i32,
            actor_agency: &str,
            time_us: i64,
        ) -> Result<()> {
            sqlx::query(
                "INSERT INTO conflict_events (audience, conflict_id, event_type, actor_agency, time_us) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(audience)
            .bind(conflict_id)
            .bind(i64::from(event_type))
            .bind(actor_agency)
            .bind(time_us)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        /// Rows per multi-row INSERT: each statement costs the driver about as much as a row
        /// costs SQLite, and 500 rows of at most 5 binds stay far below both backends' limits.
        const ROWS_PER_INSERT: usize = 500;

        pub(super) async fn insert_audit(tx: &mut sqlx::Transaction<'static, $db>, audit: &[(String, Vec<u8>)]) -> Result<()> {
            for chunk in audit.chunks(ROWS_PER_INSERT) {
                let mut insert = sqlx::QueryBuilder::<$db>::new("INSERT INTO audit_outbox (event_id, event) ");
                insert.push_values(chunk, |mut row, (event_id, event)| {
                    row.push_bind(event_id.as_str()).push_bind(event.as_slice());
                });
                insert.build().execute(&mut **tx).await?;
            }
            Ok(())
        }

        /// Watch events in the order given, so their sequence numbers follow it.
        pub(super) async fn insert_events(tx: &mut sqlx::Transaction<'static, $db>, events: &[&Event]) -> Result<()> {
            for chunk in events.chunks(ROWS_PER_INSERT) {
                let mut insert = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO conflict_events (audience, conflict_id, event_type, actor_agency, time_us) ",
                );
                insert.push_values(chunk, |mut row, event| {
                    row.push_bind(event.audience.as_str())
                        .push_bind(event.conflict_id)
                        .push_bind(i64::from(event.event_type))
                        .push_bind(event.actor_agency.as_str())
                        .push_bind(event.time_us);
                });
                insert.build().execute(&mut **tx).await?;
            }
            Ok(())
        }

        /// Adds the checks to their agency's count for the second they were made in: one row
        /// per agency and second, whatever the number of checks.
        pub(super) async fn insert_checks(tx: &mut sqlx::Transaction<'static, $db>, checks: &[CheckRecord]) -> Result<()> {
            let mut counts = std::collections::BTreeMap::<(&str, i64), i64>::new();
            for check in checks {
                *counts.entry((check.agency.as_str(), check_second(check.time_us))).or_default() += 1;
            }
            let counts: Vec<_> = counts.into_iter().collect();
            for chunk in counts.chunks(ROWS_PER_INSERT) {
                let mut insert = sqlx::QueryBuilder::<$db>::new("INSERT INTO check_counts (agency, second_us, count) ");
                insert.push_values(chunk, |mut row, ((agency, second_us), count)| {
                    row.push_bind(*agency).push_bind(*second_us).push_bind(*count);
                });
                insert.push(
                    " ON CONFLICT (agency, second_us) DO UPDATE SET count = check_counts.count + excluded.count",
                );
                insert.build().execute(&mut **tx).await?;
            }
            Ok(())
        }
    };
}

/// The second a check is counted in. A period counts every second that begins in
/// [start rounded down to its second, end): exact for whole-second bounds, and a report whose
/// period ends now includes the checks made in the current second.
fn check_second(time_us: i64) -> i64 {
    time_us - time_us.rem_euclid(1_000_000)
}

mod sqlite_helpers {
    use super::*;
    transaction_helpers!(sqlx::Sqlite);
}

mod postgres_helpers {
    use super::*;
    transaction_helpers!(sqlx::Postgres);
}

async fn begin_sqlite(pool: &SqlitePool) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
    Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
}

async fn begin_postgres(pool: &PgPool) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    let mut tx = pool.begin().await?;
    sqlx::query("LOCK TABLE index_changes IN EXCLUSIVE MODE").execute(&mut *tx).await?;
    Ok(tx)
}

/// Every check first reads the index feed (see `Deconfliction::catch_up`), and a connection that
/// did not make the last commit starts by emptying its page cache, at a cost that grows with the
/// pages it holds: the feed is read on its own connection with a small cache.
fn sqlite_feed(pool: &SqlitePool) -> SqlitePool {
    let options = pool.connect_options().as_ref().clone().pragma("cache_size", "-1024");
    sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect_lazy_with(options)
}

mod sqlite_store {
    use super::sqlite_helpers::{insert_audit, insert_checks, insert_event, insert_events, next_counter};
    use super::*;
    sql_store!(SqliteStore, SqlitePool, begin_sqlite, sqlite_feed);
}

mod postgres_store {
    use super::postgres_helpers::{insert_audit, insert_checks, insert_event, insert_events, next_counter};
    use super::*;
    sql_store!(PostgresStore, PgPool, begin_postgres, PgPool::clone);
}

pub use postgres_store::PostgresStore;
pub use sqlite_store::SqliteStore;
