//! The record accumulator: per partition, one open batch being filled and the closed batches
//! waiting for the sender thread; per producer, the topics it has looked up and the accounting
//! the sender and `flush` share. Kafka's `RecordAccumulator`.
//!
//! Locks, and why there are several: a record takes only its partition's [`Lane`] lock (and
//! a read of the topic table), so threads sending to different partitions do not serialize,
//! and the sender taking one partition's batches does not stop sends to another. The
//! producer-wide [`Accumulator`] mutex is taken once per batch (to open, close or complete
//! one), never per record. Lock order: a lane, then the accumulator; the sender never holds
//! the accumulator while it locks a lane.
//!
//! Invariants:
//! - A partition has at most one open batch; records are encoded into it in `send` order.
//! - A lane's closed batches are older than its open one, and the sender takes a lane's closed
//!   batches (oldest first) before its open one under one hold of the lane lock, so batches
//!   reach the log in `send` order.
//! - Every batch that holds records has a sequence number in `incomplete` and its bytes counted
//!   in the producer's buffered bytes until the sender has completed it (futures set,
//!   callbacks run).
//! - A lane that holds a batch is `listed`: on the sender's list of lanes to visit, or in
//!   `new_lanes` on its way there; a lane is listed at most once.
//! - A batch is never empty: it is created for the record that is pushed into it.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use parking_lot::{Mutex, RwLock};

use crate::broker::{BrokerInner, PartitionSlot, TopicState};
use crate::codec::{self, BatchBuilder, Compression, CompressionCodec, ProducerFields};
use crate::error::{Error, Result};
use crate::log::{AppendInfo, PartitionLog};
use crate::producer::future::{BatchOutcome, Completion};
use crate::producer::record::RecordMetadata;
use crate::topic_names::intern_topic;

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
    /// Room this batch holds in `buffer.memory` (taken ahead of its records, see
    /// `Shared::push`); given back when the batch completes.
    pub reserved_bytes: u64,
    /// Bytes of records in the batch (its header aside).
    pub used_bytes: u64,
    pub completion: Arc<Completion>,
    /// References to `completion` made ahead by the sender thread, one for each record's
    /// future (see `producer::Spares::keep_completion`): the sending thread takes one instead
    /// of counting a new one, an atomic operation it no longer pays per record.
    refs: Vec<Arc<Completion>>,
    /// (index in the batch, record timestamp, callback), in push order.
    callbacks: Vec<(i32, i64, Callback)>,
    /// The producer's `compression.type` and level.
    compression: CompressionCodec,
}

impl ProducerBatch {
    pub(crate) fn new(
        seq: u64,
        log: Arc<PartitionLog>,
        buffer: Vec<u8>,
        capacity_bytes: usize,
        limit_bytes: usize,
        completion: Arc<Completion>,
        refs: Vec<Arc<Completion>>,
    ) -> Self {
        ProducerBatch {
            seq,
            log,
            builder: Some(BatchBuilder::with_buffer(emptied(buffer, capacity_bytes))),
            created: Instant::now(),
            limit_bytes,
            reserved_bytes: 0,
            used_bytes: 0,
            completion,
            refs,
            callbacks: Vec::new(),
            compression: CompressionCodec::NONE,
        }
    }

    /// Compresses the batch with `codec` when it is appended (the producer's
    /// `compression.type`).
    pub(crate) fn compressed_with(mut self, codec: CompressionCodec) -> Self {
        self.compression = codec;
        self
    }

    /// Room the batch lacks for `bytes` more of records.
    pub(crate) fn lacking_bytes(&self, bytes: u64) -> u64 {
        (self.used_bytes + bytes).saturating_sub(self.reserved_bytes)
    }

    /// About how many records like this batch's fill `batch_size` bytes: what the next batch
    /// of the lane likely holds, if records keep coming faster than the sender takes them.
    pub(crate) fn records_when_full(&self, batch_size: usize) -> usize {
        let records = usize::try_from(self.record_count()).unwrap_or(0);
        let used = usize::try_from(self.used_bytes)
            .unwrap_or(usize::MAX)
            .max(1);
        records.max(records.saturating_mul(batch_size) / used)
    }

    /// Records in the batch.
    pub(crate) fn record_count(&self) -> i32 {
        self.builder.as_ref().map_or(0, BatchBuilder::record_count)
    }

    /// Bytes the batch takes if finished now.
    pub(crate) fn size_bytes(&self) -> usize {
        self.builder.as_ref().map_or(0, BatchBuilder::size_bytes)
    }

