//! Personal data end to end, the same story on every backend (memory, SQLite,
//! PostgreSQL): sealed at rest, opened on read, exported (as JSON and as CloudEvents),
//! forgotten on request (the history still replays), and the signed history unbroken by
//! forgetting. Then what each backend keeps on disk is scanned for the plaintext.
//!
//! The PostgreSQL test needs a server: `eval "$(scripts/postgres.sh start)"` exports
//! `FACTUM_POSTGRES_URL`. Without it the test fails, never passes.

use std::path::Path;

use factum::chrono::Utc;
use factum::cloudevents::CloudEvents;
use factum::integrity::{SigningKey, TamperEvident};
use factum::personal::{
    KeyStore, MasterKey, MemoryKeyStore, PersonalCatalog, ProtectedStore, SubjectId,
};
use factum::postgres::{PostgresConfig, PostgresKeyStore, PostgresStore};
use factum::prelude::*;
use factum::projection::ReadModel;
use factum::serde_json::{self, Value};
use factum::sqlite::rusqlite;
use factum::sqlite::{SqliteKeyStore, SqliteReadModel, SqliteStore};
use factum_example_member_profile::directory::{MemberDirectory, email_of};
use factum_example_member_profile::{
    ChangeEmail, GiveConsent, Member, MemberCommand, Register, WithdrawConsent, registry,
};

const EMAIL: &str = "maria.lopez@example.org";
const NEW_EMAIL: &str = "m.lopez@example.net";
const PHONE: &str = "+1-555-0142";
const OTHER_EMAIL: &str = "tom@example.org";
const DPO: &str = "dpo@clinic.example";

fn master() -> MasterKey {
    MasterKey::from_bytes([3; 32])
}

/// `inner` with the member's personal events sealed under keys kept in `keys`.
fn protected<S: EventStore, K: KeyStore>(inner: S, keys: K) -> ProtectedStore<S, K> {
    ProtectedStore::new(inner, keys, PersonalCatalog::from_registry(&registry()))
}

/// The files below `dir` (recursively) that hold `needle`, by name.
fn files_holding(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("list the directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            found.extend(files_holding(&path, needle));
            continue;
        }
        let bytes = std::fs::read(&path).expect("read a file");
        if bytes
            .windows(needle.len())
            .any(|window| window == needle.as_bytes())
        {
            found.push(path.display().to_string());
        }
    }
    found
}

async fn member_history<S: EventStore>(members: &Repository<Member, S>) {
    let at = Utc::now();
    let commands: [MemberCommand; 5] = [
        Register {
            member_id: "m-1".into(),
            email: EMAIL.into(),
            phone: Some(PHONE.into()),
            at,
        }
        .into(),
        GiveConsent {
            member_id: "m-1".into(),
            purpose: "reminders".into(),
            at,
        }
        .into(),
        ChangeEmail {
            member_id: "m-1".into(),
            email: NEW_EMAIL.into(),
            at,
        }
        .into(),
        WithdrawConsent {
            member_id: "m-1".into(),
            purpose: "reminders".into(),
            at,
        }
        .into(),
        Register {
            member_id: "m-2".into(),
            email: OTHER_EMAIL.into(),
            phone: None,
            at,
        }
        .into(),
    ];
    for command in commands {
        members.execute(command).await.expect("a member's command");
    }
}

