//! `interlock audit verify`: recompute the whole tree from storage and check it against every
//! signed checkpoint. Catches rows edited, deleted, reordered or inserted behind the service's
//! back: an edited body no longer hashes to its leaf hash, an edited leaf hash or a reordered,
//! deleted or inserted leaf changes the roots that the signed checkpoints commit to, and a gap or
//! surplus in the leaf indexes is reported as such.

use ed25519_dalek::VerifyingKey;

use crate::domain::checkpoint::verify_note;
use crate::error::Result;
use crate::merkle::{Hash, NodeId, completed_nodes, decompose, leaf_hash, root_of};
use crate::store::AuditStore;

/// Leaves read per round trip.
const CHUNK: u32 = 10_000;

/// What verification found; empty `problems` means the log is intact.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub leaves: u64,
    pub checkpoints: u64,
    pub pruned: u64,
    pub problems: Vec<String>,
}

impl Report {
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Recomputes every leaf hash and every checkpointed root from the stored leaves, and checks each
/// checkpoint's signature with `key` (pinned by the verifier, not read from the log). Memory stays
/// O(log n): the tree is folded leaf by leaf and compared with each checkpoint as it is reached.
pub async fn verify(store: &dyn AuditStore, origin: &str, key: &VerifyingKey) -> Result<Report> {
    let mut report = Report::default();
    let mut checkpoints = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_checkpoints(0, after, false, 1_000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.tree_size);
        checkpoints.extend(page);
    }
    report.checkpoints = checkpoints.len() as u64;
    let stated_size = store.tree_size().await?;

    // The right edge of the tree so far ([`decompose`] of the leaves seen), and the checkpoints
    // still to reach, smallest first.
    let mut frontier: Vec<Hash> = Vec::new();
    let mut pending = checkpoints.iter().peekable();
    let mut check_at = |size: u64, frontier: &[Hash], report: &mut Report| {
        while let Some(checkpoint) = pending.next_if(|c| c.tree_size == size) {
            let root = if frontier.is_empty() { root_of(&[]) } else { fold(frontier) };
            match verify_note(&checkpoint.signed_note, origin, key) {
                Err(error) => report.problems.push(format!("checkpoint {size}: {error}")),
                Ok(signed) if signed.tree_size != size || signed.root != checkpoint.root_hash => report
                    .problems
                    .push(format!("checkpoint {size}: the stored fields differ from the signed note")),
                Ok(signed) if signed.root != root => report.problems.push(format!(
                    "checkpoint {size}: the signed root does not match the tree recomputed from storage"
                )),
                Ok(_) => {}
            }
        }
    };
    check_at(0, &frontier, &mut report);

    let mut expected = 0u64;
    loop {
        let leaves = store.leaves(expected, CHUNK).await?;
        if leaves.is_empty() {
            break;
        }
        let mut hashes = Vec::with_capacity(leaves.len());
        for leaf in &leaves {
            if leaf.leaf_index != expected {
                report
                    .problems
                    .push(format!("leaf {expected} is missing (the next stored is {})", leaf.leaf_index));
                // Continue from the stored index so later checkpoints are still compared (and
                // fail, because the tree no longer matches).
                expected = leaf.leaf_index;
            }
            match &leaf.leaf_data {
                None => report.pruned += 1,
                Some(data) if leaf_hash(data) != leaf.leaf_hash => report
                    .problems
                    .push(format!("leaf {}: the event body does not match its leaf hash", leaf.leaf_index)),
                Some(_) => {}
            }
            hashes.push(leaf.leaf_hash);
            expected += 1;
        }
        // Fold leaf by leaf to meet every checkpoint size inside the chunk, and compare the
        // interior nodes the service will serve proofs from with the recomputed ones.
        let first = expected - hashes.len() as u64;
        let mut completed = Vec::new();
        for (offset, hash) in hashes.iter().enumerate() {
            let size = first + offset as u64;
            completed.extend(completed_nodes(size, &frontier, std::slice::from_ref(hash)));
            frontier = advance(size, &frontier, hash);
            check_at(size + 1, &frontier, &mut report);
        }
        let ids: Vec<NodeId> = completed.iter().map(|(id, _)| *id).collect();
        for chunk in ids.chunks(200) {
            let stored = store.nodes(chunk).await?;
            for id in chunk {
                let recomputed = completed.iter().find(|(c, _)| c == id).map(|(_, hash)| *hash);
                if stored.get(id).copied() != recomputed {
                    report.problems.push(format!(
                        "tree node {}/{} differs from the recomputed tree",
                        id.level, id.index
                    ));
                }
            }
        }
    }
    report.leaves = expected;
    if expected != stated_size {
        report.problems.push(format!("the log says it holds {stated_size} leaves, storage holds {expected}"));
    }
    for checkpoint in pending {
        report
            .problems
            .push(format!("checkpoint {} is beyond the {expected} stored leaves", checkpoint.tree_size));
    }
    Ok(report)
}

/// The right edge after appending `leaf` to a tree of `size` leaves with right edge `frontier`.
fn advance(size: u64, frontier: &[Hash], leaf: &Hash) -> Vec<Hash> {
    let mut stack: Vec<(u8, Hash)> =
        decompose(0, size).into_iter().map(|id| id.level).zip(frontier.iter().copied()).collect();
    stack.push((0, *leaf));
    while stack.len() >= 2 && stack[stack.len() - 1].0 == stack[stack.len() - 2].0 {
        let (level, right) = stack.pop().unwrap_or_else(|| unreachable!("checked length"));
        let (_, left) = stack.pop().unwrap_or_else(|| unreachable!("checked length"));
        stack.push((level + 1, crate::merkle::node_hash(&left, &right)));
    }
    stack.into_iter().map(|(_, hash)| hash).collect()
}

fn fold(frontier: &[Hash]) -> Hash {
    crate::merkle::fold_range(frontier).unwrap_or_else(crate::merkle::empty_root)
}
