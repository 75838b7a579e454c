//! One command on its way through the application: the [`Call`], the [`Middleware`] it
//! passes and the [`Next`] step each middleware hands it on to.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::context::CommandContext;

use super::{ApplicationError, Outcome};

/// What a middleware's or the application's step resolves to.
pub type Handled = Pin<Box<dyn Future<Output = Result<Outcome, ApplicationError>> + Send>>;

/// A command routed to its aggregate, with the context it runs in and the per-call
/// extensions.
///
/// Middleware sees and may change the context (add a tenant, an extra entry) and the
/// extensions (anything later steps or the services of the call need: a resolved
/// principal, a request's deadline); the command itself and its route are fixed.
pub struct Call {
    /// The context the command runs in; the events it records carry it.
    pub context: CommandContext,
    /// Values for later steps and for the services of this call, by type.
    pub extensions: http::Extensions,
    /// The stream version the caller decided to send the command on (an HTTP
    /// `If-Match`), if it did: at another version the command is not decided (see
    /// [`Repository::execute_expecting`](crate::repository::Repository::execute_expecting)).
    pub expected_version: Option<u64>,
    pub(super) command: Box<dyn Routed>,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("command", &self.command.name())
            .field("aggregate", &self.command.aggregate())
            .field("aggregate_id", &self.command.aggregate_id())
            .field("context", &self.context)
            .field("expected_version", &self.expected_version)
            .finish_non_exhaustive()
    }
}

impl Call {
    /// The command's stable name.
    pub fn command_name(&self) -> &'static str {
        self.command.name()
    }

    /// The name of the aggregate the command goes to.
    pub fn aggregate(&self) -> &'static str {
        self.command.aggregate()
    }

    /// The id of the aggregate instance the command is addressed to.
    pub fn aggregate_id(&self) -> String {
        self.command.aggregate_id()
    }

    /// The command as its own type, if it is a `C`.
    pub fn command<C: 'static>(&self) -> Option<&C> {
        self.command.member().downcast_ref()
    }

    /// The command as JSON (its own shape), for logs and audit.
    pub fn command_json(&self) -> Result<String, serde_json::Error> {
        self.command.to_json()
    }
}

/// What the last step runs a command with.
pub(super) struct CallParts {
    pub context: CommandContext,
    pub extensions: http::Extensions,
    pub expected_version: Option<u64>,
}

/// A command bound to the route that runs it; the application's last step.
pub(super) trait Routed: Send + Sync {
    fn name(&self) -> &'static str;
    fn aggregate(&self) -> &'static str;
    fn aggregate_id(&self) -> String;
    fn member(&self) -> &dyn Any;
    fn to_json(&self) -> Result<String, serde_json::Error>;
    fn run(self: Box<Self>, call: CallParts) -> Handled;
}

/// A step around every command the application runs: validation, tracing, metrics, or
/// anything of the application's own. It gets the [`Call`] and the [`Next`] step, and
/// either hands the call on (`next.run(call).await`, possibly changed, possibly looking
/// at the outcome) or answers without running the command (with an
/// [`ApplicationError`]; nothing is written then).
///
/// Any `Fn(Call, Next) -> impl Future<Output = Result<Outcome, ApplicationError>>` is a
/// middleware:
///
/// ```
/// use factum::application::{ApplicationError, Call, Next};
///
/// let no_weekend_work = |call: Call, next: Next| async move {
///     use chrono::Datelike;
///     if call.context.now().weekday().number_from_monday() > 5 {
///         return Err(ApplicationError::refused("no_weekend_work", &call, "the office is closed"));
///     }
///     next.run(call).await
/// };
/// # let _ = no_weekend_work;
/// ```
pub trait Middleware: Send + Sync + 'static {
    /// Handles `call`, usually by passing it to `next`.
    fn handle(&self, call: Call, next: Next) -> Handled;
}

impl<F, Fut> Middleware for F
where
    F: Fn(Call, Next) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Outcome, ApplicationError>> + Send + 'static,
{
    fn handle(&self, call: Call, next: Next) -> Handled {
        Box::pin(self(call, next))
    }
}

/// The rest of the way: the middleware after the current one, then the aggregate.
#[derive(Clone)]
pub struct Next {
    pub(super) chain: Arc<[Arc<dyn Middleware>]>,
    pub(super) index: usize,
}

impl std::fmt::Debug for Next {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Next")
            .field("remaining_middleware", &(self.chain.len() - self.index))
            .finish()
    }
}

impl Next {
    /// Runs the call through the remaining middleware and then the command.
    pub fn run(self, call: Call) -> Handled {
        match self.chain.get(self.index).cloned() {
            Some(middleware) => middleware.handle(
                call,
                Next {
                    chain: self.chain,
                    index: self.index + 1,
                },
            ),
            None => call.command.run(CallParts {
                context: call.context,
                extensions: call.extensions,
                expected_version: call.expected_version,
            }),
        }
    }
}
