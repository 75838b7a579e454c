//! Projections, reactors and the runner that feeds them from the global log.
//!
//! A **projection** turns events into a read model that can be thrown away and rebuilt:
//! its handlers write through a read-model transaction ([`ReadModel::Tx`]) and the runner
//! commits the checkpoint in that same transaction, so a crash never applies an event
//! twice or skips one. A **reactor** has side effects (mail, commands, HTTP calls); it
//! keeps a checkpoint too, but a rebuild never re-fires it — [`ProjectionRunner::rebuild`]
//! only accepts projections.
//!
//! Each projection version gets a read model of its own (a SQLite file, a PostgreSQL
//! schema), so bumping the version builds the new model beside the live one and switches
//! readers over when it has caught up (blue/green).
//!
//! ```text
//! #[projection(name = "task_list", version = 1)]
//! impl TaskList {
//!     #[setup] async fn tables(&mut self, tx: &mut SqliteTx) -> Result<(), ProjectionError> { .. }
//!     #[on] async fn created(&mut self, e: &Recorded<TaskCreated>, tx: &mut SqliteTx) -> Result<(), ProjectionError> { .. }
//! }
//! ```

mod consistency;
mod control;
mod error;
mod partitioned;
mod projector;
mod read_model;
mod recorded;
mod runner;
mod workers;

/// The PostgreSQL read models, whose home is [`crate::postgres`].
#[cfg(feature = "postgres")]
pub mod postgres {
    pub use crate::postgres::{CATALOG_SCHEMA, PostgresReadModel, PostgresTx};
}
/// The SQLite read models, whose home is [`crate::sqlite`].
#[cfg(feature = "sqlite")]
pub mod sqlite {
    pub use crate::sqlite::{SqliteReadModel, SqliteTx};
}

use std::future::Future;

use crate::envelope::RecordedEvent;

pub use crate::retry::Retry;
pub use consistency::{
    ConsistencyError, ConsistencyReport, Contents, Difference, check_consistency,
};
pub use control::{ManagedProjection, ProjectionControl, ProjectionStatus, Steering};
pub use error::{ProjectionError, RunnerError};
pub use partitioned::PartitionedRecord;
pub use projector::{Applied, OnPoison, Projector, ReactorDriver, ReadModelOf};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) use read_model::check_name;
pub use read_model::{
    ParkedEvent, PartitionOffset, ReadModel, ReadModelError, ReadModelTx, Target, VersionState,
    VersionStatus,
};
// The rule the macros check a projection's name against at compile time.
pub(crate) use read_model::is_valid_name;
pub use recorded::Recorded;
#[cfg(feature = "kafka")]
pub(crate) use runner::activate_if_needed;
#[cfg(feature = "progress")]
pub use runner::progress_bar;
pub use runner::{Lag, ProjectionHandle, ProjectionRunner, RebuildProgress};
pub use workers::{LeaseRequest, PartitionLeases, ProjectionWorker, StreamPartitions, WorkerStep};

/// A read model built from events, safe to replay from the start.
///
/// Implemented by `#[projection]`. The state that matters lives in the read model that
/// the handlers write through `tx`; `self` holds configuration and caches, and a rebuild
/// starts from a fresh value.
pub trait Projection: Send + 'static {
    /// The stable name: checkpoints, dead letters and read models are keyed by it.
    const NAME: &'static str;
    /// The read model's shape version. Bumping it builds a new read model beside the live
    /// one and switches to it once it has caught up.
    const VERSION: u32;
    /// The names of the events the handlers take; the store filters the log by them.
    const EVENTS: &'static [&'static str];

    /// The read-model transaction the handlers write through.
    type Tx: ReadModelTx;

    /// Creates the read model's tables; runs once per version, before the first event,
    /// in the transaction that applies the first batch.
    fn setup(
        &mut self,
        tx: &mut Self::Tx,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send {
        let _ = tx;
        async { Ok(()) }
    }

    /// Applies one recorded event. Events not in [`Projection::EVENTS`] are ignored.
    fn handle(
        &mut self,
        event: &RecordedEvent,
        tx: &mut Self::Tx,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send;
}

/// A consumer of events with side effects: it runs once per event (at least once across
/// crashes) and is never replayed by a rebuild.
///
/// Implemented by `#[reactor]`, or by hand.
pub trait Reactor: Send + 'static {
    /// The stable name its checkpoint is kept under.
    const NAME: &'static str;
    /// The names of the events it reacts to.
    const EVENTS: &'static [&'static str];

    /// Reacts to one recorded event.
    fn react(
        &mut self,
        event: &RecordedEvent,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send;
}
