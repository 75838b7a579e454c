//! Signed checkpoints of the log: a [`TreeHead`] (tree size, root, last position, time)
//! signed with ed25519 into a [`SignedTreeHead`] that anyone with the public key can check.
//!
//! The signature covers [`TreeHead::signing_bytes`], 80 bytes, all integers big-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 0..20 | the domain [`SIGNING_DOMAIN`], `b"factum/tree-head/v1\n"` |
//! | 20..28 | `tree_size`, u64 |
//! | 28..60 | `root`, the 32-byte tree root |
//! | 60..68 | `last_position`, u64 |
//! | 68..76 | `recorded_at`, seconds since the Unix epoch, i64 |
//! | 76..80 | `recorded_at`, nanoseconds within the second, u32 |
//!
//! The domain keeps a tree head signature from being taken for a signature of anything
//! else made with the same key; a change of layout changes its version.

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::merkle::{ConsistencyProof, Hash, InclusionProof, ProofError, from_hex, to_hex};

/// The first bytes of every tree head's signing bytes.
pub const SIGNING_DOMAIN: &[u8; 20] = b"factum/tree-head/v1\n";

/// The length of [`TreeHead::signing_bytes`].
pub const SIGNING_BYTES_LEN: usize = SIGNING_DOMAIN.len() + 8 + 32 + 8 + 8 + 4;

/// The state of the log at a checkpoint: the Merkle tree of its first `tree_size` events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeHead {
    /// The number of events (leaves) in the tree.
    pub tree_size: u64,
    /// The tree's root (MTH, RFC 9162 §2.1.1).
    #[serde(with = "hex_array")]
    pub root: Hash,
    /// The position of the last event in the tree (0 for an empty tree), so that a reader
    /// knows where the checkpoint ends in the store's positions, which may have gaps.
    pub last_position: u64,
    /// When the checkpoint was taken.
    pub recorded_at: DateTime<Utc>,
}

impl TreeHead {
    /// The bytes the signature covers (layout in the module documentation).
    pub fn signing_bytes(&self) -> [u8; SIGNING_BYTES_LEN] {
        let mut bytes = [0u8; SIGNING_BYTES_LEN];
        let fields: [&[u8]; 6] = [
            SIGNING_DOMAIN,
            &self.tree_size.to_be_bytes(),
            &self.root,
            &self.last_position.to_be_bytes(),
            &self.recorded_at.timestamp().to_be_bytes(),
            &self.recorded_at.timestamp_subsec_nanos().to_be_bytes(),
        ];
        let mut at = 0;
        for field in fields {
            bytes[at..at + field.len()].copy_from_slice(field);
            at += field.len();
        }
        bytes
    }

    /// Signs the tree head with `key`.
    pub fn sign(&self, key: &SigningKey) -> SignedTreeHead {
        SignedTreeHead {
            head: self.clone(),
            key_id: key_id(&key.verifying_key()),
            signature: key.sign(&self.signing_bytes()).to_bytes(),
        }
    }

    /// Checks that `leaf_hash` is in this tree: `proof` must be for this tree size and
    /// lead to this root. The size is checked here because the proof's algorithm alone
    /// can accept a path for a neighbouring size.
    pub fn verify_inclusion(
        &self,
        leaf_hash: &Hash,
        proof: &InclusionProof,
    ) -> Result<(), ProofError> {
        check_size(proof.tree_size, self.tree_size)?;
        proof.verify(leaf_hash, &self.root)
    }

    /// Checks that this tree is a prefix of `newer`: `proof` must be between the two
    /// heads' sizes and lead to both roots.
    pub fn verify_consistency(
        &self,
        newer: &TreeHead,
        proof: &ConsistencyProof,
    ) -> Result<(), ProofError> {
        check_size(proof.old_size, self.tree_size)?;
        check_size(proof.new_size, newer.tree_size)?;
        proof.verify(&self.root, &newer.root)
    }
}

fn check_size(proof_size: u64, head_size: u64) -> Result<(), ProofError> {
    if proof_size != head_size {
        return Err(ProofError::TreeSizeMismatch {
            proof_size,
            head_size,
        });
    }
    Ok(())
}

/// The id of a public key: the hex of the first 8 bytes of the SHA-256 of its 32 bytes.
/// Names the key that signed a tree head, for a reader holding several.
pub fn key_id(key: &VerifyingKey) -> String {
    to_hex(&Sha256::digest(key.as_bytes())[..8])
}

