//! The projection runner on PostgreSQL read models (schema per version, views for
//! readers), following a PostgreSQL store woken by LISTEN/NOTIFY.
//!
//! Needs a server: `eval "$(scripts/postgres.sh start)"`. Without one the tests fail.

mod postgres_common;

use std::collections::BTreeMap;
use std::time::Duration;

use factum::envelope::{Metadata, NewEvent, RecordedEvent};
use factum::projection::postgres::{CATALOG_SCHEMA, PostgresReadModel, PostgresTx};
use factum::projection::{
    Projection, ProjectionError, ProjectionRunner, ReadModel, ReadModelError, ReadModelTx, Retry,
    Target, VersionState,
};
use factum::store::{EventStore, ExpectedVersion, PostgresError, PostgresStore, StoreError};

/// Counts events per stream, and fails on `"poison": true` payloads.
struct Counts<const V: u32>;

impl<const V: u32> Projection for Counts<V> {
    const NAME: &'static str = "counts_pg";
    const VERSION: u32 = V;
    const EVENTS: &'static [&'static str] = &["Counted"];
    type Tx = PostgresTx;

    async fn setup(&mut self, tx: &mut PostgresTx) -> Result<(), ProjectionError> {
        // v2 stores the version as text: the same SQL then means other column types, as
        // after a real version bump (prepared statements must not leak across versions).
        let version_type = if V == 1 { "INTEGER" } else { "TEXT" };
        tx.batch_execute(&format!(
            "CREATE TABLE counts (stream TEXT PRIMARY KEY, n BIGINT NOT NULL, version {version_type} NOT NULL)"
        ))
        .await?;
        Ok(())
    }

    async fn handle(
        &mut self,
        event: &RecordedEvent,
        tx: &mut PostgresTx,
    ) -> Result<(), ProjectionError> {
        if event.payload.get().contains("\"poison\":true") {
            return Err(ProjectionError::msg("the handler refuses poison"));
        }
        let statement = tx
            .prepare_cached(
                "INSERT INTO counts (stream, n, version) VALUES ($1, 1, $2)
                 ON CONFLICT (stream) DO UPDATE SET n = counts.n + 1, version = excluded.version",
            )
            .await?;
        let (as_integer, as_text) = (V as i32, V.to_string());
        let version: &(dyn tokio_postgres::types::ToSql + Sync) =
            if V == 1 { &as_integer } else { &as_text };
        tx.execute(&statement, &[&event.stream_id, version]).await?;
        Ok(())
    }
}

fn event(name: &str, poison: bool) -> NewEvent {
    let payload =
        serde_json::value::to_raw_value(&serde_json::json!({ "poison": poison })).unwrap();
    NewEvent::new(name, 1, payload, Metadata::default())
}

async fn setup(schema: &str) -> (PostgresStore, PostgresReadModel) {
    setup_for(schema, "counts_pg", &[1, 2]).await
}

/// An empty store in `schema`, and read models without projection `name`'s versions.
async fn setup_for(
    schema: &str,
    name: &str,
    versions: &[u32],
) -> (PostgresStore, PostgresReadModel) {
    postgres_common::drop_schema(schema).await;
    let client = postgres_common::raw_client().await;
    let mut drops = format!("DROP SCHEMA IF EXISTS {name} CASCADE;");
    for version in versions {
        drops.push_str(&format!(
            " DROP SCHEMA IF EXISTS {name}__v{version} CASCADE;"
        ));
    }
    client
        .batch_execute(&format!(
            "{drops}
             DO $$ BEGIN
               IF to_regclass('factum_read_models.versions') IS NOT NULL THEN
                 DELETE FROM factum_read_models.versions WHERE name = '{name}';
                 DELETE FROM factum_read_models.parked WHERE name = '{name}';
               END IF;
             END $$;"
        ))
        .await
        .unwrap();
    let store = PostgresStore::builder(postgres_common::url())
        .schema(schema)
        .connect()
        .await
        .unwrap();
    let read_models = PostgresReadModel::connect(&postgres_common::url())
        .await
        .unwrap();
    (store, read_models)
}

