ALTER TABLE {{schema}}.events ADD COLUMN hash bytea, ADD COLUMN predecessor bytea;

        -- The layout of `factum::integrity::chain`, over the stored text of each column.
        CREATE FUNCTION {{schema}}.factum_event_hash(
            p_predecessor     bytea,
            p_event_id        uuid,
            p_position        bigint,
            p_stream_id       text,
            p_stream_type     text,
            p_stream_version  bigint,
            p_name            text,
            p_schema_version  bigint,
            p_occurred_at     timestamptz,
            p_metadata        text,
            p_payload         text)
        RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $factum$
            SELECT sha256(
                convert_to('factum/event/v1', 'UTF8')
                || p_predecessor
                || int4send(16) || uuid_send(p_event_id)
                || int8send(p_position)
                || int4send(octet_length(convert_to(p_stream_id, 'UTF8')))
                || convert_to(p_stream_id, 'UTF8')
                || int4send(octet_length(convert_to(p_stream_type, 'UTF8')))
                || convert_to(p_stream_type, 'UTF8')
                || int8send(p_stream_version)
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
                || convert_to(p_payload, 'UTF8'))
        $factum$;

        -- The events stored before: each stream chained in version order.
        DO $factum$
        DECLARE
            r       record;
            v_prev  bytea;
            v_hash  bytea;
            v_last  text;
        BEGIN
            FOR r IN SELECT position, stream_id, stream_type, stream_version, event_id, name,
                            schema_version, occurred_at, metadata::text AS metadata,
                            payload::text AS payload
                       FROM {{schema}}.events ORDER BY stream_id, stream_version LOOP
                IF v_last IS DISTINCT FROM r.stream_id THEN
                    v_prev := decode(repeat('00', 32), 'hex');
                    v_last := r.stream_id;
                END IF;
                v_hash := {{schema}}.factum_event_hash(v_prev, r.event_id, r.position,
                    r.stream_id, r.stream_type, r.stream_version, r.name, r.schema_version,
                    r.occurred_at, r.metadata, r.payload);
                UPDATE {{schema}}.events SET hash = v_hash, predecessor = v_prev
                 WHERE position = r.position;
                v_prev := v_hash;
            END LOOP;
        END
        $factum$;

        -- Every inserted event is chained to the version before it. The append functions
        -- insert a batch in version order under the append lock, and a row-level BEFORE
        -- trigger sees the rows its statement inserted before, so a batch chains to itself.
        CREATE FUNCTION {{schema}}.factum_chain_event() RETURNS trigger
        LANGUAGE plpgsql VOLATILE AS $factum$
        BEGIN
            IF NEW.stream_version = 1 THEN
                NEW.predecessor := decode(repeat('00', 32), 'hex');
            ELSE
                SELECT e.hash INTO NEW.predecessor
                  FROM {{schema}}.events e
                 WHERE e.stream_id = NEW.stream_id
                   AND e.stream_version = NEW.stream_version - 1;
                IF NEW.predecessor IS NULL THEN
                    RAISE EXCEPTION 'factum: stream % has no hashed version % to chain version % to',
                        NEW.stream_id, NEW.stream_version - 1, NEW.stream_version;
                END IF;
            END IF;
            NEW.hash := {{schema}}.factum_event_hash(NEW.predecessor, NEW.event_id, NEW.position,
                NEW.stream_id, NEW.stream_type, NEW.stream_version, NEW.name, NEW.schema_version,
                NEW.occurred_at, NEW.metadata::text, NEW.payload::text);
            RETURN NEW;
        END
        $factum$;
        CREATE TRIGGER factum_chain BEFORE INSERT ON {{schema}}.events
            FOR EACH ROW EXECUTE FUNCTION {{schema}}.factum_chain_event();
