//! What the spawned followers of the log share: the handle of a task that publishes its
//! checkpoint and can be stopped ([`TaskHandle`]), and, for those that read the store
//! itself, the reading settings, the live loop ([`Log`]) and the operator's way past a
//! row the store cannot read ([`Log::park_unreadable`]).
//!
//! Used by the projection runner, the process runner and the bus's publisher and
//! consumer; their public handles wrap a [`TaskHandle`].

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::envelope::{Metadata, RecordedEvent};
use crate::error::TaskFailure;
use crate::projection::{Applied, Lag, ParkedEvent, Target};
use crate::store::{EventStore, StoreError};

/// The error type of a followed task: how it says that the task ended in a way the task
/// itself could not report.
// `pub` in a private module: sealed, yet a bound public handles may carry.
pub trait TaskError: Sized + Send + 'static {
    /// The task named `name` ended abnormally: it panicked or was aborted, or it stopped
    /// before reaching what was waited for; `failure` says which.
    fn task(name: &'static str, failure: TaskFailure) -> Self;

    /// What joining reports once the task's end was already reported (by
    /// [`TaskHandle::wait_for`], say): `None` for `Ok(())`.
    fn already_reported(_name: &'static str) -> Option<Self> {
        None
    }

    /// Whether trying again may cure it (an outage, a timeout, a lock held too long):
    /// [`Log::follow`] then backs off and tries again rather than ending the task.
    /// Errors that retrying cannot cure (a poison event the user chose to stop on, a
    /// corrupt row, a bad name, a panicked task) end it.
    fn is_transient(&self) -> bool;
}

/// What a task [`TaskHandle::spawn`] runs is given: the stop signal, where to publish its
/// checkpoint, and where to report the errors it retries after.
pub(crate) struct TaskContext<E> {
    /// Turns `true` when the task should stop.
    pub(crate) stop: watch::Receiver<bool>,
    /// Where the task publishes its checkpoint.
    pub(crate) checkpoint: watch::Sender<Option<u64>>,
    /// Where it reports the errors it retries after.
    pub(crate) status: Arc<Status<E>>,
}

impl<E> Status<E> {
    /// Keeps `error` as the task's last error, for [`TaskHandle::last_error`].
    pub(crate) fn report_error(&self, error: E) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(error));
    }
}

/// What a running task reports besides its checkpoint.
pub(crate) struct Status<E> {
    /// The last error it retried after: shared, so that the handle can hand it out whole
    /// (its `source()` chain intact) while the task goes on.
    last_error: Mutex<Option<Arc<E>>>,
}

impl<E> Default for Status<E> {
    fn default() -> Self {
        Self {
            last_error: Mutex::new(None),
        }
    }
}

/// The first pause after a transient error in [`Log::follow`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause: the backoff doubles up to it.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A spawned task that publishes its checkpoint (the global position it has dealt with
/// everything up to) and stops when told.
pub(crate) struct TaskHandle<E> {
    name: &'static str,
    stop: watch::Sender<bool>,
    checkpoint: watch::Receiver<Option<u64>>,
    /// `None` once its outcome was reported.
    task: Option<JoinHandle<Result<(), E>>>,
    status: Arc<Status<E>>,
}

impl<E: TaskError> TaskHandle<E> {
    /// Spawns `run(context)`: it should publish its checkpoint in `context.checkpoint`
    /// and return once `context.stop` turns `true`.
    pub(crate) fn spawn<F>(name: &'static str, run: impl FnOnce(TaskContext<E>) -> F) -> Self
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (checkpoint_tx, checkpoint_rx) = watch::channel(None);
        let status = Arc::new(Status::default());
        let task = tokio::spawn(run(TaskContext {
            stop: stop_rx,
            checkpoint: checkpoint_tx,
            status: Arc::clone(&status),
        }));
        Self {
            name,
            stop: stop_tx,
            checkpoint: checkpoint_rx,
            task: Some(task),
            status,
        }
    }

    /// The last error the task retried after ([`Log::follow`] retries transient errors
    /// with backoff), with its causes as its `source()`; `None` if it never failed. It is
    /// kept after the task recovers: compare [`TaskHandle::checkpoint`] to tell whether it
    /// still fails.
    pub(crate) fn last_error(&self) -> Option<Arc<E>> {
        self.status
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The task's name.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// The checkpoint last published (`None` before the first).
    pub(crate) fn checkpoint(&self) -> Option<u64> {
        *self.checkpoint.borrow()
    }

    /// Waits until the checkpoint changes or the task ends.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) async fn checkpoint_changed(&mut self) {
        let _ = self.checkpoint.changed().await;
    }

