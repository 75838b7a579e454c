//! The application: one place that holds the aggregates' repositories, routes each
//! command to its aggregate — as a Rust value, or by name from JSON for the wire — and
//! runs it through the application's middleware in order.
//!
//! ```text
//! execute(command, ctx)  ─┐
//! execute_json(name, ..) ─┴─> route by command name -> middleware 1 -> ... -> middleware n
//!     -> repository of the aggregate [command record, authorization, decision, append]
//! ```
//!
//! - **Routing.** Every command name routes to one aggregate ([`BuildError`] otherwise);
//!   an unknown name, JSON that does not read as the command (naming the JSON path) and
//!   a missing command id are typed errors before anything runs.
//! - **Middleware** runs in the order added, the first outermost: each gets the
//!   [`Call`] (the command, its [`CommandContext`], per-call extensions) and the
//!   [`Next`] step. factum brings [`ContextRules`] (known actor kinds, an actor
//!   required), [`Tracing`] (a span per command) and [`Metrics`] (counters and a
//!   duration histogram through the `metrics` facade); any async closure
//!   `|call, next| ...` is one too.
//! - **Authorization** on the aggregate's state stays with the aggregate's repository
//!   ([`Repository::with_policy`]): it needs the state, which only the repository loads.
//! - **Services per call.** [`ApplicationBuilder::aggregate_with_services`] builds the
//!   aggregate's services for each call from its context and extensions (a clock, a
//!   lookup scoped to the caller's tenant) instead of fixing them per repository.
//!
//! ```
//! use factum::prelude::*;
//! use factum::application::{Application, ContextRules, Tracing};
//! use factum::context::{Actor, CommandContext};
//! use factum::store::MemoryStore;
//!
//! #[event(name = "Opened")]
//! pub struct Opened { pub owner: String }
//! #[derive(Events)]
//! pub enum AccountEvent { Opened(Opened) }
//!
//! #[command(name = "OpenAccount")]
//! pub struct OpenAccount { #[aggregate_id] pub account: String }
//! #[derive(Commands)]
//! pub enum AccountCommand { Open(OpenAccount) }
//!
//! #[derive(Debug, thiserror::Error)]
//! #[error("already open")]
//! pub struct AlreadyOpen;
//!
//! #[derive(Default)]
//! pub struct Account { open: bool }
//!
//! #[aggregate(name = "Account", events = AccountEvent, commands = AccountCommand, error = AlreadyOpen)]
//! impl Account {
//!     #[handle]
//!     fn open(&self, _: OpenAccount, ctx: &CommandContext) -> Result<Opened, AlreadyOpen> {
//!         if self.open { return Err(AlreadyOpen); }
//!         Ok(Opened { owner: ctx.actor.as_ref().map(|a| a.id.clone()).unwrap_or_default() })
//!     }
//!     #[apply]
//!     fn opened(&mut self, _: &Opened) { self.open = true; }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let app = Application::builder(store.clone())
//!     .middleware(Tracing)
//!     .middleware(ContextRules::new().actor_kinds(["customer"]).require_actor())
//!     .aggregate(Repository::<Account, _>::new(store))
//!     .build()
//!     .unwrap();
//!
//! let ctx = CommandContext::new().actor(Actor::new("customer", "C1"));
//! let typed = app.execute(OpenAccount { account: "a-1".into() }, ctx.clone()).await.unwrap();
//! assert_eq!((typed.stream_id.as_str(), typed.version, typed.created), ("Account-a-1", 1, true));
//!
//! // The same command id again: the first answer, nothing recorded twice.
//! let again = app.execute_json("OpenAccount", r#"{"account":"a-1"}"#, ctx).await.unwrap();
//! assert_eq!(again.event_ids, typed.event_ids);
//!
//! let unknown = app.execute_json("CloseAccount", "{}", CommandContext::new()).await.unwrap_err();
//! assert_eq!(unknown.to_string(), "no aggregate accepts a command named `CloseAccount` (known: OpenAccount)");
//! # });
//! ```
//!
//! [`Repository::with_policy`]: crate::repository::Repository::with_policy

