//! Decisions on PostgreSQL (see [`crate::store::decision`]): a [`Query`] as arrays, one
//! statement reading what it matches up to the settled head, and conditional appends
//! through `factum_decide` (migration 14), whose locks make the check and the insert
//! one step (see `PostgresStore`'s documentation).

use crate::store::StoreError;
use crate::store::decision::{DecisionStore, MatchedEvents, Query};

use super::migrate::quote_ident;
use super::rows::to_i64;
use super::store::{HASH_COLUMN, PostgresStore};

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

/// The statement reading the events `query` matches after `$1` up to `$2` (a settled
/// position), selecting `columns`, and its parameters after those two: per item, its tags
/// (an array, when it has some) and its names (an array, when it has some).
///
/// The text is made for the query's shape (how many items, how many tags each, names or
/// not), so each shape gets a plan of its own, which stays good as a generic plan: an
/// item with tags walks its first tag's rows of `event_tags` (the primary key) and checks
/// its other tags and its names at each, an item without tags walks the events after
/// `$1`. (One statement for every shape, with the items as arrays, left the planner
/// estimating the tagless branch for every item; its generic plan scanned the events.)
fn read_matching_sql(
    schema: &str,
    columns: &str,
    items: Vec<(Vec<String>, Vec<String>)>,
) -> (String, Vec<Vec<String>>) {
    let mut parts = Vec::new();
    let mut values = Vec::new();
    for (tags, names) in items {
        let tagged = !tags.is_empty();
        let mut part = if !tagged {
            format!(
                "SELECT n.position FROM {schema}.events n WHERE n.position > $1 AND n.position <= $2"
            )
        } else {
            let count = tags.len();
            values.push(tags);
            let at = values.len() + 2;
            let mut part = format!(
                "SELECT t.position FROM {schema}.event_tags t \
                 WHERE t.tag = (${at}::text[])[1] AND t.position > $1 AND t.position <= $2"
            );
            if count > 1 {
                part.push_str(&format!(
                    " AND (SELECT count(*) FROM {schema}.event_tags o \
                       WHERE o.position = t.position AND o.tag = ANY (${at}::text[])) = {}",
                    count
                ));
            }
            part
        };
        if !names.is_empty() {
            values.push(names);
            let at = values.len() + 2;
            if tagged {
                part.push_str(&format!(
                    " AND EXISTS (SELECT 1 FROM {schema}.events n \
                       WHERE n.position = t.position AND n.name = ANY (${at}::text[]))"
                ));
            } else {
                part.push_str(&format!(" AND n.name = ANY (${at}::text[])"));
            }
        }
        parts.push(part);
    }
    (
        format!(
            "SELECT {columns} FROM {schema}.events WHERE position IN ({}) ORDER BY position",
            parts.join(" UNION ")
        ),
        values,
    )
}

/// Decisions across entities: the query read up to the settled head (so that no event
/// at or below the position a decision read to commits later), the condition checked by
/// `factum_decide` under the tags' locks.
impl DecisionStore for PostgresStore {
    async fn read_matching(&self, query: &Query, after: u64) -> Result<MatchedEvents, StoreError> {
        let settled = self.refresh_settled().await?;
        let items = storable_items(query);
        if settled <= after || items.is_empty() {
            return Ok(MatchedEvents {
                events: Vec::new(),
                read_to: settled.max(after),
            });
        }
        let (sql, values) = read_matching_sql(
            &quote_ident(&self.sql().schema),
            self.sql().event_columns,
            items,
        );
        let (after, settled_sql) = (to_i64(after), to_i64(settled));
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            Vec::with_capacity(values.len() + 2);
        params.push(&after);
        params.push(&settled_sql);
        params.extend(
            values
                .iter()
                .map(|value| value as &(dyn tokio_postgres::types::ToSql + Sync)),
        );
        let rows = self.query(&sql, &params).await?;
        let events = rows
            .iter()
            .map(|row| self.decode(row, HASH_COLUMN))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(MatchedEvents {
            events,
            read_to: settled,
        })
    }

    crate::telemetry::measured_conditional_appends!("postgresql");
}
