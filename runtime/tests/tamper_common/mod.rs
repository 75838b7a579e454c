//! What the tamper-evidence tests of every backend share: a deterministic generator, the
//! history they tamper with, and what counts as found.
#![allow(dead_code)]

use factum::integrity::{TamperingKind, Verification};
use factum::prelude::*;
use serde_json::json;

/// A small deterministic generator (xorshift64*): the tamperings are the same on every
/// run, so a failure names one that can be replayed.
pub struct Dice(pub u64);

impl Dice {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

pub const STREAMS: u64 = 12;
pub const VERSIONS: u64 = 8;
pub const EVENTS: i64 = (STREAMS * VERSIONS) as i64;

/// The unique text in the payload of `stream`'s event at `version`.
pub fn marker(stream: u64, version: u64) -> String {
    format!("note-{stream:02}-{version:02}-of-the-history")
}

/// Appends `STREAMS` streams of `VERSIONS` events each, interleaved (stream `s` at
/// version `v` lands at position `(v - 1) * STREAMS + s + 1`), with metadata on every
/// other event.
pub async fn write_history<S: EventStore>(store: &S) {
    for version in 1..=VERSIONS {
        for stream in 0..STREAMS {
            let metadata = if version % 2 == 0 {
                Metadata {
                    actor: Some(format!("nurse-{stream}")),
                    correlation_id: Some(uuid::Uuid::now_v7()),
                    ..Metadata::default()
                }
            } else {
                Metadata::default()
            };
            let payload = serde_json::value::to_raw_value(
                &json!({ "note": marker(stream, version), "n": version }),
            )
            .expect("JSON");
            store
                .append(
                    &format!("Chart-{stream:02}"),
                    "Chart",
                    if version == 1 {
                        ExpectedVersion::NoStream
                    } else {
                        ExpectedVersion::Exact(version - 1)
                    },
                    vec![NewEvent::new("NoteAdded", 1, payload, metadata)],
                )
                .await
                .expect("append");
        }
    }
}

/// The position of `stream`'s event at `version` in [`write_history`]'s log.
pub fn position_of(stream: u64, version: u64) -> u64 {
    (version - 1) * STREAMS + stream + 1
}

/// Whether a verification (or a store that refused to open or read) found something.
pub fn detected(outcome: &Result<Verification, String>) -> bool {
    match outcome {
        Ok(verification) => !verification.is_intact(),
        Err(_) => true,
    }
}

/// The kinds a tampering of `kind` (0 edit, 1 delete, 2 swap, 3 insert, 4 replaced
/// hash) may be reported as first.
pub fn expected_kinds(kind: u64) -> &'static [TamperingKind] {
    match kind {
        1 => &[TamperingKind::Missing],
        2 => &[TamperingKind::Reordered, TamperingKind::Altered],
        3 => &[TamperingKind::Inserted, TamperingKind::Altered],
        _ => &[TamperingKind::Altered],
    }
}
