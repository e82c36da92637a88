//! Concurrency stress: keyed producers, two churning consumer groups, retention and
//! compaction, at once.
//!
//! For a bounded time (about 10 s in CI, `EMBROKER_LONG=1`: 60 s) these run together:
//! - producer threads send keyed records (acks=1) to `events`; each value carries its key and a
//!   per-key sequence number;
//! - two consumer groups on `events`, each with member threads that join, poll for a random
//!   while, commit and leave, over and over (auto-commit off; commits in
//!   `on_partitions_revoked` and before close);
//! - on a separate topic `churn` with small segments and `retention.bytes`, a producer, a thread
//!   running `broker.enforce_retention()` in a loop, and a reader that re-reads from the log
//!   start (retention only runs on `churn`, so the `events` checks are exact);
//! - on a compacted topic `latest` with small segments, a writer of keyed updates and
//!   tombstones, a reader scanning from the log start over and over, and the log cleaner thread
//!   every 10 ms (it also compacts `__consumer_offsets` under the groups' commits).
//!
//! Checked:
//! - per group, every record of `events` is delivered at least once: what the members saw,
//!   plus a final drain from the committed offsets, covers every offset of every partition
//!   (a commit past an undelivered record would leave a hole);
//! - per group, each partition has at most one owner at a time: an ownership table fed only by
//!   the rebalance callbacks, and every polled record must come from a partition its member
//!   owns in that table;
//! - per-key order: within a partition a key's sequence numbers increase with the offset (in
//!   the log and in every poll), and a key never appears in two partitions;
//! - on `churn`: reads never fail except `OffsetOutOfRange` below a moving log start, offsets
//!   read are contiguous, and the log start only moves forward;
//! - on `latest`: every scan sees offsets increasing and each key's sequence numbers
//!   increasing with them, reads never fail, and at the end the latest value of every key is
//!   exactly the writer's.
//!
//! Why it matters: these paths share locks (segment list, group coordinator, offsets topic)
//! and only meet under load; a race shows up as a lost record, a double owner or a reorder.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::XorShift;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use embroker::{
    Acks, Broker, CleanupPolicy, Consumer, Error, ProducerConfig, ProducerRecord,
    RebalanceListener, Record, TopicConfig, TopicPartition,
};

const EVENTS: &str = "events";
const PARTITIONS: i32 = 4;
const PRODUCERS: usize = 3;
const KEYS_PER_PRODUCER: u64 = 8;
const MEMBERS_PER_GROUP: usize = 3;

/// One group's shared state.
#[derive(Default)]
struct GroupState {
    owners: common::Owners<String>,
    seen: Mutex<BTreeSet<(i32, i64)>>,
}

#[derive(Default)]
struct Shared {
    violations: Mutex<Vec<String>>,
}

impl Shared {
    fn violation(&self, v: String) {
        let mut all = self.violations.lock().unwrap();
        if all.len() < 50 {
            all.push(v);
        }
    }
}

struct Owner {
    name: String,
    group: Arc<GroupState>,
    shared: Arc<Shared>,
}

impl RebalanceListener for Owner {
    fn on_partitions_revoked(
        &mut self,
        consumer: &mut Consumer,
        ps: &[TopicPartition],
    ) -> embroker::Result<()> {
        if !ps.is_empty() {
            consumer.commit_sync()?;
        }
        for violation in self.group.owners.release(&self.name, ps, "revokes") {
            self.shared.violation(violation);
        }
        Ok(())
    }

    fn on_partitions_assigned(
        &mut self,
        _: &mut Consumer,
        ps: &[TopicPartition],
    ) -> embroker::Result<()> {
        for violation in self.group.owners.assign(&self.name, ps) {
            self.shared.violation(violation);
        }
        Ok(())
    }
}

/// "key seq": the key and its sequence number.
fn parse(value: &[u8]) -> (String, u64) {
    let s = std::str::from_utf8(value).unwrap();
    let (k, seq) = s.split_once(' ').unwrap();
    (k.to_string(), seq.parse().unwrap())
}

