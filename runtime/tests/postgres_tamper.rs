//! Tamper evidence on the PostgreSQL store: `verify_signed` finds every edit of the
//! stored history made with SQL — edited, deleted, swapped and inserted rows, replaced
//! hashes and checkpoints, an edit whose hash was recomputed — and reports none on an
//! untouched store; a store that checks hashes on read refuses a damaged event where an
//! unchecked one hands it on; inclusion and consistency proofs check out; a row inserted
//! without a hash is chained by the trigger.
//!
//! Needs a server: `eval "$(scripts/postgres.sh start)"`.

mod postgres_common;
mod tamper_common;

use factum::integrity::{TamperEvident, Verification};
use factum::prelude::*;
use factum::store::PostgresStore;
use postgres_common::{drop_schema, raw_client, url};
use tamper_common::{
    Dice, EVENTS, STREAMS, VERSIONS, assert_checked_reads_refuse_the_edit, detected,
    expected_kinds, intruder_key, marker, position_of, service_key, write_history,
};

async fn store(schema: &str, check_hashes: bool) -> PostgresStore {
    PostgresStore::builder(url())
        .schema(schema)
        .pool_size(2)
        .check_hashes(check_hashes)
        .connect()
        .await
        .expect("connect")
}

/// A schema holding [`write_history`]'s log and a checkpoint of it signed with the
/// service's key, and a copy of its rows in `pristine_*` to restore before each
/// tampering.
async fn pristine(schema: &str) -> (PostgresStore, tokio_postgres::Client) {
    drop_schema(schema).await;
    let store = store(schema, false).await;
    write_history(&store).await;
    store.checkpoint(&service_key()).await.expect("checkpoint");
    let raw = raw_client().await;
    raw.batch_execute(&format!(
        "CREATE TABLE \"{schema}\".pristine_events AS SELECT * FROM \"{schema}\".events;
         CREATE TABLE \"{schema}\".pristine_checkpoints AS
             SELECT * FROM \"{schema}\".checkpoints;
         -- What an intruder does first: no trigger recomputes a hash behind their back.
         SET session_replication_role = replica;"
    ))
    .await
    .expect("keep a pristine copy");
    (store, raw)
}

async fn restore(raw: &tokio_postgres::Client, schema: &str) {
    raw.batch_execute(&format!(
        "TRUNCATE \"{schema}\".events;
         INSERT INTO \"{schema}\".events OVERRIDING SYSTEM VALUE
             SELECT * FROM \"{schema}\".pristine_events;
         TRUNCATE \"{schema}\".checkpoints;
         INSERT INTO \"{schema}\".checkpoints SELECT * FROM \"{schema}\".pristine_checkpoints;"
    ))
    .await
    .expect("restore the pristine rows");
}

async fn verify(store: &PostgresStore) -> Result<Verification, String> {
    store
        .verify_signed(&service_key().verifying_key())
        .await
        .map_err(|error| error.to_string())
}

const COLUMNS: &str = "stream_id, stream_type, stream_version, event_id, name, schema_version, \
                       payload, occurred_at, metadata, hash, predecessor";

#[tokio::test]
async fn an_untouched_store_verifies_intact() {
    const SCHEMA: &str = "t_tamper_intact";
    let (store, _raw) = pristine(SCHEMA).await;
    let verification = verify(&store).await.expect("verify");
    assert!(verification.is_intact(), "{verification}");
    assert_eq!(
        (verification.events, verification.streams),
        (STREAMS * VERSIONS, STREAMS)
    );
    // Batches and commands chain as single appends do.
    store
        .append(
            "Chart-00",
            "Chart",
            ExpectedVersion::Exact(VERSIONS),
            postgres_common::events(3),
        )
        .await
        .expect("a batch");
    let command = factum::store::CommandRecord::new(uuid::Uuid::now_v7(), "f");
    store
        .append_command(
            "Chart-01",
            "Chart",
            ExpectedVersion::Exact(VERSIONS),
            postgres_common::events(2),
            command,
        )
        .await
        .expect("a command");
    let verification = verify(&store).await.expect("verify");
    assert!(verification.is_intact(), "{verification}");
    assert_eq!(verification.events, STREAMS * VERSIONS + 5);
    tamper_common::assert_proofs_hold(&store).await;
}

