//! The skipped-event trap, shown and fixed.
//!
//! A sequence hands out positions at insert time, but rows become visible at commit
//! time, in any order. A follower that reads `position > checkpoint` can see 2 before 1
//! commits, move its checkpoint to 2, and never see 1. The first test shows that with
//! plain SQL (a `BIGSERIAL` table, no lock). The others show that factum's store never
//! lets a follower of `read_all` skip: an append inside a caller's transaction holds
//! later appends back until it ends; concurrent appends commit side by side, and
//! followers read only up to the settled position, which never passes an append still
//! committing (a decision's read past it tells them nothing); 32 writers and two
//! followers agree on every event; positions burnt by a rolled-back append leave a
//! harmless gap.
//!
//! Needs a server: `eval "$(scripts/postgres.sh start)"`.

mod postgres_common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use factum::prelude::*;
use factum::store::decision::{DecisionStore, Query, QueryItem};
use factum::store::{CommandRecord, PostgresStore};
use postgres_common::{drop_schema, event, events, fresh_store, raw_client, url};

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

/// A concurrent append is one call of the store's `factum_append_one` in its own
/// transaction. Called here exactly as the store calls it, but inside a transaction left
/// open, it stands for an append between its insert and its commit: the next append (to
/// another stream) does not wait for it and commits a higher position, and followers
/// read nothing past the open one until it commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn followers_wait_for_a_concurrent_append_still_committing() {
    let store = fresh_store("t_follower_settled").await;
    let first = store
        .append("before", "T", ExpectedVersion::NoStream, events(1))
        .await
        .unwrap();

    let mut open = raw_client().await;
    let tx = open.transaction().await.unwrap();
    let held = event(7);
    let payload = held.payload.get();
    let metadata = serde_json::to_string(&held.metadata).unwrap();
    let row = tx
        .query_one(
            "SELECT o_status, o_last_position FROM t_follower_settled.factum_append_one(\
             $1, $2, 1, 0, $3, $4, $5, $6, $7, $8, false)",
            &[
                &"open",
                &"T",
                &held.event_id,
                &held.name,
                &i64::from(held.schema_version),
                &payload,
                &held.timestamp,
                &metadata,
            ],
        )
        .await
        .unwrap();
    let (status, open_position): (i32, i64) = (row.get(0), row.get(1));
    assert_eq!(status, 0, "written");

    // Not held back: appends to other streams commit while the open one is running.
    let late = tokio::time::timeout(
        Duration::from_secs(10),
        store.append("late", "T", ExpectedVersion::NoStream, events(2)),
    )
    .await
    .expect("a concurrent append does not wait for another stream's commit")
    .unwrap();
    assert!(late.last_position > open_position as u64);

    // The late events are committed, but nothing past the open append is settled.
    let read: Vec<u64> = store
        .read_all(0, 100)
        .await
        .unwrap()
        .iter()
        .map(|event| event.position)
        .collect();
    assert_eq!(read, [first.last_position]);
    assert_eq!(
        store.head().await.unwrap().map(|head| head.position),
        Some(first.last_position)
    );
    let filtered = store.read_all_filtered(0, 100, &["Ticked"]).await.unwrap();
    assert_eq!(filtered.events.len(), 1);
    assert_eq!(filtered.scanned_to, first.last_position);
    // Its own stream reads back at once: stream reads need no settling.
    assert_eq!(store.read_stream("late", 1, 10).await.unwrap().len(), 2);
    // A decision's read by tags goes past the open append, which carries none of them
    // (every writer of its tags has ended), without telling followers of that position.
    let by_tag = Query::new([QueryItem::names(["Ticked"]).with_tags([Tag::new("course", "c1")])]);
    let decided_on = store.read_matching(&by_tag, 0).await.unwrap();
    assert!(decided_on.events.is_empty());
    assert!(decided_on.read_to >= late.last_position);
    assert_eq!(
        store.head().await.unwrap().map(|head| head.position),
        Some(first.last_position),
        "followers still wait for the open append"
    );
    // A query with an item of any tags reads up to the settled head only.
    let by_name = Query::new([QueryItem::names(["Ticked"])]);
    let decided_on = store.read_matching(&by_name, 0).await.unwrap();
    assert_eq!(decided_on.read_to, first.last_position);
    assert_eq!(decided_on.events.len(), 1);

    // A follower waiting for the next event wakes when the open append commits.
    let waiting = tokio::spawn({
        let store = store.clone();
        let after = first.last_position;
        async move {
            store
                .wait_for_events(after, Duration::from_secs(20))
                .await
                .unwrap();
            store.read_all(after, 100).await.unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished(), "nothing settled yet");
    tx.commit().await.unwrap();
    let woken: Vec<(u64, String)> = waiting
        .await
        .unwrap()
        .into_iter()
        .map(|event| (event.position, event.stream_id))
        .collect();
    assert_eq!(
        woken,
        [
            (open_position as u64, "open".to_owned()),
            (late.last_position - 1, "late".to_owned()),
            (late.last_position, "late".to_owned()),
        ]
    );
}

/// 32 writers append at once (single events, batches, commands, and appends inside
/// transactions of their own), while one follower reads `read_all` and another
/// `read_all_filtered`, each waking on `wait_for_events`. Both see every event they
/// follow exactly once, in position order; the log's hash chain holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_writers_and_followers_that_miss_nothing() {
    const SCHEMA: &str = "t_follower_32";
    const WRITERS: u64 = 32;
    const APPENDS: u64 = 25;
    drop_schema(SCHEMA).await;
    let store = PostgresStore::builder(url())
        .schema(SCHEMA)
        .pool_size(40)
        .connect()
        .await
        .unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let follower = |filtered: bool| {
        let store = store.clone();
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut checkpoint = 0;
            let mut seen = Vec::new();
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let (page, scanned_to) = if filtered {
                    let page = store
                        .read_all_filtered(checkpoint, 97, &["Ticked"])
                        .await
                        .unwrap();
                    (page.events, page.scanned_to)
                } else {
                    let page = store.read_all(checkpoint, 97).await.unwrap();
                    let last = page.last().map_or(checkpoint, |event| event.position);
                    (page, last)
                };
                for event in &page {
                    assert!(event.position > checkpoint, "in order, never twice");
                    seen.push(event.position);
                }
                assert!(scanned_to >= checkpoint);
                checkpoint = scanned_to;
                if page.is_empty() {
                    if finished {
                        return seen;
                    }
                    store
                        .wait_for_events(checkpoint, Duration::from_millis(200))
                        .await
                        .unwrap();
                }
            }
        })
    };
    let all_follower = follower(false);
    let filtered_follower = follower(true);

    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for n in 0..APPENDS {
                let stream = format!("w{writer}-{}", n % 4);
                match (writer + n) % 4 {
                    0 | 1 => {
                        store
                            .append(&stream, "T", ExpectedVersion::Any, events(1 + n % 3))
                            .await
                            .unwrap();
                    }
                    2 => {
                        let command = CommandRecord::new(factum::uuid::Uuid::now_v7(), "f");
                        store
                            .append_command(&stream, "T", ExpectedVersion::Any, events(2), command)
                            .await
                            .unwrap();
                    }
                    _ => {
                        let mut client = store.client().await.unwrap();
                        let tx = client.transaction().await.unwrap();
                        store
                            .append_in_transaction(
                                &tx,
                                &stream,
                                "T",
                                ExpectedVersion::Any,
                                &events(1),
                            )
                            .await
                            .unwrap();
                        tx.commit().await.unwrap();
                    }
                }
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen_all = all_follower.await.unwrap();
    let seen_filtered = filtered_follower.await.unwrap();

    let all: Vec<u64> = store
        .read_all(0, 1_000_000)
        .await
        .unwrap()
        .iter()
        .map(|event| event.position)
        .collect();
    let expected: u64 = (0..WRITERS)
        .flat_map(|writer| {
            (0..APPENDS).map(move |n| match (writer + n) % 4 {
                0 | 1 => 1 + n % 3,
                2 => 2,
                _ => 1,
            })
        })
        .sum();
    assert_eq!(all.len() as u64, expected, "every appended event is stored");
    assert_eq!(
        seen_all, all,
        "the follower of read_all saw every event, in order"
    );
    assert_eq!(
        seen_filtered, all,
        "the follower of read_all_filtered saw every event, in order"
    );
    let verification = factum::integrity::TamperEvident::verify(&store)
        .await
        .unwrap();
    assert!(verification.is_intact(), "{verification}");
}

