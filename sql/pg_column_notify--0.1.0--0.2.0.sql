-- pg_column_notify 0.1.0 -> 0.2.0: watch options (events, key, include, exclude, durable,
-- metadata, batch), watch_columns, durable delivery (event log, read_events, ack_events,
-- prune_events), and event triggers that follow renamed and dropped columns and tables.
\echo Use "ALTER EXTENSION pg_column_notify UPDATE" to load this file. \quit

ALTER TABLE column_notify.watches
    ADD COLUMN events text[] NOT NULL DEFAULT '{update}',
    ADD COLUMN key_columns name[],
    ADD COLUMN include_columns name[],
    ADD COLUMN exclude_columns name[],
    ADD COLUMN durable boolean NOT NULL DEFAULT false,
    ADD COLUMN metadata boolean NOT NULL DEFAULT true,
    ADD COLUMN batch boolean NOT NULL DEFAULT false;

COMMENT ON FUNCTION notify_column_changed() IS
    'Trigger: NOTIFY channel (argument 1) with {id, old, new} JSON when a watched column (arguments 2..) IS DISTINCT FROM its old value';

DROP VIEW column_watches;
CREATE VIEW column_watches AS
    SELECT w.table_name, w.columns, w.channel, w.trigger_name, w.events,
           w.key_columns, w.include_columns, w.exclude_columns, w.durable, w.metadata,
           w.batch, w.created_at
    FROM column_notify.watches w
    ORDER BY w.table_name::text, w.columns;
COMMENT ON VIEW column_watches IS 'Every watch installed by watch_column(), one row per trigger';
GRANT SELECT ON column_watches TO PUBLIC;

-- The event log of durable watches. The trigger appends to it directly (a writer needs no
-- privilege on it); readers use read_events(), which never moves past an id that a running
-- transaction may still commit. Not dumped by pg_dump: it is a queue, not data.
CREATE SEQUENCE column_notify.event_ids AS bigint;
CREATE TABLE column_notify.events (
    channel text NOT NULL,
    event_id bigint NOT NULL,
    xid xid8 NOT NULL,
    created_at timestamptz NOT NULL,
    payload json NOT NULL,
    PRIMARY KEY (channel, event_id)
);
COMMENT ON TABLE column_notify.events IS
    'Events of durable watches, kept until prune_events() removes them';

-- Where each named consumer of a channel is: every event up to position is acknowledged.
CREATE TABLE column_notify.consumers (
    consumer text NOT NULL,
    channel text NOT NULL,
    position bigint NOT NULL DEFAULT 0,
    acknowledged_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, channel)
);

-- Like LISTEN, reading events is open to every role that can connect (REVOKE to restrict);
-- removing them (prune_events) takes DELETE on the log, which only its owner has.
GRANT USAGE, SELECT ON SEQUENCE column_notify.event_ids TO PUBLIC;
GRANT SELECT ON column_notify.events TO PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON column_notify.consumers TO PUBLIC;

-- watch_column gains options; the 0.1.0 three-argument form is replaced (calls with one to
-- three arguments keep working, positional or named).
DROP FUNCTION watch_column(regclass, name, text);

CREATE FUNCTION column_notify.install_watch(
    tbl regclass, cols text[], channel text, events text[], key text[], include text[], exclude text[],
    durable boolean, metadata boolean, batch boolean
) RETURNS text VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'install_watch_wrapper';

CREATE FUNCTION watch_columns(
    tbl regclass,
    cols name[],
    channel text DEFAULT NULL,
    events text[] DEFAULT '{update}',
    key name[] DEFAULT NULL,
    include name[] DEFAULT NULL,
    exclude name[] DEFAULT NULL,
    durable boolean DEFAULT false,
    metadata boolean DEFAULT true,
    batch boolean DEFAULT false
) RETURNS text
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
    RETURN column_notify.install_watch(tbl, cols::text[], channel, events, key::text[],
                                       include::text[], exclude::text[], durable,
                                       metadata, batch);
COMMENT ON FUNCTION watch_columns(regclass, name[], text, text[], name[], name[], name[], boolean, boolean, boolean) IS
    'Notify channel with {id, old, new} JSON whenever one of the columns cols of tbl changes';

CREATE FUNCTION watch_column(
    tbl regclass,
    col name,
    channel text DEFAULT NULL,
    events text[] DEFAULT '{update}',
    key name[] DEFAULT NULL,
    include name[] DEFAULT NULL,
    exclude name[] DEFAULT NULL,
    durable boolean DEFAULT false,
    metadata boolean DEFAULT true,
    batch boolean DEFAULT false
) RETURNS text
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
    RETURN column_notify.install_watch(tbl, ARRAY[col]::text[], channel, events, key::text[],
                                       include::text[], exclude::text[], durable,
                                       metadata, batch);
COMMENT ON FUNCTION watch_column(regclass, name, text, text[], name[], name[], name[], boolean, boolean, boolean) IS
    'Notify channel (default <table>_<column>_changed) with {id, old, new} JSON whenever column col of tbl changes';

