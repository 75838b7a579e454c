CREATE TABLE {{schema}}.factum_process_instances (
    instance text PRIMARY KEY,
    status text NOT NULL,
    state text NOT NULL,
    correlation_id uuid NOT NULL,
    compensations text NOT NULL,
    completing boolean NOT NULL,
    failure text,
    started_at bigint NOT NULL,
    updated_at bigint NOT NULL
);
CREATE TABLE {{schema}}.factum_process_outbox (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance text NOT NULL,
    kind text NOT NULL,
    command text NOT NULL,
    compensation text,
    command_id uuid NOT NULL UNIQUE,
    correlation_id uuid NOT NULL,
    causation_id uuid NOT NULL,
    state text NOT NULL,
    outcome text,
    position bigint NOT NULL
);
CREATE INDEX factum_process_outbox_pending
    ON {{schema}}.factum_process_outbox (state, instance, seq);
