//! Queues a notification for delivery at commit, without going through the SQL function
//! manager (`pg_notify`): the trigger calls the backend's `Async_Notify` directly.

use std::ffi::CStr;

use pgrx::pg_sys;

use crate::delivery::queue_pressure::{self, Admission};

/// PostgreSQL refuses a payload whose length reaches this many bytes
/// (`NOTIFY_PAYLOAD_MAX_LENGTH` in `commands/async.c`).
pub const MAX_PAYLOAD_BYTES: usize = 8000;

/// A channel name must be shorter than `NAMEDATALEN` bytes and not empty.
pub const MAX_CHANNEL_BYTES: usize = pg_sys::NAMEDATALEN as usize - 1;

// `commands/async.h` is not among the headers pgrx binds.
unsafe extern "C-unwind" {
    fn Async_Notify(channel: *const std::ffi::c_char, payload: *const std::ffi::c_char);
}

/// Why a channel name cannot be used with NOTIFY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelProblem {
    Empty,
    TooLong,
}

/// Checks a channel name (in the database's encoding) against the limits `Async_Notify`
/// enforces with an error.
pub fn check_channel(channel: &[u8]) -> Result<(), ChannelProblem> {
    if channel.is_empty() {
        Err(ChannelProblem::Empty)
    } else if channel.len() > MAX_CHANNEL_BYTES {
        Err(ChannelProblem::TooLong)
    } else {
        Ok(())
    }
}

/// Queues `payload` (without its NUL) on `channel`, unless the queue's pressure holds it
/// back (see `queue_pressure.rs`). When notifications of the channel were held back
/// before, the member `"skipped":N` is inserted at `first_member_at` (just inside the
/// object that starts the payload's first change), if the payload then still fits. The
/// caller guarantees a valid channel (see [`check_channel`]) and a payload shorter than
/// [`MAX_PAYLOAD_BYTES`], so the backend never raises an error that would abort the
/// writer's transaction.
pub fn send(channel: &CStr, payload: &mut Vec<u8>, first_member_at: usize) {
    debug_assert!(payload.len() < MAX_PAYLOAD_BYTES);
    let Admission::Send { skipped } = queue_pressure::admit(channel, payload.len()) else {
        return;
    };
    if skipped > 0 {
        let member = format!(r#""skipped":{skipped},"#);
        if payload.len() + member.len() < MAX_PAYLOAD_BYTES {
            payload.splice(first_member_at..first_member_at, member.bytes());
            queue_pressure::skipped_reported(channel);
        }
    }
    payload.push(0);
    debug_assert!(CStr::from_bytes_with_nul(payload).is_ok());
    // SAFETY: the payload ends with the NUL just pushed and holds no other (JSON escapes
    // control characters, and text values hold no NUL); checking it would read it again.
    let text = unsafe { CStr::from_bytes_with_nul_unchecked(payload) };
    // SAFETY: both pointers are valid NUL-terminated strings for the duration of the call,
    // and Async_Notify copies them into its own memory. The boundary turns a PostgreSQL
    // error (out of memory) into a Rust panic instead of a longjmp across Rust frames.
    unsafe { pg_sys::ffi::pg_guard_ffi_boundary(|| Async_Notify(channel.as_ptr(), text.as_ptr())) }
    payload.pop();
}
