//! Loading aggregates from a store and running commands against them.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::aggregate::Aggregate;
use crate::authorization::{self, Decision, Denial, Policy};
use crate::command::CommandSet;
use crate::context::CommandContext;
use crate::envelope::{NewEvent, RecordedEvent, Snapshot};
use crate::error::{DecodeError, EncodeError};
use crate::event::EventSet;
use crate::retry::Retry;
use crate::store::{
    CommandOutcome, CommandRecord, CommandSession, CommandWrite, EventStore, ExpectedVersion,
    ReplayedEvent, StoreError, VisitError,
};

/// A stored event that could not be decoded, with where it is stored.
#[derive(Debug, thiserror::Error)]
#[error("stream `{stream_id}` version {stream_version} (position {position})")]
pub struct RecordDecodeError {
    /// The stream holding the event.
    pub stream_id: String,
    /// The event's version in its stream.
    pub stream_version: u64,
    /// The event's global position.
    pub position: u64,
    /// What failed, naming the event and its schema version.
    #[source]
    pub source: Box<DecodeError>,
}

/// Decodes a recorded event into its set's newest shape.
pub fn decode_record<S: EventSet>(record: &RecordedEvent) -> Result<S, RecordDecodeError> {
    decode_replayed(ReplayedEvent::from(record))
}

/// Decodes what a replay read of an event into its set's newest shape.
fn decode_replayed<S: EventSet>(event: ReplayedEvent<'_>) -> Result<S, RecordDecodeError> {
    S::decode(event.name, event.schema_version, event.payload).map_err(|source| RecordDecodeError {
        stream_id: event.stream_id.to_owned(),
        stream_version: event.stream_version,
        position: event.position,
        source: Box::new(source),
    })
}

/// The digest a command is recorded with: SHA-256 of its name and JSON, in hex. A repeat
/// of the command has the same; another command under a used id has another.
fn fingerprint<C: CommandSet>(command: &C) -> Result<String, serde_json::Error> {
    Ok(fingerprint_of(command.command_name(), &command.to_json()?))
}

/// The fingerprint of the command `name` whose JSON is `json` (see `fingerprint`).
pub(crate) fn fingerprint_of(name: &str, json: &str) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([0]);
    hasher.update(json.as_bytes());
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The events a command executed before recorded, read back and decoded: the answer to
/// its repeat. Another command under its id (another fingerprint) is
/// [`RepositoryError::CommandIdReused`]; a record whose events its stream no longer holds
/// as recorded, [`RepositoryError::CommandRecordMismatch`].
pub(crate) async fn recorded_events<Set: EventSet, S: EventStore, E>(
    store: &S,
    outcome: &CommandOutcome,
    fingerprint: &str,
) -> Result<Vec<Set>, RepositoryError<E>> {
    if outcome.fingerprint != fingerprint {
        return Err(RepositoryError::CommandIdReused {
            command_id: outcome.command_id,
            recorded_stream_id: outcome.stream_id.clone(),
        });
    }
    let count = outcome.event_ids.len();
    let mismatch = || RepositoryError::CommandRecordMismatch {
        stream_id: outcome.stream_id.clone(),
        command_id: outcome.command_id,
    };
    let first_version = (outcome.stream_version + 1)
        .checked_sub(count as u64)
        .ok_or_else(mismatch)?;
    let records = if count == 0 {
        Vec::new()
    } else {
        store
            .read_stream(&outcome.stream_id, first_version, count)
            .await?
    };
    if records
        .iter()
        .map(|record| record.event_id)
        .ne(outcome.event_ids.iter().copied())
    {
        return Err(mismatch());
    }
    Ok(records
        .iter()
        .map(decode_record::<Set>)
        .collect::<Result<Vec<_>, _>>()?)
}

/// Applies recorded events, in order, to an aggregate's state.
pub fn replay<'a, A: Aggregate>(
    state: &mut A,
    records: impl IntoIterator<Item = &'a RecordedEvent>,
) -> Result<(), RecordDecodeError> {
    for record in records {
        state.apply(&decode_record::<A::Events>(record)?);
    }
    Ok(())
}

