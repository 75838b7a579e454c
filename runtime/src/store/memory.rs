//! An event store in process memory: for tests, examples and the fixture.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use uuid::Uuid;

use super::decision::{AppendCondition, DecisionStore, MatchedEvents, Query};
use super::{
    AppendOutcome, CommandAppend, CommandOutcome, CommandRecord, EventStore, ExpectedVersion,
    FilteredPage, Head, StoreError, VisitError,
};
use crate::envelope::{NewEvent, RecordedEvent, Snapshot};
use crate::integrity::checkpoint::SignedTreeHead;
use crate::integrity::{
    EventHash, GENESIS, Leaf, StoredCheckpoint, StoredEvent, StoredFields, TamperEvident,
    Verification, Verifier, event_hash,
};

/// The hash of a logged event: its metadata and tags hashed as the JSON they serialise to
/// (the memory store keeps no text of them).
fn hash_of(predecessor: &EventHash, event: &RecordedEvent) -> EventHash {
    let (metadata, tags) = texts_of(event);
    event_hash(predecessor, &fields_of(event, &metadata, tags.as_deref()))
}

/// The metadata's text, and the tags' when the event has any.
fn texts_of(event: &RecordedEvent) -> (Vec<u8>, Option<Vec<u8>>) {
    let metadata = serde_json::to_vec(&event.metadata).unwrap_or_default();
    let tags =
        (!event.tags.is_empty()).then(|| serde_json::to_vec(&event.tags).unwrap_or_default());
    (metadata, tags)
}

fn fields_of<'a>(
    event: &'a RecordedEvent,
    metadata: &'a [u8],
    tags: Option<&'a [u8]>,
) -> StoredFields<'a> {
    StoredFields {
        event_id: event.event_id.as_bytes(),
        position: i64::try_from(event.position).unwrap_or(i64::MAX),
        stream_id: event.stream_id.as_bytes(),
        stream_type: event.stream_type.as_bytes(),
        stream_version: i64::try_from(event.stream_version).unwrap_or(i64::MAX),
        name: event.name.as_bytes(),
        schema_version: i64::from(event.schema_version),
        timestamp_seconds: event.timestamp.timestamp(),
        timestamp_nanos: i64::from(event.timestamp.timestamp_subsec_nanos()),
        metadata: Some(metadata),
        payload: event.payload.get().as_bytes(),
        tags,
    }
}

impl TamperEvident for MemoryStore {
    /// Recomputes every hash and walks the chains; a memory store is only altered by a
    /// bug, which this would show.
    async fn verify(&self) -> Result<Verification, StoreError> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let mut verifier = Verifier::new();
        for (event, (hash, predecessor)) in state.log.iter().zip(&state.hashes) {
            let (metadata, tags) = texts_of(event);
            verifier.event(&StoredEvent {
                fields: fields_of(event, &metadata, tags.as_deref()),
                hash,
                predecessor,
            });
        }
        let heads: Vec<(&[u8], i64)> = state
            .streams
            .iter()
            .map(|(id, stream)| (id.as_bytes(), stream.log_indexes.len() as i64))
            .collect();
        Ok(verifier.finish_with_heads(heads))
    }

    async fn leaves(&self, after: u64, limit: usize) -> Result<Vec<Leaf>, StoreError> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let from = usize::try_from(after).unwrap_or(usize::MAX);
        Ok(state
            .hashes
            .iter()
            .enumerate()
            .skip(from)
            .take(limit)
            .map(|(index, (hash, _))| Leaf {
                position: index as u64 + 1,
                hash: *hash,
                name: state.log[index].name.clone(),
                signature: state
                    .signatures
                    .get(&index)
                    .map(|signature| signature.to_vec()),
            })
            .collect())
    }

    async fn save_checkpoint(&self, checkpoint: &SignedTreeHead) -> Result<(), StoreError> {
        self.state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .checkpoints
            .insert(checkpoint.head.tree_size, checkpoint.clone());
        Ok(())
    }

    async fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        Ok(state
            .checkpoints
            .iter()
            .map(|(tree_size, head)| StoredCheckpoint {
                tree_size: *tree_size,
                head: Ok(head.clone()),
            })
            .collect())
    }
}

