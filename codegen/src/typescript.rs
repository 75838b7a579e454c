//! TypeScript contracts generated from a domain's schema registry.
//!
//! [`typescript`] reads the registry as JSON (the serialised `factum::registry::Registry`:
//! `{"entries": [{"kind", "name", "version", "doc", "schema", ...}]}`), so this crate does
//! not depend on the runtime, and emits one deterministic TypeScript module with:
//!
//! * an interface per event version (`OrderPlacedV2`) and per command (`PlaceOrder`), with
//!   the Rust doc comments as TSDoc;
//! * a named type per schema definition (`$defs`), shared by every entry that uses it;
//! * `EventEnvelope`, a union discriminated on `name` and `version`, with the envelope's
//!   stored fields (`event_id`, `stream_id`, `stream_type`, `stream_version`, `position`,
//!   `timestamp`, `metadata`);
//! * generated type guards (`isOrderPlacedV2(value): value is OrderPlacedV2`) and
//!   `parseEventEnvelope(value)`, which throws an `Error` naming the path of the first
//!   mismatch (`$.payload.lines[0].quantity: expected an integer, got string`).
//!
//! Type mappings: integers (`u64` included) are `number`, never `bigint`, because
//! `JSON.parse` yields numbers; timestamps, UUIDs and other formats are `string`; an
//! `Option` that is always written is a required `T | null`, one that may be skipped is an
//! optional `f?: T`; maps (`additionalProperties`) are `Record<string, T>`; unit enums are
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
//! let registry = json!({"entries": [{
//!     "kind": "event", "name": "Opened", "version": 1, "doc": "An account was opened.",
//!     "schema": {"type": "object", "properties": {"owner": {"type": "string"}},
//!                "required": ["owner"]}
//! }]});
//! let module = factum_codegen::typescript::typescript(&registry).unwrap();
//! assert!(module.contains("export interface OpenedV1 {\n  owner: string;\n}"));
//! assert!(module.contains("export function isOpenedV1(value: unknown): value is OpenedV1"));
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Map, Value};

/// Why no TypeScript module could be generated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TypeScriptError {
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
const RESERVED: &[&str] = &["EventEnvelope", "EnvelopeHeader", "EnvelopeMetadata"];

/// Generates the TypeScript module for a serialised registry.
///
/// The output depends only on the registry's content: entries are sorted by kind, name and
/// version, definitions by name.
pub fn typescript(registry_json: &Value) -> Result<String, TypeScriptError> {
    let entries = parse_entries(registry_json)?;
    let mut named: BTreeMap<String, Named> = BTreeMap::new();
    for name in RESERVED {
        named.insert(
            (*name).to_owned(),
            Named {
                ty: Ty::Unknown,
                doc: String::new(),
                origin: "factum-codegen's envelope types".to_owned(),
            },
        );
    }
    let mut events = Vec::new();
    let mut commands = Vec::new();
    for entry in &entries {
        let label = entry.label();
        let converter = Converter { entry: &label };
        if let Some(defs) = entry.schema.get("$defs") {
            let defs = defs
                .as_object()
                .ok_or_else(|| converter.unsupported("/$defs", "`$defs` that is not an object"))?;
            for (name, schema) in defs {
                check_identifier(&label, name)?;
                let path = format!("/$defs/{}", pointer_escape(name));
                let ty = converter.convert(schema, &path)?;
                insert_named(&mut named, name, ty, description(schema), &label)?;
            }
        }
        let ts_name = entry.ts_name();
        check_identifier(&label, &ts_name)?;
        let ty = converter.convert(&entry.schema, "")?;
        insert_named(&mut named, &ts_name, ty, entry.doc.clone(), &label)?;
        if entry.kind == Kind::Event {
            events.push((entry.name.clone(), entry.version, ts_name));
        } else {
            commands.push(ts_name);
        }
    }
    for name in RESERVED {
        named.remove(*name);
    }
    let entry_names: Vec<&String> = events
        .iter()
        .map(|(_, _, ts)| ts)
        .chain(commands.iter())
        .collect();
    Ok(render(&named, &entry_names, &events))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Event,
    Command,
}

struct Entry {
    kind: Kind,
    name: String,
    version: u64,
    doc: String,
    schema: Value,
}

impl Entry {
    fn label(&self) -> String {
        match self.kind {
            Kind::Event => format!("event {} v{}", self.name, self.version),
            Kind::Command => format!("command {}", self.name),
        }
    }

