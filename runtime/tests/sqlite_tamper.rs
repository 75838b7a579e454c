//! Tamper evidence on the SQLite store: `verify` finds every edit of the stored history —
//! bit flips in the file, edited, deleted, swapped and inserted rows — and reports none
//! on an untouched store; a store that checks hashes on read refuses a damaged event
//! where an unchecked one hands it on.
//!
//! Run with `cargo test -p factum --features sqlite --test sqlite_tamper`.

use std::path::{Path, PathBuf};

use factum::integrity::{TamperEvident, TamperingKind, Verification};
use factum::prelude::*;
use factum::store::{SqliteStore, StoreError};
use serde_json::json;
use tamper_common::{
    Dice, EVENTS, STREAMS, VERSIONS, detected, expected_kinds, marker, position_of, write_history,
};
use tempfile::TempDir;

mod tamper_common;

/// A store file holding [`write_history`]'s log; closed, its WAL folded into the file.
async fn pristine() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("events.db");
    let store = SqliteStore::open(&path).await.expect("open");
    write_history(&store).await;
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

/// Every event row as stored, for telling whether a flip changed the history.
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
    Ok(rows.into_iter().chain(heads).collect())
}

/// Opens the file and verifies it; a file that cannot even be opened as a store counts
/// as a finding (the damage is reported, as a typed error).
async fn verify(path: &Path) -> Result<Verification, String> {
    let store = SqliteStore::open(path)
        .await
        .map_err(|error| format!("refused at open: {error}"))?;
    store
        .verify()
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
    let verification = store.verify().await.expect("verify");
    assert!(verification.is_intact(), "{verification}");
    assert_eq!(verification.events, STREAMS * VERSIONS + 1);
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
        let kind = round % 5;
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
    let position = position_of(3, 5);
    for result in [
        checked.read_stream("Chart-03", 1, 100).await.map(|_| ()),
        checked.read_all(0, 1000).await.map(|_| ()),
        checked
            .read_all_filtered(0, 1000, &["NoteAdded"])
            .await
            .map(|_| ()),
        checked
            .for_each_in_stream("Chart-03", 1, |_| Ok::<_, ()>(()))
            .await
            .map_err(|error| match error {
                factum::store::VisitError::Store(error) => error,
                factum::store::VisitError::Visitor(()) => unreachable!(),
            }),
    ] {
        match result {
            Err(StoreError::CorruptRow {
                stream_id,
                stream_version: 5,
                position: Some(at),
                reason,
            }) => {
                assert_eq!(stream_id, "Chart-03");
                assert_eq!(at, position);
                assert!(reason.contains("does not match its hash"), "{reason}");
            }
            other => panic!("expected a corrupt row at position {position}, got {other:?}"),
        }
    }
    // The other streams read as usual.
    assert_eq!(
        checked
            .read_stream("Chart-04", 1, 100)
            .await
            .expect("read")
            .len() as u64,
        VERSIONS
    );
    let verification = checked.verify().await.expect("verify");
    let first = verification.first().expect("a finding");
    assert_eq!(
        (
            first.kind,
            first.stream_id.as_str(),
            first.stream_version,
            first.position
        ),
        (TamperingKind::Altered, "Chart-03", 5, Some(position))
    );
}
