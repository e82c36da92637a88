//! Regressions of issue #15 in consumer groups, through the public API:
//!
//! * defect 9: a cooperative member that closes while a rebalance is in progress gets
//!   `on_partitions_revoked` only while its generation is still the group's (and a commit there
//!   then works); once the group has moved on to a generation it has not picked up, it gets
//!   `on_partitions_lost`, and a plain commit of partitions it still owns is the retryable
//!   `RebalanceInProgress`, not `CommitFailed`;
//! * defect 10: a second live member with the same `group.instance.id` fences the first
//!   (`FencedInstanceId`), and no partition ever has two owners;
//! * `commit_sync` is durable (fsynced) before it returns.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use embroker::{
    AssignmentStrategy, Broker, Consumer, ConsumerConfig, Error, GroupState, OffsetReset,
    RebalanceListener, Record, TopicConfig, TopicPartition,
};

fn broker_with(partitions: i32, records_per_partition: usize) -> Broker {
    let broker = Broker::temporary().unwrap();
    broker
        .create_topic("t", TopicConfig::default().partitions(partitions))
        .unwrap();
    let topic = broker.topic("t").unwrap();
    for p in 0..partitions {
        let part = topic.partition(p).unwrap();
        for i in 0..records_per_partition {
            part.append(&[Record::new(format!("p{p}-{i}"))]).unwrap();
        }
    }
    broker
}

fn coop(group: &str) -> ConsumerConfig {
    ConsumerConfig::default()
        .group_id(group)
        .auto_offset_reset(OffsetReset::Earliest)
        .enable_auto_commit(false)
        .partition_assignment_strategy(vec![AssignmentStrategy::CooperativeSticky])
}

/// What a listener saw: (callback, partitions, result of the commit made inside it).
type Log = Arc<Mutex<Vec<(&'static str, Vec<i32>, Option<String>)>>>;

/// Commits inside `on_partitions_revoked` (and tries to inside `on_partitions_lost`),
/// recording each outcome.
struct Committer {
    log: Log,
}

impl Committer {
    fn record(&self, kind: &'static str, ps: &[TopicPartition], commit: Option<String>) {
        let ps = ps.iter().map(|tp| tp.partition).collect();
        self.log.lock().unwrap().push((kind, ps, commit));
    }
}

fn outcome(r: embroker::Result<()>) -> Option<String> {
    Some(match r {
        Ok(()) => "ok".to_string(),
        Err(Error::RebalanceInProgress { .. }) => "rebalance-in-progress".to_string(),
        Err(e) => format!("error: {e}"),
    })
}

impl RebalanceListener for Committer {
    fn on_partitions_revoked(
        &mut self,
        consumer: &mut Consumer,
        ps: &[TopicPartition],
    ) -> embroker::Result<()> {
        let commit = if ps.is_empty() {
            None
        } else {
            outcome(consumer.commit_sync())
        };
        self.record("revoked", ps, commit);
        Ok(())
    }

    fn on_partitions_assigned(
        &mut self,
        _: &mut Consumer,
        ps: &[TopicPartition],
    ) -> embroker::Result<()> {
        self.record("assigned", ps, None);
        Ok(())
    }

    fn on_partitions_lost(
        &mut self,
        consumer: &mut Consumer,
        ps: &[TopicPartition],
    ) -> embroker::Result<()> {
        let commit = outcome(consumer.commit_sync());
        self.record("lost", ps, commit);
        Ok(())
    }
}

fn drain(c: &mut Consumer) -> usize {
    let mut n = 0;
    loop {
        let got = c.poll(Duration::from_millis(10)).unwrap().count();
        if got == 0 {
            return n;
        }
        n += got;
    }
}

/// Defect 9, first case: the group is rebalancing (a newcomer joined) and the member has not
/// rejoined yet. Its generation is still the group's, so closing revokes and the commit in
/// `on_partitions_revoked` is accepted: the newcomer starts exactly after it.
#[test]
fn defect9_close_before_rejoining_a_rebalance_revokes_and_its_commit_works() {
    let broker = broker_with(4, 5);
    let log = Log::default();
    let mut a = broker.consumer(coop("g9a")).unwrap();
    a.subscribe_with_listener(&["t"], Committer { log: log.clone() })
        .unwrap();
    assert_eq!(drain(&mut a), 20);
    assert_eq!(a.assignment().len(), 4);
    let mut b = broker.consumer(coop("g9a")).unwrap();
    b.subscribe(&["t"]).unwrap();
    assert!(b.poll(Duration::ZERO).unwrap().is_empty());
    assert_eq!(
        broker.describe_group("g9a").unwrap().state,
        GroupState::PreparingRebalance
    );
    a.close().unwrap();
    let got = log.lock().unwrap().clone();
    assert_eq!(
        got.last().unwrap(),
        &("revoked", vec![0, 1, 2, 3], Some("ok".to_string())),
        "{got:?}"
    );
    // b takes over exactly where a committed: nothing is delivered twice.
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.assignment().len() < 4 {
        assert_eq!(b.poll(Duration::from_millis(10)).unwrap().count(), 0);
        assert!(Instant::now() < deadline, "b never got the partitions");
    }
    assert_eq!(drain(&mut b), 0);
}

/// Polls every consumer until the group is stable and each holds what the group assigned it.
fn settle(consumers: &mut [&mut Consumer], broker: &Broker, group: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for c in consumers.iter_mut() {
            c.poll(Duration::ZERO).unwrap();
        }
        let d = broker.describe_group(group).unwrap();
        let consistent = consumers.iter().all(|c| {
            d.members.iter().any(|m| {
                let mut a = m.assignment.clone();
                a.sort();
                Some(m.member_id.as_str()) == c.member_id() && a == c.assignment()
            })
        });
        if d.state == GroupState::Stable && d.members.len() == consumers.len() && consistent {
            return;
        }
        assert!(Instant::now() < deadline, "no settle: {d:?}");
    }
}

