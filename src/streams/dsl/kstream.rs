//! [`KStream`]: a record stream, each record an independent event (Kafka's `KStream`), and
//! [`BranchedKStream`], the result of `split`.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use super::grouped::KGroupedStream;
use super::ktable::KTable;
use super::processors::{Branch, Predicate, Stateless, TableSource};
use super::{add, add_kv_store, add_processor, name, supplier, Materialized, Shared};
use crate::error::{Error, Result};
use crate::streams::processor::{Processor, ProcessorContext, Record};
use crate::streams::serdes::{Grouped, Produced, Repartitioned};
use crate::streams::state::ValueAndTimestamp;
use crate::streams::topology::PassThrough;

/// A stream of records (Kafka's `KStream<K, V>`): made by
/// [`StreamsBuilder::stream`](super::StreamsBuilder::stream); each operation adds a node and
/// returns a new handle.
///
/// ```
/// use embroker::streams::{Consumed, Produced, StreamsBuilder, StreamsConfig, TopologyTestDriver};
/// use embroker::Builtin;
/// let builder = StreamsBuilder::new();
/// builder
///     .stream("in", Consumed::<String, i64>::with(Builtin, Builtin))
///     .filter(|_, v| *v > 0)
///     .map_values(|v| v * 10)
///     .to("out", Produced::with(Builtin, Builtin));
/// let driver = TopologyTestDriver::new(builder.build()?, StreamsConfig::new("app"))?;
/// let input = driver.create_input_topic::<String, i64>("in", Builtin, Builtin);
/// let output = driver.create_output_topic::<String, i64>("out", Builtin, Builtin);
/// input.pipe_input("a".to_string(), -1)?;
/// input.pipe_input("b".to_string(), 2)?;
/// assert_eq!(output.read_key_values_to_list()?, vec![("b".to_string(), 20)]);
/// # Ok::<(), embroker::Error>(())
/// ```
pub struct KStream<K, V> {
    pub(crate) shared: Shared,
    pub(crate) node: usize,
    /// The key may have changed since the source: a grouping must repartition first.
    pub(crate) repartition_required: bool,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for KStream<K, V> {
    fn clone(&self) -> Self {
        KStream {
            shared: self.shared.clone(),
            node: self.node,
            repartition_required: self.repartition_required,
            _types: PhantomData,
        }
    }
}

impl<K: Clone + 'static, V: Clone + 'static> KStream<K, V> {
    pub(crate) fn new(shared: Shared, node: usize, repartition_required: bool) -> Self {
        KStream {
            shared,
            node,
            repartition_required,
            _types: PhantomData,
        }
    }

