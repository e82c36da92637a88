//! Committed offsets: explicit and automatic commits, metadata, async callbacks, persistence
//! across a restart of the broker (through `__consumer_offsets`), and the simple-consumer rule.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use embroker::{
    Broker, ConsumerConfig, Error, ManualClock, OffsetAndMetadata, OffsetReset, Record,
    TopicConfig, TopicPartition,
};

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new("t", p)
}

fn fill(broker: &Broker, n: usize) {
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    for i in 0..n {
        p.append(&[Record::new(format!("v{i}"))]).unwrap();
    }
}

fn config() -> ConsumerConfig {
    ConsumerConfig::default()
        .group_id("g")
        .auto_offset_reset(OffsetReset::Earliest)
        .enable_auto_commit(false)
}

#[test]
fn commit_sync_commits_the_next_offset_to_read() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    fill(&broker, 5);
    let mut c = broker.consumer(config().max_poll_records(3)).unwrap();
    c.assign(&[tp(0)]).unwrap();
    assert_eq!(c.committed(&tp(0)).unwrap(), None);
    let r = c.poll(Duration::from_secs(1)).unwrap();
    assert_eq!(r.count(), 3);
    c.commit_sync().unwrap();
    assert_eq!(
        c.committed(&tp(0)).unwrap(),
        Some(OffsetAndMetadata::new(3))
    );
    let meta = BTreeMap::from([(tp(0), OffsetAndMetadata::new(4).metadata("worker-7"))]);
    c.commit_offsets_sync(&meta).unwrap();
    assert_eq!(c.committed(&tp(0)).unwrap().unwrap().metadata, "worker-7");
    // A new consumer of the group starts at the committed offset.
    drop(c);
    let mut d = broker.consumer(config()).unwrap();
    d.assign(&[tp(0)]).unwrap();
    let r = d.poll(Duration::from_secs(1)).unwrap();
    assert_eq!(r.iter().map(|r| r.offset).collect::<Vec<_>>(), [4]);
    // Too much metadata and negative offsets are refused.
    let big = BTreeMap::from([(tp(0), OffsetAndMetadata::new(1).metadata("x".repeat(5000)))]);
    assert!(d.commit_offsets_sync(&big).is_err());
    let neg = BTreeMap::from([(tp(0), OffsetAndMetadata::new(-1))]);
    assert!(d.commit_offsets_sync(&neg).is_err());
}

#[test]
fn commit_needs_a_group_id() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    let mut c = broker.consumer(ConsumerConfig::default()).unwrap();
    c.assign(&[tp(0)]).unwrap();
    assert!(matches!(c.commit_sync(), Err(Error::IllegalState { .. })));
    assert!(c.committed(&tp(0)).is_err());
}

#[test]
fn commit_async_runs_its_callback_at_the_next_poll() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    fill(&broker, 2);
    let mut c = broker.consumer(config()).unwrap();
    c.assign(&[tp(0)]).unwrap();
    c.poll(Duration::from_secs(1)).unwrap();
    let got = Arc::new(Mutex::new(None));
    let g2 = got.clone();
    c.commit_async(move |offsets, result| {
        *g2.lock().unwrap() = Some((offsets.clone(), result.is_ok()));
    })
    .unwrap();
    assert!(
        got.lock().unwrap().is_none(),
        "callbacks run later, on poll"
    );
    c.poll(Duration::ZERO).unwrap();
    let (offsets, ok) = got.lock().unwrap().clone().unwrap();
    assert!(ok);
    assert_eq!(offsets[&tp(0)].offset, 2);
}

#[test]
fn auto_commit_happens_inside_poll_after_the_interval_and_on_close() {
    let clock = ManualClock::new(0);
    let broker = Broker::builder()
        .clock(clock.clone())
        .open_temporary()
        .unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    fill(&broker, 10);
    let cfg = config()
        .enable_auto_commit(true)
        .auto_commit_interval_ms(1_000)
        .max_poll_records(4);
    let mut c = broker.consumer(cfg.clone()).unwrap();
    c.assign(&[tp(0)]).unwrap();
    c.poll(Duration::from_secs(1)).unwrap(); // returns 0..4
    c.poll(Duration::from_secs(1)).unwrap(); // returns 4..8, interval not passed
    assert_eq!(c.committed(&tp(0)).unwrap(), None);
    clock.advance_ms(1_000);
    // This poll commits what earlier polls returned (8), then returns 8..10.
    let r = c.poll(Duration::from_secs(1)).unwrap();
    assert_eq!(r.count(), 2);
    assert_eq!(c.committed(&tp(0)).unwrap().map(|o| o.offset), Some(8));
    c.close().unwrap();
    let probe = broker.consumer(cfg).unwrap();
    assert_eq!(probe.committed(&tp(0)).unwrap().map(|o| o.offset), Some(10));
}

