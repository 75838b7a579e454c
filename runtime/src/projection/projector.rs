//! Applying events to one projection version: batches in one transaction with the
//! checkpoint, retries with backoff, dead letters.

use std::collections::HashMap;

use tracing::Instrument as _;

use crate::envelope::RecordedEvent;
use crate::retry::Retry;

use super::error::{ProjectionError, RunnerError};
use super::read_model::{ParkedEvent, ReadModel, ReadModelTx, Target};
use super::{Projection, Reactor};

/// The read model a projection writes to.
pub type ReadModelOf<P> = <<P as Projection>::Tx as ReadModelTx>::ReadModel;

/// What to do with an event whose handler still fails after every retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnPoison {
    /// Park it in the dead-letter table with the error and go on with the next event.
    #[default]
    Park,
    /// Stop the projection before the event ([`RunnerError::Poisoned`]); nothing after it
    /// is applied until the handler is fixed.
    Stop,
}

/// What applying events did: a batch, a park, or a whole catch-up (the sum of its
/// batches).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Applied {
    /// Events the handlers applied.
    pub applied: u64,
    /// Events parked after their handler kept failing.
    pub parked: u64,
    /// Events skipped because the checkpoint was already past them (redeliveries).
    pub skipped: u64,
    /// The checkpoint committed last; after a catch-up, the head of the log when the
    /// last read was made.
    pub checkpoint: u64,
}

impl Applied {
    pub(crate) fn add(&mut self, other: Applied) {
        self.applied += other.applied;
        self.parked += other.parked;
        self.skipped += other.skipped;
        self.checkpoint = self.checkpoint.max(other.checkpoint);
    }
}

/// Applies recorded events to one version of a projection, exactly once.
///
/// Events are applied in one read-model transaction per batch, with the checkpoint
/// committed in it. The runner feeds it from the store; a bus consumer can feed it
/// events from elsewhere (redeliveries at or before the checkpoint are skipped).
///
/// When a handler fails, the events before it are committed, the failing event is tried
/// again alone with backoff ([`Retry`]), then parked or the projector stops
/// ([`OnPoison`]).
pub struct Projector<P: Projection> {
    pub(super) projection: P,
    read_model: ReadModelOf<P>,
    /// The checkpoint committed or read last: a stored one behind it means the read model
    /// was reset under this projector, and the caller's read position is wrong.
    known: Option<u64>,
    /// Set when such a reset was seen, for the runner to make the version active again
    /// once it has caught up.
    rewound: bool,
    /// The position each partition was committed at last by this projector, when fed from
    /// a partitioned log: a stored one behind it means the read model was reset.
    pub(super) known_positions: HashMap<(String, i32), u64>,
    /// The one topic of partition positions this projector may find in its read model:
    /// `None` for a bus's topics (never a worker's `factum.streams/…`), a worker's
    /// `factum.streams/<count>` for a [`ProjectionWorker`](super::ProjectionWorker).
    pub(super) partitioning: Option<String>,
    /// Whether a single runner checked that no workers feed the version.
    checked_feed: bool,
    pub(super) retry: Retry,
    pub(super) on_poison: OnPoison,
}

impl<P: Projection> Projector<P> {
    /// A projector writing `projection`'s read model into `read_model`.
    pub fn new(projection: P, read_model: ReadModelOf<P>) -> Self {
        Self {
            projection,
            read_model,
            known: None,
            rewound: false,
            known_positions: HashMap::new(),
            partitioning: None,
            checked_feed: false,
            retry: Retry::default(),
            on_poison: OnPoison::default(),
        }
    }

    /// Sets how failing handlers are retried.
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// Sets what happens to an event that keeps failing.
    pub fn on_poison(mut self, on_poison: OnPoison) -> Self {
        self.on_poison = on_poison;
        self
    }

    /// The projection version this projector writes.
    pub fn target(&self) -> Target {
        Target {
            name: P::NAME,
            version: P::VERSION,
        }
    }

    /// The read model.
    pub fn read_model(&self) -> &ReadModelOf<P> {
        &self.read_model
    }

    pub(super) fn read_model_mut(&mut self) -> &mut ReadModelOf<P> {
        &mut self.read_model
    }

    /// The projection.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// Gives the projection back.
    pub fn into_projection(self) -> P {
        self.projection
    }

