#!/usr/bin/env python3
"""Writes the compile-time benchmark's scratch workspace: one domain of N events and N
commands, twice. `factum-domain` declares it with factum's macros; `baseline-domain`
declares the same types with serde and schemars derives and does the same work in
hand-written `match`es. See README.md beside this file for what is and is not equivalent.

Usage: generate.py REPO OUT N
"""

import sys
import tomllib
from pathlib import Path

# Every UPCAST_EVERY-th event is at version 2 and reads its retired version 1 through a
# JSON upcast, as a domain that has lived through a few releases does.
UPCAST_EVERY = 10

FIELD_DECLS = """\
    /// The ledger the entry belongs to.
    pub id: String,
    /// What the entry is called.
    pub label: String,
    /// How much it is, in cents.
    pub amount: u64,
    /// Whether the ledger stays open after it.
    pub active: bool,
    /// A free-form note.
    pub note: Option<String>,
    /// Labels to search by.
    pub tags: Vec<String>,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The request that caused it.
    pub request_id: Uuid,
"""

FIELDS = ["id", "label", "amount", "active", "note", "tags", "at", "request_id"]


def event_name(k):
    return f"Entry{k}Recorded"


def command_name(k):
    return f"RecordEntry{k}"


def upcast_fn(k):
    return f"entry{k}_v1_to_v2"


def has_upcast(k):
    return k % UPCAST_EVERY == 0


def version(k):
    return 2 if has_upcast(k) else 1


def dependency(workspace_deps, name):
    """The repo's `[workspace.dependencies]` entry of `name`, as an inline table."""
    spec = workspace_deps[name]
    if isinstance(spec, str):
        spec = {"version": spec}
    parts = []
    for key, value in spec.items():
        if isinstance(value, bool):
            parts.append(f"{key} = {'true' if value else 'false'}")
        elif isinstance(value, list):
            items = ", ".join('"' + v + '"' for v in value)
            parts.append(f"{key} = [{items}]")
        else:
            parts.append(f'{key} = "{value}"')
    return f"{name} = {{ {', '.join(parts)} }}"


def profiles(cargo_toml_text):
    """The repo's `[profile.*]` sections, verbatim: the dev profile a developer builds with."""
    out, inside = [], False
    for line in cargo_toml_text.splitlines():
        if line.startswith("["):
            inside = line.startswith("[profile.")
        if inside:
            out.append(line)
    return "\n".join(out) + "\n"


def upcast_functions():
    """The v1 -> v2 upcasts, shared word for word by both crates: version 1 called the
    amount `qty`."""
    out = []
    for k in range(1, N + 1):
        if not has_upcast(k):
            continue
        out.append(f"""
/// Version 1 of `{event_name(k)}` called the amount `qty`.
pub fn {upcast_fn(k)}(mut payload: Value) -> Result<Value, UpcastFailed> {{
    let object = payload.as_object_mut().ok_or(UpcastFailed("not an object"))?;
    let amount = object.remove("qty").ok_or(UpcastFailed("no field `qty`"))?;
    object.insert("amount".to_owned(), amount);
    Ok(payload)
}}
""")
    return "".join(out)


COMMON_ITEMS = """
/// An old payload that an upcast could not read.
#[derive(Debug, thiserror::Error)]
#[error("cannot upcast: {0}")]
pub struct UpcastFailed(&'static str);

/// Why the ledger refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// An entry needs a label.
    #[error("{0}: the label is blank")]
    BlankLabel(&'static str),
    /// A closed ledger takes no more entries.
    #[error("the ledger is closed")]
    Closed,
}

/// The ledger's state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ledger {
    /// Entries applied.
    pub count: u64,
    /// Their total amount.
    pub total: u64,
    /// The newest entry's label.
    pub last_label: String,
    /// Whether an inactive entry closed it.
    pub closed: bool,
}
"""


def handler_body(k):
    fields = ", ".join(f"{f}: command.{f}" for f in FIELDS)
    return f"""        if self.closed {{
            return Err(LedgerError::Closed);
        }}
        if command.label.trim().is_empty() {{
            return Err(LedgerError::BlankLabel("{command_name(k)}"));
        }}
        Ok({event_name(k)} {{ {fields} }})"""


APPLY_BODY = """        self.count += 1;
        self.total += event.amount;
        self.last_label.clone_from(&event.label);
        self.closed = !event.active;"""


def structs(event_attrs, command_attrs, id_attr):
    """The N event and N command structs; `event_attrs(k)` and `command_attrs` are the
    lines above each, `id_attr` the line above the aggregate id."""
    return "".join(f"""
/// Entry {k} was recorded.
{event_attrs(k)}
pub struct {event_name(k)} {{
{FIELD_DECLS}}}

/// Record entry {k}.
{command_attrs}
pub struct {command_name(k)} {{
{id_attr}{FIELD_DECLS}}}
""" for k in range(1, N + 1))


