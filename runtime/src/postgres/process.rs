//! Process managers with their state in a PostgreSQL read model.
//!
//! The instances, the outbox of decided commands and the checkpoint live in the
//! manager's own schema of a [`PostgresReadModel`] (`<NAME>__v0`, beside the
//! projections' schemas; its checkpoint and dead letters in the catalog), so each
//! decision commits with the checkpoint in one transaction, under the version's row
//! lock in the catalog. The tables are those of the SQLite backend
//! (`crate::sqlite`), with PostgreSQL types:
//!
//! - `factum_process_instances`: one row per instance — key, status, state (JSON text),
//!   correlation id, the compensation stack (JSON text), the failure reason, and the
//!   global positions that started and last changed it (`started_at`, `updated_at`);
//! - `factum_process_outbox`: one row per decided command, numbered by `seq` in order of
//!   decision — instance, kind, command (JSON text), its compensation, the
//!   command/correlation/causation ids, and whether it is `pending`, `done`, `rejected`
//!   (with the reason) or `skipped`.
//!
//! JSON is kept as `text`, not `jsonb`, so a state or command reads back byte for byte
//! as the driver wrote and checked it. PostgreSQL text holds no NUL character, and none
//! reaches it: JSON escapes it, the driver refuses instance keys with one and writes it
//! as U+FFFD in failure and rejection reasons.

use deadpool_postgres::ClientWrapper;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::migrate::{PROCESS_STORE, migrate};
use super::read_model::{database, migration_error};
use super::rows::to_i64;
use super::{PostgresReadModel, PostgresTx};
use crate::process::{
    CommandRow, InstanceRow, NewCommand, OutboxState, ProcessStore, ProcessTx, RowReader,
};
use crate::projection::{ReadModelError, Target};

/// The columns [`command_row`] reads, in its order.
const COMMAND_COLUMNS: &str = "seq, instance, kind, command, compensation, command_id, \
                               correlation_id, causation_id, state, outcome, position, \
                               traceparent";
/// The columns a reader's history selects: those of the first schema version, which a
/// schema not yet migrated by a driver of this code has (readers never migrate).
const HISTORY_COLUMNS: &str = "seq, instance, kind, command, compensation, command_id, \
                               correlation_id, causation_id, state, outcome, position";

fn instance_row(target: Target, key: &str, row: &Row) -> Result<InstanceRow, ReadModelError> {
    let read = RowReader {
        target,
        instance: key,
    };
    Ok(InstanceRow {
        key: key.to_owned(),
        status: read.status(row.get(0))?,
        state: row.get(1),
        correlation_id: row.get(2),
        compensations: row.get(3),
        completing: row.get(4),
        failure: row.get(5),
    })
}

fn command_row(target: Target, row: &Row) -> Result<CommandRow, ReadModelError> {
    let instance: String = row.get(1);
    let read = RowReader {
        target,
        instance: &instance,
    };
    Ok(CommandRow {
        seq: read.number("outbox number", row.get(0))?,
        kind: read.kind(row.get(2))?,
        command: row.get(3),
        compensation: row.get(4),
        command_id: row.get(5),
        correlation_id: row.get(6),
        causation_id: row.get(7),
        state: read.state(row.get(8))?,
        outcome: row.get(9),
        position: read.number("position", row.get(10))?,
        // Not selected by a reader's history (see `HISTORY_COLUMNS`).
        traceparent: if row.columns().len() > 11 {
            row.get(11)
        } else {
            None
        },
        instance,
    })
}

/// Runs a cached statement in the transaction and returns its rows.
async fn query(
    client: &ClientWrapper,
    target: Target,
    operation: &'static str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, ReadModelError> {
    let statement = client
        .prepare_cached(sql)
        .await
        .map_err(database(target, operation))?;
    client
        .query(&statement, params)
        .await
        .map_err(database(target, operation))
}

/// Runs a cached statement in the transaction and returns how many rows it changed.
async fn execute(
    client: &ClientWrapper,
    target: Target,
    operation: &'static str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, ReadModelError> {
    let statement = client
        .prepare_cached(sql)
        .await
        .map_err(database(target, operation))?;
    client
        .execute(&statement, params)
        .await
        .map_err(database(target, operation))
}

impl ProcessTx for PostgresTx {
    async fn instance(&mut self, key: &str) -> Result<Option<InstanceRow>, ReadModelError> {
        let target = self.target();
        let rows = query(
            self,
            target,
            "load an instance",
            "SELECT status, state, correlation_id, compensations, completing, failure
             FROM factum_process_instances WHERE instance = $1",
            &[&key],
        )
        .await?;
        rows.first()
            .map(|row| instance_row(target, key, row))
            .transpose()
    }

    async fn save_instance(
        &mut self,
        instance: &InstanceRow,
        position: u64,
    ) -> Result<(), ReadModelError> {
        let target = self.target();
        execute(
            self,
            target,
            "save an instance",
            "INSERT INTO factum_process_instances
                 (instance, status, state, correlation_id, compensations, completing, failure, started_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
             ON CONFLICT (instance) DO UPDATE SET
                 status = excluded.status, state = excluded.state,
                 compensations = excluded.compensations, completing = excluded.completing,
                 failure = excluded.failure, updated_at = excluded.updated_at",
            &[
                &instance.key,
                &instance.status.as_str(),
                &instance.state,
                &instance.correlation_id,
                &instance.compensations,
                &instance.completing,
                &instance.failure,
                &to_i64(position),
            ],
        )
        .await?;
        Ok(())
    }

    async fn insert_command(&mut self, command: &NewCommand<'_>) -> Result<(), ReadModelError> {
        let target = self.target();
        execute(
            self,
            target,
            "persist a command",
            "INSERT INTO factum_process_outbox
                 (instance, kind, command, compensation, command_id, correlation_id, causation_id, state, position, traceparent)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9)",
            &[
                &command.instance,
                &command.kind.as_str(),
                &command.command,
                &command.compensation,
                &command.command_id,
                &command.correlation_id,
                &command.causation_id,
                &to_i64(command.position),
                &command.traceparent,
            ],
        )
        .await?;
        Ok(())
    }

