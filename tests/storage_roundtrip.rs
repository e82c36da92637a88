//! Appends, reads and reopens through the public API: what goes in comes back out, at the same
//! offsets, after a clean close and reopen, across many segments.

mod common;

use std::time::Duration;

use common::{numbered, read_all, values};
use embroker::{Broker, Error, Record, TimestampType, TopicConfig};

#[test]
fn reopen_after_clean_close_returns_identical_records() {
    let dir = tempfile::tempdir().unwrap();
    let before;
    {
        let broker = Broker::open(dir.path()).unwrap();
        broker
            .create_topic("orders", TopicConfig::default().partitions(3))
            .unwrap();
        for p in 0..3 {
            let part = broker.topic("orders").unwrap().partition(p).unwrap();
            for chunk in 0..10 {
                part.append(&numbered(chunk * 10, 10)).unwrap();
            }
        }
        let part = broker.topic("orders").unwrap().partition(1).unwrap();
        before = read_all(&part, 0);
        assert_eq!(before.len(), 100);
        broker.close().unwrap();
    }
    let broker = Broker::open(dir.path()).unwrap();
    assert_eq!(broker.topics(), vec!["orders".to_string()]);
    let part = broker.topic("orders").unwrap().partition(1).unwrap();
    assert_eq!(part.log_end_offset(), 100);
    let after = read_all(&part, 0);
    assert_eq!(before, after);
    for (i, r) in after.iter().enumerate() {
        assert_eq!(r.offset, i as i64);
        assert_eq!(r.key.as_deref(), Some(format!("k{i}").as_bytes()));
    }
    // Appends continue at the old end.
    assert_eq!(part.append(&numbered(100, 1)).unwrap(), 100);
}

#[test]
fn index_lookups_on_a_log_of_many_segments() {
    let dir = tempfile::tempdir().unwrap();
    let check = |p: &embroker::Partition| {
        for from in [0i64, 1, 37, 255, 256, 999, 1000, 1500, 1998, 1999] {
            let r = p.read(from, 100).unwrap();
            let first = r.iter().next().unwrap();
            assert_eq!(first.offset, from);
            assert_eq!(first.value.unwrap(), format!("value-{from:05}").as_bytes());
        }
        assert!(p.read(2000, 100).unwrap().is_empty());
        let e = p.read(2001, 100).unwrap_err();
        assert!(
            matches!(
                e,
                Error::OffsetOutOfRange {
                    offset: 2001,
                    log_end: 2000,
                    ..
                }
            ),
            "{e}"
        );
    };
    {
        let broker = Broker::open(dir.path()).unwrap();
        let cfg = TopicConfig::default()
            .segment_bytes(4096)
            .index_interval_bytes(256);
        broker.create_topic("t", cfg).unwrap();
        let p = broker.topic("t").unwrap().partition(0).unwrap();
        for i in 0..2000 {
            p.append(&[Record::new(format!("value-{i:05}")).key(format!("{i}"))])
                .unwrap();
        }
        let d = broker.describe_topic("t").unwrap();
        assert!(d.partitions[0].segment_count > 20, "{:?}", d.partitions[0]);
        check(&p);
        broker.close().unwrap();
    }
    // Again with indexes loaded from disk.
    let broker = Broker::open(dir.path()).unwrap();
    check(&broker.topic("t").unwrap().partition(0).unwrap());
    let index_files = std::fs::read_dir(dir.path().join("t-0"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "index")
        })
        .count();
    assert!(
        index_files > 20,
        "every segment has its index on disk: {index_files}"
    );
}

