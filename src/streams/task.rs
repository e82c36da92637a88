//! A task: one instance of a topology's nodes and stores, run record by record.
//!
//! Owns: the type-erased node interface ([`Node`]), the adapter from a typed
//! [`Processor`] to it, the depth-first dispatch of a record from a node to its children, the
//! task's stores, its stream time and wall clock, and the records its sinks produced (the
//! record collector). The test driver runs one task over every partition of its inputs; the
//! runtime (later) runs one per input partition, all made from the same [`Topology`].
//!
//! Invariants: a node's processor is taken out of the task while it runs and put back
//! afterwards, error or not, so a node is never entered twice at once (a topology is acyclic:
//! re-entry would be a cycle, reported as an error, never a panic); records cross the erased
//! boundary as a `&mut dyn Any` slot holding exactly `Option<Record<K, V>>` of the edge's
//! types, which the typed DSL guarantees and the adapter checks; the receiving node takes the
//! record out of the slot (the slot lives on the sender's stack: no allocation per edge).
//!
//! [`Topology`]: super::Topology

use std::any::Any;
use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::Arc;

use super::processor::{
    Processor, ProcessorContext, PunctuationType, Record, RecordMetadata, ScheduleId,
};
use super::topology::Topology;
use crate::error::{Error, Result};
use crate::types::{Bytes, Header};

/// A node of a running task, its record types erased.
pub(crate) trait Node {
    /// Called once, before the first record.
    fn init(&mut self, task: &mut Task, id: usize) -> Result<()>;
    /// Process one record: `record` is a slot holding `Some(Record<K, V>)` of the node's
    /// input types, which the node takes.
    fn process(&mut self, record: &mut dyn Any, task: &mut Task, id: usize) -> Result<()>;
    /// A punctuation this node scheduled is due.
    fn punctuate(
        &mut self,
        task: &mut Task,
        id: usize,
        schedule: ScheduleId,
        timestamp: i64,
    ) -> Result<()>;
    /// Called once when the task closes.
    fn close(&mut self);
}

/// The record types of a node's input and output edges, as a marker.
type Edges<KI, VI, KO, VO> = PhantomData<fn(KI, VI) -> (KO, VO)>;

/// A typed [`Processor`] as a [`Node`].
pub(crate) struct ProcessorNode<P, KI, VI, KO, VO> {
    processor: P,
    _types: Edges<KI, VI, KO, VO>,
}

impl<P, KI, VI, KO, VO> ProcessorNode<P, KI, VI, KO, VO> {
    pub(crate) fn new(processor: P) -> Self {
        ProcessorNode {
            processor,
            _types: PhantomData,
        }
    }
}

impl<P, KI, VI, KO, VO> Node for ProcessorNode<P, KI, VI, KO, VO>
where
    P: Processor<KI, VI, KO, VO>,
    KI: 'static,
    VI: 'static,
    KO: Clone + 'static,
    VO: Clone + 'static,
{
    fn init(&mut self, task: &mut Task, id: usize) -> Result<()> {
        self.processor.init(&mut ProcessorContext::new(task, id))
    }

    fn process(&mut self, record: &mut dyn Any, task: &mut Task, id: usize) -> Result<()> {
        let Some(record) = take_record::<KI, VI>(record) else {
            return Err(Error::InvalidTopology {
                reason: format!(
                    "processor {} received a record whose key or value type is not the one it \
                 processes ({}, {})",
                    task.node_name(id),
                    std::any::type_name::<KI>(),
                    std::any::type_name::<VI>()
                ),
            });
        };
        self.processor
            .process(record, &mut ProcessorContext::new(task, id))
    }

    fn punctuate(
        &mut self,
        task: &mut Task,
        id: usize,
        schedule: ScheduleId,
        timestamp: i64,
    ) -> Result<()> {
        self.processor
            .punctuate(schedule, timestamp, &mut ProcessorContext::new(task, id))
    }

    fn close(&mut self) {
        self.processor.close();
    }
}

