//! The schema is created and migrated on connect: once, even by concurrent processes;
//! again without effect; incrementally from an older version; and a database migrated
//! by newer code is refused.
//!
//! Needs a server: `eval "$(scripts/postgres.sh start)"`.

mod postgres_common;

use factum::prelude::*;
use factum::store::PostgresStore;
use postgres_common::{drop_schema, events, raw_client, url};

async fn connect(schema: &str) -> Result<PostgresStore, StoreError> {
    PostgresStore::builder(url())
        .schema(schema)
        .pool_size(2)
        .connect()
        .await
}

async fn versions(schema: &str) -> Vec<i32> {
    raw_client()
        .await
        .query(
            &format!("SELECT version FROM {schema}.factum_schema_migrations ORDER BY version"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_connects_migrate_once_and_reconnecting_changes_nothing() {
    const SCHEMA: &str = "t_migrate_once";
    drop_schema(SCHEMA).await;
    let all: Vec<i32> = (1..=PostgresStore::SCHEMA_VERSION).collect();

    let connects: Vec<_> = (0..6).map(|_| tokio::spawn(connect(SCHEMA))).collect();
    let mut stores = Vec::new();
    for connect in connects {
        stores.push(
            connect
                .await
                .unwrap()
                .expect("every concurrent connect succeeds"),
        );
    }
    assert_eq!(versions(SCHEMA).await, all);
    stores[0]
        .append("s", "T", ExpectedVersion::NoStream, events(2))
        .await
        .unwrap();

    let again = connect(SCHEMA).await.unwrap();
    assert_eq!(versions(SCHEMA).await, all);
    assert_eq!(again.stream_version("s").await.unwrap(), Some(2));
    assert_eq!(again.schema(), SCHEMA);
}

#[tokio::test]
async fn an_older_schema_is_migrated_forward() {
    const SCHEMA: &str = "t_migrate_forward";
    drop_schema(SCHEMA).await;
    let store = connect(SCHEMA).await.unwrap();
    store
        .append("s", "T", ExpectedVersion::NoStream, events(1))
        .await
        .unwrap();
    // Back to schema version 1: the append functions, the commands table, the hash chain,
    // the checkpoints, the archives and the tags did not exist yet.
    raw_client()
        .await
        .batch_execute(&format!(
            "DROP FUNCTION {SCHEMA}.factum_read_matching;
             DROP FUNCTION {SCHEMA}.factum_decide_command;
             DROP FUNCTION {SCHEMA}.factum_decide;
             DROP TABLE {SCHEMA}.event_tags;
             ALTER TABLE {SCHEMA}.events DROP COLUMN tags;
             DROP TABLE {SCHEMA}.archives;
             DROP TABLE {SCHEMA}.checkpoints;
             DROP TRIGGER factum_chain ON {SCHEMA}.events;
             DROP FUNCTION {SCHEMA}.factum_chain_event;
             DROP FUNCTION {SCHEMA}.factum_event_hash;
             ALTER TABLE {SCHEMA}.events DROP COLUMN hash, DROP COLUMN predecessor,
                 DROP COLUMN signature;
             DROP FUNCTION {SCHEMA}.factum_settled_head;
             DROP FUNCTION {SCHEMA}.factum_append;
             DROP FUNCTION {SCHEMA}.factum_append_one;
             DROP FUNCTION {SCHEMA}.factum_append_command;
             DROP TABLE {SCHEMA}.commands;
             DELETE FROM {SCHEMA}.factum_schema_migrations WHERE version > 1;"
        ))
        .await
        .unwrap();
    assert!(matches!(
        store
            .append("s", "T", ExpectedVersion::Exact(1), events(1))
            .await,
        Err(StoreError::Backend(_))
    ));

    let store = connect(SCHEMA).await.unwrap();
    assert_eq!(
        versions(SCHEMA).await,
        (1..=PostgresStore::SCHEMA_VERSION).collect::<Vec<_>>()
    );
    let outcome = store
        .append("s", "T", ExpectedVersion::Exact(1), events(1))
        .await
        .unwrap();
    assert_eq!(outcome.stream_version, 2);
    let command = factum::store::CommandRecord::new(factum::uuid::Uuid::now_v7(), "f");
    let recorded = store
        .append_command("s", "T", ExpectedVersion::Exact(2), events(1), command)
        .await
        .unwrap();
    assert_eq!(recorded.outcome().stream_version, 3);
    // The event stored before the chain was hashed by the migration; the later ones
    // chain to it.
    let verification = factum::integrity::TamperEvident::verify(&store)
        .await
        .unwrap();
    assert!(verification.is_intact(), "{verification}");
    assert_eq!(verification.events, 3);
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    const SCHEMA: &str = "t_migrate_newer";
    drop_schema(SCHEMA).await;
    connect(SCHEMA).await.unwrap();
    let newer = PostgresStore::SCHEMA_VERSION + 1;
    raw_client()
        .await
        .execute(
            &format!(
                "INSERT INTO {SCHEMA}.factum_schema_migrations (version, description) VALUES ($1, 'from the future')"
            ),
            &[&newer],
        )
        .await
        .unwrap();
    match connect(SCHEMA).await {
        Err(StoreError::Backend(source)) => {
            let message = source.to_string();
            assert!(
                message.contains(&format!(
                    "schema version {newer}, newer than this code knows"
                )),
                "{message}"
            );
        }
        other => panic!("expected the newer schema to be refused, got {other:?}"),
    }
    // Refusing changed nothing.
    assert_eq!(versions(SCHEMA).await, (1..=newer).collect::<Vec<_>>());
}
