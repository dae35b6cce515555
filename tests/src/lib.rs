//! Helpers for the cross-service tests: start the real `interlock serve` code path on
//! 127.0.0.1 port 0 with its own fresh databases, and talk to it over real gRPC.

use clap::Parser;
use interlock::config::ServeConfig;
use interlock::serve::Mesh;
use interlock_api::audit::v1::audit_service_client::AuditServiceClient;
use interlock_api::audit::v1::{AuditEvent, EventFilter, ListEventsRequest};
use interlock_api::common::v1::Contact;
use interlock_api::registry::v1::agency_service_client::AgencyServiceClient;
use interlock_api::registry::v1::authentication_service_client::AuthenticationServiceClient;
use interlock_api::registry::v1::credential_service_client::CredentialServiceClient;
use interlock_api::registry::v1::{
    Agency, CreateAccessTokenRequest, CreateAgencyRequest, CreateCredentialRequest, CreateUserRequest,
    Credential, Role, User,
};
use interlock_auth::{CallerMetadata, Purpose};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, ClientTlsConfig};
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
    /// How the test's own clients reach it when it serves TLS; unused over plaintext.
    pub client_tls: ClientTlsConfig,
}

impl TestServer {
    /// The whole mesh in one process on the embedded default.
    pub async fn all_in_one() -> Self {
        Self::start(&[]).await
    }

    pub async fn start(extra: &[&str]) -> Self {
        Self::start_tls(extra, ClientTlsConfig::new()).await
    }

    /// A server started with TLS flags in `extra`, reached by the test's clients with `client_tls`.
    pub async fn start_tls(extra: &[&str], client_tls: ClientTlsConfig) -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let mesh = Mesh::start(serve_config(data.path(), extra)).await.expect("start interlock serve");
        let server = Self { mesh, data, client_tls };
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
        tls_channel(&self.url(), &self.client_tls).await
    }

    /// An access token for the bootstrap administrator (needs this server to run the registry).
    pub async fn admin_token(&self) -> String {
        let secret = self.mesh.bootstrap_admin_secret().expect("this server runs the registry");
        token_on(self.channel().await, BOOTSTRAP_ADMIN, secret).await.expect("bootstrap admin token")
    }

    /// A channel on which every call carries the bootstrap administrator's token.
    pub async fn admin_channel(&self) -> AuthedChannel {
        InterceptedService::new(self.channel().await, CallerMetadata::bearer(self.admin_token().await))
    }
}

/// A port nobody listens on right now, chosen up front so that a service can be pointed at
/// another one (the audit service, typically) before that one starts, or after it restarts.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

pub async fn channel(url: &str) -> Channel {
    tls_channel(url, &ClientTlsConfig::new()).await
}

/// A channel to `url`, over TLS with `tls` when it is `https://`.
pub async fn tls_channel(url: &str, tls: &ClientTlsConfig) -> Channel {
    interlock_auth::endpoint(url, tls).expect("url").connect().await.expect("connect")
}

/// Exchanges a credential for an access token at the registry at `url`.
pub async fn token(url: &str, credential: &str, secret: &str) -> Result<String, tonic::Status> {
    token_on(channel(url).await, credential, secret).await
}

/// Exchanges a credential for an access token at the registry reached by `channel`.
pub async fn token_on(channel: Channel, credential: &str, secret: &str) -> Result<String, tonic::Status> {
    let mut client = AuthenticationServiceClient::new(channel);
    let response = client
        .create_access_token(CreateAccessTokenRequest {
            credential: credential.to_owned(),
            secret: secret.to_owned(),
            ttl: None,
        })
        .await?;
    Ok(response.into_inner().access_token)
}

/// An agency entry with a 24/7 duty desk.
pub fn agency(code: &str, name: &str) -> Agency {
    Agency {
        code: code.into(),
        display_name: name.into(),
        parent_department: "Department of Justice".into(),
        jurisdiction: "United States".into(),
        duty_desk: Some(Contact {
            name: format!("{code} Duty Desk"),
            phone: "+12025550100".into(),
            email: format!("desk@{}.example.gov", code.to_lowercase()),
            around_the_clock: true,
        }),
        ..Agency::default()
    }
}

/// A channel to `url` acting with `credential` on behalf of `user` for an investigation.
pub async fn as_credential(
    registry_url: &str,
    url: &str,
    credential: &str,
    secret: &str,
    user: &str,
) -> AuthedChannel {
    let token = token(registry_url, credential, secret).await.expect("token");
    let metadata = CallerMetadata::bearer(token).on_behalf_of(user, Purpose::Investigation);
    InterceptedService::new(channel(url).await, metadata)
}

