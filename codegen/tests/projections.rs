//! `factum projections` and `factum parked list|drop` run as a binary on the care-task
//! service's store and read models: each projection's state, checkpoint, lag and
//! dead letters; an event its handler cannot read, parked, listed, then dropped after a
//! dry run and a refused confirmation; and the same on PostgreSQL read models.

mod bin_common;

use bin_common::{factum, text};

use std::io::Write;
use std::process::{Command, Stdio};

use factum::context::{Actor, CommandContext};
use factum::prelude::*;
use factum::projection::sqlite::SqliteReadModel;
use factum::projection::{OnPoison, ProjectionRunner, Retry};
use factum::sqlite::SqliteStore;
use factum_example_care_tasks::projections::coordinator_task_list::CoordinatorTaskList;
use factum_example_care_tasks::projections::daily_analytics::DailyAnalytics;
use factum_example_care_tasks::projections::member_task_history::MemberTaskHistory;
use factum_example_care_tasks::{COORDINATOR, CreateTask, application};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sees_each_projection_and_drops_a_parked_event() {
    let dir = tempfile::tempdir().expect("a directory");
    let db = dir.path().join("tasks.sqlite3");
    let read_models_dir = dir.path().join("read-models");
    let store = SqliteStore::open(&db).await.expect("open");
    let app = application(store.clone()).expect("the application builds");
    for id in ["T-1", "T-2"] {
        let now = factum::chrono::Utc::now();
        app.execute(
            CreateTask {
                task_id: id.into(),
                title: format!("Task {id}"),
                care_recipient: "Mrs. Jansen".into(),
                due: now + chrono::TimeDelta::hours(1),
                at: now,
            },
            CommandContext::new().actor(Actor::new(COORDINATOR, "dana")),
        )
        .await
        .expect("create");
    }
    // A TaskCreated no handler can read, written past the application (as an old bug
    // or a hand edit would have).
    let unreadable = NewEvent::new(
        "TaskCreated",
        1,
        serde_json::value::to_raw_value(&serde_json::json!({ "task_id": 7 })).unwrap(),
        Metadata::default(),
    );
    let bad = store
        .append(
            "Task-T-X",
            "Task",
            ExpectedVersion::NoStream,
            vec![unreadable],
        )
        .await
        .expect("append")
        .last_position;

    let read_models = SqliteReadModel::open(&read_models_dir).await.expect("open");
    let runner = ProjectionRunner::new(store.clone())
        .retry(Retry::immediately(1))
        .on_poison(OnPoison::Park);
    let mut list = runner.projector(CoordinatorTaskList, read_models.clone());
    runner.catch_up(&mut list).await.expect("catch up");
    let mut history = runner.projector(MemberTaskHistory, read_models.clone());
    runner.catch_up(&mut history).await.expect("catch up");
    let mut analytics = runner.projector(DailyAnalytics, read_models.clone());
    runner.catch_up(&mut analytics).await.expect("catch up");

    let db_arg = db.to_str().expect("UTF-8");
    let models_arg = read_models_dir.to_str().expect("UTF-8");
    let status = |json: bool| {
        let mut arguments = vec!["projections", "--db", db_arg, "--read-models", models_arg];
        if json {
            arguments.push("--json");
        }
        let out = factum(&arguments);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let table = status(false);
    let header: Vec<&str> = table
        .lines()
        .next()
        .expect("a header")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "PROJECTION",
            "VERSION",
            "STATE",
            "CHECKPOINT",
            "HEAD",
            "LAG",
            "LATE",
            "PARKED"
        ]
    );
    let listed: Value = serde_json::from_str(&status(true)).expect("JSON");
    let projections = listed["projections"].as_array().expect("projections");
    let names: Vec<&str> = projections
        .iter()
        .map(|row| row["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "coordinator_task_list",
            "daily_analytics",
            "member_task_history"
        ]
    );
    for row in projections {
        assert_eq!(row["state"], "active", "{row}");
        assert_eq!(row["checkpoint"], bad, "{row}");
        assert_eq!(row["head"], bad, "{row}");
        assert_eq!(row["lag_events"], 0, "{row}");
    }
    let coordinator = &projections[0];
    assert_eq!(coordinator["parked"], 1, "{coordinator}");

    // Its dead letters.
    let parked = |json: bool| {
        let mut arguments = vec![
            "parked",
            "list",
            "--read-models",
            models_arg,
            "--projection",
            "coordinator_task_list",
        ];
        if json {
            arguments.push("--json");
        }
        let out = factum(&arguments);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let letters: Value = serde_json::from_str(&parked(true)).expect("JSON");
    assert_eq!(letters[0]["event"]["position"], bad);
    assert_eq!(letters[0]["event"]["stream_id"], "Task-T-X");
    assert!(
        parked(false)
            .lines()
            .nth(1)
            .expect("a row")
            .contains("Task-T-X")
    );

    // Dropping it: a dry run, a refusal, then for real.
    let position = bad.to_string();
    let drop_arguments = [
        "parked",
        "drop",
        "--read-models",
        models_arg,
        "--projection",
        "coordinator_task_list",
        "--position",
        &position,
    ];
    let dry = factum(&[&drop_arguments[..], &["--dry-run"]].concat());
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert!(
        text(&dry.stdout).contains("would drop"),
        "{}",
        text(&dry.stdout)
    );
    assert!(text(&dry.stdout).contains("dry run: nothing dropped"));
    let mut asked = Command::new(env!("CARGO_BIN_EXE_factum"))
        .args(drop_arguments)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run factum");
    asked
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"n\n")
        .expect("answer");
    let refused = asked.wait_with_output().expect("it ends");
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused.stdout).contains("not confirmed: nothing dropped"));
    assert!(parked(false).contains("Task-T-X"), "still parked");

    let dropped = factum(&[&drop_arguments[..], &["--yes"]].concat());
    assert!(dropped.status.success(), "{}", text(&dropped.stderr));
    assert!(text(&dropped.stdout).ends_with("dropped\n"));
    let letters: Value = serde_json::from_str(&parked(true)).expect("JSON");
    assert_eq!(letters, serde_json::json!([]));
    let listed: Value = serde_json::from_str(&status(true)).expect("JSON");
    assert_eq!(listed["projections"][0]["parked"], 0);
    assert_eq!(
        listed["projections"][0]["checkpoint"], bad,
        "the checkpoint stays"
    );

    let unknown = factum(&[
        "parked",
        "list",
        "--read-models",
        models_arg,
        "--projection",
        "no_such_projection",
    ]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown.stderr).contains("no_such_projection has no active version"));
}

