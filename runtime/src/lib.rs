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

// The macros name `::factum`; the conformance suite uses them inside this crate.
extern crate self as factum;

mod aggregate;
pub mod application;
pub mod archive;
pub mod authorization;
#[cfg(feature = "nats")]
pub mod bus;
pub mod causation;
pub mod cloudevents;
mod command;
pub mod context;
pub mod decision;
pub mod envelope;
pub mod error;
mod event;
pub(crate) mod follow;
#[cfg(feature = "http")]
pub mod http;
pub mod integrity;
mod json_path;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(any(feature = "nats", feature = "kafka"))]
pub mod outbox;
pub mod personal;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod process;
pub mod projection;
pub mod query;
pub mod registry;
pub mod repository;
mod retry;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod store;
pub mod tag;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trace;
pub mod upcast;

#[doc(hidden)]
pub mod __private;

pub use aggregate::{Aggregate, Apply, Handle};
pub use command::{Command, CommandDecodeError, CommandOf, CommandSet};
pub use event::{EncodedEvent, Event, EventOf, EventSet, IntoEvents};
pub use retry::Retry;
pub use tag::{Tag, TagValue};

// What a domain crate's code must name, so that it depends on factum alone (the driver of
// a store sits in that store's module: `sqlite::rusqlite`, `postgres::tokio_postgres`).

/// Re-exported: the time type of envelopes and read models (`chrono::DateTime<Utc>`).
pub use chrono;
/// Re-exported: JSON schemas of events, commands and queries. A type inside an event
/// derives it as `#[derive(factum::schemars::JsonSchema)]` with
/// `#[schemars(crate = "factum::schemars")]`.
pub use schemars;
/// Re-exported (with `raw_value`): payloads are `serde_json::value::RawValue`, JSON upcasts
/// take and return `serde_json::Value`.
pub use serde_json;
/// Re-exported: the async runtime factum runs on, e.g. for
/// `#[factum::tokio::main(flavor = "current_thread", crate = "factum::tokio")]`.
pub use tokio;
/// Re-exported: event and command ids are UUIDs.
pub use uuid;

/// Makes a struct or enum an [`Event`] with a stable name and an integer version.
///
/// ```text
/// #[event(name = "OrderPlaced", version = 2, upcast_from = OrderPlacedV1)]
/// #[event(name = "ItemAdded", version = 3, upcast_json(from = 1, with = v1_to_v2), upcast_json(from = 2, with = v2_to_v3))]
/// ```
///
/// | key | meaning | default |
/// |---|---|---|
/// | `name = "..."` | the stable name stored with the payload | the type's name |
/// | `version = N` | the payload's schema version, from 1 | 1 |
/// | `signed` | critical: each stored event carries the service's Ed25519 signature of its hash, checked on read | not signed |
/// | `upcast_from = T` | the type of version N-1, converted with `From`/`TryFrom` | |
/// | `upcast_json(from = K, with = f)` | reads retired version K with `fn(serde_json::Value) -> Result<serde_json::Value, E>` into version K+1 | |
/// | `crate = "path"` | where factum is, if renamed | `::factum` |
///
/// Field attributes declare personal data (see [`personal`]): `#[subject]` on the field
/// naming whose data the event holds, `#[pii]` on each personal field (stored sealed under
/// the subject's key by a `ProtectedStore`), `#[pii(redacted = "...")]` for the text a
/// forgotten text field reads as.
///
/// `#[tag]` on a field makes its value one of the event's tags (see [`tag`]): `#[tag]`
/// under the field's name, `#[tag(name = "course")]` under another key. The field is a
/// string, integer, UUID or any [`TagValue`], or an `Option` or collection of them.
///
/// It derives `Serialize`, `Deserialize` and `JsonSchema` unless the type already
/// derives them. Versions are consecutive: version N > 1 needs `upcast_from` naming
/// version N-1 of the same name (checked at compile time) or `upcast_json` steps up to
/// N-1, so every stored version stays readable.
///
/// ```
/// use factum::prelude::*;
///
/// #[event(name = "TaskCreated", version = 1)]
/// pub struct TaskCreatedV1 { pub title: String }
///
/// #[event(name = "TaskCreated", version = 2, upcast_from = TaskCreatedV1)]
/// #[derive(Debug, PartialEq)]
/// pub struct TaskCreated { pub title: String, pub priority: u8 }
///
/// impl From<TaskCreatedV1> for TaskCreated {
///     fn from(old: TaskCreatedV1) -> Self { Self { title: old.title, priority: 3 } }
/// }
///
/// let v1 = serde_json::json!({ "title": "water plants" }).to_string();
/// let task = TaskCreated::decode_version(1, &v1).unwrap();
/// assert_eq!(task, TaskCreated { title: "water plants".into(), priority: 3 });
/// assert_eq!((TaskCreated::NAME, TaskCreated::VERSION), ("TaskCreated", 2));
/// ```
pub use factum_macros::event;

