//! The examples of the dcb.events specification as decisions across entities, each on
//! the memory store, SQLite and PostgreSQL: course subscriptions (a course's capacity
//! and a student's course limit), a user name unique across users and free again once
//! released, gapless invoice numbers (a model keyed by no tag), and opt-in tokens used
//! once. Each rule is also raced: deciders running at once never break it.
//!
//! Needs a PostgreSQL server: `eval "$(scripts/postgres.sh start)"`.

mod postgres_common;

use std::sync::Arc;

use factum::decision::{Decide, Decisions, Keyed};
use factum::prelude::*;
use factum::store::decision::DecisionStore;
use factum::store::{PostgresStore, SqliteStore};

// ---------------------------------------------------------------------------------------
// Course subscriptions

#[event(name = "CourseDefined", version = 1)]
#[derive(Debug)]
pub struct CourseDefined {
    #[tag]
    pub course: String,
    pub capacity: u32,
}

#[event(name = "CourseCapacityChanged", version = 1)]
#[derive(Debug)]
pub struct CourseCapacityChanged {
    #[tag]
    pub course: String,
    pub capacity: u32,
}

#[event(name = "StudentSubscribed", version = 1)]
#[derive(Debug)]
pub struct StudentSubscribed {
    #[tag]
    pub course: String,
    #[tag]
    pub student: String,
}

#[derive(Events, Debug)]
pub enum CourseEvents {
    CourseDefined(CourseDefined),
    CourseCapacityChanged(CourseCapacityChanged),
    StudentSubscribed(StudentSubscribed),
}

/// Whether the course exists, its capacity and its seats taken.
#[derive(Default)]
pub struct Course {
    defined: bool,
    capacity: u32,
    taken: u32,
}

#[decision_model(tags(course))]
impl Course {
    #[apply]
    fn defined(&mut self, event: &CourseDefined) {
        self.defined = true;
        self.capacity = event.capacity;
    }

    #[apply]
    fn capacity_changed(&mut self, event: &CourseCapacityChanged) {
        self.capacity = event.capacity;
    }

    #[apply]
    fn subscribed(&mut self, _: &StudentSubscribed) {
        self.taken += 1;
    }
}

/// The courses a student took.
#[derive(Default)]
pub struct StudentCourses(u32);

#[decision_model(tags(student))]
impl StudentCourses {
    #[apply]
    fn subscribed(&mut self, _: &StudentSubscribed) {
        self.0 += 1;
    }
}

/// Whether the student took this course already.
#[derive(Default)]
pub struct Enrolment(bool);

#[decision_model(tags(course, student))]
impl Enrolment {
    #[apply]
    fn subscribed(&mut self, _: &StudentSubscribed) {
        self.0 = true;
    }
}

/// The most courses a student takes.
const COURSE_LIMIT: u32 = 3;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CourseRefusal {
    #[error("course {0} exists already")]
    CourseExists(String),
    #[error("course {0} does not exist")]
    NoSuchCourse(String),
    #[error("course {0} is full")]
    CourseFull(String),
    #[error("student {0} takes {COURSE_LIMIT} courses already")]
    TooManyCourses(String),
    #[error("student {0} took course {1} already")]
    AlreadySubscribed(String, String),
}

#[command(name = "DefineCourse")]
#[derive(Clone)]
pub struct DefineCourse {
    #[aggregate_id]
    pub course: String,
    pub capacity: u32,
}

impl Decide for DefineCourse {
    const STREAM_TYPE: &'static str = "Course";
    type Models = (Course,);
    type Events = CourseEvents;
    type Error = CourseRefusal;

    fn models(&self) -> (Keyed<Course>,) {
        (Course::keyed(&self.course),)
    }

    fn decide(
        &self,
        (course,): (Course,),
        _: &CommandContext,
    ) -> Result<Vec<CourseEvents>, CourseRefusal> {
        if course.defined {
            return Err(CourseRefusal::CourseExists(self.course.clone()));
        }
        Ok(vec![
            CourseDefined {
                course: self.course.clone(),
                capacity: self.capacity,
            }
            .into(),
        ])
    }
}

