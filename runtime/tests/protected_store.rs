//! The protected store's stored form and every way of reading through it: one bundle per
//! event, opened by `read_stream`, `read_all` and the streaming visit (which fetches
//! each subject's key as it meets them), on memory and SQLite; fields below the top
//! level; fields of the first stored form; and bundles that were moved or altered.

use factum::archive::{Archive, ArchiveStore};
use factum::personal::{
    Aad, KeyStore, MasterKey, MemoryKeyStore, PersonalCatalog, ProtectedStore, SubjectId, seal,
};
use factum::prelude::*;
use factum::registry::Registry;
use factum::store::decision::{AppendCondition, DecisionStore, Query, QueryItem};
use factum::store::{CommandRecord, CommandSession, SqliteStore, StoreError, VisitError};
use factum::tag::Tag;
use serde_json::{Value, json};
use std::sync::Arc;

#[event(name = "PatientAdmitted")]
#[derive(Debug, Clone, PartialEq)]
pub struct PatientAdmitted {
    #[subject]
    pub patient_id: String,
    #[pii]
    pub name: String,
    pub ward: String,
    #[pii(redacted = "[forgotten]")]
    pub phone: Option<String>,
}

#[event(name = "BedAssigned")]
#[derive(Debug, Clone, PartialEq)]
pub struct BedAssigned {
    pub patient_id: String,
    pub bed: u32,
}

#[derive(Events, Debug, Clone, PartialEq)]
pub enum WardEvent {
    Admitted(PatientAdmitted),
    Bed(BedAssigned),
}

fn catalog() -> PersonalCatalog {
    let mut registry = Registry::builder();
    WardEvent::register(&mut registry, Some("Ward"));
    PersonalCatalog::from_registry(&registry.build().expect("registry"))
}

fn new_event(event: WardEvent) -> NewEvent {
    let encoded = event.encode().expect("encode");
    NewEvent::new(
        encoded.name,
        encoded.schema_version,
        encoded.payload,
        Metadata::default(),
    )
}

/// A ward's stream: two patients' admissions and beds, interleaved; the second
/// admission without a phone number.
fn ward() -> Vec<NewEvent> {
    vec![
        new_event(WardEvent::Admitted(PatientAdmitted {
            patient_id: "p1".into(),
            name: "Ada Byron".into(),
            ward: "B".into(),
            phone: Some("+1-555-0101".into()),
        })),
        new_event(WardEvent::Bed(BedAssigned {
            patient_id: "p1".into(),
            bed: 4,
        })),
        new_event(WardEvent::Admitted(PatientAdmitted {
            patient_id: "p2".into(),
            name: "Grace Hopper".into(),
            ward: "B".into(),
            phone: None,
        })),
        new_event(WardEvent::Admitted(PatientAdmitted {
            patient_id: "p1".into(),
            name: "Ada King".into(),
            ward: "C".into(),
            phone: Some("+1-555-0199".into()),
        })),
    ]
}

fn payloads(events: &[RecordedEvent]) -> Vec<Value> {
    events
        .iter()
        .map(|event| serde_json::from_str(event.payload.get()).expect("JSON"))
        .collect()
}

/// The payloads the streaming visit of the ward stream sees from version `from` on.
async fn visited_from<S: EventStore, K: KeyStore>(
    store: &ProtectedStore<S, K>,
    from: u64,
) -> Vec<Value> {
    let mut visited = Vec::new();
    store
        .for_each_in_stream("Ward-b", from, |event| {
            visited.push(serde_json::from_str::<Value>(event.payload.get()).expect("JSON"));
            Ok::<_, ()>(())
        })
        .await
        .expect("visit");
    visited
}

/// What every read through `store` answers for the ward stream: `read_stream`,
/// `read_all` and the streaming visit from the start and from the middle all agree.
async fn every_read<S: EventStore, K: KeyStore>(store: &ProtectedStore<S, K>) -> Vec<Value> {
    let read = payloads(&store.read_stream("Ward-b", 1, 100).await.expect("read"));
    let all: Vec<RecordedEvent> = store.read_all(0, 100).await.expect("read all");
    let all: Vec<RecordedEvent> = all
        .into_iter()
        .filter(|event| event.stream_id == "Ward-b")
        .collect();
    assert_eq!(payloads(&all), read);
    assert_eq!(visited_from(store, 1).await, read);
    // From the middle: the visit meets p2 first, then p1 again.
    let tail = visited_from(store, 3).await;
    assert_eq!(tail, read[2..]);
    read
}

