//! RFC 9162 (Certificate Transparency v2) Merkle tree math over SHA-256, shaped for a tree that
//! lives in a database.
//!
//! Why not `ct-merkle` (0.3, evaluated): it uses the right RFC 6962/9162 prefixes, but it owns the
//! whole tree in memory (`CtMerkleTree` holds every leaf and interior node in a `Vec`) and builds
//! proofs from that. We need proofs at 10 million leaves from stored hashes without loading the
//! tree, so the math here is written against *complete aligned subtrees* ([`NodeId`]): a proof or
//! a root is planned as a short list of node ids (O(log n) of them), the store fetches exactly
//! those rows, and the plan assembles the hashes. Verification ([`verify_inclusion`],
//! [`verify_consistency`]) is written independently of the planning code, straight from the RFC's
//! verification algorithms, so that one checks the other.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// `SHA-256(0x00 || data)` (RFC 9162 section 2.1.1).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(data);
    hasher.finalize().into()
}

/// `SHA-256(0x01 || left || right)` (RFC 9162 section 2.1.1).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The root of the empty tree, `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// A complete subtree aligned on its size: leaves `[index << level, (index + 1) << level)`. Level
/// 0 nodes are leaf hashes; every interior node of the tree that will never change again is one of
/// these, which is what makes them storable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub level: u8,
    pub index: u64,
}

impl NodeId {
    pub fn leaf(index: u64) -> Self {
        Self { level: 0, index }
    }

    pub fn start(self) -> u64 {
        self.index << self.level
    }

    pub fn end(self) -> u64 {
        (self.index + 1) << self.level
    }
}

/// The largest power of two strictly smaller than `n` (n >= 2): where RFC 9162 splits a tree.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The complete aligned subtrees that make up the leaf range `[start, end)`, left to right. For
/// a range that is an RFC subtree (as every proof and root range is) their sizes strictly
/// decrease, and the range's hash is their right-to-left fold ([`fold_range`]).
pub fn decompose(mut start: u64, end: u64) -> Vec<NodeId> {
    let mut nodes = Vec::new();
    while start < end {
        let mut level = if start == 0 { 63 } else { start.trailing_zeros() };
        while level > 0 && (end - start) < (1u64 << level) {
            level -= 1;
        }
        nodes.push(NodeId { level: level as u8, index: start >> level });
        start += 1 << level;
    }
    nodes
}

/// The hash of an RFC subtree from the hashes of its [`decompose`] nodes, in the same order.
pub fn fold_range(hashes: &[Hash]) -> Option<Hash> {
    let (last, rest) = hashes.split_last()?;
    Some(rest.iter().rev().fold(*last, |right, left| node_hash(left, &right)))
}

/// Which stored nodes a root or proof needs, and how to combine them. The store fetches every id
/// in [`Plan::nodes`] and hands the hashes to [`Plan::assemble`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// One entry per output hash: the nodes whose fold is that hash.
    ranges: Vec<Vec<NodeId>>,
}

impl Plan {
    fn of_ranges(ranges: &[(u64, u64)]) -> Self {
        Self { ranges: ranges.iter().map(|&(start, end)| decompose(start, end)).collect() }
    }

    /// The root of the tree of `size` leaves (one output hash; none for the empty tree).
    pub fn root(size: u64) -> Self {
        if size == 0 { Self { ranges: Vec::new() } } else { Self::of_ranges(&[(0, size)]) }
    }

    /// The inclusion proof (RFC 9162 section 2.1.3.1, PATH) of leaf `index` in the tree of `size`
    /// leaves. Requires `index < size`.
    pub fn inclusion(index: u64, size: u64) -> Self {
        fn path(m: u64, lo: u64, hi: u64, out: &mut Vec<(u64, u64)>) {
            let n = hi - lo;
            if n <= 1 {
                return;
            }
            let k = split_point(n);
            if m < k {
                path(m, lo, lo + k, out);
                out.push((lo + k, hi));
            } else {
                path(m - k, lo + k, hi, out);
                out.push((lo, lo + k));
            }
        }
        let mut ranges = Vec::new();
        if index < size {
            path(index, 0, size, &mut ranges);
        }
        Self::of_ranges(&ranges)
    }

