//! The repository's side of "what is accepted reads back": a command whose events a
//! later load could not decode is refused before anything is written.

use serde_json::json;

use super::nested_array;
use crate::context::CommandContext;
use crate::prelude::*;
use crate::repository::{Repository, RepositoryError};
use crate::store::limits::{self, Limit};

/// Something noted about a record: any JSON, and a ratio.
#[crate::event(name = "ConformanceNoted", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub struct Noted {
    /// Any JSON value.
    pub value: serde_json::Value,
    /// A number.
    pub ratio: f64,
}

/// The events of a [`Notebook`].
#[derive(crate::Events, Debug, Clone, PartialEq)]
pub enum NotebookEvent {
    /// A note was taken.
    Noted(Noted),
}

/// Takes a note.
#[crate::command]
pub struct Note {
    /// The notebook.
    #[aggregate_id]
    pub id: String,
    /// What to note.
    pub value: serde_json::Value,
    /// A number to note.
    pub ratio: f64,
}

/// The commands of a [`Notebook`].
#[derive(crate::Commands)]
pub enum NotebookCommand {
    /// Take a note.
    Note(Note),
}

/// A notebook never refuses a note.
#[derive(Debug, thiserror::Error)]
#[error("never")]
pub struct Never;

/// Notes, in order.
#[derive(Debug, Default, PartialEq)]
pub struct Notebook {
    /// Every note taken.
    pub notes: Vec<Noted>,
}

#[crate::aggregate(name = "ConformanceNotebook", events = NotebookEvent, commands = NotebookCommand, error = Never)]
impl Notebook {
    #[handle]
    fn note(&self, command: Note) -> Result<Noted, Never> {
        Ok(Noted {
            value: command.value,
            ratio: command.ratio,
        })
    }

    #[apply]
    fn noted(&mut self, event: &Noted) {
        self.notes.push(event.clone());
    }
}

/// A repository refuses, before anything is written, a command whose events would not
/// load again — a value nested deeper than serde_json reads, a float that is not finite
/// (serde_json writes it as `null`) — with [`RepositoryError::Unreadable`]; events or
/// metadata beyond the store's [limits](crate::store::limits) are refused by the store
/// ([`StoreError::ValueRefused`]). The aggregate stays loadable and takes the next good
/// command.
pub async fn repository_reads_back_what_it_executes<S: EventStore>(store: S) {
    let notebook = Repository::<Notebook, _>::new(store);
    let note = |value: serde_json::Value, ratio: f64| Note {
        id: "n-1".to_owned(),
        value,
        ratio,
    };

    // serde_json reads 128 levels: the payload object and 127 of the value are too many.
    let deep = notebook.execute(note(nested_array(127), 1.0)).await;
    assert!(
        matches!(&deep, Err(RepositoryError::Unreadable { stream_id, .. }) if stream_id == "ConformanceNotebook-n-1"),
        "a value nested 127 deep would not decode: Unreadable, got {deep:?}"
    );
    for ratio in [f64::NAN, f64::INFINITY] {
        let refused = notebook.execute(note(json!(1), ratio)).await;
        assert!(
            matches!(refused, Err(RepositoryError::Unreadable { .. })),
            "{ratio} is written as null and would not decode: Unreadable, got {refused:?}"
        );
    }
    // Decodable, but beyond the store's limit.
    let too_deep = notebook
        .execute(note(nested_array(limits::MAX_JSON_DEPTH), 1.0))
        .await;
    assert!(
        matches!(
            &too_deep,
            Err(RepositoryError::Store(StoreError::ValueRefused { field, limit: Limit::JsonDepth { .. }, .. }))
                if field.ends_with("payload")
        ),
        "a payload beyond the store's depth limit is refused by the store, got {too_deep:?}"
    );
    let metadata = CommandContext::new().extra("trace", nested_array(127));
    let deep_metadata = notebook.execute_with(note(json!(1), 1.0), metadata).await;
    assert!(
        matches!(
            &deep_metadata,
            Err(RepositoryError::Store(StoreError::ValueRefused { field, .. }))
                if field.contains("metadata.extra")
        ),
        "metadata nested 127 deep is refused by the store, got {deep_metadata:?}"
    );
    assert_eq!(
        notebook
            .load("n-1")
            .await
            .expect("the notebook loads")
            .version,
        0,
        "refused commands write nothing"
    );

    let good = note(nested_array(limits::MAX_JSON_DEPTH - 1), 0.5);
    let executed = notebook
        .execute_with(
            good,
            CommandContext::new().extra("trace", nested_array(limits::MAX_EXTRA_DEPTH)),
        )
        .await
        .expect("a note within every limit is executed");
    assert_eq!(executed.version, 1);
    let loaded = notebook.load("n-1").await.expect("the notebook loads");
    assert_eq!(loaded.version, 1);
    assert_eq!(
        loaded.state, executed.state,
        "what was executed loads back equal"
    );
}