/// The record in an edge's slot, if the slot is an `Option<Record<K, V>>` holding one.
pub(crate) fn take_record<K: 'static, V: 'static>(slot: &mut dyn Any) -> Option<Record<K, V>> {
    slot.downcast_mut::<Option<Record<K, V>>>()
        .and_then(Option::take)
}

/// A scheduled punctuation.
struct Schedule {
    id: ScheduleId,
    node: usize,
    interval_ms: i64,
    kind: PunctuationType,
    /// When it is next due.
    next_ms: i64,
}

/// A record a sink wrote: the topic's full name, serialized key and value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Produced {
    /// Borrowed (interned once by the sink) unless a topic extractor chose it: no allocation
    /// per record for a fixed topic.
    pub(crate) topic: Cow<'static, str>,
    pub(crate) key: Option<Bytes>,
    pub(crate) value: Option<Bytes>,
    pub(crate) timestamp: i64,
    pub(crate) headers: Vec<Header>,
}

/// One instance of a topology.
pub(crate) struct Task {
    nodes: Vec<Option<Box<dyn Node>>>,
    names: Vec<String>,
    children: Vec<Arc<[usize]>>,
    /// For each node, the stores it may use.
    connected: Vec<Vec<String>>,
    /// By name; a list searched in order, as a topology has few stores and a look-up per
    /// record per stateful node cost a hash of the name with a map.
    stores: Vec<(String, Box<dyn Any>)>,
    pub(crate) application_id: String,
    pub(crate) metadata: Option<RecordMetadata>,
    /// The last record's metadata, kept between records so that its topic's `String` is
    /// reused (no allocation per record while the topic stays the same).
    spare_metadata: Option<RecordMetadata>,
    pub(crate) stream_time: i64,
    pub(crate) wall_clock_ms: i64,
    pub(crate) produced: Vec<Produced>,
    schedules: Vec<Schedule>,
    next_schedule: u64,
    /// Records processors dropped (Kafka's task-level `dropped-records-total`).
    pub(crate) dropped_records: u64,
    /// The byte budget of each cached store's record cache (`statestore.cache.max.bytes`
    /// as the runtime divides it; module `cache`).
    pub(crate) cache_max_bytes: u64,
    /// The record caches' flushes, in the order their nodes were initialized (parents first,
    /// so what an upstream cache forwards reaches a downstream cache before that flushes).
    flushers: Vec<Flusher>,
}

/// Forwards what a node's record cache holds (Kafka's cache flush on commit).
pub(crate) type Flusher = Box<dyn FnMut(&mut Task) -> Result<()>>;

impl Task {
    /// Instantiate every node and store of `topology`, open its persistent stores in
    /// `task_dir/<store>/`, and initialize the nodes, parents before children (the order they
    /// were added); each record cache may hold `cache_max_bytes`.
    pub(crate) fn new(
        topology: &Topology,
        application_id: &str,
        wall_clock_ms: i64,
        cache_max_bytes: u64,
        task_dir: Option<&std::path::Path>,
    ) -> Result<Task> {
        let mut task = Task {
            nodes: topology.nodes.iter().map(|n| Some((n.make)())).collect(),
            names: topology.nodes.iter().map(|n| n.name.clone()).collect(),
            children: topology
                .nodes
                .iter()
                .map(|n| Arc::from(n.children.as_slice()))
                .collect(),
            connected: topology.nodes.iter().map(|n| n.stores.clone()).collect(),
            stores: topology
                .stores
                .iter()
                .map(|s| (s.name.clone(), (s.make)()))
                .collect(),
            application_id: application_id.to_string(),
            metadata: None,
            spare_metadata: None,
            stream_time: i64::MIN,
            wall_clock_ms,
            produced: Vec::new(),
            schedules: Vec::new(),
            next_schedule: 0,
            dropped_records: 0,
            cache_max_bytes,
            flushers: Vec::new(),
        };
        // Persistent stores are opened before any processor's `init` may read them.
        for (def, (_, store)) in topology.stores.iter().zip(task.stores.iter_mut()) {
            let Some(as_disk) = def.disk else { continue };
            let (Some(disk), Some(dir)) = (as_disk(store.as_mut()), task_dir) else {
                return Err(Error::StateStore {
                    store: def.name.clone(),
                    reason: "a persistent store needs a state directory (state.dir)".to_string(),
                });
            };
            disk.open(&dir.join(&def.name))?;
        }
        for id in 0..task.nodes.len() {
            let mut node = task.take(id)?;
            let result = node.init(&mut task, id);
            task.nodes[id] = Some(node);
            result?;
        }
        Ok(task)
    }