/// An in-memory [`EventStore`]. Cloning it shares the same log.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    state: Arc<RwLock<State>>,
    /// The position of the newest event, published after every append that wrote: wakes
    /// [`EventStore::wait_for_events`].
    head: Arc<watch::Sender<u64>>,
    /// Signs the critical events appended (see [`MemoryStore::sign_events`]).
    signer: Option<crate::integrity::EventSigner>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            state: Arc::default(),
            head: Arc::new(watch::Sender::new(0)),
            signer: None,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// The global log; an event's position is its index + 1.
    log: Vec<RecordedEvent>,
    /// Each logged event's hash and its predecessor's, by log index (see
    /// [`crate::integrity::chain`]).
    hashes: Vec<(EventHash, EventHash)>,
    /// The signatures of critical events, by log index (see `MemoryStore::sign_events`).
    signatures: HashMap<usize, [u8; 64]>,
    /// The signed checkpoints, by tree size.
    checkpoints: std::collections::BTreeMap<u64, SignedTreeHead>,
    streams: HashMap<String, Stream>,
    snapshots: HashMap<String, Snapshot>,
    /// Log index of every stored event id.
    event_ids: HashMap<Uuid, usize>,
    /// The recorded commands, by id.
    commands: HashMap<Uuid, CommandOutcome>,
}

#[derive(Debug)]
struct Stream {
    stream_type: String,
    /// Log indexes of the stream's events; version = index in this list + 1.
    log_indexes: Vec<usize>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Signs each critical event this store appends (those `signer` names) with the
    /// service's key, as the SQL stores do.
    pub fn sign_events(mut self, signer: crate::integrity::EventSigner) -> Self {
        self.signer = Some(signer);
        self
    }

    /// Signs the critical events among those logged from `from_index` on.
    fn sign_from(&self, state: &mut State, from_index: usize) {
        let Some(signer) = &self.signer else { return };
        for index in from_index..state.log.len() {
            if signer.signs(&state.log[index].name) {
                let signature = signer.sign(&state.hashes[index].0);
                state.signatures.insert(index, signature);
            }
        }
    }

