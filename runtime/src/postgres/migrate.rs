//! The frozen migrations of every schema factum keeps in PostgreSQL (the event store,
//! the read-model catalog, each process manager's store), the one runner that applies
//! them, and the names they are rendered with (schema, lock keys, channel).

use crate::store::StoreError;

use super::error::{PostgresError, backend};

/// The first key of every advisory lock factum takes on appends ("fact" in ASCII),
/// written as a number into the append functions' frozen SQL (a test checks it there).
#[cfg(test)]
pub(super) const APPEND_LOCK_CLASS: i32 = 0x6661_6374;
/// The first key of the advisory lock that guards migrations ("facu").
pub(super) const MIGRATION_LOCK_CLASS: i32 = 0x6661_6375;

/// The migrations, in order: (version, description, SQL). Each SQL text is frozen as
/// released (a test pins it): a change of schema is a new migration, never an edit. The
/// texts hold three placeholders, filled in by [`render`]: `{{schema}}` (the quoted
/// schema name), `{{lock_key}}` (the append lock's key) and `{{channel}}` (the
/// notification channel).
pub(super) const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "events and snapshots tables",
        include_str!("migrations/0001_events_and_snapshots.sql"),
    ),
    // `factum_append` (a batch, as arrays) and `factum_append_one` (one event, as
    // scalars): see the type's documentation. Both return one status row: 0 written, 1
    // already written (idempotent), 2 conflict (`o_stream_version` = actual version or
    // NULL), 3 stream type mismatch (`o_existing_type`), 4 duplicate event id
    // (`o_event_id`).
    (
        2,
        "the factum_append function",
        include_str!("migrations/0002_append_functions.sql"),
    ),
    // The same functions, now announcing every write with `pg_notify('<channel>', '<last
    // position>')` inside the appending transaction: delivered when (and only if) it
    // commits, it wakes `EventStore::wait_for_events`.
    (
        3,
        "append functions notify followers",
        include_str!("migrations/0003_append_functions_notify.sql"),
    ),
    // The `commands` table (one row per recorded command, written in the transaction of
    // its events) and `factum_append_command`: under the append lock, status 5 when the
    // command is recorded already; else `factum_append`'s checks and statuses (none of
    // its writes for an empty batch) and the record, with `o_first_position`.
    (
        4,
        "commands recorded once",
        include_str!("migrations/0004_commands.sql"),
    ),
    // Each event's hash and its predecessor's (`factum::integrity::chain`), computed by
    // `factum_event_hash` in a trigger on every insert; the events stored before are
    // hashed here.
    (
        5,
        "events chained by hash",
        include_str!("migrations/0005_events_chained_by_hash.sql"),
    ),
    // Each signed tree head as its JSON text (`factum::integrity::checkpoint`), by size;
    // text, so that a damaged one still reads back, to be reported.
    (
        6,
        "signed checkpoints",
        include_str!("migrations/0006_checkpoints.sql"),
    ),
    // The service's Ed25519 signature of each critical event's hash
    // (`factum::integrity::signing`), written in the append's transaction; NULL for the
    // others.
    (
        7,
        "signatures of critical events",
        include_str!("migrations/0007_signatures.sql"),
    ),
    // One row per archive file the bodies of old events moved to (`factum::archive`): the
    // range it holds, the file as given, its SHA-256, when. The events it holds keep their
    // rows, with `null` as the payload and the JSON string "factum:archived" as metadata.
    (8, "archives", include_str!("migrations/0008_archives.sql")),
    // Appends to different streams run and commit concurrently (the append lock shared,
    // a lock per stream); each holds a lock keyed by a lower bound of the positions it
    // takes until it ends, and followers read only up to `factum_settled_head()`, below
    // every such bound. An append inside a caller's transaction (an outbox,
    // `append_in_transaction`) holds the append lock exclusively until it ends. The event
    // hash is re-created in PL/pgSQL. See `PostgresStore`'s documentation.
    (
        9,
        "concurrent appends",
        include_str!("migrations/0009_concurrent_appends.sql"),
    ),
    // The settled head leaves out the bound of an append that read the last position
    // after it did (migration 9 wrapped it to below every event, and found none).
    (
        10,
        "settled head ignores later bounds",
        include_str!("migrations/0010_settled_head_ignores_later_bounds.sql"),
    ),
    // `factum_append_one` in one function: migration 9's locks, checks and position, and
    // the event's hash, inline; the chaining trigger skips a row inserted with its hash.
    // Same statuses, positions and hashes; less server time per append.
    (
        11,
        "one-event append in one function",
        include_str!("migrations/0011_one_event_append_in_one_function.sql"),
    ),
    // `factum_append` (a batch) in one function likewise: migration 9's locks, checks
    // and positions inline, each event's hash chained in a loop and inserted with its
    // row, so the trigger no longer runs per row of a batch.
    (
        12,
        "batch append in one function",
        include_str!("migrations/0012_batch_append_in_one_function.sql"),
    ),
    // Migration 9's helpers (`factum_append_checked`, `factum_append_one_checked`,
    // `factum_take_positions`, `factum_append_lock`), which nothing calls since 12.
    (
        13,
        "drop unused append helpers",
        include_str!("migrations/0013_drop_unused_append_helpers.sql"),
    ),
    // Tags (`events.tags`, the text the hash covers, and the `event_tags` index) and
    // decisions: `factum_decide` and `factum_decide_command` append a batch with tags or
    // under a condition, tag locks making the check and the insert one step.
    (
        14,
        "tags and decisions",
        include_str!("migrations/0014_tags_and_decisions.sql"),
    ),
    // A decision's read in one call, `factum_read_matching`: the settled head, then the
    // events the query matches up to it, in later snapshots. It and migration 14's
    // appends plan their statements generically (each has one good plan; planning anew
    // at each call cost more than running them).
    (
        15,
        "decision read in one call, generic plans",
        include_str!("migrations/0015_decision_read_and_generic_plans.sql"),
    ),
    // Fewer statements in a decision's read and in `factum_decide` (starting each
    // statement's executor cost more than running it): the read collects each item's
    // first tag's rows in one statement (the caller keeps what the query matches), the
    // condition looks at those rows once before walking, the locks are taken by one
    // statement each.
    (
        16,
        "fewer statements in decisions",
        include_str!("migrations/0016_fewer_statements_in_decisions.sql"),
    ),
];

