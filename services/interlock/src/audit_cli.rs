//! `interlock audit verify` and `interlock audit export`: the operator's and the compliance
//! reviewer's tools for the audit log.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use interlock_api::audit::v1::audit_service_client::AuditServiceClient;
use interlock_api::audit::v1::{
    Action, AuditEvent, EventFilter, ExportEventsRequest, InterlockService, Outcome,
};
use interlock_audit::domain::checkpoint::{NoteSigner, parse_verifier_key};
use interlock_auth::{CallerMetadata, Purpose};
use interlock_storage::Database;
use tokio_stream::StreamExt;
use tonic::service::interceptor::InterceptedService;

/// `interlock audit verify`.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The audit database (`sqlite://…` or `postgres://…`). Default: `sqlite://<data-dir>/audit.db`.
    #[arg(long, env = "INTERLOCK_DATABASE_URL")]
    pub database_url: Option<String>,

    /// Folder of the embedded mesh (for the default database and signing key).
    #[arg(long, env = "INTERLOCK_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// The log's pinned signed-note verifier key (`<origin>+<key id>+<base64 key>`, as GetLogInfo
    /// shows it), obtained out of band. Default: derived from `<data-dir>/audit-signing.key` and
    /// `--audit-origin`, which only an operator of the embedded mesh holds.
    #[arg(long, env = "INTERLOCK_AUDIT_VERIFIER_KEY")]
    pub verifier_key: Option<String>,

    /// The log's origin, with the default verifier key.
    #[arg(long, env = "INTERLOCK_AUDIT_ORIGIN", default_value = "interlock.local/audit")]
    pub audit_origin: String,
}

/// Recomputes the tree from storage and checks every signed checkpoint; fails when anything is off.
pub async fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let (origin, key) = match &args.verifier_key {
        Some(text) => {
            parse_verifier_key(text).context("--verifier-key is not a signed-note Ed25519 verifier key")?
        }
        None => {
            let file = args.data_dir.join("audit-signing.key");
            let encoded = std::fs::read_to_string(&file)
                .with_context(|| format!("no --verifier-key and cannot read {}", file.display()))?;
            let seed: [u8; 32] = STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|bytes| bytes.try_into().ok())
                .context("the audit signing key is not base64 of 32 bytes")?;
            let signer = NoteSigner::new(&seed, &args.audit_origin);
            (args.audit_origin.clone(), signer.public_key())
        }
    };
    let url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", args.data_dir.join("audit.db").display()));
    let database = Database::open(&url, &interlock_audit::store::MIGRATIONS).await?;
    let store = interlock_audit::store::on(database);
    let report = interlock_audit::verify::verify(store.as_ref(), &origin, &key).await?;
    println!(
        "audit log {origin}: {} leaves ({} pruned), {} signed checkpoints",
        report.leaves, report.pruned, report.checkpoints
    );
    if report.is_intact() {
        println!("verified: every leaf hash, every interior node and every checkpoint matches");
        return Ok(());
    }
    for problem in &report.problems {
        println!("PROBLEM: {problem}");
    }
    bail!("the audit log failed verification ({} problems)", report.problems.len())
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ExportFormat {
    Ndjson,
    Csv,
}

/// `interlock audit export`.
#[derive(clap::Args)]
pub struct ExportArgs {
    /// The audit service.
    #[arg(long, env = "INTERLOCK_AUDIT_ADDRESS", default_value = "http://127.0.0.1:50051")]
    pub server: String,

    /// An access token of a center auditor or agency administrator. Default: the bootstrap
    /// administrator's, exchanged with the secret in `<data-dir>/bootstrap-admin.secret`.
    #[arg(long, env = "INTERLOCK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    #[arg(long, env = "INTERLOCK_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// The person running the export (recorded in the audit log).
    #[arg(long, env = "INTERLOCK_USER")]
    pub user: String,

    #[arg(long, value_enum, default_value = "ndjson")]
    pub format: ExportFormat,

    /// Only events with resources owned by this agency, `agencies/{code}`.
    #[arg(long)]
    pub resource_owner: Option<String>,

    /// Only events of this actor agency, `agencies/{code}`.
    #[arg(long)]
    pub actor_agency: Option<String>,
}