#[command(name = "ChangeCourseCapacity")]
#[derive(Clone)]
pub struct ChangeCourseCapacity {
    #[aggregate_id]
    pub course: String,
    pub capacity: u32,
}

impl Decide for ChangeCourseCapacity {
    const STREAM_TYPE: &'static str = "Course";
    type Models = (Course,);
    type Events = CourseEvents;
    type Error = CourseRefusal;

    fn models(&self) -> (Keyed<Course>,) {
        (Course::keyed(&self.course),)
    }

    fn decide(
        &self,
        (course,): (Course,),
        _: &CommandContext,
    ) -> Result<Vec<CourseEvents>, CourseRefusal> {
        if !course.defined {
            return Err(CourseRefusal::NoSuchCourse(self.course.clone()));
        }
        Ok(vec![
            CourseCapacityChanged {
                course: self.course.clone(),
                capacity: self.capacity,
            }
            .into(),
        ])
    }
}

#[command(name = "SubscribeStudent")]
#[derive(Clone)]
pub struct SubscribeStudent {
    /// The subscription's stream: one per course and student.
    #[aggregate_id]
    pub subscription: String,
    pub course: String,
    pub student: String,
}

fn subscribe(course: &str, student: &str) -> SubscribeStudent {
    SubscribeStudent {
        subscription: format!("{course}-{student}"),
        course: course.to_owned(),
        student: student.to_owned(),
    }
}

impl Decide for SubscribeStudent {
    const STREAM_TYPE: &'static str = "Subscription";
    type Models = (Course, StudentCourses, Enrolment);
    type Events = CourseEvents;
    type Error = CourseRefusal;

    fn models(&self) -> (Keyed<Course>, Keyed<StudentCourses>, Keyed<Enrolment>) {
        (
            Course::keyed(&self.course),
            StudentCourses::keyed(&self.student),
            Enrolment::keyed(&self.course, &self.student),
        )
    }

    fn decide(
        &self,
        (course, courses, enrolment): (Course, StudentCourses, Enrolment),
        _: &CommandContext,
    ) -> Result<Vec<CourseEvents>, CourseRefusal> {
        if !course.defined {
            return Err(CourseRefusal::NoSuchCourse(self.course.clone()));
        }
        if enrolment.0 {
            return Err(CourseRefusal::AlreadySubscribed(
                self.student.clone(),
                self.course.clone(),
            ));
        }
        if course.taken >= course.capacity {
            return Err(CourseRefusal::CourseFull(self.course.clone()));
        }
        if courses.0 >= COURSE_LIMIT {
            return Err(CourseRefusal::TooManyCourses(self.student.clone()));
        }
        Ok(vec![
            StudentSubscribed {
                course: self.course.clone(),
                student: self.student.clone(),
            }
            .into(),
        ])
    }
}

/// How many racers' decisions were recorded; each other one must have lost as expected:
/// the domain's refusal `lost` accepts (after a re-decision saw the winner), or the
/// condition still failing after its last attempt.
async fn winners<T, E: std::fmt::Debug>(
    racers: Vec<tokio::task::JoinHandle<Result<T, RepositoryError<E>>>>,
    lost: impl Fn(&E) -> bool,
) -> usize {
    let mut won = 0;
    for racer in racers {
        match racer.await.expect("a racer") {
            Ok(_) => won += 1,
            Err(RepositoryError::Rejected(refusal)) if lost(&refusal) => {}
            Err(RepositoryError::Store(StoreError::ConditionFailed { .. })) => {}
            Err(other) => panic!("a racer failed: {other:?}"),
        }
    }
    won
}

fn refusal<T: std::fmt::Debug, E: std::fmt::Debug>(result: Result<T, RepositoryError<E>>) -> E {
    match result {
        Err(RepositoryError::Rejected(refusal)) => refusal,
        other => panic!("expected the domain's refusal, got {other:?}"),
    }
}

