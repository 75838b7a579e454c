//! The stored form of an event's personal fields since format 2: all of them sealed
//! together, one nonce and one AES-256-GCM operation per event.
//!
//! # The stored form
//!
//! The first personal field present in the payload, in declaration order, holds the
//! string `"pii:v2:<base64url, no padding>"`: the 12-byte nonce, then the ciphertext of a
//! JSON array of the values of the present personal fields (in declaration order), then
//! the 16-byte tag. Every other personal field present holds `"pii:v2:bundled"`. The
//! fields keep their keys and places, so the raw store still shows which fields an event
//! has, and nothing else about them.
//!
//! The associated data binds the event's id, name and schema version and the pointers of
//! the sealed fields: a ciphertext moved to another event, or a field added to or
//! removed from the set, does not open.
//!
//! # Why this cipher and these nonces
//!
//! AES-256-GCM runs on the CPU's AES and carry-less multiply instructions (detected at
//! run time), and an event's fields are short: sealing them as one message costs one
//! key-stream set-up and one tag instead of one per field. A data key seals one subject's
//! events only, and random 96-bit nonces are safe for up to 2^32 messages under one key
//! (NIST SP 800-38D, section 8.3): more events than any one person has. The nonces of a
//! batch are drawn from the operating system in one call.
//!
//! Fields of the first stored form (`pii:v1:`, one XChaCha20-Poly1305 message per field,
//! see [`cipher`](super::cipher)) still open.

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::{DataKey, PersonalError};

/// The prefix of an event's sealed personal fields, with the format's version.
pub const BUNDLE_PREFIX: &str = "pii:v2:";
/// What each personal field but the first holds: its value is in the first one's bundle.
pub const BUNDLED: &str = "pii:v2:bundled";

/// Bytes of a nonce.
const NONCE_LEN: usize = 12;
/// Bytes of a tag.
const TAG_LEN: usize = 16;

/// A subject's data key, ready to seal and open bundles (its key schedule computed once):
/// the cipher [`ProtectedStore`](super::ProtectedStore) uses, for tools that read or
/// write the stored form themselves.
pub struct BundleCipher(Aes256Gcm);

impl BundleCipher {
    /// The cipher of `key`.
    pub fn new(key: &DataKey) -> Self {
        Self(Aes256Gcm::new(key.expose_bytes().into()))
    }

    /// The sealed text of `plaintext` (the JSON array of the fields' values) bound to
    /// `aad` (see [`aad`]), under a fresh nonce: `pii:v2:...`, without quotes.
    ///
    /// Fails only if the operating system's random number generator does.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<String, PersonalError> {
        Ok(self.seal_with(Nonces::draw(1)?.next()?, aad, plaintext))
    }

    /// [`seal`](Self::seal) under `nonce`, which must never have sealed anything under
    /// this key.
    pub(super) fn seal_with(&self, nonce: [u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> String {
        let mut sealed = Zeroizing::new(Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN));
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(plaintext);
        let tag = self
            .0
            .encrypt_inout_detached(&Nonce::from(nonce), aad, (&mut sealed[NONCE_LEN..]).into())
            // AES-GCM refuses only messages longer than 64 GiB, which no event comes near.
            .expect("an event's personal fields are shorter than 64 GiB");
        sealed.extend_from_slice(&tag);
        let mut text = String::with_capacity(BUNDLE_PREFIX.len() + sealed.len().div_ceil(3) * 4);
        text.push_str(BUNDLE_PREFIX);
        URL_SAFE_NO_PAD.encode_string(&sealed, &mut text);
        text
    }

    /// The plaintext of a bundle's text (`pii:v2:...`, without quotes) sealed bound to
    /// `aad`.
    pub fn open(&self, aad: &[u8], text: &str) -> Result<Zeroizing<Vec<u8>>, BundleFault> {
        let encoded = text
            .strip_prefix(BUNDLE_PREFIX)
            .ok_or(BundleFault::Malformed("no `pii:v2:` prefix"))?;
        let mut sealed = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(encoded)
                .map_err(|_| BundleFault::Malformed("bad base64url"))?,
        );
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(BundleFault::Malformed("shorter than a nonce and a tag"));
        }
        let tag_at = sealed.len() - TAG_LEN;
        let tag = Tag::try_from(&sealed[tag_at..]).map_err(|_| BundleFault::Undecryptable)?;
        let nonce =
            Nonce::try_from(&sealed[..NONCE_LEN]).map_err(|_| BundleFault::Undecryptable)?;
        self.0
            .decrypt_inout_detached(&nonce, aad, (&mut sealed[NONCE_LEN..tag_at]).into(), &tag)
            .map_err(|_| BundleFault::Undecryptable)?;
        sealed.truncate(tag_at);
        sealed.drain(..NONCE_LEN);
        Ok(sealed)
    }
}

impl std::fmt::Debug for BundleCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BundleCipher(..)")
    }
}

/// Why a bundle did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleFault {
    /// Not a bundle's text.
    Malformed(&'static str),
    /// Another key or binding, or changed bytes.
    Undecryptable,
}

