//! The order domain's contracts, generated at build time by `build.rs` from the domain
//! crate: the recipe for any crate that publishes a factum domain's schemas.
#![warn(missing_docs)]

/// The registry document: every event version and command with its schema.
pub const REGISTRY_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/contracts/registry.json"));

/// The TypeScript module: types, the envelope union and runtime guards.
pub const TYPESCRIPT: &str =
    include_str!(concat!(env!("OUT_DIR"), "/contracts/contracts/events.ts"));

/// The Python module: pydantic v2 models and the envelope union.
pub const PYTHON: &str = include_str!(concat!(env!("OUT_DIR"), "/contracts/contracts/events.py"));

/// The AsyncAPI 3.0 document.
pub const ASYNCAPI_JSON: &str = include_str!(concat!(
    env!("OUT_DIR"),
    "/contracts/contracts/asyncapi.json"
));

/// The folder the build script generated into.
pub const GENERATED_DIR: &str = concat!(env!("OUT_DIR"), "/contracts");
