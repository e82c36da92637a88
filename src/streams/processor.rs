//! The Processor API: [`Record`], [`Processor`], [`ProcessorContext`] and the metadata of the
//! record being processed.
//!
//! Owns: the typed face of a topology node. A [`Processor`] receives one record at a time and
//! hands results to its children with [`ProcessorContext::forward`], synchronously and depth
//! first, as Kafka's processors do: `forward` returns after every downstream node (down to the
//! sinks) has processed the record. The DSL's operators are processors too
//! (`src/streams/dsl/processors.rs`).
//!
//! Invariants: a context reaches only the stores connected to its node (an unconnected store
//! is an error naming both, as in Kafka); the record metadata is that of the input record
//! that started the current chain (Kafka's `recordMetadata()`).

use std::any::Any;
use std::marker::PhantomData;

use super::state::KeyValueStore;
use super::task::{dispatch, Task};
use crate::error::{Error, Result};
use crate::types::Header;

/// A record flowing through a topology: key, value, timestamp and headers (Kafka's
/// `api.Record`). The key and value are the types the application declared; nullability is
/// declared as an `Option` (module [`serdes`](super::Serde)).
#[derive(Clone, Debug, PartialEq)]
pub struct Record<K, V> {
    /// The key.
    pub key: K,
    /// The value.
    pub value: V,
    /// Milliseconds since the epoch (the input record's, unless a processor changed it).
    pub timestamp: i64,
    /// The headers.
    pub headers: Vec<Header>,
}

impl<K, V> Record<K, V> {
    /// A record with no headers.
    pub fn new(key: K, value: V, timestamp: i64) -> Self {
        Record {
            key,
            value,
            timestamp,
            headers: Vec::new(),
        }
    }

    /// The same record with another key (Kafka's `withKey`).
    pub fn with_key<K2>(self, key: K2) -> Record<K2, V> {
        Record {
            key,
            value: self.value,
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }

    /// The same record with another value (Kafka's `withValue`).
    pub fn with_value<V2>(self, value: V2) -> Record<K, V2> {
        Record {
            key: self.key,
            value,
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }

    /// The same record at another timestamp (Kafka's `withTimestamp`).
    pub fn with_timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = timestamp;
        self
    }
}

/// Where the record being processed was read: its topic, partition and offset (Kafka's
/// `RecordMetadata` of the Processor API).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RecordMetadata {
    /// The input topic (for a repartition topic, its full name with the application id).
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset in the partition.
    pub offset: i64,
}

/// A node of a topology that processes records one at a time (Kafka's `api.Processor<KIn,
/// VIn, KOut, VOut>`). Instances are made per task from the topology's supplier, so a
/// processor may keep state of its own; durable state belongs in a store.
pub trait Processor<KIn, VIn, KOut, VOut> {
    /// Called once before the first record (Kafka's `init`). Default: nothing.
    fn init(&mut self, context: &mut ProcessorContext<'_, KOut, VOut>) -> Result<()> {
        let _ = context;
        Ok(())
    }

    /// Process one record; forward results with `context.forward`.
    fn process(
        &mut self,
        record: Record<KIn, VIn>,
        context: &mut ProcessorContext<'_, KOut, VOut>,
    ) -> Result<()>;

    /// Called when a punctuation scheduled with [`ProcessorContext::schedule`] is due
    /// (Kafka's `Punctuator.punctuate`): `schedule` says which, `timestamp` is the stream time
    /// or the wall-clock time that made it due. Default: nothing.
    fn punctuate(
        &mut self,
        schedule: ScheduleId,
        timestamp: i64,
        context: &mut ProcessorContext<'_, KOut, VOut>,
    ) -> Result<()> {
        let _ = (schedule, timestamp, context);
        Ok(())
    }

    /// Called once when the task closes (Kafka's `close`). Default: nothing.
    fn close(&mut self) {}
}

/// What drives a punctuation (Kafka's `PunctuationType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PunctuationType {
    /// Stream time: the largest record timestamp the task has seen. Punctuations are aligned
    /// to 0 and happen only when records move stream time (Kafka's `STREAM_TIME`).
    StreamTime,
    /// Wall-clock time: the first punctuation an interval after scheduling, then every
    /// interval (Kafka's `WALL_CLOCK_TIME`); in the test driver, moved by
    /// [`advance_wall_clock_time`](super::TopologyTestDriver::advance_wall_clock_time).
    WallClockTime,
}

/// A scheduled punctuation of a task, to tell several apart in
/// [`Processor::punctuate`] and to [`cancel`](ProcessorContext::cancel) it (Kafka's
/// `Cancellable`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScheduleId(pub(crate) u64);

/// What a [`Processor`] sees of its task: forwarding, connected stores, record metadata and
/// time (Kafka's `api.ProcessorContext`).
pub struct ProcessorContext<'a, KOut, VOut> {
    task: &'a mut Task,
    node: usize,
    _types: PhantomData<fn(KOut, VOut)>,
}

impl<'a, KOut: Clone + 'static, VOut: Clone + 'static> ProcessorContext<'a, KOut, VOut> {
    pub(crate) fn new(task: &'a mut Task, node: usize) -> Self {
        ProcessorContext {
            task,
            node,
            _types: PhantomData,
        }
    }

    /// Hand `record` to every child of this node, in the order they were added; returns once
    /// they (and everything downstream) have processed it.
    pub fn forward(&mut self, record: Record<KOut, VOut>) -> Result<()> {
        // Children by position, each read when it is due: a task's edges never change, and
        // not holding the list lets `dispatch` borrow the task (no reference count taken per
        // record).
        let Some(last) = self.task.child_count(self.node).checked_sub(1) else {
            return Ok(());
        };
        // Each child takes the record out of a slot on this stack: no allocation per edge.
        for index in 0..last {
            if let Some(child) = self.task.child(self.node, index) {
                dispatch(self.task, child, &mut Some(record.clone()))?;
            }
        }
        match self.task.child(self.node, last) {
            Some(child) => dispatch(self.task, child, &mut Some(record)),
            None => Ok(()),
        }
    }

