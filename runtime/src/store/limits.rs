//! What a store accepts: the limits every backend checks before it writes anything.
//!
//! The rule: **what a store accepts, it reads back equal** — on every backend, through
//! the event bus and in the generated contracts. Each reader has its limits (serde_json
//! stops at 128 nested arrays and objects, PostgreSQL keeps microseconds and no leap
//! seconds, its text holds no NUL character, SQL integers are signed, Python's and
//! RFC 3339's years run from 1 to 9999), so each limit is checked on write: an append or
//! a snapshot breaking one fails with [`StoreError::ValueRefused`], which names the
//! field and the limit, and nothing of it is written. Every backend checks the same
//! limits, so data moves between them and a test on the memory store holds on
//! PostgreSQL.
//!
//! | what | limit |
//! | --- | --- |
//! | payload, snapshot state | JSON nesting of at most [`MAX_JSON_DEPTH`] arrays and objects |
//! | each metadata `extra` value | at most [`MAX_EXTRA_DEPTH`] (it sits two levels into the stored metadata) |
//! | event timestamps, snapshot `taken_at`, command `recorded_at` | whole microseconds, no leap second, years 1 to 9999 ([`EARLIEST_TIMESTAMP`] to [`LATEST_TIMESTAMP`]) |
//! | stream id, stream type, event name, command fingerprint | no NUL character |
//! | snapshot `stream_version` | at most `i64::MAX` ([`MAX_VERSION`]) |
//!
//! The depth limit is half of serde_json's, so the bus can wrap a payload in its
//! envelope and a consumer in its own without reaching a reader's limit.
//! [`NewEvent::new`] records the time to the microsecond, so its events always pass.

use std::collections::HashSet;
use std::fmt;

use chrono::{DateTime, Timelike, Utc};

use super::{CommandRecord, StoreError};
use crate::envelope::{NewEvent, Snapshot};

/// The deepest nesting of arrays and objects a payload or snapshot state may have
/// (`{}` nests 1 level, `{"a":[1]}` 2).
pub const MAX_JSON_DEPTH: usize = 64;

/// The deepest nesting a metadata `extra` value may have: the stored metadata object and
/// its `extra` object hold it two levels down, and the whole stays within
/// [`MAX_JSON_DEPTH`].
pub const MAX_EXTRA_DEPTH: usize = MAX_JSON_DEPTH - 2;

/// The largest stream version a snapshot may name (SQL integers are signed 64-bit).
pub const MAX_VERSION: u64 = i64::MAX as u64;

/// The earliest timestamp accepted, 0001-01-01T00:00:00Z, as seconds since the Unix
/// epoch.
pub const EARLIEST_TIMESTAMP: i64 = -62_135_596_800;

/// The latest timestamp accepted, 9999-12-31T23:59:59.999999Z, as whole seconds since the
/// Unix epoch (any microsecond of that second is accepted).
pub const LATEST_TIMESTAMP: i64 = 253_402_300_799;

/// Which limit a value broke.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// JSON nested deeper than `max` arrays and objects; `depth` is how deep it nests
    /// (counted up to `max + 1`: deeper is not measured).
    JsonDepth {
        /// How deep the value nests, at least.
        depth: usize,
        /// The deepest nesting accepted.
        max: usize,
    },
    /// A timestamp with a fraction finer than a microsecond.
    SubMicrosecond {
        /// The timestamp, as RFC 3339 with nanoseconds.
        timestamp: String,
    },
    /// A leap second (`23:59:60`), which PostgreSQL and most readers cannot hold.
    LeapSecond {
        /// The timestamp, as RFC 3339.
        timestamp: String,
    },
    /// A timestamp outside the years 1 to 9999.
    TimestampRange {
        /// The timestamp, as RFC 3339.
        timestamp: String,
    },
    /// A text holding the NUL character, which PostgreSQL's text cannot store.
    NulCharacter,
    /// A number larger than the largest accepted.
    TooLarge {
        /// The number.
        value: u64,
        /// The largest accepted.
        max: u64,
    },
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::JsonDepth { depth, max } => {
                write!(f, "nests {depth} levels deep")?;
                if *depth > *max {
                    f.write_str(" or more")?;
                }
                write!(f, ", more than the {max} a store accepts")
            }
            Self::SubMicrosecond { timestamp } => write!(
                f,
                "{timestamp} is finer than a microsecond, the precision every store keeps \
                 (round it with `SubsecRound::trunc_subsecs(6)`)"
            ),
            Self::LeapSecond { timestamp } => write!(
                f,
                "{timestamp} is a leap second, which not every store can hold"
            ),
            Self::TimestampRange { timestamp } => {
                write!(f, "{timestamp} lies outside the years 1 to 9999")
            }
            Self::NulCharacter => f.write_str("contains a NUL character"),
            Self::TooLarge { value, max } => {
                write!(f, "{value} is larger than the largest accepted, {max}")
            }
        }
    }
}