async fn one_bundle_per_event_through_every_read<S: EventStore>(inner: S) {
    let given = ward();
    let given_payloads: Vec<Value> = given
        .iter()
        .map(|event| serde_json::from_str(event.payload.get()).expect("JSON"))
        .collect();
    let store = ProtectedStore::new(
        inner,
        MemoryKeyStore::new(MasterKey::from_bytes([3; 32])),
        catalog(),
    );
    store
        .append("Ward-b", "Ward", ExpectedVersion::NoStream, given)
        .await
        .expect("append");

    let stored = payloads(
        &store
            .inner()
            .read_stream("Ward-b", 1, 100)
            .await
            .expect("raw"),
    );
    let name = stored[0]["name"].as_str().expect("a string");
    assert!(
        name.starts_with("pii:v2:") && name != "pii:v2:bundled",
        "{name}"
    );
    assert_eq!(stored[0]["phone"], "pii:v2:bundled");
    assert_eq!(stored[0]["patient_id"], "p1");
    assert_eq!(stored[0]["ward"], "B");
    assert_eq!(
        stored[1], given_payloads[1],
        "not personal: stored as given"
    );
    // The absent phone is a present `null`: sealed with the name.
    assert_eq!(stored[2]["phone"], "pii:v2:bundled");
    // Whole values: a short one could turn up by chance in the base64 of a bundle.
    for plaintext in ["Ada Byron", "Grace Hopper", "+1-555-0101"] {
        assert!(
            !serde_json::to_string(&stored).unwrap().contains(plaintext),
            "{plaintext} stored in the clear"
        );
    }

    assert_eq!(every_read(&store).await, given_payloads);

    store
        .forget(&SubjectId::new("p1").unwrap(), "dpo:dana")
        .await
        .expect("forget");
    let forgotten = every_read(&store).await;
    assert_eq!(forgotten[0]["name"], "");
    assert_eq!(forgotten[0]["phone"], "[forgotten]");
    assert_eq!(forgotten[0]["ward"], "B");
    assert_eq!(forgotten[3]["name"], "");
    assert_eq!(
        forgotten[2], given_payloads[2],
        "the other patient is untouched"
    );
    assert_eq!(forgotten[1], given_payloads[1]);
}

#[tokio::test]
async fn one_bundle_per_event_through_every_read_in_memory() {
    one_bundle_per_event_through_every_read(MemoryStore::new()).await;
}

#[tokio::test]
async fn one_bundle_per_event_through_every_read_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("ward.db"))
        .await
        .expect("open");
    one_bundle_per_event_through_every_read(store).await;
}

#[tokio::test]
async fn fields_below_the_top_level_are_sealed_and_opened_too() {
    let catalog = PersonalCatalog::from_registry_json(
        &json!({ "entries": [{
            "name": "ContactChanged",
            "version": 1,
            "aggregates": ["Member"],
            "personal": {
                "subject": "/member/id",
                "fields": [
                    { "pointer": "/contact/email", "redacted": "" },
                    { "pointer": "/contact/a~1b", "redacted": null },
                ],
            },
        }]})
        .to_string(),
    )
    .expect("catalog");
    let store = ProtectedStore::new(
        MemoryStore::new(),
        MemoryKeyStore::new(MasterKey::from_bytes([4; 32])),
        catalog,
    );
    let given = json!({
        "member": { "id": 42 },
        "contact": { "email": "ada@example.org", "a/b": ["x", 1], "kind": "home" },
    });
    let event = NewEvent::new(
        "ContactChanged",
        1,
        serde_json::value::to_raw_value(&given).unwrap(),
        Metadata::default(),
    );
    store
        .append(
            "Member-42",
            "Member",
            ExpectedVersion::NoStream,
            vec![event],
        )
        .await
        .expect("append");
    let stored = payloads(&store.inner().read_stream("Member-42", 1, 1).await.unwrap());
    assert!(
        stored[0]["contact"]["email"]
            .as_str()
            .unwrap()
            .starts_with("pii:v2:")
    );
    assert_eq!(stored[0]["contact"]["a/b"], "pii:v2:bundled");
    assert_eq!(stored[0]["contact"]["kind"], "home");
    let read = payloads(&store.read_stream("Member-42", 1, 1).await.unwrap());
    assert_eq!(read[0], given);

    store
        .forget(&SubjectId::new("42").unwrap(), "dpo")
        .await
        .unwrap();
    let read = payloads(&store.read_stream("Member-42", 1, 1).await.unwrap());
    assert_eq!(
        read[0],
        json!({
            "member": { "id": 42 },
            "contact": { "email": "", "a/b": null, "kind": "home" },
        })
    );
}

