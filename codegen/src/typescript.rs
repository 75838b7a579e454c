//! TypeScript contracts generated from a domain's schema registry.
//!
//! [`typescript`] reads the registry as JSON (the serialised `factum::registry::Registry`:
//! `{"entries": [{"kind", "name", "version", "doc", "schema", ...}]}`), so this crate does
//! not depend on the runtime, and emits one deterministic TypeScript module with:
//!
//! * an interface per event version (`OrderPlacedV2`) and per command (`PlaceOrder`), with
//!   the Rust doc comments as TSDoc;
//! * a named type per schema definition (`$defs`), shared by every entry that uses it;
//! * one envelope type per event version (`OrderPlacedV2Event`: the header, the constant
//!   name and version, and the payload's own type), and `EventEnvelope`, their union,
//!   discriminated on the event's name and version (`name` and `schema_version`), with the envelope's other fields in `EnvelopeHeader` and its
//!   definitions (`EnvelopeMetadata`). None of it is written here: it is generated from
//!   the registry document's `envelope`, the JSON Schema of `factum::envelope::RecordedEvent`
//!   as the Rust serializer writes it, whose name, version and payload properties are
//!   marked `x-factum-envelope` (see `factum::envelope::envelope_schema`);
//! * generated type guards (`isOrderPlacedV2(value): value is OrderPlacedV2`) and
//!   `parseEventEnvelope(value)`, which throws an `Error` naming the path of the first
//!   mismatch (`$.payload.lines[0].quantity: expected an integer, got string`);
//! * `readEnvelope(value)`, for any envelope factum delivers: ours (the stream types of
//!   `STREAM_TYPES`, the entries' `aggregates`, found by the envelope's property marked
//!   `"stream_type"`), fully checked, or `{ mine: false, envelope }` for another stream type.
//!
//! Type mappings: integers (`u64` included) are `number`, never `bigint`, because
//! `JSON.parse` yields numbers (the guards check the schema's bounds, and those of the
//! `uint32`/`int32`/`uint64`/`int64` formats, and refuse every integer beyond
//! +/-(2^53 - 1), which `JSON.parse` has rounded: a documented difference from Rust);
//! timestamps, UUIDs and other formats are `string` (the guards check `uuid`, `date-time`
//! and `date`); an `Option` that is always written is `f?: T | null` (serde reads an
//! absent one as `None`), one that may be skipped is an optional `f?: T`; maps (`additionalProperties`) are `Record<string, T>`; unit enums are
//! unions of string literals; `oneOf` of objects sharing a constant tag field (serde's
//! `tag = "..."`) are discriminated unions. Other unions (`anyOf`/`oneOf`) are plain
//! unions. Constructs without a faithful mapping (tuples / `prefixItems`, `allOf`, `not`,
//! conditionals, `patternProperties`, properties mixed with `additionalProperties`
//! schemas, references outside `#/$defs/`) are refused with a
//! [`TypeScriptError::Unsupported`] naming the entry and the JSON pointer: nothing becomes
//! a silent `any`. An empty schema (`serde_json::Value`) is `unknown`.
//!
//! Two definitions with the same name and different shapes (the same Rust name in two
//! modules, or a type whose serialize and deserialize contracts differ between events
//! and commands) are refused with [`TypeScriptError::NameCollision`] rather than suffixed,
//! so that names never depend on registration order.
//!
//! ```
//! use serde_json::json;
//!
//! let registry = json!({"envelope": factum::registry::Registry::builder().build().unwrap().envelope().clone(), "entries": [{
//!     "kind": "event", "name": "Opened", "version": 1, "doc": "An account was opened.",
//!     "schema": {"type": "object", "properties": {"owner": {"type": "string"}},
//!                "required": ["owner"]}
//! }]});
//! let module = factum_codegen::typescript::typescript(&registry).unwrap();
//! assert!(module.contains("export interface OpenedV1 {\n  owner: string;\n}"));
//! assert!(module.contains("export function isOpenedV1(value: unknown): value is OpenedV1"));
//! ```

mod client;

pub use client::typescript_client;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::{Number, Value};

use crate::model::{
    self, Envelope, Field, Language, Model, Named, Ty, discriminator, from_model_error, union,
};

/// Why no TypeScript module could be generated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TypeScriptError {
    /// The input is not an OpenAPI document of factum's HTTP layer.
    #[error("the OpenAPI document is malformed at {path}: {message}")]
    MalformedDocument {
        /// Where in the document.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The input is not a serialised registry.
    #[error("the registry JSON is malformed at {path}: {message}")]
    MalformedRegistry {
        /// Where in the registry JSON.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A schema uses a construct without a faithful TypeScript mapping.
    #[error("{entry}: unsupported schema construct at {path}: {construct}")]
    Unsupported {
        /// The entry, e.g. `event OrderPlaced v2` or `command PlaceOrder`.
        entry: String,
        /// The JSON pointer inside the entry's schema.
        path: String,
        /// What was found.
        construct: String,
    },
    /// Two different shapes would get the same TypeScript name.
    #[error(
        "two different shapes are named `{name}` (from {first} and {second}): rename one of the Rust types"
    )]
    NameCollision {
        /// The TypeScript name.
        name: String,
        /// The entry that defined it first.
        first: String,
        /// The entry with the other shape.
        second: String,
    },
    /// A name is not usable as a TypeScript identifier.
    #[error("{entry}: `{name}` is not a valid TypeScript identifier")]
    InvalidName {
        /// The entry.
        entry: String,
        /// The name.
        name: String,
    },
}

