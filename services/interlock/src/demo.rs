//! `interlock demo`: the article's scenario, end to end, on a fresh embedded mesh.
//!
//! In 2009 ICE agreed to add over 25 million records to the OCDETF Fusion Center (FBI, DEA, ATF
//! and others) and joined IOC-2, after bilateral DEA–ICE and ATF–ICE agreements. The demo
//! replays that story against the real services and prints what each step returns, then shows
//! each agency's contributor view of the audit log and verifies the log.

use std::collections::BTreeMap;
use std::time::Duration;

use interlock_api::audit::v1::audit_service_client::AuditServiceClient;
use interlock_api::audit::v1::{
    Action, AuditEvent, EventFilter, GetLatestCheckpointRequest, GetLogInfoRequest, ListEventsRequest,
};
use interlock_api::common::v1::{AccessLevel, Contact, Purpose, RecordCategory, SensitivityLevel};
use interlock_api::registry::v1::agency_service_client::AgencyServiceClient;
use interlock_api::registry::v1::agreement_service_client::AgreementServiceClient;
use interlock_api::registry::v1::authentication_service_client::AuthenticationServiceClient;
use interlock_api::registry::v1::center_service_client::CenterServiceClient;
use interlock_api::registry::v1::credential_service_client::CredentialServiceClient;
use interlock_api::registry::v1::grant_service_client::GrantServiceClient;
use interlock_api::registry::v1::*;
use interlock_auth::{CallerMetadata, Purpose as CallPurpose};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::config::{ServeConfig, ServiceKind};
use crate::serve::Mesh;

type Authed = InterceptedService<Channel, CallerMetadata>;

/// The agencies of the article, with their duty desks.
const AGENCIES: &[(&str, &str, &str, &str)] = &[
    ("ICE", "U.S. Immigration and Customs Enforcement", "Department of Homeland Security", "+12025550101"),
    ("DOJ-OCDETF", "Organized Crime Drug Enforcement Task Forces", "Department of Justice", "+12025550102"),
    ("FBI", "Federal Bureau of Investigation", "Department of Justice", "+12025550103"),
    ("DEA", "Drug Enforcement Administration", "Department of Justice", "+12025550104"),
    ("ATF", "Bureau of Alcohol, Tobacco, Firearms and Explosives", "Department of Justice", "+12025550105"),
];

const FUSION_CENTER: &str = "ocdetf-fusion-center";
const IOC2: &str = "ioc-2";

