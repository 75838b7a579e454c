//! Tamper evidence: a history you can prove unaltered.
//!
//! Every factum store chains the events of each stream by hash as it appends them
//! ([`chain`]): an event's hash covers the event as stored and the hash of the event
//! before it. [`TamperEvident::verify`] walks the whole log, recomputes every hash and
//! reports the first event that was altered, removed, inserted or moved
//! ([`Tampering`]). A store can also check each event's hash as it reads it
//! (`SqliteOptions::check_hashes`, `PostgresConfig::check_hashes`), so a damaged event is
//! a [`StoreError::CorruptRow`](crate::store::StoreError::CorruptRow) at its position
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
mod verify;

/// Re-exported: the Ed25519 keys that sign and check tree heads.
pub use ed25519_dalek::{SigningKey, VerifyingKey};

pub use chain::{EventHash, GENESIS, StoredFields, event_hash};
pub use verify::{StoredEvent, Tampering, TamperingKind, Verification, Verifier};

use std::future::Future;

use crate::store::StoreError;

/// A store whose history can be verified.
pub trait TamperEvident {
    /// Reads the whole log and every stream's head, recomputes each event's hash and
    /// checks the chains: the [`Verification`] lists what does not hold, first by
    /// position. An error is a store that could not be read at all, not a finding.
    fn verify(&self) -> impl Future<Output = Result<Verification, StoreError>> + Send;
}