/// Names the generated module defines itself; no entry or definition may take them.
const RESERVED: &[&str] = &[
    "EventEnvelope",
    "EnvelopeHeader",
    "ForeignEnvelope",
    "ReadEnvelope",
];

/// Generates the TypeScript module for a serialised registry.
///
/// The output depends only on the registry's content: entries are sorted by kind, name and
/// version, definitions by name.
pub fn typescript(registry_json: &Value) -> Result<String, TypeScriptError> {
    let Model {
        named,
        envelope,
        events,
        commands,
        stream_types,
    } = model::build::<TypeScript>(registry_json)?;
    let stream_type = model::stream_type_property(&envelope)?;
    let entry_names: Vec<&String> = events
        .iter()
        .map(|(_, _, ts)| ts)
        .chain(commands.iter())
        .collect();
    // Each event version's envelope type (`OrderPlacedV2Event`) must not take a name.
    for (name, version, ts) in &events {
        let envelope_type = format!("{ts}Event");
        if let Some(existing) = named.get(&envelope_type) {
            return Err(TypeScriptError::NameCollision {
                name: envelope_type,
                first: existing.origin.clone(),
                second: format!("the envelope of event {name} v{version}"),
            });
        }
    }
    let streams = Streams {
        property: stream_type,
        types: stream_types,
    };
    Ok(render(&named, &envelope, &entry_names, &events, &streams))
}

/// The envelope's stream-type property and the stream types the module covers.
struct Streams {
    property: String,
    types: Vec<String>,
}

from_model_error!(TypeScriptError);

/// TypeScript's rules for the shared model.
struct TypeScript;

impl Language for TypeScript {
    const RESERVED: &'static [&'static str] = RESERVED;
    const STRING_FORMATS: bool = true;
    const OBJECT_ENTRIES: bool = false;

    fn is_type_name(name: &str) -> bool {
        is_identifier(name) && !KEYWORDS.contains(&name)
    }

    fn number_literal(number: &Number) -> bool {
        number.as_f64().is_some_and(f64::is_finite)
    }

    fn unsupported_constant(value: &Value) -> String {
        format!("the constant {value}")
    }
}

/// Words no generated type may be named.
const KEYWORDS: &[&str] = &[
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "debugger",
    "default",
    "delete",
    "do",
    "else",
    "enum",
    "export",
    "extends",
    "false",
    "finally",
    "for",
    "function",
    "if",
    "import",
    "in",
    "instanceof",
    "new",
    "null",
    "return",
    "super",
    "switch",
    "this",
    "throw",
    "true",
    "try",
    "typeof",
    "var",
    "void",
    "while",
    "with",
    "any",
    "unknown",
    "never",
    "string",
    "number",
    "boolean",
    "object",
    "symbol",
    "bigint",
    "undefined",
    "Record",
    "Array",
];

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_' || first == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

// ---------------------------------------------------------------------------------------
// Rendering

const HEADER: &str = "\
// Generated by factum-codegen from the schema registry. Do not edit.

/**
 * The domain's contracts: one interface per event version (`OrderPlacedV2`) and per
 * command, the named types they share, and `EventEnvelope`, a union discriminated on
 * the event's name and version, generated from the envelope's schema (the JSON factum
 * writes when it reads events back from a store and when it publishes them).
 *
 * Reading: `readEnvelope(value)` takes any envelope factum delivers and says whether it
 * is ours (`STREAM_TYPES`): `{ mine: true, event }` fully checked, or
 * `{ mine: false, envelope }` with the payload unread for another stream type. An
 * envelope of our stream types that does not parse is an error, never \"not mine\".
 * `parseEventEnvelope(value)` accepts our stream types only.
 *
 * Integers (64-bit ones included) are `number`, never `bigint`: `JSON.parse` yields
 * numbers, and rounds an integer beyond 2^53 - 1 (`Number.MAX_SAFE_INTEGER`) without a
 * word. The guards therefore reject every integer outside +/-(2^53 - 1), naming its path,
 * although factum (Rust) accepts a `u64`/`i64` up to 2^64 - 1 / 2^63 - 1: such an event
 * cannot be read exactly by `JSON.parse`. If your events can carry such values (money in
 * small units, counters, ids), parse the JSON text with a big-integer-aware parser (e.g.
 * `json-bigint`, or `JSON.parse` with source text access where available) and keep those
 * fields as strings or `bigint`; the guards here will not accept them. Values typed
 * `unknown` (free-form metadata entries) are not checked: beyond 2^53 - 1 they are
 * rounded silently. Timestamps and UUIDs are `string`.
 *
 * An `Option` is `T | null` and may be absent: factum always writes it (`null` when
 * empty) and reads an absent one as empty, so the guards accept both. A field that may
 * be skipped is optional and never `null`.
 *
 * Validation uses generated type guards (`isOrderPlacedV2`, `parseEventEnvelope`)
 * rather than zod or ajv, so that consumers need no runtime dependency. The guards check
 * types, required fields, enums, integer bounds and nested objects and arrays; they
 * accept unknown extra properties (readers stay open to additions, as factum's are), and
 * the parsed value is the input itself, so `JSON.stringify` writes back what was read.
 * Of string formats they check `uuid`, `date-time` (RFC 3339, with a zone) and `date`;
 * others are not checked. Only event versions that still have a schema are in
 * `EventEnvelope`; events stored with a retired version must be upcast (read through
 * factum) before they reach this module.
 *
 * @module
 */
