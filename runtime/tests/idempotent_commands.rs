//! 16 submissions of one command id at once — from 16 processes on one SQLite file, from
//! 16 connections to PostgreSQL, from 16 tasks on memory — record one set of events and
//! get 16 identical answers.
//!
//! The SQLite processes are this test binary itself, started again with the
//! `child_process` test selected and the file and command in environment variables.

mod postgres_common;

use std::process::{Command, Stdio};

use factum::prelude::*;
use factum::store::SqliteStore;
use factum::testing::conformance::{Note, Notebook};
use serde_json::{Value, json};

const CHILD_FILE: &str = "FACTUM_TEST_IDEMPOTENT_FILE";
const CHILD_COMMAND: &str = "FACTUM_TEST_IDEMPOTENT_COMMAND";
const SUBMISSIONS: usize = 16;

fn note() -> Note {
    Note {
        id: "n-1".to_owned(),
        value: json!("once"),
        ratio: 0.5,
    }
}

/// What an answer says, as one comparable value.
fn answer(executed: &factum::repository::Executed<Notebook>) -> Value {
    json!({
        "command_id": executed.command_id,
        "stream_id": executed.stream_id,
        "version": executed.version,
        "position": executed.position,
        "event_ids": executed.event_ids,
        "notes": executed.state.notes.len(),
    })
}

/// Submits the command from `handles` at once and checks one set of events and
/// identical answers.
async fn submit_at_once<S: EventStore + Clone + 'static>(handles: Vec<S>) {
    let ctx = CommandContext::new();
    let mut tasks = Vec::new();
    for handle in handles.iter().cloned() {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let executed = Repository::<Notebook, _>::new(handle)
                .execute_with(note(), ctx)
                .await
                .expect("every submission is answered");
            answer(&executed)
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("the submission task"));
    }
    assert_identical(&answers, &handles[0]).await;
}

async fn assert_identical<S: EventStore>(answers: &[Value], store: &S) {
    assert_eq!(answers.len(), SUBMISSIONS);
    for answer in answers {
        assert_eq!(answer, &answers[0], "16 identical answers");
    }
    let stored = store.read_all(0, 100).await.expect("read the store");
    assert_eq!(stored.len(), 1, "one set of events: {stored:?}");
    assert_eq!(answers[0]["event_ids"], json!([stored[0].event_id]));
    assert_eq!(answers[0]["version"], 1);
}

#[tokio::test]
async fn sixteen_tasks_on_memory() {
    let store = MemoryStore::new();
    submit_at_once(vec![store; SUBMISSIONS]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_postgres_connections() {
    const SCHEMA: &str = "t_idempotent_commands";
    // The first handle creates the schema; each has one connection of its own.
    let mut handles = vec![postgres_common::fresh_store(SCHEMA).await];
    for _ in 1..SUBMISSIONS {
        handles.push(
            factum::postgres::PostgresStore::builder(postgres_common::url())
                .schema(SCHEMA)
                .pool_size(1)
                .connect()
                .await
                .expect("connect a handle"),
        );
    }
    submit_at_once(handles).await;
}

/// One submission, in a process of its own: prints its answer.
#[tokio::test]
async fn child_process() {
    let (Ok(file), Ok(command)) = (std::env::var(CHILD_FILE), std::env::var(CHILD_COMMAND)) else {
        return;
    };
    let store = SqliteStore::open(&file).await.expect("open the store");
    let ctx = CommandContext::new().command_id(command.parse().expect("a command id"));
    let executed = Repository::<Notebook, _>::new(store)
        .execute_with(note(), ctx)
        .await
        .expect("the submission is answered");
    println!("ANSWER {}", answer(&executed));
}

#[tokio::test]
async fn sixteen_sqlite_processes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.sqlite3");
    // The file exists before the processes race to write it.
    let store = SqliteStore::open(&file).await.unwrap();
    let command = factum::uuid::Uuid::now_v7();
    let children: Vec<_> = (0..SUBMISSIONS)
        .map(|_| {
            Command::new(std::env::current_exe().expect("the test binary"))
                .args([
                    "child_process",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_FILE, &file)
                .env(CHILD_COMMAND, command.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start a submitting process")
        })
        .collect();
    let mut answers = Vec::new();
    for child in children {
        let output = child.wait_with_output().expect("the process ends");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "a submitting process failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let line = stdout
            .lines()
            .find_map(|line| line.split_once("ANSWER ").map(|(_, answer)| answer))
            .unwrap_or_else(|| panic!("no answer in:\n{stdout}"));
        answers.push(serde_json::from_str::<Value>(line).expect("an answer is JSON"));
    }
    assert_eq!(answers[0]["command_id"], json!(command));
    assert_identical(&answers, &store).await;
}
