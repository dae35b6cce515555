//! The configuration of `interlock serve`: flags with `INTERLOCK_*` environment fallbacks.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use interlock_telemetry::LogFormat;

/// Which part of the mesh a process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ServiceKind {
    /// All four services in one process on one port (the embedded default).
    All,
    Registry,
    Records,
    Deconfliction,
    Audit,
}

impl ServiceKind {
    pub const EACH: [ServiceKind; 4] =
        [ServiceKind::Registry, ServiceKind::Records, ServiceKind::Deconfliction, ServiceKind::Audit];

    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::All => "all",
            ServiceKind::Registry => "registry",
            ServiceKind::Records => "records",
            ServiceKind::Deconfliction => "deconfliction",
            ServiceKind::Audit => "audit",
        }
    }

    /// The services this process runs.
    pub fn services(self) -> Vec<ServiceKind> {
        match self {
            ServiceKind::All => Self::EACH.to_vec(),
            one => vec![one],
        }
    }
}

/// `interlock serve`.
#[derive(Clone, clap::Args)]
pub struct ServeConfig {
    /// Address to listen on.
    #[arg(long, env = "INTERLOCK_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// Which service to run: `all` (one process, one port) or one service, as a Kubernetes pod does.
    #[arg(long, env = "INTERLOCK_SERVICE", value_enum, default_value = "all")]
    pub service: ServiceKind,

    /// Folder for the embedded SQLite databases and generated secrets (created on first run).
    #[arg(long, env = "INTERLOCK_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Database of a single service (`sqlite://…` or `postgres://…`). Default: `sqlite://<data-dir>/<service>.db`.
    /// Not accepted with `--service all`, where each service gets its own file under the data dir.
    #[arg(long, env = "INTERLOCK_DATABASE_URL")]
    pub database_url: Option<String>,

    /// Address of the registry (`http://host:port`, or `https://host:port` verified with
    /// --mesh-tls-ca). Default: this process.
    #[arg(long, env = "INTERLOCK_REGISTRY_ADDRESS")]
    pub registry_address: Option<String>,

    /// Address of the records service. Default: this process.
    #[arg(long, env = "INTERLOCK_RECORDS_ADDRESS")]
    pub records_address: Option<String>,

    /// Address of the deconfliction service. Default: this process.
    #[arg(long, env = "INTERLOCK_DECONFLICTION_ADDRESS")]
    pub deconfliction_address: Option<String>,

    /// Address of the audit service. Default: this process.
    #[arg(long, env = "INTERLOCK_AUDIT_ADDRESS")]
    pub audit_address: Option<String>,

    /// PEM file with the certificate chain this server presents (its own certificate first).
    /// With --tls-key, the server speaks only TLS: every address of it becomes `https://`.
    #[arg(long, env = "INTERLOCK_TLS_CERTIFICATE", requires = "tls_key")]
    pub tls_certificate: Option<PathBuf>,

    /// PEM file with the private key of --tls-certificate.
    #[arg(long, env = "INTERLOCK_TLS_KEY", requires = "tls_certificate")]
    pub tls_key: Option<PathBuf>,

    /// PEM bundle of the CAs whose client certificates this server verifies (mutual TLS). Clients
    /// may still connect without one; only credentials bound to a certificate need it, and
    /// binding a credential is refused while this is unset.
    #[arg(long, env = "INTERLOCK_TLS_CLIENT_CA", requires = "tls_certificate")]
    pub tls_client_ca: Option<PathBuf>,

    /// PEM bundle of the CAs that verify the other services at `https://` addresses (and this
    /// process itself, when it serves TLS and calls its own services).
    #[arg(long, env = "INTERLOCK_MESH_TLS_CA")]
    pub mesh_tls_ca: Option<PathBuf>,

    /// PEM certificate chain the services present when calling each other over `https://`, for
    /// servers that ask for a client certificate. Optional.
    #[arg(long, env = "INTERLOCK_MESH_TLS_CLIENT_CERTIFICATE", requires_all = ["mesh_tls_client_key", "mesh_tls_ca"])]
    pub mesh_tls_client_certificate: Option<PathBuf>,

