//! Kafka's murmur2 and the producer partitioners.
//!
//! A keyed record goes to `to_positive(murmur2(key)) % partition_count`, bit for bit what the
//! Java client computes, so a key lands on the same partition here as in Apache Kafka with the
//! same partition count. Records without a key may go anywhere; [`NullKeyStrategy`] says how.

use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};

/// Kafka's 32-bit MurmurHash2 of `data`, exactly as `org.apache.kafka.common.utils.Utils.murmur2`
/// computes it (seed `0x9747b28c`, little-endian 4-byte blocks, bytes unsigned, wrapping
/// arithmetic), returned as a Java `int`.
///
/// ```
/// use embroker::{murmur2, to_positive};
/// // Vectors from Kafka's own UtilsTest.
/// assert_eq!(murmur2(b"21"), -973932308);
/// assert_eq!(murmur2(b"abc"), 479470107);
/// // The partition of a keyed record among 6 partitions, as the Java producer computes it.
/// assert_eq!(to_positive(murmur2(b"foobar")) % 6, 0);
/// ```
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    // Kafka takes `length` as a Java int; keys longer than 2 GiB cannot reach a partitioner.
    let mut h: u32 = SEED ^ (data.len() as u32);

    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from(block[0])
            | (u32::from(block[1]) << 8)
            | (u32::from(block[2]) << 16)
            | (u32::from(block[3]) << 24);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }

    // The tail falls through as Java's switch does: 3 bytes apply cases 3, 2 and 1.
    let tail = blocks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }

    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    // Reinterpret the 32 bits as Java's signed int.
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (`x & 0x7fffffff`). This is **not** `abs`:
/// `to_positive(-1)` is `i32::MAX`, and `to_positive(i32::MIN)` is 0.
pub fn to_positive(x: i32) -> i32 {
    x & 0x7fff_ffff
}

/// The partition of a keyed record: `to_positive(murmur2(key)) % partition_count`.
/// `partition_count` must be at least 1.
fn partition_for_key(key: &[u8], partition_count: i32) -> i32 {
    debug_assert!(partition_count > 0);
    to_positive(murmur2(key)) % partition_count
}

/// Chooses the partition of each record the producer sends.
///
/// The producer calls [`Partitioner::partition`] for every record that has no explicit
/// partition, passing the topic's current partition count (all partitions, as Kafka does). The
/// result must lie in `0..partition_count`; the producer checks it and fails the send with an
/// error otherwise. Implementations are shared between threads, so keep any state behind
/// atomics or a lock.
///
/// A user-written partitioner, the classic one that takes the number after the last `.` of the
/// key (`"sensor.17"` goes to partition `17 % partition_count`):
///
/// ```
/// use std::sync::Arc;
/// use embroker::{Error, Partitioner, PartitionerChoice, ProducerConfig};
///
/// #[derive(Debug)]
/// struct SuffixPartitioner;
///
/// impl Partitioner for SuffixPartitioner {
///     fn partition(
///         &self,
///         _topic: &str,
///         key: Option<&[u8]>,
///         _value: Option<&[u8]>,
///         partition_count: i32,
///     ) -> embroker::Result<i32> {
///         let fail = |reason: &str| Error::Callback {
///             callback: "partitioner",
///             reason: reason.to_string(),
///         };
///         let key = key.ok_or_else(|| fail("records need a key"))?;
///         let key = std::str::from_utf8(key).map_err(|_| fail("key is not UTF-8"))?;
///         let suffix = key.rsplit('.').next().unwrap_or(key);
///         let n: i64 = suffix.parse().map_err(|_| fail("key does not end in .<number>"))?;
///         Ok(i32::try_from(n.rem_euclid(i64::from(partition_count))).unwrap_or(0))
///     }
/// }
///
/// let p = SuffixPartitioner;
/// assert_eq!(p.partition("readings", Some(b"sensor.17"), None, 10)?, 7);
/// assert_eq!(p.partition("readings", Some(b"a.b.3"), None, 10)?, 3);
/// assert!(p.partition("readings", None, None, 10).is_err());
///
/// // Hand it to a producer's config.
/// let config = ProducerConfig::default()
///     .partitioner(PartitionerChoice::Custom(Arc::new(SuffixPartitioner)));
/// assert!(config.validate().is_ok());
/// # Ok::<(), Error>(())
/// ```
pub trait Partitioner: Send + Sync + fmt::Debug {
    /// The partition, in `0..partition_count`, for a record of `topic` with this key and value
    /// (`None` is a null key or value; an empty slice is not null). `partition_count` is at
    /// least 1. An error fails this record's send.
    fn partition(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        partition_count: i32,
    ) -> Result<i32>;
}

