//! The eligibility rules given / when / then, and the whole path on a real SQLite store:
//! a check an older release stored, read through the upcast, decided, projected and
//! queried.

use factum::Aggregate;
use factum::chrono::{DateTime, TimeDelta, Utc};
use factum::envelope::{Metadata, NewEvent};
use factum::prelude::*;
use factum::query::{Consistency, QueryRunner};
use factum::serde_json::json;
use factum::sqlite::{SqliteReadModel, SqliteStore};
use factum::testing::AggregateFixture;
use factum_example_eligibility::checks::{ChecksOfMember, MemberChecks};
use factum_example_eligibility::{
    Check, CheckDecided, CheckError, CheckOpened, Decide, Evidence, EvidenceKind, EvidenceRecorded,
    OpenCheck, Outcome, Program, RecordEvidence, SERVED_REGION,
};

fn at() -> DateTime<Utc> {
    DateTime::from_timestamp(1_780_000_000, 0).unwrap()
}

fn opened(program: Program) -> CheckOpened {
    CheckOpened {
        member_id: "tom".into(),
        program,
        opened_at: at(),
    }
}

fn recorded(evidence: Evidence) -> EvidenceRecorded {
    EvidenceRecorded {
        evidence,
        recorded_at: at(),
    }
}

fn north() -> Evidence {
    Evidence::Residence {
        region: SERVED_REGION.into(),
    }
}

fn decide() -> Decide {
    Decide {
        check_id: "C-1".into(),
        at: at(),
    }
}

fn as_ines() -> CommandContext {
    CommandContext::new().actor(Actor::new("caseworker", "ines"))
}

#[test]
fn home_care_takes_age_when_the_income_is_over_the_limit() {
    let decided = |years| CheckDecided {
        outcome: if years >= 65 {
            Outcome::Eligible
        } else {
            Outcome::Ineligible {
                reasons: vec![format!(
                    "aged {years} with income 2300.00 a month: home care needs 65 or over, or at most 1800.00"
                )],
            }
        },
        decided_by: "ines".into(),
        decided_at: at(),
    };
    for years in [64, 65] {
        AggregateFixture::<Check>::new()
            .given((
                opened(Program::HomeCare),
                recorded(Evidence::Income {
                    monthly_cents: 230_000,
                }),
                recorded(Evidence::Age { years }),
                recorded(north()),
            ))
            .when_with(decide(), as_ines())
            .then_expect_events([decided(years)]);
    }
}

#[test]
fn every_failed_rule_is_a_reason() {
    let state = AggregateFixture::<Check>::new()
        .given((
            opened(Program::Transport),
            recorded(Evidence::Income {
                monthly_cents: 250_001,
            }),
            recorded(Evidence::Residence {
                region: "south".into(),
            }),
        ))
        .when_with(decide(), as_ines())
        .then_expect_events([CheckDecided {
            outcome: Outcome::Ineligible {
                reasons: vec![
                    "lives in region `south`; the program serves `north`".into(),
                    "income 2500.01 a month is over the limit of 2500.00".into(),
                ],
            },
            decided_by: "ines".into(),
            decided_at: at(),
        }]);
    assert!(state.decided);
}

#[test]
fn newer_evidence_replaces_older_of_its_kind() {
    AggregateFixture::<Check>::new()
        .given((
            opened(Program::Transport),
            recorded(Evidence::Income {
                monthly_cents: 900_000,
            }),
            recorded(north()),
            recorded(Evidence::Income {
                monthly_cents: 100_000,
            }),
        ))
        .when_with(decide(), as_ines())
        .then_expect_events([CheckDecided {
            outcome: Outcome::Eligible,
            decided_by: "ines".into(),
            decided_at: at(),
        }]);
}

#[test]
fn refusals() {
    AggregateFixture::<Check>::new()
        .given([opened(Program::Transport)])
        .when_with(decide(), as_ines())
        .then_expect_error(CheckError::MissingEvidence(EvidenceKind::Income));
    AggregateFixture::<Check>::new()
        .given((
            opened(Program::Transport),
            recorded(Evidence::Income {
                monthly_cents: 100_000,
            }),
        ))
        .when_with(decide(), as_ines())
        .then_expect_error(CheckError::MissingEvidence(EvidenceKind::Residence));
    AggregateFixture::<Check>::new()
        .given((
            opened(Program::Transport),
            recorded(Evidence::Income {
                monthly_cents: 100_000,
            }),
            recorded(north()),
        ))
        .when(decide())
        .then_expect_error(CheckError::NoDecider);
    AggregateFixture::<Check>::new()
        .when(RecordEvidence {
            check_id: "C-1".into(),
            evidence: north(),
            at: at(),
        })
        .then_expect_error(CheckError::NotOpened);
    AggregateFixture::<Check>::new()
        .when(OpenCheck {
            check_id: "C-1".into(),
            member_id: "  ".into(),
            program: Program::HomeCare,
            at: at(),
        })
        .then_expect_error(CheckError::BlankMember);
}

