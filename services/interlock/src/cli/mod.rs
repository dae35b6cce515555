//! Operator commands: `interlock agencies|centers|credentials|agreements|grants …`.
//!
//! Every command signs in with one credential (by default the bootstrap administrator that
//! `interlock serve` creates), exchanges it for an access token and calls the registry's gRPC API.
//! Output is an aligned table for people or, with `--output json`, one JSON document built from
//! the response. Failures print the gRPC status code, message, reason and field violations on
//! standard error, and the process exits non-zero.

pub mod agencies;
pub mod agreements;
pub mod centers;
pub mod credentials;
pub mod grants;
mod output;
pub mod records;
mod vocabulary;

use std::path::PathBuf;

use anyhow::Context;
use interlock_api::registry::v1::CreateAccessTokenRequest;
use interlock_api::registry::v1::authentication_service_client::AuthenticationServiceClient;
use interlock_auth::CallerMetadata;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub use output::{Output, report};

/// The bootstrap administrator's credential, which `interlock serve` creates.
pub const DEFAULT_CREDENTIAL: &str = "agencies/INTERLOCK/credentials/bootstrap-admin";

/// The operator command groups.
#[derive(clap::Subcommand)]
pub enum OperatorCommand {
    /// Agencies taking part in the mesh, and their users.
    Agencies(agencies::AgenciesCommand),
    /// Multilateral centers (OCDETF Fusion Center, IOC-2) and their members.
    Centers(centers::CentersCommand),
    /// Machine credentials of agencies (secrets are shown once, on create and rotate).
    Credentials(credentials::CredentialsCommand),
    /// Sharing agreements: create, propose, sign, suspend, resume, revoke, amend, preview.
    Agreements(agreements::AgreementsCommand),
    /// The compiled grants the agreements give each consumer.
    Grants(grants::GrantsCommand),
    /// Records: bulk ingest of record files.
    Records(records::RecordsCommand),
}

/// Runs one operator command.
pub async fn run(command: OperatorCommand) -> anyhow::Result<()> {
    match command {
        OperatorCommand::Agencies(command) => agencies::run(command).await,
        OperatorCommand::Centers(command) => centers::run(command).await,
        OperatorCommand::Credentials(command) => credentials::run(command).await,
        OperatorCommand::Agreements(command) => agreements::run(command).await,
        OperatorCommand::Grants(command) => grants::run(command).await,
        OperatorCommand::Records(command) => records::run(command).await,
    }
}

/// How operator commands reach the mesh and whom they act as. Shared by every operator command.
#[derive(clap::Args)]
pub struct Connection {
    /// Address of the registry (`http://host:port`, or `https://host:port` with --tls-ca).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "INTERLOCK_ADDRESS",
        default_value = "http://127.0.0.1:50051"
    )]
    pub address: String,

    /// The credential to sign in with, `agencies/{code}/credentials/{id}`.
    #[arg(long, global = true, help_heading = "Global options", env = "INTERLOCK_CREDENTIAL", default_value = DEFAULT_CREDENTIAL)]
    pub credential: String,

    /// The credential's secret. Takes precedence over --secret-file.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "INTERLOCK_SECRET",
        hide_env_values = true
    )]
    pub secret: Option<String>,

    /// File holding the credential's secret (what `interlock serve` writes for the bootstrap
    /// administrator). Used when --secret is not given.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        default_value = "./data/bootstrap-admin.secret"
    )]
    pub secret_file: PathBuf,

    /// The officer the calls are made for, sent as `x-interlock-user`. Signing an agreement needs
    /// a registered administrator user of the credential's agency.
    #[arg(long, global = true, help_heading = "Global options", env = "INTERLOCK_USER")]
    pub user: Option<String>,

    /// Output format.
    #[arg(long, global = true, help_heading = "Global options", value_enum, default_value = "table")]
    pub output: Output,

    #[command(flatten)]
    pub tls: crate::tls::ClientTlsArgs,
}

/// A channel to the mesh on which every call carries the caller's token and user.
pub type Authed = InterceptedService<Channel, CallerMetadata>;

/// A signed-in connection to the mesh.
pub struct Session {
    pub channel: Authed,
    pub output: Output,
}

impl Connection {
    /// Connects and exchanges the credential's secret for an access token.
    pub async fn sign_in(&self) -> anyhow::Result<Session> {
        let secret = self.secret()?;
        let channel = self.tls.connect(&self.address).await?;
        let token = AuthenticationServiceClient::new(channel.clone())
            .create_access_token(CreateAccessTokenRequest {
                credential: self.credential.clone(),
                secret,
                ttl: None,
            })
            .await
            .with_context(|| format!("cannot sign in as {}", self.credential))?
            .into_inner();
        let mut metadata = CallerMetadata::bearer(token.access_token);
        metadata.user = self.user.clone();
        Ok(Session { channel: InterceptedService::new(channel, metadata), output: self.output })
    }

    fn secret(&self) -> anyhow::Result<String> {
        if let Some(secret) = &self.secret {
            return Ok(secret.trim().to_owned());
        }
        let secret = std::fs::read_to_string(&self.secret_file).with_context(|| {
            format!(
                "no secret for {}: pass --secret, set INTERLOCK_SECRET, or point --secret-file at a \
                 readable file ({} cannot be read)",
                self.credential,
                self.secret_file.display()
            )
        })?;
        let secret = secret.trim();
        anyhow::ensure!(!secret.is_empty(), "{} is empty", self.secret_file.display());
        Ok(secret.to_owned())
    }
}

/// `agencies/{code}` from a code such as `DEA` (a full resource name is accepted as well).
pub fn agency_name(code: &str) -> String {
    prefixed("agencies/", code)
}

/// `centers/{id}` from a center id such as `ioc-2`.
pub fn center_name(id: &str) -> String {
    prefixed("centers/", id)
}

/// `agreements/{id}` from an agreement id.
pub fn agreement_name(id: &str) -> String {
    prefixed("agreements/", id)
}

fn prefixed(prefix: &str, value: &str) -> String {
    if value.starts_with(prefix) { value.to_owned() } else { format!("{prefix}{value}") }
}

/// The last segment of a resource name, for tables: `agencies/DEA` → `DEA`.
pub fn short(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// Collects every page of a list call.
pub async fn all_pages<T, F, Fut>(mut fetch: F) -> Result<Vec<T>, tonic::Status>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, String), tonic::Status>>,
{
    let mut items = Vec::new();
    let mut token = String::new();
    loop {
        let (page, next) = fetch(token).await?;
        items.extend(page);
        if next.is_empty() {
            return Ok(items);
        }
        token = next;
    }
}

/// A fresh idempotency key for create calls.
pub fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: OperatorCommand,
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn positional_names_do_not_shadow_the_global_flags() {
        let cli = Cli::try_parse_from([
            "interlock",
            "credentials",
            "get",
            "DEA/admin-backend",
            "--credential",
            "agencies/DEA/credentials/admin-backend",
            "--output",
            "json",
        ])
        .unwrap();
        let OperatorCommand::Credentials(command) = cli.command else { panic!("credentials") };
        assert_eq!(command.connection.credential, "agencies/DEA/credentials/admin-backend");
        assert_eq!(command.connection.output, Output::Json);
    }
}
