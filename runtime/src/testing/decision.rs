//! Given / when / then tests of decisions across entities (see [`crate::decision`]):
//! events given with their tags, a decision made on them, its events, its refusal, or
//! its conflict with events stored meanwhile.
//!
//! The fixture runs the decision as [`Decisions`] does, on a [`MemoryStore`]: the given
//! events are stored with the tags their `#[tag]` fields declare, the models read only the
//! events their queries match (an event of another course never reaches the course's
//! model), and events given to [`DecisionFixture::meanwhile`] are stored between the
//! decision's read and its append, as a concurrent writer would store them: one that a
//! model's query matches outdates the decision.
//!
//! ```
//! # use factum::prelude::*;
//! # use factum::testing::DecisionFixture;
//! # #[event(name = "CourseDefined", version = 1)] #[derive(Debug, PartialEq)]
//! # pub struct CourseDefined { #[tag] pub course: String, pub seats: u32 }
//! # #[event(name = "StudentSubscribed", version = 1)] #[derive(Debug, PartialEq)]
//! # pub struct StudentSubscribed { #[tag] pub course: String, #[tag] pub student: String }
//! # #[derive(Events, Debug, PartialEq)]
//! # pub enum CourseEvent { Defined(CourseDefined), Subscribed(StudentSubscribed) }
//! # #[derive(Default)] pub struct Seats { seats: u32, taken: u32 }
//! # #[decision_model(tags(course))]
//! # impl Seats {
//! #     #[apply] fn defined(&mut self, e: &CourseDefined) { self.seats = e.seats; }
//! #     #[apply] fn subscribed(&mut self, _: &StudentSubscribed) { self.taken += 1; }
//! # }
//! # #[command(name = "Subscribe")]
//! # pub struct Subscribe { #[aggregate_id] pub id: String, pub course: String, pub student: String }
//! # #[derive(Debug, PartialEq, thiserror::Error)] #[error("full")] pub struct CourseFull;
//! # impl Decide for Subscribe {
//! #     const STREAM_TYPE: &'static str = "Subscription";
//! #     type Models = (Seats,);
//! #     type Events = CourseEvent;
//! #     type Error = CourseFull;
//! #     fn models(&self) -> (Keyed<Seats>,) { (Seats::keyed(&self.course),) }
//! #     fn decide(&self, (seats,): (Seats,), _: &CommandContext) -> Result<Vec<CourseEvent>, CourseFull> {
//! #         if seats.taken >= seats.seats { return Err(CourseFull) }
//! #         Ok(vec![StudentSubscribed { course: self.course.clone(), student: self.student.clone() }.into()])
//! #     }
//! # }
//! let defined = |course: &str| CourseDefined { course: course.into(), seats: 1 };
//! let subscribed =
//!     |course: &str, student: &str| StudentSubscribed { course: course.into(), student: student.into() };
//! let subscribe = || Subscribe { id: "c1-ada".into(), course: "c1".into(), student: "ada".into() };
//!
//! // A seat taken in another course is not this course's.
//! DecisionFixture::<Subscribe>::new()
//!     .given((defined("c1"), defined("c2"), subscribed("c2", "grace")))
//!     .when(subscribe())
//!     .then_expect_events([subscribed("c1", "ada")]);
//!
//! DecisionFixture::<Subscribe>::new()
//!     .given((defined("c1"), subscribed("c1", "grace")))
//!     .when(subscribe())
//!     .then_expect_error(CourseFull);
//!
//! // Someone took the last seat between the decision's read and its append.
//! DecisionFixture::<Subscribe>::new()
//!     .given([defined("c1")])
//!     .meanwhile([subscribed("c1", "grace")])
//!     .when(subscribe())
//!     .then_expect_conflict();
//! ```

use std::fmt::Debug;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use super::{GivenEvents, same_error, survive_storage};
use crate::context::CommandContext;
use crate::decision::{Decide, Decisions};
use crate::envelope::NewEvent;
use crate::event::EventSet;
use crate::repository::RepositoryError;
use crate::store::{EventStore, ExpectedVersion, MemoryStore, StoreError};

/// A given / when / then test of one kind of decision.
pub struct DecisionFixture<D: Decide> {
    store: MemoryStore,
    /// Events stored between the decision's read and its append.
    meanwhile: Vec<NewEvent>,
    /// How many batches were given, for their streams' names.
    given: u64,
    command: std::marker::PhantomData<fn(D)>,
}

impl<D: Decide> Default for DecisionFixture<D> {
    fn default() -> Self {
        Self {
            store: MemoryStore::new(),
            meanwhile: Vec::new(),
            given: 0,
            command: std::marker::PhantomData,
        }
    }
}

impl<D: Decide> DecisionFixture<D> {
    /// A fixture with no events.
    pub fn new() -> Self {
        Self::default()
    }

    /// Past events of the decision's set: an array or `Vec` of one type, or a tuple of
    /// events of the set's types. Each is stored as a store would store it, with the
    /// tags its `#[tag]` fields declare.
    #[track_caller]
    pub fn given(self, events: impl GivenEvents<D::Events>) -> Self {
        self.given_of::<D::Events>(events)
    }

    /// Past events of another event set (an aggregate's, whose events a model reads by
    /// their tags too), stored as [`DecisionFixture::given`] stores them.
    #[track_caller]
    pub fn given_of<S: EventSet>(mut self, events: impl GivenEvents<S>) -> Self {
        let events = stored::<S>(events);
        self.given += 1;
        let stream = format!("factum.given-{}", self.given);
        at_once(
            self.store
                .append(&stream, "factum.Given", ExpectedVersion::Any, events),
        )
        .unwrap_or_else(|error| panic!("the fixture could not store the given events: {error}"));
        self
    }

