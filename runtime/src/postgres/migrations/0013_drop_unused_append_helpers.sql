-- Migrations 11 and 12 run every append step in `factum_append_one` and `factum_append`
-- themselves; nothing calls migration 9's helpers any more. Dropped, so that the schema
-- shows the one path appends take.
DROP FUNCTION {{schema}}.factum_append_checked(text, text, integer, bigint, uuid, uuid[],
    text[], bigint[], text[], timestamptz[], text[], boolean);
DROP FUNCTION {{schema}}.factum_append_one_checked(text, text, integer, bigint, uuid, text,
    bigint, text, timestamptz, text, boolean);
DROP FUNCTION {{schema}}.factum_take_positions(bigint, boolean);
DROP FUNCTION {{schema}}.factum_append_lock(text, boolean);
