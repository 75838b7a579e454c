//! The application: commands routed to their aggregates, middleware in order, services
//! built per call, and the metrics and traces its own middleware leave.

use std::sync::{Arc, Mutex};

use factum::application::{
    Application, ApplicationError, BuildError, Call, ContextRules, Metrics, Next, Tracing,
};
use factum::context::{Actor, CommandContext};
use factum::prelude::*;
use factum::store::{EventStore, MemoryStore};

#[event(name = "LockerReserved")]
#[derive(Debug, Clone, PartialEq)]
pub struct Reserved {
    pub by: String,
}

#[event(name = "LockerReleased")]
#[derive(Debug, Clone, PartialEq)]
pub struct Released {}

#[derive(Events, Debug, Clone, PartialEq)]
pub enum LockerEvent {
    Reserved(Reserved),
    Released(Released),
}

#[command(name = "ReserveLocker")]
#[derive(Debug, Clone)]
pub struct Reserve {
    #[aggregate_id]
    pub locker: String,
}

#[command(name = "ReleaseLocker")]
#[derive(Debug, Clone)]
pub struct Release {
    #[aggregate_id]
    pub locker: String,
}

#[derive(Commands)]
pub enum LockerCommand {
    Reserve(Reserve),
    Release(Release),
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum LockerError {
    #[error("locker is taken by `{0}`")]
    Taken(String),
    #[error("`{0}` may hold no more lockers today")]
    OverQuota(String),
}

/// What the handlers ask about the caller: built per call.
pub struct Quota {
    pub remaining: u32,
}

#[derive(Debug, Default)]
pub struct Locker {
    holder: Option<String>,
}

#[aggregate(name = "Locker", events = LockerEvent, commands = LockerCommand, error = LockerError, services = Quota)]
impl Locker {
    #[handle]
    fn reserve(
        &self,
        _: Reserve,
        quota: &Quota,
        ctx: &CommandContext,
    ) -> Result<Reserved, LockerError> {
        let by = ctx.actor.as_ref().map(|a| a.id.clone()).unwrap_or_default();
        if let Some(holder) = &self.holder {
            return Err(LockerError::Taken(holder.clone()));
        }
        if quota.remaining == 0 {
            return Err(LockerError::OverQuota(by));
        }
        Ok(Reserved { by })
    }

    #[handle]
    fn release(&self, _: Release) -> Result<Option<Released>, LockerError> {
        Ok(self.holder.as_ref().map(|_| Released {}))
    }

    #[apply]
    fn reserved(&mut self, event: &Reserved) {
        self.holder = Some(event.by.clone());
    }

    #[apply]
    fn released(&mut self, _: &Released) {
        self.holder = None;
    }
}

/// Another aggregate that names a command like the locker's.
pub mod clash {
    use factum::prelude::*;

    #[event(name = "BookingMade")]
    pub struct Made {}
    #[derive(Events)]
    pub enum BookingEvent {
        Made(Made),
    }
    #[command(name = "ReserveLocker")]
    pub struct Reserve {
        #[aggregate_id]
        pub booking: String,
    }
    #[derive(Commands)]
    pub enum BookingCommand {
        Reserve(Reserve),
    }
    #[derive(Debug, thiserror::Error)]
    #[error("never")]
    pub struct Never;
    #[derive(Default)]
    pub struct Booking;
    #[aggregate(name = "Booking", events = BookingEvent, commands = BookingCommand, error = Never)]
    impl Booking {
        #[handle]
        fn reserve(&self, _: Reserve) -> Result<Made, Never> {
            Ok(Made {})
        }
        #[apply]
        fn made(&mut self, _: &Made) {}
    }
}

fn lockers(store: &MemoryStore) -> Repository<Locker, MemoryStore> {
    Repository::with_services(store.clone(), Quota { remaining: 1 })
}

fn member(id: &str) -> CommandContext {
    CommandContext::new().actor(Actor::new("member", id))
}

async fn stored(store: &MemoryStore) -> usize {
    store.read_all(0, 1000).await.expect("read").len()
}

type Log = Arc<Mutex<Vec<String>>>;

/// Runs `future` to its end on this thread, where the test's recorder or subscriber is
/// installed.
fn on_this_thread<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
        .block_on(future)
}

