//! The outbox engine every bus's publisher runs (features `nats`, `kafka`): the global
//! log read after a durable checkpoint, handed in batches to the bus's transport, the
//! checkpoint moved past what the transport acknowledged, and a task that follows the
//! log, retrying failures with backoff. What a user names of it is the running
//! publisher's [`PublisherHandle`] and what a round [`Published`]
//! (`factum::bus::NatsPublisher`, `factum::kafka::KafkaPublisher`).
//!
//! The transport (NATS JetStream, Kafka) only sends a batch and says how much of it the
//! other side stored; everything that makes the outbox safe — nothing skipped, nothing
//! published before its predecessors are acknowledged — lives here, once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::envelope::RecordedEvent;
use crate::follow::{TaskContext, TaskError, TaskHandle};
use crate::projection::{ReadModel, ReadModelError, ReadModelTx, Target};
use crate::retry::Retry;
use crate::store::{EventStore, StoreError};

/// What a transport did with a batch.
pub(crate) struct Sent<E> {
    /// The events stored by the other side, from the first of the batch on, without a
    /// gap.
    pub(crate) acknowledged: usize,
    /// Of those, the ones it recognised as stored already.
    pub(crate) duplicates: u64,
    /// The first event not stored, if any.
    pub(crate) failure: Option<E>,
}

/// What carries a batch of events to a bus.
pub(crate) trait Transport: Send {
    /// What fails: a bus's error.
    type Error: TaskError + std::error::Error + Send + Sync + 'static;

    /// Sends `events` (in position order) and waits for the other side's answers.
    fn send(&mut self, events: &[RecordedEvent]) -> impl Future<Output = Sent<Self::Error>> + Send;

    /// Forgets what it set up (connection, topics): after a failure it may be gone.
    fn reset(&mut self);

    /// The error for the checkpoint `name` that could not be read or moved.
    fn checkpoint_error(name: &'static str, source: ReadModelError) -> Self::Error;

    /// The error for the store that could not be read.
    fn store_error(name: &'static str, source: StoreError) -> Self::Error;

    /// Where it publishes, for logs.
    fn destination(&self) -> String;
}

/// The settings every publisher has, written once: expands to the builder methods of a
/// publisher struct with an `outbox: Outbox` and a `transport` that has a `name`.
macro_rules! outbox_settings {
    () => {
        /// The name the checkpoint is kept under in the read model (1 to 40 ASCII
        /// letters, digits or underscores); one per publisher.
        pub fn checkpoint_name(mut self, name: &'static str) -> Self {
            self.outbox.name = name;
            self.transport.name = name;
            self
        }

        /// Events read and published per batch (acknowledgements awaited together).
        pub fn batch_size(mut self, batch_size: usize) -> Self {
            self.outbox.batch_size = batch_size.max(1);
            self
        }

        /// How long a caught-up spawned publisher waits for the store's wake-up before
        /// reading again anyway.
        pub fn idle_wait(mut self, idle_wait: std::time::Duration) -> Self {
            self.outbox.idle_wait = idle_wait;
            self
        }

        /// The wait after the first failure, doubled after each further one up to
        /// `max`.
        pub fn retry_backoff(
            mut self,
            first: std::time::Duration,
            max: std::time::Duration,
        ) -> Self {
            self.outbox.retry_backoff(first, max);
            self
        }
    };
}
pub(crate) use outbox_settings;

/// What a call of a publisher's `publish_pending` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Published {
    /// Events the bus stored.
    pub published: u64,
    /// Events the bus recognised as already stored and did not store again (JetStream
    /// tells by `Nats-Msg-Id`; Kafka does not tell, so 0 there).
    pub duplicates: u64,
    /// The checkpoint: every event up to this global position is on the bus.
    pub checkpoint: u64,
}

/// The log, the checkpoint, and how a publisher reads and retries.
pub(crate) struct Outbox<S, M> {
    pub(crate) store: Arc<S>,
    pub(crate) checkpoints: M,
    pub(crate) name: &'static str,
    pub(crate) batch_size: usize,
    pub(crate) idle_wait: Duration,
    pub(crate) retry: Retry,
}

impl<S: EventStore + 'static, M: ReadModel> Outbox<S, M> {
    /// An outbox on `store` whose checkpoint is kept in `checkpoints` under `name`:
    /// batches of 500 events, a wait of 1 s when idle, retries from 100 ms doubling to
    /// 5 s.
    pub(crate) fn new(store: S, checkpoints: M, name: &'static str) -> Self {
        Self {
            store: Arc::new(store),
            checkpoints,
            name,
            batch_size: 500,
            idle_wait: Duration::from_secs(1),
            retry: Retry::new(u32::MAX, Duration::from_millis(100))
                .max_backoff(Duration::from_secs(5)),
        }
    }

    /// The wait after the first failure, doubled after each further one up to `max`.
    pub(crate) fn retry_backoff(&mut self, first: Duration, max: Duration) {
        self.retry = Retry::new(u32::MAX, first).max_backoff(max.max(first));
    }

    fn target(&self) -> Target {
        Target {
            name: self.name,
            version: 0,
        }
    }