def set_enums(event_derive, command_derive):
    """The enum of every event and the enum of every command, with the derives given."""
    out = [f"\n/// Every event of the ledger.\n#[derive({event_derive}Debug, Clone, PartialEq)]\npub enum LedgerEvent {{"]
    out += [f"    /// See [`{event_name(k)}`].\n    {event_name(k)}({event_name(k)})," for k in range(1, N + 1)]
    out.append(f"}}\n\n/// Every command of the ledger.\n#[derive({command_derive}Debug, Clone, PartialEq)]\npub enum LedgerCommand {{")
    out += [f"    /// See [`{command_name(k)}`].\n    {command_name(k)}({command_name(k)})," for k in range(1, N + 1)]
    out.append("}\n")
    return "\n".join(out)


def methods(handle_attr, apply_attr):
    """The ledger's handler of each command and apply of each event, below the attributes
    given."""
    return "".join(f"""{handle_attr}    fn record_entry{k}(&self, command: {command_name(k)}) -> Result<{event_name(k)}, LedgerError> {{
{handler_body(k)}
    }}

{apply_attr}    fn entry{k}_recorded(&mut self, event: &{event_name(k)}) {{
{APPLY_BODY}
    }}

""" for k in range(1, N + 1))


def match_fn(doc, signature, scrutinee, arms):
    """A public method whose body is one `match`."""
    body = "\n".join(f"            {arm}" for arm in arms)
    return f"""    /// {doc}
    pub fn {signature} {{
        match {scrutinee} {{
{body}
        }}
    }}
"""


def factum_crate():
    out = [
        "//! A generated domain declared with factum's macros (compile-time benchmark).",
        "use factum::chrono::{DateTime, Utc};",
        "use factum::prelude::*;",
        "use factum::serde_json::Value;",
        "use factum::uuid::Uuid;",
        COMMON_ITEMS,
        upcast_functions(),
    ]
    def event_attrs(k):
        upcast = f", version = 2, upcast_json(from = 1, with = {upcast_fn(k)})" if has_upcast(k) else ""
        return f'#[event(name = "{event_name(k)}"{upcast})]\n#[derive(Debug, Clone, PartialEq)]'

    out.append(structs(event_attrs, "#[command]\n#[derive(Debug, Clone, PartialEq)]", "    #[aggregate_id]\n"))
    out.append(set_enums("Events, ", "Commands, "))
    out.append("""
#[aggregate(name = "Ledger", events = LedgerEvent, commands = LedgerCommand, error = LedgerError)]
impl Ledger {""")
    out.append(methods("    #[handle]\n", "    #[apply]\n"))
    out.append("}\n")
    return "\n".join(out)


