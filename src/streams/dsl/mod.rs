//! The DSL: [`StreamsBuilder`] and the handles it gives out ([`KStream`], [`KTable`],
//! [`KGroupedStream`], [`BranchedKStream`]), which add nodes to one [`Topology`].
//!
//! Owns: turning DSL calls into nodes and stores, with Kafka's names
//! (`KSTREAM-FILTER-0000000001`, `KSTREAM-AGGREGATE-STATE-STORE-0000000002`, ...), and
//! Kafka's repartition rule: an operation that may change the key (`map`, `flat_map`,
//! `select_key`, `group_by`) marks the stream, and a later grouping of a marked stream
//! writes it through an internal topic `<prefix>-repartition` and reads it back, so that all
//! records of a key meet in one task.
//!
//! Invariants: handles are cheap clones of a shared builder; a DSL call never fails on the
//! spot: the first error (a topic read twice, a store name reused, handles of two builders
//! mixed) is kept and returned by [`StreamsBuilder::build`], as Kafka reports a
//! `TopologyException` when the topology is built. KTable nodes pass [`Change`]s: the new
//! value (`None` for a deletion) and the old one when the node knows it.

mod global;
mod grouped;
mod grouped_table;
mod join;
pub(crate) mod join_processors;
mod join_windows;
mod kstream;
mod ktable;
mod processors;
mod session;
mod sliding;
mod windowed;

use std::any::Any;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

pub use global::GlobalKTable;
pub use grouped::KGroupedStream;
pub use grouped_table::KGroupedTable;
pub use join::StreamJoined;
pub use join_windows::JoinWindows;
pub use kstream::{Branched, BranchedKStream, KStream};
pub use ktable::{KTable, Suppressed};
pub use session::SessionWindowedKStream;
pub use sliding::SlidingWindowedKStream;
pub use windowed::TimeWindowedKStream;

use super::processor::Processor;
use super::serdes::{Consumed, Serde, SharedSerde};
use super::state::InMemoryKeyValueStore;
use super::task::{Node, ProcessorNode};
use super::topology::{NodeKind, NodeSupplier, StoreSupplier, Topology};
use crate::error::{Error, Result};

/// An update of a table's row, as KTable nodes pass it downstream (Kafka's `Change`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Change<V> {
    /// The new value; `None` deletes the row.
    pub(crate) new: Option<V>,
    /// The value before, when the node knows it.
    pub(crate) old: Option<V>,
}

/// The graph under construction and the first error of a DSL call.
pub(crate) struct Graph {
    topology: Topology,
    error: Option<Error>,
}

/// The builder shared by every handle.
pub(crate) type Shared = Rc<RefCell<Graph>>;

/// A node index that stands for "not added" after an error; any later use of it fails
/// again, and only the first error is kept.
const FAILED: usize = usize::MAX;

/// Run `add` on the topology; on an error, keep it (if it is the first) and return
/// [`FAILED`].
pub(crate) fn add(shared: &Shared, add: impl FnOnce(&mut Topology) -> Result<usize>) -> usize {
    let mut graph = shared.borrow_mut();
    match add(&mut graph.topology) {
        Ok(id) => id,
        Err(e) => {
            graph.error.get_or_insert(e);
            FAILED
        }
    }
}

/// A generated node or store name.
pub(crate) fn name(shared: &Shared, prefix: &str) -> String {
    shared.borrow_mut().topology.generate_name(prefix)
}

/// A supplier of a typed processor as a node.
pub(crate) fn supplier<P, KI, VI, KO, VO>(
    make: impl Fn() -> P + Send + Sync + 'static,
) -> NodeSupplier
where
    P: Processor<KI, VI, KO, VO> + 'static,
    KI: 'static,
    VI: 'static,
    KO: Clone + 'static,
    VO: Clone + 'static,
{
    Arc::new(move || Box::new(ProcessorNode::<P, KI, VI, KO, VO>::new(make())) as Box<dyn Node>)
}

