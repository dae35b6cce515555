//! One suite, run against every backend: SQLite always, PostgreSQL when
//! `INTERLOCK_TEST_POSTGRES_URL` is set.

use interlock_audit_client::SqlOutbox;
use interlock_storage::testing::TestDatabase;

use super::*;
use crate::domain::agency::{Agency, Contact, NewAgency};

fn agency(code: &str) -> Agency {
    NewAgency {
        code: code.into(),
        display_name: format!("{code} agency"),
        parent_department: "Department of Justice".into(),
        jurisdiction: "United States".into(),
        duty_desk: Some(Contact {
            name: format!("{code} duty desk"),
            phone: "+12025550100".into(),
            email: "desk@example.gov".into(),
            around_the_clock: true,
        }),
        contacts: vec![],
    }
    .validate("agency", 1_000)
    .expect("valid agency")
}

async fn each_repository() -> Vec<(TestDatabase, Repository)> {
    let mut repositories = Vec::new();
    for database in TestDatabase::each_backend().await {
        let opened = Database::open(database.url(), &MIGRATIONS).await.expect("open the registry database");
        repositories.push((database, Repository::new(on(opened))));
    }
    repositories
}

/// The audit outbox of a test database, through the relay's own code.
async fn outbox(database: &TestDatabase) -> SqlOutbox {
    SqlOutbox::new(Database::open(database.url(), &MIGRATIONS).await.expect("open the registry database"))
}

#[tokio::test]
async fn inserted_documents_read_back_with_their_revision() {
    for (_db, repo) in each_repository().await {
        repo.store().ping().await.unwrap();
        let dea = agency("DEA");
        let mut commit = Commit::default();
        commit.insert(&dea, Some("r1"));
        assert_eq!(repo.store().commit(commit).await.unwrap(), 1);
        let stored = repo.get::<Agency>("agencies/DEA").await.unwrap().unwrap();
        assert_eq!((stored.value, stored.revision), (dea.clone(), 1));
        assert_eq!(repo.get_by_request_id::<Agency>("r1").await.unwrap().unwrap().value, dea);
        assert!(repo.get::<Agency>("agencies/FBI").await.unwrap().is_none());
    }
}

#[tokio::test]
async fn duplicate_names_and_stale_revisions_change_nothing() {
    for (db, repo) in each_repository().await {
        let mut dea = agency("DEA");
        let mut commit = Commit::default();
        commit.insert(&dea, None);
        repo.store().commit(commit).await.unwrap();

        // A batch that fails part-way leaves nothing behind: not the first insert, not its audit event.
        let mut commit = Commit::default();
        commit.insert(&agency("FBI"), None).insert(&dea, None).audit("e1".into(), vec![1]);
        assert!(
            matches!(repo.store().commit(commit).await, Err(Error::AlreadyExists(name)) if name == "agencies/DEA")
        );
        assert!(repo.get::<Agency>("agencies/FBI").await.unwrap().is_none());
        assert!(outbox(&db).await.pending(10).await.unwrap().is_empty());

        dea.display_name = "renamed".into();
        let mut commit = Commit::default();
        commit.update(&dea, 1);
        repo.store().commit(commit).await.unwrap();
        let mut stale = Commit::default();
        stale.update(&dea, 1);
        assert!(matches!(repo.store().commit(stale).await, Err(Error::Aborted(_))));
        let stored = repo.get::<Agency>("agencies/DEA").await.unwrap().unwrap();
        assert_eq!((stored.value.display_name.as_str(), stored.revision), ("renamed", 2));
    }
}

#[tokio::test]
async fn the_change_feed_follows_commits_in_order() {
    for (_db, repo) in each_repository().await {
        for code in ["ICE", "ATF"] {
            let mut commit = Commit::default();
            commit.insert(&agency(code), None);
            repo.store().commit(commit).await.unwrap();
        }
        let changes = repo.store().changes_after(0, 10).await.unwrap();
        let names: Vec<_> = changes.iter().map(|c| (c.revision, c.kind, c.name.as_str())).collect();
        assert_eq!(names, [(1, Kind::Agency, "agencies/ICE"), (2, Kind::Agency, "agencies/ATF")]);
        assert_eq!(repo.store().changes_after(1, 10).await.unwrap().len(), 1);
        assert_eq!(repo.store().latest_revision().await.unwrap(), 2);
    }
}

