//! Archives: the bodies of a store's old events moved to a file that replay still reads.
//!
//! Archiving ([`ArchiveStore::archive`], `factum archive`) writes every event up to a
//! position to a file exactly as the store holds it — payload and metadata texts,
//! timestamps, hashes — reads the file back and checks it, and only then empties those
//! events' payload and metadata in the store, in one transaction that also records the
//! file's SHA-256. The rest of each row stays: ids, stream versions, names, hashes and
//! signatures, so appends, stream heads, hash chains, signed checkpoints and Merkle proofs
//! go on unchanged, while the bodies (most of a row's bytes) leave the store.
//!
//! A store opened with its archives (`SqliteOptions::archive`, `PostgresConfig::archive`)
//! reads archived events from them as if they had never moved: a projection rebuild, an
//! aggregate load, an export, `verify`. Opened without them, a read that reaches an
//! archived event fails with [`StoreError::Archived`], and live events read as before.
//!
//! How a store marks an emptied body is its own: SQLite stores an empty blob as the
//! payload (factum writes text, and no JSON text is empty); PostgreSQL, whose columns
//! are `json`, stores `null` as the payload and the JSON string `"factum:archived"` as
//! the metadata (factum's metadata is always an object).
//!
//! The file is JSON Lines. The first line is the header,
//! `{"format":"factum-archive/v1","after":A,"upto":P}`: the archive holds the events after
//! position `A` up to `P`. Each further line is one event, in position order:
//! [`ArchivedEvent`], with `metadata` the stored text (a JSON string, or `null`) and
//! `payload` the stored JSON as it is — so every event's hash can be recomputed from the
//! file alone ([`Archive::open`] does).

use std::fs::File;
use std::future::Future;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::integrity::merkle::{from_hex, to_hex};
use crate::integrity::{EventHash, StoredFields, event_hash};
use crate::store::{EventStore, StoreError};

/// The header's `format`.
pub const FORMAT: &str = "factum-archive/v1";

/// An archive file's first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Header<'a> {
    format: &'a str,
    after: u64,
    upto: u64,
}

/// One archived event, as the store held it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchivedEvent {
    /// The global position.
    pub position: u64,
    /// The stream's id.
    pub stream_id: String,
    /// The stream's type.
    pub stream_type: String,
    /// The version in the stream.
    pub stream_version: u64,
    /// The event id.
    pub event_id: Uuid,
    /// The event name.
    pub name: String,
    /// The stored payload's schema version.
    pub schema_version: u32,
    /// Whole seconds since the Unix epoch, as stored.
    pub timestamp_s: i64,
    /// Nanoseconds past `timestamp_s`, as stored.
    pub timestamp_ns: i64,
    /// The stored metadata text.
    pub metadata: Option<String>,
    /// The stored payload, verbatim.
    pub payload: Box<RawValue>,
    /// The event's hash (hex), as the store keeps it.
    pub hash: String,
    /// The hash of the event before it in its stream (hex).
    pub predecessor: String,
    /// The stored tags text (a JSON array), when the event has tags; the store keeps
    /// them in its row too, where decisions find the event by them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<String>,
}

impl ArchivedEvent {
    /// The fields the event's hash covers (see [`crate::integrity::chain`]).
    pub fn fields(&self) -> StoredFields<'_> {
        StoredFields {
            event_id: self.event_id.as_bytes(),
            position: i64::try_from(self.position).unwrap_or(i64::MAX),
            stream_id: self.stream_id.as_bytes(),
            stream_type: self.stream_type.as_bytes(),
            stream_version: i64::try_from(self.stream_version).unwrap_or(i64::MAX),
            name: self.name.as_bytes(),
            schema_version: i64::from(self.schema_version),
            timestamp_seconds: self.timestamp_s,
            timestamp_nanos: self.timestamp_ns,
            metadata: self.metadata.as_deref().map(str::as_bytes),
            payload: self.payload.get().as_bytes(),
            tags: self.tags.as_deref().map(str::as_bytes),
        }
    }

    /// The stored hash, checked to be what the event hashes to.
    pub fn checked_hash(&self) -> Result<EventHash, String> {
        let hash: EventHash = from_hex(&self.hash).map_err(|error| format!("hash: {error}"))?;
        let predecessor: EventHash =
            from_hex(&self.predecessor).map_err(|error| format!("predecessor: {error}"))?;
        if event_hash(&predecessor, &self.fields()) != hash {
            return Err("the event does not match its hash (changed after archiving)".to_owned());
        }
        Ok(hash)
    }
}

