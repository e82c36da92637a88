//! The producer handle and its sender thread.
//!
//! Threading: the threads that call `send` choose the partition and encode the record into
//! that partition's open batch (under the accumulator mutex); one sender thread per producer
//! takes whole batches out and writes them (`append_batch`, then under `acks=all` one
//! group-committed `sync_to` per partition for everything it appended in that round), then
//! completes futures and runs callbacks. Batches form on their own while the sender is busy,
//! so `linger.ms=0` still gives large batches under load, and a lone send costs one wake-up
//! of the sender and no timer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::broker::Broker;
use crate::codec::{BatchBuilder, HEADER_BYTES};
use crate::config::{Acks, ProducerConfig};
use crate::error::{Error, Result};
use crate::log::PartitionLog;
use crate::producer::accumulator::{Accumulator, Callback, ProducerBatch};
use crate::producer::future::{Completion, SendFuture};
use crate::producer::partitioner::Partitioner;
use crate::producer::record::{ProducerRecord, RecordMetadata};

/// The most a record's encoding grows between being first in a batch (deltas 0) and later:
/// the offset delta varint (up to 5 bytes), the timestamp delta varint (up to 10) and the
/// record length varint (up to 5), each at least 1 byte when first.
const DELTA_GROWTH_BYTES_MAX: usize = 4 + 9 + 4;

/// Sends records to a broker's topics, in batches, from any number of threads. Kafka's
/// `KafkaProducer`.
///
/// A `Producer` is a cheap handle (`Clone + Send + Sync`): share one between threads, as
/// with Kafka. [`Producer::send`] and [`Producer::send_with_callback`] return at once; the
/// record is encoded into its partition's open batch, and a sender thread writes the batch
/// when it reaches `batch.size` bytes or has waited `linger.ms`, whichever comes first (with
/// the default `linger.ms=0`, as soon as the sender is free). A send is complete when the
/// record is stored under the configured [`Acks`]. [`Producer::flush`] sends everything
/// pending and waits for it; [`Producer::close`] flushes and stops the sender thread; dropping
/// the last handle does the same, best-effort.
///
/// ```
/// use embroker::{Acks, Broker, ProducerConfig, ProducerRecord, TopicConfig};
/// let broker = Broker::temporary()?;
/// broker.create_topic("orders", TopicConfig::default().partitions(3))?;
/// let producer = broker.producer(ProducerConfig::default().acks(Acks::All))?;
///
/// // Synchronous: wait for the record to be stored (here, fsynced).
/// let meta = producer.send(ProducerRecord::new("orders", "apples").key("customer-7"))?.wait()?;
/// assert_eq!(meta.offset, 0);
///
/// // Asynchronous: the callback runs once the record is stored, or failed.
/// producer.send_with_callback(ProducerRecord::new("orders", "pears").key("customer-7"), |r| {
///     let meta = r.expect("stored");
///     println!("stored at {}-{}@{}", meta.topic, meta.partition, meta.offset);
/// })?;
/// producer.flush()?;
///
/// // The same key, the same partition, in send order.
/// let partition = broker.topic("orders")?.partition(meta.partition)?;
/// assert_eq!(partition.log_end_offset(), 2);
/// producer.close()?;
/// # Ok::<(), embroker::Error>(())
/// ```
#[derive(Clone)]
pub struct Producer {
    handle: Arc<Handle>,
}

