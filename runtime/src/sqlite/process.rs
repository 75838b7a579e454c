//! Process managers with their state in a SQLite read model.
//!
//! The instances, the outbox of decided commands and the checkpoint live in the
//! manager's own file of a [`SqliteReadModel`] directory (`<NAME>.v0.sqlite3`, beside the
//! projections), so each decision commits with the checkpoint in one transaction. Tables
//! (plain SQL, readable with any SQLite client):
//!
//! - `factum_process_instances`: one row per instance — key, status, state (JSON),
//!   correlation id, the compensation stack (JSON), the failure reason;
//! - `factum_process_outbox`: one row per decided command — instance, kind, command
//!   (JSON), its compensation, command/correlation/causation ids, and whether it is
//!   `pending`, `done`, `rejected` (with the reason) or `skipped` (a step left undone
//!   because an earlier one failed).
//!
//! The engine is generic ([`crate::process`]); this is only the SQL.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::read_model::{database, task_failed, to_i64};
use super::schema;
use super::{SqliteReadModel, SqliteTx};
use crate::process::{
    CommandRow, InstanceRow, NewCommand, OutboxState, ProcessStore, ProcessTx, RowReader,
};
use crate::projection::{ReadModelError, Target};

/// The columns [`command_row`] reads, in its order.
const COMMAND_COLUMNS: &str = "seq, instance, kind, command, compensation, command_id, \
                               correlation_id, causation_id, state, outcome, position, \
                               traceparent";
/// The columns a reader's history selects: those of the first schema version, which a
/// file not yet migrated by a driver of this code has (readers never migrate).
const HISTORY_COLUMNS: &str = "seq, instance, kind, command, compensation, command_id, \
                               correlation_id, causation_id, state, outcome, position";

/// The instance `key`, read with `connection` (a transaction's or a reader's).
fn instance_row(
    connection: &Connection,
    target: Target,
    key: &str,
) -> Result<Option<InstanceRow>, ReadModelError> {
    let row = connection
        .query_row(
            "SELECT status, state, correlation_id, compensations, completing, failure
             FROM factum_process_instances WHERE instance = ?1",
            [key],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, bool>(4)?,
                    row.get::<_, Option<String>>(5)?,
                ))
            },
        )
        .optional()
        .map_err(database(target, "load an instance"))?;
    let Some((status, state, correlation_id, compensations, completing, failure)) = row else {
        return Ok(None);
    };
    let read = RowReader {
        target,
        instance: key,
    };
    Ok(Some(InstanceRow {
        key: key.to_owned(),
        status: read.status(&status)?,
        state,
        correlation_id: read.uuid(&correlation_id)?,
        compensations,
        completing,
        failure,
    }))
}

/// The raw columns of an outbox row, in [`COMMAND_COLUMNS`] order.
type RawCommand = (
    i64,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    Option<String>,
);

fn raw_command(row: &Row<'_>) -> rusqlite::Result<RawCommand> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
        row.get(10)?,
        // Not selected by a reader's history (see `HISTORY_COLUMNS`).
        if row.as_ref().column_count() > 11 {
            row.get(11)?
        } else {
            None
        },
    ))
}

fn command_row(target: Target, raw: RawCommand) -> Result<CommandRow, ReadModelError> {
    let (
        seq,
        instance,
        kind,
        command,
        compensation,
        command_id,
        correlation_id,
        causation_id,
        state,
        outcome,
        position,
        traceparent,
    ) = raw;
    let read = RowReader {
        target,
        instance: &instance,
    };
    Ok(CommandRow {
        seq: read.number("outbox number", seq)?,
        kind: read.kind(&kind)?,
        command,
        compensation,
        command_id: read.uuid(&command_id)?,
        correlation_id: read.uuid(&correlation_id)?,
        causation_id: read.uuid(&causation_id)?,
        state: read.state(&state)?,
        outcome,
        position: read.number("position", position)?,
        traceparent,
        instance,
    })
}

impl ProcessTx for SqliteTx {
    async fn instance(&mut self, key: &str) -> Result<Option<InstanceRow>, ReadModelError> {
        instance_row(self, self.target(), key)
    }

    async fn save_instance(
        &mut self,
        instance: &InstanceRow,
        position: u64,
    ) -> Result<(), ReadModelError> {
        self.execute(
            "INSERT INTO factum_process_instances
                 (instance, status, state, correlation_id, compensations, completing, failure, started_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
             ON CONFLICT (instance) DO UPDATE SET
                 status = excluded.status, state = excluded.state,
                 compensations = excluded.compensations, completing = excluded.completing,
                 failure = excluded.failure, updated_at = excluded.updated_at",
            params![
                instance.key,
                instance.status.as_str(),
                instance.state,
                instance.correlation_id.to_string(),
                instance.compensations,
                instance.completing,
                instance.failure,
                to_i64(position),
            ],
        )
        .map_err(database(self.target(), "save an instance"))?;
        Ok(())
    }

    async fn insert_command(&mut self, command: &NewCommand<'_>) -> Result<(), ReadModelError> {
        self.execute(
            "INSERT INTO factum_process_outbox
                 (instance, kind, command, compensation, command_id, correlation_id, causation_id, state, position, traceparent)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?9)",
            params![
                command.instance,
                command.kind.as_str(),
                command.command,
                command.compensation,
                command.command_id.to_string(),
                command.correlation_id.to_string(),
                command.causation_id.to_string(),
                to_i64(command.position),
                command.traceparent,
            ],
        )
        .map_err(database(self.target(), "persist a command"))?;
        Ok(())
    }

