//! The audit log over real gRPC, on SQLite and PostgreSQL: appends and idempotency, the
//! visibility rules, proofs checked with the independent verification functions, and tampering
//! with the database caught by `verify`.
//!
//! Each case runs the audit service alone (`--service audit`, as a Kubernetes pod does) on the
//! backend's database, next to a registry that issues the tokens. Agency administrators' tokens
//! are minted with the registry's configured signing key, since agency credentials arrive with
//! the registry issue (#3).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use interlock_api::audit::v1::audit_service_client::AuditServiceClient;
use interlock_api::audit::v1::{
    Action, AppendEventsRequest, AuditEvent, AuditedResource, Checkpoint, EventFilter, EventView,
    ExportEventsRequest, GetConsistencyProofRequest, GetEventRequest, GetInclusionProofRequest,
    GetLatestCheckpointRequest, GetLeafHashesRequest, GetLogInfoRequest, InterlockService,
    ListCheckpointsRequest, ListEventsRequest, Outcome, get_inclusion_proof_request,
};
use interlock_audit::domain::checkpoint::{NoteSigner, verify_note};
use interlock_audit::merkle::{Hash, leaf_hash, root_of, verify_consistency, verify_inclusion};
use interlock_auth::{AUDIENCE, CallerMetadata, Claims, ISSUER, Purpose, TokenSigner};
use interlock_rpc::{now_micros, timestamp_from_micros};
use interlock_storage::Database;
use interlock_storage::testing::TestDatabase;
use interlock_tests::{AuthedChannel, TestServer, token};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;

const MESH_SECRET: &str = "ilk_test-mesh-secret";
const TOKEN_SEED: [u8; 32] = [9; 32];
const AUDIT_SEED: [u8; 32] = [5; 32];
const ORIGIN: &str = "test.interlock.example/audit";

/// A registry (the whole mesh, for its tokens) and an audit pod on the backend's database.
struct AuditMesh {
    registry: TestServer,
    audit: TestServer,
    database: TestDatabase,
}

