//! Archives on the SQLite store: the bodies of old events move to a file, the store keeps
//! their rows' skeletons (ids, versions, hashes), live events and appends go on as before,
//! an archived event read without its archive is a typed error, and a store opened with
//! its archives reads every event back exactly as it read before — by position, by
//! stream, filtered, with hashes checked — and verifies whole, signed checkpoints
//! included. An archive that changed, or is not the store's, is refused.
//!
//! Run with `cargo test -p factum --features sqlite --test sqlite_archive`.

use std::path::{Path, PathBuf};

use factum::archive::{Archive, ArchiveError, ArchiveStore, ArchivingError};
use factum::integrity::TamperEvident;
use factum::prelude::*;
use factum::store::{SqliteOpenError, SqliteOptions, SqliteStore};
use tamper_common::{EVENTS, STREAMS, position_of, service_key, write_history};
use tempfile::TempDir;

mod archive_common;
mod tamper_common;

/// A store holding `write_history`'s log, a checkpoint signed with the service's key, and
/// every event as read before anything was archived.
async fn history() -> (TempDir, PathBuf, Vec<RecordedEvent>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("events.db");
    let store = SqliteStore::open(&path).await.expect("opens");
    write_history(&store).await;
    store.checkpoint(&service_key()).await.expect("checkpoint");
    let before = store.read_all(0, 1000).await.expect("reads");
    assert_eq!(before.len(), EVENTS as usize);
    (dir, path, before)
}

async fn with_archives(path: &Path, archives: &[&Path]) -> SqliteStore {
    let mut options = SqliteOptions::new().check_hashes(true);
    for archive in archives {
        options = options.archive(Archive::open(archive).expect("a sound archive"));
    }
    options.open(path).await.expect("opens with its archives")
}

/// Rows whose body the store no longer holds.
fn emptied_rows(path: &Path) -> i64 {
    rusqlite::Connection::open(path)
        .expect("raw")
        .query_row(
            "SELECT count(*) FROM events
             WHERE typeof(payload) = 'blob' AND length(payload) = 0 AND metadata IS NULL",
            [],
            |row| row.get(0),
        )
        .expect("counts")
}

#[tokio::test]
async fn archived_events_read_back_from_their_archive_exactly_as_before() {
    let (dir, path, before) = history().await;
    let store = SqliteStore::open(&path).await.expect("opens");
    let first = dir.path().join("upto-48.jsonl");
    let upto = archive_common::first_cut();
    let record = store.archive(upto, &first).await.expect("archives");
    assert_eq!((record.after, record.upto, record.events), (0, upto, upto));
    assert_eq!(record.file, first.display().to_string());
    assert_eq!(store.archives().await.expect("lists"), vec![record.clone()]);
    assert_eq!(emptied_rows(&path), upto as i64);

    // Without the archive: live events as before, an archived one a typed error, the
    // history verified but for the archived bodies, appends as before.
    archive_common::without_the_archive(&store, &before, upto).await;
    drop(store);

    // With it: every event as before, hashes checked.
    let store = with_archives(&path, &[&first]).await;
    let all = archive_common::with_the_archive(&store, &before).await;

    // A replay, which reads fewer columns when nothing is hash-checked, finds the
    // archived payloads too.
    let unchecked = SqliteOptions::new()
        .archive(Archive::open(&first).expect("a sound archive"))
        .open(&path)
        .await
        .expect("opens with its archive");
    for stream in ["Chart-00", "Chart-05"] {
        let mut replayed = Vec::new();
        unchecked
            .replay_stream(stream, 1, |event| {
                replayed.push((
                    event.stream_version,
                    event.name.to_owned(),
                    event.payload.to_owned(),
                ));
                Ok::<_, std::convert::Infallible>(())
            })
            .await
            .expect("replays");
        let expected: Vec<_> = all
            .iter()
            .filter(|event| event.stream_id == stream)
            .map(|event| {
                (
                    event.stream_version,
                    event.name.clone(),
                    event.payload.get().to_owned(),
                )
            })
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(replayed, expected, "{stream}");
    }
    drop(unchecked);

    // A second archive goes on from the first; both together read everything.
    let second = dir.path().join("upto-72.jsonl");
    let record = store
        .archive(position_of(STREAMS - 1, 6), &second)
        .await
        .expect("archives the next range");
    assert_eq!((record.after, record.events), (upto, 24));
    drop(store);
    let store = with_archives(&path, &[&second, &first]).await;
    assert_eq!(store.read_all(0, 1000).await.expect("reads all"), all);
    let only_first = with_archives(&path, &[&first]).await;
    assert!(matches!(
        only_first.read_all(0, 1000).await,
        Err(StoreError::Archived { position, .. }) if position == upto + 1
    ));
}