/// Add a processor node named `name` under `parents` using `stores`.
pub(crate) fn add_processor(
    shared: &Shared,
    name: String,
    parents: &[usize],
    stores: Vec<String>,
    make: NodeSupplier,
) -> usize {
    add(shared, |t| {
        t.add_node(name, NodeKind::Processor, parents, stores, make)
    })
}

/// Add an in-memory key-value store of `K` to `V` named `name`.
pub(crate) fn add_kv_store<K, V>(shared: &Shared, name: &str)
where
    K: Ord + Clone + 'static,
    V: Clone + 'static,
{
    let store_name = name.to_string();
    let make: StoreSupplier = Arc::new(move || {
        Box::new(InMemoryKeyValueStore::<K, V>::new(store_name.clone())) as Box<dyn std::any::Any>
    });
    let name = name.to_string();
    add(shared, |t| t.add_store(&name, make).map(|()| 0));
}

/// The serde a store's changelog writes its values with (see
/// [`Materialized::value_serde_for`]); a mismatched serde is kept as the builder's error.
pub(crate) fn changelog_value_serde<V: 'static>(
    shared: &Shared,
    materialized: &Materialized,
    store: &str,
    known: Option<SharedSerde<V>>,
) -> Option<SharedSerde<V>> {
    match materialized.value_serde_for(store, known) {
        Ok(serde) => serde,
        Err(e) => {
            add(shared, |_| Err(e));
            None
        }
    }
}

/// Add an in-memory key-value store of `K` to timestamped `V` named `name`, with a changelog
/// whose keys and values the serdes write (Kafka's timestamped changelog: the value's bytes,
/// the timestamp as the record's).
pub(crate) fn add_logged_kv_store<K, V>(
    shared: &Shared,
    name: &str,
    key_serde: SharedSerde<K>,
    value_serde: SharedSerde<V>,
) where
    K: Ord + Clone + 'static,
    V: Clone + 'static,
{
    let store_name = name.to_string();
    let make: StoreSupplier = Arc::new(move || {
        Box::new(
            InMemoryKeyValueStore::<K, super::state::ValueAndTimestamp<V>>::new(store_name.clone()),
        ) as Box<dyn std::any::Any>
    });
    let logger = Arc::new(super::runtime::changelog::TimestampedKeyValueLogger::new(
        key_serde,
        value_serde,
    ));
    let name = name.to_string();
    add(shared, |t| {
        t.add_logged_store(&name, make, logger).map(|()| 0)
    });
}

/// How an aggregation's or a table's store is named, whether it is cached and logged, and
/// the serde of its values (Kafka's `Materialized`). Stores are in memory; under
/// [`KafkaStreams`](super::KafkaStreams) a store is backed by its changelog topic
/// (`<application.id>-<store>-changelog`) when logging is on (the default, as in Kafka) and
/// the serde of its values is known: `count` and `reduce` know it (`i64`, the grouping's
/// value serde), `table` takes the `Consumed` one, and `aggregate` needs
/// [`with_value_serde`](Materialized::with_value_serde) (Kafka's `withValueSerde`; without
/// it an aggregate store has no changelog and its state is lost when its task moves).
///
/// Caching (on by default, as in Kafka) applies to the key-value `count`, `reduce` and
/// `aggregate` of a grouped stream: their updates go downstream once per key per flush of
/// the record cache (every commit, every record in the test driver, or when the key is
/// evicted from a cache over `statestore.cache.max.bytes`) instead of once per update.
/// Other stores (tables, windows, sessions) forward every update.
#[derive(Clone)]
pub struct Materialized {
    pub(crate) name: Option<String>,
    pub(crate) caching: bool,
    pub(crate) logging: bool,
    /// A `SharedSerde<V>` of the aggregate's type, checked against the aggregation's type at
    /// build (this handle is not generic, so that `Materialized::as_` needs no types).
    value_serde: Option<Arc<dyn Any + Send + Sync>>,
    value_type: &'static str,
    /// A `SharedSerde<K>` of the store's keys, likewise checked at build.
    key_serde: Option<Arc<dyn Any + Send + Sync>>,
    key_type: &'static str,
}

