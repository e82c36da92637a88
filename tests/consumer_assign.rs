//! The partition model: `assign`, seeks (lazy ones too), positions, `poll` limits and
//! fairness, pause/resume, offset look-ups, wakeup, and the mode errors.

// Setup helpers panic on failure: in a test that is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use embroker::{Broker, ConsumerConfig, Error, OffsetReset, Record, TopicConfig, TopicPartition};

fn setup(partitions: i32) -> Broker {
    let broker = Broker::temporary().unwrap();
    broker
        .create_topic("t", TopicConfig::default().partitions(partitions))
        .unwrap();
    broker
}

fn append(broker: &Broker, p: i32, start: usize, n: usize) {
    let part = broker.topic("t").unwrap().partition(p).unwrap();
    part.append(&common::numbered(start, n)).unwrap();
}

fn earliest() -> ConsumerConfig {
    ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest)
}

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new("t", p)
}

#[test]
fn assign_reads_everything_in_offset_order_and_position_follows() {
    let broker = setup(1);
    append(&broker, 0, 0, 10);
    let mut c = broker.consumer(earliest()).unwrap();
    c.assign(&[tp(0)]).unwrap();
    assert_eq!(c.position(&tp(0)).unwrap(), 0);
    let records = c.poll(Duration::from_secs(1)).unwrap();
    assert_eq!(records.count(), 10);
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (0..10).collect::<Vec<_>>());
    let first = records.records(&tp(0))[0].clone();
    assert_eq!(first.topic, "t");
    assert_eq!(first.key.as_deref(), Some(&b"k0"[..]));
    assert_eq!(first.value.as_deref(), Some(&b"v0"[..]));
    assert_eq!(c.position(&tp(0)).unwrap(), 10);
    assert!(c.poll(Duration::from_millis(10)).unwrap().is_empty());
}

#[test]
fn latest_reset_skips_old_records() {
    let broker = setup(1);
    append(&broker, 0, 0, 5);
    let mut c = broker.consumer(ConsumerConfig::default()).unwrap();
    c.assign(&[tp(0)]).unwrap();
    assert!(c.poll(Duration::from_millis(10)).unwrap().is_empty());
    append(&broker, 0, 5, 1);
    let r = c.poll(Duration::from_secs(1)).unwrap();
    assert_eq!(r.iter().map(|r| r.offset).collect::<Vec<_>>(), [5]);
}

#[test]
fn seek_and_lazy_seeks() {
    let broker = setup(1);
    append(&broker, 0, 0, 10);
    let mut c = broker.consumer(earliest()).unwrap();
    c.assign(&[tp(0)]).unwrap();
    c.seek(&tp(0), 7).unwrap();
    let r = c.poll(Duration::from_secs(1)).unwrap();
    assert_eq!(r.iter().map(|r| r.offset).collect::<Vec<_>>(), [7, 8, 9]);
    // seek_to_end is lazy: records appended before the next poll/position are skipped too.
    c.seek(&tp(0), 0).unwrap();
    c.seek_to_end(&[]).unwrap();
    append(&broker, 0, 10, 2);
    assert_eq!(c.position(&tp(0)).unwrap(), 12);
    c.seek_to_beginning(&[tp(0)]).unwrap();
    let r = c.poll(Duration::from_secs(1)).unwrap();
    assert_eq!(r.iter().next().map(|r| r.offset), Some(0));
    assert!(matches!(c.seek(&tp(1), 0), Err(Error::IllegalState { .. })));
    assert!(matches!(
        c.seek(&tp(0), -1),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        c.position(&TopicPartition::new("t", 5)),
        Err(Error::IllegalState { .. })
    ));
}

#[test]
fn max_poll_records_and_round_robin_fairness() {
    let broker = setup(3);
    append(&broker, 0, 0, 1000);
    append(&broker, 1, 0, 5);
    append(&broker, 2, 0, 5);
    let mut c = broker.consumer(earliest().max_poll_records(100)).unwrap();
    c.assign(&[tp(0), tp(1), tp(2)]).unwrap();
    let mut seen = BTreeMap::<i32, usize>::new();
    for _ in 0..3 {
        let r = c.poll(Duration::from_secs(1)).unwrap();
        assert!(r.count() <= 100);
        for rec in &r {
            *seen.entry(rec.partition).or_default() += 1;
        }
    }
    // Within three polls the quiet partitions were served despite the busy one.
    assert_eq!(seen.get(&1), Some(&5));
    assert_eq!(seen.get(&2), Some(&5));
    // Everything arrives, each partition in order, nothing twice.
    let mut next = BTreeMap::from([(0, seen[&0] as i64), (1, 5), (2, 5)]);
    loop {
        let r = c.poll(Duration::from_millis(20)).unwrap();
        if r.is_empty() {
            break;
        }
        for rec in &r {
            let n = next.get_mut(&rec.partition).unwrap();
            assert_eq!(rec.offset, *n);
            *n += 1;
        }
    }
    assert_eq!(next[&0], 1000);
}