fn member_loop(
    broker: &Broker,
    group_id: &str,
    name: String,
    group: Arc<GroupState>,
    shared: Arc<Shared>,
    stop: &AtomicBool,
    seed: u64,
) {
    let mut rng = XorShift(seed | 1);
    let mut generation = 0;
    while !stop.load(Ordering::Relaxed) {
        generation += 1;
        let me = format!("{name}#{generation}");
        let mut c = broker
            .consumer(common::manual_commit_config(group_id).max_poll_records(200))
            .unwrap();
        c.subscribe_with_listener(
            &[EVENTS],
            Owner {
                name: me.clone(),
                group: group.clone(),
                shared: shared.clone(),
            },
        )
        .unwrap();
        let stay = Duration::from_millis(100 + rng.next() % 700);
        let until = Instant::now() + stay;
        // Per partition, the last key sequence seen in this membership, to check poll order.
        let mut last_seq: HashMap<String, (i64, u64)> = HashMap::new();
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            let records = match c.poll(Duration::from_millis(50)) {
                Ok(r) => r,
                Err(e) => {
                    shared.violation(format!("{me}: poll: {e}"));
                    break;
                }
            };
            let owners = group.owners.snapshot();
            let mut seen = group.seen.lock().unwrap();
            for r in records.iter() {
                if owners.get(&r.partition) != Some(&me) {
                    shared.violation(format!(
                        "{me} polled {}-{}@{} owned by {:?}",
                        r.topic,
                        r.partition,
                        r.offset,
                        owners.get(&r.partition)
                    ));
                }
                seen.insert((r.partition, r.offset));
                let (key, seq) = parse(r.value.as_deref().unwrap());
                if let Some(&(offset, prev)) = last_seq.get(&key) {
                    // A rewind (a seek back after a rebalance) restarts the order check.
                    if r.offset > offset && seq <= prev {
                        shared.violation(format!(
                            "{me}: key {key} seq {seq}@{} after seq {prev}@{offset}",
                            r.offset
                        ));
                    }
                }
                last_seq.insert(key, (r.offset, seq));
            }
        }
        if let Err(e) = c.commit_sync() {
            // A commit may race a rebalance (CommitFailed, or the retryable
            // RebalanceInProgress while the partitions have not moved); anything else is a bug.
            if !matches!(
                e,
                Error::CommitFailed { .. } | Error::RebalanceInProgress { .. }
            ) {
                shared.violation(format!("{me}: commit: {e}"));
            }
        }
        if let Err(e) = c.close() {
            if !matches!(e, Error::CommitFailed { .. }) {
                shared.violation(format!("{me}: close: {e}"));
            }
        }
    }
}

#[test]
fn producers_churning_groups_and_retention_together() {
    let seed = common::seed();
    common::with_seed(seed, || stress(seed));
}

