//! The SQL behind [`RecordsStore`], written once and instantiated for SQLite and PostgreSQL
//! (both accept `$N` placeholders, `ON CONFLICT`, `RETURNING` and row-value comparisons). What
//! differs is passed in: how a write transaction starts (SQLite takes the write lock up front,
//! so concurrent writers wait instead of failing) and the full-text clause (FTS5 against a
//! tsvector with a GIN index).

use async_trait::async_trait;
use interlock_api::records::v1::ChangeKind;
use interlock_storage::Pools;
use sqlx::{AssertSqlSafe, PgPool, Row, SqlitePool};

use super::{
    CountRow, CreateRequest, ListFilter, Match, Notification, NotificationFilter, REQUEST_ID_TTL_US,
    ReadRecord, RecordsStore, SearchFilter, StoredRecord, StoredVersion, WriteBatch,
};
use crate::domain::query::{Term, to_fts5, to_tsquery};
use crate::domain::record::{IndexedPerson, IndexedSelector};
use crate::error::{Error, Result};

/// A value bound to a dynamically built statement.
#[derive(Clone, Debug)]
enum Bind {
    Int(i64),
    Text(String),
}

/// Builds a statement with `$N` placeholders.
#[derive(Default)]
struct Query {
    sql: String,
    binds: Vec<Bind>,
}

impl Query {
    fn new(sql: &str) -> Self {
        Self { sql: sql.to_owned(), binds: Vec::new() }
    }

    /// Appends `sql`, with every `?` replaced by the next placeholder for `binds`.
    fn push(&mut self, sql: &str, binds: impl IntoIterator<Item = Bind>) -> &mut Self {
        let mut binds = binds.into_iter();
        for c in sql.chars() {
            if c == '?' {
                let bind = binds.next().unwrap_or(Bind::Int(0));
                self.binds.push(bind);
                self.sql.push_str(&format!("${}", self.binds.len()));
            } else {
                self.sql.push(c);
            }
        }
        self
    }

    /// ` AND column IN (?, ?, …)` when `values` is not empty.
    fn and_in(&mut self, column: &str, values: impl IntoIterator<Item = Bind>) -> &mut Self {
        let values: Vec<Bind> = values.into_iter().collect();
        if !values.is_empty() {
            let marks = vec!["?"; values.len()].join(", ");
            self.push(&format!(" AND {column} IN ({marks})"), values);
        }
        self
    }
}

/// Rows per multi-row INSERT: each statement costs ~75 µs of driver overhead on SQLite whatever
/// its size (docs/benchmarks.md), so rows are sent in groups; 100 rows of the widest table (17
/// columns) stay far below both backends' parameter limits (SQLite 32,766, PostgreSQL 65,535),
/// and full groups always produce the same SQL, so the prepared statement is cached per
/// connection and reused.
const ROWS_PER_STATEMENT: usize = 100;

/// How a backend's multi-row INSERTs name their parameters.
#[derive(Clone, Copy)]
enum Placeholders {
    /// `$1, $2, …` (PostgreSQL).
    Numbered,
    /// Anonymous `?`, bound in order (SQLite): sqlx looks up every numbered parameter's name,
    /// and SQLite finds the name by a linear scan of the statement's parameter list, so a
    /// 1,700-parameter INSERT with `$N` costs a quadratic number of steps (measured: ~11% of
    /// ingest CPU).
    Anonymous,
}

/// The VALUES list of a multi-row INSERT for `rows` rows of `cols` parameters, in bind order.
fn values_list(rows: usize, cols: usize, placeholders: Placeholders) -> String {
    let mut sql = String::with_capacity(rows * cols * 5);
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for col in 0..cols {
            if col > 0 {
                sql.push_str(", ");
            }
            match placeholders {
                Placeholders::Numbered => sql.push_str(&format!("${}", row * cols + col + 1)),
                Placeholders::Anonymous => sql.push('?'),
            }
        }
        sql.push(')');
    }
    sql
}

/// The full-text search of one backend. Matches are walked newest first (by `seq`, the order
/// records were first contributed) so a page costs the rows it reads, not every match: ranking
/// by relevance had to score every match of a common word before the page limit applied, which
/// saturated the service at ~140 searches/s with 100,000 records (docs/benchmarks.md).
struct TextSearch {
    /// FROM clause: the index first, then `records r`, in that order (the walk must be driven
    /// by the index for the LIMIT to stop it early).
    from: &'static str,
    /// The condition, with one `?` for the rendered query.
    condition: &'static str,
    /// The ORDER BY key, newest first, that the index can produce without sorting.
    newest_first: &'static str,
    render: fn(&[Term]) -> String,
}

// CROSS JOIN fixes the loop order in SQLite: FTS5 yields rowids in descending order itself and
// each match probes `records` by its primary key; with `records` outside (say, for an owner
// filter) every match would be sorted before the first row came back.
const SQLITE_TEXT: TextSearch = TextSearch {
    from: "records_text CROSS JOIN records r ON r.seq = records_text.rowid",
    condition: "records_text MATCH ?",
    newest_first: "records_text.rowid DESC",
    render: to_fts5,
};