/// Streams the visible events to standard output as NDJSON or CSV.
pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let token = match &args.token {
        Some(token) => token.clone(),
        None => {
            let secret = std::fs::read_to_string(args.data_dir.join("bootstrap-admin.secret"))
                .context("no --token and no bootstrap administrator secret in the data dir")?;
            let mut auth = interlock_api::registry::v1::authentication_service_client::AuthenticationServiceClient::connect(
                args.server.clone(),
            )
            .await?;
            auth.create_access_token(interlock_api::registry::v1::CreateAccessTokenRequest {
                credential: "agencies/INTERLOCK/credentials/bootstrap-admin".into(),
                secret: secret.trim().to_owned(),
                ttl: None,
            })
            .await?
            .into_inner()
            .access_token
        }
    };
    let channel = tonic::transport::Endpoint::from_shared(args.server.clone())?.connect().await?;
    let metadata = CallerMetadata::bearer(token).on_behalf_of(&args.user, Purpose::Investigation);
    let mut client = AuditServiceClient::new(InterceptedService::new(channel, metadata));
    let filter = EventFilter {
        resource_owner: args.resource_owner.clone().unwrap_or_default(),
        actor_agency: args.actor_agency.clone().unwrap_or_default(),
        ..Default::default()
    };
    let mut stream = client
        .export_events(ExportEventsRequest { filter: Some(filter), ..Default::default() })
        .await?
        .into_inner();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if let ExportFormat::Csv = args.format {
        writeln!(out, "{}", CSV_COLUMNS.join(","))?;
    }
    while let Some(message) = stream.next().await {
        for event in message?.events {
            match args.format {
                ExportFormat::Ndjson => writeln!(out, "{}", to_json(&event))?,
                ExportFormat::Csv => writeln!(out, "{}", to_csv(&event))?,
            }
        }
    }
    out.flush()?;
    Ok(())
}

const CSV_COLUMNS: [&str; 14] = [
    "leaf_index",
    "event_id",
    "time",
    "service",
    "action",
    "outcome",
    "actor_agency",
    "actor_user",
    "purpose",
    "case_reference",
    "resources",
    "agreements",
    "error_reason",
    "trace_id",
];

fn time(event: &AuditEvent) -> String {
    event.time.as_ref().map(|t| format!("{}.{:06}", t.seconds, t.nanos / 1_000)).unwrap_or_default()
}

fn names(event: &AuditEvent) -> (&'static str, &'static str, &'static str) {
    (
        InterlockService::try_from(event.service).map_or("", |s| s.as_str_name()),
        Action::try_from(event.action).map_or("", |a| a.as_str_name()),
        Outcome::try_from(event.outcome).map_or("", |o| o.as_str_name()),
    )
}

fn to_json(event: &AuditEvent) -> serde_json::Value {
    let (service, action, outcome) = names(event);
    serde_json::json!({
        "name": event.name,
        "leafIndex": event.leaf_index,
        "leafHash": hex_string(&event.leaf_hash),
        "time": time(event),
        "service": service,
        "method": event.method,
        "action": action,
        "actorAgency": event.actor_agency,
        "actorUser": event.actor_user,
        "credential": event.credential,
        "purpose": event.purpose,
        "caseReference": event.case_reference,
        "resources": event.resources.iter().map(|r| serde_json::json!({
            "resource": r.resource,
            "owners": r.owners,
            "agreement": r.agreement,
            "agreementVersion": r.agreement_version,
            "withheld": r.withheld,
        })).collect::<Vec<_>>(),
        "outcome": outcome,
        "errorReason": event.error_reason,
        "traceId": event.trace_id,
        "peerAddress": event.peer_address,
        "details": event.details,
        "pruned": event.pruned,
        "redacted": event.redacted,
    })
}

fn to_csv(event: &AuditEvent) -> String {
    let (service, action, outcome) = names(event);
    let join = |values: Vec<&str>| values.join(";");
    let fields = [
        event.leaf_index.to_string(),
        event.event_id.clone(),
        time(event),
        service.to_owned(),
        action.to_owned(),
        outcome.to_owned(),
        event.actor_agency.clone(),
        event.actor_user.clone(),
        event.purpose.to_string(),
        event.case_reference.clone(),
        join(event.resources.iter().map(|r| r.resource.as_str()).collect()),
        join(event.resources.iter().map(|r| r.agreement.as_str()).collect()),
        event.error_reason.clone(),
        event.trace_id.clone(),
    ];
    fields.iter().map(|field| csv_field(field)).collect::<Vec<_>>().join(",")
}

/// RFC 4180 quoting, and a leading quote mark for values a spreadsheet would run as a formula.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) { format!("'{value}") } else { value.to_owned() };
    if value.contains([',', '"', '\n', '\r']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
