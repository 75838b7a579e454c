//! The query side: typed questions answered from a projection's read model, each answer
//! with how fresh it is, and reads that wait for a writer's own command.
//!
//! A [`Query`] names a question (`GetTaskById`, `FindTasksByCoordinator`), the projection
//! whose read model answers it and its answer type; not-found is part of the answer
//! (`Option<Task>`), never an error string. A [`QueryRunner`] asks it:
//!
//! - every [`Answer`] carries its [`Freshness`]: the position the read model has applied,
//!   its lag behind the head of the log (in events and in seconds since the first event it
//!   has not applied), and whether a version of the projection is being rebuilt;
//! - [`Consistency::AtLeast`] asks for a model that has applied a position — the
//!   [`position`](crate::repository::Executed::position) of the caller's own command — and
//!   waits for it up to a bound (a projection whose first version is not readable yet is
//!   waited for too); if the model is still behind then, the answer comes anyway,
//!   flagged [`Freshness::stale`], for the caller to decide;
//! - [`QueryRunner::wait_for`] waits for a position and is an error
//!   ([`QueryError::Timeout`]) if the bound passes first.
//!
//! The freshness is read before the question is answered, so an answer is at least as
//! fresh as it says. Listings page with a [`PageRequest`] and answer a [`Page`] with the
//! total.

use std::future::Future;
use std::time::Duration;

use crate::projection::{ProjectionRunner, ReadModel, ReadModelError, RunnerError, VersionState};
use crate::store::EventStore;

/// A question answered from the read model `M` of one projection.
pub trait Query<M>: Send {
    /// The question's name, for logs and errors (a question: `GetTaskById`).
    const NAME: &'static str;
    /// The projection whose read model answers it.
    const PROJECTION: &'static str;
    /// The answer; not-found is part of it (`Option<T>`, an empty [`Page`]).
    type Answer: Send;

    /// Answers from `read_model` (the projection's active version).
    fn answer(
        self,
        read_model: &M,
    ) -> impl Future<Output = Result<Self::Answer, QueryError>> + Send;
}

/// How fresh an answer must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// Whatever the read model holds now.
    #[default]
    Any,
    /// A read model that has applied `position`: waits for it up to `wait`, then answers
    /// flagged [`Freshness::stale`] if it is still behind.
    AtLeast {
        /// The global position the answer must include (a command's
        /// [`Executed::position`](crate::repository::Executed::position)).
        position: u64,
        /// How long to wait for it.
        wait: Duration,
    },
}

impl Consistency {
    /// At least `position`, waiting up to `wait`.
    pub fn at_least(position: u64, wait: Duration) -> Self {
        Self::AtLeast { position, wait }
    }
}

/// How fresh a read model was when it answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Freshness {
    /// The projection.
    pub projection: &'static str,
    /// The version readers see.
    pub version: u32,
    /// The global position it has applied every event up to.
    pub position: u64,
    /// The head of the log.
    pub head: u64,
    /// Events it has not applied yet.
    pub lag_events: u64,
    /// Seconds since the first event it has not applied was recorded (0 when caught up).
    pub lag_seconds: f64,
    /// Whether a version of the projection is being built (a rebuild, or a new version
    /// beside the active one).
    pub rebuilding: bool,
    /// Whether it had not applied the position the caller asked for
    /// ([`Consistency::AtLeast`]) when it answered.
    pub stale: bool,
}

/// An answer and how fresh it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer<T> {
    /// The answer.
    pub value: T,
    /// How fresh the read model was.
    pub freshness: Freshness,
}

/// The largest page a [`PageRequest`] asks for.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// The page size of a [`PageRequest`] that does not say.
pub const DEFAULT_PAGE_SIZE: u32 = 50;

/// Which page of a listing: pages count from 1.
///
/// Deserialises from `{"page": 2, "size": 10}` — each member optional (page 1,
/// [`DEFAULT_PAGE_SIZE`]), numbers also as text, so a query string's `page=2&size=10`
/// reads too (flattened into a query's fields with `#[serde(flatten)]`) — and refuses a
/// page 0, a size 0 or one over [`MAX_PAGE_SIZE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PageRequest {
    page: u32,
    size: u32,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            page: 1,
            size: DEFAULT_PAGE_SIZE,
        }
    }
}