/// Implements [`EventSet`] for an enum whose variants each hold one event type: encode,
/// decode through every event's upcasts, `From` each event, and the compile-time check
/// that an aggregate using the set applies every event.
///
/// Two variants may not carry the same event name (a compile error). Set
/// `#[factum(crate = "path")]` on the enum if factum is renamed.
///
/// ```
/// use factum::prelude::*;
///
/// #[event(name = "TaskCreated")]
/// #[derive(Debug, PartialEq)]
/// pub struct TaskCreated { pub title: String }
///
/// #[event(name = "TaskDone")]
/// #[derive(Debug, PartialEq)]
/// pub struct TaskDone {}
///
/// #[derive(Events, Debug, PartialEq)]
/// pub enum TaskEvent { Created(TaskCreated), Done(TaskDone) }
///
/// let encoded = TaskEvent::from(TaskDone {}).encode().unwrap();
/// assert_eq!((encoded.name, encoded.schema_version, encoded.payload.get()), ("TaskDone", 1, "{}"));
/// let decoded = TaskEvent::decode("TaskDone", 1, encoded.payload.get()).unwrap();
/// assert_eq!(decoded, TaskEvent::Done(TaskDone {}));
/// assert!(TaskEvent::decode("TaskMoved", 1, encoded.payload.get()).is_err());
/// ```
pub use factum_macros::Events;

/// Makes a struct a [`Command`], addressed by its one `#[aggregate_id]` field (any type
/// that implements `Display`).
///
/// `name = "..."` sets the stable name (default: the type's name); `crate = "path"` where
/// factum is, if renamed. Derives `Serialize`, `Deserialize` and `JsonSchema` unless the
/// type already derives them.
///
/// ```
/// use factum::prelude::*;
///
/// #[command(name = "CompleteTask")]
/// pub struct CompleteTask {
///     #[aggregate_id]
///     pub task_id: u64,
///     pub note: Option<String>,
/// }
///
/// assert_eq!(CompleteTask { task_id: 7, note: None }.aggregate_id(), "7");
/// assert_eq!(CompleteTask::NAME, "CompleteTask");
/// ```
pub use factum_macros::command;

/// Implements [`CommandSet`] for an enum whose variants each hold one command type, `From`
/// each command, and the compile-time check that an aggregate using the set handles
/// every command. See [`aggregate`] for an example.
pub use factum_macros::Commands;

/// Implements [`Aggregate`] from an inherent impl block of `#[handle]` and `#[apply]`
/// methods.
///
/// ```text
/// #[aggregate(name = "Order", events = OrderEvent, commands = OrderCommand, error = OrderError,
///             services = Catalog, ignore_events = [OrderNoteAdded])]
/// ```
///
/// | key | meaning | default |
/// |---|---|---|
/// | `events = E` | the `#[derive(Events)]` enum | required |
/// | `commands = C` | the `#[derive(Commands)]` enum | required |
/// | `error = T` | the handlers' error type (`std::error::Error`) | required |
/// | `name = "..."` | the stable aggregate name, the stream type | the type's name |
/// | `services = S` | what handlers may take as `&S` for outside lookups | `()` |
/// | `ignore_events = [..]` | events that deliberately change no state | none |
/// | `crate = "path"` | where factum is, if renamed | `::factum` |
///
/// - `#[handle] fn name(&self, command: C[, services: &S]) -> Result<T, E>` where `T` is
///   one event of the set, `Option` or `Vec` of events, the set enum, `Vec` of it, or
///   `()`, and `E` converts `Into` the aggregate's error.
/// - `#[apply] fn name(&mut self, event: &Event)`.
///
/// Every event of the set needs an `#[apply]` (or a place in `ignore_events`) and every
/// command a `#[handle]`; otherwise the build fails with, e.g., "aggregate `Task` has no
/// #\[apply\] handler for event `TaskDone`".
///
/// ```
/// use factum::prelude::*;
///
/// #[event(name = "TaskCreated")]
/// #[derive(Debug, PartialEq)]
/// pub struct TaskCreated { pub title: String }
///
/// #[derive(Events, Debug, PartialEq)]
/// pub enum TaskEvent { Created(TaskCreated) }
///
/// #[command]
/// pub struct CreateTask { #[aggregate_id] pub task_id: String, pub title: String }
///
/// #[derive(Commands)]
/// pub enum TaskCommand { Create(CreateTask) }
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("the task exists")]
/// pub struct TaskExists;
///
/// #[derive(Default)]
/// pub struct Task { title: Option<String> }
///
/// #[aggregate(events = TaskEvent, commands = TaskCommand, error = TaskExists)]
/// impl Task {
///     #[handle]
///     fn create(&self, command: CreateTask) -> Result<TaskCreated, TaskExists> {
///         match self.title {
///             Some(_) => Err(TaskExists),
///             None => Ok(TaskCreated { title: command.title }),
///         }
///     }
///
///     #[apply]
///     fn created(&mut self, event: &TaskCreated) {
///         self.title = Some(event.title.clone());
///     }
/// }
///
/// let task = Task::default();
/// let ctx = CommandContext::new();
/// let events = task.handle(CreateTask { task_id: "t-1".into(), title: "water".into() }.into(), &(), &ctx).unwrap();
/// assert_eq!(events, [TaskEvent::Created(TaskCreated { title: "water".into() })]);
/// assert_eq!(<Task as Aggregate>::NAME, "Task");
/// ```
pub use factum_macros::aggregate;

