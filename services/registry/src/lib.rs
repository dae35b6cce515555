//! The registry: who takes part in the mesh and on what terms. Source of truth for agencies,
//! centers, credentials and sharing agreements; issues the access tokens every other service
//! verifies and compiles the grants the records service applies.
//!
//! Reads top-down: [`api`] (gRPC handlers: decode, authorize, map errors) → [`service`]
//! (orchestration: read, apply a domain rule, commit with its audit event) → [`domain`] (rules,
//! no I/O) → [`store`] (sqlx).

pub mod api;
pub mod domain;
pub mod error;
pub mod service;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use interlock_api::records::v1::records_admin_service_client::RecordsAdminServiceClient;
use interlock_auth::{MeshChannel, Role, SecretHash, TokenSigner};
use tonic::service::RoutesBuilder;

use crate::store::{RegistryStore, Repository};

/// The agency code under which the mesh operator's own credentials live.
pub const OPERATOR_AGENCY: &str = "INTERLOCK";
/// The bootstrap administrator credential configured at start-up.
pub const BOOTSTRAP_ADMIN_CREDENTIAL: &str = "agencies/INTERLOCK/credentials/bootstrap-admin";
/// The credential Interlock's own services use to call each other.
pub const MESH_CREDENTIAL: &str = "agencies/INTERLOCK/credentials/mesh";

/// The gRPC services this crate serves, for health reporting.
pub const SERVICE_NAMES: &[&str] = &[
    "interlock.registry.v1.AgencyService",
    "interlock.registry.v1.CenterService",
    "interlock.registry.v1.CredentialService",
    "interlock.registry.v1.AgreementService",
    "interlock.registry.v1.GrantService",
    "interlock.registry.v1.AuthenticationService",
];

/// A credential that exists because configuration says so, not because the registry issued it:
/// the bootstrap administrator and the mesh's service credential. Only the hash of its secret is
/// kept.
pub struct ConfiguredCredential {
    pub name: &'static str,
    pub roles: Vec<Role>,
    pub secret: SecretHash,
}

pub struct RegistryConfig {
    /// Seed of the Ed25519 key that signs access tokens; the same on every replica.
    pub signing_seed: [u8; 32],
    /// Lifetime of access tokens when the client asks for none.
    pub default_token_ttl: Duration,
    pub configured_credentials: Vec<ConfiguredCredential>,
    /// How often watches look for changes committed by any replica.
    pub watch_poll_interval: Duration,
    /// The records service, which counts what an agreement preview would open; without it
    /// previews carry no record counts.
    pub records_admin: Option<RecordsAdminServiceClient<MeshChannel>>,
    /// Whether the server this registry runs in verifies client certificates (mutual TLS), the
    /// only way CreateAccessToken learns which certificate a caller holds. Without it a credential
    /// bound to a certificate could never sign in, so binding one is refused.
    pub mutual_tls: bool,
}

impl RegistryConfig {
    /// The standard configured credentials from their secrets.
    pub fn configured_credentials(
        bootstrap_admin_secret: &str,
        mesh_secret: &str,
    ) -> Vec<ConfiguredCredential> {
        vec![
            ConfiguredCredential {
                name: BOOTSTRAP_ADMIN_CREDENTIAL,
                roles: vec![Role::CenterAdministrator, Role::CenterAuditor],
                secret: SecretHash::of(bootstrap_admin_secret),
            },
            ConfiguredCredential {
                name: MESH_CREDENTIAL,
                roles: vec![Role::MeshService],
                secret: SecretHash::of(mesh_secret),
            },
        ]
    }
}

/// The registry service: its repository, its token signer and its configuration.
pub struct Registry {
    repo: Repository,
    signer: TokenSigner,
    config: RegistryConfig,
}

impl Registry {
    pub fn new(store: Arc<dyn RegistryStore>, config: RegistryConfig) -> Arc<Self> {
        let signer = TokenSigner::from_seed(&config.signing_seed);
        Arc::new(Self { repo: Repository::new(store), signer, config })
    }

    pub fn store(&self) -> &Arc<dyn RegistryStore> {
        self.repo.store()
    }

    /// Adds every registry gRPC service to `routes`.
    pub fn add_services(self: &Arc<Self>, routes: &mut RoutesBuilder) {
        api::add_services(self, routes);
    }
}
