//! Tamper evidence: a history you can prove unaltered.
//!
//! Every factum store chains the events of each stream by hash as it appends them
//! ([`chain`]): an event's hash covers the event as stored and the hash of the event
//! before it. [`TamperEvident::verify`] walks the whole log, recomputes every hash and
//! reports the first event that was altered, removed, inserted or moved
//! ([`Tampering`]). A store can also check each event's hash as it reads it
//! (`SqliteOptions::check_hashes`, `PostgresConfig::check_hashes`), so a damaged event is
//! a [`StoreError::CorruptRow`] at its position
//! instead of a wrong fact.
//!
//! A hash chain alone catches accidents (SQLite keeps no checksums of its pages) and
//! edits by someone who does not recompute the hashes after them; anyone who can write
//! the database can recompute SHA-256. Signed checkpoints of the whole log close that gap
//! for everything they cover: the events, in position order, are the leaves of an
//! RFC 9162 Merkle tree ([`merkle`]), whose signed tree heads ([`checkpoint`]) let anyone holding the public key check that a later log extends an
//! earlier one and that an event is in it, without trusting the store.

pub mod chain;
pub mod checkpoint;
pub mod merkle;
mod proofs;
pub mod signing;
mod verify;

/// Re-exported: the Ed25519 keys that sign and check tree heads.
pub use ed25519_dalek::{SigningKey, VerifyingKey};

pub use chain::{EventHash, GENESIS, StoredFields, event_hash};
pub use proofs::ProofRequestError;
pub use signing::{EventSigner, SignedEvents};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) use verify::tag_index_differs;
pub use verify::{StoredEvent, Tampering, TamperingKind, Verification, Verifier};

use std::future::Future;

use crate::store::StoreError;
use checkpoint::{SignedTreeHead, TreeHead};
use merkle::{ConsistencyProof, InclusionProof};

/// One leaf of the log's Merkle tree: an event's position and stored hash, with its
/// name and stored signature (for checking critical events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    /// The event's global position.
    pub position: u64,
    /// The event's stored hash; all zeros when the stored value is not a hash (no sound
    /// event hashes to zeros, so the tree over it then differs from the signed one).
    pub hash: EventHash,
    /// The event's name, as stored.
    pub name: String,
    /// The event's stored signature, if it has one (see [`signing`]).
    pub signature: Option<Vec<u8>>,
}

impl Leaf {
    /// The leaf's hash in the tree: [`merkle::event_leaf`] of its position and hash.
    pub fn merkle_leaf(&self) -> merkle::Hash {
        merkle::event_leaf(self.position, &self.hash)
    }
}

/// A checkpoint as a store keeps it: its size (the key it is stored under) and the
/// signed tree head, or why that could not be read back.
#[derive(Debug, Clone)]
pub struct StoredCheckpoint {
    /// The tree size the checkpoint is stored under.
    pub tree_size: u64,
    /// The signed tree head, or what is wrong with the stored one.
    pub head: Result<SignedTreeHead, String>,
}

/// A store whose history can be verified, checkpointed and proven.
///
/// A store provides four primitives ([`verify`](TamperEvident::verify),
/// [`leaves`](TamperEvident::leaves), [`save_checkpoint`](TamperEvident::save_checkpoint),
/// [`checkpoints`](TamperEvident::checkpoints)); checkpoints and proofs are built on them.
pub trait TamperEvident: Send + Sync {
    /// Reads the whole log and every stream's head, recomputes each event's hash and
    /// checks the chains: the [`Verification`] lists what does not hold, first by
    /// position. An error is a store that could not be read at all, not a finding.
    fn verify(&self) -> impl Future<Output = Result<Verification, StoreError>> + Send;

    /// Up to `limit` leaves after position `after`, in position order.
    fn leaves(
        &self,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Leaf>, StoreError>> + Send;

    /// Stores a signed checkpoint (replacing one of the same size).
    fn save_checkpoint(
        &self,
        checkpoint: &SignedTreeHead,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every stored checkpoint, by size.
    fn checkpoints(&self)
    -> impl Future<Output = Result<Vec<StoredCheckpoint>, StoreError>> + Send;

    /// Signs a checkpoint of the whole log as it stands with `key`, and stores it. Take
    /// one periodically (and keep the newest elsewhere too): [`verify_signed`] then
    /// catches any change to the events it covers, hashes recomputed or not.
    ///
    /// [`verify_signed`]: TamperEvident::verify_signed
    fn checkpoint(
        &self,
        key: &SigningKey,
    ) -> impl Future<Output = Result<SignedTreeHead, StoreError>> + Send {
        async move { proofs::take(self, key).await }
    }

    /// [`verify`](TamperEvident::verify), then every stored checkpoint: signed by `key`,
    /// and the log still holding the tree it signed (none missing, inserted or changed
    /// up to its last position); and every stored event signature: `key`'s signature of
    /// its event's hash.
    fn verify_signed(
        &self,
        key: &VerifyingKey,
    ) -> impl Future<Output = Result<Verification, StoreError>> + Send {
        async move { proofs::verify_signed(self, key, None).await }
    }

    /// [`verify_signed`](TamperEvident::verify_signed), and every event of the names in
    /// `critical` signed (none stored without its signature).
    fn verify_signed_events(
        &self,
        key: &VerifyingKey,
        critical: &SignedEvents,
    ) -> impl Future<Output = Result<Verification, StoreError>> + Send {
        async move { proofs::verify_signed(self, key, Some(critical)).await }
    }

    /// The event at `position` as a leaf of the tree `head` signed, with the proof that
    /// it is in that tree ([`TreeHead::verify_inclusion`] checks it).
    fn prove_inclusion(
        &self,
        position: u64,
        head: &TreeHead,
    ) -> impl Future<Output = Result<(Leaf, InclusionProof), ProofRequestError>> + Send {
        async move { proofs::inclusion(self, position, head).await }
    }

    /// The proof that the tree `new` signed extends the tree `old` signed
    /// ([`TreeHead::verify_consistency`] checks it).
    fn prove_consistency(
        &self,
        old: &TreeHead,
        new: &TreeHead,
    ) -> impl Future<Output = Result<ConsistencyProof, ProofRequestError>> + Send {
        async move { proofs::consistency(self, old, new).await }
    }
}