/// Implements [`DecisionModel`](decision::DecisionModel) from an inherent impl block of
/// `#[apply]` methods: a state built from the events a decision across entities reads
/// (see [`decision`]).
///
/// `#[decision_model(tags(course, student))]` keys the model by those tag keys (a key
/// that is no Rust name is a string: `tags("course-code")`; no `tags` at all: every event
/// of its names, whatever their tags). The macro adds `keyed(course, student)` to the
/// type, taking one [`TagValue`] per key in that order, which a [`Decide`](decision::Decide)
/// command calls to name the model's entity.
///
/// Each `#[apply] fn name(&mut self, event: &Event)` applies one event type. Every event
/// it applies must declare a tag of every key (a `#[tag]` field): otherwise it is a
/// **compile error** at the handler, since a query keyed by that tag could never find the
/// event.
///
/// ```compile_fail
/// use factum::prelude::*;
///
/// #[event(name = "CourseRenamed", version = 1)]
/// pub struct CourseRenamed {
///     pub course: String, // not #[tag]
///     pub title: String,
/// }
///
/// #[derive(Default)]
/// pub struct Title(String);
///
/// #[decision_model(tags(course))]
/// impl Title {
///     #[apply] // error: `CourseRenamed` declares no `course` tag
///     fn renamed(&mut self, event: &CourseRenamed) {
///         self.0 = event.title.clone();
///     }
/// }
/// ```
pub use factum_macros::decision_model;

/// Implements [`Projection`](projection::Projection) from an inherent impl block of
/// `#[on]` event handlers and an optional `#[setup]` method.
///
/// ```text
/// #[projection(name = "task_list", version = 2)]
/// ```
///
/// | key | meaning | default |
/// |---|---|---|
/// | `name = "..."` | the stable name its checkpoint and read model are kept under: 1 to 40 ASCII letters, digits or underscores, starting with a letter | the type's name |
/// | `version = N` | the read model's shape version, from 1; bumping it builds a new read model beside the live one | 1 |
/// | `crate = "path"` | where factum is, if renamed | `::factum` |
///
/// - `#[on] async fn name(&mut self, event: &Recorded<E>, tx: &mut Tx) -> Result<(), ProjectionError>`
///   for each event type `E` the projection reads. A stored event of `E`'s name is decoded
///   from its stored version into `E` (through every upcast) and handed over with its
///   record ([`Recorded`](projection::Recorded) dereferences to the event; its lifetime
///   may be left out, as here, or written `Recorded<'_, E>`); events of other
///   names are ignored, and [`Projection::EVENTS`](projection::Projection::EVENTS) lists
///   the handled names so the store can filter the log. A payload that does not decode is
///   a handler failure naming the stream, its version and position, and the event.
/// - `#[setup] async fn name(&mut self, tx: &mut Tx) -> Result<(), ProjectionError>`, at
///   most one, creates the read model's tables.
///
/// `Tx`, the read-model transaction (e.g. [`SqliteTx`](projection::sqlite::SqliteTx)), is
/// the same type in every handler and becomes `Projection::Tx`. The impl block is not
/// generic. At compile time it is an error to handle one event twice (by one type, or by
/// two versions of one event, which share a name), to handle a type that is not an
/// [`event`], to have no `#[on]` handler, or to write a handler in another form; each
/// error points at the offending tokens.
///
/// ```
/// use factum::prelude::*;
/// use factum::projection::sqlite::SqliteTx;
///
/// #[event(name = "TaskCreated")]
/// pub struct TaskCreated { pub title: String }
///
/// #[event(name = "TaskDone")]
/// pub struct TaskDone {}
///
/// pub struct TaskList;
///
/// #[projection(name = "task_list", version = 2)]
/// impl TaskList {
///     #[setup]
///     async fn tables(&mut self, tx: &mut SqliteTx) -> Result<(), ProjectionError> {
///         tx.execute("CREATE TABLE tasks (id TEXT PRIMARY KEY, title TEXT, done INTEGER)", ())?;
///         Ok(())
///     }
///
///     #[on]
///     async fn created(&mut self, e: &Recorded<TaskCreated>, tx: &mut SqliteTx) -> Result<(), ProjectionError> {
///         tx.execute("INSERT INTO tasks VALUES (?1, ?2, 0)", (e.stream_id(), &e.title))?;
///         Ok(())
///     }
///
///     #[on]
///     async fn done(&mut self, e: &Recorded<TaskDone>, tx: &mut SqliteTx) -> Result<(), ProjectionError> {
///         tx.execute("UPDATE tasks SET done = 1 WHERE id = ?1", [e.stream_id()])?;
///         Ok(())
///     }
/// }
///
/// assert_eq!((TaskList::NAME, TaskList::VERSION), ("task_list", 2));
/// assert_eq!(TaskList::EVENTS, ["TaskCreated", "TaskDone"]);
/// ```
pub use factum_macros::projection;

