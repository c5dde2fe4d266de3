//! Switching the current memory context for a scope: the previous context is made current
//! again when the scope ends, also when a PostgreSQL error unwinds through it as a panic.

use pgrx::pg_sys;

/// Keeps a memory context current until dropped, then restores the one it replaced.
#[must_use = "the previous memory context is restored as soon as the guard is dropped"]
pub struct MemoryContextGuard {
    previous: pg_sys::MemoryContext,
}

impl MemoryContextGuard {
    /// Makes `context` the current memory context until the guard is dropped.
    ///
    /// # Safety
    /// `context` must be a valid memory context that lives as long as the guard, and the
    /// current context must still exist when the guard is dropped (guards dropped in the
    /// reverse order of their making, as scopes drop them, ensure it).
    pub unsafe fn switch_to(context: pg_sys::MemoryContext) -> Self {
        // SAFETY: a backend runs one thread, so nothing else reads or writes the global
        // current context; the caller vouches for `context`.
        let previous = unsafe {
            let previous = pg_sys::CurrentMemoryContext;
            pg_sys::CurrentMemoryContext = context;
            previous
        };
        Self { previous }
    }
}

impl Drop for MemoryContextGuard {
    fn drop(&mut self) {
        // SAFETY: one thread per backend; `previous` was current when the guard was made
        // and still exists (the contract of `switch_to`). An error unwinding as a panic has
        // not yet reached PostgreSQL's handler, which alone frees contexts after an error.
        unsafe { pg_sys::CurrentMemoryContext = self.previous };
    }
}
