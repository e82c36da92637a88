//! The budget of open segment files: a broker keeps at most `max` segment files (and their
//! memory maps) open, whatever its partition and segment counts, opening a segment's file on
//! first use and closing the least recently used clean one when over budget (Kafka keeps every
//! segment of every partition open, which needs an `ulimit -n` in the hundreds of thousands).
//!
//! Invariants:
//! - A file holding writes not yet fsynced is never closed here: an fsync through a file
//!   descriptor opened after a failed writeback may not report the failure, so such a file
//!   stays open (pinned) until a sync covers its writes. The budget can therefore be
//!   exceeded by the segments written and not yet synced.
//! - `open` counts the files of live handles: incremented when a file is opened, decremented
//!   when one is closed here or its segment is dropped.
//! - Closing a file also drops the segment's map; a reader that holds the map or the file
//!   keeps it until done (both are reference counted).

use std::collections::VecDeque;
use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};

use crate::io::SegmentMap;

/// The default budget (Kafka has no such setting; see `BrokerBuilder::open_segment_files_max`).
pub(crate) const OPEN_FILES_DEFAULT: usize = 1000;

/// Open segment files of one broker, and the queue eviction walks (oldest opened first, with
/// a second chance for a file used since it was last looked at: the CLOCK algorithm).
#[derive(Debug)]
pub(crate) struct FileBudget {
    max: usize,
    open: AtomicUsize,
    queue: Mutex<VecDeque<Weak<Handles>>>,
}

/// A segment's open file and map, when it has them.
#[derive(Debug)]
pub(crate) struct Handles {
    pub(crate) file: RwLock<Option<Arc<File>>>,
    pub(crate) map: RwLock<Option<Arc<SegmentMap>>>,
    /// Bytes written through the file and bytes a sync covered: written > synced pins it.
    pub(crate) written: AtomicU64,
    pub(crate) synced: AtomicU64,
    /// Used since eviction last passed it.
    pub(crate) used: AtomicBool,
    budget: Arc<FileBudget>,
}

impl Handles {
    pub(crate) fn new(budget: Arc<FileBudget>) -> Arc<Handles> {
        Arc::new(Handles {
            file: RwLock::new(None),
            map: RwLock::new(None),
            written: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            used: AtomicBool::new(false),
            budget,
        })
    }

    fn dirty(&self) -> bool {
        self.written.load(Ordering::Acquire) > self.synced.load(Ordering::Acquire)
    }
}

impl Drop for Handles {
    fn drop(&mut self) {
        if self.file.get_mut().is_some() {
            self.budget.open.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl FileBudget {
    /// A budget of `max` open files (at least 1).
    pub(crate) fn new(max: usize) -> Arc<FileBudget> {
        Arc::new(FileBudget {
            max: max.max(1),
            open: AtomicUsize::new(0),
            queue: Mutex::new(VecDeque::new()),
        })
    }

    /// Segment files open now.
    #[cfg(test)]
    pub(crate) fn open_files(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Records that `handles` just got its file (the caller stored it), then closes the least
    /// recently used clean files while over budget.
    pub(crate) fn opened(&self, handles: &Arc<Handles>) {
        // About to be used: not the first to go.
        handles.used.store(true, Ordering::Release);
        self.open.fetch_add(1, Ordering::AcqRel);
        let mut queue = self.queue.lock();
        queue.push_back(Arc::downgrade(handles));
        // Each entry is looked at at most twice (once to clear its `used` bit): a queue of
        // pinned or busy files ends the walk over budget rather than spinning.
        let mut budget = queue.len().saturating_mul(2);
        while self.open.load(Ordering::Acquire) > self.max && budget > 0 {
            budget -= 1;
            let Some(weak) = queue.pop_front() else { break };
            let Some(h) = weak.upgrade() else { continue };
            if h.used.swap(false, Ordering::AcqRel) || h.dirty() {
                queue.push_back(weak);
                continue;
            }
            // Never blocks on a segment's locks while holding the queue: a thread making a
            // map holds that segment's map lock and then asks for the queue.
            let (Some(mut map), Some(mut file)) = (h.map.try_write(), h.file.try_write()) else {
                queue.push_back(weak);
                continue;
            };
            if file.take().is_some() {
                self.open.fetch_sub(1, Ordering::AcqRel);
                *map = None;
            }
            // Not queued again: the next open of this file queues it anew.
        }
        // Entries of dropped segments are pruned as the walk meets them; bound the rest.
        if queue.len() > self.max.saturating_mul(4) {
            queue.retain(|w| w.strong_count() > 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_one(
        budget: &Arc<FileBudget>,
        dir: &std::path::Path,
        i: usize,
        dirty: bool,
    ) -> Arc<Handles> {
        let h = Handles::new(budget.clone());
        h.written.store(u64::from(dirty), Ordering::Release);
        let f = File::create(dir.join(format!("{i}"))).unwrap();
        *h.file.write() = Some(Arc::new(f));
        budget.opened(&h);
        h
    }

    #[test]
    fn files_over_budget_are_closed_oldest_first_unless_dirty() {
        let dir = tempfile::tempdir().unwrap();
        let budget = FileBudget::new(3);
        let handles: Vec<_> = (0..3)
            .map(|i| open_one(&budget, dir.path(), i, i == 0))
            .collect();
        assert_eq!(budget.open_files(), 3);
        // The first is dirty: pinned. Opening a fourth closes the second.
        let fourth = open_one(&budget, dir.path(), 3, false);
        assert_eq!(budget.open_files(), 3);
        assert!(handles[0].file.read().is_some());
        assert!(handles[1].file.read().is_none());
        assert!(fourth.file.read().is_some());
        // Dropping a segment gives its file back to the budget.
        drop(fourth);
        assert_eq!(budget.open_files(), 2);
        // All pinned: the budget is exceeded rather than a dirty file closed.
        let pinned: Vec<_> = (4..8)
            .map(|i| open_one(&budget, dir.path(), i, true))
            .collect();
        assert!(pinned.iter().all(|h| h.file.read().is_some()));
        assert!(handles[0].file.read().is_some());
        assert!(budget.open_files() > 3);
        // Synced, they can go again: the next open brings the count back to the budget.
        for h in &pinned {
            h.synced.store(1, Ordering::Release);
        }
        let _last = open_one(&budget, dir.path(), 8, false);
        assert!(budget.open_files() <= 4, "{}", budget.open_files());
    }
}