/// `factum trace`: a task created by dana, its assignment issued in reaction to the
/// creation (as a process manager would), and which projection applied each event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_is_traced_from_its_command_to_the_projections() {
    use factum_example_care_tasks::AssignTask;
    let dir = tempfile::tempdir().expect("a directory");
    let db = dir.path().join("tasks.sqlite3");
    let read_models_dir = dir.path().join("read-models");
    let store = SqliteStore::open(&db).await.expect("open");
    let app = application(store.clone()).expect("the application builds");
    let now = factum::chrono::Utc::now();
    let dana = || CommandContext::new().actor(Actor::new(COORDINATOR, "dana"));
    let created = app
        .execute(
            CreateTask {
                task_id: "T-1".into(),
                title: "Medication round".into(),
                care_recipient: "Mrs. Jansen".into(),
                due: now + chrono::TimeDelta::hours(1),
                at: now,
            },
            dana(),
        )
        .await
        .expect("create");
    // Another transaction, which the trace leaves out.
    app.execute(
        CreateTask {
            task_id: "T-2".into(),
            title: "Lunch".into(),
            care_recipient: "Mr. Smit".into(),
            due: now + chrono::TimeDelta::hours(1),
            at: now,
        },
        dana(),
    )
    .await
    .expect("create");
    let creation = store
        .read_all(created.position.expect("appended") - 1, 1)
        .await
        .expect("read")
        .remove(0);
    let correlation = creation.metadata.correlation_id.expect("a correlation id");
    let mut reaction = CommandContext::caused_by(&creation);
    reaction.actor = Some(Actor::new(COORDINATOR, "dana"));
    app.execute(
        AssignTask {
            task_id: "T-1".into(),
            member: "amira".into(),
            at: now,
        },
        reaction,
    )
    .await
    .expect("assign");
    let read_models = SqliteReadModel::open(&read_models_dir).await.expect("open");
    let runner = ProjectionRunner::new(store.clone());
    let mut list = runner.projector(CoordinatorTaskList, read_models.clone());
    runner.catch_up(&mut list).await.expect("catch up");

    let db_arg = db.to_str().expect("UTF-8");
    let models_arg = read_models_dir.to_str().expect("UTF-8");
    let correlation_arg = correlation.to_string();
    let traced = factum(&[
        "trace",
        "--db",
        db_arg,
        "--read-models",
        models_arg,
        &correlation_arg,
    ]);
    assert!(traced.status.success(), "{}", text(&traced.stderr));
    let tree = text(&traced.stdout);
    let lines: Vec<&str> = tree.lines().collect();
    assert_eq!(
        lines[0],
        format!("correlation {correlation}: 2 command(s), 2 event(s)")
    );
    assert!(
        lines[1].starts_with("command ") && lines[1].ends_with(" by care_coordinator:dana"),
        "{tree}"
    );
    assert!(
        lines[2].starts_with("  event 1 TaskCreated v1 in Task-T-1 v1 -> coordinator_task_list"),
        "{tree}"
    );
    assert!(
        lines[3].starts_with("    command "),
        "the reaction, under the event that caused it: {tree}"
    );
    assert!(
        lines[4]
            .starts_with("      event 3 TaskAssigned v1 in Task-T-1 v2 -> coordinator_task_list"),
        "{tree}"
    );
    assert_eq!(lines.len(), 5, "{tree}");

    let as_json = factum(&["trace", "--db", db_arg, &correlation_arg, "--json"]);
    let document: Value = serde_json::from_slice(&as_json.stdout).expect("JSON");
    let root = &document["commands"][0];
    assert_eq!(root["actor"], "dana");
    assert_eq!(root["events"][0]["name"], "TaskCreated");
    assert_eq!(
        root["events"][0]["caused"][0]["events"][0]["name"],
        "TaskAssigned"
    );
    assert_eq!(
        root["events"][0]["applied_by"],
        serde_json::json!([]),
        "no read models given"
    );

    let unknown = factum(&[
        "trace",
        "--db",
        db_arg,
        &factum::uuid::Uuid::now_v7().to_string(),
    ]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown.stderr).contains("no event of correlation"));
}

