//! One suite, run against every backend: SQLite always, PostgreSQL when
//! `INTERLOCK_TEST_POSTGRES_URL` is set. Each test gets a fresh database and goes through the
//! trait only, as the service does.

use interlock_api::common::v1::SelectorKind;
use interlock_api::deconfliction::v1::{ConflictEventType, ConflictOutcome, ConflictSource};
use interlock_audit_client::SqlOutbox;
use interlock_storage::testing::TestDatabase;

use super::*;
use crate::domain::conflict::{
    ACKNOWLEDGED, DETECTED, ESCALATED, Escalation, HistoryEntry, OUTCOME_RECORDED, Outcome, Party,
    StoredMatch,
};
use crate::domain::geo::Footprint;
use crate::domain::registration::{Contact, Hash32, Kind, OperationDetails, SelectorEntry, State};
use crate::error::Error;

const NOW: i64 = 1_760_000_000_000_000;
const HOUR: i64 = 3_600_000_000;
const SECOND: i64 = 1_000_000;
const YEAR: i32 = 2026;
const CHECK_HIT: i32 = ConflictEventType::CheckHit as i32;

async fn each_store() -> Vec<(TestDatabase, Arc<dyn DeconflictionStore>)> {
    let mut stores = Vec::new();
    for database in TestDatabase::each_backend().await {
        let opened =
            Database::open(database.url(), &MIGRATIONS).await.expect("open the deconfliction database");
        stores.push((database, on(opened)));
    }
    stores
}

/// The audit outbox of a test database, through the relay's own code.
async fn outbox(database: &TestDatabase) -> SqlOutbox {
    SqlOutbox::new(
        Database::open(database.url(), &MIGRATIONS).await.expect("open the deconfliction database"),
    )
}

fn digest(byte: u8) -> SelectorEntry {
    SelectorEntry { kind: SelectorKind::Phone as i32, digest: Hash32([byte; 32]) }
}

/// A new target (id 0, number assigned on commit) of `agency` on `phone`'s digest.
fn target(agency: &str, case: &str, phone: u8) -> Registration {
    Registration {
        id: 0,
        number: String::new(),
        kind: Kind::Target,
        agency: agency.into(),
        case_reference: case.into(),
        case_agent: Contact { name: format!("{agency} case agent"), ..Contact::default() },
        duty_desk: Contact {
            name: format!("{agency} duty desk"),
            phone: "+12025550100".into(),
            email: String::new(),
            around_the_clock: true,
        },
        on_scene_contact: None,
        officer_safety_flags: vec![1],
        key_id: "dk-test".into(),
        selectors: vec![digest(phone)],
        persons: vec![],
        operation: None,
        related_targets: vec![],
        expire_time_us: NOW + 24 * HOUR,
        state: State::Active,
        withdrawal_reason: 0,
        renew_count: 0,
        create_time_us: NOW,
        update_time_us: NOW,
        withdraw_time_us: None,
    }
}

fn operation(agency: &str, case: &str) -> Registration {
    Registration {
        kind: Kind::Operation,
        selectors: vec![],
        operation: Some(OperationDetails {
            operation_type: 3,
            footprint: Footprint {
                latitude: 32.7767,
                longitude: -96.797,
                radius_m: 500.0,
                start_us: NOW + HOUR,
                end_us: NOW + 3 * HOUR,
                buffer_us: HOUR,
            },
            officer_count: 12,
            undercover_officers_present: true,
            address: Some(digest(0xad)),
        }),
        ..target(agency, case, 0)
    }
}

fn new(registration: Registration) -> RegistrationWrite {
    RegistrationWrite { registration, expected_revision: None, request_id: None, conflicts: vec![] }
}

/// A conflict between the stored `earlier` and the registration being written (party 1, filled
/// in on commit), on the same phone.
fn conflict_with(earlier: &Registration, newer: &Registration) -> Conflict {
    Conflict {
        id: 0,
        number: String::new(),
        source: ConflictSource::Target as i32,
        parties: [Party::unacknowledged(earlier), Party::unacknowledged(newer)],
        matches: vec![StoredMatch::Selector { kind: SelectorKind::Phone as i32, digest: Hash32([7; 32]) }],
        outcome: None,
        escalation: Escalation::NotEscalated,
        escalation_due_us: Some(NOW + HOUR),
        escalate_time_us: None,
        history: vec![HistoryEntry {
            event_type: DETECTED,
            time_us: NOW,
            actor_agency: newer.agency.clone(),
            actor_user: String::new(),
            outcome: 0,
            note: String::new(),
        }],
        detect_time_us: NOW,
        update_time_us: NOW,
    }
}

