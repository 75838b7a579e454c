CREATE TABLE IF NOT EXISTS {{schema}}.versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('building', 'active', 'retired')),
    checkpoint BIGINT NOT NULL DEFAULT 0,
    set_up BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS {{schema}}.parked (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    position BIGINT NOT NULL,
    event JSONB NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    parked_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (name, version, position)
);
