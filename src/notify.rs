//! Wake-ups for threads waiting for data: long polls wait here instead of sleeping in a loop.
//!
//! A [`Notifier`] counts events. A waiter reads the count, checks its condition, and waits until
//! the count moves or its deadline passes; `notify` bumps the count and wakes waiters only when
//! there are any, so an append with nobody waiting costs one atomic add and two loads.
//!
//! Async waiters (futures) register a [`Waker`] instead of blocking: [`Notifier::register`]
//! stores it under a key, `notify` takes every registered waker and wakes it, and a future that
//! is dropped before its wake-up removes its key ([`Notifier::deregister`]). A pending future
//! therefore costs one map entry: no thread, no timer. Wakers are one-shot: a woken future that
//! still has nothing to return registers again when it is polled.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::Waker;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

/// An event counter that threads can wait on and futures can register wakers with.
#[derive(Debug, Default)]
pub(crate) struct Notifier {
    events: AtomicU64,
    waiters: AtomicUsize,
    lock: Mutex<()>,
    cv: Condvar,
    /// How many wakers `wakers` holds; read by `notify` without the lock.
    registered: AtomicUsize,
    wakers: Mutex<Wakers>,
}

/// The wakers of pending futures, by key.
#[derive(Debug, Default)]
struct Wakers {
    next_key: u64,
    by_key: HashMap<u64, Waker>,
}

impl Notifier {
    /// The current event count; pass it to [`Notifier::wait_past`].
    pub(crate) fn events(&self) -> u64 {
        self.events.load(Ordering::Acquire)
    }

    /// Records an event and wakes every waiter.
    pub(crate) fn notify(&self) {
        // SeqCst, paired with `register`: either this load sees the waker's registration or
        // `register`'s load of `events` sees this event.
        self.events.fetch_add(1, Ordering::SeqCst);
        if self.waiters.load(Ordering::Acquire) > 0 {
            let _guard = self.lock.lock();
            self.cv.notify_all();
        }
        if self.registered.load(Ordering::SeqCst) > 0 {
            let woken: Vec<Waker> = {
                let mut wakers = self.wakers.lock();
                self.registered.store(0, Ordering::SeqCst);
                wakers.by_key.drain().map(|(_, w)| w).collect()
            };
            // Woken outside the lock: a waker may poll its future inline, which registers again.
            for w in woken {
                w.wake();
            }
        }
    }

    /// Registers `waker` to be woken by the next event after `seen`, under `key` (a key from an
    /// earlier call, whose waker it replaces, or `None` for a new one). Returns the key, or
    /// `None` when an event already happened since `seen` (nothing is registered then: the
    /// caller looks again at once).
    pub(crate) fn register(&self, key: Option<u64>, waker: &Waker, seen: u64) -> Option<u64> {
        let mut wakers = self.wakers.lock();
        let key = match key {
            Some(k) => k,
            None => {
                wakers.next_key = wakers.next_key.wrapping_add(1);
                wakers.next_key
            }
        };
        match wakers.by_key.get_mut(&key) {
            Some(w) if w.will_wake(waker) => {}
            Some(w) => w.clone_from(waker),
            None => {
                wakers.by_key.insert(key, waker.clone());
            }
        }
        self.registered.store(wakers.by_key.len(), Ordering::SeqCst);
        if self.events.load(Ordering::SeqCst) != seen {
            wakers.by_key.remove(&key);
            self.registered.store(wakers.by_key.len(), Ordering::SeqCst);
            return None;
        }
        Some(key)
    }

    /// Removes the waker registered under `key`, if `notify` has not taken it yet.
    pub(crate) fn deregister(&self, key: u64) {
        let mut wakers = self.wakers.lock();
        if wakers.by_key.remove(&key).is_some() {
            self.registered.store(wakers.by_key.len(), Ordering::SeqCst);
        }
    }

    /// How many wakers are registered (tests: a dropped future leaves none behind).
    #[cfg(test)]
    pub(crate) fn registered(&self) -> usize {
        self.wakers.lock().by_key.len()
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

    #[derive(Default)]
    struct Counter(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn registered_wakers_are_woken_once_and_deregistered() {
        let n = Notifier::default();
        let counter = Arc::new(Counter::default());
        let waker = Waker::from(counter.clone());
        let seen = n.events();
        let a = n.register(None, &waker, seen);
        let b = n.register(None, &waker, seen);
        assert!(a.is_some() && b.is_some() && a != b);
        // Registering again under a key replaces, not adds.
        assert_eq!(n.register(a, &waker, seen), a);
        assert_eq!(n.registered(), 2);
        if let Some(b) = b {
            n.deregister(b);
        }
        assert_eq!(n.registered(), 1);
        n.notify();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert_eq!(n.registered(), 0);
        // An event since `seen`: nothing is registered, the caller looks again.
        assert_eq!(n.register(None, &waker, seen), None);
        assert_eq!(n.registered(), 0);
    }
}
