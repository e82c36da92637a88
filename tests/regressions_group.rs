//! Regressions of issue #15 in consumer groups, through the public API:
//!
//! * defect 9: a cooperative member that closes while a rebalance is in progress gets
//!   `on_partitions_revoked` only while its generation is still the group's (and a commit there
//!   then works); once the group has moved on to a generation it has not picked up, it gets
//!   `on_partitions_lost`, and a plain commit of partitions it still owns is the retryable
//!   `RebalanceInProgress`, not `CommitFailed`;
//! * defect 10: a second live member with the same `group.instance.id` fences the first
//!   (`FencedInstanceId`), and no partition ever has two owners;
//! * durable appends (`commit_sync`, `acks=all`) do not hold the cleaner back: the recovery
//!   point, below which it works, still moves with the background sync;
//! * group members under CPU contention (spinning threads on a 2-core machine): members of a
//!   cooperative-sticky group join, commit and leave in a loop; no partition ever has two
//!   owners, commits in `on_partitions_revoked` never fail, every record is delivered at least
//!   once. A few seconds in CI; `EMBROKER_LONG=1` runs 30 s; `EMBROKER_SEED` replays a seed
//!   (which every failure message names).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{seed, settle, XorShift};

use embroker::{
    Acks, AssignmentStrategy, Broker, CleanupPolicy, Consumer, ConsumerConfig, Error, GroupState,
    ProducerConfig, ProducerRecord, RebalanceListener, Record, TopicConfig, TopicPartition,
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
    common::manual_commit_config(group)
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

/// Defect 9's later cases start alike: `a` (a [`Committer`] writing to `log`) and `b` share
/// the 4 partitions of `t` in `group` and have read everything; then `c` joins (a rebalance
/// starts). `owned_by_a`: what `a` owned before `c` joined.
struct Defect9 {
    broker: Broker,
    log: Log,
    a: Consumer,
    b: Consumer,
    c: Consumer,
    owned_by_a: Vec<i32>,
}

fn defect9_third_member_joins(group: &str) -> Defect9 {
    let broker = broker_with(4, 5);
    let log = Log::default();
    let mut a = broker.consumer(coop(group)).unwrap();
    a.subscribe_with_listener(&["t"], Committer { log: log.clone() })
        .unwrap();
    let mut b = broker.consumer(coop(group)).unwrap();
    b.subscribe(&["t"]).unwrap();
    settle(&mut [&mut a, &mut b], &broker, group);
    drain(&mut a);
    drain(&mut b);
    let owned_by_a: Vec<i32> = a.assignment().iter().map(|tp| tp.partition).collect();
    // c joins: a rebalance starts.
    let mut c = broker.consumer(coop(group)).unwrap();
    c.subscribe(&["t"]).unwrap();
    assert!(c.poll(Duration::ZERO).unwrap().is_empty());
    Defect9 {
        broker,
        log,
        a,
        b,
        c,
        owned_by_a,
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
    let Defect9 {
        broker,
        log,
        mut a,
        mut b,
        mut c,
        owned_by_a,
    } = defect9_third_member_joins("g9b");
    assert_eq!(owned_by_a.len(), 2);
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
    let Defect9 {
        broker,
        log,
        mut a,
        mut b,
        mut c,
        owned_by_a,
    } = defect9_third_member_joins("g9c");
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

fn long() -> bool {
    std::env::var("EMBROKER_LONG").is_ok_and(|v| v == "1")
}

const CONTENTION_PARTITIONS: i32 = 6;

#[derive(Default)]
struct Contention {
    owners: Arc<common::Owners<usize>>,
    violations: Mutex<Vec<String>>,
    seen: Mutex<BTreeSet<(i32, i64)>>,
    revoke_commits: AtomicUsize,
    rebalances_in_progress: AtomicUsize,
    fenced: AtomicUsize,
}

impl Contention {
    fn violation(&self, member: usize, seed: u64, what: String) {
        self.violations
            .lock()
            .unwrap()
            .push(format!("member {member}: {what} (seed {seed})"));
    }
}

/// Member `id`'s listener: keeps the ownership table and commits in a revoke. A static
/// member (`is_static`): another consumer with its `group.instance.id` may fence it at any
/// moment, even inside a revoke, whose commit then fails with `FencedInstanceId`.
fn contention_owner(
    id: usize,
    seed: u64,
    is_static: bool,
    shared: &Arc<Contention>,
) -> common::OwnerListener<usize> {
    let (on_revoke, on_violation) = (shared.clone(), shared.clone());
    common::OwnerListener::new(
        id,
        shared.owners.clone(),
        move |consumer, ps| {
            match consumer.commit_sync() {
                Ok(()) => {
                    on_revoke.revoke_commits.fetch_add(1, Ordering::Relaxed);
                }
                Err(Error::FencedInstanceId { .. }) if is_static => {}
                Err(e) => on_revoke.violation(
                    id,
                    seed,
                    format!("commit in on_partitions_revoked({ps:?}): {e}"),
                ),
            }
            Ok(())
        },
        move |violation| on_violation.violation(id, seed, violation),
    )
}

/// One member thread: join, poll and commit a random number of times, leave (close,
/// unsubscribe or drop, at random), again, until `stop`.
fn contention_member(
    broker: Broker,
    id: usize,
    instance: Option<&'static str>,
    seed: u64,
    shared: Arc<Contention>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = XorShift(seed ^ (id as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut life = 0;
    while !stop.load(Ordering::Relaxed) {
        life += 1;
        let mut cfg = coop("contention").max_poll_records(1 + rng.below(100) as u32);
        if let Some(instance) = instance {
            cfg = cfg.group_instance_id(instance);
        }
        let mut c = broker.consumer(cfg).unwrap();
        let owner = contention_owner(id * 1000 + life, seed, instance.is_some(), &shared);
        c.subscribe_with_listener(&["t"], owner).unwrap();
        let polls = 1 + rng.below(20);
        for _ in 0..polls {
            let records = match c.poll(Duration::from_millis(rng.below(5))) {
                Ok(r) => r,
                // Another consumer took this one's group.instance.id: fatal, leave.
                Err(Error::FencedInstanceId { .. }) if instance.is_some() => {
                    shared.fenced.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Err(e) => {
                    shared
                        .violations
                        .lock()
                        .unwrap()
                        .push(format!("member {id}: poll: {e} (seed {seed})"));
                    break;
                }
            };
            let owned = c.assignment();
            {
                let mut seen = shared.seen.lock().unwrap();
                for r in &records {
                    if !owned.contains(&r.topic_partition()) {
                        shared.violations.lock().unwrap().push(format!(
                            "member {id}: record of {} not assigned (seed {seed})",
                            r.topic_partition()
                        ));
                    }
                    seen.insert((r.partition, r.offset));
                }
            }
            // Processing time: other members rejoin and complete rebalances meanwhile.
            std::thread::sleep(Duration::from_micros(rng.below(2000)));
            if rng.below(2) == 0 {
                match c.commit_sync() {
                    Ok(()) => {}
                    // Retryable: the group completed a rebalance this member has not picked
                    // up; the next poll does, and these records may be delivered again.
                    Err(Error::RebalanceInProgress { .. }) => {
                        shared
                            .rebalances_in_progress
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    Err(Error::FencedInstanceId { .. }) if instance.is_some() => {
                        shared.fenced.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    Err(e) => shared
                        .violations
                        .lock()
                        .unwrap()
                        .push(format!("member {id}: commit_sync: {e} (seed {seed})")),
                }
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
        }
        let result = match rng.below(3) {
            0 => c.close(),
            1 => c.unsubscribe(),
            _ => {
                drop(c);
                Ok(())
            }
        };
        if let Err(e) = result {
            shared
                .violations
                .lock()
                .unwrap()
                .push(format!("member {id}: leaving: {e} (seed {seed})"));
        }
    }
}

/// Three members of a cooperative-sticky group join, poll, commit and leave in a loop while
/// an appender writes and two threads spin (on a 2-core machine the members then get
/// descheduled at any point): no partition ever has two owners (as seen by the listeners),
/// every commit in `on_partitions_revoked` succeeds, and every record is delivered at least
/// once.
#[test]
fn group_members_under_cpu_contention_keep_one_owner_and_revoke_commits_never_fail() {
    contention(&[None, None, None]);
}

/// As above, plus two consumers sharing one `group.instance.id` that keep fencing each other
/// (defect 10 under contention): still one owner per partition and every record delivered.
#[test]
fn static_members_fencing_each_other_under_cpu_contention_keep_one_owner() {
    let (shared, seed) = contention(&[None, None, Some("shared"), Some("shared")]);
    assert!(
        shared.fenced.load(Ordering::Relaxed) > 0,
        "seed {seed}: the static members never fenced each other"
    );
}

/// Runs the members (`Some`: a `group.instance.id`) until every record is seen and the
/// minimum time has passed; checks; returns the counters and the seed.
fn contention(members: &[Option<&'static str>]) -> (Arc<Contention>, u64) {
    let seed = seed();
    let (min_run, records) = if long() {
        (Duration::from_secs(30), 200_000)
    } else {
        (Duration::from_secs(2), 5_000)
    };
    let broker = Broker::temporary().unwrap();
    broker
        .create_topic(
            "t",
            TopicConfig::default().partitions(CONTENTION_PARTITIONS),
        )
        .unwrap();
    let stop_spin = Arc::new(AtomicBool::new(false));
    let spinners: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop_spin.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    std::hint::black_box(x);
                }
            })
        })
        .collect();
    let producer = {
        let broker = broker.clone();
        std::thread::spawn(move || {
            let topic = broker.topic("t").unwrap();
            for i in 0..records {
                let p = topic.partition(i as i32 % CONTENTION_PARTITIONS).unwrap();
                p.append(&[Record::new(format!("{i}"))]).unwrap();
                if i % 500 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
    };
    let shared = Arc::new(Contention::default());
    let stop = Arc::new(AtomicBool::new(false));
    let members: Vec<_> = members
        .iter()
        .enumerate()
        .map(|(id, &instance)| {
            let (b, s, st) = (broker.clone(), shared.clone(), stop.clone());
            std::thread::spawn(move || contention_member(b, id, instance, seed, s, st))
        })
        .collect();
    producer.join().unwrap();
    let start = Instant::now();
    let deadline = start + min_run + Duration::from_secs(60);
    loop {
        let seen = shared.seen.lock().unwrap().len();
        if (seen == records && start.elapsed() >= min_run) || Instant::now() > deadline {
            break;
        }
        if !shared.violations.lock().unwrap().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for m in members {
        m.join().unwrap();
    }
    stop_spin.store(true, Ordering::Relaxed);
    for s in spinners {
        s.join().unwrap();
    }
    let violations = shared.violations.lock().unwrap().clone();
    assert!(violations.is_empty(), "seed {seed}: {violations:#?}");
    let seen = shared.seen.lock().unwrap().len();
    assert_eq!(
        seen, records,
        "seed {seed}: records delivered at least once"
    );
    let owners = shared.owners.snapshot();
    assert!(
        owners.is_empty(),
        "seed {seed}: partitions still owned after every member left: {owners:?}"
    );
    let generation = broker.describe_group("contention").unwrap().generation;
    eprintln!(
        "seed {seed}: generation {generation}, {} commits in on_partitions_revoked, {} \
         RebalanceInProgress on plain commits, {} fenced",
        shared.revoke_commits.load(Ordering::Relaxed),
        shared.rebalances_in_progress.load(Ordering::Relaxed),
        shared.fenced.load(Ordering::Relaxed)
    );
    assert!(
        generation >= 5,
        "seed {seed}: only {generation} generations: no churn happened"
    );
    (shared, seed)
}

/// Found when `commit_sync` started to fsync: `sync_to` (the group commit behind `acks=all`
/// and now `commit_sync`) synced rolled segments itself, the background pass then found
/// nothing unsynced and did not move the recovery point, and the cleaner, which works below
/// it, waited for the 60 s checkpoint. Here: a compacted topic with small segments written
/// with `acks=all` must be compacted within seconds.
#[test]
fn durable_appends_do_not_hold_the_cleaner_back() {
    let broker = Broker::builder()
        .cleaner_backoff(Duration::from_millis(20))
        .open_temporary()
        .unwrap();
    broker
        .create_topic(
            "compacted",
            TopicConfig::default()
                .cleanup_policy(CleanupPolicy::Compact)
                .segment_bytes(4096),
        )
        .unwrap();
    let producer = broker
        .producer(ProducerConfig::default().acks(Acks::All))
        .unwrap();
    for i in 0..2_000 {
        producer
            .send(
                ProducerRecord::new("compacted", format!("value-{i:06}"))
                    .key(format!("k{}", i % 10)),
            )
            .unwrap()
            .wait()
            .unwrap();
    }
    // Every closed segment is cleaned once writes stop (the dirty ratio of the last one is
    // far above 0.5): nothing dirty is left below the active segment.
    let dirty = || broker.describe_topic("compacted").unwrap().partitions[0].dirty_bytes;
    let deadline = Instant::now() + Duration::from_secs(10);
    while dirty() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let d = broker.describe_topic("compacted").unwrap();
    assert_eq!(d.partitions[0].dirty_bytes, 0, "after 10 s: {d:?}");
}
