//! The global stream thread (Kafka's `GlobalStreamThread`, with its `GlobalStateManagerImpl`
//! and `GlobalStateUpdateTask`): one per [`KafkaStreams`](super::KafkaStreams) instance, it
//! reads every partition of every global-table topic with a consumer of its own (no group),
//! and keeps the global stores that every stream thread's tasks read.
//!
//! Owns: the global stores' single instances (made when the instance is made, and handed to
//! every task through the topology's store suppliers), the bootstrap (load the store files
//! if `state.dir/<application.id>/global/.checkpoint` names an offset for every partition of
//! the store's topic, then read each partition from there, or from its start, to its end
//! offset as of the bootstrap), the update loop, and the clean close (each store's file, then
//! the checkpoint of the positions they hold).
//!
//! Invariants: the stream threads start only after the bootstrap ended, so no join reads a
//! global store before it caught up with its topic as of start (Kafka's
//! `GlobalStreamThread.start` blocks the same way); only this thread writes the global
//! stores; the checkpoint is written after the store files, and removed before they are
//! rewritten, so a checkpoint always names offsets the files hold; the global consumer's
//! isolation level is the application's (`read_committed` under `exactly_once_v2`); a global
//! topic is its store's changelog, so nothing is written anywhere but the state directory.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::source::Source;
use super::thread::Context;
use super::{checkpoint, store_file, StreamThreadExceptionResponse};
use crate::error::{Error, Result};
use crate::streams::config::ProcessingGuarantee;
use crate::streams::global_store::{GlobalStoreDef, SharedStore};
use crate::streams::task::Task;
use crate::streams::topology::{StoreSupplier, Topology};
use crate::{
    Consumer, ConsumerConfig, ConsumerRecord, IsolationLevel, OffsetReset, TopicPartition,
    WakeupHandle,
};

/// How long a poll of the global consumer waits before the thread looks at the shutdown
/// flag again.
const POLL: Duration = Duration::from_millis(100);

/// The global stores' single instances, by store name.
pub(crate) type GlobalStores = Vec<(String, SharedStore)>;

/// Make one instance of each global store of `topology` and point the topology's store
/// suppliers at it, so every task made from `topology` afterwards shares it.
pub(crate) fn share_stores(topology: &mut Topology) -> Result<GlobalStores> {
    let mut shared = Vec::new();
    for def in &topology.global_stores {
        let Some(store_def) = topology.stores.iter_mut().find(|s| s.name == def.store) else {
            return Err(Error::InvalidTopology {
                reason: format!(
                    "global store {} is not among the topology's stores",
                    def.store
                ),
            });
        };
        let store: SharedStore = match (store_def.make)().downcast::<SharedStore>() {
            Ok(store) => *store,
            Err(_) => {
                return Err(Error::InvalidTopology {
                    reason: format!("global store {} is not a shared store", def.store),
                })
            }
        };
        let instance = Arc::clone(&store);
        let make: StoreSupplier = Arc::new(move || Box::new(Arc::clone(&instance)));
        store_def.make = make;
        shared.push((def.store.clone(), store));
    }
    Ok(shared)
}

/// The global sub-topology of `topology` (Kafka's global `ProcessorTopology`): the global
/// sources, the nodes below them and the stores they use, re-indexed in the same order, so
/// the global thread never makes or initializes the stream tasks' processors.
fn global_topology(topology: &Topology) -> Topology {
    let mut keep = vec![false; topology.nodes.len()];
    for topic in &topology.global_topics {
        if let Some(def) = topology.sources.get(topic) {
            if let Some(k) = keep.get_mut(def.node) {
                *k = true;
            }
        }
    }
    // Parents come before children, so one pass in index order reaches every descendant.
    for id in 0..topology.nodes.len() {
        if keep[id] {
            for &child in &topology.nodes[id].children {
                if let Some(k) = keep.get_mut(child) {
                    *k = true;
                }
            }
        }
    }
    let mut index = vec![usize::MAX; topology.nodes.len()];
    let mut next = 0;
    for (id, k) in keep.iter().enumerate() {
        if *k {
            index[id] = next;
            next += 1;
        }
    }
    let remap = |ids: &[usize]| -> Vec<usize> {
        ids.iter()
            .filter_map(|&i| index.get(i).copied().filter(|&n| n != usize::MAX))
            .collect()
    };
    let nodes: Vec<_> = topology
        .nodes
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(n, _)| {
            let mut n = n.clone();
            n.parents = remap(&n.parents);
            n.children = remap(&n.children);
            n
        })
        .collect();
    let stores = topology
        .stores
        .iter()
        .filter(|s| nodes.iter().any(|n| n.stores.contains(&s.name)))
        .cloned()
        .collect();
    let sources = topology
        .sources
        .iter()
        .filter(|(topic, _)| topology.global_topics.contains(*topic))
        .filter_map(|(topic, def)| {
            let node = index.get(def.node).copied().filter(|&n| n != usize::MAX)?;
            let mut def = def.clone();
            def.node = node;
            Some((topic.clone(), def))
        })
        .collect();
    // A clone with its parts replaced, so fields added to `Topology` later come along.
    let mut global = topology.clone();
    global.nodes = nodes;
    global.stores = stores;
    global.sources = sources;
    global.copartition_nodes.clear();
    global
}

