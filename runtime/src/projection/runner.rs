//! The runner: catch-up from the checkpoint, then live, for projections and reactors;
//! lag; rebuilds with progress; blue/green switch-over.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::envelope::RecordedEvent;
use crate::error::TaskFailure;
use crate::follow::{Follower, Log, Page, Parkable, TaskError, TaskHandle, report_parked};
use crate::store::{EventStore, StoreError};

use super::error::RunnerError;
use super::projector::{Applied, OnPoison, Projector, ReactorDriver};
use super::read_model::{ParkedEvent, ReadModel, Target, VersionState};
use super::{Projection, Reactor};
use crate::retry::Retry;

/// Runs projections and reactors against an event store.
///
/// ```text
/// let runner = ProjectionRunner::new(store.clone());
/// let list = runner.spawn(TaskList::default(), read_models.clone());
/// list.wait_for(last_position).await?;
/// ```
pub struct ProjectionRunner<S> {
    log: Log<S>,
    retry: Retry,
    on_poison: OnPoison,
}

impl<S> Clone for ProjectionRunner<S> {
    fn clone(&self) -> Self {
        Self {
            log: self.log.clone(),
            retry: self.retry,
            on_poison: self.on_poison,
        }
    }
}

/// How far behind the head of the log a projection is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lag {
    /// Global positions between the checkpoint and the head (events of every kind, also
    /// those the projection does not handle).
    pub events: u64,
    /// Seconds since the oldest event not yet applied was recorded; 0 when caught up.
    pub seconds: f64,
    /// The checkpoint.
    pub checkpoint: u64,
    /// The head of the log.
    pub head: u64,
}

/// Where a rebuild is, for progress reporting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RebuildProgress {
    /// The projection.
    pub projection: &'static str,
    /// Its version.
    pub version: u32,
    /// Events the rebuilt version applied so far (by the rebuild, or by a runner of the
    /// same version beside it that noticed the reset).
    pub applied: u64,
    /// The position the rebuild has read up to.
    pub position: u64,
    /// The head of the log when the rebuild started (it may grow meanwhile).
    pub head: u64,
    /// Time since the rebuild started.
    pub elapsed: Duration,
    /// Estimated time left, once there is something to estimate from.
    pub eta: Option<Duration>,
}

impl RebuildProgress {
    /// The share of the log done, 0.0 to 1.0.
    pub fn fraction(&self) -> f64 {
        if self.head == 0 {
            1.0
        } else {
            (self.position.min(self.head) as f64 / self.head as f64).clamp(0.0, 1.0)
        }
    }
}

/// A progress bar with ETA on the terminal (indicatif; hidden when stderr is not a
/// terminal), as a callback for [`ProjectionRunner::rebuild`]. Feature `progress`.
#[cfg(feature = "progress")]
pub fn progress_bar() -> impl FnMut(&RebuildProgress) + Send {
    let mut bar: Option<indicatif::ProgressBar> = None;
    move |progress: &RebuildProgress| {
        if bar
            .as_ref()
            .is_some_and(indicatif::ProgressBar::is_finished)
        {
            return;
        }
        let bar = bar.get_or_insert_with(|| {
            let bar = indicatif::ProgressBar::new(progress.head);
            let style = indicatif::ProgressStyle::with_template(
                "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} positions (ETA {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message(format!(
                "rebuilding {} v{}",
                progress.projection, progress.version
            ));
            bar
        });
        if progress.head > bar.length().unwrap_or(0) {
            bar.set_length(progress.head);
        }
        bar.set_position(progress.position.min(progress.head));
        if progress.position >= progress.head {
            bar.finish_with_message(format!(
                "rebuilt {} v{}: {} events",
                progress.projection, progress.version, progress.applied
            ));
        }
    }
}

