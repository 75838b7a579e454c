//! A decision across entities against an aggregate's command, on SQLite and PostgreSQL:
//! the same event recorded by each, with the same command record, on stores of the same
//! size.
//!
//! Groups `decide/<backend>/<size>`, functions `<contender>/<deciders>`:
//!
//! - `aggregate`: `Repository::<Course>::execute_with(Subscribe)`: the course's stream
//!   loaded (its `CourseDefined` and two subscriptions), the decision, and the
//!   `StudentSubscribed` event (tagged with the course and the student) appended at the
//!   version loaded, with the command's record.
//! - `decision`: `Decisions::execute(SubscribeStudent)` over two models, the course's
//!   seats (keyed by `course`) and the student's courses (keyed by `student`): one read
//!   of both models' events by tag, the fold, the decision, and the same event appended
//!   with the command's record under the condition that neither model's events changed.
//!
//! `deciders` commands run at once (1 or 8 tasks on a two-thread runtime), each on a
//! course of its own, seeded untimed before the timed commands; the store holds `size`
//! other events first (each tagged with one of a thousand other courses and a student
//! of its own, so the tag index holds twice as many rows), 10k and 1M: a condition's
//! cost must not grow with the store. Under `cargo test --benches` it runs once, at 1k.
//! `DECIDE_SIZES=10k,1M` and `DECIDE_BACKENDS=sqlite,postgres` choose; PostgreSQL needs
//! `FACTUM_POSTGRES_URL` (and the `postgres` feature).
//!
//! Run with `cargo bench -p factum-benches --features postgres --bench decide`; the
//! figures are in `BENCHMARKS.md`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use factum::decision::{Decide, Decisions, Keyed};
use factum::prelude::*;
use factum::store::SqliteStore;
use factum::store::decision::DecisionStore;

#[event(name = "CourseDefined", version = 1)]
#[derive(Debug, Clone)]
pub struct CourseDefined {
    #[tag]
    pub course: String,
    pub seats: u32,
}

#[event(name = "StudentSubscribed", version = 1)]
#[derive(Debug, Clone)]
pub struct StudentSubscribed {
    #[tag]
    pub course: String,
    #[tag]
    pub student: String,
}

#[derive(Events, Debug, Clone)]
pub enum CourseEvent {
    Defined(CourseDefined),
    Subscribed(StudentSubscribed),
}

#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("the course is full")]
    CourseFull,
    #[error("the student takes too many courses")]
    TooManyCourses,
}

/// The most courses a student takes.
const COURSE_LIMIT: u32 = 10;

// The aggregate side: a course, whose stream holds its subscriptions.

#[command(name = "Subscribe")]
pub struct Subscribe {
    #[aggregate_id]
    pub course: String,
    pub student: String,
}

#[derive(Commands)]
pub enum CourseCommand {
    Subscribe(Subscribe),
}

#[derive(Default)]
pub struct Course {
    seats: u32,
    taken: u32,
}

#[aggregate(events = CourseEvent, commands = CourseCommand, error = Refused)]
impl Course {
    #[handle]
    fn subscribe(&self, command: Subscribe) -> Result<StudentSubscribed, Refused> {
        if self.taken >= self.seats {
            return Err(Refused::CourseFull);
        }
        Ok(StudentSubscribed {
            course: command.course,
            student: command.student,
        })
    }

    #[apply]
    fn defined(&mut self, event: &CourseDefined) {
        self.seats = event.seats;
    }

    #[apply]
    fn subscribed(&mut self, _: &StudentSubscribed) {
        self.taken += 1;
    }
}

// The decision side: two models, the course's seats and the student's courses.

#[derive(Default)]
pub struct Seats {
    seats: u32,
    taken: u32,
}

#[decision_model(tags(course))]
impl Seats {
    #[apply]
    fn defined(&mut self, event: &CourseDefined) {
        self.seats = event.seats;
    }

    #[apply]
    fn subscribed(&mut self, _: &StudentSubscribed) {
        self.taken += 1;
    }
}

#[derive(Default)]
pub struct Courses(u32);

#[decision_model(tags(student))]
impl Courses {
    #[apply]
    fn subscribed(&mut self, _: &StudentSubscribed) {
        self.0 += 1;
    }
}

#[command(name = "SubscribeStudent")]
pub struct SubscribeStudent {
    #[aggregate_id]
    pub subscription: String,
    pub course: String,
    pub student: String,
}

impl Decide for SubscribeStudent {
    const STREAM_TYPE: &'static str = "Subscription";
    type Models = (Seats, Courses);
    type Events = CourseEvent;
    type Error = Refused;

