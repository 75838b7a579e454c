//! One projection split across worker processes: the log's streams fall into a fixed
//! number of partitions (a hash of the stream id), each worker holds leases on some of
//! them and applies only their events, and a dead worker's partitions pass to the others
//! once its leases expire.
//!
//! Exactly once, whoever applies: each partition's position is committed in the
//! transaction of the rows its events produced, under the version's write lock, and an
//! event at or before it is skipped ([`Projector::apply_partitioned`]). A worker that lost
//! a lease without knowing it (paused, cut off from the database) can still commit, but
//! only events the new holder has not applied; the two see the same events of the
//! partition in the same order, so none is applied twice and none is skipped. Leases
//! bound how long a partition waits for a dead worker; positions alone keep the model
//! right.
//!
//! The version's checkpoint is the lowest position of all partitions once each has one:
//! every event at or before it is applied. It drives lag, activation and readers waiting
//! for their writes, as with a single runner.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

use crate::envelope::RecordedEvent;
use crate::follow::{Log, TaskError as _};
use crate::store::EventStore;

use super::partitioned::{PartitionedRecord, STREAM_TOPIC_PREFIX};
use super::projector::{Applied, Projector};
use super::read_model::{ReadModel, ReadModelError, Target};
use super::runner::activate_if_none_active;
use super::{Projection, RunnerError};

/// How the log's streams are split among workers: by the first eight bytes of the
/// SHA-256 of the stream id, modulo the count. Every event of a stream falls into the
/// same partition, so a stream's events are applied in order by one worker at a time.
///
/// The split is part of the read model: every worker of a projection version must use
/// the same count, and a worker finding another count's positions refuses
/// ([`RunnerError::FedOtherwise`]). More partitions than workers lets the work be spread
/// again when workers come and go; 16 suits up to a handful of workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamPartitions {
    count: u16,
}

impl StreamPartitions {
    /// `count` partitions (at least 1).
    pub const fn new(count: u16) -> Self {
        Self {
            count: if count == 0 { 1 } else { count },
        }
    }

    /// How many partitions.
    pub fn count(&self) -> u32 {
        u32::from(self.count)
    }

    /// The partition `stream_id` falls into: the same on every machine and every release.
    pub fn of(&self, stream_id: &str) -> u32 {
        let digest = Sha256::digest(stream_id.as_bytes());
        let mut first = [0; 8];
        first.copy_from_slice(&digest[..8]);
        (u64::from_be_bytes(first) % u64::from(self.count)) as u32
    }

    /// The topic under which the read model keeps the partitions' positions:
    /// `factum.streams/<count>`.
    pub fn topic(&self) -> String {
        format!("{STREAM_TOPIC_PREFIX}{}", self.count)
    }
}

impl Default for StreamPartitions {
    /// 16 partitions.
    fn default() -> Self {
        Self::new(16)
    }
}

/// What a worker asks of [`PartitionLeases::claim`].
#[derive(Debug, Clone, Copy)]
pub struct LeaseRequest<'a> {
    /// The projection version the leases are for.
    pub target: Target,
    /// The worker: unique among the live workers of the version (a host name and process
    /// id, a pod name).
    pub worker: &'a str,
    /// How many partitions the log is split into.
    pub partitions: u32,
    /// How long a lease lasts unless renewed; the worker renews three times as often.
    pub ttl: Duration,
}

/// Who holds which partitions of a projection version: leases that expire unless their
/// worker renews them. Implemented by `PostgresReadModel` (feature `postgres`).
pub trait PartitionLeases: Send + Sync + 'static {
    /// In one atomic step: records that `request.worker` is alive for `request.ttl`,
    /// renews the leases it holds, gives back those above its fair share (the partitions
    /// divided by the live workers, rounded up), and takes free or expired ones up to
    /// it. Returns the partitions it holds, ascending.
    fn claim(
        &self,
        request: &LeaseRequest<'_>,
    ) -> impl Future<Output = Result<Vec<u32>, ReadModelError>> + Send;

    /// Gives back every lease `worker` holds and forgets it: on a clean shutdown, the
    /// others take its partitions at their next claim rather than after the leases
    /// expire.
    fn release(
        &self,
        target: Target,
        worker: &str,
    ) -> impl Future<Output = Result<(), ReadModelError>> + Send;
}