mod call;
mod error;
mod middleware;

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use call::{Call, Handled, Middleware, Next};
pub use error::{ApplicationError, BuildError, Rejection};
pub use middleware::{ContextRules, Metrics, Tracing};

use crate::aggregate::Aggregate;
use crate::command::{Command, CommandSet};
use crate::context::{CommandContext, CommandIdError};
use crate::decision::{Decide, Decided, Decisions};
use crate::event::EventSet;
use crate::registry::{Registry, RegistryBuilder};
use crate::repository::{CallServices, Executed, Repository};
use crate::store::EventStore;
use crate::store::decision::DecisionStore;
use crate::upcast::Upcaster;

use call::{CallParts, Routed};

/// The answer to a command the application ran (or had run before, under the same id):
/// where its events went and the consistency token to read them back by.
#[derive(Clone)]
pub struct Outcome {
    /// The command's id.
    pub command_id: Uuid,
    /// The command's name.
    pub command: &'static str,
    /// The aggregate it went to.
    pub aggregate: &'static str,
    /// The stream written to.
    pub stream_id: String,
    /// The stream's version after the command.
    pub version: u64,
    /// The global position of the command's last event (`None` when it recorded none):
    /// what a query waits for to read this write.
    pub position: Option<u64>,
    /// The ids of the events recorded, in order.
    pub event_ids: Vec<Uuid>,
    /// Whether the command created its stream.
    pub created: bool,
    /// When the command was recorded.
    pub recorded_at: DateTime<Utc>,
    executed: Arc<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outcome")
            .field("command_id", &self.command_id)
            .field("command", &self.command)
            .field("aggregate", &self.aggregate)
            .field("stream_id", &self.stream_id)
            .field("version", &self.version)
            .field("position", &self.position)
            .field("event_ids", &self.event_ids)
            .field("created", &self.created)
            .field("recorded_at", &self.recorded_at)
            .finish_non_exhaustive()
    }
}

impl Outcome {
    fn new<A: Aggregate>(command: &'static str, executed: Executed<A>) -> Self {
        Self {
            command_id: executed.command_id,
            command,
            aggregate: A::NAME,
            stream_id: executed.stream_id.clone(),
            version: executed.version,
            position: executed.position,
            event_ids: executed.event_ids.clone(),
            created: executed.created(),
            recorded_at: executed.recorded_at,
            executed: Arc::new(executed),
        }
    }

    fn of_decision<D: Decide>(decided: Decided<D::Events>) -> Self {
        Self {
            command_id: decided.command_id,
            command: D::NAME,
            aggregate: D::STREAM_TYPE,
            stream_id: decided.stream_id.clone(),
            version: decided.version,
            position: decided.position,
            event_ids: decided.event_ids.clone(),
            created: decided.version > 0 && decided.version == decided.event_ids.len() as u64,
            recorded_at: decided.recorded_at,
            executed: Arc::new(decided),
        }
    }

    /// The decision's typed answer (its events), if the command was the decision `D`.
    pub fn decided<D: Decide>(&self) -> Option<&Decided<D::Events>> {
        self.executed.downcast_ref()
    }

    /// The repository's typed answer (the events and the state after them), if the
    /// command went to aggregate `A`.
    pub fn executed<A: Aggregate>(&self) -> Option<&Executed<A>> {
        self.executed.downcast_ref()
    }
}

/// Holds the repositories of an application's aggregates and runs commands through its
/// middleware; see the [module documentation](self). Cheap to clone: clones share it.
pub struct Application<S> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for Application<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for Application<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("store", &self.inner.store)
            .field("commands", &self.inner.routes.keys().collect::<Vec<_>>())
            .field("middleware", &self.inner.chain.len())
            .finish()
    }
}

struct Inner<S> {
    store: S,
    /// By command name.
    routes: BTreeMap<&'static str, Arc<dyn Route>>,
    /// The repositories, by the aggregate's type.
    repositories: BTreeMap<TypeId, Arc<dyn Any + Send + Sync>>,
    chain: Arc<[Arc<dyn Middleware>]>,
    upcaster: Upcaster,
    registry: Registry,
}

