//! Decisions across entities: a command decided over models built from the events their
//! tags select, and appended only if none of those events changed since (the dynamic
//! consistency boundary of the dcb.events specification; the store's side is
//! [`store::decision`](crate::store::decision)).
//!
//! A rule that spans entities — a course's capacity and a student's course limit, a user
//! name unique across users — needs no saga here:
//!
//! - a [`DecisionModel`] is a state built from the events of some names that carry its
//!   tags. `#[decision_model(tags(course))]` on an impl block of `#[apply]` methods
//!   implements it and checks **at compile time** that every event it applies declares
//!   each of its tag keys (a `#[tag]` field): a model keyed by `course` cannot apply an
//!   event that has no `course` tag, since no query could ever find it;
//! - a command implements [`Decide`]: the models it reads, a tuple, each keyed by values
//!   from the command ([`Keyed`], made by the model's generated `keyed` function), and
//!   its decision over their states;
//! - [`Decisions::execute`] reads every model's events in one pass (one query, the
//!   union of the models'), folds each event into the models whose items it matches,
//!   decides, and appends the decided events (their tags with them) under the condition
//!   that no event the query matches was stored after the position it read to. When
//!   another decision got there first, it decides again on a fresh read, up to
//!   [`Decisions::with_attempts`] times in all: the loser of a race for the last seat
//!   sees the winner and gets the domain's refusal.
//!
//! The command's id makes it idempotent as any command is: a repeat is answered as
//! executed before, never as a failed condition.
//!
//! ```
//! use factum::decision::{Decide, Decisions};
//! use factum::prelude::*;
//!
//! #[event(name = "CourseDefined", version = 1)]
//! pub struct CourseDefined {
//!     #[tag]
//!     pub course: String,
//!     pub capacity: u32,
//! }
//!
//! #[event(name = "StudentSubscribed", version = 1)]
//! pub struct StudentSubscribed {
//!     #[tag]
//!     pub course: String,
//!     #[tag]
//!     pub student: String,
//! }
//!
//! #[derive(Events)]
//! pub enum CourseEvents {
//!     CourseDefined(CourseDefined),
//!     StudentSubscribed(StudentSubscribed),
//! }
//!
//! /// A course's capacity and how many took a seat.
//! #[derive(Default)]
//! pub struct Seats {
//!     capacity: u32,
//!     taken: u32,
//! }
//!
//! #[decision_model(tags(course))]
//! impl Seats {
//!     #[apply]
//!     fn defined(&mut self, event: &CourseDefined) {
//!         self.capacity = event.capacity;
//!     }
//!     #[apply]
//!     fn subscribed(&mut self, _: &StudentSubscribed) {
//!         self.taken += 1;
//!     }
//! }
//!
//! /// How many courses a student took.
//! #[derive(Default)]
//! pub struct Courses(u32);
//!
//! #[decision_model(tags(student))]
//! impl Courses {
//!     #[apply]
//!     fn subscribed(&mut self, _: &StudentSubscribed) {
//!         self.0 += 1;
//!     }
//! }
//!
//! #[command(name = "SubscribeStudent")]
//! pub struct SubscribeStudent {
//!     #[aggregate_id]
//!     pub subscription: String,
//!     pub course: String,
//!     pub student: String,
//! }
//!
//! #[derive(Debug, thiserror::Error)]
//! pub enum Refused {
//!     #[error("the course is full")]
//!     CourseFull,
//!     #[error("the student takes three courses already")]
//!     TooManyCourses,
//! }
//!
//! impl Decide for SubscribeStudent {
//!     const STREAM_TYPE: &'static str = "Subscription";
//!     type Models = (Seats, Courses);
//!     type Events = CourseEvents;
//!     type Error = Refused;
//!
//!     fn models(&self) -> (Keyed<Seats>, Keyed<Courses>) {
//!         (Seats::keyed(&self.course), Courses::keyed(&self.student))
//!     }
//!
//!     fn decide(
//!         &self,
//!         (seats, courses): (Seats, Courses),
//!         _: &CommandContext,
//!     ) -> Result<Vec<CourseEvents>, Refused> {
//!         if seats.taken >= seats.capacity {
//!             return Err(Refused::CourseFull);
//!         }
//!         if courses.0 >= 3 {
//!             return Err(Refused::TooManyCourses);
//!         }
//!         Ok(vec![CourseEvents::StudentSubscribed(StudentSubscribed {
//!             course: self.course.clone(),
//!             student: self.student.clone(),
//!         })])
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let decisions = Decisions::new(factum::store::MemoryStore::new());
//! # let defined = CourseEvents::CourseDefined(CourseDefined { course: "c1".into(), capacity: 1 });
//! # let encoded = defined.encode()?;
//! # decisions.store().append("Course-c1", "Course", ExpectedVersion::NoStream,
//! #     vec![NewEvent::new(encoded.name, 1, encoded.payload, Default::default())
//! #         .with_tags([Tag::new("course", "c1")])]).await?;
//! let subscribe = |student: &str| SubscribeStudent {
//!     subscription: format!("c1-{student}"),
//!     course: "c1".into(),
//!     student: student.into(),
//! };
//! decisions.execute(subscribe("ada"), CommandContext::new()).await?;
//! let refused = decisions.execute(subscribe("grace"), CommandContext::new()).await;
//! assert!(matches!(refused, Err(RepositoryError::Rejected(Refused::CourseFull))));
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use crate::command::Command;
use crate::context::CommandContext;
use crate::envelope::RecordedEvent;
use crate::error::{DecodeError, DecodeErrorKind};
use crate::event::EventSet;
use crate::repository::{RecordDecodeError, RepositoryError};
use crate::retry::Retry;
use crate::store::decision::{DecisionStore, Query, QueryItem};
use crate::store::{CommandOutcome, CommandRecord, CommandSession, StoreError};
use crate::tag::Tag;

