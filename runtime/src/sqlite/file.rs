//! What is at the store's path before SQLite opens it: the bytes of an existing file are
//! checked, and a new store is created whole, under another name, and then linked into
//! place.
//!
//! SQLite itself takes an empty (or 1-byte) file for a new database and happily starts
//! one in it, and it deletes a `-wal` file that sits beside an empty main file. Checking
//! the bytes first, and never letting SQLite create the file at the path, means that
//! whatever is found at the path is either a whole store or refused untouched.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::schema;
use super::store::{SqliteOpenError, SqliteOptions, connection};

/// The first 16 bytes of every SQLite database file.
const MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// The size of SQLite's database header.
const HEADER_LEN: u64 = 100;

/// Makes sure `path` holds a file that begins like a SQLite database: creates a new store
/// there if nothing is there, and refuses a file that is empty, shorter than SQLite's
/// header or not a SQLite database ([`SqliteOpenError::NotAStore`]), without changing it.
pub(super) fn check_or_create(path: &Path, options: &SqliteOptions) -> Result<(), SqliteOpenError> {
    let store_error = |problem: Problem| match problem {
        Problem::NotADatabase(reason) => SqliteOpenError::NotAStore {
            path: path.to_path_buf(),
            reason,
        },
        Problem::Io(error) => io_error(path, error),
    };
    check_or_create_with(
        path,
        "store",
        |temporary| make(temporary, options).map_err(|error| error.with_path(path)),
        store_error,
    )
}

/// Makes sure `path` holds a file that begins like a SQLite database: creates one there
/// with `make` (given a temporary path beside it, linked into place when `make` is done)
/// if nothing is there, and refuses a file that is empty, shorter than SQLite's header or
/// not a SQLite database ([`Problem::NotADatabase`]), without changing it. `what` names
/// the file in the reasons ("store").
///
/// The event store and the read models (their catalog and every version's file) open
/// their files through this.
pub(crate) fn check_or_create_with<E>(
    path: &Path,
    what: &str,
    make: impl FnOnce(&Path) -> Result<(), E>,
    error: impl Fn(Problem) -> E,
) -> Result<(), E> {
    if check(path, what).map_err(&error)? == Found::Nothing {
        create(path, make, &error)?;
        // A file created by another process in the meantime is checked like any other;
        // one this call created passes.
        if check(path, what).map_err(&error)? == Found::Nothing {
            return Err(error(Problem::Io(io::Error::new(
                io::ErrorKind::NotFound,
                "the new file disappeared",
            ))));
        }
    }
    Ok(())
}

/// Why a file cannot be opened as a database of factum's.
#[derive(Debug)]
pub(crate) enum Problem {
    /// The file is there but is not a SQLite database (the reason says what it is).
    NotADatabase(String),
    /// The file system failed.
    Io(io::Error),
}

#[derive(Debug, PartialEq, Eq)]
enum Found {
    /// No file at the path.
    Nothing,
    /// A file that begins with SQLite's header.
    Database,
}

/// Looks at the file at `path`, reading at most its first 100 bytes.
fn check(path: &Path, what: &str) -> Result<Found, Problem> {
    let not_a_store = Problem::NotADatabase;
    let metadata = match fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            if fs::symlink_metadata(path).is_ok() {
                return Err(not_a_store(
                    "it is a symbolic link to a file that does not exist".to_owned(),
                ));
            }
            return Ok(Found::Nothing);
        }
        Err(error) => return Err(Problem::Io(error)),
    };
    if metadata.is_dir() {
        return Err(not_a_store("it is a directory".to_owned()));
    }
    let len = metadata.len();
    if len == 0 {
        return Err(not_a_store(format!(
            "the file is empty (0 bytes){}; a new {what} is only created where no file exists",
            wal_note(path)
        )));
    }
    if len < HEADER_LEN {
        return Err(not_a_store(format!(
            "the file holds only {len} byte{}, fewer than the {HEADER_LEN} bytes of SQLite's \
             header{}",
            if len == 1 { "" } else { "s" },
            wal_note(path)
        )));
    }
    let mut header = [0; HEADER_LEN as usize];
    File::open(path)
        .and_then(|mut file| file.read_exact(&mut header))
        .map_err(Problem::Io)?;
    if header[..MAGIC.len()] != MAGIC[..] {
        return Err(not_a_store(format!(
            "the file does not begin with SQLite's header \"SQLite format 3\\0\" (it begins \
             with \"{}\")",
            header[..MAGIC.len()].escape_ascii()
        )));
    }
    Ok(Found::Database)
}

