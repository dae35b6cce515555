//! Starting and stopping the mesh (or one service of it).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use interlock_api::audit::v1::audit_service_client::AuditServiceClient;
use interlock_api::deconfliction::v1::record_selector_service_client::RecordSelectorServiceClient;
use interlock_api::records::v1::records_admin_service_client::RecordsAdminServiceClient;
use interlock_api::registry::v1::agency_service_client::AgencyServiceClient;
use interlock_api::registry::v1::authentication_service_client::AuthenticationServiceClient;
use interlock_api::registry::v1::grant_service_client::GrantServiceClient;
use interlock_audit::{Audit, AuditConfig};
use interlock_audit_client::{SqlOutbox, relay};
use interlock_auth::{
    AuthLayer, Authenticator, TokenSource, generate_secret, mesh_channel, sync_revocations,
    sync_verification_keys,
};
use interlock_deconfliction::{Deconfliction, DeconflictionConfig};
use interlock_records::{Directory, GrantsCache, Records};
use interlock_registry::{Registry, RegistryConfig};
use interlock_storage::{Database, Migrations};
use interlock_telemetry::ServerTraceLayer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::service::RoutesBuilder;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::config::{ServeConfig, ServiceKind};
use crate::drain::DrainLayer;

/// How often the registry's watches look for changes committed by any replica.
const WATCH_POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How often database reachability is re-checked for the health status.
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// How long calls ended at the end of the grace period get to send their UNAVAILABLE before the
/// server is abandoned.
const AFTER_GRACE: Duration = Duration::from_secs(2);

/// A running server: the whole mesh or one service.
pub struct Mesh {
    address: SocketAddr,
    /// Whether the server speaks TLS, so its clients need `https://`.
    tls: bool,
    bootstrap_admin_secret: Option<String>,
    stop: watch::Sender<bool>,
    /// Raised when the grace period is over: calls still running are ended.
    grace_over: watch::Sender<bool>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    background: Vec<JoinHandle<()>>,
    grace: Duration,
}

