//! [`Topology`]: the graph of sources, processors, sinks and stores that the DSL builds
//! (Kafka's `Topology`), and the source and sink nodes themselves.
//!
//! Owns: node definitions (name, parents, children, connected stores, and a supplier that
//! makes a fresh instance of the node for each task), store definitions (name and supplier),
//! which topic each source reads (a topic is read by one source only, as in Kafka), and which
//! topics are internal repartition topics.
//!
//! Invariants: nodes are added parents first, so their indices are a topological order and a
//! task initializes them in index order; names of nodes and of stores are unique; a topology
//! is immutable once built and `Send + Sync`, so a runtime can make tasks from it on any
//! thread. Internal topic names are stored without the application id: a task prefixes them
//! (`<application.id>-<name>`), as Kafka does when the application starts.

use std::any::Any;
use std::collections::{BTreeSet, HashMap};
use std::fmt::{self, Write as _};
use std::sync::Arc;

use super::processor::Processor;
use super::processor::Record;
use super::runtime::changelog::StoreLogger;
use super::serdes::{Consumed, Produced, SharedSerde};
use super::state::InMemoryKeyValueStore;
use super::task::{Node, ProcessorNode, Task};
use crate::error::{Error, Result};
use crate::typed::{RecordPart, SerdeError};
use crate::types::{Bytes, Header};

/// Makes a fresh instance of a node for a task.
pub(crate) type NodeSupplier = Arc<dyn Fn() -> Box<dyn Node> + Send + Sync>;
/// Makes a fresh, empty store for a task.
pub(crate) type StoreSupplier = Arc<dyn Fn() -> Box<dyn Any> + Send + Sync>;
/// Turns a source topic's raw record (topic, key, value, timestamp, headers, and the
/// partition time so far) into a `Record<K, V>` of the source's types, put in the caller's
/// slot (an `Option<Record<K, V>>`, boxed once and reused: made or replaced if empty or of
/// another type), and returns the timestamp to process it at (the timestamp extractor's,
/// which the record also carries).
pub(crate) type Decoder = Arc<
    dyn Fn(
            &mut Option<Box<dyn Any>>,
            &str,
            Option<Bytes>,
            Option<Bytes>,
            i64,
            Vec<Header>,
            i64,
        ) -> Result<i64, (RecordPart, SerdeError)>
        + Send
        + Sync,
>;

/// Put `record` in a decoder's `slot`, reusing the slot's box when it has the right type.
fn fill_slot<K: 'static, V: 'static>(slot: &mut Option<Box<dyn Any>>, record: Record<K, V>) {
    match slot
        .as_mut()
        .and_then(|b| b.downcast_mut::<Option<Record<K, V>>>())
    {
        Some(s) => *s = Some(record),
        None => *slot = Some(Box::new(Some(record))),
    }
}

/// A timestamp extractor: the timestamp to process a record at, from the record and the
/// partition time (the largest timestamp of the partition so far, -1 before any).
pub(crate) type Extractor<K, V> = Arc<dyn Fn(&Record<K, V>, i64) -> i64 + Send + Sync>;

/// What a node is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NodeKind {
    Source {
        topic: String,
        internal: bool,
    },
    Processor,
    Sink {
        topic: String,
        internal: bool,
    },
    /// A sink whose topic a function picks per record (Kafka's `TopicNameExtractor`).
    DynamicSink,
}

/// Picks a sink's topic per record.
pub(crate) type TopicExtractor<K, V> = Arc<dyn Fn(&K, &V) -> String + Send + Sync>;

/// One node of the graph.
#[derive(Clone)]
pub(crate) struct NodeDef {
    pub(crate) name: String,
    pub(crate) kind: NodeKind,
    pub(crate) parents: Vec<usize>,
    pub(crate) children: Vec<usize>,
    pub(crate) stores: Vec<String>,
    pub(crate) make: NodeSupplier,
}

/// One store of the graph.
#[derive(Clone)]
pub(crate) struct StoreDef {
    pub(crate) name: String,
    pub(crate) make: StoreSupplier,
    /// How the runtime writes the store's changes to its changelog topic and restores them
    /// (`None`: the store has no changelog, and its state is lost when its task moves).
    pub(crate) logger: Option<Arc<dyn StoreLogger>>,
    /// How to reach the store's files, when it is persistent (`None`: it lives in memory).
    pub(crate) disk: Option<crate::streams::persistent::AsDiskStore>,
}

/// A source: the node that reads a topic and how it decodes the topic's records.
#[derive(Clone)]
pub(crate) struct SourceDef {
    pub(crate) node: usize,
    pub(crate) decode: Decoder,
    /// A timestamp extractor of the application's own: a negative timestamp from it drops the
    /// record (counted); from the record itself it is an error (Kafka's default,
    /// `FailOnInvalidTimestamp`).
    pub(crate) custom_timestamps: bool,
}

