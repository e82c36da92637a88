//! [`GlobalKTable`]: a table of every partition of a topic, in every task (Kafka's
//! `GlobalKTable`), and the stream joins against it (Kafka's `KStream.join(GlobalKTable,
//! KeyValueMapper, ValueJoiner)` and `leftJoin`).
//!
//! Owns: `StreamsBuilder::global_table` (a source and a table source marked global on the
//! topology, so the runtime reads all its partitions in every instance and co-partitioning
//! ignores it) and the joins, which map each stream record to the table key to look up.
//!
//! Invariants: a global table's topic is listed by `Topology::global_topics`, not by
//! `source_topics` (no consumer group reads it); its store is a shared one
//! (`global_store.rs`) that only the table's source writes, with no changelog (the topic is
//! its changelog); under `KafkaStreams` the global thread feeds the source
//! (`runtime/global_thread.rs`); in the test driver, as in Kafka's, a record piped into it
//! updates the store before `pipe_input` returns, so a stream record piped after it sees
//! the row.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

use super::join_processors::{KeySelector, RowJoiner};
use super::kstream::KStream;
use super::{add, add_processor, name, supplier, Change, Materialized, Shared, StreamsBuilder};
use crate::error::Result;
use crate::streams::global_store::{self, GlobalStoreDef, SharedStore};
use crate::streams::processor::{Processor, ProcessorContext, Record};
use crate::streams::serdes::Consumed;
use crate::streams::state::{KeyValueStore, ReadOnlyKeyValueStore, ValueAndTimestamp};
use crate::streams::topology::StoreSupplier;

/// A table of all partitions of a topic, replicated to every task (Kafka's
/// `GlobalKTable<K, V>`): a stream joins it by any key it computes, with no co-partitioning.
///
/// ```
/// use embroker::streams::{Consumed, Materialized, Produced, StreamsBuilder, StreamsConfig, TopologyTestDriver};
/// use embroker::Builtin;
/// let builder = StreamsBuilder::new();
/// let products = builder.global_table("products", Consumed::<i64, String>::with(Builtin, Builtin), Materialized::as_("products"));
/// builder
///     .stream("orders", Consumed::<String, i64>::with(Builtin, Builtin))
///     .left_join_global(&products, |_, product_id| *product_id, |id, name| format!("{id}:{}", name.map_or("?", String::as_str)))
///     .to("out", Produced::with(Builtin, Builtin));
/// let topology = builder.build()?;
/// assert_eq!(topology.global_topics(), vec!["products"]);
/// assert_eq!(topology.source_topics(), vec!["orders"]);
/// let driver = TopologyTestDriver::new(topology, StreamsConfig::new("shop"))?;
/// driver.create_input_topic::<i64, Option<String>>("products", Builtin, Builtin).pipe_input(7, Some("tea".into()))?;
/// let orders = driver.create_input_topic::<String, i64>("orders", Builtin, Builtin);
/// orders.pipe_input("ann".into(), 7)?;
/// orders.pipe_input("bob".into(), 8)?;
/// let out = driver.create_output_topic::<String, String>("out", Builtin, Builtin);
/// assert_eq!(out.read_values_to_list()?, vec!["7:tea".to_string(), "8:?".to_string()]);
/// # Ok::<(), embroker::Error>(())
/// ```
pub struct GlobalKTable<K, V> {
    shared: Shared,
    store: Option<String>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> GlobalKTable<K, V> {
    /// The name of the store the table is kept in (Kafka's `queryableStoreName`).
    pub fn queryable_store_name(&self) -> Option<&str> {
        self.store.as_deref()
    }
}

impl StreamsBuilder {
    /// A global table of `topic`: every task keeps all of it (Kafka's `globalTable(topic,
    /// Consumed, Materialized)`). A null value deletes a row. Unnamed, the store is called
    /// `<topic>-STATE-STORE-<index>`. Under `KafkaStreams` the instance's global thread
    /// fills the store and every stream thread reads it, hence `Send + Sync` keys and
    /// values.
    pub fn global_table<K, V>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized,
    ) -> GlobalKTable<K, V>
    where
        K: Ord + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        let source = name(&self.shared, "KSTREAM-SOURCE");
        let store = materialized
            .name
            .unwrap_or_else(|| name(&self.shared, &format!("{topic}-STATE-STORE")));
        let processor = name(&self.shared, "KTABLE-SOURCE");
        let def = GlobalStoreDef::new(
            &store,
            topic,
            Arc::clone(&consumed.key_serde),
            Arc::clone(&consumed.value_serde),
        );
        let source_node = add(&self.shared, |t| {
            let node = t.add_table_source(
                source,
                topic,
                consumed.key_serde,
                consumed.value_serde,
                consumed.timestamp_extractor,
            )?;
            t.global_topics.insert(topic.to_string());
            Ok(node)
        });
        let store_name = store.clone();
        let make: StoreSupplier = Arc::new(move || global_store::new_store::<K, V>(&store_name));
        add(&self.shared, |t| {
            t.add_store(&store, make)?;
            t.global_stores.push(def);
            Ok(0)
        });
        let store_name = store.clone();
        let node = add_processor(
            &self.shared,
            processor,
            &[source_node],
            vec![store.clone()],
            supplier(move || GlobalTableSource::<K, V> {
                store: store_name.clone(),
                _types: PhantomData,
            }),
        );
        let failed = node == usize::MAX;
        GlobalKTable {
            shared: self.shared.clone(),
            store: (!failed).then_some(store),
            _types: PhantomData,
        }
    }
}

