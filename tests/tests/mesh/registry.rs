//! The registry over real gRPC, on SQLite and PostgreSQL: the article's agencies, centers and
//! agreements; revocation reaching a watcher within one second; bad input refused with nothing
//! changed; suspended agencies and revoked credentials locked out; tokens voided by taking a role
//! from their credential.

use std::time::{Duration, Instant};

use interlock_api::common::v1::{AccessLevel, Purpose, RecordCategory, SensitivityLevel};
use interlock_api::records::v1::GetRecordRequest;
use interlock_api::records::v1::records_service_client::RecordsServiceClient;
use interlock_api::registry::v1::agency_service_client::AgencyServiceClient;
use interlock_api::registry::v1::agreement_service_client::AgreementServiceClient;
use interlock_api::registry::v1::authentication_service_client::AuthenticationServiceClient;
use interlock_api::registry::v1::center_service_client::CenterServiceClient;
use interlock_api::registry::v1::credential_service_client::CredentialServiceClient;
use interlock_api::registry::v1::grant_service_client::GrantServiceClient;
use interlock_api::registry::v1::*;
use interlock_auth::CallerMetadata;
use interlock_storage::testing::TestDatabase;
use interlock_tests::{
    AuthedChannel, TestServer, agency, as_credential, channel, status_of, token, wait_for,
};
use prost_types::FieldMask;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic_types::StatusExt;

const MESH_SECRET: &str = "ilk_registry-test-mesh";

/// A registry (on the given database) plus a records pod in split mode, for lock-out checks on a
/// second service.
struct Mesh {
    registry: TestServer,
    records: TestServer,
}

impl Mesh {
    async fn start(database: &TestDatabase) -> Self {
        let registry = TestServer::start(&[
            "--service",
            "registry",
            "--database-url",
            database.url(),
            "--mesh-secret",
            MESH_SECRET,
        ])
        .await;
        let records = TestServer::start(&[
            "--service",
            "records",
            "--registry-address",
            &registry.url(),
            "--mesh-secret",
            MESH_SECRET,
        ])
        .await;
        Self { registry, records }
    }

    async fn admin(&self) -> AuthedChannel {
        self.registry.admin_channel().await
    }
}

/// Registers an agency with its first administrator credential and an administrator user, and
/// returns a channel acting as that administrator.
async fn register(mesh: &Mesh, code: &str, name: &str) -> (AuthedChannel, String) {
    interlock_tests::register(&mesh.registry.url(), &mesh.admin().await, code, name).await
}

fn scope(access: AccessLevel) -> AgreementScope {
    AgreementScope {
        categories: vec![
            RecordCategory::InvestigationReport as i32,
            RecordCategory::WiretapIntercept as i32,
            RecordCategory::FinancialInvestigation as i32,
        ],
        sensitivity_ceiling: SensitivityLevel::LawEnforcementSensitive as i32,
        purposes: vec![Purpose::Investigation as i32, Purpose::Deconfliction as i32],
        access_level: access as i32,
        redacted_fields: if access == AccessLevel::Redacted {
            vec!["persons[role=ENTITY_ROLE_INFORMANT]".into()]
        } else {
            vec![]
        },
        ..AgreementScope::default()
    }
}

fn bilateral(a: &str, b: &str) -> Agreement {
    Agreement {
        display_name: format!("{a}–{b} memorandum of understanding"),
        parties: vec![
            AgreementParty { party: format!("agencies/{a}"), role: PartyRole::Both as i32 },
            AgreementParty { party: format!("agencies/{b}"), role: PartyRole::Both as i32 },
        ],
        scope: Some(scope(AccessLevel::Redacted)),
        ..Agreement::default()
    }
}

async fn create(channel: &AuthedChannel, agreement: Agreement) -> Result<Agreement, tonic::Status> {
    Ok(AgreementServiceClient::new(channel.clone())
        .create_agreement(CreateAgreementRequest { agreement: Some(agreement), request_id: String::new() })
        .await?
        .into_inner()
        .agreement
        .unwrap())
}

async fn propose(channel: &AuthedChannel, name: &str) -> Agreement {
    AgreementServiceClient::new(channel.clone())
        .propose_agreement(ProposeAgreementRequest { name: name.into(), etag: String::new() })
        .await
        .expect("propose")
        .into_inner()
        .agreement
        .unwrap()
}

async fn sign(channel: &AuthedChannel, name: &str) -> Result<Agreement, tonic::Status> {
    Ok(AgreementServiceClient::new(channel.clone())
        .sign_agreement(SignAgreementRequest { name: name.into(), version: 0, etag: String::new() })
        .await?
        .into_inner()
        .agreement
        .unwrap())
}

async fn grants_of(channel: &AuthedChannel, consumer: &str) -> Vec<Grant> {
    GrantServiceClient::new(channel.clone())
        .list_grants(ListGrantsRequest {
            consumer: format!("agencies/{consumer}"),
            ..ListGrantsRequest::default()
        })
        .await
        .expect("list grants")
        .into_inner()
        .grants
}

fn reason(status: &tonic::Status) -> String {
    status.get_error_details().error_info().map(|info| info.reason.clone()).unwrap_or_default()
}