/// What one [`ProjectionWorker::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WorkerStep {
    /// What applying the page did (`checkpoint`: the version's checkpoint after it).
    pub applied: Applied,
    /// How many partitions the worker holds.
    pub partitions: usize,
    /// Whether its partitions are caught up with the log (nothing more to read now).
    pub caught_up: bool,
}

/// One worker of a projection split across processes by [`StreamPartitions`]; made by
/// [`ProjectionRunner::worker`](super::ProjectionRunner::worker).
///
/// Run the same projection version with the same partition count in each process, each
/// worker under its own name; [`ProjectionWorker::run`] claims partitions, applies their
/// events page by page, follows the log when caught up, and gives its leases back when
/// told to stop. Do not run a single [`ProjectionRunner`](super::ProjectionRunner) on the
/// same version at the same time: it applies by the version's checkpoint alone, which
/// workers ahead of it have passed.
///
/// ```no_run
/// # #[cfg(feature = "postgres")]
/// # async fn worker<P>(projection: P) -> Result<(), Box<dyn std::error::Error>>
/// # where P: factum::projection::Projection<Tx = factum::projection::postgres::PostgresTx> {
/// use std::time::Duration;
/// use factum::projection::{ProjectionRunner, StreamPartitions};
/// use factum::projection::postgres::PostgresReadModel;
/// use factum::store::PostgresStore;
///
/// let url = std::env::var("DATABASE_URL")?;
/// let store = PostgresStore::builder(&url).connect().await?;
/// let read_models = PostgresReadModel::connect(&url).await?;
/// let name = format!("{}:{}", std::env::var("HOSTNAME")?, std::process::id());
/// let worker = ProjectionRunner::new(store)
///     .worker(projection, read_models.clone(), read_models, name)
///     .partitions(StreamPartitions::new(16))
///     .lease_ttl(Duration::from_secs(10));
/// // Until told to stop (say, on SIGTERM); then its leases go back to the others.
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// # drop(stop);
/// worker.run(async { let _ = stopped.await; }).await?;
/// # Ok(())
/// # }
/// ```
pub struct ProjectionWorker<S, P: Projection, L> {
    log: Log<S>,
    projector: Projector<P>,
    leases: L,
    name: String,
    partitions: StreamPartitions,
    topic: String,
    ttl: Duration,
    /// The partitions held, each with the position its events are applied up to.
    owned: BTreeMap<u32, u64>,
    claimed_at: Option<Instant>,
    checkpoint: u64,
    activated: bool,
}

