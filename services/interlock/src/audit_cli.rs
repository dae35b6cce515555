//! `interlock audit verify`, `interlock audit export`, `interlock audit checkpoint` and
//! `interlock audit dead-letters`: the operator's, the compliance reviewer's and each agency's
//! tools for the audit log.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use interlock_api::audit::v1::audit_service_client::AuditServiceClient;
use interlock_api::audit::v1::{
    Action, AuditEvent, EventFilter, ExportEventsRequest, GetConsistencyProofRequest,
    GetLatestCheckpointRequest, GetLogInfoRequest, InterlockService, Outcome,
};
use interlock_api::registry::v1::CreateAccessTokenRequest;
use interlock_api::registry::v1::authentication_service_client::AuthenticationServiceClient;
use interlock_audit::domain::checkpoint::{NoteSigner, parse_verifier_key, verify_note};
use interlock_audit::merkle::{Hash, verify_consistency};
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

    #[command(flatten)]
    pub tls: crate::tls::ClientTlsArgs,

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
    let channel = args.tls.connect(&args.server).await?;
    let token = access_token(channel.clone(), args.token.as_deref(), &args.data_dir).await?;
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

/// `interlock audit checkpoint`.
#[derive(clap::Args)]
pub struct CheckpointArgs {
    /// The audit service.
    #[arg(long, env = "INTERLOCK_AUDIT_ADDRESS", default_value = "http://127.0.0.1:50051")]
    pub server: String,

    #[command(flatten)]
    pub tls: crate::tls::ClientTlsArgs,

    /// The file where this agency keeps the last checkpoint it verified (created on first use).
    #[arg(long, env = "INTERLOCK_AUDIT_STATE")]
    pub state: PathBuf,

    /// The log's signed-note verifier key (`<origin>+<key id>+<base64 key>`), obtained out of band
    /// from the mesh operator. Without it, the key pinned in the state file is used, and on first
    /// use the key the log announces is pinned (trust on first use, said so on standard error).
    #[arg(long, env = "INTERLOCK_AUDIT_VERIFIER_KEY")]
    pub verifier_key: Option<String>,

    /// An access token of any credential of the mesh. Default: the bootstrap administrator's,
    /// exchanged with the secret in `<data-dir>/bootstrap-admin.secret`.
    #[arg(long, env = "INTERLOCK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    #[arg(long, env = "INTERLOCK_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
}

/// What `interlock audit checkpoint` established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointReport {
    /// The verified checkpoint's tree size, now in the state file.
    pub tree_size: u64,
    /// The tree size of the checkpoint the state file held before, if any.
    pub previous_tree_size: Option<u64>,
    /// Whether the verifier key was pinned by this run without being supplied (trust on first use).
    pub pinned_on_first_use: bool,
}

/// The last checkpoint an agency verified, as kept in its state file (JSON).
struct SeenCheckpoint {
    verifier_key: String,
    tree_size: u64,
    root: Hash,
    signed_note: String,
}

impl SeenCheckpoint {
    fn load(file: &std::path::Path) -> anyhow::Result<Option<Self>> {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error).with_context(|| format!("cannot read {}", file.display())),
        };
        let malformed = || format!("{} is not an audit checkpoint state file", file.display());
        let json: serde_json::Value = serde_json::from_str(&text).with_context(malformed)?;
        let field = |name: &str| json[name].as_str().map(str::to_owned).with_context(malformed);
        let root: Hash = STANDARD
            .decode(field("rootHash")?)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .with_context(malformed)?;
        Ok(Some(Self {
            verifier_key: field("verifierKey")?,
            tree_size: json["treeSize"].as_u64().with_context(malformed)?,
            root,
            signed_note: field("signedNote")?,
        }))
    }

    /// Replaces the state file in one step (write beside it, then rename), so an interruption
    /// never leaves a half-written state that would break the next run.
    fn save(&self, file: &std::path::Path) -> anyhow::Result<()> {
        let json = serde_json::json!({
            "verifierKey": self.verifier_key,
            "treeSize": self.tree_size,
            "rootHash": STANDARD.encode(self.root),
            "signedNote": self.signed_note,
        });
        let temporary = file.with_extension("tmp");
        std::fs::write(&temporary, format!("{json:#}\n"))
            .with_context(|| format!("cannot write {}", temporary.display()))?;
        std::fs::rename(&temporary, file).with_context(|| format!("cannot replace {}", file.display()))
    }
}

