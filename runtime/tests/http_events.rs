//! Reading events over HTTP from a real server on loopback: a stream's envelopes under
//! the read policy with every read audited, and the live log as Server-Sent Events that
//! resume from the store after a disconnect.

mod http_common;

use std::collections::BTreeSet;
use std::time::Duration;

use factum::store::EventStore;
use futures_util::StreamExt;
use serde_json::{Value, json};

use http_common::{Server, serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streams_envelopes_are_served_under_the_read_policy_and_every_read_is_audited() {
    let server = serve().await;
    for (command, body) in [
        ("BookRoom", json!({ "room": "101", "nights": 2 })),
        ("CancelBooking", json!({ "room": "101" })),
    ] {
        let answer = server.send(server.post(command, "t-ann", &body)).await;
        assert!(answer.status < 300, "{}", answer.body);
    }
    let get = |token: &'static str, path: &str| {
        server
            .client
            .get(format!("{}{path}", server.base))
            .bearer_auth(token)
    };

    let read = server.send(get("t-mia", "/streams/Room-101")).await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.body["streamType"], "Room");
    assert_eq!(read.body["version"], 2);
    let stored = server
        .store
        .read_stream("Room-101", 1, 10)
        .await
        .expect("read");
    let expected: Vec<Value> = stored
        .iter()
        .map(|event| serde_json::to_value(event).expect("an envelope"))
        .collect();
    assert_eq!(
        read.body["events"],
        Value::Array(expected),
        "the stored envelopes"
    );

    let later = server
        .send(get("t-mia", "/streams/Room-101?fromVersion=2"))
        .await;
    assert_eq!(later.body["events"].as_array().map(Vec::len), Some(1));
    assert_eq!(later.body["events"][0]["name"], "BookingCancelled");

    let denied = server.send(get("t-ann", "/streams/Room-101")).await;
    denied.assert_problem(403, "denied", "/streams/Room-101");
    assert_eq!(
        denied.body["reason"],
        "only managers read the rooms' events"
    );

    let audit = factum::authorization::reads(&server.store, "Room-101")
        .await
        .expect("the access record reads");
    let who: Vec<_> = audit
        .iter()
        .map(|read| {
            (
                read.actor.as_str(),
                read.from_version,
                read.events,
                read.denied.is_some(),
            )
        })
        .collect();
    assert_eq!(
        who,
        [
            ("mia", 1, 2, false),
            ("mia", 2, 1, false),
            ("ann", 1, 0, true)
        ]
    );

    server
        .send(get("t-mia", "/streams/Room-404"))
        .await
        .assert_problem(404, "unknown-stream", "/streams/Room-404");
    // The audit record is the service's, never served.
    server
        .send(get("t-mia", "/streams/factum.access-Room-101"))
        .await
        .assert_problem(404, "unknown-stream", "/streams/factum.access-Room-101");
    server
        .send(get("t-mia", "/streams/Room-101?fromVersion=first"))
        .await
        .assert_problem(400, "invalid-parameter", "/streams/Room-101");
    let anonymous = server
        .send(
            server
                .client
                .get(format!("{}/streams/Room-101", server.base)),
        )
        .await;
    anonymous.assert_problem(401, "unauthenticated", "/streams/Room-101");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_refuses_what_it_may_not_serve() {
    let server = serve().await;
    let events = |token: &'static str, query: &str| {
        server
            .client
            .get(format!("{}/events{query}", server.base))
            .bearer_auth(token)
    };
    server
        .send(events("t-ann", "?streamType=Room"))
        .await
        .assert_problem(403, "denied", "/events");
    server
        .send(events("t-mia", "?streamType=factum.Audit"))
        .await
        .assert_problem(403, "denied", "/events");
    server
        .send(events("t-mia", ""))
        .await
        .assert_problem(400, "invalid-parameter", "/events");
    server
        .send(events("t-mia", "?streamType=Room").header("last-event-id", "the-last-one"))
        .await
        .assert_problem(400, "invalid-parameter", "/events");
}

/// One Server-Sent Event: its id, type and data.
#[derive(Debug)]
struct Sent {
    id: Option<u64>,
    event: Option<String>,
    data: String,
}

