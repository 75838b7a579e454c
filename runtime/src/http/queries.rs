//! `GET /queries/{QueryName}?...`: a typed query asked of its read model, answered with
//! its data, its page and its freshness.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::Api;
use super::problem::Problem;
use crate::projection::ReadModel;
use crate::query::{Consistency, Freshness, Page, Query, QueryError, QueryRunner};
use crate::store::EventStore;

/// The query parameter that asks for a read model that has applied a position (the
/// `position` a command's acknowledgement carried): the answer waits for it, bounded.
pub const MIN_POSITION: &str = "minPosition";

/// An answer as the wire carries it: the data, and the page it is when it is one. An
/// answer is one thing or none (`Option<T>`), all of them (`Vec<T>`), or a page of them
/// (`Page<T>`), of a `T` that serialises and has a JSON Schema.
pub trait WireAnswer: Send {
    /// Whether the answer is a page (its `page` member is then set).
    const PAGED: bool;

    /// The `data` member and, for a page, the `page` member.
    fn into_wire(self) -> Result<(Value, Option<Value>), serde_json::Error>;

    /// The JSON Schema of the `data` member, for the OpenAPI document.
    fn data_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema;
}

impl<T: Serialize + JsonSchema + Send> WireAnswer for Option<T> {
    const PAGED: bool = false;

    fn into_wire(self) -> Result<(Value, Option<Value>), serde_json::Error> {
        Ok((serde_json::to_value(self)?, None))
    }

    fn data_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<Option<T>>()
    }
}

impl<T: Serialize + JsonSchema + Send> WireAnswer for Vec<T> {
    const PAGED: bool = false;

    fn into_wire(self) -> Result<(Value, Option<Value>), serde_json::Error> {
        Ok((serde_json::to_value(self)?, None))
    }

    fn data_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<Vec<T>>()
    }
}

impl<T: Serialize + JsonSchema + Send> WireAnswer for Page<T> {
    const PAGED: bool = true;

    fn data_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<Vec<T>>()
    }

    fn into_wire(self) -> Result<(Value, Option<Value>), serde_json::Error> {
        let page = json!({
            "page": self.page,
            "size": self.size,
            "total": self.total,
            "pages": self.pages(),
            "hasNext": self.has_next(),
        });
        Ok((serde_json::to_value(self.items)?, Some(page)))
    }
}

/// The freshness member of an answer.
fn freshness(freshness: &Freshness) -> Value {
    json!({
        "projection": freshness.projection,
        "version": freshness.version,
        "position": freshness.position,
        "head": freshness.head,
        "lagEvents": freshness.lag_events,
        "lagSeconds": freshness.lag_seconds,
        "rebuilding": freshness.rebuilding,
        "stale": freshness.stale,
    })
}

type Answering = Pin<Box<dyn Future<Output = Result<Value, Problem>> + Send>>;

/// One query's way to its read model.
pub(super) trait QueryRoute: Send + Sync {
    fn ask(&self, query: &str, consistency: Consistency) -> Answering;
}

struct Route<Q, S, M> {
    runner: Arc<QueryRunner<S, M>>,
    query: std::marker::PhantomData<fn() -> Q>,
}

/// A route to `Q`, answered by `runner`.
pub(super) fn route<Q, S, M>(runner: Arc<QueryRunner<S, M>>) -> Arc<dyn QueryRoute>
where
    Q: Query<M> + DeserializeOwned + 'static,
    Q::Answer: WireAnswer,
    S: EventStore + Send + Sync + 'static,
    M: ReadModel + Send + Sync + 'static,
{
    Arc::new(Route::<Q, S, M> {
        runner,
        query: std::marker::PhantomData,
    })
}

impl<Q, S, M> QueryRoute for Route<Q, S, M>
where
    Q: Query<M> + DeserializeOwned + 'static,
    Q::Answer: WireAnswer,
    S: EventStore + Send + Sync + 'static,
    M: ReadModel + Send + Sync + 'static,
{
    fn ask(&self, query: &str, consistency: Consistency) -> Answering {
        let parsed = parameters::<Q>(query);
        let runner = Arc::clone(&self.runner);
        Box::pin(async move {
            let query = parsed?;
            let answer = runner
                .ask(query, consistency)
                .await
                .map_err(|error| from_query_error(&error))?;
            let (data, page) = answer.value.into_wire().map_err(|error| {
                tracing::error!(target: "factum::http", query = Q::NAME, %error, "an answer did not serialise");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                    "the answer could not be written as JSON",
                )
            })?;
            Ok(json!({
                "data": data,
                "page": page,
                "freshness": freshness(&answer.freshness),
            }))
        })
    }
}

/// The query's parameters: its fields from the query string, by name (numbers as text),
/// naming the field that does not read.
fn parameters<Q: DeserializeOwned>(query: &str) -> Result<Q, Problem> {
    let deserializer =
        serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-query",
            "The parameters are not the query's",
            format!("{}", error.into_inner()),
        )
        .with("path", path)
    })
}

fn from_query_error(error: &QueryError) -> Problem {
    let detail = crate::error::Report(error).to_string();
    match error {
        QueryError::NotReady { projection, .. } => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            "The read model is not built yet",
            detail,
        )
        .with("projection", *projection),
        QueryError::InvalidPage { .. } => Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-query",
            "The parameters are not the query's",
            detail,
        ),
        _ => {
            tracing::error!(target: "factum::http", error = detail, "a query failed");
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "the query failed inside the service",
            )
        }
    }
}

/// Handles one query request.
pub(super) async fn get<S: EventStore + Send + Sync + 'static>(
    State(api): State<Arc<Api<S>>>,
    Path(name): Path<String>,
    OriginalUri(uri): OriginalUri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let path = uri.path().to_owned();
    match ask(&api, &name, query.as_deref().unwrap_or(""), &headers).await {
        Ok(body) => (StatusCode::OK, axum::Json(body)).into_response(),
        Err(problem) => problem.at(path).into_response(),
    }
}

async fn ask<S: EventStore + Send + Sync + 'static>(
    api: &Api<S>,
    name: &str,
    query: &str,
    headers: &HeaderMap,
) -> Result<Value, Problem> {
    api.principal(headers).await?;
    let route = api.queries.get(name).ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "unknown-query",
            "No such query",
            format!(
                "no query named `{}` (known: {})",
                name.chars().take(128).collect::<String>(),
                api.queries.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
        .with("known", api.queries.keys().cloned().collect::<Vec<_>>())
    })?;
    let consistency = match min_position(query)? {
        Some(position) => Consistency::at_least(position, api.read_wait),
        None => Consistency::Any,
    };
    route.ask(query, consistency).await
}

/// The `minPosition` parameter, if given.
fn min_position(query: &str) -> Result<Option<u64>, Problem> {
    let Some((_, value)) =
        form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == MIN_POSITION)
    else {
        return Ok(None);
    };
    value.trim().parse().map(Some).map_err(|_| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-query",
            "The parameters are not the query's",
            format!(
                "`{MIN_POSITION}` must be a global position (a whole number), not `{}`",
                value.chars().take(32).collect::<String>()
            ),
        )
        .with("path", MIN_POSITION)
    })
}

/// The routes of the queries, by name.
pub(super) type QueryRoutes = BTreeMap<String, Arc<dyn QueryRoute>>;

/// The default bound of a wait for `minPosition`.
pub const DEFAULT_READ_WAIT: Duration = Duration::from_secs(5);