impl<S: EventStore + 'static, P: Projection, L: PartitionLeases> ProjectionWorker<S, P, L> {
    pub(super) fn new(log: Log<S>, mut projector: Projector<P>, leases: L, name: String) -> Self {
        let partitions = StreamPartitions::default();
        let ttl = Duration::from_secs(10);
        projector.partitioning = Some(partitions.topic());
        projector
            .read_model_mut()
            .end_stalled_transactions_after(ttl);
        Self {
            log,
            projector,
            leases,
            name,
            topic: partitions.topic(),
            partitions,
            ttl,
            owned: BTreeMap::new(),
            claimed_at: None,
            checkpoint: 0,
            activated: false,
        }
    }

    /// Splits the log into `partitions` (16 by default); every worker of the version must
    /// use the same.
    pub fn partitions(mut self, partitions: StreamPartitions) -> Self {
        self.partitions = partitions;
        self.topic = partitions.topic();
        self.projector.partitioning = Some(self.topic.clone());
        self
    }

    /// How long a lease lasts unless renewed (10 s by default, at least 30 ms): a dead
    /// worker's partitions are taken over within about this long plus a third of it. A
    /// transaction of the worker whose process stalls is ended by the database after as
    /// long ([`ReadModel::end_stalled_transactions_after`]), so its locks hold no one up
    /// longer than its leases.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.max(Duration::from_millis(30));
        self.projector
            .read_model_mut()
            .end_stalled_transactions_after(self.ttl);
        self
    }

    /// The worker's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The partitions it held after its last claim, ascending.
    pub fn owned(&self) -> Vec<u32> {
        self.owned.keys().copied().collect()
    }

    /// The projector it applies with.
    pub fn projector(&self) -> &Projector<P> {
        &self.projector
    }

    fn target(&self) -> Target {
        self.projector.target()
    }

    fn read_model_error(&self) -> impl Fn(ReadModelError) -> RunnerError + use<S, P, L> {
        |source| RunnerError::ReadModel {
            projection: P::NAME,
            source,
        }
    }

    /// Renews, gives back and takes leases; reads where each newly held partition stands.
    async fn claim(&mut self) -> Result<(), RunnerError> {
        let request = LeaseRequest {
            target: self.target(),
            worker: &self.name,
            partitions: self.partitions.count(),
            ttl: self.ttl,
        };
        let held = self
            .leases
            .claim(&request)
            .await
            .map_err(self.read_model_error())?;
        self.claimed_at = Some(Instant::now());
        let taken: Vec<u32> = held
            .iter()
            .copied()
            .filter(|partition| !self.owned.contains_key(partition))
            .collect();
        self.owned.retain(|partition, _| held.contains(partition));
        if taken.is_empty() {
            return Ok(());
        }
        let read_model = self.projector.read_model();
        let target = self.target();
        let floor = read_model
            .checkpoint(target)
            .await
            .map_err(self.read_model_error())?
            .unwrap_or(0);
        let stored = read_model
            .partition_offsets(target)
            .await
            .map_err(self.read_model_error())?;
        // Refused here already, before anything is read; the check that counts is the
        // one under the version's lock when applying.
        if let Some(refused) = self.projector.other_feed(&stored, "") {
            return Err(refused);
        }
        for partition in taken {
            let position = stored
                .iter()
                .find(|offset| offset.topic == self.topic && offset.partition as u32 == partition)
                .map_or(floor, |offset| offset.position.max(floor));
            tracing::debug!(
                projection = P::NAME, version = P::VERSION, worker = %self.name, partition, position,
                "took a partition"
            );
            self.owned.insert(partition, position);
        }
        Ok(())
    }

    fn claim_due(&self) -> bool {
        self.claimed_at
            .is_none_or(|claimed| claimed.elapsed() >= self.ttl / 3)
    }

    /// Claims leases when due, then reads one page of the log after the lowest position
    /// of the partitions held, applies their events and records how far they got.
    pub async fn step(&mut self) -> Result<WorkerStep, RunnerError> {
        let result = self.step_once().await;
        if let Err(
            RunnerError::CheckpointMovedBack { .. } | RunnerError::PartitionMovedBack { .. },
        ) = &result
        {
            // The read model was reset under this worker: read every position again.
            self.owned.clear();
            self.claimed_at = None;
            self.activated = false;
        }
        result
    }

    async fn step_once(&mut self) -> Result<WorkerStep, RunnerError> {
        if self.claim_due() {
            self.claim().await?;
        }
        let Some(from) = self.owned.values().copied().min() else {
            return Ok(WorkerStep {
                caught_up: true,
                ..WorkerStep::default()
            });
        };
        let page = self
            .log
            .next_page(from, P::EVENTS)
            .await
            .map_err(|source| RunnerError::Store {
                projection: P::NAME,
                source,
            })?;
        let Some(page) = page else {
            self.activate_if_caught_up(from).await?;
            return Ok(WorkerStep {
                applied: Applied {
                    checkpoint: self.checkpoint,
                    ..Applied::default()
                },
                partitions: self.owned.len(),
                caught_up: true,
            });
        };
        let records: Vec<PartitionedRecord> = page
            .events
            .into_iter()
            .filter_map(|event| self.record_of(event))
            .collect();
        let mut applied = self.projector.apply_partitioned(&records).await?;
        let owned: Vec<i32> = self
            .owned
            .keys()
            .map(|&partition| partition as i32)
            .collect();
        self.checkpoint = self
            .projector
            .advance_partitions(
                &self.topic,
                &owned,
                page.scanned_to,
                self.partitions.count(),
            )
            .await?;
        for position in self.owned.values_mut() {
            *position = (*position).max(page.scanned_to);
        }
        applied.checkpoint = self.checkpoint;
        if !page.full {
            self.activate_if_caught_up(page.scanned_to).await?;
        }
        Ok(WorkerStep {
            applied,
            partitions: self.owned.len(),
            caught_up: !page.full,
        })
    }

    /// `event` as a record of its partition, if this worker holds the partition and has
    /// not applied the event yet.
    fn record_of(&self, event: RecordedEvent) -> Option<PartitionedRecord> {
        let partition = self.partitions.of(&event.stream_id);
        let applied_to = *self.owned.get(&partition)?;
        (event.position > applied_to).then(|| PartitionedRecord {
            topic: self.topic.clone(),
            partition: partition as i32,
            offset: i64::try_from(event.position).unwrap_or(i64::MAX),
            event: Some(event),
        })
    }

    /// Once the version's checkpoint has reached `read_to` (every worker's partitions
    /// are as far as this one read), the first version to get there becomes the one
    /// readers see, as with [`ProjectionRunner::catch_up`](super::ProjectionRunner::catch_up).
    async fn activate_if_caught_up(&mut self, read_to: u64) -> Result<(), RunnerError> {
        if self.activated || self.checkpoint < read_to {
            return Ok(());
        }
        let versions = self
            .projector
            .read_model()
            .versions(P::NAME)
            .await
            .map_err(self.read_model_error())?;
        activate_if_none_active::<P>(self.target(), self.projector.read_model(), &versions).await?;
        self.activated = true;
        Ok(())
    }

    /// Runs until `shutdown` completes: steps while there is work, waits for new events
    /// (or the next claim) when caught up, retries what failed transiently (outages:
    /// [`Retry`](super::Retry) backoff from the runner's settings), then gives the leases
    /// back. Returns the first error that is not transient, after giving the leases back.
    pub async fn run(
        mut self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), RunnerError> {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut failures = 0;
        let outcome = loop {
            let pause = match self.step().await {
                Ok(step) if step.caught_up => {
                    failures = 0;
                    Pause::ForEvents(self.until_next_claim())
                }
                Ok(_) => {
                    failures = 0;
                    Pause::None
                }
                Err(error) if error.is_transient() => {
                    failures += 1;
                    let backoff = self.projector.retry.backoff(failures);
                    tracing::warn!(
                        projection = P::NAME, version = P::VERSION, worker = %self.name,
                        error = %crate::error::Report(&error), ?backoff,
                        "worker step failed; trying again"
                    );
                    Pause::Sleep(backoff)
                }
                Err(error) => break Err(error),
            };
            tokio::select! {
                biased;
                () = &mut shutdown => break Ok(()),
                () = self.pause(pause) => {}
            }
        };
        let released = self
            .leases
            .release(self.target(), &self.name)
            .await
            .map_err(self.read_model_error());
        outcome.and(released)
    }

    fn until_next_claim(&self) -> Duration {
        let period = self.ttl / 3;
        self.claimed_at
            .map_or(Duration::ZERO, |claimed| {
                period.saturating_sub(claimed.elapsed())
            })
            .min(self.log.idle_wait)
    }

    async fn pause(&self, pause: Pause) {
        match pause {
            Pause::None => {}
            Pause::Sleep(duration) => tokio::time::sleep(duration).await,
            // Holding no partition, only the next claim can bring work.
            Pause::ForEvents(duration) if self.owned.is_empty() => {
                tokio::time::sleep(duration).await;
            }
            Pause::ForEvents(duration) => {
                let after = self.owned.values().copied().min().unwrap_or(0);
                // A failed wait only ends it early: the next step reports the error.
                if self
                    .log
                    .store
                    .wait_for_events(after, duration)
                    .await
                    .is_err()
                {
                    tokio::time::sleep(duration).await;
                }
            }
        }
    }
}