/// Builds an [`Application`]: its aggregates and its middleware, in order.
pub struct ApplicationBuilder<S> {
    store: S,
    routes: BTreeMap<&'static str, Arc<dyn Route>>,
    repositories: BTreeMap<TypeId, Arc<dyn Any + Send + Sync>>,
    aggregates: Vec<&'static str>,
    chain: Vec<Arc<dyn Middleware>>,
    upcaster: Upcaster,
    registry: RegistryBuilder,
    error: Option<BuildError>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for ApplicationBuilder<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplicationBuilder")
            .field("store", &self.store)
            .field("aggregates", &self.aggregates)
            .field("middleware", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl<S: EventStore + Send + Sync + 'static> Application<S> {
    /// Starts an application over `store` (the store its repositories write to; kept for
    /// [`Application::store`]).
    pub fn builder(store: S) -> ApplicationBuilder<S> {
        ApplicationBuilder {
            store,
            routes: BTreeMap::new(),
            repositories: BTreeMap::new(),
            aggregates: Vec::new(),
            chain: Vec::new(),
            upcaster: Upcaster::new(),
            registry: Registry::builder(),
            error: None,
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// The upcaster of the application's aggregates: what hands their events to other
    /// services in their newest versions.
    pub fn upcaster(&self) -> &Upcaster {
        &self.inner.upcaster
    }

    /// The registry of the application's aggregates: their events and commands with their
    /// schemas (what an HTTP API documents, what contracts are generated from).
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The names of the commands the application accepts, sorted.
    pub fn command_names(&self) -> Vec<&'static str> {
        self.inner.routes.keys().copied().collect()
    }

    /// The repository of aggregate `A`, to load it or run a command outside the
    /// middleware; `None` if `A` is not part of the application.
    pub fn repository<A: Aggregate>(&self) -> Option<&Repository<A, S>> {
        self.inner
            .repositories
            .get(&TypeId::of::<A>())
            .and_then(|repository| repository.downcast_ref())
    }

    /// Runs `command` in `ctx`: routes it by its name to its aggregate and through the
    /// middleware. The typed answer is [`Outcome::executed`].
    pub async fn execute<C: Command>(
        &self,
        command: C,
        ctx: CommandContext,
    ) -> Result<Outcome, ApplicationError> {
        self.run(self.call(command, ctx)?).await
    }

    /// Runs `command`, held in its aggregate's command set (`TaskCommand::Complete(..)`),
    /// like [`Application::execute`].
    pub async fn execute_set<C: CommandSet>(
        &self,
        command: C,
        ctx: CommandContext,
    ) -> Result<Outcome, ApplicationError> {
        self.run(self.call_set(command, ctx)?).await
    }

    /// Runs the command named `name`, read from `json` (its schema in the registry), in
    /// `ctx`: the way in for commands from the wire.
    pub async fn execute_json(
        &self,
        name: &str,
        json: &str,
        ctx: CommandContext,
    ) -> Result<Outcome, ApplicationError> {
        self.run(self.call_json(name, json, ctx)?).await
    }

    /// The call of `command` in `ctx`, routed but not run: set what the caller knows
    /// beyond the context ([`Call::expected_version`], [`Call::extensions`]), then
    /// [`Application::run`] it.
    pub fn call<C: Command>(
        &self,
        command: C,
        ctx: CommandContext,
    ) -> Result<Call, ApplicationError> {
        self.bind(C::NAME, std::any::type_name::<C>(), Box::new(command), ctx)
    }

    /// [`Application::call`] of a command held in its set.
    pub fn call_set<C: CommandSet>(
        &self,
        command: C,
        ctx: CommandContext,
    ) -> Result<Call, ApplicationError> {
        self.bind(
            command.command_name(),
            std::any::type_name::<C>(),
            Box::new(command),
            ctx,
        )
    }

    /// [`Application::call`] of the command named `name`, read from `json`.
    pub fn call_json(
        &self,
        name: &str,
        json: &str,
        ctx: CommandContext,
    ) -> Result<Call, ApplicationError> {
        let command = self.route(name)?.bind_json(name, json)?;
        Self::checked(command, ctx)
    }

    /// Runs `call` through the middleware and the aggregate's repository.
    pub async fn run(&self, call: Call) -> Result<Outcome, ApplicationError> {
        Next {
            chain: Arc::clone(&self.inner.chain),
            index: 0,
        }
        .run(call)
        .await
    }

    fn bind(
        &self,
        name: &'static str,
        type_name: &'static str,
        command: Box<dyn Any + Send>,
        ctx: CommandContext,
    ) -> Result<Call, ApplicationError> {
        let route = self.route(name)?;
        let command = route
            .bind_value(command)
            .map_err(|_| ApplicationError::UnroutedType {
                type_name,
                name,
                aggregate: route.aggregate(),
            })?;
        Self::checked(command, ctx)
    }

    /// The call of a routed command, if its context has an id.
    fn checked(command: Box<dyn Routed>, ctx: CommandContext) -> Result<Call, ApplicationError> {
        // Checked before any middleware: a nil id would make every such command a repeat
        // of the first.
        if ctx.command_id.is_nil() {
            return Err(CommandIdError::Missing.into());
        }
        Ok(Call {
            context: ctx,
            extensions: http::Extensions::new(),
            expected_version: None,
            command,
        })
    }

    fn route(&self, name: &str) -> Result<&Arc<dyn Route>, ApplicationError> {
        self.inner
            .routes
            .get(name)
            .ok_or_else(|| ApplicationError::UnknownCommand {
                name: name.chars().take(128).collect(),
                known: self.command_names(),
            })
    }
}

impl<S: EventStore + Send + Sync + 'static> ApplicationBuilder<S> {
    /// Adds middleware after those already added: it runs inside them, closer to the
    /// aggregate.
    pub fn middleware(mut self, middleware: impl Middleware) -> Self {
        self.chain.push(Arc::new(middleware));
        self
    }

    /// Adds aggregate `A` through `repository` (with its policy, snapshots and services).
    pub fn aggregate<A: Aggregate>(self, repository: Repository<A, S>) -> Self {
        self.add(repository, Services::Repository)
    }

    /// Adds aggregate `A` through `repository`, with services built for each call by
    /// `services` from the call's context and extensions; the repository's own services
    /// are not used for commands run by the application.
    pub fn aggregate_with_services<A: Aggregate>(
        self,
        repository: Repository<A, S>,
        services: impl Fn(&CommandContext, &http::Extensions) -> A::Services + Send + Sync + 'static,
    ) -> Self {
        self.add(repository, Services::PerCall(Arc::new(services)))
    }

    fn add<A: Aggregate>(mut self, repository: Repository<A, S>, services: Services<A>) -> Self {
        if self.aggregates.contains(&A::NAME) || self.repositories.contains_key(&TypeId::of::<A>())
        {
            self.error
                .get_or_insert(BuildError::DuplicateAggregate { aggregate: A::NAME });
            return self;
        }
        let repository = Arc::new(repository);
        let route: Arc<dyn Route> = Arc::new(RouteTo {
            repository: Arc::clone(&repository),
            services,
        });
        for &command in A::Commands::COMMAND_NAMES {
            match self.routes.entry(command) {
                Entry::Vacant(entry) => {
                    entry.insert(Arc::clone(&route));
                }
                Entry::Occupied(entry) => {
                    self.error.get_or_insert(BuildError::DuplicateCommand {
                        command,
                        first: entry.get().aggregate(),
                        second: A::NAME,
                    });
                }
            }
        }
        self.aggregates.push(A::NAME);
        self.upcaster = std::mem::take(&mut self.upcaster).aggregate::<A>();
        A::register(&mut self.registry);
        self.repositories.insert(TypeId::of::<A>(), repository);
        self
    }

    /// Adds the decision across entities `D` (see [`crate::decision`]): its command is
    /// routed by name like an aggregate's (from Rust or from the wire, through the same
    /// middleware) and made by a [`Decisions`] on the application's store, deciding up
    /// to `attempts` times when its facts change under it. Its events and command join
    /// the registry under its stream type.
    pub fn decision<D: Decide>(mut self, attempts: u32) -> Self
    where
        S: DecisionStore + Clone,
    {
        let decisions = Arc::new(Decisions::new(self.store.clone()).with_attempts(attempts));
        let route: Arc<dyn Route> = Arc::new(DecisionRoute::<D, S> {
            decisions,
            decision: std::marker::PhantomData,
        });
        match self.routes.entry(D::NAME) {
            Entry::Vacant(entry) => {
                entry.insert(route);
            }
            Entry::Occupied(entry) => {
                self.error.get_or_insert(BuildError::DuplicateCommand {
                    command: D::NAME,
                    first: entry.get().aggregate(),
                    second: D::STREAM_TYPE,
                });
                return self;
            }
        }
        self.upcaster = std::mem::take(&mut self.upcaster).events::<D::Events>(D::STREAM_TYPE);
        D::Events::register(&mut self.registry, Some(D::STREAM_TYPE));
        self.registry.add_command::<D>(Some(D::STREAM_TYPE));
        self
    }

    /// The application, or why its aggregates do not fit together.
    pub fn build(self) -> Result<Application<S>, BuildError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let registry = self.registry.build().map_err(BuildError::Registry)?;
        Ok(Application {
            inner: Arc::new(Inner {
                store: self.store,
                routes: self.routes,
                repositories: self.repositories,
                chain: self.chain.into(),
                upcaster: self.upcaster,
                registry,
            }),
        })
    }
}