    pub(crate) fn node_name(&self, id: usize) -> &str {
        self.names.get(id).map_or("?", String::as_str)
    }

    pub(crate) fn children(&self, id: usize) -> Arc<[usize]> {
        self.children
            .get(id)
            .cloned()
            .unwrap_or_else(|| Arc::from(Vec::new()))
    }

    /// How many children node `id` has.
    pub(crate) fn child_count(&self, id: usize) -> usize {
        self.children.get(id).map_or(0, |c| c.len())
    }

    /// The `index`-th child of node `id` (in the order children were added).
    pub(crate) fn child(&self, id: usize, index: usize) -> Option<usize> {
        self.children.get(id).and_then(|c| c.get(index)).copied()
    }

    fn take(&mut self, id: usize) -> Result<Box<dyn Node>> {
        // The name is looked up only on the error path: this runs once per record per node.
        match self.nodes.get_mut(id).and_then(Option::take) {
            Some(node) => Ok(node),
            None => Err(Error::InvalidTopology {
                reason: format!(
                    "processor {} was entered while it was running (a cycle)",
                    self.node_name(id)
                ),
            }),
        }
    }

    /// The store `name` as `S`, if `node` is connected to it.
    pub(crate) fn store_for<S: Any>(&mut self, node: usize, name: &str) -> Result<&mut S> {
        let connected = self
            .connected
            .get(node)
            .is_some_and(|stores| stores.iter().any(|s| s == name));
        if !connected {
            return Err(Error::StateStore {
                store: name.to_string(),
                reason: format!(
                    "processor {} has no access to it: the store is not connected to the processor",
                    self.node_name(node)
                ),
            });
        }
        self.store_mut(name)
    }

    /// The store `name` as `S`, whoever asks (the test driver).
    pub(crate) fn store_mut<S: Any>(&mut self, name: &str) -> Result<&mut S> {
        let store = self.find_store(name).ok_or_else(|| Error::StateStore {
            store: name.to_string(),
            reason: "no such store in the topology".to_string(),
        })?;
        store.downcast_mut::<S>().ok_or_else(|| Error::StateStore {
            store: name.to_string(),
            reason: format!("it is not a {}", std::any::type_name::<S>()),
        })
    }

