//! The main job's HTTP part: the care-task service served on a loopback port and driven
//! by a real HTTP client through a task's life — a retried completion, a stale
//! `If-Match`, a denial, a query that waits for its own write, and an event-stream
//! subscriber that hangs up and resumes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use factum::projection::sqlite::SqliteReadModel;
use factum::store::{EventStore, SqliteStore};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::demo::DemoError;
use crate::serve;

/// A response: status, the headers the flow looks at, the JSON body.
struct Reply {
    status: u16,
    etag: Option<String>,
    body: Value,
}

struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    async fn post(
        &self,
        token: &str,
        command: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Result<Reply, DemoError> {
        let mut request = self
            .http
            .post(format!("{}/commands/{command}", self.base))
            .bearer_auth(token)
            .json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Self::reply(request.send().await?).await
    }

    async fn get(&self, token: &str, path: &str) -> Result<Reply, DemoError> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await?;
        Self::reply(response).await
    }

    async fn reply(response: reqwest::Response) -> Result<Reply, DemoError> {
        let status = response.status().as_u16();
        let etag = response
            .headers()
            .get("etag")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = response.json().await?;
        Ok(Reply { status, etag, body })
    }
}

fn expect(what: &str, reply: &Reply, status: u16) -> Result<(), DemoError> {
    if reply.status == status {
        Ok(())
    } else {
        Err(DemoError::Scenario(format!(
            "{what}: expected {status}, got {} {}",
            reply.status, reply.body
        )))
    }
}

/// Follows the task events from `from_position` as dana, hangs up after `hang_up_after`
/// events, reconnects with `Last-Event-ID` and reads until it has `total`; returns the
/// positions seen and the id it resumed after.
async fn subscriber(
    base: String,
    from_position: u64,
    hang_up_after: usize,
    total: usize,
) -> Result<(Vec<u64>, u64), DemoError> {
    let http = reqwest::Client::new();
    let mut seen = Vec::new();
    let mut resumed_after = 0;
    while seen.len() < total {
        let mut request = http
            .get(format!(
                "{base}/events?streamType=Task&fromPosition={from_position}"
            ))
            .bearer_auth("token-dana");
        if let Some(last) = seen.last() {
            resumed_after = *last;
            request = request.header("last-event-id", last.to_string());
        }
        let response = request.send().await?;
        if response.status().as_u16() != 200 {
            return Err(DemoError::Scenario(format!(
                "the event stream answered {}",
                response.status()
            )));
        }
        let stop_at = if seen.is_empty() {
            hang_up_after
        } else {
            total
        };
        let mut body = response.bytes_stream();
        let mut buffer = String::new();
        // Reads `id:` lines until this connection's share is in, then drops it.
        'connection: while seen.len() < stop_at {
            let Some(chunk) = body.next().await else {
                break;
            };
            buffer.push_str(&String::from_utf8_lossy(&chunk?));
            while let Some(end) = buffer.find('\n') {
                let line: String = buffer.drain(..=end).collect();
                if let Some(id) = line.trim_end().strip_prefix("id:") {
                    let position = id.trim().parse().map_err(|_| {
                        DemoError::Scenario(format!("an event id that is no position: {id}"))
                    })?;
                    seen.push(position);
                    if seen.len() >= stop_at {
                        break 'connection;
                    }
                }
            }
        }
    }
    Ok((seen, resumed_after))
}

