//! State stores: the [`KeyValueStore`] traits and the in-memory store.
//!
//! Owns: [`ReadOnlyKeyValueStore`] (what interactive queries and the test driver read),
//! [`KeyValueStore`] (what processors write), [`InMemoryKeyValueStore`], the window store
//! traits and [`InMemoryWindowStore`] (values per key and window start, expiring after a
//! retention period), and
//! [`ValueAndTimestamp`] (what the DSL's aggregations and table sources keep per key, as
//! Kafka's timestamped stores do, so a result's timestamp is the newest of its inputs').
//!
//! Invariants: reads hand out copies (a store's contents change only through `put`,
//! `put_if_absent` and `delete`), as Kafka's stores hand out deserialized copies; `range` and
//! `all` return snapshots in key order, so a caller may write while it walks them. Every
//! operation returns a `Result` because stores with other backing can fail; the in-memory store
//! never does. For the runtime's changelogs the key-value store can record which keys were
//! written (`track_changes`, `take_changes`) and be restored without recording (`restore`).

use std::collections::BTreeMap;
use std::ops::Bound;

use super::window::{Window, Windowed};
use crate::error::Result;

/// A value with the timestamp of the record that last updated it (Kafka's
/// `ValueAndTimestamp`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ValueAndTimestamp<V> {
    /// The value.
    pub value: V,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
}

impl<V> ValueAndTimestamp<V> {
    /// `value` at `timestamp` (Kafka's `ValueAndTimestamp.make`).
    pub fn make(value: V, timestamp: i64) -> Self {
        ValueAndTimestamp { value, timestamp }
    }
}

/// Reads of a key-value store (Kafka's `ReadOnlyKeyValueStore`).
pub trait ReadOnlyKeyValueStore<K, V> {
    /// The value of `key`, if any.
    fn get(&self, key: &K) -> Result<Option<V>>;
    /// The entries with `from <= key <= to`, in key order (both ends inclusive, as Kafka's
    /// `range`); empty when `from > to`.
    fn range(&self, from: &K, to: &K) -> Result<Vec<(K, V)>>;
    /// Every entry, in key order.
    fn all(&self) -> Result<Vec<(K, V)>>;
    /// How many entries the store holds (exact for the in-memory store).
    fn approximate_num_entries(&self) -> Result<u64>;
}

/// A key-value store that processors write (Kafka's `KeyValueStore`).
pub trait KeyValueStore<K, V>: ReadOnlyKeyValueStore<K, V> {
    /// The store's name, unique within a topology.
    fn name(&self) -> &str;
    /// Set `key` to `value`.
    fn put(&mut self, key: K, value: V) -> Result<()>;
    /// Set `key` to `value` unless it has one; the value it had, if any.
    fn put_if_absent(&mut self, key: K, value: V) -> Result<Option<V>>;
    /// Remove `key`; the value it had, if any.
    fn delete(&mut self, key: &K) -> Result<Option<V>>;
}

/// A key-value store in memory, ordered by key (Kafka's `Stores.inMemoryKeyValueStore`).
///
/// Keys are ordered by `K`'s `Ord`. Kafka orders its stores by serialized bytes; the two
/// agree for strings and non-negative big-endian numbers, not for negative numbers (whose
/// two's-complement bytes sort after the positive ones).
///
/// ```
/// use embroker::streams::{InMemoryKeyValueStore, KeyValueStore, ReadOnlyKeyValueStore};
/// let mut store = InMemoryKeyValueStore::new("counts");
/// store.put("a".to_string(), 1i64)?;
/// store.put("b".to_string(), 2)?;
/// assert_eq!(store.get(&"a".to_string())?, Some(1));
/// assert_eq!(store.all()?.len(), 2);
/// assert_eq!(store.delete(&"a".to_string())?, Some(1));
/// assert_eq!(store.approximate_num_entries()?, 1);
/// # Ok::<(), embroker::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct InMemoryKeyValueStore<K, V> {
    name: String,
    map: BTreeMap<K, V>,
    /// The keys written since the runtime last took them, with repeats, when the store has a
    /// changelog (`None`: not tracked, as in the test driver). A list, sorted and deduplicated
    /// when taken: a push per write costs less than a set insert.
    changed: Option<Vec<K>>,
}