/// Events stored by the first form (one `pii:v1:` value per field, as `seal` makes them)
/// still open, and still read as redacted once forgotten.
#[tokio::test]
async fn fields_of_the_first_stored_form_still_open() {
    let keys = MemoryKeyStore::new(MasterKey::from_bytes([5; 32]));
    let subject = SubjectId::new("p1").unwrap();
    let factum::personal::KeyState::Active(key) = keys.data_key_or_create(&subject).await.unwrap()
    else {
        panic!("a new subject gets an active key");
    };
    let given = ward().remove(0);
    let mut payload: Value = serde_json::from_str(given.payload.get()).unwrap();
    for pointer in ["/name", "/phone"] {
        let aad = Aad::new(given.event_id, &given.name, given.schema_version, pointer);
        let sealed = seal(&key, payload.pointer(pointer).unwrap(), &aad).unwrap();
        *payload.pointer_mut(pointer).unwrap() = sealed;
    }
    let inner = MemoryStore::new();
    let mut stored = given.clone();
    stored.payload = serde_json::value::to_raw_value(&payload).unwrap();
    inner
        .append("Ward-b", "Ward", ExpectedVersion::NoStream, vec![stored])
        .await
        .unwrap();
    let store = ProtectedStore::new(inner, keys, catalog());
    let read = payloads(&store.read_stream("Ward-b", 1, 1).await.unwrap());
    assert_eq!(read[0]["name"], "Ada Byron");
    assert_eq!(read[0]["phone"], "+1-555-0101");
    store.forget(&subject, "dpo").await.unwrap();
    let read = payloads(&store.read_stream("Ward-b", 1, 1).await.unwrap());
    assert_eq!(read[0]["name"], "");
    assert_eq!(read[0]["phone"], "[forgotten]");
}

/// The first stored payload of `store` edited by hand, stored with the same event id in
/// another store with the same keys, and read from there.
async fn tampered(
    store: &ProtectedStore<MemoryStore, MemoryKeyStore>,
    edit: impl FnOnce(&mut Value),
) -> StoreError {
    let copy = ProtectedStore::new(MemoryStore::new(), store.keys().clone(), catalog());
    let stored = store.inner().read_stream("Ward-b", 1, 1).await.unwrap();
    let mut payload: Value = serde_json::from_str(stored[0].payload.get()).unwrap();
    edit(&mut payload);
    let mut event = NewEvent::new(
        stored[0].name.clone(),
        stored[0].schema_version,
        serde_json::value::to_raw_value(&payload).unwrap(),
        Metadata::default(),
    );
    // The same event id, so only the edit differs from what was sealed.
    event.event_id = stored[0].event_id;
    copy.inner()
        .append("Ward-t", "Ward", ExpectedVersion::Any, vec![event])
        .await
        .unwrap();
    let by_read = copy.read_stream("Ward-t", 1, 100).await.unwrap_err();
    let by_visit = copy
        .for_each_in_stream("Ward-t", 1, |_| Ok::<_, ()>(()))
        .await
        .unwrap_err();
    let VisitError::Store(by_visit) = by_visit else {
        panic!("the store's error, not the visitor's");
    };
    assert_eq!(by_visit.to_string(), by_read.to_string());
    by_read
}

/// A hand edit of a stored payload.
type Edit = Box<dyn FnOnce(&mut Value)>;

#[tokio::test]
async fn a_moved_or_altered_bundle_is_a_corrupt_row_at_its_field() {
    let fresh = || async {
        let store = ProtectedStore::new(
            MemoryStore::new(),
            MemoryKeyStore::new(MasterKey::from_bytes([6; 32])),
            catalog(),
        );
        store
            .append("Ward-b", "Ward", ExpectedVersion::NoStream, ward())
            .await
            .unwrap();
        store
    };
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "a bundled field given a value",
            Box::new(|payload| payload["phone"] = json!("+1-555-0000")),
            "does not open",
        ),
        (
            "a bundled field removed",
            Box::new(|payload| {
                payload.as_object_mut().unwrap().remove("phone");
            }),
            "does not open",
        ),
        (
            "the bundle's marker moved to the first field",
            Box::new(|payload| {
                let name = payload["name"].take();
                payload["name"] = json!("pii:v2:bundled");
                payload["phone"] = name;
            }),
            "`pii:v2:bundled` in the first sealed field",
        ),
        (
            "a second bundle",
            Box::new(|payload| payload["phone"] = payload["name"].clone()),
            "a second bundle",
        ),
        (
            "an unknown format",
            Box::new(|payload| payload["name"] = json!("pii:v9:AAAA")),
            "an unknown format version",
        ),
        (
            "the subject changed",
            Box::new(|payload| payload["patient_id"] = json!("p2")),
            "does not open",
        ),
    ];
    for (case, edit, expected) in cases {
        let store = fresh().await;
        // p2's key exists too, so "the subject changed" opens under another key.
        let error = tampered(&store, edit).await;
        let StoreError::CorruptRow {
            ref stream_id,
            stream_version,
            ref reason,
            ..
        } = error
        else {
            panic!("{case}: {error:?}");
        };
        assert_eq!(
            (stream_id.as_str(), stream_version),
            ("Ward-t", 1),
            "{case}"
        );
        assert!(reason.contains(expected), "{case}: {reason}");
        assert!(reason.contains("personal field `/"), "{case}: {reason}");
    }
}

