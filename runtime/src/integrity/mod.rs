//! Tamper evidence for the whole log: the events, in position order, are the leaves of an
//! RFC 9162 Merkle tree ([`merkle`]), whose signed tree heads (`checkpoint`, feature
//! `integrity`) let anyone holding the public key check that a later log extends an
//! earlier one and that an event is in it, without trusting the store.

pub mod merkle;

#[cfg(feature = "integrity")]
pub mod checkpoint;

/// Re-exported: the ed25519 keys that sign and check tree heads.
#[cfg(feature = "integrity")]
pub use ed25519_dalek::{SigningKey, VerifyingKey};
