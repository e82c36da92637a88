//! Rebalancing through the public API: hand-over when a member leaves (nothing lost),
//! broadcast between groups, a topic gaining partitions, a busy member that does not block a
//! newcomer, expulsion after `max.poll.interval.ms` with stale commits refused, listener order
//! under eager and cooperative protocols, the initial rebalance delay.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use embroker::{
    AssignmentStrategy, Broker, Consumer, ConsumerConfig, Error, GroupState, ManualClock,
    OffsetAndMetadata, RebalanceListener, Record, TopicConfig, TopicPartition,
};

fn broker_with(partitions: i32) -> Broker {
    let broker = Broker::temporary().unwrap();
    broker
        .create_topic("t", TopicConfig::default().partitions(partitions))
        .unwrap();
    broker
}

fn produce(broker: &Broker, n: usize) {
    let topic = broker.topic("t").unwrap();
    let count = topic.partition_count();
    for i in 0..n {
        let p = topic.partition(i as i32 % count).unwrap();
        p.append(&[Record::new(format!("v{i}"))]).unwrap();
    }
}

fn config(group: &str) -> ConsumerConfig {
    common::manual_commit_config(group)
}

fn member(broker: &Broker, cfg: ConsumerConfig) -> Consumer {
    let mut c = broker.consumer(cfg).unwrap();
    c.subscribe(&["t"]).unwrap();
    c
}

type Seen = BTreeSet<(i32, i64)>;

/// Polls every consumer (committing after each poll) until the group is stable and each
/// consumer holds what the group assigned it; returns the records seen.
fn settle(consumers: &mut [&mut Consumer], broker: &Broker, group: &str, seen: &mut Seen) {
    common::settle_with(consumers, broker, group, |c| {
        for r in &c.poll(Duration::ZERO).unwrap() {
            seen.insert((r.partition, r.offset));
        }
        c.commit_sync().unwrap();
    });
}

fn drain(c: &mut Consumer, seen: &mut Seen) {
    loop {
        let r = c.poll(Duration::from_millis(20)).unwrap();
        if r.is_empty() {
            return;
        }
        for r in &r {
            seen.insert((r.partition, r.offset));
        }
        c.commit_sync().unwrap();
    }
}

fn all_records(partitions: i32, n: usize) -> Seen {
    (0..n)
        .map(|i| (i as i32 % partitions, (i as i32 / partitions) as i64))
        .collect()
}

#[test]
fn a_leaving_member_hands_its_partitions_on_and_nothing_is_lost() {
    let broker = broker_with(4);
    produce(&broker, 400);
    let mut seen = Seen::new();
    let mut a = member(&broker, config("g").max_poll_records(30));
    let mut b = member(&broker, config("g").max_poll_records(30));
    settle(&mut [&mut a, &mut b], &broker, "g", &mut seen);
    assert_eq!(a.assignment().len(), 2);
    assert_eq!(b.assignment().len(), 2);
    // b reads a little, commits, and leaves.
    for r in &b.poll(Duration::from_millis(100)).unwrap() {
        seen.insert((r.partition, r.offset));
    }
    b.commit_sync().unwrap();
    b.close().unwrap();
    settle(&mut [&mut a], &broker, "g", &mut seen);
    assert_eq!(a.assignment().len(), 4);
    drain(&mut a, &mut seen);
    assert_eq!(seen, all_records(4, 400));
}

#[test]
fn two_groups_each_get_every_record_and_one_group_shares_them() {
    let broker = broker_with(2);
    produce(&broker, 100);
    let mut queue_seen = Vec::new();
    let mut g1a = member(&broker, config("queue"));
    let mut g1b = member(&broker, config("queue"));
    let mut scratch = Seen::new();
    settle(&mut [&mut g1a, &mut g1b], &broker, "queue", &mut scratch);
    queue_seen.extend(scratch.iter().copied());
    for c in [&mut g1a, &mut g1b] {
        let mut s = Seen::new();
        drain(c, &mut s);
        queue_seen.extend(s);
    }
    queue_seen.sort();
    let unique: Seen = queue_seen.iter().copied().collect();
    assert_eq!(
        queue_seen.len(),
        unique.len(),
        "a queue delivers each record once"
    );
    assert_eq!(unique, all_records(2, 100));
    let mut other = member(&broker, config("broadcast"));
    let mut seen = Seen::new();
    settle(&mut [&mut other], &broker, "broadcast", &mut seen);
    drain(&mut other, &mut seen);
    assert_eq!(seen, all_records(2, 100));
}