/// A repository with a policy authorizes every command before the aggregate decides: a
/// denied command writes no event of the domain, fails with [`RepositoryError::Denied`]
/// naming the stream, command, actor and reason, and is kept in the audit record (who,
/// what, when, why); an allowed one runs as without a policy. The policy sees the state:
/// here only an `editor` may note a negative ratio, and only in a notebook with notes.
pub async fn repository_authorizes_before_deciding<S: EventStore>(store: S) {
    use crate::authorization::{Decision, denials};
    use crate::context::Actor;

    let notebook = Repository::<Notebook, _>::new(store).with_policy(
        |ctx: &CommandContext, command: &NotebookCommand, state: &Notebook| {
            let NotebookCommand::Note(note) = command;
            let Some(actor) = &ctx.actor else {
                return Decision::deny("a note needs an actor");
            };
            if note.ratio < 0.0 {
                return Decision::allow_if(
                    actor.is("editor") && !state.notes.is_empty(),
                    "only an editor may note a negative ratio, and not first",
                );
            }
            Decision::Allow
        },
    );
    let note = |ratio: f64| Note {
        id: "n-2".to_owned(),
        value: json!("x"),
        ratio,
    };
    let issued = chrono::DateTime::parse_from_rfc3339("2026-05-06T07:08:09.123456Z")
        .expect("a time")
        .to_utc();
    let mallory = CommandContext::new()
        .actor(Actor::new("reader", "mallory"))
        .tenant("t-1")
        .at(issued);

    let anonymous = notebook.execute(note(1.0)).await;
    assert!(
        matches!(&anonymous, Err(RepositoryError::Denied { actor: None, reason, .. }) if reason == "a note needs an actor"),
        "no actor: denied, got {anonymous:?}"
    );
    let denied = notebook
        .execute_with(note(-1.0), mallory.clone())
        .await
        .expect_err("a reader may not note a negative ratio");
    assert_eq!(
        crate::error::Report(&denied).to_string(),
        "stream `ConformanceNotebook-n-2`: command `Note` denied to reader `mallory`: only an editor may note a negative ratio, and not first"
    );
    let stream_id = "ConformanceNotebook-n-2";
    assert_eq!(
        notebook
            .store()
            .stream_version(stream_id)
            .await
            .expect("read"),
        None,
        "denied commands write no event of the domain"
    );

    // One context per command: a command id names one command.
    let editor = || CommandContext::new().actor(Actor::new("editor", "eve"));
    let first = notebook.execute_with(note(-1.0), editor()).await;
    assert!(
        matches!(first, Err(RepositoryError::Denied { .. })),
        "the policy sees the state: not as the first note, got {first:?}"
    );
    notebook
        .execute_with(note(1.0), editor())
        .await
        .expect("an editor's positive note is allowed");
    let executed = notebook
        .execute_with(note(-1.0), editor())
        .await
        .expect("and then a negative one");
    assert_eq!(executed.version, 2);

    let audit = denials(notebook.store(), stream_id)
        .await
        .expect("the audit record reads");
    let who: Vec<_> = audit.iter().map(|denial| denial.actor()).collect();
    assert_eq!(
        who,
        [
            None,
            Some(Actor::new("reader", "mallory")),
            Some(Actor::new("editor", "eve"))
        ]
    );
    let kept = &audit[1];
    assert_eq!(
        (
            kept.command_id,
            kept.command.as_str(),
            kept.stream_id.as_str(),
            kept.stream_version,
            kept.tenant.as_deref(),
            kept.issued_at,
            kept.reason.as_str()
        ),
        (
            mallory.command_id,
            "Note",
            stream_id,
            0,
            Some("t-1"),
            issued,
            "only an editor may note a negative ratio, and not first"
        )
    );
    assert_eq!(
        notebook
            .load("n-2")
            .await
            .expect("the notebook loads")
            .state
            .notes
            .len(),
        2,
        "the audit stream is no part of the aggregate"
    );
}