pub async fn run(mut config: ServeConfig) -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    // The demo is the whole mesh on a fresh embedded store and a free port, whatever the
    // environment says for `interlock serve` (an INTERLOCK_LISTEN, a database or another
    // registry's address must not leak into it).
    config.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    config.data_dir = data.path().to_owned();
    config.service = ServiceKind::All;
    config.database_url = None;
    config.registry_address = None;
    config.records_address = None;
    config.deconfliction_address = None;
    config.audit_address = None;
    // The demo is a plaintext walk-through on loopback: TLS settings meant for `serve` (perhaps
    // from the environment) would only stop its own clients from connecting.
    config.tls_certificate = None;
    config.tls_key = None;
    config.tls_client_ca = None;
    let audit_origin = config.audit_origin.clone();
    let mesh = Mesh::start(config).await?;
    let url = mesh.url();
    println!("Interlock demo: the whole mesh on a fresh embedded store at {url}");

    step("The mesh is up");
    let channel = Endpoint::from_shared(url.clone())?.connect().await?;
    let mut health = HealthClient::new(channel.clone());
    for service in ServiceKind::EACH {
        let status = wait_until_serving(&mut health, service.name()).await?;
        println!("   {:<14} {status}", service.name());
    }

    step("The center administrator signs in with the bootstrap credential");
    let secret = mesh.bootstrap_admin_secret().unwrap_or_default().to_owned();
    let admin_token = token(&channel, interlock_registry::BOOTSTRAP_ADMIN_CREDENTIAL, &secret).await?;
    let admin = InterceptedService::new(channel.clone(), CallerMetadata::bearer(admin_token));

    step("The article's agencies get their registry entries, each with a 24/7 duty desk");
    let mut agencies = BTreeMap::new();
    for (code, name, department, phone) in AGENCIES {
        agencies.insert(*code, register_agency(&channel, &admin, code, name, department, phone).await?);
    }
    print_agencies(&admin).await?;
    println!("   each agency received one administrator credential (secret shown once, stored as a hash)");
    println!("   and registered its own administrator, who alone can sign for it");

    step("Bad input is refused with every problem named, and nothing is stored");
    let refused = AgencyServiceClient::new(admin.clone())
        .create_agency(CreateAgencyRequest {
            agency: Some(Agency { code: "ice".into(), ..Agency::default() }),
            request_id: String::new(),
        })
        .await
        .expect_err("an invalid agency must be refused");
    println!("   {:?}: {}", refused.code(), refused.message());

    step("Centers: the OCDETF Fusion Center and IOC-2");
    let mut centers = CenterServiceClient::new(admin.clone());
    for (id, name, members) in [
        (FUSION_CENTER, "OCDETF Fusion Center", &["FBI", "DEA", "ATF", "DOJ-OCDETF", "ICE"][..]),
        (
            IOC2,
            "International Organized Crime Intelligence and Operations Center",
            &["FBI", "DEA", "ATF", "ICE", "DOJ-OCDETF"][..],
        ),
    ] {
        let center = Center { center_id: id.into(), display_name: name.into(), ..Center::default() };
        centers
            .create_center(CreateCenterRequest { center: Some(center), request_id: format!("demo-{id}") })
            .await?;
        for code in members {
            centers
                .add_center_member(AddCenterMemberRequest {
                    center: format!("centers/{id}"),
                    agency: format!("agencies/{code}"),
                    ..AddCenterMemberRequest::default()
                })
                .await?;
        }
        println!("   centers/{id:<22} members: {}", members.join(", "));
    }
    println!("   membership alone grants nothing: it makes an agency a party to the center's agreements");

    step("Bilateral agreements DEA–ICE and ATF–ICE: proposed, then signed by each party");
    for provider in ["DEA", "ATF"] {
        let terms = bilateral(provider, "ICE");
        let draft = agreements(&agencies[provider])
            .create_agreement(CreateAgreementRequest { agreement: Some(terms), request_id: String::new() })
            .await?
            .into_inner()
            .agreement
            .unwrap_or_default();
        agreements(&agencies[provider])
            .propose_agreement(ProposeAgreementRequest { name: draft.name.clone(), etag: String::new() })
            .await?;
        let half = sign(&agencies[provider], &draft.name).await?;
        println!(
            "   {}: signed by {provider} → {} (waiting for {})",
            draft.display_name,
            state(half.state),
            half.pending_signers.join(", ")
        );
        let active = sign(&agencies["ICE"], &draft.name).await?;
        println!("   {}: signed by ICE → {}", draft.display_name, state(active.state));
    }

    step("A center administrator cannot sign for an agency");
    let listed =
        agreements(&agencies["ICE"]).list_agreements(ListAgreementsRequest::default()).await?.into_inner();
    let dea_ice =
        listed.agreements.iter().find(|a| a.display_name.starts_with("DEA")).cloned().unwrap_or_default();
    let refused = sign(&admin, &dea_ice.name).await.expect_err("a center administrator is not a party");
    println!("   {:?}: {}", refused.code(), refused.message());

    step("The Fusion Center agreement: what it would open, then every member signs");
    let fusion = Agreement {
        display_name: "OCDETF Fusion Center pointer sharing".into(),
        parties: vec![AgreementParty {
            party: format!("centers/{FUSION_CENTER}"),
            role: PartyRole::Both as i32,
        }],
        scope: Some(AgreementScope {
            categories: vec![RecordCategory::IntelligenceReport as i32, RecordCategory::Seizure as i32],
            sensitivity_ceiling: SensitivityLevel::LawEnforcementSensitive as i32,
            purposes: vec![Purpose::Investigation as i32, Purpose::Deconfliction as i32],
            access_level: AccessLevel::Pointer as i32,
            ..AgreementScope::default()
        }),
        ..Agreement::default()
    };
    let ocdetf = &agencies["DOJ-OCDETF"];
    let fusion = agreements(ocdetf)
        .create_agreement(CreateAgreementRequest { agreement: Some(fusion), request_id: String::new() })
        .await?
        .into_inner()
        .agreement
        .unwrap_or_default();
    agreements(ocdetf)
        .propose_agreement(ProposeAgreementRequest { name: fusion.name.clone(), etag: String::new() })
        .await?;
    let preview = agreements(ocdetf)
        .preview_agreement(PreviewAgreementRequest { name: fusion.name.clone(), ..Default::default() })
        .await?
        .into_inner();
    let opened_for_ice = preview.changes.iter().filter(|c| c.consumer == "agencies/ICE").count();
    println!(
        "   what-if: {} category grants would open, {opened_for_ice} of them for ICE (pointer only)",
        preview.changes.len()
    );
    for code in ["FBI", "DEA", "ATF", "DOJ-OCDETF", "ICE"] {
        let signed = sign(&agencies[code], &fusion.name).await?;
        println!("   signed by {code:<10} → {}", state(signed.state));
    }

    step("What ICE may now see, as the records service will apply it");
    print_grants(&admin, "ICE").await?;

    step("DEA suspends DEA–ICE: its grants to ICE stop at once; only DEA can lift its suspension");
    agreements(&agencies["DEA"])
        .suspend_agreement(SuspendAgreementRequest {
            name: dea_ice.name.clone(),
            reason: "internal review".into(),
            etag: String::new(),
        })
        .await?;
    print_grants(&admin, "ICE").await?;
    let refused = agreements(&agencies["ICE"])
        .resume_agreement(ResumeAgreementRequest {
            name: dea_ice.name.clone(),
            reason: "we need the data back".into(),
            etag: String::new(),
        })
        .await
        .expect_err("ICE cannot lift DEA's suspension");
    println!("   ICE tries to resume it: {:?}: {}", refused.code(), refused.message());
    agreements(&agencies["DEA"])
        .resume_agreement(ResumeAgreementRequest {
            name: dea_ice.name.clone(),
            reason: "review closed".into(),
            etag: String::new(),
        })
        .await?;
    println!("   DEA resumes it: DEA–ICE is ACTIVE again");

    records_part(&channel, &agencies, &dea_ice.name).await?;
    deconfliction_part(&agencies).await?;
    credentials_part(&channel, &agencies).await?;

    step("The audit log: what each agency's contributor view shows");
    wait_until_outboxes_delivered(data.path()).await?;
    println!("   every change and logon above is an event; each agency administrator reads the events");
    println!("   others caused on its data and registrations (its own actions are in the log too):");
    for (code, channel) in &agencies {
        print_contributor_view(code, channel).await?;
    }

    step("The audit log verifies (as `interlock audit verify` does, on the demo's data folder)");
    wait_until_checkpointed(&admin).await?;
    mesh.shutdown().await?;
    crate::audit_cli::verify(crate::audit_cli::VerifyArgs {
        database_url: None,
        data_dir: data.path().to_owned(),
        verifier_key: None,
        audit_origin,
    })
    .await?;
    Ok(())
}

