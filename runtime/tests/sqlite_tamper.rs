//! Tamper evidence on the SQLite store: `verify_signed` finds every edit of the stored
//! history — bit flips in the file, edited, deleted, swapped and inserted rows, replaced
//! hashes and checkpoints, and an edit whose hashes were recomputed — and reports none on
//! an untouched store; a store that checks hashes on read refuses a damaged event where
//! an unchecked one hands it on; inclusion and consistency proofs check out.
//!
//! Run with `cargo test -p factum --features sqlite --test sqlite_tamper`.

use std::path::{Path, PathBuf};

use factum::integrity::{StoredFields, TamperEvident, TamperingKind, Verification, event_hash};
use factum::prelude::*;
use factum::store::SqliteStore;
use serde_json::json;
use tamper_common::{
    Dice, EVENTS, STREAMS, VERSIONS, assert_checked_reads_refuse_the_edit, detected,
    expected_kinds, intruder_key, marker, position_of, service_key, write_history,
};
use tempfile::TempDir;

mod tamper_common;

/// A store file holding [`write_history`]'s log and a checkpoint of it signed with the
/// service's key; closed, its WAL folded into the file.
async fn pristine() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("events.db");
    let store = SqliteStore::open(&path).await.expect("open");
    write_history(&store).await;
    store.checkpoint(&service_key()).await.expect("checkpoint");
    drop(store);
    fold_wal(&path);
    (dir, path)
}

/// Checkpoints the WAL into the file and empties it, so the file alone holds the data.
fn fold_wal(path: &Path) {
    let connection = rusqlite::Connection::open(path).expect("raw");
    connection
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint");
}

fn copy_of(pristine: &Path, dir: &Path, name: &str) -> PathBuf {
    let copy = dir.join(name);
    std::fs::copy(pristine, &copy).expect("copy");
    let _ = std::fs::remove_file(wal(&copy));
    copy
}

