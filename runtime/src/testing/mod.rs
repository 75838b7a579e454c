//! Given / when / then tests of aggregates, without a store.
//!
//! ```
//! # use factum::prelude::*;
//! # use factum::testing::AggregateFixture;
//! # #[event(name = "Opened")] #[derive(Debug, PartialEq)] pub struct Opened { pub id: String }
//! # #[derive(Events, Debug, PartialEq)] pub enum AccountEvent { Opened(Opened) }
//! # #[command] pub struct Open { #[aggregate_id] pub id: String }
//! # #[derive(Commands)] pub enum AccountCommand { Open(Open) }
//! # #[derive(Debug, PartialEq, thiserror::Error)] #[error("already open")] pub struct AlreadyOpen;
//! # #[derive(Default)] pub struct Account { open: bool }
//! # #[aggregate(events = AccountEvent, commands = AccountCommand, error = AlreadyOpen)]
//! # impl Account {
//! #     #[handle] fn open(&self, c: Open) -> Result<Opened, AlreadyOpen> {
//! #         if self.open { Err(AlreadyOpen) } else { Ok(Opened { id: c.id }) }
//! #     }
//! #     #[apply] fn opened(&mut self, _: &Opened) { self.open = true; }
//! # }
//! AggregateFixture::<Account>::new()
//!     .given([Opened { id: "a".into() }])
//!     .when(Open { id: "a".into() })
//!     .then_expect_error(AlreadyOpen);
//! ```

use std::fmt::Debug;

#[cfg(feature = "conformance")]
pub mod conformance;

use crate::aggregate::Aggregate;
use crate::context::CommandContext;
use crate::event::EventSet;

/// A given / when / then test of one aggregate.
pub struct AggregateFixture<A: Aggregate> {
    state: A,
    services: A::Services,
}

impl<A: Aggregate> Default for AggregateFixture<A>
where
    A::Services: Default,
{
    fn default() -> Self {
        Self::with_services(A::Services::default())
    }
}

impl<A: Aggregate> AggregateFixture<A> {
    /// A fixture whose aggregate starts from its default state.
    pub fn new() -> Self
    where
        A::Services: Default,
    {
        Self::default()
    }

    /// A fixture whose command handlers get `services`.
    pub fn with_services(services: A::Services) -> Self {
        Self {
            state: A::default(),
            services,
        }
    }

    /// Applies past events. Each is first encoded and decoded, as a store would.
    #[track_caller]
    pub fn given<E: Into<A::Events>>(mut self, events: impl IntoIterator<Item = E>) -> Self {
        for event in events {
            let event = round_trip(&event.into());
            self.state.apply(&event);
        }
        self
    }

    /// Runs the command against the state built so far.
    pub fn when(self, command: impl Into<A::Commands>) -> FixtureOutcome<A> {
        let result = self
            .state
            .handle(command.into(), &self.services, &CommandContext::new());
        FixtureOutcome {
            state: self.state,
            result,
        }
    }
}

/// What a command did in a fixture, to be checked with a `then_` method.
pub struct FixtureOutcome<A: Aggregate> {
    state: A,
    result: Result<Vec<A::Events>, A::Error>,
}

impl<A: Aggregate> FixtureOutcome<A>
where
    A::Events: Debug + PartialEq,
    A::Error: Debug,
{
    /// Asserts the command recorded exactly `expected`, in order, and that each recorded
    /// event survives encoding and decoding; returns the state after the events.
    #[track_caller]
    pub fn then_expect_events<E: Into<A::Events>>(
        self,
        expected: impl IntoIterator<Item = E>,
    ) -> A {
        let expected: Vec<A::Events> = expected.into_iter().map(Into::into).collect();
        let actual = match self.result {
            Ok(events) => events,
            Err(error) => panic!(
                "expected the command to record events, but it was rejected: {error:?}\nexpected events: {expected:#?}"
            ),
        };
        if actual != expected {
            panic!(
                "the command recorded other events than expected (< expected, > actual):\n{}",
                pretty_assertions::Comparison::new(&expected, &actual)
            );
        }
        let mut state = self.state;
        for event in &actual {
            let decoded = round_trip(event);
            if &decoded != event {
                panic!(
                    "event `{}` changes when stored and read back (< recorded, > read back):\n{}",
                    event.event_name(),
                    pretty_assertions::Comparison::new(event, &decoded)
                );
            }
            state.apply(event);
        }
        state
    }

    /// Asserts the command was accepted and recorded nothing.
    #[track_caller]
    pub fn then_expect_no_events(self) -> A {
        self.then_expect_events(Vec::<A::Events>::new())
    }

    /// Asserts the command was rejected with `expected`.
    #[track_caller]
    pub fn then_expect_error(self, expected: A::Error)
    where
        A::Error: PartialEq,
    {
        match self.result {
            Ok(events) => panic!(
                "expected the command to be rejected with {expected:?}, but it recorded: {events:#?}"
            ),
            Err(actual) if actual != expected => panic!(
                "the command was rejected with another error than expected (< expected, > actual):\n{}",
                pretty_assertions::Comparison::new(&expected, &actual)
            ),
            Err(_) => {}
        }
    }

    /// Asserts the command was rejected and returns the error for further checks.
    #[track_caller]
    pub fn then_expect_rejection(self) -> A::Error {
        match self.result {
            Ok(events) => {
                panic!("expected the command to be rejected, but it recorded: {events:#?}")
            }
            Err(error) => error,
        }
    }
}

/// Encodes and decodes an event the way a store does, panicking with the typed error
/// when the event does not survive.
#[track_caller]
fn round_trip<S: EventSet>(event: &S) -> S {
    let encoded = event
        .encode()
        .unwrap_or_else(|error| panic!("the fixture could not store an event: {error}"));
    S::decode(encoded.name, encoded.version, &encoded.payload)
        .unwrap_or_else(|error| panic!("the fixture could not read back an event: {error}"))
}
