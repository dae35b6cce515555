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
    config.data_dir = data.path().to_owned();
    config.service = ServiceKind::All;
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
            categories: vec![
                RecordCategory::InvestigationReport as i32,
                RecordCategory::WiretapIntercept as i32,
                RecordCategory::FinancialInvestigation as i32,
            ],
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
        .resume_agreement(ResumeAgreementRequest { name: dea_ice.name.clone(), ..Default::default() })
        .await
        .expect_err("ICE cannot lift DEA's suspension");
    println!("   ICE tries to resume it: {:?}: {}", refused.code(), refused.message());
    agreements(&agencies["DEA"])
        .resume_agreement(ResumeAgreementRequest { name: dea_ice.name.clone(), ..Default::default() })
        .await?;
    println!("   DEA resumes it: DEA–ICE is ACTIVE again");

    step("Next in the scenario");
    println!("   ICE's records shared under these agreements (issue #4) and deconfliction of a shared");
    println!("   phone and an overlapping raid (issue #5) join this demo as their issues land.");

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

/// Waits until the registry's and deconfliction's outboxes are delivered to the audit service, so
/// the log holds every event of the steps above before it is read.
async fn wait_until_outboxes_delivered(data_dir: &std::path::Path) -> anyhow::Result<()> {
    use interlock_audit_client::Outbox;
    use interlock_storage::Database;
    let open = |service: &str| format!("sqlite://{}", data_dir.join(format!("{service}.db")).display());
    let registry = interlock_registry::RegistryOutbox(interlock_registry::store::on(
        Database::open(&open("registry"), &interlock_registry::store::MIGRATIONS).await?,
    ));
    let deconfliction = interlock_deconfliction::DeconflictionOutbox(interlock_deconfliction::store::on(
        Database::open(&open("deconfliction"), &interlock_deconfliction::store::MIGRATIONS).await?,
    ));
    for _ in 0..200 {
        let waiting = registry.pending(1).await.map_err(anyhow::Error::msg)?.len()
            + deconfliction.pending(1).await.map_err(anyhow::Error::msg)?.len();
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

async fn sign(channel: &Authed, name: &str) -> Result<Agreement, tonic::Status> {
    Ok(agreements(channel)
        .sign_agreement(SignAgreementRequest { name: name.into(), version: 0, etag: String::new() })
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
            AgreementParty { party: format!("agencies/{provider}"), role: PartyRole::Provider as i32 },
            AgreementParty { party: format!("agencies/{consumer}"), role: PartyRole::Consumer as i32 },
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
