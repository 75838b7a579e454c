//! The SQLite key store of crypto-shredding (feature `personal`): the table
//! `subject_keys` in a store's file, one row per data subject. Its schema is one of its
//! own (`schema::KEY_STORE`, recorded in `factum_keys_version`), made when a key store
//! first opens the file, so a store that does not use it is unchanged.
//!
//! It works through the store's connections: reads on its reader pool, writes on its
//! one writer, on tokio's blocking pool like the store's own. Forgetting deletes the
//! row under `PRAGMA secure_delete` and writes a tombstone (no key, who, when) in the
//! same transaction, then checkpoints the WAL with `TRUNCATE` (why: see `forget` below).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::store::connection::{Failure, WriteTransaction};
use super::{SqliteOpenError, SqliteStore, schema};
use crate::personal::{
    DataKey, Forgotten, KeyState, KeyStore, MasterKey, PersonalError, SubjectId, WrappedKey,
};

/// A [`KeyStore`] in the table `subject_keys` of a SQLite store file: the file of the
/// events ([`SqliteKeyStore::in_store`]) or one of its own ([`SqliteKeyStore::open`]). Keys
/// are wrapped by the [`MasterKey`], which is never stored. Cloning it shares the
/// connections.
///
/// Forgetting a subject scrubs the wrapped key from the file: the row is deleted with
/// `secure_delete` on (its bytes overwritten with zeros, not left in a free page), and
/// the write-ahead log, which still holds the page as it was, is checkpointed and
/// truncated.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use factum::personal::{KeyState, KeyStore, MasterKey, SubjectId};
/// use factum::sqlite::{SqliteKeyStore, SqliteStore};
///
/// let store = SqliteStore::open("events.db").await?;
/// // The application's secret, e.g. from its KMS or a secrets file.
/// let master = MasterKey::from_bytes([7; 32]);
/// let keys = SqliteKeyStore::in_store(&store, master).await?;
/// let alice = SubjectId::new("customer-7")?;
/// assert!(matches!(keys.data_key_or_create(&alice).await?, KeyState::Active(_)));
/// keys.forget(&alice, "dpo@example.com").await?;
/// assert!(matches!(keys.data_key(&alice).await?, KeyState::Forgotten(_)));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SqliteKeyStore {
    store: SqliteStore,
    master: Arc<MasterKey>,
}

impl fmt::Debug for SqliteKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteKeyStore")
            .field("path", &self.store.path())
            .finish_non_exhaustive()
    }
}

/// A subject's row.
enum Row {
    Active(WrappedKey),
    Forgotten(Forgotten),
}

impl SqliteKeyStore {
    /// Keys in the file of `store` (any open [`SqliteStore`], in memory too), through
    /// its connections. Creates the `subject_keys` table the first time (recorded in
    /// `factum_keys_version`); refuses a file whose key schema is newer than this code
    /// ([`SqliteOpenError::SchemaTooNew`]).
    pub async fn in_store(store: &SqliteStore, master: MasterKey) -> Result<Self, SqliteOpenError> {
        let path = store
            .path()
            .map_or_else(|| PathBuf::from(":memory:"), Path::to_path_buf);
        let task_path = path.clone();
        store
            .write(move |connection, patience| {
                Ok(schema::migrate_keys(connection, &task_path, patience))
            })
            .await
            .map_err(|error| SqliteOpenError::Sqlite {
                path,
                source: Box::new(error),
            })??;
        Ok(Self {
            store: store.clone(),
            master: Arc::new(master),
        })
    }

    /// Keys in the store file at `path`, opened (or created) as [`SqliteStore::open`]
    /// does: the events' file, or one kept apart from it (e.g. on other storage, or
    /// backed up on another schedule).
    pub async fn open(path: impl AsRef<Path>, master: MasterKey) -> Result<Self, SqliteOpenError> {
        let store = SqliteStore::open(path).await?;
        Self::in_store(&store, master).await
    }