/// What a bootstrap did, for the instance's counters.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Bootstrapped {
    /// Records read from the global topics.
    pub(crate) records: u64,
    /// Entries loaded from the global stores' files.
    pub(crate) from_files: u64,
}

/// A running global thread.
pub(crate) struct GlobalThread {
    handle: JoinHandle<()>,
    wakeup: Arc<Mutex<Option<WakeupHandle>>>,
}

impl GlobalThread {
    /// Start the thread and wait for its bootstrap. An error there (a missing topic, a
    /// record that does not deserialize, the state directory) is returned after it went to
    /// the uncaught-error handler and the instance to ERROR.
    pub(crate) fn start(ctx: &Arc<Context>, stores: GlobalStores) -> Result<GlobalThread> {
        let (ready_tx, ready_rx) = crossbeam_channel::bounded::<Result<()>>(1);
        let wakeup = Arc::new(Mutex::new(None));
        let thread_ctx = Arc::clone(ctx);
        let thread_wakeup = Arc::clone(&wakeup);
        let handle = std::thread::Builder::new()
            .name(format!("{}-GlobalStreamThread", ctx.client_id))
            .spawn(move || {
                let result = run(&thread_ctx, &stores, &thread_wakeup, &ready_tx);
                if let Err(e) = result {
                    fail(&thread_ctx, &e);
                    // Only read before the bootstrap ended; afterwards nobody waits.
                    let _ = ready_tx.try_send(Err(e));
                }
            })
            .map_err(|e| {
                Error::io(
                    "spawning the global stream thread",
                    std::path::Path::new(""),
                    e,
                )
            })?;
        let thread = GlobalThread { handle, wakeup };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(thread),
            Ok(Err(e)) => {
                thread.join();
                Err(e)
            }
            Err(_) => {
                thread.join();
                Err(Error::IllegalState {
                    reason: "the global stream thread ended during its bootstrap".to_string(),
                })
            }
        }
    }

    /// Wake the thread from its poll (it stops once the instance's shutdown flag is set).
    pub(crate) fn wake(&self) {
        if let Some(w) = &*self.wakeup.lock().unwrap_or_else(|e| e.into_inner()) {
            w.wakeup();
        }
    }

    /// Wait for the thread to end; `false` if it panicked.
    pub(crate) fn join(self) -> bool {
        self.handle.join().is_ok()
    }
}

/// The global thread failed: the handler hears of it, and the instance shuts down into ERROR
/// whatever it answers (Kafka cannot replace the global thread either: `REPLACE_THREAD` for
/// it reverts to shutting the client down).
fn fail(ctx: &Context, e: &Error) {
    if ctx.shutdown.load(Ordering::Acquire) {
        log::warn!("the global stream thread failed while shutting down: {e}");
        return;
    }
    let response = match &*ctx.handler.lock().unwrap_or_else(|p| p.into_inner()) {
        Some(handler) => handler(e),
        None => StreamThreadExceptionResponse::ShutdownClient,
    };
    if response == StreamThreadExceptionResponse::ReplaceThread {
        log::warn!("the global stream thread cannot be replaced; shutting the client down");
    }
    log::error!("the global stream thread failed: {e}; shutting the client down");
    ctx.states.transition(super::State::PendingError);
    ctx.shutdown.store(true, Ordering::Release);
    ctx.counters.wake_all();
    // With no stream thread left to settle the final state (before they start, or after
    // they all ended), settle it here.
    if ctx.counters.live_threads.load(Ordering::Acquire) == 0 {
        ctx.states.transition(super::State::Error);
    }
}

