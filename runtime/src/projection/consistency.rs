//! The consistency checker: a projection rebuilt from the log into a shadow read model
//! and its tables diffed against the live read model's, row by row.
//!
//! A live model can drift from what its events say: a handler changed without a new
//! version, a hand edit, a bug fixed since. Replaying the log is the definition of the
//! right answer, so the shadow is the reference. Both must be at the same checkpoint: run
//! it after the live model caught up, on a log no one appends to meanwhile (or again).
//!
//! The engine is generic; a read model takes part through [`ReadModel::shadow`],
//! [`ReadModel::contents`] and [`ReadModel::discard`] (SQLite's read models do).

use std::collections::BTreeMap;

use super::{Projection, ProjectionRunner, ReadModel, ReadModelError, ReadModelOf, RunnerError};
use super::{Target, VersionState};
use crate::store::EventStore;

/// A read model's tables as the checker compares them: each table (factum's own left out)
/// with its rows, each row one comparable text (SQLite: its values as SQL literals),
/// sorted.
pub type Contents = BTreeMap<String, Vec<String>>;

/// How many differing rows a table reports at most.
const SHOWN_PER_TABLE: usize = 5;

/// The verdict on one projection version's live read model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyReport {
    /// The projection.
    pub projection: &'static str,
    /// Its version.
    pub version: u32,
    /// The checkpoint both models are at.
    pub checkpoint: u64,
    /// The tables compared (factum's own left out).
    pub tables: usize,
    /// The rows the shadow holds in them.
    pub rows: u64,
    /// What differs; empty when the live model is what its events say.
    pub differences: Vec<Difference>,
}

impl ConsistencyReport {
    /// Whether the live model is what the log says it should be.
    pub fn is_consistent(&self) -> bool {
        self.differences.is_empty()
    }
}

impl std::fmt::Display for ConsistencyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} v{} at checkpoint {}: {} table(s), {} row(s) rebuilt: ",
            self.projection, self.version, self.checkpoint, self.tables, self.rows
        )?;
        if self.is_consistent() {
            f.write_str("consistent")
        } else {
            write!(f, "{} difference(s)", self.differences.len())
        }
    }
}

/// One difference between the live and the rebuilt read model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// A table only one of them has.
    Table {
        /// The table.
        table: String,
        /// Whether the live model has it (else only the rebuilt one does).
        in_live: bool,
    },
    /// A row only one of them has (a changed row is one of each).
    Row {
        /// The table.
        table: String,
        /// The row's values, as SQLite literals.
        row: String,
        /// Whether the live model has it (else only the rebuilt one does).
        in_live: bool,
    },
    /// More differing rows than shown.
    More {
        /// The table.
        table: String,
        /// How many differing rows were not shown.
        rows: usize,
    },
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let side = |in_live: bool| if in_live { "live" } else { "rebuilt" };
        match self {
            Self::Table { table, in_live } => {
                write!(f, "table {table}: only in the {} model", side(*in_live))
            }
            Self::Row {
                table,
                row,
                in_live,
            } => write!(
                f,
                "table {table}: only in the {} model: {row}",
                side(*in_live)
            ),
            Self::More { table, rows } => write!(f, "table {table}: {rows} more row(s) differ"),
        }
    }
}

/// Why a check could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsistencyError {
    /// The live read model has no such version.
    #[error("{projection} v{version} has no live read model to check")]
    NoLiveModel {
        /// The projection.
        projection: &'static str,
        /// Its version.
        version: u32,
    },
    /// The two models are at different checkpoints: the live one must catch up first.
    #[error(
        "{projection}: the live model is at checkpoint {live}, the rebuilt one at {rebuilt}: \
         let the live one catch up (with no appends meanwhile) and check again"
    )]
    NotAtTheSameCheckpoint {
        /// The projection.
        projection: &'static str,
        /// The live model's checkpoint.
        live: u64,
        /// The rebuilt model's.
        rebuilt: u64,
    },
    /// Rebuilding failed.
    #[error(transparent)]
    Runner(#[from] RunnerError),
    /// A read model failed: reading the live one or the shadow, or making or discarding
    /// the shadow.
    #[error(transparent)]
    ReadModel(#[from] ReadModelError),
    /// This kind of read model has no shadow to rebuild into.
    #[error(
        "{projection}: its read model has no consistency check (it makes no shadow model to rebuild into)"
    )]
    Unsupported {
        /// The projection.
        projection: &'static str,
    },
}

/// Rebuilds `projection` from `runner`'s log into a shadow of `live` (see
/// [`ReadModel::shadow`]), compares every table of the two, and discards the shadow.
pub async fn check_consistency<S, P>(
    runner: &ProjectionRunner<S>,
    projection: P,
    live: &ReadModelOf<P>,
) -> Result<ConsistencyReport, ConsistencyError>
where
    S: EventStore + 'static,
    P: Projection,
{
    let status = live
        .versions(P::NAME)
        .await?
        .into_iter()
        .find(|status| status.version == P::VERSION && status.state != VersionState::Building)
        .ok_or(ConsistencyError::NoLiveModel {
            projection: P::NAME,
            version: P::VERSION,
        })?;
    let shadow = live.shadow().await?.ok_or(ConsistencyError::Unsupported {
        projection: P::NAME,
    })?;
    let compared = compare_with(runner, projection, live, &shadow, status.checkpoint).await;
    // The shadow goes whatever the verdict; a failure to discard it is reported only when
    // there is nothing else to report.
    let discarded = shadow.discard().await;
    let report = compared?;
    discarded?;
    Ok(report)
}

