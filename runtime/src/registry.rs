//! The schema registry of a domain: every event version and command with its JSON Schema,
//! in a deterministic order, for `build.rs` scripts and `factum-codegen`.
//!
//! A domain crate builds it explicitly from its aggregates:
//!
//! ```
//! # use factum::prelude::*;
//! # #[event(name = "Opened")] pub struct Opened {}
//! # #[derive(Events)] pub enum AccountEvent { Opened(Opened) }
//! # #[command] pub struct Open { #[aggregate_id] pub id: String }
//! # #[derive(Commands)] pub enum AccountCommand { Open(Open) }
//! # #[derive(Debug, thiserror::Error)] #[error("no")] pub struct No;
//! # #[derive(Default)] pub struct Account;
//! # #[aggregate(events = AccountEvent, commands = AccountCommand, error = No)]
//! # impl Account {
//! #     #[handle] fn open(&self, _: Open) -> Result<Opened, No> { Ok(Opened {}) }
//! #     #[apply] fn opened(&mut self, _: &Opened) {}
//! # }
//! use factum::registry::Registry;
//!
//! let registry = Registry::builder().aggregate::<Account>().build().unwrap();
//! let names: Vec<_> = registry.entries().map(|entry| (entry.name.as_str(), entry.version)).collect();
//! assert_eq!(names, [("Opened", 1), ("Open", 1)]);
//! ```

use std::collections::{BTreeMap, BTreeSet};

use schemars::generate::SchemaSettings;
use serde::Serialize;

use crate::aggregate::Aggregate;
use crate::command::Command;
use crate::event::Event;

/// What an entry describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// An event version: its schema is the serialize contract (what is stored and sent).
    Event,
    /// A command: its schema is the deserialize contract (what is accepted).
    Command,
}

/// How stored versions older than an event's own reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UpcastPath {
    /// The first version: nothing to upcast.
    None,
    /// From the previous version's type, with `From`/`TryFrom`.
    Typed {
        /// The previous version.
        from: u32,
    },
    /// From retired versions, through JSON functions.
    Json {
        /// The oldest retired version still readable.
        oldest: u32,
    },
}

/// One event version or command.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegistryEntry {
    /// Event or command.
    pub kind: EntryKind,
    /// The stable name.
    pub name: String,
    /// The schema version (commands: 1).
    pub version: u32,
    /// The aggregates whose sets hold it, sorted.
    pub aggregates: BTreeSet<String>,
    /// How older versions reach this one (events only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upcast: Option<UpcastPath>,
    /// The Rust doc comment.
    pub doc: String,
    /// The JSON Schema (draft 2020-12); personal fields are marked with
    /// [`PERSONAL_KEYWORD`], the data subject's with [`SUBJECT_KEYWORD`].
    pub schema: serde_json::Value,
    /// The event's data subject and personal fields, when it has any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub personal: Option<PersonalEntry>,
    /// Whether each stored event of this version is signed by the service's key.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub signed: bool,
    /// The tags the event declares (`#[tag]`), in field order; each tagged property of
    /// the schema is marked with [`TAG_KEYWORD`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<TagEntry>,
}

/// The keyword marking a tagged field's property in an event's schema: the tag's key.
pub const TAG_KEYWORD: &str = "x-factum-tag";

/// One tag of a [`RegistryEntry`].
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct TagEntry {
    /// The tag's key.
    pub key: String,
    /// The JSON key of the field holding its value.
    pub field: String,
}

/// The keyword marking a personal field's property in an event's schema (`true`).
pub const PERSONAL_KEYWORD: &str = "x-factum-personal";
/// The keyword marking the data subject's property in an event's schema (`true`).
pub const SUBJECT_KEYWORD: &str = "x-factum-subject";

/// The personal data of one registered event version (from `#[subject]` and `#[pii]`).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct PersonalEntry {
    /// The JSON pointer of the data subject's field.
    pub subject: String,
    /// The personal fields.
    pub fields: Vec<PersonalFieldEntry>,
}

