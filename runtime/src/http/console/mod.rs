//! The operator's web console, served by the HTTP layer under `/console/`: a stream
//! browser with search, each event whole, a correlation's causal tree, the projections
//! with their live lag and parked events (replay and rebuild for operators), and a live
//! tail of the log over Server-Sent Events. Its page, script and style are embedded in
//! the binary; nothing is loaded from elsewhere.
//!
//! The page asks for a bearer token (or takes one from the URL's fragment,
//! `/console/#token=...`, which never reaches a server) and calls:
//!
//! | route | for | who |
//! |---|---|---|
//! | `GET /console/api/me` | the caller and what they may do | viewers |
//! | `GET /console/api/streams?contains=&after=&limit=` | stream ids, types and versions, in id order, paged | viewers |
//! | `GET /console/api/trace/{correlationId}` | the causal tree ([`CausalTree`]) | viewers |
//! | `GET /console/api/projections` | each projection's versions, lag and parked events | viewers |
//! | `GET /console/api/tail?fromPosition=N` | the whole log after `N`, as SSE summaries (no payloads) | viewers |
//! | `POST /console/api/projections/{name}/parked/{position}/replay` | replays a parked event | operators |
//! | `POST /console/api/projections/{name}/rebuild` | starts rebuilding the projection on a task of its own (`202`; `409` while one runs); its progress shows in `GET /console/api/projections` | operators |
//!
//! Payloads are read through `GET /streams/{streamId}`, so the application's
//! [`ReadPolicy`](crate::authorization::ReadPolicy) decides and the access audit record
//! keeps every read. Viewers and operators are actor kinds ([`Console::viewers`],
//! [`Console::operators`]); anyone else gets `403`.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde_json::{Value, json};

mod rebuilds;

use super::problem::Problem;
use super::streams::{bad_parameter, last_event_id, number, parameter};
use super::{Api, Principal};
use crate::causation::{Applier, CausalTree, correlated};
use crate::projection::{ProjectionControl, ProjectionStatus, VersionState};
use crate::store::{EventStore, StoreError, StreamCatalog, StreamFilter, StreamInfo};

/// The page, its script and its style, embedded.
const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("console.js");
const STYLE: &str = include_str!("console.css");

/// The most streams one listing returns.
pub const MAX_STREAMS_PAGE: usize = 500;

/// The console's settings: who may look, who may act, and the projections it shows.
#[derive(Clone)]
pub struct Console {
    catalog: Arc<dyn Catalog>,
    viewers: BTreeSet<String>,
    operators: BTreeSet<String>,
    projections: Vec<Arc<dyn ProjectionControl>>,
    rebuilds: rebuilds::Rebuilds,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("viewers", &self.viewers)
            .field("operators", &self.operators)
            .field(
                "projections",
                &self
                    .projections
                    .iter()
                    .map(|projection| projection.name())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Console {
    /// A console over `store` (the store the application writes), that no one may use
    /// yet: name the [`viewers`](Console::viewers) and
    /// [`operators`](Console::operators).
    pub fn new(store: impl StreamCatalog + Send + Sync + 'static) -> Self {
        Self {
            catalog: Arc::new(store),
            viewers: BTreeSet::new(),
            operators: BTreeSet::new(),
            projections: Vec::new(),
            rebuilds: rebuilds::Rebuilds::default(),
        }
    }

    /// Actors of these kinds may look (operators may too).
    pub fn viewers<K: Into<String>>(mut self, kinds: impl IntoIterator<Item = K>) -> Self {
        self.viewers.extend(kinds.into_iter().map(Into::into));
        self
    }

    /// Actors of these kinds may look, replay parked events and rebuild projections.
    pub fn operators<K: Into<String>>(mut self, kinds: impl IntoIterator<Item = K>) -> Self {
        self.operators.extend(kinds.into_iter().map(Into::into));
        self
    }

    /// Shows a projection, and lets operators replay its parked events and rebuild it
    /// (see [`ManagedProjection`](crate::projection::ManagedProjection)).
    pub fn projection(mut self, projection: impl ProjectionControl) -> Self {
        self.projections.push(Arc::new(projection));
        self
    }

    /// Shows these projections (the ones an application's operator commands steer too).
    pub fn projections(
        mut self,
        projections: impl IntoIterator<Item = Arc<dyn ProjectionControl>>,
    ) -> Self {
        self.projections.extend(projections);
        self
    }

    fn may_view(&self, principal: &Principal) -> bool {
        self.viewers.contains(&principal.actor.kind) || self.may_operate(principal)
    }

    fn may_operate(&self, principal: &Principal) -> bool {
        self.operators.contains(&principal.actor.kind)
    }

    fn projection_named(&self, name: &str) -> Result<&Arc<dyn ProjectionControl>, Problem> {
        self.projections
            .iter()
            .find(|projection| projection.name() == name)
            .ok_or_else(|| {
                Problem::new(
                    StatusCode::NOT_FOUND,
                    "unknown-projection",
                    "No such projection",
                    format!(
                        "the console shows no projection `{}`",
                        name.chars().take(64).collect::<String>()
                    ),
                )
                .with(
                    "known",
                    self.projections
                        .iter()
                        .map(|projection| projection.name())
                        .collect::<Vec<_>>(),
                )
            })
    }
}

/// The streams listing, object-safe over the store type.
trait Catalog: Send + Sync + 'static {
    fn list<'a>(
        &'a self,
        filter: StreamFilter<'a>,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<StreamInfo>, StoreError>>;
}

impl<S: StreamCatalog + Send + Sync + 'static> Catalog for S {
    fn list<'a>(
        &'a self,
        filter: StreamFilter<'a>,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<StreamInfo>, StoreError>> {
        Box::pin(self.streams(filter, after, limit))
    }
}