    /// The committed checkpoint (0 before the first event).
    pub async fn checkpoint(&mut self) -> Result<u64, RunnerError> {
        let checkpoint = self
            .read_model
            .checkpoint(self.target())
            .await
            .map_err(self.read_model_error())?;
        let checkpoint = checkpoint.unwrap_or(0);
        if self.known.is_some_and(|known| checkpoint < known) {
            self.rewound = true;
        }
        self.known = Some(checkpoint);
        Ok(checkpoint)
    }

    /// Refuses, once per projector, a version that [`ProjectionWorker`](super::ProjectionWorker)s
    /// feed: a single runner applies by the version's checkpoint alone, which their
    /// partitions have passed, and would apply events a second time. A read model that
    /// keeps no partition offsets has no workers.
    pub(super) async fn check_fed_by_log(&mut self) -> Result<(), RunnerError> {
        if self.checked_feed {
            return Ok(());
        }
        let offsets = match self.read_model.partition_offsets(self.target()).await {
            Ok(offsets) => offsets,
            Err(super::ReadModelError::Unsupported { .. }) => Vec::new(),
            Err(error) => return Err(self.read_model_error()(error)),
        };
        if let Some(refused) = self.other_feed(&offsets, "a single runner reading the whole log") {
            return Err(refused);
        }
        self.checked_feed = true;
        Ok(())
    }

    /// Whether the read model was reset under this projector since the last call.
    pub(crate) fn take_rewound(&mut self) -> bool {
        std::mem::take(&mut self.rewound)
    }

    /// The events parked for this version, oldest first.
    pub async fn parked(&mut self) -> Result<Vec<ParkedEvent>, RunnerError> {
        self.read_model
            .parked(self.target())
            .await
            .map_err(self.read_model_error())
    }

    /// Applies `events` (in position order) and commits the checkpoint `scanned_to` — the
    /// position up to which the caller has seen the log, at least the last event's.
    ///
    /// Events the projection does not handle and events at or before the checkpoint are
    /// skipped.
    pub async fn apply(
        &mut self,
        events: &[RecordedEvent],
        scanned_to: u64,
    ) -> Result<Applied, RunnerError> {
        let pending: Vec<&RecordedEvent> = events
            .iter()
            .filter(|event| P::EVENTS.contains(&event.name.as_str()))
            .collect();
        let end = scanned_to.max(pending.last().map_or(0, |event| event.position));
        let mut outcome = Applied::default();
        // Runs pending[start..limit] in one transaction. A failure at index i shrinks the
        // run to the events before it (committed on the next turn), then the failing event
        // gets its retries alone. Every turn shrinks `limit` or advances `start`.
        let mut start = 0;
        let mut limit = pending.len();
        let mut failure: Option<(usize, ProjectionError)> = None;
        loop {
            let commit_to = if limit == pending.len() {
                Some(end)
            } else if limit > start {
                Some(pending[limit - 1].position)
            } else {
                None
            };
            if let Some(commit_to) = commit_to {
                match self
                    .run_in_transaction(&pending[start..limit], commit_to)
                    .await?
                {
                    RunOutcome::Committed(done) => {
                        // `start` moves on below: to after the failed event, or we are done.
                        outcome.add(done);
                    }
                    RunOutcome::Failed { index, error } => {
                        limit = start + index;
                        failure = Some((start + index, error));
                        continue;
                    }
                }
            }
            match failure.take() {
                None => return Ok(outcome),
                Some((index, error)) => {
                    outcome.add(self.retry_alone(pending[index], error).await?);
                    start = index + 1;
                    limit = pending.len();
                }
            }
        }
    }

    /// Applies a parked event again; on success it leaves the dead-letter table.
    ///
    /// It is applied as it is, after the events that came later: use it for handlers whose
    /// effect does not depend on order, or after fixing what made the event fail.
    ///
    /// A row parked as unreadable ([`ParkedEvent::is_unreadable`]) holds no event to
    /// apply: it is refused ([`RunnerError::NoEventToReplay`]).
    pub async fn replay_parked(&mut self, position: u64) -> Result<(), RunnerError> {
        let target = self.target();
        let parked = self.parked().await?;
        let Some(parked) = parked
            .into_iter()
            .find(|parked| parked.event.position == position)
        else {
            return Err(RunnerError::NotParked {
                projection: P::NAME,
                version: P::VERSION,
                position,
            });
        };
        if parked.is_unreadable() {
            return Err(RunnerError::NoEventToReplay {
                projection: P::NAME,
                version: P::VERSION,
                position,
            });
        }
        let mut tx = self
            .read_model
            .begin(target)
            .await
            .map_err(self.read_model_error())?;
        let checkpoint = tx.checkpoint().unwrap_or(0);
        let handled = self.projection.handle(&parked.event, &mut tx).await;
        let handled = still_open(&tx, handled);
        if let Err(error) = handled {
            self.read_model
                .rollback(tx)
                .await
                .map_err(self.read_model_error())?;
            return Err(poisoned(target, &parked.event, 1, error));
        }
        self.read_model
            .unpark(&mut tx, position)
            .await
            .map_err(self.read_model_error())?;
        self.read_model
            .commit(tx, checkpoint)
            .await
            .map_err(self.read_model_error())
    }

