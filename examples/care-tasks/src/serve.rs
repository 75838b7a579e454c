//! The care-task service over HTTP: the [application](crate::application) behind
//! `POST /commands/{name}`, the [queries](crate::queries) behind `GET /queries/{name}`,
//! the task events — to care coordinators and operators — behind `GET /streams/{id}` and
//! `GET /events`, and the web console under `/console/` (coordinators look, operators
//! also replay and rebuild), on factum's HTTP layer (see `factum::http` for the wire
//! contract).

use std::sync::{Arc, OnceLock};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use factum::application::BuildError;
use factum::authorization::Decision;
use factum::context::Actor;
use factum::http::{ApiInfo, Authenticate, BearerTokens, Console, HttpApi, Principal};
use factum::projection::sqlite::SqliteReadModel;
use factum::projection::{ManagedProjection, ProjectionControl, ProjectionRunner};
use factum::query::QueryRunner;
use factum::store::SqliteStore;

use crate::projections::coordinator_task_list::CoordinatorTaskList;
use crate::projections::daily_analytics::DailyAnalytics;
use crate::projections::member_task_history::MemberTaskHistory;
use crate::queries::{
    FindOpenTasksByAssignee, FindOpenTasksByCoordinator, GetDailyAnalytics, GetMemberHistory,
    GetTaskById,
};
use crate::{CARE_TEAM, COORDINATOR, OPERATOR};

/// The ward's demo credentials: one bearer token per person, `token-<name>` (dana
/// coordinates; amira, ben and chloe are the care team; olga operates the service), all
/// on ward 3. A real service
/// authenticates with its identity provider instead (see `factum::http::Authenticate`).
pub fn ward_tokens() -> BearerTokens {
    let on_the_ward =
        |kind: &str, id: &str| Principal::new(Actor::new(kind, id)).in_tenant("ward-3");
    BearerTokens::new()
        .token("token-dana", on_the_ward(COORDINATOR, "dana"))
        .token("token-amira", on_the_ward(CARE_TEAM, "amira"))
        .token("token-ben", on_the_ward(CARE_TEAM, "ben"))
        .token("token-chloe", on_the_ward(CARE_TEAM, "chloe"))
        .token("token-olga", on_the_ward(OPERATOR, "olga"))
}

/// The care-task routes over `store` and the read models in `read_models`, authenticated
/// by `authenticate`.
pub fn router(
    store: SqliteStore,
    read_models: SqliteReadModel,
    authenticate: impl Authenticate,
) -> Result<axum::Router, BuildError> {
    let app = crate::application(store.clone())?;
    let queries = Arc::new(QueryRunner::new(store.clone(), read_models.clone()));
    let console = Console::new(store.clone())
        .viewers([COORDINATOR])
        .operators([OPERATOR])
        .projections(projections(&store, &read_models));
    Ok(HttpApi::new(app, authenticate)
        .info(ApiInfo {
            title: "Care tasks".to_owned(),
            version: "1.0.0".to_owned(),
            description: "Tasks on a care ward: coordinators create and assign them, the care team completes them; three read models answer the queries.".to_owned(),
        })
        .read_policy(|principal: &Principal, stream_type: &str| {
            Decision::allow_if(
                (principal.actor.is(COORDINATOR) || principal.actor.is(OPERATOR))
                    && stream_type == "Task",
                "only care coordinators and operators read the task events",
            )
        })
        .query::<GetTaskById, _>(Arc::clone(&queries))
        .query::<FindOpenTasksByCoordinator, _>(Arc::clone(&queries))
        .query::<FindOpenTasksByAssignee, _>(Arc::clone(&queries))
        .query::<GetMemberHistory, _>(Arc::clone(&queries))
        .query::<GetDailyAnalytics, _>(queries)
        .console(console)
        .router())
}

/// The three projections, as the console and the operator commands steer them.
pub fn projections(
    store: &SqliteStore,
    read_models: &SqliteReadModel,
) -> Vec<Arc<dyn ProjectionControl>> {
    let runner = || ProjectionRunner::new(store.clone());
    vec![
        Arc::new(ManagedProjection::new(
            runner(),
            || CoordinatorTaskList,
            read_models.clone(),
        )),
        Arc::new(ManagedProjection::new(
            runner(),
            || MemberTaskHistory,
            read_models.clone(),
        )),
        Arc::new(ManagedProjection::new(
            runner(),
            || DailyAnalytics,
            read_models.clone(),
        )),
    ]
}

