//! The release record: every event version and command that was ever released, and the
//! envelope around events as last released, kept in the repository beside the generated files and written only by `factum schema
//! release`, which refuses a registry that changes a released entry.
//!
//! The published check compares a registry with this record, not with the last commit.
//! `factum schema generate` never writes it, so a developer who changes a released
//! schema and follows the stale-files message (regenerate, commit) still has the change
//! refused: the record keeps the schema as it was released. The record only grows; the
//! test command also checks that every committed version of it is kept unchanged, so an
//! edit by hand is refused too.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::compat::Compatibility;
use crate::files::{MalformedRegistry, entries};
use crate::published::{PublishedProblem, check_against_published};

/// What a release did: the new record, and the entries it added.
#[derive(Debug, Clone, PartialEq)]
pub struct Released {
    /// The record with the new entries (a registry document, `{"envelope": .., "entries": [..]}`).
    pub record: Value,
    /// The entries released now, as (kind, name, version), in order.
    pub added: Vec<(String, String, u64)>,
    /// Whether the envelope released now differs from the record's (or the record had
    /// none).
    pub envelope_changed: bool,
}

impl Released {
    /// Whether the record changed: new entries or a new envelope.
    pub fn changed(&self) -> bool {
        !self.added.is_empty() || self.envelope_changed
    }
}

impl Released {
    /// The record as the file holds it: pretty-printed JSON ending in a newline, like
    /// the generated `registry.json`.
    pub fn text(&self) -> String {
        crate::files::pretty(&self.record)
    }
}

/// Why a registry cannot be released.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReleaseError {
    /// The record or the registry is not a registry document.
    #[error(transparent)]
    Malformed(#[from] MalformedRegistry),
    /// The registry does not keep what was released (each problem names the event or
    /// command, its version and, for a schema change, the JSON path).
    #[error("the registry does not keep what was released: {}", list(.0))]
    Refused(Vec<PublishedProblem>),
}

