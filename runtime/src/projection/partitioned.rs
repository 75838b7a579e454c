//! Applying events read from a partitioned log to one projection version: each
//! partition's offset and last applied position are committed in the transaction of the
//! rows its records produced, and an event at or before that position is skipped. Several
//! consumers may feed one version at once (a Kafka consumer group, or the workers of
//! [`ProjectionWorker`](super::ProjectionWorker), whose partitions split the log by stream
//! id); the version's write lock orders their transactions, and the offsets read under it
//! decide what each one applies.

use std::collections::BTreeMap;

use tracing::Instrument as _;

use crate::envelope::RecordedEvent;

use super::Projection;
use super::error::{ProjectionError, RunnerError};
use super::projector::{
    Applied, OnPoison, Projector, RunOutcome, count_processed, poisoned, still_open,
};
use super::read_model::{ParkedEvent, PartitionOffset, ReadModel, ReadModelTx};

/// A record of a partitioned log, as a consumer received it.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionedRecord {
    /// The topic.
    pub topic: String,
    /// The partition of the topic.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// The event it carries; `None` for a record that carries none (a foreign record the
    /// consumer reported), whose offset is committed all the same so it never blocks the
    /// partition.
    pub event: Option<RecordedEvent>,
}

type Partition = (String, i32);

/// The prefix of the topics under which [`ProjectionWorker`](super::ProjectionWorker)s keep
/// their partitions' positions (`factum.streams/<count>`): a Kafka topic name cannot hold a
/// `/`, so no bus topic takes it.
pub(super) const STREAM_TOPIC_PREFIX: &str = "factum.streams/";

impl<P: Projection> Projector<P> {
    /// Applies `records` (in the order each partition delivered them) and commits each
    /// partition's offset ([`PartitionOffset`]) in the same transaction as the rows they
    /// produced. The version's global checkpoint is left as it is.
    ///
    /// Skipped: an event at or before the position last applied from its partition — a
    /// redelivery, one another consumer of the group applied first, or a copy an outbox
    /// published again after a restart. Positions decide, not offsets, so a partition
    /// whose offsets start again (its topic recreated, a broker that lost its log) is
    /// read correctly. Events the projection does not handle and foreign records only
    /// move the offset. A failing
    /// handler is retried, then the event is parked or the projector stops ([`OnPoison`]),
    /// as [`apply`](Projector::apply) does.
    ///
    /// A partition whose stored position is behind what this projector committed means
    /// the read model was reset under it: nothing is written and
    /// [`RunnerError::PartitionMovedBack`] tells the consumer to read on from the stored
    /// offsets.
    pub async fn apply_partitioned(
        &mut self,
        records: &[PartitionedRecord],
    ) -> Result<Applied, RunnerError> {
        let mut outcome = Applied::default();
        // As in `apply`: a failure at index i commits the records before it, then the
        // failing one gets its retries alone.
        let mut start = 0;
        let mut limit = records.len();
        let mut failure: Option<(usize, ProjectionError)> = None;
        loop {
            if limit > start {
                match self.run_partitioned(&records[start..limit]).await? {
                    RunOutcome::Committed(done) => outcome.add(done),
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
                    outcome.add(self.retry_partitioned_alone(&records[index], error).await?);
                    start = index + 1;
                    limit = records.len();
                }
            }
        }
    }

    /// Begins a transaction and reads the partition offsets under its lock, refusing
    /// offsets that moved back.
    async fn begin_partitioned(
        &mut self,
    ) -> Result<(P::Tx, BTreeMap<Partition, PartitionOffset>), RunnerError> {
        let mut tx = self.begin().await?;
        let stored = match self.read_model().partition_offsets_in(&mut tx).await {
            Ok(stored) => stored,
            Err(error) => {
                let _ = self.read_model().rollback(tx).await;
                return Err(self.read_model_error()(error));
            }
        };
        // One version is fed one way: by a bus's topics, or by workers with one count of
        // stream partitions. Checked under the version's lock, so two ways can never both
        // commit (each would apply every event once more).
        if let Some(refused) = self.other_feed(&stored, "the topics of a bus") {
            self.read_model()
                .rollback(tx)
                .await
                .map_err(self.read_model_error())?;
            return Err(refused);
        }
        let stored: BTreeMap<Partition, PartitionOffset> = stored
            .into_iter()
            .map(|offset| ((offset.topic.clone(), offset.partition), offset))
            .collect();
        let moved_back = self.known_positions.iter().find_map(|(key, known)| {
            let now = stored.get(key).map_or(0, |offset| offset.position);
            (now < *known).then(|| (key.clone(), *known, now))
        });
        if let Some(((topic, partition), known, stored)) = moved_back {
            self.read_model()
                .rollback(tx)
                .await
                .map_err(self.read_model_error())?;
            self.known_positions.clear();
            return Err(RunnerError::PartitionMovedBack {
                projection: P::NAME,
                version: P::VERSION,
                topic,
                partition,
                known,
                stored,
            });
        }
        Ok((tx, stored))
    }