    /// The store whose file holds the keys.
    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    async fn row(&self, subject: &SubjectId) -> Result<Option<Row>, PersonalError> {
        let id = subject.clone();
        self.store
            .read(move |connection| Ok(read_row(connection, &id)?))
            .await
            .map_err(|error| PersonalError::backend(subject, error))?
    }

    fn state(&self, subject: &SubjectId, row: Option<Row>) -> Result<KeyState, PersonalError> {
        Ok(match row {
            None => KeyState::Absent,
            Some(Row::Active(wrapped)) => KeyState::Active(self.master.unwrap(subject, &wrapped)?),
            Some(Row::Forgotten(record)) => KeyState::Forgotten(record),
        })
    }
}

impl KeyStore for SqliteKeyStore {
    async fn data_key(&self, subject: &SubjectId) -> Result<KeyState, PersonalError> {
        let row = self.row(subject).await?;
        self.state(subject, row)
    }

    async fn data_key_or_create(&self, subject: &SubjectId) -> Result<KeyState, PersonalError> {
        if let Some(row) = self.row(subject).await? {
            return self.state(subject, Some(row));
        }
        let wrapped = self.master.wrap(subject, &DataKey::generate()?)?;
        let created_at = format_time(crate::personal::now());
        let id = subject.clone();
        // Insert if absent, then read back: of concurrent creators (in any process), the
        // first insert wins and every one reads its key; a forgotten subject's tombstone
        // stays.
        let row = self
            .store
            .write(move |connection, _| {
                connection
                    .prepare_cached(
                        "INSERT INTO subject_keys (subject, wrapped_key, created_at)
                         VALUES (?1, ?2, ?3) ON CONFLICT (subject) DO NOTHING",
                    )?
                    .execute(params![id.as_str(), wrapped.0, created_at])?;
                Ok(read_row(connection, &id)?)
            })
            .await
            .map_err(|error| PersonalError::backend(subject, error))??;
        match row {
            Some(row) => self.state(subject, Some(row)),
            None => Err(PersonalError::backend(
                subject,
                "the key just inserted is missing",
            )),
        }
    }

    /// Deletes the subject's row and writes its tombstone in one transaction, with
    /// `PRAGMA secure_delete = ON`, then runs `PRAGMA wal_checkpoint(TRUNCATE)`.
    ///
    /// Why: SQLite deletes a row by marking its space free; the bytes of the wrapped key
    /// would stay in the page (and in a free page, or a copy of the page in the WAL)
    /// until reused, and a copy of the file would still hold them. `secure_delete`
    /// overwrites the freed space with zeros in the page written by this transaction,
    /// and the checkpoint copies that page into the database file and truncates the WAL,
    /// which held the page as it was. If readers keep the checkpoint from finishing in
    /// the busy timeout, the forgetting stands and a warning is logged; forgetting the
    /// subject again checkpoints again.
    async fn forget(&self, subject: &SubjectId, by: &str) -> Result<Forgotten, PersonalError> {
        let record = Forgotten {
            subject: subject.clone(),
            forgotten_at: crate::personal::now(),
            forgotten_by: by.to_owned(),
        };
        let id = subject.clone();
        let (record, scrubbed) = self
            .store
            .write(move |connection, patience| {
                // The store's own deletes (snapshots, pruned commands) keep its setting.
                super::scrubbing(connection, |connection| {
                    forget_row(connection, patience, &id, record)
                })
            })
            .await
            .map_err(|error| PersonalError::backend(subject, error))?;
        let record = record?;
        if !scrubbed {
            tracing::warn!(
                subject = %subject,
                "forgotten, but readers kept the WAL checkpoint from finishing: the wrapped \
                 key's old page may stay in the WAL until the next checkpoint; forget the \
                 subject again to retry"
            );
        }
        Ok(record)
    }

    async fn forgotten(&self, subject: &SubjectId) -> Result<Option<Forgotten>, PersonalError> {
        Ok(match self.row(subject).await? {
            Some(Row::Forgotten(record)) => Some(record),
            _ => None,
        })
    }
}