";

const HELPERS: &str = "\
function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === \"object\" && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return \"null\";
  if (Array.isArray(value)) return \"array\";
  if (typeof value === \"number\" && Number.isInteger(value)) return `integer ${value}`;
  if (typeof value === \"string\") return `string ${JSON.stringify(value)}`;
  return typeof value;
}

function hasOwn(object: Record<string, unknown>, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(object, key);
}
";

fn render(
    named: &BTreeMap<String, Named>,
    envelope: &Envelope,
    entry_names: &[&String],
    events: &[(String, u64, String)],
    streams: &Streams,
) -> String {
    let mut out = String::from(HEADER);
    out.push_str("\n// Shared definitions\n");
    for (name, def) in named.iter().filter(|(name, _)| !entry_names.contains(name)) {
        out.push('\n');
        render_declaration(&mut out, name, def);
    }
    out.push_str("\n// Events and commands\n");
    for name in entry_names {
        out.push('\n');
        render_declaration(&mut out, name, &named[name.as_str()]);
    }

    out.push_str("\n// The envelope\n");
    for (name, def) in &envelope.defs {
        out.push('\n');
        render_declaration(&mut out, name, def);
    }
    let header = Named {
        ty: Ty::Object(envelope.header.clone()),
        doc: format!(
            "{}\n\nThe fields every stored event carries besides `{}`, `{}` and `{}`.",
            envelope.doc, envelope.name, envelope.version, envelope.payload
        ),
        origin: String::new(),
    };
    out.push('\n');
    render_declaration(&mut out, "EnvelopeHeader", &header);
    for (name, version, ts) in events {
        let _ = write!(
            out,
            "\n/** A stored `{name}` event, version {version}. */\n\
             export type {ts}Event = EnvelopeHeader & {{ {}: {}; {}: {version}; {}: {ts} }};\n",
            property_key(&envelope.name),
            json_string(name),
            property_key(&envelope.version),
            property_key(&envelope.payload),
        );
    }
    let _ = write!(
        out,
        "\n/** A stored event: its header, and its payload discriminated on `{}` and `{}`. */\n",
        envelope.name, envelope.version
    );
    if events.is_empty() {
        out.push_str("export type EventEnvelope = never;\n");
    } else {
        out.push_str("export type EventEnvelope =\n");
        for (index, (_, _, ts)) in events.iter().enumerate() {
            let end = if index + 1 == events.len() { ";" } else { "" };
            let _ = writeln!(out, "  | {ts}Event{end}");
        }
    }

    let _ = write!(
        out,
        "\n/**\n * An envelope of any stream type: its header, the event's name and version, and the\n \
         * payload unread (`readEnvelope` returns those of stream types not in `STREAM_TYPES`).\n \
         */\n\
         export type ForeignEnvelope = EnvelopeHeader & {{ {}: {}; {}: {}; {}: unknown }};\n\n\
         /** What `readEnvelope` found: one of our events, or an envelope of another stream type. */\n\
         export type ReadEnvelope = {{ mine: true; event: EventEnvelope }} | {{ mine: false; envelope: ForeignEnvelope }};\n\n\
         /** The stream types (aggregates) whose events this module covers. */\n\
         export const STREAM_TYPES: readonly string[] = [{}];\n",
        property_key(&envelope.name),
        ts_type(&envelope.role_types[0]),
        property_key(&envelope.version),
        ts_type(&envelope.role_types[1]),
        property_key(&envelope.payload),
        streams
            .types
            .iter()
            .map(|name| json_string(name))
            .collect::<Vec<_>>()
            .join(", "),
    );

    out.push_str("\n// Validation\n\n");
    out.push_str(HELPERS);
    let mut guards = String::new();
    let mut formats = BTreeSet::new();
    let all = named
        .iter()
        .map(|(name, def)| (name.as_str(), &def.ty))
        .chain(
            envelope
                .defs
                .iter()
                .map(|(name, def)| (name.as_str(), &def.ty)),
        )
        .chain([("EnvelopeHeader", &header.ty)]);
    for (name, ty) in all {
        guards.push('\n');
        render_guard(&mut guards, name, ty, &mut formats);
    }
    let mut foreign = String::new();
    render_foreign_check(&mut foreign, envelope, &mut formats);
    // Only the format checks the guards use: an unused function fails `noUnusedLocals`.
    for (format, function) in FORMAT_CHECKS {
        if formats.contains(*format) {
            out.push('\n');
            out.push_str(function);
        }
    }
    out.push_str(&guards);
    out.push('\n');
    out.push_str(&foreign);
    render_envelope_check(&mut out, envelope, events, streams);
    out
}

fn doc_comment(out: &mut String, doc: &str, indent: &str) {
    let doc = doc.trim();
    if doc.is_empty() {
        return;
    }
    let doc = doc.replace("*/", "*\\/");
    let lines: Vec<&str> = doc.lines().collect();
    if lines.len() == 1 {
        let _ = writeln!(out, "{indent}/** {} */", lines[0]);
    } else {
        let _ = writeln!(out, "{indent}/**");
        for line in lines {
            if line.trim().is_empty() {
                let _ = writeln!(out, "{indent} *");
            } else {
                let _ = writeln!(out, "{indent} * {}", line.trim_end());
            }
        }
        let _ = writeln!(out, "{indent} */");
    }
}

fn render_declaration(out: &mut String, name: &str, def: &Named) {
    doc_comment(out, &def.doc, "");
    match &def.ty {
        Ty::Object(fields) => {
            if fields.is_empty() {
                let _ = writeln!(out, "export interface {name} {{}}");
            } else {
                let _ = writeln!(out, "export interface {name} {{");
                for field in fields {
                    doc_comment(out, &field.doc, "  ");
                    let _ = writeln!(
                        out,
                        "  {}{}: {};",
                        property_key(&field.name),
                        if field.required { "" } else { "?" },
                        ts_type(&field.ty)
                    );
                }
                out.push_str("}\n");
            }
        }
        Ty::Union(alternatives) if alternatives.iter().any(|alt| matches!(alt, Ty::Object(_))) => {
            let _ = writeln!(out, "export type {name} =");
            for (index, alternative) in alternatives.iter().enumerate() {
                let end = if index + 1 == alternatives.len() {
                    ";"
                } else {
                    ""
                };
                let _ = writeln!(out, "  | {}{end}", ts_type(alternative));
            }
        }
        other => {
            let _ = writeln!(out, "export type {name} = {};", ts_type(other));
        }
    }
}

fn property_key(name: &str) -> String {
    if is_identifier(name) {
        name.to_owned()
    } else {
        json_string(name)
    }
}

fn json_string(value: &str) -> String {
    Value::String(value.to_owned()).to_string()
}

fn ts_type(ty: &Ty) -> String {
    match ty {
        Ty::Unknown => "unknown".to_owned(),
        Ty::Null => "null".to_owned(),
        Ty::Boolean => "boolean".to_owned(),
        Ty::String(_) => "string".to_owned(),
        Ty::Number { .. } => "number".to_owned(),
        Ty::Literal(value) => value.to_string(),
        Ty::Array(inner) => match **inner {
            Ty::Union(_) => format!("Array<{}>", ts_type(inner)),
            _ => format!("{}[]", ts_type(inner)),
        },
        Ty::Record(inner) => format!("Record<string, {}>", ts_type(inner)),
        Ty::Ref(name) => name.clone(),
        Ty::Object(fields) if fields.is_empty() => "Record<string, never>".to_owned(),
        Ty::Object(fields) => {
            let fields: Vec<String> = fields
                .iter()
                .map(|field| {
                    format!(
                        "{}{}: {}",
                        property_key(&field.name),
                        if field.required { "" } else { "?" },
                        ts_type(&field.ty)
                    )
                })
                .collect();
            format!("{{ {} }}", fields.join("; "))
        }
        Ty::Union(alternatives) => alternatives
            .iter()
            .map(ts_type)
            .collect::<Vec<_>>()
            .join(" | "),
    }
}

/// Escapes text for a template literal.
fn template_escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('`', "\\`")
        .replace("${", "\\${")
}

