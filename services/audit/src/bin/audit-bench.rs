//! Audit log benchmark: sustained batched appends per second with checkpointing on, then
//! inclusion-proof latency at the final tree size.
//!
//! `cargo run --release -p interlock-audit --bin audit-bench -- [events] [database-url]`
//! (default 1,000,000 events into a fresh SQLite file). Appends go through the same store code as
//! AppendEvents (validation, sealing, one transaction per batch of 1,000); proofs through the same
//! plan → O(log n) node reads → assemble path as GetInclusionProof, and each proof is verified.

use std::time::{Duration, Instant};

use interlock_api::audit::v1::{Action, AuditEvent, AuditedResource, InterlockService, Outcome};
use interlock_audit::domain::event::validate;
use interlock_audit::merkle::{Plan, verify_inclusion};
use interlock_audit::{Audit, AuditConfig};
use interlock_rpc::{FieldViolations, now_micros, timestamp_from_micros};
use interlock_storage::Database;

const BATCH: u64 = 1_000;

/// A well-mixed 64-bit value per `n` (splitmix64), for the keys that arrive in random order.
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An event as services send them: a UUIDv7 event id (time-ordered, random tail), a random W3C
/// trace id, and a read of one of many records (so resource keys arrive in random order too).
fn event(n: u64, now_us: i64) -> AuditEvent {
    AuditEvent {
        event_id: uuid::Uuid::now_v7().to_string(),
        time: Some(timestamp_from_micros(now_us)),
        service: InterlockService::Records as i32,
        method: "/interlock.records.v1.RecordsService/GetRecord".into(),
        action: Action::Read as i32,
        actor_agency: format!("agencies/A{}", n % 20),
        actor_user: format!("officer{}@example.gov", n % 500),
        purpose: 1,
        resources: vec![AuditedResource {
            resource: format!("records/{:032x}", mix(n) % 50_000_000),
            owners: vec![format!("agencies/A{}", (n + 7) % 20)],
            agreement: "agreements/bench".into(),
            agreement_version: 1,
            ..Default::default()
        }],
        outcome: Outcome::Allowed as i32,
        trace_id: format!("{:016x}{:016x}", mix(n) | 1, mix(!n)),
        ..Default::default()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let total: u64 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let url = args.next().unwrap_or_else(|| format!("sqlite://{}", dir.path().join("audit.db").display()));
    let database = Database::open(&url, &interlock_audit::store::MIGRATIONS).await?;
    let store = interlock_audit::store::on(database);
    let audit = Audit::new(
        store.clone(),
        AuditConfig {
            signing_seed: [3; 32],
            origin: "bench.interlock.example/audit".into(),
            checkpoint_interval: Duration::from_secs(1),
            retention: Duration::from_secs(366 * 86_400),
        },
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let checkpointer = tokio::spawn(audit.clone().run_background(stopped));

    let start_size = store.tree_size().await?;
    let started = Instant::now();
    let mut last_report = (Instant::now(), 0u64);
    // When each millionth event was durable, for the rate over the last million.
    let mut millions = vec![started];
    let mut appended = 0;
    while appended < total {
        let now = now_micros() / 1_000 * 1_000;
        let mut violations = FieldViolations::new();
        let batch: Vec<_> = (appended..(appended + BATCH).min(total))
            .filter_map(|n| {
                validate(&event(start_size + n, now), "e", "bench", now, i64::MAX / 4, &mut violations)
            })
            .collect();
        anyhow::ensure!(violations.is_empty(), "invalid bench events: {violations:?}");
        store.append(&batch).await?;
        appended += batch.len() as u64;
        if appended % 1_000_000 == 0 {
            millions.push(Instant::now());
        }
        if last_report.0.elapsed() > Duration::from_secs(10) {
            let rate = appended as f64 / started.elapsed().as_secs_f64();
            let recent = (appended - last_report.1) as f64 / last_report.0.elapsed().as_secs_f64();
            eprintln!("{appended} appended, {rate:.0}/s overall, {recent:.0}/s in the last 10 s");
            last_report = (Instant::now(), appended);
        }
    }
    let elapsed = started.elapsed();
    if let [.., before, last] = millions[..]
        && millions.len() > 2
    {
        println!(
            "last million: {:.0} events/s ({} millions appended)",
            1e6 / (last - before).as_secs_f64(),
            millions.len() - 1
        );
    }
    let checkpoint = audit.publish_checkpoint().await?;
    let _ = stop.send(true);
    checkpointer.await?;
    println!(
        "appends: {appended} events in batches of {BATCH} in {:.1}s = {:.0} events/s (checkpoint every 1s)",
        elapsed.as_secs_f64(),
        appended as f64 / elapsed.as_secs_f64()
    );

    let size = checkpoint.tree_size;
    let mut latencies = Vec::new();
    for i in 0..2_000u64 {
        // A spread of leaves over the whole tree (a multiplicative hash of i).
        let index = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % size;
        let begun = Instant::now();
        let plan = Plan::inclusion(index, size);
        let nodes = store.nodes(&plan.nodes()).await?;
        let proof = plan.assemble(&nodes).ok_or_else(|| anyhow::anyhow!("missing nodes"))?;
        latencies.push(begun.elapsed());
        let leaf = store.leaf_hashes(index, 1).await?[0];
        verify_inclusion(index, size, &leaf, &proof, &checkpoint.root_hash)?;
    }
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1_000.0;
    println!(
        "inclusion proofs at tree size {size}: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} proofs, all verified)",
        pick(0.5),
        pick(0.99),
        pick(1.0),
        latencies.len()
    );
    Ok(())
}
