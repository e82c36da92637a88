//! The producer handle and its sender loop (run on a pooled thread, see `sender_pool`).
//!
//! Threading: the threads that call `send` choose the partition and encode the record into
//! that partition's open batch, under that partition's lock only (see `accumulator`); one
//! sender thread per producer takes whole batches out and writes them (`append_batch`, then
//! under `acks=all` one group-committed `sync_to` per partition for everything it appended in
//! that round), then completes futures and runs callbacks. Batches form while the sender is
//! busy; without linger it also leaves an open batch that is still growing until records
//! stop arriving into it (it looks again microseconds later, see `Shared::drain_lane`), so
//! `linger.ms=0` gives full batches under load, and a lone send waits microseconds and no
//! timer; a batch someone waits on (`SendFuture::wait`, an awaited future) is taken at the
//! sender's next look (see `future::Hurry`).
//!
//! Per record, `send` takes one lock (its partition's) and touches nothing shared with other
//! partitions: the topic comes from a per-thread cache checked against the broker's metadata
//! version, room in `buffer.memory` is taken per batch, and the sender is signalled only
//! when a batch fills up or gets its first record while its lane holds no closed batch (see
//! `Shared::push_locked`).

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::broker::Broker;
use crate::codec::{self, Placement, HEADER_BYTES};
use crate::config::{Acks, PartitionerChoice, ProducerConfig};
use crate::error::{Error, Result};
use crate::log::{AppendInfo, PartitionLog};
use crate::metrics::{self as m, nanos, Agg, Counter, Metrics, Sampled, Window};
use crate::producer::accumulator::{
    Accumulator, Callback, Drain, Lane, LaneBatches, ProducerBatch, TopicEntry, TopicTable,
};
use crate::producer::future::{Completion, Hurry, SendFuture};
use crate::producer::idempotence::{self, Sequences};
use crate::producer::partitioner::Partitioner;
use crate::producer::record::{ProducerRecord, RecordMetadata};
use crate::producer::sender_pool::{self, Finished};
use crate::producer::transaction::Idempotence;
use crate::types::TimestampType;

/// The most a record's encoding grows between being first in a batch (deltas 0) and later:
/// the offset delta varint (up to 5 bytes), the timestamp delta varint (up to 10) and the
/// record length varint (up to 5), each at least 1 byte when first.
const DELTA_GROWTH_BYTES_MAX: usize = 4 + 9 + 4;
// A record reserves its size as the first of a batch plus a batch header when it has to wait
// for room; that must cover its size anywhere in a batch.
const _: () = assert!(DELTA_GROWTH_BYTES_MAX < HEADER_BYTES);

/// Attempts `lock_politely` makes before it parks (half spinning, half yielding).
const LANE_LOCK_TRIES: u32 = 200;
/// Without linger, how long the sender waits before it looks again at an open batch that grew
/// since its last look (see `drain_lane`): about the time it takes to write a full batch, so
/// that records arriving faster than batches can be written form batches. A timed park
/// rounds this up to the thread's timer slack (50 µs by default on Linux).
const GROWTH_WAIT: Duration = Duration::from_micros(5);
/// Without linger, how many looks an open batch that keeps growing waits for at most, so
/// that a steady stream slower than a batch per look still goes out within ~0.1 ms.
const GROWTH_LOOKS_MAX: u32 = 2;

/// Written batches' buffers and completions kept for new batches, of each at most this many
/// (eight cover the batches in flight of a few partitions; more are freed). Allocated on the
/// sending thread and freed on the sender thread, they made the allocator move memory between
/// the threads: every batch's 16 KiB buffer consolidated the sender's frees on the sending
/// thread (`malloc_consolidate` and `_int_malloc`, 11% of it in `perf` with callbacks), and
/// every batch's completion took the allocator's arena lock on both threads (`strace`: ~430
/// futex wake-ups a round of 1,000,000 sends on the sending thread, ~300 waits on the sender).
const SPARES_MAX: usize = 8;
/// The most references to a spare completion made ahead (see `Spares::keep_completion`): a
/// batch of `batch.size` holds a few hundred small records.
const REFS_AHEAD_MAX: usize = 1024;

/// The sender is not parked.
const AWAKE: u8 = 0;
/// The sender is parked until a look due within [`SHORT_PARK_MAX`]: a new or full batch
/// need not wake it, it will find them then.
const PARKED_SHORT: u8 = 1;
/// The sender is parked with no deadline, or a later one.
const PARKED_LONG: u8 = 2;
/// The longest timed park after which the sender finds new work by itself. A wake-up costs
/// the sending thread a futex call (measured at ~6 µs on the project's VM, one per batch: 10%
/// of `send`); a batch found up to this late costs nothing to the sending thread, which keeps
/// filling the next one, and stays under a timed park's usual overshoot (timer slack, 50 µs).
const SHORT_PARK_MAX: Duration = Duration::from_micros(100);

/// Numbers producers, so that a thread's cache can tell whose entry it holds.
static NEXT_PRODUCER_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The topic this thread sent to last, and through which producer (see `Shared::send`).
    /// It holds no files: lanes hold their logs weakly.
    static LAST_TOPIC: RefCell<Option<LastTopic>> = const { RefCell::new(None) };
    /// The producer (`Shared::id`) whose sender loop this thread is running, if any: pool
    /// threads run one producer's loop after another (see `sender_pool`).
    static RUNNING_SENDER: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Marks the current thread as running a producer's sender loop until dropped (also when
/// the loop panics: the pool thread serves other producers afterwards).
struct RunningSender;

impl RunningSender {
    fn enter(id: u64) -> RunningSender {
        RUNNING_SENDER.with(|r| r.set(Some(id)));
        RunningSender
    }
}

impl Drop for RunningSender {
    fn drop(&mut self) {
        RUNNING_SENDER.with(|r| r.set(None));
    }
}

/// A thread's topic sent to last (see `LAST_TOPIC`).
struct LastTopic {
    /// The producer's `Shared::id`.
    producer: u64,
    entry: Arc<TopicEntry>,
    /// The record's topic as it was given, when it was a `&'static str` (most often a
    /// literal): a topic at the same address and of the same length is the same name, known
    /// without comparing bytes (a `memcmp` call, ~2% of a send).
    literal: Option<&'static str>,
}

impl LastTopic {
    /// True when `topic` is this entry's topic name.
    // The `Cow` itself, not the `&str` it derefs to: only a borrowed `'static` name may be
    // compared by address.
    #[allow(clippy::ptr_arg)]
    fn names(&self, topic: &Cow<'static, str>) -> bool {
        match (topic, self.literal) {
            (Cow::Borrowed(given), Some(literal)) if std::ptr::eq(*given, literal) => true,
            _ => *self.entry.name == **topic,
        }
    }
}

/// Sends records to a broker's topics, in batches, from any number of threads. Kafka's
/// `KafkaProducer`.
///
/// A `Producer` is a cheap handle (`Clone + Send + Sync`): share one between threads, as
/// with Kafka. [`Producer::send`] and [`Producer::send_with_callback`] return at once; the
/// record is encoded into its partition's open batch, and a sender thread writes the batch
/// when it reaches `batch.size` bytes or has waited `linger.ms`, whichever comes first (with
/// the default `linger.ms=0`, once records stop arriving into it, which the sender checks
/// microseconds apart, or as soon as a record of it is waited on; at once under `acks=all`,
/// whose fsyncs batch records). A send is
/// complete when the record is stored under the configured [`Acks`]. [`Producer::flush`]
/// sends everything pending and waits for it; [`Producer::close`] flushes and stops the
/// sender loop (its thread is kept by the process for the next producer); dropping the last
/// handle does the same, best-effort.
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
/// sender loop holds `Shared`, not this, so it does not keep the producer open.
struct Handle {
    shared: Arc<Shared>,
    /// The end of the sender loop, taken by the close that waits for it.
    sender: Mutex<Option<Arc<Finished>>>,
}

