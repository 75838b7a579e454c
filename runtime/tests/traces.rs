//! One trace from a command to the next: a request's `traceparent` is continued by the
//! command's span, its append and its events; a projection applying them and a reactor
//! reacting to them are children of the command's span, and the command the reactor
//! issues is the reactor's child. The spans are captured by OpenTelemetry's SDK through
//! `tracing-opentelemetry`, as an application would install them.

#[cfg(feature = "nats")]
mod nats_common;

use std::collections::BTreeMap;
use std::sync::Arc;

use factum::application::{Application, Tracing};
use factum::context::CommandContext;
use factum::prelude::*;
use factum::projection::sqlite::{SqliteReadModel, SqliteTx};
use factum::projection::{ProjectionError, ProjectionRunner};
use factum::store::SqliteStore;
use factum::trace::TraceParent;
use opentelemetry::trace::{SpanId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt as _;

#[event(name = "ReferralMade")]
#[derive(Debug, Clone)]
pub struct Made {}

#[event(name = "ReferralAcknowledged")]
#[derive(Debug, Clone)]
pub struct Acknowledged {}

#[derive(Events, Debug, Clone)]
pub enum ReferralEvent {
    Made(Made),
    Acknowledged(Acknowledged),
}

#[command(name = "MakeReferral")]
#[derive(Debug, Clone)]
pub struct Make {
    #[aggregate_id]
    pub referral: String,
}

#[command(name = "AcknowledgeReferral")]
#[derive(Debug, Clone)]
pub struct Acknowledge {
    #[aggregate_id]
    pub referral: String,
}

#[derive(Commands)]
pub enum ReferralCommand {
    Make(Make),
    Acknowledge(Acknowledge),
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
pub struct Never;

#[derive(Debug, Default)]
pub struct Referral;

#[aggregate(name = "Referral", events = ReferralEvent, commands = ReferralCommand, error = Never)]
impl Referral {
    #[handle]
    fn make(&self, _: Make) -> Result<Made, Never> {
        Ok(Made {})
    }

    #[handle]
    fn acknowledge(&self, _: Acknowledge) -> Result<Acknowledged, Never> {
        Ok(Acknowledged {})
    }

    #[apply]
    fn made(&mut self, _: &Made) {}

    #[apply]
    fn acknowledged(&mut self, _: &Acknowledged) {}
}

/// Counts referrals by what happened to them.
pub struct Tally;

#[projection(name = "tally")]
impl Tally {
    #[setup]
    async fn setup(&mut self, tx: &mut SqliteTx) -> Result<(), ProjectionError> {
        tx.execute(
            "CREATE TABLE tally (event TEXT PRIMARY KEY, n INTEGER NOT NULL)",
            (),
        )?;
        Ok(())
    }

    #[on]
    async fn made(&mut self, _: &Recorded<Made>, tx: &mut SqliteTx) -> Result<(), ProjectionError> {
        count(tx, "made")
    }

    #[on]
    async fn acknowledged(
        &mut self,
        _: &Recorded<Acknowledged>,
        tx: &mut SqliteTx,
    ) -> Result<(), ProjectionError> {
        count(tx, "acknowledged")
    }
}

fn count(tx: &mut SqliteTx, event: &str) -> Result<(), ProjectionError> {
    tx.execute(
        "INSERT INTO tally VALUES (?1, 1) ON CONFLICT (event) DO UPDATE SET n = n + 1",
        [event],
    )?;
    Ok(())
}

/// Acknowledges every referral made: a command caused by the event.
pub struct Acknowledger {
    app: Arc<Application<SqliteStore>>,
}

#[reactor(name = "acknowledger")]
impl Acknowledger {
    #[on]
    async fn made(&mut self, made: &Recorded<Made>) -> Result<(), ProjectionError> {
        let referral = made.stream_id().trim_start_matches("Referral-").to_owned();
        self.app
            .execute(
                Acknowledge { referral },
                CommandContext::caused_by(made.record()),
            )
            .await
            .map_err(ProjectionError::msg)?;
        Ok(())
    }
}

/// The spans as a tree, children under their parent in start order: each line the span's
/// name, then what tells it apart (the command, the event, the store).
fn render(spans: &[SpanData], parent: SpanId, depth: usize, out: &mut String) {
    let mut children: Vec<&SpanData> = spans
        .iter()
        .filter(|span| span.parent_span_id == parent)
        .collect();
    children.sort_by_key(|span| span.start_time);
    for span in children {
        let attributes: BTreeMap<String, String> = span
            .attributes
            .iter()
            .map(|pair| (pair.key.to_string(), pair.value.to_string()))
            .collect();
        let detail = ["command", "factum.event", "db.system.name"]
            .iter()
            .filter_map(|key| attributes.get(*key))
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        out.push_str(&format!(
            "{}{} [{:?}] {detail}\n",
            "  ".repeat(depth),
            span.name,
            span.span_kind
        ));
        render(spans, span.span_context.span_id(), depth + 1, out);
    }
}

/// A tracer provider exporting to memory, installed for this thread until the guard drops.
fn capture() -> (
    InMemorySpanExporter,
    SdkTracerProvider,
    tracing::subscriber::DefaultGuard,
) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("factum-test")));
    let guard = tracing::subscriber::set_default(subscriber);
    (exporter, provider, guard)
}

