//! `factum`: generate and check a domain's schema files from its registry document.
//!
//! ```text
//! factum schema generate --registry registry.json --out schemas/orders [--check] [--subject-prefix factum] [--kafka-topic-prefix domain-events]
//! factum schema lint     --registry registry.json [--allow RULE:NAME ...] [--deny-warnings]
//! factum schema check    --registry registry.json --published schemas/orders/registry.json \
//!                        [--mode none|backward|forward|full|...] [--event OrderShipped=full ...]
//! factum subject export  --db app.sqlite3 --master-key-file KEY --registry registry.json \
//!                        --subject ID [--cloudevents [--source URI] [--domain NAME]]
//! factum subject forget  --db app.sqlite3 --master-key-file KEY --subject ID --by WHO
//! factum verify          --db app.sqlite3 [--public-key HEX] [--archive FILE ...]
//! factum streams         --db app.sqlite3 [--type TYPE] [--after ID] [--limit N] [--json]
//! factum stream          --db app.sqlite3 STREAM_ID [--from VERSION] [--limit N] [--json]
//! factum event           --db app.sqlite3 POSITION [--json]
//! factum tail            --db app.sqlite3 [--after POSITION] [--follow] [--json]
//! factum export          --db app.sqlite3 [--out FILE] [--source URI] [--domain NAME]
//! factum import          --db new.sqlite3 --from FILE [--source URI] [--domain NAME]
//! factum trace           --db app.sqlite3 [--read-models DIR] CORRELATION_ID [--json]
//! factum projections     --db app.sqlite3 --read-models DIR [--json]
//! factum parked list     --read-models DIR --projection NAME [--version N] [--json]
//! factum parked drop     --read-models DIR --projection NAME [--version N] --position P \
//!                        [--dry-run] [--yes]
//! factum archive         --db app.sqlite3 (--before DATE | --upto POSITION) --out FILE \
//!                        [--read-models DIR] [--dry-run] [--yes]
//! factum archive         --db app.sqlite3 --list [--json]
//! ```
//!
//! `--db` of `verify`, `streams`, `stream`, `event`, `tail`, `export`, `import`, `archive`,
//! `trace` and `projections` takes a PostgreSQL URL (`postgres://...`) as well as a SQLite file, and
//! `--read-models` the URL of the database holding PostgreSQL read models as well as a
//! SQLite read-model directory. `stream`, `event`, `tail`, `export`, `trace` and `verify`
//! read archived events from the archives given with `--archive FILE` (repeatable).
//!
//! The registry document is what `factum::registry::Registry` serialises to; a domain
//! writes it from a test, a `build.rs` or a small binary (the example: `orders --registry`).
//! The subject commands work on a SQLite store whose personal fields a
//! `factum::personal::ProtectedStore` sealed (`src/store_commands.rs`).

#[macro_use]
mod inspect;
#[macro_use]
mod projection_commands;
mod archive_commands;
mod store_commands;
mod trace;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use factum_codegen::asyncapi::AsyncApiInfo;
use factum_codegen::compat::Compatibility;
use factum_codegen::generate::generate;
use factum_codegen::lint::{Allowances, LintRule, lint};
use factum_codegen::published::check_against_published;
use factum_codegen::release::{ReleaseError, release};
use serde_json::Value;