/// The histogram buckets of the latencies (`*_seconds`), from half a millisecond to
/// ten seconds: Prometheus then gets real histograms (`_bucket`), which dashboards
/// aggregate across instances.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// This process's Prometheus recorder, installed on first use: from then on every metric
/// factum reports (see `factum::telemetry`) is kept for the `/metrics` route.
///
/// # Errors
///
/// When another recorder is installed already.
pub fn prometheus() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)?
        .install_recorder()?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// `GET /metrics`: everything the recorder holds, in Prometheus's text format, with the
/// store's size on disk measured for the scrape. Not authenticated: serve it where only
/// the monitoring system reaches (here it shares the service's port, for the demo).
pub fn metrics_route(handle: PrometheusHandle, store: SqliteStore) -> axum::Router {
    use axum::http::header::CONTENT_TYPE;
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            let store = store.clone();
            async move {
                match store.size_on_disk().await {
                    Ok(bytes) => factum::telemetry::record_store_size(bytes),
                    Err(error) => {
                        eprintln!("/metrics: could not measure the store's size: {error}")
                    }
                }
                (
                    [(CONTENT_TYPE, "text/plain; version=0.0.4")],
                    handle.render(),
                )
            }
        }),
    )
}

/// Serves the care-task service on `address` over the events in `options.db`, with the
/// three projections running, until Ctrl-C.
pub async fn until_stopped(
    options: &crate::demo::Options,
    address: std::net::SocketAddr,
) -> Result<(), crate::demo::DemoError> {
    use crate::demo::DemoError;

    let read_models_dir = options
        .read_models
        .clone()
        .unwrap_or_else(|| crate::demo::read_models_beside(&options.db));
    let store = options.open_store().await?;
    let read_models = SqliteReadModel::open(&read_models_dir).await?;
    let runner = factum::projection::ProjectionRunner::new(store.clone());
    let projections = [
        runner.spawn(CoordinatorTaskList, read_models.clone()),
        runner.spawn(MemberTaskHistory, read_models.clone()),
        runner.spawn(DailyAnalytics, read_models.clone()),
    ];
    let router = router(store.clone(), read_models, ward_tokens())?
        .merge(metrics_route(prometheus()?, store));
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(DemoError::Serve)?;
    println!(
        "serving care tasks on http://{} (Ctrl-C stops); try:\n  curl -H 'Authorization: Bearer token-dana' 'http://{0}/queries/FindOpenTasksByCoordinator?coordinator=dana'",
        listener.local_addr().map_err(DemoError::Serve)?
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            // Without a signal handler the service runs until killed.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
        .await
        .map_err(DemoError::Serve)?;
    for projection in projections {
        projection.stop().await?;
    }
    Ok(())
}

/// The care-task service running on a loopback port: its address and its projections.
pub struct OnLoopback {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The three projections, running.
    pub projections: Vec<factum::projection::ProjectionHandle<SqliteStore>>,
}

impl std::fmt::Debug for OnLoopback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnLoopback")
            .field("base", &self.base)
            .field("projections", &self.projections.len())
            .finish()
    }
}

impl OnLoopback {
    /// Stops the projections (the server stops with its runtime).
    pub async fn stop(self) -> Result<(), factum::projection::RunnerError> {
        for projection in self.projections {
            projection.stop().await?;
        }
        Ok(())
    }
}

/// Serves the care-task service on a free loopback port over `store` and `read_models`,
/// with `GET /metrics` (see [`prometheus`]) and the three projections running (polling every 20 ms when idle): what the tests
/// and the main job drive with a real client.
pub async fn on_loopback(
    store: SqliteStore,
    read_models: SqliteReadModel,
) -> Result<OnLoopback, crate::demo::DemoError> {
    use crate::demo::DemoError;

    let runner = factum::projection::ProjectionRunner::new(store.clone())
        .idle_wait(std::time::Duration::from_millis(20));
    let projections = vec![
        runner.spawn(CoordinatorTaskList, read_models.clone()),
        runner.spawn(MemberTaskHistory, read_models.clone()),
        runner.spawn(DailyAnalytics, read_models.clone()),
    ];
    let router = router(store.clone(), read_models, ward_tokens())?
        .merge(metrics_route(prometheus()?, store));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(DemoError::Serve)?;
    let base = format!(
        "http://{}",
        listener.local_addr().map_err(DemoError::Serve)?
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(OnLoopback { base, projections })
}