impl std::fmt::Debug for Materialized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Materialized")
            .field("name", &self.name)
            .field("caching", &self.caching)
            .field("logging", &self.logging)
            .field(
                "value_serde",
                &self.value_serde.as_ref().map(|_| self.value_type),
            )
            .finish()
    }
}

impl PartialEq for Materialized {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.caching == other.caching
            && self.logging == other.logging
            && same_serde(&self.value_serde, &other.value_serde)
            && same_serde(&self.key_serde, &other.key_serde)
    }
}

impl Eq for Materialized {}

/// Two optional type-erased serdes are the same object (or both absent).
fn same_serde(
    a: &Option<Arc<dyn Any + Send + Sync>>,
    b: &Option<Arc<dyn Any + Send + Sync>>,
) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        _ => false,
    }
}

impl Default for Materialized {
    fn default() -> Self {
        Materialized {
            name: None,
            caching: true,
            logging: true,
            value_serde: None,
            value_type: "",
            key_serde: None,
            key_type: "",
        }
    }
}

impl Materialized {
    /// A store named `name`, which the test driver (and later interactive queries) can read
    /// (Kafka's `Materialized.as(name)`).
    pub fn as_(name: impl Into<String>) -> Self {
        Materialized {
            name: Some(name.into()),
            ..Materialized::default()
        }
    }

    /// Forward every update of the store downstream (Kafka's `withCachingDisabled`).
    pub fn with_caching_disabled(mut self) -> Self {
        self.caching = false;
        self
    }

    /// Forward a store's updates once per key per cache flush (Kafka's
    /// `withCachingEnabled`; the default).
    pub fn with_caching_enabled(mut self) -> Self {
        self.caching = true;
        self
    }

    /// Write the store's changes to its changelog topic (Kafka's `withLoggingEnabled`; the
    /// default). A store whose value serde is unknown still has no changelog.
    pub fn with_logging_enabled(mut self) -> Self {
        self.logging = true;
        self
    }

    /// Keep the store without a changelog (Kafka's `withLoggingDisabled`): its state is lost
    /// when its task moves or its state directory is deleted.
    pub fn with_logging_disabled(mut self) -> Self {
        self.logging = false;
        self
    }

    /// The serde of the store's values, for its changelog (Kafka's `withValueSerde`). Its
    /// type must be the aggregate's: `StreamsBuilder::build` refuses a mismatch, naming the
    /// store.
    pub fn with_value_serde<V: 'static>(mut self, serde: impl Serde<V>) -> Self {
        let serde: SharedSerde<V> = Arc::new(serde);
        self.value_serde = Some(Arc::new(serde));
        self.value_type = std::any::type_name::<V>();
        self
    }

    /// The serde of the store's keys, for its changelog (Kafka's `withKeySerde`); needed
    /// where the DSL does not know the key's serde (`KStream::to_table`). Its type must be
    /// the store's key type.
    pub fn with_key_serde<K: 'static>(mut self, serde: impl Serde<K>) -> Self {
        let serde: SharedSerde<K> = Arc::new(serde);
        self.key_serde = Some(Arc::new(serde));
        self.key_type = std::any::type_name::<K>();
        self
    }

    /// The key serde given with `with_key_serde` for a store of `store` keyed by `K`; a
    /// serde of another type is an error naming the store.
    pub(crate) fn key_serde_for<K: 'static>(&self, store: &str) -> Result<Option<SharedSerde<K>>> {
        match &self.key_serde {
            None => Ok(None),
            Some(any) => match any.downcast_ref::<SharedSerde<K>>() {
                Some(serde) => Ok(Some(Arc::clone(serde))),
                None => Err(Error::InvalidTopology {
                    reason: format!(
                        "the key serde given to Materialized for store {store:?} is a serde \
                         of {}, but the store's keys are {}",
                        self.key_type,
                        std::any::type_name::<K>()
                    ),
                }),
            },
        }
    }

    /// The value serde for a store of `store` holding `V`: the one given
    /// (`with_value_serde`), else `known`; `None` when logging is off. A serde given for
    /// another type is an error naming the store.
    pub(crate) fn value_serde_for<V: 'static>(
        &self,
        store: &str,
        known: Option<SharedSerde<V>>,
    ) -> Result<Option<SharedSerde<V>>> {
        if !self.logging {
            return Ok(None);
        }
        match &self.value_serde {
            None => Ok(known),
            Some(any) => match any.downcast_ref::<SharedSerde<V>>() {
                Some(serde) => Ok(Some(Arc::clone(serde))),
                None => Err(Error::InvalidTopology {
                    reason: format!(
                        "the value serde given to Materialized for store {store:?} is a serde \
                         of {}, but the store holds {}",
                        self.value_type,
                        std::any::type_name::<V>()
                    ),
                }),
            },
        }
    }
}

