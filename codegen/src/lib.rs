//! # factum-codegen
//!
//! Build-time tooling for factum. For now: the schema-registry compatibility check used by
//! `factum schema check` and by `build.rs` scripts, in [`compat`].
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

pub mod compat;