/// Why an archive cannot be written, opened or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// The file system failed.
    #[error("archive {path}: {operation}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        operation: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a sound archive: a bad header, a line that is not an event, an
    /// event out of order or outside the header's range, or an event that does not
    /// match its hash. Nothing is read from it.
    #[error("{path} line {line}: not a sound factum archive: {reason}")]
    Unsound {
        /// The file.
        path: PathBuf,
        /// The line, counted from 1.
        line: u64,
        /// What is wrong.
        reason: String,
    },
}

/// The error of a file-system `operation` on the archive at `path`.
fn io_failed(path: &Path, operation: &'static str) -> impl FnOnce(std::io::Error) -> ArchiveError {
    let path = path.to_path_buf();
    move |source| ArchiveError::Io {
        path,
        operation,
        source,
    }
}

/// An archive file, opened and checked: its range, its SHA-256 and where each event's
/// line starts.
#[derive(Debug)]
pub struct Archive {
    path: PathBuf,
    after: u64,
    upto: u64,
    digest: [u8; 32],
    /// Each event's position and the byte offset of its line, in position order.
    index: Vec<(u64, u64)>,
    file: Mutex<File>,
}

impl PartialEq for Archive {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest && self.path == other.path
    }
}

impl Eq for Archive {}

impl Archive {
    /// Opens the archive at `path` and checks all of it: the header, every event's line,
    /// their order and range, and each event against its hash. Blocking: it reads the
    /// whole file once.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ArchiveError> {
        let path = path.as_ref().to_path_buf();
        let io = |operation| io_failed(&path, operation);
        let unsound = |line: u64, reason: String| ArchiveError::Unsound {
            path: path.clone(),
            line,
            reason,
        };
        let file = File::open(&path).map_err(io("open"))?;
        let mut reader = BufReader::new(file.try_clone().map_err(io("open"))?);
        let mut hasher = Sha256::new();
        let mut line = String::new();
        let mut offset = 0u64;
        let read = reader.read_line(&mut line).map_err(io("read"))?;
        hasher.update(line.as_bytes());
        offset += read as u64;
        let header: Header<'_> = serde_json::from_str(line.trim_end())
            .map_err(|error| unsound(1, format!("not an archive header: {error}")))?;
        if header.format != FORMAT {
            return Err(unsound(
                1,
                format!("format `{}`, not `{FORMAT}`", header.format),
            ));
        }
        let (after, upto) = (header.after, header.upto);
        let mut index = Vec::new();
        let mut number = 1u64;
        loop {
            line.clear();
            let read = reader.read_line(&mut line).map_err(io("read"))?;
            if read == 0 {
                break;
            }
            number += 1;
            hasher.update(line.as_bytes());
            let event: ArchivedEvent = serde_json::from_str(line.trim_end())
                .map_err(|error| unsound(number, format!("not an archived event: {error}")))?;
            let previous = index.last().map_or(after, |(position, _)| *position);
            if event.position <= previous || event.position > upto {
                return Err(unsound(
                    number,
                    format!(
                        "position {} does not follow {previous} within the archive's range ({after}, {upto}]",
                        event.position
                    ),
                ));
            }
            event.checked_hash().map_err(|reason| {
                unsound(number, format!("position {}: {reason}", event.position))
            })?;
            index.push((event.position, offset));
            offset += read as u64;
        }
        Ok(Self {
            path,
            after,
            upto,
            digest: hasher.finalize().into(),
            index,
            file: Mutex::new(file),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The archive holds the events after this position...
    pub fn after(&self) -> u64 {
        self.after
    }

    /// ...up to this one.
    pub fn upto(&self) -> u64 {
        self.upto
    }

    /// How many events it holds.
    pub fn events(&self) -> usize {
        self.index.len()
    }

    /// The SHA-256 of the file, as the store records it.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// Whether `position` is in the archive's range (held or not).
    pub fn covers(&self, position: u64) -> bool {
        position > self.after && position <= self.upto
    }

    /// The event at `position`, read from the file; `None` when the archive holds none
    /// there. Blocking.
    pub fn event(&self, position: u64) -> Result<Option<ArchivedEvent>, ArchiveError> {
        let Ok(at) = self
            .index
            .binary_search_by_key(&position, |(position, _)| *position)
        else {
            return Ok(None);
        };
        let offset = self.index[at].1;
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let io = |source| ArchiveError::Io {
            path: self.path.clone(),
            operation: "read",
            source,
        };
        file.seek(SeekFrom::Start(offset)).map_err(io)?;
        let mut line = String::new();
        BufReader::new(&mut *file)
            .read_line(&mut line)
            .map_err(io)?;
        let event: ArchivedEvent =
            serde_json::from_str(line.trim_end()).map_err(|error| ArchiveError::Unsound {
                path: self.path.clone(),
                line: at as u64 + 2,
                reason: format!("changed since it was opened: {error}"),
            })?;
        if event.position != position {
            return Err(ArchiveError::Unsound {
                path: self.path.clone(),
                line: at as u64 + 2,
                reason: format!(
                    "changed since it was opened: position {} where {position} was",
                    event.position
                ),
            });
        }
        Ok(Some(event))
    }
}

/// The archives a store reads archived events from, each covering its own range. Cheap
/// to clone: the archives are shared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Archives {
    archives: Vec<std::sync::Arc<Archive>>,
}

impl Archives {
    /// No archives.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `archive`.
    pub fn push(&mut self, archive: Archive) {
        self.archives.push(std::sync::Arc::new(archive));
        self.archives.sort_by_key(|archive| archive.after());
    }

