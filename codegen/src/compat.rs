//! Schema-registry compatibility rules for the JSON Schemas of events.
//!
//! The rules follow a schema registry's JSON Schema implementation (Confluent's):
//!
//! * **BACKWARD**: the new schema accepts every document the previous one accepted, so
//!   consumers on the new version read old events.
//! * **FORWARD**: the previous schema accepts every document the new one accepts, so
//!   consumers still on the old version read new events.
//! * **FULL**: both. The `*_TRANSITIVE` modes check against every earlier version, not
//!   only the one before.
//!
//! Everything is built on one question, "does schema `A` accept every document schema `B`
//! accepts?" (`B ⊆ A`). BACKWARD(old, new) asks it with `A = new, B = old`, FORWARD with
//! `A = old, B = new`. Every answer that is not a proof of inclusion is reported, so the
//! check is **conservative**: when it cannot decide (a `pattern` that changed to another
//! regular expression, a keyword it does not analyse, an external `$ref`, ...), it reports
//! a possible incompatibility ([`Change::ConstraintChanged`] or [`Change::Unsupported`])
//! rather than letting the change through.
//!
//! Registry conventions that are not pure set inclusion, on purpose:
//!
//! * a property that becomes required (or a new required property) is fine when its
//!   schema carries a `default`: readers fill it in;
//! * content models are those of the registry: an object schema without
//!   `additionalProperties` (or with `true`) is *open*, one with `false` is *closed*, one
//!   with a schema is *partially open*. Adding a property with a constrained schema to an
//!   open model is therefore not BACKWARD compatible (an old document may already carry
//!   that name with any value), while adding an optional property to a closed model is.
//!
//! Supported keywords (as `schemars` 1.x emits them, draft 2020-12): `type` (a name or an
//! array, including `"null"`), `properties`, `required`, `additionalProperties`, `items`,
//! `enum`, `const`, `anyOf`/`oneOf`, `allOf`, `$ref` into the same document (cycles are
//! guarded), `minimum`/`maximum`/`exclusiveMinimum`/`exclusiveMaximum`/`multipleOf`,
//! `minLength`/`maxLength`/`pattern`/`format`, `minItems`/`maxItems`/`uniqueItems`,
//! `minProperties`/`maxProperties`. Annotations (`title`, `description`, `default`,
//! `examples`, `$comment`, `$id`, `deprecated`, `readOnly`, `writeOnly`, `content*`,
//! `x-*`) never matter. Any other keyword must be identical on the accepting side or it
//! is reported as [`Change::Unsupported`].
//!
//! Known approximations: `oneOf` is treated as `anyOf` (exact when the alternatives are
//! disjoint, as schemars' tagged enums are); keywords next to `anyOf`/`oneOf`/`$ref`/
//! `allOf` on the *accepted* side are ignored (which can only over-report); a union on the
//! accepting side must cover each alternative (or each type) with one alternative.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

/// How the schema versions of one event must relate to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compatibility {
    /// No check between versions (a published version must still not change).
    None,
    /// The new schema accepts every document the previous version accepted: consumers on
    /// the new version read old events. The registry default.
    #[default]
    Backward,
    /// The previous schema accepts every document the new one accepts: consumers still on
    /// the previous version read new events.
    Forward,
    /// Both [`Backward`](Compatibility::Backward) and [`Forward`](Compatibility::Forward).
    Full,
    /// [`Backward`](Compatibility::Backward) against every earlier version.
    BackwardTransitive,
    /// [`Forward`](Compatibility::Forward) against every earlier version.
    ForwardTransitive,
    /// [`Full`](Compatibility::Full) against every earlier version.
    FullTransitive,
}

impl Compatibility {
    /// Every mode, in registry order.
    pub const ALL: [Compatibility; 7] = [
        Compatibility::None,
        Compatibility::Backward,
        Compatibility::Forward,
        Compatibility::Full,
        Compatibility::BackwardTransitive,
        Compatibility::ForwardTransitive,
        Compatibility::FullTransitive,
    ];

    /// Whether the BACKWARD rule applies.
    pub fn checks_backward(self) -> bool {
        matches!(
            self,
            Self::Backward | Self::Full | Self::BackwardTransitive | Self::FullTransitive
        )
    }

    /// Whether the FORWARD rule applies.
    pub fn checks_forward(self) -> bool {
        matches!(
            self,
            Self::Forward | Self::Full | Self::ForwardTransitive | Self::FullTransitive
        )
    }

    /// Whether a version is checked against every earlier version (not only the previous).
    pub fn is_transitive(self) -> bool {
        matches!(
            self,
            Self::BackwardTransitive | Self::ForwardTransitive | Self::FullTransitive
        )
    }

    /// The registry's name: `NONE`, `BACKWARD`, ..., `FULL_TRANSITIVE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Backward => "BACKWARD",
            Self::Forward => "FORWARD",
            Self::Full => "FULL",
            Self::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Self::ForwardTransitive => "FORWARD_TRANSITIVE",
            Self::FullTransitive => "FULL_TRANSITIVE",
        }
    }
}

impl fmt::Display for Compatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A compatibility mode name that is not one of the registry's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown compatibility mode `{0}` (expected NONE, BACKWARD, FORWARD, FULL, \
     BACKWARD_TRANSITIVE, FORWARD_TRANSITIVE or FULL_TRANSITIVE)"
)]
pub struct ParseCompatibilityError(pub String);

impl FromStr for Compatibility {
    type Err = ParseCompatibilityError;

    /// Parses a registry name, case-insensitively, with `_` or `-` as separator.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_uppercase().replace('-', "_");
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == norm)
            .ok_or_else(|| ParseCompatibilityError(s.to_owned()))
    }
}

/// Which rule a finding breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// The new schema does not accept every document of the old one.
    Backward,
    /// The old schema does not accept every document of the new one.
    Forward,
    /// A published `(name, version)` schema changed beyond annotations.
    Published,
    /// The list of versions itself is wrong (a version listed twice).
    Versions,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Backward => "BACKWARD",
            Self::Forward => "FORWARD",
            Self::Published => "PUBLISHED",
            Self::Versions => "VERSIONS",
        })
    }
}

/// The content model of an object schema, as a schema registry sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentModel {
    /// `additionalProperties` absent or `true`: unknown properties are accepted, any value.
    Open,
    /// `additionalProperties: false`: unknown properties are rejected.
    Closed,
    /// `additionalProperties` is a schema: unknown properties must match it.
    PartiallyOpen,
}

impl fmt::Display for ContentModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Open => "open",
            Self::Closed => "closed",
            Self::PartiallyOpen => "partially open",
        })
    }
}