    fn ts_name(&self) -> String {
        match self.kind {
            Kind::Event => format!("{}V{}", self.name, self.version),
            Kind::Command => self.name.clone(),
        }
    }
}

fn malformed(path: impl Into<String>, message: impl Into<String>) -> TypeScriptError {
    TypeScriptError::MalformedRegistry {
        path: path.into(),
        message: message.into(),
    }
}

fn parse_entries(registry: &Value) -> Result<Vec<Entry>, TypeScriptError> {
    let list = registry
        .get("entries")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("/entries", "expected an array of entries"))?;
    let mut entries = Vec::with_capacity(list.len());
    for (index, raw) in list.iter().enumerate() {
        let at = |field: &str| format!("/entries/{index}/{field}");
        let kind = match raw.get("kind").and_then(Value::as_str) {
            Some("event") => Kind::Event,
            Some("command") => Kind::Command,
            _ => return Err(malformed(at("kind"), "expected \"event\" or \"command\"")),
        };
        let name = raw
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed(at("name"), "expected a string"))?
            .to_owned();
        let version = match kind {
            Kind::Event => raw
                .get("version")
                .and_then(Value::as_u64)
                .ok_or_else(|| malformed(at("version"), "expected an unsigned integer"))?,
            Kind::Command => 1,
        };
        let doc = match raw.get("doc") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(doc)) => doc.clone(),
            Some(_) => return Err(malformed(at("doc"), "expected a string")),
        };
        let schema = raw
            .get("schema")
            .cloned()
            .ok_or_else(|| malformed(at("schema"), "missing"))?;
        entries.push(Entry {
            kind,
            name,
            version,
            doc,
            schema,
        });
    }
    entries.sort_by(|a, b| (a.kind, &a.name, a.version).cmp(&(b.kind, &b.name, b.version)));
    Ok(entries)
}

