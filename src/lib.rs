//! pg_column_notify: a PostgreSQL extension that notifies listeners, with a JSON payload,
//! when a watched column of a row really changes. This file only wires the modules.

mod api;
mod delivery;
mod errors;
mod json;
mod pg;
mod row;
mod watch;

::pgrx::pg_module_magic!();

/// Called once when a backend loads the library.
#[pgrx::pg_guard]
pub extern "C-unwind" fn _PG_init() {
    errors::keep_backtraces_out_of_errors();
    delivery::init();
}

pgrx::extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);
pgrx::extension_sql_file!(
    "../sql/api.sql",
    name = "api",
    requires = [watch::install::install_watch]
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