async fn course_subscriptions<S: DecisionStore + Clone + 'static>(store: S) {
    let decisions = Arc::new(Decisions::new(store));
    let run = |command| {
        let decisions = Arc::clone(&decisions);
        async move { decisions.execute(command, CommandContext::new()).await }
    };
    assert_eq!(
        refusal(run(subscribe("c1", "s1")).await),
        CourseRefusal::NoSuchCourse("c1".into())
    );
    for course in ["c1", "c2", "c3", "c4"] {
        decisions
            .execute(
                DefineCourse {
                    course: course.into(),
                    capacity: 2,
                },
                CommandContext::new(),
            )
            .await
            .expect("a course");
    }
    assert_eq!(
        refusal(
            decisions
                .execute(
                    DefineCourse {
                        course: "c1".into(),
                        capacity: 9,
                    },
                    CommandContext::new(),
                )
                .await
        ),
        CourseRefusal::CourseExists("c1".into())
    );
    let decided = run(subscribe("c1", "s1")).await.expect("a seat");
    assert_eq!(decided.stream_id, "Subscription-c1-s1");
    assert_eq!(decided.attempts, 1);
    assert_eq!(
        refusal(run(subscribe("c1", "s1")).await),
        CourseRefusal::AlreadySubscribed("s1".into(), "c1".into())
    );
    run(subscribe("c1", "s2")).await.expect("the last seat");
    assert_eq!(
        refusal(run(subscribe("c1", "s3")).await),
        CourseRefusal::CourseFull("c1".into())
    );
    // More capacity: a seat again.
    decisions
        .execute(
            ChangeCourseCapacity {
                course: "c1".into(),
                capacity: 3,
            },
            CommandContext::new(),
        )
        .await
        .expect("more capacity");
    run(subscribe("c1", "s3")).await.expect("the new seat");
    // The student's limit, across courses.
    for course in ["c2", "c3"] {
        run(subscribe(course, "s1")).await.expect("another course");
    }
    assert_eq!(
        refusal(run(subscribe("c4", "s1")).await),
        CourseRefusal::TooManyCourses("s1".into())
    );

    // Eight students race for course c4's two seats, with re-decisions enough for all:
    // exactly two get one, the others the course's refusal.
    let racers: Vec<_> = (10..18)
        .map(|student| tokio::spawn(run(subscribe("c4", &format!("s{student}")))))
        .collect();
    let seated = winners(racers, |refusal| {
        matches!(refusal, CourseRefusal::CourseFull(_))
    })
    .await;
    assert_eq!(seated, 2, "the course's capacity holds");
}

// ---------------------------------------------------------------------------------------
// Unique user names, free again once released

#[event(name = "UsernameClaimed", version = 1)]
#[derive(Debug)]
pub struct UsernameClaimed {
    pub user: String,
    #[tag]
    pub username: String,
}

#[event(name = "UsernameReleased", version = 1)]
#[derive(Debug)]
pub struct UsernameReleased {
    pub user: String,
    #[tag]
    pub username: String,
}

#[derive(Events, Debug)]
pub enum UserEvents {
    UsernameClaimed(UsernameClaimed),
    UsernameReleased(UsernameReleased),
}

/// Who holds a user name, if anyone.
#[derive(Default)]
pub struct Username {
    holder: Option<String>,
}

#[decision_model(tags(username))]
impl Username {
    #[apply]
    fn claimed(&mut self, event: &UsernameClaimed) {
        self.holder = Some(event.user.clone());
    }

