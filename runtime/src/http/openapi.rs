//! The OpenAPI 3.1 document of an [`HttpApi`](super::HttpApi): every command of the
//! application's registry, every registered query, the stream and event routes, and the
//! envelope, acknowledgement, freshness and problem schemas — served at
//! `GET /openapi.json`.

use serde_json::{Map, Value, json};

use crate::registry::{EntryKind, Registry};

/// What the document says of one query, taken when it is registered.
pub(super) struct QueryDoc {
    pub name: &'static str,
    pub projection: &'static str,
    /// The query's own schema (its fields, inline).
    pub schema: Value,
    /// The schema of the answer's `data`, its types referenced in the components.
    pub data: Value,
    pub paged: bool,
}

/// The document's title, version and description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiInfo {
    /// The API's title.
    pub title: String,
    /// The API's version (of the document, not of OpenAPI).
    pub version: String,
    /// What the API is for.
    pub description: String,
}

impl Default for ApiInfo {
    fn default() -> Self {
        Self {
            title: "factum service".to_owned(),
            version: "1.0.0".to_owned(),
            description: String::new(),
        }
    }
}

/// Where schemas live in the document.
const COMPONENTS: &str = "#/components/schemas/";

/// Rewrites every `$ref` to `#/$defs/<name>` in `value` by `names`.
fn rewrite_refs(value: &mut Value, names: &Map<String, Value>) {
    match value {
        Value::Object(members) => {
            if let Some(Value::String(target)) = members.get_mut("$ref")
                && let Some(name) = target.strip_prefix("#/$defs/")
                && let Some(Value::String(renamed)) = names.get(name)
            {
                *target = format!("{COMPONENTS}{renamed}");
            }
            for member in members.values_mut() {
                rewrite_refs(member, names);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| rewrite_refs(item, names)),
        _ => {}
    }
}

/// Moves a standalone JSON Schema's `$defs` into the components — under their own names,
/// or `<owner>.<name>` where another schema took the name — points its references there,
/// drops its `$schema`, and returns what is left of it.
fn hoist(mut schema: Value, owner: &str, components: &mut Map<String, Value>) -> Value {
    let defs = match schema.as_object_mut() {
        Some(members) => {
            members.remove("$schema");
            match members.remove("$defs") {
                Some(Value::Object(defs)) => defs,
                _ => Map::new(),
            }
        }
        None => Map::new(),
    };
    // The names as they are first; a def that differs from a component of its name takes
    // the owner's prefix, and then all of them do, so the schema stays consistent.
    let identity: Map<String, Value> = defs
        .keys()
        .map(|name| (name.clone(), Value::String(name.clone())))
        .collect();
    let clashes = defs.iter().any(|(name, def)| {
        let mut def = def.clone();
        rewrite_refs(&mut def, &identity);
        components.get(name).is_some_and(|taken| *taken != def)
    });
    let names: Map<String, Value> = if clashes {
        defs.keys()
            .map(|name| (name.clone(), Value::String(format!("{owner}.{name}"))))
            .collect()
    } else {
        identity
    };
    for (name, mut def) in defs {
        rewrite_refs(&mut def, &names);
        if let Some(Value::String(renamed)) = names.get(&name) {
            components.insert(renamed.clone(), def);
        }
    }
    rewrite_refs(&mut schema, &names);
    schema
}

/// Adds `schema` to the components as `name` (or `<name><suffix>` where another schema
/// took the name); returns the name used.
fn add_component(
    components: &mut Map<String, Value>,
    name: &str,
    suffix: &str,
    schema: Value,
) -> String {
    let name = match components.get(name) {
        Some(taken) if *taken != schema => format!("{name}{suffix}"),
        _ => name.to_owned(),
    };
    components.insert(name.clone(), schema);
    name
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("{COMPONENTS}{name}") })
}

fn response(status: &str) -> Value {
    json!({ "$ref": format!("#/components/responses/{status}") })
}

/// The responses of every error a route may answer, by status.
fn errors(statuses: &[&str]) -> Map<String, Value> {
    statuses
        .iter()
        .map(|status| ((*status).to_owned(), response(status)))
        .collect()
}

/// The first paragraph of a doc comment, for a summary.
fn summary(doc: &str) -> String {
    doc.split("\n\n")
        .next()
        .unwrap_or("")
        .replace('\n', " ")
        .trim()
        .to_owned()
}

