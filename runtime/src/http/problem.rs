//! Problem documents (RFC 9457, `application/problem+json`): every error the HTTP layer
//! answers, with its status and what the client needs to act on it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::application::ApplicationError;
use crate::context::CommandIdError;
use crate::repository::RepositoryError;
use crate::store::StoreError;

/// The media type of a problem document.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem document: `type` (`urn:factum:problem:<slug>`), `title`, `status`, `detail`,
/// `instance` (the request's path), and extension members (`path` of a bad field,
/// `currentVersion`, `reason`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Problem(Box<Parts>);

#[derive(Debug, Clone, PartialEq)]
struct Parts {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    instance: Option<String>,
    extensions: Map<String, Value>,
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl Problem {
    /// A problem of kind `slug` (the last part of its type URI: `denied`,
    /// `invalid-command`) with `status`, `title` (the same for every occurrence of the
    /// kind) and `detail` (what happened this time).
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self(Box::new(Parts {
            status,
            slug,
            title,
            detail: detail.into(),
            instance: None,
            extensions: Map::new(),
            headers: Vec::new(),
        }))
    }

    /// Adds an extension member.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.extensions.insert(key.to_owned(), value.into());
        self
    }

    /// Adds a header to send with it (`ETag`, `WWW-Authenticate`, `Retry-After`).
    pub fn header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.0.headers.push((name, value));
        self
    }

    /// Sets the request path it answers.
    pub fn at(mut self, instance: impl Into<String>) -> Self {
        self.0.instance = Some(instance.into());
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The type URI.
    pub fn type_uri(&self) -> String {
        format!("urn:factum:problem:{}", self.0.slug)
    }

    /// The document as JSON.
    pub fn to_json(&self) -> Value {
        let parts = &self.0;
        let mut document = json!({
            "type": self.type_uri(),
            "title": parts.title,
            "status": parts.status.as_u16(),
            "detail": parts.detail,
        });
        if let Value::Object(members) = &mut document {
            if let Some(instance) = &parts.instance {
                members.insert("instance".to_owned(), Value::String(instance.clone()));
            }
            for (key, value) in &parts.extensions {
                members.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
        document
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = self.to_json().to_string();
        let mut response = (self.0.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        for (name, value) in self.0.headers {
            headers.insert(name, value);
        }
        response
    }
}

/// The entity tag of a stream version: `"7"`.
pub(crate) fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// The problem an application error is answered with; `precondition`: whether the
/// request named the version it expected (`If-Match`), which makes a version conflict
/// `412` rather than `409`.
pub(crate) fn from_application(error: &ApplicationError, precondition: bool) -> Problem {
    use ApplicationError as E;
    let detail = crate::error::Report(error).to_string();
    match error {
        E::UnknownCommand { name, known } => Problem::new(
            StatusCode::NOT_FOUND,
            "unknown-command",
            "No such command",
            detail,
        )
        .with("command", name.as_str())
        .with("known", known.clone()),
        E::UnroutedType { .. } => Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unrouted-command",
            "The command is not routed",
            detail,
        ),
        E::InvalidCommand(error) => Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-command",
            "The body is not the command",
            detail,
        )
        .with("command", error.command)
        .with("path", error.path.as_str()),
        E::CommandId(error) => from_command_id(error),
        E::UnknownActorKind { kind, .. } => Problem::new(
            StatusCode::FORBIDDEN,
            "unknown-actor-kind",
            "Unknown kind of actor",
            detail,
        )
        .with("actorKind", kind.as_str()),
        E::MissingActor { .. } => Problem::new(
            StatusCode::UNAUTHORIZED,
            "missing-actor",
            "The command has no actor",
            detail,
        ),
        E::Refused { by, reason, .. } => Problem::new(
            StatusCode::BAD_REQUEST,
            "refused",
            "Refused before it ran",
            detail,
        )
        .with("refusedBy", by.as_str())
        .with("reason", reason.as_str()),
        E::Repository { source, .. } => from_repository(source, detail, precondition),
    }
}

/// A missing or malformed command id (an `Idempotency-Key`).
pub(crate) fn from_command_id(error: &CommandIdError) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid-idempotency-key",
        "The Idempotency-Key is not a command id",
        crate::error::Report(error).to_string(),
    )
}

