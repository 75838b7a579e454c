//! The operator commands built into the care-tasks binary (`care-tasks ops ...`, from
//! `factum_codegen::operator`), run as an operator would: on the files a shift left,
//! projections listed, a parked event listed, shown, refused without confirmation and
//! replayed, projections rebuilt with their counts, the mistakes' exit codes, and the
//! consistency checker finding a hand-edited row.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use factum::archive::ArchiveStore;
use factum::envelope::RecordedEvent;
use factum::projection::sqlite::{SqliteReadModel, SqliteTx};
use factum::projection::{
    OnPoison, Projection, ProjectionError, ProjectionRunner, ReadModel, Retry, Target,
};
use factum::store::{EventStore, SqliteStore};
use factum_example_care_tasks::projections::coordinator_task_list::CoordinatorTaskList;

/// The task list, under its own name and version, whose database refuses the first
/// assignment it is given (and every retry of it).
struct RefusesFirstAssignment {
    inner: CoordinatorTaskList,
    refused: Option<u64>,
}

impl Projection for RefusesFirstAssignment {
    const NAME: &'static str = CoordinatorTaskList::NAME;
    const VERSION: u32 = CoordinatorTaskList::VERSION;
    const EVENTS: &'static [&'static str] = CoordinatorTaskList::EVENTS;
    type Tx = SqliteTx;

    async fn setup(&mut self, tx: &mut SqliteTx) -> Result<(), ProjectionError> {
        self.inner.setup(tx).await
    }

    async fn handle(
        &mut self,
        event: &RecordedEvent,
        tx: &mut SqliteTx,
    ) -> Result<(), ProjectionError> {
        if event.name == "TaskAssigned"
            && *self.refused.get_or_insert(event.position) == event.position
        {
            return Err(ProjectionError::msg("the ward's database was read-only"));
        }
        self.inner.handle(event, tx).await
    }
}

/// Runs `care-tasks --db <db> <args>`, answering `answer` on standard input.
fn care_tasks(db: &Path, args: &[&str], answer: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_care-tasks"))
        .arg("--db")
        .arg(db)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    child
        .stdin
        .take()
        .expect("its stdin")
        .write_all(answer.as_bytes())
        .expect("answers");
    child.wait_with_output().expect("it ends")
}