fn wal(path: &Path) -> PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// Every event, stream and checkpoint row as stored, for telling whether a flip changed
/// the history.
fn dump(path: &Path) -> Result<Vec<Vec<String>>, rusqlite::Error> {
    let connection =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut statement = connection.prepare(
        "SELECT * FROM events e LEFT JOIN streams s ON s.stream_key = e.stream_key
         ORDER BY e.position",
    )?;
    let columns = statement.column_count();
    let rows = statement
        .query_map([], |row| {
            (0..columns)
                .map(|column| Ok(format!("{:?}", row.get_ref(column)?)))
                .collect::<Result<Vec<_>, rusqlite::Error>>()
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let heads = connection
        .prepare("SELECT * FROM streams ORDER BY stream_key")?
        .query_map([], |row| {
            Ok(vec![format!(
                "{:?} {:?} {:?} {:?}",
                row.get_ref(0)?,
                row.get_ref(1)?,
                row.get_ref(2)?,
                row.get_ref(3)?
            )])
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let checkpoints = connection
        .prepare("SELECT * FROM checkpoints ORDER BY tree_size")?
        .query_map([], |row| {
            Ok(vec![format!("{:?} {:?}", row.get_ref(0)?, row.get_ref(1)?)])
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows.into_iter().chain(heads).chain(checkpoints).collect())
}

/// Opens the file and verifies it; a file that cannot even be opened as a store counts
/// as a finding (the damage is reported, as a typed error).
async fn verify(path: &Path) -> Result<Verification, String> {
    let store = SqliteStore::open(path)
        .await
        .map_err(|error| format!("refused at open: {error}"))?;
    store
        .verify_signed(&service_key().verifying_key())
        .await
        .map_err(|error| format!("unreadable: {error}"))
}

#[tokio::test]
async fn an_untouched_store_verifies_intact() {
    let (_dir, path) = pristine().await;
    let verification = verify(&path).await.expect("verify");
    assert!(verification.is_intact(), "{verification}");
    assert_eq!(verification.events, STREAMS * VERSIONS);
    assert_eq!(verification.streams, STREAMS);
    // Reopening, appending more and verifying again: still intact.
    let store = SqliteStore::open(&path).await.expect("open");
    store
        .append(
            "Chart-00",
            "Chart",
            ExpectedVersion::Exact(VERSIONS),
            vec![NewEvent::new(
                "NoteAdded",
                1,
                serde_json::value::to_raw_value(&json!({"note": "later"})).unwrap(),
                Metadata {
                    tenant: Some("clinic-7".to_owned()),
                    ..Metadata::default()
                },
            )],
        )
        .await
        .expect("append");
    let verification = store
        .verify_signed(&service_key().verifying_key())
        .await
        .expect("verify");
    assert!(verification.is_intact(), "{verification}");
    assert_eq!(verification.events, STREAMS * VERSIONS + 1);
    tamper_common::assert_proofs_hold(&store).await;
}

/// Single-bit flips anywhere in the file: every flip that changed what the file holds
/// (as a raw read of its rows shows it, or that made it unreadable) is found; a flip that
/// changed nothing readable (free space, unused bytes of a page) is not reported.
#[tokio::test]
async fn verify_finds_every_bit_flip_that_altered_the_history() {
    let (dir, pristine) = pristine().await;
    let original = dump(&pristine).expect("dump");
    let bytes = std::fs::read(&pristine).expect("read");
    let mut dice = Dice(0x5eed_0001);
    let (mut altering, mut harmless) = (0, 0);
    for flip in 0..300 {
        let copy = copy_of(&pristine, dir.path(), "flipped.db");
        let mut flipped = bytes.clone();
        let offset = dice.below(flipped.len() as u64) as usize;
        let bit = dice.below(8);
        flipped[offset] ^= 1 << bit;
        std::fs::write(&copy, &flipped).expect("write");
        let changed = dump(&copy).map_or(true, |rows| rows != original);
        let outcome = verify(&copy).await;
        if changed {
            altering += 1;
            assert!(
                detected(&outcome),
                "flip {flip} (byte {offset} bit {bit}) altered the history unnoticed"
            );
        } else if let Ok(verification) = &outcome {
            // Nothing a row holds changed: a finding would have to be about SQLite's
            // own structures (an index, a page), which then are damaged indeed.
            for finding in &verification.findings {
                assert_eq!(
                    finding.kind,
                    TamperingKind::Damaged,
                    "flip {flip} (byte {offset} bit {bit}) changed no row, yet: {finding}"
                );
            }
            harmless += usize::from(verification.is_intact());
        }
        let _ = std::fs::remove_file(&copy);
    }
    assert!(altering > 50, "too few flips hit the history: {altering}");
    println!("{altering} flips altered the history, all found; {harmless} changed nothing");
}

/// The edits someone with the file could make: every one is found, by kind.
#[tokio::test]
async fn a_thousand_random_tamperings_are_all_found() {
    let (dir, pristine) = pristine().await;
    let mut dice = Dice(0x7a3e_0002);
    let events = EVENTS;
    for round in 0..1000 {
        let copy = copy_of(&pristine, dir.path(), "tampered.db");
        let kind = round % 8;
        let what = {
            let connection = rusqlite::Connection::open(&copy).expect("raw");
            let position = 1 + dice.below(events as u64) as i64;
            let other = 1 + (position + dice.below(events as u64 - 1) as i64) % events;
            match kind {
                // A byte of a column, edited in place.
                0 => {
                    let column = ["payload", "metadata", "name", "event_id", "timestamp_ns"]
                        [dice.below(5) as usize];
                    let changed = match column {
                        "timestamp_ns" => connection.execute(
                            "UPDATE events SET timestamp_ns = timestamp_ns + 1000 WHERE position = ?1",
                            [position],
                        ),
                        "event_id" => connection.execute(
                            "UPDATE events SET event_id = randomblob(16) WHERE position = ?1",
                            [position],
                        ),
                        "metadata" => connection.execute(
                            "UPDATE events SET metadata = coalesce(replace(metadata, 'nurse', 'nursf'), '{}')
                             WHERE position = ?1",
                            [position],
                        ),
                        other => connection.execute(
                            &format!(
                                "UPDATE events SET {other} = replace({other}, 'e', 'E') WHERE position = ?1"
                            ),
                            [position],
                        ),
                    }
                    .expect("edit");
                    assert_eq!(changed, 1);
                    format!("{column} of position {position} edited")
                }
                // A row deleted, its stream's head left as it was. (Deleting a stream's
                // last event and lowering its head to match leaves a shorter chain that
                // holds: the signed checkpoints catch that.)
                1 => {
                    let (stream_key, version): (i64, i64) = connection
                        .query_row(
                            "SELECT stream_key, stream_version FROM events WHERE position = ?1",
                            [position],
                            |row| Ok((row.get(0)?, row.get(1)?)),
                        )
                        .expect("row");
                    connection
                        .execute("DELETE FROM events WHERE position = ?1", [position])
                        .expect("delete");
                    if version < VERSIONS as i64 && dice.below(2) == 0 {
                        // Inside the stream, lowering the head does not hide the gap.
                        connection
                            .execute(
                                "UPDATE streams SET version = version - 1 WHERE stream_key = ?1",
                                [stream_key],
                            )
                            .expect("lower the head");
                    }
                    format!("position {position} (version {version}) deleted")
                }
                // Two rows swapped: their places in the log exchanged.
                2 => {
                    connection
                        .execute_batch(&format!(
                            "UPDATE events SET position = -1 WHERE position = {position};
                             UPDATE events SET position = {position} WHERE position = {other};
                             UPDATE events SET position = {other} WHERE position = -1;"
                        ))
                        .expect("swap");
                    format!("positions {position} and {other} swapped")
                }
                // A row inserted: a copy of another with a fresh id, at the end of the
                // log, as the next version of its stream (the head raised to match).
                3 => {
                    connection
                        .execute_batch(&format!(
                            "INSERT INTO events (position, stream_key, stream_version, event_id,
                                 name, schema_version, payload, metadata, timestamp_s,
                                 timestamp_ns, hash, predecessor)
                             SELECT {events} + 1, e.stream_key, s.version + 1, randomblob(16),
                                 e.name, e.schema_version, e.payload, e.metadata,
                                 e.timestamp_s, e.timestamp_ns, e.hash, e.predecessor
                             FROM events e JOIN streams s ON s.stream_key = e.stream_key
                             WHERE e.position = {position};
                             UPDATE streams SET version = version + 1 WHERE stream_key =
                                 (SELECT stream_key FROM events WHERE position = {events} + 1);"
                        ))
                        .expect("insert");
                    format!("a copy of position {position} inserted")
                }
                // A stream's last event deleted and its head lowered to match: the chain
                // that is left holds; the checkpoint does not.
                5 => {
                    let position = position_of(dice.below(STREAMS), VERSIONS) as i64;
                    connection
                        .execute_batch(&format!(
                            "UPDATE streams SET version = version - 1 WHERE stream_key =
                                 (SELECT stream_key FROM events WHERE position = {position});
                             DELETE FROM events WHERE position = {position};"
                        ))
                        .expect("delete the last event");
                    format!("the last event, at position {position}, deleted with its head")
                }
                // The checkpoint replaced: re-signed by another key over another root, or
                // its JSON edited.
                6 => {
                    let json: String = connection
                        .query_row("SELECT head FROM checkpoints", [], |row| row.get(0))
                        .expect("the checkpoint");
                    let mut head: factum::integrity::checkpoint::SignedTreeHead =
                        serde_json::from_str(&json).expect("JSON");
                    let replaced = if dice.below(2) == 0 {
                        head.head.root[0] ^= 1;
                        serde_json::to_string(&head.head.sign(&intruder_key())).unwrap()
                    } else {
                        head.head.last_position -= 1;
                        serde_json::to_string(&head).unwrap()
                    };
                    connection
                        .execute("UPDATE checkpoints SET head = ?1", [replaced])
                        .expect("replace the checkpoint");
                    "the checkpoint replaced".to_owned()
                }
                // A stream's last event edited and its hash recomputed, as someone who
                // knows the layout would: the chain holds; the checkpoint does not.
                7 => {
                    let position = position_of(dice.below(STREAMS), VERSIONS) as i64;
                    rehash_after_edit(&connection, position, ("note", "NOTE"));
                    format!("position {position} edited and rehashed")
                }
                // A row's hash replaced by the hash of another row.
                _ => {
                    connection
                        .execute(
                            "UPDATE events SET hash = (SELECT hash FROM events WHERE position = ?2)
                             WHERE position = ?1",
                            [position, other],
                        )
                        .expect("edit the hash");
                    format!("the hash of position {position} replaced by that of {other}")
                }
            }
        };
        fold_wal(&copy);
        let outcome = verify(&copy).await;
        assert!(detected(&outcome), "round {round}: {what} went unnoticed");
        if let Ok(verification) = &outcome {
            let first = verification.first().expect("a finding");
            assert!(
                expected_kinds(kind).contains(&first.kind),
                "round {round}: {what}: first finding {first}"
            );
        }
        let _ = std::fs::remove_file(&copy);
    }
}

/// Replaces `edit.0` by `edit.1` in the payload of the event at `position` (the last of
/// its stream) and stores the hash the edited row chains to.
fn rehash_after_edit(connection: &rusqlite::Connection, position: i64, edit: (&str, &str)) {
    connection
        .execute(
            "UPDATE events SET payload = replace(payload, ?2, ?3) WHERE position = ?1",
            rusqlite::params![position, edit.0, edit.1],
        )
        .expect("edit");
    let hash = connection
        .query_row(
            "SELECT e.event_id, s.stream_id, s.stream_type, e.stream_version, e.name,
                    e.schema_version, e.timestamp_s, e.timestamp_ns, e.metadata, e.payload,
                    e.predecessor
             FROM events e JOIN streams s ON s.stream_key = e.stream_key
             WHERE e.position = ?1",
            [position],
            |row| {
                let event_id: Vec<u8> = row.get(0)?;
                let stream_id: String = row.get(1)?;
                let stream_type: String = row.get(2)?;
                let name: String = row.get(4)?;
                let metadata: Option<String> = row.get(8)?;
                let payload: String = row.get(9)?;
                let predecessor: Vec<u8> = row.get(10)?;
                Ok(event_hash(
                    &predecessor.try_into().expect("32 bytes"),
                    &StoredFields {
                        event_id: &event_id,
                        position,
                        stream_id: stream_id.as_bytes(),
                        stream_type: stream_type.as_bytes(),
                        stream_version: row.get(3)?,
                        name: name.as_bytes(),
                        schema_version: row.get(5)?,
                        timestamp_seconds: row.get(6)?,
                        timestamp_nanos: row.get(7)?,
                        metadata: metadata.as_deref().map(str::as_bytes),
                        payload: payload.as_bytes(),
                        tags: None,
                    },
                ))
            },
        )
        .expect("rehash");
    connection
        .execute(
            "UPDATE events SET hash = ?2 WHERE position = ?1",
            rusqlite::params![position, hash.as_slice()],
        )
        .expect("store the hash");
}

/// A flipped byte in a payload: handed on as a wrong fact by a store that does not check
/// hashes, refused at its position by one that does.
#[tokio::test]
async fn a_store_that_checks_hashes_refuses_a_damaged_event() {
    let (dir, pristine) = pristine().await;
    let copy = copy_of(&pristine, dir.path(), "damaged.db");
    let mut bytes = std::fs::read(&copy).expect("read");
    let needle = marker(3, 5);
    let at = bytes
        .windows(needle.len())
        .position(|window| window == needle.as_bytes())
        .expect("the payload is in the file");
    // "note-03-05" becomes "note-03-04": still valid JSON, a different fact.
    bytes[at + 9] ^= 0x01;
    std::fs::write(&copy, &bytes).expect("write");

    let unchecked = SqliteStore::open(&copy).await.expect("open");
    let events = unchecked.read_stream("Chart-03", 5, 1).await.expect("read");
    assert!(
        events[0].payload.get().contains(&marker(3, 4)),
        "without the check, the altered fact is read: {}",
        events[0].payload.get()
    );
    drop(unchecked);

    let checked = SqliteStore::options()
        .check_hashes(true)
        .open(&copy)
        .await
        .expect("open");
    assert_checked_reads_refuse_the_edit(&checked).await;
}

/// Critical events are signed in the append's transaction; one rehashed after an edit,
/// or stripped of its signature, is refused on read and reported by verify.
#[tokio::test]
async fn critical_events_are_signed_and_a_forged_one_is_refused() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("events.db");
    let store = SqliteStore::options()
        .sign_events(tamper_common::signer())
        .open(&path)
        .await
        .expect("open");
    tamper_common::assert_critical_events_are_signed(&store).await;
    let critical = factum::integrity::SignedEvents::named([tamper_common::CRITICAL]);
    let key = service_key().verifying_key();

    // The first dose (position 1) edited and rehashed: the chain holds, the signature
    // does not.
    let connection = rusqlite::Connection::open(&path).expect("raw");
    rehash_after_edit(&connection, 1, ("heparin", "insulin"));
    let verification = store.verify_signed(&key).await.expect("verify");
    let first = verification.first().expect("a finding");
    assert_eq!(
        (first.kind, first.position),
        (TamperingKind::Altered, Some(1))
    );
    assert!(first.detail.contains("signature"), "{first}");
    match store.read_stream("Chart-50", 1, 10).await {
        Err(factum::store::StoreError::CorruptRow {
            position: Some(1),
            reason,
            ..
        }) => {
            assert!(reason.contains("signature"), "{reason}");
        }
        other => panic!("expected the forged dose refused, got {other:?}"),
    }

    // The last dose stripped of its signature: unsigned critical events are refused too.
    connection
        .execute("UPDATE events SET signature = NULL WHERE position = 5", [])
        .expect("strip");
    let verification = store
        .verify_signed_events(&key, &critical)
        .await
        .expect("verify");
    assert!(
        verification
            .findings
            .iter()
            .any(|finding| finding.position == Some(5) && finding.detail.contains("no signature")),
        "{verification}"
    );
    assert!(matches!(
        store.read_stream("Chart-50", 5, 1).await,
        Err(factum::store::StoreError::CorruptRow {
            position: Some(5),
            ..
        })
    ));
}

/// An event's tags are hashed with it: moving a subscription to another course (its
/// tags column and its rows of the tag index rewritten) is found by `verify`, refused
/// by a store that checks hashes, and by a decision's read on it.
#[tokio::test]
async fn an_edited_tag_is_found_and_refused() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("tags.db");
    let store = SqliteStore::open(&path).await.expect("open");
    tamper_common::write_subscriptions(&store).await;
    drop(store);
    let connection = rusqlite::Connection::open(&path).expect("raw");
    connection
        .execute_batch(
            r#"UPDATE events SET tags = '["course:c2","student:s1"]' WHERE position = 1;
               UPDATE event_tags SET tag = 'course:c2' WHERE position = 1 AND tag = 'course:c1';"#,
        )
        .expect("the edit");
    drop(connection);
    let unchecked = SqliteStore::open(&path).await.expect("open");
    let checked = SqliteStore::options()
        .check_hashes(true)
        .open(&path)
        .await
        .expect("open");
    tamper_common::assert_the_moved_subscription_is_found(&unchecked, &checked).await;
}

/// A row of the tag index deleted (decisions would no longer find the event by it) is
/// found by `verify`, though no hash covers the index.
#[tokio::test]
async fn a_lost_row_of_the_tag_index_is_found() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("tags.db");
    let store = SqliteStore::open(&path).await.expect("open");
    tamper_common::write_subscriptions(&store).await;
    drop(store);
    rusqlite::Connection::open(&path)
        .expect("raw")
        .execute(
            "DELETE FROM event_tags WHERE position = 2 AND tag = 'course:c2'",
            [],
        )
        .expect("the edit");
    let store = SqliteStore::open(&path).await.expect("open");
    tamper_common::assert_a_lost_tag_row_is_found(&store).await;
}
