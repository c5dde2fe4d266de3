-- pg_column_notify 0.1.0, as released: kept so that ALTER EXTENSION ... UPDATE can start from it.
\echo Use "CREATE EXTENSION pg_column_notify VERSION '0.1.0'" to load this file. \quit

/* <begin connected objects> */
/*

The ordering of items is not stable, it is driven by a dependency graph.
*/
/* </end connected objects> */

/* <begin connected objects> */
-- src/lib.rs:19
-- bootstrap
-- Objects created before the Rust-defined functions.
CREATE SCHEMA column_notify;
COMMENT ON SCHEMA column_notify IS 'Internal state of the pg_column_notify extension';

CREATE FUNCTION notify_column_changed() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'notify_column_changed';
COMMENT ON FUNCTION notify_column_changed() IS
    'Row trigger: NOTIFY channel (argument 1) with {id, old, new} JSON when a watched column (arguments 2..) IS DISTINCT FROM its old value';

-- The catalog of watches. Rows are dumped by pg_dump (pg_extension_config_dump), so a
-- restored database lists its watches again beside the triggers pg_dump restores.
CREATE TABLE column_notify.watches (
    table_name regclass NOT NULL,
    columns name[] NOT NULL CHECK (cardinality(columns) > 0),
    channel text NOT NULL,
    trigger_name name NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
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
    SELECT w.table_name, w.columns, w.channel, w.trigger_name, w.created_at
    FROM column_notify.watches w
    ORDER BY w.table_name::text, w.columns;
COMMENT ON VIEW column_watches IS 'Every watch installed by watch_column(), one row per trigger';
GRANT SELECT ON column_watches TO PUBLIC;
/* </end connected objects> */

/* <begin connected objects> */
-- src/watch.rs:44
-- pg_column_notify::watch::unwatch_column

CREATE FUNCTION unwatch_column(tbl regclass, col name) RETURNS boolean
    VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'unwatch_column_wrapper';
COMMENT ON FUNCTION unwatch_column(regclass, name) IS
    'Remove the watches of tbl that include column col (their triggers and catalog rows)';
/* </end connected objects> */

/* <begin connected objects> */
-- src/watch.rs:23
-- pg_column_notify::watch::watch_column

CREATE FUNCTION watch_column(tbl regclass, col name, channel text DEFAULT NULL) RETURNS text
    VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'watch_column_wrapper';
COMMENT ON FUNCTION watch_column(regclass, name, text) IS
    'Notify channel (default <table>_<column>_changed) with {id, old, new} JSON whenever column col of tbl changes';
/* </end connected objects> */

