//! Tags: what an event is about, beyond the stream it is stored in.
//!
//! An event declares its tags with `#[tag]` on its fields:
//!
//! ```
//! use factum::prelude::*;
//!
//! #[event(name = "StudentSubscribed")]
//! pub struct StudentSubscribed {
//!     #[tag(name = "course")]
//!     pub course_id: String,
//!     #[tag(name = "student")]
//!     pub student_id: String,
//! }
//!
//! let event = StudentSubscribed { course_id: "c-1".into(), student_id: "s-7".into() };
//! let keys: Vec<&str> = StudentSubscribed::TAGS.iter().map(|tag| tag.key).collect();
//! assert_eq!(keys, ["course", "student"]);
//! let mut tags = Vec::new();
//! event.tags(&mut tags);
//! assert_eq!(tags, [Tag::new("course", "c-1"), Tag::new("student", "s-7")]);
//! ```
//!
//! A tag is a key and a value, written `key:value`. The key is the tag's name in the
//! event's declaration (`#[tag]` alone uses the field's name); the value is the field's,
//! as text ([`TagValue`]). A field that is an `Option` gives no tag when it is `None`; a
//! `Vec` (or another collection of values) gives one tag per element. Tags are stored
//! with the event and indexed, so that a decision can read the events that carry them.
//!
//! Tags are stored in the clear, as the stream id is: a `#[pii]` field cannot be a tag
//! (a compile error), and the data subject's id, which is in the clear anyway, can.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};
use std::fmt;

/// A tag an event type declares: its key, and the JSON key of the field its value comes
/// from ([`Event::TAGS`](crate::Event::TAGS)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagField {
    /// The tag's key.
    pub key: &'static str,
    /// The JSON key of the field holding its value.
    pub field: &'static str,
}

/// One tag of an event: `key:value`.
///
/// The key names what the value identifies (`course`, `student`, `user_name`); it is not
/// empty and holds letters, digits, `_`, `-` and `.` only, so the first `:` ends it. The
/// value is any text.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(try_from = "String", into = "String")]
#[schemars(
    description = "A tag, `key:value`: what an event is about beyond its stream.",
    extend("pattern" = "^[A-Za-z0-9_.-]+:")
)]
pub struct Tag(String);

impl Tag {
    /// The tag `key:value`.
    ///
    /// # Panics
    ///
    /// When `key` is not a valid tag key ([`Tag::is_valid_key`]). The keys `#[tag]`
    /// declares are checked at compile time; use [`Tag::parse`] for keys from input.
    pub fn new(key: &str, value: impl AsRef<str>) -> Self {
        assert!(
            Self::is_valid_key(key),
            "`{key}` is no tag key: a key is not empty and holds letters, digits, `_`, `-` and `.` only"
        );
        let value = value.as_ref();
        let mut text = String::with_capacity(key.len() + 1 + value.len());
        text.push_str(key);
        text.push(':');
        text.push_str(value);
        Self(text)
    }

    /// Reads `key:value`, refusing text without a valid key before its first `:`.
    pub fn parse(text: impl Into<String>) -> Result<Self, TagError> {
        let text = text.into();
        match text.split_once(':') {
            Some((key, _)) if Self::is_valid_key(key) => Ok(Self(text)),
            _ => Err(TagError { text }),
        }
    }

    /// Whether `key` can be a tag's key: not empty, letters, digits, `_`, `-` and `.`.
    pub const fn is_valid_key(key: &str) -> bool {
        let bytes = key.as_bytes();
        if bytes.is_empty() {
            return false;
        }
        let mut index = 0;
        while index < bytes.len() {
            let byte = bytes[index];
            if !(byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' || byte == b'.') {
                return false;
            }
            index += 1;
        }
        true
    }

    /// The key: the text before the first `:`.
    pub fn key(&self) -> &str {
        self.0.split_once(':').map_or("", |(key, _)| key)
    }

    /// The value: the text after the first `:`.
    pub fn value(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, value)| value)
    }

    /// `key:value`, as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Tag {
    type Error = TagError;

    fn try_from(text: String) -> Result<Self, TagError> {
        Self::parse(text)
    }
}

impl From<Tag> for String {
    fn from(tag: Tag) -> Self {
        tag.0
    }
}

