-- The public SQL interface around the Rust implementation, and the event triggers that
-- keep watches in step with renamed and dropped columns and tables. Every function sets
-- its search_path and qualifies every name, operators included.

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

-- SECURITY DEFINER because the renaming role may have no privilege on the extension's
-- schema, and a rename must never fail for that. Only a table's owner can rename its
-- columns, and the function only re-creates the watches of the renamed table and of the
-- tables that inherit the column, as the extension's owner.
CREATE FUNCTION column_notify.follow_renames() RETURNS event_trigger
    LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'column_notify_follow_renames';
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

-- A trigger of notify_column_changed() with a filter depends on what the filter uses, as a
-- trigger depends on its WHEN condition, however it was made (watch_column, by hand, or
-- restored from a dump). Runs with the caller's rights: it only adds dependencies of the
-- trigger the caller just created.
CREATE FUNCTION column_notify.record_filter_dependencies() RETURNS event_trigger
    LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'column_notify_record_filter_dependencies';
CREATE EVENT TRIGGER column_notify_record_filter_dependencies ON ddl_command_end
    WHEN TAG IN ('CREATE TRIGGER')
    EXECUTE FUNCTION column_notify.record_filter_dependencies();

-- Durable delivery: read, acknowledge, prune.

-- The acknowledged position of consumer on channel. A new consumer is registered for the
-- current role; a consumer registered before 0.3.0 (no owner) is taken by it. A consumer
-- of another role is refused: only its owner, the owner's members and superusers move it.
CREATE FUNCTION column_notify.consumer_position(consumer text, channel text) RETURNS bigint
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $position$
DECLARE
    me oid := (SELECT r.oid FROM pg_catalog.pg_roles r
               WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER);
    acknowledged bigint;
BEGIN
    UPDATE column_notify.consumers c SET owner = me
        WHERE c.consumer OPERATOR(pg_catalog.=) $1 AND c.channel OPERATOR(pg_catalog.=) $2
          AND c.owner IS NULL;
    SELECT c.position INTO acknowledged FROM column_notify.consumers c
        WHERE c.consumer OPERATOR(pg_catalog.=) $1 AND c.channel OPERATOR(pg_catalog.=) $2;
    IF FOUND THEN
        RETURN acknowledged;
    END IF;
    INSERT INTO column_notify.consumers (consumer, channel, owner) VALUES ($1, $2, me)
        ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'consumer "%" of durable channel "%" belongs to another role', $1, $2
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Consumer names are per channel: choose a name of your own.';
    END IF;
    RETURN 0;
END
$position$;

-- The durable API (read_events, ack_events, drop_consumer, prune_events, event_backlog)
-- lives in the extension's own schema: names this generic would collide with an
-- application's in the schema the extension is created in.

-- The next events of channel for consumer, after its acknowledged position, in id order,
-- of the tables the caller may SELECT (row security of the log).
-- It first finds the bound below which every id is final: ids not yet taken are above the
-- sequence's last value, and a transaction still writing events of the channel holds a
-- fence: a lock keyed by the channel's id and a lower bound of its event ids, which only
-- the extension can take (its fourth key, 20035, is one the advisory lock functions never
-- use). Then, with a snapshot taken after both (a new statement), it reads below that
-- bound: an event a running transaction commits later can never be skipped.
CREATE FUNCTION column_notify.read_events(consumer text, channel text, max_events integer DEFAULT 1000)
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
CREATE FUNCTION column_notify.ack_events(consumer text, channel text, up_to bigint) RETURNS bigint
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

-- Removes events that every consumer able to read them has acknowledged (a consumer whose
-- role may not SELECT an event's table does not hold it back), and, when older_than is
-- given, events older than that whatever their consumers. Returns how many it removed.
CREATE FUNCTION column_notify.prune_events(older_than interval DEFAULT NULL) RETURNS bigint
    LANGUAGE sql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $prune$
    WITH removed AS (
        DELETE FROM column_notify.events e
        WHERE (EXISTS (SELECT FROM column_notify.consumers c
                       WHERE c.channel OPERATOR(pg_catalog.=) e.channel
                         AND column_notify.may_read(c.owner, e.table_name))
               AND NOT EXISTS (SELECT FROM column_notify.consumers c
                               WHERE c.channel OPERATOR(pg_catalog.=) e.channel
                                 AND c.position OPERATOR(pg_catalog.<) e.event_id
                                 AND column_notify.may_read(c.owner, e.table_name)))
           OR e.created_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) $1)
        RETURNING 1)
    SELECT pg_catalog.count(*) FROM removed;
$prune$;
COMMENT ON FUNCTION column_notify.prune_events(interval) IS
    'Remove events acknowledged by every consumer able to read them, or older than older_than';

-- How much each durable channel holds of the tables the caller may SELECT, and how far
-- behind its slowest consumer is.
CREATE VIEW column_notify.event_backlog AS
    SELECT e.channel,
           pg_catalog.count(*) AS events,
           pg_catalog.min(e.created_at) AS oldest,
           pg_catalog.max(e.event_id) AS last_event_id,
           (SELECT pg_catalog.min(c.position) FROM column_notify.consumers c
            WHERE c.channel OPERATOR(pg_catalog.=) e.channel) AS slowest_consumer_position,
           pg_catalog.pg_size_pretty(pg_catalog.sum(pg_catalog.pg_column_size(e.payload))) AS payload_size
    FROM column_notify.events e
    WHERE pg_catalog.has_table_privilege(e.table_name, 'SELECT')
    GROUP BY e.channel;
GRANT SELECT ON column_notify.event_backlog TO PUBLIC;