fn check_identifier(entry: &str, name: &str) -> Result<(), TypeScriptError> {
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
    if is_identifier(name) && !KEYWORDS.contains(&name) {
        Ok(())
    } else {
        Err(TypeScriptError::InvalidName {
            entry: entry.to_owned(),
            name: name.to_owned(),
        })
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_' || first == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

fn pointer_escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

fn description(schema: &Value) -> String {
    schema
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

struct Named {
    ty: Ty,
    doc: String,
    origin: String,
}

fn insert_named(
    named: &mut BTreeMap<String, Named>,
    name: &str,
    ty: Ty,
    doc: String,
    origin: &str,
) -> Result<(), TypeScriptError> {
    match named.get(name) {
        Some(existing) if existing.ty == ty && !RESERVED.contains(&name) => Ok(()),
        Some(existing) => Err(TypeScriptError::NameCollision {
            name: name.to_owned(),
            first: existing.origin.clone(),
            second: origin.to_owned(),
        }),
        None => {
            named.insert(
                name.to_owned(),
                Named {
                    ty,
                    doc,
                    origin: origin.to_owned(),
                },
            );
            Ok(())
        }
    }
}

/// The TypeScript shape of a schema.
#[derive(Debug, Clone, PartialEq)]
enum Ty {
    Unknown,
    Null,
    Boolean,
    String,
    Number {
        integer: bool,
        minimum: Option<f64>,
        maximum: Option<f64>,
    },
    /// A JSON constant (string, number, boolean).
    Literal(Value),
    Array(Box<Ty>),
    Record(Box<Ty>),
    Ref(String),
    Object(Vec<Field>),
    Union(Vec<Ty>),
}

#[derive(Debug, Clone, PartialEq)]
struct Field {
    name: String,
    ty: Ty,
    required: bool,
    doc: String,
}

/// Keywords that only annotate or constrain beyond what the generated types express.
const IGNORED: &[&str] = &[
    "$schema",
    "$id",
    "$comment",
    "$defs",
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "format",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "uniqueItems",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minProperties",
    "maxProperties",
    "contentEncoding",
    "contentMediaType",
];

struct Converter<'a> {
    entry: &'a str,
}

impl Converter<'_> {
    fn unsupported(&self, path: &str, construct: impl Into<String>) -> TypeScriptError {
        TypeScriptError::Unsupported {
            entry: self.entry.to_owned(),
            path: if path.is_empty() {
                "/".to_owned()
            } else {
                path.to_owned()
            },
            construct: construct.into(),
        }
    }

    fn convert(&self, schema: &Value, path: &str) -> Result<Ty, TypeScriptError> {
        let object = match schema {
            Value::Bool(true) => return Ok(Ty::Unknown),
            Value::Bool(false) => {
                return Err(self.unsupported(path, "the schema `false` (no value is valid)"));
            }
            Value::Object(object) => object,
            _ => return Err(self.unsupported(path, "a schema that is not an object")),
        };
        for key in object.keys() {
            let known = IGNORED.contains(&key.as_str())
                || key.starts_with("x-")
                || matches!(
                    key.as_str(),
                    "$ref"
                        | "const"
                        | "enum"
                        | "oneOf"
                        | "anyOf"
                        | "type"
                        | "items"
                        | "properties"
                        | "required"
                        | "additionalProperties"
                        | "minimum"
                        | "maximum"
                );
            if !known {
                return Err(self.unsupported(
                    &format!("{path}/{}", pointer_escape(key)),
                    format!("the keyword `{key}`"),
                ));
            }
        }
        if let Some(reference) = object.get("$ref") {
            return self.reference(object, reference, path);
        }
        if let Some(constant) = object.get("const") {
            return self.literal(constant, &format!("{path}/const"));
        }
        if let Some(values) = object.get("enum") {
            let values = values
                .as_array()
                .ok_or_else(|| self.unsupported(&format!("{path}/enum"), "a non-array `enum`"))?;
            let alternatives = values
                .iter()
                .enumerate()
                .map(|(index, value)| match value {
                    Value::Null => Ok(Ty::Null),
                    _ => self.literal(value, &format!("{path}/enum/{index}")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(union(alternatives));
        }
        for keyword in ["oneOf", "anyOf"] {
            if let Some(alternatives) = object.get(keyword) {
                if object.contains_key("type") || object.contains_key("properties") {
                    return Err(self.unsupported(
                        &format!("{path}/{keyword}"),
                        format!("`{keyword}` beside `type` or `properties`"),
                    ));
                }
                let alternatives = alternatives.as_array().ok_or_else(|| {
                    self.unsupported(&format!("{path}/{keyword}"), "a non-array union")
                })?;
                let alternatives = alternatives
                    .iter()
                    .enumerate()
                    .map(|(index, alt)| self.convert(alt, &format!("{path}/{keyword}/{index}")))
                    .collect::<Result<Vec<_>, _>>()?;
                return Ok(union(alternatives));
            }
        }
        match object.get("type") {
            None => {
                if object.contains_key("properties") {
                    self.object(object, path)
                } else {
                    Ok(Ty::Unknown)
                }
            }
            Some(Value::String(name)) => self.typed(object, name, path),
            Some(Value::Array(names)) => {
                let alternatives = names
                    .iter()
                    .enumerate()
                    .map(|(index, name)| match name {
                        Value::String(name) => self.typed(object, name, path),
                        _ => Err(self.unsupported(
                            &format!("{path}/type/{index}"),
                            "a type name that is not a string",
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(union(alternatives))
            }
            Some(_) => Err(self.unsupported(&format!("{path}/type"), "a malformed `type`")),
        }
    }

    fn reference(
        &self,
        object: &Map<String, Value>,
        reference: &Value,
        path: &str,
    ) -> Result<Ty, TypeScriptError> {
        let at = format!("{path}/$ref");
        let target = reference
            .as_str()
            .and_then(|reference| reference.strip_prefix("#/$defs/"))
            .filter(|name| !name.contains('/') && !name.contains('~'))
            .ok_or_else(|| {
                self.unsupported(
                    &at,
                    format!("the reference {reference} (only `#/$defs/Name` is supported)"),
                )
            })?;
        if let Some(extra) = object
            .keys()
            .find(|key| key.as_str() != "$ref" && !IGNORED.contains(&key.as_str()))
        {
            return Err(self.unsupported(
                &format!("{path}/{}", pointer_escape(extra)),
                format!("the keyword `{extra}` beside `$ref`"),
            ));
        }
        check_identifier(self.entry, target)?;
        Ok(Ty::Ref(target.to_owned()))
    }

    fn literal(&self, value: &Value, path: &str) -> Result<Ty, TypeScriptError> {
        match value {
            Value::String(_) | Value::Bool(_) => Ok(Ty::Literal(value.clone())),
            Value::Number(number) if number.as_f64().is_some_and(f64::is_finite) => {
                Ok(Ty::Literal(value.clone()))
            }
            Value::Null => Ok(Ty::Null),
            _ => Err(self.unsupported(path, format!("the constant {value}"))),
        }
    }

    fn typed(
        &self,
        object: &Map<String, Value>,
        name: &str,
        path: &str,
    ) -> Result<Ty, TypeScriptError> {
        let bound = |key: &str| object.get(key).and_then(Value::as_f64);
        match name {
            "null" => Ok(Ty::Null),
            "boolean" => Ok(Ty::Boolean),
            "string" => Ok(Ty::String),
            "integer" | "number" => Ok(Ty::Number {
                integer: name == "integer",
                minimum: bound("minimum"),
                maximum: bound("maximum"),
            }),
            "array" => match object.get("items") {
                None => Ok(Ty::Array(Box::new(Ty::Unknown))),
                Some(items) => Ok(Ty::Array(Box::new(
                    self.convert(items, &format!("{path}/items"))?,
                ))),
            },
            "object" => self.object(object, path),
            other => Err(self.unsupported(&format!("{path}/type"), format!("the type `{other}`"))),
        }
    }

    fn object(&self, object: &Map<String, Value>, path: &str) -> Result<Ty, TypeScriptError> {
        let properties = match object.get("properties") {
            None => None,
            Some(Value::Object(properties)) => Some(properties),
            Some(_) => {
                return Err(
                    self.unsupported(&format!("{path}/properties"), "non-object `properties`")
                );
            }
        };
        let additional = match object.get("additionalProperties") {
            None | Some(Value::Bool(_)) => None,
            Some(schema) => Some(schema),
        };
        if let Some(schema) = additional {
            if properties.is_some_and(|properties| !properties.is_empty()) {
                return Err(self.unsupported(
                    &format!("{path}/additionalProperties"),
                    "`properties` together with an `additionalProperties` schema (serde `flatten`)",
                ));
            }
            return Ok(Ty::Record(Box::new(
                self.convert(schema, &format!("{path}/additionalProperties"))?,
            )));
        }
        let required: Vec<&str> = match object.get("required") {
            None => Vec::new(),
            Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).collect(),
            Some(_) => {
                return Err(self.unsupported(&format!("{path}/required"), "non-array `required`"));
            }
        };
        let mut fields = Vec::new();
        for (name, schema) in properties.into_iter().flatten() {
            let ty = self.convert(
                schema,
                &format!("{path}/properties/{}", pointer_escape(name)),
            )?;
            fields.push(Field {
                name: name.clone(),
                ty,
                required: required.contains(&name.as_str()),
                doc: description(schema),
            });
        }
        // Declaration order as written in `required` first (the Rust field order for
        // required fields), then the optional ones by name: deterministic either way.
        fields.sort_by_key(|field| {
            (
                required
                    .iter()
                    .position(|name| *name == field.name)
                    .unwrap_or(usize::MAX),
                field.name.clone(),
            )
        });
        Ok(Ty::Object(fields))
    }
}

/// A union without duplicates; one alternative is itself.
fn union(alternatives: Vec<Ty>) -> Ty {
    let mut unique: Vec<Ty> = Vec::new();
    for alternative in alternatives {
        let flattened = match alternative {
            Ty::Union(inner) => inner,
            other => vec![other],
        };
        for ty in flattened {
            if !unique.contains(&ty) {
                unique.push(ty);
            }
        }
    }
    if unique.len() == 1 {
        unique.remove(0)
    } else {
        Ty::Union(unique)
    }
}

// ---------------------------------------------------------------------------------------
// Rendering

const HEADER: &str = "\
// Generated by factum-codegen from the schema registry. Do not edit.

/**
 * The domain's contracts: one interface per event version (`OrderPlacedV2`) and per
 * command, the named types they share, and `EventEnvelope`, a union discriminated on
 * `name` and `version`.
 *
 * Integers (64-bit ones included) are `number`, never `bigint`: `JSON.parse` yields
 * numbers, and integers beyond 2^53 - 1 lose precision. Timestamps and UUIDs are
 * `string`. An `Option` that is always written is a required `T | null`; one that may be
 * skipped is optional.
 *
 * Validation uses generated type guards (`isOrderPlacedV2`, `parseEventEnvelope`)
 * rather than zod or ajv, so that consumers need no runtime dependency. The guards check
 * types, required fields, enums and nested objects and arrays; they accept unknown extra
 * properties (readers stay open to additions) and do not check string formats. Only event
 * versions that still have a schema are in `EventEnvelope`; events stored with a retired
 * version must be upcast (read through factum) before they reach this module.
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
    entry_names: &[&String],
    events: &[(String, u64, String)],
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

    out.push_str("\n// The envelope\n\n");
    let (header, metadata) = envelope_types();
    render_declaration(&mut out, "EnvelopeMetadata", &metadata);
    out.push('\n');
    render_declaration(&mut out, "EnvelopeHeader", &header);
    out.push_str(
        "\n/** A stored event: its header, and its payload discriminated on `name` and `version`. */\n",
    );
    if events.is_empty() {
        out.push_str("export type EventEnvelope = never;\n");
    } else {
        out.push_str("export type EventEnvelope =\n");
        for (index, (name, version, ts)) in events.iter().enumerate() {
            let end = if index + 1 == events.len() { ";" } else { "" };
            let _ = writeln!(
                out,
                "  | (EnvelopeHeader & {{ name: {}; version: {version}; payload: {ts} }}){end}",
                json_string(name)
            );
        }
    }

    out.push_str("\n// Validation\n\n");
    out.push_str(HELPERS);
    let all = named
        .iter()
        .map(|(name, def)| (name.as_str(), &def.ty))
        .chain([
            ("EnvelopeMetadata", &metadata.ty),
            ("EnvelopeHeader", &header.ty),
        ]);
    for (name, ty) in all {
        out.push('\n');
        render_guard(&mut out, name, ty);
    }
    out.push('\n');
    render_envelope_check(&mut out, events);
    out
}

fn envelope_types() -> (Named, Named) {
    let field = |name: &str, ty: Ty, required: bool, doc: &str| Field {
        name: name.to_owned(),
        ty,
        required,
        doc: doc.to_owned(),
    };
    let nullable_string = || Ty::Union(vec![Ty::String, Ty::Null]);
    let natural = || Ty::Number {
        integer: true,
        minimum: Some(0.0),
        maximum: None,
    };
    let metadata = Named {
        ty: Ty::Object(vec![
            field(
                "correlation_id",
                nullable_string(),
                true,
                "Groups every message of one business transaction (a UUID).",
            ),
            field(
                "causation_id",
                nullable_string(),
                true,
                "The id of the message (a command's id) that caused this one (a UUID).",
            ),
            field("actor", nullable_string(), true, "Who acted."),
            field(
                "extra",
                Ty::Record(Box::new(Ty::Unknown)),
                false,
                "Free-form entries; absent when empty.",
            ),
        ]),
        doc: "Who and what caused an event.".to_owned(),
        origin: String::new(),
    };
    let header = Named {
        ty: Ty::Object(vec![
            field("event_id", Ty::String, true, "Unique id (a UUID v7)."),
            field(
                "stream_id",
                Ty::String,
                true,
                "The stream the event belongs to.",
            ),
            field(
                "stream_type",
                Ty::String,
                true,
                "The stream's type: the name of the aggregate that owns it.",
            ),
            field(
                "stream_version",
                natural(),
                true,
                "Position in the stream: 1, 2, 3 ... without gaps.",
            ),
            field(
                "position",
                natural(),
                true,
                "Position in the whole store: strictly increasing in commit order.",
            ),
            field(
                "timestamp",
                Ty::String,
                true,
                "When the event happened (RFC 3339, UTC).",
            ),
            field(
                "metadata",
                Ty::Ref("EnvelopeMetadata".to_owned()),
                true,
                "Correlation, causation, actor and free-form entries.",
            ),
        ]),
        doc: "The fields every stored event carries besides its name, version and payload."
            .to_owned(),
        origin: String::new(),
    };
    (header, metadata)
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
        Ty::String => "string".to_owned(),
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

fn render_guard(out: &mut String, name: &str, ty: &Ty) {
    let _ = writeln!(
        out,
        "function check{name}(value: unknown, path: string): string | null {{"
    );
    let mut emitter = Emitter {
        out: String::new(),
        counter: 0,
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

fn render_envelope_check(out: &mut String, events: &[(String, u64, String)]) {
    out.push_str(
        "function checkEventEnvelope(value: unknown, path: string): string | null {\n  \
         const header = checkEnvelopeHeader(value, path);\n  \
         if (header !== null) return header;\n  \
         const envelope = value as Record<string, unknown>;\n  \
         const name = envelope[\"name\"];\n  \
         const version = envelope[\"version\"];\n  \
         if (typeof name !== \"string\") return `${path}.name: expected a string, got ${describe(name)}`;\n  \
         if (typeof version !== \"number\") return `${path}.version: expected an integer, got ${describe(version)}`;\n  \
         const payload = envelope[\"payload\"];\n  \
         const payloadPath = `${path}.payload`;\n",
    );
    for (name, version, ts) in events {
        let _ = writeln!(
            out,
            "  if (name === {} && version === {version}) return check{ts}(payload, payloadPath);",
            json_string(name)
        );
    }
    out.push_str(
        "  return `${path}: unknown event ${JSON.stringify(name)} version ${version}`;\n}\n\n\
         /** Whether `value` is a valid `EventEnvelope`, payload included. */\n\
         export function isEventEnvelope(value: unknown): value is EventEnvelope {\n  \
         return checkEventEnvelope(value, \"$\") === null;\n}\n\n\
         /**\n * Checks that `value` (e.g. from `JSON.parse`) is a valid `EventEnvelope` and returns it.\n *\n \
         * @throws Error naming the path of the first mismatch, e.g.\n \
         * `$.payload.lines[0].quantity: expected an integer, got string \"2\"`.\n */\n\
         export function parseEventEnvelope(value: unknown): EventEnvelope {\n  \
         const error = checkEventEnvelope(value, \"$\");\n  \
         if (error !== null) throw new Error(`invalid event envelope: ${error}`);\n  \
         return value as EventEnvelope;\n}\n",
    );
}

/// Emits statements that `return` an error message when a value does not match a type.
struct Emitter {
    out: String,
    counter: usize,
}

impl Emitter {
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
            Ty::String => self.fail(
                depth,
                value,
                path,
                &format!("typeof {value} !== \"string\""),
                "a string",
            ),
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
                } else {
                    self.fail(
                        depth,
                        value,
                        path,
                        &format!("typeof {value} !== \"number\" || !Number.isFinite({value})"),
                        "a number",
                    );
                }
                if let Some(minimum) = minimum {
                    self.fail(
                        depth,
                        value,
                        path,
                        &format!("{value} < {minimum}"),
                        &format!("a number >= {minimum}"),
                    );
                }
                if let Some(maximum) = maximum {
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
                self.line(
                    depth,
                    &format!("for (let i{n} = 0; i{n} < {value}.length; i{n}++) {{"),
                );
                self.line(depth + 1, &format!("const v{n}: unknown = {value}[i{n}];"));
                self.line(
                    depth + 1,
                    &format!("const p{n} = `${{{path}}}[${{i{n}}}]`;"),
                );
                self.check(inner, &format!("v{n}"), &format!("p{n}"), depth + 1);
                self.line(depth, "}");
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
                self.line(
                    depth,
                    &format!("for (const k{n} of Object.keys({value})) {{"),
                );
                self.line(depth + 1, &format!("const v{n}: unknown = {value}[k{n}];"));
                self.line(
                    depth + 1,
                    &format!("const p{n} = `${{{path}}}[${{JSON.stringify(k{n})}}]`;"),
                );
                self.check(inner, &format!("v{n}"), &format!("p{n}"), depth + 1);
                self.line(depth, "}");
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

/// The field every alternative has, required, with a distinct constant string.
fn discriminator(alternatives: &[Ty]) -> Option<String> {
    let Some(Ty::Object(first)) = alternatives.first() else {
        return None;
    };
    first
        .iter()
        .filter(|field| field.required && matches!(field.ty, Ty::Literal(Value::String(_))))
        .map(|field| field.name.clone())
        .find(|tag| {
            let mut seen = Vec::new();
            alternatives.iter().all(|alt| {
                let Ty::Object(fields) = alt else {
                    return false;
                };
                fields.iter().any(|field| {
                    field.required
                        && field.name == *tag
                        && match &field.ty {
                            Ty::Literal(Value::String(value)) if !seen.contains(value) => {
                                seen.push(value.clone());
                                true
                            }
                            _ => false,
                        }
                })
            })
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(name: &str, version: u64, schema: Value) -> Value {
        json!({"kind": "event", "name": name, "version": version, "doc": "", "schema": schema})
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
    fn maps_nullables_and_tagged_unions_have_their_typescript_shapes() {
        let registry = json!({"entries": [event("Shaped", 1, json!({
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
        assert!(module.contains(
            "export interface ShapedV1 {\n  tags: Record<string, string>;\n  note: string | null;\n  at: string;\n  shape: Shape;\n  size?: \"S\" | \"M\";\n}"
        ), "{module}");
        assert!(
            module.contains(
                "export type Shape =\n  | { kind: \"Circle\"; r: number }\n  | { kind: \"Square\" };"
            ),
            "{module}"
        );
        assert!(module.contains("const tag"), "{module}");
    }
}