impl AsRef<str> for Tag {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Text that is no tag: no valid key before a `:`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{text}` is no tag: a tag is `key:value`, its key not empty and made of letters, digits, `_`, `-` and `.`"
)]
pub struct TagError {
    /// The text given.
    pub text: String,
}

/// A value a `#[tag]` field holds, as the text of its tag.
///
/// Implemented for strings, integers, `bool`, `char` and [`uuid::Uuid`]; implement it for
/// an id type of your own:
///
/// ```
/// use std::borrow::Cow;
///
/// pub struct CourseId(String);
///
/// impl factum::TagValue for CourseId {
///     fn tag_value(&self) -> Cow<'_, str> {
///         Cow::Borrowed(&self.0)
///     }
/// }
/// ```
///
/// A `#[tag]` field may also be an `Option` (no tag when `None`) or a `Vec`, slice, array
/// or set of such values (one tag each).
#[diagnostic::on_unimplemented(
    message = "a `#[tag]` field cannot be of type `{Self}`",
    label = "not a tag value",
    note = "a tag's value is text: implement `factum::TagValue` for `{Self}` (one function, `tag_value`), or tag a field of a string, integer or UUID type"
)]
pub trait TagValue {
    /// The value as the text of its tag.
    fn tag_value(&self) -> Cow<'_, str>;
}

impl TagValue for str {
    fn tag_value(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl TagValue for String {
    fn tag_value(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl TagValue for Cow<'_, str> {
    fn tag_value(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl<T: TagValue + ?Sized> TagValue for &T {
    fn tag_value(&self) -> Cow<'_, str> {
        (**self).tag_value()
    }
}

impl<T: TagValue + ?Sized> TagValue for Box<T> {
    fn tag_value(&self) -> Cow<'_, str> {
        (**self).tag_value()
    }
}

impl TagValue for uuid::Uuid {
    fn tag_value(&self) -> Cow<'_, str> {
        Cow::Owned(self.hyphenated().to_string())
    }
}

macro_rules! displayed_tag_values {
    ($($ty:ty),* $(,)?) => {$(
        impl TagValue for $ty {
            fn tag_value(&self) -> Cow<'_, str> {
                Cow::Owned(self.to_string())
            }
        }
    )*};
}

displayed_tag_values!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, bool, char
);

/// What a `#[tag]` field gives: no tag, one, or several. Implemented for every
/// [`TagValue`], and for options and collections of them.
#[diagnostic::on_unimplemented(
    message = "a `#[tag]` field cannot be of type `{Self}`",
    label = "not a tag value",
    note = "a tag's value is text: implement `factum::TagValue` for the field's type (one function, `tag_value`); `Option`, `Vec`, slices, arrays and sets of tag values are tag values too"
)]
pub trait TagValues {
    /// Appends this value's tags under `key` to `tags`.
    fn push_tags(&self, key: &'static str, tags: &mut Vec<Tag>);
}

impl<T: TagValue + ?Sized> TagValues for T {
    fn push_tags(&self, key: &'static str, tags: &mut Vec<Tag>) {
        tags.push(Tag::new(key, self.tag_value()));
    }
}

impl<T: TagValue> TagValues for Option<T> {
    fn push_tags(&self, key: &'static str, tags: &mut Vec<Tag>) {
        if let Some(value) = self {
            value.push_tags(key, tags);
        }
    }
}

impl<T: TagValue> TagValues for [T] {
    fn push_tags(&self, key: &'static str, tags: &mut Vec<Tag>) {
        for value in self {
            value.push_tags(key, tags);
        }
    }
}

impl<T: TagValue, const N: usize> TagValues for [T; N] {
    fn push_tags(&self, key: &'static str, tags: &mut Vec<Tag>) {
        self.as_slice().push_tags(key, tags);
    }
}

impl<T: TagValue> TagValues for Vec<T> {
    fn push_tags(&self, key: &'static str, tags: &mut Vec<Tag>) {
        self.as_slice().push_tags(key, tags);
    }
}

impl<T: TagValue> TagValues for BTreeSet<T> {
    fn push_tags(&self, key: &'static str, tags: &mut Vec<Tag>) {
        for value in self {
            value.push_tags(key, tags);
        }
    }
}

impl<T: TagValue, S> TagValues for HashSet<T, S> {
    fn push_tags(&self, key: &'static str, tags: &mut Vec<Tag>) {
        // Sorted: an event's tags do not depend on a hasher's order.
        let mut values: Vec<_> = self.iter().map(TagValue::tag_value).collect();
        values.sort();
        tags.extend(values.into_iter().map(|value| Tag::new(key, value)));
    }
}

/// `tags` as a store keeps an event's tags: each once, sorted.
pub(crate) fn normalized(mut tags: Vec<Tag>) -> Vec<Tag> {
    tags.sort_unstable();
    tags.dedup();
    tags
}

/// [`normalized`] without taking `tags`: borrowed when they are already each once and
/// sorted (as the `#[event]` macro gives them), else a sorted copy.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn normalized_ref(tags: &[Tag]) -> std::borrow::Cow<'_, [Tag]> {
    if tags.windows(2).all(|pair| pair[0] < pair[1]) {
        std::borrow::Cow::Borrowed(tags)
    } else {
        std::borrow::Cow::Owned(normalized(tags.to_vec()))
    }
}
