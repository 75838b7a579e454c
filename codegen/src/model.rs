//! The parts the generators share: reading the registry's entries, and the
//! language-neutral type model built from their JSON Schemas (`$defs` included), with
//! naming rules and collision detection. Each generator keeps its rendering and its
//! language's rules ([`Language`]).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Number, Value};

/// Why the model could not be built; each generator turns it into its public error type,
/// variant for variant.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ModelError {
    /// The input is not a serialised registry.
    MalformedRegistry { path: String, message: String },
    /// A schema uses a construct without a faithful mapping.
    Unsupported {
        entry: String,
        path: String,
        construct: String,
    },
    /// Two different shapes would get the same name.
    NameCollision {
        name: String,
        first: String,
        second: String,
    },
    /// A name is not usable in the target language.
    InvalidName { entry: String, name: String },
}

/// Implements `From<ModelError>` for a generator's error enum with the same four variants.
macro_rules! from_model_error {
    ($error:ident) => {
        impl From<$crate::model::ModelError> for $error {
            fn from(error: $crate::model::ModelError) -> Self {
                use $crate::model::ModelError;
                match error {
                    ModelError::MalformedRegistry { path, message } => {
                        Self::MalformedRegistry { path, message }
                    }
                    ModelError::Unsupported {
                        entry,
                        path,
                        construct,
                    } => Self::Unsupported {
                        entry,
                        path,
                        construct,
                    },
                    ModelError::NameCollision {
                        name,
                        first,
                        second,
                    } => Self::NameCollision {
                        name,
                        first,
                        second,
                    },
                    ModelError::InvalidName { entry, name } => Self::InvalidName { entry, name },
                }
            }
        }
    };
}
pub(crate) use from_model_error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Event,
    Command,
}

/// One registry entry, as the generators read it.
pub(crate) struct Entry {
    pub(crate) kind: Kind,
    pub(crate) name: String,
    pub(crate) version: u64,
    /// The aggregates handling it (read only when asked for).
    pub(crate) aggregates: Vec<String>,
    pub(crate) doc: String,
    pub(crate) schema: Value,
}

impl Entry {
    /// `event OrderPlaced v2` or `command PlaceOrder`.
    pub(crate) fn label(&self) -> String {
        match self.kind {
            Kind::Event => format!("event {} v{}", self.name, self.version),
            Kind::Command => format!("command {}", self.name),
        }
    }

    /// The generated type's name: `OrderPlacedV2` or `PlaceOrder`.
    pub(crate) fn type_name(&self) -> String {
        match self.kind {
            Kind::Event => format!("{}V{}", self.name, self.version),
            Kind::Command => self.name.clone(),
        }
    }
}

fn malformed(path: impl Into<String>, message: impl Into<String>) -> ModelError {
    ModelError::MalformedRegistry {
        path: path.into(),
        message: message.into(),
    }
}

/// The entries of a registry document, sorted by kind, name and version. Commands are
/// version 1. `aggregates` is read (and checked) only when `with_aggregates`.
pub(crate) fn parse_entries(
    registry: &Value,
    with_aggregates: bool,
) -> Result<Vec<Entry>, ModelError> {
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
        let aggregates = match raw.get("aggregates") {
            _ if !with_aggregates => Vec::new(),
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => {
                let mut names = BTreeSet::new();
                for (position, name) in list.iter().enumerate() {
                    let name = name.as_str().ok_or_else(|| {
                        malformed(at(&format!("aggregates/{position}")), "expected a string")
                    })?;
                    names.insert(name.to_owned());
                }
                names.into_iter().collect()
            }
            Some(_) => return Err(malformed(at("aggregates"), "expected an array of strings")),
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
            aggregates,
            doc,
            schema,
        });
    }
    entries.sort_by(|a, b| (a.kind, &a.name, a.version).cmp(&(b.kind, &b.name, b.version)));
    Ok(entries)
}

