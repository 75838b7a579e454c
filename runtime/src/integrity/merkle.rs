//! The RFC 9162 Merkle tree over the log: leaf and node hashes, tree roots, inclusion and
//! consistency proofs and their verification, and a streaming root accumulator.
//!
//! Written here rather than taken from a crate: `ct-merkle` 0.3, the maintained RFC 6962
//! one, proves only against its current size (no root or proof at an older size), stores
//! and hashes the values itself, and has no streaming root.
//!
//! Hashes follow RFC 9162 §2.1.1: a leaf is `SHA-256(0x00 || entry)`, an inner node
//! `SHA-256(0x01 || left || right)`, the empty tree `SHA-256("")`. In factum a leaf's entry
//! is an event's position (u64, big-endian) followed by its 32-byte chain hash
//! ([`event_leaf`]). Hashes serialize as lowercase hex strings.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A SHA-256 hash: of a leaf, an inner node or a whole tree.
pub type Hash = [u8; 32];

/// The prefix of a leaf hash: keeps a leaf from being passed off as an inner node.
const LEAF_PREFIX: u8 = 0x00;
/// The prefix of an inner node's hash.
const NODE_PREFIX: u8 = 0x01;

/// The hash of a leaf whose entry is `entry`: `SHA-256(0x00 || entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    Sha256::new()
        .chain_update([LEAF_PREFIX])
        .chain_update(entry)
        .finalize()
        .into()
}

/// The hash of an inner node over two subtrees: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new()
        .chain_update([NODE_PREFIX])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The leaf of the event at `position` whose chain hash is `event_hash`: the leaf hash of
/// the 40-byte entry `position (u64 big-endian) || event_hash`. The position is in the
/// entry so that a leaf cannot be replayed at another place in the log.
pub fn event_leaf(position: u64, event_hash: &Hash) -> Hash {
    let mut entry = [0u8; 40];
    entry[..8].copy_from_slice(&position.to_be_bytes());
    entry[8..].copy_from_slice(event_hash);
    leaf_hash(&entry)
}

/// Why a proof could not be made or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {leaf_index} is out of range for a tree of size {tree_size}")]
    IndexOutOfRange {
        /// The index asked for or claimed by the proof.
        leaf_index: u64,
        /// The size of the tree.
        tree_size: u64,
    },
    /// A consistency proof from a larger tree to a smaller one.
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    OldSizeExceedsNew {
        /// The size of the older tree.
        old_size: u64,
        /// The size of the newer tree.
        new_size: u64,
    },
    /// A tree size larger than the number of leaves the tree holds.
    #[error("tree size {tree_size} exceeds the {leaves} leaves held")]
    SizeBeyondLeaves {
        /// The size asked for.
        tree_size: u64,
        /// The leaves the tree holds.
        leaves: u64,
    },
    /// The proof has more or fewer hashes than its sizes and index call for.
    #[error("wrong proof path length: expected {expected} hashes, got {actual}")]
    WrongPathLength {
        /// The length the sizes and index call for.
        expected: usize,
        /// The length of the path presented.
        actual: usize,
    },
    /// The root the proof leads to is not the trusted root.
    #[error(
        "root mismatch for tree size {tree_size}: the proof computes {} but the trusted root is {}",
        to_hex(.computed),
        to_hex(.trusted)
    )]
    RootMismatch {
        /// The size of the tree whose root differs.
        tree_size: u64,
        /// The root computed from the proof.
        computed: Hash,
        /// The root trusted for that size.
        trusted: Hash,
    },
    /// A proof checked against a tree head of another size.
    #[error("the proof is for tree size {proof_size}, the tree head is for size {head_size}")]
    TreeSizeMismatch {
        /// The tree size the proof is for.
        proof_size: u64,
        /// The tree size of the trusted tree head.
        head_size: u64,
    },
}

/// A proof that a leaf is the `leaf_index`-th of a tree of `tree_size` leaves
/// (RFC 9162 §2.1.3): the audit path, from the leaf's sibling up to the root's child.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    /// The leaf's index, from 0.
    pub leaf_index: u64,
    /// The size of the tree the proof is for.
    pub tree_size: u64,
    /// The audit path, lowest sibling first.
    #[serde(with = "hex_list")]
    pub path: Vec<Hash>,
}