    /// Events another writer stores after the decision read and before it appends: when
    /// a model's query matches one, the decision was made on outdated facts
    /// ([`DecisionOutcome::then_expect_conflict`]); otherwise it is recorded as usual.
    #[track_caller]
    pub fn meanwhile(self, events: impl GivenEvents<D::Events>) -> Self {
        self.meanwhile_of::<D::Events>(events)
    }

    /// Events of another event set stored meanwhile, as [`DecisionFixture::meanwhile`]
    /// stores them.
    #[track_caller]
    pub fn meanwhile_of<S: EventSet>(mut self, events: impl GivenEvents<S>) -> Self {
        self.meanwhile.extend(stored::<S>(events));
        self
    }

    /// Decides `command` in a fresh context (no actor, issued now).
    pub fn when(self, command: D) -> DecisionOutcome<D> {
        self.when_with(command, CommandContext::new())
    }

    /// Decides `command` in `ctx` — an actor, a tenant, a time ([`CommandContext::at`]) —
    /// once: a conflict is reported, not decided again.
    pub fn when_with(self, command: D, ctx: CommandContext) -> DecisionOutcome<D> {
        let decisions = Decisions::new(self.store.clone()).with_attempts(1);
        let meanwhile = self.meanwhile;
        let store = self.store;
        let result = at_once(decisions.execute_between(command, ctx, async move {
            if !meanwhile.is_empty() {
                store
                    .append(
                        "factum.meanwhile",
                        "factum.Given",
                        ExpectedVersion::Any,
                        meanwhile,
                    )
                    .await
                    .unwrap_or_else(|error| {
                        panic!("the fixture could not store the events given meanwhile: {error}")
                    });
            }
        }));
        DecisionOutcome {
            result: result.map(|decided| decided.events),
        }
    }
}

/// The events as a store receives them: each encoded (and checked to read back) with
/// its tags.
#[track_caller]
fn stored<S: EventSet>(events: impl GivenEvents<S>) -> Vec<NewEvent> {
    let events = events.into_events();
    crate::repository::new_events::<S, std::convert::Infallible>(
        &events,
        "factum.given",
        &CommandContext::new(),
    )
    .unwrap_or_else(|error| panic!("the fixture could not store an event: {error}"))
}

/// Runs a future of the memory store, which never waits: it answers on the first poll.
#[track_caller]
fn at_once<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("the memory store answers without waiting"),
    }
}

/// What a decision did in a fixture, to be checked with a `then_` method.
pub struct DecisionOutcome<D: Decide> {
    result: Result<Vec<D::Events>, RepositoryError<D::Error>>,
}

impl<D: Decide> DecisionOutcome<D>
where
    D::Events: Debug + PartialEq,
    D::Error: Debug,
{
    /// Asserts the decision recorded exactly `expected`, in order, each surviving
    /// encoding and decoding.
    #[track_caller]
    pub fn then_expect_events<E: Into<D::Events>>(self, expected: impl IntoIterator<Item = E>) {
        let expected: Vec<D::Events> = expected.into_iter().map(Into::into).collect();
        let recorded = self.then_recorded();
        if recorded != expected {
            panic!(
                "the decision recorded other events than expected (< expected, > actual):\n{}",
                pretty_assertions::Comparison::new(&expected, &recorded)
            );
        }
    }

    /// Asserts the decision was made and recorded nothing.
    #[track_caller]
    pub fn then_expect_no_events(self) {
        self.then_expect_events(Vec::<D::Events>::new());
    }

    /// Asserts the decision recorded events and returns them, each checked to survive
    /// encoding and decoding.
    #[track_caller]
    pub fn then_recorded(self) -> Vec<D::Events> {
        let events = match self.result {
            Ok(events) => events,
            Err(RepositoryError::Rejected(error)) => {
                panic!("expected the decision to record events, but it refused: {error:?}")
            }
            Err(other) => panic!("expected the decision to record events, but: {other}"),
        };
        survive_storage(&events);
        events
    }

    /// Asserts the decision refused with `expected`.
    #[track_caller]
    pub fn then_expect_error(self, expected: D::Error)
    where
        D::Error: PartialEq,
    {
        same_error(
            &expected,
            &self.then_expect_rejection(),
            "the decision refused",
        );
    }

    /// Asserts the decision refused and returns its error for further checks.
    #[track_caller]
    pub fn then_expect_rejection(self) -> D::Error {
        match self.result {
            Err(RepositoryError::Rejected(error)) => error,
            Ok(events) => {
                panic!("expected the decision to refuse, but it recorded: {events:#?}")
            }
            Err(other) => panic!("expected the decision to refuse, but: {other}"),
        }
    }

    /// Asserts an event stored meanwhile outdated the decision: nothing was recorded, the
    /// store's [`StoreError::ConditionFailed`]. Returns the position of the first such
    /// event.
    #[track_caller]
    pub fn then_expect_conflict(self) -> u64 {
        match self.result {
            Err(RepositoryError::Store(StoreError::ConditionFailed { position, .. })) => position,
            Ok(events) => panic!(
                "expected the events given meanwhile to outdate the decision, but it recorded: {events:#?} (does a model's query match them?)"
            ),
            Err(other) => panic!(
                "expected the events given meanwhile to outdate the decision, but: {other:?}"
            ),
        }
    }
}
