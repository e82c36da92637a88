//! The durable commit as a future (`Consumer::commit`, `Consumer::commit_offsets`): on tokio's
//! multi-thread and current-thread runtimes and on `futures::executor`; it completes only
//! after the offsets log was fsynced, the offsets survive a reopen, concurrent commits share
//! the syncer's fsyncs, a dropped future is harmless, and errors (a rebalance in progress, a
//! reassigned partition, a closed broker) arrive through the future.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use common::{manual_commit_config, settle};
use embroker::{
    AssignmentStrategy, Broker, Consumer, Error, OffsetAndMetadata, Partition, Record, TopicConfig,
    TopicPartition,
};

const OFFSETS_TOPIC: &str = "__consumer_offsets";

fn broker_with(partitions: i32, records: usize) -> Broker {
    let broker = Broker::temporary().unwrap();
    fill(&broker, partitions, records);
    broker
}

/// As `broker_with`, in a persistent directory (a temporary broker fsyncs nothing), which the
/// caller keeps until the broker is dropped.
fn durable_broker_with(partitions: i32, records: usize) -> (Broker, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    fill(&broker, partitions, records);
    (broker, dir)
}

fn fill(broker: &Broker, partitions: i32, records: usize) {
    broker
        .create_topic("t", TopicConfig::default().partitions(partitions))
        .unwrap();
    for p in 0..partitions {
        let batch: Vec<Record> = (0..records).map(|i| Record::new(format!("{i}"))).collect();
        broker
            .topic("t")
            .unwrap()
            .partition(p)
            .unwrap()
            .append(&batch)
            .unwrap();
    }
}

/// The `__consumer_offsets` partition that holds the broker's commits (the one not empty).
fn offsets_partition(broker: &Broker) -> Partition {
    let topic = broker.topic(OFFSETS_TOPIC).unwrap();
    (0..topic.partition_count())
        .map(|p| topic.partition(p).unwrap())
        .find(|p| p.log_end_offset() > 0)
        .expect("a commit was appended")
}

/// A group member of a one-partition topic that has read every record.
async fn member_that_read(broker: &Broker, group: &str, records: usize) -> Consumer {
    let mut consumer = broker.consumer(manual_commit_config(group)).unwrap();
    consumer.subscribe(&["t"]).unwrap();
    let mut read = 0;
    while read < records {
        read += consumer.recv().await.unwrap().count();
    }
    consumer
}

/// Every executor runs this: commit what was read, await, check the fsync and the offset.
async fn scenario(broker: Broker) {
    let tp = TopicPartition::new("t", 0);
    let mut consumer = member_that_read(&broker, "g", 10).await;
    // A first (page-cache) commit creates the offsets topic, so its fsyncs can be counted.
    consumer.commit_async(|_, r| r.unwrap()).unwrap();
    let offsets = offsets_partition(&broker);
    let before = offsets.fsync_count();
    consumer.commit().await.unwrap();
    assert!(offsets.fsync_count() > before, "completed before an fsync");
    assert_eq!(consumer.committed(&tp).unwrap().unwrap().offset, 10);
    // The explicit form, with metadata.
    let mut chosen = BTreeMap::new();
    chosen.insert(tp.clone(), OffsetAndMetadata::new(7).metadata("seven"));
    let before = offsets.fsync_count();
    consumer.commit_offsets(&chosen).await.unwrap();
    assert!(offsets.fsync_count() > before);
    let committed = consumer.committed(&tp).unwrap().unwrap();
    assert_eq!(
        (committed.offset, committed.metadata.as_str()),
        (7, "seven")
    );
}

#[test]
fn futures_executor() {
    let (broker, _dir) = durable_broker_with(1, 10);
    futures::executor::block_on(scenario(broker));
}

#[tokio::test(flavor = "current_thread")]
async fn tokio_current_thread() {
    let (broker, _dir) = durable_broker_with(1, 10);
    scenario(broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_multi_thread() {
    let (broker, _dir) = durable_broker_with(1, 10);
    scenario(broker).await;
}

/// The future borrows nothing: it can be spawned on another task while the consumer goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_future_is_send_and_static() {
    let broker = broker_with(1, 3);
    let mut consumer = member_that_read(&broker, "spawned", 3).await;
    let commit = tokio::spawn(consumer.commit());
    broker
        .topic("t")
        .unwrap()
        .partition(0)
        .unwrap()
        .append(&[Record::new("more")])
        .unwrap();
    assert_eq!(consumer.recv().await.unwrap().count(), 1);
    commit.await.unwrap().unwrap();
    let tp = TopicPartition::new("t", 0);
    assert_eq!(consumer.committed(&tp).unwrap().map(|c| c.offset), Some(3));
}

/// Awaited commits are in the reopened broker's offsets (the directory survives the broker).
#[test]
fn awaited_offsets_are_there_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = Broker::open(dir.path()).unwrap();
        fill(&broker, 1, 5);
        let mut consumer = futures::executor::block_on(member_that_read(&broker, "reopen", 5));
        futures::executor::block_on(consumer.commit()).unwrap();
        drop(consumer);
        broker.close().unwrap();
    }
    let broker = Broker::open(dir.path()).unwrap();
    let consumer = broker.consumer(manual_commit_config("reopen")).unwrap();
    let committed = consumer.committed(&TopicPartition::new("t", 0)).unwrap();
    assert_eq!(committed.map(|c| c.offset), Some(5));
}

