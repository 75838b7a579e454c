//! The eligibility job: checks opened, evidence recorded, decisions taken and refused, a
//! check an older release stored replayed through its upcast, and the member read model
//! answering, all on one SQLite file.

use std::path::{Path, PathBuf};

use factum::chrono::{DateTime, TimeDelta, Utc};
use factum::envelope::{Metadata, NewEvent};
use factum::prelude::*;
use factum::projection::{ProjectionRunner, ReadModelError, RunnerError};
use factum::query::{Answer, Consistency, QueryError, QueryRunner};
use factum::serde_json::json;
use factum::sqlite::{SqliteOpenError, SqliteReadModel, SqliteStore};

use crate::checks::{CheckSummary, ChecksOfMember, MemberChecks};
use crate::{
    Check, CheckError, CheckEvent, Decide, Evidence, OpenCheck, Outcome, Program, RecordEvidence,
    money,
};

/// Why the job stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The store file could not be opened.
    #[error("opening the store")]
    Open(#[from] SqliteOpenError),
    /// The read models could not be opened.
    #[error("opening the read models")]
    ReadModel(#[from] ReadModelError),
    /// The store failed.
    #[error("the store failed")]
    Store(#[from] StoreError),
    /// A command that the job expects to succeed failed.
    #[error("a command failed")]
    Command(#[from] RepositoryError<CheckError>),
    /// A command that the job expects to be refused was accepted.
    #[error("{0} was accepted, but the rules should have refused it")]
    Accepted(String),
    /// The projection failed.
    #[error("the projection failed")]
    Projection(#[from] RunnerError),
    /// A query failed.
    #[error("a query failed")]
    Query(#[from] QueryError),
    /// A payload could not be encoded.
    #[error("encoding a payload")]
    Json(#[from] factum::serde_json::Error),
}

/// The read models' directory beside a store file: `eligibility.sqlite3` →
/// `eligibility.read-models/`.
pub fn read_models_beside(db: &Path) -> PathBuf {
    db.with_extension("read-models")
}

/// Runs the job on the store file `db`, printing what happens. Run it again on the same
/// file: the checks of earlier runs stay, the projection resumes from its checkpoint.
pub async fn run(db: &Path) -> Result<(), DemoError> {
    let store = SqliteStore::open(db).await?;
    let read_models = SqliteReadModel::open(read_models_beside(db)).await?;
    let checks = Repository::<Check, _>::new(store.clone());
    // Each run's checks get ids of their own: the log's head when it started.
    let run = store.head().await?.map_or(0, |head| head.position);
    let now = Utc::now();

    println!("1. A check an older release stored, read through today's types");
    let legacy = replay_legacy_check(&store, &checks).await?;
    println!("{legacy}");

    println!("\n2. Checks decided by the programs' rules");
    let people = [
        ("maria", Program::HomeCare, 230_000, 71),
        ("tom", Program::HomeCare, 230_000, 40),
        ("tom", Program::Transport, 230_000, 40),
    ];
    for (index, (member, program, income, age)) in people.into_iter().enumerate() {
        let check_id = format!("C-{run}-{index}");
        checks
            .execute(OpenCheck {
                check_id: check_id.clone(),
                member_id: member.to_owned(),
                program,
                at: now,
            })
            .await?;
        for evidence in [
            Evidence::Income {
                monthly_cents: income,
            },
            Evidence::Age { years: age },
            Evidence::Residence {
                region: crate::SERVED_REGION.to_owned(),
            },
        ] {
            checks
                .execute(RecordEvidence {
                    check_id: check_id.clone(),
                    evidence,
                    at: now,
                })
                .await?;
        }
        let decided = decide(&checks, check_id.clone(), now).await?;
        println!(
            "{member:<6} {:<10} {check_id}: {}",
            program.as_str(),
            describe(decided_outcome(&decided.events))
        );
    }

    println!("\n3. Commands the rules refuse");
    let check_id = format!("C-{run}-refused");
    checks
        .execute(OpenCheck {
            check_id: check_id.clone(),
            member_id: "sam".to_owned(),
            program: Program::Transport,
            at: now,
        })
        .await?;
    let refused = decide(&checks, check_id.clone(), now).await;
    let what = format!("deciding {check_id} with no evidence");
    println!("{what}: {}", refusal(&what, refused)?);
    let refused = checks
        .execute(RecordEvidence {
            check_id: format!("C-{run}-0"),
            evidence: Evidence::Age { years: 72 },
            at: now,
        })
        .await;
    let what = format!("recording evidence on the decided C-{run}-0");
    println!("{what}: {}", refusal(&what, refused)?);
    let refused = checks
        .execute(OpenCheck {
            check_id: format!("C-{run}-1"),
            member_id: "tom".to_owned(),
            program: Program::Transport,
            at: now + TimeDelta::minutes(1),
        })
        .await;
    let what = format!("opening C-{run}-1 again");
    println!("{what}: {}", refusal(&what, refused)?);

    println!("\n4. The members' checks, from the read model");
    let runner = ProjectionRunner::new(store.clone());
    let mut projector = runner.projector(MemberChecks, read_models.clone());
    let caught_up = runner.catch_up(&mut projector).await?;
    println!(
        "{}: applied {} event(s), checkpoint {}",
        MemberChecks::NAME,
        caught_up.applied,
        caught_up.checkpoint
    );
    let queries = QueryRunner::new(store, read_models);
    for member in ["ruth", "maria", "tom"] {
        let answer = queries
            .ask(
                ChecksOfMember {
                    member_id: member.to_owned(),
                },
                Consistency::Any,
            )
            .await?;
        print_checks(member, &answer);
    }
    Ok(())
}

/// Stores, once per store, the check an older release left behind: opened for `ruth`, with
/// her income recorded as `EvidenceRecorded` version 1 (whole units, no kinds of
/// evidence); then records her residence and decides it with today's code, which reads
/// version 1 through [`evidence_v1_to_v2`](crate::evidence_v1_to_v2).
async fn replay_legacy_check(
    store: &SqliteStore,
    checks: &Repository<Check, SqliteStore>,
) -> Result<String, DemoError> {
    const CHECK_ID: &str = "C-legacy";
    let stream_id = format!("{}-{CHECK_ID}", <Check as Aggregate>::NAME);
    let loaded = checks.load(CHECK_ID).await?;
    if loaded.version > 0 {
        return Ok(format!(
            "{CHECK_ID} is stored from an earlier run: version {}, decided: {}",
            loaded.version, loaded.state.decided
        ));
    }
    let opened_at = Utc::now() - TimeDelta::days(400);
    let old_release = vec![
        NewEvent::new(
            "CheckOpened",
            1,
            factum::serde_json::value::to_raw_value(&json!({
                "member_id": "ruth",
                "program": "home_care",
                "opened_at": opened_at,
            }))?,
            Metadata::default(),
        ),
        NewEvent::new(
            "EvidenceRecorded",
            1,
            factum::serde_json::value::to_raw_value(&json!({
                "income_monthly": 1750,
                "recorded_at": opened_at,
            }))?,
            Metadata::default(),
        ),
    ];
    store
        .append(
            &stream_id,
            <Check as Aggregate>::NAME,
            ExpectedVersion::NoStream,
            old_release,
        )
        .await?;
    let read_back = checks.load(CHECK_ID).await?;
    let income = read_back
        .state
        .evidence
        .iter()
        .find_map(|evidence| match evidence {
            Evidence::Income { monthly_cents } => Some(*monthly_cents),
            _ => None,
        });
    checks
        .execute(RecordEvidence {
            check_id: CHECK_ID.to_owned(),
            evidence: Evidence::Residence {
                region: crate::SERVED_REGION.to_owned(),
            },
            at: Utc::now(),
        })
        .await?;
    let decided = decide(checks, CHECK_ID.to_owned(), Utc::now()).await?;
    Ok(format!(
        "{CHECK_ID}: EvidenceRecorded v1 (income_monthly 1750) read as income {} a month; decided: {}",
        income.map_or_else(|| "none".to_owned(), money),
        describe(decided_outcome(&decided.events))
    ))
}

/// The caseworker decides `check_id`.
async fn decide(
    checks: &Repository<Check, SqliteStore>,
    check_id: String,
    at: DateTime<Utc>,
) -> Result<Executed<Check>, RepositoryError<CheckError>> {
    checks
        .execute_with(Decide { check_id, at }, caseworker())
        .await
}

/// A decision's context: the caseworker as its actor, and a command id of its own (a
/// context's id is the command's idempotency key, so each command gets a fresh one).
fn caseworker() -> CommandContext {
    CommandContext::new().actor(Actor::new("caseworker", "ines"))
}

fn decided_outcome(events: &[CheckEvent]) -> Option<&Outcome> {
    events.iter().find_map(|event| match event {
        CheckEvent::Decided(decided) => Some(&decided.outcome),
        _ => None,
    })
}

fn describe(outcome: Option<&Outcome>) -> String {
    match outcome {
        None => "no decision recorded".to_owned(),
        Some(Outcome::Eligible) => "eligible".to_owned(),
        Some(Outcome::Ineligible { reasons }) => format!("ineligible: {}", reasons.join("; ")),
    }
}

/// The reason a command the job expects the check to refuse was refused.
fn refusal<T>(
    what: &str,
    result: Result<T, RepositoryError<CheckError>>,
) -> Result<String, DemoError> {
    match result {
        Ok(_) => Err(DemoError::Accepted(what.to_owned())),
        Err(RepositoryError::Rejected(error)) => Ok(format!("refused: {error}")),
        Err(other) => Err(other.into()),
    }
}

fn print_checks(member: &str, answer: &Answer<Vec<CheckSummary>>) {
    let freshness = &answer.freshness;
    println!(
        "ChecksOfMember {member}: {} check(s) (read model at position {}, {} event(s) behind)",
        answer.value.len(),
        freshness.position,
        freshness.lag_events
    );
    for check in &answer.value {
        println!(
            "  {:<14} {:<10} {} piece(s) of evidence, {}",
            check.check_id,
            check.program,
            check.evidence,
            match (&check.outcome, &check.decided_by) {
                (Some(outcome), Some(by)) => format!("{} (by {by})", describe(Some(outcome))),
                (Some(outcome), None) => describe(Some(outcome)),
                (None, _) => "open".to_owned(),
            }
        );
    }
}