/// The application, traced, after `MakeReferral` was executed for a request of `request`.
async fn referral_made(store: &SqliteStore, request: TraceParent) -> Application<SqliteStore> {
    let app = Application::builder(store.clone())
        .middleware(Tracing)
        .aggregate(Repository::<Referral, _>::new(store.clone()))
        .build()
        .unwrap();
    app.execute(
        Make {
            referral: "r-1".into(),
        },
        CommandContext::new().traceparent(request.to_string()),
    )
    .await
    .unwrap();
    app
}

/// Runs `work` on this thread (where the spans are captured) with a store in `dir`.
fn on_a_store<T>(dir: &std::path::Path, work: impl AsyncFnOnce(SqliteStore) -> T) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store = SqliteStore::open(dir.join("events.sqlite3")).await.unwrap();
            work(store).await
        })
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|pair| pair.key.as_str() == key)
        .map(|pair| pair.value.to_string())
}

#[test]
fn a_request_command_its_projection_its_reactor_and_the_next_command_are_one_trace() {
    let (exporter, provider, _guard) = capture();
    // The caller's request: its trace, and the span it calls factum from.
    let request: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        .parse()
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let stored = on_a_store(dir.path(), async |store| {
        let app = Arc::new(referral_made(&store, request).await);
        let read_models = SqliteReadModel::open(dir.path().join("read"))
            .await
            .unwrap();
        let runner = ProjectionRunner::new(store.clone());
        let mut projector = runner.projector(Tally, read_models.clone());
        runner.catch_up(&mut projector).await.unwrap();
        let mut reactor = runner.reactor_driver(
            Acknowledger {
                app: Arc::clone(&app),
            },
            read_models.clone(),
        );
        runner.catch_up_reactor(&mut reactor).await.unwrap();
        runner.catch_up(&mut projector).await.unwrap();
        store.read_all(0, 10).await.unwrap()
    });
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();

    // Every span is in the request's trace; the first command is the request's child.
    for span in &spans {
        assert_eq!(
            u128::from_be_bytes(span.span_context.trace_id().to_bytes()),
            request.trace_id(),
            "{span:?}"
        );
    }
    let mut tree = String::new();
    render(
        &spans,
        SpanId::from_bytes(request.parent_id().to_be_bytes()),
        0,
        &mut tree,
    );
    assert_eq!(
        tree,
        "\
factum.command [Internal] MakeReferral
  append events [Client] sqlite
  project tally [Consumer] ReferralMade
  react acknowledger [Consumer] ReferralMade
    factum.command [Internal] AcknowledgeReferral
      append events [Client] sqlite
      project tally [Consumer] ReferralAcknowledged
",
        "{spans:#?}"
    );
    // Each stored event names the span of the command that recorded it.
    assert_eq!(stored.len(), 2);
    let commands: Vec<&SpanData> = spans
        .iter()
        .filter(|span| span.name == "factum.command")
        .collect();
    for (event, command) in stored.iter().zip(&commands) {
        let recorded: TraceParent = event
            .metadata
            .traceparent
            .as_deref()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(recorded.trace_id(), request.trace_id());
        assert_eq!(
            recorded.parent_id(),
            u64::from_be_bytes(command.span_context.span_id().to_bytes()),
            "{}",
            event.name
        );
        assert!(recorded.is_sampled());
    }

    // The append span carries the database conventions.
    let append = spans
        .iter()
        .find(|span| span.name == "append events")
        .unwrap();
    for (key, value) in [
        ("db.system.name", "sqlite"),
        ("db.operation.name", "append"),
        ("db.collection.name", "events"),
        ("factum.stream_type", "Referral"),
    ] {
        assert_eq!(attribute(append, key).as_deref(), Some(value), "{key}");
    }
}