/// The newest schema version this code knows.
pub(super) const SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// A schema of factum's in PostgreSQL: its frozen migrations, as `MIGRATIONS` (rendered
/// by [`render`]), and the table in the schema that records which ran.
pub(super) struct Schema {
    /// What the schema holds, in messages ("store", "read-model catalog").
    kind: &'static str,
    /// The table recording the applied migrations; its name tells the schemas apart.
    version_table: &'static str,
    /// Every migration, oldest first, numbered 1, 2, 3 ...: (version, description, SQL).
    migrations: &'static [(i32, &'static str, &'static str)],
    /// The version tables of the schemas that may share a database schema with this
    /// one (the subject keys beside a store's tables).
    shares_schema_with: &'static [&'static str],
}

impl Schema {
    /// The newest version of the schema.
    const fn latest(&self) -> i32 {
        self.migrations[self.migrations.len() - 1].0
    }
}

/// The event store.
pub(super) const STORE: Schema = Schema {
    kind: "store",
    version_table: "factum_schema_migrations",
    migrations: MIGRATIONS,
    shares_schema_with: &["factum_keys_migrations"],
};

/// The read-model catalog (the schema `factum_read_models`): each projection version's
/// state and checkpoint, the dead letters and the partition offsets.
pub(super) const READ_MODEL_CATALOG: Schema = Schema {
    kind: "read-model catalog",
    version_table: "factum_catalog_migrations",
    migrations: CATALOG_MIGRATIONS,
    shares_schema_with: &[],
};