/// Where an aggregate's services come from.
enum Services<A: Aggregate> {
    /// The repository's own.
    Repository,
    /// Built for each call.
    #[allow(clippy::type_complexity)]
    PerCall(Arc<dyn Fn(&CommandContext, &http::Extensions) -> A::Services + Send + Sync>),
}

impl<A: Aggregate> Clone for Services<A> {
    fn clone(&self) -> Self {
        match self {
            Self::Repository => Self::Repository,
            Self::PerCall(build) => Self::PerCall(Arc::clone(build)),
        }
    }
}

/// The type-erased way to one aggregate.
trait Route: Send + Sync {
    fn aggregate(&self) -> &'static str;
    /// The command, if it is one of the aggregate's command types or its command set.
    fn bind_value(&self, command: Box<dyn Any + Send>) -> Result<Box<dyn Routed>, ()>;
    fn bind_json(&self, name: &str, json: &str) -> Result<Box<dyn Routed>, ApplicationError>;
}

struct RouteTo<A: Aggregate, S> {
    repository: Arc<Repository<A, S>>,
    services: Services<A>,
}

impl<A: Aggregate, S: EventStore + Send + Sync + 'static> RouteTo<A, S> {
    fn bind(&self, command: A::Commands) -> Box<dyn Routed> {
        Box::new(Bound {
            command,
            repository: Arc::clone(&self.repository),
            services: self.services.clone(),
        })
    }
}

