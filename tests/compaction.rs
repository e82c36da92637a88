//! Log compaction through the public API: what a compacted topic keeps, when tombstones go,
//! how reads and consumers cross the gaps, lag settings, `compact,delete`, errors, and the
//! `__consumer_offsets` topic staying small.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::latest;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use embroker::{
    Broker, CleanupPolicy, ConsumerConfig, ManualClock, OffsetAndMetadata, OffsetReset, Partition,
    Record, StoredRecord, TopicConfig, TopicPartition,
};

const T0: i64 = 1_700_000_000_000;

fn compacted(segment_bytes: u32) -> TopicConfig {
    TopicConfig::default()
        .cleanup_policy(CleanupPolicy::Compact)
        .segment_bytes(segment_bytes)
        .index_interval_bytes(256)
}

/// A broker with no cleaner thread (tests run passes themselves) on a manual clock.
fn broker(clock: &Arc<ManualClock>) -> Broker {
    Broker::builder()
        .log_cleaner(false)
        .clock(clock.clone())
        .open_temporary()
        .unwrap()
}

fn read_all(p: &Partition) -> Vec<StoredRecord> {
    common::read_all(p, p.log_start_offset())
}

/// `n` records with keys `filler-{i}` that no other record shares.
fn filler(start: usize, n: usize) -> Vec<Record> {
    (start..start + n)
        .map(|i| Record::new("f").key(format!("filler-{i}")))
        .collect()
}

fn clean(broker: &Broker) -> embroker::CleanerReport {
    broker.flush().unwrap();
    broker.run_log_cleaner().unwrap()
}

#[test]
fn a_hundred_thousand_updates_over_a_thousand_keys_keep_the_newest_of_each() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let open = || {
        Broker::builder()
            .log_cleaner(false)
            .clock(clock.clone())
            .open(dir.path())
            .unwrap()
    };
    let broker = open();
    broker.create_topic("prices", compacted(64 * 1024)).unwrap();
    let p = broker.topic("prices").unwrap().partition(0).unwrap();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for chunk in 0..1_000 {
        let batch: Vec<Record> = (0..100)
            .map(|i| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let n = chunk * 100 + i;
                Record::new(format!("value-{n}")).key(format!("key-{:04}", rng % 1_000))
            })
            .collect();
        p.append(&batch).unwrap();
    }
    // Distinct filler keys push every update out of the active segment, which is never
    // cleaned: then the updates' range must hold exactly the newest record of each key.
    p.append(&filler(0, 5_000)).unwrap();
    let before = read_all(&p);
    assert_eq!(before.len(), 105_000);
    let expected = latest(&before);
    assert_eq!(expected.len(), 6_000);
    let size_before = broker.describe_topic("prices").unwrap().partitions[0].size_bytes;

    let report = clean(&broker);
    assert_eq!(report.partitions_cleaned, 1);
    assert!(report.records_removed >= 99_000, "{report:?}");

    let after = read_all(&p);
    assert_eq!(latest(&after), expected);
    let updates: Vec<&StoredRecord> = after
        .iter()
        .filter(|r| r.key.as_deref().unwrap().starts_with(b"key-"))
        .collect();
    assert_eq!(updates.len(), 1_000);
    for r in &updates {
        let (offset, value) = &expected[r.key.as_deref().unwrap()];
        assert_eq!(
            (r.offset, r.value.as_deref().unwrap()),
            (*offset, &value[..])
        );
    }
    assert!(after.windows(2).all(|w| w[0].offset < w[1].offset));
    let d = broker.describe_topic("prices").unwrap();
    assert!(d.partitions[0].size_bytes < size_before / 10, "{d:?}");
    assert_eq!(d.partitions[0].dirty_bytes, 0);
    assert_eq!(d.partitions[0].last_clean_ms, Some(T0));
    assert_eq!(d.partitions[0].log_end_offset, 105_000);

    // Reopening shows the same log, with nothing of the swap left behind.
    broker.close().unwrap();
    let broker = open();
    let p = broker.topic("prices").unwrap().partition(0).unwrap();
    let reopened = read_all(&p);
    assert_eq!(reopened.len(), after.len());
    assert_eq!(latest(&reopened), expected);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("prices-0"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".cleaned") || n == "cleaner-swap")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn tombstones_go_only_after_delete_retention_ms() {
    let clock = ManualClock::new(T0);
    let broker = broker(&clock);
    let config = compacted(1024).delete_retention_ms(60_000);
    broker.create_topic("users", config).unwrap();
    let p = broker.topic("users").unwrap().partition(0).unwrap();
    for i in 0..20 {
        p.append(&[Record::new(format!("v{i}")).key(format!("user-{}", i % 5))])
            .unwrap();
    }
    p.append(&[Record::tombstone("user-1"), Record::tombstone("user-2")])
        .unwrap();
    let tombstones_at: Vec<i64> = vec![20, 21];
    // Enough later records that the tombstones sit in a sealed segment.
    for i in 0..30 {
        p.append(&[Record::new(format!("w{i}")).key("user-9")])
            .unwrap();
    }
    let has_tombstones = |p: &Partition| {
        read_all(p)
            .iter()
            .filter(|r| r.value.is_none())
            .map(|r| r.offset)
            .collect::<Vec<_>>()
    };

    // First pass: the values before the tombstones go, the tombstones stay (horizon set).
    clean(&broker);
    assert_eq!(has_tombstones(&p), tombstones_at);
    let keys: Vec<_> = read_all(&p)
        .iter()
        .map(|r| String::from_utf8(r.key.as_deref().unwrap().to_vec()).unwrap())
        .collect();
    assert!(!keys[..2].contains(&"user-1".to_string()));
    // A consumer reading from the start within the window sees the deletes.
    let mut c = broker
        .consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest))
        .unwrap();
    c.assign(&[TopicPartition::new("users", 0)]).unwrap();
    let polled = c.poll(Duration::from_millis(200)).unwrap();
    assert!(polled.iter().any(|r| r.value.is_none()));

    // Just before the horizon: still there.
    clock.advance_ms(59_999);
    clean(&broker);
    assert_eq!(has_tombstones(&p), tombstones_at);
    // At the horizon: a pass is due on its own (nothing new is dirty) and removes them.
    clock.advance_ms(1);
    let report = clean(&broker);
    assert_eq!(report.partitions_cleaned, 1, "{report:?}");
    assert_eq!(has_tombstones(&p), Vec::<i64>::new());
    let view = latest(&read_all(&p));
    assert!(!view.contains_key(&b"user-1"[..]) && view.contains_key(&b"user-3"[..]));
}

