//! A decision across entities POSTed like any other command: `POST /commands/{name}`
//! served on loopback and driven by a real HTTP client, against an application that
//! routes the name to a decision on a SQLite store. Two students race for a course's
//! last seat over HTTP: one is created (201), the other told why not (409 with the
//! domain's refusal); a retry with the same idempotency key is the first answer; an
//! `If-Match`, which a decision cannot honour, is refused (400).

use std::sync::Arc;

use factum::application::Application;
use factum::context::Actor;
use factum::decision::{Decide, Keyed};
use factum::http::{BearerTokens, HttpApi, Principal};
use factum::prelude::*;
use factum::registry::EntryKind;
use factum::store::SqliteStore;
use serde_json::{Value, json};

#[event(name = "CourseDefined", version = 1)]
pub struct CourseDefined {
    #[tag]
    pub course: String,
    pub seats: u32,
}

#[event(name = "StudentSubscribed", version = 1)]
pub struct StudentSubscribed {
    #[tag]
    pub course: String,
    #[tag]
    pub student: String,
}

#[derive(Events)]
pub enum CourseEvent {
    Defined(CourseDefined),
    Subscribed(StudentSubscribed),
}

#[derive(Default)]
pub struct Seats {
    seats: u32,
    taken: u32,
}

#[decision_model(tags(course))]
impl Seats {
    #[apply]
    fn defined(&mut self, event: &CourseDefined) {
        self.seats = event.seats;
    }

    #[apply]
    fn subscribed(&mut self, _: &StudentSubscribed) {
        self.taken += 1;
    }
}

#[derive(Default)]
pub struct Enrolled(bool);

#[decision_model(tags(course, student))]
impl Enrolled {
    #[apply]
    fn subscribed(&mut self, _: &StudentSubscribed) {
        self.0 = true;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("course {0} is full")]
    CourseFull(String),
    #[error("{0} took course {1} already")]
    Enrolled(String, String),
}

#[command(name = "Subscribe")]
pub struct Subscribe {
    #[aggregate_id]
    pub subscription: String,
    pub course: String,
}

impl Decide for Subscribe {
    const STREAM_TYPE: &'static str = "Subscription";
    type Models = (Seats, Enrolled);
    type Events = CourseEvent;
    type Error = Refused;

    fn models(&self) -> (Keyed<Seats>, Keyed<Enrolled>) {
        (
            Seats::keyed(&self.course),
            Enrolled::keyed(&self.course, &self.subscription),
        )
    }

    fn decide(
        &self,
        (seats, enrolled): (Seats, Enrolled),
        ctx: &CommandContext,
    ) -> Result<Vec<CourseEvent>, Refused> {
        let student = ctx
            .actor
            .as_ref()
            .map(|actor| actor.id.clone())
            .unwrap_or_default();
        if enrolled.0 {
            return Err(Refused::Enrolled(student, self.course.clone()));
        }
        if seats.taken >= seats.seats {
            return Err(Refused::CourseFull(self.course.clone()));
        }
        Ok(vec![CourseEvent::Subscribed(StudentSubscribed {
            course: self.course.clone(),
            student: self.subscription.clone(),
        })])
    }
}

/// The answer to one request.
struct Answer {
    status: u16,
    body: Value,
}