const POSTGRES_TEXT: TextSearch = TextSearch {
    from: "records r",
    condition: "r.fts @@ to_tsquery('english', ?)",
    newest_first: "r.seq DESC",
    render: to_tsquery,
};

/// How one backend finds records by their normalised selectors and person names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum EntityIndex {
    /// One row per selector in `record_selectors` and per name in `record_persons`, each keyed by
    /// what searches look up (PostgreSQL).
    Rows,
    /// One FTS5 row per record in `record_selector_tokens` and `record_person_tokens`, holding its
    /// [`selector_token`]s and [`person_tokens`], the names in `record_persons` keyed by record,
    /// and its title and narrative in `records_text` only, not in the records row (SQLite:
    /// migrations 0004, 0005 and 0006 say why).
    Tokens,
}

/// `prefix` and the upper-case hex of `text`: one token of FTS5's `ascii` tokenizer, whatever
/// `text` holds. Migrations 0004 and 0005 compute the same in SQL (`prefix || hex(text)`).
fn token(prefix: char, text: &str) -> String {
    format!("{prefix}{}", hex::encode_upper(text))
}

/// A selector's token: its kind, region and value.
fn selector_token(selector: &IndexedSelector) -> String {
    token('k', &format!("{}:{}:{}", selector.kind, selector.region, selector.value))
}

/// A person's tokens: the surname, and the surname with the given name when that is known.
fn person_tokens(person: &IndexedPerson) -> impl Iterator<Item = String> {
    let surname = token('s', &person.surname);
    let given =
        (!person.given.is_empty()).then(|| token('g', &format!("{}:{}", person.surname, person.given)));
    std::iter::once(surname).chain(given)
}

/// An FTS5 query for the records holding any of `tokens`.
fn any_token(tokens: impl IntoIterator<Item = String>) -> String {
    tokens.into_iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(" OR ")
}

/// Statements deleting the index entries of the record `seq` (`$1`), before it is re-indexed,
/// deleted or purged (PostgreSQL's full-text index is a column of the records row).
fn delete_index_entries(index: EntityIndex) -> &'static [&'static str] {
    match index {
        EntityIndex::Rows => &[
            "DELETE FROM record_selectors WHERE record_seq = $1",
            "DELETE FROM record_persons WHERE record_seq = $1",
        ],
        EntityIndex::Tokens => &[
            "DELETE FROM records_text WHERE rowid = $1",
            "DELETE FROM record_selector_tokens WHERE rowid = $1",
            "DELETE FROM record_person_tokens WHERE rowid = $1",
            "DELETE FROM record_persons WHERE record_seq = $1",
        ],
    }
}

const COLUMNS: &str = "r.id, r.owner, r.record_number, r.category, r.sensitivity, r.caveats, r.report_us, \
     r.review_by_us, r.version, r.deleted, r.create_us, r.update_us, r.content_hash, r.doc";

/// interlock.records.v1.ChangeKind of a deletion version: the one kind stored without content.
const DELETED: i64 = ChangeKind::Deleted as i64;

/// A version row with its content: a version row without content that is not a deletion is the
/// current version, whose content is the records row's. `$1` is [`DELETED`].
const VERSION_COLUMNS: &str = "SELECT v.version, v.change, \
     CASE WHEN v.doc IS NULL AND v.change <> $1 THEN r.doc ELSE v.doc END, v.create_us, v.user_name \
     FROM record_versions v JOIN records r ON r.id = v.record_id";

