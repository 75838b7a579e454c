-- Migration 9's settled head also counted the lock of an append that read the last
-- position `q` after this function did: its key, taken as the nearest value at or below
-- this function's `q`, wrapped 2^32 back, and the function found no settled event at all.
-- A store that had not yet heard of a newer head then saw an empty log while appends
-- ran. A key ahead of `q` (by less than 2^31) belongs to an append whose positions all
-- come after `q`, so it bounds nothing here.
CREATE OR REPLACE FUNCTION {{schema}}.factum_settled_head() RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $factum$
DECLARE
    v_last  bigint;
    v_bound bigint;
    v_head  bigint;
BEGIN
    SELECT last_value - (NOT is_called)::integer INTO v_last
      FROM {{schema}}.events_position_seq;
    SELECT least(v_last, min(v_last - ((v_last - k.objid::bigint) & 4294967295)))
      INTO v_bound
      FROM pg_locks k
     WHERE k.locktype = 'advisory' AND k.objsubid = 2 AND k.granted
       AND k.mode = 'ShareLock'
       AND k.classid = ({{lock_key}}::bigint & 4294967295)::oid
       AND k.database = (SELECT d.oid FROM pg_database d
                          WHERE d.datname = current_database())
       AND ((v_last - k.objid::bigint) & 4294967295) < 2147483648;
    SELECT max(e.position) INTO v_head FROM {{schema}}.events e
     WHERE e.position <= v_bound;
    RETURN v_head;
END
$factum$;
