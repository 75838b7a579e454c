-- A decision's read in one call: the settled head, then the events a query matches
-- after `p_after` up to it. The query comes as `factum_decide`'s arrays (per tag and per
-- name, the item it belongs to, from 1).
--
-- The function is VOLATILE, so each of its statements takes a snapshot of its own, after
-- the one before: the settled head is worked out first (itself in two snapshots, see
-- migration 10), and every read after it sees each event at or below it that will ever
-- commit. One statement could not: its snapshot would be older than the look at the
-- locks. Each item walks its first tag's rows of `event_tags` (or the events, without
-- tags) and checks its other tags and names there, as `factum_decide`'s condition does;
-- the positions found are read once each, in order.
--
-- Plans are generic: each statement's one good plan is an index walk whatever the values,
-- and planning one anew for each call (PostgreSQL's choice when a custom plan looks
-- cheaper) cost more than the read itself.
--
-- Rows: the events, each with the settled head; without any, one row holding only the
-- settled head (its event NULL).
CREATE FUNCTION {{schema}}.factum_read_matching(
    p_after           bigint,
    p_items           integer,
    p_item_tag_items  integer[],
    p_item_tags       text[],
    p_item_name_items integer[],
    p_item_names      text[]
) RETURNS TABLE (o_settled bigint, o_event {{schema}}.events)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
AS $factum$
DECLARE
    v_settled    bigint;
    v_item       integer;
    v_item_tags  text[];
    v_item_names text[];
    v_positions  bigint[] := '{}';
BEGIN
    v_settled := coalesce({{schema}}.factum_settled_head(), 0);
    IF v_settled > p_after THEN
        FOR v_item IN 1 .. p_items LOOP
            v_item_tags := ARRAY(SELECT c.tag FROM unnest(p_item_tags, p_item_tag_items) AS c(tag, item)
                                  WHERE c.item = v_item);
            v_item_names := ARRAY(SELECT c.name FROM unnest(p_item_names, p_item_name_items) AS c(name, item)
                                   WHERE c.item = v_item);
            IF cardinality(v_item_tags) = 0 THEN
                v_positions := v_positions || ARRAY(
                    SELECT e.position FROM {{schema}}.events e
                     WHERE e.position > p_after AND e.position <= v_settled
                       AND (cardinality(v_item_names) = 0 OR e.name = ANY (v_item_names)));
            ELSE
                v_positions := v_positions || ARRAY(
                    SELECT t.position FROM {{schema}}.event_tags t
                     WHERE t.tag = v_item_tags[1]
                       AND t.position > p_after AND t.position <= v_settled
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
        RETURN QUERY SELECT v_settled, NULL::{{schema}}.events;
        RETURN;
    END IF;
    RETURN QUERY
        SELECT v_settled, e FROM {{schema}}.events e
         WHERE e.position = ANY (v_positions) ORDER BY e.position;
END
$factum$;

-- Migration 14's appends with tags plan their statements generically too: their
-- condition's walks and their inserts have one good plan whatever the values, and a
-- custom plan made anew at each call (for the condition's queries, each call) cost a
-- fifth of a decision's time.
ALTER FUNCTION {{schema}}.factum_decide SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION {{schema}}.factum_decide_command SET plan_cache_mode = force_generic_plan;
