//! Tags declared with `#[tag]`: what an event gives, what its set gives, and what the
//! registry says of them.

use std::borrow::Cow;
use std::collections::BTreeSet;

use factum::prelude::*;
use factum::registry::{Registry, TAG_KEYWORD, TagEntry};
use factum::tag::{TagError, TagField};
use factum::{Tag, TagValue};
use serde_json::json;

/// An id type of the user's own, tagged through its `TagValue`.
#[derive(
    Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, factum::schemars::JsonSchema,
)]
pub struct CourseId(String);

impl TagValue for CourseId {
    fn tag_value(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.0)
    }
}

#[event(name = "StudentSubscribed")]
#[derive(Debug, Clone, PartialEq)]
pub struct StudentSubscribed {
    #[tag(name = "course")]
    pub course_id: CourseId,
    /// Tagged under its own name.
    #[tag]
    pub student: String,
    pub note: String,
}

#[event(name = "SeatsChanged", version = 1)]
#[derive(Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SeatsChanged {
    #[tag(name = "course")]
    pub course_id: CourseId,
    #[tag(name = "room")]
    pub room_number: Option<u32>,
    #[tag(name = "teacher")]
    pub teacher_ids: Vec<factum::uuid::Uuid>,
    #[serde(rename = "cohort-label")]
    #[tag(name = "cohort")]
    pub cohort: BTreeSet<String>,
    pub seats: u32,
}

#[event(name = "Untagged")]
#[derive(Debug, Clone, PartialEq)]
pub struct Untagged {
    pub anything: String,
}

#[derive(Events, Debug, Clone, PartialEq)]
pub enum CourseEvent {
    Subscribed(StudentSubscribed),
    SeatsChanged(SeatsChanged),
    Untagged(Untagged),
}

fn tags_of<E: Event>(event: &E) -> Vec<String> {
    let mut tags = Vec::new();
    event.tags(&mut tags);
    tags.iter().map(ToString::to_string).collect()
}

#[test]
fn an_event_declares_its_tags_in_field_order_with_the_fields_json_keys() {
    assert_eq!(
        StudentSubscribed::TAGS,
        [
            TagField {
                key: "course",
                field: "course_id"
            },
            TagField {
                key: "student",
                field: "student"
            },
        ]
    );
    assert_eq!(
        SeatsChanged::TAGS,
        [
            TagField {
                key: "course",
                field: "courseId"
            },
            TagField {
                key: "room",
                field: "roomNumber"
            },
            TagField {
                key: "teacher",
                field: "teacherIds"
            },
            TagField {
                key: "cohort",
                field: "cohort-label"
            },
        ]
    );
    assert!(Untagged::TAGS.is_empty());
}

#[test]
fn an_event_gives_one_tag_per_value_none_for_none() {
    let subscribed = StudentSubscribed {
        course_id: CourseId("c-1".into()),
        student: "s:7".into(),
        note: "front row".into(),
    };
    // A value may hold `:`: the key ends at the first one.
    assert_eq!(tags_of(&subscribed), ["course:c-1", "student:s:7"]);

    let teacher = factum::uuid::Uuid::from_u128(0x0191_a0b0_0000_7000_8000_0000_0000_0001);
    let changed = SeatsChanged {
        course_id: CourseId("c-1".into()),
        room_number: Some(204),
        teacher_ids: vec![teacher, teacher],
        cohort: ["b".to_owned(), "a".to_owned()].into(),
        seats: 30,
    };
    assert_eq!(
        tags_of(&changed),
        [
            "course:c-1".to_owned(),
            "room:204".to_owned(),
            format!("teacher:{teacher}"),
            format!("teacher:{teacher}"),
            "cohort:a".to_owned(),
            "cohort:b".to_owned(),
        ]
    );
    let without = SeatsChanged {
        room_number: None,
        teacher_ids: Vec::new(),
        cohort: BTreeSet::new(),
        ..changed
    };
    assert_eq!(tags_of(&without), ["course:c-1"]);
    assert!(
        tags_of(&Untagged {
            anything: "x".into()
        })
        .is_empty()
    );
}

#[test]
fn a_set_gives_the_tags_of_the_event_it_holds() {
    let event = CourseEvent::from(StudentSubscribed {
        course_id: CourseId("c-2".into()),
        student: "s-1".into(),
        note: String::new(),
    });
    let mut tags = vec![Tag::new("kept", "before")];
    event.tags(&mut tags);
    assert_eq!(
        tags,
        [
            Tag::new("kept", "before"),
            Tag::new("course", "c-2"),
            Tag::new("student", "s-1")
        ]
    );
    let mut none = Vec::new();
    CourseEvent::from(Untagged {
        anything: String::new(),
    })
    .tags(&mut none);
    assert!(none.is_empty());
}