async fn read_counts(read_models: &PostgresReadModel) -> BTreeMap<String, (i64, String)> {
    let client = read_models.client().await.unwrap();
    let rows = client
        .query("SELECT stream, n, version::text FROM counts_pg.counts", &[])
        .await
        .unwrap();
    rows.into_iter()
        .map(|row| (row.get(0), (row.get(1), row.get(2))))
        .collect()
}

// One test runs the whole story: the read models of one projection name are shared
// server-wide, so the steps must not run concurrently.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn projections_on_postgres_follow_switch_park_and_rebuild() {
    let (store, read_models) = setup("factum_projection_test").await;
    store
        .append(
            "a",
            "Counter",
            ExpectedVersion::Any,
            vec![event("Counted", false), event("Other", false)],
        )
        .await
        .unwrap();

    // Catch-up then live, woken by NOTIFY; readers see the views once it is active.
    let runner = ProjectionRunner::new(store.clone())
        .batch_size(3)
        .retry(Retry::new(2, Duration::from_millis(1)));
    let mut v1 = runner.spawn(Counts::<1>, read_models.clone());
    v1.wait_for(2).await.unwrap();
    let mut writers = Vec::new();
    for writer in 0..8 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for _ in 0..25 {
                store
                    .append(
                        &format!("w{writer}"),
                        "Counter",
                        ExpectedVersion::Any,
                        vec![event("Counted", false)],
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let head = store.head().await.unwrap().unwrap().position;
    v1.wait_for(head).await.unwrap();
    let live = read_counts(&read_models).await;
    assert_eq!(live.len(), 9);
    assert!(
        live.iter()
            .filter(|(stream, _)| stream.starts_with('w'))
            .all(|(_, (n, v))| *n == 25 && v == "1"),
        "{live:?}"
    );
    assert_eq!(v1.lag().await.unwrap().events, 0);
    v1.stop().await.unwrap();

    // A poison event is parked; the rest applied.
    let outcome = store
        .append(
            "b",
            "Counter",
            ExpectedVersion::Any,
            vec![event("Counted", true), event("Counted", false)],
        )
        .await
        .unwrap();
    let mut projector = runner.projector(Counts::<1>, read_models.clone());
    let caught_up = runner.catch_up(&mut projector).await.unwrap();
    assert_eq!(
        (caught_up.applied, caught_up.parked, caught_up.checkpoint),
        (1, 1, outcome.last_position)
    );
    let parked = projector.parked().await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(
        (parked[0].event.stream_id.as_str(), parked[0].attempts),
        ("b", 2)
    );

    // v2 builds beside v1: readers keep v1 until v2 has caught up and switched.
    let mut v2 = runner.projector(Counts::<2>, read_models.clone());
    runner.catch_up(&mut v2).await.unwrap();
    assert!(
        read_counts(&read_models)
            .await
            .values()
            .all(|(_, version)| version == "1")
    );
    // A reporting role with default privileges on the readers' schema keeps reading
    // across the switch (its views are replaced, the schema is not).
    let admin = postgres_common::raw_client().await;
    admin
        .batch_execute(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'factum_test_reporting') THEN
                 CREATE ROLE factum_test_reporting;
               END IF;
             END $$;
             GRANT USAGE ON SCHEMA counts_pg TO factum_test_reporting;
             GRANT SELECT ON ALL TABLES IN SCHEMA counts_pg TO factum_test_reporting;
             ALTER DEFAULT PRIVILEGES IN SCHEMA counts_pg GRANT SELECT ON TABLES TO factum_test_reporting;",
        )
        .await
        .unwrap();
    runner.catch_up_and_activate(&mut v2).await.unwrap();
    let switched = read_counts(&read_models).await;
    assert!(switched.values().all(|(_, version)| version == "2"));
    let can_read: bool = admin
        .query_one(
            "SELECT has_schema_privilege('factum_test_reporting', 'counts_pg', 'USAGE')
                AND has_table_privilege('factum_test_reporting', 'counts_pg.counts', 'SELECT')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(can_read, "the reporting role lost access at the switch");
    // An older version never takes readers back.
    let v1_target = Target {
        name: "counts_pg",
        version: 1,
    };
    assert!(!read_models.activate(v1_target).await.unwrap());
    runner
        .catch_up_and_activate(&mut runner.projector(Counts::<1>, read_models.clone()))
        .await
        .unwrap();
    assert_eq!(read_counts(&read_models).await, switched);
    let states: Vec<_> = read_models
        .versions("counts_pg")
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.version, v.state))
        .collect();
    assert_eq!(
        states,
        vec![(1, VersionState::Retired), (2, VersionState::Active)]
    );

    // Rebuild: equal to what live following built.
    let rebuilt = runner
        .rebuild(Counts::<2>, read_models.clone(), |_| {})
        .await
        .unwrap();
    assert_eq!(rebuilt.checkpoint, outcome.last_position);
    assert_eq!(read_counts(&read_models).await, switched);

    // One connection serving v1 then v2: the same SQL text must be prepared anew for
    // v2's tables (its `version` column is text there), not taken from v1's cache.
    let pool = deadpool_postgres::Pool::builder(deadpool_postgres::Manager::new(
        postgres_common::url().parse().unwrap(),
        tokio_postgres::NoTls,
    ))
    .max_size(1)
    .build()
    .unwrap();
    let pinned = PostgresReadModel::with_pool(pool).await.unwrap();
    let upsert = "INSERT INTO counts (stream, n, version) VALUES ($1, 1, $2)
                  ON CONFLICT (stream) DO UPDATE SET n = counts.n + 1, version = excluded.version";
    let tx = pinned.begin(v1_target).await.unwrap();
    let statement = tx.prepare_cached(upsert).await.unwrap();
    tx.execute(&statement, &[&"pinned", &1i32]).await.unwrap();
    let checkpoint = tx.checkpoint().unwrap();
    pinned.commit(tx, checkpoint).await.unwrap();
    let tx = pinned
        .begin(Target {
            name: "counts_pg",
            version: 2,
        })
        .await
        .unwrap();
    let statement = tx.prepare_cached(upsert).await.unwrap();
    tx.execute(&statement, &[&"pinned", &"2"]).await.unwrap();
    pinned.rollback(tx).await.unwrap();

    // An unfinished transaction never reaches the next user of the connection.
    let tx = read_models
        .begin(Target {
            name: "counts_pg",
            version: 2,
        })
        .await
        .unwrap();
    drop(tx);
    let checkpoint = read_models
        .checkpoint(Target {
            name: "counts_pg",
            version: 2,
        })
        .await
        .unwrap();
    assert_eq!(checkpoint, Some(outcome.last_position));
}

