//! The DSL's processors: one generic stateless processor made from a closure, and the
//! stateful ones (the table source, the aggregation, the branch).

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use super::Change;
use crate::error::Result;
use crate::streams::cache::{Dirty, RecordCache};
use crate::streams::processor::{Processor, ProcessorContext, Record};
use crate::streams::state::{
    InMemoryKeyValueStore, InMemorySessionStore, InMemoryWindowStore, KeyValueStore,
    ReadOnlyKeyValueStore, ReadOnlyWindowStore, SessionStore, ValueAndTimestamp, WindowStore,
};
use crate::streams::window::{SessionWindows, TimeWindows, Window, Windowed};

/// A DSL store: values with the timestamps of the records that set them.
pub(crate) type DslStore<K, V> = InMemoryKeyValueStore<K, ValueAndTimestamp<V>>;

/// A stateless processor: `filter`, `map`, `peek`, ..., each a closure over the record and
/// the context.
pub(crate) struct Stateless<F>(pub(crate) Arc<F>);

impl<F, KI, VI, KO, VO> Processor<KI, VI, KO, VO> for Stateless<F>
where
    F: Fn(Record<KI, VI>, &mut ProcessorContext<'_, KO, VO>) -> Result<()>,
{
    fn process(
        &mut self,
        record: Record<KI, VI>,
        context: &mut ProcessorContext<'_, KO, VO>,
    ) -> Result<()> {
        (self.0)(record, context)
    }
}

/// A table's source: keeps the latest value per key in its store (a `None` value deletes
/// it) and forwards each update with the value it replaced (Kafka's `KTableSource`; a
/// tombstone for a key with no value is forwarded too, as Kafka does).
pub(crate) struct TableSource<K, V> {
    store: String,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V> TableSource<K, V> {
    pub(crate) fn new(store: String) -> Self {
        TableSource {
            store,
            _types: PhantomData,
        }
    }
}

impl<K, V> Processor<K, Option<V>, K, Change<V>> for TableSource<K, V>
where
    K: Ord + Clone + 'static,
    V: Clone + 'static,
{
    fn process(
        &mut self,
        record: Record<K, Option<V>>,
        context: &mut ProcessorContext<'_, K, Change<V>>,
    ) -> Result<()> {
        let store = context.state_store::<DslStore<K, V>>(&self.store)?;
        let old = match &record.value {
            Some(v) => {
                let old = store.get(&record.key)?;
                store.put(
                    record.key.clone(),
                    ValueAndTimestamp::make(v.clone(), record.timestamp),
                )?;
                old
            }
            None => store.delete(&record.key)?,
        };
        let change = Change {
            new: record.value.clone(),
            old: old.map(|o| o.value),
        };
        context.forward(record.with_value(change))
    }
}

/// One step of an aggregation: the new aggregate from the key, the value and the old
/// aggregate (`None` for a key not seen before).
pub(crate) type Step<K, V, VA> = Arc<dyn Fn(&K, V, Option<VA>) -> VA + Send + Sync>;

/// An adder or subtractor of a table aggregation: the new aggregate from the key, a value and
/// the aggregate.
pub(crate) type Fold<K, V, VA> = Arc<dyn Fn(&K, V, VA) -> VA + Send + Sync>;

/// `count`, `reduce` and `aggregate` of a grouped stream (Kafka's `KStreamAggregate` and
/// `KStreamReduce`): the new aggregate goes to the store with the larger of the record's and
/// the old aggregate's timestamps, and downstream as a change: at once without a record
/// cache, else when the cache flushes or evicts the key (Kafka's caching store: one change
/// per key per commit, `old` being the value forwarded at the previous flush).
pub(crate) struct Aggregate<K, V, VA> {
    pub(crate) store: String,
    pub(crate) step: Step<K, V, VA>,
    /// Whether the store is cached (`Materialized`); the cache is made at `init`.
    pub(crate) caching: bool,
    pub(crate) cache: Option<SharedCache<K, VA>>,
}

/// A record cache shared by its processor and the task's flush.
pub(crate) type SharedCache<K, V> = Rc<RefCell<RecordCache<K, V>>>;

impl<K, V, VA> Aggregate<K, V, VA> {
    pub(crate) fn new(store: String, step: Step<K, V, VA>, caching: bool) -> Self {
        Aggregate {
            store,
            step,
            caching,
            cache: None,
        }
    }
}

/// Forward the changes of the keys a record cache let go: each key's value now in `store`
/// against the value forwarded before; each key's changelog record is written at the next
/// drain (Kafka's caching store logs a dirty key when it flushes or evicts it, once, however
/// often the key was updated meanwhile).
fn forward_cached<K, VA>(
    context: &mut ProcessorContext<'_, K, Change<VA>>,
    store: &str,
    entries: Vec<(K, Dirty<VA>)>,
) -> Result<()>
where
    K: Ord + Clone + 'static,
    VA: Clone + 'static,
{
    for (key, dirty) in entries {
        let store = context.state_store::<DslStore<K, VA>>(store)?;
        store.log_change(&key);
        let now = store.get(&key)?;
        let (new, timestamp) = match now {
            Some(v) => (Some(v.value), v.timestamp),
            None => (None, context.current_stream_time_ms().max(0)),
        };
        context.forward(Record {
            key,
            value: Change {
                new,
                old: dirty.old,
            },
            timestamp,
            headers: dirty.headers,
        })?;
    }
    Ok(())
}

impl<K, V, VA> Processor<K, V, K, Change<VA>> for Aggregate<K, V, VA>
where
    K: Ord + Clone + 'static,
    VA: Clone + 'static,
{
    fn init(&mut self, context: &mut ProcessorContext<'_, K, Change<VA>>) -> Result<()> {
        if !self.caching {
            return Ok(());
        }
        let cache = RecordCache::new(context.cache_max_bytes());
        if !cache.enabled() {
            return Ok(());
        }
        let cache = Rc::new(RefCell::new(cache));
        let (flushed, store) = (Rc::clone(&cache), self.store.clone());
        context.register_flush(move |context| {
            let entries = flushed.borrow_mut().flush();
            forward_cached(context, &store, entries)
        });
        self.cache = Some(cache);
        Ok(())
    }

    fn process(
        &mut self,
        record: Record<K, V>,
        context: &mut ProcessorContext<'_, K, Change<VA>>,
    ) -> Result<()> {
        let Record {
            key,
            value,
            timestamp,
            headers,
        } = record;
        let store = context.state_store::<DslStore<K, VA>>(&self.store)?;
        // One search of the store per update: a key seen before is updated in place.
        let (old_value, new, timestamp) = match store.get_mut_unlogged(&key) {
            Some(slot) => {
                let old_value = slot.value.clone();
                let timestamp = slot.timestamp.max(timestamp);
                if let Some(cache) = &self.cache {
                    // Write through (reads see the newest value), log and forward later: the
                    // first update since the last flush remembers the value downstream has.
                    let evicted =
                        cache
                            .borrow_mut()
                            .update(&key, || Some(old_value.clone()), headers);
                    slot.value = (self.step)(&key, value, Some(old_value));
                    slot.timestamp = timestamp;
                    return forward_cached(context, &self.store, evicted);
                }
                let new = (self.step)(&key, value, Some(old_value.clone()));
                slot.value = new.clone();
                slot.timestamp = timestamp;
                store.log_change(&key);
                (Some(old_value), new, timestamp)
            }
            None => {
                let new = (self.step)(&key, value, None);
                if let Some(cache) = &self.cache {
                    let evicted = cache.borrow_mut().update(&key, || None, headers);
                    store.put_unlogged(key, ValueAndTimestamp::make(new, timestamp));
                    return forward_cached(context, &self.store, evicted);
                }
                store.put(key.clone(), ValueAndTimestamp::make(new.clone(), timestamp))?;
                (None, new, timestamp)
            }
        };
        context.forward(Record {
            key,
            value: Change {
                new: Some(new),
                old: old_value,
            },
            timestamp,
            headers,
        })
    }
}

/// A windowed aggregation (Kafka's `KStreamWindowAggregate`): for each window the record
/// falls in, if the window is still open (its end after stream time minus the grace period)
/// the aggregate is updated and forwarded with the newest timestamp; otherwise the record is
/// dropped for that window and counted.
pub(crate) struct WindowAggregate<K, V, VA> {
    pub(crate) store: String,
    pub(crate) windows: TimeWindows,
    pub(crate) step: Step<K, V, VA>,
}

impl<K, V, VA> Processor<K, V, Windowed<K>, Change<VA>> for WindowAggregate<K, V, VA>
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
        let close_time = context
            .current_stream_time_ms()
            .saturating_sub(self.windows.grace_ms());
        let windows = self.windows.windows_for(record.timestamp);
        if windows.is_empty() {
            // A negative timestamp belongs to no window: dropped, as Kafka drops it.
            context.record_dropped();
        }
        for window in windows {
            if window.end <= close_time {
                context.record_dropped();
                continue;
            }
            let store = context
                .state_store::<InMemoryWindowStore<K, ValueAndTimestamp<VA>>>(&self.store)?;
            let old = store.fetch(&record.key, window.start)?;
            let (old_value, timestamp) = match old {
                Some(o) => (Some(o.value), o.timestamp.max(record.timestamp)),
                None => (None, record.timestamp),
            };
            let new = (self.step)(&record.key, record.value.clone(), old_value.clone());
            store.put(
                record.key.clone(),
                ValueAndTimestamp::make(new.clone(), timestamp),
                window.start,
            )?;
            context.forward(Record {
                key: Windowed {
                    key: record.key.clone(),
                    window,
                },
                value: Change {
                    new: Some(new),
                    old: old_value,
                },
                timestamp,
                headers: record.headers.clone(),
            })?;
        }
        Ok(())
    }
}