    pub(super) async fn begin(&mut self) -> Result<P::Tx, RunnerError> {
        let target = self.target();
        let mut tx = self
            .read_model
            .begin(target)
            .await
            .map_err(self.read_model_error())?;
        let stored = tx.checkpoint().unwrap_or(0);
        if let Some(known) = self.known
            && stored < known
        {
            // Applying now would commit a checkpoint past events the caller already read
            // beyond: they would never be applied. Hand the position back instead.
            self.read_model
                .rollback(tx)
                .await
                .map_err(self.read_model_error())?;
            self.known = None;
            self.rewound = true;
            return Err(RunnerError::CheckpointMovedBack {
                projection: P::NAME,
                version: P::VERSION,
                known,
                stored,
            });
        }
        if tx.checkpoint().is_some() {
            return Ok(tx);
        }
        match self.projection.setup(&mut tx).await {
            Ok(()) => Ok(tx),
            Err(error) => {
                let _ = self.read_model.rollback(tx).await;
                Err(RunnerError::Setup {
                    projection: P::NAME,
                    version: P::VERSION,
                    source: error.into_error(),
                })
            }
        }
    }

    async fn run_in_transaction(
        &mut self,
        events: &[&RecordedEvent],
        commit_to: u64,
    ) -> Result<RunOutcome, RunnerError> {
        let mut tx = self.begin().await?;
        let checkpoint = tx.checkpoint().unwrap_or(0);
        let mut done = Applied::default();
        for (index, event) in events.iter().enumerate() {
            if event.position <= checkpoint {
                done.skipped += 1;
                continue;
            }
            let span = crate::trace::project_span(P::NAME, event);
            let handled = self
                .projection
                .handle(event, &mut tx)
                .instrument(span.clone())
                .await;
            let handled = still_open(&tx, handled);
            if let Err(error) = handled {
                crate::trace::record_error(&span, "projection");
                self.read_model
                    .rollback(tx)
                    .await
                    .map_err(self.read_model_error())?;
                return Ok(RunOutcome::Failed { index, error });
            }
            done.applied += 1;
        }
        done.checkpoint = commit_to.max(checkpoint);
        self.read_model
            .commit(tx, done.checkpoint)
            .await
            .map_err(self.read_model_error())?;
        self.known = Some(done.checkpoint);
        count_processed::<P>(
            events
                .iter()
                .filter(|event| event.position > checkpoint)
                .map(|event| event.name.as_str()),
        );
        Ok(RunOutcome::Committed(done))
    }

    async fn retry_alone(
        &mut self,
        event: &RecordedEvent,
        first_error: ProjectionError,
    ) -> Result<Applied, RunnerError> {
        let target = self.target();
        let mut last_error = first_error;
        let mut attempts = 1;
        while attempts < self.retry.attempts() {
            tokio::time::sleep(self.retry.backoff(attempts)).await;
            attempts += 1;
            match self.run_in_transaction(&[event], event.position).await? {
                RunOutcome::Committed(done) => return Ok(done),
                RunOutcome::Failed { error, .. } => last_error = error,
            }
        }
        match self.on_poison {
            OnPoison::Stop => Err(poisoned(target, event, attempts, last_error)),
            OnPoison::Park => {
                tracing::warn!(
                    projection = P::NAME, version = P::VERSION, event = %event.name, stream = %event.stream_id,
                    stream_version = event.stream_version, position = event.position, attempts,
                    error = %last_error, "parking an event its handler keeps failing on"
                );
                self.park(ParkedEvent {
                    event: event.clone(),
                    error: last_error.message(),
                    attempts,
                    parked_at: crate::envelope::now(),
                })
                .await
            }
        }
    }

