//! Every public error of factum, produced through the code that returns it where that is
//! practical (a real SQLite store, a bad payload, a refused command, a poisoned
//! projection...) and built by hand where it is not, has a `source()` chain in which each
//! cause is printed once: no level's message repeats a level below it, and the chain
//! rendered by `factum::error::Report` holds each level's message exactly once
//! ([`factum::testing::assert_each_cause_once`]).
//!
//! The last test reads the sources: an `#[error("...")]` that prints the field it returns
//! as `source()` fails it, so a new variant cannot bring the double print back.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Duration;

use factum::CommandDecodeError;
use factum::application::{Application, ApplicationError, BuildError, Rejection};
use factum::authorization::AuditError;
use factum::cloudevents::{CloudEventError, CloudEvents, ExportError, ImportError, LineError};
use factum::context::{Actor, CommandIdError, parse_command_id};
use factum::error::{BoxError, DecodeError, DecodeErrorKind, EncodeError, TaskFailure};
use factum::prelude::*;
use factum::process::{
    DispatchContext, DispatchError, HandlerError, ProcessDriver, ProcessError, Reaction, Route,
    execute_once,
};
use factum::projection::sqlite::{SqliteReadModel, SqliteTx};
use factum::projection::{OnPoison, Projector, ReadModelError, Retry, RunnerError};
use factum::query::QueryError;
use factum::registry::{EntryKind, RegistryConflict};
use factum::store::{SqliteOpenError, SqliteStore, VisitError};
use factum::testing::assert_each_cause_once as chain;
use factum::upcast::{RecodeError, UpcastError, Upcaster};

#[event(name = "Ticked", version = 1)]
#[derive(Debug, PartialEq)]
pub struct Ticked {
    pub n: u64,
}

#[derive(Events, Debug, PartialEq)]
pub enum CounterEvent {
    Ticked(Ticked),
}

#[command(name = "Tick")]
#[derive(Debug, Clone)]
pub struct Tick {
    #[aggregate_id]
    pub id: String,
    pub refuse: bool,
}

#[derive(Commands, Debug, Clone)]
pub enum CounterCommand {
    Tick(Tick),
}

/// A domain error with a cause of its own, so the chains below are three levels deep.
#[derive(Debug, thiserror::Error)]
#[error("the counter refuses")]
pub struct Refused {
    #[source]
    source: std::io::Error,
}

#[derive(Default, Debug)]
pub struct Counter;

#[aggregate(name = "Counter", events = CounterEvent, commands = CounterCommand, error = Refused)]
impl Counter {
    #[handle]
    fn tick(&self, command: Tick) -> Result<Ticked, Refused> {
        if command.refuse {
            return Err(Refused {
                source: std::io::Error::other("the counter is jammed"),
            });
        }
        Ok(Ticked { n: 1 })
    }

    #[apply]
    fn ticked(&mut self, _event: &Ticked) {}
}