#[tokio::test]
async fn the_articles_agencies_centers_and_agreements() {
    for database in TestDatabase::each_backend().await {
        let mesh = Mesh::start(&database).await;
        let mut agencies = Vec::new();
        for (code, name) in [
            ("ICE", "U.S. Immigration and Customs Enforcement"),
            ("DOJ-OCDETF", "Organized Crime Drug Enforcement Task Forces"),
            ("FBI", "Federal Bureau of Investigation"),
            ("DEA", "Drug Enforcement Administration"),
            ("ATF", "Bureau of Alcohol, Tobacco, Firearms and Explosives"),
        ] {
            agencies.push(register(&mesh, code, name).await.0);
        }
        let [ice, ocdetf, fbi, dea, atf]: [AuthedChannel; 5] =
            agencies.try_into().unwrap_or_else(|_| panic!("five agencies"));

        // The two centers and their members (IOC-2: nine agencies plus federal prosecutors).
        let mut centers = CenterServiceClient::new(mesh.admin().await);
        for (id, name) in [
            ("ocdetf-fusion-center", "OCDETF Fusion Center"),
            ("ioc-2", "International Organized Crime Intelligence and Operations Center"),
        ] {
            centers
                .create_center(CreateCenterRequest {
                    center: Some(Center {
                        center_id: id.into(),
                        display_name: name.into(),
                        ..Center::default()
                    }),
                    request_id: String::new(),
                })
                .await
                .unwrap();
        }
        for code in ["FBI", "DEA", "ATF", "DOJ-OCDETF", "ICE"] {
            centers
                .add_center_member(AddCenterMemberRequest {
                    center: "centers/ocdetf-fusion-center".into(),
                    agency: format!("agencies/{code}"),
                    ..AddCenterMemberRequest::default()
                })
                .await
                .unwrap();
        }
        for code in ["IRS-CI", "USMS", "USSS", "DSS"] {
            register(&mesh, code, &format!("{code} (IOC-2 member)")).await;
        }
        for code in ["FBI", "DEA", "ATF", "ICE", "IRS-CI", "USMS", "USSS", "DSS", "DOJ-OCDETF"] {
            centers
                .add_center_member(AddCenterMemberRequest {
                    center: "centers/ioc-2".into(),
                    agency: format!("agencies/{code}"),
                    ..AddCenterMemberRequest::default()
                })
                .await
                .unwrap();
        }
        let ioc2 =
            centers.get_center(GetCenterRequest { name: "centers/ioc-2".into() }).await.unwrap().into_inner();
        assert_eq!(ioc2.center.unwrap().current_member_count, 9);

        // DEA–ICE and ATF–ICE, bilateral: proposed, signed by each party, active.
        for (creator, other) in [(&dea, &ice), (&atf, &ice)] {
            let creator_code = if std::ptr::eq(creator, &dea) { "DEA" } else { "ATF" };
            let draft = create(creator, bilateral(creator_code, "ICE")).await.unwrap();
            assert_eq!(draft.state, AgreementState::Draft as i32);
            assert!(grants_of(&mesh.admin().await, "ICE").await.is_empty() || creator_code == "ATF");
            propose(creator, &draft.name).await;
            let half = sign(creator, &draft.name).await.unwrap();
            assert_eq!(half.state, AgreementState::Proposed as i32, "one signature does not activate");
            assert_eq!(half.pending_signers, ["agencies/ICE"]);
            let active = sign(other, &draft.name).await.unwrap();
            assert_eq!(active.state, AgreementState::Active as i32);
            assert_eq!(active.signatures.len(), 2);
        }

        // The Fusion Center agreement: every member signs.
        let fusion = Agreement {
            display_name: "OCDETF Fusion Center information sharing".into(),
            parties: vec![AgreementParty {
                party: "centers/ocdetf-fusion-center".into(),
                role: PartyRole::Both as i32,
            }],
            scope: Some(scope(AccessLevel::Pointer)),
            ..Agreement::default()
        };
        let fusion = create(&ocdetf, fusion).await.unwrap();
        propose(&ocdetf, &fusion.name).await;
        // What-if before anyone signs: pointer access opens for each of the 5 members to the 4
        // others' 3 categories; nothing is granted yet.
        let preview = AgreementServiceClient::new(ice.clone())
            .preview_agreement(PreviewAgreementRequest {
                name: fusion.name.clone(),
                include_record_counts: false,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(preview.changes.len(), 5 * 4 * 3);
        assert!(
            preview.changes.iter().all(|c| c.kind == AccessChangeKind::Opened as i32
                && c.access_level == AccessLevel::Pointer as i32)
        );
        for member in [&fbi, &dea, &atf, &ocdetf] {
            assert_eq!(sign(member, &fusion.name).await.unwrap().state, AgreementState::Proposed as i32);
        }
        assert_eq!(sign(&ice, &fusion.name).await.unwrap().state, AgreementState::Active as i32);

        // ICE now holds grants from DEA and ATF (redacted) and from every Fusion Center member (pointer).
        let ice_grants = grants_of(&mesh.admin().await, "ICE").await;
        let from = |provider: &str| {
            ice_grants.iter().filter(|g| g.provider == format!("agencies/{provider}")).count()
        };
        assert_eq!((from("DEA"), from("ATF"), from("FBI"), from("DOJ-OCDETF")), (2, 2, 1, 1));
        assert!(ice_grants.iter().any(|g| g.access_level == AccessLevel::Redacted as i32
            && g.redacted_fields == ["persons[role=ENTITY_ROLE_INFORMANT]"]));
        // FBI has no bilateral agreement with ICE: only the center's pointer grant.
        let fbi_grants = grants_of(&fbi, "FBI").await;
        assert!(fbi_grants.iter().all(|g| g.access_level == AccessLevel::Pointer as i32));

        // Every party sees its agreements with who signed when; a stranger sees nothing.
        let listed = AgreementServiceClient::new(ice.clone())
            .list_agreements(ListAgreementsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .agreements;
        assert_eq!(listed.len(), 3);
        let fbi_view = AgreementServiceClient::new(fbi.clone())
            .list_agreements(ListAgreementsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .agreements;
        assert_eq!(fbi_view.len(), 1, "FBI is party to the Fusion Center agreement only");
        let dea_ice = listed.iter().find(|a| a.display_name.starts_with("DEA")).unwrap();
        let hidden = AgreementServiceClient::new(fbi.clone())
            .get_agreement(GetAgreementRequest { name: dea_ice.name.clone() })
            .await
            .unwrap_err();
        assert_eq!(hidden.code(), Code::NotFound, "absence of access reveals nothing");
    }
}

#[tokio::test]
async fn a_revocation_reaches_a_grant_watcher_within_one_second() {
    for database in TestDatabase::each_backend().await {
        let mesh = Mesh::start(&database).await;
        let (dea, _) = register(&mesh, "DEA", "Drug Enforcement Administration").await;
        let (ice, _) = register(&mesh, "ICE", "Immigration and Customs Enforcement").await;
        let agreement = create(&dea, bilateral("DEA", "ICE")).await.unwrap();
        propose(&dea, &agreement.name).await;
        sign(&dea, &agreement.name).await.unwrap();
        sign(&ice, &agreement.name).await.unwrap();

        let mesh_token =
            token(&mesh.registry.url(), "agencies/INTERLOCK/credentials/mesh", MESH_SECRET).await.unwrap();
        let watcher =
            InterceptedService::new(channel(&mesh.registry.url()).await, CallerMetadata::bearer(mesh_token));
        let mut stream = GrantServiceClient::new(watcher)
            .watch_grants(WatchGrantsRequest::default())
            .await
            .unwrap()
            .into_inner();
        let snapshot = stream.message().await.unwrap().unwrap();
        assert!(snapshot.snapshot);
        let ice_set =
            snapshot.consumers.iter().find(|c| c.consumer == "agencies/ICE").expect("ICE holds grants");
        assert_eq!(ice_set.grants.len(), 1);

        let revoked_at = Instant::now();
        AgreementServiceClient::new(dea.clone())
            .revoke_agreement(RevokeAgreementRequest {
                name: agreement.name.clone(),
                reason: "test".into(),
                etag: String::new(),
            })
            .await
            .unwrap();
        loop {
            let message = tokio::time::timeout(Duration::from_secs(2), stream.message())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if let Some(ice_set) = message.consumers.iter().find(|c| c.consumer == "agencies/ICE") {
                assert!(ice_set.grants.is_empty(), "the revoked agreement grants nothing");
                break;
            }
        }
        assert!(revoked_at.elapsed() < Duration::from_secs(1), "took {:?}", revoked_at.elapsed());

        // A revoked agreement cannot be amended.
        let mut amended = bilateral("DEA", "ICE");
        amended.name = agreement.name.clone();
        let status = AgreementServiceClient::new(dea.clone())
            .amend_agreement(AmendAgreementRequest {
                agreement: Some(amended),
                update_mask: Some(FieldMask { paths: vec!["display_name".into()] }),
                ..AmendAgreementRequest::default()
            })
            .await
            .unwrap_err();
        assert_eq!(
            (status.code(), reason(&status).as_str()),
            (Code::FailedPrecondition, "AGREEMENT_REVOKED")
        );
    }
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    for database in TestDatabase::each_backend().await {
        let mesh = Mesh::start(&database).await;
        let (dea, _) = register(&mesh, "DEA", "Drug Enforcement Administration").await;
        let (ice, _) = register(&mesh, "ICE", "Immigration and Customs Enforcement").await;
        let (fbi, _) = register(&mesh, "FBI", "Federal Bureau of Investigation").await;
        let count = || async {
            AgreementServiceClient::new(mesh.admin().await)
                .list_agreements(ListAgreementsRequest::default())
                .await
                .unwrap()
                .into_inner()
                .agreements
                .len()
        };

        // Duplicate agency code.
        let duplicate = AgencyServiceClient::new(mesh.admin().await)
            .create_agency(CreateAgencyRequest {
                agency: Some(agency("DEA", "again")),
                request_id: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(duplicate.code(), Code::AlreadyExists);

        // Unknown agency, self-agreement, end before start, empty scope.
        let unknown = create(&dea, bilateral("DEA", "NSA")).await.unwrap_err();
        assert_eq!((unknown.code(), reason(&unknown).as_str()), (Code::NotFound, "AGENCY_NOT_FOUND"));
        let selfish = create(&dea, bilateral("DEA", "DEA")).await.unwrap_err();
        assert_eq!((selfish.code(), reason(&selfish).as_str()), (Code::InvalidArgument, "SELF_AGREEMENT"));
        let mut backwards = bilateral("DEA", "ICE");
        backwards.start_time = Some(prost_types::Timestamp { seconds: 4_000_000_000, nanos: 0 });
        backwards.end_time = Some(prost_types::Timestamp { seconds: 3_900_000_000, nanos: 0 });
        let status = create(&dea, backwards).await.unwrap_err();
        assert_eq!((status.code(), reason(&status).as_str()), (Code::InvalidArgument, "END_BEFORE_START"));
        let fields: Vec<String> = status
            .get_error_details()
            .bad_request()
            .unwrap()
            .field_violations
            .iter()
            .map(|v| v.field.clone())
            .collect();
        assert_eq!(fields, ["agreement.end_time"]);
        let mut empty = bilateral("DEA", "ICE");
        empty.scope = Some(AgreementScope::default());
        let status = create(&dea, empty).await.unwrap_err();
        assert_eq!((status.code(), reason(&status).as_str()), (Code::InvalidArgument, "EMPTY_SCOPE"));
        // A party that is not the caller's agency cannot be bound by it.
        let status = create(&fbi, bilateral("DEA", "ICE")).await.unwrap_err();
        assert_eq!((status.code(), reason(&status).as_str()), (Code::PermissionDenied, "NOT_A_PARTY"));
        // A center administrator cannot create another agency's access either.
        let status = create(&mesh.admin().await, bilateral("DEA", "ICE")).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied);
        assert_eq!(count().await, 0, "nothing was created");

        // Signing by a non-party, signing twice.
        let agreement = create(&dea, bilateral("DEA", "ICE")).await.unwrap();
        propose(&dea, &agreement.name).await;
        let stranger = sign(&fbi, &agreement.name).await.unwrap_err();
        assert_eq!(stranger.code(), Code::NotFound, "FBI cannot even see the DEA–ICE agreement");
        let center_admin = sign(&mesh.admin().await, &agreement.name).await.unwrap_err();
        assert_eq!(
            (center_admin.code(), reason(&center_admin).as_str()),
            (Code::PermissionDenied, "NOT_A_PARTY")
        );
        sign(&dea, &agreement.name).await.unwrap();
        let twice = sign(&dea, &agreement.name).await.unwrap_err();
        assert_eq!((twice.code(), reason(&twice).as_str()), (Code::AlreadyExists, "ALREADY_SIGNED"));
        let stored = AgreementServiceClient::new(ice.clone())
            .get_agreement(GetAgreementRequest { name: agreement.name.clone() })
            .await
            .unwrap()
            .into_inner()
            .agreement
            .unwrap();
        assert_eq!((stored.state, stored.signatures.len()), (AgreementState::Proposed as i32, 1));

        // A stale etag changes nothing.
        let stale = AgreementServiceClient::new(ice.clone())
            .suspend_agreement(SuspendAgreementRequest {
                name: agreement.name.clone(),
                reason: String::new(),
                etag: "\"1\"".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(stale.code(), Code::Aborted);
    }
}

#[tokio::test]
async fn suspended_agencies_and_revoked_credentials_are_locked_out() {
    for database in TestDatabase::each_backend().await {
        let mesh = Mesh::start(&database).await;
        let (dea, _) = register(&mesh, "DEA", "Drug Enforcement Administration").await;
        // A member credential the DEA backend uses for data calls.
        let issued = CredentialServiceClient::new(dea.clone())
            .create_credential(CreateCredentialRequest {
                parent: "agencies/DEA".into(),
                credential: Some(Credential {
                    display_name: "DEA case system".into(),
                    roles: vec![Role::AgencyMember as i32],
                    ..Credential::default()
                }),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        let member = issued.credential.unwrap();
        let member_token = token(&mesh.registry.url(), &member.name, &issued.secret).await.unwrap();
        let records = || async {
            let channel = InterceptedService::new(
                channel(&mesh.records.url()).await,
                CallerMetadata::bearer(member_token.clone()),
            );
            RecordsServiceClient::new(channel)
                .get_record(GetRecordRequest { name: "records/1".into() })
                .await
                .unwrap_err()
        };
        // The token is accepted; the records service then asks for the officer's name.
        assert_eq!(records().await.code(), Code::InvalidArgument, "the token works on the records service");

        // Suspension: PERMISSION_DENIED on another service within seconds, and no new tokens.
        AgencyServiceClient::new(mesh.admin().await)
            .suspend_agency(SuspendAgencyRequest {
                name: "agencies/DEA".into(),
                reason: "audit".into(),
                etag: String::new(),
            })
            .await
            .unwrap();
        let locked = wait_for(&records, |status| status.code() == Code::PermissionDenied).await;
        assert_eq!(reason(&locked), "AGENCY_SUSPENDED");
        let refused = token(&mesh.registry.url(), &member.name, &issued.secret).await.unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied);
        AgencyServiceClient::new(mesh.admin().await)
            .reactivate_agency(ReactivateAgencyRequest {
                name: "agencies/DEA".into(),
                ..ReactivateAgencyRequest::default()
            })
            .await
            .unwrap();
        wait_for(&records, |status| status.code() == Code::InvalidArgument).await;
        // The registry's own replica of the revocation state catches up as well.
        let registry_call = || async {
            CredentialServiceClient::new(dea.clone())
                .get_credential(GetCredentialRequest { name: member.name.clone() })
                .await
                .err()
                .unwrap_or_else(|| tonic::Status::ok("accepted"))
        };
        wait_for(registry_call, |status| status.code() == Code::Ok).await;

        // Revocation: the outstanding token stops working everywhere.
        CredentialServiceClient::new(dea.clone())
            .revoke_credential(RevokeCredentialRequest {
                name: member.name.clone(),
                reason: "laptop lost".into(),
                etag: String::new(),
            })
            .await
            .unwrap();
        let revoked = wait_for(&records, |status| status.code() == Code::Unauthenticated).await;
        assert_eq!(reason(&revoked), "CREDENTIAL_REVOKED");
        assert_eq!(
            token(&mesh.registry.url(), &member.name, &issued.secret).await.unwrap_err().code(),
            Code::Unauthenticated
        );
    }
}

/// The `iat` claim of an access token.
fn issued_at(token: &str) -> i64 {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url");
    serde_json::from_slice::<interlock_auth::Claims>(&payload).expect("claims").iat
}

/// Taking a role from a credential voids its tokens issued before: the records pod (and the
/// registry's own verifier) refuse them within seconds through the revocation watch, while a token
/// obtained afterwards works with the roles the credential has now.
#[tokio::test]
async fn removing_a_role_voids_earlier_tokens_on_other_services() {
    for database in TestDatabase::each_backend().await {
        let mesh = Mesh::start(&database).await;
        let (dea, _) = register(&mesh, "DEA", "Drug Enforcement Administration").await;
        let issued = CredentialServiceClient::new(dea.clone())
            .create_credential(CreateCredentialRequest {
                parent: "agencies/DEA".into(),
                credential: Some(Credential {
                    display_name: "DEA case system".into(),
                    roles: vec![Role::AgencyMember as i32, Role::AgencyAdministrator as i32],
                    ..Credential::default()
                }),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        let credential = issued.credential.unwrap();
        // A member's read on the records pod (NOT_FOUND once let in: nothing is stored) and an
        // administrator's read at the registry, each with `token`.
        let read_record = |token: String| async {
            let metadata = CallerMetadata::bearer(token)
                .on_behalf_of("SA J. Smith", interlock_auth::Purpose::Investigation);
            let channel = InterceptedService::new(channel(&mesh.records.url()).await, metadata);
            status_of(
                RecordsServiceClient::new(channel)
                    .get_record(GetRecordRequest { name: "records/1".into() })
                    .await,
            )
        };
        let read_credential = |token: String| async {
            let channel =
                InterceptedService::new(channel(&mesh.registry.url()).await, CallerMetadata::bearer(token));
            status_of(
                CredentialServiceClient::new(channel)
                    .get_credential(GetCredentialRequest { name: credential.name.clone() })
                    .await,
            )
        };
        let before = token(&mesh.registry.url(), &credential.name, &issued.secret).await.unwrap();
        assert_eq!(read_record(before.clone()).await.code(), Code::NotFound, "a member on the records pod");
        assert_eq!(
            read_credential(before.clone()).await.code(),
            Code::Ok,
            "an administrator at the registry"
        );

        // The member role goes (with a new display name in the same update). Signing in changed
        // the credential (its last authentication), hence a fresh etag.
        let etag = CredentialServiceClient::new(dea.clone())
            .get_credential(GetCredentialRequest { name: credential.name.clone() })
            .await
            .unwrap()
            .into_inner()
            .credential
            .unwrap()
            .etag;
        let changed = CredentialServiceClient::new(dea.clone())
            .update_credential(UpdateCredentialRequest {
                credential: Some(Credential {
                    name: credential.name.clone(),
                    etag,
                    display_name: "DEA case system (administration only)".into(),
                    roles: vec![Role::AgencyAdministrator as i32],
                    ..Credential::default()
                }),
                update_mask: Some(FieldMask { paths: vec!["display_name".into(), "roles".into()] }),
            })
            .await
            .unwrap()
            .into_inner()
            .credential
            .unwrap();
        // A token obtained at once, most likely in the same second as the change: it is dated no
        // earlier than the next whole second, which the void spares.
        let after = token(&mesh.registry.url(), &credential.name, &issued.secret).await.unwrap();
        let changed_at = changed.update_time.unwrap();
        let valid_from = changed_at.seconds + i64::from(changed_at.nanos > 0);
        assert!(issued_at(&after) >= valid_from, "iat {} before {valid_from}", issued_at(&after));

        let refused =
            wait_for(|| read_record(before.clone()), |status| status.code() == Code::Unauthenticated).await;
        assert_eq!(reason(&refused), "CREDENTIAL_CHANGED", "{refused:?}");
        let refused =
            wait_for(|| read_credential(before.clone()), |status| status.code() == Code::Unauthenticated)
                .await;
        assert_eq!(reason(&refused), "CREDENTIAL_CHANGED", "the registry's own verifier: {refused:?}");

        // The later token is let in everywhere, with the administrator role only.
        assert_eq!(read_credential(after.clone()).await.code(), Code::Ok);
        let denied = read_record(after.clone()).await;
        assert_eq!(denied.code(), Code::PermissionDenied, "no longer a member: {denied:?}");
    }
}

/// An agency administrator cannot give its agency's credentials mesh-wide roles, by creating or
/// by updating them: PERMISSION_DENIED (reason `ROLE_NOT_ASSIGNABLE`), as the proto says, and
/// nothing changes.
#[tokio::test]
async fn agency_credentials_cannot_be_given_mesh_wide_roles() {
    for database in TestDatabase::each_backend().await {
        let mesh = Mesh::start(&database).await;
        let (dea, _) = register(&mesh, "DEA", "Drug Enforcement Administration").await;
        let name = "agencies/DEA/credentials/admin-backend";
        for role in [Role::CenterAdministrator, Role::CenterAuditor, Role::MeshService] {
            let roles = vec![Role::AgencyAdministrator as i32, role as i32];
            let refused = CredentialServiceClient::new(dea.clone())
                .update_credential(UpdateCredentialRequest {
                    credential: Some(Credential {
                        name: name.into(),
                        roles: roles.clone(),
                        ..Credential::default()
                    }),
                    update_mask: Some(FieldMask { paths: vec!["roles".into()] }),
                })
                .await
                .unwrap_err();
            assert_eq!(
                (refused.code(), reason(&refused).as_str()),
                (Code::PermissionDenied, "ROLE_NOT_ASSIGNABLE"),
                "update {role:?}: {refused:?}"
            );
            let refused = CredentialServiceClient::new(dea.clone())
                .create_credential(CreateCredentialRequest {
                    parent: "agencies/DEA".into(),
                    credential: Some(Credential {
                        display_name: "DEA escalation".into(),
                        roles,
                        ..Credential::default()
                    }),
                    request_id: String::new(),
                })
                .await
                .unwrap_err();
            assert_eq!(
                (refused.code(), reason(&refused).as_str()),
                (Code::PermissionDenied, "ROLE_NOT_ASSIGNABLE"),
                "create {role:?}: {refused:?}"
            );
        }
        let stored = CredentialServiceClient::new(dea.clone())
            .get_credential(GetCredentialRequest { name: name.into() })
            .await
            .unwrap()
            .into_inner()
            .credential
            .unwrap();
        assert_eq!(stored.roles, [Role::AgencyAdministrator as i32], "unchanged");
        let listed = CredentialServiceClient::new(dea)
            .list_credentials(ListCredentialsRequest { parent: "agencies/DEA".into(), ..Default::default() })
            .await
            .unwrap()
            .into_inner()
            .credentials;
        assert_eq!(listed.len(), 1, "nothing created");
    }
}

fn seconds_from_now(seconds: i64) -> prost_types::Timestamp {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    prost_types::Timestamp { seconds: now.as_secs() as i64 + seconds, nanos: 0 }
}

/// UpdateCredential cannot remove a credential's expiry, nor set it beyond the maximum create
/// allows (365 days after the request): INVALID_ARGUMENT on `credential.expire_time`, nothing
/// changed.
#[tokio::test]
async fn updates_keep_credentials_expiring_within_the_maximum() {
    for database in TestDatabase::each_backend().await {
        let mesh = Mesh::start(&database).await;
        let (dea, _) = register(&mesh, "DEA", "Drug Enforcement Administration").await;
        let name = "agencies/DEA/credentials/admin-backend";
        let get = || async {
            CredentialServiceClient::new(dea.clone())
                .get_credential(GetCredentialRequest { name: name.into() })
                .await
                .unwrap()
                .into_inner()
                .credential
                .unwrap()
        };
        let original = get().await;
        assert!(original.expire_time.is_some());
        for expire_time in [None, Some(seconds_from_now(366 * 24 * 3600))] {
            let refused = CredentialServiceClient::new(dea.clone())
                .update_credential(UpdateCredentialRequest {
                    credential: Some(Credential { name: name.into(), expire_time, ..Credential::default() }),
                    update_mask: Some(FieldMask { paths: vec!["expire_time".into()] }),
                })
                .await
                .unwrap_err();
            assert_eq!(refused.code(), Code::InvalidArgument, "{expire_time:?}: {refused:?}");
            let violations = refused.get_details_bad_request().expect("field violations").field_violations;
            assert_eq!(violations[0].field, "credential.expire_time", "{violations:?}");
        }
        assert_eq!(get().await.expire_time, original.expire_time, "unchanged");
    }
}

/// Tokens never outlive their credential: one requested for an hour from a credential expiring
/// sooner expires with it, and moving the expiry before a token's voids that token on other
/// services within seconds (CREDENTIAL_CHANGED); one obtained afterwards works and is capped at the
/// new expiry.
#[tokio::test]
async fn tokens_never_outlive_their_credential() {
    for database in TestDatabase::each_backend().await {
        let mesh = Mesh::start(&database).await;
        let (dea, _) = register(&mesh, "DEA", "Drug Enforcement Administration").await;
        let issued = CredentialServiceClient::new(dea.clone())
            .create_credential(CreateCredentialRequest {
                parent: "agencies/DEA".into(),
                credential: Some(Credential {
                    display_name: "DEA case system".into(),
                    roles: vec![Role::AgencyMember as i32],
                    expire_time: Some(seconds_from_now(30 * 60)),
                    ..Credential::default()
                }),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        let credential = issued.credential.unwrap();
        let hour_token = || async {
            AuthenticationServiceClient::new(channel(&mesh.registry.url()).await)
                .create_access_token(CreateAccessTokenRequest {
                    credential: credential.name.clone(),
                    secret: issued.secret.clone(),
                    ttl: Some(prost_types::Duration { seconds: 3600, nanos: 0 }),
                })
                .await
                .unwrap()
                .into_inner()
        };
        let before = hour_token().await;
        let expiry = credential.expire_time.unwrap();
        assert!(before.expire_time.unwrap().seconds <= expiry.seconds, "capped at {expiry:?}");
        let read_record = |token: String| async {
            let metadata = CallerMetadata::bearer(token)
                .on_behalf_of("SA J. Smith", interlock_auth::Purpose::Investigation);
            let channel = InterceptedService::new(channel(&mesh.records.url()).await, metadata);
            status_of(
                RecordsServiceClient::new(channel)
                    .get_record(GetRecordRequest { name: "records/1".into() })
                    .await,
            )
        };
        assert_eq!(read_record(before.access_token.clone()).await.code(), Code::NotFound, "let in");

        let etag = CredentialServiceClient::new(dea.clone())
            .get_credential(GetCredentialRequest { name: credential.name.clone() })
            .await
            .unwrap()
            .into_inner()
            .credential
            .unwrap()
            .etag;
        let shortened = seconds_from_now(5 * 60);
        CredentialServiceClient::new(dea.clone())
            .update_credential(UpdateCredentialRequest {
                credential: Some(Credential {
                    name: credential.name.clone(),
                    etag,
                    expire_time: Some(shortened),
                    ..Credential::default()
                }),
                update_mask: Some(FieldMask { paths: vec!["expire_time".into()] }),
            })
            .await
            .unwrap();
        let refused = wait_for(
            || read_record(before.access_token.clone()),
            |status| status.code() == Code::Unauthenticated,
        )
        .await;
        assert_eq!(reason(&refused), "CREDENTIAL_CHANGED", "{refused:?}");

        let after = hour_token().await;
        assert!(after.expire_time.unwrap().seconds <= shortened.seconds, "capped at the new expiry");
        assert_eq!(read_record(after.access_token).await.code(), Code::NotFound, "let in");
    }
}

#[tokio::test]
async fn five_failed_logons_lock_a_credential() {
    let database = TestDatabase::sqlite();
    let mesh = Mesh::start(&database).await;
    let (dea, secret) = register(&mesh, "DEA", "Drug Enforcement Administration").await;
    let name = "agencies/DEA/credentials/admin-backend";
    for _ in 0..5 {
        let status = token(&mesh.registry.url(), name, "ilk_guess").await.unwrap_err();
        assert_eq!(reason(&status), "INVALID_CREDENTIALS");
    }
    let locked = token(&mesh.registry.url(), name, &secret).await.unwrap_err();
    assert_eq!((locked.code(), reason(&locked).as_str()), (Code::Unauthenticated, "CREDENTIAL_LOCKED"));
    let shown = CredentialServiceClient::new(dea)
        .get_credential(GetCredentialRequest { name: name.into() })
        .await
        .unwrap()
        .into_inner()
        .credential
        .unwrap();
    assert!(shown.lock_expire_time.is_some());
    // A center administrator can unlock it; then the right secret works again.
    CredentialServiceClient::new(mesh.admin().await)
        .unlock_credential(UnlockCredentialRequest {
            name: name.into(),
            reason: "verified by phone".into(),
            etag: String::new(),
        })
        .await
        .unwrap();
    assert!(token(&mesh.registry.url(), name, &secret).await.is_ok());
}

/// Two registry replicas on one PostgreSQL database, as Kubernetes runs them: a revocation made
/// through one replica reaches a grant watcher connected to the other within one second, and a
/// token issued by one is accepted by the other.
#[tokio::test]
async fn replicas_on_one_database_converge() {
    let Some(database) = TestDatabase::postgres().await else { return };
    let shared = [
        "--service",
        "registry",
        "--database-url",
        database.url(),
        "--mesh-secret",
        MESH_SECRET,
        "--bootstrap-admin-secret",
        "ilk_replica-test-admin",
        "--token-signing-key",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    ];
    let first = TestServer::start(&shared).await;
    let second = TestServer::start(&shared).await;
    let mesh = Mesh {
        records: TestServer::start(&[
            "--service",
            "records",
            "--registry-address",
            &first.url(),
            "--mesh-secret",
            MESH_SECRET,
        ])
        .await,
        registry: first,
    };
    let (dea, _) = register(&mesh, "DEA", "Drug Enforcement Administration").await;
    let (ice, _) = register(&mesh, "ICE", "Immigration and Customs Enforcement").await;
    let agreement = create(&dea, bilateral("DEA", "ICE")).await.unwrap();
    propose(&dea, &agreement.name).await;
    sign(&dea, &agreement.name).await.unwrap();
    sign(&ice, &agreement.name).await.unwrap();

    // A token from the first replica works on the second.
    let admin_token = mesh.registry.admin_token().await;
    let on_second =
        InterceptedService::new(channel(&second.url()).await, CallerMetadata::bearer(admin_token));
    let mut stream = GrantServiceClient::new(on_second)
        .watch_grants(WatchGrantsRequest { consumer: "agencies/ICE".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let snapshot = stream.message().await.unwrap().unwrap();
    assert_eq!(snapshot.consumers[0].grants.len(), 1);

    let revoked_at = Instant::now();
    AgreementServiceClient::new(ice.clone())
        .revoke_agreement(RevokeAgreementRequest {
            name: agreement.name.clone(),
            reason: "replica test".into(),
            etag: String::new(),
        })
        .await
        .unwrap();
    loop {
        let message =
            tokio::time::timeout(Duration::from_secs(2), stream.message()).await.unwrap().unwrap().unwrap();
        if let Some(ice_set) = message.consumers.iter().find(|c| c.consumer == "agencies/ICE") {
            assert!(ice_set.grants.is_empty());
            break;
        }
    }
    assert!(revoked_at.elapsed() < Duration::from_secs(1), "took {:?}", revoked_at.elapsed());
}

#[tokio::test]
async fn the_center_administrator_issues_operator_credentials_but_not_agency_ones() {
    let database = TestDatabase::sqlite();
    let mesh = Mesh::start(&database).await;
    let issued = CredentialServiceClient::new(mesh.admin().await)
        .create_credential(CreateCredentialRequest {
            parent: "agencies/INTERLOCK".into(),
            credential: Some(Credential {
                credential_id: "auditor-1".into(),
                display_name: "Center auditor".into(),
                roles: vec![Role::CenterAuditor as i32],
                ..Credential::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(issued.secret.starts_with("ilk_"), "the secret is shown once");
    let url = mesh.registry.url();
    let auditor =
        as_credential(&url, &url, "agencies/INTERLOCK/credentials/auditor-1", &issued.secret, "auditor")
            .await;
    let grants = GrantServiceClient::new(auditor).list_grants(ListGrantsRequest::default()).await;
    assert!(grants.is_ok(), "a center auditor reads every grant: {grants:?}");

    // Once DEA has an administrator, only DEA issues DEA's credentials.
    register(&mesh, "DEA", "Drug Enforcement Administration").await;
    let refused = CredentialServiceClient::new(mesh.admin().await)
        .create_credential(CreateCredentialRequest {
            parent: "agencies/DEA".into(),
            credential: Some(Credential {
                display_name: "backdoor".into(),
                roles: vec![Role::AgencyAdministrator as i32],
                ..Credential::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (refused.code(), reason(&refused).as_str()),
        (Code::PermissionDenied, "AGENCY_HAS_ADMINISTRATORS")
    );
    // Stored secrets are hashes: the credential shows only a prefix.
    let shown = CredentialServiceClient::new(mesh.admin().await)
        .get_credential(GetCredentialRequest { name: "agencies/INTERLOCK/credentials/auditor-1".into() })
        .await
        .unwrap()
        .into_inner()
        .credential
        .unwrap();
    assert_eq!(shown.secret_prefix, issued.secret[..8]);
    let path = database.url().trim_start_matches("sqlite://").to_owned();
    for file in [path.clone(), format!("{path}-wal")] {
        let bytes = std::fs::read(&file).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&issued.secret), "{file} holds a plaintext secret");
    }
}

/// Every registry change and logon reaches the audit log: the outbox drains, and the center
/// auditor finds the events.
#[tokio::test]
async fn registry_changes_and_logons_reach_the_audit_log() {
    use interlock_api::audit::v1::audit_service_client::AuditServiceClient;
    use interlock_api::audit::v1::{Action, EventFilter, ListEventsRequest};

    let server = TestServer::all_in_one().await;
    let admin = server.admin_channel().await;
    AgencyServiceClient::new(admin.clone())
        .create_agency(CreateAgencyRequest {
            agency: Some(agency("DEA", "Drug Enforcement Administration")),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let wrong = token(&server.url(), "agencies/INTERLOCK/credentials/bootstrap-admin", "ilk_wrong").await;
    assert!(wrong.is_err());

    let outbox = interlock_audit_client::SqlOutbox::new(
        interlock_storage::Database::open(
            &format!("sqlite://{}", server.data.path().join("registry.db").display()),
            &interlock_registry::store::MIGRATIONS,
        )
        .await
        .unwrap(),
    );
    let started = Instant::now();
    while !outbox.pending(10).await.unwrap().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "the registry's outbox does not drain");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let auditor = InterceptedService::new(
        channel(&server.url()).await,
        CallerMetadata::bearer(server.admin_token().await)
            .on_behalf_of("auditor", interlock_auth::Purpose::Investigation),
    );
    let events = AuditServiceClient::new(auditor.clone())
        .list_events(ListEventsRequest {
            filter: Some(EventFilter { resource_owner: "agencies/DEA".into(), ..EventFilter::default() }),
            page_size: 100,
            ..ListEventsRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert!(events.iter().any(
        |e| e.action == Action::Create as i32 && e.resources.iter().any(|r| r.resource == "agencies/DEA")
    ));
    let failures = AuditServiceClient::new(auditor)
        .list_events(ListEventsRequest {
            filter: Some(EventFilter {
                actions: vec![Action::LogonFailure as i32],
                ..EventFilter::default()
            }),
            page_size: 100,
            ..ListEventsRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(failures.len(), 1, "the failed logon is audited once");
}
