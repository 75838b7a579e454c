//! The hash each stored event carries: it covers the event as stored and the hash of the
//! event before it in its stream, so an edit, a removal or a reordering of stored events
//! breaks the chain where it happened.
//!
//! Every backend hashes the same fields with the same layout (PostgreSQL in SQL, see
//! `factum_event_hash` in its migrations), over the bytes it stores: the payload as stored
//! (encrypted personal fields included, so forgetting a subject never breaks the chain),
//! the metadata text as stored. The layout, fed to SHA-256:
//!
//! ```text
//! "factum/event/v1"            15 bytes, the domain
//! predecessor                  32 bytes, the previous event's hash in the stream, or
//!                              32 zero bytes for version 1
//! event id                     u32 length, then the stored bytes (16 for a UUID)
//! position                     i64
//! stream id, stream type       u32 length, then UTF-8 bytes, each
//! stream version               i64
//! name                         u32 length, then UTF-8 bytes
//! schema version               i64
//! timestamp                    i64 seconds since the Unix epoch, i64 nanoseconds
//! metadata                     0 (none), or 1, u32 length, then the stored text
//! payload                      u32 length, then the stored JSON text
//! tags                         nothing when the event has none; else 1, u32 length,
//!                              then the stored text (a JSON array of the `key:value`
//!                              strings, sorted, each once)
//! ```
//!
//! An event without tags hashes as it did before tags existed, so no stored chain changed.
//! Integers are big-endian. Fields are taken as raw bytes, not as parsed values, so a
//! damaged row (invalid UTF-8, a wrong length) still hashes, to something else.

use sha2::{Digest, Sha256};

/// A SHA-256 digest: an event's hash.
pub type EventHash = [u8; 32];

/// The predecessor of a stream's first event.
pub const GENESIS: EventHash = [0; 32];

/// What the hash covers, as the backend stores it.
#[derive(Debug, Clone, Copy)]
pub struct StoredFields<'a> {
    /// The event id's stored bytes.
    pub event_id: &'a [u8],
    /// The global position.
    pub position: i64,
    /// The stream's id.
    pub stream_id: &'a [u8],
    /// The stream's type.
    pub stream_type: &'a [u8],
    /// The version in the stream.
    pub stream_version: i64,
    /// The event name.
    pub name: &'a [u8],
    /// The payload's schema version.
    pub schema_version: i64,
    /// Whole seconds since the Unix epoch (floored).
    pub timestamp_seconds: i64,
    /// Nanoseconds past `timestamp_seconds`.
    pub timestamp_nanos: i64,
    /// The stored metadata text; `None` when the backend stores none.
    pub metadata: Option<&'a [u8]>,
    /// The stored payload text.
    pub payload: &'a [u8],
    /// The stored tags text (see [`crate::tag`]); `None` when the event has none.
    pub tags: Option<&'a [u8]>,
}

/// The hash of an event stored with `fields` after an event hashed `predecessor`.
pub fn event_hash(predecessor: &EventHash, fields: &StoredFields<'_>) -> EventHash {
    let mut hasher = Sha256::new();
    hasher.update(b"factum/event/v1");
    hasher.update(predecessor);
    field(&mut hasher, fields.event_id);
    hasher.update(fields.position.to_be_bytes());
    field(&mut hasher, fields.stream_id);
    field(&mut hasher, fields.stream_type);
    hasher.update(fields.stream_version.to_be_bytes());
    field(&mut hasher, fields.name);
    hasher.update(fields.schema_version.to_be_bytes());
    hasher.update(fields.timestamp_seconds.to_be_bytes());
    hasher.update(fields.timestamp_nanos.to_be_bytes());
    match fields.metadata {
        None => hasher.update([0]),
        Some(metadata) => {
            hasher.update([1]);
            field(&mut hasher, metadata);
        }
    }
    field(&mut hasher, fields.payload);
    if let Some(tags) = fields.tags {
        hasher.update([1]);
        field(&mut hasher, tags);
    }
    hasher.finalize().into()
}