#[test]
fn a_topic_gaining_partitions_triggers_a_rebalance() {
    let broker = broker_with(2);
    let mut a = member(&broker, config("g"));
    let mut b = member(&broker, config("g"));
    let mut seen = Seen::new();
    settle(&mut [&mut a, &mut b], &broker, "g", &mut seen);
    let gen = broker.describe_group("g").unwrap().generation;
    broker.create_partitions("t", 4).unwrap();
    settle(&mut [&mut a, &mut b], &broker, "g", &mut seen);
    assert!(broker.describe_group("g").unwrap().generation > gen);
    let mut all: Vec<TopicPartition> = a.assignment();
    all.extend(b.assignment());
    all.sort();
    assert_eq!(all.len(), 4);
    assert_eq!(a.assignment().len(), 2);
}

#[test]
fn a_busy_member_does_not_block_a_newcomer_past_its_timeout() {
    let broker = broker_with(2);
    produce(&broker, 10);
    let mut busy = member(&broker, config("g"));
    let mut seen = Seen::new();
    settle(&mut [&mut busy], &broker, "g", &mut seen);
    assert_eq!(busy.assignment().len(), 2);
    // `busy` is now "in user code": it does not poll.
    let mut newcomer = member(&broker, config("g"));
    let start = Instant::now();
    let r = newcomer.poll(Duration::from_millis(200)).unwrap();
    assert!(r.is_empty());
    assert!(newcomer.assignment().is_empty());
    assert!(start.elapsed() >= Duration::from_millis(190));
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(
        broker.describe_group("g").unwrap().state,
        GroupState::PreparingRebalance
    );
    // The busy member polls again: the rebalance completes.
    busy.poll(Duration::ZERO).unwrap();
    newcomer.poll(Duration::ZERO).unwrap();
    assert_eq!(busy.assignment().len(), 1);
    assert_eq!(newcomer.assignment().len(), 1);
}

#[test]
fn a_silent_member_is_expelled_and_its_stale_commit_fails() {
    let clock = ManualClock::new(1_000_000);
    let broker = Broker::builder()
        .clock(clock.clone())
        .open_temporary()
        .unwrap();
    broker
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    produce(&broker, 10);
    let cfg = config("g").max_poll_interval_ms(1_000);
    let events = Arc::new(Mutex::new(Vec::new()));
    let mut slow = broker.consumer(cfg.clone()).unwrap();
    slow.subscribe_with_listener(&["t"], Recorder::new("slow", &events))
        .unwrap();
    let mut seen = Seen::new();
    settle(&mut [&mut slow], &broker, "g", &mut seen);
    let stale_generation = slow.generation();
    let mut fresh = member(&broker, cfg);
    assert!(fresh.poll(Duration::from_millis(10)).unwrap().is_empty());
    clock.advance_ms(1_500);
    // `fresh` polls after slow's max.poll.interval: slow is expelled, fresh takes everything.
    fresh.poll(Duration::ZERO).unwrap();
    assert_eq!(fresh.assignment().len(), 2);
    let d = broker.describe_group("g").unwrap();
    assert_eq!(d.members.len(), 1);
    // The expelled member's commit fails and changes nothing.
    let tp0 = TopicPartition::new("t", 0);
    let before = fresh.committed(&tp0).unwrap();
    let err = slow
        .commit_offsets_sync(&BTreeMap::from([(tp0.clone(), OffsetAndMetadata::new(3))]))
        .unwrap_err();
    match err {
        Error::CommitFailed { generation, .. } => assert_eq!(generation, stale_generation),
        other => panic!("expected CommitFailed, got {other:?}"),
    }
    assert_eq!(fresh.committed(&tp0).unwrap(), before);
    // At its next poll the expelled member learns it lost its partitions, and rejoins.
    slow.poll(Duration::ZERO).unwrap();
    let lost = events
        .lock()
        .unwrap()
        .iter()
        .any(|(_, kind, ps)| *kind == "lost" && ps.len() == 2);
    assert!(lost, "{:?}", events.lock().unwrap());
    let mut seen = Seen::new();
    settle(&mut [&mut slow, &mut fresh], &broker, "g", &mut seen);
    assert_eq!(slow.assignment().len(), 1);
}