#[test]
fn pause_and_resume() {
    let broker = setup(2);
    append(&broker, 0, 0, 3);
    append(&broker, 1, 0, 3);
    let mut c = broker.consumer(earliest()).unwrap();
    c.assign(&[tp(0), tp(1)]).unwrap();
    c.pause(&[tp(1)]).unwrap();
    assert_eq!(c.paused(), [tp(1)]);
    let r = c.poll(Duration::from_millis(50)).unwrap();
    assert_eq!(r.partitions(), [tp(0)]);
    assert!(c.poll(Duration::from_millis(10)).unwrap().is_empty());
    c.resume(&[tp(1)]).unwrap();
    assert!(c.paused().is_empty());
    let r = c.poll(Duration::from_millis(50)).unwrap();
    assert_eq!(r.partitions(), [tp(1)]);
    assert_eq!(r.records(&tp(1)).len(), 3);
}

#[test]
fn offsets_lookups_do_not_move_positions() {
    let broker = setup(1);
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    p.append(&[Record::new("a").timestamp(1_000)]).unwrap();
    p.append(&[Record::new("b").timestamp(2_000)]).unwrap();
    let mut c = broker.consumer(earliest()).unwrap();
    c.assign(&[tp(0)]).unwrap();
    assert_eq!(c.end_offsets(&[tp(0)]).unwrap()[&tp(0)], 2);
    assert_eq!(c.beginning_offsets(&[tp(0)]).unwrap()[&tp(0)], 0);
    let found = c
        .offsets_for_times(&BTreeMap::from([(tp(0), 1_500)]))
        .unwrap();
    assert_eq!(
        found[&tp(0)].map(|o| (o.offset, o.timestamp)),
        Some((1, 2_000))
    );
    let none = c
        .offsets_for_times(&BTreeMap::from([(tp(0), 9_000)]))
        .unwrap();
    assert_eq!(none[&tp(0)], None);
    assert!(c.offsets_for_times(&BTreeMap::from([(tp(0), -1)])).is_err());
    assert_eq!(c.position(&tp(0)).unwrap(), 0);
}

#[test]
fn poll_is_woken_by_an_append() {
    let broker = setup(1);
    let mut c = broker.consumer(ConsumerConfig::default()).unwrap();
    c.assign(&[tp(0)]).unwrap();
    assert_eq!(c.position(&tp(0)).unwrap(), 0);
    let b2 = broker.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        append(&b2, 0, 0, 1);
    });
    let start = Instant::now();
    let r = c.poll(Duration::from_secs(20)).unwrap();
    assert_eq!(r.count(), 1);
    assert!(start.elapsed() < Duration::from_secs(5));
    t.join().unwrap();
}

#[test]
fn wakeup_interrupts_a_blocked_poll_once() {
    let broker = setup(1);
    let mut c = broker.consumer(ConsumerConfig::default()).unwrap();
    c.assign(&[tp(0)]).unwrap();
    let h = c.wakeup_handle();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        h.wakeup();
    });
    assert!(matches!(
        c.poll(Duration::from_secs(20)),
        Err(Error::Wakeup)
    ));
    t.join().unwrap();
    // Only once: the next poll is normal.
    assert!(c.poll(Duration::from_millis(5)).unwrap().is_empty());
    // A wakeup before the poll makes the next poll return it.
    c.wakeup_handle().wakeup();
    assert!(matches!(c.poll(Duration::from_secs(1)), Err(Error::Wakeup)));
}

