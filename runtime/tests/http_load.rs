//! Many clients at once against a real server on loopback, on SQLite and on PostgreSQL:
//! 1,000 concurrent command requests over 100 streams, some sent twice at once and some
//! retried with their key after an answer. Every acknowledged command's event is stored
//! exactly once, nothing unacknowledged is stored, and every stream's versions are
//! gapless.

mod postgres_common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use factum::application::Application;
use factum::context::Actor;
use factum::http::{BearerTokens, HttpApi, Principal};
use factum::prelude::*;
use factum::store::{EventStore, SqliteStore};
use serde_json::{Value, json};

#[event(name = "VisitCounted")]
pub struct Counted {
    pub n: u64,
    pub note: String,
}

#[derive(Events)]
pub enum TallyEvent {
    Counted(Counted),
}

#[command(name = "CountVisit")]
pub struct CountVisit {
    #[aggregate_id]
    pub room: String,
    pub note: String,
}

#[derive(Commands)]
pub enum TallyCommand {
    Count(CountVisit),
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
pub struct Never;

/// How many visits a room had: each new one is numbered after the last.
#[derive(Default)]
pub struct Tally {
    visits: u64,
}

#[aggregate(name = "Tally", events = TallyEvent, commands = TallyCommand, error = Never)]
impl Tally {
    #[handle]
    fn count(&self, command: CountVisit) -> Result<Counted, Never> {
        Ok(Counted {
            n: self.visits + 1,
            note: command.note,
        })
    }

    #[apply]
    fn counted(&mut self, event: &Counted) {
        self.visits = event.n;
    }
}

const REQUESTS: usize = 1000;
const STREAMS: usize = 100;

async fn start<S: EventStore + Clone + 'static>(store: S) -> String {
    let app = Application::builder(store.clone())
        .aggregate(Repository::<Tally, _>::new(store))
        .build()
        .expect("builds");
    let tokens = BearerTokens::new().token("t-clerk", Principal::new(Actor::new("clerk", "c-1")));
    let router = HttpApi::new(app, tokens).router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let base = format!("http://{}", listener.local_addr().expect("an address"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

/// Sends request `i` until it is acknowledged (a concurrent writer's `409` is sent again
/// with the same key); returns the acknowledgement.
async fn send(client: &reqwest::Client, base: &str, key: &str, body: &Value) -> Value {
    for attempt in 0.. {
        let response = client
            .post(format!("{base}/commands/CountVisit"))
            .bearer_auth("t-clerk")
            .header("idempotency-key", key)
            .json(body)
            .send()
            .await
            .expect("the server answers");
        let status = response.status().as_u16();
        let answer: Value = response.json().await.expect("a JSON body");
        match status {
            200 | 201 => return answer,
            409 if answer["type"] == "urn:factum:problem:concurrent-writes" && attempt < 200 => {
                // Another writer of the stream won; a little later, the same command.
                tokio::time::sleep(std::time::Duration::from_millis(1 + (attempt % 7) as u64))
                    .await;
            }
            _ => panic!("request {key}: {status} {answer}"),
        }
    }
    unreachable!("the loop returns or panics")
}

async fn load<S: EventStore + Clone + 'static>(store: S) {
    let base = Arc::new(start(store.clone()).await);
    let client = reqwest::Client::new();
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let (client, base) = (client.clone(), Arc::clone(&base));
            tokio::spawn(async move {
                let key = factum::uuid::Uuid::now_v7().to_string();
                let body =
                    json!({ "room": format!("r-{}", i % STREAMS), "note": format!("request {i}") });
                let acknowledged = if i % 7 == 0 {
                    // The same request twice at once: one runs, both get its answer.
                    let (first, second) = tokio::join!(
                        send(&client, &base, &key, &body),
                        send(&client, &base, &key, &body)
                    );
                    assert_eq!(first, second, "request {i} sent twice at once");
                    first
                } else {
                    send(&client, &base, &key, &body).await
                };
                if i % 3 == 0 {
                    // A retry after the answer: the same answer again.
                    let again = send(&client, &base, &key, &body).await;
                    assert_eq!(again, acknowledged, "request {i} retried");
                }
                assert_eq!(acknowledged["commandId"], key.as_str());
                (key, acknowledged)
            })
        })
        .collect();
    let mut acknowledged = HashMap::new();
    for task in tasks {
        let (key, answer) = task.await.expect("a client task ends");
        acknowledged.insert(key, answer);
    }
    assert_eq!(acknowledged.len(), REQUESTS);

    let events: Vec<_> = store
        .read_all(0, 10 * REQUESTS)
        .await
        .expect("read the log")
        .into_iter()
        .filter(|event| event.stream_type == "Tally")
        .collect();
    assert_eq!(events.len(), REQUESTS, "one event per acknowledged command");
    let mut versions: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for event in &events {
        let command = event
            .metadata
            .causation_id
            .expect("a command's event names the command")
            .to_string();
        let answer = acknowledged.remove(&command).unwrap_or_else(|| {
            panic!(
                "event {} of no acknowledged command, or of one twice",
                event.event_id
            )
        });
        assert_eq!(
            (
                answer["streamId"].as_str(),
                answer["version"].as_u64(),
                answer["position"].as_u64()
            ),
            (
                Some(event.stream_id.as_str()),
                Some(event.stream_version),
                Some(event.position)
            ),
            "the acknowledgement names the stored event"
        );
        let payload: Value = serde_json::from_str(event.payload.get()).expect("a payload");
        assert_eq!(
            payload["n"], event.stream_version,
            "decided on the version before it"
        );
        versions
            .entry(event.stream_id.clone())
            .or_default()
            .push(event.stream_version);
    }
    assert!(
        acknowledged.is_empty(),
        "every acknowledged command's event is stored"
    );
    assert_eq!(versions.len(), STREAMS);
    for (stream, versions) in versions {
        let expected: Vec<u64> = (1..=(REQUESTS / STREAMS) as u64).collect();
        assert_eq!(versions, expected, "{stream}: gapless");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_on_sqlite_are_each_recorded_once() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(dir.path().join("events.sqlite3"))
        .await
        .expect("opens");
    load(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_on_postgres_are_each_recorded_once() {
    let store = postgres_common::fresh_store("http_load").await;
    load(store).await;
}