impl<K: Ord, V> InMemoryKeyValueStore<K, V> {
    /// An empty store called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        InMemoryKeyValueStore {
            name: name.into(),
            map: BTreeMap::new(),
            changed: None,
        }
    }

    /// Record from now on which keys `put`, `put_if_absent` and `delete` change, for the
    /// runtime's changelog.
    pub(crate) fn track_changes(&mut self) {
        self.changed.get_or_insert_with(Vec::new);
    }

    /// Set or remove `key` without recording it as changed (restoration from a changelog).
    pub(crate) fn restore(&mut self, key: K, value: Option<V>) {
        match value {
            Some(v) => {
                self.map.insert(key, v);
            }
            None => {
                self.map.remove(&key);
            }
        }
    }

    fn mark(&mut self, key: &K)
    where
        K: Clone,
    {
        if let Some(changed) = &mut self.changed {
            changed.push(key.clone());
        }
    }

    /// Set `key` without recording it as changed yet: a cached store's write, whose
    /// changelog record is written when the record cache lets the key go
    /// ([`InMemoryKeyValueStore::log_change`]), as Kafka's caching store writes its changelog
    /// on flush and eviction.
    pub(crate) fn put_unlogged(&mut self, key: K, value: V) {
        self.map.insert(key, value);
    }

    /// `key`'s value, writable in place and not recorded as changed (the caller logs it with
    /// [`InMemoryKeyValueStore::log_change`]): an aggregation's read-modify-write in one
    /// search of the map.
    pub(crate) fn get_mut_unlogged(&mut self, key: &K) -> Option<&mut V> {
        self.map.get_mut(key)
    }

    /// Record `key` as changed: the next drain writes its value now (or a tombstone) to the
    /// changelog.
    pub(crate) fn log_change(&mut self, key: &K)
    where
        K: Clone,
    {
        self.mark(key);
    }
}

impl<K: Ord + Clone, V: Clone> InMemoryKeyValueStore<K, V> {
    /// The keys changed since the last call, each with its value now (`None`: deleted), in
    /// key order.
    pub(crate) fn take_changes(&mut self) -> Vec<(K, Option<V>)> {
        let Some(changed) = &mut self.changed else {
            return Vec::new();
        };
        let mut keys = std::mem::take(changed);
        keys.sort_unstable();
        keys.dedup();
        keys.into_iter()
            .map(|k| {
                let v = self.map.get(&k).cloned();
                (k, v)
            })
            .collect()
    }
}

impl<K: Ord + Clone, V: Clone> ReadOnlyKeyValueStore<K, V> for InMemoryKeyValueStore<K, V> {
    fn get(&self, key: &K) -> Result<Option<V>> {
        Ok(self.map.get(key).cloned())
    }

