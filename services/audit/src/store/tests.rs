//! One suite, run against every backend: SQLite always, PostgreSQL when
//! `INTERLOCK_TEST_POSTGRES_URL` is set.

use interlock_api::audit::v1::{Action, AuditEvent, AuditedResource, InterlockService, Outcome};
use interlock_rpc::{FieldViolations, now_micros, timestamp_from_micros};
use interlock_storage::testing::TestDatabase;

use super::*;
use crate::domain::event::validate;
use crate::merkle::{Plan, empty_root, root_of, verify_consistency, verify_inclusion};

const MESH: &str = "agencies/INTERLOCK/credentials/mesh";

async fn each_store() -> Vec<(TestDatabase, Arc<dyn AuditStore>)> {
    let mut stores = Vec::new();
    for database in TestDatabase::each_backend().await {
        let store = on(Database::open(database.url(), &MIGRATIONS).await.expect("open the audit database"));
        stores.push((database, store));
    }
    stores
}

fn event(n: u32, actor: &str, owner: &str) -> PendingEvent {
    event_on(n, actor, owner, &format!("records/{n}"))
}

fn event_on(n: u32, actor: &str, owner: &str, resource: &str) -> PendingEvent {
    let raw = AuditEvent {
        event_id: format!("00000000-0000-7000-8000-{n:012x}"),
        // A fixed time: the same event built twice must be byte-identical (a retry).
        time: Some(timestamp_from_micros(1_700_000_000_000_000)),
        service: InterlockService::Records as i32,
        action: Action::Read as i32,
        actor_agency: format!("agencies/{actor}"),
        actor_user: "analyst".into(),
        purpose: 1,
        resources: vec![AuditedResource {
            resource: resource.to_owned(),
            owners: vec![format!("agencies/{owner}")],
            ..Default::default()
        }],
        outcome: Outcome::Allowed as i32,
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        ..Default::default()
    };
    let mut violations = FieldViolations::new();
    validate(&raw, "events[0]", MESH, now_micros(), i64::MAX / 4, &mut violations).expect("valid event")
}

async fn root(store: &dyn AuditStore, size: u64) -> Hash {
    let plan = Plan::root(size);
    let nodes = store.nodes(&plan.nodes()).await.unwrap();
    plan.assemble(&nodes).unwrap().first().copied().unwrap_or_else(empty_root)
}