/// The thread's state: its consumer, the task that runs the global sources' processors, and
/// where its files live.
struct Global<'a> {
    ctx: &'a Context,
    stores: &'a GlobalStores,
    consumer: Consumer,
    /// The global sub-topology's task: what it holds of the stores are the shared ones.
    task: Task,
    sources: BTreeMap<String, Source>,
    partitions: Vec<TopicPartition>,
    dir: Option<PathBuf>,
}

fn run(
    ctx: &Context,
    stores: &GlobalStores,
    wakeup: &Mutex<Option<WakeupHandle>>,
    ready: &crossbeam_channel::Sender<Result<()>>,
) -> Result<()> {
    let mut global = Global::new(ctx, stores)?;
    *wakeup.lock().unwrap_or_else(|e| e.into_inner()) = Some(global.consumer.wakeup_handle());
    let done = global.bootstrap()?;
    ctx.counters.add_global_bootstrap(done);
    // The receiver waits for exactly this message; if it is gone, start gave up.
    let _ = ready.send(Ok(()));
    let result = global.update_loop();
    match result {
        Ok(()) => {
            let closed = global.close_clean();
            let _ = global.consumer.close();
            closed
        }
        Err(e) => {
            let _ = global.consumer.close();
            Err(e)
        }
    }
}

impl<'a> Global<'a> {
    fn new(ctx: &'a Context, stores: &'a GlobalStores) -> Result<Self> {
        let app = ctx.config.application_id();
        let mut cc = ConsumerConfig::default();
        cc.client_id = format!("{}-global-consumer", ctx.client_id);
        cc.auto_offset_reset = OffsetReset::Earliest;
        cc.enable_auto_commit = false;
        cc.max_poll_records = 1000;
        if ctx.config.processing_guarantee() == ProcessingGuarantee::ExactlyOnceV2 {
            cc.isolation_level = IsolationLevel::ReadCommitted;
        }
        let mut consumer = ctx.broker.consumer(cc)?;
        let topology = global_topology(&ctx.topology);
        let mut partitions = Vec::new();
        let mut sources = BTreeMap::new();
        for topic in ctx.topology.global_topics() {
            let count = ctx
                .broker
                .describe_topic(&topic)
                .map_err(|_| Error::UnknownTopic {
                    topic: format!(
                        "{topic} (a global topic of application {app}: create it before start)"
                    ),
                })?
                .partitions
                .len();
            let count = i32::try_from(count).unwrap_or(i32::MAX);
            partitions.extend((0..count).map(|p| TopicPartition::new(topic.as_str(), p)));
            let Some(def) = topology.sources.get(&topic) else {
                return Err(Error::InvalidTopology {
                    reason: format!("global topic {topic} has no source"),
                });
            };
            sources.insert(
                topic.clone(),
                Source::new(def.node, &def.decode, def.custom_timestamps),
            );
        }
        consumer.assign(&partitions)?;
        let task = Task::new(&topology, app, wall_clock_ms(), 0, None)?;
        Ok(Global {
            ctx,
            stores,
            consumer,
            task,
            sources,
            partitions,
            dir: ctx.config.state_dir().map(|d| d.join(app).join("global")),
        })
    }

    fn store(&self, name: &str) -> Result<&SharedStore> {
        self.stores
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
            .ok_or_else(|| Error::StateStore {
                store: name.to_string(),
                reason: "no such global store".to_string(),
            })
    }