fn list(problems: &[PublishedProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Releases `current` on top of `record` (`None`: nothing released yet): checks that
/// `current` keeps every released entry (as [`check_against_published`] does, with
/// `mode_of` giving each event's compatibility between versions), then adds the entries
/// the record lacks. Released entries stay as they were released; the record's entries
/// are ordered by kind, name and version, so it is the same whatever the registry's
/// order. The envelope has no version: the record takes `current`'s, which the check
/// allowed only if both it and the released one read each other's envelopes.
pub fn release(
    record: Option<&Value>,
    current: &Value,
    mode_of: impl Fn(&str) -> Compatibility,
) -> Result<Released, ReleaseError> {
    let empty = json!({ "entries": [] });
    let record = record.unwrap_or(&empty);
    let problems = check_against_published(record, current, mode_of)?;
    if !problems.is_empty() {
        return Err(ReleaseError::Refused(problems));
    }
    let mut merged: BTreeMap<(String, String, u64), Value> = entries(record)?
        .into_iter()
        .map(|entry| {
            (
                (entry.kind.to_owned(), entry.name.to_owned(), entry.version),
                entry.value.clone(),
            )
        })
        .collect();
    let mut added = Vec::new();
    for entry in entries(current)? {
        let key = (entry.kind.to_owned(), entry.name.to_owned(), entry.version);
        if let std::collections::btree_map::Entry::Vacant(vacant) = merged.entry(key) {
            added.push(vacant.key().clone());
            vacant.insert(entry.value.clone());
        }
    }
    added.sort();
    let mut new_record = json!({ "entries": merged.into_values().collect::<Vec<_>>() });
    let envelope = current.get("envelope").or_else(|| record.get("envelope"));
    if let Some(envelope) = envelope {
        new_record["envelope"] = envelope.clone();
    }
    Ok(Released {
        record: new_record,
        added,
        envelope_changed: envelope != record.get("envelope"),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(name: &str, version: u64, field_type: &str) -> Value {
        json!({
            "kind": "event", "name": name, "version": version, "doc": "",
            "aggregates": ["Order"],
            "upcast": { "kind": if version > 1 { "typed" } else { "none" } },
            "schema": {
                "type": "object",
                "properties": { "total": { "type": field_type } },
                "required": ["total"]
            }
        })
    }

    #[test]
    fn a_first_release_records_everything_in_order() {
        let current =
            json!({ "entries": [event("Shipped", 1, "integer"), event("Placed", 1, "integer")] });
        let released = release(None, &current, |_| Compatibility::None).unwrap();
        assert_eq!(
            released.added,
            [
                ("event".to_owned(), "Placed".to_owned(), 1),
                ("event".to_owned(), "Shipped".to_owned(), 1)
            ]
        );
        assert_eq!(
            released.record,
            json!({ "entries": [event("Placed", 1, "integer"), event("Shipped", 1, "integer")] })
        );
    }

    #[test]
    fn a_new_version_is_added_and_released_ones_stay_as_released() {
        let record = json!({ "entries": [event("Placed", 1, "integer")] });
        let mut documented = event("Placed", 1, "integer");
        documented["doc"] = json!("An order was placed.");
        let current = json!({ "entries": [documented, event("Placed", 2, "string")] });
        let released = release(Some(&record), &current, |_| Compatibility::None).unwrap();
        assert_eq!(
            released.added,
            [("event".to_owned(), "Placed".to_owned(), 2)]
        );
        assert_eq!(
            released.record,
            json!({ "entries": [event("Placed", 1, "integer"), event("Placed", 2, "string")] })
        );
        let again = release(Some(&released.record), &current, |_| Compatibility::None).unwrap();
        assert!(again.added.is_empty());
        assert_eq!(again.record, released.record);
    }

    #[test]
    fn a_changed_released_schema_is_refused_with_its_path() {
        let record = json!({ "entries": [event("Placed", 1, "integer")] });
        let current = json!({ "entries": [event("Placed", 1, "string")] });
        let refused = release(Some(&record), &current, |_| Compatibility::None).unwrap_err();
        let message = refused.to_string();
        assert!(
            message.contains(
                "event `Placed` v1: the published schema changed at `/properties/total/type`"
            ),
            "{message}"
        );
    }
}

#[cfg(test)]
mod envelope_tests {
    use serde_json::{Value, json};

    use super::*;

    fn envelope(properties: Value, required: &[&str]) -> Value {
        json!({ "type": "object", "properties": properties, "required": required })
    }

    fn registry(envelope: Value) -> Value {
        json!({ "envelope": envelope, "entries": [] })
    }

    #[test]
    fn the_envelope_is_released_and_may_gain_an_optional_field() {
        let first = envelope(json!({ "event_id": { "type": "string" } }), &["event_id"]);
        let released = release(None, &registry(first.clone()), |_| Compatibility::None).unwrap();
        assert_eq!(released.record["envelope"], first);
        assert!(released.envelope_changed && released.changed());
        let same = release(Some(&released.record), &registry(first.clone()), |_| {
            Compatibility::None
        })
        .unwrap();
        assert!(!same.changed());

        let grown = envelope(
            json!({ "event_id": { "type": "string" }, "stored": { "type": ["integer", "null"] } }),
            &["event_id"],
        );
        let again = release(Some(&released.record), &registry(grown.clone()), |_| {
            Compatibility::None
        })
        .unwrap();
        assert_eq!(again.record["envelope"], grown);
        assert!(again.envelope_changed && again.added.is_empty());
    }

    #[test]
    fn an_envelope_change_old_consumers_cannot_read_is_refused_with_its_path() {
        let first = envelope(json!({ "position": { "type": "integer" } }), &["position"]);
        let record = release(None, &registry(first), |_| Compatibility::None)
            .unwrap()
            .record;
        let changed = envelope(json!({ "position": { "type": "string" } }), &["position"]);
        let message = release(Some(&record), &registry(changed), |_| Compatibility::None)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains(
                "the envelope changed incompatibly with the released one at `/properties/position`"
            ) && message.contains("FORWARD")
                && message.contains("BACKWARD"),
            "{message}"
        );
    }
}
