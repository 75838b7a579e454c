//! The rules every [`KeyStore`] keeps, as one check to run against a store (factum's or
//! yours, e.g. one that wraps keys through a KMS).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use factum::personal::{MasterKey, MemoryKeyStore, conformance};
//!
//! let store = MemoryKeyStore::new(MasterKey::generate().unwrap());
//! conformance::check_key_store(&store).await;
//! # }
//! ```

use serde_json::json;
use uuid::Uuid;

use super::{Aad, DataKey, Forgotten, KeyState, KeyStore, SubjectId, open, seal};

/// Runs every rule of [`KeyStore`] against `store`, which must hold no key of the
/// subjects `conformance-*`; panics with a message naming the broken rule.
pub async fn check_key_store<S: KeyStore>(store: &S) {
    let alice = subject("conformance-alice");
    let bob = subject("conformance-bob");

    // Nothing is made by looking.
    assert!(
        matches!(store.data_key(&alice).await.unwrap(), KeyState::Absent),
        "a subject without a key is Absent"
    );
    assert_eq!(store.forgotten(&alice).await.unwrap(), None);
    assert!(
        matches!(store.data_key(&alice).await.unwrap(), KeyState::Absent),
        "data_key creates no key"
    );

    // Created once, then the same key every time.
    let key = active(
        store.data_key_or_create(&alice).await.unwrap(),
        "a new subject",
    );
    let again = active(
        store.data_key_or_create(&alice).await.unwrap(),
        "a second create",
    );
    let read = active(store.data_key(&alice).await.unwrap(), "a read after create");
    assert_eq!(
        again.expose_bytes(),
        key.expose_bytes(),
        "create twice: one key"
    );
    assert_eq!(
        read.expose_bytes(),
        key.expose_bytes(),
        "data_key returns the created key"
    );
    let aad = Aad::new(Uuid::nil(), "CustomerRegistered", 1, "/email");
    let sealed = seal(&key, &json!("alice@example.com"), &aad).unwrap();
    assert_eq!(
        open(&read, &sealed, &aad).unwrap(),
        json!("alice@example.com")
    );

    // Another subject, another key.
    let bob_key = active(
        store.data_key_or_create(&bob).await.unwrap(),
        "another subject",
    );
    assert_ne!(
        bob_key.expose_bytes(),
        key.expose_bytes(),
        "one key per subject"
    );

    // Concurrent creators end with one key.
    let carol = subject("conformance-carol");
    let (a, b, c, d) = tokio::join!(
        store.data_key_or_create(&carol),
        store.data_key_or_create(&carol),
        store.data_key_or_create(&carol),
        store.data_key_or_create(&carol),
    );
    let keys: Vec<DataKey> = [a, b, c, d]
        .into_iter()
        .map(|state| active(state.unwrap(), "a concurrent create"))
        .collect();
    assert!(
        keys.iter()
            .all(|k| k.expose_bytes() == keys[0].expose_bytes()),
        "concurrent creators must end with the same key"
    );
    let stored = active(
        store.data_key(&carol).await.unwrap(),
        "after concurrent creates",
    );
    assert_eq!(stored.expose_bytes(), keys[0].expose_bytes());

    // Forgetting destroys the key and records who and when.
    let before = super::now();
    let record = store.forget(&alice, "dpo@example.com").await.unwrap();
    assert_eq!(record.subject, alice);
    assert_eq!(record.forgotten_by, "dpo@example.com");
    assert!(
        record.forgotten_at >= before && record.forgotten_at <= super::now(),
        "forgotten_at is the time of the forgetting: {record:?}"
    );
    assert_eq!(forgotten(store.data_key(&alice).await.unwrap()), record);
    assert_eq!(store.forgotten(&alice).await.unwrap(), Some(record.clone()));

    // No new key for a forgotten subject.
    assert_eq!(
        forgotten(store.data_key_or_create(&alice).await.unwrap()),
        record,
        "a forgotten subject gets no new key"
    );
    assert_eq!(forgotten(store.data_key(&alice).await.unwrap()), record);

    // Forgetting again changes nothing.
    let second = store.forget(&alice, "someone else").await.unwrap();
    assert_eq!(second, record, "forgetting again returns the first record");

    // Others keep their keys.
    let bob_again = active(
        store.data_key(&bob).await.unwrap(),
        "another subject after a forget",
    );
    assert_eq!(bob_again.expose_bytes(), bob_key.expose_bytes());
    assert_eq!(store.forgotten(&bob).await.unwrap(), None);

    // A subject forgotten before they had a key never gets one.
    let dave = subject("conformance-dave");
    let record = store.forget(&dave, "import job").await.unwrap();
    assert_eq!(
        (&record.subject, record.forgotten_by.as_str()),
        (&dave, "import job")
    );
    assert_eq!(forgotten(store.data_key(&dave).await.unwrap()), record);
    assert_eq!(
        forgotten(store.data_key_or_create(&dave).await.unwrap()),
        record
    );
    assert_eq!(store.forgotten(&dave).await.unwrap(), Some(record));

    // Concurrent forgets of one subject agree on one record.
    let (first, second) = tokio::join!(store.forget(&carol, "one"), store.forget(&carol, "two"));
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first, second, "concurrent forgets agree on one record");
    assert_eq!(store.forgotten(&carol).await.unwrap(), Some(first));
}

fn subject(id: &str) -> SubjectId {
    SubjectId::new(id).unwrap()
}

#[track_caller]
fn active(state: KeyState, what: &str) -> DataKey {
    match state {
        KeyState::Active(key) => key,
        other => panic!("{what}: expected an active key, got {other:?}"),
    }
}

#[track_caller]
fn forgotten(state: KeyState) -> Forgotten {
    match state {
        KeyState::Forgotten(record) => record,
        other => panic!("expected a forgotten subject, got {other:?}"),
    }
}
