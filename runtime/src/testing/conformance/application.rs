//! The application's side: commands routed by name from JSON, through middleware, onto
//! the store — what it accepts reads back, what it refuses leaves the store untouched.

use serde_json::json;

use super::repository::{Note, Notebook, NotebookCommand};
use crate::application::{Application, ApplicationError, ContextRules, Tracing};
use crate::authorization::{Decision, denials};
use crate::context::{Actor, CommandContext, CommandIdError};
use crate::repository::{Repository, RepositoryError};
use crate::store::EventStore;

/// An [`Application`] over the store runs a command given by name and JSON and one given
/// as a value alike; a repeat of a command id is answered with the first outcome; bad
/// input — an unknown command, JSON that is not the command (named by its JSON path), a
/// nil command id, an unknown actor kind, a missing actor — is a typed error that writes
/// nothing; a denial by the aggregate's policy writes no event and is audited.
pub async fn application_routes_commands<S: EventStore + 'static>(store: S) {
    // The repository and the checks below share the store.
    let store = std::sync::Arc::new(store);
    let notebook = Repository::<Notebook, _>::new(store.clone()).with_policy(
        |ctx: &CommandContext, command: &NotebookCommand, _: &Notebook| {
            let NotebookCommand::Note(note) = command;
            Decision::allow_if(
                note.ratio >= 0.0 || ctx.actor_of("editor").is_some(),
                "only an editor may note a negative ratio",
            )
        },
    );
    let app = Application::builder(store.clone())
        .middleware(Tracing)
        .middleware(
            ContextRules::new()
                .actor_kinds(["editor", "reader"])
                .require_actor(),
        )
        .aggregate(notebook)
        .build()
        .expect("one aggregate builds");
    assert_eq!(app.command_names(), ["Note"]);
    let reader = || CommandContext::new().actor(Actor::new("reader", "rita"));
    let head =
        |store: std::sync::Arc<S>| async move { store.read_all(0, 100).await.expect("read").len() };

    let ctx = reader();
    let by_name = app
        .execute_json(
            "Note",
            r#"{"id":"n-9","value":{"a":[1]},"ratio":0.5}"#,
            ctx.clone(),
        )
        .await
        .expect("a note by name runs");
    assert_eq!(
        (by_name.stream_id.as_str(), by_name.version, by_name.created),
        ("ConformanceNotebook-n-9", 1, true)
    );
    let stored = store.read_all(0, 100).await.expect("read");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].event_id, by_name.event_ids[0]);
    assert_eq!(Some(stored[0].position), by_name.position);
    assert_eq!(
        stored[0].metadata.issued_by(),
        Some(Actor::new("reader", "rita"))
    );
    let typed = by_name
        .executed::<Notebook>()
        .expect("the typed answer is there");
    assert_eq!(typed.state.notes[0].value, json!({"a":[1]}));

    let repeat = app
        .execute(
            Note {
                id: "n-9".to_owned(),
                value: json!({"a":[1]}),
                ratio: 0.5,
            },
            ctx,
        )
        .await
        .expect("the repeat by value is answered");
    assert_eq!(
        (
            repeat.event_ids.clone(),
            repeat.version,
            repeat.position,
            repeat.recorded_at
        ),
        (
            by_name.event_ids.clone(),
            1,
            by_name.position,
            by_name.recorded_at
        ),
        "a repeat gets the first outcome"
    );
    assert_eq!(head(store.clone()).await, 1, "and records nothing");

    let refusals: Vec<(ApplicationError, &str)> = vec![
        (
            app.execute_json("Erase", "{}", reader())
                .await
                .expect_err("unknown"),
            "no aggregate accepts a command named `Erase` (known: Note)",
        ),
        (
            app.execute_json("Note", r#"{"id":"n-9","value":1,"ratio":"high"}"#, reader())
                .await
                .expect_err("not a number"),
            "command `Note`: at `ratio`: invalid type: string \"high\", expected f64 at line 1 column 36",
        ),
        (
            app.execute_json("Note", r#"{"id":"n-9","value":1,"ratio":1} x"#, reader())
                .await
                .expect_err("trailing characters"),
            "command `Note`: trailing characters at line 1 column 34",
        ),
        (
            app.execute_json(
                "Note",
                r#"{"id":"n-9","value":1,"ratio":1}"#,
                reader().command_id(uuid::Uuid::nil()),
            )
            .await
            .expect_err("nil id"),
            "the command has no id (a UUID, unique per command; the nil UUID is no id)",
        ),
        (
            app.execute_json(
                "Note",
                r#"{"id":"n-9","value":1,"ratio":1}"#,
                CommandContext::new().actor(Actor::new("auditor", "al")),
            )
            .await
            .expect_err("unknown kind"),
            "command `Note`: actor kind `auditor` is unknown (known: editor, reader)",
        ),
        (
            app.execute_json(
                "Note",
                r#"{"id":"n-9","value":1,"ratio":1}"#,
                CommandContext::new(),
            )
            .await
            .expect_err("no actor"),
            "command `Note` has no actor; every command must say who issued it",
        ),
        (
            app.execute_json("Note", r#"{"id":"n-9","value":1,"ratio":-1}"#, reader())
                .await
                .expect_err("denied"),
            "aggregate `ConformanceNotebook`: stream `ConformanceNotebook-n-9`: command `Note` denied to reader `rita`: only an editor may note a negative ratio",
        ),
    ];
    for (error, expected) in &refusals {
        assert_eq!(crate::error::Report(error).to_string(), *expected);
    }
    assert!(matches!(
        refusals[3].0,
        ApplicationError::CommandId(CommandIdError::Missing)
    ));
    assert!(matches!(
        &refusals[6].0,
        ApplicationError::Repository { source, .. } if matches!(**source, RepositoryError::Denied { .. })
    ));
    assert_eq!(
        refusals[6].0.denial_reason(),
        Some("only an editor may note a negative ratio")
    );
    assert_eq!(
        store
            .stream_version("ConformanceNotebook-n-9")
            .await
            .expect("read"),
        Some(1),
        "no refusal wrote an event of the domain"
    );
    let audit = denials(&store, "ConformanceNotebook-n-9")
        .await
        .expect("the audit record reads");
    assert_eq!(audit.len(), 1, "the denial, and only it, is audited");
    assert_eq!(audit[0].actor(), Some(Actor::new("reader", "rita")));

    let editor = CommandContext::new().actor(Actor::new("editor", "eve"));
    let allowed = app
        .execute_json("Note", r#"{"id":"n-9","value":1,"ratio":-1}"#, editor)
        .await
        .expect("an editor may");
    assert_eq!((allowed.version, allowed.created), (2, false));
    let loaded = app
        .repository::<Notebook>()
        .expect("the notebook is part of the application")
        .load("n-9")
        .await
        .expect("loads");
    assert_eq!(loaded.version, 2);
}