/// What changed, always described from the old version to the new one.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Change {
    /// The accepted types differ (`from`/`to` are the old/new types, e.g. `"integer"`,
    /// `"string | null"`, `any`).
    TypeChanged {
        /// The old version's types.
        from: String,
        /// The new version's types.
        to: String,
    },
    /// The new version declares a property the old one handled differently: a closed old
    /// model rejected it, an open or partially open one accepted it with another schema.
    PropertyAdded {
        /// The old version's content model.
        model: ContentModel,
    },
    /// The new version no longer declares a property: a closed new model rejects it, an
    /// open or partially open one accepts values the old schema did not.
    PropertyRemoved {
        /// The new version's content model.
        model: ContentModel,
    },
    /// A property became required (and its schema has no `default`).
    RequiredAdded,
    /// A property the old version requires is optional in the new one.
    RequiredRemoved,
    /// `additionalProperties` accepts less than before.
    ContentModelClosed {
        /// The old content model.
        from: ContentModel,
        /// The new content model.
        to: ContentModel,
    },
    /// `additionalProperties` accepts more than before.
    ContentModelOpened {
        /// The old content model.
        from: ContentModel,
        /// The new content model.
        to: ContentModel,
    },
    /// A value of `enum`/`const` of the old version is not accepted any more.
    EnumValueRemoved {
        /// The value.
        value: Value,
    },
    /// The new version accepts an `enum`/`const` value the old one does not.
    EnumValueAdded {
        /// The value.
        value: Value,
    },
    /// A constraint accepts less than before (`from`/`to`: the old/new keyword values,
    /// `None` when absent).
    ConstraintTightened {
        /// The keyword, e.g. `maxLength`.
        keyword: String,
        /// The old value.
        from: Option<Value>,
        /// The new value.
        to: Option<Value>,
    },
    /// A constraint accepts more than before.
    ConstraintLoosened {
        /// The keyword, e.g. `maxLength`.
        keyword: String,
        /// The old value.
        from: Option<Value>,
        /// The new value.
        to: Option<Value>,
    },
    /// A constraint changed in a way the checker cannot order (two different `pattern`s
    /// or `format`s); reported conservatively.
    ConstraintChanged {
        /// The keyword.
        keyword: String,
        /// The old value.
        from: Option<Value>,
        /// The new value.
        to: Option<Value>,
    },
    /// An `anyOf`/`oneOf` alternative of the old version has no counterpart in the new one.
    AlternativeRemoved,
    /// An `anyOf`/`oneOf` alternative of the new version has no counterpart in the old one.
    AlternativeAdded,
    /// Something the checker does not analyse; reported conservatively.
    Unsupported {
        /// The keyword involved.
        keyword: String,
        /// Why it cannot be decided.
        reason: String,
    },
    /// A published schema changed beyond annotations (`from`/`to`: committed/current).
    Modified {
        /// The keyword that differs.
        keyword: String,
        /// The committed value.
        from: Option<Value>,
        /// The current value.
        to: Option<Value>,
    },
    /// The same version appears more than once in a version list.
    DuplicateVersion,
}

impl Change {
    /// The variant's name, e.g. `"TypeChanged"`: stable, for tests and tooling.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TypeChanged { .. } => "TypeChanged",
            Self::PropertyAdded { .. } => "PropertyAdded",
            Self::PropertyRemoved { .. } => "PropertyRemoved",
            Self::RequiredAdded => "RequiredAdded",
            Self::RequiredRemoved => "RequiredRemoved",
            Self::ContentModelClosed { .. } => "ContentModelClosed",
            Self::ContentModelOpened { .. } => "ContentModelOpened",
            Self::EnumValueRemoved { .. } => "EnumValueRemoved",
            Self::EnumValueAdded { .. } => "EnumValueAdded",
            Self::ConstraintTightened { .. } => "ConstraintTightened",
            Self::ConstraintLoosened { .. } => "ConstraintLoosened",
            Self::ConstraintChanged { .. } => "ConstraintChanged",
            Self::AlternativeRemoved => "AlternativeRemoved",
            Self::AlternativeAdded => "AlternativeAdded",
            Self::Unsupported { .. } => "Unsupported",
            Self::Modified { .. } => "Modified",
            Self::DuplicateVersion => "DuplicateVersion",
        }
    }
}

struct Opt<'a>(&'a Option<Value>);

impl fmt::Display for Opt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v}"),
            None => f.write_str("(absent)"),
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TypeChanged { from, to } => write!(f, "type changed from {from} to {to}"),
            Self::PropertyAdded {
                model: ContentModel::Closed,
            } => f.write_str("property added; the old schema's closed content model rejects it"),
            Self::PropertyAdded { model } => write!(
                f,
                "property added with a schema narrower than what the old {model} content \
                 model accepted for it"
            ),
            Self::PropertyRemoved {
                model: ContentModel::Closed,
            } => f.write_str("property removed; the new schema's closed content model rejects it"),
            Self::PropertyRemoved { model } => write!(
                f,
                "property removed; the new {model} content model accepts values for it \
                 that the old schema rejected"
            ),
            Self::RequiredAdded => f.write_str("property became required (without a default)"),
            Self::RequiredRemoved => f.write_str(
                "property is no longer required (the old schema requires it and it has no \
                 default)",
            ),
            Self::ContentModelClosed { from, to } => write!(
                f,
                "content model narrowed from {from} to {to} (additionalProperties)"
            ),
            Self::ContentModelOpened { from, to } => write!(
                f,
                "content model widened from {from} to {to} (additionalProperties)"
            ),
            Self::EnumValueRemoved { value } => write!(f, "enum value {value} removed"),
            Self::EnumValueAdded { value } => write!(f, "enum value {value} added"),
            Self::ConstraintTightened { keyword, from, to } => {
                write!(f, "`{keyword}` tightened from {} to {}", Opt(from), Opt(to))
            }
            Self::ConstraintLoosened { keyword, from, to } => {
                write!(f, "`{keyword}` loosened from {} to {}", Opt(from), Opt(to))
            }
            Self::ConstraintChanged { keyword, from, to } => write!(
                f,
                "`{keyword}` changed from {} to {} (cannot prove one accepts the other)",
                Opt(from),
                Opt(to)
            ),
            Self::AlternativeRemoved => {
                f.write_str("alternative removed (no alternative of the new schema accepts it)")
            }
            Self::AlternativeAdded => {
                f.write_str("alternative added (no alternative of the old schema accepts it)")
            }
            Self::Unsupported { keyword, reason } => write!(
                f,
                "cannot prove compatibility of `{keyword}`: {reason} (reported conservatively)"
            ),
            Self::Modified { keyword, from, to } => {
                write!(f, "`{keyword}` changed from {} to {}", Opt(from), Opt(to))
            }
            Self::DuplicateVersion => f.write_str("version listed more than once"),
        }
    }
}

