//! The result of one batch, shared by the futures of its records.
//!
//! A batch has one [`Completion`]; every [`SendFuture`] of a record in it holds an `Arc` of it
//! and its own index in the batch, so sending a record costs a reference count, not an
//! allocation. Invariant: a completion is set exactly once (the first `set` wins), and every
//! batch sets it, on success, on failure, or from `Drop` (see `accumulator::ProducerBatch`).

use std::sync::Arc;
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

/// The once-set result of one batch.
#[derive(Debug)]
pub(crate) struct Completion {
    /// Interned (see `topic_names`): copied into every record's metadata.
    topic: &'static str,
    partition: i32,
    acks: Acks,
    result: Mutex<Option<Result<BatchOutcome>>>,
    done: Condvar,
}

impl Completion {
    pub(crate) fn new(topic: &'static str, partition: i32, acks: Acks) -> Self {
        Completion {
            topic,
            partition,
            acks,
            result: Mutex::new(None),
            done: Condvar::new(),
        }
    }

    /// Sets the result unless one is set already, and wakes the waiters.
    pub(crate) fn set(&self, result: Result<BatchOutcome>) {
        let mut slot = self.result.lock();
        if slot.is_none() {
            *slot = Some(result);
            self.done.notify_all();
        }
    }

    pub(crate) fn is_set(&self) -> bool {
        self.result.lock().is_some()
    }

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

/// The pending result of [`Producer::send`](crate::Producer::send): wait on it for the
/// record's [`RecordMetadata`] once the record is stored under the producer's `acks`, or drop
/// it (the record is sent all the same). Kafka's `Future<RecordMetadata>`.
///
/// Under `acks=0` the future is complete at once, with offset -1.
#[derive(Debug)]
#[must_use = "the record is sent whether or not the future is waited on; drop it explicitly if no result is wanted"]
pub struct SendFuture {
    completion: Arc<Completion>,
    index: i32,
    timestamp: i64,
}

impl SendFuture {
    pub(crate) fn new(completion: Arc<Completion>, index: i32, timestamp: i64) -> Self {
        SendFuture {
            completion,
            index,
            timestamp,
        }
    }

    /// The partition the record was assigned to (known as soon as `send` returns).
    pub fn partition(&self) -> i32 {
        self.completion.partition
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
        let mut slot = self.completion.result.lock();
        loop {
            if let Some(outcome) = slot.as_ref() {
                return self
                    .completion
                    .metadata(outcome, self.index, self.timestamp);
            }
            self.completion.done.wait(&mut slot);
        }
    }

    /// Like [`SendFuture::wait`], but gives up after `timeout` with [`Error::Timeout`]; the
    /// record is still on its way and the future can be waited on again.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<RecordMetadata> {
        if let Some(immediate) = self.immediate() {
            return immediate;
        }
        let deadline = Instant::now().checked_add(timeout);
        let mut slot = self.completion.result.lock();
        loop {
            if let Some(outcome) = slot.as_ref() {
                return self
                    .completion
                    .metadata(outcome, self.index, self.timestamp);
            }
            let timed_out = match deadline {
                Some(d) => self.completion.done.wait_until(&mut slot, d).timed_out(),
                None => {
                    self.completion.done.wait(&mut slot);
                    false
                }
            };
            if timed_out && slot.is_none() {
                return Err(Error::Timeout {
                    operation: format!(
                        "waiting for a record sent to {}-{}",
                        self.completion.topic, self.completion.partition
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
                topic: self.completion.topic,
                partition: self.completion.partition,
                offset: -1,
                timestamp: self.timestamp,
            })
        })
    }
}
