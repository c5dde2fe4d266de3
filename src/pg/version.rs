//! Everything that differs between the PostgreSQL majors the extension supports (14 to 18,
//! one Cargo feature each). Each difference is one function here, behind
//! `#[cfg(feature = "pgNN")]`; the rest of the crate calls these and names no major.

use pgrx::pg_sys;

/// Whether the current role owns relation `oid` (superusers own everything).
/// PostgreSQL 16 replaced `pg_class_ownercheck` with the generic `object_ownercheck`.
pub fn current_user_owns_relation(oid: pg_sys::Oid) -> bool {
    #[cfg(any(feature = "pg14", feature = "pg15"))]
    // SAFETY: reads the catalog in a transaction; an unknown oid raises an ERROR, which pgrx
    // turns into a Rust panic that unwinds to the calling function's boundary.
    unsafe {
        pg_sys::pg_class_ownercheck(oid, pg_sys::GetUserId())
    }
    #[cfg(not(any(feature = "pg14", feature = "pg15")))]
    // SAFETY: as above; `RelationRelationId` names pg_class, the catalog of `oid`.
    unsafe {
        pg_sys::object_ownercheck(pg_sys::RelationRelationId, oid, pg_sys::GetUserId())
    }
}

/// Whether column `attnum` of relation `oid` is a virtual generated column (PostgreSQL 18
/// on). Such a column is computed when read: the rows a trigger gets hold NULL for it (as
/// `row_to_json(NEW)` in an AFTER trigger shows), so a change to it cannot be seen there.
#[cfg(feature = "pg18")]
pub fn is_virtual_generated_column(oid: pg_sys::Oid, attnum: pg_sys::AttrNumber) -> bool {
    // SAFETY: a syscache lookup; the caller checked that the column exists.
    let generated = unsafe { pg_sys::get_attgenerated(oid, attnum) };
    generated as u8 == pg_sys::ATTRIBUTE_GENERATED_VIRTUAL
}

/// Before PostgreSQL 18 generated columns are stored, so every column is in the row.
#[cfg(not(feature = "pg18"))]
pub fn is_virtual_generated_column(_oid: pg_sys::Oid, _attnum: pg_sys::AttrNumber) -> bool {
    false
}

/// The text of a String node (a column reference's field), `None` for another node.
/// PostgreSQL 15 gave strings a node type of their own; 14 keeps them in `Value`.
///
/// # Safety
/// `node` must be a valid node, which outlives the returned text.
pub unsafe fn string_node<'a>(node: *mut pg_sys::Node) -> Option<&'a std::ffi::CStr> {
    // SAFETY: a valid node's tag tells its type (the caller's obligation).
    if unsafe { (*node).type_ } != pg_sys::NodeTag::T_String {
        return None;
    }
    #[cfg(feature = "pg14")]
    // SAFETY: a T_String node is a Value holding a NUL-terminated string.
    let text = unsafe { (*node.cast::<pg_sys::Value>()).val.str_ };
    #[cfg(not(feature = "pg14"))]
    // SAFETY: a T_String node is a String holding a NUL-terminated string.
    let text = unsafe { (*node.cast::<pg_sys::String>()).sval };
    // SAFETY: as above.
    Some(unsafe { std::ffi::CStr::from_ptr(text) })
}