/// The console's routes, with the API's state.
pub(super) fn routes<S: EventStore + Send + Sync + 'static>() -> Router<Arc<Api<S>>> {
    Router::new()
        .route("/console", get(redirect))
        .route("/console/", get(|| asset("text/html; charset=utf-8", PAGE)))
        .route(
            "/console/console.js",
            get(|| asset("text/javascript; charset=utf-8", SCRIPT)),
        )
        .route(
            "/console/console.css",
            get(|| asset("text/css; charset=utf-8", STYLE)),
        )
        .route("/console/api/me", get(me::<S>))
        .route("/console/api/streams", get(streams::<S>))
        .route("/console/api/trace/{correlation_id}", get(trace::<S>))
        .route("/console/api/projections", get(projections::<S>))
        .route(
            "/console/api/projections/{name}/parked/{position}/replay",
            post(replay::<S>),
        )
        .route(
            "/console/api/projections/{name}/rebuild",
            post(rebuild::<S>),
        )
        .route("/console/api/tail", get(tail::<S>))
}

async fn redirect() -> Response {
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, HeaderValue::from_static("/console/"))],
    )
        .into_response()
}

/// An embedded asset, never framed by another site and running only its own script.
async fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'",
                ),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// The console, when the API serves one.
fn console<S>(api: &Api<S>) -> Result<&Console, Problem> {
    api.console.as_ref().ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "no-console",
            "No console",
            "this service serves no console",
        )
    })
}

/// The caller, when they may look.
async fn viewer<'a, S>(
    api: &'a Api<S>,
    headers: &HeaderMap,
) -> Result<(Principal, &'a Console), Problem> {
    let console = console(api)?;
    let principal = api.principal(headers).await?;
    if !console.may_view(&principal) {
        return Err(denied(&principal, "look at the console"));
    }
    Ok((principal, console))
}

/// The caller, when they may act.
async fn operator<'a, S>(
    api: &'a Api<S>,
    headers: &HeaderMap,
) -> Result<(Principal, &'a Console), Problem> {
    let (principal, console) = viewer(api, headers).await?;
    if !console.may_operate(&principal) {
        return Err(denied(&principal, "replay or rebuild projections"));
    }
    Ok((principal, console))
}

fn denied(principal: &Principal, what: &str) -> Problem {
    Problem::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "Not allowed",
        format!(
            "actors of kind `{}` may not {what}",
            principal.actor.kind.chars().take(64).collect::<String>()
        ),
    )
}

fn failed(what: &str, error: &(dyn std::error::Error + 'static)) -> Problem {
    tracing::error!(target: "factum::http", error = %crate::error::Report(error), "the console could not {what}");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "The console could not answer",
        format!("could not {what}"),
    )
}

/// Answers `result` as JSON, or its problem at the request's path.
fn answer(uri: &axum::http::Uri, result: Result<Value, Problem>) -> Response {
    match result {
        Ok(body) => (StatusCode::OK, axum::Json(body)).into_response(),
        Err(problem) => problem.at(uri.path().to_owned()).into_response(),
    }
}

async fn me<S: EventStore + Send + Sync + 'static>(
    State(api): State<Arc<Api<S>>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let (principal, console) = viewer(&api, &headers).await?;
        Ok(json!({
            "actor": principal.actor.id,
            "kind": principal.actor.kind,
            "tenant": principal.tenant,
            "operator": console.may_operate(&principal),
        }))
    }
    .await;
    answer(&uri, result)
}