#[tokio::test]
async fn a_thousand_random_tamperings_are_all_found() {
    const SCHEMA: &str = "t_tamper_thousand";
    let (store, raw) = pristine(SCHEMA).await;
    let events = format!("\"{SCHEMA}\".events");
    let mut dice = Dice(0x7a3e_0003);
    for round in 0..1000 {
        restore(&raw, SCHEMA).await;
        let kind = round % 8;
        let position = 1 + dice.below(EVENTS as u64) as i64;
        let other = 1 + (position + dice.below(EVENTS as u64 - 1) as i64) % EVENTS;
        let (sql, what) = match kind {
            0 => {
                let (column, edit) = [
                    (
                        "payload",
                        "payload = replace(payload::text, 'e', 'E')::json",
                    ),
                    (
                        "metadata",
                        "metadata = replace(metadata::text, 'null', '\"x\"')::json",
                    ),
                    ("name", "name = 'NoteRemoved'"),
                    ("event_id", "event_id = gen_random_uuid()"),
                    (
                        "occurred_at",
                        "occurred_at = occurred_at + interval '1 microsecond'",
                    ),
                    ("stream_type", "stream_type = 'Chart2'"),
                ][dice.below(6) as usize];
                (
                    format!("UPDATE {events} SET {edit} WHERE position = {position}"),
                    format!("{column} of position {position} edited"),
                )
            }
            // Inside its stream: deleting a stream's last events leaves a shorter chain
            // that holds (a signed checkpoint catches that).
            1 => {
                let version = 1 + dice.below(VERSIONS - 1);
                let position = position_of(dice.below(STREAMS), version);
                (
                    format!("DELETE FROM {events} WHERE position = {position}"),
                    format!("position {position} (version {version}) deleted"),
                )
            }
            // Two events' places in the log exchanged (the unique keys step aside first).
            2 => (
                format!(
                    "CREATE TEMP TABLE swap AS SELECT * FROM {events}
                         WHERE position IN ({position}, {other});
                     UPDATE {events} SET stream_id = stream_id || '~', event_id = gen_random_uuid()
                         WHERE position = {position};
                     UPDATE {events} e SET ({COLUMNS}) = (SELECT {COLUMNS} FROM swap s
                         WHERE s.position = {position}) WHERE e.position = {other};
                     UPDATE {events} e SET ({COLUMNS}) = (SELECT {COLUMNS} FROM swap s
                         WHERE s.position = {other}) WHERE e.position = {position};
                     DROP TABLE swap;"
                ),
                format!("positions {position} and {other} swapped"),
            ),
            // A copy of an event, with a fresh id, as the next version of its stream.
            3 => (
                format!(
                    "INSERT INTO {events} ({COLUMNS})
                     SELECT e.stream_id, e.stream_type,
                            (SELECT max(stream_version) + 1 FROM {events} m
                              WHERE m.stream_id = e.stream_id),
                            gen_random_uuid(), e.name, e.schema_version, e.payload,
                            e.occurred_at, e.metadata, e.hash, e.predecessor
                       FROM {events} e WHERE e.position = {position}"
                ),
                format!("a copy of position {position} inserted"),
            ),
            // A stream's last event deleted: the chain that is left holds; the checkpoint
            // does not.
            5 => {
                let position = position_of(dice.below(STREAMS), VERSIONS);
                (
                    format!("DELETE FROM {events} WHERE position = {position}"),
                    format!("the last event, at position {position}, deleted"),
                )
            }
            // The checkpoint replaced: re-signed by another key over another root, or its
            // last position edited.
            6 => {
                let json: String = raw
                    .query_one(&format!("SELECT head FROM \"{SCHEMA}\".checkpoints"), &[])
                    .await
                    .expect("the checkpoint")
                    .get(0);
                let mut head: factum::integrity::checkpoint::SignedTreeHead =
                    serde_json::from_str(&json).expect("JSON");
                let replaced = if dice.below(2) == 0 {
                    head.head.root[0] ^= 1;
                    serde_json::to_string(&head.head.sign(&intruder_key())).unwrap()
                } else {
                    head.head.last_position -= 1;
                    serde_json::to_string(&head).unwrap()
                };
                (
                    format!(
                        "UPDATE \"{SCHEMA}\".checkpoints SET head = '{}'",
                        replaced.replace('\'', "''")
                    ),
                    "the checkpoint replaced".to_owned(),
                )
            }
            // A stream's last event edited and its hash recomputed with the store's own
            // function: the chain holds; the checkpoint does not.
            7 => {
                let position = position_of(dice.below(STREAMS), VERSIONS);
                (
                    format!(
                        "UPDATE {events} SET payload = replace(payload::text, 'note', 'NOTE')::json
                         WHERE position = {position};
                         UPDATE {events} SET hash = \"{SCHEMA}\".factum_event_hash(predecessor,
                             event_id, position, stream_id, stream_type, stream_version, name,
                             schema_version, occurred_at, metadata::text, payload::text)
                         WHERE position = {position};"
                    ),
                    format!("position {position} edited and rehashed"),
                )
            }
            _ => (
                format!(
                    "UPDATE {events} SET hash = (SELECT hash FROM {events} WHERE position = {other})
                     WHERE position = {position}"
                ),
                format!("the hash of position {position} replaced by that of {other}"),
            ),
        };
        raw.batch_execute(&sql)
            .await
            .unwrap_or_else(|error| panic!("round {round}: {what}: {error}"));
        let outcome = verify(&store).await;
        assert!(detected(&outcome), "round {round}: {what} went unnoticed");
        if let Ok(verification) = &outcome {
            let first = verification.first().expect("a finding");
            assert!(
                expected_kinds(kind).contains(&first.kind),
                "round {round}: {what}: first finding {first}"
            );
        }
    }
    restore(&raw, SCHEMA).await;
    assert!(verify(&store).await.expect("verify").is_intact());
}