/// Fetches the latest signed checkpoint, verifies its signature with the pinned key and its
/// consistency with the checkpoint seen last time, then keeps it as the new state. Fails, leaving
/// the state file untouched, when the log was rewritten (or rolled back) since.
pub async fn checkpoint(args: CheckpointArgs) -> anyhow::Result<CheckpointReport> {
    let previous = SeenCheckpoint::load(&args.state)?;
    let channel = args.tls.connect(&args.server).await?;
    let token = access_token(channel.clone(), args.token.as_deref(), &args.data_dir).await?;
    let mut client = AuditServiceClient::new(InterceptedService::new(channel, CallerMetadata::bearer(token)));

    let mut pinned_on_first_use = false;
    let verifier_key = match (&args.verifier_key, &previous) {
        (Some(supplied), Some(seen)) if supplied.trim() != seen.verifier_key => bail!(
            "{} pins the verifier key {} but --verifier-key says {}; if the operator really changed \
             the log's key, confirm it with them and start a new state file",
            args.state.display(),
            seen.verifier_key,
            supplied.trim()
        ),
        (Some(supplied), _) => supplied.trim().to_owned(),
        (None, Some(seen)) => seen.verifier_key.clone(),
        (None, None) => {
            let info =
                client.get_log_info(GetLogInfoRequest {}).await?.into_inner().log_info.unwrap_or_default();
            eprintln!(
                "warning: no --verifier-key; trusting the key the log announces on first use and pinning it in {}:\n  {}\n\
                 compare it with the key the mesh operator gave you out of band",
                args.state.display(),
                info.verifier_key
            );
            pinned_on_first_use = true;
            info.verifier_key
        }
    };
    let (origin, key) = parse_verifier_key(&verifier_key)
        .context("the verifier key is not a signed-note Ed25519 verifier key")?;

    let latest = client
        .get_latest_checkpoint(GetLatestCheckpointRequest {})
        .await?
        .into_inner()
        .checkpoint
        .context("the audit service returned no checkpoint")?;
    // Only what the signature covers counts; the message's parsed fields must merely agree.
    let note = verify_note(&latest.signed_note, &origin, &key).map_err(|error| {
        anyhow::anyhow!("the latest checkpoint does not verify with the pinned key: {error}")
    })?;
    if note.tree_size != latest.tree_size || note.root.as_slice() != latest.root_hash.as_slice() {
        bail!("the latest checkpoint's fields differ from its signed note");
    }
    println!("checkpoint of {origin}: {} leaves, signature verified", note.tree_size);

    if let Some(seen) = &previous {
        let rewritten = |why: String| {
            anyhow::anyhow!(
                "THE AUDIT LOG WAS REWRITTEN: {why}.\nKeep both signed checkpoints as evidence:\n\
                 --- seen before ({})\n{}--- served now\n{}",
                args.state.display(),
                seen.signed_note,
                latest.signed_note
            )
        };
        if note.tree_size < seen.tree_size {
            return Err(rewritten(format!(
                "the log shrank from {} to {} leaves",
                seen.tree_size, note.tree_size
            )));
        }
        let proof = if note.tree_size == seen.tree_size || seen.tree_size == 0 {
            // Equal sizes compare roots; every tree extends the empty one: no proof to fetch.
            Vec::new()
        } else {
            let response = client
                .get_consistency_proof(GetConsistencyProofRequest {
                    first_tree_size: seen.tree_size,
                    second_tree_size: note.tree_size,
                })
                .await?
                .into_inner();
            response
                .hashes
                .iter()
                .map(|hash| Hash::try_from(hash.as_slice()))
                .collect::<Result<Vec<Hash>, _>>()
                .map_err(|_| rewritten("the consistency proof holds a hash that is not 32 bytes".into()))?
        };
        verify_consistency(seen.tree_size, note.tree_size, &proof, &seen.root, &note.root).map_err(
            |error| {
                rewritten(format!(
                    "the checkpoint at {} leaves is not an extension of the one at {} seen before ({error})",
                    note.tree_size, seen.tree_size
                ))
            },
        )?;
        println!("consistent with the checkpoint at {} leaves seen before", seen.tree_size);
    }

    SeenCheckpoint {
        verifier_key,
        tree_size: note.tree_size,
        root: note.root,
        signed_note: latest.signed_note,
    }
    .save(&args.state)?;
    println!("kept in {}", args.state.display());
    Ok(CheckpointReport {
        tree_size: note.tree_size,
        previous_tree_size: previous.map(|seen| seen.tree_size),
        pinned_on_first_use,
    })
}

