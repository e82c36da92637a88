//! Hostile environment: CPU contention. Spinning threads (busy loops, three by default,
//! `EMBROKER_SPINNERS` to change) compete for the cores with each scenario's threads, so
//! that threads are preempted between any two instructions (a race that needs a thread to stall
//! between two stores shows up here, rarely on an idle machine).
//!
//! Scenarios, each about 1.5 s in CI and about 60 s with `EMBROKER_LONG=1`:
//! - (a) one appender of 1-record batches and one assigned consumer (`auto.offset.reset=none`)
//!   in a poll loop: the consumer sees every offset exactly once, in order, never an offset at
//!   or past the log end it can observe after the poll, and never an error; beside them a tail
//!   reader reads the last published record over and over and must never see one past it;
//! - (b) two producers (acks=1 and acks=all, one partition each, so offsets are send order) and
//!   readers calling `Partition::read` from random offsets: every read is contiguous, starts at
//!   or after the offset asked, stays below the log end, and holds the value the producer wrote
//!   for that offset (`o<offset>`);
//! - (c) retention on 4 KiB segments with a small `retention.bytes` and a 5 ms retention check
//!   while readers follow from the log start: the only error is `OffsetOutOfRange` for an
//!   offset below a log start that only moves forward, never one above the log end;
//! - (d) the log cleaner (10 ms backoff) on a compacted topic with keyed updates while a reader
//!   scans: offsets strictly increase, each key's values increase, and every scan finds the
//!   latest value of every key not written again while it ran; afterwards, the latest value of
//!   every key is exactly the writer's;
//! - (e) consumer group members (range, and cooperative-sticky) joining and leaving: at most one
//!   owner per partition at any time (from the rebalance callbacks), records polled only by
//!   their owner, a commit in `on_partitions_revoked` never refused, and every record delivered
//!   at least once (what members saw plus a drain from the committed offsets).
//!
//! All randomness comes from one seed, printed in every failure message; `EMBROKER_SEED=<n>`
//! replays it (the interleaving of threads is not replayable, the choices are).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::XorShift;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use embroker::{
    Acks, AssignmentStrategy, Broker, CleanupPolicy, Consumer, ConsumerConfig, Error, OffsetReset,
    Partition, ProducerConfig, ProducerRecord, Record, TopicConfig, TopicPartition,
};

fn long() -> bool {
    std::env::var("EMBROKER_LONG").is_ok_and(|v| v == "1")
}

fn run_for() -> Duration {
    if long() {
        Duration::from_secs(60)
    } else {
        Duration::from_millis(1500)
    }
}

/// Busy threads that hold the cores until dropped.
struct Spinners {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Spinners {
    fn start() -> Spinners {
        let n = std::env::var("EMBROKER_SPINNERS")
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(3);
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|i| {
                let stop = stop.clone();
                std::thread::Builder::new()
                    .name(format!("spinner-{i}"))
                    .spawn(move || {
                        let mut x = i as u64 + 1;
                        while !stop.load(Ordering::Relaxed) {
                            for _ in 0..1000 {
                                x = std::hint::black_box(x.wrapping_mul(6364136223846793005) + 1);
                            }
                        }
                    })
                    .expect("spawn spinner")
            })
            .collect();
        Spinners { stop, threads }
    }
}

impl Drop for Spinners {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Violations found by any thread, reported together with the seed.
struct Violations {
    seed: u64,
    scenario: &'static str,
    list: Mutex<Vec<String>>,
    count: AtomicU64,
}

impl Violations {
    fn new(seed: u64, scenario: &'static str) -> Violations {
        Violations {
            seed,
            scenario,
            list: Mutex::new(Vec::new()),
            count: AtomicU64::new(0),
        }
    }

    fn add(&self, v: String) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut list = self.list.lock().unwrap();
        if list.len() < 30 {
            list.push(v);
        }
    }

    fn any(&self) -> bool {
        self.count.load(Ordering::Relaxed) > 0
    }

    /// Unwraps `r`, or panics with the seed in the message.
    fn must<T>(&self, r: embroker::Result<T>, what: &str) -> T {
        match r {
            Ok(v) => v,
            Err(e) => panic!(
                "{}: {what}: {e} (seed {}, replay with EMBROKER_SEED={})",
                self.scenario, self.seed, self.seed
            ),
        }
    }

