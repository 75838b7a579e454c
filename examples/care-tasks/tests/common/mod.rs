//! What the tests that serve the care-task service on loopback share: the service over a
//! fresh store, commands sent with a real client, and the tasks every scripted run starts
//! with.
//!
//! Each test binary uses part of it.
#![allow(dead_code)]

use factum::projection::sqlite::SqliteReadModel;
use factum::store::SqliteStore;
use factum_example_care_tasks::serve;
use serde_json::{Value, json};

/// The service on a loopback port, over a store and read models in a directory of its own.
pub struct Served {
    pub store: SqliteStore,
    pub service: serve::OnLoopback,
    pub client: reqwest::Client,
    pub base: String,
    _dir: tempfile::TempDir,
}

/// Serves the care-task service over a fresh store, its projections running.
pub async fn serve() -> Served {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(dir.path().join("events.sqlite3"))
        .await
        .expect("opens");
    let read_models = SqliteReadModel::open(dir.path().join("read-models"))
        .await
        .expect("opens");
    let service = serve::on_loopback(store.clone(), read_models)
        .await
        .expect("serves");
    Served {
        store,
        base: service.base.clone(),
        service,
        client: reqwest::Client::new(),
        _dir: dir,
    }
}

impl Served {
    /// Sends `POST {path}` with `body` as the holder of `token`; its status.
    pub async fn post(&self, token: &str, path: &str, body: Value) -> u16 {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("the server answers")
            .status()
            .as_u16()
    }

    /// Dana creates the tasks T-1, T-2 and T-3 (due in two hours) and assigns `assigned`
    /// to Amira.
    pub async fn three_tasks(&self, now: chrono::DateTime<chrono::Utc>, assigned: &[&str]) {
        for id in ["T-1", "T-2", "T-3"] {
            let task = json!({
                "task_id": id, "title": format!("Task {id}"), "care_recipient": "Mrs. Jansen",
                "due": now + chrono::TimeDelta::hours(2), "at": now,
            });
            assert_eq!(
                self.post("token-dana", "/commands/CreateTask", task).await,
                201
            );
        }
        for id in assigned {
            let assign = json!({ "task_id": id, "member": "amira", "at": now });
            assert_eq!(
                self.post("token-dana", "/commands/AssignTask", assign)
                    .await,
                200
            );
        }
    }
}
