//! The care-task service over HTTP: the [application](crate::application) behind
//! `POST /commands/{name}` and the [queries](crate::queries) behind
//! `GET /queries/{name}`, on factum's HTTP layer (see `factum::http` for the wire
//! contract).

use std::sync::Arc;

use factum::application::BuildError;
use factum::context::Actor;
use factum::http::{Authenticate, BearerTokens, HttpApi, Principal};
use factum::projection::sqlite::SqliteReadModel;
use factum::query::QueryRunner;
use factum::store::SqliteStore;

use crate::queries::{
    FindOpenTasksByAssignee, FindOpenTasksByCoordinator, GetDailyAnalytics, GetMemberHistory,
    GetTaskById,
};
use crate::{CARE_TEAM, COORDINATOR};

/// The ward's demo credentials: one bearer token per person, `token-<name>` (dana
/// coordinates; amira, ben and chloe are the care team), all on ward 3. A real service
/// authenticates with its identity provider instead (see `factum::http::Authenticate`).
pub fn ward_tokens() -> BearerTokens {
    let on_the_ward =
        |kind: &str, id: &str| Principal::new(Actor::new(kind, id)).in_tenant("ward-3");
    BearerTokens::new()
        .token("token-dana", on_the_ward(COORDINATOR, "dana"))
        .token("token-amira", on_the_ward(CARE_TEAM, "amira"))
        .token("token-ben", on_the_ward(CARE_TEAM, "ben"))
        .token("token-chloe", on_the_ward(CARE_TEAM, "chloe"))
}

/// The care-task routes over `store` and the read models in `read_models`, authenticated
/// by `authenticate`.
pub fn router(
    store: SqliteStore,
    read_models: SqliteReadModel,
    authenticate: impl Authenticate,
) -> Result<axum::Router, BuildError> {
    let app = crate::application(store.clone())?;
    let queries = Arc::new(QueryRunner::new(store, read_models));
    Ok(HttpApi::new(app, authenticate)
        .query::<GetTaskById, _>(Arc::clone(&queries))
        .query::<FindOpenTasksByCoordinator, _>(Arc::clone(&queries))
        .query::<FindOpenTasksByAssignee, _>(Arc::clone(&queries))
        .query::<GetMemberHistory, _>(Arc::clone(&queries))
        .query::<GetDailyAnalytics, _>(queries)
        .router())
}