impl InclusionProof {
    /// Checks that `leaf_hash` is leaf `leaf_index` of the tree whose root is `root`
    /// (RFC 9162 §2.1.3.2). `root` must be trusted as the root of a tree of exactly
    /// `tree_size` leaves: the algorithm cannot tell a tree size from a neighbouring one
    /// on its own, so a caller holding a tree head checks the size too
    /// (as `checkpoint::TreeHead::verify_inclusion` does).
    pub fn verify(&self, leaf_hash: &Hash, root: &Hash) -> Result<(), ProofError> {
        if self.leaf_index >= self.tree_size {
            return Err(ProofError::IndexOutOfRange {
                leaf_index: self.leaf_index,
                tree_size: self.tree_size,
            });
        }
        let wrong_length = || ProofError::WrongPathLength {
            expected: inclusion_path_len(self.leaf_index, self.tree_size),
            actual: self.path.len(),
        };
        let mut fnode = self.leaf_index;
        let mut snode = self.tree_size - 1;
        let mut r = *leaf_hash;
        for p in &self.path {
            if snode == 0 {
                return Err(wrong_length());
            }
            if fnode & 1 == 1 || fnode == snode {
                r = node_hash(p, &r);
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            } else {
                r = node_hash(&r, p);
            }
            fnode >>= 1;
            snode >>= 1;
        }
        if snode != 0 {
            return Err(wrong_length());
        }
        if r != *root {
            return Err(ProofError::RootMismatch {
                tree_size: self.tree_size,
                computed: r,
                trusted: *root,
            });
        }
        Ok(())
    }
}

/// A proof that the tree of `old_size` leaves is a prefix of the tree of `new_size`
/// leaves (RFC 9162 §2.1.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    /// The size of the older tree.
    pub old_size: u64,
    /// The size of the newer tree.
    pub new_size: u64,
    /// The consistency path.
    #[serde(with = "hex_list")]
    pub path: Vec<Hash>,
}

impl ConsistencyProof {
    /// Checks that the tree whose root is `old_root` is a prefix of the tree whose root is
    /// `new_root` (RFC 9162 §2.1.4.2). Both roots are recomputed from the path and each is
    /// compared with its trusted value, and every path hash must be used. Equal sizes need
    /// an empty path and equal roots; an empty old tree is a prefix of every tree, with an
    /// empty path. The roots must be trusted for exactly `old_size` and `new_size`.
    pub fn verify(&self, old_root: &Hash, new_root: &Hash) -> Result<(), ProofError> {
        let (old_size, new_size) = (self.old_size, self.new_size);
        if old_size > new_size {
            return Err(ProofError::OldSizeExceedsNew { old_size, new_size });
        }
        let wrong_length = || ProofError::WrongPathLength {
            expected: consistency_path_len(old_size, new_size),
            actual: self.path.len(),
        };
        if old_size == new_size || old_size == 0 {
            if !self.path.is_empty() {
                return Err(wrong_length());
            }
            if old_size == new_size && old_root != new_root {
                return Err(ProofError::RootMismatch {
                    tree_size: new_size,
                    computed: *old_root,
                    trusted: *new_root,
                });
            }
            return Ok(());
        }
        // Step 1: 0 < old_size < new_size needs at least one hash.
        if self.path.is_empty() {
            return Err(wrong_length());
        }
        // Step 2: a perfect old tree is itself a subtree of the new one, so its root starts
        // the path (and so binds the new root's computation to the trusted old root).
        let mut path = self.path.iter();
        let first = if old_size.is_power_of_two() {
            old_root
        } else {
            path.next().expect("the path is not empty")
        };
        // Steps 3 and 4.
        let mut fnode = old_size - 1;
        let mut snode = new_size - 1;
        while fnode & 1 == 1 {
            fnode >>= 1;
            snode >>= 1;
        }
        // Step 5.
        let mut fr = *first;
        let mut sr = *first;
        // Step 6.
        for c in path {
            if snode == 0 {
                return Err(wrong_length());
            }
            if fnode & 1 == 1 || fnode == snode {
                fr = node_hash(c, &fr);
                sr = node_hash(c, &sr);
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            } else {
                sr = node_hash(&sr, c);
            }
            fnode >>= 1;
            snode >>= 1;
        }
        // Step 7: all three checks, the old root as much as the new one.
        if snode != 0 {
            return Err(wrong_length());
        }
        if fr != *old_root {
            return Err(ProofError::RootMismatch {
                tree_size: old_size,
                computed: fr,
                trusted: *old_root,
            });
        }
        if sr != *new_root {
            return Err(ProofError::RootMismatch {
                tree_size: new_size,
                computed: sr,
                trusted: *new_root,
            });
        }
        Ok(())
    }
}

