//! Standard output for commands whose output may go to a pipe that closes early
//! (`column-notify watches | head -2`): a closed pipe ends the command quietly, with status 0,
//! where `print!` would panic. And the state lines on stderr, which `-q` silences.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::failure::Failure;

/// Writes `text` and flushes it. False when stdout is closed (a broken pipe).
pub fn write(text: &str) -> Result<bool, Failure> {
    write_parts(&[text])
}

/// [`write`] of one line.
pub fn line(text: &str) -> Result<bool, Failure> {
    write_parts(&[text, "\n"])
}

/// Writes the parts in one go (stdout keeps them until the line ends) and flushes them.
fn write_parts(parts: &[&str]) -> Result<bool, Failure> {
    let mut stdout = io::stdout().lock();
    let written = parts
        .iter()
        .try_for_each(|part| stdout.write_all(part.as_bytes()))
        .and_then(|()| stdout.flush());
    match written {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(error) => Err(Failure::new(format!("cannot write to stdout: {error}"))),
    }
}

/// Set by `-q`: no state lines.
static QUIET: AtomicBool = AtomicBool::new(false);

pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// A state line on stderr (connected, a connection lost or back, interrupted), unless `-q`.
pub fn state(text: &str) {
    if !QUIET.load(Ordering::Relaxed) {
        eprintln!("{text}");
    }
}
