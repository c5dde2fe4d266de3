//! IS DISTINCT FROM for one column, decided once per statement: the type's own equality
//! operator where it has one, otherwise equality of the text forms (json, point, xml...).

use std::ffi::CStr;

use pgrx::pg_sys;

use crate::pg::builtin_functions::{function_info, output_function};
use crate::pg::datum_image::{Images, Storage};
use crate::row::payload::{Change, Operation};
use crate::row::plan::TriggerPlan;
use crate::row::scratch::CallScratch;

pub enum Equality {
    /// Types whose `=` is identity of the stored value (integers, bool, uuid, dates,
    /// timestamps, and text under a deterministic collation): compared without a function
    /// call, and through `=` only when toasted images differ but may hold equal values.
    SameImage {
        storage: Storage,
        operator: Option<pg_sys::FmgrInfo>,
        collation: pg_sys::Oid,
    },
    /// The `=` operator of the type's default btree or hash opclass, under the column's
    /// collation (as the executor evaluates `IS DISTINCT FROM`).
    Operator {
        function: pg_sys::FmgrInfo,
        collation: pg_sys::Oid,
    },
    /// No `=` operator: values are equal when their output texts are.
    TextForm { output: pg_sys::FmgrInfo },
}

impl Equality {
    /// # Safety
    /// Must run inside a transaction; `memory_context` must outlive the returned value.
    pub unsafe fn for_column(
        type_oid: pg_sys::Oid,
        collation: pg_sys::Oid,
        storage: Storage,
        memory_context: pg_sys::MemoryContext,
    ) -> Self {
        // SAFETY: inside a transaction (the caller's contract); type cache entries are never
        // freed, so the returned pointer is valid.
        let operator = unsafe {
            (*pg_sys::lookup_type_cache(type_oid, pg_sys::TYPECACHE_EQ_OPR as i32)).eq_opr
        };
        if operator == pg_sys::InvalidOid {
            // SAFETY: inside a transaction; `memory_context` outlives the value (the caller's
            // contract), and so the function information kept in it.
            let output = unsafe { function_info(output_function(type_oid), memory_context) };
            return Self::TextForm { output };
        }
        // SAFETY: a catalog lookup of the operator the type cache just gave.
        let procedure = unsafe { pg_sys::get_opcode(operator) };
        if is_identity_equality(procedure, collation) {
            // Only varlena text can hold equal values in different images (one toasted).
            // SAFETY: as for `output` above.
            let operator =
                (storage.length == -1).then(|| unsafe { function_info(procedure, memory_context) });
            return Self::SameImage {
                storage,
                operator,
                collation,
            };
        }
        Self::Operator {
            // SAFETY: as for `output` above.
            function: unsafe { function_info(procedure, memory_context) },
            collation,
        }
    }

    /// True when the two values are distinct, NULLs compared as values.
    ///
    /// # Safety
    /// Both datums must be valid values of the column's type.
    pub unsafe fn distinct(
        &mut self,
        old: Option<pg_sys::Datum>,
        new: Option<pg_sys::Datum>,
    ) -> bool {
        let (old, new) = match (old, new) {
            (None, None) => return false,
            (Some(old), Some(new)) => (old, new),
            _ => return true,
        };
        match self {
            Self::SameImage {
                storage,
                operator,
                collation,
            } => {
                // SAFETY: both datums are values of the column, stored as `storage` says (the
                // caller's contract).
                match unsafe { storage.compare(old, new) } {
                    Images::Same => false,
                    Images::Different => true,
                    Images::Undecided => match operator {
                        Some(function) => {
                            // SAFETY: the type's `=`, looked up in a context that outlives
                            // `self`, called on two values of its type.
                            unsafe { pg_sys::FunctionCall2Coll(function, *collation, old, new) }
                                .value()
                                == 0
                        }
                        None => true,
                    },
                }
            }
            Self::Operator {
                function,
                collation,
            } => {
                // SAFETY: as for `Images::Undecided` above.
                unsafe { pg_sys::FunctionCall2Coll(function, *collation, old, new) }.value() == 0
            }
            Self::TextForm { output } => {
                // SAFETY: the type's output function, looked up in a context that outlives
                // `self`, returns a new NUL-terminated string for a value of its type.
                let old = unsafe { CStr::from_ptr(pg_sys::OutputFunctionCall(output, old)) };
                // SAFETY: as for `old`.
                let new = unsafe { CStr::from_ptr(pg_sys::OutputFunctionCall(output, new)) };
                old != new
            }
        }
    }
}

/// Equality functions that hold exactly when the stored images are the same.
fn is_identity_equality(procedure: pg_sys::Oid, collation: pg_sys::Oid) -> bool {
    const IDENTITY: [u32; 11] = [
        pg_sys::F_BOOLEQ,
        pg_sys::F_CHAREQ,
        pg_sys::F_INT2EQ,
        pg_sys::F_INT4EQ,
        pg_sys::F_INT8EQ,
        pg_sys::F_OIDEQ,
        pg_sys::F_DATE_EQ,
        pg_sys::F_TIMESTAMP_EQ,
        pg_sys::F_TIMESTAMPTZ_EQ,
        pg_sys::F_TIME_EQ,
        pg_sys::F_UUID_EQ,
    ];
    let procedure = u32::from(procedure);
    if IDENTITY.contains(&procedure) {
        return true;
    }
    // texteq compares bytes under a deterministic collation (the default one is).
    procedure == pg_sys::F_TEXTEQ
        && (collation == pg_sys::InvalidOid
            // SAFETY: a catalog lookup of the column's collation, which exists while the
            // column does.
            || unsafe { pg_sys::get_collation_isdeterministic(collation) })
}

/// Which watched columns of the row loaded into `scratch` changed (into `scratch.changed`),
/// and whether its key did. For an INSERT or a DELETE every watched column counts.
/// Returns `None` for an UPDATE that changed no watched column.
///
/// # Safety
/// The scratch's `old`/`new` rows must hold the tuples of this trigger call.
pub unsafe fn changes_of_row(
    plan: &mut TriggerPlan,
    scratch: &mut CallScratch,
    operation: Operation,
) -> Option<Change> {
    let (has_old, has_new) = operation.images();
    scratch.changed.clear();
    let mut key_changed = false;
    if operation == Operation::Update {
        for (position, watched) in plan.watched.iter_mut().enumerate() {
            let index = plan.columns[watched.column].index;
            // SAFETY: both rows hold this call's tuples (the caller's obligation).
            let distinct = unsafe {
                watched
                    .equality
                    .distinct(scratch.old.get(index), scratch.new.get(index))
            };
            if distinct {
                scratch.changed.push(position);
            }
        }
        if scratch.changed.is_empty() {
            return None;
        }
        for (&column, equality) in plan.key.iter().zip(plan.key_equality.iter_mut()) {
            let index = plan.columns[column].index;
            // SAFETY: as above.
            key_changed |=
                unsafe { equality.distinct(scratch.old.get(index), scratch.new.get(index)) };
        }
    } else {
        scratch.changed.extend(0..plan.watched.len());
    }
    Some(Change {
        operation,
        has_old,
        has_new,
        key_changed,
    })
}