/// One broken rule: which event, which versions, where in the schema, what changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct Incompatibility {
    /// The event's name.
    pub event: String,
    /// The older version (for [`Rule::Published`], the published version).
    pub from_version: u32,
    /// The newer version (for [`Rule::Published`], the same as `from_version`).
    pub to_version: u32,
    /// A JSON-pointer-like path through the schema, following `$ref`s logically, e.g.
    /// `/properties/lines/items/properties/quantity`; empty for the root. For
    /// [`Rule::Published`] it is the exact pointer into the committed document.
    pub path: String,
    /// What changed.
    pub change: Change,
    /// Which rule is broken.
    pub rule: Rule,
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.path.is_empty() {
            "the root".to_owned()
        } else {
            format!("`{}`", self.path)
        };
        let (event, a, b, change) = (
            &self.event,
            self.from_version,
            self.to_version,
            &self.change,
        );
        match self.rule {
            Rule::Backward => write!(
                f,
                "event `{event}` v{a} -> v{b}: BACKWARD incompatible (the v{b} schema does not \
                 accept every v{a} document) at {at}: {change}"
            ),
            Rule::Forward => write!(
                f,
                "event `{event}` v{a} -> v{b}: FORWARD incompatible (the v{a} schema does not \
                 accept every v{b} document) at {at}: {change}"
            ),
            Rule::Published => write!(
                f,
                "event `{event}` v{a}: the published schema changed at {at}: {change}; only \
                 annotations (title, description, ...) may change, publish a new version instead"
            ),
            Rule::Versions => write!(f, "event `{event}` v{a}: {change}"),
        }
    }
}

/// Checks one pair of versions under `mode` (a transitive mode checks the pair like its
/// non-transitive counterpart; use [`check_versions`] for whole histories).
pub fn check_pair(
    event: &str,
    old_version: u32,
    old: &Value,
    new_version: u32,
    new: &Value,
    mode: Compatibility,
) -> Vec<Incompatibility> {
    let mut out = Vec::new();
    for (rule, on) in [
        (Rule::Backward, mode.checks_backward()),
        (Rule::Forward, mode.checks_forward()),
    ] {
        if !on {
            continue;
        }
        let (sup, sub) = match rule {
            Rule::Backward => (new, old),
            _ => (old, new),
        };
        let mut checker = Checker {
            rule,
            sup_root: sup,
            sub_root: sub,
            stack: Vec::new(),
        };
        let mut findings = checker.cmp(sup, sub, "");
        dedup(&mut findings);
        out.extend(findings.into_iter().map(|f| Incompatibility {
            event: event.to_owned(),
            from_version: old_version,
            to_version: new_version,
            path: f.path,
            change: f.change,
            rule,
        }));
    }
    out
}

/// Checks a whole version history of one event under `mode`: each version against the
/// previous one, or against every earlier one for the transitive modes. The versions are
/// taken in ascending version order whatever order they are given in; a version given
/// twice is reported as [`Change::DuplicateVersion`].
pub fn check_versions(
    event: &str,
    versions: &[(u32, Value)],
    mode: Compatibility,
) -> Vec<Incompatibility> {
    let mut sorted: Vec<&(u32, Value)> = versions.iter().collect();
    sorted.sort_by_key(|(v, _)| *v);
    let mut out = Vec::new();
    for w in sorted.windows(2) {
        if w[0].0 == w[1].0 {
            out.push(Incompatibility {
                event: event.to_owned(),
                from_version: w[0].0,
                to_version: w[1].0,
                path: String::new(),
                change: Change::DuplicateVersion,
                rule: Rule::Versions,
            });
        }
    }
    sorted.dedup_by_key(|(v, _)| *v);
    for j in 1..sorted.len() {
        let first = if mode.is_transitive() { 0 } else { j - 1 };
        for i in first..j {
            let ((a, old), (b, new)) = (sorted[i], sorted[j]);
            out.extend(check_pair(event, *a, old, *b, new, mode));
        }
    }
    out
}