/// Errors of loading an aggregate or running a command.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepositoryError<E> {
    /// The aggregate rejected the command; nothing was written.
    #[error("command rejected")]
    Rejected(#[source] E),
    /// The repository's policy denied the command before the aggregate decided; no event
    /// was written, and the denial is in the audit record (see [`authorization`]).
    #[error("stream `{stream_id}`: command `{command}` denied to {}: {reason}", match actor { Some(actor) => actor.to_string(), None => "a caller without an actor".to_owned() })]
    Denied {
        /// The stream the command was addressed to.
        stream_id: String,
        /// The command's name.
        command: &'static str,
        /// Who issued it.
        actor: Option<crate::context::Actor>,
        /// The policy's reason.
        reason: String,
    },
    /// Another writer changed the stream between load and append; nothing was written.
    #[error("stream `{stream_id}` changed concurrently: expected {expected}, found {}", match actual { Some(v) => format!("version {v}"), None => "no stream".to_owned() })]
    Conflict {
        /// The stream.
        stream_id: String,
        /// The version the command was decided on.
        expected: ExpectedVersion,
        /// The version found at append time.
        actual: Option<u64>,
    },
    /// Every attempt of a retrying execution conflicted.
    #[error("stream `{stream_id}`: gave up after {attempts} attempts that all conflicted")]
    RetriesExhausted {
        /// The stream.
        stream_id: String,
        /// How many attempts were made.
        attempts: u32,
    },
    /// The command's context has the nil UUID as its command id, which would make every
    /// such command a repeat of the first; nothing was written.
    #[error(
        "stream `{stream_id}`: command `{command}` has no id (its context's command id is the nil UUID)"
    )]
    MissingCommandId {
        /// The stream.
        stream_id: String,
        /// The command's name.
        command: &'static str,
    },
    /// The command could not be written as JSON to fingerprint it (a map with non-string
    /// keys, say); nothing was written.
    #[error("stream `{stream_id}`: command `{command}` could not be encoded as JSON")]
    UnencodableCommand {
        /// The stream.
        stream_id: String,
        /// The command's name.
        command: &'static str,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// The command id was already used by another command (its recorded fingerprint
    /// differs); nothing was written. A client must not reuse a command id.
    #[error(
        "command id {command_id} was already used by another command (on stream `{recorded_stream_id}`); nothing was written"
    )]
    CommandIdReused {
        /// The command id.
        command_id: uuid::Uuid,
        /// The stream the earlier command was addressed to.
        recorded_stream_id: String,
    },
    /// The record of an executed command names events its stream no longer holds as
    /// recorded (a stream edited by hand, a restore from another backup).
    #[error(
        "stream `{stream_id}`: the events recorded for command {command_id} are not in the stream"
    )]
    CommandRecordMismatch {
        /// The stream.
        stream_id: String,
        /// The command.
        command_id: uuid::Uuid,
    },
    /// A stored event could not be decoded.
    #[error(transparent)]
    Decode(#[from] RecordDecodeError),
    /// A new event could not be encoded; nothing was written.
    #[error("stream `{stream_id}`: a new event could not be encoded")]
    Encode {
        /// The stream.
        stream_id: String,
        /// What failed.
        #[source]
        source: EncodeError,
    },
    /// A new event encoded into a payload its own event set cannot decode (a value
    /// nested deeper than serde_json reads, a float that is not finite, serde attributes
    /// that write what they do not read): storing it would make the aggregate unloadable,
    /// so nothing was written.
    #[error("stream `{stream_id}`: a new event would not read back")]
    Unreadable {
        /// The stream.
        stream_id: String,
        /// How decoding the encoded event failed.
        #[source]
        source: Box<DecodeError>,
    },
    /// Loading the aggregate would replay more events past its snapshot than the
    /// repository's [max events to load](MaxEventsToLoad) allows, and it is set to
    /// [`WhenExceeded::Refuse`]; nothing was written. The load stopped after reading
    /// `limit + 1` of them.
    #[error(
        "stream `{stream_id}`: loading it would replay {events} events past its snapshot, over the max events to load of {limit}; take a snapshot of it (`Repository::with_snapshots`, or `WhenExceeded::Snapshot`) or raise the limit"
    )]
    MaxEventsToLoadExceeded {
        /// The stream.
        stream_id: String,
        /// How many events the load would replay: those after the snapshot it started
        /// from (all of them without one), counted from the stream's version after the
        /// refusal.
        events: u64,
        /// The max events to load.
        limit: u64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl<E> RepositoryError<E> {
    /// The same error with the domain error of [`RepositoryError::Rejected`] turned by
    /// `f` (boxed, say, to put errors of several aggregates in one type).
    pub fn map_rejected<F>(self, f: impl FnOnce(E) -> F) -> RepositoryError<F> {
        use RepositoryError as R;
        match self {
            R::Rejected(error) => R::Rejected(f(error)),
            R::Denied {
                stream_id,
                command,
                actor,
                reason,
            } => R::Denied {
                stream_id,
                command,
                actor,
                reason,
            },
            R::Conflict {
                stream_id,
                expected,
                actual,
            } => R::Conflict {
                stream_id,
                expected,
                actual,
            },
            R::RetriesExhausted {
                stream_id,
                attempts,
            } => R::RetriesExhausted {
                stream_id,
                attempts,
            },
            R::MissingCommandId { stream_id, command } => {
                R::MissingCommandId { stream_id, command }
            }
            R::UnencodableCommand {
                stream_id,
                command,
                source,
            } => R::UnencodableCommand {
                stream_id,
                command,
                source,
            },
            R::CommandIdReused {
                command_id,
                recorded_stream_id,
            } => R::CommandIdReused {
                command_id,
                recorded_stream_id,
            },
            R::CommandRecordMismatch {
                stream_id,
                command_id,
            } => R::CommandRecordMismatch {
                stream_id,
                command_id,
            },
            R::Decode(error) => R::Decode(error),
            R::Encode { stream_id, source } => R::Encode { stream_id, source },
            R::Unreadable { stream_id, source } => R::Unreadable { stream_id, source },
            R::MaxEventsToLoadExceeded {
                stream_id,
                events,
                limit,
            } => R::MaxEventsToLoadExceeded {
                stream_id,
                events,
                limit,
            },
            R::Store(error) => R::Store(error),
        }
    }
}

impl<E> From<StoreError> for RepositoryError<E> {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict {
                stream_id,
                expected,
                actual,
            } => Self::Conflict {
                stream_id,
                expected,
                actual,
            },
            other => Self::Store(other),
        }
    }
}

/// An aggregate's state with the stream version it was rebuilt to.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<A> {
    /// The state.
    pub state: A,
    /// The last applied stream version (0: the stream does not exist).
    pub version: u64,
}

/// The result of a command that the aggregate accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Executed<A: Aggregate> {
    /// The command's id (from its [`CommandContext`]).
    pub command_id: uuid::Uuid,
    /// The stream written to.
    pub stream_id: String,
    /// The recorded events (none when the command changed nothing).
    pub events: Vec<A::Events>,
    /// Their ids, in order.
    pub event_ids: Vec<uuid::Uuid>,
    /// The stream version after the command.
    pub version: u64,
    /// The global position of the last event the command recorded (`None` when it
    /// recorded none): the consistency token a reader can wait for, to read its own
    /// write.
    pub position: Option<u64>,
    /// When the command was recorded (by the store's clock; a repeat answers with the
    /// first execution's).
    pub recorded_at: chrono::DateTime<chrono::Utc>,
    /// The state after the events.
    pub state: A,
}

