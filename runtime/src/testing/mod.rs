//! Given / when / then tests of aggregates, without a store, and of decisions across
//! entities ([`DecisionFixture`]).
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
mod decision;

pub use decision::{DecisionFixture, DecisionOutcome};

use crate::aggregate::Aggregate;
use crate::authorization::{Decision, Policy};
use crate::context::CommandContext;
use crate::envelope::Metadata;
use crate::event::EventSet;

/// Checks that `error` prints each of its causes once: every level of its `source()`
/// chain has a message, no level's message holds the message of a level below it, and the
/// chain rendered by [`Report`](crate::error::Report) holds each level's message exactly
/// once. Returns that rendering, for the caller to look for the cause it expects.
///
/// ```
/// let io = std::io::Error::other("disk full");
/// let error = factum::store::StoreError::Backend(Box::new(io));
/// let shown = factum::testing::assert_each_cause_once(&error);
/// assert_eq!(shown, "store backend failed: disk full");
/// ```
///
/// # Panics
///
/// When a cause is printed twice, or a level's message is empty.
pub fn assert_each_cause_once(error: &(dyn std::error::Error + 'static)) -> String {
    let mut levels = Vec::new();
    let mut level = Some(error);
    while let Some(current) = level {
        let text = current.to_string();
        assert!(
            !text.is_empty(),
            "an empty message in the chain of {error:?}"
        );
        levels.push(text);
        level = current.source();
    }
    for (depth, outer) in levels.iter().enumerate() {
        for inner in &levels[depth + 1..] {
            assert!(
                !outer.contains(inner.as_str()),
                "`{outer}` repeats its cause `{inner}`"
            );
        }
    }
    let rendered = crate::error::Report(error).to_string();
    for level in &levels {
        assert_eq!(
            rendered.matches(level.as_str()).count(),
            1,
            "`{level}` is not printed exactly once in `{rendered}`"
        );
    }
    rendered
}

/// A given / when / then test of one aggregate.
pub struct AggregateFixture<A: Aggregate> {
    state: A,
    services: A::Services,
    policy: Option<Box<dyn Policy<A>>>,
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
            policy: None,
        }
    }

    /// Authorizes the command with `policy` first, as a repository
    /// [with that policy](crate::repository::Repository::with_policy) does; check a denial
    /// with [`FixtureOutcome::then_expect_denial`].
    pub fn with_policy(mut self, policy: impl Policy<A>) -> Self {
        self.policy = Some(Box::new(policy));
        self
    }

    /// Applies past events, each first encoded and decoded as a store would: an array or
    /// `Vec` of one event type, or a tuple of events of any types of the set
    /// (`.given((created(), assigned("ben")))`).
    #[track_caller]
    pub fn given(mut self, events: impl GivenEvents<A::Events>) -> Self {
        for event in events.into_events() {
            let event = round_trip(&event);
            self.state.apply(&event);
        }
        self
    }

    /// Runs the command against the state built so far, in a fresh context (no actor,
    /// issued now).
    pub fn when(self, command: impl Into<A::Commands>) -> FixtureOutcome<A> {
        self.when_with(command, CommandContext::new())
    }

    /// Runs the command in `ctx` — an actor, a tenant, a time ([`CommandContext::at`]) —
    /// through the policy first, if any, as a repository does.
    pub fn when_with(
        self,
        command: impl Into<A::Commands>,
        ctx: CommandContext,
    ) -> FixtureOutcome<A> {
        let command = command.into();
        let result = match self
            .policy
            .as_ref()
            .map(|policy| policy.authorize(&ctx, &command, &self.state))
        {
            Some(Decision::Deny(reason)) => Outcome::Denied(reason),
            Some(Decision::Allow) | None => {
                match self.state.handle(command, &self.services, &ctx) {
                    Ok(events) => Outcome::Recorded(events),
                    Err(error) => Outcome::Rejected(error),
                }
            }
        };
        FixtureOutcome {
            state: self.state,
            ctx,
            result,
        }
    }
}

/// Events for [`AggregateFixture::given`]: arrays and `Vec`s of one type, and tuples (up
/// to eight) mixing the types of the set.
pub trait GivenEvents<S> {
    /// The events, in order.
    fn into_events(self) -> Vec<S>;
}