    fn find_store(&mut self, name: &str) -> Option<&mut Box<dyn Any>> {
        self.stores
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b)
    }

    /// The store `name`, untyped.
    pub(crate) fn store_any(&self, name: &str) -> Option<&dyn Any> {
        self.stores
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| &**b)
    }

    /// The store `name`, untyped and writable (the runtime's changelogs and restoration).
    pub(crate) fn store_any_mut(&mut self, name: &str) -> Result<&mut dyn Any> {
        self.find_store(name)
            .map(|b| &mut **b)
            .ok_or_else(|| Error::StateStore {
                store: name.to_string(),
                reason: "no such store in the topology".to_string(),
            })
    }

    /// Run one input record, already deserialized (a slot holding `Some(Record<K, V>)` of the
    /// source's types), from source node `source`, read at `offset` of `topic`-`partition`:
    /// set the record metadata and stream time, then dispatch depth first.
    pub(crate) fn process(
        &mut self,
        source: usize,
        (topic, partition, offset): (&str, i32, i64),
        timestamp: i64,
        record: &mut dyn Any,
    ) -> Result<()> {
        let metadata = match self.spare_metadata.take() {
            Some(mut m) => {
                if m.topic != topic {
                    m.topic.clear();
                    m.topic.push_str(topic);
                }
                m.partition = partition;
                m.offset = offset;
                m
            }
            None => RecordMetadata {
                topic: topic.to_string(),
                partition,
                offset,
            },
        };
        self.metadata = Some(metadata);
        self.stream_time = self.stream_time.max(timestamp);
        let result = dispatch(self, source, record);
        self.spare_metadata = self.metadata.take();
        result
    }

    /// Schedule a punctuation of `node`: stream-time ones aligned to 0 (due as soon as a
    /// record sets stream time), wall-clock ones an interval from now, as Kafka's
    /// `StreamTask.schedule`.
    pub(crate) fn schedule(
        &mut self,
        node: usize,
        interval_ms: i64,
        kind: PunctuationType,
    ) -> ScheduleId {
        let id = ScheduleId(self.next_schedule);
        self.next_schedule += 1;
        let next_ms = match kind {
            PunctuationType::StreamTime => 0,
            PunctuationType::WallClockTime => self.wall_clock_ms.saturating_add(interval_ms),
        };
        self.schedules.push(Schedule {
            id,
            node,
            interval_ms,
            kind,
            next_ms,
        });
        id
    }

    pub(crate) fn cancel(&mut self, id: ScheduleId) {
        self.schedules.retain(|s| s.id != id);
    }

    /// Run every punctuation of `kind` due at `now` (stream time or wall-clock time), earliest
    /// first, each at most once (Kafka's `PunctuationQueue.mayPunctuate`): after running, the
    /// next due time is the first multiple of the interval after `now`, so missed intervals
    /// are skipped, not replayed.
    pub(crate) fn punctuate(&mut self, kind: PunctuationType) -> Result<()> {
        let now = match kind {
            PunctuationType::StreamTime => self.stream_time,
            PunctuationType::WallClockTime => self.wall_clock_ms,
        };
        // Each schedule runs at most once per call, even if its next time saturated at
        // `i64::MAX` and so is still due.
        let mut done: Vec<ScheduleId> = Vec::new();
        loop {
            let due = self
                .schedules
                .iter()
                .filter(|s| s.kind == kind && s.next_ms <= now && !done.contains(&s.id))
                .min_by_key(|s| (s.next_ms, s.id))
                .map(|s| (s.id, s.node));
            let Some((id, node_id)) = due else {
                return Ok(());
            };
            done.push(id);
            let mut node = self.take(node_id)?;
            let result = node.punctuate(self, node_id, id, now);
            self.nodes[node_id] = Some(node);
            // The punctuator may have cancelled itself.
            if let Some(s) = self.schedules.iter_mut().find(|s| s.id == id) {
                let missed = now.saturating_sub(s.next_ms) / s.interval_ms;
                s.next_ms = s
                    .next_ms
                    .saturating_add(missed.saturating_add(1).saturating_mul(s.interval_ms));
            }
            result?;
        }
    }

    /// Add a record cache's flush, run by [`Task::flush`].
    pub(crate) fn register_flush(&mut self, flusher: Flusher) {
        self.flushers.push(flusher);
    }

    /// Forward everything the record caches hold (Kafka flushes its caches before every
    /// commit), upstream caches first. The flushes are put back whatever they return.
    pub(crate) fn flush(&mut self) -> Result<()> {
        if self.flushers.is_empty() {
            return Ok(());
        }
        let mut flushers = std::mem::take(&mut self.flushers);
        let result = flushers.iter_mut().try_for_each(|f| f(self));
        flushers.append(&mut self.flushers);
        self.flushers = flushers;
        result
    }

    /// Close every node (Kafka closes processors when a task closes).
    pub(crate) fn close(&mut self) {
        for node in self.nodes.iter_mut().flatten() {
            node.close();
        }
    }
}

/// Hand `record` (a slot holding `Some(Record<K, V>)` of the node's input types) to node `id`
/// and run it; the node is put back whatever it returns.
pub(crate) fn dispatch(task: &mut Task, id: usize, record: &mut dyn Any) -> Result<()> {
    let mut node = task.take(id)?;
    let result = node.process(record, task, id);
    task.nodes[id] = Some(node);
    result
}