    /// The number of events stored.
    pub fn len(&self) -> usize {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .log
            .len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl MemoryStore {
    /// Raises the published head to `position`; called under the write lock, so the
    /// head never moves backwards.
    fn publish_head(&self, position: u64) {
        self.head.send_if_modified(|head| {
            let newer = position > *head;
            *head = (*head).max(position);
            newer
        });
    }
}

impl State {
    /// Checks `expected` and the stream type against the stream (the order every store
    /// checks them in), returning the stream's version (0: it does not exist).
    fn check_stream(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
    ) -> Result<u64, StoreError> {
        let stream = self.streams.get(stream_id);
        let actual = stream.map(|stream| stream.log_indexes.len() as u64);
        if !expected.is_met_by(actual) {
            return Err(StoreError::Conflict {
                stream_id: stream_id.to_owned(),
                expected,
                actual,
            });
        }
        if let Some(stream) = stream.filter(|stream| stream.stream_type != stream_type) {
            return Err(StoreError::StreamTypeMismatch {
                stream_id: stream_id.to_owned(),
                existing: stream.stream_type.clone(),
                requested: stream_type.to_owned(),
            });
        }
        Ok(actual.unwrap_or(0))
    }

    /// Appends a checked batch (see [`limits::check_append`](super::limits::check_append)):
    /// an idempotent re-append, a refusal, or the events written.
    fn append(
        &mut self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        condition: Option<&AppendCondition>,
    ) -> Result<AppendOutcome, StoreError> {
        if let Some(outcome) = self.find_previous_append(stream_id, expected, &events)? {
            return Ok(outcome);
        }
        if let Some(condition) = condition {
            self.check_condition(stream_id, condition)?;
        }
        self.check_stream(stream_id, stream_type, expected)?;
        let stream = self
            .streams
            .entry(stream_id.to_owned())
            .or_insert_with(|| Stream {
                stream_type: stream_type.to_owned(),
                log_indexes: Vec::new(),
            });
        for event in events {
            let index = self.log.len();
            self.event_ids.insert(event.event_id, index);
            let predecessor = stream
                .log_indexes
                .last()
                .map_or(GENESIS, |last| self.hashes[*last].0);
            stream.log_indexes.push(index);
            self.log.push(RecordedEvent {
                event_id: event.event_id,
                stream_id: stream_id.to_owned(),
                stream_type: stream_type.to_owned(),
                stream_version: stream.log_indexes.len() as u64,
                position: index as u64 + 1,
                name: event.name,
                schema_version: event.schema_version,
                stored_schema_version: None,
                payload: event.payload,
                timestamp: event.timestamp,
                metadata: event.metadata,
                tags: crate::tag::normalized(event.tags),
            });
            let hash = hash_of(&predecessor, &self.log[index]);
            self.hashes.push((hash, predecessor));
        }
        Ok(AppendOutcome {
            stream_version: stream.log_indexes.len() as u64,
            last_position: self.log.len() as u64,
            written: true,
        })
    }

    /// When every id of the batch is stored as this exact batch, the outcome of the
    /// original append; an error when some ids are stored but not as this batch.
    fn find_previous_append(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<Option<AppendOutcome>, StoreError> {
        let Some(first_index) = events
            .iter()
            .find_map(|event| self.event_ids.get(&event.event_id))
        else {
            return Ok(None);
        };
        let duplicate = |event_id| StoreError::DuplicateEventId {
            stream_id: stream_id.to_owned(),
            event_id,
        };
        let first = &self.log[*first_index];
        if first.stream_id != stream_id || first.event_id != events[0].event_id {
            return Err(duplicate(first.event_id));
        }
        let stream = &self.streams[stream_id];
        let start = (first.stream_version - 1) as usize;
        let stored = stream.log_indexes.get(start..start + events.len());
        let same_batch = stored.is_some_and(|indexes| {
            indexes
                .iter()
                .zip(events)
                .all(|(index, event)| self.log[*index].event_id == event.event_id)
        });
        let version_before = first.stream_version - 1;
        let same_expectation = expected.was_met_before(version_before);
        if !same_batch || !same_expectation {
            return Err(duplicate(events[0].event_id));
        }
        let last = &self.log[stream.log_indexes[start + events.len() - 1]];
        Ok(Some(AppendOutcome {
            stream_version: last.stream_version,
            last_position: last.position,
            written: false,
        }))
    }
}

impl State {
    /// The events `query` matches after `after`, and the log's end.
    fn matching(&self, query: &Query, after: u64) -> MatchedEvents {
        let from = usize::try_from(after).unwrap_or(usize::MAX);
        MatchedEvents {
            events: self
                .log
                .iter()
                .skip(from)
                .filter(|event| query.matches(&event.name, &event.tags))
                .cloned()
                .collect(),
            read_to: self.log.len() as u64,
        }
    }

    /// The first event after `condition.after` that its query matches, as the failed
    /// condition.
    fn check_condition(
        &self,
        stream_id: &str,
        condition: &AppendCondition,
    ) -> Result<(), StoreError> {
        let from = usize::try_from(condition.after).unwrap_or(usize::MAX);
        match self
            .log
            .iter()
            .skip(from)
            .find(|event| condition.query.matches(&event.name, &event.tags))
        {
            None => Ok(()),
            Some(event) => Err(StoreError::ConditionFailed {
                stream_id: stream_id.to_owned(),
                after: condition.after,
                position: event.position,
            }),
        }
    }
}

impl DecisionStore for MemoryStore {
    async fn read_matching(&self, query: &Query, after: u64) -> Result<MatchedEvents, StoreError> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        Ok(state.matching(query, after))
    }

    crate::telemetry::measured_conditional_appends!("memory");
}

/// The appends themselves; the trait's methods measure them (see `crate::telemetry`).
impl MemoryStore {
    async fn append_unmeasured(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        self.append_under(stream_id, stream_type, expected, events, None)
            .await
    }

    /// An append, under `condition` if one is given (checked after idempotency: a batch
    /// stored already is answered as such, whatever the condition).
    async fn append_under(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        condition: Option<&AppendCondition>,
    ) -> Result<AppendOutcome, StoreError> {
        super::limits::check_append(stream_id, stream_type, &events)?;
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let logged = state.log.len();
        let outcome = state.append(stream_id, stream_type, expected, events, condition)?;
        self.sign_from(&mut state, logged);
        // Published while the write lock is held, so the head never moves backwards.
        self.publish_head(outcome.last_position);
        Ok(outcome)
    }

    async fn append_command_unmeasured(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        command: CommandRecord,
    ) -> Result<CommandAppend, StoreError> {
        self.append_command_under(stream_id, stream_type, expected, events, command, None)
            .await
    }

    /// A command's append, under `condition` if one is given (checked after the command's
    /// record: a recorded command is answered from it, whatever the condition).
    async fn append_command_under(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        command: CommandRecord,
        condition: Option<&AppendCondition>,
    ) -> Result<CommandAppend, StoreError> {
        super::limits::check_command(stream_id, stream_type, &events, &command)?;
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        // Under the write lock: the first of concurrent submissions records the command,
        // the others find its record.
        if let Some(stored) = state.commands.get(&command.command_id) {
            return Ok(CommandAppend::AlreadyExecuted(stored.clone()));
        }
        let event_ids: Vec<Uuid> = events.iter().map(|event| event.event_id).collect();
        let (stream_version, positions) = if events.is_empty() {
            if let Some(condition) = condition {
                state.check_condition(stream_id, condition)?;
            }
            (state.check_stream(stream_id, stream_type, expected)?, None)
        } else {
            let count = events.len();
            let logged = state.log.len();
            let outcome = state.append(stream_id, stream_type, expected, events, condition)?;
            self.sign_from(&mut state, logged);
            self.publish_head(outcome.last_position);
            let first_version = outcome.stream_version - count as u64 + 1;
            let first = state.streams[stream_id].log_indexes[(first_version - 1) as usize];
            let first_position = state.log[first].position;
            let positions = Some((first_position, outcome.last_position));
            (outcome.stream_version, positions)
        };
        let outcome =
            CommandOutcome::new(&command, stream_id, stream_version, positions, event_ids);
        state.commands.insert(command.command_id, outcome.clone());
        Ok(CommandAppend::Appended(outcome))
    }
}

impl EventStore for MemoryStore {
    crate::telemetry::measured_appends!("memory");

    async fn command_outcome(
        &self,
        command_id: Uuid,
    ) -> Result<Option<CommandOutcome>, StoreError> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        Ok(state.commands.get(&command_id).cloned())
    }

    async fn prune_commands(&self, recorded_before: DateTime<Utc>) -> Result<u64, StoreError> {
        let bound = super::commands::prune_bound(recorded_before);
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let before = state.commands.len();
        state
            .commands
            .retain(|_, outcome| outcome.recorded_at >= bound);
        Ok((before - state.commands.len()) as u64)
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let Some(stream) = state.streams.get(stream_id) else {
            return Ok(Vec::new());
        };
        let skip = usize::try_from(from_version.saturating_sub(1)).unwrap_or(usize::MAX);
        Ok(stream
            .log_indexes
            .iter()
            .skip(skip)
            .take(limit)
            .map(|index| state.log[*index].clone())
            .collect())
    }

    async fn for_each_in_stream<E, F>(
        &self,
        stream_id: &str,
        from_version: u64,
        mut visit: F,
    ) -> Result<(), VisitError<E>>
    where
        E: Send,
        F: FnMut(&RecordedEvent) -> Result<(), E> + Send,
    {
        // Lends the stored events under the read lock: replay copies nothing.
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let Some(stream) = state.streams.get(stream_id) else {
            return Ok(());
        };
        let skip = usize::try_from(from_version.saturating_sub(1)).unwrap_or(usize::MAX);
        for index in stream.log_indexes.iter().skip(skip) {
            visit(&state.log[*index]).map_err(VisitError::Visitor)?;
        }
        Ok(())
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let skip = usize::try_from(after).unwrap_or(usize::MAX);
        Ok(state.log.iter().skip(skip).take(limit).cloned().collect())
    }

    async fn read_all_filtered(
        &self,
        after: u64,
        limit: usize,
        names: &[&str],
    ) -> Result<FilteredPage, StoreError> {
        let limit = limit.max(1);
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let skip = usize::try_from(after).unwrap_or(usize::MAX);
        let mut page = FilteredPage {
            events: Vec::new(),
            // Everything up to the head is examined unless the page fills first.
            scanned_to: after.max(state.log.len() as u64),
        };
        for event in state.log.iter().skip(skip) {
            if names.contains(&event.name.as_str()) {
                page.events.push(event.clone());
                if page.events.len() == limit {
                    page.scanned_to = event.position;
                    break;
                }
            }
        }
        Ok(page)
    }

    async fn head(&self) -> Result<Option<Head>, StoreError> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        Ok(state.log.last().map(|event| Head {
            position: event.position,
            timestamp: event.timestamp,
        }))
    }

    async fn wait_for_events(&self, after: u64, timeout: Duration) -> Result<(), StoreError> {
        let mut head = self.head.subscribe();
        // `wait_for` looks at the current head first, so an append that landed between
        // the caller's read and this call returns at once.
        let _ = tokio::time::timeout(timeout, head.wait_for(|head| *head > after)).await;
        Ok(())
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        super::limits::check_snapshot(&snapshot)?;
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.snapshots.insert(snapshot.stream_id.clone(), snapshot);
        Ok(())
    }

    async fn load_snapshot(&self, stream_id: &str) -> Result<Option<Snapshot>, StoreError> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        Ok(state.snapshots.get(stream_id).cloned())
    }

    async fn stream_version(&self, stream_id: &str) -> Result<Option<u64>, StoreError> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        Ok(state
            .streams
            .get(stream_id)
            .map(|stream| stream.log_indexes.len() as u64))
    }
}
