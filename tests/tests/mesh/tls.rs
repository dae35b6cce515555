//! Mutual TLS over real gRPC, on SQLite and PostgreSQL: a credential bound to a client
//! certificate signs in only over a connection presenting that certificate; unbound credentials
//! need none; rebinding or unbinding voids the tokens obtained before; and a registry that cannot
//! verify client certificates refuses to bind one.
//!
//! The certificates (a CA, a server certificate for 127.0.0.1 and localhost, and two client
//! certificates) are generated for each test, so nothing secret is checked in.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use interlock_api::audit::v1::{Action, EventFilter};
use interlock_api::records::v1::GetRecordRequest;
use interlock_api::records::v1::records_service_client::RecordsServiceClient;
use interlock_api::registry::v1::agency_service_client::AgencyServiceClient;
use interlock_api::registry::v1::authentication_service_client::AuthenticationServiceClient;
use interlock_api::registry::v1::credential_service_client::CredentialServiceClient;
use interlock_api::registry::v1::*;
use interlock_auth::CallerMetadata;
use interlock_storage::testing::TestDatabase;
use interlock_tests::{
    AuthedChannel, TestServer, audit_events, issue_credential, status_of, tls_channel, token_on, wait_for,
};
use prost_types::FieldMask;
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use tonic_types::StatusExt;

const MESH_SECRET: &str = "ilk_tls-test-mesh";

/// A certificate authority and what it issued, as PEM files in a temporary folder.
struct Pki {
    folder: tempfile::TempDir,
    /// Lower-case hex SHA-256 of each client certificate's DER, by client name.
    fingerprints: Vec<(&'static str, String)>,
}

/// The two client certificates the CA issues.
const GATEWAY: &str = "dea-gateway";
const OTHER: &str = "dea-laptop";

impl Pki {
    fn generate() -> Self {
        let folder = tempfile::tempdir().expect("temp dir");
        let write =
            |name: &str, pem: String| std::fs::write(folder.path().join(name), pem).expect("write pem");

        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca.distinguished_name.push(rcgen::DnType::CommonName, "Interlock test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        write("ca.pem", ca.self_signed(&ca_key).expect("ca certificate").pem());
        let issuer = Issuer::new(ca, ca_key);

        let issue = |name: &str, names: Vec<String>, usage: ExtendedKeyUsagePurpose| {
            let key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(names).expect("params");
            params.distinguished_name.push(rcgen::DnType::CommonName, name);
            params.extended_key_usages = vec![usage];
            let certificate = params.signed_by(&key, &issuer).expect("certificate");
            write(&format!("{name}.pem"), certificate.pem());
            write(&format!("{name}.key"), key.serialize_pem());
            sha256_hex(certificate.der())
        };
        issue("server", vec!["127.0.0.1".into(), "localhost".into()], ExtendedKeyUsagePurpose::ServerAuth);
        let fingerprints = [GATEWAY, OTHER]
            .into_iter()
            .map(|client| (client, issue(client, vec![], ExtendedKeyUsagePurpose::ClientAuth)))
            .collect();
        Self { folder, fingerprints }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.folder.path().join(name)
    }

    fn fingerprint(&self, client: &str) -> String {
        self.fingerprints.iter().find(|(name, _)| *name == client).expect("a client of this CA").1.clone()
    }

    /// `interlock serve` flags for a server presenting the server certificate, verifying client
    /// certificates when `mutual`, and reaching its own services (and other servers of this test)
    /// over TLS.
    fn serve_flags(&self, mutual: bool) -> Vec<String> {
        let mut flags = vec![
            "--tls-certificate".into(),
            path(&self.file("server.pem")),
            "--tls-key".into(),
            path(&self.file("server.key")),
            "--mesh-tls-ca".into(),
            path(&self.file("ca.pem")),
        ];
        if mutual {
            flags.extend(["--tls-client-ca".into(), path(&self.file("ca.pem"))]);
        }
        flags
    }

    /// A client trusting the CA and presenting `client`'s certificate, or none.
    fn client(&self, client: Option<&str>) -> ClientTlsConfig {
        let read = |name: String| std::fs::read(self.file(&name)).expect("read pem");
        let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read("ca.pem".into())));
        match client {
            Some(client) => {
                tls.identity(Identity::from_pem(read(format!("{client}.pem")), read(format!("{client}.key"))))
            }
            None => tls,
        }
    }
}

fn path(file: &Path) -> String {
    file.to_str().expect("utf-8 temp path").to_owned()
}

/// What an operator computes with `openssl x509 -outform DER | sha256sum`.
fn sha256_hex(der: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(der).iter().map(|byte| format!("{byte:02x}")).collect()
}

