//! Signatures of critical events: an event declared `#[event(.., signed)]` is stored with
//! the service's Ed25519 signature of its hash, written in the append's transaction and
//! checked as it is read, so a critical fact cannot be forged even by someone who can
//! write the database and recompute hashes.
//!
//! The signature covers `SIGNATURE_DOMAIN` followed by the event's 32-byte hash (which
//! covers the event and its predecessor: see [`chain`](super::chain)).

use std::collections::BTreeSet;
use std::sync::Arc;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use super::EventHash;
use crate::registry::Registry;

/// The first bytes of every signed message: a signature of an event hash is never taken
/// for one of anything else made with the same key.
pub const SIGNATURE_DOMAIN: &[u8; 26] = b"factum/event-signature/v1\n";

/// The message an event's signature covers.
fn message(hash: &EventHash) -> [u8; 58] {
    let mut message = [0; 58];
    message[..26].copy_from_slice(SIGNATURE_DOMAIN);
    message[26..].copy_from_slice(hash);
    message
}

/// The names of the events declared `signed` (every version of each).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignedEvents {
    names: Arc<BTreeSet<String>>,
}

impl SignedEvents {
    /// The signed events of a registry.
    pub fn from_registry(registry: &Registry) -> Self {
        Self::named(
            registry
                .entries()
                .filter(|entry| entry.signed)
                .map(|entry| entry.name.clone()),
        )
    }

    /// The events with these names.
    pub fn named(names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            names: Arc::new(names.into_iter().map(Into::into).collect()),
        }
    }

    /// Whether events named `name` are signed.
    pub fn contains(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// Whether no event is signed.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// What a store needs to sign the critical events it appends and check them as it reads:
/// the service's key and which events are critical.
#[derive(Clone)]
pub struct EventSigner {
    key: Arc<SigningKey>,
    events: SignedEvents,
}

impl std::fmt::Debug for EventSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSigner")
            .field(
                "key_id",
                &super::checkpoint::key_id(&self.key.verifying_key()),
            )
            .field("events", &self.events)
            .finish()
    }
}

/// Two signers are equal when they sign the same events with the same key.
impl PartialEq for EventSigner {
    fn eq(&self, other: &Self) -> bool {
        self.verifying_key() == other.verifying_key() && self.events == other.events
    }
}

impl Eq for EventSigner {}

impl EventSigner {
    /// Signs the `events` with `key`.
    pub fn new(key: SigningKey, events: SignedEvents) -> Self {
        Self {
            key: Arc::new(key),
            events,
        }
    }

    /// Whether events named `name` are signed.
    pub fn signs(&self, name: &str) -> bool {
        self.events.contains(name)
    }

    /// The signature of an event's hash.
    pub fn sign(&self, hash: &EventHash) -> [u8; 64] {
        self.key.sign(&message(hash)).to_bytes()
    }

    /// The key that checks the signatures.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Checks a stored event: when its name is signed, `signature` must be the key's
    /// signature of `hash`. The reason when it is not.
    pub fn check(
        &self,
        name: &str,
        hash: &EventHash,
        signature: Option<&[u8]>,
    ) -> Result<(), String> {
        if !self.signs(name) {
            return Ok(());
        }
        let signature = signature.ok_or("the critical event carries no signature")?;
        check_signature(&self.verifying_key(), hash, signature)
    }
}

/// Whether `signature` is `key`'s signature of an event's `hash`; the reason when not.
pub fn check_signature(
    key: &VerifyingKey,
    hash: &EventHash,
    signature: &[u8],
) -> Result<(), String> {
    let signature = Signature::from_slice(signature)
        .map_err(|_| format!("its signature is {} bytes, not 64", signature.len()))?;
    key.verify_strict(&message(hash), &signature)
        .map_err(|_| "its signature is not the service's signature of its hash".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_checks_for_its_hash_and_key_only() {
        let signer = EventSigner::new(
            SigningKey::from_bytes(&[1; 32]),
            SignedEvents::named(["DoseGiven"]),
        );
        let hash = [7; 32];
        let signature = signer.sign(&hash);
        assert_eq!(signer.check("DoseGiven", &hash, Some(&signature)), Ok(()));
        assert!(
            signer
                .check("DoseGiven", &[8; 32], Some(&signature))
                .is_err()
        );
        assert!(signer.check("DoseGiven", &hash, None).is_err());
        assert!(
            signer
                .check("DoseGiven", &hash, Some(&signature[..63]))
                .is_err()
        );
        let other = EventSigner::new(
            SigningKey::from_bytes(&[2; 32]),
            SignedEvents::named(["DoseGiven"]),
        );
        assert!(other.check("DoseGiven", &hash, Some(&signature)).is_err());
        // An event that is not critical needs no signature.
        assert_eq!(signer.check("NoteAdded", &hash, None), Ok(()));
        for bit in 0..512 {
            let mut flipped = signature;
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                signer.check("DoseGiven", &hash, Some(&flipped)).is_err(),
                "bit {bit}"
            );
        }
    }
}