fn from_repository(
    error: &RepositoryError<crate::application::Rejection>,
    detail: String,
    precondition: bool,
) -> Problem {
    use RepositoryError as R;
    match error {
        R::Rejected(rejection) => Problem::new(
            StatusCode::CONFLICT,
            "rejected",
            "Refused by the domain",
            rejection.to_string(),
        ),
        R::Denied { reason, .. } => {
            Problem::new(StatusCode::FORBIDDEN, "denied", "Denied by policy", detail)
                .with("reason", reason.as_str())
        }
        R::Conflict { stream_id, .. } if !precondition => Problem::new(
            StatusCode::CONFLICT,
            "concurrent-writes",
            "Another writer changed the stream; send the command again",
            detail,
        )
        .with("streamId", stream_id.as_str()),
        R::Conflict {
            stream_id,
            expected,
            actual,
        } => {
            let current = actual.unwrap_or(0);
            Problem::new(
                StatusCode::PRECONDITION_FAILED,
                "version-mismatch",
                "The stream is at another version",
                format!(
                    "stream `{stream_id}` is at version {current}, not at the {expected} the request expected (If-Match); nothing was written"
                ),
            )
            .with("streamId", stream_id.as_str())
            .with("currentVersion", current)
            .header(header::ETAG, etag(current))
        }
        R::RetriesExhausted { stream_id, .. } => Problem::new(
            StatusCode::CONFLICT,
            "concurrent-writes",
            "Other writers kept changing the stream",
            detail,
        )
        .with("streamId", stream_id.as_str()),
        R::MissingCommandId { .. } | R::UnencodableCommand { .. } => Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-command",
            "The body is not the command",
            detail,
        ),
        R::CommandIdReused { command_id, .. } => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "The Idempotency-Key was used for another request",
            detail,
        )
        .with("commandId", command_id.to_string()),
        R::Unreadable { .. } => Problem::new(
            StatusCode::BAD_REQUEST,
            "unreadable-value",
            "A value of the command would not read back",
            detail,
        ),
        R::Store(error) => from_store(error, detail),
        R::CommandRecordMismatch { .. } | R::Decode(_) | R::Encode { .. } => internal(detail),
        // New variants: an internal error until they get a status of their own.
        #[allow(unreachable_patterns)]
        _ => internal(detail),
    }
}

fn from_store(error: &StoreError, detail: String) -> Problem {
    match error {
        StoreError::ValueRefused { field, .. } => Problem::new(
            StatusCode::BAD_REQUEST,
            "value-refused",
            "A value is beyond the store's limits",
            detail,
        )
        .with("field", field.as_str()),
        StoreError::Conflict { .. } => Problem::new(
            StatusCode::CONFLICT,
            "concurrent-writes",
            "Another writer changed the stream",
            detail,
        ),
        StoreError::ConditionFailed { .. } => Problem::new(
            StatusCode::CONFLICT,
            "decision-outdated",
            "Events the decision depends on were stored since it read them",
            detail,
        ),
        // What failed inside is logged, not told: the client learns only that it failed.
        StoreError::Backend(_) => {
            tracing::error!(target: "factum::http", error = detail, "the event store failed");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store-unavailable",
                "The event store is unavailable",
                "the event store is unavailable; nothing was written, send the command again later",
            )
        }
        _ => internal(detail),
    }
}

fn internal(detail: String) -> Problem {
    tracing::error!(target: "factum::http", error = detail, "a request failed inside");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "Internal error",
        "the request failed inside the service; nothing was written",
    )
}