impl<S: EventStore + 'static> ProjectionRunner<S> {
    /// A runner reading `store`, with batches of 500 events, [`Retry::default`] and
    /// [`OnPoison::Park`].
    pub fn new(store: S) -> Self {
        Self {
            log: Log::new(store, 500),
            retry: Retry::default(),
            on_poison: OnPoison::default(),
        }
    }

    /// Events read and applied per transaction.
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.log = self.log.batch_size(batch_size);
        self
    }

    /// How long a caught-up runner waits for a wake-up before reading again anyway.
    pub fn idle_wait(mut self, idle_wait: Duration) -> Self {
        self.log = self.log.idle_wait(idle_wait);
        self
    }

    /// How failing handlers are retried.
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// What happens to events whose handler keeps failing.
    pub fn on_poison(mut self, on_poison: OnPoison) -> Self {
        self.on_poison = on_poison;
        self
    }

    /// The store it reads.
    pub fn store(&self) -> &S {
        &self.log.store
    }

    /// A projector for `projection` with this runner's retry and poison settings.
    pub fn projector<P: Projection>(
        &self,
        projection: P,
        read_model: super::ReadModelOf<P>,
    ) -> Projector<P> {
        Projector::new(projection, read_model)
            .retry(self.retry)
            .on_poison(self.on_poison)
    }

    /// Applies every event up to the head of the log, then returns. The first version of
    /// a projection to catch up becomes the one readers see, so a model that has caught up
    /// is never left unreadable; while another version is active, readers stay on it
    /// (switch over with [`ProjectionRunner::catch_up_and_activate`]).
    pub async fn catch_up<P: Projection>(
        &self,
        projector: &mut Projector<P>,
    ) -> Result<Applied, RunnerError> {
        let caught_up = self
            .catch_up_with(projector, None, |_: &Applied, _: u64| {})
            .await?;
        let versions = projector
            .read_model()
            .versions(P::NAME)
            .await
            .map_err(|source| RunnerError::ReadModel {
                projection: P::NAME,
                source,
            })?;
        if let Some(this) = versions.iter().find(|status| status.version == P::VERSION) {
            report_parked(P::NAME, this.parked as usize);
        }
        activate_if_none_active::<P>(projector.target(), projector.read_model(), &versions).await?;
        Ok(caught_up)
    }

    /// Reads from `from` (else the stored checkpoint) to the head, applying page by page.
    async fn catch_up_with<P: Projection>(
        &self,
        projector: &mut Projector<P>,
        from: Option<u64>,
        mut on_batch: impl FnMut(&Applied, u64) + Send,
    ) -> Result<Applied, RunnerError> {
        projector.check_fed_by_log().await?;
        let checkpoint = match from {
            Some(from) => from,
            None => projector.checkpoint().await?,
        };
        let mut progress = Applied {
            checkpoint,
            ..Applied::default()
        };
        'read: loop {
            let mut next = self
                .next_page(P::NAME, progress.checkpoint, P::EVENTS)
                .await?;
            while let Some(page) = next.take() {
                let applied = if page.full {
                    // Read the page after this one while this one is applied: where it
                    // starts does not depend on how applying goes.
                    let (applied, following) = tokio::join!(
                        projector.apply(&page.events, page.scanned_to),
                        self.next_page(P::NAME, page.scanned_to, P::EVENTS),
                    );
                    next = following?;
                    applied
                } else {
                    projector.apply(&page.events, page.scanned_to).await
                };
                match applied {
                    Ok(applied) => progress.add(applied),
                    Err(RunnerError::CheckpointMovedBack { known, stored, .. }) => {
                        tracing::warn!(
                            projection = P::NAME,
                            version = P::VERSION,
                            known,
                            stored,
                            "the read model was reset under this runner: reading again from its checkpoint"
                        );
                        progress.checkpoint = stored;
                        continue 'read;
                    }
                    Err(error) => return Err(error),
                }
                on_batch(&progress, page.scanned_to);
                if next.is_some() {
                    // More to read: how far behind, while catching up.
                    self.log.report_lag(P::NAME, progress.checkpoint).await;
                }
            }
            self.log.report_lag(P::NAME, progress.checkpoint).await;
            return Ok(progress);
        }
    }

    /// Moves the projection past a row of the log the store cannot read: an operator's
    /// command, never run automatically.
    ///
    /// A row the store cannot read (a damaged column, an event whose stream row is
    /// missing) fails every read that includes it with [`StoreError::CorruptRow`] at its
    /// position, so [`ProjectionRunner::catch_up`] and a spawned runner stop before it,
    /// every time, their checkpoint below it. Repairing the row (from a backup) and
    /// running again is the first remedy. When the row cannot be repaired, this command
    /// gets the projection past it, and nothing else:
    ///
    /// 1. It acts only if reading after the projection's checkpoint really fails with a
    ///    corrupt row at exactly `position`. Otherwise it refuses
    ///    ([`RunnerError::NotUnreadable`]: the position is readable, or the next
    ///    unreadable row is elsewhere, or the checkpoint is past it) and writes nothing.
    ///    Other store errors are returned as they are.
    /// 2. It applies every readable event before `position` (a page holding the bad row
    ///    fails whole, so the last page is read one event at a time), as a catch-up would.
    /// 3. It parks the row in the projection's dead letters (where events whose handler
    ///    kept failing go; see [`Projector::parked`]) with the store's error and `note`
    ///    (who parked it and why), and commits the checkpoint at `position`, in one
    ///    transaction. The parked row has `attempts == 0`
    ///    ([`ParkedEvent::is_unreadable`](super::ParkedEvent::is_unreadable)); it cannot
    ///    be replayed ([`RunnerError::NoEventToReplay`]).
    ///
    /// Then run [`ProjectionRunner::catch_up`] (or spawn the projection) again. Every
    /// projection version has its own checkpoint: park the row for each one that stopped
    /// on it. What the event would have changed is missing from the read model; a rebuild
    /// after the row is repaired restores it.
    pub async fn park_unreadable<P: Projection>(
        &self,
        projector: &mut Projector<P>,
        position: u64,
        note: &str,
    ) -> Result<Applied, RunnerError> {
        let parked = self.log.park_unreadable(projector, position, note).await?;
        let mut progress = Applied::default();
        progress.add(parked);
        Ok(progress)
    }

    /// A driver for `reactor` with this runner's retry and poison settings, its checkpoint
    /// kept in `checkpoints` (what [`ProjectionRunner::spawn_reactor`] runs).
    pub fn reactor_driver<R: Reactor, M: ReadModel>(
        &self,
        reactor: R,
        checkpoints: M,
    ) -> ReactorDriver<R, M> {
        ReactorDriver::new(reactor, checkpoints)
            .retry(self.retry)
            .on_poison(self.on_poison)
    }

    /// Reacts to every event up to the head of the log, then returns: what a spawned
    /// reactor does before it waits for new events.
    pub async fn catch_up_reactor<R: Reactor, M: ReadModel>(
        &self,
        driver: &mut ReactorDriver<R, M>,
    ) -> Result<Applied, RunnerError> {
        let mut progress = Applied {
            checkpoint: driver.checkpoint().await?,
            ..Applied::default()
        };
        while let Some(page) = self
            .next_page(R::NAME, progress.checkpoint, R::EVENTS)
            .await?
        {
            progress.add(driver.apply(&page.events, page.scanned_to).await?);
            if !page.full {
                break;
            }
        }
        // A reactor is measured as a projection is: how far behind, how much parked.
        self.log.report_lag(R::NAME, progress.checkpoint).await;
        // Read through a clone: the driver (and its reactor) need not be shared.
        let (checkpoints, target) = (driver.checkpoints().clone(), driver.target());
        let parked = checkpoints
            .parked(target)
            .await
            .map_err(|source| RunnerError::ReadModel {
                projection: R::NAME,
                source,
            })?;
        report_parked(R::NAME, parked.len());
        Ok(progress)
    }

    /// Moves the reactor past a row of the log the store cannot read: an operator's
    /// command, never run automatically. The reactor's
    /// [`ProjectionRunner::park_unreadable`], with the same steps and refusals
    /// ([`RunnerError::NotUnreadable`], nothing written):
    ///
    /// it acts only if reading after the reactor's checkpoint fails with a corrupt row at
    /// exactly `position`, reacts to every readable event before it, then parks the row in
    /// the reactor's dead letters beside its checkpoint ([`ReactorDriver::parked`];
    /// `attempts == 0`, with the store's error and `note`) and commits the checkpoint at
    /// `position`, in one transaction. The reactor never reacts to the row: whatever it
    /// should have done for that event is not done. Then run
    /// [`ProjectionRunner::catch_up_reactor`] or [`ProjectionRunner::spawn_reactor`]
    /// again.
    pub async fn park_unreadable_reactor<R: Reactor, M: ReadModel>(
        &self,
        driver: &mut ReactorDriver<R, M>,
        position: u64,
        note: &str,
    ) -> Result<Applied, RunnerError> {
        let parked = self.log.park_unreadable(driver, position, note).await?;
        let mut progress = Applied::default();
        progress.add(parked);
        Ok(progress)
    }

    async fn next_page(
        &self,
        name: &'static str,
        after: u64,
        events: &[&str],
    ) -> Result<Option<Page>, RunnerError> {
        self.log
            .next_page(after, events)
            .await
            .map_err(store_error(name))
    }

    /// Catches up, makes this version the one readers see (retiring older ones), and
    /// returns. A newer version is built beside the live one; readers keep the old one
    /// until this returns. If a newer version than this one is already active, readers
    /// stay on it: an older process restarting never switches them back.
    pub async fn catch_up_and_activate<P: Projection>(
        &self,
        projector: &mut Projector<P>,
    ) -> Result<Applied, RunnerError> {
        let caught_up = self.catch_up(projector).await?;
        activate_if_needed::<P>(projector.target(), projector.read_model()).await?;
        Ok(caught_up)
    }

    /// Resets the projection's current version and replays the whole log into it,
    /// reporting progress after every batch (`progress_bar`, feature `progress`, draws it on a terminal).
    ///
    /// While it rebuilds, the version is not active: readers get
    /// [`ReadModelError::NotActive`](super::ReadModelError::NotActive) rather than a
    /// half-built model. To keep serving the old model while a new one builds, bump the
    /// projection's version instead (blue/green). Reactors cannot be rebuilt: their side
    /// effects are not replayed.
    pub async fn rebuild<P: Projection>(
        &self,
        projection: P,
        read_model: super::ReadModelOf<P>,
        mut progress: impl FnMut(&RebuildProgress) + Send,
    ) -> Result<Applied, RunnerError> {
        // A log that cannot be read from its start (archived events, the store opened
        // without their archive) would leave the model reset and half rebuilt: refuse
        // before touching it.
        self.log
            .store
            .read_all(0, 1)
            .await
            .map_err(store_error(P::NAME))?;
        let mut projector = self.projector(projection, read_model);
        let target = projector.target();
        projector
            .read_model()
            .reset(target)
            .await
            .map_err(|source| RunnerError::ReadModel {
                projection: P::NAME,
                source,
            })?;
        let head = self.head_position(P::NAME).await?;
        let started = Instant::now();
        let report = |caught_up: &Applied, position: u64| {
            let elapsed = started.elapsed();
            let done = position.min(head);
            let eta = (done > 0 && head > done)
                .then(|| elapsed.mul_f64((head - done) as f64 / done as f64));
            RebuildProgress {
                projection: P::NAME,
                version: P::VERSION,
                // After the reset, what it skipped a runner beside it had applied.
                applied: caught_up.applied + caught_up.skipped,
                position,
                head: head.max(position),
                elapsed,
                eta: if head <= done {
                    Some(Duration::ZERO)
                } else {
                    eta
                },
            }
        };
        progress(&report(&Applied::default(), 0));
        let caught_up = self
            // From the start, not from the stored checkpoint: a runner beside it that
            // noticed the reset may have moved it, and what it applied counts too.
            .catch_up_with(&mut projector, Some(0), |caught_up, position| {
                progress(&report(caught_up, position))
            })
            .await?;
        progress(&report(&caught_up, caught_up.checkpoint.max(head)));
        activate_if_needed::<P>(projector.target(), projector.read_model()).await?;
        Ok(caught_up)
    }

    async fn head_position(&self, name: &'static str) -> Result<u64, RunnerError> {
        let head = self.log.store.head().await.map_err(store_error(name))?;
        Ok(head.map_or(0, |head| head.position))
    }

    /// How far `checkpoint` is behind the head of the log.
    pub async fn lag_at(&self, name: &'static str, checkpoint: u64) -> Result<Lag, RunnerError> {
        self.log.lag_at(checkpoint).await.map_err(store_error(name))
    }

    /// One worker of `projection` split across processes: it applies the events of the
    /// stream partitions it holds leases on in `leases` (a `PostgresReadModel`, feature
    /// `postgres`), with this runner's batch size, idle wait, retry and poison settings.
    /// `name` must be unique among the version's live workers (a host name and process
    /// id). See [`ProjectionWorker`](super::ProjectionWorker).
    pub fn worker<P: Projection, L: super::PartitionLeases>(
        &self,
        projection: P,
        read_model: super::ReadModelOf<P>,
        leases: L,
        name: impl Into<String>,
    ) -> super::ProjectionWorker<S, P, L> {
        super::ProjectionWorker::new(
            self.log.clone(),
            self.projector(projection, read_model),
            leases,
            name.into(),
        )
    }

    /// Runs `projection` in a task: catch-up, switch-over to this version, then live
    /// (woken by the store) until [`ProjectionHandle::stop`].
    pub fn spawn<P: Projection>(
        &self,
        projection: P,
        read_model: super::ReadModelOf<P>,
    ) -> ProjectionHandle<S> {
        let follower = ProjectionFollower {
            projector: self.projector(projection, read_model),
            activated: false,
        };
        self.spawn_follower(P::NAME, follower)
    }

    /// Runs `reactor` in a task, its checkpoint kept in `checkpoints`: catch-up, then
    /// live. Each event's reaction runs once, at least once across crashes.
    pub fn spawn_reactor<R: Reactor, M: ReadModel>(
        &self,
        reactor: R,
        checkpoints: M,
    ) -> ProjectionHandle<S> {
        let driver = self.reactor_driver(reactor, checkpoints);
        self.spawn_follower(R::NAME, ReactorFollower { driver })
    }

    fn spawn_follower(&self, name: &'static str, target: impl Follows<S>) -> ProjectionHandle<S> {
        let runner = self.clone();
        let (stored_tx, stored_rx) = watch::channel(None);
        let task = TaskHandle::spawn(name, move |context| async move {
            let mut live = Live {
                runner,
                name,
                target,
                stored: stored_tx,
            };
            // Lag is measured from the stored checkpoint until the first catch-up ends. Not
            // reading it is no reason to stop: the follow loop retries what failed.
            match live.target.stored_checkpoint().await {
                Ok(stored) => {
                    live.stored.send_replace(Some(stored));
                }
                Err(error) => tracing::warn!(
                    projection = name,
                    error = %crate::error::Report(&error),
                    "could not read the stored checkpoint; lag counts from 0 until the first catch-up"
                ),
            }
            let log = live.runner.log.clone();
            log.follow(live, context).await
        });
        ProjectionHandle {
            runner: self.clone(),
            stored: stored_rx,
            task,
        }
    }
}