    /// Waits until the checkpoint reaches `position`. Returns the task's error if it ended
    /// first.
    pub(crate) async fn wait_for(&mut self, position: u64) -> Result<u64, E> {
        loop {
            if let Some(checkpoint) = *self.checkpoint.borrow_and_update()
                && checkpoint >= position
            {
                return Ok(checkpoint);
            }
            if self.checkpoint.changed().await.is_err() {
                // The task ended: report why.
                return Err(self.join().await.err().unwrap_or_else(|| {
                    E::task(
                        self.name,
                        TaskFailure::StoppedBefore("reaching the position"),
                    )
                }));
            }
        }
    }

    /// Whether the task has ended.
    pub(crate) fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Tells the task to stop and returns how it ended.
    pub(crate) async fn stop(mut self) -> Result<(), E> {
        self.stop.send_replace(true);
        self.join().await
    }

    /// Awaits the end of the task and returns how it ended, once; afterwards
    /// [`TaskError::already_reported`].
    pub(crate) async fn join(&mut self) -> Result<(), E> {
        let Some(task) = self.task.take() else {
            return E::already_reported(self.name).map_or(Ok(()), Err);
        };
        match task.await {
            Ok(result) => result,
            Err(error) => Err(E::task(self.name, TaskFailure::Join(error))),
        }
    }
}

/// Sets the dead-letter gauge of the follower `name` (see [`crate::telemetry`]) to
/// `parked` events.
pub(crate) fn report_parked(name: &'static str, parked: usize) {
    metrics::gauge!(crate::telemetry::PROJECTION_PARKED, "projection_name" => name)
        .set(parked as f64);
}

/// How a runner reads the log: the store, the batch size, how long a caught-up follower
/// waits for a wake-up before reading again anyway.
pub(crate) struct Log<S> {
    pub(crate) store: Arc<S>,
    pub(crate) batch_size: usize,
    pub(crate) idle_wait: Duration,
}

impl<S> Clone for Log<S> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            batch_size: self.batch_size,
            idle_wait: self.idle_wait,
        }
    }
}

/// Events after a checkpoint, read for a catch-up.
pub(crate) struct Page {
    /// The matching events.
    pub(crate) events: Vec<RecordedEvent>,
    /// The highest global position examined.
    pub(crate) scanned_to: u64,
    /// Whether the page is a full batch: more may follow.
    pub(crate) full: bool,
}

/// Something [`Log::follow`] keeps caught up.
pub(crate) trait Follower: Send {
    /// What ends it, or (if [transient](TaskError::is_transient)) makes it try again.
    type Error: TaskError + std::error::Error;

    /// Catches up to the head of the log; returns the checkpoint.
    fn catch_up(&mut self) -> impl Future<Output = Result<u64, Self::Error>> + Send;

    /// The error for a failed wait for new events.
    fn store_error(&self, source: StoreError) -> Self::Error;
}

/// Something [`Log::park_unreadable`] moves past a row of the log the store cannot read:
/// a projector, a reactor's driver or a process manager's driver, each with its own
/// checkpoint, dead letters and errors.
pub(crate) trait Parkable: Send {
    /// What it reports.
    type Error;
    /// The names of the events it takes; the store filters the log by them.
    const EVENTS: &'static [&'static str];

    /// Whose checkpoint it is, for the log.
    fn target(&self) -> Target;

    /// The checkpoint as committed (0 before the first event).
    fn stored_checkpoint(&mut self) -> impl Future<Output = Result<u64, Self::Error>> + Send;

    /// Handles `events` as a catch-up does and commits the checkpoint `scanned_to`.
    fn apply_readable(
        &mut self,
        events: &[RecordedEvent],
        scanned_to: u64,
    ) -> impl Future<Output = Result<Applied, Self::Error>> + Send;

    /// Records `parked` in its dead letters and commits the checkpoint at its position,
    /// in one transaction; skips it if the checkpoint is already there.
    fn park_row(
        &mut self,
        parked: ParkedEvent,
    ) -> impl Future<Output = Result<Applied, Self::Error>> + Send;

    /// The refusal to park `position`: reading after `checkpoint` does not fail there
    /// (see [`describe_refusal`] for `next_unreadable`).
    fn not_unreadable(
        &self,
        position: u64,
        checkpoint: u64,
        next_unreadable: Option<u64>,
    ) -> Self::Error;

    /// Reading the store failed.
    fn store_error(&self, source: StoreError) -> Self::Error;
}

/// Why [`Log::park_unreadable`] refused `position`, for the refusals' messages:
/// `next_unreadable` is where reading after `checkpoint` does fail, when it failed with
/// a corrupt row before passing `position`.
pub(crate) fn describe_refusal(
    position: u64,
    checkpoint: u64,
    next_unreadable: Option<u64>,
) -> String {
    match next_unreadable {
        _ if position <= checkpoint => {
            format!("the checkpoint is already at {checkpoint}")
        }
        Some(next) if next < position => {
            format!("the next unreadable row after the checkpoint {checkpoint} is at {next}")
        }
        Some(next) => {
            format!("position {position} is readable; the next unreadable row is at {next}")
        }
        None => format!("position {position} is readable"),
    }
}

