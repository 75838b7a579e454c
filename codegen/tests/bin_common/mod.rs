//! Running the `factum` binary, as the command-line tests do.

use std::process::{Command, Output};

/// Runs `factum` with `arguments` and waits for it.
pub fn factum(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_factum"))
        .args(arguments)
        .output()
        .expect("run the factum command")
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A new, empty PostgreSQL database named `database` on the test server (dropped first
/// if an earlier run left it), and its URL: the store's and the read models' default
/// schemas are then the test's own. Fails loudly without a server.
#[allow(dead_code)]
pub async fn fresh_postgres_database(database: &str) -> String {
    use factum::postgres::tokio_postgres;
    let server = std::env::var("FACTUM_POSTGRES_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| {
            panic!(
                "FACTUM_POSTGRES_URL is not set: this test needs PostgreSQL. \
                 `scripts/test.sh` starts a server; by hand: `eval \"$(scripts/postgres.sh start)\"`"
            )
        });
    let (admin, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .await
        .expect("drop");
    admin
        .batch_execute(&format!("CREATE DATABASE {database}"))
        .await
        .expect("create");
    let (base, query) = server.split_once('?').unwrap_or((&server, ""));
    let root = &base[..base.rfind('/').expect("a database in the URL")];
    if query.is_empty() {
        format!("{root}/{database}")
    } else {
        format!("{root}/{database}?{query}")
    }
}
