//! Python contracts (pydantic v2) generated from a domain's schema registry.
//!
//! [`python`] reads the registry as JSON (the serialised `factum::registry::Registry`:
//! `{"entries": [{"kind", "name", "version", "doc", "schema", ...}]}`), like
//! [`typescript`](crate::typescript), and emits one deterministic Python 3.11 module, for
//! pydantic 2.9+, that type-checks under `mypy --strict`:
//!
//! * a `BaseModel` per event version (`OrderPlacedV2`) and per command (`PlaceOrder`), with
//!   the Rust doc comments as docstrings (class docstrings and attribute docstrings, which
//!   pydantic turns into field descriptions);
//! * a model or type alias per schema definition (`$defs`), shared by every entry;
//! * one envelope model per event version (`OrderPlacedV2Event`, with the header fields,
//!   `name: Literal["OrderPlaced"]`, `schema_version: Literal[2]` and
//!   `payload: OrderPlacedV2`), combined into `EventEnvelope` by *nested* discriminated
//!   unions: on `name`, then, for names with several versions, on `schema_version`
//!   (`OrderPlacedEvent`). The header and its definitions (`EnvelopeHeader`,
//!   `EnvelopeMetadata`) and the names of those three fields come from the registry
//!   document's `envelope`, the JSON Schema of `factum::envelope::RecordedEvent` as the Rust
//!   serializer writes it; nothing of the envelope is written here. Nesting keeps every
//!   discriminator a plain `Literal` field, which pydantic checks declaratively and mypy
//!   narrows on (`isinstance`, `match`, or `event.name == ...`), where a callable
//!   `Discriminator` for the composite key would be untyped Python code;
//! * `parse_event_envelope(data: object)` and `parse_event_envelope_json(data)`, through a
//!   `TypeAdapter`, raising `pydantic.ValidationError` naming the location of each
//!   mismatch, `read_envelope(data)` for any envelope factum delivers (an `EventEnvelope`
//!   of our `STREAM_TYPES`, or a `ForeignEnvelope`), and `event_envelope_to_json(event)`.
//!
//! Models are strict (no `"2"` for an integer, no `1` for a boolean; timestamps and UUIDs
//! are parsed from strings only) and keep unknown properties: readers stay open to
//! additions. `event_envelope_to_json` writes back what was read: the fields, their order
//! and each timestamp's text. The module needs Python [`MINIMUM_PYTHON`] (3.11).
//!
//! Type mappings: integers (`u64` included) are `int` (with `ge`/`le` from the schema's
//! bounds, or, exactly, from the `uint32`/`int32`/`uint64`/`int64` formats schemars gives
//! wider integers), numbers `float`, `date-time` strings `AwareDatetime`, `uuid` strings
//! `UUID`, `date` strings `date`, other strings `str`; an `Option` that is always written
//! is `T | None = None` (serde reads an absent one as `None`), one that may be skipped is
//! `T | None = None` that refuses `null`; maps are
//! `dict[str, T]`; unit enums are `Literal[...]`; `oneOf` of objects sharing a constant
//! tag (serde's `tag = "..."`) are `Annotated[A | B, Field(discriminator=...)]`, with one
//! model per variant (`ShapeCircle`); other unions are plain (smart-mode) unions; an empty
//! schema is `JsonValue`. Constructs without a faithful mapping (tuples / `prefixItems`,
//! `allOf`, `not`, conditionals, `patternProperties`, properties mixed with
//! `additionalProperties` schemas, non-integer constants, references outside
//! `#/$defs/`) are refused with a [`PythonError::Unsupported`] naming the entry and the
//! JSON pointer. Property names that are not Python identifiers (or are keywords, or
//! shadow `BaseModel` attributes) get a sanitised attribute name and a pydantic alias.
//!
//! ```
//! use serde_json::json;
//!
//! let registry = json!({"envelope": factum::registry::Registry::builder().build().unwrap().envelope().clone(), "entries": [{
//!     "kind": "event", "name": "Opened", "version": 1, "doc": "An account was opened.",
//!     "schema": {"type": "object", "properties": {"owner": {"type": "string"}},
//!                "required": ["owner"]}
//! }]});
//! let module = factum_codegen::python::python(&registry).unwrap();
//! assert!(module.contains(
//!     "class OpenedV1(FactumModel):\n    \"\"\"An account was opened.\"\"\"\n\n    owner: str\n"
//! ));
//! assert!(module.contains("def parse_event_envelope(data: object) -> EventEnvelope:"));
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::{Number, Value};

use crate::model::{
    self, ENVELOPE_ORIGIN, Envelope, Field, Language, Model, Named, Ty, discriminator,
    from_model_error, pointer_escape,
};

