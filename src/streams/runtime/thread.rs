//! A stream thread (Kafka's `StreamThread`): one group consumer and one producer; polls,
//! runs each record through its partition's task, sends what the tasks wrote (sink records
//! and changelog records), and commits every `commit.interval.ms`.
//!
//! Owns: the poll loop, the thread's tasks (in a thread-local slot, see below), the rebalance
//! listener (which commits before partitions move and queues the assignment changes for the
//! loop), the commit (Kafka's `TaskManager.commit`: flush the tasks' record caches and send
//! what they forward and log, then at-least-once flushes the producer and commits the offsets
//! processed; `exactly_once_v2` sends the offsets to the producer's transaction, which then
//! commits), and the thread's failure path.
//!
//! The tasks are not `Send` (their nodes and stores hold `Rc`s and user processors), but the
//! rebalance listener must be, and it must flush them before it commits. The listener runs
//! synchronously inside `poll` on this thread, so the tasks live in a thread-local slot that
//! the loop borrows only between polls and the listener borrows inside one: the listener
//! reaches the tasks without holding them, and no other thread can.
//!
//! Invariants: an offset is committed only after every record its processing wrote (sink and
//! changelog, the record caches flushed first) was written, or in the same transaction; tasks
//! live and die on this thread; after a failure nothing more is committed (the listener's
//! commit is disabled first), so a restart reprocesses from the last commit; the thread
//! answers interactive queries only between batches, so a query never sees half a record's
//! effects.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::state_listener::{State, StateMachine};
use super::task_manager::{Output, StreamTask};
use crate::error::{Error, Result};
use crate::streams::config::{ProcessingGuarantee, StreamsConfig};
use crate::streams::topology::Topology;
use crate::{
    AssignmentStrategy, Broker, Consumer, ConsumerConfig, IsolationLevel, OffsetAndMetadata,
    OffsetReset, Producer, ProducerConfig, ProducerRecord, RebalanceListener, TopicPartition,
};

/// A question for the thread's tasks, answered between batches (interactive queries).
pub(crate) type Query = Box<dyn FnOnce(&BTreeMap<i32, StreamTask>) + Send>;

/// What every thread of an instance shares.
pub(crate) struct Context {
    pub(crate) topology: Arc<Topology>,
    pub(crate) config: StreamsConfig,
    pub(crate) broker: Broker,
    pub(crate) client_id: String,
    pub(crate) states: Arc<StateMachine>,
    pub(crate) shutdown: Arc<AtomicBool>,
    /// The topics to subscribe to, internal ones by their full name.
    pub(crate) topics: Vec<String>,
    pub(crate) handler: Mutex<Option<super::ExceptionHandler>>,
    pub(crate) counters: super::Counters,
}

/// A change of assignment, queued by the listener for the loop.
enum Event {
    Revoked(Vec<TopicPartition>),
    Assigned(Vec<TopicPartition>),
    Lost(Vec<TopicPartition>),
}

/// Shared by the loop and the listener (which runs inside `poll`).
#[derive(Default)]
struct Pending {
    events: Vec<Event>,
    /// Offsets processed and not committed yet.
    offsets: BTreeMap<TopicPartition, OffsetAndMetadata>,
    /// Processing failed: commit nothing more.
    failed: bool,
    /// A transaction is open (exactly-once).
    in_txn: bool,
    /// The first error a send reported.
    send_error: Option<Error>,
}

fn lock(pending: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    pending.lock().unwrap_or_else(|e| e.into_inner())
}

/// Commit what was processed (Kafka's `TaskManager.commit`): flush every task's record
/// caches and send what they forward and log, then at-least-once flushes the producer and
/// commits the offsets; exactly-once sends the offsets to the open transaction and commits it.
fn commit(
    consumer: &mut Consumer,
    producer: &Producer,
    pending: &Arc<Mutex<Pending>>,
    eos: bool,
) -> Result<()> {
    if lock(pending).failed {
        return Ok(());
    }
    let mut out = Output::default();
    with_tasks(|tasks| {
        tasks
            .live
            .values_mut()
            .try_for_each(|task| task.drain(&mut out, true))
    })?;
    send(producer, pending, &mut out, eos)?;
    let (offsets, in_txn) = {
        let mut p = lock(pending);
        (std::mem::take(&mut p.offsets), p.in_txn)
    };
    if eos {
        if !in_txn {
            if offsets.is_empty() {
                return Ok(());
            }
            producer.begin_transaction()?;
        }
        lock(pending).in_txn = true;
        if !offsets.is_empty() {
            producer.send_offsets_to_transaction(&offsets, &consumer.group_metadata()?)?;
        }
        let result = producer.commit_transaction();
        lock(pending).in_txn = false;
        result?;
    } else {
        producer.flush()?;
        if let Some(e) = lock(pending).send_error.take() {
            return Err(e);
        }
        if !offsets.is_empty() {
            consumer.commit_offsets_sync(&offsets)?;
        }
    }
    Ok(())
}

