//! `POST /commands/{name}` served on loopback and driven by a real HTTP client: every
//! status of the wire contract, and nothing written on any error (the store's events
//! compared before and after).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use factum::application::{Application, ContextRules};
use factum::authorization::Decision;
use factum::context::{Actor, CommandContext};
use factum::envelope::{NewEvent, RecordedEvent, Snapshot};
use factum::http::{BearerTokens, HttpApi, Principal};
use factum::prelude::*;
use factum::store::{
    AppendOutcome, CommandAppend, CommandOutcome, CommandRecord, EventStore, ExpectedVersion,
    SqliteStore,
};
use serde_json::{Value, json};

#[event(name = "RoomBooked")]
pub struct Booked {
    pub guest: String,
    pub nights: u8,
}

#[event(name = "BookingCancelled")]
pub struct Cancelled {}

#[derive(Events)]
pub enum RoomEvent {
    Booked(Booked),
    Cancelled(Cancelled),
}

#[command(name = "BookRoom")]
pub struct BookRoom {
    #[aggregate_id]
    pub room: String,
    pub nights: u8,
}

#[command(name = "CancelBooking")]
pub struct CancelBooking {
    #[aggregate_id]
    pub room: String,
}

#[derive(Commands)]
pub enum RoomCommand {
    Book(BookRoom),
    Cancel(CancelBooking),
}

#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    #[error("the room is booked by `{0}`")]
    Booked(String),
    #[error("the room is not booked")]
    NotBooked,
}

#[derive(Debug, Default)]
pub struct Room {
    guest: Option<String>,
}

#[aggregate(name = "Room", events = RoomEvent, commands = RoomCommand, error = RoomError)]
impl Room {
    #[handle]
    fn book(&self, command: BookRoom, ctx: &CommandContext) -> Result<Booked, RoomError> {
        if let Some(guest) = &self.guest {
            return Err(RoomError::Booked(guest.clone()));
        }
        let guest = ctx.actor.as_ref().map(|a| a.id.clone()).unwrap_or_default();
        Ok(Booked {
            guest,
            nights: command.nights,
        })
    }

    #[handle]
    fn cancel(&self, _: CancelBooking) -> Result<Cancelled, RoomError> {
        self.guest
            .as_ref()
            .map(|_| Cancelled {})
            .ok_or(RoomError::NotBooked)
    }

    #[apply]
    fn booked(&mut self, event: &Booked) {
        self.guest = Some(event.guest.clone());
    }

    #[apply]
    fn cancelled(&mut self, _: &Cancelled) {
        self.guest = None;
    }
}

/// A SQLite store that can be made unavailable: its writes then fail as a lost
/// connection would.
#[derive(Clone)]
struct Switchable {
    store: SqliteStore,
    down: Arc<AtomicBool>,
}

impl Switchable {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Backend(Box::new(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "the database is down",
            ))));
        }
        Ok(())
    }
}

impl EventStore for Switchable {
    async fn append(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        self.check()?;
        self.store
            .append(stream_id, stream_type, expected, events)
            .await
    }
    async fn append_command(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        command: CommandRecord,
    ) -> Result<CommandAppend, StoreError> {
        self.check()?;
        self.store
            .append_command(stream_id, stream_type, expected, events, command)
            .await
    }
    async fn command_outcome(
        &self,
        command_id: uuid::Uuid,
    ) -> Result<Option<CommandOutcome>, StoreError> {
        self.store.command_outcome(command_id).await
    }
    async fn prune_commands(
        &self,
        recorded_before: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        self.store.prune_commands(recorded_before).await
    }
    async fn read_stream(
        &self,
        stream_id: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.store.read_stream(stream_id, from, limit).await
    }
    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.store.read_all(after, limit).await
    }
    async fn stream_version(&self, stream_id: &str) -> Result<Option<u64>, StoreError> {
        self.store.stream_version(stream_id).await
    }
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.store.save_snapshot(snapshot).await
    }
    async fn load_snapshot(&self, stream_id: &str) -> Result<Option<Snapshot>, StoreError> {
        self.store.load_snapshot(stream_id).await
    }
}

