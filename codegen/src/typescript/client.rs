//! A typed TypeScript client for an HTTP API, from its OpenAPI document (as
//! `factum::http::HttpApi::openapi` writes it).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::{TypeScript, TypeScriptError, doc_comment, json_string, render_declaration, ts_type};
use crate::model::{self, Field, Named, Ty};

/// Names the client module defines itself.
const CLIENT_NAMES: &[&str] = &[
    "Answer",
    "Client",
    "CommandOptions",
    "ProblemError",
    "StreamEvents",
];

/// One command route.
struct CommandRoute {
    name: String,
    doc: String,
    body: String,
}

/// One query route.
struct QueryRoute {
    name: String,
    doc: String,
    parameters: Vec<Field>,
    data: String,
}

fn malformed(path: &str, message: &str) -> TypeScriptError {
    TypeScriptError::MalformedDocument {
        path: path.to_owned(),
        message: message.to_owned(),
    }
}

/// `CreateTask` → `createTask`.
fn method_name(operation: &str) -> String {
    let mut chars = operation.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Generates a typed TypeScript client for the HTTP API an OpenAPI document describes:
/// a type per component schema, a method per command (`POST /commands/{Name}`: the body
/// typed, `Idempotency-Key` and `If-Match` as options, the acknowledgement typed) and per
/// query (`GET /queries/{Name}`: its parameters typed, `minPosition`, the answer typed
/// with its page and freshness), `readStream` for `GET /streams/{streamId}`, and every
/// problem thrown as a `ProblemError` holding the problem document.
///
/// The output depends only on the document: routes and types are sorted by name.
pub fn typescript_client(openapi: &Value) -> Result<String, TypeScriptError> {
    let components = openapi
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .ok_or_else(|| malformed("/components/schemas", "not an object"))?;
    let named = model::convert_components::<TypeScript>(components)?;
    for name in [
        "Acknowledgement",
        "Problem",
        "Freshness",
        "PageInfo",
        "Envelope",
    ] {
        if !named.contains_key(name) {
            return Err(malformed(
                "/components/schemas",
                &format!("no `{name}` schema: not a document of factum's HTTP layer"),
            ));
        }
    }
    let paths = openapi
        .get("paths")
        .and_then(Value::as_object)
        .ok_or_else(|| malformed("/paths", "not an object"))?;
    let mut commands = Vec::new();
    let mut queries = Vec::new();
    for (path, item) in paths {
        let at = format!("/paths/{}", model::pointer_escape(path));
        if let Some(name) = path.strip_prefix("/commands/") {
            let operation = &item["post"];
            let body = operation
                .pointer("/requestBody/content/application~1json/schema/$ref")
                .and_then(Value::as_str)
                .and_then(|target| target.strip_prefix("#/components/schemas/"))
                .ok_or_else(|| {
                    malformed(&at, "a command without a body schema in the components")
                })?;
            commands.push(CommandRoute {
                name: name.to_owned(),
                doc: operation["description"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                body: model::component_type_name(body),
            });
        } else if let Some(name) = path.strip_prefix("/queries/") {
            let operation = &item["get"];
            let label = format!("query {name}");
            let mut parameters = Vec::new();
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                // The shared `minPosition` is the method's own argument.
                if parameter.get("$ref").is_some() {
                    continue;
                }
                let parameter_name = parameter["name"]
                    .as_str()
                    .ok_or_else(|| malformed(&at, "a parameter without a name"))?;
                parameters.push(Field {
                    name: parameter_name.to_owned(),
                    ty: model::convert_inline::<TypeScript>(&parameter["schema"], &label)?,
                    required: parameter["required"] == true,
                    doc: parameter["description"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                });
            }
            let data = operation
                .pointer("/responses/200/content/application~1json/schema/properties/data")
                .ok_or_else(|| malformed(&at, "a query without the `data` of its answer"))?;
            queries.push(QueryRoute {
                name: name.to_owned(),
                doc: operation["description"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                parameters,
                data: ts_type(&model::convert_inline::<TypeScript>(data, &label)?),
            });
        }
    }
    let mut taken: BTreeMap<String, String> = named
        .keys()
        .map(|name| (name.clone(), format!("the component schema {name}")))
        .collect();
    let mut claim = |name: String, origin: String| match taken.get(&name) {
        Some(first) => Err(TypeScriptError::NameCollision {
            name,
            first: first.clone(),
            second: origin,
        }),
        None => {
            taken.insert(name, origin);
            Ok(())
        }
    };
    for name in CLIENT_NAMES {
        claim((*name).to_owned(), "the client module".to_owned())?;
    }
    for query in &queries {
        claim(
            format!("{}Parameters", query.name),
            format!("the parameters of query {}", query.name),
        )?;
    }
    let mut methods = BTreeMap::new();
    for name in commands
        .iter()
        .map(|c| &c.name)
        .chain(queries.iter().map(|q| &q.name))
    {
        let method = method_name(name);
        if !super::is_identifier(&method) {
            return Err(TypeScriptError::InvalidName {
                entry: format!("route {name}"),
                name: method,
            });
        }
        if let Some(first) = methods.insert(method.clone(), name.clone()) {
            return Err(TypeScriptError::NameCollision {
                name: method,
                first,
                second: name.clone(),
            });
        }
    }
    Ok(render(openapi, &named, &commands, &queries))
}

fn render(
    openapi: &Value,
    named: &BTreeMap<String, Named>,
    commands: &[CommandRoute],
    queries: &[QueryRoute],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "// Generated by factum-codegen from the OpenAPI document of {} {}. Do not edit.",
        openapi["info"]["title"].as_str().unwrap_or("the service"),
        openapi["info"]["version"].as_str().unwrap_or("")
    );
    out.push_str("// A typed client of its HTTP API: commands, queries, streams.\n");
    out.push_str("\n// The API's schemas\n");
    for (name, def) in named {
        out.push('\n');
        render_declaration(&mut out, name, def);
    }
    out.push_str("\n// The queries' parameters\n");
    for query in queries {
        let _ = write!(
            out,
            "\n/** The parameters of `{}`. */\nexport type {}Parameters = {};\n",
            query.name,
            query.name,
            ts_type(&Ty::Object(query.parameters.clone()))
        );
    }
    out.push_str(CLIENT_HEAD);
    for command in commands {
        out.push('\n');
        doc_comment(&mut out, &command.doc, "  ");
        let _ = writeln!(
            out,
            "  {}(command: {}, options: CommandOptions = {{}}): Promise<Acknowledgement> {{\n    return this.command({}, command, options);\n  }}",
            method_name(&command.name),
            command.body,
            json_string(&command.name),
        );
    }
    for query in queries {
        out.push('\n');
        doc_comment(&mut out, &query.doc, "  ");
        let _ = writeln!(
            out,
            "  {}(parameters: {}Parameters, minPosition?: number): Promise<Answer<{}>> {{\n    return this.query({}, parameters, minPosition);\n  }}",
            method_name(&query.name),
            query.name,
            query.data,
            json_string(&query.name),
        );
    }
    out.push_str(CLIENT_TAIL);
    out
}

const CLIENT_HEAD: &str = r#"
// The client

/** A query's answer: its data, its page (for a listing), and how fresh its read model was. */
export interface Answer<T> {
  data: T;
  page: PageInfo | null;
  freshness: Freshness;
}

/** A stream's events, as `readStream` answers. */
export interface StreamEvents {
  streamId: string;
  streamType: string;
  version: number;
  fromVersion: number;
  events: Envelope[];
}

/** What a command may carry besides its body. */
export interface CommandOptions {
  /** The command's id (a UUID): a retry with the same key gets the first answer. */
  idempotencyKey?: string;
  /** The stream version the command was decided on: another version is a 412 problem. */
  ifMatch?: number;
}

/** A problem the service answered (RFC 9457): thrown by every method on an error status. */
export class ProblemError extends Error {
  readonly problem: Problem;

  constructor(problem: Problem) {
    super(`${problem.status} ${problem.title}: ${problem.detail}`);
    this.name = "ProblemError";
    this.problem = problem;
  }
}

/** The service's HTTP API, typed. */
export class Client {
  private readonly baseUrl: string;
  private readonly token: string;
  private readonly fetchImpl: typeof fetch;

  /** A client of the service at `baseUrl`, sending `token` as its bearer token. */
  constructor(baseUrl: string, token: string, fetchImpl: typeof fetch = fetch) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.token = token;
    this.fetchImpl = fetchImpl;
  }
"#;

const CLIENT_TAIL: &str = r#"
  /** The events of the stream `streamId` from `fromVersion` on (if the caller may read them). */
  readStream(streamId: string, fromVersion?: number): Promise<StreamEvents> {
    const query = fromVersion === undefined ? "" : `?fromVersion=${fromVersion}`;
    return this.send("GET", `/streams/${encodeURIComponent(streamId)}${query}`, {});
  }

  private command(name: string, body: unknown, options: CommandOptions): Promise<Acknowledgement> {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (options.idempotencyKey !== undefined) {
      headers["idempotency-key"] = options.idempotencyKey;
    }
    if (options.ifMatch !== undefined) {
      headers["if-match"] = `"${options.ifMatch}"`;
    }
    return this.send("POST", `/commands/${name}`, headers, JSON.stringify(body));
  }

  private query<T>(name: string, parameters: object, minPosition: number | undefined): Promise<Answer<T>> {
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(parameters)) {
      if (value !== undefined && value !== null) {
        search.append(key, String(value));
      }
    }
    if (minPosition !== undefined) {
      search.append("minPosition", String(minPosition));
    }
    const query = search.toString();
    return this.send("GET", `/queries/${name}${query === "" ? "" : `?${query}`}`, {});
  }

  private async send<T>(method: string, path: string, headers: Record<string, string>, body?: string): Promise<T> {
    const init: RequestInit = { method, headers: { ...headers, authorization: `Bearer ${this.token}` } };
    if (body !== undefined) {
      init.body = body;
    }
    const response = await this.fetchImpl(`${this.baseUrl}${path}`, init);
    const text = await response.text();
    const json: unknown = text === "" ? null : JSON.parse(text);
    if (!response.ok) {
      throw new ProblemError(json as Problem);
    }
    return json as T;
  }
}
"#;