struct Listener {
    pending: Arc<Mutex<Pending>>,
    producer: Producer,
    eos: bool,
    states: Arc<StateMachine>,
    index: usize,
}

impl RebalanceListener for Listener {
    fn on_partitions_revoked(
        &mut self,
        consumer: &mut Consumer,
        partitions: &[TopicPartition],
    ) -> Result<()> {
        self.states.thread_ready(self.index, false);
        let result = commit(consumer, &self.producer, &self.pending, self.eos);
        if result.is_err() {
            lock(&self.pending).failed = true;
        }
        lock(&self.pending)
            .events
            .push(Event::Revoked(partitions.to_vec()));
        result
    }

    fn on_partitions_assigned(
        &mut self,
        _consumer: &mut Consumer,
        partitions: &[TopicPartition],
    ) -> Result<()> {
        lock(&self.pending)
            .events
            .push(Event::Assigned(partitions.to_vec()));
        Ok(())
    }

    fn on_partitions_lost(
        &mut self,
        _consumer: &mut Consumer,
        partitions: &[TopicPartition],
    ) -> Result<()> {
        self.states.thread_ready(self.index, false);
        let mut p = lock(&self.pending);
        p.offsets.clear();
        if p.in_txn {
            p.in_txn = false;
            drop(p);
            self.producer.abort_transaction()?;
            p = lock(&self.pending);
        }
        p.events.push(Event::Lost(partitions.to_vec()));
        Ok(())
    }
}

/// The thread's tasks, by partition, and the partitions revoked but not yet closed (kept when
/// the next assignment gives them back, as Kafka resumes suspended tasks).
struct Tasks {
    live: BTreeMap<i32, StreamTask>,
    suspended: BTreeSet<i32>,
}

thread_local! {
    /// The tasks of the stream thread running on this OS thread: borrowed by the loop between
    /// polls and by the rebalance listener inside one (module docs).
    static TASKS: RefCell<Tasks> = const {
        RefCell::new(Tasks {
            live: BTreeMap::new(),
            suspended: BTreeSet::new(),
        })
    };
}

/// Run `f` on this thread's tasks. Fails, rather than panics, if they are borrowed already
/// (a `poll` inside a borrow, which the loop never makes).
fn with_tasks<R>(f: impl FnOnce(&mut Tasks) -> Result<R>) -> Result<R> {
    TASKS.with(|tasks| match tasks.try_borrow_mut() {
        Ok(mut tasks) => f(&mut tasks),
        Err(_) => Err(Error::IllegalState {
            reason: "a stream thread's tasks were reached while already in use (a poll \
                     inside a task borrow)"
                .to_string(),
        }),
    })
}

/// Take every task out of this thread's slot, leaving it empty.
fn take_tasks() -> Result<BTreeMap<i32, StreamTask>> {
    with_tasks(|tasks| {
        tasks.suspended.clear();
        Ok(std::mem::take(&mut tasks.live))
    })
}

