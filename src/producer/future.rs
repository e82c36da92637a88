//! The result of one batch, shared by the futures of its records.
//!
//! A batch has one [`Completion`]; every [`SendFuture`] of a record in it holds an `Arc` of it
//! and its own index in the batch, so sending a record costs a reference count, not an
//! allocation. Invariant: a completion is set exactly once per use (the first `set` wins),
//! and every batch sets it, on success, on failure, or from `Drop` (see
//! `accumulator::ProducerBatch`).
//!
//! A completion no future holds any more is used again by a later batch, possibly of another
//! partition: where it belongs (topic, partition) therefore sits with its outcome under its
//! lock, and `reuse` clears the outcome. The producer reuses only completions no future held
//! when their batch completed (only its own references made ahead did), so no future of an
//! earlier use can see a later one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::config::Acks;
use crate::error::{Error, Result};
use crate::producer::record::RecordMetadata;

/// Where a batch landed: enough to compute every record's metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BatchOutcome {
    pub base_offset: i64,
    /// Set when the topic stamps `LogAppendTime`.
    pub log_append_time: Option<i64>,
}

/// The result of one batch, set once per use.
#[derive(Debug)]
pub(crate) struct Completion {
    acks: Acks,
    state: Mutex<State>,
    done: Condvar,
}

/// A completion's batch and, once set, its outcome.
#[derive(Debug)]
struct State {
    /// Interned (see `topic_names`): copied into every record's metadata.
    topic: &'static str,
    partition: i32,
    outcome: Option<Result<BatchOutcome>>,
    /// Wakers of the batch's pending async futures, by the record's index in the batch (a
    /// record has one future, so the index is a key). `set` takes and wakes them all, so none
    /// is left for a later use of the completion.
    wakers: Vec<(i32, Waker)>,
}

/// The topic and partition of a batch, for its records' metadata.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Place {
    pub topic: &'static str,
    pub partition: i32,
    pub acks: Acks,
}

impl Place {
    /// The metadata of the record at `index` in the batch, given the batch's outcome.
    pub(crate) fn metadata(
        &self,
        outcome: &Result<BatchOutcome>,
        index: i32,
        timestamp: i64,
    ) -> Result<RecordMetadata> {
        match outcome {
            Ok(o) => Ok(RecordMetadata {
                topic: self.topic,
                partition: self.partition,
                // acks=0 reports no offset, as Kafka's producer does.
                offset: if self.acks == Acks::None {
                    -1
                } else {
                    o.base_offset + i64::from(index)
                },
                timestamp: o.log_append_time.unwrap_or(timestamp),
            }),
            Err(e) => Err(e.clone()),
        }
    }
}

impl Completion {
    pub(crate) fn new(topic: &'static str, partition: i32, acks: Acks) -> Self {
        Completion {
            acks,
            state: Mutex::new(State {
                topic,
                partition,
                outcome: None,
                wakers: Vec::new(),
            }),
            done: Condvar::new(),
        }
    }

    /// Makes the completion, whose earlier use is over, that of a new batch of `topic` and
    /// `partition`.
    pub(crate) fn reuse(&self, topic: &'static str, partition: i32) {
        let mut state = self.state.lock();
        state.topic = topic;
        state.partition = partition;
        state.outcome = None;
    }

    /// The batch's topic and partition.
    pub(crate) fn place(&self) -> Place {
        let state = self.state.lock();
        Place {
            topic: state.topic,
            partition: state.partition,
            acks: self.acks,
        }
    }

    /// Sets the result unless one is set already, and wakes the waiters.
    pub(crate) fn set(&self, result: Result<BatchOutcome>) {
        let mut state = self.state.lock();
        if state.outcome.is_none() {
            state.outcome = Some(result);
            self.done.notify_all();
            let wakers = std::mem::take(&mut state.wakers);
            // Woken outside the lock: an executor may poll the future inline.
            drop(state);
            for (_, w) in wakers {
                w.wake();
            }
        }
    }

    pub(crate) fn is_set(&self) -> bool {
        self.state.lock().outcome.is_some()
    }
}

impl State {
    fn place(&self, acks: Acks) -> Place {
        Place {
            topic: self.topic,
            partition: self.partition,
            acks,
        }
    }
}