#[tokio::test]
async fn appends_assign_indexes_in_order_and_are_idempotent() {
    for (_db, store) in each_store().await {
        store.ping().await.unwrap();
        assert_eq!(store.tree_size().await.unwrap(), 0);
        let batch: Vec<_> = (0..5).map(|n| event(n, "DEA", "FBI")).collect();
        let first = store.append(&batch).await.unwrap();
        assert_eq!(first.tree_size, 5);
        assert_eq!(first.results.iter().map(|r| r.leaf_index).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
        assert!(first.results.iter().all(|r| !r.duplicate));

        // A retry, plus one new event and the same new event twice in one batch.
        let mut retry = batch.clone();
        retry.push(event(5, "DEA", "FBI"));
        retry.push(event(5, "DEA", "FBI"));
        let second = store.append(&retry).await.unwrap();
        assert_eq!(second.tree_size, 6);
        for (again, original) in second.results[..5].iter().zip(&first.results) {
            assert_eq!(
                (again.leaf_index, again.leaf_hash, again.duplicate),
                (original.leaf_index, original.leaf_hash, true)
            );
        }
        assert_eq!((second.results[5].leaf_index, second.results[5].duplicate), (5, false));
        assert_eq!((second.results[6].leaf_index, second.results[6].duplicate), (5, true));

        // The same id with other client fields fails the whole batch.
        let mut changed = event(1, "DEA", "ICE");
        changed.event.event_id = batch[1].event.event_id.clone();
        let conflict = store.append(&[event(6, "DEA", "FBI"), changed]).await;
        assert!(matches!(conflict, Err(Error::EventIdConflict(_))));
        assert_eq!(store.tree_size().await.unwrap(), 6);
        assert!(store.get_event(&event(6, "DEA", "FBI").event.event_id).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn stored_nodes_give_the_same_roots_and_proofs_as_the_leaves() {
    for (_db, store) in each_store().await {
        let mut next = 0;
        for batch_size in [1, 2, 3, 7, 16, 33, 1] {
            let batch: Vec<_> = (next..next + batch_size).map(|n| event(n, "DEA", "FBI")).collect();
            store.append(&batch).await.unwrap();
            next += batch_size;
        }
        let size = u64::from(next);
        let leaves = store.leaf_hashes(0, 1_000).await.unwrap();
        assert_eq!(leaves.len() as u64, size);
        for n in 1..=size {
            assert_eq!(root(store.as_ref(), n).await, root_of(&leaves[..n as usize]), "root of {n}");
        }
        let root_now = root(store.as_ref(), size).await;
        for index in [0, 1, 30, size - 1] {
            let plan = Plan::inclusion(index, size);
            let proof = plan.assemble(&store.nodes(&plan.nodes()).await.unwrap()).unwrap();
            verify_inclusion(index, size, &leaves[index as usize], &proof, &root_now).unwrap();
        }
        for first in [1, 5, 6, 29, size] {
            let plan = Plan::consistency(first, size);
            let proof = plan.assemble(&store.nodes(&plan.nodes()).await.unwrap()).unwrap();
            verify_consistency(first, size, &proof, &root_of(&leaves[..first as usize]), &root_now).unwrap();
        }
    }
}

#[tokio::test]
async fn concurrent_appends_leave_no_gaps() {
    for (_db, store) in each_store().await {
        let tasks: Vec<_> = (0..8u32)
            .map(|writer| {
                let store = store.clone();
                tokio::spawn(async move {
                    for round in 0..5u32 {
                        let batch: Vec<_> =
                            (0..10).map(|n| event(writer * 1_000 + round * 10 + n, "DEA", "FBI")).collect();
                        store.append(&batch).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(store.tree_size().await.unwrap(), 400);
        let leaves = store.leaves(0, 1_000).await.unwrap();
        assert!(leaves.iter().enumerate().all(|(i, leaf)| leaf.leaf_index == i as u64));
        assert!(leaves.windows(2).all(|w| w[0].receive_time_us <= w[1].receive_time_us));
        assert_eq!(root(store.as_ref(), 400).await, root_of(&store.leaf_hashes(0, 1_000).await.unwrap()));
    }
}

#[tokio::test]
async fn queries_follow_visibility_and_pruning_keeps_hashes() {
    for (_db, store) in each_store().await {
        store
            .append(&[
                event(0, "DEA", "FBI"),
                event(1, "FBI", "FBI"),
                event(2, "ICE", "ATF"),
                event(3, "DEA", "DEA"),
            ])
            .await
            .unwrap();
        let ids = |events: Vec<StoredEvent>| events.into_iter().map(|e| e.leaf_index).collect::<Vec<_>>();
        let all = EventQuery { limit: 100, ..Default::default() };
        assert_eq!(ids(store.list_events(&all).await.unwrap()), [0, 1, 2, 3]);
        let fbi = EventQuery { visible_to: Some("agencies/FBI".into()), ..all.clone() };
        assert_eq!(ids(store.list_events(&fbi).await.unwrap()), [0, 1]);
        let accesses_by_others = EventQuery {
            resource_owner: Some("agencies/FBI".into()),
            exclude_own_actions: true,
            ..fbi.clone()
        };
        assert_eq!(ids(store.list_events(&accesses_by_others).await.unwrap()), [0]);
        let newest = EventQuery { descending: true, limit: 2, ..all.clone() };
        assert_eq!(ids(store.list_events(&newest).await.unwrap()), [3, 2]);
        let by_resource = EventQuery { resource: Some("records/2".into()), ..all.clone() };
        assert_eq!(ids(store.list_events(&by_resource).await.unwrap()), [2]);

        let hashes = store.leaf_hashes(0, 10).await.unwrap();
        assert_eq!(store.prune(now_micros() + 1).await.unwrap(), 4);
        assert_eq!(store.leaf_hashes(0, 10).await.unwrap(), hashes);
        assert_eq!(store.first_unpruned_leaf().await.unwrap(), 4);
        assert!(store.list_events(&fbi).await.unwrap().is_empty());
        assert_eq!(store.list_events(&all).await.unwrap().len(), 4);
        // The id stays reserved after pruning.
        let again = store.append(&[event(0, "DEA", "FBI")]).await.unwrap();
        assert!(again.results[0].duplicate);
    }
}

#[tokio::test]
async fn resource_lookups_span_the_index_blocks() {
    for (_db, store) in each_store().await {
        // 9,000 leaves: three blocks of the resource index; records/7 is read at leaves 7, 4107
        // and 8207, one in each.
        let events: Vec<_> =
            (0..9_000).map(|n| event_on(n, "DEA", "FBI", &format!("records/{}", n % 4_100))).collect();
        for batch in events.chunks(1_000) {
            store.append(batch).await.unwrap();
        }
        let ids = |events: Vec<StoredEvent>| events.into_iter().map(|e| e.leaf_index).collect::<Vec<_>>();
        let seven = EventQuery { resource: Some("records/7".into()), limit: 100, ..Default::default() };
        assert_eq!(ids(store.list_events(&seven).await.unwrap()), [7, 4107, 8207]);
        let from = EventQuery { start_leaf: 4108, ..seven.clone() };
        assert_eq!(ids(store.list_events(&from).await.unwrap()), [8207]);
        let until = EventQuery { end_leaf: Some(8207), ..seven.clone() };
        assert_eq!(ids(store.list_events(&until).await.unwrap()), [7, 4107]);
        let newest = EventQuery { descending: true, limit: 1, ..seven.clone() };
        assert_eq!(ids(store.list_events(&newest).await.unwrap()), [8207]);
        let visible = EventQuery { visible_to: Some("agencies/ICE".into()), ..seven.clone() };
        assert!(store.list_events(&visible).await.unwrap().is_empty(), "ICE neither acted nor owns it");
        let unknown = EventQuery { resource: Some("records/9999".into()), ..seven.clone() };
        assert!(store.list_events(&unknown).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn checkpoints_are_kept_once_per_size() {
    for (_db, store) in each_store().await {
        assert_eq!(store.checkpoint(None).await.unwrap(), None);
        let checkpoint = |size: u64, note: &str| StoredCheckpoint {
            tree_size: size,
            root_hash: [size as u8; 32],
            signed_note: note.into(),
            create_time_us: 1,
        };
        store.add_checkpoint(&checkpoint(0, "zero")).await.unwrap();
        store.add_checkpoint(&checkpoint(3, "three")).await.unwrap();
        // A second replica signing the same size keeps the first.
        assert_eq!(store.add_checkpoint(&checkpoint(3, "other")).await.unwrap().signed_note, "three");
        assert_eq!(store.checkpoint(None).await.unwrap().unwrap().tree_size, 3);
        let sizes = |list: Vec<StoredCheckpoint>| list.into_iter().map(|c| c.tree_size).collect::<Vec<_>>();
        assert_eq!(sizes(store.list_checkpoints(0, None, false, 10).await.unwrap()), [0, 3]);
        assert_eq!(sizes(store.list_checkpoints(0, Some(3), true, 10).await.unwrap()), [0]);
    }
}
