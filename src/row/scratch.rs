//! What one trigger call writes as it goes: the rows being compared, which watched columns
//! changed, and the payload being rendered (with where it may be cut). Reused from row to
//! row and call to call, so a row allocates nothing.

use std::ops::Range;

use crate::delivery::fit::CutPoints;
use crate::row::plan::TriggerPlan;
use crate::row::row_values::RowValues;

pub struct CallScratch {
    pub old: RowValues,
    pub new: RowValues,
    /// Positions in the plan's `watched` of the columns that changed in the current row.
    pub changed: Vec<usize>,
    /// The payload being written.
    pub payload: Vec<u8>,
    /// Where each column's value of the `old` image lies in `payload`, so the `new` image
    /// can copy the rendering of every value that did not change.
    pub old_spans: Vec<Range<usize>>,
    /// Where the payload being written may be cut to fit a notification.
    pub cut_points: CutPoints,
}

impl CallScratch {
    /// Buffers sized for the rows of `plan`'s table.
    pub fn for_plan(plan: &TriggerPlan) -> Self {
        Self {
            old: RowValues::with_width(plan.width),
            new: RowValues::with_width(plan.width),
            changed: Vec::with_capacity(plan.watched.len()),
            payload: Vec::with_capacity(1024),
            old_spans: Vec::with_capacity(plan.width),
            cut_points: CutPoints::default(),
        }
    }
}
