//! Eligibility checks for care programs: a domain crate whose `Cargo.toml` names `factum`,
//! `serde` and `thiserror`, and nothing else.
//!
//! A caseworker opens a check of a member for a program, records the evidence the member
//! brings (income, age, where they live) and asks for a decision. The decision follows the
//! program's rules and says why when the answer is no. One projection,
//! [`checks::MemberChecks`], keeps every member's checks in a SQLite read model, and the
//! query [`checks::ChecksOfMember`] answers from it. [`demo::run`] is the job the
//! `eligibility` binary (and the workspace's main job) runs.
//!
//! What a domain usually takes from other crates comes through factum: the time type
//! (`factum::chrono`), JSON (`factum::serde_json`, which JSON upcasts take and return),
//! schemas (`factum::schemars`, derived by the types inside events and queries with
//! `#[schemars(crate = "factum::schemars")]`), the SQLite driver a read model writes
//! through (`factum::sqlite::rusqlite`) and the async runtime (`factum::tokio`).
#![warn(missing_docs)]

pub mod checks;
pub mod demo;

use factum::chrono::{DateTime, Utc};
use factum::prelude::*;
use factum::serde_json::{Value, json};

/// The care programs a member can be checked for.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    factum::schemars::JsonSchema,
)]
#[schemars(crate = "factum::schemars")]
#[serde(rename_all = "snake_case")]
pub enum Program {
    /// Visits at home: for members of 65 and over, or with a low income.
    HomeCare,
    /// Rides to appointments: for members with a low income.
    Transport,
}

impl Program {
    /// The highest monthly income, in cents, that qualifies on income alone.
    pub fn income_limit_cents(self) -> u64 {
        match self {
            Program::HomeCare => 180_000,
            Program::Transport => 250_000,
        }
    }

    /// The name the read model and the output use.
    pub fn as_str(self) -> &'static str {
        match self {
            Program::HomeCare => "home_care",
            Program::Transport => "transport",
        }
    }
}

/// A fact the member brought to support the check.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, factum::schemars::JsonSchema,
)]
#[schemars(crate = "factum::schemars")]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Evidence {
    /// The household's income per month.
    Income {
        /// In cents.
        monthly_cents: u64,
    },
    /// The member's age in years.
    Age {
        /// Completed years.
        years: u8,
    },
    /// Where the member lives: programs serve their own region only.
    Residence {
        /// The region's code.
        region: String,
    },
}

impl Evidence {
    /// What kind of evidence this is; a newer piece replaces an older one of its kind.
    pub fn kind(&self) -> EvidenceKind {
        match self {
            Evidence::Income { .. } => EvidenceKind::Income,
            Evidence::Age { .. } => EvidenceKind::Age,
            Evidence::Residence { .. } => EvidenceKind::Residence,
        }
    }
}

/// The kinds of [`Evidence`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvidenceKind {
    /// [`Evidence::Income`].
    Income,
    /// [`Evidence::Age`].
    Age,
    /// [`Evidence::Residence`].
    Residence,
}

impl std::fmt::Display for EvidenceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EvidenceKind::Income => "income",
            EvidenceKind::Age => "age",
            EvidenceKind::Residence => "residence",
        })
    }
}

/// The region every program of this service serves.
pub const SERVED_REGION: &str = "north";

/// What a decision came to.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, factum::schemars::JsonSchema,
)]
#[schemars(crate = "factum::schemars")]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The member qualifies.
    Eligible,
    /// The member does not qualify, for these reasons (at least one).
    Ineligible {
        /// Each rule the evidence failed, in words.
        reasons: Vec<String>,
    },
}

/// A caseworker opened a check of a member for a program.
#[event(name = "CheckOpened")]
#[derive(Debug, Clone, PartialEq)]
pub struct CheckOpened {
    /// The member checked.
    pub member_id: String,
    /// The program checked for.
    pub program: Program,
    /// When it was opened.
    pub opened_at: DateTime<Utc>,
}

