//! Checkpoints and proofs over a store's log: the engine every [`TamperEvident`] store
//! shares, written against its four primitives (the chain walk, the leaves, and saving
//! and listing checkpoints).

use super::checkpoint::{SignedTreeHead, TreeHead};
use super::merkle::{Accumulator, ConsistencyProof, InclusionProof, MerkleTree, ProofError};
use super::{Leaf, TamperEvident, Tampering, TamperingKind, Verification};
use crate::store::StoreError;

/// Leaves read per page.
const PAGE: usize = 10_000;

/// Why a proof could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProofRequestError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No event is stored at the position.
    #[error("no event is stored at position {position}")]
    NoEventAt {
        /// The position asked for.
        position: u64,
    },
    /// The checkpoint does not cover the position (taken before it was appended).
    #[error(
        "the checkpoint of {tree_size} events ends at position {last_position}, before position {position}"
    )]
    NotCovered {
        /// The position asked for.
        position: u64,
        /// The checkpoint's size.
        tree_size: u64,
        /// The checkpoint's last position.
        last_position: u64,
    },
    /// The store's log no longer holds the tree the checkpoint signed: it was altered
    /// (see [`TamperEvident::verify_signed`] for where).
    #[error(transparent)]
    Proof(#[from] ProofError),
}

/// Every leaf of the log, in position order.
pub(super) async fn all_leaves<S: TamperEvident + ?Sized>(
    store: &S,
) -> Result<Vec<Leaf>, StoreError> {
    let mut leaves = Vec::new();
    let mut after = 0;
    loop {
        let page = store.leaves(after, PAGE).await?;
        let full = page.len() == PAGE;
        if let Some(last) = page.last() {
            after = last.position;
        }
        leaves.extend(page);
        if !full {
            return Ok(leaves);
        }
    }
}

/// Signs a checkpoint of the whole log as it stands and stores it.
pub(super) async fn take<S: TamperEvident + ?Sized>(
    store: &S,
    key: &ed25519_dalek::SigningKey,
) -> Result<SignedTreeHead, StoreError> {
    let mut tree = Accumulator::new();
    let mut last_position = 0;
    let mut after = 0;
    loop {
        let page = store.leaves(after, PAGE).await?;
        for leaf in &page {
            tree.push(leaf.merkle_leaf());
            last_position = leaf.position;
        }
        after = last_position;
        if page.len() < PAGE {
            break;
        }
    }
    let head = TreeHead {
        tree_size: tree.len(),
        root: tree.root(),
        last_position,
        recorded_at: crate::envelope::now(),
    }
    .sign(key);
    store.save_checkpoint(&head).await?;
    Ok(head)
}

