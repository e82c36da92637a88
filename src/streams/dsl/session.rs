//! [`SessionWindowedKStream`]: a grouped stream cut into sessions, ready to aggregate (Kafka's
//! `SessionWindowedKStream`).

use std::sync::Arc;

use super::grouped::KGroupedStream;
use super::ktable::KTable;
use super::processors::{Merge, SessionAggregate, Step};
use super::{add, add_processor, name, supplier, Materialized};
use crate::streams::serdes::SharedSerde;
use crate::streams::state::InMemorySessionStore;
use crate::streams::window::{SessionWindows, Windowed};

/// A grouped stream in sessions (Kafka's `SessionWindowedKStream<K, V>`): a key's records
/// closer together than the inactivity gap share a session, and a record that bridges two
/// sessions merges them. `count`, `reduce` and `aggregate` keep one aggregate per session in
/// a session store and make a [`KTable`] keyed by [`Windowed`] keys whose window is the
/// session's first and last timestamps; a merged-away session is forwarded as a deletion.
///
/// ```
/// use std::time::Duration;
/// use embroker::streams::{Consumed, Grouped, Materialized, ReadOnlySessionStore, SessionWindows, StreamsBuilder, StreamsConfig, TopologyTestDriver};
/// use embroker::Builtin;
/// let builder = StreamsBuilder::new();
/// builder
///     .stream("clicks", Consumed::<String, String>::with(Builtin, Builtin))
///     .group_by_key(Grouped::with(Builtin, Builtin))
///     .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(
///         Duration::from_secs(5),
///         Duration::from_secs(30),
///     ))
///     .count(Materialized::as_("sessions"));
/// let driver = TopologyTestDriver::new(builder.build()?, StreamsConfig::new("clicks"))?;
/// let clicks = driver.create_input_topic::<String, String>("clicks", Builtin, Builtin);
/// for t in [0, 3_000, 20_000, 12_000, 16_000] {
///     clicks.pipe_input_with_timestamp("ann".to_string(), "/".to_string(), t)?;
/// }
/// // 12 s starts a session of its own; 16 s bridges it and 20 s's: [0, 3 s], [12 s, 20 s].
/// let sessions = driver.get_session_store::<String, i64>("sessions")?;
/// let found: Vec<(i64, i64, i64)> = sessions
///     .fetch(&"ann".to_string())?
///     .into_iter()
///     .map(|(w, n)| (w.window.start, w.window.end, n))
///     .collect();
/// assert_eq!(found, [(0, 3_000, 2), (12_000, 20_000, 3)]);
/// # Ok::<(), embroker::Error>(())
/// ```
pub struct SessionWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: SessionWindows,
}

impl<K, V> SessionWindowedKStream<K, V>
where
    K: Ord + Clone + 'static,
    V: Clone + 'static,
{
    pub(crate) fn new(grouped: KGroupedStream<K, V>, windows: SessionWindows) -> Self {
        SessionWindowedKStream { grouped, windows }
    }

    /// The number of records per key and session (Kafka's `count`).
    pub fn count(self, materialized: Materialized) -> KTable<Windowed<K>, i64> {
        self.aggregate_with(
            "KSTREAM-AGGREGATE",
            Arc::new(|| Some(0)),
            Arc::new(|_, _, n: Option<i64>| n.unwrap_or(0).saturating_add(1)),
            Arc::new(|_, a: Option<i64>, b| a.unwrap_or(0).saturating_add(b)),
            materialized,
            Some(Arc::new(crate::Builtin)),
        )
    }

    /// The values per key and session combined by `reducer(aggregate, value)`; merged
    /// sessions are combined by it too (Kafka's `reduce`).
    pub fn reduce(
        self,
        reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized,
    ) -> KTable<Windowed<K>, V> {
        let reducer = Arc::new(reducer);
        let merge_with = reducer.clone();
        let value_serde = self.grouped.serdes().1;
        self.aggregate_with(
            "KSTREAM-REDUCE",
            Arc::new(|| None),
            Arc::new(move |_, value, old: Option<V>| match old {
                Some(aggregate) => reducer(aggregate, value),
                None => value,
            }),
            Arc::new(move |_, a: Option<V>, b| match a {
                Some(a) => merge_with(a, b),
                None => b,
            }),
            materialized,
            Some(value_serde),
        )
    }

    /// The values per key and session folded by `aggregator(key, value, aggregate)` from
    /// `initializer()`; when sessions merge, their aggregates are combined by
    /// `merger(key, aggregate, aggregate)` (Kafka's `aggregate` with a `Merger`).
    pub fn aggregate<VA: Clone + 'static>(
        self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        merger: impl Fn(&K, VA, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized,
    ) -> KTable<Windowed<K>, VA> {
        let initializer = Arc::new(initializer);
        let init = initializer.clone();
        self.aggregate_with(
            "KSTREAM-AGGREGATE",
            Arc::new(move || Some(init())),
            Arc::new(move |key, value, old: Option<VA>| {
                aggregator(key, value, old.unwrap_or_else(|| initializer()))
            }),
            Arc::new(move |key, a: Option<VA>, b| match a {
                Some(a) => merger(key, a, b),
                None => b,
            }),
            materialized,
            None,
        )
    }

    /// The store (kept for the gap plus the grace period after a session's end, Kafka's
    /// default retention), with a changelog when the aggregate's serde is known (`count`,
    /// `reduce`), and the aggregation node.
    fn aggregate_with<VA: Clone + 'static>(
        self,
        prefix: &str,
        init: Arc<dyn Fn() -> Option<VA> + Send + Sync>,
        add_step: Step<K, V, VA>,
        merge: Merge<K, VA>,
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
        let retention = windows
            .inactivity_gap_ms()
            .saturating_add(windows.grace_ms());
        let store_name = store.clone();
        add(&shared, |t| {
            let make: crate::streams::topology::StoreSupplier = Arc::new(move || {
                Box::new(InMemorySessionStore::<K, VA>::new(
                    store_name.clone(),
                    retention,
                )) as Box<dyn std::any::Any>
            });
            match value_serde {
                Some(value_serde) => {
                    let logger = Arc::new(crate::streams::runtime::changelog::SessionLogger::new(
                        key_serde,
                        value_serde,
                    ));
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
            supplier(move || SessionAggregate::<K, V, VA> {
                store: store_name.clone(),
                windows,
                init: init.clone(),
                add: add_step.clone(),
                merge: merge.clone(),
            }),
        );
        // Suppression waits for a session's end plus the gap and the grace (Kafka's grace
        // of session windows in `suppress`).
        KTable::new(shared, node, Some(store)).with_grace(retention)
    }
}
