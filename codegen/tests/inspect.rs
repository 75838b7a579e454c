//! `factum streams|stream|tagged|event|tail` run as a binary on a SQLite store the
//! care-task application wrote: pages of streams by type, one stream, one event with its
//! hash status (and an altered one caught), and a tail that follows the log live; the
//! events carrying some tags, on SQLite and PostgreSQL stores the course-enrolment
//! decisions wrote.

mod bin_common;

use bin_common::{factum, text};

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use factum::chrono::Utc;
use factum::context::{Actor, CommandContext};
use factum::decision::Decisions;
use factum::sqlite::{SqliteStore, rusqlite};
use factum::store::decision::DecisionStore;
use factum_example_care_tasks::{COORDINATOR, CreateTask, application};
use factum_example_course_enrolment::{DefineCourse, SubscribeStudent};
use serde_json::Value;

fn create(id: &str) -> CreateTask {
    CreateTask {
        task_id: id.into(),
        title: format!("Task {id}"),
        care_recipient: "Mrs. Jansen".into(),
        due: Utc::now() + chrono::TimeDelta::hours(2),
        at: Utc::now(),
    }
}

/// Creates the task `id` as dana, the ward's coordinator, through the application.
async fn created(store: &SqliteStore, id: &str) {
    application(store.clone())
        .expect("the application builds")
        .execute(
            create(id),
            CommandContext::new().actor(Actor::new(COORDINATOR, "dana")),
        )
        .await
        .expect("create");
}