fn store_error(name: &'static str) -> impl Fn(StoreError) -> RunnerError {
    move |source| RunnerError::Store {
        projection: name,
        source,
    }
}

/// What the live loop keeps caught up: a projection or a reactor.
trait Follows<S>: Send + 'static {
    /// The checkpoint as stored, before catching up.
    fn stored_checkpoint(&mut self) -> impl Future<Output = Result<u64, RunnerError>> + Send;

    /// Catches up to the head of the log; returns the checkpoint.
    fn catch_up(
        &mut self,
        runner: &ProjectionRunner<S>,
    ) -> impl Future<Output = Result<u64, RunnerError>> + Send;
}

/// A projection or reactor followed live, its checkpoint as stored published for
/// [`ProjectionHandle::lag`].
struct Live<S, F> {
    runner: ProjectionRunner<S>,
    name: &'static str,
    target: F,
    stored: watch::Sender<Option<u64>>,
}

impl<S: EventStore + 'static, F: Follows<S>> Follower for Live<S, F> {
    type Error = RunnerError;

    async fn catch_up(&mut self) -> Result<u64, RunnerError> {
        let checkpoint = self.target.catch_up(&self.runner).await?;
        self.stored.send_replace(Some(checkpoint));
        Ok(checkpoint)
    }

    fn store_error(&self, source: StoreError) -> RunnerError {
        store_error(self.name)(source)
    }
}