fn audit(id: &str) -> (String, Vec<u8>) {
    (id.into(), id.as_bytes().to_vec())
}

/// Commits `writes` against the store's current index revision.
async fn commit(store: &Arc<dyn DeconflictionStore>, writes: Vec<RegistrationWrite>) -> Committed {
    let revision = store.latest_index_revision().await.unwrap();
    store.commit_registrations(revision, YEAR, writes, vec![]).await.unwrap()
}

/// DEA's target on phone 7, then ICE's on the same phone with the conflict it found.
async fn dea_then_ice(store: &Arc<dyn DeconflictionStore>) -> (Registration, Registration, Conflict) {
    let dea = commit(store, vec![new(target("DEA", "DEA-DAL-17", 7))]).await.registrations[0].0.clone();
    let ice = target("ICE", "ICE-HSI-88", 7);
    let write = RegistrationWrite { conflicts: vec![conflict_with(&dea, &ice)], ..new(ice) };
    let committed = commit(store, vec![write]).await;
    (dea, committed.registrations[0].0.clone(), committed.conflicts[0].clone())
}

fn numbers(page: &[(Registration, i64)]) -> Vec<&str> {
    page.iter().map(|(r, _)| r.number.as_str()).collect()
}

fn kinds(events: &[Event]) -> Vec<(i32, &str)> {
    events.iter().map(|e| (e.event_type, e.actor_agency.as_str())).collect()
}

#[tokio::test]
async fn registrations_read_back_by_id_number_and_request_id() {
    for (_db, store) in each_store().await {
        store.ping().await.unwrap();
        let record = Registration {
            kind: Kind::Record,
            number: "records/0190f1b2".into(),
            ..target("ICE", "ICE-HSI-88", 9)
        };
        let writes = vec![
            RegistrationWrite { request_id: Some("req-1".into()), ..new(target("DEA", "DEA-DAL-17", 1)) },
            new(operation("DEA", "DEA-DAL-17")),
            new(record.clone()),
        ];
        let committed = commit(&store, writes).await;
        let stored: Vec<(&str, i64)> =
            committed.registrations.iter().map(|(r, rev)| (r.number.as_str(), *rev)).collect();
        // Targets and operations get the year's next numbers; a record keeps its resource name.
        assert_eq!(stored, [("DX-2026-000001", 1), ("DX-2026-000002", 1), ("records/0190f1b2", 1)]);

        for (registration, revision) in &committed.registrations {
            assert!(registration.id > 0, "the database assigns ids");
            let by_id = store.registration(registration.id).await.unwrap();
            assert_eq!(by_id, Some((registration.clone(), *revision)), "everything stored reads back");
            let by_number = store.registration_by_number(&registration.number).await.unwrap();
            assert_eq!(by_number, Some((registration.clone(), *revision)));
        }
        let operation = &committed.registrations[1].0;
        assert_eq!(operation.operation.as_ref().unwrap().footprint.radius_m, 500.0);
        assert_eq!(
            committed.registrations[2].0,
            Registration { id: committed.registrations[2].0.id, ..record }
        );

        let by_request = store.registration_by_request("DEA", "req-1").await.unwrap();
        assert_eq!(by_request.map(|(r, _)| r.number), Some("DX-2026-000001".into()));
        assert!(store.registration_by_request("ICE", "req-1").await.unwrap().is_none(), "per agency");
        assert!(store.registration(9_999).await.unwrap().is_none());
        assert!(store.registration_by_number("DX-2026-999999").await.unwrap().is_none());

        // Numbers taken outside a commit continue the year's sequence and are never reused.
        assert_eq!(store.next_number(YEAR).await.unwrap(), "DX-2026-000003");
        assert_eq!(store.next_number(YEAR).await.unwrap(), "DX-2026-000004");
        assert_eq!(store.next_number(YEAR + 1).await.unwrap(), "DX-2027-000001");
        let next = commit(&store, vec![new(target("FBI", "FBI-5", 2))]).await;
        assert_eq!(next.registrations[0].0.number, "DX-2026-000005");
    }
}

