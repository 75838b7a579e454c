//! The NATS JetStream event bus: publish the global log, consume it into a projection
//! (also in another process), survive a server killed and restarted mid-stream, and never
//! apply an event twice.
//!
//! Needs `FACTUM_NATS_URL` and `FACTUM_NATS_SERVER` (`eval "$(scripts/nats.sh start)"`);
//! without them every test fails. The child process of the cross-process test is this
//! test binary itself, started again with the `child_process` test selected.

mod ledger_common;
mod nats_common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use factum::bus::{BusError, NatsConsumer, NatsPublisher};
use factum::cloudevents::CloudEvents;
use factum::envelope::{Metadata, NewEvent};
use factum::projection::sqlite::SqliteReadModel;
use factum::projection::{ProjectionRunner, Projector, ReadModel};
use factum::store::{EventStore, ExpectedVersion, SqliteStore};
use ledger_common::{LEDGER, Ledger, event, eventually, ledger_rows, open_store, read_models};
use nats_common::{TestServer, unique, url};

/// Generous liveness bound for anything that waits on the bus.
const LIVENESS: Duration = Duration::from_secs(60);

const ROLE: &str = "FACTUM_NATS_CHILD_ROLE";
const CHILD_DIR: &str = "FACTUM_NATS_CHILD_DIR";
const CHILD_STREAM: &str = "FACTUM_NATS_CHILD_STREAM";
const CHILD_UNTIL: &str = "FACTUM_NATS_CHILD_UNTIL";

/// Appends `count` events to each of `streams` streams, in batches of 5; returns the last
/// position.
async fn append(store: &SqliteStore, prefix: &str, streams: u64, count: u64) -> u64 {
    let mut last = 0;
    for stream in 0..streams {
        for batch in 0..count.div_ceil(5) {
            let events = (batch * 5..((batch + 1) * 5).min(count))
                .map(event)
                .collect();
            last = store
                .append(
                    &format!("{prefix}-{stream}"),
                    "Clock",
                    ExpectedVersion::Any,
                    events,
                )
                .await
                .unwrap()
                .last_position;
        }
    }
    last
}

fn publisher(
    store: &SqliteStore,
    checkpoints: &SqliteReadModel,
    url: &str,
    stream: &str,
    prefix: &str,
) -> NatsPublisher<SqliteStore, SqliteReadModel> {
    NatsPublisher::new(store.clone(), checkpoints.clone(), url)
        .stream(stream)
        .subject_prefix(prefix)
        .batch_size(64)
        .retry_backoff(Duration::from_millis(50), Duration::from_millis(500))
        .idle_wait(Duration::from_millis(200))
}

fn consumer(read_models: &SqliteReadModel, url: &str, stream: &str) -> NatsConsumer<Ledger> {
    NatsConsumer::new(
        Projector::new(Ledger, read_models.clone()),
        url,
        "ledger_bus",
    )
    .stream(stream)
    .batch_size(50)
    .idle_wait(Duration::from_millis(200))
    .retry_backoff(Duration::from_millis(50), Duration::from_millis(500))
}

