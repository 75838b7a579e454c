//! The contract of [`DecisionStore`]: reads by query, appends under a condition, the
//! check and the append one step, idempotency before the condition; a decision's
//! session ([`DecisionStore::run_decision`]) visiting, deciding and appending.

use std::sync::{Arc, Mutex};

use serde_json::json;
use uuid::Uuid;

use super::{IntoStore, payload};
use crate::envelope::{Metadata, NewEvent, RecordedEvent};
use crate::store::decision::{AppendCondition, DecisionStore, Query, QueryItem};
use crate::store::{CommandAppend, CommandRecord, CommandSession, ExpectedVersion, StoreError};
use crate::tag::Tag;

/// Runs every check of a decision store on fresh stores.
pub async fn run_decisions<S, F, Fut>(mut fresh_store: F)
where
    S: DecisionStore + 'static,
    F: FnMut() -> Fut,
    Fut: IntoStore<S>,
{
    queries_match_names_and_all_tags(&fresh_store().into_store().await).await;
    a_condition_fails_only_on_a_matching_event_after_its_position(
        &fresh_store().into_store().await,
    )
    .await;
    idempotency_comes_before_the_condition(&fresh_store().into_store().await).await;
    a_decision_session_reads_decides_and_appends(&fresh_store().into_store().await).await;
    last_seat_race(Arc::new(fresh_store().into_store().await), 16).await;
    last_seat_race_in_sessions(Arc::new(fresh_store().into_store().await), 16).await;
}

fn event(name: &str, tags: &[(&str, &str)]) -> NewEvent {
    NewEvent::new(name, 1, payload(&json!({})), Metadata::default())
        .with_tags(tags.iter().map(|(key, value)| Tag::new(key, value)))
}

fn subscribed(course: &str, student: &str) -> NewEvent {
    event(
        "StudentSubscribed",
        &[("course", course), ("student", student)],
    )
}

fn course(id: &str) -> Tag {
    Tag::new("course", id)
}

fn student(id: &str) -> Tag {
    Tag::new("student", id)
}

/// An item matches an event of one of its names carrying all its tags; a query matches
/// what any item matches; the read goes up to the log's end.
pub async fn queries_match_names_and_all_tags<S: DecisionStore>(store: &S) {
    let history = [
        ("Course-c1", event("CourseDefined", &[("course", "c1")])),
        ("Course-c2", event("CourseDefined", &[("course", "c2")])),
        ("Sub-1", subscribed("c1", "s1")),
        ("Sub-2", subscribed("c2", "s1")),
        ("Sub-3", subscribed("c1", "s2")),
        ("Note-1", event("Noted", &[])),
    ];
    for (stream, event) in history {
        store
            .append(stream, "Decision", ExpectedVersion::Any, vec![event])
            .await
            .expect("append");
    }
    let positions = |query: Query, after: u64| async move {
        let matched = store.read_matching(&query, after).await.expect("read");
        assert_eq!(matched.read_to, 6, "read to the log's end");
        matched
            .events
            .iter()
            .map(|event| event.position)
            .collect::<Vec<_>>()
    };
    let course_c1 =
        QueryItem::names(["CourseDefined", "StudentSubscribed"]).with_tags([course("c1")]);
    assert_eq!(
        positions(Query::new([course_c1.clone()]), 0).await,
        [1, 3, 5]
    );
    assert_eq!(positions(Query::new([course_c1.clone()]), 3).await, [5]);
    let s1_in_c1 = QueryItem::names(["StudentSubscribed"]).with_tags([course("c1"), student("s1")]);
    assert_eq!(
        positions(Query::new([s1_in_c1]), 0).await,
        [3],
        "all of an item's tags"
    );
    let s1 = QueryItem::names(["StudentSubscribed"]).with_tags([student("s1")]);
    assert_eq!(
        positions(Query::new([course_c1, s1]), 0).await,
        [1, 3, 4, 5],
        "any of a query's items, each event once"
    );
    assert_eq!(
        positions(
            Query::new([QueryItem::default().with_tags([course("c2")])]),
            0
        )
        .await,
        [2, 4],
        "an item without names matches any name"
    );
    assert_eq!(
        positions(Query::new([QueryItem::names(["Noted"])]), 0).await,
        [6]
    );
    assert!(
        positions(Query::default(), 0).await.is_empty(),
        "no items, no events"
    );
    let matched = store
        .read_matching(&Query::new([QueryItem::names(["StudentSubscribed"])]), 0)
        .await
        .expect("read");
    assert_eq!(
        matched.events[0].tags,
        [course("c1"), student("s1")],
        "the tags read back"
    );
}