/// A state built from the events of some names that carry its tags: what a decision
/// reads of one entity (a course, a student, a user name).
///
/// Implemented by `#[decision_model(tags(..))]` on an impl block of `#[apply]` methods,
/// which also gives the type a `keyed` function taking one value per tag key.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a decision model",
    label = "not a #[decision_model]",
    note = "annotate an impl block of `{Self}` with `#[decision_model(tags(..))]` and `#[apply]` methods"
)]
pub trait DecisionModel: Default + Send + 'static {
    /// The Rust name of the model, for messages.
    const MODEL_NAME: &'static str;
    /// The tag keys the model is keyed by: its events carry a tag of each key, with the
    /// values [`Keyed`] gives.
    const TAG_KEYS: &'static [&'static str];
    /// The names of the events the model applies.
    const EVENT_NAMES: &'static [&'static str];

    /// Applies a stored event named `name` (one of [`DecisionModel::EVENT_NAMES`]),
    /// decoding its payload of `schema_version` into the newest shape first.
    fn apply_stored(
        &mut self,
        name: &str,
        schema_version: u32,
        payload: &str,
    ) -> Result<(), DecodeErrorKind>;
}

/// A model with the values of its tags: the events it is built from are those of its
/// names carrying these tags. Made by the model's `keyed` function.
#[derive(Debug)]
pub struct Keyed<M> {
    tags: Vec<Tag>,
    model: PhantomData<fn() -> M>,
}

impl<M> Clone for Keyed<M> {
    fn clone(&self) -> Self {
        Self {
            tags: self.tags.clone(),
            model: PhantomData,
        }
    }
}

impl<M: DecisionModel> Keyed<M> {
    /// The model keyed by `tags`, one per tag key, in [`DecisionModel::TAG_KEYS`] order;
    /// what the generated `keyed` function builds.
    #[doc(hidden)]
    pub fn __new(tags: Vec<Tag>) -> Self {
        Self {
            tags,
            model: PhantomData,
        }
    }

    /// The tags the model's events carry.
    pub fn tags(&self) -> &[Tag] {
        &self.tags
    }