/// The parameters of a query, from its schema's properties.
fn query_parameters(schema: &Value) -> Vec<Value> {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut parameters: Vec<Value> = schema["properties"]
        .as_object()
        .map(|properties| {
            properties
                .iter()
                .map(|(name, property)| {
                    let mut property = property.clone();
                    let description = property
                        .as_object_mut()
                        .and_then(|members| members.remove("description"));
                    let mut parameter = json!({
                        "name": name,
                        "in": "query",
                        "required": required.contains(&name.as_str()),
                        "schema": property,
                    });
                    if let Some(description) = description {
                        parameter["description"] = description;
                    }
                    parameter
                })
                .collect()
        })
        .unwrap_or_default();
    parameters.push(json!({ "$ref": "#/components/parameters/MinPosition" }));
    parameters
}

/// The document.
pub(super) fn document(
    info: &ApiInfo,
    registry: &Registry,
    queries: &[&QueryDoc],
    answer_definitions: Map<String, Value>,
) -> Value {
    let mut components = answer_definitions;
    let envelope = hoist(registry.envelope().clone(), "Envelope", &mut components);
    let envelope = add_component(&mut components, "Envelope", "Envelope", envelope);
    components.insert("Problem".to_owned(), problem_schema());
    components.insert("Acknowledgement".to_owned(), acknowledgement_schema());
    components.insert("Freshness".to_owned(), freshness_schema());
    components.insert("PageInfo".to_owned(), page_info_schema());

    let mut paths = Map::new();
    for entry in registry
        .entries()
        .filter(|entry| entry.kind == EntryKind::Command)
    {
        let schema = hoist(entry.schema.clone(), &entry.name, &mut components);
        let schema = add_component(&mut components, &entry.name, "Command", schema);
        let mut responses = Map::new();
        responses.insert("200".to_owned(), response("Acknowledged"));
        responses.insert("201".to_owned(), response("Created"));
        responses.extend(errors(&[
            "400", "401", "403", "404", "409", "412", "413", "415", "422", "429", "503",
        ]));
        paths.insert(
            format!("/commands/{}", entry.name),
            json!({ "post": {
                "operationId": entry.name,
                "summary": summary(&entry.doc),
                "description": entry.doc,
                "tags": entry.aggregates,
                "security": [{ "bearer": [] }],
                "parameters": [
                    { "$ref": "#/components/parameters/IdempotencyKey" },
                    { "$ref": "#/components/parameters/IfMatch" }
                ],
                "requestBody": {
                    "required": true,
                    "content": { "application/json": { "schema": reference(&schema) } }
                },
                "responses": responses,
            }}),
        );
    }
    for query in queries.iter().copied() {
        let description = query.schema["description"].as_str().unwrap_or_default();
        let mut responses = Map::new();
        responses.insert(
            "200".to_owned(),
            json!({
                "description": "The answer, its page (for a listing) and how fresh its read model was.",
                "content": { "application/json": { "schema": {
                    "type": "object",
                    "required": ["data", "page", "freshness"],
                    "properties": {
                        "data": query.data,
                        "page": if query.paged { reference("PageInfo") } else { json!({ "type": "null" }) },
                        "freshness": reference("Freshness"),
                    }
                }}}
            }),
        );
        responses.extend(errors(&["400", "401", "404", "429", "503"]));
        paths.insert(
            format!("/queries/{}", query.name),
            json!({ "get": {
                "operationId": query.name,
                "summary": summary(description),
                "description": description,
                "tags": [query.projection],
                "security": [{ "bearer": [] }],
                "parameters": query_parameters(&query.schema),
                "responses": responses,
            }}),
        );
    }
    let mut stream_responses = Map::new();
    stream_responses.insert(
        "200".to_owned(),
        json!({
            "description": "The stream's envelopes, in their newest versions.",
            "content": { "application/json": { "schema": {
                "type": "object",
                "required": ["streamId", "streamType", "version", "fromVersion", "events"],
                "properties": {
                    "streamId": { "type": "string" },
                    "streamType": { "type": "string" },
                    "version": { "type": "integer", "minimum": 1 },
                    "fromVersion": { "type": "integer", "minimum": 1 },
                    "events": { "type": "array", "items": reference(&envelope) }
                }
            }}}
        }),
    );
    stream_responses.extend(errors(&["400", "401", "403", "404", "429", "503"]));
    paths.insert(
        "/streams/{streamId}".to_owned(),
        json!({ "get": {
            "operationId": "readStream",
            "summary": "A stream's events",
            "description": "The events of one stream, if the read policy lets the caller read its stream type; every read, allowed or denied, is kept in the stream's access audit record.",
            "security": [{ "bearer": [] }],
            "parameters": [
                { "name": "streamId", "in": "path", "required": true, "schema": { "type": "string" } },
                { "name": "fromVersion", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "default": 1 } },
                { "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": super::MAX_STREAM_PAGE } }
            ],
            "responses": stream_responses,
        }}),
    );
    let mut event_responses = Map::new();
    event_responses.insert(
        "200".to_owned(),
        json!({
            "description": "Server-Sent Events: `id` is the event's global position, `event` its name, `data` its envelope (the Envelope schema) as JSON; comments keep an idle stream alive.",
            "content": { "text/event-stream": { "schema": { "type": "string" } } }
        }),
    );
    event_responses.extend(errors(&["400", "401", "403", "429"]));
    paths.insert(
        "/events".to_owned(),
        json!({ "get": {
            "operationId": "followEvents",
            "summary": "The live log of a stream type, as Server-Sent Events",
            "description": "Reads the store from `fromPosition` (or after `Last-Event-ID` on a reconnect) and follows it as events are committed.",
            "security": [{ "bearer": [] }],
            "parameters": [
                { "name": "streamType", "in": "query", "required": true, "schema": { "type": "string" } },
                { "name": "fromPosition", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1 } },
                { "name": "Last-Event-ID", "in": "header", "required": false, "description": "The last position seen: the stream resumes after it.", "schema": { "type": "string", "pattern": "^[0-9]+$" } }
            ],
            "responses": event_responses,
        }}),
    );

    let mut document = json!({
        "openapi": "3.1.0",
        "info": { "title": info.title, "version": info.version },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "parameters": parameters(),
            "responses": responses(),
        }
    });
    if !info.description.is_empty() {
        document["info"]["description"] = Value::String(info.description.clone());
    }
    document
}

