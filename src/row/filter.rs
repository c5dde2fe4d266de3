//! A watch's row filter made ready to run for every change: compiled once per plan with
//! PostgreSQL's expression evaluator (as the executor runs a trigger's WHEN), then given the
//! old and new rows of each change. A row the filter does not accept is not sent.

use pgrx::pg_sys;

use crate::pg::internal_sql::with_safe_search_path;
use crate::pg::memory_context::MemoryContextGuard;
use crate::row::row_values::RowValues;
use crate::watch::filter::{self, NEW_VARNO, OLD_VARNO};

/// A compiled filter. Everything it holds lives in the plan's memory context; the plan
/// gives it back with [`CompiledFilter::release`] before deleting that context.
pub struct CompiledFilter {
    state: *mut pg_sys::ExprState,
    context: *mut pg_sys::ExprContext,
    old_row: *mut pg_sys::TupleTableSlot,
    new_row: *mut pg_sys::TupleTableSlot,
}

impl CompiledFilter {
    /// Compiles the filter `text` for rows of `relation`, resolving names with the safe
    /// search_path, as the text was written for (a writer's search_path never changes
    /// what a filter means). Raises the parser's ERROR when the text no longer parses.
    ///
    /// # Safety
    /// `relation` must be open; `memory_context` must outlive the filter.
    pub unsafe fn compile(
        relation: pg_sys::Relation,
        text: &str,
        memory_context: pg_sys::MemoryContext,
    ) -> CompiledFilter {
        // SAFETY: the context outlives the guard, dropped at the end of this function.
        let _in_plan_context = unsafe { MemoryContextGuard::switch_to(memory_context) };
        // SAFETY: the relation is open (the caller's obligation).
        let parsed = with_safe_search_path(|| unsafe { filter::parse(relation, text) })
            .unwrap_or_else(|error| error.report());
        // SAFETY: the expression was just parsed in the plan's context. As the executor does
        // for a trigger's WHEN, `old` and `new` become the inner and outer rows of the
        // evaluation, and the condition is planned and compiled as a qual (NULL is false).
        unsafe {
            pg_sys::ffi::pg_guard_ffi_boundary(|| {
                ChangeVarNodes(parsed.expression, OLD_VARNO, INNER_VAR, 0);
                ChangeVarNodes(parsed.expression, NEW_VARNO, OUTER_VAR, 0);
            });
            let qual = pg_sys::make_ands_implicit(parsed.expression.cast());
            let qual = pg_sys::expression_planner(qual.cast()).cast::<pg_sys::List>();
            let state = pg_sys::ExecInitQual(qual, std::ptr::null_mut());
            let descriptor = pg_sys::CreateTupleDescCopy((*relation).rd_att);
            CompiledFilter {
                state,
                context: pg_sys::CreateStandaloneExprContext(),
                old_row: pg_sys::MakeSingleTupleTableSlot(descriptor, &pg_sys::TTSOpsVirtual),
                new_row: pg_sys::MakeSingleTupleTableSlot(descriptor, &pg_sys::TTSOpsVirtual),
            }
        }
    }

    /// Whether the change with these images passes the filter. A missing image (`old` of
    /// an INSERT, `new` of a DELETE) has every field NULL.
    ///
    /// # Safety
    /// The rows must hold tuples of the relation the filter was compiled for, valid for
    /// the call.
    pub unsafe fn accepts(&mut self, old: Option<&RowValues>, new: Option<&RowValues>) -> bool {
        // SAFETY: the slots and the expression context are the filter's own, made by
        // `compile` for rows of this width (the caller's obligation); the evaluation runs in
        // the per-row memory, reset right after; an ERROR the filter raises (a division by
        // zero, say) becomes a Rust panic at the guarded boundary and fails the write, as a
        // trigger's WHEN that raises does.
        unsafe {
            load(self.old_row, old);
            load(self.new_row, new);
            (*self.context).ecxt_innertuple = self.old_row;
            (*self.context).ecxt_outertuple = self.new_row;
            let state = self.state;
            let context = self.context;
            let accepted = pg_sys::ffi::pg_guard_ffi_boundary(|| {
                let previous = pg_sys::MemoryContextSwitchTo((*context).ecxt_per_tuple_memory);
                let evaluate = (*state)
                    .evalfunc
                    .expect("a compiled expression has a function");
                let mut is_null = false;
                let result = evaluate(state, context, &mut is_null);
                pg_sys::MemoryContextSwitchTo(previous);
                !is_null && result.value() != 0
            });
            pg_sys::MemoryContextReset((*context).ecxt_per_tuple_memory);
            accepted
        }
    }

    /// Gives back what needs more than freeing its memory (the expression context's
    /// shutdown callbacks).
    ///
    /// # Safety
    /// Must be called once, before the memory context given to `compile` is deleted.
    pub unsafe fn release(self) {
        // SAFETY: made by `compile`, released only here.
        unsafe {
            pg_sys::ExecDropSingleTupleTableSlot(self.old_row);
            pg_sys::ExecDropSingleTupleTableSlot(self.new_row);
            pg_sys::FreeExprContext(self.context, true);
        }
    }
}

/// Loads a row's values into a slot, or NULL in every field for a missing image.
///
/// # Safety
/// `slot` must be a virtual slot of the row's width.
unsafe fn load(slot: *mut pg_sys::TupleTableSlot, row: Option<&RowValues>) {
    // SAFETY: the caller's obligation; storing an all-NULL tuple empties the slot and marks
    // every field valid, after which the values are overwritten in place.
    unsafe {
        pg_sys::ExecStoreAllNullTuple(slot);
        if let Some(row) = row {
            row.copy_into_slot(slot);
        }
    }
}

// The Var numbers of the inner and outer rows of an evaluation: unsigned in 14's headers,
// signed from 15 on.
#[allow(clippy::unnecessary_cast)]
const INNER_VAR: i32 = pg_sys::INNER_VAR as i32;
#[allow(clippy::unnecessary_cast)]
const OUTER_VAR: i32 = pg_sys::OUTER_VAR as i32;

unsafe extern "C-unwind" {
    /// rewriteManip.c's renumbering of the Vars of one range table entry (not in pgrx's
    /// bindings); the same signature in every supported major.
    fn ChangeVarNodes(node: *mut pg_sys::Node, rt_index: i32, new_index: i32, sublevels_up: i32);
}