#[test]
fn the_registry_lists_the_tags_and_marks_the_tagged_properties() {
    let mut builder = Registry::builder();
    CourseEvent::register(&mut builder, Some("Course"));
    let registry = serde_json::to_value(builder.build().unwrap()).unwrap();
    let entry = |name: &str| {
        registry["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|entry| entry["name"] == name)
            .unwrap()
            .clone()
    };
    let changed = entry("SeatsChanged");
    let tags: Vec<TagEntry> = serde_json::from_value(changed["tags"].clone()).unwrap();
    assert_eq!(
        tags,
        [
            TagEntry {
                key: "course".into(),
                field: "courseId".into()
            },
            TagEntry {
                key: "room".into(),
                field: "roomNumber".into()
            },
            TagEntry {
                key: "teacher".into(),
                field: "teacherIds".into()
            },
            TagEntry {
                key: "cohort".into(),
                field: "cohort-label".into()
            },
        ]
    );
    let properties = &changed["schema"]["properties"];
    assert_eq!(properties["courseId"][TAG_KEYWORD], json!("course"));
    assert_eq!(properties["roomNumber"][TAG_KEYWORD], json!("room"));
    assert_eq!(properties["cohort-label"][TAG_KEYWORD], json!("cohort"));
    assert!(properties["seats"].get(TAG_KEYWORD).is_none());
    // An event without tags says nothing of them.
    assert!(entry("Untagged").get("tags").is_none());
}

#[test]
fn a_tag_reads_back_from_its_text_and_refuses_text_without_a_key() {
    let tag = Tag::parse("user_name:ada:lovelace").unwrap();
    assert_eq!((tag.key(), tag.value()), ("user_name", "ada:lovelace"));
    assert_eq!(tag, Tag::new("user_name", "ada:lovelace"));
    assert_eq!(
        serde_json::to_value(&tag).unwrap(),
        json!("user_name:ada:lovelace")
    );
    assert_eq!(
        serde_json::from_value::<Tag>(json!("course:c-1")).unwrap(),
        Tag::new("course", "c-1")
    );
    // An empty value is a value.
    assert_eq!(Tag::parse("course:").unwrap().value(), "");
    for text in ["no-colon", ":c-1", "bad key:x", "Ünïcode:x", ""] {
        let error = Tag::parse(text).unwrap_err();
        assert_eq!(
            error,
            TagError {
                text: text.to_owned()
            }
        );
        assert!(
            error.to_string().contains(&format!("`{text}` is no tag")),
            "{error}"
        );
        assert!(
            serde_json::from_value::<Tag>(json!(text)).is_err(),
            "{text}"
        );
    }
    assert!(Tag::is_valid_key("a.b-c_9"));
    assert!(!Tag::is_valid_key("a:b"));
}

#[test]
#[should_panic(expected = "`a b` is no tag key")]
fn a_tag_made_with_an_invalid_key_panics_naming_it() {
    let _ = Tag::new("a b", "x");
}

// ---------------------------------------------------------------------------------------
// Tags in the envelope, the memory store and CloudEvents

fn tagged(name: &str, tags: &[(&str, &str)]) -> NewEvent {
    NewEvent::new(
        name,
        1,
        factum::serde_json::value::to_raw_value(&json!({ "n": 1 })).unwrap(),
        Metadata::default(),
    )
    .with_tags(tags.iter().map(|(key, value)| Tag::new(key, value)))
}

#[tokio::test]
async fn the_memory_store_keeps_each_tag_once_sorted_and_chains_it() {
    use factum::integrity::TamperEvident;

    let store = MemoryStore::new();
    store
        .append(
            "Course-c1",
            "Course",
            ExpectedVersion::NoStream,
            vec![
                tagged(
                    "SeatsChanged",
                    &[("student", "s-2"), ("course", "c-1"), ("student", "s-2")],
                ),
                tagged("Noted", &[]),
            ],
        )
        .await
        .unwrap();
    let read = store.read_all(0, 10).await.unwrap();
    assert_eq!(
        read[0].tags,
        [Tag::new("course", "c-1"), Tag::new("student", "s-2")]
    );
    assert!(read[1].tags.is_empty());
    let verification = store.verify().await.unwrap();
    assert!(verification.is_intact(), "{verification:?}");

    // The envelope carries the tags, and only when there are some.
    let envelope = serde_json::to_value(&read[0]).unwrap();
    assert_eq!(envelope["tags"], json!(["course:c-1", "student:s-2"]));
    assert!(
        serde_json::to_value(&read[1])
            .unwrap()
            .get("tags")
            .is_none()
    );
    let back: RecordedEvent = serde_json::from_value(envelope).unwrap();
    assert_eq!(back.tags, read[0].tags);
    // The envelope's schema says so.
    let schema = factum::envelope::envelope_schema();
    assert!(schema["properties"]["tags"].is_object(), "{schema}");
}

#[tokio::test]
async fn a_tag_holding_a_nul_character_is_refused_with_nothing_written() {
    let store = MemoryStore::new();
    let error = store
        .append(
            "Course-c1",
            "Course",
            ExpectedVersion::NoStream,
            vec![tagged("SeatsChanged", &[("course", "c\u{0}1")])],
        )
        .await
        .unwrap_err();
    match &error {
        StoreError::ValueRefused { field, .. } => {
            assert_eq!(field, "event 1 of the batch (`SeatsChanged`) tag `course`");
        }
        other => panic!("expected a refused value, got {other:?}"),
    }
    assert!(store.is_empty());
}

#[tokio::test]
async fn cloudevents_carry_the_tags_out_and_back() {
    use factum::cloudevents::CloudEvents;

    let source = MemoryStore::new();
    source
        .append(
            "Course-c1",
            "Course",
            ExpectedVersion::NoStream,
            vec![
                tagged("SeatsChanged", &[("course", "c-1"), ("room", "2:04")]),
                tagged("Noted", &[]),
            ],
        )
        .await
        .unwrap();
    let mapping = CloudEvents::new("/services/courses", "school").unwrap();
    let mut exported = Vec::new();
    assert_eq!(
        mapping
            .export_jsonl(&source, 0, &mut exported)
            .await
            .unwrap(),
        2
    );
    let first: serde_json::Value =
        serde_json::from_slice(exported.split(|byte| *byte == b'\n').next().unwrap()).unwrap();
    assert_eq!(first["factumtags"], json!(r#"["course:c-1","room:2:04"]"#));
    let target = MemoryStore::new();
    mapping
        .import_jsonl(&target, exported.as_slice())
        .await
        .unwrap();
    let (before, after) = (
        source.read_all(0, 10).await.unwrap(),
        target.read_all(0, 10).await.unwrap(),
    );
    assert_eq!(
        after.iter().map(|event| &event.tags).collect::<Vec<_>>(),
        before.iter().map(|event| &event.tags).collect::<Vec<_>>()
    );
    assert_eq!(after[0].tags.len(), 2);
}

/// A course as an aggregate: its events are tagged, and the repository stores them with
/// their tags, so a decision across entities finds an aggregate's events too.
#[derive(Default)]
pub struct Course {
    seats: u32,
}

#[command(name = "ChangeSeats")]
pub struct ChangeSeats {
    #[aggregate_id]
    pub course: String,
    pub seats: u32,
}

#[derive(Commands)]
pub enum CourseCommand {
    ChangeSeats(ChangeSeats),
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
pub struct Never;

#[aggregate(events = CourseEvent, commands = CourseCommand, error = Never, ignore_events = [StudentSubscribed, Untagged])]
impl Course {
    #[handle]
    fn change(&self, command: ChangeSeats) -> Result<SeatsChanged, Never> {
        Ok(SeatsChanged {
            course_id: CourseId(command.course),
            room_number: Some(7),
            teacher_ids: Vec::new(),
            cohort: BTreeSet::new(),
            seats: command.seats,
        })
    }

    #[apply]
    fn changed(&mut self, event: &SeatsChanged) {
        self.seats = event.seats;
    }
}

/// The seats of a course, as a decision reads them.
#[derive(Default)]
pub struct Seats(u32);

#[decision_model(tags(course))]
impl Seats {
    #[apply]
    fn changed(&mut self, event: &SeatsChanged) {
        self.0 = event.seats;
    }
}

#[tokio::test]
async fn an_aggregates_events_are_stored_with_their_tags() {
    use factum::decision::{Decisions, Models};
    use factum::store::decision::{DecisionStore, Query};
    let repository = Repository::<Course, _>::new(MemoryStore::new());
    repository
        .execute(ChangeSeats {
            course: "c-1".into(),
            seats: 30,
        })
        .await
        .expect("executed");
    let stored = repository.store().read_all(0, 10).await.expect("read");
    assert_eq!(
        stored[0].tags,
        [Tag::new("course", "c-1"), Tag::new("room", "7")],
        "the event's tags, sorted"
    );
    let items = <(Seats,)>::items(&(Seats::keyed("c-1"),));
    let read = Decisions::new(repository.store().clone())
        .store()
        .read_matching(&Query::new(items.iter().cloned()), 0)
        .await
        .expect("read");
    let mut models = <(Seats,)>::default();
    for event in &read.events {
        models.apply(&items, event).expect("applied");
    }
    let (seats,) = models;
    assert_eq!(
        seats.0, 30,
        "the decision model finds the aggregate's event"
    );
}