/// The body of `producers_churning_groups_and_retention_together`.
fn stress(seed: u64) {
    let long = std::env::var("EMBROKER_LONG").is_ok_and(|v| v == "1");
    let run_for = Duration::from_secs(if long { 60 } else { 10 });
    eprintln!("stress: seed {seed}, {run_for:?}");
    let broker = Broker::builder()
        .cleaner_backoff(Duration::from_millis(10))
        .open_temporary()
        .unwrap();
    broker
        .create_topic(
            "latest",
            TopicConfig::default()
                .cleanup_policy(CleanupPolicy::Compact)
                .segment_bytes(4 * 1024)
                .min_cleanable_dirty_ratio(0.1)
                .delete_retention_ms(0),
        )
        .unwrap();
    broker
        .create_topic(
            EVENTS,
            TopicConfig::default()
                .partitions(PARTITIONS)
                .segment_bytes(64 * 1024),
        )
        .unwrap();
    broker
        .create_topic(
            "churn",
            TopicConfig::default()
                .partitions(2)
                .segment_bytes(4 * 1024)
                .retention_bytes(16 * 1024),
        )
        .unwrap();
    let shared = Arc::new(Shared::default());
    let groups: Vec<(String, Arc<GroupState>)> = ["g1", "g2"]
        .iter()
        .map(|g| (g.to_string(), Arc::new(GroupState::default())))
        .collect();
    let stop = AtomicBool::new(false);
    let produced = AtomicU64::new(0);
    let retention_deleted = AtomicU64::new(0);
    let churn_reads = AtomicU64::new(0);
    let latest_scans = AtomicU64::new(0);
    // The writer's model of `latest`: key -> last value (None: deleted).
    let mut latest_model: HashMap<String, Option<String>> = HashMap::new();
    let started = Instant::now();
    std::thread::scope(|s| {
        // Keyed producers on `events`.
        for t in 0..PRODUCERS {
            let broker = broker.clone();
            let (stop, produced) = (&stop, &produced);
            s.spawn(move || {
                let producer = broker
                    .producer(ProducerConfig::default().acks(Acks::Leader))
                    .unwrap();
                let mut seqs = vec![0u64; KEYS_PER_PRODUCER as usize];
                let mut n = 0u64;
                let mut pending = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let k = (n * 7 + t as u64) % KEYS_PER_PRODUCER;
                    let key = format!("p{t}k{k}");
                    let seq = seqs[k as usize];
                    seqs[k as usize] += 1;
                    pending.push(
                        producer
                            .send(
                                ProducerRecord::new(EVENTS, format!("{key} {seq}"))
                                    .key(key.clone()),
                            )
                            .unwrap(),
                    );
                    n += 1;
                    if pending.len() >= 50 {
                        for f in pending.drain(..) {
                            f.wait().unwrap();
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                for f in pending.drain(..) {
                    f.wait().unwrap();
                }
                producer.close().unwrap();
                produced.fetch_add(n, Ordering::Relaxed);
            });
        }
        // Churning group members.
        for (gi, (group_id, group)) in groups.iter().enumerate() {
            for m in 0..MEMBERS_PER_GROUP {
                let broker = broker.clone();
                let (group, shared, stop) = (group.clone(), shared.clone(), &stop);
                let group_id = group_id.clone();
                s.spawn(move || {
                    member_loop(
                        &broker,
                        &group_id,
                        format!("{group_id}-m{m}"),
                        group,
                        shared,
                        stop,
                        seed ^ ((gi * 16 + m) as u64) << 20,
                    )
                });
            }
        }
        // `churn`: appends, retention and reads from the moving start.
        {
            let broker = broker.clone();
            let stop = &stop;
            s.spawn(move || {
                let t = broker.topic("churn").unwrap();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let p = t.partition((i % 2) as i32).unwrap();
                    p.append(&[Record::new(format!("churn {i} {}", "c".repeat(100)))])
                        .unwrap();
                    i += 1;
                    if i.is_multiple_of(64) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            });
        }
        {
            let broker = broker.clone();
            let (stop, deleted) = (&stop, &retention_deleted);
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    deleted.fetch_add(
                        broker.enforce_retention().unwrap() as u64,
                        Ordering::Relaxed,
                    );
                    std::thread::sleep(Duration::from_millis(2));
                }
            });
        }
        {
            let broker = broker.clone();
            let (stop, shared, reads) = (&stop, shared.clone(), &churn_reads);
            s.spawn(move || {
                let t = broker.topic("churn").unwrap();
                let mut last_start = [0i64; 2];
                while !stop.load(Ordering::Relaxed) {
                    for pn in 0..2 {
                        let p = t.partition(pn).unwrap();
                        let start = p.log_start_offset();
                        if start < last_start[pn as usize] {
                            shared.violation(format!(
                                "churn-{pn}: log start went back from {} to {start}",
                                last_start[pn as usize]
                            ));
                        }
                        last_start[pn as usize] = start;
                        let mut at = start;
                        let end = p.log_end_offset();
                        while at < end {
                            match p.read(at, 8 * 1024) {
                                Ok(r) => {
                                    for rec in r.iter() {
                                        if rec.offset != at {
                                            shared.violation(format!(
                                                "churn-{pn}: read {} expecting {at}",
                                                rec.offset
                                            ));
                                        }
                                        at = rec.offset + 1;
                                    }
                                    reads.fetch_add(1, Ordering::Relaxed);
                                    if r.is_empty() {
                                        break;
                                    }
                                }
                                Err(Error::OffsetOutOfRange { log_start, .. })
                                    if log_start > at =>
                                {
                                    at = log_start;
                                }
                                Err(e) => {
                                    shared.violation(format!("churn-{pn}: read {at}: {e}"));
                                    break;
                                }
                            }
                        }
                    }
                }
            });
        }
        // `latest`: keyed updates and tombstones while the cleaner compacts under a reader.
        {
            let broker = broker.clone();
            let (stop, model) = (&stop, &mut latest_model);
            s.spawn(move || {
                let p = broker.topic("latest").unwrap().partition(0).unwrap();
                let mut rng = XorShift(seed ^ 0x1a7e57);
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("L{}", rng.next() % 50);
                    seq += 1;
                    let (record, value) = if rng.next().is_multiple_of(8) {
                        (Record::tombstone(key.clone()), None)
                    } else {
                        let v = format!("{key} {seq}");
                        (Record::new(v.clone()).key(key.clone()), Some(v))
                    };
                    p.append(&[record]).unwrap();
                    model.insert(key, value);
                    if seq.is_multiple_of(32) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            });
        }
        {
            let broker = broker.clone();
            let (stop, shared, scans) = (&stop, shared.clone(), &latest_scans);
            s.spawn(move || {
                let p = broker.topic("latest").unwrap().partition(0).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let mut at = p.log_start_offset();
                    let end = p.log_end_offset();
                    let mut last_seq: HashMap<Vec<u8>, u64> = HashMap::new();
                    while at < end {
                        let r = match p.read(at, 1 << 14) {
                            Ok(r) => r,
                            Err(e) => {
                                shared.violation(format!("latest: read {at}: {e}"));
                                return;
                            }
                        };
                        for rec in r.iter() {
                            if rec.offset < at {
                                shared.violation(format!("latest: {} read from {at}", rec.offset));
                            }
                            at = rec.offset + 1;
                            let key = rec.key.clone().unwrap().to_vec();
                            // Tombstones carry no sequence; values end with theirs.
                            let Some(v) = rec.value.as_deref() else {
                                continue;
                            };
                            let (vkey, seq) = parse(v);
                            if vkey.as_bytes() != key.as_slice() {
                                shared.violation(format!("latest@{}: key {vkey}", rec.offset));
                            }
                            if last_seq.get(&key).is_some_and(|&prev| seq <= prev) {
                                shared.violation(format!(
                                    "latest@{}: {vkey} {seq} out of order",
                                    rec.offset
                                ));
                            }
                            last_seq.insert(key, seq);
                        }
                        at = at.max(r.next_offset());
                    }
                    scans.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(run_for);
        stop.store(true, Ordering::Relaxed);
    });
    // `latest`: after a last flush and cleaner round, exactly the writer's latest values.
    broker.flush().unwrap();
    let cleaned = broker.run_log_cleaner().unwrap();
    assert!(cleaned.partitions_failed.is_empty(), "{cleaned:?}");
    let p = broker.topic("latest").unwrap().partition(0).unwrap();
    let mut view: HashMap<String, Option<String>> = HashMap::new();
    let mut at = p.log_start_offset();
    while at < p.log_end_offset() {
        let r = p.read(at, 1 << 16).unwrap();
        for rec in r.iter() {
            let key = String::from_utf8(rec.key.as_deref().unwrap().to_vec()).unwrap();
            let value = rec
                .value
                .as_deref()
                .map(|v| String::from_utf8(v.to_vec()).unwrap());
            view.insert(key, value);
        }
        at = r.next_offset();
    }
    let live = |m: &HashMap<String, Option<String>>| -> BTreeMap<String, String> {
        m.iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect()
    };
    assert_eq!(
        live(&view),
        live(&latest_model),
        "latest values after compaction"
    );
    let latest_size = broker.describe_topic("latest").unwrap().partitions[0].size_bytes;
    let churned = started.elapsed();

    // The log: per-key order, one partition per key.
    let topic = broker.topic(EVENTS).unwrap();
    let mut key_partition: HashMap<String, i32> = HashMap::new();
    let mut ends = BTreeMap::new();
    let mut total = 0u64;
    for pn in 0..PARTITIONS {
        let p = topic.partition(pn).unwrap();
        ends.insert(pn, p.log_end_offset());
        total += p.log_end_offset() as u64;
        let mut last: HashMap<String, u64> = HashMap::new();
        let mut at = 0;
        while at < p.log_end_offset() {
            let r = p.read(at, 1 << 16).unwrap();
            for rec in r.iter() {
                let (key, seq) = parse(rec.value.as_deref().unwrap());
                assert_eq!(rec.key.as_deref(), Some(key.as_bytes()));
                if let Some(&other) = key_partition.get(&key) {
                    assert_eq!(other, pn, "key {key} in partitions {other} and {pn}");
                }
                key_partition.insert(key.clone(), pn);
                if let Some(&prev) = last.get(&key) {
                    assert_eq!(seq, prev + 1, "key {key} in {EVENTS}-{pn}@{}", rec.offset);
                } else {
                    assert_eq!(seq, 0, "key {key} starts at {seq}");
                }
                last.insert(key, seq);
            }
            at = r.next_offset();
        }
    }
    assert_eq!(
        total,
        produced.load(Ordering::Relaxed),
        "records in the log"
    );

    // Per group: what was seen, plus a drain from the committed offsets, covers everything.
    for (group_id, group) in &groups {
        let mut c = broker
            .consumer(common::manual_commit_config(group_id.as_str()))
            .unwrap();
        c.subscribe(&[EVENTS]).unwrap();
        let mut seen = group.seen.lock().unwrap();
        let drain_until = Instant::now() + Duration::from_secs(20);
        loop {
            let caught_up = ends.iter().all(|(&pn, &end)| {
                c.position(&TopicPartition::new(EVENTS, pn))
                    .is_ok_and(|pos| pos >= end)
            });
            if caught_up && !c.assignment().is_empty() {
                break;
            }
            assert!(Instant::now() < drain_until, "{group_id}: drain stuck");
            for r in c.poll(Duration::from_millis(50)).unwrap().iter() {
                seen.insert((r.partition, r.offset));
            }
        }
        c.close().unwrap();
        for (&pn, &end) in &ends {
            let missing: Vec<i64> = (0..end).filter(|o| !seen.contains(&(pn, *o))).collect();
            assert!(
                missing.is_empty(),
                "{group_id}: {} records of {EVENTS}-{pn} never delivered, first {:?} (seed {seed})",
                missing.len(),
                &missing[..missing.len().min(10)]
            );
        }
    }
    let violations = shared.violations.lock().unwrap();
    eprintln!(
        "stress: {churned:?}, {total} records produced and delivered to 2 groups, {} churn reads, {} churn segments deleted by retention, {} scans of `latest` under compaction ({} live keys after {} writes, {latest_size} bytes left), {} violations",
        churn_reads.load(Ordering::Relaxed),
        retention_deleted.load(Ordering::Relaxed),
        latest_scans.load(Ordering::Relaxed),
        live(&view).len(),
        p.log_end_offset(),
        violations.len()
    );
    assert!(
        violations.is_empty(),
        "seed {seed}:\n{}",
        violations.join("\n")
    );
    broker.close().unwrap();
}