/// An appender keeps its subjects' keys between appends. A subject forgotten meanwhile by
/// another process (another store on the same file) gets the appender's next events
/// sealed under the destroyed key: they read as the replacement everywhere, and nothing
/// of them is stored in the clear.
#[tokio::test]
async fn an_appender_that_missed_a_forgetting_stores_nothing_readable() {
    use factum::sqlite::SqliteKeyStore;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ward.db");
    let open = || async {
        let sqlite = SqliteStore::open(&path).await.expect("open");
        let keys = SqliteKeyStore::in_store(&sqlite, MasterKey::from_bytes([8; 32]))
            .await
            .expect("keys");
        ProtectedStore::new(sqlite, keys, catalog())
    };
    let appender = open().await;
    let operator = open().await;
    let mut events = ward().into_iter();
    appender
        .append(
            "Ward-b",
            "Ward",
            ExpectedVersion::NoStream,
            vec![events.next().unwrap()],
        )
        .await
        .expect("first append");
    operator
        .forget(&SubjectId::new("p1").unwrap(), "dpo")
        .await
        .expect("forget");
    // p1's second admission, by the appender that still holds p1's key.
    let late = events.nth(2).unwrap();
    appender
        .append("Ward-b", "Ward", ExpectedVersion::Exact(1), vec![late])
        .await
        .expect("late append");
    for store in [&appender, &operator] {
        let read = payloads(&store.read_stream("Ward-b", 1, 10).await.unwrap());
        assert_eq!(read.len(), 2);
        for admission in &read {
            assert_eq!(admission["name"], "");
            assert_eq!(admission["phone"], "[forgotten]");
        }
    }
    drop((appender, operator));
    let bytes = std::fs::read_dir(dir.path())
        .unwrap()
        .flat_map(|file| std::fs::read(file.unwrap().path()).unwrap())
        .collect::<Vec<u8>>();
    for plaintext in ["Ada King", "+1-555-0199"] {
        assert!(
            !bytes
                .windows(plaintext.len())
                .any(|window| window == plaintext.as_bytes()),
            "{plaintext} is in the files"
        );
    }
}

#[event(name = "PatientReferred")]
#[derive(Debug, Clone, PartialEq)]
pub struct PatientReferred {
    #[subject]
    #[tag]
    pub patient_id: String,
    #[pii]
    pub name: String,
    #[tag]
    pub clinic: String,
}

#[derive(Events, Debug, Clone, PartialEq)]
pub enum ReferralEvent {
    Referred(PatientReferred),
}

fn referral(patient: &str, name: &str, clinic: &str) -> NewEvent {
    let event = ReferralEvent::Referred(PatientReferred {
        patient_id: patient.into(),
        name: name.into(),
        clinic: clinic.into(),
    });
    let mut tags = Vec::new();
    event.tags(&mut tags);
    let encoded = event.encode().expect("encode");
    NewEvent::new(
        encoded.name,
        encoded.schema_version,
        encoded.payload,
        Metadata::default(),
    )
    .with_tags(tags)
}

/// A clinic's referrals: the query of a decision on it.
fn clinic_query(clinic: &str) -> Query {
    Query::new([QueryItem::names(["PatientReferred"]).with_tags([Tag::new("clinic", clinic)])])
}

