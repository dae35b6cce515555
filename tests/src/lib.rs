//! Helpers for the cross-service tests: start the real `interlock serve` code path on
//! 127.0.0.1 port 0 with its own fresh databases, and talk to it over real gRPC.

use clap::Parser;
use interlock::config::ServeConfig;
use interlock::serve::Mesh;
use interlock_api::registry::v1::CreateAccessTokenRequest;
use interlock_api::registry::v1::authentication_service_client::AuthenticationServiceClient;
use interlock_auth::CallerMetadata;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The bootstrap administrator's credential name.
pub const BOOTSTRAP_ADMIN: &str = "agencies/INTERLOCK/credentials/bootstrap-admin";

/// A channel whose calls carry a caller's identity metadata.
pub type AuthedChannel = InterceptedService<Channel, CallerMetadata>;

#[derive(Parser)]
struct ServeArgs {
    #[command(flatten)]
    config: ServeConfig,
}

/// `interlock serve` configuration from command-line style arguments, on a free port unless
/// `extra` names one (a restarted server that clients must find at its old address).
pub fn serve_config(data_dir: &std::path::Path, extra: &[&str]) -> ServeConfig {
    let mut args = vec!["serve", "--data-dir"];
    if !extra.contains(&"--listen") {
        args.splice(1..1, ["--listen", "127.0.0.1:0"]);
    }
    let data_dir = data_dir.to_str().expect("utf-8 temp path");
    args.push(data_dir);
    args.extend_from_slice(extra);
    ServeArgs::parse_from(args).config
}

/// A running server with its own data folder, removed when dropped.
pub struct TestServer {
    pub mesh: Mesh,
    pub data: tempfile::TempDir,
}

impl TestServer {
    /// The whole mesh in one process on the embedded default.
    pub async fn all_in_one() -> Self {
        Self::start(&[]).await
    }

    pub async fn start(extra: &[&str]) -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let mesh = Mesh::start(serve_config(data.path(), extra)).await.expect("start interlock serve");
        let server = Self { mesh, data };
        server.wait_until_serving().await;
        server
    }

    /// Waits, as a Kubernetes readiness probe would, until the server reports SERVING.
    pub async fn wait_until_serving(&self) {
        let mut health = HealthClient::new(self.channel().await);
        for _ in 0..200 {
            let status = health.check(HealthCheckRequest { service: String::new() }).await;
            if status.is_ok_and(|s| s.into_inner().status == ServingStatus::Serving as i32) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("{} did not become ready within 10 seconds", self.url());
    }

    pub fn url(&self) -> String {
        self.mesh.url()
    }

    pub async fn channel(&self) -> Channel {
        channel(&self.url()).await
    }

    /// An access token for the bootstrap administrator (needs this server to run the registry).
    pub async fn admin_token(&self) -> String {
        let secret = self.mesh.bootstrap_admin_secret().expect("this server runs the registry");
        token(&self.url(), BOOTSTRAP_ADMIN, secret).await.expect("bootstrap admin token")
    }

    /// A channel on which every call carries the bootstrap administrator's token.
    pub async fn admin_channel(&self) -> AuthedChannel {
        InterceptedService::new(self.channel().await, CallerMetadata::bearer(self.admin_token().await))
    }
}

pub async fn channel(url: &str) -> Channel {
    Endpoint::from_shared(url.to_owned()).expect("url").connect().await.expect("connect")
}

/// Exchanges a credential for an access token at the registry at `url`.
pub async fn token(url: &str, credential: &str, secret: &str) -> Result<String, tonic::Status> {
    let mut client = AuthenticationServiceClient::new(channel(url).await);
    let response = client
        .create_access_token(CreateAccessTokenRequest {
            credential: credential.to_owned(),
            secret: secret.to_owned(),
            ttl: None,
        })
        .await?;
    Ok(response.into_inner().access_token)
}

/// An agency registered with its first administrator credential.
pub struct Enrolled {
    pub credential: String,
    pub secret: String,
}

impl Enrolled {
    /// A channel to `url` acting for this agency on behalf of `user`.
    pub async fn channel(&self, registry: &TestServer, url: &str, user: &str) -> AuthedChannel {
        let token = token(&registry.url(), &self.credential, &self.secret).await.expect("agency token");
        let metadata =
            CallerMetadata::bearer(token).on_behalf_of(user, interlock_auth::Purpose::Investigation);
        InterceptedService::new(channel(url).await, metadata)
    }
}

/// The registry entry for an agency, with a 24/7 duty desk.
pub fn agency_entry(code: &str, name: &str) -> interlock_api::registry::v1::Agency {
    interlock_api::registry::v1::Agency {
        code: code.into(),
        display_name: name.into(),
        parent_department: "Department of Justice".into(),
        jurisdiction: "United States".into(),
        duty_desk: Some(interlock_api::common::v1::Contact {
            name: format!("{code} Duty Desk"),
            phone: "+12025550100".into(),
            email: format!("desk@{}.example.gov", code.to_lowercase()),
            around_the_clock: true,
        }),
        ..Default::default()
    }
}

/// Registers `code` at `registry` (as the bootstrap administrator) and issues its first
/// administrator credential.
pub async fn enroll_agency(registry: &TestServer, code: &str, name: &str) -> Enrolled {
    use interlock_api::registry::v1::agency_service_client::AgencyServiceClient;
    use interlock_api::registry::v1::credential_service_client::CredentialServiceClient;
    use interlock_api::registry::v1::{CreateAgencyRequest, CreateCredentialRequest, Credential, Role};
    let admin = registry.admin_channel().await;
    AgencyServiceClient::new(admin.clone())
        .create_agency(CreateAgencyRequest {
            agency: Some(agency_entry(code, name)),
            request_id: format!("create-{code}"),
        })
        .await
        .expect("create agency");
    let issued = CredentialServiceClient::new(admin)
        .create_credential(CreateCredentialRequest {
            parent: format!("agencies/{code}"),
            credential: Some(Credential {
                credential_id: "admin-backend".into(),
                display_name: format!("{code} administration backend"),
                roles: vec![Role::AgencyAdministrator as i32],
                ..Credential::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("first administrator credential")
        .into_inner();
    Enrolled { credential: issued.credential.expect("credential").name, secret: issued.secret }
}