    /// Parks `parked` and commits the checkpoint at its position, in one transaction;
    /// skips it if the checkpoint is already there.
    pub(crate) async fn park(&mut self, parked: ParkedEvent) -> Result<Applied, RunnerError> {
        let position = parked.event.position;
        let mut tx = self.begin().await?;
        let checkpoint = tx.checkpoint().unwrap_or(0);
        if position <= checkpoint {
            self.read_model
                .rollback(tx)
                .await
                .map_err(self.read_model_error())?;
            return Ok(Applied {
                skipped: 1,
                checkpoint,
                ..Applied::default()
            });
        }
        self.read_model
            .park(&mut tx, &parked)
            .await
            .map_err(self.read_model_error())?;
        self.read_model
            .commit(tx, position)
            .await
            .map_err(self.read_model_error())?;
        self.known = Some(position);
        Ok(Applied {
            parked: 1,
            checkpoint: position,
            ..Applied::default()
        })
    }

    pub(super) fn read_model_error(
        &self,
    ) -> impl Fn(super::ReadModelError) -> RunnerError + use<P> {
        |source| RunnerError::ReadModel {
            projection: P::NAME,
            source,
        }
    }
}

/// Counts the events a projection applied, by name, for its metrics.
pub(super) fn count_processed<'a, P: Projection>(applied: impl Iterator<Item = &'a str>) {
    for (name, count) in crate::telemetry::by_name(applied) {
        metrics::counter!(
            crate::telemetry::PROJECTION_PROCESSED,
            "projection_name" => P::NAME,
            "event_type" => name,
        )
        .increment(count);
    }
}

/// A handler's outcome, failed when it left the transaction closed (see
/// [`ReadModelTx::is_open`]).
pub(super) fn still_open<T: ReadModelTx>(
    tx: &T,
    handled: Result<(), ProjectionError>,
) -> Result<(), ProjectionError> {
    match handled {
        Ok(()) if !tx.is_open() => Err(ProjectionError::msg(
            "the handler went on after an error that ended the read-model transaction",
        )),
        handled => handled,
    }
}

pub(super) enum RunOutcome {
    Committed(Applied),
    Failed {
        index: usize,
        error: ProjectionError,
    },
}

pub(crate) fn poisoned(
    target: Target,
    event: &RecordedEvent,
    attempts: u32,
    error: ProjectionError,
) -> RunnerError {
    RunnerError::Poisoned {
        projection: target.name,
        version: target.version,
        event_name: event.name.clone(),
        stream_id: event.stream_id.clone(),
        stream_version: event.stream_version,
        position: event.position,
        attempts,
        source: error.into_error(),
    }
}

/// Feeds a reactor, keeping its checkpoint in a read model: each event's checkpoint is
/// committed right after its reaction, so a crash re-fires at most that one event.
pub struct ReactorDriver<R: Reactor, M: ReadModel> {
    reactor: R,
    checkpoints: M,
    retry: Retry,
    on_poison: OnPoison,
}

impl<R: Reactor, M: ReadModel> ReactorDriver<R, M> {
    /// A driver for `reactor`, with its checkpoint kept in `checkpoints`.
    pub fn new(reactor: R, checkpoints: M) -> Self {
        Self {
            reactor,
            checkpoints,
            retry: Retry::default(),
            on_poison: OnPoison::default(),
        }
    }

    /// Sets how failing reactions are retried.
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// Sets what happens to an event that keeps failing.
    pub fn on_poison(mut self, on_poison: OnPoison) -> Self {
        self.on_poison = on_poison;
        self
    }

    /// The reactor's checkpoint target (version 0).
    pub fn target(&self) -> Target {
        Target {
            name: R::NAME,
            version: 0,
        }
    }

    /// The reactor.
    pub fn reactor(&self) -> &R {
        &self.reactor
    }

    /// The read model its checkpoint and dead letters are kept in.
    pub(crate) fn checkpoints(&self) -> &M {
        &self.checkpoints
    }

    /// The committed checkpoint (0 before the first event).
    pub async fn checkpoint(&mut self) -> Result<u64, RunnerError> {
        let checkpoint = self
            .checkpoints
            .checkpoint(self.target())
            .await
            .map_err(reactor_error::<R>)?;
        Ok(checkpoint.unwrap_or(0))
    }