#[tokio::test]
async fn an_amendment_receipt_is_found_by_request_id_and_stays_out_of_the_change_feed() {
    use crate::domain::agreement::AmendmentReceipt;

    for (_db, repo) in each_repository().await {
        let receipt = AmendmentReceipt { agreement_id: "a1".into(), version: 2 };
        let mut commit = Commit::default();
        commit.insert(&agency("DEA"), None).insert(&receipt, Some("amend-1"));
        repo.store().commit(commit).await.unwrap();
        let found = repo.get_by_request_id::<AmendmentReceipt>("amend-1").await.unwrap().unwrap();
        assert_eq!(found.value, receipt);
        assert!(repo.get_by_request_id::<Agency>("amend-1").await.unwrap().is_none(), "ids are per kind");
        let changes = repo.store().changes_after(0, 10).await.unwrap();
        let kinds: Vec<Kind> = changes.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, [Kind::Agency], "watchers see the agency, not the receipt");
    }
}

#[tokio::test]
async fn listing_pages_in_name_order_and_by_parent() {
    for (_db, repo) in each_repository().await {
        let mut commit = Commit::default();
        for code in ["ICE", "ATF", "FBI", "DEA"] {
            commit.insert(&agency(code), None);
        }
        repo.store().commit(commit).await.unwrap();
        let first: Vec<String> =
            repo.list::<Agency>(None, "", 2).await.unwrap().into_iter().map(|a| a.value.code).collect();
        assert_eq!(first, ["ATF", "DEA"]);
        let rest: Vec<String> = repo
            .list::<Agency>(None, "agencies/DEA", 10)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.value.code)
            .collect();
        assert_eq!(rest, ["FBI", "ICE"]);
        assert!(repo.list::<Agency>(Some("centers/x"), "", 10).await.unwrap().is_empty());
        assert_eq!(repo.all::<Agency>().await.unwrap().len(), 4);
    }
}

#[tokio::test]
async fn audit_events_wait_in_the_outbox_until_delivered() {
    for (db, repo) in each_repository().await {
        let mut commit = Commit::default();
        commit.insert(&agency("DEA"), None).audit("e1".into(), vec![1, 2]).audit("e2".into(), vec![3]);
        repo.store().commit(commit).await.unwrap();
        let outbox = outbox(&db).await;
        let pending = outbox.pending(10).await.unwrap();
        assert_eq!(pending.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>(), [vec![1, 2], vec![3]]);
        outbox.delivered(&[pending[0].0]).await.unwrap();
        assert_eq!(outbox.pending(10).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn a_rejected_event_moves_to_the_dead_letters_with_its_reason() {
    for (db, repo) in each_repository().await {
        let mut commit = Commit::default();
        commit.insert(&agency("DEA"), None).audit("e1".into(), vec![1]).audit("e2".into(), vec![2]);
        commit.audit("e3".into(), vec![3]);
        repo.store().commit(commit).await.unwrap();
        let outbox = outbox(&db).await;
        let pending = outbox.pending(10).await.unwrap();
        assert_eq!(outbox.dead_letter_count().await.unwrap(), 0);

        outbox.dead_letter(pending[1].0, "InvalidArgument: events[0].time: is required").await.unwrap();
        let left: Vec<i64> = outbox.pending(10).await.unwrap().iter().map(|(seq, _)| *seq).collect();
        assert_eq!(left, [pending[0].0, pending[2].0], "the rest stay queued, in order");
        assert_eq!(outbox.dead_letter_count().await.unwrap(), 1);
        let dead = outbox.dead_letters(10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!((dead[0].sequence, dead[0].event_id.as_str()), (pending[1].0, "e2"));
        assert_eq!(dead[0].event, [2], "kept byte for byte");
        assert_eq!(dead[0].reason, "InvalidArgument: events[0].time: is required");
        assert!(dead[0].rejected_time_us > 0);

        // Moving an entry that is no longer queued (another replica got there first) adds nothing.
        outbox.dead_letter(pending[1].0, "again").await.unwrap();
        assert_eq!(outbox.dead_letter_count().await.unwrap(), 1);
        outbox.delivered(&left).await.unwrap();
        assert!(outbox.pending(10).await.unwrap().is_empty());
    }
}
