//! [`SlidingWindowedKStream`]: a grouped stream aggregated over sliding windows (Kafka's
//! `SlidingWindowedKStream`), and its processor (Kafka's `KStreamSlidingWindowAggregate`).
//!
//! Owns: the windows each record creates and updates. A sliding window is `[start, start +
//! difference]`, both ends inclusive, and exists only where records are: a record at `t`
//! creates its left window `[t - difference, t]` (holding every record of its key in that
//! span) and, if a later record of the key is within `difference`, its right window `[t + 1,
//! t + 1 + difference]`; it adds itself to every existing window that contains it; and it
//! creates the right window of the record before it if that window is missing and now not
//! empty. Records earlier than `difference` (whose left window would start before 0) go into
//! the window `[0, difference]`.
//!
//! Invariants: a window is updated only while its end is at or after stream time minus the
//! grace period; each refusal counts a dropped record (Kafka's `dropped-records`), and a
//! record whose own right bound `t + difference` is already closed is dropped whole; the
//! window store keeps windows for `2 × difference + grace` (Kafka's retention for sliding
//! windows: a record may need the window of a record up to twice the difference older); the
//! windows are walked newest first, as Kafka's reverse iteration does, so updates come out in
//! Kafka's order.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::grouped::KGroupedStream;
use super::ktable::KTable;
use super::processors::Step;
use super::{add, add_processor, changelog_value_serde, name, supplier, Change, Materialized};
use crate::error::Result;
use crate::streams::processor::{Processor, ProcessorContext, Record};
use crate::streams::serdes::SharedSerde;
use crate::streams::state::{
    InMemoryWindowStore, ReadOnlyWindowStore, ValueAndTimestamp, WindowStore,
};
use crate::streams::window::{SlidingWindows, Window, Windowed};

/// A grouped stream in sliding windows (Kafka's `SlidingWindowedKStream<K, V>`): `count`,
/// `reduce` and `aggregate` keep one aggregate per key and window, each window spanning
/// `difference` milliseconds ending at a record or starting just after one.
///
/// ```
/// use std::time::Duration;
/// use embroker::streams::{Consumed, Grouped, Materialized, ReadOnlyWindowStore, SlidingWindows, StreamsBuilder, StreamsConfig, TopologyTestDriver};
/// use embroker::Builtin;
/// let builder = StreamsBuilder::new();
/// builder
///     .stream("clicks", Consumed::<String, String>::with(Builtin, Builtin))
///     .group_by_key(Grouped::with(Builtin, Builtin))
///     .windowed_by_sliding(SlidingWindows::of_time_difference_with_no_grace(Duration::from_millis(10)))
///     .count(Materialized::as_("clicks-within-10ms"));
/// let driver = TopologyTestDriver::new(builder.build()?, StreamsConfig::new("app"))?;
/// let clicks = driver.create_input_topic::<String, String>("clicks", Builtin, Builtin);
/// clicks.pipe_input_with_timestamp("ann".into(), "/".into(), 100)?;
/// clicks.pipe_input_with_timestamp("ann".into(), "/a".into(), 105)?;
/// let store = driver.get_window_store::<String, i64>("clicks-within-10ms")?;
/// // [90, 100] holds the first record, [95, 105] both, [101, 111] the second.
/// assert_eq!(store.fetch_range(&"ann".into(), 0, 200)?, vec![(90, 1), (95, 2), (101, 1)]);
/// # Ok::<(), embroker::Error>(())
/// ```
pub struct SlidingWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: SlidingWindows,
}

impl<K, V> KGroupedStream<K, V>
where
    K: Ord + Clone + 'static,
    V: Clone + 'static,
{
    /// Group into sliding windows (Kafka's `windowedBy(SlidingWindows)`).
    pub fn windowed_by_sliding(self, windows: SlidingWindows) -> SlidingWindowedKStream<K, V> {
        SlidingWindowedKStream {
            grouped: self,
            windows,
        }
    }
}

