-- Fewer statements in a decision's read and in a tagged or conditional append: each
-- statement a PL/pgSQL function runs starts an executor of its own, and starting them,
-- not running them, was most of both functions' time (`perf`: `ExecutorStart` and
-- initial plans). Same arguments, results, locks and guarantees as migrations 14 and
-- 15 describe.
--
-- `factum_read_matching`: when every item has tags (the case a decision's models make),
-- the read collects the positions of each item's first tag (its tags are sorted) after
-- `p_after`, up to the position read to, in one statement, where each item had a walk of
-- its own checking its other tags and names there. That reads a superset: an event with
-- an item's first tag, but not all its tags, or (when every item names its events) a name
-- none of them asks for, is left out by the final statement or by the caller, which
-- keeps the events the query matches (`PostgresStore::read_matching`). The first tags,
-- whether every item has tags and whether every item has names come from one statement,
-- the tag locks are taken by one, in key order.
--
-- `factum_decide`: the guard, one statement (the count of distinct tags only for more
-- than 64 of them); the tag locks in one statement, in key order, the stream's and the
-- append lock in another; before the condition's walks, one look at the items' first
-- tags' rows after `p_after`, under the locks: without any, no event matches and the
-- walks are spared (the common case: nothing of the decision's was stored since it read);
-- one event's position without a series.

CREATE OR REPLACE FUNCTION {{schema}}.factum_read_matching(
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
    v_all_tagged boolean;
    v_all_named  boolean;
    v_first_tags text[];
    v_item       integer;
    v_item_tags  text[];
    v_item_names text[];
    v_positions  bigint[] := '{}';
BEGIN
    SELECT count(*) = p_items, array_agg(f.tag),
           (SELECT count(DISTINCT n.item) FROM unnest(p_item_name_items) AS n(item)) = p_items
      INTO v_all_tagged, v_first_tags, v_all_named
      FROM (SELECT DISTINCT ON (c.item) c.tag
              FROM unnest(p_item_tag_items, p_item_tags) AS c(item, tag)
             ORDER BY c.item, c.tag) AS f;
    IF v_all_tagged AND cardinality(p_item_tags) <= 64
       AND pg_current_xact_id_if_assigned() IS NULL THEN
        PERFORM pg_advisory_xact_lock(k.key)
           FROM (SELECT DISTINCT hashtextextended('tag ' || c.tag, {{lock_key}}) AS key
                   FROM unnest(p_item_tags) AS c(tag)
                  ORDER BY 1) AS k;
        PERFORM pg_advisory_xact_lock_shared(1717658484, {{lock_key}});
        v_read_to := coalesce(pg_sequence_last_value('{{schema}}.events_position_seq'), 0);
    ELSE
        v_settled := coalesce({{schema}}.factum_settled_head(), 0);
        v_read_to := v_settled;
    END IF;
    IF v_read_to > p_after THEN
        IF v_all_tagged THEN
            v_positions := ARRAY(SELECT t.position FROM {{schema}}.event_tags t
                                  WHERE t.tag = ANY (v_first_tags)
                                    AND t.position > p_after AND t.position <= v_read_to);
        ELSE
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
    END IF;
    RETURN QUERY
        SELECT v_read_to, v_settled, e FROM {{schema}}.events e
         WHERE e.position = ANY (v_positions)
           AND (NOT v_all_named OR e.name = ANY (p_item_names))
         ORDER BY e.position;
    IF NOT FOUND THEN
        RETURN QUERY SELECT v_read_to, v_settled, NULL::{{schema}}.events;
    END IF;
END
$factum$;

CREATE OR REPLACE FUNCTION {{schema}}.factum_decide(
    p_stream_id         text,
    p_stream_type       text,
    p_expected_kind     integer,     -- 0 any, 1 no stream, 2 stream exists, 3 exact
    p_expected_version  bigint,
    p_event_ids         uuid[],
    p_names             text[],
    p_schema_versions   bigint[],
    p_payloads          text[],
    p_occurred_at       timestamptz[],
    p_metadata          text[],
    p_tags              text[],      -- per event: its tags' stored text, or NULL
    p_tag_events        bigint[],    -- per tag of the batch: its event's place, from 1
    p_tag_values        text[],      -- per tag of the batch: the tag
    p_items             integer,     -- the condition's items; 0: no condition
    p_after             bigint,      -- the condition's position
    p_item_tag_items    integer[],   -- per tag of the condition: its item, from 1
    p_item_tags         text[],      -- per tag of the condition: the tag (each once)
    p_item_name_items   integer[],   -- per name of the condition: its item, from 1
    p_item_names        text[],      -- per name of the condition: the name
    p_held              boolean,
    OUT o_status        integer,
    OUT o_stream_version bigint,
    OUT o_last_position bigint,
    OUT o_event_id      uuid,
    OUT o_existing_type text)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
SET jit = off
AS $factum$
DECLARE
    v_count        bigint := cardinality(p_event_ids);
    v_ord          bigint;
    v_stream       text;
    v_version      bigint;
    v_id           uuid;
    v_type         text;
    v_same         bigint;
    v_last         bigint;
    v_first        bigint;
    v_previous     bytea;
    v_positions    bigint[];
    v_hashes       bytea[];
    v_predecessors bytea[];
    v_item         integer;
    v_item_tags    text[];
    v_item_names   text[];
    v_found        bigint;
    v_failed       bigint;
    v_all_tagged   boolean := true;
    v_first_tags   text[];
BEGIN
    -- The locks. A condition's items each walk their first tag (an item's tags are
    -- sorted) when every item has tags.
    IF p_items > 0 THEN
        SELECT count(*) = p_items, array_agg(f.tag) INTO v_all_tagged, v_first_tags
          FROM (SELECT DISTINCT ON (c.item) c.tag
                  FROM unnest(p_item_tag_items, p_item_tags) AS c(item, tag)
                 ORDER BY c.item, c.tag) AS f;
    END IF;
    IF NOT p_held AND (NOT v_all_tagged OR pg_current_xact_id_if_assigned() IS NOT NULL) THEN
        p_held := true;
    END IF;
    -- A lock per tag fills the server's lock table for a large batch (64 per connection
    -- by default): beyond 64 distinct tags the append is held instead.
    IF NOT p_held AND cardinality(p_item_tags) + cardinality(p_tag_values) > 64 THEN
        p_held := (SELECT count(DISTINCT t.tag)
                     FROM (SELECT unnest(p_item_tags) UNION SELECT unnest(p_tag_values)) AS t(tag)) > 64;
    END IF;
    IF p_held THEN
        PERFORM pg_advisory_xact_lock(1717658484, {{lock_key}});
    ELSE
        -- One statement takes the tag locks in key order (the sorted subquery is run
        -- as such, row by row), one the stream's and the append lock.
        PERFORM CASE WHEN k.exclusive THEN pg_advisory_xact_lock(k.key)
                     ELSE pg_advisory_xact_lock_shared(k.key) END
          FROM (SELECT l.key, bool_or(l.exclusive) AS exclusive
                  FROM (SELECT hashtextextended('tag ' || c.tag, {{lock_key}}) AS key,
                               true AS exclusive
                          FROM unnest(p_item_tags) AS c(tag)
                        UNION ALL
                        SELECT hashtextextended('tag ' || b.tag, {{lock_key}}), false
                          FROM unnest(p_tag_values) AS b(tag)) AS l
                 GROUP BY l.key
                 ORDER BY l.key) AS k;
        PERFORM pg_advisory_xact_lock(hashtextextended('stream ' || p_stream_id, {{lock_key}})),
                pg_advisory_xact_lock_shared(1717658484, {{lock_key}});
    END IF;

    -- Idempotency first, as `factum_append`: a batch stored already is answered as
    -- such, never as a failed condition.
    IF v_count > 0 THEN
        SELECT b.ord, e.stream_id, e.stream_version, e.event_id
          INTO v_ord, v_stream, v_version, v_id
          FROM unnest(p_event_ids) WITH ORDINALITY AS b(id, ord)
          JOIN {{schema}}.events e ON e.event_id = b.id
         ORDER BY b.ord
         LIMIT 1;
        IF FOUND THEN
            o_status := 4;
            IF v_stream <> p_stream_id OR v_ord <> 1 THEN
                o_event_id := v_id;
                RETURN;
            END IF;
            SELECT count(*), max(e.position) INTO v_same, o_last_position
              FROM unnest(p_event_ids) WITH ORDINALITY AS b(id, ord)
              JOIN {{schema}}.events e ON e.event_id = b.id
               AND e.stream_id = p_stream_id
               AND e.stream_version = v_version - 1 + b.ord;
            v_version := v_version - 1;
            IF v_same <> v_count OR NOT (CASE p_expected_kind
                WHEN 0 THEN true
                WHEN 1 THEN v_version = 0
                WHEN 2 THEN v_version > 0
                ELSE v_version > 0 AND v_version = p_expected_version END) THEN
                o_event_id := p_event_ids[1];
                o_last_position := NULL;
                RETURN;
            END IF;
            o_status := 1;
            o_stream_version := v_version + v_count;
            RETURN;
        END IF;
    END IF;

    -- The condition: the first event after `p_after` one of its items matches. When
    -- every item has tags, one look at their first tags' rows after `p_after` comes
    -- first: without any, nothing matches (a matching event carries its item's tags),
    -- and the walks are spared. Otherwise an item with tags walks its first tag's rows
    -- and checks the others and the names there.
    -- The look is one per tag, each an equality with a limit of its own: that plan is
    -- an index probe whatever the statistics say, where `tag = ANY (..)` under a
    -- single limit scanned the whole table on estimates of a table not yet analysed.
    IF p_items > 0 AND v_all_tagged THEN
        PERFORM 1 FROM unnest(v_first_tags) AS f(tag)
          CROSS JOIN LATERAL (SELECT 1 FROM {{schema}}.event_tags t
                               WHERE t.tag = f.tag AND t.position > p_after
                               LIMIT 1) AS r
         LIMIT 1;
        IF NOT FOUND THEN
            p_items := 0;
        END IF;
    END IF;
    FOR v_item IN 1 .. p_items LOOP
        v_item_tags := ARRAY(SELECT c.tag FROM unnest(p_item_tags, p_item_tag_items) AS c(tag, item)
                              WHERE c.item = v_item);
        v_item_names := ARRAY(SELECT c.name FROM unnest(p_item_names, p_item_name_items) AS c(name, item)
                               WHERE c.item = v_item);
        IF cardinality(v_item_tags) = 0 THEN
            SELECT min(e.position) INTO v_found
              FROM {{schema}}.events e
             WHERE e.position > p_after
               AND (cardinality(v_item_names) = 0 OR e.name = ANY (v_item_names));
        ELSE
            SELECT min(t.position) INTO v_found
              FROM {{schema}}.event_tags t
             WHERE t.tag = v_item_tags[1] AND t.position > p_after
               AND (cardinality(v_item_names) = 0
                    OR EXISTS (SELECT 1 FROM {{schema}}.events e
                                WHERE e.position = t.position AND e.name = ANY (v_item_names)))
               AND (SELECT count(*) FROM {{schema}}.event_tags o
                     WHERE o.position = t.position AND o.tag = ANY (v_item_tags))
                   = cardinality(v_item_tags);
        END IF;
        IF v_found IS NOT NULL AND (v_failed IS NULL OR v_found < v_failed) THEN
            v_failed := v_found;
        END IF;
    END LOOP;
    IF v_failed IS NOT NULL THEN
        o_status := 6;
        o_last_position := v_failed;
        RETURN;
    END IF;

    -- The stream's head: the expected version, then the stream type.
    SELECT e.stream_version, e.stream_type, e.hash INTO v_version, v_type, v_previous
      FROM {{schema}}.events e
     WHERE e.stream_id = p_stream_id
     ORDER BY e.stream_version DESC
     LIMIT 1;
    IF NOT coalesce(CASE p_expected_kind
            WHEN 0 THEN true
            WHEN 1 THEN v_version IS NULL
            WHEN 2 THEN v_version IS NOT NULL
            ELSE v_version = p_expected_version END, false) THEN
        o_status := 2;
        o_stream_version := v_version;
        RETURN;
    END IF;
    IF v_type <> p_stream_type THEN
        o_status := 3;
        o_existing_type := v_type;
        RETURN;
    END IF;
    IF v_count = 0 THEN
        o_status := 0;
        o_stream_version := coalesce(v_version, 0);
        RETURN;
    END IF;
    IF v_version IS NULL THEN
        v_version := 0;
        v_previous := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
    END IF;

    -- The positions, as `factum_append` takes them.
    v_last := coalesce(pg_sequence_last_value('{{schema}}.events_position_seq'), 0);
    PERFORM pg_advisory_xact_lock_shared({{lock_key}}, (v_last << 32 >> 32)::integer);
    IF p_held THEN
        v_first := nextval('{{schema}}.events_position_seq');
        IF v_count > 1 THEN
            PERFORM setval('{{schema}}.events_position_seq', v_first + v_count - 1);
        END IF;
        v_positions := ARRAY(SELECT generate_series(v_first, v_first + v_count - 1));
    ELSIF v_count = 1 THEN
        v_positions := ARRAY[nextval('{{schema}}.events_position_seq')];
    ELSE
        v_positions := ARRAY(SELECT nextval('{{schema}}.events_position_seq')
                               FROM generate_series(1, v_count));
    END IF;

    -- The hashes, as `factum_append` chains them, with the tags' text after the payload
    -- when the event has tags.
    FOR i IN 1 .. v_count LOOP
        v_predecessors[i] := v_previous;
        v_previous := sha256(
            convert_to('factum/event/v1', 'UTF8')
            || v_previous
            || int4send(16) || uuid_send(p_event_ids[i])
            || int8send(v_positions[i])
            || int4send(octet_length(convert_to(p_stream_id, 'UTF8')))
            || convert_to(p_stream_id, 'UTF8')
            || int4send(octet_length(convert_to(p_stream_type, 'UTF8')))
            || convert_to(p_stream_type, 'UTF8')
            || int8send(v_version + i)
            || int4send(octet_length(convert_to(p_names[i], 'UTF8')))
            || convert_to(p_names[i], 'UTF8')
            || int8send(p_schema_versions[i])
            || int8send(floor(extract(epoch FROM p_occurred_at[i]))::bigint)
            || int8send(((extract(epoch FROM p_occurred_at[i])
                          - floor(extract(epoch FROM p_occurred_at[i]))) * 1000000000)::bigint)
            || CASE WHEN p_metadata[i] IS NULL THEN '\x00'::bytea
                    ELSE '\x01'::bytea
                         || int4send(octet_length(convert_to(p_metadata[i], 'UTF8')))
                         || convert_to(p_metadata[i], 'UTF8') END
            || int4send(octet_length(convert_to(p_payloads[i], 'UTF8')))
            || convert_to(p_payloads[i], 'UTF8')
            || CASE WHEN p_tags[i] IS NULL THEN ''::bytea
                    ELSE '\x01'::bytea
                         || int4send(octet_length(convert_to(p_tags[i], 'UTF8')))
                         || convert_to(p_tags[i], 'UTF8') END);
        v_hashes[i] := v_previous;
    END LOOP;

    INSERT INTO {{schema}}.events (position, stream_id, stream_type, stream_version,
                                   event_id, name, schema_version, payload, occurred_at,
                                   metadata, hash, predecessor, tags)
    OVERRIDING SYSTEM VALUE
    SELECT v_positions[b.ord], p_stream_id, p_stream_type, v_version + b.ord, b.id, b.name,
           b.schema_version, b.payload::json, b.occurred_at, b.metadata::json,
           v_hashes[b.ord], v_predecessors[b.ord], b.tags
      FROM unnest(p_event_ids, p_names, p_schema_versions, p_payloads, p_occurred_at,
                  p_metadata, p_tags)
           WITH ORDINALITY AS b(id, name, schema_version, payload, occurred_at, metadata,
                                tags, ord)
     ORDER BY b.ord;
    INSERT INTO {{schema}}.event_tags (tag, position)
    SELECT t.tag, v_positions[t.ord]
      FROM unnest(p_tag_values, p_tag_events) AS t(tag, ord);
    o_last_position := v_positions[v_count];
    o_status := 0;
    o_stream_version := v_version + v_count;
    IF p_held THEN
        PERFORM pg_notify('{{channel}}', o_last_position::text);
    END IF;
END
$factum$;