    #[apply]
    fn released(&mut self, _: &UsernameReleased) {
        self.holder = None;
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UsernameRefusal {
    #[error("the user name {0} is taken")]
    Taken(String),
    #[error("{0} does not hold the user name {1}")]
    NotHeld(String, String),
}

#[command(name = "RegisterUser")]
#[derive(Clone)]
pub struct RegisterUser {
    #[aggregate_id]
    pub user: String,
    pub username: String,
}

impl Decide for RegisterUser {
    const STREAM_TYPE: &'static str = "User";
    type Models = (Username,);
    type Events = UserEvents;
    type Error = UsernameRefusal;

    fn models(&self) -> (Keyed<Username>,) {
        (Username::keyed(&self.username),)
    }

    fn decide(
        &self,
        (name,): (Username,),
        _: &CommandContext,
    ) -> Result<Vec<UserEvents>, UsernameRefusal> {
        if name.holder.is_some() {
            return Err(UsernameRefusal::Taken(self.username.clone()));
        }
        Ok(vec![
            UsernameClaimed {
                user: self.user.clone(),
                username: self.username.clone(),
            }
            .into(),
        ])
    }
}

#[command(name = "ChangeUsername")]
#[derive(Clone)]
pub struct ChangeUsername {
    #[aggregate_id]
    pub user: String,
    pub from: String,
    pub to: String,
}

impl Decide for ChangeUsername {
    const STREAM_TYPE: &'static str = "User";
    type Models = (Username, Username);
    type Events = UserEvents;
    type Error = UsernameRefusal;

    fn models(&self) -> (Keyed<Username>, Keyed<Username>) {
        (Username::keyed(&self.from), Username::keyed(&self.to))
    }

    fn decide(
        &self,
        (from, to): (Username, Username),
        _: &CommandContext,
    ) -> Result<Vec<UserEvents>, UsernameRefusal> {
        if from.holder.as_deref() != Some(self.user.as_str()) {
            return Err(UsernameRefusal::NotHeld(
                self.user.clone(),
                self.from.clone(),
            ));
        }
        if to.holder.is_some() {
            return Err(UsernameRefusal::Taken(self.to.clone()));
        }
        Ok(vec![
            UsernameReleased {
                user: self.user.clone(),
                username: self.from.clone(),
            }
            .into(),
            UsernameClaimed {
                user: self.user.clone(),
                username: self.to.clone(),
            }
            .into(),
        ])
    }
}

async fn unique_usernames<S: DecisionStore + Clone + 'static>(store: S) {
    let decisions = Arc::new(Decisions::new(store));
    let register = |user: &str, username: &str| {
        let decisions = Arc::clone(&decisions);
        let command = RegisterUser {
            user: user.into(),
            username: username.into(),
        };
        async move { decisions.execute(command, CommandContext::new()).await }
    };
    register("u1", "ada").await.expect("a free name");
    assert_eq!(
        refusal(register("u2", "ada").await),
        UsernameRefusal::Taken("ada".into())
    );
    let change = |user: &str, from: &str, to: &str| ChangeUsername {
        user: user.into(),
        from: from.into(),
        to: to.into(),
    };
    assert_eq!(
        refusal(
            decisions
                .execute(change("u2", "ada", "grace"), CommandContext::new())
                .await
        ),
        UsernameRefusal::NotHeld("u2".into(), "ada".into())
    );
    let changed = decisions
        .execute(change("u1", "ada", "lovelace"), CommandContext::new())
        .await
        .expect("a change");
    assert_eq!(changed.events.len(), 2, "released and claimed at once");
    // Released: free for another.
    register("u2", "ada").await.expect("a released name");
    assert_eq!(
        refusal(register("u3", "lovelace").await),
        UsernameRefusal::Taken("lovelace".into())
    );

    // Eight users race for one name: one gets it.
    let racers: Vec<_> = (10..18)
        .map(|user| tokio::spawn(register(&format!("u{user}"), "hopper")))
        .collect();
    let holders = winners(racers, |refusal| {
        matches!(refusal, UsernameRefusal::Taken(_))
    })
    .await;
    assert_eq!(holders, 1, "a name has one holder");
}

// ---------------------------------------------------------------------------------------
// Gapless invoice numbers: a model keyed by no tag

#[event(name = "InvoiceCreated", version = 1)]
#[derive(Debug)]
pub struct InvoiceCreated {
    pub invoice: String,
    pub number: u64,
}

#[derive(Events, Debug)]
pub enum InvoiceEvents {
    InvoiceCreated(InvoiceCreated),
}

/// The last invoice number given.
#[derive(Default)]
pub struct LastInvoiceNumber(u64);

#[decision_model]
impl LastInvoiceNumber {
    #[apply]
    fn created(&mut self, event: &InvoiceCreated) {
        self.0 = self.0.max(event.number);
    }
}

#[derive(Debug, thiserror::Error)]
#[error("never refused")]
pub struct NeverRefused;

#[command(name = "CreateInvoice")]
#[derive(Clone)]
pub struct CreateInvoice {
    #[aggregate_id]
    pub invoice: String,
}

impl Decide for CreateInvoice {
    const STREAM_TYPE: &'static str = "Invoice";
    type Models = (LastInvoiceNumber,);
    type Events = InvoiceEvents;
    type Error = NeverRefused;