/// A command runs once per command id: a repeat (a retried request, a redelivered
/// message) is answered with the original outcome — the same stream version, position,
/// event ids, events and state — without deciding again, even after the stream moved on;
/// the same id with another command is [`RepositoryError::CommandIdReused`] and writes
/// nothing; a pruned record lets the command run again.
pub async fn repository_runs_a_command_once<S: EventStore>(store: S) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::authorization::Decision;

    let decisions = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&decisions);
    // The policy runs right before the handler: it counts the decisions taken.
    let notebook = Repository::<Notebook, _>::new(store).with_policy(
        move |_: &CommandContext, _: &NotebookCommand, _: &Notebook| {
            counted.fetch_add(1, Ordering::SeqCst);
            Decision::Allow
        },
    );
    let note = |ratio: f64| Note {
        id: "n-3".to_owned(),
        value: json!({ "ratio": ratio }),
        ratio,
    };
    let ctx = CommandContext::new();
    let first = notebook
        .execute_with(note(0.5), ctx.clone())
        .await
        .expect("the command runs");
    let again = notebook
        .execute_with(note(0.5), ctx.clone())
        .await
        .expect("the repeat is answered");
    assert_eq!(again, first, "the repeat gets the original answer");
    assert_eq!(decisions.load(Ordering::SeqCst), 1, "decided once");
    assert_eq!(first.event_ids.len(), 1);

    let other = notebook
        .execute(note(0.25))
        .await
        .expect("another command runs");
    assert_eq!(other.version, 2);
    let late = notebook
        .execute_with(note(0.5), ctx.clone())
        .await
        .expect("a late repeat is answered");
    assert_eq!(
        late, first,
        "the original answer, though the stream moved on"
    );
    let stored = notebook
        .store()
        .read_all(0, 100)
        .await
        .expect("read the store");
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].event_id, first.event_ids[0]);

    let reused = notebook.execute_with(note(0.75), ctx.clone()).await;
    assert!(
        matches!(&reused, Err(RepositoryError::CommandIdReused { command_id, recorded_stream_id })
            if *command_id == ctx.command_id && recorded_stream_id == "ConformanceNotebook-n-3"),
        "another command under a used id: CommandIdReused, got {reused:?}"
    );
    assert_eq!(
        notebook.store().read_all(0, 100).await.expect("read").len(),
        2,
        "a reused id writes nothing"
    );
    assert_eq!(decisions.load(Ordering::SeqCst), 2, "and decides nothing");

    // Past the retention, the command runs again.
    assert_eq!(
        notebook
            .prune_commands(std::time::Duration::ZERO)
            .await
            .expect("prune"),
        2
    );
    let after_pruning = notebook
        .execute_with(note(0.5), ctx)
        .await
        .expect("runs again");
    assert_eq!(after_pruning.version, 3);
}