    fn check(&self) {
        let n = self.count.load(Ordering::Relaxed);
        let list = self.list.lock().unwrap();
        assert!(
            n == 0,
            "{}: {n} violations (seed {}, replay with EMBROKER_SEED={}), first {}:\n{}",
            self.scenario,
            self.seed,
            self.seed,
            list.len(),
            list.join("\n")
        );
    }
}

fn start(scenario: &'static str) -> (u64, Arc<Violations>, Spinners) {
    let seed = common::seed();
    eprintln!("{scenario}: seed {seed}, {:?}", run_for());
    (
        seed,
        Arc::new(Violations::new(seed, scenario)),
        Spinners::start(),
    )
}

/// The value written at `offset` where values are derived from offsets.
/// Appends `record(i)` for i = 0, 1, … until `stop`, each of which must land at offset i;
/// publishes the count in `appended` and calls `pace` with it after each append. A failed or
/// misplaced append is a violation and ends the loop.
fn append_in_order(
    p: &Partition,
    stop: &AtomicBool,
    appended: &AtomicI64,
    v: &Violations,
    record: impl Fn(i64) -> Record,
    pace: impl Fn(i64),
) {
    let mut i = 0i64;
    while !stop.load(Ordering::Relaxed) {
        match p.append(&[record(i)]) {
            Ok(base) if base == i => {}
            Ok(base) => {
                v.add(format!("append {i} landed at {base}"));
                break;
            }
            Err(e) => {
                v.add(format!("append {i}: {e}"));
                break;
            }
        }
        i += 1;
        appended.store(i, Ordering::Release);
        pace(i);
    }
}

fn value_for(offset: i64) -> String {
    format!("o{offset}")
}

fn value_str(v: Option<&[u8]>) -> String {
    v.map_or_else(
        || "<null>".to_string(),
        |v| String::from_utf8_lossy(v).into_owned(),
    )
}

// (a) ------------------------------------------------------------------------------------

#[test]
fn a_consumer_trailing_a_one_record_appender_sees_each_offset_once_below_the_log_end() {
    let (seed, v, _spin) = start("contention-a");
    let broker = v.must(Broker::temporary(), "open");
    v.must(
        broker.create_topic("a", TopicConfig::default().segment_bytes(256 * 1024)),
        "create topic",
    );
    let p = v.must(broker.topic("a").and_then(|t| t.partition(0)), "partition");
    let tp = TopicPartition::new("a", 0);
    let stop = AtomicBool::new(false);
    let appended = AtomicI64::new(0);
    let mut rng = XorShift(seed);
    let mut consumer = v.must(
        broker.consumer(
            ConsumerConfig::default()
                .auto_offset_reset(OffsetReset::None)
                .max_poll_records(1 + rng.below(300) as u32),
        ),
        "consumer",
    );
    v.must(consumer.assign(std::slice::from_ref(&tp)), "assign");
    v.must(consumer.seek(&tp, 0), "seek");
    let mut next = 0i64;
    let mut polls = 0u64;
    let mut errors = 0u64;
    std::thread::scope(|s| {
        {
            let (p, stop, appended, v) = (p.clone(), &stop, &appended, &v);
            let pause_every = 64 + XorShift(seed ^ 0xa99e).below(512);
            s.spawn(move || {
                append_in_order(
                    &p,
                    stop,
                    appended,
                    v,
                    |i| Record::new(value_for(i)),
                    |i| {
                        if (i as u64).is_multiple_of(pause_every) {
                            std::thread::yield_now();
                        }
                    },
                );
            });
        }
        // A tail reader: `Partition::read` of the last published record, over and over, so that
        // a read lands in any window where bytes past the log end are visible.
        {
            let (p, stop, v) = (p.clone(), &stop, &v);
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let end = p.log_end_offset();
                    if end == 0 {
                        std::thread::yield_now();
                        continue;
                    }
                    match p.read(end - 1, 64 * 1024) {
                        Ok(records) => {
                            check_read(v, &p, "tail reader", end - 1, &records);
                        }
                        Err(e) => v.add(format!("tail reader: read {}: {e}", end - 1)),
                    }
                }
            });
        }
        let mut poll = |consumer: &mut Consumer, next: &mut i64| -> bool {
            polls += 1;
            match consumer.poll(Duration::from_millis(20)) {
                Ok(records) => {
                    let end = p.log_end_offset();
                    for r in records.iter() {
                        if r.offset != *next {
                            v.add(format!("polled offset {} expecting {next}", r.offset));
                        }
                        if r.offset >= end {
                            v.add(format!(
                                "polled offset {} at or past the log end {end} read after the poll",
                                r.offset
                            ));
                        }
                        if r.value.as_deref() != Some(value_for(r.offset).as_bytes()) {
                            v.add(format!(
                                "offset {} holds {}",
                                r.offset,
                                value_str(r.value.as_deref())
                            ));
                        }
                        *next = r.offset + 1;
                    }
                    true
                }
                Err(e) => {
                    errors += 1;
                    v.add(format!("poll at {next}: {e}"));
                    // Carry on from where we were, so that one error does not end the run.
                    consumer.seek(&tp, *next).is_ok() && errors < 20
                }
            }
        };
        let until = Instant::now() + run_for();
        while Instant::now() < until && !v.any() {
            if !poll(&mut consumer, &mut next) {
                break;
            }
        }
        // The appender stops; the scope joins it, then the consumer drains to its last record.
        stop.store(true, Ordering::Relaxed);
    });
    let total = appended.load(Ordering::Acquire);
    let drain_until = Instant::now() + Duration::from_secs(20);
    while next < total && !v.any() && Instant::now() < drain_until {
        let records = v.must(consumer.poll(Duration::from_millis(20)), "drain poll");
        for r in records.iter() {
            if r.offset != next {
                v.add(format!("drain: offset {} expecting {next}", r.offset));
            }
            next = r.offset + 1;
        }
    }
    if !v.any() && next != total {
        v.add(format!("consumer reached {next} of {total} records"));
    }
    eprintln!(
        "contention-a: {total} records appended, {polls} polls, {errors} poll errors (seed {seed})"
    );
    v.check();
    v.must(consumer.close(), "consumer close");
    v.must(broker.close(), "close");
}

