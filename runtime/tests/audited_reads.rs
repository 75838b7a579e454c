//! Reads from outside the domain go through a read policy and are kept in the access
//! audit record — stream reads, subject exports and subscriptions, allowed or denied —
//! and that record is part of the verified history.

use factum::authorization::{
    AuditedReads, Decision, Principal, ReadChannel, ReadRefused, SUBJECT_STREAM_TYPE, reads,
};
use factum::context::Actor;
use factum::integrity::{SigningKey, TamperEvident};
use factum::personal::{
    MasterKey, MemoryKeyStore, PersonalCatalog, ProtectedStore, SubjectId, subject_stream,
};
use factum::prelude::*;
use factum::registry::Registry;

#[event(name = "PatientAdmitted")]
#[derive(Debug, Clone, PartialEq)]
pub struct PatientAdmitted {
    #[subject]
    pub patient_id: String,
    #[pii]
    pub name: String,
    pub ward: String,
}

#[derive(Events, Debug, Clone, PartialEq)]
pub enum PatientEvent {
    Admitted(PatientAdmitted),
}

fn admitted(patient: &str, name: &str) -> NewEvent {
    let encoded = PatientEvent::Admitted(PatientAdmitted {
        patient_id: patient.to_owned(),
        name: name.to_owned(),
        ward: "B".to_owned(),
    })
    .encode()
    .expect("encode");
    NewEvent::new(
        encoded.name,
        encoded.schema_version,
        encoded.payload,
        Metadata::default(),
    )
}

/// Nurses read patients' streams; the data protection officer reads exports; nobody
/// else reads anything.
fn policy(principal: &Principal, stream_type: &str) -> Decision {
    let kind = principal.actor.kind.as_str();
    match (kind, stream_type) {
        ("nurse", "Patient") => Decision::Allow,
        ("dpo", subjects) if subjects == SUBJECT_STREAM_TYPE => Decision::Allow,
        _ => Decision::deny(format!("a {kind} does not read {stream_type}")),
    }
}

#[tokio::test]
async fn every_read_from_outside_is_authorized_recorded_and_verified() {
    let mut registry = Registry::builder();
    PatientEvent::register(&mut registry, Some("Patient"));
    let catalog = PersonalCatalog::from_registry(&registry.build().expect("registry"));
    let store = ProtectedStore::new(
        MemoryStore::new(),
        MemoryKeyStore::new(MasterKey::from_bytes([1; 32])),
        catalog,
    );
    store
        .append(
            "Patient-p1",
            "Patient",
            ExpectedVersion::NoStream,
            vec![admitted("p1", "Ada Byron")],
        )
        .await
        .expect("append");
    let reads_of = AuditedReads::new(store.clone(), policy);
    let nurse = Principal::new(Actor::new("nurse", "noor")).in_tenant("clinic-7");
    let clerk = Principal::new(Actor::new("clerk", "carl"));
    let dpo = Principal::new(Actor::new("dpo", "dana"));

    let events = reads_of
        .read_stream(&nurse, "Patient-p1", 1, 10)
        .await
        .expect("a nurse reads");
    assert!(
        events[0].payload.get().contains("Ada Byron"),
        "opened for the reader"
    );
    match reads_of.read_stream(&clerk, "Patient-p1", 1, 10).await {
        Err(ReadRefused::Denied {
            principal,
            target,
            reason,
        }) => {
            assert_eq!(
                (principal.as_str(), target.as_str()),
                ("clerk:carl", "Patient-p1")
            );
            assert_eq!(reason, "a clerk does not read Patient");
        }
        other => panic!("expected a denial, got {other:?}"),
    }
    let record = reads(&store, "Patient-p1")
        .await
        .expect("the access record");
    assert_eq!(record.len(), 2);
    assert_eq!(
        (
            record[0].actor.as_str(),
            record[0].tenant.as_deref(),
            record[0].events,
            record[0].through
        ),
        ("noor", Some("clinic-7"), 1, ReadChannel::Library)
    );
    assert_eq!(
        record[1].denied.as_deref(),
        Some("a clerk does not read Patient")
    );
    assert_eq!(record[1].events, 0);

    // A subject's export: the DPO may, a nurse may not; both are recorded.
    let subject = SubjectId::new("p1").unwrap();
    let export = reads_of
        .export_subject(&dpo, &subject)
        .await
        .expect("the DPO exports");
    // The admission, and who read the patient's stream (the two reads above).
    let names: Vec<&str> = export
        .events
        .iter()
        .map(|event| event.name.as_str())
        .collect();
    assert_eq!(names, ["PatientAdmitted", "StreamRead", "StreamRead"]);
    assert!(matches!(
        reads_of.export_subject(&nurse, &subject).await,
        Err(ReadRefused::Denied { .. })
    ));
    let record = reads(&store, &subject_stream(&subject))
        .await
        .expect("the access record");
    assert_eq!(
        record
            .iter()
            .map(|read| (read.actor.as_str(), read.through, read.denied.is_some()))
            .collect::<Vec<_>>(),
        [
            ("dana", ReadChannel::Export, false),
            ("noor", ReadChannel::Export, true)
        ]
    );

    // A subscription: authorized and recorded under `*` and the stream type.
    reads_of
        .authorize_subscription(&nurse, "Patient")
        .await
        .expect("a nurse follows");
    assert!(
        reads_of
            .authorize_subscription(&clerk, "Patient")
            .await
            .is_err()
    );
    let record = reads(&store, "*Patient").await.expect("the access record");
    assert_eq!(record.len(), 2);
    assert!(
        record
            .iter()
            .all(|read| read.through == ReadChannel::Subscription)
    );

    // The access record is history like any other: chained, checkpointed, verified.
    let key = SigningKey::from_bytes(&[2; 32]);
    store.checkpoint(&key).await.expect("checkpoint");
    let verification = store
        .verify_signed(&key.verifying_key())
        .await
        .expect("verify");
    assert!(verification.is_intact(), "{verification}");
    assert_eq!(verification.events, 1 + 2 + 2 + 2);
}
