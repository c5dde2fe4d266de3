//! Binary identity of two values of one column: when the bytes are the same, so is every
//! rendering and every comparison, and the work done for one can be reused for the other.

use pgrx::pg_sys;
use pgrx::varlena;

/// How a column's values are stored (`attbyval`, `attlen`).
#[derive(Debug, Clone, Copy)]
pub struct Storage {
    pub by_value: bool,
    pub length: i16,
}

/// What comparing two stored images tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Images {
    Same,
    Different,
    /// Compressed or out-of-line values whose stored forms differ: the values may still
    /// be equal.
    Undecided,
}

impl Storage {
    /// Compares the stored images of `a` and `b`.
    ///
    /// # Safety
    /// Both datums must be values of a column with this storage.
    pub unsafe fn compare(self, a: pg_sys::Datum, b: pg_sys::Datum) -> Images {
        let same = |equal: bool| {
            if equal {
                Images::Same
            } else {
                Images::Different
            }
        };
        if self.by_value || a == b {
            return same(a == b);
        }
        // SAFETY: both datums are values of a column with this storage (the caller's
        // contract): pointers to `length` bytes, to varlenas (-1) or to C strings (-2).
        unsafe {
            match self.length {
                length if length > 0 => {
                    let length = length as usize;
                    same(
                        std::slice::from_raw_parts(a.cast_mut_ptr::<u8>(), length)
                            == std::slice::from_raw_parts(b.cast_mut_ptr::<u8>(), length),
                    )
                }
                -1 => {
                    let a = a.cast_mut_ptr::<pg_sys::varlena>();
                    let b = b.cast_mut_ptr::<pg_sys::varlena>();
                    if is_plain(a) && is_plain(b) {
                        same(varlena::varlena_to_byte_slice(a) == varlena::varlena_to_byte_slice(b))
                    } else if raw_bytes(a) == raw_bytes(b) {
                        Images::Same
                    } else {
                        Images::Undecided
                    }
                }
                _ => same(
                    std::ffi::CStr::from_ptr(a.cast_mut_ptr())
                        == std::ffi::CStr::from_ptr(b.cast_mut_ptr()),
                ),
            }
        }
    }
}

/// An inline, uncompressed varlena (its bytes are its value, whatever its header size).
///
/// # Safety
/// `value` must point to a varlena.
pub unsafe fn is_plain(value: *const pg_sys::varlena) -> bool {
    // SAFETY: `value` points to a varlena (the caller's contract), whose first byte tells
    // which header it has.
    unsafe {
        if varlena::varatt_is_1b(value) {
            !varlena::varatt_is_1b_e(value)
        } else {
            varlena::varatt_is_4b_u(value)
        }
    }
}

/// The whole stored varlena, header included (a TOAST pointer for toasted values).
///
/// # Safety
/// `value` must point to a varlena that lives as long as `'a`.
unsafe fn raw_bytes<'a>(value: *const pg_sys::varlena) -> &'a [u8] {
    // SAFETY: `value` points to a varlena (the caller's contract), and `varsize_any` reads
    // its stored size, header included, from its header.
    unsafe { std::slice::from_raw_parts(value.cast::<u8>(), varlena::varsize_any(value)) }
}