/// What the sending threads and the sender thread share.
pub(super) struct Shared {
    /// Unique in the process (see `LAST_TOPIC`).
    id: u64,
    /// This producer, for its batches' completions to tell the sender of a wait (see
    /// [`Hurry`]); weak, so a completion a future keeps does not keep the producer.
    me: Weak<Shared>,
    pub(super) broker: Broker,
    config: ProducerConfig,
    /// The producer id, epoch and transaction state of an idempotent producer; `None` for a
    /// plain one (which then pays one branch per batch and per send for it).
    pub(super) idempotence: Option<Idempotence>,
    partitioner: Arc<dyn Partitioner>,
    /// The partitioner is one of ours (not [`PartitionerChoice::Custom`]): on a topic of one
    /// partition it can only answer 0, so it is not asked (see `choose_partition`).
    partitioner_builtin: bool,
    /// `None`: linger for ever (a `linger.ms` too large to add to an `Instant`).
    linger: Option<Duration>,
    batch_size: usize,
    buffer_memory: u64,
    max_block: Duration,
    max_request_size: usize,
    /// Written batches' buffers and completions, for new batches (Kafka's `BufferPool`; see
    /// [`SPARES_MAX`]).
    spares: Mutex<Spares>,
    /// The topics sent to, with their partitions' lanes (each lane has its own lock).
    topics: TopicTable,
    /// Taken once per batch, not per record (see `accumulator`).
    acc: Mutex<Accumulator>,
    /// Bytes of records held, counted against `buffer.memory`.
    buffered_bytes: AtomicU64,
    /// Mirrors `Accumulator::space_waiters`, so that giving bytes back takes the lock only
    /// when someone waits for them.
    space_waiting: AtomicUsize,
    /// Bumped by everything the sender must act on (see `signal`).
    work_seq: AtomicU64,
    /// How the sender is parked on `work`: [`AWAKE`], [`PARKED_SHORT`] or [`PARKED_LONG`]
    /// (see `signal`).
    parked: AtomicU8,
    /// Wakes the sender: a batch was opened or closed, a flush or close began, or a sender is
    /// short of buffer space.
    work: Condvar,
    /// Wakes senders blocked on `buffer.memory`.
    space: Condvar,
    /// Wakes `flush` and `close` when batches complete.
    done: Condvar,
    /// Mirrors `Accumulator::closed`, so a closed producer refuses sends without the lock.
    closed: AtomicBool,
    /// Counted by the sender thread per batch, and by `send` per rejected record.
    metrics: ProducerMetrics,
}

/// The producer's counters (see `crate::metrics` for each metric's meaning). Written by the
/// sender thread once per round (the totals with an atomic add per batch, the windows under
/// one lock a round); a send adds to `rejected` only when it fails.
#[derive(Debug)]
struct ProducerMetrics {
    /// Records of the batches written, failed or not.
    records: Counter,
    /// Records of the batches whose write failed.
    failed: Counter,
    /// Sends refused before their record was queued.
    rejected: Counter,
    /// Rounds of the sender thread that wrote batches.
    rounds: Counter,
    /// `metrics.sample.window.ms` and `metrics.num.samples`.
    window: Window,
    /// The windowed stats, recorded once per round and read by snapshots.
    windows: Mutex<ProducerWindows>,
}

/// The producer's windowed stats (Kafka's sensors).
#[derive(Debug, Default)]
struct ProducerWindows {
    /// Records written (sum per batch).
    records: Sampled,
    /// Records failed or rejected (sum).
    errors: Sampled,
    /// `rejected` as last moved into `errors`.
    rejected_seen: u64,
    /// One measure per round: the records it wrote.
    rounds: Sampled,
    /// Bytes of each batch as encoded.
    batch_bytes: Sampled,
    /// Written / encoded size of each batch.
    compression: Sampled,
    /// Nanoseconds from a round's start to each of its batches' completion.
    latency_nanos: Sampled,
    /// Nanoseconds from a batch's creation to the round that writes it.
    queue_nanos: Sampled,
}

impl ProducerWindows {
    /// Moves the sends rejected since the last call into `errors`, as if rejected now (they
    /// are counted with an atomic add, without a lock).
    fn take_rejected(&mut self, w: Window, rejected: u64, now_ms: i64) {
        let new = rejected.saturating_sub(self.rejected_seen);
        if new > 0 {
            self.errors.record(w, new as f64, now_ms);
            self.rejected_seen = rejected;
        }
    }
}

/// What one round of the sender adds to the windows, summed before the lock is taken.
#[derive(Default)]
struct RoundMeasures {
    records: Agg,
    errors: Agg,
    batch_bytes: Agg,
    compression: Agg,
    latency_nanos: Agg,
    queue_nanos: Agg,
}

impl ProducerMetrics {
    fn new(config: &ProducerConfig) -> ProducerMetrics {
        ProducerMetrics {
            records: Counter::default(),
            failed: Counter::default(),
            rejected: Counter::default(),
            rounds: Counter::default(),
            window: Window::new(config.metrics_sample_window_ms, config.metrics_num_samples),
            windows: Mutex::new(ProducerWindows::default()),
        }
    }
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
    /// errors name the key). Starts the producer's sender loop, on a thread of the process's
    /// pool (an idle one when there is one).
    pub fn producer(&self, config: ProducerConfig) -> Result<Producer> {
        Producer::new(self.clone(), config)
    }
}

impl Producer {
    fn new(broker: Broker, config: ProducerConfig) -> Result<Producer> {
        config.validate()?;
        let idempotence = if config.idempotent() {
            Some(Idempotence::new(
                &broker.inner,
                config.transactional_id.as_deref(),
                config.transaction_timeout_ms,
            )?)
        } else {
            None
        };
        let to_usize = |v: u32| usize::try_from(v).unwrap_or(usize::MAX);
        let shared = Arc::new_cyclic(|me| Shared {
            id: NEXT_PRODUCER_ID.fetch_add(1, Ordering::Relaxed),
            me: Weak::clone(me),
            partitioner: config.build_partitioner(),
            partitioner_builtin: !matches!(config.partitioner, PartitionerChoice::Custom(_)),
            linger: Some(Duration::from_millis(
                u64::try_from(config.linger_ms).unwrap_or(0),
            ))
            .filter(|l| Instant::now().checked_add(*l).is_some()),
            batch_size: to_usize(config.batch_size),
            buffer_memory: u64::try_from(config.buffer_memory).unwrap_or(0),
            max_block: Duration::from_millis(u64::try_from(config.max_block_ms).unwrap_or(0)),
            max_request_size: to_usize(config.max_request_size),
            spares: Mutex::new(Spares::default()),
            topics: TopicTable::default(),
            acc: Mutex::new(Accumulator::default()),
            buffered_bytes: AtomicU64::new(0),
            space_waiting: AtomicUsize::new(0),
            work_seq: AtomicU64::new(0),
            parked: AtomicU8::new(AWAKE),
            work: Condvar::new(),
            space: Condvar::new(),
            done: Condvar::new(),
            closed: AtomicBool::new(false),
            metrics: ProducerMetrics::new(&config),
            idempotence,
            broker,
            config,
        });
        let for_thread = Arc::clone(&shared);
        let sender = sender_pool::run(move || {
            let _running = RunningSender::enter(for_thread.id);
            for_thread.run_sender();
        })
        .map_err(|e| {
            Error::io(
                "starting the producer's sender thread for",
                shared.broker.path(),
                e,
            )
        })?;
        Ok(Producer {
            handle: Arc::new(Handle {
                shared,
                sender: Mutex::new(Some(sender)),
            }),
        })
    }

    pub(super) fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    /// The configuration the producer was created with.
    pub fn config(&self) -> &ProducerConfig {
        &self.handle.shared.config
    }