    /// Every archive, by range.
    pub fn iter(&self) -> impl Iterator<Item = &Archive> {
        self.archives.iter().map(|archive| &**archive)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.archives.is_empty()
    }

    /// The archive whose range covers `position`.
    pub fn covering(&self, position: u64) -> Option<&Archive> {
        self.iter().find(|archive| archive.covers(position))
    }

    /// The event at `position` from the archive covering it.
    pub fn event(&self, position: u64) -> Result<Option<ArchivedEvent>, ArchiveError> {
        match self.covering(position) {
            Some(archive) => archive.event(position),
            None => Ok(None),
        }
    }

    /// The archived body of a store's event (`stream_id` at `stream_version`, `event_id`,
    /// at `position`), as a backend reading an emptied row asks for it:
    /// [`StoreError::Archived`] when no archive given holds it, a
    /// [`StoreError::CorruptRow`] when the archive holds another event there.
    pub fn body_of(
        &self,
        stream_id: &str,
        stream_version: u64,
        position: u64,
        event_id: Uuid,
    ) -> Result<ArchivedEvent, StoreError> {
        let event = match self.event(position) {
            Ok(Some(event)) => event,
            Ok(None) => {
                return Err(StoreError::Archived {
                    stream_id: stream_id.to_owned(),
                    stream_version,
                    position,
                });
            }
            Err(error) => return Err(StoreError::Backend(Box::new(error))),
        };
        if event.event_id != event_id || event.stream_version != stream_version {
            return Err(StoreError::CorruptRow {
                stream_id: stream_id.to_owned(),
                stream_version,
                position: Some(position),
                reason: format!(
                    "the archive holds event {} version {} at this position, the store event {event_id} version {stream_version}",
                    event.event_id, event.stream_version
                ),
            });
        }
        Ok(event)
    }