/// `suppress(until_window_closes)` (Kafka's `KTableSuppressProcessor` with final results):
/// each window's latest update waits in a buffer ordered by window end, and leaves it, in that
/// order, once the processor's stream time minus the grace period reaches the window's end;
/// deletions are not emitted (safe to drop for final results, as in Kafka). The buffer is
/// the processor's own memory; with the runtime it becomes a store with a changelog.
pub(crate) struct SuppressFinal<K, V> {
    grace_ms: i64,
    observed_ms: i64,
    buffer: SuppressBuffer<K, V>,
}

/// Buffered updates by (window end, windowed key): Kafka's time-ordered buffer.
type SuppressBuffer<K, V> =
    std::collections::BTreeMap<(i64, Windowed<K>), Record<Windowed<K>, Change<V>>>;

impl<K: Ord, V> SuppressFinal<K, V> {
    pub(crate) fn new(grace_ms: i64) -> Self {
        SuppressFinal {
            grace_ms,
            observed_ms: i64::MIN,
            buffer: std::collections::BTreeMap::new(),
        }
    }
}

impl<K, V> Processor<Windowed<K>, Change<V>, Windowed<K>, Change<V>> for SuppressFinal<K, V>
where
    K: Ord + Clone + 'static,
    V: Clone + 'static,
{
    fn process(
        &mut self,
        record: Record<Windowed<K>, Change<V>>,
        context: &mut ProcessorContext<'_, Windowed<K>, Change<V>>,
    ) -> Result<()> {
        self.observed_ms = self.observed_ms.max(record.timestamp);
        self.buffer
            .insert((record.key.window.end, record.key.clone()), record);
        let expiry = self.observed_ms.saturating_sub(self.grace_ms);
        while let Some(entry) = self.buffer.first_entry() {
            if entry.key().0 > expiry {
                break;
            }
            let record = entry.remove();
            if record.value.new.is_some() {
                context.forward(record)?;
            }
        }
        Ok(())
    }
}

