//! Everything generated from a registry, in one folder: the schemas (see [`files`]) and
//! the contracts for other languages beside them.
//!
//! | path | content |
//! |---|---|
//! | `registry.json`, `events/`, `commands/` | [`files::schema_files`] |
//! | `contracts/events.ts` | [`typescript`] |
//! | `contracts/events.py` | [`python`] |
//! | `contracts/asyncapi.json` | [`asyncapi`] |
//!
//! [`files`]: crate::files
//! [`files::schema_files`]: crate::files::schema_files
//! [`typescript`]: crate::typescript
//! [`python`]: crate::python
//! [`asyncapi`]: crate::asyncapi

use serde_json::Value;

use crate::asyncapi::{AsyncApiError, AsyncApiInfo, asyncapi};
use crate::files::{GeneratedFiles, MalformedRegistry, schema_files};
use crate::python::{PythonError, python};
use crate::typescript::{TypeScriptError, typescript};

/// A generator refused the registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenerateError {
    /// The registry document is malformed.
    #[error(transparent)]
    Registry(#[from] MalformedRegistry),
    /// The TypeScript generator refused it.
    #[error("TypeScript")]
    TypeScript(#[from] TypeScriptError),
    /// The Python generator refused it.
    #[error("Python")]
    Python(#[from] PythonError),
    /// The AsyncAPI generator refused it.
    #[error("AsyncAPI")]
    AsyncApi(#[from] AsyncApiError),
}

/// The schemas and the contracts of `registry`, with `info` describing the AsyncAPI
/// document. Deterministic: the same registry gives the same bytes.
pub fn generate(registry: &Value, info: &AsyncApiInfo) -> Result<GeneratedFiles, GenerateError> {
    let mut files = schema_files(registry)?;
    files.insert("contracts/events.ts", typescript(registry)?);
    files.insert("contracts/events.py", python(registry)?);
    let mut document = serde_json::to_string_pretty(&asyncapi(registry, info)?).unwrap_or_default();
    document.push('\n');
    files.insert("contracts/asyncapi.json", document);
    Ok(files)
}
