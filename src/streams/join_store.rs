//! The stores of a stream-stream join: [`JoinWindowStore`], each side's records kept for
//! the join window plus grace (Kafka's in-memory window store with `retainDuplicates`), and
//! [`OuterJoinStore`], the left/outer join's shared buffer of records not joined yet (Kafka's
//! `KSTREAM-OUTERSHARED` store of `TimestampedKeyAndJoinSide` to `LeftOrRightValue`, since
//! KIP-633/KAFKA-10847).
//!
//! Invariants: a join window store keeps every record put, duplicates included, in arrival
//! order per (key, timestamp), and drops what is more than `retention` older than the
//! largest timestamp put (its observed stream time), as Kafka's window store drops expired
//! segments;
//! the outer store orders its entries by (timestamp, side with right before left, key), the
//! order of Kafka's serialized `TimestampedKeyAndJoinSide` (timestamp, then a byte 0 for
//! right and 1 for left, then the key), so records leave it in that order. Both stores record
//! their changes for the runtime's changelog only once tracking is enabled, and a restore
//! never records one.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::Result;

/// One side's records of a stream-stream join, per key and timestamp, for `retention_ms`
/// after the largest timestamp put.
#[derive(Clone, Debug)]
pub(crate) struct JoinWindowStore<K, V> {
    retention_ms: i64,
    observed_ms: i64,
    records: BTreeMap<(K, i64), Vec<V>>,
    /// The same entries by time, to expire the oldest without a scan.
    by_time: BTreeSet<(i64, K)>,
    /// The records put since the last `take_changes`, in order, when the store has a
    /// changelog (`None`: not tracked).
    changes: Option<Vec<(K, i64, V)>>,
}

impl<K: Ord + Clone, V: Clone> JoinWindowStore<K, V> {
    /// An empty store keeping records for `retention_ms` (the join window's size plus grace).
    pub(crate) fn new(retention_ms: i64) -> Self {
        JoinWindowStore {
            retention_ms,
            observed_ms: i64::MIN,
            records: BTreeMap::new(),
            by_time: BTreeSet::new(),
            changes: None,
        }
    }

    /// Record from now on which records `put` keeps, for the runtime's changelog.
    pub(crate) fn track_changes(&mut self) {
        self.changes.get_or_insert_with(Vec::new);
    }

    /// The records kept since the last call (each once, in the order put), still live.
    pub(crate) fn take_changes(&mut self) -> Vec<(K, i64, V)> {
        let min_live = self.min_live();
        match &mut self.changes {
            Some(changes) => std::mem::take(changes)
                .into_iter()
                .filter(|(_, t, _)| *t >= min_live)
                .collect(),
            None => Vec::new(),
        }
    }

    /// Keep a record read from the changelog, without recording it as a change; expiry is
    /// applied as for `put`.
    pub(crate) fn restore(&mut self, key: K, value: V, timestamp: i64) {
        let changes = self.changes.take();
        // `put` never fails.
        let _ = self.put(key, value, timestamp);
        self.changes = changes;
    }

    /// Every live record, by key, timestamp, then arrival.
    pub(crate) fn entries(&self) -> Vec<(K, i64, V)> {
        let min_live = self.min_live();
        self.records
            .iter()
            .filter(|((_, t), _)| *t >= min_live)
            .flat_map(|((k, t), values)| values.iter().map(move |v| (k.clone(), *t, v.clone())))
            .collect()
    }

    /// The oldest timestamp still kept: `retention` before the observed time, inclusive, so
    /// a record is kept at least for the retention (Kafka's default RocksDB window store keeps
    /// whole segments, at least as long; its in-memory one drops at exactly the retention,
    /// which with a window and a grace of 0 would keep nothing to join).
    fn min_live(&self) -> i64 {
        self.observed_ms.saturating_sub(self.retention_ms)
    }

    /// Keep `value` of `key` at `timestamp`, unless it is already expired (Kafka: "Skipping
    /// record for expired segment"); expire what the new observed time makes too old.
    pub(crate) fn put(&mut self, key: K, value: V, timestamp: i64) -> Result<()> {
        self.observed_ms = self.observed_ms.max(timestamp);
        let min_live = self.min_live();
        if timestamp < min_live {
            return Ok(());
        }
        self.by_time.insert((timestamp, key.clone()));
        if let Some(changes) = &mut self.changes {
            changes.push((key.clone(), timestamp, value.clone()));
        }
        self.records
            .entry((key, timestamp))
            .or_default()
            .push(value);
        while let Some((t, k)) = self.by_time.first().cloned() {
            if t >= min_live {
                break;
            }
            self.by_time.pop_first();
            self.records.remove(&(k, t));
        }
        Ok(())
    }