/// Records each applied position (a double apply shows as a duplicate row) and a total per
/// stream; `KILLABLE` sleeps per event so a SIGKILL lands mid-batch.
struct Ledger<const REBUILD: bool>;

impl<const REBUILD: bool> Projection for Ledger<REBUILD> {
    const NAME: &'static str = if REBUILD {
        "ledger_pg_rebuild"
    } else {
        "ledger_pg"
    };
    const VERSION: u32 = 1;
    const EVENTS: &'static [&'static str] = &["Counted"];
    type Tx = PostgresTx;

    async fn setup(&mut self, tx: &mut PostgresTx) -> Result<(), ProjectionError> {
        tx.batch_execute(
            "CREATE TABLE applied (position BIGINT NOT NULL, stream TEXT NOT NULL);
             CREATE TABLE totals (stream TEXT PRIMARY KEY, events BIGINT NOT NULL);",
        )
        .await?;
        Ok(())
    }

    async fn handle(
        &mut self,
        event: &RecordedEvent,
        tx: &mut PostgresTx,
    ) -> Result<(), ProjectionError> {
        let insert = tx
            .prepare_cached("INSERT INTO applied (position, stream) VALUES ($1, $2)")
            .await?;
        tx.execute(&insert, &[&(event.position as i64), &event.stream_id])
            .await?;
        let total = tx
            .prepare_cached(
                "INSERT INTO totals (stream, events) VALUES ($1, 1)
                 ON CONFLICT (stream) DO UPDATE SET events = totals.events + 1",
            )
            .await?;
        tx.execute(&total, &[&event.stream_id]).await?;
        if !REBUILD {
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        Ok(())
    }
}

