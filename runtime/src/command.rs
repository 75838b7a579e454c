//! Commands: requests to change one aggregate, and the sets of commands it accepts.

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
