//! Opening and configuring connections, the reader pool, and waiting out `SQLITE_BUSY`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags};
use tokio::sync::Semaphore;

use super::{SqliteOpenError, SqliteOptions};
use crate::store::StoreError;

/// What a blocking step of the store failed with.
#[derive(Debug)]
pub(crate) enum Failure {
    /// SQLite failed; retried while it means "busy", else a backend error.
    Sqlite(rusqlite::Error),
    /// A typed store error (a conflict, a corrupt row, ...).
    Store(StoreError),
    /// The consumer of a streamed read went away: stop reading, report nothing.
    Stop,
}

impl From<rusqlite::Error> for Failure {
    fn from(error: rusqlite::Error) -> Self {
        Self::Sqlite(error)
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

impl From<Failure> for StoreError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Sqlite(error) => backend(error),
            Failure::Store(error) => error,
            Failure::Stop => StoreError::Backend("the read was abandoned".into()),
        }
    }
}

impl Failure {
    /// The error to report as the cause: SQLite's own, or the store error.
    pub(crate) fn into_source(self) -> Box<dyn std::error::Error + Send + Sync> {
        match self {
            Failure::Sqlite(error) => Box::new(error),
            other => Box::new(StoreError::from(other)),
        }
    }
}

/// A SQLite error as a store error.
pub(in crate::sqlite) fn backend(error: rusqlite::Error) -> StoreError {
    StoreError::Backend(Box::new(error))
}

/// A blocking task that panicked or was cancelled, as a store error.
pub(in crate::sqlite) fn task_failed(error: tokio::task::JoinError) -> StoreError {
    StoreError::Backend(Box::new(error))
}

