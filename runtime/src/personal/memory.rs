//! A key store in memory.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use zeroize::Zeroize;

use super::{Forgotten, KeyState, KeyStore, MasterKey, PersonalError, SubjectId, WrappedKey};

/// A [`KeyStore`] in memory, for tests and beside the memory event store. Keys are
/// wrapped by the master key as the SQL stores keep them. Cloning it shares the keys.
#[derive(Clone)]
pub struct MemoryKeyStore {
    inner: Arc<Inner>,
}

struct Inner {
    master: MasterKey,
    subjects: Mutex<HashMap<SubjectId, Entry>>,
}

enum Entry {
    Active(WrappedKey),
    Forgotten(Forgotten),
}

impl MemoryKeyStore {
    /// An empty store whose keys `master` wraps.
    pub fn new(master: MasterKey) -> Self {
        Self {
            inner: Arc::new(Inner {
                master,
                subjects: Mutex::default(),
            }),
        }
    }

    fn state(&self, subject: &SubjectId, entry: Option<&Entry>) -> Result<KeyState, PersonalError> {
        Ok(match entry {
            None => KeyState::Absent,
            Some(Entry::Active(wrapped)) => {
                KeyState::Active(self.inner.master.unwrap(subject, wrapped)?)
            }
            Some(Entry::Forgotten(record)) => KeyState::Forgotten(record.clone()),
        })
    }
}

impl fmt::Debug for MemoryKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let subjects = self
            .inner
            .subjects
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("MemoryKeyStore")
            .field("subjects", &subjects.len())
            .finish_non_exhaustive()
    }
}

impl KeyStore for MemoryKeyStore {
    async fn data_key(&self, subject: &SubjectId) -> Result<KeyState, PersonalError> {
        let subjects = self
            .inner
            .subjects
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.state(subject, subjects.get(subject))
    }

    async fn data_key_or_create(&self, subject: &SubjectId) -> Result<KeyState, PersonalError> {
        let mut subjects = self
            .inner
            .subjects
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !subjects.contains_key(subject) {
            let key = super::DataKey::generate()?;
            let wrapped = self.inner.master.wrap(subject, &key)?;
            subjects.insert(subject.clone(), Entry::Active(wrapped));
        }
        self.state(subject, subjects.get(subject))
    }

    async fn forget(&self, subject: &SubjectId, by: &str) -> Result<Forgotten, PersonalError> {
        let mut subjects = self
            .inner
            .subjects
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(Entry::Forgotten(record)) = subjects.get(subject) {
            return Ok(record.clone());
        }
        let record = Forgotten {
            subject: subject.clone(),
            forgotten_at: super::now(),
            forgotten_by: by.to_owned(),
        };
        if let Some(Entry::Active(mut wrapped)) =
            subjects.insert(subject.clone(), Entry::Forgotten(record.clone()))
        {
            wrapped.0.zeroize();
        }
        Ok(record)
    }

    async fn forgotten(&self, subject: &SubjectId) -> Result<Option<Forgotten>, PersonalError> {
        let subjects = self
            .inner
            .subjects
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(match subjects.get(subject) {
            Some(Entry::Forgotten(record)) => Some(record.clone()),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_memory_store_keeps_the_key_store_rules() {
        let store = MemoryKeyStore::new(MasterKey::generate().unwrap());
        crate::personal::conformance::check_key_store(&store).await;
    }

    #[tokio::test]
    async fn another_master_key_cannot_read_the_keys() {
        let store = MemoryKeyStore::new(MasterKey::generate().unwrap());
        let alice = SubjectId::new("alice").unwrap();
        store.data_key_or_create(&alice).await.unwrap();
        let wrapped = match store.inner.subjects.lock().unwrap().get(&alice) {
            Some(Entry::Active(wrapped)) => wrapped.clone(),
            _ => panic!("alice has a key"),
        };
        let other = MemoryKeyStore::new(MasterKey::generate().unwrap());
        other
            .inner
            .subjects
            .lock()
            .unwrap()
            .insert(alice.clone(), Entry::Active(wrapped));
        assert!(matches!(
            other.data_key(&alice).await,
            Err(PersonalError::KeyUnwrap { .. })
        ));
    }
}
