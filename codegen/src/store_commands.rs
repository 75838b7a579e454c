//! `factum subject export|forget` and `factum verify`: a data subject's requests (on an
//! application's SQLite store) and the history's verification (on a SQLite or
//! PostgreSQL store), from the command line.
//!
//! The command line does not have the application's types, so it learns which fields
//! are personal from the application's registry document (`--registry`, what
//! `factum::registry::Registry` serialises to). The master key that wraps the subjects'
//! keys is read from a file (`--master-key-file`: 32 raw bytes, or 64 hex digits with
//! optional surrounding whitespace), never from an argument, which other users of the
//! machine could read in the process list.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use factum::cloudevents::CloudEvents;
use factum::integrity::{TamperEvident, VerifyingKey};
use factum::personal::{MasterKey, PersonalCatalog, ProtectedStore, SubjectId};
use factum::sqlite::{SqliteKeyStore, SqliteStore};

/// What a subject command needs to open the store with its keys.
pub struct Store {
    /// The SQLite store file.
    pub db: PathBuf,
    /// The master key's file.
    pub master_key_file: PathBuf,
}

/// How the export is written.
pub enum ExportFormat {
    /// factum's own: the subject, whether forgotten, the events with their envelopes.
    Json,
    /// A CloudEvents batch (`application/cloudevents-batch+json`).
    CloudEvents {
        /// The CloudEvents `source`.
        source: String,
        /// The domain the event types are named in.
        domain: String,
    },
}

/// Prints every event about `subject`, opened, as JSON (see [`ExportFormat`]).
pub fn export(
    store: &Store,
    registry: &Path,
    subject: &str,
    format: ExportFormat,
) -> Result<ExitCode, String> {
    let text = std::fs::read_to_string(registry)
        .map_err(|error| format!("cannot read {}: {error}", registry.display()))?;
    let catalog = PersonalCatalog::from_registry_json(&text)
        .map_err(|error| format!("{} is not a registry document: {error}", registry.display()))?;
    let subject = subject_id(subject)?;
    block_on(async {
        let store = open(store, catalog).await?;
        let export = store.export(&subject).await.map_err(failed)?;
        let out = match format {
            ExportFormat::Json => serde_json::to_string_pretty(&export).map_err(failed)?,
            ExportFormat::CloudEvents { source, domain } => {
                let ce = CloudEvents::new(source, domain).map_err(failed)?;
                export.to_cloudevents(&ce).map_err(failed)?
            }
        };
        println!("{out}");
        Ok(ExitCode::SUCCESS)
    })
}

/// Forgets `subject` at `by`'s request and prints the record.
pub fn forget(store: &Store, subject: &str, by: &str) -> Result<ExitCode, String> {
    let subject = subject_id(subject)?;
    block_on(async {
        // Forgetting destroys a key: which fields are personal does not matter to it.
        let store = open(store, PersonalCatalog::default()).await?;
        let forgotten = store.forget(&subject, by).await.map_err(failed)?;
        println!(
            "{} forgotten by {} at {}",
            forgotten.subject, forgotten.forgotten_by, forgotten.forgotten_at
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// Verifies the store's hash chains and, given the public key, its signed checkpoints;
/// exits 1 when the history does not hold.
pub fn verify(
    store: &crate::inspect::StoreArgs,
    public_key: Option<&str>,
) -> Result<ExitCode, String> {
    let key = public_key
        .map(|hex| {
            VerifyingKey::from_bytes(&from_hex(hex.trim())?)
                .map_err(|error| format!("--public-key is not an Ed25519 public key: {error}"))
        })
        .transpose()?;
    block_on(async {
        let verification = on_store!(crate::inspect::Db::open(store, false).await?, store => {
            match &key {
                Some(key) => store.verify_signed(key).await,
                None => store.verify().await,
            }
        })
        .map_err(failed)?;
        println!("{verification}");
        for finding in verification.findings.iter().skip(1) {
            println!("  {finding}");
        }
        Ok(if verification.is_intact() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}

async fn open(
    store: &Store,
    catalog: PersonalCatalog,
) -> Result<ProtectedStore<SqliteStore, SqliteKeyStore>, String> {
    let master = master_key(&store.master_key_file)?;
    if !store.db.exists() {
        return Err(format!("{} does not exist", store.db.display()));
    }
    let sqlite = SqliteStore::open(&store.db).await.map_err(failed)?;
    let keys = SqliteKeyStore::in_store(&sqlite, master)
        .await
        .map_err(failed)?;
    Ok(ProtectedStore::new(sqlite, keys, catalog))
}

/// The master key in `path`: 32 raw bytes, or 64 hex digits.
fn master_key(path: &Path) -> Result<MasterKey, String> {
    let bytes =
        std::fs::read(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let key = match <[u8; 32]>::try_from(bytes.as_slice()) {
        Ok(raw) => raw,
        Err(_) => std::str::from_utf8(&bytes)
            .map_err(|_| ())
            .and_then(|text| from_hex(text.trim()).map_err(|_| ()))
            .map_err(|()| {
                format!(
                    "{} holds {} bytes: a master key file holds 32 raw bytes or 64 hex digits",
                    path.display(),
                    bytes.len()
                )
            })?,
    };
    Ok(MasterKey::from_bytes(key))
}

fn from_hex(text: &str) -> Result<[u8; 32], String> {
    let digits = text.as_bytes();
    if digits.len() != 64 {
        return Err(format!(
            "expected 64 hex digits, got {} characters",
            digits.len()
        ));
    }
    let mut bytes = [0u8; 32];
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks(2)) {
        let pair = std::str::from_utf8(pair).map_err(|_| "not hex".to_owned())?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| format!("`{pair}` is not hex"))?;
    }
    Ok(bytes)
}

fn subject_id(subject: &str) -> Result<SubjectId, String> {
    SubjectId::new(subject).map_err(|error| format!("--subject: {error}"))
}

pub(crate) fn failed(error: impl std::error::Error) -> String {
    crate::with_causes(&error)
}

pub(crate) fn block_on<T>(work: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    factum::tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the async runtime: {error}"))?
        .block_on(work)
}
