//! The command context reaches the decision, and the events record exactly that context:
//! the actor (with its kind), the tenant, the correlation and the command's time.

use chrono::TimeZone;
use factum::prelude::*;

#[event(name = "TaskCreated")]
#[derive(Debug, Clone, PartialEq)]
pub struct TaskCreated {
    pub coordinator: String,
    pub due: chrono::DateTime<chrono::Utc>,
}

#[event(name = "TaskCompleted")]
#[derive(Debug, Clone, PartialEq)]
pub struct TaskCompleted {
    pub by: String,
}

#[derive(Events, Debug, Clone, PartialEq)]
pub enum TaskEvent {
    Created(TaskCreated),
    Completed(TaskCompleted),
}

#[command]
pub struct CreateTask {
    #[aggregate_id]
    pub task_id: String,
    pub hours: i64,
}

#[command]
pub struct CompleteTask {
    #[aggregate_id]
    pub task_id: String,
}

#[command]
pub struct Touch {
    #[aggregate_id]
    pub task_id: String,
}

#[derive(Commands)]
pub enum TaskCommand {
    Create(CreateTask),
    Complete(CompleteTask),
    Touch(Touch),
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum TaskError {
    #[error("only a care coordinator may create a task")]
    NotACoordinator,
    #[error("only the coordinator `{0}` may complete the task")]
    NotTheCoordinator(String),
    #[error("the task does not exist")]
    Missing,
}

/// Who may complete tasks besides their coordinator.
pub struct Supervisors(Vec<String>);

#[derive(Debug, Default)]
pub struct Task {
    coordinator: Option<String>,
    done: bool,
}

#[aggregate(events = TaskEvent, commands = TaskCommand, error = TaskError, services = Supervisors)]
impl Task {
    /// Decides by the actor and the command's time.
    #[handle]
    fn create(&self, command: CreateTask, ctx: &CommandContext) -> Result<TaskCreated, TaskError> {
        let coordinator = ctx
            .actor_of("care_coordinator")
            .ok_or(TaskError::NotACoordinator)?;
        Ok(TaskCreated {
            coordinator: coordinator.id.clone(),
            due: ctx.now() + chrono::TimeDelta::hours(command.hours),
        })
    }

    /// The context after the services.
    #[handle]
    fn complete(
        &self,
        _: CompleteTask,
        supervisors: &Supervisors,
        ctx: &CommandContext,
    ) -> Result<TaskCompleted, TaskError> {
        let coordinator = self.coordinator.as_ref().ok_or(TaskError::Missing)?;
        let actor = ctx.actor.as_ref().map(|actor| actor.id.as_str());
        let allowed = actor == Some(coordinator.as_str())
            || actor.is_some_and(|id| supervisors.0.iter().any(|s| s == id));
        if !allowed {
            return Err(TaskError::NotTheCoordinator(coordinator.clone()));
        }
        Ok(TaskCompleted {
            by: actor.unwrap_or_default().to_owned(),
        })
    }

    /// The context before the services; records nothing.
    #[handle]
    fn touch(&self, _: Touch, _: &CommandContext, _: &Supervisors) -> Result<(), TaskError> {
        Ok(())
    }

    #[apply]
    fn created(&mut self, event: &TaskCreated) {
        self.coordinator = Some(event.coordinator.clone());
    }

    #[apply]
    fn completed(&mut self, _: &TaskCompleted) {
        self.done = true;
    }
}

fn repository(store: &MemoryStore) -> Repository<Task, MemoryStore> {
    Repository::with_services(store.clone(), Supervisors(vec!["head-nurse".into()]))
}

#[tokio::test]
async fn the_actor_decides_and_the_events_record_the_same_context() {
    let store = MemoryStore::new();
    let tasks = repository(&store);
    let issued = chrono::Utc.with_ymd_and_hms(2026, 3, 4, 9, 30, 0).unwrap();
    let correlation = factum::uuid::Uuid::now_v7();
    let ctx = CommandContext::new()
        .actor(Actor::new("care_coordinator", "CC456"))
        .tenant("clinic-7")
        .correlation_id(correlation)
        .at(issued);
    let created = tasks
        .execute_with(
            CreateTask {
                task_id: "t-1".into(),
                hours: 2,
            },
            ctx.clone(),
        )
        .await
        .unwrap();
    assert_eq!(
        created.events,
        [TaskEvent::Created(TaskCreated {
            coordinator: "CC456".into(),
            due: issued + chrono::TimeDelta::hours(2),
        })]
    );
    assert_eq!(created.command_id, ctx.command_id);

    let stored = store.read_all(0, 10).await.unwrap();
    let [event] = stored.as_slice() else {
        panic!("one event: {stored:?}");
    };
    assert_eq!(created.position, Some(event.position));
    assert_eq!(
        event.timestamp, issued,
        "the event happened at the command's time"
    );
    let metadata = &event.metadata;
    assert_eq!(
        metadata.issued_by(),
        Some(Actor::new("care_coordinator", "CC456"))
    );
    assert_eq!(
        (
            metadata.tenant.as_deref(),
            metadata.correlation_id,
            metadata.causation_id
        ),
        (Some("clinic-7"), Some(correlation), Some(ctx.command_id))
    );
}

#[tokio::test]
async fn another_actor_is_refused_by_the_handler_and_nothing_is_written() {
    let store = MemoryStore::new();
    let tasks = repository(&store);
    let coordinator = CommandContext::new().actor(Actor::new("care_coordinator", "CC456"));
    tasks
        .execute_with(
            CreateTask {
                task_id: "t-1".into(),
                hours: 1,
            },
            coordinator,
        )
        .await
        .unwrap();
    let mallory = CommandContext::new().actor(Actor::new("care_coordinator", "mallory"));
    let refused = tasks
        .execute_with(
            CompleteTask {
                task_id: "t-1".into(),
            },
            mallory,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, RepositoryError::Rejected(TaskError::NotTheCoordinator(id)) if id == "CC456"),
        "{refused:?}"
    );
    let anonymous = tasks
        .execute(CreateTask {
            task_id: "t-2".into(),
            hours: 1,
        })
        .await
        .unwrap_err();
    assert!(matches!(
        anonymous,
        RepositoryError::Rejected(TaskError::NotACoordinator)
    ));
    assert_eq!(store.read_all(0, 10).await.unwrap().len(), 1);

