//! The PostgreSQL backend, the one to grow into (feature `postgres`): the event store
//! (pooled, with PL/pgSQL append functions and LISTEN/NOTIFY), the read models (one
//! schema per projection version, a catalog schema), the process store, their frozen
//! migrations (`migrations/`), all in this folder.
//!
//! Everything a user names is re-exported here and, for code written before the backends
//! had a home each, where it used to live: [`PostgresStore`] also in [`crate::store`],
//! [`PostgresReadModel`] and [`PostgresTx`] also in `factum::projection::postgres`.

mod append;
mod archive;
mod config;
mod decision;
mod error;
mod integrity;
mod keys;
mod leases;
mod migrate;
mod notifier;
mod process;
mod read_model;
mod rows;
mod store;

/// Re-exported: the driver a read-model handler writes through ([`PostgresTx`]) and a
/// query reads with.
pub use tokio_postgres;

pub use config::PostgresConfig;
pub use error::PostgresError;
pub use keys::PostgresKeyStore;
pub use read_model::{CATALOG_SCHEMA, PostgresReadModel, PostgresTx};
pub use store::PostgresStore;