macro_rules! sql_store {
    ($store:ident, $pool:ty, $db:ty, $begin:expr, $text:expr, $index:expr, $placeholders:expr) => {
        pub struct $store {
            pools: Pools<$pool>,
        }

        impl $store {
            pub fn new(pools: Pools<$pool>) -> Self {
                Self { pools }
            }

            fn record(row: &<$db as sqlx::Database>::Row) -> Result<StoredRecord> {
                Ok(StoredRecord {
                    id: row.try_get(0)?,
                    owner: row.try_get(1)?,
                    record_number: row.try_get(2)?,
                    category: row.try_get::<i64, _>(3)? as i32,
                    sensitivity: row.try_get::<i64, _>(4)? as i32,
                    caveats: row.try_get(5)?,
                    report_us: row.try_get(6)?,
                    review_by_us: row.try_get(7)?,
                    version: row.try_get(8)?,
                    deleted: row.try_get::<i64, _>(9)? != 0,
                    create_us: row.try_get(10)?,
                    update_us: row.try_get(11)?,
                    content_hash: row.try_get(12)?,
                    doc: row.try_get(13)?,
                })
            }

            fn version_row(row: &<$db as sqlx::Database>::Row) -> Result<StoredVersion> {
                Ok(StoredVersion {
                    version: row.try_get(0)?,
                    change: row.try_get::<i64, _>(1)? as i32,
                    doc: row.try_get(2)?,
                    create_us: row.try_get(3)?,
                    user: row.try_get(4)?,
                })
            }

            fn notification(row: &<$db as sqlx::Database>::Row) -> Result<Notification> {
                Ok(Notification {
                    seq: row.try_get(0)?,
                    id: row.try_get(1)?,
                    owner: row.try_get(2)?,
                    record_id: row.try_get(3)?,
                    record_number: row.try_get(4)?,
                    searcher_agency: row.try_get(5)?,
                    searcher_user: row.try_get(6)?,
                    search_us: row.try_get(7)?,
                    purpose: row.try_get::<i64, _>(8)? as i32,
                    case_reference: row.try_get(9)?,
                    search_kind: row.try_get::<i64, _>(10)? as i32,
                    matched: row.try_get(11)?,
                    access_level: row.try_get::<i64, _>(12)? as i32,
                })
            }

            /// Queues audit events in the caller's transaction, so that every write, read and
            /// purge of this store is durable together with its events (the outbox path).
            async fn queue_audit_events(
                tx: &mut sqlx::Transaction<'static, $db>,
                events: &[&(String, Vec<u8>)],
            ) -> Result<()> {
                Self::insert_rows(tx, "audit_outbox (event_id, event)", 2, events, |statement, (event_id, event)| {
                    statement.bind(event_id).bind(event.as_slice())
                })
                .await
            }

            /// Inserts `rows` into `into` (`table (columns)`, `columns` of them), as multi-row
            /// INSERTs of ROWS_PER_STATEMENT rows: each statement costs far more than a row.
            async fn insert_rows<'r, T: Sync>(
                tx: &mut sqlx::Transaction<'static, $db>,
                into: &str,
                columns: usize,
                rows: &'r [T],
                bind: impl Fn(
                    sqlx::query::Query<'r, $db, <$db as sqlx::Database>::Arguments>,
                    &'r T,
                ) -> sqlx::query::Query<'r, $db, <$db as sqlx::Database>::Arguments>,
            ) -> Result<()> {
                for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                    let sql = format!("INSERT INTO {into} VALUES {}", values_list(chunk.len(), columns, $placeholders));
                    let statement = chunk.iter().fold(sqlx::query(AssertSqlSafe(sql)), &bind);
                    statement.execute(&mut **tx).await?;
                }
                Ok(())
            }

            async fn fetch(&self, query: Query) -> Result<Vec<<$db as sqlx::Database>::Row>> {
                let mut statement = sqlx::query(AssertSqlSafe(query.sql));
                for bind in query.binds {
                    statement = match bind {
                        Bind::Int(value) => statement.bind(value),
                        Bind::Text(value) => statement.bind(value),
                    };
                }
                Ok(statement.fetch_all(&self.pools.reads).await?)
            }
        }

        #[async_trait]
        impl RecordsStore for $store {
            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1").execute(&self.pools.reads).await?;
                Ok(())
            }

            async fn find_numbers(&self, owner: &str, numbers: &[String]) -> Result<Vec<StoredRecord>> {
                let mut found = Vec::with_capacity(numbers.len());
                // Chunks keep the statement under every backend's parameter limit.
                for chunk in numbers.chunks(500) {
                    let mut query = Query::new("");
                    query.push(&format!("SELECT {COLUMNS} FROM records r WHERE r.owner = ?"), [Bind::Text(owner.to_owned())]);
                    query.and_in("r.record_number", chunk.iter().map(|n| Bind::Text(n.clone())));
                    for row in self.fetch(query).await? {
                        found.push(Self::record(&row)?);
                    }
                }
                Ok(found)
            }

            async fn get(&self, id: &str) -> Result<Option<StoredRecord>> {
                let mut query = Query::new("");
                query.push(&format!("SELECT {COLUMNS} FROM records r WHERE r.id = ?"), [Bind::Text(id.to_owned())]);
                self.fetch(query).await?.first().map(Self::record).transpose()
            }

            async fn write(&self, batch: WriteBatch) -> Result<Vec<Option<i64>>> {
                let WriteBatch { writes, ingest, request, now_us: now, audit } = batch;
                let writes = &writes;
                let mut tx = $begin(&self.pools.writes).await?;
                let mut results: Vec<Option<i64>> = vec![None; writes.len()];
                // The record seq of each successful write, for its index rows.
                let mut seqs: Vec<Option<i64>> = vec![None; writes.len()];

                // New records first, ROWS_PER_STATEMENT to a statement: in a bulk ingest nearly
                // every write is one, and each statement costs far more than a row. A number
                // another writer took meanwhile is skipped by ON CONFLICT and reported as None.
                // Creates never depend on an update of the same batch (a number seen earlier in
                // the batch is an update), so doing them before the updates keeps the outcome.
                let creates: Vec<usize> = (0..writes.len())
                    .filter(|&i| writes[i].expected_version.is_none() && writes[i].prepared.is_some())
                    .collect();
                // The text columns exist only where the row feeds the full-text index.
                let text_in_row = $index == EntityIndex::Rows;
                for chunk in creates.chunks(ROWS_PER_STATEMENT) {
                    let sql = format!(
                        "INSERT INTO records (id, owner, record_number, category, sensitivity, caveats, {}\
                         report_us, occur_us, review_by_us, version, deleted, create_us, update_us, \
                         content_hash, doc) VALUES {} ON CONFLICT (owner, record_number) DO NOTHING RETURNING id, seq",
                        if text_in_row { "title, narrative, " } else { "" },
                        values_list(chunk.len(), if text_in_row { 17 } else { 15 }, $placeholders)
                    );
                    let mut statement = sqlx::query(AssertSqlSafe(sql));
                    for &i in chunk {
                        let (write, p) = (&writes[i], writes[i].prepared.as_ref().ok_or(Error::Corrupt("a create without content".into()))?);
                        statement = statement
                            .bind(&write.id)
                            .bind(&write.owner)
                            .bind(&write.record_number)
                            .bind(i64::from(p.content.category))
                            .bind(i64::from(p.content.sensitivity))
                            .bind(p.caveats_mask);
                        if text_in_row {
                            statement = statement.bind(&p.content.title).bind(&p.content.narrative);
                        }
                        statement = statement
                            .bind(p.report_us)
                            .bind(p.occur_us)
                            .bind(p.review_by_us)
                            .bind(1i64)
                            .bind(0i64)
                            .bind(now)
                            .bind(now)
                            .bind(&p.hash)
                            .bind(p.doc.as_slice());
                    }
                    // RETURNING gives no row order guarantee: match rows to writes by id.
                    let mut inserted = std::collections::HashMap::new();
                    for row in statement.fetch_all(&mut *tx).await? {
                        inserted.insert(row.try_get::<String, _>(0)?, row.try_get::<i64, _>(1)?);
                    }
                    for &i in chunk {
                        if let Some(seq) = inserted.get(&writes[i].id) {
                            seqs[i] = Some(*seq);
                            results[i] = Some(1);
                        }
                    }
                }

                // Updates, restores and deletions one by one, in order (rare in bulk ingest).
                for (i, write) in writes.iter().enumerate() {
                    let Some(expected) = write.expected_version else { continue };
                    let version = expected + 1;
                    // The version being superseded gets its own copy of the content now (see
                    // `record_versions` in the schema); a deletion version has none.
                    sqlx::query(
                        "UPDATE record_versions SET doc = (SELECT doc FROM records WHERE id = $1 AND version = $2) \
                         WHERE record_id = $1 AND version = $2 AND doc IS NULL AND change <> $3",
                    )
                    .bind(&write.id)
                    .bind(expected)
                    .bind(DELETED)
                    .execute(&mut *tx)
                    .await?;
                    let seq: Option<i64> = match &write.prepared {
                        Some(p) => {
                            let sql = format!(
                                "UPDATE records SET category = $1, sensitivity = $2, caveats = $3, report_us = $4, \
                                 occur_us = $5, review_by_us = $6, version = $7, deleted = 0, update_us = $8, \
                                 content_hash = $9, doc = $10{} WHERE id = $11 AND version = $12 RETURNING seq",
                                if text_in_row { ", title = $13, narrative = $14" } else { "" }
                            );
                            let statement = sqlx::query_scalar(AssertSqlSafe(sql))
                                .bind(i64::from(p.content.category))
                                .bind(i64::from(p.content.sensitivity))
                                .bind(p.caveats_mask)
                                .bind(p.report_us)
                                .bind(p.occur_us)
                                .bind(p.review_by_us)
                                .bind(version)
                                .bind(now)
                                .bind(&p.hash)
                                .bind(p.doc.as_slice())
                                .bind(&write.id)
                                .bind(expected);
                            let statement = if text_in_row {
                                statement.bind(&p.content.title).bind(&p.content.narrative)
                            } else {
                                statement
                            };
                            statement.fetch_optional(&mut *tx).await?
                        }
                        None => sqlx::query_scalar(
                            "UPDATE records SET version = $1, deleted = 1, update_us = $2 \
                             WHERE id = $3 AND version = $4 AND deleted = 0 RETURNING seq",
                        )
                        .bind(version)
                        .bind(now)
                        .bind(&write.id)
                        .bind(expected)
                        .fetch_optional(&mut *tx)
                        .await?,
                    };
                    let Some(seq) = seq else { continue };
                    for statement in delete_index_entries($index) {
                        sqlx::query(*statement).bind(seq).execute(&mut *tx).await?;
                    }
                    seqs[i] = Some(seq);
                    results[i] = Some(version);
                }

                // Index rows, versions and audit events of the successful writes, in write order,
                // as multi-row INSERTs.
                let done: Vec<usize> = (0..writes.len()).filter(|&i| results[i].is_some()).collect();
                // The content of each write that stored one (deletions index nothing).
                let indexed: Vec<(i64, &crate::domain::record::Prepared)> =
                    done.iter().filter_map(|&i| Some((seqs[i]?, writes[i].prepared.as_ref()?))).collect();
                if $index == EntityIndex::Rows {
                    let selectors: Vec<(i64, &IndexedSelector)> = indexed
                        .iter()
                        .flat_map(|(seq, p)| p.selectors.iter().map(move |s| (*seq, s)))
                        .collect();
                    Self::insert_rows(&mut tx, "record_selectors (record_seq, kind, region, value)", 4, &selectors, |statement, (seq, s)| {
                        statement.bind(*seq).bind(i64::from(s.kind)).bind(&s.region).bind(&s.value)
                    })
                    .await?;
                }
                let persons: Vec<(i64, &IndexedPerson)> =
                    indexed.iter().flat_map(|(seq, p)| p.persons.iter().map(move |person| (*seq, person))).collect();
                Self::insert_rows(
                    &mut tx,
                    "record_persons (record_seq, surname, given, middle, suffix, birth_date)",
                    6,
                    &persons,
                    |statement, (seq, person)| {
                        statement
                            .bind(*seq)
                            .bind(&person.surname)
                            .bind(&person.given)
                            .bind(&person.middle)
                            .bind(&person.suffix)
                            .bind(&person.birth_date)
                    },
                )
                .await?;
                if $index == EntityIndex::Tokens {
                    // One row of tokens per record and table, for the records that have any.
                    let token_rows = |tokens_of: fn(&crate::domain::record::Prepared) -> Vec<String>| -> Vec<(i64, String)> {
                        indexed
                            .iter()
                            .map(|(seq, p)| (*seq, tokens_of(p)))
                            .filter(|(_, tokens)| !tokens.is_empty())
                            .map(|(seq, tokens)| (seq, tokens.join(" ")))
                            .collect()
                    };
                    let tables = [
                        ("record_selector_tokens", token_rows(|p| p.selectors.iter().map(selector_token).collect())),
                        ("record_person_tokens", token_rows(|p| p.persons.iter().flat_map(person_tokens).collect())),
                    ];
                    for (table, rows) in &tables {
                        Self::insert_rows(&mut tx, &format!("{table} (rowid, tokens)"), 2, rows, |statement, (seq, tokens)| {
                            statement.bind(*seq).bind(tokens)
                        })
                        .await?;
                    }
                    Self::insert_rows(&mut tx, "records_text (rowid, title, narrative)", 3, &indexed, |statement, (seq, p)| {
                        statement.bind(*seq).bind(&p.content.title).bind(&p.content.narrative)
                    })
                    .await?;
                }
                Self::insert_rows(
                    &mut tx,
                    "record_versions (record_id, version, change, doc, create_us, user_name)",
                    6,
                    &done,
                    |statement, &i| {
                        let write = &writes[i];
                        statement
                            .bind(&write.id)
                            .bind(results[i])
                            .bind(i64::from(write.change))
                            // The current version's content is the records row's until superseded.
                            .bind(None::<&[u8]>)
                            .bind(now)
                            .bind(&write.user)
                    },
                )
                .await?;
                // Every written record is (re-)registered with the deconfliction hub.
                Self::insert_rows(&mut tx, "deconfliction_outbox (record_id)", 1, &done, |statement, &i| {
                    statement.bind(&writes[i].id)
                })
                .await?;
                let events = audit(&results);
                Self::queue_audit_events(&mut tx, &events.iter().collect::<Vec<_>>()).await?;
                if let Some(progress) = &ingest {
                    let owned = sqlx::query(
                        "UPDATE ingest_jobs SET last_batch = $1, update_us = $2 \
                         WHERE owner = $3 AND ingest_id = $4 AND stream = $5",
                    )
                    .bind(progress.batch_sequence)
                    .bind(now)
                    .bind(&progress.owner)
                    .bind(&progress.ingest_id)
                    .bind(progress.stream)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if owned == 0 {
                        // Dropping the transaction rolls the whole batch back.
                        return Err(Error::IngestTakenOver);
                    }
                }
                if let (Some(request), Some(Some(version))) = (&request, results.first()) {
                    // An expired entry for the same id (and any other) goes first, so the id is
                    // free again after REQUEST_ID_TTL_US.
                    sqlx::query("DELETE FROM create_requests WHERE create_us < $1")
                        .bind(now - REQUEST_ID_TTL_US)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(
                        "INSERT INTO create_requests (owner, request_id, input_hash, record_id, version, outcome, create_us) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (owner, request_id) DO NOTHING",
                    )
                    .bind(&request.owner)
                    .bind(&request.request_id)
                    .bind(&request.input_hash)
                    .bind(&request.record_id)
                    .bind(*version)
                    .bind(i64::from(request.outcome))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(results)
            }

            async fn list_own(
                &self,
                owner: &str,
                filter: &ListFilter,
                after: Option<(i64, String)>,
                now_us: i64,
                limit: u32,
            ) -> Result<Vec<StoredRecord>> {
                let mut query = Query::new("");
                query.push(
                    &format!("SELECT {COLUMNS} FROM records r WHERE r.owner = ? AND r.deleted = 0"),
                    [Bind::Text(owner.to_owned())],
                );
                if let Some((create_us, id)) = after {
                    query.push(" AND (r.create_us, r.id) > (?, ?)", [Bind::Int(create_us), Bind::Text(id)]);
                }
                if !filter.include_expired {
                    query.push(" AND r.review_by_us > ?", [Bind::Int(now_us)]);
                }
                if let Some(from) = filter.update_from_us {
                    query.push(" AND r.update_us >= ?", [Bind::Int(from)]);
                }
                if let Some(to) = filter.update_to_us {
                    query.push(" AND r.update_us < ?", [Bind::Int(to)]);
                }
                query.and_in("r.record_number", filter.record_numbers.iter().map(|n| Bind::Text(n.clone())));
                query.and_in("r.category", filter.categories.iter().map(|c| Bind::Int(i64::from(*c))));
                query.push(" ORDER BY r.create_us, r.id LIMIT ?", [Bind::Int(i64::from(limit))]);
                self.fetch(query).await?.iter().map(Self::record).collect()
            }

            async fn versions(&self, id: &str, before_version: i64, limit: u32) -> Result<Vec<StoredVersion>> {
                let rows = sqlx::query(AssertSqlSafe(format!(
                    "{VERSION_COLUMNS} WHERE v.record_id = $2 AND v.version < $3 ORDER BY v.version DESC LIMIT $4"
                )))
                .bind(DELETED)
                .bind(id)
                .bind(before_version)
                .bind(i64::from(limit))
                .fetch_all(&self.pools.reads)
                .await?;
                rows.iter().map(Self::version_row).collect()
            }

            async fn version(&self, id: &str, version: i64) -> Result<Option<StoredVersion>> {
                let row = sqlx::query(AssertSqlSafe(format!("{VERSION_COLUMNS} WHERE v.record_id = $2 AND v.version = $3")))
                .bind(DELETED)
                .bind(id)
                .bind(version)
                .fetch_optional(&self.pools.reads)
                .await?;
                row.as_ref().map(Self::version_row).transpose()
            }

            async fn search(
                &self,
                query: &Match,
                filter: &SearchFilter,
                now_us: i64,
                offset: u64,
                limit: u32,
            ) -> Result<Vec<StoredRecord>> {
                let text: &TextSearch = &$text;
                let mut sql = Query::new("");
                let order = match query {
                    Match::Text(terms) => {
                        sql.push(&format!("SELECT {COLUMNS} FROM {} WHERE ", text.from), []);
                        sql.push(text.condition, [Bind::Text((text.render)(terms))]);
                        text.newest_first
                    }
                    Match::Selectors(selectors) => {
                        match $index {
                            EntityIndex::Rows => {
                                sql.push(
                                    &format!("SELECT {COLUMNS} FROM records r WHERE r.seq IN (SELECT s.record_seq FROM record_selectors s WHERE "),
                                    [],
                                );
                                for (i, s) in selectors.iter().enumerate() {
                                    if i > 0 {
                                        sql.push(" OR ", []);
                                    }
                                    sql.push(
                                        "(s.value = ? AND s.kind = ? AND s.region = ?)",
                                        [Bind::Text(s.value.clone()), Bind::Int(i64::from(s.kind)), Bind::Text(s.region.clone())],
                                    );
                                }
                            }
                            EntityIndex::Tokens => {
                                sql.push(
                                    &format!(
                                        "SELECT {COLUMNS} FROM records r WHERE r.seq IN (SELECT rowid FROM record_selector_tokens \
                                         WHERE record_selector_tokens MATCH ?"
                                    ),
                                    [Bind::Text(any_token(selectors.iter().map(selector_token)))],
                                );
                            }
                        }
                        sql.push(")", []);
                        "r.report_us DESC, r.id"
                    }
                    Match::Person { surname, given, middle, suffix, birth_date } => {
                        sql.push(&format!("SELECT {COLUMNS} FROM records r WHERE r.seq IN (SELECT p.record_seq FROM record_persons p WHERE "), []);
                        if $index == EntityIndex::Tokens {
                            // The records holding the most specific token of the name, then their rows.
                            let person = IndexedPerson { surname: surname.clone(), given: given.clone(), ..IndexedPerson::default() };
                            let most_specific = person_tokens(&person).last();
                            sql.push(
                                "p.record_seq IN (SELECT rowid FROM record_person_tokens WHERE record_person_tokens MATCH ?) AND ",
                                [Bind::Text(any_token(most_specific))],
                            );
                        }
                        sql.push("p.surname = ?", [Bind::Text(surname.clone())]);
                        for (column, value) in [("p.given", given), ("p.middle", middle), ("p.suffix", suffix)] {
                            if !value.is_empty() {
                                sql.push(&format!(" AND {column} = ?"), [Bind::Text(value.clone())]);
                            }
                        }
                        if !birth_date.is_empty() {
                            // A person whose date of birth is unknown still matches.
                            sql.push(" AND (p.birth_date = '' OR p.birth_date LIKE ?)", [Bind::Text(format!("{birth_date}%"))]);
                        }
                        sql.push(")", []);
                        "r.report_us DESC, r.id"
                    }
                };
                sql.push(" AND r.deleted = 0 AND r.review_by_us > ?", [Bind::Int(now_us)]);
                sql.and_in("r.category", filter.categories.iter().map(|c| Bind::Int(i64::from(*c))));
                sql.and_in("r.owner", filter.owners.iter().map(|o| Bind::Text(o.clone())));
                if let Some(from) = filter.occur_from_us {
                    sql.push(" AND r.occur_us >= ?", [Bind::Int(from)]);
                }
                if let Some(to) = filter.occur_to_us {
                    sql.push(" AND r.occur_us < ?", [Bind::Int(to)]);
                }
                sql.push(
                    &format!(" ORDER BY {order} LIMIT ? OFFSET ?"),
                    [Bind::Int(i64::from(limit)), Bind::Int(offset as i64)],
                );
                self.fetch(sql).await?.iter().map(Self::record).collect()
            }

            async fn record_reads(&self, reads: Vec<ReadRecord>) -> Result<()> {
                let mut tx = $begin(&self.pools.writes).await?;
                let events: Vec<&(String, Vec<u8>)> = reads.iter().flat_map(|r| &r.audit_events).collect();
                Self::queue_audit_events(&mut tx, &events).await?;
                let notifications: Vec<&Notification> = reads.iter().flat_map(|r| &r.notifications).collect();
                Self::insert_rows(
                    &mut tx,
                    "access_notifications (id, owner, record_id, record_number, searcher_agency, searcher_user, \
                     search_us, purpose, case_reference, search_kind, matched, access_level)",
                    12,
                    &notifications,
                    |statement, n| {
                        statement
                            .bind(&n.id)
                            .bind(&n.owner)
                            .bind(&n.record_id)
                            .bind(&n.record_number)
                            .bind(&n.searcher_agency)
                            .bind(&n.searcher_user)
                            .bind(n.search_us)
                            .bind(i64::from(n.purpose))
                            .bind(&n.case_reference)
                            .bind(i64::from(n.search_kind))
                            .bind(n.matched.as_slice())
                            .bind(i64::from(n.access_level))
                    },
                )
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn notifications(
                &self,
                owner: &str,
                filter: &NotificationFilter,
                before_seq: i64,
                limit: u32,
            ) -> Result<Vec<Notification>> {
                let mut query = Query::new("");
                query.push(
                    "SELECT seq, id, owner, record_id, record_number, searcher_agency, searcher_user, search_us, \
                     purpose, case_reference, search_kind, matched, access_level FROM access_notifications \
                     WHERE owner = ? AND seq < ?",
                    [Bind::Text(owner.to_owned()), Bind::Int(before_seq)],
                );
                if let Some(record_id) = &filter.record_id {
                    query.push(" AND record_id = ?", [Bind::Text(record_id.clone())]);
                }
                query.and_in("searcher_agency", filter.searcher_agencies.iter().map(|a| Bind::Text(a.clone())));
                if let Some(from) = filter.from_us {
                    query.push(" AND search_us >= ?", [Bind::Int(from)]);
                }
                if let Some(to) = filter.to_us {
                    query.push(" AND search_us < ?", [Bind::Int(to)]);
                }
                query.push(" ORDER BY seq DESC LIMIT ?", [Bind::Int(i64::from(limit))]);
                self.fetch(query).await?.iter().map(Self::notification).collect()
            }

            async fn claim_ingest(&self, owner: &str, ingest_id: &str, now_us: i64) -> Result<(i64, i64)> {
                let row = sqlx::query(
                    "INSERT INTO ingest_jobs (owner, ingest_id, last_batch, stream, update_us) VALUES ($1, $2, 0, 1, $3) \
                     ON CONFLICT (owner, ingest_id) DO UPDATE SET stream = ingest_jobs.stream + 1, \
                     update_us = excluded.update_us RETURNING last_batch, stream",
                )
                .bind(owner)
                .bind(ingest_id)
                .bind(now_us)
                .fetch_one(&self.pools.reads)
                .await?;
                Ok((row.try_get(0)?, row.try_get(1)?))
            }

            async fn ingest_owner(&self, owner: &str, ingest_id: &str) -> Result<Option<i64>> {
                Ok(sqlx::query_scalar("SELECT stream FROM ingest_jobs WHERE owner = $1 AND ingest_id = $2")
                    .bind(owner)
                    .bind(ingest_id)
                    .fetch_optional(&self.pools.reads)
                    .await?)
            }

            async fn create_request(&self, owner: &str, request_id: &str, since_us: i64) -> Result<Option<CreateRequest>> {
                let row = sqlx::query(
                    "SELECT input_hash, record_id, version, outcome FROM create_requests \
                     WHERE owner = $1 AND request_id = $2 AND create_us >= $3",
                )
                .bind(owner)
                .bind(request_id)
                .bind(since_us)
                .fetch_optional(&self.pools.reads)
                .await?;
                row.map(|row| {
                    Ok(CreateRequest {
                        owner: owner.to_owned(),
                        request_id: request_id.to_owned(),
                        input_hash: row.try_get(0)?,
                        record_id: row.try_get(1)?,
                        version: row.try_get(2)?,
                        outcome: row.try_get::<i64, _>(3)? as i32,
                    })
                })
                .transpose()
            }

            async fn expired(&self, before_us: i64, owners: &[String], limit: u32) -> Result<Vec<StoredRecord>> {
                let mut query = Query::new("");
                query.push(&format!("SELECT {COLUMNS} FROM records r WHERE r.review_by_us < ?"), [Bind::Int(before_us)]);
                query.and_in("r.owner", owners.iter().map(|o| Bind::Text(o.clone())));
                query.push(" ORDER BY r.review_by_us, r.id LIMIT ?", [Bind::Int(i64::from(limit))]);
                self.fetch(query).await?.iter().map(Self::record).collect()
            }

            async fn purge(&self, ids: &[String], audit_events: Vec<(String, Vec<u8>)>) -> Result<()> {
                let mut tx = $begin(&self.pools.writes).await?;
                for id in ids {
                    let seq: Option<i64> = sqlx::query_scalar("SELECT seq FROM records WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if let Some(seq) = seq {
                        for statement in delete_index_entries($index) {
                            sqlx::query(*statement).bind(seq).execute(&mut *tx).await?;
                        }
                    }
                    sqlx::query("DELETE FROM record_versions WHERE record_id = $1").bind(id).execute(&mut *tx).await?;
                    sqlx::query("DELETE FROM records WHERE id = $1").bind(id).execute(&mut *tx).await?;
                }
                Self::queue_audit_events(&mut tx, &audit_events.iter().collect::<Vec<_>>()).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn summarize(
                &self,
                owners: &[String],
                categories: &[i32],
                max_sensitivity: Option<i32>,
                now_us: i64,
            ) -> Result<Vec<CountRow>> {
                let mut query = Query::new("");
                query.push(
                    "SELECT r.owner, r.category, r.sensitivity, COUNT(*), \
                     SUM(CASE WHEN (r.caveats & 2) <> 0 THEN 1 ELSE 0 END), \
                     SUM(CASE WHEN (r.caveats & 4) <> 0 THEN 1 ELSE 0 END), \
                     SUM(CASE WHEN (r.caveats & 6) = 6 THEN 1 ELSE 0 END) \
                     FROM records r WHERE r.deleted = 0 AND r.review_by_us > ?",
                    [Bind::Int(now_us)],
                );
                query.and_in("r.owner", owners.iter().map(|o| Bind::Text(o.clone())));
                query.and_in("r.category", categories.iter().map(|c| Bind::Int(i64::from(*c))));
                if let Some(max) = max_sensitivity {
                    query.push(" AND r.sensitivity <= ?", [Bind::Int(i64::from(max))]);
                }
                query.push(" GROUP BY r.owner, r.category, r.sensitivity ORDER BY r.owner, r.category, r.sensitivity", []);
                self.fetch(query)
                    .await?
                    .iter()
                    .map(|row| {
                        Ok(CountRow {
                            owner: row.try_get(0)?,
                            category: row.try_get::<i64, _>(1)? as i32,
                            sensitivity: row.try_get::<i64, _>(2)? as i32,
                            records: row.try_get(3)?,
                            originator_controlled: row.try_get(4)?,
                            title_iii: row.try_get(5)?,
                            both: row.try_get(6)?,
                        })
                    })
                    .collect()
            }

            async fn pending_deconfliction(&self, limit: u32) -> Result<Vec<(i64, String)>> {
                let rows = sqlx::query("SELECT seq, record_id FROM deconfliction_outbox ORDER BY seq LIMIT $1")
                    .bind(i64::from(limit))
                    .fetch_all(&self.pools.reads)
                    .await?;
                rows.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).collect()
            }

            async fn remove_deconfliction(&self, sequences: &[i64]) -> Result<()> {
                let mut tx = $begin(&self.pools.writes).await?;
                for seq in sequences {
                    sqlx::query("DELETE FROM deconfliction_outbox WHERE seq = $1").bind(seq).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }
        }
    };
}

