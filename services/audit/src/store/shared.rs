//! The store implementation shared by both backends, instantiated by `audit_store_impl!` with the
//! backend's database, connection and store types.

/// Leaves per block of the resource index (`leaf_block = leaf_index >> 12`, see the migration).
pub(crate) const RESOURCE_BLOCK_BITS: u32 = 12;

/// Rows per multi-row INSERT: well below SQLite's and PostgreSQL's bind-parameter limits
/// (15 columns × 500 rows = 7,500 parameters).
pub(crate) const INSERT_CHUNK: usize = 500;

macro_rules! audit_store_impl {
    ($store:ident, $db:ty, $conn:ty) => {
        use std::collections::HashMap;

        use async_trait::async_trait;
        use sqlx::QueryBuilder;

        use $crate::domain::event::{PendingEvent, SealedEvent, StoredEvent};
        use $crate::error::{Error, Result};
        use $crate::merkle::{Hash, NodeId, completed_nodes, decompose};
        use $crate::store::shared::{INSERT_CHUNK, RESOURCE_BLOCK_BITS};
        use $crate::store::{
            AppendOutcome, Appended, AuditStore, CheckpointRow, EventQuery, EventRow, StoredCheckpoint,
            db_int, event_key, from_db_int, resource_key, stored_checkpoint, stored_event, to_hash,
        };

        const EVENT_COLUMNS: &str = "leaf_index, event_id, leaf_hash, time_us, receive_time_us, leaf_data";

        /// Node hashes read on `conn` (inside a transaction when appending, so the frontier is the
        /// one this transaction extends).
        async fn fetch_nodes(conn: &mut $conn, ids: &[NodeId]) -> Result<HashMap<NodeId, Hash>> {
            let mut found = HashMap::with_capacity(ids.len());
            let leaves: Vec<i64> = ids.iter().filter(|id| id.level == 0).map(|id| db_int(id.index)).collect();
            if !leaves.is_empty() {
                let mut query: QueryBuilder<$db> =
                    QueryBuilder::new("SELECT leaf_index, leaf_hash FROM events WHERE leaf_index IN (");
                let mut list = query.separated(", ");
                for index in &leaves {
                    list.push_bind(*index);
                }
                query.push(")");
                let rows: Vec<(i64, Vec<u8>)> = query.build_query_as().fetch_all(&mut *conn).await?;
                for (index, hash) in rows {
                    found.insert(NodeId::leaf(from_db_int(index)), to_hash(hash, || format!("leaf {index}"))?);
                }
            }
            let interior: Vec<&NodeId> = ids.iter().filter(|id| id.level > 0).collect();
            if !interior.is_empty() {
                let mut query: QueryBuilder<$db> = QueryBuilder::new("SELECT level, idx, hash FROM tree_nodes WHERE ");
                for (i, id) in interior.iter().enumerate() {
                    if i > 0 {
                        query.push(" OR ");
                    }
                    query.push("(level = ").push_bind(i64::from(id.level)).push(" AND idx = ");
                    query.push_bind(db_int(id.index)).push(")");
                }
                let rows: Vec<(i64, i64, Vec<u8>)> = query.build_query_as().fetch_all(&mut *conn).await?;
                for (level, index, hash) in rows {
                    let id = NodeId { level: level as u8, index: from_db_int(index) };
                    found.insert(id, to_hash(hash, || format!("node {level}/{index}"))?);
                }
            }
            Ok(found)
        }

        async fn insert_events(conn: &mut $conn, first_index: u64, events: &[SealedEvent]) -> Result<()> {
            for (chunk_number, chunk) in events.chunks(INSERT_CHUNK).enumerate() {
                let base = first_index + (chunk_number * INSERT_CHUNK) as u64;
                let mut query: QueryBuilder<$db> = QueryBuilder::new(
                    "INSERT INTO events (leaf_index, event_key, event_id, leaf_hash, client_digest, leaf_data, \
                     time_us, receive_time_us, service, action, outcome, actor_agency, actor_user, trace_id, \
                     case_reference) ",
                );
                query.push_values(chunk.iter().enumerate(), |mut row, (offset, event)| {
                    row.push_bind(db_int(base + offset as u64))
                        .push_bind(event_key(&event.event_id).unwrap_or_default())
                        .push_bind(event.event_id.clone())
                        .push_bind(event.leaf_hash.to_vec())
                        .push_bind(event.client_digest.to_vec())
                        .push_bind(event.leaf_data.clone())
                        .push_bind(event.time_us)
                        .push_bind(event.receive_time_us)
                        .push_bind(i64::from(event.service))
                        .push_bind(i64::from(event.action))
                        .push_bind(i64::from(event.outcome))
                        .push_bind(event.actor_agency.clone())
                        .push_bind(event.actor_user.clone())
                        .push_bind(event.trace_id.clone())
                        .push_bind(event.case_reference.clone());
                });
                query.build().execute(&mut *conn).await?;
            }
            let resources: Vec<(i64, i64, &String, &String)> = events
                .iter()
                .enumerate()
                .flat_map(|(offset, event)| {
                    let index = db_int(first_index + offset as u64);
                    event.resources.iter().enumerate().map(move |(position, (resource, agreement))| {
                        (index, position as i64, resource, agreement)
                    })
                })
                .collect();
            for chunk in resources.chunks(INSERT_CHUNK) {
                let mut query: QueryBuilder<$db> = QueryBuilder::new(
                    "INSERT INTO event_resources (leaf_index, position, leaf_block, resource_key, resource, agreement) ",
                );
                query.push_values(chunk, |mut row, (index, position, resource, agreement)| {
                    row.push_bind(*index)
                        .push_bind(*position)
                        .push_bind(*index >> RESOURCE_BLOCK_BITS)
                        .push_bind(resource_key(resource))
                        .push_bind((*resource).clone())
                        .push_bind((*agreement).clone());
                });
                query.build().execute(&mut *conn).await?;
            }
            let owners: Vec<(i64, &String)> = events
                .iter()
                .enumerate()
                .flat_map(|(offset, event)| {
                    let index = db_int(first_index + offset as u64);
                    event.owners.iter().map(move |owner| (index, owner))
                })
                .collect();
            for chunk in owners.chunks(INSERT_CHUNK * 4) {
                let mut query: QueryBuilder<$db> = QueryBuilder::new("INSERT INTO event_owners (leaf_index, owner) ");
                query.push_values(chunk, |mut row, (index, owner)| {
                    row.push_bind(*index).push_bind((*owner).clone());
                });
                query.build().execute(&mut *conn).await?;
            }
            Ok(())
        }

        async fn insert_nodes(conn: &mut $conn, nodes: &[(NodeId, Hash)]) -> Result<()> {
            for chunk in nodes.chunks(INSERT_CHUNK * 4) {
                let mut query: QueryBuilder<$db> = QueryBuilder::new("INSERT INTO tree_nodes (level, idx, hash) ");
                query.push_values(chunk, |mut row, (id, hash)| {
                    row.push_bind(i64::from(id.level)).push_bind(db_int(id.index)).push_bind(hash.to_vec());
                });
                query.build().execute(&mut *conn).await?;
            }
            Ok(())
        }

        /// Appends the WHERE clause of an event query (the table is aliased `e`).
        fn push_event_filter(query: &mut QueryBuilder<$db>, filter: &EventQuery) {
            query.push(" WHERE e.leaf_index >= ").push_bind(db_int(filter.start_leaf));
            if let Some(end) = filter.end_leaf {
                query.push(" AND e.leaf_index < ").push_bind(db_int(end));
            }
            if let Some(agency) = &filter.visible_to {
                query.push(" AND e.leaf_data IS NOT NULL AND (e.actor_agency = ").push_bind(agency.clone());
                query.push(" OR EXISTS (SELECT 1 FROM event_owners o WHERE o.leaf_index = e.leaf_index AND o.owner = ");
                query.push_bind(agency.clone()).push("))");
            }
            let mut text = |column: &str, value: &Option<String>| {
                if let Some(value) = value {
                    query.push(format!(" AND e.{column} = ")).push_bind(value.clone());
                }
            };
            text("actor_agency", &filter.actor_agency);
            text("actor_user", &filter.actor_user);
            text("trace_id", &filter.trace_id);
            text("case_reference", &filter.case_reference);
            if let Some(resource) = &filter.resource {
                // One index seek per leaf block in the range; the leaves found drive the events.
                query.push(" AND e.leaf_index IN (WITH RECURSIVE blocks (b) AS (SELECT ");
                query.push_bind(db_int(filter.start_leaf >> RESOURCE_BLOCK_BITS));
                query.push(" UNION ALL SELECT b + 1 FROM blocks WHERE b < ");
                match filter.end_leaf {
                    Some(end) => query.push_bind(db_int(end >> RESOURCE_BLOCK_BITS)),
                    None => query.push(format!("(SELECT tree_size FROM log_state WHERE id = 1) / {}", 1 << RESOURCE_BLOCK_BITS)),
                };
                query.push(") SELECT r.leaf_index FROM blocks JOIN event_resources r ON r.leaf_block = blocks.b AND r.resource_key = ");
                query.push_bind(resource_key(resource)).push(" WHERE r.resource = ");
                query.push_bind(resource.clone()).push(")");
            }
            if let Some(agreement) = &filter.agreement {
                query.push(" AND EXISTS (SELECT 1 FROM event_resources r WHERE r.leaf_index = e.leaf_index AND r.agreement = ");
                query.push_bind(agreement.clone()).push(")");
            }
            if let Some(owner) = &filter.resource_owner {
                query.push(" AND EXISTS (SELECT 1 FROM event_owners o WHERE o.leaf_index = e.leaf_index AND o.owner = ");
                query.push_bind(owner.clone()).push(")");
                if filter.exclude_own_actions {
                    query.push(" AND e.actor_agency <> ").push_bind(owner.clone());
                }
            }
            let mut one_of = |column: &str, values: &[i32]| {
                if !values.is_empty() {
                    query.push(format!(" AND e.{column} IN ("));
                    let mut list = query.separated(", ");
                    for value in values {
                        list.push_bind(i64::from(*value));
                    }
                    query.push(")");
                }
            };
            one_of("action", &filter.actions);
            one_of("outcome", &filter.outcomes);
            one_of("service", &filter.services);
            if let Some(start) = filter.start_time_us {
                query.push(" AND e.time_us >= ").push_bind(start);
            }
            if let Some(end) = filter.end_time_us {
                query.push(" AND e.time_us < ").push_bind(end);
            }
        }

        #[async_trait]
        impl AuditStore for $store {
            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1").execute(&self.pools.reads).await?;
                Ok(())
            }

            async fn append(&self, events: &[PendingEvent]) -> Result<AppendOutcome> {
                let mut tx = self.pools.writes.begin().await?;
                // Lock the log first: from here until commit no other writer assigns indexes.
                let (size, last_receive_us): (i64, i64) = sqlx::query_as(
                    "UPDATE log_state SET tree_size = tree_size WHERE id = 1 \
                     RETURNING tree_size, last_receive_time_us",
                )
                .fetch_one(&mut *tx)
                .await?;
                let size = from_db_int(size);

                let mut known: HashMap<String, (u64, Hash, Hash)> = HashMap::new();
                let mut query: QueryBuilder<$db> = QueryBuilder::new(
                    "SELECT event_id, leaf_index, leaf_hash, client_digest FROM events WHERE event_key IN (",
                );
                let mut list = query.separated(", ");
                for event in events {
                    list.push_bind(event_key(&event.event.event_id).unwrap_or_default());
                }
                query.push(")");
                let rows: Vec<(String, i64, Vec<u8>, Vec<u8>)> = query.build_query_as().fetch_all(&mut *tx).await?;
                // Other ids sharing a key prefix come back too; only the batch's own ids matter.
                let wanted: std::collections::HashSet<&str> =
                    events.iter().map(|event| event.event.event_id.as_str()).collect();
                for (event_id, index, hash, digest) in rows.into_iter().filter(|row| wanted.contains(row.0.as_str())) {
                    let hash = to_hash(hash, || format!("event {event_id}"))?;
                    let digest = to_hash(digest, || format!("event {event_id}"))?;
                    known.insert(event_id, (from_db_int(index), hash, digest));
                }

                // Leaves are ordered by receive time: never earlier than the last batch's, whatever
                // this replica's clock says.
                let receive_time_us = interlock_rpc::now_micros().max(last_receive_us);
                let mut results = Vec::with_capacity(events.len());
                let mut sealed: Vec<SealedEvent> = Vec::new();
                for event in events {
                    let event_id = &event.event.event_id;
                    if let Some((index, hash, digest)) = known.get(event_id) {
                        if *digest != event.client_digest {
                            return Err(Error::EventIdConflict(event_id.clone()));
                        }
                        results.push(Appended {
                            event_id: event_id.clone(),
                            leaf_index: *index,
                            leaf_hash: *hash,
                            duplicate: true,
                        });
                        continue;
                    }
                    let leaf = event.seal(receive_time_us);
                    let index = size + sealed.len() as u64;
                    known.insert(event_id.clone(), (index, leaf.leaf_hash, leaf.client_digest));
                    results.push(Appended {
                        event_id: event_id.clone(),
                        leaf_index: index,
                        leaf_hash: leaf.leaf_hash,
                        duplicate: false,
                    });
                    sealed.push(leaf);
                }
                if sealed.is_empty() {
                    tx.rollback().await?;
                    return Ok(AppendOutcome { results, tree_size: size });
                }

                let frontier_ids = decompose(0, size);
                let frontier_hashes = fetch_nodes(&mut *tx, &frontier_ids).await?;
                let frontier: Vec<Hash> = frontier_ids
                    .iter()
                    .map(|id| {
                        frontier_hashes.get(id).copied().ok_or_else(|| {
                            Error::Corrupt(format!("tree node {}/{} is missing", id.level, id.index))
                        })
                    })
                    .collect::<Result<_>>()?;
                let leaf_hashes: Vec<Hash> = sealed.iter().map(|event| event.leaf_hash).collect();
                let nodes = completed_nodes(size, &frontier, &leaf_hashes);

                insert_events(&mut *tx, size, &sealed).await?;
                insert_nodes(&mut *tx, &nodes).await?;
                let new_size = size + sealed.len() as u64;
                sqlx::query("UPDATE log_state SET tree_size = $1, last_receive_time_us = $2 WHERE id = 1")
                    .bind(db_int(new_size))
                    .bind(receive_time_us)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(AppendOutcome { results, tree_size: new_size })
            }

            async fn tree_size(&self) -> Result<u64> {
                let size: i64 =
                    sqlx::query_scalar("SELECT tree_size FROM log_state WHERE id = 1").fetch_one(&self.pools.reads).await?;
                Ok(from_db_int(size))
            }

            async fn get_event(&self, event_id: &str) -> Result<Option<StoredEvent>> {
                let Some(key) = event_key(event_id) else { return Ok(None) };
                let row: Option<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE event_key = $1 AND event_id = $2"
                )))
                .bind(key)
                .bind(event_id)
                .fetch_optional(&self.pools.reads)
                .await?;
                row.map(stored_event).transpose()
            }

            async fn list_events(&self, filter: &EventQuery) -> Result<Vec<StoredEvent>> {
                let mut query: QueryBuilder<$db> = QueryBuilder::new(format!(
                    "SELECT {} FROM events e",
                    EVENT_COLUMNS.split(", ").map(|c| format!("e.{c}")).collect::<Vec<_>>().join(", ")
                ));
                push_event_filter(&mut query, filter);
                query.push(if filter.descending { " ORDER BY e.leaf_index DESC" } else { " ORDER BY e.leaf_index" });
                query.push(" LIMIT ").push_bind(i64::from(filter.limit));
                let rows: Vec<EventRow> = query.build_query_as().fetch_all(&self.pools.reads).await?;
                rows.into_iter().map(stored_event).collect()
            }

            async fn leaves(&self, start: u64, count: u32) -> Result<Vec<StoredEvent>> {
                let rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE leaf_index >= $1 ORDER BY leaf_index LIMIT $2"
                )))
                .bind(db_int(start))
                .bind(i64::from(count))
                .fetch_all(&self.pools.reads)
                .await?;
                rows.into_iter().map(stored_event).collect()
            }

            async fn nodes(&self, ids: &[NodeId]) -> Result<HashMap<NodeId, Hash>> {
                let mut conn = self.pools.reads.acquire().await?;
                fetch_nodes(&mut conn, ids).await
            }

            async fn leaf_hashes(&self, start: u64, count: u32) -> Result<Vec<Hash>> {
                let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
                    "SELECT leaf_index, leaf_hash FROM events WHERE leaf_index >= $1 ORDER BY leaf_index LIMIT $2",
                )
                .bind(db_int(start))
                .bind(i64::from(count))
                .fetch_all(&self.pools.reads)
                .await?;
                rows.into_iter().map(|(index, hash)| to_hash(hash, || format!("leaf {index}"))).collect()
            }

            async fn add_checkpoint(&self, checkpoint: &StoredCheckpoint) -> Result<StoredCheckpoint> {
                sqlx::query(
                    "INSERT INTO checkpoints (tree_size, root_hash, signed_note, create_time_us) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (tree_size) DO NOTHING",
                )
                .bind(db_int(checkpoint.tree_size))
                .bind(checkpoint.root_hash.to_vec())
                .bind(&checkpoint.signed_note)
                .bind(checkpoint.create_time_us)
                .execute(&self.pools.writes)
                .await?;
                self.checkpoint(Some(checkpoint.tree_size))
                    .await?
                    .ok_or_else(|| Error::Corrupt(format!("checkpoint {} vanished", checkpoint.tree_size)))
            }

            async fn checkpoint(&self, tree_size: Option<u64>) -> Result<Option<StoredCheckpoint>> {
                let columns = "tree_size, root_hash, signed_note, create_time_us";
                let row: Option<CheckpointRow> = match tree_size {
                    Some(size) => {
                        sqlx::query_as(sqlx::AssertSqlSafe(format!(
                            "SELECT {columns} FROM checkpoints WHERE tree_size = $1"
                        )))
                        .bind(db_int(size))
                        .fetch_optional(&self.pools.reads)
                        .await?
                    }
                    None => {
                        sqlx::query_as(sqlx::AssertSqlSafe(format!(
                            "SELECT {columns} FROM checkpoints ORDER BY tree_size DESC LIMIT 1"
                        )))
                        .fetch_optional(&self.pools.reads)
                        .await?
                    }
                };
                row.map(stored_checkpoint).transpose()
            }

            async fn list_checkpoints(
                &self,
                start: u64,
                after: Option<u64>,
                descending: bool,
                limit: u32,
            ) -> Result<Vec<StoredCheckpoint>> {
                let mut query: QueryBuilder<$db> = QueryBuilder::new(
                    "SELECT tree_size, root_hash, signed_note, create_time_us FROM checkpoints WHERE tree_size >= ",
                );
                query.push_bind(db_int(start));
                if let Some(after) = after {
                    query.push(if descending { " AND tree_size < " } else { " AND tree_size > " });
                    query.push_bind(db_int(after));
                }
                query.push(if descending { " ORDER BY tree_size DESC" } else { " ORDER BY tree_size" });
                query.push(" LIMIT ").push_bind(i64::from(limit));
                let rows: Vec<CheckpointRow> = query.build_query_as().fetch_all(&self.pools.reads).await?;
                rows.into_iter().map(stored_checkpoint).collect()
            }

            async fn first_unpruned_leaf(&self) -> Result<u64> {
                let first: Option<i64> =
                    sqlx::query_scalar("SELECT MIN(leaf_index) FROM events WHERE leaf_data IS NOT NULL")
                        .fetch_one(&self.pools.reads)
                        .await?;
                match first {
                    Some(first) => Ok(from_db_int(first)),
                    None => self.tree_size().await,
                }
            }

            async fn prune(&self, before_us: i64) -> Result<u64> {
                let mut tx = self.pools.writes.begin().await?;
                sqlx::query(
                    "DELETE FROM event_resources WHERE leaf_index IN \
                     (SELECT leaf_index FROM events WHERE receive_time_us < $1 AND leaf_data IS NOT NULL)",
                )
                .bind(before_us)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "DELETE FROM event_owners WHERE leaf_index IN \
                     (SELECT leaf_index FROM events WHERE receive_time_us < $1 AND leaf_data IS NOT NULL)",
                )
                .bind(before_us)
                .execute(&mut *tx)
                .await?;
                // What a pruned event keeps is listed in event.proto: id, times, leaf hash.
                let pruned = sqlx::query(
                    "UPDATE events SET leaf_data = NULL, service = 0, action = 0, outcome = 0, actor_agency = '', \
                     actor_user = '', trace_id = '', case_reference = '' \
                     WHERE receive_time_us < $1 AND leaf_data IS NOT NULL",
                )
                .bind(before_us)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                tx.commit().await?;
                Ok(pruned)
            }
        }
    };
}
