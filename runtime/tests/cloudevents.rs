//! CloudEvents 1.0 JSON Lines: events a repository recorded in a SQLite store are
//! exported, imported into an empty store, and read back equal; a bad line is named and
//! nothing is written.

use std::io::Cursor;

use factum::cloudevents::{CloudEvents, ImportError, LineError};
use factum::prelude::*;
use factum::store::SqliteStore;
use serde_json::{Value, json};

/// Money was paid in; `note` is free text, `cents` an amount.
#[event(name = "Deposited")]
#[derive(Debug, Clone, PartialEq)]
pub struct Deposited {
    pub note: String,
    pub cents: i64,
}

/// The account was closed.
#[event(name = "Closed")]
#[derive(Debug, Clone, PartialEq)]
pub struct Closed {}

#[derive(Events, Debug, Clone, PartialEq)]
pub enum AccountEvent {
    Deposited(Deposited),
    Closed(Closed),
}

#[command]
#[derive(Debug, Clone, PartialEq)]
pub struct Deposit {
    #[aggregate_id]
    pub account_id: String,
    pub note: String,
    pub cents: i64,
}

#[command]
#[derive(Debug, Clone, PartialEq)]
pub struct Close {
    #[aggregate_id]
    pub account_id: String,
}

#[derive(Commands, Debug, Clone, PartialEq)]
pub enum AccountCommand {
    Deposit(Deposit),
    Close(Close),
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
pub struct Never;

#[derive(Default)]
pub struct Account;

#[aggregate(events = AccountEvent, commands = AccountCommand, error = Never)]
impl Account {
    #[handle]
    fn deposit(&self, command: Deposit) -> Result<Deposited, Never> {
        Ok(Deposited {
            note: command.note,
            cents: command.cents,
        })
    }

    #[handle]
    fn close(&self, _: Close) -> Result<Closed, Never> {
        Ok(Closed {})
    }

    #[apply]
    fn deposited(&mut self, _: &Deposited) {}