/// The condition fails on an event its query matches stored after its position, and
/// only then: other events after it, or matching events before it, do not count.
pub async fn a_condition_fails_only_on_a_matching_event_after_its_position<S: DecisionStore>(
    store: &S,
) {
    store
        .append(
            "Sub-1",
            "Decision",
            ExpectedVersion::NoStream,
            vec![subscribed("c1", "s1")],
        )
        .await
        .expect("append");
    let query = Query::new([QueryItem::names(["StudentSubscribed"]).with_tags([course("c1")])]);
    let read = store.read_matching(&query, 0).await.expect("read");
    assert_eq!(read.read_to, 1);
    // Unrelated events after the read: no conflict, also from an event of another name
    // carrying the query's tag.
    store
        .append(
            "Sub-2",
            "Decision",
            ExpectedVersion::NoStream,
            vec![subscribed("c2", "s1")],
        )
        .await
        .expect("append");
    store
        .append(
            "Course-c1",
            "Decision",
            ExpectedVersion::NoStream,
            vec![event("CourseDescribed", &[("course", "c1")])],
        )
        .await
        .expect("append");
    let condition = AppendCondition {
        query: query.clone(),
        after: read.read_to,
    };
    store
        .append_if(
            "Sub-3",
            "Decision",
            ExpectedVersion::NoStream,
            vec![subscribed("c1", "s2")],
            &condition,
        )
        .await
        .expect("nothing matching since the read");
    // The same condition again: the event just appended matches it.
    let refused = store
        .append_if(
            "Sub-4",
            "Decision",
            ExpectedVersion::NoStream,
            vec![subscribed("c1", "s3")],
            &condition,
        )
        .await;
    match refused {
        Err(StoreError::ConditionFailed {
            stream_id,
            after,
            position,
        }) => {
            assert_eq!((stream_id.as_str(), after, position), ("Sub-4", 1, 4));
        }
        other => panic!("expected a failed condition, got {other:?}"),
    }
    assert_eq!(
        store.stream_version("Sub-4").await.expect("reads"),
        None,
        "nothing written"
    );
    // A command under a failing condition records nothing.
    let command = CommandRecord::new(Uuid::now_v7(), "subscribe s3");
    let refused = store
        .append_command_if(
            "Sub-4",
            "Decision",
            ExpectedVersion::NoStream,
            vec![subscribed("c1", "s3")],
            command.clone(),
            &condition,
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(StoreError::ConditionFailed { position: 4, .. })
        ),
        "{refused:?}"
    );
    assert!(
        store
            .command_outcome(command.command_id)
            .await
            .expect("reads")
            .is_none()
    );
    // Read again, decide again: it goes through.
    let read = store.read_matching(&query, 0).await.expect("read");
    let condition = AppendCondition {
        query,
        after: read.read_to,
    };
    let appended = store
        .append_command_if(
            "Sub-4",
            "Decision",
            ExpectedVersion::NoStream,
            vec![subscribed("c1", "s3")],
            command.clone(),
            &condition,
        )
        .await
        .expect("the re-made decision");
    assert!(
        matches!(appended, CommandAppend::Appended(_)),
        "{appended:?}"
    );
}

/// A batch stored already, or a command recorded already, is answered as applied even
/// when the condition would now fail: a retry is not a conflict.
pub async fn idempotency_comes_before_the_condition<S: DecisionStore>(store: &S) {
    let query = Query::new([
        QueryItem::names(["UserNameClaimed"]).with_tags([Tag::new("user_name", "ada")])
    ]);
    let condition = AppendCondition { query, after: 0 };
    let claim = event("UserNameClaimed", &[("user_name", "ada")]);
    let first = store
        .append_if(
            "User-1",
            "Decision",
            ExpectedVersion::NoStream,
            vec![claim.clone()],
            &condition,
        )
        .await
        .expect("the first claim");
    assert!(first.written);
    let again = store
        .append_if(
            "User-1",
            "Decision",
            ExpectedVersion::NoStream,
            vec![claim],
            &condition,
        )
        .await
        .expect("a retry is already applied");
    assert_eq!(
        (again.written, again.last_position),
        (false, first.last_position)
    );

    let command = CommandRecord::new(Uuid::now_v7(), "claim bob");
    let bob_query = Query::new([
        QueryItem::names(["UserNameClaimed"]).with_tags([Tag::new("user_name", "bob")])
    ]);
    let bob = AppendCondition {
        query: bob_query,
        after: first.last_position,
    };
    let claimed = store
        .append_command_if(
            "User-2",
            "Decision",
            ExpectedVersion::NoStream,
            vec![event("UserNameClaimed", &[("user_name", "bob")])],
            command.clone(),
            &bob,
        )
        .await
        .expect("bob's claim");
    let CommandAppend::Appended(outcome) = claimed else {
        panic!("{claimed:?}")
    };
    let retried = store
        .append_command_if(
            "User-2",
            "Decision",
            ExpectedVersion::NoStream,
            vec![event("UserNameClaimed", &[("user_name", "bob")])],
            command,
            &bob,
        )
        .await
        .expect("the retried command");
    assert_eq!(
        retried,
        CommandAppend::AlreadyExecuted(outcome),
        "answered from its record"
    );
}

