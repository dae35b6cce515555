//! Nothing lost: the registry and deconfliction keep working while the audit service is down,
//! their events wait in the outboxes of their own databases, and once the audit service is back
//! every event arrives exactly once, even when the relay delivers one again, and events the audit
//! service rejects for good are set aside without holding up the rest. On SQLite and
//! PostgreSQL, with every service in its own process-like server and its own database, as in a
//! split deployment.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use interlock_api::audit::v1::audit_service_client::AuditServiceClient;
use interlock_api::audit::v1::{Action, AuditEvent, ExportEventsRequest, InterlockService};
use interlock_api::common::v1::{Contact, Selector, SelectorKind};
use interlock_api::deconfliction::v1::deconfliction_service_client::DeconflictionServiceClient;
use interlock_api::deconfliction::v1::{CreateTargetRequest, Target};
use interlock_api::registry::v1::center_service_client::CenterServiceClient;
use interlock_api::registry::v1::{AddCenterMemberRequest, Center, CreateCenterRequest};
use interlock_audit_client::SqlOutbox;
use interlock_auth::{CallerMetadata, Purpose};
use interlock_storage::Database;
use interlock_storage::testing::TestDatabase;
use interlock_tests::{TestServer, enroll_agency, free_port, token};
use prost::Message;
use tokio_stream::StreamExt;
use tonic::service::interceptor::InterceptedService;

const MESH_SECRET: &str = "ilk_outage-test-mesh";
const AUDIT_SEED: [u8; 32] = [7; 32];

/// The three databases of one backend.
struct Databases {
    registry: TestDatabase,
    deconfliction: TestDatabase,
    audit: TestDatabase,
}

async fn each_backend() -> Vec<Databases> {
    let mut sets = Vec::new();
    let mut registry = TestDatabase::each_backend().await.into_iter();
    let mut deconfliction = TestDatabase::each_backend().await.into_iter();
    for audit in TestDatabase::each_backend().await {
        sets.push(Databases {
            registry: registry.next().expect("as many registry databases"),
            deconfliction: deconfliction.next().expect("as many deconfliction databases"),
            audit,
        });
    }
    sets
}

async fn start_audit(database: &TestDatabase, listen: &str, registry: &str) -> TestServer {
    let key = STANDARD.encode(AUDIT_SEED);
    TestServer::start(&[
        "--service",
        "audit",
        "--listen",
        listen,
        "--database-url",
        database.url(),
        "--registry-address",
        registry,
        "--mesh-secret",
        MESH_SECRET,
        "--audit-signing-key",
        &key,
        "--audit-checkpoint-interval-ms",
        "50",
        "--shutdown-grace-seconds",
        "2",
    ])
    .await
}

/// The (event id, encoded event) rows waiting in a service's outbox.
async fn outbox(database: &Database) -> Vec<(String, Vec<u8>)> {
    const QUERY: &str = "SELECT event_id, event FROM audit_outbox ORDER BY seq";
    match database {
        Database::Sqlite(file) => sqlx::query_as(QUERY).fetch_all(file.reads()).await,
        Database::Postgres(pool) => sqlx::query_as(QUERY).fetch_all(pool).await,
    }
    .expect("read the outbox")
}

/// Puts an entry into a service's outbox directly, as only a bug or a crashed relay would.
async fn enqueue(database: &Database, event_id: &str, event: &[u8]) {
    const INSERT: &str = "INSERT INTO audit_outbox (event_id, event) VALUES ($1, $2)";
    match database {
        Database::Sqlite(file) => {
            sqlx::query(INSERT).bind(event_id).bind(event).execute(file.writes()).await.map(drop)
        }
        Database::Postgres(pool) => {
            sqlx::query(INSERT).bind(event_id).bind(event).execute(pool).await.map(drop)
        }
    }
    .expect("put an event back into the outbox");
}