fn reason(status: &tonic::Status) -> String {
    status.get_error_details().error_info().map(|info| info.reason.clone()).unwrap_or_default()
}

/// Starts a server with `flags` (plus the test's mesh secret and its `serve_flags`).
async fn start(pki: &Pki, mutual: bool, flags: &[&str]) -> TestServer {
    let tls_flags = pki.serve_flags(mutual);
    let mut all: Vec<&str> = flags.to_vec();
    all.extend(tls_flags.iter().map(String::as_str));
    all.extend(["--mesh-secret", MESH_SECRET]);
    TestServer::start_tls(&all, pki.client(None)).await
}

/// A token for `credential` from the registry at `registry`, over a TLS connection that presents
/// `client`'s certificate (or none).
async fn sign_in(
    pki: &Pki,
    registry: &TestServer,
    client: Option<&str>,
    credential: &str,
    secret: &str,
) -> Result<String, tonic::Status> {
    token_on(tls_channel(&registry.url(), &pki.client(client)).await, credential, secret).await
}

/// Registers DEA at `registry` and returns a channel acting as its first administrator, reached
/// the way the test reaches that server (TLS without a client certificate when it serves TLS).
async fn register_dea(registry: &TestServer) -> AuthedChannel {
    let center_admin = registry.admin_channel().await;
    AgencyServiceClient::new(center_admin.clone())
        .create_agency(CreateAgencyRequest {
            agency: Some(interlock_tests::agency("DEA", "Drug Enforcement Administration")),
            request_id: String::new(),
        })
        .await
        .expect("create agency");
    let (credential, secret) =
        issue_credential(&center_admin, "DEA", "admin-backend", &[Role::AgencyAdministrator]).await;
    let token = token_on(registry.channel().await, &credential, &secret).await.expect("DEA administrator");
    InterceptedService::new(registry.channel().await, CallerMetadata::bearer(token))
}

