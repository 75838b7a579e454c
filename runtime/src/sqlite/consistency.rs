//! The consistency checker of SQLite read models: a projection rebuilt from the log into
//! a shadow directory and its tables diffed against the live read model's, row by row.
//!
//! A live model can drift from what its events say: a handler changed without a new
//! version, a hand edit, a bug fixed since. Replaying the log is the definition of the
//! right answer, so the shadow is the reference. Both must be at the same checkpoint: run
//! it after the live model caught up, on a log no one appends to meanwhile (or again).

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};

use crate::projection::{Projection, ProjectionRunner, ReadModel, RunnerError, VersionState};
use crate::sqlite::{SqliteReadModel, SqliteTx};
use crate::store::EventStore;

/// How many differing rows a table reports at most.
const SHOWN_PER_TABLE: usize = 5;

/// The verdict on one projection version's live read model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consistency {
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

impl Consistency {
    /// Whether the live model is what the log says it should be.
    pub fn is_consistent(&self) -> bool {
        self.differences.is_empty()
    }
}

impl std::fmt::Display for Consistency {
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
    /// Reading a model's file failed.
    #[error("reading {file}")]
    Read {
        /// The file.
        file: String,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
}

/// Rebuilds `projection` from the log into the read-model directory `shadow` (which it
/// may create; give it an empty one) and compares every table of it with the live
/// version in `live`.
pub async fn check_consistency<S, P>(
    runner: &ProjectionRunner<S>,
    projection: P,
    live: &SqliteReadModel,
    shadow: &Path,
) -> Result<Consistency, ConsistencyError>
where
    S: EventStore + 'static,
    P: Projection<Tx = SqliteTx>,
{
    let status = live
        .versions(P::NAME)
        .await
        .map_err(|source| RunnerError::ReadModel {
            projection: P::NAME,
            source,
        })?
        .into_iter()
        .find(|status| status.version == P::VERSION && status.state != VersionState::Building)
        .ok_or(ConsistencyError::NoLiveModel {
            projection: P::NAME,
            version: P::VERSION,
        })?;
    let shadow_models =
        SqliteReadModel::open(shadow)
            .await
            .map_err(|source| RunnerError::ReadModel {
                projection: P::NAME,
                source,
            })?;
    let rebuilt = runner
        .rebuild(projection, shadow_models.clone(), |_| {})
        .await?;
    if rebuilt.checkpoint != status.checkpoint {
        return Err(ConsistencyError::NotAtTheSameCheckpoint {
            projection: P::NAME,
            live: status.checkpoint,
            rebuilt: rebuilt.checkpoint,
        });
    }
    let target = crate::projection::Target {
        name: P::NAME,
        version: P::VERSION,
    };
    let live_file = live.path_of(target);
    let shadow_file = shadow_models.path_of(target);
    let (tables, rows, differences) = tokio::task::spawn_blocking(move || {
        let live = tables_of(&live_file)?;
        let rebuilt = tables_of(&shadow_file)?;
        Ok::<_, ConsistencyError>(compare(&live, &rebuilt))
    })
    .await
    .map_err(|error| RunnerError::ReadModel {
        projection: P::NAME,
        source: crate::projection::ReadModelError::Database {
            target: target.to_string(),
            operation: "compare the models",
            source: Box::new(error),
        },
    })??;
    Ok(Consistency {
        projection: P::NAME,
        version: P::VERSION,
        checkpoint: rebuilt.checkpoint,
        tables,
        rows,
        differences,
    })
}

/// Each table of the file (factum's own and SQLite's left out) with its rows as sorted
/// SQLite literals.
fn tables_of(file: &Path) -> Result<BTreeMap<String, Vec<String>>, ConsistencyError> {
    let failed = |source| ConsistencyError::Read {
        file: file.display().to_string(),
        source,
    };
    let connection =
        Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(failed)?;
    let names: Vec<String> = connection
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table'
             AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'factum_%' ORDER BY name",
        )
        .and_then(|mut statement| {
            statement
                .query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()
        })
        .map_err(failed)?;
    let mut tables = BTreeMap::new();
    for name in names {
        let rows = rows_of(&connection, &name).map_err(failed)?;
        tables.insert(name, rows);
    }
    Ok(tables)
}

fn rows_of(connection: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut statement =
        connection.prepare(&format!("SELECT * FROM \"{}\"", table.replace('"', "\"\"")))?;
    let columns = statement.column_count();
    let mut rows: Vec<String> = statement
        .query_map([], |row| {
            let values = (0..columns)
                .map(|index| row.get::<_, Value>(index).map(|value| literal(&value)))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(format!("({})", values.join(", ")))
        })?
        .collect::<Result<_, _>>()?;
    rows.sort();
    Ok(rows)
}

/// A value as SQLite would write it in SQL.
fn literal(value: &Value) -> String {
    match value {
        Value::Null => "NULL".to_owned(),
        Value::Integer(integer) => integer.to_string(),
        Value::Real(real) => format!("{real:?}"),
        Value::Text(text) => format!("'{}'", text.replace('\'', "''")),
        Value::Blob(blob) => format!(
            "X'{}'",
            blob.iter()
                .map(|byte| format!("{byte:02X}"))
                .collect::<String>()
        ),
    }
}

/// The tables compared, the rebuilt rows, and the differences.
fn compare(
    live: &BTreeMap<String, Vec<String>>,
    rebuilt: &BTreeMap<String, Vec<String>>,
) -> (usize, u64, Vec<Difference>) {
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

    fn tables(entries: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
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

    #[test]
    fn literals_are_sqlite_s() {
        assert_eq!(literal(&Value::Text("it's".into())), "'it''s'");
        assert_eq!(literal(&Value::Blob(vec![0xab, 1])), "X'AB01'");
        assert_eq!(literal(&Value::Real(1.5)), "1.5");
        assert_eq!(literal(&Value::Null), "NULL");
    }
}