/// A processing graph: sources that read topics, processors, sinks that write topics, and
/// state stores (Kafka's `Topology`). Built by
/// [`StreamsBuilder::build`](super::StreamsBuilder::build); run by the
/// [`TopologyTestDriver`](super::TopologyTestDriver).
///
/// ```
/// use embroker::streams::{Consumed, Grouped, Materialized, StreamsBuilder};
/// use embroker::Builtin;
/// let builder = StreamsBuilder::new();
/// builder
///     .stream("words", Consumed::<(), String>::with(Builtin, Builtin))
///     .group_by(|_, word| word.clone(), Grouped::with(Builtin, Builtin))
///     .count(Materialized::as_("counts"));
/// let topology = builder.build()?;
/// assert_eq!(topology.source_topics(), vec!["counts-repartition", "words"]);
/// assert_eq!(topology.repartition_topics(), vec!["counts-repartition"]);
/// assert_eq!(topology.state_stores(), vec!["counts"]);
/// # Ok::<(), embroker::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct Topology {
    pub(crate) nodes: Vec<NodeDef>,
    pub(crate) stores: Vec<StoreDef>,
    /// Source topics (internal ones without the application id) to their source.
    pub(crate) sources: HashMap<String, SourceDef>,
    /// The next index for generated names (Kafka's `KSTREAM-FILTER-0000000001`).
    pub(crate) next_index: usize,
    /// The nodes whose source topics must be co-partitioned, one group per join
    /// (`copartition.rs`).
    pub(crate) copartition_nodes: Vec<Vec<usize>>,
    /// Topics read into global tables: every task reads all their partitions, so they take
    /// no part in co-partitioning (`dsl/global.rs`).
    pub(crate) global_topics: BTreeSet<String>,
    /// The global tables' stores, with their topics (`global_store.rs`).
    pub(crate) global_stores: Vec<super::global_store::GlobalStoreDef>,
}

impl Topology {
    /// The topics the topology reads, sorted; internal topics without the application id.
    /// Global-table topics are not among them (see [`global_topics`](Self::global_topics)).
    pub fn source_topics(&self) -> Vec<String> {
        let set: BTreeSet<&String> = self
            .sources
            .keys()
            .filter(|t| !self.global_topics.contains(*t))
            .collect();
        set.into_iter().cloned().collect()
    }

    /// The topics read into global tables, sorted: every instance reads all their
    /// partitions, outside the consumer group (Kafka's global topics).
    pub fn global_topics(&self) -> Vec<String> {
        self.global_topics.iter().cloned().collect()
    }

    /// The topics the topology writes, sorted; internal topics without the application id
    /// (sinks with a topic extractor write topics known only per record, not listed).
    pub fn sink_topics(&self) -> Vec<String> {
        let set: BTreeSet<&String> = self
            .nodes
            .iter()
            .filter_map(|n| match &n.kind {
                NodeKind::Sink { topic, .. } => Some(topic),
                _ => None,
            })
            .collect();
        set.into_iter().cloned().collect()
    }

    /// The internal repartition topics (Kafka's `<name>-repartition`, created by a grouping
    /// after a key change), sorted, without the application id.
    pub fn repartition_topics(&self) -> Vec<String> {
        let set: BTreeSet<&String> = self
            .nodes
            .iter()
            .filter_map(|n| match &n.kind {
                NodeKind::Source {
                    topic,
                    internal: true,
                } => Some(topic),
                _ => None,
            })
            .collect();
        set.into_iter().cloned().collect()
    }

    /// The names of the state stores, sorted.
    pub fn state_stores(&self) -> Vec<String> {
        let set: BTreeSet<&String> = self.stores.iter().map(|s| &s.name).collect();
        set.into_iter().cloned().collect()
    }

    /// An empty topology, for the Processor API: add sources, processors, stores and sinks by
    /// name (Kafka's `new Topology()`). The DSL builds one with
    /// [`StreamsBuilder::build`](super::StreamsBuilder::build) instead.
    ///
    /// Each `add_*` checks what it can (new names, existing parents and stores, a topic read
    /// by one source); the key and value types between nodes are checked when records flow:
    /// a processor given records of other types fails with [`Error::InvalidTopology`] naming
    /// it.
    ///
    /// ```
    /// use embroker::streams::{Consumed, Processor, ProcessorContext, Produced, Record, StreamsConfig, Topology, TopologyTestDriver};
    /// use embroker::Builtin;
    /// /// Upper-cases values.
    /// struct Upper;
    /// impl Processor<String, String, String, String> for Upper {
    ///     fn process(&mut self, r: Record<String, String>, ctx: &mut ProcessorContext<'_, String, String>) -> embroker::Result<()> {
    ///         let v = r.value.to_uppercase();
    ///         ctx.forward(r.with_value(v))
    ///     }
    /// }
    /// let mut topology = Topology::new();
    /// topology
    ///     .add_source("Source", "in", Consumed::<String, String>::with(Builtin, Builtin))?
    ///     .add_processor("Upper", || Upper, &["Source"])?
    ///     .add_sink("Sink", "out", Produced::<String, String>::with(Builtin, Builtin), &["Upper"])?;
    /// let driver = TopologyTestDriver::new(topology, StreamsConfig::new("app"))?;
    /// driver.create_input_topic::<String, String>("in", Builtin, Builtin).pipe_input("k".into(), "hi".into())?;
    /// let out = driver.create_output_topic::<String, String>("out", Builtin, Builtin);
    /// assert_eq!(out.read_value()?, Some("HI".to_string()));
    /// # Ok::<(), embroker::Error>(())
    /// ```
    pub fn new() -> Self {
        Topology::default()
    }

