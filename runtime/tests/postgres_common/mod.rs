//! What every PostgreSQL test shares: the server's URL and a fresh schema per test.
//!
//! The tests need a running server: `eval "$(scripts/postgres.sh start)"` starts a
//! throwaway one and exports `FACTUM_POSTGRES_URL`. Without it they fail, never pass.
#![allow(dead_code)]

use factum::prelude::*;
use factum::store::PostgresStore;
use serde_json::json;

/// The server's connection string; a test without a server fails loudly.
pub fn url() -> String {
    match std::env::var("FACTUM_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            let ci = std::env::var("CI").is_ok_and(|ci| !ci.is_empty() && ci != "false");
            panic!(
                "FACTUM_POSTGRES_URL is not set{}: the PostgreSQL tests need a server. Start a \
                 throwaway one with `eval \"$(scripts/postgres.sh start)\"` (it installs \
                 PostgreSQL if missing), or point FACTUM_POSTGRES_URL at a database you can \
                 create schemas in.",
                if ci { " (CI=true)" } else { "" }
            )
        }
    }
}

/// A raw connection, for SQL the store does not offer.
pub async fn raw_client() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&url(), tokio_postgres::NoTls)
        .await
        .expect("connect to FACTUM_POSTGRES_URL");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Drops `schema` (left over from an earlier run) so the test starts empty.
pub async fn drop_schema(schema: &str) {
    raw_client()
        .await
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .expect("drop the test schema");
}

/// The URL of `database` on the test server: the URL's own database replaced.
pub fn database_url(database: &str) -> String {
    let url = url();
    let (base, query) = url.split_once('?').unwrap_or((&url, ""));
    let host = base.find("://").map_or(0, |scheme| scheme + 3);
    let root = base[host..]
        .find('/')
        .map_or(base, |slash| &base[..host + slash]);
    if query.is_empty() {
        format!("{root}/{database}")
    } else {
        format!("{root}/{database}?{query}")
    }
}

/// Drops `database` (left over from an earlier run) and creates it empty, for a test
/// that needs schemas whose names are fixed (the read-model catalog's), away from the
/// other tests; returns its URL.
pub async fn fresh_database(database: &str) -> String {
    // One statement each: neither runs inside a transaction block.
    let client = raw_client().await;
    for statement in [
        format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"),
        format!("CREATE DATABASE \"{database}\""),
    ] {
        client
            .batch_execute(&statement)
            .await
            .expect("recreate the test database");
    }
    database_url(database)
}

/// A store in a schema of its own, empty: tests run in parallel without seeing each other.
pub async fn fresh_store(schema: &str) -> PostgresStore {
    drop_schema(schema).await;
    PostgresStore::builder(url())
        .schema(schema)
        .pool_size(4)
        .connect()
        .await
        .expect("connect the store")
}

/// An event whose payload is `{"n": n}`.
pub fn event(n: u64) -> NewEvent {
    NewEvent::new(
        "Ticked",
        1,
        serde_json::value::to_raw_value(&json!({ "n": n })).unwrap(),
        Metadata::default(),
    )
}

/// `count` events numbered from 0.
pub fn events(count: u64) -> Vec<NewEvent> {
    (0..count).map(event).collect()
}
