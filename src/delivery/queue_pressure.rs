//! NOTIFY's queue is shared by the cluster and cleaned only as far as the slowest listening
//! session has read; one listener stuck inside a transaction lets it fill, and then every
//! transaction that notifies fails at commit. So before a notification is queued, the
//! transaction's share of the queue is estimated (the queue's fill, read once per statement,
//! plus what this transaction has queued, in the queue's own pages), and above
//! `pg_column_notify.max_queue_usage` the notification is held back instead (but for a few
//! pages a transaction, which let PostgreSQL clean the queue once its readers catch up;
//! see `TAIL_ADVANCE_PAGES`): the write goes
//! on, durable events are still logged (only their wake-up waits), a WARNING at commit says
//! how many were held back and why, and the next notification sent on the channel carries
//! `"skipped": N` so a consumer knows what it missed.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{CStr, CString};

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

/// `pg_column_notify.max_queue_usage`: the share of the NOTIFY queue above which watches
/// hold their notifications back.
static MAX_QUEUE_USAGE: GucSetting<f64> = GucSetting::<f64>::new(0.5);

/// A queue entry's fixed part (`AsyncQueueEntry` up to its data: length, database, xid,
/// sender's pid), as `commands/async.c` lays it.
const ENTRY_HEADER_BYTES: usize = 16;
/// The queue's pages are `BLCKSZ` bytes; an entry never spans two.
const QUEUE_PAGE_BYTES: usize = pg_sys::BLCKSZ as usize;
/// PostgreSQL advances the queue's tail (what `pg_notification_queue_usage()` counts from)
/// only when a transaction's notifications cross a boundary of 4 pages
/// (`QUEUE_CLEANUP_DELAY`). So that the queue is seen to empty once a stuck listener is
/// gone, a transaction may queue this many pages even above the limit, as long as the
/// queue stays below twice the limit and below [`CEILING`].
const TAIL_ADVANCE_PAGES: u64 = 5;
/// The share of the queue no transaction's notifications may take it past.
const CEILING: f64 = 0.9;
/// The queue's size in pages before PostgreSQL 17 made it settable
/// (`max_notify_queue_pages`): half of `QUEUE_MAX_PAGE`, 8 GB.
const FIXED_QUEUE_PAGES: f64 = 1_048_575.0;

/// Registers the setting; called when the library is loaded.
pub fn init() {
    GucRegistry::define_float_guc(
        c"pg_column_notify.max_queue_usage",
        c"Share of the NOTIFY queue above which watches hold their notifications back.",
        c"Above it (the queue's fill plus this transaction's notifications), a watch's notifications are held back for the rest of the transaction instead of risking a commit that fails because the queue is full; durable watches still log their events.",
        &MAX_QUEUE_USAGE,
        0.0,
        1.0,
        GucContext::Userset,
        GucFlags::default(),
    );
}

/// What to do with a notification.
pub enum Admission {
    /// Send it; `skipped` notifications of its channel were held back before.
    Send {
        skipped: u64,
    },
    HoldBack,
}

#[derive(Default)]
struct Pressure {
    /// The transaction the figures below are of (its start time; one backend runs one
    /// transaction at a time).
    transaction: Option<pg_sys::TimestampTz>,
    /// The statement the fill was read in.
    statement: Option<pg_sys::TimestampTz>,
    /// The queue's fill as `pg_notification_queue_usage()` reports it.
    fill: f64,
    /// The queue's size in pages.
    queue_pages: f64,
    /// This transaction's notifications in the queue's layout: full pages and the bytes used
    /// on the last one.
    pages: u64,
    page_bytes: usize,
    /// Notifications held back in this transaction, per channel.
    held_back: HashMap<CString, u64>,
    /// Counts of earlier transactions that this one reported with `skipped`, given back if
    /// it aborts.
    reported: HashMap<CString, u64>,
    /// Notifications held back by committed transactions and not yet reported, per channel.
    pending: HashMap<CString, u64>,
}

thread_local! {
    static PRESSURE: RefCell<Pressure> = RefCell::new(Pressure::default());
}

/// Decides whether a notification of `payload_bytes` on `channel` may be queued, and
/// counts it in this transaction's share of the queue if so.
pub fn admit(channel: &CStr, payload_bytes: usize) -> Admission {
    PRESSURE.with(|pressure| {
        let mut pressure = pressure.borrow_mut();
        pressure.follow_statement();
        let entry = entry_bytes(channel.to_bytes().len(), payload_bytes);
        let (pages, page_bytes) = pressure.with_entry(entry);
        let share = pressure.fill + pages as f64 / pressure.queue_pages;
        let limit = MAX_QUEUE_USAGE.get();
        let within_limit = share <= limit;
        let moves_the_tail = pages <= TAIL_ADVANCE_PAGES && share <= (2.0 * limit).min(CEILING);
        if !(within_limit || moves_the_tail) {
            *pressure.held_back.entry(channel.to_owned()).or_default() += 1;
            return Admission::HoldBack;
        }
        pressure.pages = pages;
        pressure.page_bytes = page_bytes;
        let skipped = match pressure.pending.is_empty() {
            true => 0,
            false => pressure.pending.get(channel).copied().unwrap_or(0),
        };
        Admission::Send { skipped }
    })
}

