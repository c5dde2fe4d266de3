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