    fn models(&self) -> (Keyed<LastInvoiceNumber>,) {
        (LastInvoiceNumber::keyed(),)
    }

    fn decide(
        &self,
        (last,): (LastInvoiceNumber,),
        _: &CommandContext,
    ) -> Result<Vec<InvoiceEvents>, NeverRefused> {
        Ok(vec![
            InvoiceCreated {
                invoice: self.invoice.clone(),
                number: last.0 + 1,
            }
            .into(),
        ])
    }
}

async fn gapless_invoice_numbers<S: DecisionStore + Clone + 'static>(store: S) {
    // Eight at once, each deciding up to twenty times: every number once, none skipped.
    let decisions = Arc::new(Decisions::new(store.clone()).with_attempts(20));
    let creators: Vec<_> = (1..=8)
        .map(|invoice| {
            let decisions = Arc::clone(&decisions);
            tokio::spawn(async move {
                decisions
                    .execute(
                        CreateInvoice {
                            invoice: format!("i{invoice}"),
                        },
                        CommandContext::new(),
                    )
                    .await
            })
        })
        .collect();
    let mut numbers = Vec::new();
    for creator in creators {
        let decided = creator.await.expect("a creator").expect("an invoice");
        let [InvoiceEvents::InvoiceCreated(created)] = decided.events.as_slice() else {
            panic!("one invoice created");
        };
        numbers.push(created.number);
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=8).collect::<Vec<_>>(), "gapless, each once");
    // The next one follows on.
    let next = decisions
        .execute(
            CreateInvoice {
                invoice: "i9".into(),
            },
            CommandContext::new(),
        )
        .await
        .expect("an invoice");
    assert!(matches!(
        next.events.as_slice(),
        [InvoiceEvents::InvoiceCreated(InvoiceCreated {
            number: 9,
            ..
        })]
    ));
}

// ---------------------------------------------------------------------------------------
// Opt-in tokens, used once

#[event(name = "SignUpInitiated", version = 1)]
#[derive(Debug)]
pub struct SignUpInitiated {
    pub email: String,
    #[tag]
    pub token: String,
}

#[event(name = "SignUpConfirmed", version = 1)]
#[derive(Debug)]
pub struct SignUpConfirmed {
    pub email: String,
    #[tag]
    pub token: String,
}

#[derive(Events, Debug)]
pub enum SignUpEvents {
    SignUpInitiated(SignUpInitiated),
    SignUpConfirmed(SignUpConfirmed),
}

/// The e-mail a token was sent to, and whether it was used.
#[derive(Default)]
pub struct OptInToken {
    email: Option<String>,
    used: bool,
}

#[decision_model(tags(token))]
impl OptInToken {
    #[apply]
    fn initiated(&mut self, event: &SignUpInitiated) {
        self.email = Some(event.email.clone());
    }

    #[apply]
    fn confirmed(&mut self, _: &SignUpConfirmed) {
        self.used = true;
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    #[error("no sign-up has the token {0}")]
    Unknown(String),
    #[error("the token {0} was used already")]
    Used(String),
}

#[command(name = "InitiateSignUp")]
#[derive(Clone)]
pub struct InitiateSignUp {
    #[aggregate_id]
    pub token: String,
    pub email: String,
}

impl Decide for InitiateSignUp {
    const STREAM_TYPE: &'static str = "SignUp";
    type Models = (OptInToken,);
    type Events = SignUpEvents;
    type Error = TokenRefusal;

    fn models(&self) -> (Keyed<OptInToken>,) {
        (OptInToken::keyed(&self.token),)
    }