/// Five tasks created through the care-task application.
async fn tasks(db: &Path) -> SqliteStore {
    let store = SqliteStore::open(db).await.expect("open");
    for id in ["T-1", "T-2", "T-3", "T-4", "T-5"] {
        created(&store, id).await;
    }
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_lists_streams_reads_events_and_follows_the_log() {
    let dir = tempfile::tempdir().expect("a directory");
    let db = dir.path().join("tasks.sqlite3");
    let store = tasks(&db).await;
    let db_arg = db.to_str().expect("a UTF-8 path");

    // Streams, two to a page, as a table with the way to the next page.
    let listed = factum(&["streams", "--db", db_arg, "--type", "Task", "--limit", "2"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let table = text(&listed.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["STREAM", "TYPE", "VERSION"]
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["Task-T-1", "Task", "1"]
    );
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["Task-T-2", "Task", "1"]
    );
    assert_eq!(lines[3], "(more: --after Task-T-2)");
    // The last page, as JSON.
    let last = factum(&["streams", "--db", db_arg, "--after", "Task-T-4", "--json"]);
    let page: Value = serde_json::from_slice(&last.stdout).expect("JSON");
    assert_eq!(page["streams"].as_array().expect("streams").len(), 1);
    assert_eq!(page["streams"][0]["stream_id"], "Task-T-5");
    assert_eq!(page["next_after"], Value::Null);
    let none = factum(&["streams", "--db", db_arg, "--type", "Invoice", "--json"]);
    let page: Value = serde_json::from_slice(&none.stdout).expect("JSON");
    assert_eq!(page["streams"], serde_json::json!([]));

    // One stream.
    let shown = factum(&["stream", "--db", db_arg, "Task-T-3"]);
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    let shown = text(&shown.stdout);
    assert!(
        shown
            .lines()
            .nth(1)
            .expect("one event")
            .contains("TaskCreated v"),
        "{shown}"
    );
    let missing = factum(&["stream", "--db", db_arg, "Task-T-9"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("no stream `Task-T-9`"));

    // One event, whole, its hash intact.
    let event = factum(&["event", "--db", db_arg, "3", "--json"]);
    assert!(event.status.success(), "{}", text(&event.stderr));
    let event: Value = serde_json::from_slice(&event.stdout).expect("JSON");
    assert_eq!(event["stream_id"], "Task-T-3");
    assert_eq!(event["payload"]["title"], "Task T-3");
    assert_eq!(event["hash"]["status"], "intact");

    // A tail that follows: the five, then two more as they are committed.
    let mut follower = Command::new(env!("CARGO_BIN_EXE_factum"))
        .args(["tail", "--db", db_arg, "--follow", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run factum tail");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    let stdout = follower.stdout.take().expect("its output");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines_tx.send(line.expect("a line")).is_err() {
                return;
            }
        }
    });
    let next = || {
        let line = lines_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the tail prints the next event");
        serde_json::from_str::<Value>(&line).expect("a JSON line")
    };
    for position in 1..=5 {
        assert_eq!(next()["position"], position);
    }
    created(&store, "T-6").await;
    created(&store, "T-7").await;
    let sixth = next();
    assert_eq!(
        (&sixth["position"], &sixth["stream_id"]),
        (&6.into(), &"Task-T-6".into())
    );
    assert_eq!(next()["stream_id"], "Task-T-7");
    follower.kill().expect("stop the tail");
    let _ = follower.wait();

    // An event whose stored payload was changed behind the store's back.
    drop(store);
    let raw = rusqlite::Connection::open(&db).expect("the raw file");
    raw.execute(
        "UPDATE events SET payload = replace(payload, 'Task T-2', 'Task T-X') WHERE position = 2",
        [],
    )
    .expect("an edit");
    drop(raw);
    let altered = factum(&["event", "--db", db_arg, "2"]);
    assert_eq!(altered.status.code(), Some(1), "{}", text(&altered.stderr));
    let shown = text(&altered.stdout);
    assert!(shown.contains("Task T-X"), "{shown}");
    let hash_line = shown
        .lines()
        .find(|line| line.starts_with("hash"))
        .expect("a hash line");
    assert!(hash_line.contains("ALTERED"), "{hash_line}");
}

/// `factum export` then `factum import` into a new file: the same events, at the same
/// positions, with the same hashes; the restored history verifies; a second restore
/// into the same file is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restores_into_an_empty_store_and_verifies() {
    use factum::integrity::TamperEvident;
    let dir = tempfile::tempdir().expect("a directory");
    let db = dir.path().join("tasks.sqlite3");
    let original = tasks(&db).await;
    let backup = dir.path().join("backup.jsonl");
    let restored = dir.path().join("restored.sqlite3");
    let path = |file: &Path| file.to_str().expect("UTF-8").to_owned();

    let exported = factum(&["export", "--db", &path(&db), "--out", &path(&backup)]);
    assert!(exported.status.success(), "{}", text(&exported.stderr));
    assert!(text(&exported.stderr).contains("exported 5 event(s)"));
    let imported = factum(&["import", "--db", &path(&restored), "--from", &path(&backup)]);
    assert!(imported.status.success(), "{}", text(&imported.stderr));
    let said = text(&imported.stdout);
    assert!(
        said.starts_with("imported 5 event(s) in 5 stream(s); "),
        "{said}"
    );
    assert!(said.contains("intact"), "{said}");

    // The same log: the same export, the same hash chain.
    let again = factum(&["export", "--db", &path(&restored)]);
    assert_eq!(
        text(&again.stdout),
        std::fs::read_to_string(&backup).expect("the backup")
    );
    let copy = SqliteStore::open(&restored).await.expect("open");
    assert_eq!(
        copy.leaves(0, 100).await.expect("leaves"),
        original.leaves(0, 100).await.expect("leaves")
    );
    drop(copy);

    let twice = factum(&["import", "--db", &path(&restored), "--from", &path(&backup)]);
    assert_eq!(twice.status.code(), Some(2));
    assert!(
        text(&twice.stderr).contains("holds events already (up to position 5)"),
        "{}",
        text(&twice.stderr)
    );
    let verified = factum(&["verify", "--db", &path(&restored)]);
    assert!(verified.status.success(), "{}", text(&verified.stdout));
}

