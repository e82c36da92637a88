//! [`TopologyTestDriver`]: run a topology on records piped in by a test, synchronously and
//! deterministically (Kafka's `TopologyTestDriver` from `kafka-streams-test-utils`).
//!
//! Owns: one [`Task`] made from the topology, the input offsets per topic, the records the
//! sinks wrote (per topic, in order), and the typed handles that pipe records in
//! ([`TestInputTopic`]), read them out ([`TestOutputTopic`]) and read stores
//! ([`TestKeyValueStore`]).
//!
//! The choice (docs/ARCHITECTURE.md, "Issue #21: decisions"): in memory, as Kafka's driver
//! is, not over a temporary broker: no threads, no group, no files (but a temporary state
//! directory, removed with the driver, when the topology has persistent stores), so a piped record has
//! been processed, down to every sink, when `pipe_input` returns, and a test runs in
//! microseconds. Records still cross every topic boundary as bytes through the declared
//! serdes, including repartition topics, which the driver pipes back in as Kafka's does, so a
//! serde that does not round-trip fails here as it would in production.
//!
//! Invariants: every input topic is one partition (0) whose offsets count from 0; a record
//! written to a topic the topology reads (a repartition topic, or a user topic read back) is
//! processed after the record that caused it and before `pipe_input` returns, in the order
//! written; the handles share the driver (`Rc`), so they are neither `Send` nor usable from
//! inside the topology, which is what lets their short borrows never conflict.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::Hash;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::config::StreamsConfig;
use super::processor::{PunctuationType, Record};
use super::serdes::{Serde, SharedSerde};
use super::state::{
    InMemoryKeyValueStore, InMemorySessionStore, InMemoryWindowStore, ReadOnlyKeyValueStore,
    ReadOnlySessionStore, ReadOnlyWindowStore, ValueAndTimestamp, WindowsWithoutTimestamps,
    WithoutTimestamps,
};
use super::task::{Produced, Task};
use super::topology::Topology;
use super::window::Windowed;
use crate::error::{Error, Result};
use crate::typed::RecordPart;
use crate::types::{Bytes, Header};

struct Inner {
    topology: Topology,
    application_id: String,
    task: Task,
    /// The next offset of each input topic.
    offsets: HashMap<String, i64>,
    /// What the sinks wrote, per topic, not yet read, each with its offset in the topic.
    outputs: HashMap<String, VecDeque<(i64, Produced)>>,
    /// The next offset of each topic the sinks write.
    output_offsets: HashMap<String, i64>,
    /// The largest timestamp processed from each input topic (Kafka's partition time).
    partition_times: HashMap<String, i64>,
    /// The temporary state directory of the topology's persistent stores, if it has any.
    /// Declared last: dropped after the task, whose stores have their files open in it.
    _state_dir: Option<tempfile::TempDir>,
}

impl Inner {
    /// Process one record read from `first.topic`, then every record written meanwhile to a
    /// topic the topology reads.
    fn pipe(&mut self, first: Produced) -> Result<()> {
        if self
            .topology
            .source_for(&first.topic, &self.application_id)
            .is_none()
        {
            return Err(Error::UnknownTopic {
                topic: first.topic.into_owned(),
            });
        }
        self.run(VecDeque::from([first]))
    }

