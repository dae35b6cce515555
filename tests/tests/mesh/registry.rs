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

/// Signs version 1, the version every agreement is first proposed at.
async fn sign(channel: &AuthedChannel, name: &str) -> Result<Agreement, tonic::Status> {
    Ok(AgreementServiceClient::new(channel.clone())
        .sign_agreement(SignAgreementRequest { name: name.into(), version: 1, etag: String::new() })
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

/// The fields an INVALID_ARGUMENT status's BadRequest names.
fn violated_fields(status: &tonic::Status) -> Vec<String> {
    let details = status.get_error_details();
    let request = details.bad_request().expect("a BadRequest with field violations");
    request.field_violations.iter().map(|v| v.field.clone()).collect()
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

        // A revoked agreement cannot be amended, whatever the terms (valid, or an empty scope: the
        // state is checked first), and the attempt changes nothing: same version, state, etag and
        // signatures, and no new version in the history.
        let revoked = get_agreement(&dea, &agreement.name).await;
        let history = versions_of(&dea, &agreement.name).await;
        let mut amended = bilateral("DEA", "ICE");
        amended.name = agreement.name.clone();
        amended.etag = revoked.etag.clone();
        amended.display_name = "DEA–ICE memorandum of understanding, revived".into();
        let emptied = Agreement { scope: Some(AgreementScope::default()), ..amended.clone() };
        for (terms, path) in [(amended, "display_name"), (emptied, "scope")] {
            let status = AgreementServiceClient::new(dea.clone())
                .amend_agreement(AmendAgreementRequest {
                    agreement: Some(terms),
                    update_mask: Some(FieldMask { paths: vec![path.into()] }),
                    change_note: "revive it".into(),
                    ..AmendAgreementRequest::default()
                })
                .await
                .unwrap_err();
            assert_eq!(
                (status.code(), reason(&status).as_str()),
                (Code::FailedPrecondition, "AGREEMENT_REVOKED"),
                "amending {path}"
            );
        }
        let reread = get_agreement(&dea, &agreement.name).await;
        assert_eq!(
            (reread.version, reread.pending_version, reread.state, &reread.etag),
            (1, 0, AgreementState::Revoked as i32, &revoked.etag)
        );
        assert_eq!(signers(&reread.signatures), signers(&revoked.signatures));
        assert_eq!(reread.signatures.len(), 2);
        assert_eq!(reread, revoked, "nothing else changed either");
        let reread_history = versions_of(&dea, &agreement.name).await;
        assert_eq!(reread_history.len(), 1, "no version was added: {reread_history:#?}");
        assert_eq!(reread_history, history);
        assert_eq!(reread_history[0].state, AgreementVersionState::Ended as i32);
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

        // Duplicate center id: refused, and the first center keeps its fields and members.
        let mut centers = CenterServiceClient::new(mesh.admin().await);
        centers
            .create_center(CreateCenterRequest {
                center: Some(Center {
                    center_id: "ioc-2".into(),
                    display_name: "IOC-2".into(),
                    description: "International Organized Crime Intelligence and Operations Center".into(),
                    ..Center::default()
                }),
                request_id: "create-ioc-2".into(),
            })
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
        let center = || async {
            let mut centers = CenterServiceClient::new(mesh.admin().await);
            let center = centers
                .get_center(GetCenterRequest { name: "centers/ioc-2".into() })
                .await
                .unwrap()
                .into_inner();
            let members = centers
                .list_center_members(ListCenterMembersRequest {
                    parent: "centers/ioc-2".into(),
                    show_former: true,
                    ..ListCenterMembersRequest::default()
                })
                .await
                .unwrap()
                .into_inner()
                .members;
            (center.center.unwrap(), members)
        };
        let (original, members) = center().await;
        for request_id in ["", "create-ioc-2-again"] {
            let duplicate = centers
                .create_center(CreateCenterRequest {
                    center: Some(Center {
                        center_id: "ioc-2".into(),
                        display_name: "Impostor center".into(),
                        description: "replaced".into(),
                        ..Center::default()
                    }),
                    request_id: request_id.into(),
                })
                .await
                .unwrap_err();
            assert_eq!(
                (duplicate.code(), reason(&duplicate).as_str()),
                (Code::AlreadyExists, "ALREADY_EXISTS")
            );
        }
        let (unchanged, unchanged_members) = center().await;
        assert_eq!(
            (unchanged.display_name.as_str(), unchanged.description.as_str(), unchanged.current_member_count),
            ("IOC-2", "International Organized Crime Intelligence and Operations Center", 1)
        );
        assert_eq!(unchanged, original, "same fields, same etag");
        assert_eq!(unchanged_members, members);
        let listed = centers.list_centers(ListCentersRequest::default()).await.unwrap().into_inner().centers;
        assert_eq!(listed, [original]);

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
        // A signature names the version signed (> 0): never "whichever awaits".
        let unversioned = AgreementServiceClient::new(ice.clone())
            .sign_agreement(SignAgreementRequest {
                name: agreement.name.clone(),
                version: 0,
                etag: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(unversioned.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&unversioned), ["version"]);
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
                reason: "audit finding".into(),
                etag: "\"1\"".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(stale.code(), Code::Aborted);
    }
}

/// Suspending, resuming, revoking and withdrawing an amendment each need a reason, which the other
/// parties read and the audit log keeps, and an amendment a change note: without one (or with a
/// reason of more than 1000 characters) the call is INVALID_ARGUMENT naming the field, and the
/// agreement is unchanged.
#[tokio::test]
async fn a_party_says_why_it_suspends_resumes_revokes_or_withdraws() {
    for database in TestDatabase::each_backend().await {
        let mesh = Mesh::start(&database).await;
        let (dea, _) = register(&mesh, "DEA", "Drug Enforcement Administration").await;
        let (ice, _) = register(&mesh, "ICE", "Immigration and Customs Enforcement").await;
        let name = create(&dea, bilateral("DEA", "ICE")).await.unwrap().name;
        propose(&dea, &name).await;
        sign(&dea, &name).await.unwrap();
        sign(&ice, &name).await.unwrap();
        let mut ice_agreements = AgreementServiceClient::new(ice.clone());
        ice_agreements
            .suspend_agreement(SuspendAgreementRequest {
                name: name.clone(),
                reason: "joint review".into(),
                etag: String::new(),
            })
            .await
            .unwrap();
        let suspended = get_agreement(&ice, &name).await;
        assert_eq!(suspended.state, AgreementState::Suspended as i32);

        let resume = |reason: String| {
            let mut agreements = ice_agreements.clone();
            let name = name.clone();
            async move {
                agreements
                    .resume_agreement(ResumeAgreementRequest { name, reason, etag: String::new() })
                    .await
            }
        };
        for reason in [String::new(), "   ".into(), "x".repeat(1001)] {
            let refused = resume(reason).await.unwrap_err();
            assert_eq!(refused.code(), Code::InvalidArgument);
            assert_eq!(violated_fields(&refused), ["reason"]);
        }
        let mut dea_agreements = AgreementServiceClient::new(dea.clone());
        let refusals = [
            dea_agreements
                .suspend_agreement(SuspendAgreementRequest { name: name.clone(), ..Default::default() })
                .await
                .unwrap_err(),
            dea_agreements
                .revoke_agreement(RevokeAgreementRequest { name: name.clone(), ..Default::default() })
                .await
                .unwrap_err(),
            dea_agreements
                .withdraw_amendment(WithdrawAmendmentRequest { name: name.clone(), ..Default::default() })
                .await
                .unwrap_err(),
        ];
        let mut retitled = suspended.clone();
        retitled.display_name = "DEA–ICE memorandum of understanding, 2nd edition".into();
        let unexplained = dea_agreements
            .amend_agreement(AmendAgreementRequest {
                agreement: Some(retitled),
                update_mask: Some(FieldMask { paths: vec!["display_name".into()] }),
                change_note: String::new(),
                request_id: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            (unexplained.code(), violated_fields(&unexplained)),
            (Code::InvalidArgument, vec!["change_note".into()]),
            "an amendment says what changes and why"
        );
        for refused in &refusals {
            assert_eq!(
                (refused.code(), violated_fields(refused)),
                (Code::InvalidArgument, vec!["reason".into()])
            );
        }
        assert_eq!(get_agreement(&ice, &name).await, suspended, "still suspended by ICE alone, same etag");

        let resumed = resume("review closed".into()).await.unwrap().into_inner().agreement.unwrap();
        assert_eq!(resumed.state, AgreementState::Active as i32);
    }
}

/// A request_id belongs to the agency that sent it: another agency reusing the same id (by
/// chance, or copied from a log) creates its own agreement and never gets the first one, which it
/// is not a party to; the first agency's retry still returns its own agreement.
#[tokio::test]
async fn a_request_id_is_the_sending_agencys_own() {
    for database in TestDatabase::each_backend().await {
        let mesh = Mesh::start(&database).await;
        let (dea, _) = register(&mesh, "DEA", "Drug Enforcement Administration").await;
        // ICE is the other party of both agreements.
        register(&mesh, "ICE", "Immigration and Customs Enforcement").await;
        let (fbi, _) = register(&mesh, "FBI", "Federal Bureau of Investigation").await;
        let create_with_id = |channel: &AuthedChannel, agreement: Agreement| {
            let mut agreements = AgreementServiceClient::new(channel.clone());
            async move {
                agreements
                    .create_agreement(CreateAgreementRequest {
                        agreement: Some(agreement),
                        request_id: "8f14e45f-ceea-467f-a8f5-7a6c2b3d9e01".into(),
                    })
                    .await
                    .map(|response| response.into_inner().agreement.unwrap())
            }
        };
        let first = create_with_id(&dea, bilateral("DEA", "ICE")).await.unwrap();
        let other = create_with_id(&fbi, bilateral("FBI", "ICE")).await.unwrap();
        assert_ne!(other.name, first.name, "FBI gets an agreement of its own, not DEA's");
        let parties: Vec<&str> = other.parties.iter().map(|p| p.party.as_str()).collect();
        assert_eq!(parties, ["agencies/FBI", "agencies/ICE"]);
        let retried = create_with_id(&dea, bilateral("DEA", "ICE")).await.unwrap();
        assert_eq!(retried.name, first.name, "DEA's retry returns DEA's agreement");
        let status = AgreementServiceClient::new(fbi.clone())
            .get_agreement(GetAgreementRequest { name: first.name.clone() })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "FBI still cannot see DEA's agreement");
    }
}

/// UpdateAgreement checks the etag and the draft state before the terms, as AmendAgreement does:
/// a stale etag is ABORTED and a proposed agreement FAILED_PRECONDITION whatever terms are sent.
#[tokio::test]
async fn an_edit_is_checked_against_the_draft_as_read_before_its_terms() {
    for database in TestDatabase::each_backend().await {
        let mesh = Mesh::start(&database).await;
        let (dea, _) = register(&mesh, "DEA", "Drug Enforcement Administration").await;
        register(&mesh, "ICE", "Immigration and Customs Enforcement").await;
        let draft = create(&dea, bilateral("DEA", "ICE")).await.unwrap();
        let mut agreements = AgreementServiceClient::new(dea.clone());
        // A blank display name breaks a CreateAgreement rule.
        let blank_title = |agreement: &Agreement, etag: &str| UpdateAgreementRequest {
            agreement: Some(Agreement {
                display_name: String::new(),
                etag: etag.into(),
                ..agreement.clone()
            }),
            update_mask: Some(FieldMask { paths: vec!["display_name".into()] }),
        };
        let invalid = agreements.update_agreement(blank_title(&draft, &draft.etag)).await.unwrap_err();
        assert_eq!(invalid.code(), Code::InvalidArgument, "a current draft gets its terms checked");
        let stale = agreements.update_agreement(blank_title(&draft, "\"999\"")).await.unwrap_err();
        assert_eq!((stale.code(), reason(&stale).as_str()), (Code::Aborted, "ETAG_MISMATCH"));

        let proposed = propose(&dea, &draft.name).await;
        let frozen = agreements.update_agreement(blank_title(&proposed, &proposed.etag)).await.unwrap_err();
        assert_eq!(
            (frozen.code(), reason(&frozen).as_str()),
            (Code::FailedPrecondition, "AGREEMENT_NOT_DRAFT")
        );
        assert_eq!(get_agreement(&dea, &draft.name).await, proposed, "nothing changed");
    }
}

/// Revoking or unlocking a credential and suspending or reactivating an agency need a reason of
/// at most 1000 characters, as the agreement lifecycle does (INVALID_ARGUMENT on `reason`); a
/// refused call changes nothing, and a long reason within the limit is accepted (its audit event
/// carries it cut to what an audit detail holds).
#[tokio::test]
async fn credential_and_agency_changes_say_why() {
    for database in TestDatabase::each_backend().await {
        let mesh = Mesh::start(&database).await;
        let (dea, secret) = register(&mesh, "DEA", "Drug Enforcement Administration").await;
        let admin = mesh.admin().await;
        let name = "agencies/DEA/credentials/admin-backend";
        let mut credentials = CredentialServiceClient::new(admin.clone());
        let mut agencies = AgencyServiceClient::new(admin.clone());
        for _ in 0..5 {
            token(&mesh.registry.url(), name, "ilk_guess").await.unwrap_err();
        }
        for bad in [String::new(), "  ".into(), "x".repeat(1001)] {
            let refusals = [
                credentials
                    .unlock_credential(UnlockCredentialRequest {
                        name: name.into(),
                        reason: bad.clone(),
                        etag: String::new(),
                    })
                    .await
                    .unwrap_err(),
                CredentialServiceClient::new(dea.clone())
                    .revoke_credential(RevokeCredentialRequest {
                        name: name.into(),
                        reason: bad.clone(),
                        etag: String::new(),
                    })
                    .await
                    .unwrap_err(),
                agencies
                    .suspend_agency(SuspendAgencyRequest {
                        name: "agencies/DEA".into(),
                        reason: bad.clone(),
                        etag: String::new(),
                    })
                    .await
                    .unwrap_err(),
            ];
            for refused in &refusals {
                assert_eq!(
                    (refused.code(), violated_fields(refused)),
                    (Code::InvalidArgument, vec!["reason".into()])
                );
            }
        }
        let locked = token(&mesh.registry.url(), name, &secret).await.unwrap_err();
        assert_eq!(reason(&locked), "CREDENTIAL_LOCKED", "still locked: the refused unlocks changed nothing");

        let long = "verified by phone with the duty desk; ".repeat(25);
        assert!((513..=1000).contains(&long.chars().count()));
        credentials
            .unlock_credential(UnlockCredentialRequest {
                name: name.into(),
                reason: long.clone(),
                etag: String::new(),
            })
            .await
            .unwrap();
        agencies
            .suspend_agency(SuspendAgencyRequest {
                name: "agencies/DEA".into(),
                reason: long.clone(),
                etag: String::new(),
            })
            .await
            .unwrap();
        let refused = agencies
            .reactivate_agency(ReactivateAgencyRequest {
                name: "agencies/DEA".into(),
                reason: String::new(),
                etag: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&refused), ["reason"]);
        let reactivated = agencies
            .reactivate_agency(ReactivateAgencyRequest {
                name: "agencies/DEA".into(),
                reason: long,
                etag: String::new(),
            })
            .await
            .unwrap();
        assert_eq!(reactivated.into_inner().agency.unwrap().state, AgencyState::Active as i32);
    }
}

/// AddCenterMember honours request_id like the creates: a retry returns the membership the first
/// call opened instead of ALREADY_A_MEMBER, and even after the agency left it opens no new period;
/// the same id for another member is INVALID_ARGUMENT.
#[tokio::test]
async fn a_retried_member_addition_adds_the_member_once() {
    for database in TestDatabase::each_backend().await {
        let mesh = Mesh::start(&database).await;
        register(&mesh, "DEA", "Drug Enforcement Administration").await;
        register(&mesh, "ICE", "Immigration and Customs Enforcement").await;
        let mut centers = CenterServiceClient::new(mesh.admin().await);
        centers
            .create_center(CreateCenterRequest {
                center: Some(Center {
                    center_id: "hidta-watch".into(),
                    display_name: "HIDTA Watch Center".into(),
                    ..Center::default()
                }),
                request_id: String::new(),
            })
            .await
            .unwrap();
        let add = |code: &str| AddCenterMemberRequest {
            center: "centers/hidta-watch".into(),
            agency: format!("agencies/{code}"),
            join_time: None,
            request_id: "3b1d6a0e-2c4f-4e8b-9d7a-5f6e1c2b3a40".into(),
        };
        let first = centers.add_center_member(add("DEA")).await.unwrap().into_inner().member.unwrap();
        let retried = centers.add_center_member(add("DEA")).await.unwrap().into_inner().member.unwrap();
        assert_eq!(retried, first, "the retry returns the membership the first call opened");
        // Another call (no request id) adding a current member is refused with the proto's reason.
        let again = centers
            .add_center_member(AddCenterMemberRequest { request_id: String::new(), ..add("DEA") })
            .await
            .unwrap_err();
        assert_eq!((again.code(), reason(&again).as_str()), (Code::AlreadyExists, "ALREADY_A_MEMBER"));

        centers
            .remove_center_member(RemoveCenterMemberRequest {
                name: first.name.clone(),
                ..RemoveCenterMemberRequest::default()
            })
            .await
            .unwrap();
        let after_leaving = centers.add_center_member(add("DEA")).await.unwrap().into_inner().member.unwrap();
        assert!(after_leaving.previous_periods.is_empty(), "no second period: {after_leaving:?}");
        assert_ne!(after_leaving.state, first.state, "returned as it is now: left");

        let reused = centers.add_center_member(add("ICE")).await.unwrap_err();
        assert_eq!(
            (reused.code(), violated_fields(&reused)),
            (Code::InvalidArgument, vec!["request_id".into()])
        );
    }
}

/// A center agreement names the members whose signature it still awaits: on the proposal, each
/// current member until it signs; once in force, a member that joined later (it takes no part
/// until it signs the version in force); on an amendment, every current member again.
#[tokio::test]
async fn a_center_agreement_names_the_members_whose_signature_it_awaits() {
    for database in TestDatabase::each_backend().await {
        let mesh = Mesh::start(&database).await;
        let (dea, _) = register(&mesh, "DEA", "Drug Enforcement Administration").await;
        let (ice, _) = register(&mesh, "ICE", "Immigration and Customs Enforcement").await;
        let (fbi, _) = register(&mesh, "FBI", "Federal Bureau of Investigation").await;
        let mut centers = CenterServiceClient::new(mesh.admin().await);
        centers
            .create_center(CreateCenterRequest {
                center: Some(Center {
                    center_id: "ocdetf-fusion-center".into(),
                    display_name: "OCDETF Fusion Center".into(),
                    ..Center::default()
                }),
                request_id: String::new(),
            })
            .await
            .unwrap();
        let join = |code: &str| AddCenterMemberRequest {
            center: "centers/ocdetf-fusion-center".into(),
            agency: format!("agencies/{code}"),
            ..AddCenterMemberRequest::default()
        };
        for code in ["DEA", "ICE"] {
            centers.add_center_member(join(code)).await.unwrap();
        }
        let fusion = Agreement {
            display_name: "OCDETF Fusion Center information sharing".into(),
            parties: vec![AgreementParty {
                party: "centers/ocdetf-fusion-center".into(),
                role: PartyRole::Both as i32,
            }],
            scope: Some(scope(AccessLevel::Pointer)),
            ..Agreement::default()
        };
        let name = create(&dea, fusion).await.unwrap().name;
        assert!(get_agreement(&dea, &name).await.pending_signers.is_empty(), "a draft awaits no one");
        let proposed = propose(&dea, &name).await;
        assert_eq!(proposed.pending_signers, ["agencies/DEA", "agencies/ICE"]);
        assert_eq!(sign(&dea, &name).await.unwrap().pending_signers, ["agencies/ICE"]);
        let listed = AgreementServiceClient::new(ice.clone())
            .list_agreements(ListAgreementsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .agreements;
        assert_eq!(listed[0].pending_signers, ["agencies/ICE"], "listed as read");
        let active = sign(&ice, &name).await.unwrap();
        assert_eq!(active.state, AgreementState::Active as i32);
        assert!(active.pending_signers.is_empty());

        // FBI joins after activation: in force, but FBI takes no part until it signs version 1.
        centers.add_center_member(join("FBI")).await.unwrap();
        let joined = get_agreement(&dea, &name).await;
        assert_eq!(
            (joined.state, joined.pending_signers.as_slice()),
            (AgreementState::Active as i32, &["agencies/FBI".to_owned()][..])
        );
        assert!(sign(&fbi, &name).await.unwrap().pending_signers.is_empty());

        // An amendment awaits every current member.
        let mut amended = get_agreement(&dea, &name).await;
        amended.display_name = "OCDETF Fusion Center information sharing, 2nd edition".into();
        let amended = AgreementServiceClient::new(dea.clone())
            .amend_agreement(AmendAgreementRequest {
                agreement: Some(amended),
                update_mask: Some(FieldMask { paths: vec!["display_name".into()] }),
                change_note: "new title".into(),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .agreement
            .unwrap();
        assert_eq!(amended.pending_signers, ["agencies/DEA", "agencies/ICE", "agencies/FBI"]);
    }
}

/// An amendment is made against the agreement its author read: the etag is required, and a stale
/// one is ABORTED and proposes nothing, so an amendment never lands on terms changed since. A
/// retry with the same request_id returns the first result instead of proposing again.
#[tokio::test]
async fn an_amendment_is_made_against_the_agreement_as_read() {
    for database in TestDatabase::each_backend().await {
        let mesh = Mesh::start(&database).await;
        let (dea, _) = register(&mesh, "DEA", "Drug Enforcement Administration").await;
        let (ice, _) = register(&mesh, "ICE", "Immigration and Customs Enforcement").await;
        let name = create(&dea, bilateral("DEA", "ICE")).await.unwrap().name;
        propose(&dea, &name).await;
        sign(&dea, &name).await.unwrap();
        sign(&ice, &name).await.unwrap();
        let mut dea_agreements = AgreementServiceClient::new(dea.clone());
        let amend = |agreement: &Agreement, request_id: &str| AmendAgreementRequest {
            agreement: Some(agreement.clone()),
            update_mask: Some(FieldMask { paths: vec!["display_name".into()] }),
            change_note: "new title".into(),
            request_id: request_id.into(),
        };
        let mut retitled = get_agreement(&dea, &name).await;
        retitled.display_name = "DEA–ICE memorandum of understanding, 2nd edition".into();

        let unversioned = Agreement { etag: String::new(), ..retitled.clone() };
        let missing = dea_agreements.amend_agreement(amend(&unversioned, "")).await.unwrap_err();
        assert_eq!(
            (missing.code(), violated_fields(&missing)),
            (Code::InvalidArgument, vec!["agreement.etag".into()])
        );

        // ICE suspends the agreement after DEA read it: DEA's etag is stale.
        AgreementServiceClient::new(ice.clone())
            .suspend_agreement(SuspendAgreementRequest {
                name: name.clone(),
                reason: "joint review".into(),
                etag: String::new(),
            })
            .await
            .unwrap();
        let changed = get_agreement(&dea, &name).await;
        let stale = dea_agreements.amend_agreement(amend(&retitled, "")).await.unwrap_err();
        assert_eq!((stale.code(), reason(&stale).as_str()), (Code::Aborted, "ETAG_MISMATCH"));
        assert_eq!(get_agreement(&dea, &name).await, changed, "nothing was proposed");
        assert_eq!(versions_of(&dea, &name).await.len(), 1);

        // Read again, amended.
        retitled.etag = changed.etag.clone();
        let amended =
            dea_agreements.amend_agreement(amend(&retitled, "amend-title-1")).await.unwrap().into_inner();
        assert_eq!(amended.version.as_ref().unwrap().version, 2);
        assert_eq!(amended.agreement.as_ref().unwrap().pending_version, 2);

        // The response was lost; DEA retries the same request (its etag now stale): it gets the
        // first result back, and no second amendment is proposed.
        let retried =
            dea_agreements.amend_agreement(amend(&retitled, "amend-title-1")).await.unwrap().into_inner();
        assert_eq!(retried, amended);
        let history = versions_of(&dea, &name).await;
        assert_eq!(history.len(), 2, "one amendment: {history:#?}");
        assert_eq!(history[1], amended.version.unwrap());
        // Another request with the stale etag is a new amendment, and refused as such; read
        // afresh, it waits for the pending one, whatever its terms.
        let another = dea_agreements.amend_agreement(amend(&retitled, "amend-title-2")).await.unwrap_err();
        assert_eq!(another.code(), Code::Aborted);
        let untitled = Agreement {
            display_name: String::new(),
            etag: get_agreement(&dea, &name).await.etag,
            ..retitled.clone()
        };
        let pending = dea_agreements.amend_agreement(amend(&untitled, "amend-title-3")).await.unwrap_err();
        assert_eq!(
            (pending.code(), reason(&pending).as_str()),
            (Code::FailedPrecondition, "AMENDMENT_PENDING")
        );
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
                reason: "audit closed".into(),
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
    for database in TestDatabase::each_backend().await {
        let mesh = Mesh::start(&database).await;
        let (dea, secret) = register(&mesh, "DEA", "Drug Enforcement Administration").await;
        let name = "agencies/DEA/credentials/admin-backend";
        for _ in 0..5 {
            let status = token(&mesh.registry.url(), name, "ilk_guess").await.unwrap_err();
            assert_eq!(reason(&status), "INVALID_CREDENTIALS");
        }
        let locked = token(&mesh.registry.url(), name, &secret).await.unwrap_err();
        assert_eq!((locked.code(), reason(&locked).as_str()), (Code::Unauthenticated, "CREDENTIAL_LOCKED"));
        // RetryInfo says how long the lock has left: at most the 10 minutes, and not over yet.
        let delay = locked.get_error_details().retry_info().and_then(|retry| retry.retry_delay);
        let delay = delay.expect("a locked credential's status carries RetryInfo");
        assert!(delay > Duration::from_secs(9 * 60) && delay <= Duration::from_secs(10 * 60), "{delay:?}");
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
}

/// The lock after five failures is audited as a credential change of its own (with when it ends),
/// after the failures that caused it, on SQLite and PostgreSQL; attempts on the locked credential
/// are failures, not new locks.
#[tokio::test]
async fn a_lock_is_audited_after_the_failures_that_caused_it() {
    use interlock_api::audit::v1::{Action, Outcome};

    let mut audit_databases = TestDatabase::each_backend().await.into_iter();
    for database in TestDatabase::each_backend().await {
        let audit_database = audit_databases.next().expect("as many audit databases");
        let (registry, audit) = audited_registry(&database, &audit_database).await;
        let url = registry.url();
        let (dea, secret) = interlock_tests::register(
            &url,
            &registry.admin_channel().await,
            "DEA",
            "Drug Enforcement Administration",
        )
        .await;
        let name = "agencies/DEA/credentials/admin-backend";
        for _ in 0..5 {
            token(&url, name, "ilk_guess").await.unwrap_err();
        }
        let locked = token(&url, name, &secret).await.unwrap_err();
        assert_eq!(reason(&locked), "CREDENTIAL_LOCKED");
        let until = CredentialServiceClient::new(dea)
            .get_credential(GetCredentialRequest { name: name.into() })
            .await
            .unwrap()
            .into_inner()
            .credential
            .unwrap()
            .lock_expire_time
            .expect("locked");

        let events = registry_events(&database, &registry, &audit).await;
        let on_credential: Vec<_> = events
            .iter()
            .filter(|e| e.resources.first().is_some_and(|r| r.resource == name))
            .filter(|e| e.method.ends_with("/CreateAccessToken"))
            // The logon that registered DEA's administrator comes first.
            .skip_while(|e| e.action == Action::LogonSuccess as i32)
            .collect();
        let kinds: Vec<(i32, &str)> =
            on_credential.iter().map(|e| (e.action, e.error_reason.as_str())).collect();
        let failure = (Action::LogonFailure as i32, "INVALID_CREDENTIALS");
        assert_eq!(
            kinds,
            [
                failure,
                failure,
                failure,
                failure,
                failure,
                (Action::CredentialChange as i32, ""),
                (Action::LogonFailure as i32, "CREDENTIAL_LOCKED")
            ],
            "the lock right after the fifth failure, in log order"
        );
        let lock = on_credential[5];
        assert_eq!(lock.outcome, Outcome::Allowed as i32);
        assert_eq!(lock.details.get("change").map(String::as_str), Some("locked"));
        let expires: prost_types::Timestamp =
            lock.details.get("lock_expire_time").expect("until when").parse().expect("an RFC 3339 time");
        assert_eq!(expires, until);
        assert_eq!(lock.resources[0].owners, ["agencies/DEA"]);
        assert!(lock.actor_agency.is_empty(), "the registry locks by policy: {lock:#?}");
    }
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
    use interlock_api::audit::v1::{Action, EventFilter};
    use interlock_tests::audit_events;

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
    let owned_by_dea = EventFilter { resource_owner: "agencies/DEA".into(), ..EventFilter::default() };
    let events = audit_events(channel(&server.url()).await, server.admin_token().await, owned_by_dea).await;
    assert!(events.iter().any(
        |e| e.action == Action::Create as i32 && e.resources.iter().any(|r| r.resource == "agencies/DEA")
    ));
    let logon_failures = EventFilter { actions: vec![Action::LogonFailure as i32], ..EventFilter::default() };
    let failures =
        audit_events(channel(&server.url()).await, server.admin_token().await, logon_failures).await;
    assert_eq!(failures.len(), 1, "the failed logon is audited once");
}

/// A registry on `database` whose outbox relay delivers to an audit service of its own on
/// `audit_database`, as a split deployment runs them; returns (registry, audit).
async fn audited_registry(
    database: &TestDatabase,
    audit_database: &TestDatabase,
) -> (TestServer, TestServer) {
    let audit_listen = format!("127.0.0.1:{}", interlock_tests::free_port());
    let registry = TestServer::start(&[
        "--service",
        "registry",
        "--database-url",
        database.url(),
        "--mesh-secret",
        MESH_SECRET,
        "--audit-address",
        &format!("http://{audit_listen}"),
    ])
    .await;
    let audit = TestServer::start(&[
        "--service",
        "audit",
        "--listen",
        &audit_listen,
        "--database-url",
        audit_database.url(),
        "--registry-address",
        &registry.url(),
        "--mesh-secret",
        MESH_SECRET,
        "--audit-checkpoint-interval-ms",
        "50",
    ])
    .await;
    (registry, audit)
}

/// Every registry event in the log, as the center auditor reads it through ListEvents, once the
/// registry's outbox on `database` has drained.
async fn registry_events(
    database: &TestDatabase,
    registry: &TestServer,
    audit: &TestServer,
) -> Vec<interlock_api::audit::v1::AuditEvent> {
    use interlock_api::audit::v1::{EventFilter, InterlockService};
    use interlock_tests::audit_events;

    let outbox = interlock_audit_client::SqlOutbox::new(
        interlock_storage::Database::open(database.url(), &interlock_registry::store::MIGRATIONS)
            .await
            .unwrap(),
    );
    let started = Instant::now();
    // The relay may be backing off (up to 5 s) from attempts made before the audit service started.
    while !outbox.pending(10).await.unwrap().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(30), "the registry's outbox does not drain");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let registry_only =
        EventFilter { services: vec![InterlockService::Registry as i32], ..EventFilter::default() };
    audit_events(channel(&audit.url()).await, registry.admin_token().await, registry_only).await
}

/// What one audited change must look like in the log.
struct Expected<'a> {
    /// The RPC, e.g. `AgencyService/UpdateAgency`.
    method: &'a str,
    action: interlock_api::audit::v1::Action,
    /// Acting agency code, officer (`x-interlock-user`, empty for none) and credential.
    actor: (&'a str, &'a str, &'a str),
    /// Every resource the event names, with its owners' codes.
    resources: &'a [(&'a str, &'a [&'a str])],
    /// A detail the event must carry.
    detail: Option<(&'a str, &'a str)>,
}

/// Checks that exactly one event records `expected` (told apart from the others by method,
/// acting agency, first resource and detail) and that its action, actor and resources are right.
fn assert_audited(events: &[interlock_api::audit::v1::AuditEvent], expected: &Expected<'_>) {
    let method = format!("/interlock.registry.v1.{}", expected.method);
    let (agency, user, credential) = expected.actor;
    let matching: Vec<_> = events
        .iter()
        .filter(|e| {
            e.method == method
                && e.actor_agency == format!("agencies/{agency}")
                && e.resources.first().is_some_and(|r| r.resource == expected.resources[0].0)
                && expected.detail.is_none_or(|(key, value)| e.details.get(key).is_some_and(|v| v == value))
        })
        .collect();
    let [event] = matching.as_slice() else {
        panic!(
            "{} events for {method} by {agency} on {}: {matching:#?}",
            matching.len(),
            expected.resources[0].0
        );
    };
    assert_eq!(event.action, expected.action as i32, "action of {method}");
    assert_eq!(
        (event.actor_user.as_str(), event.credential.as_str()),
        (user, credential),
        "actor of {method}"
    );
    let resources: Vec<(String, Vec<String>)> =
        event.resources.iter().map(|r| (r.resource.clone(), r.owners.clone())).collect();
    let wanted: Vec<(String, Vec<String>)> = expected
        .resources
        .iter()
        .map(|(name, owners)| {
            ((*name).to_owned(), owners.iter().map(|code| format!("agencies/{code}")).collect())
        })
        .collect();
    assert_eq!(resources, wanted, "resources of {method}");
}

/// Every kind of registry change reaches the audit service as an event of its own, with the
/// action the event schema names for it, the acting agency, officer and credential, and the
/// resources it changed: an agency's contacts; a credential issued, rotated and revoked; a
/// center member joining and leaving; an agreement proposed, signed by each party, suspended,
/// resumed, amended and revoked. The registry and the audit service run as separate servers on
/// their own databases, so every event travels the outbox relay and AppendEvents.
#[tokio::test]
async fn every_registry_change_reaches_the_audit_log_with_its_actor() {
    use interlock_api::audit::v1::Action;

    let mut audit_databases = TestDatabase::each_backend().await.into_iter();
    for database in TestDatabase::each_backend().await {
        let audit_database = audit_databases.next().expect("as many audit databases");
        let (registry, audit) = audited_registry(&database, &audit_database).await;
        let url = registry.url();
        let admin = registry.admin_channel().await;
        let (dea, _) =
            interlock_tests::register(&url, &admin, "DEA", "Drug Enforcement Administration").await;
        let (ice, _) =
            interlock_tests::register(&url, &admin, "ICE", "Immigration and Customs Enforcement").await;

        // DEA's administrator changes its duty desk's number.
        let mut update = agency("DEA", "Drug Enforcement Administration");
        update.name = "agencies/DEA".into();
        update.duty_desk.as_mut().unwrap().phone = "+12025550199".into();
        AgencyServiceClient::new(dea.clone())
            .update_agency(UpdateAgencyRequest {
                agency: Some(update),
                update_mask: Some(FieldMask { paths: vec!["duty_desk".into()] }),
            })
            .await
            .unwrap();

        // A credential issued, rotated and revoked.
        let (gateway, _) =
            interlock_tests::issue_credential(&dea, "DEA", "records-gateway", &[Role::AgencyMember]).await;
        CredentialServiceClient::new(dea.clone())
            .rotate_credential(RotateCredentialRequest {
                name: gateway.clone(),
                grace_period: None,
                etag: String::new(),
            })
            .await
            .unwrap();
        CredentialServiceClient::new(dea.clone())
            .revoke_credential(RevokeCredentialRequest {
                name: gateway.clone(),
                reason: "gateway decommissioned".into(),
                etag: String::new(),
            })
            .await
            .unwrap();

        // DEA joins and leaves IOC-2.
        let mut centers = CenterServiceClient::new(admin.clone());
        centers
            .create_center(CreateCenterRequest {
                center: Some(Center {
                    center_id: "ioc-2".into(),
                    display_name: "IOC-2".into(),
                    ..Center::default()
                }),
                request_id: String::new(),
            })
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
        centers
            .remove_center_member(RemoveCenterMemberRequest {
                name: "centers/ioc-2/members/DEA".into(),
                ..RemoveCenterMemberRequest::default()
            })
            .await
            .unwrap();

        // An agreement's lifecycle, each step by the party that takes it.
        let agreement = create(&dea, bilateral("DEA", "ICE")).await.unwrap().name;
        propose(&dea, &agreement).await;
        sign(&dea, &agreement).await.unwrap();
        sign(&ice, &agreement).await.unwrap();
        let mut agreements = AgreementServiceClient::new(ice.clone());
        agreements
            .suspend_agreement(SuspendAgreementRequest {
                name: agreement.clone(),
                reason: "joint review".into(),
                etag: String::new(),
            })
            .await
            .unwrap();
        agreements
            .resume_agreement(ResumeAgreementRequest {
                name: agreement.clone(),
                reason: "review closed".into(),
                etag: String::new(),
            })
            .await
            .unwrap();
        let mut amended = bilateral("DEA", "ICE");
        amended.name = agreement.clone();
        amended.etag = get_agreement(&dea, &agreement).await.etag;
        amended.display_name = "DEA–ICE memorandum of understanding, 2nd edition".into();
        AgreementServiceClient::new(dea.clone())
            .amend_agreement(AmendAgreementRequest {
                agreement: Some(amended),
                update_mask: Some(FieldMask { paths: vec!["display_name".into()] }),
                change_note: "new title".into(),
                ..AmendAgreementRequest::default()
            })
            .await
            .unwrap();
        AgreementServiceClient::new(dea.clone())
            .revoke_agreement(RevokeAgreementRequest {
                name: agreement.clone(),
                reason: "superseded".into(),
                etag: String::new(),
            })
            .await
            .unwrap();

        let events = registry_events(&database, &registry, &audit).await;
        let dea_admin = ("DEA", "chief", "agencies/DEA/credentials/admin-backend");
        let ice_admin = ("ICE", "chief", "agencies/ICE/credentials/admin-backend");
        let operator = ("INTERLOCK", "", interlock_tests::BOOTSTRAP_ADMIN);
        let parties: &[&str] = &["DEA", "ICE"];
        let membership = [("centers/ioc-2", &["INTERLOCK"][..]), ("agencies/DEA", &["DEA"][..])];
        let on_agreement = [(agreement.as_str(), parties)];
        let on_gateway = [(gateway.as_str(), &["DEA"][..])];
        let expectations = [
            Expected {
                method: "AgencyService/UpdateAgency",
                action: Action::Update,
                actor: dea_admin,
                resources: &[("agencies/DEA", &["DEA"])],
                detail: Some(("fields", "duty_desk")),
            },
            Expected {
                method: "CredentialService/CreateCredential",
                action: Action::CredentialChange,
                actor: dea_admin,
                resources: &on_gateway,
                detail: Some(("roles", "ROLE_AGENCY_MEMBER")),
            },
            Expected {
                method: "CredentialService/RotateCredential",
                action: Action::CredentialChange,
                actor: dea_admin,
                resources: &on_gateway,
                detail: None,
            },
            Expected {
                method: "CredentialService/RevokeCredential",
                action: Action::CredentialChange,
                actor: dea_admin,
                resources: &on_gateway,
                detail: Some(("reason", "gateway decommissioned")),
            },
            Expected {
                method: "CenterService/AddCenterMember",
                action: Action::PrivilegedAction,
                actor: operator,
                resources: &membership,
                detail: None,
            },
            Expected {
                method: "CenterService/RemoveCenterMember",
                action: Action::PrivilegedAction,
                actor: operator,
                resources: &membership,
                detail: None,
            },
            Expected {
                method: "AgreementService/ProposeAgreement",
                action: Action::AgreementChange,
                actor: dea_admin,
                resources: &on_agreement,
                detail: Some(("transition", "proposed")),
            },
            Expected {
                method: "AgreementService/SignAgreement",
                action: Action::AgreementChange,
                actor: dea_admin,
                resources: &on_agreement,
                detail: Some(("state", "proposed")),
            },
            Expected {
                method: "AgreementService/SignAgreement",
                action: Action::AgreementChange,
                actor: ice_admin,
                resources: &on_agreement,
                // The last signature is the one that made the agreement active.
                detail: Some(("state", "active")),
            },
            Expected {
                method: "AgreementService/SuspendAgreement",
                action: Action::AgreementChange,
                actor: ice_admin,
                resources: &on_agreement,
                detail: Some(("transition", "suspended")),
            },
            Expected {
                method: "AgreementService/ResumeAgreement",
                action: Action::AgreementChange,
                actor: ice_admin,
                resources: &on_agreement,
                // Why the suspension was lifted is audited (ResumeAgreementRequest.reason).
                detail: Some(("reason", "review closed")),
            },
            Expected {
                method: "AgreementService/AmendAgreement",
                action: Action::AgreementChange,
                actor: dea_admin,
                resources: &on_agreement,
                detail: Some(("pending_version", "2")),
            },
            Expected {
                method: "AgreementService/RevokeAgreement",
                action: Action::AgreementChange,
                actor: dea_admin,
                resources: &on_agreement,
                detail: Some(("transition", "revoked")),
            },
        ];
        for expected in &expectations {
            assert_audited(&events, expected);
        }
        // Both signatures say what they were.
        let signatures = events
            .iter()
            .filter(|e| e.method.ends_with("/SignAgreement"))
            .map(|e| e.details.get("transition").map(String::as_str))
            .collect::<Vec<_>>();
        assert_eq!(signatures, [Some("signed"), Some("signed")]);
    }
}

async fn get_agreement(channel: &AuthedChannel, name: &str) -> Agreement {
    AgreementServiceClient::new(channel.clone())
        .get_agreement(GetAgreementRequest { name: name.into() })
        .await
        .unwrap()
        .into_inner()
        .agreement
        .unwrap()
}

async fn versions_of(channel: &AuthedChannel, name: &str) -> Vec<AgreementVersion> {
    AgreementServiceClient::new(channel.clone())
        .list_agreement_versions(ListAgreementVersionsRequest { parent: name.into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .versions
}

/// (signing agency, signing user, version signed) of each signature, in signing order.
fn signers(signatures: &[Signature]) -> Vec<(&str, &str, i64)> {
    signatures.iter().map(|s| (s.agency.as_str(), s.user.as_str(), s.version)).collect()
}

/// The grant `consumer` holds from `provider`.
async fn grant_from(channel: &AuthedChannel, consumer: &str, provider: &str) -> Grant {
    let grants = grants_of(channel, consumer).await;
    let from: Vec<&Grant> = grants.iter().filter(|g| g.provider == format!("agencies/{provider}")).collect();
    assert_eq!(from.len(), 1, "{consumer} holds one grant from {provider}: {grants:#?}");
    from[0].clone()
}

/// An amendment of an active agreement is a new version that every party signs; until the last
/// signature the version in force keeps applying, and afterwards the new one does — in the
/// agreement, in the compiled grants and in the version history, with who signed which version
/// when.
#[tokio::test]
async fn an_amendment_comes_into_force_when_every_party_has_signed_it() {
    for database in TestDatabase::each_backend().await {
        let mesh = Mesh::start(&database).await;
        let (dea, _) = register(&mesh, "DEA", "Drug Enforcement Administration").await;
        let (ice, _) = register(&mesh, "ICE", "Immigration and Customs Enforcement").await;
        let name = create(&dea, bilateral("DEA", "ICE")).await.unwrap().name;
        propose(&dea, &name).await;
        sign(&dea, &name).await.unwrap();
        let original = sign(&ice, &name).await.unwrap();
        assert_eq!((original.state, original.version), (AgreementState::Active as i32, 1));

        // DEA proposes full access under a new title.
        let mut terms = bilateral("DEA", "ICE");
        terms.name = name.clone();
        terms.etag = original.etag.clone();
        terms.display_name = "DEA–ICE memorandum of understanding, full access".into();
        terms.scope = Some(scope(AccessLevel::Full));
        let amended = AgreementServiceClient::new(dea.clone())
            .amend_agreement(AmendAgreementRequest {
                agreement: Some(terms),
                update_mask: Some(FieldMask {
                    paths: vec![
                        "display_name".into(),
                        "scope.access_level".into(),
                        "scope.redacted_fields".into(),
                    ],
                }),
                change_note: "Full access after the joint review".into(),
                ..AmendAgreementRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        let proposed = amended.version.unwrap();
        assert_eq!((proposed.version, proposed.state), (2, AgreementVersionState::Proposed as i32));
        assert_eq!(proposed.name, format!("{name}/versions/2"));
        assert!(proposed.signatures.is_empty());

        // Version 1 stays in force while the amendment awaits signatures, even after one of them.
        let in_force_until_signed = |agreement: &Agreement, awaiting: &[&str]| {
            assert_eq!(agreement.state, AgreementState::Active as i32);
            assert_eq!((agreement.version, agreement.pending_version), (1, 2));
            assert_eq!(agreement.display_name, original.display_name);
            assert_eq!(agreement.scope, original.scope);
            assert_eq!(agreement.signatures, original.signatures, "the signatures of version 1");
            assert_eq!(agreement.pending_signers, awaiting);
        };
        in_force_until_signed(&amended.agreement.unwrap(), &["agencies/DEA", "agencies/ICE"]);
        in_force_until_signed(&get_agreement(&ice, &name).await, &["agencies/DEA", "agencies/ICE"]);
        let dea_signed = AgreementServiceClient::new(dea.clone())
            .sign_agreement(SignAgreementRequest { name: name.clone(), version: 2, etag: String::new() })
            .await
            .unwrap()
            .into_inner();
        in_force_until_signed(&dea_signed.agreement.unwrap(), &["agencies/ICE"]);
        in_force_until_signed(&get_agreement(&ice, &name).await, &["agencies/ICE"]);
        for (consumer, provider) in [("ICE", "DEA"), ("DEA", "ICE")] {
            let grant = grant_from(&mesh.admin().await, consumer, provider).await;
            assert_eq!((grant.agreement_version, grant.access_level), (1, AccessLevel::Redacted as i32));
            assert_eq!(grant.redacted_fields, ["persons[role=ENTITY_ROLE_INFORMANT]"]);
        }

        // ICE's signature, the last one, brings version 2 into force.
        let ice_signed = AgreementServiceClient::new(ice.clone())
            .sign_agreement(SignAgreementRequest { name: name.clone(), version: 2, etag: String::new() })
            .await
            .unwrap()
            .into_inner();
        let now_in_force = get_agreement(&dea, &name).await;
        assert_eq!(ice_signed.agreement.as_ref(), Some(&now_in_force));
        assert_eq!(now_in_force.state, AgreementState::Active as i32);
        assert_eq!((now_in_force.version, now_in_force.pending_version), (2, 0));
        assert_eq!(now_in_force.display_name, "DEA–ICE memorandum of understanding, full access");
        assert_eq!(now_in_force.scope, Some(scope(AccessLevel::Full)));
        assert!(now_in_force.pending_signers.is_empty());
        assert_eq!(
            signers(&now_in_force.signatures),
            [
                ("agencies/DEA", "agencies/DEA/users/chief", 2),
                ("agencies/ICE", "agencies/ICE/users/chief", 2)
            ],
            "the signatures of version 2"
        );
        assert_eq!(now_in_force.activate_time, original.activate_time, "first activation stays");
        for (consumer, provider) in [("ICE", "DEA"), ("DEA", "ICE")] {
            let grant = grant_from(&mesh.admin().await, consumer, provider).await;
            assert_eq!((grant.agreement_version, grant.access_level), (2, AccessLevel::Full as i32));
            assert!(grant.redacted_fields.is_empty());
        }

        // The history: both versions with their own signatures, readable by every party.
        let versions = versions_of(&ice, &name).await;
        assert_eq!(versions, versions_of(&dea, &name).await);
        let [first, second] = versions.as_slice() else { panic!("two versions: {versions:#?}") };
        assert_eq!((first.version, first.state), (1, AgreementVersionState::Superseded as i32));
        assert_eq!((second.version, second.state), (2, AgreementVersionState::InForce as i32));
        assert_eq!(first.signatures, original.signatures);
        assert_eq!(
            signers(&first.signatures),
            [
                ("agencies/DEA", "agencies/DEA/users/chief", 1),
                ("agencies/ICE", "agencies/ICE/users/chief", 1)
            ]
        );
        assert_eq!(second.signatures, now_in_force.signatures);
        assert_eq!(second.signatures[0].sign_time, dea_signed.signature.unwrap().sign_time);
        assert_eq!(second.signatures[1].sign_time, ice_signed.signature.unwrap().sign_time);
        // Signed after it was proposed; in force at the last signature, when version 1 retired.
        let micros = |time: &Option<prost_types::Timestamp>| {
            time.as_ref().map(|t| t.seconds * 1_000_000 + i64::from(t.nanos / 1000)).expect("a time")
        };
        assert!(micros(&second.signatures[0].sign_time) >= micros(&second.propose_time));
        assert!(micros(&second.signatures[0].sign_time) <= micros(&second.signatures[1].sign_time));
        assert_eq!(second.in_force_time, second.signatures[1].sign_time);
        assert_eq!(first.retire_time, second.in_force_time);
        assert_eq!(first.in_force_time, original.activate_time);
        assert_eq!(
            (second.change_note.as_str(), second.author.as_str()),
            ("Full access after the joint review", "agencies/DEA")
        );
        assert_eq!(first.author, "agencies/DEA");
        assert_eq!(
            (first.display_name.as_str(), first.scope.as_ref()),
            (original.display_name.as_str(), original.scope.as_ref())
        );
    }
}