/// The whole story through `store`; the backend's own checks of what it keeps on disk
/// come after. `between` runs once the member's data is written and exported, before
/// the member is forgotten (a read model catches up there).
async fn personal_data_story<S, K>(store: &ProtectedStore<S, K>, between: impl AsyncFnOnce())
where
    S: EventStore + TamperEvident + Clone,
    K: KeyStore + Clone,
{
    let members = Repository::<Member, _>::new(store.clone());
    member_history(&members).await;

    // Read through the protected store: plaintext.
    let member = members.load("m-1").await.expect("load").state;
    assert_eq!(member.email, NEW_EMAIL);
    assert_eq!(member.phone.as_deref(), Some(PHONE));
    assert!(member.consents.is_empty());
    // As stored: sealed, the subject and the facts that are not personal in the clear.
    let stored = store
        .inner()
        .read_stream("Member-m-1", 1, 10)
        .await
        .expect("raw read");
    let first = stored[0].payload.get();
    assert!(first.contains("\"email\":\"pii:v2:"), "{first}");
    assert!(first.contains("\"phone\":\"pii:v2:bundled\""), "{first}");
    assert!(first.contains("\"member_id\":\"m-1\""), "{first}");
    assert!(
        stored
            .iter()
            .all(|event| !event.payload.get().contains(EMAIL)
                && !event.payload.get().contains(NEW_EMAIL)
                && !event.payload.get().contains(PHONE)),
        "a stored payload holds plaintext"
    );

    // The access request: every event about the member, opened.
    let subject = SubjectId::new("m-1").expect("a subject id");
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
    let json = serde_json::to_string(&export).expect("the export as JSON");
    assert!(json.contains(EMAIL) && json.contains(NEW_EMAIL) && json.contains(PHONE));
    assert!(
        !json.contains(OTHER_EMAIL),
        "another member's data is not exported"
    );
    // The same export as a CloudEvents batch: an array of structured events, each
    // readable back, the opened payloads in it.
    let ce = CloudEvents::new("/services/members", "clinic").expect("a mapping");
    let batch = export
        .to_cloudevents(&ce)
        .expect("the export as CloudEvents");
    let parsed: Vec<Value> = serde_json::from_str(&batch).expect("a JSON array");
    assert_eq!(parsed.len(), export.events.len());
    for (cloudevent, event) in parsed.iter().zip(&export.events) {
        assert_eq!(cloudevent["specversion"], "1.0");
        assert_eq!(cloudevent["subject"], "Member-m-1");
        let imported = ce
            .from_structured(&cloudevent.to_string())
            .expect("a structured CloudEvent of the domain");
        assert_eq!(imported.event.event_id, event.event_id);
    }
    assert_eq!(parsed[0]["type"], "clinic.Member.MemberRegistered");
    assert_eq!(parsed[0]["data"]["email"], EMAIL);
    assert_eq!(parsed[2]["data"]["email"], NEW_EMAIL);

    between().await;

    // A checkpoint before forgetting: forgetting changes nothing stored, so it holds.
    let signing = SigningKey::from_bytes(&[5; 32]);
    let checkpoint = store.checkpoint(&signing).await.expect("checkpoint");

    let forgotten = store.forget(&subject, DPO).await.expect("forget");
    assert_eq!(forgotten.forgotten_by, DPO);
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
        other.email, OTHER_EMAIL,
        "only the forgotten member's data goes"
    );

    let export = store.export(&subject).await.expect("export");
    assert!(export.forgotten);
    let json = serde_json::to_string(&export).expect("the export as JSON");
    assert!(!json.contains(EMAIL) && !json.contains(NEW_EMAIL) && !json.contains(PHONE));
    assert!(json.contains("factum.SubjectForgotten") && json.contains(DPO));

    let verification = store
        .verify_signed(&signing.verifying_key())
        .await
        .expect("verify");
    assert!(verification.is_intact(), "{verification}");
    // The member's first event is still the one the checkpoint signed.
    let position = stored[0].position;
    let (leaf, proof) = store
        .prove_inclusion(position, &checkpoint.head)
        .await
        .expect("an inclusion proof");
    assert_eq!(leaf.position, position);
    checkpoint
        .head
        .verify_inclusion(&leaf.merkle_leaf(), &proof)
        .expect("the forgotten member's event is in the signed tree");
}

/// In memory, with the catalog read from the registry document (as a tool without the
/// application's types reads it): the same personal events as from the registry itself.
#[factum::tokio::test(crate = "factum::tokio")]
async fn personal_data_in_memory() {
    let document = serde_json::to_string(&registry()).expect("the registry document");
    let catalog = PersonalCatalog::from_registry_json(&document).expect("a catalog");
    let typed = PersonalCatalog::from_registry(&registry());
    for (name, version) in [("MemberRegistered", 1), ("EmailChanged", 1)] {
        assert!(catalog.entry(name, version).is_some(), "{name}");
        assert_eq!(catalog.entry(name, version), typed.entry(name, version));
    }
    assert!(catalog.entry("ConsentGiven", 1).is_none());
    assert!(catalog.is_personal_stream_type("Member"));
    let store = ProtectedStore::new(MemoryStore::new(), MemoryKeyStore::new(master()), catalog);
    personal_data_story(&store, async || {}).await;
}

