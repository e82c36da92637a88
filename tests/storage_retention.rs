//! Retention through the public API: by time (record timestamps) and by size, whole segments
//! only, the log start offset moving, readers before it getting OffsetOutOfRange, and the
//! active segment rolled first when everything has expired.

mod common;

use std::sync::Arc;

use common::read_all;
use embroker::{Broker, Error, ManualClock, Record, TopicConfig};

const DAY: i64 = 24 * 3600 * 1000;

fn broker_at(now: i64) -> (Broker, Arc<ManualClock>) {
    let clock = ManualClock::new(now);
    let broker = Broker::builder()
        .clock(clock.clone())
        .open_temporary()
        .unwrap();
    (broker, clock)
}

#[test]
fn retention_by_time_deletes_old_segments_and_moves_log_start() {
    let now = 100 * DAY;
    let (broker, _clock) = broker_at(now);
    let cfg = TopicConfig::default().segment_bytes(1000).retention_ms(DAY);
    broker.create_topic("t", cfg).unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    // 30 old records (two days ago), then 30 fresh ones.
    for i in 0..30 {
        p.append(&[Record::new(vec![b'o'; 80]).timestamp(now - 2 * DAY + i)])
            .unwrap();
    }
    for i in 0..30 {
        p.append(&[Record::new(vec![b'n'; 80]).timestamp(now - 1000 + i)])
            .unwrap();
    }
    let segments_before = broker.describe_topic("t").unwrap().partitions[0].segment_count;
    let deleted = broker.enforce_retention().unwrap();
    assert!(deleted > 0);
    let d = &broker.describe_topic("t").unwrap().partitions[0];
    assert_eq!(d.segment_count, segments_before - deleted);
    let start = p.log_start_offset();
    assert!(
        start > 0 && start <= 30,
        "whole segments of old records only: start {start}"
    );
    let e = p.read(0, 1024).unwrap_err();
    assert!(
        matches!(e, Error::OffsetOutOfRange { offset: 0, .. }),
        "{e}"
    );
    let rest = read_all(&p, start);
    assert!(
        rest.iter()
            .filter(|r| r.value.as_deref() == Some(&[b'n'; 80][..]))
            .count()
            == 30
    );
    // Nothing more to delete.
    assert_eq!(broker.enforce_retention().unwrap(), 0);
}

#[test]
fn when_everything_expires_the_log_rolls_and_empties() {
    let now = 100 * DAY;
    let (broker, clock) = broker_at(now);
    broker
        .create_topic("t", TopicConfig::default().retention_ms(1000))
        .unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    for i in 0..10 {
        p.append(&[Record::new("x").timestamp(now + i)]).unwrap();
    }
    clock.advance_ms(10_000);
    assert_eq!(broker.enforce_retention().unwrap(), 1);
    assert_eq!(p.log_start_offset(), 10);
    assert_eq!(p.log_end_offset(), 10);
    assert!(p.read(10, 100).unwrap().is_empty());
    assert_eq!(p.append(&[Record::new("after")]).unwrap(), 10);
    let d = &broker.describe_topic("t").unwrap().partitions[0];
    assert_eq!(d.segment_count, 1);
}

#[test]
fn retention_by_size_never_shrinks_below_the_limit() {
    let (broker, _clock) = broker_at(DAY);
    let cfg = TopicConfig::default()
        .segment_bytes(1000)
        .retention_ms(-1)
        .retention_bytes(3000);
    broker.create_topic("t", cfg).unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    for _ in 0..100 {
        p.append(&[Record::new(vec![0u8; 100])]).unwrap();
    }
    broker.enforce_retention().unwrap();
    let d = &broker.describe_topic("t").unwrap().partitions[0];
    assert!(d.size_bytes >= 3000, "{d:?}");
    assert!(
        d.size_bytes < 3000 + 1000,
        "at most one segment over: {d:?}"
    );
    assert_eq!(
        read_all(&p, p.log_start_offset()).len() as i64,
        100 - p.log_start_offset()
    );
}

#[test]
fn a_reader_in_a_deleted_segment_finishes_safely() {
    let now = 100 * DAY;
    let (broker, clock) = broker_at(now);
    broker
        .create_topic(
            "t",
            TopicConfig::default()
                .segment_bytes(2000)
                .retention_ms(1000),
        )
        .unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    for i in 0..100 {
        p.append(&[Record::new(vec![b'a'; 50]).timestamp(now + i)])
            .unwrap();
    }
    // A read result taken before deletion stays valid after it.
    let held = p.read(0, 1 << 20).unwrap();
    clock.advance_ms(DAY);
    assert!(broker.enforce_retention().unwrap() > 0);
    assert!(held.iter().count() > 0);
    assert!(held
        .iter()
        .all(|r| r.value.as_deref() == Some(&[b'a'; 50][..])));
}

#[test]
fn background_task_runs_retention_on_its_interval() {
    let now = 100 * DAY;
    let clock = ManualClock::new(now);
    let broker = Broker::builder()
        .clock(clock.clone())
        .retention_check_interval(std::time::Duration::from_millis(50))
        .open_temporary()
        .unwrap();
    broker
        .create_topic("t", TopicConfig::default().retention_ms(10))
        .unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    p.append(&[Record::new("x").timestamp(now)]).unwrap();
    clock.advance_ms(1000);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while p.log_start_offset() == 0 {
        assert!(std::time::Instant::now() < deadline, "retention never ran");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(p.log_start_offset(), 1);
}