/// Defect 9, the reported case: the member has rejoined the rebalance (from a poll that
/// returned records while another member had not rejoined yet), and the rebalance then
/// completed without it picking up its new generation. Closing now finds its generation
/// stale: Kafka calls `on_partitions_lost`, and a commit there (or a plain commit before
/// closing) is the retryable `RebalanceInProgress` for partitions it still owns, never "the
/// partitions were reassigned".
#[test]
fn defect9_close_after_the_group_moved_on_calls_lost_and_commits_are_rebalance_in_progress() {
    let broker = broker_with(4, 5);
    let log = Log::default();
    let mut a = broker.consumer(coop("g9b")).unwrap();
    a.subscribe_with_listener(&["t"], Committer { log: log.clone() })
        .unwrap();
    let mut b = broker.consumer(coop("g9b")).unwrap();
    b.subscribe(&["t"]).unwrap();
    settle(&mut [&mut a, &mut b], &broker, "g9b");
    drain(&mut a);
    drain(&mut b);
    let owned_by_a: Vec<i32> = a.assignment().iter().map(|tp| tp.partition).collect();
    assert_eq!(owned_by_a.len(), 2);
    // c joins: a rebalance starts.
    let mut c = broker.consumer(coop("g9b")).unwrap();
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
    // a rejoins (reporting what it owns) and returns the new record: the group waits for b.
    assert_eq!(a.poll(Duration::from_secs(5)).unwrap().count(), 1);
    assert_eq!(
        broker.describe_group("g9b").unwrap().state,
        GroupState::PreparingRebalance
    );
    let gen_a = a.generation();
    // b's rejoin completes the rebalance: a's generation is now stale, while its partitions
    // are still its own (the cooperative assignor withholds them from b and c).
    assert!(b.poll(Duration::ZERO).unwrap().is_empty());
    let d = broker.describe_group("g9b").unwrap();
    assert!(d.generation > gen_a, "{d:?}");
    assert_eq!(a.generation(), gen_a);
    for tp in a.assignment() {
        assert!(!b.assignment().contains(&tp), "b already owns {tp}");
    }
    // A plain commit is retryable, not "reassigned".
    match a.commit_sync() {
        Err(e @ Error::RebalanceInProgress { .. }) => {
            assert!(e.to_string().contains("g9b"), "{e}");
        }
        other => panic!("expected RebalanceInProgress, got {other:?}"),
    }
    let before = log.lock().unwrap().len();
    a.close().unwrap();
    let got = log.lock().unwrap()[before..].to_vec();
    assert_eq!(
        got,
        [(
            "lost",
            owned_by_a,
            Some("rebalance-in-progress".to_string())
        )]
    );
    // The others finish the rebalance and own everything between them.
    settle(&mut [&mut b, &mut c], &broker, "g9b");
    assert_eq!(b.assignment().len() + c.assignment().len(), 4);
}