/// The length of the audit path of leaf `index` in a tree of `size` leaves: the levels
/// where the leaf's and the last leaf's paths differ, plus the perfect subtrees on the
/// right border above them.
fn inclusion_path_len(index: u64, size: u64) -> usize {
    if index >= size {
        return 0;
    }
    let inner = u64::BITS - (index ^ (size - 1)).leading_zeros();
    let border = (index >> inner).count_ones();
    (inner + border) as usize
}

/// The length of the consistency path from `old_size` to `new_size` leaves.
fn consistency_path_len(old_size: u64, new_size: u64) -> usize {
    if old_size == 0 || old_size >= new_size {
        return 0;
    }
    // The path is that of leaf `old_size - 1`, less the levels where the old tree's root
    // is a whole subtree, plus that root when it is not the old tree itself.
    let index = old_size - 1;
    let shared = old_size.trailing_zeros();
    let len = inclusion_path_len(index, new_size) - shared as usize;
    if old_size.is_power_of_two() {
        len
    } else {
        len + 1
    }
}

/// The hashes of all the leaves of a log, with the roots of its aligned perfect subtrees
/// cached, so that the root of any prefix and any proof takes O(log² n) hashes and no
/// allocation but the path. Holds about two hashes per leaf (64 MB for a million).
#[derive(Debug, Clone, Default)]
pub struct MerkleTree {
    /// `levels[0]` are the leaf hashes; `levels[k][j]` is the root of the perfect subtree
    /// of leaves `j * 2^k .. (j + 1) * 2^k`.
    levels: Vec<Vec<Hash>>,
}

impl MerkleTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty tree with room for `leaves` leaves, so that filling it does not reallocate.
    pub fn with_capacity(leaves: usize) -> Self {
        let levels = (0..usize::BITS - leaves.leading_zeros())
            .map(|level| Vec::with_capacity(leaves >> level))
            .collect();
        Self { levels }
    }

    /// A tree of these leaf hashes, in order.
    pub fn from_leaves(leaves: impl IntoIterator<Item = Hash>) -> Self {
        let leaves = leaves.into_iter();
        let mut tree = Self::with_capacity(leaves.size_hint().0);
        for leaf in leaves {
            tree.push(leaf);
        }
        tree
    }

    /// Appends a leaf hash, completing the perfect subtrees it closes (amortized O(1)).
    pub fn push(&mut self, leaf_hash: Hash) {
        let mut hash = leaf_hash;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let row = &mut self.levels[level];
            row.push(hash);
            if row.len() % 2 == 1 {
                return;
            }
            hash = node_hash(&row[row.len() - 2], &row[row.len() - 1]);
            level += 1;
        }
    }

    /// The number of leaves.
    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, |leaves| leaves.len() as u64)
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The leaf hashes, in order.
    pub fn leaves(&self) -> &[Hash] {
        self.levels.first().map_or(&[], Vec::as_slice)
    }

    /// The root of the whole tree.
    pub fn root(&self) -> Hash {
        self.subtree(0, self.len())
    }

    /// The root of the tree of the first `tree_size` leaves (MTH of RFC 9162 §2.1.1).
    pub fn root_at(&self, tree_size: u64) -> Result<Hash, ProofError> {
        self.check_size(tree_size)?;
        Ok(self.subtree(0, tree_size))
    }

    /// The audit path of leaf `leaf_index` in the tree of the first `tree_size` leaves
    /// (PATH of RFC 9162 §2.1.3.1).
    pub fn inclusion_proof(
        &self,
        leaf_index: u64,
        tree_size: u64,
    ) -> Result<InclusionProof, ProofError> {
        self.check_size(tree_size)?;
        if leaf_index >= tree_size {
            return Err(ProofError::IndexOutOfRange {
                leaf_index,
                tree_size,
            });
        }
        let mut path = Vec::with_capacity(inclusion_path_len(leaf_index, tree_size));
        self.path(leaf_index, 0, tree_size, &mut path);
        Ok(InclusionProof {
            leaf_index,
            tree_size,
            path,
        })
    }

    /// The proof that the tree of the first `old_size` leaves is a prefix of that of the
    /// first `new_size` (PROOF of RFC 9162 §2.1.4.1; empty when the sizes are equal or
    /// `old_size` is 0).
    pub fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<ConsistencyProof, ProofError> {
        self.check_size(new_size)?;
        if old_size > new_size {
            return Err(ProofError::OldSizeExceedsNew { old_size, new_size });
        }
        let mut path = Vec::with_capacity(consistency_path_len(old_size, new_size));
        if old_size > 0 {
            self.subproof(old_size, 0, new_size, true, &mut path);
        }
        Ok(ConsistencyProof {
            old_size,
            new_size,
            path,
        })
    }

    fn check_size(&self, tree_size: u64) -> Result<(), ProofError> {
        if tree_size > self.len() {
            return Err(ProofError::SizeBeyondLeaves {
                tree_size,
                leaves: self.len(),
            });
        }
        Ok(())
    }

    /// MTH of leaves `start .. end`. Every range the RFC's recursions visit starts at a
    /// multiple of its left part's size, so the left part is a cached perfect subtree and
    /// only the right spine is walked.
    fn subtree(&self, start: u64, end: u64) -> Hash {
        let size = end - start;
        if size == 0 {
            return empty_root();
        }
        if size.is_power_of_two() && start.is_multiple_of(size) {
            let level = size.trailing_zeros() as usize;
            return self.levels[level][(start >> level) as usize];
        }
        let k = split(size);
        node_hash(
            &self.subtree(start, start + k),
            &self.subtree(start + k, end),
        )
    }

    /// PATH(m, D[start:end]), appended lowest first.
    fn path(&self, m: u64, start: u64, end: u64, out: &mut Vec<Hash>) {
        let size = end - start;
        if size <= 1 {
            return;
        }
        let k = split(size);
        if m < k {
            self.path(m, start, start + k, out);
            out.push(self.subtree(start + k, end));
        } else {
            self.path(m - k, start + k, end, out);
            out.push(self.subtree(start, start + k));
        }
    }

    /// SUBPROOF(m, D[start:end], b), appended lowest first.
    fn subproof(&self, m: u64, start: u64, end: u64, whole: bool, out: &mut Vec<Hash>) {
        let size = end - start;
        if m == size {
            if !whole {
                out.push(self.subtree(start, end));
            }
            return;
        }
        let k = split(size);
        if m <= k {
            self.subproof(m, start, start + k, whole, out);
            out.push(self.subtree(start + k, end));
        } else {
            self.subproof(m - k, start + k, end, false, out);
            out.push(self.subtree(start, start + k));
        }
    }
}