    /// The query item selecting the model's events: its event names, these tags.
    pub fn query_item(&self) -> QueryItem {
        QueryItem::names(M::EVENT_NAMES.iter().copied()).with_tags(self.tags.iter().cloned())
    }
}

/// The models a decision reads: a tuple of one to six [`DecisionModel`]s.
pub trait Models: Default + Sized + Send + 'static {
    /// Each model keyed: a tuple of [`Keyed`] in the same order.
    type Keys: Send + Sync;

    /// One query item per model, in order.
    fn items(keys: &Self::Keys) -> Vec<QueryItem>;

    /// Applies `event` (the next in log order) to every model whose item (in `items`,
    /// the models' order) matches it.
    fn apply(
        &mut self,
        items: &[QueryItem],
        event: &RecordedEvent,
    ) -> Result<(), RecordDecodeError>;
}

/// Applies `event` to `model` if `item` matches it.
fn apply_one<M: DecisionModel>(
    model: &mut M,
    item: &QueryItem,
    event: &RecordedEvent,
) -> Result<(), RecordDecodeError> {
    if !item.matches(&event.name, &event.tags) {
        return Ok(());
    }
    model
        .apply_stored(&event.name, event.schema_version, event.payload.get())
        .map_err(|kind| RecordDecodeError {
            stream_id: event.stream_id.clone(),
            stream_version: event.stream_version,
            position: event.position,
            source: Box::new(DecodeError {
                event: event.name.clone(),
                schema_version: event.schema_version,
                kind,
            }),
        })
}

macro_rules! tuple_models {
    ($($model:ident $index:tt),+) => {
        impl<$($model: DecisionModel),+> Models for ($($model,)+) {
            type Keys = ($(Keyed<$model>,)+);

            fn items(keys: &Self::Keys) -> Vec<QueryItem> {
                vec![$(keys.$index.query_item()),+]
            }

            fn apply(
                &mut self,
                items: &[QueryItem],
                event: &RecordedEvent,
            ) -> Result<(), RecordDecodeError> {
                $(apply_one(&mut self.$index, &items[$index], event)?;)+
                Ok(())
            }
        }
    };
}

tuple_models!(A 0);
tuple_models!(A 0, B 1);
tuple_models!(A 0, B 1, C 2);
tuple_models!(A 0, B 1, C 2, D 3);
tuple_models!(A 0, B 1, C 2, D 3, E 4);
tuple_models!(A 0, B 1, C 2, D 3, E 4, F 5);

/// A command decided across entities: over the states of the models it names, keyed by
/// its own values. Its events go to the stream `"{STREAM_TYPE}-{aggregate_id}"` (its
/// `#[aggregate_id]` field names the entity the decision records, a subscription or an
/// invoice), whatever that stream holds: the condition over the models' events is what
/// keeps the decision consistent, not the stream's version.
pub trait Decide: Command {
    /// The stream type of the streams the decided events go to.
    const STREAM_TYPE: &'static str;
    /// The models the decision reads: a tuple, `(Seats, Courses)`.
    type Models: Models;
    /// The events the decision records.
    type Events: EventSet;
    /// The domain's refusal.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Each model keyed by the command's values: `(Seats::keyed(&self.course), ..)`.
    fn models(&self) -> <Self::Models as Models>::Keys;

    /// The events to record, decided on the models' states, or the domain's refusal.
    fn decide(
        &self,
        models: Self::Models,
        ctx: &CommandContext,
    ) -> Result<Vec<Self::Events>, Self::Error>;
}

/// A decided command: what it recorded, and where.
#[derive(Debug)]
#[non_exhaustive]
pub struct Decided<E> {
    /// The command's id.
    pub command_id: Uuid,
    /// The stream the events went to.
    pub stream_id: String,
    /// The events recorded (read back when the command was executed before).
    pub events: Vec<E>,
    /// Their ids.
    pub event_ids: Vec<Uuid>,
    /// The stream's version after the events.
    pub version: u64,
    /// The position of the last event (`None` when it recorded none).
    pub position: Option<u64>,
    /// When the command was recorded.
    pub recorded_at: chrono::DateTime<chrono::Utc>,
    /// How many times it was decided (more than 1 after another decision got there
    /// first); 0 when it was executed before and answered from its record.
    pub attempts: u32,
}