/// Fails unless `partition_count` is at least 1.
fn check_partition_count(partition_count: i32) -> Result<()> {
    if partition_count < 1 {
        return Err(Error::argument(
            "partition_count",
            format!("must be at least 1, got {partition_count}"),
        ));
    }
    Ok(())
}

/// Where the [`DefaultPartitioner`] sends records that have no key. Set with the
/// embroker-specific producer key `embroker.partitioner.null.key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum NullKeyStrategy {
    /// Each record to the next partition of the topic, cycling through all of them (a counter
    /// per topic, starting at partition 0). Kafka's behaviour up to 2.3; the default here,
    /// because it spreads records evenly and predictably, which is what tests and small
    /// in-process workloads expect.
    #[default]
    RoundRobin,
    /// Kafka ≥ 3.3's uniform sticky partitioning: keep sending to one partition until
    /// `batch.size` bytes of keys and values went to it, then move to another partition chosen
    /// at random. Fewer, fuller batches.
    Sticky,
}

impl NullKeyStrategy {
    /// The value's spelling in `embroker.partitioner.null.key`.
    pub fn as_str(self) -> &'static str {
        match self {
            NullKeyStrategy::RoundRobin => "round_robin",
            NullKeyStrategy::Sticky => "sticky",
        }
    }
}

/// A small thread-safe random number generator (SplitMix64 over an atomic counter), seeded from
/// the standard library's per-process random hasher keys. Good enough to spread records; not
/// for anything that needs unpredictability.
struct Rng {
    state: AtomicU64,
}

impl Rng {
    fn new() -> Self {
        let seed = RandomState::new().build_hasher().finish();
        Rng {
            state: AtomicU64::new(seed),
        }
    }

    fn next_u64(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform value in `0..n` for `n >= 1` (multiply-shift; the bias is below 2^-32).
    fn below(&self, n: i32) -> i32 {
        debug_assert!(n > 0);
        let n = u64::from(n.unsigned_abs());
        let x = (u128::from(self.next_u64()) * u128::from(n)) >> 64;
        // x < n <= i32::MAX, so the conversion cannot fail.
        i32::try_from(x).unwrap_or(0)
    }
}

impl fmt::Debug for Rng {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Rng")
    }
}

/// Sends records to the partitions of each topic in turn, ignoring keys, as Kafka's
/// `org.apache.kafka.clients.producer.RoundRobinPartitioner` does: one counter per topic,
/// starting at partition 0.
///
/// ```
/// use embroker::{Partitioner, RoundRobinPartitioner};
/// let p = RoundRobinPartitioner::new();
/// let picks: Vec<i32> = (0..4)
///     .map(|_| p.partition("t", Some(b"same key"), None, 3))
///     .collect::<Result<_, _>>()?;
/// assert_eq!(picks, [0, 1, 2, 0]);
/// # Ok::<(), embroker::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct RoundRobinPartitioner {
    counters: TopicCounters,
}

impl RoundRobinPartitioner {
    /// A partitioner whose counters all start at partition 0.
    pub fn new() -> Self {
        Self::default()
    }

    fn next(&self, topic: &str, partition_count: i32) -> i32 {
        // One partition has one answer: the counter (a thread-local lookup and an atomic add,
        // 3% of a send) is left alone. It only orders records across partitions, so a topic
        // that later gets more partitions starts its cycle at partition 0.
        if partition_count == 1 {
            return 0;
        }
        let n = u64::from(partition_count.unsigned_abs());
        let partition = self.counters.fetch_increment(topic) % n;
        // partition < n <= i32::MAX.
        i32::try_from(partition).unwrap_or(0)
    }
}

/// One counter per topic. A thread counts the topic it counted last without a lock or a
/// lookup (a mutex around a map cost ~6% of a producer's send); other topics take a read
/// lock and, unless it is the topic counted last by any thread, a hash lookup.
#[derive(Debug)]
struct TopicCounters {
    /// Unique in the process (see `LAST_COUNTER`).
    id: u64,
    table: RwLock<CounterTable>,
    /// Where the topic counted last is in `table.counters`.
    last: AtomicUsize,
}

