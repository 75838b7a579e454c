//! Read models in SQLite: one database file per projection version, beside a catalog.
//!
//! `dir/catalog.sqlite3` records which versions exist and which one is active;
//! `dir/<name>.v<version>.sqlite3` holds that version's tables with its checkpoint, dead
//! letters and partition offsets, so they commit in one transaction. Handlers write with plain table names;
//! readers open the active version with [`SqliteReadModel::reader`]. A file per version
//! also means projections never wait on each other's write lock.
//!
//! The catalog's schema and factum's tables in each version file are versioned by the
//! one migration runner of the SQLite backend (`sqlite::schema`): each file records its schema
//! version, a file from a newer factum is [`ReadModelError::SchemaTooNew`], and a file
//! made before read models were versioned is adopted at version 1.
//!
//! The version files use WAL with `synchronous = NORMAL`: a power cut may lose the last
//! commits, but the rows and the checkpoint are lost together, and the runner re-applies
//! those events — the read model is never inconsistent.

use std::collections::HashMap;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::file::Problem;
use super::schema::{self, Schema, SchemaError};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::projection::{
    ParkedEvent, PartitionOffset, ReadModel, ReadModelError, ReadModelTx, Target, VersionState,
    VersionStatus, check_name,
};

const CATALOG: &str = "catalog.sqlite3";
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// A directory of SQLite read models.
#[derive(Clone)]
pub struct SqliteReadModel {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    /// Made by [`ReadModel::shadow`]: the only kind [`ReadModel::discard`] removes.
    shadow: bool,
    /// Write connections not in use, per target; a transaction takes one out.
    idle_writers: Mutex<HashMap<Target, Connection>>,
}

impl std::fmt::Debug for SqliteReadModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteReadModel")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

/// A write transaction on one projection version's SQLite file.
///
/// Dereferences to the [`rusqlite::Connection`], inside a transaction the runner began
/// and commits with the checkpoint: use `execute`, `prepare_cached`, `query_row`, ... and
/// never `COMMIT` or `ROLLBACK` yourself.
pub struct SqliteTx {
    connection: Connection,
    target: Target,
    checkpoint: Option<u64>,
}

impl Deref for SqliteTx {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.connection
    }
}

impl std::fmt::Debug for SqliteTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteTx")
            .field("target", &self.target)
            .field("checkpoint", &self.checkpoint)
            .finish()
    }
}

impl SqliteTx {
    /// The projection version (or process manager, version 0) it writes to.
    pub fn target(&self) -> Target {
        self.target
    }
}

impl ReadModelTx for SqliteTx {
    type ReadModel = SqliteReadModel;

    fn checkpoint(&self) -> Option<u64> {
        self.checkpoint
    }

    fn is_open(&self) -> bool {
        !self.connection.is_autocommit()
    }
}

pub(super) fn database(
    target: impl ToString,
    operation: &'static str,
) -> impl FnOnce(rusqlite::Error) -> ReadModelError {
    move |error| ReadModelError::Database {
        target: target.to_string(),
        operation,
        source: Box::new(error),
    }
}

pub(super) fn task_failed(
    target: impl ToString,
) -> impl FnOnce(tokio::task::JoinError) -> ReadModelError {
    move |error| ReadModelError::Database {
        target: target.to_string(),
        operation: "blocking task",
        source: Box::new(error),
    }
}

pub(super) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn configure(connection: &Connection) -> rusqlite::Result<()> {
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(())
}

impl SqliteReadModel {
    /// Opens (creating) the read-model directory `dir`.
    pub async fn open(dir: impl AsRef<Path>) -> Result<Self, ReadModelError> {
        Self::open_dir(dir.as_ref().to_path_buf(), false).await
    }

