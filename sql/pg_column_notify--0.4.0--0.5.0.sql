-- pg_column_notify 0.4.0 -> 0.5.0: WAL delivery (watch_column(..., delivery => 'wal')).
\echo Use "ALTER EXTENSION pg_column_notify UPDATE TO '0.5.0'" to load this file. \quit

-- How changes travel: NOTIFY, or logical messages in the WAL.
ALTER TABLE column_notify.watches
    ADD COLUMN delivery text NOT NULL DEFAULT 'notify'
        CHECK (delivery OPERATOR(pg_catalog.=) ANY ('{notify,wal}'::pg_catalog.text[]));

-- column_watches shows the delivery beside the other options.
DROP VIEW column_watches;
-- The view is its owner's, so it filters itself: a role sees only the watches of tables
-- it can see (the functions it calls check the role that queries it).
CREATE VIEW column_watches AS
    SELECT w.table_name, w.columns, w.channel, w.trigger_name, w.events,
           w.key_columns, w.include_columns, w.exclude_columns, w.durable, w.metadata,
           w.batch, w.filter, w.delivery, w.created_at
    FROM column_notify.watches w
    WHERE column_notify.can_see_table(w.table_name)
    ORDER BY w.table_name::pg_catalog.text, w.columns;
COMMENT ON VIEW column_watches IS
    'Every watch installed by watch_column() on a table the current role can see, one row per trigger';
GRANT SELECT ON column_watches TO PUBLIC;

-- The watch functions take the delivery; 0.4.0's install_watch goes.
DROP FUNCTION watch_columns(regclass, name[], text, text[], name[], name[], name[], boolean, boolean, boolean, text);
DROP FUNCTION watch_column(regclass, name, text, text[], name[], name[], name[], boolean, boolean, boolean, text);
DROP FUNCTION column_notify.install_watch(regclass, text[], text, text[], text[], text[], text[], boolean, boolean, boolean, text);

CREATE FUNCTION column_notify.install_watch(
    tbl regclass, cols text[], channel text, events text[], key text[], include text[], exclude text[],
    durable boolean, metadata boolean, batch boolean, filter text, delivery text
) RETURNS text VOLATILE PARALLEL UNSAFE LANGUAGE c SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'install_delivered_watch_wrapper';

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
    batch boolean DEFAULT false,
    filter text DEFAULT NULL,
    delivery text DEFAULT 'notify'
) RETURNS text
    LANGUAGE sql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
    RETURN column_notify.install_watch(tbl, cols::pg_catalog.text[], channel, events,
                                       key::pg_catalog.text[], include::pg_catalog.text[],
                                       exclude::pg_catalog.text[], durable, metadata, batch,
                                       filter, delivery);
COMMENT ON FUNCTION watch_columns(regclass, name[], text, text[], name[], name[], name[], boolean, boolean, boolean, text, text) IS
    'Notify channel with {id, old, new} JSON whenever one of the columns cols of tbl changes';

-- watch_column's one column as install_watch takes it, refusing a NULL under its own
-- argument name.
CREATE FUNCTION column_notify.single_column(col name) RETURNS pg_catalog.text[]
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $single$
BEGIN
    IF col IS NULL THEN
        RAISE EXCEPTION 'argument "col" must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    RETURN ARRAY[col::pg_catalog.text];
END
$single$;

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
    batch boolean DEFAULT false,
    filter text DEFAULT NULL,
    delivery text DEFAULT 'notify'
) RETURNS text
    LANGUAGE sql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
    RETURN column_notify.install_watch(tbl, column_notify.single_column(col), channel, events,
                                       key::pg_catalog.text[], include::pg_catalog.text[],
                                       exclude::pg_catalog.text[], durable, metadata, batch,
                                       filter, delivery);
COMMENT ON FUNCTION watch_column(regclass, name, text, text[], name[], name[], name[], boolean, boolean, boolean, text, text) IS
    'Notify channel (default <table>_<column>_changed) with {id, old, new} JSON whenever column col of tbl changes';

