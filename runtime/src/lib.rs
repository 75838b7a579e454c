//! # factum
//!
//! Event sourcing and CQRS for Rust. Annotate plain types with [`event`], [`command`] and
//! [`aggregate`]; the macros generate encoding, decoding with upcasting from older
//! versions, dispatch, and JSON schemas, and check at compile time that every event has
//! an `#[apply]` handler and every command a `#[handle]` handler. A thin async runtime
//! stores and replays the events through an [`EventStore`](store::EventStore).
//!
//! Start with the [`prelude`] and the README's tour.
#![warn(missing_docs)]

mod aggregate;
mod command;
pub mod envelope;
pub mod error;
mod event;
pub mod repository;
pub mod store;
pub mod testing;

#[doc(hidden)]
pub mod __private;

pub use aggregate::{Aggregate, Apply, Handle};
pub use command::{Command, CommandOf, CommandSet};
pub use event::{EncodedEvent, Event, EventOf, EventSet, IntoEvents};

/// Re-exported: event and command ids are UUIDs.
pub use uuid;

pub use factum_macros::{Commands, Events, aggregate, command, event};

/// The names most code needs: the macros, the traits, the repository and the store.
pub mod prelude {
    pub use crate::envelope::{CommandMetadata, Metadata, NewEvent, RecordedEvent};
    pub use crate::repository::{Executed, Loaded, Repository, RepositoryError, RetryPolicy};
    pub use crate::store::{EventStore, ExpectedVersion, MemoryStore, StoreError};
    pub use crate::{Aggregate, Command, CommandSet, Event, EventSet};
    pub use crate::{Commands, Events, aggregate, command, event};
}

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