impl Default for TopicCounters {
    fn default() -> Self {
        TopicCounters {
            id: NEXT_COUNTERS_ID.fetch_add(1, Ordering::Relaxed),
            table: RwLock::default(),
            last: AtomicUsize::new(0),
        }
    }
}

/// Numbers the counter tables, so that a thread's cache can tell whose counter it holds.
static NEXT_COUNTERS_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The counter this thread counted last, and the table it belongs to.
    static LAST_COUNTER: RefCell<Option<(u64, Arc<TopicCounter>)>> = const { RefCell::new(None) };
}

#[derive(Debug)]
struct TopicCounter {
    topic: Box<str>,
    next: AtomicU64,
}

#[derive(Debug, Default)]
struct CounterTable {
    counters: Vec<Arc<TopicCounter>>,
    index: HashMap<Box<str>, usize>,
}

impl CounterTable {
    fn position(&self, topic: &str, hint: usize) -> Option<usize> {
        match self.counters.get(hint) {
            Some(c) if &*c.topic == topic => Some(hint),
            _ => self.index.get(topic).copied(),
        }
    }
}

impl TopicCounters {
    /// The counter of `topic` before this call (0 the first time), and counts it up.
    fn fetch_increment(&self, topic: &str) -> u64 {
        let cached = LAST_COUNTER.try_with(|last| {
            let last = last.try_borrow().ok()?;
            match last.as_ref() {
                Some((id, c)) if *id == self.id && &*c.topic == topic => {
                    Some(c.next.fetch_add(1, Ordering::Relaxed))
                }
                _ => None,
            }
        });
        if let Ok(Some(n)) = cached {
            return n;
        }
        let counter = self.counter(topic);
        let _ = LAST_COUNTER.try_with(|last| {
            if let Ok(mut last) = last.try_borrow_mut() {
                *last = Some((self.id, Arc::clone(&counter)));
            }
        });
        counter.next.fetch_add(1, Ordering::Relaxed)
    }

    /// The counter of `topic`, added if new.
    fn counter(&self, topic: &str) -> Arc<TopicCounter> {
        let hint = self.last.load(Ordering::Relaxed);
        {
            let table = self.table.read();
            if let Some(c) = table
                .position(topic, hint)
                .and_then(|i| table.counters.get(i))
            {
                return Arc::clone(c);
            }
        }
        let mut table = self.table.write();
        if let Some(i) = table.position(topic, hint) {
            if let Some(c) = table.counters.get(i) {
                self.last.store(i, Ordering::Relaxed);
                return Arc::clone(c);
            }
        }
        let counter = Arc::new(TopicCounter {
            topic: topic.into(),
            next: AtomicU64::new(0),
        });
        table.counters.push(Arc::clone(&counter));
        let i = table.counters.len() - 1;
        table.index.insert(topic.into(), i);
        self.last.store(i, Ordering::Relaxed);
        counter
    }
}

impl Partitioner for RoundRobinPartitioner {
    fn partition(
        &self,
        topic: &str,
        _key: Option<&[u8]>,
        _value: Option<&[u8]>,
        partition_count: i32,
    ) -> Result<i32> {
        check_partition_count(partition_count)?;
        Ok(self.next(topic, partition_count))
    }
}

/// Sends every record to a partition chosen uniformly at random, ignoring keys. Not a Kafka
/// class; useful to spread load without any ordering expectations.
#[derive(Debug)]
pub struct RandomPartitioner {
    rng: Rng,
}

impl RandomPartitioner {
    /// A partitioner seeded from the process's random hasher keys.
    pub fn new() -> Self {
        RandomPartitioner { rng: Rng::new() }
    }
}

impl Default for RandomPartitioner {
    fn default() -> Self {
        Self::new()
    }
}

impl Partitioner for RandomPartitioner {
    fn partition(
        &self,
        _topic: &str,
        _key: Option<&[u8]>,
        _value: Option<&[u8]>,
        partition_count: i32,
    ) -> Result<i32> {
        check_partition_count(partition_count)?;
        Ok(self.rng.below(partition_count))
    }
}

/// Where one topic's sticky null-key records currently go.
#[derive(Debug)]
struct StickyPartition {
    partition: i32,
    /// Bytes of keys and values sent to `partition` since it was chosen.
    bytes: u64,
}