/// Owned by the user-facing handles only: the last one dropped closes the producer. The
/// sender thread holds `Shared`, not this, so it does not keep the producer open.
struct Handle {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// What the sending threads and the sender thread share.
struct Shared {
    broker: Broker,
    config: ProducerConfig,
    partitioner: Arc<dyn Partitioner>,
    /// `None`: linger for ever (a `linger.ms` too large to add to an `Instant`).
    linger: Option<Duration>,
    batch_size: usize,
    buffer_memory: u64,
    max_block: Duration,
    max_request_size: usize,
    /// An empty batch, to size a record as the first of a batch without allocating.
    empty: BatchBuilder,
    acc: Mutex<Accumulator>,
    /// Wakes the sender: a batch was opened or closed, a flush or close began, or a sender is
    /// short of buffer space.
    work: Condvar,
    /// Wakes senders blocked on `buffer.memory`.
    space: Condvar,
    /// Wakes `flush` and `close` when batches complete.
    done: Condvar,
    /// Mirrors `Accumulator::closed`, so a closed producer refuses sends without the lock.
    closed: AtomicBool,
    sender_id: OnceLock<ThreadId>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shared = &self.handle.shared;
        f.debug_struct("Producer")
            .field("client_id", &shared.config.client_id)
            .field("acks", &shared.config.acks)
            .field("closed", &shared.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// A producer that sends to this broker's topics, configured by `config` (checked here;
    /// errors name the key). Starts the producer's sender thread.
    pub fn producer(&self, config: ProducerConfig) -> Result<Producer> {
        Producer::new(self.clone(), config)
    }
}

impl Producer {
    fn new(broker: Broker, config: ProducerConfig) -> Result<Producer> {
        config.validate()?;
        let to_usize = |v: u32| usize::try_from(v).unwrap_or(usize::MAX);
        let shared = Arc::new(Shared {
            partitioner: config.build_partitioner(),
            linger: Some(Duration::from_millis(
                u64::try_from(config.linger_ms).unwrap_or(0),
            ))
            .filter(|l| Instant::now().checked_add(*l).is_some()),
            batch_size: to_usize(config.batch_size),
            buffer_memory: u64::try_from(config.buffer_memory).unwrap_or(0),
            max_block: Duration::from_millis(u64::try_from(config.max_block_ms).unwrap_or(0)),
            max_request_size: to_usize(config.max_request_size),
            empty: BatchBuilder::with_capacity(0),
            acc: Mutex::new(Accumulator::default()),
            work: Condvar::new(),
            space: Condvar::new(),
            done: Condvar::new(),
            closed: AtomicBool::new(false),
            sender_id: OnceLock::new(),
            broker,
            config,
        });
        let name = if shared.config.client_id.is_empty() {
            "embroker-producer".to_string()
        } else {
            format!("embroker-producer-{}", shared.config.client_id)
        };
        let for_thread = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || for_thread.run_sender())
            .map_err(|e| {
                Error::io(
                    "starting the producer's sender thread for",
                    shared.broker.path(),
                    e,
                )
            })?;
        let _ = shared.sender_id.set(thread.thread().id());
        Ok(Producer {
            handle: Arc::new(Handle {
                shared,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// The configuration the producer was created with.
    pub fn config(&self) -> &ProducerConfig {
        &self.handle.shared.config
    }

    /// Sends a record and returns at once with a future of its [`RecordMetadata`]; call
    /// [`SendFuture::wait`] to block until the record is stored under the configured `acks`.
    ///
    /// Errors known before the record is queued come back here: an unknown topic
    /// ([`Error::UnknownTopic`], unless the broker auto-creates topics) or partition
    /// ([`Error::UnknownPartition`]), a record over `max.request.size`, the topic's
    /// `max.message.bytes` or `buffer.memory` ([`Error::RecordTooLarge`]), a negative timestamp
    /// ([`Error::InvalidArgument`]), a partitioner that fails or answers out of range
    /// ([`Error::Callback`]), a closed producer or broker ([`Error::Closed`]), and a buffer that
    /// stayed full for `max.block.ms` ([`Error::Timeout`]). Errors of the write itself come
    /// through the future.
    pub fn send(&self, record: ProducerRecord) -> Result<SendFuture> {
        self.handle.shared.send(record, None)
    }

    /// Sends a record and returns at once; `callback` runs exactly once, on the producer's
    /// sender thread, with the record's metadata or the error that kept it from being stored
    /// (also when the producer is flushed, closed or dropped with the record still pending).
    /// Kafka's `send(record, callback)`.
    ///
    /// If this returns an error (the same immediate errors as [`Producer::send`]), the record
    /// was not queued and the callback is dropped without running.
    ///
    /// Callbacks run on the sender thread, so keep them short: while one runs, no batch is
    /// written. A callback may send (if the buffer is full it fails at once with
    /// [`Error::Timeout`] instead of blocking the thread that would free the space) and may
    /// close the producer (without waiting), but [`Producer::flush`] from a callback is an
    /// error. A callback that panics is caught; the other records are unaffected.
    pub fn send_with_callback<F>(&self, record: ProducerRecord, callback: F) -> Result<()>
    where
        F: FnOnce(Result<RecordMetadata>) + Send + 'static,
    {
        self.handle
            .shared
            .send(record, Some(Box::new(callback)))
            .map(drop)
    }

    /// Sends every record handed to this producer so far, ignoring `linger.ms`, and waits until
    /// each is complete (its future set and its callback run), whatever the outcome. Errors of
    /// individual records go to their futures and callbacks, not here.
    ///
    /// Fails with [`Error::IllegalState`] when called from a send callback, which would wait
    /// for itself.
    pub fn flush(&self) -> Result<()> {
        let shared = &self.handle.shared;
        if shared.on_sender_thread() {
            return Err(Error::IllegalState {
                reason: "Producer::flush called from a send callback, which runs on the \
                         sender thread that flush waits for"
                    .into(),
            });
        }
        let mut acc = shared.acc.lock();
        let target = acc.next_seq;
        acc.flush_below = acc.flush_below.max(target);
        shared.work.notify_one();
        while acc.incomplete.first().is_some_and(|&seq| seq < target) {
            shared.done.wait(&mut acc);
        }
        Ok(())
    }

    /// Refuses new records, sends everything pending (as `flush`), and stops the sender
    /// thread. Every handle of this producer fails with [`Error::Closed`] afterwards; closing
    /// twice is a no-op. Called from a send callback, it starts the close and returns without
    /// waiting (the sender finishes once the callback returns).
    pub fn close(&self) -> Result<()> {
        self.handle.close()
    }
}

impl Handle {
    fn close(&self) -> Result<()> {
        let shared = &self.shared;
        shared.acc.lock().closed = true;
        shared.closed.store(true, Ordering::Release);
        shared.work.notify_all();
        shared.space.notify_all();
        if shared.on_sender_thread() {
            return Ok(());
        }
        let thread = self.thread.lock().take();
        match thread {
            Some(thread) => thread.join().map_err(|_| Error::IllegalState {
                reason: "the producer's sender thread panicked".into(),
            }),
            None => {
                // Another close is joining the thread; wait for the same outcome.
                let mut acc = shared.acc.lock();
                while !acc.is_idle() {
                    shared.done.wait(&mut acc);
                }
                Ok(())
            }
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // Best effort: Drop cannot report; `Producer::close` does.
        let _ = self.close();
    }
}

fn internal(what: &str) -> Error {
    Error::IllegalState {
        reason: format!("producer accumulator: {what}"),
    }
}

impl Shared {
    fn on_sender_thread(&self) -> bool {
        self.sender_id.get() == Some(&std::thread::current().id())
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed { what: "producer" });
        }
        Ok(())
    }

    /// The partition of `record`: its own, checked, or the partitioner's, checked.
    fn choose_partition(&self, record: &ProducerRecord, count: i32) -> Result<i32> {
        match record.partition {
            Some(p) if (0..count).contains(&p) => Ok(p),
            Some(p) => Err(Error::UnknownPartition {
                topic: record.topic.clone(),
                partition: p,
                partitions: count,
            }),
            None => {
                let p = self.partitioner.partition(
                    &record.topic,
                    record.key.as_deref(),
                    record.value.as_deref(),
                    count,
                )?;
                if (0..count).contains(&p) {
                    Ok(p)
                } else {
                    Err(Error::Callback {
                        callback: "partitioner",
                        reason: format!(
                            "{:?} returned partition {p} for topic {:?}, which has {count} \
                             partition(s)",
                            self.partitioner, record.topic
                        ),
                    })
                }
            }
        }
    }

    fn send(&self, record: ProducerRecord, callback: Option<Callback>) -> Result<SendFuture> {
        self.check_open()?;
        if let Some(ts) = record.timestamp.filter(|ts| *ts < 0) {
            return Err(Error::argument(
                "timestamp",
                format!("{ts} is negative; timestamps are milliseconds since the Unix epoch"),
            ));
        }
        let inner = &self.broker.inner;
        let count = inner.partition_count(&record.topic)?;
        let partition = self.choose_partition(&record, count)?;
        let timestamp = record.timestamp.unwrap_or_else(|| inner.clock().now_ms());
        let key = record.key.as_deref();
        let value = record.value.as_deref();
        let too_large =
            |size: usize, limit: usize, limit_name: &'static str| Error::RecordTooLarge {
                topic: record.topic.clone(),
                partition,
                size: size as u64,
                limit: limit as u64,
                limit_name,
            };
        // The record as the first of a batch: the smallest batch it can travel in.
        let alone = match self
            .empty
            .record_size(timestamp, key, value, &record.headers)
        {
            Some(size) => HEADER_BYTES + size,
            None => {
                let fields = key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len);
                return Err(too_large(fields, self.max_request_size, "max.request.size"));
            }
        };
        if alone > self.max_request_size {
            return Err(too_large(alone, self.max_request_size, "max.request.size"));
        }
        if alone as u64 > self.buffer_memory {
            let limit = usize::try_from(self.buffer_memory).unwrap_or(usize::MAX);
            return Err(too_large(alone, limit, "buffer.memory"));
        }
        let p = usize::try_from(partition).map_err(|_| internal("negative partition"))?;

        let mut acc = self.acc.lock();
        self.wait_for_space(&mut acc, &record.topic, partition, alone as u64)?;
        let t = acc.topic(&record.topic, p);

        // The open batch's limits, or, to open one, the partition's log and its limits.
        let mut log: Option<Arc<PartitionLog>> = None;
        let limit = match acc.slot(t, p).and_then(|s| s.as_ref()) {
            Some(open) => open.limit_bytes,
            None => {
                let l = inner.partition_log(&record.topic, partition)?;
                let topic_limit = usize::try_from(l.config().max_message_bytes).unwrap_or(0);
                log = Some(l);
                topic_limit.min(self.max_request_size)
            }
        };
        if alone > limit {
            return Err(too_large(alone, limit, "max.message.bytes"));
        }

        // Close the open batch if this record would take it past batch.size (or its limit).
        let slot = acc.slot(t, p).ok_or_else(|| internal("no slot"))?;
        let overflows = slot.as_ref().is_some_and(|open| {
            // Later in a batch, a record's offset and timestamp deltas take more varint bytes
            // than as the first record; bounding the growth saves sizing the record again.
            let cap = open.limit_bytes.min(self.batch_size);
            open.size_bytes() + (alone - HEADER_BYTES) + DELTA_GROWTH_BYTES_MAX > cap
        });
        if overflows {
            if let Some(full) = slot.take() {
                acc.open_count -= 1;
                acc.close_batch(full);
                self.work.notify_one();
            }
        }

        // Open a batch if there is none.
        if acc.slot(t, p).is_none_or(|s| s.is_none()) {
            let log = match log {
                Some(l) => l,
                None => inner.partition_log(&record.topic, partition)?,
            };
            let seq = acc.next_seq;
            acc.next_seq += 1;
            let completion = Arc::new(Completion::new(
                Arc::clone(log.topic_arc()),
                partition,
                self.config.acks,
            ));
            let capacity = self.batch_size.max(alone).min(limit);
            let batch = ProducerBatch::new(seq, log, capacity, limit, completion);
            *acc.slot(t, p).ok_or_else(|| internal("no slot"))? = Some(batch);
            acc.incomplete.insert(seq);
            acc.open_count += 1;
            // The sender may be asleep with no deadline; it must learn of this batch.
            self.work.notify_one();
        }

        let slot = acc.slot(t, p).ok_or_else(|| internal("no slot"))?;
        let batch = slot.as_mut().ok_or_else(|| internal("no open batch"))?;
        let before = batch.size_bytes();
        let builder = batch.builder().ok_or_else(|| internal("batch finished"))?;
        if builder
            .push(timestamp, key, value, &record.headers)
            .is_none()
        {
            // Cannot happen: the size was checked against limits far below the format's.
            return Err(too_large(alone, limit, "max.message.bytes"));
        }
        let index = builder.record_count() - 1;
        let size_now = builder.size_bytes();
        let added = (size_now - before) as u64;
        batch.buffered_bytes += added;
        if let Some(callback) = callback {
            batch.add_callback(index, timestamp, callback);
        }
        let future = SendFuture::new(Arc::clone(&batch.completion), index, timestamp);
        let full = size_now >= self.batch_size;
        if full {
            if let Some(full) = slot.take() {
                acc.open_count -= 1;
                acc.close_batch(full);
                self.work.notify_one();
            }
        }
        acc.buffered_bytes += added;
        Ok(future)
    }

    /// Blocks while `buffer.memory` has no room for `bytes`, up to `max.block.ms`.
    fn wait_for_space(
        &self,
        acc: &mut MutexGuard<'_, Accumulator>,
        topic: &str,
        partition: i32,
        bytes: u64,
    ) -> Result<()> {
        if acc.closed {
            return Err(Error::Closed { what: "producer" });
        }
        if acc.buffered_bytes + bytes <= self.buffer_memory {
            return Ok(());
        }
        let timeout = |waited: Duration| Error::Timeout {
            operation: format!(
                "waiting for room in the producer's buffer (buffer.memory={}) for a {bytes}-byte \
                 record to {topic}-{partition}",
                self.buffer_memory
            ),
            timeout: waited,
        };
        if self.on_sender_thread() {
            // Waiting in a callback would block the thread that frees the space.
            return Err(timeout(Duration::ZERO));
        }
        let deadline = Instant::now().checked_add(self.max_block);
        acc.space_waiters += 1;
        // Nothing lingers while someone waits for space.
        self.work.notify_one();
        let result = loop {
            if acc.closed {
                break Err(Error::Closed { what: "producer" });
            }
            if acc.buffered_bytes + bytes <= self.buffer_memory {
                break Ok(());
            }
            let timed_out = match deadline {
                Some(d) => self.space.wait_until(acc, d).timed_out(),
                None => {
                    self.space.wait(acc);
                    false
                }
            };
            if timed_out && acc.buffered_bytes + bytes > self.buffer_memory {
                break Err(timeout(self.max_block));
            }
        };
        acc.space_waiters -= 1;
        result
    }

    /// The sender thread: take due batches, write them, complete them; until closed and idle.
    fn run_sender(&self) {
        let mut batches = Vec::new();
        let mut finished: Vec<(u64, u64)> = Vec::new();
        loop {
            let mut acc = self.acc.lock();
            // Account for the previous round and take the next under one lock.
            if !finished.is_empty() {
                for (seq, bytes) in finished.drain(..) {
                    acc.incomplete.remove(&seq);
                    acc.buffered_bytes -= bytes;
                }
                self.space.notify_all();
                self.done.notify_all();
            }
            let mut yielded = false;
            loop {
                let next_due = acc.drain(Instant::now(), self.linger, &mut batches);
                if !batches.is_empty() {
                    break;
                }
                if acc.closed && acc.is_idle() {
                    return;
                }
                if !yielded && self.linger == Some(Duration::ZERO) {
                    // Without linger, a sender that sleeps as soon as it catches up must be
                    // woken (a futex call on the sending thread) for every batch. Letting the
                    // sending threads run once first lets a busy producer's next batch fill.
                    yielded = true;
                    MutexGuard::unlocked(&mut acc, std::thread::yield_now);
                    continue;
                }
                match next_due {
                    Some(due) => {
                        self.work.wait_until(&mut acc, due);
                    }
                    None => self.work.wait(&mut acc),
                }
            }
            drop(acc);
            finished = self.write(&mut batches);
        }
    }

    /// Appends `batches` in order and completes them; returns each one's sequence number and
    /// buffered bytes. Under `acks=all`, everything is appended first and then each partition
    /// is fsynced once (`sync_to`, which also shares fsyncs with other producers), so one
    /// fsync covers every record that arrived while the previous one ran: group commit.
    fn write(&self, batches: &mut Vec<ProducerBatch>) -> Vec<(u64, u64)> {
        let mut finished = Vec::with_capacity(batches.len());
        if self.config.acks != Acks::All {
            for mut batch in batches.drain(..) {
                let result = batch.append();
                finished.push((batch.seq, batch.buffered_bytes));
                batch.complete(result);
            }
            return finished;
        }
        let mut appended = Vec::with_capacity(batches.len());
        let mut ends: Vec<(Arc<PartitionLog>, i64)> = Vec::new();
        for mut batch in batches.drain(..) {
            let result = batch.append();
            if let Ok(info) = &result {
                let end = info.last_offset + 1;
                match ends
                    .iter_mut()
                    .find(|(log, _)| Arc::ptr_eq(log, &batch.log))
                {
                    Some((_, e)) => *e = (*e).max(end),
                    None => ends.push((Arc::clone(&batch.log), end)),
                }
            }
            appended.push((batch, result));
        }
        let synced: Vec<(Arc<PartitionLog>, Result<()>)> = ends
            .into_iter()
            .map(|(log, end)| {
                let result = log.sync_to(end);
                (log, result)
            })
            .collect();
        for (batch, result) in appended {
            let result = result.and_then(|info| {
                match synced.iter().find(|(log, _)| Arc::ptr_eq(log, &batch.log)) {
                    Some((_, Err(e))) => Err(e.clone()),
                    _ => Ok(info),
                }
            });
            finished.push((batch.seq, batch.buffered_bytes));
            batch.complete(result);
        }
        finished
    }
}
