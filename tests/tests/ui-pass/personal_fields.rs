//! A correct use of `#[subject]`, `#[pii]` and `#[pii(redacted = "...")]` compiles, and
//! `Event::PERSONAL` describes the fields by their JSON pointers (serde's names) with the
//! value each reads as once its subject is forgotten.

use factum::Event;
use factum::event;
use serde_json::json;

#[event(name = "MemberRegistered")]
pub struct MemberRegistered {
    #[subject]
    pub member_id: String,
    #[pii]
    pub email: String,
    #[pii(redacted = "[forgotten]")]
    pub phone: Option<String>,
    #[pii]
    pub nickname: Option<String>,
    pub plan: String,
}

/// A newtype id: it names a subject through its own `Subject` impl.
#[derive(serde::Serialize, serde::Deserialize, factum::schemars::JsonSchema)]
#[schemars(crate = "factum::schemars")]
pub struct MemberId(pub String);

impl factum::personal::Subject for MemberId {}

#[event(name = "MemberContactChanged")]
#[serde(rename_all = "camelCase")]
pub struct MemberContactChanged {
    #[subject]
    pub member_id: MemberId,
    #[pii]
    pub phone_number: String,
    #[pii(redacted = "[forgotten]")]
    #[serde(rename = "mail")]
    pub email_address: String,
    pub changed_by_support: bool,
}

/// An event without personal data keeps the default: none.
#[event(name = "MemberLeft")]
pub struct MemberLeft {
    pub member_id: String,
}

fn main() {
    let registered = <MemberRegistered as Event>::PERSONAL;
    assert!(registered.is_personal());
    assert_eq!(registered.subject, Some("/member_id"));
    let pointers: Vec<&str> = registered.fields.iter().map(|field| field.pointer).collect();
    assert_eq!(pointers, ["/email", "/phone", "/nickname"]);
    let redacted: Vec<serde_json::Value> = registered
        .fields
        .iter()
        .map(|field| (field.redacted)())
        .collect();
    assert_eq!(redacted, [json!(""), json!("[forgotten]"), json!(null)]);

    let changed = <MemberContactChanged as Event>::PERSONAL;
    assert_eq!(changed.subject, Some("/memberId"));
    let pointers: Vec<&str> = changed.fields.iter().map(|field| field.pointer).collect();
    assert_eq!(pointers, ["/phoneNumber", "/mail"]);
    let redacted: Vec<serde_json::Value> =
        changed.fields.iter().map(|field| (field.redacted)()).collect();
    assert_eq!(redacted, [json!(""), json!("[forgotten]")]);

    // The pointers name the keys serde writes.
    let payload = serde_json::to_value(MemberContactChanged {
        member_id: MemberId("m-1".to_owned()),
        phone_number: "+44 20 7946 0000".to_owned(),
        email_address: "ada@example.com".to_owned(),
        changed_by_support: false,
    })
    .unwrap();
    for pointer in changed.subject.into_iter().chain(pointers) {
        assert!(payload.pointer(pointer).is_some(), "{pointer} not in {payload}");
    }

    let left = <MemberLeft as Event>::PERSONAL;
    assert!(!left.is_personal());
    assert_eq!(left.subject, None);
}
