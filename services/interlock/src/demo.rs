//! `interlock demo`: the article's scenario, end to end, on a fresh embedded mesh.
//!
//! In 2009 ICE agreed to add over 25 million records to the OCDETF Fusion Center (FBI, DEA, ATF
//! and others) and joined IOC-2, after bilateral DEA–ICE and ATF–ICE agreements. The demo
//! replays that story against the real services and prints what each step returns.

use std::time::Duration;

use interlock_api::common::v1::Contact;
use interlock_api::registry::v1::agency_service_client::AgencyServiceClient;
use interlock_api::registry::v1::authentication_service_client::AuthenticationServiceClient;
use interlock_api::registry::v1::{
    Agency, CreateAccessTokenRequest, CreateAgencyRequest, ListAgenciesRequest,
};
use interlock_auth::CallerMetadata;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::config::{ServeConfig, ServiceKind};
use crate::serve::Mesh;

/// The agencies of the article, with their duty desks.
const AGENCIES: &[(&str, &str, &str, &str)] = &[
    ("ICE", "U.S. Immigration and Customs Enforcement", "Department of Homeland Security", "+12025550101"),
    ("DOJ-OCDETF", "Organized Crime Drug Enforcement Task Forces", "Department of Justice", "+12025550102"),
    ("FBI", "Federal Bureau of Investigation", "Department of Justice", "+12025550103"),
    ("DEA", "Drug Enforcement Administration", "Department of Justice", "+12025550104"),
    ("ATF", "Bureau of Alcohol, Tobacco, Firearms and Explosives", "Department of Justice", "+12025550105"),
];

pub async fn run(mut config: ServeConfig) -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    config.data_dir = data.path().to_owned();
    config.service = ServiceKind::All;
    let mesh = Mesh::start(config).await?;
    let url = mesh.url();
    println!("Interlock demo: the whole mesh on a fresh embedded store at {url}\n");

    step("1. The mesh is up");
    let channel = Endpoint::from_shared(url.clone())?.connect().await?;
    let mut health = HealthClient::new(channel.clone());
    for service in ServiceKind::EACH {
        let status = wait_until_serving(&mut health, service.name()).await?;
        println!("   {:<14} {status}", service.name());
    }

    step("2. The center administrator signs in with the bootstrap credential");
    let secret = mesh.bootstrap_admin_secret().unwrap_or_default().to_owned();
    let token = AuthenticationServiceClient::new(channel.clone())
        .create_access_token(CreateAccessTokenRequest {
            credential: interlock_registry::BOOTSTRAP_ADMIN_CREDENTIAL.into(),
            secret,
            ttl: None,
        })
        .await?
        .into_inner();
    println!(
        "   token for {} with roles {:?}, valid until {:?}",
        token.agency,
        role_names(&token.roles),
        token.expire_time
    );
    let admin = InterceptedService::new(channel.clone(), CallerMetadata::bearer(token.access_token));

    step("3. The article's agencies get their registry entries, each with a 24/7 duty desk");
    let mut agencies = AgencyServiceClient::new(admin.clone());
    for (code, name, department, phone) in AGENCIES {
        agencies
            .create_agency(CreateAgencyRequest {
                agency: Some(agency(code, name, department, phone)),
                request_id: format!("demo-{code}"),
            })
            .await?;
    }
    print_agencies(&mut agencies).await?;

    step("4. Bad input is refused with every problem named, and nothing is stored");
    let refused = agencies
        .create_agency(CreateAgencyRequest {
            agency: Some(Agency { code: "ice".into(), ..Agency::default() }),
            request_id: String::new(),
        })
        .await
        .expect_err("an invalid agency must be refused");
    println!("   {:?}: {}", refused.code(), refused.message());

    step("Next in the scenario");
    println!("   sharing agreements DEA–ICE, ATF–ICE and the Fusion Center agreement (issue #3),");
    println!("   ICE's records shared under them (issue #4), deconfliction of a shared phone and an");
    println!("   overlapping raid (issue #5), and the verified audit log (issue #6) join this demo as");
    println!("   their issues land.");

    mesh.shutdown().await?;
    Ok(())
}

fn step(title: &str) {
    println!("\n== {title}");
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

fn role_names(roles: &[i32]) -> Vec<&'static str> {
    roles
        .iter()
        .filter_map(|role| interlock_api::registry::v1::Role::try_from(*role).ok())
        .map(|role| role.as_str_name())
        .collect()
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

async fn print_agencies(
    agencies: &mut AgencyServiceClient<InterceptedService<Channel, CallerMetadata>>,
) -> anyhow::Result<()> {
    let listed = agencies.list_agencies(ListAgenciesRequest::default()).await?.into_inner().agencies;
    println!("   {:<12} {:<52} {:<32} duty desk", "code", "name", "department");
    for agency in listed {
        let desk = agency.duty_desk.unwrap_or_default();
        println!(
            "   {:<12} {:<52} {:<32} {} {}",
            agency.code, agency.display_name, agency.parent_department, desk.name, desk.phone
        );
    }
    Ok(())
}