/// The aggregation of a re-grouped table (Kafka's `KTableAggregate` and `KTableReduce`): a
/// change's old value is subtracted from its group's aggregate, then its new value added; a
/// group keeps its aggregate when its last row leaves (a count of 0), as in Kafka.
pub(crate) struct TableAggregate<K, V, VA> {
    pub(crate) store: String,
    pub(crate) add: Step<K, V, VA>,
    pub(crate) subtract: Fold<K, V, VA>,
}

impl<K, V, VA> Processor<K, Change<V>, K, Change<VA>> for TableAggregate<K, V, VA>
where
    K: Ord + Clone + 'static,
    VA: Clone + 'static,
{
    fn process(
        &mut self,
        record: Record<K, Change<V>>,
        context: &mut ProcessorContext<'_, K, Change<VA>>,
    ) -> Result<()> {
        let store = context.state_store::<DslStore<K, VA>>(&self.store)?;
        let old = store.get(&record.key)?;
        let (old_agg, timestamp) = match old {
            Some(o) => (Some(o.value), o.timestamp.max(record.timestamp)),
            None => (None, record.timestamp),
        };
        let Record {
            key,
            value: change,
            headers,
            ..
        } = record;
        let mut aggregate = match (change.old, old_agg.clone()) {
            (Some(old_value), Some(a)) => Some((self.subtract)(&key, old_value, a)),
            // Nothing to subtract from, or nothing to subtract.
            (_, a) => a,
        };
        if let Some(new_value) = change.new {
            aggregate = Some((self.add)(&key, new_value, aggregate));
        }
        match &aggregate {
            Some(a) => store.put(key.clone(), ValueAndTimestamp::make(a.clone(), timestamp))?,
            None => {
                store.delete(&key)?;
            }
        }
        context.forward(Record {
            key,
            value: Change {
                new: aggregate,
                old: old_agg,
            },
            timestamp,
            headers,
        })
    }
}