    /// The consistency proof (RFC 9162 section 2.1.4.1, SUBPROOF) between the trees of `first`
    /// and `second` leaves; empty unless `0 < first < second`.
    pub fn consistency(first: u64, second: u64) -> Self {
        fn subproof(m: u64, lo: u64, hi: u64, whole: bool, out: &mut Vec<(u64, u64)>) {
            let n = hi - lo;
            if m == n {
                if !whole {
                    out.push((lo, hi));
                }
                return;
            }
            let k = split_point(n);
            if m <= k {
                subproof(m, lo, lo + k, whole, out);
                out.push((lo + k, hi));
            } else {
                subproof(m - k, lo + k, hi, false, out);
                out.push((lo, lo + k));
            }
        }
        let mut ranges = Vec::new();
        if 0 < first && first < second {
            subproof(first, 0, second, true, &mut ranges);
        }
        Self::of_ranges(&ranges)
    }

    /// Every node id the plan reads, deduplicated and sorted (a store can fetch them in one go).
    pub fn nodes(&self) -> Vec<NodeId> {
        let mut nodes: Vec<NodeId> = self.ranges.iter().flatten().copied().collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }

    /// The output hashes, or `None` when a node is missing from `hashes`.
    pub fn assemble(&self, hashes: &HashMap<NodeId, Hash>) -> Option<Vec<Hash>> {
        self.ranges
            .iter()
            .map(|range| {
                let parts: Option<Vec<Hash>> = range.iter().map(|id| hashes.get(id).copied()).collect();
                fold_range(&parts?)
            })
            .collect()
    }
}

/// The interior nodes (level >= 1) that become complete when `leaves` are appended to a tree of
/// `size` leaves whose right edge is `frontier`: the hashes of `decompose(0, size)`, in order.
/// Appending never changes a complete node, so these are the only rows a batch adds.
pub fn completed_nodes(size: u64, frontier: &[Hash], leaves: &[Hash]) -> Vec<(NodeId, Hash)> {
    let mut stack: Vec<(NodeId, Hash)> =
        decompose(0, size).into_iter().zip(frontier.iter().copied()).collect();
    let mut completed = Vec::new();
    for (offset, leaf) in leaves.iter().enumerate() {
        stack.push((NodeId::leaf(size + offset as u64), *leaf));
        while stack.len() >= 2 && stack[stack.len() - 1].0.level == stack[stack.len() - 2].0.level {
            let (right_id, right) = stack.pop().unwrap_or_else(|| unreachable!("checked length"));
            let (_, left) = stack.pop().unwrap_or_else(|| unreachable!("checked length"));
            let id = NodeId { level: right_id.level + 1, index: right_id.index / 2 };
            let hash = node_hash(&left, &right);
            completed.push((id, hash));
            stack.push((id, hash));
        }
    }
    completed
}

/// The root of a tree from all its leaf hashes, in memory (RFC 9162 MTH); for verifiers that
/// recompute the tree from leaf hashes.
pub fn root_of(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return empty_root();
    }
    let mut stack: Vec<(u8, Hash)> = Vec::with_capacity(64);
    for leaf in leaves {
        stack.push((0, *leaf));
        while stack.len() >= 2 && stack[stack.len() - 1].0 == stack[stack.len() - 2].0 {
            let (level, right) = stack.pop().unwrap_or_else(|| unreachable!("checked length"));
            let (_, left) = stack.pop().unwrap_or_else(|| unreachable!("checked length"));
            stack.push((level + 1, node_hash(&left, &right)));
        }
    }
    let hashes: Vec<Hash> = stack.into_iter().map(|(_, hash)| hash).collect();
    fold_range(&hashes).unwrap_or_else(empty_root)
}

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("the first tree size {first} is larger than the second {second}")]
    SizesOutOfOrder { first: u64, second: u64 },
    #[error("the proof has the wrong number of hashes")]
    WrongLength,
    #[error("the proof does not lead to the expected root hash")]
    RootMismatch,
}