/// A middleware that notes its name before and after the rest of the way.
fn noting(log: &Log, name: &'static str) -> impl factum::application::Middleware {
    let log = Arc::clone(log);
    move |call: Call, next: Next| {
        let log = Arc::clone(&log);
        async move {
            log.lock()
                .unwrap()
                .push(format!("{name} in: {}", call.command_name()));
            let result = next.run(call).await;
            let outcome = match &result {
                Ok(outcome) => format!("version {}", outcome.version),
                Err(_) => "error".to_owned(),
            };
            log.lock().unwrap().push(format!("{name} out: {outcome}"));
            result
        }
    }
}

#[tokio::test]
async fn middleware_runs_in_the_order_added_the_first_outermost() {
    let store = MemoryStore::new();
    let log = Log::default();
    let app = Application::builder(store.clone())
        .middleware(noting(&log, "first"))
        .middleware(noting(&log, "second"))
        .middleware(noting(&log, "third"))
        .aggregate(lockers(&store))
        .build()
        .expect("builds");
    app.execute(
        Reserve {
            locker: "l-1".into(),
        },
        member("ann"),
    )
    .await
    .expect("runs");
    assert_eq!(
        *log.lock().unwrap(),
        [
            "first in: ReserveLocker",
            "second in: ReserveLocker",
            "third in: ReserveLocker",
            "third out: version 1",
            "second out: version 1",
            "first out: version 1",
        ]
    );
}

#[tokio::test]
async fn middleware_may_refuse_a_command_or_add_to_its_context() {
    let store = MemoryStore::new();
    let app = Application::builder(store.clone())
        .middleware(|call: Call, next: Next| async move {
            if call.aggregate_id() == "out-of-order" {
                return Err(ApplicationError::refused(
                    "maintenance",
                    &call,
                    "the locker is being repaired",
                ));
            }
            next.run(call).await
        })
        .middleware(|mut call: Call, next: Next| async move {
            // What a tenant resolver in front of the domain does.
            if let Some(actor) = &call.context.actor {
                let tenant = format!("site-of-{}", actor.id);
                call.context.tenant = Some(tenant);
            }
            next.run(call).await
        })
        .aggregate(lockers(&store))
        .build()
        .expect("builds");

    let refused = app
        .execute(
            Reserve {
                locker: "out-of-order".into(),
            },
            member("ann"),
        )
        .await
        .expect_err("refused");
    assert_eq!(
        refused.to_string(),
        "command `ReserveLocker` to `out-of-order` refused by `maintenance`: the locker is being repaired"
    );
    assert_eq!(stored(&store).await, 0, "a refusal writes nothing");

    app.execute(
        Reserve {
            locker: "l-2".into(),
        },
        member("ann"),
    )
    .await
    .expect("runs");
    let events = store.read_all(0, 10).await.expect("read");
    assert_eq!(events[0].metadata.tenant.as_deref(), Some("site-of-ann"));
}

#[tokio::test]
async fn services_are_built_per_call_from_the_context_and_the_extensions() {
    #[derive(Clone)]
    struct Allowance(u32);

    let store = MemoryStore::new();
    let app = Application::builder(store.clone())
        // What an authentication step does: resolve the caller, leave it for later steps.
        .middleware(|mut call: Call, next: Next| async move {
            let allowance = match call.context.actor.as_ref().map(|a| a.id.as_str()) {
                Some("bob") => 0,
                _ => 1,
            };
            call.extensions.insert(Allowance(allowance));
            next.run(call).await
        })
        .aggregate_with_services(lockers(&store), |_, extensions| Quota {
            remaining: extensions.get::<Allowance>().map_or(0, |a| a.0),
        })
        .build()
        .expect("builds");

    let denied = app
        .execute(
            Reserve {
                locker: "l-3".into(),
            },
            member("bob"),
        )
        .await
        .expect_err("bob has no allowance left");
    assert_eq!(
        denied.rejection::<LockerError>(),
        Some(&LockerError::OverQuota("bob".into())),
        "the aggregate's own error, from services built for bob"
    );
    let ann = app
        .execute(
            Reserve {
                locker: "l-3".into(),
            },
            member("ann"),
        )
        .await
        .expect("ann has");
    let typed = ann.executed::<Locker>().expect("a locker's answer");
    assert_eq!(
        typed.events,
        [LockerEvent::Reserved(Reserved { by: "ann".into() })]
    );
    assert_eq!(typed.state.holder.as_deref(), Some("ann"));
    assert!(ann.executed::<clash::Booking>().is_none());
    assert_eq!(stored(&store).await, 1);
}

