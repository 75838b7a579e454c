//! Authorization before the decision: a [`Policy`] sees who issued a command (its
//! [`CommandContext`]), the command and the aggregate's current state, and allows it or
//! denies it with a reason, before the aggregate decides and before anything is written.
//!
//! A repository with a policy ([`Repository::with_policy`]) runs it on every command:
//!
//! - every decision is a `tracing` event (target `factum::authorization`: `allow` at debug,
//!   `deny` at info level) naming the aggregate, stream, command, command id and actor;
//! - a denied command writes no event of the domain and fails with
//!   [`RepositoryError::Denied`] naming the stream, the command, the actor and the reason;
//! - every denial is kept in the audit record: a [`Denial`] (who, what, when, why),
//!   appended to the stream's audit stream ([`audit_stream_id`], stream type
//!   [`AUDIT_STREAM_TYPE`]) in the same store. It is not an event of the domain — no
//!   aggregate loads it, projections of the domain pass over its stream type — but it is
//!   stored like one, so it is as durable, ordered and exportable as the events, and
//!   [`denials`] reads it back.
//!
//! A policy is any `Fn(&CommandContext, &A::Commands, &A) -> Decision`, or a type
//! implementing [`Policy`].
//!
//! [`Repository::with_policy`]: crate::repository::Repository::with_policy
//! [`RepositoryError::Denied`]: crate::repository::RepositoryError::Denied

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::aggregate::Aggregate;
use crate::context::{Actor, CommandContext};
use crate::envelope::{NewEvent, RecordedEvent};
use crate::error::EncodeError;
use crate::repository::RepositoryError;
use crate::store::{EventStore, ExpectedVersion, StoreError};

/// A policy's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The command may run.
    Allow,
    /// The command may not run, and why (for the caller and the audit record).
    Deny(String),
}

impl Decision {
    /// Denies with `reason`.
    pub fn deny(reason: impl Into<String>) -> Self {
        Self::Deny(reason.into())
    }

    /// Allows when `allowed` holds, otherwise denies with `reason`.
    pub fn allow_if(allowed: bool, reason: impl Into<String>) -> Self {
        if allowed {
            Self::Allow
        } else {
            Self::deny(reason)
        }
    }
}

/// Decides whether a command of the aggregate `A` may run; see the [module docs](self).
pub trait Policy<A: Aggregate>: Send + Sync + 'static {
    /// Allows or denies `command`, issued in `ctx`, on the aggregate's current `state`.
    fn authorize(&self, ctx: &CommandContext, command: &A::Commands, state: &A) -> Decision;
}

impl<A, F> Policy<A> for F
where
    A: Aggregate,
    F: Fn(&CommandContext, &A::Commands, &A) -> Decision + Send + Sync + 'static,
{
    fn authorize(&self, ctx: &CommandContext, command: &A::Commands, state: &A) -> Decision {
        self(ctx, command, state)
    }
}

/// The stream type of the audit streams.
pub const AUDIT_STREAM_TYPE: &str = "factum.Audit";

/// The name the audit record's entries are stored under.
pub const DENIAL_EVENT: &str = "CommandDenied";

/// The audit stream of the aggregate stream `stream_id`: `factum.audit-<stream id>`.
pub fn audit_stream_id(stream_id: &str) -> String {
    format!("factum.audit-{stream_id}")
}

/// A denied command, as the audit record keeps it: who, what, when, why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Denial {
    /// The command's id.
    pub command_id: Uuid,
    /// The command's name.
    pub command: String,
    /// The stream the command was addressed to.
    pub stream_id: String,
    /// The aggregate's version the policy saw.
    pub stream_version: u64,
    /// Who issued it: the actor's kind and id, when it named one.
    pub actor_kind: Option<String>,
    /// The actor's id.
    pub actor: Option<String>,
    /// The tenant, when set.
    pub tenant: Option<String>,
    /// When the command was issued (its context's time).
    pub issued_at: DateTime<Utc>,
    /// Why it was denied.
    pub reason: String,
}

