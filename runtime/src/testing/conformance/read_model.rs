//! The read-model conformance suite: what the projection runner, the reactors and the
//! process managers rely on from a [`ReadModel`], written once and run against every
//! backend (SQLite, PostgreSQL, and yours).
//!
//! Each check works on targets of its own (named `conformance_rm_*`), which it resets
//! first, so checks can share one database and a run can follow an earlier one.
//! [`run_read_model_contract`] runs them all; [`the_write_lock_serialises`] takes a
//! second handle on the same database, as a second process would have.

use std::time::Duration;

use serde_json::json;

use crate::envelope::{Metadata, NewEvent, RecordedEvent};
use crate::projection::{
    ParkedEvent, PartitionOffset, ReadModel, ReadModelTx, Target, VersionState,
};
use crate::store::{EventStore, ExpectedVersion, MemoryStore};

/// Runs every check on `read_model`, and [`the_write_lock_serialises`] with `other`, a
/// second handle on the same database.
pub async fn run_read_model_contract<R: ReadModel>(read_model: R, other: R) {
    checkpoints_commit_with_the_transaction(&read_model).await;
    dead_letters(&read_model).await;
    versions_and_switch_over(&read_model).await;
    reset_empties_a_version(&read_model).await;
    partition_offsets_commit_with_the_transaction(&read_model).await;
    the_write_lock_serialises(&read_model, &other).await;
}

fn target_of(name: &'static str, version: u32) -> Target {
    Target { name, version }
}

async fn reset<R: ReadModel>(read_model: &R, target: Target) {
    read_model
        .reset(target)
        .await
        .unwrap_or_else(|error| panic!("resetting {target}: {error}"));
}

async fn checkpoint<R: ReadModel>(read_model: &R, target: Target) -> Option<u64> {
    read_model
        .checkpoint(target)
        .await
        .unwrap_or_else(|error| panic!("reading the checkpoint of {target}: {error}"))
}

async fn begin<R: ReadModel>(read_model: &R, target: Target) -> R::Tx {
    read_model
        .begin(target)
        .await
        .unwrap_or_else(|error| panic!("beginning on {target}: {error}"))
}

async fn commit<R: ReadModel>(read_model: &R, tx: R::Tx, checkpoint: u64) {
    read_model
        .commit(tx, checkpoint)
        .await
        .unwrap_or_else(|error| panic!("committing checkpoint {checkpoint}: {error}"));
}

/// A checkpoint is `None` until a transaction commits one; a transaction sees the
/// committed checkpoint when it begins; a rolled-back transaction changes nothing; the
/// last commit stands, whether it moves the checkpoint forward or keeps it.
pub async fn checkpoints_commit_with_the_transaction<R: ReadModel>(read_model: &R) {
    let target = target_of("conformance_rm_checkpoints", 1);
    reset(read_model, target).await;
    assert_eq!(
        checkpoint(read_model, target).await,
        None,
        "{target}: never set up"
    );

    let tx = begin(read_model, target).await;
    assert_eq!(
        tx.checkpoint(),
        None,
        "{target}: a first transaction sees no checkpoint"
    );
    assert!(tx.is_open());
    commit(read_model, tx, 5).await;
    assert_eq!(checkpoint(read_model, target).await, Some(5));

    let tx = begin(read_model, target).await;
    assert_eq!(
        tx.checkpoint(),
        Some(5),
        "{target}: a transaction sees the committed checkpoint"
    );
    read_model
        .rollback(tx)
        .await
        .unwrap_or_else(|error| panic!("rolling back on {target}: {error}"));
    assert_eq!(
        checkpoint(read_model, target).await,
        Some(5),
        "{target}: a rollback changes nothing"
    );

    let tx = begin(read_model, target).await;
    commit(read_model, tx, 5).await;
    assert_eq!(
        checkpoint(read_model, target).await,
        Some(5),
        "{target}: committed in place"
    );
    let tx = begin(read_model, target).await;
    commit(read_model, tx, 9).await;
    assert_eq!(checkpoint(read_model, target).await, Some(9));

    let other = target_of("conformance_rm_checkpoints", 2);
    reset(read_model, other).await;
    assert_eq!(
        checkpoint(read_model, other).await,
        None,
        "another version of the same name has a checkpoint of its own"
    );
}

