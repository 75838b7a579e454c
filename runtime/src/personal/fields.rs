//! Personal data declared on event types: which field names the data subject, which
//! fields are personal, and what a personal field reads as once its subject is forgotten.
//!
//! `#[event]` fills [`Event::PERSONAL`](crate::Event::PERSONAL) from the field attributes
//! `#[subject]`, `#[pii]` and `#[pii(redacted = "...")]`, and checks the fields' types
//! against [`Subject`], [`Personal`] and [`RedactedText`] at compile time.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The personal data of one event type (one name and version).
#[derive(Debug, Clone, Copy)]
pub struct PersonalFields {
    /// The JSON pointer of the field naming the data subject (`/member_id`); `None` for
    /// an event without personal data.
    pub subject: Option<&'static str>,
    /// The personal fields.
    pub fields: &'static [PersonalField],
}

impl PersonalFields {
    /// No personal data.
    pub const NONE: Self = Self {
        subject: None,
        fields: &[],
    };

    /// Whether the event holds personal data.
    pub const fn is_personal(&self) -> bool {
        !self.fields.is_empty()
    }
}

/// One personal field.
#[derive(Debug, Clone, Copy)]
pub struct PersonalField {
    /// The field's JSON pointer in the payload (`/email`).
    pub pointer: &'static str,
    /// The value the field reads as once its subject is forgotten: deterministic, and
    /// of the field's type.
    pub redacted: fn() -> serde_json::Value,
}

/// A type that can identify a data subject (`#[subject]`): its JSON is a string or an
/// integer, the subject's id.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot name a data subject",
    label = "the type of a `#[subject]` field",
    note = "a subject is a string or integer id (String, Uuid, u64, ...); for an id type of your own (a newtype such as `struct MemberId(String)`), implement `factum::personal::Subject` for it: it must serialise as a string or integer"
)]
pub trait Subject {}

impl Subject for String {}
impl Subject for uuid::Uuid {}
impl Subject for u64 {}
impl Subject for i64 {}
impl Subject for u32 {}
impl Subject for i32 {}

/// A type a `#[pii]` field can have: stored encrypted as its JSON, and read back as
/// [`Personal::redacted`] once its subject is forgotten.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a personal field",
    label = "the type of a `#[pii]` field",
    note = "a personal field needs a deterministic value to read as once its subject is forgotten: `factum::personal::Personal` gives it for strings, numbers, `Option`, `Vec` and maps; implement it for `{Self}`, or make the field an `Option`"
)]
pub trait Personal: Serialize + DeserializeOwned {
    /// What the field reads as once its subject is forgotten.
    fn redacted() -> Self;
}

impl Personal for String {
    fn redacted() -> Self {
        String::new()
    }
}

impl<T: Serialize + DeserializeOwned> Personal for Option<T> {
    fn redacted() -> Self {
        None
    }
}

impl<T: Serialize + DeserializeOwned> Personal for Vec<T> {
    fn redacted() -> Self {
        Vec::new()
    }
}

impl<K, V> Personal for std::collections::BTreeMap<K, V>
where
    K: Serialize + DeserializeOwned + Ord,
    V: Serialize + DeserializeOwned,
{
    fn redacted() -> Self {
        std::collections::BTreeMap::new()
    }
}

impl Personal for serde_json::Value {
    fn redacted() -> Self {
        serde_json::Value::Null
    }
}

impl Personal for bool {
    fn redacted() -> Self {
        false
    }
}

macro_rules! zero_is_redacted {
    ($($number:ty),*) => {$(
        impl Personal for $number {
            fn redacted() -> Self {
                0 as $number
            }
        }
    )*};
}

zero_is_redacted!(u8, u16, u32, u64, i8, i16, i32, i64, f32, f64);

/// A text type: a `#[pii(redacted = "...")]` field reads as that text once its subject is
/// forgotten.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not text: `redacted = \"...\"` replaces a text field only",
    label = "the type of a `#[pii(redacted = \"...\")]` field",
    note = "give `redacted = \"...\"` to a `String` or `Option<String>` field, or leave it out: the field then reads as `factum::personal::Personal::redacted()`"
)]
pub trait RedactedText: Personal {}

impl RedactedText for String {}
impl RedactedText for Option<String> {}

/// The JSON of `T`'s redacted value (what generated code stores in a
/// [`PersonalField`]).
pub fn redacted_value<T: Personal>() -> serde_json::Value {
    serde_json::to_value(T::redacted()).unwrap_or(serde_json::Value::Null)
}

/// The JSON of a `redacted = "..."` text.
pub fn redacted_text<T: RedactedText>(text: &'static str) -> serde_json::Value {
    serde_json::Value::String(text.to_owned())
}
