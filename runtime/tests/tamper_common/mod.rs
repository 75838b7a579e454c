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
/// hash, 5 the last event deleted, 6 a replaced checkpoint, 7 an edit rehashed) may be
/// reported as first.
pub fn expected_kinds(kind: u64) -> &'static [TamperingKind] {
    match kind {
        1 | 5 => &[TamperingKind::Missing],
        2 => &[TamperingKind::Reordered, TamperingKind::Altered],
        3 => &[TamperingKind::Inserted, TamperingKind::Altered],
        _ => &[TamperingKind::Altered],
    }
}

/// The service's signing key (fixed, so runs repeat).
pub fn service_key() -> factum::integrity::SigningKey {
    factum::integrity::SigningKey::from_bytes(&[7; 32])
}

/// Someone else's key.
pub fn intruder_key() -> factum::integrity::SigningKey {
    factum::integrity::SigningKey::from_bytes(&[9; 32])
}

/// Reads of `stream` 3 through every read path of a store that checks hashes, after the
/// payload of its version 5 was edited: each fails with a corrupt row at that position,
/// the other streams read as usual, and `verify` names the event first.
pub async fn assert_checked_reads_refuse_the_edit<S>(checked: &S)
where
    S: EventStore + factum::integrity::TamperEvident,
{
    use factum::store::{StoreError, VisitError};
    let position = position_of(3, 5);
    for result in [
        checked.read_stream("Chart-03", 1, 100).await.map(|_| ()),
        checked.read_all(0, 1000).await.map(|_| ()),
        checked
            .read_all_filtered(0, 1000, &["NoteAdded"])
            .await
            .map(|_| ()),
        checked
            .for_each_in_stream("Chart-03", 1, |_| Ok::<_, ()>(()))
            .await
            .map_err(|error| match error {
                VisitError::Store(error) => error,
                VisitError::Visitor(()) => unreachable!(),
            }),
    ] {
        match result {
            Err(StoreError::CorruptRow {
                stream_id,
                stream_version: 5,
                position: Some(at),
                reason,
            }) => {
                assert_eq!(stream_id, "Chart-03");
                assert_eq!(at, position);
                assert!(reason.contains("does not match its hash"), "{reason}");
            }
            other => panic!("expected a corrupt row at position {position}, got {other:?}"),
        }
    }
    let others = checked.read_stream("Chart-04", 1, 100).await.expect("read");
    assert_eq!(others.len() as u64, VERSIONS);
    let verification = checked.verify().await.expect("verify");
    let first = verification.first().expect("a finding");
    assert_eq!(
        (
            first.kind,
            first.stream_id.as_str(),
            first.stream_version,
            first.position
        ),
        (TamperingKind::Altered, "Chart-03", 5, Some(position))
    );
}

/// Signs two checkpoints around an append and checks what they prove: each event's
/// inclusion in the tree that covers it, the second tree extending the first, and that a
/// proof for one event does not pass for another.
pub async fn assert_proofs_hold<S>(store: &S)
where
    S: EventStore + factum::integrity::TamperEvident,
{
    let key = service_key();
    let old = store.checkpoint(&key).await.expect("checkpoint");
    store
        .append(
            "Chart-99",
            "Chart",
            ExpectedVersion::NoStream,
            vec![NewEvent::new(
                "NoteAdded",
                1,
                serde_json::value::to_raw_value(&json!({"note": "after the checkpoint"})).unwrap(),
                Metadata::default(),
            )],
        )
        .await
        .expect("append");
    let new = store.checkpoint(&key).await.expect("checkpoint");
    assert_eq!(new.head.tree_size, old.head.tree_size + 1);
    old.verify(&key.verifying_key())
        .expect("signed by the service");
    for position in [1, old.head.last_position / 2, old.head.last_position] {
        let (leaf, proof) = store
            .prove_inclusion(position, &old.head)
            .await
            .expect("a proof");
        assert_eq!(leaf.position, position);
        old.head
            .verify_inclusion(&leaf.merkle_leaf(), &proof)
            .expect("the event is in the signed tree");
        let other = factum::integrity::Leaf {
            position: position + 1,
            ..leaf
        };
        assert!(
            old.head
                .verify_inclusion(&other.merkle_leaf(), &proof)
                .is_err(),
            "a proof for position {position} passed for another"
        );
    }
    let newest = new.head.last_position;
    assert!(matches!(
        store.prove_inclusion(newest, &old.head).await,
        Err(factum::integrity::ProofRequestError::NotCovered { .. })
    ));
    let proof = store
        .prove_consistency(&old.head, &new.head)
        .await
        .expect("a proof");
    old.head
        .verify_consistency(&new.head, &proof)
        .expect("the new tree extends the old");
    let verification = store
        .verify_signed(&key.verifying_key())
        .await
        .expect("verify");
    assert!(verification.is_intact(), "{verification}");
}

/// A critical event: each one stored is signed by the service.
pub const CRITICAL: &str = "DoseGiven";

/// The service's signer of [`CRITICAL`] events.
pub fn signer() -> factum::integrity::EventSigner {
    factum::integrity::EventSigner::new(
        service_key(),
        factum::integrity::SignedEvents::named([CRITICAL]),
    )
}

/// A dose given to a patient, as a critical event.
pub fn dose(milligrams: u32) -> NewEvent {
    NewEvent::new(
        CRITICAL,
        1,
        serde_json::value::to_raw_value(&json!({ "drug": "heparin", "mg": milligrams })).unwrap(),
        Metadata::default(),
    )
}

