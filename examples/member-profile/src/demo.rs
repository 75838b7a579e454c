//! The member-profile job: members register and change their details on a SQLite store
//! whose personal fields are sealed per member; one member's data is exported, then
//! forgotten at the DPO's request, and the signed history still verifies.
//!
//! The keys live in files beside the store, so a second run on the same files reads the
//! first run's members and verifies its checkpoint: `<db>.master-key` (the master key
//! that wraps every member's key) and `<db>.signing-key` (the checkpoints' Ed25519 seed),
//! 32 raw bytes each, made on the first run.

use std::path::{Path, PathBuf};

use factum::authorization::{self, AuditError, AuditedReads, Decision, Principal, ReadRefused};
use factum::chrono::Utc;
use factum::cloudevents::{BATCH_CONTENT_TYPE, CloudEventError, CloudEvents};
use factum::context::Actor;
use factum::integrity::checkpoint::SignedTreeHead;
use factum::integrity::merkle::ProofError;
use factum::integrity::{ProofRequestError, SigningKey, TamperEvident};
use factum::personal::{
    MasterKey, PersonalCatalog, PersonalError, PersonalStoreError, ProtectedStore, SubjectId,
};
use factum::prelude::*;
use factum::serde_json::{self, Value};
use factum::sqlite::{SqliteKeyStore, SqliteOpenError, SqliteStore};

use crate::{ChangeEmail, GiveConsent, Member, MemberError, Register, WithdrawConsent, registry};

/// The store the job works on: personal fields sealed in a SQLite file, keys beside them.
pub type MemberStore = ProtectedStore<SqliteStore, SqliteKeyStore>;

/// Who asks for the member to be forgotten, and reads their data on the way.
const DPO: &str = "dpo@clinic.example";

