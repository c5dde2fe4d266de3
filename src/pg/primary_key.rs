//! Finds the columns that identify a row: the table's primary key, in key order.

use pgrx::pg_sys;

/// The attribute numbers (1-based) of the primary key of `relation`, in key order;
/// empty when the table has none.
///
/// # Safety
/// `relation` must be an open relation.
pub unsafe fn primary_key_attnums(relation: pg_sys::Relation) -> Vec<i16> {
    // SAFETY: `relation` is open (the caller's contract), so its relcache entry is valid.
    // Computing the index list is what fills in rd_pkindex.
    let index_oid = unsafe {
        pg_sys::list_free(pg_sys::RelationGetIndexList(relation));
        (*relation).rd_pkindex
    };
    if index_oid == pg_sys::InvalidOid {
        return Vec::new();
    }
    // SAFETY: the primary key of an open relation exists; its index row is read while the
    // index is open, and copied before it is closed.
    unsafe {
        let index = pg_sys::index_open(index_oid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let form = &*(*index).rd_index;
        let attnums = form
            .indkey
            .values
            .as_slice(form.indnkeyatts as usize)
            .to_vec();
        pg_sys::index_close(index, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        attnums
    }
}
