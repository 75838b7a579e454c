//! `factum subject export|forget` and `factum verify` on a SQLite store the member
//! profile wrote through a `ProtectedStore`: the command line learns the personal fields
//! from the registry document and opens them with the master key from its file.

mod bin_common;

use bin_common::{factum, text};

use std::path::Path;

use factum::chrono::Utc;
use factum::integrity::{SigningKey, TamperEvident};
use factum::personal::{MasterKey, PersonalCatalog, ProtectedStore};
use factum::prelude::*;
use factum::sqlite::{SqliteKeyStore, SqliteStore};
use factum_example_member_profile::{Member, Register, registry};
use serde_json::Value;

const EMAIL: &str = "maria.lopez@example.org";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Two members registered through a protected store, and a signed checkpoint.
async fn members(db: &Path, master: [u8; 32], signing: &SigningKey) {
    let sqlite = SqliteStore::open(db).await.expect("open");
    let keys = SqliteKeyStore::in_store(&sqlite, MasterKey::from_bytes(master))
        .await
        .expect("keys");
    let store = ProtectedStore::new(sqlite, keys, PersonalCatalog::from_registry(&registry()));
    let members = Repository::<Member, _>::new(store.clone());
    for (member_id, email) in [("m-1", EMAIL), ("m-2", "tom@example.org")] {
        members
            .execute(Register {
                member_id: member_id.into(),
                email: email.into(),
                phone: None,
                at: Utc::now(),
            })
            .await
            .expect("register");
    }
    store.checkpoint(signing).await.expect("checkpoint");
}

#[tokio::test]
async fn a_subject_is_exported_forgotten_and_the_store_verified() {
    let dir = tempfile::tempdir().expect("a directory");
    let db = dir.path().join("members.sqlite3");
    let master = [9; 32];
    let signing = SigningKey::from_bytes(&[7; 32]);
    members(&db, master, &signing).await;
    // The key as 64 hex digits and a newline, as an operator would write it.
    let key_file = dir.path().join("master.key");
    std::fs::write(&key_file, format!("{}\n", hex(&master))).expect("write the key");
    let registry_file = dir.path().join("registry.json");
    std::fs::write(
        &registry_file,
        serde_json::to_string(&registry()).expect("the registry document"),
    )
    .expect("write the registry");
    let (db, key_file, registry_file) = (
        db.to_str().expect("a UTF-8 path"),
        key_file.to_str().expect("a UTF-8 path"),
        registry_file.to_str().expect("a UTF-8 path"),
    );
    let keyed = ["--db", db, "--master-key-file", key_file];
    let export = |extra: &[&str]| {
        let mut arguments = vec!["subject", "export"];
        arguments.extend(keyed);
        arguments.extend(["--registry", registry_file, "--subject", "m-1"]);
        arguments.extend(extra);
        let output = factum(&arguments);
        assert!(output.status.success(), "{}", text(&output.stderr));
        serde_json::from_slice::<Value>(&output.stdout).expect("JSON")
    };
    let public_key = hex(signing.verifying_key().as_bytes());

    let exported = export(&[]);
    assert_eq!(exported["subject"], "m-1");
    assert_eq!(exported["forgotten"], false);
    assert_eq!(exported["events"].as_array().map(Vec::len), Some(1));
    assert_eq!(exported["events"][0]["payload"]["email"], EMAIL);
    let batch = export(&["--cloudevents", "--domain", "clinic"]);
    assert_eq!(batch.as_array().map(Vec::len), Some(1));
    assert_eq!(batch[0]["type"], "clinic.Member.MemberRegistered");
    assert_eq!(batch[0]["data"]["email"], EMAIL);

    let verified = factum(&["verify", "--db", db, "--public-key", &public_key]);
    assert!(verified.status.success(), "{}", text(&verified.stdout));
    assert!(text(&verified.stdout).ends_with("verified: intact\n"));

    let mut forget = vec!["subject", "forget"];
    forget.extend(keyed);
    forget.extend(["--subject", "m-1", "--by", "dpo@clinic.example"]);
    let forgotten = factum(&forget);
    assert!(forgotten.status.success(), "{}", text(&forgotten.stderr));
    assert!(text(&forgotten.stdout).starts_with("m-1 forgotten by dpo@clinic.example at "));

    let exported = export(&[]);
    assert_eq!(exported["forgotten"], true);
    assert!(!exported.to_string().contains(EMAIL));
    assert_eq!(exported["events"][0]["payload"]["email"], "");
    assert_eq!(exported["events"][1]["name"], "factum.SubjectForgotten");

    // Forgetting changed nothing the checkpoint signed; a key that did not sign it fails.
    let verified = factum(&["verify", "--db", db, "--public-key", &public_key]);
    assert!(verified.status.success(), "{}", text(&verified.stdout));
    let other = hex(SigningKey::from_bytes(&[8; 32]).verifying_key().as_bytes());
    let refused = factum(&["verify", "--db", db, "--public-key", &other]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stdout).contains("unknown key"),
        "{}",
        text(&refused.stdout)
    );

    // A master key file of the wrong size is refused, naming the formats.
    std::fs::write(key_file, b"short").expect("write");
    let mut arguments = vec!["subject", "export"];
    arguments.extend(keyed);
    arguments.extend(["--registry", registry_file, "--subject", "m-1"]);
    let refused = factum(&arguments);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("32 raw bytes or 64 hex digits"),
        "{}",
        text(&refused.stderr)
    );
}
