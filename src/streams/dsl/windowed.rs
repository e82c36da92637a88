//! [`TimeWindowedKStream`]: a grouped stream cut into time windows, ready to aggregate
//! (Kafka's `TimeWindowedKStream`).

use std::sync::Arc;

use super::grouped::KGroupedStream;
use super::ktable::KTable;
use super::processors::{Step, WindowAggregate};
use super::{add, add_processor, name, supplier, Materialized};
use crate::streams::serdes::SharedSerde;
use crate::streams::state::{InMemoryWindowStore, ValueAndTimestamp};
use crate::streams::window::{TimeWindows, Windowed};

/// A grouped stream in time windows (Kafka's `TimeWindowedKStream<K, V>`): `count`,
/// `reduce` and `aggregate` keep one aggregate per key and window in a window store, and
/// make a [`KTable`] keyed by [`Windowed`] keys. A record that arrives after its window's
/// end plus the grace period (by stream time) is dropped and counted
/// ([`TopologyTestDriver::dropped_records`](crate::streams::TopologyTestDriver::dropped_records)).
///
/// ```
/// use std::time::Duration;
/// use embroker::streams::{Consumed, Grouped, Materialized, StreamsBuilder, StreamsConfig, TimeWindows, TopologyTestDriver};
/// use embroker::streams::ReadOnlyWindowStore;
/// use embroker::Builtin;
/// let builder = StreamsBuilder::new();
/// builder
///     .stream("clicks", Consumed::<String, String>::with(Builtin, Builtin))
///     .group_by_key(Grouped::with(Builtin, Builtin))
///     .windowed_by(TimeWindows::of_size_and_grace(Duration::from_secs(60), Duration::from_secs(5)))
///     .count(Materialized::as_("clicks-per-minute"));
/// let driver = TopologyTestDriver::new(builder.build()?, StreamsConfig::new("clicks"))?;
/// let clicks = driver.create_input_topic::<String, String>("clicks", Builtin, Builtin);
/// clicks.pipe_input_with_timestamp("ann".to_string(), "/".to_string(), 10_000)?;
/// clicks.pipe_input_with_timestamp("ann".to_string(), "/a".to_string(), 62_000)?;
/// clicks.pipe_input_with_timestamp("ann".to_string(), "/b".to_string(), 59_000)?; // late, in grace
/// clicks.pipe_input_with_timestamp("ann".to_string(), "/c".to_string(), 80_000)?;
/// clicks.pipe_input_with_timestamp("ann".to_string(), "/d".to_string(), 30_000)?; // past grace: dropped
/// let store = driver.get_window_store::<String, i64>("clicks-per-minute")?;
/// assert_eq!(store.fetch(&"ann".to_string(), 0)?, Some(2));
/// assert_eq!(store.fetch(&"ann".to_string(), 60_000)?, Some(2));
/// assert_eq!(driver.dropped_records(), 1);
/// # Ok::<(), embroker::Error>(())
/// ```
pub struct TimeWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: TimeWindows,
}

impl<K, V> TimeWindowedKStream<K, V>
where
    K: Ord + Clone + 'static,
    V: Clone + 'static,
{
    pub(crate) fn new(grouped: KGroupedStream<K, V>, windows: TimeWindows) -> Self {
        TimeWindowedKStream { grouped, windows }
    }

    /// The number of records per key and window (Kafka's `count`).
    pub fn count(self, materialized: Materialized) -> KTable<Windowed<K>, i64> {
        self.aggregate_with(
            "KSTREAM-AGGREGATE",
            Arc::new(|_, _, old: Option<i64>| old.unwrap_or(0).saturating_add(1)),
            materialized,
            Some(Arc::new(crate::Builtin)),
        )
    }

    /// The values per key and window combined by `reducer(aggregate, value)` (Kafka's
    /// `reduce`).
    pub fn reduce(
        self,
        reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized,
    ) -> KTable<Windowed<K>, V> {
        let value_serde = self.grouped.serdes().1;
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

    /// The values per key and window folded by `aggregator(key, value, aggregate)` from
    /// `initializer()` (Kafka's `aggregate`).
    pub fn aggregate<VA: Clone + 'static>(
        self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized,
    ) -> KTable<Windowed<K>, VA> {
        self.aggregate_with(
            "KSTREAM-AGGREGATE",
            Arc::new(move |key, value, old: Option<VA>| {
                aggregator(key, value, old.unwrap_or_else(&initializer))
            }),
            materialized,
            None,
        )
    }

    /// As [`KGroupedStream`]'s aggregations, with a window store kept for the window size
    /// plus the grace period (Kafka's default retention), with a changelog when the
    /// aggregate's serde is known (`count`, `reduce`).
    fn aggregate_with<VA: Clone + 'static>(
        self,
        prefix: &str,
        step: Step<K, V, VA>,
        materialized: Materialized,
        value_serde: Option<SharedSerde<VA>>,
    ) -> KTable<Windowed<K>, VA> {
        let key_serde = self.grouped.serdes().0;
        let shared = self.grouped.shared().clone();
        let store = materialized
            .name
            .clone()
            .unwrap_or_else(|| name(&shared, &format!("{prefix}-STATE-STORE")));
        let value_serde = super::changelog_value_serde(&shared, &materialized, &store, value_serde);
        let parent = self.grouped.aggregation_parent(&store);
        let windows = self.windows;
        let retention = windows.size_ms().saturating_add(windows.grace_ms());
        let store_name = store.clone();
        add(&shared, |t| {
            let make: crate::streams::topology::StoreSupplier = Arc::new(move || {
                Box::new(InMemoryWindowStore::<K, ValueAndTimestamp<VA>>::new(
                    store_name.clone(),
                    retention,
                    windows.size_ms(),
                )) as Box<dyn std::any::Any>
            });
            match value_serde {
                Some(value_serde) => {
                    let logger = Arc::new(
                        crate::streams::runtime::changelog::TimestampedWindowLogger::new(
                            key_serde,
                            value_serde,
                        ),
                    );
                    t.add_logged_store(&store, make, logger)
                }
                None => t.add_store(&store, make),
            }
            .map(|()| 0)
        });
        let node_name = name(&shared, prefix);
        let store_name = store.clone();
        let node = add_processor(
            &shared,
            node_name,
            &[parent],
            vec![store.clone()],
            supplier(move || WindowAggregate::<K, V, VA> {
                store: store_name.clone(),
                windows,
                step: step.clone(),
            }),
        );
        KTable::new(shared, node, Some(store)).with_grace(windows.grace_ms())
    }
}
