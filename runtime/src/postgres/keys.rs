//! The PostgreSQL key store of crypto-shredding (feature `personal`): the table
//! `subject_keys` in the store's schema, through the store's pool. Its migrations are
//! their own (`migrate::KEY_STORE`, recorded in `factum_keys_migrations`), applied when
//! a key store is first opened on the store, so a store that does not use it is
//! unchanged.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::PostgresStore;
use super::error::{PostgresError, backend};
use super::migrate::{KEY_STORE, MigrationError, migrate, quote_ident};
use crate::personal::{
    DataKey, Forgotten, KeyState, KeyStore, MasterKey, PersonalError, SubjectId, WrappedKey,
};
use crate::store::StoreError;

/// A [`KeyStore`] in the table `subject_keys` of a [`PostgresStore`]'s schema, through
/// the store's connection pool. Keys are wrapped by the [`MasterKey`], which is never
/// stored. Cloning it shares the pool.
///
/// Creating is one `INSERT .. ON CONFLICT DO NOTHING` and a read back, so concurrent
/// creators (in any process) end with the first one's key. Forgetting is one
/// `INSERT .. ON CONFLICT DO UPDATE` that clears the key and records who and when,
/// only where the subject is not forgotten yet.
///
/// PostgreSQL keeps a deleted or updated row's old version in the table's pages until
/// `VACUUM` reclaims the space, and in its WAL and base backups: the wrapped key's bytes
/// outlive the forgetting there. They are wrapped by the master key, so run `VACUUM` on
/// `subject_keys` regularly, and keep backups of it no longer than forgetting may take.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use factum::personal::{KeyStore, MasterKey, SubjectId};
/// use factum::postgres::{PostgresKeyStore, PostgresStore};
///
/// let store = PostgresStore::connect("postgres://localhost/app").await?;
/// // The application's secret, e.g. from its KMS or a secrets file.
/// let keys = PostgresKeyStore::in_store(&store, MasterKey::from_bytes([7; 32])).await?;
/// keys.forget(&SubjectId::new("customer-7")?, "dpo@example.com").await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PostgresKeyStore {
    store: PostgresStore,
    master: Arc<MasterKey>,
    sql: Arc<Sql>,
}

impl fmt::Debug for PostgresKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresKeyStore")
            .field("schema", &self.store.schema())
            .finish_non_exhaustive()
    }
}

/// The statements, rendered for the store's schema.
struct Sql {
    select: String,
    insert: String,
    forget: String,
}

/// A subject's row.
enum Row {
    Active(WrappedKey),
    Forgotten(Forgotten),
}

impl PostgresKeyStore {
    /// Keys in the schema of `store`. Creates the `subject_keys` table the first time
    /// (recorded in `factum_keys_migrations`, under the store's migration lock).
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] when no connection can be had, the database fails, or
    /// the key schema is newer than this code (`PostgresError::SchemaTooNew`).
    pub async fn in_store(store: &PostgresStore, master: MasterKey) -> Result<Self, StoreError> {
        let schema = store.schema();
        let mut client = store.client().await?;
        migrate(&mut client, &KEY_STORE, schema)
            .await
            .map_err(|error| match error {
                MigrationError::TooNew { found, supported } => {
                    backend(PostgresError::SchemaTooNew {
                        schema: schema.to_owned(),
                        found,
                        supported,
                    })
                }
                MigrationError::Refused(reason) => backend(PostgresError::NotAStore {
                    schema: schema.to_owned(),
                    reason,
                }),
                MigrationError::Database(error) => backend(error),
            })?;
        let s = quote_ident(schema);
        Ok(Self {
            store: store.clone(),
            master: Arc::new(master),
            sql: Arc::new(Sql {
                select: format!(
                    "SELECT wrapped_key, forgotten_at, forgotten_by FROM {s}.subject_keys \
                     WHERE subject = $1"
                ),
                insert: format!(
                    "INSERT INTO {s}.subject_keys (subject, wrapped_key, created_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (subject) DO NOTHING"
                ),
                forget: format!(
                    "INSERT INTO {s}.subject_keys AS k \
                         (subject, wrapped_key, created_at, forgotten_at, forgotten_by) \
                     VALUES ($1, NULL, $2, $2, $3) \
                     ON CONFLICT (subject) DO UPDATE \
                         SET wrapped_key = NULL, forgotten_at = excluded.forgotten_at, \
                             forgotten_by = excluded.forgotten_by \
                         WHERE k.forgotten_at IS NULL \
                     RETURNING forgotten_at, forgotten_by"
                ),
            }),
        })
    }

    /// The store whose schema holds the keys.
    pub fn store(&self) -> &PostgresStore {
        &self.store
    }

    async fn client(
        &self,
        subject: &SubjectId,
    ) -> Result<deadpool_postgres::Object, PersonalError> {
        self.store
            .client()
            .await
            .map_err(|error| PersonalError::backend(subject, error))
    }

    async fn row(
        &self,
        client: &deadpool_postgres::Object,
        subject: &SubjectId,
    ) -> Result<Option<Row>, PersonalError> {
        let backend = |error| PersonalError::backend(subject, error);
        let statement = client
            .prepare_cached(&self.sql.select)
            .await
            .map_err(backend)?;
        let Some(row) = client
            .query_opt(&statement, &[&subject.as_str()])
            .await
            .map_err(backend)?
        else {
            return Ok(None);
        };
        type Columns = (Option<Vec<u8>>, Option<DateTime<Utc>>, Option<String>);
        let columns: Result<Columns, tokio_postgres::Error> =
            (|| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))();
        let corrupt = |reason: String| PersonalError::CorruptKey {
            subject: subject.clone(),
            reason,
        };
        match columns.map_err(|error| corrupt(error.to_string()))? {
            (Some(wrapped), None, None) => Ok(Some(Row::Active(WrappedKey(wrapped)))),
            (None, Some(forgotten_at), Some(forgotten_by)) => Ok(Some(Row::Forgotten(Forgotten {
                subject: subject.clone(),
                forgotten_at,
                forgotten_by,
            }))),
            _ => Err(corrupt(
                "the row is neither an active key nor a forgotten subject".to_owned(),
            )),
        }
    }

    fn state(&self, subject: &SubjectId, row: Option<Row>) -> Result<KeyState, PersonalError> {
        Ok(match row {
            None => KeyState::Absent,
            Some(Row::Active(wrapped)) => KeyState::Active(self.master.unwrap(subject, &wrapped)?),
            Some(Row::Forgotten(record)) => KeyState::Forgotten(record),
        })
    }
}