async fn wait_until_drained(databases: &[&Database]) {
    for _ in 0..300 {
        let mut waiting = 0;
        for database in databases {
            waiting += outbox(database).await.len();
        }
        if waiting == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the outboxes did not drain within 30 seconds of the audit service's restart");
}

/// Every event in the log, as the center auditor exports it.
async fn export_all(audit: &TestServer, registry: &TestServer) -> Vec<AuditEvent> {
    let metadata = CallerMetadata::bearer(registry.admin_token().await)
        .on_behalf_of("auditor@center.example", Purpose::Investigation);
    let mut client = AuditServiceClient::new(InterceptedService::new(audit.channel().await, metadata));
    let mut stream = client.export_events(ExportEventsRequest::default()).await.expect("export").into_inner();
    let mut events = Vec::new();
    while let Some(message) = stream.next().await {
        events.extend(message.expect("export chunk").events);
    }
    events
}

fn phone_target(case: &str, phone: &str) -> Target {
    let contact = Contact {
        name: format!("{case} case agent"),
        phone: "+12145550100".into(),
        email: String::new(),
        around_the_clock: true,
    };
    Target {
        case_reference: case.into(),
        case_agent: Some(contact.clone()),
        duty_desk: Some(contact),
        selectors: vec![Selector {
            kind: SelectorKind::Phone as i32,
            value: phone.into(),
            region: "US".into(),
        }],
        ..Target::default()
    }
}

#[tokio::test]
async fn every_event_written_while_the_audit_service_is_down_arrives_exactly_once() {
    for databases in each_backend().await {
        let audit_listen = format!("127.0.0.1:{}", free_port());
        let audit_url = format!("http://{audit_listen}");
        let registry = TestServer::start(&[
            "--service",
            "registry",
            "--database-url",
            databases.registry.url(),
            "--mesh-secret",
            MESH_SECRET,
            "--audit-address",
            &audit_url,
        ])
        .await;
        let deconfliction = TestServer::start(&[
            "--service",
            "deconfliction",
            "--database-url",
            databases.deconfliction.url(),
            "--registry-address",
            &registry.url(),
            "--audit-address",
            &audit_url,
            "--mesh-secret",
            MESH_SECRET,
        ])
        .await;
        let audit = start_audit(&databases.audit, &audit_listen, &registry.url()).await;
        // Opened with the services' own migrations, which are already applied: nothing changes.
        let registry_db =
            Database::open(databases.registry.url(), &interlock_registry::store::MIGRATIONS).await.unwrap();
        let deconfliction_db =
            Database::open(databases.deconfliction.url(), &interlock_deconfliction::store::MIGRATIONS)
                .await
                .unwrap();
        // Whatever the services wrote at start-up is delivered before the outage begins.
        wait_until_drained(&[&registry_db, &deconfliction_db]).await;
        let TestServer { mesh, data: _first_data, .. } = audit;
        mesh.shutdown().await.unwrap();

        // The outage: registry writes, logons and deconfliction registrations all succeed.
        let dea = enroll_agency(&registry, "DEA", "Drug Enforcement Administration").await;
        let ice = enroll_agency(&registry, "ICE", "Immigration and Customs Enforcement").await;
        // A center and its membership: events whose owner is the operator and the member agency.
        let mut centers = CenterServiceClient::new(registry.admin_channel().await);
        let center = Center { center_id: "ioc-2".into(), display_name: "IOC-2".into(), ..Center::default() };
        centers
            .create_center(CreateCenterRequest { center: Some(center), request_id: String::new() })
            .await
            .unwrap();
        centers
            .add_center_member(AddCenterMemberRequest {
                center: "centers/ioc-2".into(),
                agency: "agencies/DEA".into(),
                ..AddCenterMemberRequest::default()
            })
            .await
            .unwrap();
        token(&registry.url(), &dea.credential, &dea.secret).await.unwrap();
        let wrong = token(&registry.url(), &ice.credential, "ilk_not-the-secret").await.unwrap_err();
        assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
        let mut numbers = Vec::new();
        for (agency, case) in [(&dea, "DEA-2009-0042"), (&ice, "ICE-2009-0117")] {
            let channel = agency.channel(&registry, &deconfliction.url(), "case-agent").await;
            let created = DeconflictionServiceClient::new(channel)
                .create_target(CreateTargetRequest {
                    target: Some(phone_target(case, "+1 214 555 0199")),
                    request_id: String::new(),
                })
                .await
                .expect("deconfliction keeps registering while the audit service is down")
                .into_inner();
            numbers.push(created.target.expect("target").deconfliction_number);
        }

        // The events wait in the outboxes of the services' own databases.
        let waiting: Vec<(String, Vec<u8>)> =
            [outbox(&registry_db).await, outbox(&deconfliction_db).await].concat();
        let decoded: Vec<AuditEvent> =
            waiting.iter().map(|(_, bytes)| AuditEvent::decode(bytes.as_slice()).unwrap()).collect();
        let has = |service: InterlockService, action: Action, resource: &str| {
            decoded.iter().any(|e| {
                e.service == service as i32
                    && e.action == action as i32
                    && e.resources.iter().any(|r| r.resource == resource)
            })
        };
        for code in ["DEA", "ICE"] {
            assert!(has(InterlockService::Registry, Action::Create, &format!("agencies/{code}")), "{code}");
        }
        assert!(has(InterlockService::Registry, Action::Create, "centers/ioc-2"));
        assert!(has(InterlockService::Registry, Action::LogonSuccess, &dea.credential));
        assert!(has(InterlockService::Registry, Action::LogonFailure, &ice.credential));
        for number in &numbers {
            assert!(has(InterlockService::Deconfliction, Action::Create, number), "{number}");
        }
        assert!(decoded.iter().any(|e| e.action == Action::DeconflictionHit as i32), "ICE hit DEA's phone");

        // Poison queued behind them: an event the audit service rejects as malformed, and bytes
        // that are no event at all. Neither may hold up the others.
        let malformed = AuditEvent {
            event_id: uuid::Uuid::now_v7().to_string(),
            trace_id: String::new(),
            ..decoded[0].clone()
        };
        enqueue(&registry_db, &malformed.event_id, &malformed.encode_to_vec()).await;
        let garbage_id = uuid::Uuid::now_v7().to_string();
        enqueue(&registry_db, &garbage_id, &[0xff, 0xff, 0xff]).await;

        // The audit service comes back at the same address on the same database.
        let audit = start_audit(&databases.audit, &audit_listen, &registry.url()).await;
        wait_until_drained(&[&registry_db, &deconfliction_db]).await;

        // A lost acknowledgement makes the relay send an event again; it must not count twice.
        // An event reusing a delivered id with other fields is rejected for good, the rest flow.
        let (again_id, again) = &waiting[0];
        let conflicting = AuditEvent { actor_user: "someone-else".into(), ..decoded[1].clone() };
        enqueue(&registry_db, &conflicting.event_id, &conflicting.encode_to_vec()).await;
        enqueue(&registry_db, again_id, again).await;
        wait_until_drained(&[&registry_db, &deconfliction_db]).await;

        // The poison is kept aside with its reason, nothing else is.
        let dead = SqlOutbox::new(registry_db.clone()).dead_letters(10).await.unwrap();
        let reasons: BTreeMap<&str, &str> =
            dead.iter().map(|d| (d.event_id.as_str(), d.reason.as_str())).collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(reasons[malformed.event_id.as_str()].starts_with("InvalidArgument"), "{reasons:?}");
        assert!(reasons[malformed.event_id.as_str()].contains("trace_id"), "{reasons:?}");
        assert!(reasons[garbage_id.as_str()].starts_with("not an audit event"), "{reasons:?}");
        assert!(reasons[conflicting.event_id.as_str()].starts_with("AlreadyExists"), "{reasons:?}");
        assert_eq!(dead.iter().find(|d| d.event_id == garbage_id).unwrap().event, [0xff, 0xff, 0xff]);
        assert_eq!(SqlOutbox::new(deconfliction_db.clone()).dead_letter_count().await.unwrap(), 0);

        let log = export_all(&audit, &registry).await;
        let mut copies: BTreeMap<&str, usize> = BTreeMap::new();
        for event in &log {
            *copies.entry(event.event_id.as_str()).or_default() += 1;
        }
        let duplicated: Vec<_> = copies.iter().filter(|(_, n)| **n > 1).collect();
        assert!(!copies.contains_key(malformed.event_id.as_str()), "a malformed event was appended");
        let kept = log.iter().find(|e| e.event_id == conflicting.event_id).unwrap();
        assert_eq!(kept.actor_user, decoded[1].actor_user, "the first event with that id stays");
        assert!(duplicated.is_empty(), "events in the log more than once: {duplicated:?}");
        let arrived: BTreeSet<&str> = copies.keys().copied().collect();
        let missing: Vec<&str> =
            waiting.iter().map(|(id, _)| id.as_str()).filter(|id| !arrived.contains(id)).collect();
        assert!(missing.is_empty(), "events lost in the outage: {missing:?}");
        // The delivered events are the ones the services wrote, byte for byte.
        for (id, bytes) in &waiting {
            let original = AuditEvent::decode(bytes.as_slice()).unwrap();
            let stored = log.iter().find(|e| &e.event_id == id).unwrap();
            assert_eq!(
                (stored.action, &stored.actor_agency, &stored.resources.len(), &stored.trace_id),
                (original.action, &original.actor_agency, &original.resources.len(), &original.trace_id),
                "{id}"
            );
        }

        let TestServer { mesh, .. } = audit;
        mesh.shutdown().await.unwrap();
        drop((registry, deconfliction, databases));
    }
}