    /// Process the queued records in order, each followed by the stream-time punctuations it
    /// made due (Kafka's driver: `process`, then `maybePunctuateStreamTime`), and what they
    /// write to topics the topology reads after them.
    fn run(&mut self, mut queue: VecDeque<Produced>) -> Result<()> {
        while let Some(record) = queue.pop_front() {
            let Some(source) = self
                .topology
                .source_for(&record.topic, &self.application_id)
            else {
                continue;
            };
            let (node, decode, custom) = (
                source.node,
                Arc::clone(&source.decode),
                source.custom_timestamps,
            );
            let next = self.offsets.entry(record.topic.to_string()).or_insert(0);
            let offset = *next;
            *next += 1;
            let Produced {
                topic,
                key,
                value,
                timestamp,
                headers,
            } = record;
            let topic = topic.into_owned();
            let partition_time = self.partition_times.get(&topic).copied().unwrap_or(-1);
            let mut slot = None;
            let timestamp = decode(
                &mut slot,
                &topic,
                key,
                value,
                timestamp,
                headers,
                partition_time,
            )
            .map_err(|(part, e)| Error::Deserialization {
                topic: topic.clone(),
                partition: 0,
                offset,
                part,
                reason: e.to_string(),
            })?;
            if timestamp < 0 {
                if custom {
                    // Kafka's RecordQueue: "Skipping record due to negative extracted
                    // timestamp", counted as dropped.
                    self.task.dropped_records = self.task.dropped_records.saturating_add(1);
                    continue;
                }
                return Err(Error::InvalidRecord {
                    topic,
                    partition: 0,
                    reason: format!(
                        "record at offset {offset} has the invalid timestamp {timestamp} \
                         (Kafka's FailOnInvalidTimestamp; give the source a timestamp extractor \
                         to process it at another time)"
                    ),
                });
            }
            let time = self.partition_times.entry(topic.clone()).or_insert(-1);
            *time = (*time).max(timestamp);
            let Some(decoded) = slot.as_deref_mut() else {
                return Err(Error::IllegalState {
                    reason: format!("the source of {topic} decoded no record"),
                });
            };
            // Kafka's driver commits after every record, which flushes the record caches.
            let result = self
                .task
                .process(node, (&topic, 0, offset), timestamp, decoded)
                .and_then(|()| self.task.punctuate(PunctuationType::StreamTime))
                .and_then(|()| self.task.flush());
            self.collect(&mut queue);
            result?;
        }
        Ok(())
    }

    /// Move what the sinks wrote to the output topics, and queue what goes to topics the
    /// topology reads. Called after an error too: what was written before it was written, as
    /// a producer would have sent it.
    fn collect(&mut self, queue: &mut VecDeque<Produced>) {
        for produced in std::mem::take(&mut self.task.produced) {
            if self
                .topology
                .source_for(&produced.topic, &self.application_id)
                .is_some()
            {
                queue.push_back(produced.clone());
            }
            let next = self
                .output_offsets
                .entry(produced.topic.to_string())
                .or_insert(0);
            let offset = *next;
            *next += 1;
            self.outputs
                .entry(produced.topic.to_string())
                .or_default()
                .push_back((offset, produced));
        }
    }
}

/// Runs a [`Topology`] without threads, groups or a broker: pipe records in, read what the
/// sinks wrote, inspect stores (Kafka's `TopologyTestDriver`).
///
/// Kafka's WordCount test, `testOneWord`:
///
/// ```
/// use embroker::streams::{Consumed, Grouped, Materialized, Produced, StreamsBuilder, StreamsConfig, TopologyTestDriver};
/// use embroker::Builtin;
/// let builder = StreamsBuilder::new();
/// builder
///     .stream("streams-plaintext-input", Consumed::<(), String>::with(Builtin, Builtin))
///     .flat_map_values(|line: String| {
///         line.to_lowercase().split_whitespace().map(str::to_string).collect::<Vec<_>>()
///     })
///     .group_by(|_, word| word.clone(), Grouped::with(Builtin, Builtin))
///     .count(Materialized::as_("counts-store"))
///     .to_stream()
///     .to("streams-wordcount-output", Produced::with(Builtin, Builtin));
/// let driver = TopologyTestDriver::new(builder.build()?, StreamsConfig::new("streams-wordcount"))?;
/// let input = driver.create_input_topic::<(), String>("streams-plaintext-input", Builtin, Builtin);
/// let output = driver.create_output_topic::<String, i64>("streams-wordcount-output", Builtin, Builtin);
/// input.pipe_value("Hello".to_string())?;
/// assert_eq!(output.read_key_value()?, Some(("hello".to_string(), 1)));
/// assert!(output.is_empty());
/// # Ok::<(), embroker::Error>(())
/// ```
pub struct TopologyTestDriver {
    inner: Rc<RefCell<Inner>>,
}

impl TopologyTestDriver {
    /// A driver running `topology` with `config` (its `application.id` prefixes internal
    /// topics), the wall clock at 0.
    pub fn new(topology: Topology, config: StreamsConfig) -> Result<Self> {
        TopologyTestDriver::with_wall_clock(topology, config, 0)
    }

