//! Data keys, and the first stored form: one field's value sealed on its own.
//!
//! [`ProtectedStore`](super::ProtectedStore) now seals all of an event's personal fields
//! together (see [`bundle`](super::bundle)); fields stored in this form still open.
//!
//! The cipher is XChaCha20-Poly1305: its 192-bit nonces are drawn at random for every
//! seal, which is safe for any number of seals under one key (96-bit nonces are not).
//!
//! # The stored form
//!
//! A sealed field is the JSON string `"pii:v1:<base64url, no padding>"`, where the
//! encoded bytes are the 24-byte nonce followed by the ciphertext of the field's JSON
//! text and the 16-byte tag. The [`Aad`] is authenticated, not stored: the reader
//! rebuilds it from the event, so a ciphertext moved to another event or field does not
//! open.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde_json::Value;
use uuid::Uuid;
use zeroize::{Zeroize, Zeroizing};

use super::PersonalError;

/// The prefix of a sealed value's string, with the format's version.
pub const SEALED_PREFIX: &str = "pii:v1:";

/// Bytes of a nonce.
const NONCE_LEN: usize = 24;
/// Bytes of a tag.
const TAG_LEN: usize = 16;

/// A data subject's data key: 32 random bytes that seal the subject's personal fields.
/// Zeroed when dropped; its `Debug` does not show it.
#[derive(Clone)]
pub struct DataKey([u8; 32]);

impl DataKey {
    /// A new key from the operating system's random number generator.
    pub fn generate() -> Result<Self, PersonalError> {
        random_bytes().map(Self)
    }

    /// The key of these bytes, e.g. as a KMS unwrapped it.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key's bytes, for wrapping it (by a [`MasterKey`](super::MasterKey) or a KMS).
    /// Keep them no longer than the call needs.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

/// What a sealed field is bound to: the event (its id, name and schema version) and the
/// field's JSON pointer. Authenticated with the ciphertext, never stored with it.
///
/// The bytes are a domain tag, then each part as its length (8 bytes, big-endian)
/// followed by its bytes, so no two different parts encode alike.
#[derive(Clone, PartialEq, Eq)]
pub struct Aad {
    event_id: Uuid,
    event_name: String,
    schema_version: u32,
    pointer: String,
    bytes: Vec<u8>,
}

impl Aad {
    /// The binding of field `pointer` (a JSON pointer, e.g. `/email`) of the event
    /// `event_id` named `event_name` at `schema_version`.
    pub fn new(event_id: Uuid, event_name: &str, schema_version: u32, pointer: &str) -> Self {
        let bytes = length_prefixed(
            b"factum-pii-field-v1",
            &[
                event_id.as_bytes(),
                event_name.as_bytes(),
                &schema_version.to_be_bytes(),
                pointer.as_bytes(),
            ],
        );
        Self {
            event_id,
            event_name: event_name.to_owned(),
            schema_version,
            pointer: pointer.to_owned(),
            bytes,
        }
    }

    /// The event's id.
    pub fn event_id(&self) -> Uuid {
        self.event_id
    }

    /// The event's name.
    pub fn event_name(&self) -> &str {
        &self.event_name
    }

    /// The event's schema version.
    pub fn schema_version(&self) -> u32 {
        self.schema_version
    }

    /// The field's JSON pointer.
    pub fn pointer(&self) -> &str {
        &self.pointer
    }

    /// The encoded bytes that are authenticated.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn malformed(&self, reason: impl Into<String>) -> PersonalError {
        PersonalError::Malformed {
            event_id: self.event_id,
            event_name: self.event_name.clone(),
            pointer: self.pointer.clone(),
            reason: reason.into(),
        }
    }
}

impl fmt::Debug for Aad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aad")
            .field("event_id", &self.event_id)
            .field("event_name", &self.event_name)
            .field("schema_version", &self.schema_version)
            .field("pointer", &self.pointer)
            .finish()
    }
}