    /// Add a source `name` that reads `topic` with `consumed`'s serdes (Kafka's
    /// `addSource`).
    pub fn add_source<K, V>(
        &mut self,
        name: &str,
        topic: &str,
        consumed: Consumed<K, V>,
    ) -> Result<&mut Self>
    where
        K: Clone + 'static,
        V: Clone + 'static,
    {
        self.source_node::<K, V>(
            name.to_string(),
            topic,
            false,
            consumed.key_serde,
            consumed.value_serde,
            consumed.timestamp_extractor,
        )?;
        Ok(self)
    }

    /// Add a processor `name` under `parents`, made by `make` once per task (Kafka's
    /// `addProcessor`).
    pub fn add_processor<KI, VI, KO, VO, P>(
        &mut self,
        name: &str,
        make: impl Fn() -> P + Send + Sync + 'static,
        parents: &[&str],
    ) -> Result<&mut Self>
    where
        P: Processor<KI, VI, KO, VO> + 'static,
        KI: 'static,
        VI: 'static,
        KO: Clone + 'static,
        VO: Clone + 'static,
    {
        let parents = self.ids(name, parents)?;
        let supplier: NodeSupplier = Arc::new(move || {
            Box::new(ProcessorNode::<P, KI, VI, KO, VO>::new(make())) as Box<dyn Node>
        });
        self.add_node(
            name.to_string(),
            NodeKind::Processor,
            &parents,
            Vec::new(),
            supplier,
        )?;
        Ok(self)
    }

    /// Add a sink `name` under `parents` that writes `topic` with `produced`'s serdes
    /// (Kafka's `addSink`).
    pub fn add_sink<K: 'static, V: 'static>(
        &mut self,
        name: &str,
        topic: &str,
        produced: Produced<K, V>,
        parents: &[&str],
    ) -> Result<&mut Self> {
        let parents = self.ids(name, parents)?;
        self.add_sink_under(
            name.to_string(),
            topic,
            false,
            produced.key_serde,
            produced.value_serde,
            &parents,
        )?;
        Ok(self)
    }

    /// Add an in-memory key-value store `name` of `K` to `V`, connected to the processors
    /// `processors` (Kafka's `addStateStore` with `Stores.inMemoryKeyValueStore`).
    pub fn add_state_store<K, V>(&mut self, name: &str, processors: &[&str]) -> Result<&mut Self>
    where
        K: Ord + Clone + 'static,
        V: Clone + 'static,
    {
        let ids = self.ids(name, processors)?;
        let store_name = name.to_string();
        let make: StoreSupplier = Arc::new(move || {
            Box::new(InMemoryKeyValueStore::<K, V>::new(store_name.clone())) as Box<dyn Any>
        });
        self.add_store(name, make)?;
        self.connect(name, &ids)
    }

    /// Add the store `builder` declares, connected to the processors `processors` (Kafka's
    /// `addStateStore(StoreBuilder, processorNames...)`): logged unless the builder disabled
    /// logging, so that under [`KafkaStreams`](super::KafkaStreams) it is restored from its
    /// changelog `<application.id>-<store>-changelog` when its task starts or moves.
    pub fn add_state_store_builder<K, V>(
        &mut self,
        builder: super::StoreBuilder<K, V>,
        processors: &[&str],
    ) -> Result<&mut Self>
    where
        K: Ord + Clone + 'static,
        V: Clone + 'static,
    {
        let name = builder.name().to_string();
        let ids = self.ids(&name, processors)?;
        builder.add_to(self)?;
        self.connect(&name, &ids)
    }

    /// Give the processors `processors` access to the store `store` (Kafka's
    /// `connectProcessorAndStateStores`).
    pub fn connect_processor_and_state_store(
        &mut self,
        store: &str,
        processors: &[&str],
    ) -> Result<&mut Self> {
        if !self.stores.iter().any(|s| s.name == store) {
            return Err(Error::StateStore {
                store: store.to_string(),
                reason: "no such store in the topology".to_string(),
            });
        }
        let ids = self.ids(store, processors)?;
        self.connect(store, &ids)
    }