/// Why no Python module could be generated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PythonError {
    /// The input is not a serialised registry.
    #[error("the registry JSON is malformed at {path}: {message}")]
    MalformedRegistry {
        /// Where in the registry JSON.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A schema uses a construct without a faithful Python mapping.
    #[error("{entry}: unsupported schema construct at {path}: {construct}")]
    Unsupported {
        /// The entry, e.g. `event OrderPlaced v2` or `command PlaceOrder`.
        entry: String,
        /// The JSON pointer inside the entry's schema.
        path: String,
        /// What was found.
        construct: String,
    },
    /// Two different shapes would get the same Python name.
    #[error(
        "two different shapes are named `{name}` (from {first} and {second}): rename one of the Rust types"
    )]
    NameCollision {
        /// The Python name.
        name: String,
        /// The entry that defined it first.
        first: String,
        /// The entry with the other shape.
        second: String,
    },
    /// A name is not usable as a Python class name.
    #[error("{entry}: `{name}` is not a valid Python class name")]
    InvalidName {
        /// The entry.
        entry: String,
        /// The name.
        name: String,
    },
}

/// Names the generated module defines or imports itself; no entry or definition may take
/// them.
const RESERVED: &[&str] = &[
    "EventEnvelope",
    "EnvelopeHeader",
    "FactumModel",
    "ForeignEnvelope",
];

const KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield", "match", "case", "type",
];

/// Names the module imports or uses unqualified.
const BUILTINS: &[&str] = &[
    "Annotated",
    "Any",
    "InitErrorDetails",
    "ModelWrapValidatorHandler",
    "PrivateAttr",
    "PydanticCustomError",
    "STREAM_TYPES",
    "Self",
    "SerializerFunctionWrapHandler",
    "ValidationError",
    "ValidatorFunctionWrapHandler",
    "WrapValidator",
    "model_serializer",
    "model_validator",
    "AwareDatetime",
    "BaseModel",
    "BeforeValidator",
    "ConfigDict",
    "Field",
    "JsonValue",
    "Literal",
    "Never",
    "PlainSerializer",
    "Strict",
    "TypeAdapter",
    "TypeAlias",
    "UUID",
    "Union",
    "annotations",
    "bool",
    "bytes",
    "date",
    "datetime",
    "dict",
    "float",
    "int",
    "isinstance",
    "list",
    "object",
    "str",
    "timedelta",
];

/// `BaseModel` attributes a field must not shadow.
const SHADOWED: &[&str] = &[
    "construct",
    "copy",
    "dict",
    "from_orm",
    "json",
    "parse_file",
    "parse_obj",
    "parse_raw",
    "schema",
    "schema_json",
    "update_forward_refs",
    "validate",
];

/// Generates the Python module for a serialised registry.
///
/// The output depends only on the registry's content: entries are sorted by kind, name and
/// version, definitions by name.
pub fn python(registry_json: &Value) -> Result<String, PythonError> {
    let Model {
        named,
        envelope,
        events,
        commands,
        stream_types,
    } = model::build::<Python>(registry_json)?;
    let stream_type = model::stream_type_property(&envelope)?;
    let entry_names: Vec<String> = events
        .iter()
        .map(|(_, _, py)| py.clone())
        .chain(commands.iter().cloned())
        .collect();
    Renderer::new(&named).render(
        &envelope,
        &entry_names,
        &events,
        &(stream_type, stream_types),
    )
}

from_model_error!(PythonError);

/// Python's rules for the shared model.
struct Python;

