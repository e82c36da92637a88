//! Seams for crash tests: code to run the moment a transaction's commit or abort decision is
//! durable and before any of its markers is written (the window the coordinator's recovery
//! closes), and the moment a commit decision written with its data still in flight is durable,
//! before the coordinator waits for that data's fsync. Crash tests install a hook that kills
//! the process there.
//!
//! Invariant: with no hook installed, the coordinator pays one atomic load per seam passed.

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

/// What runs at a durable decision.
type Hook = Box<dyn Fn() + Send + Sync>;

static INSTALLED: AtomicBool = AtomicBool::new(false);
static HOOK: Mutex<Option<Hook>> = Mutex::new(None);
static BEFORE_DATA_INSTALLED: AtomicBool = AtomicBool::new(false);
static BEFORE_DATA_HOOK: Mutex<Option<Hook>> = Mutex::new(None);

/// Runs `hook` (for the rest of the process) each time a transaction's `PrepareCommit` or
/// `PrepareAbort` record is durable, before its markers are written.
///
/// For crash tests only (`tests/exactly_once_crash.rs` aborts the process there); not part of
/// the stable API.
pub fn on_commit_decision(hook: Box<dyn Fn() + Send + Sync>) {
    *HOOK.lock() = Some(hook);
    INSTALLED.store(true, Ordering::Release);
}

/// Called by the coordinator once a decision is durable.
pub(crate) fn decision_durable() {
    if INSTALLED.load(Ordering::Acquire) {
        if let Some(hook) = HOOK.lock().as_ref() {
            hook();
        }
    }
}

/// Runs `hook` (for the rest of the process) each time a commit decision written while its
/// data was still being made durable (it records the data's end offsets) is durable, before
/// the coordinator waits for that data's fsync.
///
/// For crash tests only (`tests/exactly_once_crash.rs` aborts the process there); not part of
/// the stable API.
pub fn on_commit_decision_before_data(hook: Box<dyn Fn() + Send + Sync>) {
    *BEFORE_DATA_HOOK.lock() = Some(hook);
    BEFORE_DATA_INSTALLED.store(true, Ordering::Release);
}

/// Called by the coordinator once a decision with data in flight is durable.
pub(crate) fn decision_durable_before_data() {
    if BEFORE_DATA_INSTALLED.load(Ordering::Acquire) {
        if let Some(hook) = BEFORE_DATA_HOOK.lock().as_ref() {
            hook();
        }
    }
}
