//! `notify_column_changed()`: the generic trigger. Arguments: the channel, then the watched
//! columns. It notifies when a watched column IS DISTINCT FROM its old value (every INSERT
//! and DELETE, when fired for those), with no SQL and no plpgsql per row.
//!
//! Fired FOR EACH ROW (as `watch_column` installs every watch) it handles the row at hand.
//! Fired FOR EACH STATEMENT with transition tables (by hand, or as batched watches were
//! installed by earlier releases) it walks the statement's old and new rows together. Either way a
//! change is sent in a notification of its own or, batched, into the transaction's batch.

use pgrx::{pg_guard, pg_sys};

use crate::delivery::{self, event_log::EventLog};
use crate::errors::TriggerProtocolError;
use crate::pg::v1_call::call_context;
use crate::row::change_detection::changes_of_row;
use crate::row::payload::{self, Operation};
use crate::row::plan::TriggerPlan;
use crate::row::plan_cache::{self, PreparedTrigger};
use crate::row::scratch::CallScratch;
use crate::row::transition_rows::TransitionRows;

crate::pg::v1_call::v1_function_info!(pg_finfo_notify_column_changed);

/// The trigger function. Declared in SQL by `sql/bootstrap.sql`.
///
/// # Safety
/// Called by PostgreSQL's function manager only.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn notify_column_changed(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: the function manager passes a valid call; its context is checked there.
    let trigger_data = unsafe { trigger_data(fcinfo) };
    let event = trigger_data.tg_event;
    let operation = operation(event);
    // SAFETY: the trigger manager passes the fired trigger and its open relation.
    let mut prepared =
        unsafe { plan_cache::take(&*trigger_data.tg_trigger, trigger_data.tg_relation) };
    let PreparedTrigger { plan, scratch } = &mut *prepared;
    if event & pg_sys::TRIGGER_EVENT_ROW != 0 {
        // SAFETY: fired for a row, so the trigger data holds that row's tuples.
        unsafe { notify_for_row(plan, scratch, trigger_data, operation) }
    } else {
        // SAFETY: fired for a statement; the transition tables are checked there.
        unsafe { notify_for_statement(plan, scratch, trigger_data, operation) };
        pg_sys::Datum::from(0)
    }
}

/// # Safety
/// `trigger_data` must be that of a row trigger call on the plan's table.
unsafe fn notify_for_row(
    plan: &mut TriggerPlan,
    scratch: &mut CallScratch,
    trigger_data: &pg_sys::TriggerData,
    operation: Operation,
) -> pg_sys::Datum {
    // SAFETY: the trigger's relation is open for the whole call.
    let descriptor = unsafe { (*trigger_data.tg_relation).rd_att };
    let returned_tuple = match operation {
        Operation::Update => trigger_data.tg_newtuple,
        Operation::Insert | Operation::Delete => trigger_data.tg_trigtuple,
    };
    let (has_old, has_new) = operation.images();
    // SAFETY: for an UPDATE or DELETE the trigger tuple is the old row, for an UPDATE the
    // new tuple the new one, for an INSERT the trigger tuple the new one: all tuples of
    // `descriptor`, valid for the call, which is the width the scratch was made for.
    unsafe {
        if has_old {
            scratch.old.load(trigger_data.tg_trigtuple, descriptor);
        }
        if has_new {
            scratch.new.load(returned_tuple, descriptor);
        }
        notify_change(plan, scratch, operation);
    }
    pg_sys::Datum::from(returned_tuple)
}

/// # Safety
/// `trigger_data` must be that of a statement trigger call on the plan's table.
unsafe fn notify_for_statement(
    plan: &mut TriggerPlan,
    scratch: &mut CallScratch,
    trigger_data: &pg_sys::TriggerData,
    operation: Operation,
) {
    let (has_old, has_new) = operation.images();
    let old_rows = if has_old {
        trigger_data.tg_oldtable
    } else {
        std::ptr::null_mut()
    };
    let new_rows = if has_new {
        trigger_data.tg_newtable
    } else {
        std::ptr::null_mut()
    };
    if (has_old && old_rows.is_null()) || (has_new && new_rows.is_null()) {
        TriggerProtocolError::MissingTransitionTables.report()
    }
    // SAFETY: the relation is open for the call, and the transition tables it names are
    // those of this statement, whose rows have the relation's descriptor.
    unsafe {
        let descriptor = (*trigger_data.tg_relation).rd_att;
        let mut rows = TransitionRows::open(old_rows, new_rows, descriptor);
        while rows.next(&mut scratch.old, &mut scratch.new) {
            rows.in_row_context(|| notify_change(plan, scratch, operation));
        }
    }
}

/// Compares, renders and queues the notification for the row loaded into the scratch.
///
/// # Safety
/// The scratch's `old`/`new` rows must hold the tuples of this trigger call.
unsafe fn notify_change(plan: &mut TriggerPlan, scratch: &mut CallScratch, operation: Operation) {
    // SAFETY: the caller's obligation.
    let Some(change) = (unsafe { changes_of_row(plan, scratch, operation) }) else {
        return;
    };
    if let Some(filter) = plan.filter.as_mut() {
        let old = change.has_old.then_some(&scratch.old);
        let new = change.has_new.then_some(&scratch.new);
        // SAFETY: the rows hold this call's tuples (the caller's obligation).
        if !unsafe { filter.accepts(old, new) } {
            return;
        }
    }
    let event_id = plan.event_log.as_mut().map(EventLog::next_event_id);
    // SAFETY: the caller's obligation.
    unsafe { payload::render(plan, scratch, &change, event_id) };
    if let (Some(log), Some(event_id)) = (plan.event_log.as_mut(), event_id) {
        log.append(&plan.channel, event_id, &scratch.payload);
    }
    delivery::deliver(
        &plan.sink,
        &mut scratch.payload,
        scratch.cut_points,
        plan.batched,
    );
}

/// # Safety
/// `fcinfo` must be a call from the function manager.
unsafe fn trigger_data<'a>(fcinfo: pg_sys::FunctionCallInfo) -> &'a pg_sys::TriggerData {
    // SAFETY: the caller's obligation; the node's tag is checked before the cast.
    unsafe { call_context(fcinfo, pg_sys::NodeTag::T_TriggerData) }
        .unwrap_or_else(|| TriggerProtocolError::NotATrigger.report())
}

fn operation(event: pg_sys::TriggerEvent) -> Operation {
    match event & pg_sys::TRIGGER_EVENT_OPMASK {
        pg_sys::TRIGGER_EVENT_INSERT => Operation::Insert,
        pg_sys::TRIGGER_EVENT_UPDATE => Operation::Update,
        pg_sys::TRIGGER_EVENT_DELETE => Operation::Delete,
        _ => TriggerProtocolError::WrongEvent.report(),
    }
}