const CHILD_ROLE: &str = "FACTUM_PG_PROJECTION_CHILD";
const KILL_SCHEMA: &str = "factum_projection_kill_test";

async fn ledger(read_models: &PostgresReadModel, schema: &str) -> (Vec<(String, i64)>, i64, i64) {
    let client = read_models.client().await.unwrap();
    let totals = client
        .query(
            &format!("SELECT stream, events FROM {schema}.totals ORDER BY stream"),
            &[],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let row = client
        .query_one(
            &format!("SELECT count(*), count(DISTINCT position) FROM {schema}.applied"),
            &[],
        )
        .await
        .unwrap();
    (totals, row.get(0), row.get(1))
}

/// The child's side: does nothing unless started as a child by the test below.
#[tokio::test]
async fn child_process() {
    if std::env::var(CHILD_ROLE).is_err() {
        return;
    }
    let store = PostgresStore::builder(postgres_common::url())
        .schema(KILL_SCHEMA)
        .connect()
        .await
        .unwrap();
    let read_models = PostgresReadModel::connect(&postgres_common::url())
        .await
        .unwrap();
    let runner = ProjectionRunner::new(store).batch_size(200);
    runner
        .catch_up(&mut runner.projector(Ledger::<false>, read_models))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_killed_mid_batch_restarts_to_what_a_rebuild_gives() {
    postgres_common::drop_schema(KILL_SCHEMA).await;
    let client = postgres_common::raw_client().await;
    client
        .batch_execute(
            "DROP SCHEMA IF EXISTS ledger_pg CASCADE; DROP SCHEMA IF EXISTS ledger_pg__v1 CASCADE;
             DROP SCHEMA IF EXISTS ledger_pg_rebuild CASCADE; DROP SCHEMA IF EXISTS ledger_pg_rebuild__v1 CASCADE;
             DO $$ BEGIN
               IF to_regclass('factum_read_models.versions') IS NOT NULL THEN
                 DELETE FROM factum_read_models.versions WHERE name IN ('ledger_pg', 'ledger_pg_rebuild');
               END IF;
             END $$;",
        )
        .await
        .unwrap();
    let store = PostgresStore::builder(postgres_common::url())
        .schema(KILL_SCHEMA)
        .connect()
        .await
        .unwrap();
    let read_models = PostgresReadModel::connect(&postgres_common::url())
        .await
        .unwrap();
    for stream in 0..10 {
        let events = (0..120)
            .map(|n| event(if n % 4 == 3 { "Other" } else { "Counted" }, false))
            .collect();
        store
            .append(
                &format!("s{stream}"),
                "Counter",
                ExpectedVersion::NoStream,
                events,
            )
            .await
            .unwrap();
    }
    let target = Target {
        name: "ledger_pg",
        version: 1,
    };
    let mut kills = 0;
    let mut last_checkpoint = 0;
    for round in 0..4u64 {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "child_process",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ROLE, "project")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(250 + 90 * round));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
        let checkpoint = read_models.checkpoint(target).await.unwrap().unwrap_or(0);
        assert!(
            checkpoint >= last_checkpoint,
            "the checkpoint went back: {checkpoint} < {last_checkpoint}"
        );
        last_checkpoint = checkpoint;
    }
    assert!(
        kills > 0,
        "no child was still running when killed: the test proved nothing"
    );

    let runner = ProjectionRunner::new(store.clone()).batch_size(200);
    runner
        .catch_up(&mut runner.projector(Ledger::<false>, read_models.clone()))
        .await
        .unwrap();
    runner
        .rebuild(Ledger::<true>, read_models.clone(), |_| {})
        .await
        .unwrap();
    let resumed = ledger(&read_models, "ledger_pg__v1").await;
    let rebuilt = ledger(&read_models, "ledger_pg_rebuild__v1").await;
    assert_eq!(resumed.1, resumed.2, "an event was applied twice");
    assert_eq!(resumed.1, 900);
    assert_eq!(resumed, rebuilt);
}