struct ProjectionFollower<P: Projection> {
    projector: Projector<P>,
    activated: bool,
}

impl<S: EventStore + 'static, P: Projection> Follows<S> for ProjectionFollower<P> {
    async fn stored_checkpoint(&mut self) -> Result<u64, RunnerError> {
        self.projector.checkpoint().await
    }

    async fn catch_up(&mut self, runner: &ProjectionRunner<S>) -> Result<u64, RunnerError> {
        let caught_up = runner.catch_up(&mut self.projector).await?;
        // After a reset under it (a rebuild that may not finish), the version is active
        // again as soon as this runner has caught up.
        if !self.activated || self.projector.take_rewound() {
            activate_if_needed::<P>(self.projector.target(), self.projector.read_model()).await?;
            self.activated = true;
        }
        Ok(caught_up.checkpoint)
    }
}

struct ReactorFollower<R: Reactor, M: ReadModel> {
    driver: ReactorDriver<R, M>,
}

impl<S: EventStore + 'static, R: Reactor, M: ReadModel> Follows<S> for ReactorFollower<R, M> {
    async fn stored_checkpoint(&mut self) -> Result<u64, RunnerError> {
        self.driver.checkpoint().await
    }

    async fn catch_up(&mut self, runner: &ProjectionRunner<S>) -> Result<u64, RunnerError> {
        Ok(runner.catch_up_reactor(&mut self.driver).await?.checkpoint)
    }
}

