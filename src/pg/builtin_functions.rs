//! Calling the server's own SQL-callable C functions (array_to_json, nextval_oid...) through
//! a function-manager entry looked up once, rather than through SQL.

use std::ffi::CStr;

use pgrx::pg_sys;

/// The function-manager entry of the internal function `name` (as `prosrc` names it).
///
/// # Safety
/// Must run inside a transaction; `memory_context` must outlive the returned entry.
pub unsafe fn builtin(name: &CStr, memory_context: pg_sys::MemoryContext) -> pg_sys::FmgrInfo {
    // SAFETY: inside a transaction, with a context that outlives the entry (the caller's
    // contract); `name` is NUL-terminated.
    unsafe {
        function_info(
            pg_sys::fmgr_internal_function(name.as_ptr()),
            memory_context,
        )
    }
}

/// The function-manager entry of function `oid`.
///
/// # Safety
/// Must run inside a transaction; `memory_context` must outlive the returned entry.
pub unsafe fn function_info(
    oid: pg_sys::Oid,
    memory_context: pg_sys::MemoryContext,
) -> pg_sys::FmgrInfo {
    let mut info = pg_sys::FmgrInfo::default();
    // SAFETY: fills the local `info`; what it points to is allocated in `memory_context`,
    // which outlives the entry (the caller's contract). An FmgrInfo holds no pointer to
    // itself, so it may be moved out.
    unsafe { pg_sys::fmgr_info_cxt(oid, &mut info, memory_context) };
    info
}

/// The output function (`typoutput`) of a type.
pub fn output_function(type_oid: pg_sys::Oid) -> pg_sys::Oid {
    let mut function = pg_sys::InvalidOid;
    let mut is_varlena = false;
    // SAFETY: a catalog lookup writing into the two locals; an unknown type raises an error.
    unsafe { pg_sys::getTypeOutputInfo(type_oid, &mut function, &mut is_varlena) };
    function
}
