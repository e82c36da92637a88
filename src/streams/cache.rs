//! The record cache of a key-value aggregation (Kafka's `ThreadCache`/`NamedCache` in front
//! of a `CachingKeyValueStore`, `statestore.cache.max.bytes`).
//!
//! Owns: which keys of one store were updated since the last flush, each with the value the
//! key had downstream at that flush (the `old` of the change to forward), the headers of the
//! last record that updated it, and the order of last update (least recently updated first),
//! bounded by an estimated byte budget.
//!
//! Invariants: the store itself is written through on every update (reads by other
//! processors, interactive queries and the changelog see every update, as Kafka's caching
//! store's reads do); only forwarding is deferred. A key is in the cache at most once; a
//! flush hands out every entry in least-recently-updated order and leaves the cache empty;
//! an update past the budget evicts (hands back) the least recently updated entries first,
//! so the cache never holds more than the budget allows (with a budget under one entry,
//! nothing is held: caching is off, as Kafka's with 0 bytes).

use std::collections::BTreeMap;

use crate::types::Header;

/// Bytes an entry is counted as besides the in-memory sizes of its key and value: the two
/// map nodes and the order number (Kafka counts serialized bytes plus a fixed overhead; the
/// heap contents of a key or value, a `String`'s bytes, are not seen here).
const ENTRY_OVERHEAD: usize = 64;

/// One key's pending change: what downstream last saw, and the headers to forward with it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dirty<V> {
    /// The value forwarded at the last flush (`None`: never, or deleted).
    pub(crate) old: Option<V>,
    /// The headers of the last record that updated the key.
    pub(crate) headers: Vec<Header>,
    seq: u64,
}

/// The dirty keys of one store, least recently updated first.
#[derive(Debug)]
pub(crate) struct RecordCache<K, V> {
    entries: BTreeMap<K, Dirty<V>>,
    /// Every dirty key once, by the number of an update of it (its last, or an earlier one
    /// not yet put right: see `update`).
    order: BTreeMap<u64, K>,
    next_seq: u64,
    max_entries: usize,
}

impl<K: Ord + Clone, V> RecordCache<K, V> {
    /// A cache holding at most `max_bytes` by its estimate of an entry's size.
    pub(crate) fn new(max_bytes: u64) -> Self {
        let entry = std::mem::size_of::<K>()
            .saturating_add(std::mem::size_of::<Dirty<V>>())
            .saturating_add(ENTRY_OVERHEAD);
        let max_entries = usize::try_from(max_bytes).unwrap_or(usize::MAX) / entry.max(1);
        RecordCache {
            entries: BTreeMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            max_entries,
        }
    }

    /// Whether the cache holds anything at all (a zero budget: forward every update).
    pub(crate) fn enabled(&self) -> bool {
        self.max_entries > 0
    }

    /// How many keys are dirty.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Record an update of `key`, whose downstream value was `old` if the key is not dirty
    /// yet; returns the entries evicted to stay within the budget, oldest first (to be
    /// forwarded now).
    pub(crate) fn update(
        &mut self,
        key: &K,
        old: impl FnOnce() -> Option<V>,
        headers: Vec<Header>,
    ) -> Vec<(K, Dirty<V>)> {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.saturating_add(1);
        match self.entries.get_mut(key) {
            // The key keeps its place in `order` under its older number, put right only when
            // it reaches the front (no allocation per repeated update).
            Some(dirty) => {
                dirty.seq = seq;
                dirty.headers = headers;
            }
            None => {
                self.entries.insert(
                    key.clone(),
                    Dirty {
                        old: old(),
                        headers,
                        seq,
                    },
                );
                self.order.insert(seq, key.clone());
            }
        }
        let mut evicted = Vec::new();
        while self.entries.len() > self.max_entries {
            let Some((at, oldest)) = self.order.pop_first() else {
                break;
            };
            match self.entries.get(&oldest).map(|d| d.seq) {
                // Updated since it was placed: place it by its last update and look again.
                Some(last) if last != at => {
                    self.order.insert(last, oldest);
                }
                Some(_) => {
                    if let Some(dirty) = self.entries.remove(&oldest) {
                        evicted.push((oldest, dirty));
                    }
                }
                None => {}
            }
        }
        evicted
    }

    /// Every dirty entry, least recently updated first; the cache is empty afterwards.
    pub(crate) fn flush(&mut self) -> Vec<(K, Dirty<V>)> {
        self.order.clear();
        let mut all: Vec<(K, Dirty<V>)> = std::mem::take(&mut self.entries).into_iter().collect();
        all.sort_by_key(|(_, d)| d.seq);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys<V>(entries: &[(String, Dirty<V>)]) -> Vec<&str> {
        entries.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn updates_of_a_key_are_kept_once_with_the_first_old_value() {
        let mut cache: RecordCache<String, i64> = RecordCache::new(1 << 20);
        assert!(cache.enabled());
        assert!(cache.update(&"a".into(), || None, vec![]).is_empty());
        assert!(cache.update(&"b".into(), || Some(7), vec![]).is_empty());
        // A second update of `a` keeps the old value of the first and moves `a` last.
        assert!(cache.update(&"a".into(), || Some(99), vec![]).is_empty());
        assert_eq!(cache.len(), 2);
        let flushed = cache.flush();
        assert_eq!(keys(&flushed), ["b", "a"]);
        assert_eq!(flushed[0].1.old, Some(7));
        assert_eq!(flushed[1].1.old, None);
        assert_eq!(cache.len(), 0);
        assert!(cache.flush().is_empty());
    }

    #[test]
    fn the_budget_evicts_the_least_recently_updated_first() {
        let entry = std::mem::size_of::<String>() + std::mem::size_of::<Dirty<i64>>() + 64;
        let mut cache: RecordCache<String, i64> = RecordCache::new(2 * entry as u64);
        assert!(cache.update(&"a".into(), || None, vec![]).is_empty());
        assert!(cache.update(&"b".into(), || None, vec![]).is_empty());
        assert!(cache.update(&"a".into(), || None, vec![]).is_empty());
        let evicted = cache.update(&"c".into(), || Some(1), vec![]);
        assert_eq!(keys(&evicted), ["b"]);
        assert_eq!(keys(&cache.flush()), ["a", "c"]);
    }

    #[test]
    fn a_budget_under_one_entry_holds_nothing() {
        let mut cache: RecordCache<String, i64> = RecordCache::new(1);
        assert!(!cache.enabled());
        let evicted = cache.update(&"a".into(), || Some(3), vec![]);
        assert_eq!(keys(&evicted), ["a"]);
        assert_eq!(evicted[0].1.old, Some(3));
        assert_eq!(cache.len(), 0);
    }
}