/// The string formats the guards check: the format, and the function checking it.
const FORMAT_CHECKS: &[(&str, &str)] = &[
    (
        "date",
        "function isDate(value: string): boolean {\n  \
         return /^\\d{4}-\\d{2}-\\d{2}$/.test(value) && !Number.isNaN(Date.parse(value));\n}\n",
    ),
    (
        "date-time",
        "function isDateTime(value: string): boolean {\n  \
         return (\n    \
         /^\\d{4}-\\d{2}-\\d{2}[Tt]\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?([Zz]|[+-]\\d{2}:\\d{2})$/.test(value) &&\n    \
         !Number.isNaN(Date.parse(value))\n  );\n}\n",
    ),
    (
        "uuid",
        "function isUuid(value: string): boolean {\n  \
         return /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(value);\n}\n",
    ),
];

fn render_guard(out: &mut String, name: &str, ty: &Ty, formats: &mut BTreeSet<String>) {
    let _ = writeln!(
        out,
        "function check{name}(value: unknown, path: string): string | null {{"
    );
    let mut emitter = Emitter {
        out: String::new(),
        counter: 0,
        formats,
    };
    emitter.check(ty, "value", "path", 1);
    out.push_str(&emitter.out);
    out.push_str("  return null;\n}\n\n");
    let _ = writeln!(
        out,
        "/** Whether `value` is a valid `{name}`, nested values included. */\n\
         export function is{name}(value: unknown): value is {name} {{\n  \
         return check{name}(value, \"$\") === null;\n}}"
    );
}

/// `[name]` or `.name`: the path segment of a property.
fn segment(field: &str) -> String {
    if is_identifier(field) {
        format!(".{field}")
    } else {
        format!("[{}]", template_escape(&json_string(field)))
    }
}

/// `checkForeignEnvelope`: the header, and the name, version and payload present and of
/// their types; the payload is not read.
fn render_foreign_check(out: &mut String, envelope: &Envelope, formats: &mut BTreeSet<String>) {
    let mut emitter = Emitter {
        out: String::new(),
        counter: 0,
        formats,
    };
    emitter.line(1, "const header = checkEnvelopeHeader(value, path);");
    emitter.line(1, "if (header !== null) return header;");
    emitter.line(1, "const envelope = value as Record<string, unknown>;");
    let fields = [
        (&envelope.name, envelope.role_types[0].clone()),
        (&envelope.version, envelope.role_types[1].clone()),
        (&envelope.payload, Ty::Unknown),
    ];
    for (name, ty) in fields {
        emitter.field(
            &Field {
                name: name.clone(),
                ty,
                required: true,
                doc: String::new(),
            },
            "envelope",
            "path",
            1,
        );
    }
    let _ = write!(
        out,
        "function checkForeignEnvelope(value: unknown, path: string): string | null {{\n{}  return null;\n}}\n\n",
        emitter.out
    );
}