    pub(crate) fn builder(&mut self) -> Option<&mut BatchBuilder> {
        self.builder.as_mut()
    }

    /// A reference to the batch's completion, for a record's future.
    pub(crate) fn completion_ref(&mut self) -> Arc<Completion> {
        self.refs
            .pop()
            .unwrap_or_else(|| Arc::clone(&self.completion))
    }

    pub(crate) fn add_callback(&mut self, index: i32, timestamp: i64, callback: Callback) {
        self.callbacks.push((index, timestamp, callback));
    }

    /// Finishes the encoding: the batch as it goes to the log (compressed, if it is) and its
    /// buffer, for a later batch to encode into. A batch that cannot be compressed yields its
    /// buffer and the error.
    ///
    /// `producer`: the idempotent producer's id, epoch and sequence to stamp, and whether the
    /// batch is transactional; set before the header (and its CRC) is written.
    pub(crate) fn finish(
        &mut self,
        producer: Option<(ProducerFields, bool)>,
    ) -> std::result::Result<Finished, (Error, Option<Vec<u8>>)> {
        match self.builder.take() {
            Some(mut builder) if !builder.is_empty() => {
                if let Some((fields, transactional)) = producer {
                    builder.set_producer(fields);
                    builder.set_transactional(transactional);
                }
                let plain = builder.finish();
                if self.compression.compression() == Compression::None {
                    return Ok(Finished {
                        plain,
                        compressed: None,
                    });
                }
                // Compressed into a batch of its own: the plain buffer goes back for reuse.
                match compress_own_batch(&plain, self.compression) {
                    Ok(compressed) => Ok(Finished {
                        plain,
                        compressed: Some(compressed),
                    }),
                    Err(e) => Err((e, Some(plain))),
                }
            }
            _ => Err((
                Error::IllegalState {
                    reason: "producer batch appended twice or empty".into(),
                },
                None,
            )),
        }
    }

    /// Runs the callbacks, then sets the futures: Kafka's order, so that a caller whose
    /// `wait` returned knows the callbacks of that batch ran. A panicking callback is caught
    /// so that the sender thread, and every later record, survives it.
    ///
    /// Returns the batch's completion, for the producer to reuse once no future holds it, and
    /// the references to it made ahead that no record used: they serve the next batch.
    pub(crate) fn complete(
        mut self,
        result: Result<AppendInfo>,
    ) -> (Arc<Completion>, Vec<Arc<Completion>>) {
        let outcome = result.map(|info| BatchOutcome {
            base_offset: info.base_offset,
            log_append_time: info.log_append_time,
        });
        let callbacks = std::mem::take(&mut self.callbacks);
        if !callbacks.is_empty() {
            let place = self.completion.place();
            for (index, timestamp, callback) in callbacks {
                let metadata = place.metadata(&outcome, index, timestamp);
                let _ = catch_unwind(AssertUnwindSafe(move || callback(metadata)));
            }
        }
        self.completion.set(outcome);
        (Arc::clone(&self.completion), std::mem::take(&mut self.refs))
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
        let place = self.completion.place();
        for (index, timestamp, callback) in std::mem::take(&mut self.callbacks) {
            let metadata = place.metadata(&outcome, index, timestamp);
            let _ = catch_unwind(AssertUnwindSafe(move || callback(metadata)));
        }
        self.completion.set(outcome);
    }
}

/// A finished batch (see [`ProducerBatch::finish`]).
pub(crate) struct Finished {
    /// The batch as encoded, in the buffer it was encoded into.
    pub plain: Vec<u8>,
    /// The batch compressed (the producer's `compression.type`), when it is.
    pub compressed: Option<Vec<u8>>,
}

impl Finished {
    /// The bytes that go to the log.
    pub(crate) fn written(&mut self) -> &mut [u8] {
        match &mut self.compressed {
            Some(c) => c,
            None => &mut self.plain,
        }
    }
}

/// `plain` (a batch `BatchBuilder` finished) with its records compressed by `codec`.
fn compress_own_batch(plain: &[u8], codec: CompressionCodec) -> Result<Vec<u8>> {
    let batch = codec::decode_batch_unchecked(plain).ok_or_else(|| Error::IllegalState {
        reason: "the producer's own batch does not decode".into(),
    })?;
    let mut out = Vec::with_capacity(plain.len() / 2 + codec::HEADER_BYTES);
    codec::compress_batch(&batch, codec, &mut out).map_err(|e| Error::IllegalState {
        reason: format!(
            "compressing a batch with {}: {e}",
            codec.compression().name()
        ),
    })?;
    Ok(out)
}

