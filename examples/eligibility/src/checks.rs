//! Every member's checks, in a SQLite read model: the projection [`MemberChecks`] writes
//! it, the query [`ChecksOfMember`] reads it.

use factum::Aggregate;
use factum::chrono::{DateTime, Utc};
use factum::prelude::*;
use factum::query::{Query, QueryError};
use factum::sqlite::rusqlite::{self, Connection, Row};
use factum::sqlite::{SqliteReadModel, SqliteTx};

use crate::{Check, CheckDecided, CheckOpened, EvidenceRecorded, Outcome, Program};

/// The projection; its read model is named [`MemberChecks::NAME`].
#[derive(Debug, Default)]
pub struct MemberChecks;

#[projection(name = "member_checks", version = 1)]
impl MemberChecks {
    #[setup]
    async fn tables(&mut self, tx: &mut SqliteTx) -> Result<(), ProjectionError> {
        tx.execute_batch(
            "CREATE TABLE checks (
                 check_id TEXT PRIMARY KEY,
                 member_id TEXT NOT NULL,
                 program TEXT NOT NULL,
                 opened_ms INTEGER NOT NULL,
                 evidence INTEGER NOT NULL DEFAULT 0,
                 outcome TEXT,
                 decided_by TEXT
             );
             CREATE INDEX checks_by_member ON checks (member_id, opened_ms);",
        )?;
        Ok(())
    }

    #[on]
    async fn opened(
        &mut self,
        e: &Recorded<CheckOpened>,
        tx: &mut SqliteTx,
    ) -> Result<(), ProjectionError> {
        tx.prepare_cached(
            "INSERT INTO checks (check_id, member_id, program, opened_ms) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute((
            check_id(e.stream_id()),
            &e.member_id,
            e.program.as_str(),
            e.opened_at.timestamp_millis(),
        ))?;
        Ok(())
    }

    #[on]
    async fn evidence(
        &mut self,
        e: &Recorded<EvidenceRecorded>,
        tx: &mut SqliteTx,
    ) -> Result<(), ProjectionError> {
        tx.prepare_cached("UPDATE checks SET evidence = evidence + 1 WHERE check_id = ?1")?
            .execute([check_id(e.stream_id())])?;
        Ok(())
    }

    #[on]
    async fn decided(
        &mut self,
        e: &Recorded<CheckDecided>,
        tx: &mut SqliteTx,
    ) -> Result<(), ProjectionError> {
        // The outcome is kept as the event's JSON, so the reasons come back as written.
        let outcome = factum::serde_json::to_string(&e.outcome)?;
        tx.prepare_cached("UPDATE checks SET outcome = ?2, decided_by = ?3 WHERE check_id = ?1")?
            .execute((check_id(e.stream_id()), outcome, &e.decided_by))?;
        Ok(())
    }
}

/// The check id of a check's stream id (`Check-C-7` → `C-7`).
fn check_id(stream_id: &str) -> &str {
    stream_id
        .strip_prefix(<Check as Aggregate>::NAME)
        .and_then(|rest| rest.strip_prefix('-'))
        .unwrap_or(stream_id)
}

/// One check as the read model holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, factum::schemars::JsonSchema)]
#[schemars(crate = "factum::schemars")]
pub struct CheckSummary {
    /// The check.
    pub check_id: String,
    /// The program checked for (`home_care`, `transport`).
    pub program: String,
    /// When it was opened.
    pub opened_at: DateTime<Utc>,
    /// Pieces of evidence recorded.
    pub evidence: u32,
    /// The decision; `None` while the check is open.
    pub outcome: Option<Outcome>,
    /// Who decided it.
    pub decided_by: Option<String>,
}

impl CheckSummary {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        let opened_ms: i64 = row.get("opened_ms")?;
        let outcome: Option<String> = row.get("outcome")?;
        Ok(Self {
            check_id: row.get("check_id")?,
            program: row.get("program")?,
            opened_at: DateTime::from_timestamp_millis(opened_ms).ok_or_else(|| {
                conversion_failed(3, format!("{opened_ms} ms is out of the time range"))
            })?,
            evidence: row.get("evidence")?,
            outcome: outcome
                .map(|json| factum::serde_json::from_str(&json))
                .transpose()
                .map_err(|error| conversion_failed(5, error.to_string()))?,
            decided_by: row.get("decided_by")?,
        })
    }

    /// The program as the domain names it, if the stored name is one.
    pub fn program(&self) -> Option<Program> {
        [Program::HomeCare, Program::Transport]
            .into_iter()
            .find(|program| program.as_str() == self.program)
    }
}

fn conversion_failed(column: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, message.into())
}

/// Every check of a member, oldest first.
pub fn checks_of(reader: &Connection, member_id: &str) -> rusqlite::Result<Vec<CheckSummary>> {
    reader
        .prepare_cached("SELECT * FROM checks WHERE member_id = ?1 ORDER BY opened_ms, check_id")?
        .query_map([member_id], CheckSummary::from_row)?
        .collect()
}

/// "What has this member been checked for, and with what outcome?"
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, factum::schemars::JsonSchema)]
#[schemars(crate = "factum::schemars")]
pub struct ChecksOfMember {
    /// The member.
    pub member_id: String,
}

impl Query<SqliteReadModel> for ChecksOfMember {
    const NAME: &'static str = "ChecksOfMember";
    const PROJECTION: &'static str = MemberChecks::NAME;
    type Answer = Vec<CheckSummary>;

    async fn answer(self, read_model: &SqliteReadModel) -> Result<Self::Answer, QueryError> {
        Ok(read_model
            .read(Self::PROJECTION, move |db| checks_of(db, &self.member_id))
            .await?)
    }
}