/// Schema tooling for factum domains.
#[derive(Debug, Parser)]
#[command(name = "factum", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with a domain's schemas.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Generate clients of a service's HTTP API.
    #[command(subcommand)]
    Client(ClientCommand),
    /// A data subject's requests on a SQLite store: their data exported, or forgotten.
    #[command(subcommand)]
    Subject(SubjectCommand),
    /// Verify a store's history: its hash chains, and with `--public-key` its signed
    /// checkpoints. Exits 1 when something does not hold.
    Verify {
        #[command(flatten)]
        store: inspect::StoreArgs,
        /// The Ed25519 public key the checkpoints are signed with (64 hex digits).
        #[arg(long)]
        public_key: Option<String>,
    },
    /// List a store's streams in the order of their ids, a page at a time.
    Streams {
        /// The store: a SQLite file, or a PostgreSQL URL (`postgres://...`).
        #[arg(long)]
        db: String,
        /// Only streams of this type (an aggregate's name).
        #[arg(long = "type")]
        stream_type: Option<String>,
        /// Start after this stream id (the last of the previous page).
        #[arg(long)]
        after: Option<String>,
        /// Streams per page.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one stream's events.
    Stream {
        #[command(flatten)]
        store: inspect::StoreArgs,
        /// The stream's id.
        stream_id: String,
        /// The first stream version to show.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// How many events to show.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show the events that carry every given tag (and, with `--name`, have one of the
    /// names), in log order: what a decision keyed by those tags reads, and the
    /// position it would read to. `--tag course:c1 --tag student:s1 --name
    /// StudentSubscribed` shows s1's subscription to c1.
    Tagged {
        #[command(flatten)]
        store: inspect::StoreArgs,
        /// A tag the events carry, `key:value`; repeat it for each (all are required).
        #[arg(long = "tag", required = true, value_parser = parse_tag)]
        tags: Vec<factum::tag::Tag>,
        /// An event name; repeat it for each (any of them matches). Any name when not
        /// given.
        #[arg(long = "name")]
        names: Vec<String>,
        /// Only events after this position.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one event whole (payload, metadata) and whether its stored hash holds.
    /// Exits 1 when it does not.
    Event {
        #[command(flatten)]
        store: inspect::StoreArgs,
        /// The event's position in the log.
        position: u64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the log after a position; with `--follow`, keep printing events as they are
    /// committed, until stopped.
    Tail {
        #[command(flatten)]
        store: inspect::StoreArgs,
        /// Start after this position (0: from the first event).
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Wait for new events and print them.
        #[arg(long)]
        follow: bool,
        /// One JSON document per event and line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The causal tree of one business transaction: its commands, the events each
    /// recorded, the commands those caused, and (given the read models) the projections
    /// that applied each event.
    Trace {
        #[command(flatten)]
        store: inspect::StoreArgs,
        /// The read models (a SQLite directory, or the PostgreSQL URL of their catalog's
        /// database), to show which projections applied each event.
        #[arg(long)]
        read_models: Option<String>,
        /// The correlation id (a UUID).
        correlation_id: String,
        /// Print JSON instead of a tree.
        #[arg(long)]
        json: bool,
    },
    /// Back up a store: every event, one structured CloudEvent per line (JSON
    /// Lines), in log order.
    Export {
        #[command(flatten)]
        store: inspect::StoreArgs,
        /// The file to write (standard output if not given).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Only events after this position.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// The CloudEvents `source` (a URI-reference).
        #[arg(long, default_value = "urn:factum")]
        source: String,
        /// The domain the CloudEvents types are named in (`<domain>.<aggregate>.<event>`).
        #[arg(long, default_value = "factum")]
        domain: String,
    },
    /// Restore a backup (`factum export`) into a new or empty store, then verify
    /// the restored history. Exits 1 when it does not hold.
    Import {
        /// The store: a SQLite file (created if missing), or a PostgreSQL URL; it must
        /// hold no events.
        #[arg(long)]
        db: String,
        /// The export to restore.
        #[arg(long)]
        from: PathBuf,
        /// The CloudEvents `source` the export was written with.
        #[arg(long, default_value = "urn:factum")]
        source: String,
        /// The domain the export was written with.
        #[arg(long, default_value = "factum")]
        domain: String,
    },
    /// Every version of every projection in a SQLite read-model directory or a PostgreSQL
    /// read-model catalog: its state, checkpoint, lag behind the store's head, and parked
    /// events.
    Projections {
        /// The store: a SQLite file, or a PostgreSQL URL (`postgres://...`).
        #[arg(long)]
        db: String,
        /// The read models: a SQLite read-model directory, or the PostgreSQL URL of the
        /// database holding their catalog.
        #[arg(long)]
        read_models: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// A projection's dead letters: events its handler kept failing on.
    #[command(subcommand)]
    Parked(ParkedCommand),
    /// Move the payloads and metadata of a store's events older than a date (or up to a
    /// position) to an archive file, which the reading commands (`--archive`) and
    /// the application (`SqliteOptions::archive`) read them back from; the rows' ids,
    /// versions and hashes stay, so appends and `verify` go on. Shows what it would do,
    /// then asks. With `--list`, the store's archives.
    Archive {
        /// The store: a SQLite file, or a PostgreSQL URL (`postgres://...`).
        #[arg(long)]
        db: String,
        /// Archive the events recorded before this date (`2026-01-31`, midnight UTC) or
        /// time (RFC 3339).
        #[arg(long, value_parser = archive_commands::parse_before,
              required_unless_present_any = ["upto", "list"], conflicts_with = "upto")]
        before: Option<factum::chrono::DateTime<factum::chrono::Utc>>,
        /// Archive the events up to this position.
        #[arg(long)]
        upto: Option<u64>,
        /// The archive file to write (never replaced).
        #[arg(long, required_unless_present = "list")]
        out: Option<PathBuf>,
        /// The application's read models (a SQLite directory, or the PostgreSQL URL of
        /// their catalog's database): name the projections, publishers and process
        /// managers whose checkpoints are inside the cut.
        #[arg(long)]
        read_models: Option<String>,
        /// Show what would be archived, and archive nothing.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// List the store's archives instead.
        #[arg(long, conflicts_with_all = ["before", "upto", "out", "read_models", "dry_run", "yes"])]
        list: bool,
        /// With `--list`: JSON instead of a table.
        #[arg(long, requires = "list")]
        json: bool,
    },
}

/// Which projection version's dead letters.
#[derive(Debug, clap::Args)]
struct ParkedTarget {
    /// The read models: a SQLite read-model directory, or the PostgreSQL URL of the
    /// database holding their catalog.
    #[arg(long)]
    read_models: String,
    /// The projection's name.
    #[arg(long)]
    projection: String,
    /// The projection's version (the active one if not given).
    #[arg(long)]
    version: Option<u32>,
}

#[derive(Debug, Subcommand)]
enum ParkedCommand {
    /// List the parked events.
    List {
        #[command(flatten)]
        target: ParkedTarget,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Drop a parked event: it will never be applied. Shows what it would do, then asks.
    Drop {
        #[command(flatten)]
        target: ParkedTarget,
        /// The parked event's position in the log.
        #[arg(long)]
        position: u64,
        /// Show what would be dropped, and drop nothing.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

impl ParkedTarget {
    fn parked(&self) -> projection_commands::Parked<'_> {
        projection_commands::Parked {
            read_models: &self.read_models,
            projection: &self.projection,
            version: self.version,
        }
    }
}

fn output(json: bool) -> inspect::Output {
    if json {
        inspect::Output::Json
    } else {
        inspect::Output::Table
    }
}

/// The store and its master key, for the subject commands.
#[derive(Debug, clap::Args)]
struct KeyedStore {
    /// The SQLite store file.
    #[arg(long)]
    db: PathBuf,
    /// The file holding the master key that wraps the subjects' keys: 32 raw bytes or
    /// 64 hex digits (a file, so the key is not in the process list).
    #[arg(long)]
    master_key_file: PathBuf,
}

#[derive(Debug, Subcommand)]
enum SubjectCommand {
    /// Print every event about a data subject, opened: the answer to a data access
    /// request (factum's JSON, or a CloudEvents batch).
    Export {
        #[command(flatten)]
        store: KeyedStore,
        /// The application's registry document (JSON): which fields are personal.
        #[arg(long)]
        registry: PathBuf,
        /// The data subject's id.
        #[arg(long)]
        subject: String,
        /// Write a CloudEvents batch (`application/cloudevents-batch+json`).
        #[arg(long)]
        cloudevents: bool,
        /// The CloudEvents `source` (a URI-reference).
        #[arg(long, default_value = "/factum", requires = "cloudevents")]
        source: String,
        /// The domain the CloudEvents types are named in (`<domain>.<aggregate>.<event>`).
        #[arg(long, default_value = "factum", requires = "cloudevents")]
        domain: String,
    },
    /// Forget a data subject: destroy their key, so their personal fields read as the
    /// declared replacements everywhere, and record who asked.
    Forget {
        #[command(flatten)]
        store: KeyedStore,
        /// The data subject's id.
        #[arg(long)]
        subject: String,
        /// Who asked (a user, a ticket), kept in the record.
        #[arg(long)]
        by: String,
    },
}

#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// A typed TypeScript client, from the service's OpenAPI document (`GET
    /// /openapi.json` of factum's HTTP layer).
    Typescript {
        /// The OpenAPI document (JSON).
        #[arg(long)]
        openapi: PathBuf,
        /// The file to write (e.g. `client.ts`).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum SchemaCommand {
    /// Write registry.json, one JSON Schema per event version and command, and the
    /// TypeScript, Python and AsyncAPI contracts, changing only files whose content
    /// differs.
    Generate {
        /// The registry document (JSON).
        #[arg(long)]
        registry: PathBuf,
        /// The folder to write into.
        #[arg(long)]
        out: PathBuf,
        /// Write nothing; fail if the folder is not up to date.
        #[arg(long)]
        check: bool,
        /// The AsyncAPI document's title.
        #[arg(long, default_value = "factum events")]
        title: String,
        /// The AsyncAPI document's API version.
        #[arg(long, default_value = "1.0.0")]
        api_version: String,
        /// The AsyncAPI document's description.
        #[arg(long, default_value = "")]
        description: String,
        /// The NATS publisher's subject prefix (`NatsPublisher::subject_prefix`): the
        /// AsyncAPI channels' addresses are `<prefix>.<stream type>.<event name>`.
        #[arg(long, default_value = factum_codegen::asyncapi::DEFAULT_SUBJECT_PREFIX)]
        subject_prefix: String,
        /// The Kafka publisher's topic prefix (`KafkaPublisher::topic_prefix`): the
        /// AsyncAPI Kafka channels' topics are `<prefix>.<stream type>`.
        #[arg(long, default_value = factum_codegen::asyncapi::DEFAULT_KAFKA_TOPIC_PREFIX)]
        kafka_topic_prefix: String,
    },
    /// Warn about names against the conventions: events in the past tense, commands
    /// imperative, every event versioned from 1.
    Lint {
        /// The registry document (JSON).
        #[arg(long)]
        registry: PathBuf,
        /// Allow one exception: `RULE:NAME`, e.g. `event-past-tense:OrderStatus`
        /// (repeatable).
        #[arg(long = "allow", value_parser = Allowances::parse_one)]
        allow: Vec<(LintRule, String)>,
        /// Fail when there are warnings.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Record a registry's new event versions and commands as released, in the release
    /// record the published check compares with; refuses a registry that changes what
    /// was released.
    Release {
        /// The registry document (JSON).
        #[arg(long)]
        registry: PathBuf,
        /// The release record (JSON), e.g. `schemas/orders-released.json`; created if
        /// missing, written only when something new is released.
        #[arg(long)]
        record: PathBuf,
        /// The compatibility between versions of every event without its own `--event`.
        #[arg(long, default_value = "none")]
        mode: Compatibility,
        /// The compatibility of one event: `NAME=MODE` (repeatable).
        #[arg(long = "event", value_parser = parse_event_mode)]
        events: Vec<(String, Compatibility)>,
    },
    /// Check a registry against the published one: published schemas unchanged, new
    /// versions reachable by an upcast, versions compatible as selected.
    Check {
        /// The registry document (JSON).
        #[arg(long)]
        registry: PathBuf,
        /// The published registry document (JSON): the release record written by
        /// `factum schema release` (e.g. `schemas/orders-released.json`).
        #[arg(long)]
        published: PathBuf,
        /// The compatibility between versions of every event without its own `--event`.
        #[arg(long, default_value = "none")]
        mode: Compatibility,
        /// The compatibility of one event: `NAME=MODE` (repeatable).
        #[arg(long = "event", value_parser = parse_event_mode)]
        events: Vec<(String, Compatibility)>,
    },
}

fn parse_event_mode(text: &str) -> Result<(String, Compatibility), String> {
    let (name, mode) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=MODE, got `{text}`"))?;
    let mode = mode.parse().map_err(|error| format!("{error}"))?;
    Ok((name.to_owned(), mode))
}

fn parse_tag(text: &str) -> Result<factum::tag::Tag, factum::tag::TagError> {
    factum::tag::Tag::parse(text)
}

impl From<KeyedStore> for store_commands::Store {
    fn from(store: KeyedStore) -> Self {
        Self {
            db: store.db,
            master_key_file: store.master_key_file,
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

/// An error and its causes, each once, joined by `: `.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    serde_json::from_str(&text).map_err(|error| format!("{} is not JSON: {error}", path.display()))
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Subject(SubjectCommand::Export {
            store,
            registry,
            subject,
            cloudevents,
            source,
            domain,
        }) => {
            let format = if cloudevents {
                store_commands::ExportFormat::CloudEvents { source, domain }
            } else {
                store_commands::ExportFormat::Json
            };
            store_commands::export(&store.into(), &registry, &subject, format)
        }
        Command::Subject(SubjectCommand::Forget { store, subject, by }) => {
            store_commands::forget(&store.into(), &subject, &by)
        }
        Command::Verify { store, public_key } => {
            store_commands::verify(&store, public_key.as_deref())
        }
        Command::Streams {
            db,
            stream_type,
            after,
            limit,
            json,
        } => inspect::streams(
            &db,
            stream_type.as_deref(),
            after.as_deref(),
            limit,
            output(json),
        ),
        Command::Stream {
            store,
            stream_id,
            from,
            limit,
            json,
        } => inspect::stream(&store, &stream_id, from, limit, output(json)),
        Command::Tagged {
            store,
            tags,
            names,
            after,
            json,
        } => inspect::tagged(&store, tags, names, after, output(json)),
        Command::Event {
            store,
            position,
            json,
        } => inspect::event(&store, position, output(json)),
        Command::Tail {
            store,
            after,
            follow,
            json,
        } => inspect::tail(&store, after, follow, output(json)),
        Command::Trace {
            store,
            read_models,
            correlation_id,
            json,
        } => trace::trace(
            &store,
            read_models.as_deref(),
            &correlation_id,
            output(json),
        ),
        Command::Export {
            store,
            out,
            after,
            source,
            domain,
        } => inspect::export(&store, out.as_deref(), &source, &domain, after),
        Command::Archive {
            db,
            before,
            upto,
            out,
            read_models,
            dry_run,
            yes,
            list,
            json,
        } => {
            let cut = match (before, upto) {
                (Some(before), _) => archive_commands::Cut::Before(before),
                (None, Some(upto)) => archive_commands::Cut::Upto(upto),
                // clap requires --before or --upto without --list.
                (None, None) if !list => {
                    return Err("archive needs --before or --upto (or --list)".to_owned());
                }
                (None, None) => archive_commands::Cut::Upto(0),
            };
            match (list, out) {
                (true, _) => archive_commands::list(&db, json),
                (false, Some(out)) => archive_commands::archive(&archive_commands::Request {
                    db: &db,
                    cut,
                    out: &out,
                    read_models: read_models.as_deref(),
                    dry_run,
                    yes,
                }),
                // clap requires --out without --list.
                (false, None) => Err("archive needs --out (or --list)".to_owned()),
            }
        }
        Command::Import {
            db,
            from,
            source,
            domain,
        } => inspect::import(&db, &from, &source, &domain),
        Command::Projections {
            db,
            read_models,
            json,
        } => projection_commands::status(&db, &read_models, output(json)),
        Command::Parked(ParkedCommand::List { target, json }) => {
            projection_commands::parked_list(&target.parked(), output(json))
        }
        Command::Parked(ParkedCommand::Drop {
            target,
            position,
            dry_run,
            yes,
        }) => projection_commands::parked_drop(&target.parked(), position, dry_run, yes),
        Command::Client(ClientCommand::Typescript { openapi, out }) => {
            let client = factum_codegen::typescript::typescript_client(&read_json(&openapi)?)
                .map_err(|error| with_causes(&error))?;
            std::fs::write(&out, client)
                .map_err(|error| format!("cannot write {}: {error}", out.display()))?;
            println!("wrote {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema(SchemaCommand::Generate {
            registry,
            out,
            check,
            title,
            api_version,
            description,
            subject_prefix,
            kafka_topic_prefix,
        }) => {
            let info = AsyncApiInfo {
                title,
                version: api_version,
                description,
                subject_prefix,
                kafka_topic_prefix,
            };
            let files =
                generate(&read_json(&registry)?, &info).map_err(|error| with_causes(&error))?;
            if check {
                let stale = files
                    .stale_in(&out)
                    .map_err(|error| format!("cannot read {}: {error}", out.display()))?;
                for problem in &stale {
                    eprintln!("{}: {problem}", out.display());
                }
                return Ok(if stale.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                });
            }
            let written = files
                .write_changed(&out)
                .map_err(|error| format!("cannot write into {}: {error}", out.display()))?;
            println!(
                "{} files written, {} unchanged",
                written.len(),
                files.iter().count() - written.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema(SchemaCommand::Lint {
            registry,
            allow,
            deny_warnings,
        }) => {
            let warnings = lint(&read_json(&registry)?, &allow.into_iter().collect())
                .map_err(|error| with_causes(&error))?;
            for warning in &warnings {
                eprintln!("{warning}");
            }
            Ok(if deny_warnings && !warnings.is_empty() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Schema(SchemaCommand::Release {
            registry,
            record,
            mode,
            events,
        }) => {
            let modes: BTreeMap<String, Compatibility> = events.into_iter().collect();
            let existing = match std::fs::read_to_string(&record) {
                Ok(text) => Some(
                    serde_json::from_str::<serde_json::Value>(&text)
                        .map_err(|error| format!("{} is not JSON: {error}", record.display()))?,
                ),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
                Err(error) => return Err(format!("cannot read {}: {error}", record.display())),
            };
            let released = match release(existing.as_ref(), &read_json(&registry)?, |event| {
                modes.get(event).copied().unwrap_or(mode)
            }) {
                Ok(released) => released,
                Err(ReleaseError::Refused(problems)) => {
                    for problem in &problems {
                        eprintln!("{problem}");
                    }
                    eprintln!(
                        "nothing was released: {} keeps what was released before",
                        record.display()
                    );
                    return Ok(ExitCode::FAILURE);
                }
                Err(error) => return Err(with_causes(&error)),
            };
            if !released.changed() {
                println!("nothing new to release; {} unchanged", record.display());
                return Ok(ExitCode::SUCCESS);
            }
            std::fs::write(&record, released.text())
                .map_err(|error| format!("cannot write {}: {error}", record.display()))?;
            for (kind, name, version) in &released.added {
                println!("released {kind} `{name}` v{version}");
            }
            if released.envelope_changed {
                println!("released the envelope schema");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema(SchemaCommand::Check {
            registry,
            published,
            mode,
            events,
        }) => {
            let modes: BTreeMap<String, Compatibility> = events.into_iter().collect();
            let problems =
                check_against_published(&read_json(&published)?, &read_json(&registry)?, |event| {
                    modes.get(event).copied().unwrap_or(mode)
                })
                .map_err(|error| with_causes(&error))?;
            for problem in &problems {
                eprintln!("{problem}");
            }
            Ok(if problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