/// Issues a credential of agency `code` with `roles`, acting as one of its administrators;
/// returns (credential name, secret).
pub async fn issue_credential(
    admin: &AuthedChannel,
    code: &str,
    id: &str,
    roles: &[Role],
) -> (String, String) {
    let issued = CredentialServiceClient::new(admin.clone())
        .create_credential(CreateCredentialRequest {
            parent: format!("agencies/{code}"),
            credential: Some(Credential {
                credential_id: id.into(),
                display_name: format!("{code} {id}"),
                roles: roles.iter().map(|r| *r as i32).collect(),
                ..Credential::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("issue a credential")
        .into_inner();
    (issued.credential.expect("credential").name, issued.secret)
}

/// Registers an agency (as the center administrator `center_admin`) with its first
/// administrator credential and an administrator user, and returns a channel to the registry at
/// `registry_url` acting as that administrator, with its secret.
pub async fn register(
    registry_url: &str,
    center_admin: &AuthedChannel,
    code: &str,
    name: &str,
) -> (AuthedChannel, String) {
    AgencyServiceClient::new(center_admin.clone())
        .create_agency(CreateAgencyRequest {
            agency: Some(agency(code, name)),
            request_id: format!("create-{code}"),
        })
        .await
        .expect("create agency");
    let (credential, secret) =
        issue_credential(center_admin, code, "admin-backend", &[Role::AgencyAdministrator]).await;
    let channel = as_credential(registry_url, registry_url, &credential, &secret, "chief").await;
    AgencyServiceClient::new(channel.clone())
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
        .await
        .expect("administrator user");
    (channel, secret)
}

/// An agency registered with its first administrator credential.
pub struct Enrolled {
    pub credential: String,
    pub secret: String,
}

impl Enrolled {
    /// A channel to `url` acting for this agency on behalf of `user`.
    pub async fn channel(&self, registry: &TestServer, url: &str, user: &str) -> AuthedChannel {
        as_credential(&registry.url(), url, &self.credential, &self.secret, user).await
    }
}

/// Registers `code` at `registry` (as the bootstrap administrator) and issues its first
/// administrator credential.
pub async fn enroll_agency(registry: &TestServer, code: &str, name: &str) -> Enrolled {
    let admin = registry.admin_channel().await;
    AgencyServiceClient::new(admin.clone())
        .create_agency(CreateAgencyRequest {
            agency: Some(agency(code, name)),
            request_id: format!("create-{code}"),
        })
        .await
        .expect("create agency");
    let (credential, secret) =
        issue_credential(&admin, code, "admin-backend", &[Role::AgencyAdministrator]).await;
    Enrolled { credential, secret }
}

/// The status of a call, `Status::ok` when it succeeded, for [`wait_for`].
pub fn status_of<T>(result: Result<T, tonic::Status>) -> tonic::Status {
    result.err().unwrap_or_else(|| tonic::Status::ok("accepted"))
}

/// Calls `call` every 50 ms until `done` accepts its status (a call that succeeded can be
/// reported as `Status::ok`), and returns that status; panics after 5 seconds. For changes that
/// reach other services through a watch within seconds, without sleeping a fixed long time.
pub async fn wait_for<F, Fut>(call: F, done: impl Fn(&tonic::Status) -> bool) -> tonic::Status
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = tonic::Status>,
{
    let started = std::time::Instant::now();
    loop {
        let status = call().await;
        if done(&status) {
            return status;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "still {status:?} after 5 seconds");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Every audit event `filter` selects on the audit service behind `channel`, all pages, read with
/// the bootstrap administrator's `admin_token` on behalf of a center auditor.
pub async fn audit_events(channel: Channel, admin_token: String, filter: EventFilter) -> Vec<AuditEvent> {
    let auditor = CallerMetadata::bearer(admin_token).on_behalf_of("auditor", Purpose::Investigation);
    let mut client = AuditServiceClient::new(InterceptedService::new(channel, auditor));
    let mut events = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_events(ListEventsRequest {
                filter: Some(filter.clone()),
                page_size: 1000,
                page_token,
                ..ListEventsRequest::default()
            })
            .await
            .expect("list audit events")
            .into_inner();
        events.extend(page.events);
        if page.next_page_token.is_empty() {
            return events;
        }
        page_token = page.next_page_token;
    }
}