/// The member brought a piece of evidence.
///
/// Version 1 (an older release) knew only income, in whole currency units:
/// `{"income_monthly": 1750, "recorded_at": ...}`; [`evidence_v1_to_v2`] reads it.
#[event(name = "EvidenceRecorded", version = 2, upcast_json(from = 1, with = evidence_v1_to_v2))]
#[derive(Debug, Clone, PartialEq)]
pub struct EvidenceRecorded {
    /// The evidence.
    pub evidence: Evidence,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
}

/// Reads version 1 of `EvidenceRecorded`: an income in whole units becomes income evidence
/// in cents.
pub fn evidence_v1_to_v2(payload: Value) -> Result<Value, UpcastFailed> {
    let income = payload
        .get("income_monthly")
        .and_then(Value::as_u64)
        .ok_or(UpcastFailed("no whole-number field `income_monthly`"))?;
    let recorded_at = payload
        .get("recorded_at")
        .cloned()
        .ok_or(UpcastFailed("no field `recorded_at`"))?;
    let monthly_cents = income
        .checked_mul(100)
        .ok_or(UpcastFailed("`income_monthly` is too large"))?;
    Ok(json!({
        "evidence": { "type": "income", "monthly_cents": monthly_cents },
        "recorded_at": recorded_at,
    }))
}

/// A stored payload an upcast could not read.
#[derive(Debug, thiserror::Error)]
#[error("cannot upcast EvidenceRecorded v1: {0}")]
pub struct UpcastFailed(&'static str);

/// The check was decided.
#[event(name = "CheckDecided")]
#[derive(Debug, Clone, PartialEq)]
pub struct CheckDecided {
    /// The decision.
    pub outcome: Outcome,
    /// Who decided: the command's actor.
    pub decided_by: String,
    /// When.
    pub decided_at: DateTime<Utc>,
}

/// Every event of a check.
#[derive(Events, Debug, Clone, PartialEq)]
pub enum CheckEvent {
    /// See [`CheckOpened`].
    Opened(CheckOpened),
    /// See [`EvidenceRecorded`].
    EvidenceRecorded(EvidenceRecorded),
    /// See [`CheckDecided`].
    Decided(CheckDecided),
}

/// Open a check of a member for a program.
#[command]
#[derive(Debug, Clone, PartialEq)]
pub struct OpenCheck {
    /// The new check's id.
    #[aggregate_id]
    pub check_id: String,
    /// The member; not blank.
    pub member_id: String,
    /// The program.
    pub program: Program,
    /// When.
    pub at: DateTime<Utc>,
}

/// Record a piece of evidence on an open check.
#[command]
#[derive(Debug, Clone, PartialEq)]
pub struct RecordEvidence {
    /// The check.
    #[aggregate_id]
    pub check_id: String,
    /// The evidence.
    pub evidence: Evidence,
    /// When.
    pub at: DateTime<Utc>,
}

/// Decide an open check from its evidence.
#[command]
#[derive(Debug, Clone, PartialEq)]
pub struct Decide {
    /// The check.
    #[aggregate_id]
    pub check_id: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// Every command of a check.
#[derive(Commands, Debug, Clone, PartialEq)]
pub enum CheckCommand {
    /// See [`OpenCheck`].
    Open(OpenCheck),
    /// See [`RecordEvidence`].
    RecordEvidence(RecordEvidence),
    /// See [`Decide`].
    Decide(Decide),
}

/// Why a check refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// The check was already opened.
    #[error("the check was already opened")]
    AlreadyOpened,
    /// The check was never opened.
    #[error("no such check")]
    NotOpened,
    /// A check is of someone.
    #[error("a check needs a member")]
    BlankMember,
    /// A decided check takes no more evidence and no second decision.
    #[error("the check was already decided")]
    AlreadyDecided,
    /// A decision needs evidence of every kind the rules read.
    #[error("no {0} evidence recorded: the rules cannot be applied without it")]
    MissingEvidence(EvidenceKind),
    /// A decision is someone's: the command's actor.
    #[error("a decision needs an actor: the command has none")]
    NoDecider,
}

/// A check's state: what its decisions need.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Check {
    /// The program, once opened.
    pub program: Option<Program>,
    /// The newest piece of each kind of evidence.
    pub evidence: Vec<Evidence>,
    /// Whether it was decided.
    pub decided: bool,
}