/// Checks an append's batch before anything is written: at least one event
/// ([`StoreError::EmptyAppend`]), no event id twice ([`StoreError::RepeatedEventId`]),
/// and every value within the limits ([`StoreError::ValueRefused`]). Every factum store
/// calls it first in `append`; a backend of your own should too.
pub fn check_append(
    stream_id: &str,
    stream_type: &str,
    events: &[NewEvent],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Err(StoreError::EmptyAppend {
            stream_id: stream_id.to_owned(),
        });
    }
    let refused = |field: String, limit: Limit| StoreError::ValueRefused {
        stream_id: stream_id.to_owned(),
        field,
        limit,
    };
    check_stream(stream_id, stream_type)?;
    for (index, event) in events.iter().enumerate() {
        let at = || format!("event {} of the batch (`{}`)", index + 1, event.name);
        check_text(&event.name).map_err(|limit| refused(format!("{} name", at()), limit))?;
        check_json(event.payload.get(), MAX_JSON_DEPTH)
            .map_err(|limit| refused(format!("{} payload", at()), limit))?;
        for (key, value) in &event.metadata.extra {
            check_value(value, MAX_EXTRA_DEPTH)
                .map_err(|limit| refused(format!("{} metadata.extra[{key:?}]", at()), limit))?;
        }
        check_timestamp(&event.timestamp)
            .map_err(|limit| refused(format!("{} timestamp", at()), limit))?;
        for tag in &event.tags {
            check_text(tag.as_str())
                .map_err(|limit| refused(format!("{} tag `{}`", at(), tag.key()), limit))?;
        }
    }
    if let Some(event_id) = repeated_id(events) {
        return Err(StoreError::RepeatedEventId {
            stream_id: stream_id.to_owned(),
            event_id,
        });
    }
    Ok(())
}

/// Checks a command's append before anything is written: its events as
/// [`check_append`] does (a command may record none), and its record's fingerprint (no
/// NUL) and `recorded_at` (as an event timestamp), with [`StoreError::ValueRefused`].
/// Every factum store calls it first in `append_command`; a backend of your own should
/// too.
pub fn check_command(
    stream_id: &str,
    stream_type: &str,
    events: &[NewEvent],
    command: &CommandRecord,
) -> Result<(), StoreError> {
    if events.is_empty() {
        check_stream(stream_id, stream_type)?;
    } else {
        check_append(stream_id, stream_type, events)?;
    }
    let refused = |field: &str, limit: Limit| StoreError::ValueRefused {
        stream_id: stream_id.to_owned(),
        field: format!("command {}'s {field}", command.command_id),
        limit,
    };
    check_text(&command.fingerprint).map_err(|limit| refused("fingerprint", limit))?;
    check_timestamp(&command.recorded_at).map_err(|limit| refused("recorded_at", limit))
}

/// The stream id and type every store can hold.
fn check_stream(stream_id: &str, stream_type: &str) -> Result<(), StoreError> {
    let refused = |field: &str, limit: Limit| StoreError::ValueRefused {
        stream_id: stream_id.to_owned(),
        field: field.to_owned(),
        limit,
    };
    check_text(stream_id).map_err(|limit| refused("the stream id", limit))?;
    check_text(stream_type).map_err(|limit| refused("the stream type", limit))
}

/// Checks a snapshot before it is saved ([`StoreError::ValueRefused`]). Every factum
/// store calls it first in `save_snapshot`; a backend of your own should too.
pub fn check_snapshot(snapshot: &Snapshot) -> Result<(), StoreError> {
    let refused = |field: &str, limit: Limit| StoreError::ValueRefused {
        stream_id: snapshot.stream_id.clone(),
        field: format!("the snapshot's {field}"),
        limit,
    };
    check_text(&snapshot.stream_id).map_err(|limit| refused("stream id", limit))?;
    if snapshot.stream_version > MAX_VERSION {
        let limit = Limit::TooLarge {
            value: snapshot.stream_version,
            max: MAX_VERSION,
        };
        return Err(refused("stream_version", limit));
    }
    check_json(snapshot.state.get(), MAX_JSON_DEPTH).map_err(|limit| refused("state", limit))?;
    check_timestamp(&snapshot.taken_at).map_err(|limit| refused("taken_at", limit))
}

/// A text every store can hold.
pub(crate) fn check_text(text: &str) -> Result<(), Limit> {
    if text.contains('\0') {
        Err(Limit::NulCharacter)
    } else {
        Ok(())
    }
}

/// A timestamp every store keeps exactly.
pub fn check_timestamp(timestamp: &DateTime<Utc>) -> Result<(), Limit> {
    let rfc3339 = || timestamp.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    let seconds = timestamp.timestamp();
    if !(EARLIEST_TIMESTAMP..=LATEST_TIMESTAMP).contains(&seconds) {
        return Err(Limit::TimestampRange {
            timestamp: rfc3339(),
        });
    }
    let nanoseconds = timestamp.nanosecond();
    if nanoseconds >= 1_000_000_000 {
        return Err(Limit::LeapSecond {
            timestamp: rfc3339(),
        });
    }
    if !nanoseconds.is_multiple_of(1_000) {
        return Err(Limit::SubMicrosecond {
            timestamp: rfc3339(),
        });
    }
    Ok(())
}