    // The services and the context reach one handler together.
    let supervisor = CommandContext::new().actor(Actor::new("nurse", "head-nurse"));
    let completed = tasks
        .execute_with(
            CompleteTask {
                task_id: "t-1".into(),
            },
            supervisor,
        )
        .await
        .unwrap();
    assert_eq!(
        completed.events,
        [TaskEvent::Completed(TaskCompleted {
            by: "head-nurse".into()
        })]
    );
    assert_eq!(completed.position, Some(2));
}

#[tokio::test]
async fn a_command_that_records_nothing_has_no_position() {
    let store = MemoryStore::new();
    let touched = repository(&store)
        .execute(Touch {
            task_id: "t-1".into(),
        })
        .await
        .unwrap();
    assert_eq!((touched.events.len(), touched.position), (0, None));
}

#[cfg(feature = "testing")]
mod fixture {
    use factum::authorization::Decision;
    use factum::testing::AggregateFixture;
    use serde_json::json;

    use super::*;

    fn fixture() -> AggregateFixture<Task> {
        AggregateFixture::with_services(Supervisors(vec!["head-nurse".into()]))
    }

    fn created(by: &str) -> TaskCreated {
        TaskCreated {
            coordinator: by.into(),
            due: chrono::Utc.with_ymd_and_hms(2026, 3, 4, 12, 0, 0).unwrap(),
        }
    }

    #[test]
    fn given_takes_a_mix_of_the_sets_events_and_when_a_context() {
        let coordinator = CommandContext::new()
            .actor(Actor::new("care_coordinator", "CC456"))
            .tenant("clinic-7");
        let recorded = fixture()
            .given((created("CC456"), TaskCompleted { by: "x".into() }))
            .when_with(
                CompleteTask {
                    task_id: "t-1".into(),
                },
                coordinator.clone(),
            )
            .then_recorded();
        assert_eq!(
            recorded.events,
            [TaskEvent::Completed(TaskCompleted { by: "CC456".into() })]
        );
        assert_eq!(
            recorded.metadata.issued_by(),
            Some(Actor::new("care_coordinator", "CC456"))
        );
        assert_eq!(recorded.metadata.tenant.as_deref(), Some("clinic-7"));
        assert_eq!(recorded.metadata.causation_id, Some(coordinator.command_id));
        assert_eq!(recorded.timestamp, coordinator.now());
        assert!(recorded.state.done);
    }

    fn create_one_hour() -> CreateTask {
        CreateTask {
            task_id: "t-1".into(),
            hours: 1,
        }
    }

    fn coordinator() -> CommandContext {
        CommandContext::new().actor(Actor::new("care_coordinator", "CC456"))
    }

    #[test]
    fn generated_values_match_placeholders() {
        fixture()
            .when_with(create_one_hour(), coordinator())
            .then_expect_events_like(json!([{
                "event": "TaskCreated",
                "payload": { "coordinator": "CC456", "due": "<any time>" }
            }]));
    }

    #[test]
    #[should_panic(expected = "unlike the expected ones at $[0].payload.coordinator")]
    fn a_value_unlike_the_expected_one_names_its_path() {
        fixture()
            .when_with(create_one_hour(), coordinator())
            .then_expect_events_like(json!([{
                "event": "TaskCreated",
                "payload": { "coordinator": "<any uuid>", "due": "<any time>" }
            }]));
    }

    #[test]
    fn a_policy_denies_before_the_handler_and_errors_are_checked() {
        let only_coordinators = |ctx: &CommandContext, _: &TaskCommand, _: &Task| {
            Decision::allow_if(
                ctx.actor_of("care_coordinator").is_some(),
                "care coordinators only",
            )
        };
        fixture()
            .with_policy(only_coordinators)
            .given([created("CC456")])
            .when_with(
                CompleteTask {
                    task_id: "t-1".into(),
                },
                CommandContext::new().actor(Actor::new("family", "f-1")),
            )
            .then_expect_denial("care coordinators only");
        fixture()
            .with_policy(only_coordinators)
            .given([created("CC456")])
            .when_with(
                CompleteTask {
                    task_id: "t-1".into(),
                },
                CommandContext::new().actor(Actor::new("care_coordinator", "mallory")),
            )
            .then_expect_error(TaskError::NotTheCoordinator("CC456".into()));
    }
}