/// A temporary directory with the store and read models a shift of the care-tasks binary
/// left, and the store's path.
fn after_a_shift() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("care-tasks.sqlite3");
    let shift = care_tasks(&db, &[], "");
    assert!(
        shift.status.success(),
        "{}",
        String::from_utf8_lossy(&shift.stderr)
    );
    (dir, db)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn operators_list_replay_and_rebuild_projections_from_the_applications_binary() {
    let (dir, db) = after_a_shift();

    // The task list rebuilt while its database refused the first assignment: the runner
    // parks it, as it would in service.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (head, parked_at) = runtime.block_on(async {
        let store = SqliteStore::open(&db).await.expect("opens");
        let read_models = SqliteReadModel::open(dir.path().join("care-tasks.read-models"))
            .await
            .expect("opens");
        read_models
            .reset(Target {
                name: CoordinatorTaskList::NAME,
                version: CoordinatorTaskList::VERSION,
            })
            .await
            .expect("resets");
        let runner = ProjectionRunner::new(store.clone())
            .retry(Retry::immediately(1))
            .on_poison(OnPoison::Park);
        let mut projector = runner.projector(
            RefusesFirstAssignment {
                inner: CoordinatorTaskList,
                refused: None,
            },
            read_models,
        );
        runner.catch_up(&mut projector).await.expect("catches up");
        let parked = projector.parked().await.expect("reads");
        assert_eq!(parked.len(), 1, "{parked:?}");
        assert_eq!(parked[0].event.name, "TaskAssigned");
        let head = store.head().await.expect("reads").expect("events").position;
        (head, parked[0].event.position)
    });

    let listed = care_tasks(&db, &["ops", "projections"], "");
    assert!(listed.status.success());
    let table = stdout(&listed);
    for name in [
        "coordinator_task_list",
        "member_task_history",
        "daily_analytics",
    ] {
        let row = table
            .lines()
            .find(|line| line.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in:\n{table}"));
        let columns: Vec<&str> = row.split_whitespace().collect();
        let parked = if name == "coordinator_task_list" {
            "1"
        } else {
            "0"
        };
        assert_eq!(
            columns,
            [name, "1*", "active", &head.to_string(), parked],
            "{table}"
        );
    }

    let parked = stdout(&care_tasks(
        &db,
        &["ops", "parked", "list", "coordinator_task_list"],
        "",
    ));
    assert!(
        parked.starts_with("coordinator_task_list v1: 1 parked\n"),
        "{parked}"
    );
    assert!(
        parked.contains(&format!("{parked_at} TaskAssigned in Task-")),
        "{parked}"
    );
    let position = parked_at.to_string();
    let replay = [
        "ops",
        "parked",
        "replay",
        "coordinator_task_list",
        position.as_str(),
    ];
    let dry = care_tasks(&db, &[&replay[..], &["--dry-run"]].concat(), "");
    assert!(dry.status.success());
    assert!(
        stdout(&dry).contains("dry run: nothing replayed"),
        "{}",
        stdout(&dry)
    );
    let refused = care_tasks(&db, &replay, "n\n");
    assert_eq!(refused.status.code(), Some(1));
    assert!(stdout(&refused).contains("not confirmed: nothing replayed"));
    assert!(
        stdout(&care_tasks(
            &db,
            &["ops", "parked", "list", "coordinator_task_list"],
            ""
        ))
        .contains("1 parked")
    );
    let replayed = care_tasks(&db, &replay, "yes\n");
    assert!(
        replayed.status.success(),
        "{}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    assert!(stdout(&replayed).contains(&format!(
        "replayed position {parked_at} into coordinator_task_list"
    )));
    assert!(
        stdout(&care_tasks(
            &db,
            &["ops", "parked", "list", "coordinator_task_list"],
            ""
        ))
        .contains("0 parked")
    );

    // Rebuilds: shown, then done with --yes, each with its count.
    let dry = stdout(&care_tasks(
        &db,
        &["ops", "rebuild", "daily_analytics", "--dry-run"],
        "",
    ));
    assert!(dry.starts_with("would rebuild daily_analytics v1"), "{dry}");
    assert!(dry.ends_with("dry run: nothing rebuilt\n"), "{dry}");
    let rebuilt = care_tasks(&db, &["ops", "rebuild", "--yes"], "");
    assert!(
        rebuilt.status.success(),
        "{}",
        String::from_utf8_lossy(&rebuilt.stderr)
    );
    let rebuilt = stdout(&rebuilt);
    for name in [
        "coordinator_task_list",
        "member_task_history",
        "daily_analytics",
    ] {
        assert!(
            rebuilt
                .lines()
                .any(|line| line.starts_with(&format!("rebuilt {name}: "))
                    && line.ends_with(" events applied")),
            "{rebuilt}"
        );
    }

    // Mistakes: an unknown projection (2), a position with nothing parked (1).
    let unknown = care_tasks(&db, &["ops", "rebuild", "nope", "--yes"], "");
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no projection `nope`; this application has: coordinator_task_list, member_task_history, daily_analytics"));
    let nothing = care_tasks(&db, &replay, "yes\n");
    assert_eq!(nothing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&nothing.stderr).contains(&format!(
        "coordinator_task_list has no parked event at position {parked_at}"
    )));
}

