//! `notify_column_changed()`: the generic trigger. Arguments: the channel, then the watched
//! columns. It notifies when a watched column IS DISTINCT FROM its old value (every INSERT
//! and DELETE, when fired for those), with no SQL and no plpgsql per row.
//!
//! Fired FOR EACH ROW it handles the row at hand. Fired FOR EACH STATEMENT with transition
//! tables (as `watch_column` installs batched watches) it walks the statement's old and new
//! rows together: the same changes, without the per-row trigger queue and tuple re-fetch,
//! sent one notification each or, batched, packed into as few as fit.

use pgrx::{pg_guard, pg_sys};

use crate::delivery::{self, event_log::EventLog};
use crate::errors::TriggerProtocolError;
use crate::pg::function_info::call_context;
use crate::row::payload::{self, Change, Operation};
use crate::row::plan_cache;
use crate::row::transition_rows::TransitionRows;
use crate::row::trigger_plan::TriggerPlan;

crate::pg::function_info::v1_function_info!(pg_finfo_notify_column_changed);

/// The trigger function. Declared in SQL by `sql/bootstrap.sql`.
///
/// # Safety
/// Called by PostgreSQL's function manager only.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn notify_column_changed(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    unsafe {
        let trigger_data = trigger_data(fcinfo);
        let event = trigger_data.tg_event;
        let operation = operation(event);
        let mut plan = plan_cache::take(&*trigger_data.tg_trigger, trigger_data.tg_relation);
        let result = if event & pg_sys::TRIGGER_EVENT_ROW != 0 {
            notify_for_row(&mut plan, trigger_data, operation)
        } else {
            notify_for_statement(&mut plan, trigger_data, operation);
            pg_sys::Datum::from(0)
        };
        let TriggerPlan { batch, channel, .. } = &mut *plan;
        if let Some(batch) = batch {
            batch.send(channel);
        }
        result
    }
}

/// Which row images an operation has: (old, new).
fn images(operation: Operation) -> (bool, bool) {
    match operation {
        Operation::Update => (true, true),
        Operation::Insert => (false, true),
        Operation::Delete => (true, false),
    }
}

unsafe fn notify_for_row(
    plan: &mut TriggerPlan,
    trigger_data: &pg_sys::TriggerData,
    operation: Operation,
) -> pg_sys::Datum {
    let descriptor = unsafe { (*trigger_data.tg_relation).rd_att };
    let returned_tuple = match operation {
        Operation::Update => trigger_data.tg_newtuple,
        Operation::Insert | Operation::Delete => trigger_data.tg_trigtuple,
    };
    let (has_old, has_new) = images(operation);
    unsafe {
        if has_old {
            plan.old.load(trigger_data.tg_trigtuple, descriptor);
        }
        if has_new {
            plan.new.load(returned_tuple, descriptor);
        }
        notify_change(plan, operation);
    }
    pg_sys::Datum::from(returned_tuple)
}

unsafe fn notify_for_statement(
    plan: &mut TriggerPlan,
    trigger_data: &pg_sys::TriggerData,
    operation: Operation,
) {
    let (has_old, has_new) = images(operation);
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
    unsafe {
        let descriptor = (*trigger_data.tg_relation).rd_att;
        let mut rows = TransitionRows::open(old_rows, new_rows, descriptor);
        while rows.next(&mut plan.old, &mut plan.new) {
            rows.in_row_context(|| notify_change(plan, operation));
        }
    }
}

/// Compares, renders and queues the notification for the row loaded into the plan.
unsafe fn notify_change(plan: &mut TriggerPlan, operation: Operation) {
    let (has_old, has_new) = images(operation);
    plan.changed.clear();
    let mut key_changed = false;
    unsafe {
        if operation == Operation::Update {
            for (position, watched) in plan.watched.iter_mut().enumerate() {
                let index = plan.columns[watched.column].index;
                if watched
                    .equality
                    .distinct(plan.old.get(index), plan.new.get(index))
                {
                    plan.changed.push(position);
                }
            }
            if plan.changed.is_empty() {
                return;
            }
            for (&column, equality) in plan.key.iter().zip(plan.key_equality.iter_mut()) {
                let index = plan.columns[column].index;
                key_changed |= equality.distinct(plan.old.get(index), plan.new.get(index));
            }
        } else {
            plan.changed.extend(0..plan.watched.len());
        }
        let change = Change {
            operation,
            has_old,
            has_new,
            key_changed,
        };
        let event_id = plan.event_log.as_mut().map(EventLog::next_event_id);
        payload::render(plan, &change, event_id);
        if let (Some(log), Some(event_id)) = (plan.event_log.as_mut(), event_id) {
            log.append(&plan.channel, event_id, &plan.payload);
        }
    }
    delivery::deliver(
        &plan.channel,
        &mut plan.payload,
        plan.cut_points,
        plan.batch.as_mut(),
    );
}

unsafe fn trigger_data<'a>(fcinfo: pg_sys::FunctionCallInfo) -> &'a pg_sys::TriggerData {
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
