//! What the archive tests of every backend check alike, on `tamper_common`'s history
//! archived up to version 4 of every stream.
#![allow(dead_code)]

use factum::integrity::TamperEvident;
use factum::prelude::*;

use crate::tamper_common::{EVENTS, STREAMS, VERSIONS, position_of, service_key};

/// The last position of version 4 of every stream: what the tests archive first.
pub fn first_cut() -> u64 {
    position_of(STREAMS - 1, 4)
}

/// A store opened without its archive, whose events are archived up to `upto`: live
/// events read as before, an archived one is a typed error, the history verifies with
/// the archived bodies named as not checked, and appends go on from the stream heads.
pub async fn without_the_archive<S: EventStore + TamperEvident>(
    store: &S,
    before: &[RecordedEvent],
    upto: u64,
) {
    let live = store.read_all(upto, 1000).await.expect("live events read");
    assert_eq!(live, before[upto as usize..]);
    let refused = store.read_all(0, 10).await.expect_err("archived");
    assert!(
        matches!(&refused, StoreError::Archived { stream_id, stream_version: 1, position: 1 } if stream_id == "Chart-00"),
        "{refused}"
    );
    assert!(
        refused
            .to_string()
            .contains("is archived: open the store with the archive that holds it"),
        "{refused}"
    );
    let tail = store
        .read_stream("Chart-03", 5, 100)
        .await
        .expect("the stream's live events");
    assert_eq!(tail.len(), (VERSIONS - 4) as usize);
    assert!(matches!(
        store.read_stream("Chart-03", 1, 100).await,
        Err(StoreError::Archived {
            stream_version: 1,
            ..
        })
    ));
    let verification = store
        .verify_signed(&service_key().verifying_key())
        .await
        .expect("verifies");
    assert!(verification.is_intact(), "{verification}");
    assert_eq!(verification.archived_unchecked, upto);
    assert!(
        verification.to_string().ends_with(&format!(
            "({upto} archived bodies not checked: verify with their archives to check them)"
        )),
        "{verification}"
    );
    store
        .append(
            "Chart-00",
            "Chart",
            ExpectedVersion::Exact(VERSIONS),
            vec![NewEvent::new(
                "NoteAdded",
                1,
                serde_json::value::to_raw_value(&serde_json::json!({"note": "late", "n": 9}))
                    .expect("JSON"),
                Metadata::default(),
            )],
        )
        .await
        .expect("appends after the archived ones");
}

/// A store opened with its archive, after [`without_the_archive`]: every event as before
/// (and the late one), by position, by stream, visited and filtered, and the whole history
/// verified with nothing left unchecked. Returns the log.
pub async fn with_the_archive<S: EventStore + TamperEvident>(
    store: &S,
    before: &[RecordedEvent],
) -> Vec<RecordedEvent> {
    let all = store.read_all(0, 1000).await.expect("reads all");
    assert_eq!(all[..EVENTS as usize], before[..]);
    assert_eq!(all.len(), EVENTS as usize + 1);
    let expected: Vec<RecordedEvent> = before
        .iter()
        .filter(|event| event.stream_id == "Chart-03")
        .cloned()
        .collect();
    assert_eq!(
        store.read_stream("Chart-03", 1, 100).await.expect("reads"),
        expected
    );
    let mut visited = 0;
    store
        .for_each_in_stream("Chart-05", 1, |event| {
            visited += 1;
            assert_eq!(event.stream_version, visited);
            Ok::<_, std::convert::Infallible>(())
        })
        .await
        .expect("visits");
    assert_eq!(visited, VERSIONS);
    let filtered = store
        .read_all_filtered(0, 1000, &["NoteAdded"])
        .await
        .expect("reads");
    assert_eq!(filtered.events, all);
    let verification = store
        .verify_signed(&service_key().verifying_key())
        .await
        .expect("verifies");
    assert!(verification.is_intact(), "{verification}");
    assert_eq!(verification.archived_unchecked, 0);
    all
}

/// A subscription to `course`, tagged with it.
fn subscription(course: &str) -> NewEvent {
    NewEvent::new(
        "StudentSubscribed",
        1,
        serde_json::value::to_raw_value(&serde_json::json!({ "course": course })).expect("JSON"),
        Metadata::default(),
    )
    .with_tags([Tag::new("course", course)])
}

/// Subscriptions to `c1` (positions 1 and 3) and `c2` (2), archived up to position 2 into
/// `file`; returns every event as read before. A condition needs no body: the archived
/// subscription to `c1` still fails one by its tags.
pub async fn archive_subscriptions<S>(store: &S, file: &std::path::Path) -> Vec<RecordedEvent>
where
    S: factum::archive::ArchiveStore + factum::store::decision::DecisionStore + Sync,
{
    use factum::store::decision::{AppendCondition, Query, QueryItem};
    for (stream, course) in [("Sub-1", "c1"), ("Sub-2", "c2"), ("Sub-3", "c1")] {
        store
            .append(
                stream,
                "Subscription",
                ExpectedVersion::NoStream,
                vec![subscription(course)],
            )
            .await
            .expect("appends");
    }
    let before = store.read_all(0, 10).await.expect("reads");
    store.archive(2, file).await.expect("archives");
    let condition = AppendCondition {
        query: Query::new([
            QueryItem::names(["StudentSubscribed"]).with_tags([Tag::new("course", "c1")])
        ]),
        after: 0,
    };
    let refused = store
        .append_if(
            "Sub-4",
            "Subscription",
            ExpectedVersion::NoStream,
            vec![subscription("c1")],
            &condition,
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(StoreError::ConditionFailed { position: 1, .. })
        ),
        "{refused:?}"
    );
    before
}

/// A store opened with the archive [`archive_subscriptions`] wrote (hashes checked):
/// a decision's read finds the archived subscription with its body, every event reads
/// back as before, tags and bodies, and the history verifies whole.
pub async fn assert_archived_subscriptions_read_back<S>(store: &S, before: &[RecordedEvent])
where
    S: factum::store::decision::DecisionStore + TamperEvident,
{
    use factum::store::decision::{Query, QueryItem};
    let course_c1 =
        Query::new([QueryItem::names(["StudentSubscribed"]).with_tags([Tag::new("course", "c1")])]);
    let matched = store.read_matching(&course_c1, 0).await.expect("reads");
    let positions: Vec<u64> = matched.events.iter().map(|event| event.position).collect();
    assert_eq!(positions, [1, 3]);
    assert_eq!(matched.events[0].payload.get(), before[0].payload.get());
    assert_eq!(
        store.read_all(0, 10).await.expect("reads"),
        before,
        "every event as before, tags and bodies"
    );
    let verification = store.verify().await.expect("verifies");
    assert!(verification.is_intact(), "{verification}");
    assert_eq!(verification.archived_unchecked, 0);
}