/// Kafka's default partitioning: a keyed record goes to
/// `to_positive(murmur2(key)) % partition_count` (an empty key is hashed, not treated as null);
/// a record without a key goes where the [`NullKeyStrategy`] says.
///
/// With `ignore_keys` (Kafka's `partitioner.ignore.keys=true`) keyed records are treated as if
/// they had no key.
///
/// ```
/// use embroker::{DefaultPartitioner, NullKeyStrategy, Partitioner};
/// let p = DefaultPartitioner::new(NullKeyStrategy::RoundRobin, 16384);
/// // The same partition as the Java producer picks for this key among 12 partitions.
/// assert_eq!(p.partition("t", Some(b"a-little-bit-longer-string"), None, 12)?, 11);
/// // Keyless records cycle.
/// assert_eq!(p.partition("t", None, Some(b"v"), 3)?, 0);
/// assert_eq!(p.partition("t", None, Some(b"v"), 3)?, 1);
/// # Ok::<(), embroker::Error>(())
/// ```
#[derive(Debug)]
pub struct DefaultPartitioner {
    null_key: NullKeyStrategy,
    batch_size: u32,
    ignore_keys: bool,
    round_robin: RoundRobinPartitioner,
    sticky: Mutex<HashMap<String, StickyPartition>>,
    rng: Rng,
}

impl DefaultPartitioner {
    /// A partitioner that hashes keys and places keyless records by `null_key`. `batch_size` is
    /// the producer's `batch.size`: under [`NullKeyStrategy::Sticky`], how many bytes of keys
    /// and values go to one partition before switching (0 switches on every record).
    pub fn new(null_key: NullKeyStrategy, batch_size: u32) -> Self {
        DefaultPartitioner {
            null_key,
            batch_size,
            ignore_keys: false,
            round_robin: RoundRobinPartitioner::new(),
            sticky: Mutex::new(HashMap::new()),
            rng: Rng::new(),
        }
    }

    /// Treat every record as keyless (`partitioner.ignore.keys`). Default: false.
    #[must_use]
    pub fn ignore_keys(mut self, ignore_keys: bool) -> Self {
        self.ignore_keys = ignore_keys;
        self
    }

    /// The strategy for records without a key.
    pub fn null_key_strategy(&self) -> NullKeyStrategy {
        self.null_key
    }

    fn sticky_partition(&self, topic: &str, record_bytes: u64, partition_count: i32) -> i32 {
        let mut table = self.sticky.lock();
        let state = match table.get_mut(topic) {
            Some(state) => state,
            None => table.entry(topic.to_string()).or_insert(StickyPartition {
                partition: -1,
                bytes: 0,
            }),
        };
        // Switch when nothing is chosen yet, when the topic shrank under us (a count from a
        // stale caller), or when a batch worth of bytes went to the current partition.
        let stale = state.partition < 0 || state.partition >= partition_count;
        if stale || state.bytes >= u64::from(self.batch_size) {
            state.partition = if stale || partition_count == 1 {
                self.rng.below(partition_count)
            } else {
                // Uniform over the other partitions: never stay where the batch just filled.
                let pick = self.rng.below(partition_count - 1);
                if pick >= state.partition {
                    pick + 1
                } else {
                    pick
                }
            };
            state.bytes = 0;
        }
        state.bytes = state.bytes.saturating_add(record_bytes);
        state.partition
    }
}

impl Default for DefaultPartitioner {
    /// Round robin for keyless records, with Kafka's default `batch.size` of 16384.
    fn default() -> Self {
        DefaultPartitioner::new(NullKeyStrategy::RoundRobin, 16384)
    }
}

