//! Wake-ups for threads waiting for data: long polls wait here instead of sleeping in a loop.
//!
//! A [`Notifier`] counts events. A waiter reads the count, checks its condition, and waits until
//! the count moves or its deadline passes; `notify` bumps the count and wakes waiters only when
//! there are any, so an append with nobody waiting costs one atomic add and one load.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

/// An event counter that threads can wait on.
#[derive(Debug, Default)]
pub(crate) struct Notifier {
    events: AtomicU64,
    waiters: AtomicUsize,
    lock: Mutex<()>,
    cv: Condvar,
}

impl Notifier {
    /// The current event count; pass it to [`Notifier::wait_past`].
    pub(crate) fn events(&self) -> u64 {
        self.events.load(Ordering::Acquire)
    }

    /// Records an event and wakes every waiter.
    pub(crate) fn notify(&self) {
        self.events.fetch_add(1, Ordering::AcqRel);
        if self.waiters.load(Ordering::Acquire) > 0 {
            let _guard = self.lock.lock();
            self.cv.notify_all();
        }
    }

    /// Waits until the count differs from `seen` or `deadline` passes (`None`: no deadline, for
    /// a timeout too long to add to an `Instant`). Returns true when an event happened.
    pub(crate) fn wait_past(&self, seen: u64, deadline: Option<Instant>) -> bool {
        let mut guard = self.lock.lock();
        self.waiters.fetch_add(1, Ordering::AcqRel);
        let happened = loop {
            if self.events.load(Ordering::Acquire) != seen {
                break true;
            }
            match deadline {
                Some(d) => {
                    if self.cv.wait_until(&mut guard, d).timed_out() {
                        break self.events.load(Ordering::Acquire) != seen;
                    }
                }
                None => self.cv.wait(&mut guard),
            }
        };
        self.waiters.fetch_sub(1, Ordering::AcqRel);
        happened
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn wakes_on_notify_and_times_out_without() {
        let n = Arc::new(Notifier::default());
        let seen = n.events();
        assert!(!n.wait_past(seen, Some(Instant::now() + Duration::from_millis(10))));
        let n2 = n.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            n2.notify();
        });
        let start = Instant::now();
        assert!(n.wait_past(seen, None));
        assert!(start.elapsed() < Duration::from_secs(5));
        t.join().unwrap();
    }
}