#[tokio::test]
async fn an_archive_that_changed_or_is_not_the_stores_is_refused() {
    let (dir, path, _) = history().await;
    let store = SqliteStore::open(&path).await.expect("opens");
    let file = dir.path().join("archive.jsonl");
    store.archive(24, &file).await.expect("archives");
    drop(store);
    let text = std::fs::read_to_string(&file).expect("reads");

    // A payload edited: the event no longer matches its hash.
    let edited = dir.path().join("edited.jsonl");
    std::fs::write(&edited, text.replacen("note-00-01", "note-00-0X", 1)).expect("writes");
    let error = Archive::open(&edited).expect_err("refused");
    assert!(
        matches!(&error, ArchiveError::Unsound { line: 2, reason, .. } if reason.contains("does not match its hash")),
        "{error}"
    );

    // Sound, but not the file the store recorded (one event left out).
    let shortened = dir.path().join("shortened.jsonl");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.pop();
    std::fs::write(&shortened, lines.join("\n") + "\n").expect("writes");
    let error = SqliteOptions::new()
        .archive(Archive::open(&shortened).expect("sound on its own"))
        .open(&path)
        .await
        .expect_err("refused");
    assert!(
        matches!(&error, SqliteOpenError::Archive { reason, .. } if reason.contains("the store recorded")),
        "{error}"
    );

    // Another store's archive.
    let other_dir = tempfile::tempdir().expect("a temporary directory");
    let other = SqliteStore::open(other_dir.path().join("other.db"))
        .await
        .expect("opens");
    write_history(&other).await;
    let foreign = other_dir.path().join("foreign.jsonl");
    other.archive(10, &foreign).await.expect("archives");
    let error = SqliteOptions::new()
        .archive(Archive::open(&foreign).expect("sound"))
        .open(&path)
        .await
        .expect_err("refused");
    assert!(
        error.to_string().contains(
            "is not one of its archives: the store recorded no archive up to position 10"
        ),
        "{error}"
    );
}

#[tokio::test]
async fn archiving_refuses_what_it_cannot_archive_and_leaves_the_store_as_it_was() {
    let (dir, path, before) = history().await;
    let store = SqliteStore::open(&path).await.expect("opens");

    // Nothing older than the first event.
    let first = before[0].timestamp;
    assert_eq!(store.last_position_before(first).await.expect("reads"), 0);
    assert!(matches!(
        store.archive(0, dir.path().join("none.jsonl")).await,
        Err(ArchivingError::Nothing {
            archived: 0,
            upto: 0
        })
    ));
    // Everything is older than a time after the last event.
    let after_all = before[EVENTS as usize - 1].timestamp + chrono::Duration::seconds(1);
    assert_eq!(
        store.last_position_before(after_all).await.expect("reads"),
        EVENTS as u64
    );

    // A file in the way is never replaced.
    let taken = dir.path().join("taken.jsonl");
    std::fs::write(&taken, "mine").expect("writes");
    let error = store.archive(10, &taken).await.expect_err("refused");
    assert!(
        matches!(
            &error,
            ArchivingError::Archive(ArchiveError::Io {
                operation: "create",
                ..
            })
        ),
        "{error}"
    );
    assert_eq!(std::fs::read_to_string(&taken).expect("reads"), "mine");
    assert_eq!(emptied_rows(&path), 0);

    // An event that does not match its hash is never archived.
    drop(store);
    rusqlite::Connection::open(&path)
        .expect("raw")
        .execute(
            "UPDATE events SET payload = '{\"note\":\"forged\"}' WHERE position = 7",
            [],
        )
        .expect("an edit");
    let store = SqliteStore::open(&path).await.expect("opens");
    let partial = dir.path().join("partial.jsonl");
    let error = store.archive(10, &partial).await.expect_err("refused");
    assert!(
        matches!(&error, ArchivingError::Store(StoreError::CorruptRow { position: Some(7), reason, .. }) if reason.contains("does not match its hash")),
        "{error}"
    );
    assert!(!partial.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("lists")
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(emptied_rows(&path), 0);
    assert!(store.archives().await.expect("lists").is_empty());

    // Past the head: clamped to it.
    let record = store
        .archive(5, dir.path().join("five.jsonl"))
        .await
        .expect("archives");
    assert_eq!(record.upto, 5);
    let record = store
        .archive(10_000, dir.path().join("rest.jsonl"))
        .await
        .expect_err("the forged event is still in the way");
    assert!(matches!(record, ArchivingError::Store(_)));
}

/// Archiving moves a tagged event's body, never its tags (see `archive_common`).
#[tokio::test]
async fn archived_tagged_events_keep_their_tags() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("tags.db");
    let store = SqliteStore::open(&path).await.expect("opens");
    let file = dir.path().join("upto-2.jsonl");
    let before = archive_common::archive_subscriptions(&store, &file).await;
    drop(store);
    let store = with_archives(&path, &[&file]).await;
    archive_common::assert_archived_subscriptions_read_back(&store, &before).await;
}
