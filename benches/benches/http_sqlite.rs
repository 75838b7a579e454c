//! A command's round trip over HTTP on SQLite: factum's HTTP layer (`HttpApi` over an
//! `Application` with the account's policy) against a hand-written axum handler doing
//! the same work with rusqlite, at 1 and at 32 concurrent clients; and the delivery of
//! Server-Sent Events to 100 subscribers.
//!
//! Group `http_sqlite`, both servers on loopback in this process, driven by `reqwest`:
//!
//! - `factum/{1,32}_clients`: `POST /commands/Deposit` with a bearer token, a fresh
//!   `Idempotency-Key` and `{"account", "amount"}`: authentication (`BearerTokens`), the
//!   application's routing, the repository's session (the command record, the three
//!   stored events replayed, the policy, the decision, the append) and the JSON
//!   acknowledgement.
//! - `raw/{1,32}_clients`: an axum handler written by hand: the bearer token compared,
//!   the key parsed, the body read with serde, then `account::raw_execute` (the raw
//!   baseline of `execute_sqlite`: one write transaction, the same rows and the same
//!   dedup row) on the writer connection behind a mutex on tokio's blocking pool — as a
//!   hand-written rusqlite handler runs it — and the same acknowledgement.
//!
//! Each request deposits into an account of its own whose stream holds three events,
//! seeded untimed before each measured batch. `N_clients` sends the batch's requests
//! from N tasks at once; throughput is requests per second.
//!
//! Group `sse_fan_out`: 100 subscribers follow `GET /events?streamType=Account` while
//! 1,000 events are appended (in batches of 100 through the store); the time until every
//! subscriber has received every event, as events delivered per second.
//!
//! Before timing, the bench checks that both servers acknowledge a deposit with the
//! same fields, write its event with the principal's actor and tenant, and answer a
//! repeated key with the first acknowledgement. Run with
//! `cargo bench -p factum-benches --bench http_sqlite`; the figures are in BENCHMARKS.md.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use factum::application::Application;
use factum::authorization::Decision;
use factum::context::parse_command_id;
use factum::http::{BearerTokens, HttpApi, Principal};
use factum::prelude::*;
use factum::store::SqliteStore;
use futures_util::StreamExt;
use rusqlite::Connection;
use serde_json::{Value, json};

#[path = "execute/account.rs"]
mod account;
#[path = "shared/sqlite.rs"]
mod sqlite;

use account::*;
use sqlite::raw_connection;

const TOKEN: &str = "token-of-the-owner";

/// factum's server over the file at `path`.
async fn factum_server(path: &Path) -> (String, SqliteStore) {
    let store = SqliteStore::open(path).await.expect("opens");
    let app = Application::builder(store.clone())
        .aggregate(Repository::<Account, _>::new(store.clone()).with_policy(policy))
        .build()
        .expect("builds");
    let tokens = BearerTokens::new().token(
        TOKEN,
        Principal::new(Actor::new("customer", OWNER)).in_tenant(TENANT),
    );
    let router = HttpApi::new(app, tokens)
        .read_policy(|_: &Principal, stream_type: &str| {
            Decision::allow_if(stream_type == "Account", "accounts only")
        })
        .router();
    (serve(router).await, store)
}

/// The raw server's state: the writer connection.
type Writer = Arc<Mutex<Connection>>;

