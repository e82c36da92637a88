//! The runtime: [`KafkaStreams`] runs a [`Topology`] on a [`Broker`] with
//! `num.stream.threads` threads in the consumer group `application.id`, one task per input
//! partition, commits every `commit.interval.ms`, and state kept in changelog topics.
//!
//! Modules, one job each: `thread` (a stream thread: poll, process, send, commit, the
//! rebalance listener), `task_manager` (a thread's tasks, made and restored on assignment),
//! `changelog` (store changes as changelog records, restoration), `checkpoint` (the task's
//! `.checkpoint` file), `store_file` (a store's file written on a clean close),
//! `state_listener` (the instance's [`State`] machine and listener), `query` (interactive
//! queries), `global_thread` (the global tables' thread and stores).
//!
//! Invariants: internal topics are created at [`KafkaStreams::start`] before any thread
//! runs: changelogs `<application.id>-<store>-changelog` compacted, repartition topics
//! `<application.id>-<name>-repartition`, each with as many partitions as the widest input
//! topic (so task `p` finds partition `p` of each); the instance is RUNNING exactly while every
//! live thread has its tasks restored; a thread's failure goes to the uncaught-error handler,
//! which replaces the thread or shuts the instance down (ERROR), never both; with global
//! tables, the stream threads start only once the global thread has bootstrapped the global
//! stores, and it stops after them.

pub(crate) mod changelog;
mod checkpoint;
mod global_thread;
mod query;
mod source;
mod state_listener;
mod store_file;
mod task_manager;
mod thread;

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;

pub use query::KeyValueStoreView;
pub use state_listener::State;

use self::state_listener::StateMachine;
use self::thread::{Context, Query};
use super::config::StreamsConfig;
use super::topology::Topology;
use crate::error::{Error, Result};
use crate::{Broker, CleanupPolicy, TopicConfig, WakeupHandle};

/// What to do after a stream thread failed (Kafka's `StreamThreadExceptionResponse`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamThreadExceptionResponse {
    /// Start the thread again: it rejoins the group and reprocesses from the last commit.
    ReplaceThread,
    /// Stop every thread; the instance ends in [`State::Error`]. Kafka's default.
    ShutdownClient,
}

/// Decides what follows a stream thread's failure (Kafka's
/// `StreamsUncaughtExceptionHandler`).
pub(crate) type ExceptionHandler =
    Box<dyn Fn(&Error) -> StreamThreadExceptionResponse + Send + Sync>;

/// The instance's counters, shared by its threads.
#[derive(Default)]
pub(crate) struct Counters {
    processed: AtomicU64,
    restored: AtomicU64,
    restored_from_files: AtomicU64,
    restore_nanos: AtomicU64,
    global_restored: AtomicU64,
    global_restored_from_files: AtomicU64,
    live_threads: AtomicUsize,
    wakeups: Mutex<Vec<Arc<Mutex<Option<WakeupHandle>>>>>,
}