    /// Run `flush` on every flush of the task's record caches (Kafka's cache flush on
    /// commit): the DSL's cached aggregations forward what they held through it.
    pub(crate) fn register_flush(
        &mut self,
        mut flush: impl for<'c> FnMut(&mut ProcessorContext<'c, KOut, VOut>) -> Result<()> + 'static,
    ) {
        let node = self.node;
        self.task.register_flush(Box::new(move |task| {
            flush(&mut ProcessorContext::new(task, node))
        }));
    }

    /// Hand `record` to the child named `child` only (Kafka's `forward(record, childName)`).
    pub fn forward_to(&mut self, record: Record<KOut, VOut>, child: &str) -> Result<()> {
        let children = self.task.children(self.node);
        let found = children
            .iter()
            .copied()
            .find(|&c| self.task.node_name(c) == child);
        match found {
            Some(c) => dispatch(self.task, c, &mut Some(record)),
            None => Err(Error::InvalidTopology {
                reason: format!(
                    "processor {} has no child named {child:?}",
                    self.task.node_name(self.node)
                ),
            }),
        }
    }

    /// Hand `record` to this node's `index`-th child (0-based, in the order children were
    /// added): the DSL's `split` uses it.
    pub(crate) fn forward_to_index(
        &mut self,
        record: Record<KOut, VOut>,
        index: usize,
    ) -> Result<()> {
        let children = self.task.children(self.node);
        match children.get(index) {
            Some(&c) => dispatch(self.task, c, &mut Some(record)),
            None => Err(Error::InvalidTopology {
                reason: format!(
                    "processor {} has no child number {index}",
                    self.task.node_name(self.node)
                ),
            }),
        }
    }
}

impl<KOut, VOut> ProcessorContext<'_, KOut, VOut> {
    /// The state store `name`, as its concrete type `S` (for example
    /// [`InMemoryKeyValueStore<K, V>`](super::InMemoryKeyValueStore)); an error if the store
    /// is not connected to this processor or is of another type.
    pub fn state_store<S: Any>(&mut self, name: &str) -> Result<&mut S> {
        self.task.store_for(self.node, name)
    }

    /// The key-value store `name`, in memory or persistent, as Kafka's `KeyValueStore`
    /// interface: a processor written against it works with either store its topology
    /// declares. An error if the store is not connected to this processor or holds other types.
    pub fn key_value_store<K, V>(&mut self, name: &str) -> Result<&mut dyn KeyValueStore<K, V>>
    where
        K: Ord + Clone + 'static,
        V: Clone + 'static,
    {
        let persistent = self
            .task
            .store_for::<super::PersistentKeyValueStore<K, V>>(self.node, name)
            .is_ok();
        if persistent {
            let store = self
                .task
                .store_for::<super::PersistentKeyValueStore<K, V>>(self.node, name)?;
            return Ok(store as &mut dyn KeyValueStore<K, V>);
        }
        let store = self
            .task
            .store_for::<super::InMemoryKeyValueStore<K, V>>(self.node, name)?;
        Ok(store as &mut dyn KeyValueStore<K, V>)
    }

    /// Where the current input record was read; `None` outside processing (in `init`).
    pub fn record_metadata(&self) -> Option<&RecordMetadata> {
        self.task.metadata.as_ref()
    }

    /// The `application.id` of the topology's config.
    pub fn application_id(&self) -> &str {
        &self.task.application_id
    }

    /// Call this processor's [`Processor::punctuate`] every `interval` of `kind` time (Kafka's
    /// `schedule`). At most one punctuation per call however far time jumps (Kafka's
    /// catch-up rule). An interval under 1 ms is an error.
    pub fn schedule(
        &mut self,
        interval: std::time::Duration,
        kind: PunctuationType,
    ) -> Result<ScheduleId> {
        let ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
        if ms < 1 {
            return Err(Error::config(
                "punctuation interval",
                format!("{interval:?}"),
                "the minimum supported scheduling interval is 1 millisecond",
            ));
        }
        Ok(self.task.schedule(self.node, ms, kind))
    }

    /// Stop a punctuation scheduled by this task; nothing if it already is.
    pub fn cancel(&mut self, schedule: ScheduleId) {
        self.task.cancel(schedule);
    }

    /// Count a record dropped by this processor (Kafka's `dropped-records` metric; a
    /// windowed aggregation's late records).
    pub fn record_dropped(&mut self) {
        self.task.dropped_records = self.task.dropped_records.saturating_add(1);
    }

    /// The byte budget of a record cache of this task (module `cache`).
    pub(crate) fn cache_max_bytes(&self) -> u64 {
        self.task.cache_max_bytes
    }

    /// This node's name in the topology.
    pub fn node_name(&self) -> &str {
        self.task.node_name(self.node)
    }

    /// The task's stream time: the largest timestamp of its input records so far (Kafka's
    /// `currentStreamTimeMs`); `i64::MIN` before the first record.
    pub fn current_stream_time_ms(&self) -> i64 {
        self.task.stream_time
    }

    /// The task's wall-clock time in milliseconds (Kafka's `currentSystemTimeMs`); in the test
    /// driver, the driver's mock clock.
    pub fn current_system_time_ms(&self) -> i64 {
        self.task.wall_clock_ms
    }
}