/// A store that has heard of no head yet (opened while appends run) asks the server for
/// the settled head every time: it must never find none, nor one behind an earlier
/// answer. Migration 9 wrapped the bound of an append that read the last position after
/// the question did to below every event, and answered "no events" now and then.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_opened_while_appends_run_sees_the_settled_head() {
    const SCHEMA: &str = "follower_settled_head";
    let store = fresh_store(SCHEMA).await;
    store
        .append("first", "ticker", ExpectedVersion::NoStream, events(1))
        .await
        .unwrap();
    let writers: Vec<_> = (0..4u64)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                for n in 0..400 {
                    store
                        .append(
                            &format!("writer-{writer}-{}", n % 8),
                            "ticker",
                            ExpectedVersion::Any,
                            vec![event(n)],
                        )
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let mut newest = 1;
    let mut looks = 0;
    while !writers.iter().all(|writer| writer.is_finished()) {
        let fresh = PostgresStore::builder(url())
            .schema(SCHEMA)
            .pool_size(1)
            .connect()
            .await
            .unwrap();
        for _ in 0..5 {
            let head = fresh.head().await.unwrap().map(|head| head.position);
            looks += 1;
            assert!(
                head.is_some_and(|head| head >= newest),
                "look {looks}: settled head {head:?}, after {newest}"
            );
            newest = head.unwrap_or(newest);
        }
    }
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(
        store.head().await.unwrap().map(|head| head.position),
        Some(1601)
    );
}