    fn models(&self) -> (Keyed<Seats>, Keyed<Courses>) {
        (Seats::keyed(&self.course), Courses::keyed(&self.student))
    }

    fn decide(
        &self,
        (seats, courses): (Seats, Courses),
        _: &CommandContext,
    ) -> Result<Vec<CourseEvent>, Refused> {
        if seats.taken >= seats.seats {
            return Err(Refused::CourseFull);
        }
        if courses.0 >= COURSE_LIMIT {
            return Err(Refused::TooManyCourses);
        }
        Ok(vec![CourseEvent::Subscribed(StudentSubscribed {
            course: self.course.clone(),
            student: self.student.clone(),
        })])
    }
}

/// What is stored of `event`: encoded, with its tags.
fn stored(event: CourseEvent) -> NewEvent {
    let encoded = event.encode().expect("encodes");
    let mut tags = Vec::new();
    event.tags(&mut tags);
    NewEvent::new(
        encoded.name,
        encoded.schema_version,
        encoded.payload,
        Metadata::default(),
    )
    .with_tags(tags)
}

/// `size` other events, a thousand to an append: subscriptions to a thousand other
/// courses, each by a student of its own.
async fn seed_background<S: EventStore>(store: &S, size: u64) {
    const BATCH: u64 = 1_000;
    for batch in 0..size.div_ceil(BATCH) {
        let events = (batch * BATCH..((batch + 1) * BATCH).min(size))
            .map(|n| {
                stored(CourseEvent::Subscribed(StudentSubscribed {
                    course: format!("other-{}", n % 1_000),
                    student: format!("other-student-{n}"),
                }))
            })
            .collect();
        store
            .append(
                &format!("Background-{batch}"),
                "Background",
                ExpectedVersion::NoStream,
                events,
            )
            .await
            .expect("the background events");
    }
}

/// The course a timed command subscribes to: defined, with two seats taken of a hundred,
/// in its aggregate's stream (what both sides read).
async fn seed_course<S: EventStore>(store: &S, course: &str) {
    let events = vec![
        stored(CourseEvent::Defined(CourseDefined {
            course: course.to_owned(),
            seats: 100,
        })),
        stored(CourseEvent::Subscribed(StudentSubscribed {
            course: course.to_owned(),
            student: format!("{course}-first"),
        })),
        stored(CourseEvent::Subscribed(StudentSubscribed {
            course: course.to_owned(),
            student: format!("{course}-second"),
        })),
    ];
    store
        .append(
            &format!("Course-{course}"),
            "Course",
            ExpectedVersion::NoStream,
            events,
        )
        .await
        .expect("a course");
}

/// Which side runs the commands.
#[derive(Clone, Copy)]
enum Contender {
    Aggregate,
    Decision,
}

impl Contender {
    fn name(self) -> &'static str {
        match self {
            Self::Aggregate => "aggregate",
            Self::Decision => "decision",
        }
    }
}