/// Verifies an inclusion proof (RFC 9162 section 2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(ProofError::WrongLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength);
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Verifies a consistency proof (RFC 9162 section 2.1.4.2). A first size of 0 is consistent with
/// everything (the empty tree is a prefix of every tree) and takes an empty proof.
pub fn verify_consistency(
    first: u64,
    second: u64,
    proof: &[Hash],
    first_root: &Hash,
    second_root: &Hash,
) -> Result<(), ProofError> {
    if first > second {
        return Err(ProofError::SizesOutOfOrder { first, second });
    }
    if first == second {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if first_root == second_root { Ok(()) } else { Err(ProofError::RootMismatch) };
    }
    if first == 0 {
        return if proof.is_empty() { Ok(()) } else { Err(ProofError::WrongLength) };
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength);
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    let (mut fn_, mut sn) = (first - 1, second - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if sn == 0 {
            return Err(ProofError::WrongLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength);
    }
    if fr != *first_root || sr != *second_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference vectors of the transparency-dev/merkle Go module (the Trillian/CT Merkle library),
    // `proof/verify_test.go` (`leaves`, `roots`, `inclusionProofs`, `consistencyProofs`), which
    // are the RFC 6962 test data also used by certificate-transparency-go. RFC 9162 hashes trees
    // exactly as RFC 6962 does, so they apply unchanged. Their inclusion vectors count leaves from
    // 1; here indexes are zero-based.
    const LEAVES: [&str; 8] =
        ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];
    const ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    const INCLUSION: &[(u64, u64, &[&str])] = &[
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (2, 3, &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
        (
            1,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    const CONSISTENCY: &[(u64, u64, &[&str])] = &[
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
        (
            6,
            7,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];

    fn h(hex_text: &str) -> Hash {
        hex::decode(hex_text).expect("hex").try_into().expect("32 bytes")
    }

    fn leaf_hashes(count: u64) -> Vec<Hash> {
        (0..count).map(|i| leaf_hash(format!("leaf {i}").as_bytes())).collect()
    }

    /// RFC 9162's recursive MTH, written as the RFC states it, to check the iterative code.
    fn reference_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
            }
        }
    }

    /// Every complete aligned subtree of `leaves`, as a store holds them.
    fn all_nodes(leaves: &[Hash]) -> HashMap<NodeId, Hash> {
        let mut nodes: HashMap<NodeId, Hash> =
            leaves.iter().enumerate().map(|(i, hash)| (NodeId::leaf(i as u64), *hash)).collect();
        for (id, hash) in completed_nodes(0, &[], leaves) {
            nodes.insert(id, hash);
        }
        nodes
    }

    fn root_from_plan(size: u64, nodes: &HashMap<NodeId, Hash>) -> Hash {
        Plan::root(size).assemble(nodes).expect("nodes").first().copied().unwrap_or_else(empty_root)
    }

    #[test]
    fn reference_roots() {
        let leaves: Vec<Hash> = LEAVES.iter().map(|l| leaf_hash(&hex::decode(l).unwrap())).collect();
        let nodes = all_nodes(&leaves);
        for size in 1..=8 {
            assert_eq!(root_of(&leaves[..size]), h(ROOTS[size - 1]), "root of {size}");
            assert_eq!(root_from_plan(size as u64, &nodes), h(ROOTS[size - 1]), "planned root of {size}");
        }
        assert_eq!(empty_root(), h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    }

    #[test]
    fn reference_inclusion_proofs_are_generated_and_verify() {
        let leaves: Vec<Hash> = LEAVES.iter().map(|l| leaf_hash(&hex::decode(l).unwrap())).collect();
        let nodes = all_nodes(&leaves);
        for (index, size, expected) in INCLUSION {
            let expected: Vec<Hash> = expected.iter().map(|e| h(e)).collect();
            let proof = Plan::inclusion(*index, *size).assemble(&nodes).unwrap();
            assert_eq!(proof, expected, "inclusion proof of {index} in {size}");
            let root = h(ROOTS[*size as usize - 1]);
            verify_inclusion(*index, *size, &leaves[*index as usize], &proof, &root).unwrap();
        }
    }

    #[test]
    fn reference_consistency_proofs_are_generated_and_verify() {
        let leaves: Vec<Hash> = LEAVES.iter().map(|l| leaf_hash(&hex::decode(l).unwrap())).collect();
        let nodes = all_nodes(&leaves);
        for (first, second, expected) in CONSISTENCY {
            let expected: Vec<Hash> = expected.iter().map(|e| h(e)).collect();
            let proof = Plan::consistency(*first, *second).assemble(&nodes).unwrap();
            assert_eq!(proof, expected, "consistency proof {first} → {second}");
            let (r1, r2) = (h(ROOTS[*first as usize - 1]), h(ROOTS[*second as usize - 1]));
            verify_consistency(*first, *second, &proof, &r1, &r2).unwrap();
        }
    }

    #[test]
    fn roots_and_proofs_hold_for_every_size_up_to_130() {
        let leaves = leaf_hashes(130);
        let nodes = all_nodes(&leaves);
        for size in 1..=130u64 {
            let root = reference_root(&leaves[..size as usize]);
            assert_eq!(root_of(&leaves[..size as usize]), root);
            assert_eq!(root_from_plan(size, &nodes), root);
            for index in 0..size {
                let proof = Plan::inclusion(index, size).assemble(&nodes).unwrap();
                verify_inclusion(index, size, &leaves[index as usize], &proof, &root).unwrap();
                // A proof never verifies for another leaf, index or root.
                let other = leaf_hash(b"not in the tree");
                assert!(verify_inclusion(index, size, &other, &proof, &root).is_err());
                if size > 1 {
                    assert!(
                        verify_inclusion((index + 1) % size, size, &leaves[index as usize], &proof, &root)
                            .is_err()
                    );
                }
                assert!(
                    verify_inclusion(index, size, &leaves[index as usize], &proof, &empty_root()).is_err()
                );
            }
            for first in 1..=size {
                let first_root = reference_root(&leaves[..first as usize]);
                let proof = Plan::consistency(first, size).assemble(&nodes).unwrap();
                verify_consistency(first, size, &proof, &first_root, &root).unwrap();
                if first < size {
                    let forged = leaf_hash(b"forged");
                    assert!(verify_consistency(first, size, &proof, &forged, &root).is_err());
                    assert!(verify_consistency(first, size, &proof, &first_root, &forged).is_err());
                    assert!(verify_consistency(first, size, &proof[1..], &first_root, &root).is_err());
                }
            }
        }
    }

    #[test]
    fn proofs_read_logarithmically_many_nodes_at_ten_million_leaves() {
        let size = 10_000_000u64;
        for index in [0, 1, 4_999_999, 9_999_998, 9_999_999] {
            assert!(Plan::inclusion(index, size).nodes().len() <= 2 * 24 + 2);
        }
        assert!(Plan::consistency(7_777_777, size).nodes().len() <= 2 * 24 + 2);
        assert!(Plan::root(size).nodes().len() <= 24);
    }

    #[test]
    fn appending_in_batches_completes_the_same_nodes_as_all_at_once() {
        let leaves = leaf_hashes(100);
        let at_once = all_nodes(&leaves);
        let mut nodes: HashMap<NodeId, Hash> = HashMap::new();
        let mut size = 0u64;
        for batch in leaves.chunks(7) {
            let frontier: Vec<Hash> = Plan::root(size)
                .ranges
                .first()
                .map(|ids| ids.iter().map(|id| nodes[id]).collect())
                .unwrap_or_default();
            for (id, hash) in completed_nodes(size, &frontier, batch) {
                assert!(nodes.insert(id, hash).is_none(), "{id:?} completed twice");
            }
            for (offset, leaf) in batch.iter().enumerate() {
                nodes.insert(NodeId::leaf(size + offset as u64), *leaf);
            }
            size += batch.len() as u64;
        }
        assert_eq!(nodes, at_once);
    }
}