type Events = Arc<Mutex<Vec<(String, &'static str, Vec<i32>)>>>;

struct Recorder {
    name: String,
    events: Events,
}

impl Recorder {
    fn new(name: &str, events: &Events) -> Self {
        Recorder {
            name: name.to_string(),
            events: events.clone(),
        }
    }

    fn push(&self, kind: &'static str, ps: &[TopicPartition]) {
        let ps = ps.iter().map(|tp| tp.partition).collect();
        self.events
            .lock()
            .unwrap()
            .push((self.name.clone(), kind, ps));
    }
}

impl RebalanceListener for Recorder {
    fn on_partitions_revoked(
        &mut self,
        consumer: &mut Consumer,
        ps: &[TopicPartition],
    ) -> embroker::Result<()> {
        // Committing from inside the revoke callback works: the partitions have not moved.
        if !ps.is_empty() {
            consumer.commit_sync()?;
        }
        self.push("revoked", ps);
        Ok(())
    }

    fn on_partitions_assigned(
        &mut self,
        _: &mut Consumer,
        ps: &[TopicPartition],
    ) -> embroker::Result<()> {
        self.push("assigned", ps);
        Ok(())
    }

    fn on_partitions_lost(
        &mut self,
        _: &mut Consumer,
        ps: &[TopicPartition],
    ) -> embroker::Result<()> {
        self.push("lost", ps);
        Ok(())
    }
}

fn ev(name: &str, kind: &'static str, ps: &[i32]) -> (String, &'static str, Vec<i32>) {
    (name.to_string(), kind, ps.to_vec())
}

#[test]
fn eager_listener_order_revokes_everything_first() {
    let broker = broker_with(4);
    let events = Events::default();
    let mut a = broker.consumer(config("g")).unwrap();
    a.subscribe_with_listener(&["t"], Recorder::new("a", &events))
        .unwrap();
    let mut seen = Seen::new();
    settle(&mut [&mut a], &broker, "g", &mut seen);
    let mut b = broker.consumer(config("g")).unwrap();
    b.subscribe_with_listener(&["t"], Recorder::new("b", &events))
        .unwrap();
    b.poll(Duration::ZERO).unwrap();
    settle(&mut [&mut a, &mut b], &broker, "g", &mut seen);
    let got = events.lock().unwrap().clone();
    assert_eq!(
        got,
        [
            ev("a", "revoked", &[]),
            ev("a", "assigned", &[0, 1, 2, 3]),
            ev("b", "revoked", &[]),
            ev("a", "revoked", &[0, 1, 2, 3]),
            ev("a", "assigned", &[0, 1]),
            ev("b", "assigned", &[2, 3]),
        ]
    );
}

#[test]
fn cooperative_listener_order_revokes_only_what_moves_then_hands_it_over() {
    let broker = broker_with(4);
    let events = Events::default();
    let coop =
        || config("g").partition_assignment_strategy(vec![AssignmentStrategy::CooperativeSticky]);
    let mut a = broker.consumer(coop()).unwrap();
    a.subscribe_with_listener(&["t"], Recorder::new("a", &events))
        .unwrap();
    let mut seen = Seen::new();
    settle(&mut [&mut a], &broker, "g", &mut seen);
    let mut b = broker.consumer(coop()).unwrap();
    b.subscribe_with_listener(&["t"], Recorder::new("b", &events))
        .unwrap();
    b.poll(Duration::ZERO).unwrap();
    settle(&mut [&mut a, &mut b], &broker, "g", &mut seen);
    assert_eq!(
        broker.describe_group("g").unwrap().protocol.as_deref(),
        Some("cooperative-sticky")
    );
    let got = events.lock().unwrap().clone();
    // a keeps two partitions throughout; only the two that move are revoked.
    let a_events: Vec<_> = got.iter().filter(|e| e.0 == "a").cloned().collect();
    assert_eq!(a_events[0], ev("a", "assigned", &[0, 1, 2, 3]));
    let revoked: Vec<_> = a_events.iter().filter(|e| e.1 == "revoked").collect();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].2.len(), 2);
    assert!(a_events.iter().all(|e| e.1 != "lost"));
    // b's partitions arrive only after a revoked them.
    let revoke_at = got
        .iter()
        .position(|e| e.0 == "a" && e.1 == "revoked")
        .unwrap();
    let b_gets = got
        .iter()
        .position(|e| e.0 == "b" && e.1 == "assigned" && !e.2.is_empty())
        .unwrap();
    assert!(revoke_at < b_gets);
    assert_eq!(b.assignment().len(), 2);
    assert!(got.iter().all(|e| !(e.0 == "b" && e.1 == "revoked")));
}

#[test]
fn initial_rebalance_delay_holds_the_first_assignment() {
    let clock = ManualClock::new(0);
    let broker = Broker::builder()
        .clock(clock.clone())
        .open_temporary()
        .unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    let mut a = member(&broker, config("g").group_initial_rebalance_delay_ms(3_000));
    assert!(a.poll(Duration::from_millis(20)).unwrap().is_empty());
    assert!(a.assignment().is_empty());
    clock.advance_ms(3_000);
    a.poll(Duration::ZERO).unwrap();
    assert_eq!(a.assignment().len(), 1);
}

#[test]
fn members_without_a_common_assignor_are_refused() {
    let broker = broker_with(1);
    let mut a = member(
        &broker,
        config("g").partition_assignment_strategy(vec![AssignmentStrategy::Range]),
    );
    a.poll(Duration::ZERO).unwrap();
    let mut b = member(
        &broker,
        config("g").partition_assignment_strategy(vec![AssignmentStrategy::RoundRobin]),
    );
    assert!(matches!(
        b.poll(Duration::ZERO),
        Err(Error::InvalidConfig { .. })
    ));
}
