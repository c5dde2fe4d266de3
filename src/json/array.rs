//! Arrays written as `array_to_json` writes them (one bracket per dimension, `null` for a
//! NULL element, `[]` when empty), each element by the encoder of the element type. Calling
//! `array_to_json` itself would look up the element type's category and output function
//! in the catalog for every value.

use pgrx::pg_sys;

use crate::json::encoder::ColumnEncoder;

pub struct ArrayEncoder {
    element_type: pg_sys::Oid,
    length: i16,
    by_value: bool,
    align: std::ffi::c_char,
    element: ColumnEncoder,
}

impl ArrayEncoder {
    /// The encoder of arrays of type `array_type`; none for arrays of records, whose
    /// elements carry their own type.
    ///
    /// # Safety
    /// Must run inside a transaction; `memory_context` must outlive the encoder.
    pub unsafe fn for_array(
        array_type: pg_sys::Oid,
        memory_context: pg_sys::MemoryContext,
    ) -> Option<Self> {
        // SAFETY: a catalog lookup inside a transaction (the caller's contract).
        let element_type = unsafe { pg_sys::get_element_type(array_type) };
        if element_type == pg_sys::InvalidOid || element_type == pg_sys::RECORDOID {
            return None;
        }
        let (mut length, mut by_value, mut align) = (0, false, 0);
        // SAFETY: a catalog lookup of an existing type, writing into the three locals.
        unsafe {
            pg_sys::get_typlenbyvalalign(element_type, &mut length, &mut by_value, &mut align)
        };
        Some(Self {
            element_type,
            length,
            by_value,
            align,
            // SAFETY: inside a transaction, with a context that outlives the encoder (the
            // caller's contract).
            element: unsafe { ColumnEncoder::for_type(element_type, memory_context) },
        })
    }

    /// Appends the JSON of one non-null array value.
    ///
    /// # Safety
    /// `value` must be an array of the type this encoder was made for.
    pub unsafe fn encode(&mut self, value: pg_sys::Datum, out: &mut Vec<u8>) {
        // A detoasted copy, if one is made, lives in the current (per-row) context.
        // SAFETY: `value` is an array (the caller's contract).
        let array =
            unsafe { pg_sys::pg_detoast_datum(value.cast_mut_ptr()) }.cast::<pg_sys::ArrayType>();
        // SAFETY: a detoasted array's header is followed by its `ndim` dimensions (ARR_DIMS).
        let dimensions = unsafe {
            std::slice::from_raw_parts(
                array
                    .cast::<u8>()
                    .add(std::mem::size_of::<pg_sys::ArrayType>())
                    .cast::<std::ffi::c_int>(),
                (*array).ndim.max(0) as usize,
            )
        };
        // SAFETY: `dimensions` holds as many entries as the count passed.
        if unsafe { pg_sys::ArrayGetNItems(dimensions.len() as i32, dimensions.as_ptr()) } <= 0 {
            out.extend_from_slice(b"[]");
            return;
        }
        let (mut values, mut nulls, mut count) = (std::ptr::null_mut(), std::ptr::null_mut(), 0);
        // SAFETY: the array's elements are of the type, length, passing and alignment this
        // encoder looked up; deconstruct_array returns `count` values and nulls, allocated in
        // the current context.
        let (values, nulls) = unsafe {
            pg_sys::deconstruct_array(
                array,
                self.element_type,
                self.length.into(),
                self.by_value,
                self.align,
                &mut values,
                &mut nulls,
                &mut count,
            );
            (
                std::slice::from_raw_parts(values, count as usize),
                std::slice::from_raw_parts(nulls, count as usize),
            )
        };
        let mut elements = values.iter().zip(nulls);
        // SAFETY: the elements are values of the element type, laid out in `dimensions`.
        unsafe { self.push_dimension(out, dimensions, &mut elements) };
    }

    /// `[…]` of the first of `dimensions`, taking its elements from `elements`.
    ///
    /// # Safety
    /// Every element must be a value of the type this encoder was made for.
    unsafe fn push_dimension<'a>(
        &mut self,
        out: &mut Vec<u8>,
        dimensions: &[std::ffi::c_int],
        elements: &mut impl Iterator<Item = (&'a pg_sys::Datum, &'a bool)>,
    ) {
        out.push(b'[');
        for n in 0..dimensions[0] {
            if n > 0 {
                out.push(b',');
            }
            if dimensions.len() > 1 {
                // SAFETY: the same elements (the caller's contract).
                unsafe { self.push_dimension(out, &dimensions[1..], elements) };
                continue;
            }
            match elements.next() {
                Some((_, true)) | None => out.extend_from_slice(b"null"),
                // SAFETY: a non-null element of the element type (the caller's contract).
                Some((&value, false)) => unsafe { self.element.encode(value, out) },
            }
        }
        out.push(b']');
    }
}