/// Escapes one JSON pointer segment.
pub(crate) fn pointer_escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// The keyword factum marks a personal field's property with (`factum::registry`).
const PERSONAL_KEYWORD: &str = "x-factum-personal";
/// The keyword factum marks the data subject's property with.
const SUBJECT_KEYWORD: &str = "x-factum-subject";

/// A property's doc: its description, and what it is under the personal-data marks, so
/// that a reader of the generated contract knows which fields may read as redacted.
pub(crate) fn field_doc(schema: &Value) -> String {
    let marked = |keyword: &str| schema.get(keyword) == Some(&Value::Bool(true));
    let note = if marked(SUBJECT_KEYWORD) {
        "The data subject: whose personal data the event holds."
    } else if marked(PERSONAL_KEYWORD) {
        "Personal data: stored sealed under the data subject's key; reads as its redacted \
         value once the subject is forgotten."
    } else {
        return description(schema);
    };
    let mut doc = description(schema);
    if !doc.is_empty() {
        doc.push_str("\n\n");
    }
    doc.push_str(note);
    doc
}

/// A schema's `description`, or nothing.
pub(crate) fn description(schema: &Value) -> String {
    schema
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// What a target language decides while the model is built.
pub(crate) trait Language {
    /// Names the generated module defines itself; no entry or definition may take them.
    const RESERVED: &'static [&'static str];
    /// Whether strings keep their `format` (`Ty::String(Some(..))`).
    const STRING_FORMATS: bool;
    /// Whether an entry's schema must be an object.
    const OBJECT_ENTRIES: bool;

    /// Whether `name` may name a generated type.
    fn is_type_name(name: &str) -> bool;
    /// Whether a numeric constant has a faithful literal.
    fn number_literal(number: &Number) -> bool;
    /// How a constant without a faithful literal is described.
    fn unsupported_constant(value: &Value) -> String;
}

/// A named type: a definition or an entry.
pub(crate) struct Named {
    pub(crate) ty: Ty,
    pub(crate) doc: String,
    pub(crate) origin: String,
}

/// The model of a registry: the named types, the entries' names, and the envelope.
pub(crate) struct Model {
    /// Every named type, definitions and entries, by name.
    pub(crate) named: BTreeMap<String, Named>,
    /// The envelope around every event.
    pub(crate) envelope: Envelope,
    /// The events: (name, version, type name), in entry order.
    pub(crate) events: Vec<(String, u64, String)>,
    /// The commands' type names, in entry order.
    pub(crate) commands: Vec<String>,
    /// The stream types the events belong to (their entries' `aggregates`), sorted.
    pub(crate) stream_types: Vec<String>,
}

/// Builds the model of a serialised registry for a language.
pub(crate) fn build<L: Language>(registry_json: &Value) -> Result<Model, ModelError> {
    let entries = parse_entries(registry_json, true)?;
    let stream_types: BTreeSet<String> = entries
        .iter()
        .filter(|entry| entry.kind == Kind::Event)
        .flat_map(|entry| entry.aggregates.iter().cloned())
        .collect();
    let mut named: BTreeMap<String, Named> = BTreeMap::new();
    for name in L::RESERVED {
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
        let converter = Converter::<L> {
            entry: &label,
            language: std::marker::PhantomData,
        };
        if let Some(defs) = entry.schema.get("$defs") {
            let defs = defs
                .as_object()
                .ok_or_else(|| converter.unsupported("/$defs", "`$defs` that is not an object"))?;
            for (name, schema) in defs {
                check_identifier::<L>(&label, name)?;
                let path = format!("/$defs/{}", pointer_escape(name));
                let ty = converter.convert(schema, &path)?;
                insert_named::<L>(&mut named, name, ty, description(schema), &label)?;
            }
        }
        let type_name = entry.type_name();
        check_identifier::<L>(&label, &type_name)?;
        let ty = converter.convert(&entry.schema, "")?;
        if L::OBJECT_ENTRIES && !matches!(ty, Ty::Object(_)) {
            return Err(converter.unsupported("", "an entry schema that is not an object"));
        }
        insert_named::<L>(&mut named, &type_name, ty, entry.doc.clone(), &label)?;
        if entry.kind == Kind::Event {
            events.push((entry.name.clone(), entry.version, type_name));
        } else {
            commands.push(type_name);
        }
    }
    for name in L::RESERVED {
        named.remove(*name);
    }
    let envelope = envelope::<L>(registry_json)?;
    for (name, _) in &envelope.defs {
        if let Some(existing) = named.get(name) {
            return Err(ModelError::NameCollision {
                name: name.clone(),
                first: ENVELOPE_ORIGIN.to_owned(),
                second: existing.origin.clone(),
            });
        }
    }
    Ok(Model {
        named,
        envelope,
        events,
        commands,
        stream_types: stream_types.into_iter().collect(),
    })
}