/// Checks the nesting of a JSON text (already known to be JSON) in one pass over its
/// bytes, without parsing it: brackets inside strings do not count.
pub fn check_json(json: &str, max: usize) -> Result<(), Limit> {
    let bytes = json.as_bytes();
    // Most payloads hold fewer brackets than the limit: nothing to walk.
    if bytes
        .iter()
        .filter(|byte| matches!(byte, b'[' | b'{'))
        .count()
        <= max
    {
        return Ok(());
    }
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for byte in bytes {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(Limit::JsonDepth { depth, max });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Checks the nesting of a JSON value, descending at most `max + 1` levels (so a value
/// nested deeper than the stack allows is still measured safely).
pub fn check_value(value: &serde_json::Value, max: usize) -> Result<(), Limit> {
    fn deeper_than(value: &serde_json::Value, budget: usize) -> bool {
        let children: Box<dyn Iterator<Item = &serde_json::Value>> = match value {
            serde_json::Value::Array(items) => Box::new(items.iter()),
            serde_json::Value::Object(entries) => Box::new(entries.values()),
            _ => return false,
        };
        if budget == 0 {
            return true;
        }
        children
            .into_iter()
            .any(|child| deeper_than(child, budget - 1))
    }
    if deeper_than(value, max) {
        Err(Limit::JsonDepth {
            depth: max + 1,
            max,
        })
    } else {
        Ok(())
    }
}

/// The first event id that appears twice in the batch.
fn repeated_id(events: &[NewEvent]) -> Option<uuid::Uuid> {
    if events.len() <= 16 {
        return events.iter().enumerate().find_map(|(index, event)| {
            events[..index]
                .iter()
                .any(|earlier| earlier.event_id == event.event_id)
                .then_some(event.event_id)
        });
    }
    let mut seen = HashSet::with_capacity(events.len());
    events
        .iter()
        .find(|event| !seen.insert(event.event_id))
        .map(|event| event.event_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn json_depth_counts_brackets_outside_strings() {
        assert_eq!(check_json(&nested(64), 64), Ok(()));
        assert_eq!(
            check_json(&nested(65), 64),
            Err(Limit::JsonDepth { depth: 65, max: 64 })
        );
        let in_string = format!("{{\"a\":\"{}\\\"{}\"}}", "[".repeat(100), "{".repeat(100));
        assert_eq!(check_json(&in_string, 64), Ok(()));
        let siblings = "[[],[],[],[]]".replace("[]", &nested(63));
        assert_eq!(check_json(&siblings, 64), Ok(()));
    }

    #[test]
    fn value_depth_matches_text_depth() {
        for depth in [0, 1, 10, 62, 63, 64, 65, 200] {
            let value: serde_json::Value = if depth == 0 {
                serde_json::json!(1)
            } else {
                let mut value = serde_json::json!([]);
                for _ in 1..depth {
                    value = serde_json::json!({ "k": value });
                }
                value
            };
            let text = value.to_string();
            assert_eq!(
                check_value(&value, 64).is_ok(),
                check_json(&text, 64).is_ok(),
                "depth {depth}"
            );
        }
    }

    #[test]
    fn timestamps_keep_microseconds_and_the_years_1_to_9999() {
        let at = |seconds, nanos| DateTime::from_timestamp(seconds, nanos).unwrap();
        assert_eq!(check_timestamp(&at(0, 1_000)), Ok(()));
        assert!(matches!(
            check_timestamp(&at(-1, 999_999_999)),
            Err(Limit::SubMicrosecond { .. })
        ));
        assert!(matches!(
            check_timestamp(&at(59, 1_500_000_000)),
            Err(Limit::LeapSecond { .. })
        ));
        assert_eq!(check_timestamp(&at(EARLIEST_TIMESTAMP, 0)), Ok(()));
        assert_eq!(check_timestamp(&at(LATEST_TIMESTAMP, 999_999_000)), Ok(()));
        assert!(matches!(
            check_timestamp(&at(LATEST_TIMESTAMP + 1, 0)),
            Err(Limit::TimestampRange { .. })
        ));
        assert!(matches!(
            check_timestamp(&at(EARLIEST_TIMESTAMP - 1, 999_999_000)),
            Err(Limit::TimestampRange { .. })
        ));
        assert_eq!(
            at(EARLIEST_TIMESTAMP, 0).to_rfc3339(),
            "0001-01-01T00:00:00+00:00"
        );
        assert_eq!(
            at(LATEST_TIMESTAMP, 0).to_rfc3339(),
            "9999-12-31T23:59:59+00:00"
        );
    }
}
