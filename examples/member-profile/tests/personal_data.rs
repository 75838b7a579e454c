//! Personal data end to end on SQLite: sealed at rest, opened on read, forgotten on
//! request (the history still replays, the plaintext is gone from the files), exported,
//! and the tamper-evident history unbroken by forgetting.

use std::path::Path;

use factum::chrono::Utc;
use factum::integrity::{SigningKey, TamperEvident};
use factum::personal::{MasterKey, PersonalCatalog, ProtectedStore, SubjectId};
use factum::prelude::*;
use factum::sqlite::SqliteKeyStore;
use factum::store::SqliteStore;
use factum_example_member_profile::{
    ChangeEmail, GiveConsent, Member, Register, WithdrawConsent, registry,
};

const EMAIL: &str = "maria.lopez@example.org";
const NEW_EMAIL: &str = "m.lopez@example.net";
const PHONE: &str = "+1-555-0142";

/// Whether any file of the store (the database, its WAL) holds `needle`.
fn files_hold(db: &Path, needle: &str) -> bool {
    let dir = db.parent().expect("a directory");
    std::fs::read_dir(dir).expect("list").any(|entry| {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).unwrap_or_default();
        bytes
            .windows(needle.len())
            .any(|window| window == needle.as_bytes())
    })
}

async fn member_history<S: EventStore>(members: &Repository<Member, S>) {
    let at = Utc::now();
    members
        .execute(Register {
            member_id: "m-1".into(),
            email: EMAIL.into(),
            phone: Some(PHONE.into()),
            at,
        })
        .await
        .expect("register");
    members
        .execute(GiveConsent {
            member_id: "m-1".into(),
            purpose: "reminders".into(),
            at,
        })
        .await
        .expect("consent");
    members
        .execute(ChangeEmail {
            member_id: "m-1".into(),
            email: NEW_EMAIL.into(),
            at,
        })
        .await
        .expect("change");
    members
        .execute(WithdrawConsent {
            member_id: "m-1".into(),
            purpose: "reminders".into(),
            at,
        })
        .await
        .expect("withdraw");
    members
        .execute(Register {
            member_id: "m-2".into(),
            email: "tom@example.org".into(),
            phone: None,
            at,
        })
        .await
        .expect("register another");
}

#[factum::tokio::test(crate = "factum::tokio")]
async fn personal_fields_are_sealed_opened_forgotten_and_exported_on_sqlite() {
    let dir = tempfile::tempdir().expect("a directory");
    let db = dir.path().join("members.db");
    let sqlite = SqliteStore::open(&db).await.expect("open");
    let keys = SqliteKeyStore::in_store(&sqlite, MasterKey::from_bytes([3; 32]))
        .await
        .expect("keys");
    let store = ProtectedStore::new(
        sqlite.clone(),
        keys,
        PersonalCatalog::from_registry(&registry()),
    );
    let members = Repository::<Member, _>::new(store.clone());
    member_history(&members).await;

    // Read through the protected store: plaintext.
    let member = members.load("m-1").await.expect("load").state;
    assert_eq!(member.email, NEW_EMAIL);
    assert_eq!(member.phone.as_deref(), Some(PHONE));
    assert!(member.consents.is_empty());
    // At rest: sealed, bound to their events.
    let stored = sqlite
        .read_stream("Member-m-1", 1, 10)
        .await
        .expect("raw read");
    assert!(
        stored[0].payload.get().contains("\"email\":\"pii:v1:"),
        "{}",
        stored[0].payload.get()
    );
    assert!(stored[0].payload.get().contains("\"member_id\":\"m-1\""));
    drop(stored);
    assert!(
        !files_hold(&db, EMAIL),
        "the plaintext address is in a file"
    );
    assert!(!files_hold(&db, PHONE));

    // The access request: every event about the member, opened.
    let subject = SubjectId::new("m-1").unwrap();
    let export = store.export(&subject).await.expect("export");
    let names: Vec<&str> = export
        .events
        .iter()
        .map(|event| event.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "MemberRegistered",
            "ConsentGiven",
            "EmailChanged",
            "ConsentWithdrawn"
        ],
        "the member's stream"
    );
    let json = factum::serde_json::to_string(&export).unwrap();
    assert!(json.contains(EMAIL) && json.contains(NEW_EMAIL) && json.contains(PHONE));
    assert!(
        !json.contains("tom@example.org"),
        "another member's data is not exported"
    );

    // A checkpoint before forgetting: forgetting changes nothing stored, so it still holds.
    let signing = SigningKey::from_bytes(&[5; 32]);
    store.checkpoint(&signing).await.expect("checkpoint");

    let forgotten = store
        .forget(&subject, "dpo@clinic.example")
        .await
        .expect("forget");
    assert_eq!(forgotten.forgotten_by, "dpo@clinic.example");
    let member = members
        .load("m-1")
        .await
        .expect("the history still replays")
        .state;
    assert_eq!(member.email, "");
    assert_eq!(member.phone.as_deref(), Some("[forgotten]"));
    assert!(member.registered && member.consents.is_empty());
    let other = members.load("m-2").await.expect("load").state;
    assert_eq!(
        other.email, "tom@example.org",
        "only the forgotten member's data goes"
    );

    let export = store.export(&subject).await.expect("export");
    assert!(export.forgotten);
    let json = factum::serde_json::to_string(&export).unwrap();
    assert!(!json.contains(EMAIL) && !json.contains(PHONE));
    assert!(json.contains("factum.SubjectForgotten") && json.contains("dpo@clinic.example"));

    let verification = store
        .verify_signed(&signing.verifying_key())
        .await
        .expect("verify");
    assert!(verification.is_intact(), "{verification}");
    drop((members, store, sqlite));
    assert!(!files_hold(&db, EMAIL) && !files_hold(&db, NEW_EMAIL) && !files_hold(&db, PHONE));
}