/// The largest power of two smaller than `size` (`size` > 1): where RFC 9162 splits a tree.
fn split(size: u64) -> u64 {
    1 << (u64::BITS - 1 - (size - 1).leading_zeros())
}

/// The root of a log folded one leaf at a time in O(log n) memory: the roots of the
/// perfect subtrees the leaves so far make up, largest first (a compact range from 0).
/// For checking a whole log against a tree head without holding its leaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accumulator {
    size: u64,
    /// One root per set bit of `size`, the largest (leftmost) subtree first.
    peaks: Vec<Hash>,
}

impl Accumulator {
    /// An accumulator of no leaves.
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds in the next leaf hash, merging the perfect subtrees it completes.
    pub fn push(&mut self, leaf_hash: Hash) {
        let mut hash = leaf_hash;
        let mut size = self.size;
        while size & 1 == 1 {
            let left = self.peaks.pop().expect("one peak per set bit of the size");
            hash = node_hash(&left, &hash);
            size >>= 1;
        }
        self.peaks.push(hash);
        self.size += 1;
    }

    /// The number of leaves folded in.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// Whether no leaf was folded in.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The root of the tree of the leaves so far (the peaks hashed right to left).
    pub fn root(&self) -> Hash {
        let mut peaks = self.peaks.iter().rev();
        let Some(last) = peaks.next() else {
            return empty_root();
        };
        peaks.fold(*last, |right, left| node_hash(left, &right))
    }
}

/// Lowercase hex of bytes.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
    out
}

/// Bytes from exactly `N * 2` hex digits (either case).
pub(crate) fn from_hex<const N: usize>(text: &str) -> Result<[u8; N], String> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let text = text.as_bytes();
    if text.len() != N * 2 {
        return Err(format!("expected {} hex digits, got {}", N * 2, text.len()));
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        match (digit(pair[0]), digit(pair[1])) {
            (Some(high), Some(low)) => *byte = high << 4 | low,
            _ => return Err(format!("`{}` is not hex", String::from_utf8_lossy(pair))),
        }
    }
    Ok(out)
}

/// Serde of a list of hashes as a list of lowercase hex strings.
pub(crate) mod hex_list {
    use super::Hash;
    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes hashes as hex strings.
    pub(crate) fn serialize<S: Serializer>(
        hashes: &[Hash],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(hashes.len()))?;
        for hash in hashes {
            seq.serialize_element(&super::to_hex(hash))?;
        }
        seq.end()
    }

    /// Deserializes hashes from hex strings.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Hash>, D::Error> {
        Vec::<String>::deserialize(deserializer)?
            .iter()
            .map(|text| super::from_hex(text).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests;