/// Events recorded by a real store, as a runner parks them.
async fn recorded_events() -> Vec<RecordedEvent> {
    let store = MemoryStore::new();
    let events = (1..=3)
        .map(|n| {
            NewEvent::new(
                "ConformanceParked",
                1,
                serde_json::value::to_raw_value(&json!({ "n": n, "text": "ünïcödé \"quoted\"" }))
                    .expect("a payload"),
                Metadata::default(),
            )
        })
        .collect();
    store
        .append(
            "ConformanceParked-1",
            "ConformanceParked",
            ExpectedVersion::NoStream,
            events,
        )
        .await
        .expect("append");
    store.read_all(0, 10).await.expect("read back")
}

fn same_parked(found: &ParkedEvent, expected: &ParkedEvent) -> bool {
    // A backend may keep the event as a JSON document (PostgreSQL's jsonb): its payload
    // then reads back as equal JSON, not equal bytes.
    let payload = |event: &RecordedEvent| {
        serde_json::from_str::<serde_json::Value>(event.payload.get()).expect("JSON payload")
    };
    let mut found_event = found.event.clone();
    found_event.payload = expected.event.payload.clone();
    found_event == expected.event
        && payload(&found.event) == payload(&expected.event)
        && found.error == expected.error
        && found.attempts == expected.attempts
        && found.parked_at == expected.parked_at
}

/// Parked events commit with the transaction and read back as parked, oldest first;
/// a rolled-back park leaves nothing; `unpark` removes one and says whether it did.
pub async fn dead_letters<R: ReadModel>(read_model: &R) {
    let target = target_of("conformance_rm_parked", 1);
    reset(read_model, target).await;
    let events = recorded_events().await;
    let parked: Vec<ParkedEvent> = events
        .iter()
        .enumerate()
        .map(|(n, event)| ParkedEvent {
            event: event.clone(),
            error: format!("handler failed on event {n}: no such table: `tasks`\nsecond line"),
            attempts: 3,
            parked_at: crate::envelope::now(),
        })
        .collect();

    let mut tx = begin(read_model, target).await;
    // Parked out of order: read back by position.
    for parked in [&parked[1], &parked[0]] {
        read_model
            .park(&mut tx, parked)
            .await
            .unwrap_or_else(|error| panic!("parking on {target}: {error}"));
    }
    commit(read_model, tx, events[1].position).await;

    let mut tx = begin(read_model, target).await;
    read_model
        .park(&mut tx, &parked[2])
        .await
        .unwrap_or_else(|error| panic!("parking on {target}: {error}"));
    read_model
        .rollback(tx)
        .await
        .unwrap_or_else(|error| panic!("rolling back on {target}: {error}"));

    let found = read_model
        .parked(target)
        .await
        .unwrap_or_else(|error| panic!("reading the parked events of {target}: {error}"));
    assert_eq!(
        found.len(),
        2,
        "{target}: two parked, one rolled back: {found:#?}"
    );
    for (found, expected) in found.iter().zip(&parked[..2]) {
        assert!(
            same_parked(found, expected),
            "{target}: a parked event reads back as parked:\n found {found:#?}\n expected {expected:#?}"
        );
    }

    let mut tx = begin(read_model, target).await;
    let removed = read_model
        .unpark(&mut tx, events[0].position)
        .await
        .unwrap_or_else(|error| panic!("unparking on {target}: {error}"));
    let again = read_model
        .unpark(&mut tx, events[2].position)
        .await
        .unwrap_or_else(|error| panic!("unparking on {target}: {error}"));
    commit(read_model, tx, events[1].position).await;
    assert!(removed, "{target}: unpark finds a parked event");
    assert!(
        !again,
        "{target}: unpark says when nothing was parked there"
    );
    let found = read_model
        .parked(target)
        .await
        .unwrap_or_else(|error| panic!("reading the parked events of {target}: {error}"));
    assert_eq!(found.len(), 1, "{target}: one left after unparking");
    assert!(same_parked(&found[0], &parked[1]));

    let other = target_of("conformance_rm_parked", 2);
    reset(read_model, other).await;
    assert!(
        read_model.parked(other).await.expect("parked").is_empty(),
        "dead letters belong to their version"
    );
}

