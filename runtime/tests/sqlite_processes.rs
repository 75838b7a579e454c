//! Several operating-system processes on one SQLite store file: concurrent writers lose
//! and duplicate nothing, and a writer killed with SIGKILL in the middle of its appends
//! leaves only whole batches, including every batch it reported committed.
//!
//! The child processes are this test binary itself, started again with the
//! `child_process` test selected and its role in environment variables (so no helper
//! binary has to be built first). Run with `cargo test -p factum --features sqlite`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use factum::prelude::*;
use factum::store::SqliteStore;
use serde_json::json;

/// The child's role; unset in the parent.
const ROLE: &str = "FACTUM_SQLITE_CHILD_ROLE";
const PATH: &str = "FACTUM_SQLITE_CHILD_PATH";
const WRITER: &str = "FACTUM_SQLITE_CHILD_WRITER";
const COUNT: &str = "FACTUM_SQLITE_CHILD_COUNT";

/// Events per batch in the crash test.
const BATCH: u64 = 50;
/// Streams each crash round appends to, in turn.
const CRASH_STREAMS: u64 = 3;
/// Streams the concurrent writers race on.
const SHARED_STREAMS: u64 = 3;

/// Starts this test binary again as a child in `role`.
fn child(role: &str, path: &Path, writer: u64, count: u64) -> Command {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut command = Command::new(exe);
    command
        .args([
            "child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, role)
        .env(PATH, path)
        .env(WRITER, writer.to_string())
        .env(COUNT, count.to_string());
    command
}

fn env_u64(name: &str) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("{name} is set to a number"))
}

/// The child's side: does nothing unless started by a test below as a child.
#[tokio::test]
async fn child_process() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let path = PathBuf::from(std::env::var(PATH).expect("the store path"));
    let writer = env_u64(WRITER);
    let count = env_u64(COUNT);
    let store = SqliteStore::open(&path)
        .await
        .expect("the child opens the store");
    match role.as_str() {
        "race" => race(&store, writer, count).await,
        "batches" => batches(&store, writer, count).await,
        "append_later" => append_later(&store, count).await,
        other => panic!("unknown role {other}"),
    }
}

/// Appends `count` single events to the shared streams, at the version it just read,
/// reading again and retrying after every conflict.
async fn race(store: &SqliteStore, writer: u64, count: u64) {
    let mut conflicts = 0;
    for seq in 0..count {
        let stream = format!("shared-{}", (writer + seq) % SHARED_STREAMS);
        let mut event = NewEvent::new(
            "Raced",
            1,
            serde_json::value::to_raw_value(&json!({ "writer": writer, "seq": seq })).unwrap(),
            Metadata::default(),
        );
        event.metadata.actor = Some(format!("process-{writer}"));
        loop {
            let version = store.stream_version(&stream).await.expect("stream_version");
            let expected = version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
            match store
                .append(&stream, "Shared", expected, vec![event.clone()])
                .await
            {
                Ok(outcome) => {
                    assert!(outcome.written);
                    break;
                }
                Err(StoreError::Conflict { .. }) => conflicts += 1,
                Err(other) => panic!("writer {writer}: {other}"),
            }
        }
    }
    println!("FACTUM done {count} with {conflicts} conflicts");
}

/// Waits `millis` milliseconds, then appends one event (for a follower in the parent to
/// notice).
async fn append_later(store: &SqliteStore, millis: u64) {
    tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
    let event = NewEvent::new(
        "Later",
        1,
        serde_json::value::to_raw_value(&json!({ "from": "child" })).unwrap(),
        Metadata::default(),
    );
    store
        .append("later", "Later", ExpectedVersion::NoStream, vec![event])
        .await
        .expect("the child appends");
    println!("FACTUM appended");
}

/// Batch `batch` of crash round `round`: [`BATCH`] events, each marked with its round,
/// batch and index.
fn crash_batch(round: u64, batch: u64) -> Vec<NewEvent> {
    (0..BATCH)
        .map(|index| {
            let mut metadata = Metadata::default();
            metadata.extra.insert("round".into(), json!(round));
            metadata.extra.insert("batch".into(), json!(batch));
            metadata.extra.insert("index".into(), json!(index));
            NewEvent::new(
                "Batched",
                1,
                serde_json::value::to_raw_value(&json!({ "filler": "x".repeat(2_000) })).unwrap(),
                metadata,
            )
        })
        .collect()
}