impl<A: Aggregate, S: EventStore + Send + Sync + 'static> Route for RouteTo<A, S> {
    fn aggregate(&self) -> &'static str {
        A::NAME
    }

    fn bind_value(&self, command: Box<dyn Any + Send>) -> Result<Box<dyn Routed>, ()> {
        // One of the set's commands, or the set itself.
        let command = match A::Commands::from_member(command) {
            Ok(command) => command,
            Err(other) => *other.downcast::<A::Commands>().map_err(drop)?,
        };
        Ok(self.bind(command))
    }

    fn bind_json(&self, name: &str, json: &str) -> Result<Box<dyn Routed>, ApplicationError> {
        match A::Commands::from_json(name, json) {
            Some(Ok(command)) => Ok(self.bind(command)),
            Some(Err(error)) => Err(error.into()),
            // Unreachable through the routing table; answered as the unknown name it is.
            None => Err(ApplicationError::UnknownCommand {
                name: name.to_owned(),
                known: A::Commands::COMMAND_NAMES.to_vec(),
            }),
        }
    }
}

/// The way to one kind of decision.
struct DecisionRoute<D, S> {
    decisions: Arc<Decisions<S>>,
    decision: std::marker::PhantomData<fn(D)>,
}

impl<D: Decide, S: DecisionStore + Send + Sync + 'static> Route for DecisionRoute<D, S> {
    fn aggregate(&self) -> &'static str {
        D::STREAM_TYPE
    }

    fn bind_value(&self, command: Box<dyn Any + Send>) -> Result<Box<dyn Routed>, ()> {
        let command = *command.downcast::<D>().map_err(drop)?;
        Ok(Box::new(BoundDecision {
            command,
            decisions: Arc::clone(&self.decisions),
        }))
    }

    fn bind_json(&self, _name: &str, json: &str) -> Result<Box<dyn Routed>, ApplicationError> {
        let command = crate::command::decode_command::<D>(json)?;
        Ok(Box::new(BoundDecision {
            command,
            decisions: Arc::clone(&self.decisions),
        }))
    }
}

