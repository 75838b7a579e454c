//! Data subjects, the master key, and data keys wrapped by it.

use std::fmt;

use chrono::{DateTime, Utc};
use zeroize::Zeroize;

use super::PersonalError;
use super::cipher::{self, DataKey};

/// Who personal data is about: the id a data key is kept under, e.g. a customer id.
/// Never empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubjectId(String);

impl SubjectId {
    /// The subject `id`; [`PersonalError::EmptySubject`] if it is empty.
    pub fn new(id: impl Into<String>) -> Result<Self, PersonalError> {
        let id = id.into();
        if id.is_empty() {
            return Err(PersonalError::EmptySubject);
        }
        Ok(Self(id))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for SubjectId {
    type Error = PersonalError;

    fn try_from(id: String) -> Result<Self, PersonalError> {
        Self::new(id)
    }
}

impl TryFrom<&str> for SubjectId {
    type Error = PersonalError;

    fn try_from(id: &str) -> Result<Self, PersonalError> {
        Self::new(id)
    }
}

/// The application's secret that wraps every data key before a key store keeps it: 32
/// bytes, zeroed when dropped, never shown by `Debug`.
///
/// factum never stores it. Load it at start-up from where the application keeps secrets
/// (a KMS or a vault that hands out a data-encryption key, a secrets file readable only
/// by the service) and pass it to the key store. Losing it makes every personal field
/// unreadable, as if every subject were forgotten; whoever holds it and a copy of the
/// key table can read every subject's data that is not forgotten.
pub struct MasterKey([u8; 32]);

impl MasterKey {
    /// The master key of these bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A new master key from the operating system's random number generator (for tests,
    /// or to make the secret once and store it where the application keeps secrets).
    pub fn generate() -> Result<Self, PersonalError> {
        cipher::random_bytes().map(Self)
    }

    /// The key's bytes, to store it where the application keeps secrets.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Wraps `key` for `subject`: sealed under this master key with the subject id as
    /// associated data, so a wrapped key copied to another subject does not unwrap.
    pub fn wrap(&self, subject: &SubjectId, key: &DataKey) -> Result<WrappedKey, PersonalError> {
        let sealed = cipher::encrypt(&self.0, &wrap_aad(subject), key.expose_bytes())?;
        let mut bytes = Vec::with_capacity(1 + sealed.len());
        bytes.push(WRAP_VERSION);
        bytes.extend_from_slice(&sealed);
        Ok(WrappedKey(bytes))
    }

    /// Unwraps a key [`MasterKey::wrap`] wrapped for `subject`.
    ///
    /// # Errors
    ///
    /// [`PersonalError::CorruptKey`] for bytes of another length or version;
    /// [`PersonalError::KeyUnwrap`] when this master key or the subject differ from the
    /// wrapping's, or the bytes were changed.
    pub fn unwrap(
        &self,
        subject: &SubjectId,
        wrapped: &WrappedKey,
    ) -> Result<DataKey, PersonalError> {
        let corrupt = |reason: String| PersonalError::CorruptKey {
            subject: subject.clone(),
            reason,
        };
        let Some((&version, sealed)) = wrapped.0.split_first() else {
            return Err(corrupt("the wrapped key is empty".to_owned()));
        };
        if version != WRAP_VERSION {
            return Err(corrupt(format!("unknown wrapping version {version}")));
        }
        if wrapped.0.len() != WRAPPED_LEN {
            return Err(corrupt(format!(
                "the wrapped key is {} bytes, not {WRAPPED_LEN}",
                wrapped.0.len()
            )));
        }
        let plain = cipher::decrypt(&self.0, &wrap_aad(subject), sealed).ok_or_else(|| {
            PersonalError::KeyUnwrap {
                subject: subject.clone(),
            }
        })?;
        let bytes: [u8; 32] = plain.as_slice().try_into().map_err(|_| {
            corrupt(format!(
                "the unwrapped key is {} bytes, not 32",
                plain.len()
            ))
        })?;
        Ok(DataKey::from_bytes(bytes))
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// The first byte of a wrapped key: the wrapping's format.
const WRAP_VERSION: u8 = 1;
/// Bytes of a wrapped key: version, nonce (24), key (32), tag (16).
const WRAPPED_LEN: usize = 1 + 24 + 32 + 16;

/// The associated data of a subject's wrapped key.
fn wrap_aad(subject: &SubjectId) -> Vec<u8> {
    cipher::length_prefixed(b"factum-subject-key-v1", &[subject.as_str().as_bytes()])
}

/// A data key as a key store keeps it: sealed by the [`MasterKey`] for one subject
/// (a version byte, the nonce, the sealed key and its tag: 73 bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey(pub Vec<u8>);

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WrappedKey({} bytes)", self.0.len())
    }
}

/// The record that a subject was forgotten: their data key is destroyed, their sealed
/// fields read as the declared replacement, and no new key is made for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forgotten {
    /// The subject.
    pub subject: SubjectId,
    /// When the key was destroyed (whole microseconds, as every store keeps it).
    pub forgotten_at: DateTime<Utc>,
    /// Who asked for it (a user, a job, a ticket), as given to `forget`.
    pub forgotten_by: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(id: &str) -> SubjectId {
        SubjectId::new(id).unwrap()
    }

    #[test]
    fn subject_ids_are_not_empty() {
        assert!(matches!(
            SubjectId::new(""),
            Err(PersonalError::EmptySubject)
        ));
        assert!(matches!(
            SubjectId::try_from(""),
            Err(PersonalError::EmptySubject)
        ));
        let id = SubjectId::try_from("customer-7".to_owned()).unwrap();
        assert_eq!(
            (id.as_str(), id.to_string().as_str()),
            ("customer-7", "customer-7")
        );
    }

    #[test]
    fn a_wrapped_key_unwraps_for_its_subject_with_its_master_key() {
        let master = MasterKey::generate().unwrap();
        let key = DataKey::generate().unwrap();
        let alice = subject("alice");
        let wrapped = master.wrap(&alice, &key).unwrap();
        assert_eq!(wrapped.0.len(), WRAPPED_LEN);
        assert_eq!(
            master.unwrap(&alice, &wrapped).unwrap().expose_bytes(),
            key.expose_bytes()
        );
        assert_ne!(&wrapped.0[1 + 24..1 + 24 + 32], key.expose_bytes());
    }

    #[test]
    fn a_wrapped_key_copied_to_another_subject_does_not_unwrap() {
        let master = MasterKey::generate().unwrap();
        let wrapped = master
            .wrap(&subject("alice"), &DataKey::generate().unwrap())
            .unwrap();
        match master.unwrap(&subject("mallory"), &wrapped) {
            Err(error @ PersonalError::KeyUnwrap { .. }) => {
                assert!(error.to_string().contains("`mallory`"), "{error}");
            }
            other => panic!("expected KeyUnwrap, got {other:?}"),
        }
    }

    #[test]
    fn another_master_key_does_not_unwrap() {
        let alice = subject("alice");
        let wrapped = MasterKey::generate()
            .unwrap()
            .wrap(&alice, &DataKey::generate().unwrap())
            .unwrap();
        let other = MasterKey::from_bytes([7; 32]);
        assert!(matches!(
            other.unwrap(&alice, &wrapped),
            Err(PersonalError::KeyUnwrap { .. })
        ));
    }

    #[test]
    fn damaged_wrapped_keys_are_typed_errors() {
        let master = MasterKey::generate().unwrap();
        let alice = subject("alice");
        let wrapped = master.wrap(&alice, &DataKey::generate().unwrap()).unwrap();
        let mut flipped = wrapped.clone();
        flipped.0[40] ^= 0x10;
        assert!(matches!(
            master.unwrap(&alice, &flipped),
            Err(PersonalError::KeyUnwrap { .. })
        ));
        let mut version = wrapped.clone();
        version.0[0] = 9;
        let mut short = wrapped.clone();
        short.0.pop();
        for (bad, expected) in [
            (WrappedKey(Vec::new()), "empty"),
            (version, "unknown wrapping version 9"),
            (short, "72 bytes, not 73"),
        ] {
            match master.unwrap(&alice, &bad) {
                Err(error @ PersonalError::CorruptKey { .. }) => {
                    let message = error.to_string();
                    assert!(
                        message.contains(expected) && message.contains("`alice`"),
                        "{message}"
                    );
                }
                other => panic!("{bad:?}: expected CorruptKey, got {other:?}"),
            }
        }
    }

    #[test]
    fn debug_shows_no_key_bytes() {
        assert_eq!(
            format!("{:?}", MasterKey::from_bytes([1; 32])),
            "MasterKey(..)"
        );
        assert_eq!(
            format!("{:?}", WrappedKey(vec![1; 73])),
            "WrappedKey(73 bytes)"
        );
    }
}
