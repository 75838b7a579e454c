//! Commands recorded once (see [`crate::store::commands`]): the record is written with
//! the command's events, checked before the expected version, never written by a failed
//! command, pruned by age, and written once when many submissions of one id race.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;

use super::{IntoStore, all_events, stream_events, ticks};
use crate::envelope::NewEvent;
use crate::store::limits::Limit;
use crate::store::{
    CommandAppend, CommandOutcome, CommandRecord, EventStore, ExpectedVersion, StoreError,
};

/// A record of a new command id, recorded at `at`.
fn record(fingerprint: &str, at: DateTime<Utc>) -> CommandRecord {
    CommandRecord {
        command_id: Uuid::now_v7(),
        fingerprint: fingerprint.to_owned(),
        recorded_at: at,
    }
}

/// A fixed moment, whole microseconds.
fn moment(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 6, hour, 0, 0)
        .single()
        .expect("a valid time")
        + Duration::microseconds(123_456)
}

/// Submits `command` with `events` to `stream_id`, of the stream type "T".
async fn submit<S: EventStore>(
    store: &S,
    stream_id: &str,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    command: &CommandRecord,
) -> Result<CommandAppend, StoreError> {
    store
        .append_command(stream_id, "T", expected, events, command.clone())
        .await
}

/// The stored outcome of `command_id`, if recorded.
async fn recorded<S: EventStore>(store: &S, command_id: Uuid) -> Option<CommandOutcome> {
    store
        .command_outcome(command_id)
        .await
        .expect("command_outcome")
}

/// The outcome of a command that must have run now.
fn appended(answer: Result<CommandAppend, StoreError>, what: &str) -> CommandOutcome {
    match answer {
        Ok(CommandAppend::Appended(outcome)) => outcome,
        other => panic!("{what}: expected `Appended`, got {other:?}"),
    }
}

/// The stored outcome a repeated command must be answered with.
fn already_executed(answer: Result<CommandAppend, StoreError>, what: &str) -> CommandOutcome {
    match answer {
        Ok(CommandAppend::AlreadyExecuted(outcome)) => outcome,
        other => panic!("{what}: expected `AlreadyExecuted`, got {other:?}"),
    }
}

/// Every single-writer guarantee of [`EventStore::append_command`],
/// [`EventStore::command_outcome`] and [`EventStore::prune_commands`].
pub async fn commands_run_once<S: EventStore>(store: &S) {
    first_submission_appends_and_reads_back(store).await;
    repeats_return_the_original_outcome(store).await;
    empty_commands_are_recorded(store).await;
    failed_commands_leave_no_record(store).await;
    refused_records_write_nothing(store).await;
    pruning_removes_only_older_records(store).await;
}

/// A first submission is `Appended`; its events read back at the positions and with the
/// ids of its outcome, which `command_outcome` returns.
async fn first_submission_appends_and_reads_back<S: EventStore>(store: &S) {
    store
        .append("cmd-a", "T", ExpectedVersion::NoStream, ticks(0..2))
        .await
        .expect("an earlier append");
    let events = ticks(2..5);
    let ids: Vec<Uuid> = events.iter().map(|event| event.event_id).collect();
    let command = record("fingerprint-1", moment(1));
    let outcome = appended(
        submit(store, "cmd-a", ExpectedVersion::Exact(2), events, &command).await,
        "a first submission",
    );
    let stored = stream_events(store, "cmd-a").await;
    let written = &stored[2..];
    assert_eq!(
        written
            .iter()
            .map(|event| event.event_id)
            .collect::<Vec<_>>(),
        ids,
        "the command's events are stored after the stream's earlier ones"
    );
    let expected = CommandOutcome {
        command_id: command.command_id,
        fingerprint: command.fingerprint.clone(),
        stream_id: "cmd-a".to_owned(),
        stream_version: 5,
        first_position: Some(written[0].position),
        last_position: Some(written[2].position),
        event_ids: ids,
        recorded_at: command.recorded_at,
    };
    assert_eq!(
        outcome, expected,
        "the outcome describes the events written"
    );
    assert_eq!(
        recorded(store, command.command_id).await,
        Some(expected),
        "the record reads back equal"
    );
    assert_eq!(
        recorded(store, Uuid::now_v7()).await,
        None,
        "an unknown command id has no record"
    );
}