impl<K, V> SlidingWindowedKStream<K, V>
where
    K: Ord + Clone + 'static,
    V: Clone + 'static,
{
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

    /// The window store (with a changelog when the aggregate's serde is known and logging
    /// is on, written as the time-window stores' is) and the aggregation node.
    fn aggregate_with<VA: Clone + 'static>(
        self,
        prefix: &str,
        step: Step<K, V, VA>,
        materialized: Materialized,
        value_serde: Option<SharedSerde<VA>>,
    ) -> KTable<Windowed<K>, VA> {
        let shared = self.grouped.shared().clone();
        if let Err(e) = self.windows.validate() {
            add(&shared, |_| Err(e));
        }
        let store = materialized
            .name
            .clone()
            .unwrap_or_else(|| name(&shared, &format!("{prefix}-STATE-STORE")));
        let value_serde = changelog_value_serde(&shared, &materialized, &store, value_serde);
        let key_serde = self.grouped.serdes().0;
        let parent = self.grouped.aggregation_parent(&store);
        let windows = self.windows;
        let difference = windows.time_difference_ms();
        let retention = difference
            .saturating_mul(2)
            .saturating_add(windows.grace_ms());
        let store_name = store.clone();
        add(&shared, |t| {
            let make: crate::streams::topology::StoreSupplier = Arc::new(move || {
                Box::new(InMemoryWindowStore::<K, ValueAndTimestamp<VA>>::new(
                    store_name.clone(),
                    retention,
                    difference,
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
            supplier(move || SlidingAggregate::<K, V, VA> {
                store: store_name.clone(),
                windows,
                step: step.clone(),
                observed_ms: i64::MIN,
            }),
        );
        KTable::new(shared, node, Some(store)).with_grace(windows.grace_ms())
    }
}

/// A window's aggregate as read from the store: `None` before the first record (the
/// initializer's value, which `Step` makes from `None`).
type Agg<VA> = (Option<VA>, i64);

/// The sliding-window aggregation (Kafka's `KStreamSlidingWindowAggregate`, reverse
/// iteration, updates emitted as they happen).
pub(crate) struct SlidingAggregate<K, V, VA> {
    store: String,
    windows: SlidingWindows,
    step: Step<K, V, VA>,
    /// The largest timestamp this processor has seen (Kafka's `observedStreamTime`).
    observed_ms: i64,
}

type Store<K, VA> = InMemoryWindowStore<K, ValueAndTimestamp<VA>>;

impl<K, V, VA> SlidingAggregate<K, V, VA>
where
    K: Ord + Clone + 'static,
    V: Clone + 'static,
    VA: Clone + 'static,
{
    fn window(&self, start: i64) -> Window {
        Window {
            start,
            end: start.saturating_add(self.windows.time_difference_ms()),
        }
    }

    /// Add the record to the window starting at `start` whose aggregate was `old`, if the
    /// window is still open; count a drop otherwise (Kafka's `updateWindowAndForward`).
    fn update(
        &self,
        start: i64,
        old: Agg<VA>,
        record: &Record<K, V>,
        close: i64,
        context: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
    ) -> Result<()> {
        let window = self.window(start);
        if window.end < close {
            context.record_dropped();
            return Ok(());
        }
        let (old_value, old_ts) = old;
        let timestamp = record.timestamp.max(old_ts);
        let new = (self.step)(&record.key, record.value.clone(), old_value.clone());
        context.state_store::<Store<K, VA>>(&self.store)?.put(
            record.key.clone(),
            ValueAndTimestamp::make(new.clone(), timestamp),
            start,
        )?;
        self.forward(record, window, Some(new), old_value, timestamp, context)
    }

    fn forward(
        &self,
        record: &Record<K, V>,
        window: Window,
        new: Option<VA>,
        old: Option<VA>,
        timestamp: i64,
        context: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
    ) -> Result<()> {
        context.forward(Record {
            key: Windowed {
                key: record.key.clone(),
                window,
            },
            value: Change { new, old },
            timestamp,
            headers: record.headers.clone(),
        })
    }

    /// The record's own right window `[t + 1, t + 1 + difference]`, a copy of the aggregate
    /// of the records after it (Kafka's `createCurrentRecordRightWindow`).
    fn create_right_window(
        &self,
        record: &Record<K, V>,
        right: ValueAndTimestamp<VA>,
        context: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
    ) -> Result<()> {
        let start = record.timestamp.saturating_add(1);
        context.state_store::<Store<K, VA>>(&self.store)?.put(
            record.key.clone(),
            right.clone(),
            start,
        )?;
        let window = self.window(start);
        self.forward(
            record,
            window,
            Some(right.value),
            None,
            right.timestamp,
            context,
        )
    }

    /// The windows of the record's key starting in `[from, to]`, newest first.
    fn fetch_newest_first(
        &self,
        key: &K,
        from: i64,
        to: i64,
        context: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
    ) -> Result<Vec<(i64, ValueAndTimestamp<VA>)>> {
        let mut windows = context
            .state_store::<Store<K, VA>>(&self.store)?
            .fetch_range(key, from, to)?;
        windows.reverse();
        Ok(windows)
    }

    /// A record at or after `difference` (Kafka's `processReverse`).
    fn process_reverse(
        &self,
        record: &Record<K, V>,
        close: i64,
        context: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
    ) -> Result<()> {
        let t = record.timestamp;
        let difference = self.windows.time_difference_ms();
        let mut starts = BTreeSet::new();
        let mut left_agg: Option<ValueAndTimestamp<VA>> = None;
        let mut right_agg: Option<ValueAndTimestamp<VA>> = None;
        let (mut left_created, mut right_created) = (false, false);
        let mut previous: Option<i64> = None;
        let from = t.saturating_sub(difference.saturating_mul(2)).max(0);
        for (start, agg) in
            self.fetch_newest_first(&record.key, from, t.saturating_add(1), context)?
        {
            starts.insert(start);
            let end = start.saturating_add(difference);
            if start == t.saturating_add(1) {
                right_created = true;
            } else if end > t {
                if right_agg.is_none() {
                    right_agg = Some(agg.clone());
                }
                self.update(
                    start,
                    (Some(agg.value), agg.timestamp),
                    record,
                    close,
                    context,
                )?;
            } else if end == t {
                left_created = true;
                let max_ts = agg.timestamp;
                self.update(
                    start,
                    (Some(agg.value), agg.timestamp),
                    record,
                    close,
                    context,
                )?;
                if max_ts < t {
                    previous = Some(max_ts);
                } else {
                    return Ok(());
                }
            } else {
                previous = Some(agg.timestamp);
                left_agg = Some(agg);
                break;
            }
        }
        self.create_windows(
            record,
            close,
            &starts,
            right_agg,
            left_agg,
            (left_created, right_created),
            previous,
            context,
        )
    }

    /// Kafka's `createWindows`: the previous record's right window, the record's left window
    /// and its right window, each if missing and not empty.
    #[allow(clippy::too_many_arguments)]
    fn create_windows(
        &self,
        record: &Record<K, V>,
        close: i64,
        starts: &BTreeSet<i64>,
        right_agg: Option<ValueAndTimestamp<VA>>,
        left_agg: Option<ValueAndTimestamp<VA>>,
        (left_created, right_created): (bool, bool),
        previous: Option<i64>,
        context: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
    ) -> Result<()> {
        let t = record.timestamp;
        let difference = self.windows.time_difference_ms();
        if let Some(previous) = previous {
            let previous_right = previous.saturating_add(1);
            if !starts.contains(&previous_right) && previous_right.saturating_add(difference) >= t {
                self.update(previous_right, (None, t), record, close, context)?;
            }
        }
        if !left_created {
            let left_not_empty = previous.is_some_and(|p| t.saturating_sub(difference) <= p);
            let old = match left_agg {
                Some(agg) if left_not_empty => (Some(agg.value), t),
                _ => (None, t),
            };
            self.update(t.saturating_sub(difference), old, record, close, context)?;
        }
        if !right_created {
            if let Some(right) = right_agg.filter(|r| r.timestamp > t) {
                self.create_right_window(record, right, context)?;
            }
        }
        Ok(())
    }

    /// A record earlier than `difference`, whose left window would start before 0: it goes
    /// into `[0, difference]` instead (Kafka's `processEarly`).
    fn process_early(
        &self,
        record: &Record<K, V>,
        close: i64,
        context: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
    ) -> Result<()> {
        let t = record.timestamp;
        let mut combined: Option<(i64, ValueAndTimestamp<VA>)> = None;
        let mut right_agg: Option<ValueAndTimestamp<VA>> = None;
        let mut right_created = false;
        let mut starts = BTreeSet::new();
        let mut previous: Option<i64> = None;
        let windows = context
            .state_store::<Store<K, VA>>(&self.store)?
            .fetch_range(&record.key, 0, t.saturating_add(1))?;
        for (start, agg) in windows {
            starts.insert(start);
            if start == 0 {
                if agg.timestamp < t {
                    previous = Some(agg.timestamp);
                }
                combined = Some((start, agg));
            } else if start <= t {
                right_agg = Some(agg.clone());
                self.update(
                    start,
                    (Some(agg.value), agg.timestamp),
                    record,
                    close,
                    context,
                )?;
            } else {
                // start == t + 1, the only other window the range can hold.
                right_created = true;
            }
        }
        if right_agg.is_none() {
            right_agg = combined
                .as_ref()
                .filter(|(_, agg)| agg.timestamp > t)
                .map(|(_, agg)| agg.clone());
        }
        if !right_created {
            if let Some(right) = right_agg.filter(|r| r.timestamp > t) {
                self.create_right_window(record, right, context)?;
            }
        }
        if let Some(previous) = previous {
            if !starts.contains(&previous.saturating_add(1)) {
                self.update(
                    previous.saturating_add(1),
                    (None, t),
                    record,
                    close,
                    context,
                )?;
            }
        }
        match combined {
            None => self.update(0, (None, t), record, close, context),
            Some((start, agg)) => self.update(
                start,
                (Some(agg.value), agg.timestamp),
                record,
                close,
                context,
            ),
        }
    }
}

impl<K, V, VA> Processor<K, V, Windowed<K>, Change<VA>> for SlidingAggregate<K, V, VA>
where
    K: Ord + Clone + 'static,
    V: Clone + 'static,
    VA: Clone + 'static,
{
    fn process(
        &mut self,
        record: Record<K, V>,
        context: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
    ) -> Result<()> {
        self.observed_ms = self.observed_ms.max(record.timestamp);
        let close = self.observed_ms.saturating_sub(self.windows.grace_ms());
        let difference = self.windows.time_difference_ms();
        if record.timestamp.saturating_add(difference) < close {
            // Even the record's latest window has closed.
            context.record_dropped();
            return Ok(());
        }
        if record.timestamp < difference {
            self.process_early(&record, close, context)
        } else {
            self.process_reverse(&record, close, context)
        }
    }
}