/// A variable-length field: its length, then its bytes.
fn field(hasher: &mut Sha256, part: &[u8]) {
    // SQLite and PostgreSQL keep values under 2 GiB, so the length always fits; a value
    // past it would still hash, saturated.
    hasher.update(u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
    hasher.update(part);
}

/// A stored hash as the backend returns it: 32 bytes, or what a damaged row holds.
pub fn to_event_hash(stored: &[u8]) -> Option<EventHash> {
    stored.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>(payload: &'a [u8], metadata: Option<&'a [u8]>) -> StoredFields<'a> {
        StoredFields {
            event_id: &[7; 16],
            position: 3,
            stream_id: b"Order-1",
            stream_type: b"Order",
            stream_version: 2,
            name: b"OrderPlaced",
            schema_version: 1,
            timestamp_seconds: 1_700_000_000,
            timestamp_nanos: 123_456_000,
            metadata,
            payload,
            tags: None,
        }
    }

    /// The layout, spelled out byte by byte: what a verifier in another language
    /// reimplements (and what PostgreSQL's `factum_event_hash` computes).
    #[test]
    fn the_hash_follows_the_documented_layout() {
        let predecessor = [9; 32];
        let mut expected = Vec::new();
        expected.extend_from_slice(b"factum/event/v1");
        expected.extend_from_slice(&predecessor);
        expected.extend_from_slice(&16u32.to_be_bytes());
        expected.extend_from_slice(&[7; 16]);
        expected.extend_from_slice(&3i64.to_be_bytes());
        expected.extend_from_slice(&7u32.to_be_bytes());
        expected.extend_from_slice(b"Order-1");
        expected.extend_from_slice(&5u32.to_be_bytes());
        expected.extend_from_slice(b"Order");
        expected.extend_from_slice(&2i64.to_be_bytes());
        expected.extend_from_slice(&11u32.to_be_bytes());
        expected.extend_from_slice(b"OrderPlaced");
        expected.extend_from_slice(&1i64.to_be_bytes());
        expected.extend_from_slice(&1_700_000_000i64.to_be_bytes());
        expected.extend_from_slice(&123_456_000i64.to_be_bytes());
        expected.push(1);
        expected.extend_from_slice(&2u32.to_be_bytes());
        expected.extend_from_slice(b"{}");
        expected.extend_from_slice(&7u32.to_be_bytes());
        expected.extend_from_slice(b"{\"a\":1}");
        let untagged: EventHash = Sha256::digest(&expected).into();
        assert_eq!(
            event_hash(&predecessor, &fields(b"{\"a\":1}", Some(b"{}"))),
            untagged
        );
        // Tags follow the payload, flagged and length-prefixed.
        let tags = br#"["course:c-1","student:s-7"]"#;
        expected.push(1);
        expected.extend_from_slice(&(tags.len() as u32).to_be_bytes());
        expected.extend_from_slice(tags);
        let tagged: EventHash = Sha256::digest(&expected).into();
        let fields = StoredFields {
            tags: Some(tags),
            ..fields(b"{\"a\":1}", Some(b"{}"))
        };
        assert_eq!(event_hash(&predecessor, &fields), tagged);
    }

    /// Every field counts, and no metadata differs from empty metadata text.
    #[test]
    fn each_field_changes_the_hash() {
        let base = fields(b"{\"a\":1}", None);
        let hash = event_hash(&GENESIS, &base);
        let variants = [
            StoredFields {
                event_id: &[8; 16],
                ..base
            },
            StoredFields {
                position: 4,
                ..base
            },
            StoredFields {
                stream_id: b"Order-2",
                ..base
            },
            StoredFields {
                stream_type: b"Cart",
                ..base
            },
            StoredFields {
                stream_version: 3,
                ..base
            },
            StoredFields {
                name: b"OrderPlaces",
                ..base
            },
            StoredFields {
                schema_version: 2,
                ..base
            },
            StoredFields {
                timestamp_seconds: 1_700_000_001,
                ..base
            },
            StoredFields {
                timestamp_nanos: 123_456_001,
                ..base
            },
            StoredFields {
                metadata: Some(b""),
                ..base
            },
            StoredFields {
                payload: b"{\"a\":2}",
                ..base
            },
            StoredFields {
                tags: Some(b"[\"course:c-1\"]"),
                ..base
            },
        ];
        for variant in variants {
            assert_ne!(event_hash(&GENESIS, &variant), hash, "{variant:?}");
        }
        assert_ne!(event_hash(&[1; 32], &base), hash);
        // Moving bytes between adjacent fields changes the hash too (lengths are hashed).
        let moved = StoredFields {
            stream_id: b"Order-1O",
            stream_type: b"rder",
            ..base
        };
        assert_ne!(event_hash(&GENESIS, &moved), hash);
    }
}
