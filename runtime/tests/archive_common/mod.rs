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
