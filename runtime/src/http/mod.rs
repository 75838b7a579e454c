//! The HTTP layer (feature `http`): an [`Application`] served on axum, so a team writes
//! no routing by hand.
//!
//! # The wire contract
//!
//! `POST /commands/{CommandName}` with the command's JSON (its schema in the registry):
//!
//! - The caller is authenticated by the application's [`Authenticate`] (factum brings
//!   [`BearerTokens`]); its [`Principal`] is the command's actor and tenant. No or bad
//!   credentials: `401` with `WWW-Authenticate: Bearer`.
//! - `Idempotency-Key: <uuid>` is the command id; without it one is generated. Either
//!   way the response carries it back in `Idempotency-Key`. A repeat with the same key
//!   and body gets the original answer (nothing is recorded twice); the same key with
//!   another body is `422`.
//! - `If-Match: "<stream version>"` is the version the caller decided on: at another
//!   version the answer is `412` with the current version in `ETag` and in the body
//!   (`currentVersion`).
//! - Success: `201` when the command created its stream, else `200`, with
//!   `{"commandId", "acknowledged": true, "streamId", "version", "position",
//!   "timestamp"}` and `ETag: "<version>"`. `position` is the consistency token a query
//!   can wait for.
//! - Every error is an `application/problem+json` document (RFC 9457; `type` is
//!   `urn:factum:problem:<kind>`): `400` a body that is not the command (`path` names the
//!   JSON path of the bad field), a body that is not UTF-8, a malformed `Idempotency-Key`
//!   or `If-Match`; `401`; `403` denied by the aggregate's policy (`reason`) or an unknown
//!   kind of actor; `404` an unknown command (`known` lists the commands); `409` refused by
//!   the domain (the domain error's text) or a concurrent writer; `412`; `413` a body over
//!   the limit (1 MiB unless set); `415` a body not sent as JSON; `422`; `429` over a
//!   [`RateLimits`] quota of the actor or its tenant, with `Retry-After`; `503` the store
//!   is unavailable. Nothing is written on any error.
//!
//! ```no_run
//! use factum::application::Application;
//! use factum::context::Actor;
//! use factum::http::{BearerTokens, HttpApi, Principal};
//! # async fn serve(app: Application<factum::store::SqliteStore>) -> std::io::Result<()> {
//! let tokens = BearerTokens::new()
//!     .token("token-of-dana", Principal::new(Actor::new("care_coordinator", "dana")));
//! let router = HttpApi::new(app, tokens).router();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, router).await
//! # }
//! ```

mod auth;
mod commands;
pub mod console;
mod limits;
mod openapi;
mod problem;
mod queries;
mod streams;

use std::sync::Arc;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;

/// Re-exported: the web framework an [`HttpApi`] router is served and extended with.
pub use axum;

pub use crate::authorization::ReadPolicy;
pub use auth::{
    Authenticate, Authenticating, BearerTokens, Principal, Unauthenticated, bearer_token,
};
pub use commands::IDEMPOTENCY_KEY;
pub use console::Console;
pub use governor::Quota;
pub use limits::RateLimits;
pub use openapi::ApiInfo;
pub use problem::{PROBLEM_JSON, Problem};
pub use queries::{DEFAULT_READ_WAIT, MIN_POSITION, WireAnswer};
pub use streams::MAX_STREAM_PAGE;

use crate::application::Application;
use crate::projection::ReadModel;
use crate::query::{Query, QueryRunner};
use crate::store::EventStore;

/// The default largest command body: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// An [`Application`] over HTTP; see the [module documentation](self) for the wire
/// contract.
pub struct HttpApi<S> {
    api: Api<S>,
    info: ApiInfo,
    query_docs: Vec<openapi::QueryDoc>,
    /// The answers' schemas, their types defined once in the document's components.
    answers: schemars::SchemaGenerator,
}

/// What the handlers share.
struct Api<S> {
    app: Application<S>,
    authenticate: Box<dyn Authenticate>,
    body_limit: usize,
    queries: queries::QueryRoutes,
    read_wait: Duration,
    read_policy: Box<dyn ReadPolicy>,
    keep_alive: Duration,
    limits: RateLimits,
    openapi: serde_json::Value,
    console: Option<Console>,
}

impl<S> Api<S> {
    /// The principal of a request, if it is authenticated and within its rate limits.
    async fn principal(&self, headers: &axum::http::HeaderMap) -> Result<Principal, Problem> {
        let principal = self
            .authenticate
            .authenticate(headers)
            .await
            .map_err(unauthenticated)?;
        self.limits.check(&principal)?;
        Ok(principal)
    }
}

/// How often an idle event stream sends a keep-alive comment, unless set.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `GET /openapi.json`: the document, to anyone (it describes the API, not its data).
async fn openapi_json<S: EventStore + Send + Sync + 'static>(
    axum::extract::State(api): axum::extract::State<Arc<Api<S>>>,
) -> axum::Json<serde_json::Value> {
    axum::Json(api.openapi.clone())
}

/// The `401` of a request without valid credentials.
fn unauthenticated(error: Unauthenticated) -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "Not authenticated",
        error.reason,
    )
    .header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
}

impl<S: std::fmt::Debug> std::fmt::Debug for HttpApi<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpApi")
            .field("app", &self.api.app)
            .field("body_limit", &self.api.body_limit)
            .finish_non_exhaustive()
    }
}