impl<P: Projection> Parkable for Projector<P> {
    type Error = RunnerError;
    const EVENTS: &'static [&'static str] = P::EVENTS;

    fn target(&self) -> Target {
        Projector::target(self)
    }

    async fn stored_checkpoint(&mut self) -> Result<u64, RunnerError> {
        self.checkpoint().await
    }

    async fn apply_readable(
        &mut self,
        events: &[RecordedEvent],
        scanned_to: u64,
    ) -> Result<Applied, RunnerError> {
        self.apply(events, scanned_to).await
    }

    async fn park_row(&mut self, parked: ParkedEvent) -> Result<Applied, RunnerError> {
        self.park(parked).await
    }

    fn not_unreadable(
        &self,
        position: u64,
        checkpoint: u64,
        next_unreadable: Option<u64>,
    ) -> RunnerError {
        RunnerError::NotUnreadable {
            projection: P::NAME,
            version: P::VERSION,
            position,
            checkpoint,
            next_unreadable,
        }
    }

    fn store_error(&self, source: StoreError) -> RunnerError {
        store_error(P::NAME)(source)
    }
}

impl<R: Reactor, M: ReadModel> Parkable for ReactorDriver<R, M> {
    type Error = RunnerError;
    const EVENTS: &'static [&'static str] = R::EVENTS;

    fn target(&self) -> Target {
        ReactorDriver::target(self)
    }

    async fn stored_checkpoint(&mut self) -> Result<u64, RunnerError> {
        self.checkpoint().await
    }

    async fn apply_readable(
        &mut self,
        events: &[RecordedEvent],
        scanned_to: u64,
    ) -> Result<Applied, RunnerError> {
        self.apply(events, scanned_to).await
    }

    async fn park_row(&mut self, parked: ParkedEvent) -> Result<Applied, RunnerError> {
        self.park(parked).await
    }

    fn not_unreadable(
        &self,
        position: u64,
        checkpoint: u64,
        next_unreadable: Option<u64>,
    ) -> RunnerError {
        RunnerError::NotUnreadable {
            projection: R::NAME,
            version: 0,
            position,
            checkpoint,
            next_unreadable,
        }
    }

    fn store_error(&self, source: StoreError) -> RunnerError {
        store_error(R::NAME)(source)
    }
}