    async fn next_pending(&mut self, key: &str) -> Result<Option<CommandRow>, ReadModelError> {
        let target = self.target();
        self.query_row(
            &format!(
                "SELECT {COMMAND_COLUMNS} FROM factum_process_outbox
                 WHERE instance = ?1 AND state = 'pending' ORDER BY seq LIMIT 1"
            ),
            [key],
            raw_command,
        )
        .optional()
        .map_err(database(target, "read pending commands"))?
        .map(|raw| command_row(target, raw))
        .transpose()
    }

    async fn instances_with_pending(&mut self) -> Result<Vec<String>, ReadModelError> {
        self.prepare(
            "SELECT instance FROM factum_process_outbox WHERE state = 'pending'
             GROUP BY instance ORDER BY min(seq)",
        )
        .and_then(|mut statement| {
            statement
                .query_map([], |row| row.get(0))?
                .collect::<Result<Vec<String>, _>>()
        })
        .map_err(database(self.target(), "find pending commands"))
    }

    async fn count_pending(&mut self, key: &str) -> Result<u64, ReadModelError> {
        let pending: i64 = self
            .query_row(
                "SELECT count(*) FROM factum_process_outbox WHERE instance = ?1 AND state = 'pending'",
                [key],
                |row| row.get(0),
            )
            .map_err(database(self.target(), "count pending commands"))?;
        Ok(u64::try_from(pending).unwrap_or(0))
    }

    async fn skip_pending(&mut self, key: &str) -> Result<(), ReadModelError> {
        self.execute(
            "UPDATE factum_process_outbox SET state = 'skipped' WHERE instance = ?1 AND state = 'pending'",
            [key],
        )
        .map_err(database(self.target(), "skip pending steps"))?;
        Ok(())
    }

    async fn record_outcome(
        &mut self,
        seq: u64,
        state: OutboxState,
        outcome: Option<&str>,
    ) -> Result<bool, ReadModelError> {
        let changed = self
            .execute(
                "UPDATE factum_process_outbox SET state = ?2, outcome = ?3
                 WHERE seq = ?1 AND state = 'pending'",
                params![to_i64(seq), state.as_str(), outcome],
            )
            .map_err(database(self.target(), "record a command's outcome"))?;
        Ok(changed > 0)
    }

    async fn command(&mut self, seq: u64) -> Result<Option<CommandRow>, ReadModelError> {
        let target = self.target();
        self.query_row(
            &format!("SELECT {COMMAND_COLUMNS} FROM factum_process_outbox WHERE seq = ?1"),
            [to_i64(seq)],
            raw_command,
        )
        .optional()
        .map_err(database(target, "read an outbox row"))?
        .map(|raw| command_row(target, raw))
        .transpose()
    }
}

impl SqliteReadModel {
    /// Runs `work` on a read-only connection to the manager's file, `None` before its
    /// first decision (no file, or no process tables yet).
    async fn read_process<T: Send + 'static>(
        &self,
        target: Target,
        work: impl FnOnce(&Connection) -> Result<T, ReadModelError> + Send + 'static,
    ) -> Result<Option<T>, ReadModelError> {
        let path = self.path_of(target);
        tokio::task::spawn_blocking(move || {
            if !path.exists() {
                return Ok(None);
            }
            let connection = Connection::open_with_flags(
                &path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(database(target, "open for reading"))?;
            connection
                .busy_timeout(Duration::from_secs(30))
                .map_err(database(target, "configure"))?;
            let exists: bool = connection
                .query_row(
                    "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'factum_process_instances'",
                    [],
                    |row| row.get(0),
                )
                .map_err(database(target, "read the schema"))?;
            if !exists {
                return Ok(None);
            }
            work(&connection).map(Some)
        })
        .await
        .map_err(task_failed(target))?
    }
}

impl ProcessStore for SqliteReadModel {
    async fn migrate_process_tables(&self, target: Target) -> Result<(), ReadModelError> {
        self.migrate_beside(target, &schema::PROCESS_STORE).await
    }

    async fn read_instance(
        &self,
        target: Target,
        key: &str,
    ) -> Result<Option<InstanceRow>, ReadModelError> {
        let key = key.to_owned();
        let found = self
            .read_process(target, move |connection| {
                instance_row(connection, target, &key)
            })
            .await?;
        Ok(found.flatten())
    }

    async fn read_history(
        &self,
        target: Target,
        key: &str,
    ) -> Result<Vec<CommandRow>, ReadModelError> {
        let key = key.to_owned();
        let found = self
            .read_process(target, move |connection| {
                let mut statement = connection
                    .prepare(&format!(
                        "SELECT {HISTORY_COLUMNS} FROM factum_process_outbox
                         WHERE instance = ?1 ORDER BY seq"
                    ))
                    .map_err(database(target, "read the outbox"))?;
                let rows = statement
                    .query_map([&key], raw_command)
                    .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                    .map_err(database(target, "read the outbox"))?;
                rows.into_iter()
                    .map(|raw| command_row(target, raw))
                    .collect()
            })
            .await?;
        Ok(found.unwrap_or_default())
    }
}