/// Whether SQLite refused because another connection holds a lock.
pub(in crate::sqlite) fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Runs `work` again while it fails because the database is busy, for up to `patience`.
///
/// The busy timeout already makes SQLite wait inside most calls; this covers the calls
/// where SQLite returns `SQLITE_BUSY` at once instead of calling its busy handler (a
/// connection opening while another process recovers the WAL or changes the journal
/// mode, and waits that ran out while another process held a long transaction).
pub(in crate::sqlite) fn retry_busy<T>(
    patience: Duration,
    mut work: impl FnMut() -> Result<T, Failure>,
) -> Result<T, Failure> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match work() {
            Err(Failure::Sqlite(error)) if is_busy(&error) && started.elapsed() < patience => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// The flags every file connection is opened with: never creating the file (a new store
/// is created whole by `file.rs`, so SQLite never starts a database in a file it finds
/// empty), no URI interpretation of the path (a file named `file:x` is a file), and no
/// SQLite-level mutex (each connection is used by one thread at a time, behind a lock of
/// the store).
fn flags() -> OpenFlags {
    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX
}

/// Settings of every writing connection, file or memory.
pub(in crate::sqlite) fn configure_writer(
    connection: &Connection,
    options: &SqliteOptions,
) -> rusqlite::Result<()> {
    connection.busy_timeout(options.busy_timeout)?;
    connection.pragma_update(None, "synchronous", options.synchronous.pragma_value())?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    set_page_cache(connection, options.page_cache)?;
    keep_plans(connection)
}

/// The statement cache, and plans that stay prepared. Without the query planner's
/// stability guarantee (QPSG), SQLite marks a statement whose plan looked at a bound
/// value (a `LIMIT ?`, a term of a join) to be prepared again whenever that value is
/// bound: every read of a stream or by tags would be parsed and planned anew (a fifth
/// of an aggregate's command, more than a third of a decision, in `benches/decide`). The store's statements have one good
/// plan whatever their values (each walks a primary key or an index by equality and
/// range), so the plan made once is kept.
fn keep_plans(connection: &Connection) -> rusqlite::Result<()> {
    connection.set_prepared_statement_cache_capacity(32);
    connection.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

/// `PRAGMA cache_size` in KiB (a negative value), so the limit is bytes whatever the
/// page size; at least 1 KiB, which SQLite raises to its minimum of pages.
fn set_page_cache(connection: &Connection, bytes: usize) -> rusqlite::Result<()> {
    let kib = i64::try_from(bytes / 1024).unwrap_or(i64::MAX).max(1);
    connection.pragma_update(None, "cache_size", -kib)
}

/// Opens the writer connection of an existing file, changing nothing in it yet: the
/// caller checks the schema before [`use_wal`] writes to the file.
pub(in crate::sqlite) fn open_writer(
    path: &Path,
    options: &SqliteOptions,
) -> Result<Connection, SqliteOpenError> {
    let sqlite = |source: rusqlite::Error| SqliteOpenError::Sqlite {
        path: path.to_path_buf(),
        source: Box::new(source),
    };
    let connection = Connection::open_with_flags(path, flags()).map_err(sqlite)?;
    connection
        .busy_timeout(options.busy_timeout)
        .map_err(sqlite)?;
    Ok(connection)
}

/// Switches the file of the writer connection to WAL (a no-op for a file already in WAL
/// mode: the mode is persistent).
pub(in crate::sqlite) fn use_wal(
    connection: &Connection,
    path: &Path,
    options: &SqliteOptions,
) -> Result<(), SqliteOpenError> {
    // Switching to WAL needs a moment of exclusive access, which another process opening
    // the same file may hold; the mode is persistent, so later opens find it set.
    let mode = retry_busy(options.busy_timeout, || {
        connection
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))
            .map_err(Failure::from)
    })
    .map_err(|failure| SqliteOpenError::Sqlite {
        path: path.to_path_buf(),
        source: failure.into_source(),
    })?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(SqliteOpenError::WalUnavailable {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Opens a reader connection: read-only by `query_only`, so no statement it runs can
/// write, even by mistake.
fn open_reader(
    path: &Path,
    busy_timeout: Duration,
    page_cache: usize,
) -> rusqlite::Result<Connection> {
    let connection = Connection::open_with_flags(path, flags())?;
    connection.busy_timeout(busy_timeout)?;
    connection.pragma_update(None, "query_only", "ON")?;
    set_page_cache(&connection, page_cache)?;
    keep_plans(&connection)?;
    Ok(connection)
}

/// The reader connections of a file store: opened on first need, kept when returned,
/// at most `permits` in use at once.
pub(in crate::sqlite) struct Readers {
    path: PathBuf,
    busy_timeout: Duration,
    page_cache: usize,
    idle: Mutex<Vec<Connection>>,
    /// One permit per connection that may be in use.
    pub(in crate::sqlite) permits: Arc<Semaphore>,
}

impl Readers {
    pub(in crate::sqlite) fn new(path: PathBuf, options: &SqliteOptions) -> Self {
        Self {
            path,
            busy_timeout: options.busy_timeout,
            page_cache: options.page_cache,
            idle: Mutex::new(Vec::with_capacity(options.readers)),
            permits: Arc::new(Semaphore::new(options.readers)),
        }
    }

    /// An idle connection, or a new one. The caller holds a permit.
    pub(in crate::sqlite) fn take(&self) -> rusqlite::Result<Connection> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match idle {
            Some(connection) => Ok(connection),
            None => open_reader(&self.path, self.busy_timeout, self.page_cache),
        }
    }

    /// Returns a connection to the idle list (dropping it if a transaction was left open).
    pub(in crate::sqlite) fn give_back(&self, connection: Connection) {
        if connection.is_autocommit() {
            self.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(connection);
        }
    }
}

/// Rolls back a transaction that a panicking or failing task left open on `connection`,
/// so the next user starts clean.
pub(in crate::sqlite) fn end_abandoned_transaction(connection: &Connection) {
    if !connection.is_autocommit() {
        // If even the rollback fails, the next BEGIN reports the problem.
        let _ = connection.execute_batch("ROLLBACK");
    }
}

/// The write lock, held from `BEGIN IMMEDIATE` to `COMMIT`; rolls back when dropped
/// uncommitted.
pub(in crate::sqlite) struct WriteTransaction<'c> {
    connection: &'c Connection,
    committed: bool,
}

impl<'c> WriteTransaction<'c> {
    /// Takes the write lock, waiting for other writers (busy timeout, then retries).
    pub(in crate::sqlite) fn begin(
        connection: &'c Connection,
        patience: Duration,
    ) -> Result<Self, Failure> {
        retry_busy(patience, || {
            connection
                .prepare_cached("BEGIN IMMEDIATE")?
                .execute([])
                .map_err(Failure::from)
        })?;
        Ok(Self {
            connection,
            committed: false,
        })
    }

    /// Commits: the appended events become visible, all at once.
    pub(in crate::sqlite) fn commit(mut self) -> Result<(), Failure> {
        self.connection.prepare_cached("COMMIT")?.execute([])?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for WriteTransaction<'_> {
    fn drop(&mut self) {
        if !self.committed {
            end_abandoned_transaction(self.connection);
        }
    }
}