/// The position of the row `error` says the store cannot read, if it names one.
fn unreadable_at(error: &StoreError) -> Option<u64> {
    match error {
        StoreError::CorruptRow { position, .. } => *position,
        _ => None,
    }
}

impl<S: EventStore> Log<S> {
    /// How far `checkpoint` is behind the head of the log.
    pub(crate) async fn lag_at(&self, checkpoint: u64) -> Result<Lag, StoreError> {
        let head = self.store.head().await?.map_or(0, |head| head.position);
        let seconds = if head > checkpoint {
            match self.store.read_all(checkpoint, 1).await?.first() {
                Some(next) => {
                    (chrono::Utc::now() - next.timestamp)
                        .num_microseconds()
                        .unwrap_or(i64::MAX)
                        .max(0) as f64
                        / 1e6
                }
                None => 0.0,
            }
        } else {
            0.0
        };
        Ok(Lag {
            events: head.saturating_sub(checkpoint),
            seconds,
            checkpoint,
            head,
        })
    }

    /// Sets the lag gauges of the follower `name` (see [`crate::telemetry`]) for
    /// `checkpoint`. A failure to measure is no failure of the catch-up: the gauges keep
    /// their values.
    pub(crate) async fn report_lag(&self, name: &'static str, checkpoint: u64) {
        match self.lag_at(checkpoint).await {
            Ok(lag) => {
                metrics::gauge!(crate::telemetry::PROJECTION_LAG_EVENTS, "projection_name" => name)
                    .set(lag.events as f64);
                metrics::gauge!(crate::telemetry::PROJECTION_LAG_SECONDS, "projection_name" => name)
                    .set(lag.seconds);
            }
            Err(error) => tracing::debug!(
                projection = name,
                error = %crate::error::Report(&error),
                "could not measure the lag"
            ),
        }
    }

    /// Reads `store` with batches of `batch_size` events and waits of 1 s.
    pub(crate) fn new(store: S, batch_size: usize) -> Self {
        Self {
            store: Arc::new(store),
            batch_size: batch_size.max(1),
            idle_wait: Duration::from_secs(1),
        }
    }

    /// With batches of `batch_size` events (at least 1).
    pub(crate) fn batch_size(self, batch_size: usize) -> Self {
        Self {
            batch_size: batch_size.max(1),
            ..self
        }
    }

    /// With waits of `idle_wait`.
    pub(crate) fn idle_wait(self, idle_wait: Duration) -> Self {
        Self { idle_wait, ..self }
    }

    /// The next batch of the events named `events` after `after`; `None` once caught up
    /// (nothing matched and nothing newer was examined).
    pub(crate) async fn next_page(
        &self,
        after: u64,
        events: &[&str],
    ) -> Result<Option<Page>, StoreError> {
        let page = self
            .store
            .read_all_filtered(after, self.batch_size, events)
            .await?;
        if page.events.is_empty() && page.scanned_to <= after {
            return Ok(None);
        }
        Ok(Some(Page {
            full: page.events.len() == self.batch_size,
            events: page.events,
            scanned_to: page.scanned_to,
        }))
    }