/// Where the envelope's types come from, in errors.
pub(crate) const ENVELOPE_ORIGIN: &str = "the envelope (factum::envelope::envelope_schema)";

/// The keyword marking the envelope's event name, version and payload properties.
const ROLE: &str = "x-factum-envelope";

/// The envelope around every event, read from the registry document's `envelope`: the
/// JSON Schema of `factum::envelope::RecordedEvent` as it serialises. Nothing of it is
/// hard-coded here: the properties holding the event's name, version and payload are
/// found by their `x-factum-envelope` role, and every other property is the header.
pub(crate) struct Envelope {
    /// The property holding the event name (`name`).
    pub(crate) name: String,
    /// The property holding the event version (`schema_version`).
    pub(crate) version: String,
    /// The property holding the payload (`payload`).
    pub(crate) payload: String,
    /// The property holding the stream type (`stream_type`), marked `"stream_type"`: the
    /// name of the aggregate owning the stream. Optional here (AsyncAPI does not need it);
    /// the TypeScript and Python generators require it, to tell "not mine".
    pub(crate) stream_type: Option<String>,
    /// The name and version properties' own types (their bounds included).
    pub(crate) role_types: [Ty; 2],
    /// The docs of the name, version and payload properties, in that order.
    pub(crate) role_docs: [String; 3],
    /// Every other property, in the serializer's order.
    pub(crate) header: Vec<Field>,
    /// The envelope's description.
    pub(crate) doc: String,
    /// The types the envelope defines (`$defs`, e.g. `EnvelopeMetadata`), by name.
    pub(crate) defs: Vec<(String, Named)>,
}

/// The envelope schema of a registry document, checked: an object schema whose name and
/// version properties are a required string and a required integer, with a required
/// payload.
pub(crate) fn envelope_schema(registry_json: &Value) -> Result<&Map<String, Value>, ModelError> {
    let schema = registry_json
        .get("envelope")
        .ok_or_else(|| {
            malformed(
                "/envelope",
                "missing: the registry document carries the envelope's schema \
                 (factum::envelope::envelope_schema) since factum 0.1; regenerate it",
            )
        })?
        .as_object()
        .ok_or_else(|| malformed("/envelope", "expected a JSON Schema object"))?;
    for role in ["name", "version", "payload"] {
        role_property(schema, role)?;
    }
    Ok(schema)
}

/// The property of the envelope with `role`, checked as the role requires.
pub(crate) fn role_property<'a>(
    schema: &'a Map<String, Value>,
    role: &str,
) -> Result<&'a str, ModelError> {
    let properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .ok_or_else(|| malformed("/envelope/properties", "expected an object"))?;
    let mut found = properties
        .iter()
        .filter(|(_, property)| property.get(ROLE).and_then(Value::as_str) == Some(role));
    let (name, property) = found.next().ok_or_else(|| {
        malformed(
            "/envelope/properties",
            format!("no property is marked `\"{ROLE}\": \"{role}\"`"),
        )
    })?;
    let at = format!("/envelope/properties/{}", pointer_escape(name));
    if found.next().is_some() {
        return Err(malformed(
            "/envelope/properties",
            format!("two properties are marked `\"{ROLE}\": \"{role}\"`"),
        ));
    }
    let required = schema
        .get("required")
        .and_then(Value::as_array)
        .is_some_and(|required| required.iter().any(|item| item == name.as_str()));
    if !required {
        return Err(malformed(
            at,
            "the envelope's name, version and payload are required",
        ));
    }
    let expected = match role {
        "name" | "stream_type" => Some("string"),
        "version" => Some("integer"),
        _ => None,
    };
    if let Some(expected) = expected
        && property.get("type").and_then(Value::as_str) != Some(expected)
    {
        return Err(malformed(
            at,
            format!("expected a schema of type `{expected}`"),
        ));
    }
    Ok(name)
}

