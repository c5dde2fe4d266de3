//! The `pg_finfo_*` record PostgreSQL looks up to call a C function with the version-1
//! convention, for the functions written by hand rather than by `#[pg_extern]`.

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