    /// The values of `key` with timestamps in `[from, to]` (and not expired), by timestamp,
    /// then arrival.
    pub(crate) fn fetch(&self, key: &K, from: i64, to: i64) -> Result<Vec<(i64, V)>> {
        let from = from.max(self.min_live());
        if from > to {
            return Ok(Vec::new());
        }
        Ok(self
            .records
            .range((key.clone(), from)..=(key.clone(), to))
            .flat_map(|((_, t), values)| values.iter().map(move |v| (*t, v.clone())))
            .collect())
    }
}

/// Which input of a join a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum JoinSide {
    /// The other stream (`join`'s argument); sorts first, as Kafka's byte 0.
    Right,
    /// The stream `join` was called on; Kafka's byte 1.
    Left,
}

/// A record not joined yet: a left value or a right value (Kafka's `LeftOrRightValue`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum LeftOrRight<VL, VR> {
    /// A record of the left stream.
    Left(VL),
    /// A record of the right stream.
    Right(VR),
}

/// The left/outer join's records waiting for a partner or for their window to close, by
/// (timestamp, side, key), several per entry.
#[derive(Clone, Debug)]
pub(crate) struct OuterJoinStore<K, VL, VR> {
    entries: BTreeMap<(i64, JoinSide, K), Vec<LeftOrRight<VL, VR>>>,
    /// The entries changed since the last `take_changes`, with repeats, when the store has a
    /// changelog (`None`: not tracked).
    changed: Option<Vec<(i64, JoinSide, K)>>,
}

/// An entry of the outer store as its changelog holds it: its key and its records (`None`:
/// the entry is gone).
pub(crate) type OuterEntry<K, VL, VR> = ((i64, JoinSide, K), Option<Vec<LeftOrRight<VL, VR>>>);

impl<K: Ord + Clone, VL: Clone, VR: Clone> OuterJoinStore<K, VL, VR> {
    /// An empty store.
    pub(crate) fn new() -> Self {
        OuterJoinStore {
            entries: BTreeMap::new(),
            changed: None,
        }
    }

    /// Record from now on which entries change, for the runtime's changelog.
    pub(crate) fn track_changes(&mut self) {
        self.changed.get_or_insert_with(Vec::new);
    }

    fn mark(&mut self, key: &(i64, JoinSide, K)) {
        if let Some(changed) = &mut self.changed {
            changed.push(key.clone());
        }
    }

    /// Each entry changed since the last call, once, with its records now (`None`: gone).
    pub(crate) fn take_changes(&mut self) -> Vec<OuterEntry<K, VL, VR>> {
        let Some(changed) = &mut self.changed else {
            return Vec::new();
        };
        let mut keys = std::mem::take(changed);
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .map(|k| {
                let values = self.entries.get(&k).cloned();
                (k, values)
            })
            .collect()
    }

    /// Set or remove an entry read from the changelog, without recording it as a change.
    pub(crate) fn restore(
        &mut self,
        key: (i64, JoinSide, K),
        values: Option<Vec<LeftOrRight<VL, VR>>>,
    ) {
        match values {
            Some(values) => {
                self.entries.insert(key, values);
            }
            None => {
                self.entries.remove(&key);
            }
        }
    }

    /// Every entry.
    pub(crate) fn entries(&self) -> Vec<OuterEntry<K, VL, VR>> {
        self.entries
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect()
    }

    /// Add a record not joined yet.
    pub(crate) fn put(
        &mut self,
        key: K,
        side: JoinSide,
        timestamp: i64,
        value: LeftOrRight<VL, VR>,
    ) {
        let key = (timestamp, side, key);
        self.mark(&key);
        self.entries.entry(key).or_default().push(value);
    }

    /// Forget every record of `key` on `side` at `timestamp`: one of them just joined (Kafka
    /// removes the whole list, as its `putIfAbsent(key, null)` on a list store does).
    pub(crate) fn remove(&mut self, key: K, side: JoinSide, timestamp: i64) {
        let key = (timestamp, side, key);
        if self.entries.remove(&key).is_some() {
            self.mark(&key);
        }
    }