    /// A driver whose mock wall clock starts at `wall_clock_ms` (Kafka's
    /// `TopologyTestDriver(topology, config, initialWallClockTime)`).
    pub fn with_wall_clock(
        topology: Topology,
        config: StreamsConfig,
        wall_clock_ms: i64,
    ) -> Result<Self> {
        config.validate()?;
        let application_id = config.application_id().to_string();
        // Persistent stores get a temporary state directory, removed with the driver.
        let state_dir = if topology.stores.iter().any(|s| s.disk.is_some()) {
            Some(tempfile::tempdir().map_err(|e| {
                crate::Error::io(
                    "creating a temporary state directory in",
                    std::env::temp_dir(),
                    e,
                )
            })?)
        } else {
            None
        };
        let task = Task::new(
            &topology,
            &application_id,
            wall_clock_ms,
            config.cache_max_bytes(),
            state_dir.as_ref().map(|d| d.path()),
        )?;
        Ok(TopologyTestDriver {
            inner: Rc::new(RefCell::new(Inner {
                topology,
                application_id,
                task,
                offsets: HashMap::new(),
                outputs: HashMap::new(),
                output_offsets: HashMap::new(),
                partition_times: HashMap::new(),
                _state_dir: state_dir,
            })),
        })
    }

    /// A handle that pipes records into `topic`, serialized with the serdes; records it pipes
    /// without a timestamp get 0, then later ones as [`TestInputTopic::advance_time`] moves
    /// its clock.
    pub fn create_input_topic<K, V>(
        &self,
        topic: &str,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> TestInputTopic<K, V> {
        TestInputTopic {
            inner: Rc::clone(&self.inner),
            topic: topic.to_string(),
            key_serde: Arc::new(key_serde),
            value_serde: Arc::new(value_serde),
            time_ms: Cell::new(0),
        }
    }

    /// A handle that reads what the topology wrote to `topic` (internal topics by their full
    /// name, `<application.id>-<name>`), deserialized with the serdes.
    pub fn create_output_topic<K, V>(
        &self,
        topic: &str,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> TestOutputTopic<K, V> {
        TestOutputTopic {
            inner: Rc::clone(&self.inner),
            topic: topic.to_string(),
            key_serde: Arc::new(key_serde),
            value_serde: Arc::new(value_serde),
        }
    }

    /// The key-value store `name` of `K` to `V` (Kafka's `getKeyValueStore`); for the DSL's
    /// stores, which keep timestamps, the values without them. An error if there is no such
    /// store or it holds other types.
    pub fn get_key_value_store<K, V>(&self, name: &str) -> Result<TestKeyValueStore<K, V>>
    where
        K: Ord + Clone + 'static,
        V: Clone + 'static,
    {
        let store = TestKeyValueStore {
            inner: Rc::clone(&self.inner),
            name: name.to_string(),
            _types: std::marker::PhantomData,
        };
        store.with(|_| Ok(()))?;
        Ok(store)
    }

    /// A DSL store with its timestamps (Kafka's `getTimestampedKeyValueStore`).
    pub fn get_timestamped_key_value_store<K, V>(
        &self,
        name: &str,
    ) -> Result<TestKeyValueStore<K, ValueAndTimestamp<V>>>
    where
        K: Ord + Clone + 'static,
        V: Clone + 'static,
    {
        self.get_key_value_store::<K, ValueAndTimestamp<V>>(name)
    }

    /// The window store `name` of `K` to `V` (Kafka's `getWindowStore`); for the DSL's
    /// windowed aggregations, the values without their timestamps.
    pub fn get_window_store<K, V>(&self, name: &str) -> Result<TestWindowStore<K, V>>
    where
        K: Ord + Clone + 'static,
        V: Clone + 'static,
    {
        let store = TestWindowStore {
            inner: Rc::clone(&self.inner),
            name: name.to_string(),
            _types: std::marker::PhantomData,
        };
        store.with(|_| Ok(()))?;
        Ok(store)
    }

    /// The session store `name` of `K` to `V` (Kafka's `getSessionStore`).
    pub fn get_session_store<K, V>(&self, name: &str) -> Result<TestSessionStore<K, V>>
    where
        K: Ord + Clone + 'static,
        V: Clone + 'static,
    {
        let store = TestSessionStore {
            inner: Rc::clone(&self.inner),
            name: name.to_string(),
            _types: std::marker::PhantomData,
        };
        store.with(|_| Ok(()))?;
        Ok(store)
    }

    /// How many records processors dropped so far, such as records past a window's grace
    /// period (Kafka's `dropped-records-total` metric).
    pub fn dropped_records(&self) -> u64 {
        self.inner.borrow().task.dropped_records
    }

    /// Move the mock wall clock forward (Kafka's `advanceWallClockTime`); processors read it
    /// with [`ProcessorContext::current_system_time_ms`](super::ProcessorContext::current_system_time_ms).
    ///
    /// Runs the wall-clock punctuations that became due, then processes what they wrote to
    /// topics the topology reads.
    pub fn advance_wall_clock_time(&self, advance: Duration) -> Result<()> {
        let ms = i64::try_from(advance.as_millis()).unwrap_or(i64::MAX);
        let mut inner = self.inner.borrow_mut();
        inner.task.wall_clock_ms = inner.task.wall_clock_ms.saturating_add(ms);
        let result = inner
            .task
            .punctuate(PunctuationType::WallClockTime)
            .and_then(|()| inner.task.flush());
        let mut queue = VecDeque::new();
        inner.collect(&mut queue);
        result?;
        inner.run(queue)
    }

    /// The topics the topology has written to so far, sorted (Kafka's
    /// `producedTopicNames`).
    pub fn produced_topic_names(&self) -> BTreeSet<String> {
        self.inner.borrow().outputs.keys().cloned().collect()
    }

    /// Close every processor (Kafka's `close`).
    pub fn close(self) {
        self.inner.borrow_mut().task.close();
    }
}

/// Pipes records into an input topic of a [`TopologyTestDriver`] (Kafka's
/// `TestInputTopic`). Each call processes the record fully before it returns.
pub struct TestInputTopic<K, V> {
    inner: Rc<RefCell<Inner>>,
    topic: String,
    key_serde: SharedSerde<K>,
    value_serde: SharedSerde<V>,
    time_ms: Cell<i64>,
}

impl<K: 'static, V: 'static> TestInputTopic<K, V> {
    /// Pipe `key` and `value` at the topic's current time.
    pub fn pipe_input(&self, key: K, value: V) -> Result<()> {
        self.pipe_input_with_timestamp(key, value, self.time_ms.get())
    }

    /// Pipe `key` and `value` at `timestamp` (milliseconds since the epoch).
    pub fn pipe_input_with_timestamp(&self, key: K, value: V, timestamp: i64) -> Result<()> {
        let mut headers = Vec::new();
        let key = self
            .key_serde
            .serialize(&self.topic, &mut headers, key)
            .map_err(|e| self.serialization(RecordPart::Key, e))?;
        self.pipe_serialized(key, value, timestamp, headers)
    }

    /// Pipe `value` with a null key (Kafka's `pipeInput(value)`).
    pub fn pipe_value(&self, value: V) -> Result<()> {
        self.pipe_serialized(None, value, self.time_ms.get(), Vec::new())
    }

    /// Pipe each value with a null key, in order (Kafka's `pipeValueList`).
    pub fn pipe_values(&self, values: impl IntoIterator<Item = V>) -> Result<()> {
        values.into_iter().try_for_each(|v| self.pipe_value(v))
    }

    /// Pipe each key and value, in order (Kafka's `pipeKeyValueList`).
    pub fn pipe_key_values(&self, records: impl IntoIterator<Item = (K, V)>) -> Result<()> {
        records
            .into_iter()
            .try_for_each(|(k, v)| self.pipe_input(k, v))
    }

    /// Move this topic's clock, the timestamp of records piped without one (Kafka's
    /// `advanceTime`).
    pub fn advance_time(&self, advance: Duration) {
        let ms = i64::try_from(advance.as_millis()).unwrap_or(i64::MAX);
        self.time_ms.set(self.time_ms.get().saturating_add(ms));
    }

    fn pipe_serialized(
        &self,
        key: Option<Bytes>,
        value: V,
        timestamp: i64,
        mut headers: Vec<Header>,
    ) -> Result<()> {
        let value = self
            .value_serde
            .serialize(&self.topic, &mut headers, value)
            .map_err(|e| self.serialization(RecordPart::Value, e))?;
        self.inner.borrow_mut().pipe(Produced {
            topic: self.topic.clone().into(),
            key,
            value,
            timestamp,
            headers,
        })
    }

    fn serialization(&self, part: RecordPart, e: crate::typed::SerdeError) -> Error {
        Error::Serialization {
            topic: self.topic.clone(),
            part,
            reason: e.to_string(),
        }
    }
}

/// Reads what a topology wrote to a topic (Kafka's `TestOutputTopic`): records come out in
/// the order they were written, each once.
pub struct TestOutputTopic<K, V> {
    inner: Rc<RefCell<Inner>>,
    topic: String,
    key_serde: SharedSerde<K>,
    value_serde: SharedSerde<V>,
}

impl<K: 'static, V: 'static> TestOutputTopic<K, V> {
    /// The next record, or `None` if every record written so far was read. A record that does
    /// not deserialize is an error and stays first in the topic.
    pub fn read_record(&self) -> Result<Option<Record<K, V>>> {
        let mut inner = self.inner.borrow_mut();
        let Some(queue) = inner.outputs.get_mut(&self.topic) else {
            return Ok(None);
        };
        let Some((offset, front)) = queue.front() else {
            return Ok(None);
        };
        let deserialization = |part, e: crate::typed::SerdeError| Error::Deserialization {
            topic: self.topic.clone(),
            partition: 0,
            offset: *offset,
            part,
            reason: e.to_string(),
        };
        let key = self
            .key_serde
            .deserialize(&self.topic, &front.headers, front.key.clone())
            .map_err(|e| deserialization(RecordPart::Key, e))?;
        let value = self
            .value_serde
            .deserialize(&self.topic, &front.headers, front.value.clone())
            .map_err(|e| deserialization(RecordPart::Value, e))?;
        let Some((_, front)) = queue.pop_front() else {
            return Ok(None);
        };
        Ok(Some(Record {
            key,
            value,
            timestamp: front.timestamp,
            headers: front.headers,
        }))
    }

    /// The next record's key and value (Kafka's `readKeyValue`).
    pub fn read_key_value(&self) -> Result<Option<(K, V)>> {
        Ok(self.read_record()?.map(|r| (r.key, r.value)))
    }

    /// The next record's value (Kafka's `readValue`).
    pub fn read_value(&self) -> Result<Option<V>> {
        Ok(self.read_record()?.map(|r| r.value))
    }

    /// Every record not read yet (Kafka's `readRecordsToList`).
    pub fn read_records_to_list(&self) -> Result<Vec<Record<K, V>>> {
        std::iter::from_fn(|| self.read_record().transpose()).collect()
    }

    /// The keys and values of every record not read yet (Kafka's `readKeyValuesToList`).
    pub fn read_key_values_to_list(&self) -> Result<Vec<(K, V)>> {
        std::iter::from_fn(|| self.read_key_value().transpose()).collect()
    }

    /// The values of every record not read yet (Kafka's `readValuesToList`).
    pub fn read_values_to_list(&self) -> Result<Vec<V>> {
        std::iter::from_fn(|| self.read_value().transpose()).collect()
    }

    /// The last value per key of every record not read yet (Kafka's `readKeyValuesToMap`).
    pub fn read_key_values_to_map(&self) -> Result<HashMap<K, V>>
    where
        K: Hash + Eq,
    {
        let mut map = HashMap::new();
        while let Some((k, v)) = self.read_key_value()? {
            map.insert(k, v);
        }
        Ok(map)
    }

    /// Whether every record written so far was read (Kafka's `isEmpty`).
    pub fn is_empty(&self) -> bool {
        self.queue_size() == 0
    }

    /// How many records are written and not read yet (Kafka's `getQueueSize`).
    pub fn queue_size(&self) -> usize {
        self.inner
            .borrow()
            .outputs
            .get(&self.topic)
            .map_or(0, VecDeque::len)
    }
}

/// The store `name` of the driver's task, as the task keeps it (typed by the view).
fn find_store<'a>(inner: &'a Inner, name: &str) -> Result<&'a dyn std::any::Any> {
    inner.task.store_any(name).ok_or_else(|| Error::StateStore {
        store: name.to_string(),
        reason: "no such store in the topology".to_string(),
    })
}