async fn compare_with<S, P>(
    runner: &ProjectionRunner<S>,
    projection: P,
    live: &ReadModelOf<P>,
    shadow: &ReadModelOf<P>,
    live_checkpoint: u64,
) -> Result<ConsistencyReport, ConsistencyError>
where
    S: EventStore + 'static,
    P: Projection,
{
    let rebuilt = runner.rebuild(projection, shadow.clone(), |_| {}).await?;
    if rebuilt.checkpoint != live_checkpoint {
        return Err(ConsistencyError::NotAtTheSameCheckpoint {
            projection: P::NAME,
            live: live_checkpoint,
            rebuilt: rebuilt.checkpoint,
        });
    }
    let target = Target {
        name: P::NAME,
        version: P::VERSION,
    };
    let (tables, rows, differences) = compare(
        &live.contents(target).await?,
        &shadow.contents(target).await?,
    );
    Ok(ConsistencyReport {
        projection: P::NAME,
        version: P::VERSION,
        checkpoint: rebuilt.checkpoint,
        tables,
        rows,
        differences,
    })
}

/// The tables compared, the rebuilt rows, and the differences.
fn compare(live: &Contents, rebuilt: &Contents) -> (usize, u64, Vec<Difference>) {
    let mut differences = Vec::new();
    let mut rows = 0;
    for table in live.keys().filter(|table| !rebuilt.contains_key(*table)) {
        differences.push(Difference::Table {
            table: table.clone(),
            in_live: true,
        });
    }
    for (table, expected) in rebuilt {
        rows += expected.len() as u64;
        let Some(found) = live.get(table) else {
            differences.push(Difference::Table {
                table: table.clone(),
                in_live: false,
            });
            continue;
        };
        // Both sorted: a merge finds the rows only one side has (duplicates counted).
        let mut only = Vec::new();
        let (mut l, mut r) = (0, 0);
        while l < found.len() || r < expected.len() {
            match (found.get(l), expected.get(r)) {
                (Some(a), Some(b)) if a == b => {
                    l += 1;
                    r += 1;
                }
                (Some(a), Some(b)) if a < b => {
                    only.push((a.clone(), true));
                    l += 1;
                }
                (Some(_), Some(b)) => {
                    only.push((b.clone(), false));
                    r += 1;
                }
                (Some(a), None) => {
                    only.push((a.clone(), true));
                    l += 1;
                }
                (None, Some(b)) => {
                    only.push((b.clone(), false));
                    r += 1;
                }
                (None, None) => unreachable!("the loop runs while either side has rows"),
            }
        }
        let hidden = only.len().saturating_sub(SHOWN_PER_TABLE);
        differences.extend(
            only.into_iter()
                .take(SHOWN_PER_TABLE)
                .map(|(row, in_live)| Difference::Row {
                    table: table.clone(),
                    row,
                    in_live,
                }),
        );
        if hidden > 0 {
            differences.push(Difference::More {
                table: table.clone(),
                rows: hidden,
            });
        }
    }
    (rebuilt.len(), rows, differences)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(entries: &[(&str, &[&str])]) -> Contents {
        entries
            .iter()
            .map(|(name, rows)| {
                let mut rows: Vec<String> = rows.iter().map(|row| (*row).to_owned()).collect();
                rows.sort();
                ((*name).to_owned(), rows)
            })
            .collect()
    }

    #[test]
    fn rows_and_tables_only_one_side_has_are_differences() {
        let live = tables(&[("a", &["(1)", "(2)", "(2)"]), ("old", &[])]);
        let rebuilt = tables(&[("a", &["(1)", "(2)", "(3)"]), ("new", &["(9)"])]);
        let (count, rows, differences) = compare(&live, &rebuilt);
        assert_eq!((count, rows), (2, 4));
        let shown: Vec<String> = differences.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "table old: only in the live model",
                "table a: only in the live model: (2)",
                "table a: only in the rebuilt model: (3)",
                "table new: only in the rebuilt model",
            ]
        );
        assert!(compare(&rebuilt, &rebuilt).2.is_empty());
    }

    #[test]
    fn a_table_shows_a_few_rows_and_counts_the_rest() {
        let many: Vec<String> = (0..8).map(|n| format!("({n})")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let (_, _, differences) = compare(&tables(&[("t", &[])]), &tables(&[("t", &many)]));
        assert_eq!(differences.len(), SHOWN_PER_TABLE + 1);
        assert_eq!(
            differences.last().unwrap().to_string(),
            "table t: 3 more row(s) differ"
        );
    }
}