/// `ops verify`: every projection rebuilt into a shadow and compared with its live model
/// after a shift (consistent, exit 0); a live row edited by hand shows as the two rows
/// that differ (exit 1), in the table and in JSON; no shadow is left behind.
#[test]
fn verify_rebuilds_each_projection_beside_the_live_one_and_reports_the_rows_that_differ() {
    let (dir, db) = after_a_shift();

    let verified = care_tasks(&db, &["ops", "verify"], "");
    assert!(
        verified.status.success(),
        "{}{}",
        stdout(&verified),
        String::from_utf8_lossy(&verified.stderr)
    );
    let report = stdout(&verified);
    for name in [
        "coordinator_task_list",
        "member_task_history",
        "daily_analytics",
    ] {
        assert!(
            report.lines().any(
                |line| line.starts_with(&format!("{name} v1 at checkpoint "))
                    && line.ends_with(": consistent")
            ),
            "{report}"
        );
    }

    let read_models = dir.path().join("care-tasks.read-models");
    let edit = rusqlite::Connection::open(read_models.join("coordinator_task_list.v1.sqlite3"))
        .expect("the task list's file");
    let changed = edit
        .execute(
            "UPDATE tasks SET title = 'Tampered' WHERE rowid = (SELECT min(rowid) FROM tasks)",
            [],
        )
        .expect("an edit");
    assert_eq!(changed, 1);
    drop(edit);

    let drifted = care_tasks(&db, &["ops", "verify", "coordinator_task_list"], "");
    assert_eq!(drifted.status.code(), Some(1), "{}", stdout(&drifted));
    let report = stdout(&drifted);
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 3, "{report}");
    assert!(lines[0].ends_with(": 2 difference(s)"), "{report}");
    // The rows in the order of their values: the original title sorts first.
    assert!(
        lines[1].starts_with("  table tasks: only in the rebuilt model: ")
            && lines[1].contains("'Morning medication round'"),
        "{report}"
    );
    assert!(
        lines[2].starts_with("  table tasks: only in the live model: ")
            && lines[2].contains("'Tampered'"),
        "{report}"
    );

    let json = care_tasks(&db, &["ops", "verify", "--json"], "");
    assert_eq!(json.status.code(), Some(1));
    let rows: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    let consistent: Vec<(&str, bool)> = rows
        .as_array()
        .expect("an array")
        .iter()
        .map(|row| {
            (
                row["name"].as_str().expect("a name"),
                row["consistent"].as_bool().expect("a verdict"),
            )
        })
        .collect();
    assert_eq!(
        consistent,
        [
            ("coordinator_task_list", false),
            ("member_task_history", true),
            ("daily_analytics", true),
        ]
    );
    assert_eq!(rows[0]["differences"].as_array().map(Vec::len), Some(2));

    let shadows_left = std::fs::read_dir(&read_models)
        .expect("the read-model directory")
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|entry| entry.file_name().to_string_lossy().starts_with(".shadow"))
        })
        .count();
    assert_eq!(shadows_left, 0);
}

/// Replay reads archives: after the shift's oldest events are archived (by the library,
/// as `factum archive` does), a rebuild without the archive stops at the first archived
/// event and says so; given the archive, it replays the whole history and the rebuilt
/// models are the ones the live shift built.
#[test]
fn a_rebuild_replays_archived_events_from_their_archive() {
    let (dir, db) = after_a_shift();
    let archive = dir.path().join("care-tasks.archive-1.jsonl");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let record = runtime.block_on(async {
        let store = SqliteStore::open(&db).await.expect("opens");
        let head = store.head().await.expect("reads").expect("events").position;
        store.archive(head / 2, &archive).await.expect("archives")
    });
    assert!(record.events > 0);

    let without = care_tasks(&db, &["ops", "rebuild", "--yes"], "");
    assert_eq!(without.status.code(), Some(1));
    let said = String::from_utf8_lossy(&without.stderr);
    assert!(
        said.contains("rebuilding coordinator_task_list: ")
            && said.contains(") is archived: open the store with the archive that holds it"),
        "{said}"
    );
    // Refused before anything was reset: every model is still active.
    let listed = stdout(&care_tasks(&db, &["ops", "projections"], ""));
    assert_eq!(
        listed
            .lines()
            .filter(|line| line.split_whitespace().nth(2) == Some("active"))
            .count(),
        3,
        "{listed}"
    );

    let archive = archive.to_str().expect("a UTF-8 path");
    let rebuilt = care_tasks(&db, &["--archive", archive, "ops", "rebuild", "--yes"], "");
    assert!(
        rebuilt.status.success(),
        "{}",
        String::from_utf8_lossy(&rebuilt.stderr)
    );
    let verified = care_tasks(&db, &["--archive", archive, "ops", "verify"], "");
    assert!(
        verified.status.success(),
        "{}{}",
        stdout(&verified),
        String::from_utf8_lossy(&verified.stderr)
    );
    assert_eq!(
        stdout(&verified)
            .lines()
            .filter(|line| line.ends_with(": consistent"))
            .count(),
        3,
        "{}",
        stdout(&verified)
    );
}
