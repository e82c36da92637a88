//! Many partitions of several segments each stay under the broker's budget of open segment
//! files (`BrokerBuilder::open_segment_files_max`), and every record still reads back: each
//! segment's file is opened on first read and closed again under the budget, so a read walks
//! through far more segments than the budget holds, with `RLIMIT_NOFILE` lowered to just above
//! the budget (an open past it would fail the test with EMFILE).
//!
//! CI: 100 partitions of 5 segments under a budget of 40. `EMBROKER_LONG=1`: 10,000 partitions
//! of 10 segments under the default budget (1,000), the figure of issue #20.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_os = "linux")]

use embroker::{Broker, Record, TopicConfig};

const TOPIC: &str = "many";
/// One batch of this many records (about 800 B) fills a 1 KiB segment.
const RECORDS_PER_SEGMENT: usize = 6;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

fn value(p: i32, i: usize) -> String {
    format!("p{p}-r{i}-{}", "v".repeat(100))
}

#[test]
fn many_partitions_stay_under_the_file_budget_and_read_back_whole() {
    let long = std::env::var("EMBROKER_LONG").is_ok_and(|v| v == "1");
    let (partitions, segments, budget) = if long {
        (10_000, 10, 1_000)
    } else {
        (100, 5, 40)
    };
    let records = segments * RECORDS_PER_SEGMENT;
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = Broker::builder()
            .open_segment_files_max(budget)
            .open(dir.path())
            .unwrap();
        broker
            .create_topic(
                TOPIC,
                TopicConfig::default()
                    .partitions(partitions)
                    .segment_bytes(1024),
            )
            .unwrap();
        let topic = broker.topic(TOPIC).unwrap();
        for p in 0..partitions {
            let handle = topic.partition(p).unwrap();
            for chunk in (0..records).collect::<Vec<_>>().chunks(RECORDS_PER_SEGMENT) {
                let batch: Vec<Record> = chunk.iter().map(|&i| Record::new(value(p, i))).collect();
                handle.append(&batch).unwrap();
            }
            // Flushed now and then: written files stay open until synced.
            if p % 32 == 31 {
                broker.flush().unwrap();
            }
        }
        broker.close().unwrap();
    }

    // Just above the budget: the test harness's own descriptors, the directory lock and
    // handle, transient opens of index files and directories.
    let base = open_fds();
    let limit = (base + budget + 48) as u64;
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    rlimit::setrlimit(rlimit::Resource::NOFILE, limit.min(hard), hard).unwrap();

    let broker = Broker::builder()
        .open_segment_files_max(budget)
        .open(dir.path())
        .unwrap();
    let described: usize = broker
        .describe_topic(TOPIC)
        .unwrap()
        .partitions
        .iter()
        .map(|p| p.segment_count)
        .sum();
    assert!(
        described >= partitions as usize * segments,
        "{described} segments for {partitions} partitions"
    );
    let topic = broker.topic(TOPIC).unwrap();
    let mut most = open_fds();
    for p in 0..partitions {
        let handle = topic.partition(p).unwrap();
        let mut at = 0;
        let mut read = 0;
        while at < handle.log_end_offset() {
            let batch = handle.read(at, 1 << 20).unwrap();
            for r in batch.iter() {
                assert_eq!(r.offset, read as i64, "partition {p}");
                assert_eq!(r.value.as_deref(), Some(value(p, read).as_bytes()));
                read += 1;
            }
            at = batch.next_offset();
            most = most.max(open_fds());
        }
        assert_eq!(read, records, "partition {p}");
    }
    // Written partitions keep their files until synced: append to every one, flushing in
    // steps smaller than the budget, still under the lowered limit.
    for p in 0..partitions {
        let handle = topic.partition(p).unwrap();
        handle.append(&[Record::new(value(p, records))]).unwrap();
        if p as usize % (budget / 2) == budget / 2 - 1 {
            broker.flush().unwrap();
        }
        most = most.max(open_fds());
    }
    broker.close().unwrap();
    rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard).unwrap();
    eprintln!(
        "{partitions} partitions, {described} segments, budget {budget}: at most {} descriptors \
         beyond the {base} before the open (limit {limit})",
        most - base
    );
    assert!(
        most <= base + budget + 48,
        "{most} descriptors open, budget {budget} + {base}"
    );

    // And the appends made under the budget are there after a reopen.
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.topic(TOPIC).unwrap();
    for p in [0, partitions / 2, partitions - 1] {
        let handle = topic.partition(p).unwrap();
        assert_eq!(handle.log_end_offset(), records as i64 + 1);
        let last = handle.read(records as i64, 1 << 20).unwrap();
        let last: Vec<_> = last.iter().collect();
        assert_eq!(last[0].value.as_deref(), Some(value(p, records).as_bytes()));
    }
}