    /// Checks that each archive is one of `recorded` (what the store recorded): the same
    /// range and SHA-256. The archive and the reason when one is not.
    pub fn check_recorded(&self, recorded: &[ArchiveRecord]) -> Result<(), (PathBuf, String)> {
        for archive in self.iter() {
            let refused = |reason: String| Err((archive.path().to_path_buf(), reason));
            let Some(record) = recorded.iter().find(|record| record.upto == archive.upto()) else {
                return refused(format!(
                    "the store recorded no archive up to position {}",
                    archive.upto()
                ));
            };
            if record.after != archive.after() {
                return refused(format!(
                    "it starts after position {}, the store's archive up to {} after {}",
                    archive.after(),
                    archive.upto(),
                    record.after
                ));
            }
            let digest = to_hex(&archive.digest());
            if record.digest != digest {
                return refused(format!(
                    "its SHA-256 is {digest}, the store recorded {} (changed since it was written)",
                    record.digest
                ));
            }
        }
        Ok(())
    }
}

/// Writes an archive file: under a temporary name beside `path` until
/// [`finish`](ArchiveWriter::finish) has it on disk, then under `path`.
#[derive(Debug)]
pub struct ArchiveWriter {
    path: PathBuf,
    temporary: PathBuf,
    /// Taken by [`finish`](ArchiveWriter::finish).
    writer: Option<std::io::BufWriter<File>>,
    events: u64,
}

impl ArchiveWriter {
    /// Starts the archive of the events after `after` up to `upto`; refuses to replace a
    /// file at `path`.
    pub fn create(path: impl AsRef<Path>, after: u64, upto: u64) -> Result<Self, ArchiveError> {
        let path = path.as_ref().to_path_buf();
        let io = |operation| io_failed(&path, operation);
        if path.exists() {
            return Err(io("create")(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a file is there already; an archive never replaces one",
            )));
        }
        let mut temporary = path.clone().into_os_string();
        temporary.push(format!(".{}.partial", Uuid::now_v7().simple()));
        let temporary = PathBuf::from(temporary);
        let file = File::create_new(&temporary).map_err(io("create"))?;
        let mut writer = std::io::BufWriter::new(file);
        let header = Header {
            format: FORMAT,
            after,
            upto,
        };
        serde_json::to_writer(&mut writer, &header)
            .map_err(std::io::Error::from)
            .and_then(|()| writer.write_all(b"\n"))
            .map_err(io("write"))?;
        Ok(Self {
            path,
            temporary,
            writer: Some(writer),
            events: 0,
        })
    }

    /// Appends `event` (the next in position order).
    pub fn write(&mut self, event: &ArchivedEvent) -> Result<(), ArchiveError> {
        let Some(writer) = self.writer.as_mut() else {
            return Ok(());
        };
        serde_json::to_writer(&mut *writer, event)
            .map_err(std::io::Error::from)
            .and_then(|()| writer.write_all(b"\n"))
            .map_err(|source| ArchiveError::Io {
                path: self.temporary.clone(),
                operation: "write",
                source,
            })?;
        self.events += 1;
        Ok(())
    }

    /// Flushes the file to disk and moves it to its path; returns how many events it
    /// holds.
    pub fn finish(mut self) -> Result<u64, ArchiveError> {
        let io = |operation| io_failed(&self.path, operation);
        let Some(writer) = self.writer.take() else {
            return Ok(self.events);
        };
        let file = writer
            .into_inner()
            .map_err(|error| error.into_error())
            .map_err(io("write"))?;
        file.sync_all().map_err(io("sync"))?;
        drop(file);
        // A link, not a rename: a file that appeared at the path meanwhile is kept.
        std::fs::hard_link(&self.temporary, &self.path).map_err(io("move into place"))?;
        std::fs::remove_file(&self.temporary).map_err(io("remove the temporary file"))?;
        if let Some(dir) = self.path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            File::open(dir)
                .and_then(|dir| dir.sync_all())
                .map_err(io("sync the directory"))?;
        }
        Ok(self.events)
    }
}

/// Drops a writer that never finished: its temporary file goes.
impl Drop for ArchiveWriter {
    fn drop(&mut self) {
        if self.temporary.exists() {
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}

/// An archive as the store records it when it moves the bodies out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArchiveRecord {
    /// The archive holds the events after this position...
    pub after: u64,
    /// ...up to this one.
    pub upto: u64,
    /// The file, as given when it was written.
    pub file: String,
    /// The SHA-256 of the file (hex).
    pub digest: String,
    /// How many events it holds.
    pub events: u64,
    /// When the bodies left the store.
    pub archived_at: chrono::DateTime<chrono::Utc>,
}

/// Why archiving stopped. Nothing left the store unless the archive was written, read
/// back and checked first.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchivingError {
    /// No event is past what is archived already and up to the position asked for.
    #[error(
        "nothing to archive: positions up to {archived} are archived already, {upto} was asked for"
    )]
    Nothing {
        /// Where the archived positions end.
        archived: u64,
        /// The position asked for.
        upto: u64,
    },
    /// Another archive was recorded meanwhile; the store is unchanged and the file
    /// written is removed.
    #[error(
        "the store was archived up to {now} by someone else meanwhile (it was at {before}); the store is unchanged"
    )]
    Raced {
        /// Where the archived positions ended when this one began.
        before: u64,
        /// Where they end now.
        now: u64,
    },
    /// The store is in memory: it has no archives.
    #[error("an in-memory store cannot be archived")]
    InMemory,
    /// The file could not be written or read back.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The store failed, or holds an event that does not match its hash (the store is
    /// unchanged; run `verify`).
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// How many events [`ArchiveStore::archive`] reads at a time.
const PAGE: usize = 1000;