fn render_envelope_check(
    out: &mut String,
    envelope: &Envelope,
    events: &[(String, u64, String)],
    streams: &Streams,
) {
    let names: BTreeSet<&String> = events.iter().map(|(name, ..)| name).collect();
    let names: Vec<String> = names.into_iter().map(|name| json_string(name)).collect();
    let _ = write!(
        out,
        "const EVENT_NAMES: readonly string[] = [{names}];\n\n\
         function checkEventEnvelope(value: unknown, path: string): string | null {{\n  \
         const header = checkForeignEnvelope(value, path);\n  \
         if (header !== null) return header;\n  \
         const envelope = value as Record<string, unknown>;\n  \
         const streamType = envelope[{stream}] as string;\n  \
         if (!STREAM_TYPES.includes(streamType)) {{\n    \
         return `${{path}}{stream_segment}: stream type ${{JSON.stringify(streamType)}} is not in this contract (it covers ${{STREAM_TYPES.map((type) => JSON.stringify(type)).join(\", \")}}): read envelopes of any stream with readEnvelope`;\n  \
         }}\n  \
         const name = envelope[{name}] as string;\n  \
         const version = envelope[{version}] as number;\n  \
         const payload = envelope[{payload}];\n  \
         const payloadPath = `${{path}}{payload_segment}`;\n",
        names = names.join(", "),
        stream = json_string(&streams.property),
        stream_segment = segment(&streams.property),
        name = json_string(&envelope.name),
        version = json_string(&envelope.version),
        payload = json_string(&envelope.payload),
        payload_segment = segment(&envelope.payload),
    );
    for (name, version, ts) in events {
        let _ = writeln!(
            out,
            "  if (name === {} && version === {version}) return check{ts}(payload, payloadPath);",
            json_string(name)
        );
    }
    let _ = write!(
        out,
        "  const regenerate = \"the contract may be older than the producer: regenerate it from the producer's registry\";\n  \
         if (EVENT_NAMES.includes(name)) {{\n    \
         return `${{path}}{version_segment}: event ${{JSON.stringify(name)}} has no version ${{version}} in this contract; ${{regenerate}}`;\n  \
         }}\n  \
         return `${{path}}{name_segment}: no event ${{JSON.stringify(name)}} in this contract for stream type ${{JSON.stringify(streamType)}}; ${{regenerate}}`;\n}}\n\n",
        version_segment = segment(&envelope.version),
        name_segment = segment(&envelope.name),
    );
    let _ = write!(
        out,
        "/** Whether `value` is a valid `EventEnvelope`, payload included. */\n\
         export function isEventEnvelope(value: unknown): value is EventEnvelope {{\n  \
         return checkEventEnvelope(value, \"$\") === null;\n}}\n\n\
         /**\n * Checks that `value` (e.g. from `JSON.parse`) is a valid `EventEnvelope` of one of\n \
         * `STREAM_TYPES` and returns it. For envelopes of any stream type, use `readEnvelope`.\n *\n \
         * @throws Error naming the path of the first mismatch, e.g.\n \
         * `$.payload.lines[0].quantity: expected an integer, got string \"2\"`.\n */\n\
         export function parseEventEnvelope(value: unknown): EventEnvelope {{\n  \
         const error = checkEventEnvelope(value, \"$\");\n  \
         if (error !== null) throw new Error(`invalid event envelope: ${{error}}`);\n  \
         return value as EventEnvelope;\n}}\n\n\
         /**\n * Reads any envelope factum delivers: one of `STREAM_TYPES` is parsed fully (as\n \
         * `parseEventEnvelope` does) and is `{{ mine: true, event }}`; another stream type is\n \
         * `{{ mine: false, envelope }}`, its header checked and its payload unread.\n *\n \
         * @throws Error naming the path of the first mismatch: a malformed header, or an event\n \
         * of our stream types that does not parse (an unknown name or version included).\n */\n\
         export function readEnvelope(value: unknown): ReadEnvelope {{\n  \
         const error = checkForeignEnvelope(value, \"$\");\n  \
         if (error !== null) throw new Error(`invalid event envelope: ${{error}}`);\n  \
         const envelope = value as ForeignEnvelope;\n  \
         const streamType = (value as Record<string, unknown>)[{stream}] as string;\n  \
         if (!STREAM_TYPES.includes(streamType)) return {{ mine: false, envelope }};\n  \
         return {{ mine: true, event: parseEventEnvelope(value) }};\n}}\n",
        stream = json_string(&streams.property),
    );
}

/// 2^53 - 1, `Number.MAX_SAFE_INTEGER`: `JSON.parse` rounds integers beyond it.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// Why an integer beyond +/-(2^53 - 1) is refused, and what to do.
const UNSAFE_INTEGER: &str = "expected an integer within +/-(2^53 - 1): JSON.parse has rounded this one, its exact value is lost (factum accepts 64-bit integers; parse such events with a big-integer-aware JSON parser, see the module's header)";