impl<S, T: Into<S>, const N: usize> GivenEvents<S> for [T; N] {
    fn into_events(self) -> Vec<S> {
        self.into_iter().map(Into::into).collect()
    }
}

impl<S, T: Into<S>> GivenEvents<S> for Vec<T> {
    fn into_events(self) -> Vec<S> {
        self.into_iter().map(Into::into).collect()
    }
}

macro_rules! given_tuples {
    ($(($($name:ident),+)),+ $(,)?) => {$(
        impl<S, $($name: Into<S>),+> GivenEvents<S> for ($($name,)+) {
            #[allow(non_snake_case, reason = "the type parameters name the elements")]
            fn into_events(self) -> Vec<S> {
                let ($($name,)+) = self;
                vec![$($name.into()),+]
            }
        }
    )+};
}

given_tuples!(
    (A),
    (A, B),
    (A, B, C),
    (A, B, C, D),
    (A, B, C, D, E),
    (A, B, C, D, E, F),
    (A, B, C, D, E, F, G),
    (A, B, C, D, E, F, G, H),
);

/// What the command did.
enum Outcome<A: Aggregate> {
    Recorded(Vec<A::Events>),
    Rejected(A::Error),
    Denied(String),
}

/// What a command did in a fixture, to be checked with a `then_` method.
pub struct FixtureOutcome<A: Aggregate> {
    state: A,
    ctx: CommandContext,
    result: Outcome<A>,
}

/// What a command recorded, for checks of its own: the events, the metadata a repository
/// would store with each (from the command's context), and the state after them.
#[derive(Debug)]
pub struct Recorded<A: Aggregate> {
    /// The events, in order.
    pub events: Vec<A::Events>,
    /// The metadata each would be stored with.
    pub metadata: Metadata,
    /// When they would be stored as having happened (the context's time).
    pub timestamp: chrono::DateTime<chrono::Utc>,
    /// The state after the events.
    pub state: A,
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
        let recorded = self.then_recorded();
        if recorded.events != expected {
            panic!(
                "the command recorded other events than expected (< expected, > actual):\n{}",
                pretty_assertions::Comparison::new(&expected, &recorded.events)
            );
        }
        recorded.state
    }

    /// Asserts the command recorded events and returns them with their metadata and the
    /// state after them, for checks of their own; each event must survive encoding and
    /// decoding.
    #[track_caller]
    pub fn then_recorded(self) -> Recorded<A> {
        let events = match self.result {
            Outcome::Recorded(events) => events,
            Outcome::Rejected(error) => {
                panic!("expected the command to record events, but it was rejected: {error:?}")
            }
            Outcome::Denied(reason) => {
                panic!("expected the command to record events, but the policy denied it: {reason}")
            }
        };
        survive_storage(&events);
        let mut state = self.state;
        for event in &events {
            state.apply(event);
        }
        Recorded {
            events,
            metadata: self.ctx.event_metadata(),
            timestamp: self.ctx.now(),
            state,
        }
    }

    /// Asserts the command recorded events whose JSON (`{"event": name, "payload": ...}`
    /// each, as stored) matches `expected`, where the string `"<any uuid>"` matches any
    /// UUID, `"<any time>"` any RFC 3339 time and `"<any>"` any value: for events holding
    /// values the handler generates. Returns the state after them.
    #[track_caller]
    pub fn then_expect_events_like(self, expected: serde_json::Value) -> A {
        let recorded = self.then_recorded();
        let actual = serde_json::Value::Array(
            recorded
                .events
                .iter()
                .map(|event| {
                    let encoded = event.encode().unwrap_or_else(|error| {
                        panic!("the fixture could not store an event: {error}")
                    });
                    let payload: serde_json::Value = serde_json::from_str(encoded.payload.get())
                        .unwrap_or_else(|error| panic!("a stored payload is JSON: {error}"));
                    serde_json::json!({ "event": encoded.name, "payload": payload })
                })
                .collect(),
        );
        if let Err(path) = like(&expected, &actual, "$") {
            panic!(
                "the command recorded events unlike the expected ones at {path} (< expected, > actual):\n{}",
                pretty_assertions::Comparison::new(&expected, &actual)
            );
        }
        recorded.state
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
        same_error(
            &expected,
            &self.then_expect_rejection(),
            "the command was rejected",
        );
    }

    /// Asserts the aggregate rejected the command and returns the error for further
    /// checks.
    #[track_caller]
    pub fn then_expect_rejection(self) -> A::Error {
        match self.result {
            Outcome::Rejected(error) => error,
            Outcome::Recorded(events) => {
                panic!("expected the command to be rejected, but it recorded: {events:#?}")
            }
            Outcome::Denied(reason) => panic!(
                "expected the aggregate to reject the command, but the policy denied it: {reason}"
            ),
        }
    }

    /// Asserts the policy denied the command with `reason`.
    #[track_caller]
    pub fn then_expect_denial(self, reason: &str) {
        match self.result {
            Outcome::Denied(actual) if actual == reason => {}
            Outcome::Denied(actual) => panic!(
                "the policy denied the command for another reason (< expected, > actual):\n{}",
                pretty_assertions::Comparison::new(&reason, &actual.as_str())
            ),
            Outcome::Recorded(events) => panic!(
                "expected the policy to deny the command ({reason}), but it recorded: {events:#?}"
            ),
            Outcome::Rejected(error) => panic!(
                "expected the policy to deny the command ({reason}), but the aggregate rejected it: {error:?}"
            ),
        }
    }
}