/// A store whose old events can be archived (see the module): the primitives a backend
/// provides, and [`archive`](ArchiveStore::archive), built on them. Implemented by
/// `SqliteStore` and `PostgresStore`.
pub trait ArchiveStore: EventStore {
    /// Every archive the store recorded, oldest first.
    fn archives(&self) -> impl Future<Output = Result<Vec<ArchiveRecord>, StoreError>> + Send;

    /// Up to `limit` events after position `after` and up to `upto`, in position order,
    /// exactly as stored (an event whose body is archived already is a
    /// [`StoreError::CorruptRow`]: archives follow each other).
    fn stored_events(
        &self,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<ArchivedEvent>, StoreError>> + Send;

    /// In one transaction: unless the archived positions no longer end at
    /// `archive.after()` ([`ArchivingError::Raced`]), empties the bodies of the events
    /// `archive` holds — refusing, with nothing changed, when the store holds another
    /// number of events in its range — and records it under `file`.
    fn record_archive(
        &self,
        archive: &Archive,
        file: &str,
    ) -> impl Future<Output = Result<ArchiveRecord, ArchivingError>> + Send;

    /// The last position up to which every event is older than `time`: what
    /// [`archive`](ArchiveStore::archive) takes to archive what is older. 0 when the
    /// first event is not.
    fn last_position_before(
        &self,
        time: chrono::DateTime<chrono::Utc>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Moves the bodies of the events up to position `upto` (at most the head) that are
    /// not archived yet to a new archive file at `file`: writes it page by page from the
    /// store, each event checked against its stored hash (appends go on meanwhile), reads
    /// the file back and checks all of it, and only then empties those bodies and records
    /// the archive ([`record_archive`](ArchiveStore::record_archive)). On any failure
    /// before that, the store is unchanged and no file is left at `file`.
    fn archive(
        &self,
        upto: u64,
        file: impl AsRef<Path> + Send,
    ) -> impl Future<Output = Result<ArchiveRecord, ArchivingError>> + Send
    where
        Self: Sync,
    {
        async move {
            let path = file.as_ref().to_path_buf();
            let after = self
                .archives()
                .await?
                .last()
                .map_or(0, |record| record.upto);
            let head = self.head().await?.map_or(0, |head| head.position);
            // Never past the head: the range would claim positions later appends take.
            let upto = upto.min(head);
            if upto <= after {
                return Err(ArchivingError::Nothing {
                    archived: after,
                    upto,
                });
            }
            let created = path.clone();
            let mut writer = blocking(move || ArchiveWriter::create(created, after, upto)).await?;
            let mut next = after;
            while next < upto {
                let page = self.stored_events(next, upto, PAGE).await?;
                let Some(last) = page.last() else {
                    break;
                };
                next = last.position;
                for event in &page {
                    event
                        .checked_hash()
                        .map_err(|reason| StoreError::CorruptRow {
                            stream_id: event.stream_id.clone(),
                            stream_version: event.stream_version,
                            position: Some(event.position),
                            reason: format!("{reason}; nothing was archived (run `verify`)"),
                        })?;
                }
                writer = blocking(move || {
                    for event in &page {
                        writer.write(event)?;
                    }
                    Ok(writer)
                })
                .await?;
            }
            blocking(move || writer.finish()).await?;
            let opened = path.clone();
            let recorded = match blocking(move || Archive::open(opened)).await {
                Ok(archive) => {
                    self.record_archive(&archive, &path.display().to_string())
                        .await
                }
                Err(error) => Err(error),
            };
            if let Err(error) = &recorded {
                // Removed only when the store surely recorded nothing: a failure while
                // committing may have recorded it, and then the file holds the bodies.
                let unrecorded = matches!(
                    error,
                    ArchivingError::Raced { .. }
                        | ArchivingError::Archive(_)
                        | ArchivingError::Store(StoreError::CorruptRow { .. })
                );
                if unrecorded {
                    let _ = std::fs::remove_file(&path);
                }
            }
            recorded
        }
    }
}

/// Runs blocking file work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ArchiveError> + Send + 'static,
) -> Result<T, ArchivingError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| ArchivingError::Store(StoreError::Backend(Box::new(error))))?
        .map_err(ArchivingError::from)
}
