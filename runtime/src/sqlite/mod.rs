//! The SQLite backend, the embedded default (feature `sqlite`; SQLite is bundled): the
//! event store, the read models (one file per projection version, a catalog beside
//! them), the process store, their schemas and migrations, all in this folder.
//!
//! Everything a user names is re-exported here and, for code written before the backends
//! had a home each, where it used to live: [`SqliteStore`] also in [`crate::store`],
//! [`SqliteReadModel`] and [`SqliteTx`] also in `factum::projection::sqlite`.

mod file;
mod keys;
mod process;
mod read_model;
mod schema;
mod store;

/// Re-exported: the driver a read-model handler writes through ([`SqliteTx`] dereferences
/// to its connection, inside the runner's transaction) and a query reads with.
pub use rusqlite;

pub use keys::SqliteKeyStore;
pub use read_model::{SqliteReadModel, SqliteTx};
pub use store::{SqliteOpenError, SqliteOptions, SqliteStore, Synchronous};
