//! The audit service: a tamper-evident, append-only log of every access in the mesh, which each
//! agency can read (its own view) and verify (signed checkpoints, inclusion and consistency
//! proofs).
//!
//! Reads top-down: [`api`] (gRPC handlers) → [`domain`] (rules, no I/O) and [`merkle`] (RFC 9162
//! tree math) → [`store`] (sqlx). [`verify`] recomputes the whole tree from storage and checks it
//! against every signed checkpoint.

pub mod api;
pub mod domain;
pub mod error;
pub mod merkle;
pub mod store;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tonic::service::RoutesBuilder;

use crate::domain::checkpoint::NoteSigner;
use crate::error::{Error, Result};
use crate::merkle::{Hash, Plan, empty_root};
use crate::store::{AuditStore, StoredCheckpoint};

/// The gRPC services this crate serves, for health reporting.
pub const SERVICE_NAMES: &[&str] = &["interlock.audit.v1.AuditService"];

/// The submitter of the events the audit service writes about reads of itself: the mesh's
/// service credential, which is what every Interlock service appends with today.
pub const SELF_SUBMITTER: &str = "agencies/INTERLOCK/credentials/mesh";

/// How often bodies older than the retention are pruned.
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

pub struct AuditConfig {
    /// Seed of the Ed25519 key that signs checkpoints; the same on every replica.
    pub signing_seed: [u8; 32],
    /// The log's origin line and key name, e.g. `interlock.example.gov/audit`.
    pub origin: String,
    /// Longest time between a leaf becoming durable and a checkpoint covering it.
    pub checkpoint_interval: Duration,
    /// How long event bodies are kept (at least a year in production).
    pub retention: Duration,
}

/// The audit service: its store, its checkpoint signer and its configuration.
pub struct Audit {
    store: Arc<dyn AuditStore>,
    signer: NoteSigner,
    config: AuditConfig,
}

impl Audit {
    pub fn new(store: Arc<dyn AuditStore>, config: AuditConfig) -> Arc<Self> {
        let signer = NoteSigner::new(&config.signing_seed, &config.origin);
        Arc::new(Self { store, signer, config })
    }

    pub fn store(&self) -> &Arc<dyn AuditStore> {
        &self.store
    }

    pub fn signer(&self) -> &NoteSigner {
        &self.signer
    }

    /// Adds the audit gRPC service to `routes`.
    pub fn add_services(self: &Arc<Self>, routes: &mut RoutesBuilder) {
        routes.add_service(api::server(self.clone()));
    }

    /// The root hash of the first `size` leaves, from O(log n) stored nodes.
    pub async fn root_at(&self, size: u64) -> Result<Hash> {
        let plan = Plan::root(size);
        let nodes = self.store.nodes(&plan.nodes()).await?;
        let hashes =
            plan.assemble(&nodes).ok_or_else(|| Error::Corrupt(format!("tree nodes of size {size}")))?;
        Ok(hashes.first().copied().unwrap_or_else(empty_root))
    }

    /// Signs a checkpoint at the current tree size unless one exists (on demand, and from the
    /// periodic publisher); returns the latest checkpoint. Replicas may race: the first stored
    /// checkpoint of a size wins, and both signed the same bytes anyway (Ed25519 is deterministic).
    pub async fn publish_checkpoint(&self) -> Result<StoredCheckpoint> {
        let size = self.store.tree_size().await?;
        if let Some(latest) = self.store.checkpoint(None).await?
            && latest.tree_size >= size
        {
            return Ok(latest);
        }
        let root = self.root_at(size).await?;
        let checkpoint = StoredCheckpoint {
            tree_size: size,
            root_hash: root,
            signed_note: self.signer.sign(size, &root),
            create_time_us: interlock_rpc::now_micros(),
        };
        let stored = self.store.add_checkpoint(&checkpoint).await?;
        tracing::debug!(tree_size = size, "checkpoint published");
        Ok(stored)
    }

    /// Publishes checkpoints every `checkpoint_interval` and prunes expired bodies, until
    /// `stopped` flips.
    pub async fn run_background(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        let mut last_prune: Option<tokio::time::Instant> = None;
        loop {
            if let Err(error) = self.publish_checkpoint().await {
                tracing::warn!(%error, "cannot publish an audit checkpoint; retrying");
            }
            if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_INTERVAL) {
                let retention_us = i64::try_from(self.config.retention.as_micros()).unwrap_or(i64::MAX);
                match self.store.prune(interlock_rpc::now_micros().saturating_sub(retention_us)).await {
                    Ok(0) => {}
                    Ok(pruned) => tracing::info!(pruned, "pruned audit event bodies past retention"),
                    Err(error) => tracing::warn!(%error, "cannot prune audit event bodies"),
                }
                last_prune = Some(tokio::time::Instant::now());
            }
            tokio::select! {
                () = tokio::time::sleep(self.config.checkpoint_interval) => {},
                _ = stopped.changed() => return,
            }
        }
    }
}
