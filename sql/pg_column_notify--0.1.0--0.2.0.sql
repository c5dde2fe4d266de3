-- pg_column_notify 0.1.0 -> 0.2.0: watch options (events, key, include, exclude),
-- watch_columns, and event triggers that follow renamed and dropped columns and tables.
\echo Use "ALTER EXTENSION pg_column_notify UPDATE" to load this file. \quit

ALTER TABLE column_notify.watches
    ADD COLUMN events text[] NOT NULL DEFAULT '{update}',
    ADD COLUMN key_columns name[],
    ADD COLUMN include_columns name[],
    ADD COLUMN exclude_columns name[];

COMMENT ON FUNCTION notify_column_changed() IS
    'Trigger: NOTIFY channel (argument 1) with {id, old, new} JSON when a watched column (arguments 2..) IS DISTINCT FROM its old value';

DROP VIEW column_watches;
CREATE VIEW column_watches AS
    SELECT w.table_name, w.columns, w.channel, w.trigger_name, w.events,
           w.key_columns, w.include_columns, w.exclude_columns, w.created_at
    FROM column_notify.watches w
    ORDER BY w.table_name::text, w.columns;
COMMENT ON VIEW column_watches IS 'Every watch installed by watch_column(), one row per trigger';
GRANT SELECT ON column_watches TO PUBLIC;

-- watch_column gains options; the 0.1.0 three-argument form is replaced (calls with one to
-- three arguments keep working, positional or named).
DROP FUNCTION watch_column(regclass, name, text);

CREATE FUNCTION column_notify.install_watch(
    tbl regclass, cols text[], channel text, events text[], key text[], include text[], exclude text[]
) RETURNS text VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'install_watch_wrapper';
CREATE FUNCTION watch_columns(
    tbl regclass,
    cols name[],
    channel text DEFAULT NULL,
    events text[] DEFAULT '{update}',
    key name[] DEFAULT NULL,
    include name[] DEFAULT NULL,
    exclude name[] DEFAULT NULL
) RETURNS text
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
    RETURN column_notify.install_watch(tbl, cols::text[], channel, events, key::text[],
                                       include::text[], exclude::text[]);
COMMENT ON FUNCTION watch_columns(regclass, name[], text, text[], name[], name[], name[]) IS
    'Notify channel with {id, old, new} JSON whenever one of the columns cols of tbl changes';

CREATE FUNCTION watch_column(
    tbl regclass,
    col name,
    channel text DEFAULT NULL,
    events text[] DEFAULT '{update}',
    key name[] DEFAULT NULL,
    include name[] DEFAULT NULL,
    exclude name[] DEFAULT NULL
) RETURNS text
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
    RETURN column_notify.install_watch(tbl, ARRAY[col]::text[], channel, events, key::text[],
                                       include::text[], exclude::text[]);
COMMENT ON FUNCTION watch_column(regclass, name, text, text[], name[], name[], name[]) IS
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