/// One run of the thread until shutdown or an error. `queries` are answered between batches.
pub(crate) fn run(ctx: &Context, index: usize, queries: &Receiver<Query>) -> Result<()> {
    let eos = ctx.config.processing_guarantee() == ProcessingGuarantee::ExactlyOnceV2;
    let thread_name = format!("{}-StreamThread-{}", ctx.client_id, index + 1);
    let mut pc = ProducerConfig::default();
    pc.client_id = format!("{thread_name}-producer");
    if eos {
        pc.transactional_id = Some(format!("{}-{}", ctx.client_id, index + 1));
        pc.acks = crate::Acks::All;
    }
    let producer = ctx.broker.producer(pc)?;
    if eos {
        producer.init_transactions()?;
    }
    let mut cc = ConsumerConfig::default().group_id(ctx.config.application_id());
    cc.client_id = format!("{thread_name}-consumer");
    cc.auto_offset_reset = OffsetReset::Earliest;
    cc.enable_auto_commit = false;
    cc.max_poll_records = 1000;
    cc.partition_assignment_strategy = vec![AssignmentStrategy::Range];
    if eos {
        cc.isolation_level = IsolationLevel::ReadCommitted;
    }
    let mut consumer = ctx.broker.consumer(cc)?;
    let pending = Arc::new(Mutex::new(Pending::default()));
    let topics: Vec<&str> = ctx.topics.iter().map(String::as_str).collect();
    consumer.subscribe_with_listener(
        &topics,
        Listener {
            pending: Arc::clone(&pending),
            producer: producer.clone(),
            eos,
            states: Arc::clone(&ctx.states),
            index,
        },
    )?;
    ctx.counters
        .register_wakeup(index, consumer.wakeup_handle());
    // A replaced thread may run on the OS thread of the one it replaces: start empty.
    for (_, task) in take_tasks()? {
        task.close_dirty();
    }
    let result = run_loop(ctx, index, queries, &mut consumer, &producer, &pending, eos);
    match &result {
        Ok(()) => {
            // Clean shutdown: commit (which flushes the caches), then close every task with
            // its files.
            let closed = (|| {
                commit(&mut consumer, &producer, &pending, eos)?;
                for (_, task) in take_tasks()? {
                    task.close_clean(&ctx.broker)?;
                }
                Ok(())
            })();
            if closed.is_err() {
                lock(&pending).failed = true;
            }
            let _ = consumer.close();
            let _ = producer.close();
            closed
        }
        Err(_) => {
            {
                let mut p = lock(&pending);
                p.failed = true;
                p.offsets.clear();
            }
            for (_, task) in take_tasks().unwrap_or_default() {
                task.close_dirty();
            }
            if lock(&pending).in_txn {
                let _ = producer.abort_transaction();
            }
            let _ = consumer.close();
            let _ = producer.close();
            result
        }
    }
}