/// The same commands on PostgreSQL, given its URL: a SQLite store's backup restored
/// into a new PostgreSQL database, listed, read and verified there, and exported back
/// unchanged — archived there, then exported again with the archive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_commands_work_on_a_postgres_url_too() {
    // A database of its own, so the store's default schema (`public`) is this test's.
    let url = bin_common::fresh_postgres_database("factum_cli_inspect").await;

    let dir = tempfile::tempdir().expect("a directory");
    let db = dir.path().join("tasks.sqlite3");
    drop(tasks(&db).await);
    let backup = dir.path().join("backup.jsonl");
    let exported = factum(&[
        "export",
        "--db",
        db.to_str().unwrap(),
        "--out",
        backup.to_str().unwrap(),
    ]);
    assert!(exported.status.success(), "{}", text(&exported.stderr));

    let imported = factum(&["import", "--db", &url, "--from", backup.to_str().unwrap()]);
    assert!(imported.status.success(), "{}", text(&imported.stderr));
    assert!(text(&imported.stdout).contains("imported 5 event(s) in 5 stream(s)"));
    assert!(
        text(&imported.stdout).contains("intact"),
        "{}",
        text(&imported.stdout)
    );

    let listed = factum(&["streams", "--db", &url, "--type", "Task", "--json"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let page: Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    let ids: Vec<&str> = page["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .map(|stream| stream["stream_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["Task-T-1", "Task-T-2", "Task-T-3", "Task-T-4", "Task-T-5"]
    );
    let event = factum(&["event", "--db", &url, "4", "--json"]);
    assert!(event.status.success(), "{}", text(&event.stderr));
    let event: Value = serde_json::from_slice(&event.stdout).expect("JSON");
    assert_eq!(event["stream_id"], "Task-T-4");
    assert_eq!(event["hash"]["status"], "intact");
    let again = factum(&["export", "--db", &url]);
    assert_eq!(
        text(&again.stdout),
        std::fs::read_to_string(&backup).expect("the backup"),
        "PostgreSQL gives back the SQLite store's log"
    );

    // Archived there too: the export needs the archive, and with it gives the same log.
    let archive = dir.path().join("postgres-archive.jsonl");
    let archive = archive.to_str().expect("UTF-8");
    let archived = factum(&[
        "archive", "--db", &url, "--upto", "3", "--out", archive, "--yes",
    ]);
    assert!(archived.status.success(), "{}", text(&archived.stderr));
    assert!(
        text(&archived.stdout).contains("archived positions 1 to 3 (3 events)"),
        "{}",
        text(&archived.stdout)
    );
    let without = factum(&["export", "--db", &url]);
    assert_eq!(without.status.code(), Some(2));
    assert!(text(&without.stderr).contains("(position 1) is archived"));
    let with = factum(&["export", "--db", &url, "--archive", archive]);
    assert!(with.status.success(), "{}", text(&with.stderr));
    assert_eq!(
        text(&with.stdout),
        std::fs::read_to_string(&backup).expect("the backup")
    );
    // And verified there: the archived bodies checked only with their archive.
    let unchecked = factum(&["verify", "--db", &url]);
    assert!(unchecked.status.success(), "{}", text(&unchecked.stdout));
    assert!(
        text(&unchecked.stdout).ends_with(
            "intact (3 archived bodies not checked: verify with their archives to check them)\n"
        ),
        "{}",
        text(&unchecked.stdout)
    );
    let checked = factum(&["verify", "--db", &url, "--archive", archive]);
    assert!(checked.status.success(), "{}", text(&checked.stdout));
    assert_eq!(
        text(&checked.stdout),
        "5 events in 5 streams verified: intact\n"
    );
}

/// Two courses offered and three subscriptions decided through the course-enrolment
/// commands: positions 1 and 2 the courses (`rust`, `sql`), 3 ada in rust, 4 ada in sql,
/// 5 grace in rust.
async fn enrolled<S: DecisionStore + Clone + 'static>(store: S) {
    let decisions = Decisions::new(store);
    for course in ["rust", "sql"] {
        let offered = DefineCourse {
            course: course.into(),
            title: format!("The {course} course"),
            capacity: 2,
        };
        decisions
            .execute(offered, CommandContext::new())
            .await
            .expect("offered");
    }
    for (course, student) in [("rust", "ada"), ("sql", "ada"), ("rust", "grace")] {
        decisions
            .execute(
                SubscribeStudent::new(course, student),
                CommandContext::new(),
            )
            .await
            .expect("subscribed");
    }
}