impl Counters {
    pub(crate) fn add_processed(&self, n: u64) {
        self.processed.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_restored(&self, r: task_manager::Restored, took: Duration) {
        self.restored.fetch_add(r.records, Ordering::Relaxed);
        self.restored_from_files
            .fetch_add(r.from_files, Ordering::Relaxed);
        self.restore_nanos.fetch_add(
            u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub(crate) fn add_global_bootstrap(&self, b: global_thread::Bootstrapped) {
        self.global_restored.fetch_add(b.records, Ordering::Relaxed);
        self.global_restored_from_files
            .fetch_add(b.from_files, Ordering::Relaxed);
    }

    pub(crate) fn register_wakeup(&self, index: usize, handle: WakeupHandle) {
        let slots = self.wakeups.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots.get(index) {
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        }
    }

    fn wake_all(&self) {
        for slot in self
            .wakeups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            if let Some(w) = &*slot.lock().unwrap_or_else(|e| e.into_inner()) {
                w.wakeup();
            }
        }
    }
}

/// What a running instance has done so far (Kafka's `process-total` and restore metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamsStats {
    /// Input records processed.
    pub processed_records: u64,
    /// Changelog records read to restore stores.
    pub restored_records: u64,
    /// Store entries loaded from store files in the state directory.
    pub restored_from_files: u64,
    /// Time spent making and restoring tasks.
    pub restore_time: Duration,
    /// Records the global thread read from the global topics while bootstrapping the global
    /// stores (nothing after a clean restart with no new records: the checkpoint).
    pub global_restored_records: u64,
    /// Global store entries loaded from store files in the state directory.
    pub global_restored_from_files: u64,
}

/// A streams application running a [`Topology`] on a [`Broker`] (Kafka's `KafkaStreams`).
///
/// WordCount, end to end:
///
/// ```
/// use std::time::Duration;
/// use embroker::streams::{
///     Consumed, Grouped, KafkaStreams, Materialized, ReadOnlyKeyValueStore, State,
///     StreamsBuilder, StreamsConfig,
/// };
/// use embroker::{Broker, Builtin, ProducerConfig, ProducerRecord, TopicConfig};
/// let broker = Broker::temporary()?;
/// broker.create_topic("lines", TopicConfig::default().partitions(2))?;
/// broker.create_topic("counts", TopicConfig::default().partitions(2))?;
/// let builder = StreamsBuilder::new();
/// builder
///     .stream("lines", Consumed::<(), String>::with(Builtin, Builtin))
///     .flat_map_values(|line: String| {
///         line.split_whitespace().map(str::to_string).collect::<Vec<_>>()
///     })
///     .group_by(|_, word| word.clone(), Grouped::with(Builtin, Builtin))
///     .count(Materialized::as_("counts-store"))
///     .to_stream()
///     .to("counts", embroker::streams::Produced::with(Builtin, Builtin));
/// let config = StreamsConfig::new("wordcount").with_properties(&[("commit.interval.ms", "50")])?;
/// let streams = KafkaStreams::new(builder.build()?, config, &broker)?;
/// streams.start()?;
/// let producer = broker.producer(ProducerConfig::default())?;
/// producer.send(ProducerRecord::new("lines", "a b a"))?.wait()?;
/// let store = streams.store::<String, i64>("counts-store")?;
/// let mut a = None;
/// for _ in 0..200 {
///     a = store.get(&"a".to_string())?;
///     if a == Some(2) { break; }
///     std::thread::sleep(Duration::from_millis(20));
/// }
/// assert_eq!(a, Some(2));
/// streams.close()?;
/// assert_eq!(streams.state(), State::NotRunning);
/// # Ok::<(), embroker::Error>(())
/// ```
pub struct KafkaStreams {
    ctx: Arc<Context>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    queries: Vec<Sender<Query>>,
    receivers: Mutex<Vec<crossbeam_channel::Receiver<Query>>>,
    /// The global tables' stores, one instance each, shared by every task.
    global_stores: global_thread::GlobalStores,
    global: Mutex<Option<global_thread::GlobalThread>>,
}

static INSTANCES: AtomicU64 = AtomicU64::new(0);

impl KafkaStreams {
    /// An instance of `topology` with `config` on `broker`, in state CREATED. The config is
    /// checked here; topics are checked and created by [`start`](Self::start).
    pub fn new(mut topology: Topology, config: StreamsConfig, broker: &Broker) -> Result<Self> {
        config.validate()?;
        let global_stores = global_thread::share_stores(&mut topology)?;
        if topology.nodes.is_empty() {
            return Err(Error::InvalidTopology {
                reason: "the topology has no nodes".to_string(),
            });
        }
        let threads = usize::try_from(config.num_stream_threads())
            .unwrap_or(1)
            .max(1);
        let app = config.application_id().to_string();
        let client_id = match config.client_id() {
            Some(id) => id.to_string(),
            None => format!("{app}-{}", INSTANCES.fetch_add(1, Ordering::Relaxed) + 1),
        };
        let topics = topology
            .source_topics()
            .into_iter()
            .map(|t| {
                if topology.repartition_topics().contains(&t) {
                    format!("{app}-{t}")
                } else {
                    t
                }
            })
            .collect();
        let counters = Counters::default();
        *counters.wakeups.lock().unwrap_or_else(|e| e.into_inner()) =
            (0..threads).map(|_| Arc::new(Mutex::new(None))).collect();
        let (queries, receivers) = (0..threads).map(|_| crossbeam_channel::unbounded()).unzip();
        Ok(KafkaStreams {
            ctx: Arc::new(Context {
                topology: Arc::new(topology),
                config,
                broker: broker.clone(),
                client_id,
                states: Arc::new(StateMachine::new()),
                shutdown: Arc::new(AtomicBool::new(false)),
                topics,
                handler: Mutex::new(None),
                counters,
            }),
            threads: Mutex::new(Vec::new()),
            queries,
            receivers: Mutex::new(receivers),
            global_stores,
            global: Mutex::new(None),
        })
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.ctx.states.state()
    }

    /// Call `listener(new, old)` on every state change (Kafka's `setStateListener`); set it
    /// before [`start`](Self::start) to see every change.
    pub fn set_state_listener(&self, listener: impl Fn(State, State) + Send + Sync + 'static) {
        self.ctx.states.set_listener(Box::new(listener));
    }

