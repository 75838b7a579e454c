//! Crash safety: a writer process killed with SIGKILL while appending 50-event batches
//! leaves no partial batch behind, and every batch it reported as committed is stored.
//!
//! The writer is this test binary itself, run again as a child process whose only test is
//! `crash_writer_child` (with the variable `FACTUM_PG_CRASH_WRITER` set): no other binary
//! has to be built, or could be stale. Needs a server: `eval "$(scripts/postgres.sh start)"`.

mod postgres_common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use factum::prelude::*;
use postgres_common::{event, fresh_store, url};

const BATCH: u64 = 50;
const SCHEMA: &str = "t_crash";

/// The variable that makes this binary's `crash_writer_child` test the writer.
const WRITER_ROLE: &str = "FACTUM_PG_CRASH_WRITER";

/// This test binary, to be run again as the writer.
fn writer_command() -> Command {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut command = Command::new(exe);
    command
        .args([
            "--exact",
            "crash_writer_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WRITER_ROLE, "1");
    command
}

/// The writer's entry point when this binary runs as the child (see the module doc); in
/// the normal test run it has nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_writer_child() {
    if std::env::var_os(WRITER_ROLE).is_none() {
        return;
    }
    if let Err(error) = writer::run(&url(), SCHEMA).await {
        eprintln!("the crash writer stopped: {error}");
        std::process::exit(1);
    }
}

/// Appends 50-event batches in a loop, from two tasks: one through `EventStore::append`
/// (one autocommit call), one through `PostgresStore::append_in_transaction` with a pause
/// before each commit, so that a kill often lands inside an open transaction. After each
/// commit it prints `committed <batch> <stream> <stream version> <last position>`. Every
/// event's payload is `{"batch": <batch>, "index": <0..49>}`. It stops by itself after 60
/// seconds.
mod writer {
    use std::io::Write;
    use std::time::{Duration, Instant};

    use factum::prelude::*;
    use factum::store::PostgresStore;

    pub const BATCH: u64 = 50;

    fn batch(id: u64) -> Vec<NewEvent> {
        (0..BATCH)
            .map(|index| {
                let payload = serde_json::value::to_raw_value(
                    &serde_json::json!({ "batch": id, "index": index }),
                )
                .expect("a JSON object serialises");
                NewEvent::new("Written", 1, payload, Metadata::default())
            })
            .collect()
    }

    fn report(id: u64, stream: &str, outcome: factum::store::AppendOutcome) {
        let mut out = std::io::stdout().lock();
        // The test kills us: a failed write to a closed pipe is no reason to panic.
        let _ = writeln!(
            out,
            "committed {id} {stream} {} {}",
            outcome.stream_version, outcome.last_position
        );
        let _ = out.flush();
    }

    pub async fn run(url: &str, schema: &str) -> Result<(), Box<dyn std::error::Error>> {
        let store = PostgresStore::builder(url)
            .schema(schema)
            .pool_size(4)
            .connect()
            .await?;
        let deadline = Instant::now() + Duration::from_secs(60);

        let autocommit = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let id = n * 2;
                    let stream = format!("auto-{}", n % 5);
                    let outcome = store
                        .append(&stream, "Crash", ExpectedVersion::Any, batch(id))
                        .await?;
                    report(id, &stream, outcome);
                    n += 1;
                }
                Ok::<_, StoreError>(())
            })
        };
        let transactional = tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                let id = n * 2 + 1;
                let stream = format!("tx-{}", n % 5);
                let mut client = store.client().await?;
                let tx = client
                    .transaction()
                    .await
                    .map_err(|e| StoreError::Backend(e.into()))?;
                let outcome = store
                    .append_in_transaction(&tx, &stream, "Crash", ExpectedVersion::Any, &batch(id))
                    .await?;
                tokio::time::sleep(Duration::from_millis(2)).await;
                tx.commit()
                    .await
                    .map_err(|e| StoreError::Backend(e.into()))?;
                report(id, &stream, outcome);
                n += 1;
            }
            Ok::<_, StoreError>(())
        });
        autocommit.await??;
        transactional.await??;
        Ok(())
    }
}

/// One `committed <batch> <stream> <version> <position>` line of the writer.
#[derive(Debug)]
struct Reported {
    batch: u64,
    stream: String,
    version: u64,
    position: u64,
}

