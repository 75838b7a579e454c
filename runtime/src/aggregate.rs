//! Aggregates: consistency boundaries that decide on commands and evolve by events.

use serde_json::value::RawValue;

use crate::command::CommandSet;
use crate::context::CommandContext;
use crate::event::EventSet;
use crate::registry::RegistryBuilder;

/// A consistency boundary whose state is rebuilt from its own events.
///
/// Implemented by `#[aggregate]` on an impl block of `#[handle]` and `#[apply]` methods.
/// The state starts from [`Default`] and changes only through [`Aggregate::apply`].
pub trait Aggregate: Default + Send + Sync + 'static {
    /// The stable aggregate name; it is the stream type of its streams.
    const NAME: &'static str;
    /// The events this aggregate records.
    type Events: EventSet;
    /// The commands this aggregate accepts.
    type Commands: CommandSet;
    /// The domain error a command handler returns.
    type Error: std::error::Error + Send + Sync + 'static;
    /// Outside lookups the command handlers may use (`()` when none are declared).
    type Services: Send + Sync + 'static;

    /// Evolves the state by one event.
    fn apply(&mut self, event: &Self::Events);

    /// Decides on a command in its context (who issued it, when): the events to record,
    /// or a domain error.
    fn handle(
        &self,
        command: Self::Commands,
        services: &Self::Services,
        ctx: &CommandContext,
    ) -> Result<Vec<Self::Events>, Self::Error>;

    /// The schema version of this aggregate's snapshots, when it takes snapshots
    /// (`#[aggregate(snapshot = N)]`). Bump it whenever the state's serialised shape
    /// changes: snapshots of another version are ignored and replaced, never read.
    const SNAPSHOT_VERSION: Option<u32> = None;

    /// Serialises the state for a snapshot (`None` when the aggregate takes none).
    fn to_snapshot(&self) -> Option<Result<Box<RawValue>, serde_json::Error>> {
        None
    }

    /// Registers the aggregate's events and commands in a schema registry.
    fn register(registry: &mut RegistryBuilder) {
        Self::Events::register(registry, Some(Self::NAME));
        Self::Commands::register(registry, Some(Self::NAME));
    }

    /// Restores the state from a snapshot of [`Aggregate::SNAPSHOT_VERSION`].
    fn from_snapshot(state: &RawValue) -> Option<Result<Self, serde_json::Error>> {
        let _ = state;
        None
    }
}

/// Applies one event type to an aggregate; each `#[apply]` method implements it.
#[diagnostic::on_unimplemented(
    message = "aggregate `{Self}` has no #[apply] handler for event `{E}`",
    label = "event `{E}` is not applied by `{Self}`",
    note = "add `#[apply] fn ...(&mut self, event: &{E})` to the #[aggregate] impl block, or list the event in `ignore_events = [...]` if it deliberately changes no state"
)]
pub trait Apply<E> {
    /// Evolves the state by the event.
    fn apply(&mut self, event: &E);
}

/// Handles one command type; each `#[handle]` method implements it.
#[diagnostic::on_unimplemented(
    message = "aggregate `{Self}` has no #[handle] handler for command `{C}`",
    label = "command `{C}` is not handled by `{Self}`",
    note = "add `#[handle] fn ...(&self, command: {C}) -> Result<..., Error>` (optionally taking `services: &Services` and `ctx: &CommandContext`) to the #[aggregate] impl block"
)]
pub trait Handle<C>: Aggregate {
    /// Decides on the command in its context.
    fn handle(
        &self,
        command: C,
        services: &Self::Services,
        ctx: &CommandContext,
    ) -> Result<Vec<Self::Events>, Self::Error>;
}
