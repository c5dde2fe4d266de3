//! The version-1 calling convention, for the functions written by hand rather than by
//! `#[pg_extern]`: the `pg_finfo_*` record PostgreSQL looks up, and the call's context.

use pgrx::pg_sys;

/// Defines `pg_finfo_<function>`; pass that full name.
macro_rules! v1_function_info {
    ($finfo:ident) => {
        #[unsafe(no_mangle)]
        #[doc(hidden)]
        pub extern "C" fn $finfo() -> &'static ::pgrx::pg_sys::Pg_finfo_record {
            const V1: ::pgrx::pg_sys::Pg_finfo_record =
                ::pgrx::pg_sys::Pg_finfo_record { api_version: 1 };
            &V1
        }
    };
}

pub(crate) use v1_function_info;

/// The node PostgreSQL passed as the call's context (`TriggerData` for a trigger,
/// `EventTriggerData` for an event trigger), when it is of type `tag`.
///
/// # Safety
/// `fcinfo` must be a call from the function manager; `T` must be the struct of `tag`;
/// `'a` must not outlive the call.
pub unsafe fn call_context<'a, T>(
    fcinfo: pg_sys::FunctionCallInfo,
    tag: pg_sys::NodeTag,
) -> Option<&'a T> {
    // SAFETY: `fcinfo` is a valid call (the caller's contract), so a non-null context is a
    // node, and one tagged `tag` is a `T` (the caller's contract) that lives for the call.
    unsafe {
        let context = (*fcinfo).context;
        (!context.is_null() && (*context).type_ == tag).then(|| &*(context as *const T))
    }
}