    async fn open_dir(dir: PathBuf, shadow: bool) -> Result<Self, ReadModelError> {
        let shown = dir.display().to_string();
        let task_dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&task_dir).map_err(|error| ReadModelError::Database {
                target: task_dir.display().to_string(),
                operation: "create the directory",
                source: Box::new(error),
            })?;
            let catalog = open_catalog(&task_dir)?;
            drop(catalog);
            Ok::<_, ReadModelError>(())
        })
        .await
        .map_err(task_failed(shown))??;
        Ok(Self {
            inner: Arc::new(Inner {
                dir,
                shadow,
                idle_writers: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The names of the projections and reactors the directory's catalog knows, in
    /// order: what an operator's status lists (see [`ReadModel::versions`] for each).
    pub async fn names(&self) -> Result<Vec<String>, ReadModelError> {
        let dir = self.inner.dir.clone();
        let shown = dir.display().to_string();
        tokio::task::spawn_blocking(move || {
            let catalog = open_catalog(&dir)?;
            let mut statement = catalog
                .prepare("SELECT DISTINCT name FROM versions ORDER BY name")
                .map_err(database(dir.display().to_string(), "list the projections"))?;
            statement
                .query_map([], |row| row.get(0))
                .and_then(|rows| rows.collect::<Result<Vec<String>, _>>())
                .map_err(database(dir.display().to_string(), "list the projections"))
        })
        .await
        .map_err(task_failed(shown))?
    }

    /// The file holding `target`'s read model.
    pub fn path_of(&self, target: Target) -> PathBuf {
        self.inner
            .dir
            .join(format!("{}.v{}.sqlite3", target.name, target.version))
    }

    /// Runs `read` on a read-only connection to the active version of `name`, on a
    /// blocking thread (see [`SqliteReadModel::reader`]): what a query's answer does.
    pub async fn read<T: Send + 'static>(
        &self,
        name: &str,
        read: impl FnOnce(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, ReadModelError> {
        let connection = self.reader(name).await?;
        let shown = name.to_owned();
        tokio::task::spawn_blocking(move || read(&connection))
            .await
            .map_err(|error| ReadModelError::Database {
                target: shown.clone(),
                operation: "read",
                source: Box::new(error),
            })?
            .map_err(database(shown, "read"))
    }

    /// A read-only connection to the active version of projection `name`.
    ///
    /// Readers see only versions that caught up: a version being built or rebuilt is not
    /// active, and this returns [`ReadModelError::NotActive`].
    pub async fn reader(&self, name: &str) -> Result<Connection, ReadModelError> {
        check_name(name)?;
        let this = self.clone();
        let name = name.to_owned();
        let shown = name.clone();
        tokio::task::spawn_blocking(move || {
            let catalog = open_catalog(&this.inner.dir)?;
            let active: Option<u32> = catalog
                .query_row(
                    "SELECT version FROM versions WHERE name = ?1 AND state = 'active'",
                    [&name],
                    |row| row.get(0),
                )
                .optional()
                .map_err(database(&name, "read the catalog"))?;
            let version = active.ok_or_else(|| ReadModelError::NotActive { name: name.clone() })?;
            let path = this.inner.dir.join(format!("{name}.v{version}.sqlite3"));
            let connection = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(database(format!("{name} v{version}"), "open for reading"))?;
            connection
                .busy_timeout(BUSY_TIMEOUT)
                .map_err(database(&name, "configure"))?;
            Ok(connection)
        })
        .await
        .map_err(task_failed(shown))?
    }

    fn open_writer(&self, target: Target) -> Result<Connection, ReadModelError> {
        if let Some(connection) = self
            .inner
            .idle_writers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&target)
        {
            return Ok(connection);
        }
        check_name(target.name)?;
        open_with_schema(&self.path_of(target), &schema::READ_MODEL, target)
    }

    /// Keeps a write connection for the next transaction, unless it is still inside one
    /// (a failed `ROLLBACK`): that one is dropped, which rolls it back.
    fn give_back(&self, target: Target, connection: Connection) {
        if !connection.is_autocommit() {
            return;
        }
        self.inner
            .idle_writers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(target, connection);
    }

    /// Brings `schema` up to date in `target`'s file, beside its read-model tables
    /// (creating the file if needed), under the file's write lock.
    pub(super) async fn migrate_beside(
        &self,
        target: Target,
        schema: &'static Schema,
    ) -> Result<(), ReadModelError> {
        check_name(target.name)?;
        self.blocking(target, move |this| {
            let connection = this.open_writer(target)?;
            let shown = this.path_of(target).display().to_string();
            let migrated = schema::migrate_schema(&connection, schema, BUSY_TIMEOUT)
                .map_err(|error| schema_error(&shown, &target.to_string(), error));
            this.give_back(target, connection);
            migrated
        })
        .await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        target: Target,
        work: impl FnOnce(&SqliteReadModel) -> Result<T, ReadModelError> + Send + 'static,
    ) -> Result<T, ReadModelError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || work(&this))
            .await
            .map_err(task_failed(target))?
    }
}

fn open_catalog(dir: &Path) -> Result<Connection, ReadModelError> {
    let path = dir.join(CATALOG);
    open_with_schema(&path, &schema::READ_MODEL_CATALOG, path.display())
}

/// Opens the file at `path` with `schema` brought up to date: a new file is made whole
/// beside the path and linked into place; a file that is there but no database, or holds
/// another of factum's schemas, is refused, never taken for a new read model. `target`
/// names the file in errors.
fn open_with_schema(
    path: &Path,
    schema: &Schema,
    target: impl ToString,
) -> Result<Connection, ReadModelError> {
    let target = target.to_string();
    let shown = path.display().to_string();
    let migrate = |connection: &Connection| {
        schema::migrate_schema(connection, schema, BUSY_TIMEOUT)
            .map_err(|error| schema_error(&shown, &target, error))
    };
    check_or_create(path, |new| {
        let connection = Connection::open(new).map_err(database(&target, "create"))?;
        configure(&connection).map_err(database(&target, "configure"))?;
        migrate(&connection)?;
        connection
            .close()
            .map_err(|(_, error)| database(&target, "create")(error))
    })?;
    let connection = Connection::open(path).map_err(database(&target, "open"))?;
    // The schema is checked reading only before the switch to WAL writes to the file.
    connection
        .busy_timeout(BUSY_TIMEOUT)
        .map_err(database(&target, "configure"))?;
    let version = schema::check_schema(&connection, schema, BUSY_TIMEOUT)
        .map_err(|error| schema_error(&shown, &target, error))?;
    configure(&connection).map_err(database(&target, "configure"))?;
    if version < schema.latest() {
        migrate(&connection)?;
    }
    Ok(connection)
}

/// A schema error of the file at `path` (named `target` in database errors).
fn schema_error(path: &str, target: &str, error: SchemaError) -> ReadModelError {
    match error {
        SchemaError::TooNew { found, supported } => ReadModelError::SchemaTooNew {
            database: path.to_owned(),
            found,
            supported,
        },
        SchemaError::Refused(reason) => ReadModelError::NotAReadModel {
            path: path.to_owned(),
            reason,
        },
        SchemaError::Failed(failure) => ReadModelError::Database {
            target: target.to_owned(),
            operation: "migrate the schema",
            source: failure.into_source(),
        },
    }
}

/// Makes sure `path` holds a SQLite database, creating it whole with `make` if nothing is
/// there; a file that is not one is [`ReadModelError::NotAReadModel`], left as it is.
fn check_or_create(
    path: &Path,
    make: impl FnOnce(&Path) -> Result<(), ReadModelError>,
) -> Result<(), ReadModelError> {
    let shown = path.display().to_string();
    super::file::check_or_create_with(path, "read-model file", make, |problem| match problem {
        Problem::NotADatabase(reason) => ReadModelError::NotAReadModel {
            path: shown.clone(),
            reason,
        },
        Problem::Io(error) => ReadModelError::Database {
            target: shown.clone(),
            operation: "open",
            source: Box::new(error),
        },
    })
}

fn read_checkpoint(connection: &Connection, target: Target) -> Result<Option<u64>, ReadModelError> {
    let position: Option<i64> = connection
        .query_row(
            "SELECT position FROM factum_checkpoint WHERE id = 1",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(database(target, "read the checkpoint"))?;
    position
        .map(|position| {
            u64::try_from(position).map_err(|_| ReadModelError::Corrupt {
                target: target.to_string(),
                what: "checkpoint",
                source: format!("negative position {position}").into(),
            })
        })
        .transpose()
}

impl ReadModel for SqliteReadModel {
    type Tx = SqliteTx;

    async fn checkpoint(&self, target: Target) -> Result<Option<u64>, ReadModelError> {
        check_name(target.name)?;
        if !self.path_of(target).exists() {
            return Ok(None);
        }
        self.blocking(target, move |this| {
            let connection = this.open_writer(target)?;
            let checkpoint = read_checkpoint(&connection, target);
            this.give_back(target, connection);
            checkpoint
        })
        .await
    }

    async fn begin(&self, target: Target) -> Result<SqliteTx, ReadModelError> {
        self.blocking(target, move |this| {
            let connection = this.open_writer(target)?;
            // IMMEDIATE takes the write lock now: the checkpoint read below stays true
            // until commit, whoever else runs this projection.
            connection
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(database(target, "begin"))?;
            match read_checkpoint(&connection, target) {
                Ok(checkpoint) => Ok(SqliteTx {
                    connection,
                    target,
                    checkpoint,
                }),
                Err(error) => {
                    let _ = connection.execute_batch("ROLLBACK");
                    Err(error)
                }
            }
        })
        .await
    }

    async fn commit(&self, tx: SqliteTx, checkpoint: u64) -> Result<(), ReadModelError> {
        let target = tx.target;
        let first = tx.checkpoint.is_none();
        self.blocking(target, move |this| {
            let SqliteTx { connection, .. } = tx;
            if connection.is_autocommit() {
                // SQLite ended the transaction itself (a `RAISE(ROLLBACK)`, a full disk, ...)
                // and a handler went on: committing the checkpoint alone would skip events.
                this.give_back(target, connection);
                return Err(ReadModelError::Database {
                    target: target.to_string(),
                    operation: "commit",
                    source: "SQLite rolled the transaction back before commit (a handler went on after an error that ends transactions); nothing was written".into(),
                });
            }
            let result = connection
                .execute(
                    "INSERT INTO factum_checkpoint (id, position, updated_at) VALUES (1, ?1, ?2)
                     ON CONFLICT (id) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
                    params![to_i64(checkpoint), chrono::Utc::now().to_rfc3339()],
                )
                .and_then(|_| connection.execute_batch("COMMIT"));
            if let Err(error) = result {
                let _ = connection.execute_batch("ROLLBACK");
                this.give_back(target, connection);
                return Err(database(target, "commit")(error));
            }
            this.give_back(target, connection);
            if first {
                let catalog = open_catalog(&this.inner.dir)?;
                catalog
                    .execute(
                        "INSERT OR IGNORE INTO versions (name, version, state) VALUES (?1, ?2, 'building')",
                        params![target.name, target.version],
                    )
                    .map_err(database(target, "register in the catalog"))?;
            }
            Ok(())
        })
        .await
    }

    async fn rollback(&self, tx: SqliteTx) -> Result<(), ReadModelError> {
        let target = tx.target;
        self.blocking(target, move |this| {
            let SqliteTx { connection, .. } = tx;
            // SQLite may have rolled back already; `ROLLBACK` then fails, harmlessly.
            let result = if connection.is_autocommit() {
                Ok(())
            } else {
                connection.execute_batch("ROLLBACK")
            };
            this.give_back(target, connection);
            result.map_err(database(target, "roll back"))
        })
        .await
    }

    async fn park(&self, tx: &mut SqliteTx, parked: &ParkedEvent) -> Result<(), ReadModelError> {
        let target = tx.target;
        let event =
            serde_json::to_string(&parked.event).map_err(|error| ReadModelError::Corrupt {
                target: target.to_string(),
                what: "parked event",
                source: Box::new(error),
            })?;
        tx.connection
            .execute(
                "INSERT OR REPLACE INTO factum_parked (position, event, error, attempts, parked_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![to_i64(parked.event.position), event, parked.error, parked.attempts, parked.parked_at.to_rfc3339()],
            )
            .map_err(database(target, "park an event"))?;
        Ok(())
    }

    async fn unpark(&self, tx: &mut SqliteTx, position: u64) -> Result<bool, ReadModelError> {
        let removed = tx
            .connection
            .execute(
                "DELETE FROM factum_parked WHERE position = ?1",
                [to_i64(position)],
            )
            .map_err(database(tx.target, "unpark an event"))?;
        Ok(removed > 0)
    }

    async fn partition_offsets(
        &self,
        target: Target,
    ) -> Result<Vec<PartitionOffset>, ReadModelError> {
        check_name(target.name)?;
        if !self.path_of(target).exists() {
            return Ok(Vec::new());
        }
        self.blocking(target, move |this| {
            let connection = this.open_writer(target)?;
            let offsets = read_partition_offsets(&connection, target);
            this.give_back(target, connection);
            offsets
        })
        .await
    }

    async fn partition_offsets_in(
        &self,
        tx: &mut SqliteTx,
    ) -> Result<Vec<PartitionOffset>, ReadModelError> {
        read_partition_offsets(&tx.connection, tx.target)
    }

    async fn store_partition_offsets(
        &self,
        tx: &mut SqliteTx,
        offsets: &[PartitionOffset],
    ) -> Result<(), ReadModelError> {
        let target = tx.target;
        let now = chrono::Utc::now().to_rfc3339();
        let mut statement = tx
            .connection
            .prepare_cached(
                "INSERT OR REPLACE INTO factum_partitions (topic, partition, next_offset, position, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(database(target, "store partition offsets"))?;
        for offset in offsets {
            statement
                .execute(params![
                    offset.topic,
                    offset.partition,
                    offset.next_offset,
                    to_i64(offset.position),
                    now
                ])
                .map_err(database(target, "store partition offsets"))?;
        }
        Ok(())
    }

    async fn parked(&self, target: Target) -> Result<Vec<ParkedEvent>, ReadModelError> {
        check_name(target.name)?;
        if !self.path_of(target).exists() {
            return Ok(Vec::new());
        }
        self.blocking(target, move |this| {
            let connection = this.open_writer(target)?;
            let parked = read_parked(&connection, target);
            this.give_back(target, connection);
            parked
        })
        .await
    }

    async fn versions(&self, name: &'static str) -> Result<Vec<VersionStatus>, ReadModelError> {
        check_name(name)?;
        let target = Target { name, version: 0 };
        self.blocking(target, move |this| {
            let catalog = open_catalog(&this.inner.dir)?;
            let mut statement = catalog
                .prepare("SELECT version, state FROM versions WHERE name = ?1 ORDER BY version")
                .map_err(database(name, "read the catalog"))?;
            let rows = statement
                .query_map([name], |row| {
                    Ok((row.get::<_, u32>(0)?, row.get::<_, String>(1)?))
                })
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(database(name, "read the catalog"))?;
            let mut versions = Vec::with_capacity(rows.len());
            for (version, state) in rows {
                let target = Target { name, version };
                let state = match state.as_str() {
                    "building" => VersionState::Building,
                    "active" => VersionState::Active,
                    "retired" => VersionState::Retired,
                    other => {
                        return Err(ReadModelError::Corrupt {
                            target: target.to_string(),
                            what: "catalog state",
                            source: format!("unknown state `{other}`").into(),
                        });
                    }
                };
                let (checkpoint, parked) = if this.path_of(target).exists() {
                    let connection = this.open_writer(target)?;
                    let checkpoint = read_checkpoint(&connection, target);
                    let parked: Result<i64, _> =
                        connection
                            .query_row("SELECT count(*) FROM factum_parked", [], |row| row.get(0));
                    this.give_back(target, connection);
                    (
                        checkpoint?.unwrap_or(0),
                        parked.map_err(database(target, "count parked events"))?,
                    )
                } else {
                    (0, 0)
                };
                versions.push(VersionStatus {
                    version,
                    state,
                    checkpoint,
                    parked: parked.max(0) as u64,
                });
            }
            Ok(versions)
        })
        .await
    }

    async fn activate(&self, target: Target) -> Result<bool, ReadModelError> {
        check_name(target.name)?;
        self.blocking(target, move |this| {
            let mut catalog = open_catalog(&this.inner.dir)?;
            let switch = |catalog: &mut Connection| -> rusqlite::Result<bool> {
                let tx = catalog.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let newer_active: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM versions WHERE name = ?1 AND state = 'active' AND version > ?2)",
                    params![target.name, target.version],
                    |row| row.get(0),
                )?;
                if newer_active {
                    return Ok(false);
                }
                tx.execute(
                    "UPDATE versions SET state = 'retired' WHERE name = ?1 AND state = 'active' AND version <> ?2",
                    params![target.name, target.version],
                )?;
                tx.execute(
                    "INSERT INTO versions (name, version, state) VALUES (?1, ?2, 'active')
                     ON CONFLICT (name, version) DO UPDATE SET state = 'active'",
                    params![target.name, target.version],
                )?;
                tx.commit()?;
                Ok(true)
            };
            switch(&mut catalog).map_err(database(target, "switch readers over"))
        })
        .await
    }

    async fn reset(&self, target: Target) -> Result<(), ReadModelError> {
        check_name(target.name)?;
        self.blocking(target, move |this| {
            // Out of the catalog first: readers stop finding it before its tables go.
            let catalog = open_catalog(&this.inner.dir)?;
            catalog
                .execute(
                    "DELETE FROM versions WHERE name = ?1 AND version = ?2",
                    params![target.name, target.version],
                )
                .map_err(database(target, "remove from the catalog"))?;
            if !this.path_of(target).exists() {
                return Ok(());
            }
            // Emptied in place under the write lock, never deleted: a runner of this
            // version (in this process or another) keeps the same file, finds its
            // checkpoint gone at its next transaction and reads again from the start.
            // Scrubbed: a rebuild after a data subject is forgotten leaves none of the
            // copies of their data the old tables held, in the file or in its WAL.
            let connection = this.open_writer(target)?;
            let result = super::scrubbing(&connection, empty_in_place);
            if let Ok(((), false)) = result {
                tracing::warn!(
                    target = %target,
                    "emptied, but readers kept the WAL checkpoint from finishing: the old \
                     tables' pages may stay in the WAL until the next checkpoint"
                );
            }
            if result.is_err() && !connection.is_autocommit() {
                let _ = connection.execute_batch("ROLLBACK");
            }
            this.give_back(target, connection);
            result
                .map(|((), _)| ())
                .map_err(database(target, "empty the read model"))
        })
        .await
    }

    /// A directory `.shadow-<uuid>` inside this one: on the same disk, under the same
    /// permissions as the live models whose (possibly personal) data it copies.
    async fn shadow(&self) -> Result<Option<Self>, ReadModelError> {
        let dir = self
            .inner
            .dir
            .join(format!(".shadow-{}", uuid::Uuid::now_v7().simple()));
        Self::open_dir(dir, true).await.map(Some)
    }

    async fn contents(
        &self,
        target: Target,
    ) -> Result<crate::projection::Contents, ReadModelError> {
        check_name(target.name)?;
        self.blocking(target, move |this| {
            super::consistency::tables_of(&this.path_of(target))
                .map_err(database(target, "read the tables"))
        })
        .await
    }

    async fn discard(self) -> Result<(), ReadModelError> {
        let dir = self.inner.dir.clone();
        if !self.inner.shadow {
            return Err(ReadModelError::Unsupported {
                target: dir.display().to_string(),
                operation: "discard a read model that is not a shadow",
            });
        }
        // The idle connections close before their files go.
        self.inner
            .idle_writers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        let shown = dir.display().to_string();
        tokio::task::spawn_blocking(move || {
            std::fs::remove_dir_all(&dir).map_err(|error| ReadModelError::Database {
                target: dir.display().to_string(),
                operation: "remove the shadow",
                source: Box::new(error),
            })
        })
        .await
        .map_err(task_failed(shown))?
    }
}

/// Drops every table and view of a version's file but factum's own, and empties the
/// checkpoint, the dead letters and the partition offsets (the schema's version table
/// stays as it is).
fn empty_in_place(connection: &Connection) -> rusqlite::Result<()> {
    connection.execute_batch("BEGIN IMMEDIATE")?;
    let objects: Vec<(String, String)> = connection
        .prepare(&format!(
            "SELECT type, name FROM sqlite_schema
             WHERE type IN ('view', 'table') AND name NOT LIKE 'sqlite_%'
               AND name NOT IN ('factum_checkpoint', 'factum_parked', 'factum_partitions', '{}')
             ORDER BY type = 'table', name",
            schema::READ_MODEL.version_table
        ))?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (kind, name) in objects {
        let kind = if kind == "view" { "VIEW" } else { "TABLE" };
        connection.execute_batch(&format!(
            "DROP {kind} IF EXISTS \"{}\"",
            name.replace('"', "\"\"")
        ))?;
    }
    connection.execute_batch(
        "DELETE FROM factum_checkpoint; DELETE FROM factum_parked; DELETE FROM factum_partitions;
         COMMIT",
    )
}

fn read_partition_offsets(
    connection: &Connection,
    target: Target,
) -> Result<Vec<PartitionOffset>, ReadModelError> {
    let mut statement = connection
        .prepare_cached(
            "SELECT topic, partition, next_offset, position FROM factum_partitions
             ORDER BY topic, partition",
        )
        .map_err(database(target, "read partition offsets"))?;
    let rows = statement
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i32>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, i64>(3)?,
            ))
        })
        .map_err(database(target, "read partition offsets"))?;
    rows.map(|row| {
        let (topic, partition, next_offset, position) =
            row.map_err(database(target, "read partition offsets"))?;
        PartitionOffset::stored(target, topic, partition, next_offset, position)
    })
    .collect()
}

fn read_parked(
    connection: &Connection,
    target: Target,
) -> Result<Vec<ParkedEvent>, ReadModelError> {
    let mut statement = connection
        .prepare("SELECT event, error, attempts, parked_at FROM factum_parked ORDER BY position")
        .map_err(database(target, "read parked events"))?;
    let rows = statement
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, u32>(2)?,
                row.get::<_, String>(3)?,
            ))
        })
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(database(target, "read parked events"))?;
    rows.into_iter()
        .map(|(event, error, attempts, parked_at)| {
            let corrupt = |source: crate::error::BoxError| ReadModelError::Corrupt {
                target: target.to_string(),
                what: "parked event",
                source,
            };
            Ok(ParkedEvent {
                event: crate::envelope::parked_from_str(&event)
                    .map_err(|error| corrupt(Box::new(error)))?,
                error,
                attempts,
                parked_at: chrono::DateTime::parse_from_rfc3339(&parked_at)
                    .map_err(|error| corrupt(Box::new(error)))?
                    .with_timezone(&chrono::Utc),
            })
        })
        .collect()
}
