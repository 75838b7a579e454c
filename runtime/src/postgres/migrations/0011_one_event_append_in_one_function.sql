-- `factum_append_one` in one PL/pgSQL function: the locks of `factum_append_lock`, the
-- checks of `factum_append_one_checked`, the position of `factum_take_positions` and the
-- hash of `factum_event_hash`, inline, with the same statuses and positions. With eight
-- concurrent writers most of an append's server time went to entering those five
-- PL/pgSQL functions and the chaining trigger, and to the hash as a function call;
-- the checks themselves (one statement, two index probes) were a small part.
--
-- The stream's head, read for the expected version, is also the row the new event
-- chains to, so the insert computes the hash itself, and the trigger of migration 5 now
-- leaves alone a row that comes with its hash (batches still go through it).
DROP TRIGGER factum_chain ON {{schema}}.events;
CREATE TRIGGER factum_chain BEFORE INSERT ON {{schema}}.events
    FOR EACH ROW WHEN (NEW.hash IS NULL) EXECUTE FUNCTION {{schema}}.factum_chain_event();

CREATE OR REPLACE FUNCTION {{schema}}.factum_append_one(
    p_stream_id         text,
    p_stream_type       text,
    p_expected_kind     integer,
    p_expected_version  bigint,
    p_event_id          uuid,
    p_name              text,
    p_schema_version    bigint,
    p_payload           text,
    p_occurred_at       timestamptz,
    p_metadata          text,
    p_held              boolean,
    OUT o_status        integer,
    OUT o_stream_version bigint,
    OUT o_last_position bigint,
    OUT o_event_id      uuid,
    OUT o_existing_type text)
LANGUAGE plpgsql VOLATILE AS $factum$
DECLARE
    v_stream      text;
    v_version     bigint;
    v_position    bigint;
    v_head        bigint;
    v_type        text;
    v_predecessor bytea;
    v_last        bigint;
BEGIN
    -- The locks (`factum_append_lock`).
    IF p_held OR pg_current_xact_id_if_assigned() IS NOT NULL THEN
        p_held := true;
        PERFORM pg_advisory_xact_lock(1717658484, {{lock_key}});
    ELSE
        PERFORM pg_advisory_xact_lock(hashtextextended('stream ' || p_stream_id, {{lock_key}}));
        PERFORM pg_advisory_xact_lock_shared(1717658484, {{lock_key}});
    END IF;

    -- The checks (`factum_append_one_checked`). One statement, two index probes: the
    -- event id, and the stream's head, whose hash the new event chains to.
    SELECT d.stream_id, d.stream_version, d.position, h.stream_version, h.stream_type, h.hash
      INTO v_stream, v_version, v_position, v_head, v_type, v_predecessor
      FROM (SELECT) AS one
      LEFT JOIN {{schema}}.events d ON d.event_id = p_event_id
      LEFT JOIN LATERAL (
          SELECT e.stream_version, e.stream_type, e.hash
            FROM {{schema}}.events e
           WHERE e.stream_id = p_stream_id
           ORDER BY e.stream_version DESC
           LIMIT 1) AS h ON true;
    IF v_stream IS NOT NULL THEN
        v_version := v_version - 1;
        IF v_stream <> p_stream_id OR NOT (CASE p_expected_kind
            WHEN 0 THEN true
            WHEN 1 THEN v_version = 0
            WHEN 2 THEN v_version > 0
            ELSE v_version > 0 AND v_version = p_expected_version END) THEN
            o_status := 4;
            o_event_id := p_event_id;
            RETURN;
        END IF;
        o_status := 1;
        o_stream_version := v_version + 1;
        o_last_position := v_position;
        RETURN;
    END IF;

    v_version := v_head;
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
    IF v_version IS NULL THEN
        v_version := 1;
        v_predecessor := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
    ELSE
        v_version := v_version + 1;
    END IF;

    -- The position (`factum_take_positions` for one): the position lock, keyed by the
    -- last position taken (0 before the first), then the position.
    v_last := coalesce(pg_sequence_last_value('{{schema}}.events_position_seq'), 0);
    PERFORM pg_advisory_xact_lock_shared({{lock_key}}, (v_last << 32 >> 32)::integer);
    o_last_position := nextval('{{schema}}.events_position_seq');

    -- The row, with `factum_event_hash`'s expression inline (a head stored without a
    -- hash, which no migration leaves, gets the trigger's error).
    INSERT INTO {{schema}}.events (position, stream_id, stream_type, stream_version,
                                   event_id, name, schema_version, payload, occurred_at,
                                   metadata, hash, predecessor)
    OVERRIDING SYSTEM VALUE
    VALUES (o_last_position, p_stream_id, p_stream_type, v_version, p_event_id, p_name,
            p_schema_version, p_payload::json, p_occurred_at, p_metadata::json,
            sha256(
                convert_to('factum/event/v1', 'UTF8')
                || v_predecessor
                || int4send(16) || uuid_send(p_event_id)
                || int8send(o_last_position)
                || int4send(octet_length(convert_to(p_stream_id, 'UTF8')))
                || convert_to(p_stream_id, 'UTF8')
                || int4send(octet_length(convert_to(p_stream_type, 'UTF8')))
                || convert_to(p_stream_type, 'UTF8')
                || int8send(v_version)
                || int4send(octet_length(convert_to(p_name, 'UTF8')))
                || convert_to(p_name, 'UTF8')
                || int8send(p_schema_version)
                || int8send(floor(extract(epoch FROM p_occurred_at))::bigint)
                || int8send(((extract(epoch FROM p_occurred_at)
                              - floor(extract(epoch FROM p_occurred_at))) * 1000000000)::bigint)
                || CASE WHEN p_metadata IS NULL THEN '\x00'::bytea
                        ELSE '\x01'::bytea
                             || int4send(octet_length(convert_to(p_metadata, 'UTF8')))
                             || convert_to(p_metadata, 'UTF8') END
                || int4send(octet_length(convert_to(p_payload, 'UTF8')))
                || convert_to(p_payload, 'UTF8')),
            v_predecessor);
    o_status := 0;
    o_stream_version := v_version;
    IF p_held THEN
        PERFORM pg_notify('{{channel}}', o_last_position::text);
    END IF;
END
$factum$;