impl Partitioner for DefaultPartitioner {
    fn partition(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        partition_count: i32,
    ) -> Result<i32> {
        check_partition_count(partition_count)?;
        if let (Some(key), false) = (key, self.ignore_keys) {
            return Ok(partition_for_key(key, partition_count));
        }
        Ok(match self.null_key {
            NullKeyStrategy::RoundRobin => self.round_robin.next(topic, partition_count),
            NullKeyStrategy::Sticky => {
                let len = |b: Option<&[u8]>| b.map_or(0, |b| b.len() as u64);
                self.sticky_partition(topic, len(key) + len(value), partition_count)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;

    /// Kafka's `UtilsTest#testMurmur2` values, plus the partition columns of
    /// kafka-semantics.md §2.2 (counts 3, 6, 10, 12) and the empty key.
    const VECTORS: &[(&str, i32, [i32; 4])] = &[
        ("21", -973932308, [0, 0, 0, 0]),
        ("foobar", -790332482, [0, 0, 6, 6]),
        ("abc", 479470107, [0, 3, 7, 3]),
        ("a-little-bit-long-string", -985981536, [2, 2, 2, 8]),
        ("a-little-bit-longer-string", -1486304829, [2, 5, 9, 11]),
        (
            "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            -58897971,
            [2, 5, 7, 5],
        ),
        ("", 275646681, [0, 3, 1, 9]),
    ];
    const COUNTS: [i32; 4] = [3, 6, 10, 12];

    #[test]
    fn murmur2_matches_kafka_vectors() {
        for (key, hash, _) in VECTORS {
            assert_eq!(murmur2(key.as_bytes()), *hash, "key {key:?}");
        }
    }

    #[test]
    fn default_partitioner_matches_kafka_partition_columns() {
        let p = DefaultPartitioner::default();
        for (key, _, partitions) in VECTORS {
            for (count, expected) in COUNTS.iter().zip(partitions) {
                let got = p
                    .partition("t", Some(key.as_bytes()), None, *count)
                    .unwrap();
                assert_eq!(got, *expected, "key {key:?} over {count} partitions");
            }
        }
    }

    #[test]
    fn to_positive_masks_the_sign_bit() {
        assert_eq!(to_positive(-973932308), 1173551340);
        assert_eq!(to_positive(-1), i32::MAX);
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(5), 5);
    }

    #[test]
    fn murmur2_reads_bytes_unsigned_and_every_tail_length() {
        // Bytes >= 0x80 must not sign-extend; hashes differ for every tail length.
        let data = [0xffu8, 0x80, 0x7f, 0x01, 0xfe, 0x81, 0x00];
        let hashes: Vec<i32> = (0..=data.len()).map(|n| murmur2(&data[..n])).collect();
        for (i, a) in hashes.iter().enumerate() {
            for b in &hashes[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn same_key_same_partition() {
        let p = DefaultPartitioner::new(NullKeyStrategy::Sticky, 10);
        let first = p.partition("t", Some(b"user-42"), None, 16).unwrap();
        for _ in 0..100 {
            let got = p
                .partition("t", Some(b"user-42"), Some(b"any value"), 16)
                .unwrap();
            assert_eq!(got, first);
        }
    }

    #[test]
    fn empty_key_is_hashed_not_null() {
        let p = DefaultPartitioner::default();
        for _ in 0..5 {
            assert_eq!(p.partition("t", Some(b""), None, 10).unwrap(), 1);
        }
    }

    #[test]
    fn round_robin_cycles_evenly_per_topic() {
        let p = RoundRobinPartitioner::new();
        let mut counts = [0; 5];
        for i in 0..50 {
            let a = p.partition("a", Some(b"k"), None, 5).unwrap();
            assert_eq!(a, i % 5);
            counts[usize::try_from(a).unwrap()] += 1;
        }
        assert_eq!(counts, [10; 5]);
        // Another topic has its own counter.
        assert_eq!(p.partition("b", None, None, 5).unwrap(), 0);
        // The default partitioner's keyless path cycles the same way.
        let d = DefaultPartitioner::default();
        let picks: Vec<i32> = (0..6)
            .map(|_| d.partition("t", None, None, 3).unwrap())
            .collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn ignore_keys_round_robins_keyed_records() {
        let p = DefaultPartitioner::default().ignore_keys(true);
        let picks: Vec<i32> = (0..4)
            .map(|_| p.partition("t", Some(b"k"), None, 4).unwrap())
            .collect();
        assert_eq!(picks, [0, 1, 2, 3]);
    }

    #[test]
    fn sticky_stays_until_batch_size_bytes_then_moves() {
        let p = DefaultPartitioner::new(NullKeyStrategy::Sticky, 100);
        let first = p.partition("t", None, Some(&[0; 40]), 8).unwrap();
        // 40 + 40 + 40 = 120 >= 100 after the third record; the fourth moves.
        assert_eq!(p.partition("t", None, Some(&[0; 40]), 8).unwrap(), first);
        assert_eq!(p.partition("t", None, Some(&[0; 40]), 8).unwrap(), first);
        let next = p.partition("t", None, Some(&[0; 40]), 8).unwrap();
        assert_ne!(next, first);
        // Over many batches, every partition gets used.
        let mut seen = [false; 8];
        for _ in 0..2000 {
            let got = p.partition("t", None, Some(&[0; 100]), 8).unwrap();
            seen[usize::try_from(got).unwrap()] = true;
        }
        assert!(seen.iter().all(|s| *s), "{seen:?}");
    }

    #[test]
    fn sticky_repicks_when_partition_count_shrinks() {
        let p = DefaultPartitioner::new(NullKeyStrategy::Sticky, 1 << 20);
        for _ in 0..20 {
            let _ = p.partition("t", None, Some(b"v"), 1000).unwrap();
            assert_eq!(p.partition("t", None, Some(b"v"), 1).unwrap(), 0);
        }
    }

    #[test]
    fn random_stays_in_range_and_covers_all() {
        let p = RandomPartitioner::new();
        let mut seen = [0u32; 7];
        for _ in 0..7000 {
            let got = p.partition("t", Some(b"k"), None, 7).unwrap();
            assert!((0..7).contains(&got), "{got}");
            seen[usize::try_from(got).unwrap()] += 1;
        }
        // Expected 1000 each; a fair generator is nowhere near these bounds.
        assert!(seen.iter().all(|n| (700..1300).contains(n)), "{seen:?}");
        assert_eq!(p.partition("t", None, None, 1).unwrap(), 0);
    }

    #[test]
    fn partition_count_below_one_is_an_error() {
        let partitioners: [&dyn Partitioner; 3] = [
            &DefaultPartitioner::default(),
            &RoundRobinPartitioner::new(),
            &RandomPartitioner::new(),
        ];
        for p in partitioners {
            for count in [0, -1, i32::MIN] {
                let e = p.partition("t", Some(b"k"), None, count).unwrap_err();
                assert!(
                    matches!(
                        e,
                        Error::InvalidArgument {
                            name: "partition_count",
                            ..
                        }
                    ),
                    "{e}"
                );
            }
        }
    }

    #[test]
    fn partitioners_are_shared_across_threads() {
        // (partitioner, whether one shared counter makes the spread exactly even)
        let shared: Vec<(Arc<dyn Partitioner>, bool)> = vec![
            (Arc::new(DefaultPartitioner::default()), true),
            (
                Arc::new(DefaultPartitioner::new(NullKeyStrategy::Sticky, 64)),
                false,
            ),
            (Arc::new(RoundRobinPartitioner::new()), true),
            (Arc::new(RandomPartitioner::new()), false),
        ];
        for (p, exactly_even) in shared {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let p = Arc::clone(&p);
                    std::thread::spawn(move || {
                        let mut counts = [0u32; 4];
                        for _ in 0..1000 {
                            let got = p.partition("t", None, Some(b"value"), 4).unwrap();
                            counts[usize::try_from(got).unwrap()] += 1;
                        }
                        counts
                    })
                })
                .collect();
            let mut total = [0u32; 4];
            for h in handles {
                for (t, c) in total.iter_mut().zip(h.join().unwrap()) {
                    *t += c;
                }
            }
            assert_eq!(total.iter().sum::<u32>(), 4000, "{p:?}");
            if exactly_even {
                // One shared counter: exactly even however the threads interleave.
                assert_eq!(total, [1000; 4], "{p:?}");
            }
        }
    }

    proptest! {
        #[test]
        fn keyed_partition_is_always_in_range(
            key in proptest::collection::vec(any::<u8>(), 0..64),
            count in 1i32..=10_000,
        ) {
            let p = DefaultPartitioner::default();
            let got = p.partition("t", Some(&key), None, count).unwrap();
            prop_assert!((0..count).contains(&got));
            prop_assert_eq!(got, to_positive(murmur2(&key)) % count);
            prop_assert!(murmur2(&key) & 0x7fff_ffff == to_positive(murmur2(&key)));
        }

        #[test]
        fn every_partitioner_stays_in_range(
            key in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)),
            count in 1i32..=64,
        ) {
            let partitioners: [&dyn Partitioner; 4] = [
                &DefaultPartitioner::default(),
                &DefaultPartitioner::new(NullKeyStrategy::Sticky, 8),
                &RoundRobinPartitioner::new(),
                &RandomPartitioner::new(),
            ];
            for p in partitioners {
                for _ in 0..4 {
                    let got = p.partition("t", key.as_deref(), Some(b"0123456789"), count).unwrap();
                    prop_assert!((0..count).contains(&got));
                }
            }
        }
    }
}
