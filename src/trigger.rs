//! `notify_column_changed()`: the generic row trigger. Arguments: the channel, then the
//! watched columns. It notifies when a watched column IS DISTINCT FROM its old value
//! (every INSERT and DELETE, when fired for those), with no SQL and no plpgsql per row.

use pgrx::{pg_guard, pg_sys};

use crate::errors::TriggerProtocolError;
use crate::notify;
use crate::payload::{self, Change, Operation};
use crate::trigger_plan::TriggerPlan;

#[unsafe(no_mangle)]
#[doc(hidden)]
pub extern "C" fn pg_finfo_notify_column_changed() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

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
        let operation = operation(trigger_data.tg_event);
        let plan = TriggerPlan::for_call(fcinfo, trigger_data);
        let descriptor = (*trigger_data.tg_relation).rd_att;
        let returned_tuple = match operation {
            Operation::Update => trigger_data.tg_newtuple,
            Operation::Insert | Operation::Delete => trigger_data.tg_trigtuple,
        };

        let (has_old, has_new) = match operation {
            Operation::Update => (true, true),
            Operation::Insert => (false, true),
            Operation::Delete => (true, false),
        };
        if has_old {
            plan.old.load(trigger_data.tg_trigtuple, descriptor);
        }
        if has_new {
            plan.new.load(returned_tuple, descriptor);
        }

        plan.changed.clear();
        let mut key_changed = false;
        if operation == Operation::Update {
            for (position, watched) in plan.watched.iter_mut().enumerate() {
                let index = plan.columns[watched.column].index;
                if watched.equality.distinct(plan.old.get(index), plan.new.get(index)) {
                    plan.changed.push(position);
                }
            }
            if plan.changed.is_empty() {
                return pg_sys::Datum::from(returned_tuple);
            }
            for (&column, equality) in plan.key.iter().zip(plan.key_equality.iter_mut()) {
                let index = plan.columns[column].index;
                key_changed |= equality.distinct(plan.old.get(index), plan.new.get(index));
            }
        } else {
            plan.changed.extend(0..plan.watched.len());
        }

        let change = Change { operation, has_old, has_new, key_changed };
        payload::render(plan, &change);
        notify::send(&plan.channel, plan.payload_text());
        pg_sys::Datum::from(returned_tuple)
    }
}

unsafe fn trigger_data<'a>(fcinfo: pg_sys::FunctionCallInfo) -> &'a pg_sys::TriggerData {
    unsafe {
        let context = (*fcinfo).context;
        if context.is_null() || (*context).type_ != pg_sys::NodeTag::T_TriggerData {
            TriggerProtocolError::NotATrigger.report()
        }
        &*(context as *const pg_sys::TriggerData)
    }
}

fn operation(event: pg_sys::TriggerEvent) -> Operation {
    if event & pg_sys::TRIGGER_EVENT_ROW == 0 {
        TriggerProtocolError::WrongEvent.report()
    }
    match event & pg_sys::TRIGGER_EVENT_OPMASK {
        pg_sys::TRIGGER_EVENT_INSERT => Operation::Insert,
        pg_sys::TRIGGER_EVENT_UPDATE => Operation::Update,
        pg_sys::TRIGGER_EVENT_DELETE => Operation::Delete,
        _ => TriggerProtocolError::WrongEvent.report(),
    }
}