#[tokio::test]
async fn an_application_routes_each_command_name_to_one_aggregate() {
    let store = MemoryStore::new();
    let duplicate = Application::builder(store.clone())
        .aggregate(lockers(&store))
        .aggregate(Repository::<clash::Booking, _>::new(store.clone()))
        .build()
        .expect_err("two aggregates take ReserveLocker");
    assert_eq!(
        duplicate,
        BuildError::DuplicateCommand {
            command: "ReserveLocker",
            first: "Locker",
            second: "Booking"
        }
    );
    assert_eq!(
        duplicate.to_string(),
        "command `ReserveLocker` is accepted by both `Locker` and `Booking`; a command name must route to one aggregate"
    );
    let twice = Application::builder(store.clone())
        .aggregate(lockers(&store))
        .aggregate(lockers(&store))
        .build()
        .expect_err("the locker twice");
    assert_eq!(
        twice,
        BuildError::DuplicateAggregate {
            aggregate: "Locker"
        }
    );

    let app = Application::builder(store.clone())
        .aggregate(lockers(&store))
        .build()
        .expect("builds");
    assert_eq!(app.command_names(), ["ReleaseLocker", "ReserveLocker"]);
    let unrouted = app
        .execute(
            clash::Reserve {
                booking: "b-1".into(),
            },
            member("ann"),
        )
        .await
        .expect_err("a booking's command of the same name");
    assert!(matches!(
        unrouted,
        ApplicationError::UnroutedType {
            name: "ReserveLocker",
            aggregate: "Locker",
            ..
        }
    ));
    assert!(app.repository::<clash::Booking>().is_none());
    assert_eq!(stored(&store).await, 0);
}

#[test]
fn the_metrics_middleware_counts_and_times_every_command_by_outcome() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        on_this_thread(async {
            let store = MemoryStore::new();
            let app = Application::builder(store.clone())
                .middleware(Metrics)
                .middleware(ContextRules::new().actor_kinds(["member"]))
                .aggregate(lockers(&store))
                .build()
                .expect("builds");
            app.execute(
                Reserve {
                    locker: "l-4".into(),
                },
                member("ann"),
            )
            .await
            .expect("runs");
            app.execute(
                Reserve {
                    locker: "l-4".into(),
                },
                member("cy"),
            )
            .await
            .expect_err("taken");
            let stranger = CommandContext::new().actor(Actor::new("visitor", "vi"));
            app.execute(
                Reserve {
                    locker: "l-5".into(),
                },
                stranger,
            )
            .await
            .expect_err("unknown kind");
        });
    });

    let mut counts = Vec::new();
    let mut timings = 0;
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let labels: Vec<String> = key
            .key()
            .labels()
            .map(|label| format!("{}={}", label.key(), label.value()))
            .collect();
        match (key.key().name(), value) {
            ("factum_commands_total", DebugValue::Counter(count)) => {
                counts.push((labels.join(","), count));
            }
            ("factum_command_duration_seconds", DebugValue::Histogram(samples)) => {
                timings += samples.len();
            }
            // The store's own, checked in `tests/telemetry.rs`.
            (name, _) if name.starts_with("event_store_") => {}
            (name, value) => panic!("unexpected metric {name}: {value:?}"),
        }
    }
    counts.sort();
    assert_eq!(
        counts,
        [
            (
                "command=ReserveLocker,aggregate=Locker,outcome=executed".to_owned(),
                1
            ),
            (
                "command=ReserveLocker,aggregate=Locker,outcome=invalid".to_owned(),
                1
            ),
            (
                "command=ReserveLocker,aggregate=Locker,outcome=rejected".to_owned(),
                1
            ),
        ]
    );
    assert_eq!(timings, 3, "every command is timed");
}