    /// A snapshot of the producer's metrics: Kafka's `producer-metrics` group
    /// (`record-send-rate`, `record-error-total`, `batch-size-avg`, `request-latency-avg`, ...),
    /// tagged with the `client-id`. The [`metrics` module docs](crate::metrics) list every
    /// metric, its Kafka meaning and how embroker measures it (rates, averages and maxes over
    /// the last `metrics.num.samples` windows of `metrics.sample.window.ms`, as Kafka's).
    /// Counting costs the sending threads nothing per record: the sender thread counts once
    /// per batch and records its windows once per round.
    ///
    /// ```
    /// use embroker::{Broker, ProducerConfig, ProducerRecord, TopicConfig};
    ///
    /// let broker = Broker::temporary()?;
    /// broker.create_topic("events", TopicConfig::default())?;
    /// let producer = broker.producer(ProducerConfig::default().client_id("p1"))?;
    /// for i in 0..10 {
    ///     producer.send(ProducerRecord::new("events", format!("event {i}")))?;
    /// }
    /// producer.flush()?;
    /// let metrics = producer.metrics();
    /// assert_eq!(metrics.get("record-send-total"), Some(10.0));
    /// assert_eq!(metrics.get("record-error-total"), Some(0.0));
    /// assert!(metrics.get("batch-size-avg").unwrap() > 0.0);
    /// let rate = metrics.find("producer-metrics", "record-send-rate", &[("client-id", "p1")]);
    /// assert!(rate.unwrap() > 0.0);
    /// producer.close()?;
    /// # Ok::<(), embroker::Error>(())
    /// ```
    pub fn metrics(&self) -> Metrics {
        let shared = &self.handle.shared;
        let c = &shared.metrics;
        let w = c.window;
        let now = shared.broker.inner.now_ms();
        let tags = m::tags(&[("client-id", &shared.config.client_id)]);
        let sent = c.records.get();
        let errors = c.failed.get() + c.rejected.get();
        let rounds = c.rounds.get();
        let available = shared
            .buffer_memory
            .saturating_sub(shared.buffered_bytes.load(Ordering::Relaxed));
        let mut out = Metrics::default();
        let mut put = |name: &str, value: f64| out.push("producer-metrics", name, &tags, value);
        let mut ws = shared.metrics.windows.lock();
        ws.take_rejected(w, c.rejected.get(), now);
        put("record-send-total", sent as f64);
        put("record-send-rate", ws.records.rate(w, now));
        put("record-error-total", errors as f64);
        put("record-error-rate", ws.errors.rate(w, now));
        put("batch-size-avg", m::or_zero(ws.batch_bytes.avg(w, now)));
        put("batch-size-max", m::or_zero(ws.batch_bytes.max(w, now)));
        // 1 (no compression) without a batch in the window.
        put(
            "compression-rate-avg",
            ws.compression.avg(w, now).unwrap_or(1.0),
        );
        put("records-per-request-avg", m::or_zero(ws.rounds.avg(w, now)));
        put("request-total", rounds as f64);
        put("request-rate", ws.rounds.count_rate(w, now));
        let latency = &ws.latency_nanos;
        put(
            "request-latency-avg",
            m::or_zero(latency.avg(w, now).map(m::ms)),
        );
        put(
            "request-latency-max",
            m::or_zero(latency.max(w, now).map(m::ms)),
        );
        let queue = &ws.queue_nanos;
        put(
            "record-queue-time-avg",
            m::or_zero(queue.avg(w, now).map(m::ms)),
        );
        put(
            "record-queue-time-max",
            m::or_zero(queue.max(w, now).map(m::ms)),
        );
        drop(ws);
        put("buffer-total-bytes", shared.buffer_memory as f64);
        put("buffer-available-bytes", available as f64);
        out
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
    #[inline]
    pub fn send(&self, record: ProducerRecord) -> Result<SendFuture> {
        self.handle.shared.send(record, None).map_err(|e| *e)
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
            .map_err(|e| *e)
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
        let target = shared.start_flush(&mut acc);
        while !Shared::flushed(&acc, target) {
            shared.done.wait(&mut acc);
        }
        Ok(())
    }

    /// [`Producer::flush`] as a future, for async code on any executor: sends every record
    /// handed to this producer before the future's first poll, ignoring `linger.ms`, and
    /// completes once each is complete (its future set and its callback run).
    ///
    /// The sender thread wakes the future's task when batches complete: a pending flush takes
    /// no thread of its own. Dropping it stops waiting (the records are sent anyway).
    ///
    /// Errors: as [`Producer::flush`] ([`Error::IllegalState`] when polled from a send
    /// callback).
    ///
    /// ```
    /// # use embroker::{Broker, ProducerConfig, ProducerRecord, TopicConfig};
    /// let broker = Broker::temporary()?;
    /// broker.create_topic("events", TopicConfig::default())?;
    /// let producer = broker.producer(ProducerConfig::default().linger_ms(60_000))?;
    /// let sent = producer.send(ProducerRecord::new("events", "hello"))?;
    /// futures::executor::block_on(producer.flush_async())?;
    /// assert_eq!(sent.wait()?.offset, 0);
    /// # Ok::<(), embroker::Error>(())
    /// ```
    pub fn flush_async(&self) -> Flush<'_> {
        Flush {
            shared: &self.handle.shared,
            target: None,
            key: None,
        }
    }

    /// Refuses new records, sends everything pending (as `flush`), and waits for the sender
    /// loop to end. Every handle of this producer fails with [`Error::Closed`] afterwards; closing
    /// twice is a no-op. Called from a send callback, it starts the close and returns without
    /// waiting (the sender finishes once the callback returns).
    pub fn close(&self) -> Result<()> {
        self.handle.close()
    }
}