-- The durable API moves to the extension's own schema (names this generic would collide
-- with an application's); 0.4.0's names stay below, calling the new ones. Durable
-- consumers: read_events refuses a channel no durable watch feeds, ack_events a position
-- past the last event id, and drop_consumer forgets a consumer.
ALTER FUNCTION read_events(text, text, integer) SET SCHEMA column_notify;
ALTER FUNCTION ack_events(text, text, bigint) SET SCHEMA column_notify;
ALTER FUNCTION prune_events(interval) SET SCHEMA column_notify;
ALTER VIEW event_backlog SET SCHEMA column_notify;

-- The next events of channel for consumer, after its acknowledged position, in id order,
-- of the tables the caller may SELECT (row security of the log).
-- It first finds the bound below which every id is final: ids not yet taken are above the
-- sequence's last value, and a transaction still writing events of the channel holds a
-- fence: a lock keyed by the channel's id and a lower bound of its event ids, which only
-- the extension can take (its fourth key, 20035, is one the advisory lock functions never
-- use). Then, with a snapshot taken after both (a new statement), it reads below that
-- bound: an event a running transaction commits later can never be skipped.
CREATE OR REPLACE FUNCTION column_notify.read_events(consumer text, channel text, max_events integer DEFAULT 1000)
RETURNS TABLE (event_id bigint, payload json, created_at timestamptz)
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $read$
DECLARE
    acknowledged bigint;
    fence_key oid;
    next_id bigint;
    bound bigint;
BEGIN
    IF consumer IS NULL OR channel IS NULL OR max_events IS NULL THEN
        RAISE EXCEPTION 'consumer, channel and max_events must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF pg_catalog.current_setting('transaction_isolation') OPERATOR(pg_catalog.<>) 'read committed' THEN
        RAISE EXCEPTION 'read_events needs READ COMMITTED isolation'
            USING ERRCODE = 'invalid_transaction_state',
                  HINT = 'Call it outside an explicit REPEATABLE READ or SERIALIZABLE transaction.';
    END IF;
    SELECT d.id::pg_catalog.oid INTO fence_key FROM column_notify.durable_channels d
        WHERE d.channel OPERATOR(pg_catalog.=) read_events.channel;
    -- A consumer of a channel that no durable watch feeds would wait forever: refused,
    -- unless the log still holds events of the channel (its watch was removed). Channels
    -- are not secret (pg_trigger shows them): this tells no more than the catalog does.
    IF fence_key IS NULL AND NOT EXISTS (SELECT FROM column_notify.events e
                                         WHERE e.channel OPERATOR(pg_catalog.=) read_events.channel) THEN
        RAISE EXCEPTION 'channel "%" has no durable watch', read_events.channel
            USING ERRCODE = 'undefined_object',
                  HINT = 'read_events reads the event log of durable watches: watch_column(..., durable => true).';
    END IF;
    acknowledged := column_notify.consumer_position(read_events.consumer, read_events.channel);

    SELECT CASE WHEN s.is_called THEN s.last_value OPERATOR(pg_catalog.+) 1 ELSE 1 END INTO next_id
        FROM column_notify.event_ids s;
    -- A fence's key is the low 32 bits of its id: the id is the largest below next_id
    -- with those bits (OPERATOR() has one precedence, left to right: hence the brackets).
    SELECT LEAST(next_id, pg_catalog.min(next_id OPERATOR(pg_catalog.-)
               ((((next_id OPERATOR(pg_catalog.-) l.objid::pg_catalog.int8)
                  OPERATOR(pg_catalog.%) 4294967296) OPERATOR(pg_catalog.+) 4294967296)
                OPERATOR(pg_catalog.%) 4294967296)))
        INTO bound
        FROM pg_catalog.pg_locks l
        WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory'
          AND l.classid OPERATOR(pg_catalog.=) fence_key
          AND l.objsubid OPERATOR(pg_catalog.=) 20035
          AND l.database OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database d
                                                 WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database());

    RETURN QUERY
        SELECT e.event_id, e.payload, e.created_at FROM column_notify.events e
        WHERE e.channel OPERATOR(pg_catalog.=) read_events.channel
          AND e.event_id OPERATOR(pg_catalog.>) acknowledged
          AND e.event_id OPERATOR(pg_catalog.<) bound
        ORDER BY e.event_id
        LIMIT max_events;