/// The chain walk, then every stored checkpoint: signed by `key`, and its tree still the
/// log's.
pub(super) async fn verify_signed<S: TamperEvident + ?Sized>(
    store: &S,
    key: &ed25519_dalek::VerifyingKey,
    critical: Option<&super::SignedEvents>,
) -> Result<Verification, StoreError> {
    let mut verification = store.verify().await?;
    let mut checkpoints = Vec::new();
    for stored in store.checkpoints().await? {
        let problem = |detail: String| Tampering {
            kind: TamperingKind::Altered,
            stream_id: String::new(),
            stream_version: 0,
            position: None,
            detail: format!("the checkpoint of {} events: {detail}", stored.tree_size),
        };
        match stored.head {
            Err(reason) => verification
                .findings
                .push(problem(format!("unreadable: {reason}"))),
            Ok(head) if head.head.tree_size != stored.tree_size => verification.findings.push(
                problem(format!("it is stored as size {}", head.head.tree_size)),
            ),
            Ok(head) => match head.verify(key) {
                Err(error) => verification.findings.push(problem(error.to_string())),
                Ok(()) => checkpoints.push(head.head),
            },
        }
    }
    checkpoints.sort_by_key(|head| head.tree_size);
    // One pass over the leaves: the root at each checkpoint's size.
    let mut tree = Accumulator::new();
    let mut pending = checkpoints.iter().peekable();
    let mut last_position = 0;
    let mut after = 0;
    let check = |head: &TreeHead, tree: &Accumulator, last_position: u64| {
        let (kind, detail) = if tree.len() < head.tree_size {
            (
                TamperingKind::Missing,
                format!(
                    "the log holds {} events, the checkpoint signed {} up to position {}",
                    tree.len(),
                    head.tree_size,
                    head.last_position
                ),
            )
        } else if last_position != head.last_position {
            (
                if last_position < head.last_position {
                    TamperingKind::Inserted
                } else {
                    TamperingKind::Missing
                },
                format!(
                    "its {}th event is at position {last_position}, the checkpoint signed {}",
                    head.tree_size, head.last_position
                ),
            )
        } else if tree.root() != head.root {
            (
                TamperingKind::Altered,
                format!(
                    "an event up to position {} is not the one the checkpoint signed",
                    head.last_position
                ),
            )
        } else {
            return None;
        };
        Some(Tampering {
            kind,
            stream_id: String::new(),
            stream_version: 0,
            position: Some(head.last_position).filter(|position| *position > 0),
            detail: format!("the checkpoint of {} events: {detail}", head.tree_size),
        })
    };
    loop {
        let page = store.leaves(after, PAGE).await?;
        for leaf in &page {
            while let Some(head) = pending.next_if(|head| head.tree_size == tree.len()) {
                verification
                    .findings
                    .extend(check(head, &tree, last_position));
            }
            tree.push(leaf.merkle_leaf());
            last_position = leaf.position;
            verification
                .findings
                .extend(signature_finding(leaf, key, critical));
        }
        after = last_position;
        if page.len() < PAGE {
            break;
        }
    }
    for head in pending {
        verification
            .findings
            .extend(check(head, &tree, last_position));
    }
    verification
        .findings
        .sort_by_key(|finding| (finding.position.is_none(), finding.position));
    Ok(verification)
}

/// What is wrong with a leaf's signature, if anything: present but not `key`'s signature
/// of its hash, or missing from an event `critical` names.
fn signature_finding(
    leaf: &Leaf,
    key: &ed25519_dalek::VerifyingKey,
    critical: Option<&super::SignedEvents>,
) -> Option<Tampering> {
    let reason = match &leaf.signature {
        Some(signature) => super::signing::check_signature(key, &leaf.hash, signature).err()?,
        None if critical.is_some_and(|critical| critical.contains(&leaf.name)) => {
            "the critical event carries no signature".to_owned()
        }
        None => return None,
    };
    Some(Tampering {
        kind: TamperingKind::Altered,
        stream_id: String::new(),
        stream_version: 0,
        position: Some(leaf.position),
        detail: format!("event `{}`: {reason}", leaf.name),
    })
}

/// The proof that the event at `position` is in the tree `head` signed.
pub(super) async fn inclusion<S: TamperEvident + ?Sized>(
    store: &S,
    position: u64,
    head: &TreeHead,
) -> Result<(Leaf, InclusionProof), ProofRequestError> {
    if position > head.last_position {
        return Err(ProofRequestError::NotCovered {
            position,
            tree_size: head.tree_size,
            last_position: head.last_position,
        });
    }
    let mut leaves = all_leaves(store).await?;
    let index = leaves
        .binary_search_by_key(&position, |leaf| leaf.position)
        .map_err(|_| ProofRequestError::NoEventAt { position })?;
    let tree = MerkleTree::from_leaves(leaves.iter().map(Leaf::merkle_leaf));
    let proof = tree.inclusion_proof(index as u64, head.tree_size)?;
    Ok((leaves.swap_remove(index), proof))
}

/// The proof that the tree `new` signed extends the tree `old` signed.
pub(super) async fn consistency<S: TamperEvident + ?Sized>(
    store: &S,
    old: &TreeHead,
    new: &TreeHead,
) -> Result<ConsistencyProof, ProofRequestError> {
    let leaves = all_leaves(store).await?;
    let tree = MerkleTree::from_leaves(leaves.iter().map(Leaf::merkle_leaf));
    Ok(tree.consistency_proof(old.tree_size, new.tree_size)?)
}