impl Check {
    fn require_open(&self) -> Result<Program, CheckError> {
        let program = self.program.ok_or(CheckError::NotOpened)?;
        if self.decided {
            return Err(CheckError::AlreadyDecided);
        }
        Ok(program)
    }

    fn find(&self, kind: EvidenceKind) -> Result<&Evidence, CheckError> {
        self.evidence
            .iter()
            .find(|evidence| evidence.kind() == kind)
            .ok_or(CheckError::MissingEvidence(kind))
    }

    /// The program's rules applied to the evidence: every reason it fails, or eligible.
    fn outcome(&self, program: Program) -> Result<Outcome, CheckError> {
        let Evidence::Income { monthly_cents } = self.find(EvidenceKind::Income)? else {
            unreachable!("find returns evidence of the kind asked for")
        };
        let Evidence::Residence { region } = self.find(EvidenceKind::Residence)? else {
            unreachable!("find returns evidence of the kind asked for")
        };
        let mut reasons = Vec::new();
        if region != SERVED_REGION {
            reasons.push(format!(
                "lives in region `{region}`; the program serves `{SERVED_REGION}`"
            ));
        }
        let low_income = *monthly_cents <= program.income_limit_cents();
        match program {
            Program::Transport if !low_income => reasons.push(format!(
                "income {} a month is over the limit of {}",
                money(*monthly_cents),
                money(program.income_limit_cents())
            )),
            Program::HomeCare if !low_income => {
                let Evidence::Age { years } = self.find(EvidenceKind::Age)? else {
                    unreachable!("find returns evidence of the kind asked for")
                };
                if *years < 65 {
                    reasons.push(format!(
                        "aged {years} with income {} a month: home care needs 65 or over, or at most {}",
                        money(*monthly_cents),
                        money(program.income_limit_cents())
                    ));
                }
            }
            Program::Transport | Program::HomeCare => {}
        }
        Ok(if reasons.is_empty() {
            Outcome::Eligible
        } else {
            Outcome::Ineligible { reasons }
        })
    }
}

/// An amount of cents as money: `1800.00`.
pub fn money(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

#[aggregate(
    name = "Check",
    events = CheckEvent,
    commands = CheckCommand,
    error = CheckError
)]
impl Check {
    #[handle]
    fn open(&self, command: OpenCheck) -> Result<CheckOpened, CheckError> {
        if self.program.is_some() {
            return Err(CheckError::AlreadyOpened);
        }
        if command.member_id.trim().is_empty() {
            return Err(CheckError::BlankMember);
        }
        Ok(CheckOpened {
            member_id: command.member_id,
            program: command.program,
            opened_at: command.at,
        })
    }

    /// Recording what is already on file records nothing.
    #[handle]
    fn record_evidence(
        &self,
        command: RecordEvidence,
    ) -> Result<Option<EvidenceRecorded>, CheckError> {
        self.require_open()?;
        if self.evidence.contains(&command.evidence) {
            return Ok(None);
        }
        Ok(Some(EvidenceRecorded {
            evidence: command.evidence,
            recorded_at: command.at,
        }))
    }

    /// The decider is the command's actor: no field of the command can name another.
    #[handle]
    fn decide(&self, command: Decide, ctx: &CommandContext) -> Result<CheckDecided, CheckError> {
        let program = self.require_open()?;
        let decided_by = ctx.actor.as_ref().ok_or(CheckError::NoDecider)?.id.clone();
        Ok(CheckDecided {
            outcome: self.outcome(program)?,
            decided_by,
            decided_at: command.at,
        })
    }

    #[apply]
    fn opened(&mut self, event: &CheckOpened) {
        self.program = Some(event.program);
    }

    #[apply]
    fn evidence_recorded(&mut self, event: &EvidenceRecorded) {
        let kind = event.evidence.kind();
        self.evidence.retain(|evidence| evidence.kind() != kind);
        self.evidence.push(event.evidence.clone());
    }

    #[apply]
    fn decided(&mut self, _: &CheckDecided) {
        self.decided = true;
    }
}