/// Checks that a published `(event, version)` schema did not change: `committed` is the
/// registry's copy, `current` the one generated now. Differences in annotations (`title`,
/// `description`, `default`, `examples`, `$comment`, `$id`, `deprecated`, `readOnly`,
/// `writeOnly`, `content*`, `x-*`) are allowed; any other difference is reported, at the
/// exact pointer into the schema. `required`, `enum` and `type` arrays compare as sets.
pub fn check_published_unchanged(
    event: &str,
    version: u32,
    committed: &Value,
    current: &Value,
) -> Vec<Incompatibility> {
    let mut diffs = Vec::new();
    diff_schema(committed, current, "", &mut diffs);
    diffs
        .into_iter()
        .map(|f| Incompatibility {
            event: event.to_owned(),
            from_version: version,
            to_version: version,
            path: f.path,
            change: f.change,
            rule: Rule::Published,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Keyword classification.

fn is_annotation(k: &str) -> bool {
    matches!(
        k,
        "title"
            | "description"
            | "default"
            | "examples"
            | "$comment"
            | "$id"
            | "deprecated"
            | "readOnly"
            | "writeOnly"
            | "contentEncoding"
            | "contentMediaType"
            | "contentSchema"
    ) || k.starts_with("x-")
}

/// Keywords the checker analyses (or that do not constrain documents at this location).
fn is_analysed(k: &str) -> bool {
    matches!(
        k,
        "type"
            | "enum"
            | "const"
            | "minimum"
            | "maximum"
            | "exclusiveMinimum"
            | "exclusiveMaximum"
            | "multipleOf"
            | "minLength"
            | "maxLength"
            | "pattern"
            | "format"
            | "items"
            | "minItems"
            | "maxItems"
            | "uniqueItems"
            | "properties"
            | "required"
            | "additionalProperties"
            | "patternProperties"
            | "minProperties"
            | "maxProperties"
            | "anyOf"
            | "oneOf"
            | "allOf"
            | "$ref"
            | "$defs"
            | "definitions"
            | "$schema"
            | "$anchor"
            | "$dynamicAnchor"
            | "$vocabulary"
    )
}

fn constrains(k: &str) -> bool {
    !is_annotation(k)
        && !matches!(
            k,
            "$defs" | "definitions" | "$schema" | "$anchor" | "$dynamicAnchor" | "$vocabulary"
        )
}

fn is_false(v: &Value) -> bool {
    matches!(v, Value::Bool(false))
}

/// `true`, or an object with no constraining keyword.
fn is_trivially_true(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Object(m) => !m.keys().any(|k| constrains(k)),
        _ => false,
    }
}

fn model_of(obj: &Map<String, Value>) -> ContentModel {
    match obj.get("additionalProperties") {
        None => ContentModel::Open,
        Some(v) if is_trivially_true(v) => ContentModel::Open,
        Some(v) if is_false(v) => ContentModel::Closed,
        Some(_) => ContentModel::PartiallyOpen,
    }
}

fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

fn without(obj: &Map<String, Value>, keys: &[&str]) -> Value {
    Value::Object(
        obj.iter()
            .filter(|(k, _)| !keys.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

fn union_of(obj: &Map<String, Value>) -> Option<(&'static str, &Vec<Value>)> {
    for kw in ["anyOf", "oneOf"] {
        if let Some(Value::Array(alts)) = obj.get(kw) {
            return Some((kw, alts));
        }
    }
    None
}

// ---------------------------------------------------------------------------------------
// `$ref` resolution.

fn resolve_ref<'a>(root: &'a Value, reference: &Value) -> Result<&'a Value, String> {
    let Some(r) = reference.as_str() else {
        return Err("`$ref` is not a string".to_owned());
    };
    let Some(pointer) = r.strip_prefix('#') else {
        return Err(format!("`$ref` {r} points outside the document"));
    };
    let decoded = percent_decode(pointer);
    root.pointer(&decoded)
        .ok_or_else(|| format!("`$ref` {r} does not resolve in the document"))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Follows `$ref`s whose siblings are only annotations (at most 64 hops).
fn resolve<'a>(root: &'a Value, mut v: &'a Value) -> Result<&'a Value, String> {
    for _ in 0..64 {
        match v {
            Value::Object(m)
                if m.contains_key("$ref") && m.keys().all(|k| k == "$ref" || !constrains(k)) =>
            {
                v = resolve_ref(root, &m["$ref"])?;
            }
            _ => return Ok(v),
        }
    }
    Err("`$ref` chain too long or cyclic".to_owned())
}

// ---------------------------------------------------------------------------------------
// Types.

const TYPE_NAMES: [&str; 7] = [
    "string", "integer", "number", "boolean", "object", "array", "null",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Types(u8);

impl Types {
    const ALL: Types = Types(0x7f);
    const NONE: Types = Types(0);

    fn bit(name: &str) -> u8 {
        TYPE_NAMES
            .iter()
            .position(|t| *t == name)
            .map_or(0, |i| 1 << i)
    }
    fn has(self, name: &str) -> bool {
        self.0 & Self::bit(name) != 0
    }
    fn with(self, name: &str) -> Types {
        Types(self.0 | Self::bit(name))
    }
    /// Whether a schema of these types accepts every instance of type `name`.
    fn accepts(self, name: &str) -> bool {
        self.has(name) || (name == "integer" && self.has("number"))
    }
    fn names(self) -> impl Iterator<Item = &'static str> {
        TYPE_NAMES.into_iter().filter(move |t| self.has(t))
    }
    fn is_empty(self) -> bool {
        self.0 == 0
    }
    fn describe(self) -> String {
        if self == Self::ALL {
            return "any".to_owned();
        }
        if self.is_empty() {
            return "nothing".to_owned();
        }
        let names: Vec<String> = self.names().map(|n| format!("\"{n}\"")).collect();
        names.join(" | ")
    }
}

fn type_of_value(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0) {
                "integer"
            } else {
                "number"
            }
        }
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn declared_types(obj: &Map<String, Value>) -> Option<Types> {
    match obj.get("type")? {
        Value::String(s) => Some(Types::NONE.with(s)),
        Value::Array(a) => Some(
            a.iter()
                .filter_map(Value::as_str)
                .fold(Types::NONE, Types::with),
        ),
        _ => None,
    }
}

/// The values of `enum`/`const` (their intersection when both are present).
fn listed_values(obj: &Map<String, Value>) -> Option<Vec<Value>> {
    let en = obj.get("enum").and_then(Value::as_array).cloned();
    match (obj.get("const"), en) {
        (Some(c), Some(e)) => Some(if e.contains(c) {
            vec![c.clone()]
        } else {
            vec![]
        }),
        (Some(c), None) => Some(vec![c.clone()]),
        (None, e) => e,
    }
}

/// The types a schema can accept: `type`, narrowed by the values of `enum`/`const`.
fn effective_types(obj: &Map<String, Value>) -> Types {
    let declared = declared_types(obj).unwrap_or(Types::ALL);
    match listed_values(obj) {
        Some(vals) => {
            let of_values = vals
                .iter()
                .map(type_of_value)
                .fold(Types::NONE, Types::with);
            // An integer value is also accepted by a declared "number".
            let mut t = Types(declared.0 & of_values.0);
            if of_values.has("integer") && declared.has("number") && !declared.has("integer") {
                t = t.with("number");
            }
            t
        }
        None => declared,
    }
}

// ---------------------------------------------------------------------------------------
// The inclusion check.

#[derive(Debug, Clone, PartialEq)]
struct Finding {
    path: String,
    change: Change,
}

fn dedup(findings: &mut Vec<Finding>) {
    let mut seen: Vec<Finding> = Vec::new();
    findings.retain(|f| {
        if seen.contains(f) {
            false
        } else {
            seen.push(f.clone());
            true
        }
    });
}

const MAX_DEPTH: usize = 200;

/// Proves `sub ⊆ sup`; `rule` says which of them is the old version.
struct Checker<'a> {
    rule: Rule,
    sup_root: &'a Value,
    sub_root: &'a Value,
    stack: Vec<(usize, usize)>,
}

enum Violation {
    Certain(&'static str),
    Unknown(&'static str),
}

impl Checker<'_> {
    fn backward(&self) -> bool {
        self.rule == Rule::Backward
    }

    /// `(old, new)` from `(sup, sub)`.
    fn old_new<T>(&self, sup: T, sub: T) -> (T, T) {
        if self.backward() {
            (sub, sup)
        } else {
            (sup, sub)
        }
    }

    /// The sup side accepts less than the sub side for `keyword`.
    fn narrowed(&self, keyword: &str, sup: Option<&Value>, sub: Option<&Value>) -> Change {
        let (from, to) = self.old_new(sup.cloned(), sub.cloned());
        let keyword = keyword.to_owned();
        if self.backward() {
            Change::ConstraintTightened { keyword, from, to }
        } else {
            Change::ConstraintLoosened { keyword, from, to }
        }
    }

    fn changed(&self, keyword: &str, sup: Option<&Value>, sub: Option<&Value>) -> Change {
        let (from, to) = self.old_new(sup.cloned(), sub.cloned());
        Change::ConstraintChanged {
            keyword: keyword.to_owned(),
            from,
            to,
        }
    }

    fn type_changed(&self, sup: Types, sub: Types) -> Change {
        let (from, to) = self.old_new(sup, sub);
        Change::TypeChanged {
            from: from.describe(),
            to: to.describe(),
        }
    }

    fn unsupported(path: &str, keyword: &str, reason: impl Into<String>) -> Vec<Finding> {
        vec![Finding {
            path: path.to_owned(),
            change: Change::Unsupported {
                keyword: keyword.to_owned(),
                reason: reason.into(),
            },
        }]
    }

    /// Every way `sub` accepts a document `sup` rejects (empty: proven `sub ⊆ sup`).
    fn cmp(&mut self, sup: &Value, sub: &Value, path: &str) -> Vec<Finding> {
        if self.stack.len() > MAX_DEPTH {
            return Self::unsupported(path, "$ref", "schema nesting too deep");
        }
        let sup = match resolve(self.sup_root, sup) {
            Ok(v) => v,
            Err(e) => return Self::unsupported(path, "$ref", e),
        };
        let sub = match resolve(self.sub_root, sub) {
            Ok(v) => v,
            Err(e) => return Self::unsupported(path, "$ref", e),
        };
        if is_false(sub) || is_trivially_true(sup) {
            return Vec::new();
        }
        let empty = Map::new();
        let sub_obj = match sub {
            Value::Object(m) => m,
            Value::Bool(_) => &empty,
            _ => return Self::unsupported(path, "$schema", "schema is not an object or boolean"),
        };
        if is_false(sup) {
            let change = self.type_changed(Types::NONE, effective_types(sub_obj));
            return vec![Finding {
                path: path.to_owned(),
                change,
            }];
        }
        let Value::Object(sup_obj) = sup else {
            return Self::unsupported(path, "$schema", "schema is not an object or boolean");
        };
        // Assume inclusion for a pair already being proven (coinduction over `$ref` cycles).
        let key = (sup as *const Value as usize, sub as *const Value as usize);
        if self.stack.contains(&key) {
            return Vec::new();
        }
        self.stack.push(key);
        let out = self.cmp_objects(sup_obj, sub_obj, path);
        self.stack.pop();
        out
    }

    fn cmp_objects(
        &mut self,
        sup: &Map<String, Value>,
        sub: &Map<String, Value>,
        path: &str,
    ) -> Vec<Finding> {
        // `$ref` with constraining siblings: both must accept.
        if let Some(r) = sup.get("$ref") {
            let target = match resolve_ref(self.sup_root, r) {
                Ok(t) => t,
                Err(e) => return Self::unsupported(path, "$ref", e),
            };
            let mut f = self.cmp(target, &Value::Object(sub.clone()), path);
            f.extend(self.cmp(&without(sup, &["$ref"]), &Value::Object(sub.clone()), path));
            return f;
        }
        if let Some(r) = sub.get("$ref") {
            // Conservative: the siblings of the `$ref` are ignored on the accepted side.
            let target = match resolve_ref(self.sub_root, r) {
                Ok(t) => t,
                Err(e) => return Self::unsupported(path, "$ref", e),
            };
            return self.cmp(&Value::Object(sup.clone()), target, path);
        }
        let sub_v = Value::Object(sub.clone());
        if let Some(Value::Array(parts)) = sup.get("allOf") {
            let mut f = Vec::new();
            for part in parts {
                f.extend(self.cmp(part, &sub_v, path));
            }
            f.extend(self.cmp(&without(sup, &["allOf"]), &sub_v, path));
            return f;
        }
        let sup_v = Value::Object(sup.clone());
        if let Some(Value::Array(parts)) = sub.get("allOf") {
            // `sub` is included if any of its conjuncts is.
            let rest = self.cmp(&sup_v, &without(sub, &["allOf"]), path);
            if rest.is_empty() || parts.iter().any(|p| self.cmp(&sup_v, p, path).is_empty()) {
                return Vec::new();
            }
            return rest;
        }
        if let Some((kw, alts)) = union_of(sub) {
            // Conservative: keywords next to the union on the accepted side are ignored.
            let mut f = Vec::new();
            for (i, alt) in alts.iter().enumerate() {
                let alt_path = format!("{path}/{kw}/{i}");
                f.extend(self.cmp_alternative(sup, alt, &alt_path));
            }
            return f;
        }
        if let Some((_, alts)) = union_of(sup) {
            let mut f = self.cmp(&without(sup, &["anyOf", "oneOf"]), &sub_v, path);
            if alts.iter().any(|a| self.cmp(a, &sub_v, path).is_empty()) {
                return f;
            }
            // Split a multi-type `sub` by type: each type may be covered by another branch.
            let types = effective_types(sub);
            let pieces: Vec<Value> = if types.names().count() > 1 {
                types
                    .names()
                    .map(|t| {
                        let mut m = sub.clone();
                        m.insert("type".to_owned(), Value::String(t.to_owned()));
                        Value::Object(m)
                    })
                    .collect()
            } else {
                vec![sub_v.clone()]
            };
            for piece in &pieces {
                f.extend(self.best_alternative(alts, piece, path));
            }
            return f;
        }
        self.core(sup, sub, path)
    }

    /// `sub` must be covered by one alternative of `sup`; if none covers it, the findings
    /// against the most plausible one.
    fn best_alternative(&mut self, alts: &[Value], sub: &Value, path: &str) -> Vec<Finding> {
        let mut best: Option<(usize, Vec<Finding>)> = None;
        let sub_types = sub.as_object().map_or(Types::ALL, effective_types);
        for alt in alts {
            let f = self.cmp(alt, sub, path);
            if f.is_empty() {
                return f;
            }
            let alt_types = resolve(self.sup_root, alt)
                .ok()
                .and_then(Value::as_object)
                .map_or(Types::ALL, effective_types);
            let type_ok = sub_types.names().all(|t| alt_types.accepts(t));
            let score = usize::from(!type_ok) * 10_000 + f.len();
            if best.as_ref().is_none_or(|(s, _)| score < *s) {
                best = Some((score, f));
            }
        }
        match best {
            Some((_, f)) => f,
            None => {
                let change = self.type_changed(Types::NONE, sub_types);
                vec![Finding {
                    path: path.to_owned(),
                    change,
                }]
            }
        }
    }

    /// One alternative of a union on the accepted side.
    fn cmp_alternative(
        &mut self,
        sup: &Map<String, Value>,
        alt: &Value,
        alt_path: &str,
    ) -> Vec<Finding> {
        let sup_v = Value::Object(sup.clone());
        let Some((_, sup_alts)) = union_of(sup) else {
            return self.cmp(&sup_v, alt, alt_path);
        };
        let mut f = self.cmp(&without(sup, &["anyOf", "oneOf"]), alt, alt_path);
        if sup_alts
            .iter()
            .any(|s| self.cmp(s, alt, alt_path).is_empty())
        {
            return f;
        }
        if let Some(j) = self.corresponding(sup_alts, alt) {
            f.extend(self.cmp(&sup_alts[j], alt, alt_path));
            return f;
        }
        f.push(Finding {
            path: alt_path.to_owned(),
            change: if self.backward() {
                Change::AlternativeRemoved
            } else {
                Change::AlternativeAdded
            },
        });
        f
    }

    /// The alternative of `sup_alts` that stands for `alt`: the same `$ref`, or the same
    /// tag (a property with the same `const`).
    fn corresponding(&self, sup_alts: &[Value], alt: &Value) -> Option<usize> {
        if let Some(r) = alt.get("$ref")
            && let Some(j) = sup_alts.iter().position(|s| s.get("$ref") == Some(r))
        {
            return Some(j);
        }
        let tags = |root: &Value, v: &Value| -> Vec<(String, Value)> {
            let Some(props) = resolve(root, v)
                .ok()
                .and_then(|v| v.get("properties"))
                .and_then(Value::as_object)
            else {
                return Vec::new();
            };
            props
                .iter()
                .filter_map(|(k, p)| {
                    let p = resolve(root, p).ok()?;
                    let c = p.get("const").cloned().or_else(|| match p.get("enum") {
                        Some(Value::Array(a)) if a.len() == 1 => Some(a[0].clone()),
                        _ => None,
                    })?;
                    Some((k.clone(), c))
                })
                .collect()
        };
        let mine = tags(self.sub_root, alt);
        if mine.is_empty() {
            return None;
        }
        sup_alts.iter().position(|s| {
            let theirs = tags(self.sup_root, s);
            mine.iter().any(|t| theirs.contains(t))
        })
    }

    /// Two schemas without `$ref`, `allOf`, `anyOf`, `oneOf`.
    fn core(
        &mut self,
        sup: &Map<String, Value>,
        sub: &Map<String, Value>,
        path: &str,
    ) -> Vec<Finding> {
        let mut f = Vec::new();
        let sup_types = effective_types(sup);
        let sub_types = effective_types(sub);
        if sub_types.names().any(|t| !sup_types.accepts(t)) {
            f.push(Finding {
                path: path.to_owned(),
                change: self.type_changed(sup_types, sub_types),
            });
        }
        let common = sub_types
            .names()
            .filter(|t| sup_types.accepts(t))
            .fold(Types::NONE, Types::with);
        if common.is_empty() {
            return f;
        }

        // Finite value sets: `enum`/`const`, or a schema of only null/boolean.
        let sup_vals = listed_values(sup);
        let sub_vals = listed_values(sub).or_else(|| {
            common
                .names()
                .all(|t| t == "null" || t == "boolean")
                .then(|| {
                    let mut v = Vec::new();
                    if common.has("null") {
                        v.push(Value::Null);
                    }
                    if common.has("boolean") {
                        v.extend([Value::Bool(false), Value::Bool(true)]);
                    }
                    v
                })
        });
        if let Some(vals) = sub_vals {
            for v in vals {
                let t = type_of_value(&v);
                if !sub_types.accepts(t) || !sup_types.accepts(t) {
                    continue; // not accepted by sub, or already reported as a type change
                }
                if let Some(allowed) = &sup_vals
                    && !allowed.contains(&v)
                {
                    let change = if self.backward() {
                        Change::EnumValueRemoved { value: v }
                    } else {
                        Change::EnumValueAdded { value: v }
                    };
                    f.push(Finding {
                        path: path.to_owned(),
                        change,
                    });
                    continue;
                }
                match value_violates(sup, &v) {
                    None => {}
                    Some(Violation::Certain(kw)) => f.push(Finding {
                        path: path.to_owned(),
                        change: self.narrowed(kw, sup.get(kw), sub.get(kw)),
                    }),
                    Some(Violation::Unknown(kw)) => f.extend(Self::unsupported(
                        path,
                        kw,
                        format!("cannot check the value {v} against `{kw}`"),
                    )),
                }
            }
            return f;
        }
        if sup_vals.is_some() {
            let kw = if sup.contains_key("enum") {
                "enum"
            } else {
                "const"
            };
            f.push(Finding {
                path: path.to_owned(),
                change: self.narrowed(kw, sup.get(kw), sub.get(kw)),
            });
            return f;
        }

        if common.has("integer") || common.has("number") {
            let integer_only = !common.has("number");
            self.numeric(sup, sub, integer_only, path, &mut f);
        }
        if common.has("string") {
            self.count_bound(sup, sub, "minLength", true, path, &mut f);
            self.count_bound(sup, sub, "maxLength", false, path, &mut f);
            for kw in ["pattern", "format"] {
                if let Some(s) = sup.get(kw) {
                    match sub.get(kw) {
                        Some(b) if b == s => {}
                        None => f.push(Finding {
                            path: path.to_owned(),
                            change: self.narrowed(kw, Some(s), None),
                        }),
                        Some(b) => f.push(Finding {
                            path: path.to_owned(),
                            change: self.changed(kw, Some(s), Some(b)),
                        }),
                    }
                }
            }
        }
        if common.has("array") {
            self.array(sup, sub, path, &mut f);
        }
        if common.has("object") {
            self.object(sup, sub, path, &mut f);
        }
        for (k, v) in sup {
            if is_analysed(k) || is_annotation(k) {
                continue;
            }
            if sub.get(k) != Some(v) {
                f.extend(Self::unsupported(
                    path,
                    k,
                    "keyword not analysed and not identical on both sides",
                ));
            }
        }
        f
    }

    fn numeric(
        &mut self,
        sup: &Map<String, Value>,
        sub: &Map<String, Value>,
        integer_only: bool,
        path: &str,
        f: &mut Vec<Finding>,
    ) {
        for lower in [true, false] {
            let Some(s) = bound(sup, lower, integer_only) else {
                continue;
            };
            let b = bound(sub, lower, integer_only);
            let ok = b.as_ref().is_some_and(|b| {
                let inside = if lower {
                    b.value > s.value
                } else {
                    b.value < s.value
                };
                inside || (b.value == s.value && (b.exclusive || !s.exclusive))
            });
            if !ok {
                f.push(Finding {
                    path: path.to_owned(),
                    change: self.narrowed(s.keyword, Some(&s.raw), b.as_ref().map(|b| &b.raw)),
                });
            }
        }
        if let Some(m) = sup.get("multipleOf").and_then(Value::as_f64) {
            let ok = (integer_only && m == 1.0)
                || sub
                    .get("multipleOf")
                    .and_then(Value::as_f64)
                    .is_some_and(|n| {
                        let q = n / m;
                        (q - q.round()).abs() < 1e-9 && q.round() >= 1.0
                    });
            if !ok {
                f.push(Finding {
                    path: path.to_owned(),
                    change: self.narrowed(
                        "multipleOf",
                        sup.get("multipleOf"),
                        sub.get("multipleOf"),
                    ),
                });
            }
        }
    }

    /// `minLength`-like (`lower`) or `maxLength`-like bounds on counts.
    fn count_bound(
        &self,
        sup: &Map<String, Value>,
        sub: &Map<String, Value>,
        kw: &str,
        lower: bool,
        path: &str,
        f: &mut Vec<Finding>,
    ) {
        let Some(s) = sup.get(kw).and_then(Value::as_f64) else {
            return;
        };
        let b = sub.get(kw).and_then(Value::as_f64);
        let ok = match (lower, b) {
            (true, b) => b.unwrap_or(0.0) >= s,
            (false, Some(b)) => b <= s,
            (false, None) => false,
        };
        if !ok {
            f.push(Finding {
                path: path.to_owned(),
                change: self.narrowed(kw, sup.get(kw), sub.get(kw)),
            });
        }
    }

    fn array(
        &mut self,
        sup: &Map<String, Value>,
        sub: &Map<String, Value>,
        path: &str,
        f: &mut Vec<Finding>,
    ) {
        self.count_bound(sup, sub, "minItems", true, path, f);
        self.count_bound(sup, sub, "maxItems", false, path, f);
        if sup.get("uniqueItems") == Some(&Value::Bool(true))
            && sub.get("uniqueItems") != Some(&Value::Bool(true))
        {
            f.push(Finding {
                path: path.to_owned(),
                change: self.narrowed(
                    "uniqueItems",
                    sup.get("uniqueItems"),
                    sub.get("uniqueItems"),
                ),
            });
        }
        for kw in ["prefixItems", "contains"] {
            if (sup.contains_key(kw) || sub.contains_key(kw)) && sup.get(kw) != sub.get(kw) {
                f.extend(Self::unsupported(
                    path,
                    kw,
                    "tuple/contains changes are not analysed",
                ));
            }
        }
        if let Some(si) = sup.get("items") {
            let bi = sub.get("items").cloned().unwrap_or(Value::Bool(true));
            if si.is_array() || bi.is_array() {
                if Some(si) != sub.get("items") {
                    f.extend(Self::unsupported(
                        path,
                        "items",
                        "array-form `items` not analysed",
                    ));
                }
            } else {
                f.extend(self.cmp(si, &bi, &format!("{path}/items")));
            }
        }
    }

    fn object(
        &mut self,
        sup: &Map<String, Value>,
        sub: &Map<String, Value>,
        path: &str,
        f: &mut Vec<Finding>,
    ) {
        let empty = Map::new();
        let sup_props = sup
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let sub_props = sub
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let t = Value::Bool(true);
        let sup_add = sup.get("additionalProperties").unwrap_or(&t);
        let sub_add = sub.get("additionalProperties").unwrap_or(&t);
        let (sup_model, sub_model) = (model_of(sup), model_of(sub));

        if (sup.contains_key("patternProperties") || sub.contains_key("patternProperties"))
            && sup.get("patternProperties") != sub.get("patternProperties")
        {
            f.extend(Self::unsupported(
                path,
                "patternProperties",
                "changes to patternProperties are not analysed",
            ));
        }

        let names: BTreeSet<&String> = sup_props.keys().chain(sub_props.keys()).collect();
        for name in names {
            let p = format!("{path}/properties/{}", escape(name));
            match (sup_props.get(name), sub_props.get(name)) {
                (Some(sp), Some(bp)) => f.extend(self.cmp(sp, bp, &p)),
                (None, Some(bp)) => {
                    // `sub` declares it; `sup` falls back to additionalProperties.
                    if is_trivially_true(sup_add)
                        || (!is_false(sup_add) && self.cmp(sup_add, bp, &p).is_empty())
                    {
                        continue;
                    }
                    let change = if self.backward() {
                        Change::PropertyRemoved { model: sup_model }
                    } else {
                        Change::PropertyAdded { model: sup_model }
                    };
                    f.push(Finding { path: p, change });
                }
                (Some(sp), None) => {
                    // `sup` declares it; in `sub` it falls under additionalProperties.
                    if is_false(sub_add) || self.cmp(sp, sub_add, &p).is_empty() {
                        continue;
                    }
                    let change = if self.backward() {
                        Change::PropertyAdded { model: sub_model }
                    } else {
                        Change::PropertyRemoved { model: sub_model }
                    };
                    f.push(Finding { path: p, change });
                }
                (None, None) => {}
            }
        }

        if !is_false(sub_add) && !is_trivially_true(sup_add) {
            if is_false(sup_add) || is_trivially_true(sub_add) {
                let (from, to) = self.old_new(sup_model, sub_model);
                let change = if self.backward() {
                    Change::ContentModelClosed { from, to }
                } else {
                    Change::ContentModelOpened { from, to }
                };
                f.push(Finding {
                    path: path.to_owned(),
                    change,
                });
            } else {
                f.extend(self.cmp(sup_add, sub_add, &format!("{path}/additionalProperties")));
            }
        }

        let required = |m: &Map<String, Value>| -> BTreeSet<String> {
            m.get("required")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let sub_req = required(sub);
        for r in required(sup).difference(&sub_req) {
            let has_default = sup_props
                .get(r)
                .and_then(|s| resolve(self.sup_root, s).ok())
                .is_some_and(|s| s.get("default").is_some());
            if has_default {
                continue;
            }
            f.push(Finding {
                path: format!("{path}/properties/{}", escape(r)),
                change: if self.backward() {
                    Change::RequiredAdded
                } else {
                    Change::RequiredRemoved
                },
            });
        }
        self.count_bound(sup, sub, "minProperties", true, path, f);
        self.count_bound(sup, sub, "maxProperties", false, path, f);
    }
}

struct Bound {
    value: f64,
    exclusive: bool,
    keyword: &'static str,
    raw: Value,
}

/// The effective lower (or upper) numeric bound of a schema; for integer-only checks,
/// normalised to an inclusive integer bound.
fn bound(obj: &Map<String, Value>, lower: bool, integer_only: bool) -> Option<Bound> {
    let (incl_kw, excl_kw) = if lower {
        ("minimum", "exclusiveMinimum")
    } else {
        ("maximum", "exclusiveMaximum")
    };
    let mut found: Vec<Bound> = Vec::new();
    // Draft-4 style boolean `exclusiveMinimum` makes `minimum` exclusive.
    let legacy_excl = obj.get(excl_kw) == Some(&Value::Bool(true));
    if let Some(v) = obj.get(incl_kw).and_then(Value::as_f64) {
        found.push(Bound {
            value: v,
            exclusive: legacy_excl,
            keyword: incl_kw,
            raw: obj[incl_kw].clone(),
        });
    }
    if let Some(v) = obj.get(excl_kw).and_then(Value::as_f64) {
        found.push(Bound {
            value: v,
            exclusive: true,
            keyword: excl_kw,
            raw: obj[excl_kw].clone(),
        });
    }
    let mut found: Vec<Bound> = found
        .into_iter()
        .map(|mut b| {
            if integer_only {
                b.value = match (lower, b.exclusive) {
                    (true, true) => b.value.floor() + 1.0,
                    (true, false) => b.value.ceil(),
                    (false, true) => b.value.ceil() - 1.0,
                    (false, false) => b.value.floor(),
                };
                b.exclusive = false;
            }
            b
        })
        .collect();
    // The stricter one wins.
    found.sort_by(|a, b| {
        let ord = a.value.total_cmp(&b.value);
        let ord = if lower { ord.reverse() } else { ord };
        ord.then(b.exclusive.cmp(&a.exclusive))
    });
    found.into_iter().next()
}

/// Whether the schema `sup` (already known to accept `v`'s type and, if listed, value)
/// rejects the value `v`.
fn value_violates(sup: &Map<String, Value>, v: &Value) -> Option<Violation> {
    match v {
        Value::Number(n) => {
            let x = n.as_f64()?;
            for lower in [true, false] {
                if let Some(b) = bound(sup, lower, false) {
                    let inside = if lower { x > b.value } else { x < b.value };
                    if !(inside || (x == b.value && !b.exclusive)) {
                        return Some(Violation::Certain(b.keyword));
                    }
                }
            }
            if let Some(m) = sup.get("multipleOf").and_then(Value::as_f64) {
                let q = x / m;
                if (q - q.round()).abs() > 1e-9 {
                    return Some(Violation::Certain("multipleOf"));
                }
            }
            None
        }
        Value::String(s) => {
            let len = s.chars().count() as f64;
            if sup
                .get("minLength")
                .and_then(Value::as_f64)
                .is_some_and(|m| len < m)
            {
                return Some(Violation::Certain("minLength"));
            }
            if sup
                .get("maxLength")
                .and_then(Value::as_f64)
                .is_some_and(|m| len > m)
            {
                return Some(Violation::Certain("maxLength"));
            }
            if sup.contains_key("pattern") {
                return Some(Violation::Unknown("pattern"));
            }
            if sup.contains_key("format") {
                return Some(Violation::Unknown("format"));
            }
            None
        }
        Value::Array(_) | Value::Object(_) => {
            const STRUCTURAL: [&str; 9] = [
                "items",
                "minItems",
                "maxItems",
                "uniqueItems",
                "properties",
                "required",
                "additionalProperties",
                "minProperties",
                "maxProperties",
            ];
            STRUCTURAL
                .into_iter()
                .find(|k| sup.contains_key(*k))
                .map(Violation::Unknown)
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Published-schema diff.

enum Kind {
    Schema,
    SchemaMap,
    SchemaList,
    Set,
    Value,
}

fn keyword_kind(k: &str) -> Kind {
    match k {
        "items"
        | "additionalProperties"
        | "not"
        | "if"
        | "then"
        | "else"
        | "contains"
        | "propertyNames"
        | "unevaluatedProperties"
        | "unevaluatedItems"
        | "additionalItems" => Kind::Schema,
        "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas" => {
            Kind::SchemaMap
        }
        "anyOf" | "oneOf" | "allOf" | "prefixItems" => Kind::SchemaList,
        "required" | "enum" | "type" => Kind::Set,
        _ => Kind::Value,
    }
}

fn as_set(v: &Value) -> Option<Vec<&Value>> {
    let mut items: Vec<&Value> = v.as_array()?.iter().collect();
    items.sort_by_key(|x| x.to_string());
    items.dedup();
    Some(items)
}

fn diff_schema(old: &Value, new: &Value, path: &str, out: &mut Vec<Finding>) {
    let (Value::Object(a), Value::Object(b)) = (old, new) else {
        if old != new {
            out.push(Finding {
                path: path.to_owned(),
                change: Change::Modified {
                    keyword: "(schema)".to_owned(),
                    from: Some(old.clone()),
                    to: Some(new.clone()),
                },
            });
        }
        return;
    };
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for k in keys {
        if is_annotation(k) {
            continue;
        }
        let p = format!("{path}/{}", escape(k));
        let modified = |out: &mut Vec<Finding>| {
            out.push(Finding {
                path: p.clone(),
                change: Change::Modified {
                    keyword: k.clone(),
                    from: a.get(k).cloned(),
                    to: b.get(k).cloned(),
                },
            });
        };
        let (Some(x), Some(y)) = (a.get(k), b.get(k)) else {
            modified(out);
            continue;
        };
        match keyword_kind(k) {
            Kind::Schema => diff_schema(x, y, &p, out),
            Kind::SchemaMap => match (x.as_object(), y.as_object()) {
                (Some(xm), Some(ym)) => {
                    let names: BTreeSet<&String> = xm.keys().chain(ym.keys()).collect();
                    for n in names {
                        let np = format!("{p}/{}", escape(n));
                        match (xm.get(n), ym.get(n)) {
                            (Some(xs), Some(ys)) => diff_schema(xs, ys, &np, out),
                            (xs, ys) => out.push(Finding {
                                path: np,
                                change: Change::Modified {
                                    keyword: k.clone(),
                                    from: xs.cloned(),
                                    to: ys.cloned(),
                                },
                            }),
                        }
                    }
                }
                _ => modified(out),
            },
            Kind::SchemaList => match (x.as_array(), y.as_array()) {
                (Some(xs), Some(ys)) if xs.len() == ys.len() => {
                    for (i, (xi, yi)) in xs.iter().zip(ys).enumerate() {
                        diff_schema(xi, yi, &format!("{p}/{i}"), out);
                    }
                }
                _ => modified(out),
            },
            Kind::Set => {
                let same = match (as_set(x), as_set(y)) {
                    (Some(xs), Some(ys)) => xs == ys,
                    _ => x == y,
                };
                if !same {
                    modified(out);
                }
            }
            Kind::Value => {
                if x != y {
                    modified(out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn display_names_event_versions_path_and_change() {
        let old = json!({"type": "object", "properties": {"qty": {"type": "integer"}}});
        let new = json!({"type": "object", "properties": {"qty": {"type": "string"}}});
        let found = check_pair("LineAdded", 1, &old, 2, &new, Compatibility::Backward);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].to_string(),
            "event `LineAdded` v1 -> v2: BACKWARD incompatible (the v2 schema does not accept \
             every v1 document) at `/properties/qty`: type changed from \"integer\" to \"string\""
        );
    }

    #[test]
    fn display_forward_and_constraint() {
        let old = json!({"type": "string", "maxLength": 10});
        let new = json!({"type": "string", "maxLength": 20});
        let found = check_pair("Renamed", 3, &old, 4, &new, Compatibility::Full);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].to_string(),
            "event `Renamed` v3 -> v4: FORWARD incompatible (the v3 schema does not accept every \
             v4 document) at the root: `maxLength` loosened from 10 to 20"
        );
    }

    #[test]
    fn display_published() {
        let old = json!({"type": "object", "properties": {"id": {"type": "string"}}});
        let new = json!({"type": "object", "properties": {"id": {"type": "integer"}}});
        let found = check_published_unchanged("Opened", 1, &old, &new);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].to_string(),
            "event `Opened` v1: the published schema changed at `/properties/id/type`: `type` \
             changed from \"string\" to \"integer\"; only annotations (title, description, ...) \
             may change, publish a new version instead"
        );
    }

    #[test]
    fn display_property_and_enum_changes() {
        let c = Change::PropertyRemoved {
            model: ContentModel::Closed,
        };
        assert_eq!(
            c.to_string(),
            "property removed; the new schema's closed content model rejects it"
        );
        let c = Change::EnumValueRemoved {
            value: json!("eur"),
        };
        assert_eq!(c.to_string(), "enum value \"eur\" removed");
        assert_eq!(c.kind(), "EnumValueRemoved");
    }

    #[test]
    fn parses_modes() {
        for m in Compatibility::ALL {
            assert_eq!(m.as_str().parse::<Compatibility>(), Ok(m));
        }
        assert_eq!(
            "full-transitive".parse::<Compatibility>(),
            Ok(Compatibility::FullTransitive)
        );
        assert!("sideways".parse::<Compatibility>().is_err());
    }

    #[test]
    fn percent_decoding_of_refs() {
        assert_eq!(percent_decode("/$defs/A%20B"), "/$defs/A B");
        assert_eq!(percent_decode("/$defs/100%"), "/$defs/100%");
    }
}
