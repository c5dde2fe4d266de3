//! A row's way to a notification: the trigger's plan (kept for the session), the row's
//! values, change detection and the payload.

pub mod change_detection;
pub mod payload;
pub mod plan_cache;
pub mod row_values;
pub mod transition_rows;
pub mod trigger_plan;