/// Implements [`Reactor`](projection::Reactor) from an inherent impl block of `#[on]`
/// event handlers: `#[on] async fn name(&mut self, event: &Recorded<E>) -> Result<(), ProjectionError>`.
///
/// A reactor has side effects (mail, commands, calls to other systems) and no read model:
/// its handlers take no transaction, it has no `#[setup]` and no `version`. Keys: `name`
/// (default: the type's name; same rule as a projection's) and `crate`. Decoding,
/// ignoring of other events and the compile-time checks are those of [`projection`](macro@projection).
///
/// ```
/// use factum::prelude::*;
///
/// #[event(name = "TaskDone")]
/// pub struct TaskDone {}
///
/// #[derive(Default)]
/// pub struct Congratulations { sent: Vec<String> }
///
/// #[reactor(name = "congratulations")]
/// impl Congratulations {
///     #[on]
///     async fn done(&mut self, e: &Recorded<TaskDone>) -> Result<(), ProjectionError> {
///         self.sent.push(format!("well done on {}", e.stream_id()));
///         Ok(())
///     }
/// }
///
/// let record = RecordedEvent {
///     event_id: factum::uuid::Uuid::now_v7(),
///     stream_id: "task-7".into(),
///     stream_type: "Task".into(),
///     stream_version: 2,
///     position: 12,
///     name: "TaskDone".into(),
///     schema_version: 1,
///     stored_schema_version: None,
///     payload: serde_json::value::to_raw_value(&serde_json::json!({})).unwrap(),
///     timestamp: Default::default(),
///     metadata: Metadata::default(),
///     tags: Vec::new(),
/// };
/// let mut reactor = Congratulations::default();
/// let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// runtime.block_on(reactor.react(&record)).unwrap();
/// assert_eq!(reactor.sent, ["well done on task-7"]);
/// assert_eq!(Congratulations::EVENTS, ["TaskDone"]);
/// ```
pub use factum_macros::reactor;

/// The names most code needs: the macros, the traits, the repository and the store.
pub mod prelude {
    pub use crate::context::{Actor, CommandContext};
    pub use crate::decision::{Decide, Decided, Decisions, Keyed};
    pub use crate::envelope::{Metadata, NewEvent, RecordedEvent};
    pub use crate::projection::{Projection, ProjectionError, ProjectionRunner, Reactor, Recorded};
    pub use crate::repository::{Executed, Loaded, Repository, RepositoryError};
    pub use crate::retry::Retry;
    pub use crate::store::{EventStore, ExpectedVersion, MemoryStore, StoreError};
    pub use crate::tag::Tag;
    pub use crate::{Aggregate, Command, CommandSet, Event, EventSet};
    pub use crate::{Commands, Events, aggregate, command, decision_model, event};
    // The attributes only: `crate::projection` also names the module.
    pub use factum_macros::{projection, reactor};
}

/// The README's examples, compiled and run as doc tests (they use the SQLite store and
/// the testing fixtures).
#[cfg(all(doctest, feature = "sqlite", feature = "testing"))]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
