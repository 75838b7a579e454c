CREATE TABLE {{schema}}.commands (
            command_id     uuid        PRIMARY KEY,
            fingerprint    text        NOT NULL,
            recorded_at    timestamptz NOT NULL,
            stream_id      text        NOT NULL,
            stream_version bigint      NOT NULL CHECK (stream_version >= 0),
            first_position bigint,
            last_position  bigint,
            event_ids      uuid[]      NOT NULL
        );
        CREATE INDEX commands_recorded_at ON {{schema}}.commands (recorded_at);

        CREATE FUNCTION {{schema}}.factum_append_command(
            p_command_id        uuid,
            p_fingerprint       text,
            p_recorded_at       timestamptz,
            p_stream_id         text,
            p_stream_type       text,
            p_expected_kind     integer,     -- 0 any, 1 no stream, 2 stream exists, 3 exact
            p_expected_version  bigint,
            p_event_ids         uuid[],      -- empty: the command recorded no events
            p_names             text[],
            p_schema_versions   bigint[],
            p_payloads          text[],
            p_occurred_at       timestamptz[],
            p_metadata          text[],
            OUT o_status        integer,     -- factum_append's, or 5: already recorded
            OUT o_stream_version bigint,
            OUT o_last_position bigint,
            OUT o_event_id      uuid,
            OUT o_existing_type text,
            OUT o_first_position bigint)
        LANGUAGE plpgsql VOLATILE AS $factum$
        DECLARE
            v_count bigint := cardinality(p_event_ids);
            v_type  text;
        BEGIN
            -- The lock every append takes: submissions of one command queue here, and
            -- each finds the record of the one before it (a new statement sees every
            -- commit made before the lock was granted).
            PERFORM pg_advisory_xact_lock(1717658484, {{lock_key}});

            -- Recorded already: nothing is written, whatever the stream holds now.
            PERFORM 1 FROM {{schema}}.commands c WHERE c.command_id = p_command_id;
            IF FOUND THEN
                o_status := 5;
                RETURN;
            END IF;

            IF v_count = 0 THEN
                -- No events: the expected version and the stream type still hold.
                SELECT e.stream_version, e.stream_type INTO o_stream_version, v_type
                  FROM {{schema}}.events e
                 WHERE e.stream_id = p_stream_id
                 ORDER BY e.stream_version DESC
                 LIMIT 1;
                IF NOT coalesce(CASE p_expected_kind
                        WHEN 0 THEN true
                        WHEN 1 THEN o_stream_version IS NULL
                        WHEN 2 THEN o_stream_version IS NOT NULL
                        ELSE o_stream_version = p_expected_version END, false) THEN
                    o_status := 2;
                    RETURN;
                END IF;
                IF v_type <> p_stream_type THEN
                    o_status := 3;
                    o_existing_type := v_type;
                    RETURN;
                END IF;
                o_status := 0;
                o_stream_version := coalesce(o_stream_version, 0);
            ELSE
                SELECT a.o_status, a.o_stream_version, a.o_last_position, a.o_event_id,
                       a.o_existing_type
                  INTO o_status, o_stream_version, o_last_position, o_event_id,
                       o_existing_type
                  FROM {{schema}}.factum_append(p_stream_id, p_stream_type, p_expected_kind,
                           p_expected_version, NULL, p_event_ids, p_names, p_schema_versions,
                           p_payloads, p_occurred_at, p_metadata) AS a;
                -- A refused append records nothing.
                IF o_status NOT IN (0, 1) THEN
                    RETURN;
                END IF;
                SELECT e.position INTO o_first_position
                  FROM {{schema}}.events e
                 WHERE e.stream_id = p_stream_id
                   AND e.stream_version = o_stream_version - v_count + 1;
            END IF;

            INSERT INTO {{schema}}.commands (command_id, fingerprint, recorded_at, stream_id,
                                             stream_version, first_position, last_position,
                                             event_ids)
            VALUES (p_command_id, p_fingerprint, p_recorded_at, p_stream_id, o_stream_version,
                    o_first_position, o_last_position, p_event_ids);
        END
        $factum$;