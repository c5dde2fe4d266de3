//! WAL delivery (`delivery => 'wal'`): each payload becomes a transactional logical decoding
//! message, prefixed `pg_column_notify:<channel>`. It is written with the change, decoded in
//! commit order by a logical replication slot, and vanishes with a rollback. Unlike NOTIFY it
//! takes no database-wide lock at commit, so concurrent writers keep group commit.

use std::ffi::{CStr, CString};

use pgrx::pg_sys;

use crate::pg::server_text;

/// What every prefix of the extension's messages starts with; the channel follows.
pub const PREFIX: &str = "pg_column_notify:";

// `replication/message.h` is not among the headers pgrx binds. PostgreSQL 17 added `flush`.
unsafe extern "C-unwind" {
    #[cfg(not(any(feature = "pg14", feature = "pg15", feature = "pg16")))]
    fn LogLogicalMessage(
        prefix: *const std::ffi::c_char,
        message: *const std::ffi::c_char,
        size: usize,
        transactional: bool,
        flush: bool,
    ) -> pg_sys::XLogRecPtr;
    #[cfg(any(feature = "pg14", feature = "pg15", feature = "pg16"))]
    fn LogLogicalMessage(
        prefix: *const std::ffi::c_char,
        message: *const std::ffi::c_char,
        size: usize,
        transactional: bool,
    ) -> pg_sys::XLogRecPtr;
}

/// The prefix of the messages of `channel` (as Rust decoded it: UTF-8).
pub fn prefix_of(channel: &str) -> CString {
    CString::new(format!("{PREFIX}{channel}")).expect("a channel name has no NUL")
}

/// Whether `wal_level` lets a replication slot decode the messages.
pub fn logical_decoding_possible() -> bool {
    // SAFETY: reads a server setting, fixed at start.
    unsafe { pg_sys::wal_level >= pg_sys::WalLevel::WAL_LEVEL_LOGICAL as i32 }
}

/// Writes `payload` (text in the database's encoding) as a transactional message with
/// `prefix` (see [`prefix_of`]), in UTF-8: a decoder passes message bytes on unconverted.
pub fn send(prefix: &CStr, payload: &[u8]) {
    let utf8;
    let payload = if server_text::is_utf8() {
        payload
    } else {
        utf8 = server_text::decode(payload).into_bytes();
        &utf8
    };
    // SAFETY: the prefix is NUL-terminated and the message a valid buffer of `len` bytes,
    // both valid for the call; the record is copied into the WAL. The boundary turns a
    // PostgreSQL error into a Rust panic instead of a longjmp across Rust frames.
    unsafe {
        pg_sys::ffi::pg_guard_ffi_boundary(|| {
            #[cfg(not(any(feature = "pg14", feature = "pg15", feature = "pg16")))]
            LogLogicalMessage(
                prefix.as_ptr(),
                payload.as_ptr().cast(),
                payload.len(),
                true,
                false,
            );
            #[cfg(any(feature = "pg14", feature = "pg15", feature = "pg16"))]
            LogLogicalMessage(
                prefix.as_ptr(),
                payload.as_ptr().cast(),
                payload.len(),
                true,
            );
        })
    };
}