/// One personal field of a [`PersonalEntry`].
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct PersonalFieldEntry {
    /// The field's JSON pointer.
    pub pointer: String,
    /// What the field reads as once its subject is forgotten.
    pub redacted: serde_json::Value,
}

impl PersonalEntry {
    /// The entry of an event type's declaration, if it declares personal data.
    pub fn of(fields: &crate::personal::PersonalFields) -> Option<Self> {
        let subject = fields.subject?;
        Some(Self {
            subject: subject.to_owned(),
            fields: fields
                .fields
                .iter()
                .map(|field| PersonalFieldEntry {
                    pointer: field.pointer.to_owned(),
                    redacted: (field.redacted)(),
                })
                .collect(),
        })
    }

    /// Marks the subject's and the personal fields' properties in `schema`.
    fn mark(&self, schema: &mut serde_json::Value) {
        let mut mark = |pointer: &str, keyword: &str| {
            // The macro declares top-level fields: `/key`, `~` and `/` escaped.
            let key = pointer
                .strip_prefix('/')
                .unwrap_or(pointer)
                .replace("~1", "/")
                .replace("~0", "~");
            if let Some(property) = schema
                .get_mut("properties")
                .and_then(|properties| properties.get_mut(&key))
                .and_then(serde_json::Value::as_object_mut)
            {
                property.insert(keyword.to_owned(), serde_json::Value::Bool(true));
            }
        };
        mark(&self.subject, SUBJECT_KEYWORD);
        for field in &self.fields {
            mark(&field.pointer, PERSONAL_KEYWORD);
        }
    }
}

/// Two different types registered under one name and version.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error(
    "two different {kind:?} schemas are registered as `{name}` version {version}: each name and version denotes one payload shape"
)]
pub struct RegistryConflict {
    /// Event or command.
    pub kind: EntryKind,
    /// The name.
    pub name: String,
    /// The version.
    pub version: u32,
}

/// The constants of an `Event` impl that its registry entry records.
struct EventMeta {
    name: &'static str,
    version: u32,
    upcast: UpcastPath,
    doc: &'static str,
    personal: crate::personal::PersonalFields,
    signed: bool,
    tags: &'static [crate::tag::TagField],
}

/// Collects entries; see [`Registry::builder`].
#[derive(Debug, Default)]
pub struct RegistryBuilder {
    entries: BTreeMap<(EntryKind, String, u32), RegistryEntry>,
    conflicts: Vec<RegistryConflict>,
}

impl RegistryBuilder {
    /// Registers the aggregate's events (every version with a Rust type) and commands.
    pub fn aggregate<A: Aggregate>(mut self) -> Self {
        A::register(&mut self);
        self
    }

    /// Registers one event version, of `aggregate` if given.
    pub fn add_event<E: Event>(&mut self, aggregate: Option<&str>) {
        // Only the schema needs the type; the entry is made by code compiled once, not
        // once per event of every domain crate.
        let schema = SchemaSettings::draft2020_12()
            .for_serialize()
            .into_generator()
            .into_root_schema_for::<E>()
            .to_value();
        let event = EventMeta {
            name: E::NAME,
            version: E::VERSION,
            upcast: E::UPCAST,
            doc: E::DOC,
            personal: E::PERSONAL,
            signed: E::SIGNED,
            tags: E::TAGS,
        };
        self.add_event_entry(&event, aggregate, schema);
    }