/// A repeated command id writes nothing and is answered with the stored outcome, even
/// with an expected version the stream has left, other events, another fingerprint.
async fn repeats_return_the_original_outcome<S: EventStore>(store: &S) {
    let command = record("fingerprint-2", moment(2));
    let original = appended(
        submit(
            store,
            "cmd-b",
            ExpectedVersion::NoStream,
            ticks(0..2),
            &command,
        )
        .await,
        "a first submission",
    );
    let log = all_events(store).await;
    let repeat = already_executed(
        submit(
            store,
            "cmd-b",
            ExpectedVersion::NoStream,
            ticks(0..2),
            &command,
        )
        .await,
        "the same command again, with its now stale expected version",
    );
    assert_eq!(repeat, original, "a repeat gets the original outcome");
    let other = CommandRecord {
        fingerprint: "another command".to_owned(),
        recorded_at: moment(3),
        ..command.clone()
    };
    let elsewhere = already_executed(
        store
            .append_command("cmd-c", "U", ExpectedVersion::Any, ticks(5..9), other)
            .await,
        "the same id with another command, stream and events",
    );
    assert_eq!(
        elsewhere, original,
        "the stored outcome, fingerprint included, answers any submission of the id"
    );
    assert_eq!(
        recorded(store, command.command_id).await,
        Some(original),
        "the record is unchanged"
    );
    let now = all_events(store).await;
    assert_eq!(
        now.iter().map(|event| event.event_id).collect::<Vec<_>>(),
        log.iter().map(|event| event.event_id).collect::<Vec<_>>(),
        "a repeat writes no event"
    );
    assert_eq!(
        store.stream_version("cmd-c").await.expect("stream_version"),
        None,
        "a repeat naming another stream creates nothing"
    );
}

/// A command that records no events is recorded once, at the stream's version, after the
/// expected version and the stream type are checked.
async fn empty_commands_are_recorded<S: EventStore>(store: &S) {
    let log = all_events(store).await.len();
    let on_nothing = record("nothing", moment(4));
    let outcome = appended(
        submit(
            store,
            "cmd-empty",
            ExpectedVersion::NoStream,
            Vec::new(),
            &on_nothing,
        )
        .await,
        "an empty command on a missing stream",
    );
    assert_eq!(
        (
            outcome.stream_version,
            outcome.first_position,
            outcome.last_position
        ),
        (0, None, None),
        "a missing stream stays at version 0, and no event has a position"
    );
    assert!(outcome.event_ids.is_empty());
    assert_eq!(
        store
            .stream_version("cmd-empty")
            .await
            .expect("stream_version"),
        None,
        "an empty command creates no stream"
    );
    assert_eq!(
        already_executed(
            submit(
                store,
                "cmd-empty",
                ExpectedVersion::NoStream,
                Vec::new(),
                &on_nothing
            )
            .await,
            "an empty command again",
        ),
        outcome
    );
    let on_stream = record("nothing either", moment(4));
    let outcome = appended(
        submit(
            store,
            "cmd-a",
            ExpectedVersion::Exact(5),
            Vec::new(),
            &on_stream,
        )
        .await,
        "an empty command on an existing stream",
    );
    assert_eq!((outcome.stream_version, outcome.last_position), (5, None));
    assert_eq!(recorded(store, on_stream.command_id).await, Some(outcome));
    let stale = submit(
        store,
        "cmd-a",
        ExpectedVersion::Exact(4),
        Vec::new(),
        &record("stale", moment(4)),
    )
    .await;
    assert!(
        matches!(
            stale,
            Err(StoreError::Conflict {
                actual: Some(5),
                ..
            })
        ),
        "an empty command checks the expected version, got {stale:?}"
    );
    let mistyped = store
        .append_command(
            "cmd-a",
            "U",
            ExpectedVersion::Any,
            Vec::new(),
            record("mistyped", moment(4)),
        )
        .await;
    assert!(
        matches!(mistyped, Err(StoreError::StreamTypeMismatch { .. })),
        "an empty command checks the stream type, got {mistyped:?}"
    );
    assert_eq!(
        all_events(store).await.len(),
        log,
        "empty commands write no events"
    );
}