    /// Add a stateless node made from `f` under this stream.
    fn stateless<KO, VO, F>(&self, prefix: &str, key_changing: bool, f: F) -> KStream<KO, VO>
    where
        KO: Clone + 'static,
        VO: Clone + 'static,
        F: Fn(Record<K, V>, &mut ProcessorContext<'_, KO, VO>) -> Result<()>
            + Send
            + Sync
            + 'static,
    {
        let node_name = name(&self.shared, prefix);
        let f = Arc::new(f);
        let node = add_processor(
            &self.shared,
            node_name,
            &[self.node],
            Vec::new(),
            supplier(move || Stateless(f.clone())),
        );
        KStream::new(
            self.shared.clone(),
            node,
            self.repartition_required || key_changing,
        )
    }

    /// The records for which `predicate` holds (Kafka's `filter`).
    pub fn filter(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KStream<K, V> {
        self.stateless("KSTREAM-FILTER", false, move |r, ctx| {
            if predicate(&r.key, &r.value) {
                ctx.forward(r)
            } else {
                Ok(())
            }
        })
    }

    /// The records for which `predicate` does not hold (Kafka's `filterNot`).
    pub fn filter_not(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KStream<K, V> {
        self.stateless("KSTREAM-FILTER", false, move |r, ctx| {
            if predicate(&r.key, &r.value) {
                Ok(())
            } else {
                ctx.forward(r)
            }
        })
    }

    /// Each record as the key and value `mapper` makes of it (Kafka's `map`); marks the
    /// stream for repartitioning before a grouping.
    pub fn map<KR, VR>(
        &self,
        mapper: impl Fn(K, V) -> (KR, VR) + Send + Sync + 'static,
    ) -> KStream<KR, VR>
    where
        KR: Clone + 'static,
        VR: Clone + 'static,
    {
        self.stateless("KSTREAM-MAP", true, move |r: Record<K, V>, ctx| {
            let (key, value) = mapper(r.key, r.value);
            ctx.forward(Record {
                key,
                value,
                timestamp: r.timestamp,
                headers: r.headers,
            })
        })
    }

    /// Each record with the value `mapper` makes of it, the key unchanged (Kafka's
    /// `mapValues`).
    pub fn map_values<VR: Clone + 'static>(
        &self,
        mapper: impl Fn(V) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.stateless("KSTREAM-MAPVALUES", false, move |r: Record<K, V>, ctx| {
            let Record {
                key,
                value,
                timestamp,
                headers,
            } = r;
            ctx.forward(Record {
                key,
                value: mapper(value),
                timestamp,
                headers,
            })
        })
    }

    /// Each record with the key `mapper` makes of it (Kafka's `selectKey`); marks the stream
    /// for repartitioning.
    pub fn select_key<KR: Clone + 'static>(
        &self,
        mapper: impl Fn(&K, &V) -> KR + Send + Sync + 'static,
    ) -> KStream<KR, V> {
        self.stateless("KSTREAM-KEY-SELECT", true, move |r: Record<K, V>, ctx| {
            let key = mapper(&r.key, &r.value);
            ctx.forward(r.with_key(key))
        })
    }

    /// Zero or more records per record, as `mapper` makes them (Kafka's `flatMap`); marks
    /// the stream for repartitioning.
    pub fn flat_map<KR, VR, I>(
        &self,
        mapper: impl Fn(K, V) -> I + Send + Sync + 'static,
    ) -> KStream<KR, VR>
    where
        KR: Clone + 'static,
        VR: Clone + 'static,
        I: IntoIterator<Item = (KR, VR)>,
    {
        self.stateless("KSTREAM-FLATMAP", true, move |r: Record<K, V>, ctx| {
            for (key, value) in mapper(r.key, r.value) {
                ctx.forward(Record {
                    key,
                    value,
                    timestamp: r.timestamp,
                    headers: r.headers.clone(),
                })?;
            }
            Ok(())
        })
    }

    /// Zero or more values per record, each with the record's key (Kafka's
    /// `flatMapValues`).
    pub fn flat_map_values<VR, I>(
        &self,
        mapper: impl Fn(V) -> I + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        VR: Clone + 'static,
        I: IntoIterator<Item = VR>,
    {
        self.stateless(
            "KSTREAM-FLATMAPVALUES",
            false,
            move |r: Record<K, V>, ctx| {
                for value in mapper(r.value) {
                    ctx.forward(Record {
                        key: r.key.clone(),
                        value,
                        timestamp: r.timestamp,
                        headers: r.headers.clone(),
                    })?;
                }
                Ok(())
            },
        )
    }

    /// The same stream, calling `action` on each record on the way (Kafka's `peek`).
    pub fn peek(&self, action: impl Fn(&K, &V) + Send + Sync + 'static) -> KStream<K, V> {
        self.stateless("KSTREAM-PEEK", false, move |r, ctx| {
            action(&r.key, &r.value);
            ctx.forward(r)
        })
    }

    /// Call `action` on each record; the end of this branch (Kafka's `foreach`).
    pub fn foreach(&self, action: impl Fn(&K, &V) + Send + Sync + 'static) {
        self.stateless::<K, V, _>("KSTREAM-FOREACH", false, move |r, _ctx| {
            action(&r.key, &r.value);
            Ok(())
        });
    }

    /// The records of this stream and of `other`, in the order they arrive (Kafka's
    /// `merge`). Both must come from the same builder.
    pub fn merge(&self, other: &KStream<K, V>) -> KStream<K, V> {
        let node_name = name(&self.shared, "KSTREAM-MERGE");
        let node = if Rc::ptr_eq(&self.shared, &other.shared) {
            add_processor(
                &self.shared,
                node_name,
                &[self.node, other.node],
                Vec::new(),
                supplier(PassThrough::<K, V>::new),
            )
        } else {
            add(&self.shared, |_| {
                Err(Error::InvalidTopology {
                    reason: format!("{node_name}: merge of streams of two different builders"),
                })
            })
        };
        KStream::new(
            self.shared.clone(),
            node,
            self.repartition_required || other.repartition_required,
        )
    }

    /// Split the stream into branches by predicates (Kafka's `split()`); the branches are
    /// named after a generated prefix `KSTREAM-BRANCH-<index>`.
    pub fn split(&self) -> BranchedKStream<K, V> {
        let prefix = name(&self.shared, "KSTREAM-BRANCH");
        self.split_named(&prefix)
    }

    /// [`split`](Self::split) with the branches' names prefixed by `prefix` (Kafka's
    /// `split(Named.as(prefix))`).
    pub fn split_named(&self, prefix: &str) -> BranchedKStream<K, V> {
        BranchedKStream {
            stream: self.clone(),
            prefix: prefix.to_string(),
            branches: Vec::new(),
        }
    }

    /// Write every record to `topic` (Kafka's `to`).
    pub fn to(&self, topic: &str, produced: Produced<K, V>) {
        let sink = name(&self.shared, "KSTREAM-SINK");
        add(&self.shared, |t| {
            t.sink_node(
                sink,
                topic,
                false,
                produced.key_serde,
                produced.value_serde,
                self.node,
            )
        });
    }

    /// Write each record to the topic `extractor` picks for it (Kafka's
    /// `to(TopicNameExtractor, Produced)`). In the test driver any name goes; the runtime's
    /// producer will refuse a name Kafka does not allow.
    pub fn to_dynamic(
        &self,
        extractor: impl Fn(&K, &V) -> String + Send + Sync + 'static,
        produced: Produced<K, V>,
    ) {
        let sink = name(&self.shared, "KSTREAM-SINK");
        add(&self.shared, |t| {
            t.dynamic_sink_node(
                sink,
                Arc::new(extractor),
                produced.key_serde,
                produced.value_serde,
                self.node,
            )
        });
    }

    /// Write the stream through an internal topic and read it back (Kafka's `repartition`):
    /// `<name>-repartition` with `repartitioned`'s name, else
    /// `KSTREAM-REPARTITION-<index>-repartition`, prefixed with the application id. Records of
    /// a key then meet in one task, so a later grouping needs no repartition of its own.
    pub fn repartition(&self, repartitioned: Repartitioned<K, V>) -> KStream<K, V> {
        let prefix = repartitioned
            .name
            .clone()
            .unwrap_or_else(|| name(&self.shared, "KSTREAM-REPARTITION"));
        let topic = format!("{prefix}-repartition");
        let (ks, vs) = (
            repartitioned.key_serde.clone(),
            repartitioned.value_serde.clone(),
        );
        let sink = format!("{prefix}-repartition-sink");
        let source = format!("{prefix}-repartition-source");
        add(&self.shared, |t| {
            t.sink_node(sink, &topic, true, ks, vs, self.node)
        });
        let node = add(&self.shared, |t| {
            t.source_node::<K, V>(
                source,
                &topic,
                true,
                repartitioned.key_serde,
                repartitioned.value_serde,
                None,
            )
        });
        KStream::new(self.shared.clone(), node, false)
    }

    /// Group by the current key (Kafka's `groupByKey`). If the key may have changed since the
    /// source (`map`, `select_key`, ...), the aggregation will first write the records to a
    /// repartition topic with `grouped`'s serdes, as Kafka does.
    pub fn group_by_key(&self, grouped: Grouped<K, V>) -> KGroupedStream<K, V>
    where
        K: Ord,
    {
        KGroupedStream::new(self.clone(), grouped, self.repartition_required)
    }

    /// Group by the key `selector` makes of each record (Kafka's `groupBy`): always
    /// repartitioned through `<prefix>-repartition` with `grouped`'s serdes.
    pub fn group_by<KR>(
        &self,
        selector: impl Fn(&K, &V) -> KR + Send + Sync + 'static,
        grouped: Grouped<KR, V>,
    ) -> KGroupedStream<KR, V>
    where
        KR: Ord + Clone + 'static,
    {
        let selected = self.select_key(selector);
        KGroupedStream::new(selected, grouped, true)
    }

    /// Run each record through a processor of the application's own, connected to `stores`
    /// (added with [`StreamsBuilder::add_state_store`](super::StreamsBuilder::add_state_store)),
    /// which `make` creates once per task (Kafka's `process`). What it forwards is the new
    /// stream; it may change keys, so the stream is marked for repartitioning.
    pub fn process<KO, VO, P>(
        &self,
        make: impl Fn() -> P + Send + Sync + 'static,
        stores: &[&str],
    ) -> KStream<KO, VO>
    where
        KO: Clone + 'static,
        VO: Clone + 'static,
        P: Processor<K, V, KO, VO> + 'static,
    {
        let node_name = name(&self.shared, "KSTREAM-PROCESSOR");
        let node = add_processor(
            &self.shared,
            node_name,
            &[self.node],
            stores.iter().map(|s| s.to_string()).collect(),
            supplier(make),
        );
        KStream::new(self.shared.clone(), node, true)
    }
}

impl<K: Ord + Clone + 'static, V: Clone + 'static> KStream<K, Option<V>> {
    /// The stream read as a table (Kafka's `toTable`): each record updates its key's row in
    /// a store, and a `None` value (a tombstone) deletes it. A stream of plain values becomes
    /// one with `map_values(Some)`. Unnamed, the store is called
    /// `KSTREAM-TOTABLE-STATE-STORE-<index>`. The store has a changelog when `materialized`
    /// names both serdes (`with_key_serde`, `with_value_serde`: the stream's serdes are not
    /// known here) and logging is on.
    pub fn to_table(&self, materialized: Materialized) -> KTable<K, V> {
        let store = materialized
            .name
            .clone()
            .unwrap_or_else(|| name(&self.shared, "KSTREAM-TOTABLE-STATE-STORE"));
        let key_serde = match materialized.key_serde_for::<K>(&store) {
            Ok(serde) => serde,
            Err(e) => {
                add(&self.shared, |_| Err(e));
                None
            }
        };
        let value_serde =
            super::changelog_value_serde::<V>(&self.shared, &materialized, &store, None);
        match (key_serde, value_serde) {
            (Some(k), Some(v)) => super::add_logged_kv_store::<K, V>(&self.shared, &store, k, v),
            _ => add_kv_store::<K, ValueAndTimestamp<V>>(&self.shared, &store),
        }
        let node_name = name(&self.shared, "KSTREAM-TOTABLE");
        let store_name = store.clone();
        let node = add_processor(
            &self.shared,
            node_name,
            &[self.node],
            vec![store.clone()],
            supplier(move || TableSource::<K, V>::new(store_name.clone())),
        );
        KTable::new(self.shared.clone(), node, Some(store))
    }
}

/// The name of a branch of a `split` (Kafka's `Branched`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Branched {
    name: Option<String>,
}

impl Branched {
    /// A branch named `name`: its stream is found under the split's prefix + `name`
    /// (Kafka's `Branched.as`).
    pub fn as_(name: impl Into<String>) -> Self {
        Branched {
            name: Some(name.into()),
        }
    }
}

/// A stream being split into branches (Kafka's `BranchedKStream`): each record goes to the
/// first branch whose predicate holds.
///
/// ```
/// use embroker::streams::{Branched, Consumed, Produced, StreamsBuilder};
/// use embroker::Builtin;
/// let builder = StreamsBuilder::new();
/// let branches = builder
///     .stream("in", Consumed::<String, i64>::with(Builtin, Builtin))
///     .split_named("sign-")
///     .branch(|_, v| *v < 0, Branched::as_("negative"))
///     .default_branch(Branched::as_("other"));
/// let mut names: Vec<_> = branches.keys().cloned().collect();
/// names.sort();
/// assert_eq!(names, ["sign-negative", "sign-other"]);
/// ```
pub struct BranchedKStream<K, V> {
    stream: KStream<K, V>,
    prefix: String,
    branches: Vec<(Predicate<K, V>, String)>,
}

impl<K: Clone + 'static, V: Clone + 'static> BranchedKStream<K, V> {
    /// Add a branch for the records `predicate` holds for (and no earlier branch took).
    /// Unnamed, it is the prefix + its position (from 1), as in Kafka.
    pub fn branch(
        mut self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
        branched: Branched,
    ) -> Self {
        let position = self.branches.len() + 1;
        let name = format!(
            "{}{}",
            self.prefix,
            branched.name.unwrap_or_else(|| position.to_string())
        );
        self.branches.push((Arc::new(predicate), name));
        self
    }

