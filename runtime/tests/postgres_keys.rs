//! The PostgreSQL key store of crypto-shredding keeps the rules of every key store (the
//! same check as the memory and SQLite stores), also between two pools racing as two
//! processes would, and its rows are what the table's constraints promise.
//!
//! Needs a server: `eval "$(scripts/postgres.sh start)"`.

mod postgres_common;

use factum::personal::conformance::check_key_store;
use factum::personal::{KeyState, KeyStore, MasterKey, PersonalError, SubjectId};
use factum::postgres::PostgresKeyStore;
use factum::store::PostgresStore;
use postgres_common::{fresh_store, raw_client, url};

#[tokio::test]
async fn the_postgres_store_keeps_the_key_store_rules() {
    let store = fresh_store("t_keys_rules").await;
    let keys = PostgresKeyStore::in_store(&store, MasterKey::generate().unwrap())
        .await
        .unwrap();
    check_key_store(&keys).await;
}

#[tokio::test]
async fn the_key_table_is_made_only_for_a_key_store_and_versioned_on_its_own() {
    let schema = "t_keys_schema";
    let store = fresh_store(schema).await;
    let sql = raw_client().await;
    let tables = || async {
        sql.query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = $1 ORDER BY table_name",
            &[&schema],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect::<Vec<String>>()
    };
    assert!(!tables().await.contains(&"subject_keys".to_owned()));
    PostgresKeyStore::in_store(&store, MasterKey::generate().unwrap())
        .await
        .unwrap();
    let after = tables().await;
    assert!(
        after.contains(&"subject_keys".to_owned())
            && after.contains(&"factum_keys_migrations".to_owned()),
        "{after:?}"
    );
    // The store still connects to its schema, and a second key store changes nothing.
    let again = PostgresStore::builder(url())
        .schema(schema)
        .connect()
        .await
        .unwrap();
    PostgresKeyStore::in_store(&again, MasterKey::generate().unwrap())
        .await
        .unwrap();
    let versions: i64 = sql
        .query_one(
            &format!("SELECT count(*) FROM {schema}.factum_keys_migrations"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(versions, 1);
    // A key schema from a newer factum is refused.
    sql.execute(
        &format!(
            "INSERT INTO {schema}.factum_keys_migrations (version, description) \
             VALUES (9, 'from the future')"
        ),
        &[],
    )
    .await
    .unwrap();
    let refused = PostgresKeyStore::in_store(&store, MasterKey::generate().unwrap()).await;
    let message = format!("{:?}", refused.expect_err("a newer key schema is refused"));
    assert!(
        message.contains("SchemaTooNew") && message.contains("found: 9"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_pools_creating_at_once_end_with_one_key_per_subject() {
    let schema = "t_keys_race";
    let store = fresh_store(schema).await;
    let other = PostgresStore::builder(url())
        .schema(schema)
        .pool_size(4)
        .connect()
        .await
        .unwrap();
    let bytes = [3; 32];
    let one = PostgresKeyStore::in_store(&store, MasterKey::from_bytes(bytes))
        .await
        .unwrap();
    let two = PostgresKeyStore::in_store(&other, MasterKey::from_bytes(bytes))
        .await
        .unwrap();
    let subjects: Vec<SubjectId> = (0..20)
        .map(|n| SubjectId::new(format!("customer-{n}")).unwrap())
        .collect();
    let mut tasks = Vec::new();
    for (n, subject) in subjects.iter().enumerate() {
        for keys in [one.clone(), two.clone(), one.clone(), two.clone()] {
            let subject = subject.clone();
            tasks.push(tokio::spawn(async move {
                (n, keys.data_key_or_create(&subject).await.unwrap())
            }));
        }
    }
    let mut keys: Vec<Vec<[u8; 32]>> = vec![Vec::new(); subjects.len()];
    for task in tasks {
        let (n, state) = task.await.unwrap();
        match state {
            KeyState::Active(key) => keys[n].push(*key.expose_bytes()),
            other => panic!("customer-{n}: {other:?}"),
        }
    }
    for (n, created) in keys.iter().enumerate() {
        assert_eq!(created.len(), 4);
        assert!(
            created.iter().all(|key| key == &created[0]),
            "customer-{n}: the racing creators got different keys"
        );
    }
    let rows: i64 = raw_client()
        .await
        .query_one(&format!("SELECT count(*) FROM {schema}.subject_keys"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 20);
}

#[tokio::test]
async fn forgetting_clears_the_key_in_the_row_and_another_master_key_reads_nothing() {
    let schema = "t_keys_rows";
    let store = fresh_store(schema).await;
    let keys = PostgresKeyStore::in_store(&store, MasterKey::from_bytes([1; 32]))
        .await
        .unwrap();
    let alice = SubjectId::new("alice").unwrap();
    let bob = SubjectId::new("bob").unwrap();
    keys.data_key_or_create(&alice).await.unwrap();
    keys.data_key_or_create(&bob).await.unwrap();

    let wrong = PostgresKeyStore::in_store(&store, MasterKey::from_bytes([2; 32]))
        .await
        .unwrap();
    match wrong.data_key(&bob).await {
        Err(error @ PersonalError::KeyUnwrap { .. }) => {
            assert!(error.to_string().contains("`bob`"), "{error}");
        }
        other => panic!("expected KeyUnwrap, got {other:?}"),
    }

    let record = keys.forget(&alice, "dpo@example.com").await.unwrap();
    let sql = raw_client().await;
    let row = sql
        .query_one(
            &format!(
                "SELECT wrapped_key, forgotten_by, forgotten_at FROM {schema}.subject_keys \
                 WHERE subject = 'alice'"
            ),
            &[],
        )
        .await
        .unwrap();
    let wrapped: Option<Vec<u8>> = row.get(0);
    let by: String = row.get(1);
    let at: factum::chrono::DateTime<factum::chrono::Utc> = row.get(2);
    assert_eq!(
        (wrapped, by.as_str(), at),
        (None, "dpo@example.com", record.forgotten_at)
    );
    let bob_key: Option<Vec<u8>> = sql
        .query_one(
            &format!("SELECT wrapped_key FROM {schema}.subject_keys WHERE subject = 'bob'"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(bob_key.map(|key| key.len()), Some(73));

    // A damaged row is a typed error naming the subject.
    sql.execute(
        &format!("UPDATE {schema}.subject_keys SET wrapped_key = '\\x0102' WHERE subject = 'bob'"),
        &[],
    )
    .await
    .unwrap();
    match keys.data_key(&bob).await {
        Err(error @ PersonalError::CorruptKey { .. }) => {
            let message = error.to_string();
            assert!(
                message.contains("`bob`") && message.contains("2 bytes"),
                "{message}"
            );
        }
        other => panic!("expected CorruptKey, got {other:?}"),
    }
}