/// Builds a [`Topology`] with the DSL (Kafka's `StreamsBuilder`).
///
/// The seed's example: two records for one key, summed as a stream (every record counts)
/// and kept as a table (the latest value per key).
///
/// ```
/// use embroker::streams::{
///     Consumed, Grouped, Materialized, StreamsBuilder, StreamsConfig, TopologyTestDriver,
/// };
/// use embroker::Builtin;
/// let builder = StreamsBuilder::new();
/// builder
///     .stream("numbers", Consumed::<String, i64>::with(Builtin, Builtin))
///     .group_by_key(Grouped::with(Builtin, Builtin))
///     .reduce(|sum, v| sum + v, Materialized::as_("sums"));
/// builder.table("latest", Consumed::<String, i64>::with(Builtin, Builtin), Materialized::as_("table"));
/// let driver = TopologyTestDriver::new(builder.build()?, StreamsConfig::new("seed"))?;
/// for topic in ["numbers", "latest"] {
///     let input = driver.create_input_topic::<String, i64>(topic, Builtin, Builtin);
///     input.pipe_input("key1".to_string(), 1)?;
///     input.pipe_input("key1".to_string(), 2)?;
/// }
/// let get = |store: &str| -> embroker::Result<Option<i64>> {
///     use embroker::streams::ReadOnlyKeyValueStore;
///     driver.get_key_value_store::<String, i64>(store)?.get(&"key1".to_string())
/// };
/// assert_eq!(get("sums")?, Some(3));
/// assert_eq!(get("table")?, Some(2));
/// # Ok::<(), embroker::Error>(())
/// ```
pub struct StreamsBuilder {
    shared: Shared,
}

impl Default for StreamsBuilder {
    fn default() -> Self {
        StreamsBuilder::new()
    }
}