/// `buffer` (a written batch's, or a new one) emptied, with room for `capacity` bytes. It is
/// not zeroed: the batch builder pushes each record's bytes onto it.
fn emptied(mut buffer: Vec<u8>, capacity: usize) -> Vec<u8> {
    buffer.clear();
    buffer.reserve(capacity);
    buffer
}

/// The batches of one partition (under its lane's lock).
#[derive(Default)]
pub(crate) struct LaneBatches {
    /// The batch records are encoded into.
    pub open: Option<ProducerBatch>,
    /// Full batches waiting for the sender, oldest first.
    pub ready: VecDeque<ProducerBatch>,
    /// On the sender's list, or in `Accumulator::new_lanes` (see the module invariants).
    pub listed: bool,
}

impl LaneBatches {
    pub(crate) fn is_empty(&self) -> bool {
        self.open.is_none() && self.ready.is_empty()
    }
}

/// One partition a producer sends to: its log (or why it is offline) and its batches.
///
/// The log is held weakly: a lane can outlive its producer in a thread's cache of the topic
/// sent to last (`producer::LAST_TOPIC`), and must not keep a deleted topic's or a closed
/// broker's files open. The broker holds the log while the topic exists, and a batch holds it
/// while the batch does.
pub(crate) struct Lane {
    /// The topic's name, interned once here for every batch's metadata.
    pub topic: &'static str,
    pub partition: i32,
    log: std::result::Result<Weak<PartitionLog>, Error>,
    pub batches: Mutex<LaneBatches>,
}

impl Lane {
    fn new(topic: &'static str, partition: i32, slot: &PartitionSlot) -> Arc<Lane> {
        Arc::new(Lane {
            topic,
            partition,
            log: match slot {
                PartitionSlot::Online(log) => Ok(Arc::downgrade(log)),
                PartitionSlot::Offline(e) => Err(e.clone()),
            },
            batches: Mutex::new(LaneBatches::default()),
        })
    }

    /// The partition's log; an error if it is offline or gone (its topic deleted).
    pub(crate) fn log(&self) -> Result<Arc<PartitionLog>> {
        match &self.log {
            Ok(log) => log.upgrade().ok_or(Error::Closed {
                what: "partition log (its topic was deleted or its broker closed)",
            }),
            Err(e) => Err(e.clone()),
        }
    }
}

/// A topic as this producer last looked it up.
pub(crate) struct TopicEntry {
    pub name: Arc<str>,
    /// The broker's state of the topic, to tell a topic recreated under the same name (weak,
    /// since it holds the logs; see `Lane`).
    state: Weak<TopicState>,
    /// One lane per partition, by partition number.
    pub lanes: Vec<Arc<Lane>>,
    /// The broker metadata version this entry was last known to be current at.
    version: AtomicU64,
}

impl TopicEntry {
    pub(crate) fn partition_count(&self) -> i32 {
        i32::try_from(self.lanes.len()).unwrap_or(i32::MAX)
    }

    /// True when this is the entry of `topic` and nothing changed at the broker since it was
    /// checked (`version` is the broker's metadata version now).
    pub(crate) fn is_current(&self, topic: &str, version: u64) -> bool {
        self.is_current_at(version) && &*self.name == topic
    }

    /// True when nothing changed at the broker since this entry was checked (`version` is the
    /// broker's metadata version now).
    pub(crate) fn is_current_at(&self, version: u64) -> bool {
        self.version.load(Ordering::Acquire) == version
    }
}

/// The topics a producer has sent to, looked up once and then only when the broker's metadata
/// version moves.
#[derive(Default)]
pub(crate) struct TopicTable {
    entries: RwLock<Entries>,
    /// The entry found last: producers mostly send to one topic at a time, and comparing one
    /// name is cheaper than hashing it.
    last: AtomicUsize,
}

impl TopicTable {
    /// Every lane of every topic looked up (for an abort that drops what is buffered).
    pub(crate) fn lanes(&self) -> Vec<Arc<Lane>> {
        self.entries
            .read()
            .list
            .iter()
            .flat_map(|e| e.lanes.iter().cloned())
            .collect()
    }
}

#[derive(Default)]
struct Entries {
    list: Vec<Arc<TopicEntry>>,
    index: HashMap<Arc<str>, usize>,
}

impl Entries {
    fn position(&self, name: &str, hint: usize) -> Option<usize> {
        match self.list.get(hint) {
            Some(e) if &*e.name == name => Some(hint),
            _ => self.index.get(name).copied(),
        }
    }
}

