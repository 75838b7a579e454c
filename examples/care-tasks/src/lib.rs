//! Care tasks, as a factum domain with several projections over the same events.
//!
//! A coordinator creates a task for someone in care (a medication round, a wound
//! dressing, help with lunch), assigns it to a care team member — and may reassign it —
//! and the member completes it. Each event carries the time it happened, as the person
//! recording it states it (care is often written down after the fact), so the read
//! models and the analytics are about care time, not about when the record was typed in.
//!
//! Three projections read the same events, each into a SQLite read model of its own:
//! [`projections::coordinator_task_list`] (what is open, with whom, due when),
//! [`projections::member_task_history`] (what each member was given, lost to a
//! reassignment and completed) and [`projections::daily_analytics`] (per UTC day: tasks
//! created, tasks completed, average completion time). [`demo::run`] is the main job.
#![warn(missing_docs)]

pub mod demo;
pub mod over_http;
pub mod projections;
pub mod queries;
pub mod serve;

use chrono::{DateTime, Utc};
use factum::prelude::*;

/// A care team member (a nurse, a carer), by their staff handle.
pub type Member = String;

/// A task was written down for someone in care.
#[event(name = "TaskCreated")]
#[derive(Debug, Clone, PartialEq)]
pub struct TaskCreated {
    /// What to do.
    pub title: String,
    /// Who the care is for.
    pub care_recipient: String,
    /// When it must be done by.
    pub due: DateTime<Utc>,
    /// The coordinator who created it.
    pub created_by: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// The task was given to a member, possibly taking it from another.
#[event(name = "TaskAssigned")]
#[derive(Debug, Clone, PartialEq)]
pub struct TaskAssigned {
    /// Who does it now.
    pub member: Member,
    /// Who had it before, if anyone: a reassignment takes it away from them.
    pub previous: Option<Member>,
    /// When it was assigned.
    pub assigned_at: DateTime<Utc>,
}

/// The assigned member did the task.
#[event(name = "TaskCompleted")]
#[derive(Debug, Clone, PartialEq)]
pub struct TaskCompleted {
    /// Who did it: the member it was assigned to.
    pub completed_by: Member,
    /// When it was done.
    pub completed_at: DateTime<Utc>,
    /// What the member noted, if anything.
    pub note: Option<String>,
}

/// Every event of a care task.
#[derive(Events, Debug, Clone, PartialEq)]
pub enum TaskEvent {
    /// See [`TaskCreated`].
    Created(TaskCreated),
    /// See [`TaskAssigned`].
    Assigned(TaskAssigned),
    /// See [`TaskCompleted`].
    Completed(TaskCompleted),
}

/// Write down a new task.
#[command]
#[derive(Debug, Clone, PartialEq)]
pub struct CreateTask {
    /// The new task's id.
    #[aggregate_id]
    pub task_id: String,
    /// What to do; not blank.
    pub title: String,
    /// Who the care is for.
    pub care_recipient: String,
    /// When it must be done by; not before it is created.
    pub due: DateTime<Utc>,
    /// When it is created.
    pub at: DateTime<Utc>,
}

/// Give a task to a member; giving it to someone else later reassigns it.
#[command]
#[derive(Debug, Clone, PartialEq)]
pub struct AssignTask {
    /// The task.
    #[aggregate_id]
    pub task_id: String,
    /// Who is to do it.
    pub member: Member,
    /// When; not before the task was created.
    pub at: DateTime<Utc>,
}

/// Record that the assigned member did the task.
#[command]
#[derive(Debug, Clone, PartialEq)]
pub struct CompleteTask {
    /// The task.
    #[aggregate_id]
    pub task_id: String,
    /// Who did it; must be the member it is assigned to.
    pub completed_by: Member,
    /// When; not before the task was created.
    pub at: DateTime<Utc>,
    /// Anything worth noting.
    pub note: Option<String>,
}

/// Every command of a care task.
#[derive(Commands, Debug, Clone, PartialEq)]
pub enum TaskCommand {
    /// See [`CreateTask`].
    Create(CreateTask),
    /// See [`AssignTask`].
    Assign(AssignTask),
    /// See [`CompleteTask`].
    Complete(CompleteTask),
}

/// Why a task refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// The task was already created.
    #[error("the task was already created")]
    AlreadyCreated,
    /// A task is created by someone: the command's actor.
    #[error("a task is created by its coordinator: the command has no actor")]
    NoCreator,
    /// The task was never created.
    #[error("no such task")]
    NotCreated,
    /// A task needs a title.
    #[error("a task needs a title")]
    BlankTitle,
    /// A task cannot be due before it exists.
    #[error("the task would be due ({due}) before it is created ({created_at})")]
    DueBeforeCreation {
        /// The requested due time.
        due: DateTime<Utc>,
        /// The creation time.
        created_at: DateTime<Utc>,
    },
    /// Nothing happens to a task before it exists.
    #[error("{at} is before the task was created ({created_at})")]
    BeforeCreation {
        /// The time given with the command.
        at: DateTime<Utc>,
        /// The creation time.
        created_at: DateTime<Utc>,
    },
    /// A completed task is done: it can be neither completed again nor reassigned.
    #[error("the task was already completed by {0}")]
    AlreadyCompleted(Member),
    /// Only an assigned task can be completed.
    #[error("the task is not assigned to anyone yet")]
    NotAssigned,
    /// Only the member a task is assigned to completes it.
    #[error("the task is assigned to {assignee}, not to {member}")]
    NotTheAssignee {
        /// Who tried to complete it.
        member: Member,
        /// Who it is assigned to.
        assignee: Member,
    },
}

