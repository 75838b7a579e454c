-- The transaction that appended each event, for appends whose positions are handed
        -- out in transaction-id order (see the store's documentation); NULL for the events
        -- of a transaction that held the append lock until it ended, and for the events
        -- stored before this migration (all appended under that lock).
        ALTER TABLE {{schema}}.events ADD COLUMN writer xid8;

        -- The newest settled position of the statement's snapshot (NULL: no event is):
        -- every event at or below it that will ever commit is visible in that snapshot,
        -- so a follower may read up to it and never skip one that commits later. STABLE:
        -- it answers for the snapshot of the statement that calls it.
        --
        -- A concurrent append holds the shared writers' lock from before it takes its
        -- transaction id until it ends, and takes its id and its positions under the
        -- append lock, so the ids and the positions of concurrent appends rise together.
        -- The appends that may hold positions this snapshot cannot see are those running
        -- when it was taken (in its `xip`) that held the writers' lock at the earlier
        -- look `p_appending`, or that took their id after it (not older than `p_since`,
        -- the next id before that look). Walking down from the newest event, every
        -- event written after the oldest of them is unsettled; the first that is not
        -- (written before it, or under the held lock, `writer` NULL, which waited for
        -- every append before it to end) is the settled head.
        CREATE FUNCTION {{schema}}.factum_settled_below(p_appending xid[], p_since xid8)
        RETURNS bigint LANGUAGE plpgsql STABLE AS $factum$
        DECLARE
            v_oldest xid8;
            r        record;
        BEGIN
            SELECT min(x) INTO v_oldest
              FROM pg_snapshot_xip(pg_current_snapshot()) AS x
             WHERE x >= p_since OR xid(x) = ANY(p_appending);
            FOR r IN SELECT e.position, e.writer FROM {{schema}}.events e
                      ORDER BY e.position DESC LOOP
                IF v_oldest IS NULL OR r.writer IS NULL OR r.writer < v_oldest THEN
                    RETURN r.position;
                END IF;
            END LOOP;
            RETURN NULL;
        END
        $factum$;

        -- The newest settled position now: the next transaction id, then the appends
        -- holding the writers' lock, then (in a new snapshot, this function being
        -- VOLATILE) the settled head of that snapshot. Needs READ COMMITTED, where each
        -- statement here takes its own snapshot.
        CREATE FUNCTION {{schema}}.factum_settled_head() RETURNS bigint
        LANGUAGE plpgsql VOLATILE AS $factum$
        DECLARE
            v_since     xid8;
            v_appending xid[];
            v_head      bigint;
        BEGIN
            SELECT pg_snapshot_xmax(pg_current_snapshot()) INTO v_since;
            SELECT coalesce(array_agg(t.transactionid), '{}') INTO v_appending
              FROM pg_locks k
              JOIN pg_locks t ON t.virtualtransaction = k.virtualtransaction
             WHERE k.locktype = 'advisory' AND k.objsubid = 2 AND k.granted
               AND k.mode = 'ShareLock'
               AND k.classid = 1717658487
               AND k.objid = ({{lock_key}}::bigint & 4294967295)::oid
               AND k.database = (SELECT d.oid FROM pg_database d
                                  WHERE d.datname = current_database())
               AND t.locktype = 'transactionid';
            SELECT {{schema}}.factum_settled_below(v_appending, v_since) INTO v_head;
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

        -- The checks and the insert of a batch, without locks: `factum_append` calls it
        -- under them. Statuses as before (0 written, 1 already written, 2 conflict, 3
        -- stream type, 4 duplicate id).
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
            p_writer            boolean,     -- record this transaction as the writer
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
                                        schema_version, payload, occurred_at, metadata, writer)
                SELECT p_stream_id, p_stream_type, v_version + b.ord, b.id, b.name,
                       b.schema_version, b.payload::json, b.occurred_at, b.metadata::json,
                       CASE WHEN p_writer THEN pg_current_xact_id() END
                  FROM unnest(p_event_ids, p_names, p_schema_versions, p_payloads,
                              p_occurred_at, p_metadata)
                       WITH ORDINALITY AS b(id, name, schema_version, payload, occurred_at,
                                            metadata, ord)
                 ORDER BY b.ord
                RETURNING position)
            SELECT max(position) INTO o_last_position FROM inserted;
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
            p_writer            boolean,
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
            INSERT INTO {{schema}}.events (stream_id, stream_type, stream_version, event_id, name,
                                    schema_version, payload, occurred_at, metadata, writer)
            VALUES (p_stream_id, p_stream_type, v_version, p_event_id, p_name, p_schema_version,
                    p_payload::json, p_occurred_at, p_metadata::json,
                    CASE WHEN p_writer THEN pg_current_xact_id() END)
            RETURNING position INTO o_last_position;
            o_status := 0;
            o_stream_version := v_version;
        END
        $factum$;

        -- An append, in one of two modes (see the store's documentation):
        -- * concurrent (`p_held` false, the store's own one-statement transactions): the
        --   stream's lock until the end of the transaction, then the append lock only
        --   while the transaction id and the positions are taken, so that commits of
        --   appends to different streams overlap. The announcement is the caller's, after
        --   the commit.
        -- * held (`p_held` true, or a transaction that had written before this call): the
        --   append lock until the end of the transaction, taken after every concurrent
        --   append in flight has ended; announced with `pg_notify` at commit.
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
            -- A transaction id taken before the lock would break the order of ids and
            -- positions that followers rely on: such a transaction holds the lock.
            p_held := p_held OR pg_current_xact_id_if_assigned() IS NOT NULL;
            IF p_held THEN
                PERFORM pg_advisory_xact_lock(1717658484, {{lock_key}});
                PERFORM pg_advisory_xact_lock(1717658487, {{lock_key}});
                SELECT * INTO o_status, o_stream_version, o_last_position, o_event_id,
                              o_existing_type
                  FROM {{schema}}.factum_append_checked(p_stream_id, p_stream_type,
                           p_expected_kind, p_expected_version, p_batch_duplicate, p_event_ids,
                           p_names, p_schema_versions, p_payloads, p_occurred_at, p_metadata,
                           false);
                IF o_status = 0 THEN
                    PERFORM pg_notify('{{channel}}', o_last_position::text);
                END IF;
                RETURN;
            END IF;
            PERFORM pg_advisory_xact_lock(hashtextextended('stream ' || p_stream_id, {{lock_key}}));
            PERFORM pg_advisory_lock(1717658484, {{lock_key}});
            BEGIN
                -- Shared until the end of the transaction: a held append waits for it.
                PERFORM pg_advisory_xact_lock_shared(1717658487, {{lock_key}});
                SELECT * INTO o_status, o_stream_version, o_last_position, o_event_id,
                              o_existing_type
                  FROM {{schema}}.factum_append_checked(p_stream_id, p_stream_type,
                           p_expected_kind, p_expected_version, p_batch_duplicate, p_event_ids,
                           p_names, p_schema_versions, p_payloads, p_occurred_at, p_metadata,
                           true);
            EXCEPTION WHEN OTHERS OR query_canceled THEN
                -- A session lock outlives the transaction: never leave it behind.
                PERFORM pg_advisory_unlock(1717658484, {{lock_key}});
                RAISE;
            END;
            PERFORM pg_advisory_unlock(1717658484, {{lock_key}});
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
            -- As `factum_append`.
            p_held := p_held OR pg_current_xact_id_if_assigned() IS NOT NULL;
            IF p_held THEN
                PERFORM pg_advisory_xact_lock(1717658484, {{lock_key}});
                PERFORM pg_advisory_xact_lock(1717658487, {{lock_key}});
                SELECT * INTO o_status, o_stream_version, o_last_position, o_event_id,
                              o_existing_type
                  FROM {{schema}}.factum_append_one_checked(p_stream_id, p_stream_type,
                           p_expected_kind, p_expected_version, p_event_id, p_name,
                           p_schema_version, p_payload, p_occurred_at, p_metadata, false);
                IF o_status = 0 THEN
                    PERFORM pg_notify('{{channel}}', o_last_position::text);
                END IF;
                RETURN;
            END IF;
            PERFORM pg_advisory_xact_lock(hashtextextended('stream ' || p_stream_id, {{lock_key}}));
            PERFORM pg_advisory_lock(1717658484, {{lock_key}});
            BEGIN
                PERFORM pg_advisory_xact_lock_shared(1717658487, {{lock_key}});
                SELECT * INTO o_status, o_stream_version, o_last_position, o_event_id,
                              o_existing_type
                  FROM {{schema}}.factum_append_one_checked(p_stream_id, p_stream_type,
                           p_expected_kind, p_expected_version, p_event_id, p_name,
                           p_schema_version, p_payload, p_occurred_at, p_metadata, true);
            EXCEPTION WHEN OTHERS OR query_canceled THEN
                PERFORM pg_advisory_unlock(1717658484, {{lock_key}});
                RAISE;
            END;
            PERFORM pg_advisory_unlock(1717658484, {{lock_key}});
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
