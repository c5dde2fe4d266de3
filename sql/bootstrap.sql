-- Objects created before the Rust-defined functions.
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
    columns name[] NOT NULL CHECK (cardinality(columns) > 0),
    channel text NOT NULL,
    trigger_name name NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    events text[] NOT NULL DEFAULT '{update}',
    key_columns name[],
    include_columns name[],
    exclude_columns name[],
    durable boolean NOT NULL DEFAULT false,
    metadata boolean NOT NULL DEFAULT true,
    batch boolean NOT NULL DEFAULT false,
    PRIMARY KEY (table_name, trigger_name)
);
SELECT pg_catalog.pg_extension_config_dump('column_notify.watches', '');

-- watch_column runs with the caller's rights: any role may record watches, but only on
-- tables it owns (superusers and the extension owner bypass row security).
ALTER TABLE column_notify.watches ENABLE ROW LEVEL SECURITY;
CREATE POLICY watches_of_owned_tables ON column_notify.watches
    USING (pg_catalog.pg_has_role(
        (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = table_name), 'USAGE'));
GRANT USAGE ON SCHEMA column_notify TO PUBLIC;
GRANT SELECT, INSERT, DELETE ON column_notify.watches TO PUBLIC;

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