impl Mesh {
    /// Binds, opens and migrates the databases, and starts serving. With `--service all` it
    /// returns once the mesh answers authenticated calls.
    pub async fn start(config: ServeConfig) -> anyhow::Result<Mesh> {
        if config.service == ServiceKind::All && config.database_url.is_some() {
            bail!(
                "--database-url names one service's database; with --service all each service gets its own file under --data-dir"
            );
        }
        // Read before binding, so a bad TLS file stops start-up with its path.
        let server_tls = crate::tls::server_tls(&config)?;
        let mesh_tls = crate::tls::mesh_client_tls(&config)?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let address = listener.local_addr()?;
        let own = own_url(address, server_tls.is_some());
        let runs = |service| config.service.services().contains(&service);
        let registry_address = config.registry_address.clone().unwrap_or_else(|| own.clone());
        // Record counts for agreement previews: from the configured records service, or from
        // this process when it runs one; a registry alone has none to offer.
        let records_address =
            config.records_address.clone().or_else(|| runs(ServiceKind::Records).then(|| own.clone()));
        let deconfliction_address = config.deconfliction_address.clone().unwrap_or_else(|| own.clone());
        let audit_address = config.audit_address.clone().unwrap_or_else(|| own.clone());
        // The addresses this process will dial: each must be reachable with the mesh's TLS settings.
        let called = [
            Some(&registry_address),
            records_address.as_ref().filter(|_| runs(ServiceKind::Registry)),
            Some(&deconfliction_address).filter(|_| runs(ServiceKind::Records)),
            Some(&audit_address).filter(|_| config.service != ServiceKind::Audit),
        ];
        crate::tls::check_mesh_addresses(called.into_iter().flatten(), &own, config.mesh_tls_ca.is_some())?;

        let mesh_secret = match (&config.mesh_secret, config.service) {
            (Some(secret), _) => secret.clone(),
            (None, ServiceKind::All) => generate_secret(),
            (None, _) => bail!(
                "set INTERLOCK_MESH_SECRET (--mesh-secret): every service of a split mesh needs the same one"
            ),
        };

        let mesh_tokens = Arc::new(TokenSource::new(
            &registry_address,
            &mesh_tls,
            interlock_registry::MESH_CREDENTIAL.into(),
            mesh_secret.clone(),
        )?);
        let (health, health_service) = tonic_health::server::health_reporter();
        // Grants caches of the records service, fed by the registry's grant watch once started.
        let mut grant_caches: Vec<Arc<GrantsCache>> = Vec::new();
        let mut selector_relays = Vec::new();
        let mut routes = RoutesBuilder::default();
        let mut databases: Vec<(ServiceKind, Database)> = Vec::new();
        let mut bootstrap_admin_secret = None;
        let mut outboxes: Vec<SqlOutbox> = Vec::new();
        let mut followers = Vec::new();
        let mut audit = None;
        for service in config.service.services() {
            let url = match &config.database_url {
                Some(url) => url.clone(),
                None => {
                    format!("sqlite://{}", config.data_dir.join(format!("{}.db", service.name())).display())
                }
            };
            let migrations = match service {
                ServiceKind::Registry => &interlock_registry::store::MIGRATIONS,
                ServiceKind::Records => &interlock_records::MIGRATIONS,
                ServiceKind::Deconfliction => &interlock_deconfliction::store::MIGRATIONS,
                ServiceKind::Audit => &interlock_audit::store::MIGRATIONS,
                _ => &Migrations::NONE,
            };
            let database = Database::open(&url, migrations).await?;
            match service {
                ServiceKind::Registry => {
                    let store = interlock_registry::store::on(database.clone());
                    let admin_secret = secret_from_config_or_file(
                        config.bootstrap_admin_secret.as_deref(),
                        &config.data_dir.join("bootstrap-admin.secret"),
                        generate_secret,
                    )?;
                    let seed = ed25519_seed(
                        config.token_signing_key.as_deref(),
                        &config.data_dir.join("token-signing.key"),
                        "token signing key",
                    )?;
                    let registry = Registry::new(
                        store,
                        RegistryConfig {
                            signing_seed: seed,
                            default_token_ttl: Duration::from_secs(config.token_ttl_seconds),
                            configured_credentials: RegistryConfig::configured_credentials(
                                &admin_secret,
                                &mesh_secret,
                            ),
                            watch_poll_interval: WATCH_POLL_INTERVAL,
                            records_admin: records_address
                                .as_deref()
                                .map(|address| mesh_channel(address, &mesh_tls, Some(mesh_tokens.clone())))
                                .transpose()?
                                .map(RecordsAdminServiceClient::new),
                            mutual_tls: config.mutual_tls(),
                        },
                    );
                    registry.add_services(&mut routes);
                    outboxes.push(SqlOutbox::new(database.clone()));
                    bootstrap_admin_secret = Some(admin_secret);
                }
                ServiceKind::Records => {
                    let store = interlock_records::store::on(database.clone());
                    let grants = Arc::new(GrantsCache::default());
                    let agencies = AgencyServiceClient::new(mesh_channel(
                        &registry_address,
                        &mesh_tls,
                        Some(mesh_tokens.clone()),
                    )?);
                    let records = Records::new(store, grants.clone(), Directory::new(Some(agencies)));
                    records.add_services(&mut routes);
                    outboxes.push(SqlOutbox::new(database.clone()));
                    grant_caches.push(grants);
                    selector_relays.push(records);
                }
                ServiceKind::Deconfliction => {
                    let store = interlock_deconfliction::store::on(database.clone());
                    let key_hex = secret_from_config_or_file(
                        config.deconfliction_key.as_deref(),
                        &config.data_dir.join("deconfliction.key"),
                        || {
                            let mut key = [0u8; 32];
                            rand::Rng::fill(&mut rand::rng(), &mut key);
                            key.iter().map(|b| format!("{b:02x}")).collect()
                        },
                    )?;
                    let key = interlock_selectors::SelectorKey::from_hex(
                        &config.deconfliction_key_id,
                        key_hex.trim(),
                    )
                    .context("the deconfliction key must be hex of 32 or more bytes")?;
                    let deconfliction = Deconfliction::open(
                        store,
                        DeconflictionConfig {
                            key,
                            rules: interlock_deconfliction::domain::rules::Rules {
                                escalation_after_us: config.escalation_after_seconds as i64 * 1_000_000,
                                ..Default::default()
                            },
                            poll_interval: WATCH_POLL_INTERVAL,
                        },
                    )
                    .await?;
                    interlock_deconfliction::add_services(deconfliction.clone(), &mut routes);
                    outboxes.push(SqlOutbox::new(database.clone()));
                    followers.push(deconfliction);
                }
                ServiceKind::Audit => {
                    let service = Audit::new(
                        interlock_audit::store::on(database.clone()),
                        AuditConfig {
                            signing_seed: ed25519_seed(
                                config.audit_signing_key.as_deref(),
                                &config.data_dir.join("audit-signing.key"),
                                "audit signing key",
                            )?,
                            origin: config.audit_origin.clone(),
                            checkpoint_interval: Duration::from_millis(
                                config.audit_checkpoint_interval_ms.max(10),
                            ),
                            retention: Duration::from_secs(
                                config.audit_retention_days.saturating_mul(86_400),
                            ),
                        },
                    );
                    // The empty tree is signed on first start, so a latest checkpoint always exists.
                    service
                        .publish_checkpoint()
                        .await
                        .context("cannot publish the first audit checkpoint")?;
                    service.add_services(&mut routes);
                    audit = Some(service);
                }
                ServiceKind::All => unreachable!("services() expands All"),
            }
            databases.push((service, database));
        }

        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(interlock_api::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        routes.add_service(health_service).add_service(reflection);

        let authenticator = Arc::new(Authenticator::default());
        let (stop, stopped) = watch::channel(false);
        let registry_client = || -> anyhow::Result<_> {
            Ok(AuthenticationServiceClient::new(mesh_channel(
                &registry_address,
                &mesh_tls,
                Some(mesh_tokens.clone()),
            )?))
        };
        let mut background = vec![
            tokio::spawn(sync_verification_keys(authenticator.clone(), registry_client()?, stopped.clone())),
            tokio::spawn(sync_revocations(authenticator.clone(), registry_client()?, stopped.clone())),
            tokio::spawn(report_health(health, databases, authenticator.clone(), stopped.clone())),
        ];
        for deconfliction in followers {
            background.push(tokio::spawn(deconfliction.follow(stopped.clone())));
        }
        if let Some(audit) = audit {
            background.push(tokio::spawn(audit.run_background(stopped.clone())));
        }
        for grants in grant_caches {
            let watch = GrantServiceClient::new(mesh_channel(
                &registry_address,
                &mesh_tls,
                Some(mesh_tokens.clone()),
            )?);
            background.push(tokio::spawn(interlock_records::service::grants::follow(
                grants,
                watch,
                stopped.clone(),
            )));
        }
        for records in selector_relays {
            let client = RecordSelectorServiceClient::new(mesh_channel(
                &deconfliction_address,
                &mesh_tls,
                Some(mesh_tokens.clone()),
            )?);
            background.push(tokio::spawn(interlock_records::service::deconfliction::follow(
                records,
                client,
                stopped.clone(),
            )));
        }
        for outbox in outboxes {
            let audit =
                AuditServiceClient::new(mesh_channel(&audit_address, &mesh_tls, Some(mesh_tokens.clone()))?);
            background.push(tokio::spawn(relay(outbox, audit, stopped.clone())));
        }

        let mut shutdown = stopped.clone();
        let (grace_over, grace_over_rx) = watch::channel(false);
        let mut builder = tonic::transport::Server::builder();
        let tls = server_tls.is_some();
        if let Some(server_tls) = server_tls {
            builder = builder
                .tls_config(server_tls)
                .context("unusable --tls-certificate, --tls-key or --tls-client-ca")?;
        }
        let server = builder
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .layer(ServerTraceLayer)
            .layer(AuthLayer::new(authenticator.clone()))
            // Watches end when shutdown begins and other calls when the grace period is over, so
            // the graceful shutdown below finishes (see `drain`).
            .layer(DrainLayer::new(stopped.clone(), grace_over_rx))
            .add_routes(routes.routes())
            .serve_with_incoming_shutdown(
                // Nagle's algorithm must be off, as tonic's own listener does: otherwise a response
                // written in more than one segment (any CheckCase with conflicts) waits for the
                // client's delayed ACK, ~40 ms per call.
                tokio_stream::StreamExt::map(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    |accepted| accepted.and_then(|stream| stream.set_nodelay(true).map(|()| stream)),
                ),
                async move {
                    let _ = shutdown.changed().await;
                },
            );
        let server = tokio::spawn(server);
        tracing::info!(%address, service = config.service.name(), tls, mutual_tls = config.mutual_tls(), "serving");

        let mesh = Mesh {
            address,
            tls,
            bootstrap_admin_secret,
            stop,
            grace_over,
            server,
            background,
            grace: config.shutdown_grace(),
        };
        if config.service == ServiceKind::All {
            mesh.wait_until_keys_loaded(&authenticator).await?;
        }
        Ok(mesh)
    }

    async fn wait_until_keys_loaded(&self, authenticator: &Authenticator) -> anyhow::Result<()> {
        for _ in 0..200 {
            if !authenticator.keys().is_empty() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("the registry's verification keys did not load within 10 seconds")
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://host:port` of this server, for clients (`https://` when it serves TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.address)
    }

    /// The bootstrap administrator's secret, when this process runs the registry.
    pub fn bootstrap_admin_secret(&self) -> Option<&str> {
        self.bootstrap_admin_secret.as_deref()
    }

    /// Serves until SIGTERM or Ctrl-C, then shuts down gracefully.
    pub async fn run_until_signalled(self) -> anyhow::Result<()> {
        shutdown_signal().await;
        tracing::info!("shutdown requested: no new connections, draining calls in flight");
        self.shutdown().await
    }

    /// Stops accepting connections, ends watches (their clients resume elsewhere) and lets
    /// other calls in flight finish, for at most the grace period; then ends those still running
    /// with UNAVAILABLE.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        let mut server = self.server;
        let mut outcome = tokio::time::timeout(self.grace, &mut server).await;
        if outcome.is_err() {
            tracing::warn!(grace = ?self.grace, "calls still in flight after the grace period; ending them");
            let _ = self.grace_over.send(true);
            outcome = tokio::time::timeout(AFTER_GRACE, &mut server).await;
        }
        for task in self.background {
            task.abort();
        }
        match outcome {
            Ok(joined) => joined?.context("server failed")?,
            Err(_) => {
                tracing::warn!("connections still open after their calls were ended; abandoning them");
                server.abort();
            }
        }
        Ok(())
    }
}

/// The URL this process reaches its own services at. An unspecified listen address
/// (`0.0.0.0`) is dialled on loopback, which is what the server certificate must name then.
fn own_url(address: SocketAddr, tls: bool) -> String {
    let host = match address.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{}", SocketAddr::new(host, address.port()))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Reports each service SERVING while its database answers and tokens can be verified.
async fn report_health(
    reporter: HealthReporter,
    databases: Vec<(ServiceKind, Database)>,
    authenticator: Arc<Authenticator>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let keys_loaded = !authenticator.keys().is_empty();
        let mut all_serving = true;
        for (service, database) in &databases {
            let serving = keys_loaded && database.ping().await.is_ok();
            all_serving &= serving;
            let status = if serving { ServingStatus::Serving } else { ServingStatus::NotServing };
            reporter.set_service_status(service.name(), status).await;
            for name in service_names(*service) {
                reporter.set_service_status(*name, status).await;
            }
        }
        let overall = if all_serving { ServingStatus::Serving } else { ServingStatus::NotServing };
        reporter.set_service_status("", overall).await;
        // Check again soon while not ready, so probes see readiness promptly.
        let wait = if all_serving { HEALTH_INTERVAL } else { Duration::from_millis(100) };
        tokio::select! {
            () = tokio::time::sleep(wait) => {},
            _ = stopped.changed() => {
                reporter.set_service_status("", ServingStatus::NotServing).await;
                return;
            }
        }
    }
}

/// The fully qualified gRPC service names of one Interlock service.
pub fn service_names(service: ServiceKind) -> &'static [&'static str] {
    match service {
        ServiceKind::Registry => interlock_registry::SERVICE_NAMES,
        ServiceKind::Records => interlock_records::SERVICE_NAMES,
        ServiceKind::Deconfliction => interlock_deconfliction::SERVICE_NAMES,
        ServiceKind::Audit => interlock_audit::SERVICE_NAMES,
        ServiceKind::All => &[],
    }
}