async fn streams<S: EventStore + Send + Sync + 'static>(
    State(api): State<Arc<Api<S>>>,
    OriginalUri(uri): OriginalUri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = query.unwrap_or_default();
    let result = async {
        let (_, console) = viewer(&api, &headers).await?;
        let contains = parameter(&query, "contains").filter(|text| !text.is_empty());
        let stream_type = parameter(&query, "type").filter(|text| !text.is_empty());
        let after = parameter(&query, "after");
        let limit = number(&query, "limit")?.unwrap_or(50);
        if limit == 0 || limit > MAX_STREAMS_PAGE as u64 {
            return Err(bad_parameter(
                "limit",
                format!("`limit` is from 1 to {MAX_STREAMS_PAGE}"),
            ));
        }
        let filter = StreamFilter {
            stream_type: stream_type.as_deref(),
            contains: contains.as_deref(),
        };
        let streams = console
            .catalog
            .list(filter, after.as_deref(), limit as usize)
            .await
            .map_err(|error| failed("list the streams", &error))?;
        let next = (streams.len() as u64 == limit)
            .then(|| streams.last().map(|last| last.stream_id.clone()))
            .flatten();
        Ok(json!({
            "streams": streams.iter().map(|stream| json!({
                "streamId": stream.stream_id,
                "streamType": stream.stream_type,
                "version": stream.version,
            })).collect::<Vec<_>>(),
            "next": next,
        }))
    }
    .await;
    answer(&uri, result)
}

async fn status_of(projection: &Arc<dyn ProjectionControl>) -> Result<ProjectionStatus, Problem> {
    projection
        .status()
        .await
        .map_err(|error| failed("read a projection's status", &*error))
}

/// The active version of each projection, for a trace's "applied by".
async fn appliers(console: &Console) -> Result<Vec<Applier>, Problem> {
    let mut appliers = Vec::new();
    for projection in &console.projections {
        let status = status_of(projection).await?;
        for version in status.versions {
            if version.state == VersionState::Active {
                let parked = match version.version == status.current_version {
                    true => status
                        .parked
                        .iter()
                        .map(|parked| parked.event.position)
                        .collect(),
                    false => Vec::new(),
                };
                appliers.push(Applier {
                    name: projection.name().to_owned(),
                    checkpoint: version.checkpoint,
                    parked,
                });
            }
        }
    }
    Ok(appliers)
}

async fn trace<S: EventStore + Send + Sync + 'static>(
    State(api): State<Arc<Api<S>>>,
    OriginalUri(uri): OriginalUri,
    Path(correlation_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let (_, console) = viewer(&api, &headers).await?;
        let correlation: uuid::Uuid = correlation_id.trim().parse().map_err(|_| {
            bad_parameter(
                "correlationId",
                format!(
                    "`{}` is not a correlation id (a UUID)",
                    correlation_id.chars().take(64).collect::<String>()
                ),
            )
        })?;
        let events = correlated(api.app.store(), correlation)
            .await
            .map_err(|error| failed("read the log", &error))?;
        if events.is_empty() {
            return Err(Problem::new(
                StatusCode::NOT_FOUND,
                "unknown-correlation",
                "No such correlation",
                format!("no event has the correlation id {correlation}"),
            ));
        }
        let tree = CausalTree::of(correlation, &events, &appliers(console).await?);
        serde_json::to_value(&tree).map_err(|error| failed("write the tree", &error))
    }
    .await;
    answer(&uri, result)
}

/// A parked event, as the console lists it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ParkedRow<'a> {
    position: u64,
    name: &'a str,
    stream_id: &'a str,
    stream_version: u64,
    error: &'a str,
    attempts: u32,
    parked_at: chrono::DateTime<chrono::Utc>,
}

async fn projections<S: EventStore + Send + Sync + 'static>(
    State(api): State<Arc<Api<S>>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let (_, console) = viewer(&api, &headers).await?;
        let store = api.app.store();
        let head = store
            .head()
            .await
            .map_err(|error| failed("read the head of the log", &error))?
            .map_or(0, |head| head.position);
        let mut rows = Vec::new();
        for projection in &console.projections {
            let status = status_of(projection).await?;
            let current = status
                .versions
                .iter()
                .find(|version| version.version == status.current_version);
            let checkpoint = current.map_or(0, |version| version.checkpoint);
            let lag_events = head.saturating_sub(checkpoint);
            // The age of the oldest event not applied: how late the model is.
            // Not known (`null`) when that event is archived.
            let lag_seconds = match lag_events {
                0 => Some(0.0),
                _ => match store.read_all(checkpoint, 1).await {
                    Ok(next) => Some(next.first().map_or(0.0, |next| {
                        (chrono::Utc::now() - next.timestamp)
                            .num_milliseconds()
                            .max(0) as f64
                            / 1000.0
                    })),
                    Err(StoreError::Archived { .. }) => None,
                    Err(error) => return Err(failed("read the log", &error)),
                },
            };
            rows.push(json!({
                "name": projection.name(),
                "currentVersion": status.current_version,
                "state": current.map(|version| state_name(version.state)),
                "checkpoint": checkpoint,
                "lagEvents": lag_events,
                "lagSeconds": lag_seconds,
                "rebuild": console.rebuilds.of(projection.name()),
                "versions": status.versions.iter().map(|version| json!({
                    "version": version.version,
                    "state": state_name(version.state),
                    "checkpoint": version.checkpoint,
                    "parked": version.parked,
                })).collect::<Vec<_>>(),
                "parked": status.parked.iter().map(|parked| ParkedRow {
                    position: parked.event.position,
                    name: &parked.event.name,
                    stream_id: &parked.event.stream_id,
                    stream_version: parked.event.stream_version,
                    error: &parked.error,
                    attempts: parked.attempts,
                    parked_at: parked.parked_at,
                }).collect::<Vec<_>>(),
            }));
        }
        Ok(json!({ "head": head, "projections": rows }))
    }
    .await;
    answer(&uri, result)
}

