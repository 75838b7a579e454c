//! Personal data over HTTP, with a real client against a real server on loopback: the
//! commands' personal fields are stored sealed, a stream read and the live log serve
//! them opened, and once the subject is forgotten both serve the declared replacements.

use factum::application::Application;
use factum::authorization::Decision;
use factum::context::Actor;
use factum::http::{BearerTokens, HttpApi, Principal};
use factum::personal::{MasterKey, PersonalCatalog, ProtectedStore, SubjectId};
use factum::prelude::*;
use factum::sqlite::SqliteKeyStore;
use factum::store::SqliteStore;
use futures_util::StreamExt;
use serde_json::{Value, json};

#[event(name = "PatientAdmitted")]
#[derive(Debug, Clone, PartialEq)]
pub struct PatientAdmitted {
    #[subject]
    pub patient_id: String,
    #[pii(redacted = "[forgotten]")]
    pub name: String,
    pub ward: String,
}

#[derive(Events, Debug, Clone, PartialEq)]
pub enum PatientEvent {
    Admitted(PatientAdmitted),
}

#[command(name = "AdmitPatient")]
pub struct AdmitPatient {
    #[aggregate_id]
    pub patient_id: String,
    pub name: String,
    pub ward: String,
}

#[derive(Commands)]
pub enum PatientCommand {
    Admit(AdmitPatient),
}

#[derive(Debug, thiserror::Error)]
pub enum PatientError {
    #[error("the patient is admitted already")]
    Admitted,
}

#[derive(Debug, Default)]
pub struct Patient {
    admitted: bool,
}

#[aggregate(name = "Patient", events = PatientEvent, commands = PatientCommand, error = PatientError)]
impl Patient {
    #[handle]
    fn admit(&self, command: AdmitPatient) -> Result<PatientAdmitted, PatientError> {
        if self.admitted {
            return Err(PatientError::Admitted);
        }
        Ok(PatientAdmitted {
            patient_id: command.patient_id,
            name: command.name,
            ward: command.ward,
        })
    }

    #[apply]
    fn admitted(&mut self, _: &PatientAdmitted) {
        self.admitted = true;
    }
}

/// The first `data:` line of a Server-Sent Events body, as JSON.
async fn first_event(response: reqwest::Response) -> Value {
    let mut body = response.bytes_stream();
    let mut text = String::new();
    while let Some(chunk) = body.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.expect("a chunk")));
        if let Some(line) = text.lines().find(|line| line.starts_with("data:")) {
            return serde_json::from_str(line.trim_start_matches("data:").trim())
                .expect("an envelope");
        }
    }
    panic!("the stream ended without an event: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_fields_are_served_opened_until_the_subject_is_forgotten() {
    let dir = tempfile::tempdir().expect("a directory");
    let sqlite = SqliteStore::open(dir.path().join("events.sqlite3"))
        .await
        .expect("open");
    let keys = SqliteKeyStore::in_store(&sqlite, MasterKey::from_bytes([4; 32]))
        .await
        .expect("keys");
    let registry = factum::registry::Registry::builder()
        .aggregate::<Patient>()
        .build()
        .expect("registry");
    let store = ProtectedStore::new(
        sqlite.clone(),
        keys,
        PersonalCatalog::from_registry(&registry),
    );
    let app = Application::builder(store.clone())
        .aggregate(Repository::<Patient, _>::new(store.clone()))
        .build()
        .expect("builds");
    let tokens = BearerTokens::new().token("t-nurse", Principal::new(Actor::new("nurse", "noor")));
    let router = HttpApi::new(app, tokens)
        .read_policy(|principal: &Principal, stream_type: &str| {
            Decision::allow_if(
                principal.actor.is("nurse") && stream_type == "Patient",
                "nurses read patients",
            )
        })
        .router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let base = format!("http://{}", listener.local_addr().expect("an address"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    let client = reqwest::Client::new();

    let admitted = client
        .post(format!("{base}/commands/AdmitPatient"))
        .bearer_auth("t-nurse")
        .json(&json!({ "patient_id": "p-1", "name": "Ada Byron", "ward": "B" }))
        .send()
        .await
        .expect("the server answers");
    assert!(
        admitted.status().is_success(),
        "{}",
        admitted.text().await.unwrap_or_default()
    );
    let stored = sqlite.read_stream("Patient-p-1", 1, 1).await.expect("raw");
    assert!(
        !stored[0].payload.get().contains("Ada Byron"),
        "sealed at rest"
    );

    let read = |path: &'static str| {
        let client = client.clone();
        let base = base.clone();
        async move {
            client
                .get(format!("{base}{path}"))
                .bearer_auth("t-nurse")
                .send()
                .await
                .expect("the server answers")
        }
    };
    let stream: Value = read("/streams/Patient-p-1")
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(stream["events"][0]["payload"]["name"], "Ada Byron");
    let live = first_event(read("/events?streamType=Patient&fromPosition=0").await).await;
    assert_eq!(live["payload"]["name"], "Ada Byron");

    store
        .forget(&SubjectId::new("p-1").unwrap(), "dpo@clinic.example")
        .await
        .expect("forget");
    let stream: Value = read("/streams/Patient-p-1")
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(stream["events"][0]["payload"]["name"], "[forgotten]");
    assert_eq!(
        stream["events"][0]["payload"]["ward"], "B",
        "what is not personal stays"
    );
    let live = first_event(read("/events?streamType=Patient&fromPosition=0").await).await;
    assert_eq!(live["payload"]["name"], "[forgotten]");
}