/// A tree head with the ed25519 signature of its [`TreeHead::signing_bytes`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedTreeHead {
    /// The tree head signed.
    pub head: TreeHead,
    /// The [`key_id`] of the key that signed.
    pub key_id: String,
    /// The signature.
    #[serde(with = "hex_array")]
    pub signature: [u8; 64],
}

impl SignedTreeHead {
    /// Checks that `key` signed this tree head. Strict verification: refuses the weak
    /// keys and malleable signatures that plain ed25519 verification lets through.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), CheckpointError> {
        let expected = key_id(key);
        if self.key_id != expected {
            return Err(CheckpointError::UnknownKey {
                key_id: self.key_id.clone(),
                expected,
            });
        }
        key.verify_strict(
            &self.head.signing_bytes(),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| CheckpointError::BadSignature {
            tree_size: self.head.tree_size,
            key_id: self.key_id.clone(),
        })
    }
}

/// Serde of byte arrays (the root, the signature) as lowercase hex strings.
mod hex_array {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes an array as a hex string.
    pub(super) fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::to_hex(bytes))
    }

    /// Deserializes an array from a hex string of exactly its length.
    pub(super) fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        deserializer: D,
    ) -> Result<[u8; N], D::Error> {
        let text = String::deserialize(deserializer)?;
        super::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// Why a signed tree head was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The tree head names another key than the one given.
    #[error("the tree head is signed by unknown key {key_id}, not by key {expected}")]
    UnknownKey {
        /// The key id the tree head names.
        key_id: String,
        /// The id of the key given.
        expected: String,
    },
    /// The signature does not match the tree head and key.
    #[error("bad signature on the tree head of size {tree_size} (key {key_id})")]
    BadSignature {
        /// The tree size of the tree head.
        tree_size: u64,
        /// The key id the tree head names.
        key_id: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrity::merkle::{MerkleTree, leaf_hash};

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn head() -> TreeHead {
        TreeHead {
            tree_size: 1_000_003,
            root: std::array::from_fn(|i| i as u8),
            last_position: 1_000_010,
            recorded_at: DateTime::from_timestamp(1_765_000_000, 123_456_789).unwrap(),
        }
    }

    #[test]
    fn signing_bytes_follow_the_documented_layout() {
        let head = head();
        let mut expected = b"factum/tree-head/v1\n".to_vec();
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0x0f, 0x42, 0x43]);
        expected.extend(0..32u8);
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0x0f, 0x42, 0x4a]);
        expected.extend_from_slice(&1_765_000_000i64.to_be_bytes());
        expected.extend_from_slice(&[0x07, 0x5b, 0xcd, 0x15]);
        assert_eq!(head.signing_bytes().as_slice(), expected.as_slice());
        assert_eq!(SIGNING_BYTES_LEN, 80);
    }

    #[test]
    fn a_signed_head_verifies_with_its_key() {
        let key = key(7);
        let signed = head().sign(&key);
        assert_eq!(signed.key_id, key_id(&key.verifying_key()));
        assert_eq!(signed.key_id.len(), 16);
        assert_eq!(signed.verify(&key.verifying_key()), Ok(()));
    }

    /// A change of any bit of any field, or of the signature, is caught.
    #[test]
    fn a_flipped_bit_anywhere_is_refused() {
        let key = key(7);
        let public = key.verifying_key();
        let signed = head().sign(&key);
        let refused = |forged: &SignedTreeHead, what: String| {
            assert!(
                matches!(
                    forged.verify(&public),
                    Err(CheckpointError::BadSignature { .. })
                ),
                "{what} accepted"
            );
        };
        for bit in 0..64 {
            let mut forged = signed.clone();
            forged.head.tree_size ^= 1 << bit;
            refused(&forged, format!("tree size bit {bit}"));
            let mut forged = signed.clone();
            forged.head.last_position ^= 1 << bit;
            refused(&forged, format!("last position bit {bit}"));
        }
        for bit in 0..256 {
            let mut forged = signed.clone();
            forged.head.root[bit / 8] ^= 1 << (bit % 8);
            refused(&forged, format!("root bit {bit}"));
        }
        let recorded_at = signed.head.recorded_at;
        for bit in 0..32 {
            let seconds = recorded_at.timestamp() ^ (1 << bit);
            let nanos = recorded_at.timestamp_subsec_nanos() ^ (1 << bit);
            let times = [
                DateTime::from_timestamp(seconds, recorded_at.timestamp_subsec_nanos()),
                DateTime::from_timestamp(recorded_at.timestamp(), nanos),
            ];
            for time in times.into_iter().flatten() {
                let mut forged = signed.clone();
                forged.head.recorded_at = time;
                refused(&forged, format!("recorded_at {time}"));
            }
        }
        // One bit in every byte of the signature, each bit position in turn (all 512 would
        // take a minute of unoptimized curve arithmetic and show no more).
        for byte in 0..64 {
            let mut forged = signed.clone();
            forged.signature[byte] ^= 1 << (byte % 8);
            refused(&forged, format!("signature byte {byte}"));
        }
    }

    #[test]
    fn another_key_is_refused() {
        let signed = head().sign(&key(7));
        let other = key(8).verifying_key();
        assert_eq!(
            signed.verify(&other),
            Err(CheckpointError::UnknownKey {
                key_id: signed.key_id.clone(),
                expected: key_id(&other),
            })
        );
        // Naming the other key does not make its signature.
        let renamed = SignedTreeHead {
            key_id: key_id(&other),
            ..signed.clone()
        };
        assert_eq!(
            renamed.verify(&other),
            Err(CheckpointError::BadSignature {
                tree_size: 1_000_003,
                key_id: key_id(&other),
            })
        );
        assert_eq!(
            renamed.verify(&other).unwrap_err().to_string(),
            format!(
                "bad signature on the tree head of size 1000003 (key {})",
                key_id(&other)
            )
        );
        let mut misnamed = signed;
        misnamed.key_id.replace_range(0..1, "x");
        assert!(matches!(
            misnamed.verify(&key(7).verifying_key()),
            Err(CheckpointError::UnknownKey { .. })
        ));
    }

    #[test]
    fn serializes_to_json_and_back() {
        let key = key(7);
        let signed = head().sign(&key);
        let json = serde_json::to_value(&signed).unwrap();
        assert_eq!(json["head"]["tree_size"], 1_000_003);
        assert_eq!(json["head"]["root"], to_hex(&signed.head.root));
        assert_eq!(
            json["head"]["recorded_at"],
            "2025-12-06T05:46:40.123456789Z"
        );
        assert_eq!(json["signature"], to_hex(&signed.signature));
        let back: SignedTreeHead = serde_json::from_value(json).unwrap();
        assert_eq!(back, signed);
        back.verify(&key.verifying_key()).unwrap();
    }

    /// The RFC's verification cannot tell leaf 0 of a tree of 3 from leaf 0 of a tree of 4
    /// when given the root of 4; the tree head, which binds size and root, can.
    #[test]
    fn proofs_are_checked_against_the_head_size() {
        let tree = MerkleTree::from_leaves((0..8u8).map(|i| leaf_hash(&[i])));
        let at = |size: u64| TreeHead {
            tree_size: size,
            root: tree.root_at(size).unwrap(),
            last_position: size,
            recorded_at: DateTime::UNIX_EPOCH,
        };
        let (four, seven) = (at(4), at(7));
        let leaf = tree.leaves()[0];
        let proof = tree.inclusion_proof(0, 4).unwrap();
        four.verify_inclusion(&leaf, &proof).unwrap();
        let resized = InclusionProof {
            tree_size: 3,
            ..proof
        };
        assert_eq!(resized.verify(&leaf, &four.root), Ok(()));
        assert_eq!(
            four.verify_inclusion(&leaf, &resized),
            Err(ProofError::TreeSizeMismatch {
                proof_size: 3,
                head_size: 4
            })
        );

        let proof = tree.consistency_proof(4, 7).unwrap();
        four.verify_consistency(&seven, &proof).unwrap();
        assert!(matches!(
            seven.verify_consistency(&four, &proof),
            Err(ProofError::TreeSizeMismatch { .. })
        ));
        let resized = ConsistencyProof {
            new_size: 6,
            ..proof
        };
        assert_eq!(
            four.verify_consistency(&seven, &resized),
            Err(ProofError::TreeSizeMismatch {
                proof_size: 6,
                head_size: 7
            })
        );
    }
}
