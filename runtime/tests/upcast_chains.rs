//! Upcast chains of any length, typed and through JSON, and mixed.

use factum::error::DecodeErrorKind;
use factum::prelude::*;
use serde_json::{Value, json};

/// v1: a single full name.
#[event(name = "PersonRegistered", version = 1)]
#[derive(Debug, PartialEq)]
pub struct PersonRegisteredV1 {
    pub name: String,
}

/// v2: split names.
#[event(name = "PersonRegistered", version = 2, upcast_from = PersonRegisteredV1)]
#[derive(Debug, PartialEq)]
pub struct PersonRegisteredV2 {
    pub given_name: String,
    pub family_name: String,
}

impl From<PersonRegisteredV1> for PersonRegisteredV2 {
    fn from(old: PersonRegisteredV1) -> Self {
        let (given, family) = old.name.split_once(' ').unwrap_or((&old.name, ""));
        Self {
            given_name: given.to_owned(),
            family_name: family.to_owned(),
        }
    }
}

/// v3: an email is required; a missing one cannot be invented, so the upcast can fail.
#[event(name = "PersonRegistered", version = 3, upcast_from = PersonRegisteredV2)]
#[derive(Debug, PartialEq)]
pub struct PersonRegistered {
    pub given_name: String,
    pub family_name: String,
    pub email: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{0} has no known email")]
pub struct NoEmail(String);

impl TryFrom<PersonRegisteredV2> for PersonRegistered {
    type Error = NoEmail;
    fn try_from(old: PersonRegisteredV2) -> Result<Self, NoEmail> {
        if old.given_name == "Anonymous" {
            return Err(NoEmail(old.given_name));
        }
        let email = format!("{}@example.org", old.given_name.to_lowercase());
        Ok(Self {
            given_name: old.given_name,
            family_name: old.family_name,
            email,
        })
    }
}

fn rename(from: &'static str, to: &'static str) -> impl Fn(Value) -> Result<Value, String> {
    move |mut value| {
        let object = value.as_object_mut().ok_or("not an object")?;
        let moved = object.remove(from).ok_or_else(|| format!("no `{from}`"))?;
        object.insert(to.to_owned(), moved);
        Ok(value)
    }
}

fn v1_to_v2(value: Value) -> Result<Value, String> {
    rename("amt", "amount")(value)
}

fn v2_to_v3(value: Value) -> Result<Value, String> {
    rename("amount", "cents")(value)
}

/// Versions 1 and 2 were retired; only JSON upcasts read them.
#[event(
    name = "PaymentTaken",
    version = 3,
    upcast_json(from = 1, with = v1_to_v2),
    upcast_json(from = 2, with = v2_to_v3)
)]
#[derive(Debug, PartialEq)]
pub struct PaymentTakenV3 {
    pub cents: u64,
}

/// Version 4 exists as a type on top of the retired chain.
#[event(name = "PaymentTaken", version = 4, upcast_from = PaymentTakenV3)]
#[derive(Debug, PartialEq)]
pub struct PaymentTaken {
    pub cents: u64,
    pub currency: String,
}

impl From<PaymentTakenV3> for PaymentTaken {
    fn from(old: PaymentTakenV3) -> Self {
        Self {
            cents: old.cents,
            currency: "EUR".into(),
        }
    }
}

#[derive(Events, Debug, PartialEq)]
pub enum LedgerEvent {
    Registered(PersonRegistered),
    Paid(PaymentTaken),
}

fn decode(
    name: &str,
    version: u32,
    payload: Value,
) -> Result<LedgerEvent, factum::error::DecodeError> {
    LedgerEvent::decode(name, version, &payload.to_string())
}

#[test]
fn a_typed_chain_runs_every_step_from_the_oldest_version() {
    let expected = LedgerEvent::Registered(PersonRegistered {
        given_name: "Ada".into(),
        family_name: "Lovelace".into(),
        email: "ada@example.org".into(),
    });
    assert_eq!(
        decode("PersonRegistered", 1, json!({ "name": "Ada Lovelace" })).unwrap(),
        expected
    );
    assert_eq!(
        decode(
            "PersonRegistered",
            2,
            json!({ "given_name": "Ada", "family_name": "Lovelace" })
        )
        .unwrap(),
        expected
    );
    assert_eq!(
        decode(
            "PersonRegistered",
            3,
            json!({ "given_name": "Ada", "family_name": "Lovelace", "email": "ada@example.org" })
        )
        .unwrap(),
        expected
    );
    assert_eq!(<PersonRegistered as Event>::OLDEST_VERSION, 1);
}

#[test]
fn a_failing_try_from_is_a_typed_upcast_error() {
    let error = decode("PersonRegistered", 1, json!({ "name": "Anonymous" })).unwrap_err();
    assert_eq!(
        (error.event.as_str(), error.schema_version),
        ("PersonRegistered", 1)
    );
    match error.kind {
        DecodeErrorKind::Upcast { from, to, source } => {
            assert_eq!((from, to), (2, 3));
            assert_eq!(source.to_string(), "Anonymous has no known email");
        }
        other => panic!("expected an upcast error, got {other:?}"),
    }
}

#[test]
fn retired_json_versions_chain_into_typed_ones() {
    let expected = LedgerEvent::Paid(PaymentTaken {
        cents: 250,
        currency: "EUR".into(),
    });
    assert_eq!(
        decode("PaymentTaken", 1, json!({ "amt": 250 })).unwrap(),
        expected
    );
    assert_eq!(
        decode("PaymentTaken", 2, json!({ "amount": 250 })).unwrap(),
        expected
    );
    assert_eq!(
        decode("PaymentTaken", 3, json!({ "cents": 250 })).unwrap(),
        expected
    );
    assert_eq!(
        decode(
            "PaymentTaken",
            4,
            json!({ "cents": 250, "currency": "EUR" })
        )
        .unwrap(),
        expected
    );
    assert_eq!(<PaymentTaken as Event>::OLDEST_VERSION, 1);
}

#[test]
fn a_json_upcast_output_that_misfits_names_the_target_version() {
    // Version 2 stored with a string amount: the JSON steps succeed, the shape of v3 does not.
    let error = decode("PaymentTaken", 2, json!({ "amount": "250" })).unwrap_err();
    assert!(
        matches!(&error.kind, DecodeErrorKind::Payload { version: 3, path, .. } if path == "cents"),
        "{error}"
    );
    let error = decode("PaymentTaken", 1, json!({ "amount": 250 })).unwrap_err();
    assert!(
        matches!(&error.kind, DecodeErrorKind::Upcast { from: 1, to: 2, source } if source.to_string() == "no `amt`"),
        "{error}"
    );
}

#[test]
fn encoding_writes_the_newest_version_under_the_stable_name() {
    let encoded = LedgerEvent::Paid(PaymentTaken {
        cents: 1,
        currency: "EUR".into(),
    })
    .encode()
    .unwrap();
    assert_eq!((encoded.name, encoded.schema_version), ("PaymentTaken", 4));
    assert_eq!(encoded.payload.get(), r#"{"cents":1,"currency":"EUR"}"#);
}
