//! The files generated from a registry, written only when their content changed, and
//! checked for staleness (`--check`).
//!
//! Layout, relative to the output folder:
//! - `registry.json`: the whole registry, pretty-printed;
//! - `events/<Name>.v<N>.schema.json` and `commands/<Name>.schema.json`: one JSON Schema
//!   per event version and command.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// A registry document that is not shaped as the runtime writes it.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("the registry is malformed at {path}: {problem}")]
pub struct MalformedRegistry {
    /// Where (a JSON pointer).
    pub path: String,
    /// What is wrong.
    pub problem: String,
}

/// One entry of a registry document, as far as generation needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<'a> {
    /// `"event"` or `"command"`.
    pub kind: &'a str,
    /// The stable name.
    pub name: &'a str,
    /// The version.
    pub version: u64,
    /// The entry as a whole.
    pub value: &'a Value,
}

/// The entries of a registry document (`{"entries": [..]}`), checked for shape.
pub fn entries(registry: &Value) -> Result<Vec<Entry<'_>>, MalformedRegistry> {
    let malformed = |path: String, problem: &str| MalformedRegistry {
        path,
        problem: problem.to_owned(),
    };
    let list = registry
        .get("entries")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("/entries".into(), "expected an array of entries"))?;
    list.iter()
        .enumerate()
        .map(|(index, value)| {
            let field = |key: &str| {
                value
                    .get(key)
                    .ok_or_else(|| malformed(format!("/entries/{index}/{key}"), "missing"))
            };
            let kind = field("kind")?
                .as_str()
                .filter(|kind| matches!(*kind, "event" | "command"))
                .ok_or_else(|| {
                    malformed(
                        format!("/entries/{index}/kind"),
                        "expected \"event\" or \"command\"",
                    )
                })?;
            let name = field("name")?
                .as_str()
                .filter(|name| !name.is_empty() && !name.contains(['/', '\\', '.']))
                .ok_or_else(|| {
                    malformed(
                        format!("/entries/{index}/name"),
                        "expected a name usable as a file name",
                    )
                })?;
            let version = field("version")?
                .as_u64()
                .filter(|version| *version >= 1)
                .ok_or_else(|| {
                    malformed(
                        format!("/entries/{index}/version"),
                        "expected a version from 1",
                    )
                })?;
            field("schema")?;
            Ok(Entry {
                kind,
                name,
                version,
                value,
            })
        })
        .collect()
}

/// The generated files: relative path → content.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GeneratedFiles {
    files: BTreeMap<PathBuf, String>,
}

impl GeneratedFiles {
    /// Adds (or replaces) a file.
    pub fn insert(&mut self, path: impl Into<PathBuf>, content: String) {
        self.files.insert(path.into(), content);
    }

    /// The files, in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&Path, &str)> {
        self.files
            .iter()
            .map(|(path, content)| (path.as_path(), content.as_str()))
    }

    /// Writes every file under `dir`, touching only those whose content changed (so
    /// `build.rs` reruns and file watchers stay quiet); returns the paths written.
    pub fn write_changed(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let mut written = Vec::new();
        for (relative, content) in &self.files {
            let path = dir.join(relative);
            if fs::read_to_string(&path).is_ok_and(|existing| existing == *content) {
                continue;
            }
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::write(&path, content)?;
            written.push(relative.clone());
        }
        Ok(written)
    }

    /// The differences between these files and those under `dir`: missing or changed
    /// generated files, and `.json` files in the generated folders that nothing generates
    /// any more. Empty when `dir` is up to date.
    pub fn stale_in(&self, dir: &Path) -> io::Result<Vec<Staleness>> {
        let mut stale = Vec::new();
        for (relative, content) in &self.files {
            match fs::read_to_string(dir.join(relative)) {
                Ok(existing) if existing == *content => {}
                Ok(_) => stale.push(Staleness::Changed(relative.clone())),
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    stale.push(Staleness::Missing(relative.clone()))
                }
                Err(error) => return Err(error),
            }
        }
        for folder in ["events", "commands", "contracts"] {
            let Ok(listing) = fs::read_dir(dir.join(folder)) else {
                continue;
            };
            for file in listing {
                let relative = Path::new(folder).join(file?.file_name());
                if !self.files.contains_key(&relative) {
                    stale.push(Staleness::Extra(relative));
                }
            }
        }
        stale.sort();
        Ok(stale)
    }
}

/// How a folder differs from what is generated.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Staleness {
    /// A generated file is not there.
    Missing(PathBuf),
    /// A generated file has other content.
    Changed(PathBuf),
    /// A file is there that nothing generates.
    Extra(PathBuf),
}

impl std::fmt::Display for Staleness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing(path) => write!(f, "missing: {}", path.display()),
            Self::Changed(path) => write!(f, "out of date: {}", path.display()),
            Self::Extra(path) => write!(f, "not generated any more: {}", path.display()),
        }
    }
}

/// The registry file and one schema file per event version and command.
pub fn schema_files(registry: &Value) -> Result<GeneratedFiles, MalformedRegistry> {
    let mut files = GeneratedFiles::default();
    files.insert("registry.json", pretty(registry));
    for entry in entries(registry)? {
        let path = match entry.kind {
            "event" => PathBuf::from("events")
                .join(format!("{}.v{}.schema.json", entry.name, entry.version)),
            _ => PathBuf::from("commands").join(format!("{}.schema.json", entry.name)),
        };
        files.insert(path, pretty(&entry.value["schema"]));
    }
    Ok(files)
}

/// Pretty JSON with a final newline: stable bytes for version control.
pub(crate) fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}
