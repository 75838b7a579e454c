-- Appends to different streams commit side by side; followers read up to the settled
        -- head. See the store's documentation for the argument.
        --
        -- The settled head now, in three steps: the last position taken `q`; the bounds
        -- the appends in flight hold, each below every position that append takes (the
        -- key of the lock it took before taking any: its low 32 bits; the rest is that of
        -- the nearest such value at or below `q`); then, in a new snapshot (this function
        -- is VOLATILE: each statement takes its own, at READ COMMITTED), the newest event
        -- at or below `q` and all those bounds. An append still to commit a position at or
        -- below it would have held its lock at the look, or taken its positions after `q`
        -- was read, hence above it.
        CREATE FUNCTION {{schema}}.factum_settled_head() RETURNS bigint
        LANGUAGE plpgsql VOLATILE AS $factum$
        DECLARE
            v_last  bigint;
            v_bound bigint;
            v_head  bigint;
        BEGIN
            SELECT last_value - (NOT is_called)::integer INTO v_last
              FROM {{schema}}.events_position_seq;
            SELECT least(v_last, min(v_last - ((v_last - k.objid::bigint) & 4294967295)))
              INTO v_bound
              FROM pg_locks k
             WHERE k.locktype = 'advisory' AND k.objsubid = 2 AND k.granted
               AND k.mode = 'ShareLock'
               AND k.classid = ({{lock_key}}::bigint & 4294967295)::oid
               AND k.database = (SELECT d.oid FROM pg_database d
                                  WHERE d.datname = current_database());
            SELECT max(e.position) INTO v_head FROM {{schema}}.events e
             WHERE e.position <= v_bound;
            RETURN v_head;
        END
        $factum$;

        -- The hash of migration 5, unchanged, now in PL/pgSQL: as a SQL function it cannot
        -- be inlined (`convert_to` is STABLE), so PostgreSQL planned its body again in every
        -- transaction that appended, which cost more than the rest of the append; a
        -- PL/pgSQL function keeps its plan for the session.
        CREATE OR REPLACE FUNCTION {{schema}}.factum_event_hash(
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
        RETURNS bytea LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $factum$
        BEGIN
            RETURN sha256(
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
                || convert_to(p_payload, 'UTF8'));
        END
        $factum$;

        DROP FUNCTION {{schema}}.factum_append_command(uuid, text, timestamptz, text, text,
            integer, bigint, uuid[], text[], bigint[], text[], timestamptz[], text[]);
        DROP FUNCTION {{schema}}.factum_append(text, text, integer, bigint, uuid, uuid[],
            text[], bigint[], text[], timestamptz[], text[]);
        DROP FUNCTION {{schema}}.factum_append_one(text, text, integer, bigint, uuid, text,
            bigint, text, timestamptz, text);

        -- The locks an append takes before its checks, by mode (see `factum_append`);
        -- returns whether the append is held. The append lock: shared by concurrent
        -- appends, exclusive (so after every concurrent append in flight has ended, and
        -- before any other starts) by held ones.
        CREATE FUNCTION {{schema}}.factum_append_lock(p_stream_id text, p_held boolean)
        RETURNS boolean LANGUAGE plpgsql VOLATILE AS $factum$
        BEGIN
            -- A transaction that wrote before this call is a caller's own (an outbox): it
            -- appends as `append_in_transaction` does.
            IF p_held OR pg_current_xact_id_if_assigned() IS NOT NULL THEN
                PERFORM pg_advisory_xact_lock(1717658484, {{lock_key}});
                RETURN true;
            END IF;
            PERFORM pg_advisory_xact_lock(hashtextextended('stream ' || p_stream_id, {{lock_key}}));
            PERFORM pg_advisory_xact_lock_shared(1717658484, {{lock_key}});
            RETURN false;
        END
        $factum$;

        -- Takes `p_count` positions, in order, for an append whose checks passed. First it
        -- takes a shared lock keyed by the last position taken (low 32 bits), which it
        -- holds until its transaction ends: every position it takes is above that key, and
        -- `factum_settled_head` reads no further while the lock is held. A held
        -- append, alone to take positions (every concurrent append waits for the append
        -- lock it holds), takes a consecutive block; concurrent appends take theirs one by
        -- one, so a batch may interleave with other appends' positions.
        CREATE FUNCTION {{schema}}.factum_take_positions(p_count bigint, p_held boolean)
        RETURNS bigint[] LANGUAGE plpgsql VOLATILE AS $factum$
        DECLARE
            v_last  bigint;
            v_first bigint;
        BEGIN
            SELECT last_value - (NOT is_called)::integer INTO v_last
              FROM {{schema}}.events_position_seq;
            PERFORM pg_advisory_xact_lock_shared({{lock_key}}, (v_last << 32 >> 32)::integer);
            IF p_held THEN
                v_first := nextval('{{schema}}.events_position_seq');
                IF p_count > 1 THEN
                    PERFORM setval('{{schema}}.events_position_seq', v_first + p_count - 1);
                END IF;
                RETURN ARRAY(SELECT generate_series(v_first, v_first + p_count - 1));
            END IF;
            RETURN ARRAY(SELECT nextval('{{schema}}.events_position_seq')
                           FROM generate_series(1, p_count));
        END
        $factum$;

        -- The checks and the insert of a batch, under the stream's lock (concurrent) or the
        -- append lock (held): `factum_append` takes them. Statuses as before (0 written, 1
        -- already written, 2 conflict, 3 stream type, 4 duplicate id).
        CREATE FUNCTION {{schema}}.factum_append_checked(
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
            v_count   bigint := cardinality(p_event_ids);
            v_ord     bigint;
            v_stream  text;
            v_version bigint;
            v_id      uuid;
            v_type    text;
            v_same    bigint;
            v_positions bigint[];
        BEGIN
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
            v_positions := {{schema}}.factum_take_positions(v_count, p_held);
            INSERT INTO {{schema}}.events (position, stream_id, stream_type, stream_version,
                                    event_id, name, schema_version, payload, occurred_at,
                                    metadata)
            OVERRIDING SYSTEM VALUE
            SELECT v_positions[b.ord], p_stream_id, p_stream_type, v_version + b.ord, b.id,
                   b.name, b.schema_version, b.payload::json, b.occurred_at, b.metadata::json
              FROM unnest(p_event_ids, p_names, p_schema_versions, p_payloads,
                          p_occurred_at, p_metadata)
                   WITH ORDINALITY AS b(id, name, schema_version, payload, occurred_at,
                                        metadata, ord)
             ORDER BY b.ord;
            o_last_position := v_positions[v_count];
            o_status := 0;
            o_stream_version := v_version + v_count;
        END
        $factum$;

        -- The same for one event, given as scalars.
        CREATE FUNCTION {{schema}}.factum_append_one_checked(
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
            v_stream   text;
            v_version  bigint;
            v_position bigint;
            v_head     bigint;
            v_type     text;
        BEGIN
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
            o_last_position := ({{schema}}.factum_take_positions(1, p_held))[1];
            INSERT INTO {{schema}}.events (position, stream_id, stream_type, stream_version,
                                    event_id, name, schema_version, payload, occurred_at,
                                    metadata)
            OVERRIDING SYSTEM VALUE
            VALUES (o_last_position, p_stream_id, p_stream_type, v_version, p_event_id, p_name,
                    p_schema_version, p_payload::json, p_occurred_at, p_metadata::json);
            o_status := 0;
            o_stream_version := v_version;
        END
        $factum$;

        -- An append, in one of two modes (see the store's documentation):
        -- * concurrent (`p_held` false, the store's own one-statement transactions): the
        --   stream's lock and the append lock shared, until the end of the transaction, so
        --   that appends to different streams run and commit side by side. The
        --   announcement is the caller's, after the commit.
        -- * held (`p_held` true, or a transaction that had written before this call): the
        --   append lock exclusive until the end of the transaction; announced with
        --   `pg_notify` at commit.
        CREATE FUNCTION {{schema}}.factum_append(
            p_stream_id         text,
            p_stream_type       text,
            p_expected_kind     integer,
            p_expected_version  bigint,
            p_batch_duplicate   uuid,
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
        BEGIN
            p_held := {{schema}}.factum_append_lock(p_stream_id, p_held);
            SELECT * INTO o_status, o_stream_version, o_last_position, o_event_id,
                          o_existing_type
              FROM {{schema}}.factum_append_checked(p_stream_id, p_stream_type,
                       p_expected_kind, p_expected_version, p_batch_duplicate, p_event_ids,
                       p_names, p_schema_versions, p_payloads, p_occurred_at, p_metadata,
                       p_held);
            IF p_held AND o_status = 0 THEN
                PERFORM pg_notify('{{channel}}', o_last_position::text);
            END IF;
        END
        $factum$;

        CREATE FUNCTION {{schema}}.factum_append_one(
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
        BEGIN
            p_held := {{schema}}.factum_append_lock(p_stream_id, p_held);
            SELECT * INTO o_status, o_stream_version, o_last_position, o_event_id,
                          o_existing_type
              FROM {{schema}}.factum_append_one_checked(p_stream_id, p_stream_type,
                       p_expected_kind, p_expected_version, p_event_id, p_name,
                       p_schema_version, p_payload, p_occurred_at, p_metadata, p_held);
            IF p_held AND o_status = 0 THEN
                PERFORM pg_notify('{{channel}}', o_last_position::text);
            END IF;
        END
        $factum$;

        -- A command's append: submissions of one command id queue on the command's lock
        -- (each finds the record of the one before it); the events are appended by
        -- `factum_append` in its concurrent mode; a command without events checks the
        -- stream under the stream's lock.
        CREATE FUNCTION {{schema}}.factum_append_command(
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
            OUT o_status        integer,
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
            PERFORM pg_advisory_xact_lock(hashtextextended('command ' || p_command_id::text, {{lock_key}}));

            -- Recorded already: nothing is written, whatever the stream holds now.
            PERFORM 1 FROM {{schema}}.commands c WHERE c.command_id = p_command_id;
            IF FOUND THEN
                o_status := 5;
                RETURN;
            END IF;

            IF v_count = 0 THEN
                -- No events: the expected version and the stream type still hold.
                PERFORM pg_advisory_xact_lock(hashtextextended('stream ' || p_stream_id, {{lock_key}}));
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
                           p_payloads, p_occurred_at, p_metadata, false) AS a;
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