/// Seals `plaintext` (any JSON value) under `key`, bound to `aad`: the stored form, a
/// string `"pii:v1:..."` (see the module's documentation).
///
/// Fails only if the operating system's random number generator does (for the nonce).
pub fn seal(key: &DataKey, plaintext: &Value, aad: &Aad) -> Result<Value, PersonalError> {
    let json = Zeroizing::new(
        serde_json::to_vec(plaintext).expect("a serde_json::Value always serialises"),
    );
    let sealed = encrypt(&key.0, aad.as_bytes(), &json)?;
    let mut stored = String::with_capacity(SEALED_PREFIX.len() + sealed.len() * 4 / 3 + 4);
    stored.push_str(SEALED_PREFIX);
    URL_SAFE_NO_PAD.encode_string(&sealed, &mut stored);
    Ok(Value::String(stored))
}

/// Opens a value [`seal`] stored, with the key and binding it was sealed with.
///
/// # Errors
///
/// [`PersonalError::Malformed`] when `stored` is not a sealed value (not a string,
/// another prefix, bad base64, too short); [`PersonalError::Undecryptable`] when the key
/// or the binding differ, or the ciphertext was changed. Never panics.
pub fn open(key: &DataKey, stored: &Value, aad: &Aad) -> Result<Value, PersonalError> {
    let Value::String(text) = stored else {
        return Err(aad.malformed(format!("expected a string, found {}", kind(stored))));
    };
    let Some(encoded) = text.strip_prefix(SEALED_PREFIX) else {
        return Err(aad.malformed(if text.starts_with("pii:") {
            "an unknown format version (this code reads `pii:v1:`)"
        } else {
            "no `pii:v1:` prefix"
        }));
    };
    let sealed = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|error| aad.malformed(format!("bad base64url: {error}")))?;
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(aad.malformed(format!(
            "{} bytes, shorter than a nonce and a tag ({})",
            sealed.len(),
            NONCE_LEN + TAG_LEN
        )));
    }
    let json =
        decrypt(&key.0, aad.as_bytes(), &sealed).ok_or_else(|| PersonalError::Undecryptable {
            event_id: aad.event_id,
            event_name: aad.event_name.clone(),
            pointer: aad.pointer.clone(),
        })?;
    serde_json::from_slice(&json)
        .map_err(|error| aad.malformed(format!("the opened value is not JSON: {error}")))
}

/// Whether `value` has the form of a sealed value (a string with the `pii:v1:` prefix);
/// says nothing about whether it opens.
pub fn is_sealed(value: &Value) -> bool {
    matches!(value, Value::String(text) if text.starts_with(SEALED_PREFIX))
}

/// A JSON value's kind, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `tag`, then each part as its length (u64, big-endian) and its bytes.
pub(super) fn length_prefixed(tag: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut bytes =
        Vec::with_capacity(tag.len() + parts.iter().map(|part| 8 + part.len()).sum::<usize>());
    bytes.extend_from_slice(tag);
    for part in parts {
        bytes.extend_from_slice(&(part.len() as u64).to_be_bytes());
        bytes.extend_from_slice(part);
    }
    bytes
}

/// `N` bytes from the operating system's random number generator.
pub(super) fn random_bytes<const N: usize>() -> Result<[u8; N], PersonalError> {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes).map_err(|error| PersonalError::Randomness(Box::new(error)))?;
    Ok(bytes)
}

