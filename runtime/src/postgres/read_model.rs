//! Read models in PostgreSQL: one schema per projection version, views for readers.
//!
//! Handlers write with plain table names: each transaction sets its `search_path` to the
//! version's schema (`<name>__v<version>`). The catalog schema `factum_read_models` keeps
//! every version's state and checkpoint (written in the same transaction as the rows) and
//! the dead letters. Readers query the schema named after the projection
//! (`SELECT * FROM task_list.tasks`): it holds one view per table of the active version,
//! replaced in one transaction at switch-over, so readers never see a half-built model.
//!
//! The catalog schema is created and migrated by the store's migration runner (frozen
//! migrations recorded in `factum_read_models.factum_catalog_migrations`, under an
//! advisory lock); a catalog from a newer factum is [`ReadModelError::SchemaTooNew`].

use std::ops::Deref;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use super::migrate::{MigrationError, READ_MODEL_CATALOG, migrate};
use super::rows::to_i64;
use crate::projection::{
    ParkedEvent, PartitionOffset, ReadModel, ReadModelError, ReadModelTx, Target, VersionState,
    VersionStatus, check_name,
};

/// The schema of the catalog tables.
pub const CATALOG_SCHEMA: &str = "factum_read_models";

/// A PostgreSQL database holding read models.
#[derive(Clone)]
pub struct PostgresReadModel {
    pool: Pool,
    /// `idle_in_transaction_session_timeout` of its write transactions, when set
    /// ([`ReadModel::end_stalled_transactions_after`]).
    stalled_after: Option<std::time::Duration>,
}

impl std::fmt::Debug for PostgresReadModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresReadModel").finish_non_exhaustive()
    }
}

/// A write transaction on one projection version's schema.
///
/// Dereferences to the pooled client ([`deadpool_postgres::ClientWrapper`], with
/// `prepare_cached`), inside a transaction the runner began and commits with the
/// checkpoint; its `search_path` is the version's schema, then `public`. Never `COMMIT`
/// or `ROLLBACK` yourself.
pub struct PostgresTx {
    // `None` only once commit or rollback has taken it; dropping an unfinished
    // transaction detaches the connection from the pool, which makes the server roll
    // it back instead of handing an open transaction to the next user.
    client: Option<Object>,
    target: Target,
    checkpoint: Option<u64>,
}

impl PostgresTx {
    fn take(mut self) -> Object {
        self.client
            .take()
            .expect("a transaction holds its client until commit or rollback")
    }
}

impl Deref for PostgresTx {
    type Target = deadpool_postgres::ClientWrapper;

    fn deref(&self) -> &deadpool_postgres::ClientWrapper {
        self.client
            .as_deref()
            .expect("a transaction holds its client until commit or rollback")
    }
}

impl Drop for PostgresTx {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            drop(Object::take(client));
        }
    }
}

impl std::fmt::Debug for PostgresTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresTx")
            .field("target", &self.target)
            .field("checkpoint", &self.checkpoint)
            .finish()
    }
}

impl PostgresTx {
    /// The projection version (or process manager, version 0) it writes to.
    pub fn target(&self) -> Target {
        self.target
    }
}

impl ReadModelTx for PostgresTx {
    type ReadModel = PostgresReadModel;

    fn checkpoint(&self) -> Option<u64> {
        self.checkpoint
    }
}

pub(super) fn database<E: std::error::Error + Send + Sync + 'static>(
    target: impl ToString,
    operation: &'static str,
) -> impl FnOnce(E) -> ReadModelError {
    move |error| ReadModelError::Database {
        target: target.to_string(),
        operation,
        source: Box::new(error),
    }
}

fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// The version as PostgreSQL stores it (`INTEGER`).
pub(super) fn pg_version(target: Target) -> Result<i32, ReadModelError> {
    i32::try_from(target.version).map_err(|_| ReadModelError::Corrupt {
        target: target.to_string(),
        what: "version",
        source: format!("{} does not fit PostgreSQL's INTEGER", target.version).into(),
    })
}

