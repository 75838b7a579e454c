//! Rebuilds started from the console: each runs as a task of its own, not inside the
//! request that started it (a rebuild replays the whole log and may take hours), and
//! reports its progress here, which the projections page shows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

use crate::projection::{ProjectionControl, RebuildProgress};

/// One projection's rebuild, as the projections page shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Rebuild {
    /// Who started it (`kind:id`).
    by: String,
    started_at: chrono::DateTime<chrono::Utc>,
    /// Where the replay is.
    position: u64,
    /// The head of the log it replays to.
    head: u64,
    /// Events applied so far.
    applied: u64,
    /// `running`, `rebuilt` or `failed`.
    state: &'static str,
    finished_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Why it failed.
    error: Option<String>,
}

impl Rebuild {
    fn running(&self) -> bool {
        self.state == "running"
    }
}

/// The console's rebuilds, the last one of each projection.
#[derive(Debug, Clone, Default)]
pub(super) struct Rebuilds {
    jobs: Arc<Mutex<HashMap<&'static str, Rebuild>>>,
}

impl Rebuilds {
    /// The last rebuild of `name`, if any.
    pub(super) fn of(&self, name: &str) -> Option<Rebuild> {
        self.lock().get(name).cloned()
    }

    /// Starts rebuilding `projection` on a task of its own, for `by`; `None` (and nothing
    /// started) while a rebuild of it runs already.
    pub(super) fn start(
        &self,
        projection: Arc<dyn ProjectionControl>,
        by: String,
    ) -> Option<Rebuild> {
        let name = projection.name();
        let job = {
            let mut jobs = self.lock();
            if jobs.get(name).is_some_and(Rebuild::running) {
                return None;
            }
            let job = Rebuild {
                by,
                started_at: chrono::Utc::now(),
                position: 0,
                head: 0,
                applied: 0,
                state: "running",
                finished_at: None,
                error: None,
            };
            jobs.insert(name, job.clone());
            job
        };
        let rebuilds = self.clone();
        tokio::spawn(async move {
            let mut report = |progress: &RebuildProgress| {
                if let Some(job) = rebuilds.lock().get_mut(name) {
                    job.position = progress.position;
                    job.head = progress.head;
                    job.applied = progress.applied;
                }
            };
            let outcome = projection.rebuild(&mut report).await;
            let mut jobs = rebuilds.lock();
            let Some(job) = jobs.get_mut(name) else {
                return;
            };
            job.finished_at = Some(chrono::Utc::now());
            match outcome {
                Ok(applied) => {
                    job.applied = applied;
                    job.state = "rebuilt";
                    tracing::info!(target: "factum::http", projection = name, applied, "rebuilt from the console");
                }
                Err(error) => {
                    let error = crate::error::Report(&*error).to_string();
                    tracing::warn!(target: "factum::http", projection = name, %error, "a rebuild from the console failed");
                    job.error = Some(error);
                    job.state = "failed";
                }
            }
        });
        Some(job)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<&'static str, Rebuild>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
