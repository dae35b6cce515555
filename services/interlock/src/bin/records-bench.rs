//! `records-bench`: the records service's ingest throughput and search latency, measured through
//! real gRPC against an in-process registry and records pod (docs/benchmarks.md, "Records").
//!
//! 1. Generates N records (`interlock generate`'s generator) for one owner agency.
//! 2. Ingests them over IngestRecords (batches of 1,000, the server's in-flight window) and
//!    measures records/s from the first batch sent to the last ack.
//! 3. In the same run, inserts the same records rows with a bare sqlx multi-row INSERT (100 rows
//!    a statement, 1,000-row transactions) into a fresh database with the records schema, and
//!    reports the ratio: what the service costs over the floor of the storage stack.
//! 4. Measures search latency with an open-loop load at a target rate (latency counts from
//!    each search's scheduled start, so queueing behind slow searches is not hidden): selector
//!    searches on identifiers that are in the data and full-text searches.
//!
//! The embedded default (SQLite) always; PostgreSQL too when INTERLOCK_TEST_POSTGRES_URL is set.
//! Not a test: run it in release mode, see docs/benchmarks.md for the command.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use interlock::config::ServeConfig;
use interlock::generate::Generator;
use interlock::serve::Mesh;
use interlock_api::common::v1::{Contact, Selector};
use interlock_api::records::v1::records_service_client::RecordsServiceClient;
use interlock_api::records::v1::{
    IngestBatch, IngestRecordsRequest, IngestStart, Record, SearchRecordsRequest, SelectorQuery, TextQuery,
    ingest_records_request, ingest_records_response, search_records_request,
};
use interlock_api::registry::v1::agency_service_client::AgencyServiceClient;
use interlock_api::registry::v1::authentication_service_client::AuthenticationServiceClient;
use interlock_api::registry::v1::credential_service_client::CredentialServiceClient;
use interlock_api::registry::v1::{
    Agency, CreateAccessTokenRequest, CreateAgencyRequest, CreateCredentialRequest, CreateUserRequest,
    Credential, Role, User,
};
use interlock_auth::{CallerMetadata, Purpose};
use interlock_storage::Database;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

#[derive(Parser)]
#[command(name = "records-bench", about = "Records ingest throughput and search latency over gRPC")]
struct Args {
    /// Records to generate and ingest.
    #[arg(long, default_value_t = 100_000)]
    records: u64,
    /// Target searches per second of the latency phase.
    #[arg(long, default_value_t = 500)]
    search_rate: u32,
    /// Seconds of the latency phase.
    #[arg(long, default_value_t = 20)]
    search_seconds: u64,
    /// Concurrent search clients.
    #[arg(long, default_value_t = 16)]
    search_clients: usize,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Skip PostgreSQL even when INTERLOCK_TEST_POSTGRES_URL is set.
    #[arg(long)]
    sqlite_only: bool,
    /// Also run an audit service, which the records pod's relay delivers its audit events to
    /// (and deletes them from its outbox) while the bench runs, as in a deployed mesh.
    #[arg(long)]
    audit: bool,
}

#[derive(Parser)]
struct ServeArgs {
    #[command(flatten)]
    config: ServeConfig,
}

fn serve_config(data_dir: &std::path::Path, extra: &[&str]) -> ServeConfig {
    let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir.to_str().unwrap_or(".")];
    args.extend_from_slice(extra);
    ServeArgs::parse_from(args).config
}

const MESH_SECRET: &str = "ilk_records-bench-mesh";
const OWNER: &str = "ICE";

async fn connect(url: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(url.to_owned())?.connect().await?)
}

type Authed = InterceptedService<Channel, CallerMetadata>;

async fn token(url: &str, credential: &str, secret: &str) -> anyhow::Result<String> {
    Ok(AuthenticationServiceClient::new(connect(url).await?)
        .create_access_token(CreateAccessTokenRequest {
            credential: credential.to_owned(),
            secret: secret.to_owned(),
            ttl: None,
        })
        .await?
        .into_inner()
        .access_token)
}