impl TopicTable {
    /// The current entry of `topic`: the cached one when the broker's metadata has not changed
    /// since it was made, otherwise looked up again (auto-creating the topic if that is on).
    /// `version` is the broker's metadata version, read before anything else of the lookup,
    /// so that a change racing with it leaves the entry stale, not wrong.
    pub(crate) fn get(
        &self,
        broker: &BrokerInner,
        topic: &str,
        version: u64,
    ) -> Result<Arc<TopicEntry>> {
        {
            let entries = self.entries.read();
            let hint = self.last.load(Ordering::Relaxed);
            if let Some(i) = entries.position(topic, hint) {
                if let Some(e) = entries.list.get(i) {
                    if e.is_current(topic, version) {
                        if i != hint {
                            self.last.store(i, Ordering::Relaxed);
                        }
                        return Ok(Arc::clone(e));
                    }
                }
            }
        }
        self.refresh(broker, topic, version)
    }

    fn refresh(&self, broker: &BrokerInner, topic: &str, version: u64) -> Result<Arc<TopicEntry>> {
        let state = broker.topic_state(topic)?;
        let slots = state.partitions.read().clone();
        let mut entries = self.entries.write();
        let found = entries.position(topic, self.last.load(Ordering::Relaxed));
        let current = found.and_then(|i| entries.list.get(i));
        let same = |e: &TopicEntry| std::ptr::eq(e.state.as_ptr(), Arc::as_ptr(&state));
        if let Some(e) = current.filter(|e| same(e) && e.lanes.len() == slots.len()) {
            e.version.store(version, Ordering::Release);
            return Ok(Arc::clone(e));
        }
        let topic_name = intern_topic(&state.name);
        let lanes: Vec<Arc<Lane>> = match current {
            // Partitions were added: keep the lanes (and their open batches) of the old ones.
            Some(e) if same(e) && e.lanes.len() < slots.len() => e
                .lanes
                .iter()
                .cloned()
                .chain(
                    slots
                        .iter()
                        .enumerate()
                        .skip(e.lanes.len())
                        .map(|(p, slot)| Lane::new(topic_name, p as i32, slot)),
                )
                .collect(),
            // New to this producer, or deleted and created again: fresh lanes. Batches left in
            // the old lanes are still on the sender's list, which writes (or fails) them.
            _ => slots
                .iter()
                .enumerate()
                .map(|(p, slot)| Lane::new(topic_name, p as i32, slot))
                .collect(),
        };
        let entry = Arc::new(TopicEntry {
            name: Arc::clone(&state.name),
            state: Arc::downgrade(&state),
            lanes,
            version: AtomicU64::new(version),
        });
        let i = match found {
            Some(i) => i,
            None => {
                entries.list.push(Arc::clone(&entry));
                let i = entries.list.len() - 1;
                entries.index.insert(Arc::clone(&entry.name), i);
                i
            }
        };
        if let Some(slot) = entries.list.get_mut(i) {
            *slot = Arc::clone(&entry);
        }
        self.last.store(i, Ordering::Relaxed);
        Ok(entry)
    }
}

/// What the sending threads, the sender thread and `flush` share, changed once per batch.
#[derive(Default)]
pub(crate) struct Accumulator {
    pub next_seq: u64,
    /// Sequence numbers of batches not completed yet.
    pub incomplete: BTreeSet<u64>,
    /// Lanes that got a batch since the sender last looked (see `LaneBatches::listed`).
    pub new_lanes: Vec<Arc<Lane>>,
    /// Open batches with a sequence number below this are sent without lingering (`flush`).
    pub flush_below: u64,
    /// Senders blocked on `buffer.memory`: while any waits, nothing lingers.
    pub space_waiters: usize,
    /// Set by `close`: no new records; everything pending is sent now.
    pub closed: bool,
    /// Wakers of pending [`crate::Flush`] futures, by key; taken and woken whenever batches
    /// complete (where `done` is notified).
    pub flush_wakers: Vec<(u64, std::task::Waker)>,
    /// The key of the next flush waker.
    pub next_flush_waker: u64,
}

impl Accumulator {
    /// True when nothing is buffered or in flight.
    pub(crate) fn is_idle(&self) -> bool {
        self.incomplete.is_empty()
    }
}

/// What the sender takes from the lanes in one round.
pub(crate) struct Drain {
    /// Every open batch with records is due now (closing, or a send waits for room).
    pub urgent: bool,
    /// Open batches below this sequence number are due now (`flush`).
    pub flush_below: u64,
    pub now: Instant,
}