/// A conflict, a stream type mismatch and a re-used event id write neither events nor a
/// record: the same command id then runs once the expected version is right.
async fn failed_commands_leave_no_record<S: EventStore>(store: &S) {
    let log = all_events(store).await.len();
    let command = record("retried", moment(5));
    let conflict = submit(
        store,
        "cmd-a",
        ExpectedVersion::Exact(1),
        ticks(0..1),
        &command,
    )
    .await;
    assert!(
        matches!(
            conflict,
            Err(StoreError::Conflict {
                actual: Some(5),
                ..
            })
        ),
        "a stale expected version is a conflict, got {conflict:?}"
    );
    let mismatch = store
        .append_command(
            "cmd-a",
            "U",
            ExpectedVersion::Any,
            ticks(0..1),
            command.clone(),
        )
        .await;
    assert!(
        matches!(mismatch, Err(StoreError::StreamTypeMismatch { .. })),
        "another stream type is refused, got {mismatch:?}"
    );
    let stored_id = stream_events(store, "cmd-b").await[0].clone();
    let mut reused = ticks(0..1);
    reused[0].event_id = stored_id.event_id;
    let duplicate = submit(store, "cmd-a", ExpectedVersion::Any, reused, &command).await;
    assert!(
        matches!(duplicate, Err(StoreError::DuplicateEventId { .. })),
        "an event id stored elsewhere is refused, got {duplicate:?}"
    );
    assert_eq!(
        recorded(store, command.command_id).await,
        None,
        "a failed command leaves no record"
    );
    assert_eq!(all_events(store).await.len(), log, "nor any event");
    let retried = appended(
        submit(
            store,
            "cmd-a",
            ExpectedVersion::Exact(5),
            ticks(0..1),
            &command,
        )
        .await,
        "the retry with the right version",
    );
    assert_eq!(retried.stream_version, 6);
    assert_eq!(recorded(store, command.command_id).await, Some(retried));
}

/// A fingerprint holding NUL and a `recorded_at` a store cannot keep are refused like any
/// other value outside the limits, before anything is written.
async fn refused_records_write_nothing<S: EventStore>(store: &S) {
    let log = all_events(store).await.len();
    let nul = record("a\0b", moment(6));
    let fine = DateTime::from_timestamp(1_700_000_000, 1).expect("a valid time");
    let too_fine = record("fine", fine);
    for (command, limit) in [
        (nul, Limit::NulCharacter),
        (
            too_fine,
            Limit::SubMicrosecond {
                timestamp: fine.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            },
        ),
    ] {
        for events in [ticks(0..1), Vec::new()] {
            let refused =
                submit(store, "cmd-refused", ExpectedVersion::Any, events, &command).await;
            match refused {
                Err(StoreError::ValueRefused {
                    limit: refused_limit,
                    ..
                }) => assert_eq!(refused_limit, limit),
                other => panic!("{command:?} must be refused with {limit:?}, got {other:?}"),
            }
            assert_eq!(recorded(store, command.command_id).await, None);
        }
    }
    assert_eq!(
        all_events(store).await.len(),
        log,
        "refused commands write nothing"
    );
}

