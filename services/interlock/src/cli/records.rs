//! `interlock records ingest FILE`: a record file (NDJSON, see [`crate::record_json`]) streamed
//! over RecordsService.IngestRecords as the signed-in agency's records.
//!
//! Resumable: the ingest id defaults to one derived from the file (path, size, modification
//! time) and the batch size, and batch `k` is always lines `k·n+1 ..= (k+1)·n`, so a re-run after
//! a crash or a lost connection asks the server which batch it committed last and sends only the
//! batches after it. Anything re-sent anyway is idempotent on owner + record number (UNCHANGED,
//! never a duplicate).

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use interlock_api::records::v1::records_service_client::RecordsServiceClient;
use interlock_api::records::v1::{
    IngestBatch, IngestRecordsRequest, IngestStart, Record, ingest_records_request, ingest_records_response,
};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::Connection;

#[derive(clap::Args)]
pub struct RecordsCommand {
    #[command(subcommand)]
    pub command: RecordsSubcommand,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(clap::Subcommand)]
pub enum RecordsSubcommand {
    /// Ingest a record file (one JSON record per line) as the signed-in agency's records.
    Ingest(IngestArgs),
}

#[derive(clap::Args)]
pub struct IngestArgs {
    /// The record file (NDJSON; `interlock generate` writes them).
    pub file: PathBuf,
    /// Records per batch (1 to 1,000). Part of the default ingest id, since batch numbers
    /// depend on it.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub batch_size: u32,
    /// The ingest job id (resuming needs the same id). Default: derived from the file.
    #[arg(long)]
    pub ingest_id: Option<String>,
    /// Rejected records listed in the summary.
    #[arg(long, default_value_t = 10)]
    pub show_errors: usize,
}

pub async fn run(command: RecordsCommand) -> anyhow::Result<()> {
    match command.command {
        RecordsSubcommand::Ingest(args) => ingest(&command.connection, args).await,
    }
}

/// Batches stay under the server's 4 MiB message limit with room for framing.
const MAX_BATCH_BYTES: usize = 3 * 1024 * 1024;

/// The default ingest id: the same file (path, size, modification time) with the same batch
/// size resumes the same job; a changed file is a new job.
fn default_ingest_id(file: &std::path::Path, batch_size: u32) -> anyhow::Result<String> {
    let path = std::fs::canonicalize(file)?;
    let meta = std::fs::metadata(&path)?;
    let modified = meta.modified().ok().and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok());
    let mut hash = Sha256::new();
    hash.update(path.to_string_lossy().as_bytes());
    hash.update(meta.len().to_le_bytes());
    hash.update(modified.map_or(0, |m| m.as_nanos()).to_le_bytes());
    hash.update(batch_size.to_le_bytes());
    Ok(format!("file-{}", &hex::encode(hash.finalize())[..32]))
}

/// One rejected record, for the summary.
struct Rejected {
    line: u64,
    record_number: String,
    reason: String,
}

#[derive(Default)]
struct Tally {
    created: u64,
    updated: u64,
    unchanged: u64,
    skipped: u64,
    rejected: u64,
    first: Vec<Rejected>,
}

/// A batch as sent: its sequence and the file line of each record in it.
struct Sent {
    sequence: i64,
    lines: Vec<u64>,
    records: usize,
}