    async fn next_pending(&mut self, key: &str) -> Result<Option<CommandRow>, ReadModelError> {
        let target = self.target();
        let rows = query(
            self,
            target,
            "read pending commands",
            &format!(
                "SELECT {COMMAND_COLUMNS} FROM factum_process_outbox
                 WHERE instance = $1 AND state = 'pending' ORDER BY seq LIMIT 1"
            ),
            &[&key],
        )
        .await?;
        rows.first().map(|row| command_row(target, row)).transpose()
    }

    async fn instances_with_pending(&mut self) -> Result<Vec<String>, ReadModelError> {
        let target = self.target();
        let rows = query(
            self,
            target,
            "find pending commands",
            "SELECT instance FROM factum_process_outbox WHERE state = 'pending'
             GROUP BY instance ORDER BY min(seq)",
            &[],
        )
        .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    async fn count_pending(&mut self, key: &str) -> Result<u64, ReadModelError> {
        let target = self.target();
        let rows = query(
            self,
            target,
            "count pending commands",
            "SELECT count(*) FROM factum_process_outbox WHERE instance = $1 AND state = 'pending'",
            &[&key],
        )
        .await?;
        let pending: i64 = rows.first().map_or(0, |row| row.get(0));
        Ok(u64::try_from(pending).unwrap_or(0))
    }

    async fn skip_pending(&mut self, key: &str) -> Result<(), ReadModelError> {
        let target = self.target();
        execute(
            self,
            target,
            "skip pending steps",
            "UPDATE factum_process_outbox SET state = 'skipped' WHERE instance = $1 AND state = 'pending'",
            &[&key],
        )
        .await?;
        Ok(())
    }

    async fn record_outcome(
        &mut self,
        seq: u64,
        state: OutboxState,
        outcome: Option<&str>,
    ) -> Result<bool, ReadModelError> {
        let target = self.target();
        let changed = execute(
            self,
            target,
            "record a command's outcome",
            "UPDATE factum_process_outbox SET state = $2, outcome = $3
             WHERE seq = $1 AND state = 'pending'",
            &[&to_i64(seq), &state.as_str(), &outcome],
        )
        .await?;
        Ok(changed > 0)
    }

    async fn command(&mut self, seq: u64) -> Result<Option<CommandRow>, ReadModelError> {
        let target = self.target();
        let rows = query(
            self,
            target,
            "read an outbox row",
            &format!("SELECT {COMMAND_COLUMNS} FROM factum_process_outbox WHERE seq = $1"),
            &[&to_i64(seq)],
        )
        .await?;
        rows.first().map(|row| command_row(target, row)).transpose()
    }
}

impl PostgresReadModel {
    /// The schema of `target`'s process tables, if they exist.
    async fn process_schema(
        &self,
        client: &ClientWrapper,
        target: Target,
    ) -> Result<Option<String>, ReadModelError> {
        let schema = PostgresReadModel::schema_of(target);
        let exists: bool = client
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&format!("{schema}.factum_process_outbox")],
            )
            .await
            .map_err(database(target, "look for the process tables"))?
            .get(0);
        Ok(exists.then_some(schema))
    }
}

impl ProcessStore for PostgresReadModel {
    async fn migrate_process_tables(&self, target: Target) -> Result<(), ReadModelError> {
        let mut client = self.client().await?;
        let schema = format!("{}__v{}", target.name, target.version);
        migrate(&mut client, &PROCESS_STORE, &schema)
            .await
            .map_err(|error| migration_error(&schema, target, error))
    }

    async fn read_instance(
        &self,
        target: Target,
        key: &str,
    ) -> Result<Option<InstanceRow>, ReadModelError> {
        let client = self.client().await?;
        let Some(schema) = self.process_schema(&client, target).await? else {
            return Ok(None);
        };
        let row = client
            .query_opt(
                &format!(
                    "SELECT status, state, correlation_id, compensations, completing, failure
                     FROM {schema}.factum_process_instances WHERE instance = $1"
                ),
                &[&key],
            )
            .await
            .map_err(database(target, "load an instance"))?;
        row.map(|row| instance_row(target, key, &row)).transpose()
    }

    async fn read_history(
        &self,
        target: Target,
        key: &str,
    ) -> Result<Vec<CommandRow>, ReadModelError> {
        let client = self.client().await?;
        let Some(schema) = self.process_schema(&client, target).await? else {
            return Ok(Vec::new());
        };
        let rows = client
            .query(
                &format!(
                    "SELECT {HISTORY_COLUMNS} FROM {schema}.factum_process_outbox
                     WHERE instance = $1 ORDER BY seq"
                ),
                &[&key],
            )
            .await
            .map_err(database(target, "read the outbox"))?;
        rows.iter().map(|row| command_row(target, row)).collect()
    }
}
