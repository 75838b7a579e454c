//! Unit tests of what the integration tests cannot reach: the typed open errors, the
//! connection settings, and the metadata reader's fast path.

use std::collections::BTreeMap;

use serde_json::json;
use uuid::Uuid;

use super::rows::{read_metadata, read_metadata_fast};
use super::{SqliteOpenError, SqliteStore, Synchronous};
use crate::envelope::Metadata;

#[tokio::test]
async fn a_newer_schema_is_refused_with_both_versions() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("future.db");
    drop(SqliteStore::open(&path).await.expect("open"));
    let future = SqliteStore::SCHEMA_VERSION + 1;
    rusqlite::Connection::open(&path)
        .expect("raw")
        .execute(
            "INSERT INTO factum_schema_version (version, description, applied_at)
             VALUES (?1, 'from the future', 'tomorrow')",
            [future],
        )
        .expect("insert");
    match SqliteStore::open(&path).await {
        Err(SqliteOpenError::SchemaTooNew {
            path: refused,
            found,
            supported: SqliteStore::SCHEMA_VERSION,
        }) if found == future => assert_eq!(refused, path),
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_not_a_store() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("garbage.db");
    std::fs::write(&path, vec![0x5a; 8192]).expect("write");
    assert!(matches!(
        SqliteStore::open(&path).await,
        Err(SqliteOpenError::NotAStore { .. })
    ));
}

#[tokio::test]
async fn a_file_with_sqlites_magic_but_no_valid_header_is_a_sqlite_error() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("garbage.db");
    let mut bytes = b"SQLite format 3\0".to_vec();
    bytes.resize(8192, 0x5a);
    std::fs::write(&path, bytes).expect("write");
    assert!(matches!(
        SqliteStore::open(&path).await,
        Err(SqliteOpenError::Sqlite { .. })
    ));
}

fn pragma(connection: &rusqlite::Connection, name: &str) -> String {
    connection
        .query_row(&format!("PRAGMA {name}"), [], |row| {
            row.get::<_, rusqlite::types::Value>(0)
        })
        .map(|value| match value {
            rusqlite::types::Value::Integer(value) => value.to_string(),
            rusqlite::types::Value::Text(value) => value,
            other => format!("{other:?}"),
        })
        .expect("pragma")
}

#[tokio::test]
async fn the_writer_runs_in_wal_with_the_chosen_synchronous_and_foreign_keys() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (synchronous, expected) in [(Synchronous::Full, "2"), (Synchronous::Normal, "1")] {
        let path = dir.path().join(format!("{expected}.db"));
        let store = SqliteStore::options()
            .synchronous(synchronous)
            .busy_timeout(std::time::Duration::from_millis(1234))
            .open(&path)
            .await
            .expect("open");
        let writer = store.inner.writer.lock().await;
        assert_eq!(pragma(&writer, "journal_mode"), "wal");
        assert_eq!(pragma(&writer, "synchronous"), expected);
        assert_eq!(pragma(&writer, "foreign_keys"), "1");
        assert_eq!(pragma(&writer, "busy_timeout"), "1234");
        assert_eq!(pragma(&writer, "cache_size"), "-32768", "32 MiB by default");
    }
}

#[tokio::test]
async fn every_connection_keeps_the_page_cache_it_was_given() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::options()
        .page_cache(8 << 20)
        .open(dir.path().join("store.db"))
        .await
        .expect("open");
    assert_eq!(
        pragma(&*store.inner.writer.lock().await, "cache_size"),
        "-8192"
    );
    let readers = store
        .inner
        .readers
        .as_ref()
        .expect("a file store has readers");
    let reader = readers.take().expect("a reader");
    assert_eq!(pragma(&reader, "cache_size"), "-8192");
    readers.give_back(reader);
}

#[tokio::test]
async fn reader_connections_cannot_write() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(dir.path().join("r.db"))
        .await
        .expect("open");
    let refused = store
        .read(|connection| {
            Ok(connection
                .execute("DELETE FROM events", [])
                .map_err(|error| error.to_string()))
        })
        .await
        .expect("the read runs");
    assert!(
        refused.is_err_and(|error| error.contains("readonly")),
        "a reader refuses to write"
    );
}

