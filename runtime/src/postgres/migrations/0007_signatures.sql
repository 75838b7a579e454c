ALTER TABLE {{schema}}.events ADD COLUMN signature bytea;