impl<A: Aggregate> Executed<A> {
    /// Whether the command created its stream: it recorded the stream's first events.
    pub fn created(&self) -> bool {
        !self.events.is_empty() && self.version == self.events.len() as u64
    }
}

/// When the repository saves a snapshot of an aggregate that takes snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Save a snapshot once this many events were applied since the last one (≥ 1).
    pub every: u64,
}

impl SnapshotPolicy {
    /// A snapshot every `events` events.
    pub fn every(events: u64) -> Self {
        Self {
            every: events.max(1),
        }
    }
}

/// The repository's max events to load: how many events a load may replay past the
/// snapshot it started from (all of the stream's events when it started from none), and
/// what happens to a load that would replay more.
///
/// It keeps long streams cheap to load: set through
/// [`Repository::with_max_events_to_load`], it holds for [`Repository::load`] and for
/// every command (a command loads its aggregate first). Time travel
/// ([`Repository::load_at_version`], [`Repository::load_as_of`]) reads history on
/// purpose and is not limited: a snapshot of a past state cannot replace the stream's
/// newer one, and `load_as_of` never starts from a snapshot.
///
/// ```
/// use factum::repository::{MaxEventsToLoad, WhenExceeded};
///
/// // Replay at most 1,000 events; a load that replays more saves a snapshot after it.
/// let max = MaxEventsToLoad::snapshot(1_000);
/// assert_eq!(max.when_exceeded, WhenExceeded::Snapshot);
/// // Or refuse such loads with `RepositoryError::MaxEventsToLoadExceeded`.
/// assert_eq!(MaxEventsToLoad::refuse(1_000).limit, 1_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxEventsToLoad {
    /// The most events a load replays past its snapshot; exactly this many still load.
    pub limit: u64,
    /// What a load that would replay more does.
    pub when_exceeded: WhenExceeded,
}

impl MaxEventsToLoad {
    /// At most `limit` events; a load that replays more saves a snapshot after it, so the
    /// next load starts there.
    pub fn snapshot(limit: u64) -> Self {
        Self {
            limit,
            when_exceeded: WhenExceeded::Snapshot,
        }
    }

    /// At most `limit` events; a load that would replay more is refused.
    pub fn refuse(limit: u64) -> Self {
        Self {
            limit,
            when_exceeded: WhenExceeded::Refuse,
        }
    }
}

/// What a load over the [max events to load](MaxEventsToLoad) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenExceeded {
    /// Load anyway, then save a snapshot of the loaded state (a command's: the state
    /// after its events, or the loaded state when it recorded none or was refused), so
    /// the next load replays only what came after. Loads start from snapshots, as with
    /// [`Repository::with_snapshots`]. A failed save is logged, not returned, as every
    /// snapshot save is: the events are stored, and the next load replays them. Needs an
    /// aggregate that takes snapshots (`#[aggregate(snapshot = N)]`).
    Snapshot,
    /// Refuse the load with [`RepositoryError::MaxEventsToLoadExceeded`], reading no more
    /// than `limit + 1` events past the snapshot; a refused command writes nothing.
    Refuse,
}

/// [`WhenExceeded::Snapshot`] was asked of a repository whose aggregate takes no
/// snapshots: loads over the limit would neither be refused nor get shorter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "aggregate `{aggregate}` takes no snapshots, so a load over the max events to load cannot take one; declare it with `#[aggregate(snapshot = N)]`, or refuse such loads (`WhenExceeded::Refuse`)"
)]
pub struct SnapshotsUnsupported {
    /// The aggregate's name.
    pub aggregate: &'static str,
}

/// Loads aggregates of type `A` from the store `S` and runs commands against them.
pub struct Repository<A: Aggregate, S> {
    store: S,
    services: Arc<A::Services>,
    snapshots: Option<SnapshotPolicy>,
    max_events_to_load: Option<MaxEventsToLoad>,
    policy: Option<Arc<dyn Policy<A>>>,
    aggregate: PhantomData<fn() -> A>,
}

/// Where a load started and whether its snapshot should be renewed.
struct Rebuilt<A> {
    loaded: Loaded<A>,
    /// The version of the snapshot the load started from (0: none was used).
    snapshot_version: u64,
}

/// What a command's session holds: the state its visits rebuilt, the version they
/// reached, and the events its decision recorded.
struct Session<A: Aggregate> {
    state: A,
    version: u64,
    events: Vec<A::Events>,
}