    /// Decide what follows a stream thread's failure (Kafka's
    /// `setUncaughtExceptionHandler`). Without one, the instance shuts down into
    /// [`State::Error`].
    pub fn set_uncaught_exception_handler(
        &self,
        handler: impl Fn(&Error) -> StreamThreadExceptionResponse + Send + Sync + 'static,
    ) {
        *self.ctx.handler.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(handler));
    }

    /// Create the internal topics and start the threads (CREATED to REBALANCING; RUNNING
    /// once every thread has its tasks). With global tables, first start the global thread
    /// and wait until it has read the global topics to their ends (Kafka's
    /// `GlobalStreamThread.start`), so joins see the tables as of start. Errors: a source or
    /// global topic that does not exist (Kafka's `MissingSourceTopicException`), an internal
    /// topic that cannot be created, the global bootstrap's failure (the instance is then
    /// ERROR), a second start.
    pub fn start(&self) -> Result<()> {
        let mut slot = self.receivers.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_empty() || self.state() != State::Created {
            return Err(Error::IllegalState {
                reason: format!(
                    "KafkaStreams::start in state {:?}: start once, from Created",
                    self.state()
                ),
            });
        }
        // Topics first: a missing source topic leaves the instance CREATED, to start again.
        self.create_internal_topics()?;
        let receivers = std::mem::take(&mut *slot);
        drop(slot);
        let ctx = &self.ctx;
        ctx.states.set_threads(receivers.len());
        ctx.states.transition(State::Rebalancing);
        if !self.global_stores.is_empty() {
            let global = global_thread::GlobalThread::start(ctx, self.global_stores.clone())?;
            *self.global.lock().unwrap_or_else(|e| e.into_inner()) = Some(global);
        }
        let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        ctx.counters
            .live_threads
            .store(receivers.len(), Ordering::Release);
        for (index, rx) in receivers.into_iter().enumerate() {
            let ctx = Arc::clone(&self.ctx);
            let handle = std::thread::Builder::new()
                .name(format!("{}-StreamThread-{}", ctx.client_id, index + 1))
                .spawn(move || thread_main(&ctx, index, &rx))
                .map_err(|e| Error::io("spawning a stream thread", std::path::Path::new(""), e))?;
            threads.push(handle);
        }
        Ok(())
    }

