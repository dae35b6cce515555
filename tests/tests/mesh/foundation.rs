//! The foundation over real gRPC: what a newcomer, a Kubernetes probe and `buf curl` see.

use interlock_api::common::v1::Contact;
use interlock_api::deconfliction::v1::GetTargetRequest;
use interlock_api::deconfliction::v1::deconfliction_service_client::DeconflictionServiceClient;
use interlock_api::records::v1::GetRecordRequest;
use interlock_api::records::v1::records_service_client::RecordsServiceClient;
use interlock_api::registry::v1::agency_service_client::AgencyServiceClient;
use interlock_api::registry::v1::{Agency, CreateAgencyRequest, GetAgencyRequest, ListAgenciesRequest};
use interlock_auth::CallerMetadata;
use interlock_storage::testing::TestDatabase;
use interlock_tests::{BOOTSTRAP_ADMIN, TestServer, channel, token};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_types::StatusExt;

const INTERLOCK_SERVICES: &[&str] = &[
    "interlock.registry.v1.AgencyService",
    "interlock.registry.v1.CenterService",
    "interlock.registry.v1.CredentialService",
    "interlock.registry.v1.AgreementService",
    "interlock.registry.v1.GrantService",
    "interlock.registry.v1.AuthenticationService",
    "interlock.records.v1.RecordsService",
    "interlock.records.v1.RecordsAdminService",
    "interlock.deconfliction.v1.DeconflictionService",
    "interlock.deconfliction.v1.RecordSelectorService",
    "interlock.audit.v1.AuditService",
];

#[tokio::test]
async fn serve_reports_every_service_healthy_and_lists_methods_by_reflection() {
    let server = TestServer::all_in_one().await;
    let mut health = HealthClient::new(server.channel().await);
    let mut names = vec!["", "registry", "records", "deconfliction", "audit"];
    names.extend_from_slice(INTERLOCK_SERVICES);
    for name in names {
        let mut status = ServingStatus::Unknown as i32;
        // The health reporter flips to SERVING within a few hundred milliseconds of start-up.
        for _ in 0..50 {
            status =
                health.check(HealthCheckRequest { service: name.into() }).await.unwrap().into_inner().status;
            if status == ServingStatus::Serving as i32 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(status, ServingStatus::Serving as i32, "health of {name:?}");
    }
    let unknown = health.check(HealthCheckRequest { service: "nope".into() }).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    let mut reflection = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses =
        reflection.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let Some(MessageResponse::ListServicesResponse(listed)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected a list of services");
    };
    let listed: Vec<String> = listed.service.into_iter().map(|s| s.name).collect();
    for service in INTERLOCK_SERVICES.iter().chain(&["grpc.health.v1.Health"]) {
        assert!(listed.iter().any(|name| name == service), "{service} missing from {listed:?}");
    }

    // Reflection also serves the method descriptors (what `buf curl --list-methods` reads).
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "interlock.records.v1.RecordsService".into(),
        )),
    };
    let mut responses =
        reflection.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let Some(MessageResponse::FileDescriptorResponse(files)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected file descriptors");
    };
    assert!(!files.file_descriptor_proto.is_empty());
    server.mesh.shutdown().await.unwrap();
}

#[tokio::test]
async fn calls_need_a_valid_token() {
    let server = TestServer::all_in_one().await;
    let request = || GetRecordRequest { name: "records/42".into() };

    let mut anonymous = RecordsServiceClient::new(server.channel().await);
    let status = anonymous.get_record(request()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.get_error_details().error_info().unwrap().reason, "MISSING_CREDENTIALS");

    let forged = InterceptedService::new(server.channel().await, CallerMetadata::bearer("e30.e30.AAAA"));
    let status = RecordsServiceClient::new(forged).get_record(request()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    // With a real token the call reaches the service, which answers for the target itself.
    let mut targets = DeconflictionServiceClient::new(server.admin_channel().await);
    let status = targets.get_target(GetTargetRequest { name: "targets/42".into() }).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.get_error_details().error_info().unwrap().domain, "interlock");

    let wrong = token(&server.url(), BOOTSTRAP_ADMIN, "ilk_wrong").await.unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    assert_eq!(wrong.get_error_details().error_info().unwrap().reason, "INVALID_CREDENTIALS");
    server.mesh.shutdown().await.unwrap();
}