/// `token`, or the bootstrap administrator's token exchanged with the secret in the data dir.
async fn access_token(
    server: tonic::transport::Channel,
    token: Option<&str>,
    data_dir: &std::path::Path,
) -> anyhow::Result<String> {
    if let Some(token) = token {
        return Ok(token.to_owned());
    }
    let secret = std::fs::read_to_string(data_dir.join("bootstrap-admin.secret"))
        .context("no --token and no bootstrap administrator secret in the data dir")?;
    Ok(AuthenticationServiceClient::new(server)
        .create_access_token(CreateAccessTokenRequest {
            credential: "agencies/INTERLOCK/credentials/bootstrap-admin".into(),
            secret: secret.trim().to_owned(),
            ttl: None,
        })
        .await?
        .into_inner()
        .access_token)
}

/// A service that queues audit events in an outbox of its own database.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum OutboxService {
    Registry,
    Records,
    Deconfliction,
}

/// `interlock audit dead-letters`.
#[derive(clap::Args)]
pub struct DeadLettersArgs {
    /// Whose outbox to look at.
    #[arg(long, value_enum)]
    pub service: OutboxService,

    /// That service's database (`sqlite://…` or `postgres://…`). Default:
    /// `sqlite://<data-dir>/<service>.db`.
    #[arg(long, env = "INTERLOCK_DATABASE_URL")]
    pub database_url: Option<String>,

    #[arg(long, env = "INTERLOCK_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Most dead letters to list.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
}

/// Lists the audit events the audit service rejected for good (without their content, which may
/// name people and cases); exits non-zero when there are any, so monitoring can run it.
pub async fn dead_letters(args: DeadLettersArgs) -> anyhow::Result<()> {
    let (name, migrations) = match args.service {
        OutboxService::Registry => ("registry", &interlock_registry::store::MIGRATIONS),
        OutboxService::Records => ("records", &interlock_records::MIGRATIONS),
        OutboxService::Deconfliction => ("deconfliction", &interlock_deconfliction::store::MIGRATIONS),
    };
    let url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", args.data_dir.join(format!("{name}.db")).display()));
    let outbox = interlock_audit_client::SqlOutbox::new(Database::open(&url, migrations).await?);
    let count = outbox.dead_letter_count().await?;
    println!("{count} audit events of the {name} service rejected for good");
    for dead in outbox.dead_letters(args.limit).await? {
        let rejected = chrono::DateTime::from_timestamp_micros(dead.rejected_time_us)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        println!("{}\t{}\t{rejected}\t{}", dead.sequence, dead.event_id, dead.reason);
    }
    if count > 0 {
        bail!("{count} audit events are dead letters");
    }
    Ok(())
}