/// `deciders` tasks race for the last seat of a course of capacity 2 (one seat taken):
/// each reads the course's subscriptions, and subscribes under the condition of its read
/// if a seat is left. Exactly one subscribes; every other gets the failed condition, and
/// on reading again sees the course full.
pub async fn last_seat_race<S: DecisionStore + 'static>(store: Arc<S>, deciders: usize) {
    let query = Query::new([QueryItem::names(["StudentSubscribed"]).with_tags([course("c9")])]);
    store
        .append(
            "Sub-c9-0",
            "Decision",
            ExpectedVersion::NoStream,
            vec![subscribed("c9", "s0")],
        )
        .await
        .expect("the first seat");
    let barrier = Arc::new(tokio::sync::Barrier::new(deciders));
    let mut racers = Vec::new();
    for racer in 1..=deciders {
        let (store, query, barrier) = (Arc::clone(&store), query.clone(), Arc::clone(&barrier));
        racers.push(tokio::spawn(async move {
            let read = store.read_matching(&query, 0).await.expect("read");
            barrier.wait().await;
            if read.events.len() >= 2 {
                return None;
            }
            let student = format!("s{racer}");
            let subscribed = subscribed("c9", &student);
            let condition = AppendCondition {
                query,
                after: read.read_to,
            };
            Some(
                store
                    .append_if(
                        &format!("Sub-c9-{racer}"),
                        "Decision",
                        ExpectedVersion::NoStream,
                        vec![subscribed],
                        &condition,
                    )
                    .await,
            )
        }));
    }
    let mut taken = 0;
    for racer in racers {
        match racer.await.expect("a racer") {
            Some(Ok(_)) => taken += 1,
            Some(Err(StoreError::ConditionFailed { .. })) | None => {}
            Some(Err(other)) => panic!("a racer failed: {other:?}"),
        }
    }
    assert_eq!(taken, 1, "exactly one racer takes the last seat");
    let seats = store
        .read_matching(&query, 0)
        .await
        .expect("read")
        .events
        .len();
    assert_eq!(seats, 2, "the course holds its capacity");
}

