-- pg_column_notify 0.3.0 -> 0.4.0: row filters (watch_column(..., filter => ...)).
\echo Use "ALTER EXTENSION pg_column_notify UPDATE TO '0.4.0'" to load this file. \quit

-- The row filter of a watch, as PostgreSQL deparses it; NULL for none.
ALTER TABLE column_notify.watches
    ADD COLUMN filter text CHECK (filter OPERATOR(pg_catalog.<>) '');

-- column_watches shows the filter beside the other options.
DROP VIEW column_watches;
-- The view is its owner's, so it filters itself: a role sees only the watches of tables
-- it can see (the functions it calls check the role that queries it).
CREATE VIEW column_watches AS
    SELECT w.table_name, w.columns, w.channel, w.trigger_name, w.events,
           w.key_columns, w.include_columns, w.exclude_columns, w.durable, w.metadata,
           w.batch, w.filter, w.created_at
    FROM column_notify.watches w
    WHERE column_notify.can_see_table(w.table_name)
    ORDER BY w.table_name::pg_catalog.text, w.columns;
COMMENT ON VIEW column_watches IS
    'Every watch installed by watch_column() on a table the current role can see, one row per trigger';
GRANT SELECT ON column_watches TO PUBLIC;

-- The watch functions take the filter; 0.3.0's install_watch goes.
DROP FUNCTION watch_columns(regclass, name[], text, text[], name[], name[], name[], boolean, boolean, boolean);
DROP FUNCTION watch_column(regclass, name, text, text[], name[], name[], name[], boolean, boolean, boolean);
DROP FUNCTION column_notify.install_watch(regclass, text[], text, text[], text[], text[], text[], boolean, boolean, boolean);

CREATE FUNCTION column_notify.install_watch(
    tbl regclass, cols text[], channel text, events text[], key text[], include text[], exclude text[],
    durable boolean, metadata boolean, batch boolean, filter text
) RETURNS text VOLATILE PARALLEL UNSAFE LANGUAGE c SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'install_filtered_watch_wrapper';

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
    filter text DEFAULT NULL
) RETURNS text
    LANGUAGE sql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
    RETURN column_notify.install_watch(tbl, cols::pg_catalog.text[], channel, events,
                                       key::pg_catalog.text[], include::pg_catalog.text[],
                                       exclude::pg_catalog.text[], durable, metadata, batch,
                                       filter);
COMMENT ON FUNCTION watch_columns(regclass, name[], text, text[], name[], name[], name[], boolean, boolean, boolean, text) IS
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
    batch boolean DEFAULT false,
    filter text DEFAULT NULL
) RETURNS text
    LANGUAGE sql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
    RETURN column_notify.install_watch(tbl, ARRAY[col]::pg_catalog.text[], channel, events,
                                       key::pg_catalog.text[], include::pg_catalog.text[],
                                       exclude::pg_catalog.text[], durable, metadata, batch,
                                       filter);
COMMENT ON FUNCTION watch_column(regclass, name, text, text[], name[], name[], name[], boolean, boolean, boolean, text) IS
    'Notify channel (default <table>_<column>_changed) with {id, old, new} JSON whenever column col of tbl changes';

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