    /// The refusal when `stored` holds positions of a feed other than this projector's:
    /// for a worker's projector, any topic but its `factum.streams/<count>`; for any other
    /// (a bus's consumer, or a single runner: `feeder` says which), a worker's topic.
    pub(super) fn other_feed(
        &self,
        stored: &[PartitionOffset],
        feeder: &str,
    ) -> Option<RunnerError> {
        let foreign = stored.iter().find(|offset| match &self.partitioning {
            Some(topic) => offset.topic != *topic,
            None => offset.topic.starts_with(STREAM_TOPIC_PREFIX),
        })?;
        Some(RunnerError::FedOtherwise {
            projection: P::NAME,
            version: P::VERSION,
            found: foreign.topic.clone(),
            expected: self
                .partitioning
                .clone()
                .unwrap_or_else(|| feeder.to_owned()),
        })
    }

    /// Stores the offsets of `touched` partitions and commits, leaving the checkpoint.
    async fn commit_partitioned(
        &mut self,
        tx: P::Tx,
        offsets: BTreeMap<Partition, PartitionOffset>,
        touched: &[Partition],
    ) -> Result<u64, RunnerError> {
        let checkpoint = tx.checkpoint().unwrap_or(0);
        self.commit_partitioned_at(tx, offsets, touched, checkpoint)
            .await
    }

    /// Stores the offsets of `touched` partitions and commits with `checkpoint`.
    async fn commit_partitioned_at(
        &mut self,
        mut tx: P::Tx,
        offsets: BTreeMap<Partition, PartitionOffset>,
        touched: &[Partition],
        checkpoint: u64,
    ) -> Result<u64, RunnerError> {
        let changed: Vec<PartitionOffset> = touched
            .iter()
            .filter_map(|key| offsets.get(key).cloned())
            .collect();
        let stored = self
            .read_model()
            .store_partition_offsets(&mut tx, &changed)
            .await;
        if let Err(error) = stored {
            let _ = self.read_model().rollback(tx).await;
            return Err(self.read_model_error()(error));
        }
        self.read_model()
            .commit(tx, checkpoint)
            .await
            .map_err(self.read_model_error())?;
        for offset in changed {
            self.known_positions
                .insert((offset.topic, offset.partition), offset.position);
        }
        Ok(checkpoint)
    }

    async fn run_partitioned(
        &mut self,
        records: &[PartitionedRecord],
    ) -> Result<RunOutcome, RunnerError> {
        let (mut tx, mut offsets) = self.begin_partitioned().await?;
        // A partition with no row yet starts at the version's checkpoint: what a runner
        // reading the whole log applied before partitions fed it.
        let floor = tx.checkpoint().unwrap_or(0);
        let mut touched: Vec<Partition> = Vec::new();
        let mut done = Applied::default();
        let mut applied_names = Vec::new();
        for (index, record) in records.iter().enumerate() {
            let key = (record.topic.clone(), record.partition);
            let offset = offsets
                .entry(key.clone())
                .or_insert_with(|| PartitionOffset {
                    topic: record.topic.clone(),
                    partition: record.partition,
                    next_offset: 0,
                    position: floor,
                });
            if !touched.contains(&key) {
                touched.push(key);
            }
            // Positions, not offsets, tell what was applied: a partition's offsets start
            // again at 0 when its topic is recreated or a broker lost its log.
            let Some(event) = record
                .event
                .as_ref()
                .filter(|event| event.position > offset.position)
            else {
                // A foreign record or an event applied before: stepped over. Its offset
                // never moves back (a member that lost the partition may commit late).
                offset.next_offset = offset.next_offset.max(record.offset + 1);
                if record.event.is_some() {
                    done.skipped += 1;
                }
                continue;
            };
            offset.position = event.position;
            offset.next_offset = record.offset + 1;
            if !P::EVENTS.contains(&event.name.as_str()) {
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
                self.read_model()
                    .rollback(tx)
                    .await
                    .map_err(self.read_model_error())?;
                return Ok(RunOutcome::Failed { index, error });
            }
            done.applied += 1;
            applied_names.push(event.name.as_str());
        }
        done.checkpoint = self.commit_partitioned(tx, offsets, &touched).await?;
        count_processed::<P>(applied_names.into_iter());
        Ok(RunOutcome::Committed(done))
    }

