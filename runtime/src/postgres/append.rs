//! An append: the batch handed to the append functions, and their answer.

use std::fmt;

use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::envelope::NewEvent;
use crate::store::decision::AppendCondition;
use crate::store::{AppendOutcome, CommandOutcome, CommandRecord, ExpectedVersion, StoreError};

use super::decision::QueryArrays;
use super::error::{PostgresError, backend};
use super::rows::to_i64;
use super::store::Sql;

/// The violated unique constraint, if `error` is a unique violation.
pub(super) fn unique_violation(error: &tokio_postgres::Error) -> Option<&str> {
    let db = error.as_db_error()?;
    (db.code() == &SqlState::UNIQUE_VIOLATION).then(|| db.constraint().unwrap_or(""))
}

/// The `p_batch_duplicate` argument of `factum_append`.
pub(super) const NO_REPEATED_ID: Option<Uuid> = None;

/// The batch of one append, as the arrays `factum_append` (and, with tags or a
/// condition, `factum_decide`) takes.
pub(super) struct Batch<'a> {
    pub(super) stream_id: &'a str,
    pub(super) stream_type: &'a str,
    pub(super) expected_kind: i32,
    pub(super) expected_version: i64,
    pub(super) event_ids: Vec<Uuid>,
    pub(super) names: Vec<&'a str>,
    pub(super) schema_versions: Vec<i64>,
    pub(super) payloads: Vec<&'a str>,
    pub(super) occurred_at: Vec<chrono::DateTime<chrono::Utc>>,
    pub(super) metadata: Vec<String>,
    /// Per event, its tags as stored (the JSON array the hash covers), `None` without.
    tags: Vec<Option<String>>,
    /// Per tag of the batch: its event's place (from 1) and the tag.
    tag_events: Vec<i64>,
    tag_values: Vec<String>,
    /// The decision's condition, as `factum_decide` takes it.
    condition: Option<Condition>,
}

/// An [`AppendCondition`] as `factum_decide` takes it.
struct Condition {
    after: i64,
    query: QueryArrays,
}

impl Condition {
    fn new(condition: &AppendCondition) -> Self {
        Condition {
            after: to_i64(condition.after),
            query: QueryArrays::new(&condition.query),
        }
    }
}

impl<'a> Batch<'a> {
    pub(super) fn new(
        stream_id: &'a str,
        stream_type: &'a str,
        expected: ExpectedVersion,
        events: &'a [NewEvent],
    ) -> Result<Self, StoreError> {
        crate::store::limits::check_append(stream_id, stream_type, events)?;
        Self::checked(stream_id, stream_type, expected, events)
    }

    /// The batch of a command's append: its events (possibly none), checked with the
    /// command record by `limits::check_command`.
    pub(super) fn of_command(
        stream_id: &'a str,
        stream_type: &'a str,
        expected: ExpectedVersion,
        events: &'a [NewEvent],
        command: &CommandRecord,
    ) -> Result<Self, StoreError> {
        crate::store::limits::check_command(stream_id, stream_type, events, command)?;
        Self::checked(stream_id, stream_type, expected, events)
    }

    /// The batch, appended only if `condition` holds (see `factum_decide`).
    pub(super) fn under(mut self, condition: Option<&AppendCondition>) -> Self {
        self.condition = condition.map(Condition::new);
        self
    }

    /// Whether the batch goes to `factum_decide`: it has tags or a condition.
    fn decides(&self) -> bool {
        self.condition.is_some() || !self.tag_values.is_empty()
    }