    #[apply]
    fn closed(&mut self, _: &Closed) {}
}

fn mapping() -> CloudEvents {
    CloudEvents::new("/services/accounts", "bank").unwrap()
}

/// A store holding what a repository records: two accounts, metadata of every kind.
async fn recorded(dir: &std::path::Path) -> SqliteStore {
    let store = SqliteStore::open(dir.join("source.sqlite3")).await.unwrap();
    let accounts = Repository::<Account, _>::new(store.clone());
    let correlation = factum::uuid::Uuid::now_v7();
    for (account, note, cents) in [
        ("a-1", "salary \"march\" ünïcödé", 250_000),
        ("a-2", "gift", 1_000),
        ("a-1", "refund\nsecond line", -4_500),
    ] {
        accounts
            .execute_with(
                Deposit {
                    account_id: account.into(),
                    note: note.into(),
                    cents,
                },
                CommandContext::new()
                    .correlation_id(correlation)
                    .actor(Actor::new("teller", "teller-7"))
                    .extra("channel", json!({ "kind": "branch", "id": 12 })),
            )
            .await
            .unwrap();
    }
    accounts
        .execute(Close {
            account_id: "a-2".into(),
        })
        .await
        .unwrap();
    store
}

async fn export(store: &SqliteStore) -> String {
    let mut out = Vec::new();
    let written = mapping().export_jsonl(store, 0, &mut out).await.unwrap();
    assert_eq!(written, 4);
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn an_export_imports_into_an_empty_store_and_reads_back_equal() {
    let dir = tempfile::tempdir().unwrap();
    let source = recorded(dir.path()).await;
    let jsonl = export(&source).await;

    let lines: Vec<Value> = jsonl
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let first = &lines[0];
    assert_eq!(first["specversion"], "1.0");
    assert_eq!(first["source"], "/services/accounts");
    assert_eq!(first["type"], "bank.Account.Deposited");
    assert_eq!(first["subject"], "Account-a-1");
    assert_eq!(first["datacontenttype"], "application/json");
    assert_eq!(first["eventversion"], 1);
    assert_eq!(first["streamversion"], 1);
    assert_eq!(first["actor"], "teller-7");
    assert_eq!(first["sequence"], "00000000000000000001");
    assert_eq!(lines[3]["type"], "bank.Account.Closed");
    let sequences: Vec<&str> = lines
        .iter()
        .map(|line| line["sequence"].as_str().unwrap())
        .collect();
    let mut sorted = sequences.clone();
    sorted.sort();
    assert_eq!(sequences, sorted, "the sequence sorts as a string");

    let target = SqliteStore::open(dir.path().join("target.sqlite3"))
        .await
        .unwrap();
    let report = mapping()
        .import_jsonl(&target, Cursor::new(jsonl.as_bytes()))
        .await
        .unwrap();
    assert_eq!((report.events, report.streams, report.batches), (4, 2, 4));
    let (source_log, target_log) = (
        source.read_all(0, 100).await.unwrap(),
        target.read_all(0, 100).await.unwrap(),
    );
    assert_eq!(
        target_log, source_log,
        "every field, the payload's bytes included"
    );

    // Running it again is harmless.
    mapping()
        .import_jsonl(&target, Cursor::new(jsonl.as_bytes()))
        .await
        .unwrap();
    assert_eq!(target.read_all(0, 100).await.unwrap(), source_log);
    assert_eq!(export(&target).await, jsonl, "and exports the same file");
}

/// Imports `jsonl` into a new store; returns the error and checks nothing was written.
#[tokio::test]
async fn a_batch_is_an_array_of_the_structured_events_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = recorded(dir.path()).await;
    let events = store.read_all(0, 10).await.unwrap();
    let batch: Vec<Value> = serde_json::from_str(&mapping().to_batch(&events).unwrap()).unwrap();
    assert_eq!(batch.len(), events.len());
    for (element, event) in batch.iter().zip(&events) {
        let single: Value = serde_json::from_str(&mapping().to_structured(event).unwrap()).unwrap();
        assert_eq!(
            *element, single,
            "the batch holds the event as it stands alone"
        );
        let imported = mapping().from_structured(&element.to_string()).unwrap();
        assert_eq!(imported.event.event_id, event.event_id);
    }
    assert_eq!(
        mapping().to_batch(&[]).unwrap(),
        "[]",
        "an empty batch is an empty array"
    );
}

async fn refused(dir: &std::path::Path, jsonl: &str) -> ImportError {
    let target =
        SqliteStore::open(dir.join(format!("refused-{}.sqlite3", factum::uuid::Uuid::now_v7())))
            .await
            .unwrap();
    let error = mapping()
        .import_jsonl(&target, Cursor::new(jsonl.as_bytes()))
        .await
        .expect_err("the import is refused");
    assert!(
        target.read_all(0, 10).await.unwrap().is_empty(),
        "nothing was written"
    );
    error
}

fn edit_line(jsonl: &str, line: usize, edit: impl Fn(&mut Value)) -> String {
    jsonl
        .lines()
        .enumerate()
        .map(|(index, text)| {
            if index + 1 == line {
                let mut value: Value = serde_json::from_str(text).unwrap();
                edit(&mut value);
                value.to_string()
            } else {
                text.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn a_bad_line_is_named_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = export(&recorded(dir.path()).await).await;

    let missing_id = edit_line(&jsonl, 3, |event| {
        event.as_object_mut().unwrap().remove("id");
    });
    let error = refused(dir.path(), &missing_id).await;
    assert_eq!(
        factum::error::Report(&error).to_string(),
        "line 3: not importable; nothing was written: the CloudEvent has no `id`"
    );

    let other_domain = edit_line(&jsonl, 2, |event| {
        event["type"] = json!("shop.Order.OrderPlaced")
    });
    let error = refused(dir.path(), &other_domain).await;
    assert!(
        matches!(error, ImportError::Line { line: 2, .. }),
        "{error:?}"
    );

    let gap = edit_line(&jsonl, 4, |event| event["streamversion"] = json!(3));
    match refused(dir.path(), &gap).await {
        ImportError::Line {
            line: 4,
            source:
                LineError::OutOfOrder {
                    previous: 1,
                    found: 3,
                    ..
                },
        } => {}
        other => panic!("expected a gap at line 4, got {other:?}"),
    }

    let bad_time = edit_line(&jsonl, 1, |event| event["time"] = json!("yesterday"));
    let error = refused(dir.path(), &bad_time).await;
    assert!(
        factum::error::Report(&error).to_string().starts_with(
            "line 1: not importable; nothing was written: the CloudEvent's `time` is invalid"
        ),
        "{}",
        factum::error::Report(&error)
    );

    let not_json = format!("{jsonl}{{\"specversion\": ");
    let error = refused(dir.path(), &not_json).await;
    assert!(
        matches!(error, ImportError::Line { line: 5, .. }),
        "{error:?}"
    );
}