#[tokio::test]
async fn a_store_that_checks_hashes_refuses_a_damaged_event() {
    const SCHEMA: &str = "t_tamper_checked";
    let (unchecked, raw) = pristine(SCHEMA).await;
    // "note-03-05" becomes "note-03-04": valid JSON, a different fact.
    raw.batch_execute(&format!(
        "UPDATE \"{SCHEMA}\".events SET payload = replace(payload::text, '{}', '{}')::json",
        marker(3, 5),
        marker(3, 4)
    ))
    .await
    .expect("edit");
    let events = unchecked.read_stream("Chart-03", 5, 1).await.expect("read");
    assert!(
        events[0].payload.get().contains(&marker(3, 4)),
        "without the check, the altered fact is read"
    );

    let checked = store(SCHEMA, true).await;
    assert_checked_reads_refuse_the_edit(&checked).await;
}

/// Critical events are signed in the append's transaction; one rehashed after an edit
/// with the store's own function, or stripped of its signature, is refused on read and
/// reported by verify.
#[tokio::test]
async fn critical_events_are_signed_and_a_forged_one_is_refused() {
    const SCHEMA: &str = "t_tamper_signed";
    drop_schema(SCHEMA).await;
    let store = PostgresStore::builder(url())
        .schema(SCHEMA)
        .pool_size(2)
        .sign_events(tamper_common::signer())
        .connect()
        .await
        .expect("connect");
    tamper_common::assert_critical_events_are_signed(&store).await;
    let key = service_key().verifying_key();
    let critical = factum::integrity::SignedEvents::named([tamper_common::CRITICAL]);
    let raw = raw_client().await;
    let first: i64 = raw
        .query_one(
            &format!("SELECT min(position) FROM \"{SCHEMA}\".events"),
            &[],
        )
        .await
        .expect("the first position")
        .get(0);
    raw.batch_execute(&format!(
        "UPDATE \"{SCHEMA}\".events SET payload = replace(payload::text, 'heparin', 'insulin')::json
         WHERE position = {first};
         UPDATE \"{SCHEMA}\".events SET hash = \"{SCHEMA}\".factum_event_hash(predecessor,
             event_id, position, stream_id, stream_type, stream_version, name,
             schema_version, occurred_at, metadata::text, payload::text)
         WHERE position = {first};"
    ))
    .await
    .expect("edit and rehash");
    let verification = store.verify_signed(&key).await.expect("verify");
    let finding = verification.first().expect("a finding");
    assert_eq!(finding.position, Some(first as u64), "{verification}");
    assert!(finding.detail.contains("signature"), "{finding}");
    match store.read_stream("Chart-50", 1, 10).await {
        Err(factum::store::StoreError::CorruptRow { reason, .. }) => {
            assert!(reason.contains("signature"), "{reason}");
        }
        other => panic!("expected the forged dose refused, got {other:?}"),
    }
    raw.batch_execute(&format!(
        "UPDATE \"{SCHEMA}\".events SET signature = NULL
         WHERE stream_id = 'Chart-50' AND stream_version = 5"
    ))
    .await
    .expect("strip");
    let verification = store
        .verify_signed_events(&key, &critical)
        .await
        .expect("verify");
    assert!(
        verification
            .findings
            .iter()
            .any(|finding| finding.detail.contains("no signature")),
        "{verification}"
    );
    assert!(matches!(
        store.read_stream("Chart-50", 5, 1).await,
        Err(factum::store::StoreError::CorruptRow { .. })
    ));
}