    fn range(&self, from: &K, to: &K) -> Result<Vec<(K, V)>> {
        // BTreeMap::range panics on from > to; Kafka answers an empty range.
        if from > to {
            return Ok(Vec::new());
        }
        Ok(self
            .map
            .range((Bound::Included(from), Bound::Included(to)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn all(&self) -> Result<Vec<(K, V)>> {
        Ok(self
            .map
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn approximate_num_entries(&self) -> Result<u64> {
        Ok(self.map.len() as u64)
    }
}

impl<K: Ord + Clone, V: Clone> KeyValueStore<K, V> for InMemoryKeyValueStore<K, V> {
    fn name(&self) -> &str {
        &self.name
    }

    fn put(&mut self, key: K, value: V) -> Result<()> {
        self.mark(&key);
        self.map.insert(key, value);
        Ok(())
    }

    fn put_if_absent(&mut self, key: K, value: V) -> Result<Option<V>> {
        match self.map.get(&key) {
            Some(old) => Ok(Some(old.clone())),
            None => {
                self.mark(&key);
                self.map.insert(key, value);
                Ok(None)
            }
        }
    }

    fn delete(&mut self, key: &K) -> Result<Option<V>> {
        let old = self.map.remove(key);
        if old.is_some() {
            self.mark(key);
        }
        Ok(old)
    }
}

/// Reads of a window store (Kafka's `ReadOnlyWindowStore`).
pub trait ReadOnlyWindowStore<K, V> {
    /// The value of `key` in the window starting at `window_start`, if any (and not expired).
    fn fetch(&self, key: &K, window_start: i64) -> Result<Option<V>>;
    /// The values of `key` in windows starting in `[time_from, time_to]`, by start.
    fn fetch_range(&self, key: &K, time_from: i64, time_to: i64) -> Result<Vec<(i64, V)>>;
    /// Every live entry as (key, window, value), by window start, then key.
    fn all(&self) -> Result<Vec<(Windowed<K>, V)>>;
}

/// A window store that processors write (Kafka's `WindowStore`).
pub trait WindowStore<K, V>: ReadOnlyWindowStore<K, V> {
    /// The store's name, unique within a topology.
    fn name(&self) -> &str;
    /// Set `key`'s value in the window starting at `window_start`; a window already past the
    /// retention period is not stored (Kafka: "Skipping record for expired segment").
    fn put(&mut self, key: K, value: V, window_start: i64) -> Result<()>;
}

/// A window store in memory (Kafka's `Stores.inMemoryWindowStore`): values per window start,
/// then key. As Kafka's, it tracks the largest window start put ("observed stream time") and
/// drops windows that start `retention` or more before it.
#[derive(Clone, Debug)]
pub struct InMemoryWindowStore<K, V> {
    name: String,
    retention_ms: i64,
    window_size_ms: i64,
    observed_ms: i64,
    segments: BTreeMap<i64, BTreeMap<K, V>>,
    /// The (window start, key) pairs written since the runtime last took them, with repeats,
    /// when the store has a changelog (`None`: not tracked).
    changed: Option<Vec<(i64, K)>>,
}

impl<K: Ord, V> InMemoryWindowStore<K, V> {
    /// An empty store called `name`, keeping windows of `window_size_ms` for `retention_ms`.
    pub fn new(name: impl Into<String>, retention_ms: i64, window_size_ms: i64) -> Self {
        InMemoryWindowStore {
            name: name.into(),
            retention_ms,
            window_size_ms,
            observed_ms: i64::MIN,
            segments: BTreeMap::new(),
            changed: None,
        }
    }

    fn expired(&self, window_start: i64) -> bool {
        window_start <= self.observed_ms.saturating_sub(self.retention_ms)
    }

    /// Record from now on which windows `put` writes, for the runtime's changelog.
    pub(crate) fn track_changes(&mut self) {
        self.changed.get_or_insert_with(Vec::new);
    }

    /// Store `key`'s value in the window at `window_start` as `put` does (expiring by the
    /// largest start seen), without recording it as a change (restoration).
    pub(crate) fn restore(&mut self, key: K, window_start: i64, value: V) {
        self.put_untracked(key, value, window_start);
    }

    fn put_untracked(&mut self, key: K, value: V, window_start: i64) {
        self.observed_ms = self.observed_ms.max(window_start);
        // Kafka's removeExpiredSegments: windows starting before this are gone.
        let min_live = self
            .observed_ms
            .saturating_sub(self.retention_ms)
            .saturating_add(1)
            .max(0);
        self.segments = self.segments.split_off(&min_live);
        if !self.expired(window_start) {
            self.segments
                .entry(window_start)
                .or_default()
                .insert(key, value);
        }
    }

    fn window(&self, start: i64) -> Window {
        Window {
            start,
            end: start.saturating_add(self.window_size_ms),
        }
    }
}

impl<K: Ord + Clone, V: Clone> ReadOnlyWindowStore<K, V> for InMemoryWindowStore<K, V> {
    fn fetch(&self, key: &K, window_start: i64) -> Result<Option<V>> {
        if self.expired(window_start) {
            return Ok(None);
        }
        Ok(self
            .segments
            .get(&window_start)
            .and_then(|m| m.get(key))
            .cloned())
    }

    fn fetch_range(&self, key: &K, time_from: i64, time_to: i64) -> Result<Vec<(i64, V)>> {
        if time_from > time_to {
            return Ok(Vec::new());
        }
        Ok(self
            .segments
            .range(time_from..=time_to)
            .filter(|(start, _)| !self.expired(**start))
            .filter_map(|(start, m)| m.get(key).map(|v| (*start, v.clone())))
            .collect())
    }

    fn all(&self) -> Result<Vec<(Windowed<K>, V)>> {
        Ok(self
            .segments
            .iter()
            .filter(|(start, _)| !self.expired(**start))
            .flat_map(|(start, m)| {
                m.iter().map(move |(k, v)| {
                    (
                        Windowed {
                            key: k.clone(),
                            window: self.window(*start),
                        },
                        v.clone(),
                    )
                })
            })
            .collect())
    }
}

impl<K: Ord + Clone, V: Clone> WindowStore<K, V> for InMemoryWindowStore<K, V> {
    fn name(&self) -> &str {
        &self.name
    }

    fn put(&mut self, key: K, value: V, window_start: i64) -> Result<()> {
        if let Some(changed) = &mut self.changed {
            changed.push((window_start, key.clone()));
        }
        self.put_untracked(key, value, window_start);
        Ok(())
    }
}

impl<K: Ord + Clone, V: Clone> InMemoryWindowStore<K, V> {
    /// The windows written since the last call, each as (key, window start, its value now);
    /// a window that expired meanwhile is left out (its changelog record, written earlier,
    /// expires on restoration the same way).
    pub(crate) fn take_changes(&mut self) -> Vec<(K, i64, V)> {
        let Some(changed) = &mut self.changed else {
            return Vec::new();
        };
        let mut keys = std::mem::take(changed);
        keys.sort_unstable();
        keys.dedup();
        keys.into_iter()
            .filter_map(|(start, k)| {
                let v = self.segments.get(&start).and_then(|m| m.get(&k)).cloned()?;
                Some((k, start, v))
            })
            .collect()
    }
}

/// Reads of a session store (Kafka's `ReadOnlySessionStore`).
pub trait ReadOnlySessionStore<K, V> {
    /// Every live session of `key`, by start.
    fn fetch(&self, key: &K) -> Result<Vec<(Windowed<K>, V)>>;
    /// The value of `key`'s session `[start, end]`, if it exists (Kafka's `fetchSession`).
    fn fetch_session(&self, key: &K, start: i64, end: i64) -> Result<Option<V>>;
}

/// A session store that processors write (Kafka's `SessionStore`).
pub trait SessionStore<K, V>: ReadOnlySessionStore<K, V> {
    /// The store's name, unique within a topology.
    fn name(&self) -> &str;
    /// `key`'s sessions that end at or after `earliest_end` and start at or before
    /// `latest_start` (Kafka's `findSessions`): those a record can merge with.
    fn find_sessions(
        &self,
        key: &K,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<(Windowed<K>, V)>>;
    /// Store a session; one that ended a retention period or more before the latest end seen
    /// is not stored.
    fn put(&mut self, session: Windowed<K>, value: V) -> Result<()>;
    /// Remove a session.
    fn remove(&mut self, session: &Windowed<K>) -> Result<()>;
}

/// A session store in memory (Kafka's `Stores.inMemorySessionStore`): sessions per key,
/// expiring `retention` after the latest session end it has been given.
#[derive(Clone, Debug)]
pub struct InMemorySessionStore<K, V> {
    name: String,
    retention_ms: i64,
    observed_ms: i64,
    sessions: BTreeMap<K, BTreeMap<(i64, i64), V>>,
    /// The (key, start, end) sessions written or removed since the runtime last took them,
    /// with repeats, when the store has a changelog (`None`: not tracked).
    changed: Option<Vec<(K, i64, i64)>>,
}

impl<K: Ord, V> InMemorySessionStore<K, V> {
    /// An empty store called `name`, keeping sessions for `retention_ms` after their end.
    pub fn new(name: impl Into<String>, retention_ms: i64) -> Self {
        InMemorySessionStore {
            name: name.into(),
            retention_ms,
            observed_ms: i64::MIN,
            sessions: BTreeMap::new(),
            changed: None,
        }
    }

    /// Record from now on which sessions `put` and `remove` change, for the runtime's
    /// changelog.
    pub(crate) fn track_changes(&mut self) {
        self.changed.get_or_insert_with(Vec::new);
    }

    fn put_untracked(&mut self, key: K, start: i64, end: i64, value: V) {
        self.observed_ms = self.observed_ms.max(end);
        if !self.expired(end) {
            self.sessions
                .entry(key)
                .or_default()
                .insert((start, end), value);
        }
        // Drop what expired (Kafka's removeExpiredSegments), and keys left with nothing.
        let floor = self.observed_ms.saturating_sub(self.retention_ms);
        for sessions in self.sessions.values_mut() {
            sessions.retain(|(_, end), _| *end > floor);
        }
        self.sessions.retain(|_, m| !m.is_empty());
    }

    fn remove_untracked(&mut self, key: &K, start: i64, end: i64) {
        if let Some(m) = self.sessions.get_mut(key) {
            m.remove(&(start, end));
            if m.is_empty() {
                self.sessions.remove(key);
            }
        }
    }

    /// Store or remove (`None`) a session without recording it as a change (restoration).
    pub(crate) fn restore(&mut self, key: K, start: i64, end: i64, value: Option<V>) {
        match value {
            Some(v) => self.put_untracked(key, start, end, v),
            None => self.remove_untracked(&key, start, end),
        }
    }

    fn expired(&self, end: i64) -> bool {
        end <= self.observed_ms.saturating_sub(self.retention_ms)
    }

    fn live<'a>(&'a self, key: &'a K) -> impl Iterator<Item = (&'a (i64, i64), &'a V)> + 'a {
        self.sessions
            .get(key)
            .into_iter()
            .flat_map(|m| m.iter())
            .filter(|((_, end), _)| !self.expired(*end))
    }
}

fn session<K: Clone>(key: &K, (start, end): (i64, i64)) -> Windowed<K> {
    Windowed {
        key: key.clone(),
        window: Window { start, end },
    }
}

impl<K: Ord + Clone, V: Clone> ReadOnlySessionStore<K, V> for InMemorySessionStore<K, V> {
    fn fetch(&self, key: &K) -> Result<Vec<(Windowed<K>, V)>> {
        Ok(self
            .live(key)
            .map(|(w, v)| (session(key, *w), v.clone()))
            .collect())
    }

    fn fetch_session(&self, key: &K, start: i64, end: i64) -> Result<Option<V>> {
        Ok(self
            .live(key)
            .find(|(w, _)| **w == (start, end))
            .map(|(_, v)| v.clone()))
    }
}

impl<K: Ord + Clone, V: Clone> SessionStore<K, V> for InMemorySessionStore<K, V> {
    fn name(&self) -> &str {
        &self.name
    }

    fn find_sessions(
        &self,
        key: &K,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<(Windowed<K>, V)>> {
        Ok(self
            .live(key)
            .filter(|((start, end), _)| *end >= earliest_end && *start <= latest_start)
            .map(|(w, v)| (session(key, *w), v.clone()))
            .collect())
    }

    fn put(&mut self, session: Windowed<K>, value: V) -> Result<()> {
        let Windowed { key, window } = session;
        if let Some(changed) = &mut self.changed {
            changed.push((key.clone(), window.start, window.end));
        }
        self.put_untracked(key, window.start, window.end, value);
        Ok(())
    }

    fn remove(&mut self, session: &Windowed<K>) -> Result<()> {
        if let Some(changed) = &mut self.changed {
            changed.push((
                session.key.clone(),
                session.window.start,
                session.window.end,
            ));
        }
        self.remove_untracked(&session.key, session.window.start, session.window.end);
        Ok(())
    }
}

impl<K: Ord + Clone, V: Clone> InMemorySessionStore<K, V> {
    /// The sessions changed since the last call, each as (key, start, end, its value now:
    /// `None` when removed or expired).
    pub(crate) fn take_changes(&mut self) -> Vec<(K, i64, i64, Option<V>)> {
        let Some(changed) = &mut self.changed else {
            return Vec::new();
        };
        let mut keys = std::mem::take(changed);
        keys.sort_unstable();
        keys.dedup();
        keys.into_iter()
            .map(|(k, start, end)| {
                let v = self
                    .sessions
                    .get(&k)
                    .and_then(|m| m.get(&(start, end)))
                    .cloned();
                (k, start, end, v)
            })
            .collect()
    }

    /// Every live session as (key, start, end, value), by key then window.
    pub(crate) fn entries(&self) -> Vec<(K, i64, i64, V)> {
        self.sessions
            .iter()
            .flat_map(|(k, m)| {
                m.iter()
                    .filter(|((_, end), _)| !self.expired(*end))
                    .map(move |((start, end), v)| (k.clone(), *start, *end, v.clone()))
            })
            .collect()
    }
}

/// A timestamped window store's values without their timestamps.
pub(crate) struct WindowsWithoutTimestamps<'a, K, V>(
    pub(crate) &'a InMemoryWindowStore<K, ValueAndTimestamp<V>>,
);

impl<K: Ord + Clone, V: Clone> ReadOnlyWindowStore<K, V> for WindowsWithoutTimestamps<'_, K, V> {
    fn fetch(&self, key: &K, window_start: i64) -> Result<Option<V>> {
        Ok(self.0.fetch(key, window_start)?.map(|v| v.value))
    }

    fn fetch_range(&self, key: &K, time_from: i64, time_to: i64) -> Result<Vec<(i64, V)>> {
        Ok(strip(self.0.fetch_range(key, time_from, time_to)?))
    }

    fn all(&self) -> Result<Vec<(Windowed<K>, V)>> {
        Ok(strip(ReadOnlyWindowStore::all(self.0)?))
    }
}

/// The values of a timestamped store without their timestamps: what Kafka's
/// `getKeyValueStore` shows of a DSL store.
pub(crate) struct WithoutTimestamps<'a, K, V>(
    pub(crate) &'a InMemoryKeyValueStore<K, ValueAndTimestamp<V>>,
);

impl<K: Ord + Clone, V: Clone> ReadOnlyKeyValueStore<K, V> for WithoutTimestamps<'_, K, V> {
    fn get(&self, key: &K) -> Result<Option<V>> {
        Ok(self.0.get(key)?.map(|v| v.value))
    }

    fn range(&self, from: &K, to: &K) -> Result<Vec<(K, V)>> {
        Ok(strip(self.0.range(from, to)?))
    }

    fn all(&self) -> Result<Vec<(K, V)>> {
        Ok(strip(self.0.all()?))
    }

    fn approximate_num_entries(&self) -> Result<u64> {
        self.0.approximate_num_entries()
    }
}

fn strip<K, V>(entries: Vec<(K, ValueAndTimestamp<V>)>) -> Vec<(K, V)> {
    entries.into_iter().map(|(k, v)| (k, v.value)).collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn range_is_inclusive_and_empty_when_reversed() {
        let mut s = InMemoryKeyValueStore::new("s");
        for k in 0..10u32 {
            s.put(k, k * 10).unwrap();
        }
        let r: Vec<u32> = s.range(&3, &5).unwrap().into_iter().map(|e| e.0).collect();
        assert_eq!(r, vec![3, 4, 5]);
        assert!(s.range(&5, &3).unwrap().is_empty());
        assert_eq!(s.put_if_absent(3, 0).unwrap(), Some(30));
        assert_eq!(s.put_if_absent(11, 110).unwrap(), None);
        assert_eq!(s.get(&11).unwrap(), Some(110));
        assert_eq!(s.name(), "s");
    }

    #[test]
    fn timestamps_are_hidden_by_the_view() {
        let mut s = InMemoryKeyValueStore::new("s");
        s.put("k", ValueAndTimestamp::make(5i64, 100)).unwrap();
        let view = WithoutTimestamps(&s);
        assert_eq!(view.get(&"k").unwrap(), Some(5));
        assert_eq!(view.all().unwrap(), vec![("k", 5)]);
        assert_eq!(view.range(&"a", &"z").unwrap(), vec![("k", 5)]);
        assert_eq!(view.approximate_num_entries().unwrap(), 1);
    }

    #[test]
    fn windows_expire_after_the_retention_period() {
        // Kafka's in-memory window store: retention 100, windows of 10.
        let mut w = InMemoryWindowStore::new("w", 100, 10);
        w.put("a", 1, 0).unwrap();
        w.put("a", 2, 50).unwrap();
        w.put("b", 3, 50).unwrap();
        assert_eq!(w.fetch(&"a", 0).unwrap(), Some(1));
        assert_eq!(w.fetch_range(&"a", 0, 60).unwrap(), vec![(0, 1), (50, 2)]);
        assert_eq!(w.fetch_range(&"a", 60, 0).unwrap(), vec![]);
        w.put("a", 4, 100).unwrap(); // observed 100: window 0 expired (0 <= 100 - 100)
        assert_eq!(w.fetch(&"a", 0).unwrap(), None);
        w.put("a", 9, 0).unwrap(); // too old to store
        assert_eq!(w.fetch(&"a", 0).unwrap(), None);
        let all = ReadOnlyWindowStore::all(&w).unwrap();
        let got: Vec<(&str, i64, i64, i32)> = all
            .iter()
            .map(|(k, v)| (k.key, k.window.start, k.window.end, *v))
            .collect();
        assert_eq!(
            got,
            vec![("a", 50, 60, 2), ("b", 50, 60, 3), ("a", 100, 110, 4)]
        );
        assert_eq!(WindowStore::name(&w), "w");
    }

    #[test]
    fn sessions_are_found_by_overlap_and_expire_by_their_end() {
        let mut st = InMemorySessionStore::new("s", 100);
        let w = |start, end| Windowed {
            key: "k",
            window: Window { start, end },
        };
        st.put(w(0, 10), 1).unwrap();
        st.put(w(50, 60), 2).unwrap();
        let found = |st: &InMemorySessionStore<&str, i32>, from, to| -> Vec<(i64, i64)> {
            st.find_sessions(&"k", from, to)
                .unwrap()
                .into_iter()
                .map(|(w, _)| (w.window.start, w.window.end))
                .collect()
        };
        assert_eq!(found(&st, 5, 55), vec![(0, 10), (50, 60)]);
        assert_eq!(found(&st, 11, 49), Vec::<(i64, i64)>::new());
        assert_eq!(st.fetch_session(&"k", 50, 60).unwrap(), Some(2));
        st.remove(&w(50, 60)).unwrap();
        assert_eq!(st.fetch(&"k").unwrap().len(), 1);
        st.put(w(110, 110), 3).unwrap(); // observed 110: [0, 10] expired (10 <= 110 - 100)
        assert_eq!(st.fetch_session(&"k", 0, 10).unwrap(), None);
        st.put(w(0, 5), 9).unwrap(); // too old to store
        assert_eq!(st.fetch(&"k").unwrap().len(), 1);
        assert_eq!(SessionStore::name(&st), "s");
    }

    #[test]
    fn tracked_changes_are_each_key_once_with_its_latest_value() {
        let mut s = InMemoryKeyValueStore::new("s");
        s.put(1, 1).unwrap();
        assert!(s.take_changes().is_empty(), "not tracked yet");
        s.track_changes();
        s.put(2, 2).unwrap();
        s.put(2, 3).unwrap();
        s.put(4, 4).unwrap();
        s.delete(&1).unwrap();
        s.delete(&9).unwrap();
        s.put_if_absent(4, 0).unwrap();
        assert_eq!(
            s.take_changes(),
            vec![(1, None), (2, Some(3)), (4, Some(4))]
        );
        assert!(s.take_changes().is_empty());
        s.restore(5, Some(5));
        s.restore(2, None);
        assert!(s.take_changes().is_empty(), "restoration is not a change");
        assert_eq!(s.all().unwrap(), vec![(4, 4), (5, 5)]);
    }

    proptest! {
        #[test]
        fn the_store_is_a_map(ops in proptest::collection::vec((0u8..3, 0u8..16, any::<i32>()), 0..200)) {
            let mut s = InMemoryKeyValueStore::new("s");
            let mut model = std::collections::BTreeMap::new();
            for (op, k, v) in ops {
                match op {
                    0 => { s.put(k, v).unwrap(); model.insert(k, v); }
                    1 => { prop_assert_eq!(s.delete(&k).unwrap(), model.remove(&k)); }
                    _ => {
                        let had = model.get(&k).copied();
                        prop_assert_eq!(s.put_if_absent(k, v).unwrap(), had);
                        model.entry(k).or_insert(v);
                    }
                }
            }
            let all: Vec<(u8, i32)> = model.into_iter().collect();
            prop_assert_eq!(s.all().unwrap(), all);
        }
    }
}