#[test]
fn mode_errors() {
    let broker = setup(1);
    let mut c = broker
        .consumer(ConsumerConfig::default().group_id("g"))
        .unwrap();
    assert!(matches!(
        c.poll(Duration::from_millis(1)),
        Err(Error::IllegalState { .. })
    ));
    c.assign(&[tp(0)]).unwrap();
    assert!(matches!(
        c.subscribe(&["t"]),
        Err(Error::IllegalState { .. })
    ));
    c.unsubscribe().unwrap();
    c.subscribe(&["t"]).unwrap();
    assert!(matches!(
        c.assign(&[tp(0)]),
        Err(Error::IllegalState { .. })
    ));
    let mut no_group = broker.consumer(ConsumerConfig::default()).unwrap();
    assert!(no_group.subscribe(&["t"]).is_err());
    assert!(matches!(
        no_group.assign(&[TopicPartition::new("missing", 0)]),
        Err(Error::UnknownTopic { .. })
    ));
}

#[test]
fn reset_none_fails_naming_the_partitions() {
    let broker = setup(2);
    append(&broker, 0, 0, 3);
    let mut c = broker
        .consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::None))
        .unwrap();
    c.assign(&[tp(0), tp(1)]).unwrap();
    match c.poll(Duration::from_millis(10)) {
        Err(Error::NoOffsetForPartition { partitions }) => {
            assert_eq!(partitions, ["t-0", "t-1"]);
        }
        other => panic!("expected NoOffsetForPartition, got {other:?}"),
    }
    c.seek(&tp(0), 50).unwrap();
    c.seek(&tp(1), 0).unwrap();
    match c.poll(Duration::from_millis(10)) {
        Err(Error::OffsetOutOfRange {
            topic,
            partition,
            offset,
            ..
        }) => assert_eq!((topic.as_str(), partition, offset), ("t", 0, 50)),
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }
}

#[test]
fn out_of_range_position_resets_to_earliest_or_latest() {
    let broker = setup(1);
    append(&broker, 0, 0, 4);
    let mut c = broker.consumer(earliest()).unwrap();
    c.assign(&[tp(0)]).unwrap();
    c.seek(&tp(0), 100).unwrap();
    let r = c.poll(Duration::from_secs(1)).unwrap();
    assert_eq!(r.iter().next().map(|r| r.offset), Some(0));
    let mut l = broker.consumer(ConsumerConfig::default()).unwrap();
    l.assign(&[tp(0)]).unwrap();
    l.seek(&tp(0), 100).unwrap();
    assert!(l.poll(Duration::from_millis(10)).unwrap().is_empty());
    assert_eq!(l.position(&tp(0)).unwrap(), 4);
}

/// A consumer's reads continue where its previous read ended (the read hint): across many
/// small reads, segment rolls, seeks back and forward, and appends made between polls, it
/// reads every record once, in order, from wherever it was positioned.
#[test]
fn reads_that_continue_follow_rolls_seeks_and_appends() {
    let broker = Broker::temporary().unwrap();
    // Small segments (rolls every few batches) and small fetches (a read of one or two
    // batches), so most reads continue a previous one.
    broker
        .create_topic("t", TopicConfig::default().segment_bytes(1024))
        .unwrap();
    let part = broker.topic("t").unwrap().partition(0).unwrap();
    for i in 0..60 {
        part.append(&common::numbered(i * 3, 3)).unwrap();
    }
    let mut c = broker
        .consumer(
            earliest()
                .max_poll_records(4)
                .max_partition_fetch_bytes(200),
        )
        .unwrap();
    c.assign(&[tp(0)]).unwrap();
    let read_until = |c: &mut embroker::Consumer, end: i64| -> Vec<i64> {
        let mut got = Vec::new();
        let start = Instant::now();
        while got.last().is_none_or(|&o| o + 1 < end) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "stuck after {got:?}"
            );
            for r in &c.poll(Duration::from_millis(100)).unwrap() {
                assert_eq!(
                    r.value.as_deref(),
                    Some(format!("v{}", r.offset).as_bytes())
                );
                got.push(r.offset);
            }
        }
        got
    };
    assert_eq!(read_until(&mut c, 180), (0..180).collect::<Vec<_>>());
    // Back into an earlier segment, mid-batch.
    c.seek(&tp(0), 31).unwrap();
    assert_eq!(read_until(&mut c, 180), (31..180).collect::<Vec<_>>());
    // Forward past records, then appends arriving between polls.
    c.seek(&tp(0), 170).unwrap();
    assert_eq!(read_until(&mut c, 180), (170..180).collect::<Vec<_>>());
    for i in 60..70 {
        part.append(&common::numbered(i * 3, 3)).unwrap();
        assert_eq!(
            read_until(&mut c, (i * 3 + 3) as i64),
            ((i * 3) as i64..(i * 3 + 3) as i64).collect::<Vec<_>>()
        );
    }
}