#[test]
fn committed_offsets_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = Broker::open(dir.path()).unwrap();
        broker
            .create_topic("t", TopicConfig::default().partitions(2))
            .unwrap();
        let mut c = broker.consumer(config()).unwrap();
        c.assign(&[tp(0), tp(1)]).unwrap();
        let offsets = BTreeMap::from([
            (tp(0), OffsetAndMetadata::new(1)),
            (tp(1), OffsetAndMetadata::new(2).metadata("m")),
        ]);
        c.commit_offsets_sync(&offsets).unwrap();
        c.commit_offsets_sync(&BTreeMap::from([(tp(0), OffsetAndMetadata::new(5))]))
            .unwrap();
        let mut other = broker
            .consumer(ConsumerConfig::default().group_id("other"))
            .unwrap();
        other.assign(&[tp(0)]).unwrap();
        other
            .commit_offsets_sync(&BTreeMap::from([(tp(0), OffsetAndMetadata::new(9))]))
            .unwrap();
        // A consumer in assign mode is not a member: the group can be deleted (tombstones).
        broker.delete_group("other").unwrap();
        drop(other);
        drop(c);
        broker.close().unwrap();
    }
    let broker = Broker::open(dir.path()).unwrap();
    assert!(!broker.topics().contains(&"__consumer_offsets".to_string()));
    let c = broker.consumer(config()).unwrap();
    assert_eq!(
        c.committed(&tp(0)).unwrap(),
        Some(OffsetAndMetadata::new(5))
    );
    assert_eq!(
        c.committed(&tp(1)).unwrap(),
        Some(OffsetAndMetadata::new(2).metadata("m"))
    );
    let groups: Vec<String> = broker
        .list_groups()
        .unwrap()
        .into_iter()
        .map(|g| g.group_id)
        .collect();
    assert_eq!(groups, ["g"]);
}

#[test]
fn a_consumer_without_membership_cannot_commit_while_the_group_has_members() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    let mut member = broker.consumer(config()).unwrap();
    member.subscribe(&["t"]).unwrap();
    member.poll(Duration::ZERO).unwrap();
    let mut simple = broker.consumer(config()).unwrap();
    simple.assign(&[tp(0)]).unwrap();
    let offsets = BTreeMap::from([(tp(0), OffsetAndMetadata::new(0))]);
    assert!(matches!(
        simple.commit_offsets_sync(&offsets),
        Err(Error::CommitFailed { .. })
    ));
    member.close().unwrap();
    simple.commit_offsets_sync(&offsets).unwrap();
}

/// Kafka's close logs a failed auto-commit and still leaves the group
/// (`ConsumerCoordinator.maybeAutoCommitOffsetsSync`); so does ours.
#[test]
fn close_succeeds_when_its_auto_commit_is_refused() {
    let clock = ManualClock::new(1_700_000_000_000);
    let broker = Broker::builder()
        .clock(clock.clone())
        .open_temporary()
        .unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    fill(&broker, 5);
    let cfg = config().enable_auto_commit(true);
    let mut a = broker.consumer(cfg.clone()).unwrap();
    a.subscribe(&["t"]).unwrap();
    assert_eq!(a.poll(Duration::from_secs(1)).unwrap().count(), 5);
    // `a` stops polling past max.poll.interval.ms; a second member's poll expels it and takes
    // the partition, so `a`'s generation is stale and its commit on close is refused.
    clock.advance_ms(300_001);
    let mut b = broker.consumer(cfg).unwrap();
    b.subscribe(&["t"]).unwrap();
    let _ = b.poll(Duration::from_millis(200)).unwrap();
    assert!(b.assignment().contains(&tp(0)));
    let refused = a.commit_sync();
    assert!(
        matches!(refused, Err(Error::CommitFailed { .. })),
        "{refused:?}"
    );
    a.close().unwrap();
}