impl Handle {
    fn close(&self) -> Result<()> {
        let shared = &self.shared;
        {
            let mut acc = shared.acc.lock();
            acc.closed = true;
            shared.work_seq.fetch_add(1, Ordering::SeqCst);
        }
        shared.closed.store(true, Ordering::Release);
        shared.work.notify_all();
        shared.space.notify_all();
        if shared.on_sender_thread() {
            return Ok(());
        }
        let sender = self.sender.lock().take();
        match sender {
            Some(sender) if sender.wait() => Ok(()),
            Some(_) => Err(Error::IllegalState {
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
    pub(super) fn on_sender_thread(&self) -> bool {
        RUNNING_SENDER.with(|r| r.get()) == Some(self.id)
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
                topic: record.topic.to_string(),
                partition: p,
                partitions: count,
            }),
            // Ours answer 0 on one partition whatever the record, and nothing else sees what
            // they skip: the round-robin counter and the sticky partition only order records
            // across partitions, the random one draws from its own generator. The call (a
            // virtual call, its `Result`, the range check; the key's murmur2 for a keyed
            // record) was 96 of the 1,057 instructions of a keyless send in `callgrind`. A
            // partitioner of the caller's own is always asked: it may count, or refuse.
            None if count == 1 && self.partitioner_builtin => Ok(0),
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

    fn send(&self, record: ProducerRecord, callback: Option<Callback>) -> Sent {
        let sent = self.send_unmetered(record, callback);
        if sent.is_err() {
            // The only count a send makes, and only when it fails.
            self.metrics.rejected.add(1);
        }
        sent
    }

    /// [`Shared::send`] without counting a failure.
    fn send_unmetered(&self, record: ProducerRecord, callback: Option<Callback>) -> Sent {
        self.check_open()?;
        if let Some(txn) = self.idempotence.as_ref().and_then(|i| i.txn.as_ref()) {
            txn.check_send().map_err(Box::new)?;
        }
        if let Some(ts) = record.timestamp.filter(|ts| *ts < 0) {
            return Err(Box::new(Error::argument(
                "timestamp",
                format!(
                    "{ts} (a record for topic {:?}) is negative; timestamps are milliseconds \
                     since the Unix epoch, or None for the broker clock's time",
                    record.topic
                ),
            )));
        }
        let inner = &self.broker.inner;
        // Read before any lookup: a change racing with the lookup leaves it stale, not wrong.
        let version = inner.metadata_version();
        // The callback is moved at most once, into the batch; the record is not moved at all
        // (it is large, and copying it showed in profiles).
        let mut callback = callback;
        // The topic this thread sent to last through this producer, without a lock or a
        // reference count: the table's lock and `Arc` cost four atomic operations a record.
        let hit = LAST_TOPIC.try_with(|cell| {
            // A shared borrow, so that a partitioner that sends from inside `send` finds it too.
            let last = cell.try_borrow().ok()?;
            let last = last.as_ref()?;
            if last.producer != self.id
                || !last.entry.is_current_at(version)
                || !last.names(&record.topic)
            {
                return None;
            }
            Some(self.send_to(&last.entry, &record, callback.take()))
        });
        if let Ok(Some(result)) = hit {
            return result;
        }
        let entry = self.topics.get(inner, &record.topic, version)?;
        let _ = LAST_TOPIC.try_with(|cell| {
            if let Ok(mut last) = cell.try_borrow_mut() {
                *last = Some(LastTopic {
                    producer: self.id,
                    entry: Arc::clone(&entry),
                    literal: match &record.topic {
                        Cow::Borrowed(topic) => Some(topic),
                        Cow::Owned(_) => None,
                    },
                });
            }
        });
        self.send_to(&entry, &record, callback)
    }

    /// [`Shared::send`] once the topic is known.
    fn send_to(
        &self,
        topic: &TopicEntry,
        record: &ProducerRecord,
        callback: Option<Callback>,
    ) -> Sent {
        let partition = self.choose_partition(record, topic.partition_count())?;
        let lane = usize::try_from(partition)
            .ok()
            .and_then(|p| topic.lanes.get(p))
            .ok_or_else(|| internal("a partition without a lane"))?;
        let timestamp = record
            .timestamp
            .unwrap_or_else(|| self.broker.inner.now_ms());
        let key = record.key.as_deref();
        let value = record.value.as_deref();
        let too_large = |size: usize, limit: usize, limit_name: &'static str| {
            Box::new(Error::RecordTooLarge {
                topic: record.topic.to_string(),
                partition,
                size: size as u64,
                limit: limit as u64,
                limit_name,
            })
        };
        // Sized once: the record's key, value and headers (`fields`); where it lands adds its
        // deltas. `alone`: the record as the first of a batch (both deltas 0), the smallest
        // batch it fits in.
        let sized = codec::fields_size(key, value, &record.headers)
            .and_then(|f| Some((f, codec::placed_size(f, 0, 0)?.0)));
        let size = match sized {
            Some((fields, size)) => RecordSize {
                fields,
                alone: HEADER_BYTES + size,
            },
            None => {
                let fields = key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len);
                return Err(too_large(fields, self.max_request_size, "max.request.size"));
            }
        };
        let alone = size.alone;
        if alone > self.max_request_size {
            return Err(too_large(alone, self.max_request_size, "max.request.size"));
        }
        if alone as u64 > self.buffer_memory {
            let limit = usize::try_from(self.buffer_memory).unwrap_or(usize::MAX);
            return Err(too_large(alone, limit, "buffer.memory"));
        }
        match self.push(lane, timestamp, record, size, callback) {
            Ok(future) => Ok(future),
            Err(PushError::TooLarge(limit)) => Err(too_large(alone, limit, "max.message.bytes")),
            Err(PushError::Failed(e)) => Err(e),
        }
    }

    /// Encodes the record into its lane's open batch, closing that batch first if the record
    /// would take it past `batch.size` or its limit, and opening one if there is none.
    ///
    /// Room in `buffer.memory` is taken per batch, as Kafka's buffer pool does: a batch takes
    /// up to `batch.size` at once and its records use it up without touching the shared count
    /// (one atomic operation a record saved). If there is no room, the send waits for it
    /// without the lane lock (the sender needs that lock to free room).
    fn push(
        &self,
        lane: &Arc<Lane>,
        timestamp: i64,
        record: &ProducerRecord,
        size: RecordSize,
        callback: Option<Callback>,
    ) -> std::result::Result<SendFuture, PushError> {
        let RecordSize { fields, alone } = size;
        // As the first record of a new batch, the record adds its size without the header.
        let first = (alone - HEADER_BYTES) as u64;
        // Room this send took that no batch holds yet.
        let mut taken = 0u64;
        let mut guard = lane.batches.lock();
        let fits = loop {
            // Where the record lands in the open batch, if it fits there.
            let fits = guard.open.as_mut().and_then(|open| {
                let cap = open.limit_bytes.min(self.batch_size);
                let at = open.builder()?.place(timestamp, fields)?;
                (open.size_bytes() + at.size <= cap).then_some(at)
            });
            let lacking = match (fits, guard.open.as_ref()) {
                (Some(at), Some(open)) => open.lacking_bytes(at.size as u64),
                _ => first,
            };
            if lacking <= taken {
                break fits;
            }
            if let Some(got) = self.try_reserve(lacking - taken) {
                taken += got;
                break fits;
            }
            // `alone` is more than the record takes in any batch (a batch header outweighs
            // the growth of its offset and timestamp deltas), so one wait is enough.
            drop(guard);
            let more = alone as u64 - taken;
            if let Err(e) = self.reserve_blocking(&record.topic, lane.partition, more) {
                self.release(taken);
                return Err(PushError::from(e));
            }
            taken = alone as u64;
            guard = lane.batches.lock();
        };
        let batches = &mut *guard;
        let index = match self.push_locked(lane, batches, fits, timestamp, record, size) {
            Ok(index) => index,
            Err(e) => {
                self.release(taken);
                return Err(e);
            }
        };
        let Some(open) = batches.open.as_mut() else {
            self.release(taken);
            return Err(PushError::from(internal("no open batch")));
        };
        open.reserved_bytes += taken;
        if let Some(callback) = callback {
            open.add_callback(index, timestamp, callback);
        }
        let future = SendFuture::new(open.completion_ref(), index, lane.partition, timestamp);
        if open.size_bytes() >= self.batch_size {
            if let Some(full) = batches.open.take() {
                batches.ready.push_back(full);
                self.signal();
            }
        }
        Ok(future)
    }

    /// [`Shared::push`] under the lane lock: closes the open batch unless the record `fits`
    /// (where it lands in it), opens one if needed, and encodes the record. Returns its index
    /// in the batch.
    fn push_locked(
        &self,
        lane: &Arc<Lane>,
        batches: &mut LaneBatches,
        fits: Option<Placement>,
        timestamp: i64,
        record: &ProducerRecord,
        size: RecordSize,
    ) -> std::result::Result<i32, PushError> {
        let mut signal = false;
        if fits.is_none() {
            if let Some(full) = batches.open.take() {
                batches.ready.push_back(full);
                signal = true;
            }
        }
        if batches.open.is_none() {
            let batch = match self.open_batch(lane, size.alone) {
                Ok(batch) => batch,
                Err(e) => {
                    if signal {
                        self.signal();
                    }
                    return Err(e);
                }
            };
            self.register(lane, batches, batch)
                .map_err(PushError::from)?;
        }
        let Some(open) = batches.open.as_mut() else {
            return Err(PushError::from(internal("no open batch")));
        };
        let limit = open.limit_bytes;
        let before = open.size_bytes();
        let Some(builder) = open.builder() else {
            return Err(PushError::from(internal("batch finished")));
        };
        let first = builder.is_empty();
        let key = record.key.as_deref();
        let value = record.value.as_deref();
        let at = fits.or_else(|| builder.place(timestamp, size.fields));
        let pushed = at.and_then(|at| builder.push_at(at, timestamp, key, value, &record.headers));
        if pushed.is_none() {
            // Cannot happen: the size was checked against limits far below the format's.
            return Err(PushError::TooLarge(limit));
        }
        let index = builder.record_count() - 1;
        let added = (builder.size_bytes() - before) as u64;
        open.used_bytes += added;
        // The sender sleeps while every batch is empty: it must learn of this record, unless
        // the lane holds a closed batch it has not taken yet. Every closed batch was signalled
        // after it went in, and the sender takes a lane's closed batches and looks at its open
        // one under one hold of the lane lock: it will find this batch then. That saves a
        // signal, an atomic add on a line the sender reads, for every batch of a stream (its
        // previous batch, closed full by the record before, is still waiting).
        if signal || (first && batches.ready.is_empty()) {
            self.signal();
        }
        Ok(index)
    }

    /// Puts `batch` as the open batch of `lane` (whose lock is held), registered: a sequence
    /// number in `incomplete` and the lane on the sender's list. Fails if the producer is
    /// closed: a closed producer takes no new batch.
    fn register(
        &self,
        lane: &Arc<Lane>,
        batches: &mut LaneBatches,
        mut batch: ProducerBatch,
    ) -> Result<()> {
        let mut acc = self.acc.lock();
        if acc.closed {
            return Err(Error::Closed { what: "producer" });
        }
        batch.seq = acc.next_seq;
        acc.next_seq += 1;
        acc.incomplete.insert(batch.seq);
        if !batches.listed {
            batches.listed = true;
            acc.new_lanes.push(Arc::clone(lane));
        }
        batches.open = Some(batch);
        Ok(())
    }

    /// A new batch for `lane`, for a record of `alone` bytes (sequence number set by
    /// `register`).
    fn open_batch(
        &self,
        lane: &Lane,
        alone: usize,
    ) -> std::result::Result<ProducerBatch, PushError> {
        let log = lane.log().map_err(PushError::from)?;
        let topic_limit = usize::try_from(log.config().max_message_bytes).unwrap_or(0);
        let limit = topic_limit.min(self.max_request_size);
        if alone > limit {
            return Err(PushError::TooLarge(limit));
        }
        let (buffer, spare) = {
            let mut spares = self.spares.lock();
            (spares.buffers.pop(), spares.completions.pop())
        };
        let (completion, refs) = match spare {
            Some(spare) => {
                spare.completion.reuse(lane.topic, lane.partition);
                (spare.completion, spare.refs)
            }
            None => (
                Arc::new(Completion::told(
                    lane.topic,
                    lane.partition,
                    self.config.acks,
                    self.waits_for_growth()
                        .then(|| Weak::clone(&self.me) as Weak<dyn Hurry>),
                )),
                Vec::new(),
            ),
        };
        let capacity = self.batch_size.max(alone).min(limit);
        let buffer = buffer.unwrap_or_default();
        Ok(
            ProducerBatch::new(0, log, buffer, capacity, limit, completion, refs)
                .compressed_with(self.config.compression_codec()),
        )
    }

    /// Tells the sender there is work: a record in an empty batch or a full batch. Costs an
    /// atomic add, and a lock and a wake-up only if the sender is parked with no look due
    /// within [`SHORT_PARK_MAX`].
    fn signal(&self) {
        self.work_seq.fetch_add(1, Ordering::SeqCst);
        // Pairs with `park`: either the sender sees the new `work_seq` before it parks, or
        // this sees `parked` and wakes it (under the lock it parks with, so not too early).
        if self.parked.load(Ordering::SeqCst) == PARKED_LONG {
            let _acc = self.acc.lock();
            self.work.notify_one();
        }
    }

    /// True when the sender waits for an open batch to stop growing before it takes it (no
    /// linger, acks 0 or 1; see `drain_lane`): only then is a wait on a batch worth telling it
    /// of (under linger or acks=all its batches are due at a time a wait does not change).
    fn waits_for_growth(&self) -> bool {
        self.linger.is_some_and(|l| l.is_zero()) && self.config.acks != Acks::All
    }

    /// Tells the sender a batch is awaited (see [`Hurry`]): as `signal`, but also wakes it
    /// from a short timed park, since the batch is now due at once.
    fn hurry_sender(&self) {
        self.work_seq.fetch_add(1, Ordering::SeqCst);
        // Pairs with `park` as in `signal`.
        if self.parked.load(Ordering::SeqCst) != AWAKE {
            let _acc = self.acc.lock();
            self.work.notify_one();
        }
    }

    /// Counts `bytes` against `buffer.memory`, waiting up to `max.block.ms` for room.
    fn reserve_blocking(&self, topic: &str, partition: i32, bytes: u64) -> Result<()> {
        let mut acc = self.acc.lock();
        self.wait_for_space(&mut acc, topic, partition, bytes)
    }

    /// Takes room for at least `bytes` in `buffer.memory` if there is that much now: up to
    /// `batch.size` (what the batch will likely grow to) if there is that much, so that the
    /// records after this one use what was taken. Returns the room taken.
    fn try_reserve(&self, bytes: u64) -> Option<u64> {
        self.try_take(bytes, self.batch_size as u64)
    }

    /// Takes exactly `bytes` of room in `buffer.memory` if there is that much now.
    fn try_reserve_exact(&self, bytes: u64) -> bool {
        self.try_take(bytes, 0).is_some()
    }

    /// Takes `bytes` of room, or up to `want` if there is more, if there are `bytes` free.
    fn try_take(&self, bytes: u64, want: u64) -> Option<u64> {
        let mut current = self.buffered_bytes.load(Ordering::Relaxed);
        loop {
            let free = self.buffer_memory.saturating_sub(current);
            if bytes > free {
                return None;
            }
            let take = bytes.max(free.min(want));
            match self.buffered_bytes.compare_exchange_weak(
                current,
                current + take,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(take),
                Err(now) => current = now,
            }
        }
    }

    /// Gives back `bytes` of `buffer.memory`, waking senders that wait for room.
    fn release(&self, bytes: u64) {
        self.buffered_bytes.fetch_sub(bytes, Ordering::Relaxed);
        // Pairs with the fence in `wait_for_space`: either the waiter sees these bytes or
        // this sees the waiter.
        fence(Ordering::SeqCst);
        if self.space_waiting.load(Ordering::Relaxed) > 0 {
            // Under the lock, so that a waiter between its check and its wait is not missed.
            let _acc = self.acc.lock();
            self.space.notify_all();
        }
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
        if self.try_reserve_exact(bytes) {
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
        self.work_seq.fetch_add(1, Ordering::SeqCst);
        self.space_waiting.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        // Nothing lingers while someone waits for space.
        self.work.notify_one();
        let result = loop {
            if acc.closed {
                break Err(Error::Closed { what: "producer" });
            }
            if self.try_reserve_exact(bytes) {
                break Ok(());
            }
            let timed_out = match deadline {
                Some(d) => self.space.wait_until(acc, d).timed_out(),
                None => {
                    self.space.wait(acc);
                    false
                }
            };
            if timed_out && !self.try_reserve_exact(bytes) {
                break Err(timeout(self.max_block));
            }
            if timed_out {
                break Ok(());
            }
        };
        acc.space_waiters -= 1;
        self.space_waiting.fetch_sub(1, Ordering::Relaxed);
        result
    }

    /// Asks the sender to send every batch opened so far without lingering; returns the
    /// sequence number below which they all are (see [`Shared::flushed`]).
    fn start_flush(&self, acc: &mut Accumulator) -> u64 {
        let target = acc.next_seq;
        acc.flush_below = acc.flush_below.max(target);
        self.work_seq.fetch_add(1, Ordering::SeqCst);
        self.work.notify_one();
        target
    }

    /// Takes every batch the sender has not taken yet out of its lane and fails it with
    /// `error` (Kafka's `RecordAccumulator.abortUndrainedBatches`, used by
    /// `abort_transaction`): callbacks run on the calling thread, futures get `error`.
    /// Batches the sender already took are left to it. Returns the records dropped.
    pub(super) fn abort_undrained(&self, error: &Error) -> u64 {
        let mut taken = Vec::new();
        for lane in self.topics.lanes() {
            let mut batches = lane.batches.lock();
            taken.extend(batches.ready.drain(..));
            taken.extend(batches.open.take());
        }
        if taken.is_empty() {
            return 0;
        }
        let mut records = 0;
        let mut bytes = 0;
        let mut seqs = Vec::with_capacity(taken.len());
        for batch in taken {
            records += u64::try_from(batch.record_count()).unwrap_or(0);
            bytes += batch.reserved_bytes;
            seqs.push(batch.seq);
            drop(batch.complete(Err(error.clone())));
        }
        self.metrics.failed.add(records);
        self.metrics.records.add(records);
        let mut acc = self.acc.lock();
        for seq in seqs {
            acc.incomplete.remove(&seq);
        }
        self.buffered_bytes.fetch_sub(bytes, Ordering::AcqRel);
        self.space.notify_all();
        self.done.notify_all();
        let wakers = std::mem::take(&mut acc.flush_wakers);
        drop(acc);
        wakers.into_iter().for_each(|(_, waker)| waker.wake());
        records
    }

    /// A transactional producer's round is appended and about to be fsynced: notes where the
    /// transaction's data ends in each partition and any failed append, and wakes a
    /// `commit_transaction` waiting in [`Shared::flush_until_appended`] once every batch of
    /// its flush is appended (so its decision's fsync runs alongside this round's).
    fn transaction_round_appended(
        &self,
        appended: &[(ProducerBatch, Result<AppendInfo>, usize, u64)],
        ends: &[(Arc<PartitionLog>, i64)],
    ) {
        let Some(idem) = &self.idempotence else {
            return;
        };
        let failed = appended.iter().find_map(|(_, r, ..)| r.as_ref().err());
        let target = idem.round_appended(ends, failed);
        if target == 0 {
            return;
        }
        let acc = self.acc.lock();
        let all = acc
            .incomplete
            .range(..target)
            .all(|seq| appended.iter().any(|(b, ..)| b.seq == *seq));
        if all {
            idem.set_appended(target);
            self.done.notify_all();
        }
    }

    /// Starts a flush (as [`Producer::flush`]) for `commit_transaction` and waits until every
    /// batch is complete (`Ok(true)`) or every batch is appended and being fsynced by the
    /// sender (`Ok(false)`, see [`Shared::transaction_round_appended`]).
    pub(super) fn flush_until_appended(&self) -> Result<bool> {
        let Some(idem) = &self.idempotence else {
            return Ok(true);
        };
        if self.on_sender_thread() {
            return Err(Error::IllegalState {
                reason: "commit_transaction called from a send callback, which runs on the \
                         sender thread that it waits for"
                    .into(),
            });
        }
        let mut acc = self.acc.lock();
        let target = self.start_flush(&mut acc);
        idem.wait_appended(target);
        let complete = loop {
            if Shared::flushed(&acc, target) {
                break true;
            }
            if idem.is_appended(target) {
                break false;
            }
            self.done.wait(&mut acc);
        };
        idem.wait_appended(0);
        Ok(complete)
    }

    /// True when every batch below `target` is complete.
    fn flushed(acc: &Accumulator, target: u64) -> bool {
        acc.incomplete.first().is_none_or(|&seq| seq >= target)
    }

    /// The sender thread: take due batches, write them, complete them; until closed and idle.
    fn run_sender(&self) {
        let mut batches = Vec::new();
        // A lane's closed batches, swapped out of it (see `drain_lane`).
        let mut taken = VecDeque::new();
        let mut finished: Vec<(u64, u64)> = Vec::new();
        // Lanes holding batches (see `LaneBatches::listed`); only this thread touches it.
        let mut lanes: Vec<Listed> = Vec::new();
        // The idempotent producer's sequences (only this thread stamps batches).
        let mut sequences = Sequences::default();
        loop {
            let mut acc = self.acc.lock();
            // Account for the previous round and take the next under one lock.
            if !finished.is_empty() {
                let mut bytes = 0;
                for (seq, b) in finished.drain(..) {
                    acc.incomplete.remove(&seq);
                    bytes += b;
                }
                self.buffered_bytes.fetch_sub(bytes, Ordering::AcqRel);
                self.space.notify_all();
                self.done.notify_all();
                if !acc.flush_wakers.is_empty() {
                    // Woken outside the lock: a waker may poll its future at once.
                    let wakers = std::mem::take(&mut acc.flush_wakers);
                    MutexGuard::unlocked(&mut acc, || {
                        wakers.into_iter().for_each(|(_, waker)| waker.wake());
                    });
                }
            }
            loop {
                lanes.extend(
                    acc.new_lanes
                        .drain(..)
                        .map(|lane| Listed { lane, seen: None }),
                );
                let seen = self.work_seq.load(Ordering::SeqCst);
                let drain = Drain {
                    urgent: acc.closed || acc.space_waiters > 0,
                    flush_below: acc.flush_below,
                    now: Instant::now(),
                };
                let (next_due, spin) = MutexGuard::unlocked(&mut acc, || {
                    let mut next_due: Option<Instant> = None;
                    let mut spin = false;
                    lanes.retain_mut(|listed| {
                        let look = self.drain_lane(&drain, listed, &mut taken, &mut batches);
                        if let Some(d) = look.again_at {
                            next_due = Some(next_due.map_or(d, |n| n.min(d)));
                        }
                        spin |= look.spin;
                        look.holds
                    });
                    (next_due, spin)
                });
                if !batches.is_empty() {
                    break;
                }
                if self.work_seq.load(Ordering::SeqCst) != seen || !acc.new_lanes.is_empty() {
                    // Something happened while the lanes were visited.
                    continue;
                }
                if acc.closed && acc.is_idle() {
                    return;
                }
                if let Some(until) = next_due.filter(|_| spin) {
                    // A lone record is looked at again within microseconds: not worth a
                    // timed park, which sleeps for tens of them (timer slack).
                    MutexGuard::unlocked(&mut acc, || {
                        while self.work_seq.load(Ordering::SeqCst) == seen && Instant::now() < until
                        {
                            std::thread::yield_now();
                        }
                    });
                    continue;
                }
                // Park, unless a signal came after `seen` (see `signal`).
                let short = next_due.is_some_and(|due| {
                    due.saturating_duration_since(Instant::now()) <= SHORT_PARK_MAX
                });
                let state = if short { PARKED_SHORT } else { PARKED_LONG };
                self.parked.store(state, Ordering::SeqCst);
                if self.work_seq.load(Ordering::SeqCst) == seen {
                    match next_due {
                        Some(due) => {
                            self.work.wait_until(&mut acc, due);
                        }
                        None => self.work.wait(&mut acc),
                    }
                }
                self.parked.store(AWAKE, Ordering::SeqCst);
            }
            drop(acc);
            finished = self.write(&mut batches, &mut sequences);
        }
    }

    /// Moves the batches of `listed`'s lane the sender should write now into `out`: its
    /// closed ones, then its open one if due. Returns whether the lane still holds a batch,
    /// and when to look at its open batch again.
    ///
    /// Without linger (and with `acks` 0 or 1), an open batch is due once records stop
    /// arriving into it: the sender takes it when it has not grown since the sender last
    /// looked, [`GROWTH_WAIT`] earlier, or after [`GROWTH_LOOKS_MAX`] looks. This is Kafka's "records that arrive in between
    /// request transmissions form a batch" with this sender's transmission time (a write
    /// takes microseconds): a lone record waits one look, a stream fills batches. A batch
    /// a thread or task waits on is taken at once ([`Completion::awaited`]). Taking a
    /// batch as soon as it had a record made batches of a few records, each costing the
    /// sending thread a new batch and the cache misses of handing one over.
    ///
    /// The lane's lock is held only to swap its closed batches with `taken` (an empty queue)
    /// and to look at its open batch: the batches are moved out after it is released. Moving
    /// them under the lock, their cache lines still with the sending thread, held it for a
    /// microsecond, and a sending thread that then found it taken waited or parked.
    fn drain_lane(
        &self,
        drain: &Drain,
        listed: &mut Listed,
        taken: &mut VecDeque<ProducerBatch>,
        out: &mut Vec<ProducerBatch>,
    ) -> Look {
        debug_assert!(taken.is_empty());
        let mut batches = lock_politely(&listed.lane.batches);
        std::mem::swap(&mut batches.ready, taken);
        let mut due_at = None;
        let mut spin = false;
        if let Some(open) = &batches.open {
            let forced = drain.urgent || open.seq < drain.flush_below;
            let take = match self.linger {
                _ if forced => true,
                // Under acks=all records gather while the sender fsyncs (group commit);
                // waiting for a batch to stop growing would only add to their latency.
                Some(l) if l.is_zero() && self.config.acks == Acks::All => true,
                Some(l) if !l.is_zero() => match open.created.checked_add(l) {
                    Some(due) if due > drain.now => {
                        due_at = Some(due);
                        false
                    }
                    Some(_) => true,
                    None => false,
                },
                None => false,
                // No linger, and someone waits on the batch (a blocked `send().wait()`, an
                // awaited future): take it now, as Kafka's `linger.ms=0` sends at once. The
                // waiter's thread cannot add to it, and waiting for growth cost its caller
                // the sender's growth wait (yields, on a busy machine a time slice).
                Some(_) if open.completion.awaited() => true,
                // No linger: take it once it stops growing.
                Some(_) => {
                    let now = (open.seq, open.record_count());
                    match listed.seen {
                        Some((seq, count, _)) if (seq, count) == now => true,
                        Some((seq, _, looks)) if seq == now.0 && looks >= GROWTH_LOOKS_MAX => true,
                        Some((seq, _, looks)) if seq == now.0 => {
                            listed.seen = Some((now.0, now.1, looks + 1));
                            due_at = drain.now.checked_add(GROWTH_WAIT);
                            false
                        }
                        _ => {
                            listed.seen = Some((now.0, now.1, 1));
                            due_at = drain.now.checked_add(GROWTH_WAIT);
                            // One record: likely a lone send, worth a quick second look. More:
                            // a stream, which fills the batch while the sender sleeps.
                            spin = now.1 == 1;
                            false
                        }
                    }
                }
            };
            if take {
                taken.extend(batches.open.take());
            }
        }
        let holds = !batches.is_empty();
        if !holds {
            batches.listed = false;
        }
        drop(batches);
        out.extend(taken.drain(..));
        Look {
            holds,
            again_at: due_at,
            spin,
        }
    }

    /// Appends a round's batches in order: each run of consecutive batches for one partition
    /// with one [`PartitionLog::append_batches`] (one write for the run, as a raw file written
    /// in large pieces; see docs/ARCHITECTURE.md, "Fourteenth session: the send path"). An
    /// idempotent producer's batches are stamped with consecutive sequences first; a batch's
    /// sequence counts as used only once the log has it. Returns one outcome per batch, in
    /// order.
    fn append_round(
        &self,
        batches: &mut [ProducerBatch],
        stamp: Option<(i64, i16)>,
        transactional: bool,
        refused: Option<&Error>,
        sequences: &mut Sequences,
    ) -> Vec<RoundAppend> {
        let mut out: Vec<RoundAppend> = batches
            .iter()
            .map(|b| RoundAppend {
                result: None,
                buffer: None,
                written: 0,
                records: b.records_when_full(self.batch_size),
                record_count: b.record_count(),
                encoded: b.size_bytes() as u64,
            })
            .collect();
        if let Some(e) = refused {
            for o in &mut out {
                o.result = Some(Err(e.clone()));
            }
            return out;
        }
        let mut start = 0;
        while start < batches.len() {
            let log = Arc::clone(&batches[start].log);
            let end = start
                + batches[start..]
                    .iter()
                    .take_while(|b| Arc::ptr_eq(&b.log, &log))
                    .count();
            // The next sequence to stamp in this partition.
            let mut next = stamp.map(|(id, epoch)| sequences.fields(id, epoch, &log));
            // (index in the round, the finished batch, the sequence fields it carries)
            let mut finished = Vec::with_capacity(end - start);
            for (i, batch) in batches.iter_mut().enumerate().take(end).skip(start) {
                let fields = next;
                match batch.finish(fields.map(|f| (f, transactional))) {
                    Ok(f) => {
                        if let Some(n) = &mut next {
                            n.base_sequence =
                                idempotence::increment(n.base_sequence, out[i].record_count);
                        }
                        finished.push((i, f, fields));
                    }
                    Err((e, buffer)) => {
                        out[i].result = Some(Err(e));
                        out[i].buffer = buffer;
                    }
                }
            }
            let (appended, result) = {
                let mut parts: Vec<&mut [u8]> =
                    finished.iter_mut().map(|(_, f, _)| f.written()).collect();
                log.append_batches(&mut parts)
            };
            for (k, (i, mut f, fields)) in finished.into_iter().enumerate() {
                let o = &mut out[i];
                o.written = f.written().len();
                o.result = Some(match &result {
                    Ok(info) if info.duplicate => Ok(*info),
                    Err(e) if k >= appended => Err(e.clone()),
                    _ => codec::peek_header(f.written())
                        .map(|h| AppendInfo {
                            base_offset: h.base_offset,
                            last_offset: h.last_offset(),
                            log_append_time: (h.timestamp_type() == TimestampType::LogAppendTime)
                                .then_some(h.max_timestamp),
                            duplicate: false,
                        })
                        .map_err(|e| Error::IllegalState {
                            reason: format!("an appended producer batch does not decode: {e}"),
                        }),
                });
                if let (Some(Ok(_)), Some(fields)) = (&o.result, fields) {
                    sequences.appended(&log, fields, o.record_count);
                }
                o.buffer = Some(f.plain);
            }
            start = end;
        }
        out
    }

    /// Records one round's measures in the windows, under their lock (once a round).
    fn record_round(&self, r: &RoundMeasures) {
        let metrics = &self.metrics;
        let w = metrics.window;
        let now = self.broker.inner.now_ms();
        let mut ws = metrics.windows.lock();
        ws.take_rejected(w, metrics.rejected.get(), now);
        ws.records.record_agg(w, r.records, now);
        ws.errors.record_agg(w, r.errors, now);
        ws.rounds.record(w, r.records.sum(), now);
        ws.batch_bytes.record_agg(w, r.batch_bytes, now);
        ws.compression.record_agg(w, r.compression, now);
        ws.latency_nanos.record_agg(w, r.latency_nanos, now);
        ws.queue_nanos.record_agg(w, r.queue_nanos, now);
    }

    /// Appends `batches` in order and completes them; returns each one's sequence number and
    /// the room it held in `buffer.memory`. Under `acks=all`, everything is appended first and
    /// then each partition is fsynced once (`sync_to`, which also shares fsyncs with other
    /// producers), so one fsync covers every record that arrived while the previous one ran:
    /// group commit.
    ///
    /// An idempotent producer's batches are stamped with its producer id, epoch and each
    /// partition's next sequence as they are appended (see `idempotence`); a transactional
    /// producer first registers the round's new partitions with the transaction coordinator,
    /// and fails the round's batches without appending them if that fails.
    fn write(
        &self,
        batches: &mut Vec<ProducerBatch>,
        sequences: &mut Sequences,
    ) -> Vec<(u64, u64)> {
        let round = Instant::now();
        let metrics = &self.metrics;
        metrics.rounds.add(1);
        let mut measures = RoundMeasures::default();
        // The batches are out of their lanes and cannot grow: give back the room they took
        // ahead and did not use.
        let mut spare = 0;
        for batch in batches.iter_mut() {
            spare += batch.reserved_bytes - batch.used_bytes.min(batch.reserved_bytes);
            batch.reserved_bytes = batch.used_bytes.min(batch.reserved_bytes);
        }
        if spare > 0 {
            self.release(spare);
        }
        let mut finished = Vec::with_capacity(batches.len());
        let mut appended = Vec::with_capacity(batches.len());
        let mut ends: Vec<(Arc<PartitionLog>, i64)> = Vec::new();
        let mut spares = Spares::default();
        // Idempotence: the ids to stamp, and a transaction's registration of new partitions.
        let (stamp, refused) = match &self.idempotence {
            None => (None, None),
            Some(idem) => {
                let registered = idem.register(&self.broker.inner, batches.iter().map(|b| &b.log));
                (idem.current(), registered.err())
            }
        };
        let transactional = self.idempotence.as_ref().is_some_and(|i| i.txn.is_some());
        let outcomes =
            self.append_round(batches, stamp, transactional, refused.as_ref(), sequences);
        for (batch, outcome) in batches.drain(..).zip(outcomes) {
            let RoundAppend {
                result,
                buffer,
                written,
                records,
                record_count,
                encoded,
            } = outcome;
            let result = result.unwrap_or_else(|| Err(internal("a producer batch not appended")));
            let count = u64::try_from(record_count).unwrap_or(0);
            metrics.records.add(count);
            measures.records.add(count as f64);
            measures.batch_bytes.add(encoded as f64);
            let queued = nanos(round.saturating_duration_since(batch.created));
            measures.queue_nanos.add(queued as f64);
            if written > 0 && encoded > 0 {
                measures.compression.add(written as f64 / encoded as f64);
            }
            // A buffer grown past `batch.size` by a large record is not worth keeping.
            spares
                .buffers
                .extend(buffer.filter(|b| b.capacity() <= self.batch_size));
            if self.config.acks != Acks::All {
                if result.is_err() {
                    metrics.failed.add(count);
                    measures.errors.add(count as f64);
                }
                finished.push((batch.seq, batch.reserved_bytes));
                spares.keep_completion(batch.complete(result), records);
                let latency = nanos(round.elapsed());
                measures.latency_nanos.add(latency as f64);
                continue;
            }
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
            appended.push((batch, result, records, count));
        }
        if transactional {
            self.transaction_round_appended(&appended, &ends);
        }
        let synced: Vec<(Arc<PartitionLog>, Result<()>)> = ends
            .into_iter()
            .map(|(log, end)| {
                let result = log.sync_to(end);
                (log, result)
            })
            .collect();
        for (batch, result, records, count) in appended {
            let result = result.and_then(|info| {
                match synced.iter().find(|(log, _)| Arc::ptr_eq(log, &batch.log)) {
                    Some((_, Err(e))) => Err(e.clone()),
                    _ => Ok(info),
                }
            });
            if let Err(e) = &result {
                metrics.failed.add(count);
                measures.errors.add(count as f64);
                if let Some(idem) = &self.idempotence {
                    idem.batch_failed(e);
                }
            }
            finished.push((batch.seq, batch.reserved_bytes));
            spares.keep_completion(batch.complete(result), records);
            measures.latency_nanos.add(nanos(round.elapsed()) as f64);
        }
        self.record_round(&measures);
        if !spares.buffers.is_empty() || !spares.completions.is_empty() {
            let unused = self.spares.lock().take_from(spares);
            // Freed here, not under the lock the sending threads take for new batches.
            drop(unused);
        }
        finished
    }
}

/// What [`Shared::append_round`] did with one batch, and the batch's figures taken before.
struct RoundAppend {
    /// `None` only if the batch was somehow left out (never: every batch gets an outcome).
    result: Option<Result<AppendInfo>>,
    /// The batch's buffer, for reuse.
    buffer: Option<Vec<u8>>,
    /// Bytes written (compressed, if it was; 0 if compression failed).
    written: usize,
    /// Records a full batch like it likely holds (`ProducerBatch::records_when_full`).
    records: usize,
    record_count: i32,
    /// Bytes of the batch as encoded.
    encoded: u64,
}

/// Written batches' buffers and completions no future holds (see [`SPARES_MAX`]).
#[derive(Default)]
struct Spares {
    buffers: Vec<Vec<u8>>,
    completions: Vec<SpareCompletion>,
}

/// A completion no future holds, with references to it made ahead for the futures of its next
/// batch.
struct SpareCompletion {
    completion: Arc<Completion>,
    refs: Vec<Arc<Completion>>,
}

impl Hurry for Shared {
    fn hurry(&self) {
        self.hurry_sender();
    }
}

impl Spares {
    /// Keeps `completion` if nothing else holds it (no future of its batch is left), with
    /// references made ahead for `records` and a few more: what the next batch likely holds
    /// (more take a reference each as they are sent). `refs` are those its batch did not use;
    /// they are kept and topped up. The references are made here, on the sender thread, which
    /// has time to spare; each costs the sending thread an atomic operation otherwise (~10 ns
    /// on the project's VM, 7% of a send).
    ///
    /// Keeping the unused ones instead of dropping them and making all anew saves the sender
    /// a few references a batch; scratch runs measured a send ~4 ns faster with it (see
    /// ARCHITECTURE, sixth session), for a reason not established. Sends that find no
    /// reference made ahead are those of batches whose completion is new (opened while the
    /// sender was behind), not of kept ones running out.
    fn keep_completion(
        &mut self,
        (completion, mut refs): (Arc<Completion>, Vec<Arc<Completion>>),
        records: usize,
    ) {
        // Only futures hold the completion besides `refs` and `completion` itself, and a
        // future cannot be cloned: a count of exactly these cannot grow behind this check.
        if self.completions.len() >= SPARES_MAX || Arc::strong_count(&completion) != refs.len() + 1
        {
            return;
        }
        // The last future's drop released its count; what it did before is seen from here on.
        fence(Ordering::Acquire);
        let ahead = (records + records / 8 + 1).min(REFS_AHEAD_MAX);
        let more = ahead.saturating_sub(refs.len());
        refs.extend(std::iter::repeat_with(|| Arc::clone(&completion)).take(more));
        self.completions.push(SpareCompletion { completion, refs });
    }

    /// Keeps what `more` holds, up to [`SPARES_MAX`] of each; returns the rest, to be freed.
    fn take_from(&mut self, mut more: Spares) -> Spares {
        let room = SPARES_MAX.saturating_sub(self.buffers.len());
        let keep = more.buffers.len().min(room);
        self.buffers.extend(more.buffers.drain(..keep));
        let room = SPARES_MAX.saturating_sub(self.completions.len());
        let keep = more.completions.len().min(room);
        self.completions.extend(more.completions.drain(..keep));
        more
    }
}

/// Locks `mutex` without parking at first: the sender uses it for lanes, which a sending
/// thread holds for a record at a time and takes again at once. Parked on a lane, the sender
/// made every release of it a wake-up (a futex call on the sending thread) and then lost the
/// race for the lock anyway; spinning briefly costs neither. Parks after a while, so a
/// descheduled holder is waited for without burning the core.
fn lock_politely<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    for i in 0..LANE_LOCK_TRIES {
        if let Some(guard) = mutex.try_lock() {
            return guard;
        }
        if i < LANE_LOCK_TRIES / 2 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
    mutex.lock()
}

/// What `drain_lane` found in a lane.
struct Look {
    /// The lane still holds a batch.
    holds: bool,
    /// When to look at the lane's open batch again.
    again_at: Option<Instant>,
    /// The second look is so soon that waiting for it awake is cheaper than a timed park.
    spin: bool,
}

/// A lane on the sender's list.
struct Listed {
    lane: Arc<Lane>,
    /// The open batch (sequence number, records) when the sender last looked, and how many
    /// times it looked at that batch (see `drain_lane`).
    seen: Option<(u64, i32, u32)>,
}

/// A record's size, computed once per send.
#[derive(Clone, Copy)]
struct RecordSize {
    /// Its key, value and headers (`codec::fields_size`); its place in a batch adds its deltas.
    fields: usize,
    /// As the first record of a batch, header included: the smallest batch it fits in.
    alone: usize,
}

/// Why a record could not be pushed into a batch.
enum PushError {
    /// Over this limit (`max.message.bytes`, or `max.request.size` if lower).
    TooLarge(usize),
    Failed(Box<Error>),
}

/// What a send returns inside the producer: the error boxed, so that the result is the
/// future's 24 bytes, not `Error`'s 72. It is moved through four calls per record; at 72
/// bytes the moves were 15 of a send's ~920 instructions (`callgrind`).
type Sent = std::result::Result<SendFuture, Box<Error>>;

impl From<Error> for PushError {
    fn from(e: Error) -> Self {
        PushError::Failed(Box::new(e))
    }
}

/// The future of [`Producer::flush_async`]: completes once every record handed to the
/// producer before its first poll is complete.
#[must_use = "futures do nothing unless awaited or polled"]
pub struct Flush<'a> {
    shared: &'a Shared,
    /// The sequence number the flush waits for, set at the first poll.
    target: Option<u64>,
    /// The key of this future's waker in `Accumulator::flush_wakers`, while one is there.
    key: Option<u64>,
}

impl fmt::Debug for Flush<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flush")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Future for Flush<'_> {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        let shared = this.shared;
        if shared.on_sender_thread() {
            return Poll::Ready(Err(Error::IllegalState {
                reason: "Producer::flush_async polled from a send callback, which runs on the \
                         sender thread that the flush waits for"
                    .into(),
            }));
        }
        let mut acc = shared.acc.lock();
        let target = match this.target {
            Some(t) => t,
            None => *this.target.insert(shared.start_flush(&mut acc)),
        };
        if Shared::flushed(&acc, target) {
            if let Some(key) = this.key.take() {
                acc.flush_wakers.retain(|(k, _)| *k != key);
            }
            return Poll::Ready(Ok(()));
        }
        // Checked and registered under the lock the sender completes batches under: a
        // completion cannot fall between the two.
        match this
            .key
            .and_then(|key| acc.flush_wakers.iter_mut().find(|(k, _)| *k == key))
        {
            Some((_, waker)) => waker.clone_from(cx.waker()),
            None => {
                let key = acc.next_flush_waker;
                acc.next_flush_waker += 1;
                acc.flush_wakers.push((key, cx.waker().clone()));
                this.key = Some(key);
            }
        }
        Poll::Pending
    }
}