/// [`chain`], and the rendered chain holds `cause`: it is reachable through `source()`.
fn chain_reaches(error: &(dyn Error + 'static), cause: &str) -> String {
    let rendered = chain(error);
    assert!(
        rendered.contains(cause),
        "`{cause}` is not in the chain `{rendered}`"
    );
    rendered
}

fn payload(value: serde_json::Value) -> Box<serde_json::value::RawValue> {
    serde_json::value::to_raw_value(&value).unwrap()
}

fn ticked(version: u32, value: serde_json::Value) -> NewEvent {
    NewEvent::new("Ticked", version, payload(value), Metadata::default())
}

fn recorded(position: u64, version: u32, value: serde_json::Value) -> RecordedEvent {
    RecordedEvent {
        event_id: factum::uuid::Uuid::now_v7(),
        stream_id: "Counter-c".into(),
        stream_type: "Counter".into(),
        stream_version: position,
        position,
        name: "Ticked".into(),
        schema_version: version,
        stored_schema_version: None,
        payload: payload(value),
        timestamp: factum::envelope::now(),
        metadata: Metadata::default(),
        tags: Vec::new(),
    }
}

fn io(message: &str) -> BoxError {
    Box::new(std::io::Error::other(message.to_owned()))
}

fn tick(id: &str, refuse: bool) -> Tick {
    Tick {
        id: id.into(),
        refuse,
    }
}

#[tokio::test]
async fn store_repository_and_decoding_errors() {
    let store = MemoryStore::new();
    let conflict = store
        .append(
            "Counter-a",
            "Counter",
            ExpectedVersion::Exact(3),
            vec![ticked(1, serde_json::json!({ "n": 1 }))],
        )
        .await
        .unwrap_err();
    chain(&conflict);
    chain_reaches(&StoreError::Backend(io("disk full")), "disk full");

    // A payload of the wrong shape, read back through the repository.
    store
        .append(
            "Counter-b",
            "Counter",
            ExpectedVersion::NoStream,
            vec![ticked(1, serde_json::json!({ "n": "one" }))],
        )
        .await
        .unwrap();
    let repository = Repository::<Counter, _>::new(store.clone());
    let undecodable = repository.load("b").await.unwrap_err();
    let RepositoryError::Decode(record) = &undecodable else {
        panic!("expected a decode error, got {undecodable:?}");
    };
    chain_reaches(record, "invalid type");
    chain_reaches(&*record.source, "invalid type");
    chain_reaches(&undecodable, "invalid type");

    let rejected = repository
        .execute_with(tick("c", true), CommandContext::new())
        .await
        .unwrap_err();
    chain_reaches(&rejected, "the counter is jammed");

    let unknown =
        CounterEvent::decode("Tocked", 1, payload(serde_json::json!({})).get()).unwrap_err();
    chain(&unknown);
    chain(&unknown.kind);
    let upcast = DecodeError {
        event: "Ticked".into(),
        schema_version: 1,
        kind: DecodeErrorKind::Upcast {
            from: 1,
            to: 2,
            source: io("the old total is negative"),
        },
    };
    chain_reaches(&upcast, "the old total is negative");

    // serde_json refuses a map whose keys are not strings.
    let source =
        serde_json::to_string(&std::collections::HashMap::from([((1, 2), 3)])).unwrap_err();
    chain_reaches(
        &EncodeError {
            event: "Ticked",
            source,
        },
        "key must be a string",
    );

    let visit: VisitError<Refused> = VisitError::Visitor(Refused {
        source: std::io::Error::other("the visitor gave up"),
    });
    chain_reaches(&visit, "the visitor gave up");
    chain_reaches(
        &VisitError::<Refused>::Store(StoreError::Backend(io("gone"))),
        "gone",
    );
}

#[tokio::test]
async fn upcast_and_cloudevents_errors() {
    // Version 0 was never a version of `Ticked`: no upcast path reaches it.
    let upcaster = Upcaster::new().aggregate::<Counter>();
    let error: UpcastError = upcaster
        .upcast(recorded(1, 0, serde_json::json!({ "n": 1 })))
        .unwrap_err();
    chain_reaches(&error, "no upcast path");
    let recode: &RecodeError = &error.source;
    chain_reaches(recode, "no upcast path");

    let config = CloudEvents::new("", "shop").unwrap_err();
    chain(&config);
    let events = CloudEvents::new("/services/counter", "shop").unwrap();
    let bad_time = r#"{"specversion":"1.0","id":"0190f2d3-7f6e-7c3a-9d1e-4f5a6b7c8d9e","source":"/services/counter","type":"shop.Counter.Ticked","subject":"Counter-a","time":"yesterday","eventversion":1,"streamversion":1,"data":{"n":1}}"#;
    let unparsable: CloudEventError = events.from_structured(bad_time).unwrap_err();
    chain_reaches(&unparsable, "premature end of input");

    let store = MemoryStore::new();
    let import: ImportError = events
        .import_jsonl(&store, std::io::Cursor::new(format!("{bad_time}\n")))
        .await
        .unwrap_err();
    chain_reaches(&import, "premature end of input");
    let ImportError::Line { source: line, .. } = &import else {
        panic!("expected a bad line, got {import:?}");
    };
    let line: &LineError = line;
    chain_reaches(line, "premature end of input");

    let export = ExportError::Write(std::io::Error::other("the pipe is closed"));
    chain_reaches(&export, "the pipe is closed");
    chain_reaches(&ExportError::Upcast(Box::new(error)), "no upcast path");
}

#[tokio::test]
async fn application_command_and_context_errors() {
    let store = MemoryStore::new();
    let app = Application::builder(store.clone())
        .aggregate(Repository::<Counter, _>::new(store.clone()))
        .build()
        .unwrap();
    let member = || CommandContext::new().actor(Actor::new("member", "ann"));

    let bad_json = app
        .call_json("Tick", r#"{"id": "a", "refuse": "no"}"#, member())
        .unwrap_err();
    let ApplicationError::InvalidCommand(decode) = &bad_json else {
        panic!("expected an invalid command, got {bad_json:?}");
    };
    let decode: &CommandDecodeError = decode;
    assert_eq!(decode.path, "refuse");
    chain_reaches(decode, "invalid type");
    chain_reaches(&bad_json, "invalid type");

    let refused = app.execute(tick("a", true), member()).await.unwrap_err();
    chain_reaches(&refused, "the counter is jammed");
    let rejection = Rejection(Box::new(Refused {
        source: std::io::Error::other("the counter is jammed"),
    }));
    chain_reaches(&rejection, "the counter is jammed");

    let unknown = app.call_json("Tock", "{}", member()).unwrap_err();
    chain(&unknown);

    let twice = Application::builder(store.clone())
        .aggregate(Repository::<Counter, _>::new(store.clone()))
        .aggregate(Repository::<Counter, _>::new(store.clone()))
        .build()
        .unwrap_err();
    chain(&twice);
    let conflict = RegistryConflict {
        kind: EntryKind::Event,
        name: "Ticked".into(),
        version: 1,
    };
    chain(&conflict);
    chain(&BuildError::Registry(vec![conflict]));

    let malformed: CommandIdError = parse_command_id("order-7").unwrap_err();
    chain_reaches(&malformed, "failed to parse a UUID");
    chain(&CommandIdError::Missing);

    let unreadable = AuditError::Unreadable {
        stream_id: "factum.audit-Counter-a".into(),
        stream_version: 1,
        source: Some(serde_json::from_str::<u8>("x").unwrap_err()),
    };
    chain_reaches(&unreadable, "expected value");
    chain_reaches(&AuditError::Store(StoreError::Backend(io("gone"))), "gone");
}

/// Fails every event with an SQL error (its table does not exist), or its setup when
/// `broken_setup`.
struct Broken {
    broken_setup: bool,
}

impl factum::projection::Projection for Broken {
    const NAME: &'static str = "broken";
    const VERSION: u32 = 1;
    const EVENTS: &'static [&'static str] = &["Ticked"];
    type Tx = SqliteTx;

    async fn setup(&mut self, tx: &mut SqliteTx) -> Result<(), ProjectionError> {
        if self.broken_setup {
            tx.execute_batch("CREATE TABLE")?;
        }
        Ok(())
    }

    async fn handle(
        &mut self,
        _: &RecordedEvent,
        tx: &mut SqliteTx,
    ) -> Result<(), ProjectionError> {
        tx.execute("INSERT INTO missing (n) VALUES (1)", [])?;
        Ok(())
    }
}

#[tokio::test]
async fn projection_and_read_model_errors() {
    let dir = tempfile::tempdir().unwrap();
    let read_models = SqliteReadModel::open(dir.path().join("read"))
        .await
        .unwrap();
    let events = [recorded(1, 1, serde_json::json!({ "n": 1 }))];

    let mut stopping = Projector::new(
        Broken {
            broken_setup: false,
        },
        read_models.clone(),
    )
    .retry(Retry::never())
    .on_poison(OnPoison::Stop);
    let poisoned = stopping.apply(&events, 1).await.unwrap_err();
    assert!(
        matches!(poisoned, RunnerError::Poisoned { .. }),
        "{poisoned:?}"
    );
    chain_reaches(&poisoned, "no such table: missing");

    let mut setup = Projector::new(Broken { broken_setup: true }, read_models.clone());
    let failed = setup.apply(&events, 1).await.unwrap_err();
    assert!(matches!(failed, RunnerError::Setup { .. }), "{failed:?}");
    chain_reaches(&failed, "incomplete input");

    let handler = ProjectionError::from(Refused {
        source: std::io::Error::other("the counter is jammed"),
    });
    assert_eq!(
        handler.message(),
        "the counter refuses: the counter is jammed"
    );
    chain_reaches(handler.as_error(), "the counter is jammed");
    let manager = HandlerError::from(Refused {
        source: std::io::Error::other("the counter is jammed"),
    });
    assert_eq!(
        manager.message(),
        "the counter refuses: the counter is jammed"
    );
    chain_reaches(&*manager.into_error(), "the counter is jammed");

    // A file in the read-model directory that is no SQLite database.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("catalog.sqlite3"), b"not a database, not at all").unwrap();
    match SqliteReadModel::open(&other).await {
        Ok(_) => panic!("a file that is no read model was opened"),
        Err(error) => {
            chain(&error);
        }
    }
    let corrupt = ReadModelError::Corrupt {
        target: "broken v1".into(),
        what: "checkpoint",
        source: "negative position -1".into(),
    };
    chain_reaches(&corrupt, "negative position -1");
    chain_reaches(
        &RunnerError::ReadModel {
            projection: "broken",
            source: corrupt,
        },
        "negative position -1",
    );

    let panicked = tokio::spawn(async { panic!("the runner's own bug") })
        .await
        .unwrap_err();
    let task = RunnerError::Task {
        projection: "broken",
        source: TaskFailure::Join(panicked),
    };
    chain_reaches(&task, "the runner's own bug");
    chain(&TaskFailure::AlreadyReported);
    chain(&TaskFailure::StoppedBefore("reaching the position"));

    let query = QueryError::ReadModel(ReadModelError::NotActive {
        name: "broken".into(),
    });
    chain_reaches(&query, "never caught up");
    chain_reaches(
        &QueryError::Failed {
            query: "Totals",
            source: io("the reader hung up"),
        },
        "the reader hung up",
    );
    chain(&QueryError::Timeout {
        projection: "broken",
        position: 3,
        reached: 1,
        waited: Duration::from_millis(5),
    });
}

#[tokio::test]
async fn sqlite_store_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"x").unwrap();
    let cannot_open: SqliteOpenError = SqliteStore::open(file.join("events.sqlite3"))
        .await
        .unwrap_err();
    chain(&cannot_open);
    let not_a_store = dir.path().join("notes.sqlite3");
    std::fs::write(&not_a_store, b"some notes, not a database").unwrap();
    let refused = SqliteStore::open(&not_a_store).await.unwrap_err();
    chain(&refused);
}

