CREATE TABLE {{schema}}.events (
            position       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            stream_id      text        NOT NULL,
            stream_type    text        NOT NULL,
            stream_version bigint      NOT NULL CHECK (stream_version > 0),
            event_id       uuid        NOT NULL,
            name           text        NOT NULL,
            schema_version bigint      NOT NULL,
            payload        json        NOT NULL,
            occurred_at    timestamptz NOT NULL,
            metadata       json        NOT NULL,
            CONSTRAINT events_event_id_key UNIQUE (event_id),
            CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version)
        );
        CREATE TABLE {{schema}}.snapshots (
            stream_id      text        PRIMARY KEY,
            stream_version bigint      NOT NULL,
            schema_version bigint      NOT NULL,
            state          json        NOT NULL,
            taken_at       timestamptz NOT NULL
        );