async fn begin_sqlite(pool: &SqlitePool) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
    Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
}

async fn begin_postgres(pool: &PgPool) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    Ok(pool.begin().await?)
}

sql_store!(
    SqliteStore,
    SqlitePool,
    sqlx::Sqlite,
    begin_sqlite,
    SQLITE_TEXT,
    EntityIndex::Tokens,
    Placeholders::Anonymous
);
sql_store!(
    PostgresStore,
    PgPool,
    sqlx::Postgres,
    begin_postgres,
    POSTGRES_TEXT,
    EntityIndex::Rows,
    Placeholders::Numbered
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Migrations 0004 and 0005 compute the tokens of the rows they carry over in SQL; both must agree.
    #[tokio::test]
    async fn tokens_match_the_migrations_sql() {
        let pool = SqlitePool::connect("sqlite::memory:").await.unwrap();
        for (kind, region, value) in
            [(1, "", "+12145550147"), (3, "TX", "calle 5 de mayo 12, ñuñoa"), (9, "", "")]
        {
            let selector = IndexedSelector { kind, region: region.into(), value: value.into() };
            let in_sql: String = sqlx::query_scalar("SELECT 'k' || hex(? || ':' || ? || ':' || ?)")
                .bind(i64::from(kind))
                .bind(region)
                .bind(value)
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(selector_token(&selector), in_sql);
        }
        for (surname, given) in [("garcia", "jose"), ("núñez", ""), ("o'brien", "mary ann")] {
            let person =
                IndexedPerson { surname: surname.into(), given: given.into(), ..IndexedPerson::default() };
            let in_sql: Vec<String> = sqlx::query_scalar(
                "SELECT 's' || hex(?1) UNION ALL SELECT 'g' || hex(?1 || ':' || ?2) WHERE ?2 <> ''",
            )
            .bind(surname)
            .bind(given)
            .fetch_all(&pool)
            .await
            .unwrap();
            assert_eq!(person_tokens(&person).collect::<Vec<_>>(), in_sql);
        }
    }
}