    async fn retry_partitioned_alone(
        &mut self,
        record: &PartitionedRecord,
        first_error: ProjectionError,
    ) -> Result<Applied, RunnerError> {
        let mut last_error = first_error;
        let mut attempts = 1;
        while attempts < self.retry.attempts() {
            tokio::time::sleep(self.retry.backoff(attempts)).await;
            attempts += 1;
            match self.run_partitioned(std::slice::from_ref(record)).await? {
                RunOutcome::Committed(done) => return Ok(done),
                RunOutcome::Failed { error, .. } => last_error = error,
            }
        }
        // Only an event's handler fails.
        let Some(event) = &record.event else {
            return Ok(Applied::default());
        };
        match self.on_poison {
            OnPoison::Stop => Err(poisoned(self.target(), event, attempts, last_error)),
            OnPoison::Park => {
                tracing::warn!(
                    projection = P::NAME, version = P::VERSION, event = %event.name, stream = %event.stream_id,
                    stream_version = event.stream_version, position = event.position,
                    topic = %record.topic, partition = record.partition, offset = record.offset, attempts,
                    error = %last_error, "parking an event its handler keeps failing on"
                );
                let parked = ParkedEvent {
                    event: event.clone(),
                    error: last_error.message(),
                    attempts,
                    parked_at: crate::envelope::now(),
                };
                self.park_partitioned(record, &parked).await
            }
        }
    }

    /// Parks `parked` and moves its partition's offset past `record`, in one transaction;
    /// skips it if the offset is already there.
    async fn park_partitioned(
        &mut self,
        record: &PartitionedRecord,
        parked: &ParkedEvent,
    ) -> Result<Applied, RunnerError> {
        let (mut tx, mut offsets) = self.begin_partitioned().await?;
        let key = (record.topic.clone(), record.partition);
        let done_to = offsets
            .get(&key)
            .map_or(tx.checkpoint().unwrap_or(0), |offset| offset.position);
        if parked.event.position <= done_to {
            self.read_model()
                .rollback(tx)
                .await
                .map_err(self.read_model_error())?;
            return Ok(Applied {
                skipped: 1,
                ..Applied::default()
            });
        }
        let parking = self.read_model().park(&mut tx, parked).await;
        if let Err(error) = parking {
            let _ = self.read_model().rollback(tx).await;
            return Err(self.read_model_error()(error));
        }
        offsets.insert(
            key.clone(),
            PartitionOffset {
                topic: record.topic.clone(),
                partition: record.partition,
                next_offset: record.offset + 1,
                position: parked.event.position,
            },
        );
        let checkpoint = self.commit_partitioned(tx, offsets, &[key]).await?;
        Ok(Applied {
            parked: 1,
            checkpoint,
            ..Applied::default()
        })
    }

    /// Records that every event of the stream partitions `owned` up to position `to` has
    /// been applied (the caller read the log that far and applied each of theirs), and
    /// moves the version's checkpoint to the lowest position of all `count` partitions
    /// once each has one: every event at or before it is applied, whichever worker
    /// applied it. Returns that checkpoint.
    ///
    /// For [`ProjectionWorker`](super::ProjectionWorker), whose projector is set to
    /// `topic` ([`Projector::partitioning`]).
    pub(super) async fn advance_partitions(
        &mut self,
        topic: &str,
        owned: &[i32],
        to: u64,
        count: u32,
    ) -> Result<u64, RunnerError> {
        let (tx, mut offsets) = self.begin_partitioned().await?;
        let floor = tx.checkpoint().unwrap_or(0);
        let mut touched = Vec::with_capacity(owned.len());
        for &partition in owned {
            let key = (topic.to_owned(), partition);
            let offset = offsets
                .entry(key.clone())
                .or_insert_with(|| PartitionOffset {
                    topic: topic.to_owned(),
                    partition,
                    next_offset: 0,
                    position: floor,
                });
            if offset.position < to {
                offset.position = to;
                offset.next_offset = offset.next_offset.max(to_offset(to));
                touched.push(key);
            }
        }
        // Every one of the `count` partitions has a position: the lowest bounds them all.
        let positions: Vec<u64> = offsets
            .values()
            .filter(|offset| offset.topic == topic && (0..count as i32).contains(&offset.partition))
            .map(|offset| offset.position)
            .collect();
        let lowest = (positions.len() == count as usize)
            .then(|| positions.into_iter().min())
            .flatten();
        let checkpoint = lowest.map_or(floor, |lowest| lowest.max(floor));
        if touched.is_empty() && checkpoint == floor {
            self.read_model()
                .rollback(tx)
                .await
                .map_err(self.read_model_error())?;
            return Ok(floor);
        }
        self.commit_partitioned_at(tx, offsets, &touched, checkpoint)
            .await
    }
}

/// The offset of the record after the one at `position`, for a stream partition, whose
/// offsets are positions.
pub(super) fn to_offset(position: u64) -> i64 {
    i64::try_from(position)
        .unwrap_or(i64::MAX)
        .saturating_add(1)
}