/// Whether `actual` is like `expected` (see [`FixtureOutcome::then_expect_events_like`]);
/// the path of the first difference otherwise.
fn like(
    expected: &serde_json::Value,
    actual: &serde_json::Value,
    path: &str,
) -> Result<(), String> {
    use serde_json::Value;
    match (expected, actual) {
        (Value::String(any), _) if any == "<any>" => Ok(()),
        (Value::String(any), Value::String(text)) if any == "<any uuid>" => {
            uuid::Uuid::parse_str(text)
                .map(|_| ())
                .map_err(|_| path.to_owned())
        }
        (Value::String(any), Value::String(text)) if any == "<any time>" => {
            chrono::DateTime::parse_from_rfc3339(text)
                .map(|_| ())
                .map_err(|_| path.to_owned())
        }
        (Value::Array(expected), Value::Array(actual)) if expected.len() == actual.len() => {
            expected
                .iter()
                .zip(actual)
                .enumerate()
                .try_for_each(|(index, (expected, actual))| {
                    like(expected, actual, &format!("{path}[{index}]"))
                })
        }
        (Value::Object(expected), Value::Object(actual)) if expected.len() == actual.len() => {
            expected
                .iter()
                .try_for_each(|(key, expected)| match actual.get(key) {
                    Some(actual) => like(expected, actual, &format!("{path}.{key}")),
                    None => Err(format!("{path}.{key}")),
                })
        }
        _ if expected == actual => Ok(()),
        _ => Err(path.to_owned()),
    }
}

/// Asserts each event reads back as it was recorded, encoded and decoded as a store
/// would.
#[track_caller]
fn survive_storage<S: EventSet + Debug + PartialEq>(events: &[S]) {
    for event in events {
        let decoded = round_trip(event);
        if &decoded != event {
            panic!(
                "event `{}` changes when stored and read back (< recorded, > read back):\n{}",
                event.event_name(),
                pretty_assertions::Comparison::new(event, &decoded)
            );
        }
    }
}

/// Asserts a refusal's error is the expected one; `what` says what refused.
#[track_caller]
fn same_error<E: Debug + PartialEq>(expected: &E, actual: &E, what: &str) {
    if actual != expected {
        panic!(
            "{what} with another error than expected (< expected, > actual):\n{}",
            pretty_assertions::Comparison::new(expected, actual)
        );
    }
}

/// Encodes and decodes an event the way a store does, panicking with the typed error
/// when the event does not survive.
#[track_caller]
fn round_trip<S: EventSet>(event: &S) -> S {
    let encoded = event
        .encode()
        .unwrap_or_else(|error| panic!("the fixture could not store an event: {error}"));
    S::decode(encoded.name, encoded.schema_version, encoded.payload.get())
        .unwrap_or_else(|error| panic!("the fixture could not read back an event: {error}"))
}