    /// PEM private key of --mesh-tls-client-certificate.
    #[arg(long, env = "INTERLOCK_MESH_TLS_CLIENT_KEY", requires = "mesh_tls_client_certificate")]
    pub mesh_tls_client_key: Option<PathBuf>,

    /// Secret of the mesh service credential (`agencies/INTERLOCK/credentials/mesh`), the same for
    /// every service. Generated per process when unset, which only works with `--service all`.
    #[arg(long, env = "INTERLOCK_MESH_SECRET", hide_env_values = true)]
    pub mesh_secret: Option<String>,

    /// Secret of the bootstrap administrator (`agencies/INTERLOCK/credentials/bootstrap-admin`).
    /// When unset, one is generated and written to `<data-dir>/bootstrap-admin.secret`.
    #[arg(long, env = "INTERLOCK_BOOTSTRAP_ADMIN_SECRET", hide_env_values = true)]
    pub bootstrap_admin_secret: Option<String>,

    /// Base64 of the 32-byte Ed25519 seed that signs access tokens (registry only; the same on
    /// every replica). When unset, one is generated and kept in `<data-dir>/token-signing.key`.
    #[arg(long, env = "INTERLOCK_TOKEN_SIGNING_KEY", hide_env_values = true)]
    pub token_signing_key: Option<String>,

    /// Hex of the secret key (32 bytes or more) that blinds selectors into HMAC-SHA-256 digests
    /// at the deconfliction hub (see docs/selectors.md). Generated into
    /// `<data-dir>/deconfliction.key` when unset; the same on every replica.
    #[arg(long, env = "INTERLOCK_DECONFLICTION_KEY", hide_env_values = true)]
    pub deconfliction_key: Option<String>,

    /// Identifier of that key, published by GetMatchingRules so agencies can blind selectors
    /// themselves; change it whenever the key changes.
    #[arg(long, env = "INTERLOCK_DECONFLICTION_KEY_ID", default_value = "dk-1")]
    pub deconfliction_key_id: String,

    /// How long both sides of a deconfliction conflict have to acknowledge it before the center
    /// watch desk is alerted, in seconds.
    #[arg(long, env = "INTERLOCK_ESCALATION_AFTER_SECONDS", default_value_t = 1800)]
    pub escalation_after_seconds: u64,
    /// Base64 of the 32-byte Ed25519 seed that signs audit checkpoints (audit only; the same on
    /// every replica). When unset, one is generated and kept in `<data-dir>/audit-signing.key`.
    #[arg(long, env = "INTERLOCK_AUDIT_SIGNING_KEY", hide_env_values = true)]
    pub audit_signing_key: Option<String>,

    /// The audit log's origin: the first line and key name of every signed checkpoint.
    #[arg(long, env = "INTERLOCK_AUDIT_ORIGIN", default_value = "interlock.local/audit")]
    pub audit_origin: String,

    /// Longest time between an audit event becoming durable and a signed checkpoint covering it,
    /// in milliseconds.
    #[arg(long, env = "INTERLOCK_AUDIT_CHECKPOINT_INTERVAL_MS", default_value_t = 1000)]
    pub audit_checkpoint_interval_ms: u64,

    /// How long audit event bodies are kept, in days (CJIS asks for at least a year); leaf hashes
    /// are kept forever.
    #[arg(long, env = "INTERLOCK_AUDIT_RETENTION_DAYS", default_value_t = 365)]
    pub audit_retention_days: u64,

    /// Lifetime of access tokens, in seconds.
    #[arg(long, env = "INTERLOCK_TOKEN_TTL_SECONDS", default_value_t = 900)]
    pub token_ttl_seconds: u64,

    /// How long in-flight calls may take to finish after SIGTERM or Ctrl-C, in seconds.
    #[arg(long, env = "INTERLOCK_SHUTDOWN_GRACE_SECONDS", default_value_t = 20)]
    pub shutdown_grace_seconds: u64,