async fn ingest(connection: &Connection, args: IngestArgs) -> anyhow::Result<()> {
    if connection.user.is_none() {
        bail!("records are written on behalf of an officer: pass --user (or set INTERLOCK_USER)");
    }
    let file =
        std::fs::File::open(&args.file).with_context(|| format!("cannot open {}", args.file.display()))?;
    let total_lines = std::io::BufReader::new(file).lines().count() as u64;
    let ingest_id = match &args.ingest_id {
        Some(id) => id.clone(),
        None => default_ingest_id(&args.file, args.batch_size)?,
    };
    let session = connection.sign_in().await?;
    let output = session.output;
    let mut client = RecordsServiceClient::new(session.channel)
        .max_decoding_message_size(8 * 1024 * 1024)
        .max_encoding_message_size(8 * 1024 * 1024);

    let (requests, receiver) = mpsc::channel::<IngestRecordsRequest>(8);
    requests
        .send(IngestRecordsRequest {
            message: Some(ingest_records_request::Message::Start(IngestStart {
                ingest_id: ingest_id.clone(),
            })),
        })
        .await?;
    let mut responses = client
        .ingest_records(ReceiverStream::new(receiver))
        .await
        .context("the records service refused the ingest")?
        .into_inner();
    let started = match responses.message().await?.and_then(|m| m.message) {
        Some(ingest_records_response::Message::Started(started)) => started,
        _ => bail!("the records service did not answer the start of the ingest"),
    };
    let resume_after = started.last_committed_batch_sequence;
    let in_flight = Arc::new(Semaphore::new(started.max_batches_in_flight.max(1) as usize));

    let progress = indicatif::ProgressBar::new(total_lines);
    progress.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} records  {per_sec}  ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    progress.enable_steady_tick(Duration::from_millis(200));

    // The reader runs on its own thread (parsing is CPU work and file reads block); it hands
    // finished batches to the sender, which keeps at most `max_batches_in_flight` unacked.
    let (batches, mut ready) = mpsc::channel::<(Sent, Vec<Record>, Vec<Rejected>)>(4);
    let path = args.file.clone();
    let batch_size = args.batch_size as usize;
    let reader = tokio::task::spawn_blocking(move || read_batches(&path, batch_size, resume_after, batches));

    let (sent_tx, mut sent_rx) = mpsc::unbounded_channel::<Sent>();
    let sender_permits = in_flight.clone();
    let sender_progress = progress.clone();
    let sender = tokio::spawn(async move {
        let mut local_rejects = Vec::new();
        let mut skipped = 0u64;
        while let Some((sent, records, rejected)) = ready.recv().await {
            sender_progress.inc(rejected.len() as u64);
            local_rejects.extend(rejected);
            if sent.sequence <= resume_after {
                // Committed by an earlier run of this job.
                skipped += sent.lines.len() as u64;
                sender_progress.inc(sent.lines.len() as u64);
                continue;
            }
            if records.is_empty() {
                continue;
            }
            let permit = sender_permits.clone().acquire_owned().await?;
            permit.forget();
            let batch = IngestBatch { batch_sequence: sent.sequence, records };
            if sent_tx.send(sent).is_err() {
                break;
            }
            let message =
                IngestRecordsRequest { message: Some(ingest_records_request::Message::Batch(batch)) };
            if requests.send(message).await.is_err() {
                break;
            }
        }
        // Dropping `requests` half-closes the stream: the server acks what it has and ends.
        anyhow::Ok((local_rejects, skipped))
    });

    let begun = Instant::now();
    let mut tally = Tally::default();
    let mut failure = None;
    loop {
        let message = match responses.message().await {
            Ok(Some(message)) => message,
            Ok(None) => break,
            Err(status) => {
                failure = Some(status);
                break;
            }
        };
        let Some(ingest_records_response::Message::Ack(ack)) = message.message else { continue };
        let Some(sent) = sent_rx.recv().await else {
            bail!("the server acknowledged a batch that was not sent")
        };
        if sent.sequence != ack.batch_sequence {
            bail!(
                "the server acknowledged batch {} while {} was expected",
                ack.batch_sequence,
                sent.sequence
            );
        }
        in_flight.add_permits(1);
        tally.created += ack.created_count as u64;
        tally.updated += ack.updated_count as u64;
        tally.unchanged += ack.unchanged_count as u64;
        tally.rejected += ack.errors.len() as u64;
        for error in ack.errors {
            if tally.first.len() < args.show_errors {
                let violations: Vec<String> = error
                    .field_violations
                    .iter()
                    .map(|v| format!("{}: {}", v.field, v.description))
                    .collect();
                tally.first.push(Rejected {
                    line: sent.lines.get(error.index as usize).copied().unwrap_or(0),
                    record_number: error.record_number.clone(),
                    reason: if violations.is_empty() {
                        format!("{} ({})", error.message, error.reason)
                    } else {
                        violations.join("; ")
                    },
                });
            }
        }
        progress.inc(sent.records as u64);
    }
    let (local, skipped) = match sender.await {
        Ok(Ok(result)) => result,
        Ok(Err(error)) => return Err(error),
        Err(error) => return Err(error.into()),
    };
    match reader.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return Err(error),
        Err(error) => return Err(error.into()),
    }
    progress.finish_and_clear();
    tally.skipped = skipped;
    tally.rejected += local.len() as u64;
    let mut first = local;
    first.append(&mut tally.first);
    first.sort_by_key(|r| r.line);
    first.truncate(args.show_errors);
    tally.first = first;
    let elapsed = begun.elapsed().as_secs_f64();
    let accepted = tally.created + tally.updated + tally.unchanged;
    let rate = if elapsed > 0.0 { accepted as f64 / elapsed } else { 0.0 };

    let summary = json!({
        "file": args.file.display().to_string(),
        "ingest_id": ingest_id,
        "resumed_after_batch": resume_after,
        "skipped_committed": tally.skipped,
        "accepted": accepted,
        "created": tally.created,
        "updated": tally.updated,
        "unchanged": tally.unchanged,
        "rejected": tally.rejected,
        "first_errors": tally.first.iter().map(|r| json!({
            "line": r.line, "record_number": r.record_number, "error": r.reason,
        })).collect::<Vec<_>>(),
        "elapsed_seconds": (elapsed * 1000.0).round() / 1000.0,
        "records_per_second": rate.round(),
        "complete": failure.is_none(),
    });
    output.show(summary, || {
        println!("ingest {ingest_id} of {}", args.file.display());
        if resume_after > 0 {
            println!(
                "resumed after batch {resume_after}: {} records already committed were not sent again",
                tally.skipped
            );
        }
        println!(
            "accepted {accepted} (created {}, updated {}, unchanged {}), rejected {}",
            tally.created, tally.updated, tally.unchanged, tally.rejected
        );
        for r in &tally.first {
            println!(
                "  line {} {}: {}",
                r.line,
                if r.record_number.is_empty() { "-" } else { &r.record_number },
                r.reason
            );
        }
        println!("{elapsed:.1} s, {rate:.0} records/s");
    })?;
    if let Some(status) = failure {
        return Err(anyhow::Error::new(status).context(
            "the ingest stopped; run the same command again to resume after the last committed batch",
        ));
    }
    Ok(())
}

