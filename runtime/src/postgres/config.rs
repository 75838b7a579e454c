//! How to reach the database and use it: the connection, the pool size, the schema.

use std::fmt;
use std::sync::Arc;

use crate::store::StoreError;

use super::store::PostgresStore;

/// How to reach the database and how to use it: a connection string or a
/// [`tokio_postgres::Config`], the pool size and the schema.
///
/// ```no_run
/// # async fn run() -> Result<(), factum::store::StoreError> {
/// use factum::store::PostgresStore;
///
/// let store = PostgresStore::builder("postgres://app@localhost/app")
///     .schema("billing")
///     .pool_size(8)
///     .connect()
///     .await?;
/// # let _ = store; Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresConfig {
    /// A bad connection string's error, shared so that the configuration stays `Clone`.
    pub(super) pg: Result<tokio_postgres::Config, Arc<tokio_postgres::Error>>,
    pub(super) pool_size: usize,
    pub(super) schema: String,
    pub(super) check_hashes: bool,
    pub(super) signer: Option<crate::integrity::EventSigner>,
    pub(super) archives: crate::archive::Archives,
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // tokio_postgres::Config's Debug redacts the password.
        f.debug_struct("PostgresConfig")
            .field("pg", &self.pg)
            .field("pool_size", &self.pool_size)
            .field("schema", &self.schema)
            .field("check_hashes", &self.check_hashes)
            .field("signer", &self.signer)
            .field("archives", &self.archives)
            .finish()
    }
}

impl PostgresConfig {
    /// A configuration from a parsed [`tokio_postgres::Config`], with the default pool
    /// size (four connections per CPU) and schema (`public`).
    pub fn new(pg: tokio_postgres::Config) -> Self {
        Self {
            pg: Ok(pg),
            pool_size: default_pool_size(),
            schema: "public".to_owned(),
            check_hashes: false,
            signer: None,
            archives: crate::archive::Archives::new(),
        }
    }

    /// A configuration from a connection string (`postgres://user@host:port/db` or
    /// `host=... user=...`); a bad string is reported by [`PostgresConfig::connect`].
    pub fn from_url(url: &str) -> Self {
        // The parser's error never echoes the string, which may hold a password.
        let pg = url.parse::<tokio_postgres::Config>().map_err(Arc::new);
        Self {
            pg,
            pool_size: default_pool_size(),
            schema: "public".to_owned(),
            check_hashes: false,
            signer: None,
            archives: crate::archive::Archives::new(),
        }
    }

    /// The most connections the pool opens (at least 1).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// The schema holding the store's tables, created if missing. Several stores can
    /// share a database in separate schemas; appends in one never wait for another.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Whether every read recomputes each event's hash and compares it with the stored
    /// one (off by default): a damaged or edited event is then a
    /// [`StoreError::CorruptRow`] at its position, never a wrong fact handed on. It costs
    /// one SHA-256 of the event per read. [`TamperEvident::verify`] checks the whole log
    /// either way.
    ///
    /// [`TamperEvident::verify`]: crate::integrity::TamperEvident::verify
    pub fn check_hashes(mut self, check_hashes: bool) -> Self {
        self.check_hashes = check_hashes;
        self
    }

    /// Signs each critical event this store appends (those `signer` names: see
    /// `SignedEvents::from_registry`) with the service's key, in the append's
    /// transaction, and checks every read critical event's signature and hash: a forged
    /// or unsigned one is a [`StoreError::CorruptRow`] at its position.
    pub fn sign_events(mut self, signer: crate::integrity::EventSigner) -> Self {
        self.signer = Some(signer);
        self
    }

    /// Reads the bodies of archived events from `archive` (see [`crate::archive`]); give
    /// every archive the events to read are in. Connecting checks that the store recorded
    /// it, unchanged (`PostgresError::NotItsArchive` otherwise).
    pub fn archive(mut self, archive: crate::archive::Archive) -> Self {
        self.archives.push(archive);
        self
    }

    /// Connects: see [`PostgresStore::connect`].
    pub async fn connect(self) -> Result<PostgresStore, StoreError> {
        PostgresStore::connect(self).await
    }
}

impl From<tokio_postgres::Config> for PostgresConfig {
    fn from(pg: tokio_postgres::Config) -> Self {
        Self::new(pg)
    }
}

impl From<&str> for PostgresConfig {
    fn from(url: &str) -> Self {
        Self::from_url(url)
    }
}

impl From<String> for PostgresConfig {
    fn from(url: String) -> Self {
        Self::from_url(&url)
    }
}

impl From<&String> for PostgresConfig {
    fn from(url: &String) -> Self {
        Self::from_url(url)
    }
}

pub(super) fn default_pool_size() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get() * 4)
}