async fn post(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    body: &Value,
    key: Option<&str>,
    if_match: Option<&str>,
) -> Answer {
    let mut request = client
        .post(format!("{base}/commands/Subscribe"))
        .bearer_auth(token)
        .json(body);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    if let Some(version) = if_match {
        request = request.header("if-match", version);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Answer { status, body }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_is_posted_like_any_command() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(dir.path().join("events.sqlite3"))
        .await
        .expect("opens");
    let defined = CourseEvent::Defined(CourseDefined {
        course: "rust-101".into(),
        seats: 1,
    });
    let encoded = defined.encode().expect("encodes");
    let mut tags = Vec::new();
    defined.tags(&mut tags);
    store
        .append(
            "Course-rust-101",
            "Course",
            ExpectedVersion::NoStream,
            vec![
                NewEvent::new(encoded.name, 1, encoded.payload, Metadata::default())
                    .with_tags(tags),
            ],
        )
        .await
        .expect("a course");
    let app = Application::builder(store.clone())
        .decision::<Subscribe>(3)
        .build()
        .expect("builds");
    assert!(app.command_names().contains(&"Subscribe"));
    let command = app
        .registry()
        .get(EntryKind::Command, "Subscribe", 1)
        .expect("the decision's command is in the registry");
    assert!(command.aggregates.contains("Subscription"));
    assert!(
        app.registry()
            .get(EntryKind::Event, "StudentSubscribed", 1)
            .is_some_and(|event| event.schema["properties"]["course"]["x-factum-tag"] == "course"),
        "its events too, their tags marked"
    );
    let tokens = BearerTokens::new()
        .token("t-ada", Principal::new(Actor::new("student", "ada")))
        .token("t-grace", Principal::new(Actor::new("student", "grace")));
    let router = HttpApi::new(app, tokens).router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let base = format!("http://{}", listener.local_addr().expect("an address"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    let client = Arc::new(reqwest::Client::new());

    // Two students race for the one seat.
    let race = |token: &'static str, subscription: &'static str, key: &'static str| {
        let (client, base) = (Arc::clone(&client), base.clone());
        tokio::spawn(async move {
            let body = json!({ "subscription": subscription, "course": "rust-101" });
            post(&client, &base, token, &body, Some(key), None).await
        })
    };
    let ada_key = "0190f1c2-7a4b-7c3d-9e8f-00000000000a";
    let grace_key = "0190f1c2-7a4b-7c3d-9e8f-00000000000b";
    let (ada, grace) = (
        race("t-ada", "ada", ada_key).await.expect("ada's request"),
        race("t-grace", "grace", grace_key)
            .await
            .expect("grace's request"),
    );
    let (winner, loser, winner_key, winner_body) = match (ada.status, grace.status) {
        (201, _) => (
            ada,
            grace,
            ada_key,
            json!({ "subscription": "ada", "course": "rust-101" }),
        ),
        (_, 201) => (
            grace,
            ada,
            grace_key,
            json!({ "subscription": "grace", "course": "rust-101" }),
        ),
        other => panic!("one of them takes the seat: {other:?}"),
    };
    assert_eq!(winner.body["acknowledged"], true, "{}", winner.body);
    assert!(
        winner.body["streamId"]
            .as_str()
            .is_some_and(|stream| stream.starts_with("Subscription-")),
        "{}",
        winner.body
    );
    assert_eq!(loser.status, 409, "{}", loser.body);
    assert_eq!(
        loser.body["type"]
            .as_str()
            .map(|slug| slug.ends_with("rejected")),
        Some(true),
        "{}",
        loser.body
    );
    assert!(
        loser.body["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("course rust-101 is full")),
        "the loser is told why: {}",
        loser.body
    );

    // The winner's retry: the first answer, nothing recorded twice.
    let token = if winner_key == ada_key {
        "t-ada"
    } else {
        "t-grace"
    };
    let repeated = post(&client, &base, token, &winner_body, Some(winner_key), None).await;
    assert_eq!((repeated.status, &repeated.body), (201, &winner.body));
    let subscriptions = store
        .read_all(0, 10)
        .await
        .expect("read")
        .into_iter()
        .filter(|event| event.name == "StudentSubscribed")
        .count();
    assert_eq!(subscriptions, 1);

    // An If-Match names a stream version, which a decision is not made on.
    let refused = post(
        &client,
        &base,
        "t-ada",
        &json!({ "subscription": "ada-2", "course": "rust-101" }),
        None,
        Some("\"3\""),
    )
    .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("without an expected version")),
        "{}",
        refused.body
    );
}