impl schemars::JsonSchema for PageRequest {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PageRequest".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Which page of a listing.",
            "type": "object",
            "properties": {
                "page": {
                    "description": "The page, from 1.",
                    "type": "integer", "minimum": 1, "default": 1
                },
                "size": {
                    "description": "Items per page.",
                    "type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE,
                    "default": DEFAULT_PAGE_SIZE
                }
            }
        })
    }
}

impl<'de> serde::Deserialize<'de> for PageRequest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// A count, as a number or as text.
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Count {
            Number(u32),
            Text(String),
        }

        #[derive(serde::Deserialize)]
        struct Raw {
            page: Option<Count>,
            size: Option<Count>,
        }

        fn count<E: serde::de::Error>(
            name: &str,
            count: Option<Count>,
            default: u32,
        ) -> Result<u32, E> {
            match count {
                None => Ok(default),
                Some(Count::Number(number)) => Ok(number),
                Some(Count::Text(text)) => text.trim().parse().map_err(|_| {
                    E::custom(format_args!(
                        "`{name}` must be a whole number from 1, not `{}`",
                        text.chars().take(32).collect::<String>()
                    ))
                }),
            }
        }

        let raw = Raw::deserialize(deserializer)?;
        let page = count("page", raw.page, 1)?;
        let size = count("size", raw.size, DEFAULT_PAGE_SIZE)?;
        Self::new(page, size).map_err(serde::de::Error::custom)
    }
}

impl PageRequest {
    /// Page `page` (from 1) of `size` items (1 to [`MAX_PAGE_SIZE`]).
    pub fn new(page: u32, size: u32) -> Result<Self, QueryError> {
        if page == 0 || size == 0 || size > MAX_PAGE_SIZE {
            return Err(QueryError::InvalidPage { page, size });
        }
        Ok(Self { page, size })
    }

    /// The first page of `size` items.
    pub fn first(size: u32) -> Result<Self, QueryError> {
        Self::new(1, size)
    }

    /// The page number, from 1.
    pub fn page(&self) -> u32 {
        self.page
    }

    /// Items per page.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// How many items come before this page (for `OFFSET`).
    pub fn offset(&self) -> u64 {
        u64::from(self.page - 1) * u64::from(self.size)
    }

    /// The page's items of a listing of `total`, as a [`Page`].
    pub fn page_of<T>(&self, items: Vec<T>, total: u64) -> Page<T> {
        Page {
            items,
            page: self.page,
            size: self.size,
            total,
        }
    }
}

/// One page of a listing, with the listing's total.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// The page number, from 1.
    pub page: u32,
    /// Items per page.
    pub size: u32,
    /// Items in the whole listing.
    pub total: u64,
}

impl<T> Page<T> {
    /// How many pages the listing has.
    pub fn pages(&self) -> u64 {
        self.total.div_ceil(u64::from(self.size))
    }

    /// Whether a page follows this one.
    pub fn has_next(&self) -> bool {
        u64::from(self.page) < self.pages()
    }
}

/// Why a query was not answered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// No version of the projection has been built yet: nothing can answer.
    #[error(
        "query `{query}`: projection `{projection}` has no version readers can see yet (run it first)"
    )]
    NotReady {
        /// The query.
        query: &'static str,
        /// The projection.
        projection: &'static str,
    },
    /// The read model did not apply `position` within the wait.
    #[error(
        "projection `{projection}` had applied position {reached}, not {position}, after waiting {waited:?}"
    )]
    Timeout {
        /// The projection.
        projection: &'static str,
        /// The position waited for.
        position: u64,
        /// The position it had applied.
        reached: u64,
        /// How long it waited.
        waited: Duration,
    },
    /// A page out of range.
    #[error("page {page} of {size} items: pages count from 1 and hold 1 to {MAX_PAGE_SIZE} items")]
    InvalidPage {
        /// The page asked for.
        page: u32,
        /// The size asked for.
        size: u32,
    },
    /// The read model failed.
    #[error("reading the read model failed")]
    ReadModel(#[from] ReadModelError),
    /// The store failed (reading its head for the lag).
    #[error("reading the log's head failed")]
    Runner(#[from] RunnerError),
    /// The query's own reading failed (a SQL error, say).
    #[error("query `{query}` failed")]
    Failed {
        /// The query.
        query: &'static str,
        /// Why.
        #[source]
        source: crate::error::BoxError,
    },
}

impl QueryError {
    /// The query `query`'s own failure (a SQL error, say).
    pub fn failed(query: &'static str, source: impl Into<crate::error::BoxError>) -> Self {
        Self::Failed {
            query,
            source: source.into(),
        }
    }
}

/// How often a wait looks at the read model's checkpoint again.
const POLL: Duration = Duration::from_millis(10);

/// Asks queries of read models `M` kept from the log of store `S`; see the
/// [module docs](self).
pub struct QueryRunner<S, M> {
    runner: ProjectionRunner<S>,
    read_model: M,
}

impl<S, M> std::fmt::Debug for QueryRunner<S, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryRunner").finish_non_exhaustive()
    }
}