/// The read-model catalog's migrations, frozen as [`MIGRATIONS`] are.
pub(super) const CATALOG_MIGRATIONS: &[(i32, &str, &str)] = &[
    // Adopts a catalog made before it was versioned: the DDL factum ran then.
    (
        1,
        "versions and parked tables",
        include_str!("migrations/catalog_0001_versions_and_parked.sql"),
    ),
    // A projection fed from Kafka keeps where it stands in each partition, in the
    // transactions of its rows.
    (
        2,
        "partition offsets",
        include_str!("migrations/catalog_0002_partition_offsets.sql"),
    ),
    // A projection split across worker processes: who is alive, who holds which stream
    // partition until when.
    (
        3,
        "partition leases",
        include_str!("migrations/catalog_0003_partition_leases.sql"),
    ),
];

/// A process manager's instances and outbox, in the schema of its read model
/// (`<NAME>__v0`).
pub(super) const PROCESS_STORE: Schema = Schema {
    kind: "process store",
    version_table: "factum_process_migrations",
    migrations: PROCESS_MIGRATIONS,
    shares_schema_with: &[],
};

/// The process store's migrations, frozen as [`MIGRATIONS`] are.
pub(super) const PROCESS_MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "process instances and outbox",
        include_str!("migrations/process_0001_instances_and_outbox.sql"),
    ),
    // The W3C trace context of the event each command was decided on: a dispatch after a
    // crash continues that trace.
    (
        2,
        "trace context of outbox commands",
        include_str!("migrations/process_0002_outbox_traceparent.sql"),
    ),
];

/// The subject keys of crypto-shredding (`factum::personal`, feature `personal`), in
/// the schema of a store beside its tables: made when a `PostgresKeyStore` is first
/// opened on the store, so a store that does not use them is unchanged. A schema of its
/// own, so it never takes a number in the store's migrations.
pub(super) const KEY_STORE: Schema = Schema {
    kind: "key store",
    version_table: "factum_keys_migrations",
    migrations: KEY_MIGRATIONS,
    shares_schema_with: &["factum_schema_migrations"],
};

/// The key store's migrations, frozen as [`MIGRATIONS`] are.
pub(super) const KEY_MIGRATIONS: &[(i32, &str, &str)] = &[
    // One row per data subject: its data key wrapped by the application's master key,
    // or, once forgotten, no key and who forgot the subject when.
    (
        1,
        "subject keys",
        include_str!("migrations/keys_0001_subject_keys.sql"),
    ),
];

/// Every schema: one holding the version table of one is never migrated as another
/// (unless the two share a database schema).
pub(super) const SCHEMAS: [&Schema; 4] = [&STORE, &READ_MODEL_CATALOG, &PROCESS_STORE, &KEY_STORE];

const _: () = {
    // Each schema's migrations are numbered 1, 2, 3 ... without gaps.
    let mut kind = 0;
    while kind < SCHEMAS.len() {
        let migrations = SCHEMAS[kind].migrations;
        let mut index = 0;
        while index < migrations.len() {
            assert!(migrations[index].0 as usize == index + 1);
            index += 1;
        }
        kind += 1;
    }
};

/// Why a schema cannot be migrated.
#[derive(Debug)]
pub(super) enum MigrationError {
    /// The schema records a version newer than this code knows.
    TooNew {
        /// The version found.
        found: i32,
        /// The newest version this code knows.
        supported: i32,
    },
    /// The schema holds another of factum's schemas; the reason says which.
    Refused(String),
    /// The database failed.
    Database(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for MigrationError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Database(error)
    }
}