/// The owner agency and a member credential for it, created as the bootstrap administrator.
async fn member_credential(registry: &Mesh) -> anyhow::Result<(String, String)> {
    let secret = registry.bootstrap_admin_secret().context("the registry has no bootstrap admin")?;
    let admin_token = token(&registry.url(), interlock::cli::DEFAULT_CREDENTIAL, secret).await?;
    let admin = InterceptedService::new(connect(&registry.url()).await?, CallerMetadata::bearer(admin_token));
    AgencyServiceClient::new(admin.clone())
        .create_agency(CreateAgencyRequest {
            agency: Some(Agency {
                code: OWNER.into(),
                display_name: "Immigration and Customs Enforcement".into(),
                parent_department: "Department of Homeland Security".into(),
                jurisdiction: "United States".into(),
                duty_desk: Some(Contact {
                    name: "ICE Duty Desk".into(),
                    phone: "+12025550100".into(),
                    email: "desk@ice.example.gov".into(),
                    around_the_clock: true,
                }),
                ..Agency::default()
            }),
            request_id: "bench-agency".into(),
        })
        .await?;
    // A center administrator issues only an agency's first administrator credential; that
    // administrator (with a registered user) issues the member credential records need.
    let issue = |channel: Authed, id: &'static str, role: Role| async move {
        let issued = CredentialServiceClient::new(channel)
            .create_credential(CreateCredentialRequest {
                parent: format!("agencies/{OWNER}"),
                credential: Some(Credential {
                    credential_id: id.into(),
                    display_name: format!("records bench {id}"),
                    roles: vec![role as i32],
                    ..Credential::default()
                }),
                request_id: String::new(),
            })
            .await?
            .into_inner();
        anyhow::Ok((issued.credential.context("no credential")?.name, issued.secret))
    };
    let (admin_credential, admin_secret) = issue(admin, "admin-backend", Role::AgencyAdministrator).await?;
    let agency_admin = InterceptedService::new(
        connect(&registry.url()).await?,
        CallerMetadata::bearer(token(&registry.url(), &admin_credential, &admin_secret).await?)
            .on_behalf_of("chief", Purpose::Investigation),
    );
    AgencyServiceClient::new(agency_admin.clone())
        .create_user(CreateUserRequest {
            parent: format!("agencies/{OWNER}"),
            user: Some(User {
                user_id: "chief".into(),
                display_name: "ICE chief of operations".into(),
                roles: vec![Role::AgencyAdministrator as i32],
                ..User::default()
            }),
            request_id: String::new(),
        })
        .await?;
    let issued = issue(agency_admin, "bench", Role::AgencyMember).await?;
    Ok(issued)
}

/// Ingests `records` over one IngestRecords stream; returns seconds from first send to last ack.
async fn ingest(client: &mut RecordsServiceClient<Authed>, records: &[Record]) -> anyhow::Result<f64> {
    let (requests, receiver) = tokio::sync::mpsc::channel(8);
    requests
        .send(IngestRecordsRequest {
            message: Some(ingest_records_request::Message::Start(IngestStart { ingest_id: "bench".into() })),
        })
        .await?;
    let mut responses = client.ingest_records(ReceiverStream::new(receiver)).await?.into_inner();
    let window = match responses.message().await?.and_then(|m| m.message) {
        Some(ingest_records_response::Message::Started(started)) => {
            started.max_batches_in_flight.max(1) as usize
        }
        _ => anyhow::bail!("no started message"),
    };
    let batches: Vec<Vec<Record>> = records.chunks(1000).map(<[Record]>::to_vec).collect();
    let total = batches.len();
    let permits = Arc::new(tokio::sync::Semaphore::new(window));
    let begun = Instant::now();
    let sender_permits = permits.clone();
    let sender = tokio::spawn(async move {
        for (i, records) in batches.into_iter().enumerate() {
            sender_permits.acquire().await?.forget();
            let batch = IngestBatch { batch_sequence: i as i64 + 1, records };
            let message =
                IngestRecordsRequest { message: Some(ingest_records_request::Message::Batch(batch)) };
            if requests.send(message).await.is_err() {
                break;
            }
        }
        anyhow::Ok(())
    });
    let mut acked = 0;
    let mut rejected = 0;
    while let Some(message) = responses.message().await? {
        if let Some(ingest_records_response::Message::Ack(ack)) = message.message {
            rejected += ack.errors.len();
            if let Some(first) = ack.errors.first()
                && rejected == ack.errors.len()
            {
                eprintln!("first rejected record: {first:?}");
            }
            permits.add_permits(1);
            acked += 1;
            if acked % 100 == 0 {
                eprintln!(
                    "  {} records acked, {:.0}/s",
                    acked * 1000,
                    (acked * 1000) as f64 / begun.elapsed().as_secs_f64()
                );
            }
        }
    }
    sender.await??;
    anyhow::ensure!(acked == total, "only {acked} of {total} batches were acknowledged");
    anyhow::ensure!(rejected == 0, "{rejected} records were rejected");
    Ok(begun.elapsed().as_secs_f64())
}