fn state_name(state: VersionState) -> &'static str {
    match state {
        VersionState::Building => "building",
        VersionState::Active => "active",
        VersionState::Retired => "retired",
    }
}

async fn replay<S: EventStore + Send + Sync + 'static>(
    State(api): State<Arc<Api<S>>>,
    OriginalUri(uri): OriginalUri,
    Path((name, position)): Path<(String, u64)>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let (principal, console) = operator(&api, &headers).await?;
        let projection = console.projection_named(&name)?;
        tracing::info!(target: "factum::http", actor = %principal.actor, projection = projection.name(), position, "replaying a parked event from the console");
        projection.replay_parked(position).await.map_err(|error| {
            Problem::new(
                StatusCode::CONFLICT,
                "replay-failed",
                "The parked event was not replayed",
                crate::error::Report(&*error).to_string(),
            )
        })?;
        Ok(json!({ "replayed": position, "projection": projection.name() }))
    }
    .await;
    answer(&uri, result)
}

async fn rebuild<S: EventStore + Send + Sync + 'static>(
    State(api): State<Arc<Api<S>>>,
    OriginalUri(uri): OriginalUri,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let (principal, console) = operator(&api, &headers).await?;
        let projection = Arc::clone(console.projection_named(&name)?);
        let name = projection.name();
        let by = format!("{}:{}", principal.actor.kind, principal.actor.id);
        tracing::info!(target: "factum::http", actor = %principal.actor, projection = name, "rebuilding a projection from the console");
        let job = console.rebuilds.start(projection, by).ok_or_else(|| {
            Problem::new(
                StatusCode::CONFLICT,
                "rebuild-running",
                "A rebuild of this projection is running",
                format!("`{name}` is being rebuilt already; its progress shows in GET /console/api/projections"),
            )
        })?;
        Ok::<_, Problem>(json!({ "rebuilding": name, "rebuild": job }))
    }
    .await;
    match result {
        Ok(body) => (StatusCode::ACCEPTED, axum::Json(body)).into_response(),
        Err(problem) => problem.at(uri.path().to_owned()).into_response(),
    }
}

/// `GET /console/api/tail?fromPosition=N`: every event after `N` (default: the last 20),
/// then each as it is committed, as SSE summaries: position (the SSE id), name, stream,
/// time and correlation; no payload.
async fn tail<S: EventStore + Send + Sync + 'static>(
    State(api): State<Arc<Api<S>>>,
    OriginalUri(uri): OriginalUri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = query.unwrap_or_default();
    let result = async {
        viewer(&api, &headers).await?;
        let resume = last_event_id(&headers)?;
        let after = match (resume, number(&query, "fromPosition")?) {
            (Some(position), _) | (None, Some(position)) => position,
            (None, None) => api
                .app
                .store()
                .head()
                .await
                .map_err(|error| failed("read the head of the log", &error))?
                .map_or(0, |head| head.position.saturating_sub(20)),
        };
        Ok::<_, Problem>(after)
    }
    .await;
    match result {
        Ok(after) => {
            let keep_alive = api.keep_alive;
            Sse::new(follow(api, after))
                .keep_alive(KeepAlive::new().interval(keep_alive))
                .into_response()
        }
        Err(problem) => problem.at(uri.path().to_owned()).into_response(),
    }
}

/// The whole log after `after`, as summaries.
fn follow<S: EventStore + Send + Sync + 'static>(
    api: Arc<Api<S>>,
    after: u64,
) -> impl futures_util::Stream<Item = Result<Event, Infallible>> + Send + 'static {
    super::streams::follow_log(api, after, |_, event| {
        let summary = json!({
            "position": event.position,
            "name": event.name,
            "streamId": event.stream_id,
            "streamType": event.stream_type,
            "streamVersion": event.stream_version,
            "timestamp": event.timestamp,
            "correlationId": event.metadata.correlation_id,
        });
        Ok(Some(
            Event::default()
                .id(event.position.to_string())
                .data(summary.to_string()),
        ))
    })
}