/// A decision's command with what makes it.
struct BoundDecision<D, S> {
    command: D,
    decisions: Arc<Decisions<S>>,
}

impl<D: Decide, S: DecisionStore + Send + Sync + 'static> Routed for BoundDecision<D, S> {
    fn name(&self) -> &'static str {
        D::NAME
    }

    fn aggregate(&self) -> &'static str {
        D::STREAM_TYPE
    }

    fn aggregate_id(&self) -> String {
        self.command.aggregate_id()
    }

    fn member(&self) -> &dyn Any {
        &self.command
    }

    fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(&self.command)
    }

    fn run(self: Box<Self>, call: CallParts) -> Handled {
        let BoundDecision { command, decisions } = *self;
        Box::pin(async move {
            if let Some(version) = call.expected_version {
                // A decision is made on the events its models read, not on a stream's
                // version: an expectation of one would be silently meaningless.
                return Err(ApplicationError::Refused {
                    by: "factum::decision".to_owned(),
                    command: D::NAME,
                    aggregate_id: command.aggregate_id(),
                    reason: format!(
                        "a decision across entities is made on the events of its models, not at a stream version; send it without an expected version (it named {version})"
                    ),
                });
            }
            let decided = decisions.execute(command, call.context).await;
            decided
                .map(|decided| Outcome::of_decision::<D>(decided))
                .map_err(|error| ApplicationError::Repository {
                    aggregate: D::STREAM_TYPE,
                    source: Box::new(error.map_rejected(|error| Rejection(Box::new(error)))),
                })
        })
    }
}

/// A command with the repository that runs it.
struct Bound<A: Aggregate, S> {
    command: A::Commands,
    repository: Arc<Repository<A, S>>,
    services: Services<A>,
}

impl<A: Aggregate, S: EventStore + Send + Sync + 'static> Routed for Bound<A, S> {
    fn name(&self) -> &'static str {
        self.command.command_name()
    }

    fn aggregate(&self) -> &'static str {
        A::NAME
    }

    fn aggregate_id(&self) -> String {
        self.command.aggregate_id()
    }

    fn member(&self) -> &dyn Any {
        self.command.member()
    }

    fn to_json(&self) -> Result<String, serde_json::Error> {
        self.command.to_json()
    }

    fn run(self: Box<Self>, call: CallParts) -> Handled {
        let Bound {
            command,
            repository,
            services,
        } = *self;
        Box::pin(async move {
            let name = command.command_name();
            let CallParts {
                context,
                extensions,
                expected_version,
            } = call;
            let services = match &services {
                Services::Repository => CallServices::Shared(repository.shared_services()),
                Services::PerCall(build) => CallServices::Owned(build(&context, &extensions)),
            };
            let executed = repository
                .run(command, context, services, expected_version)
                .await;
            executed
                .map(|executed| Outcome::new(name, executed))
                .map_err(|error| ApplicationError::Repository {
                    aggregate: A::NAME,
                    source: Box::new(error.map_rejected(|error| Rejection(Box::new(error)))),
                })
        })
    }
}