fn run_loop(
    ctx: &Context,
    index: usize,
    queries: &Receiver<Query>,
    consumer: &mut Consumer,
    producer: &Producer,
    pending: &Arc<Mutex<Pending>>,
    eos: bool,
) -> Result<()> {
    let interval = Duration::from_millis(ctx.config.commit_interval_ms());
    let mut next_commit = Instant::now() + interval;
    let app = ctx.config.application_id();
    let read_committed = eos;
    let mut out = Output::default();
    while !ctx.shutdown.load(Ordering::Acquire) {
        with_tasks(|tasks| {
            while let Ok(query) = queries.try_recv() {
                query(&tasks.live);
            }
            Ok(())
        })?;
        // A query's wake-up ends the poll with nothing fetched (the wake-up is checked before
        // any fetch). The loop goes on as after an empty poll: skipping the rest would skip
        // the commit, and a reader querying more often than the poll timeout would then hold
        // processed offsets uncommitted for as long as it kept asking.
        let records = match consumer.poll(Duration::from_millis(100)) {
            Ok(r) => r,
            Err(Error::Wakeup) => crate::ConsumerRecords::default(),
            Err(e) => return Err(e),
        };
        let events = std::mem::take(&mut lock(pending).events);
        let idle = with_tasks(|tasks| {
            for event in events {
                handle_event(ctx, index, tasks, event, read_committed)?;
            }
            Ok(records.is_empty() && tasks.live.is_empty())
        })?;
        if idle {
            continue;
        }
        // The next offset per (interned topic, partition), found by the topic's address: no
        // allocation or string comparison per record.
        let mut processed: Vec<(&'static str, i32, i64)> = Vec::new();
        let mut count = 0u64;
        with_tasks(|tasks| {
            process_batch(ctx, index, app, tasks, records, &mut processed, &mut count)?;
            // The caches are flushed at commit only (Kafka's): here only their evictions and
            // the uncached stores' changes go out.
            let now_ms = wall_clock_ms();
            for task in tasks.live.values_mut() {
                task.punctuate_wall_clock(now_ms)?;
                task.drain(&mut out, false)?;
            }
            Ok(())
        })?;
        send(producer, pending, &mut out, eos)?;
        lock(pending).offsets.extend(
            processed
                .into_iter()
                .map(|(t, p, next)| (TopicPartition::new(t, p), OffsetAndMetadata::new(next))),
        );
        ctx.counters.add_processed(count);
        if Instant::now() >= next_commit {
            commit(consumer, producer, pending, eos)?;
            next_commit = Instant::now() + interval;
        }
    }
    Ok(())
}

/// Run each polled record through its partition's task, noting the next offset per
/// (interned topic, partition) in `processed`.
fn process_batch(
    ctx: &Context,
    index: usize,
    app: &str,
    tasks: &mut Tasks,
    records: crate::ConsumerRecords,
    processed: &mut Vec<(&'static str, i32, i64)>,
    count: &mut u64,
) -> Result<()> {
    for record in records {
        let Some(task) = tasks.live.get_mut(&record.partition) else {
            return Err(Error::IllegalState {
                reason: format!(
                    "stream thread {} polled {}-{} but has no task for partition {}",
                    index + 1,
                    record.topic,
                    record.partition,
                    record.partition
                ),
            });
        };
        let (topic, partition) = (record.topic, record.partition);
        let next = record.offset.saturating_add(1);
        task.process(&ctx.topology, app, record)?;
        match processed
            .iter_mut()
            .find(|(t, p, _)| *p == partition && std::ptr::eq(*t, topic))
        {
            Some(slot) => slot.2 = next,
            None => processed.push((topic, partition, next)),
        }
        *count += 1;
    }
    Ok(())
}

/// Each record cache's budget: `statestore.cache.max.bytes` shared by the threads, as
/// Kafka divides it (Kafka then shares a thread's part among its tasks' caches; here each
/// cached store of each task may use the thread's part).
fn cache_budget(config: &StreamsConfig) -> u64 {
    config.cache_max_bytes() / u64::from(config.num_stream_threads().max(1))
}

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Send the tasks' output: sink records by the default partitioner (murmur2 of the key, so
/// a repartition topic groups keys), changelog records to their task's partition.
fn send(
    producer: &Producer,
    pending: &Arc<Mutex<Pending>>,
    out: &mut Output,
    eos: bool,
) -> Result<()> {
    if out.produced.is_empty() && out.changes.is_empty() {
        return Ok(());
    }
    if eos {
        let mut p = lock(pending);
        if !p.in_txn {
            producer.begin_transaction()?;
            p.in_txn = true;
        }
    }
    for produced in out.produced.drain(..) {
        let record = ProducerRecord {
            topic: produced.topic,
            partition: None,
            key: produced.key,
            value: produced.value,
            headers: produced.headers,
            timestamp: (produced.timestamp >= 0).then_some(produced.timestamp),
        };
        send_one(producer, pending, record)?;
    }
    for (topic, partition, change) in out.changes.drain(..) {
        let record = ProducerRecord {
            topic: topic.into(),
            partition: Some(partition),
            key: Some(change.key),
            value: change.value,
            headers: Vec::new(),
            timestamp: Some(change.timestamp),
        };
        send_one(producer, pending, record)?;
    }
    Ok(())
}

fn send_one(
    producer: &Producer,
    pending: &Arc<Mutex<Pending>>,
    record: ProducerRecord,
) -> Result<()> {
    let slot = Arc::clone(pending);
    producer.send_with_callback(record, move |result| {
        if let Err(e) = result {
            let mut p = lock(&slot);
            if p.send_error.is_none() {
                p.send_error = Some(e);
            }
        }
    })
}

fn handle_event(
    ctx: &Context,
    index: usize,
    tasks: &mut Tasks,
    event: Event,
    read_committed: bool,
) -> Result<()> {
    match event {
        Event::Revoked(partitions) => {
            for tp in partitions {
                if tasks.live.contains_key(&tp.partition) {
                    tasks.suspended.insert(tp.partition);
                }
            }
        }
        Event::Lost(partitions) => {
            for tp in partitions {
                tasks.suspended.remove(&tp.partition);
                if let Some(task) = tasks.live.remove(&tp.partition) {
                    task.close_dirty();
                }
            }
        }
        Event::Assigned(partitions) => {
            let wanted: BTreeSet<i32> = partitions.iter().map(|tp| tp.partition).collect();
            for p in std::mem::take(&mut tasks.suspended) {
                if !wanted.contains(&p) {
                    if let Some(task) = tasks.live.remove(&p) {
                        task.close_clean(&ctx.broker)?;
                    }
                }
            }
            for p in wanted {
                if tasks.live.contains_key(&p) {
                    continue;
                }
                let started = Instant::now();
                let (task, restored) = StreamTask::new(
                    &ctx.topology,
                    ctx.config.application_id(),
                    p,
                    &ctx.broker,
                    ctx.config.state_dir(),
                    read_committed,
                    wall_clock_ms(),
                    cache_budget(&ctx.config),
                )?;
                ctx.counters.add_restored(restored, started.elapsed());
                tasks.live.insert(p, task);
            }
            if ctx.states.state() != State::PendingShutdown {
                ctx.states.thread_ready(index, true);
            }
        }
    }
    Ok(())
}
