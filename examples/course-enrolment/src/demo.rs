//! The course-enrolment job: courses offered, students subscribed and refused by either
//! rule, and two students racing for a course's last seat — one takes it, the other
//! decides again on the winner's event and is told why — all on one SQLite file.

use std::path::Path;
use std::sync::Arc;

use factum::decision::{Decide, Decided, Decisions};
use factum::prelude::*;
use factum::sqlite::{SqliteOpenError, SqliteStore};

use crate::{COURSE_LIMIT, ChangeCourseCapacity, DefineCourse, EnrolmentError, SubscribeStudent};

/// Why the job stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The store file could not be opened.
    #[error("opening the store")]
    Open(#[from] SqliteOpenError),
    /// The store failed.
    #[error("the store failed")]
    Store(#[from] StoreError),
    /// A command that the job expects to succeed failed.
    #[error("a command failed")]
    Command(#[from] RepositoryError<EnrolmentError>),
    /// A command that the job expects to be refused was accepted, or refused otherwise.
    #[error("{0}")]
    Unexpected(String),
    /// A racer's task failed.
    #[error("a racer's task failed")]
    Task(#[from] factum::tokio::task::JoinError),
}

/// Runs the job on the store file `db`, printing what happens. Each run offers courses
/// of its own (named after the run), so running it again adds to the history.
pub async fn run(db: &Path) -> Result<(), DemoError> {
    let store = SqliteStore::open(db).await?;
    let decisions = Arc::new(Decisions::new(store.clone()));
    let run = store.head().await?.map_or(1, |head| head.position + 1);
    // Each run has courses and students of its own.
    let course = |name: &str| format!("{name}-{run}");
    let student = |name: &str| format!("{name}-{run}");
    println!(
        "store {}: the courses of run {run}; a student takes at most {COURSE_LIMIT} courses",
        db.display()
    );

    for (name, title, capacity) in [
        ("rust", "Rust for the impatient", 2),
        ("sql", "SQL in depth", 10),
        ("dcb", "Consistency boundaries", 10),
        ("ml", "Machine learning", 10),
    ] {
        let command = DefineCourse {
            course: course(name),
            title: title.into(),
            capacity,
        };
        decisions.execute(command, CommandContext::new()).await?;
        println!("  offered {} ({title}), {capacity} seats", course(name));
    }

    // Ada takes three courses; the fourth is over her limit.
    for name in ["sql", "dcb", "ml"] {
        subscribe(&decisions, &course(name), &student("ada")).await?;
    }
    refused(&decisions, &course("rust"), &student("ada")).await?;
    // Grace takes a seat in rust; twice is refused.
    subscribe(&decisions, &course("rust"), &student("grace")).await?;
    refused(&decisions, &course("rust"), &student("grace")).await?;

    // The last seat of rust: Linus and Margaret send their subscriptions at once. One
    // appends first; the other finds the seat taken, on its read or, when both read one
    // free seat, when its append's condition fails and it decides again on the winner's
    // event; the course refuses it with the reason.
    let (linus, margaret) = (student("linus"), student("margaret"));
    println!(
        "  {linus} and {margaret} race for the last seat of {}:",
        course("rust")
    );
    let racer = |student: String| {
        let (decisions, course) = (Arc::clone(&decisions), course("rust"));
        factum::tokio::spawn(async move {
            let command = SubscribeStudent::new(&course, &student);
            let outcome = decisions.execute(command, CommandContext::new()).await;
            (student, outcome)
        })
    };
    let (linus, margaret) = (racer(linus), racer(margaret));
    let mut seated = Vec::new();
    for (student, outcome) in [linus.await?, margaret.await?] {
        match outcome {
            Ok(decided) => {
                println!(
                    "    {student} took it (decided {} time{}, position {})",
                    decided.attempts,
                    if decided.attempts == 1 { "" } else { "s" },
                    position(&decided)
                );
                seated.push(student);
            }
            Err(RepositoryError::Rejected(why)) => println!("    {student} was told: {why}"),
            Err(other) => return Err(other.into()),
        }
    }
    if seated.len() != 1 {
        return Err(DemoError::Unexpected(format!(
            "exactly one racer takes the last seat, but {} did",
            seated.len()
        )));
    }

    // More seats: the loser gets one now.
    let loser = if seated[0] == student("linus") {
        student("margaret")
    } else {
        student("linus")
    };
    decisions
        .execute(
            ChangeCourseCapacity {
                course: course("rust"),
                capacity: 3,
            },
            CommandContext::new(),
        )
        .await?;
    println!("  {} grows to 3 seats", course("rust"));
    subscribe(&decisions, &course("rust"), &loser).await?;

    // The log of this run, with the tags each event is found by.
    println!("  the log of run {run}:");
    for event in store.read_all(run - 1, 100).await? {
        let tags: Vec<&str> = event.tags.iter().map(|tag| tag.as_str()).collect();
        println!(
            "    {:>4} {:<22} {:<32} [{}]",
            event.position,
            event.name,
            event.stream_id,
            tags.join(", ")
        );
    }
    Ok(())
}

/// Subscribes `student` to `course`, which must succeed.
async fn subscribe(
    decisions: &Decisions<SqliteStore>,
    course: &str,
    student: &str,
) -> Result<(), DemoError> {
    let decided = decisions
        .execute(
            SubscribeStudent::new(course, student),
            CommandContext::new(),
        )
        .await?;
    println!(
        "  {student} subscribed to {course} (position {})",
        position(&decided)
    );
    Ok(())
}

/// Subscribes `student` to `course`, which the rules must refuse; prints why.
async fn refused(
    decisions: &Decisions<SqliteStore>,
    course: &str,
    student: &str,
) -> Result<(), DemoError> {
    match decisions
        .execute(
            SubscribeStudent::new(course, student),
            CommandContext::new(),
        )
        .await
    {
        Err(RepositoryError::Rejected(why)) => {
            println!("  {student} cannot take {course}: {why}");
            Ok(())
        }
        Ok(_) => Err(DemoError::Unexpected(format!(
            "{student}'s subscription to {course} was accepted, but the rules should refuse it"
        ))),
        Err(other) => Err(other.into()),
    }
}

/// The position of a decision's last event, for printing.
fn position(decided: &Decided<<SubscribeStudent as Decide>::Events>) -> String {
    decided
        .position
        .map_or_else(|| "-".to_owned(), |position| position.to_string())
}
