//! # factum-codegen
//!
//! Build-time tooling for factum, working on the registry document a domain's
//! `factum::registry::Registry` serialises to (so this crate needs no domain types):
//! - [`files`]: the registry file and one JSON Schema file per event version and command,
//!   written only when changed, and checked for staleness (`--check`);
//! - [`published`]: the check against the committed registry: published schemas do not
//!   change, new versions have an upcast path, versions keep the selected compatibility;
//! - [`compat`]: the schema-registry compatibility rules underneath;
//! - [`typescript`]: one TypeScript module of types, the envelope as a discriminated
//!   union on (name, version), and generated runtime guards;
//! - [`python`]: one Python module of pydantic v2 models, the envelope as nested
//!   discriminated unions on name and version;
//! - [`lint`]: the naming conventions of the field (events in the past tense, commands
//!   imperative, events versioned from 1), as warnings with allowances;
//! - [`asyncapi`]: an AsyncAPI 3.0 document: a channel per stream type, its messages
//!   with payload schemas and the envelope headers.
//!
//! ```
//! use factum_codegen::compat::{check_pair, Compatibility};
//! use serde_json::json;
//!
//! let v1 = json!({"type": "object", "properties": {"qty": {"type": "integer"}}});
//! let v2 = json!({"type": "object", "properties": {"qty": {"type": "number"}}});
//! // Widening integer -> number: a v2 reader accepts every v1 document.
//! assert!(check_pair("LineAdded", 1, &v1, 2, &v2, Compatibility::Backward).is_empty());
//! // ... but a v1 reader does not accept every v2 document.
//! let problems = check_pair("LineAdded", 1, &v1, 2, &v2, Compatibility::Forward);
//! assert_eq!(problems[0].path, "/properties/qty");
//! ```
#![warn(missing_docs)]

pub mod asyncapi;
pub mod compat;
pub mod files;
pub mod generate;
pub mod lint;
mod model;
#[cfg(feature = "operator")]
pub mod operator;
pub mod published;
pub mod python;
pub mod release;
pub mod typescript;