/// In one write transaction: the subject's tombstone if it has one, else its row
/// deleted and `record` written as its tombstone.
fn forget_row(
    connection: &Connection,
    patience: std::time::Duration,
    subject: &SubjectId,
    record: Forgotten,
) -> Result<Result<Forgotten, PersonalError>, Failure> {
    let transaction = WriteTransaction::begin(connection, patience)?;
    let existing = match read_row(connection, subject)? {
        Err(error) => return Ok(Err(error)),
        Ok(row) => row,
    };
    if let Some(Row::Forgotten(first)) = existing {
        transaction.commit()?;
        return Ok(Ok(first));
    }
    let at = format_time(record.forgotten_at);
    // A subject forgotten before it had a key was "created" as it was forgotten.
    let created_at: String = connection
        .prepare_cached("SELECT created_at FROM subject_keys WHERE subject = ?1")?
        .query_row([subject.as_str()], |row| row.get(0))
        .optional()?
        .unwrap_or_else(|| at.clone());
    // Deleted, not updated in place: the deletion is what `secure_delete` zeroes.
    connection
        .prepare_cached("DELETE FROM subject_keys WHERE subject = ?1")?
        .execute([subject.as_str()])?;
    connection
        .prepare_cached(
            "INSERT INTO subject_keys (subject, wrapped_key, created_at, forgotten_at, \
             forgotten_by) VALUES (?1, NULL, ?2, ?3, ?4)",
        )?
        .execute(params![
            subject.as_str(),
            created_at,
            at,
            record.forgotten_by
        ])?;
    transaction.commit()?;
    Ok(Ok(record))
}