    /// Take out, oldest first, the entries whose window has closed, walking in store order
    /// as Kafka's `emitNonJoinedOuterRecords` does: an entry for which `open(timestamp, side)`
    /// holds is kept and marks its side as open; the walk stops once both sides are. Returns
    /// the entries taken and the timestamp of the last entry visited (Kafka's new `minTime`;
    /// `i64::MAX` if the store is empty).
    #[allow(clippy::type_complexity)]
    pub(crate) fn take_closed(
        &mut self,
        open: impl Fn(i64, JoinSide) -> bool,
    ) -> (Vec<((i64, JoinSide, K), Vec<LeftOrRight<VL, VR>>)>, i64) {
        let mut last_visited = i64::MAX;
        let (mut left_open, mut right_open) = (false, false);
        let mut closed = Vec::new();
        for (ts, side, key) in self.entries.keys() {
            last_visited = *ts;
            if left_open && right_open {
                break;
            }
            if open(*ts, *side) {
                match side {
                    JoinSide::Left => left_open = true,
                    JoinSide::Right => right_open = true,
                }
                continue;
            }
            closed.push((*ts, *side, key.clone()));
        }
        if let Some(changed) = &mut self.changed {
            changed.extend(closed.iter().cloned());
        }
        let taken = closed
            .into_iter()
            .filter_map(|k| self.entries.remove_entry(&k))
            .collect();
        (taken, last_visited)
    }
}

impl<K: Ord + Clone, VL: Clone, VR: Clone> Default for OuterJoinStore<K, VL, VR> {
    fn default() -> Self {
        OuterJoinStore::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_window_store_keeps_duplicates_and_expires_by_retention() {
        let mut s = JoinWindowStore::new(10);
        s.put("k", 1, 5).unwrap();
        s.put("k", 2, 5).unwrap();
        s.put("j", 3, 6).unwrap();
        assert_eq!(s.fetch(&"k", 0, 10).unwrap(), [(5, 1), (5, 2)]);
        assert_eq!(s.fetch(&"k", 6, 10).unwrap(), []);
        // Observed time 15: records before 5 would be gone; at 5 they stay.
        s.put("k", 4, 15).unwrap();
        assert_eq!(s.fetch(&"k", 0, 20).unwrap(), [(5, 1), (5, 2), (15, 4)]);
        // Observed time 16: the records at 5 are gone.
        s.put("k", 5, 16).unwrap();
        assert_eq!(s.fetch(&"k", 0, 20).unwrap(), [(15, 4), (16, 5)]);
        assert_eq!(s.fetch(&"j", 0, 20).unwrap(), [(6, 3)]);
        // Too old to be kept at all.
        s.put("k", 6, 5).unwrap();
        assert_eq!(s.fetch(&"k", 0, 20).unwrap(), [(15, 4), (16, 5)]);
        // A retention of 0 keeps the records of the latest timestamp.
        let mut z = JoinWindowStore::new(0);
        z.put("k", 1, 7).unwrap();
        assert_eq!(z.fetch(&"k", 7, 7).unwrap(), [(7, 1)]);
    }

    #[test]
    fn the_outer_store_orders_by_time_then_right_before_left_then_key() {
        let mut s: OuterJoinStore<&str, i32, i32> = OuterJoinStore::new();
        s.put("b", JoinSide::Left, 2, LeftOrRight::Left(1));
        s.put("a", JoinSide::Left, 2, LeftOrRight::Left(2));
        s.put("z", JoinSide::Right, 2, LeftOrRight::Right(3));
        s.put("a", JoinSide::Left, 1, LeftOrRight::Left(4));
        s.put("a", JoinSide::Left, 1, LeftOrRight::Left(5));
        // Every entry closed: taken in store order.
        let (taken, last) = s.clone().take_closed(|_, _| false);
        let keys: Vec<_> = taken.into_iter().map(|(k, v)| (k, v.len())).collect();
        assert_eq!(
            keys,
            [
                ((1, JoinSide::Left, "a"), 2),
                ((2, JoinSide::Right, "z"), 1),
                ((2, JoinSide::Left, "a"), 1),
                ((2, JoinSide::Left, "b"), 1),
            ]
        );
        assert_eq!(last, 2);
        // Left entries at 2 still open: the left one at 1 and the right one go; the walk
        // stops at the first entry after both sides were seen open.
        s.put("y", JoinSide::Right, 3, LeftOrRight::Right(6));
        let (taken, last) =
            s.take_closed(|ts, side| ts >= 2 && (side == JoinSide::Left || ts >= 3));
        let keys: Vec<_> = taken.into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, [(1, JoinSide::Left, "a"), (2, JoinSide::Right, "z")]);
        assert_eq!(last, 3);
        s.remove("y", JoinSide::Right, 3);
        let (taken, _) = s.take_closed(|_, _| false);
        assert_eq!(taken.len(), 2);
        assert_eq!(s.take_closed(|_, _| false).1, i64::MAX);
    }
}