/// The pending result of [`Producer::send`](crate::Producer::send): wait on it for the
/// record's [`RecordMetadata`] once the record is stored under the producer's `acks`, or drop
/// it (the record is sent all the same). Kafka's `Future<RecordMetadata>`.
///
/// `SendFuture` is also a [`Future`]: `.await` it on any executor (tokio, async-std,
/// `futures::executor`, ...) instead of calling [`SendFuture::wait`]. The batch's completion
/// wakes the task through its [`Waker`]: no thread or timer per future. Dropping a pending
/// future removes its waker.
///
/// Under `acks=0` the future is complete at once, with offset -1.
///
/// ```
/// # use embroker::{Broker, ProducerConfig, ProducerRecord, TopicConfig};
/// let broker = Broker::temporary()?;
/// broker.create_topic("events", TopicConfig::default())?;
/// let producer = broker.producer(ProducerConfig::default())?;
/// let metadata = futures::executor::block_on(async {
///     producer.send(ProducerRecord::new("events", "hello"))?.await
/// })?;
/// assert_eq!(metadata.offset, 0);
/// # Ok::<(), embroker::Error>(())
/// ```
#[derive(Debug)]
#[must_use = "the record is sent whether or not the future is waited on; drop it explicitly if no result is wanted"]
pub struct SendFuture {
    completion: Arc<Completion>,
    index: i32,
    /// Also in the completion; here so that [`SendFuture::partition`] takes no lock.
    partition: i32,
    timestamp: i64,
    /// True once `poll` left a waker in the completion (so `Drop` looks for it; a future that
    /// was never polled, the blocking path's, takes no lock when dropped).
    registered: bool,
}

impl SendFuture {
    pub(crate) fn new(
        completion: Arc<Completion>,
        index: i32,
        partition: i32,
        timestamp: i64,
    ) -> Self {
        SendFuture {
            completion,
            index,
            partition,
            timestamp,
            registered: false,
        }
    }

    /// The partition the record was assigned to (known as soon as `send` returns).
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// True when [`SendFuture::wait`] would return without blocking.
    pub fn is_done(&self) -> bool {
        self.completion.acks == Acks::None || self.completion.is_set()
    }

    /// Blocks until the record is stored under the producer's `acks` (or failed), and returns
    /// where it was stored.
    pub fn wait(self) -> Result<RecordMetadata> {
        if let Some(immediate) = self.immediate() {
            return immediate;
        }
        let mut state = self.completion.state.lock();
        loop {
            if let Some(outcome) = state.outcome.as_ref() {
                return state.place(self.completion.acks).metadata(
                    outcome,
                    self.index,
                    self.timestamp,
                );
            }
            self.completion.done.wait(&mut state);
        }
    }

    /// Like [`SendFuture::wait`], but gives up after `timeout` with [`Error::Timeout`]; the
    /// record is still on its way and the future can be waited on again.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<RecordMetadata> {
        if let Some(immediate) = self.immediate() {
            return immediate;
        }
        let deadline = Instant::now().checked_add(timeout);
        let mut state = self.completion.state.lock();
        loop {
            if let Some(outcome) = state.outcome.as_ref() {
                return state.place(self.completion.acks).metadata(
                    outcome,
                    self.index,
                    self.timestamp,
                );
            }
            let timed_out = match deadline {
                Some(d) => self.completion.done.wait_until(&mut state, d).timed_out(),
                None => {
                    self.completion.done.wait(&mut state);
                    false
                }
            };
            if timed_out && state.outcome.is_none() {
                return Err(Error::Timeout {
                    operation: format!(
                        "waiting for a record sent to {}-{}",
                        state.topic, state.partition
                    ),
                    timeout,
                });
            }
        }
    }

    /// Under `acks=0`, the answer without waiting: nothing is awaited, the offset is -1.
    fn immediate(&self) -> Option<Result<RecordMetadata>> {
        (self.completion.acks == Acks::None).then(|| {
            Ok(RecordMetadata {
                topic: self.completion.place().topic,
                partition: self.partition,
                offset: -1,
                timestamp: self.timestamp,
            })
        })
    }
}

impl Future for SendFuture {
    type Output = Result<RecordMetadata>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(immediate) = this.immediate() {
            return Poll::Ready(immediate);
        }
        let mut state = this.completion.state.lock();
        if let Some(outcome) = state.outcome.as_ref() {
            this.registered = false;
            return Poll::Ready(state.place(this.completion.acks).metadata(
                outcome,
                this.index,
                this.timestamp,
            ));
        }
        let index = this.index;
        match state.wakers.iter_mut().find(|(i, _)| *i == index) {
            Some((_, w)) => w.clone_from(cx.waker()),
            None => state.wakers.push((index, cx.waker().clone())),
        }
        this.registered = true;
        Poll::Pending
    }
}

impl Drop for SendFuture {
    fn drop(&mut self) {
        if self.registered {
            let index = self.index;
            self.completion
                .state
                .lock()
                .wakers
                .retain(|(i, _)| *i != index);
        }
    }
}