/// Makes `target` the version readers see if no version of its projection is active
/// (`versions`, as read): the first version to catch up is never left unreadable, and
/// while another is active, readers stay on it.
pub(super) async fn activate_if_none_active<P: Projection>(
    target: Target,
    read_model: &super::ReadModelOf<P>,
    versions: &[super::VersionStatus],
) -> Result<(), RunnerError> {
    if versions
        .iter()
        .any(|status| status.state == VersionState::Active)
    {
        return Ok(());
    }
    activate_if_needed::<P>(target, read_model).await
}

pub(crate) async fn activate_if_needed<P: Projection>(
    target: Target,
    read_model: &super::ReadModelOf<P>,
) -> Result<(), RunnerError> {
    let read_model_error = |source| RunnerError::ReadModel {
        projection: P::NAME,
        source,
    };
    let versions = read_model
        .versions(P::NAME)
        .await
        .map_err(read_model_error)?;
    let active = versions
        .iter()
        .any(|status| status.version == target.version && status.state == VersionState::Active);
    if active {
        return Ok(());
    }
    // The read model refuses, atomically, when a newer version is active (an older
    // process restarted during a rolling deploy): readers never switch back.
    if read_model
        .activate(target)
        .await
        .map_err(read_model_error)?
    {
        tracing::info!(
            projection = P::NAME,
            version = P::VERSION,
            "caught up: this version is now the one readers see"
        );
    } else {
        tracing::warn!(
            projection = P::NAME,
            version = P::VERSION,
            "caught up, but a newer version is active: readers stay on it"
        );
    }
    Ok(())
}

