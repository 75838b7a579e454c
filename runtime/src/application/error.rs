//! What can go wrong between a command entering the application and its events.

use crate::command::CommandDecodeError;
use crate::context::CommandIdError;
use crate::error::BoxError;
use crate::repository::RepositoryError;

use super::Call;

/// Why the application did not run a command, or what running it said. Nothing was
/// written in any case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplicationError {
    /// No aggregate of the application accepts a command of this name.
    #[error("no aggregate accepts a command named `{name}` (known: {})", known.join(", "))]
    UnknownCommand {
        /// The name asked for.
        name: String,
        /// The names the application accepts, sorted.
        known: Vec<&'static str>,
    },
    /// A command given as a Rust value is not the type the application routes its name to
    /// (another type with the same `#[command(name = ...)]`).
    #[error(
        "`{type_name}` is named `{name}`, but the application routes that name to aggregate `{aggregate}`, which does not accept this type"
    )]
    UnroutedType {
        /// The Rust type given.
        type_name: &'static str,
        /// Its command name.
        name: &'static str,
        /// The aggregate the name is routed to.
        aggregate: &'static str,
    },
    /// The command's JSON does not read as the command (the error names the JSON path).
    #[error(transparent)]
    InvalidCommand(#[from] CommandDecodeError),
    /// The command's id is missing or not a UUID.
    #[error(transparent)]
    CommandId(#[from] CommandIdError),
    /// The command's actor is of a kind the application does not know.
    #[error("command `{command}`: actor kind `{kind}` is unknown (known: {})", known.join(", "))]
    UnknownActorKind {
        /// The command's name.
        command: &'static str,
        /// The actor's kind.
        kind: String,
        /// The kinds the application knows.
        known: Vec<String>,
    },
    /// The command has no actor, and the application requires one.
    #[error("command `{command}` has no actor; every command must say who issued it")]
    MissingActor {
        /// The command's name.
        command: &'static str,
    },
    /// A middleware refused the command before it ran.
    #[error("command `{command}` to `{aggregate_id}` refused by `{by}`: {reason}")]
    Refused {
        /// The middleware that refused it.
        by: String,
        /// The command's name.
        command: &'static str,
        /// The aggregate instance it was addressed to.
        aggregate_id: String,
        /// Why.
        reason: String,
    },
    /// The aggregate's repository refused or failed the command: the domain rejected it
    /// ([`RepositoryError::Rejected`], holding the aggregate's own error), its policy
    /// denied it, the stream changed concurrently, the store failed, ...
    #[error("aggregate `{aggregate}`")]
    Repository {
        /// The aggregate's name.
        aggregate: &'static str,
        /// What the repository said.
        #[source]
        source: Box<RepositoryError<Rejection>>,
    },
}

/// An aggregate's domain error, boxed so errors of every aggregate fit one type; the
/// aggregate's own error type is one [`Rejection::downcast_ref`] away.
#[derive(Debug)]
pub struct Rejection(pub BoxError);

impl Rejection {
    /// The aggregate's error, if it is an `E`.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref()
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Rejection {
    // The aggregate's error is shown as this error itself; its causes follow.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl ApplicationError {
    /// A refusal by the middleware `by` of `call`, for `reason`.
    pub fn refused(by: impl Into<String>, call: &Call, reason: impl Into<String>) -> Self {
        Self::Refused {
            by: by.into(),
            command: call.command_name(),
            aggregate_id: call.aggregate_id(),
            reason: reason.into(),
        }
    }

    /// The aggregate's own error, if the domain rejected the command with an `E`.
    pub fn rejection<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            Self::Repository { source, .. } => match &**source {
                RepositoryError::Rejected(error) => error.downcast_ref(),
                _ => None,
            },
            _ => None,
        }
    }

    /// The policy's reason, if the command was denied.
    pub fn denial_reason(&self) -> Option<&str> {
        match self {
            Self::Repository { source, .. } => match &**source {
                RepositoryError::Denied { reason, .. } => Some(reason),
                _ => None,
            },
            _ => None,
        }
    }
}

/// Why an application could not be built.
#[derive(Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Two aggregates accept a command of the same name: a command by name (from the
    /// wire) would be ambiguous.
    #[error(
        "command `{command}` is accepted by both `{first}` and `{second}`; a command name must route to one aggregate"
    )]
    DuplicateCommand {
        /// The command name.
        command: &'static str,
        /// The aggregate added first.
        first: &'static str,
        /// The aggregate added later.
        second: &'static str,
    },
    /// Two aggregates register different types under one event or command name and
    /// version.
    #[error("the aggregates' events and commands conflict: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Registry(Vec<crate::registry::RegistryConflict>),
    /// The same aggregate was added twice.
    #[error("aggregate `{aggregate}` was added twice")]
    DuplicateAggregate {
        /// The aggregate's name.
        aggregate: &'static str,
    },
}