struct Server {
    base: String,
    store: Switchable,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// The hotel's API on a loopback port: guests book, only the guest who booked or a
/// manager cancels.
async fn serve() -> Server {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Switchable {
        store: SqliteStore::open(dir.path().join("events.sqlite3"))
            .await
            .expect("opens"),
        down: Arc::default(),
    };
    let rooms = Repository::<Room, _>::new(store.clone()).with_policy(
        |ctx: &CommandContext, command: &RoomCommand, room: &Room| match command {
            RoomCommand::Book(_) => Decision::Allow,
            RoomCommand::Cancel(_) => {
                let actor = ctx.actor.as_ref();
                Decision::allow_if(
                    actor.is_some_and(|a| a.is("manager") || room.guest.as_deref() == Some(&a.id)),
                    "only the guest who booked or a manager cancels a booking",
                )
            }
        },
    );
    let app = Application::builder(store.clone())
        .middleware(ContextRules::new().actor_kinds(["guest", "manager"]))
        .aggregate(rooms)
        .build()
        .expect("builds");
    let tokens = BearerTokens::new()
        .token(
            "t-ann",
            Principal::new(Actor::new("guest", "ann")).in_tenant("hotel-1"),
        )
        .token("t-bob", Principal::new(Actor::new("guest", "bob")))
        .token("t-visitor", Principal::new(Actor::new("visitor", "vi")));
    let router = HttpApi::new(app, tokens).router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let address = listener.local_addr().expect("an address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    Server {
        base: format!("http://{address}"),
        store,
        client: reqwest::Client::new(),
        _dir: dir,
    }
}

/// A response's status, headers and JSON body.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// Checks this is a problem document of `status` and kind `slug`, for `path`.
    fn assert_problem(&self, status: u16, slug: &str, path: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        assert_eq!(
            self.body["type"],
            format!("urn:factum:problem:{slug}"),
            "{}",
            self.body
        );
        assert_eq!(self.body["status"], status);
        assert_eq!(self.body["instance"], path);
        assert!(self.body["title"].is_string() && self.body["detail"].is_string());
    }
}

impl Server {
    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            headers,
            body,
        }
    }

    fn post(&self, command: &str, token: &str, body: &Value) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}/commands/{command}", self.base))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_string())
    }

    /// The events of the domain (the audit record of denials aside).
    async fn domain_events(&self) -> Vec<String> {
        self.store
            .read_all(0, 1000)
            .await
            .expect("read")
            .into_iter()
            .filter(|event| event.stream_type == "Room")
            .map(|event| {
                format!(
                    "{} {} {}",
                    event.stream_id, event.stream_version, event.event_id
                )
            })
            .collect()
    }
}

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

/// POSTs a JSON body of about `size` bytes as `t-ann` over a plain TCP connection,
/// writing on while the server reads and then reading its answer whatever became of the
/// writes.
async fn send_raw_body(base: &str, path: &str, size: usize) -> Answer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let address = base.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connects");
    let (mut reader, mut writer) = stream.into_split();
    let body = format!(
        "{{\"room\":\"9\",\"nights\":1,\"padding\":\"{}\"}}",
        "x".repeat(size)
    );
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer t-ann\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let writing = tokio::spawn(async move {
        // A write error is the server closing after its answer: expected here.
        let _ = writer.write_all(head.as_bytes()).await;
        let _ = writer.write_all(body.as_bytes()).await;
    });
    let mut raw = Vec::new();
    // A reset after the answer arrived ends the read; what was read is the answer.
    let _ = reader.read_to_end(&mut raw).await;
    writing.await.expect("the writer task ends");
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole response head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let mut headers = reqwest::header::HeaderMap::new();
    for line in head.lines().skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(
                reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()).expect("a name"),
                value.trim().parse().expect("a value"),
            );
        }
    }
    Answer {
        status,
        headers,
        body: serde_json::from_str(body).expect("a JSON body"),
    }
}
