//! The check of a registry against the published (committed) one: published schemas do
//! not change, new versions have an upcast path, consecutive versions keep the selected
//! compatibility, and the envelope around every event stays readable both ways.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::compat::{self, Compatibility, Incompatibility};
use crate::files::{MalformedRegistry, entries};

/// Why a registry does not fit the published one.
#[derive(Debug, Clone, PartialEq)]
pub enum PublishedProblem {
    /// A schema change (a published schema changed, or versions are incompatible).
    Schema(Incompatibility),
    /// A published event version or command is gone from the registry.
    Removed {
        /// `"event"` or `"command"`.
        kind: String,
        /// The name.
        name: String,
        /// The version.
        version: u64,
    },
    /// The envelope changed so that consumers generated from the released contracts
    /// cannot read it (FORWARD), or the new contracts cannot read released envelopes
    /// still in streams and exports (BACKWARD). The envelope has no version of its own:
    /// it may only change in ways both sides read (a new optional field, say).
    Envelope(Incompatibility),
    /// A version above 1 that no upcast reads the previous version into.
    NoUpcastPath {
        /// The event.
        name: String,
        /// The version without a path.
        version: u64,
    },
}

impl std::fmt::Display for PublishedProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Schema(incompatibility) => incompatibility.fmt(f),
            Self::Envelope(Incompatibility {
                path, change, rule, ..
            }) => {
                let at = if path.is_empty() { "the root" } else { path };
                let who = match rule {
                    compat::Rule::Backward => {
                        "the new envelope schema does not accept every released envelope"
                    }
                    _ => {
                        "consumers generated from the released envelope schema would reject the new envelope"
                    }
                };
                write!(
                    f,
                    "the envelope changed incompatibly with the released one at `{at}`: {change} ({rule}: {who})"
                )
            }
            Self::Removed {
                kind,
                name,
                version,
            } => write!(
                f,
                "{kind} `{name}` v{version} is published but no longer registered: published versions stay readable (keep its type, or an `upcast_json` step)"
            ),
            Self::NoUpcastPath { name, version } => write!(
                f,
                "event `{name}` v{version} has no upcast path from v{}",
                version - 1
            ),
        }
    }
}

/// Checks `current` against `published` (both registry documents); `mode_of` gives each
/// event's compatibility mode (e.g. `|_| Compatibility::Backward`).
pub fn check_against_published(
    published: &Value,
    current: &Value,
    mode_of: impl Fn(&str) -> Compatibility,
) -> Result<Vec<PublishedProblem>, MalformedRegistry> {
    let mut problems = Vec::new();
    // A record from before the envelope was released has none: nothing to compare.
    if let (Some(released), Some(now)) = (published.get("envelope"), current.get("envelope")) {
        problems.extend(
            compat::check_pair("envelope", 1, released, 1, now, Compatibility::Full)
                .into_iter()
                .filter(|found| !only_factum_writes_it(found))
                .map(PublishedProblem::Envelope),
        );
    }
    let published = entries(published)?;
    let current = entries(current)?;
    let index = |entries: &[crate::files::Entry<'_>]| -> BTreeMap<(String, String, u64), Value> {
        entries
            .iter()
            .map(|entry| {
                (
                    (entry.kind.to_owned(), entry.name.to_owned(), entry.version),
                    entry.value.clone(),
                )
            })
            .collect()
    };
    let (published, current) = (index(&published), index(&current));

    for ((kind, name, version), old) in &published {
        match current.get(&(kind.clone(), name.clone(), *version)) {
            Some(new) => problems.extend(
                compat::check_published_unchanged(
                    name,
                    version_u32(*version),
                    &old["schema"],
                    &new["schema"],
                )
                .into_iter()
                .map(PublishedProblem::Schema),
            ),
            // An event version whose type was retired stays readable through JSON upcasts
            // declared on a newer version; only a vanished name is an error.
            None if kind == "event" && reads_retired(&current, name, *version) => {}
            None => problems.push(PublishedProblem::Removed {
                kind: kind.clone(),
                name: name.clone(),
                version: *version,
            }),
        }
    }

    // Every event's versions, published ones first filled in by the current registry.
    let mut histories: BTreeMap<&str, BTreeMap<u64, &Value>> = BTreeMap::new();
    for ((kind, name, version), entry) in published.iter().chain(current.iter()) {
        if kind == "event" {
            histories
                .entry(name)
                .or_default()
                .insert(*version, &entry["schema"]);
        }
    }
    for ((kind, name, version), entry) in &current {
        let has_path = entry["upcast"]["kind"]
            .as_str()
            .is_some_and(|kind| kind != "none");
        if kind == "event" && *version > 1 && !has_path {
            problems.push(PublishedProblem::NoUpcastPath {
                name: name.clone(),
                version: *version,
            });
        }
    }
    for (name, versions) in histories {
        let versions: Vec<(u32, Value)> = versions
            .into_iter()
            .map(|(version, schema)| (version_u32(version), schema.clone()))
            .collect();
        problems.extend(
            compat::check_versions(name, &versions, mode_of(name))
                .into_iter()
                .map(PublishedProblem::Schema),
        );
    }
    Ok(problems)
}

/// Envelopes, unlike payloads, are written by factum alone, from the released schema's
/// own properties: a property added to the open envelope was never in an older envelope,
/// so the strict BACKWARD reading (an old envelope might have held it with any value)
/// cannot happen. FORWARD still applies: older consumers must read the new envelope.
fn only_factum_writes_it(found: &Incompatibility) -> bool {
    found.rule == compat::Rule::Backward
        && matches!(
            found.change,
            compat::Change::PropertyAdded {
                model: compat::ContentModel::Open
            }
        )
}

/// Whether a newer registered version of `name` reads `version` through JSON upcasts.
fn reads_retired(
    current: &BTreeMap<(String, String, u64), Value>,
    name: &str,
    version: u64,
) -> bool {
    current.iter().any(|((kind, other, _), entry)| {
        kind == "event"
            && other == name
            && entry["upcast"]["kind"] == "json"
            && entry["upcast"]["oldest"]
                .as_u64()
                .is_some_and(|oldest| oldest <= version)
    })
}

fn version_u32(version: u64) -> u32 {
    u32::try_from(version).unwrap_or(u32::MAX)
}
