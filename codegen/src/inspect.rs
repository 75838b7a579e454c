//! `factum streams|stream|tagged|event|tail|export|import`: what an operator looks at in
//! a store — a SQLite file or a PostgreSQL URL — its streams by type, one stream's events,
//! the events carrying some tags (what a decision reads), one event whole with whether
//! its hash holds, the log as it grows; and its backup.
//! Tables for people; `--json` (one JSON document, or one per line for `tail`) for
//! scripts.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use factum::envelope::RecordedEvent;
use factum::integrity::TamperEvident;
use factum::store::decision::{DecisionStore, Query, QueryItem};
use factum::store::{
    EventStore, PostgresStore, SqliteStore, StoreError, StreamCatalog, StreamFilter,
};
use factum::tag::Tag;
use serde_json::{Value, json};

use crate::store_commands::{block_on, failed};

/// The store a command works on: a SQLite file, or a PostgreSQL database given by its URL
/// (`postgres://` or `postgresql://`; the store's schema with `?options=...` is not
/// supported, the `public` schema is read).
pub(crate) enum Db {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

/// The store a reading command works on, and the archives to read archived events from.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// The store: a SQLite file, or a PostgreSQL URL (`postgres://...`).
    #[arg(long)]
    pub db: String,
    /// An archive of the store (written by `factum archive`) to read archived events
    /// from; repeat it for each archive the events to read are in.
    #[arg(long = "archive")]
    pub archives: Vec<PathBuf>,
}

impl Db {
    /// Opens `store`; with `check_hashes`, reads check each event's hash.
    pub(crate) async fn open(store: &StoreArgs, check_hashes: bool) -> Result<Self, String> {
        let spec = store.db.as_str();
        if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
            let mut config = PostgresStore::builder(spec).check_hashes(check_hashes);
            for archive in crate::archive_commands::opened(&store.archives).await? {
                config = config.archive(archive);
            }
            return config.connect().await.map(Db::Postgres).map_err(failed);
        }
        crate::archive_commands::open(Path::new(spec), &store.archives, check_hashes)
            .await
            .map(Db::Sqlite)
    }

    /// Opens the store at `spec`, without archives.
    pub(crate) async fn open_spec(spec: &str) -> Result<Self, String> {
        Self::open(
            &StoreArgs {
                db: spec.to_owned(),
                archives: Vec::new(),
            },
            false,
        )
        .await
    }
}

/// Runs `$body` with `$store` bound to the store `$db` holds, whichever kind.
macro_rules! on_store {
    ($db:expr, $store:ident => $body:expr) => {
        match $db {
            crate::inspect::Db::Sqlite($store) => $body,
            crate::inspect::Db::Postgres($store) => $body,
        }
    };
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Aligned columns, for people.
    Table,
    /// JSON, for scripts.
    Json,
}

