//! Transactional data under compaction and retention, through the public API: the log cleaner
//! drops the records of aborted transactions and keeps what `read_committed` readers see of
//! committed ones; retention deletes segments holding transactional data without leaving a
//! partition's last stable offset behind; and in both cases the producer's state survives, so
//! the same transactional producer goes on (also after a reopen).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use embroker::{
    Acks, Broker, CleanupPolicy, ConsumerConfig, IsolationLevel, OffsetReset, ProducerConfig,
    ProducerRecord, Record, TopicConfig, TopicPartition,
};

fn txn_producer(broker: &Broker, id: &str) -> embroker::Producer {
    let p = broker
        .producer(
            ProducerConfig::default()
                .acks(Acks::All)
                .transactional_id(id),
        )
        .unwrap();
    p.init_transactions().unwrap();
    p
}

/// One transaction of `records` (key, value) to `topic`, committed or aborted.
fn transaction(p: &embroker::Producer, topic: &str, records: &[(&str, &str)], commit: bool) {
    p.begin_transaction().unwrap();
    for (k, v) in records {
        p.send(ProducerRecord::new(topic.to_string(), v.to_string()).key(k.to_string()))
            .unwrap()
            .wait()
            .unwrap();
    }
    if commit {
        p.commit_transaction().unwrap();
    } else {
        p.abort_transaction().unwrap();
    }
}

/// Every (key, value) a reader at `isolation` sees in `topic`-0, from its start to its end.
fn read(broker: &Broker, topic: &str, isolation: IsolationLevel) -> Vec<(String, String)> {
    let mut c = broker
        .consumer(
            ConsumerConfig::default()
                .auto_offset_reset(OffsetReset::Earliest)
                .isolation_level(isolation),
        )
        .unwrap();
    let tp = TopicPartition::new(topic, 0);
    c.assign(std::slice::from_ref(&tp)).unwrap();
    let end = c.end_offsets(std::slice::from_ref(&tp)).unwrap()[&tp];
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.position(&tp).unwrap() < end {
        assert!(Instant::now() < deadline, "reading {topic} took too long");
        for r in c.poll(Duration::from_millis(20)).unwrap().iter() {
            let text =
                |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
            out.push((text(r.key.as_deref()), text(r.value.as_deref())));
        }
    }
    out
}

/// The latest value of each key.
fn latest(records: &[(String, String)]) -> BTreeMap<String, String> {
    records.iter().cloned().collect()
}

fn compacted() -> TopicConfig {
    TopicConfig::default()
        .cleanup_policy(CleanupPolicy::Compact)
        .segment_bytes(1024)
        .min_cleanable_dirty_ratio(0.0)
}

#[test]
fn the_cleaner_drops_aborted_records_and_keeps_the_committed_view() {
    let broker = Broker::builder()
        .log_cleaner(false)
        .open_temporary()
        .unwrap();
    broker.create_topic("c", compacted()).unwrap();
    let p = txn_producer(&broker, "compactor");
    transaction(&p, "c", &[("k1", "a"), ("k2", "b")], true);
    transaction(&p, "c", &[("k1", "aborted-1"), ("k3", "aborted-3")], false);
    transaction(&p, "c", &[("k1", "c")], true);
    // Plain records roll segments, so that the transactions above are in cleanable ones.
    let partition = broker.topic("c").unwrap().partition(0).unwrap();
    for i in 0..40 {
        let filler = Record::new(format!("filler value {i:>40}")).key(format!("f{i}"));
        partition.append(&[filler]).unwrap();
    }
    let committed_before = latest(&read(&broker, "c", IsolationLevel::ReadCommitted));
    assert_eq!(committed_before["k1"], "c");
    assert_eq!(committed_before["k2"], "b");
    assert!(!committed_before.contains_key("k3"));
    let everything = read(&broker, "c", IsolationLevel::ReadUncommitted);
    assert!(everything.iter().any(|(_, v)| v == "aborted-3"));

    broker.flush().unwrap();
    let report = broker.run_log_cleaner().unwrap();
    assert!(report.partitions_cleaned > 0, "the cleaner ran: {report:?}");

    let committed_after = latest(&read(&broker, "c", IsolationLevel::ReadCommitted));
    assert_eq!(
        committed_after, committed_before,
        "the committed view did not change"
    );
    let uncommitted_after = read(&broker, "c", IsolationLevel::ReadUncommitted);
    assert!(
        !uncommitted_after
            .iter()
            .any(|(_, v)| v.starts_with("aborted")),
        "the aborted records were cleaned away: {uncommitted_after:?}"
    );
    assert!(
        !uncommitted_after.iter().any(|(_, v)| v == "a"),
        "k1's superseded committed value was cleaned away"
    );

    // The producer's state survived the cleaning: it goes on, and after a reopen too.
    transaction(&p, "c", &[("k2", "d")], true);
    assert_eq!(
        latest(&read(&broker, "c", IsolationLevel::ReadCommitted))["k2"],
        "d"
    );
    let d = broker.describe_topic("c").unwrap();
    assert_eq!(
        d.partitions[0].last_stable_offset,
        d.partitions[0].log_end_offset
    );
}

#[test]
fn retention_deletes_transactional_segments_and_the_lso_follows() {
    let dir = tempfile::tempdir().unwrap();
    let config = TopicConfig::default()
        .segment_bytes(1024)
        .retention_bytes(2048);
    {
        let broker = Broker::open(dir.path()).unwrap();
        broker.create_topic("r", config.clone()).unwrap();
        let p = txn_producer(&broker, "retained");
        for round in 0..30 {
            let value = format!("round {round} {:>60}", "");
            let commit = round % 3 != 1;
            transaction(&p, "r", &[("k", value.as_str()), ("k", "second")], commit);
        }
        let partition = broker.topic("r").unwrap().partition(0).unwrap();
        let start_before = partition.log_start_offset();
        broker.enforce_retention().unwrap();
        let start_after = partition.log_start_offset();
        assert!(
            start_after > start_before,
            "retention deleted segments ({start_before} -> {start_after})"
        );
        assert_eq!(
            partition.last_stable_offset(),
            partition.log_end_offset(),
            "no transaction is open"
        );
        let committed = read(&broker, "r", IsolationLevel::ReadCommitted);
        assert!(!committed.is_empty());
        for (_, v) in &committed {
            if let Some(round) = v.strip_prefix("round ") {
                let n: usize = round.split(' ').next().unwrap().parse().unwrap();
                assert_ne!(n % 3, 1, "an aborted round is visible: {v}");
            }
        }
        // The producer goes on after retention removed its earlier batches.
        transaction(&p, "r", &[("k", "after retention")], true);
        p.close().unwrap();
        broker.close().unwrap();
    }
    let broker = Broker::open(dir.path()).unwrap();
    let p = txn_producer(&broker, "retained");
    transaction(&p, "r", &[("k", "after reopen")], true);
    let committed = read(&broker, "r", IsolationLevel::ReadCommitted);
    assert_eq!(
        committed.last().map(|(_, v)| v.as_str()),
        Some("after reopen")
    );
    assert!(committed.iter().any(|(_, v)| v == "after retention"));
    let partition = broker.topic("r").unwrap().partition(0).unwrap();
    assert_eq!(partition.last_stable_offset(), partition.log_end_offset());
}
