-- Objects created before the Rust-defined functions.
--
-- Every name below is schema-qualified, operators included (OPERATOR(pg_catalog.=)), and
-- every function sets its search_path: nothing the extension runs can be redirected by an
-- object another role created in a schema on the caller's search_path.
CREATE SCHEMA column_notify;
COMMENT ON SCHEMA column_notify IS 'Internal state of the pg_column_notify extension';

CREATE FUNCTION notify_column_changed() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'notify_column_changed';
COMMENT ON FUNCTION notify_column_changed() IS
    'Trigger: NOTIFY channel (argument 1) with {id, old, new} JSON when a watched column (arguments 2..) IS DISTINCT FROM its old value';

-- The catalog of watches. Rows are dumped by pg_dump (pg_extension_config_dump), so a
-- restored database lists its watches again beside the triggers pg_dump restores.
CREATE TABLE column_notify.watches (
    table_name regclass NOT NULL,
    columns name[] NOT NULL CHECK (pg_catalog.cardinality(columns) OPERATOR(pg_catalog.>) 0),
    channel text NOT NULL,
    trigger_name name NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    events text[] NOT NULL DEFAULT '{update}',
    key_columns name[],
    include_columns name[],
    exclude_columns name[],
    durable boolean NOT NULL DEFAULT false,
    metadata boolean NOT NULL DEFAULT true,
    batch boolean NOT NULL DEFAULT false,
    -- The row filter: a boolean expression over old and new, as PostgreSQL deparses it
    -- (every column qualified, current names); NULL for none.
    filter text CHECK (filter OPERATOR(pg_catalog.<>) ''),
    -- How changes travel: NOTIFY, or logical messages in the WAL.
    delivery text NOT NULL DEFAULT 'notify'
        CHECK (delivery OPERATOR(pg_catalog.=) ANY ('{notify,wal}'::pg_catalog.text[])),
    PRIMARY KEY (table_name, trigger_name)
);
SELECT pg_catalog.pg_extension_config_dump('column_notify.watches', '');

-- Whether the current role owns the table (directly or through a role it belongs to).
CREATE FUNCTION column_notify.owns_table(tbl oid) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
    RETURN (SELECT pg_catalog.pg_has_role(c.relowner, 'USAGE')
            FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) tbl);

-- Whether the current role can see the table, as information_schema.tables decides it:
-- it owns the table or has some privilege on it or on one of its columns.
CREATE FUNCTION column_notify.can_see_table(tbl oid) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
    RETURN column_notify.owns_table(tbl)
        OR pg_catalog.has_table_privilege(tbl, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
        OR pg_catalog.has_any_column_privilege(tbl, 'SELECT, INSERT, UPDATE, REFERENCES');

-- watch_column runs with the caller's rights: a role sees the watches of the tables it can
-- see, and records or removes watches only on tables it owns (superusers and the
-- extension's owner bypass row security).
ALTER TABLE column_notify.watches ENABLE ROW LEVEL SECURITY;
CREATE POLICY watches_of_visible_tables ON column_notify.watches FOR SELECT
    USING (column_notify.can_see_table(table_name));
CREATE POLICY watches_insert_on_owned_tables ON column_notify.watches FOR INSERT
    WITH CHECK (column_notify.owns_table(table_name));
CREATE POLICY watches_update_on_owned_tables ON column_notify.watches FOR UPDATE
    USING (column_notify.owns_table(table_name)) WITH CHECK (column_notify.owns_table(table_name));
CREATE POLICY watches_delete_on_owned_tables ON column_notify.watches FOR DELETE
    USING (column_notify.owns_table(table_name));
GRANT USAGE ON SCHEMA column_notify TO PUBLIC;
GRANT SELECT, INSERT, DELETE ON column_notify.watches TO PUBLIC;

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

-- Durable channels: each belongs to the role that owns the tables feeding it, so no other
-- role's watch can write into it. The id keys the channel's fence locks (see read_events).
CREATE TABLE column_notify.durable_channels (
    channel text PRIMARY KEY,
    id integer GENERATED ALWAYS AS IDENTITY UNIQUE,
    owner oid NOT NULL
);
COMMENT ON TABLE column_notify.durable_channels IS
    'Durable channels and the role whose tables feed each; a row goes with the last durable watch of its channel';
ALTER TABLE column_notify.durable_channels ENABLE ROW LEVEL SECURITY;
CREATE POLICY durable_channels_readable ON column_notify.durable_channels FOR SELECT USING (true);
CREATE POLICY durable_channels_claimed_by_owner ON column_notify.durable_channels FOR INSERT
    WITH CHECK (pg_catalog.pg_has_role(owner, 'USAGE'));
CREATE POLICY durable_channels_released_by_owner ON column_notify.durable_channels FOR DELETE
    USING (pg_catalog.pg_has_role(owner, 'USAGE'));
GRANT SELECT, INSERT, DELETE ON column_notify.durable_channels TO PUBLIC;
GRANT USAGE ON SEQUENCE column_notify.durable_channels_id_seq TO PUBLIC;

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
    table_name oid,
    PRIMARY KEY (channel, event_id)
);
COMMENT ON TABLE column_notify.events IS
    'Events of durable watches, kept until prune_events() removes them';
COMMENT ON COLUMN column_notify.events.table_name IS
    'The watched table the event is of: only roles that may SELECT it read the event';

-- Where each named consumer of a channel is: every event up to position is acknowledged.
-- A consumer belongs to the role that registered it (owner); only that role, its members
-- and superusers see and move it. A NULL owner (a consumer registered before 0.3.0) is
-- taken by the first role that reads or acknowledges as it.
CREATE TABLE column_notify.consumers (
    consumer text NOT NULL,
    channel text NOT NULL,
    position bigint NOT NULL DEFAULT 0,
    acknowledged_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    owner oid,
    PRIMARY KEY (consumer, channel)
);

-- A role reads only the events of tables it may SELECT.
ALTER TABLE column_notify.events ENABLE ROW LEVEL SECURITY;
CREATE POLICY events_of_readable_tables ON column_notify.events FOR SELECT
    USING (pg_catalog.has_table_privilege(table_name, 'SELECT'));

ALTER TABLE column_notify.consumers ENABLE ROW LEVEL SECURITY;
CREATE POLICY consumers_of_their_owner ON column_notify.consumers
    USING (owner IS NULL OR pg_catalog.pg_has_role(owner, 'MEMBER'))
    WITH CHECK (pg_catalog.pg_has_role(owner, 'MEMBER'));

-- Reading the log is open to every role, for the tables it may SELECT; removing events
-- (prune_events) takes DELETE on the log, which only its owner has.
GRANT SELECT ON SEQUENCE column_notify.event_ids TO PUBLIC;
GRANT SELECT ON column_notify.events TO PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON column_notify.consumers TO PUBLIC;

-- Whether a consumer's owner may read an event of the table (a consumer registered before
-- 0.3.0, with no owner, and an event of unknown table count as readable).
CREATE FUNCTION column_notify.may_read(owner oid, tbl oid) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
    RETURN owner IS NULL OR tbl IS NULL
        OR COALESCE(pg_catalog.has_table_privilege(owner, tbl, 'SELECT'), false);
