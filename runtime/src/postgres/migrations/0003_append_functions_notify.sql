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
            OUT o_status        integer,
            OUT o_stream_version bigint,
            OUT o_last_position bigint,
            OUT o_event_id      uuid,
            OUT o_existing_type text)
        LANGUAGE plpgsql VOLATILE AS $factum$
        DECLARE
            v_count   bigint := cardinality(p_event_ids);
            v_ord     bigint;
            v_stream  text;
            v_version bigint;
            v_id      uuid;
            v_type    text;
            v_same    bigint;
        BEGIN
            -- Positions are taken and committed in order: see the store's documentation.
            PERFORM pg_advisory_xact_lock(1717658484, {{lock_key}});

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

            -- The stream's head: the expected version, then the stream type.
            SELECT e.stream_version, e.stream_type INTO v_version, v_type
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

            v_version := coalesce(v_version, 0);
            WITH inserted AS (
                INSERT INTO {{schema}}.events (stream_id, stream_type, stream_version, event_id, name,
                                        schema_version, payload, occurred_at, metadata)
                SELECT p_stream_id, p_stream_type, v_version + b.ord, b.id, b.name,
                       b.schema_version, b.payload::json, b.occurred_at, b.metadata::json
                  FROM unnest(p_event_ids, p_names, p_schema_versions, p_payloads,
                              p_occurred_at, p_metadata)
                       WITH ORDINALITY AS b(id, name, schema_version, payload, occurred_at,
                                            metadata, ord)
                 ORDER BY b.ord
                RETURNING position)
            SELECT max(position) INTO o_last_position FROM inserted;
            o_status := 0;
            o_stream_version := v_version + v_count;
            PERFORM pg_notify('{{channel}}', o_last_position::text);
        END
        $factum$;

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
            OUT o_status        integer,
            OUT o_stream_version bigint,
            OUT o_last_position bigint,
            OUT o_event_id      uuid,
            OUT o_existing_type text)
        LANGUAGE plpgsql VOLATILE AS $factum$
        DECLARE
            v_stream   text;
            v_version  bigint;
            v_position bigint;
            v_head     bigint;
            v_type     text;
        BEGIN
            PERFORM pg_advisory_xact_lock(1717658484, {{lock_key}});

            -- One statement, two index probes: the event id, and the stream's head.
            SELECT d.stream_id, d.stream_version, d.position, h.stream_version, h.stream_type
              INTO v_stream, v_version, v_position, v_head, v_type
              FROM (SELECT) AS one
              LEFT JOIN {{schema}}.events d ON d.event_id = p_event_id
              LEFT JOIN LATERAL (
                  SELECT e.stream_version, e.stream_type
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

            v_version := coalesce(v_version, 0) + 1;
            INSERT INTO {{schema}}.events (stream_id, stream_type, stream_version, event_id, name,
                                    schema_version, payload, occurred_at, metadata)
            VALUES (p_stream_id, p_stream_type, v_version, p_event_id, p_name, p_schema_version,
                    p_payload::json, p_occurred_at, p_metadata::json)
            RETURNING position INTO o_last_position;
            o_status := 0;
            o_stream_version := v_version;
            PERFORM pg_notify('{{channel}}', o_last_position::text);
        END
        $factum$;