//! The questions the care-task read models answer, as typed queries: ask them through a
//! [`QueryRunner`](factum::query::QueryRunner) over the read models, and each answer
//! comes with its freshness (the position its model has applied, its lag, whether it is
//! being rebuilt); with [`Consistency::at_least`](factum::query::Consistency::at_least)
//! a caller reads its own write.
//!
//! | query | read model | answer |
//! |---|---|---|
//! | [`GetTaskById`] | `coordinator_task_list` | the task, or `None` |
//! | [`FindOpenTasksByCoordinator`] | `coordinator_task_list` | a page of a coordinator's open tasks, soonest due first |
//! | [`FindOpenTasksByAssignee`] | `coordinator_task_list` | a page of a member's open tasks, soonest due first |
//! | [`GetMemberHistory`] | `member_task_history` | a page of a member's history, newest first |
//! | [`GetDailyAnalytics`] | `daily_analytics` | a page of days, newest first |

use factum::projection::sqlite::SqliteReadModel;
use factum::query::{Page, PageRequest, Query, QueryError};

use crate::projections::coordinator_task_list::{self, Holder, TaskListEntry};
use crate::projections::daily_analytics::{self, DailyFigures};
use crate::projections::member_task_history::{self, HistoryEntry};

/// One task of the coordinator's list; `None` when the list has no such task.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
pub struct GetTaskById {
    /// The task.
    pub task_id: String,
}

impl Query<SqliteReadModel> for GetTaskById {
    const NAME: &'static str = "GetTaskById";
    const PROJECTION: &'static str = coordinator_task_list::NAME;
    type Answer = Option<TaskListEntry>;

    async fn answer(self, read_model: &SqliteReadModel) -> Result<Self::Answer, QueryError> {
        Ok(read_model
            .read(Self::PROJECTION, move |db| {
                coordinator_task_list::task(db, &self.task_id)
            })
            .await?)
    }
}

/// "My open tasks", for a coordinator: the open tasks they created.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
pub struct FindOpenTasksByCoordinator {
    /// The coordinator.
    pub coordinator: String,
    /// Which page (`page` and `size` on the wire).
    #[serde(flatten)]
    pub page: PageRequest,
}

impl Query<SqliteReadModel> for FindOpenTasksByCoordinator {
    const NAME: &'static str = "FindOpenTasksByCoordinator";
    const PROJECTION: &'static str = coordinator_task_list::NAME;
    type Answer = Page<TaskListEntry>;

    async fn answer(self, read_model: &SqliteReadModel) -> Result<Self::Answer, QueryError> {
        Ok(read_model
            .read(Self::PROJECTION, move |db| {
                coordinator_task_list::open_tasks_of(
                    db,
                    Holder::Coordinator(&self.coordinator),
                    &self.page,
                )
            })
            .await?)
    }
}

/// "My open tasks", for a care team member: the open tasks assigned to them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
pub struct FindOpenTasksByAssignee {
    /// The member.
    pub member: String,
    /// Which page (`page` and `size` on the wire).
    #[serde(flatten)]
    pub page: PageRequest,
}

impl Query<SqliteReadModel> for FindOpenTasksByAssignee {
    const NAME: &'static str = "FindOpenTasksByAssignee";
    const PROJECTION: &'static str = coordinator_task_list::NAME;
    type Answer = Page<TaskListEntry>;

    async fn answer(self, read_model: &SqliteReadModel) -> Result<Self::Answer, QueryError> {
        Ok(read_model
            .read(Self::PROJECTION, move |db| {
                coordinator_task_list::open_tasks_of(db, Holder::Assignee(&self.member), &self.page)
            })
            .await?)
    }
}

/// A member's history: what they were given, lost to a reassignment and completed,
/// newest first. A member never given a task has an empty history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
pub struct GetMemberHistory {
    /// The member.
    pub member: String,
    /// Which page (`page` and `size` on the wire).
    #[serde(flatten)]
    pub page: PageRequest,
}

impl Query<SqliteReadModel> for GetMemberHistory {
    const NAME: &'static str = "GetMemberHistory";
    const PROJECTION: &'static str = member_task_history::NAME;
    type Answer = Page<HistoryEntry>;

    async fn answer(self, read_model: &SqliteReadModel) -> Result<Self::Answer, QueryError> {
        Ok(read_model
            .read(Self::PROJECTION, move |db| {
                member_task_history::history_page(db, &self.member, &self.page)
            })
            .await?)
    }
}

/// The daily analytics: per UTC day, tasks created and completed and the average
/// completion time, newest day first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
pub struct GetDailyAnalytics {
    /// Which page (`page` and `size` on the wire).
    #[serde(flatten)]
    pub page: PageRequest,
}

impl Query<SqliteReadModel> for GetDailyAnalytics {
    const NAME: &'static str = "GetDailyAnalytics";
    const PROJECTION: &'static str = daily_analytics::NAME;
    type Answer = Page<DailyFigures>;

    async fn answer(self, read_model: &SqliteReadModel) -> Result<Self::Answer, QueryError> {
        Ok(read_model
            .read(Self::PROJECTION, move |db| {
                daily_analytics::days_page(db, &self.page)
            })
            .await?)
    }
}