async fn create_credential(
    admin: &AuthedChannel,
    id: &str,
    tls_certificate_sha256: String,
) -> Result<CreateCredentialResponse, tonic::Status> {
    CredentialServiceClient::new(admin.clone())
        .create_credential(CreateCredentialRequest {
            parent: "agencies/DEA".into(),
            credential: Some(Credential {
                credential_id: id.into(),
                display_name: format!("DEA {id}"),
                roles: vec![Role::AgencyMember as i32],
                tls_certificate_sha256,
                ..Credential::default()
            }),
            request_id: String::new(),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn get_credential(admin: &AuthedChannel, name: &str) -> Credential {
    CredentialServiceClient::new(admin.clone())
        .get_credential(GetCredentialRequest { name: name.into() })
        .await
        .expect("get credential")
        .into_inner()
        .credential
        .expect("credential")
}

async fn bind(
    admin: &AuthedChannel,
    credential: &Credential,
    fingerprint: String,
) -> Result<(), tonic::Status> {
    CredentialServiceClient::new(admin.clone())
        .update_credential(UpdateCredentialRequest {
            credential: Some(Credential {
                name: credential.name.clone(),
                etag: credential.etag.clone(),
                tls_certificate_sha256: fingerprint,
                ..Credential::default()
            }),
            update_mask: Some(FieldMask { paths: vec!["tls_certificate_sha256".into()] }),
        })
        .await
        .map(drop)
}

/// A split mesh over mutual TLS on `database`: the registry verifies client certificates, a
/// records pod reaches it over `https://` presenting a client certificate of its own.
async fn split_mesh(pki: &Pki, database: &TestDatabase) -> (TestServer, TestServer) {
    let registry = start(pki, true, &["--service", "registry", "--database-url", database.url()]).await;
    let registry_url = registry.url();
    assert!(registry_url.starts_with("https://"), "{registry_url}");
    let records = start(
        pki,
        true,
        &[
            "--service",
            "records",
            "--registry-address",
            &registry_url,
            "--mesh-tls-client-certificate",
            &path(&pki.file(&format!("{OTHER}.pem"))),
            "--mesh-tls-client-key",
            &path(&pki.file(&format!("{OTHER}.key"))),
        ],
    )
    .await;
    (registry, records)
}

/// What the records pod answers an officer's read with `token`: NOT_FOUND once let in (nothing is
/// stored), UNAUTHENTICATED when the token is refused.
async fn read_record(pki: &Pki, records: &TestServer, token: String) -> tonic::Status {
    let on_records = InterceptedService::new(
        tls_channel(&records.url(), &pki.client(None)).await,
        CallerMetadata::bearer(token).on_behalf_of("officer-1", interlock_auth::Purpose::Investigation),
    );
    status_of(
        RecordsServiceClient::new(on_records)
            .get_record(GetRecordRequest { name: "records/42".into() })
            .await,
    )
}

/// A credential bound to the gateway's certificate signs in with it, and with nothing else.
#[tokio::test]
async fn a_bound_credential_signs_in_only_with_its_client_certificate() {
    let pki = Pki::generate();
    for database in TestDatabase::each_backend().await {
        let (registry, records) = split_mesh(&pki, &database).await;

        // The bootstrap administrator is unbound: TLS without a client certificate is enough.
        let dea = register_dea(&registry).await;
        let gateway = create_credential(&dea, "gateway", pki.fingerprint(GATEWAY).to_uppercase())
            .await
            .expect("binding is allowed over mutual TLS");
        let bound = gateway.credential.expect("credential");
        assert_eq!(bound.tls_certificate_sha256, pki.fingerprint(GATEWAY), "stored in lower case");

        // Another certificate of the same CA, or none at all: refused, and each counts as a failure.
        for client in [Some(OTHER), None] {
            let refused = sign_in(&pki, &registry, client, &bound.name, &gateway.secret).await.unwrap_err();
            assert_eq!(
                (refused.code(), reason(&refused).as_str()),
                (Code::Unauthenticated, "CLIENT_CERTIFICATE_MISMATCH"),
                "presenting {client:?}"
            );
        }
        let after_refusals = get_credential(&dea, &bound.name).await;
        assert_eq!(after_refusals.consecutive_failures, 2);
        assert_eq!(after_refusals.last_authentication_time, None);

        // Its own certificate: a token, which the records pod accepts.
        let token = sign_in(&pki, &registry, Some(GATEWAY), &bound.name, &gateway.secret)
            .await
            .expect("the bound certificate signs in");
        assert_eq!(get_credential(&dea, &bound.name).await.consecutive_failures, 0);
        let missing = read_record(&pki, &records, token).await;
        assert_eq!(missing.code(), Code::NotFound, "authenticated at the records pod: {missing:?}");

        // An unbound credential signs in over TLS with or without a client certificate.
        let member = create_credential(&dea, "member", String::new()).await.expect("unbound credential");
        let unbound = member.credential.expect("credential");
        for client in [None, Some(OTHER)] {
            sign_in(&pki, &registry, client, &unbound.name, &member.secret)
                .await
                .unwrap_or_else(|status| panic!("unbound, presenting {client:?}: {status:?}"));
        }
        // Bound later with UpdateCredential, it needs the certificate from then on.
        let unbound = get_credential(&dea, &unbound.name).await;
        bind(&dea, &unbound, pki.fingerprint(OTHER)).await.expect("binding over mutual TLS");
        let refused = sign_in(&pki, &registry, None, &unbound.name, &member.secret).await.unwrap_err();
        assert_eq!(reason(&refused), "CLIENT_CERTIFICATE_MISMATCH");
        sign_in(&pki, &registry, Some(OTHER), &unbound.name, &member.secret).await.expect("its certificate");
    }
}

/// Rebinding a credential to another certificate, or unbinding it, voids the tokens obtained
/// before: the records pod refuses them within seconds, and a token obtained right after the change
/// under the new binding is let in.
#[tokio::test]
async fn rebinding_or_unbinding_voids_the_tokens_obtained_before() {
    let pki = Pki::generate();
    for database in TestDatabase::each_backend().await {
        let (registry, records) = split_mesh(&pki, &database).await;
        let dea = register_dea(&registry).await;
        let gateway = create_credential(&dea, "gateway", pki.fingerprint(GATEWAY)).await.expect("bound");
        let name = gateway.credential.expect("credential").name;
        let read = |token: &String| read_record(&pki, &records, token.clone());
        let with_gateway =
            sign_in(&pki, &registry, Some(GATEWAY), &name, &gateway.secret).await.expect("token");
        assert_eq!(read(&with_gateway).await.code(), Code::NotFound, "let in");

        // Rebound to the laptop's certificate: the gateway's token goes, the laptop's works.
        bind(&dea, &get_credential(&dea, &name).await, pki.fingerprint(OTHER)).await.expect("rebind");
        let with_laptop = sign_in(&pki, &registry, Some(OTHER), &name, &gateway.secret).await.expect("token");
        let refused = wait_for(|| read(&with_gateway), |status| status.code() == Code::Unauthenticated).await;
        assert_eq!(reason(&refused), "CREDENTIAL_CHANGED", "{refused:?}");
        assert_eq!(read(&with_laptop).await.code(), Code::NotFound, "obtained under the new binding");

        // Unbound: the laptop's token goes, one obtained without a certificate works.
        bind(&dea, &get_credential(&dea, &name).await, String::new()).await.expect("unbind");
        let without = sign_in(&pki, &registry, None, &name, &gateway.secret).await.expect("unbound token");
        let refused = wait_for(|| read(&with_laptop), |status| status.code() == Code::Unauthenticated).await;
        assert_eq!(reason(&refused), "CREDENTIAL_CHANGED", "{refused:?}");
        assert_eq!(read(&without).await.code(), Code::NotFound, "obtained after unbinding");
    }
}

/// A registry that does not verify client certificates (plaintext, or TLS without a client CA)
/// refuses to bind a credential to one, on create and on update, and changes nothing.
#[tokio::test]
async fn binding_is_refused_without_mutual_tls() {
    let pki = Pki::generate();
    let mut registries = Vec::new();
    for database in TestDatabase::each_backend().await {
        let plaintext = TestServer::start(&[
            "--service",
            "registry",
            "--database-url",
            database.url(),
            "--mesh-secret",
            MESH_SECRET,
        ])
        .await;
        registries.push((plaintext, database));
    }
    let database = TestDatabase::sqlite();
    let tls_only = start(&pki, false, &["--service", "registry", "--database-url", database.url()]).await;
    registries.push((tls_only, database));

    for (registry, _database) in &registries {
        let dea = register_dea(registry).await;
        let before = list_credentials(&dea).await;

        let refused = create_credential(&dea, "gateway", pki.fingerprint(GATEWAY)).await.unwrap_err();
        assert_eq!(
            (refused.code(), reason(&refused).as_str()),
            (Code::FailedPrecondition, "MUTUAL_TLS_NOT_CONFIGURED"),
            "{}",
            registry.url()
        );
        assert!(
            refused.message().contains("--tls-client-ca"),
            "says how to enable it: {}",
            refused.message()
        );
        assert_eq!(list_credentials(&dea).await, before, "nothing created");

        let member = create_credential(&dea, "member", String::new()).await.expect("unbound credential");
        let unbound = member.credential.expect("credential");
        let refused = bind(&dea, &unbound, pki.fingerprint(GATEWAY)).await.unwrap_err();
        assert_eq!(
            (refused.code(), reason(&refused).as_str()),
            (Code::FailedPrecondition, "MUTUAL_TLS_NOT_CONFIGURED")
        );
        let unchanged = get_credential(&dea, &unbound.name).await;
        assert_eq!((unchanged.etag, unchanged.tls_certificate_sha256), (unbound.etag, String::new()));
    }
}

async fn list_credentials(admin: &AuthedChannel) -> Vec<String> {
    CredentialServiceClient::new(admin.clone())
        .list_credentials(ListCredentialsRequest { parent: "agencies/DEA".into(), ..Default::default() })
        .await
        .expect("list credentials")
        .into_inner()
        .credentials
        .into_iter()
        .map(|credential| credential.name)
        .collect()
}

/// The whole mesh in one process over mutual TLS: its services reach each other (and the audit
/// log) over TLS, plaintext clients are turned away, and a refused certificate is an audited
/// logon failure.
#[tokio::test]
async fn the_embedded_mesh_serves_mutual_tls_and_audits_certificate_refusals() {
    let pki = Pki::generate();
    let server = start(&pki, true, &[]).await;
    assert!(server.url().starts_with("https://"), "{}", server.url());

    let plaintext = server.url().replacen("https://", "http://", 1);
    let answered = match Endpoint::from_shared(plaintext).expect("url").connect().await {
        Err(_) => false,
        Ok(channel) => AuthenticationServiceClient::new(channel)
            .list_verification_keys(ListVerificationKeysRequest::default())
            .await
            .is_ok(),
    };
    assert!(!answered, "a plaintext client must not get through");

    let dea = register_dea(&server).await;
    let gateway = create_credential(&dea, "gateway", pki.fingerprint(GATEWAY)).await.expect("bound");
    let name = gateway.credential.expect("credential").name;
    let refused = sign_in(&pki, &server, Some(OTHER), &name, &gateway.secret).await.unwrap_err();
    assert_eq!(reason(&refused), "CLIENT_CERTIFICATE_MISMATCH");

    let started = Instant::now();
    loop {
        let logon_failures =
            EventFilter { actions: vec![Action::LogonFailure as i32], ..EventFilter::default() };
        let failures = audit_events(server.channel().await, server.admin_token().await, logon_failures).await;
        if let Some(failure) = failures.iter().find(|event| event.credential == name) {
            assert_eq!(failure.error_reason, "CLIENT_CERTIFICATE_MISMATCH");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the refusal never reached the audit log");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.mesh.shutdown().await.expect("shutdown");
}
