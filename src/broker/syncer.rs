//! The broker's syncer: fsyncs for callers that wait as futures (`Consumer::commit`).
//!
//! Owns: one thread, started by the first request (most brokers never get one), that makes
//! partition logs durable through given end offsets and completes a [`Durable`] per request,
//! waking its task's [`Waker`]. A request is queued while a round runs; the next round takes
//! every queued request and fsyncs each log once, through the highest end offset asked of it
//! (group commit: one fsync covers every commit pending, and `PartitionLog::sync_to` shares
//! it with blocking `commit_sync` callers too).
//!
//! Invariants:
//! - Every request is completed exactly once: by the round that takes it, or at once with
//!   [`Error::Closed`] when it comes after `stop`. `stop` lets the thread finish what is
//!   queued before it exits, so no future waits forever on a closed broker.
//! - The thread holds no broker handle, only the logs of the requests it is working on.

use std::sync::Arc;
use std::task::{Poll, Waker};
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};
use crate::log::PartitionLog;

/// The outcome of one sync request, set once by the syncer, read by one future.
#[derive(Debug, Default)]
pub(crate) struct Durable {
    state: Mutex<DurableState>,
}

#[derive(Debug, Default)]
struct DurableState {
    result: Option<Result<()>>,
    waker: Option<Waker>,
}

impl Durable {
    fn set(&self, result: Result<()>) {
        let waker = {
            let mut s = self.state.lock();
            s.result = Some(result);
            s.waker.take()
        };
        // Woken outside the lock: a waker may poll the future inline.
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The outcome if it is set (taken: call once it is `Ready`); otherwise keeps `waker` to
    /// be woken when it is.
    pub(crate) fn poll(&self, waker: &Waker) -> Poll<Result<()>> {
        let mut s = self.state.lock();
        if let Some(result) = s.result.take() {
            return Poll::Ready(result);
        }
        match &mut s.waker {
            Some(w) if w.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
        Poll::Pending
    }

    /// Forgets the waker (the future waiting on it was dropped).
    pub(crate) fn forget_waker(&self) {
        let waker = self.state.lock().waker.take();
        drop(waker);
    }
}

/// A log to make durable through `end_offset`, for the future holding `done`.
struct Request {
    log: Arc<PartitionLog>,
    end_offset: i64,
    done: Arc<Durable>,
}

#[derive(Default)]
struct Queue {
    pending: Vec<Request>,
    started: bool,
    stopping: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

/// The syncer of one broker (see the module docs).
#[derive(Default)]
pub(crate) struct Syncer {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer").finish_non_exhaustive()
    }
}

impl Syncer {
    /// Queues a sync of `log` through `end_offset` (exclusive) and returns its outcome, set
    /// once the records before `end_offset` are durable (or the sync failed).
    pub(crate) fn submit(&self, log: Arc<PartitionLog>, end_offset: i64) -> Arc<Durable> {
        let done = Arc::new(Durable::default());
        let mut q = self.shared.queue.lock();
        if q.stopping {
            drop(q);
            done.set(Err(Error::Closed { what: "broker" }));
            return done;
        }
        if !q.started {
            let shared = Arc::clone(&self.shared);
            match std::thread::Builder::new()
                .name("embroker-syncer".into())
                .spawn(move || run(&shared))
            {
                Ok(handle) => {
                    q.started = true;
                    *self.thread.lock() = Some(handle);
                }
                Err(e) => {
                    // No thread (a process at its thread limit): sync here instead, late for
                    // an async caller but still correct.
                    drop(q);
                    log::warn!("could not start the syncer thread, syncing inline: {e}");
                    done.set(log.sync_to(end_offset));
                    return done;
                }
            }
        }
        q.pending.push(Request {
            log,
            end_offset,
            done: Arc::clone(&done),
        });
        drop(q);
        self.shared.wake.notify_one();
        done
    }

    /// Completes what is queued, stops the thread and refuses later requests.
    pub(crate) fn stop(&self) {
        self.shared.queue.lock().stopping = true;
        self.shared.wake.notify_one();
        if let Some(handle) = self.thread.lock().take() {
            if handle.join().is_err() {
                log::error!("the syncer thread panicked");
            }
        }
    }
}

/// The syncer thread: rounds until stopped with nothing queued.
fn run(shared: &Shared) {
    loop {
        let round = {
            let mut q = shared.queue.lock();
            while q.pending.is_empty() && !q.stopping {
                shared.wake.wait(&mut q);
            }
            if q.pending.is_empty() {
                return;
            }
            std::mem::take(&mut q.pending)
        };
        sync_round(round);
    }
}

/// One fsync per log, through the highest end offset asked of it; every request of that log
/// gets its outcome.
fn sync_round(mut round: Vec<Request>) {
    round.sort_by_key(|r| Arc::as_ptr(&r.log));
    let mut rest = round.as_slice();
    while let Some(first) = rest.first() {
        let same = rest
            .iter()
            .take_while(|r| Arc::ptr_eq(&r.log, &first.log))
            .count();
        let (group, tail) = rest.split_at(same);
        let end = group.iter().map(|r| r.end_offset).max().unwrap_or(0);
        let result = first.log.sync_to(end);
        for r in group {
            r.done.set(result.clone());
        }
        rest = tail;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn set_wakes_the_registered_waker_once_and_hands_over_the_result() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let done = Durable::default();
        assert!(done.poll(&waker).is_pending());
        assert!(done.poll(&waker).is_pending());
        done.set(Err(Error::Closed { what: "broker" }));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(matches!(
            done.poll(&waker),
            Poll::Ready(Err(Error::Closed { what: "broker" }))
        ));
    }

    #[test]
    fn a_forgotten_waker_is_not_woken() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let done = Durable::default();
        assert!(done.poll(&Waker::from(Arc::clone(&count))).is_pending());
        done.forget_waker();
        done.set(Ok(()));
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
    }
}
