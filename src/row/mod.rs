//! A row's way to a payload: the trigger's plan (built once, kept for the session) and a
//! call's scratch, the row's values, change detection and the payload's rendering.

pub mod change_detection;
pub mod filter;
pub mod payload;
pub mod plan;
pub mod plan_cache;
pub mod row_values;
pub mod scratch;
pub mod transition_rows;