/// Routes every `Ticked` to one instance, dispatching one `Tick` a dispatch that always
/// fails; refuses to route a `Ticked` whose `n` is 0.
struct Ticker;

impl factum::process::ProcessManager for Ticker {
    const NAME: &'static str = "ticker";
    const EVENTS: &'static [&'static str] = &["Ticked"];
    type State = u64;
    type Command = u64;

    fn route(&self, event: &RecordedEvent) -> Result<Route, HandlerError> {
        let ticked: serde_json::Value = serde_json::from_str(event.payload.get())?;
        if ticked["n"] == 0 {
            return Err(HandlerError::from(Refused {
                source: std::io::Error::other("a tick of nothing"),
            }));
        }
        Ok(Route::Start("one".into()))
    }

    async fn handle(
        &self,
        state: &mut u64,
        _: &RecordedEvent,
    ) -> Result<Reaction<u64>, HandlerError> {
        *state += 1;
        Ok(Reaction::none().dispatch(*state))
    }

    async fn dispatch(&self, command: &u64, _: &DispatchContext) -> Result<(), DispatchError> {
        Err(DispatchError::Failed {
            command: format!("Tick {command}"),
            source: io("the network is down"),
        })
    }
}

#[tokio::test]
async fn process_manager_errors() {
    let dir = tempfile::tempdir().unwrap();
    let read_models = SqliteReadModel::open(dir.path().join("read"))
        .await
        .unwrap();

    let mut driver = ProcessDriver::new(Ticker, read_models.clone()).retry(Retry::never());
    let handler = driver
        .apply(&[recorded(1, 1, serde_json::json!({ "n": 0 }))], 1)
        .await
        .unwrap_err();
    assert!(
        matches!(handler, ProcessError::Handler { .. }),
        "{handler:?}"
    );
    chain_reaches(&handler, "a tick of nothing");

    let dispatch = driver
        .apply(&[recorded(2, 1, serde_json::json!({ "n": 1 }))], 2)
        .await
        .unwrap_err();
    assert!(
        matches!(dispatch, ProcessError::Dispatch { .. }),
        "{dispatch:?}"
    );
    chain_reaches(&dispatch, "the network is down");

    // A rejection through the repository keeps the domain error whole.
    let store = MemoryStore::new();
    let counters = Repository::<Counter, _>::new(store);
    let context = DispatchContext {
        instance: "one".into(),
        metadata: CommandContext::new(),
        redelivery: false,
        kind: factum::process::CommandKind::Step,
    };
    let rejected = execute_once(&counters, tick("a", true), &context)
        .await
        .unwrap_err();
    assert!(
        matches!(rejected, DispatchError::Rejected { .. }),
        "{rejected:?}"
    );
    chain_reaches(&rejected, "the counter is jammed");

    let corrupt = ProcessError::Corrupt {
        manager: "ticker",
        instance: "one".into(),
        what: "state",
        source: Box::new(serde_json::from_str::<u64>("{").unwrap_err()),
    };
    chain_reaches(&corrupt, "invalid type: map");
    chain(&ProcessError::Timeout {
        manager: "ticker",
        instance: "one".into(),
        waited: Duration::from_millis(5),
    });
    chain(&ProcessError::Task {
        manager: "ticker",
        source: TaskFailure::AlreadyReported,
    });
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_errors() {
    use factum::postgres::{PostgresError, PostgresStore};

    // The connection string is refused before any server is asked.
    let error = match PostgresStore::connect("postgres://ann@host:notaport/db").await {
        Ok(_) => panic!("a bad connection string connected"),
        Err(error) => error,
    };
    let rendered = chain(&error);
    assert!(
        rendered.contains("cannot parse the connection string"),
        "{rendered}"
    );
    assert!(
        !rendered.contains("notaport"),
        "the string is not echoed: {rendered}"
    );
    let StoreError::Backend(backend) = &error else {
        panic!("expected a backend error, got {error:?}");
    };
    let postgres = backend.downcast_ref::<PostgresError>().unwrap();
    assert!(
        postgres.source().is_some(),
        "the parser's error is the source"
    );
    chain(&PostgresError::InvalidSchemaName("pg_x".into()));
}

#[cfg(feature = "nats")]
#[test]
fn bus_errors() {
    use factum::bus::BusError;

    let connect = BusError::Connect {
        url: "nats://127.0.0.1:1".into(),
        source: io("connection refused"),
    };
    chain_reaches(&connect, "connection refused");
    let malformed = BusError::Malformed {
        stream: "factum".into(),
        subject: "factum.Counter.Ticked".into(),
        stream_sequence: 7,
        source: Box::new(serde_json::from_str::<RecordedEvent>("{}").unwrap_err()),
    };
    chain_reaches(&malformed, "missing field");
    let projection = BusError::Projection {
        consumer: "counter_feed",
        source: Box::new(RunnerError::Store {
            projection: "counter",
            source: StoreError::Backend(io("disk full")),
        }),
    };
    chain_reaches(&projection, "disk full");
    chain(&BusError::Task {
        name: "counter_feed",
        source: TaskFailure::StoppedBefore("reaching the position"),
    });
}

#[cfg(feature = "conformance")]
#[test]
fn conformance_errors() {
    use factum::testing::conformance::shop::ShopError;

    chain(&ShopError::Undeliverable("nowhere".into()));
    chain(&factum::testing::conformance::Never);
}

/// The `#[error(...)]` attributes of `dir`'s sources, each with the item (variant or
/// struct) it describes.
fn error_attributes(dir: &Path, found: &mut Vec<(PathBuf, String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            error_attributes(&path, found);
            continue;
        }
        if path.extension().is_none_or(|extension| extension != "rs") {
            continue;
        }
        // Comments hold doc examples whose errors are not the crate's.
        let code: String = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut rest = code.as_str();
        while let Some(start) = rest.find("#[error(") {
            let after = &rest[start + "#[error(".len()..];
            let format_end = closing(after, '(', ')');
            let format = after[..format_end].to_owned();
            let item = &after[format_end..];
            let item_end = item_end(item);
            found.push((path.clone(), format, item[..item_end].to_owned()));
            rest = &after[format_end..];
        }
    }
}

