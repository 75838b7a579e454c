//! `POST /commands/{CommandName}`: a command from the wire, acknowledged with its
//! consistency token.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Api;
use super::problem::{self, Problem};
use crate::context::{CommandContext, parse_command_id};
use crate::store::EventStore;

/// The header whose UUID becomes the command id.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// Handles one command request.
pub(super) async fn post<S: EventStore + Send + Sync + 'static>(
    State(api): State<Arc<Api<S>>>,
    Path(name): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let path = uri.path().to_owned();
    match run(&api, &name, &headers, body).await {
        Ok(response) => response,
        Err(problem) => problem.at(path).into_response(),
    }
}

async fn run<S: EventStore + Send + Sync + 'static>(
    api: &Api<S>,
    name: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let principal = api.principal(headers).await?;
    check_json(headers)?;
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                status,
                "body-too-large",
                "The body is too large",
                format!("a command's body may hold at most {} bytes", api.body_limit),
            )
            .with("limit", api.body_limit)
        } else {
            Problem::new(
                status,
                "unreadable-body",
                "The body could not be read",
                rejection.body_text(),
            )
        }
    })?;
    let json = std::str::from_utf8(&body).map_err(|error| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-command",
            "The body is not the command",
            format!("the body is not UTF-8: {error}"),
        )
    })?;
    if headers.get_all(IDEMPOTENCY_KEY).iter().count() > 1 {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-idempotency-key",
            "The Idempotency-Key is not a command id",
            "a request carries one Idempotency-Key, not several",
        ));
    }
    let command_id = match headers.get(IDEMPOTENCY_KEY) {
        None => uuid::Uuid::now_v7(),
        Some(value) => {
            let text = value.to_str().map_err(|_| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-idempotency-key",
                    "The Idempotency-Key is not a command id",
                    "the Idempotency-Key is not visible ASCII",
                )
            })?;
            parse_command_id(text).map_err(|error| problem::from_command_id(&error))?
        }
    };
    let expected_version = if_match(headers)?;

    let mut ctx = CommandContext::new()
        .command_id(command_id)
        .actor(principal.actor.clone());
    if let Some(tenant) = &principal.tenant {
        ctx = ctx.tenant(tenant.clone());
    }
    if let Some(traceparent) = traceparent(headers) {
        ctx = ctx.traceparent(traceparent.to_string());
    }
    let precondition = expected_version.is_some();
    let problem = |error| problem::from_application(&error, precondition);
    let mut call = api.app.call_json(name, json, ctx).map_err(problem)?;
    call.expected_version = expected_version;
    call.extensions.insert(principal);
    let outcome = api.app.run(call).await.map_err(problem)?;

    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = json!({
        "commandId": outcome.command_id,
        "acknowledged": true,
        "streamId": outcome.stream_id,
        "version": outcome.version,
        "position": outcome.position,
        "timestamp": outcome.recorded_at,
    });
    let mut response = (status, axum::Json(body)).into_response();
    let response_headers = response.headers_mut();
    response_headers.insert(header::ETAG, problem::etag(outcome.version));
    if let Ok(key) = HeaderValue::from_str(&outcome.command_id.to_string()) {
        response_headers.insert(IDEMPOTENCY_KEY, key);
    }
    Ok(response)
}

/// The request's W3C trace context: one valid `traceparent` header, or none (W3C: a
/// receiver ignores an invalid one and starts a trace of its own).
fn traceparent(headers: &HeaderMap) -> Option<crate::trace::TraceParent> {
    let mut values = headers.get_all(crate::trace::TRACEPARENT).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    crate::trace::TraceParent::parse(value.to_str().ok()?).ok()
}

/// Refuses a body that does not say it is JSON (`application/json`, or any
/// `application/*+json`), with `415`.
fn check_json(headers: &HeaderMap) -> Result<(), Problem> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let is_json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if is_json {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not-json",
            "The body must be JSON",
            if content_type.is_empty() {
                "no Content-Type; send `Content-Type: application/json`".to_owned()
            } else {
                format!(
                    "Content-Type `{}` is not JSON; send `application/json`",
                    content_type.chars().take(64).collect::<String>()
                )
            },
        ))
    }
}

/// The stream version of an `If-Match: "7"` header: one strong entity tag of digits.
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, Problem> {
    let mut values = headers.get_all(header::IF_MATCH).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let invalid = || {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-if-match",
            "If-Match is not a stream version",
            "If-Match must be one stream version as an entity tag, like `\"7\"`",
        )
    };
    if values.next().is_some() {
        return Err(invalid());
    }
    let text = value.to_str().map_err(|_| invalid())?.trim();
    let version = text
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .filter(|digits| !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit()))
        .ok_or_else(invalid)?;
    version.parse().map(Some).map_err(|_| invalid())
}
