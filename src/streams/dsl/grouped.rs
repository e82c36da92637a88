//! [`KGroupedStream`]: a stream grouped by key, ready to aggregate (Kafka's
//! `KGroupedStream`).

use std::sync::Arc;

use super::kstream::KStream;
use super::ktable::KTable;
use super::processors::{Aggregate, Step};
use super::session::SessionWindowedKStream;
use super::windowed::TimeWindowedKStream;
use super::{
    add, add_kv_store, add_logged_kv_store, add_processor, changelog_value_serde, name, supplier,
    Materialized, Shared,
};
use crate::streams::serdes::Grouped;
use crate::streams::serdes::SharedSerde;
use crate::streams::state::ValueAndTimestamp;
use crate::streams::window::{SessionWindows, TimeWindows};

/// A stream grouped by key (Kafka's `KGroupedStream<K, V>`): `count`, `reduce` and
/// `aggregate` make a [`KTable`] whose store holds the aggregate per key.
///
/// ```
/// use embroker::streams::{Consumed, Grouped, Materialized, StreamsBuilder, StreamsConfig, TopologyTestDriver};
/// use embroker::Builtin;
/// let builder = StreamsBuilder::new();
/// builder
///     .stream("purchases", Consumed::<String, i64>::with(Builtin, Builtin))
///     .group_by_key(Grouped::with(Builtin, Builtin))
///     .aggregate(|| 0i64, |_, amount, total| total + amount, Materialized::as_("totals"));
/// let driver = TopologyTestDriver::new(builder.build()?, StreamsConfig::new("shop"))?;
/// let input = driver.create_input_topic::<String, i64>("purchases", Builtin, Builtin);
/// input.pipe_input("ann".to_string(), 5)?;
/// input.pipe_input("ann".to_string(), 7)?;
/// let totals = driver.get_key_value_store::<String, i64>("totals")?;
/// use embroker::streams::ReadOnlyKeyValueStore;
/// assert_eq!(totals.get(&"ann".to_string())?, Some(12));
/// # Ok::<(), embroker::Error>(())
/// ```
pub struct KGroupedStream<K, V> {
    stream: KStream<K, V>,
    grouped: Grouped<K, V>,
    repartition: bool,
}

impl<K, V> KGroupedStream<K, V>
where
    K: Ord + Clone + 'static,
    V: Clone + 'static,
{
    pub(crate) fn new(stream: KStream<K, V>, grouped: Grouped<K, V>, repartition: bool) -> Self {
        KGroupedStream {
            stream,
            grouped,
            repartition,
        }
    }

    /// The number of records per key (Kafka's `count`).
    pub fn count(self, materialized: Materialized) -> KTable<K, i64> {
        self.aggregate_with(
            "KSTREAM-AGGREGATE",
            Arc::new(|_, _, old: Option<i64>| old.unwrap_or(0).saturating_add(1)),
            materialized,
            Some(Arc::new(crate::Builtin)),
        )
    }

    /// The values per key combined by `reducer(aggregate, value)`; the first value of a key
    /// is its aggregate (Kafka's `reduce`).
    pub fn reduce(
        self,
        reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized,
    ) -> KTable<K, V> {
        let value_serde = self.grouped.value_serde.clone();
        self.aggregate_with(
            "KSTREAM-REDUCE",
            Arc::new(move |_, value, old: Option<V>| match old {
                Some(aggregate) => reducer(aggregate, value),
                None => value,
            }),
            materialized,
            Some(value_serde),
        )
    }

    /// The values per key folded by `aggregator(key, value, aggregate)` from
    /// `initializer()` (Kafka's `aggregate`).
    pub fn aggregate<VA: Clone + 'static>(
        self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized,
    ) -> KTable<K, VA> {
        self.aggregate_with(
            "KSTREAM-AGGREGATE",
            Arc::new(move |key, value, old: Option<VA>| {
                aggregator(key, value, old.unwrap_or_else(&initializer))
            }),
            materialized,
            None,
        )
    }

    /// Group into time windows (Kafka's `windowedBy`): the aggregations then keep one
    /// aggregate per key and window.
    pub fn windowed_by(self, windows: TimeWindows) -> TimeWindowedKStream<K, V> {
        if let Err(e) = windows.validate() {
            add(&self.stream.shared, |_| Err(e));
        }
        TimeWindowedKStream::new(self, windows)
    }

    /// Group into sessions (Kafka's `windowedBy(SessionWindows)`): the aggregations then keep
    /// one aggregate per key and session.
    pub fn windowed_by_session(self, windows: SessionWindows) -> SessionWindowedKStream<K, V> {
        if let Err(e) = windows.validate() {
            add(&self.stream.shared, |_| Err(e));
        }
        SessionWindowedKStream::new(self, windows)
    }

    /// The node an aggregation into `store` hangs under: the stream itself, or, if it must
    /// be repartitioned, the source of its repartition topic, named after the grouping or
    /// else the store, as Kafka's `doAggregate` does.
    pub(crate) fn aggregation_parent(&self, store: &str) -> usize {
        let shared = &self.stream.shared;
        if !self.repartition {
            return self.stream.node;
        }
        let topic_prefix = self
            .grouped
            .name
            .clone()
            .unwrap_or_else(|| store.to_string());
        let topic = format!("{topic_prefix}-repartition");
        let sink = format!("{topic_prefix}-repartition-sink");
        let source = format!("{topic_prefix}-repartition-source");
        let (ks, vs) = (
            self.grouped.key_serde.clone(),
            self.grouped.value_serde.clone(),
        );
        let parent = self.stream.node;
        add(shared, |t| t.sink_node(sink, &topic, true, ks, vs, parent));
        let (ks, vs) = (
            self.grouped.key_serde.clone(),
            self.grouped.value_serde.clone(),
        );
        add(shared, |t| {
            t.source_node::<K, V>(source, &topic, true, ks, vs, None)
        })
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.stream.shared
    }

    /// The grouping's key and value serdes (for the changelogs of the aggregations' stores).
    pub(crate) fn serdes(&self) -> (SharedSerde<K>, SharedSerde<V>) {
        (
            self.grouped.key_serde.clone(),
            self.grouped.value_serde.clone(),
        )
    }

    /// Name the store, add the repartition topic if needed, then the store and the
    /// aggregation node (Kafka's order: the store is named first). The store has a changelog
    /// when the aggregate's serde is known (`count`, `reduce`, or `Materialized`'s) and
    /// logging is on.
    fn aggregate_with<VA: Clone + 'static>(
        self,
        prefix: &str,
        step: Step<K, V, VA>,
        materialized: Materialized,
        value_serde: Option<SharedSerde<VA>>,
    ) -> KTable<K, VA> {
        let shared = self.stream.shared.clone();
        let caching = materialized.caching;
        let store = materialized
            .name
            .clone()
            .unwrap_or_else(|| name(&shared, &format!("{prefix}-STATE-STORE")));
        let parent = self.aggregation_parent(&store);
        match changelog_value_serde(&shared, &materialized, &store, value_serde) {
            Some(value_serde) => add_logged_kv_store::<K, VA>(
                &shared,
                &store,
                self.grouped.key_serde.clone(),
                value_serde,
            ),
            None => add_kv_store::<K, ValueAndTimestamp<VA>>(&shared, &store),
        }
        let node_name = name(&shared, prefix);
        let store_name = store.clone();
        let node = add_processor(
            &shared,
            node_name,
            &[parent],
            vec![store.clone()],
            supplier(move || Aggregate::<K, V, VA>::new(store_name.clone(), step.clone(), caching)),
        );
        KTable::new(shared, node, Some(store))
    }
}