/// Prints up to `limit` streams after `after`, of `stream_type` if given.
pub fn streams(
    db: &str,
    stream_type: Option<&str>,
    after: Option<&str>,
    limit: usize,
    output: Output,
) -> Result<ExitCode, String> {
    block_on(async {
        // One more than asked, to tell whether another page follows.
        let mut page = on_store!(Db::open_spec(db).await?, store => store
            .streams(
                StreamFilter {
                    stream_type,
                    contains: None,
                },
                after,
                limit.saturating_add(1),
            )
            .await
            .map_err(failed)?);
        let more = page.len() > limit;
        page.truncate(limit);
        let next = more.then(|| page.last().map(|stream| stream.stream_id.clone()));
        match output {
            Output::Json => print_json(&json!({ "streams": page, "next_after": next.flatten() }))?,
            Output::Table => {
                let rows: Vec<Vec<String>> = page
                    .iter()
                    .map(|stream| {
                        vec![
                            stream.stream_id.clone(),
                            stream.stream_type.clone(),
                            stream.version.to_string(),
                        ]
                    })
                    .collect();
                print_table(&["STREAM", "TYPE", "VERSION"], &rows, true);
                if let Some(Some(last)) = next {
                    println!("(more: --after {last})");
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Prints the events of `stream_id` from version `from`, up to `limit`.
pub fn stream(
    source: &StoreArgs,
    stream_id: &str,
    from: u64,
    limit: usize,
    output: Output,
) -> Result<ExitCode, String> {
    block_on(async {
        let events = on_store!(Db::open(source, false).await?, store => {
            if store.stream_version(stream_id).await.map_err(failed)?.is_none() {
                return Err(format!("no stream `{stream_id}` in {}", source.db));
            }
            store
                .read_stream(stream_id, from.max(1), limit)
                .await
                .map_err(failed)?
        });
        match output {
            Output::Json => print_json(&events)?,
            Output::Table => print_events(&events, false, true),
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Prints the events after `after` that carry every one of `tags` and (unless `names`
/// is empty) have one of `names`, in log order, with the position the store read to:
/// what a decision keyed by those tags reads.
pub fn tagged(
    source: &StoreArgs,
    tags: Vec<Tag>,
    names: Vec<String>,
    after: u64,
    output: Output,
) -> Result<ExitCode, String> {
    block_on(async {
        let query = Query::new([QueryItem::names(names).with_tags(tags)]);
        let matched = on_store!(Db::open(source, false).await?, store => store
            .read_matching(&query, after)
            .await
            .map_err(failed)?);
        match output {
            Output::Json => print_json(&json!({
                "events": matched.events,
                "read_to": matched.read_to,
            }))?,
            Output::Table => {
                print_events(&matched.events, true, true);
                println!("(read to position {})", matched.read_to);
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Prints the event at `position` whole, and whether its stored hash still matches it.
/// Exits 1 when it does not.
pub fn event(source: &StoreArgs, position: u64, output: Output) -> Result<ExitCode, String> {
    block_on(async {
        // Read as stored first, then with every hash checked: a changed row still shows.
        let event = on_store!(Db::open(source, false).await?, store => store
            .read_all(position.saturating_sub(1), 1)
            .await
            .map_err(failed)?)
        .into_iter()
        .find(|event| event.position == position)
        .ok_or_else(|| format!("no event at position {position} in {}", source.db))?;
        let checked = on_store!(Db::open(source, true).await?, store => {
            store.read_all(position - 1, 1).await
        });
        let hash = match checked {
            Ok(_) => Ok(()),
            Err(StoreError::CorruptRow { reason, .. }) => Err(reason),
            Err(error) => return Err(failed(error)),
        };
        match output {
            Output::Json => {
                let mut document = serde_json::to_value(&event).map_err(failed)?;
                document["hash"] = match &hash {
                    Ok(()) => json!({ "status": "intact" }),
                    Err(reason) => json!({ "status": "altered", "reason": reason }),
                };
                print_json(&document)?;
            }
            Output::Table => {
                let rows = [
                    ("position", event.position.to_string()),
                    ("stream", event.stream_id.clone()),
                    ("type", event.stream_type.clone()),
                    ("version", event.stream_version.to_string()),
                    ("event", format!("{} v{}", event.name, event.schema_version)),
                    ("id", event.event_id.to_string()),
                    ("recorded", event.timestamp.to_rfc3339()),
                    ("metadata", compact(&event.metadata)?),
                    (
                        "tags",
                        event
                            .tags
                            .iter()
                            .map(Tag::as_str)
                            .collect::<Vec<_>>()
                            .join(" "),
                    ),
                    ("payload", event.payload.get().to_owned()),
                    (
                        "hash",
                        match &hash {
                            Ok(()) => "intact".to_owned(),
                            Err(reason) => format!("ALTERED: {reason}"),
                        },
                    ),
                ];
                for (name, value) in rows {
                    println!("{name:<10} {value}");
                }
            }
        }
        Ok(if hash.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}

/// Prints the log after `after`; with `follow`, then waits for new events and prints
/// them as they are committed, until stopped.
pub fn tail(
    source: &StoreArgs,
    after: u64,
    follow: bool,
    output: Output,
) -> Result<ExitCode, String> {
    block_on(async {
        on_store!(Db::open(source, false).await?, store => tail_of(&store, after, follow, output).await)
    })
}

async fn tail_of(
    store: &impl EventStore,
    mut after: u64,
    follow: bool,
    output: Output,
) -> Result<ExitCode, String> {
    const PAGE: usize = 500;
    let mut header = output == Output::Table;
    loop {
        let page = store.read_all(after, PAGE).await.map_err(failed)?;
        if let Some(last) = page.last() {
            after = last.position;
        }
        match output {
            Output::Json => {
                for event in &page {
                    println!("{}", serde_json::to_string(event).map_err(failed)?);
                }
            }
            Output::Table => {
                if !page.is_empty() {
                    print_events(&page, true, std::mem::take(&mut header));
                }
            }
        }
        if page.len() == PAGE {
            continue;
        }
        if !follow {
            return Ok(ExitCode::SUCCESS);
        }
        // Stdout may be a pipe: what was printed reaches the reader now.
        use std::io::Write as _;
        std::io::stdout().flush().map_err(failed)?;
        store
            .wait_for_events(after, Duration::from_secs(1))
            .await
            .map_err(failed)?;
    }
}

/// One line per event: position, stream and version, event and schema version, when;
/// under a header line if `header`.
fn print_events(events: &[RecordedEvent], with_stream: bool, header: bool) {
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|event| {
            let mut row = vec![event.position.to_string()];
            if with_stream {
                row.push(event.stream_id.clone());
            }
            row.extend([
                event.stream_version.to_string(),
                format!("{} v{}", event.name, event.schema_version),
                event.timestamp.to_rfc3339(),
            ]);
            row
        })
        .collect();
    let titles: &[&str] = if with_stream {
        &["POSITION", "STREAM", "VERSION", "EVENT", "RECORDED"]
    } else {
        &["POSITION", "VERSION", "EVENT", "RECORDED"]
    };
    print_table(titles, &rows, header);
}

/// Left-aligned columns, each as wide as its widest cell (and its title), two spaces
/// apart; the titles first if `with_titles`.
pub(crate) fn print_table(header: &[&str], rows: &[Vec<String>], with_titles: bool) {
    let mut widths: Vec<usize> = header.iter().map(|title| title.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    if with_titles {
        line(header.to_vec());
    }
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn compact(value: &impl serde::Serialize) -> Result<String, String> {
    serde_json::to_string(value).map_err(failed)
}

pub(crate) fn print_json(value: &impl serde::Serialize) -> Result<(), String> {
    let value: Value = serde_json::to_value(value).map_err(failed)?;
    println!("{}", serde_json::to_string_pretty(&value).map_err(failed)?);
    Ok(())
}

/// Writes every event of the store after `after` to `out` (standard output if `None`),
/// one structured CloudEvent per line, in log order: a backup `import` restores.
pub fn export(
    store_args: &StoreArgs,
    out: Option<&Path>,
    source: &str,
    domain: &str,
    after: u64,
) -> Result<ExitCode, String> {
    let ce = factum::cloudevents::CloudEvents::new(source, domain).map_err(failed)?;
    block_on(async {
        let written = on_store!(Db::open(store_args, false).await?, store => match out {
            Some(path) => {
                let file = std::fs::File::create(path)
                    .map_err(|error| format!("cannot create {}: {error}", path.display()))?;
                let mut writer = std::io::BufWriter::new(file);
                let written = ce
                    .export_jsonl(&store, after, &mut writer)
                    .await
                    .map_err(failed)?;
                use std::io::Write as _;
                writer
                    .flush()
                    .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
                written
            }
            None => {
                let stdout = std::io::stdout();
                let mut lock = stdout.lock();
                ce.export_jsonl(&store, after, &mut lock)
                    .await
                    .map_err(failed)?
            }
        });
        eprintln!("exported {written} event(s)");
        Ok(ExitCode::SUCCESS)
    })
}

/// Restores an export into the store at `db` (a SQLite file, created if missing, or a
/// PostgreSQL URL), which must hold no events, then verifies the restored history;
/// exits 1 when it does not hold.
pub fn import(db: &str, from: &Path, source: &str, domain: &str) -> Result<ExitCode, String> {
    let ce = factum::cloudevents::CloudEvents::new(source, domain).map_err(failed)?;
    let file = std::fs::File::open(from)
        .map_err(|error| format!("cannot read {}: {error}", from.display()))?;
    block_on(async {
        let target = if Path::new(db).exists() || db.contains("://") {
            Db::open_spec(db).await?
        } else {
            Db::Sqlite(SqliteStore::open(db).await.map_err(failed)?)
        };
        on_store!(target, store => {
            if let Some(head) = store.head().await.map_err(failed)? {
                return Err(format!(
                    "{db} holds events already (up to position {}): a backup restores into an empty store",
                    head.position
                ));
            }
            let report = ce
                .import_jsonl(&store, std::io::BufReader::new(file))
                .await
                .map_err(failed)?;
            let verification = store.verify().await.map_err(failed)?;
            println!(
                "imported {} event(s) in {} stream(s); {verification}",
                report.events, report.streams
            );
            Ok(if verification.is_intact() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        })
    })
}
