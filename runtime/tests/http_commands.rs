//! `POST /commands/{name}` served on loopback and driven by a real HTTP client: every
//! status of the wire contract, and nothing written on any error (the store's events
//! compared before and after).

mod http_common;

use std::sync::atomic::Ordering;

use factum::context::Actor;
use factum::store::EventStore;
use serde_json::json;

use http_common::{send_raw, send_raw_body, serve, serve_with};
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_is_acknowledged_once_per_key_and_under_its_precondition() {
    let server = serve().await;
    let key = "0190f1c2-7a4b-7c3d-9e8f-0123456789ab";
    let book = json!({ "room": "101", "nights": 2 });

    let created = server
        .send(
            server
                .post("BookRoom", "t-ann", &book)
                .header("idempotency-key", key),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.header("etag"), Some("\"1\""));
    assert_eq!(created.header("idempotency-key"), Some(key));
    assert_eq!(created.body["commandId"], key);
    assert_eq!(created.body["acknowledged"], true);
    assert_eq!(created.body["streamId"], "Room-101");
    assert_eq!(created.body["version"], 1);
    let position = created.body["position"].as_u64().expect("a position");
    let stored = server.store.read_all(0, 10).await.expect("read");
    assert_eq!(stored[0].position, position);
    assert_eq!(
        stored[0].metadata.issued_by(),
        Some(Actor::new("guest", "ann"))
    );
    assert_eq!(stored[0].metadata.tenant.as_deref(), Some("hotel-1"));
    assert_eq!(
        stored[0]
            .metadata
            .causation_id
            .map(|id| id.to_string())
            .as_deref(),
        Some(key)
    );
    assert!(created.body["timestamp"].is_string());

    // A retry with the same key and body: the original answer, nothing recorded twice.
    let repeated = server
        .send(
            server
                .post("BookRoom", "t-ann", &book)
                .header("idempotency-key", key),
        )
        .await;
    assert_eq!((repeated.status, &repeated.body), (201, &created.body));
    assert_eq!(server.domain_events().await.len(), 1);

    // The same key with another body.
    let reused = server
        .send(
            server
                .post("BookRoom", "t-ann", &json!({ "room": "101", "nights": 3 }))
                .header("idempotency-key", key),
        )
        .await;
    reused.assert_problem(422, "idempotency-key-reused", "/commands/BookRoom");

    // Without a key, one is made and returned.
    let cancel = json!({ "room": "101" });
    let stale = server
        .send(
            server
                .post("CancelBooking", "t-ann", &cancel)
                .header("if-match", "\"0\""),
        )
        .await;
    stale.assert_problem(412, "version-mismatch", "/commands/CancelBooking");
    assert_eq!(stale.header("etag"), Some("\"1\""));
    assert_eq!(stale.body["currentVersion"], 1);
    let cancelled = server
        .send(
            server
                .post("CancelBooking", "t-ann", &cancel)
                .header("if-match", "\"1\""),
        )
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    assert_eq!(cancelled.header("etag"), Some("\"2\""));
    let generated = cancelled
        .header("idempotency-key")
        .expect("a generated key");
    assert_eq!(cancelled.body["commandId"], generated);
    assert!(uuid::Uuid::parse_str(generated).is_ok());
    assert_eq!(server.domain_events().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_a_problem_document_and_writes_nothing() {
    let server = serve().await;
    let booked = server
        .send(server.post("BookRoom", "t-ann", &json!({ "room": "7", "nights": 1 })))
        .await;
    assert_eq!(booked.status, 201);
    let before = server.domain_events().await;
    let book = |room: &str| json!({ "room": room, "nights": 1 });
    let url = |command: &str| format!("{}/commands/{command}", server.base);

    let bad_field = server
        .send(server.post(
            "BookRoom",
            "t-ann",
            &json!({ "room": "8", "nights": "two" }),
        ))
        .await;
    bad_field.assert_problem(400, "invalid-command", "/commands/BookRoom");
    assert_eq!(bad_field.body["path"], "nights");
    assert_eq!(bad_field.body["command"], "BookRoom");

    let not_utf8 = server
        .send(
            server
                .client
                .post(url("BookRoom"))
                .bearer_auth("t-ann")
                .header("content-type", "application/json")
                .body(vec![b'{', 0xff, b'}']),
        )
        .await;
    not_utf8.assert_problem(400, "invalid-command", "/commands/BookRoom");

    let nested = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let deep = server
        .send(
            server
                .client
                .post(url("BookRoom"))
                .bearer_auth("t-ann")
                .header("content-type", "application/json")
                .body(nested),
        )
        .await;
    deep.assert_problem(400, "invalid-command", "/commands/BookRoom");

    for key in ["order-7", "00000000-0000-0000-0000-000000000000", ""] {
        let bad_key = server
            .send(
                server
                    .post("BookRoom", "t-ann", &book("9"))
                    .header("idempotency-key", key),
            )
            .await;
        bad_key.assert_problem(400, "invalid-idempotency-key", "/commands/BookRoom");
    }
    for if_match in ["7", "\"\"", "W/\"1\"", "*", "\"1\", \"2\"", "\"-1\""] {
        let bad_if_match = server
            .send(
                server
                    .post("CancelBooking", "t-ann", &json!({ "room": "7" }))
                    .header("if-match", if_match),
            )
            .await;
        bad_if_match.assert_problem(400, "invalid-if-match", "/commands/CancelBooking");
    }

    let anonymous = server
        .send(
            server
                .client
                .post(url("BookRoom"))
                .header("content-type", "application/json")
                .body(book("9").to_string()),
        )
        .await;
    anonymous.assert_problem(401, "unauthenticated", "/commands/BookRoom");
    assert_eq!(anonymous.header("www-authenticate"), Some("Bearer"));
    let forged = server
        .send(server.post("BookRoom", "t-forged", &book("9")))
        .await;
    forged.assert_problem(401, "unauthenticated", "/commands/BookRoom");
    assert_eq!(forged.body["detail"], "the bearer token is not known");

    let denied = server
        .send(server.post("CancelBooking", "t-bob", &json!({ "room": "7" })))
        .await;
    denied.assert_problem(403, "denied", "/commands/CancelBooking");
    assert_eq!(
        denied.body["reason"],
        "only the guest who booked or a manager cancels a booking"
    );
    let audit = factum::authorization::denials(&server.store, "Room-7")
        .await
        .expect("the audit record reads");
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor(), Some(Actor::new("guest", "bob")));

    let visitor = server
        .send(server.post("BookRoom", "t-visitor", &book("9")))
        .await;
    visitor.assert_problem(403, "unknown-actor-kind", "/commands/BookRoom");

    let unknown = server
        .send(server.post("DemolishRoom", "t-ann", &book("9")))
        .await;
    unknown.assert_problem(404, "unknown-command", "/commands/DemolishRoom");
    assert_eq!(unknown.body["known"], json!(["BookRoom", "CancelBooking"]));

    let taken = server
        .send(server.post("BookRoom", "t-bob", &book("7")))
        .await;
    taken.assert_problem(409, "rejected", "/commands/BookRoom");
    assert_eq!(taken.body["detail"], "the room is booked by `ann`");

    // The server answers as soon as the body passes the limit and closes the connection,
    // so the request is written by a raw socket that goes on reading when its writes
    // fail (as curl does), not by a client that gives up on a broken pipe.
    let too_large = send_raw_body(&server.base, "/commands/BookRoom", 10 << 20).await;
    too_large.assert_problem(413, "body-too-large", "/commands/BookRoom");
    assert_eq!(too_large.body["limit"], factum::http::DEFAULT_BODY_LIMIT);

    for content_type in [Some("text/plain"), Some("application/xml"), None] {
        let mut request = server
            .client
            .post(url("BookRoom"))
            .bearer_auth("t-ann")
            .body(book("9").to_string());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let not_json = server.send(request).await;
        not_json.assert_problem(415, "not-json", "/commands/BookRoom");
    }

    server.store.down.store(true, Ordering::SeqCst);
    let unavailable = server
        .send(server.post("BookRoom", "t-ann", &book("9")))
        .await;
    unavailable.assert_problem(503, "store-unavailable", "/commands/BookRoom");
    assert!(
        !unavailable.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("the database is down"),
        "what failed inside is not told: {}",
        unavailable.body
    );
    server.store.down.store(false, Ordering::SeqCst);

    assert_eq!(
        server.domain_events().await,
        before,
        "no error wrote an event"
    );
    // The media type parameters and `+json` types are JSON too.
    let json_with_charset = server
        .send(
            server
                .client
                .post(url("BookRoom"))
                .bearer_auth("t-ann")
                .header("content-type", "application/vnd.hotel+json; charset=utf-8")
                .body(book("9").to_string()),
        )
        .await;
    assert_eq!(json_with_charset.status, 201, "{}", json_with_charset.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_an_actors_or_a_tenants_rate_limit_are_429_and_run_nothing() {
    use std::num::NonZeroU32;

    use factum::http::{Quota, RateLimits};

    let per_minute = |n| Quota::per_minute(NonZeroU32::new(n).expect("not zero"));
    let server = serve_with(|api| {
        api.rate_limits(
            RateLimits::new()
                .per_actor(per_minute(3))
                .per_tenant(per_minute(4)),
        )
    })
    .await;
    let book = |room: &str| json!({ "room": room, "nights": 1 });
    for room in ["1", "2", "3"] {
        let answer = server
            .send(server.post("BookRoom", "t-ann", &book(room)))
            .await;
        assert_eq!(answer.status, 201, "{}", answer.body);
    }
    let limited = server
        .send(server.post("BookRoom", "t-ann", &book("4")))
        .await;
    limited.assert_problem(429, "rate-limited", "/commands/BookRoom");
    assert_eq!(limited.body["scope"], "actor");
    let retry_after: u64 = limited
        .header("retry-after")
        .and_then(|value| value.parse().ok())
        .expect("a Retry-After in seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(limited.body["retryAfter"], retry_after);
    // Queries count too.
    let query = server
        .send(
            server
                .client
                .get(format!("{}/queries/Anything", server.base))
                .bearer_auth("t-ann"),
        )
        .await;
    query.assert_problem(429, "rate-limited", "/queries/Anything");

    // cy shares ann's tenant, which has one request left.
    let first = server
        .send(server.post("BookRoom", "t-cy", &book("5")))
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    let tenant = server
        .send(server.post("BookRoom", "t-cy", &book("6")))
        .await;
    tenant.assert_problem(429, "rate-limited", "/commands/BookRoom");
    assert_eq!(tenant.body["scope"], "tenant");
    // bob has no tenant and his own allowance.
    let bob = server
        .send(server.post("BookRoom", "t-bob", &book("7")))
        .await;
    assert_eq!(bob.status, 201, "{}", bob.body);

    let rooms: Vec<String> = server
        .domain_events()
        .await
        .iter()
        .map(|event| event.split(' ').next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        rooms,
        ["Room-1", "Room-2", "Room-3", "Room-5", "Room-7"],
        "nothing over a limit ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_headers_get_their_documented_status_and_nothing_is_echoed_or_written() {
    let server = serve().await;
    let request = |extra: &[u8]| {
        let body = br#"{"room":"h-1","nights":1}"#;
        [
            b"POST /commands/BookRoom HTTP/1.1\r\nhost: h\r\nauthorization: Bearer t-ann\r\ncontent-type: application/json\r\nconnection: close\r\n".as_slice(),
            extra,
            format!("content-length: {}\r\n\r\n", body.len()).as_bytes(),
            body,
        ]
        .concat()
    };
    // A key that tries to smuggle a header: on the wire it is two keys and another
    // header, which is ambiguous, so refused.
    let smuggled = send_raw(
        &server.base,
        request(b"idempotency-key: 0190f1c2-7a4b-7c3d-9e8f-0123456789ab\r\nidempotency-key: evil\r\nx-injected: 1\r\n"),
    )
    .await;
    smuggled.assert_problem(400, "invalid-idempotency-key", "/commands/BookRoom");
    assert!(
        smuggled.headers.get("x-injected").is_none(),
        "nothing of a request's headers is echoed as a header"
    );
    let not_ascii = send_raw(
        &server.base,
        request(b"idempotency-key: \xff\xfe-caf\xc3\xa9\r\n"),
    )
    .await;
    not_ascii.assert_problem(400, "invalid-idempotency-key", "/commands/BookRoom");
    let long_key = format!("idempotency-key: {}\r\n", "7".repeat(8000));
    let long = send_raw(&server.base, request(long_key.as_bytes())).await;
    long.assert_problem(400, "invalid-idempotency-key", "/commands/BookRoom");
    assert!(
        long.body["detail"].as_str().unwrap_or_default().len() < 300,
        "a long value is not echoed whole: {}",
        long.body["detail"]
    );
    let bad_if_match = send_raw(
        &server.base,
        request(b"if-match: \"1\"\r\nif-match: \"2\"\r\n"),
    )
    .await;
    bad_if_match.assert_problem(400, "invalid-if-match", "/commands/BookRoom");
    let header_garbage = send_raw(&server.base, request(b"x-garbage\r\n")).await;
    assert_eq!(header_garbage.status, 400, "a header line without a colon");
    assert!(server.domain_events().await.is_empty(), "nothing ran");
    let fine = send_raw(&server.base, request(b"")).await;
    assert_eq!(
        fine.status, 201,
        "the same request without hostile headers runs: {}",
        fine.body
    );
}

/// A request's W3C `traceparent` header reaches the events the command records; a
/// malformed one is ignored (W3C: the receiver starts a trace of its own), never refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requests_trace_context_is_recorded_with_its_events_and_a_bad_one_is_ignored() {
    let server = serve().await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let traced = server
        .send(
            server
                .post("BookRoom", "t-ann", &json!({ "room": "201", "nights": 1 }))
                .header("traceparent", traceparent),
        )
        .await;
    assert_eq!(traced.status, 201, "{}", traced.body);
    for (room, bad) in [
        (
            "202",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        ),
        ("203", "not a trace"),
        (
            "204",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        ),
    ] {
        let answer = server
            .send(
                server
                    .post("BookRoom", "t-ann", &json!({ "room": room, "nights": 1 }))
                    .header("traceparent", bad),
            )
            .await;
        assert_eq!(answer.status, 201, "{bad}: {}", answer.body);
    }
    let stored = server.store.read_all(0, 10).await.expect("read");
    assert_eq!(stored.len(), 4);
    assert_eq!(stored[0].metadata.traceparent.as_deref(), Some(traceparent));
    for event in &stored[1..] {
        assert_eq!(event.metadata.traceparent, None, "{}", event.stream_id);
    }
}