fn parameters() -> Value {
    json!({
        "IdempotencyKey": {
            "name": "Idempotency-Key", "in": "header", "required": false,
            "description": "The command's id (a UUID; generated when absent). A repeat with the same key and body gets the original answer; the same key with another body is 422.",
            "schema": { "type": "string", "format": "uuid" }
        },
        "IfMatch": {
            "name": "If-Match", "in": "header", "required": false,
            "description": "The stream version the command was decided on, as an entity tag (`\"7\"`); another version is 412.",
            "schema": { "type": "string", "pattern": "^\"[0-9]+\"$" }
        },
        "MinPosition": {
            "name": "minPosition", "in": "query", "required": false,
            "description": "A global position (a command's `position`) the read model must have applied: the answer waits for it, bounded, then comes flagged stale.",
            "schema": { "type": "integer", "minimum": 0 }
        }
    })
}

fn responses() -> Value {
    let problem = |description: &str| {
        json!({
            "description": description,
            "content": { "application/problem+json": { "schema": reference("Problem") } }
        })
    };
    let acknowledged = |description: &str| {
        json!({
            "description": description,
            "headers": {
                "ETag": { "description": "The stream's new version.", "schema": { "type": "string" } },
                "Idempotency-Key": { "description": "The command's id.", "schema": { "type": "string", "format": "uuid" } }
            },
            "content": { "application/json": { "schema": reference("Acknowledgement") } }
        })
    };
    let mut responses = json!({
        "Acknowledged": acknowledged("The command ran (or had run, under this key)."),
        "Created": acknowledged("The command ran and created its stream."),
        "400": problem("The request is not what the route takes (`path` names the bad field)."),
        "401": problem("No or bad credentials."),
        "403": problem("Denied by policy (`reason`), or an unknown kind of actor."),
        "404": problem("No such command, query or stream."),
        "409": problem("Refused by the domain, or another writer changed the stream first."),
        "412": problem("The stream is at another version than If-Match named (`currentVersion`)."),
        "413": problem("The body is over the limit (`limit`)."),
        "415": problem("The body was not sent as JSON."),
        "422": problem("The Idempotency-Key was used for another request."),
        "429": problem("Over the actor's or the tenant's rate limit (`retryAfter`)."),
        "503": problem("The store is unavailable, or the read model is not built yet."),
    });
    responses["401"]["headers"] = json!({ "WWW-Authenticate": { "schema": { "type": "string" } } });
    responses["412"]["headers"] = json!({ "ETag": { "description": "The stream's current version.", "schema": { "type": "string" } } });
    responses["429"]["headers"] = json!({ "Retry-After": { "description": "Seconds to wait.", "schema": { "type": "integer" } } });
    responses
}

