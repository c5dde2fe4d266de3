-- The public SQL interface around the Rust implementation, and the event triggers that
-- keep watches in step with renamed and dropped columns and tables.

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
