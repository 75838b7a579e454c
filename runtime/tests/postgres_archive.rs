//! Archives on the PostgreSQL store: the bodies of old events move to a file, the rows
//! keep their skeletons (ids, versions, hashes), live events and appends go on, an
//! archived event read without its archive is a typed error, and a store opened with its
//! archives reads every event back exactly as before — by position, by stream, visited,
//! filtered, with hashes checked — and verifies whole, its signed checkpoint included. An
//! archive that changed, or is not the store's, is refused.
//!
//! Needs a server: `eval "$(scripts/postgres.sh start)"`.

mod archive_common;
mod postgres_common;
mod tamper_common;

use std::path::Path;

use factum::archive::{Archive, ArchiveStore, ArchivingError};
use factum::integrity::TamperEvident;
use factum::prelude::*;
use factum::store::PostgresStore;
use postgres_common::{drop_schema, raw_client, url};
use tamper_common::{EVENTS, STREAMS, position_of, service_key, write_history};

async fn store(schema: &str, archives: &[&Path]) -> Result<PostgresStore, StoreError> {
    let mut config = PostgresStore::builder(url())
        .schema(schema)
        .pool_size(2)
        .check_hashes(true);
    for archive in archives {
        config = config.archive(Archive::open(archive).expect("a sound archive"));
    }
    config.connect().await
}

/// Rows whose body the store no longer holds.
async fn emptied_rows(schema: &str) -> i64 {
    raw_client()
        .await
        .query_one(
            &format!(
                "SELECT count(*) FROM \"{schema}\".events \
                 WHERE payload::text = 'null' AND metadata::text = '\"factum:archived\"'"
            ),
            &[],
        )
        .await
        .expect("counts")
        .get(0)
}

#[tokio::test]
async fn archived_events_read_back_from_their_archive_exactly_as_before() {
    let schema = "archive_read_back";
    drop_schema(schema).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let live = store(schema, &[]).await.expect("connects");
    write_history(&live).await;
    live.checkpoint(&service_key()).await.expect("checkpoint");
    let before = live.read_all(0, 1000).await.expect("reads");
    assert_eq!(before.len(), EVENTS as usize);

    let first = dir.path().join("upto-48.jsonl");
    let upto = archive_common::first_cut();
    let record = live.archive(upto, &first).await.expect("archives");
    assert_eq!((record.after, record.upto, record.events), (0, upto, upto));
    assert_eq!(live.archives().await.expect("lists"), vec![record]);
    assert_eq!(emptied_rows(schema).await, upto as i64);

    // Without the archive: live events as before, an archived one a typed error, the
    // history verified but for the archived bodies, appends as before.
    archive_common::without_the_archive(&live, &before, upto).await;

    // With it: every event as before, hashes checked.
    let with = store(schema, &[&first])
        .await
        .expect("connects with its archive");
    let all = archive_common::with_the_archive(&with, &before).await;

    // A second archive goes on from the first.
    let second = dir.path().join("upto-72.jsonl");
    let record = with
        .archive(position_of(STREAMS - 1, 6), &second)
        .await
        .expect("archives the next range");
    assert_eq!((record.after, record.events), (upto, 24));
    let both = store(schema, &[&second, &first]).await.expect("connects");
    assert_eq!(both.read_all(0, 1000).await.expect("reads all"), all);
}

#[tokio::test]
async fn an_archive_that_is_not_the_stores_is_refused_and_a_forged_event_never_archived() {
    let schema = "archive_refused";
    drop_schema(schema).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let live = store(schema, &[]).await.expect("connects");
    write_history(&live).await;
    let file = dir.path().join("archive.jsonl");
    live.archive(24, &file).await.expect("archives");

    // Sound, but not the file the store recorded (one event left out).
    let text = std::fs::read_to_string(&file).expect("reads");
    let shortened = dir.path().join("shortened.jsonl");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.pop();
    std::fs::write(&shortened, lines.join("\n") + "\n").expect("writes");
    let error = store(schema, &[&shortened]).await.expect_err("refused");
    assert!(
        factum::error::Report(&error)
            .to_string()
            .contains("is not one of the archives of schema `archive_refused`: its SHA-256 is"),
        "{}",
        factum::error::Report(&error)
    );

    // An event changed behind the store's back is never archived; nothing changes.
    raw_client()
        .await
        .batch_execute(&format!(
            "UPDATE \"{schema}\".events SET payload = '{{\"note\":\"forged\"}}' WHERE position = 30"
        ))
        .await
        .expect("an edit");
    let refused = dir.path().join("refused.jsonl");
    let error = live.archive(40, &refused).await.expect_err("refused");
    assert!(
        matches!(&error, ArchivingError::Store(StoreError::CorruptRow { position: Some(30), reason, .. }) if reason.contains("does not match its hash")),
        "{error}"
    );
    assert!(!refused.exists());
    assert_eq!(emptied_rows(schema).await, 24);
    assert_eq!(live.archives().await.expect("lists").len(), 1);
}

/// Archiving moves a tagged event's body, never its tags (see `archive_common`).
#[tokio::test]
async fn archived_tagged_events_keep_their_tags() {
    let schema = "archive_tags";
    drop_schema(schema).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let live = store(schema, &[]).await.expect("connects");
    let file = dir.path().join("upto-2.jsonl");
    let before = archive_common::archive_subscriptions(&live, &file).await;
    let with = store(schema, &[&file])
        .await
        .expect("connects with its archive");
    archive_common::assert_archived_subscriptions_read_back(&with, &before).await;
}
