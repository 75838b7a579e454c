//! Decisions across entities on one SQLite file shared by operating-system processes:
//! sixteen processes decide on the last seat of a course at once, a hundred times over,
//! and every time exactly one takes it. Each process reads the course's subscriptions,
//! waits until all sixteen have read (so every decision is made on the same facts), and
//! appends its subscription under the condition that no subscription to the course was
//! stored since its read. A loser's append fails with the typed conflict; it decides again
//! on a fresh read, sees the winner and refuses, as the domain would.
//!
//! The child processes are this test binary itself, started again with the
//! `child_process` test selected and their part in environment variables. Run with
//! `cargo test -p factum --features sqlite --test sqlite_decisions`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use factum::integrity::TamperEvident;
use factum::prelude::*;
use factum::store::SqliteStore;
use factum::store::decision::{AppendCondition, DecisionStore, Query, QueryItem};
use serde_json::json;

/// The directory of the rounds' files; unset in the parent.
const DIR: &str = "FACTUM_DECISION_CHILD_DIR";
/// Which of the deciders the child is.
const DECIDER: &str = "FACTUM_DECISION_CHILD_DECIDER";

/// Processes deciding at once.
const DECIDERS: usize = 16;
/// Rounds, each on a fresh store whose course has one seat left.
const ROUNDS: usize = 100;
/// The course's capacity.
const CAPACITY: usize = 2;

fn store_path(dir: &Path, round: usize) -> PathBuf {
    dir.join(format!("round-{round}.db"))
}

/// The file a decider makes once it has read in `round`.
fn ready_path(dir: &Path, round: usize, decider: usize) -> PathBuf {
    dir.join(format!("ready-{round}-{decider}"))
}

fn course_query() -> Query {
    Query::new([QueryItem::names(["StudentSubscribed"]).with_tags([Tag::new("course", "c9")])])
}

fn subscribed(student: &str) -> NewEvent {
    NewEvent::new(
        "StudentSubscribed",
        1,
        serde_json::value::to_raw_value(&json!({ "course": "c9", "student": student }))
            .expect("JSON"),
        Metadata::default(),
    )
    .with_tags([Tag::new("course", "c9"), Tag::new("student", student)])
}

/// What a decider did in a round, as it reports it on its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// It took the seat.
    Taken,
    /// Its append failed with the typed conflict; deciding again, it saw the course full.
    RefusedAfterConflict,
}

/// The child's side: does nothing unless started by the test below as a child.
#[tokio::test]
async fn child_process() {
    let Ok(dir) = std::env::var(DIR) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let decider: usize = std::env::var(DECIDER)
        .expect("the decider's number")
        .parse()
        .expect("a number");
    for round in 0..ROUNDS {
        let store = SqliteStore::open(store_path(&dir, round))
            .await
            .expect("the child opens the round's store");
        let read = store.read_matching(&course_query(), 0).await.expect("read");
        std::fs::write(ready_path(&dir, round, decider), b"").expect("ready");
        wait_for_all(&dir, round);
        let outcome = decide(&store, decider, read.events.len(), read.read_to).await;
        println!("round {round} decider {decider}: {outcome:?}");
    }
}

/// Waits until every decider has read in `round`.
fn wait_for_all(dir: &Path, round: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(0..DECIDERS).all(|decider| ready_path(dir, round, decider).exists()) {
        assert!(Instant::now() < deadline, "the other deciders never read");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Takes the seat if the course has room, on the facts read up to `read_to`; after a
/// failed condition, decides again on a fresh read.
async fn decide(
    store: &SqliteStore,
    decider: usize,
    mut seats: usize,
    mut read_to: u64,
) -> Outcome {
    // Student s0 holds the first seat.
    let student = format!("s{}", decider + 1);
    let mut conflicted = false;
    loop {
        assert!(
            seats < CAPACITY || conflicted,
            "every decider read before anyone wrote, so each saw a free seat"
        );
        if seats >= CAPACITY {
            return Outcome::RefusedAfterConflict;
        }
        let condition = AppendCondition {
            query: course_query(),
            after: read_to,
        };
        match store
            .append_if(
                &format!("Subscription-{student}"),
                "Subscription",
                ExpectedVersion::NoStream,
                vec![subscribed(&student)],
                &condition,
            )
            .await
        {
            Ok(_) => return Outcome::Taken,
            Err(factum::store::StoreError::ConditionFailed { .. }) => {
                conflicted = true;
                let read = store.read_matching(&course_query(), 0).await.expect("read");
                (seats, read_to) = (read.events.len(), read.read_to);
            }
            Err(other) => panic!("decider {decider}: {other}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_processes_race_for_the_last_seat_a_hundred_times() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for round in 0..ROUNDS {
        let store = SqliteStore::open(store_path(dir.path(), round))
            .await
            .expect("open");
        store
            .append(
                "Subscription-s0",
                "Subscription",
                ExpectedVersion::NoStream,
                vec![subscribed("s0")],
            )
            .await
            .expect("the first seat");
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let children: Vec<_> = (0..DECIDERS)
        .map(|decider| {
            Command::new(&exe)
                .args([
                    "child_process",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(DIR, dir.path())
                .env(DECIDER, decider.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("a decider starts")
        })
        .collect();
    let mut outcomes = vec![Vec::new(); ROUNDS];
    for (decider, child) in children.into_iter().enumerate() {
        let output = child.wait_with_output().expect("a decider ends");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "decider {decider} failed: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        // The test harness prints its own words before the first report, on its line.
        for line in stdout
            .lines()
            .filter_map(|line| line.find("round ").map(|at| &line[at..]))
        {
            let round: usize = line["round ".len()..]
                .split(' ')
                .next()
                .and_then(|round| round.parse().ok())
                .expect("a round number");
            let outcome = if line.ends_with("Taken") {
                Outcome::Taken
            } else if line.ends_with("RefusedAfterConflict") {
                Outcome::RefusedAfterConflict
            } else {
                panic!("an unknown report: {line}")
            };
            outcomes[round].push(outcome);
        }
    }
    for (round, outcomes) in outcomes.iter().enumerate() {
        assert_eq!(
            outcomes.len(),
            DECIDERS,
            "round {round}: every decider reports"
        );
        let taken = outcomes
            .iter()
            .filter(|outcome| **outcome == Outcome::Taken);
        assert_eq!(
            taken.count(),
            1,
            "round {round}: exactly one takes the seat"
        );
        let store = SqliteStore::open(store_path(dir.path(), round))
            .await
            .expect("open");
        let seats = store.read_matching(&course_query(), 0).await.expect("read");
        assert_eq!(
            seats.events.len(),
            CAPACITY,
            "round {round}: the course is full, not over"
        );
        let verification = store.verify().await.expect("verify");
        assert!(verification.is_intact(), "round {round}: {verification}");
    }
}