/// The hand-written handler: the same checks and work, by hand.
async fn raw_deposit(
    State(writer): State<Writer>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let authorized = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value == format!("Bearer {TOKEN}"));
    if !authorized {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Some(command_id) = headers
        .get("idempotency-key")
        .and_then(|value| value.to_str().ok())
        .and_then(|key| parse_command_id(key).ok())
    else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let Ok(deposit) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let (Some(account), Some(amount)) = (deposit["account"].as_str(), deposit["amount"].as_u64())
    else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let account = account.to_owned();
    let ctx = identity().command_id(command_id);
    let stream_id = format!("Account-{account}");
    let outcome = tokio::task::spawn_blocking(move || {
        let connection = writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        raw_execute(&connection, &account, amount, &ctx)
    })
    .await;
    match outcome {
        Ok(Ok(RawOutcome::Executed { version, .. } | RawOutcome::AlreadyExecuted { version })) => {
            let body = json!({
                "commandId": command_id,
                "acknowledged": true,
                "streamId": stream_id,
                "version": version,
                "timestamp": factum::envelope::now(),
            });
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Ok(Err(refused)) => (StatusCode::CONFLICT, refused).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The raw server over the file at `path`.
async fn raw_server(path: &Path) -> String {
    let writer: Writer = Arc::new(Mutex::new(raw_connection(path)));
    let router = axum::Router::new()
        .route("/deposit", axum::routing::post(raw_deposit))
        .with_state(writer);
    serve(router).await
}

async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let base = format!("http://{}", listener.local_addr().expect("an address"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

/// One deposit into `account` through `url`; the acknowledgement.
async fn deposit(client: &reqwest::Client, url: &str, account: &str, key: &str) -> Value {
    let response = client
        .post(url)
        .bearer_auth(TOKEN)
        .header("idempotency-key", key)
        .json(&json!({ "account": account, "amount": AMOUNT }))
        .send()
        .await
        .expect("the server answers");
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.expect("an acknowledgement")
}

/// Sends one deposit per account from `clients` tasks at once; the elapsed time.
async fn batch(
    client: &reqwest::Client,
    url: &str,
    accounts: Vec<String>,
    clients: usize,
) -> Duration {
    let queue = Arc::new(Mutex::new(accounts));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (client, url, queue) = (client.clone(), url.to_owned(), Arc::clone(&queue));
            tokio::spawn(async move {
                loop {
                    let next = queue
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .pop();
                    let Some(account) = next else { break };
                    let key = factum::uuid::Uuid::now_v7().to_string();
                    deposit(&client, &url, &account, &key).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a client ends");
    }
    started.elapsed()
}

fn http_sqlite(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a scratch folder");
    let (factum_files, raw_files) = (
        dir.path().join("factum.sqlite3"),
        dir.path().join("raw.sqlite3"),
    );
    let ((factum_base, store), raw_base) = runtime.block_on(async {
        let factum = factum_server(&factum_files).await;
        // The raw file gets factum's schema, then its own connection.
        drop(SqliteStore::open(&raw_files).await.expect("opens"));
        (factum, raw_server(&raw_files).await)
    });
    let factum_url = format!("{factum_base}/commands/Deposit");
    let raw_url = format!("{raw_base}/deposit");
    let factum_accounts = Seeder::new(&factum_files, "f", 256);
    let raw_accounts = Seeder::new(&raw_files, "r", 256);
    let client = reqwest::Client::new();

    // Both acknowledge a deposit alike, record it once, and answer a repeated key with
    // the first acknowledgement.
    runtime.block_on(async {
        for (url, accounts) in [(&factum_url, &factum_accounts), (&raw_url, &raw_accounts)] {
            let account = accounts.account();
            let key = factum::uuid::Uuid::now_v7().to_string();
            let first = deposit(&client, url, &account, &key).await;
            let again = deposit(&client, url, &account, &key).await;
            assert_eq!(
                (&first["commandId"], &first["streamId"], &first["version"]),
                (&again["commandId"], &again["streamId"], &again["version"])
            );
            assert_eq!(
                (first["version"].as_u64(), first["acknowledged"].as_bool()),
                (Some(4), Some(true))
            );
        }
        let events = store.read_stream("Account-f-0", 1, 10).await.expect("read");
        assert_eq!(events.len(), 4, "one deposit recorded, once");
        assert_eq!(
            events[3].metadata.issued_by(),
            Some(Actor::new("customer", OWNER))
        );
        assert_eq!(events[3].metadata.tenant.as_deref(), Some(TENANT));
    });

    let mut group = c.benchmark_group("http_sqlite");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(6));
    for clients in [1, 32] {
        group.throughput(Throughput::Elements(1));
        for (side, url, accounts) in [
            ("factum", &factum_url, &factum_accounts),
            ("raw", &raw_url, &raw_accounts),
        ] {
            group.bench_function(format!("{side}/{clients}_clients"), |b| {
                b.iter_custom(|iters| {
                    let batch_accounts: Vec<String> =
                        (0..iters).map(|_| accounts.account()).collect();
                    runtime.block_on(batch(&client, url, batch_accounts, clients))
                });
            });
        }
    }
    group.finish();

    // Server-Sent Events to 100 subscribers.
    let mut group = c.benchmark_group("sse_fan_out");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    const SUBSCRIBERS: usize = 100;
    const EVENTS: usize = 1000;
    group.throughput(Throughput::Elements((SUBSCRIBERS * EVENTS) as u64));
    group.bench_function("factum/100_subscribers_1000_events", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += fan_out(&client, &factum_base, &store, SUBSCRIBERS, EVENTS).await;
                }
                total
            })
        });
    });
    group.finish();
}

/// Subscribes `subscribers` clients at the head of the log, appends `events` events,
/// and returns the time from the first append until every subscriber had every event.
async fn fan_out(
    client: &reqwest::Client,
    base: &str,
    store: &SqliteStore,
    subscribers: usize,
    events: usize,
) -> Duration {
    let head = store
        .head()
        .await
        .expect("the head")
        .map_or(0, |head| head.position);
    let mut readers = Vec::new();
    for _ in 0..subscribers {
        let response = client
            .get(format!(
                "{base}/events?streamType=Account&fromPosition={}",
                head + 1
            ))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("subscribes");
        assert_eq!(response.status().as_u16(), 200);
        readers.push(tokio::spawn(async move {
            let mut body = response.bytes_stream();
            let mut seen = 0;
            let mut buffer = Vec::new();
            while seen < events {
                let chunk = body
                    .next()
                    .await
                    .expect("the stream goes on")
                    .expect("a chunk");
                buffer.extend_from_slice(&chunk);
                // Count the events' `id:` lines.
                while let Some(end) = buffer.iter().position(|byte| *byte == b'\n') {
                    if buffer.starts_with(b"id:") {
                        seen += 1;
                    }
                    buffer.drain(..=end);
                }
            }
            Instant::now()
        }));
    }
    let stream = format!("Account-fan-{}", factum::uuid::Uuid::now_v7());
    let started = Instant::now();
    for batch in 0..events / 100 {
        let new_events = (0..100)
            .map(|n| {
                NewEvent::new(
                    "Deposited",
                    1,
                    serde_json::value::to_raw_value(&json!({ "amount": batch * 100 + n }))
                        .expect("JSON"),
                    identity().event_metadata(),
                )
            })
            .collect();
        store
            .append(
                &stream,
                "Account",
                factum::store::ExpectedVersion::Any,
                new_events,
            )
            .await
            .expect("appends");
    }
    let mut last = started;
    for reader in readers {
        last = last.max(reader.await.expect("a subscriber ends"));
    }
    last - started
}

criterion_group!(benches, http_sqlite);
criterion_main!(benches);
