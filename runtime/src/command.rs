//! Commands: requests to change one aggregate, and the sets of commands it accepts.

use std::any::Any;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::registry::RegistryBuilder;

/// A request to change one aggregate, addressed by its `#[aggregate_id]` field.
///
/// Implemented by `#[command]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a factum command",
    label = "not a command",
    note = "annotate the type with `#[factum::command]` and mark its id field `#[aggregate_id]`"
)]
pub trait Command:
    Serialize + DeserializeOwned + schemars::JsonSchema + Send + Sync + 'static
{
    /// The stable command name.
    const NAME: &'static str;
    /// The id of the aggregate instance the command is addressed to.
    fn aggregate_id(&self) -> String;

    /// The type's doc comment, for the registry and generated contracts.
    const DOC: &'static str = "";
}

/// The closed set of commands an aggregate accepts, as an enum with one variant per
/// command. Implemented by `#[derive(Commands)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a command set",
    label = "not a #[derive(Commands)] enum",
    note = "an aggregate's `commands = ...` names an enum with `#[derive(Commands)]` and one variant per command"
)]
pub trait CommandSet: Send + Sync + 'static {
    /// The Rust name of the set, for messages.
    const SET_NAME: &'static str;
    /// The names of the commands in the set, in declaration order.
    const COMMAND_NAMES: &'static [&'static str];

    /// The stable name of this command.
    fn command_name(&self) -> &'static str;
    /// The id of the aggregate instance this command is addressed to.
    fn aggregate_id(&self) -> String;

    /// The command as JSON (the command's own shape, without the set's variant).
    fn to_json(&self) -> Result<String, serde_json::Error>;

    /// The command of the set named `name`, read from its JSON (the shape
    /// [`CommandSet::to_json`] writes): `None` when the set has no command of that name.
    fn from_json(name: &str, json: &str) -> Option<Result<Self, CommandDecodeError>>
    where
        Self: Sized;

    /// The command itself (the variant's value), to look at as its own type.
    fn member(&self) -> &dyn Any;

    /// The set's variant holding `command`, if it is one of the set's command types;
    /// otherwise `command` back.
    fn from_member(command: Box<dyn Any + Send>) -> Result<Self, Box<dyn Any + Send>>
    where
        Self: Sized;

    /// Registers every command of the set.
    fn register(registry: &mut RegistryBuilder, aggregate: Option<&str>);
}

/// Marks a command type as a member of the command set `S`; implemented by
/// `#[derive(Commands)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a command of the set `{S}`",
    label = "not a variant of `{S}`",
    note = "add a variant holding `{Self}` to the #[derive(Commands)] enum `{S}`, or remove this handler"
)]
pub trait CommandOf<S> {}

/// A command's JSON that does not read as the command: names the command and the JSON
/// path of the offending value; what was wrong with it is its `source()`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("command `{command}`{}", if path.is_empty() || path == "." { String::new() } else { format!(": at `{path}`") })]
#[non_exhaustive]
pub struct CommandDecodeError {
    /// The command's name.
    pub command: &'static str,
    /// The JSON path of the value that failed (`.` for the document itself).
    pub path: String,
    /// What was wrong, in serde_json's words (with line and column); shared, so that the
    /// error stays `Clone`.
    #[source]
    pub source: std::sync::Arc<serde_json::Error>,
}

/// Reads `C` from its JSON, naming the path of a mismatching field.
#[doc(hidden)]
pub fn decode_command<C: Command>(json: &str) -> Result<C, CommandDecodeError> {
    // One decoder, the path-tracking one. Unlike an event's payload, a command's JSON comes
    // from outside and need not be JSON at all, and the path of a syntax error depends on
    // how the type reads the text, so the path is tracked, not found afterwards. A plain
    // decoder as well would be a second instantiation of every command's `Deserialize`
    // in the domain crate (issue 16); a command is decoded once per call, where tracking
    // costs little next to the command's work.
    let mut deserializer = serde_json::Deserializer::from_str(json);
    match serde_path_to_error::deserialize::<_, C>(&mut deserializer) {
        Ok(command) => match deserializer.end() {
            Ok(()) => Ok(command),
            // Trailing characters after the command's JSON.
            Err(error) => Err(command_decode_error(C::NAME, ".".to_owned(), error)),
        },
        Err(error) => Err(command_decode_error(
            C::NAME,
            error.path().to_string(),
            error.into_inner(),
        )),
    }
}

/// The error for a command's JSON that does not decode; not generic, so compiled once.
#[cold]
fn command_decode_error(
    command: &'static str,
    path: String,
    source: serde_json::Error,
) -> CommandDecodeError {
    CommandDecodeError {
        command,
        path,
        source: std::sync::Arc::new(source),
    }
}
