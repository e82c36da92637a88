//! The application's [`State`] (Kafka's `KafkaStreams.State`), its legal transitions, and the
//! listener told of each one.
//!
//! Owns: the current state, each stream thread's readiness, the state listener and the
//! condition variable that [`KafkaStreams::close`](super::KafkaStreams::close) and the tests
//! wait on.
//!
//! Invariants: a transition happens only along Kafka's edges (`CREATED -> REBALANCING ->
//! RUNNING <-> REBALANCING`, any running state `-> PENDING_SHUTDOWN -> NOT_RUNNING`, `->
//! PENDING_ERROR -> ERROR`); an illegal one is ignored, never panics; the listener runs after
//! the state changed, outside the lock, once per transition.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The state of a [`KafkaStreams`](super::KafkaStreams) instance (Kafka's
/// `KafkaStreams.State`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Made, not started.
    Created,
    /// Started; some thread is joining the group or restoring its tasks' state.
    Rebalancing,
    /// Every thread has its tasks and processes records.
    Running,
    /// `close` was called; threads are committing and stopping.
    PendingShutdown,
    /// Closed.
    NotRunning,
    /// A thread failed and the uncaught-error handler asked to shut the client down.
    PendingError,
    /// Stopped after an error.
    Error,
}

impl State {
    /// Whether threads may be processing (Kafka's `isRunningOrRebalancing`).
    pub fn is_running_or_rebalancing(self) -> bool {
        matches!(self, State::Running | State::Rebalancing)
    }

    fn may_become(self, next: State) -> bool {
        use State::*;
        matches!(
            (self, next),
            (Created, Rebalancing)
                | (Created, PendingShutdown)
                | (Rebalancing, Running)
                | (Running, Rebalancing)
                | (Rebalancing | Running, PendingShutdown)
                | (Rebalancing | Running, PendingError)
                | (PendingShutdown, NotRunning)
                | (PendingError, Error)
        )
    }
}

/// Called with `(new, old)` on every state change (Kafka's `StateListener.onChange`).
pub type StateListener = Box<dyn Fn(State, State) + Send + Sync>;

struct Inner {
    state: State,
    /// Per stream thread: has it its tasks (and their state restored)?
    threads_ready: Vec<bool>,
}

/// The shared state machine of one instance.
pub(crate) struct StateMachine {
    inner: Mutex<Inner>,
    changed: Condvar,
    listener: Mutex<Option<StateListener>>,
}

impl StateMachine {
    pub(crate) fn new() -> Self {
        StateMachine {
            inner: Mutex::new(Inner {
                state: State::Created,
                threads_ready: Vec::new(),
            }),
            changed: Condvar::new(),
            listener: Mutex::new(None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves a consistent state (one field set).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn state(&self) -> State {
        self.lock().state
    }

    pub(crate) fn set_listener(&self, listener: StateListener) {
        *self.listener.lock().unwrap_or_else(|e| e.into_inner()) = Some(listener);
    }

    /// Move to `next` if Kafka allows it; whether it moved.
    pub(crate) fn transition(&self, next: State) -> bool {
        let old = {
            let mut inner = self.lock();
            let old = inner.state;
            if !old.may_become(next) {
                return false;
            }
            inner.state = next;
            old
        };
        self.changed.notify_all();
        self.notify(next, old);
        true
    }

    fn notify(&self, new: State, old: State) {
        if let Some(listener) = &*self.listener.lock().unwrap_or_else(|e| e.into_inner()) {
            listener(new, old);
        }
    }

    /// Register `threads` threads, none ready.
    pub(crate) fn set_threads(&self, threads: usize) {
        self.lock().threads_ready = vec![false; threads];
    }

    /// Thread `index` has its tasks (`true`) or is in a rebalance (`false`); the instance is
    /// RUNNING exactly while every thread is ready.
    pub(crate) fn thread_ready(&self, index: usize, ready: bool) {
        let next = {
            let mut inner = self.lock();
            if let Some(slot) = inner.threads_ready.get_mut(index) {
                *slot = ready;
            }
            if !inner.state.is_running_or_rebalancing() {
                return;
            }
            if inner.threads_ready.iter().all(|r| *r) {
                State::Running
            } else {
                State::Rebalancing
            }
        };
        if self.state() != next {
            self.transition(next);
        }
    }

    /// Wait until the state satisfies `done` or `timeout` passes; the state then.
    pub(crate) fn wait_for(&self, timeout: Duration, done: impl Fn(State) -> bool) -> State {
        let deadline = Instant::now() + timeout;
        let mut inner = self.lock();
        while !done(inner.state) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            inner = match self.changed.wait_timeout(inner, deadline - now) {
                Ok((guard, _)) => guard,
                Err(e) => e.into_inner().0,
            };
        }
        inner.state
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn transitions_follow_kafkas_edges_and_reach_the_listener() {
        let sm = StateMachine::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        sm.set_listener(Box::new(move |new, old| s.lock().unwrap().push((old, new))));
        assert!(
            !sm.transition(State::Running),
            "CREATED cannot become RUNNING"
        );
        assert!(sm.transition(State::Rebalancing));
        sm.set_threads(2);
        sm.thread_ready(0, true);
        assert_eq!(sm.state(), State::Rebalancing);
        sm.thread_ready(1, true);
        assert_eq!(sm.state(), State::Running);
        sm.thread_ready(1, false);
        assert_eq!(sm.state(), State::Rebalancing);
        assert!(sm.transition(State::PendingShutdown));
        sm.thread_ready(1, true);
        assert_eq!(
            sm.state(),
            State::PendingShutdown,
            "no RUNNING while closing"
        );
        assert!(sm.transition(State::NotRunning));
        assert!(!sm.transition(State::Rebalancing));
        assert_eq!(
            sm.wait_for(Duration::from_millis(1), |s| s == State::NotRunning),
            State::NotRunning
        );
        use State::*;
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                (Created, Rebalancing),
                (Rebalancing, Running),
                (Running, Rebalancing),
                (Rebalancing, PendingShutdown),
                (PendingShutdown, NotRunning)
            ]
        );
    }
}