/// Runs [`Decide`] commands against a [`DecisionStore`].
#[derive(Debug, Clone)]
pub struct Decisions<S> {
    store: S,
    attempts: u32,
}

/// How many times a decision is made before a failed condition is reported, unless set
/// with [`Decisions::with_attempts`].
pub const DEFAULT_ATTEMPTS: u32 = 3;

impl<S: DecisionStore> Decisions<S> {
    /// Decisions on `store`, each made up to [`DEFAULT_ATTEMPTS`] times.
    pub fn new(store: S) -> Self {
        Self {
            store,
            attempts: DEFAULT_ATTEMPTS,
        }
    }

    /// Makes each decision up to `attempts` times (at least once) before a failed
    /// condition is reported as [`StoreError::ConditionFailed`].
    #[must_use]
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// The attempts of [`Retry`] (its backoff does not apply: a failed condition means
    /// facts changed, and the next read sees them at once).
    #[must_use]
    pub fn with_retry(self, retry: Retry) -> Self {
        self.with_attempts(retry.attempts())
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Decides `command` in `ctx` and records its events under the condition that none
    /// of its models' events changed since they were read; decides again when they did,
    /// up to the configured attempts.
    ///
    /// Errors: the domain's refusal ([`RepositoryError::Rejected`]), the condition still
    /// failing after the last attempt ([`RepositoryError::Store`] with
    /// [`StoreError::ConditionFailed`], HTTP 409), a command id used by another command
    /// ([`RepositoryError::CommandIdReused`]), events that do not encode or would not
    /// read back, the store's errors. A command executed before is answered from its
    /// record, with its events read back.
    pub async fn execute<D>(
        &self,
        command: D,
        ctx: CommandContext,
    ) -> Result<Decided<D::Events>, RepositoryError<D::Error>>
    where
        D: Decide,
    {
        self.run(command, ctx, None::<std::future::Ready<()>>).await
    }

    /// [`Decisions::execute`], running `between` once after the first decision is made
    /// and before it is appended (what `testing::DecisionFixture` stores meanwhile).
    #[cfg(feature = "testing")]
    pub(crate) async fn execute_between<D, F>(
        &self,
        command: D,
        ctx: CommandContext,
        between: F,
    ) -> Result<Decided<D::Events>, RepositoryError<D::Error>>
    where
        D: Decide,
        F: Future<Output = ()>,
    {
        self.run(command, ctx, Some(between)).await
    }

    /// The decision's attempts: each a session of the store
    /// ([`DecisionStore::run_decision`]), or the first one in steps around `between`.
    async fn run<D, F>(
        &self,
        command: D,
        ctx: CommandContext,
        mut between: Option<F>,
    ) -> Result<Decided<D::Events>, RepositoryError<D::Error>>
    where
        D: Decide,
        F: Future<Output = ()>,
    {
        let stream_id = format!("{}-{}", D::STREAM_TYPE, command.aggregate_id());
        let ctx = Arc::new(ctx.in_current_trace());
        if ctx.command_id.is_nil() {
            return Err(RepositoryError::MissingCommandId {
                stream_id,
                command: D::NAME,
            });
        }
        let fingerprint =
            fingerprint(&command).map_err(|source| RepositoryError::UnencodableCommand {
                stream_id: stream_id.clone(),
                command: D::NAME,
                source,
            })?;
        let items: Arc<[QueryItem]> = D::Models::items(&command.models()).into();
        let query = Query::new(items.iter().cloned());
        let command = Arc::new(command);
        let mut attempt = 0;
        loop {
            attempt += 1;
            // What the visits fold and the decision leaves, shared by the two closures
            // (which a store may run on a thread of its own) and taken back after.
            let session = Arc::new(Mutex::new(Attempt::<D>::default()));
            let visit = {
                let (session, items) = (Arc::clone(&session), Arc::clone(&items));
                move |event: &RecordedEvent| -> Result<(), RepositoryError<D::Error>> {
                    Ok(lock(&session).models.apply(&items, event)?)
                }
            };
            let decide = {
                let (session, command, ctx) =
                    (Arc::clone(&session), Arc::clone(&command), Arc::clone(&ctx));
                let stream_id = stream_id.clone();
                move || {
                    let mut session = lock(&session);
                    let models = std::mem::take(&mut session.models);
                    let events = command
                        .decide(models, &ctx)
                        .map_err(RepositoryError::Rejected)?;
                    let new_events = crate::repository::new_events(&events, &stream_id, &ctx)?;
                    session.events = events;
                    Ok(new_events)
                }
            };
            let record = CommandRecord::new(ctx.command_id, fingerprint.clone());
            let ended = match between.take() {
                None => {
                    self.store
                        .run_decision(&stream_id, D::STREAM_TYPE, &query, record, visit, decide)
                        .await
                }
                Some(between) => {
                    crate::store::decision::run_in_steps(
                        &self.store,
                        &stream_id,
                        D::STREAM_TYPE,
                        &query,
                        record,
                        visit,
                        decide,
                        between,
                    )
                    .await
                }
            };
            match ended {
                Ok(CommandSession::Appended(outcome)) => {
                    let events = std::mem::take(&mut lock(&session).events);
                    return Ok(Decided {
                        command_id: outcome.command_id,
                        stream_id,
                        events,
                        event_ids: outcome.event_ids,
                        version: outcome.stream_version,
                        position: outcome.last_position,
                        recorded_at: outcome.recorded_at,
                        attempts: attempt,
                    });
                }
                // Executed before: answered as it ran, even when the facts it made now
                // refuse it (a token it used, a seat it took).
                Ok(CommandSession::AlreadyExecuted(outcome)) => {
                    return self.executed_before::<D>(outcome, &fingerprint).await;
                }
                Ok(CommandSession::Refused(error)) => return Err(error),
                Err(RepositoryError::Store(StoreError::ConditionFailed { .. }))
                    if attempt < self.attempts =>
                {
                    tracing::debug!(
                        target: "factum::decision", command = D::NAME, stream_id, attempt,
                        "the facts changed since the decision's read: deciding again"
                    );
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// The answer to a command executed before: its recorded events read back.
    async fn executed_before<D: Decide>(
        &self,
        outcome: CommandOutcome,
        fingerprint: &str,
    ) -> Result<Decided<D::Events>, RepositoryError<D::Error>> {
        let events = crate::repository::recorded_events::<D::Events, _, _>(
            &self.store,
            &outcome,
            fingerprint,
        )
        .await?;
        Ok(Decided {
            command_id: outcome.command_id,
            stream_id: outcome.stream_id,
            events,
            event_ids: outcome.event_ids,
            version: outcome.stream_version,
            position: outcome.last_position,
            recorded_at: outcome.recorded_at,
            attempts: 0,
        })
    }
}

/// One attempt's state: the models its visits fold, then the events its decision made.
struct Attempt<D: Decide> {
    models: D::Models,
    events: Vec<D::Events>,
}

impl<D: Decide> Default for Attempt<D> {
    fn default() -> Self {
        Self {
            models: D::Models::default(),
            events: Vec::new(),
        }
    }
}

/// Locks `mutex`, through a poisoning: a panicked visit leaves nothing half-written
/// that the next attempt reads.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The digest a decision's command is recorded with: SHA-256 of its name and JSON, in
/// hex, as an aggregate's command is.
fn fingerprint<C: Command>(command: &C) -> Result<String, serde_json::Error> {
    Ok(crate::repository::fingerprint_of(
        C::NAME,
        &serde_json::to_string(command)?,
    ))
}