    fn connect(&mut self, store: &str, ids: &[usize]) -> Result<&mut Self> {
        for &id in ids {
            if let Some(node) = self.nodes.get_mut(id) {
                if !matches!(node.kind, NodeKind::Processor) {
                    return Err(Error::InvalidTopology {
                        reason: format!(
                            "{} is not a processor: it cannot use store {store:?}",
                            node.name
                        ),
                    });
                }
                if !node.stores.iter().any(|s| s == store) {
                    node.stores.push(store.to_string());
                }
            }
        }
        Ok(self)
    }

    /// The indices of the nodes named `names`, for `of` (named in the error).
    fn ids(&self, of: &str, names: &[&str]) -> Result<Vec<usize>> {
        names
            .iter()
            .map(|n| {
                self.nodes
                    .iter()
                    .position(|node| node.name == *n)
                    .ok_or_else(|| Error::InvalidTopology {
                        reason: format!("{of:?} refers to {n:?}, which is not added"),
                    })
            })
            .collect()
    }

    /// A generated name: `PREFIX-` and the next index in ten digits, as Kafka names nodes
    /// and internal stores.
    pub(crate) fn generate_name(&mut self, prefix: &str) -> String {
        let name = format!("{prefix}-{:010}", self.next_index);
        self.next_index += 1;
        name
    }

    /// Add a node under `parents` (which must exist); its index.
    pub(crate) fn add_node(
        &mut self,
        name: String,
        kind: NodeKind,
        parents: &[usize],
        stores: Vec<String>,
        make: NodeSupplier,
    ) -> Result<usize> {
        if self.nodes.iter().any(|n| n.name == name) {
            return Err(Error::InvalidTopology {
                reason: format!("processor {name:?} is already added"),
            });
        }
        for store in &stores {
            if !self.stores.iter().any(|s| &s.name == store) {
                return Err(Error::InvalidTopology {
                    reason: format!("processor {name:?} uses store {store:?}, which is not added"),
                });
            }
        }
        let id = self.nodes.len();
        for &p in parents {
            let parent = self
                .nodes
                .get_mut(p)
                .ok_or_else(|| Error::InvalidTopology {
                    reason: format!("parent number {p} of processor {name:?} does not exist"),
                })?;
            if matches!(parent.kind, NodeKind::Sink { .. }) {
                return Err(Error::InvalidTopology {
                    reason: format!("sink {} cannot be the parent of {name:?}", parent.name),
                });
            }
            parent.children.push(id);
        }
        self.nodes.push(NodeDef {
            name,
            kind,
            parents: parents.to_vec(),
            children: Vec::new(),
            stores,
            make,
        });
        Ok(id)
    }

    /// Add a source node reading `topic` with the serdes (both see nulls: the serde decides
    /// what a null means); `internal` marks a repartition topic.
    pub(crate) fn source_node<K, V>(
        &mut self,
        name: String,
        topic: &str,
        internal: bool,
        key_serde: SharedSerde<K>,
        value_serde: SharedSerde<V>,
        extractor: Option<Extractor<K, V>>,
    ) -> Result<usize>
    where
        K: Clone + 'static,
        V: Clone + 'static,
    {
        let custom = extractor.is_some();
        let decode: Decoder = Arc::new(
            move |slot, topic, key, value, timestamp, headers, partition_time| {
                let key = key_serde
                    .deserialize(topic, &headers, key)
                    .map_err(|e| (RecordPart::Key, e))?;
                let value = value_serde
                    .deserialize(topic, &headers, value)
                    .map_err(|e| (RecordPart::Value, e))?;
                let mut record = Record {
                    key,
                    value,
                    timestamp,
                    headers,
                };
                if let Some(extract) = &extractor {
                    record.timestamp = extract(&record, partition_time);
                }
                let timestamp = record.timestamp;
                fill_slot(slot, record);
                Ok(timestamp)
            },
        );
        self.add_source_node::<K, V>(name, topic, internal, decode, custom)
    }

    /// [`source_node`](Self::source_node) for a table: values as `Option<V>`, null as `None`
    /// without asking the value serde (a tombstone).
    pub(crate) fn add_table_source<K, V>(
        &mut self,
        name: String,
        topic: &str,
        key_serde: SharedSerde<K>,
        value_serde: SharedSerde<V>,
        extractor: Option<Extractor<K, V>>,
    ) -> Result<usize>
    where
        K: Clone + 'static,
        V: Clone + 'static,
    {
        let custom = extractor.is_some();
        let decode: Decoder = Arc::new(
            move |slot, topic, key, value, timestamp, headers, partition_time| {
                let key = key_serde
                    .deserialize(topic, &headers, key)
                    .map_err(|e| (RecordPart::Key, e))?;
                let value = match value {
                    None => None,
                    Some(bytes) => Some(
                        value_serde
                            .deserialize(topic, &headers, Some(bytes))
                            .map_err(|e| (RecordPart::Value, e))?,
                    ),
                };
                // The extractor reads a row; a tombstone keeps its record's timestamp.
                let (value, timestamp) = match (value, &extractor) {
                    (Some(v), Some(extract)) => {
                        let row = Record {
                            key,
                            value: v,
                            timestamp,
                            headers,
                        };
                        let t = extract(&row, partition_time);
                        let record = Record {
                            key: row.key,
                            value: Some(row.value),
                            timestamp: t,
                            headers: row.headers,
                        };
                        fill_slot(slot, record);
                        return Ok(t);
                    }
                    (value, _) => (value, timestamp),
                };
                let record = Record {
                    key,
                    value,
                    timestamp,
                    headers,
                };
                fill_slot(slot, record);
                Ok(timestamp)
            },
        );
        self.add_source_node::<K, Option<V>>(name, topic, false, decode, custom)
    }

