//! `factum archive`: the bodies of a SQLite store's events older than a date (or up to a
//! position) moved to an archive file that the store, opened with it (`--archive` on
//! the reading commands, `SqliteOptions::archive` in an application), still reads; and
//! the list of a store's archives. See `factum::archive`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use factum::archive::{Archive, ArchiveStore};
use factum::chrono::{self, DateTime, NaiveDate, Utc};
use factum::store::SqliteStore;

use crate::inspect::{Db, print_table};
use crate::projection_commands::{Models, named};
use crate::store_commands::{block_on, failed};

/// What to archive: the events before a time, or up to a position.
#[derive(Debug, Clone, Copy)]
pub enum Cut {
    /// Every event older than this.
    Before(DateTime<Utc>),
    /// Every event up to this position.
    Upto(u64),
}

/// Reads `--before`: an RFC 3339 time, or a date (its midnight, UTC).
pub fn parse_before(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.to_utc());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|date| date.and_time(chrono::NaiveTime::MIN).and_utc())
        .map_err(|_| format!("`{text}` is neither a date (2026-01-31) nor an RFC 3339 time"))
}

/// Opens the SQLite store at `db` with `archives`; with `check_hashes`, reads check each
/// event's hash.
pub(crate) async fn open(
    db: &Path,
    archives: &[PathBuf],
    check_hashes: bool,
) -> Result<SqliteStore, String> {
    if !db.exists() {
        return Err(format!("{} does not exist", db.display()));
    }
    let mut options = SqliteStore::options().check_hashes(check_hashes);
    for archive in opened(archives).await? {
        options = options.archive(archive);
    }
    options.open(db).await.map_err(failed)
}

/// The archives at `paths`, opened and checked.
pub(crate) async fn opened(paths: &[PathBuf]) -> Result<Vec<Archive>, String> {
    let mut archives = Vec::with_capacity(paths.len());
    for path in paths {
        let path = path.clone();
        let archive = factum::tokio::task::spawn_blocking(move || Archive::open(path))
            .await
            .map_err(failed)?
            .map_err(failed)?;
        archives.push(archive);
    }
    Ok(archives)
}

/// What `factum archive` is asked to do.
pub struct Request<'a> {
    /// The store: a SQLite file or a PostgreSQL URL.
    pub db: &'a str,
    /// What to archive.
    pub cut: Cut,
    /// The archive file to write.
    pub out: &'a Path,
    /// The application's read models (a SQLite directory or a PostgreSQL URL), to name
    /// the projections, publishers and process managers the cut leaves behind.
    pub read_models: Option<&'a str>,
    /// Show what would be done, and stop.
    pub dry_run: bool,
    /// Do not ask.
    pub yes: bool,
}

/// Archives what the request's cut selects into its file, after showing it (and the
/// followers whose checkpoints are inside the cut) and asking (unless `yes`).
pub fn archive(request: &Request<'_>) -> Result<ExitCode, String> {
    block_on(async {
        let models = match request.read_models {
            Some(spec) => Some(Models::open(spec).await?),
            None => None,
        };
        on_store!(Db::open_spec(request.db).await?, store => archive_in(&store, request, models.as_ref()).await)
    })
}

/// The followers (projections, reactors, publishers, process managers) in `models` whose
/// checkpoint is below `upto`, as `name vN at checkpoint C`.
async fn behind(models: &Models, upto: u64) -> Result<Vec<String>, String> {
    let mut behind = Vec::new();
    for name in models.names().await? {
        let versions = on_models!(models, models => {
            factum::projection::ReadModel::versions(models, named(&name))
                .await
                .map_err(failed)?
        });
        for version in versions {
            if version.state != factum::projection::VersionState::Retired
                && version.checkpoint < upto
            {
                behind.push(format!(
                    "{name} v{} at checkpoint {}",
                    version.version, version.checkpoint
                ));
            }
        }
    }
    Ok(behind)
}

async fn archive_in(
    store: &(impl ArchiveStore + Sync),
    request: &Request<'_>,
    models: Option<&Models>,
) -> Result<ExitCode, String> {
    let Request {
        cut,
        out,
        dry_run,
        yes,
        ..
    } = *request;
    {
        let archived_to = store
            .archives()
            .await
            .map_err(failed)?
            .last()
            .map_or(0, |record| record.upto);
        let upto = match cut {
            Cut::Before(time) => store.last_position_before(time).await.map_err(failed)?,
            Cut::Upto(position) => position,
        };
        let head = store
            .head()
            .await
            .map_err(failed)?
            .map_or(0, |head| head.position);
        let upto = upto.min(head);
        if upto <= archived_to {
            println!(
                "nothing to archive: positions up to {archived_to} are archived already, the cut is at {upto}"
            );
            return Ok(ExitCode::SUCCESS);
        }
        let range = store
            .read_all(archived_to, 1)
            .await
            .ok()
            .and_then(|events| events.into_iter().next());
        let last = store
            .read_all(upto - 1, 1)
            .await
            .ok()
            .and_then(|events| events.into_iter().next());
        let when = |event: Option<&factum::envelope::RecordedEvent>| {
            event.map_or_else(|| "?".to_owned(), |event| event.timestamp.to_rfc3339())
        };
        println!(
            "would archive positions {} to {upto} ({} events, recorded {} to {}) into {}: their payloads and metadata leave the store, which reads them again only when opened with that file (`--archive`)",
            archived_to + 1,
            upto - archived_to,
            when(range.as_ref()),
            when(last.as_ref()),
            out.display()
        );
        if let Some(models) = models {
            for follower in behind(models, upto).await? {
                println!(
                    "note: {follower}, inside the cut: catching it up or rebuilding it will need the archive (`--archive`)"
                );
            }
        }
        if dry_run {
            println!("dry run: nothing archived");
            return Ok(ExitCode::SUCCESS);
        }
        if !yes && !factum_codegen::operator::confirmed("archive?")? {
            println!("not confirmed: nothing archived");
            return Ok(ExitCode::FAILURE);
        }
        let record = store.archive(upto, out).await.map_err(failed)?;
        println!(
            "archived positions {} to {} ({} events) into {} (SHA-256 {})",
            record.after + 1,
            record.upto,
            record.events,
            record.file,
            record.digest
        );
        Ok(ExitCode::SUCCESS)
    }
}

/// Prints the archives the store at `db` (a SQLite file or a PostgreSQL URL) recorded.
pub fn list(db: &str, json: bool) -> Result<ExitCode, String> {
    block_on(async {
        let records =
            on_store!(Db::open_spec(db).await?, store => store.archives().await.map_err(failed)?);
        if json {
            crate::inspect::print_json(&records)?;
        } else {
            let rows: Vec<Vec<String>> = records
                .iter()
                .map(|record| {
                    vec![
                        format!("{}-{}", record.after + 1, record.upto),
                        record.events.to_string(),
                        record.archived_at.to_rfc3339(),
                        record.file.clone(),
                    ]
                })
                .collect();
            print_table(&["POSITIONS", "EVENTS", "ARCHIVED AT", "FILE"], &rows, true);
        }
        Ok(ExitCode::SUCCESS)
    })
}
