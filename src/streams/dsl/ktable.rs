//! [`KTable`]: a changelog stream seen as a table, each record an update of its key's row
//! (Kafka's `KTable`).

use std::marker::PhantomData;
use std::sync::Arc;

use super::grouped_table::KGroupedTable;
use super::kstream::KStream;
use super::processors::{Stateless, SuppressFinal};
use super::{add, add_processor, name, supplier, Change, Shared};
use crate::error::Error;
use crate::streams::processor::ProcessorContext;
use crate::streams::processor::Record;
use crate::streams::serdes::Grouped;
use crate::streams::window::Windowed;

/// A table: the latest value per key, updated record by record (Kafka's `KTable<K, V>`).
/// Made by [`StreamsBuilder::table`](super::StreamsBuilder::table) or by an aggregation. Each
/// update is forwarded downstream as it happens, except those of a grouped stream's cached
/// key-value aggregation, which go once per key per cache flush (see [`Materialized`](super::Materialized)).
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
    pub(crate) shared: Shared,
    pub(crate) node: usize,
    pub(crate) store: Option<String>,
    /// The grace period of the windows upstream, for a table of a windowed aggregation
    /// (what `suppress(until_window_closes)` waits for).
    grace_ms: Option<i64>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for KTable<K, V> {
    fn clone(&self) -> Self {
        KTable {
            shared: self.shared.clone(),
            node: self.node,
            store: self.store.clone(),
            grace_ms: self.grace_ms,
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
            grace_ms: None,
            _types: PhantomData,
        }
    }

    /// The same handle, marked as the result of windows with `grace_ms` of grace.
    pub(crate) fn with_grace(mut self, grace_ms: i64) -> Self {
        self.grace_ms = Some(grace_ms);
        self
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
        KTable {
            grace_ms: self.grace_ms,
            ..KTable::new(self.shared.clone(), node, None)
        }
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

    /// Re-group the table's rows by the key `selector` makes of each (with a new value), for
    /// an aggregation that follows rows as they change (Kafka's `groupBy`): always through a
    /// repartition topic written with `grouped`'s serdes. Each update sends the old row's
    /// pair (to be subtracted) and the new row's (to be added), as one record when both have
    /// the same key (Kafka's KIP-904).
    pub fn group_by<KR, VR>(
        &self,
        selector: impl Fn(&K, &V) -> (KR, VR) + Send + Sync + 'static,
        grouped: Grouped<KR, VR>,
    ) -> KGroupedTable<KR, VR>
    where
        KR: Ord + Clone + 'static,
        VR: Clone + 'static,
    {
        let node_name = name(&self.shared, "KTABLE-SELECT");
        let f = Arc::new(
            move |r: Record<K, Change<V>>, ctx: &mut ProcessorContext<'_, KR, Change<VR>>| {
                let Record {
                    key,
                    value,
                    timestamp,
                    headers,
                } = r;
                let old = value.old.map(|v| selector(&key, &v));
                let new = value.new.map(|v| selector(&key, &v));
                let mut forward = |key: KR, new: Option<VR>, old: Option<VR>| {
                    ctx.forward(Record {
                        key,
                        value: Change { new, old },
                        timestamp,
                        headers: headers.clone(),
                    })
                };
                match (old, new) {
                    (Some((ok, ov)), Some((nk, nv))) if ok == nk => forward(nk, Some(nv), Some(ov)),
                    (old, new) => {
                        // The old pair first, as Kafka forwards it.
                        if let Some((ok, ov)) = old {
                            forward(ok, None, Some(ov))?;
                        }
                        match new {
                            Some((nk, nv)) => forward(nk, Some(nv), None),
                            None => Ok(()),
                        }
                    }
                }
            },
        );
        let node = add_processor(
            &self.shared,
            node_name,
            &[self.node],
            Vec::new(),
            supplier(move || Stateless(f.clone())),
        );
        KGroupedTable::new(
            self.shared.clone(),
            node,
            grouped.key_serde,
            grouped.value_serde,
            grouped.name,
        )
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

/// When a suppression lets results through (Kafka's `Suppressed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Suppressed {
    _final_results: (),
}

impl Suppressed {
    /// Only each window's final result, once stream time has passed the window's end plus
    /// its grace period; the buffer is unbounded (Kafka's
    /// `untilWindowCloses(BufferConfig.unbounded())`).
    pub fn until_window_closes() -> Self {
        Suppressed { _final_results: () }
    }
}

impl<K: Ord + Clone + 'static, V: Clone + 'static> KTable<Windowed<K>, V> {
    /// Hold back a windowed table's updates and forward only each window's final result,
    /// when the window closes (Kafka's `suppress(Suppressed.untilWindowCloses(...))`): the
    /// way to emit one result per window instead of every update. The table must come from
    /// a windowed aggregation (its grace period sets when a window closes).
    ///
    /// ```
    /// use std::time::Duration;
    /// use embroker::streams::{Consumed, Grouped, Materialized, Produced, StreamsBuilder, StreamsConfig, Suppressed, TimeWindowedSerde, TimeWindows, TopologyTestDriver, Windowed};
    /// use embroker::Builtin;
    /// let size = Duration::from_secs(10);
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream("in", Consumed::<String, String>::with(Builtin, Builtin))
    ///     .group_by_key(Grouped::with(Builtin, Builtin))
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(size))
    ///     .count(Materialized::as_("counts"))
    ///     .suppress(Suppressed::until_window_closes())
    ///     .to_stream()
    ///     .to("final", Produced::with(TimeWindowedSerde::new(Builtin, size), Builtin));
    /// let driver = TopologyTestDriver::new(builder.build()?, StreamsConfig::new("app"))?;
    /// let input = driver.create_input_topic::<String, String>("in", Builtin, Builtin);
    /// let out = driver.create_output_topic::<Windowed<String>, Option<i64>>("final", TimeWindowedSerde::new(Builtin, size), Builtin);
    /// input.pipe_input_with_timestamp("k".to_string(), "a".to_string(), 1_000)?;
    /// input.pipe_input_with_timestamp("k".to_string(), "b".to_string(), 2_000)?;
    /// assert!(out.is_empty()); // window [0 s, 10 s) still open
    /// input.pipe_input_with_timestamp("k".to_string(), "c".to_string(), 10_000)?;
    /// let record = out.read_record()?.unwrap();
    /// assert_eq!((record.key.window.start, record.value), (0, Some(2)));
    /// assert!(out.is_empty());
    /// # Ok::<(), embroker::Error>(())
    /// ```
    pub fn suppress(&self, suppressed: Suppressed) -> KTable<Windowed<K>, V> {
        let _ = suppressed;
        let node_name = name(&self.shared, "KTABLE-SUPPRESS");
        let Some(grace_ms) = self.grace_ms else {
            add(&self.shared, |_| {
                Err(Error::InvalidTopology {
                    reason: format!(
                        "{node_name}: suppress(until_window_closes) needs a table made by a \
                         windowed aggregation"
                    ),
                })
            });
            return KTable::new(self.shared.clone(), usize::MAX, None);
        };
        let node = add_processor(
            &self.shared,
            node_name,
            &[self.node],
            Vec::new(),
            supplier(move || SuppressFinal::<K, V>::new(grace_ms)),
        );
        KTable::new(self.shared.clone(), node, None).with_grace(grace_ms)
    }
}