/// The envelope's stream-type property: the TypeScript and Python contracts need it to tell
/// "not mine".
pub(crate) fn stream_type_property(envelope: &Envelope) -> Result<String, ModelError> {
    envelope.stream_type.clone().ok_or_else(|| {
        malformed(
            "/envelope/properties",
            format!(
                "no property is marked `\"{ROLE}\": \"stream_type\"` (the registry of \
                 factum::registry::Registry marks it); regenerate the registry"
            ),
        )
    })
}

/// The property of the envelope with `role`, when one is marked; checked as a required
/// string.
pub(crate) fn optional_role_property<'a>(
    schema: &'a Map<String, Value>,
    role: &str,
) -> Result<Option<&'a str>, ModelError> {
    let marked = schema
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|properties| {
            properties
                .values()
                .any(|property| property.get(ROLE).and_then(Value::as_str) == Some(role))
        });
    if marked {
        role_property(schema, role).map(Some)
    } else {
        Ok(None)
    }
}

/// Builds the [`Envelope`] of a registry document for a language.
fn envelope<L: Language>(registry_json: &Value) -> Result<Envelope, ModelError> {
    let schema = envelope_schema(registry_json)?;
    let name = role_property(schema, "name")?.to_owned();
    let version = role_property(schema, "version")?.to_owned();
    let payload = role_property(schema, "payload")?.to_owned();
    let stream_type = optional_role_property(schema, "stream_type")?.map(str::to_owned);
    let roles = [name.as_str(), version.as_str(), payload.as_str()];
    let role_docs = roles.map(|role| description(&schema["properties"][role]));
    let label = "the envelope";
    let converter = Converter::<L> {
        entry: label,
        language: std::marker::PhantomData,
    };
    let role_types = [&name, &version].map(|role| {
        converter.convert(
            &schema["properties"][role.as_str()],
            &format!("/properties/{}", pointer_escape(role)),
        )
    });
    let [name_ty, version_ty] = role_types;
    let role_types = [name_ty?, version_ty?];
    let mut defs = Vec::new();
    if let Some(found) = schema.get("$defs") {
        let found = found
            .as_object()
            .ok_or_else(|| malformed("/envelope/$defs", "expected an object"))?;
        for (def, def_schema) in found {
            check_identifier::<L>(label, def)?;
            let path = format!("/$defs/{}", pointer_escape(def));
            defs.push((
                def.clone(),
                Named {
                    ty: converter.convert(def_schema, &path)?,
                    doc: description(def_schema),
                    origin: ENVELOPE_ORIGIN.to_owned(),
                },
            ));
        }
    }
    // The header: the envelope without its name, version and payload.
    let mut header = schema.clone();
    header.remove("$defs");
    if let Some(Value::Object(properties)) = header.get_mut("properties") {
        for role in roles {
            properties.remove(role);
        }
    }
    if let Some(Value::Array(required)) = header.get_mut("required") {
        required.retain(|item| !roles.iter().any(|role| item == *role));
    }
    let Ty::Object(header) = converter.convert(&Value::Object(header), "")? else {
        return Err(malformed("/envelope", "expected an object schema"));
    };
    Ok(Envelope {
        name,
        version,
        payload,
        stream_type,
        role_types,
        role_docs,
        header,
        doc: description(&Value::Object(schema.clone())),
        defs,
    })
}