impl Language for Python {
    const RESERVED: &'static [&'static str] = RESERVED;
    const STRING_FORMATS: bool = true;
    const OBJECT_ENTRIES: bool = true;

    fn is_type_name(name: &str) -> bool {
        is_identifier(name) && !KEYWORDS.contains(&name) && !BUILTINS.contains(&name)
    }

    fn number_literal(number: &Number) -> bool {
        number.is_i64() || number.is_u64()
    }

    fn unsupported_constant(value: &Value) -> String {
        format!("the constant {value} (Python `Literal` takes strings, integers and booleans)")
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

// ---------------------------------------------------------------------------------------
// Rendering

/// The minimum Python version of the generated module (`typing.Never`, `typing.Self`).
pub const MINIMUM_PYTHON: &str = "3.11";

const HEADER: &str = r#"# Generated by factum-codegen from the schema registry. Do not edit.
"""The domain's contracts, as pydantic v2 models. Requires Python 3.11+ and pydantic 2.9+.

One model per event version (``OrderPlacedV2``) and per command, the models and aliases
they share, and ``EventEnvelope``: a stored event as factum writes it (read back from a
store, published on the bus), discriminated on the event's name and then on its version
(one ``...Event`` model per event version, with the envelope header).

Reading: ``read_envelope(data)`` takes any envelope factum delivers and returns an
``EventEnvelope`` for our stream types (``STREAM_TYPES``), fully checked, or a
``ForeignEnvelope`` (the header, the payload as a JSON value) for another stream type.
An envelope of our stream types that does not parse raises, never counts as foreign.
``parse_event_envelope(data)`` accepts our stream types only.

Models are strict: an integer must be a JSON integer, a string a JSON string; timestamps
(``AwareDatetime``) and UUIDs are parsed from strings. Integers are ``int``, bounded as
the Rust type is (a ``u64`` up to 2^64 - 1). An ``Option`` is ``T | None`` and may be
absent (factum writes ``null``, and reads an absent one as empty); a field that may be
skipped is ``T | None = None`` and must not be ``null``.

Round trip: unknown properties are kept (readers stay open to additions, as factum's
are), and so are the properties' order and each timestamp's text (``.322Z`` stays
``.322Z``): ``event_envelope_to_json`` (``by_alias=True, exclude_unset=True``) writes back
what was read, with the spacing of compact JSON. A model built in Python (not read) is
written in the declared order, with timestamps as factum writes them.

Only event versions that still have a schema are in ``EventEnvelope``; events stored with
a retired version must be upcast (read through factum) before they reach this module.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal, Never, Self, TypeAlias, Union
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    PlainSerializer,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    Strict,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_serializer,
    model_validator,
)
from pydantic.functional_validators import ModelWrapValidatorHandler
from pydantic_core import InitErrorDetails, PydanticCustomError


def _not_a_number(value: object) -> object:
    # Timestamps, dates and UUIDs are parsed from JSON strings, never from numbers.
    if isinstance(value, (bool, int, float)):
        raise ValueError("expected a string")
    return value


def _absent_not_null(value: object) -> object:
    # A field factum skips when empty is absent then, never null (Rust refuses null).
    if value is None:
        raise ValueError("may be absent, but not null")
    return value


class _ReadTimestamp(datetime):
    """A timestamp read from text, which it keeps to be written back unchanged."""

    text: str


def _keep_text(value: object, handler: ValidatorFunctionWrapHandler) -> datetime:
    parsed: datetime = handler(value)
    if not isinstance(value, str):
        return parsed
    kept = _ReadTimestamp(
        parsed.year,
        parsed.month,
        parsed.day,
        parsed.hour,
        parsed.minute,
        parsed.second,
        parsed.microsecond,
        parsed.tzinfo,
        fold=parsed.fold,
    )
    kept.text = value
    return kept


def _rfc3339(value: datetime) -> str:
    # The text read, if any (`replace` and arithmetic give a timestamp without it); else
    # as factum (chrono) writes one: the fraction in 0, 3 or 6 digits, UTC as "Z".
    if isinstance(value, _ReadTimestamp) and "text" in vars(value):
        return value.text
    micro = value.microsecond
    if micro == 0:
        fraction = ""
    elif micro % 1000 == 0:
        fraction = f".{micro // 1000:03d}"
    else:
        fraction = f".{micro:06d}"
    zone = "Z" if value.utcoffset() == timedelta(0) else value.isoformat()[-6:]
    return value.replace(microsecond=0, tzinfo=None).isoformat() + fraction + zone


_DateTime: TypeAlias = Annotated[
    AwareDatetime,
    Strict(False),
    BeforeValidator(_not_a_number),
    WrapValidator(_keep_text),
    PlainSerializer(_rfc3339, return_type=str, when_used="json"),
]
_Date: TypeAlias = Annotated[date, Strict(False), BeforeValidator(_not_a_number)]
_Uuid: TypeAlias = Annotated[UUID, Strict(False), BeforeValidator(_not_a_number)]


class FactumModel(BaseModel):
    """The base of every generated model: strict types; unknown properties kept, and the
    order the properties were read in, so that a model is written back as it was read."""

    model_config = ConfigDict(
        strict=True,
        extra="allow",
        populate_by_name=True,
        use_attribute_docstrings=True,
    )
    _read_order: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="wrap")
    @classmethod
    def _keep_read_order(cls, data: object, handler: ModelWrapValidatorHandler[Self]) -> Self:
        model = handler(data)
        if isinstance(data, dict):
            model._read_order = tuple(key for key in data if isinstance(key, str))
        return model

    @model_serializer(mode="wrap")
    def _in_read_order(self, handler: SerializerFunctionWrapHandler) -> Any:
        dumped = handler(self)
        if not self._read_order or not isinstance(dumped, dict):
            return dumped
        ordered = {key: dumped[key] for key in self._read_order if key in dumped}
        ordered.update((key, value) for key, value in dumped.items() if key not in ordered)
        return ordered
"#;

/// A model to emit.
struct Class {
    name: String,
    base: String,
    doc: String,
    /// Python attribute lines, already rendered (with their docstrings).
    body: Vec<String>,
}

struct Renderer<'a> {
    named: &'a BTreeMap<String, Named>,
    /// Every Python name and what defined it.
    taken: BTreeMap<String, String>,
    classes: Vec<Class>,
    /// Aliases: name, doc, expression, the names it references.
    aliases: Vec<(String, String, String, BTreeSet<String>)>,
}

impl<'a> Renderer<'a> {
    fn new(named: &'a BTreeMap<String, Named>) -> Self {
        let mut taken: BTreeMap<String, String> = named
            .iter()
            .map(|(name, def)| (name.clone(), def.origin.clone()))
            .collect();
        for name in RESERVED {
            taken.insert(
                (*name).to_owned(),
                "factum-codegen's envelope types".to_owned(),
            );
        }
        Renderer {
            named,
            taken,
            classes: Vec::new(),
            aliases: Vec::new(),
        }
    }

    /// Claims a generated name (an inline model or an envelope model).
    fn claim(&mut self, name: &str, origin: &str) -> Result<(), PythonError> {
        if let Some(first) = self.taken.get(name) {
            return Err(PythonError::NameCollision {
                name: name.to_owned(),
                first: first.clone(),
                second: origin.to_owned(),
            });
        }
        self.taken.insert(name.to_owned(), origin.to_owned());
        Ok(())
    }

    fn render(
        mut self,
        envelope: &Envelope,
        entry_names: &[String],
        events: &[(String, u64, String)],
        streams: &(String, Vec<String>),
    ) -> Result<String, PythonError> {
        let named = self.named;
        let shared: Vec<&String> = named
            .keys()
            .filter(|name| !entry_names.contains(name))
            .collect();
        for name in shared.into_iter().chain(entry_names.iter()) {
            let def = &named[name.as_str()];
            let mut refs = BTreeSet::new();
            match &def.ty {
                Ty::Object(fields) => {
                    self.class(name, "FactumModel", &def.doc, fields, &def.origin)?;
                }
                other => {
                    let expression = self.expression(other, name, &def.origin, &mut refs)?;
                    self.aliases
                        .push((name.clone(), def.doc.clone(), expression, refs));
                }
            }
        }
        let first_envelope_class = self.classes.len();
        self.envelope(envelope, events)?;

        let mut out = String::from(HEADER);
        for (index, class) in self.classes.iter().enumerate() {
            if index == 0 {
                out.push_str("\n\n# Models\n");
            }
            if index == first_envelope_class {
                out.push_str("\n\n# The envelope\n");
            }
            out.push_str("\n\n");
            let _ = writeln!(out, "class {}({}):", class.name, class.base);
            let doc = docstring(&class.doc, "    ");
            out.push_str(&doc);
            if class.body.is_empty() && doc.is_empty() {
                out.push_str("    pass\n");
            }
            if !class.body.is_empty() {
                if !doc.is_empty() {
                    out.push('\n');
                }
                for line in &class.body {
                    out.push_str(line);
                }
            }
        }
        out.push_str("\n\n# Aliases, in dependency order\n");
        for (name, doc, expression) in self.ordered_aliases()? {
            out.push('\n');
            let _ = writeln!(out, "{name}: TypeAlias = {expression}");
            out.push_str(&docstring(&doc, ""));
        }
        out.push_str("\n\n");
        render_parsers(&mut out, envelope, events, streams);
        Ok(out)
    }

    /// Aliases sorted so that each comes after the aliases it uses (they are evaluated at
    /// import time; models are not, thanks to `from __future__ import annotations`).
    fn ordered_aliases(&self) -> Result<Vec<(String, String, String)>, PythonError> {
        let names: BTreeSet<&String> = self.aliases.iter().map(|(name, ..)| name).collect();
        let mut done: BTreeSet<String> = BTreeSet::new();
        let mut ordered = Vec::new();
        while ordered.len() < self.aliases.len() {
            let before = ordered.len();
            for (name, doc, expression, refs) in &self.aliases {
                if done.contains(name) {
                    continue;
                }
                if refs
                    .iter()
                    .all(|dep| !names.contains(dep) || done.contains(dep))
                {
                    done.insert(name.clone());
                    ordered.push((name.clone(), doc.clone(), expression.clone()));
                }
            }
            if ordered.len() == before {
                let (name, ..) = self
                    .aliases
                    .iter()
                    .find(|(name, ..)| !done.contains(name))
                    .expect("an alias is left");
                return Err(PythonError::Unsupported {
                    entry: self.taken.get(name).cloned().unwrap_or_default(),
                    path: format!("/$defs/{}", pointer_escape(name)),
                    construct: "a recursive type that is not an object (a recursive alias)"
                        .to_owned(),
                });
            }
        }
        Ok(ordered)
    }

    fn class(
        &mut self,
        name: &str,
        base: &str,
        doc: &str,
        fields: &[Field],
        origin: &str,
    ) -> Result<(), PythonError> {
        let mut body = Vec::new();
        let mut attributes = BTreeSet::new();
        for field in fields {
            let attribute = attribute_name(&field.name);
            if !attributes.insert(attribute.clone()) {
                return Err(PythonError::InvalidName {
                    entry: origin.to_owned(),
                    name: field.name.clone(),
                });
            }
            let hint = format!("{name}{}", pascal(&field.name));
            let mut refs = BTreeSet::new();
            let mut ty = self.expression(&field.ty, &hint, origin, &mut refs)?;
            let alias = (attribute != field.name).then(|| json_string(&field.name));
            let value = match (field.required, alias) {
                (true, None) => String::new(),
                (true, Some(alias)) => format!(" = Field(alias={alias})"),
                (false, None) => " = None".to_owned(),
                (false, Some(alias)) => format!(" = Field(default=None, alias={alias})"),
            };
            if !field.required && !nullable(&field.ty) {
                // Absent is `None` in Python; `null` is refused, as Rust refuses it.
                ty = format!("Annotated[{ty} | None, BeforeValidator(_absent_not_null)]");
            }
            let mut line = format!("    {attribute}: {ty}{value}\n");
            line.push_str(&docstring(&field.doc, "    "));
            body.push(line);
        }
        self.classes.push(Class {
            name: name.to_owned(),
            base: base.to_owned(),
            doc: doc.to_owned(),
            body,
        });
        Ok(())
    }

    /// The Python type expression for `ty`; inline objects become models named `hint...`.
    fn expression(
        &mut self,
        ty: &Ty,
        hint: &str,
        origin: &str,
        refs: &mut BTreeSet<String>,
    ) -> Result<String, PythonError> {
        Ok(match ty {
            Ty::Unknown => "JsonValue".to_owned(),
            Ty::Null => "None".to_owned(),
            Ty::Boolean => "bool".to_owned(),
            Ty::String(format) => match format.as_deref() {
                Some("date-time") => "_DateTime".to_owned(),
                Some("date") => "_Date".to_owned(),
                Some("uuid") => "_Uuid".to_owned(),
                _ => "str".to_owned(),
            },
            Ty::Number {
                integer,
                minimum,
                maximum,
            } => {
                let base = if *integer { "int" } else { "float" };
                let mut bounds = Vec::new();
                if let Some(minimum) = minimum {
                    bounds.push(format!("ge={}", py_number(minimum, *integer)));
                }
                if let Some(maximum) = maximum {
                    bounds.push(format!("le={}", py_number(maximum, *integer)));
                }
                if bounds.is_empty() {
                    base.to_owned()
                } else {
                    format!("Annotated[{base}, Field({})]", bounds.join(", "))
                }
            }
            Ty::Literal(value) => format!("Literal[{}]", py_literal(value)),
            Ty::Array(inner) => format!(
                "list[{}]",
                self.expression(inner, &format!("{hint}Item"), origin, refs)?
            ),
            Ty::Record(inner) => format!(
                "dict[str, {}]",
                self.expression(inner, &format!("{hint}Value"), origin, refs)?
            ),
            Ty::Ref(name) => {
                refs.insert(name.clone());
                name.clone()
            }
            Ty::Object(fields) => {
                self.claim(hint, origin)?;
                self.class(hint, "FactumModel", "", fields, origin)?;
                hint.to_owned()
            }
            Ty::Union(alternatives) => self.union(alternatives, hint, origin, refs)?,
        })
    }

    fn union(
        &mut self,
        alternatives: &[Ty],
        hint: &str,
        origin: &str,
        refs: &mut BTreeSet<String>,
    ) -> Result<String, PythonError> {
        let has_null = alternatives.contains(&Ty::Null);
        let rest: Vec<&Ty> = alternatives
            .iter()
            .filter(|alt| **alt != Ty::Null)
            .collect();
        let suffix = if has_null { " | None" } else { "" };
        if rest.iter().all(|alt| matches!(alt, Ty::Literal(_))) {
            let values: Vec<String> = rest
                .iter()
                .map(|alt| match alt {
                    Ty::Literal(value) => py_literal(value),
                    _ => unreachable!("literals only"),
                })
                .collect();
            return Ok(format!("Literal[{}]{suffix}", values.join(", ")));
        }
        let rest_owned: Vec<Ty> = rest.iter().map(|alt| (*alt).clone()).collect();
        if let Some(tag) = discriminator(&rest_owned) {
            let mut members = Vec::new();
            for alternative in &rest_owned {
                let Ty::Object(fields) = alternative else {
                    unreachable!("a discriminated union has objects only")
                };
                let tag_value = fields
                    .iter()
                    .find_map(|field| match (&field.ty, field.name == tag) {
                        (Ty::Literal(Value::String(value)), true) => Some(value.clone()),
                        _ => None,
                    })
                    .unwrap_or_default();
                let name = format!("{hint}{}", pascal(&tag_value));
                members.push(self.expression(alternative, &name, origin, refs)?);
            }
            return Ok(format!(
                "Annotated[Union[{}], Field(discriminator={})]{suffix}",
                members.join(", "),
                json_string(&tag)
            ));
        }
        let mut members = Vec::new();
        for (index, alternative) in rest_owned.iter().enumerate() {
            let name = format!("{hint}{}", index + 1);
            members.push(self.expression(alternative, &name, origin, refs)?);
        }
        if has_null {
            members.push("None".to_owned());
        }
        Ok(members.join(" | "))
    }

    fn envelope(
        &mut self,
        envelope: &Envelope,
        events: &[(String, u64, String)],
    ) -> Result<(), PythonError> {
        let field = |name: &str, ty: Ty, doc: &str| Field {
            name: name.to_owned(),
            ty,
            required: true,
            doc: doc.to_owned(),
        };
        for (name, def) in &envelope.defs {
            self.claim(name, ENVELOPE_ORIGIN)?;
            match &def.ty {
                Ty::Object(fields) => {
                    self.class(name, "FactumModel", &def.doc, fields, ENVELOPE_ORIGIN)?;
                }
                other => {
                    let mut refs = BTreeSet::new();
                    let expression = self.expression(other, name, ENVELOPE_ORIGIN, &mut refs)?;
                    self.aliases
                        .push((name.clone(), def.doc.clone(), expression, refs));
                }
            }
        }
        self.class(
            "EnvelopeHeader",
            "FactumModel",
            &format!(
                "{}\n\nThe fields every stored event carries besides ``{}``, ``{}`` and ``{}``.",
                envelope.doc, envelope.name, envelope.version, envelope.payload
            ),
            &envelope.header,
            ENVELOPE_ORIGIN,
        )?;
        let [name_doc, version_doc, payload_doc] = &envelope.role_docs;
        let [name_ty, version_ty] = &envelope.role_types;
        self.class(
            "ForeignEnvelope",
            "EnvelopeHeader",
            "An envelope of any stream type: its header, the event's name and version, and the\n\
             payload as a JSON value (``read_envelope`` returns those of stream types not in\n\
             ``STREAM_TYPES``).",
            &[
                field(&envelope.name, name_ty.clone(), name_doc),
                field(&envelope.version, version_ty.clone(), version_doc),
                field(&envelope.payload, Ty::Unknown, payload_doc),
            ],
            ENVELOPE_ORIGIN,
        )?;
        // One model per event version, then one alias per name with several versions.
        let mut by_name: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (name, version, py) in events {
            let class = format!("{py}Event");
            let label = format!("event {name} v{version}");
            self.claim(&class, &label)?;
            self.class(
                &class,
                "EnvelopeHeader",
                &format!("A stored `{name}` event, version {version}."),
                &[
                    field(
                        &envelope.name,
                        Ty::Literal(Value::String(name.clone())),
                        name_doc,
                    ),
                    field(
                        &envelope.version,
                        Ty::Literal(Value::from(*version)),
                        version_doc,
                    ),
                    field(&envelope.payload, Ty::Ref(py.clone()), payload_doc),
                ],
                &label,
            )?;
            by_name.entry(name).or_default().push(class);
        }
        let mut members = Vec::new();
        for (name, classes) in by_name {
            if classes.len() == 1 {
                members.push(classes[0].clone());
                continue;
            }
            let alias = format!("{name}Event");
            self.claim(&alias, &format!("event {name}"))?;
            self.aliases.push((
                alias.clone(),
                format!(
                    "A stored `{name}` event of any version, discriminated on `{}`.",
                    envelope.version
                ),
                format!(
                    "Annotated[Union[{}], Field(discriminator={})]",
                    classes.join(", "),
                    json_string(&attribute_name(&envelope.version))
                ),
                BTreeSet::new(),
            ));
            members.push(alias);
        }
        let expression = match members.len() {
            0 => "Never".to_owned(),
            1 => members[0].clone(),
            _ => format!(
                "Annotated[Union[{}], Field(discriminator={})]",
                members.join(", "),
                json_string(&attribute_name(&envelope.name))
            ),
        };
        let refs = members.iter().cloned().collect();
        self.aliases.push((
            "EventEnvelope".to_owned(),
            format!(
                "A stored event: its header, and its payload discriminated on `{}` and `{}`.",
                envelope.name, envelope.version
            ),
            expression,
            refs,
        ));
        Ok(())
    }
}

fn render_parsers(
    out: &mut String,
    envelope: &Envelope,
    events: &[(String, u64, String)],
    (stream_type, stream_types): &(String, Vec<String>),
) {
    let set = |items: Vec<String>| {
        if items.is_empty() {
            "frozenset()".to_owned()
        } else {
            format!("frozenset({{{}}})", items.join(", "))
        }
    };
    let _ = write!(
        out,
        "# Parsing\n\n\
         STREAM_TYPES: frozenset[str] = {}\n\
         \"\"\"The stream types (aggregates) whose events this module covers.\"\"\"\n\n\
         _EVENTS: frozenset[tuple[str, int]] = {}\n\
         _FOREIGN_ENVELOPE: TypeAdapter[ForeignEnvelope] = TypeAdapter(ForeignEnvelope)\n\n\n\
         def _fail(location: str, value: object, message: str) -> Never:\n    \
         raise ValidationError.from_exception_data(\n        \
         \"EventEnvelope\",\n        \
         [\n            \
         InitErrorDetails(\n                \
         type=PydanticCustomError(\"factum_envelope\", \"{{message}}\", {{\"message\": message}}),\n                \
         loc=(location,),\n                \
         input=value,\n            \
         )\n        \
         ],\n    \
         )\n\n\n\
         def _check_ours(header: ForeignEnvelope) -> None:\n    \
         # Before the union's own errors: they would not say why, nor what to do.\n    \
         stream_type = header.{stream}\n    \
         if stream_type not in STREAM_TYPES:\n        \
         covered = \", \".join(repr(name) for name in sorted(STREAM_TYPES))\n        \
         _fail(\n            \
         {stream_alias},\n            \
         stream_type,\n            \
         f\"stream type {{stream_type!r}} is not in this contract (it covers {{covered}}):\"\n            \
         \" read envelopes of any stream with read_envelope\",\n        \
         )\n    \
         name, version = header.{name}, header.{version}\n    \
         if (name, version) in _EVENTS:\n        \
         return\n    \
         regenerate = \"the contract may be older than the producer: regenerate it from the producer's registry\"\n    \
         if any(known == name for known, _ in _EVENTS):\n        \
         _fail({version_alias}, version, f\"event {{name!r}} has no version {{version}} in this contract; {{regenerate}}\")\n    \
         _fail({name_alias}, name, f\"no event {{name!r}} in this contract for stream type {{stream_type!r}}; {{regenerate}}\")\n\n\n",
        set(stream_types.iter().map(|name| json_string(name)).collect()),
        set(events
            .iter()
            .map(|(name, version, _)| format!("({}, {version})", json_string(name)))
            .collect()),
        stream = attribute_name(stream_type),
        stream_alias = json_string(stream_type),
        name = attribute_name(&envelope.name),
        version = attribute_name(&envelope.version),
        name_alias = json_string(&envelope.name),
        version_alias = json_string(&envelope.version),
    );
    if events.is_empty() {
        out.push_str(
            "def parse_event_envelope(data: object) -> EventEnvelope:\n    \
             \"\"\"The registry has no events: nothing is a valid ``EventEnvelope``.\"\"\"\n    \
             _check_ours(_FOREIGN_ENVELOPE.validate_python(data))\n    \
             raise ValueError(\"the registry has no events\")\n\n\n\
             def parse_event_envelope_json(data: str | bytes) -> EventEnvelope:\n    \
             \"\"\"The registry has no events: nothing is a valid ``EventEnvelope``.\"\"\"\n    \
             _check_ours(_FOREIGN_ENVELOPE.validate_json(data))\n    \
             raise ValueError(\"the registry has no events\")\n",
        );
    } else {
        out.push_str(
            "_EVENT_ENVELOPE: TypeAdapter[EventEnvelope] = TypeAdapter(EventEnvelope)\n\n\n\
             def parse_event_envelope(data: object) -> EventEnvelope:\n    \
             \"\"\"Validates ``data`` (e.g. from ``json.loads``) as an ``EventEnvelope`` of one of\n    \
             ``STREAM_TYPES``; for envelopes of any stream type, use ``read_envelope``.\n\n    \
             Raises ``pydantic.ValidationError`` naming the location of every mismatch.\n    \
             \"\"\"\n    \
             _check_ours(_FOREIGN_ENVELOPE.validate_python(data))\n    \
             return _EVENT_ENVELOPE.validate_python(data)\n\n\n\
             def parse_event_envelope_json(data: str | bytes) -> EventEnvelope:\n    \
             \"\"\"Parses and validates JSON text as an ``EventEnvelope`` (see ``parse_event_envelope``).\"\"\"\n    \
             _check_ours(_FOREIGN_ENVELOPE.validate_json(data))\n    \
             return _EVENT_ENVELOPE.validate_json(data)\n",
        );
    }
    let _ = write!(
        out,
        "\n\n\
         def read_envelope(data: object) -> EventEnvelope | ForeignEnvelope:\n    \
         \"\"\"Reads any envelope factum delivers (e.g. from ``json.loads``): an ``EventEnvelope``,\n    \
         fully validated, for one of ``STREAM_TYPES``; a ``ForeignEnvelope`` for another stream type.\n\n    \
         Raises ``pydantic.ValidationError`` naming the location of every mismatch: a malformed\n    \
         header, or an event of our stream types that does not parse (an unknown name or version\n    \
         included).\n    \
         \"\"\"\n    \
         header = _FOREIGN_ENVELOPE.validate_python(data)\n    \
         if header.{stream} not in STREAM_TYPES:\n        \
         return header\n    \
         return parse_event_envelope(data)\n\n\n\
         def event_envelope_to_json(event: EventEnvelope | ForeignEnvelope) -> str:\n    \
         \"\"\"Writes an event back as JSON, as it was read (fields, their order, timestamps' text).\"\"\"\n    \
         return event.model_dump_json(by_alias=True, exclude_unset=True)\n",
        stream = attribute_name(stream_type),
    );
}

/// Whether `None` is already a value of the type.
fn nullable(ty: &Ty) -> bool {
    match ty {
        Ty::Null | Ty::Unknown => true,
        Ty::Union(alternatives) => alternatives.contains(&Ty::Null),
        _ => false,
    }
}

/// The attribute name for a JSON property; the property stays the alias when they differ.
fn attribute_name(property: &str) -> String {
    if is_identifier(property)
        && !property.starts_with('_')
        && !property.starts_with("model_")
        && !KEYWORDS.contains(&property)
        && !SHADOWED.contains(&property)
    {
        return property.to_owned();
    }
    let mut name: String = property
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect::<String>()
        .trim_start_matches('_')
        .to_owned();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name = format!("field_{name}");
    }
    if name.starts_with("model_") {
        name = format!("field_{name}");
    }
    if KEYWORDS.contains(&name.as_str()) || SHADOWED.contains(&name.as_str()) {
        name.push('_');
    }
    name
}

/// `lines`, `unit_price`, `Circle` -> `Lines`, `UnitPrice`, `Circle`.
fn pascal(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

fn json_string(value: &str) -> String {
    Value::String(value.to_owned()).to_string()
}

/// A JSON constant as a Python literal (JSON strings are valid Python strings).
fn py_literal(value: &Value) -> String {
    match value {
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Null => "None".to_owned(),
        other => other.to_string(),
    }
}

/// A bound as a Python literal, exactly (`18446744073709551615`, not 2^64).
fn py_number(value: &Number, integer: bool) -> String {
    if value.is_u64() || value.is_i64() {
        return if integer {
            value.to_string()
        } else {
            format!("{value}.0")
        };
    }
    let value = value.as_f64().unwrap_or_default();
    if value.fract() == 0.0 && value.abs() < 1e18 {
        #[allow(clippy::cast_possible_truncation)]
        let whole = value as i64;
        if integer {
            whole.to_string()
        } else {
            format!("{whole}.0")
        }
    } else {
        format!("{value:?}")
    }
}

/// A docstring block (empty when there is no doc).
fn docstring(doc: &str, indent: &str) -> String {
    let doc = doc.trim();
    if doc.is_empty() {
        return String::new();
    }
    let mut doc = doc.replace('\\', "\\\\").replace("\"\"\"", "\\\"\\\"\\\"");
    if doc.ends_with('"') {
        doc.pop();
        doc.push_str("\\\"");
    }
    let lines: Vec<&str> = doc.lines().collect();
    let mut out = String::new();
    if lines.len() == 1 {
        let _ = writeln!(out, "{indent}\"\"\"{}\"\"\"", lines[0]);
    } else {
        let _ = writeln!(out, "{indent}\"\"\"{}", lines[0].trim_end());
        for line in &lines[1..] {
            if line.trim().is_empty() {
                out.push('\n');
            } else {
                let _ = writeln!(out, "{indent}{}", line.trim_end());
            }
        }
        let _ = writeln!(out, "{indent}\"\"\"");
    }
    out
}