fn to_u64(target: Target, value: i64) -> Result<u64, ReadModelError> {
    u64::try_from(value).map_err(|_| ReadModelError::Corrupt {
        target: target.to_string(),
        what: "checkpoint",
        source: format!("negative position {value}").into(),
    })
}

impl PostgresReadModel {
    /// Connects with a connection string (no TLS) and creates the catalog if needed.
    pub async fn connect(url: &str) -> Result<Self, ReadModelError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(database(CATALOG_SCHEMA, "parse the URL"))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(8)
            .build()
            .map_err(database(CATALOG_SCHEMA, "build the pool"))?;
        Self::with_pool(pool).await
    }

    /// Uses an existing pool and creates the catalog if needed.
    pub async fn with_pool(pool: Pool) -> Result<Self, ReadModelError> {
        let this = Self {
            pool,
            stalled_after: None,
        };
        this.migrate().await?;
        Ok(this)
    }

    /// The names of the projections, reactors and process managers the catalog knows, in
    /// order: what an operator's status lists (see [`ReadModel::versions`] for each).
    pub async fn names(&self) -> Result<Vec<String>, ReadModelError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT DISTINCT name FROM {CATALOG_SCHEMA}.versions WHERE set_up ORDER BY name"
                ),
                &[],
            )
            .await
            .map_err(database(CATALOG_SCHEMA, "list the projections"))?;
        rows.iter()
            .map(|row| {
                row.try_get(0)
                    .map_err(database(CATALOG_SCHEMA, "list the projections"))
            })
            .collect()
    }

    /// A connection for readers: query the projection's schema, e.g.
    /// `SELECT * FROM task_list.tasks` (see [`PostgresReadModel::reader_schema`]).
    pub async fn client(&self) -> Result<Object, ReadModelError> {
        self.pool
            .get()
            .await
            .map_err(database(CATALOG_SCHEMA, "get a connection"))
    }

    /// The schema readers query: the projection's name, holding views of the active
    /// version's tables.
    pub fn reader_schema(name: &str) -> String {
        quote(name)
    }

    /// The schema holding `target`'s tables.
    pub fn schema_of(target: Target) -> String {
        quote(&format!("{}__v{}", target.name, target.version))
    }

    /// Creates or migrates the catalog schema, through the store's migration runner.
    async fn migrate(&self) -> Result<(), ReadModelError> {
        let mut client = self.client().await?;
        migrate(&mut client, &READ_MODEL_CATALOG, CATALOG_SCHEMA)
            .await
            .map_err(|error| migration_error(CATALOG_SCHEMA, CATALOG_SCHEMA, error))
    }
}

/// A migration of the database schema `schema` (of `target`, in database errors) failed.
pub(super) fn migration_error(
    schema: &str,
    target: impl ToString,
    error: MigrationError,
) -> ReadModelError {
    match error {
        MigrationError::TooNew { found, supported } => ReadModelError::SchemaTooNew {
            database: schema.to_owned(),
            found: u32::try_from(found).unwrap_or(u32::MAX),
            supported: u32::try_from(supported).unwrap_or(0),
        },
        MigrationError::Refused(reason) => ReadModelError::NotAReadModel {
            path: schema.to_owned(),
            reason,
        },
        MigrationError::Database(error) => database(target, "migrate the schema")(error),
    }
}

impl ReadModel for PostgresReadModel {
    type Tx = PostgresTx;