/// Appends batches of [`BATCH`] events and reports every append it starts and every
/// commit on stdout, until killed (or `count` batches). Each next batch is built before
/// the commit is reported, so that the appends take nearly all of the child's time.
async fn batches(store: &SqliteStore, round: u64, count: u64) {
    let mut versions = BTreeMap::new();
    let mut stdout = std::io::stdout();
    let mut events = crash_batch(round, 0);
    for batch in 0..count {
        let stream = format!("crash-{round}-{}", batch % CRASH_STREAMS);
        let version = versions.entry(stream.clone()).or_insert(0u64);
        let expected = match *version {
            0 => ExpectedVersion::NoStream,
            version => ExpectedVersion::Exact(version),
        };
        // Tells the parent an append starts (ignored if the parent is gone).
        let _ = writeln!(stdout, "FACTUM appending {batch}").and_then(|()| stdout.flush());
        let outcome = store
            .append(&stream, "Crash", expected, events)
            .await
            .expect("a single writer appends without conflicts");
        *version = outcome.stream_version;
        events = crash_batch(round, batch + 1);
        // The parent kills this process after reading enough of these lines; a closed
        // pipe (the parent is gone) ends the child.
        if writeln!(stdout, "FACTUM committed {batch}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return;
        }
    }
}

/// What a killed writer reported: the batches it committed, and whether it had started
/// an append it did not report committed (then the kill most likely landed inside that
/// append's transaction).
struct Reports {
    committed: Vec<u64>,
    killed_while_appending: bool,
}