/// `prune_commands` deletes exactly the records recorded before its bound (compared to
/// the microsecond the records keep), not their events; a pruned id runs again.
async fn pruning_removes_only_older_records<S: EventStore>(store: &S) {
    // The records written so far were recorded at hours 1 to 5 of `moment`.
    let old = record("old", moment(0));
    let new = record("new", moment(8));
    appended(
        submit(store, "cmd-prune", ExpectedVersion::Any, ticks(0..1), &old).await,
        "an old command",
    );
    appended(
        submit(store, "cmd-prune", ExpectedVersion::Any, ticks(1..2), &new).await,
        "a new command",
    );
    let log = all_events(store).await.len();
    let pruned = store
        .prune_commands(moment(0))
        .await
        .expect("prune_commands");
    assert_eq!(pruned, 0, "a record at the bound is not older than it");
    // One nanosecond past `moment(0)`: the record at `moment(0)` is older.
    let pruned = store
        .prune_commands(moment(0) + Duration::nanoseconds(1))
        .await
        .expect("prune_commands");
    assert_eq!(pruned, 1, "only the record before the bound goes");
    assert_eq!(recorded(store, old.command_id).await, None);
    let pruned = store
        .prune_commands(moment(8))
        .await
        .expect("prune_commands");
    assert_eq!(
        pruned, 5,
        "the five records of hours 1 to 5 go, hour 8 stays"
    );
    assert!(
        recorded(store, new.command_id).await.is_some(),
        "a record at the bound stays"
    );
    assert_eq!(
        all_events(store).await.len(),
        log,
        "pruning keeps the events"
    );
    appended(
        submit(store, "cmd-prune", ExpectedVersion::Any, ticks(2..3), &old).await,
        "a command whose record was pruned runs again",
    );
    assert_eq!(
        store
            .prune_commands(DateTime::<Utc>::MAX_UTC)
            .await
            .expect("prune_commands"),
        2,
        "a bound after every time the stores keep removes every record"
    );
}

/// `submissions` submissions of one command id race, each on its own handle from `open`
/// (a clone, another connection or pool, another open of the same file) and each with
/// its own event ids, as retried requests would: exactly one writes, every other one
/// gets `AlreadyExecuted` with the same outcome, and the store holds one set of events.
pub async fn concurrent_commands_run_once<S, F, Fut>(mut open: F, submissions: usize)
where
    S: EventStore + 'static,
    F: FnMut() -> Fut,
    Fut: IntoStore<S>,
{
    assert!(submissions >= 2, "a race needs two submissions");
    let mut handles = Vec::with_capacity(submissions);
    for _ in 0..submissions {
        handles.push(open().into_store().await);
    }
    let command = record("raced", moment(12));
    let start = Arc::new(tokio::sync::Barrier::new(submissions));
    let mut tasks = tokio::task::JoinSet::new();
    for (index, store) in handles.into_iter().enumerate() {
        let command = command.clone();
        let start = Arc::clone(&start);
        tasks.spawn(async move {
            let events = ticks(index as u64 * 10..index as u64 * 10 + 2);
            start.wait().await;
            let answer = submit(
                &store,
                "cmd-raced",
                ExpectedVersion::NoStream,
                events,
                &command,
            )
            .await;
            (answer, store)
        });
    }
    let mut answers = Vec::with_capacity(submissions);
    let mut store = None;
    while let Some(joined) = tasks.join_next().await {
        let (answer, handle) = joined.expect("a submission panicked");
        answers.push(
            answer
                .unwrap_or_else(|error| panic!("a racing submission must not fail, got: {error}")),
        );
        store = Some(handle);
    }
    let store = store.expect("at least one submission");
    let new = answers
        .iter()
        .filter(|answer| !answer.is_already_executed())
        .count();
    assert_eq!(new, 1, "exactly one submission appends: {answers:#?}");
    let outcome = answers[0].outcome().clone();
    assert!(
        answers.iter().all(|answer| *answer.outcome() == outcome),
        "every submission gets the same outcome: {answers:#?}"
    );
    assert_eq!(
        recorded(&store, command.command_id).await,
        Some(outcome.clone()),
        "the record is the outcome every submission got"
    );
    let stored = stream_events(&store, "cmd-raced").await;
    assert_eq!(
        stored
            .iter()
            .map(|event| event.event_id)
            .collect::<Vec<_>>(),
        outcome.event_ids,
        "the stream holds one set of events: the winner's"
    );
    assert_eq!(
        all_events(&store).await.len(),
        2,
        "nothing else was written"
    );
}