/// Why a decision session of these checks ended without writing.
#[derive(Debug)]
enum Ended {
    Store(StoreError),
    Refused(&'static str),
    Visit(u64),
}

impl From<StoreError> for Ended {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

/// A decision session on the course `c1`'s query: the events visited (name and position),
/// and the session's end, deciding `decided` (or refusing with `refusal`).
async fn decide_on_c1<S: DecisionStore>(
    store: &S,
    stream_id: &str,
    command_id: Uuid,
    refusal: Option<&'static str>,
) -> (Vec<(String, u64)>, Result<CommandSession<Ended>, Ended>) {
    let query = Query::new([
        QueryItem::names(["CourseDefined", "StudentSubscribed"]).with_tags([course("c1")])
    ]);
    let visited = Arc::new(Mutex::new(Vec::new()));
    let ended = store
        .run_decision(
            stream_id,
            "Decision",
            &query,
            CommandRecord::new(command_id, "fingerprint"),
            {
                let visited = Arc::clone(&visited);
                move |event: &RecordedEvent| {
                    lock(&visited).push((event.name.clone(), event.position));
                    Ok(())
                }
            },
            move || match refusal {
                Some(refusal) => Err(Ended::Refused(refusal)),
                None => Ok(vec![subscribed("c1", "s2")]),
            },
        )
        .await;
    let visited = std::mem::take(&mut *lock(&visited));
    (visited, ended)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A decision session visits the events its query matches, in log order, and appends
/// what it decides with the command's record; a repeat of the command is answered from
/// its record even when the decision would now refuse it; a refusal, or a failing visit,
/// writes nothing and records no command.
pub async fn a_decision_session_reads_decides_and_appends<S: DecisionStore>(store: &S) {
    let history = [
        ("Course-c1", event("CourseDefined", &[("course", "c1")])),
        ("Course-c2", event("CourseDefined", &[("course", "c2")])),
        ("Sub-1", subscribed("c1", "s1")),
    ];
    for (stream_id, event) in history {
        store
            .append(stream_id, "Decision", ExpectedVersion::Any, vec![event])
            .await
            .expect("the history");
    }
    let first = Uuid::now_v7();
    let (visited, ended) = decide_on_c1(store, "Sub-2", first, None).await;
    assert_eq!(
        visited,
        [
            ("CourseDefined".to_owned(), 1),
            ("StudentSubscribed".to_owned(), 3)
        ],
        "the course's events, in log order"
    );
    let outcome = match ended {
        Ok(CommandSession::Appended(outcome)) => outcome,
        other => panic!("the decision is appended: {other:?}"),
    };
    assert_eq!(
        (outcome.stream_version, outcome.last_position),
        (1, Some(4))
    );
    let stored = store.read_stream("Sub-2", 1, 10).await.expect("read back");
    assert_eq!(stored.len(), 1, "the decided event");
    assert_eq!(stored[0].tags, [course("c1"), student("s2")]);
    assert_eq!(outcome.event_ids, [stored[0].event_id]);

    // Its repeat: the seat it took would refuse it now; its record answers.
    let (_, ended) = decide_on_c1(store, "Sub-2", first, Some("the course is full")).await;
    match ended {
        Ok(CommandSession::AlreadyExecuted(again)) => {
            assert_eq!(again.event_ids, outcome.event_ids, "the first outcome");
        }
        other => panic!("a repeat is answered from its record: {other:?}"),
    }

    // A refusal and a failing visit write nothing, and record nothing.
    let refused = Uuid::now_v7();
    let (_, ended) = decide_on_c1(store, "Sub-3", refused, Some("the course is full")).await;
    assert!(
        matches!(
            ended,
            Ok(CommandSession::Refused(Ended::Refused(
                "the course is full"
            )))
        ),
        "{ended:?}"
    );
    let failing = Uuid::now_v7();
    let query = Query::new([QueryItem::names(["StudentSubscribed"]).with_tags([course("c1")])]);
    let ended: Result<CommandSession<Ended>, Ended> = store
        .run_decision(
            "Sub-3",
            "Decision",
            &query,
            CommandRecord::new(failing, "fingerprint"),
            |event: &RecordedEvent| Err(Ended::Visit(event.position)),
            || Ok(vec![subscribed("c1", "s3")]),
        )
        .await;
    assert!(matches!(ended, Err(Ended::Visit(3))), "{ended:?}");
    for command_id in [refused, failing] {
        assert!(
            store
                .command_outcome(command_id)
                .await
                .expect("looked up")
                .is_none(),
            "no record of a command that wrote nothing"
        );
    }
    assert_eq!(
        store.read_all(0, 10).await.expect("read").len(),
        4,
        "nothing written since the decision"
    );
}

/// `deciders` decision sessions race for the last seat of a course of capacity 2 (one
/// seat taken), each deciding again while its condition fails: exactly one takes the
/// seat, and every other, on its last decision, sees the course full.
pub async fn last_seat_race_in_sessions<S: DecisionStore + 'static>(
    store: Arc<S>,
    deciders: usize,
) {
    store
        .append(
            "Sub-c8-0",
            "Decision",
            ExpectedVersion::NoStream,
            vec![subscribed("c8", "s0")],
        )
        .await
        .expect("the first seat");
    let barrier = Arc::new(tokio::sync::Barrier::new(deciders));
    let mut racers = Vec::new();
    for racer in 1..=deciders {
        let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
        racers.push(tokio::spawn(async move {
            let query =
                Query::new([QueryItem::names(["StudentSubscribed"]).with_tags([course("c8")])]);
            let command_id = Uuid::now_v7();
            barrier.wait().await;
            loop {
                let seats = Arc::new(Mutex::new(0));
                let ended = store
                    .run_decision(
                        &format!("Sub-c8-{racer}"),
                        "Decision",
                        &query,
                        CommandRecord::new(command_id, "fingerprint"),
                        {
                            let seats = Arc::clone(&seats);
                            move |_: &RecordedEvent| {
                                *lock(&seats) += 1;
                                Ok(())
                            }
                        },
                        {
                            let seats = Arc::clone(&seats);
                            move || {
                                if *lock(&seats) >= 2 {
                                    return Err(Ended::Refused("the course is full"));
                                }
                                Ok(vec![subscribed("c8", &format!("s{racer}"))])
                            }
                        },
                    )
                    .await;
                match ended {
                    Err(Ended::Store(StoreError::ConditionFailed { .. })) => continue,
                    other => return other,
                }
            }
        }));
    }
    let mut taken = 0;
    for racer in racers {
        match racer.await.expect("a racer") {
            Ok(CommandSession::Appended(_)) => taken += 1,
            Ok(CommandSession::Refused(Ended::Refused(_))) => {}
            other => panic!("a racer ended otherwise: {other:?}"),
        }
    }
    assert_eq!(taken, 1, "exactly one racer takes the last seat");
}