/// The error of a view asked for with types the store `name` does not hold; `what` says
/// which kind of store was expected ("it is not a window store of").
fn wrong_store_type<K, V>(name: &str, what: &str) -> Error {
    Error::StateStore {
        store: name.to_string(),
        reason: format!(
            "{what} {} to {}",
            std::any::type_name::<K>(),
            std::any::type_name::<V>()
        ),
    }
}

/// A store of a [`TopologyTestDriver`], read between piped records (what Kafka's
/// `getKeyValueStore` returns). Reads are copies.
pub struct TestKeyValueStore<K, V> {
    inner: Rc<RefCell<Inner>>,
    name: String,
    _types: std::marker::PhantomData<fn() -> (K, V)>,
}

impl<K: Ord + Clone + 'static, V: Clone + 'static> TestKeyValueStore<K, V> {
    fn with<R>(&self, f: impl FnOnce(&dyn ReadOnlyKeyValueStore<K, V>) -> Result<R>) -> Result<R> {
        let inner = self.inner.borrow();
        let any = find_store(&inner, &self.name)?;
        if let Some(store) = any.downcast_ref::<InMemoryKeyValueStore<K, V>>() {
            return f(store);
        }
        if let Some(store) = any.downcast_ref::<InMemoryKeyValueStore<K, ValueAndTimestamp<V>>>() {
            return f(&WithoutTimestamps(store));
        }
        if let Some(store) = any.downcast_ref::<super::PersistentKeyValueStore<K, V>>() {
            return f(store);
        }
        if let Some(result) = super::global_store::read_values(any, f) {
            return result;
        }
        Err(wrong_store_type::<K, V>(&self.name, "it does not map"))
    }
}