    async fn checkpoint(&self, target: Target) -> Result<Option<u64>, ReadModelError> {
        check_name(target.name)?;
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT checkpoint FROM {CATALOG_SCHEMA}.versions WHERE name = $1 AND version = $2 AND set_up"),
                &[&target.name, &pg_version(target)?],
            )
            .await
            .map_err(database(target, "read the checkpoint"))?;
        row.map(|row| to_u64(target, row.get(0))).transpose()
    }

    async fn begin(&self, target: Target) -> Result<PostgresTx, ReadModelError> {
        check_name(target.name)?;
        let client = self.client().await?;
        let mut tx = PostgresTx {
            client: Some(client),
            target,
            checkpoint: None,
        };
        let version = pg_version(target)?;
        // Set first: a client stalled after taking the version's lock below must not hold
        // it past the timeout.
        let stalled = self.stalled_after.map_or(String::new(), |timeout| {
            format!(
                "; SET LOCAL idle_in_transaction_session_timeout = {}",
                timeout.as_millis().max(1)
            )
        });
        tx.batch_execute(&format!("BEGIN{stalled}"))
            .await
            .map_err(database(target, "begin"))?;
        // The row lock is the projection version's write lock: a second runner waits
        // here, then sees the checkpoint the first one committed.
        let insert = tx
            .prepare_cached(&format!(
                "INSERT INTO {CATALOG_SCHEMA}.versions (name, version, state) VALUES ($1, $2, 'building')
                 ON CONFLICT (name, version) DO NOTHING"
            ))
            .await
            .map_err(database(target, "register the version"))?;
        tx.execute(&insert, &[&target.name, &version])
            .await
            .map_err(database(target, "register the version"))?;
        let lock = tx
            .prepare_cached(&format!(
                "SELECT checkpoint, set_up FROM {CATALOG_SCHEMA}.versions WHERE name = $1 AND version = $2 FOR UPDATE"
            ))
            .await
            .map_err(database(target, "lock the version"))?;
        let row = tx
            .query_one(&lock, &[&target.name, &version])
            .await
            .map_err(database(target, "lock the version"))?;
        let (checkpoint, set_up): (i64, bool) = (row.get(0), row.get(1));
        let schema = PostgresReadModel::schema_of(target);
        if !set_up {
            tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .await
                .map_err(database(target, "create the schema"))?;
        }
        // Prepared statements are cached per connection by SQL text; the same text means
        // other tables (other column types) in another version's schema, so the cache is
        // cleared when the connection last served another target. The session setting
        // rolls back with a rolled-back transaction, and `rollback` clears the cache too.
        let key = format!("{}__v{}", target.name, target.version);
        let last: String = tx
            .query_one(
                "SELECT coalesce(current_setting('factum.read_model', true), '')",
                &[],
            )
            .await
            .map_err(database(target, "read the connection's last read model"))?
            .get(0);
        if last != key {
            tx.statement_cache.clear();
        }
        tx.batch_execute(&format!(
            "SET LOCAL search_path TO {schema}, public; SET factum.read_model TO '{key}'"
        ))
        .await
        .map_err(database(target, "set the search path"))?;
        tx.checkpoint = if set_up {
            Some(to_u64(target, checkpoint)?)
        } else {
            None
        };
        Ok(tx)
    }

    fn end_stalled_transactions_after(&mut self, timeout: std::time::Duration) {
        self.stalled_after = Some(timeout);
    }

    async fn commit(&self, tx: PostgresTx, checkpoint: u64) -> Result<(), ReadModelError> {
        let target = tx.target;
        let update = tx
            .prepare_cached(&format!(
                "UPDATE {CATALOG_SCHEMA}.versions SET checkpoint = $3, set_up = TRUE, updated_at = now()
                 WHERE name = $1 AND version = $2"
            ))
            .await
            .map_err(database(target, "write the checkpoint"))?;
        tx.execute(
            &update,
            &[&target.name, &pg_version(target)?, &to_i64(checkpoint)],
        )
        .await
        .map_err(database(target, "write the checkpoint"))?;
        let client = tx.take();
        client
            .batch_execute("COMMIT")
            .await
            .map_err(database(target, "commit"))
    }

    async fn rollback(&self, tx: PostgresTx) -> Result<(), ReadModelError> {
        let target = tx.target;
        let client = tx.take();
        client.statement_cache.clear();
        client
            .batch_execute("ROLLBACK")
            .await
            .map_err(database(target, "roll back"))
    }

    async fn park(&self, tx: &mut PostgresTx, parked: &ParkedEvent) -> Result<(), ReadModelError> {
        let target = tx.target;
        let event =
            serde_json::to_value(&parked.event).map_err(|error| ReadModelError::Corrupt {
                target: target.to_string(),
                what: "parked event",
                source: Box::new(error),
            })?;
        tx.execute(
            &format!(
                "INSERT INTO {CATALOG_SCHEMA}.parked (name, version, position, event, error, attempts, parked_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (name, version, position) DO UPDATE
                 SET event = excluded.event, error = excluded.error, attempts = excluded.attempts, parked_at = excluded.parked_at"
            ),
            &[
                &target.name,
                &pg_version(target)?,
                &to_i64(parked.event.position),
                &event,
                &parked.error,
                &i32::try_from(parked.attempts).unwrap_or(i32::MAX),
                &parked.parked_at,
            ],
        )
        .await
        .map_err(database(target, "park an event"))?;
        Ok(())
    }

    async fn unpark(&self, tx: &mut PostgresTx, position: u64) -> Result<bool, ReadModelError> {
        let target = tx.target;
        let removed = tx
            .execute(
                &format!("DELETE FROM {CATALOG_SCHEMA}.parked WHERE name = $1 AND version = $2 AND position = $3"),
                &[&target.name, &pg_version(target)?, &to_i64(position)],
            )
            .await
            .map_err(database(target, "unpark an event"))?;
        Ok(removed > 0)
    }

    async fn partition_offsets(
        &self,
        target: Target,
    ) -> Result<Vec<PartitionOffset>, ReadModelError> {
        check_name(target.name)?;
        let client = self.client().await?;
        read_partition_offsets(&client, target).await
    }

    async fn partition_offsets_in(
        &self,
        tx: &mut PostgresTx,
    ) -> Result<Vec<PartitionOffset>, ReadModelError> {
        let target = tx.target;
        read_partition_offsets(tx, target).await
    }

    async fn store_partition_offsets(
        &self,
        tx: &mut PostgresTx,
        offsets: &[PartitionOffset],
    ) -> Result<(), ReadModelError> {
        let target = tx.target;
        let statement = tx
            .prepare_cached(&format!(
                "INSERT INTO {CATALOG_SCHEMA}.partitions (name, version, topic, partition, next_offset, position)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (name, version, topic, partition) DO UPDATE
                 SET next_offset = excluded.next_offset, position = excluded.position, updated_at = now()"
            ))
            .await
            .map_err(database(target, "store partition offsets"))?;
        let version = pg_version(target)?;
        for offset in offsets {
            tx.execute(
                &statement,
                &[
                    &target.name,
                    &version,
                    &offset.topic,
                    &offset.partition,
                    &offset.next_offset,
                    &to_i64(offset.position),
                ],
            )
            .await
            .map_err(database(target, "store partition offsets"))?;
        }
        Ok(())
    }

    async fn parked(&self, target: Target) -> Result<Vec<ParkedEvent>, ReadModelError> {
        check_name(target.name)?;
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT event, error, attempts, parked_at FROM {CATALOG_SCHEMA}.parked
                     WHERE name = $1 AND version = $2 ORDER BY position"
                ),
                &[&target.name, &pg_version(target)?],
            )
            .await
            .map_err(database(target, "read parked events"))?;
        rows.into_iter()
            .map(|row| {
                let event: serde_json::Value = row.get(0);
                Ok(ParkedEvent {
                    event: crate::envelope::parked_from_value(event).map_err(|error| {
                        ReadModelError::Corrupt {
                            target: target.to_string(),
                            what: "parked event",
                            source: Box::new(error),
                        }
                    })?,
                    error: row.get(1),
                    attempts: row.get::<_, i32>(2).max(0) as u32,
                    parked_at: row.get(3),
                })
            })
            .collect()
    }

    async fn versions(&self, name: &'static str) -> Result<Vec<VersionStatus>, ReadModelError> {
        check_name(name)?;
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT v.version, v.state, v.checkpoint,
                            (SELECT count(*) FROM {CATALOG_SCHEMA}.parked p WHERE p.name = v.name AND p.version = v.version)
                     FROM {CATALOG_SCHEMA}.versions v WHERE v.name = $1 AND v.set_up ORDER BY v.version"
                ),
                &[&name],
            )
            .await
            .map_err(database(name, "read the catalog"))?;
        rows.into_iter()
            .map(|row| {
                let version = row.get::<_, i32>(0).max(0) as u32;
                let target = Target { name, version };
                let state = match row.get::<_, &str>(1) {
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
                Ok(VersionStatus {
                    version,
                    state,
                    checkpoint: to_u64(target, row.get(2))?,
                    parked: row.get::<_, i64>(3).max(0) as u64,
                })
            })
            .collect()
    }

    async fn activate(&self, target: Target) -> Result<bool, ReadModelError> {
        check_name(target.name)?;
        let version = pg_version(target)?;
        let mut client = self.client().await?;
        let mut tx = client
            .transaction()
            .await
            .map_err(database(target, "begin the switch"))?;
        let readers = PostgresReadModel::reader_schema(target.name);
        let source = PostgresReadModel::schema_of(target);
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            &[&format!("factum_read_model:{}", target.name)],
        )
        .await
        .map_err(database(target, "lock the projection"))?;
        let newer_active: bool = tx
            .query_one(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM {CATALOG_SCHEMA}.versions
                     WHERE name = $1 AND state = 'active' AND version > $2)"
                ),
                &[&target.name, &version],
            )
            .await
            .map_err(database(target, "look for a newer active version"))?
            .get(0);
        if newer_active {
            return Ok(false);
        }
        // The readers' schema holds only views factum made; never touch a user's tables.
        let tables: i64 = tx
            .query_one(
                "SELECT count(*) FROM pg_tables WHERE schemaname = $1",
                &[&target.name],
            )
            .await
            .map_err(database(target, "inspect the readers' schema"))?
            .get(0);
        if tables > 0 {
            return Err(ReadModelError::Database {
                target: target.to_string(),
                operation: "switch readers over",
                source: format!(
                    "schema {readers} holds tables; factum keeps only views there and will not touch it"
                )
                .into(),
            });
        }
        let sql = format!(
            "UPDATE {CATALOG_SCHEMA}.versions SET state = 'retired', updated_at = now()
             WHERE name = $1 AND state = 'active' AND version <> $2"
        );
        tx.execute(&sql, &[&target.name, &version])
            .await
            .map_err(database(target, "retire the old version"))?;
        let sql = format!(
            "INSERT INTO {CATALOG_SCHEMA}.versions (name, version, state) VALUES ($1, $2, 'active')
             ON CONFLICT (name, version) DO UPDATE SET state = 'active', updated_at = now()"
        );
        tx.execute(&sql, &[&target.name, &version])
            .await
            .map_err(database(target, "activate"))?;
        let names = |rows: Vec<tokio_postgres::Row>| -> Vec<String> {
            rows.into_iter().map(|row| row.get(0)).collect()
        };
        let tables = names(
            tx.query(
                "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename",
                &[&format!("{}__v{}", target.name, target.version)],
            )
            .await
            .map_err(database(target, "list the tables"))?,
        );
        let views = names(
            tx.query(
                "SELECT viewname FROM pg_views WHERE schemaname = $1",
                &[&target.name],
            )
            .await
            .map_err(database(target, "list the readers' views"))?,
        );
        // Views are replaced, not the schema: grants on the schema and on views whose
        // columns stay the same survive the switch.
        let mut ddl = format!("CREATE SCHEMA IF NOT EXISTS {readers};");
        for view in views.iter().filter(|view| !tables.contains(view)) {
            ddl.push_str(&format!(" DROP VIEW {readers}.{};", quote(view)));
        }
        tx.batch_execute(&ddl)
            .await
            .map_err(database(target, "drop the readers' old views"))?;
        for table in &tables {
            let table = quote(table);
            let view = format!("{readers}.{table} AS SELECT * FROM {source}.{table}");
            let savepoint = tx
                .savepoint("factum_view")
                .await
                .map_err(database(target, "replace a view"))?;
            match savepoint
                .batch_execute(&format!("CREATE OR REPLACE VIEW {view}"))
                .await
            {
                Ok(()) => savepoint.commit().await,
                // Other columns than before: the view must be dropped and made anew (a
                // user's view built on it makes this fail, loudly).
                Err(_) => {
                    savepoint
                        .rollback()
                        .await
                        .map_err(database(target, "replace a view"))?;
                    tx.batch_execute(&format!(
                        "DROP VIEW IF EXISTS {readers}.{table}; CREATE VIEW {view};"
                    ))
                    .await
                }
            }
            .map_err(database(target, "create the readers' views"))?;
        }
        tx.commit()
            .await
            .map_err(database(target, "commit the switch"))?;
        Ok(true)
    }

    async fn reset(&self, target: Target) -> Result<(), ReadModelError> {
        check_name(target.name)?;
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(database(target, "begin the reset"))?;
        let version = pg_version(target)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            &[&format!("factum_read_model:{}", target.name)],
        )
        .await
        .map_err(database(target, "lock the projection"))?;
        let was_active = tx
            .query_opt(
                &format!("DELETE FROM {CATALOG_SCHEMA}.versions WHERE name = $1 AND version = $2 RETURNING state"),
                &[&target.name, &version],
            )
            .await
            .map_err(database(target, "remove from the catalog"))?
            .is_some_and(|row| row.get::<_, &str>(0) == "active");
        tx.execute(
            &format!("DELETE FROM {CATALOG_SCHEMA}.parked WHERE name = $1 AND version = $2"),
            &[&target.name, &version],
        )
        .await
        .map_err(database(target, "remove parked events"))?;
        tx.execute(
            &format!("DELETE FROM {CATALOG_SCHEMA}.partitions WHERE name = $1 AND version = $2"),
            &[&target.name, &version],
        )
        .await
        .map_err(database(target, "remove partition offsets"))?;
        let mut ddl = format!(
            "DROP SCHEMA IF EXISTS {} CASCADE;",
            PostgresReadModel::schema_of(target)
        );
        if was_active {
            // Readers get "no such table" while it rebuilds, never a half-built model.
            ddl.push_str(&format!(
                " DROP SCHEMA IF EXISTS {} CASCADE;",
                PostgresReadModel::reader_schema(target.name)
            ));
        }
        tx.batch_execute(&ddl)
            .await
            .map_err(database(target, "drop the read model"))?;
        tx.commit()
            .await
            .map_err(database(target, "commit the reset"))
    }
}

/// `target`'s partition offsets, through `client` (in a transaction or not).
async fn read_partition_offsets(
    client: &deadpool_postgres::ClientWrapper,
    target: Target,
) -> Result<Vec<PartitionOffset>, ReadModelError> {
    let rows = client
        .query(
            &format!(
                "SELECT topic, partition, next_offset, position FROM {CATALOG_SCHEMA}.partitions
                 WHERE name = $1 AND version = $2 ORDER BY topic, partition"
            ),
            &[&target.name, &pg_version(target)?],
        )
        .await
        .map_err(database(target, "read partition offsets"))?;
    rows.into_iter()
        .map(|row| PartitionOffset::stored(target, row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect()
}