/// Decisions through the protected store: the query's events read opened, the decided
/// events stored sealed (their tags in the clear, so the condition finds them), a
/// decision session's visit sees plaintext, and after a subject is forgotten a decision
/// reads their replacement.
async fn decisions_read_opened_and_append_sealed<S: DecisionStore>(inner: S) {
    let mut registry = Registry::builder();
    ReferralEvent::register(&mut registry, Some("Referral"));
    let store = ProtectedStore::new(
        inner,
        MemoryKeyStore::new(MasterKey::from_bytes([5; 32])),
        PersonalCatalog::from_registry(&registry.build().expect("registry")),
    );
    let read = store
        .read_matching(&clinic_query("north"), 0)
        .await
        .expect("read");
    let condition = AppendCondition {
        query: clinic_query("north"),
        after: read.read_to,
    };
    store
        .append_if(
            "Referral-1",
            "Referral",
            ExpectedVersion::NoStream,
            vec![referral("p1", "Ada Byron", "north")],
            &condition,
        )
        .await
        .expect("nothing matching since the read");
    // The same condition again: the referral just stored fails it.
    let refused = store
        .append_if(
            "Referral-2",
            "Referral",
            ExpectedVersion::NoStream,
            vec![referral("p2", "Grace Hopper", "north")],
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

    let stored = store
        .inner()
        .read_matching(&clinic_query("north"), 0)
        .await
        .expect("raw");
    assert_eq!(stored.events.len(), 1);
    let raw = stored.events[0].payload.get();
    assert!(!raw.contains("Ada Byron"), "stored in the clear: {raw}");
    assert_eq!(
        stored.events[0].tags,
        [Tag::new("clinic", "north"), Tag::new("patient_id", "p1")]
    );

    // A session: its visit sees the opened referral, its decision is stored sealed.
    let visited = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&visited);
    let session = store
        .run_decision(
            "Referral-2",
            "Referral",
            &clinic_query("north"),
            CommandRecord::new(uuid::Uuid::now_v7(), "refer p2"),
            move |event: &RecordedEvent| {
                let payload: Value = serde_json::from_str(event.payload.get()).expect("JSON");
                seen.lock().unwrap().push(payload["name"].clone());
                Ok::<_, StoreError>(())
            },
            || Ok(vec![referral("p2", "Grace Hopper", "north")]),
        )
        .await
        .expect("the session");
    assert!(
        matches!(session, CommandSession::Appended(_)),
        "{session:?}"
    );
    assert_eq!(*visited.lock().unwrap(), [json!("Ada Byron")]);
    let raw = store
        .inner()
        .read_stream("Referral-2", 1, 10)
        .await
        .expect("raw");
    assert!(
        !raw[0].payload.get().contains("Grace Hopper"),
        "stored in the clear"
    );

    store
        .forget(&SubjectId::new("p1").unwrap(), "dpo:dana")
        .await
        .expect("forget");
    let read = store
        .read_matching(&clinic_query("north"), 0)
        .await
        .expect("read");
    let names: Vec<Value> = payloads(&read.events)
        .into_iter()
        .map(|payload| payload["name"].clone())
        .collect();
    assert_eq!(names, [json!(""), json!("Grace Hopper")]);
}

#[tokio::test]
async fn decisions_read_opened_and_append_sealed_in_memory() {
    decisions_read_opened_and_append_sealed(MemoryStore::new()).await;
}

#[tokio::test]
async fn decisions_read_opened_and_append_sealed_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("referrals.db"))
        .await
        .expect("open");
    decisions_read_opened_and_append_sealed(store).await;
}

/// Archiving through the protected store moves the stored form: the archive file holds
/// the sealed fields, never the plaintext, and is recorded as the wrapped store's.
#[tokio::test]
async fn an_archive_through_the_protected_store_holds_the_sealed_form() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inner = SqliteStore::open(dir.path().join("ward.db"))
        .await
        .expect("open");
    let store = ProtectedStore::new(
        inner,
        MemoryKeyStore::new(MasterKey::from_bytes([7; 32])),
        catalog(),
    );
    store
        .append("Ward-b", "Ward", ExpectedVersion::NoStream, ward())
        .await
        .expect("append");
    let file = dir.path().join("ward-1.archive");
    let record = store.archive(4, &file).await.expect("archived");
    assert_eq!((record.after, record.upto), (0, 4));
    let archived = store.archives().await.expect("archives");
    assert_eq!(archived, std::slice::from_ref(&record));
    assert_eq!(store.inner().archives().await.expect("archives"), archived);
    let bytes = std::fs::read(&file).expect("the archive file");
    let text = String::from_utf8_lossy(&bytes);
    // Whole values: a short one ("555") turns up by chance in the file's hashes and ids.
    for plaintext in [
        "Ada Byron",
        "Ada King",
        "Grace Hopper",
        "+1-555-0101",
        "+1-555-0199",
    ] {
        assert!(
            !text.contains(plaintext),
            "{plaintext} archived in the clear"
        );
    }
    let archive = Archive::open(&file).expect("opens");
    let first = archive.event(1).expect("reads").expect("archived");
    let payload: Value = serde_json::from_str(first.payload.get()).expect("JSON");
    assert!(
        payload["name"]
            .as_str()
            .expect("a string")
            .starts_with("pii:v2:"),
        "{payload}"
    );
}