/// Waits until every service's outbox is delivered to the audit service, so the log holds every
/// event of the steps above before it is read.
async fn wait_until_outboxes_delivered(data_dir: &std::path::Path) -> anyhow::Result<()> {
    use interlock_audit_client::SqlOutbox;
    use interlock_storage::Database;
    let open = |service: &str| format!("sqlite://{}", data_dir.join(format!("{service}.db")).display());
    let outboxes = [
        SqlOutbox::new(Database::open(&open("registry"), &interlock_registry::store::MIGRATIONS).await?),
        SqlOutbox::new(Database::open(&open("records"), &interlock_records::MIGRATIONS).await?),
        SqlOutbox::new(
            Database::open(&open("deconfliction"), &interlock_deconfliction::store::MIGRATIONS).await?,
        ),
    ];
    for _ in 0..200 {
        let mut waiting = 0;
        for outbox in &outboxes {
            waiting += outbox.pending(1).await?.len();
        }
        if waiting == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the audit events were not delivered within 10 seconds")
}

/// Waits until a signed checkpoint covers every durable event, so verification checks them all.
async fn wait_until_checkpointed(admin: &Authed) -> anyhow::Result<()> {
    let mut audit = AuditServiceClient::new(admin.clone());
    for _ in 0..100 {
        let size = audit
            .get_log_info(GetLogInfoRequest {})
            .await?
            .into_inner()
            .log_info
            .unwrap_or_default()
            .tree_size;
        let latest = audit.get_latest_checkpoint(GetLatestCheckpointRequest {}).await?.into_inner();
        if latest.checkpoint.is_some_and(|checkpoint| checkpoint.tree_size >= size) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("no checkpoint covered the log within 10 seconds")
}

/// The last few events others caused on `code`'s data, as its administrator reads them.
async fn print_contributor_view(code: &str, channel: &Authed) -> anyhow::Result<()> {
    let own = format!("agencies/{code}");
    let filter = EventFilter { resource_owner: own.clone(), ..EventFilter::default() };
    let events = AuditServiceClient::new(channel.clone())
        .list_events(ListEventsRequest { filter: Some(filter), page_size: 1_000, ..Default::default() })
        .await?
        .into_inner()
        .events;
    let by_others: Vec<&AuditEvent> = events.iter().filter(|event| event.actor_agency != own).collect();
    let mut actors: BTreeMap<&str, usize> = BTreeMap::new();
    for event in &by_others {
        *actors.entry(event.actor_agency.trim_start_matches("agencies/")).or_default() += 1;
    }
    let actors: Vec<String> = actors.iter().map(|(actor, count)| format!("{actor} {count}")).collect();
    println!(
        "   {code}: {} events by others on its data ({}); the latest:",
        by_others.len(),
        actors.join(", ")
    );
    for event in by_others.iter().rev().take(3).rev() {
        let action =
            Action::try_from(event.action).map_or("?", |a| a.as_str_name().trim_start_matches("ACTION_"));
        let resource = event.resources.iter().find(|r| r.owners.contains(&own));
        let (resource, agreement) = resource.map_or(("", String::new()), |r| {
            let agreement = if r.agreement.is_empty() {
                String::new()
            } else {
                format!(" under {} v{}", r.agreement, r.agreement_version)
            };
            (r.resource.as_str(), agreement)
        });
        let purpose = Purpose::try_from(event.purpose)
            .ok()
            .filter(|p| *p != Purpose::Unspecified)
            .map_or(String::new(), |p| {
                format!(" for {}", p.as_str_name().trim_start_matches("PURPOSE_").to_lowercase())
            });
        let who =
            if event.actor_user.is_empty() { event.credential.as_str() } else { event.actor_user.as_str() };
        println!(
            "     {} {} ({who}): {action} {resource}{agreement}{purpose}",
            time_of(event),
            event.actor_agency.trim_start_matches("agencies/"),
        );
    }
    Ok(())
}

fn time_of(event: &AuditEvent) -> String {
    event
        .time
        .as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map_or_else(String::new, |t| t.format("%H:%M:%S").to_string())
}

fn step(title: &str) {
    println!("\n== {title}");
}

fn agreements(channel: &Authed) -> AgreementServiceClient<Authed> {
    AgreementServiceClient::new(channel.clone())
}

/// Signs version 1: the demo signs every agreement as first proposed.
async fn sign(channel: &Authed, name: &str) -> Result<Agreement, tonic::Status> {
    Ok(agreements(channel)
        .sign_agreement(SignAgreementRequest { name: name.into(), version: 1, etag: String::new() })
        .await?
        .into_inner()
        .agreement
        .unwrap_or_default())
}

fn state(state: i32) -> &'static str {
    AgreementState::try_from(state).map_or("?", |s| s.as_str_name().trim_start_matches("AGREEMENT_STATE_"))
}

async fn token(channel: &Channel, credential: &str, secret: &str) -> Result<String, tonic::Status> {
    Ok(AuthenticationServiceClient::new(channel.clone())
        .create_access_token(CreateAccessTokenRequest {
            credential: credential.into(),
            secret: secret.into(),
            ttl: None,
        })
        .await?
        .into_inner()
        .access_token)
}

/// Registers an agency, issues its first administrator credential, registers its administrator
/// user, and returns a channel acting as that administrator.
async fn register_agency(
    channel: &Channel,
    admin: &Authed,
    code: &str,
    name: &str,
    department: &str,
    phone: &str,
) -> anyhow::Result<Authed> {
    AgencyServiceClient::new(admin.clone())
        .create_agency(CreateAgencyRequest {
            agency: Some(agency(code, name, department, phone)),
            request_id: format!("demo-{code}"),
        })
        .await?;
    let issued = CredentialServiceClient::new(admin.clone())
        .create_credential(CreateCredentialRequest {
            parent: format!("agencies/{code}"),
            credential: Some(Credential {
                credential_id: "administration".into(),
                display_name: format!("{code} administration backend"),
                roles: vec![Role::AgencyAdministrator as i32],
                ..Credential::default()
            }),
            request_id: String::new(),
        })
        .await?
        .into_inner();
    let credential = issued.credential.unwrap_or_default().name;
    let token = token(channel, &credential, &issued.secret).await?;
    let acting = InterceptedService::new(
        channel.clone(),
        CallerMetadata::bearer(token).on_behalf_of("chief", CallPurpose::Investigation),
    );
    AgencyServiceClient::new(acting.clone())
        .create_user(CreateUserRequest {
            parent: format!("agencies/{code}"),
            user: Some(User {
                user_id: "chief".into(),
                display_name: format!("{code} chief of operations"),
                roles: vec![Role::AgencyAdministrator as i32],
                ..User::default()
            }),
            request_id: String::new(),
        })
        .await?;
    Ok(acting)
}

fn bilateral(provider: &str, consumer: &str) -> Agreement {
    Agreement {
        display_name: format!("{provider}–{consumer} information sharing"),
        parties: vec![
            AgreementParty { party: format!("agencies/{provider}"), role: PartyRole::Both as i32 },
            AgreementParty { party: format!("agencies/{consumer}"), role: PartyRole::Both as i32 },
        ],
        scope: Some(AgreementScope {
            categories: vec![
                RecordCategory::InvestigationReport as i32,
                RecordCategory::FinancialInvestigation as i32,
            ],
            sensitivity_ceiling: SensitivityLevel::LawEnforcementSensitive as i32,
            purposes: vec![Purpose::Investigation as i32, Purpose::Deconfliction as i32],
            access_level: AccessLevel::Redacted as i32,
            redacted_fields: vec![
                "persons[role=ENTITY_ROLE_INFORMANT]".into(),
                "persons[role=ENTITY_ROLE_VICTIM]".into(),
            ],
            ..AgreementScope::default()
        }),
        ..Agreement::default()
    }
}

async fn wait_until_serving(
    health: &mut HealthClient<Channel>,
    service: &str,
) -> anyhow::Result<&'static str> {
    for _ in 0..100 {
        let status = health.check(HealthCheckRequest { service: service.into() }).await?.into_inner().status;
        if status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32 {
            return Ok("SERVING");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("{service} did not become healthy")
}

fn agency(code: &str, name: &str, department: &str, phone: &str) -> Agency {
    Agency {
        code: code.into(),
        display_name: name.into(),
        parent_department: department.into(),
        jurisdiction: "United States".into(),
        duty_desk: Some(Contact {
            name: format!("{code} Duty Desk"),
            phone: phone.into(),
            email: format!("dutydesk@{}.example.gov", code.to_ascii_lowercase()),
            around_the_clock: true,
        }),
        ..Agency::default()
    }
}

async fn print_agencies(admin: &Authed) -> anyhow::Result<()> {
    let listed = AgencyServiceClient::new(admin.clone())
        .list_agencies(ListAgenciesRequest::default())
        .await?
        .into_inner();
    println!("   {:<12} {:<52} {:<32} duty desk", "code", "name", "department");
    for agency in listed.agencies {
        let desk = agency.duty_desk.unwrap_or_default();
        println!(
            "   {:<12} {:<52} {:<32} {} {}",
            agency.code, agency.display_name, agency.parent_department, desk.name, desk.phone
        );
    }
    Ok(())
}

async fn print_grants(admin: &Authed, consumer: &str) -> anyhow::Result<()> {
    let grants = GrantServiceClient::new(admin.clone())
        .list_grants(ListGrantsRequest { consumer: format!("agencies/{consumer}"), ..Default::default() })
        .await?
        .into_inner()
        .grants;
    println!("   {:<12} {:<9} {:<60} withheld", "provider", "access", "categories");
    for grant in grants {
        let access = AccessLevel::try_from(grant.access_level)
            .map_or("?", |a| a.as_str_name().trim_start_matches("ACCESS_LEVEL_"));
        let categories: Vec<&str> = grant
            .categories
            .iter()
            .filter_map(|c| RecordCategory::try_from(*c).ok())
            .map(|c| c.as_str_name().trim_start_matches("RECORD_CATEGORY_"))
            .collect();
        println!(
            "   {:<12} {:<9} {:<60} {}",
            grant.provider.trim_start_matches("agencies/"),
            access,
            categories.join(", "),
            grant.redacted_fields.join(", ")
        );
    }
    Ok(())
}

/// ICE and DEA on the same phone; an ATF raid planned on top of an FBI surveillance.
async fn deconfliction_part(agencies: &BTreeMap<&str, Authed>) -> anyhow::Result<()> {
    use interlock_api::common::v1::{Selector, SelectorKind};
    use interlock_api::deconfliction::v1 as dx;
    use interlock_api::deconfliction::v1::deconfliction_service_client::DeconflictionServiceClient;

    let client = |code: &str| DeconflictionServiceClient::new(agencies[code].clone());
    let desk = |code: &str, name: &str| {
        Some(Contact {
            name: format!("{code} {name}"),
            phone: "+12145550100".into(),
            email: String::new(),
            around_the_clock: true,
        })
    };
    let phone =
        |value: &str| Selector { kind: SelectorKind::Phone as i32, value: value.into(), region: "US".into() };

    step("Deconfliction: DEA and ICE register the same phone, written two different ways");
    let mut dea_watch =
        client("DEA").watch_conflicts(dx::WatchConflictsRequest::default()).await?.into_inner();
    let dea = client("DEA")
        .create_target(dx::CreateTargetRequest {
            target: Some(dx::Target {
                case_reference: "DEA-DAL-2026-17".into(),
                case_agent: desk("DEA", "SA Rivera"),
                duty_desk: desk("DEA", "Dallas Duty Desk"),
                officer_safety_flags: vec![dx::OfficerSafetyFlag::ArmedAndDangerous as i32],
                selectors: vec![phone("(214) 555-0147")],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await?
        .into_inner();
    let dea_number = dea.target.map(|t| t.deconfliction_number).unwrap_or_default();
    println!("   DEA registers (214) 555-0147 → {dea_number}: {}", receipt(dea.status));
    let ice = client("ICE")
        .create_target(dx::CreateTargetRequest {
            target: Some(dx::Target {
                case_reference: "ICE-HSI-2026-88".into(),
                case_agent: desk("ICE", "SA Chen"),
                duty_desk: desk("ICE", "HSI Dallas Duty Desk"),
                selectors: vec![phone("+1 214 555 0147")],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await?
        .into_inner();
    println!("   ICE registers +1 214 555 0147 → {}", receipt(ice.status));
    for conflict in &ice.conflicts {
        print_other_side("ICE", conflict);
    }
    if let Ok(Ok(Some(event))) = tokio::time::timeout(Duration::from_secs(5), dea_watch.message()).await {
        let conflict = event.conflict.unwrap_or_default();
        println!("   DEA's watch receives {} for {}", event_name(event.event_type), conflict.name);
        print_other_side("DEA", &conflict);
    }
    println!("   neither side sees the other's case; the hub stored only keyed digests of the number");

    step("Event deconfliction: ATF plans a raid 500 m from an FBI surveillance, at the same time");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    let at = |minutes: i64| Some(prost_types::Timestamp { seconds: now + minutes * 60, nanos: 0 });
    let operation = |case: &str, kind: dx::OperationType, latitude: f64, start: i64, end: i64, code: &str| {
        dx::Operation {
            case_reference: case.into(),
            operation_type: kind as i32,
            location: Some(dx::OperationLocation { latitude, longitude: -96.797, ..Default::default() }),
            radius_meters: 300,
            start_time: at(start),
            end_time: at(end),
            case_agent: desk(code, "case agent"),
            duty_desk: desk(code, "Duty Desk"),
            officer_count: 12,
            undercover_officers_present: code == "FBI",
            ..Default::default()
        }
    };
    let fbi = client("FBI")
        .create_operation(dx::CreateOperationRequest {
            operation: Some(operation(
                "FBI-DL-2026-5",
                dx::OperationType::Surveillance,
                32.7812,
                60,
                600,
                "FBI",
            )),
            request_id: String::new(),
        })
        .await?
        .into_inner();
    println!("   FBI surveillance (undercover officers present) → {}", receipt(fbi.status));
    let atf = client("ATF")
        .create_operation(dx::CreateOperationRequest {
            operation: Some(operation("ATF-DAL-2026-3", dx::OperationType::Raid, 32.7767, 90, 150, "ATF")),
            request_id: String::new(),
        })
        .await?
        .into_inner();
    println!("   ATF raid → {}", receipt(atf.status));
    for conflict in &atf.conflicts {
        print_other_side("ATF", conflict);
    }
    Ok(())
}

fn receipt(status: i32) -> &'static str {
    interlock_api::deconfliction::v1::ReceiptStatus::try_from(status)
        .map_or("?", |s| s.as_str_name().trim_start_matches("RECEIPT_STATUS_"))
}

fn event_name(event_type: i32) -> &'static str {
    interlock_api::deconfliction::v1::ConflictEventType::try_from(event_type)
        .map_or("?", |e| e.as_str_name().trim_start_matches("CONFLICT_EVENT_TYPE_"))
}

fn print_other_side(viewer: &str, conflict: &interlock_api::deconfliction::v1::Conflict) {
    use interlock_api::deconfliction::v1::conflict_match::Match;
    for party in conflict.parties.iter().filter(|p| !p.caller) {
        let desk = party.duty_desk.clone().unwrap_or_default();
        let flags: Vec<&str> = party
            .officer_safety_flags
            .iter()
            .filter_map(|f| interlock_api::deconfliction::v1::OfficerSafetyFlag::try_from(*f).ok())
            .map(|f| f.as_str_name().trim_start_matches("OFFICER_SAFETY_FLAG_"))
            .collect();
        println!(
            "   {viewer} is told to call {} {} ({}) — {} {}{}{}",
            party.agency.trim_start_matches("agencies/"),
            party.deconfliction_number,
            conflict.name,
            desk.name,
            desk.phone,
            if flags.is_empty() { String::new() } else { format!(", officer safety: {}", flags.join(", ")) },
            if party.undercover_officers_present { ", undercover officers present" } else { "" },
        );
    }
    for found in &conflict.matches {
        match &found.r#match {
            Some(Match::Selector(selector)) => {
                let kind = interlock_api::common::v1::SelectorKind::try_from(selector.kind)
                    .map_or("?", |k| k.as_str_name().trim_start_matches("SELECTOR_KIND_"));
                println!("      matched on: the same {kind}");
            }
            Some(Match::Proximity(p)) => println!(
                "      matched on: {:.0} m apart (combined radius {:.0} m), overlapping in time",
                p.distance_meters, p.combined_radius_meters
            ),
            Some(Match::Person(p)) => {
                println!("      matched on: a person, score {:.2} ({})", p.score, p.reason)
            }
            None => {}
        }
    }
}

/// ICE contributes a record; DEA finds it under the DEA–ICE agreement with the informant
/// withheld; FBI, with no agreement covering investigation reports, finds nothing at all.
async fn records_part(
    channel: &Channel,
    agencies: &BTreeMap<&str, Authed>,
    dea_ice: &str,
) -> anyhow::Result<()> {
    use interlock_api::common::v1::{Date, Person, PersonName, Selector, SelectorKind};
    use interlock_api::records::v1 as rec;
    use interlock_api::records::v1::records_service_client::RecordsServiceClient;

    step("Records: ICE contributes an investigation report");
    let mut members: BTreeMap<&str, RecordsServiceClient<Authed>> = BTreeMap::new();
    for code in ["ICE", "DEA", "FBI"] {
        let issued = CredentialServiceClient::new(agencies[code].clone())
            .create_credential(CreateCredentialRequest {
                parent: format!("agencies/{code}"),
                credential: Some(Credential {
                    credential_id: "case-system".into(),
                    display_name: format!("{code} case management system"),
                    roles: vec![Role::AgencyMember as i32],
                    ..Credential::default()
                }),
                request_id: String::new(),
            })
            .await?
            .into_inner();
        let token = token(channel, &issued.credential.unwrap_or_default().name, &issued.secret).await?;
        let metadata = CallerMetadata::bearer(token)
            .on_behalf_of(&format!("{code} analyst"), CallPurpose::Investigation);
        members.insert(code, RecordsServiceClient::new(InterceptedService::new(channel.clone(), metadata)));
    }
    let person = |entity: &str, given: &str, surname: &str, role: rec::EntityRole| rec::RecordPerson {
        entity_id: entity.into(),
        person: Some(Person {
            name: Some(PersonName { given: given.into(), surname: surname.into(), ..PersonName::default() }),
            birth_date: Some(Date { year: 1979, month: 11, day: 3 }),
            ..Person::default()
        }),
        role: role as i32,
        ..rec::RecordPerson::default()
    };
    let created = members["ICE"]
        .clone()
        .create_record(rec::CreateRecordRequest {
            record: Some(rec::Record {
                record_number: "ICE-HSI-2026-0042".into(),
                category: RecordCategory::InvestigationReport as i32,
                sensitivity: SensitivityLevel::LawEnforcementSensitive as i32,
                title: "Bulk cash smuggling through Laredo".into(),
                narrative: "Courier moved currency north in a tractor-trailer; a confidential informant identified the buyer.".into(),
                persons: vec![
                    person("suspect", "Hector", "Salinas", rec::EntityRole::Suspect),
                    person("ci", "Rosa", "Ibarra", rec::EntityRole::Informant),
                ],
                selectors: vec![rec::RecordSelector {
                    selector: Some(Selector { kind: SelectorKind::Phone as i32, value: "(956) 555-0188".into(), region: "US".into() }),
                    entity_id: "suspect".into(),
                    ..rec::RecordSelector::default()
                }],
                ..rec::Record::default()
            }),
            request_id: String::new(),
        })
        .await?
        .into_inner()
        .record
        .unwrap_or_default();
    println!(
        "   {} ({}): {} — a suspect, an informant and a phone",
        created.name, created.record_number, created.title
    );

    let search = |phone: &str| rec::SearchRecordsRequest {
        query: Some(rec::search_records_request::Query::SelectorQuery(rec::SelectorQuery {
            selectors: vec![Selector {
                kind: SelectorKind::Phone as i32,
                value: phone.into(),
                region: "US".into(),
            }],
        })),
        ..rec::SearchRecordsRequest::default()
    };
    step("DEA searches the phone: it sees ICE's report under DEA–ICE, with the informant withheld");
    let mut dea = members["DEA"].clone();
    // DEA–ICE was resumed a moment ago; the records service hears of it through the registry's
    // grant watch, within a poll.
    let found = eventually(
        || {
            let mut dea = dea.clone();
            async move { dea.search_records(search("956-555-0188")).await }
        },
        |found| found.as_ref().is_ok_and(|found| !found.get_ref().records.is_empty()),
    )
    .await??
    .into_inner()
    .records;
    for record in &found {
        let access = record.access.clone().unwrap_or_default();
        let level = AccessLevel::try_from(access.level)
            .map_or("?", |a| a.as_str_name().trim_start_matches("ACCESS_LEVEL_"));
        println!(
            "   {} from {}: {} access under {} v{}",
            record.name, record.owner, level, access.agreement, access.agreement_version
        );
        println!("   withheld: {}", access.withheld_fields.join(", "));
        let people: Vec<String> = record
            .persons
            .iter()
            .filter_map(|p| {
                p.person.as_ref().and_then(|p| p.name.as_ref()).map(|n| format!("{} {}", n.given, n.surname))
            })
            .collect();
        println!("   persons shown: {}", people.join(", "));
    }

    step("FBI searches the same phone: no agreement covers ICE's investigation reports, so nothing");
    let mut fbi = members["FBI"].clone();
    let found = fbi.search_records(search("956-555-0188")).await?.into_inner().records;
    println!("   search results: {}", found.len());
    let missing = fbi
        .get_record(rec::GetRecordRequest { name: created.name.clone() })
        .await
        .expect_err("not visible to FBI");
    println!(
        "   GetRecord {}: {:?} — exactly what a record that does not exist answers",
        created.name,
        missing.code()
    );

    step("ICE revokes DEA–ICE: DEA's next search of ICE's record finds nothing");
    let revoked = agreements(&agencies["ICE"])
        .revoke_agreement(RevokeAgreementRequest {
            name: dea_ice.into(),
            reason: "the joint investigation has closed".into(),
            etag: String::new(),
        })
        .await?
        .into_inner()
        .agreement
        .unwrap_or_default();
    println!(
        "   {} is {} (revoked by ICE; it cannot be resumed)",
        revoked.display_name,
        state(revoked.state)
    );
    // The revocation reaches the records service through the grant watch, within a poll.
    let missing = eventually(
        || {
            let mut dea = dea.clone();
            let name = created.name.clone();
            async move { dea.get_record(rec::GetRecordRequest { name }).await }
        },
        |got| got.as_ref().is_err_and(|status| status.code() == tonic::Code::NotFound),
    )
    .await?
    .expect_err("the record is no longer visible to DEA");
    let found = dea.search_records(search("956-555-0188")).await?.into_inner().records;
    println!("   DEA searches the phone again: {} search results", found.len());
    println!("   GetRecord {}: {:?}", created.name, missing.code());
    Ok(())
}

/// Credentials: a revoked one stops working (its token everywhere within seconds, its next token
/// request at once), and one is locked after five wrong secrets, as CJIS asks.
async fn credentials_part(channel: &Channel, agencies: &BTreeMap<&str, Authed>) -> anyhow::Result<()> {
    use interlock_api::records::v1 as rec;
    use interlock_api::records::v1::records_service_client::RecordsServiceClient;

    let issue = |code: &'static str, id: &'static str, display_name: &'static str| async move {
        let issued = CredentialServiceClient::new(agencies[code].clone())
            .create_credential(CreateCredentialRequest {
                parent: format!("agencies/{code}"),
                credential: Some(Credential {
                    credential_id: id.into(),
                    display_name: display_name.into(),
                    roles: vec![Role::AgencyMember as i32],
                    ..Credential::default()
                }),
                request_id: String::new(),
            })
            .await?
            .into_inner();
        anyhow::Ok((issued.credential.unwrap_or_default().name, issued.secret))
    };

    step("DEA revokes a lost laptop's credential: its token and its secret stop working");
    let (laptop, secret) = issue("DEA", "field-laptop-7", "DEA field laptop 7").await?;
    let metadata = CallerMetadata::bearer(token(channel, &laptop, &secret).await?)
        .on_behalf_of("DEA analyst", CallPurpose::Investigation);
    let mut records = RecordsServiceClient::new(InterceptedService::new(channel.clone(), metadata));
    let list = || rec::ListRecordsRequest::default();
    records.list_records(list()).await?;
    println!("   {laptop} signs in and lists records: OK");
    let revoked = CredentialServiceClient::new(agencies["DEA"].clone())
        .revoke_credential(RevokeCredentialRequest {
            name: laptop.clone(),
            reason: "laptop reported lost".into(),
            etag: String::new(),
        })
        .await?
        .into_inner()
        .credential
        .unwrap_or_default();
    let revoked_state = CredentialState::try_from(revoked.state)
        .map_or("?", |s| s.as_str_name().trim_start_matches("CREDENTIAL_STATE_"));
    println!("   DEA's administrator revokes it → {revoked_state}");
    // Every service hears of the revocation through the registry's revocation watch.
    let refused = eventually(
        || {
            let mut records = records.clone();
            async move { records.list_records(list()).await }
        },
        |listed| listed.as_ref().is_err_and(|status| status.code() == tonic::Code::Unauthenticated),
    )
    .await?
    .expect_err("the revoked credential's token is refused");
    println!("   the token it already held: {}", refusal(&refused));
    let refused = token(channel, &laptop, &secret).await.expect_err("a revoked credential gets no token");
    println!("   its next token request: {}", refusal(&refused));

    step("CJIS lockout: five wrong secrets lock a credential, until an administrator unlocks it");
    let (terminal, secret) = issue("ATF", "cjis-terminal-2", "ATF CJIS terminal 2").await?;
    let mut refusals = Vec::new();
    for _ in 0..5 {
        let refused =
            refusal(&token(channel, &terminal, "ilk_wrong-guess").await.expect_err("a wrong secret"));
        if !refusals.contains(&refused) {
            refusals.push(refused);
        }
    }
    println!("   {terminal}: a wrong secret five times: {}", refusals.join("; "));
    let refused = token(channel, &terminal, &secret).await.expect_err("a locked credential gets no token");
    println!("   the right secret now: {}", refusal(&refused));
    CredentialServiceClient::new(agencies["ATF"].clone())
        .unlock_credential(UnlockCredentialRequest {
            name: terminal.clone(),
            reason: "the terminal's user was retrained".into(),
            etag: String::new(),
        })
        .await?;
    token(channel, &terminal, &secret).await?;
    println!("   ATF's administrator unlocks it: the right secret signs in again");
    Ok(())
}

/// A refused call as the demo prints it: code, message and the ErrorInfo reason.
fn refusal(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    let reason = status.get_error_details().error_info().map(|info| info.reason.clone()).unwrap_or_default();
    format!("{:?}: {} ({reason})", status.code(), status.message())
}

/// Repeats `attempt` until `done` holds of its outcome, for up to 5 seconds: changes in the
/// registry reach the other services through watches that poll every 200 ms.
async fn eventually<T, F, Fut>(mut attempt: F, done: impl Fn(&T) -> bool) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    for _ in 0..100 {
        let outcome = attempt().await;
        if done(&outcome) {
            return Ok(outcome);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the change did not reach every service within 5 seconds")
}
