//! Reading events over HTTP: one stream's envelopes (`GET /streams/{streamId}`) and the
//! live log as Server-Sent Events (`GET /events`), each authorized by the application's
//! [`ReadPolicy`] and, for streams, kept in the access audit record.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde_json::{Value, json};

use super::problem::Problem;
use super::{Api, Principal};
use crate::authorization::{
    AUDIT_STREAM_TYPE, Decision, ReadChannel, ReadPolicy, StreamRead, record_read,
};
use crate::envelope::RecordedEvent;
use crate::store::{EventStore, StoreError};

/// The read policy of an API that set none: nothing is served.
pub(super) struct NoReads;

impl ReadPolicy for NoReads {
    fn may_read(&self, _: &Principal, _: &str) -> Decision {
        Decision::deny("this service serves no events (it has no read policy)")
    }
}

/// The most events one `GET /streams/{id}` returns.
pub const MAX_STREAM_PAGE: usize = 1000;

/// The `Last-Event-ID` header of a reconnecting event source.
const LAST_EVENT_ID: &str = "last-event-id";

/// A query string's parameter, if given.
pub(super) fn parameter(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// A whole-number parameter, if given.
pub(super) fn number(query: &str, name: &str) -> Result<Option<u64>, Problem> {
    parameter(query, name)
        .map(|value| {
            value.trim().parse().map_err(|_| {
                bad_parameter(
                    name,
                    format!(
                        "`{name}` must be a whole number, not `{}`",
                        value.chars().take(32).collect::<String>()
                    ),
                )
            })
        })
        .transpose()
}

/// The `Last-Event-ID` a reconnecting event source sends: the position of the last event
/// it received, if any; `400` when it is no position.
pub(super) fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, Problem> {
    headers
        .get(LAST_EVENT_ID)
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    bad_parameter(
                        "Last-Event-ID",
                        "Last-Event-ID must be the global position of an event",
                    )
                })
        })
        .transpose()
}

/// The `400` of a parameter that is not what it must be: `detail` says why.
pub(super) fn bad_parameter(name: &str, detail: impl Into<String>) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid-parameter",
        "A parameter is not what it must be",
        detail,
    )
    .with("path", name)
}

fn store_problem(error: &StoreError) -> Problem {
    tracing::error!(target: "factum::http", error = %crate::error::Report(error), "reading events failed");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store-unavailable",
        "The event store is unavailable",
        "the events could not be read; try again later",
    )
}

fn forbidden(reason: String) -> Problem {
    Problem::new(
        StatusCode::FORBIDDEN,
        "denied",
        "Denied by policy",
        reason.clone(),
    )
    .with("reason", reason)
}

/// An envelope as the contracts describe it: upcast to its newest version.
fn envelope<S: EventStore + Send + Sync + 'static>(
    api: &Api<S>,
    event: &RecordedEvent,
) -> Result<Value, Problem> {
    let delivered = api.app.upcaster().upcast_ref(event).map_err(|error| {
        tracing::error!(target: "factum::http", error = %crate::error::Report(&error), "an event could not be upcast");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "a stored event could not be delivered",
        )
    })?;
    serde_json::to_value(&*delivered).map_err(|_| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "a stored event could not be written as JSON",
        )
    })
}

/// Handles `GET /streams/{streamId}?fromVersion=N&limit=M`.
pub(super) async fn get_stream<S: EventStore + Send + Sync + 'static>(
    State(api): State<Arc<Api<S>>>,
    Path(stream_id): Path<String>,
    OriginalUri(uri): OriginalUri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let path = uri.path().to_owned();
    match read_stream(&api, &stream_id, query.as_deref().unwrap_or(""), &headers).await {
        Ok(body) => (StatusCode::OK, axum::Json(body)).into_response(),
        Err(problem) => problem.at(path).into_response(),
    }
}

async fn read_stream<S: EventStore + Send + Sync + 'static>(
    api: &Api<S>,
    stream_id: &str,
    query: &str,
    headers: &HeaderMap,
) -> Result<Value, Problem> {
    let principal = api.principal(headers).await?;
    let from_version = number(query, "fromVersion")?.unwrap_or(1).max(1);
    let limit = number(query, "limit")?.map_or(MAX_STREAM_PAGE, |limit| {
        (limit as usize).clamp(1, MAX_STREAM_PAGE)
    });
    let store = api.app.store();
    let not_found = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            "unknown-stream",
            "No such stream",
            format!(
                "no stream `{}`",
                stream_id.chars().take(128).collect::<String>()
            ),
        )
    };
    let version = store
        .stream_version(stream_id)
        .await
        .map_err(|error| store_problem(&error))?
        .ok_or_else(not_found)?;
    // The stream's type is its first event's; the audit record is never served.
    let first = store
        .read_stream(stream_id, 1, 1)
        .await
        .map_err(|error| store_problem(&error))?;
    let stream_type = first
        .first()
        .map(|event| event.stream_type.clone())
        .ok_or_else(not_found)?;
    if stream_type == AUDIT_STREAM_TYPE {
        return Err(not_found());
    }
    let mut read = StreamRead::new(&principal, stream_id, from_version, ReadChannel::Http);
    if let Decision::Deny(reason) = api.read_policy.may_read(&principal, &stream_type) {
        read.denied = Some(reason.clone());
        record_read(store, &read)
            .await
            .map_err(|error| store_problem(&error))?;
        return Err(forbidden(reason));
    }
    let events = store
        .read_stream(stream_id, from_version, limit)
        .await
        .map_err(|error| store_problem(&error))?;
    read.events = events.len() as u64;
    // Kept before anything is handed out: a read the record misses is never served.
    record_read(store, &read)
        .await
        .map_err(|error| store_problem(&error))?;
    let envelopes = events
        .iter()
        .map(|event| envelope(api, event))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({
        "streamId": stream_id,
        "streamType": stream_type,
        "version": version,
        "fromVersion": from_version,
        "events": envelopes,
    }))
}

