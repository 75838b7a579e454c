//! The task's invariants, given / when / then without a store.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use factum::testing::AggregateFixture;
use factum_example_care_tasks::{
    AssignTask, CompleteTask, CreateTask, Task, TaskAssigned, TaskCompleted, TaskCreated,
    TaskError, TaskEvent,
};

fn at(hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 10, hour, minute, 0)
        .single()
        .expect("a valid time")
}

fn created() -> TaskCreated {
    TaskCreated {
        title: "Morning medication round".into(),
        care_recipient: "Mrs. Jansen (room 12)".into(),
        due: at(10, 0),
        created_by: "dana".into(),
        created_at: at(8, 0),
    }
}

fn assigned(member: &str, previous: Option<&str>, time: DateTime<Utc>) -> TaskAssigned {
    TaskAssigned {
        member: member.into(),
        previous: previous.map(Into::into),
        assigned_at: time,
    }
}

fn completed(member: &str) -> TaskCompleted {
    TaskCompleted {
        completed_by: member.into(),
        completed_at: at(9, 0),
        note: None,
    }
}

fn assign(member: &str, time: DateTime<Utc>) -> AssignTask {
    AssignTask {
        task_id: "T-1".into(),
        member: member.into(),
        at: time,
    }
}

fn complete(member: &str, time: DateTime<Utc>) -> CompleteTask {
    CompleteTask {
        task_id: "T-1".into(),
        completed_by: member.into(),
        at: time,
        note: None,
    }
}

fn create(title: &str, created_at: DateTime<Utc>, due: DateTime<Utc>) -> CreateTask {
    CreateTask {
        task_id: "T-1".into(),
        title: title.into(),
        care_recipient: "Mrs. Jansen (room 12)".into(),
        due,
        at: created_at,
    }
}

/// The coordinator creating tasks.
fn dana() -> factum::context::CommandContext {
    factum::context::CommandContext::new().actor(factum::context::Actor::new(
        factum_example_care_tasks::COORDINATOR,
        "dana",
    ))
}

#[test]
fn the_creator_is_the_commands_actor() {
    AggregateFixture::<Task>::new()
        .when(create("Morning medication round", at(8, 0), at(10, 0)))
        .then_expect_error(TaskError::NoCreator);
    let erin = factum::context::CommandContext::new().actor(factum::context::Actor::new(
        factum_example_care_tasks::COORDINATOR,
        "erin",
    ));
    AggregateFixture::<Task>::new()
        .when_with(
            create("Morning medication round", at(8, 0), at(10, 0)),
            erin,
        )
        .then_expect_events([TaskCreated {
            created_by: "erin".into(),
            ..created()
        }]);
}

#[test]
fn a_task_is_created_with_a_title_and_a_due_time_not_before_creation() {
    AggregateFixture::<Task>::new()
        .when_with(
            create("Morning medication round", at(8, 0), at(10, 0)),
            dana(),
        )
        .then_expect_events([created()]);
    AggregateFixture::<Task>::new()
        .when_with(create("  ", at(8, 0), at(10, 0)), dana())
        .then_expect_error(TaskError::BlankTitle);
    AggregateFixture::<Task>::new()
        .when_with(create("Late", at(8, 0), at(7, 0)), dana())
        .then_expect_error(TaskError::DueBeforeCreation {
            due: at(7, 0),
            created_at: at(8, 0),
        });
    AggregateFixture::<Task>::new()
        .given([created()])
        .when_with(create("Again", at(8, 0), at(10, 0)), dana())
        .then_expect_error(TaskError::AlreadyCreated);
}

#[test]
fn assigning_records_who_had_the_task_before() {
    AggregateFixture::<Task>::new()
        .given([created()])
        .when(assign("amira", at(8, 5)))
        .then_expect_events([assigned("amira", None, at(8, 5))]);
    AggregateFixture::<Task>::new()
        .given((created(), assigned("ben", None, at(8, 5))))
        .when(assign("amira", at(8, 30)))
        .then_expect_events([assigned("amira", Some("ben"), at(8, 30))]);
}

#[test]
fn assigning_to_the_current_assignee_records_nothing() {
    AggregateFixture::<Task>::new()
        .given((created(), assigned("amira", None, at(8, 5))))
        .when(assign("amira", at(8, 30)))
        .then_expect_no_events();
}