    /// Load what the files hold, position every partition past it, then read every
    /// partition to its end offset as of now.
    fn bootstrap(&mut self) -> Result<Bootstrapped> {
        let mut done = Bootstrapped::default();
        let ends = self.consumer.end_offsets(&self.partitions)?;
        let checkpoint = match &self.dir {
            Some(dir) => checkpoint::read(dir)?,
            None => BTreeMap::new(),
        };
        let defs: Vec<GlobalStoreDef> = self.ctx.topology.global_stores.clone();
        for def in &defs {
            let mine: Vec<&TopicPartition> = self
                .partitions
                .iter()
                .filter(|tp| tp.topic == def.topic)
                .collect();
            // The file counts only if the checkpoint names every partition of the topic at
            // an offset the topic still has.
            let from: Option<Vec<i64>> = mine
                .iter()
                .map(|tp| {
                    checkpoint
                        .get(*tp)
                        .copied()
                        .filter(|&o| o <= ends.get(*tp).copied().unwrap_or(0))
                })
                .collect();
            let entries = match (&self.dir, &from) {
                (Some(dir), Some(_)) => store_file::read(dir, &def.store)?,
                _ => None,
            };
            match (entries, from) {
                (Some(entries), Some(from)) => {
                    let store = self.store(&def.store)?;
                    done.from_files += entries.len() as u64;
                    for e in entries {
                        def.codec.restore(store, &def.store, e)?;
                    }
                    for (tp, offset) in mine.into_iter().zip(from) {
                        self.consumer.seek(tp, offset)?;
                    }
                }
                _ => {
                    let mine: Vec<TopicPartition> = mine.into_iter().cloned().collect();
                    self.consumer.seek_to_beginning(&mine)?;
                }
            }
        }
        loop {
            let mut behind = false;
            for tp in &self.partitions {
                if self.consumer.position(tp)? < ends.get(tp).copied().unwrap_or(0) {
                    behind = true;
                    break;
                }
            }
            if !behind {
                return Ok(done);
            }
            if self.ctx.shutdown.load(Ordering::Acquire) {
                return Err(Error::IllegalState {
                    reason: "KafkaStreams was closed while its global stores were bootstrapping"
                        .to_string(),
                });
            }
            done.records += self.poll_once()?;
        }
    }

    /// Keep the global stores up to date until shutdown.
    fn update_loop(&mut self) -> Result<()> {
        while !self.ctx.shutdown.load(Ordering::Acquire) {
            self.poll_once()?;
        }
        Ok(())
    }

    /// One poll, each record through its global source; how many records it read.
    fn poll_once(&mut self) -> Result<u64> {
        let records = match self.consumer.poll(POLL) {
            Ok(r) => r,
            Err(Error::Wakeup) => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut count = 0;
        for record in records {
            self.process(record)?;
            count += 1;
        }
        // The global sources have no sinks; nothing they forward leaves the thread.
        self.task.produced.clear();
        Ok(count)
    }

    /// Decode a record with its topic's source (deserialization errors fail the thread, as a
    /// stream thread's source does) and run it into its store.
    fn process(&mut self, record: ConsumerRecord) -> Result<()> {
        let topic = record.topic;
        let Some(source) = self.sources.get_mut(topic) else {
            return Err(Error::UnknownTopic {
                topic: topic.to_string(),
            });
        };
        source.process(&mut self.task, topic, record)?;
        Ok(())
    }

    /// Write each global store's file, then the checkpoint of the positions they hold.
    fn close_clean(&mut self) -> Result<()> {
        self.task.close();
        let Some(dir) = self.dir.clone() else {
            return Ok(());
        };
        checkpoint::remove(&dir)?;
        let defs: Vec<GlobalStoreDef> = self.ctx.topology.global_stores.clone();
        for def in &defs {
            let entries = def.codec.snapshot(self.store(&def.store)?, &def.store)?;
            store_file::write(&dir, &def.store, &entries)?;
        }
        let mut offsets = BTreeMap::new();
        for tp in &self.partitions {
            offsets.insert(tp.clone(), self.consumer.position(tp)?);
        }
        checkpoint::write(&dir, &offsets)
    }
}

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::{Consumed, Materialized, Produced, StreamsBuilder};
    use crate::Builtin;

    #[test]
    fn the_global_sub_topology_holds_the_global_sources_and_their_stores_only() {
        let builder = StreamsBuilder::new();
        let products = builder.global_table(
            "products",
            Consumed::<i64, String>::with(Builtin, Builtin),
            Materialized::as_("products"),
        );
        builder
            .stream("orders", Consumed::<String, i64>::with(Builtin, Builtin))
            .join_global(&products, |_, id| *id, |_, name| name.clone())
            .to("out", Produced::with(Builtin, Builtin));
        let topology = builder.build().unwrap();
        let global = global_topology(&topology);
        assert_eq!(
            global.nodes.len(),
            2,
            "the global source and its table source"
        );
        assert_eq!(global.nodes[0].children, vec![1]);
        assert_eq!(global.nodes[1].parents, vec![0]);
        assert_eq!(global.state_stores(), vec!["products".to_string()]);
        assert_eq!(global.sources.len(), 1);
        assert_eq!(global.sources["products"].node, 0);
        let mut task = Task::new(&global, "app", 0, 0, None).unwrap();
        assert!(task.store_any_mut("products").is_ok());
    }
}