/// Brings `kind` in the database schema `schema` up to its newest version: creates the
/// schema and its version table if needed and applies the migrations it lacks, in one
/// transaction, under the advisory lock `(MIGRATION_LOCK_CLASS, lock_key(schema))`, so
/// that processes starting at once migrate exactly once. Refuses a schema recording a
/// newer version, or holding another kind's version table, without changing it.
pub(super) async fn migrate(
    client: &mut deadpool_postgres::Object,
    kind: &Schema,
    schema: &str,
) -> Result<(), MigrationError> {
    let s = quote_ident(schema);
    let key = lock_key(schema);
    let tx = client.transaction().await?;
    // Concurrent processes connecting at once: one migrates, the others wait here
    // and then find nothing left to do.
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&MIGRATION_LOCK_CLASS, &key],
    )
    .await?;
    let others: Vec<&str> = SCHEMAS
        .iter()
        .map(|other| other.version_table)
        .filter(|table| *table != kind.version_table && !kind.shares_schema_with.contains(table))
        .collect();
    let found: Option<String> = tx
        .query_opt(
            "SELECT c.relname::text FROM pg_catalog.pg_class c
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relname = ANY($2) LIMIT 1",
            &[&schema, &others],
        )
        .await?
        .map(|row| row.get(0));
    if let Some(other) = SCHEMAS
        .iter()
        .find(|other| found.as_deref() == Some(other.version_table))
    {
        return Err(MigrationError::Refused(format!(
            "it holds factum's {} (the table `{}`), not a {}",
            other.kind, other.version_table, kind.kind
        )));
    }
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {s};
         CREATE TABLE IF NOT EXISTS {s}.{} (
             version     integer     PRIMARY KEY,
             description text        NOT NULL,
             applied_at  timestamptz NOT NULL DEFAULT now()
         );",
        kind.version_table
    ))
    .await?;
    let current: i32 = tx
        .query_one(
            &format!(
                "SELECT coalesce(max(version), 0) FROM {s}.{}",
                kind.version_table
            ),
            &[],
        )
        .await?
        .try_get(0)?;
    if current > kind.latest() {
        return Err(MigrationError::TooNew {
            found: current,
            supported: kind.latest(),
        });
    }
    let record = format!(
        "INSERT INTO {s}.{} (version, description) VALUES ($1, $2)",
        kind.version_table
    );
    for (version, description, sql) in kind.migrations {
        if *version <= current {
            continue;
        }
        tx.batch_execute(&render(sql, &s, key, &channel(schema)))
            .await?;
        tx.execute(&record, &[version, description]).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A migration's SQL for one schema: the quoted schema name `s`, the append lock's key
/// and the notification channel put in for their placeholders (schema names are
/// letters, digits and `_`, so none holds a placeholder).
pub(super) fn render(sql: &str, s: &str, lock_key: i32, channel: &str) -> String {
    sql.replace("{{schema}}", s)
        .replace("{{lock_key}}", &lock_key.to_string())
        .replace("{{channel}}", channel)
}

/// `"name"`: the schema name is validated to letters, digits and `_`, but quote anyway.
pub(super) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub(super) fn validate_schema(name: &str) -> Result<(), StoreError> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && !name.to_ascii_lowercase().starts_with("pg_")
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(backend(PostgresError::InvalidSchemaName(name.to_owned())))
    }
}

/// FNV-1a of the schema name: the second key of the store's advisory locks. Two schemas
/// with the same hash only share a lock (serialising more), never break anything.
pub(super) fn lock_key(schema: &str) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in schema.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    i32::from_ne_bytes(hash.to_ne_bytes())
}