/// `name` as a type name, or [`ModelError::InvalidName`].
pub(crate) fn check_identifier<L: Language>(entry: &str, name: &str) -> Result<(), ModelError> {
    if L::is_type_name(name) {
        Ok(())
    } else {
        Err(ModelError::InvalidName {
            entry: entry.to_owned(),
            name: name.to_owned(),
        })
    }
}

fn insert_named<L: Language>(
    named: &mut BTreeMap<String, Named>,
    name: &str,
    ty: Ty,
    doc: String,
    origin: &str,
) -> Result<(), ModelError> {
    match named.get(name) {
        Some(existing) if existing.ty == ty && !L::RESERVED.contains(&name) => Ok(()),
        Some(existing) => Err(ModelError::NameCollision {
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

/// The shape of a schema.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ty {
    Unknown,
    Null,
    Boolean,
    /// A string, with its `format` when the language keeps it ([`Language::STRING_FORMATS`]).
    String(Option<String>),
    /// A number; the bounds are exact (`u64::MAX` is not rounded to 2^64).
    Number {
        integer: bool,
        minimum: Option<Number>,
        maximum: Option<Number>,
    },
    /// A JSON constant (string, number, boolean).
    Literal(Value),
    Array(Box<Ty>),
    /// `additionalProperties`: a map with string keys.
    Record(Box<Ty>),
    Ref(String),
    Object(Vec<Field>),
    Union(Vec<Ty>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Field {
    pub(crate) name: String,
    pub(crate) ty: Ty,
    pub(crate) required: bool,
    pub(crate) doc: String,
}
/// Keywords that only annotate or constrain beyond what the generated types express.
pub(crate) const IGNORED: &[&str] = &[
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

struct Converter<'a, L> {
    entry: &'a str,
    language: std::marker::PhantomData<L>,
}

impl<L: Language> Converter<'_, L> {
    fn unsupported(&self, path: &str, construct: impl Into<String>) -> ModelError {
        ModelError::Unsupported {
            entry: self.entry.to_owned(),
            path: if path.is_empty() {
                "/".to_owned()
            } else {
                path.to_owned()
            },
            construct: construct.into(),
        }
    }

    fn convert(&self, schema: &Value, path: &str) -> Result<Ty, ModelError> {
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
    ) -> Result<Ty, ModelError> {
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
        check_identifier::<L>(self.entry, target)?;
        Ok(Ty::Ref(target.to_owned()))
    }

    fn literal(&self, value: &Value, path: &str) -> Result<Ty, ModelError> {
        match value {
            Value::String(_) | Value::Bool(_) => Ok(Ty::Literal(value.clone())),
            Value::Number(number) if L::number_literal(number) => Ok(Ty::Literal(value.clone())),
            Value::Null => Ok(Ty::Null),
            _ => Err(self.unsupported(path, L::unsupported_constant(value))),
        }
    }

    /// A number type: the schema's own bounds, else those of its format.
    fn number(
        &self,
        object: &Map<String, Value>,
        name: &str,
        low: Option<Number>,
        high: Option<Number>,
    ) -> Ty {
        let bound = |key: &str| match object.get(key) {
            Some(Value::Number(number)) => Some(number.clone()),
            _ => None,
        };
        Ty::Number {
            integer: name == "integer",
            minimum: bound("minimum").or(low),
            maximum: bound("maximum").or(high),
        }
    }

    fn typed(&self, object: &Map<String, Value>, name: &str, path: &str) -> Result<Ty, ModelError> {
        match name {
            "null" => Ok(Ty::Null),
            "boolean" => Ok(Ty::Boolean),
            "string" => Ok(Ty::String(if L::STRING_FORMATS {
                object
                    .get("format")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            } else {
                None
            })),
            "integer" | "number" => {
                // schemars bounds `u8`, `u16`, `i8`, `i16` but gives wider integers only a
                // format: their bounds are exact in every language (serde refuses 2^64 for
                // a `u64`), so they are checked, as exact integers.
                let (low, high) = match object.get("format").and_then(Value::as_str) {
                    Some("uint32") => (Number::from(0), Number::from(u32::MAX)),
                    Some("int32") => (Number::from(i32::MIN), Number::from(i32::MAX)),
                    Some("uint64" | "uint") => (Number::from(0), Number::from(u64::MAX)),
                    Some("int64" | "int") => (Number::from(i64::MIN), Number::from(i64::MAX)),
                    _ => return Ok(self.number(object, name, None, None)),
                };
                Ok(self.number(object, name, Some(low), Some(high)))
            }
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

    fn object(&self, object: &Map<String, Value>, path: &str) -> Result<Ty, ModelError> {
        let properties = match object.get("properties") {
            None => None,
            Some(Value::Object(properties)) => Some(properties),
            Some(_) => {
                return Err(
                    self.unsupported(&format!("{path}/properties"), "non-object `properties`")
                );
            }
        };
        let no_properties = properties.is_none_or(Map::is_empty);
        let additional = match object.get("additionalProperties") {
            // A map of anything (`BTreeMap<String, serde_json::Value>`).
            Some(schema @ Value::Bool(true)) if no_properties => Some(schema),
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
            // A required property that may be null is an `Option` serde always writes;
            // serde reads it when absent too (as `None`), so readers must accept that.
            let required = required.contains(&name.as_str()) && !admits_null(&ty);
            fields.push(Field {
                name: name.clone(),
                ty,
                required,
                doc: field_doc(schema),
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

/// Whether `null` is one of the type's values, explicitly (not `Unknown`: serde does not
/// read an absent `serde_json::Value` as null).
pub(crate) fn admits_null(ty: &Ty) -> bool {
    match ty {
        Ty::Null => true,
        Ty::Union(alternatives) => alternatives.contains(&Ty::Null),
        _ => false,
    }
}

/// A union without duplicates; one alternative is itself.
pub(crate) fn union(alternatives: Vec<Ty>) -> Ty {
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

/// The field every alternative has, required, with a distinct constant string.
pub(crate) fn discriminator(alternatives: &[Ty]) -> Option<String> {
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

/// Converts an OpenAPI document's component schemas (references
/// `#/components/schemas/Name`) for a language; a name the language cannot spell (the
/// document's `Owner.Name`) has its dots turned into underscores.
pub(crate) fn convert_components<L: Language>(
    components: &Map<String, Value>,
) -> Result<BTreeMap<String, Named>, ModelError> {
    let mut named = BTreeMap::new();
    for (name, schema) in components {
        let type_name = component_type_name(name);
        let label = format!("component {name}");
        check_identifier::<L>(&label, &type_name)?;
        let converter = Converter::<L> {
            entry: &label,
            language: std::marker::PhantomData,
        };
        let ty = converter.convert(&component_refs(schema), "")?;
        insert_named::<L>(&mut named, &type_name, ty, description(schema), &label)?;
    }
    Ok(named)
}

/// Converts one inline schema of an OpenAPI document (its references to components).
pub(crate) fn convert_inline<L: Language>(schema: &Value, label: &str) -> Result<Ty, ModelError> {
    Converter::<L> {
        entry: label,
        language: std::marker::PhantomData,
    }
    .convert(&component_refs(schema), "")
}

/// The type name of the component `name`.
pub(crate) fn component_type_name(name: &str) -> String {
    name.replace('.', "_")
}

/// `schema` with its references to components written as the converter reads them.
fn component_refs(schema: &Value) -> Value {
    match schema {
        Value::Object(members) => Value::Object(
            members
                .iter()
                .map(|(key, value)| {
                    let value = match (key.as_str(), value) {
                        ("$ref", Value::String(target)) => {
                            Value::String(target.strip_prefix("#/components/schemas/").map_or_else(
                                || target.clone(),
                                |name| format!("#/$defs/{}", component_type_name(name)),
                            ))
                        }
                        _ => component_refs(value),
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(component_refs).collect()),
        other => other.clone(),
    }
}