    /// Log format on standard error.
    #[arg(long, env = "INTERLOCK_LOG_FORMAT", value_enum, default_value = "pretty")]
    pub log_format: LogFormat,
}

impl ServeConfig {
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }

    /// Whether this server verifies client certificates, so credentials may be bound to one.
    pub fn mutual_tls(&self) -> bool {
        self.tls_certificate.is_some() && self.tls_client_ca.is_some()
    }
}

/// Printed at start-up: every setting, secrets only as set or unset.
impl fmt::Display for ServeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |value: &Option<String>| if value.is_some() { "<set>" } else { "<generated>" };
        // Addresses are URLs too: any password in them is hidden like a database's.
        let address = |value: &Option<String>| {
            value.as_deref().map_or_else(|| "<this process>".into(), interlock_storage::redact)
        };
        writeln!(f, "listen                 {}", self.listen)?;
        writeln!(f, "service                {}", self.service.name())?;
        writeln!(f, "data dir               {}", self.data_dir.display())?;
        writeln!(
            f,
            "database url           {}",
            self.database_url
                .as_deref()
                .map_or_else(|| "<embedded SQLite per service>".into(), interlock_storage::redact)
        )?;
        writeln!(f, "registry address       {}", address(&self.registry_address))?;
        writeln!(f, "records address        {}", address(&self.records_address))?;
        writeln!(f, "deconfliction address  {}", address(&self.deconfliction_address))?;
        writeln!(f, "audit address          {}", address(&self.audit_address))?;
        let file = |value: &Option<PathBuf>| {
            value.as_ref().map_or_else(|| "<none>".to_owned(), |path| path.display().to_string())
        };
        match (&self.tls_certificate, &self.tls_key) {
            (Some(certificate), Some(key)) => {
                writeln!(f, "tls                    certificate {}", certificate.display())?;
                writeln!(f, "                       key {}", key.display())?;
            }
            _ => writeln!(f, "tls                    <off: plaintext>")?,
        }
        match &self.tls_client_ca {
            Some(ca) => writeln!(
                f,
                "mutual tls             client CA {} (client certificates optional)",
                ca.display()
            )?,
            None => writeln!(f, "mutual tls             <off: credentials cannot be bound to certificates>")?,
        }
        writeln!(f, "mesh tls CA            {}", file(&self.mesh_tls_ca))?;
        writeln!(
            f,
            "mesh tls client        {}",
            match (&self.mesh_tls_client_certificate, &self.mesh_tls_client_key) {
                (Some(certificate), Some(key)) =>
                    format!("certificate {}, key {}", certificate.display(), key.display()),
                _ => "<none>".to_owned(),
            }
        )?;
        writeln!(f, "mesh secret            {}", secret(&self.mesh_secret))?;
        writeln!(f, "bootstrap admin secret {}", secret(&self.bootstrap_admin_secret))?;
        writeln!(f, "token signing key      {}", secret(&self.token_signing_key))?;
        writeln!(
            f,
            "deconfliction key      {} ({})",
            secret(&self.deconfliction_key),
            self.deconfliction_key_id
        )?;
        writeln!(f, "escalation after       {}s", self.escalation_after_seconds)?;
        writeln!(f, "token ttl              {}s", self.token_ttl_seconds)?;
        writeln!(f, "audit signing key      {}", secret(&self.audit_signing_key))?;
        writeln!(f, "audit origin           {}", self.audit_origin)?;
        writeln!(f, "audit checkpoints      every {}ms", self.audit_checkpoint_interval_ms)?;
        writeln!(f, "audit retention        {} days", self.audit_retention_days)?;
        writeln!(f, "shutdown grace         {}s", self.shutdown_grace_seconds)?;
        write!(f, "otlp export            {}", otlp_export(std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok()))
    }
}