fn problem_schema() -> Value {
    json!({
        "description": "An RFC 9457 problem document.",
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": { "type": "string", "description": "`urn:factum:problem:<kind>`." },
            "title": { "type": "string" },
            "status": { "type": "integer" },
            "detail": { "type": "string" },
            "instance": { "type": "string", "description": "The request path." }
        },
        "additionalProperties": true
    })
}

fn acknowledgement_schema() -> Value {
    json!({
        "description": "A command's acknowledgement: where its events went, and the position to read them back by.",
        "type": "object",
        "required": ["commandId", "acknowledged", "streamId", "version", "position", "timestamp"],
        "properties": {
            "commandId": { "type": "string", "format": "uuid" },
            "acknowledged": { "const": true },
            "streamId": { "type": "string" },
            "version": { "type": "integer", "minimum": 0 },
            "position": { "type": ["integer", "null"], "minimum": 1, "description": "The global position of the command's last event; null when it recorded none." },
            "timestamp": { "type": "string", "format": "date-time" }
        }
    })
}

fn freshness_schema() -> Value {
    json!({
        "description": "How fresh the read model that answered was.",
        "type": "object",
        "required": ["projection", "version", "position", "head", "lagEvents", "lagSeconds", "rebuilding", "stale"],
        "properties": {
            "projection": { "type": "string" },
            "version": { "type": "integer" },
            "position": { "type": "integer", "description": "The global position it has applied every event up to." },
            "head": { "type": "integer", "description": "The head of the log." },
            "lagEvents": { "type": "integer" },
            "lagSeconds": { "type": "number" },
            "rebuilding": { "type": "boolean" },
            "stale": { "type": "boolean", "description": "Whether it had not applied `minPosition` when it answered." }
        }
    })
}

fn page_info_schema() -> Value {
    json!({
        "description": "Which page of a listing an answer is.",
        "type": "object",
        "required": ["page", "size", "total", "pages", "hasNext"],
        "properties": {
            "page": { "type": "integer", "minimum": 1 },
            "size": { "type": "integer", "minimum": 1 },
            "total": { "type": "integer", "minimum": 0 },
            "pages": { "type": "integer", "minimum": 0 },
            "hasNext": { "type": "boolean" }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hoisted_definitions_share_a_name_when_equal_and_take_their_owners_when_not() {
        let line = json!({ "type": "object", "properties": { "sku": { "type": "string" } } });
        let other_line = json!({ "type": "object", "properties": { "id": { "type": "integer" } } });
        let schema = |def: &Value| {
            json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": { "line": { "$ref": "#/$defs/Line" } },
                "$defs": { "Line": def }
            })
        };
        let mut components = Map::new();
        let first = hoist(schema(&line), "AddItem", &mut components);
        let same = hoist(schema(&line), "RemoveItem", &mut components);
        let other = hoist(schema(&other_line), "Ship", &mut components);
        assert_eq!(
            first["properties"]["line"]["$ref"],
            "#/components/schemas/Line"
        );
        assert_eq!(
            same["properties"]["line"]["$ref"],
            "#/components/schemas/Line"
        );
        assert_eq!(
            other["properties"]["line"]["$ref"],
            "#/components/schemas/Ship.Line"
        );
        assert_eq!(components["Line"], line);
        assert_eq!(components["Ship.Line"], other_line);
        assert!(first.get("$schema").is_none() && first.get("$defs").is_none());
        assert_eq!(
            add_component(
                &mut components,
                "Line",
                "Command",
                json!({ "type": "null" })
            ),
            "LineCommand"
        );
    }
}
