//! The care-task service on loopback, driven by a real HTTP client: commands
//! acknowledged with their position, queries that wait for it, pages, freshness, and
//! the problems of bad queries.

use std::time::Duration;

use factum::projection::ProjectionRunner;
use factum::projection::sqlite::SqliteReadModel;
use factum::store::SqliteStore;
use factum_example_care_tasks::projections::coordinator_task_list::CoordinatorTaskList;
use factum_example_care_tasks::projections::daily_analytics::DailyAnalytics;
use factum_example_care_tasks::projections::member_task_history::MemberTaskHistory;
use factum_example_care_tasks::serve;
use serde_json::{Value, json};

struct Ward {
    base: String,
    client: reqwest::Client,
    store: SqliteStore,
    read_models: SqliteReadModel,
    _dir: tempfile::TempDir,
}

impl Ward {
    async fn serve() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = SqliteStore::open(dir.path().join("events.sqlite3"))
            .await
            .expect("opens");
        let read_models = SqliteReadModel::open(dir.path().join("read-models"))
            .await
            .expect("opens");
        let router = serve::router(store.clone(), read_models.clone(), serve::ward_tokens())
            .expect("the routes build");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            base,
            client: reqwest::Client::new(),
            store,
            read_models,
            _dir: dir,
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let body = response.json().await.expect("a JSON body");
        (status, body)
    }

    async fn command(&self, token: &str, name: &str, body: Value) -> (u16, Value) {
        self.send(
            self.client
                .post(format!("{}/commands/{name}", self.base))
                .bearer_auth(token)
                .json(&body),
        )
        .await
    }

    async fn query(&self, token: &str, name_and_parameters: &str) -> (u16, Value) {
        self.send(
            self.client
                .get(format!("{}/queries/{name_and_parameters}", self.base))
                .bearer_auth(token),
        )
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reads_its_own_writes_page_by_page() {
    let ward = Ward::serve().await;
    let now = chrono::Utc::now();
    let create = |id: &str, due_hours: i64| {
        json!({
            "task_id": id, "title": format!("Task {id}"), "care_recipient": "Mrs. Jansen",
            "due": now + chrono::TimeDelta::hours(due_hours), "at": now,
        })
    };
    let (status, created) = ward
        .command("token-dana", "CreateTask", create("T-1", 1))
        .await;
    assert_eq!(status, 201, "{created}");

    // No projection has run yet: the read model is not there to answer.
    let (status, problem) = ward.query("token-dana", "GetTaskById?task_id=T-1").await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["type"], "urn:factum:problem:not-ready");

    let runner = ProjectionRunner::new(ward.store.clone()).idle_wait(Duration::from_millis(20));
    let handles = vec![
        runner.spawn(CoordinatorTaskList, ward.read_models.clone()),
        runner.spawn(MemberTaskHistory, ward.read_models.clone()),
        runner.spawn(DailyAnalytics, ward.read_models.clone()),
    ];
    for (id, due) in [("T-2", 3), ("T-3", 2)] {
        let (status, body) = ward
            .command("token-dana", "CreateTask", create(id, due))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, assigned) = ward
        .command(
            "token-dana",
            "AssignTask",
            json!({ "task_id": "T-1", "member": "amira", "at": now }),
        )
        .await;
    assert_eq!(status, 200, "{assigned}");
    let position = assigned["position"].as_u64().expect("a position");

    // Read your own write: wait for the assignment's position.
    let (status, answer) = ward
        .query(
            "token-amira",
            &format!("GetTaskById?task_id=T-1&minPosition={position}"),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["data"]["task_id"], "T-1");
    assert_eq!(answer["data"]["assignee"], "amira");
    assert_eq!(answer["data"]["created_by"], "dana");
    assert_eq!(answer["page"], Value::Null);
    let freshness = &answer["freshness"];
    assert!(
        freshness["position"].as_u64().unwrap() >= position,
        "{freshness}"
    );
    assert_eq!(freshness["stale"], false);
    assert_eq!(freshness["projection"], "coordinator_task_list");
    for member in ["lagEvents", "lagSeconds", "rebuilding", "head", "version"] {
        assert!(
            !freshness[member].is_null(),
            "freshness has {member}: {freshness}"
        );
    }

    // Not found is an answer, with its freshness.
    let (status, missing) = ward
        .query(
            "token-amira",
            &format!("GetTaskById?task_id=T-404&minPosition={position}"),
        )
        .await;
    assert_eq!((status, &missing["data"]), (200, &Value::Null));

    // Pages of dana's open tasks, soonest due first.
    let page = |number: u32| {
        format!(
            "FindOpenTasksByCoordinator?coordinator=dana&page={number}&size=2&minPosition={position}"
        )
    };
    let (status, first) = ward.query("token-dana", &page(1)).await;
    assert_eq!(status, 200, "{first}");
    let ids = |answer: &Value| -> Vec<String> {
        answer["data"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|task| task["task_id"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(ids(&first), ["T-1", "T-3"]);
    assert_eq!(
        first["page"],
        json!({ "page": 1, "size": 2, "total": 3, "pages": 2, "hasNext": true })
    );
    let (_, second) = ward.query("token-dana", &page(2)).await;
    assert_eq!(ids(&second), ["T-2"]);
    assert_eq!(second["page"]["hasNext"], false);
    let (status, history) = ward
        .query(
            "token-amira",
            &format!("GetMemberHistory?member=amira&minPosition={position}"),
        )
        .await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(history["data"][0]["kind"]["type"], "assigned");
    assert_eq!(history["data"][0]["task_id"], "T-1");
    assert_eq!(history["page"]["size"], 50, "the default page size");

    // A position the log has not reached: the answer comes after the wait, flagged.
    let (status, stale) = ward
        .query(
            "token-dana",
            &format!("GetDailyAnalytics?minPosition={}", position + 1000),
        )
        .await;
    assert_eq!(status, 200, "{stale}");
    assert_eq!(stale["freshness"]["stale"], true);
    assert_eq!(stale["data"][0]["created"], 3);

    for handle in handles {
        handle.stop().await.expect("stops cleanly");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_are_problem_documents() {
    let ward = Ward::serve().await;
    let cases = [
        ("GetTaskById", "missing-field", 400, "invalid-query"),
        (
            "FindOpenTasksByCoordinator?coordinator=dana&size=0",
            "size 0",
            400,
            "invalid-query",
        ),
        (
            "FindOpenTasksByCoordinator?coordinator=dana&page=two",
            "page two",
            400,
            "invalid-query",
        ),
        (
            "FindOpenTasksByCoordinator?coordinator=dana&size=1001",
            "size 1001",
            400,
            "invalid-query",
        ),
        (
            "GetTaskById?task_id=T-1&minPosition=soon",
            "minPosition",
            400,
            "invalid-query",
        ),
        ("FindTasksByMood?mood=calm", "unknown", 404, "unknown-query"),
    ];
    for (query, what, status, slug) in cases {
        let (got, problem) = ward.query("token-dana", query).await;
        assert_eq!(got, status, "{what}: {problem}");
        assert_eq!(
            problem["type"],
            format!("urn:factum:problem:{slug}"),
            "{what}"
        );
    }
    let (_, missing) = ward.query("token-dana", "GetTaskById").await;
    assert_eq!(missing["detail"], "missing field `task_id`");
    let (_, unknown) = ward.query("token-dana", "FindTasksByMood").await;
    assert_eq!(
        unknown["known"],
        json!([
            "FindOpenTasksByAssignee",
            "FindOpenTasksByCoordinator",
            "GetDailyAnalytics",
            "GetMemberHistory",
            "GetTaskById"
        ])
    );
    let response = ward
        .client
        .get(format!("{}/queries/GetTaskById?task_id=T-1", ward.base))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status().as_u16(), 401);
}
