//! The cleaner's offset map: for each key seen in the dirty part of a log, the offset of its
//! latest record. Kafka's `SkimpyOffsetMap`, bounded the same way.
//!
//! Invariants:
//! - Memory stays within the budget the map was made with: a table of power-of-two buckets
//!   of 25 bytes (a 128-bit key hash, an offset, a control byte), filled to at most 7/8 (while
//!   the table doubles, the old half-size table briefly exists too). A put past that is
//!   refused, and the cleaner then cleans only the prefix of the log the map covers (Kafka's
//!   cleaner does the same).
//! - Keys are stored as hashes, as Kafka stores MD5 digests. Two SipHash-1-3 hashes under
//!   random keys, fresh for every map, make a collision (which would drop the older key's
//!   latest record) a chance of about n²/2¹²⁹: for a million keys, below 10⁻²⁶.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};

/// Bytes one bucket of the table takes: a 16-byte key hash, an 8-byte offset (Kafka's 24
/// bytes per entry) and hashbrown's control byte.
pub(crate) const BYTES_PER_BUCKET: usize = 25;

/// A key's 128-bit hash, as two words (a `u128` would pad the entry to 32 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
struct KeyHash(u64, u64);

impl std::hash::Hash for KeyHash {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0 ^ self.1);
    }
}

/// Latest offset per key hash, with a fixed number of entries.
pub(crate) struct OffsetMap {
    map: HashMap<KeyHash, i64, PassThrough>,
    capacity: usize,
    hash_a: RandomState,
    hash_b: RandomState,
}

impl OffsetMap {
    /// A map whose table fits in `memory_bytes`: the largest power of two of buckets that
    /// fits, filled to 7/8 (at least 8 buckets, 7 entries).
    pub(crate) fn with_memory(memory_bytes: usize) -> OffsetMap {
        let fits = (memory_bytes / BYTES_PER_BUCKET).max(8);
        let buckets = if fits.is_power_of_two() {
            fits
        } else {
            fits.next_power_of_two() / 2
        };
        let capacity = buckets / 8 * 7;
        OffsetMap {
            // Grown as keys arrive (a small log never allocates the whole budget); at
            // `capacity` entries the table has exactly `buckets` buckets.
            map: HashMap::with_hasher(PassThrough),
            capacity,
            hash_a: RandomState::new(),
            hash_b: RandomState::new(),
        }
    }

    fn hash(&self, key: &[u8]) -> KeyHash {
        let mut a = self.hash_a.build_hasher();
        a.write(key);
        let mut b = self.hash_b.build_hasher();
        b.write(key);
        KeyHash(a.finish(), b.finish())
    }

    /// Most keys the map takes.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Records `offset` as the latest for `key`. False (and nothing changed) when the key is
    /// new and the map is full.
    pub(crate) fn put(&mut self, key: &[u8], offset: i64) -> bool {
        let h = self.hash(key);
        if self.map.len() >= self.capacity && !self.map.contains_key(&h) {
            return false;
        }
        let slot = self.map.entry(h).or_insert(offset);
        *slot = (*slot).max(offset);
        true
    }

    /// The latest offset recorded for `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Option<i64> {
        self.map.get(&self.hash(key)).copied()
    }

    /// Keys recorded.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

/// The keys are already uniform hashes: hashing them again would only cost time.
#[derive(Clone, Copy, Default)]
struct PassThrough;

impl BuildHasher for PassThrough {
    type Hasher = PassThroughHasher;
    fn build_hasher(&self) -> PassThroughHasher {
        PassThroughHasher(0)
    }
}

struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in so the hasher stays correct.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 ^= v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_offset_and_refuses_new_keys_when_full() {
        let mut m = OffsetMap::with_memory(8 * BYTES_PER_BUCKET);
        assert_eq!(m.capacity(), 7);
        assert!(m.put(b"a", 1));
        assert!(m.put(b"b", 2));
        assert!(m.put(b"a", 7));
        for k in [b"c", b"e", b"f", b"g", b"h"] {
            assert!(m.put(k, 3));
        }
        assert!(!m.put(b"d", 4), "full");
        assert!(m.put(b"b", 9), "a known key still updates when full");
        assert_eq!(m.get(b"a"), Some(7));
        assert_eq!(m.get(b"b"), Some(9));
        assert_eq!(m.get(b"d"), None);
        assert_eq!(m.len(), 7);
    }

    #[test]
    fn the_table_stays_within_its_budget() {
        for budget in [0, 100, 1 << 20, 16 << 20, (16 << 20) + 12_345] {
            let m = OffsetMap::with_memory(budget);
            // hashbrown allocates the next power of two of buckets above capacity * 8 / 7.
            let buckets = (m.capacity() * 8 / 7).next_power_of_two();
            assert!(
                buckets * BYTES_PER_BUCKET <= budget.max(8 * BYTES_PER_BUCKET),
                "{budget}"
            );
            if budget >= 8 * BYTES_PER_BUCKET {
                assert!(
                    m.capacity() >= budget / BYTES_PER_BUCKET * 7 / 16,
                    "{budget}"
                );
            }
        }
    }

    #[test]
    fn many_keys_do_not_collide() {
        let mut m = OffsetMap::with_memory(400_000 * BYTES_PER_BUCKET);
        for i in 0..100_000i64 {
            assert!(m.put(format!("key-{i}").as_bytes(), i));
        }
        assert_eq!(m.len(), 100_000);
        for i in 0..100_000i64 {
            assert_eq!(m.get(format!("key-{i}").as_bytes()), Some(i));
        }
    }
}
