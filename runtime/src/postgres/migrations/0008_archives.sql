CREATE TABLE {{schema}}.archives (
            upto        bigint      PRIMARY KEY CHECK (upto >= 1),
            after       bigint      NOT NULL CHECK (after >= 0 AND after < upto),
            file        text        NOT NULL,
            digest      bytea       NOT NULL,
            events      bigint      NOT NULL,
            archived_at timestamptz NOT NULL
        );
