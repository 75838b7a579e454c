//! An event payload's top-level members as slices of its text: how personal fields are
//! found and replaced without building a `serde_json::Value` of the whole payload.
//!
//! Parsing borrows every member's value as a [`RawValue`] (serde_json validates and skips
//! it, nothing is copied); writing back serialises the members in their order with the
//! replaced values, each value's text copied as is.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The members of a JSON object, in their order, borrowed from its text.
pub(super) struct Members<'a> {
    entries: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> Members<'a> {
    /// The members of `payload`, or `None` if it is not a JSON object.
    pub(super) fn parse(payload: &'a str) -> Option<Self> {
        let mut deserializer = serde_json::Deserializer::from_str(payload);
        let members = deserializer.deserialize_map(MembersVisitor).ok()?;
        deserializer.end().ok()?;
        Some(members)
    }

    /// The index of member `key` (the last one, as a `serde_json::Value` would keep it).
    pub(super) fn index(&self, key: &str) -> Option<usize> {
        self.entries.iter().rposition(|(name, _)| name == key)
    }

    /// The value at `index`.
    pub(super) fn value(&self, index: usize) -> &'a RawValue {
        self.entries[index].1
    }

    /// The value of member `key`.
    pub(super) fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.index(key).map(|index| self.value(index))
    }

    /// The object again, with the values at the indices of `replaced` replaced.
    pub(super) fn rewrite(&self, replaced: &[(usize, Replacement<'_>)]) -> Box<RawValue> {
        serde_json::value::to_raw_value(&Rewrite {
            members: self,
            replaced,
        })
        .expect("members of valid JSON with string keys always serialise")
    }
}

/// What a member's value becomes.
#[derive(Clone, Copy)]
pub(super) enum Replacement<'v> {
    /// This JSON text.
    Raw(&'v RawValue),
    /// This string.
    Text(&'v str),
}

impl Serialize for Replacement<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Raw(raw) => raw.serialize(serializer),
            Self::Text(text) => serializer.serialize_str(text),
        }
    }
}

/// The text of a JSON string whose content needs no escapes, without its quotes: how
/// sealed texts are compared without unescaping.
pub(super) fn plain_string(raw: &RawValue) -> Option<&str> {
    let text = raw.get().strip_prefix('"')?.strip_suffix('"')?;
    (!text.contains('\\')).then_some(text)
}

struct Rewrite<'m, 'a, 'v> {
    members: &'m Members<'a>,
    replaced: &'m [(usize, Replacement<'v>)],
}

impl Serialize for Rewrite<'_, '_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let entries = &self.members.entries;
        let mut map = serializer.serialize_map(Some(entries.len()))?;
        for (index, (key, value)) in entries.iter().enumerate() {
            match self.replaced.iter().find(|(at, _)| *at == index) {
                Some((_, replacement)) => map.serialize_entry(key, replacement)?,
                None => map.serialize_entry(key, value)?,
            }
        }
        map.end()
    }
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Members<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Members<'de>, M::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some((Key(key), value)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
            entries.push((key, value));
        }
        Ok(Members { entries })
    }
}

/// A member's name: borrowed unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn members_are_slices_of_the_text() {
        let text = r#"{"id":"m-1","email":"a@example.com","tags":[1,{"x":2}],"a\"b":null}"#;
        let members = Members::parse(text).unwrap();
        assert_eq!(members.get("id").unwrap().get(), r#""m-1""#);
        assert_eq!(members.get("tags").unwrap().get(), r#"[1,{"x":2}]"#);
        assert_eq!(members.get("a\"b").unwrap().get(), "null");
        assert!(members.get("x").is_none());
    }

    #[test]
    fn rewriting_replaces_values_and_keeps_the_rest() {
        let text = r#"{"id":"m-1","email":"a@example.com","n":1.50,"k\u00e9y":"v"}"#;
        let members = Members::parse(text).unwrap();
        let raw = RawValue::from_string(r#"{"nested":true}"#.to_owned()).unwrap();
        let email = members.index("email").unwrap();
        let id = members.index("id").unwrap();
        let written = members.rewrite(&[
            (email, Replacement::Raw(&raw)),
            (id, Replacement::Text("quote \" here")),
        ]);
        let written: Value = serde_json::from_str(written.get()).unwrap();
        assert_eq!(
            written,
            json!({"id": "quote \" here", "email": {"nested": true}, "n": 1.50, "kéy": "v"})
        );
        // Untouched values keep their text (a number's digits, say).
        assert!(members.rewrite(&[]).get().contains(":1.50"));
    }

    #[test]
    fn what_is_not_one_object_is_refused() {
        for text in ["[1,2]", "\"x\"", "{\"a\":1} {}", "{\"a\":", "nul"] {
            assert!(Members::parse(text).is_none(), "{text}");
        }
    }

    #[test]
    fn the_last_of_duplicate_members_counts_as_in_a_value() {
        let members = Members::parse(r#"{"a":1,"a":2}"#).unwrap();
        assert_eq!(members.get("a").unwrap().get(), "2");
    }

    #[test]
    fn plain_strings_only() {
        let members = Members::parse(r#"{"a":"pii:v2:x","b":"x\\y","c":3}"#).unwrap();
        assert_eq!(plain_string(members.get("a").unwrap()), Some("pii:v2:x"));
        assert_eq!(plain_string(members.get("b").unwrap()), None);
        assert_eq!(plain_string(members.get("c").unwrap()), None);
    }
}