/// Why the job stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The store file could not be opened.
    #[error("opening the store")]
    Open(#[from] SqliteOpenError),
    /// A key file could not be read or written.
    #[error("key file {}", path.display())]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A key file does not hold 32 bytes.
    #[error("key file {} holds {found} bytes, not 32", path.display())]
    KeyLength {
        /// The file.
        path: PathBuf,
        /// Its length.
        found: usize,
    },
    /// A key could not be made, or a member id is not a subject id.
    #[error("keys")]
    Keys(#[from] PersonalError),
    /// The store failed.
    #[error("the store failed")]
    Store(#[from] StoreError),
    /// Exporting or forgetting failed.
    #[error("exporting or forgetting failed")]
    Personal(#[from] PersonalStoreError),
    /// A command failed.
    #[error("a command failed")]
    Command(#[from] RepositoryError<MemberError>),
    /// The export could not be written as CloudEvents.
    #[error("writing CloudEvents")]
    CloudEvents(#[from] CloudEventError),
    /// JSON could not be written or read.
    #[error("JSON")]
    Json(#[from] serde_json::Error),
    /// The access audit record could not be read.
    #[error("reading the access record")]
    Audit(#[from] AuditError),
    /// The audited read was refused.
    #[error("the audited read")]
    Read(#[from] ReadRefused),
    /// No inclusion proof could be made.
    #[error("proving inclusion")]
    ProofRequest(#[from] ProofRequestError),
    /// An inclusion proof did not check out.
    #[error("the inclusion proof does not hold")]
    Proof(#[from] ProofError),
    /// Something the job shows did not come out as it should.
    #[error("unexpected: {0}")]
    Unexpected(String),
}

/// Runs the job on the store file `db`, printing what happens. Run it again on the same
/// file: new members join, the earlier ones (and their forgetting) stay.
pub async fn run(db: &Path) -> Result<(), DemoError> {
    let sqlite = SqliteStore::open(db).await?;
    let master = MasterKey::from_bytes(key_file(&key_path(db, "master-key"))?);
    let signing = SigningKey::from_bytes(&key_file(&key_path(db, "signing-key"))?);
    let keys = SqliteKeyStore::in_store(&sqlite, master).await?;
    let store = ProtectedStore::new(
        sqlite.clone(),
        keys,
        PersonalCatalog::from_registry(&registry()),
    );
    let members = Repository::<Member, _>::new(store.clone());
    // Each run's members get ids of their own: the log's head when it started.
    let run = sqlite.head().await?.map_or(0, |head| head.position);
    let maria = format!("M-{run}-maria");
    let tom = format!("M-{run}-tom");
    let (email, new_email, phone) = (
        "maria.lopez@example.org",
        "m.lopez@example.net",
        "+1-555-0142",
    );

    println!("1. Members register, change their address, give and withdraw consent");
    story(&members, &maria, &tom, [email, new_email, phone]).await?;
    println!("{maria} registered ({email}, {phone}), {tom} registered (tom@example.org, no phone)");
    println!("{maria} changed her address to {new_email}, consented to reminders and withdrew");

    println!("\n2. Sealed at rest, opened on read");
    let stream = format!("{}-{maria}", <Member as Aggregate>::NAME);
    let stored = sqlite.read_stream(&stream, 1, 1).await?;
    let first = stored
        .first()
        .ok_or_else(|| DemoError::Unexpected(format!("{stream} has no events")))?;
    println!(
        "{} as stored: {}",
        first.name,
        shortened(first.payload.get())?
    );
    let member = members.load(&maria).await?.state;
    println!(
        "{maria} read through the protected store: email {}, phone {}",
        member.email,
        member.phone.as_deref().unwrap_or("none")
    );

    println!("\n3. A signed checkpoint of the whole log");
    let checkpoint = store.checkpoint(&signing).await?;
    println!(
        "checkpoint of {} events up to position {}, root {}..., signed by key {} (public key {})",
        checkpoint.head.tree_size,
        checkpoint.head.last_position,
        hex(&checkpoint.head.root[..8]),
        checkpoint.key_id,
        hex(signing.verifying_key().as_bytes())
    );

    println!("\n4. {maria}'s data access request");
    audited_read(&store, &stream).await?;
    let subject = SubjectId::new(maria.as_str())?;
    let export = store.export(&subject).await?;
    let json = serde_json::to_string_pretty(&export)?;
    let batch = export.to_cloudevents(&CloudEvents::new("/services/members", "clinic")?)?;
    let cloudevents: Vec<Value> = serde_json::from_str(&batch)?;
    println!(
        "export of {maria}: {} event(s), holds {new_email}: {}; as CloudEvents ({BATCH_CONTENT_TYPE}): {} event(s), holds {new_email}: {}",
        export.events.len(),
        yes(json.contains(new_email)),
        cloudevents.len(),
        yes(batch.contains(new_email))
    );

    println!("\n5. {maria} forgotten at the DPO's request");
    let forgotten = store.forget(&subject, DPO).await?;
    println!(
        "{maria} forgotten by {} at {}",
        forgotten.forgotten_by, forgotten.forgotten_at
    );
    let member = members.load(&maria).await?.state;
    println!(
        "{maria} after forgetting: {}, email {:?}, phone {:?}, consents {}",
        if member.registered {
            "registered"
        } else {
            "not registered"
        },
        member.email,
        member.phone.as_deref().unwrap_or_default(),
        member.consents.len()
    );
    let other = members.load(&tom).await?.state;
    println!("{tom} untouched: email {}", other.email);
    let export = store.export(&subject).await?;
    let json = serde_json::to_string(&export)?;
    println!(
        "export of {maria} after forgetting: {} event(s), forgotten: {}, holds {new_email}: {}",
        export.events.len(),
        export.forgotten,
        yes(json.contains(new_email))
    );

    println!("\n6. The signed history is unbroken by forgetting");
    let verification = store.verify_signed(&signing.verifying_key()).await?;
    println!("verify_signed after forgetting: {verification}");
    if !verification.is_intact() {
        return Err(DemoError::Unexpected(verification.to_string()));
    }
    prove_first_event(&store, &sqlite, &stream, &maria, &checkpoint).await?;
    Ok(())
}

/// The members' history: two register, the first changes her address and gives and
/// withdraws a consent. `details` are her address, her new address and her phone.
async fn story(
    members: &Repository<Member, MemberStore>,
    maria: &str,
    tom: &str,
    [email, new_email, phone]: [&str; 3],
) -> Result<(), DemoError> {
    let at = Utc::now();
    members
        .execute(Register {
            member_id: maria.to_owned(),
            email: email.to_owned(),
            phone: Some(phone.to_owned()),
            at,
        })
        .await?;
    members
        .execute(Register {
            member_id: tom.to_owned(),
            email: "tom@example.org".to_owned(),
            phone: None,
            at,
        })
        .await?;
    members
        .execute(ChangeEmail {
            member_id: maria.to_owned(),
            email: new_email.to_owned(),
            at,
        })
        .await?;
    members
        .execute(GiveConsent {
            member_id: maria.to_owned(),
            purpose: "reminders".to_owned(),
            at,
        })
        .await?;
    members
        .execute(WithdrawConsent {
            member_id: maria.to_owned(),
            purpose: "reminders".to_owned(),
            at,
        })
        .await?;
    Ok(())
}

/// The DPO reads the member's stream through the audited reads, under a policy that
/// lets data protection officers read members: the read is kept in the stream's access
/// record, so who looked at personal data is itself on record.
async fn audited_read(store: &MemberStore, stream: &str) -> Result<(), DemoError> {
    let policy = |principal: &Principal, stream_type: &str| {
        Decision::allow_if(
            principal.actor.is("dpo") && stream_type == "Member",
            "only data protection officers read members' streams",
        )
    };
    let reads = AuditedReads::new(store.clone(), policy);
    let dpo = Principal::new(Actor::new("dpo", DPO));
    let events = reads.read_stream(&dpo, stream, 1, 1000).await?;
    let record = authorization::reads(store, stream).await?;
    println!(
        "{DPO} read {stream}: {} event(s); its access record holds {} read(s)",
        events.len(),
        record.len()
    );
    Ok(())
}

/// Proves that the member's first event is in the tree the checkpoint signed, though
/// the member is forgotten since: the stored event did not change.
async fn prove_first_event(
    store: &MemberStore,
    sqlite: &SqliteStore,
    stream: &str,
    maria: &str,
    checkpoint: &SignedTreeHead,
) -> Result<(), DemoError> {
    let first = sqlite.read_stream(stream, 1, 1).await?;
    let position = first
        .first()
        .map(|event| event.position)
        .ok_or_else(|| DemoError::Unexpected(format!("{stream} has no events")))?;
    let (leaf, proof) = store.prove_inclusion(position, &checkpoint.head).await?;
    checkpoint
        .head
        .verify_inclusion(&leaf.merkle_leaf(), &proof)?;
    println!(
        "inclusion of {maria}'s first event (position {position}) in the checkpoint of {} events: proven ({} hashes)",
        checkpoint.head.tree_size,
        proof.path.len()
    );
    Ok(())
}

/// `<db>.<what>`: a key file beside the store.
fn key_path(db: &Path, what: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".");
    name.push(what);
    PathBuf::from(name)
}

/// The 32 bytes in `path`, made (random, readable by the owner only) if it is missing.
fn key_file(path: &Path) -> Result<[u8; 32], DemoError> {
    let failed = |source| DemoError::KeyFile {
        path: path.to_owned(),
        source,
    };
    match std::fs::read(path) {
        Ok(bytes) => <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| DemoError::KeyLength {
            path: path.to_owned(),
            found: bytes.len(),
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            // The operating system's randomness, drawn as a master key draws it.
            let bytes = *MasterKey::generate()?.expose_bytes();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path).map_err(failed)?;
            std::io::Write::write_all(&mut file, &bytes).map_err(failed)?;
            Ok(bytes)
        }
        Err(error) => Err(failed(error)),
    }
}

/// A stored payload with each sealed value cut to its first characters.
fn shortened(payload: &str) -> Result<String, DemoError> {
    let mut value: Value = serde_json::from_str(payload)?;
    if let Value::Object(fields) = &mut value {
        for field in fields.values_mut() {
            if let Value::String(text) = field
                && text.starts_with("pii:v2:")
                && text.chars().count() > 16
            {
                let cut: String = text.chars().take(16).collect();
                *text = format!("{cut}...");
            }
        }
    }
    Ok(value.to_string())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn yes(holds: bool) -> &'static str {
    if holds { "yes" } else { "no" }
}