    /// The batch of events the limits were checked for.
    fn checked(
        stream_id: &'a str,
        stream_type: &'a str,
        expected: ExpectedVersion,
        events: &'a [NewEvent],
    ) -> Result<Self, StoreError> {
        let (expected_kind, expected_version) = match expected {
            ExpectedVersion::Any => (0, 0),
            ExpectedVersion::NoStream => (1, 0),
            ExpectedVersion::StreamExists => (2, 0),
            ExpectedVersion::Exact(version) => (3, to_i64(version)),
        };
        let mut batch = Batch {
            stream_id,
            stream_type,
            expected_kind,
            expected_version,
            event_ids: Vec::with_capacity(events.len()),
            names: Vec::with_capacity(events.len()),
            schema_versions: Vec::with_capacity(events.len()),
            payloads: Vec::with_capacity(events.len()),
            occurred_at: Vec::with_capacity(events.len()),
            metadata: Vec::with_capacity(events.len()),
            tags: Vec::with_capacity(events.len()),
            tag_events: Vec::new(),
            tag_values: Vec::new(),
            condition: None,
        };
        for (place, event) in (1..).zip(events) {
            // Stored sorted and each once, as every store reads them back.
            let tags = crate::tag::normalized_ref(&event.tags);
            batch.tags.push(if tags.is_empty() {
                None
            } else {
                Some(serde_json::to_string(&*tags).map_err(backend)?)
            });
            for tag in tags.iter() {
                batch.tag_events.push(place);
                batch.tag_values.push(tag.as_str().to_owned());
            }
            batch.event_ids.push(event.event_id);
            batch.names.push(&event.name);
            batch.schema_versions.push(i64::from(event.schema_version));
            batch.payloads.push(event.payload.get());
            batch.occurred_at.push(event.timestamp);
            batch
                .metadata
                .push(serde_json::to_string(&event.metadata).map_err(backend)?);
        }
        Ok(batch)
    }