/// The subject's row, checked.
fn read_row(
    connection: &Connection,
    subject: &SubjectId,
) -> Result<Result<Option<Row>, PersonalError>, rusqlite::Error> {
    type Columns = (Option<Vec<u8>>, Option<String>, Option<String>);
    let columns: Option<Columns> = connection
        .prepare_cached(
            "SELECT wrapped_key, forgotten_at, forgotten_by FROM subject_keys WHERE subject = ?1",
        )?
        .query_row([subject.as_str()], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()?;
    let corrupt = |reason: String| PersonalError::CorruptKey {
        subject: subject.clone(),
        reason,
    };
    Ok(match columns {
        None => Ok(None),
        Some((Some(wrapped), None, None)) => Ok(Some(Row::Active(WrappedKey(wrapped)))),
        Some((None, Some(at), Some(by))) => match DateTime::parse_from_rfc3339(&at) {
            Ok(at) => Ok(Some(Row::Forgotten(Forgotten {
                subject: subject.clone(),
                forgotten_at: at.with_timezone(&Utc),
                forgotten_by: by,
            }))),
            Err(error) => Err(corrupt(format!(
                "forgotten_at `{at}` is not RFC 3339: {error}"
            ))),
        },
        Some(_) => Err(corrupt(
            "the row is neither an active key nor a forgotten subject".to_owned(),
        )),
    })
}

/// A time as the table keeps it: RFC 3339, UTC, microseconds.
fn format_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::personal::conformance::check_key_store;

    fn temp_file() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        (dir, path)
    }

    fn subject(id: &str) -> SubjectId {
        SubjectId::new(id).unwrap()
    }

    fn raw(path: &Path) -> Connection {
        Connection::open(path).unwrap()
    }

    /// Whether `needle` occurs in the file at `path` (false when there is no file).
    fn file_holds(path: &Path, needle: &[u8]) -> bool {
        std::fs::read(path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
    }

    /// Whether any 12 consecutive bytes of `key` (random bytes: a match by chance is
    /// out of the question) occur in the file at `path`. A row overwritten only in part
    /// (a new row placed in the tail of its freed space) still shows here.
    fn file_holds_any_part(path: &Path, key: &[u8]) -> bool {
        let Ok(bytes) = std::fs::read(path) else {
            return false;
        };
        key.windows(12)
            .any(|part| bytes.windows(part.len()).any(|w| w == part))
    }

    fn wal(path: &Path) -> PathBuf {
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        PathBuf::from(wal)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_file_keeps_the_key_store_rules() {
        let (_dir, path) = temp_file();
        let keys = SqliteKeyStore::open(&path, MasterKey::generate().unwrap())
            .await
            .unwrap();
        check_key_store(&keys).await;
    }

    #[tokio::test]
    async fn an_in_memory_store_keeps_the_key_store_rules() {
        let store = SqliteStore::in_memory().unwrap();
        let keys = SqliteKeyStore::in_store(&store, MasterKey::generate().unwrap())
            .await
            .unwrap();
        check_key_store(&keys).await;
    }

    #[tokio::test]
    async fn after_forget_the_wrapped_key_is_gone_from_the_file_and_the_wal() {
        let (_dir, path) = temp_file();
        let keys = SqliteKeyStore::open(&path, MasterKey::generate().unwrap())
            .await
            .unwrap();
        let alice = subject("alice");
        let bob = subject("bob");
        keys.data_key_or_create(&alice).await.unwrap();
        keys.data_key_or_create(&bob).await.unwrap();
        let wrapped = |subject: &str| -> Vec<u8> {
            raw(&path)
                .query_row(
                    "SELECT wrapped_key FROM subject_keys WHERE subject = ?1",
                    [subject],
                    |row| row.get(0),
                )
                .unwrap()
        };
        let (alice_wrapped, bob_wrapped) = (wrapped("alice"), wrapped("bob"));
        assert_eq!(alice_wrapped.len(), 73);
        // The bytes are on disk before: in the WAL, or in the file after a checkpoint.
        assert!(
            file_holds(&path, &alice_wrapped) || file_holds(&wal(&path), &alice_wrapped),
            "the wrapped key is on disk before forget"
        );

        let created_at: String = raw(&path)
            .query_row(
                "SELECT created_at FROM subject_keys WHERE subject = 'alice'",
                [],
                |row| row.get(0),
            )
            .unwrap();

        let record = keys.forget(&alice, "dpo").await.unwrap();
        assert!(
            !file_holds_any_part(&path, &alice_wrapped),
            "the database file still holds bytes of the forgotten wrapped key"
        );
        assert!(
            !file_holds_any_part(&wal(&path), &alice_wrapped),
            "the WAL still holds bytes of the forgotten wrapped key"
        );
        // Bob's key is still there, and readable.
        assert!(file_holds(&path, &bob_wrapped) || file_holds(&wal(&path), &bob_wrapped));
        assert!(matches!(
            keys.data_key(&bob).await.unwrap(),
            KeyState::Active(_)
        ));
        // And Alice stays forgotten: no new key, through this store or a reopened one.
        match keys.data_key_or_create(&alice).await.unwrap() {
            KeyState::Forgotten(again) => assert_eq!(again, record),
            other => panic!("a forgotten subject got {other:?}"),
        }
        let master = MasterKey::generate().unwrap();
        let reopened = SqliteKeyStore::open(&path, master).await.unwrap();
        assert!(matches!(
            reopened.data_key_or_create(&alice).await.unwrap(),
            KeyState::Forgotten(_)
        ));
        let row: (Option<Vec<u8>>, String, String) = raw(&path)
            .query_row(
                "SELECT wrapped_key, forgotten_by, created_at FROM subject_keys \
                 WHERE subject = 'alice'",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            row,
            (None, "dpo".to_owned(), created_at),
            "the key's creation time stays"
        );
        let secure_delete: i64 = keys
            .store()
            .write(|connection, _| {
                Ok(connection.query_row("PRAGMA secure_delete", [], |row| row.get(0))?)
            })
            .await
            .unwrap();
        assert_eq!(secure_delete, 0, "the store's connection keeps its setting");
    }

    #[tokio::test]
    async fn the_key_table_is_made_only_for_a_key_store_and_versioned_on_its_own() {
        let (_dir, path) = temp_file();
        let tables = |path: &Path| -> Vec<String> {
            raw(path)
                .prepare(
                    "SELECT name FROM sqlite_master WHERE type = 'table' \
                     AND name NOT LIKE 'sqlite!_%' ESCAPE '!' ORDER BY name",
                )
                .unwrap()
                .query_map([], |row| row.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let store = SqliteStore::open(&path).await.unwrap();
        assert!(!tables(&path).contains(&"subject_keys".to_owned()));
        SqliteKeyStore::in_store(&store, MasterKey::generate().unwrap())
            .await
            .unwrap();
        let after = tables(&path);
        assert!(
            after.contains(&"subject_keys".to_owned())
                && after.contains(&"factum_keys_version".to_owned()),
            "{after:?}"
        );
        let store_version: u32 = raw(&path)
            .query_row(
                "SELECT MAX(version) FROM factum_schema_version",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(
            store_version,
            SqliteStore::SCHEMA_VERSION,
            "the store's schema is untouched"
        );
        // The file still opens as a store, and again as a key store.
        drop(SqliteStore::open(&path).await.unwrap());
        SqliteKeyStore::open(&path, MasterKey::generate().unwrap())
            .await
            .unwrap();
        // A key schema from a newer factum is refused.
        raw(&path)
            .execute(
                "INSERT INTO factum_keys_version VALUES (9, 'from the future', 'tomorrow')",
                [],
            )
            .unwrap();
        match SqliteKeyStore::open(&path, MasterKey::generate().unwrap()).await {
            Err(SqliteOpenError::SchemaTooNew {
                found: 9,
                supported: 1,
                ..
            }) => {}
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn keys_outlive_the_store_and_need_their_master_key() {
        let (_dir, path) = temp_file();
        let bytes = [9; 32];
        let alice = subject("alice");
        let key = match SqliteKeyStore::open(&path, MasterKey::from_bytes(bytes))
            .await
            .unwrap()
            .data_key_or_create(&alice)
            .await
            .unwrap()
        {
            KeyState::Active(key) => key,
            other => panic!("{other:?}"),
        };
        let reopened = SqliteKeyStore::open(&path, MasterKey::from_bytes(bytes))
            .await
            .unwrap();
        match reopened.data_key(&alice).await.unwrap() {
            KeyState::Active(again) => assert_eq!(again.expose_bytes(), key.expose_bytes()),
            other => panic!("{other:?}"),
        }
        let wrong = SqliteKeyStore::open(&path, MasterKey::from_bytes([8; 32]))
            .await
            .unwrap();
        match wrong.data_key(&alice).await {
            Err(error @ PersonalError::KeyUnwrap { .. }) => {
                assert!(error.to_string().contains("`alice`"), "{error}");
            }
            other => panic!("expected KeyUnwrap, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_damaged_row_is_a_typed_error() {
        let (_dir, path) = temp_file();
        let keys = SqliteKeyStore::open(&path, MasterKey::generate().unwrap())
            .await
            .unwrap();
        let connection = raw(&path);
        connection
            .execute(
                "INSERT INTO subject_keys VALUES ('short', x'0102', 'now', NULL, NULL)",
                [],
            )
            .unwrap();
        connection
            .execute(
                "INSERT INTO subject_keys VALUES ('when', NULL, 'now', 'yesterday', 'dpo')",
                [],
            )
            .unwrap();
        for (id, expected) in [
            ("short", "the wrapped key is 2 bytes, not 73"),
            ("when", "forgotten_at `yesterday` is not RFC 3339"),
        ] {
            match keys.data_key(&subject(id)).await {
                Err(error @ PersonalError::CorruptKey { .. }) => {
                    let message = error.to_string();
                    assert!(
                        message.contains(expected) && message.contains(&format!("`{id}`")),
                        "{message}"
                    );
                }
                other => panic!("{id}: expected CorruptKey, got {other:?}"),
            }
        }
    }
}