/// Many consumers' commits pending at once complete, each after an fsync that covers it;
/// a round of the syncer fsyncs once for all it took (fewer fsyncs than commits, never more).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_complete_with_at_most_one_fsync_each() {
    const CONSUMERS: usize = 16;
    let (broker, _dir) = durable_broker_with(CONSUMERS as i32, 3);
    let mut consumers = Vec::new();
    for p in 0..CONSUMERS {
        // Without membership (assign): each commits its own partition in the same group.
        let mut c = broker.consumer(manual_commit_config("many")).unwrap();
        c.assign(&[TopicPartition::new("t", p as i32)]).unwrap();
        while c.recv().await.unwrap().count() < 3 {}
        consumers.push(c);
    }
    consumers[0].commit().await.unwrap();
    let offsets = offsets_partition(&broker);
    let before = offsets.fsync_count();
    let pending: Vec<_> = consumers.iter_mut().map(Consumer::commit).collect();
    for commit in pending {
        commit.await.unwrap();
    }
    let fsyncs = offsets.fsync_count() - before;
    assert!((1..=CONSUMERS as u64).contains(&fsyncs), "{fsyncs} fsyncs");
    for p in 0..CONSUMERS {
        let tp = TopicPartition::new("t", p as i32);
        assert_eq!(
            consumers[0].committed(&tp).unwrap().map(|c| c.offset),
            Some(3)
        );
    }
}

/// A waker that counts its wake-ups.
#[derive(Default)]
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// The commit is made at the call: a future dropped unpolled (or pending) changes nothing,
/// the syncer still makes it durable, and nothing is woken for it.
#[test]
fn a_dropped_commit_future_is_harmless() {
    let broker = broker_with(1, 4);
    let tp = TopicPartition::new("t", 0);
    let mut consumer = futures::executor::block_on(member_that_read(&broker, "drop", 4));
    drop(consumer.commit());
    assert_eq!(consumer.committed(&tp).unwrap().map(|c| c.offset), Some(4));
    let counter = Arc::new(Counter::default());
    let waker = Waker::from(Arc::clone(&counter));
    let mut pending = consumer.commit();
    let first = Pin::new(&mut pending).poll(&mut Context::from_waker(&waker));
    drop(pending);
    // Whatever the syncer does next, the dropped future's waker is not called once forgotten
    // (it may have been called before the drop if the fsync was that quick).
    let woken = counter.0.load(Ordering::SeqCst);
    futures::executor::block_on(consumer.commit()).unwrap();
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        woken,
        "first poll: {first:?}"
    );
    // The consumer goes on as usual.
    broker
        .topic("t")
        .unwrap()
        .partition(0)
        .unwrap()
        .append(&[Record::new("more")])
        .unwrap();
    let records = consumer.poll(Duration::from_secs(5)).unwrap();
    assert_eq!(records.iter().next().map(|r| r.offset), Some(4));
}

/// A consumer without membership commits into a group that has active members: the
/// coordinator refuses, and the refusal is the future's output.
#[test]
fn a_refused_commit_fails_through_the_future() {
    let broker = broker_with(1, 2);
    let member = futures::executor::block_on(member_that_read(&broker, "busy", 2));
    let mut outsider = broker.consumer(manual_commit_config("busy")).unwrap();
    outsider.assign(&[TopicPartition::new("t", 0)]).unwrap();
    futures::executor::block_on(outsider.recv()).unwrap();
    let result = futures::executor::block_on(outsider.commit());
    assert!(
        matches!(result, Err(Error::CommitFailed { .. })),
        "{result:?}"
    );
    drop(member);
}

/// A member whose group completed a rebalance it has not picked up gets the retryable
/// `RebalanceInProgress` through the future (as `commit_sync` returns it).
#[test]
fn rebalance_in_progress_arrives_through_the_future() {
    let broker = broker_with(4, 2);
    let coop = || {
        manual_commit_config("coop")
            .partition_assignment_strategy(vec![AssignmentStrategy::CooperativeSticky])
    };
    let mut a = broker.consumer(coop()).unwrap();
    a.subscribe(&["t"]).unwrap();
    let mut b = broker.consumer(coop()).unwrap();
    b.subscribe(&["t"]).unwrap();
    settle(&mut [&mut a, &mut b], &broker, "coop");
    while !a.poll(Duration::from_millis(10)).unwrap().is_empty() {}
    while !b.poll(Duration::from_millis(10)).unwrap().is_empty() {}
    // c joins: a rebalance starts. a rejoins, returning a new record of its own; b's rejoin
    // completes the rebalance, so a's generation is stale while it still owns its partitions.
    let mut c = broker.consumer(coop()).unwrap();
    c.subscribe(&["t"]).unwrap();
    assert!(c.poll(Duration::ZERO).unwrap().is_empty());
    let late = a.assignment()[0].clone();
    broker
        .topic("t")
        .unwrap()
        .partition(late.partition)
        .unwrap()
        .append(&[Record::new("late")])
        .unwrap();
    assert_eq!(a.poll(Duration::from_secs(5)).unwrap().count(), 1);
    assert!(b.poll(Duration::ZERO).unwrap().is_empty());
    let result = futures::executor::block_on(a.commit());
    assert!(
        matches!(result, Err(Error::RebalanceInProgress { .. })),
        "{result:?}"
    );
}

/// After the broker is closed, the commit fails through the future, at once.
#[tokio::test(flavor = "current_thread")]
async fn a_closed_broker_fails_the_commit_through_the_future() {
    let broker = broker_with(1, 2);
    let mut consumer = member_that_read(&broker, "closed", 2).await;
    broker.close().unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), consumer.commit())
        .await
        .expect("completes");
    assert!(matches!(result, Err(Error::Closed { .. })), "{result:?}");
}