/// The same records rows, inserted bare: 100-row multi-row INSERTs, 1,000 rows a transaction,
/// into a fresh database with the records schema (its indexes and full-text index included: on
/// SQLite the title and narrative go to the full-text table, not the row, as the store writes
/// them).
async fn bare_insert(url: &str, records: &[Record]) -> anyhow::Result<f64> {
    let database = Database::open(url, &interlock_records::MIGRATIONS).await?;
    let now = interlock_rpc::now_micros();
    let prepared: Vec<_> = records
        .iter()
        .map(|r| {
            interlock_records::domain::record::prepare(r, None, now).map_err(|v| anyhow::anyhow!("{v:?}"))
        })
        .collect::<anyhow::Result<_>>()?;
    let ids: Vec<String> = (0..records.len()).map(|_| uuid::Uuid::now_v7().simple().to_string()).collect();
    let text_in_row = matches!(database, Database::Postgres(_));
    let columns = format!(
        "INSERT INTO records (id, owner, record_number, category, sensitivity, caveats, {}report_us, occur_us, \
         review_by_us, version, deleted, create_us, update_us, content_hash, doc) VALUES ",
        if text_in_row { "title, narrative, " } else { "" }
    );
    // Placeholders as the records store writes them: anonymous on SQLite (sqlx resolves a
    // numbered one by a linear scan in SQLite), numbered on PostgreSQL.
    let values = |rows: usize, columns: usize| {
        (0..rows)
            .map(|r| {
                let marks: Vec<String> = (1..=columns)
                    .map(|c| if text_in_row { format!("${}", r * columns + c) } else { "?".to_owned() })
                    .collect();
                format!("({})", marks.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let begun = Instant::now();
    macro_rules! run {
        ($pool:expr) => {{
            for (tx_rows, tx_ids) in prepared.chunks(1000).zip(ids.chunks(1000)) {
                let mut tx = $pool.begin().await?;
                for (rows, row_ids) in tx_rows.chunks(100).zip(tx_ids.chunks(100)) {
                    let sql = format!(
                        "{columns}{} RETURNING seq",
                        values(rows.len(), if text_in_row { 17 } else { 15 })
                    );
                    let mut statement = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql));
                    for (p, id) in rows.iter().zip(row_ids) {
                        statement = statement
                            .bind(id)
                            .bind(OWNER)
                            .bind(&p.content.record_number)
                            .bind(i64::from(p.content.category))
                            .bind(i64::from(p.content.sensitivity))
                            .bind(p.caveats_mask);
                        if text_in_row {
                            statement = statement.bind(&p.content.title).bind(&p.content.narrative);
                        }
                        statement = statement
                            .bind(p.report_us)
                            .bind(p.occur_us)
                            .bind(p.review_by_us)
                            .bind(1i64)
                            .bind(0i64)
                            .bind(now)
                            .bind(now)
                            .bind(&p.hash)
                            .bind(p.doc.as_slice());
                    }
                    let seqs = statement.fetch_all(&mut *tx).await?;
                    if !text_in_row {
                        let sql = format!(
                            "INSERT INTO records_text (rowid, title, narrative) VALUES {}",
                            values(rows.len(), 3)
                        );
                        let mut statement = sqlx::query(sqlx::AssertSqlSafe(sql));
                        // RETURNING gives no row order guarantee; the text rows need not match
                        // their records for a measure of cost, only be the same text.
                        for (seq, p) in seqs.iter().zip(rows) {
                            statement = statement.bind(seq).bind(&p.content.title).bind(&p.content.narrative);
                        }
                        statement.execute(&mut *tx).await?;
                    }
                }
                tx.commit().await?;
            }
        }};
    }
    match &database {
        Database::Sqlite(file) => run!(file.writes()),
        Database::Postgres(pool) => run!(pool),
    }
    Ok(begun.elapsed().as_secs_f64())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Open-loop searches at `rate`/s for `seconds`, alternating selector and full-text queries;
/// returns (selector latencies, text latencies) in milliseconds, and errors.
async fn search_load(
    client: RecordsServiceClient<Authed>,
    selectors: Arc<Vec<Selector>>,
    args: &Args,
) -> anyhow::Result<(Vec<f64>, Vec<f64>, usize)> {
    const TEXT: &[&str] = &[
        "fentanyl Laredo",
        "methamphetamine warehouse",
        "structured deposits",
        "cocaine Houston",
        "stash house surveillance",
        "intercepted call shipment",
        "heroin Phoenix",
        "seizure port entry",
    ];
    let interval = Duration::from_secs_f64(args.search_clients as f64 / f64::from(args.search_rate));
    let per_client = (u64::from(args.search_rate) * args.search_seconds) as usize / args.search_clients;
    let start = Instant::now() + Duration::from_millis(100);
    let mut tasks = Vec::new();
    for c in 0..args.search_clients {
        let mut client = client.clone();
        let selectors = selectors.clone();
        // Clients start spread over one interval so the load is even, not in bursts.
        let offset = interval.mul_f64(c as f64 / args.search_clients as f64);
        tasks.push(tokio::spawn(async move {
            let (mut by_selector, mut by_text, mut errors) = (Vec::new(), Vec::new(), 0);
            for i in 0..per_client {
                let scheduled = start + offset + interval * i as u32;
                tokio::time::sleep_until(scheduled.into()).await;
                let n = c * per_client + i;
                let text = n % 2 == 1;
                let query = if text {
                    search_records_request::Query::TextQuery(TextQuery { query: TEXT[n % TEXT.len()].into() })
                } else {
                    search_records_request::Query::SelectorQuery(SelectorQuery {
                        selectors: vec![selectors[(n * 7919) % selectors.len()].clone()],
                    })
                };
                let result = client
                    .search_records(SearchRecordsRequest {
                        query: Some(query),
                        page_size: 20,
                        ..Default::default()
                    })
                    .await;
                let ms = scheduled.elapsed().as_secs_f64() * 1000.0;
                match result {
                    Ok(_) if text => by_text.push(ms),
                    Ok(_) => by_selector.push(ms),
                    Err(status) => {
                        if errors == 0 {
                            eprintln!(
                                "client {c}: first failed search: {:?} {}",
                                status.code(),
                                status.message()
                            );
                        }
                        errors += 1;
                    }
                }
            }
            (by_selector, by_text, errors)
        }));
    }
    let (mut by_selector, mut by_text, mut errors) = (Vec::new(), Vec::new(), 0);
    for task in tasks {
        let (s, t, e) = task.await?;
        by_selector.extend(s);
        by_text.extend(t);
        errors += e;
    }
    Ok((by_selector, by_text, errors))
}

fn report(name: &str, mut latencies: Vec<f64>) {
    latencies.sort_by(f64::total_cmp);
    println!(
        "  {name:<9} {:>6} searches  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
        latencies.len(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0.0)
    );
}

/// A records client for the bench officer, with a token issued now.
async fn records_client(
    registry: &Mesh,
    records: &Mesh,
    credential: &str,
    secret: &str,
) -> anyhow::Result<RecordsServiceClient<Authed>> {
    let token = token(&registry.url(), credential, secret).await?;
    let metadata = CallerMetadata::bearer(token).on_behalf_of("bench-officer", Purpose::Investigation);
    Ok(RecordsServiceClient::new(InterceptedService::new(connect(&records.url()).await?, metadata))
        .max_decoding_message_size(16 * 1024 * 1024)
        .max_encoding_message_size(16 * 1024 * 1024))
}

async fn run_backend(
    args: &Args,
    backend: &str,
    records_url: Option<String>,
    bare_url: String,
) -> anyhow::Result<()> {
    println!("== {backend}: {} records", args.records);
    let data = tempfile::tempdir()?;
    let registry_dir = data.path().join("registry");
    let records_dir = data.path().join("records");
    let registry =
        Mesh::start(serve_config(&registry_dir, &["--service", "registry", "--mesh-secret", MESH_SECRET]))
            .await?;
    let mut extra = vec!["--service", "records", "--registry-address"];
    let registry_url = registry.url();
    extra.push(&registry_url);
    extra.extend(["--mesh-secret", MESH_SECRET]);
    let audit = if args.audit {
        let audit_dir = data.path().join("audit");
        let config = serve_config(
            &audit_dir,
            &["--service", "audit", "--registry-address", &registry_url, "--mesh-secret", MESH_SECRET],
        );
        Some(Mesh::start(config).await?)
    } else {
        None
    };
    let audit_url = audit.as_ref().map(Mesh::url);
    if let Some(url) = &audit_url {
        extra.extend(["--audit-address", url.as_str()]);
    }
    if let Some(url) = &records_url {
        extra.extend(["--database-url", url.as_str()]);
    }
    let records_mesh = Mesh::start(serve_config(&records_dir, &extra)).await?;
    // The registry answers before its own services have loaded their keys: retry briefly.
    let mut attempt = 0;
    let (credential, secret) = loop {
        match member_credential(&registry).await {
            Ok(issued) => break issued,
            Err(error) if attempt < 50 => {
                attempt += 1;
                if attempt == 1 {
                    eprintln!("waiting for the registry: {error:#}");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => return Err(error.context("registering the owner agency")),
        }
    };
    let mut client = records_client(&registry, &records_mesh, &credential, &secret).await?;

    // The records pod serves once it has the registry's verification keys: wait for that.
    for _ in 0..100 {
        let probe = SearchRecordsRequest {
            query: Some(search_records_request::Query::TextQuery(TextQuery { query: "ready".into() })),
            page_size: 1,
            ..Default::default()
        };
        if client.search_records(probe).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let generated = Instant::now();
    let records: Vec<Record> = Generator::new(OWNER, 0, args.seed, 0.05, args.records)
        .take(args.records as usize)
        .map(|r| r.to_proto())
        .collect::<anyhow::Result<_>>()?;
    let mean_size = records.iter().map(prost::Message::encoded_len).sum::<usize>() / records.len().max(1);
    println!(
        "generated in {:.1} s (mean encoded record {mean_size} bytes)",
        generated.elapsed().as_secs_f64()
    );

    let seconds = ingest(&mut client, &records).await.context("ingest over gRPC")?;
    let rate = args.records as f64 / seconds;
    println!("ingest over gRPC: {seconds:.1} s, {rate:.0} records/s");

    let bare = bare_insert(&bare_url, &records).await?;
    let bare_rate = args.records as f64 / bare;
    println!(
        "bare multi-row insert of the same records rows: {bare:.1} s, {bare_rate:.0} rows/s; service/bare = {:.2}",
        rate / bare_rate
    );

    let selectors: Vec<Selector> = records
        .iter()
        .step_by(7)
        .filter_map(|r| r.selectors.first().and_then(|s| s.selector.clone()))
        .collect();
    println!(
        "search load: target {}/s for {} s, {} clients (open loop)",
        args.search_rate, args.search_seconds, args.search_clients
    );
    // A fresh token: a large ingest outlasts the first one's lifetime.
    let client = records_client(&registry, &records_mesh, &credential, &secret).await?;
    let begun = Instant::now();
    let (by_selector, by_text, errors) = search_load(client, Arc::new(selectors), args).await?;
    let done = by_selector.len() + by_text.len();
    println!("  achieved {:.0} searches/s, {errors} errors", done as f64 / begun.elapsed().as_secs_f64());
    let mut all = by_selector.clone();
    all.extend(&by_text);
    report("selector", by_selector);
    report("full-text", by_text);
    report("all", all);
    records_mesh.shutdown().await?;
    if let Some(audit) = audit {
        audit.shutdown().await?;
    }
    registry.shutdown().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scratch = tempfile::tempdir()?;
    let bare_url = format!("sqlite://{}", scratch.path().join("bare.db").display());
    run_backend(&args, "SQLite (embedded default)", None, bare_url).await?;
    if let Ok(base) = std::env::var("INTERLOCK_TEST_POSTGRES_URL")
        && !args.sqlite_only
    {
        let run = uuid::Uuid::new_v4().simple().to_string();
        let with_db = |name: &str| match base.rfind('/') {
            Some(slash) => format!("{}/{name}_{}", &base[..slash], &run[..8]),
            None => format!("{base}/{name}"),
        };
        run_backend(&args, "PostgreSQL", Some(with_db("bench_records")), with_db("bench_bare")).await?;
        println!(
            "(PostgreSQL databases bench_records_{0} and bench_bare_{0} were left for inspection)",
            &run[..8]
        );
    }
    Ok(())
}
