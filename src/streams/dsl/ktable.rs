//! [`KTable`]: a changelog stream seen as a table, each record an update of its key's row
//! (Kafka's `KTable`).

use std::marker::PhantomData;
use std::sync::Arc;

use super::kstream::KStream;
use super::processors::Stateless;
use super::{add_processor, name, supplier, Change, Shared};
use crate::streams::processor::Record;

/// A table: the latest value per key, updated record by record (Kafka's `KTable<K, V>`).
/// Made by [`StreamsBuilder::table`](super::StreamsBuilder::table) or by an aggregation. Each
/// update is forwarded downstream as it happens (no cache, as Kafka with
/// `cache.max.bytes.buffering=0`).
///
/// ```
/// use embroker::streams::{Consumed, Materialized, Produced, StreamsBuilder, StreamsConfig, TopologyTestDriver};
/// use embroker::Builtin;
/// let builder = StreamsBuilder::new();
/// builder
///     .table("prices", Consumed::<String, i64>::with(Builtin, Builtin), Materialized::default())
///     .filter(|_, price| *price < 100)
///     .to_stream()
///     .to("cheap", Produced::with(Builtin, Builtin));
/// let driver = TopologyTestDriver::new(builder.build()?, StreamsConfig::new("shop"))?;
/// let prices = driver.create_input_topic::<String, Option<i64>>("prices", Builtin, Builtin);
/// let cheap = driver.create_output_topic::<String, Option<i64>>("cheap", Builtin, Builtin);
/// prices.pipe_input("tea".to_string(), Some(3))?;
/// prices.pipe_input("tea".to_string(), Some(300))?; // no longer cheap: a tombstone
/// prices.pipe_input("tea".to_string(), None)?; // deleted: a tombstone
/// assert_eq!(
///     cheap.read_key_values_to_list()?,
///     vec![("tea".to_string(), Some(3)), ("tea".to_string(), None), ("tea".to_string(), None)]
/// );
/// # Ok::<(), embroker::Error>(())
/// ```
pub struct KTable<K, V> {
    shared: Shared,
    node: usize,
    store: Option<String>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for KTable<K, V> {
    fn clone(&self) -> Self {
        KTable {
            shared: self.shared.clone(),
            node: self.node,
            store: self.store.clone(),
            _types: PhantomData,
        }
    }
}

impl<K: Clone + 'static, V: Clone + 'static> KTable<K, V> {
    pub(crate) fn new(shared: Shared, node: usize, store: Option<String>) -> Self {
        KTable {
            shared,
            node,
            store,
            _types: PhantomData,
        }
    }

    /// The name of the store this table is kept in, if it is materialized (Kafka's
    /// `queryableStoreName`).
    pub fn queryable_store_name(&self) -> Option<&str> {
        self.store.as_deref()
    }

    fn change_node<VR: Clone + 'static>(
        &self,
        prefix: &str,
        f: impl Fn(&K, Change<V>) -> Change<VR> + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        let node_name = name(&self.shared, prefix);
        let f = Arc::new(move |r: Record<K, Change<V>>, ctx: &mut crate::streams::processor::ProcessorContext<'_, K, Change<VR>>| {
            let Record { key, value, timestamp, headers } = r;
            let value = f(&key, value);
            ctx.forward(Record { key, value, timestamp, headers })
        });
        let node = add_processor(
            &self.shared,
            node_name,
            &[self.node],
            Vec::new(),
            supplier(move || Stateless(f.clone())),
        );
        KTable::new(self.shared.clone(), node, None)
    }

    /// The rows for which `predicate` holds (Kafka's `filter`): an update whose new value
    /// fails it is forwarded as a deletion (a tombstone), as Kafka does, since the row may
    /// have passed before.
    pub fn filter(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KTable<K, V> {
        self.change_node("KTABLE-FILTER", move |k, c| Change {
            new: c.new.filter(|v| predicate(k, v)),
            old: c.old.filter(|v| predicate(k, v)),
        })
    }

    /// The rows for which `predicate` does not hold (Kafka's `filterNot`).
    pub fn filter_not(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KTable<K, V> {
        self.change_node("KTABLE-FILTER", move |k, c| Change {
            new: c.new.filter(|v| !predicate(k, v)),
            old: c.old.filter(|v| !predicate(k, v)),
        })
    }

    /// Each row's value as `mapper` makes it; a deletion stays a deletion (Kafka's
    /// `mapValues`).
    pub fn map_values<VR: Clone + 'static>(
        &self,
        mapper: impl Fn(V) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.change_node("KTABLE-MAPVALUES", move |_, c| Change {
            new: c.new.map(&mapper),
            old: c.old.map(&mapper),
        })
    }

    /// The table's updates as a stream: each update's key and new value, `None` for a
    /// deletion (Kafka's `toStream`, whose null values are tombstones).
    pub fn to_stream(&self) -> KStream<K, Option<V>> {
        let node_name = name(&self.shared, "KTABLE-TOSTREAM");
        let f = Arc::new(
            |r: Record<K, Change<V>>,
             ctx: &mut crate::streams::processor::ProcessorContext<'_, K, Option<V>>| {
                let Record {
                    key,
                    value,
                    timestamp,
                    headers,
                } = r;
                ctx.forward(Record {
                    key,
                    value: value.new,
                    timestamp,
                    headers,
                })
            },
        );
        let node = add_processor(
            &self.shared,
            node_name,
            &[self.node],
            Vec::new(),
            supplier(move || Stateless(f.clone())),
        );
        KStream::new(self.shared.clone(), node, false)
    }
}