impl StreamsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        StreamsBuilder {
            shared: Rc::new(RefCell::new(Graph {
                topology: Topology::default(),
                error: None,
            })),
        }
    }

    /// A stream of the records of `topic` (Kafka's `stream(topic, Consumed)`).
    pub fn stream<K, V>(&self, topic: &str, consumed: Consumed<K, V>) -> KStream<K, V>
    where
        K: Clone + 'static,
        V: Clone + 'static,
    {
        let source = name(&self.shared, "KSTREAM-SOURCE");
        let node = add(&self.shared, |t| {
            t.source_node(
                source,
                topic,
                false,
                consumed.key_serde,
                consumed.value_serde,
                consumed.timestamp_extractor,
            )
        });
        KStream::new(self.shared.clone(), node, false)
    }

    /// A table of the latest value per key of `topic`, kept in a store (Kafka's
    /// `table(topic, Consumed, Materialized)`): a record with a null value (a tombstone)
    /// deletes its key. Unnamed, the store is called `<topic>-STATE-STORE-<index>`.
    pub fn table<K, V>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized,
    ) -> KTable<K, V>
    where
        K: Ord + Clone + 'static,
        V: Clone + 'static,
    {
        let source = name(&self.shared, "KSTREAM-SOURCE");
        let store = materialized
            .name
            .clone()
            .unwrap_or_else(|| name(&self.shared, &format!("{topic}-STATE-STORE")));
        let processor = name(&self.shared, "KTABLE-SOURCE");
        let (key_serde, value_serde) = (consumed.key_serde.clone(), consumed.value_serde.clone());
        let source_node = add(&self.shared, |t| {
            t.add_table_source(
                source,
                topic,
                consumed.key_serde,
                consumed.value_serde,
                consumed.timestamp_extractor,
            )
        });
        if materialized.logging {
            add_logged_kv_store::<K, V>(&self.shared, &store, key_serde, value_serde);
        } else {
            add_kv_store::<K, super::state::ValueAndTimestamp<V>>(&self.shared, &store);
        }
        let store_name = store.clone();
        let node = add_processor(
            &self.shared,
            processor,
            &[source_node],
            vec![store.clone()],
            supplier(move || processors::TableSource::<K, V>::new(store_name.clone())),
        );
        KTable::new(self.shared.clone(), node, Some(store))
    }

    /// Add an in-memory key-value store of `K` to `V` named `name`, for processors added
    /// with [`KStream::process`] (Kafka's `addStateStore`).
    pub fn add_state_store<K, V>(&self, name: &str) -> &Self
    where
        K: Ord + Clone + 'static,
        V: Clone + 'static,
    {
        add_kv_store::<K, V>(&self.shared, name);
        self
    }

    /// Add the store `builder` declares, for processors added with [`KStream::process`]
    /// (Kafka's `addStateStore(StoreBuilder)`): logged unless the builder disabled logging.
    pub fn add_state_store_builder<K, V>(&self, builder: super::StoreBuilder<K, V>) -> &Self
    where
        K: Ord + Clone + 'static,
        V: Clone + 'static,
    {
        add(&self.shared, |t| builder.add_to(t).map(|()| 0));
        self
    }

    /// The topology built so far, or the first error of a DSL call (Kafka's `build`).
    pub fn build(&self) -> Result<Topology> {
        let graph = self.shared.borrow();
        match &graph.error {
            Some(e) => Err(e.clone()),
            None => Ok(graph.topology.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::{Grouped, Produced};
    use crate::Builtin;

    #[test]
    fn the_first_error_is_kept_and_later_calls_do_not_panic() {
        let builder = StreamsBuilder::new();
        let a = builder.stream("t", Consumed::<String, i64>::with(Builtin, Builtin));
        let b = builder.stream("t", Consumed::<String, i64>::with(Builtin, Builtin));
        // Everything hung under the failed source fails too, quietly.
        b.filter(|_, _| true)
            .group_by_key(Grouped::with(Builtin, Builtin))
            .count(Materialized::as_("c"))
            .to_stream()
            .to("out", Produced::with(Builtin, Builtin));
        a.to("ok", Produced::with(Builtin, Builtin));
        let e = builder.build().err().unwrap();
        assert!(
            e.to_string()
                .contains("has already been registered by another source"),
            "{e}"
        );
    }

    #[test]
    fn repartition_is_marked_by_key_changes_only() {
        let builder = StreamsBuilder::new();
        let s = builder.stream("t", Consumed::<String, i64>::with(Builtin, Builtin));
        assert!(!s.repartition_required);
        assert!(!s.filter(|_, _| true).map_values(|v| v).repartition_required);
        assert!(
            !s.flat_map_values(|v| [v])
                .peek(|_, _| ())
                .repartition_required
        );
        assert!(s.map(|k, v| (k, v)).repartition_required);
        assert!(s.select_key(|k, _| k.clone()).repartition_required);
        assert!(
            s.flat_map(|k, v| [(k, v)])
                .filter(|_, _| true)
                .repartition_required
        );
        let marked = s.map(|k, v| (k, v));
        assert!(s.merge(&marked).repartition_required);
        assert!(!s.merge(&s).repartition_required);
    }

    #[test]
    fn a_table_store_is_named_after_its_topic_unless_named() {
        let builder = StreamsBuilder::new();
        let t = builder.table(
            "prices",
            Consumed::<String, i64>::with(Builtin, Builtin),
            Materialized::default(),
        );
        assert_eq!(
            t.queryable_store_name(),
            Some("prices-STATE-STORE-0000000001")
        );
        assert_eq!(t.filter(|_, _| true).queryable_store_name(), None);
    }
}