    fn add_source_node<K, V>(
        &mut self,
        name: String,
        topic: &str,
        internal: bool,
        decode: Decoder,
        custom_timestamps: bool,
    ) -> Result<usize>
    where
        K: Clone + 'static,
        V: Clone + 'static,
    {
        if self.sources.contains_key(topic) {
            return Err(Error::InvalidTopology {
                reason: format!("topic {topic:?} has already been registered by another source"),
            });
        }
        let make: NodeSupplier = Arc::new(|| {
            Box::new(ProcessorNode::<_, K, V, K, V>::new(
                PassThrough::<K, V>::new(),
            )) as Box<dyn Node>
        });
        let node = self.add_node(
            name,
            NodeKind::Source {
                topic: topic.to_string(),
                internal,
            },
            &[],
            Vec::new(),
            make,
        )?;
        self.sources.insert(
            topic.to_string(),
            SourceDef {
                node,
                decode,
                custom_timestamps,
            },
        );
        Ok(node)
    }

    /// Add a sink node under `parent` that writes `topic` with the serdes.
    pub(crate) fn sink_node<K, V>(
        &mut self,
        name: String,
        topic: &str,
        internal: bool,
        key_serde: SharedSerde<K>,
        value_serde: SharedSerde<V>,
        parent: usize,
    ) -> Result<usize>
    where
        K: 'static,
        V: 'static,
    {
        self.add_sink_under(name, topic, internal, key_serde, value_serde, &[parent])
    }

    /// Add a sink node under `parents` that writes `topic` with the serdes.
    fn add_sink_under<K, V>(
        &mut self,
        name: String,
        topic: &str,
        internal: bool,
        key_serde: SharedSerde<K>,
        value_serde: SharedSerde<V>,
        parents: &[usize],
    ) -> Result<usize>
    where
        K: 'static,
        V: 'static,
    {
        let topic_name = topic.to_string();
        let make: NodeSupplier = Arc::new(move || {
            Box::new(Sink {
                topic: topic_name.clone(),
                internal,
                full_topic: "",
                extractor: None,
                key_serde: key_serde.clone(),
                value_serde: value_serde.clone(),
            }) as Box<dyn Node>
        });
        self.add_node(
            name,
            NodeKind::Sink {
                topic: topic.to_string(),
                internal,
            },
            parents,
            Vec::new(),
            make,
        )
    }

    /// Add a sink under `parent` that writes each record to the topic `extractor` picks,
    /// with the serdes.
    pub(crate) fn dynamic_sink_node<K: 'static, V: 'static>(
        &mut self,
        name: String,
        extractor: TopicExtractor<K, V>,
        key_serde: SharedSerde<K>,
        value_serde: SharedSerde<V>,
        parent: usize,
    ) -> Result<usize> {
        let make: NodeSupplier = Arc::new(move || {
            Box::new(Sink {
                topic: String::new(),
                internal: false,
                full_topic: "",
                extractor: Some(extractor.clone()),
                key_serde: key_serde.clone(),
                value_serde: value_serde.clone(),
            }) as Box<dyn Node>
        });
        self.add_node(name, NodeKind::DynamicSink, &[parent], Vec::new(), make)
    }

    /// Add a store; its name must be new.
    pub(crate) fn add_store(&mut self, name: &str, make: StoreSupplier) -> Result<()> {
        if self.stores.iter().any(|s| s.name == name) {
            return Err(Error::InvalidTopology {
                reason: format!("a state store named {name:?} is already added"),
            });
        }
        self.stores.push(StoreDef {
            name: name.to_string(),
            make,
            logger: None,
            disk: None,
        });
        Ok(())
    }

    /// Add a store whose changes the runtime writes to its changelog topic
    /// (`<application.id>-<name>-changelog`) with `logger`; its name must be new.
    pub(crate) fn add_logged_store(
        &mut self,
        name: &str,
        make: StoreSupplier,
        logger: Arc<dyn StoreLogger>,
    ) -> Result<()> {
        self.add_store(name, make)?;
        if let Some(def) = self.stores.last_mut() {
            def.logger = Some(logger);
        }
        Ok(())
    }

