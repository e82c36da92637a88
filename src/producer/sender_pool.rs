//! The threads producers' sender loops run on: a process-wide pool, so that a producer's
//! creation and close do not spawn and join a thread each.
//!
//! Owns: the idle pool threads and the hand-over of a loop to one of them. A producer gives
//! its sender loop to [`run`], which wakes an idle pool thread or, when none is idle, spawns
//! one; the [`Finished`] it gets back is what its close waits on instead of a join. When the
//! loop returns (the producer is closed and has nothing left in flight), the thread signals
//! the `Finished` and parks for the next loop; a thread left idle for [`IDLE_LIFETIME`] exits,
//! so a burst of producers does not keep its threads for the process's life.
//!
//! Invariants:
//! - A loop handed over runs exactly once, on one thread, to its end; its `Finished` is
//!   signalled after it returned (or panicked), never before.
//! - `idle` counts the threads waiting for a loop minus the loops queued for them: a loop is
//!   queued only when a waiting thread was counted for it, so it never waits for a spawn.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

/// How long a pool thread waits for a next loop before it exits: long enough that a test
/// suite's successive producers reuse it, short enough that a burst's threads go soon after.
const IDLE_LIFETIME: Duration = Duration::from_secs(10);

/// The name of the pool's threads (a producer's loop runs on whichever is idle, so the name
/// cannot carry its `client.id`).
const THREAD_NAME: &str = "embroker-producer-sender";

/// A loop handed over, and the end its producer waits on.
struct Job {
    body: Box<dyn FnOnce() + Send + 'static>,
    finished: Arc<Finished>,
}

/// Loops waiting for an idle thread, and how many idle threads are not yet claimed.
#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    idle: usize,
}

#[derive(Default)]
struct Pool {
    queue: Mutex<Queue>,
    ready: Condvar,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(Pool::default)
}

/// The end of one loop handed to [`run`]: set once when the loop has returned.
#[derive(Default)]
pub(super) struct Finished {
    /// `None` while running; then whether the loop panicked.
    outcome: Mutex<Option<bool>>,
    ended: Condvar,
}

impl Finished {
    /// Waits until the loop has returned; true when it returned normally, false when it
    /// panicked (as `JoinHandle::join` tells).
    pub(super) fn wait(&self) -> bool {
        let mut outcome = self.outcome.lock();
        loop {
            if let Some(panicked) = *outcome {
                return !panicked;
            }
            self.ended.wait(&mut outcome);
        }
    }

    fn set(&self, panicked: bool) {
        *self.outcome.lock() = Some(panicked);
        self.ended.notify_all();
    }
}

/// Runs `body` on a pool thread: an idle one if any, else a new one. Errors: the system
/// refused a new thread (the loop was not run).
pub(super) fn run(body: impl FnOnce() + Send + 'static) -> std::io::Result<Arc<Finished>> {
    let finished = Arc::new(Finished::default());
    let job = Job {
        body: Box::new(body),
        finished: Arc::clone(&finished),
    };
    let pool = pool();
    {
        let mut queue = pool.queue.lock();
        if queue.idle > 0 {
            queue.idle -= 1;
            queue.jobs.push_back(job);
            drop(queue);
            pool.ready.notify_one();
            return Ok(finished);
        }
    }
    std::thread::Builder::new()
        .name(THREAD_NAME.to_string())
        .spawn(move || worker(job))?;
    Ok(finished)
}

/// A pool thread: runs `first`, then each loop queued for it, until it has waited
/// [`IDLE_LIFETIME`] for one in vain.
fn worker(first: Job) {
    let pool = pool();
    let mut job = first;
    loop {
        let panicked = catch_unwind(AssertUnwindSafe(job.body)).is_err();
        // Counted idle before the end is signalled: a producer made right after a close
        // finds this thread instead of spawning one.
        pool.queue.lock().idle += 1;
        job.finished.set(panicked);
        let mut queue = pool.queue.lock();
        loop {
            if let Some(next) = queue.jobs.pop_front() {
                // `run` took this thread's count off `idle` when it queued the loop.
                job = next;
                break;
            }
            if pool.ready.wait_for(&mut queue, IDLE_LIFETIME).timed_out() && queue.jobs.is_empty() {
                // Unclaimed (no loop queued for it): leave, taking its count with it.
                queue.idle = queue.idle.saturating_sub(1);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_loop_runs_once_and_its_end_is_seen() {
        let count = Arc::new(AtomicUsize::new(0));
        let mut ends = Vec::new();
        for _ in 0..64 {
            let count = Arc::clone(&count);
            ends.push(
                run(move || {
                    count.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap(),
            );
        }
        for end in &ends {
            assert!(end.wait());
        }
        assert_eq!(count.load(Ordering::SeqCst), 64);
    }

    #[test]
    fn a_panicking_loop_is_reported_and_the_thread_serves_again() {
        let end = run(|| panic!("loop panicked on purpose")).unwrap();
        assert!(!end.wait());
        let (tx, rx) = std::sync::mpsc::channel();
        let end = run(move || tx.send(7).unwrap()).unwrap();
        assert!(end.wait());
        assert_eq!(rx.recv().unwrap(), 7);
    }

    #[test]
    fn a_finished_loop_thread_is_reused() {
        let first = run(|| {}).unwrap();
        assert!(first.wait());
        // The thread counts itself idle after signalling; give it the moment it needs.
        let mut reused = false;
        for _ in 0..1000 {
            let (tx, rx) = std::sync::mpsc::channel();
            run(move || tx.send(std::thread::current().id()).unwrap())
                .unwrap()
                .wait();
            let id = rx.recv().unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            run(move || tx.send(std::thread::current().id()).unwrap())
                .unwrap()
                .wait();
            if rx.recv().unwrap() == id {
                reused = true;
                break;
            }
        }
        assert!(
            reused,
            "no loop ran on a thread a previous loop had finished on"
        );
    }
}
