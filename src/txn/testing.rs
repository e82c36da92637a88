//! A seam for crash tests: code to run the moment a transaction's commit or abort decision is
//! durable and before any of its markers is written (the window the coordinator's recovery
//! closes). Crash tests install a hook that kills the process there.
//!
//! Invariant: with no hook installed, the coordinator pays one relaxed atomic load per
//! decision.

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

/// What runs at a durable decision.
type Hook = Box<dyn Fn() + Send + Sync>;

static INSTALLED: AtomicBool = AtomicBool::new(false);
static HOOK: Mutex<Option<Hook>> = Mutex::new(None);

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
