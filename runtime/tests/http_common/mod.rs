//! The hotel the HTTP tests serve: rooms booked by guests, a SQLite store that can be
//! made unavailable, and a real server on a loopback port with a real client.
#![allow(dead_code)] // Each test binary uses its part.

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
use serde_json::Value;

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
pub struct Switchable {
    pub store: SqliteStore,
    pub down: Arc<AtomicBool>,
}

impl Switchable {
    pub fn check(&self) -> Result<(), StoreError> {
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

pub struct Server {
    pub base: String,
    pub store: Switchable,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// The hotel's API on a loopback port: guests book, only the guest who booked or a
/// manager cancels; managers read the rooms' events.
pub async fn serve() -> Server {
    serve_with(|api| api).await
}

/// [`serve`], with the API configured further by `configure`.
pub async fn serve_with(
    configure: impl FnOnce(HttpApi<Switchable>) -> HttpApi<Switchable>,
) -> Server {
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
        .token("t-visitor", Principal::new(Actor::new("visitor", "vi")))
        .token("t-mia", Principal::new(Actor::new("manager", "mia")))
        .token(
            "t-cy",
            Principal::new(Actor::new("guest", "cy")).in_tenant("hotel-1"),
        );
    let router = configure(HttpApi::new(app, tokens))
        .read_policy(|principal: &Principal, stream_type: &str| {
            Decision::allow_if(
                principal.actor.is("manager") && stream_type == "Room",
                "only managers read the rooms' events",
            )
        })
        .keep_alive(std::time::Duration::from_millis(200))
        .router();
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
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// Checks this is a problem document of `status` and kind `slug`, for `path`.
    pub fn assert_problem(&self, status: u16, slug: &str, path: &str) {
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
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
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

    pub fn post(&self, command: &str, token: &str, body: &Value) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}/commands/{command}", self.base))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_string())
    }

    /// The events of the domain (the audit record of denials aside).
    pub async fn domain_events(&self) -> Vec<String> {
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

/// POSTs a JSON body of about `size` bytes as `t-ann` over a plain TCP connection,
/// writing on while the server reads and then reading its answer whatever became of the
/// writes.
pub async fn send_raw_body(base: &str, path: &str, size: usize) -> Answer {
    let body = format!(
        "{{\"room\":\"9\",\"nights\":1,\"padding\":\"{}\"}}",
        "x".repeat(size)
    );
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: h\r\nauthorization: Bearer t-ann\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    send_raw(base, [head.into_bytes(), body.into_bytes()].concat()).await
}

/// Writes `request` — bytes no HTTP client library would send — on a plain TCP
/// connection and reads the answer, whatever became of the writes.
pub async fn send_raw(base: &str, request: Vec<u8>) -> Answer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let address = base.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connects");
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        // A write error is the server closing after its answer: expected here.
        let _ = writer.write_all(&request).await;
        // Kept open until the answer is read: the server drops a connection whose client
        // has closed its side.
        writer
    });
    let mut raw = Vec::new();
    // A reset after the answer arrived ends the read; what was read is the answer.
    let _ = reader.read_to_end(&mut raw).await;
    drop(writing.await.expect("the writer task ends"));
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("a whole response head, got {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let mut headers = reqwest::header::HeaderMap::new();
    for line in head.lines().skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            headers.append(
                reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()).expect("a name"),
                value.trim().parse().expect("a value"),
            );
        }
    }
    Answer {
        status,
        headers,
        body: serde_json::from_str(body).unwrap_or(Value::String(body.to_owned())),
    }
}