-- Runs as the role that renames: only a table's owner can rename its columns, and the
-- watch is re-created with that role's rights.
CREATE FUNCTION column_notify.follow_renames() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'column_notify_follow_renames';
CREATE EVENT TRIGGER column_notify_follow_renames ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE')
    EXECUTE FUNCTION column_notify.follow_renames();

-- SECURITY DEFINER because once a table is dropped, row security can no longer tell that
-- the role owned it; the function only forgets watches of objects that were just dropped.
CREATE FUNCTION column_notify.forget_dropped() RETURNS event_trigger
    LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'column_notify_forget_dropped';
CREATE EVENT TRIGGER column_notify_forget_dropped ON sql_drop
    EXECUTE FUNCTION column_notify.forget_dropped();

-- Durable delivery: read, acknowledge, prune.

-- The next events of channel for consumer, after its acknowledged position, in id order.
-- It first finds the bound below which every id is final: ids not yet taken are above the
-- sequence's last value, and a transaction still writing events holds a fence (a shared
-- advisory lock, class 1885564516) keyed at or below its first id. Then, with a snapshot
-- taken after both (a new statement), it reads below that bound: an event a running
-- transaction commits later can never be skipped.
CREATE FUNCTION read_events(consumer text, channel text, max_events integer DEFAULT 1000)
RETURNS TABLE (event_id bigint, payload json, created_at timestamptz)
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
AS $read$
DECLARE
    next_id bigint;
    bound bigint;
    acknowledged bigint;
BEGIN
    IF consumer IS NULL OR channel IS NULL OR max_events IS NULL THEN
        RAISE EXCEPTION 'consumer, channel and max_events must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'read_events needs READ COMMITTED isolation'
            USING ERRCODE = 'invalid_transaction_state',
                  HINT = 'Call it outside an explicit REPEATABLE READ or SERIALIZABLE transaction.';
    END IF;
    INSERT INTO column_notify.consumers AS c (consumer, channel)
        VALUES (read_events.consumer, read_events.channel) ON CONFLICT DO NOTHING;
    SELECT c.position INTO acknowledged FROM column_notify.consumers c
        WHERE c.consumer = read_events.consumer AND c.channel = read_events.channel;

    SELECT CASE WHEN s.is_called THEN s.last_value + 1 ELSE 1 END INTO next_id
        FROM column_notify.event_ids s;
    SELECT least(next_id, min(next_id - ((next_id - l.objid::bigint) % 4294967296 + 4294967296) % 4294967296))
        INTO bound
        FROM pg_catalog.pg_locks l
        WHERE l.locktype = 'advisory' AND l.classid = 1885564516 AND l.objsubid = 2
          AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = current_database());

    RETURN QUERY
        SELECT e.event_id, e.payload, e.created_at FROM column_notify.events e
        WHERE e.channel = read_events.channel AND e.event_id > acknowledged AND e.event_id < bound
        ORDER BY e.event_id
        LIMIT max_events;
END
$read$;
COMMENT ON FUNCTION read_events(text, text, integer) IS
    'The next events of a durable channel for a named consumer, after its acknowledged position';

-- Records that consumer has processed every event of channel up to up_to (positions only
-- move forward). Returns the position.
CREATE FUNCTION ack_events(consumer text, channel text, up_to bigint) RETURNS bigint
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
AS $ack$
    INSERT INTO column_notify.consumers AS c (consumer, channel, position)
        VALUES ($1, $2, $3)
    ON CONFLICT ON CONSTRAINT consumers_pkey DO UPDATE
        SET position = greatest(c.position, excluded.position), acknowledged_at = now()
    RETURNING c.position;
$ack$;
COMMENT ON FUNCTION ack_events(text, text, bigint) IS
    'Acknowledge every event of a durable channel up to an id, for a named consumer';

-- Removes events every consumer of their channel has acknowledged, and (when older_than is
-- given) events older than that whatever their consumers. Returns how many it removed.
CREATE FUNCTION prune_events(older_than interval DEFAULT NULL) RETURNS bigint
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
AS $prune$
    WITH removed AS (
        DELETE FROM column_notify.events e
        WHERE e.event_id <= (SELECT min(c.position) FROM column_notify.consumers c
                             WHERE c.channel = e.channel)
           OR e.created_at < now() - $1
        RETURNING 1)
    SELECT count(*) FROM removed;
$prune$;
COMMENT ON FUNCTION prune_events(interval) IS
    'Remove events acknowledged by every consumer of their channel, or older than older_than';

-- How much each durable channel holds, and how far behind its slowest consumer is.
CREATE VIEW event_backlog AS
    SELECT e.channel,
           count(*) AS events,
           min(e.created_at) AS oldest,
           max(e.event_id) AS last_event_id,
           (SELECT min(c.position) FROM column_notify.consumers c WHERE c.channel = e.channel)
               AS slowest_consumer_position,
           pg_catalog.pg_size_pretty(sum(pg_catalog.pg_column_size(e.payload))) AS payload_size
    FROM column_notify.events e
    GROUP BY e.channel;
GRANT SELECT ON event_backlog TO PUBLIC;