impl KeyStore for PostgresKeyStore {
    async fn data_key(&self, subject: &SubjectId) -> Result<KeyState, PersonalError> {
        let client = self.client(subject).await?;
        let row = self.row(&client, subject).await?;
        self.state(subject, row)
    }

    async fn data_key_or_create(&self, subject: &SubjectId) -> Result<KeyState, PersonalError> {
        let client = self.client(subject).await?;
        if let Some(row) = self.row(&client, subject).await? {
            return self.state(subject, Some(row));
        }
        let wrapped = self.master.wrap(subject, &DataKey::generate()?)?;
        let backend = |error| PersonalError::backend(subject, error);
        let statement = client
            .prepare_cached(&self.sql.insert)
            .await
            .map_err(backend)?;
        // A concurrent insert of the same subject makes this one wait for its commit and
        // then do nothing; the read back, a new statement, sees the winner's row.
        client
            .execute(
                &statement,
                &[&subject.as_str(), &wrapped.0, &crate::personal::now()],
            )
            .await
            .map_err(backend)?;
        match self.row(&client, subject).await? {
            Some(row) => self.state(subject, Some(row)),
            None => Err(PersonalError::backend(
                subject,
                "the key just inserted is missing",
            )),
        }
    }

    async fn forget(&self, subject: &SubjectId, by: &str) -> Result<Forgotten, PersonalError> {
        let client = self.client(subject).await?;
        let backend = |error| PersonalError::backend(subject, error);
        let statement = client
            .prepare_cached(&self.sql.forget)
            .await
            .map_err(backend)?;
        let now = crate::personal::now();
        let written = client
            .query_opt(&statement, &[&subject.as_str(), &now, &by])
            .await
            .map_err(backend)?;
        if let Some(row) = written {
            let forgotten_at: DateTime<Utc> = row.try_get(0).map_err(backend)?;
            let forgotten_by: String = row.try_get(1).map_err(backend)?;
            return Ok(Forgotten {
                subject: subject.clone(),
                forgotten_at,
                forgotten_by,
            });
        }
        // Forgotten already: the first record stands.
        match self.row(&client, subject).await? {
            Some(Row::Forgotten(record)) => Ok(record),
            _ => Err(PersonalError::backend(
                subject,
                "the subject's row changed while it was being forgotten",
            )),
        }
    }

    async fn forgotten(&self, subject: &SubjectId) -> Result<Option<Forgotten>, PersonalError> {
        let client = self.client(subject).await?;
        Ok(match self.row(&client, subject).await? {
            Some(Row::Forgotten(record)) => Some(record),
            _ => None,
        })
    }
}