    /// Moves `target` past the row at `position`, which the store cannot read: the one
    /// implementation of `ProjectionRunner::park_unreadable`,
    /// `ProjectionRunner::park_unreadable_reactor` and `ProcessRunner::park_unreadable`.
    ///
    /// 1. It acts only if reading after `target`'s checkpoint fails with a corrupt row at
    ///    exactly `position`; otherwise it returns [`Parkable::not_unreadable`] having
    ///    written nothing. Other store errors are returned as they are.
    /// 2. It applies every readable event before `position` (a page holding the bad row
    ///    fails whole, so the last page is read one event at a time), as a catch-up would.
    /// 3. It parks the row ([`Parkable::park_row`]: dead letter and checkpoint at
    ///    `position` in one transaction) as a blank event at `position` naming the stream
    ///    and version the store's error names, with that error and `note` as its error
    ///    and `attempts == 0`.
    ///
    /// Returns what applying and parking did, `checkpoint` starting from the one it read.
    pub(crate) async fn park_unreadable<T: Parkable>(
        &self,
        target: &mut T,
        position: u64,
        note: &str,
    ) -> Result<Applied, T::Error> {
        let checkpoint = target.stored_checkpoint().await?;
        if position <= checkpoint {
            return Err(target.not_unreadable(position, checkpoint, None));
        }
        let store = &self.store;
        let batch = self.batch_size;
        // Where reading fails, read only: nothing is written if the answer is no.
        let mut cursor = checkpoint;
        let unreadable = loop {
            match store.read_all_filtered(cursor, batch, T::EVENTS).await {
                Ok(page) => {
                    let caught_up = page.events.is_empty() && page.scanned_to <= cursor;
                    if caught_up || page.scanned_to >= position {
                        return Err(target.not_unreadable(position, checkpoint, None));
                    }
                    cursor = page.scanned_to;
                }
                Err(error) => match unreadable_at(&error) {
                    Some(at) if at == position => break error,
                    Some(at) => return Err(target.not_unreadable(position, checkpoint, Some(at))),
                    None => return Err(target.store_error(error)),
                },
            }
        };
        // The readable events before it: whole pages up to the one that fails, then that
        // one an event at a time.
        let mut progress = Applied {
            checkpoint,
            ..Applied::default()
        };
        let mut limit = batch;
        loop {
            match store
                .read_all_filtered(progress.checkpoint, limit, T::EVENTS)
                .await
            {
                Ok(page) => {
                    let Some(last) = page.events.last() else {
                        // Readable now: repaired meanwhile.
                        return Err(target.not_unreadable(position, checkpoint, None));
                    };
                    let scanned_to = if limit == 1 {
                        last.position
                    } else {
                        page.scanned_to
                    };
                    if scanned_to >= position {
                        return Err(target.not_unreadable(position, checkpoint, None));
                    }
                    progress.add(target.apply_readable(&page.events, scanned_to).await?);
                    progress.checkpoint = progress.checkpoint.max(scanned_to);
                }
                Err(error) if unreadable_at(&error) == Some(position) => {
                    if limit == 1 {
                        break;
                    }
                    limit = 1;
                }
                Err(error) => return Err(target.store_error(error)),
            }
        }
        let (stream_id, stream_version) = match &unreadable {
            StoreError::CorruptRow {
                stream_id,
                stream_version,
                ..
            } => (stream_id.clone(), *stream_version),
            _ => (String::new(), 0),
        };
        let who = target.target();
        tracing::warn!(
            name = who.name,
            version = who.version,
            position,
            note,
            error = %crate::error::Report(&unreadable),
            "parking an unreadable row of the log, as the operator asked"
        );
        let parked = ParkedEvent {
            event: RecordedEvent {
                event_id: uuid::Uuid::nil(),
                stream_id,
                stream_type: String::new(),
                stream_version,
                position,
                name: String::new(),
                schema_version: 0,
                stored_schema_version: None,
                payload: serde_json::value::RawValue::NULL.to_owned(),
                timestamp: chrono::DateTime::UNIX_EPOCH,
                metadata: Metadata::default(),
                tags: Vec::new(),
            },
            error: format!(
                "unreadable row parked by the operator ({note}): {}",
                crate::error::Report(&unreadable)
            ),
            attempts: 0,
            parked_at: crate::envelope::now(),
        };
        progress.add(target.park_row(parked).await?);
        Ok(progress)
    }

    /// The live loop: catches `follower` up, publishes its checkpoint in `checkpoint`,
    /// sleeps until the store reports new events (or `idle_wait` passes), and again,
    /// until `stop` turns `true`.
    ///
    /// A [transient](TaskError::is_transient) error (of the catch-up or of the wait) is
    /// logged, kept for [`TaskHandle::last_error`], and retried after a pause of 100 ms
    /// doubling up to 30 s (back to 100 ms after a catch-up succeeds); a stop request
    /// ends the pause. Any other error ends the loop.
    pub(crate) async fn follow<F: Follower>(
        &self,
        mut follower: F,
        context: TaskContext<F::Error>,
    ) -> Result<(), F::Error> {
        let TaskContext {
            mut stop,
            checkpoint,
            status,
        } = context;
        let mut backoff = FIRST_BACKOFF;
        let mut failures: u32 = 0;
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            let error = match follower.catch_up().await {
                Ok(reached) => {
                    backoff = FIRST_BACKOFF;
                    failures = 0;
                    checkpoint.send_replace(Some(reached));
                    tokio::select! {
                        waited = self.store.wait_for_events(reached, self.idle_wait) => {
                            match waited {
                                Ok(_) => continue,
                                Err(source) => follower.store_error(source),
                            }
                        }
                        () = stop_requested(&mut stop) => continue,
                    }
                }
                Err(error) => error,
            };
            if !error.is_transient() {
                return Err(error);
            }
            failures = failures.saturating_add(1);
            tracing::warn!(
                error = %crate::error::Report(&error),
                failures,
                retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
                "following the log failed; retrying"
            );
            status.report_error(error);
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = stop_requested(&mut stop) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// Returns when `stop` changes; never if its sender is gone (the handle was dropped: the
/// task runs on, detached, rather than spinning on a closed channel).
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    if stop.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}
