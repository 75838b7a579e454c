-- `factum_append` (a batch, as arrays) in one PL/pgSQL function, as migration 11 did for
-- `factum_append_one`: the locks of `factum_append_lock`, the checks of
-- `factum_append_checked`, the positions of `factum_take_positions` and every event's
-- hash, inline, with the same statuses and positions. The hashes are chained in a loop
-- from the stream's head, which the expected-version check reads anyway, and inserted
-- with the rows, so the chaining trigger (a PL/pgSQL call, a predecessor probe and a
-- hash call per row) no longer runs for a batch.
CREATE OR REPLACE FUNCTION {{schema}}.factum_append(
    p_stream_id         text,
    p_stream_type       text,
    p_expected_kind     integer,     -- 0 any, 1 no stream, 2 stream exists, 3 exact
    p_expected_version  bigint,
    p_batch_duplicate   uuid,        -- an id repeated inside the batch, or NULL
    p_event_ids         uuid[],
    p_names             text[],
    p_schema_versions   bigint[],
    p_payloads          text[],
    p_occurred_at       timestamptz[],
    p_metadata          text[],
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
BEGIN
    -- The locks (`factum_append_lock`).
    IF p_held OR pg_current_xact_id_if_assigned() IS NOT NULL THEN
        p_held := true;
        PERFORM pg_advisory_xact_lock(1717658484, {{lock_key}});
    ELSE
        PERFORM pg_advisory_xact_lock(hashtextextended('stream ' || p_stream_id, {{lock_key}}));
        PERFORM pg_advisory_xact_lock_shared(1717658484, {{lock_key}});
    END IF;

    -- Idempotency: the first id of the batch that is already stored.
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
        -- Stored as this batch: every id at the version its place gives it.
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

    -- The stream's head: the expected version, then the stream type; its hash is what
    -- the batch chains to.
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
    IF p_batch_duplicate IS NOT NULL THEN
        o_status := 4;
        o_event_id := p_batch_duplicate;
        RETURN;
    END IF;
    IF v_version IS NULL THEN
        v_version := 0;
        v_previous := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
    END IF;

    -- The positions (`factum_take_positions`): the position lock, keyed by the last
    -- position taken, then a consecutive block (held) or one at a time (concurrent).
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

    -- The hashes, each chained to the one before (`factum_event_hash`'s expression; a
    -- head stored without a hash, which no migration leaves, leaves them NULL, and the
    -- trigger raises its error).
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
            || convert_to(p_payloads[i], 'UTF8'));
        v_hashes[i] := v_previous;
    END LOOP;

    INSERT INTO {{schema}}.events (position, stream_id, stream_type, stream_version,
                                   event_id, name, schema_version, payload, occurred_at,
                                   metadata, hash, predecessor)
    OVERRIDING SYSTEM VALUE
    SELECT v_positions[b.ord], p_stream_id, p_stream_type, v_version + b.ord, b.id, b.name,
           b.schema_version, b.payload::json, b.occurred_at, b.metadata::json,
           v_hashes[b.ord], v_predecessors[b.ord]
      FROM unnest(p_event_ids, p_names, p_schema_versions, p_payloads, p_occurred_at,
                  p_metadata)
           WITH ORDINALITY AS b(id, name, schema_version, payload, occurred_at, metadata,
                                ord)
     ORDER BY b.ord;
    o_last_position := v_positions[v_count];
    o_status := 0;
    o_stream_version := v_version + v_count;
    IF p_held THEN
        PERFORM pg_notify('{{channel}}', o_last_position::text);
    END IF;
END
$factum$;