impl BundleFault {
    /// The typed error of this fault at the event's field `pointer`.
    pub(super) fn at(self, event_id: Uuid, event_name: &str, pointer: &str) -> PersonalError {
        match self {
            Self::Malformed(reason) => PersonalError::Malformed {
                event_id,
                event_name: event_name.to_owned(),
                pointer: pointer.to_owned(),
                reason: reason.to_owned(),
            },
            Self::Undecryptable => PersonalError::Undecryptable {
                event_id,
                event_name: event_name.to_owned(),
                pointer: pointer.to_owned(),
            },
        }
    }
}

/// The associated data of an event's bundle, written into `out` (cleared first; reused
/// from event to event): a domain
/// tag, then the event id, name, schema version and each sealed field's pointer, each as
/// its length (8 bytes, big-endian) and its bytes.
pub fn aad<'p>(
    out: &mut Vec<u8>,
    event_id: Uuid,
    event_name: &str,
    schema_version: u32,
    pointers: impl IntoIterator<Item = &'p str>,
) {
    out.clear();
    out.extend_from_slice(b"factum-pii-event-v2");
    let mut part = |bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        out.extend_from_slice(bytes);
    };
    part(event_id.as_bytes());
    part(event_name.as_bytes());
    part(&schema_version.to_be_bytes());
    for pointer in pointers {
        part(pointer.as_bytes());
    }
}

/// Fresh nonces for a batch, drawn from the operating system in one call.
pub(super) struct Nonces {
    bytes: Vec<u8>,
}

impl Nonces {
    /// Nonces for `count` events.
    pub(super) fn draw(count: usize) -> Result<Self, PersonalError> {
        let mut bytes = vec![0; count * NONCE_LEN];
        getrandom::fill(&mut bytes).map_err(|error| PersonalError::Randomness(Box::new(error)))?;
        Ok(Self { bytes })
    }

    /// The next nonce; none is handed out twice.
    pub(super) fn next(&mut self) -> Result<[u8; NONCE_LEN], PersonalError> {
        if self.bytes.len() < NONCE_LEN {
            // More events than drawn for (a caller that sealed some twice): draw again.
            *self = Self::draw(16)?;
        }
        let at = self.bytes.len() - NONCE_LEN;
        let nonce = self.bytes[at..].try_into().expect("12 bytes");
        self.bytes.truncate(at);
        Ok(nonce)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> BundleCipher {
        BundleCipher::new(&DataKey::generate().unwrap())
    }

    fn binding(pointers: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        aad(
            &mut out,
            Uuid::from_u128(7),
            "MemberRegistered",
            1,
            pointers.iter().copied(),
        );
        out
    }

    #[test]
    fn a_bundle_opens_with_its_key_and_binding_only() {
        let cipher = cipher();
        let aad = binding(&["/email", "/phone"]);
        let text = cipher.seal_with([1; 12], &aad, br#"["a@example.com","+1 555"]"#);
        assert!(text.starts_with("pii:v2:"), "{text}");
        assert_eq!(
            cipher.open(&aad, &text).unwrap().as_slice(),
            br#"["a@example.com","+1 555"]"#
        );
        assert_eq!(
            self::cipher().open(&aad, &text).unwrap_err(),
            BundleFault::Undecryptable
        );
        for other in [
            binding(&["/email"]),
            binding(&["/phone", "/email"]),
            binding(&["/email", "/phone", "/address"]),
        ] {
            assert_eq!(
                cipher.open(&other, &text).unwrap_err(),
                BundleFault::Undecryptable
            );
        }
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let cipher = cipher();
        let aad = binding(&["/email"]);
        let text = cipher.seal_with([9; 12], &aad, br#"["a@example.com"]"#);
        let sealed = URL_SAFE_NO_PAD
            .decode(&text[BUNDLE_PREFIX.len()..])
            .unwrap();
        for bit in 0..sealed.len() * 8 {
            let mut flipped = sealed.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let text = format!("{BUNDLE_PREFIX}{}", URL_SAFE_NO_PAD.encode(&flipped));
            assert_eq!(
                cipher.open(&aad, &text).unwrap_err(),
                BundleFault::Undecryptable,
                "bit {bit}"
            );
        }
    }

    #[test]
    fn malformed_texts_are_named() {
        let cipher = cipher();
        let aad = binding(&["/email"]);
        for (text, reason) in [
            ("pii:v1:AAAA", "no `pii:v2:` prefix"),
            ("pii:v2:***", "bad base64url"),
            ("pii:v2:AAAA", "shorter than a nonce and a tag"),
        ] {
            assert_eq!(
                cipher.open(&aad, text).unwrap_err(),
                BundleFault::Malformed(reason)
            );
        }
    }

    #[test]
    fn the_binding_is_unambiguous() {
        let mut one = Vec::new();
        let mut two = Vec::new();
        aad(&mut one, Uuid::nil(), "ab", 1, ["/c"]);
        aad(&mut two, Uuid::nil(), "a", 1, ["b/c"]);
        assert_ne!(one, two);
    }

    #[test]
    fn nonces_are_never_handed_out_twice() {
        let mut nonces = Nonces::draw(2).unwrap();
        let drawn: Vec<_> = (0..40).map(|_| nonces.next().unwrap()).collect();
        let distinct: std::collections::HashSet<_> = drawn.iter().collect();
        assert_eq!(distinct.len(), drawn.len());
    }
}