impl<K: Ord + Clone + 'static, V: Clone + 'static> ReadOnlyKeyValueStore<K, V>
    for TestKeyValueStore<K, V>
{
    fn get(&self, key: &K) -> Result<Option<V>> {
        self.with(|s| s.get(key))
    }

    fn range(&self, from: &K, to: &K) -> Result<Vec<(K, V)>> {
        self.with(|s| s.range(from, to))
    }

    fn all(&self) -> Result<Vec<(K, V)>> {
        self.with(|s| s.all())
    }

    fn approximate_num_entries(&self) -> Result<u64> {
        self.with(|s| s.approximate_num_entries())
    }
}

/// A window store of a [`TopologyTestDriver`], read between piped records (what Kafka's
/// `getWindowStore` returns). Reads are copies.
pub struct TestWindowStore<K, V> {
    inner: Rc<RefCell<Inner>>,
    name: String,
    _types: std::marker::PhantomData<fn() -> (K, V)>,
}

impl<K: Ord + Clone + 'static, V: Clone + 'static> TestWindowStore<K, V> {
    fn with<R>(&self, f: impl FnOnce(&dyn ReadOnlyWindowStore<K, V>) -> Result<R>) -> Result<R> {
        let inner = self.inner.borrow();
        let any = find_store(&inner, &self.name)?;
        if let Some(store) = any.downcast_ref::<InMemoryWindowStore<K, V>>() {
            return f(store);
        }
        if let Some(store) = any.downcast_ref::<InMemoryWindowStore<K, ValueAndTimestamp<V>>>() {
            return f(&WindowsWithoutTimestamps(store));
        }
        Err(wrong_store_type::<K, V>(
            &self.name,
            "it is not a window store of",
        ))
    }
}

