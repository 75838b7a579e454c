//! Decisions on PostgreSQL (see [`crate::store::decision`]): a [`Query`] as arrays, one
//! statement reading what it matches up to the settled head, and conditional appends
//! through `factum_decide` (migration 14), whose locks make the check and the insert
//! one step (see `PostgresStore`'s documentation).

use crate::store::StoreError;
use crate::store::decision::{DecisionStore, MatchedEvents, Query};

use super::rows::to_i64;
use super::store::{HASH_COLUMN, PostgresStore};

/// A [`Query`] as the arrays `factum_decide` and [`read_matching_sql`] take: each item's
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

/// The statement reading the events a query matches after `$1` up to `$2` (a settled
/// position), the query given as [`QueryArrays`] (`$3` items, `$4`/`$5` the tags' items
/// and tags, `$6`/`$7` the names'), selecting `columns`. An item with tags walks its
/// first tag's rows of `event_tags` and checks its other tags and its names there; an
/// item without tags walks the events.
pub(super) fn read_matching_sql(schema: &str, columns: &str) -> String {
    format!(
        "SELECT {columns} FROM {schema}.events \
         WHERE position IN ( \
             SELECT m.position \
               FROM generate_series(1, $3::integer) AS i(item) \
              CROSS JOIN LATERAL ( \
                    SELECT ARRAY(SELECT c.tag FROM unnest($5::text[], $4::integer[]) AS c(tag, item) \
                                  WHERE c.item = i.item) AS tags, \
                           ARRAY(SELECT c.name FROM unnest($7::text[], $6::integer[]) AS c(name, item) \
                                  WHERE c.item = i.item) AS names) AS q \
              CROSS JOIN LATERAL ( \
                    SELECT t.position FROM {schema}.event_tags t \
                     WHERE cardinality(q.tags) > 0 AND t.tag = q.tags[1] \
                       AND t.position > $1 AND t.position <= $2 \
                       AND (cardinality(q.names) = 0 \
                            OR EXISTS (SELECT 1 FROM {schema}.events n \
                                        WHERE n.position = t.position AND n.name = ANY (q.names))) \
                       AND (SELECT count(*) FROM {schema}.event_tags o \
                             WHERE o.position = t.position AND o.tag = ANY (q.tags)) \
                           = cardinality(q.tags) \
                    UNION ALL \
                    SELECT n.position FROM {schema}.events n \
                     WHERE cardinality(q.tags) = 0 AND n.position > $1 AND n.position <= $2 \
                       AND (cardinality(q.names) = 0 OR n.name = ANY (q.names))) AS m) \
         ORDER BY position"
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
        let rows = self
            .query(
                &self.sql().read_matching,
                &[
                    &to_i64(after),
                    &to_i64(settled),
                    &arrays.items,
                    &arrays.tag_items,
                    &arrays.tags,
                    &arrays.name_items,
                    &arrays.names,
                ],
            )
            .await?;
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
