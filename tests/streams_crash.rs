//! A streams application (WordCount: lines, a repartition topic, a count store with its
//! changelog) killed with SIGKILL at random moments and restarted on the same data
//! directory, over and over; afterwards its counts must be those computed over the whole
//! input.
//!
//! The input grows by 500 lines before every restart, so each run has records to process when
//! it is killed.
//!
//! - `at_least_once`: no count may be below the truth, and the excess summed over all words is
//!   bounded by what each kill could make the next run reprocess: for every kill, the records
//!   past the group's committed offsets at that moment (three words per input line, one count
//!   per repartition record), measured after the kill.
//! - `exactly_once_v2`: the counts equal the truth exactly.
//!
//! Each guarantee runs twice: with the DSL's in-memory count store, and with a processor
//! counting into `Stores::persistent_key_value_store` (files under the state directory that a
//! kill leaves as they were: at-least-once keeps them and restores from the checkpointed
//! offset, exactly-once wipes them when there is no checkpoint).
//!
//! The test re-runs its own binary as the child (`EMBROKER_STREAMS_CRASH_CHILD` names the
//! directory). Kills per guarantee: 30, `EMBROKER_LONG=1` raises them to 1,000,
//! `EMBROKER_CRASH_KILLS=N` sets them.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{seed, XorShift};
use embroker::streams::{
    Consumed, Grouped, KafkaStreams, Materialized, Processor, ProcessorContext, Produced,
    ReadOnlyKeyValueStore, Record, Repartitioned, Stores, StreamsBuilder, StreamsConfig, Topology,
};
use embroker::{
    Broker, Builtin, ConsumerConfig, ProducerConfig, ProducerRecord, TopicConfig, TopicPartition,
};

const PARTITIONS: i32 = 2;
/// Lines written before the first run.
const FIRST_LINES: u64 = 20_000;
/// Lines appended before each restart, so that every run has work when it is killed.
const LINES_PER_RUN: u64 = 500;
const REPARTITION: &str = "wc-counts-store-repartition";

fn line(i: u64) -> String {
    format!("w{} w{} w{}", i % 101, i % 37, i % 5)
}

