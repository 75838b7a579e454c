//! The care-task application on its SQLite store: commands by name from JSON, a retried
//! completion recorded once, refusals that write nothing, the policy's denial audited.

use chrono::{TimeZone, Utc};
use factum::application::ApplicationError;
use factum::context::{Actor, CommandContext};
use factum::store::{EventStore, SqliteStore};
use factum_example_care_tasks::{CARE_TEAM, COORDINATOR, TaskError, application};
use serde_json::json;

#[tokio::test]
async fn a_retried_completion_records_once_and_refusals_write_nothing() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(dir.path().join("events.sqlite3"))
        .await
        .expect("opens");
    let app = application(store.clone()).expect("the application builds");
    let at = Utc.with_ymd_and_hms(2025, 3, 10, 8, 0, 0).unwrap();
    let as_actor = |kind: &str, id: &str| CommandContext::new().actor(Actor::new(kind, id));

    let create = json!({
        "task_id": "T-1", "title": "Medication round", "care_recipient": "Mrs. Jansen",
        "due": at + chrono::TimeDelta::hours(2), "at": at,
    });
    let created = app
        .execute_json(
            "CreateTask",
            &create.to_string(),
            as_actor(COORDINATOR, "dana"),
        )
        .await
        .expect("a coordinator creates");
    assert!(created.created);
    app.execute_json(
        "AssignTask",
        &json!({ "task_id": "T-1", "member": "amira", "at": at }).to_string(),
        as_actor(COORDINATOR, "dana"),
    )
    .await
    .expect("and assigns");

    let completion =
        json!({ "task_id": "T-1", "completed_by": "amira", "at": at, "note": null }).to_string();
    let amira = as_actor(CARE_TEAM, "amira");
    let first = app
        .execute_json("CompleteTask", &completion, amira.clone())
        .await
        .expect("amira completes");
    let retried = app
        .execute_json("CompleteTask", &completion, amira)
        .await
        .expect("the retry is answered");
    assert_eq!(
        (&retried.event_ids, retried.version, retried.position),
        (&first.event_ids, 3, first.position)
    );
    let once_more = app
        .execute_json("CompleteTask", &completion, as_actor(CARE_TEAM, "amira"))
        .await
        .expect_err("a new completion (another command id) is refused by the task");
    assert_eq!(
        once_more.rejection::<TaskError>(),
        Some(&TaskError::AlreadyCompleted("amira".into()))
    );

    let domain_events = |events: Vec<factum::envelope::RecordedEvent>| {
        // The audit record of a denial has a stream of its own, outside the domain.
        events
            .into_iter()
            .filter(|event| event.stream_id == "Task-T-1")
            .collect::<Vec<_>>()
    };
    let before = domain_events(store.read_all(0, 100).await.expect("read")).len();
    let denied = app
        .execute_json("CompleteTask", &completion, as_actor(CARE_TEAM, "ben"))
        .await
        .expect_err("ben does not have the task");
    assert_eq!(
        denied.denial_reason(),
        Some("only the assigned member or the task's coordinator may complete it")
    );
    let bad_json = app
        .execute_json(
            "CompleteTask",
            &json!({ "task_id": "T-1", "completed_by": "amira", "at": "yesterday" }).to_string(),
            as_actor(CARE_TEAM, "amira"),
        )
        .await
        .expect_err("not a time");
    assert!(
        matches!(&bad_json, ApplicationError::InvalidCommand(error) if error.path == "at"),
        "{bad_json:?}"
    );
    let stranger = app
        .execute_json("CompleteTask", &completion, as_actor("family", "fay"))
        .await
        .expect_err("not a kind of actor the ward knows");
    assert!(matches!(
        stranger,
        ApplicationError::UnknownActorKind { .. }
    ));
    let events = domain_events(store.read_all(0, 100).await.expect("read"));
    assert_eq!(
        events.len(),
        before,
        "no refusal wrote an event of the domain"
    );
    let completions = events
        .iter()
        .filter(|event| event.name == "TaskCompleted")
        .count();
    assert_eq!(completions, 1, "the retried completion was recorded once");
    let audit = factum::authorization::denials(&store, "Task-T-1")
        .await
        .expect("the audit record reads");
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor(), Some(Actor::new(CARE_TEAM, "ben")));
}