impl Drop for Flush<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.shared
                .acc
                .lock()
                .flush_wakers
                .retain(|(k, _)| *k != key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion() -> Arc<Completion> {
        Arc::new(Completion::new("t", 0, Acks::Leader))
    }

    /// A completion and `n` references to it, as a batch returns them unused.
    fn with_unused(n: usize) -> (Arc<Completion>, Vec<Arc<Completion>>) {
        let c = completion();
        let unused = (0..n).map(|_| Arc::clone(&c)).collect();
        (c, unused)
    }

    #[test]
    fn a_spare_completion_keeps_its_unused_references_and_is_topped_up() {
        let mut spares = Spares::default();
        spares.keep_completion(with_unused(5), 16);
        let [spare] = spares.completions.as_slice() else {
            panic!("{} spares kept, not one", spares.completions.len());
        };
        // 16 records, an eighth more, and one.
        assert_eq!(spare.refs.len(), 16 + 2 + 1);
        assert_eq!(Arc::strong_count(&spare.completion), spare.refs.len() + 1);
        assert!(spare.refs.iter().all(|r| Arc::ptr_eq(r, &spare.completion)));
    }

    #[test]
    fn more_unused_references_than_the_next_batch_wants_are_kept_as_they_are() {
        let mut spares = Spares::default();
        spares.keep_completion(with_unused(40), 8);
        assert_eq!(spares.completions[0].refs.len(), 40);
    }

    #[test]
    fn a_completion_a_future_still_holds_is_not_kept() {
        let mut spares = Spares::default();
        let (c, unused) = with_unused(1);
        let future = Arc::clone(&c);
        spares.keep_completion((c, unused), 4);
        assert!(spares.completions.is_empty());
        // Dropped with the references made for it: only the future holds it now.
        assert_eq!(Arc::strong_count(&future), 1);
    }

    #[test]
    fn a_send_result_is_the_size_of_its_future() {
        assert_eq!(
            std::mem::size_of::<Sent>(),
            std::mem::size_of::<SendFuture>()
        );
    }

    #[test]
    fn no_more_than_spares_max_completions_are_kept() {
        let mut spares = Spares::default();
        for _ in 0..SPARES_MAX + 3 {
            spares.keep_completion((completion(), Vec::new()), 1);
        }
        assert_eq!(spares.completions.len(), SPARES_MAX);
    }

    #[test]
    fn a_batch_of_small_records_wants_references_for_a_full_batch() {
        let mut spares = Spares::default();
        spares.keep_completion((completion(), Vec::new()), 10_000);
        assert_eq!(spares.completions[0].refs.len(), REFS_AHEAD_MAX);
    }
}