#[tokio::test]
async fn own_registrations_list_by_kind_and_case_in_pages() {
    for (_db, store) in each_store().await {
        let mut writes = Vec::new();
        for i in 0..5u8 {
            let case = if i % 2 == 0 { "DEA-A" } else { "DEA-B" };
            writes.push(new(target("DEA", case, i)));
        }
        writes.push(new(operation("DEA", "DEA-A")));
        writes.push(new(target("ICE", "DEA-A", 1)));
        commit(&store, writes).await;

        let first = store.list_registrations("DEA", "target", None, 0, 2).await.unwrap();
        assert_eq!(numbers(&first), ["DX-2026-000001", "DX-2026-000002"]);
        let after = first.last().unwrap().0.id;
        let second = store.list_registrations("DEA", "target", None, after, 2).await.unwrap();
        assert_eq!(numbers(&second), ["DX-2026-000003", "DX-2026-000004"]);
        let after = second.last().unwrap().0.id;
        let last = store.list_registrations("DEA", "target", None, after, 2).await.unwrap();
        assert_eq!(numbers(&last), ["DX-2026-000005"]);
        let after = last.last().unwrap().0.id;
        assert!(store.list_registrations("DEA", "target", None, after, 2).await.unwrap().is_empty());

        let case_a = store.list_registrations("DEA", "target", Some("DEA-A"), 0, 10).await.unwrap();
        assert_eq!(numbers(&case_a), ["DX-2026-000001", "DX-2026-000003", "DX-2026-000005"]);
        let after = case_a[0].0.id;
        let case_a = store.list_registrations("DEA", "target", Some("DEA-A"), after, 1).await.unwrap();
        assert_eq!(numbers(&case_a), ["DX-2026-000003"]);

        let operations = store.list_registrations("DEA", "operation", None, 0, 10).await.unwrap();
        assert_eq!(numbers(&operations), ["DX-2026-000006"]);
        // Another agency's registration in a case of the same name is not DEA's.
        let ice = store.list_registrations("ICE", "target", Some("DEA-A"), 0, 10).await.unwrap();
        assert_eq!(numbers(&ice), ["DX-2026-000007"]);
        assert!(store.list_registrations("FBI", "target", None, 0, 10).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn the_index_feed_and_scan_replay_every_commit_in_order() {
    for (_db, store) in each_store().await {
        assert_eq!(store.latest_index_revision().await.unwrap(), 0);
        assert!(store.index_changes_after(0, 10).await.unwrap().is_empty());
        assert!(store.scan_registrations(0, 10).await.unwrap().is_empty());

        let first =
            commit(&store, vec![new(target("DEA", "DEA-1", 1)), new(target("ICE", "ICE-1", 2))]).await;
        assert_eq!(first.index_revision, 2, "one feed entry per registration");
        let (dea, ice) = (first.registrations[0].0.clone(), first.registrations[1].0.clone());
        let second = commit(&store, vec![new(operation("ATF", "ATF-1"))]).await;
        assert_eq!(second.index_revision, 3);
        let atf = second.registrations[0].0.clone();
        // A replaced registration enters the feed again, so every replica's index picks it up.
        let withdrawn = Registration { state: State::Withdrawn, withdraw_time_us: Some(NOW), ..dea.clone() };
        let replaced = RegistrationWrite { expected_revision: Some(1), ..new(withdrawn.clone()) };
        assert_eq!(commit(&store, vec![replaced]).await.index_revision, 4);

        assert_eq!(store.latest_index_revision().await.unwrap(), 4);
        let feed = store.index_changes_after(0, 10).await.unwrap();
        assert_eq!(feed, [(1, dea.id), (2, ice.id), (3, atf.id), (4, dea.id)]);
        // Catching up from a revision, in pages.
        assert_eq!(store.index_changes_after(2, 1).await.unwrap(), [(3, atf.id)]);
        assert_eq!(store.index_changes_after(3, 10).await.unwrap(), [(4, dea.id)]);
        assert!(store.index_changes_after(4, 10).await.unwrap().is_empty());

        // The start-up scan sees every agency's registrations, current content, by id.
        let scanned = store.scan_registrations(0, 2).await.unwrap();
        assert_eq!(scanned, [withdrawn, ice.clone()]);
        assert_eq!(store.scan_registrations(ice.id, 2).await.unwrap(), [atf]);
        assert!(store.scan_registrations(i64::MAX - 1, 2).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_renewal_replaces_the_stored_target_and_keeps_its_conflict() {
    for (_db, store) in each_store().await {
        let (dea, ice, conflict) = dea_then_ice(&store).await;
        let events_before = store.events_after("DEA", 0, 100).await.unwrap().len();

        // Renewing re-registers the target with its revision; the same pair's conflict is found
        // again and kept as it was, with no second DETECTED.
        let renewed = Registration {
            expire_time_us: NOW + 48 * HOUR,
            renew_count: 1,
            update_time_us: NOW + HOUR,
            ..ice.clone()
        };
        let write = RegistrationWrite {
            expected_revision: Some(1),
            conflicts: vec![conflict_with(&dea, &renewed)],
            ..new(renewed.clone())
        };
        let committed = commit(&store, vec![write]).await;
        assert_eq!(committed.registrations, [(renewed.clone(), 2)]);
        assert!(committed.conflicts.is_empty(), "the pair already has its conflict");
        assert_eq!(store.registration(ice.id).await.unwrap(), Some((renewed.clone(), 2)));
        let of_ice = store.conflicts_of(ice.id).await.unwrap();
        assert_eq!(
            of_ice.iter().map(|(c, _)| c.number.as_str()).collect::<Vec<_>>(),
            [conflict.number.as_str()]
        );
        assert_eq!(store.events_after("DEA", 0, 100).await.unwrap().len(), events_before);

        // A renewal decided on the old revision loses: nothing changes, nothing enters the feed.
        let feed = store.latest_index_revision().await.unwrap();
        let stale = Registration { expire_time_us: NOW + 96 * HOUR, renew_count: 2, ..renewed.clone() };
        let write = RegistrationWrite { expected_revision: Some(1), ..new(stale) };
        let refused = store.commit_registrations(feed, YEAR, vec![write], vec![audit("stale")]).await;
        assert!(matches!(refused, Err(Error::Aborted(number)) if number == ice.number));
        assert_eq!(store.registration(ice.id).await.unwrap(), Some((renewed, 2)));
        assert_eq!(store.latest_index_revision().await.unwrap(), feed);

        // Expiry is what is stored: past it the registration no longer matches.
        let stored = store.registration(ice.id).await.unwrap().unwrap().0;
        assert!(stored.is_live(NOW + 47 * HOUR));
        assert!(!stored.is_live(NOW + 48 * HOUR));
    }
}

#[tokio::test]
async fn a_conflict_is_stored_once_per_pair_and_both_agencies_are_told() {
    for (_db, store) in each_store().await {
        let (dea, ice, conflict) = dea_then_ice(&store).await;
        assert_eq!(conflict.number, "CF-2026-000001");
        assert!(conflict.id > 0);
        // Party 1 is the registration that found it, filled in on commit.
        assert_eq!(
            (conflict.parties[0].registration_id, conflict.parties[0].number.as_str()),
            (dea.id, dea.number.as_str())
        );
        assert_eq!(
            (conflict.parties[1].registration_id, conflict.parties[1].number.as_str()),
            (ice.id, ice.number.as_str())
        );

        assert_eq!(store.conflict(conflict.id).await.unwrap(), Some((conflict.clone(), 1)));
        assert_eq!(store.conflict_by_number(&conflict.number).await.unwrap(), Some((conflict.clone(), 1)));
        assert!(store.conflict(conflict.id + 100).await.unwrap().is_none());
        assert!(store.conflict_by_number("CF-2026-999999").await.unwrap().is_none());
        for id in [dea.id, ice.id] {
            assert_eq!(store.conflicts_of(id).await.unwrap(), [(conflict.clone(), 1)]);
        }

        // Both agencies' watches get DETECTED, naming the agency whose registration found it.
        for agency in ["DEA", "ICE"] {
            let events = store.events_after(agency, 0, 10).await.unwrap();
            assert_eq!(kinds(&events), [(DETECTED, "ICE")], "{agency}");
            assert_eq!((events[0].conflict_id, events[0].audience.as_str()), (conflict.id, agency));
        }
        assert!(store.events_after("", 0, 10).await.unwrap().is_empty(), "nothing for the watch desk yet");
    }
}

#[tokio::test]
async fn conflicts_list_newest_first_per_agency_in_pages() {
    for (_db, store) in each_store().await {
        let (dea, _, first) = dea_then_ice(&store).await;
        let fbi = target("FBI", "FBI-5", 7);
        let write = RegistrationWrite { conflicts: vec![conflict_with(&dea, &fbi)], ..new(fbi) };
        let second = commit(&store, vec![write]).await.conflicts[0].clone();
        let atf = commit(&store, vec![new(target("ATF", "ATF-3", 8))]).await.registrations[0].0.clone();
        let cbp = target("CBP", "CBP-1", 8);
        let write = RegistrationWrite { conflicts: vec![conflict_with(&atf, &cbp)], ..new(cbp) };
        let third = commit(&store, vec![write]).await.conflicts[0].clone();

        let numbers = [&first, &second, &third].map(|c| c.number.as_str());
        assert_eq!(numbers, ["CF-2026-000001", "CF-2026-000002", "CF-2026-000003"]);

        let names = |page: Vec<(Conflict, i64)>| page.into_iter().map(|(c, _)| c.number).collect::<Vec<_>>();
        assert_eq!(
            names(store.list_conflicts(None, i64::MAX, 10).await.unwrap()),
            ["CF-2026-000003", "CF-2026-000002", "CF-2026-000001"]
        );
        // An agency's conflicts, a page at a time: the next page starts below the last id seen.
        let dea_first = store.list_conflicts(Some("DEA"), i64::MAX, 1).await.unwrap();
        assert_eq!(names(dea_first), ["CF-2026-000002"]);
        assert_eq!(
            names(store.list_conflicts(Some("DEA"), second.id, 10).await.unwrap()),
            ["CF-2026-000001"]
        );
        assert!(store.list_conflicts(Some("DEA"), first.id, 10).await.unwrap().is_empty());
        assert_eq!(names(store.list_conflicts(Some("ICE"), i64::MAX, 10).await.unwrap()), ["CF-2026-000001"]);
        assert_eq!(names(store.list_conflicts(Some("CBP"), i64::MAX, 10).await.unwrap()), ["CF-2026-000003"]);
        assert!(store.list_conflicts(Some("DOJ"), i64::MAX, 10).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn acknowledgements_and_outcomes_are_kept_with_their_history() {
    for (db, store) in each_store().await {
        let (_, _, mut conflict) = dea_then_ice(&store).await;
        let conflict_id = conflict.id;
        let event = |audience: &str, event_type: i32, actor: &str, time_us: i64| Event {
            sequence: 0,
            audience: audience.into(),
            conflict_id,
            event_type,
            actor_agency: actor.into(),
            time_us,
        };

        conflict.acknowledge("DEA", "sa-rivera", "calling ICE", NOW + 10).unwrap();
        let events =
            vec![event("DEA", ACKNOWLEDGED, "DEA", NOW + 10), event("ICE", ACKNOWLEDGED, "DEA", NOW + 10)];
        let revision = store.update_conflict(&conflict, 1, events, vec![audit("ack-dea")]).await.unwrap();
        assert_eq!(revision, 2);

        // An update decided on an older revision writes nothing: not the doc, its events or audit.
        let mut late = conflict.clone();
        late.acknowledge("ICE", "sa-chen", "", NOW + 20).unwrap();
        let refused = store
            .update_conflict(&late, 1, vec![event("DEA", ACKNOWLEDGED, "ICE", NOW + 20)], vec![audit("late")])
            .await;
        assert!(matches!(refused, Err(Error::Aborted(name)) if name == conflict.name()));
        assert_eq!(store.conflict(conflict.id).await.unwrap(), Some((conflict.clone(), 2)));

        conflict.acknowledge("ICE", "sa-chen", "", NOW + 30).unwrap();
        let revision = store.update_conflict(&conflict, 2, vec![], vec![audit("ack-ice")]).await.unwrap();
        let outcome = Outcome {
            outcome: ConflictOutcome::Coordinated as i32,
            note: "joint briefing held".into(),
            deferring_agency: String::new(),
            recorded_by_agency: "ICE".into(),
            recorded_by_user: "sa-chen".into(),
            record_time_us: NOW + 40,
        };
        conflict.record_outcome(outcome.clone(), NOW + 40).unwrap();
        let events = vec![event("DEA", OUTCOME_RECORDED, "ICE", NOW + 40)];
        assert_eq!(store.update_conflict(&conflict, revision, events, vec![]).await.unwrap(), 4);

        let (stored, revision) = store.conflict_by_number(&conflict.number).await.unwrap().unwrap();
        assert_eq!(revision, 4);
        assert_eq!(stored, conflict);
        assert_eq!(stored.outcome, Some(outcome));
        let parties: Vec<_> =
            stored.parties.iter().map(|p| (p.acknowledge_time_us, p.acknowledged_by.as_str())).collect();
        assert_eq!(parties, [(Some(NOW + 10), "sa-rivera"), (Some(NOW + 30), "sa-chen")]);
        let history: Vec<_> =
            stored.history.iter().map(|h| (h.event_type, h.actor_agency.as_str())).collect();
        assert_eq!(
            history,
            [(DETECTED, "ICE"), (ACKNOWLEDGED, "DEA"), (ACKNOWLEDGED, "ICE"), (OUTCOME_RECORDED, "ICE")]
        );

        assert_eq!(
            kinds(&store.events_after("DEA", 0, 10).await.unwrap()),
            [(DETECTED, "ICE"), (ACKNOWLEDGED, "DEA"), (OUTCOME_RECORDED, "ICE")]
        );
        let pending = outbox(&db).await.pending(10).await.unwrap();
        let queued: Vec<Vec<u8>> = pending.into_iter().map(|(_, event)| event).collect();
        assert_eq!(queued, [b"ack-dea".to_vec(), b"ack-ice".to_vec()], "the refused update queued nothing");
    }
}

#[tokio::test]
async fn escalations_fall_due_and_clear_as_stored() {
    for (_db, store) in each_store().await {
        let (_, _, mut conflict) = dea_then_ice(&store).await;
        // Due one hour after detection (set by conflict_with).
        assert!(store.due_escalations(NOW + HOUR - 1, 10).await.unwrap().is_empty());
        let due = store.due_escalations(NOW + HOUR, 10).await.unwrap();
        assert_eq!(due, [(conflict.clone(), 1)]);

        assert!(conflict.escalate_if_due(NOW + HOUR));
        let desk = Event {
            sequence: 0,
            audience: String::new(),
            conflict_id: conflict.id,
            event_type: ESCALATED,
            actor_agency: String::new(),
            time_us: NOW + HOUR,
        };
        store.update_conflict(&conflict, 1, vec![desk], vec![]).await.unwrap();
        assert!(store.due_escalations(i64::MAX, 10).await.unwrap().is_empty(), "escalated once only");
        let stored = store.conflict(conflict.id).await.unwrap().unwrap().0;
        assert_eq!((stored.escalation, stored.escalate_time_us), (Escalation::Escalated, Some(NOW + HOUR)));
        let desk_events = store.events_after("", 0, 10).await.unwrap();
        assert_eq!(kinds(&desk_events), [(ESCALATED, "")]);
    }
}

#[tokio::test]
async fn watch_events_replay_per_audience_from_a_cursor() {
    for (_db, store) in each_store().await {
        let (dea, _, conflict) = dea_then_ice(&store).await;
        let fbi = target("FBI", "FBI-5", 7);
        let write = RegistrationWrite { conflicts: vec![conflict_with(&dea, &fbi)], ..new(fbi) };
        let second = commit(&store, vec![write]).await.conflicts[0].clone();
        let hit = |audience: &str, time_us: i64| Event {
            sequence: 0,
            audience: audience.into(),
            conflict_id: 0,
            event_type: CHECK_HIT,
            actor_agency: "ATF".into(),
            time_us,
        };
        let check = CheckRecord {
            agency: "ATF".into(),
            time_us: NOW,
            index_revision: Some(store.latest_index_revision().await.unwrap()),
            events: vec![hit("DEA", NOW)],
            audit: vec![],
        };
        assert_eq!(store.record_checks(vec![check]).await.unwrap(), [true]);

        let all = store.events_after("DEA", 0, 10).await.unwrap();
        assert_eq!(kinds(&all), [(DETECTED, "ICE"), (DETECTED, "FBI"), (CHECK_HIT, "ATF")]);
        assert_eq!(all.iter().map(|e| e.conflict_id).collect::<Vec<_>>(), [conflict.id, second.id, 0]);
        assert!(all.windows(2).all(|w| w[0].sequence < w[1].sequence), "oldest first");
        // A reconnecting watch resumes after the last sequence it saw, in pages.
        let page = store.events_after("DEA", all[0].sequence, 1).await.unwrap();
        assert_eq!(page, [all[1].clone()]);
        assert_eq!(store.events_after("DEA", all[1].sequence, 10).await.unwrap(), [all[2].clone()]);
        assert!(store.events_after("DEA", all[2].sequence, 10).await.unwrap().is_empty());
        // Each audience sees only its own.
        assert_eq!(kinds(&store.events_after("ICE", 0, 10).await.unwrap()), [(DETECTED, "ICE")]);
        assert_eq!(kinds(&store.events_after("FBI", 0, 10).await.unwrap()), [(DETECTED, "FBI")]);
        assert!(store.events_after("ATF", 0, 10).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn checks_are_counted_per_agency_and_period_with_their_events_and_audit() {
    for (db, store) in each_store().await {
        store.record_checks(vec![]).await.unwrap();
        let check = |agency: &str, time_us: i64, hits: &[&str]| CheckRecord {
            agency: agency.into(),
            time_us,
            index_revision: Some(0),
            events: hits
                .iter()
                .map(|audience| Event {
                    sequence: 0,
                    audience: (*audience).into(),
                    conflict_id: 0,
                    event_type: CHECK_HIT,
                    actor_agency: agency.into(),
                    time_us,
                })
                .collect(),
            audit: vec![audit(&format!("check-{agency}-{time_us}"))],
        };
        // One group commit of concurrent checks, then one more.
        store
            .record_checks(vec![
                check("DEA", NOW, &["ICE"]),
                check("DEA", NOW + HOUR, &[]),
                check("ICE", NOW, &["DEA", "FBI"]),
            ])
            .await
            .unwrap();
        store.record_checks(vec![check("DEA", NOW + 2 * HOUR, &[])]).await.unwrap();
        // Two more in a second already counted, in separate commits: they add up.
        store.record_checks(vec![check("DEA", NOW + 2 * HOUR + 1, &[])]).await.unwrap();
        store.record_checks(vec![check("DEA", NOW + 2 * HOUR + 999_999, &[])]).await.unwrap();

        // The period is [start, end), counted per whole second: a start inside a second takes
        // that whole second, an end inside a second includes that second.
        assert_eq!(store.count_checks("DEA", NOW, NOW + 3 * HOUR).await.unwrap(), 5);
        assert_eq!(store.count_checks("DEA", NOW, NOW + 2 * HOUR).await.unwrap(), 2);
        assert_eq!(store.count_checks("DEA", NOW + SECOND, NOW + 2 * HOUR + 1).await.unwrap(), 4);
        assert_eq!(store.count_checks("DEA", NOW + 1, NOW + HOUR).await.unwrap(), 1);
        assert_eq!(store.count_checks("DEA", NOW + 2 * HOUR + SECOND, i64::MAX).await.unwrap(), 0);
        assert_eq!(store.count_checks("ICE", NOW, NOW + 1).await.unwrap(), 1);
        assert_eq!(store.count_checks("FBI", 0, i64::MAX).await.unwrap(), 0);

        assert_eq!(kinds(&store.events_after("ICE", 0, 10).await.unwrap()), [(CHECK_HIT, "DEA")]);
        assert_eq!(kinds(&store.events_after("DEA", 0, 10).await.unwrap()), [(CHECK_HIT, "ICE")]);
        assert_eq!(kinds(&store.events_after("FBI", 0, 10).await.unwrap()), [(CHECK_HIT, "ICE")]);
        // A check records nothing in the registrations or the index feed.
        assert_eq!(store.latest_index_revision().await.unwrap(), 0);

        // A check decided against an index behind the feed is not recorded (its caller decides
        // it again), while the current one sharing its commit is, and so is one whose index a
        // feed read proved current.
        commit(&store, vec![new(target("FBI", "FBI-1", 9))]).await;
        let stale = check("FBI", NOW, &["ICE"]);
        let current = CheckRecord { index_revision: Some(1), ..check("ATF", NOW, &["ICE"]) };
        let proven = CheckRecord { index_revision: None, ..check("CBP", NOW, &["ICE"]) };
        assert_eq!(store.record_checks(vec![stale, current, proven]).await.unwrap(), [false, true, true]);
        assert_eq!(store.count_checks("FBI", 0, i64::MAX).await.unwrap(), 0);
        assert_eq!(store.count_checks("ATF", 0, i64::MAX).await.unwrap(), 1);
        assert_eq!(store.count_checks("CBP", 0, i64::MAX).await.unwrap(), 1);
        assert_eq!(
            kinds(&store.events_after("ICE", 0, 10).await.unwrap()),
            [(CHECK_HIT, "DEA"), (CHECK_HIT, "ATF"), (CHECK_HIT, "CBP")]
        );

        store.record_audit(vec![audit("watch-delivery")]).await.unwrap();
        let queued: Vec<Vec<u8>> =
            outbox(&db).await.pending(10).await.unwrap().into_iter().map(|(_, event)| event).collect();
        let expected: Vec<Vec<u8>> = [
            format!("check-DEA-{NOW}"),
            format!("check-DEA-{}", NOW + HOUR),
            format!("check-ICE-{NOW}"),
            format!("check-DEA-{}", NOW + 2 * HOUR),
            format!("check-DEA-{}", NOW + 2 * HOUR + 1),
            format!("check-DEA-{}", NOW + 2 * HOUR + 999_999),
            format!("check-ATF-{NOW}"),
            format!("check-CBP-{NOW}"),
            "watch-delivery".into(),
        ]
        .into_iter()
        .map(String::into_bytes)
        .collect();
        assert_eq!(queued, expected);
    }
}

#[tokio::test]
async fn a_failed_commit_leaves_nothing_behind() {
    for (db, store) in each_store().await {
        let (dea, _, _) = dea_then_ice(&store).await;
        let atf = RegistrationWrite { request_id: Some("req-1".into()), ..new(target("ATF", "ATF-1", 4)) };
        commit(&store, vec![atf]).await;
        let revision = store.latest_index_revision().await.unwrap();
        let registrations = store.scan_registrations(0, 100).await.unwrap();
        let conflicts = store.list_conflicts(None, i64::MAX, 100).await.unwrap();
        let events = store.events_after("DEA", 0, 100).await.unwrap();
        let audited = outbox(&db).await.pending(100).await.unwrap();

        // Decided against an index that has moved on: refused before anything is written.
        let fbi = target("FBI", "FBI-5", 7);
        let write = RegistrationWrite { conflicts: vec![conflict_with(&dea, &fbi)], ..new(fbi.clone()) };
        let stale = store.commit_registrations(revision - 1, YEAR, vec![write], vec![audit("stale")]).await;
        assert!(matches!(stale, Err(Error::Stale)), "{stale:?}");

        // The second write fails (its record name is taken) after the first and its conflict
        // were written in the same transaction: all of it is rolled back, audit included.
        let write = RegistrationWrite { conflicts: vec![conflict_with(&dea, &fbi)], ..new(fbi) };
        let taken =
            Registration { kind: Kind::Record, number: dea.number.clone(), ..target("ATF", "ATF-2", 3) };
        let failed =
            store.commit_registrations(revision, YEAR, vec![write, new(taken)], vec![audit("failed")]).await;
        assert!(matches!(failed, Err(Error::Storage(_))), "{failed:?}");

        // A request id the agency already used fails the same way.
        let again = RegistrationWrite { request_id: Some("req-1".into()), ..new(target("ATF", "ATF-3", 5)) };
        let failed = store
            .commit_registrations(
                revision,
                YEAR,
                vec![new(target("ATF", "ATF-4", 6)), again],
                vec![audit("dup")],
            )
            .await;
        assert!(matches!(failed, Err(Error::Storage(_))), "{failed:?}");

        assert_eq!(store.latest_index_revision().await.unwrap(), revision, "no feed entries");
        assert!(store.index_changes_after(revision, 100).await.unwrap().is_empty());
        assert_eq!(store.scan_registrations(0, 100).await.unwrap(), registrations, "no registrations");
        assert_eq!(store.list_conflicts(None, i64::MAX, 100).await.unwrap(), conflicts, "no conflicts");
        assert_eq!(store.events_after("DEA", 0, 100).await.unwrap(), events, "no watch events");
        assert!(store.events_after("FBI", 0, 100).await.unwrap().is_empty());
        assert_eq!(outbox(&db).await.pending(100).await.unwrap(), audited, "no audit events");
    }
}