def baseline_crate():
    derive = "#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]"
    out = [
        "//! The generated domain of factum-domain, written by hand with serde and schemars",
        "//! (compile-time benchmark).",
        "use chrono::{DateTime, Utc};",
        "use schemars::JsonSchema;",
        "use schemars::generate::SchemaSettings;",
        "use serde::{Deserialize, Serialize};",
        "use serde_json::Value;",
        "use serde_json::value::RawValue;",
        "use uuid::Uuid;",
        COMMON_ITEMS,
        upcast_functions(),
        """
/// A stored event no arm of `LedgerEvent::decode` reads.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// No event of the set has the name and version.
    #[error("unknown event {0} v{1}")]
    Unknown(String, u32),
    /// The payload does not fit the type.
    #[error(transparent)]
    Payload(#[from] serde_json::Error),
    /// An upcast refused the payload.
    #[error(transparent)]
    Upcast(#[from] UpcastFailed),
}

/// One registered schema: kind, name, version, schema.
pub type SchemaEntry = (&'static str, &'static str, u32, Value);

fn event_schema<T: JsonSchema>(name: &'static str, version: u32) -> SchemaEntry {
    let schema = SchemaSettings::draft2020_12().for_serialize().into_generator().into_root_schema_for::<T>();
    ("event", name, version, schema.to_value())
}

fn command_schema<T: JsonSchema>(name: &'static str) -> SchemaEntry {
    let schema = SchemaSettings::draft2020_12().for_deserialize().into_generator().into_root_schema_for::<T>();
    ("command", name, 1, schema.to_value())
}
""",
    ]
    out.append(structs(lambda k: derive, derive, ""))
    out.append(set_enums("", ""))
    out.append("impl LedgerEvent {")
    # A variant is named after its type, which is named after the event or command.
    def name_fn(doc, variant):
        arms = [f'Self::{variant(k)}(_) => "{variant(k)}",' for k in range(1, N + 1)]
        return match_fn(doc, "name(&self) -> &'static str", "self", arms)

    out.append(name_fn("The stored name.", event_name))
    out.append(match_fn("The schema version written.", "version(&self) -> u32", "self",
                        [f"Self::{event_name(k)}(_) => {version(k)}," for k in range(1, N + 1)]))
    out.append(match_fn("The name, version and JSON payload to store.",
                        "encode(&self) -> Result<(&'static str, u32, Box<RawValue>), serde_json::Error>", "self",
                        [f'Self::{event_name(k)}(event) => Ok(("{event_name(k)}", {version(k)}, serde_json::value::to_raw_value(event)?)),'
                         for k in range(1, N + 1)]))
    arms = []
    for k in range(1, N + 1):
        arms.append(f'("{event_name(k)}", {version(k)}) => Ok(Self::{event_name(k)}(serde_json::from_str(payload.get())?)),')
        if has_upcast(k):
            arms.append(f'("{event_name(k)}", 1) => Ok(Self::{event_name(k)}(serde_json::from_value({upcast_fn(k)}(serde_json::from_str(payload.get())?)?)?)),')
    arms.append("_ => Err(DecodeError::Unknown(name.to_owned(), version)),")
    out.append(match_fn("Reads a stored event, upcasting retired versions.",
                        "decode(name: &str, version: u32, payload: &RawValue) -> Result<Self, DecodeError>",
                        "(name, version)", arms))
    out.append("}\n\nimpl LedgerCommand {")
    out.append(name_fn("The command's name.", command_name))
    out.append(match_fn("The id of the ledger it is for.", "aggregate_id(&self) -> String", "self",
                        [f"Self::{command_name(k)}(command) => command.id.to_string()," for k in range(1, N + 1)]))
    out.append(match_fn("The command as JSON.", "to_json(&self) -> Result<String, serde_json::Error>", "self",
                        [f"Self::{command_name(k)}(command) => serde_json::to_string(command)," for k in range(1, N + 1)]))
    out.append(match_fn("Reads a command by its name; `None` for a name of no command of the set.",
                        "from_json(name: &str, json: &str) -> Option<Result<Self, serde_json::Error>>", "name",
                        [f'"{command_name(k)}" => Some(serde_json::from_str(json).map(Self::{command_name(k)})),' for k in range(1, N + 1)]
                        + ["_ => None,"]))
    out.append("}\n\n/// The schemas of every event and command.\npub fn schemas() -> Vec<SchemaEntry> {\n    vec![")
    out += [f'        event_schema::<{event_name(k)}>("{event_name(k)}", {version(k)}),' for k in range(1, N + 1)]
    out += [f'        command_schema::<{command_name(k)}>("{command_name(k)}"),' for k in range(1, N + 1)]
    out.append("    ]\n}\n\nimpl Ledger {")
    out.append(match_fn("Applies an event.", "apply(&mut self, event: &LedgerEvent)", "event",
                        [f"LedgerEvent::{event_name(k)}(event) => self.entry{k}_recorded(event)," for k in range(1, N + 1)]))
    out.append(match_fn("Decides a command.", "handle(&self, command: LedgerCommand) -> Result<Vec<LedgerEvent>, LedgerError>", "command",
                        [f"LedgerCommand::{command_name(k)}(command) => self.record_entry{k}(command).map(|event| vec![LedgerEvent::{event_name(k)}(event)]),"
                         for k in range(1, N + 1)]))
    out.append(methods("", ""))
    out.append("}\n")
    return "\n".join(out)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    repo, out, N = Path(sys.argv[1]).resolve(), Path(sys.argv[2]), int(sys.argv[3])
    cargo_toml = (repo / "Cargo.toml").read_text()
    deps = tomllib.loads(cargo_toml)["workspace"]["dependencies"]
    write(out / "Cargo.toml", f"""[workspace]
resolver = "3"
members = ["factum-domain", "baseline-domain"]

{profiles(cargo_toml)}""")
    def manifest(name, dependencies):
        return f"""[package]
name = "{name}"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
""" + "".join(f"{line}\n" for line in dependencies)

    # factum without its default store: the domain crate uses none, and the prebuilt
    # dependencies stay small.
    factum = f'factum = {{ path = "{repo / "runtime"}", default-features = false }}'
    write(out / "factum-domain" / "Cargo.toml", manifest("factum-domain", [factum, dependency(deps, "thiserror")]))
    baseline = ["serde", "serde_json", "schemars", "chrono", "uuid", "thiserror"]
    write(out / "baseline-domain" / "Cargo.toml",
          manifest("baseline-domain", [dependency(deps, name) for name in baseline]))
    write(out / "factum-domain" / "src" / "lib.rs", factum_crate())
    write(out / "baseline-domain" / "src" / "lib.rs", baseline_crate())