/// Reads `lines` up to the `wanted`-th commit; with `wanted == usize::MAX`, to the end.
fn read_reports(lines: &mut impl Iterator<Item = String>, wanted: usize, reports: &mut Reports) {
    for line in lines {
        if line.starts_with("FACTUM appending ") {
            reports.killed_while_appending = true;
        } else if let Some(batch) = line.strip_prefix("FACTUM committed ") {
            reports.killed_while_appending = false;
            reports
                .committed
                .push(batch.parse().expect("a batch number"));
            if reports.committed.len() == wanted {
                return;
            }
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Checks every crash round so far: whole batches only, contiguous from batch 0, and
/// every reported batch present.
fn check_rounds(path: &Path, reported: &[Vec<u64>]) {
    let integrity: String = rusqlite::Connection::open(path)
        .expect("a raw connection")
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("integrity_check");
    assert_eq!(integrity, "ok", "the file is intact");
    runtime().block_on(async {
        let store = SqliteStore::open(path)
            .await
            .expect("the file opens after a kill");
        for (round, reported) in reported.iter().enumerate() {
            let mut present = BTreeSet::new();
            for stream in 0..CRASH_STREAMS {
                let stream_id = format!("crash-{round}-{stream}");
                let events = store
                    .read_stream(&stream_id, 1, usize::MAX)
                    .await
                    .expect("read_stream");
                assert_eq!(
                    events.len() as u64 % BATCH,
                    0,
                    "{stream_id} holds whole batches only ({} events)",
                    events.len()
                );
                for whole in events.chunks(BATCH as usize) {
                    let batch = whole[0].metadata.extra["batch"].as_u64().expect("batch");
                    for (index, event) in whole.iter().enumerate() {
                        assert_eq!(event.metadata.extra["round"], json!(round));
                        assert_eq!(
                            event.metadata.extra["batch"],
                            json!(batch),
                            "{stream_id}: a batch is not mixed with another"
                        );
                        assert_eq!(event.metadata.extra["index"], json!(index));
                    }
                    assert_eq!(batch % CRASH_STREAMS, stream);
                    assert!(present.insert(batch), "batch {batch} is stored once");
                }
            }
            let last = reported
                .last()
                .copied()
                .expect("some commits were reported");
            assert!(
                reported.iter().all(|batch| present.contains(batch)),
                "round {round}: every reported commit is stored"
            );
            let highest = present.last().copied().expect("batches are stored");
            assert!(highest >= last);
            assert_eq!(
                present,
                (0..=highest).collect::<BTreeSet<_>>(),
                "round {round}: batches are stored in order, without holes"
            );
        }
    });
}

#[test]
fn a_writer_killed_mid_append_leaves_only_whole_batches_and_every_reported_commit() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("crash.db");
    let mut reported = Vec::new();
    let mut inside_an_append = 0;
    // Rounds on the same file: each opens the file a killed writer left behind. The kill
    // comes a little later after a reported commit in each round, so that it lands at
    // different points of the writer's next append (the checks hold wherever it lands).
    let pauses_us = [0u64, 100, 300, 700, 1_500, 3_000];
    for (round, pause_us) in pauses_us.into_iter().enumerate() {
        let mut writer = child("batches", &path, round as u64, 1_000_000)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the writer starts");
        let stdout = writer.stdout.take().expect("the writer's stdout is piped");
        let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
        let mut reports = Reports {
            committed: Vec::new(),
            killed_while_appending: false,
        };
        let wanted = 10 + 2 * round;
        read_reports(&mut lines, wanted, &mut reports);
        std::thread::sleep(std::time::Duration::from_micros(pause_us));
        // SIGKILL: the writer gets no chance to finish its transaction or close the file.
        writer.kill().expect("the writer is killed");
        let status = writer.wait().expect("the writer ends");
        assert!(
            reports.committed.len() >= wanted,
            "the writer reported {} commits before it ended ({status})",
            reports.committed.len()
        );
        // What it wrote before it died: more commits, maybe an append it started.
        read_reports(&mut lines, usize::MAX, &mut reports);
        inside_an_append += usize::from(reports.killed_while_appending);
        reported.push(reports.committed);
        check_rounds(&path, &reported);
    }
    // Not an assertion (it depends on timing): how many kills hit an append.
    eprintln!(
        "{inside_an_append} of {} kills landed inside an append",
        pauses_us.len()
    );
}

#[test]
fn writers_in_several_processes_lose_and_duplicate_nothing() {
    const PROCESSES: u64 = 4;
    const APPENDS: u64 = 100;
    let dir = tempfile::tempdir().expect("a temporary directory");
    // The file does not exist yet: the processes race to create it, too.
    let path = dir.path().join("shared.db");
    let children: Vec<Child> = (0..PROCESSES)
        .map(|writer| {
            child("race", &path, writer, APPENDS)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("a writer starts")
        })
        .collect();
    for (writer, child) in children.into_iter().enumerate() {
        let output = child.wait_with_output().expect("the writer ends");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains(&format!("FACTUM done {APPENDS}")),
            "writer {writer} failed ({}):\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    runtime().block_on(async {
        let store = SqliteStore::open(&path).await.expect("open");
        let all = store.read_all(0, usize::MAX).await.expect("read_all");
        assert_eq!(all.len() as u64, PROCESSES * APPENDS, "nothing is lost");
        assert!(
            all.windows(2)
                .all(|pair| pair[0].position < pair[1].position),
            "positions strictly increase"
        );
        let written: HashSet<(u64, u64)> = all
            .iter()
            .map(|event| {
                let payload: serde_json::Value =
                    serde_json::from_str(event.payload.get()).expect("JSON");
                (
                    payload["writer"].as_u64().expect("writer"),
                    payload["seq"].as_u64().expect("seq"),
                )
            })
            .collect();
        let expected: HashSet<(u64, u64)> = (0..PROCESSES)
            .flat_map(|writer| (0..APPENDS).map(move |seq| (writer, seq)))
            .collect();
        assert_eq!(written, expected, "every append is stored exactly once");
        for stream in 0..SHARED_STREAMS {
            let versions: Vec<u64> = store
                .read_stream(&format!("shared-{stream}"), 1, usize::MAX)
                .await
                .expect("read_stream")
                .iter()
                .map(|event| event.stream_version)
                .collect();
            assert_eq!(
                versions,
                (1..=versions.len() as u64).collect::<Vec<_>>(),
                "shared-{stream} is gapless"
            );
        }
    });
}

#[test]
fn a_follower_waiting_in_one_process_wakes_on_an_append_of_another() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("wake.db");
    runtime().block_on(async {
        let store = SqliteStore::open(&path).await.expect("open");
        assert_eq!(store.head().await.expect("head"), None);
        let child = child("append_later", &path, 0, 300)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the child starts");
        // The child appends after ~300 ms; the wait's own timeout is ten minutes, so only
        // noticing the append ends it within the 30 s liveness bound.
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            store.wait_for_events(0, std::time::Duration::from_secs(600)),
        )
        .await
        .expect("the append of another process wakes the waiter")
        .expect("wait_for_events");
        let output = child.wait_with_output().expect("the child ends");
        assert!(
            output.status.success()
                && String::from_utf8_lossy(&output.stdout).contains("FACTUM appended"),
            "the child failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let head = store.head().await.expect("head").expect("a head");
        let page = store
            .read_all_filtered(0, 10, &["Later"])
            .await
            .expect("read_all_filtered");
        assert_eq!(page.events.len(), 1, "the child's event is read");
        assert_eq!(page.scanned_to, head.position);
    });
}
