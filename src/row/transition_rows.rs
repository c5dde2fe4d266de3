//! Walks a statement's transition tables (the old and new images of every row it touched,
//! in the same order) and gives each row a memory context of its own, reset after it.

use pgrx::pg_sys;

use crate::pg::memory_context::MemoryContextGuard;
use crate::row::row_values::RowValues;

pub struct TransitionRows {
    old: Option<(*mut pg_sys::Tuplestorestate, *mut pg_sys::TupleTableSlot)>,
    new: Option<(*mut pg_sys::Tuplestorestate, *mut pg_sys::TupleTableSlot)>,
    row_context: pg_sys::MemoryContext,
}

impl TransitionRows {
    /// Opens the given transition tables (null for an image the operation has not).
    ///
    /// # Safety
    /// The tuplestores must be the trigger's transition tables of rows of `descriptor`.
    pub unsafe fn open(
        old: *mut pg_sys::Tuplestorestate,
        new: *mut pg_sys::Tuplestorestate,
        descriptor: pg_sys::TupleDesc,
    ) -> Self {
        let reader = |store: *mut pg_sys::Tuplestorestate| {
            // SAFETY: a non-null `store` is a transition table of rows of `descriptor` (the
            // caller's contract), which lives for the trigger call.
            (!store.is_null()).then(|| unsafe {
                // Another trigger on the same statement may have read the rows already.
                pg_sys::tuplestore_rescan(store);
                let slot =
                    pg_sys::MakeSingleTupleTableSlot(descriptor, &pg_sys::TTSOpsMinimalTuple);
                (store, slot)
            })
        };
        // SAFETY: the current context is valid during the trigger call, and the name is a
        // static string, as the context keeps a pointer to it.
        let row_context = unsafe {
            pg_sys::AllocSetContextCreateExtended(
                pg_sys::CurrentMemoryContext,
                c"pg_column_notify row".as_ptr(),
                pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
                pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
                pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
            )
        };
        Self {
            old: reader(old),
            new: reader(new),
            row_context,
        }
    }

    /// Loads the next row's images; false when every row has been seen.
    ///
    /// # Safety
    /// `old` and `new` must have the width of the descriptor given to `open`.
    pub unsafe fn next(&mut self, old: &mut RowValues, new: &mut RowValues) -> bool {
        for (reader, row) in [(self.old, old), (self.new, new)] {
            if let Some((store, slot)) = reader {
                // SAFETY: `store` and `slot` were opened together by `open` and live until
                // `self` drops.
                if !unsafe { pg_sys::tuplestore_gettupleslot(store, true, false, slot) } {
                    return false;
                }
                // SAFETY: the slot holds a row of the descriptor given to `open`, whose width
                // `row` has (the caller's contract).
                unsafe { row.load_slot(slot) };
            }
        }
        true
    }

    /// Runs `work` with the row's memory context current, then frees what it allocated.
    /// The previous context is current again when this returns, or when an error unwinds.
    pub fn in_row_context(&mut self, work: impl FnOnce()) {
        {
            // SAFETY: the row context lives until `self` drops, and the caller's current
            // context until this call returns: both outlive the guard, dropped in this block.
            let _row_context = unsafe { MemoryContextGuard::switch_to(self.row_context) };
            work();
        }
        // SAFETY: the previous context is current again, and nothing allocated in the row
        // context is kept past `work`.
        unsafe { pg_sys::MemoryContextReset(self.row_context) };
    }
}

impl Drop for TransitionRows {
    fn drop(&mut self) {
        for (_, slot) in [self.old, self.new].into_iter().flatten() {
            // SAFETY: the slot was made by `open` and is dropped here only.
            unsafe { pg_sys::ExecDropSingleTupleTableSlot(slot) };
        }
        // SAFETY: the context was made by `open` and is deleted here only; it is not current,
        // as `in_row_context` restores the previous one however it ends.
        unsafe { pg_sys::MemoryContextDelete(self.row_context) };
    }
}
