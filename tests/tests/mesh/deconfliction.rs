//! Deconfliction over real gRPC, on SQLite and PostgreSQL: target hits exact and fuzzy in both
//! directions, a record-derived hit, operations colliding by place and time (and not just
//! outside), expiry and renewal, a watch resumed without loss, escalation, the outcome workflow,
//! bad input, and a scan proving the hub kept no raw identifier.

use std::time::Duration;

use interlock_api::audit::v1::{Action, AuditEvent};
use interlock_api::common::v1::{Contact, Date, Person, PersonName, Selector, SelectorKind};
use interlock_api::deconfliction::v1::deconfliction_service_client::DeconflictionServiceClient;
use interlock_api::deconfliction::v1::record_selector_service_client::RecordSelectorServiceClient;
use interlock_api::deconfliction::v1::*;
use interlock_auth::{CallerMetadata, Purpose};
use interlock_storage::Database;
use interlock_storage::testing::TestDatabase;
use interlock_tests::{AuthedChannel, TestServer, channel, enroll_agency, token};
use prost::Message;
use prost_types::Timestamp;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic_types::StatusExt;

const MESH_SECRET: &str = "ilk_deconfliction-test-mesh";
/// The digest key every replica of a hub shares (as a Kubernetes Secret would give it them).
const DECONFLICTION_KEY: &str = "5e1ec7025e1ec7025e1ec7025e1ec7025e1ec7025e1ec7025e1ec7025e1ec702";

struct Hub {
    registry: TestServer,
    deconfliction: TestServer,
    database: TestDatabase,
}

impl Hub {
    async fn start(database: TestDatabase, escalation_seconds: &str) -> Self {
        let registry = TestServer::start(&["--service", "registry", "--mesh-secret", MESH_SECRET]).await;
        let deconfliction = Self::replica(&registry, &database, escalation_seconds).await;
        Self { registry, deconfliction, database }
    }

    /// A deconfliction server on the hub's database (the hub's own, or another replica).
    async fn replica(registry: &TestServer, database: &TestDatabase, escalation_seconds: &str) -> TestServer {
        TestServer::start(&[
            "--service",
            "deconfliction",
            "--database-url",
            database.url(),
            "--registry-address",
            &registry.url(),
            "--mesh-secret",
            MESH_SECRET,
            "--escalation-after-seconds",
            escalation_seconds,
            "--deconfliction-key",
            DECONFLICTION_KEY,
        ])
        .await
    }

    async fn agency(&self, code: &str) -> DeconflictionServiceClient<AuthedChannel> {
        let enrolled = enroll_agency(&self.registry, code, &format!("{code} (test)")).await;
        DeconflictionServiceClient::new(
            enrolled.channel(&self.registry, &self.deconfliction.url(), "case-agent").await,
        )
    }

    async fn center_admin(&self) -> DeconflictionServiceClient<AuthedChannel> {
        let token = self.registry.admin_token().await;
        DeconflictionServiceClient::new(InterceptedService::new(
            channel(&self.deconfliction.url()).await,
            CallerMetadata::bearer(token),
        ))
    }
}

fn contact(name: &str) -> Option<Contact> {
    Some(Contact {
        name: name.into(),
        phone: "+12145550100".into(),
        email: String::new(),
        around_the_clock: true,
    })
}

fn phone(value: &str) -> Selector {
    Selector { kind: SelectorKind::Phone as i32, value: value.into(), region: "US".into() }
}

fn person(given: &str, surname: &str) -> Person {
    Person {
        name: Some(PersonName { given: given.into(), surname: surname.into(), ..PersonName::default() }),
        birth_date: Some(Date { year: 1980, month: 4, day: 2 }),
        ..Person::default()
    }
}

fn target(case: &str, selectors: Vec<Selector>, persons: Vec<Person>) -> Target {
    Target {
        case_reference: case.into(),
        case_agent: contact(&format!("{case} case agent")),
        duty_desk: contact(&format!("{case} duty desk")),
        officer_safety_flags: vec![OfficerSafetyFlag::ArmedAndDangerous as i32],
        selectors,
        persons,
        ..Target::default()
    }
}

fn at(minutes_from_now: i64) -> Option<Timestamp> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    Some(Timestamp { seconds: now + minutes_from_now * 60, nanos: 0 })
}