    fn create_internal_topics(&self) -> Result<()> {
        let topology = &self.ctx.topology;
        let app = self.ctx.config.application_id();
        let broker = &self.ctx.broker;
        // Global topics are read as they are, whatever their partition counts.
        for topic in topology.global_topics() {
            if broker.describe_topic(&topic).is_err() {
                return Err(Error::UnknownTopic {
                    topic: format!(
                        "{topic} (a global topic of application {app}: create it before start)"
                    ),
                });
            }
        }
        // Joined inputs must have as many partitions as each other (Kafka's
        // CopartitionedTopicsEnforcer), checked before any topic is created.
        topology.check_copartitioning(|topic| {
            let count = broker
                .describe_topic(topic)
                .map_err(|_| Error::UnknownTopic {
                    topic: format!(
                        "{topic} (a source topic of application {app}: create it before start)"
                    ),
                })?
                .partitions
                .len();
            Ok(i32::try_from(count).unwrap_or(i32::MAX))
        })?;
        let internal = topology.repartition_topics();
        let mut partitions = 1;
        for topic in topology.source_topics() {
            if internal.contains(&topic) {
                continue;
            }
            let count = broker
                .describe_topic(&topic)
                .map_err(|_| Error::UnknownTopic {
                    topic: format!(
                        "{topic} (a source topic of application {app}: create it before start)"
                    ),
                })?
                .partitions
                .len();
            partitions = partitions.max(i32::try_from(count).unwrap_or(i32::MAX));
        }
        let mut wanted: Vec<(String, TopicConfig)> = internal
            .iter()
            .map(|t| {
                (
                    format!("{app}-{t}"),
                    TopicConfig::default().partitions(partitions),
                )
            })
            .collect();
        for store in &topology.stores {
            if store.logger.is_some() {
                wanted.push((
                    changelog::changelog_topic(app, &store.name),
                    TopicConfig::default()
                        .partitions(partitions)
                        .cleanup_policy(CleanupPolicy::Compact),
                ));
            }
        }
        for (name, config) in wanted {
            match broker.create_topic(&name, config) {
                Ok(()) | Err(Error::TopicExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Wait until the instance is RUNNING, or fail after `timeout` or if it stopped.
    pub fn wait_until_running(&self, timeout: Duration) -> Result<()> {
        let state = self.ctx.states.wait_for(timeout, |s| {
            matches!(s, State::Running | State::Error | State::NotRunning)
        });
        match state {
            State::Running => Ok(()),
            other => Err(Error::Timeout {
                operation: format!("waiting for KafkaStreams to be Running (it is {other:?})"),
                timeout,
            }),
        }
    }

    /// Stop the threads: each commits what it processed, closes its tasks (writing store
    /// files and checkpoints under the state directory) and leaves the group; then the global
    /// thread writes the global stores' files and `global/.checkpoint`; then the state is
    /// NOT_RUNNING (or ERROR after a failure). Waits for the threads.
    pub fn close(&self) -> Result<()> {
        let ctx = &self.ctx;
        ctx.states.transition(State::PendingShutdown);
        ctx.shutdown.store(true, Ordering::Release);
        ctx.counters.wake_all();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        let mut panicked = false;
        for t in threads {
            panicked |= t.join().is_err();
        }
        // The global thread stops after the stream threads, which read its stores.
        if let Some(global) = self.global.lock().unwrap_or_else(|e| e.into_inner()).take() {
            global.wake();
            panicked |= !global.join();
        }
        ctx.states.transition(State::NotRunning);
        if panicked {
            return Err(Error::IllegalState {
                reason: "a stream thread panicked".to_string(),
            });
        }
        Ok(())
    }

    /// A read-only view of the key-value store `name` across all tasks (Kafka's
    /// `store(StoreQueryParameters.fromNameAndType(name, keyValueStore()))`); DSL stores
    /// show their values without timestamps. Readable while RUNNING or REBALANCING. A
    /// global table's store is read from the instance's one copy.
    pub fn store<K, V>(&self, name: &str) -> Result<KeyValueStoreView<K, V>>
    where
        K: Ord + Clone + Send + 'static,
        V: Clone + Send + 'static,
    {
        if let Some((_, store)) = self.global_stores.iter().find(|(n, _)| n == name) {
            return Ok(KeyValueStoreView {
                name: name.to_string(),
                threads: Vec::new(),
                states: Arc::clone(&self.ctx.states),
                global: Some(Arc::clone(store)),
                _types: PhantomData,
            });
        }
        if !self.ctx.topology.stores.iter().any(|s| s.name == name) {
            return Err(Error::StateStore {
                store: name.to_string(),
                reason: "no such store in the topology".to_string(),
            });
        }
        let wakeups = self
            .ctx
            .counters
            .wakeups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Ok(KeyValueStoreView {
            name: name.to_string(),
            threads: self.queries.iter().cloned().zip(wakeups).collect(),
            states: Arc::clone(&self.ctx.states),
            global: None,
            _types: PhantomData,
        })
    }

    /// What the instance has done so far.
    pub fn stats(&self) -> StreamsStats {
        let c = &self.ctx.counters;
        StreamsStats {
            processed_records: c.processed.load(Ordering::Relaxed),
            restored_records: c.restored.load(Ordering::Relaxed),
            restored_from_files: c.restored_from_files.load(Ordering::Relaxed),
            restore_time: Duration::from_nanos(c.restore_nanos.load(Ordering::Relaxed)),
            global_restored_records: c.global_restored.load(Ordering::Relaxed),
            global_restored_from_files: c.global_restored_from_files.load(Ordering::Relaxed),
        }
    }
}

impl Drop for KafkaStreams {
    fn drop(&mut self) {
        if self.state() != State::NotRunning && self.state() != State::Error {
            let _ = self.close();
        }
    }
}

/// A stream thread's life: runs until shutdown; after a failure asks the handler whether to
/// run again or shut the instance down. The last thread to end settles the final state.
fn thread_main(ctx: &Arc<Context>, index: usize, rx: &crossbeam_channel::Receiver<Query>) {
    loop {
        let result = thread::run(ctx, index, rx);
        let Err(e) = result else { break };
        if ctx.shutdown.load(Ordering::Acquire) {
            log::warn!(
                "stream thread {} failed while shutting down: {e}",
                index + 1
            );
            break;
        }
        let response = match &*ctx.handler.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(handler) => handler(&e),
            None => {
                log::error!(
                    "stream thread {} failed: {e}; shutting the client down",
                    index + 1
                );
                StreamThreadExceptionResponse::ShutdownClient
            }
        };
        match response {
            StreamThreadExceptionResponse::ReplaceThread => {
                ctx.states.thread_ready(index, false);
            }
            StreamThreadExceptionResponse::ShutdownClient => {
                ctx.states.transition(State::PendingError);
                ctx.shutdown.store(true, Ordering::Release);
                ctx.counters.wake_all();
                break;
            }
        }
    }
    let last = ctx.counters.live_threads.fetch_sub(1, Ordering::AcqRel) == 1;
    if last && !ctx.states.transition(State::Error) {
        ctx.states.transition(State::NotRunning);
    }
}