    /// End the split with a branch for the records no predicate took (unnamed: the prefix
    /// + `0`); the branches by name (Kafka's `defaultBranch`).
    pub fn default_branch(self, branched: Branched) -> HashMap<String, KStream<K, V>> {
        let name = format!(
            "{}{}",
            self.prefix,
            branched.name.unwrap_or_else(|| "0".to_string())
        );
        self.finish(Some(name))
    }

    /// End the split; records no predicate took are dropped (Kafka's `noDefaultBranch`).
    pub fn no_default_branch(self) -> HashMap<String, KStream<K, V>> {
        self.finish(None)
    }

    fn finish(self, default_name: Option<String>) -> HashMap<String, KStream<K, V>> {
        let shared = &self.stream.shared;
        let predicates: Arc<[Predicate<K, V>]> =
            self.branches.iter().map(|(p, _)| p.clone()).collect();
        let default_branch = default_name.is_some();
        let branch_node = add_processor(
            shared,
            self.prefix.clone(),
            &[self.stream.node],
            Vec::new(),
            supplier(move || Branch {
                predicates: predicates.clone(),
                default_branch,
            }),
        );
        let names = self
            .branches
            .into_iter()
            .map(|(_, n)| n)
            .chain(default_name);
        names
            .map(|branch_name| {
                let node = add_processor(
                    shared,
                    branch_name.clone(),
                    &[branch_node],
                    Vec::new(),
                    supplier(PassThrough::<K, V>::new),
                );
                let stream = KStream::new(shared.clone(), node, self.stream.repartition_required);
                (branch_name, stream)
            })
            .collect()
    }
}
