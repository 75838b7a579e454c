-- A decision's read in one call: the position it reads to, then the events a query
-- matches after `p_after` up to it. The query comes as `factum_decide`'s arrays (per tag
-- and per name, the item it belongs to, from 1).
--
-- The position comes first, and the function is VOLATILE, so each statement after takes
-- a snapshot of its own, later: every read sees each matching event at or below the
-- position that will ever commit. One statement could not: its snapshot would be older
-- than the look that found the position. The position is found one of two ways:
--
-- - When every item has tags (at most 64, the lock table's share of a connection): the
--   lock of each of its tags exclusively, in key order, and the append lock shared, as
--   `factum_decide` takes them for a condition. The writer of an event the query
--   matches holds the shared lock of its tags (or, held, the append lock exclusively)
--   from before it takes its positions until it ends: once the locks are granted, every
--   such writer has ended, and any other takes its positions later. So the sequence's
--   last value is the position, and no matching event at or below it is still to
--   commit. The locks are held only for this read (the statement's transaction).
-- - Otherwise (an item without tags matches events of any tags): the settled head
--   (migration 10), below which no event of any writer is still to commit.
--
-- Each item walks its first tag's rows of `event_tags` (or the events, without tags)
-- and checks its other tags and names there, as `factum_decide`'s condition does; the
-- positions found are read once each, in order.
--
-- Plans are generic: each statement's one good plan is an index walk whatever the values,
-- and planning one anew for each call (PostgreSQL's choice when a custom plan looks
-- cheaper) cost more than the read itself. Without JIT: a generic plan's estimates for
-- unknown tags run into the millions on a large store, past `jit_above_cost`, and
-- compiling took a hundred times what the walk takes.
--
-- Rows: the events, each with the position read to and, when it is the settled head, the
-- settled head (for followers); without any event, one row holding those alone.
CREATE FUNCTION {{schema}}.factum_read_matching(
    p_after           bigint,
    p_items           integer,
    p_item_tag_items  integer[],
    p_item_tags       text[],
    p_item_name_items integer[],
    p_item_names      text[]
) RETURNS TABLE (o_read_to bigint, o_settled bigint, o_event {{schema}}.events)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
SET jit = off
AS $factum$
DECLARE
    v_read_to    bigint;
    v_settled    bigint;
    v_key        bigint;
    v_item       integer;
    v_item_tags  text[];
    v_item_names text[];
    v_positions  bigint[] := '{}';
BEGIN
    IF pg_current_xact_id_if_assigned() IS NULL
       AND (SELECT count(DISTINCT i.item) FROM unnest(p_item_tag_items) AS i(item)) = p_items
       AND (SELECT count(DISTINCT t.tag) FROM unnest(p_item_tags) AS t(tag)) <= 64 THEN
        FOR v_key IN
            SELECT DISTINCT hashtextextended('tag ' || c.tag, {{lock_key}})
              FROM unnest(p_item_tags) AS c(tag)
             ORDER BY 1
        LOOP
            PERFORM pg_advisory_xact_lock(v_key);
        END LOOP;
        PERFORM pg_advisory_xact_lock_shared(1717658484, {{lock_key}});
        v_read_to := coalesce(pg_sequence_last_value('{{schema}}.events_position_seq'), 0);
    ELSE
        v_settled := coalesce({{schema}}.factum_settled_head(), 0);
        v_read_to := v_settled;
    END IF;
    IF v_read_to > p_after THEN
        FOR v_item IN 1 .. p_items LOOP
            v_item_tags := ARRAY(SELECT c.tag FROM unnest(p_item_tags, p_item_tag_items) AS c(tag, item)
                                  WHERE c.item = v_item);
            v_item_names := ARRAY(SELECT c.name FROM unnest(p_item_names, p_item_name_items) AS c(name, item)
                                   WHERE c.item = v_item);
            IF cardinality(v_item_tags) = 0 THEN
                v_positions := v_positions || ARRAY(
                    SELECT e.position FROM {{schema}}.events e
                     WHERE e.position > p_after AND e.position <= v_read_to
                       AND (cardinality(v_item_names) = 0 OR e.name = ANY (v_item_names)));
            ELSE
                v_positions := v_positions || ARRAY(
                    SELECT t.position FROM {{schema}}.event_tags t
                     WHERE t.tag = v_item_tags[1]
                       AND t.position > p_after AND t.position <= v_read_to
                       AND (cardinality(v_item_names) = 0
                            OR EXISTS (SELECT 1 FROM {{schema}}.events e
                                        WHERE e.position = t.position
                                          AND e.name = ANY (v_item_names)))
                       AND (cardinality(v_item_tags) = 1
                            OR (SELECT count(*) FROM {{schema}}.event_tags o
                                 WHERE o.position = t.position AND o.tag = ANY (v_item_tags))
                               = cardinality(v_item_tags)));
            END IF;
        END LOOP;
    END IF;
    IF cardinality(v_positions) = 0 THEN
        RETURN QUERY SELECT v_read_to, v_settled, NULL::{{schema}}.events;
        RETURN;
    END IF;
    RETURN QUERY
        SELECT v_read_to, v_settled, e FROM {{schema}}.events e
         WHERE e.position = ANY (v_positions) ORDER BY e.position;
END
$factum$;

-- Migration 14's appends with tags plan their statements generically too, without JIT:
-- their condition's walks and their inserts have one good plan whatever the values, and
-- a custom plan made anew at each call (for the condition's queries, each call) cost a
-- fifth of a decision's time.
ALTER FUNCTION {{schema}}.factum_decide SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION {{schema}}.factum_decide SET jit = off;
ALTER FUNCTION {{schema}}.factum_decide_command SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION {{schema}}.factum_decide_command SET jit = off;