/// On SQLite, with a read model that copies the address out of the log: rebuilt after
/// forgetting, and then no file of the store or of the read models holds the plaintext.
#[factum::tokio::test(crate = "factum::tokio")]
async fn personal_data_on_sqlite_with_a_read_model_rebuilt_after_forgetting() {
    let dir = tempfile::tempdir().expect("a directory");
    let db = dir.path().join("members.db");
    let sqlite = SqliteStore::open(&db).await.expect("open");
    let keys = SqliteKeyStore::in_store(&sqlite, master())
        .await
        .expect("keys");
    let store = protected(sqlite.clone(), keys);
    // The directory reads through the protected store: it holds the plaintext address.
    let read_models = SqliteReadModel::open(dir.path().join("members.read-models"))
        .await
        .expect("read models");
    let runner = ProjectionRunner::new(store.clone());
    let email_in_directory = async |member: &'static str| {
        read_models
            .read(MemberDirectory::NAME, move |reader| {
                email_of(reader, member)
            })
            .await
            .expect("the directory answers")
    };

    personal_data_story(&store, async || {
        let mut projector = runner.projector(MemberDirectory, read_models.clone());
        runner
            .catch_up_and_activate(&mut projector)
            .await
            .expect("the directory catches up");
        assert_eq!(email_in_directory("m-1").await.as_deref(), Some(NEW_EMAIL));
    })
    .await;
    // The log forgot; the directory's copy did not.
    assert_eq!(email_in_directory("m-1").await.as_deref(), Some(NEW_EMAIL));
    let rebuilt = runner
        .rebuild(MemberDirectory, read_models.clone(), |_| {})
        .await
        .expect("rebuild");
    assert!(rebuilt.applied >= 2, "{rebuilt:?}");
    assert_eq!(email_in_directory("m-1").await.as_deref(), Some(""));
    assert_eq!(
        email_in_directory("m-2").await.as_deref(),
        Some(OTHER_EMAIL),
        "the other member stays in the directory"
    );
    let versions = read_models
        .versions(MemberDirectory::NAME)
        .await
        .expect("versions");
    assert_eq!(
        versions.len(),
        1,
        "one version, rebuilt in place: {versions:?}"
    );
    // Every file, while the service still runs: the store and its WAL, the read models'
    // catalog and version files and their WALs.
    for plaintext in [EMAIL, NEW_EMAIL, PHONE] {
        assert_eq!(
            files_holding(dir.path(), plaintext),
            Vec::<String>::new(),
            "{plaintext} outlived the forgetting"
        );
    }

    // A sealed value copied into another event of the same member does not open there:
    // it is bound to the event it was sealed for.
    let members = Repository::<Member, _>::new(store.clone());
    let at = Utc::now();
    members
        .execute(Register {
            member_id: "m-3".into(),
            email: "ana@example.org".into(),
            phone: None,
            at,
        })
        .await
        .expect("register");
    members
        .execute(ChangeEmail {
            member_id: "m-3".into(),
            email: "ana@example.com".into(),
            at,
        })
        .await
        .expect("change");
    let raw = rusqlite::Connection::open(&db).expect("a raw connection");
    let moved = raw
        .execute(
            "UPDATE events SET payload = json_set(payload, '$.email', (
                 SELECT json_extract(e.payload, '$.email') FROM events e
                 JOIN streams s ON s.stream_key = e.stream_key
                 WHERE s.stream_id = 'Member-m-3' AND e.stream_version = 1))
             WHERE stream_version = 2 AND stream_key =
                 (SELECT stream_key FROM streams WHERE stream_id = 'Member-m-3')",
            [],
        )
        .expect("copy a sealed value");
    assert_eq!(moved, 1);
    drop(raw);
    match members.load("m-3").await {
        Err(RepositoryError::Store(StoreError::CorruptRow {
            stream_id,
            stream_version,
            reason,
            ..
        })) => {
            assert_eq!((stream_id.as_str(), stream_version), ("Member-m-3", 2));
            assert!(reason.contains("personal field `/email`"), "{reason}");
        }
        other => panic!("a moved sealed value opened: {other:?}"),
    }
    let verification = store.verify().await.expect("verify");
    assert!(!verification.is_intact(), "the hash chain catches the edit");
}

#[factum::tokio::test(crate = "factum::tokio")]
async fn personal_data_on_postgres() {
    let url = match std::env::var("FACTUM_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "FACTUM_POSTGRES_URL is not set: this test needs a server. Start a throwaway one \
             with `eval \"$(scripts/postgres.sh start)\"`."
        ),
    };
    // A schema of its own, new each run.
    let schema = format!("member_profile_{}", factum::uuid::Uuid::now_v7().simple());
    let postgres = PostgresStore::connect(PostgresConfig::from_url(&url).schema(&schema))
        .await
        .expect("connect");
    let keys = PostgresKeyStore::in_store(&postgres, master())
        .await
        .expect("keys");
    let store = protected(postgres.clone(), keys);
    personal_data_story(&store, async || {}).await;

    // What the server keeps: sealed payloads only.
    let client = postgres.client().await.expect("a connection");
    let payloads: Vec<String> = client
        .query(
            &format!("SELECT payload::text FROM \"{schema}\".events ORDER BY position"),
            &[],
        )
        .await
        .expect("raw payloads")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(payloads.len() >= 6, "{payloads:?}");
    for plaintext in [EMAIL, NEW_EMAIL, PHONE] {
        assert!(
            payloads.iter().all(|payload| !payload.contains(plaintext)),
            "{plaintext} is stored in the clear"
        );
    }
    assert!(
        payloads.iter().any(|payload| payload.contains("pii:v2:")),
        "nothing is sealed"
    );
    client
        .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .expect("drop the test schema");
}