/// Runs `iterations` commands, `deciders` at once, each on a fresh course seeded first
/// (untimed); the time of the commands alone.
async fn timed<S: DecisionStore + Clone + 'static>(
    store: &S,
    contender: Contender,
    deciders: u64,
    iterations: u64,
    next: &AtomicU64,
) -> Duration {
    let first = next.fetch_add(iterations, Ordering::Relaxed);
    let courses: Vec<String> = (first..first + iterations)
        .map(|n| format!("course-{n}"))
        .collect();
    for course in &courses {
        seed_course(store, course).await;
    }
    let courses = Arc::new(courses);
    let repository = Arc::new(Repository::<Course, _>::new(store.clone()));
    let decisions = Arc::new(Decisions::new(store.clone()));
    let started = Instant::now();
    let tasks: Vec<_> = (0..deciders)
        .map(|decider| {
            let (courses, repository, decisions) = (
                Arc::clone(&courses),
                Arc::clone(&repository),
                Arc::clone(&decisions),
            );
            tokio::spawn(async move {
                for course in courses
                    .iter()
                    .skip(decider as usize)
                    .step_by(deciders as usize)
                {
                    let student = format!("{course}-new");
                    match contender {
                        Contender::Aggregate => {
                            repository
                                .execute_with(
                                    Subscribe {
                                        course: course.clone(),
                                        student,
                                    },
                                    CommandContext::new(),
                                )
                                .await
                                .expect("subscribed");
                        }
                        Contender::Decision => {
                            decisions
                                .execute(
                                    SubscribeStudent {
                                        subscription: format!("{course}-new"),
                                        course: course.clone(),
                                        student,
                                    },
                                    CommandContext::new(),
                                )
                                .await
                                .expect("subscribed");
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a decider");
    }
    started.elapsed()
}

/// One group: both contenders, 1 and 8 deciders, on two stores of `size` events each.
fn group<S, F>(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    backend: &str,
    size: u64,
    open: F,
) where
    S: DecisionStore + Clone + 'static,
    F: Fn(&str) -> S,
{
    let stores: Vec<(Contender, S)> = [Contender::Aggregate, Contender::Decision]
        .into_iter()
        .map(|contender| {
            let store = open(contender.name());
            runtime.block_on(seed_background(&store, size));
            (contender, store)
        })
        .collect();
    check(runtime, &stores);
    let next = AtomicU64::new(0);
    let mut group = c.benchmark_group(format!("decide/{backend}/{}", size_name(size)));
    group
        .throughput(Throughput::Elements(1))
        .sample_size(20)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(6));
    for deciders in [1, 8] {
        for (contender, store) in &stores {
            group.bench_function(format!("{}/{deciders}", contender.name()), |b| {
                b.iter_custom(|iterations| {
                    // At least one command per decider, counted as one iteration each.
                    let iterations = iterations.max(deciders);
                    runtime.block_on(timed(store, *contender, deciders, iterations, &next))
                });
            });
        }
    }
    group.finish();
}

/// Before timing: both sides record the same event, with the same tags, and the
/// decision refuses a full course, as the aggregate does.
fn check<S: DecisionStore + Clone + 'static>(
    runtime: &tokio::runtime::Runtime,
    stores: &[(Contender, S)],
) {
    let next = AtomicU64::new(1_000_000_000);
    for (contender, store) in stores {
        runtime.block_on(async {
            timed(store, *contender, 1, 1, &next).await;
            let head = store.head().await.expect("a head").expect("events");
            let last = store
                .read_all(head.position - 1, 1)
                .await
                .expect("the last event");
            assert_eq!(last[0].name, "StudentSubscribed", "{}", contender.name());
            assert_eq!(
                last[0].tags,
                [
                    Tag::new(
                        "course",
                        format!("course-{}", next.load(Ordering::Relaxed) - 1)
                    ),
                    Tag::new(
                        "student",
                        format!("course-{}-new", next.load(Ordering::Relaxed) - 1)
                    ),
                ],
                "{}",
                contender.name()
            );
        });
    }
}

fn size_name(size: u64) -> String {
    match size {
        size if size % 1_000_000 == 0 => format!("{}M", size / 1_000_000),
        size if size % 1_000 == 0 => format!("{}k", size / 1_000),
        size => size.to_string(),
    }
}

/// `10k`, `1M`, `250000`: a size.
fn parse_size(text: &str) -> u64 {
    let text = text.trim().to_ascii_lowercase();
    let (digits, factor) = if let Some(digits) = text.strip_suffix('k') {
        (digits, 1_000)
    } else if let Some(digits) = text.strip_suffix('m') {
        (digits, 1_000_000)
    } else {
        (text.as_str(), 1)
    };
    digits
        .parse::<u64>()
        .unwrap_or_else(|_| panic!("a size like 10k, 1M or 250000, not `{text}`"))
        * factor
}

fn benches(c: &mut Criterion) {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not.
    let bench = std::env::args().any(|arg| arg == "--bench");
    let sizes: Vec<u64> = std::env::var("DECIDE_SIZES")
        .unwrap_or_else(|_| (if bench { "10k,1M" } else { "1k" }).to_owned())
        .split(',')
        .map(parse_size)
        .collect();
    let backends = std::env::var("DECIDE_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    for size in sizes {
        if backends.contains("sqlite") {
            group(c, &runtime, "sqlite", size, |name| {
                let path = dir.path().join(format!("{name}-{size}.db"));
                runtime.block_on(SqliteStore::open(&path)).expect("a store")
            });
        }
        #[cfg(feature = "postgres")]
        if backends.contains("postgres")
            && let Some(url) = pg::postgres_url("decide")
        {
            group(c, &runtime, "postgres", size, |name| {
                let schema = format!("bench_decide_{name}_{size}");
                runtime.block_on(async {
                    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                        .await
                        .expect("connect");
                    tokio::spawn(connection);
                    client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                        .await
                        .expect("a fresh schema");
                    factum::store::PostgresStore::builder(url.clone())
                        .schema(&schema)
                        .pool_size(8)
                        .connect()
                        .await
                        .expect("a store")
                })
            });
        }
    }
}

#[cfg(feature = "postgres")]
#[path = "shared/pg.rs"]
#[allow(dead_code)]
mod pg;

criterion_group! {
    name = decide;
    // The figures go to BENCHMARKS.md; plotting a group of custom-timed iterations
    // fails without a font here.
    config = Criterion::default().without_plots();
    targets = benches
}
criterion_main!(decide);
