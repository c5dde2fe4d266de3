//! Names as the catalog holds them: bytes in the database's encoding (the payload takes them
//! as they are, as `row_to_json` writes them; `server_text` decodes them for Rust).

use std::ffi::CStr;

use pgrx::{pg_sys, PgRelation};

/// A column's name.
pub fn attribute_name(attribute: &pg_sys::FormData_pg_attribute) -> &[u8] {
    // SAFETY: a NameData is NUL-terminated within its 64 bytes.
    unsafe { CStr::from_ptr(attribute.attname.data.as_ptr()) }.to_bytes()
}

/// An open relation's name.
pub fn relation_name(relation: &PgRelation) -> &[u8] {
    // SAFETY: an open relation's pg_class row is loaded; relname is NUL-terminated.
    unsafe { CStr::from_ptr((*relation.rd_rel).relname.data.as_ptr()) }.to_bytes()
}

/// The name of an open relation's schema.
pub fn relation_namespace(relation: &PgRelation) -> Vec<u8> {
    // SAFETY: the schema of an open relation exists; get_namespace_name returns a
    // NUL-terminated copy in the current memory context, copied here and freed.
    unsafe {
        let name = pg_sys::get_namespace_name((*relation.rd_rel).relnamespace);
        let bytes = CStr::from_ptr(name).to_bytes().to_vec();
        pg_sys::pfree(name.cast());
        bytes
    }
}