/// Counts the events it is given (a name of its own: read models are server-wide).
struct Tally;

impl Projection for Tally {
    const NAME: &'static str = "unreadable_pg";
    const VERSION: u32 = 1;
    const EVENTS: &'static [&'static str] = &["Counted"];
    type Tx = PostgresTx;

    async fn setup(&mut self, tx: &mut PostgresTx) -> Result<(), ProjectionError> {
        tx.batch_execute("CREATE TABLE tally (n BIGINT NOT NULL); INSERT INTO tally VALUES (0)")
            .await?;
        Ok(())
    }

    async fn handle(
        &mut self,
        _event: &RecordedEvent,
        tx: &mut PostgresTx,
    ) -> Result<(), ProjectionError> {
        tx.batch_execute("UPDATE tally SET n = n + 1").await?;
        Ok(())
    }
}

#[tokio::test]
async fn a_follower_stops_at_an_unreadable_row_until_an_operator_parks_it() {
    const SCHEMA: &str = "t_unreadable_rows";
    let (store, read_models) = setup_for(SCHEMA, "unreadable_pg", &[1]).await;
    let client = postgres_common::raw_client().await;
    for stream in 0..10 {
        let events = (0..30).map(|_| event("Counted", false)).collect();
        store
            .append(
                &format!("s{stream}"),
                "Counter",
                ExpectedVersion::Any,
                events,
            )
            .await
            .unwrap();
    }
    // The row at position 120 becomes unreadable, by raw SQL.
    let updated = client
        .execute(
            &format!("UPDATE {SCHEMA}.events SET schema_version = -1 WHERE position = 120"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(updated, 1);
    let at_120 = |error: &factum::projection::RunnerError| match error {
        factum::projection::RunnerError::Store {
            source: factum::store::StoreError::CorruptRow { position, .. },
            ..
        } => assert_eq!(*position, Some(120), "{error}"),
        other => panic!("expected a corrupt row at 120, got {other:?}"),
    };

    // A catch-up stops before it, every time; so does a spawned runner.
    let runner = ProjectionRunner::new(store.clone()).batch_size(50);
    let mut projector = runner.projector(Tally, read_models.clone());
    for _ in 0..2 {
        at_120(&runner.catch_up(&mut projector).await.unwrap_err());
        assert!(projector.checkpoint().await.unwrap() < 120);
    }
    let mut handle = runner.spawn(Tally, read_models.clone());
    at_120(&handle.wait_for(300).await.unwrap_err());
    assert!(projector.checkpoint().await.unwrap() < 120);

    // The operator parks it: refused elsewhere, then the projection goes on.
    assert!(matches!(
        runner.park_unreadable(&mut projector, 119, "ops").await,
        Err(factum::projection::RunnerError::NotUnreadable {
            next_unreadable: Some(120),
            ..
        })
    ));
    // The catch-ups applied the whole pages before the one holding it (every event of
    // the log is `Counted`: one per position).
    let before = projector.checkpoint().await.unwrap();
    let parked = runner
        .park_unreadable(&mut projector, 120, "bob: restored backup lacks it")
        .await
        .unwrap();
    assert_eq!(
        (before + parked.applied, parked.parked, parked.checkpoint),
        (119, 1, 120)
    );
    let dead_letters = projector.parked().await.unwrap();
    assert_eq!(dead_letters.len(), 1);
    assert!(dead_letters[0].is_unreadable());
    assert_eq!(dead_letters[0].event.position, 120);
    assert!(
        dead_letters[0]
            .error
            .contains("bob: restored backup lacks it")
            && dead_letters[0].error.contains("schema_version"),
        "{}",
        dead_letters[0].error
    );
    let caught_up = runner.catch_up(&mut projector).await.unwrap();
    assert_eq!((caught_up.applied, caught_up.checkpoint), (180, 300));
}

/// The catalog schema and a store are never migrated as each other, and a catalog
/// written by a newer factum is refused. In a database of its own: the catalog schema's
/// name is fixed, and the other tests share it.
#[tokio::test]
async fn the_catalog_schema_and_a_store_are_never_migrated_as_each_other() {
    let url = postgres_common::fresh_database("factum_schema_kinds_test").await;
    let store_in_the_catalog = || {
        PostgresStore::builder(url.as_str())
            .schema(CATALOG_SCHEMA)
            .pool_size(1)
            .connect()
    };
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let tables = || async {
        client
            .query(
                "SELECT table_name::text FROM information_schema.tables
                 WHERE table_schema = $1 ORDER BY table_name",
                &[&CATALOG_SCHEMA],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect::<Vec<String>>()
    };

    // A store pointed at the catalog's schema.
    drop(PostgresReadModel::connect(&url).await.unwrap());
    let catalog = [
        "factum_catalog_migrations".to_owned(),
        "leases".to_owned(),
        "parked".to_owned(),
        "partitions".to_owned(),
        "versions".to_owned(),
        "workers".to_owned(),
    ];
    assert_eq!(tables().await, catalog);
    let Err(StoreError::Backend(error)) = store_in_the_catalog().await else {
        panic!("expected the store to be refused");
    };
    assert!(matches!(
        error.downcast_ref::<PostgresError>(),
        Some(PostgresError::NotAStore { schema, .. }) if schema == CATALOG_SCHEMA
    ));
    assert_eq!(
        error.to_string(),
        "schema `factum_read_models` is not a factum store: it holds factum's read-model \
         catalog (the table `factum_catalog_migrations`), not a store; nothing was changed"
    );
    assert_eq!(tables().await, catalog, "not migrated");

    // A catalog written by a newer factum.
    client
        .batch_execute(
            "INSERT INTO factum_read_models.factum_catalog_migrations (version, description)
             VALUES (9, 'from the future')",
        )
        .await
        .unwrap();
    assert!(matches!(
        PostgresReadModel::connect(&url).await,
        Err(ReadModelError::SchemaTooNew { database, found: 9, supported: 3 })
            if database == CATALOG_SCHEMA
    ));

    // The catalog's schema holding a store.
    client
        .batch_execute("DROP SCHEMA factum_read_models CASCADE")
        .await
        .unwrap();
    drop(store_in_the_catalog().await.unwrap());
    let store = tables().await;
    assert!(store.contains(&"events".to_owned()), "{store:?}");
    match PostgresReadModel::connect(&url).await {
        Err(ReadModelError::NotAReadModel { path, reason }) => {
            assert_eq!(path, CATALOG_SCHEMA);
            assert_eq!(
                reason,
                "it holds factum's store (the table `factum_schema_migrations`), not a \
                 read-model catalog"
            );
        }
        other => panic!("expected NotAReadModel, got {other:?}"),
    }
    assert_eq!(tables().await, store, "not migrated");
}

/// Counts events per stream, for the query test (a read model of its own name).
struct QueryCounts;

impl Projection for QueryCounts {
    const NAME: &'static str = "queries_pg";
    const VERSION: u32 = 1;
    const EVENTS: &'static [&'static str] = &["Counted"];
    type Tx = PostgresTx;

    async fn setup(&mut self, tx: &mut PostgresTx) -> Result<(), ProjectionError> {
        tx.batch_execute("CREATE TABLE counts (stream TEXT PRIMARY KEY, n BIGINT NOT NULL)")
            .await?;
        Ok(())
    }

    async fn handle(
        &mut self,
        event: &RecordedEvent,
        tx: &mut PostgresTx,
    ) -> Result<(), ProjectionError> {
        tx.execute(
            "INSERT INTO counts (stream, n) VALUES ($1, 1)
             ON CONFLICT (stream) DO UPDATE SET n = counts.n + 1",
            &[&event.stream_id],
        )
        .await?;
        Ok(())
    }
}

/// How many events a stream has had; `None` for a stream never seen.
struct GetCount(&'static str);

impl factum::query::Query<PostgresReadModel> for GetCount {
    const NAME: &'static str = "GetCount";
    const PROJECTION: &'static str = QueryCounts::NAME;
    type Answer = Option<i64>;

    async fn answer(
        self,
        read_model: &PostgresReadModel,
    ) -> Result<Self::Answer, factum::query::QueryError> {
        let client = read_model.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT n FROM {}.counts WHERE stream = $1",
                    PostgresReadModel::reader_schema(Self::PROJECTION)
                ),
                &[&self.0],
            )
            .await
            .map_err(|error| factum::query::QueryError::failed(Self::NAME, error))?;
        Ok(row.map(|row| row.get(0)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queries_on_postgres_answer_with_freshness_and_wait_for_a_position() {
    use factum::query::{Consistency, QueryError, QueryRunner};

    let (store, read_models) = setup_for("factum_query_test", QueryCounts::NAME, &[1]).await;
    let queries = QueryRunner::new(store.clone(), read_models.clone());
    let not_yet = queries.ask(GetCount("a"), Consistency::Any).await;
    assert!(
        matches!(
            not_yet,
            Err(QueryError::NotReady {
                projection: "queries_pg",
                ..
            })
        ),
        "{not_yet:?}"
    );
    let counted = |n: usize| (0..n).map(|_| event("Counted", false)).collect::<Vec<_>>();
    store
        .append("a", "Counter", ExpectedVersion::Any, counted(3))
        .await
        .unwrap();
    let runner = ProjectionRunner::new(store.clone()).idle_wait(Duration::from_millis(20));
    // One call: the first version to catch up is what readers see.
    runner
        .catch_up(&mut runner.projector(QueryCounts, read_models.clone()))
        .await
        .unwrap();
    let answer = queries.ask(GetCount("a"), Consistency::Any).await.unwrap();
    assert_eq!(answer.value, Some(3));
    assert_eq!(
        (
            answer.freshness.position,
            answer.freshness.lag_events,
            answer.freshness.stale
        ),
        (3, 0, false)
    );
    assert_eq!(
        queries
            .ask(GetCount("zzz"), Consistency::Any)
            .await
            .unwrap()
            .value,
        None
    );

    let position = store
        .append("a", "Counter", ExpectedVersion::Any, counted(1))
        .await
        .unwrap()
        .last_position;
    let stale = queries
        .ask(
            GetCount("a"),
            Consistency::at_least(position, Duration::from_millis(30)),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            stale.value,
            stale.freshness.stale,
            stale.freshness.lag_events
        ),
        (Some(3), true, 1)
    );
    assert!(matches!(
        queries
            .wait_for(QueryCounts::NAME, position, Duration::from_millis(30))
            .await,
        Err(QueryError::Timeout { reached: 3, .. })
    ));

    let live = runner.spawn(QueryCounts, read_models.clone());
    let fresh = queries
        .ask(
            GetCount("a"),
            Consistency::at_least(position, Duration::from_secs(10)),
        )
        .await
        .unwrap();
    assert_eq!((fresh.value, fresh.freshness.stale), (Some(4), false));
    live.stop().await.unwrap();
}