/// Serves the care-task service on loopback and drives one task through it.
pub async fn drive(
    store: &SqliteStore,
    read_models: &SqliteReadModel,
    run: u64,
    now: DateTime<Utc>,
) -> Result<(), DemoError> {
    let router = serve::router(store.clone(), read_models.clone(), serve::ward_tokens())?
        .merge(serve::metrics_route(serve::prometheus()?, store.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(DemoError::Serve)?;
    let address = listener.local_addr().map_err(DemoError::Serve)?;
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let client = Client {
        base: format!("http://{address}"),
        http: reqwest::Client::new(),
    };
    println!("serving the care-task service on http://{address} (bearer tokens `token-<name>`)");

    let task_id = format!("T-{run:03}-H");
    let created = client
        .post(
            "token-dana",
            "CreateTask",
            &json!({
                "task_id": task_id, "title": "Evening medication round",
                "care_recipient": "Mr. Okafor (room 4)",
                "due": now + chrono::TimeDelta::hours(2), "at": now,
            }),
            &[],
        )
        .await?;
    expect("creating a task", &created, 201)?;
    let first_position = created.body["position"].as_u64().unwrap_or_default();
    println!(
        "POST /commands/CreateTask as dana -> 201 Created: {} at version {}, position {first_position}, ETag {}",
        created.body["streamId"].as_str().unwrap_or_default(),
        created.body["version"],
        created.etag.as_deref().unwrap_or("-")
    );

    // A subscriber that hangs up after the first event and resumes.
    let subscribing = tokio::spawn(subscriber(client.base.clone(), first_position, 1, 3));

    let assign = json!({ "task_id": task_id, "member": "amira", "at": now });
    let assigned = client
        .post("token-dana", "AssignTask", &assign, &[])
        .await?;
    expect("assigning the task", &assigned, 200)?;
    println!(
        "POST /commands/AssignTask as dana -> 200: version {}",
        assigned.body["version"]
    );
    let reassign = json!({ "task_id": task_id, "member": "ben", "at": now });
    let stale = client
        .post(
            "token-dana",
            "AssignTask",
            &reassign,
            &[("if-match", "\"1\"")],
        )
        .await?;
    expect("a reassignment decided on version 1", &stale, 412)?;
    println!(
        "POST /commands/AssignTask as dana, If-Match \"1\" -> 412: {} (ETag {})",
        stale.body["detail"].as_str().unwrap_or_default(),
        stale.etag.as_deref().unwrap_or("-")
    );

    let completion = json!({ "task_id": task_id, "completed_by": "ben", "at": now, "note": null });
    let denied = client
        .post("token-ben", "CompleteTask", &completion, &[])
        .await?;
    expect("ben completing amira's task", &denied, 403)?;
    println!(
        "POST /commands/CompleteTask as ben -> 403: {}",
        denied.body["reason"].as_str().unwrap_or_default()
    );

    let key = factum::uuid::Uuid::now_v7().to_string();
    let completion =
        json!({ "task_id": task_id, "completed_by": "amira", "at": now, "note": "all taken" });
    let done = client
        .post(
            "token-amira",
            "CompleteTask",
            &completion,
            &[("idempotency-key", &key)],
        )
        .await?;
    expect("amira completing her task", &done, 200)?;
    let retried = client
        .post(
            "token-amira",
            "CompleteTask",
            &completion,
            &[("idempotency-key", &key)],
        )
        .await?;
    expect("the retried completion", &retried, 200)?;
    let stream_id = done.body["streamId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let completions = store
        .read_stream(&stream_id, 1, 100)
        .await?
        .iter()
        .filter(|event| event.name == "TaskCompleted")
        .count();
    if retried.body != done.body || completions != 1 {
        return Err(DemoError::Scenario(format!(
            "a retried completion must get the first answer and record once: {} vs {}, {completions} completions",
            retried.body, done.body
        )));
    }
    println!(
        "POST /commands/CompleteTask as amira, Idempotency-Key {key} -> 200 (version {}), retried -> 200 with the same answer; the stream holds 1 TaskCompleted",
        done.body["version"]
    );

    let position = done.body["position"].as_u64().unwrap_or_default();
    let answer = client
        .get(
            "token-amira",
            &format!("/queries/GetTaskById?task_id={task_id}&minPosition={position}"),
        )
        .await?;
    expect("the task by id", &answer, 200)?;
    println!(
        "GET /queries/GetTaskById?task_id={task_id}&minPosition={position} -> 200: completed by {} (read model at position {}, {})",
        answer.body["data"]["completed"]["by"]
            .as_str()
            .unwrap_or("nobody"),
        answer.body["freshness"]["position"],
        if answer.body["freshness"]["stale"] == true {
            "stale"
        } else {
            "fresh"
        }
    );

    let (seen, resumed_after) = tokio::time::timeout(Duration::from_secs(30), subscribing)
        .await
        .map_err(|_| DemoError::Scenario("the subscriber did not see every event".to_owned()))?
        .map_err(|error| DemoError::Scenario(format!("the subscriber failed: {error}")))??;
    let stored: Vec<u64> = store
        .read_stream(&stream_id, 1, 100)
        .await?
        .iter()
        .map(|event| event.position)
        .collect();
    if seen != stored {
        return Err(DemoError::Scenario(format!(
            "the subscriber saw {seen:?}, the stream holds {stored:?}"
        )));
    }
    println!(
        "GET /events?streamType=Task as dana: hung up after 1 event, resumed with Last-Event-ID {resumed_after}: saw positions {seen:?}, each once, in order"
    );

    // What Prometheus would scrape: the denial above among the commands, and the store.
    let page = client
        .http
        .get(format!("{}/metrics", client.base))
        .send()
        .await?
        .text()
        .await?;
    let sample = |series: &str| {
        page.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or("absent")
            .to_owned()
    };
    println!(
        "GET /metrics -> {} series; factum_commands_total{{command=\"CompleteTask\",aggregate=\"Task\",outcome=\"denied\"}} {}; event_store_size_bytes {}",
        page.lines().filter(|line| !line.starts_with('#')).count(),
        sample(
            r#"factum_commands_total{command="CompleteTask",aggregate="Task",outcome="denied"}"#
        ),
        sample("event_store_size_bytes"),
    );

    // The operator's console: its page, and the projections as it shows them.
    let page = client
        .http
        .get(format!("{}/console/", client.base))
        .send()
        .await?;
    let page_status = page.status();
    let title = page.text().await?.contains("<title>factum console</title>");
    let projections: Value = client
        .http
        .get(format!("{}/console/api/projections", client.base))
        .bearer_auth("token-olga")
        .send()
        .await?
        .json()
        .await?;
    let rows = projections["projections"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    println!(
        "GET /console/ -> {} (the console{}); as olga: head {}, {} projections: {}",
        page_status.as_u16(),
        if title { "" } else { "?" },
        projections["head"],
        rows.len(),
        rows.iter()
            .map(|row| format!(
                "{} at {}",
                row["name"].as_str().unwrap_or("?"),
                row["checkpoint"]
            ))
            .collect::<Vec<_>>()
            .join(", "),
    );
    server.abort();
    Ok(())
}
