//! The record accumulator: per partition, one open batch being filled, plus a queue of
//! closed batches waiting for the sender thread. Kafka's `RecordAccumulator`.
//!
//! Invariants (all under the producer's one accumulator mutex):
//! - A partition has at most one open batch; records are encoded into it in `send` order.
//! - A batch leaves the accumulator either closed (full: moved to `ready`) or drained by the
//!   sender; for one partition, closed batches are older than the open one, and the sender
//!   drains `ready` (FIFO) before open batches, so batches reach the log in `send` order.
//! - Every batch that holds records has a sequence number in `incomplete` and its bytes in
//!   `buffered_bytes` until the sender has completed it (futures set, callbacks run).
//! - A batch is never empty: it is created for the record that is pushed into it.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::codec::BatchBuilder;
use crate::error::{Error, Result};
use crate::log::{AppendInfo, PartitionLog};
use crate::producer::future::{BatchOutcome, Completion};
use crate::producer::record::RecordMetadata;

/// A user callback of `send_with_callback`.
pub(crate) type Callback = Box<dyn FnOnce(Result<RecordMetadata>) + Send + 'static>;

/// A batch of records for one partition, encoded as they arrive.
pub(crate) struct ProducerBatch {
    /// Creation order across all partitions (for `flush`).
    pub seq: u64,
    pub log: Arc<PartitionLog>,
    /// `None` once finished and handed to the log.
    builder: Option<BatchBuilder>,
    pub created: Instant,
    /// The largest this batch may grow: `max.request.size` and the topic's
    /// `max.message.bytes` at the time the batch was opened.
    pub limit_bytes: usize,
    /// Bytes counted against `buffer.memory` for this batch.
    pub buffered_bytes: u64,
    pub completion: Arc<Completion>,
    /// (index in the batch, record timestamp, callback), in push order.
    callbacks: Vec<(i32, i64, Callback)>,
}

impl ProducerBatch {
    pub(crate) fn new(
        seq: u64,
        log: Arc<PartitionLog>,
        capacity_bytes: usize,
        limit_bytes: usize,
        completion: Arc<Completion>,
    ) -> Self {
        ProducerBatch {
            seq,
            log,
            builder: Some(BatchBuilder::with_capacity(capacity_bytes)),
            created: Instant::now(),
            limit_bytes,
            buffered_bytes: 0,
            completion,
            callbacks: Vec::new(),
        }
    }

    /// Bytes the batch takes if finished now.
    pub(crate) fn size_bytes(&self) -> usize {
        self.builder.as_ref().map_or(0, BatchBuilder::size_bytes)
    }

    pub(crate) fn builder(&mut self) -> Option<&mut BatchBuilder> {
        self.builder.as_mut()
    }

    pub(crate) fn add_callback(&mut self, index: i32, timestamp: i64, callback: Callback) {
        self.callbacks.push((index, timestamp, callback));
    }

    /// Finishes the encoding and appends the batch to its log.
    pub(crate) fn append(&mut self) -> Result<AppendInfo> {
        match self.builder.take() {
            Some(builder) if !builder.is_empty() => self.log.append_batch(builder.finish()),
            _ => Err(Error::IllegalState {
                reason: "producer batch appended twice or empty".into(),
            }),
        }
    }

    /// Runs the callbacks, then sets the futures: Kafka's order, so that a caller whose
    /// `wait` returned knows the callbacks of that batch ran. A panicking callback is caught
    /// so that the sender thread, and every later record, survives it.
    pub(crate) fn complete(mut self, result: Result<AppendInfo>) {
        let outcome = result.map(|info| BatchOutcome {
            base_offset: info.base_offset,
            log_append_time: info.log_append_time,
        });
        for (index, timestamp, callback) in std::mem::take(&mut self.callbacks) {
            let metadata = self.completion.metadata(&outcome, index, timestamp);
            let _ = catch_unwind(AssertUnwindSafe(move || callback(metadata)));
        }
        self.completion.set(outcome);
    }
}

impl Drop for ProducerBatch {
    /// A batch dropped before completion (the sender thread unwinding, say) still answers
    /// every record: callbacks run exactly once and no future waits forever.
    fn drop(&mut self) {
        if self.callbacks.is_empty() && self.completion.is_set() {
            return;
        }
        let outcome = Err(Error::Closed { what: "producer" });
        for (index, timestamp, callback) in std::mem::take(&mut self.callbacks) {
            let metadata = self.completion.metadata(&outcome, index, timestamp);
            let _ = catch_unwind(AssertUnwindSafe(move || callback(metadata)));
        }
        self.completion.set(outcome);
    }
}