/// `nonce || ciphertext || tag` of `plaintext` under `key`, authenticating `aad`, with a
/// random nonce.
pub(super) fn encrypt(
    key: &[u8; 32],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, PersonalError> {
    let nonce: [u8; NONCE_LEN] = random_bytes()?;
    let cipher = XChaCha20Poly1305::new(key.into());
    let ciphertext = cipher
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        // XChaCha20-Poly1305 refuses only messages longer than 256 GiB, which no event
        // field comes near.
        .expect("a field or key shorter than 256 GiB seals");
    let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

/// The plaintext of `nonce || ciphertext || tag`, or `None` when it does not
/// authenticate (or is too short to hold a nonce and a tag).
pub(super) fn decrypt(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let nonce = XNonce::try_from(nonce).ok()?;
    let cipher = XChaCha20Poly1305::new(key.into());
    cipher
        .decrypt(
            &nonce,
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .ok()
        .map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn aad() -> Aad {
        Aad::new(
            Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0001),
            "CustomerRegistered",
            2,
            "/email",
        )
    }

    fn key() -> DataKey {
        DataKey::generate().unwrap()
    }

    fn sealed_text(value: &Value) -> &str {
        value.as_str().expect("a sealed value is a string")
    }

    #[test]
    fn every_json_value_round_trips() {
        let key = key();
        for value in [
            json!("alice@example.com"),
            json!(""),
            json!("ünïcødé ✓"),
            json!(42),
            json!(-1.5),
            json!(u64::MAX),
            json!(true),
            json!(null),
            json!([1, "two", null]),
            json!({ "street": "1 Main St", "zip": "12345", "lines": ["a", "b"] }),
        ] {
            let sealed = seal(&key, &value, &aad()).unwrap();
            assert!(is_sealed(&sealed), "{sealed}");
            let text = sealed_text(&sealed);
            assert!(text.starts_with("pii:v1:"), "{text}");
            // A leak shows in every sealing; a short plaintext may turn up by chance in one
            // random-looking text (`true` did), hardly in two under different nonces.
            let resealed = seal(&key, &value, &aad()).unwrap();
            let again = sealed_text(&resealed);
            let plaintext = value.to_string();
            assert!(
                !(text.contains(&plaintext) && again.contains(&plaintext)) || plaintext.len() < 3,
                "the plaintext shows in {text} and {again}"
            );
            assert_eq!(open(&key, &sealed, &aad()).unwrap(), value);
        }
    }

    #[test]
    fn the_stored_form_is_nonce_ciphertext_and_tag_in_base64url() {
        let value = json!("alice@example.com");
        let sealed = seal(&key(), &value, &aad()).unwrap();
        let encoded = sealed_text(&sealed).strip_prefix("pii:v1:").unwrap();
        assert!(
            encoded
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{encoded}"
        );
        let bytes = URL_SAFE_NO_PAD.decode(encoded).unwrap();
        assert_eq!(bytes.len(), 24 + value.to_string().len() + 16);
    }

    #[test]
    fn each_seal_draws_a_new_nonce() {
        let key = key();
        let value = json!("same");
        let one = seal(&key, &value, &aad()).unwrap();
        let two = seal(&key, &value, &aad()).unwrap();
        assert_ne!(one, two);
        assert_eq!(
            open(&key, &one, &aad()).unwrap(),
            open(&key, &two, &aad()).unwrap()
        );
    }

    #[test]
    fn another_key_does_not_open() {
        let sealed = seal(&key(), &json!("secret"), &aad()).unwrap();
        match open(&key(), &sealed, &aad()) {
            Err(PersonalError::Undecryptable {
                event_id,
                event_name,
                pointer,
            }) => assert_eq!(
                (event_id, event_name.as_str(), pointer.as_str()),
                (aad().event_id(), "CustomerRegistered", "/email")
            ),
            other => panic!("expected Undecryptable, got {other:?}"),
        }
    }

    #[test]
    fn a_value_moved_to_another_event_or_field_does_not_open() {
        let key = key();
        let original = aad();
        let sealed = seal(&key, &json!("alice@example.com"), &original).unwrap();
        let others = [
            Aad::new(Uuid::from_u128(7), "CustomerRegistered", 2, "/email"),
            Aad::new(original.event_id(), "CustomerRenamed", 2, "/email"),
            Aad::new(original.event_id(), "CustomerRegistered", 1, "/email"),
            Aad::new(original.event_id(), "CustomerRegistered", 2, "/name"),
            Aad::new(original.event_id(), "CustomerRegistered", 2, "/email/0"),
        ];
        for other in others {
            assert_ne!(other.as_bytes(), original.as_bytes());
            match open(&key, &sealed, &other) {
                Err(PersonalError::Undecryptable { .. }) => {}
                result => panic!("opened under {other:?}: {result:?}"),
            }
        }
        assert!(open(&key, &sealed, &original).is_ok());
    }

    #[test]
    fn the_binding_is_unambiguous() {
        // Parts that concatenate alike encode differently.
        let id = Uuid::nil();
        assert_ne!(
            Aad::new(id, "ab", 1, "/c").as_bytes(),
            Aad::new(id, "a", 1, "b/c").as_bytes()
        );
        assert_ne!(
            Aad::new(id, "", 1, "/x").as_bytes(),
            Aad::new(id, "/x", 1, "").as_bytes()
        );
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let key = key();
        let sealed = seal(&key, &json!({ "email": "a@b.c" }), &aad()).unwrap();
        let bytes = URL_SAFE_NO_PAD
            .decode(sealed_text(&sealed).strip_prefix("pii:v1:").unwrap())
            .unwrap();
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let stored = Value::String(format!("pii:v1:{}", URL_SAFE_NO_PAD.encode(&flipped)));
            assert!(
                matches!(
                    open(&key, &stored, &aad()),
                    Err(PersonalError::Undecryptable { .. })
                ),
                "bit {bit} flipped and still opened"
            );
        }
    }

    #[test]
    fn malformed_values_are_typed_errors() {
        let key = key();
        let short = format!("pii:v1:{}", URL_SAFE_NO_PAD.encode([0u8; 39]));
        let cases = [
            (json!(null), "expected a string, found null"),
            (json!(12), "expected a string, found a number"),
            (json!({ "a": 1 }), "expected a string, found an object"),
            (json!("alice@example.com"), "no `pii:v1:` prefix"),
            (json!("pii:v2:AAAA"), "an unknown format version"),
            (json!("pii:v1:"), "shorter than a nonce and a tag"),
            (json!("pii:v1:not base64!"), "bad base64url"),
            (json!("pii:v1:AAAA===="), "bad base64url"),
            (
                json!(short),
                "39 bytes, shorter than a nonce and a tag (40)",
            ),
        ];
        for (stored, expected) in cases {
            assert!(!is_sealed(&stored) || stored.as_str().unwrap().starts_with("pii:v1:"));
            match open(&key, &stored, &aad()) {
                Err(error @ PersonalError::Malformed { .. }) => {
                    let message = error.to_string();
                    assert!(message.contains(expected), "{stored}: {message}");
                    assert!(message.contains("/email"), "{message}");
                    assert!(message.contains(&aad().event_id().to_string()), "{message}");
                }
                other => panic!("{stored}: expected Malformed, got {other:?}"),
            }
        }
    }

    #[test]
    fn sealed_bytes_that_are_not_json_are_malformed() {
        let key = key();
        let sealed = encrypt(&key.0, aad().as_bytes(), b"{not json").unwrap();
        let stored = Value::String(format!("pii:v1:{}", URL_SAFE_NO_PAD.encode(sealed)));
        match open(&key, &stored, &aad()) {
            Err(PersonalError::Malformed { reason, .. }) => {
                assert!(reason.contains("not JSON"), "{reason}");
            }
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn is_sealed_looks_at_the_form_only() {
        assert!(is_sealed(&json!("pii:v1:AAAA")));
        assert!(!is_sealed(&json!("pii:v2:AAAA")));
        assert!(!is_sealed(&json!("alice")));
        assert!(!is_sealed(&json!(null)));
        assert!(!is_sealed(&json!(["pii:v1:AAAA"])));
    }

    #[test]
    fn debug_does_not_show_the_key() {
        let key = DataKey::from_bytes([0xAB; 32]);
        let shown = format!("{key:?}");
        assert_eq!(shown, "DataKey(..)");
        assert!(!format!("{key:?}").contains("171"));
    }
}