#[test]
fn evidence_already_on_file_records_nothing() {
    AggregateFixture::<Check>::new()
        .given((opened(Program::Transport), recorded(north())))
        .when(RecordEvidence {
            check_id: "C-1".into(),
            evidence: north(),
            at: at() + TimeDelta::hours(1),
        })
        .then_expect_no_events();
}

/// Version 1 of `EvidenceRecorded`, as an older release appended it to a real store, loads
/// as today's income evidence; a version 1 payload the upcast cannot read is a typed
/// error naming the stream, and nothing stored is lost.
#[factum::tokio::test(flavor = "current_thread", crate = "factum::tokio")]
async fn an_older_release_check_is_decided_projected_and_queried() {
    let dir = std::env::temp_dir().join(format!("factum-eligibility-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = SqliteStore::open(dir.join("e.sqlite3")).await.unwrap();
    let read_models = SqliteReadModel::open(dir.join("read-models"))
        .await
        .unwrap();
    let v1 = |payload: factum::serde_json::Value| {
        NewEvent::new(
            "EvidenceRecorded",
            1,
            factum::serde_json::value::to_raw_value(&payload).unwrap(),
            Metadata::default(),
        )
    };
    let opened = NewEvent::new(
        "CheckOpened",
        1,
        factum::serde_json::value::to_raw_value(&json!({
            "member_id": "ruth", "program": "transport", "opened_at": at(),
        }))
        .unwrap(),
        Metadata::default(),
    );
    store
        .append(
            "Check-C-old",
            <Check as Aggregate>::NAME,
            ExpectedVersion::NoStream,
            vec![
                opened,
                v1(json!({ "income_monthly": 2400, "recorded_at": at() })),
            ],
        )
        .await
        .unwrap();

    let checks = Repository::<Check, _>::new(store.clone());
    let loaded = checks.load("C-old").await.unwrap();
    assert_eq!(
        loaded.state.evidence,
        [Evidence::Income {
            monthly_cents: 240_000
        }]
    );
    checks
        .execute(RecordEvidence {
            check_id: "C-old".into(),
            evidence: north(),
            at: at(),
        })
        .await
        .unwrap();
    let decided = checks
        .execute_with(
            Decide {
                check_id: "C-old".into(),
                at: at(),
            },
            as_ines(),
        )
        .await
        .unwrap();

    let runner = factum::projection::ProjectionRunner::new(store.clone());
    let mut projector = runner.projector(MemberChecks, read_models.clone());
    runner.catch_up(&mut projector).await.unwrap();
    let answer = QueryRunner::new(store.clone(), read_models)
        .ask(
            ChecksOfMember {
                member_id: "ruth".into(),
            },
            Consistency::at_least(decided.position.unwrap(), std::time::Duration::from_secs(5)),
        )
        .await
        .unwrap();
    assert!(!answer.freshness.stale);
    let [check] = answer.value.as_slice() else {
        panic!("one check of ruth, got {:?}", answer.value)
    };
    assert_eq!(
        (
            check.check_id.as_str(),
            check.program(),
            check.evidence,
            &check.outcome,
            check.decided_by.as_deref()
        ),
        (
            "C-old",
            Some(Program::Transport),
            2,
            &Some(Outcome::Eligible),
            Some("ines")
        )
    );

    // A version 1 payload without its income: the load fails, naming the stream and the
    // upcast; the stream keeps every event.
    store
        .append(
            "Check-C-bad",
            <Check as Aggregate>::NAME,
            ExpectedVersion::Any,
            vec![v1(json!({ "recorded_at": at() }))],
        )
        .await
        .unwrap();
    let error = checks.load("C-bad").await.unwrap_err();
    let rendered = factum::error::Report(&error).to_string();
    assert!(rendered.contains("Check-C-bad"), "{rendered}");
    assert!(
        rendered.contains("no whole-number field `income_monthly`"),
        "{rendered}"
    );
    let stored = store.read_stream("Check-C-bad", 0, 10).await.unwrap();
    assert_eq!(stored.len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}