#[test]
fn the_tracing_middleware_opens_a_span_per_command_and_closes_it_with_the_outcome() {
    use tracing_subscriber::layer::{Context, SubscriberExt};

    /// Keeps each event's message with the fields of the span it happened in.
    #[derive(Clone, Default)]
    struct Recording(Arc<Mutex<Vec<String>>>);

    struct Fields(Vec<String>);
    impl tracing::field::Visit for Fields {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            self.0.push(format!("{}={value:?}", field.name()));
        }
        fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
            self.0.push(format!("{}={value}", field.name()));
        }
    }

    impl<S> tracing_subscriber::Layer<S> for Recording
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        fn on_new_span(
            &self,
            attrs: &tracing::span::Attributes<'_>,
            id: &tracing::span::Id,
            ctx: Context<'_, S>,
        ) {
            let mut fields = Fields(Vec::new());
            attrs.record(&mut fields);
            if let Some(span) = ctx.span(id) {
                span.extensions_mut().insert(fields.0.join(" "));
            }
        }

        fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
            if event.metadata().target() != "factum::application" {
                return;
            }
            let mut fields = Fields(Vec::new());
            event.record(&mut fields);
            let span = ctx
                .event_span(event)
                .map(|span| {
                    let fields = span.extensions().get::<String>().cloned();
                    format!("{}[{}]", span.name(), fields.unwrap_or_default())
                })
                .unwrap_or_default();
            self.0.lock().unwrap().push(format!(
                "{} {span}: {}",
                event.metadata().level(),
                fields.0.join(" ")
            ));
        }
    }

    let recording = Recording::default();
    let subscriber = tracing_subscriber::registry().with(recording.clone());
    let command_id = uuid::Uuid::parse_str("0190f1c2-7a4b-7c3d-9e8f-0123456789ab").unwrap();
    tracing::subscriber::with_default(subscriber, || {
        on_this_thread(async {
            let store = MemoryStore::new();
            let app = Application::builder(store.clone())
                .middleware(Tracing)
                .aggregate(lockers(&store))
                .build()
                .expect("builds");
            let ctx = member("ann").command_id(command_id).tenant("north");
            let done = app
                .execute(
                    Reserve {
                        locker: "l-6".into(),
                    },
                    ctx.clone(),
                )
                .await
                .expect("runs");
            assert_eq!(done.position, Some(1));
            app.execute(
                Reserve {
                    locker: "l-6".into(),
                },
                member("cy"),
            )
            .await
            .expect_err("taken");
        });
    });
    let lines = recording.0.lock().unwrap().clone();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_eq!(
        lines[0],
        format!(
            "DEBUG factum.command[command=ReserveLocker aggregate=Locker aggregate_id=l-6 command_id={command_id} actor=member `ann` tenant=north]: message=command executed stream_id=Locker-l-6 version=1 position=1 events=1"
        )
    );
    assert!(
        lines[1].starts_with("INFO factum.command[command=ReserveLocker aggregate=Locker aggregate_id=l-6 command_id=")
            && lines[1].ends_with("actor=member `cy`]: message=command not executed error=aggregate `Locker`: command rejected: locker is taken by `ann`"),
        "{}",
        lines[1]
    );
}

#[tokio::test]
async fn a_call_may_expect_the_version_its_caller_decided_on() {
    use factum::repository::RepositoryError;
    use factum::store::ExpectedVersion;

    let store = MemoryStore::new();
    let app = Application::builder(store.clone())
        .aggregate(lockers(&store))
        .build()
        .expect("builds");
    let ctx = member("ann");
    let mut call = app
        .call(
            Reserve {
                locker: "l-7".into(),
            },
            ctx.clone(),
        )
        .expect("routed");
    assert_eq!(
        (call.command_name(), call.aggregate(), call.aggregate_id()),
        ("ReserveLocker", "Locker", "l-7".to_owned())
    );
    call.expected_version = Some(0);
    let reserved = app.run(call).await.expect("the locker was new");
    assert!(reserved.created);

    let mut stale = app
        .call_set(
            LockerCommand::Release(Release {
                locker: "l-7".into(),
            }),
            member("ann"),
        )
        .expect("routed");
    stale.expected_version = Some(0);
    let conflict = app.run(stale).await.expect_err("decided on version 0");
    assert!(
        matches!(
            &conflict,
            ApplicationError::Repository { source, .. }
                if matches!(**source, RepositoryError::Conflict { expected: ExpectedVersion::NoStream, actual: Some(1), .. })
        ),
        "{conflict:?}"
    );
    assert_eq!(
        factum::error::Report(&conflict).to_string(),
        "aggregate `Locker`: stream `Locker-l-7` changed concurrently: expected no stream, found version 1"
    );

    // A repeat is answered from its record, whatever it expected.
    let mut repeat = app
        .call(
            Reserve {
                locker: "l-7".into(),
            },
            ctx,
        )
        .expect("routed");
    repeat.expected_version = Some(0);
    let answered = app.run(repeat).await.expect("the first answer");
    assert_eq!(answered.event_ids, reserved.event_ids);

    let mut current = app
        .call(
            Release {
                locker: "l-7".into(),
            },
            member("ann"),
        )
        .expect("routed");
    current.expected_version = Some(1);
    assert_eq!(app.run(current).await.expect("at version 1").version, 2);
    assert_eq!(stored(&store).await, 2);
}