/// A projection whose read model is in PostgreSQL: one title per note; a note without a
/// title cannot be applied.
struct Titles;

impl factum::projection::Projection for Titles {
    const NAME: &'static str = "titles";
    const VERSION: u32 = 1;
    const EVENTS: &'static [&'static str] = &["Noted"];
    type Tx = factum::projection::postgres::PostgresTx;

    async fn setup(&mut self, tx: &mut Self::Tx) -> Result<(), ProjectionError> {
        tx.batch_execute("CREATE TABLE titles (title TEXT NOT NULL)")
            .await?;
        Ok(())
    }

    async fn handle(
        &mut self,
        event: &RecordedEvent,
        tx: &mut Self::Tx,
    ) -> Result<(), ProjectionError> {
        let payload: Value = serde_json::from_str(event.payload.get())?;
        let title = payload["title"]
            .as_str()
            .ok_or_else(|| ProjectionError::msg("a note without a title"))?;
        tx.execute("INSERT INTO titles (title) VALUES ($1)", &[&title])
            .await?;
        Ok(())
    }
}

/// `factum projections` and `parked list|drop` on PostgreSQL: the store and the read
/// models given by their URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projection_commands_work_on_postgres_read_models_too() {
    let url = bin_common::fresh_postgres_database("factum_cli_projections").await;
    let store = factum::store::PostgresStore::connect(url.as_str())
        .await
        .expect("connects");
    let note = |payload: Value| {
        NewEvent::new(
            "Noted",
            1,
            serde_json::value::to_raw_value(&payload).expect("JSON"),
            Metadata::default(),
        )
    };
    store
        .append(
            "Note-1",
            "Note",
            ExpectedVersion::NoStream,
            vec![
                note(serde_json::json!({ "title": "Round" })),
                note(serde_json::json!({ "n": 2 })),
            ],
        )
        .await
        .expect("appends");
    let head = store.head().await.expect("reads").expect("events").position;
    let read_models = factum::projection::postgres::PostgresReadModel::connect(&url)
        .await
        .expect("connects");
    let runner = ProjectionRunner::new(store.clone())
        .retry(Retry::immediately(1))
        .on_poison(OnPoison::Park);
    let mut titles = runner.projector(Titles, read_models);
    runner.catch_up(&mut titles).await.expect("catches up");

    let listed = factum(&["projections", "--db", &url, "--read-models", &url, "--json"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let listed: Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    let row = &listed["projections"][0];
    assert_eq!(
        (
            row["name"].as_str(),
            row["state"].as_str(),
            row["checkpoint"].as_u64(),
            row["head"].as_u64(),
            row["parked"].as_u64()
        ),
        (
            Some("titles"),
            Some("active"),
            Some(head),
            Some(head),
            Some(1)
        ),
        "{listed}"
    );

    let parked = factum(&[
        "parked",
        "list",
        "--read-models",
        &url,
        "--projection",
        "titles",
        "--json",
    ]);
    assert!(parked.status.success(), "{}", text(&parked.stderr));
    let parked: Value = serde_json::from_slice(&parked.stdout).expect("JSON");
    assert_eq!(parked[0]["event"]["position"], head);
    assert_eq!(parked[0]["error"], "a note without a title");
    let position = head.to_string();
    let dropped = factum(&[
        "parked",
        "drop",
        "--read-models",
        &url,
        "--projection",
        "titles",
        "--position",
        &position,
        "--yes",
    ]);
    assert!(dropped.status.success(), "{}", text(&dropped.stderr));
    let after: Value = serde_json::from_slice(
        &factum(&["projections", "--db", &url, "--read-models", &url, "--json"]).stdout,
    )
    .expect("JSON");
    assert_eq!(after["projections"][0]["parked"], 0, "{after}");
}