/// Defect 9, between the two: the member has rejoined, the rebalance still waits for another
/// member. Its generation is still the group's, so closing revokes, the commit there works,
/// and the rebalance completes only after it left (the others never see its partitions
/// before its commit).
#[test]
fn defect9_close_after_rejoining_a_waiting_rebalance_revokes_and_its_commit_works() {
    let broker = broker_with(4, 5);
    let log = Log::default();
    let mut a = broker.consumer(coop("g9c")).unwrap();
    a.subscribe_with_listener(&["t"], Committer { log: log.clone() })
        .unwrap();
    let mut b = broker.consumer(coop("g9c")).unwrap();
    b.subscribe(&["t"]).unwrap();
    settle(&mut [&mut a, &mut b], &broker, "g9c");
    drain(&mut a);
    drain(&mut b);
    let owned_by_a: Vec<i32> = a.assignment().iter().map(|tp| tp.partition).collect();
    let mut c = broker.consumer(coop("g9c")).unwrap();
    c.subscribe(&["t"]).unwrap();
    assert!(c.poll(Duration::ZERO).unwrap().is_empty());
    // a rejoins and returns (nothing to read): the group waits for b.
    assert!(a.poll(Duration::ZERO).unwrap().is_empty());
    assert_eq!(
        broker.describe_group("g9c").unwrap().state,
        GroupState::PreparingRebalance
    );
    let before = log.lock().unwrap().len();
    a.close().unwrap();
    let got = log.lock().unwrap()[before..].to_vec();
    assert_eq!(got, [("revoked", owned_by_a, Some("ok".to_string()))]);
    // b and c take over exactly where a committed: nothing is delivered again.
    settle(&mut [&mut b, &mut c], &broker, "g9c");
    assert_eq!(b.assignment().len() + c.assignment().len(), 4);
    assert_eq!(drain(&mut b) + drain(&mut c), 0);
}

/// Defect 10: a second live consumer with the same `group.instance.id` replaces the first
/// (Kafka's static membership): the group has one member, the old consumer's next call fails
/// with `FencedInstanceId` after `on_partitions_lost`, and the newcomer gets the partitions
/// only once the old consumer has let go of them.
#[test]
fn defect10_a_second_member_with_the_same_instance_id_fences_the_first() {
    for strategy in [
        AssignmentStrategy::Range,
        AssignmentStrategy::CooperativeSticky,
    ] {
        let broker = broker_with(4, 5);
        let group = format!("g10-{}", strategy.as_str());
        let cfg = || {
            coop(&group)
                .partition_assignment_strategy(vec![strategy])
                .group_instance_id("host-1")
        };
        let log = Log::default();
        let mut a = broker.consumer(cfg()).unwrap();
        a.subscribe_with_listener(&["t"], Committer { log: log.clone() })
            .unwrap();
        assert_eq!(drain(&mut a), 20);
        assert_eq!(a.assignment().len(), 4);
        let mut b = broker.consumer(cfg()).unwrap();
        b.subscribe(&["t"]).unwrap();
        assert!(b.poll(Duration::from_millis(20)).unwrap().is_empty());
        let d = broker.describe_group(&group).unwrap();
        assert_eq!(d.members.len(), 1, "{strategy:?}: {d:?}");
        assert_eq!(
            Some(d.members[0].member_id.as_str()),
            b.member_id(),
            "{strategy:?}"
        );
        // a still holds its partitions until it learns of the fence: b must not have them.
        assert!(b.assignment().is_empty(), "{strategy:?}: two owners");
        let fenced = |r: embroker::Result<()>| match r {
            Err(e @ Error::FencedInstanceId { .. }) => {
                let text = e.to_string();
                assert!(text.contains(&group) && text.contains("host-1"), "{text}");
            }
            other => panic!("{strategy:?}: expected FencedInstanceId, got {other:?}"),
        };
        fenced(a.commit_sync());
        let before = log.lock().unwrap().len();
        fenced(a.poll(Duration::ZERO).map(|_| ()));
        let got = log.lock().unwrap()[before..].to_vec();
        assert_eq!(got.len(), 1, "{strategy:?}: {got:?}");
        assert_eq!((got[0].0, got[0].1.clone()), ("lost", vec![0, 1, 2, 3]));
        assert!(a.assignment().is_empty());
        // Fatal: every later poll and commit fails the same way.
        fenced(a.poll(Duration::ZERO).map(|_| ()));
        fenced(a.commit_sync());
        // b now gets everything, from the committed offsets (none: from the start).
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut n = 0;
        while b.assignment().len() < 4 || n < 20 {
            n += b.poll(Duration::from_millis(10)).unwrap().count();
            assert!(Instant::now() < deadline, "{strategy:?}: b got {n}");
        }
        assert_eq!(n, 20, "{strategy:?}");
        a.close().unwrap();
        b.commit_sync().unwrap();
        assert_eq!(broker.describe_group(&group).unwrap().members.len(), 1);
        b.close().unwrap();
    }
}