/// A global table's source processor (Kafka's `KTableSource` under the global state
/// manager): each record of the topic sets its key's row in the shared store, a null value
/// deletes it; the change is forwarded (a global table has no downstream nodes).
struct GlobalTableSource<K, V> {
    store: String,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V> Processor<K, Option<V>, K, Change<V>> for GlobalTableSource<K, V>
where
    K: Ord + Clone + 'static,
    V: Clone + 'static,
{
    fn process(
        &mut self,
        record: Record<K, Option<V>>,
        context: &mut ProcessorContext<'_, K, Change<V>>,
    ) -> Result<()> {
        let slot: &dyn Any = context.state_store::<SharedStore>(&self.store)?;
        let old = global_store::write::<K, V, _>(slot, &self.store, |store| match &record.value {
            Some(v) => {
                let old = store.get(&record.key)?;
                store.put(
                    record.key.clone(),
                    ValueAndTimestamp::make(v.clone(), record.timestamp),
                )?;
                Ok(old)
            }
            None => store.delete(&record.key),
        })?;
        let change = Change {
            new: record.value.clone(),
            old: old.map(|o| o.value),
        };
        context.forward(record.with_value(change))
    }
}

/// A stream-global-table join (Kafka's `KStreamGlobalKTableJoin`): each stream record looks
/// up the row of the key `key_of` maps it to in the shared store, under its read lock; an
/// inner join forwards only when the row exists, a left join always, at the stream record's
/// timestamp.
struct GlobalTableJoin<K, V, KT, VT, VO> {
    table_store: String,
    left: bool,
    key_of: KeySelector<K, V, KT>,
    joiner: RowJoiner<K, V, VT, VO>,
}

impl<K, V, KT, VT, VO> Processor<K, V, K, VO> for GlobalTableJoin<K, V, KT, VT, VO>
where
    K: Clone + 'static,
    KT: Ord + Clone + 'static,
    VT: Clone + 'static,
    VO: Clone + 'static,
{
    fn process(
        &mut self,
        record: Record<K, V>,
        context: &mut ProcessorContext<'_, K, VO>,
    ) -> Result<()> {
        let table_key = (self.key_of)(&record.key, &record.value);
        let slot: &dyn Any = context.state_store::<SharedStore>(&self.table_store)?;
        let row = global_store::read::<KT, VT, _>(slot, &self.table_store, |s| s.get(&table_key))?;
        if row.is_none() && !self.left {
            return Ok(());
        }
        match (self.joiner)(&record.key, &record.value, row.as_ref().map(|r| &r.value)) {
            Some(value) => context.forward(record.with_value(value)),
            None => Ok(()),
        }
    }
}

impl<K: Clone + 'static, V: Clone + 'static> KStream<K, V> {
    fn global_join<KG, VG, VR>(
        &self,
        global: &GlobalKTable<KG, VG>,
        left: bool,
        key_selector: KeySelector<K, V, KG>,
        joiner: RowJoiner<K, V, VG, VR>,
    ) -> KStream<K, VR>
    where
        KG: Ord + Clone + 'static,
        VG: Clone + 'static,
        VR: Clone + 'static,
    {
        let shared = &self.shared;
        let node_name = name(
            shared,
            if left {
                "KSTREAM-LEFTJOIN"
            } else {
                "KSTREAM-JOIN"
            },
        );
        let store = match (&global.store, std::rc::Rc::ptr_eq(shared, &global.shared)) {
            (Some(store), true) => store.clone(),
            _ => {
                let reason = format!(
                    "{node_name}: the global table is of another builder or failed to be added"
                );
                let node = add(shared, |_| Err(crate::Error::InvalidTopology { reason }));
                return KStream::new(shared.clone(), node, false);
            }
        };
        let table_store = store.clone();
        let node = add_processor(
            shared,
            node_name,
            &[self.node],
            vec![store],
            supplier(move || GlobalTableJoin::<K, V, KG, VG, VR> {
                table_store: table_store.clone(),
                left,
                key_of: key_selector.clone(),
                joiner: joiner.clone(),
            }),
        );
        KStream::new(shared.clone(), node, self.repartition_required)
    }

    /// Join each record with the global table's row of the key `key_selector` computes from
    /// it: `joiner(value, row)` when there is one, nothing otherwise, at the record's
    /// timestamp (Kafka's `join(GlobalKTable, KeyValueMapper, ValueJoiner)`).
    pub fn join_global<KG, VG, VR>(
        &self,
        global: &GlobalKTable<KG, VG>,
        key_selector: impl Fn(&K, &V) -> KG + Send + Sync + 'static,
        joiner: impl Fn(&V, &VG) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        KG: Ord + Clone + 'static,
        VG: Clone + 'static,
        VR: Clone + 'static,
    {
        self.global_join(
            global,
            false,
            Arc::new(key_selector),
            Arc::new(move |_, v, row| row.map(|row| joiner(v, row))),
        )
    }

    /// [`join_global`](Self::join_global), and records without a row as `joiner(value,
    /// None)` (Kafka's `leftJoin(GlobalKTable, KeyValueMapper, ValueJoiner)`).
    pub fn left_join_global<KG, VG, VR>(
        &self,
        global: &GlobalKTable<KG, VG>,
        key_selector: impl Fn(&K, &V) -> KG + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&VG>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        KG: Ord + Clone + 'static,
        VG: Clone + 'static,
        VR: Clone + 'static,
    {
        self.global_join(
            global,
            true,
            Arc::new(key_selector),
            Arc::new(move |_, v, row| Some(joiner(v, row))),
        )
    }
}