/// A task's state: only what its decisions need.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Task {
    /// When it was created; `None` before it is.
    pub created_at: Option<DateTime<Utc>>,
    /// The coordinator who created it.
    pub created_by: Option<String>,
    /// Who it is assigned to.
    pub assignee: Option<Member>,
    /// Who completed it, once done.
    pub completed_by: Option<Member>,
}

impl Task {
    /// The creation time, checking that the task exists and that `at` is not before it.
    fn created_before(&self, at: DateTime<Utc>) -> Result<DateTime<Utc>, TaskError> {
        let created_at = self.created_at.ok_or(TaskError::NotCreated)?;
        if at < created_at {
            return Err(TaskError::BeforeCreation { at, created_at });
        }
        Ok(created_at)
    }

    fn require_not_completed(&self) -> Result<(), TaskError> {
        match &self.completed_by {
            Some(member) => Err(TaskError::AlreadyCompleted(member.clone())),
            None => Ok(()),
        }
    }
}

#[aggregate(
    name = "Task",
    events = TaskEvent,
    commands = TaskCommand,
    error = TaskError
)]
impl Task {
    /// The creator is the command's actor: no field of the command can name another.
    #[handle]
    fn create(&self, command: CreateTask, ctx: &CommandContext) -> Result<TaskCreated, TaskError> {
        if self.created_at.is_some() {
            return Err(TaskError::AlreadyCreated);
        }
        let created_by = ctx.actor.as_ref().ok_or(TaskError::NoCreator)?.id.clone();
        if command.title.trim().is_empty() {
            return Err(TaskError::BlankTitle);
        }
        if command.due < command.at {
            return Err(TaskError::DueBeforeCreation {
                due: command.due,
                created_at: command.at,
            });
        }
        Ok(TaskCreated {
            title: command.title,
            care_recipient: command.care_recipient,
            due: command.due,
            created_by,
            created_at: command.at,
        })
    }

    #[handle]
    fn assign(&self, command: AssignTask) -> Result<Option<TaskAssigned>, TaskError> {
        self.created_before(command.at)?;
        self.require_not_completed()?;
        if self.assignee.as_ref() == Some(&command.member) {
            // Assigning a task to the member who has it records nothing.
            return Ok(None);
        }
        Ok(Some(TaskAssigned {
            member: command.member,
            previous: self.assignee.clone(),
            assigned_at: command.at,
        }))
    }

    #[handle]
    fn complete(&self, command: CompleteTask) -> Result<TaskCompleted, TaskError> {
        self.created_before(command.at)?;
        self.require_not_completed()?;
        match &self.assignee {
            None => Err(TaskError::NotAssigned),
            Some(assignee) if *assignee != command.completed_by => Err(TaskError::NotTheAssignee {
                member: command.completed_by,
                assignee: assignee.clone(),
            }),
            Some(_) => Ok(TaskCompleted {
                completed_by: command.completed_by,
                completed_at: command.at,
                note: command.note,
            }),
        }
    }

    #[apply]
    fn created(&mut self, event: &TaskCreated) {
        self.created_at = Some(event.created_at);
        self.created_by = Some(event.created_by.clone());
    }

    #[apply]
    fn assigned(&mut self, event: &TaskAssigned) {
        self.assignee = Some(event.member.clone());
    }

    #[apply]
    fn completed(&mut self, event: &TaskCompleted) {
        self.completed_by = Some(event.completed_by.clone());
    }
}

/// The kind of actor who coordinates care: creates and assigns tasks.
pub const COORDINATOR: &str = "care_coordinator";

/// The kind of actor who does the tasks: a member of the care team.
pub const CARE_TEAM: &str = "care_team";

/// The kind of actor who runs the service: looks at its events and projections in the
/// web console, replays parked events, rebuilds projections; issues no commands.
pub const OPERATOR: &str = "operator";

/// Who may do what to a task, decided on the task's state before it decides:
/// coordinators create and assign; a task is completed by the member it is assigned to
/// (as themselves) or by the coordinator who created it; nobody else, and nobody without
/// an actor.
pub fn policy() -> impl factum::authorization::Policy<Task> {
    use factum::authorization::Decision;

    |ctx: &CommandContext, command: &TaskCommand, task: &Task| {
        let Some(actor) = &ctx.actor else {
            return Decision::deny("a task command needs an actor");
        };
        match command {
            TaskCommand::Create(_) | TaskCommand::Assign(_) => Decision::allow_if(
                actor.is(COORDINATOR),
                "only a care coordinator creates and assigns tasks",
            ),
            TaskCommand::Complete(complete) => {
                let assignee = actor.is(CARE_TEAM)
                    && task.assignee.as_deref() == Some(actor.id.as_str())
                    && complete.completed_by == actor.id;
                let its_coordinator =
                    actor.is(COORDINATOR) && task.created_by.as_deref() == Some(actor.id.as_str());
                Decision::allow_if(
                    assignee || its_coordinator,
                    "only the assigned member or the task's coordinator may complete it",
                )
            }
        }
    }
}

/// The care-task application: the task aggregate behind its [`policy`], with every
/// command traced, counted and timed (`factum::telemetry`), and required to come from a
/// coordinator or a care team member.
pub fn application<S>(
    store: S,
) -> Result<factum::application::Application<S>, factum::application::BuildError>
where
    S: factum::store::EventStore + Clone + 'static,
{
    use factum::application::{Application, ContextRules, Metrics, Tracing};

    Application::builder(store.clone())
        .middleware(Tracing)
        .middleware(Metrics)
        .middleware(
            ContextRules::new()
                .actor_kinds([COORDINATOR, CARE_TEAM])
                .require_actor(),
        )
        .aggregate(Repository::<Task, S>::new(store).with_policy(policy()))
        .build()
}
