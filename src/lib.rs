//! pg_column_notify: a PostgreSQL extension that notifies listeners, with a JSON payload,
//! when a watched column of a row really changes. This file only wires the modules.

mod batch;
mod builtin_functions;
mod catalog;
mod change_detection;
mod datum_image;
mod ddl_events;
mod errors;
mod event_log;
mod events;
mod function_info;
mod json_array;
mod json_datetime;
mod json_encoder;
mod json_text;
mod notify;
mod payload;
mod pg_version;
mod plan_cache;
mod primary_key;
mod row_values;
mod transition_rows;
mod trigger;
mod trigger_naming;
mod trigger_plan;
mod watch;
mod watch_spec;

::pgrx::pg_module_magic!();

pgrx::extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);
pgrx::extension_sql_file!(
    "../sql/api.sql",
    name = "api",
    requires = [watch::install_watch]
);

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