impl<A: Aggregate> Default for Session<A> {
    fn default() -> Self {
        Self {
            state: A::default(),
            version: 0,
            events: Vec::new(),
        }
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The services a command's handler gets: the repository's, or its own for this call.
pub(crate) enum CallServices<A: Aggregate> {
    /// The repository's.
    Shared(Arc<A::Services>),
    /// Built for this call.
    Owned(A::Services),
}

impl<A: Aggregate> std::ops::Deref for CallServices<A> {
    type Target = A::Services;

    fn deref(&self) -> &A::Services {
        match self {
            Self::Shared(services) => services,
            Self::Owned(services) => services,
        }
    }
}

/// Everything a command's decision needs, owned, so a store can take it to a thread of
/// its own.
struct Decider<A: Aggregate> {
    command: A::Commands,
    services: CallServices<A>,
    ctx: CommandContext,
    stream_id: String,
    expected_version: Option<u64>,
    policy: Option<Arc<dyn Policy<A>>>,
}

impl<A: Aggregate> Decider<A> {
    /// Decides with the state the session rebuilt: the expected version, the policy,
    /// the handler, and each new event encoded and decoded again as a load would (what
    /// is stored must load again). Keeps the typed events in the session and returns them
    /// encoded.
    fn decide(self, session: &mut Session<A>) -> Result<Vec<NewEvent>, Stop<A::Error>> {
        let Self {
            command,
            services,
            ctx,
            stream_id,
            expected_version,
            policy,
        } = self;
        let version = session.version;
        if let Some(expected) = expected_version.filter(|expected| *expected != version) {
            return Err(Stop::Failed(RepositoryError::Conflict {
                stream_id,
                expected: match expected {
                    0 => ExpectedVersion::NoStream,
                    expected => ExpectedVersion::Exact(expected),
                },
                actual: (version > 0).then_some(version),
            }));
        }
        if let Err(reason) = authorize(
            policy.as_deref(),
            &ctx,
            &command,
            &session.state,
            &stream_id,
        ) {
            return Err(Stop::Denied { reason, version });
        }
        let events = session
            .state
            .handle(command, &services, &ctx)
            .map_err(|error| Stop::Failed(RepositoryError::Rejected(error)))?;
        let new_events = new_events(&events, &stream_id, &ctx).map_err(Stop::Failed)?;
        session.events = events;
        Ok(new_events)
    }
}

/// Decided events as they are stored: each encoded and decoded again as a load would
/// (what is stored must load again: otherwise [`RepositoryError::Unreadable`], nothing
/// written), with the context's metadata and time, and the event's tags (a decision
/// across entities finds an aggregate's events by them too).
pub(crate) fn new_events<S: EventSet, E>(
    events: &[S],
    stream_id: &str,
    ctx: &CommandContext,
) -> Result<Vec<NewEvent>, RepositoryError<E>> {
    let metadata = ctx.event_metadata();
    let mut new_events = Vec::with_capacity(events.len());
    for event in events {
        let encoded = event.encode().map_err(|source| RepositoryError::Encode {
            stream_id: stream_id.to_owned(),
            source,
        })?;
        S::decode(encoded.name, encoded.schema_version, encoded.payload.get()).map_err(
            |source| RepositoryError::Unreadable {
                stream_id: stream_id.to_owned(),
                source: Box::new(source),
            },
        )?;
        let mut tags = Vec::new();
        event.tags(&mut tags);
        new_events.push(
            NewEvent {
                timestamp: ctx.now(),
                ..NewEvent::new(
                    encoded.name,
                    encoded.schema_version,
                    encoded.payload,
                    metadata.clone(),
                )
            }
            .with_tags(tags),
        );
    }
    Ok(new_events)
}

/// Runs `policy`, if any, and traces its decision; a denial's reason is the error.
fn authorize<A: Aggregate>(
    policy: Option<&dyn Policy<A>>,
    ctx: &CommandContext,
    command: &A::Commands,
    state: &A,
    stream_id: &str,
) -> Result<(), String> {
    let Some(policy) = policy else {
        return Ok(());
    };
    let name = command.command_name();
    let actor = ctx.actor.as_ref().map(ToString::to_string);
    match policy.authorize(ctx, command, state) {
        Decision::Allow => {
            tracing::debug!(
                target: "factum::authorization", aggregate = A::NAME, stream_id,
                command = name, command_id = %ctx.command_id, actor, decision = "allow",
                "command allowed"
            );
            Ok(())
        }
        Decision::Deny(reason) => {
            tracing::info!(
                target: "factum::authorization", aggregate = A::NAME, stream_id,
                command = name, command_id = %ctx.command_id, actor, decision = "deny",
                reason = reason.as_str(), "command denied"
            );
            Err(reason)
        }
    }
}

/// Why a command's session stopped short of writing.
enum Stop<E> {
    /// The command failed (a conflict, a rejection, a decode error, the store).
    Failed(RepositoryError<E>),
    /// The policy denied it at stream version `version`: recorded after the session.
    Denied { reason: String, version: u64 },
    /// Its load reached past the max events to load, set to refuse.
    OverLimit,
}

impl<E> From<StoreError> for Stop<E> {
    fn from(error: StoreError) -> Self {
        Self::Failed(error.into())
    }
}

/// Why a replay visitor stopped.
enum Replay {
    Decode(RecordDecodeError),
    /// Reached the requested point in time; not an error.
    Reached,
    /// Reached past the max events to load, set to refuse.
    OverLimit,
}

impl<A: Aggregate, S: std::fmt::Debug> std::fmt::Debug for Repository<A, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("aggregate", &A::NAME)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl<A, S> Repository<A, S>
where
    A: Aggregate<Services = ()>,
    S: EventStore,
{
    /// A repository for an aggregate that declares no services.
    pub fn new(store: S) -> Self {
        Self::with_services(store, ())
    }
}

impl<A: Aggregate, S: EventStore> Repository<A, S> {
    /// A repository whose command handlers get `services` for outside lookups.
    pub fn with_services(store: S, services: A::Services) -> Self {
        Self {
            store,
            services: Arc::new(services),
            snapshots: None,
            max_events_to_load: None,
            policy: None,
            aggregate: PhantomData,
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The services the command handlers get.
    pub fn services(&self) -> &A::Services {
        &self.services
    }

    /// The services, shared with the calls that use them.
    pub(crate) fn shared_services(&self) -> Arc<A::Services> {
        Arc::clone(&self.services)
    }

    /// The stream id of the aggregate instance `id`: `"{aggregate name}-{id}"`.
    pub fn stream_id(id: &str) -> String {
        format!("{}-{id}", A::NAME)
    }

    /// Authorizes every command with `policy` before the aggregate decides on it; a denied
    /// command writes no event, is kept in the audit record and fails with
    /// [`RepositoryError::Denied`] (see [`authorization`]).
    pub fn with_policy(mut self, policy: impl Policy<A>) -> Self {
        self.policy = Some(Arc::new(policy));
        self
    }

    /// Saves snapshots of the aggregate by `policy`, and starts loads from the latest
    /// snapshot. Only aggregates declared with `#[aggregate(snapshot = N)]` take snapshots;
    /// for others the policy changes nothing.
    pub fn with_snapshots(mut self, policy: SnapshotPolicy) -> Self {
        self.snapshots = Some(policy);
        self
    }

    /// Limits how many events a load replays past the snapshot it started from
    /// ([`MaxEventsToLoad`]): a load that would replay more saves a snapshot after it or
    /// is refused, as `max` says. It holds for [`Repository::load`] and every command.
    ///
    /// Fails with [`SnapshotsUnsupported`] for [`WhenExceeded::Snapshot`] when the
    /// aggregate takes no snapshots (it is not declared `#[aggregate(snapshot = N)]`).
    ///
    /// ```no_run
    /// # use factum::prelude::*;
    /// # use factum::repository::MaxEventsToLoad;
    /// # #[event(name = "Ticked", version = 1)]
    /// # pub struct Ticked;
    /// # #[derive(Events)]
    /// # pub enum CounterEvent { Ticked(Ticked) }
    /// # #[command]
    /// # pub struct Tick { #[aggregate_id] pub id: String }
    /// # #[derive(Commands)]
    /// # pub enum CounterCommand { Tick(Tick) }
    /// # #[derive(Debug, thiserror::Error)]
    /// # #[error("never")]
    /// # pub struct Never;
    /// #[derive(Default, serde::Serialize, serde::Deserialize)]
    /// pub struct Counter {
    ///     ticks: u64,
    /// }
    ///
    /// #[aggregate(events = CounterEvent, commands = CounterCommand, error = Never, snapshot = 1)]
    /// impl Counter {
    ///     #[handle]
    ///     fn tick(&self, _command: Tick) -> Result<Ticked, Never> {
    ///         Ok(Ticked)
    ///     }
    ///
    ///     #[apply]
    ///     fn ticked(&mut self, _event: &Ticked) {
    ///         self.ticks += 1;
    ///     }
    /// }
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// // Loads replay at most 500 events: one that replays more leaves a snapshot.
    /// let counters = Repository::<Counter, _>::new(MemoryStore::new())
    ///     .with_max_events_to_load(MaxEventsToLoad::snapshot(500))?;
    /// let counter = counters.load("c-1").await?;
    /// # let _ = counter;
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_max_events_to_load(
        mut self,
        max: MaxEventsToLoad,
    ) -> Result<Self, SnapshotsUnsupported> {
        if max.when_exceeded == WhenExceeded::Snapshot && A::SNAPSHOT_VERSION.is_none() {
            return Err(SnapshotsUnsupported { aggregate: A::NAME });
        }
        self.max_events_to_load = Some(max);
        Ok(self)
    }

    /// Whether loads start from the stream's snapshot.
    fn loads_from_snapshots(&self) -> bool {
        self.snapshots.is_some()
            || self
                .max_events_to_load
                .is_some_and(|max| max.when_exceeded == WhenExceeded::Snapshot)
    }

    /// The last stream version a load that started from `snapshot_version` may reach
    /// before it is refused, when the repository refuses long loads.
    fn refuse_past(&self, snapshot_version: u64) -> Option<u64> {
        self.max_events_to_load
            .filter(|max| max.when_exceeded == WhenExceeded::Refuse)
            .map(|max| snapshot_version.saturating_add(max.limit))
    }

    /// Whether a load that replayed `replayed` events must save a snapshot after it.
    fn over_snapshot_limit(&self, replayed: u64) -> bool {
        self.max_events_to_load
            .is_some_and(|max| max.when_exceeded == WhenExceeded::Snapshot && replayed > max.limit)
    }

    /// The refusal of a load of `stream_id` from `snapshot_version` that reached past the
    /// limit. The count comes from the stream's version, read now (the load stopped
    /// early); should that read fail, the refusal still stands with the count the load saw.
    async fn refusal(&self, stream_id: &str, snapshot_version: u64) -> RepositoryError<A::Error> {
        let limit = self.max_events_to_load.map_or(0, |max| max.limit);
        let seen = limit.saturating_add(1);
        let events = match self.store.stream_version(stream_id).await {
            Ok(Some(version)) => version.saturating_sub(snapshot_version).max(seen),
            Ok(None) | Err(_) => seen,
        };
        RepositoryError::MaxEventsToLoadExceeded {
            stream_id: stream_id.to_owned(),
            events,
            limit,
        }
    }

    /// Rebuilds the aggregate `id` from its latest usable snapshot and the events after
    /// it (from all of its events when snapshots are off).
    pub async fn load(&self, id: &str) -> Result<Loaded<A>, RepositoryError<A::Error>> {
        let stream_id = Self::stream_id(id);
        let rebuilt = self.rebuild(&stream_id).await?;
        self.renew_snapshot(
            &stream_id,
            &rebuilt.loaded.state,
            rebuilt.loaded.version,
            rebuilt.snapshot_version,
            rebuilt.loaded.version - rebuilt.snapshot_version,
        )
        .await;
        Ok(rebuilt.loaded)
    }

    /// The aggregate `id` as it was at stream version `version` (or at its last version,
    /// if it has fewer events). Uses a snapshot only if it was taken at or before it.
    pub async fn load_at_version(
        &self,
        id: &str,
        version: u64,
    ) -> Result<Loaded<A>, RepositoryError<A::Error>> {
        let stream_id = Self::stream_id(id);
        let (mut state, mut applied) = self
            .usable_snapshot(&stream_id)
            .await?
            .filter(|(_, snapshot_version)| *snapshot_version <= version)
            .unwrap_or_default();
        if applied < version {
            self.replay(
                &stream_id,
                applied + 1,
                &mut state,
                &mut applied,
                None,
                version,
            )
            .await?;
        }
        Ok(Loaded {
            state,
            version: applied,
        })
    }

    /// The aggregate `id` as it was at `as_of`: built from the events recorded up to that
    /// moment (by their timestamps), in stream order. Snapshots are not used.
    pub async fn load_as_of(
        &self,
        id: &str,
        as_of: chrono::DateTime<chrono::Utc>,
    ) -> Result<Loaded<A>, RepositoryError<A::Error>> {
        let stream_id = Self::stream_id(id);
        let mut state = A::default();
        let mut applied = 0;
        self.replay_until(&stream_id, 1, &mut state, &mut applied, |record| {
            record.timestamp > as_of
        })
        .await?;
        Ok(Loaded {
            state,
            version: applied,
        })
    }

    /// The state and version of the stream's snapshot, if it is of the aggregate's current
    /// snapshot schema and reads back; any other snapshot is ignored, never deserialised
    /// into the wrong shape.
    async fn usable_snapshot(
        &self,
        stream_id: &str,
    ) -> Result<Option<(A, u64)>, RepositoryError<A::Error>> {
        let Some(schema_version) = A::SNAPSHOT_VERSION.filter(|_| self.loads_from_snapshots())
        else {
            return Ok(None);
        };
        let Some(snapshot) = self.store.load_snapshot(stream_id).await? else {
            return Ok(None);
        };
        if snapshot.schema_version != schema_version {
            tracing::info!(
                stream_id,
                found = snapshot.schema_version,
                current = schema_version,
                "ignoring a snapshot of another schema version; rebuilding from events"
            );
            return Ok(None);
        }
        match A::from_snapshot(&snapshot.state) {
            Some(Ok(state)) => Ok(Some((state, snapshot.stream_version))),
            Some(Err(error)) => {
                tracing::warn!(stream_id, error = %crate::error::Report(&error), "ignoring a snapshot that does not read back; rebuilding from events");
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// Applies the stream's events from `from_version` up to version `last` to `state`,
    /// counting the applied version; reads only what a replay needs
    /// ([`EventStore::replay_stream`]). An event past `refuse_past` stops the visit and
    /// refuses the load before it is decoded.
    async fn replay(
        &self,
        stream_id: &str,
        from_version: u64,
        state: &mut A,
        applied: &mut u64,
        refuse_past: Option<u64>,
        last: u64,
    ) -> Result<(), RepositoryError<A::Error>> {
        let visited = self
            .store
            .replay_stream(stream_id, from_version, |event| {
                if refuse_past.is_some_and(|limit| event.stream_version > limit) {
                    return Err(Replay::OverLimit);
                }
                if event.stream_version > last {
                    return Err(Replay::Reached);
                }
                state.apply(&decode_replayed::<A::Events>(event).map_err(Replay::Decode)?);
                *applied = event.stream_version;
                Ok(())
            })
            .await;
        self.replayed(stream_id, from_version, visited).await
    }

    /// Applies the stream's events from `from_version` on to `state` until `stop_before`
    /// holds for an event (which is not applied), counting the applied version.
    async fn replay_until(
        &self,
        stream_id: &str,
        from_version: u64,
        state: &mut A,
        applied: &mut u64,
        stop_before: impl Fn(&RecordedEvent) -> bool + Send + Sync,
    ) -> Result<(), RepositoryError<A::Error>> {
        let visited = self
            .store
            .for_each_in_stream(stream_id, from_version, |record| {
                if stop_before(record) {
                    return Err(Replay::Reached);
                }
                state.apply(&decode_record::<A::Events>(record).map_err(Replay::Decode)?);
                *applied = record.stream_version;
                Ok(())
            })
            .await;
        self.replayed(stream_id, from_version, visited).await
    }

    /// How a replay from `from_version` ended, as the repository's result.
    async fn replayed(
        &self,
        stream_id: &str,
        from_version: u64,
        visited: Result<(), VisitError<Replay>>,
    ) -> Result<(), RepositoryError<A::Error>> {
        match visited {
            Ok(()) | Err(VisitError::Visitor(Replay::Reached)) => Ok(()),
            Err(VisitError::Visitor(Replay::Decode(error))) => Err(match error.source.not_json() {
                // A replay may hand over the payload unparsed (SQLite does): text that is
                // not JSON is a damaged row, as a whole-record read reports it.
                Some(syntax) => RepositoryError::Store(StoreError::CorruptRow {
                    reason: format!("payload: not JSON: {syntax}"),
                    stream_id: error.stream_id,
                    stream_version: error.stream_version,
                    position: Some(error.position),
                }),
                None => RepositoryError::Decode(error),
            }),
            Err(VisitError::Visitor(Replay::OverLimit)) => {
                Err(self.refusal(stream_id, from_version - 1).await)
            }
            Err(VisitError::Store(error)) => Err(error.into()),
        }
    }

    async fn rebuild(&self, stream_id: &str) -> Result<Rebuilt<A>, RepositoryError<A::Error>> {
        let (mut state, snapshot_version) =
            self.usable_snapshot(stream_id).await?.unwrap_or_default();
        let mut version = snapshot_version;
        self.replay(
            stream_id,
            snapshot_version + 1,
            &mut state,
            &mut version,
            self.refuse_past(snapshot_version),
            u64::MAX,
        )
        .await?;
        Ok(Rebuilt {
            loaded: Loaded { state, version },
            snapshot_version,
        })
    }

    /// Saves a snapshot of `state` at `version` when the policy says enough events were
    /// applied since the one the state was built from (a stale or unreadable snapshot
    /// counts as none), or when its load replayed `replayed` events, over the max events
    /// to load set to snapshot. A failure is logged, not returned: the events are stored,
    /// and the next load replays them.
    async fn renew_snapshot(
        &self,
        stream_id: &str,
        state: &A,
        version: u64,
        snapshot_version: u64,
        replayed: u64,
    ) {
        let Some(schema_version) = A::SNAPSHOT_VERSION else {
            return;
        };
        let by_policy = self
            .snapshots
            .is_some_and(|policy| version - snapshot_version >= policy.every);
        if version == 0 || !(by_policy || self.over_snapshot_limit(replayed)) {
            return;
        }
        let saved = match state.to_snapshot() {
            Some(Ok(serialised)) => self
                .store
                .save_snapshot(Snapshot {
                    stream_id: stream_id.to_owned(),
                    stream_version: version,
                    schema_version,
                    state: serialised,
                    taken_at: crate::envelope::now(),
                })
                .await
                .map_err(|error| crate::error::Report(&error).to_string()),
            Some(Err(error)) => Err(crate::error::Report(&error).to_string()),
            None => Ok(()),
        };
        if let Err(error) = saved {
            tracing::warn!(stream_id, version, %error, "could not save a snapshot");
        }
    }

    /// Runs a command in a fresh context (no actor, issued now).
    pub async fn execute(
        &self,
        command: impl Into<A::Commands>,
    ) -> Result<Executed<A>, RepositoryError<A::Error>> {
        self.execute_with(command, CommandContext::new()).await
    }

    /// Runs a command in `ctx`: loads its aggregate, decides (the handler may take the
    /// context), and appends the resulting events atomically, failing with
    /// [`RepositoryError::Conflict`] if another writer appended to the stream in between.
    /// The events carry their metadata from the same context — its correlation id, actor
    /// and tenant, the command id as their causation id — and its time as their
    /// timestamp.
    ///
    /// Each new event is decoded again, as a later load would decode it, before anything
    /// is written: an event that would not load (a value nested deeper than serde_json
    /// reads, a float that is not finite) fails with [`RepositoryError::Unreadable`]
    /// instead of making the aggregate unloadable. Values beyond the store's
    /// [limits](crate::store::limits) fail with [`StoreError::ValueRefused`].
    pub async fn execute_with(
        &self,
        command: impl Into<A::Commands>,
        ctx: CommandContext,
    ) -> Result<Executed<A>, RepositoryError<A::Error>> {
        self.run(
            command.into(),
            ctx,
            CallServices::Shared(Arc::clone(&self.services)),
            None,
        )
        .await
    }

    /// Like [`Repository::execute_with`], with `services` for this one command instead of
    /// the repository's (services that depend on the caller: a clock, a lookup scoped to
    /// the tenant). The [`Application`](crate::application::Application) builds them per
    /// call.
    pub async fn execute_with_services(
        &self,
        command: impl Into<A::Commands>,
        ctx: CommandContext,
        services: A::Services,
    ) -> Result<Executed<A>, RepositoryError<A::Error>> {
        self.run(command.into(), ctx, CallServices::Owned(services), None)
            .await
    }

    /// Like [`Repository::execute_with`], if the aggregate is at stream version
    /// `expected_version` (0: it does not exist yet) — the version the caller decided to
    /// send the command on (an HTTP `If-Match`). At another version the command is not
    /// decided: [`RepositoryError::Conflict`] with the version found, nothing written. A
    /// repeat of a command id executed before is answered from its record whatever the
    /// version now.
    pub async fn execute_expecting(
        &self,
        command: impl Into<A::Commands>,
        ctx: CommandContext,
        expected_version: u64,
    ) -> Result<Executed<A>, RepositoryError<A::Error>> {
        self.run(
            command.into(),
            ctx,
            CallServices::Shared(Arc::clone(&self.services)),
            Some(expected_version),
        )
        .await
    }

    /// Runs a command: the one path of every `execute` method.
    pub(crate) async fn run(
        &self,
        command: A::Commands,
        ctx: CommandContext,
        services: CallServices<A>,
        expected_version: Option<u64>,
    ) -> Result<Executed<A>, RepositoryError<A::Error>> {
        let stream_id = Self::stream_id(&command.aggregate_id());
        // Here, on the caller's task: the decision may run on the store's thread.
        let ctx = ctx.in_current_trace();
        if ctx.command_id.is_nil() {
            return Err(RepositoryError::MissingCommandId {
                stream_id,
                command: command.command_name(),
            });
        }
        let fingerprint =
            fingerprint(&command).map_err(|source| RepositoryError::UnencodableCommand {
                stream_id: stream_id.clone(),
                command: command.command_name(),
                source,
            })?;
        let (state, snapshot_version) = self.usable_snapshot(&stream_id).await?.unwrap_or_default();
        // What the session's visits rebuild and its decision leaves, shared by the two
        // closures (which a store may run on a thread of its own) and taken back after.
        let session = Arc::new(std::sync::Mutex::new(Session {
            state,
            version: snapshot_version,
            events: Vec::new(),
        }));
        let name = command.command_name();
        let refuse_past = self.refuse_past(snapshot_version);
        let decision = Decider {
            command,
            services,
            ctx: ctx.clone(),
            stream_id: stream_id.clone(),
            expected_version,
            policy: self.policy.clone(),
        };
        let ended = self
            .store
            .run_command(
                &stream_id,
                A::NAME,
                snapshot_version + 1,
                CommandRecord::new(ctx.command_id, fingerprint.clone()),
                {
                    let session = Arc::clone(&session);
                    move |record| {
                        if refuse_past.is_some_and(|last| record.stream_version > last) {
                            return Err(Stop::OverLimit);
                        }
                        let event = decode_record::<A::Events>(record)
                            .map_err(|error| Stop::Failed(error.into()))?;
                        let mut session = lock(&session);
                        session.state.apply(&event);
                        session.version = record.stream_version;
                        Ok(())
                    }
                },
                {
                    let session = Arc::clone(&session);
                    move || {
                        let mut session = lock(&session);
                        let events = decision.decide(&mut session)?;
                        let version = session.version;
                        Ok(CommandWrite {
                            expected: match version {
                                0 => ExpectedVersion::NoStream,
                                version => ExpectedVersion::Exact(version),
                            },
                            events,
                        })
                    }
                },
            )
            .await;
        if matches!(ended, Ok(CommandSession::Refused(_))) {
            // The load was whole even though the decision wrote nothing: a load over the
            // max events to load leaves its snapshot all the same.
            // Taken out: a refused session is not read again.
            let Session { state, version, .. } = std::mem::take(&mut *lock(&session));
            let replayed = version - snapshot_version;
            if self.over_snapshot_limit(replayed) {
                self.renew_snapshot(&stream_id, &state, version, snapshot_version, replayed)
                    .await;
            }
        }
        let outcome = match ended {
            Ok(CommandSession::Appended(outcome)) => outcome,
            // Executed before, or by another submission of it meanwhile.
            Ok(CommandSession::AlreadyExecuted(outcome)) => {
                return self.replay_outcome(outcome, &fingerprint).await;
            }
            Ok(CommandSession::Refused(Stop::Denied { reason, version })) => {
                return Err(self.deny(&ctx, name, &stream_id, version, reason).await);
            }
            Ok(CommandSession::Refused(Stop::Failed(error))) | Err(Stop::Failed(error)) => {
                return Err(error);
            }
            Err(Stop::Denied { reason, version }) => {
                return Err(self.deny(&ctx, name, &stream_id, version, reason).await);
            }
            Ok(CommandSession::Refused(Stop::OverLimit)) | Err(Stop::OverLimit) => {
                return Err(self.refusal(&stream_id, snapshot_version).await);
            }
        };
        let Session {
            mut state,
            version: loaded_version,
            events,
        } = std::mem::take(&mut *lock(&session));
        for event in &events {
            state.apply(event);
        }
        let replayed = loaded_version - snapshot_version;
        if !events.is_empty() || self.over_snapshot_limit(replayed) {
            self.renew_snapshot(
                &stream_id,
                &state,
                outcome.stream_version,
                snapshot_version,
                replayed,
            )
            .await;
        }
        Ok(Executed {
            command_id: ctx.command_id,
            stream_id,
            events,
            event_ids: outcome.event_ids,
            version: outcome.stream_version,
            position: outcome.last_position,
            recorded_at: outcome.recorded_at,
            state,
        })
    }

    /// The answer to a command executed before: its recorded outcome, its events read
    /// back, and the state right after them.
    async fn replay_outcome(
        &self,
        outcome: CommandOutcome,
        fingerprint: &str,
    ) -> Result<Executed<A>, RepositoryError<A::Error>> {
        let events = recorded_events::<A::Events, _, _>(&self.store, &outcome, fingerprint).await?;
        let mismatch = || RepositoryError::CommandRecordMismatch {
            stream_id: outcome.stream_id.clone(),
            command_id: outcome.command_id,
        };
        let id = outcome
            .stream_id
            .strip_prefix(&format!("{}-", A::NAME))
            .ok_or_else(mismatch)?;
        let state = self
            .load_at_version(id, outcome.stream_version)
            .await?
            .state;
        tracing::debug!(
            aggregate = A::NAME, stream_id = outcome.stream_id, command_id = %outcome.command_id,
            "command executed before: answered from its record"
        );
        Ok(Executed {
            command_id: outcome.command_id,
            stream_id: outcome.stream_id,
            events,
            event_ids: outcome.event_ids,
            version: outcome.stream_version,
            position: outcome.last_position,
            recorded_at: outcome.recorded_at,
            state,
        })
    }

    /// Deletes the records of commands executed more than `retention` ago: a command
    /// repeated after that runs again. Keep records at least as long as clients retry.
    pub async fn prune_commands(&self, retention: std::time::Duration) -> Result<u64, StoreError> {
        let retention = chrono::TimeDelta::from_std(retention).unwrap_or(chrono::TimeDelta::MAX);
        let before = crate::envelope::now()
            .checked_sub_signed(retention)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        self.store.prune_commands(before).await
    }

    /// Keeps a denial of the command `name` at stream version `version` in the audit
    /// record, and returns the error that refuses the command.
    async fn deny(
        &self,
        ctx: &CommandContext,
        name: &'static str,
        stream_id: &str,
        version: u64,
        reason: String,
    ) -> RepositoryError<A::Error> {
        let denial = Denial {
            command_id: ctx.command_id,
            command: name.to_owned(),
            stream_id: stream_id.to_owned(),
            stream_version: version,
            actor_kind: ctx.actor.as_ref().map(|actor| actor.kind.clone()),
            actor: ctx.actor.as_ref().map(|actor| actor.id.clone()),
            tenant: ctx.tenant.clone(),
            issued_at: ctx.now(),
            reason: reason.clone(),
        };
        if let Err(error) = authorization::record(&self.store, ctx, &denial).await {
            return error;
        }
        RepositoryError::Denied {
            stream_id: stream_id.to_owned(),
            command: name,
            actor: ctx.actor.clone(),
            reason,
        }
    }

    /// Like [`Repository::execute_with`], but on a conflict reloads the aggregate and
    /// decides again, up to `retry.attempts()` attempts in all, waiting
    /// [`Retry::backoff`] between them ([`Retry::immediately`] does not wait).
    pub async fn execute_retrying(
        &self,
        command: impl Into<A::Commands>,
        ctx: CommandContext,
        retry: Retry,
    ) -> Result<Executed<A>, RepositoryError<A::Error>>
    where
        A::Commands: Clone,
    {
        let command = command.into();
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.execute_with(command.clone(), ctx.clone()).await {
                Err(RepositoryError::Conflict { stream_id, .. })
                    if attempts >= retry.attempts() =>
                {
                    return Err(RepositoryError::RetriesExhausted {
                        stream_id,
                        attempts,
                    });
                }
                Err(RepositoryError::Conflict { .. }) => {
                    let wait = retry.backoff(attempts);
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                }
                other => return other,
            }
        }
    }
}