/// Versions are listed oldest first with their checkpoints and dead letters; activating
/// one retires the active one; activating an older version while a newer one is active
/// changes nothing and says so.
pub async fn versions_and_switch_over<R: ReadModel>(read_model: &R) {
    const NAME: &str = "conformance_rm_versions";
    for version in 1..=3 {
        reset(read_model, target_of(NAME, version)).await;
    }
    assert!(
        read_model
            .versions(NAME)
            .await
            .expect("versions")
            .is_empty(),
        "`{NAME}`: no version after a reset"
    );
    for (version, at) in [(1, 10), (2, 20)] {
        let tx = begin(read_model, target_of(NAME, version)).await;
        commit(read_model, tx, at).await;
    }
    let versions = read_model.versions(NAME).await.expect("versions");
    let outline: Vec<(u32, VersionState, u64, u64)> = versions
        .iter()
        .map(|status| {
            (
                status.version,
                status.state,
                status.checkpoint,
                status.parked,
            )
        })
        .collect();
    assert_eq!(
        outline,
        [
            (1, VersionState::Building, 10, 0),
            (2, VersionState::Building, 20, 0)
        ],
        "`{NAME}`: versions being built"
    );

    assert!(
        read_model
            .activate(target_of(NAME, 1))
            .await
            .expect("activate")
    );
    assert!(
        read_model
            .activate(target_of(NAME, 2))
            .await
            .expect("activate")
    );
    let states: Vec<(u32, VersionState)> = read_model
        .versions(NAME)
        .await
        .expect("versions")
        .iter()
        .map(|status| (status.version, status.state))
        .collect();
    assert_eq!(
        states,
        [(1, VersionState::Retired), (2, VersionState::Active)],
        "`{NAME}`: activating v2 retires v1"
    );
    assert!(
        !read_model
            .activate(target_of(NAME, 1))
            .await
            .expect("activate"),
        "`{NAME}`: an older version is not activated over a newer active one"
    );
    let active: Vec<u32> = read_model
        .versions(NAME)
        .await
        .expect("versions")
        .iter()
        .filter(|status| status.state == VersionState::Active)
        .map(|status| status.version)
        .collect();
    assert_eq!(active, [2], "`{NAME}`: v2 stays active");
}

/// A reset takes the version out of the catalog and empties its checkpoint and dead
/// letters; the next transaction starts it again from nothing.
pub async fn reset_empties_a_version<R: ReadModel>(read_model: &R) {
    let target = target_of("conformance_rm_reset", 1);
    reset(read_model, target).await;
    let event = recorded_events().await.remove(0);
    let mut tx = begin(read_model, target).await;
    read_model
        .park(
            &mut tx,
            &ParkedEvent {
                event: event.clone(),
                error: "failed".into(),
                attempts: 1,
                parked_at: crate::envelope::now(),
            },
        )
        .await
        .expect("park");
    commit(read_model, tx, event.position).await;
    assert!(read_model.activate(target).await.expect("activate"));

    reset(read_model, target).await;
    assert_eq!(
        checkpoint(read_model, target).await,
        None,
        "{target}: reset"
    );
    assert!(read_model.parked(target).await.expect("parked").is_empty());
    assert!(
        read_model
            .versions(target.name)
            .await
            .expect("versions")
            .is_empty(),
        "{target}: out of the catalog"
    );
    let tx = begin(read_model, target).await;
    assert_eq!(tx.checkpoint(), None, "{target}: starts again from nothing");
    commit(read_model, tx, 1).await;
    assert_eq!(checkpoint(read_model, target).await, Some(1));
}

fn offset(topic: &str, partition: i32, next_offset: i64, position: u64) -> PartitionOffset {
    PartitionOffset {
        topic: topic.to_owned(),
        partition,
        next_offset,
        position,
    }
}

async fn offsets_in<R: ReadModel>(read_model: &R, tx: &mut R::Tx) -> Vec<PartitionOffset> {
    read_model
        .partition_offsets_in(tx)
        .await
        .expect("partition offsets in a transaction")
}