fn operation(case: &str, kind: OperationType, latitude: f64, start_min: i64, end_min: i64) -> Operation {
    Operation {
        case_reference: case.into(),
        operation_type: kind as i32,
        location: Some(OperationLocation {
            latitude,
            longitude: -96.797,
            address: "1500 Marilla Street, Dallas TX".into(),
            ..Default::default()
        }),
        radius_meters: 300,
        start_time: at(start_min),
        end_time: at(end_min),
        case_agent: contact(&format!("{case} case agent")),
        duty_desk: contact(&format!("{case} duty desk")),
        officer_count: 12,
        ..Operation::default()
    }
}

async fn create_target(
    client: &mut DeconflictionServiceClient<AuthedChannel>,
    target: Target,
) -> CreateTargetResponse {
    client
        .create_target(CreateTargetRequest { target: Some(target), request_id: String::new() })
        .await
        .unwrap()
        .into_inner()
}

fn other_party(conflict: &interlock_api::deconfliction::v1::Conflict) -> &ConflictParty {
    conflict.parties.iter().find(|p| !p.caller).expect("the other side")
}

#[tokio::test]
async fn target_hits_exact_and_fuzzy_in_both_directions_with_who_to_call() {
    for database in TestDatabase::each_backend().await {
        let hub = Hub::start(database, "1800").await;
        let mut dea = hub.agency("DEA").await;
        let mut ice = hub.agency("ICE").await;
        let mut fbi = hub.agency("FBI").await;

        let first = create_target(
            &mut dea,
            target("DEA-DAL-2026-17", vec![phone("(214) 555-0147")], vec![person("John", "Smith")]),
        )
        .await;
        assert_eq!(first.status, ReceiptStatus::AcceptedWithoutConflict as i32);
        let dea_number = first.target.unwrap().deconfliction_number;
        assert!(dea_number.starts_with("DX-"), "{dea_number}");

        // ICE registers the same phone in another format: ICE is told who to call at DEA.
        let second =
            create_target(&mut ice, target("ICE-HSI-88", vec![phone("+1 214 555 0147")], vec![])).await;
        assert_eq!(second.status, ReceiptStatus::AcceptedWithConflict as i32);
        let conflict = &second.conflicts[0];
        let dea_side = other_party(conflict);
        assert_eq!(
            (dea_side.agency.as_str(), dea_side.deconfliction_number.as_str()),
            ("agencies/DEA", dea_number.as_str())
        );
        assert_eq!(dea_side.duty_desk.as_ref().unwrap().name, "DEA-DAL-2026-17 duty desk");
        assert_eq!(dea_side.officer_safety_flags, [OfficerSafetyFlag::ArmedAndDangerous as i32]);
        assert!(dea_side.case_reference.is_empty(), "never the other side's case");
        assert!(
            matches!(&conflict.matches[0].r#match, Some(conflict_match::Match::Selector(m)) if m.kind == SelectorKind::Phone as i32)
        );

        // DEA sees the same conflict, with ICE's contacts.
        let seen_by_dea = dea
            .get_conflict(GetConflictRequest { name: conflict.name.clone() })
            .await
            .unwrap()
            .into_inner()
            .conflict
            .unwrap();
        assert_eq!(other_party(&seen_by_dea).agency, "agencies/ICE");
        // FBI is not a party: the conflict does not exist for it.
        let hidden = fbi.get_conflict(GetConflictRequest { name: conflict.name.clone() }).await.unwrap_err();
        assert_eq!(hidden.code(), Code::NotFound);

        // Fuzzy: FBI's "Jon Smyth", same date of birth, matches DEA's "John Smith" with a score.
        let fuzzy = create_target(&mut fbi, target("FBI-DL-5", vec![], vec![person("Jon", "Smyth")])).await;
        assert_eq!(fuzzy.status, ReceiptStatus::AcceptedWithConflict as i32);
        let Some(conflict_match::Match::Person(found)) = &fuzzy.conflicts[0].matches[0].r#match else {
            panic!("person match")
        };
        assert!(found.score >= 0.85 && found.score < 1.0, "{}", found.score);
        assert!(!found.reason.is_empty());
        assert_eq!(found.own_person_id, "persons[0]");

        // Another agency's deconfliction number is NOT_FOUND.
        let foreign =
            ice.get_target(GetTargetRequest { name: format!("targets/{dea_number}") }).await.unwrap_err();
        assert_eq!(foreign.code(), Code::NotFound);
    }
}