/// Appends critical and ordinary events (single appends, a batch and a command) to a
/// store that signs: every critical event is stored signed, the ordinary ones are not,
/// and the whole history verifies with every critical event signed.
pub async fn assert_critical_events_are_signed<S>(store: &S)
where
    S: EventStore + factum::integrity::TamperEvident,
{
    store
        .append(
            "Chart-50",
            "Chart",
            ExpectedVersion::NoStream,
            vec![dose(5)],
        )
        .await
        .expect("a critical event");
    store
        .append(
            "Chart-50",
            "Chart",
            ExpectedVersion::Exact(1),
            vec![dose(10), note(), dose(15)],
        )
        .await
        .expect("a batch");
    let command = factum::store::CommandRecord::new(uuid::Uuid::now_v7(), "dose");
    store
        .append_command(
            "Chart-50",
            "Chart",
            ExpectedVersion::Exact(4),
            vec![dose(20)],
            command,
        )
        .await
        .expect("a command");
    let leaves = store.leaves(0, 1000).await.expect("leaves");
    let critical: Vec<_> = leaves.iter().filter(|leaf| leaf.name == CRITICAL).collect();
    assert_eq!(critical.len(), 4);
    assert!(
        critical
            .iter()
            .all(|leaf| leaf.signature.as_ref().is_some_and(|s| s.len() == 64))
    );
    assert!(
        leaves
            .iter()
            .filter(|leaf| leaf.name != CRITICAL)
            .all(|leaf| leaf.signature.is_none())
    );
    let verification = store
        .verify_signed_events(
            &service_key().verifying_key(),
            &factum::integrity::SignedEvents::named([CRITICAL]),
        )
        .await
        .expect("verify");
    assert!(verification.is_intact(), "{verification}");
    // Under another key, each critical event's signature is found wrong.
    let verification = store
        .verify_signed(&intruder_key().verifying_key())
        .await
        .expect("verify");
    assert_eq!(verification.findings.len(), 4, "{verification}");
}

/// An ordinary event.
pub fn note() -> NewEvent {
    NewEvent::new(
        "NoteAdded",
        1,
        serde_json::value::to_raw_value(&json!({ "note": "stable" })).unwrap(),
        Metadata::default(),
    )
}

/// Two subscriptions, each tagged with its student and its course: `Sub-1` (position 1)
/// to course `c1`, `Sub-2` to `c2`; the store verifies intact.
pub async fn write_subscriptions<S: EventStore + factum::integrity::TamperEvident>(store: &S) {
    for (stream, course) in [("Sub-1", "c1"), ("Sub-2", "c2")] {
        let event = NewEvent::new(
            "StudentSubscribed",
            1,
            serde_json::value::to_raw_value(&json!({ "course": course })).expect("JSON"),
            Metadata::default(),
        )
        .with_tags([Tag::new("student", "s1"), Tag::new("course", course)]);
        store
            .append(
                stream,
                "Subscription",
                ExpectedVersion::NoStream,
                vec![event],
            )
            .await
            .expect("append");
    }
    let intact = store.verify().await.expect("verify");
    assert!(intact.is_intact(), "{intact}");
}

/// After [`write_subscriptions`], `Sub-1` was moved to course `c2` by SQL (its tags and
/// its rows of the tag index rewritten): `verify` finds the event altered, and a store
/// that checks hashes refuses it to a stream read and to a decision's read.
pub async fn assert_the_moved_subscription_is_found<S>(unchecked: &S, checked: &S)
where
    S: factum::store::decision::DecisionStore + factum::integrity::TamperEvident,
{
    use factum::store::decision::{Query, QueryItem};
    let verification = unchecked.verify().await.expect("verify");
    let first = verification.first().expect("the edit is found");
    assert_eq!(first.kind, TamperingKind::Altered, "{verification}");
    assert_eq!(first.position, Some(1), "{verification}");
    let course_c2 =
        Query::new([QueryItem::names(["StudentSubscribed"]).with_tags([Tag::new("course", "c2")])]);
    let unchecked_read = unchecked.read_matching(&course_c2, 0).await.expect("read");
    assert_eq!(
        unchecked_read.events.len(),
        2,
        "without the check, the moved subscription is read"
    );
    for refused in [
        checked.read_stream("Sub-1", 1, 10).await.map(|_| ()),
        checked.read_matching(&course_c2, 0).await.map(|_| ()),
    ] {
        match refused {
            Err(factum::store::StoreError::CorruptRow {
                position: Some(1),
                reason,
                ..
            }) => assert!(reason.contains("does not match its hash"), "{reason}"),
            other => panic!("an edited tag read back: {other:?}"),
        }
    }
}

/// After [`write_subscriptions`], `Sub-2`'s row of the tag index for its course was
/// deleted by SQL (no hash covers the index): `verify` finds the event at position 2,
/// whose rows differ from its tags.
pub async fn assert_a_lost_tag_row_is_found<S: factum::integrity::TamperEvident>(store: &S) {
    let verification = store.verify().await.expect("verify");
    let first = verification.first().expect("the lost row is found");
    assert_eq!(first.kind, TamperingKind::Altered, "{verification}");
    assert_eq!(first.position, Some(2), "{verification}");
    assert!(first.detail.contains("tag index"), "{verification}");
}