async fn each_mesh() -> Vec<AuditMesh> {
    let mut meshes = Vec::new();
    for database in TestDatabase::each_backend().await {
        let token_key = STANDARD.encode(TOKEN_SEED);
        let audit_key = STANDARD.encode(AUDIT_SEED);
        let common = [
            "--mesh-secret",
            MESH_SECRET,
            "--token-signing-key",
            &token_key,
            "--audit-signing-key",
            &audit_key,
            "--audit-origin",
            ORIGIN,
            "--audit-checkpoint-interval-ms",
            "50",
        ];
        let registry = TestServer::start(&common).await;
        let registry_url = registry.url();
        let mut args = common.to_vec();
        args.extend([
            "--service",
            "audit",
            "--database-url",
            database.url(),
            "--registry-address",
            &registry_url,
        ]);
        let audit = TestServer::start(&args).await;
        // The audit pod verifies tokens once it has fetched the registry's keys.
        let mut health = HealthClient::new(audit.channel().await);
        for _ in 0..100 {
            let status =
                health.check(HealthCheckRequest { service: "audit".into() }).await.unwrap().into_inner();
            if status.status == ServingStatus::Serving as i32 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        meshes.push(AuditMesh { registry, audit, database });
    }
    meshes
}

type Client = AuditServiceClient<AuthedChannel>;

impl AuditMesh {
    async fn client(&self, token: String, user: &str) -> Client {
        let metadata = CallerMetadata::bearer(token).on_behalf_of(user, Purpose::Investigation);
        AuditServiceClient::new(InterceptedService::new(self.audit.channel().await, metadata))
    }

    async fn mesh_service(&self) -> Client {
        let token =
            token(&self.registry.url(), "agencies/INTERLOCK/credentials/mesh", MESH_SECRET).await.unwrap();
        self.client(token, "records-service").await
    }

    async fn auditor(&self) -> Client {
        self.client(self.registry.admin_token().await, "auditor@center.example").await
    }

    /// An administrator (or, with `role`, another role) of `agency`.
    async fn agency(&self, agency: &str, role: &str) -> Client {
        let now = now_micros() / 1_000_000;
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: format!("agencies/{agency}/credentials/test"),
            agency: agency.into(),
            roles: vec![role.into()],
            iat: now,
            nbf: now,
            exp: now + 600,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        self.client(TokenSigner::from_seed(&TOKEN_SEED).sign(&claims), &format!("admin@{agency}.example"))
            .await
    }

    /// The latest checkpoint once it covers at least `size` leaves.
    async fn checkpoint_covering(&self, size: u64) -> Checkpoint {
        let mut client = self.auditor().await;
        for _ in 0..200 {
            let latest = client
                .get_latest_checkpoint(GetLatestCheckpointRequest {})
                .await
                .unwrap()
                .into_inner()
                .checkpoint
                .unwrap();
            if latest.tree_size >= size {
                return latest;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no checkpoint covered {size} leaves within 5 seconds");
    }
}

fn event_id(n: u32) -> String {
    format!("00000000-0000-7000-8000-{n:012x}")
}

/// `actor` read a resource owned by `owner`.
fn read(n: u32, actor: &str, owner: &str, withheld: bool) -> AuditEvent {
    AuditEvent {
        event_id: event_id(n),
        time: Some(timestamp_from_micros(now_micros())),
        service: InterlockService::Records as i32,
        method: "/interlock.records.v1.RecordsService/GetRecord".into(),
        action: Action::Read as i32,
        actor_agency: format!("agencies/{actor}"),
        actor_user: format!("officer{n}@{actor}.example"),
        purpose: interlock_api::common::v1::Purpose::Investigation as i32,
        resources: vec![AuditedResource {
            resource: format!("records/r{n}"),
            owners: vec![format!("agencies/{owner}")],
            agreement: if actor == owner { String::new() } else { "agreements/a1".into() },
            agreement_version: if actor == owner { 0 } else { 1 },
            withheld,
            ..Default::default()
        }],
        outcome: Outcome::Allowed as i32,
        trace_id: format!("{:032x}", u128::from(n) + 1),
        ..Default::default()
    }
}

fn pinned_key() -> NoteSigner {
    NoteSigner::new(&AUDIT_SEED, ORIGIN)
}

fn hash(bytes: &[u8]) -> Hash {
    bytes.try_into().expect("32-byte hash")
}

/// A checkpoint checked the way log.proto tells clients to: signature over the note text with
/// the pinned key, then the parsed fields.
fn verified_root(checkpoint: &Checkpoint) -> Hash {
    let key = pinned_key();
    let note = verify_note(&checkpoint.signed_note, ORIGIN, &key.public_key()).expect("signature verifies");
    assert_eq!((note.tree_size, note.root.to_vec()), (checkpoint.tree_size, checkpoint.root_hash.clone()));
    note.root
}

#[tokio::test]
async fn appends_are_idempotent_validated_and_for_mesh_services_only() {
    for mesh in each_mesh().await {
        let mut writer = mesh.mesh_service().await;
        let batch =
            vec![read(1, "DEA", "FBI", false), read(2, "FBI", "FBI", false), read(3, "ICE", "ATF", false)];
        let first =
            writer.append_events(AppendEventsRequest { events: batch.clone() }).await.unwrap().into_inner();
        assert_eq!(first.results.iter().map(|r| r.leaf_index).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(first.tree_size, 3);
        assert_eq!(first.results[0].name, format!("events/{}", event_id(1)));

        // A retry after a lost answer: same leaves, marked duplicate, nothing new.
        let retry =
            writer.append_events(AppendEventsRequest { events: batch.clone() }).await.unwrap().into_inner();
        assert!(retry.results.iter().all(|r| r.duplicate));
        assert_eq!(
            retry.results.iter().map(|r| (r.leaf_index, r.leaf_hash.clone())).collect::<Vec<_>>(),
            first.results.iter().map(|r| (r.leaf_index, r.leaf_hash.clone())).collect::<Vec<_>>()
        );
        assert_eq!(retry.tree_size, 3);

        // The same id with other content fails the whole batch.
        let mut changed = read(2, "FBI", "FBI", false);
        changed.actor_user = "someone.else@fbi.example".into();
        let conflict = writer
            .append_events(AppendEventsRequest { events: vec![read(4, "DEA", "DEA", false), changed] })
            .await
            .unwrap_err();
        assert_eq!(conflict.code(), Code::AlreadyExists);
        let info = conflict.get_error_details().error_info().cloned().unwrap();
        assert_eq!(
            (info.reason.as_str(), info.metadata["event_id"].as_str()),
            ("EVENT_ID_CONFLICT", event_id(2).as_str())
        );

        // Invalid events: every violation listed, nothing appended.
        let mut bad = read(5, "DEA", "FBI", false);
        bad.trace_id = String::new();
        bad.resources[0].owners.clear();
        let invalid = writer
            .append_events(AppendEventsRequest { events: vec![read(6, "DEA", "FBI", false), bad] })
            .await
            .unwrap_err();
        assert_eq!(invalid.code(), Code::InvalidArgument);
        let fields: Vec<String> = invalid
            .get_error_details()
            .bad_request()
            .unwrap()
            .field_violations
            .iter()
            .map(|v| v.field.clone())
            .collect();
        assert_eq!(fields, ["events[1].resources[0].owners", "events[1].trace_id"]);
        let empty = writer.append_events(AppendEventsRequest { events: vec![] }).await.unwrap_err();
        assert_eq!(empty.code(), Code::InvalidArgument);

        // Only mesh services append.
        let refused = mesh
            .auditor()
            .await
            .append_events(AppendEventsRequest { events: vec![read(7, "DEA", "FBI", false)] })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied);
        assert_eq!(refused.get_error_details().error_info().unwrap().reason, "AUDIT_ROLE_REQUIRED");

        let info = mesh.auditor().await.get_log_info(GetLogInfoRequest {}).await.unwrap().into_inner();
        let info = info.log_info.unwrap();
        assert_eq!((info.tree_size, info.origin.as_str()), (3, ORIGIN));
        assert_eq!(info.public_key, pinned_key().public_key().to_bytes().to_vec());
        assert_eq!(info.verifier_key, pinned_key().verifier_key());
    }
}

#[tokio::test]
async fn each_agency_sees_its_own_view_and_every_read_is_audited() {
    for mesh in each_mesh().await {
        let mut writer = mesh.mesh_service().await;
        let events = vec![
            read(1, "DEA", "FBI", false), // DEA read an FBI record
            read(2, "FBI", "FBI", false), // FBI read its own record
            read(3, "ICE", "ATF", false), // ICE read an ATF record
            read(4, "DEA", "ICE", true),  // DEA's search matched a restricted ICE record
        ];
        writer.append_events(AppendEventsRequest { events }).await.unwrap();
        let list = |filter: EventFilter| ListEventsRequest { filter: Some(filter), ..Default::default() };
        let reads_only = || EventFilter { actions: vec![Action::Read as i32], ..Default::default() };
        let ids = |events: &[AuditEvent]| events.iter().map(|e| e.leaf_index).collect::<Vec<_>>();

        let mut dea = mesh.agency("DEA", "ROLE_AGENCY_ADMINISTRATOR").await;
        let seen = dea.list_events(list(reads_only())).await.unwrap().into_inner().events;
        assert_eq!(ids(&seen), [0, 3]);
        // The withheld ICE record is not shown to the actor; the event says it was redacted.
        assert!(seen[1].resources.is_empty() && seen[1].redacted);
        assert!(!seen[0].redacted);

        let mut fbi = mesh.agency("FBI", "ROLE_AGENCY_ADMINISTRATOR").await;
        let seen = fbi.list_events(list(reads_only())).await.unwrap().into_inner().events;
        assert_eq!(ids(&seen), [0, 1]);
        // The contributor view: who else looked at FBI data.
        let contributor =
            EventFilter { resource_owner: "agencies/FBI".into(), exclude_own_actions: true, ..reads_only() };
        let seen = fbi.list_events(list(contributor)).await.unwrap().into_inner().events;
        assert_eq!(ids(&seen), [0]);
        assert_eq!(seen[0].actor_agency, "agencies/DEA");
        assert_eq!(seen[0].resources[0].agreement, "agreements/a1");

        let mut ice = mesh.agency("ICE", "ROLE_AGENCY_ADMINISTRATOR").await;
        let seen = ice.list_events(list(reads_only())).await.unwrap().into_inner().events;
        assert_eq!(ids(&seen), [2, 3]);
        assert_eq!(seen[1].resources[0].resource, "records/r4", "ICE sees that DEA's search hit its record");

        // Another agency's event answers exactly like a missing one.
        let hidden =
            ice.get_event(GetEventRequest { name: format!("events/{}", event_id(1)), view: 0 }).await;
        assert_eq!(hidden.unwrap_err().code(), Code::NotFound);
        let missing =
            ice.get_event(GetEventRequest { name: format!("events/{}", event_id(99)), view: 0 }).await;
        assert_eq!(missing.unwrap_err().code(), Code::NotFound);

        // Members (no administrator role) do not read the log.
        let mut member = mesh.agency("DEA", "ROLE_AGENCY_MEMBER").await;
        let refused = member.list_events(list(EventFilter::default())).await.unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied);

        // The auditor sees everything, including one audit-log-access event per read above
        // (DEA, FBI twice, ICE list and two gets), each attributed to the reader, and this very
        // list, which is recorded before its results are read.
        let mut auditor = mesh.auditor().await;
        let accesses = EventFilter { actions: vec![Action::AuditLogAccess as i32], ..Default::default() };
        let seen = auditor.list_events(list(accesses)).await.unwrap().into_inner().events;
        let readers: Vec<&str> = seen.iter().map(|e| e.actor_agency.as_str()).collect();
        assert_eq!(
            readers,
            [
                "agencies/DEA",
                "agencies/FBI",
                "agencies/FBI",
                "agencies/ICE",
                "agencies/ICE",
                "agencies/ICE",
                "agencies/INTERLOCK"
            ]
        );
        assert_eq!(seen[0].actor_user, "admin@DEA.example");
        assert_eq!(seen[0].service, InterlockService::Audit as i32);

        // Pages, newest first, and an export of the same events.
        let page = ListEventsRequest {
            filter: Some(reads_only()),
            page_size: 3,
            order_by: "leaf_index desc".into(),
            ..Default::default()
        };
        let first = auditor.list_events(page.clone()).await.unwrap().into_inner();
        assert_eq!(ids(&first.events), [3, 2, 1]);
        let second = auditor
            .list_events(ListEventsRequest { page_token: first.next_page_token.clone(), ..page.clone() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((ids(&second.events), second.next_page_token.as_str()), (vec![0], ""));
        let mismatched = auditor
            .list_events(ListEventsRequest { page_token: first.next_page_token, ..Default::default() })
            .await
            .unwrap_err();
        assert_eq!(mismatched.code(), Code::InvalidArgument, "a page token belongs to its own filter");

        let mut stream = fbi
            .export_events(ExportEventsRequest { filter: Some(reads_only()), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        let mut exported = Vec::new();
        while let Some(message) = stream.next().await {
            exported.extend(message.unwrap().events);
        }
        assert_eq!(ids(&exported), [0, 1]);
    }
}

#[tokio::test]
async fn proofs_from_the_service_verify_independently() {
    for mesh in each_mesh().await {
        let mut writer = mesh.mesh_service().await;
        writer
            .append_events(AppendEventsRequest {
                events: (0..5).map(|n| read(n, "DEA", "FBI", false)).collect(),
            })
            .await
            .unwrap();
        let early = mesh.checkpoint_covering(5).await;
        let early_root = verified_root(&early);
        for batch in 1..4u32 {
            let events = (0..7).map(|n| read(batch * 100 + n, "FBI", "DEA", false)).collect();
            writer.append_events(AppendEventsRequest { events }).await.unwrap();
        }
        let latest = mesh.checkpoint_covering(26).await;
        let latest_root = verified_root(&latest);

        let mut auditor = mesh.auditor().await;
        for n in [0, 3, 104, 302, 306] {
            // The event's own bytes give its leaf hash; the proof leads to the signed root.
            let event = auditor
                .get_event(GetEventRequest {
                    name: format!("events/{}", event_id(n)),
                    view: EventView::WithLeafData as i32,
                })
                .await
                .unwrap()
                .into_inner()
                .event
                .unwrap();
            let leaf = leaf_hash(&event.leaf_data);
            assert_eq!(leaf.to_vec(), event.leaf_hash);
            let proof = auditor
                .get_inclusion_proof(GetInclusionProofRequest {
                    leaf: Some(get_inclusion_proof_request::Leaf::Event(event.name.clone())),
                    tree_size: latest.tree_size,
                })
                .await
                .unwrap()
                .into_inner();
            let hashes: Vec<Hash> = proof.hashes.iter().map(|h| hash(h)).collect();
            verify_inclusion(event.leaf_index, latest.tree_size, &leaf, &hashes, &latest_root).unwrap();
            assert!(
                verify_inclusion(event.leaf_index, latest.tree_size, &leaf, &hashes, &early_root).is_err()
            );
        }

        let consistency = auditor
            .get_consistency_proof(GetConsistencyProofRequest {
                first_tree_size: early.tree_size,
                second_tree_size: latest.tree_size,
            })
            .await
            .unwrap()
            .into_inner();
        let hashes: Vec<Hash> = consistency.hashes.iter().map(|h| hash(h)).collect();
        verify_consistency(early.tree_size, latest.tree_size, &hashes, &early_root, &latest_root).unwrap();

        // Anyone can recompute a checkpoint's root from the leaf hashes.
        let leaves = auditor
            .get_leaf_hashes(GetLeafHashesRequest { start_leaf_index: 0, max_count: 10_000 })
            .await
            .unwrap()
            .into_inner();
        let leaves: Vec<Hash> = leaves.leaf_hashes.iter().map(|h| hash(h)).collect();
        assert!(leaves.len() as u64 >= latest.tree_size);
        assert_eq!(root_of(&leaves[..latest.tree_size as usize]), latest_root);
        assert_eq!(root_of(&leaves[..early.tree_size as usize]), early_root);

        // Beyond the latest checkpoint nothing can be proven yet.
        let ahead = auditor
            .get_inclusion_proof(GetInclusionProofRequest {
                leaf: Some(get_inclusion_proof_request::Leaf::LeafIndex(0)),
                tree_size: 1_000_000,
            })
            .await
            .unwrap_err();
        assert_eq!(ahead.get_error_details().error_info().unwrap().reason, "TREE_SIZE_NOT_CHECKPOINTED");
        let checkpoints = auditor
            .list_checkpoints(ListCheckpointsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .checkpoints;
        assert_eq!(checkpoints[0].tree_size, 0, "the empty tree is signed on first start");
        for checkpoint in &checkpoints {
            verified_root(checkpoint);
        }
    }
}

/// Edits, deletions, reorderings and insertions made directly in the database are each caught.
#[tokio::test]
async fn verify_catches_every_kind_of_tampering_with_storage() {
    for mesh in each_mesh().await {
        let mut writer = mesh.mesh_service().await;
        for batch in 0..3u32 {
            let events = (0..6).map(|n| read(batch * 10 + n, "DEA", "FBI", false)).collect();
            writer.append_events(AppendEventsRequest { events }).await.unwrap();
            mesh.checkpoint_covering(u64::from(batch + 1) * 6).await;
        }
        // Nothing else writes while we tamper.
        let AuditMesh { registry, audit, database } = mesh;
        audit.mesh.shutdown().await.unwrap();
        registry.mesh.shutdown().await.unwrap();

        let db = Database::open(database.url(), &interlock_audit::store::MIGRATIONS).await.unwrap();
        let store = interlock_audit::store::on(db.clone());
        let key = pinned_key().public_key();
        let report = interlock_audit::verify::verify(store.as_ref(), ORIGIN, &key).await.unwrap();
        assert!(report.is_intact(), "{:?}", report.problems);
        assert_eq!((report.leaves, report.checkpoints), (18, 4));

        execute(&db, "CREATE TABLE events_backup AS SELECT * FROM events").await;
        let restore = ["DELETE FROM events", "INSERT INTO events SELECT * FROM events_backup"];
        let forged_body = "X'0a2430303030'";
        let cases: &[(&str, &[&str])] = &[
            ("edit a body", &["UPDATE events SET leaf_data = LEAF WHERE leaf_index = 4"]),
            (
                "edit a body and its leaf hash",
                &[
                    "UPDATE events SET leaf_data = LEAF, leaf_hash = (SELECT leaf_hash FROM events WHERE leaf_index = 0) \
                   WHERE leaf_index = 4",
                ],
            ),
            ("delete a leaf", &["DELETE FROM events WHERE leaf_index = 7"]),
            ("delete the newest leaf", &["DELETE FROM events WHERE leaf_index = 17"]),
            (
                "reorder two leaves",
                &[
                    "UPDATE events SET leaf_index = 1000 WHERE leaf_index = 2",
                    "UPDATE events SET leaf_index = 2 WHERE leaf_index = 3",
                    "UPDATE events SET leaf_index = 3 WHERE leaf_index = 1000",
                ],
            ),
            (
                "insert a leaf in the middle",
                &[
                    "UPDATE events SET leaf_index = leaf_index + 1000 WHERE leaf_index >= 9",
                    "UPDATE events SET leaf_index = leaf_index - 999 WHERE leaf_index >= 1000",
                    "INSERT INTO events (leaf_index, event_key, event_id, leaf_hash, client_digest, leaf_data, time_us, \
                     receive_time_us, service, action, outcome, actor_agency, actor_user, trace_id, case_reference) \
                     SELECT 9, event_key, 'forged', leaf_hash, client_digest, leaf_data, time_us, receive_time_us, service, \
                     action, outcome, actor_agency, actor_user, trace_id, case_reference FROM events WHERE leaf_index = 0",
                ],
            ),
            (
                "append a leaf behind the service's back",
                &[
                    "INSERT INTO events (leaf_index, event_key, event_id, leaf_hash, client_digest, leaf_data, time_us, \
                   receive_time_us, service, action, outcome, actor_agency, actor_user, trace_id, case_reference) \
                   SELECT 18, event_key, 'forged', leaf_hash, client_digest, leaf_data, time_us, receive_time_us, service, \
                   action, outcome, actor_agency, actor_user, trace_id, case_reference FROM events WHERE leaf_index = 0",
                ],
            ),
        ];
        for (case, statements) in cases {
            for statement in *statements {
                let statement = statement.replace("LEAF", &blob_literal(&db, forged_body));
                execute(&db, &statement).await;
            }
            let report = interlock_audit::verify::verify(store.as_ref(), ORIGIN, &key).await.unwrap();
            assert!(!report.is_intact(), "{case}: not detected on {}", db.backend());
            for statement in restore {
                execute(&db, statement).await;
            }
            let report = interlock_audit::verify::verify(store.as_ref(), ORIGIN, &key).await.unwrap();
            assert!(report.is_intact(), "{case}: restore failed: {:?}", report.problems);
        }

        // Rewriting a checkpoint (even re-signing it with another key) is caught too.
        let forger = NoteSigner::new(&[1; 32], ORIGIN);
        let note = forger.sign(6, &[0; 32]);
        execute(&db, &format!("UPDATE checkpoints SET signed_note = '{note}' WHERE tree_size = 6")).await;
        let report = interlock_audit::verify::verify(store.as_ref(), ORIGIN, &key).await.unwrap();
        assert!(report.problems.iter().any(|p| p.starts_with("checkpoint 6")), "{:?}", report.problems);
        drop(database);
    }
}

/// A binary literal in the backend's SQL spelling.
fn blob_literal(db: &Database, sqlite_literal: &str) -> String {
    match db {
        Database::Sqlite(_) => sqlite_literal.to_owned(),
        Database::Postgres(_) => {
            let hex = sqlite_literal.trim_start_matches("X'").trim_end_matches('\'');
            format!("'\\x{hex}'::bytea")
        }
    }
}

async fn execute(db: &Database, statement: &str) {
    let statement = sqlx::AssertSqlSafe(statement.to_owned());
    match db {
        Database::Sqlite(file) => sqlx::raw_sql(statement).execute(file.writes()).await.map(drop),
        Database::Postgres(pool) => sqlx::raw_sql(statement).execute(pool).await.map(drop),
    }
    .unwrap_or_else(|e| panic!("{e}"));
}

/// `interlock audit verify` on an embedded mesh's data folder: the default database and the
/// signing key generated there on first start.
#[tokio::test]
async fn the_verify_command_checks_an_embedded_mesh() {
    let server = TestServer::all_in_one().await;
    let data_dir = server.data.path().to_owned();
    let key = std::fs::read_to_string(data_dir.join("audit-signing.key")).unwrap();
    let seed: [u8; 32] = STANDARD.decode(key.trim()).unwrap().try_into().unwrap();
    let TestServer { mesh, data, .. } = server;
    mesh.shutdown().await.unwrap();
    let args = |verifier_key: Option<String>| interlock::audit_cli::VerifyArgs {
        database_url: None,
        data_dir: data.path().to_owned(),
        verifier_key,
        audit_origin: "interlock.local/audit".into(),
    };
    interlock::audit_cli::verify(args(None)).await.unwrap();
    let pinned = NoteSigner::new(&seed, "interlock.local/audit").verifier_key();
    interlock::audit_cli::verify(args(Some(pinned))).await.unwrap();
    let impostor = NoteSigner::new(&[1; 32], "interlock.local/audit").verifier_key();
    assert!(interlock::audit_cli::verify(args(Some(impostor))).await.is_err());
}