/// An Ed25519 seed (base64 of 32 bytes) from configuration, else from `file`, else generated and
/// kept there; `what` names it in errors.
fn ed25519_seed(configured: Option<&str>, file: &Path, what: &str) -> anyhow::Result<[u8; 32]> {
    let encoded = secret_from_config_or_file(configured, file, || {
        let mut seed = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut seed);
        STANDARD.encode(seed)
    })?;
    let bytes = STANDARD.decode(encoded.trim()).with_context(|| format!("the {what} is not base64"))?;
    bytes.try_into().map_err(|_| anyhow::anyhow!("the {what} must be 32 bytes (base64 of an Ed25519 seed)"))
}

/// A secret from configuration, else from `file`, else generated and written to `file` readable
/// by the owner only, so a restarted embedded mesh keeps its credentials.
fn secret_from_config_or_file(
    configured: Option<&str>,
    file: &Path,
    generate: impl FnOnce() -> String,
) -> anyhow::Result<String> {
    if let Some(secret) = configured {
        return Ok(secret.to_owned());
    }
    if let Ok(secret) = std::fs::read_to_string(file) {
        return Ok(secret.trim().to_owned());
    }
    let secret = generate();
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent)?;
    }
    write_private(file, &secret).with_context(|| format!("cannot write {}", file.display()))?;
    tracing::info!(file = %file.display(), "generated a secret and kept it in this file");
    Ok(secret)
}

#[cfg(unix)]
fn write_private(file: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut handle = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(file)?;
    handle.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(file: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(file, contents)
}