/// Merges two aggregates of a key's sessions (the first may not exist yet, for `reduce`).
pub(crate) type Merge<K, VA> = Arc<dyn Fn(&K, Option<VA>, VA) -> VA + Send + Sync>;

/// A session aggregation (Kafka's `KStreamSessionWindowAggregate`): the record's session
/// `[t, t]` merges with every session of its key within the inactivity gap; if the merged
/// session ended before stream time minus the grace period the record is dropped and
/// counted, otherwise the merged sessions are removed (each forwarded as a deletion) and the
/// merged one stored and forwarded, at its end's timestamp.
pub(crate) struct SessionAggregate<K, V, VA> {
    pub(crate) store: String,
    pub(crate) windows: SessionWindows,
    pub(crate) init: Arc<dyn Fn() -> Option<VA> + Send + Sync>,
    pub(crate) add: Step<K, V, VA>,
    pub(crate) merge: Merge<K, VA>,
}

impl<K, V, VA> Processor<K, V, Windowed<K>, Change<VA>> for SessionAggregate<K, V, VA>
where
    K: Ord + Clone + 'static,
    VA: Clone + 'static,
{
    fn process(
        &mut self,
        record: Record<K, V>,
        context: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
    ) -> Result<()> {
        let close_time = context
            .current_stream_time_ms()
            .saturating_sub(self.windows.grace_ms());
        let gap = self.windows.inactivity_gap_ms();
        let t = record.timestamp;
        let store = context.state_store::<InMemorySessionStore<K, VA>>(&self.store)?;
        let merged =
            store.find_sessions(&record.key, t.saturating_sub(gap), t.saturating_add(gap))?;
        let mut window = Window { start: t, end: t };
        let mut aggregate = (self.init)();
        for (session, value) in &merged {
            aggregate = Some((self.merge)(&record.key, aggregate, value.clone()));
            window.start = window.start.min(session.window.start);
            window.end = window.end.max(session.window.end);
        }
        if window.end < close_time {
            context.record_dropped();
            return Ok(());
        }
        for (session, _) in &merged {
            store.remove(session)?;
        }
        let Record {
            key,
            value,
            headers,
            ..
        } = record;
        let new = (self.add)(&key, value, aggregate);
        let session = Windowed {
            key: key.clone(),
            window,
        };
        store.put(session.clone(), new.clone())?;
        for (old, old_value) in merged {
            let end = old.window.end;
            context.forward(Record {
                key: old,
                value: Change {
                    new: None,
                    old: Some(old_value),
                },
                timestamp: end,
                headers: headers.clone(),
            })?;
        }
        context.forward(Record {
            key: session,
            value: Change {
                new: Some(new),
                old: None,
            },
            timestamp: window.end,
            headers,
        })
    }
}

/// A predicate of `filter` and `split`.
pub(crate) type Predicate<K, V> = Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;

/// `split`: each record goes to the child of the first predicate it satisfies, else to the
/// default branch (the child after the predicates) if there is one, else nowhere (Kafka's
/// `KStreamBranch`).
pub(crate) struct Branch<K, V> {
    pub(crate) predicates: Arc<[Predicate<K, V>]>,
    pub(crate) default_branch: bool,
}

impl<K: Clone + 'static, V: Clone + 'static> Processor<K, V, K, V> for Branch<K, V> {
    fn process(
        &mut self,
        record: Record<K, V>,
        context: &mut ProcessorContext<'_, K, V>,
    ) -> Result<()> {
        let index = self
            .predicates
            .iter()
            .position(|p| p(&record.key, &record.value));
        match index {
            Some(i) => context.forward_to_index(record, i),
            None if self.default_branch => context.forward_to_index(record, self.predicates.len()),
            None => Ok(()),
        }
    }
}