#[test]
fn reads_and_seeks_land_on_the_next_surviving_record() {
    let clock = ManualClock::new(T0);
    let broker = broker(&clock);
    broker.create_topic("t", compacted(200)).unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    // Offsets 0..30: keys cycle a, b, c, ..., j three times; then `z`s fill the active segment.
    for i in 0..30 {
        let key = ((b'a' + (i % 10) as u8) as char).to_string();
        p.append(&[Record::new(format!("{i}")).key(key)]).unwrap();
    }
    for i in 0..5 {
        p.append(&[Record::new(format!("z{i}")).key("z")]).unwrap();
    }
    clean(&broker);
    let all = read_all(&p);
    let survivors: Vec<i64> = all.iter().map(|r| r.offset).collect();
    assert!(survivors.len() < 35, "{survivors:?}");
    for from in 0..p.log_end_offset() {
        let next = *survivors.iter().find(|&&o| o >= from).unwrap();
        let first = p
            .read(from, 1 << 20)
            .unwrap()
            .iter()
            .next()
            .map(|r| r.offset);
        // A read may return an earlier segment's nothing-after-from only as a gap.
        let mut at = from;
        let mut got = first;
        while got.is_none() {
            let r = p.read(at, 1 << 20).unwrap();
            at = r.next_offset();
            got = r.iter().next().map(|r| r.offset);
        }
        assert_eq!(got, Some(next), "read from {from}");
    }
    // offset_for_timestamp still answers with a surviving record.
    let hit = p.offset_for_timestamp(T0).unwrap().unwrap();
    assert_eq!(hit.offset, survivors[0]);

    // A consumer seeking into a gap gets the next record; reading on reaches the end.
    let tp = TopicPartition::new("t", 0);
    let mut c = broker.consumer(ConsumerConfig::default()).unwrap();
    c.assign(std::slice::from_ref(&tp)).unwrap();
    let gap = (0..p.log_end_offset())
        .find(|o| !survivors.contains(o))
        .unwrap();
    c.seek(&tp, gap).unwrap();
    let mut got = Vec::new();
    for _ in 0..20 {
        got.extend(
            c.poll(Duration::from_millis(20))
                .unwrap()
                .iter()
                .map(|r| r.offset),
        );
        if c.position(&tp).unwrap() == p.log_end_offset() {
            break;
        }
    }
    let expected: Vec<i64> = survivors.iter().copied().filter(|&o| o >= gap).collect();
    assert_eq!(got, expected);
    assert_eq!(c.position(&tp).unwrap(), p.log_end_offset());
}