    /// The statement to run: `factum_decide` for tags or a condition, else
    /// `factum_append_one` for one event, else `factum_append`.
    pub(super) fn sql<'s>(&self, sql: &'s Sql) -> &'s str {
        if self.decides() {
            &sql.decide
        } else if self.event_ids.len() == 1 {
            &sql.append_one
        } else {
            &sql.append
        }
    }

    /// The parameters of [`Batch::sql`]: `held` holds the append lock until the
    /// transaction ends (an append inside a caller's transaction), else the append runs
    /// concurrently with others (see `PostgresStore`'s documentation).
    pub(super) fn params(&self, held: bool) -> Vec<&(dyn ToSql + Sync)> {
        let held: &'static bool = if held { &true } else { &false };
        if self.decides() {
            let mut params = self.decide_params();
            params.push(held);
            return params;
        }
        if let ([id], [name], [version], [payload], [at], [metadata]) = (
            self.event_ids.as_slice(),
            self.names.as_slice(),
            self.schema_versions.as_slice(),
            self.payloads.as_slice(),
            self.occurred_at.as_slice(),
            self.metadata.as_slice(),
        ) {
            return vec![
                &self.stream_id,
                &self.stream_type,
                &self.expected_kind,
                &self.expected_version,
                id,
                name,
                version,
                payload,
                at,
                metadata,
                held,
            ];
        }
        let mut params = Vec::with_capacity(12);
        params.extend(self.stream_params());
        // `factum_append` can report an id repeated in the batch; `check_append` refused
        // such a batch already.
        params.push(&NO_REPEATED_ID);
        params.extend(self.event_params());
        params.push(held);
        params
    }

    /// The stream and the expected version, as every append function takes them first.
    fn stream_params(&self) -> [&(dyn ToSql + Sync); 4] {
        [
            &self.stream_id,
            &self.stream_type,
            &self.expected_kind,
            &self.expected_version,
        ]
    }

    /// The events' arrays, as every batch function takes them.
    fn event_params(&self) -> [&(dyn ToSql + Sync); 6] {
        [
            &self.event_ids,
            &self.names,
            &self.schema_versions,
            &self.payloads,
            &self.occurred_at,
            &self.metadata,
        ]
    }

    /// The parameters `factum_decide` takes before `p_held`.
    fn decide_params(&self) -> Vec<&(dyn ToSql + Sync)> {
        const NO_ITEMS: i32 = 0;
        const AFTER_NOTHING: i64 = 0;
        const NO_INTEGERS: &[i32] = &[];
        const NO_TEXTS: &[&str] = &[];
        let mut params = Vec::with_capacity(20);
        params.extend(self.stream_params());
        params.extend(self.event_params());
        params.extend([
            &self.tags as &(dyn ToSql + Sync),
            &self.tag_events,
            &self.tag_values,
        ]);
        match &self.condition {
            Some(condition) => params.extend([
                &condition.query.items as &(dyn ToSql + Sync),
                &condition.after,
                &condition.query.tag_items,
                &condition.query.tags,
                &condition.query.name_items,
                &condition.query.names,
            ]),
            None => params.extend([
                &NO_ITEMS as &(dyn ToSql + Sync),
                &AFTER_NOTHING,
                &NO_INTEGERS,
                &NO_TEXTS,
                &NO_INTEGERS,
                &NO_TEXTS,
            ]),
        }
        params
    }

    /// The statement of a command's append: `factum_decide_command` for tags or a
    /// condition, else `factum_append_command`.
    pub(super) fn command_sql<'s>(&self, sql: &'s Sql) -> &'s str {
        if self.decides() {
            &sql.decide_command
        } else {
            &sql.append_command
        }
    }

    /// The parameters of [`Batch::command_sql`] for `command` and this batch.
    pub(super) fn command_params<'s>(
        &'s self,
        command: &'s CommandRecord,
    ) -> Vec<&'s (dyn ToSql + Sync)> {
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![
            &command.command_id,
            &command.fingerprint,
            &command.recorded_at,
        ];
        if self.decides() {
            params.extend(self.decide_params());
            return params;
        }
        params.extend(self.stream_params());
        params.extend(self.event_params());
        params
    }

    /// What a status row of `factum_append_command` means: the command's new outcome,
    /// `None` when it was recorded already (status 5), or the error of a refused append.
    pub(super) fn command_outcome(
        &self,
        expected: ExpectedVersion,
        row: &Row,
        command: &CommandRecord,
    ) -> Result<Option<CommandOutcome>, StoreError> {
        let unexpected = |what: &dyn fmt::Display| {
            backend(PostgresError::UnexpectedReply(format!(
                "factum_append_command for stream `{}`: {what}",
                self.stream_id
            )))
        };
        let status: i32 = row.try_get(0).map_err(|e| unexpected(&e))?;
        if status == 5 {
            return Ok(None);
        }
        if self.event_ids.is_empty() && status == 0 {
            let version: i64 = row.try_get(1).map_err(|e| unexpected(&e))?;
            let version = u64::try_from(version)
                .map_err(|_| unexpected(&format_args!("stream version {version}")))?;
            return Ok(Some(CommandOutcome::new(
                command,
                self.stream_id,
                version,
                None,
                Vec::new(),
            )));
        }
        let appended = self.outcome(expected, row)?;
        let first: Option<i64> = row.try_get(5).map_err(|e| unexpected(&e))?;
        let first = first
            .and_then(|first| u64::try_from(first).ok())
            .ok_or_else(|| unexpected(&format_args!("status {status} without a first position")))?;
        Ok(Some(CommandOutcome::new(
            command,
            self.stream_id,
            appended.stream_version,
            Some((first, appended.last_position)),
            self.event_ids.clone(),
        )))
    }

    /// What a status row of `factum_append` means.
    pub(super) fn outcome(
        &self,
        expected: ExpectedVersion,
        row: &Row,
    ) -> Result<AppendOutcome, StoreError> {
        let unexpected = |what: &dyn fmt::Display| {
            backend(PostgresError::UnexpectedReply(format!(
                "factum_append for stream `{}`: {what}",
                self.stream_id
            )))
        };
        let status: i32 = row.try_get(0).map_err(|e| unexpected(&e))?;
        let version: Option<i64> = row.try_get(1).map_err(|e| unexpected(&e))?;
        let position: Option<i64> = row.try_get(2).map_err(|e| unexpected(&e))?;
        let to_u64 = |value: Option<i64>| {
            value
                .and_then(|value| u64::try_from(value).ok())
                .ok_or_else(|| unexpected(&format_args!("status {status} without a version")))
        };
        match status {
            0 | 1 => Ok(AppendOutcome {
                stream_version: to_u64(version)?,
                last_position: to_u64(position)?,
                written: status == 0,
            }),
            2 => Err(StoreError::Conflict {
                stream_id: self.stream_id.to_owned(),
                expected,
                actual: version.and_then(|version| u64::try_from(version).ok()),
            }),
            3 => Err(StoreError::StreamTypeMismatch {
                stream_id: self.stream_id.to_owned(),
                existing: row.try_get(4).map_err(|e| unexpected(&e))?,
                requested: self.stream_type.to_owned(),
            }),
            4 => Err(StoreError::DuplicateEventId {
                stream_id: self.stream_id.to_owned(),
                event_id: row.try_get(3).map_err(|e| unexpected(&e))?,
            }),
            6 => Err(StoreError::ConditionFailed {
                stream_id: self.stream_id.to_owned(),
                after: self
                    .condition
                    .as_ref()
                    .map_or(0, |condition| u64::try_from(condition.after).unwrap_or(0)),
                position: to_u64(position)?,
            }),
            other => Err(unexpected(&format_args!("unknown status {other}"))),
        }
    }
}
