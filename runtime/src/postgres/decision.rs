//! Decisions on PostgreSQL (see [`crate::store::decision`]): a [`Query`] as arrays, one
//! statement reading what it matches up to the settled head, and conditional appends
//! through `factum_decide` (migration 14), whose locks make the check and the insert
//! one step (see `PostgresStore`'s documentation).

use crate::store::StoreError;
use crate::store::decision::{DecisionStore, MatchedEvents, Query};

use super::migrate::quote_ident;
use super::rows::to_i64;
use super::store::{HASH_COLUMN, PostgresStore};

/// A [`Query`] as the arrays `factum_decide` takes: each item's
/// tags (each once) and names, flattened beside the item's number (from 1).
///
/// PostgreSQL text holds no NUL, so no stored event has a name or tag with one: an item
/// asking for such a tag, or only for such names, matches nothing and is left out; a
/// name with NUL beside others is left out of its item.
pub(super) struct QueryArrays {
    pub(super) items: i32,
    pub(super) tag_items: Vec<i32>,
    pub(super) tags: Vec<String>,
    pub(super) name_items: Vec<i32>,
    pub(super) names: Vec<String>,
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
        for item in &query.items {
            let names: Vec<&String> = item
                .names
                .iter()
                .filter(|name| !name.contains('\0'))
                .collect();
            let matches_nothing = item.tags.iter().any(|tag| tag.as_str().contains('\0'))
                || (names.is_empty() && !item.names.is_empty());
            if matches_nothing {
                continue;
            }
            arrays.items += 1;
            // Each tag once: an event matches when it has as many of them as there are.
            for tag in crate::tag::normalized_ref(&item.tags).iter() {
                arrays.tag_items.push(arrays.items);
                arrays.tags.push(tag.as_str().to_owned());
            }
            for name in names {
                arrays.name_items.push(arrays.items);
                arrays.names.push(name.clone());
            }
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
    arrays: &QueryArrays,
) -> (String, Vec<Vec<String>>) {
    let mut parts = Vec::new();
    let mut values = Vec::new();
    for item in 1..=arrays.items {
        let tags: Vec<String> = arrays
            .tag_items
            .iter()
            .zip(&arrays.tags)
            .filter(|(of, _)| **of == item)
            .map(|(_, tag)| tag.clone())
            .collect();
        let names: Vec<String> = arrays
            .name_items
            .iter()
            .zip(&arrays.names)
            .filter(|(of, _)| **of == item)
            .map(|(_, name)| name.clone())
            .collect();
        let mut part = if tags.is_empty() {
            format!(
                "SELECT n.position FROM {schema}.events n WHERE n.position > $1 AND n.position <= $2"
            )
        } else {
            values.push(tags.clone());
            let at = values.len() + 2;
            let mut part = format!(
                "SELECT t.position FROM {schema}.event_tags t \
                 WHERE t.tag = (${at}::text[])[1] AND t.position > $1 AND t.position <= $2"
            );
            if tags.len() > 1 {
                part.push_str(&format!(
                    " AND (SELECT count(*) FROM {schema}.event_tags o \
                       WHERE o.position = t.position AND o.tag = ANY (${at}::text[])) = {}",
                    tags.len()
                ));
            }
            part
        };
        if !names.is_empty() {
            values.push(names);
            let at = values.len() + 2;
            if part.contains("event_tags t") {
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
        let arrays = QueryArrays::new(query);
        if settled <= after || arrays.items == 0 {
            return Ok(MatchedEvents {
                events: Vec::new(),
                read_to: settled.max(after),
            });
        }
        let (sql, values) = read_matching_sql(
            &quote_ident(&self.sql().schema),
            self.sql().event_columns,
            &arrays,
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