/// Where the bracket opened just before `text` closes.
fn closing(text: &str, open: char, close: char) -> usize {
    let mut depth = 1;
    let mut in_string = false;
    let mut escaped = false;
    for (index, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            c if !in_string && c == open => depth += 1,
            c if !in_string && c == close => {
                depth -= 1;
                if depth == 0 {
                    return index;
                }
            }
            _ => {}
        }
    }
    text.len()
}

/// The end of the first item (`Name { .. }`, `Name(..)`, a unit `Name,` or `Name;`) after
/// the attribute, its other attributes skipped.
fn item_end(text: &str) -> usize {
    let mut index = 0;
    let bytes = text.as_bytes();
    while index < text.len() {
        match bytes[index] {
            b'#' => {
                let open = text[index..].find('[').unwrap() + index + 1;
                index = open + closing(&text[open..], '[', ']') + 1;
            }
            b'{' => return index + 1 + closing(&text[index + 1..], '{', '}'),
            b'(' => return index + 1 + closing(&text[index + 1..], '(', ')'),
            b',' | b';' => return index,
            _ => index += 1,
        }
    }
    text.len()
}

/// The fields of `item` that are its `source()`: `#[source]`, `#[from]` or named
/// `source`; tuple fields by their index.
fn source_fields(item: &str) -> Vec<String> {
    let tuple = !item.contains('{');
    let body = match item.find(['{', '(']) {
        Some(open) => &item[open + 1..],
        None => return Vec::new(),
    };
    let mut fields = Vec::new();
    for (index, field) in top_level_fields(body).iter().enumerate() {
        let marked = field.contains("#[source]") || field.contains("#[from]");
        let without_attributes = field.rsplit(']').next().unwrap_or(field).trim();
        let name = without_attributes
            .trim_start_matches("pub ")
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        if tuple && marked {
            fields.push(index.to_string());
        } else if !tuple && (marked || name == "source") {
            fields.push(name);
        }
    }
    fields
}

