//! Running server code that may raise an ERROR without letting the ERROR end the caller's
//! transaction: the work runs in an internal subtransaction (as a plpgsql EXCEPTION block
//! does), which is rolled back when it fails, giving back the locks, buffers and other
//! resources taken inside. What the work allocated in the caller's memory context stays.

use std::panic::AssertUnwindSafe;

use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::{PgSqlErrorCode, PgTryBuilder};

/// An ERROR caught and rolled back: its SQLSTATE and message.
#[derive(Debug, Clone)]
pub struct Failure {
    pub code: PgSqlErrorCode,
    pub message: String,
}

/// Runs `work` in a subtransaction; its ERROR, rolled back, is returned instead of raised.
pub fn catching<R>(work: impl FnOnce() -> R) -> Result<R, Failure> {
    // SAFETY: reads the backend's current memory context and resource owner, which the
    // subtransaction replaces and which are restored below however it ends.
    let (context, owner) = unsafe { (pg_sys::CurrentMemoryContext, pg_sys::CurrentResourceOwner) };
    let restore = || {
        // SAFETY: both existed before the subtransaction and outlive it.
        unsafe {
            pg_sys::MemoryContextSwitchTo(context);
            pg_sys::CurrentResourceOwner = owner;
        }
    };
    // SAFETY: inside a transaction (every caller runs in one); the work then allocates in
    // the caller's context, not the subtransaction's, so its results outlive the
    // subtransaction.
    unsafe {
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(context);
    }
    PgTryBuilder::new(AssertUnwindSafe(|| {
        let result = work();
        // SAFETY: the subtransaction begun above is the current one.
        unsafe { pg_sys::ReleaseCurrentSubTransaction() };
        restore();
        Ok(result)
    }))
    .catch_others(|error| {
        // SAFETY: the subtransaction begun above is still the current one: pgrx has turned
        // the ERROR into this value and cleared PostgreSQL's error state.
        unsafe { pg_sys::RollbackAndReleaseCurrentSubTransaction() };
        restore();
        Err(failure(error))
    })
    .execute()
}

fn failure(error: CaughtError) -> Failure {
    match error {
        CaughtError::PostgresError(report)
        | CaughtError::ErrorReport(report)
        | CaughtError::RustPanic {
            ereport: report, ..
        } => Failure {
            code: report.sql_error_code(),
            message: report.message().to_owned(),
        },
    }
}
