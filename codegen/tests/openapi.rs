//! The OpenAPI document of the care-task service, as its real server serves it at
//! `GET /openapi.json`: valid OpenAPI 3.1 by an independent validator
//! (`openapi-spec-validator`, pinned, in a virtual environment of its own; its directory
//! can be set with `FACTUM_OPENAPI_VALIDATOR`), its snapshot reviewed, and every response
//! the same server gives a real client — acknowledgements, answers, pages, problems —
//! valid against the schema the document gives it (`jsonschema`, draft 2020-12).

mod support;

use factum::projection::sqlite::SqliteReadModel;
use factum::store::SqliteStore;
use factum_example_care_tasks::serve;
use serde_json::{Value, json};

/// The validator and what it brings: the `jsonschema` the response check uses.
const VALIDATOR: &[&str] = &["openapi-spec-validator==0.9.0", "jsonschema==4.26.0"];

/// A response as a real client received it, with the route it answers.
fn sample(path: &str, method: &str, status: u16, body: Value) -> Value {
    json!({ "path": path, "method": method, "status": status, "body": body })
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
        body: Value,
        if_match: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}/commands/{command}", self.base))
            .json(&body);
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        if let Some(version) = if_match {
            request = request.header("if-match", version);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON body"))
    }

    async fn get(&self, token: &str, path_and_query: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path_and_query}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("the server answers");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON body"))
    }
}

#[test]
fn the_served_openapi_document_is_valid_and_describes_what_the_server_answers() {
    let dir = tempfile::tempdir().expect("a scratch folder");
    let (document, samples) = support::runtime().block_on(async {
        let store = SqliteStore::open(dir.path().join("events.sqlite3"))
            .await
            .expect("opens");
        let read_models = SqliteReadModel::open(dir.path().join("read-models"))
            .await
            .expect("opens");
        let served = serve::on_loopback(store, read_models)
            .await
            .expect("the service starts");
        let base = served.base.clone();
        let client = Client {
            base,
            http: reqwest::Client::new(),
        };
        let document: Value = client
            .http
            .get(format!("{}/openapi.json", client.base))
            .send()
            .await
            .expect("the document is served")
            .json()
            .await
            .expect("as JSON");

        let at = "2025-03-10T08:00:00Z";
        let create = json!({ "task_id": "T-1", "title": "Medication round", "care_recipient": "Mrs. Jansen", "due": "2025-03-10T10:00:00Z", "at": at });
        let mut samples = Vec::new();
        let mut post = async |token: &str, command: &str, body: Value, if_match: Option<&str>| {
            let (status, answer) = client.post(token, command, body, if_match).await;
            samples.push(sample(&format!("/commands/{command}"), "post", status, answer.clone()));
            (status, answer)
        };
        assert_eq!(post("token-dana", "CreateTask", create.clone(), None).await.0, 201);
        let (status, assigned) = post(
            "token-dana",
            "AssignTask",
            json!({ "task_id": "T-1", "member": "amira", "at": at }),
            None,
        )
        .await;
        assert_eq!(status, 200);
        let refusals = [
            (post("token-dana", "CreateTask", create.clone(), None).await.0, 409),
            (post("token-ben", "CompleteTask", json!({ "task_id": "T-1", "completed_by": "ben", "at": at }), None).await.0, 403),
            (post("token-dana", "CreateTask", json!({ "task_id": "T-2" }), None).await.0, 400),
            (post("", "CreateTask", create.clone(), None).await.0, 401),
            (post("token-dana", "AssignTask", json!({ "task_id": "T-1", "member": "ben", "at": at }), Some("\"1\"")).await.0, 412),
        ];
        for (got, expected) in refusals {
            assert_eq!(got, expected);
        }
        let position = assigned["position"].as_u64().expect("a position");
        for (path, query) in [
            ("/queries/GetTaskById", format!("task_id=T-1&minPosition={position}")),
            ("/queries/GetTaskById", "task_id=T-404".to_owned()),
            ("/queries/FindOpenTasksByCoordinator", format!("coordinator=dana&size=1&minPosition={position}")),
            ("/queries/FindOpenTasksByAssignee", "member=amira".to_owned()),
            ("/queries/GetMemberHistory", "member=amira&page=1&size=5".to_owned()),
            ("/queries/GetDailyAnalytics", "size=7".to_owned()),
            ("/queries/FindOpenTasksByCoordinator", "size=0".to_owned()),
            ("/streams/{streamId}", String::new()),
        ] {
            let url = if path == "/streams/{streamId}" {
                "/streams/Task-T-1".to_owned()
            } else {
                format!("{path}?{query}")
            };
            let (status, answer) = client.get("token-dana", &url).await;
            samples.push(sample(path, "get", status, answer));
        }
        let (status, answer) = client.get("token-amira", "/streams/Task-T-1").await;
        assert_eq!(status, 403);
        samples.push(sample("/streams/{streamId}", "get", status, answer));
        served.stop().await.expect("stops");
        (document, samples)
    });

    let statuses: Vec<(String, u64)> = samples
        .iter()
        .map(|sample| {
            (
                sample["path"].as_str().unwrap_or_default().to_owned(),
                sample["status"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        statuses
            .iter()
            .filter(|(path, _)| path.starts_with("/queries/"))
            .all(|(path, status)| *status == 200
                || (path.ends_with("Coordinator") && *status == 400)),
        "{statuses:?}"
    );
    let commands: Vec<&str> = document["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .filter_map(|path| path.strip_prefix("/commands/"))
        .collect();
    assert_eq!(
        commands,
        ["AssignTask", "CompleteTask", "CreateTask"],
        "every command of the registry"
    );

    let files = tempfile::tempdir().expect("a scratch folder");
    let document_file = files.path().join("openapi.json");
    let samples_file = files.path().join("samples.json");
    std::fs::write(
        &document_file,
        serde_json::to_string_pretty(&document).unwrap(),
    )
    .unwrap();
    std::fs::write(&samples_file, Value::Array(samples).to_string()).unwrap();
    let python = support::venv_python("FACTUM_OPENAPI_VALIDATOR", "openapi-validator", VALIDATOR);
    let checked = support::run(
        std::process::Command::new(python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/openapi/check.py"
            ))
            .arg(&document_file)
            .arg(&samples_file),
        "the OpenAPI check",
    );
    assert!(
        checked.contains("checked the document and 16 responses"),
        "{checked}"
    );

    insta::assert_snapshot!(
        "care_tasks_openapi",
        serde_json::to_string_pretty(&document).expect("a document")
    );
}