// (b) ------------------------------------------------------------------------------------

/// Checks one read from `from` of `p` (values `o<offset>`): contiguous, at or after `from`,
/// below the log end read after it, each value its offset's. Returns the next offset.
fn check_read(
    v: &Violations,
    p: &Partition,
    what: &str,
    from: i64,
    records: &embroker::Records,
) -> i64 {
    let end = p.log_end_offset();
    let mut expect: Option<i64> = None;
    let mut next = from;
    for r in records.iter() {
        if r.offset < from {
            v.add(format!(
                "{what}: read from {from} returned offset {}",
                r.offset
            ));
        }
        if let Some(e) = expect {
            if r.offset != e {
                v.add(format!(
                    "{what}: read from {from}: offset {} after {}",
                    r.offset,
                    e - 1
                ));
            }
        }
        if r.offset >= end {
            v.add(format!(
                "{what}: read from {from} returned offset {} at or past the log end {end} read after it",
                r.offset
            ));
        }
        if r.value.as_deref() != Some(value_for(r.offset).as_bytes()) {
            v.add(format!(
                "{what}: offset {} holds {}",
                r.offset,
                value_str(r.value.as_deref())
            ));
        }
        expect = Some(r.offset + 1);
        next = r.offset + 1;
    }
    next
}

#[test]
fn b_random_reads_beside_acks_1_and_acks_all_producers_return_what_was_written() {
    let (seed, v, _spin) = start("contention-b");
    let broker = v.must(Broker::temporary(), "open");
    v.must(
        broker.create_topic(
            "b",
            TopicConfig::default()
                .partitions(2)
                .segment_bytes(16 * 1024),
        ),
        "create topic",
    );
    let topic = v.must(broker.topic("b"), "topic");
    let parts: Vec<Partition> = (0..2)
        .map(|pn| v.must(topic.partition(pn), "partition"))
        .collect();
    let stop = AtomicBool::new(false);
    let acked = [AtomicI64::new(0), AtomicI64::new(0)];
    let reads = AtomicU64::new(0);
    std::thread::scope(|s| {
        // Partition 0: acks=1; partition 1: acks=all. One producer per partition, so the
        // records' offsets are their send order.
        for (pn, acks) in [(0, Acks::Leader), (1, Acks::All)] {
            let (broker, stop, acked, v) = (broker.clone(), &stop, &acked, &v);
            s.spawn(move || {
                let producer = v.must(
                    broker.producer(ProducerConfig::default().acks(acks)),
                    "producer",
                );
                let mut rng = XorShift(seed ^ (0xb0 + pn as u64));
                let mut seq = 0i64;
                'run: while !stop.load(Ordering::Relaxed) {
                    let window = 1 + rng.below(64) as usize;
                    let mut pending = Vec::with_capacity(window);
                    for _ in 0..window {
                        let record = ProducerRecord::new("b", value_for(seq)).partition(pn);
                        match producer.send(record) {
                            Ok(f) => pending.push((seq, f)),
                            Err(e) => {
                                v.add(format!("b-{pn}: send {seq}: {e}"));
                                break 'run;
                            }
                        }
                        seq += 1;
                    }
                    for (seq, f) in pending {
                        match f.wait() {
                            Ok(m) if m.offset == seq => {
                                acked[pn as usize].fetch_max(seq + 1, Ordering::AcqRel);
                            }
                            Ok(m) => v.add(format!("b-{pn}: record {seq} acked at {}", m.offset)),
                            Err(e) => v.add(format!("b-{pn}: record {seq}: {e}")),
                        }
                    }
                }
                v.must(producer.close(), "producer close");
            });
        }
        for reader in 0..2u64 {
            let (parts, stop, reads, v) = (&parts, &stop, &reads, &v);
            s.spawn(move || {
                let mut rng = XorShift(seed ^ (0xbead + reader));
                while !stop.load(Ordering::Relaxed) {
                    let pn = rng.below(2) as usize;
                    let p = &parts[pn];
                    let end = p.log_end_offset();
                    let from = rng.below(end as u64 + 1) as i64;
                    let max_bytes = 1 + rng.below(32 * 1024) as usize;
                    let what = format!("b-{pn} reader {reader}");
                    match p.read(from, max_bytes) {
                        Ok(records) => {
                            if from < end && records.iter().next().is_none() {
                                v.add(format!("{what}: read from {from} below end {end} is empty"));
                            }
                            check_read(v, p, &what, from, &records);
                        }
                        Err(e) => v.add(format!("{what}: read from {from} (end {end}): {e}")),
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(run_for());
        stop.store(true, Ordering::Relaxed);
    });
    // Everything acknowledged reads back, in full.
    for (pn, p) in parts.iter().enumerate() {
        let end = p.log_end_offset();
        let acked = acked[pn].load(Ordering::Acquire);
        if end != acked {
            v.add(format!(
                "b-{pn}: log end {end}, {acked} records acknowledged"
            ));
        }
        let mut at = 0;
        while at < end {
            let r = v.must(p.read(at, 64 * 1024), "final read");
            at = check_read(&v, p, &format!("b-{pn} final"), at, &r);
        }
    }
    eprintln!(
        "contention-b: {} + {} records acknowledged, {} reads (seed {seed})",
        acked[0].load(Ordering::Relaxed),
        acked[1].load(Ordering::Relaxed),
        reads.load(Ordering::Relaxed)
    );
    v.check();
    v.must(broker.close(), "close");
}

// (c) ------------------------------------------------------------------------------------

#[test]
fn c_readers_following_retention_see_out_of_range_only_below_the_moving_start() {
    let (seed, v, _spin) = start("contention-c");
    let broker = v.must(
        Broker::builder()
            .retention_check_interval(Duration::from_millis(5))
            .open_temporary(),
        "open",
    );
    v.must(
        broker.create_topic(
            "c",
            TopicConfig::default()
                .segment_bytes(4 * 1024)
                .retention_bytes(12 * 1024),
        ),
        "create topic",
    );
    let p = v.must(broker.topic("c").and_then(|t| t.partition(0)), "partition");
    let stop = AtomicBool::new(false);
    let appended = AtomicI64::new(0);
    let reads = AtomicU64::new(0);
    let below_start = AtomicU64::new(0);
    let max_start = AtomicI64::new(0);
    std::thread::scope(|s| {
        {
            let (p, stop, appended, v) = (&p, &stop, &appended, &v);
            s.spawn(move || {
                let pad = "c".repeat(60);
                append_in_order(
                    p,
                    stop,
                    appended,
                    v,
                    // The value starts with `o<offset>` and is padded to fill segments.
                    |i| Record::new(value_for(i)).header("pad", pad.clone()),
                    // Paced, so retention keeps up: this scenario is about readers.
                    |i| {
                        if (i as u64).is_multiple_of(32) {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    },
                );
            });
        }
        for reader in 0..2u64 {
            let (p, stop, v, reads, below_start, max_start) =
                (&p, &stop, &v, &reads, &below_start, &max_start);
            s.spawn(move || {
                let mut rng = XorShift(seed ^ (0xc0de + reader));
                let mut at = p.log_start_offset();
                let mut last_start = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    let start = p.log_start_offset();
                    if start < last_start {
                        v.add(format!("log start went back from {last_start} to {start}"));
                    }
                    last_start = start;
                    max_start.fetch_max(start, Ordering::Relaxed);
                    // Reader 1 sometimes restarts from the log start it reads (races deletion).
                    if reader == 1 && rng.below(8) == 0 {
                        at = start;
                    }
                    let max_bytes = 1 + rng.below(4 * 1024) as usize;
                    match p.read(at, max_bytes) {
                        Ok(records) => {
                            at = check_read(v, p, &format!("c reader {reader}"), at, &records);
                        }
                        Err(Error::OffsetOutOfRange {
                            offset,
                            log_start,
                            log_end,
                            ..
                        }) => {
                            if offset >= log_start {
                                v.add(format!(
                                    "reader {reader}: read {offset} out of range not below the start: log start {log_start}, log end {log_end}"
                                ));
                                break;
                            }
                            below_start.fetch_add(1, Ordering::Relaxed);
                            at = log_start;
                        }
                        Err(e) => {
                            v.add(format!("reader {reader}: read {at}: {e}"));
                            break;
                        }
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                    // Fall behind now and then, so that retention overtakes the reader.
                    if rng.below(16) == 0 {
                        std::thread::sleep(Duration::from_millis(rng.below(20)));
                    }
                }
            });
        }
        std::thread::sleep(run_for());
        stop.store(true, Ordering::Relaxed);
    });
    let total = appended.load(Ordering::Acquire);
    if p.log_end_offset() != total {
        v.add(format!(
            "log end {} after {total} appends",
            p.log_end_offset()
        ));
    }
    // What retention kept reads back whole. The retention thread runs on after the appenders
    // stop and may move the log start past `at` while this loop reads: start again there.
    let mut at = p.log_start_offset();
    while at < p.log_end_offset() {
        let r = match p.read(at, 64 * 1024) {
            Err(Error::OffsetOutOfRange { .. }) if at < p.log_start_offset() => {
                at = p.log_start_offset();
                continue;
            }
            r => v.must(r, "final read"),
        };
        at = check_read(&v, &p, "c final", at, &r);
    }
    let segments = v.must(broker.describe_topic("c"), "describe").partitions[0].segment_count;
    eprintln!(
        "contention-c: {total} records, {} reads, {} out of range below the start, log start {}, {segments} segments left (seed {seed})",
        reads.load(Ordering::Relaxed),
        below_start.load(Ordering::Relaxed),
        max_start.load(Ordering::Relaxed)
    );
    v.check();
    v.must(broker.close(), "close");
}

// (d) ------------------------------------------------------------------------------------

/// "key seq": a key and the writer's sequence number.
fn parse_kv(value: &[u8]) -> Option<(String, u64)> {
    let s = std::str::from_utf8(value).ok()?;
    let (k, seq) = s.split_once(' ')?;
    Some((k.to_string(), seq.parse().ok()?))
}

#[test]
fn d_scans_under_the_cleaner_keep_every_keys_latest_value_and_order() {
    let (seed, v, _spin) = start("contention-d");
    let broker = v.must(
        Broker::builder()
            .cleaner_backoff(Duration::from_millis(10))
            .open_temporary(),
        "open",
    );
    v.must(
        broker.create_topic(
            "d",
            TopicConfig::default()
                .cleanup_policy(CleanupPolicy::Compact)
                .segment_bytes(4 * 1024)
                .min_cleanable_dirty_ratio(0.1)
                .delete_retention_ms(0),
        ),
        "create topic",
    );
    let p = v.must(broker.topic("d").and_then(|t| t.partition(0)), "partition");
    // Keys `K*` are only updated; keys `T*` are also deleted (tombstones), so they are left
    // out of the "latest value survives" check during scans.
    let model: Mutex<HashMap<String, Option<u64>>> = Mutex::new(HashMap::new());
    let stop = AtomicBool::new(false);
    let scans = AtomicU64::new(0);
    std::thread::scope(|s| {
        {
            let (p, stop, model, v) = (&p, &stop, &model, &v);
            s.spawn(move || {
                let mut rng = XorShift(seed ^ 0xd00d);
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    seq += 1;
                    let tombstone_key = rng.below(4) == 0;
                    let key = if tombstone_key {
                        format!("T{}", rng.below(10))
                    } else {
                        format!("K{}", rng.below(40))
                    };
                    let (record, value) = if tombstone_key && rng.below(3) == 0 {
                        (Record::tombstone(key.clone()), None)
                    } else {
                        (
                            Record::new(format!("{key} {seq}")).key(key.clone()),
                            Some(seq),
                        )
                    };
                    // The model changes under its lock together with the log, so a snapshot
                    // of it is exactly what the log holds.
                    let mut m = model.lock().unwrap();
                    if let Err(e) = p.append(&[record]) {
                        v.add(format!("append {key} {seq}: {e}"));
                        break;
                    }
                    m.insert(key, value);
                    drop(m);
                    if seq.is_multiple_of(32) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            });
        }
        {
            let (p, stop, model, v, scans) = (&p, &stop, &model, &v, &scans);
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) && !v.any() {
                    let before: HashMap<String, Option<u64>> = model.lock().unwrap().clone();
                    let mut at = p.log_start_offset();
                    let end = p.log_end_offset();
                    let mut last_offset = -1i64;
                    let mut last_seq: HashMap<String, u64> = HashMap::new();
                    // Reads that moved past offsets they did not return (gaps compaction
                    // leaves, or a bug): the explanation if a latest value goes missing.
                    let mut jumps: Vec<String> = Vec::new();
                    let mut seen = 0u64;
                    while at < end {
                        let r = match p.read(at, 16 * 1024) {
                            Ok(r) => r,
                            Err(e) => {
                                v.add(format!("scan: read {at}: {e}"));
                                return;
                            }
                        };
                        for rec in r.iter() {
                            if rec.offset < at || rec.offset <= last_offset {
                                v.add(format!(
                                    "scan: offset {} read from {at} after {last_offset}",
                                    rec.offset
                                ));
                            }
                            last_offset = rec.offset;
                            seen += 1;
                            let Some(value) = rec.value.as_deref() else {
                                continue; // a tombstone
                            };
                            let Some((key, seq)) = parse_kv(value) else {
                                v.add(format!("scan: offset {} holds {value:?}", rec.offset));
                                continue;
                            };
                            if rec.key.as_deref() != Some(key.as_bytes()) {
                                v.add(format!("scan: offset {} key mismatch {key}", rec.offset));
                            }
                            if last_seq.get(&key).is_some_and(|&prev| seq <= prev) {
                                v.add(format!("scan: {key} {seq}@{} out of order", rec.offset));
                            }
                            last_seq.insert(key, seq);
                        }
                        let last = r.iter().last().map(|rec| rec.offset);
                        if r.next_offset() > last.map_or(at, |o| o + 1) && jumps.len() < 8 {
                            jumps.push(format!(
                                "read({at}) -> {} records, last {last:?}, next {} (log start {}, end {})",
                                r.iter().count(),
                                r.next_offset(),
                                p.log_start_offset(),
                                p.log_end_offset()
                            ));
                        }
                        at = at.max(r.next_offset());
                    }
                    // A key written again during the scan may lose its old value to the cleaner
                    // while its new one lies past `end` (Kafka promises the latest values only to
                    // a reader that reaches the moving end); a key left alone may not.
                    let after: HashMap<String, Option<u64>> = model.lock().unwrap().clone();
                    let mut missed = Vec::new();
                    for (key, seq) in &before {
                        let Some(seq) = seq else { continue };
                        let unchanged = after.get(key) == Some(&Some(*seq));
                        if key.starts_with('K')
                            && unchanged
                            && last_seq.get(key).is_none_or(|s| s < seq)
                        {
                            missed.push(format!(
                                "scan to {end}: {key} latest {:?}, but {seq} was written before the scan",
                                last_seq.get(key)
                            ));
                        }
                    }
                    if !missed.is_empty() {
                        // What the log holds at one missing value's offset now (the writer's
                        // sequence number is its offset + 1).
                        let probe = before
                            .iter()
                            .filter(|(k, s)| {
                                k.starts_with('K')
                                    && s.is_some_and(|s| last_seq.get(*k).is_none_or(|l| *l < s))
                            })
                            .filter_map(|(k, s)| s.map(|s| (k.clone(), s as i64 - 1)))
                            .next()
                            .map(|(k, o)| {
                                let now = p.read(o, 1).map(|r| {
                                    r.iter()
                                        .next()
                                        .map(|rec| (rec.offset, value_str(rec.value.as_deref())))
                                });
                                format!("{k} at {o}: now {now:?}")
                            });
                        v.add(format!(
                            "scan to {end}: {} keys lack their latest value; scan saw {seen} records, last offset {last_offset}; probe {probe:?}; reads that skipped offsets: {jumps:?}",
                            missed.len()
                        ));
                        for m in missed {
                            v.add(m);
                        }
                    }
                    scans.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(run_for());
        stop.store(true, Ordering::Relaxed);
    });
    v.must(broker.flush(), "flush");
    let report = v.must(broker.run_log_cleaner(), "cleaner round");
    if !report.partitions_failed.is_empty() {
        v.add(format!("cleaner failed: {report:?}"));
    }
    let mut view: HashMap<String, Option<u64>> = HashMap::new();
    let mut at = p.log_start_offset();
    while at < p.log_end_offset() {
        let r = v.must(p.read(at, 64 * 1024), "final read");
        for rec in r.iter() {
            let key = String::from_utf8_lossy(rec.key.as_deref().unwrap_or_default()).into_owned();
            let seq = rec.value.as_deref().and_then(parse_kv).map(|(_, s)| s);
            view.insert(key, seq);
        }
        at = at.max(r.next_offset());
    }
    let live = |m: &HashMap<String, Option<u64>>| -> std::collections::BTreeMap<String, u64> {
        m.iter()
            .filter_map(|(k, s)| s.map(|s| (k.clone(), s)))
            .collect()
    };
    let model = model.into_inner().unwrap();
    if live(&view) != live(&model) {
        v.add(format!(
            "after compaction: log {:?}\nwriter {:?}",
            live(&view),
            live(&model)
        ));
    }
    let d = v.must(broker.describe_topic("d"), "describe");
    eprintln!(
        "contention-d: {} writes, {} scans, {} bytes left in {} segments (seed {seed})",
        p.log_end_offset(),
        scans.load(Ordering::Relaxed),
        d.partitions[0].size_bytes,
        d.partitions[0].segment_count
    );
    v.check();
    v.must(broker.close(), "close");
}

// (e) ------------------------------------------------------------------------------------

const E_PARTITIONS: i32 = 4;

#[derive(Default)]
struct Ownership {
    owners: Arc<common::Owners<String>>,
    seen: Mutex<BTreeSet<(i32, i64)>>,
}

/// Member `name`'s listener: keeps `own`'s table, commits in a revoke (the listener's
/// promise: a commit there hands over exactly), and reports to `v`.
fn owner(name: String, own: &Ownership, v: &Arc<Violations>) -> common::OwnerListener<String> {
    let (v_commit, v) = (v.clone(), v.clone());
    let me = name.clone();
    common::OwnerListener::new(
        name,
        own.owners.clone(),
        move |consumer, ps| {
            if let Err(e) = consumer.commit_sync() {
                v_commit.add(format!(
                    "{me}: commit in on_partitions_revoked({ps:?}): {e}"
                ));
            }
            Ok(())
        },
        move |violation| v.add(violation),
    )
}

fn group_members_under_contention(scenario: &'static str, strategy: AssignmentStrategy) {
    let (seed, v, _spin) = start(scenario);
    let broker = v.must(Broker::temporary(), "open");
    v.must(
        broker.create_topic(
            "e",
            TopicConfig::default()
                .partitions(E_PARTITIONS)
                .segment_bytes(64 * 1024),
        ),
        "create topic",
    );
    let topic = v.must(broker.topic("e"), "topic");
    let own = Arc::new(Ownership::default());
    let stop = AtomicBool::new(false);
    let generations = AtomicU64::new(0);
    let config = || {
        common::manual_commit_config("g")
            .max_poll_records(100)
            .partition_assignment_strategy(vec![strategy])
    };
    std::thread::scope(|s| {
        {
            let (topic, stop, v) = (&topic, &stop, &v);
            s.spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let pn = (i % E_PARTITIONS as u64) as i32;
                    let r = topic
                        .partition(pn)
                        .and_then(|p| p.append(&[Record::new(format!("e{pn} {i}"))]));
                    if let Err(e) = r {
                        v.add(format!("append to e-{pn}: {e}"));
                        break;
                    }
                    i += 1;
                    if i.is_multiple_of(16) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            });
        }
        for m in 0..3u64 {
            let (broker, stop, v, own, generations, config) = (
                &broker,
                &stop,
                v.clone(),
                own.clone(),
                &generations,
                &config,
            );
            s.spawn(move || {
                let mut rng = XorShift(seed ^ (0xe0 + m));
                let mut generation = 0;
                while !stop.load(Ordering::Relaxed) && !v.any() {
                    generation += 1;
                    generations.fetch_add(1, Ordering::Relaxed);
                    let me = format!("m{m}#{generation}");
                    let mut c = v.must(broker.consumer(config()), "consumer");
                    let listener = owner(me.clone(), &own, &v);
                    v.must(c.subscribe_with_listener(&["e"], listener), "subscribe");
                    let until = Instant::now() + Duration::from_millis(50 + rng.below(400));
                    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                        let records = match c.poll(Duration::from_millis(20)) {
                            Ok(r) => r,
                            Err(e) => {
                                v.add(format!("{me}: poll: {e}"));
                                break;
                            }
                        };
                        let owners = own.owners.snapshot();
                        let mut seen = own.seen.lock().unwrap();
                        for r in records.iter() {
                            if owners.get(&r.partition) != Some(&me) {
                                v.add(format!(
                                    "{me} polled e-{}@{} owned by {:?}",
                                    r.partition,
                                    r.offset,
                                    owners.get(&r.partition)
                                ));
                            }
                            seen.insert((r.partition, r.offset));
                        }
                    }
                    // A commit outside the listener may race a rebalance: refused as stale
                    // (`CommitFailed`: the partitions moved) or as the retryable
                    // `RebalanceInProgress` (they did not), and the records go to the next
                    // owner again (at-least-once allows that).
                    match c.commit_sync() {
                        Ok(())
                        | Err(Error::CommitFailed { .. })
                        | Err(Error::RebalanceInProgress { .. }) => {}
                        Err(e) => v.add(format!("{me}: commit: {e}")),
                    }
                    match c.close() {
                        Ok(()) | Err(Error::CommitFailed { .. }) => {}
                        Err(e) => v.add(format!("{me}: close: {e}")),
                    }
                }
            });
        }
        std::thread::sleep(run_for());
        stop.store(true, Ordering::Relaxed);
    });
    // Every record delivered at least once: what members saw, plus a drain from the commits.
    let ends: Vec<i64> = (0..E_PARTITIONS)
        .map(|pn| v.must(topic.partition(pn), "partition").log_end_offset())
        .collect();
    let mut c = v.must(broker.consumer(config()), "drain consumer");
    v.must(c.subscribe(&["e"]), "drain subscribe");
    let mut seen = own.seen.lock().unwrap();
    let drain_until = Instant::now() + Duration::from_secs(20);
    loop {
        let caught_up = !c.assignment().is_empty()
            && (0..E_PARTITIONS).all(|pn| {
                c.position(&TopicPartition::new("e", pn))
                    .is_ok_and(|pos| pos >= ends[pn as usize])
            });
        if caught_up || Instant::now() > drain_until {
            break;
        }
        for r in v
            .must(c.poll(Duration::from_millis(20)), "drain poll")
            .iter()
        {
            seen.insert((r.partition, r.offset));
        }
    }
    v.must(c.close(), "drain close");
    for (pn, &end) in ends.iter().enumerate() {
        let missing: Vec<i64> = (0..end)
            .filter(|o| !seen.contains(&(pn as i32, *o)))
            .collect();
        if !missing.is_empty() {
            v.add(format!(
                "{} records of e-{pn} never delivered, first {:?}",
                missing.len(),
                &missing[..missing.len().min(10)]
            ));
        }
    }
    eprintln!(
        "{scenario}: {} records, {} memberships (seed {seed})",
        ends.iter().sum::<i64>(),
        generations.load(Ordering::Relaxed)
    );
    drop(seen);
    v.check();
    v.must(broker.close(), "close");
}

#[test]
fn e_range_members_churning_own_each_partition_once_and_deliver_everything() {
    group_members_under_contention("contention-e-range", AssignmentStrategy::Range);
}

#[test]
fn e_cooperative_sticky_members_churning_own_each_partition_once_and_deliver_everything() {
    group_members_under_contention(
        "contention-e-cooperative",
        AssignmentStrategy::CooperativeSticky,
    );
}