/// The OTLP endpoint as printed: a collector URL may carry credentials in its user-info.
fn otlp_export(endpoint: Option<String>) -> String {
    endpoint.as_deref().map_or_else(|| "<off>".into(), interlock_storage::redact)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        config: ServeConfig,
    }

    const SECRETS: &[&str] = &[
        "mesh-s3cret-value",
        "bootstrap-s3cret-value",
        "dG9rZW4tc2lnbmluZy1rZXktc2VlZC0zMi1ieXRlcyE=",
        "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00",
        "YXVkaXQtc2lnbmluZy1rZXktc2VlZC0zMi1ieXRlcyE=",
        "db-pa55word",
        "registry-pa55word",
    ];

    /// A split-mode records pod with every secret set, as Kubernetes would configure it.
    fn configured() -> ServeConfig {
        Serve::parse_from([
            "serve",
            "--listen",
            "0.0.0.0:6000",
            "--service",
            "records",
            "--data-dir",
            "/var/lib/interlock",
            "--database-url",
            "postgres://records:db-pa55word@db.internal:5432/records",
            "--registry-address",
            "http://mesh:registry-pa55word@registry.internal:50051",
            "--audit-address",
            "http://audit.internal:50051",
            "--mesh-secret",
            SECRETS[0],
            "--bootstrap-admin-secret",
            SECRETS[1],
            "--token-signing-key",
            SECRETS[2],
            "--deconfliction-key",
            SECRETS[3],
            "--deconfliction-key-id",
            "dk-7",
            "--audit-signing-key",
            SECRETS[4],
            "--audit-origin",
            "fusion.example/audit",
            "--escalation-after-seconds",
            "900",
            "--token-ttl-seconds",
            "300",
            "--audit-checkpoint-interval-ms",
            "250",
            "--audit-retention-days",
            "400",
            "--shutdown-grace-seconds",
            "30",
        ])
        .config
    }

    #[test]
    fn the_printed_configuration_shows_every_setting_and_no_secret() {
        let printed = configured().to_string();
        for secret in SECRETS {
            assert!(!printed.contains(secret), "{secret:?} printed in:\n{printed}");
        }
        for shown in [
            "listen                 0.0.0.0:6000",
            "service                records",
            "data dir               /var/lib/interlock",
            "database url           postgres://records:***@db.internal:5432/records",
            "registry address       http://mesh:***@registry.internal:50051",
            "records address        <this process>",
            "audit address          http://audit.internal:50051",
            "mesh secret            <set>",
            "bootstrap admin secret <set>",
            "token signing key      <set>",
            "deconfliction key      <set> (dk-7)",
            "escalation after       900s",
            "token ttl              300s",
            "audit signing key      <set>",
            "audit origin           fusion.example/audit",
            "audit checkpoints      every 250ms",
            "audit retention        400 days",
            "shutdown grace         30s",
        ] {
            assert!(printed.lines().any(|line| line == shown), "{shown:?} missing from:\n{printed}");
        }
    }

    #[test]
    fn unset_secrets_are_printed_as_generated() {
        let config = ServeConfig {
            mesh_secret: None,
            bootstrap_admin_secret: None,
            token_signing_key: None,
            deconfliction_key: None,
            audit_signing_key: None,
            database_url: None,
            ..configured()
        };
        let printed = config.to_string();
        for setting in ["mesh secret", "bootstrap admin secret", "token signing key", "audit signing key"] {
            let line = format!("{setting:<22} <generated>");
            assert!(printed.lines().any(|l| l == line), "{line:?} missing from:\n{printed}");
        }
        assert!(printed.contains("database url           <embedded SQLite per service>"));
    }

    #[test]
    fn an_otlp_endpoint_is_printed_without_its_credentials() {
        assert_eq!(otlp_export(None), "<off>");
        assert_eq!(otlp_export(Some("http://collector:4317".into())), "http://collector:4317");
        assert_eq!(
            otlp_export(Some("https://tenant:t0ken@otlp.example:4317".into())),
            "https://tenant:***@otlp.example:4317"
        );
    }
}