/// Reads the file into batches of `batch_size` lines (fewer when the encoded batch would pass
/// [`MAX_BATCH_BYTES`]); a line that is not a record is rejected here, with its line number.
fn read_batches(
    path: &std::path::Path,
    batch_size: usize,
    resume_after: i64,
    out: mpsc::Sender<(Sent, Vec<Record>, Vec<Rejected>)>,
) -> anyhow::Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut sequence = 1i64;
    let mut sent = Sent { sequence, lines: Vec::new(), records: 0 };
    let mut records = Vec::with_capacity(batch_size);
    let mut rejected = Vec::new();
    let mut bytes = 0usize;
    let mut line_count = 0usize;
    for (index, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        let number = index as u64 + 1;
        line_count += 1;
        // The line's length, not its encoding, bounds the batch: batch boundaries must come out
        // the same when a resumed run only counts the lines it skips.
        bytes += line.len();
        // Lines of batches an earlier run committed are counted, not parsed.
        if sequence > resume_after {
            if line.trim().is_empty() {
                rejected.push(Rejected {
                    line: number,
                    record_number: String::new(),
                    reason: "empty line".into(),
                });
            } else {
                match crate::record_json::parse_line(&line) {
                    Ok(record) => {
                        records.push(record);
                        sent.lines.push(number);
                    }
                    Err(error) => rejected.push(Rejected {
                        line: number,
                        record_number: String::new(),
                        reason: format!("{error:#}"),
                    }),
                }
            }
        } else {
            sent.lines.push(number);
        }
        if line_count == batch_size || bytes >= MAX_BATCH_BYTES {
            sent.records = records.len();
            let full =
                std::mem::replace(&mut sent, Sent { sequence: sequence + 1, lines: Vec::new(), records: 0 });
            if out.blocking_send((full, std::mem::take(&mut records), std::mem::take(&mut rejected))).is_err()
            {
                return Ok(());
            }
            sequence += 1;
            bytes = 0;
            line_count = 0;
        }
    }
    if line_count > 0 {
        sent.records = records.len();
        let _ = out.blocking_send((sent, records, rejected));
    }
    Ok(())
}