/// The append functions hash the rows they insert; the trigger still chains a row that an
/// insert brings without a hash, so that such a row reads back as any other.
#[tokio::test]
async fn a_row_inserted_without_a_hash_is_chained_by_the_trigger() {
    const SCHEMA: &str = "t_tamper_trigger";
    drop_schema(SCHEMA).await;
    let store = store(SCHEMA, true).await;
    store
        .append(
            "Chart-x",
            "Chart",
            ExpectedVersion::NoStream,
            postgres_common::events(2),
        )
        .await
        .expect("append");
    let raw = raw_client().await;
    raw.batch_execute(&format!(
        "INSERT INTO \"{SCHEMA}\".events (stream_id, stream_type, stream_version, event_id,
                                          name, schema_version, payload, occurred_at, metadata)
         SELECT stream_id, stream_type, 3, gen_random_uuid(), name, schema_version, payload,
                occurred_at, metadata
           FROM \"{SCHEMA}\".events WHERE stream_id = 'Chart-x' AND stream_version = 2"
    ))
    .await
    .expect("an insert without a hash");
    let chained: bool = raw
        .query_one(
            &format!(
                "SELECT e.predecessor = p.hash AND e.hash IS NOT NULL
                   FROM \"{SCHEMA}\".events e
                   JOIN \"{SCHEMA}\".events p ON p.stream_id = e.stream_id
                    AND p.stream_version = e.stream_version - 1
                  WHERE e.stream_id = 'Chart-x' AND e.stream_version = 3"
            ),
            &[],
        )
        .await
        .expect("the inserted row")
        .get(0);
    assert!(chained, "the trigger chained the row to version 2");
    // A store that checks hashes recomputes each one from the stored bytes.
    let events = store
        .read_stream("Chart-x", 1, 10)
        .await
        .expect("every hash checks out");
    assert_eq!(events.len(), 3);
}

/// An event's tags are hashed with it (by the append function, checked in Rust): moving
/// a subscription to another course (its tags column and its rows of the tag index
/// rewritten) is found by `verify`, refused by a store that checks hashes, and by a
/// decision's read on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_tag_is_found_and_refused() {
    const SCHEMA: &str = "t_tamper_tags";
    drop_schema(SCHEMA).await;
    let unchecked = store(SCHEMA, false).await;
    tamper_common::write_subscriptions(&unchecked).await;
    raw_client()
        .await
        .batch_execute(&format!(
            r#"UPDATE {SCHEMA}.events SET tags = '["course:c2","student:s1"]' WHERE position = 1;
               UPDATE {SCHEMA}.event_tags SET tag = 'course:c2'
                WHERE position = 1 AND tag = 'course:c1';"#
        ))
        .await
        .expect("the edit");
    let checked = store(SCHEMA, true).await;
    tamper_common::assert_the_moved_subscription_is_found(&unchecked, &checked).await;
}

/// A row of the tag index deleted (decisions would no longer find the event by it) is
/// found by `verify`, though no hash covers the index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_row_of_the_tag_index_is_found() {
    const SCHEMA: &str = "t_tamper_tag_index";
    drop_schema(SCHEMA).await;
    let store = store(SCHEMA, false).await;
    tamper_common::write_subscriptions(&store).await;
    raw_client()
        .await
        .batch_execute(&format!(
            "DELETE FROM {SCHEMA}.event_tags WHERE position = 2 AND tag = 'course:c2'"
        ))
        .await
        .expect("the edit");
    tamper_common::assert_a_lost_tag_row_is_found(&store).await;
}