END
$read$;
COMMENT ON FUNCTION column_notify.read_events(text, text, integer) IS
    'The next events of a durable channel for a named consumer, after its acknowledged position';

-- Records that consumer has processed every event of channel up to up_to (positions only
-- move forward). Returns the position.
CREATE OR REPLACE FUNCTION column_notify.ack_events(consumer text, channel text, up_to bigint) RETURNS bigint
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $ack$
DECLARE
    acknowledged bigint;
BEGIN
    IF $1 IS NULL OR $2 IS NULL OR $3 IS NULL THEN
        RAISE EXCEPTION 'consumer, channel and up_to must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM column_notify.consumer_position($1, $2);
    -- Past the last id taken, a position would skip events not yet written.
    IF $3 OPERATOR(pg_catalog.>) (SELECT CASE WHEN s.is_called THEN s.last_value ELSE 0 END
                                  FROM column_notify.event_ids s) THEN
        RAISE EXCEPTION 'cannot acknowledge event % of channel "%": no event has that id yet', $3, $2
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Acknowledge the event_id of an event read_events returned.';
    END IF;
    UPDATE column_notify.consumers c
        SET position = GREATEST(c.position, $3), acknowledged_at = pg_catalog.now()
        WHERE c.consumer OPERATOR(pg_catalog.=) $1 AND c.channel OPERATOR(pg_catalog.=) $2
        RETURNING c.position INTO acknowledged;
    RETURN acknowledged;
END
$ack$;
COMMENT ON FUNCTION column_notify.ack_events(text, text, bigint) IS
    'Acknowledge every event of a durable channel up to an id, for a named consumer';

-- Forgets consumer of channel (its position): for a consumer gone for good, which would
-- otherwise hold the channel's events from prune_events. Only its owner, the owner's
-- members and superusers can (row security of column_notify.consumers); returns whether
-- there was one to forget.
CREATE FUNCTION column_notify.drop_consumer(consumer text, channel text) RETURNS boolean
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $drop$
BEGIN
    IF $1 IS NULL OR $2 IS NULL THEN
        RAISE EXCEPTION 'consumer and channel must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    DELETE FROM column_notify.consumers c
        WHERE c.consumer OPERATOR(pg_catalog.=) $1 AND c.channel OPERATOR(pg_catalog.=) $2;
    RETURN FOUND;
END
$drop$;
COMMENT ON FUNCTION column_notify.drop_consumer(text, text) IS
    'Forget a durable consumer of a channel (its acknowledged position)';

-- 0.4.0's names, for code written against them: each calls the function of the same name
-- in column_notify (a new installation has only those).
CREATE FUNCTION read_events(consumer text, channel text, max_events integer DEFAULT 1000)
RETURNS TABLE (event_id bigint, payload json, created_at timestamptz)
    LANGUAGE sql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM column_notify.read_events($1, $2, $3) $$;
COMMENT ON FUNCTION read_events(text, text, integer) IS 'Kept from 0.4.0: column_notify.read_events';
CREATE FUNCTION ack_events(consumer text, channel text, up_to bigint) RETURNS bigint
    LANGUAGE sql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $$ SELECT column_notify.ack_events($1, $2, $3) $$;
COMMENT ON FUNCTION ack_events(text, text, bigint) IS 'Kept from 0.4.0: column_notify.ack_events';
CREATE FUNCTION prune_events(older_than interval DEFAULT NULL) RETURNS bigint
    LANGUAGE sql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $$ SELECT column_notify.prune_events($1) $$;
COMMENT ON FUNCTION prune_events(interval) IS 'Kept from 0.4.0: column_notify.prune_events';
CREATE VIEW event_backlog AS SELECT * FROM column_notify.event_backlog;
COMMENT ON VIEW event_backlog IS 'Kept from 0.4.0: column_notify.event_backlog';
GRANT SELECT ON event_backlog TO PUBLIC;