/// Handles `GET /events?streamType=T&fromPosition=N` as Server-Sent Events.
pub(super) async fn get_events<S: EventStore + Send + Sync + 'static>(
    State(api): State<Arc<Api<S>>>,
    OriginalUri(uri): OriginalUri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let path = uri.path().to_owned();
    match subscribe(api, query.as_deref().unwrap_or(""), &headers).await {
        Ok(response) => response,
        Err(problem) => problem.at(path).into_response(),
    }
}

async fn subscribe<S: EventStore + Send + Sync + 'static>(
    api: Arc<Api<S>>,
    query: &str,
    headers: &HeaderMap,
) -> Result<Response, Problem> {
    let principal = api.principal(headers).await?;
    let stream_type = parameter(query, "streamType").ok_or_else(|| {
        bad_parameter(
            "streamType",
            "`streamType` names the type of streams to follow",
        )
    })?;
    if stream_type == AUDIT_STREAM_TYPE {
        return Err(forbidden("the audit record is not served".to_owned()));
    }
    // A subscription is kept in the access record too, allowed or not (`*` and the
    // stream type followed).
    let mut subscription = StreamRead::new(
        &principal,
        format!("*{stream_type}"),
        0,
        ReadChannel::Subscription,
    );
    let decision = api.read_policy.may_read(&principal, &stream_type);
    if let Decision::Deny(reason) = &decision {
        subscription.denied = Some(reason.clone());
    }
    record_read(api.app.store(), &subscription)
        .await
        .map_err(|error| store_problem(&error))?;
    if let Decision::Deny(reason) = decision {
        return Err(forbidden(reason));
    }
    // A reconnecting browser sends the last id it saw: resume after it, from the store.
    let after = last_event_id(headers)?;
    let after = match after {
        Some(after) => after,
        None => number(query, "fromPosition")?.map_or(0, |from| from.saturating_sub(1)),
    };
    let keep_alive = api.keep_alive;
    let events = follow(api, stream_type, after);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(keep_alive))
        .into_response())
}

/// The events of `stream_type` after position `after`, read from the store page by page
/// and then as they are committed; a failure ends the stream with an `error` event.
fn follow<S: EventStore + Send + Sync + 'static>(
    api: Arc<Api<S>>,
    stream_type: String,
    after: u64,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    follow_log(api, after, move |api, event| {
        if event.stream_type != stream_type {
            return Ok(None);
        }
        let envelope = envelope(api, event)?;
        let mut sse = Event::default().id(event.position.to_string());
        // A name that would break the event's framing is left out; the envelope in
        // `data` names it anyway.
        if !event.name.contains(['\r', '\n']) {
            sse = sse.event(event.name.as_str());
        }
        Ok(Some(sse.data(envelope.to_string())))
    })
}

/// The log after position `after`, read from the store page by page and then as it is
/// committed, each event as `render` makes it (`None`: not sent). A failure, the store's
/// or `render`'s, ends the stream with an `error` event holding its problem document.
pub(super) fn follow_log<S, R>(
    api: Arc<Api<S>>,
    after: u64,
    render: R,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static
where
    S: EventStore + Send + Sync + 'static,
    R: FnMut(&Api<S>, &RecordedEvent) -> Result<Option<Event>, Problem> + Send + 'static,
{
    const PAGE: usize = 256;
    struct Following<S, R> {
        api: Arc<Api<S>>,
        render: R,
        after: u64,
        ready: std::collections::VecDeque<Event>,
        failed: bool,
    }
    let state = Following {
        api,
        render,
        after,
        ready: std::collections::VecDeque::new(),
        failed: false,
    };
    let failure = |problem: Problem| {
        Event::default()
            .event("error")
            .data(problem.to_json().to_string())
    };
    futures_util::stream::unfold(state, move |mut state| async move {
        loop {
            if let Some(event) = state.ready.pop_front() {
                return Some((Ok(event), state));
            }
            if state.failed {
                return None;
            }
            let store = state.api.app.store();
            let page = match store.read_all(state.after, PAGE).await {
                Ok(page) => page,
                Err(error) => {
                    state.failed = true;
                    return Some((Ok(failure(store_problem(&error))), state));
                }
            };
            let Some(last) = page.last() else {
                if let Err(error) = store
                    .wait_for_events(state.after, Duration::from_secs(1))
                    .await
                {
                    tracing::warn!(target: "factum::http", error = %crate::error::Report(&error), "waiting for events failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                continue;
            };
            state.after = last.position;
            for event in &page {
                match (state.render)(&state.api, event) {
                    Ok(Some(sse)) => state.ready.push_back(sse),
                    Ok(None) => {}
                    Err(problem) => {
                        state.failed = true;
                        state.ready.push_back(failure(problem));
                        break;
                    }
                }
            }
        }
    })
}
