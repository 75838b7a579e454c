-- Tags (`factum::tag`) and decisions across entities (`factum::store::decision`).
--
-- An event's tags are stored as the JSON array of its sorted, distinct `key:value`
-- texts (NULL without tags; the hash covers that text), and once more as one row per
-- tag in `event_tags`, whose primary key a decision's query and condition walk:
-- `tag = ? AND position > ?`, in position order.
ALTER TABLE {{schema}}.events ADD COLUMN tags text;
CREATE TABLE {{schema}}.event_tags (
    tag      text   NOT NULL,
    position bigint NOT NULL,
    PRIMARY KEY (tag, position)
);

-- `factum_decide`: `factum_append` for a batch with tags or under a condition (untagged
-- appends without one keep their functions). Same statuses, and 6: the condition
-- failed, `o_last_position` the first event after `p_after` the condition's query
-- matches; an empty batch checks the condition and the stream, and writes nothing.
--
-- The locks make the condition's check and the insert one step. Every tagged append
-- takes a lock per tag of its batch, shared; a decision takes the lock of every tag of
-- its condition exclusively. An event its condition matches carries the tags of one of
-- its items, so the writer of such an event and the decision exclude each other, and
-- the check, a statement run after the locks are granted, sees every such event
-- committed before. Tag locks come before the stream's lock (after a command's), in
-- key order, so they never deadlock. A condition with an item without tags may match
-- an event of any tags, and a batch with more than 64 tags would fill the lock table:
-- either takes the append lock exclusively, as a held append does, so no other append
-- is in flight. The decision read only up to the settled head, so
-- an event at a lower position still to commit is not passed by `p_after`.
CREATE FUNCTION {{schema}}.factum_decide(
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
LANGUAGE plpgsql VOLATILE AS $factum$
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
    v_key          bigint;
    v_exclusive    boolean;
    v_item         integer;
    v_item_tags    text[];
    v_item_names   text[];
    v_found        bigint;
    v_failed       bigint;
BEGIN
    -- The locks.
    IF p_held OR pg_current_xact_id_if_assigned() IS NOT NULL
       OR (SELECT count(DISTINCT i.item) FROM unnest(p_item_tag_items) AS i(item)) < p_items
       -- A lock per tag fills the server's lock table for a large batch (64 per
       -- connection by default): beyond 64 tags the append is held instead.
       OR (SELECT count(DISTINCT t.tag)
             FROM (SELECT unnest(p_item_tags) UNION SELECT unnest(p_tag_values)) AS t(tag)) > 64 THEN
        p_held := true;
        PERFORM pg_advisory_xact_lock(1717658484, {{lock_key}});
    ELSE
        FOR v_key, v_exclusive IN
            SELECT k.key, bool_or(k.exclusive)
              FROM (SELECT hashtextextended('tag ' || c.tag, {{lock_key}}) AS key,
                           true AS exclusive
                      FROM unnest(p_item_tags) AS c(tag)
                    UNION ALL
                    SELECT hashtextextended('tag ' || b.tag, {{lock_key}}), false
                      FROM unnest(p_tag_values) AS b(tag)) AS k
             GROUP BY k.key
             ORDER BY k.key
        LOOP
            IF v_exclusive THEN
                PERFORM pg_advisory_xact_lock(v_key);
            ELSE
                PERFORM pg_advisory_xact_lock_shared(v_key);
            END IF;
        END LOOP;
        PERFORM pg_advisory_xact_lock(hashtextextended('stream ' || p_stream_id, {{lock_key}}));
        PERFORM pg_advisory_xact_lock_shared(1717658484, {{lock_key}});
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

    -- The condition: the first event after `p_after` one of its items matches. An item
    -- with tags walks its first tag's rows and checks the others and the names there.
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

-- `factum_append_command` for a batch with tags or under a condition: the command's
-- lock and record as there, then `factum_decide` (which checks an empty batch's
-- condition and stream too). Status 5: the command is recorded already.
CREATE FUNCTION {{schema}}.factum_decide_command(
    p_command_id        uuid,
    p_fingerprint       text,
    p_recorded_at       timestamptz,
    p_stream_id         text,
    p_stream_type       text,
    p_expected_kind     integer,
    p_expected_version  bigint,
    p_event_ids         uuid[],
    p_names             text[],
    p_schema_versions   bigint[],
    p_payloads          text[],
    p_occurred_at       timestamptz[],
    p_metadata          text[],
    p_tags              text[],
    p_tag_events        bigint[],
    p_tag_values        text[],
    p_items             integer,
    p_after             bigint,
    p_item_tag_items    integer[],
    p_item_tags         text[],
    p_item_name_items   integer[],
    p_item_names        text[],
    OUT o_status        integer,
    OUT o_stream_version bigint,
    OUT o_last_position bigint,
    OUT o_event_id      uuid,
    OUT o_existing_type text,
    OUT o_first_position bigint)
LANGUAGE plpgsql VOLATILE AS $factum$
DECLARE
    v_count bigint := cardinality(p_event_ids);
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('command ' || p_command_id::text, {{lock_key}}));
    PERFORM 1 FROM {{schema}}.commands c WHERE c.command_id = p_command_id;
    IF FOUND THEN
        o_status := 5;
        RETURN;
    END IF;
    SELECT a.o_status, a.o_stream_version, a.o_last_position, a.o_event_id, a.o_existing_type
      INTO o_status, o_stream_version, o_last_position, o_event_id, o_existing_type
      FROM {{schema}}.factum_decide(p_stream_id, p_stream_type, p_expected_kind,
               p_expected_version, p_event_ids, p_names, p_schema_versions, p_payloads,
               p_occurred_at, p_metadata, p_tags, p_tag_events, p_tag_values, p_items,
               p_after, p_item_tag_items, p_item_tags, p_item_name_items, p_item_names,
               false) AS a;
    -- A refused append records nothing.
    IF o_status NOT IN (0, 1) THEN
        RETURN;
    END IF;
    IF v_count > 0 THEN
        SELECT e.position INTO o_first_position
          FROM {{schema}}.events e
         WHERE e.stream_id = p_stream_id
           AND e.stream_version = o_stream_version - v_count + 1;
    ELSE
        o_last_position := NULL;
    END IF;
    INSERT INTO {{schema}}.commands (command_id, fingerprint, recorded_at, stream_id,
                                     stream_version, first_position, last_position,
                                     event_ids)
    VALUES (p_command_id, p_fingerprint, p_recorded_at, p_stream_id, o_stream_version,
            o_first_position, o_last_position, p_event_ids);
END
$factum$;
