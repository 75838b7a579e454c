ALTER TABLE {{schema}}.factum_process_outbox ADD COLUMN traceparent text;