#[test]
fn flush_policies_fsync_by_count_and_by_time() {
    let clock = embroker::ManualClock::new(1_000_000);
    // A persistent broker: a temporary one fsyncs nothing.
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::builder()
        .clock(clock.clone())
        .open(dir.path())
        .unwrap();
    broker
        .create_topic("by-count", TopicConfig::default().flush_messages(3))
        .unwrap();
    let p = broker.topic("by-count").unwrap().partition(0).unwrap();
    let before = p.fsync_count();
    for _ in 0..9 {
        p.append(&[Record::new("x")]).unwrap();
    }
    assert_eq!(p.fsync_count() - before, 3, "one fsync per 3 records");

    broker
        .create_topic("by-time", TopicConfig::default().flush_ms(1000))
        .unwrap();
    let p = broker.topic("by-time").unwrap().partition(0).unwrap();
    p.append(&[Record::new("x")]).unwrap();
    let before = p.fsync_count();
    clock.advance_ms(1500);
    // The background thread checks every 100 ms.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while p.fsync_count() == before {
        assert!(
            std::time::Instant::now() < deadline,
            "flush.ms never fsynced"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn max_bytes_bounds_a_read_but_returns_at_least_one_batch() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    p.append(&[Record::new(vec![7u8; 10_000])]).unwrap();
    p.append(&numbered(0, 100)).unwrap();
    let r = p.read(0, 10).unwrap();
    assert_eq!(r.len(), 1, "one oversized batch");
    let r = p.read(1, 1).unwrap();
    assert_eq!(r.len(), 100, "a whole batch is returned");
    let r = p.read(50, 1 << 20).unwrap();
    assert_eq!(
        r.iter().next().unwrap().offset,
        50,
        "records before the start are skipped"
    );
}

#[test]
fn headers_tombstones_and_timestamps_survive() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    p.append(&[
        Record::new("v")
            .key("k")
            .header("h1", "x")
            .header("h2", "")
            .timestamp(123),
        Record::tombstone("k").timestamp(456),
    ])
    .unwrap();
    let all = read_all(&p, 0);
    assert_eq!(all[0].headers.len(), 2);
    assert_eq!(all[0].headers[0].key, "h1");
    assert_eq!(all[0].timestamp, 123);
    assert_eq!(all[0].timestamp_type, TimestampType::CreateTime);
    assert!(all[1].value.is_none());
    assert_eq!(all[1].timestamp, 456);
}

#[test]
fn log_append_time_overrides_producer_timestamps() {
    let broker = Broker::temporary().unwrap();
    broker
        .create_topic(
            "t",
            TopicConfig::default().timestamp_type(TimestampType::LogAppendTime),
        )
        .unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    p.append(&[Record::new("a").timestamp(1)]).unwrap();
    let r = &read_all(&p, 0)[0];
    assert_eq!(r.timestamp_type, TimestampType::LogAppendTime);
    assert!(r.timestamp > 1_600_000_000_000, "{}", r.timestamp);
}

#[test]
fn offset_for_timestamp_finds_the_earliest_at_or_after() {
    let broker = Broker::temporary().unwrap();
    broker
        .create_topic(
            "t",
            // Timestamps of 1970 would be past `retention.ms`: keep everything.
            TopicConfig::default()
                .segment_bytes(1024)
                .index_interval_bytes(100)
                .retention_ms(-1),
        )
        .unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    for i in 0..500i64 {
        p.append(&[Record::new(format!("{i}")).timestamp(10_000 + i * 10)])
            .unwrap();
    }
    for (ts, want) in [
        (0, Some(0)),
        (10_000, Some(0)),
        (10_001, Some(1)),
        (12_345, Some(235)),
        (14_990, Some(499)),
    ] {
        assert_eq!(
            p.offset_for_timestamp(ts).unwrap().map(|o| o.offset),
            want,
            "ts {ts}"
        );
    }
    assert_eq!(p.offset_for_timestamp(14_991).unwrap(), None);
    assert!(p.offset_for_timestamp(-1).is_err());
}

#[test]
fn waiting_for_data_is_woken_by_the_append() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    assert!(!p.wait_for_end_offset_past(0, Duration::from_millis(20)));
    let writer = p.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        writer.append(&numbered(0, 1)).unwrap();
    });
    let start = std::time::Instant::now();
    assert!(p.wait_for_end_offset_past(0, Duration::from_secs(30)));
    assert!(start.elapsed() < Duration::from_secs(10));
    t.join().unwrap();
    assert_eq!(values(&read_all(&p, 0)), ["v0"]);
}

#[test]
fn concurrent_appenders_and_readers_on_many_partitions() {
    let broker = Broker::temporary().unwrap();
    broker
        .create_topic(
            "t",
            TopicConfig::default()
                .partitions(4)
                .segment_bytes(64 * 1024),
        )
        .unwrap();
    let mut threads = Vec::new();
    for p in 0..4 {
        for w in 0..2 {
            let part = broker.topic("t").unwrap().partition(p).unwrap();
            threads.push(std::thread::spawn(move || {
                for i in 0..500 {
                    part.append(&[Record::new(format!("{w}-{i}"))]).unwrap();
                }
            }));
        }
        let part = broker.topic("t").unwrap().partition(p).unwrap();
        threads.push(std::thread::spawn(move || {
            let mut at = 0;
            let mut seen = 0;
            while seen < 1000 {
                part.wait_for_end_offset_past(at, Duration::from_secs(10));
                let r = part.read(at, 4096).unwrap();
                for rec in r.iter() {
                    assert_eq!(rec.offset, at, "contiguous offsets");
                    at += 1;
                    seen += 1;
                }
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    for p in 0..4 {
        assert_eq!(
            broker
                .topic("t")
                .unwrap()
                .partition(p)
                .unwrap()
                .log_end_offset(),
            1000
        );
    }
}