/// Partition offsets (of a projection fed from Kafka) commit with the transaction that
/// stores them, replace the one of their topic and partition, are seen by the next
/// transaction, vanish with a rolled-back one, belong to one version, and a reset empties
/// them.
pub async fn partition_offsets_commit_with_the_transaction<R: ReadModel>(read_model: &R) {
    let target = target_of("conformance_rm_partitions", 1);
    let other_version = target_of("conformance_rm_partitions", 2);
    reset(read_model, target).await;
    reset(read_model, other_version).await;
    let stored = |target| async move {
        read_model
            .partition_offsets(target)
            .await
            .unwrap_or_else(|error| panic!("reading the partition offsets of {target}: {error}"))
    };
    assert!(stored(target).await.is_empty(), "{target}: none yet");

    let mut tx = begin(read_model, target).await;
    read_model
        .store_partition_offsets(
            &mut tx,
            &[
                offset("domain-events.Order", 1, 10, 42),
                offset("domain-events.Order", 0, 3, 7),
            ],
        )
        .await
        .expect("store partition offsets");
    commit(read_model, tx, 0).await;
    let first = vec![
        offset("domain-events.Order", 0, 3, 7),
        offset("domain-events.Order", 1, 10, 42),
    ];
    assert_eq!(
        stored(target).await,
        first,
        "{target}: by topic and partition"
    );
    assert!(
        stored(other_version).await.is_empty(),
        "{other_version}: another version's offsets are its own"
    );

    let mut tx = begin(read_model, target).await;
    assert_eq!(
        offsets_in(read_model, &mut tx).await,
        first,
        "{target}: a transaction sees the committed offsets"
    );
    read_model
        .store_partition_offsets(
            &mut tx,
            &[
                offset("domain-events.Order", 0, 9, 50),
                offset("domain-events.Task", 2, 1, 51),
            ],
        )
        .await
        .expect("store partition offsets");
    assert_eq!(
        offsets_in(read_model, &mut tx).await.len(),
        3,
        "{target}: the transaction sees its own writes"
    );
    read_model.rollback(tx).await.expect("rollback");
    assert_eq!(
        stored(target).await,
        first,
        "{target}: a rollback keeps none"
    );

    let mut tx = begin(read_model, target).await;
    read_model
        .store_partition_offsets(&mut tx, &[offset("domain-events.Order", 0, 9, 50)])
        .await
        .expect("store partition offsets");
    commit(read_model, tx, 0).await;
    assert_eq!(
        stored(target).await,
        vec![
            offset("domain-events.Order", 0, 9, 50),
            offset("domain-events.Order", 1, 10, 42),
        ],
        "{target}: a stored offset replaces its partition's"
    );

    reset(read_model, target).await;
    assert!(
        stored(target).await.is_empty(),
        "{target}: a reset empties them"
    );
}

/// A transaction holds its target's write lock until it ends: a second one — begun
/// through `other`, another handle on the same database — waits, then sees what the
/// first committed. That is what makes two runners of one projection apply each event
/// once.
pub async fn the_write_lock_serialises<R: ReadModel>(read_model: &R, other: &R) {
    let target = target_of("conformance_rm_lock", 1);
    reset(read_model, target).await;
    let first = begin(read_model, target).await;
    let other = other.clone();
    let (began, mut began_rx) = tokio::sync::oneshot::channel();
    let second = tokio::spawn(async move {
        let tx = other
            .begin(target)
            .await
            .unwrap_or_else(|error| panic!("beginning the second transaction: {error}"));
        let _ = began.send(());
        let seen = tx.checkpoint();
        other
            .commit(tx, 2)
            .await
            .unwrap_or_else(|error| panic!("committing the second transaction: {error}"));
        seen
    });
    // However long the first holds the lock, the second must not begin.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        began_rx.try_recv().is_err(),
        "{target}: a second transaction began while the first held the write lock"
    );
    commit(read_model, first, 1).await;
    let seen = second.await.expect("the second transaction's task");
    assert_eq!(
        seen,
        Some(1),
        "{target}: the second transaction sees what the first committed"
    );
    assert_eq!(checkpoint(read_model, target).await, Some(2));
}