/// The `LISTEN/NOTIFY` channel of the store in `schema`: one per schema, so stores in
/// other schemas do not wake each other. Channel names are identifiers (at most 63
/// bytes); a long schema name is shortened and told apart by its hash.
pub(super) fn channel(schema: &str) -> String {
    const PREFIX: &str = "factum_events_";
    if PREFIX.len() + schema.len() <= 63 {
        return format!("{PREFIX}{schema}");
    }
    let hash = u32::from_ne_bytes(lock_key(schema).to_ne_bytes());
    // Schema names are ASCII (validated), so any byte index is a char boundary.
    let kept = 63 - PREFIX.len() - 9;
    format!("{PREFIX}{hash:08x}_{}", &schema[..kept.min(schema.len())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_checked() {
        for good in ["public", "factum_test_1", "_x", "A"] {
            assert!(validate_schema(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1abc",
            "pg_x",
            "PG_x",
            "a-b",
            "a\"b",
            "a b",
            "é",
            &"x".repeat(64),
        ] {
            assert!(validate_schema(bad).is_err(), "{bad}");
        }
    }

    /// Every released migration, as it runs for the schema `public`: a migration is only
    /// ever added, never edited (an edit would change what existing databases ran, not
    /// what they hold). Editing one fails here; a new one adds a snapshot.
    #[test]
    fn released_migrations_are_frozen() {
        pin("postgres_migration", "public", MIGRATIONS);
    }

    /// Every released migration of the read-model catalog, as it runs for its schema;
    /// frozen as the store's are.
    #[test]
    fn released_catalog_migrations_are_frozen() {
        pin(
            "postgres_catalog_migration",
            crate::projection::postgres::CATALOG_SCHEMA,
            super::CATALOG_MIGRATIONS,
        );
    }

    /// Every released migration of the process store, as it runs for a manager's schema;
    /// frozen as the store's are.
    #[test]
    fn released_process_migrations_are_frozen() {
        pin(
            "postgres_process_migration",
            "order_fulfilment__v0",
            super::PROCESS_MIGRATIONS,
        );
    }

    /// Every released migration of the key store, as it runs for a store's schema;
    /// frozen as the store's are.
    #[test]
    fn released_key_migrations_are_frozen() {
        pin("postgres_key_migration", "public", super::KEY_MIGRATIONS);
    }

    /// Pins the text of each migration, rendered for `schema`, as the snapshot
    /// `{prefix}_{version}`.
    fn pin(prefix: &str, schema: &str, migrations: &[(i32, &str, &str)]) {
        for (version, description, sql) in migrations {
            insta::assert_snapshot!(
                format!("{prefix}_{version}"),
                render(
                    sql,
                    &quote_ident(schema),
                    lock_key(schema),
                    &channel(schema)
                ),
                description
            );
        }
    }

    /// Every function the migrations create that appends takes the append lock once
    /// (migrations 2 and 3 create two such functions each, 4 one); migration 5's two
    /// (the event hash and the insert trigger) run inside those appends, under their lock.
    /// Migration 9's appends take it exclusively only when held (as 11 and 12 do inline),
    /// else shared; none of its functions takes a session lock, which could outlive its
    /// transaction.
    #[test]
    fn the_append_functions_take_the_append_lock() {
        let held = format!("pg_advisory_xact_lock({APPEND_LOCK_CLASS}, {{{{lock_key}}}})");
        let session = format!("pg_advisory_lock({APPEND_LOCK_CLASS}, {{{{lock_key}}}})");
        let release = format!("pg_advisory_unlock({APPEND_LOCK_CLASS}, {{{{lock_key}}}})");
        // (version, functions created, held locks, session locks, releases)
        let expected = [
            (2, 2, 2, 0, 0),
            (3, 2, 2, 0, 0),
            (4, 1, 1, 0, 0),
            (5, 2, 0, 0, 0),
            (6, 0, 0, 0, 0),
            (7, 0, 0, 0, 0),
            (8, 0, 0, 0, 0),
            (9, 9, 1, 0, 0),
            (10, 1, 0, 0, 0),
            (11, 1, 1, 0, 0),
            (12, 1, 1, 0, 0),
            (13, 0, 0, 0, 0),
            (14, 2, 1, 0, 0),
            (15, 1, 0, 0, 0),
            (16, 2, 1, 0, 0),
        ];
        assert_eq!(MIGRATIONS.len(), expected.len() + 1, "{expected:?}");
        for ((version, _, sql), (numbered, functions, held_locks, session_locks, releases)) in
            MIGRATIONS[1..].iter().zip(expected)
        {
            assert_eq!(*version, numbered);
            assert_eq!(
                sql.matches("CREATE FUNCTION {{schema}}.").count()
                    + sql
                        .matches("CREATE OR REPLACE FUNCTION {{schema}}.")
                        .count(),
                functions,
                "migration {version}"
            );
            for (lock, count) in [
                (&held, held_locks),
                (&session, session_locks),
                (&release, releases),
            ] {
                assert_eq!(
                    sql.matches(lock.as_str()).count(),
                    count,
                    "migration {version}: {lock}"
                );
            }
        }
    }

    #[test]
    fn lock_keys_differ_between_schemas() {
        assert_ne!(lock_key("public"), lock_key("factum_test_1"));
        assert_eq!(lock_key("public"), lock_key("public"));
    }
}