/// Metadata in many shapes, each read back into metadata left over from another row.
#[test]
fn metadata_reads_back_the_same_through_the_fast_path_and_serde() {
    let ids = [None, Some(Uuid::now_v7()), Some(Uuid::nil())];
    let actors = [
        None,
        Some(""),
        Some("support-agent-7"),
        Some("zoë 🦀 日本"),
        Some("say \"hi\""),
        Some("back\\slash"),
        Some("tab\tand\nnewline and \u{1} control"),
        Some("\u{7f} delete"),
    ];
    let extras = [
        BTreeMap::new(),
        BTreeMap::from([("tenant".to_owned(), json!("acme"))]),
        BTreeMap::from([
            ("a".to_owned(), json!([1, 2.5, null])),
            ("b".to_owned(), json!({ "deep": true })),
        ]),
    ];
    // The actor's kind, the tenant and the trace context, written only when set: none,
    // a kind, a trace, all three, and all needing escapes.
    let kinds_and_tenants = [
        (None, None, None),
        (Some("care_coordinator"), None, None),
        (
            None,
            None,
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ),
        (
            Some("customer"),
            Some("clinic-7"),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"),
        ),
        (
            Some("say \"kind\""),
            Some("back\\slash"),
            Some("a \"quoted\" trace"),
        ),
    ];
    let leftover = Metadata {
        correlation_id: Some(Uuid::now_v7()),
        causation_id: Some(Uuid::now_v7()),
        actor: Some("a long leftover actor from another row".into()),
        actor_kind: Some("leftover_kind".into()),
        tenant: Some("leftover tenant".into()),
        traceparent: Some("leftover trace".into()),
        extra: BTreeMap::from([("left".to_owned(), json!("over"))]),
    };
    let mut cases = 0;
    for correlation_id in ids {
        for causation_id in ids {
            for actor in actors {
                for (actor_kind, tenant, traceparent) in kinds_and_tenants {
                    for extra in &extras {
                        let metadata = Metadata {
                            correlation_id,
                            causation_id,
                            actor: actor.map(str::to_owned),
                            actor_kind: actor_kind.map(str::to_owned),
                            tenant: tenant.map(str::to_owned),
                            traceparent: traceparent.map(str::to_owned),
                            extra: extra.clone(),
                        };
                        let stored = serde_json::to_vec(&metadata).expect("serialise");
                        let escape_free = |text: Option<&str>| {
                            text.is_none_or(|text| {
                                !text.contains(['"', '\\']) && !text.bytes().any(|byte| byte < 0x20)
                            })
                        };
                        let plain = extra.is_empty()
                            && escape_free(actor)
                            && escape_free(actor_kind)
                            && escape_free(tenant)
                            && escape_free(traceparent);
                        assert_eq!(
                            read_metadata_fast(&stored, &mut Metadata::default()).is_some(),
                            plain,
                            "the fast path reads exactly the plain shape: {}",
                            String::from_utf8_lossy(&stored)
                        );
                        for mut into in [Metadata::default(), leftover.clone()] {
                            read_metadata(&stored, &mut into).expect("reads back");
                            assert_eq!(into, metadata, "{}", String::from_utf8_lossy(&stored));
                            cases += 1;
                        }
                    }
                }
            }
        }
    }
    assert_eq!(cases, 3 * 3 * 8 * 5 * 3 * 2);
}

#[test]
fn metadata_in_other_spellings_is_read_by_serde() {
    let id = Uuid::now_v7();
    let expected = Metadata {
        correlation_id: Some(id),
        causation_id: None,
        actor: Some("x".into()),
        extra: BTreeMap::new(),
        ..Metadata::default()
    };
    for stored in [
        format!(r#"{{ "correlation_id": "{id}", "actor": "x" }}"#),
        format!(r#"{{"actor":"x","correlation_id":"{id}"}}"#),
        format!(
            r#"{{"correlation_id":"{}","causation_id":null,"actor":"x"}}"#,
            id.simple()
        ),
        format!(
            r#"{{"correlation_id":"{}","causation_id":null,"actor":"x"}}"#,
            id.braced()
        ),
        format!(r#"{{"correlation_id":"{id}","causation_id":null,"actor":"\u0078"}}"#),
        format!("{{\"correlation_id\":\"{id}\",\"causation_id\":null,\"actor\":\"x\"}}\n"),
    ] {
        let mut into = Metadata::default();
        read_metadata(stored.as_bytes(), &mut into)
            .unwrap_or_else(|error| panic!("{stored}: {error}"));
        assert_eq!(into, expected, "{stored}");
    }
}

#[test]
fn damaged_metadata_is_an_error_not_a_guess() {
    let id = Uuid::now_v7();
    for stored in [
        String::new(),
        "{".to_owned(),
        "[]".to_owned(),
        format!(r#"{{"correlation_id":"{id}","causation_id":null,"actor":"x"}} trailing"#),
        r#"{"correlation_id":"not-a-uuid-but-thirty-six-chars-long","causation_id":null,"actor":null}"#.to_owned(),
        format!("{{\"correlation_id\":\"{id}\",\"causation_id\":null,\"actor\":\"raw \u{1} control\"}}"),
        format!(r#"{{"correlation_id":"{id}","causation_id":null,"actor":7}}"#),
    ] {
        let mut into = Metadata::default();
        assert!(
            read_metadata(stored.as_bytes(), &mut into).is_err(),
            "{stored:?} is refused"
        );
    }
    let mut into = Metadata::default();
    assert!(
        read_metadata(b"{\"actor\":\"\xff\"}", &mut into).is_err(),
        "not UTF-8"
    );
    assert!(
        read_metadata(
            b"{\"correlation_id\":null,\"causation_id\":null,\"actor\":\"\xff\"}",
            &mut into
        )
        .is_err(),
        "not UTF-8 in the fast path's shape"
    );
}