#[test]
fn min_compaction_lag_keeps_young_records_and_max_lag_forces_a_clean() {
    let clock = ManualClock::new(T0);
    let broker = broker(&clock);
    let config = compacted(300)
        .min_compaction_lag_ms(10_000)
        .min_cleanable_dirty_ratio(0.99);
    broker.create_topic("t", config).unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    for i in 0..40 {
        p.append(&[Record::new(format!("{i}")).key("k")]).unwrap();
    }
    // Everything is younger than the lag: nothing is cleaned.
    assert_eq!(clean(&broker).partitions_cleaned, 0);
    assert_eq!(read_all(&p).len(), 40);
    clock.advance_ms(10_000);
    assert_eq!(clean(&broker).partitions_cleaned, 1);
    let left = read_all(&p).len();
    assert!(left < 40);

    // A low dirty ratio is not enough for a pass...
    broker
        .alter_topic_config("t", &[("min.compaction.lag.ms", "0")])
        .unwrap();
    for i in 0..3 {
        p.append(&[Record::new(format!("late{i}")).key("k")])
            .unwrap();
    }
    for i in 0..20 {
        p.append(&[Record::new(format!("x{i}")).key(format!("x{i}"))])
            .unwrap();
    }
    let d = broker.describe_topic("t").unwrap().partitions[0].clone();
    assert!(d.dirty_ratio() > 0.0 && d.dirty_ratio() < 0.99, "{d:?}");
    assert_eq!(clean(&broker).partitions_cleaned, 0);
    // ...until a dirty record is older than max.compaction.lag.ms.
    broker
        .alter_topic_config("t", &[("max.compaction.lag.ms", "5000")])
        .unwrap();
    clock.advance_ms(5_001);
    assert_eq!(clean(&broker).partitions_cleaned, 1);
    assert_eq!(
        broker.describe_topic("t").unwrap().partitions[0].dirty_bytes,
        0
    );
}

#[test]
fn compact_delete_also_deletes_by_retention() {
    let clock = ManualClock::new(T0);
    let broker = broker(&clock);
    let config = compacted(300)
        .cleanup_policy(CleanupPolicy::CompactDelete)
        .retention_ms(60_000);
    broker.create_topic("t", config).unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    for i in 0..30 {
        p.append(&[Record::new(format!("{i}")).key(format!("k{}", i % 3))])
            .unwrap();
    }
    clean(&broker);
    let kept = read_all(&p);
    assert!(kept.len() < 30);
    clock.advance_ms(30_000);
    for i in 0..30 {
        p.append(&[Record::new(format!("new{i}")).key(format!("n{}", i % 3))])
            .unwrap();
    }
    clock.advance_ms(40_000);
    let old = |p: &Partition| read_all(p).iter().filter(|r| r.offset < 30).count();
    let before = old(&p);
    assert!(broker.enforce_retention().unwrap() > 0);
    // The cleaned segments held only records from T0, now past retention.ms.
    assert!(p.log_start_offset() > 0);
    assert!(old(&p) < before);
    assert!(read_all(&p)
        .iter()
        .all(|r| r.offset >= p.log_start_offset()));
}

#[test]
fn keyless_records_are_rejected_on_compacted_topics() {
    let clock = ManualClock::new(T0);
    let broker = broker(&clock);
    broker.create_topic("t", compacted(1 << 20)).unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    let e = p.append(&[Record::new("no key")]).unwrap_err();
    assert!(e.to_string().contains("without a key"), "{e}");
    assert!(
        e.to_string().contains("t-0") || e.to_string().contains("\"t\""),
        "{e}"
    );
    assert_eq!(p.log_end_offset(), 0);
}