/// The open batches of one topic, by partition number.
pub(crate) struct TopicSlots {
    name: String,
    slots: Vec<Option<ProducerBatch>>,
}

/// The open batch of every partition a producer has sent to, and the closed ones.
#[derive(Default)]
pub(crate) struct Accumulator {
    /// Open batches per topic; `topic_index` finds a topic's position.
    open: Vec<TopicSlots>,
    topic_index: HashMap<String, usize>,
    /// The topic found last: producers mostly send to one topic at a time, and comparing one
    /// name is cheaper than hashing it.
    last_topic: usize,
    pub open_count: usize,
    /// Closed (full) batches in the order they were closed.
    pub ready: VecDeque<ProducerBatch>,
    pub next_seq: u64,
    /// Sequence numbers of batches not completed yet.
    pub incomplete: BTreeSet<u64>,
    /// Bytes of records held (counted against `buffer.memory`).
    pub buffered_bytes: u64,
    /// Open batches with a sequence number below this are sent without lingering (`flush`).
    pub flush_below: u64,
    /// Senders blocked on `buffer.memory`: while any waits, nothing lingers.
    pub space_waiters: usize,
    /// Set by `close`: no new records; everything pending is sent now.
    pub closed: bool,
}

impl Accumulator {
    /// The position of `topic` in the table (added if new), with room for `partition`.
    pub(crate) fn topic(&mut self, topic: &str, partition: usize) -> usize {
        let i = match self.open.get(self.last_topic) {
            Some(t) if t.name == topic => self.last_topic,
            _ => match self.topic_index.get(topic) {
                Some(&i) => i,
                None => {
                    self.open.push(TopicSlots {
                        name: topic.to_string(),
                        slots: Vec::new(),
                    });
                    self.topic_index
                        .insert(topic.to_string(), self.open.len() - 1);
                    self.open.len() - 1
                }
            },
        };
        self.last_topic = i;
        if let Some(t) = self.open.get_mut(i) {
            if t.slots.len() <= partition {
                t.slots.resize_with(partition + 1, || None);
            }
        }
        i
    }

    /// The open-batch slot of partition `partition` of the topic at `topic` (from
    /// [`Accumulator::topic`]). `None` only for positions `topic` did not hand out.
    pub(crate) fn slot(
        &mut self,
        topic: usize,
        partition: usize,
    ) -> Option<&mut Option<ProducerBatch>> {
        self.open.get_mut(topic)?.slots.get_mut(partition)
    }

    /// Moves a full batch to the ready queue.
    pub(crate) fn close_batch(&mut self, batch: ProducerBatch) {
        self.ready.push_back(batch);
    }

    /// True when nothing is buffered or in flight.
    pub(crate) fn is_idle(&self) -> bool {
        self.incomplete.is_empty()
    }

    /// Moves every batch the sender should write now into `out` (closed batches first, then
    /// open ones whose linger expired, or all of them when flushing, closing or short of
    /// buffer space). Returns when the next open batch will be due, if any lingers.
    pub(crate) fn drain(
        &mut self,
        now: Instant,
        linger: Option<Duration>,
        out: &mut Vec<ProducerBatch>,
    ) -> Option<Instant> {
        out.extend(self.ready.drain(..));
        if self.open_count == 0 {
            return None;
        }
        let everything = self.closed || self.space_waiters > 0 || linger == Some(Duration::ZERO);
        let mut next_due: Option<Instant> = None;
        for topic in &mut self.open {
            for slot in topic.slots.iter_mut() {
                let Some(batch) = slot.as_ref() else { continue };
                let due = linger.and_then(|l| batch.created.checked_add(l));
                let take =
                    everything || batch.seq < self.flush_below || due.is_some_and(|d| d <= now);
                if take {
                    if let Some(batch) = slot.take() {
                        self.open_count -= 1;
                        out.push(batch);
                    }
                } else if let Some(d) = due {
                    next_due = Some(next_due.map_or(d, |n| n.min(d)));
                }
            }
        }
        next_due
    }
}