fn parse(line: &str) -> Reported {
    let fields: Vec<&str> = line.split_whitespace().collect();
    match fields.as_slice() {
        ["committed", batch, stream, version, position] => Reported {
            batch: batch.parse().unwrap(),
            stream: (*stream).to_owned(),
            version: version.parse().unwrap(),
            position: position.parse().unwrap(),
        },
        _ => panic!("unexpected line from the writer: {line:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_writer_leaves_whole_batches_and_every_reported_one() {
    let store = fresh_store(SCHEMA).await;
    let mut child = writer_command()
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the crash writer");
    let stdout = child.stdout.take().expect("piped stdout");
    let (lines_tx, lines_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    // Let it commit a while, then kill it mid-stride.
    let mut reported = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while reported.len() < 40 {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines_rx.recv_timeout(left) {
            Ok(line) if line.starts_with("committed ") => reported.push(parse(&line)),
            Ok(_) => {}
            Err(error) => {
                let _ = child.kill();
                panic!(
                    "the writer reported {} commits, then: {error}",
                    reported.len()
                );
            }
        }
    }
    child.kill().expect("SIGKILL the writer");
    let status = child.wait().expect("reap the writer");
    assert!(
        !status.success(),
        "the writer was killed, not finished: {status:?}"
    );
    reader.join().expect("the reader thread");
    reported.extend(
        lines_rx
            .try_iter()
            .filter(|line| line.starts_with("committed "))
            .map(|line| parse(&line)),
    );

    // An append takes the append lock, so it waits until the server has ended the
    // killed writer's transaction (it aborts when the connection drops).
    store
        .append(
            "after-crash",
            "Check",
            ExpectedVersion::NoStream,
            vec![event(0)],
        )
        .await
        .expect("append after the crash");

    // Reconnect, as a restarted process would, and read everything.
    let store = fresh_reconnect().await;
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read_all(after, 10_000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.position;
        all.extend(page);
    }
    let mut batches: BTreeMap<u64, Vec<&RecordedEvent>> = BTreeMap::new();
    for record in all
        .iter()
        .filter(|record| record.stream_id != "after-crash")
    {
        let payload: serde_json::Value = serde_json::from_str(record.payload.get()).unwrap();
        let batch = payload["batch"].as_u64().unwrap();
        batches.entry(batch).or_default().push(record);
    }

    // No partial batch: every stored batch is whole, in order, contiguous in its stream.
    for (batch, records) in &batches {
        assert_eq!(records.len() as u64, BATCH, "batch {batch} is partial");
        for (index, record) in records.iter().enumerate() {
            let payload: serde_json::Value = serde_json::from_str(record.payload.get()).unwrap();
            assert_eq!(payload["index"].as_u64(), Some(index as u64));
            assert_eq!(record.stream_id, records[0].stream_id);
            assert_eq!(
                record.stream_version,
                records[0].stream_version + index as u64
            );
            assert_eq!(record.position, records[0].position + index as u64);
        }
    }
    // Every reported batch is stored where the writer was told it was.
    for report in &reported {
        let records = batches
            .get(&report.batch)
            .unwrap_or_else(|| panic!("reported batch {} is missing", report.batch));
        let last = records[records.len() - 1];
        assert_eq!(
            (last.stream_id.as_str(), last.stream_version, last.position),
            (report.stream.as_str(), report.version, report.position),
            "batch {}",
            report.batch
        );
    }
    // Stream versions stay gapless.
    let mut streams: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for record in &all {
        streams
            .entry(&record.stream_id)
            .or_default()
            .push(record.stream_version);
    }
    for (stream, versions) in streams {
        let expected: Vec<u64> = (1..=versions.len() as u64).collect();
        assert_eq!(versions, expected, "stream {stream}");
    }
    assert!(reported.len() >= 40);
    eprintln!(
        "{} batches reported, {} stored ({} events)",
        reported.len(),
        batches.len(),
        all.len()
    );
}

async fn fresh_reconnect() -> factum::store::PostgresStore {
    factum::store::PostgresStore::builder(url())
        .schema(SCHEMA)
        .connect()
        .await
        .expect("reconnect")
}
