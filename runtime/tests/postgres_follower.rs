//! The skipped-event trap, shown and fixed.
//!
//! A sequence hands out positions at insert time, but rows become visible at commit
//! time, in any order. A follower that reads `position > checkpoint` can see 2 before 1
//! commits, move its checkpoint to 2, and never see 1. The first test shows that with
//! plain SQL (a `BIGSERIAL` table, no lock). The others show that factum's store holds
//! a later append back until the earlier one has committed, so a follower of
//! `read_all` never skips, even under concurrent writers, and that positions burnt by
//! a rolled-back append leave a harmless gap.
//!
//! Needs a server: `eval "$(scripts/postgres.sh start)"`.

mod postgres_common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use factum::prelude::*;
use postgres_common::{drop_schema, events, fresh_store, raw_client};

/// Waits until some session waits for an advisory lock, proving an append is held back.
async fn wait_for_blocked_advisory_lock(client: &tokio_postgres::Client) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the second append never waited for the lock"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn the_naive_sequence_design_makes_a_follower_skip_an_event() {
    drop_schema("t_follower_naive").await;
    let setup = raw_client().await;
    setup
        .batch_execute(
            "CREATE SCHEMA t_follower_naive;
             CREATE TABLE t_follower_naive.events (position bigserial PRIMARY KEY, body text NOT NULL);",
        )
        .await
        .unwrap();

    // Writer A takes position 1 and has not committed yet.
    let mut writer_a = raw_client().await;
    let tx = writer_a.transaction().await.unwrap();
    let a: i64 = tx
        .query_one(
            "INSERT INTO t_follower_naive.events (body) VALUES ('a') RETURNING position",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // Writer B takes position 2 and commits.
    let writer_b = raw_client().await;
    let b: i64 = writer_b
        .query_one(
            "INSERT INTO t_follower_naive.events (body) VALUES ('b') RETURNING position",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(a < b);

    // The follower reads past its checkpoint and checkpoints the last position it saw.
    let follower = raw_client().await;
    let read_after = |checkpoint: i64| {
        let follower = &follower;
        async move {
            follower
                .query(
                    "SELECT position FROM t_follower_naive.events WHERE position > $1 ORDER BY position",
                    &[&checkpoint],
                )
                .await
                .unwrap()
                .iter()
                .map(|row| row.get::<_, i64>(0))
                .collect::<Vec<_>>()
        }
    };
    let mut seen = read_after(0).await;
    assert_eq!(seen, [b], "the follower sees the later event first");
    let checkpoint = b;

    tx.commit().await.unwrap();
    seen.extend(read_after(checkpoint).await);
    assert_eq!(
        seen,
        [b],
        "event {a} committed behind the checkpoint: skipped forever"
    );
    let stored: i64 = follower
        .query_one("SELECT count(*) FROM t_follower_naive.events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 2, "both events are stored; the follower saw one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn factum_holds_a_later_append_back_until_the_earlier_one_commits() {
    let store = Arc::new(fresh_store("t_follower_factum").await);
    let observer = raw_client().await;

    // Append A runs inside an open transaction: it holds position 1, uncommitted.
    let mut client = store.client().await.unwrap();
    let tx = client.transaction().await.unwrap();
    let a = store
        .append_in_transaction(&tx, "early", "T", ExpectedVersion::NoStream, &events(2))
        .await
        .unwrap();

    // Append B, on another connection and another stream, starts meanwhile.
    let late = tokio::spawn({
        let store = Arc::clone(&store);
        async move {
            store
                .append("late", "T", ExpectedVersion::NoStream, events(1))
                .await
        }
    });
    // B provably waits for the lock: it has taken no position and committed nothing.
    wait_for_blocked_advisory_lock(&observer).await;
    assert!(!late.is_finished());
    assert!(
        store.read_all(0, 100).await.unwrap().is_empty(),
        "nothing is visible while A is open"
    );

    // A follower polls all along.
    let follower = tokio::spawn({
        let store = Arc::clone(&store);
        async move {
            let mut checkpoint = 0;
            let mut seen = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(10);
            while seen.len() < 3 && Instant::now() < deadline {
                for event in store.read_all(checkpoint, 100).await.unwrap() {
                    checkpoint = event.position;
                    seen.push((event.position, event.stream_id));
                }
                tokio::task::yield_now().await;
            }
            seen
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!late.is_finished(), "B still waits while A is open");

    tx.commit().await.unwrap();
    let b = late.await.unwrap().unwrap();
    assert!(b.last_position > a.last_position);

    let seen = follower.await.unwrap();
    let streams: Vec<&str> = seen.iter().map(|(_, stream)| stream.as_str()).collect();
    assert_eq!(streams, ["early", "early", "late"], "{seen:?}");
    assert_eq!(seen[1].0, a.last_position);
    assert_eq!(seen[2].0, b.last_position);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_of_read_all_sees_every_event_under_concurrent_writers() {
    let store = Arc::new(fresh_store("t_follower_concurrent").await);
    const WRITERS: usize = 6;
    const APPENDS: u64 = 40;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let follower = tokio::spawn({
        let store = Arc::clone(&store);
        let done = Arc::clone(&done);
        async move {
            let mut checkpoint = 0;
            let mut seen = Vec::new();
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let page = store.read_all(checkpoint, 1000).await.unwrap();
                for event in &page {
                    assert!(event.position > checkpoint);
                    checkpoint = event.position;
                    seen.push(event.position);
                }
                if finished && page.is_empty() {
                    return seen;
                }
            }
        }
    });
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let store = Arc::clone(&store);
        writers.push(tokio::spawn(async move {
            for n in 0..APPENDS {
                let stream = format!("w{writer}-{}", n % 3);
                store
                    .append(&stream, "T", ExpectedVersion::Any, events(1 + n % 4))
                    .await
                    .unwrap();
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = follower.await.unwrap();

    let all: Vec<u64> = store
        .read_all(0, 1_000_000)
        .await
        .unwrap()
        .iter()
        .map(|event| event.position)
        .collect();
    assert_eq!(seen, all, "the follower saw every stored event, in order");
}

#[tokio::test]
async fn a_rolled_back_append_leaves_a_harmless_gap() {
    let store = fresh_store("t_follower_gap").await;
    let first = store
        .append("s", "T", ExpectedVersion::NoStream, events(1))
        .await
        .unwrap();

    let mut client = store.client().await.unwrap();
    let tx = client.transaction().await.unwrap();
    let burnt = store
        .append_in_transaction(&tx, "s", "T", ExpectedVersion::Exact(1), &events(2))
        .await
        .unwrap();
    tx.rollback().await.unwrap();

    let last = store
        .append("s", "T", ExpectedVersion::Exact(1), events(1))
        .await
        .unwrap();
    assert_eq!(last.stream_version, 2, "stream versions stay gapless");
    assert!(
        last.last_position > burnt.last_position,
        "positions 2 and 3 were burnt"
    );

    let after_first = store.read_all(first.last_position, 10).await.unwrap();
    assert_eq!(after_first.len(), 1);
    assert_eq!(after_first[0].position, last.last_position);
    assert_eq!(after_first[0].stream_version, 2);
}
