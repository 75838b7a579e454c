CREATE TABLE {{schema}}.workers (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    worker TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (name, version, worker)
);
CREATE TABLE {{schema}}.leases (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    partition INTEGER NOT NULL,
    owner TEXT,
    expires_at TIMESTAMPTZ NOT NULL DEFAULT '-infinity',
    PRIMARY KEY (name, version, partition)
);
