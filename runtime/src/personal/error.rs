//! What can go wrong sealing, opening, wrapping and storing keys.

use uuid::Uuid;

use super::keys::SubjectId;

/// Errors of crypto-shredding (feature `personal`). Each names what it is about: the
/// event and the field's JSON pointer, or the data subject.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersonalError {
    /// A sealed field did not open: the data key is not the one it was sealed with, the
    /// ciphertext was changed, or it was sealed for another event or field (the
    /// [`Aad`](super::Aad) differs).
    #[error(
        "event {event_id} (`{event_name}`) field `{pointer}`: the sealed value does not open \
         (wrong data key, tampered ciphertext, or sealed for another event or field)"
    )]
    Undecryptable {
        /// The event the field belongs to.
        event_id: Uuid,
        /// The event's name.
        event_name: String,
        /// The field's JSON pointer, e.g. `/email`.
        pointer: String,
    },
    /// A stored field is not a sealed value of a format this code reads (not a string,
    /// no `pii:v1:` prefix, bad base64, too short), or it opened into bytes that are not
    /// JSON.
    #[error(
        "event {event_id} (`{event_name}`) field `{pointer}`: malformed sealed value: {reason}"
    )]
    Malformed {
        /// The event the field belongs to.
        event_id: Uuid,
        /// The event's name.
        event_name: String,
        /// The field's JSON pointer, e.g. `/email`.
        pointer: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A subject's wrapped data key does not unwrap: the master key is not the one it
    /// was wrapped with, it was wrapped for another subject (copied), or it was changed.
    #[error(
        "subject `{subject}`: the wrapped data key does not unwrap (wrong master key, a key \
         wrapped for another subject, or tampered)"
    )]
    KeyUnwrap {
        /// The data subject.
        subject: SubjectId,
    },
    /// A subject's stored key row cannot be read (a wrapped key of the wrong length or
    /// version, an unreadable time, a row that is neither active nor forgotten).
    #[error("subject `{subject}`: stored key is corrupt: {reason}")]
    CorruptKey {
        /// The data subject.
        subject: SubjectId,
        /// What could not be read.
        reason: String,
    },
    /// A subject id was empty.
    #[error("a data subject id must not be empty")]
    EmptySubject,
    /// The operating system's random number generator failed (no key or nonce was made).
    #[error("the operating system's random number generator failed")]
    Randomness(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The key store's backend failed.
    #[error("key store failed for subject `{subject}`")]
    Backend {
        /// The data subject the operation was about.
        subject: SubjectId,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl PersonalError {
    /// A backend failure about `subject`.
    pub fn backend(
        subject: &SubjectId,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Backend {
            subject: subject.clone(),
            source: source.into(),
        }
    }
}