/// Defect 10 with both consumers polling from their own threads: ownership, as seen by the
/// listeners, never overlaps while the newcomer fences the old member.
#[test]
fn defect10_fencing_while_both_poll_never_makes_two_owners() {
    let broker = broker_with(4, 50);
    let owners: Arc<Mutex<BTreeMap<i32, &'static str>>> = Arc::default();
    let violations: Arc<Mutex<Vec<String>>> = Arc::default();
    struct Owner {
        name: &'static str,
        owners: Arc<Mutex<BTreeMap<i32, &'static str>>>,
        violations: Arc<Mutex<Vec<String>>>,
    }
    impl Owner {
        fn drop_all(&self, ps: &[TopicPartition]) {
            let mut o = self.owners.lock().unwrap();
            for tp in ps {
                if o.get(&tp.partition) == Some(&self.name) {
                    o.remove(&tp.partition);
                }
            }
        }
    }
    impl RebalanceListener for Owner {
        fn on_partitions_revoked(
            &mut self,
            _: &mut Consumer,
            ps: &[TopicPartition],
        ) -> embroker::Result<()> {
            self.drop_all(ps);
            Ok(())
        }
        fn on_partitions_assigned(
            &mut self,
            _: &mut Consumer,
            ps: &[TopicPartition],
        ) -> embroker::Result<()> {
            let mut o = self.owners.lock().unwrap();
            for tp in ps {
                if let Some(other) = o.insert(tp.partition, self.name) {
                    self.violations
                        .lock()
                        .unwrap()
                        .push(format!("{} got {tp} still owned by {other}", self.name));
                }
            }
            Ok(())
        }
        fn on_partitions_lost(
            &mut self,
            _: &mut Consumer,
            ps: &[TopicPartition],
        ) -> embroker::Result<()> {
            self.drop_all(ps);
            Ok(())
        }
    }
    let cfg = coop("g10t").group_instance_id("host-1");
    let listener = |name| Owner {
        name,
        owners: owners.clone(),
        violations: violations.clone(),
    };
    let mut a = broker.consumer(cfg.clone()).unwrap();
    a.subscribe_with_listener(&["t"], listener("a")).unwrap();
    a.poll(Duration::ZERO).unwrap();
    let a_thread = std::thread::spawn(move || loop {
        match a.poll(Duration::from_millis(5)) {
            Ok(_) => {}
            Err(Error::FencedInstanceId { .. }) => return a,
            Err(e) => panic!("a: {e}"),
        }
    });
    let mut b = broker.consumer(cfg).unwrap();
    b.subscribe_with_listener(&["t"], listener("b")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.assignment().len() < 4 {
        b.poll(Duration::from_millis(5)).unwrap();
        assert!(Instant::now() < deadline, "b never got the partitions");
    }
    let a = a_thread.join().unwrap();
    assert!(a.assignment().is_empty());
    assert_eq!(violations.lock().unwrap().clone(), Vec::<String>::new());
}
