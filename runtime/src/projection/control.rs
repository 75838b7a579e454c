//! Steering projections from outside their code: what the operator's console and an
//! application's operator commands call to see a projection's versions and parked events,
//! replay one, rebuild it or check it against its events, without naming the projection's
//! type.

use std::future::Future;
use std::pin::Pin;

use super::{
    ConsistencyReport, ParkedEvent, Projection, ProjectionRunner, ReadModel, ReadModelOf,
    RebuildProgress, Target, VersionStatus, check_consistency,
};
use crate::error::BoxError;
use crate::store::EventStore;

/// A boxed future, so that [`ProjectionControl`] is a trait object.
pub type Steering<'a, T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send + 'a>>;

/// A projection as operators see and steer it. [`ManagedProjection`] implements it for
/// any projection in this process; implement it by hand to steer one otherwise.
pub trait ProjectionControl: Send + Sync + 'static {
    /// The projection's name.
    fn name(&self) -> &'static str;

    /// Its versions and the events its current version parked.
    fn status(&self) -> Steering<'_, ProjectionStatus>;

    /// Replays the parked event at `position` through the handler: applied, it leaves
    /// the dead letters.
    fn replay_parked(&self, position: u64) -> Steering<'_, ()>;

    /// Resets the current version and replays the whole log into it, reporting to
    /// `progress` after every batch; returns how many events the rebuilt version applied
    /// (a runner of the same version beside it notices the reset and applies some of
    /// them itself: they count too).
    fn rebuild<'a>(
        &'a self,
        progress: &'a mut (dyn FnMut(&RebuildProgress) + Send),
    ) -> Steering<'a, u64>;

    /// The consistency checker: rebuilds the current version into a shadow read model and
    /// compares it with the live one, row by row (see
    /// [`check_consistency`](super::check_consistency)).
    fn check(&self) -> Steering<'_, ConsistencyReport>;
}

/// What [`ProjectionControl::status`] reports.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectionStatus {
    /// The version the code builds.
    pub current_version: u32,
    /// Every version the read model records.
    pub versions: Vec<VersionStatus>,
    /// The current version's parked events, oldest first.
    pub parked: Vec<ParkedEvent>,
}

/// A projection steered in this process: replays and rebuilds run here, on a fresh
/// projection from `make`, through `runner` (so with its retry and poison settings). A
/// runner spawned beside it goes on from the checkpoint a rebuild leaves.
pub struct ManagedProjection<S, P: Projection, F> {
    runner: ProjectionRunner<S>,
    make: F,
    read_model: ReadModelOf<P>,
}

impl<S, P, F> ManagedProjection<S, P, F>
where
    S: EventStore + Clone + Send + Sync + 'static,
    P: Projection,
    F: Fn() -> P + Send + Sync + 'static,
{
    /// The projection `make` builds, in `read_model`, run by `runner`.
    pub fn new(runner: ProjectionRunner<S>, make: F, read_model: ReadModelOf<P>) -> Self {
        Self {
            runner,
            make,
            read_model,
        }
    }
}

impl<S, P, F> ProjectionControl for ManagedProjection<S, P, F>
where
    S: EventStore + Clone + Send + Sync + 'static,
    P: Projection,
    F: Fn() -> P + Send + Sync + 'static,
{
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn status(&self) -> Steering<'_, ProjectionStatus> {
        Box::pin(async move {
            let versions = self.read_model.versions(P::NAME).await?;
            let parked = self
                .read_model
                .parked(Target {
                    name: P::NAME,
                    version: P::VERSION,
                })
                .await?;
            Ok(ProjectionStatus {
                current_version: P::VERSION,
                versions,
                parked,
            })
        })
    }

    fn replay_parked(&self, position: u64) -> Steering<'_, ()> {
        Box::pin(async move {
            let mut projector = self
                .runner
                .projector((self.make)(), self.read_model.clone());
            projector.replay_parked(position).await?;
            Ok(())
        })
    }

    fn rebuild<'a>(
        &'a self,
        progress: &'a mut (dyn FnMut(&RebuildProgress) + Send),
    ) -> Steering<'a, u64> {
        Box::pin(async move {
            let applied = self
                .runner
                .rebuild((self.make)(), self.read_model.clone(), progress)
                .await?;
            // After the reset, what the rebuild skipped a runner beside it had applied.
            Ok(applied.applied + applied.skipped)
        })
    }

    fn check(&self) -> Steering<'_, ConsistencyReport> {
        Box::pin(async move {
            Ok(check_consistency(&self.runner, (self.make)(), &self.read_model).await?)
        })
    }
}