/// A dry run is decided against the replica's in-memory index, which learns of other replicas'
/// registrations by polling: the check must still find one committed a moment before it.
#[tokio::test]
async fn a_check_on_one_replica_finds_what_another_just_registered() {
    for database in TestDatabase::each_backend().await {
        let hub = Hub::start(database, "1800").await;
        let other = Hub::replica(&hub.registry, &hub.database, "1800").await;
        let ice = enroll_agency(&hub.registry, "ICE", "ICE (test)").await;
        let mut ice =
            DeconflictionServiceClient::new(ice.channel(&hub.registry, &other.url(), "case-agent").await);
        let mut dea = hub.agency("DEA").await;
        // Several rounds, each checked straight after the registration: a replica that answered
        // from its index without proving it current would miss most of them.
        for round in 0..5 {
            let number = format!("(214) 555-01{round:02}");
            let created =
                create_target(&mut ice, target(&format!("ICE-{round}"), vec![phone(&number)], vec![])).await;
            let check = dea
                .check_case(CheckCaseRequest {
                    case_reference: "DEA-1".into(),
                    targets: vec![target("", vec![phone(&number)], vec![])],
                    validate_only: true,
                    ..CheckCaseRequest::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(check.status, ReceiptStatus::CheckedWithConflict as i32, "round {round}");
            assert_eq!(
                other_party(&check.target_results[0].conflicts[0]).deconfliction_number,
                created.target.unwrap().deconfliction_number
            );
        }
    }
}

#[tokio::test]
async fn operations_collide_by_place_and_time_and_not_just_outside() {
    for database in TestDatabase::each_backend().await {
        let hub = Hub::start(database, "1800").await;
        let mut fbi = hub.agency("FBI").await;
        let mut atf = hub.agency("ATF").await;
        let surveillance = fbi
            .create_operation(CreateOperationRequest {
                operation: Some(operation("FBI-DL-5", OperationType::Surveillance, 32.7812, 60, 600)),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(surveillance.status, ReceiptStatus::AcceptedWithoutConflict as i32);

        // Outside both radii (1.3 km south) and after the window plus buffer: no conflict.
        let mut far = operation("ATF-1", OperationType::Raid, 32.7812 - 0.012, 60, 120);
        far.location.as_mut().unwrap().address = String::new();
        let far = atf
            .create_operation(CreateOperationRequest { operation: Some(far), request_id: String::new() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(far.status, ReceiptStatus::AcceptedWithoutConflict as i32, "{:?}", far.conflicts);
        let mut late = operation("ATF-2", OperationType::Raid, 32.7767, 900, 960);
        late.location.as_mut().unwrap().address = String::new();
        let late = atf
            .create_operation(CreateOperationRequest { operation: Some(late), request_id: String::new() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(late.status, ReceiptStatus::AcceptedWithoutConflict as i32);

        // A raid 500 m away during the surveillance: conflict, with distance and overlap.
        let mut raid = operation("ATF-3", OperationType::Raid, 32.7767, 90, 150);
        raid.location.as_mut().unwrap().address = String::new();
        let raid = atf
            .create_operation(CreateOperationRequest { operation: Some(raid), request_id: String::new() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(raid.status, ReceiptStatus::AcceptedWithConflict as i32);
        let Some(conflict_match::Match::Proximity(proximity)) = &raid.conflicts[0].matches[0].r#match else {
            panic!("proximity")
        };
        assert!((proximity.distance_meters - 500.0).abs() < 15.0, "{}", proximity.distance_meters);
        assert_eq!(other_party(&raid.conflicts[0]).agency, "agencies/FBI");

        let rules =
            atf.get_matching_rules(GetMatchingRulesRequest {}).await.unwrap().into_inner().rules.unwrap();
        assert_eq!(rules.operation_type_rules.len(), 11);
        assert!(rules.digest_keys[0].key_id == "dk-1");
    }
}

#[tokio::test]
async fn one_submission_checks_targets_operations_and_records_together() {
    let hub = Hub::start(TestDatabase::sqlite(), "1800").await;
    let mut dea = hub.agency("DEA").await;
    let mut atf = hub.agency("ATF").await;
    enroll_agency(&hub.registry, "ICE", "ICE").await;
    // ICE's records service registers a record's selectors (the mesh credential).
    let mesh_token =
        token(&hub.registry.url(), "agencies/INTERLOCK/credentials/mesh", MESH_SECRET).await.unwrap();
    let mut records = RecordSelectorServiceClient::new(InterceptedService::new(
        channel(&hub.deconfliction.url()).await,
        CallerMetadata::bearer(mesh_token),
    ));
    let registered = records
        .register_record_selectors(RegisterRecordSelectorsRequest {
            records: vec![RecordSelectorSet {
                record: "records/ice-0001".into(),
                record_version: 1,
                owner_agency: "agencies/ICE".into(),
                owner_contact: contact("ICE Duty Desk"),
                selectors: vec![Selector {
                    kind: SelectorKind::VehiclePlate as i32,
                    value: "abc-1234".into(),
                    region: "TX".into(),
                }],
                ..RecordSelectorSet::default()
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(registered.results[0].applied);
    atf.create_operation(CreateOperationRequest {
        operation: Some(operation("ATF-9", OperationType::Raid, 32.7767, 60, 120)),
        request_id: String::new(),
    })
    .await
    .unwrap();

    // DEA checks a case in one submission, dry run: a plate on ICE's record and a buy-bust
    // next to ATF's raid.
    let check = dea
        .check_case(CheckCaseRequest {
            case_reference: "DEA-DAL-2026-31".into(),
            targets: vec![target(
                "",
                vec![Selector {
                    kind: SelectorKind::VehiclePlate as i32,
                    value: "ABC 1234".into(),
                    region: "tx".into(),
                }],
                vec![],
            )],
            operations: vec![operation("", OperationType::BuyBust, 32.7770, 70, 100)],
            validate_only: true,
            ..CheckCaseRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(check.status, ReceiptStatus::CheckedWithConflict as i32);
    let record_hit = other_party(&check.target_results[0].conflicts[0]);
    assert_eq!(record_hit.agency, "agencies/ICE");
    assert_eq!(record_hit.registration_kind, RegistrationKind::Record as i32);
    assert!(record_hit.deconfliction_number.is_empty(), "a record's id is the owner's business");
    assert_eq!(record_hit.duty_desk.as_ref().unwrap().name, "ICE Duty Desk");
    assert_eq!(other_party(&check.operation_results[0].conflicts[0]).agency, "agencies/ATF");
    // A dry-run conflict says what kind of registration found it, as a stored one does.
    assert_eq!(check.target_results[0].conflicts[0].source, ConflictSource::Target as i32);
    assert_eq!(check.operation_results[0].conflicts[0].source, ConflictSource::Operation as i32);
    // A dry run registers nothing, but it counts in the participation report.
    let listed = dea.list_targets(ListTargetsRequest::default()).await.unwrap().into_inner();
    assert!(listed.targets.is_empty());
    let report = dea
        .get_participation_report(GetParticipationReportRequest::default())
        .await
        .unwrap()
        .into_inner()
        .reports
        .remove(0);
    assert_eq!((report.checks_performed, report.targets_registered), (1, 0));
}

#[tokio::test]
async fn conflicts_are_watched_resumably_acknowledged_escalated_and_settled() {
    for database in TestDatabase::each_backend().await {
        let hub = Hub::start(database, "1").await;
        let mut dea = hub.agency("DEA").await;
        let mut ice = hub.agency("ICE").await;
        let mut watch = dea.watch_conflicts(WatchConflictsRequest::default()).await.unwrap().into_inner();

        create_target(&mut dea, target("DEA-1", vec![phone("2145550147")], vec![])).await;
        let hit = create_target(&mut ice, target("ICE-1", vec![phone("214-555-0147")], vec![])).await;
        let conflict_name = hit.conflicts[0].name.clone();
        let detected = watch.message().await.unwrap().unwrap();
        assert_eq!(
            (detected.event_type, detected.conflict.as_ref().unwrap().name.as_str()),
            (ConflictEventType::Detected as i32, conflict_name.as_str())
        );
        let seen = detected.sequence;
        drop(watch);

        // While DEA is disconnected: nobody acknowledges, the watch desk is alerted after 1 s.
        let mut desk = hub.center_admin().await;
        let mut escalations =
            desk.watch_escalations(WatchEscalationsRequest::default()).await.unwrap().into_inner();
        let escalated = tokio::time::timeout(Duration::from_secs(10), escalations.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(escalated.event_type, ConflictEventType::Escalated as i32);
        assert_eq!(escalated.unacknowledged_agencies.len(), 2);

        // DEA reconnects from its cursor and gets what it missed, nothing twice.
        let mut resumed = dea
            .watch_conflicts(WatchConflictsRequest { after_sequence: seen, event_types: vec![] })
            .await
            .unwrap()
            .into_inner();
        let missed =
            tokio::time::timeout(Duration::from_secs(5), resumed.message()).await.unwrap().unwrap().unwrap();
        assert_eq!(missed.event_type, ConflictEventType::Escalated as i32);
        assert!(missed.sequence > seen);

        // Both acknowledge; ICE records the outcome; the history keeps every step.
        dea.acknowledge_conflict(AcknowledgeConflictRequest {
            name: conflict_name.clone(),
            note: "calling ICE".into(),
        })
        .await
        .unwrap();
        let twice = dea
            .acknowledge_conflict(AcknowledgeConflictRequest {
                name: conflict_name.clone(),
                note: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(twice.code(), Code::FailedPrecondition);
        let both = ice
            .acknowledge_conflict(AcknowledgeConflictRequest {
                name: conflict_name.clone(),
                note: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(both.conflict.unwrap().state, ConflictState::Acknowledged as i32);
        let settled = ice
            .record_conflict_outcome(RecordConflictOutcomeRequest {
                name: conflict_name.clone(),
                outcome: ConflictOutcome::JointOperation as i32,
                note: "joint case opened".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .conflict
            .unwrap();
        assert_eq!(settled.state, ConflictState::Resolved as i32);
        let steps: Vec<i32> = settled.history.iter().map(|h| h.event_type).collect();
        use ConflictEventType as E;
        assert_eq!(
            steps,
            [
                E::Detected as i32,
                E::Escalated as i32,
                E::Acknowledged as i32,
                E::Acknowledged as i32,
                E::OutcomeRecorded as i32
            ]
        );

        let report = dea
            .get_participation_report(GetParticipationReportRequest::default())
            .await
            .unwrap()
            .into_inner()
            .reports
            .remove(0);
        assert_eq!(
            (
                report.targets_registered,
                report.conflicts_found,
                report.conflicts_acknowledged,
                report.conflicts_escalated
            ),
            (1, 1, 1, 1)
        );
        assert_eq!(report.conflicts_unresolved, 0);
    }
}

/// The audit events waiting in the hub's outbox (no audit service runs beside this hub).
async fn audit_outbox(hub: &Hub) -> Vec<AuditEvent> {
    const QUERY: &str = "SELECT event FROM audit_outbox ORDER BY seq";
    let database = Database::open(hub.database.url(), &interlock_deconfliction::store::MIGRATIONS)
        .await
        .expect("open the hub's database");
    let rows: Vec<(Vec<u8>,)> = match &database {
        Database::Sqlite(file) => sqlx::query_as(QUERY).fetch_all(file.reads()).await,
        Database::Postgres(pool) => sqlx::query_as(QUERY).fetch_all(pool).await,
    }
    .expect("read the outbox");
    rows.iter().map(|(bytes,)| AuditEvent::decode(bytes.as_slice()).expect("an audit event")).collect()
}

/// The delivery audit of the notification numbered `sequence` on `method`'s stream.
fn delivery<'a>(events: &'a [AuditEvent], method: &str, sequence: i64) -> Option<&'a AuditEvent> {
    events.iter().find(|event| {
        event.method == format!("/interlock.deconfliction.v1.DeconflictionService/{method}")
            && event.details.get("sequence") == Some(&sequence.to_string())
    })
}

#[tokio::test]
async fn every_notification_delivered_is_audited_before_it_is_sent() {
    for database in TestDatabase::each_backend().await {
        let hub = Hub::start(database, "1").await;
        let mut dea = hub.agency("DEA").await;
        let mut ice = hub.agency("ICE").await;
        let mut watch = dea.watch_conflicts(WatchConflictsRequest::default()).await.unwrap().into_inner();
        let mut desk = hub.center_admin().await;
        let mut escalations =
            desk.watch_escalations(WatchEscalationsRequest::default()).await.unwrap().into_inner();

        let dea_number = create_target(&mut dea, target("DEA-5", vec![phone("2145550155")], vec![]))
            .await
            .target
            .unwrap()
            .deconfliction_number;
        let hit = create_target(&mut ice, target("ICE-5", vec![phone("214-555-0155")], vec![])).await;
        let conflict_name = hit.conflicts[0].name.clone();
        let detected = watch.message().await.unwrap().unwrap();
        assert_eq!(detected.event_type, ConflictEventType::Detected as i32);
        // Read right after the message arrived: the audit event was durable before it was sent.
        let events = audit_outbox(&hub).await;
        let audited =
            delivery(&events, "WatchConflicts", detected.sequence).expect("the delivery is audited");
        assert_eq!(
            (audited.action, audited.actor_agency.as_str(), audited.purpose),
            (Action::Read as i32, "agencies/DEA", Purpose::Investigation.to_proto() as i32)
        );
        assert_eq!(audited.details["event_type"], "CONFLICT_EVENT_TYPE_DETECTED");
        assert_eq!(audited.resources.len(), 1);
        assert_eq!(audited.resources[0].resource, conflict_name);
        let mut owners = audited.resources[0].owners.clone();
        owners.sort();
        assert_eq!(owners, ["agencies/DEA", "agencies/ICE"]);

        // A dry run hitting DEA's phone tells DEA someone checked; that notice is audited too.
        ice.check_case(CheckCaseRequest {
            case_reference: "ICE-6".into(),
            targets: vec![target("", vec![phone("2145550155")], vec![])],
            validate_only: true,
            ..CheckCaseRequest::default()
        })
        .await
        .unwrap();
        // The escalation (due after 1 s) may come first.
        let checked = loop {
            let message = tokio::time::timeout(Duration::from_secs(5), watch.message())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if message.event_type == ConflictEventType::CheckHit as i32 {
                break message;
            }
        };
        let events = audit_outbox(&hub).await;
        let audited =
            delivery(&events, "WatchConflicts", checked.sequence).expect("the check notice is audited");
        assert_eq!(audited.details["event_type"], "CONFLICT_EVENT_TYPE_CHECK_HIT");
        assert!(audited.resources.is_empty(), "a check hit names no conflict");
        // The check itself: one event naming the registration it matched, owned by DEA.
        let check = events
            .iter()
            .find(|event| {
                event.action == Action::DeconflictionCheck as i32 && event.actor_agency == "agencies/ICE"
            })
            .expect("the dry run is audited");
        assert_eq!(check.method, "/interlock.deconfliction.v1.DeconflictionService/CheckCase");
        assert_eq!((check.details["hits"].as_str(), check.details["validate_only"].as_str()), ("1", "true"));
        let matched: Vec<(&str, &[String])> =
            check.resources.iter().map(|r| (r.resource.as_str(), r.owners.as_slice())).collect();
        assert_eq!(matched, [(dea_number.as_str(), &["agencies/DEA".to_owned()][..])]);

        // The watch desk's escalation: audited under the desk's caller, for deconfliction.
        let escalated = tokio::time::timeout(Duration::from_secs(10), escalations.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let events = audit_outbox(&hub).await;
        let audited =
            delivery(&events, "WatchEscalations", escalated.sequence).expect("the escalation is audited");
        assert_eq!(
            (audited.action, audited.actor_agency.as_str(), audited.purpose),
            (Action::Read as i32, "agencies/INTERLOCK", Purpose::Deconfliction.to_proto() as i32)
        );
        assert_eq!(audited.resources[0].resource, conflict_name);

        // One event per notification: nothing audited twice.
        let desk_deliveries =
            events.iter().filter(|event| event.method.ends_with("/WatchEscalations")).count();
        assert_eq!(desk_deliveries, 1);
    }
}

#[tokio::test]
async fn targets_expire_and_renewal_brings_them_back() {
    let hub = Hub::start(TestDatabase::sqlite(), "1800").await;
    let mut dea = hub.agency("DEA").await;
    let mut ice = hub.agency("ICE").await;
    let mut short = target("DEA-9", vec![phone("2145550199")], vec![]);
    short.expire_time = Some(Timestamp { seconds: at(0).unwrap().seconds + 2, nanos: 0 });
    let created = create_target(&mut dea, short).await.target.unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let miss = create_target(&mut ice, target("ICE-9", vec![phone("2145550199")], vec![])).await;
    assert_eq!(
        miss.status,
        ReceiptStatus::AcceptedWithoutConflict as i32,
        "an expired target stops matching"
    );
    let shown = dea
        .get_target(GetTargetRequest { name: created.name.clone() })
        .await
        .unwrap()
        .into_inner()
        .target
        .unwrap();
    assert_eq!(shown.state, TargetState::Expired as i32);

    let renewed = dea
        .renew_target(RenewTargetRequest { name: created.name.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(renewed.target.unwrap().state, TargetState::Active as i32);
    assert_eq!(renewed.new_conflicts.len(), 1, "renewed, it meets ICE's target");
    let unknown = dea
        .renew_case_targets(RenewCaseTargetsRequest {
            case_reference: "NO-SUCH-CASE".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn bad_input_is_refused_and_nothing_is_written() {
    let hub = Hub::start(TestDatabase::sqlite(), "1800").await;
    let mut dea = hub.agency("DEA").await;
    let fields = |status: tonic::Status| -> Vec<String> {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        status
            .get_error_details()
            .bad_request()
            .unwrap()
            .field_violations
            .iter()
            .map(|v| v.field.clone())
            .collect()
    };
    let mut bad = operation("DEA-5", OperationType::Raid, 91.0, 120, 60);
    bad.radius_meters = -5;
    let status = dea
        .create_operation(CreateOperationRequest { operation: Some(bad), request_id: String::new() })
        .await
        .unwrap_err();
    assert_eq!(
        fields(status),
        ["operation.location.latitude", "operation.radius_meters", "operation.end_time"]
    );
    let mut absurd = operation("DEA-5", OperationType::Raid, 32.0, 60, 120);
    absurd.radius_meters = 5_000_000;
    let status = dea
        .create_operation(CreateOperationRequest { operation: Some(absurd), request_id: String::new() })
        .await
        .unwrap_err();
    assert_eq!(fields(status), ["operation.radius_meters"]);
    let status = dea
        .create_target(CreateTargetRequest {
            target: Some(target("DEA-5", vec![phone("call me maybe")], vec![])),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(fields(status), ["target.selectors[0].value"]);
    let status = dea
        .create_target(CreateTargetRequest {
            target: Some(target("DEA-5", vec![], vec![])),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(fields(status), ["target.selectors"]);
    assert!(dea.list_targets(ListTargetsRequest::default()).await.unwrap().into_inner().targets.is_empty());
    assert!(
        dea.list_operations(ListOperationsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .operations
            .is_empty()
    );
}

#[tokio::test]
async fn the_hub_keeps_no_raw_identifier() {
    let database = TestDatabase::sqlite();
    let path = database.url().trim_start_matches("sqlite://").to_owned();
    let hub = Hub::start(database, "1800").await;
    let mut dea = hub.agency("DEA").await;
    let mut ice = hub.agency("ICE").await;
    let raw = [
        ("2145550147", phone("(214) 555-0147")),
        (
            "ALICE@EXAMPLE",
            Selector {
                kind: SelectorKind::Email as i32,
                value: "alice@example.org".into(),
                region: String::new(),
            },
        ),
        (
            "1HGBH41JXMN109186",
            Selector {
                kind: SelectorKind::Vin as i32,
                value: "1HGBH41JXMN109186".into(),
                region: String::new(),
            },
        ),
    ];
    let selectors: Vec<Selector> = raw.iter().map(|(_, s)| s.clone()).collect();
    create_target(&mut dea, target("DEA-77", selectors.clone(), vec![person("Esmeralda", "Quintanilla")]))
        .await;
    let hit =
        create_target(&mut ice, target("ICE-77", selectors, vec![person("Esmeralda", "Quintanilla")])).await;
    assert_eq!(hit.status, ReceiptStatus::AcceptedWithConflict as i32);
    dea.create_operation(CreateOperationRequest {
        operation: Some(operation("DEA-77", OperationType::Raid, 32.7, 60, 120)),
        request_id: String::new(),
    })
    .await
    .unwrap();
    hub.deconfliction.mesh.shutdown().await.unwrap();

    let mut scanned = 0;
    for file in [path.clone(), format!("{path}-wal")] {
        let Ok(bytes) = std::fs::read(&file) else { continue };
        scanned += bytes.len();
        let text = String::from_utf8_lossy(&bytes).to_uppercase();
        for needle in [
            "2145550147",
            "555-0147",
            "ALICE@EXAMPLE",
            "1HGBH41JXMN109186",
            "QUINTANILLA",
            "ESMERALDA",
            "MARILLA",
        ] {
            assert!(!text.contains(needle), "{file} holds the raw value {needle}");
        }
    }
    assert!(scanned > 10_000, "the scan read the database");
    drop(hub.registry);
    drop(hub.database);
}

/// A record ICE contributes is registered with the hub by the records service itself: DEA's
/// target on the record's phone then finds ICE, and withdrawing the record (no-deconfliction
/// caveat) stops the match.
#[tokio::test]
async fn records_register_their_selectors_with_the_hub() {
    use interlock_api::common::v1::{Caveat, RecordCategory, SensitivityLevel};
    use interlock_api::records::v1::records_service_client::RecordsServiceClient;
    use interlock_api::records::v1::{CreateRecordRequest, Record, RecordSelector, UpdateRecordRequest};

    let server = TestServer::all_in_one().await;
    let ice = enroll_agency(&server, "ICE", "ICE").await;
    let dea = enroll_agency(&server, "DEA", "DEA").await;
    let ice_admin = ice.channel(&server, &server.url(), "chief").await;
    let (member, secret) = interlock_tests::issue_credential(
        &ice_admin,
        "ICE",
        "case-system",
        &[interlock_api::registry::v1::Role::AgencyMember],
    )
    .await;
    let ice_member =
        interlock_tests::as_credential(&server.url(), &server.url(), &member, &secret, "analyst").await;
    let mut ice_records = RecordsServiceClient::new(ice_member);
    let mut dea_hub =
        DeconflictionServiceClient::new(dea.channel(&server, &server.url(), "case-agent").await);
    let record = ice_records
        .create_record(CreateRecordRequest {
            record: Some(Record {
                record_number: "ICE-2026-0001".into(),
                category: RecordCategory::InvestigationReport as i32,
                sensitivity: SensitivityLevel::LawEnforcementSensitive as i32,
                title: "Bulk cash courier".into(),
                selectors: vec![RecordSelector {
                    selector: Some(phone("(469) 555-0123")),
                    ..RecordSelector::default()
                }],
                ..Record::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();

    // The records service's relay registers the record within moments.
    let hit = check_phone_until(
        &mut dea_hub,
        ReceiptStatus::CheckedWithConflict,
        "the record never reached the hub",
    )
    .await;
    let owner = other_party(&hit.target_results[0].conflicts[0]);
    assert_eq!(
        (owner.agency.as_str(), owner.registration_kind),
        ("agencies/ICE", RegistrationKind::Record as i32)
    );
    assert_eq!(
        owner.duty_desk.as_ref().unwrap().name,
        "ICE Duty Desk",
        "the owner's 24/7 desk from the registry"
    );

    // ICE marks the record no-deconfliction-pointer: the hub forgets it.
    let mut changed = record.clone();
    changed.caveats = vec![Caveat::NoDeconflictionPointer as i32];
    ice_records
        .update_record(UpdateRecordRequest {
            record: Some(changed),
            update_mask: Some(prost_types::FieldMask { paths: vec!["caveats".into()] }),
        })
        .await
        .unwrap();
    check_phone_until(
        &mut dea_hub,
        ReceiptStatus::CheckedWithoutConflict,
        "the withdrawn record still matches",
    )
    .await;
}

/// Dry-runs DEA's check of the record's phone until it answers `wanted` (within 5 s).
async fn check_phone_until(
    hub: &mut DeconflictionServiceClient<AuthedChannel>,
    wanted: ReceiptStatus,
    failure: &str,
) -> CheckCaseResponse {
    for _ in 0..50 {
        let check = hub
            .check_case(CheckCaseRequest {
                case_reference: "DEA-44".into(),
                targets: vec![target("", vec![phone("469-555-0123")], vec![])],
                validate_only: true,
                ..CheckCaseRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        if check.status == wanted as i32 {
            return check;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{failure}");
}