/// Every position from 1 to `last`, once.
fn assert_complete(rows: &[(i64, String, String, i64)], last: u64) {
    let positions: Vec<i64> = rows.iter().map(|row| row.0).collect();
    let expected: Vec<i64> = (1..=last as i64).collect();
    assert_eq!(positions.len(), expected.len(), "events applied");
    assert_eq!(positions, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_and_consumed_equals_a_direct_catch_up_and_malformed_messages_are_reported() {
    let url = url();
    let (stream, prefix) = unique("equal");
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let last = append(&store, "clock", 3, 40).await;

    let checkpoints = read_models(dir.path(), "publisher").await;
    let mut publisher = publisher(&store, &checkpoints, &url, &stream, &prefix);
    let published = publisher.publish_pending().await.unwrap();
    assert_eq!(
        (
            published.published,
            published.duplicates,
            published.checkpoint
        ),
        (last, 0, last)
    );

    // Something else writes garbage onto the stream's subjects.
    let client = async_nats::connect(url.as_str()).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    let garbage_subject = format!("{prefix}.Clock.Ticked");
    let garbage = jetstream
        .publish(garbage_subject.clone(), "not an event".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let more = append(&store, "late", 1, 7).await;
    publisher.publish_pending().await.unwrap();

    let consumed_models = read_models(dir.path(), "consumer").await;
    let mut consumer = consumer(&consumed_models, &url, &stream);
    let consumed = consumer.consume_available().await.unwrap();
    assert_eq!(consumed.checkpoint, more);
    assert_eq!(consumed.applied, more);
    assert_eq!(consumed.malformed.len(), 1, "{:?}", consumed.malformed);
    match &consumed.malformed[0] {
        BusError::Malformed {
            subject,
            stream_sequence,
            stream: named,
            ..
        } => {
            assert_eq!(
                (subject, *stream_sequence, named),
                (&garbage_subject, garbage.sequence, &stream)
            );
        }
        other => panic!("expected a malformed message, got {other}"),
    }
    let message = consumed.malformed[0].to_string();
    assert!(message.contains("is not a recorded event"), "{message}");

    // The same projection fed straight from the store.
    let direct = read_models(dir.path(), "direct").await;
    let runner = ProjectionRunner::new(store.clone());
    runner
        .catch_up(&mut runner.projector(Ledger, direct.clone()))
        .await
        .unwrap();
    let rows = ledger_rows(&consumed_models);
    assert_complete(&rows, more);
    assert_eq!(rows, ledger_rows(&direct));
    assert!(consumed_models.parked(LEDGER).await.unwrap().is_empty());

    // Nothing new: a second round reads nothing and applies nothing.
    let again = consumer.consume_available().await.unwrap();
    assert_eq!((again.messages, again.applied), (0, 0));
}

/// The child's side: does nothing unless started by a test below as a child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    assert_eq!(role, "consumer", "unknown role");
    let dir = PathBuf::from(std::env::var(CHILD_DIR).expect("the child's directory"));
    let stream = std::env::var(CHILD_STREAM).expect("the stream");
    let until: u64 = std::env::var(CHILD_UNTIL)
        .expect("the last position")
        .parse()
        .expect("a position");
    let read_models = read_models(&dir, "child").await;
    let mut handle = consumer(&read_models, &url(), &stream).spawn();
    let reached = tokio::time::timeout(LIVENESS, handle.wait_for(until))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the child did not reach position {until}: last error {:?}",
                handle.last_error()
            )
        })
        .expect("the child's consumer");
    handle
        .stop()
        .await
        .expect("the child's consumer stops cleanly");
    println!("FACTUM consumed up to {reached}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_in_another_process_builds_the_projection() {
    let url = url();
    let (stream, prefix) = unique("process");
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let checkpoints = read_models(dir.path(), "publisher").await;
    let first = append(&store, "a", 2, 30).await;
    let mut handle = publisher(&store, &checkpoints, &url, &stream, &prefix).spawn();
    handle.wait_for(first).await.unwrap();

    // The child starts while the log keeps growing; it must see all of it.
    let last_after = first + 2 * 25;
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, "consumer")
        .env(CHILD_DIR, dir.path())
        .env(CHILD_STREAM, &stream)
        .env(CHILD_UNTIL, last_after.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let last = append(&store, "b", 2, 25).await;
    assert_eq!(last, last_after);
    handle.wait_for(last).await.unwrap();

    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains(&format!("FACTUM consumed up to {last}")),
        "the child failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    handle.stop().await.unwrap();

    let child_models = read_models(dir.path(), "child").await;
    let rows = ledger_rows(&child_models);
    assert_complete(&rows, last);
    let stored = store.read_all(0, 1000).await.unwrap();
    let expected: Vec<_> = stored
        .iter()
        .map(|event| {
            (
                event.position as i64,
                event.event_id.to_string(),
                event.stream_id.clone(),
                event.stream_version as i64,
            )
        })
        .collect();
    assert_eq!(rows, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_and_restarted_mid_stream_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(dir.path());
    let url = server.url();
    let (stream, prefix) = unique("restart");
    let store = open_store(dir.path()).await;
    let checkpoints = read_models(dir.path(), "publisher").await;
    let consumer_models = read_models(dir.path(), "consumer").await;

    let mut publishing = publisher(&store, &checkpoints, &url, &stream, &prefix).spawn();
    let first = append(&store, "before", 2, 20).await;
    publishing.wait_for(first).await.unwrap();
    let mut consuming = consumer(&consumer_models, &url, &stream).spawn();

    // Writers keep appending while the server goes away and comes back.
    let writer_store = store.clone();
    let writers = tokio::spawn(async move {
        let mut last = 0;
        for round in 0..60u64 {
            last = writer_store
                .append(
                    &format!("during-{}", round % 4),
                    "Clock",
                    ExpectedVersion::Any,
                    (0..3).map(|n| event(round * 3 + n)).collect(),
                )
                .await
                .unwrap()
                .last_position;
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        last
    });

    // Kill the server once the publisher is in the middle of the writers' events.
    eventually(
        "the publisher reaches the writers' events",
        LIVENESS,
        || {
            let checkpoint = publishing.checkpoint().unwrap_or(0);
            async move { checkpoint > first + 20 }
        },
    )
    .await;
    server.kill();
    let down_at = publishing.checkpoint().unwrap_or(0);
    // While it is down, events keep committing and nobody can publish them.
    let store_head = store.clone();
    eventually("events commit while the server is down", LIVENESS, || {
        let store = store_head.clone();
        async move {
            store
                .head()
                .await
                .unwrap()
                .is_some_and(|head| head.position > down_at + 30)
        }
    })
    .await;
    eventually("the publisher notices the outage", LIVENESS, || {
        let failed = publishing.last_error().is_some();
        async move { failed }
    })
    .await;
    server.restart();

    let last = writers.await.unwrap();
    let tail = append(&store, "after", 1, 10).await;
    assert!(tail > last);
    tokio::time::timeout(LIVENESS, publishing.wait_for(tail))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the publisher did not resume: {:?}",
                publishing.last_error()
            )
        })
        .unwrap();
    tokio::time::timeout(LIVENESS, consuming.wait_for(tail))
        .await
        .unwrap_or_else(|_| panic!("the consumer did not finish: {:?}", consuming.last_error()))
        .unwrap();
    assert!(consuming.take_malformed().is_empty());
    consuming.stop().await.unwrap();
    publishing.stop().await.unwrap();

    let rows = ledger_rows(&consumer_models);
    assert_complete(&rows, tail);
    assert!(consumer_models.parked(LEDGER).await.unwrap().is_empty());
    // The stream holds each event once: the outage made no copies.
    let client = async_nats::connect(url.as_str()).await.unwrap();
    let mut info = async_nats::jetstream::new(client)
        .get_stream(&stream)
        .await
        .unwrap();
    assert_eq!(info.info().await.unwrap().state.messages, tail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_restarted_from_an_old_checkpoint_makes_no_duplicates() {
    let url = url();
    let (stream, prefix) = unique("dedupe");
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let checkpoints = read_models(dir.path(), "publisher").await;
    let last = append(&store, "c", 3, 20).await;
    let published = publisher(&store, &checkpoints, &url, &stream, &prefix)
        .publish_pending()
        .await
        .unwrap();
    assert_eq!((published.published, published.checkpoint), (last, last));

    let consumer_models = read_models(dir.path(), "consumer").await;
    let mut consumer = consumer(&consumer_models, &url, &stream);
    assert_eq!(consumer.consume_available().await.unwrap().applied, last);

    // A publisher that lost its checkpoint (crashed before committing it) starts over:
    // JetStream recognises every event by its id.
    let lost = read_models(dir.path(), "publisher-lost").await;
    let again = publisher(&store, &lost, &url, &stream, &prefix)
        .publish_pending()
        .await
        .unwrap();
    assert_eq!(
        (again.published, again.duplicates, again.checkpoint),
        (0, last, last)
    );
    // New events after the republished ones are stored once and applied once.
    let more = append(&store, "d", 1, 9).await;
    let resumed = publisher(&store, &lost, &url, &stream, &prefix)
        .publish_pending()
        .await
        .unwrap();
    assert_eq!((resumed.published, resumed.duplicates), (more - last, 0));
    let consumed = consumer.consume_available().await.unwrap();
    assert_eq!((consumed.applied, consumed.checkpoint), (more - last, more));

    // A consumer restarted from its cursor reads nothing it has applied again.
    drop(consumer);
    let mut restarted = self::consumer(&consumer_models, &url, &stream);
    let after_restart = restarted.consume_available().await.unwrap();
    assert_eq!((after_restart.messages, after_restart.applied), (0, 0));

    let rows = ledger_rows(&consumer_models);
    assert_complete(&rows, more);
    assert!(consumer_models.parked(LEDGER).await.unwrap().is_empty());
    let client = async_nats::connect(url.as_str()).await.unwrap();
    let mut info = async_nats::jetstream::new(client)
        .get_stream(&stream)
        .await
        .unwrap();
    assert_eq!(info.info().await.unwrap().state.messages, more);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    append(&store, "e", 1, 1).await;
    let checkpoints = read_models(dir.path(), "publisher").await;
    let error = publisher(&store, &checkpoints, &url(), "bad.name", "p")
        .publish_pending()
        .await
        .unwrap_err();
    assert!(error.is_fatal(), "{error}");
    assert!(
        error.to_string().contains("invalid stream name `bad.name`"),
        "{error}"
    );
    let error = publisher(&store, &checkpoints, &url(), "GOOD", "p.*")
        .publish_pending()
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("invalid subject prefix `p.*`"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_larger_than_the_server_accepts_stops_the_publisher_before_it() {
    let url = url();
    let (stream, prefix) = unique("too_large");
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let checkpoints = read_models(dir.path(), "publisher").await;
    let before = append(&store, "small", 1, 3).await;
    // The store keeps a 2 MB payload (it reads back whole); the server's default
    // max_payload is 1 MiB.
    let big = NewEvent::new(
        "Ticked",
        1,
        serde_json::value::to_raw_value(
            &serde_json::json!({ "n": 0, "blob": "x".repeat(2 << 20) }),
        )
        .unwrap(),
        Metadata::default(),
    );
    let big_id = big.event_id;
    let at = store
        .append("big", "Clock", ExpectedVersion::NoStream, vec![big])
        .await
        .unwrap()
        .last_position;
    append(&store, "after", 1, 2).await;

    for attempt in 0..2 {
        let mut publisher = publisher(&store, &checkpoints, &url, &stream, &prefix);
        let error = publisher.publish_pending().await.unwrap_err();
        assert!(error.is_fatal(), "attempt {attempt}: {error}");
        match &error {
            BusError::TooLarge {
                position,
                event_id,
                bytes,
                max_payload,
                ..
            } => {
                assert_eq!((*position, *event_id), (at, big_id), "attempt {attempt}");
                assert!(bytes > max_payload, "{bytes} > {max_payload}");
            }
            other => panic!("attempt {attempt}: expected TooLarge, got {other:?}"),
        }
        assert!(
            error.to_string().contains(&format!("position {at}")),
            "{error}"
        );
        assert_eq!(
            publisher.checkpoint().await.unwrap(),
            before,
            "attempt {attempt}: the events before it are published, none past it"
        );
    }
    // A spawned publisher ends with the same error instead of retrying forever.
    let mut handle = publisher(&store, &checkpoints, &url, &stream, &prefix).spawn();
    let ended = tokio::time::timeout(LIVENESS, handle.wait_for(at))
        .await
        .expect("the publisher ended");
    assert!(
        matches!(ended, Err(BusError::TooLarge { position, .. }) if position == at),
        "{ended:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudevents_binary_mode_is_what_the_server_stores_and_the_consumer_reads() {
    let url = url();
    let (stream, prefix) = unique("cloudevents");
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let last = append(&store, "tick", 2, 6).await;

    let checkpoints = read_models(dir.path(), "publisher").await;
    let mapping = CloudEvents::new("/services/clock", "timekeeping").unwrap();
    let mut publisher =
        publisher(&store, &checkpoints, &url, &stream, &prefix).cloudevents(mapping);
    let published = publisher.publish_pending().await.unwrap();
    assert_eq!(published.published, last);

    // What the server stores: the attributes as `ce-` headers, the payload alone as the body.
    let client = async_nats::connect(url.as_str()).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    let stored = jetstream
        .get_stream(&stream)
        .await
        .unwrap()
        .get_raw_message(1)
        .await
        .unwrap();
    let first = &store.read_all(0, 1).await.unwrap()[0];
    let header = |name: &str| {
        stored
            .headers
            .get(name)
            .map(|value| value.as_str().to_owned())
            .unwrap_or_else(|| panic!("no `{name}` header in {:?}", stored.headers))
    };
    assert_eq!(header("ce-specversion"), "1.0");
    assert_eq!(header("ce-id"), first.event_id.to_string());
    assert_eq!(header("ce-source"), "/services/clock");
    assert_eq!(header("ce-type"), "timekeeping.Clock.Ticked");
    assert_eq!(header("ce-subject"), first.stream_id);
    assert_eq!(header("ce-sequence"), "00000000000000000001");
    assert_eq!(header("ce-streamversion"), "1");
    assert_eq!(header("ce-eventversion"), "1");
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(header("Nats-Msg-Id"), first.event_id.to_string());
    assert_eq!(stored.payload.as_ref(), first.payload.get().as_bytes());
    // Every header of `CloudEvents::to_binary` — the form the CloudEvents SDK validates in
    // codegen/tests/cloudevents.rs — is on the stored message, as it is there.
    let binary = CloudEvents::new("/services/clock", "timekeeping")
        .unwrap()
        .to_binary(first)
        .unwrap();
    for (name, value) in &binary.headers {
        assert_eq!(&header(name), value, "header `{name}`");
    }

    // The factum consumer reads it as it reads envelopes: the same projection as straight
    // from the store.
    let consumed_models = read_models(dir.path(), "consumer").await;
    let consumed = consumer(&consumed_models, &url, &stream)
        .consume_available()
        .await
        .unwrap();
    assert_eq!((consumed.applied, consumed.checkpoint), (last, last));
    assert!(consumed.malformed.is_empty(), "{:?}", consumed.malformed);
    let direct = read_models(dir.path(), "direct").await;
    let runner = ProjectionRunner::new(store.clone());
    runner
        .catch_up(&mut runner.projector(Ledger, direct.clone()))
        .await
        .unwrap();
    assert_eq!(ledger_rows(&consumed_models), ledger_rows(&direct));
}
