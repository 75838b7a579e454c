//! Personal data: declared on event types, stored encrypted per data subject, forgotten
//! by destroying the subject's key (crypto-shredding).
//!
//! Events are immutable, yet a data subject may ask to be forgotten. So an event's
//! personal fields are stored encrypted under a [`DataKey`] of their own subject (by
//! [`ProtectedStore`], all of an event's together as one AES-256-GCM [`bundle`]), and
//! that key, wrapped by the application's [`MasterKey`], lives in a
//! [`KeyStore`] apart from the events. [`KeyStore::forget`] destroys the subject's key:
//! the sealed fields, in the log and in every copy and backup of it, can no longer be
//! opened, and a reader shows the replacement the event declares instead. The log itself
//! is never rewritten; only one small key row is deleted (and scrubbed from disk).
//!
//! - [`bundle`]: the stored form, one sealed bundle per event.
//! - [`cipher`]: data keys, and the first stored form, still read: one field sealed on
//!   its own, bound to its event and JSON pointer ([`Aad`]). The example below seals one
//!   field that way to show the life of a key.
//! - [`keys`]: subject ids, the master key and wrapped keys, the record of a forgetting.
//! - [`KeyStore`]: where wrapped keys are kept; [`MemoryKeyStore`] here,
//!   `SqliteKeyStore` in `factum::sqlite` and `PostgresKeyStore` in `factum::postgres`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), factum::personal::PersonalError> {
//! use factum::personal::{Aad, KeyState, KeyStore, MasterKey, MemoryKeyStore, SubjectId};
//! use factum::personal::{is_sealed, open, seal};
//! use serde_json::json;
//!
//! let keys = MemoryKeyStore::new(MasterKey::generate()?);
//! let alice = SubjectId::new("customer-7")?;
//! let aad = Aad::new(factum::uuid::Uuid::now_v7(), "CustomerRegistered", 1, "/email");
//!
//! // Writing an event: the field is stored sealed.
//! let KeyState::Active(key) = keys.data_key_or_create(&alice).await? else { panic!("forgotten") };
//! let stored = seal(&key, &json!("alice@example.com"), &aad)?;
//! assert!(is_sealed(&stored));
//!
//! // Reading it: open with the subject's key.
//! let KeyState::Active(key) = keys.data_key(&alice).await? else { panic!("forgotten") };
//! assert_eq!(open(&key, &stored, &aad)?, json!("alice@example.com"));
//!
//! // Forgotten: there is no key any more; the reader shows the declared replacement.
//! keys.forget(&alice, "dpo@example.com").await?;
//! let shown = match keys.data_key(&alice).await? {
//!     KeyState::Active(key) => open(&key, &stored, &aad)?,
//!     KeyState::Forgotten(_) | KeyState::Absent => json!("<erased>"),
//! };
//! assert_eq!(shown, json!("<erased>"));
//! # Ok(())
//! # }
//! ```
//!
//! # Plugging a KMS
//!
//! Two ways, by where the master key may live:
//!
//! - The master key may be in the process: keep the SQL key store and fetch the
//!   [`MasterKey`] from the KMS (or vault) at start-up, e.g. by decrypting a stored
//!   data-encryption key with it, then `SqliteKeyStore::in_store(&store, master)`. Key
//!   operations make no KMS calls.
//! - The master key must never leave the KMS: implement [`KeyStore`] yourself. Make a
//!   key with [`DataKey::generate`], have the KMS wrap [`DataKey::expose_bytes`] (with
//!   the subject id as encryption context) and store the result; unwrap through the KMS
//!   and rebuild it with [`DataKey::from_bytes`]. Keep the rules of the trait (race-safe
//!   creation, no key for a forgotten subject, idempotent `forget`) and run
//!   `factum::personal::conformance::check_key_store` (feature `conformance`) against it.

pub mod bundle;
pub mod cipher;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod error;
mod fields;
pub mod keys;
mod members;
mod memory;
mod store;

use std::future::Future;

use chrono::{DateTime, SubsecRound, Utc};

pub use cipher::{Aad, DataKey, is_sealed, open, seal};
pub use error::PersonalError;
pub use fields::{
    Personal, PersonalField, PersonalFields, RedactedText, Subject, redacted_text, redacted_value,
};
pub use keys::{Forgotten, MasterKey, SubjectId, WrappedKey};
pub use memory::MemoryKeyStore;
pub use store::{
    FORGOTTEN_STREAM_TYPE, PersonalCatalog, PersonalStoreError, ProtectedStore, SUBJECT_FORGOTTEN,
    SubjectExport, SubjectForgotten, subject_stream,
};

/// A subject's key, as a [`KeyStore`] has it.
#[derive(Debug, Clone)]
pub enum KeyState {
    /// The subject's data key.
    Active(DataKey),
    /// The subject was forgotten: there is no key, and there will be none.
    Forgotten(Forgotten),
    /// The subject has no key yet.
    Absent,
}

/// Where data keys are kept, wrapped, one per data subject.
///
/// The rules every store keeps (checked by `conformance::check_key_store`):
///
/// - A subject has at most one key, ever: concurrent [`data_key_or_create`] calls, in
///   one process or many, end with the same key (insert if absent, then read back).
/// - [`forget`] destroys the key and records who and when; forgetting again returns
///   the first record. A forgotten subject gets no new key: `data_key_or_create`
///   answers [`KeyState::Forgotten`], so new events about them store the replacement.
/// - Forgetting a subject that never had a key is recorded too, so none is made later.
///
/// [`data_key_or_create`]: KeyStore::data_key_or_create
/// [`forget`]: KeyStore::forget
pub trait KeyStore: Send + Sync {
    /// The subject's key: [`KeyState::Active`], [`KeyState::Forgotten`] or
    /// [`KeyState::Absent`]; creates nothing.
    fn data_key(
        &self,
        subject: &SubjectId,
    ) -> impl Future<Output = Result<KeyState, PersonalError>> + Send;

    /// The subject's key, made and stored first if the subject has none:
    /// [`KeyState::Active`], or [`KeyState::Forgotten`] for a forgotten subject (never
    /// `Absent`).
    fn data_key_or_create(
        &self,
        subject: &SubjectId,
    ) -> impl Future<Output = Result<KeyState, PersonalError>> + Send;

    /// Destroys the subject's key and records that `by` asked for it now; for a subject
    /// forgotten already, returns the first record and changes nothing.
    fn forget(
        &self,
        subject: &SubjectId,
        by: &str,
    ) -> impl Future<Output = Result<Forgotten, PersonalError>> + Send;

    /// The record of the subject's forgetting, if they were forgotten.
    fn forgotten(
        &self,
        subject: &SubjectId,
    ) -> impl Future<Output = Result<Option<Forgotten>, PersonalError>> + Send;
}

/// Now, in whole microseconds: what every store (PostgreSQL's `timestamptz` too) keeps
/// exactly.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}