impl Denial {
    /// The actor, when the command named one.
    pub fn actor(&self) -> Option<Actor> {
        match (&self.actor_kind, &self.actor) {
            (Some(kind), Some(id)) => Some(Actor::new(kind.clone(), id.clone())),
            _ => None,
        }
    }
}

/// Appends `denial` to its stream's audit stream, with the command's metadata.
pub(crate) async fn record<S: EventStore, E>(
    store: &S,
    ctx: &CommandContext,
    denial: &Denial,
) -> Result<(), RepositoryError<E>> {
    let payload =
        serde_json::value::to_raw_value(denial).map_err(|source| RepositoryError::Encode {
            stream_id: audit_stream_id(&denial.stream_id),
            source: EncodeError {
                event: DENIAL_EVENT,
                source,
            },
        })?;
    let event = NewEvent {
        timestamp: ctx.now(),
        ..NewEvent::new(DENIAL_EVENT, 1, payload, ctx.event_metadata())
    };
    store
        .append(
            &audit_stream_id(&denial.stream_id),
            AUDIT_STREAM_TYPE,
            ExpectedVersion::Any,
            vec![event],
        )
        .await?;
    Ok(())
}

/// Who reads or acts: an actor, in a tenant or none (an HTTP request's caller, an
/// operator, a service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The actor.
    pub actor: Actor,
    /// The tenant they act in, if any.
    pub tenant: Option<String>,
}

impl Principal {
    /// `actor`, in no tenant.
    pub fn new(actor: Actor) -> Self {
        Self {
            actor,
            tenant: None,
        }
    }

    /// The same principal in `tenant`.
    pub fn in_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }
}

/// Who may read the events of which stream type: guards stream reads over HTTP and
/// through [`AuditedReads`], subscriptions, and subject exports (whose stream type is
/// [`SUBJECT_STREAM_TYPE`]). Any `Fn(&Principal, &str) -> Decision` is one.
pub trait ReadPolicy: Send + Sync + 'static {
    /// Whether `principal` may read events of streams of `stream_type`.
    fn may_read(&self, principal: &Principal, stream_type: &str) -> Decision;
}

impl<F> ReadPolicy for F
where
    F: Fn(&Principal, &str) -> Decision + Send + Sync + 'static,
{
    fn may_read(&self, principal: &Principal, stream_type: &str) -> Decision {
        self(principal, stream_type)
    }
}

/// The stream type a read policy is asked about for a subject's data access export.
pub const SUBJECT_STREAM_TYPE: &str = crate::personal::FORGOTTEN_STREAM_TYPE;

/// How a read reached the events, kept in its [`StreamRead`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadChannel {
    /// `GET /streams/{id}` of the HTTP layer.
    Http,
    /// A subscription to a stream type (the HTTP layer's Server-Sent Events).
    Subscription,
    /// [`AuditedReads::read_stream`], in the application.
    Library,
    /// A subject's data access export ([`AuditedReads::export_subject`]).
    Export,
}

/// The event name of a [`StreamRead`] in the access audit record.
pub const STREAM_READ_EVENT: &str = "StreamRead";

/// The stream that keeps the access audit record of the stream `stream_id`: every read of
/// its events from outside the service (over HTTP), allowed or not.
pub fn access_stream_id(stream_id: &str) -> String {
    format!("factum.access-{stream_id}")
}

/// One read of a stream's events, kept in its access audit record: who read, what, when,
/// and whether it was allowed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamRead {
    /// The stream read; for a subscription, `*` and the stream type followed
    /// (`*Member`); for an export, the subject's stream (`factum.subject-<id>`).
    pub stream_id: String,
    /// The first stream version asked for.
    pub from_version: u64,
    /// How many events were handed out (0 when denied).
    pub events: u64,
    /// The reader's kind of actor.
    pub actor_kind: String,
    /// The reader's id.
    pub actor: String,
    /// The reader's tenant, when set.
    pub tenant: Option<String>,
    /// When.
    pub read_at: DateTime<Utc>,
    /// Why it was denied; `None` when allowed.
    pub denied: Option<String>,
    /// Through what (records kept before channels were recorded were HTTP reads).
    #[serde(default = "http_channel")]
    pub through: ReadChannel,
}