#[test]
fn a_cleaner_error_is_reported_and_that_partition_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let config = compacted(300).partitions(2);
    {
        let broker = Broker::builder()
            .log_cleaner(false)
            .open(dir.path())
            .unwrap();
        broker.create_topic("t", config).unwrap();
        for part in 0..2 {
            let p = broker.topic("t").unwrap().partition(part).unwrap();
            for i in 0..30 {
                p.append(&[Record::new(format!("{i}")).key(format!("k{}", i % 3))])
                    .unwrap();
            }
        }
        broker.close().unwrap();
    }
    // Damage a record's bytes in partition 0's first segment (covered by the CRC).
    let seg = dir.path().join("t-0").join("00000000000000000000.log");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[70] ^= 0xff;
    std::fs::write(&seg, bytes).unwrap();

    let broker = Broker::builder()
        .log_cleaner(false)
        .open(dir.path())
        .unwrap();
    let report = broker.run_log_cleaner().unwrap();
    assert_eq!(report.partitions_failed, vec![TopicPartition::new("t", 0)]);
    assert_eq!(report.partitions_cleaned, 1);
    let d = broker.describe_topic("t").unwrap();
    let err = d.partitions[0].cleaner_error.clone().unwrap();
    assert!(err.contains("00000000000000000000.log"), "{err}");
    assert_eq!(d.partitions[1].cleaner_error, None);
    assert!(d.partitions[1].last_clean_ms.is_some());
    // Skipped from then on; appends to it still work.
    let p0 = broker.topic("t").unwrap().partition(0).unwrap();
    p0.append(&[Record::new("x").key("k0")]).unwrap();
    let again = broker.run_log_cleaner().unwrap();
    assert!(again.partitions_failed.is_empty(), "{again:?}");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("t-0"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".cleaned"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_full_offset_map_cleans_a_prefix_and_the_next_pass_the_rest() {
    let clock = ManualClock::new(T0);
    // 1 MiB (the minimum) maps 28,672 keys.
    let broker = Broker::builder()
        .log_cleaner(false)
        .clock(clock.clone())
        .cleaner_dedupe_buffer_size(1 << 20)
        .open_temporary()
        .unwrap();
    broker
        .create_topic("t", compacted(256 * 1024).min_cleanable_dirty_ratio(0.01))
        .unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    for round in 0..2 {
        for chunk in 0..40 {
            let batch: Vec<Record> = (0..1_000)
                .map(|i| Record::new(format!("r{round}")).key(format!("key-{}", chunk * 1_000 + i)))
                .collect();
            p.append(&batch).unwrap();
        }
    }
    p.append(&filler(0, 20_000)).unwrap();
    let expected = latest(&read_all(&p));
    let mut passes = 0;
    let mut removed = 0;
    while broker.describe_topic("t").unwrap().partitions[0].dirty_bytes > 0 || passes == 0 {
        removed += clean(&broker).records_removed;
        passes += 1;
        assert!(passes <= 10, "no progress");
    }
    // 60,000 distinct keys do not fit one map: more than one pass.
    assert!(passes >= 2, "{passes}");
    let after = read_all(&p);
    assert_eq!(latest(&after), expected);
    assert_eq!(removed, 40_000);
    assert!(after.iter().all(|r| r.value.as_deref() != Some(b"r0")));
}

#[test]
fn a_group_committing_many_times_keeps_a_small_offsets_log() {
    let broker = Broker::builder()
        .cleaner_backoff(Duration::from_millis(20))
        .open_temporary()
        .unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    let mut c = broker
        .consumer(ConsumerConfig::default().group_id("busy"))
        .unwrap();
    let tp = TopicPartition::new("t", 0);
    c.assign(std::slice::from_ref(&tp)).unwrap();
    let commits = if std::env::var_os("EMBROKER_LONG").is_some() {
        1_000_000
    } else {
        100_000
    };
    let mut largest = 0;
    for i in 0..commits {
        // Not fsynced: this is about compaction, and 100,000 fsyncs would take minutes.
        c.commit_offsets_async(
            &BTreeMap::from([(tp.clone(), OffsetAndMetadata::new(i))]),
            |_, r| r.unwrap(),
        )
        .unwrap();
        if i % 10_000 == 0 {
            // Runs the callbacks (nothing to commit: no positions).
            c.commit_sync().unwrap();
            let d = broker.describe_topic("__consumer_offsets").unwrap();
            largest = largest.max(d.partitions.iter().map(|p| p.size_bytes).sum::<u64>());
        }
    }
    // One commit record is ~100 bytes: 100,000 of them would be ~10 MB uncompacted. The
    // cleaner thread keeps up within a few segments of 1 MiB while commits pour in, and once
    // they stop, only the active segment and one cleaned record remain.
    let size = || {
        let d = broker.describe_topic("__consumer_offsets").unwrap();
        d.partitions.iter().map(|p| p.size_bytes).sum::<u64>()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while size() > 2 << 20 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let settled = size();
    eprintln!(
        "{commits} commits: offsets log at most {largest} bytes while committing, {settled} after"
    );
    // A burst of commits (release: ~700,000/s) outruns a cleaner round now and then, but the
    // log stays a fraction of its uncompacted ~100 bytes per commit.
    assert!(largest < 64 << 20, "offsets log reached {largest} bytes");
    assert!(settled <= 2 << 20, "offsets log stayed at {settled} bytes");
    assert_eq!(
        c.committed(&tp).unwrap().map(|o| o.offset),
        Some(commits - 1)
    );
}

#[test]
fn a_read_taken_before_a_swap_stays_valid_after_it() {
    let clock = ManualClock::new(T0);
    let broker = broker(&clock);
    broker.create_topic("t", compacted(512)).unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    for i in 0..200 {
        p.append(&[Record::new(format!("value-{i}")).key(format!("k{}", i % 4))])
            .unwrap();
    }
    // Held across the swap: shares the old segment's map and open file.
    let before = p.read(0, 1 << 20).unwrap();
    let expected: Vec<(i64, Vec<u8>)> = before
        .iter()
        .map(|r| (r.offset, r.value.unwrap().to_vec()))
        .collect();
    assert!(clean(&broker).segments_replaced > 0);
    let again: Vec<(i64, Vec<u8>)> = before
        .iter()
        .map(|r| (r.offset, r.value.unwrap().to_vec()))
        .collect();
    assert_eq!(again, expected);
    // New reads see the cleaned log.
    assert!(read_all(&p).len() < 200);
}

#[test]
fn the_io_throttle_paces_a_pass() {
    let clock = ManualClock::new(T0);
    let rate = 4_000_000.0;
    let broker = Broker::builder()
        .log_cleaner(false)
        .clock(clock.clone())
        .cleaner_io_max_bytes_per_second(rate)
        .open_temporary()
        .unwrap();
    broker.create_topic("t", compacted(64 * 1024)).unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    let batch: Vec<Record> = (0..1_000)
        .map(|i| Record::new(vec![b'v'; 100]).key(format!("k{}", i % 10)))
        .collect();
    for _ in 0..10 {
        p.append(&batch).unwrap();
    }
    broker.flush().unwrap();
    let started = std::time::Instant::now();
    let report = broker.run_log_cleaner().unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    let moved = (report.bytes_read + report.bytes_written) as f64;
    // The throttle counts what was read and written; the pass cannot beat the rate.
    assert!(moved > 1_000_000.0, "{report:?}");
    assert!(
        elapsed >= moved / rate * 0.9,
        "{moved} bytes in {elapsed} s"
    );
}

#[test]
fn the_cleaner_thread_starts_with_the_first_compacted_topic() {
    let broker = Broker::builder()
        .cleaner_backoff(Duration::from_millis(10))
        .open_temporary()
        .unwrap();
    broker
        .create_topic("plain", TopicConfig::default().segment_bytes(512))
        .unwrap();
    broker.create_topic("made", compacted(512)).unwrap();
    for topic in ["plain", "made"] {
        let p = broker.topic(topic).unwrap().partition(0).unwrap();
        for i in 0..50 {
            p.append(&[Record::new(format!("{i}")).key(format!("k{}", i % 3))])
                .unwrap();
        }
    }
    // Altering a topic to compact also gets it cleaned.
    broker
        .alter_topic_config("plain", &[("cleanup.policy", "compact")])
        .unwrap();
    broker.flush().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    for topic in ["made", "plain"] {
        while broker.describe_topic(topic).unwrap().partitions[0]
            .last_clean_ms
            .is_none()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{topic} never cleaned"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
