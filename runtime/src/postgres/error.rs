//! The PostgreSQL store's own failures, carried in `StoreError::Backend`.

use crate::store::StoreError;

/// Failures specific to the PostgreSQL store, carried in [`StoreError::Backend`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresError {
    /// The connection string or options are invalid.
    #[error("invalid PostgreSQL configuration: {what}")]
    InvalidConfig {
        /// What could not be done with it.
        what: &'static str,
        /// The parser's or pool builder's error (never echoing the connection string,
        /// which may hold a password).
        #[source]
        source: crate::error::BoxError,
    },
    /// The schema name is not made of ASCII letters, digits and `_` (1 to 63 bytes, not
    /// starting with a digit nor with `pg_`, which PostgreSQL reserves).
    #[error(
        "invalid schema name `{0}`: use 1 to 63 ASCII letters, digits and `_`, not starting with a digit or `pg_`"
    )]
    InvalidSchemaName(String),
    /// The database holds a newer factum schema than this code knows.
    #[error(
        "schema `{schema}` is at factum schema version {found}, newer than this code knows ({supported}); upgrade factum"
    )]
    SchemaTooNew {
        /// The schema.
        schema: String,
        /// The version found in the database.
        found: i32,
        /// The newest version this code knows.
        supported: i32,
    },
    /// The schema holds another of factum's schemas (the read-model catalog), not a
    /// store. Nothing was changed.
    #[error("schema `{schema}` is not a factum store: {reason}; nothing was changed")]
    NotAStore {
        /// The schema.
        schema: String,
        /// What it holds instead.
        reason: String,
    },
    /// An archive given with `PostgresConfig::archive` is not one this store recorded, or
    /// changed since it was written.
    #[error("{} is not one of the archives of schema `{schema}`: {reason}", archive.display())]
    NotItsArchive {
        /// The schema.
        schema: String,
        /// The archive file.
        archive: std::path::PathBuf,
        /// What does not match.
        reason: String,
    },
    /// A connection could not be taken from the pool.
    #[error("no connection from the pool")]
    Pool(#[source] deadpool_postgres::PoolError),
    /// The database answered something this code does not expect (a changed function).
    #[error("unexpected reply from the database: {0}")]
    UnexpectedReply(String),
}

pub(super) fn backend(error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(Box::new(error))
}

pub(super) fn pool_error(error: deadpool_postgres::PoolError) -> StoreError {
    match error {
        deadpool_postgres::PoolError::Backend(error) => backend(error),
        other => backend(PostgresError::Pool(other)),
    }
}