    fn add_event_entry(
        &mut self,
        event: &EventMeta,
        aggregate: Option<&str>,
        mut schema: serde_json::Value,
    ) {
        let personal = PersonalEntry::of(&event.personal);
        if let Some(personal) = &personal {
            personal.mark(&mut schema);
        }
        for tag in event.tags {
            if let Some(property) = schema
                .get_mut("properties")
                .and_then(|properties| properties.get_mut(tag.field))
                .and_then(serde_json::Value::as_object_mut)
            {
                property.insert(TAG_KEYWORD.to_owned(), tag.key.into());
            }
        }
        self.add(
            EntryKind::Event,
            event.name,
            event.version,
            aggregate,
            Some(event.upcast),
            event.doc,
            schema,
        );
        if let Some(entry) =
            self.entries
                .get_mut(&(EntryKind::Event, event.name.to_owned(), event.version))
        {
            entry.personal = personal;
            entry.signed = event.signed;
            entry.tags = event
                .tags
                .iter()
                .map(|tag| TagEntry {
                    key: tag.key.to_owned(),
                    field: tag.field.to_owned(),
                })
                .collect();
        }
    }

    /// Registers one command, of `aggregate` if given.
    pub fn add_command<C: Command>(&mut self, aggregate: Option<&str>) {
        let schema = SchemaSettings::draft2020_12()
            .for_deserialize()
            .into_generator()
            .into_root_schema_for::<C>()
            .to_value();
        self.add(
            EntryKind::Command,
            C::NAME,
            1,
            aggregate,
            None,
            C::DOC,
            schema,
        );
    }

    #[allow(clippy::too_many_arguments, reason = "one entry's fields, passed once")]
    fn add(
        &mut self,
        kind: EntryKind,
        name: &str,
        version: u32,
        aggregate: Option<&str>,
        upcast: Option<UpcastPath>,
        doc: &str,
        schema: serde_json::Value,
    ) {
        let key = (kind, name.to_owned(), version);
        match self.entries.get_mut(&key) {
            Some(existing) if existing.schema == schema => {
                existing.aggregates.extend(aggregate.map(str::to_owned));
            }
            Some(_) => self.conflicts.push(RegistryConflict {
                kind,
                name: name.to_owned(),
                version,
            }),
            None => {
                self.entries.insert(
                    key,
                    RegistryEntry {
                        kind,
                        name: name.to_owned(),
                        version,
                        aggregates: aggregate.map(str::to_owned).into_iter().collect(),
                        upcast,
                        doc: doc.to_owned(),
                        schema,
                        personal: None,
                        signed: false,
                        tags: Vec::new(),
                    },
                );
            }
        }
    }

    /// The registry, or every conflict found.
    pub fn build(self) -> Result<Registry, Vec<RegistryConflict>> {
        if self.conflicts.is_empty() {
            Ok(Registry {
                envelope: crate::envelope::envelope_schema(),
                entries: self.entries.into_values().collect(),
            })
        } else {
            Err(self.conflicts)
        }
    }
}

/// Every event version and command of a domain with its schema, ordered by kind (events
/// first), name and version, and the schema of the envelope that carries every event.
///
/// It serialises as `{"envelope": <schema>, "entries": [...]}`: the envelope is
/// [`envelope_schema`](crate::envelope::envelope_schema), the same definition the Rust
/// serializer of [`RecordedEvent`](crate::envelope::RecordedEvent) uses, so the contracts
/// generated from the document describe what factum really writes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Registry {
    envelope: serde_json::Value,
    entries: Vec<RegistryEntry>,
}

impl Registry {
    /// A builder; add aggregates, then build.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default()
    }

    /// The JSON Schema of the envelope around every event (see
    /// [`envelope_schema`](crate::envelope::envelope_schema)).
    pub fn envelope(&self) -> &serde_json::Value {
        &self.envelope
    }

    /// The entries, in their deterministic order.
    pub fn entries(&self) -> impl Iterator<Item = &RegistryEntry> {
        self.entries.iter()
    }

    /// The entry of an event version or command.
    pub fn get(&self, kind: EntryKind, name: &str, version: u32) -> Option<&RegistryEntry> {
        self.entries
            .iter()
            .find(|entry| entry.kind == kind && entry.name == name && entry.version == version)
    }
}