fn http_channel() -> ReadChannel {
    ReadChannel::Http
}

impl StreamRead {
    /// A read by `principal` of `stream_id` from `from_version`, through `through`, now;
    /// allowed and empty until filled in.
    pub fn new(
        principal: &Principal,
        stream_id: impl Into<String>,
        from_version: u64,
        through: ReadChannel,
    ) -> Self {
        Self {
            stream_id: stream_id.into(),
            from_version,
            events: 0,
            actor_kind: principal.actor.kind.clone(),
            actor: principal.actor.id.clone(),
            tenant: principal.tenant.clone(),
            read_at: crate::envelope::now(),
            denied: None,
            through,
        }
    }
}

/// Reads from outside the domain, guarded by a [`ReadPolicy`] and kept in the access
/// audit record: one stream's events, a subject's export, a subscription. The
/// application's own loads (repositories, projections) read the store directly and are
/// not audited: hand this, not the store, to code that reads on someone's behalf.
///
/// Every read, allowed or denied, is recorded before anything is handed out (a read the
/// record would miss is never served). The record is events of the log, so the hash
/// chains and signed checkpoints cover it like any other.
#[derive(Debug, Clone)]
pub struct AuditedReads<S, P> {
    store: S,
    policy: P,
}

/// Why an audited read returned nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadRefused {
    /// The policy denied it (the denial is recorded).
    #[error("{principal} may not read `{target}`: {reason}")]
    Denied {
        /// Who asked, as `kind:id`.
        principal: String,
        /// The stream or subject.
        target: String,
        /// The policy's reason.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The export failed.
    #[error(transparent)]
    Export(#[from] crate::personal::PersonalStoreError),
}

impl<S: EventStore, P: ReadPolicy> AuditedReads<S, P> {
    /// Reads of `store` under `policy`.
    pub fn new(store: S, policy: P) -> Self {
        Self { store, policy }
    }

    /// The store read (for the application's own, unaudited reads).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Up to `limit` events of `stream_id` from `from_version`, if the policy lets
    /// `principal` read streams of its type; recorded either way.
    pub async fn read_stream(
        &self,
        principal: &Principal,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadRefused> {
        let stream_type = match self.store.read_stream(stream_id, 1, 1).await?.first() {
            Some(first) => first.stream_type.clone(),
            None => String::new(),
        };
        self.guarded(
            principal,
            stream_id,
            &stream_type,
            from_version,
            ReadChannel::Library,
            || self.store.read_stream(stream_id, from_version, limit),
        )
        .await
    }

    /// Whether `principal` may follow the streams of `stream_type` (a subscription),
    /// recorded either way; the caller then follows the log.
    pub async fn authorize_subscription(
        &self,
        principal: &Principal,
        stream_type: &str,
    ) -> Result<(), ReadRefused> {
        self.guarded(
            principal,
            &format!("*{stream_type}"),
            stream_type,
            0,
            ReadChannel::Subscription,
            || async { Ok(Vec::new()) },
        )
        .await
        .map(|_| ())
    }

    /// Checks the policy, runs `read` if allowed, and records the read.
    async fn guarded<F, Fut>(
        &self,
        principal: &Principal,
        stream_id: &str,
        stream_type: &str,
        from_version: u64,
        through: ReadChannel,
        read: F,
    ) -> Result<Vec<RecordedEvent>, ReadRefused>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<RecordedEvent>, StoreError>>,
    {
        let mut record = StreamRead::new(principal, stream_id, from_version, through);
        let decision = if stream_type == AUDIT_STREAM_TYPE {
            Decision::deny("the audit record is read with `authorization::reads`, not served")
        } else {
            self.policy.may_read(principal, stream_type)
        };
        if let Decision::Deny(reason) = decision {
            record.denied = Some(reason.clone());
            record_read(&self.store, &record).await?;
            return Err(ReadRefused::Denied {
                principal: format!("{}:{}", principal.actor.kind, principal.actor.id),
                target: stream_id.to_owned(),
                reason,
            });
        }
        let events = read().await?;
        record.events = events.len() as u64;
        record_read(&self.store, &record).await?;
        Ok(events)
    }
}

impl<S, K, P> AuditedReads<crate::personal::ProtectedStore<S, K>, P>
where
    S: EventStore,
    K: crate::personal::KeyStore,
    P: ReadPolicy,
{
    /// A subject's data access export, if the policy lets `principal` read streams of
    /// type [`SUBJECT_STREAM_TYPE`]; recorded either way, in the subject's access record.
    pub async fn export_subject(
        &self,
        principal: &Principal,
        subject: &crate::personal::SubjectId,
    ) -> Result<crate::personal::SubjectExport, ReadRefused> {
        let mut export = None;
        let stream = crate::personal::subject_stream(subject);
        self.guarded(
            principal,
            &stream,
            SUBJECT_STREAM_TYPE,
            1,
            ReadChannel::Export,
            || async {
                let exported = self
                    .store
                    .export(subject)
                    .await
                    .map_err(|error| match error {
                        crate::personal::PersonalStoreError::Store(error) => error,
                        other => StoreError::Backend(Box::new(other)),
                    })?;
                let events = exported.events.clone();
                export = Some(exported);
                Ok(events)
            },
        )
        .await?;
        export.ok_or_else(|| StoreError::Backend("the export produced nothing".into()).into())
    }
}

/// Keeps `read` in its stream's access audit record.
pub async fn record_read<S: EventStore>(store: &S, read: &StreamRead) -> Result<(), StoreError> {
    let payload = serde_json::value::to_raw_value(read)
        .map_err(|error| StoreError::Backend(Box::new(error)))?;
    let metadata = crate::envelope::Metadata {
        actor: Some(read.actor.clone()),
        actor_kind: Some(read.actor_kind.clone()),
        tenant: read.tenant.clone(),
        ..crate::envelope::Metadata::default()
    };
    let event = NewEvent {
        timestamp: read.read_at,
        ..NewEvent::new(STREAM_READ_EVENT, 1, payload, metadata)
    };
    store
        .append(
            &access_stream_id(&read.stream_id),
            AUDIT_STREAM_TYPE,
            ExpectedVersion::Any,
            vec![event],
        )
        .await?;
    Ok(())
}

/// The access audit record of `stream_id`, oldest first.
pub async fn reads<S: EventStore>(
    store: &S,
    stream_id: &str,
) -> Result<Vec<StreamRead>, AuditError> {
    audit_entries(store, &access_stream_id(stream_id), STREAM_READ_EVENT).await
}

/// Why the audit record could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An entry of the audit stream is not a denial this code reads.
    #[error("audit stream `{stream_id}` version {stream_version}: not a {DENIAL_EVENT} entry")]
    Unreadable {
        /// The audit stream.
        stream_id: String,
        /// The entry's version in it.
        stream_version: u64,
        /// Why, when the entry's payload does not parse.
        #[source]
        source: Option<serde_json::Error>,
    },
}

/// Every denial of commands addressed to the aggregate stream `stream_id`, oldest first.
pub async fn denials<S: EventStore>(store: &S, stream_id: &str) -> Result<Vec<Denial>, AuditError> {
    audit_entries(store, &audit_stream_id(stream_id), DENIAL_EVENT).await
}

/// Every entry of the audit stream `audit`, each an event named `name`.
async fn audit_entries<S: EventStore, T: serde::de::DeserializeOwned>(
    store: &S,
    audit: &str,
    name: &str,
) -> Result<Vec<T>, AuditError> {
    let mut entries = Vec::new();
    let mut from = 1;
    loop {
        let page = store.read_stream(audit, from, 500).await?;
        let Some(last) = page.last() else {
            return Ok(entries);
        };
        from = last.stream_version + 1;
        for entry in &page {
            let unreadable = |source| AuditError::Unreadable {
                stream_id: audit.to_owned(),
                stream_version: entry.stream_version,
                source,
            };
            if entry.name != name {
                return Err(unreadable(None));
            }
            entries
                .push(serde_json::from_str(entry.payload.get()).map_err(|e| unreadable(Some(e)))?);
        }
    }
}