/// Emits statements that `return` an error message when a value does not match a type.
struct Emitter<'a> {
    out: String,
    counter: usize,
    /// The string formats checked so far.
    formats: &'a mut BTreeSet<String>,
}

impl Emitter<'_> {
    fn fresh(&mut self) -> usize {
        self.counter += 1;
        self.counter
    }

    fn line(&mut self, depth: usize, text: &str) {
        for _ in 0..depth {
            self.out.push_str("  ");
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn fail(&mut self, depth: usize, value: &str, path: &str, condition: &str, expected: &str) {
        let expected = template_escape(expected);
        self.line(
            depth,
            &format!(
                "if ({condition}) return `${{{path}}}: expected {expected}, got ${{describe({value})}}`;"
            ),
        );
    }

    /// `value` and `path` are identifiers of the value and of its path string.
    /// The loop over an array's or a map's elements: `header` opens it, each element is
    /// `element` at the path expression `element_path`, checked against `inner`.
    fn check_elements(
        &mut self,
        inner: &Ty,
        depth: usize,
        header: &str,
        element: &str,
        element_path: &str,
        n: usize,
    ) {
        self.line(depth, header);
        self.line(depth + 1, &format!("const v{n}: unknown = {element};"));
        self.line(depth + 1, &format!("const p{n} = {element_path};"));
        self.check(inner, &format!("v{n}"), &format!("p{n}"), depth + 1);
        self.line(depth, "}");
    }

    fn check(&mut self, ty: &Ty, value: &str, path: &str, depth: usize) {
        match ty {
            Ty::Unknown => {}
            Ty::Null => self.fail(depth, value, path, &format!("{value} !== null"), "null"),
            Ty::Boolean => self.fail(
                depth,
                value,
                path,
                &format!("typeof {value} !== \"boolean\""),
                "a boolean",
            ),
            Ty::String(format) => {
                self.fail(
                    depth,
                    value,
                    path,
                    &format!("typeof {value} !== \"string\""),
                    "a string",
                );
                let format = format.as_deref().unwrap_or_default();
                let check = match format {
                    "uuid" => "isUuid",
                    "date-time" => "isDateTime",
                    "date" => "isDate",
                    _ => return,
                };
                self.formats.insert(format.to_owned());
                self.fail(
                    depth,
                    value,
                    path,
                    &format!("!{check}({value})"),
                    &format!("a string of format {format}"),
                );
            }
            Ty::Number {
                integer,
                minimum,
                maximum,
            } => {
                if *integer {
                    self.fail(
                        depth,
                        value,
                        path,
                        &format!("typeof {value} !== \"number\" || !Number.isInteger({value})"),
                        "an integer",
                    );
                    // Where the bounds let the value past +/-(2^53 - 1) (64-bit integers,
                    // unbounded ones): elsewhere the bounds refuse a rounded value anyway.
                    let beyond = |bound: &Option<Number>, limit: f64| {
                        bound
                            .as_ref()
                            .and_then(Number::as_f64)
                            .is_none_or(|bound| bound.abs() >= limit.abs() && bound * limit > 0.0)
                    };
                    if beyond(maximum, MAX_SAFE_INTEGER) || beyond(minimum, -MAX_SAFE_INTEGER) {
                        self.line(
                            depth,
                            &format!(
                                "if (!Number.isSafeInteger({value})) return `${{{path}}}: {UNSAFE_INTEGER}, got ${{describe({value})}}`;"
                            ),
                        );
                    }
                } else {
                    self.fail(
                        depth,
                        value,
                        path,
                        &format!("typeof {value} !== \"number\" || !Number.isFinite({value})"),
                        "a number",
                    );
                }
                // Bounds beyond +/-(2^53 - 1) are implied by the safe-integer check (and
                // have no exact literal).
                let exact = |bound: &Number| {
                    bound
                        .as_f64()
                        .filter(|bound| !*integer || bound.abs() < MAX_SAFE_INTEGER)
                };
                if let Some(minimum) = minimum.as_ref().and_then(exact) {
                    self.fail(
                        depth,
                        value,
                        path,
                        &format!("{value} < {minimum}"),
                        &format!("a number >= {minimum}"),
                    );
                }
                if let Some(maximum) = maximum.as_ref().and_then(exact) {
                    self.fail(
                        depth,
                        value,
                        path,
                        &format!("{value} > {maximum}"),
                        &format!("a number <= {maximum}"),
                    );
                }
            }
            Ty::Literal(literal) => self.fail(
                depth,
                value,
                path,
                &format!("{value} !== {literal}"),
                &literal.to_string(),
            ),
            Ty::Ref(name) => {
                let n = self.fresh();
                self.line(depth, "{");
                self.line(
                    depth + 1,
                    &format!("const error{n} = check{name}({value}, {path});"),
                );
                self.line(
                    depth + 1,
                    &format!("if (error{n} !== null) return error{n};"),
                );
                self.line(depth, "}");
            }
            Ty::Array(inner) => {
                self.fail(
                    depth,
                    value,
                    path,
                    &format!("!Array.isArray({value})"),
                    "an array",
                );
                if **inner == Ty::Unknown {
                    return;
                }
                let n = self.fresh();
                self.check_elements(
                    inner,
                    depth,
                    &format!("for (let i{n} = 0; i{n} < {value}.length; i{n}++) {{"),
                    &format!("{value}[i{n}]"),
                    &format!("`${{{path}}}[${{i{n}}}]`"),
                    n,
                );
            }
            Ty::Record(inner) => {
                self.fail(
                    depth,
                    value,
                    path,
                    &format!("!isObject({value})"),
                    "an object",
                );
                if **inner == Ty::Unknown {
                    return;
                }
                let n = self.fresh();
                self.check_elements(
                    inner,
                    depth,
                    &format!("for (const k{n} of Object.keys({value})) {{"),
                    &format!("{value}[k{n}]"),
                    &format!("`${{{path}}}[${{JSON.stringify(k{n})}}]`"),
                    n,
                );
            }
            Ty::Object(fields) => {
                self.fail(
                    depth,
                    value,
                    path,
                    &format!("!isObject({value})"),
                    "an object",
                );
                for field in fields {
                    self.field(field, value, path, depth);
                }
            }
            Ty::Union(alternatives) => self.union(alternatives, value, path, depth),
        }
    }

    fn field(&mut self, field: &Field, object: &str, path: &str, depth: usize) {
        let n = self.fresh();
        let unknown = field.ty == Ty::Unknown;
        let key = json_string(&field.name);
        let segment = if is_identifier(&field.name) {
            format!(".{}", field.name)
        } else {
            format!("[{}]", template_escape(&key))
        };
        if field.required {
            self.line(
                depth,
                &format!(
                    "if (!hasOwn({object}, {key})) return `${{{path}}}{}: missing`;",
                    segment
                ),
            );
            if unknown {
                return;
            }
            self.line(depth, "{");
        } else if unknown {
            return;
        } else {
            self.line(depth, &format!("if ({object}[{key}] !== undefined) {{"));
        }
        self.line(depth + 1, &format!("const v{n} = {object}[{key}];"));
        self.line(depth + 1, &format!("const p{n} = `${{{path}}}{segment}`;"));
        self.check(&field.ty, &format!("v{n}"), &format!("p{n}"), depth + 1);
        self.line(depth, "}");
    }

    fn union(&mut self, alternatives: &[Ty], value: &str, path: &str, depth: usize) {
        if alternatives
            .iter()
            .all(|alt| matches!(alt, Ty::Literal(_) | Ty::Null))
        {
            let literal = |alt: &Ty| match alt {
                Ty::Literal(value) => value.to_string(),
                _ => "null".to_owned(),
            };
            let condition: Vec<String> = alternatives
                .iter()
                .map(|alt| format!("{value} !== {}", literal(alt)))
                .collect();
            let expected: Vec<String> = alternatives.iter().map(literal).collect();
            self.fail(
                depth,
                value,
                path,
                &condition.join(" && "),
                &format!("one of {}", expected.join(", ")),
            );
            return;
        }
        if alternatives.contains(&Ty::Null) {
            let rest: Vec<Ty> = alternatives
                .iter()
                .filter(|alt| **alt != Ty::Null)
                .cloned()
                .collect();
            self.line(depth, &format!("if ({value} !== null) {{"));
            self.check(&union(rest), value, path, depth + 1);
            self.line(depth, "}");
            return;
        }
        if let Some(tag) = discriminator(alternatives) {
            self.fail(
                depth,
                value,
                path,
                &format!("!isObject({value})"),
                "an object",
            );
            let n = self.fresh();
            let key = json_string(&tag);
            self.line(depth, &format!("const tag{n} = {value}[{key}];"));
            let mut tags = Vec::new();
            for (index, alternative) in alternatives.iter().enumerate() {
                let Ty::Object(fields) = alternative else {
                    unreachable!("a discriminated union has objects only")
                };
                let tag_value = fields
                    .iter()
                    .find_map(|field| match (&field.ty, field.name == tag) {
                        (Ty::Literal(literal), true) => Some(literal.to_string()),
                        _ => None,
                    })
                    .unwrap_or_default();
                let keyword = if index == 0 { "if" } else { "} else if" };
                self.line(depth, &format!("{keyword} (tag{n} === {tag_value}) {{"));
                for field in fields {
                    self.field(field, value, path, depth + 1);
                }
                tags.push(tag_value);
            }
            self.line(depth, "} else {");
            let segment = if is_identifier(&tag) {
                format!(".{tag}")
            } else {
                format!("[{}]", template_escape(&key))
            };
            self.line(
                depth + 1,
                &format!(
                    "return `${{{path}}}{segment}: expected one of {}, got ${{describe(tag{n})}}`;",
                    template_escape(&tags.join(", "))
                ),
            );
            self.line(depth, "}");
            return;
        }
        // A general union: the value must match one alternative.
        let n = self.fresh();
        self.line(depth, &format!("const errors{n} = ["));
        for alternative in alternatives {
            let m = self.fresh();
            self.line(depth + 1, &format!("(x{m}: unknown): string | null => {{"));
            self.check(alternative, &format!("x{m}"), path, depth + 2);
            self.line(depth + 2, "return null;");
            self.line(depth + 1, "},");
        }
        self.line(
            depth,
            &format!("].map((alternative) => alternative({value}));"),
        );
        self.line(
            depth,
            &format!(
                "if (errors{n}.every((error) => error !== null)) return `${{{path}}}: matches no alternative (${{errors{n}.join(\"; \")}})`;"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(name: &str, version: u64, schema: Value) -> Value {
        json!({"kind": "event", "name": name, "version": version, "doc": "", "schema": schema})
    }

    #[test]
    fn personal_fields_are_documented_as_such() {
        // The registry document the member-profile domain's `#[subject]` and `#[pii]`
        // declarations produce.
        let registry = serde_json::to_value(factum_example_member_profile::registry()).unwrap();
        let module = typescript(&registry).unwrap();
        assert!(module.contains("The data subject: whose personal data the event holds."));
        assert!(module.contains("Where to write to them."));
        assert!(module.contains("Personal data: stored sealed under the data subject's key"));
    }

    #[test]
    fn tuples_are_refused_with_the_entry_and_path() {
        let registry = json!({"entries": [event("Moved", 1, json!({
            "type": "object",
            "properties": {"to": {"type": "array", "prefixItems": [{"type": "integer"}]}},
            "required": ["to"]
        }))]});
        assert_eq!(
            typescript(&registry),
            Err(TypeScriptError::Unsupported {
                entry: "event Moved v1".to_owned(),
                path: "/properties/to/prefixItems".to_owned(),
                construct: "the keyword `prefixItems`".to_owned(),
            })
        );
    }

    #[test]
    fn definitions_with_one_name_and_two_shapes_are_refused() {
        let with_point = |field: &str| {
            json!({
                "type": "object",
                "properties": {"at": {"$ref": "#/$defs/Point"}},
                "required": ["at"],
                "$defs": {"Point": {"type": "object",
                    "properties": {field: {"type": "integer"}}, "required": [field]}}
            })
        };
        let registry = json!({"entries": [
            event("A", 1, with_point("x")),
            event("B", 1, with_point("y")),
        ]});
        assert_eq!(
            typescript(&registry),
            Err(TypeScriptError::NameCollision {
                name: "Point".to_owned(),
                first: "event A v1".to_owned(),
                second: "event B v1".to_owned(),
            })
        );
    }

    #[test]
    fn reserved_names_are_refused() {
        let registry = json!({"entries": [{"kind": "command", "name": "EventEnvelope",
            "version": 1, "doc": "", "schema": {"type": "object"}}]});
        assert!(matches!(
            typescript(&registry),
            Err(TypeScriptError::NameCollision { name, .. }) if name == "EventEnvelope"
        ));
    }

    #[test]
    fn a_type_named_like_an_event_envelope_is_refused() {
        let registry = json!({"envelope": factum::registry::Registry::builder().build().unwrap().envelope().clone(), "entries": [
            event("Opened", 1, json!({"type": "object"})),
            {"kind": "command", "name": "OpenedV1Event", "version": 1, "doc": "",
             "schema": {"type": "object"}},
        ]});
        assert_eq!(
            typescript(&registry),
            Err(TypeScriptError::NameCollision {
                name: "OpenedV1Event".to_owned(),
                first: "command OpenedV1Event".to_owned(),
                second: "the envelope of event Opened v1".to_owned(),
            })
        );
    }

    #[test]
    fn maps_nullables_and_tagged_unions_have_their_typescript_shapes() {
        let registry = json!({"envelope": factum::registry::Registry::builder().build().unwrap().envelope().clone(), "entries": [event("Shaped", 1, json!({
            "type": "object",
            "properties": {
                "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                "note": {"type": ["string", "null"]},
                "at": {"type": "string", "format": "date-time"},
                "shape": {"$ref": "#/$defs/Shape"},
                "size": {"enum": ["S", "M"]}
            },
            "required": ["tags", "note", "at", "shape"],
            "$defs": {"Shape": {"oneOf": [
                {"type": "object", "properties": {"kind": {"const": "Circle", "type": "string"},
                    "r": {"type": "number"}}, "required": ["kind", "r"]},
                {"type": "object", "properties": {"kind": {"const": "Square", "type": "string"}},
                    "required": ["kind"]}
            ]}}
        }))]});
        let module = typescript(&registry).unwrap();
        // `note`, required and nullable, is an `Option` serde always writes and reads when
        // absent too: optional.
        assert!(module.contains(
            "export interface ShapedV1 {\n  tags: Record<string, string>;\n  note?: string | null;\n  at: string;\n  shape: Shape;\n  size?: \"S\" | \"M\";\n}"
        ), "{module}");
        assert!(
            module.contains(
                "export type Shape =\n  | { kind: \"Circle\"; r: number }\n  | { kind: \"Square\" };"
            ),
            "{module}"
        );
        assert!(module.contains("const tag"), "{module}");
    }

    /// An optional envelope property (`Option<u32>` with `default` and
    /// `skip_serializing_if`) is optional and nullable, as serde reads it: generically.
    #[test]
    fn an_optional_envelope_property_is_optional_and_nullable() {
        let mut envelope = factum::registry::Registry::builder()
            .build()
            .unwrap()
            .envelope()
            .clone();
        envelope["properties"]["stored_schema_version"] =
            json!({"type": ["integer", "null"], "format": "uint32", "minimum": 0});
        let registry = json!({"envelope": envelope, "entries": [event("Opened", 1, json!({"type": "object"}))]});
        let module = typescript(&registry).unwrap();
        assert!(
            module.contains("  stored_schema_version?: number | null;\n"),
            "{module}"
        );
        assert!(
            module.contains("if (value[\"stored_schema_version\"] !== undefined) {"),
            "{module}"
        );
    }
}
