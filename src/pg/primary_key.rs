//! Finds the columns that identify a row: the table's primary key, in key order.

use pgrx::pg_sys;

/// The attribute numbers (1-based) of the primary key of `relation`, in key order;
/// empty when the table has none.
///
/// # Safety
/// `relation` must be an open relation.
pub unsafe fn primary_key_attnums(relation: pg_sys::Relation) -> Vec<i16> {
    unsafe {
        // Computing the index list is what fills in rd_pkindex.
        pg_sys::list_free(pg_sys::RelationGetIndexList(relation));
        let index_oid = (*relation).rd_pkindex;
        if index_oid == pg_sys::InvalidOid {
            return Vec::new();
        }
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
