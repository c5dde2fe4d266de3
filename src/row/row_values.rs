//! A row's values, deformed once from its heap tuple into reusable buffers.

use pgrx::pg_sys;

pub struct RowValues {
    values: Vec<pg_sys::Datum>,
    nulls: Vec<bool>,
}

impl RowValues {
    pub fn with_width(width: usize) -> Self {
        Self {
            values: vec![pg_sys::Datum::from(0); width],
            nulls: vec![true; width],
        }
    }

    /// Deforms `tuple` (attributes past the tuple's own width get their default).
    ///
    /// # Safety
    /// `tuple` must be a valid tuple of `descriptor`, which has the width given at creation.
    pub unsafe fn load(&mut self, tuple: pg_sys::HeapTuple, descriptor: pg_sys::TupleDesc) {
        // SAFETY: `tuple` is a tuple of `descriptor`, whose width both buffers have (the
        // caller's contract), so heap_deform_tuple writes inside them.
        unsafe {
            debug_assert_eq!((*descriptor).natts as usize, self.values.len());
            pg_sys::heap_deform_tuple(
                tuple,
                descriptor,
                self.values.as_mut_ptr(),
                self.nulls.as_mut_ptr(),
            );
        }
    }

    /// Copies the values of a slot (all of its attributes are deformed first).
    ///
    /// # Safety
    /// `slot` must hold a tuple of the descriptor's width given at creation.
    pub unsafe fn load_slot(&mut self, slot: *mut pg_sys::TupleTableSlot) {
        let width = self.values.len();
        // SAFETY: the slot holds a tuple of `width` attributes (the caller's contract); once
        // deformed, its value and null arrays hold that many entries.
        unsafe {
            pg_sys::slot_getsomeattrs_int(slot, width as i32);
            self.values
                .copy_from_slice(std::slice::from_raw_parts((*slot).tts_values, width));
            self.nulls
                .copy_from_slice(std::slice::from_raw_parts((*slot).tts_isnull, width));
        }
    }

    /// Writes the values into a slot that holds a tuple of the same width (virtual, with
    /// every field valid), which then reads them in place.
    ///
    /// # Safety
    /// `slot` must be a virtual slot of the width given at creation, holding a tuple.
    pub unsafe fn copy_into_slot(&self, slot: *mut pg_sys::TupleTableSlot) {
        let width = self.values.len();
        // SAFETY: a virtual slot of `width` attributes has value and null arrays of that
        // length (the caller's obligation).
        unsafe {
            std::slice::from_raw_parts_mut((*slot).tts_values, width).copy_from_slice(&self.values);
            std::slice::from_raw_parts_mut((*slot).tts_isnull, width).copy_from_slice(&self.nulls);
        }
    }

    /// The value at descriptor index `index`, `None` for NULL.
    pub fn get(&self, index: usize) -> Option<pg_sys::Datum> {
        (!self.nulls[index]).then(|| self.values[index])
    }
}