    /// The source reading `topic` (internal topics by their full name, with the application
    /// id), and the topic's name inside the topology.
    pub(crate) fn source_for(&self, topic: &str, application_id: &str) -> Option<&SourceDef> {
        if let Some(source) = self.sources.get(topic) {
            if !self.is_internal_source(topic) {
                return Some(source);
            }
        }
        let inner = topic.strip_prefix(application_id)?.strip_prefix('-')?;
        self.sources
            .get(inner)
            .filter(|_| self.is_internal_source(inner))
    }

    fn is_internal_source(&self, topic: &str) -> bool {
        self.sources.get(topic).is_some_and(|s| {
            self.nodes
                .get(s.node)
                .is_some_and(|n| matches!(n.kind, NodeKind::Source { internal: true, .. }))
        })
    }
}

impl fmt::Display for Topology {
    /// The nodes in order with their topics, stores and children (after Kafka's
    /// `TopologyDescription`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::from("Topologies:\n");
        for node in &self.nodes {
            let _ = match &node.kind {
                NodeKind::Source { topic, .. } => {
                    writeln!(out, "  Source: {} (topics: [{topic}])", node.name)
                }
                NodeKind::Processor => {
                    writeln!(
                        out,
                        "  Processor: {} (stores: {:?})",
                        node.name, node.stores
                    )
                }
                NodeKind::Sink { topic, .. } => {
                    writeln!(out, "  Sink: {} (topic: {topic})", node.name)
                }
                NodeKind::DynamicSink => {
                    writeln!(out, "  Sink: {} (topic extractor)", node.name)
                }
            };
            let names = |ids: &[usize]| -> Vec<&str> {
                ids.iter()
                    .filter_map(|&c| self.nodes.get(c).map(|n| n.name.as_str()))
                    .collect()
            };
            let _ = writeln!(out, "    --> {}", or_none(&names(&node.children)));
            let _ = writeln!(out, "    <-- {}", or_none(&names(&node.parents)));
        }
        f.write_str(&out)
    }
}

/// Kafka's way of listing names: comma-separated, `none` for none.
fn or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// A node that forwards what it receives: sources, `merge`, branches.
pub(crate) struct PassThrough<K, V>(std::marker::PhantomData<fn(K, V)>);

impl<K, V> PassThrough<K, V> {
    pub(crate) fn new() -> Self {
        PassThrough(std::marker::PhantomData)
    }
}

impl<K: Clone + 'static, V: Clone + 'static> super::processor::Processor<K, V, K, V>
    for PassThrough<K, V>
{
    fn process(
        &mut self,
        record: Record<K, V>,
        context: &mut super::processor::ProcessorContext<'_, K, V>,
    ) -> Result<()> {
        context.forward(record)
    }
}

/// The node that serializes records and hands them to the task's record collector.
struct Sink<K, V> {
    topic: String,
    internal: bool,
    /// `topic`, prefixed with the application id if internal, interned; set at `init`.
    full_topic: &'static str,
    /// If set, picks each record's topic instead.
    extractor: Option<TopicExtractor<K, V>>,
    key_serde: SharedSerde<K>,
    value_serde: SharedSerde<V>,
}

impl<K: 'static, V: 'static> Node for Sink<K, V> {
    fn init(&mut self, task: &mut Task, _: usize) -> Result<()> {
        self.full_topic = if self.internal {
            crate::topic_names::intern_topic(&format!("{}-{}", task.application_id, self.topic))
        } else {
            crate::topic_names::intern_topic(&self.topic)
        };
        Ok(())
    }