    /// The committed checkpoint: every event up to this position is on the bus.
    pub(crate) async fn checkpoint<T: Transport>(&self) -> Result<u64, T::Error> {
        let checkpoint = self
            .checkpoints
            .checkpoint(self.target())
            .await
            .map_err(|source| T::checkpoint_error(self.name, source))?;
        Ok(checkpoint.unwrap_or(0))
    }

    async fn commit<T: Transport>(&self, position: u64) -> Result<(), T::Error> {
        let tx = self
            .checkpoints
            .begin(self.target())
            .await
            .map_err(|source| T::checkpoint_error(self.name, source))?;
        let current = tx.checkpoint().unwrap_or(0);
        self.checkpoints
            .commit(tx, position.max(current))
            .await
            .map_err(|source| T::checkpoint_error(self.name, source))
    }

    /// Publishes every event after the checkpoint through `transport`, batch by batch,
    /// moving the checkpoint after each batch's acknowledgements, until the head of the
    /// log. On failure the checkpoint stays after the last event acknowledged with all
    /// before it, and the error names the first one not stored; calling again resumes
    /// there.
    pub(crate) async fn publish_pending<T: Transport>(
        &self,
        transport: &mut T,
    ) -> Result<Published, T::Error> {
        let mut outcome = Published {
            checkpoint: self.checkpoint::<T>().await?,
            ..Published::default()
        };
        loop {
            let events = self
                .store
                .read_all(outcome.checkpoint, self.batch_size)
                .await
                .map_err(|source| T::store_error(self.name, source))?;
            if events.is_empty() {
                return Ok(outcome);
            }
            let full = events.len() == self.batch_size;
            let sent = transport.send(&events).await;
            if sent.acknowledged > 0 {
                let position = events[sent.acknowledged - 1].position;
                self.commit::<T>(position).await?;
                outcome.checkpoint = position;
                outcome.duplicates += sent.duplicates;
                outcome.published += sent.acknowledged as u64 - sent.duplicates;
            }
            if let Some(error) = sent.failure {
                transport.reset();
                return Err(error);
            }
            if !full {
                return Ok(outcome);
            }
        }
    }

    /// Runs the outbox in a task: publishes what is pending, then waits for the store to
    /// report new events; retries failures with backoff until the handle stops it. Only
    /// an error retrying cannot cure ([`TaskError::is_transient`]) ends it early.
    pub(crate) fn spawn<T>(self, transport: T) -> PublisherHandle<T::Error>
    where
        T: Transport + 'static,
        S: Send + Sync,
        M: Send + Sync,
    {
        let name = self.name;
        let task = TaskHandle::spawn(name, |context| self.follow(transport, context));
        PublisherHandle { task }
    }

    async fn follow<T: Transport>(
        self,
        mut transport: T,
        context: TaskContext<T::Error>,
    ) -> Result<(), T::Error> {
        let TaskContext {
            mut stop,
            checkpoint: checkpoint_tx,
            status,
        } = context;
        let mut failures = 0u32;
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            match self.publish_pending(&mut transport).await {
                Ok(published) => {
                    failures = 0;
                    checkpoint_tx.send_replace(Some(published.checkpoint));
                    tokio::select! {
                        waited = self.store.wait_for_events(published.checkpoint, self.idle_wait) => {
                            if let Err(error) = waited {
                                tracing::warn!(publisher = self.name, error = %crate::error::Report(&error), "waiting for events failed");
                                tokio::time::sleep(self.idle_wait).await;
                            }
                        }
                        _ = stop.changed() => {}
                    }
                }
                Err(error) if !error.is_transient() => return Err(error),
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let wait = self.retry.backoff(failures);
                    tracing::warn!(
                        publisher = self.name, to = %transport.destination(), error = %crate::error::Report(&error), failures,
                        retry_in_ms = wait.as_millis() as u64, "publishing failed; retrying"
                    );
                    status.report_error(error);
                    if let Ok(checkpoint) = self.checkpoint::<T>().await {
                        checkpoint_tx.send_replace(Some(checkpoint));
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        }
    }
}

/// A running publisher (of either bus; `E` is its error).
pub struct PublisherHandle<E> {
    task: TaskHandle<E>,
}

impl<E: TaskError> std::fmt::Debug for PublisherHandle<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublisherHandle")
            .field("name", &self.task.name())
            .field("checkpoint", &self.task.checkpoint())
            .finish_non_exhaustive()
    }
}

impl<E: TaskError> PublisherHandle<E> {
    /// The checkpoint last reported (`None` before the first round).
    pub fn checkpoint(&self) -> Option<u64> {
        self.task.checkpoint()
    }

    /// The last failure it retried after, for diagnostics: its causes are its
    /// `source()`, shown by [`Report`](crate::error::Report).
    pub fn last_error(&self) -> Option<Arc<E>> {
        self.task.last_error()
    }

    /// Waits until every event up to `position` is on the bus. Returns the task's error
    /// if it ended first.
    pub async fn wait_for(&mut self, position: u64) -> Result<u64, E> {
        self.task.wait_for(position).await
    }

    /// Whether its task has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops it after the batch in hand and returns how it ended.
    pub async fn stop(self) -> Result<(), E> {
        self.task.stop().await
    }
}