    /// The events parked for the reactor, oldest first: events its reaction kept failing
    /// on ([`OnPoison::Park`]) and unreadable rows an operator parked
    /// (`ProjectionRunner::park_unreadable_reactor`).
    pub async fn parked(&self) -> Result<Vec<ParkedEvent>, RunnerError> {
        self.checkpoints
            .parked(self.target())
            .await
            .map_err(reactor_error::<R>)
    }

    /// Parks `parked` and commits the checkpoint at its position, in one transaction;
    /// skips it if the checkpoint is already there.
    pub(crate) async fn park(&mut self, parked: ParkedEvent) -> Result<Applied, RunnerError> {
        let position = parked.event.position;
        let mut tx = self
            .checkpoints
            .begin(self.target())
            .await
            .map_err(reactor_error::<R>)?;
        let checkpoint = tx.checkpoint().unwrap_or(0);
        if position <= checkpoint {
            self.checkpoints
                .rollback(tx)
                .await
                .map_err(reactor_error::<R>)?;
            return Ok(Applied {
                skipped: 1,
                checkpoint,
                ..Applied::default()
            });
        }
        self.checkpoints
            .park(&mut tx, &parked)
            .await
            .map_err(reactor_error::<R>)?;
        self.checkpoints
            .commit(tx, position)
            .await
            .map_err(reactor_error::<R>)?;
        Ok(Applied {
            parked: 1,
            checkpoint: position,
            ..Applied::default()
        })
    }

    /// Reacts to `events` past the checkpoint and commits `scanned_to` at the end.
    pub async fn apply(
        &mut self,
        events: &[RecordedEvent],
        scanned_to: u64,
    ) -> Result<Applied, RunnerError> {
        let target = self.target();
        let mut outcome = Applied::default();
        for event in events
            .iter()
            .filter(|event| R::EVENTS.contains(&event.name.as_str()))
        {
            let tx = self
                .checkpoints
                .begin(target)
                .await
                .map_err(reactor_error::<R>)?;
            let checkpoint = tx.checkpoint().unwrap_or(0);
            // The lock is not held across the side effect: reactions may be slow.
            self.checkpoints
                .rollback(tx)
                .await
                .map_err(reactor_error::<R>)?;
            if event.position <= checkpoint {
                outcome.skipped += 1;
                continue;
            }
            let mut attempts = 0;
            let parked = loop {
                attempts += 1;
                let span = crate::trace::react_span(R::NAME, event);
                match self.reactor.react(event).instrument(span.clone()).await {
                    Ok(()) => break None,
                    Err(error) if attempts >= self.retry.attempts() => {
                        crate::trace::record_error(&span, "reactor");
                        break Some(error);
                    }
                    Err(_) => tokio::time::sleep(self.retry.backoff(attempts)).await,
                }
            };
            let mut tx = self
                .checkpoints
                .begin(target)
                .await
                .map_err(reactor_error::<R>)?;
            match parked {
                None => outcome.applied += 1,
                Some(error) if self.on_poison == OnPoison::Stop => {
                    self.checkpoints
                        .rollback(tx)
                        .await
                        .map_err(reactor_error::<R>)?;
                    return Err(poisoned(target, event, attempts, error));
                }
                Some(error) => {
                    let parked = ParkedEvent {
                        event: event.clone(),
                        error: error.message(),
                        attempts,
                        parked_at: crate::envelope::now(),
                    };
                    self.checkpoints
                        .park(&mut tx, &parked)
                        .await
                        .map_err(reactor_error::<R>)?;
                    outcome.parked += 1;
                }
            }
            // Another driver may have gone further meanwhile: never move it back, or its
            // reactions would fire again.
            let checkpoint = event.position.max(tx.checkpoint().unwrap_or(0));
            self.checkpoints
                .commit(tx, checkpoint)
                .await
                .map_err(reactor_error::<R>)?;
            outcome.checkpoint = checkpoint;
        }
        let checkpoint = self.checkpoint().await?;
        if scanned_to > checkpoint {
            let tx = self
                .checkpoints
                .begin(target)
                .await
                .map_err(reactor_error::<R>)?;
            let current = tx.checkpoint().unwrap_or(0);
            self.checkpoints
                .commit(tx, scanned_to.max(current))
                .await
                .map_err(reactor_error::<R>)?;
        }
        outcome.checkpoint = outcome.checkpoint.max(scanned_to).max(checkpoint);
        Ok(outcome)
    }
}

fn reactor_error<R: Reactor>(source: super::ReadModelError) -> RunnerError {
    RunnerError::ReadModel {
        projection: R::NAME,
        source,
    }
}
