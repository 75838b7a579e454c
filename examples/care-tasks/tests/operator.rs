//! The operator commands built into the care-tasks binary (`care-tasks ops ...`, from
//! `factum_codegen::operator`), run as an operator would: on the files a shift left,
//! projections listed, a parked event listed, shown, refused without confirmation and
//! replayed, projections rebuilt with their counts, and the mistakes' exit codes.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use factum::projection::sqlite::SqliteReadModel;
use factum::projection::{ParkedEvent, ReadModel, ReadModelTx, Target};
use factum::store::{EventStore, SqliteStore};

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

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn operators_list_replay_and_rebuild_projections_from_the_applications_binary() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("care-tasks.sqlite3");
    let shift = care_tasks(&db, &[], "");
    assert!(
        shift.status.success(),
        "{}",
        String::from_utf8_lossy(&shift.stderr)
    );

    // An assignment parked by the task list, as a failing handler would leave it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (head, parked_at) = runtime.block_on(async {
        let store = SqliteStore::open(&db).await.expect("opens");
        let events = store.read_all(0, 10_000).await.expect("reads");
        let assigned = events
            .iter()
            .find(|event| event.name == "TaskAssigned")
            .expect("an assignment")
            .clone();
        let read_models = SqliteReadModel::open(dir.path().join("care-tasks.read-models"))
            .await
            .expect("opens");
        let target = Target {
            name: "coordinator_task_list",
            version: 1,
        };
        let mut tx = read_models.begin(target).await.expect("begins");
        let checkpoint = tx.checkpoint().expect("a checkpoint");
        let position = assigned.position;
        read_models
            .park(
                &mut tx,
                &ParkedEvent {
                    event: assigned,
                    error: "the ward's database was read-only".to_owned(),
                    attempts: 3,
                    parked_at: factum::envelope::now(),
                },
            )
            .await
            .expect("parks");
        read_models.commit(tx, checkpoint).await.expect("commits");
        (events.last().expect("events").position, position)
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
