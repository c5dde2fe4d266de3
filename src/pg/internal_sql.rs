//! How the extension runs SQL of its own (SPI): with `search_path = pg_catalog, pg_temp`
//! for its duration, so that no function or operator another role created in a schema of
//! the caller's search_path can stand in for one the SQL names; and, where the caller's
//! privileges on the extension's internals must not matter (a writer's trigger reading the
//! catalog of watches), as the role that owns the extension.
//!
//! Both settings are restored when the closure returns; when it fails, the (sub)transaction
//! abort restores them, as it does for a SECURITY DEFINER function. Also: which of the
//! extension's own tables this database's release has.

use pgrx::prelude::*;

/// Runs `work` with `search_path = pg_catalog, pg_temp` (PostgreSQL never looks up
/// functions and operators in pg_temp).
pub fn with_safe_search_path<R>(work: impl FnOnce() -> R) -> R {
    // SAFETY: a new GUC nest level is popped below (or by the abort of the failing
    // transaction); the option name and value are NUL-terminated constants.
    let nest_level = unsafe {
        let level = pg_sys::NewGUCNestLevel();
        pg_sys::set_config_option(
            c"search_path".as_ptr(),
            c"pg_catalog, pg_temp".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
        level
    };
    let result = work();
    // SAFETY: pops exactly the level pushed above, keeping no setting made inside it.
    unsafe { pg_sys::AtEOXact_GUC(true, nest_level) };
    result
}

/// Runs `work` as the extension's owner, with the safe search_path.
pub fn as_extension_owner<R>(work: impl FnOnce() -> R) -> R {
    let owner = with_safe_search_path(|| {
        Spi::get_one::<pg_sys::Oid>(
            "SELECT e.extowner FROM pg_catalog.pg_extension e \
             WHERE e.extname OPERATOR(pg_catalog.=) 'pg_column_notify'",
        )
    })
    .ok()
    .flatten()
    .unwrap_or_else(|| pgrx::error!("pg_column_notify: the extension is not installed"));
    let mut user = pg_sys::InvalidOid;
    let mut security_context = 0;
    // SAFETY: reads and sets the backend's current user; the previous one is restored on
    // return, and on an error by the abort of the (sub)transaction.
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut user, &mut security_context);
        pg_sys::SetUserIdAndSecContext(
            owner,
            security_context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
        );
    }
    let result = with_safe_search_path(work);
    // SAFETY: as above.
    unsafe { pg_sys::SetUserIdAndSecContext(user, security_context) };
    result
}

/// The OID of the extension's table `name` in `column_notify`, `InvalidOid` when this
/// database's release of the extension has none.
pub fn internal_table(name: &std::ffi::CStr) -> pg_sys::Oid {
    // SAFETY: catalog lookups by name, inside the caller's transaction; an unknown schema
    // gives InvalidOid, in which no table is found.
    unsafe {
        let namespace = pg_sys::get_namespace_oid(c"column_notify".as_ptr(), true);
        pg_sys::get_relname_relid(name.as_ptr(), namespace)
    }
}

/// The value of a one-row query, `None` when it found no row.
pub fn none_when_no_row<T>(result: pgrx::spi::Result<Option<T>>) -> pgrx::spi::Result<Option<T>> {
    match result {
        Err(pgrx::spi::Error::InvalidPosition) => Ok(None),
        other => other,
    }
}