fn agency(code: &str) -> Agency {
    Agency {
        code: code.into(),
        display_name: format!("{code} (test)"),
        duty_desk: Some(Contact {
            name: format!("{code} duty desk"),
            phone: "+12025550100".into(),
            email: "desk@example.gov".into(),
            around_the_clock: true,
        }),
        ..Agency::default()
    }
}

#[tokio::test]
async fn bad_input_is_a_field_violation_and_changes_nothing() {
    let server = TestServer::all_in_one().await;
    let mut agencies = AgencyServiceClient::new(server.admin_channel().await);
    let bad = Agency { code: "dea".into(), duty_desk: None, ..agency("DEA") };
    let status = agencies
        .create_agency(CreateAgencyRequest { agency: Some(bad), request_id: String::new() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let details = status.get_error_details();
    let fields: Vec<_> =
        details.bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    assert_eq!(fields, ["agency.code", "agency.duty_desk"]);
    let listed = agencies.list_agencies(ListAgenciesRequest::default()).await.unwrap().into_inner();
    assert!(listed.agencies.is_empty(), "a refused create must store nothing");

    let created = agencies
        .create_agency(CreateAgencyRequest { agency: Some(agency("DEA")), request_id: "req-1".into() })
        .await
        .unwrap()
        .into_inner()
        .agency
        .unwrap();
    assert_eq!(created.name, "agencies/DEA");
    let duplicate = agencies
        .create_agency(CreateAgencyRequest { agency: Some(agency("DEA")), request_id: "req-2".into() })
        .await
        .unwrap_err();
    assert_eq!(duplicate.code(), Code::AlreadyExists);
    let fetched =
        agencies.get_agency(GetAgencyRequest { name: "agencies/DEA".into() }).await.unwrap().into_inner();
    assert_eq!(fetched.agency.unwrap(), created);
    let missing = agencies.get_agency(GetAgencyRequest { name: "agencies/FBI".into() }).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    server.mesh.shutdown().await.unwrap();
}

/// Split mode, as Kubernetes runs it: a registry pod on its own database (SQLite, then
/// PostgreSQL) and a records pod that verifies the registry's tokens locally.
#[tokio::test]
async fn split_services_verify_tokens_issued_by_a_separate_registry() {
    for database in TestDatabase::each_backend().await {
        let mesh_secret = "ilk_test-mesh-secret";
        let registry = TestServer::start(&[
            "--service",
            "registry",
            "--database-url",
            database.url(),
            "--mesh-secret",
            mesh_secret,
        ])
        .await;
        let registry_url = registry.url();
        let records = TestServer::start(&[
            "--service",
            "records",
            "--registry-address",
            &registry_url,
            "--mesh-secret",
            mesh_secret,
        ])
        .await;

        let token = registry.admin_token().await;
        let mut health = HealthClient::new(records.channel().await);
        let mut serving = false;
        for _ in 0..100 {
            let status =
                health.check(HealthCheckRequest { service: "records".into() }).await.unwrap().into_inner();
            if status.status == ServingStatus::Serving as i32 {
                serving = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(serving, "records never became ready against the registry at {registry_url}");
        let registry_not_here =
            health.check(HealthCheckRequest { service: "registry".into() }).await.unwrap_err();
        assert_eq!(registry_not_here.code(), Code::NotFound, "a records pod does not serve the registry");

        let authed = InterceptedService::new(channel(&records.url()).await, CallerMetadata::bearer(token));
        let status = RecordsServiceClient::new(authed)
            .get_record(GetRecordRequest { name: "records/1".into() })
            .await
            .unwrap_err();
        // Accepted (not UNAUTHENTICATED); the records service then wants an agency member.
        assert_eq!(status.code(), Code::PermissionDenied, "the token was accepted: {}", status.message());

        let mesh_token =
            interlock_tests::token(&registry_url, "agencies/INTERLOCK/credentials/mesh", mesh_secret).await;
        assert!(mesh_token.is_ok(), "the configured mesh credential works");
        records.mesh.shutdown().await.unwrap();
        registry.mesh.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn shutdown_stops_accepting_connections() {
    let server = TestServer::all_in_one().await;
    let url = server.url();
    server.mesh.shutdown().await.unwrap();
    let refused = tonic::transport::Endpoint::from_shared(url).unwrap().connect().await;
    assert!(refused.is_err(), "the port still accepts connections after shutdown");
}

/// Graceful shutdown on each backend: a call in flight when shutdown begins completes, and a
/// watch (which never ends by itself) ends with UNAVAILABLE so the draining can finish. A records
/// pod on the backend's database holds an ingest stream open; the registry pod it talks to holds
/// a grant watch. Both pods are shut down together.
#[tokio::test]
async fn shutdown_finishes_calls_in_flight_and_ends_watches() {
    use interlock_api::records::v1::records_service_client::RecordsServiceClient;
    use interlock_api::records::v1::{
        IngestBatch, IngestRecordsRequest, IngestStart, Record, ingest_records_request,
        ingest_records_response,
    };
    use interlock_api::registry::v1::Role;
    use interlock_api::registry::v1::WatchGrantsRequest;
    use interlock_api::registry::v1::grant_service_client::GrantServiceClient;

    let batch = |sequence: i64| IngestRecordsRequest {
        message: Some(ingest_records_request::Message::Batch(IngestBatch {
            batch_sequence: sequence,
            records: (0..3)
                .map(|n| Record {
                    record_number: format!("ICE-DRAIN-{sequence}-{n}"),
                    category: interlock_api::common::v1::RecordCategory::InvestigationReport as i32,
                    sensitivity: interlock_api::common::v1::SensitivityLevel::Unrestricted as i32,
                    title: "Seizure at the Laredo crossing".into(),
                    ..Record::default()
                })
                .collect(),
        })),
    };
    let acknowledged = |message: Option<ingest_records_response::Message>| match message {
        Some(ingest_records_response::Message::Ack(ack)) => (ack.batch_sequence, ack.created_count),
        other => panic!("expected an acknowledgement, got {other:?}"),
    };

    for database in TestDatabase::each_backend().await {
        let mesh_secret = "ilk_drain-test-mesh-secret";
        let registry = TestServer::start(&["--service", "registry", "--mesh-secret", mesh_secret]).await;
        let records = TestServer::start(&[
            "--service",
            "records",
            "--registry-address",
            &registry.url(),
            "--database-url",
            database.url(),
            "--mesh-secret",
            mesh_secret,
        ])
        .await;
        let (admin, _) =
            interlock_tests::register(&registry.url(), &registry.admin_channel().await, "ICE", "ICE").await;
        let (credential, secret) =
            interlock_tests::issue_credential(&admin, "ICE", "case-system", &[Role::AgencyMember]).await;
        let member = interlock_tests::as_credential(
            &registry.url(),
            &records.url(),
            &credential,
            &secret,
            "officer-1",
        )
        .await;

        // An ingest stream with one batch committed, still open.
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        let mut ingest = RecordsServiceClient::new(member)
            .ingest_records(tokio_stream::wrappers::ReceiverStream::new(receiver))
            .await
            .unwrap()
            .into_inner();
        let start = ingest_records_request::Message::Start(IngestStart { ingest_id: "drain".into() });
        sender.send(IngestRecordsRequest { message: Some(start) }).await.unwrap();
        let started = ingest.message().await.unwrap().and_then(|m| m.message);
        assert!(matches!(started, Some(ingest_records_response::Message::Started(_))), "{started:?}");
        sender.send(batch(1)).await.unwrap();
        assert_eq!(acknowledged(ingest.message().await.unwrap().and_then(|m| m.message)), (1, 3));

        // A grant watch at the registry, live (its snapshot received).
        let mut watch = GrantServiceClient::new(registry.admin_channel().await)
            .watch_grants(WatchGrantsRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(watch.message().await.unwrap().expect("the snapshot").snapshot);

        let (records_url, registry_url) = (records.url(), registry.url());
        let TestServer { mesh: records_mesh, data: _records_data, .. } = records;
        let TestServer { mesh: registry_mesh, data: _registry_data, .. } = registry;
        let records_down = tokio::spawn(records_mesh.shutdown());
        let registry_down = tokio::spawn(registry_mesh.shutdown());
        // Shutdown has begun once neither port takes new connections.
        for url in [&records_url, &registry_url] {
            let mut refused = false;
            for _ in 0..200 {
                let endpoint = tonic::transport::Endpoint::from_shared(url.clone()).unwrap();
                if endpoint.connect().await.is_err() {
                    refused = true;
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
            assert!(refused, "{url} still accepts connections during shutdown");
        }

        // The watch ends now, not at the end of the grace period (the guard only keeps a watch
        // that never ends from hanging the test): clients reconnect to another replica.
        let ended = tokio::time::timeout(std::time::Duration::from_secs(60), async {
            loop {
                match watch.message().await {
                    Ok(Some(_heartbeat_or_change)) => continue,
                    Ok(None) => return None,
                    Err(status) => return Some(status),
                }
            }
        })
        .await
        .expect("the grant watch did not end when shutdown began");
        let ended = ended.expect("the watch ends with a status telling the client to reconnect");
        assert_eq!(ended.code(), Code::Unavailable, "{}", ended.message());

        // The ingest begun before the shutdown goes on: a second batch is committed and the
        // stream ends OK once the client half-closes. Had the watch been cut with the grace
        // period, this stream would have been cut with it.
        sender.send(batch(2)).await.unwrap();
        drop(sender);
        assert_eq!(acknowledged(ingest.message().await.unwrap().and_then(|m| m.message)), (2, 3));
        assert!(ingest.message().await.unwrap().is_none(), "the ingest stream ends with OK");

        records_down.await.unwrap().unwrap();
        registry_down.await.unwrap().unwrap();
    }
}

/// A call still running when the grace period is over is ended with UNAVAILABLE (the client
/// retries elsewhere), and shutdown completes rather than waiting for it.
#[tokio::test]
async fn shutdown_ends_calls_still_running_after_the_grace_period() {
    use interlock_api::records::v1::records_service_client::RecordsServiceClient;
    use interlock_api::records::v1::{IngestRecordsRequest, IngestStart, ingest_records_request};
    use interlock_api::registry::v1::Role;

    let server = TestServer::start(&["--shutdown-grace-seconds", "0"]).await;
    let (admin, _) =
        interlock_tests::register(&server.url(), &server.admin_channel().await, "ICE", "ICE").await;
    let (credential, secret) =
        interlock_tests::issue_credential(&admin, "ICE", "case-system", &[Role::AgencyMember]).await;
    let member =
        interlock_tests::as_credential(&server.url(), &server.url(), &credential, &secret, "officer-1").await;
    // An ingest stream the client keeps open and idle.
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    let mut ingest = RecordsServiceClient::new(member)
        .ingest_records(tokio_stream::wrappers::ReceiverStream::new(receiver))
        .await
        .unwrap()
        .into_inner();
    let start = ingest_records_request::Message::Start(IngestStart { ingest_id: "idle".into() });
    sender.send(IngestRecordsRequest { message: Some(start) }).await.unwrap();
    assert!(ingest.message().await.unwrap().is_some(), "started");

    let TestServer { mesh, data: _data, .. } = server;
    // The guard only keeps a shutdown or a stream that never ends from hanging the test.
    let ended = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        mesh.shutdown().await.unwrap();
        ingest.message().await
    })
    .await
    .expect("the idle stream outlived the grace period")
    .expect_err("the idle stream is ended");
    assert_eq!(ended.code(), Code::Unavailable, "{}", ended.message());
    drop(sender);
}
