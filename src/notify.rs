//! Wake-ups for threads waiting for data: long polls wait here instead of sleeping in a loop.
//!
//! A [`Notifier`] counts events. A waiter reads the count, checks its condition, and waits until
//! the count moves or its deadline passes; `notify` bumps the count and wakes waiters only when
//! there are any, so an append with nobody waiting costs one atomic add and one load.
//!
//! A waiting thread registers its [`Thread`] handle and parks; `notify` takes every registered
//! thread out of the list and unparks each one directly (one futex wake), so the woken thread
//! takes no lock on its way back: it sees that a `notify` emptied the list since it registered
//! (`drains` moved) and returns. Only a thread that stops waiting on its own (deadline) takes
//! the lock again, to remove itself.
//!
//! Async waiters (futures) register a [`Waker`] instead of blocking: [`Notifier::register`]
//! stores it under a key, `notify` takes every registered waker and wakes it, and a future that
//! is dropped before its wake-up removes its key ([`Notifier::deregister`]). A pending future
//! therefore costs one map entry: no thread, no timer. Wakers are one-shot: a woken future that
//! still has nothing to return registers again when it is polled.
//!
//! Invariant: a waiter (thread or waker) is in the list, and counted in `waiting`, from its
//! registration until a `notify` takes it or it removes itself; registration stores the count
//! (SeqCst) before it loads the event count (SeqCst), and `notify` bumps the event count
//! (SeqCst) before it loads `waiting`: either the waiter sees the event or `notify` sees the
//! waiter, so no wake-up is lost.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::Waker;
use std::thread::{self, Thread};
use std::time::Instant;

use parking_lot::Mutex;

/// An event counter that threads can wait on and futures can register wakers with.
#[derive(Debug, Default)]
pub(crate) struct Notifier {
    events: AtomicU64,
    /// How many threads and wakers `list` holds; read by `notify` without the lock.
    waiting: AtomicUsize,
    /// How many times `notify` emptied the list (bumped under its lock): a thread that sees it
    /// moved since its registration was taken out, and need not lock to remove itself.
    drains: AtomicU64,
    list: Mutex<Waiters>,
}

/// The waiting threads, and the wakers of pending futures by key.
#[derive(Debug, Default)]
struct Waiters {
    threads: Vec<Thread>,
    next_key: u64,
    by_key: HashMap<u64, Waker>,
}

impl Waiters {
    fn len(&self) -> usize {
        self.threads.len() + self.by_key.len()
    }
}

impl Notifier {
    /// The current event count; pass it to [`Notifier::wait_past`].
    pub(crate) fn events(&self) -> u64 {
        self.events.load(Ordering::Acquire)
    }

    /// Records an event and wakes every waiter.
    pub(crate) fn notify(&self) {
        // SeqCst, paired with the registrations: either this load sees a waiter or the waiter's
        // load of `events` sees this event.
        self.events.fetch_add(1, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) == 0 {
            return;
        }
        let (threads, wakers) = {
            let mut list = self.list.lock();
            self.waiting.store(0, Ordering::SeqCst);
            self.drains.fetch_add(1, Ordering::Release);
            let wakers: Vec<Waker> = if list.by_key.is_empty() {
                Vec::new()
            } else {
                list.by_key.drain().map(|(_, w)| w).collect()
            };
            (std::mem::take(&mut list.threads), wakers)
        };
        // Outside the lock: a woken thread never finds it taken, and a waker may poll its
        // future inline, which registers again.
        for t in threads {
            t.unpark();
        }
        for w in wakers {
            w.wake();
        }
    }

    /// Registers `waker` to be woken by the next event after `seen`, under `key` (a key from an
    /// earlier call, whose waker it replaces, or `None` for a new one). Returns the key, or
    /// `None` when an event already happened since `seen` (nothing is registered then: the
    /// caller looks again at once).
    pub(crate) fn register(&self, key: Option<u64>, waker: &Waker, seen: u64) -> Option<u64> {
        let mut list = self.list.lock();
        let key = match key {
            Some(k) => k,
            None => {
                list.next_key = list.next_key.wrapping_add(1);
                list.next_key
            }
        };
        match list.by_key.get_mut(&key) {
            Some(w) if w.will_wake(waker) => {}
            Some(w) => w.clone_from(waker),
            None => {
                list.by_key.insert(key, waker.clone());
            }
        }
        self.waiting.store(list.len(), Ordering::SeqCst);
        if self.events.load(Ordering::SeqCst) != seen {
            list.by_key.remove(&key);
            self.waiting.store(list.len(), Ordering::SeqCst);
            return None;
        }
        Some(key)
    }

    /// Removes the waker registered under `key`, if `notify` has not taken it yet.
    pub(crate) fn deregister(&self, key: u64) {
        let mut list = self.list.lock();
        if list.by_key.remove(&key).is_some() {
            self.waiting.store(list.len(), Ordering::SeqCst);
        }
    }

    /// How many wakers are registered (tests: a dropped future leaves none behind).
    #[cfg(test)]
    pub(crate) fn registered(&self) -> usize {
        self.list.lock().by_key.len()
    }

    /// How many threads are waiting (tests: a thread that stops waiting leaves no entry).
    #[cfg(test)]
    fn threads_waiting(&self) -> usize {
        self.list.lock().threads.len()
    }

    /// Waits until the count differs from `seen` or `deadline` passes (`None`: no deadline, for
    /// a timeout too long to add to an `Instant`). Returns true when an event happened.
    pub(crate) fn wait_past(&self, seen: u64, deadline: Option<Instant>) -> bool {
        if self.events.load(Ordering::Acquire) != seen {
            return true;
        }
        let me = thread::current();
        let id = me.id();
        let drained = {
            let mut list = self.list.lock();
            list.threads.push(me);
            self.waiting.store(list.len(), Ordering::SeqCst);
            self.drains.load(Ordering::Relaxed)
        };
        let happened = loop {
            if self.events.load(Ordering::SeqCst) != seen {
                break true;
            }
            match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break false;
                    }
                    thread::park_timeout(d - now);
                }
                None => thread::park(),
            }
        };
        // Taken out by a `notify` since registering (the usual way back): nothing to remove.
        if self.drains.load(Ordering::Acquire) == drained {
            let mut list = self.list.lock();
            if let Some(i) = list.threads.iter().position(|t| t.id() == id) {
                list.threads.swap_remove(i);
                self.waiting.store(list.len(), Ordering::SeqCst);
            }
        }
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

    #[test]
    fn notify_wakes_every_waiting_thread_and_a_timed_out_one_leaves_no_entry() {
        let n = Arc::new(Notifier::default());
        let seen = n.events();
        // Timed out: removed itself.
        assert!(!n.wait_past(seen, Some(Instant::now() + Duration::from_millis(5))));
        assert_eq!(n.threads_waiting(), 0);
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let n = n.clone();
                std::thread::spawn(move || n.wait_past(seen, None))
            })
            .collect();
        // Each thread registers before it parks; wait until all three are in the list.
        let start = Instant::now();
        while n.threads_waiting() < 3 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "waiters never registered"
            );
            std::thread::yield_now();
        }
        n.notify();
        for w in waiters {
            assert!(w.join().unwrap());
        }
        // `notify` took them all: none is left behind.
        assert_eq!(n.threads_waiting(), 0);
        // An event already past `seen`: returns at once, registering nothing.
        assert!(n.wait_past(seen, None));
        assert_eq!(n.threads_waiting(), 0);
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