#[test]
fn without_a_tracer_the_given_context_is_recorded_as_it_came() {
    // Spans, but none in an OpenTelemetry trace. (A subscriber of this thread's own: with
    // none, a span first met here could be cached as disabled for the other test's
    // thread too.)
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry());
    let dir = tempfile::tempdir().unwrap();
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let stored = on_a_store(dir.path(), async |store| {
        let referrals = Repository::<Referral, _>::new(store.clone());
        referrals
            .execute_with(
                Make {
                    referral: "r-1".into(),
                },
                CommandContext::new().traceparent(traceparent),
            )
            .await
            .unwrap();
        // Not a traceparent: not recorded.
        referrals
            .execute_with(
                Acknowledge {
                    referral: "r-1".into(),
                },
                CommandContext::new().traceparent("00-zz-not-a-trace"),
            )
            .await
            .unwrap();
        store.read_all(0, 10).await.unwrap()
    });
    assert_eq!(stored[0].metadata.traceparent.as_deref(), Some(traceparent));
    assert_eq!(stored[1].metadata.traceparent, None);
    // A command caused by the first event continues its context.
    assert_eq!(
        CommandContext::caused_by(&stored[0]).traceparent.as_deref(),
        Some(traceparent)
    );
}

/// Across NATS: the publisher's span continues the event's trace and sends its own
/// context as the `traceparent` header; the consumer's span continues that, and the
/// projection in the other process is its child. Needs `FACTUM_NATS_URL`
/// (`eval "$(scripts/nats.sh start)"`).
#[cfg(feature = "nats")]
#[test]
fn a_trace_crosses_nats_from_the_command_to_the_consuming_projection() {
    use factum::bus::{NatsConsumer, NatsPublisher};
    use factum::projection::Projector;

    let (exporter, provider, _guard) = capture();
    let request: TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        .parse()
        .unwrap();
    let url = nats_common::url();
    let (stream, prefix) = nats_common::unique("traces");
    let dir = tempfile::tempdir().unwrap();
    let (header, applied) = on_a_store(dir.path(), async |store| {
        referral_made(&store, request).await;
        let checkpoints = SqliteReadModel::open(dir.path().join("publisher"))
            .await
            .unwrap();
        let mut publisher = NatsPublisher::new(store.clone(), checkpoints, url.as_str())
            .stream(stream.as_str())
            .subject_prefix(prefix.as_str());
        assert_eq!(publisher.publish_pending().await.unwrap().published, 1);
        // What a third party subscribed to the subject sees.
        let client = factum::bus::async_nats::connect(url.as_str())
            .await
            .unwrap();
        let message = factum::bus::async_nats::jetstream::new(client)
            .get_stream(stream.as_str())
            .await
            .unwrap()
            .get_raw_message(1)
            .await
            .unwrap();
        let header = message
            .headers
            .get(factum::trace::TRACEPARENT)
            .map(|value| value.as_str().to_owned());
        let read_models = SqliteReadModel::open(dir.path().join("consumer"))
            .await
            .unwrap();
        let mut consumer = NatsConsumer::new(
            Projector::new(Tally, read_models),
            url.as_str(),
            "tally_bus",
        )
        .stream(stream.as_str());
        let consumed = consumer.consume_available().await.unwrap();
        (header, consumed.applied)
    });
    assert_eq!(applied, 1);
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    let mut tree = String::new();
    render(
        &spans,
        SpanId::from_bytes(request.parent_id().to_be_bytes()),
        0,
        &mut tree,
    );
    let subject = format!("{prefix}.Referral.ReferralMade");
    assert_eq!(
        tree,
        format!(
            "\
factum.command [Internal] MakeReferral
  append events [Client] sqlite
  publish {subject} [Producer] 
    receive {subject} [Consumer] 
      project tally [Consumer] ReferralMade
"
        ),
        "{spans:#?}"
    );
    let publish = spans
        .iter()
        .find(|span| span.name.starts_with("publish"))
        .unwrap();
    let header: TraceParent = header.expect("a traceparent header").parse().unwrap();
    assert_eq!(header.trace_id(), request.trace_id());
    assert_eq!(
        header.parent_id(),
        u64::from_be_bytes(publish.span_context.span_id().to_bytes())
    );
    for (key, value) in [
        ("messaging.system", "nats"),
        ("messaging.operation.type", "send"),
        ("messaging.destination.name", subject.as_str()),
    ] {
        assert_eq!(attribute(publish, key).as_deref(), Some(value), "{key}");
    }
}