fn expected(lines: u64) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for i in 0..lines {
        for w in line(i).split_whitespace() {
            *counts.entry(w.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

/// Whether the child's count store is persistent (its parent says so in its environment).
fn child_persistent() -> bool {
    std::env::var("EMBROKER_STREAMS_CRASH_STORE").is_ok_and(|v| v == "persistent")
}

/// WordCount over a persistent store: the words re-keyed and repartitioned (through the same
/// topic name as the DSL's `group_by`), counted by a processor in
/// `Stores::persistent_key_value_store("counts-store")`.
struct CountWords;

impl Processor<String, String, String, Option<i64>> for CountWords {
    fn process(
        &mut self,
        record: Record<String, String>,
        context: &mut ProcessorContext<'_, String, Option<i64>>,
    ) -> embroker::Result<()> {
        let store = context.key_value_store::<String, i64>("counts-store")?;
        let n = store.get(&record.key)?.unwrap_or(0) + 1;
        store.put(record.key.clone(), n)?;
        context.forward(Record {
            key: record.key,
            value: Some(n),
            timestamp: record.timestamp,
            headers: record.headers,
        })
    }
}

fn topology_of(persistent: bool) -> Topology {
    if persistent {
        return persistent_topology();
    }
    let builder = StreamsBuilder::new();
    builder
        .stream("lines", Consumed::<(), String>::with(Builtin, Builtin))
        .flat_map_values(|line: String| {
            line.split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .group_by(|_, word| word.clone(), Grouped::with(Builtin, Builtin))
        .count(Materialized::as_("counts-store"))
        .to_stream()
        .to("counts", Produced::with(Builtin, Builtin));
    builder.build().unwrap()
}

fn persistent_topology() -> Topology {
    let builder = StreamsBuilder::new();
    builder.add_state_store_builder(Stores::key_value_store_builder::<String, i64>(
        Stores::persistent_key_value_store("counts-store"),
        Builtin,
        Builtin,
    ));
    builder
        .stream("lines", Consumed::<(), String>::with(Builtin, Builtin))
        .flat_map(|_, line: String| {
            line.split_whitespace()
                .map(|w| (w.to_string(), w.to_string()))
                .collect::<Vec<_>>()
        })
        .repartition(Repartitioned::with(Builtin, Builtin).with_name("counts-store"))
        .process(|| CountWords, &["counts-store"])
        .to("counts", Produced::with(Builtin, Builtin));
    builder.build().unwrap()
}

fn config(dir: &std::path::Path, guarantee: &str) -> StreamsConfig {
    let state = dir.join("state");
    StreamsConfig::new("wc")
        .with_properties(&[
            ("processing.guarantee", guarantee),
            ("commit.interval.ms", "10"),
            ("client.id", "wc-crash"),
            ("state.dir", state.to_str().unwrap()),
        ])
        .unwrap()
}

/// The child: run the application until killed.
fn child(dir: &str, guarantee: &str) -> ! {
    let broker = Broker::open(dir).expect("child open");
    let streams = KafkaStreams::new(
        topology_of(child_persistent()),
        config(std::path::Path::new(dir), guarantee),
        &broker,
    )
    .expect("new");
    streams.start().expect("start");
    println!("READY");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn prepare(dir: &std::path::Path) {
    let broker = Broker::open(dir).unwrap();
    for topic in ["lines", "counts"] {
        broker
            .create_topic(topic, TopicConfig::default().partitions(PARTITIONS))
            .unwrap();
    }
    append_lines(&broker, 0..FIRST_LINES);
    broker.close().unwrap();
}

/// Write lines `range` to the input.
fn append_lines(broker: &Broker, range: std::ops::Range<u64>) {
    let producer = broker.producer(ProducerConfig::default()).unwrap();
    for i in range {
        drop(
            producer
                .send(
                    ProducerRecord::new("lines", line(i)).partition((i % PARTITIONS as u64) as i32),
                )
                .unwrap(),
        );
    }
    producer.close().unwrap();
}

/// Records past the group's committed offsets in `topic` (all of them before any commit).
fn uncommitted(broker: &Broker, topic: &str) -> i64 {
    let Ok(description) = broker.describe_topic(topic) else {
        return 0;
    };
    let consumer = broker
        .consumer(ConsumerConfig::default().group_id("wc"))
        .unwrap();
    (0..description.partitions.len() as i32)
        .map(|p| {
            let tp = TopicPartition::new(topic, p);
            let end = broker
                .topic(topic)
                .unwrap()
                .partition(p)
                .unwrap()
                .log_end_offset();
            let committed = consumer.committed(&tp).unwrap().map_or(0, |o| o.offset);
            end - committed
        })
        .sum()
}

fn kills() -> u64 {
    let long = std::env::var("EMBROKER_LONG").is_ok_and(|v| v == "1");
    std::env::var("EMBROKER_CRASH_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(if long { 1000 } else { 30 })
}

fn run(test: &str, guarantee: &str) {
    run_with(test, guarantee, false);
}

/// Kill runs of the test `test`, its count store persistent or not (the child learns which
/// from `EMBROKER_STREAMS_CRASH_STORE`).
fn run_with(test: &str, guarantee: &str, persistent: bool) {
    if let Ok(dir) = std::env::var("EMBROKER_STREAMS_CRASH_CHILD") {
        child(&dir, guarantee);
    }
    let seed = seed();
    eprintln!("seed {seed}");
    common::with_seed(seed, || kill_runs(test, guarantee, seed, persistent));
}

fn kill_runs(test: &str, guarantee: &str, seed: u64, persistent: bool) {
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    let mut rng = XorShift(seed);
    let kills = kills();
    // What the kills may make the application count twice (at-least-once).
    let mut bound = 0i64;
    let mut lines = FIRST_LINES;
    for run in 0..kills {
        let (mut child, _lines) =
            common::spawn_ready_child(test, dir.path(), &format!("run {run}"), |c| {
                c.env("EMBROKER_STREAMS_CRASH_CHILD", dir.path())
                    .env("EMBROKER_SEED", seed.to_string());
                if persistent {
                    c.env("EMBROKER_STREAMS_CRASH_STORE", "persistent");
                }
            });
        // Kills land during the group join, restoration, processing and commits.
        std::thread::sleep(Duration::from_millis(rng.below(300)));
        child.kill().unwrap();
        child.wait().unwrap();
        let broker = Broker::open(dir.path()).unwrap();
        bound += 3 * uncommitted(&broker, "lines") + uncommitted(&broker, REPARTITION);
        append_lines(&broker, lines..lines + LINES_PER_RUN);
        lines += LINES_PER_RUN;
        broker.close().unwrap();
    }
    // The last run is not killed: it processes the rest and commits.
    let broker = Broker::open(dir.path()).unwrap();
    let streams = KafkaStreams::new(
        topology_of(persistent),
        config(dir.path(), guarantee),
        &broker,
    )
    .unwrap();
    let failure = std::sync::Arc::new(std::sync::Mutex::new(None));
    let f = std::sync::Arc::clone(&failure);
    streams.set_uncaught_exception_handler(move |e| {
        *f.lock().unwrap() = Some(e.to_string());
        embroker::streams::StreamThreadExceptionResponse::ShutdownClient
    });
    streams.start().unwrap();
    let want = expected(lines);
    let store = streams.store::<String, i64>("counts-store").unwrap();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(120);
    let counts = loop {
        if let Some(e) = &*failure.lock().unwrap() {
            panic!("the stream thread failed: {e}");
        }
        let left = (
            uncommitted(&broker, "lines"),
            uncommitted(&broker, REPARTITION),
        );
        let done = left.0 == 0 && (guarantee == "exactly_once_v2" || left.1 == 0);
        let counts: BTreeMap<String, i64> = store.all().unwrap().into_iter().collect();
        let settled = if guarantee == "exactly_once_v2" {
            counts == want
        } else {
            counts.len() == want.len() && want.iter().all(|(w, n)| counts[w] >= *n)
        };
        if done && settled {
            break counts;
        }
        if Instant::now() >= deadline {
            let below: Vec<_> = want
                .iter()
                .filter(|(w, n)| counts.get(*w).is_none_or(|c| c < n))
                .map(|(w, n)| (w, counts.get(w).copied(), n))
                .collect();
            panic!(
                "after {kills} kills the counts did not settle: {} of {} words, uncommitted \
                 (lines, repartition) {left:?}, below the truth {below:?}, state {:?}",
                counts.len(),
                want.len(),
                streams.state()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    streams.close().unwrap();
    let excess: i64 = want.iter().map(|(w, n)| counts[w] - n).sum();
    eprintln!(
        "{guarantee}: {kills} kills, {lines} lines, excess {excess}, bound {bound}, last run \
         settled in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if guarantee == "exactly_once_v2" {
        assert_eq!(counts, want);
    } else {
        for (w, n) in &want {
            assert!(
                counts[w] >= *n,
                "{w}: {} < {n}: a record was lost",
                counts[w]
            );
        }
        assert!(excess <= bound, "excess {excess} over the bound {bound}");
    }
}

#[test]
fn sigkill_at_least_once_loses_nothing_and_recounts_within_the_bound() {
    run(
        "sigkill_at_least_once_loses_nothing_and_recounts_within_the_bound",
        "at_least_once",
    );
}

#[test]
fn sigkill_exactly_once_v2_counts_every_record_once() {
    run(
        "sigkill_exactly_once_v2_counts_every_record_once",
        "exactly_once_v2",
    );
}

#[test]
fn sigkill_at_least_once_with_a_persistent_store_loses_nothing_and_recounts_within_the_bound() {
    run_with(
        "sigkill_at_least_once_with_a_persistent_store_loses_nothing_and_recounts_within_the_bound",
        "at_least_once",
        true,
    );
}

#[test]
fn sigkill_exactly_once_v2_with_a_persistent_store_counts_every_record_once() {
    run_with(
        "sigkill_exactly_once_v2_with_a_persistent_store_counts_every_record_once",
        "exactly_once_v2",
        true,
    );
}