impl<K: Ord + Clone + 'static, V: Clone + 'static> ReadOnlyWindowStore<K, V>
    for TestWindowStore<K, V>
{
    fn fetch(&self, key: &K, window_start: i64) -> Result<Option<V>> {
        self.with(|s| s.fetch(key, window_start))
    }

    fn fetch_range(&self, key: &K, time_from: i64, time_to: i64) -> Result<Vec<(i64, V)>> {
        self.with(|s| s.fetch_range(key, time_from, time_to))
    }

    fn all(&self) -> Result<Vec<(Windowed<K>, V)>> {
        self.with(|s| s.all())
    }
}

/// A session store of a [`TopologyTestDriver`], read between piped records (what Kafka's
/// `getSessionStore` returns). Reads are copies.
pub struct TestSessionStore<K, V> {
    inner: Rc<RefCell<Inner>>,
    name: String,
    _types: std::marker::PhantomData<fn() -> (K, V)>,
}

impl<K: Ord + Clone + 'static, V: Clone + 'static> TestSessionStore<K, V> {
    fn with<R>(&self, f: impl FnOnce(&dyn ReadOnlySessionStore<K, V>) -> Result<R>) -> Result<R> {
        let inner = self.inner.borrow();
        let any = find_store(&inner, &self.name)?;
        match any.downcast_ref::<InMemorySessionStore<K, V>>() {
            Some(store) => f(store),
            None => Err(wrong_store_type::<K, V>(
                &self.name,
                "it is not a session store of",
            )),
        }
    }
}

impl<K: Ord + Clone + 'static, V: Clone + 'static> ReadOnlySessionStore<K, V>
    for TestSessionStore<K, V>
{
    fn fetch(&self, key: &K) -> Result<Vec<(Windowed<K>, V)>> {
        self.with(|s| s.fetch(key))
    }

    fn fetch_session(&self, key: &K, start: i64, end: i64) -> Result<Option<V>> {
        self.with(|s| s.fetch_session(key, start, end))
    }
}