/// A note on a `-wal` file beside a main file too short to be a database: SQLite would
/// not read it (it deletes a WAL beside an empty database), so it is left for recovery.
fn wal_note(path: &Path) -> String {
    let wal = sidecar(path, "-wal");
    match fs::metadata(&wal) {
        Ok(metadata) if metadata.len() > 0 => format!(
            " (the write-ahead log `{}` beside it holds {} bytes, but SQLite reads a log only \
             beside a database that holds its first page; both files were left as they were)",
            wal.display(),
            metadata.len()
        ),
        _ => String::new(),
    }
}

/// Creates a new database at `path`: a whole file (made by `make`, e.g. in WAL mode with
/// its schema) is made under a temporary name beside it and then hard-linked to `path`,
/// which fails if a file appeared there in the meantime (another process creating the
/// same file: its file is then used). So no other process ever finds a half-made file
/// at `path`.
fn create<E>(
    path: &Path,
    make: impl FnOnce(&Path) -> Result<(), E>,
    error: impl Fn(Problem) -> E,
) -> Result<(), E> {
    let temporary = Temporary::new(path).map_err(|io| error(Problem::Io(io)))?;
    make(&temporary.path)?;
    match fs::hard_link(&temporary.path, path) {
        Ok(()) => {}
        Err(io) if io.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        // A file system without hard links: the new file is copied into a file created
        // exclusively at `path` (another process opening it meanwhile may find it short
        // and refuse it, but never takes it for an empty database).
        Err(_) => match OpenOptions::new().write(true).create_new(true).open(path) {
            Ok(mut file) => File::open(&temporary.path)
                .and_then(|mut new| io::copy(&mut new, &mut file))
                .and_then(|_| file.sync_all())
                .map_err(|io| error(Problem::Io(io)))?,
            Err(io) if io.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
            Err(io) => return Err(error(Problem::Io(io))),
        },
    }
    sync_directory(path);
    Ok(())
}

/// Makes a whole store in the empty file at `path`: the schema is created (in rollback
/// mode, straight into the file), then the file is switched to WAL and closed, so the
/// file alone holds it all.
fn make(path: &Path, options: &SqliteOptions) -> Result<(), SqliteOpenError> {
    let connection = connection::open_writer(path, options)?;
    connection::configure_writer(&connection, options)
        .map_err(|error| sqlite_error(path, error))?;
    schema::migrate(&connection, path, options.busy_timeout)?;
    connection::use_wal(&connection, path, options)?;
    connection
        .close()
        .map_err(|(_, error)| sqlite_error(path, error))
}

/// Flushes the directory holding `path`, so the new file's name survives a power loss
/// (best effort: not every platform can open a directory).
fn sync_directory(path: &Path) {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if let Ok(directory) = File::open(directory) {
        let _ = directory.sync_all();
    }
}

/// A file beside the store, removed (with its `-wal`, `-shm` and `-journal` files) when
/// dropped.
struct Temporary {
    path: PathBuf,
}

impl Temporary {
    /// Creates an empty file with a name no other call uses, in the directory of `path`.
    fn new(path: &Path) -> io::Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        loop {
            let candidate = path.with_file_name(format!(
                ".{name}.{}-{nanos}-{}.new",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&candidate)
            {
                Ok(_) => return Ok(Self { path: candidate }),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
                Err(error) => return Err(error),
            }
        }
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        for suffix in ["-wal", "-shm", "-journal"] {
            let _ = fs::remove_file(sidecar(&self.path, suffix));
        }
        let _ = fs::remove_file(&self.path);
    }
}

/// `path` with `suffix` appended to its file name, as SQLite names its `-wal` file.
fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn io_error(path: &Path, error: io::Error) -> SqliteOpenError {
    SqliteOpenError::Sqlite {
        path: path.to_path_buf(),
        source: Box::new(error),
    }
}

fn sqlite_error(path: &Path, error: rusqlite::Error) -> SqliteOpenError {
    SqliteOpenError::Sqlite {
        path: path.to_path_buf(),
        source: Box::new(error),
    }
}