impl<S: EventStore + 'static, M: ReadModel> QueryRunner<S, M> {
    /// Queries of the read models in `read_model`, kept from `store`'s log.
    pub fn new(store: S, read_model: M) -> Self {
        Self {
            runner: ProjectionRunner::new(store),
            read_model,
        }
    }

    /// The read models.
    pub fn read_model(&self) -> &M {
        &self.read_model
    }

    /// Asks `query` with `consistency`.
    pub async fn ask<Q: Query<M>>(
        &self,
        query: Q,
        consistency: Consistency,
    ) -> Result<Answer<Q::Answer>, QueryError> {
        let freshness = match consistency {
            Consistency::Any => self.freshness_of(Q::NAME, Q::PROJECTION, None).await?,
            Consistency::AtLeast { position, wait } => {
                self.waited(Q::NAME, Q::PROJECTION, position, wait).await?
            }
        };
        let value = query.answer(&self.read_model).await?;
        Ok(Answer { value, freshness })
    }

    /// How fresh `projection`'s read model is now.
    pub async fn freshness(&self, projection: &'static str) -> Result<Freshness, QueryError> {
        self.freshness_of("freshness", projection, None).await
    }

    /// Waits until `projection`'s read model has applied `position`, up to `wait`.
    pub async fn wait_for(
        &self,
        projection: &'static str,
        position: u64,
        wait: Duration,
    ) -> Result<Freshness, QueryError> {
        let freshness = self.waited("wait_for", projection, position, wait).await?;
        if freshness.stale {
            return Err(QueryError::Timeout {
                projection,
                position,
                reached: freshness.position,
                waited: wait,
            });
        }
        Ok(freshness)
    }

    /// The freshness once `position` is applied or `wait` has passed (then `stale`).
    async fn waited(
        &self,
        query: &'static str,
        projection: &'static str,
        position: u64,
        wait: Duration,
    ) -> Result<Freshness, QueryError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let past_deadline = tokio::time::Instant::now() >= deadline;
            match self.freshness_of(query, projection, Some(position)).await {
                Ok(freshness) if !freshness.stale || past_deadline => return Ok(freshness),
                // A projection started a moment ago has no readable version yet: waiting
                // for a position covers waiting for that, within the same bound.
                Err(QueryError::NotReady { .. }) if !past_deadline => {}
                Err(error) => return Err(error),
                Ok(_) => {}
            }
            tokio::time::sleep(
                POLL.min(deadline.saturating_duration_since(tokio::time::Instant::now())),
            )
            .await;
        }
    }

    async fn freshness_of(
        &self,
        query: &'static str,
        projection: &'static str,
        at_least: Option<u64>,
    ) -> Result<Freshness, QueryError> {
        let versions = self.read_model.versions(projection).await?;
        let active = versions
            .iter()
            .find(|status| status.state == VersionState::Active)
            .ok_or(QueryError::NotReady { query, projection })?;
        let lag = self.runner.lag_at(projection, active.checkpoint).await?;
        Ok(Freshness {
            projection,
            version: active.version,
            position: active.checkpoint,
            head: lag.head,
            lag_events: lag.events,
            lag_seconds: lag.seconds,
            rebuilding: versions
                .iter()
                .any(|status| status.state == VersionState::Building),
            stale: at_least.is_some_and(|position| active.checkpoint < position),
        })
    }
}