#[test]
fn nothing_happens_to_a_task_before_it_exists() {
    AggregateFixture::<Task>::new()
        .when(assign("amira", at(8, 5)))
        .then_expect_error(TaskError::NotCreated);
    AggregateFixture::<Task>::new()
        .when(complete("amira", at(8, 5)))
        .then_expect_error(TaskError::NotCreated);
    AggregateFixture::<Task>::new()
        .given([created()])
        .when(assign("amira", at(7, 59)))
        .then_expect_error(TaskError::BeforeCreation {
            at: at(7, 59),
            created_at: at(8, 0),
        });
    AggregateFixture::<Task>::new()
        .given((created(), assigned("amira", None, at(8, 5))))
        .when(complete("amira", at(8, 0) - TimeDelta::seconds(1)))
        .then_expect_error(TaskError::BeforeCreation {
            at: at(8, 0) - TimeDelta::seconds(1),
            created_at: at(8, 0),
        });
}

#[test]
fn only_the_assignee_completes_an_assigned_task() {
    AggregateFixture::<Task>::new()
        .given([created()])
        .when(complete("amira", at(9, 0)))
        .then_expect_error(TaskError::NotAssigned);
    AggregateFixture::<Task>::new()
        .given((created(), assigned("ben", None, at(8, 5))))
        .when(complete("amira", at(9, 0)))
        .then_expect_error(TaskError::NotTheAssignee {
            member: "amira".into(),
            assignee: "ben".into(),
        });
    AggregateFixture::<Task>::new()
        .given((created(), assigned("amira", None, at(8, 5))))
        .when(complete("amira", at(9, 0)))
        .then_expect_events([completed("amira")]);
}

#[test]
fn a_completed_task_can_be_neither_completed_again_nor_reassigned() {
    let done = || {
        [
            TaskEvent::from(created()),
            assigned("amira", None, at(8, 5)).into(),
            completed("amira").into(),
        ]
    };
    AggregateFixture::<Task>::new()
        .given(done())
        .when(complete("amira", at(9, 30)))
        .then_expect_error(TaskError::AlreadyCompleted("amira".into()));
    AggregateFixture::<Task>::new()
        .given(done())
        .when(assign("ben", at(9, 30)))
        .then_expect_error(TaskError::AlreadyCompleted("amira".into()));
}

/// The task policy: coordinators create and assign; the assigned member (as themselves)
/// or the task's coordinator completes; nobody else, and nobody without an actor.
mod policy {
    use factum::context::{Actor, CommandContext};
    use factum_example_care_tasks::{CARE_TEAM, COORDINATOR, policy};

    use super::*;

    fn as_actor(kind: &str, id: &str) -> CommandContext {
        CommandContext::new().actor(Actor::new(kind, id))
    }

    fn fixture() -> AggregateFixture<Task> {
        AggregateFixture::<Task>::new()
            .with_policy(policy())
            .given((created(), assigned("amira", None, at(8, 5))))
    }

    const ONLY_THEM: &str = "only the assigned member or the task's coordinator may complete it";

    #[test]
    fn the_assigned_member_and_the_tasks_coordinator_complete_it() {
        fixture()
            .when_with(complete("amira", at(9, 0)), as_actor(CARE_TEAM, "amira"))
            .then_expect_events([completed("amira")]);
        fixture()
            .when_with(complete("amira", at(9, 0)), as_actor(COORDINATOR, "dana"))
            .then_expect_events([completed("amira")]);
    }

    #[test]
    fn anyone_else_is_denied_before_the_task_decides() {
        for stranger in [
            as_actor("family", "fay"),
            as_actor(CARE_TEAM, "ben"),
            as_actor(COORDINATOR, "erin"),
        ] {
            fixture()
                .when_with(complete("amira", at(9, 0)), stranger)
                .then_expect_denial(ONLY_THEM);
        }
        // A member completing in another's name.
        fixture()
            .when_with(complete("ben", at(9, 0)), as_actor(CARE_TEAM, "amira"))
            .then_expect_denial(ONLY_THEM);
        fixture()
            .when(complete("amira", at(9, 0)))
            .then_expect_denial("a task command needs an actor");
        fixture()
            .when_with(assign("ben", at(8, 30)), as_actor(CARE_TEAM, "amira"))
            .then_expect_denial("only a care coordinator creates and assigns tasks");
    }
}