/// A running projection or reactor.
pub struct ProjectionHandle<S> {
    runner: ProjectionRunner<S>,
    /// The checkpoint as stored: known before the first catch-up ends.
    stored: watch::Receiver<Option<u64>>,
    task: TaskHandle<RunnerError>,
}

impl TaskError for RunnerError {
    fn task(name: &'static str, source: TaskFailure) -> Self {
        RunnerError::Task {
            projection: name,
            source,
        }
    }

    /// Store and read-model failures (outages, timeouts, a busy database) are retried;
    /// a poison event the projection is configured to stop on, a failed setup, a corrupt
    /// row, a bad name, a file that is no read model, a read model written by a newer
    /// factum or a failed task are not.
    fn is_transient(&self) -> bool {
        use super::read_model::ReadModelError;
        match self {
            RunnerError::Store { source, .. } => !matches!(source, StoreError::CorruptRow { .. }),
            RunnerError::ReadModel { source, .. } => !matches!(
                source,
                ReadModelError::InvalidName { .. }
                    | ReadModelError::Corrupt { .. }
                    | ReadModelError::NotAReadModel { .. }
                    | ReadModelError::SchemaTooNew { .. }
            ),
            // Handled by the runner (it reads again from the stored checkpoint); retrying
            // does the same should one get here.
            RunnerError::CheckpointMovedBack { .. } | RunnerError::PartitionMovedBack { .. } => {
                true
            }
            RunnerError::Poisoned { .. }
            | RunnerError::Setup { .. }
            | RunnerError::FedOtherwise { .. }
            | RunnerError::NotParked { .. }
            | RunnerError::NoEventToReplay { .. }
            | RunnerError::NotUnreadable { .. }
            | RunnerError::Task { .. } => false,
        }
    }
}

impl<S: EventStore + 'static> ProjectionHandle<S> {
    /// The projection's or reactor's name.
    pub fn name(&self) -> &'static str {
        self.task.name()
    }

    /// The checkpoint after the last completed catch-up (`None` before the first).
    pub fn checkpoint(&self) -> Option<u64> {
        self.task.checkpoint()
    }

    /// How far behind the head of the log it is: from the checkpoint it resumed from
    /// until its first catch-up ends, then from the last catch-up's.
    pub async fn lag(&self) -> Result<Lag, RunnerError> {
        let checkpoint = (*self.stored.borrow()).or(self.checkpoint()).unwrap_or(0);
        self.runner.lag_at(self.name(), checkpoint).await
    }

    /// Waits until it has applied everything up to global `position` (for a projection:
    /// and its version is active). Returns the runner's error if it stopped first.
    pub async fn wait_for(&mut self, position: u64) -> Result<u64, RunnerError> {
        self.task.wait_for(position).await
    }

    /// Whether its task has ended (stopped, or failed: see [`ProjectionHandle::stop`]).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// The last error it retried after, its causes as its `source()` (`None` if it never
    /// failed); shown with its causes by [`Report`](crate::error::Report).
    ///
    /// Failures a retry can cure — the store or the read model unreachable, busy or
    /// timing out — do not end the task: it logs them (a `tracing` warning), waits
    /// 100 ms doubling up to 30 s, and tries again. The error stays here after it
    /// recovers; [`ProjectionHandle::checkpoint`] and [`ProjectionHandle::lag`] tell
    /// whether it still falls behind. Other failures end the task
    /// ([`ProjectionHandle::stop`] returns them): [`RunnerError::Poisoned`] (with
    /// [`OnPoison::Stop`]), [`RunnerError::Setup`], a corrupt row or an invalid name.
    pub fn last_error(&self) -> Option<Arc<RunnerError>> {
        self.task.last_error()
    }

    /// Stops it after the batch in hand and returns how it ended (`Ok` if the way it
    /// ended was already reported by [`ProjectionHandle::wait_for`]).
    pub async fn stop(self) -> Result<(), RunnerError> {
        self.task.stop().await
    }
}
