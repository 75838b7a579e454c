//! `factum archive` run as a binary on a store the care-task application wrote: shown,
//! refused without confirmation, done; the reading commands then need the archive for the
//! archived events (and say so), read the same history with it — an export identical to
//! the one taken before — and `verify` checks the archived bodies only with it; a second
//! archive by date takes the rest; a changed archive is refused.

mod bin_common;

use bin_common::{factum, text};

use std::path::Path;

use factum::chrono::Utc;
use factum::context::{Actor, CommandContext};
use factum::sqlite::SqliteStore;
use factum_example_care_tasks::{COORDINATOR, CreateTask, application};
use serde_json::Value;

/// Five tasks created through the care-task application, one event each.
async fn tasks(db: &Path) {
    let store = SqliteStore::open(db).await.expect("open");
    let application = application(store).expect("the application builds");
    for id in ["T-1", "T-2", "T-3", "T-4", "T-5"] {
        application
            .execute(
                CreateTask {
                    task_id: id.into(),
                    title: format!("Task {id}"),
                    care_recipient: "Mrs. Jansen".into(),
                    due: Utc::now() + chrono::TimeDelta::hours(2),
                    at: Utc::now(),
                },
                CommandContext::new().actor(Actor::new(COORDINATOR, "dana")),
            )
            .await
            .expect("create");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archived_events_leave_the_store_and_read_back_with_their_archive() {
    let dir = tempfile::tempdir().expect("a directory");
    let db = dir.path().join("tasks.sqlite3");
    tasks(&db).await;
    let db = db.to_str().expect("a UTF-8 path");
    let first = dir.path().join("archive-1.jsonl");
    let first = first.to_str().expect("a UTF-8 path");
    let exported = factum(&["export", "--db", db]);
    assert!(exported.status.success(), "{}", text(&exported.stderr));
    let before = text(&exported.stdout);
    assert_eq!(before.lines().count(), 5);

    // Shown, refused without a yes, then done.
    let archive = ["archive", "--db", db, "--upto", "2", "--out", first];
    let shown = factum(&[&archive[..], &["--dry-run"]].concat());
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    let shown = text(&shown.stdout);
    assert!(
        shown.starts_with("would archive positions 1 to 2 (2 events, recorded "),
        "{shown}"
    );
    assert!(shown.ends_with("dry run: nothing archived\n"), "{shown}");
    assert!(!Path::new(first).exists());
    let refused = factum(&archive);
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused.stdout).contains("not confirmed: nothing archived"));
    assert!(!Path::new(first).exists());
    let done = factum(&[&archive[..], &["--yes"]].concat());
    assert!(done.status.success(), "{}", text(&done.stderr));
    assert!(
        text(&done.stdout).contains(&format!(
            "archived positions 1 to 2 (2 events) into {first} (SHA-256 "
        )),
        "{}",
        text(&done.stdout)
    );

    // Without the archive, the archived events are named, not lost; with it, the
    // history reads as before.
    let without = factum(&["export", "--db", db]);
    assert_eq!(without.status.code(), Some(2));
    assert!(
        text(&without.stderr).contains(
            "stream `Task-T-1` version 1 (position 1) is archived: open the store with the archive that holds it"
        ),
        "{}",
        text(&without.stderr)
    );
    let with = factum(&["export", "--db", db, "--archive", first]);
    assert!(with.status.success(), "{}", text(&with.stderr));
    assert_eq!(text(&with.stdout), before);
    let event = factum(&["event", "--db", db, "1", "--archive", first, "--json"]);
    assert!(event.status.success(), "{}", text(&event.stderr));
    let event: Value = serde_json::from_slice(&event.stdout).expect("JSON");
    assert_eq!(event["stream_id"], "Task-T-1");
    assert_eq!(event["hash"]["status"], "intact");
    let live = factum(&["stream", "--db", db, "Task-T-4"]);
    assert!(live.status.success(), "{}", text(&live.stderr));

    // verify: chains through the archived events; their bodies checked only with it.
    let unchecked = factum(&["verify", "--db", db]);
    assert!(unchecked.status.success(), "{}", text(&unchecked.stdout));
    assert_eq!(
        text(&unchecked.stdout).trim_end(),
        "5 events in 5 streams verified: intact (2 archived bodies not checked: verify with their archives to check them)"
    );
    let checked = factum(&["verify", "--db", db, "--archive", first]);
    assert!(checked.status.success());
    assert_eq!(
        text(&checked.stdout).trim_end(),
        "5 events in 5 streams verified: intact"
    );

    // The rest, by date: everything recorded before tomorrow.
    let second = dir.path().join("archive-2.jsonl");
    let second = second.to_str().expect("a UTF-8 path");
    let tomorrow = (Utc::now() + chrono::TimeDelta::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let rest = factum(&[
        "archive", "--db", db, "--before", &tomorrow, "--out", second, "--yes",
    ]);
    assert!(rest.status.success(), "{}", text(&rest.stderr));
    assert!(
        text(&rest.stdout).contains("archived positions 3 to 5 (3 events)"),
        "{}",
        text(&rest.stdout)
    );
    let listed = factum(&["archive", "--db", db, "--list", "--json"]);
    let listed: Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    let ranges: Vec<(u64, u64, &str)> = listed
        .as_array()
        .expect("an array")
        .iter()
        .map(|record| {
            (
                record["after"].as_u64().expect("after"),
                record["upto"].as_u64().expect("upto"),
                record["file"].as_str().expect("file"),
            )
        })
        .collect();
    assert_eq!(ranges, [(0, 2, first), (2, 5, second)]);
    let both = factum(&[
        "export",
        "--db",
        db,
        "--archive",
        second,
        "--archive",
        first,
    ]);
    assert!(both.status.success(), "{}", text(&both.stderr));
    assert_eq!(text(&both.stdout), before);
    let nothing = factum(&["archive", "--db", db, "--upto", "5", "--out", "x.jsonl"]);
    assert!(nothing.status.success());
    assert!(text(&nothing.stdout).starts_with("nothing to archive: positions up to 5"));

    // A changed archive is refused, naming the line.
    let changed = std::fs::read_to_string(first)
        .expect("reads")
        .replacen("Task T-1", "Task T-9", 1);
    std::fs::write(first, changed).expect("writes");
    let refused = factum(&["export", "--db", db, "--archive", first]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains(
            "line 2: not a sound factum archive: position 1: the event does not match its hash"
        ),
        "{}",
        text(&refused.stderr)
    );
}

/// Given the read models, the dry run names the followers whose checkpoints the cut
/// passes: they will need the archive to catch up or rebuild.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dry_run_names_the_projections_the_cut_leaves_behind() {
    use factum::projection::ProjectionRunner;
    use factum::projection::sqlite::SqliteReadModel;
    use factum_example_care_tasks::projections::coordinator_task_list::CoordinatorTaskList;
    let dir = tempfile::tempdir().expect("a directory");
    let db = dir.path().join("tasks.sqlite3");
    tasks(&db).await;
    let store = SqliteStore::open(&db).await.expect("opens");
    let read_models = dir.path().join("read-models");
    let models = SqliteReadModel::open(&read_models).await.expect("opens");
    let runner = ProjectionRunner::new(store.clone());
    let mut list = runner.projector(CoordinatorTaskList, models);
    runner.catch_up(&mut list).await.expect("catches up");
    drop(list);
    // One more event, past the task list's checkpoint.
    application(store)
        .expect("the application builds")
        .execute(
            CreateTask {
                task_id: "T-6".into(),
                title: "Task T-6".into(),
                care_recipient: "Mr. Smit".into(),
                due: Utc::now() + chrono::TimeDelta::hours(2),
                at: Utc::now(),
            },
            CommandContext::new().actor(Actor::new(COORDINATOR, "dana")),
        )
        .await
        .expect("create");

    let out = dir.path().join("archive.jsonl");
    let shown = factum(&[
        "archive",
        "--db",
        db.to_str().expect("UTF-8"),
        "--upto",
        "6",
        "--out",
        out.to_str().expect("UTF-8"),
        "--read-models",
        read_models.to_str().expect("UTF-8"),
        "--dry-run",
    ]);
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    let shown = text(&shown.stdout);
    assert!(
        shown.contains(
            "note: coordinator_task_list v1 at checkpoint 5, inside the cut: catching it up or rebuilding it will need the archive (`--archive`)"
        ),
        "{shown}"
    );
    assert!(shown.ends_with("dry run: nothing archived\n"), "{shown}");
    assert!(!out.exists());
}