/// What `factum tagged` answers on the store `db` the course-enrolment commands wrote
/// ([`enrolled`]): a course's events, one student's subscription to it, as JSON.
fn tagged_reads(db: &str) {
    let course = factum(&["tagged", "--db", db, "--tag", "course:rust", "--json"]);
    assert!(course.status.success(), "{}", text(&course.stderr));
    let read: Value = serde_json::from_slice(&course.stdout).expect("JSON");
    let events = read["events"].as_array().expect("events");
    let seen: Vec<(u64, &str)> = events
        .iter()
        .map(|event| {
            (
                event["position"].as_u64().unwrap(),
                event["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (1, "CourseDefined"),
            (3, "StudentSubscribed"),
            (5, "StudentSubscribed")
        ]
    );
    assert_eq!(read["read_to"], 5);

    let ada = factum(&[
        "tagged",
        "--db",
        db,
        "--tag",
        "student:ada",
        "--tag",
        "course:rust",
        "--name",
        "StudentSubscribed",
        "--json",
    ]);
    assert!(ada.status.success(), "{}", text(&ada.stderr));
    let read: Value = serde_json::from_slice(&ada.stdout).expect("JSON");
    let events = read["events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "{read}");
    assert_eq!(events[0]["position"], 3);
    assert_eq!(
        events[0]["tags"],
        serde_json::json!(["course:rust", "student:ada"])
    );
    // After the position a decision read to, nothing of the course is left.
    let later = factum(&[
        "tagged",
        "--db",
        db,
        "--tag",
        "course:rust",
        "--after",
        "5",
        "--json",
    ]);
    let read: Value = serde_json::from_slice(&later.stdout).expect("JSON");
    assert_eq!(read["events"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_reads_what_a_decision_reads() {
    let dir = tempfile::tempdir().expect("a directory");
    let db = dir.path().join("courses.sqlite3");
    enrolled(SqliteStore::open(&db).await.expect("open")).await;
    let db = db.to_str().expect("a UTF-8 path");
    tagged_reads(db);

    // As a table: the header, a row per event with its stream, the position read to.
    let table = factum(&["tagged", "--db", db, "--tag", "student:ada"]);
    assert!(table.status.success(), "{}", text(&table.stderr));
    let table = text(&table.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["POSITION", "STREAM", "VERSION", "EVENT", "RECORDED"]
    );
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[1].starts_with("3 "), "{table}");
    assert!(lines[2].starts_with("4 "), "{table}");
    assert_eq!(lines[3], "(read to position 5)");

    // `factum event` shows an event's tags.
    let event = factum(&["event", "--db", db, "5"]);
    assert!(event.status.success(), "{}", text(&event.stderr));
    assert!(
        text(&event.stdout)
            .lines()
            .any(|line| line == "tags       course:rust student:grace"),
        "{}",
        text(&event.stdout)
    );

    // Text that is no tag, or no tag at all: refused, with the reason.
    let refused = factum(&["tagged", "--db", db, "--tag", "rust"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("`rust` is no tag: a tag is `key:value`"),
        "{}",
        text(&refused.stderr)
    );
    let untagged = factum(&["tagged", "--db", db]);
    assert_eq!(untagged.status.code(), Some(2));
    assert!(
        text(&untagged.stderr).contains("--tag <TAGS>"),
        "{}",
        text(&untagged.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_reads_what_a_decision_reads_on_postgres() {
    let url = bin_common::fresh_postgres_database("factum_cli_tagged").await;
    let store = factum::store::PostgresStore::builder(&url)
        .connect()
        .await
        .expect("connect");
    enrolled(store).await;
    tagged_reads(&url);
}
