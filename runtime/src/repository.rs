//! Loading aggregates from a store and running commands against them.

use std::marker::PhantomData;

use crate::aggregate::Aggregate;
use crate::command::CommandSet;
use crate::envelope::{CommandMetadata, NewEvent, RecordedEvent};
use crate::error::{DecodeError, EncodeError};
use crate::event::EventSet;
use crate::store::{EventStore, ExpectedVersion, StoreError, VisitError};

/// A stored event that could not be decoded, with where it is stored.
#[derive(Debug, thiserror::Error)]
#[error("stream `{stream_id}` version {stream_version} (position {position}): {source}")]
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
    S::decode(&record.name, record.schema_version, &record.payload).map_err(|source| {
        RecordDecodeError {
            stream_id: record.stream_id.clone(),
            stream_version: record.stream_version,
            position: record.position,
            source: Box::new(source),
        }
    })
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
    #[error("command rejected: {0}")]
    Rejected(#[source] E),
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
    /// A stored event could not be decoded.
    #[error(transparent)]
    Decode(#[from] RecordDecodeError),
    /// A new event could not be encoded; nothing was written.
    #[error("stream `{stream_id}`: {source}")]
    Encode {
        /// The stream.
        stream_id: String,
        /// What failed.
        #[source]
        source: EncodeError,
    },
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
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
    /// The stream written to.
    pub stream_id: String,
    /// The recorded events (none when the command changed nothing).
    pub events: Vec<A::Events>,
    /// The stream version after the command.
    pub version: u64,
    /// The state after the events.
    pub state: A,
}

/// How often a command is re-run when another writer changed its stream first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
}

impl RetryPolicy {
    /// At most `max_attempts` attempts in all.
    pub fn attempts(max_attempts: u32) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::attempts(3)
    }
}

/// Loads aggregates of type `A` from the store `S` and runs commands against them.
pub struct Repository<A: Aggregate, S> {
    store: S,
    services: A::Services,
    aggregate: PhantomData<fn() -> A>,
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
            services,
            aggregate: PhantomData,
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The stream id of the aggregate instance `id`: `"{aggregate name}-{id}"`.
    pub fn stream_id(id: &str) -> String {
        format!("{}-{id}", A::NAME)
    }

    /// Rebuilds the aggregate `id` from all of its events.
    pub async fn load(&self, id: &str) -> Result<Loaded<A>, RepositoryError<A::Error>> {
        self.load_stream(&Self::stream_id(id)).await
    }

    async fn load_stream(&self, stream_id: &str) -> Result<Loaded<A>, RepositoryError<A::Error>> {
        let mut state = A::default();
        let mut version = 0;
        self.store
            .for_each_in_stream(stream_id, 1, |record| {
                state.apply(&decode_record::<A::Events>(record)?);
                version = record.stream_version;
                Ok(())
            })
            .await
            .map_err(|error| match error {
                VisitError::Store(error) => RepositoryError::from(error),
                VisitError::Visitor(error) => RepositoryError::Decode(error),
            })?;
        Ok(Loaded { state, version })
    }

    /// Runs a command with fresh metadata.
    pub async fn execute(
        &self,
        command: impl Into<A::Commands>,
    ) -> Result<Executed<A>, RepositoryError<A::Error>> {
        self.execute_with(command, CommandMetadata::new()).await
    }

    /// Runs a command: loads its aggregate, decides, and appends the resulting events
    /// atomically, failing with [`RepositoryError::Conflict`] if another writer appended
    /// to the stream in between. The events carry the command's correlation id and actor,
    /// and the command id as their causation id.
    pub async fn execute_with(
        &self,
        command: impl Into<A::Commands>,
        metadata: CommandMetadata,
    ) -> Result<Executed<A>, RepositoryError<A::Error>> {
        let command = command.into();
        let stream_id = Self::stream_id(&command.aggregate_id());
        let Loaded { mut state, version } = self.load_stream(&stream_id).await?;
        let events = state
            .handle(command, &self.services)
            .map_err(RepositoryError::Rejected)?;
        if events.is_empty() {
            return Ok(Executed {
                stream_id,
                events,
                version,
                state,
            });
        }
        let event_metadata = metadata.event_metadata();
        let mut new_events = Vec::with_capacity(events.len());
        for event in &events {
            let encoded = event.encode().map_err(|source| RepositoryError::Encode {
                stream_id: stream_id.clone(),
                source,
            })?;
            new_events.push(NewEvent::new(
                encoded.name,
                encoded.version,
                encoded.payload,
                event_metadata.clone(),
            ));
        }
        let expected = match version {
            0 => ExpectedVersion::NoStream,
            version => ExpectedVersion::Exact(version),
        };
        let outcome = self
            .store
            .append(&stream_id, A::NAME, expected, new_events)
            .await?;
        for event in &events {
            state.apply(event);
        }
        Ok(Executed {
            stream_id,
            events,
            version: outcome.stream_version,
            state,
        })
    }

    /// Like [`Repository::execute_with`], but on a conflict reloads the aggregate and
    /// decides again, up to `policy.max_attempts` attempts in all.
    pub async fn execute_retrying(
        &self,
        command: impl Into<A::Commands>,
        metadata: CommandMetadata,
        policy: RetryPolicy,
    ) -> Result<Executed<A>, RepositoryError<A::Error>>
    where
        A::Commands: Clone,
    {
        let command = command.into();
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.execute_with(command.clone(), metadata.clone()).await {
                Err(RepositoryError::Conflict { stream_id, .. })
                    if attempts >= policy.max_attempts.max(1) =>
                {
                    return Err(RepositoryError::RetriesExhausted {
                        stream_id,
                        attempts,
                    });
                }
                Err(RepositoryError::Conflict { .. }) => continue,
                other => return other,
            }
        }
    }
}