    fn decide(
        &self,
        (token,): (OptInToken,),
        _: &CommandContext,
    ) -> Result<Vec<SignUpEvents>, TokenRefusal> {
        if token.email.is_some() {
            return Err(TokenRefusal::Used(self.token.clone()));
        }
        Ok(vec![
            SignUpInitiated {
                email: self.email.clone(),
                token: self.token.clone(),
            }
            .into(),
        ])
    }
}

#[command(name = "ConfirmSignUp")]
#[derive(Clone)]
pub struct ConfirmSignUp {
    #[aggregate_id]
    pub token: String,
}

impl Decide for ConfirmSignUp {
    const STREAM_TYPE: &'static str = "SignUp";
    type Models = (OptInToken,);
    type Events = SignUpEvents;
    type Error = TokenRefusal;

    fn models(&self) -> (Keyed<OptInToken>,) {
        (OptInToken::keyed(&self.token),)
    }

    fn decide(
        &self,
        (token,): (OptInToken,),
        _: &CommandContext,
    ) -> Result<Vec<SignUpEvents>, TokenRefusal> {
        let Some(email) = token.email else {
            return Err(TokenRefusal::Unknown(self.token.clone()));
        };
        if token.used {
            return Err(TokenRefusal::Used(self.token.clone()));
        }
        Ok(vec![
            SignUpConfirmed {
                email,
                token: self.token.clone(),
            }
            .into(),
        ])
    }
}

async fn opt_in_tokens<S: DecisionStore + Clone + 'static>(store: S) {
    let decisions = Arc::new(Decisions::new(store));
    let confirm = |token: &str| {
        let decisions = Arc::clone(&decisions);
        let command = ConfirmSignUp {
            token: token.into(),
        };
        async move { decisions.execute(command, CommandContext::new()).await }
    };
    assert_eq!(
        refusal(confirm("t1").await),
        TokenRefusal::Unknown("t1".into())
    );
    decisions
        .execute(
            InitiateSignUp {
                token: "t1".into(),
                email: "ada@example.org".into(),
            },
            CommandContext::new(),
        )
        .await
        .expect("a sign-up");
    // The same command again (its id): answered as executed before, not refused.
    let ctx = CommandContext::new();
    let first = decisions
        .execute(ConfirmSignUp { token: "t1".into() }, ctx.clone())
        .await
        .expect("confirmed");
    assert_eq!(first.attempts, 1);
    let repeated = decisions
        .execute(ConfirmSignUp { token: "t1".into() }, ctx)
        .await
        .expect("a repeat is answered from its record");
    assert_eq!(repeated.attempts, 0, "executed before");
    assert_eq!(repeated.event_ids, first.event_ids);
    assert_eq!(
        refusal(confirm("t1").await),
        TokenRefusal::Used("t1".into())
    );

    // Eight confirmations of one fresh token at once: one uses it.
    decisions
        .execute(
            InitiateSignUp {
                token: "t2".into(),
                email: "grace@example.org".into(),
            },
            CommandContext::new(),
        )
        .await
        .expect("a sign-up");
    let racers: Vec<_> = (0..8).map(|_| tokio::spawn(confirm("t2"))).collect();
    let used = winners(racers, |refusal| matches!(refusal, TokenRefusal::Used(_))).await;
    assert_eq!(used, 1, "a token is used once");
}

// ---------------------------------------------------------------------------------------
// Every example on every backend

async fn every_example<S, F, Fut>(mut store: F)
where
    S: DecisionStore + Clone + 'static,
    F: FnMut(&'static str) -> Fut,
    Fut: Future<Output = S>,
{
    course_subscriptions(store("courses").await).await;
    unique_usernames(store("usernames").await).await;
    gapless_invoice_numbers(store("invoices").await).await;
    opt_in_tokens(store("tokens").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_hold_on_the_memory_store() {
    every_example(|_| async { MemoryStore::new() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_hold_on_sqlite() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().to_owned();
    every_example(move |name| {
        let path = path.join(format!("{name}.db"));
        async move { SqliteStore::open(&path).await.expect("open") }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_hold_on_postgres() {
    every_example(|name| async move {
        let schema = format!("t_decision_examples_{name}");
        postgres_common::drop_schema(&schema).await;
        PostgresStore::builder(postgres_common::url())
            .schema(&schema)
            .pool_size(8)
            .connect()
            .await
            .expect("connect the store")
    })
    .await;
}
