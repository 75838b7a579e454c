CREATE TABLE {{schema}}.subject_keys (
            subject      text        PRIMARY KEY,
            wrapped_key  bytea,
            created_at   timestamptz NOT NULL,
            forgotten_at timestamptz,
            forgotten_by text,
            CHECK ((wrapped_key IS NULL) = (forgotten_at IS NOT NULL)),
            CHECK ((forgotten_at IS NULL) = (forgotten_by IS NULL))
        );
