//! The session keeps trigger plans from statement to statement. Building a plan (catalog
//! lookups for the key, every column's type and the trigger's arguments) costs more than
//! sending a notification, and most statements change one row.
//!
//! Any catalog change that could alter a plan (of a relation, type, function, cast, operator
//! or schema) makes every kept plan stale, and the next call builds its plan again. A call
//! takes its plan out of the cache and puts it back when it returns, so a nested call of
//! the same trigger builds a plan of its own, and a call that fails drops its plan with its
//! scratch.

use std::cell::{Cell, RefCell};
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};

use pgrx::pg_sys;

use crate::row::plan::TriggerPlan;
use crate::row::scratch::CallScratch;

/// A trigger's plan with the scratch its calls write, kept together so that a call
/// allocates nothing.
pub struct PreparedTrigger {
    pub plan: TriggerPlan,
    pub scratch: CallScratch,
}

/// More plans than a session normally uses; past it, the least recently used is dropped.
const MAX_KEPT_PLANS: usize = 64;

/// A kept plan with the generation it was built in.
type KeptPlan = (u64, Box<PreparedTrigger>);

// Per-backend state: a backend runs on one thread, and the invalidation callbacks run on it.
thread_local! {
    /// Bumped by every catalog invalidation that could make a kept plan stale.
    static GENERATION: Cell<u64> = const { Cell::new(0) };
    static CALLBACKS_REGISTERED: Cell<bool> = const { Cell::new(false) };

    /// The kept plans, the most recently used last. Never dropped: at the backend's exit
    /// there is nothing to give back.
    static KEPT: RefCell<ManuallyDrop<Vec<KeptPlan>>> =
        const { RefCell::new(ManuallyDrop::new(Vec::new())) };
}

/// A plan taken for one trigger call; it goes back to the cache when dropped, unless the
/// call is failing: its scratch may then be half-written, and a function the plan calls may
/// have failed halfway through its own cache.
pub struct PlanInUse {
    generation: u64,
    plan: Option<Box<PreparedTrigger>>,
}

impl Deref for PlanInUse {
    type Target = PreparedTrigger;

    fn deref(&self) -> &PreparedTrigger {
        self.plan.as_ref().expect("the plan is there until drop")
    }
}

impl DerefMut for PlanInUse {
    fn deref_mut(&mut self) -> &mut PreparedTrigger {
        self.plan.as_mut().expect("the plan is there until drop")
    }
}

impl Drop for PlanInUse {
    fn drop(&mut self) {
        let Some(plan) = self.plan.take() else { return };
        if std::thread::panicking() {
            return;
        }
        KEPT.with(|kept| {
            let mut kept = kept.borrow_mut();
            // A nested call of the same trigger may have put its plan back meanwhile.
            kept.retain(|(_, other)| other.plan.key() != plan.plan.key());
            if kept.len() >= MAX_KEPT_PLANS {
                kept.remove(0);
            }
            kept.push((self.generation, plan));
        });
    }
}

/// The plan of `trigger` on `relation`: the kept one while the catalog has not changed,
/// else a new one.
///
/// # Safety
/// `trigger` must be a trigger of `relation`, which must be open.
pub unsafe fn take(trigger: &pg_sys::Trigger, relation: pg_sys::Relation) -> PlanInUse {
    register_callbacks();
    // SAFETY: the relation is open (the caller's obligation).
    let key = (trigger.tgoid, unsafe { (*relation).rd_id });
    let generation = GENERATION.get();
    let kept = KEPT.with(|kept| {
        let mut kept = kept.borrow_mut();
        let at = kept.iter().position(|(_, kept)| kept.plan.key() == key)?;
        Some(kept.remove(at))
    });
    let plan = match kept {
        Some((built_in, plan)) if built_in == generation => plan,
        _ => {
            // SAFETY: the caller's obligation, the same as `build`'s.
            let plan = unsafe { TriggerPlan::build(trigger, relation) };
            let scratch = CallScratch::for_plan(&plan);
            Box::new(PreparedTrigger { plan, scratch })
        }
    };
    PlanInUse {
        generation,
        plan: Some(plan),
    }
}

fn register_callbacks() {
    if CALLBACKS_REGISTERED.replace(true) {
        return;
    }
    use pg_sys::SysCacheIdentifier::*;
    // SAFETY: registers callbacks that live as long as the backend (the library is never
    // unloaded), once per backend.
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(Some(relation_changed), pg_sys::Datum::from(0));
        for cache in [TYPEOID, PROCOID, CASTSOURCETARGET, OPEROID, NAMESPACEOID] {
            pg_sys::CacheRegisterSyscacheCallback(
                cache as i32,
                Some(catalog_changed),
                pg_sys::Datum::from(0),
            );
        }
    }
}

unsafe extern "C-unwind" fn relation_changed(_argument: pg_sys::Datum, _relation: pg_sys::Oid) {
    GENERATION.set(GENERATION.get().wrapping_add(1));
}

unsafe extern "C-unwind" fn catalog_changed(
    _argument: pg_sys::Datum,
    _cache: std::ffi::c_int,
    _hash: u32,
) {
    GENERATION.set(GENERATION.get().wrapping_add(1));
}