/// The notification on `channel` that was admitted carries its skipped count.
pub fn skipped_reported(channel: &CStr) {
    PRESSURE.with(|pressure| {
        let mut pressure = pressure.borrow_mut();
        if let Some(count) = pressure.pending.remove(channel) {
            *pressure.reported.entry(channel.to_owned()).or_default() += count;
        }
    });
}

/// The size of a queue entry: header, channel and payload with their NULs, aligned to 4.
fn entry_bytes(channel_bytes: usize, payload_bytes: usize) -> usize {
    (ENTRY_HEADER_BYTES + channel_bytes + 1 + payload_bytes + 1).next_multiple_of(4)
}

impl Pressure {
    /// Starts anew in a new transaction, and reads the queue's fill again in a new statement.
    fn follow_statement(&mut self) {
        // SAFETY: reads the start times of the current transaction and statement.
        let (transaction, statement) = unsafe {
            (
                pg_sys::GetCurrentTransactionStartTimestamp(),
                pg_sys::GetCurrentStatementStartTimestamp(),
            )
        };
        if self.transaction != Some(transaction) {
            self.transaction = Some(transaction);
            self.pages = 0;
            self.page_bytes = 0;
            self.held_back.clear();
            self.reported.clear();
        }
        if self.statement != Some(statement) {
            self.statement = Some(statement);
            self.fill = queue_fill();
            self.queue_pages = queue_pages();
        }
    }

    /// This transaction's pages and bytes on its last page once `entry` is added, laid out
    /// as the queue lays entries: one that does not fit on a page starts the next.
    fn with_entry(&self, entry: usize) -> (u64, usize) {
        match self.page_bytes + entry {
            _ if self.page_bytes == 0 => (self.pages + 1, entry),
            used if used <= QUEUE_PAGE_BYTES => (self.pages, used),
            _ => (self.pages + 1, entry),
        }
    }
}

/// `pg_notification_queue_usage()`.
fn queue_fill() -> f64 {
    // SAFETY: a built-in function of no arguments that returns a float8.
    unsafe { pgrx::direct_function_call::<f64>(pg_sys::pg_notification_queue_usage, &[]) }
        .unwrap_or(0.0)
}

/// The queue's size in pages: `max_notify_queue_pages` where it exists (17 on).
fn queue_pages() -> f64 {
    // SAFETY: looks up a setting by a NUL-terminated name; missing is allowed.
    let setting =
        unsafe { pg_sys::GetConfigOption(c"max_notify_queue_pages".as_ptr(), true, false) };
    if setting.is_null() {
        return FIXED_QUEUE_PAGES;
    }
    // SAFETY: a setting's value is a NUL-terminated string.
    unsafe { CStr::from_ptr(setting) }
        .to_str()
        .ok()
        .and_then(|pages| pages.parse::<f64>().ok())
        .filter(|pages| *pages > 0.0)
        .unwrap_or(FIXED_QUEUE_PAGES)
}

/// At commit, says what was held back and keeps the counts for the next notifications; at
/// abort, gives back the counts this transaction reported (its notifications are gone).
pub fn at_transaction_end(event: pg_sys::XactEvent::Type) {
    match event {
        pg_sys::XactEvent::XACT_EVENT_PRE_COMMIT => warn_if_held_back(),
        pg_sys::XactEvent::XACT_EVENT_COMMIT => PRESSURE.with(|pressure| {
            let mut pressure = pressure.borrow_mut();
            let held_back = std::mem::take(&mut pressure.held_back);
            for (channel, count) in held_back {
                *pressure.pending.entry(channel).or_default() += count;
            }
            pressure.reported.clear();
            pressure.transaction = None;
        }),
        pg_sys::XactEvent::XACT_EVENT_ABORT => PRESSURE.with(|pressure| {
            let mut pressure = pressure.borrow_mut();
            pressure.held_back.clear();
            let reported = std::mem::take(&mut pressure.reported);
            for (channel, count) in reported {
                *pressure.pending.entry(channel).or_default() += count;
            }
            pressure.transaction = None;
        }),
        _ => {}
    }
}

fn warn_if_held_back() {
    let (count, channels, fill) = PRESSURE.with(|pressure| {
        let pressure = pressure.borrow();
        let count: u64 = pressure.held_back.values().sum();
        (count, pressure.held_back.len(), pressure.fill)
    });
    if count == 0 {
        return;
    }
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
        format!(
            "pg_column_notify held back {count} notification(s) on {channels} channel(s): with them the NOTIFY queue would pass pg_column_notify.max_queue_usage ({}; the queue was {:.1}% full)",
            MAX_QUEUE_USAGE.get(),
            fill * 100.0
        ),
        "pg_column_notify",
    )
    .set_detail(
        "A commit whose notifications do not fit the queue fails; the writes went through instead, durable watches logged their events, and the next notification on each channel carries \"skipped\".",
    )
    .set_hint(
        "A session that ran LISTEN and stays inside a transaction keeps the queue from being cleaned: look for sessions idle in transaction in pg_stat_activity.",
    )
    .report(PgLogLevel::WARNING);
}