/// Reads Server-Sent Events from `response` until `enough` says so (given the events and
/// the count of keep-alive comments read so far) or the stream ends.
async fn read_events(
    response: reqwest::Response,
    enough: impl Fn(&[Sent], usize) -> bool,
) -> (Vec<Sent>, usize) {
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    let mut comments = 0;
    let mut current = Sent {
        id: None,
        event: None,
        data: String::new(),
    };
    while !enough(&events, comments) {
        let Some(chunk) = body.next().await else {
            break;
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk.expect("a chunk")));
        while let Some(end) = buffer.find('\n') {
            let line: String = buffer.drain(..=end).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !current.data.is_empty() || current.id.is_some() {
                    events.push(std::mem::replace(
                        &mut current,
                        Sent {
                            id: None,
                            event: None,
                            data: String::new(),
                        },
                    ));
                }
            } else if line.starts_with(':') {
                comments += 1;
            } else if let Some(id) = line.strip_prefix("id:") {
                current.id = id.trim().parse().ok();
            } else if let Some(event) = line.strip_prefix("event:") {
                current.event = Some(event.trim().to_owned());
            } else if let Some(data) = line.strip_prefix("data:") {
                current.data.push_str(data.trim_start());
            }
        }
    }
    (events, comments)
}

/// A subscriber that follows the rooms' events, hanging up after a few events each time
/// and reconnecting with `Last-Event-ID`, until it has seen `total`.
async fn subscriber(server: &Server, seed: u64, total: usize) -> (Vec<u64>, usize) {
    let mut seen: Vec<u64> = Vec::new();
    let mut random = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut connections = 0;
    while seen.len() < total {
        connections += 1;
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        let hang_up_after = 1 + (random % 17) as usize;
        let mut request = server
            .client
            .get(format!("{}/events?streamType=Room", server.base))
            .bearer_auth("t-mia");
        if let Some(last) = seen.last() {
            request = request.header("last-event-id", last.to_string());
        }
        let response = request.send().await.expect("subscribes");
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        let wanted = total - seen.len();
        let (events, _) = read_events(response, |events, _| {
            events.len() >= hang_up_after.min(wanted)
        })
        .await;
        for event in events {
            let envelope: Value = serde_json::from_str(&event.data).expect("an envelope");
            let id = event.id.expect("every event has an id");
            assert_eq!(envelope["position"], id, "the id is the global position");
            assert_eq!(event.event.as_deref(), envelope["name"].as_str());
            seen.push(id);
        }
    }
    (seen, connections)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_that_disconnect_see_every_event_once_in_order() {
    let server = std::sync::Arc::new(serve().await);
    const ROOMS: usize = 10;
    const ROUNDS: usize = 8;
    // Each round books and cancels every room: two events per room and round.
    let total = ROOMS * ROUNDS * 2;

    let writer = {
        let server = std::sync::Arc::clone(&server);
        tokio::spawn(async move {
            for _ in 0..ROUNDS {
                for room in 0..ROOMS {
                    for (command, body) in [
                        (
                            "BookRoom",
                            json!({ "room": format!("r-{room}"), "nights": 1 }),
                        ),
                        ("CancelBooking", json!({ "room": format!("r-{room}") })),
                    ] {
                        let answer = server.send(server.post(command, "t-ann", &body)).await;
                        assert!(answer.status < 300, "{}", answer.body);
                    }
                }
            }
        })
    };
    let subscribers: Vec<_> = (0..5)
        .map(|seed| {
            let server = std::sync::Arc::clone(&server);
            tokio::spawn(async move { subscriber(&server, seed, total).await })
        })
        .collect();
    writer.await.expect("the writer ends");

    let rooms: Vec<u64> = server
        .store
        .read_all(0, 10_000)
        .await
        .expect("read")
        .into_iter()
        .filter(|event| event.stream_type == "Room")
        .map(|event| event.position)
        .collect();
    assert_eq!(rooms.len(), total);
    for subscriber in subscribers {
        let (seen, connections) = tokio::time::timeout(Duration::from_secs(120), subscriber)
            .await
            .expect("every subscriber sees every event")
            .expect("the subscriber ends");
        assert_eq!(seen, rooms, "every event once, in order");
        assert!(connections > 1, "the subscriber reconnected");
        assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), seen.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_event_stream_sends_keep_alive_comments_and_resumes_from_a_position() {
    let server = serve().await;
    for room in ["a", "b", "c"] {
        server
            .send(server.post("BookRoom", "t-ann", &json!({ "room": room, "nights": 1 })))
            .await;
    }
    let positions: Vec<u64> = server
        .store
        .read_all(0, 100)
        .await
        .expect("read")
        .iter()
        .map(|event| event.position)
        .collect();
    let response = server
        .client
        .get(format!(
            "{}/events?streamType=Room&fromPosition={}",
            server.base, positions[1]
        ))
        .bearer_auth("t-mia")
        .send()
        .await
        .expect("subscribes");
    // Enough once both events arrived and the idle stream kept itself alive.
    let (events, comments) = read_events(response, |events, comments| {
        events.len() >= 2 && comments >= 2
    })
    .await;
    let ids: Vec<Option<u64>> = events.iter().map(|event| event.id).collect();
    assert_eq!(ids, [Some(positions[1]), Some(positions[2])]);
    assert!(comments >= 1, "keep-alive comments while idle");
}
