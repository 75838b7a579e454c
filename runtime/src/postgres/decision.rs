//! Decisions on PostgreSQL (see [`crate::store::decision`]): a [`Query`] as arrays, one
//! statement reading what it matches up to the settled head, and conditional appends
//! through `factum_decide` (migration 14), whose locks make the check and the insert
//! one step (see `PostgresStore`'s documentation).

use crate::store::StoreError;
use crate::store::decision::{DecisionStore, MatchedEvents, Query};

use super::rows::{corrupt, to_i64};
use super::store::{HASH_COLUMN, PostgresStore, READ_MATCHING_READ_TO};

/// A [`Query`] as the arrays `factum_decide` takes: each storable item's tags and names
/// (see [`storable_items`]), flattened beside the item's number (from 1).
pub(super) struct QueryArrays {
    pub(super) items: i32,
    pub(super) tag_items: Vec<i32>,
    pub(super) tags: Vec<String>,
    pub(super) name_items: Vec<i32>,
    pub(super) names: Vec<String>,
}

/// The items of `query` that can match a stored event, each as its tags (each once,
/// sorted) and its names: PostgreSQL text holds no NUL, so an item asking for a tag with
/// one, or only for names with one, is left out, and a name with NUL beside others is
/// left out of its item.
fn storable_items(query: &Query) -> Vec<(Vec<String>, Vec<String>)> {
    query
        .items
        .iter()
        .filter_map(|item| {
            let names: Vec<String> = item
                .names
                .iter()
                .filter(|name| !name.contains('\0'))
                .cloned()
                .collect();
            let matches_nothing = item.tags.iter().any(|tag| tag.as_str().contains('\0'))
                || (names.is_empty() && !item.names.is_empty());
            // Each tag once: an event matches when it has as many of them as there are.
            let tags = crate::tag::normalized_ref(&item.tags)
                .iter()
                .map(|tag| tag.as_str().to_owned())
                .collect();
            (!matches_nothing).then_some((tags, names))
        })
        .collect()
}

impl QueryArrays {
    pub(super) fn new(query: &Query) -> Self {
        let mut arrays = QueryArrays {
            items: 0,
            tag_items: Vec::new(),
            tags: Vec::new(),
            name_items: Vec::new(),
            names: Vec::new(),
        };
        for (tags, names) in storable_items(query) {
            arrays.items += 1;
            arrays.tag_items.extend(tags.iter().map(|_| arrays.items));
            arrays.tags.extend(tags);
            arrays.name_items.extend(names.iter().map(|_| arrays.items));
            arrays.names.extend(names);
        }
        arrays
    }
}

/// Decisions across entities: the query read in one call of `factum_read_matching`
/// (migrations 15 and 16: the position to read to found first — under the query's tag
/// locks, or the settled head — then the read in later snapshots, so that no matching
/// event at or below that position commits later; the events carrying an item's first
/// tag come back, and those the query matches are kept), the condition checked by
/// `factum_decide` under the tags' locks.
impl DecisionStore for PostgresStore {
    async fn read_matching(&self, query: &Query, after: u64) -> Result<MatchedEvents, StoreError> {
        let arrays = QueryArrays::new(query);
        let rows = self
            .query(
                &self.sql().read_matching,
                &[
                    &to_i64(after),
                    &arrays.items,
                    &arrays.tag_items,
                    &arrays.tags,
                    &arrays.name_items,
                    &arrays.names,
                ],
            )
            .await?;
        let mut read_to = after;
        let mut settled = None;
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            let position = |column: usize| {
                row.try_get::<_, Option<i64>>(column)
                    .map(|position| position.and_then(|position| u64::try_from(position).ok()))
                    .map_err(|error| corrupt("", 0, format_args!("the position read to: {error}")))
            };
            read_to = read_to.max(position(READ_MATCHING_READ_TO)?.unwrap_or(0));
            settled = position(READ_MATCHING_READ_TO + 1)?;
            // The row of a read that found nothing holds the positions alone.
            if row.try_get::<_, Option<i64>>(0).ok().flatten().is_some() {
                let event = self.decode(row, HASH_COLUMN)?;
                // The function reads each item's first tag: an event carrying it may
                // lack the item's other tags or names.
                if query.matches(&event.name, &event.tags) {
                    events.push(event);
                }
            }
        }
        // Only a settled head tells followers anything: a position found under the
        // query's tag locks may lie above an append of other tags still in flight.
        if let Some(settled) = settled {
            self.raise_settled(settled);
        }
        Ok(MatchedEvents { events, read_to })
    }

    crate::telemetry::measured_conditional_appends!("postgresql");
}