/// What [`ProjectionWorker::run`] does between steps.
enum Pause {
    /// Nothing: more to read.
    None,
    /// Caught up: wait this long at most for new events.
    ForEvents(Duration),
    /// A step failed: back off this long.
    Sleep(Duration),
}

#[cfg(test)]
mod tests {
    use super::StreamPartitions;

    /// The split is stored in read models: it must never change. The expected values are
    /// the first eight bytes of SHA-256, big-endian, modulo the count, computed apart.
    #[test]
    fn a_stream_falls_into_the_same_partition_in_every_release() {
        let sixteen = StreamPartitions::new(16);
        assert_eq!(sixteen.of("order-1"), 12);
        assert_eq!(sixteen.of("ticker-0"), 5);
        assert_eq!(sixteen.of(""), 4);
        assert_eq!(StreamPartitions::new(12).of("order-1"), 8);
        assert_eq!(
            StreamPartitions::new(0).of("order-1"),
            0,
            "0 means one partition"
        );
        assert_eq!(sixteen.topic(), "factum.streams/16");
    }

    #[test]
    fn streams_spread_over_the_partitions() {
        let partitions = StreamPartitions::new(8);
        let mut counts = [0u32; 8];
        for stream in 0..8_000 {
            counts[partitions.of(&format!("stream-{stream}")) as usize] += 1;
        }
        // 1,000 expected each; a hash this far off would be broken.
        assert!(
            counts.iter().all(|&count| (800..1_200).contains(&count)),
            "{counts:?}"
        );
    }
}