impl<S: EventStore + Send + Sync + 'static> HttpApi<S> {
    /// Serves `app`, authenticating every request with `authenticate`.
    pub fn new(app: Application<S>, authenticate: impl Authenticate) -> Self {
        Self {
            api: Api {
                app,
                authenticate: Box::new(authenticate),
                body_limit: DEFAULT_BODY_LIMIT,
                queries: queries::QueryRoutes::new(),
                read_wait: DEFAULT_READ_WAIT,
                read_policy: Box::new(streams::NoReads),
                keep_alive: DEFAULT_KEEP_ALIVE,
                limits: RateLimits::new(),
                openapi: serde_json::Value::Null,
                console: None,
            },
            info: ApiInfo::default(),
            query_docs: Vec::new(),
            answers: schemars::generate::SchemaSettings::draft2020_12()
                .for_serialize()
                .with(|settings| settings.definitions_path = "/components/schemas".into())
                .into_generator(),
        }
    }

    /// Refuses command bodies over `bytes` with `413` (default [`DEFAULT_BODY_LIMIT`]).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.api.body_limit = bytes;
        self
    }

    /// Answers `GET /queries/{Q::NAME}` with `runner`: the query's fields are read from
    /// the query string (`Deserialize`; a [`PageRequest`](crate::query::PageRequest)
    /// flattened into them reads `page` and `size`), its answer is the response's `data`
    /// (and `page`, for a [`Page`](crate::query::Page)), with the read model's freshness.
    pub fn query<Q, M>(mut self, runner: Arc<QueryRunner<S, M>>) -> Self
    where
        Q: Query<M> + DeserializeOwned + schemars::JsonSchema + 'static,
        Q::Answer: WireAnswer,
        M: ReadModel + Send + Sync + 'static,
    {
        self.api
            .queries
            .insert(Q::NAME.to_owned(), queries::route::<Q, S, M>(runner));
        let schema = schemars::generate::SchemaSettings::draft2020_12()
            .with(|settings| settings.inline_subschemas = true)
            .into_generator()
            .into_root_schema_for::<Q>()
            .to_value();
        let data = <Q::Answer as WireAnswer>::data_schema(&mut self.answers).to_value();
        self.query_docs.retain(|doc| doc.name != Q::NAME);
        self.query_docs.push(openapi::QueryDoc {
            name: Q::NAME,
            projection: Q::PROJECTION,
            schema,
            data,
            paged: <Q::Answer as WireAnswer>::PAGED,
        });
        self
    }

    /// The title, version and description of the OpenAPI document.
    pub fn info(mut self, info: ApiInfo) -> Self {
        self.info = info;
        self
    }

    /// The OpenAPI 3.1 document of the API (served at `GET /openapi.json`): every command
    /// of the application's registry, every query, the stream and event routes, and the
    /// schemas of the envelope, the acknowledgement, the freshness and the problems.
    pub fn openapi(&self) -> serde_json::Value {
        let mut queries: Vec<&openapi::QueryDoc> = self.query_docs.iter().collect();
        queries.sort_by_key(|doc| doc.name);
        openapi::document(
            &self.info,
            self.api.app.registry(),
            &queries,
            self.answers.definitions().clone(),
        )
    }

    /// How long a query with `minPosition` waits for its read model to apply that
    /// position before it answers flagged stale (default [`DEFAULT_READ_WAIT`]).
    pub fn read_wait(mut self, wait: Duration) -> Self {
        self.api.read_wait = wait;
        self
    }

    /// Serves `GET /streams/{id}` and `GET /events` of the stream types `policy` lets a
    /// principal read (without a policy, none). Every stream read is kept in the stream's
    /// access audit record ([`authorization::reads`](crate::authorization::reads)).
    pub fn read_policy(mut self, policy: impl ReadPolicy) -> Self {
        self.api.read_policy = Box::new(policy);
        self
    }

    /// Limits how many requests each actor and each tenant make (no limits unless set):
    /// over a limit, a request is answered `429` with `Retry-After`, and nothing runs.
    pub fn rate_limits(mut self, limits: RateLimits) -> Self {
        self.api.limits = limits;
        self
    }

    /// How often an idle event stream sends a keep-alive comment (default
    /// [`DEFAULT_KEEP_ALIVE`]).
    pub fn keep_alive(mut self, interval: Duration) -> Self {
        self.api.keep_alive = interval;
        self
    }

    /// Serves the operator's web console under `/console/` (see [`console`]).
    pub fn console(mut self, console: Console) -> Self {
        self.api.console = Some(console);
        self
    }

    /// The routes, ready for `axum::serve` (or to nest in an application's own router).
    pub fn router(mut self) -> Router {
        self.api.openapi = self.openapi();
        let body_limit = self.api.body_limit;
        Router::new()
            .route("/openapi.json", get(openapi_json::<S>))
            .route("/commands/{name}", post(commands::post::<S>))
            .route("/queries/{name}", get(queries::get::<S>))
            .route("/streams/{stream_id}", get(streams::get_stream::<S>))
            .route("/events", get(streams::get_events::<S>))
            .merge(match self.api.console {
                Some(_) => console::routes::<S>(),
                None => Router::new(),
            })
            .layer(DefaultBodyLimit::max(body_limit))
            .with_state(Arc::new(self.api))
    }
}