    fn process(&mut self, record: &mut dyn Any, task: &mut Task, id: usize) -> Result<()> {
        let Some(record) = super::task::take_record::<K, V>(record) else {
            return Err(Error::InvalidTopology {
                reason: format!(
                    "sink {} received a record whose key or value type is not the one it writes",
                    task.node_name(id)
                ),
            });
        };
        let Record {
            key,
            value,
            timestamp,
            mut headers,
        } = record;
        let topic: std::borrow::Cow<'static, str> = match &self.extractor {
            Some(extract) => extract(&key, &value).into(),
            None => self.full_topic.into(),
        };
        let serialization = |part: RecordPart, e: SerdeError| Error::Serialization {
            topic: topic.to_string(),
            part,
            reason: e.to_string(),
        };
        let key = self
            .key_serde
            .serialize(&topic, &mut headers, key)
            .map_err(|e| serialization(RecordPart::Key, e))?;
        let value = self
            .value_serde
            .serialize(&topic, &mut headers, value)
            .map_err(|e| serialization(RecordPart::Value, e))?;
        task.produced.push(super::task::Produced {
            topic,
            key,
            value,
            timestamp,
            headers,
        });
        Ok(())
    }

    fn punctuate(
        &mut self,
        _: &mut Task,
        _: usize,
        _: crate::streams::ScheduleId,
        _: i64,
    ) -> Result<()> {
        Ok(())
    }

    fn close(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::processor::{Processor, ProcessorContext};
    use crate::Builtin;

    fn serde<T>() -> SharedSerde<T>
    where
        Builtin: crate::streams::Serde<T>,
    {
        Arc::new(Builtin)
    }

    /// Forwards its input as a value of another type.
    struct Stringify;

    impl Processor<String, i64, String, String> for Stringify {
        fn process(
            &mut self,
            r: Record<String, i64>,
            ctx: &mut ProcessorContext<'_, String, String>,
        ) -> Result<()> {
            let v = r.value.to_string();
            ctx.forward(r.with_value(v))
        }
    }

    fn stringify() -> NodeSupplier {
        Arc::new(|| {
            Box::new(ProcessorNode::<_, String, i64, String, String>::new(
                Stringify,
            )) as Box<dyn Node>
        })
    }

    #[test]
    fn names_are_kafkas_and_unique() {
        let mut t = Topology::default();
        assert_eq!(
            t.generate_name("KSTREAM-SOURCE"),
            "KSTREAM-SOURCE-0000000000"
        );
        assert_eq!(
            t.generate_name("KSTREAM-FILTER"),
            "KSTREAM-FILTER-0000000001"
        );
        let src = t
            .source_node::<String, i64>("s".into(), "in", false, serde(), serde(), None)
            .unwrap();
        let e = t
            .add_node(
                "s".into(),
                NodeKind::Processor,
                &[],
                Vec::new(),
                stringify(),
            )
            .unwrap_err();
        assert!(e.to_string().contains("\"s\" is already added"), "{e}");
        let e = t
            .add_node(
                "p".into(),
                NodeKind::Processor,
                &[7],
                Vec::new(),
                stringify(),
            )
            .unwrap_err();
        assert!(e.to_string().contains("parent number 7"), "{e}");
        let e = t
            .add_node(
                "p".into(),
                NodeKind::Processor,
                &[src],
                vec!["nope".into()],
                stringify(),
            )
            .unwrap_err();
        assert!(
            e.to_string().contains("\"nope\", which is not added"),
            "{e}"
        );
        let sink = t
            .sink_node::<String, i64>("k".into(), "out", false, serde(), serde(), src)
            .unwrap();
        let e = t
            .add_node(
                "p".into(),
                NodeKind::Processor,
                &[sink],
                Vec::new(),
                stringify(),
            )
            .unwrap_err();
        assert!(e.to_string().contains("sink k cannot be the parent"), "{e}");
        assert_eq!(t.sink_topics(), ["out"]);
    }

    #[test]
    fn internal_topics_are_found_by_their_full_name_only() {
        let mut t = Topology::default();
        t.source_node::<String, i64>("a".into(), "x-repartition", true, serde(), serde(), None)
            .unwrap();
        t.source_node::<String, i64>("b".into(), "plain", false, serde(), serde(), None)
            .unwrap();
        assert!(t.source_for("app-x-repartition", "app").is_some());
        assert!(t.source_for("x-repartition", "app").is_none());
        assert!(t.source_for("other-x-repartition", "app").is_none());
        assert!(t.source_for("plain", "app").is_some());
        assert!(t.source_for("app-plain", "app").is_none());
        assert_eq!(t.repartition_topics(), ["x-repartition"]);
    }

    #[test]
    fn a_processor_fed_the_wrong_types_is_an_error_not_a_panic() {
        let mut t = Topology::default();
        // The source makes (String, String) records; the processor takes (String, i64).
        let src = t
            .source_node::<String, String>("s".into(), "in", false, serde(), serde(), None)
            .unwrap();
        t.add_node(
            "p".into(),
            NodeKind::Processor,
            &[src],
            Vec::new(),
            stringify(),
        )
        .unwrap();
        let mut task = Task::new(&t, "app", 0, 0, None).unwrap();
        let mut record = Some(Record::new("k".to_string(), "v".to_string(), 0));
        let e = task.process(src, ("in", 0, 0), 0, &mut record).unwrap_err();
        assert!(matches!(e, Error::InvalidTopology { .. }), "{e}");
        assert!(e.to_string().contains("processor p"), "{e}");
        // Put back after the error: the next record runs (and fails the same way).
        let mut record = Some(Record::new("k".to_string(), "v".to_string(), 0));
        assert!(task.process(src, ("in", 0, 0), 0, &mut record).is_err());
        assert_eq!(task.stream_time, 0);
    }

    /// Records the metadata it sees and takes the record out of its slot.
    struct Metadata(Arc<std::sync::Mutex<Vec<crate::streams::RecordMetadata>>>);

    impl Processor<String, i64, String, i64> for Metadata {
        fn process(
            &mut self,
            _: Record<String, i64>,
            ctx: &mut ProcessorContext<'_, String, i64>,
        ) -> Result<()> {
            if let Some(m) = ctx.record_metadata() {
                self.0.lock().unwrap().push(m.clone());
            }
            Ok(())
        }
    }

    #[test]
    fn record_metadata_follows_each_record_and_the_slot_is_emptied() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut t = Topology::default();
        let src = t
            .source_node::<String, i64>("s".into(), "in", false, serde(), serde(), None)
            .unwrap();
        let make = {
            let seen = Arc::clone(&seen);
            move || {
                Box::new(ProcessorNode::<_, String, i64, String, i64>::new(Metadata(
                    Arc::clone(&seen),
                ))) as Box<dyn Node>
            }
        };
        t.add_node(
            "p".into(),
            NodeKind::Processor,
            &[src],
            Vec::new(),
            Arc::new(make),
        )
        .unwrap();
        let mut task = Task::new(&t, "app", 0, 0, None).unwrap();
        // The topic's string is reused between records: a change of topic (longer, then
        // shorter) must still show each record's own.
        let reads = [("in", 0, 5), ("a-longer-topic", 1, 6), ("in", 0, 7)];
        for (i, read) in reads.iter().enumerate() {
            let mut slot = Some(Record::new("k".to_string(), i as i64, 1));
            task.process(src, *read, 1, &mut slot).unwrap();
            assert!(slot.is_none(), "the source's child took the record");
            assert!(task.metadata.is_none(), "no metadata outside processing");
        }
        let got: Vec<(String, i32, i64)> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|m| (m.topic.clone(), m.partition, m.offset))
            .collect();
        let want: Vec<(String, i32, i64)> = reads
            .iter()
            .map(|(t, p, o)| (t.to_string(), *p, *o))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn sinks_serialize_and_prefix_internal_topics() {
        let mut t = Topology::default();
        let src = t
            .source_node::<String, i64>("s".into(), "in", false, serde(), serde(), None)
            .unwrap();
        t.sink_node::<String, i64>("k1".into(), "r-repartition", true, serde(), serde(), src)
            .unwrap();
        t.sink_node::<String, i64>("k2".into(), "out", false, serde(), serde(), src)
            .unwrap();
        let mut task = Task::new(&t, "app", 0, 0, None).unwrap();
        let mut record = Some(Record::new("k".to_string(), 258i64, 9));
        task.process(src, ("in", 0, 0), 9, &mut record).unwrap();
        let topics: Vec<&str> = task.produced.iter().map(|p| p.topic.as_ref()).collect();
        assert_eq!(topics, ["app-r-repartition", "out"]);
        let p = &task.produced[1];
        assert_eq!(p.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(p.value.as_deref(), Some(&[0, 0, 0, 0, 0, 0, 1, 2][..]));
        assert_eq!(p.timestamp, 9);
    }

    /// Schedules a 1 ms wall-clock punctuation and counts its runs.
    struct Ticker(std::rc::Rc<std::cell::Cell<u32>>);

    impl Processor<String, i64, String, i64> for Ticker {
        fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<()> {
            ctx.schedule(
                std::time::Duration::from_millis(1),
                crate::streams::PunctuationType::WallClockTime,
            )?;
            Ok(())
        }

        fn process(
            &mut self,
            _: Record<String, i64>,
            _: &mut ProcessorContext<'_, String, i64>,
        ) -> Result<()> {
            Ok(())
        }

        fn punctuate(
            &mut self,
            _: crate::streams::ScheduleId,
            _: i64,
            _: &mut ProcessorContext<'_, String, i64>,
        ) -> Result<()> {
            self.0.set(self.0.get() + 1);
            Ok(())
        }
    }

    #[test]
    fn punctuation_at_the_end_of_time_runs_once_and_does_not_loop() {
        thread_local! {
            static RUNS: std::rc::Rc<std::cell::Cell<u32>> = std::rc::Rc::default();
        }
        let mut t = Topology::default();
        let src = t
            .source_node::<String, i64>("s".into(), "in", false, serde(), serde(), None)
            .unwrap();
        let make: NodeSupplier = Arc::new(|| {
            Box::new(ProcessorNode::<_, String, i64, String, i64>::new(Ticker(
                RUNS.with(|r| r.clone()),
            ))) as Box<dyn Node>
        });
        t.add_node("tick".into(), NodeKind::Processor, &[src], Vec::new(), make)
            .unwrap();
        let mut task = Task::new(&t, "app", i64::MAX - 3, 0, None).unwrap();
        task.punctuate(crate::streams::PunctuationType::WallClockTime)
            .unwrap();
        assert_eq!(RUNS.with(|r| r.get()), 0);
        task.wall_clock_ms = i64::MAX;
        for _ in 0..3 {
            task.punctuate(crate::streams::PunctuationType::WallClockTime)
                .unwrap();
        }
        // Due once at MAX - 2; its next time saturates at MAX, still due: once per call.
        assert_eq!(RUNS.with(|r| r.get()), 3);
        // Stream-time punctuations are another queue.
        task.punctuate(crate::streams::PunctuationType::StreamTime)
            .unwrap();
        assert_eq!(RUNS.with(|r| r.get()), 3);
    }
}