/// `body`'s fields, split at the commas outside brackets, without doc comments.
fn top_level_fields(body: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut depth = 0;
    for c in body.chars() {
        match c {
            '<' | '(' | '[' | '{' => depth += 1,
            '>' | ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                fields.push(String::new());
                continue;
            }
            _ => {}
        }
        if depth >= 0 {
            fields.last_mut().unwrap().push(c);
        }
    }
    fields.retain(|field| !field.trim().is_empty());
    fields
}

#[test]
fn no_error_message_prints_its_source() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    error_attributes(&root.join("src"), &mut found);
    error_attributes(&root.join("../codegen/src"), &mut found);
    assert!(
        found.len() > 100,
        "only {} #[error] attributes found",
        found.len()
    );
    let mut offenders = Vec::new();
    for (path, format, item) in &found {
        if format.trim() == "transparent" {
            continue;
        }
        for field in source_fields(item) {
            let printed = [
                format!("{{{field}}}"),
                format!("{{{field}:"),
                format!(".{field}"),
                format!("*{field}"),
                format!("{field})"),
            ];
            if printed
                .iter()
                .any(|pattern| format.contains(pattern.as_str()))
            {
                offenders.push(format!(
                    "{}: #[error({format})] prints `{field}`",
                    path.display()
                ));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "messages that print their source:\n{}",
        offenders.join("\n")
    );
}

/// The scanner above would pass vacuously if it missed the fields it looks for.
#[test]
fn the_scanner_finds_source_fields() {
    assert_eq!(
        source_fields("Read {\n line: usize,\n #[source]\n source: std::io::Error,\n }"),
        ["source"]
    );
    assert_eq!(source_fields("Rule(#[from] UnknownLintRule)"), ["0"]);
    assert_eq!(
        source_fields(
            "Stream {\n stream: String,\n /// The client's error.\n cause: Box<dyn Error>,\n #[source] inner: X,\n }"
        ),
        ["inner"]
    );
    assert!(source_fields("Missing,").is_empty());
}
