//! Kafka Streams runtime benchmark (issue #21), every row interleaved with its baseline in the
//! same run:
//!
//! 1. WordCount over 1,000,000 short lines (three words each, 2 partitions) through
//!    `KafkaStreams` (flat_map, group_by through a repartition topic, count into a changelogged
//!    store, every update to an output topic), against a hand-written loop on the same data: a
//!    group consumer polls, splits, counts in a `HashMap` and sends each updated count to an
//!    output topic, then commits. Target: ≥ 0.7x.
//! 2. A windowed aggregation: 1,000,000 keyed events (1,000 keys, 10 ms apart) counted per key
//!    in tumbling one-minute windows, against a hand-written loop counting per (key, window).
//! 3. Restore: a store of 1,000,000 keys rebuilt from its changelog when the application
//!    starts with an empty state directory (time until RUNNING), against a plain consumer
//!    reading the same changelog into a `BTreeMap` (the floor a restore can reach).
//! 4. Persistent key-value store against the in-memory one, with a Processor-API WordCount
//!    (`Stores::persistent_key_value_store` vs `Stores::in_memory_key_value_store`): the
//!    restore of 1,000,000 keys into an empty state directory; a clean restart over the
//!    state a clean close left (the in-memory store loads its store file, the persistent one
//!    restores nothing); WordCount throughput over the 1,000,000 lines.
//!
//! `cargo bench --bench streams`; `EMBROKER_BENCH_SCALE=0.1` for a quick run.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use embroker::streams::{
    Consumed, Grouped, KafkaStreams, Materialized, Processor, ProcessorContext, Produced,
    ReadOnlyKeyValueStore, Record, Repartitioned, Stores, StreamsBuilder, StreamsConfig,
    TimeWindows, Topology,
};
use embroker::{
    Broker, Builtin, ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord, TopicConfig,
    TopicPartition,
};
use support::{scaled, Contender, Report};

const PARTITIONS: i32 = 2;

fn line(i: u64) -> String {
    format!("w{} w{} w{}", i % 1009, i % 113, i % 7)
}

/// A temporary broker (no fsyncs) holding `n` records of `topic` made by `record`.
fn broker_with(topic: &str, n: u64, record: impl Fn(u64) -> ProducerRecord) -> Broker {
    let broker = Broker::temporary().expect("broker");
    broker
        .create_topic(topic, TopicConfig::default().partitions(PARTITIONS))
        .expect("topic");
    broker
        .create_topic("out", TopicConfig::default().partitions(PARTITIONS))
        .expect("topic");
    let producer = broker
        .producer(ProducerConfig::default())
        .expect("producer");
    for i in 0..n {
        drop(producer.send(record(i)).expect("send"));
    }
    producer.close().expect("close");
    broker
}

/// Run `topology` until it processed `records` input records (repartition records included),
/// then close it.
fn run_streams(broker: &Broker, topology: Topology, records: u64) {
    let streams =
        KafkaStreams::new(topology, StreamsConfig::new("bench"), broker).expect("streams");
    streams.start().expect("start");
    while streams.stats().processed_records < records {
        std::thread::sleep(Duration::from_millis(1));
    }
    streams.close().expect("close");
}

fn group_consumer(broker: &Broker, topic: &str) -> embroker::Consumer {
    let mut config = ConsumerConfig::default().group_id("loop");
    config.auto_offset_reset = OffsetReset::Earliest;
    config.enable_auto_commit = false;
    let mut consumer = broker.consumer(config).expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}

fn word_count_topology() -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream("lines", Consumed::<(), String>::with(Builtin, Builtin))
        .flat_map_values(|line: String| {
            line.split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .group_by(|_, word| word.clone(), Grouped::with(Builtin, Builtin))
        .count(Materialized::as_("counts"))
        .to_stream()
        .to("out", Produced::with(Builtin, Builtin));
    builder.build().expect("topology")
}

fn windowed_topology() -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream("events", Consumed::<String, String>::with(Builtin, Builtin))
        .group_by_key(Grouped::with(Builtin, Builtin))
        .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(60)))
        .count(Materialized::as_("windowed"));
    builder.build().expect("topology")
}

fn main() {
    let mut report = Report::default();
    let n = scaled(1_000_000);

    // 1. WordCount.
    let lines = |i: u64| ProducerRecord::new("lines", line(i)).partition((i % 2) as i32);
    let loop_name = "hand-written consumer -> count -> producer loop";
    let bytes: u64 = (0..n).map(|i| line(i).len() as u64).sum();
    let rows = vec![
        Contender::new(
            "wordcount",
            loop_name,
            None,
            n,
            bytes,
            || broker_with("lines", n, lines),
            move |broker: Broker| {
                let mut consumer = group_consumer(&broker, "lines");
                let producer = broker
                    .producer(ProducerConfig::default())
                    .expect("producer");
                let mut counts: HashMap<String, i64> = HashMap::new();
                let mut seen = 0;
                while seen < n {
                    for r in consumer.poll(Duration::from_millis(100)).expect("poll") {
                        seen += 1;
                        let text = std::str::from_utf8(r.value.as_deref().unwrap_or(b""))
                            .expect("utf-8")
                            .to_string();
                        for word in text.split_whitespace() {
                            let c = counts.entry(word.to_string()).or_insert(0);
                            *c += 1;
                            let record = ProducerRecord::new("out", c.to_be_bytes().to_vec())
                                .key(word.as_bytes().to_vec());
                            producer
                                .send_with_callback(record, |r| {
                                    r.expect("send");
                                })
                                .expect("send");
                        }
                    }
                }
                producer.flush().expect("flush");
                consumer.commit_sync().expect("commit");
                consumer.close().expect("close");
                broker
            },
        ),
        Contender::new(
            "wordcount",
            "KafkaStreams WordCount (repartition topic, changelog)",
            Some(loop_name),
            n,
            bytes,
            || broker_with("lines", n, lines),
            move |broker: Broker| {
                run_streams(&broker, word_count_topology(), n * 4);
                broker
            },
        ),
    ];
    report.measure_interleaved(rows);

    // 2. Windowed count.
    let events = |i: u64| {
        ProducerRecord::new("events", "e")
            .key(format!("user{}", i % 1000))
            .timestamp(1_700_000_000_000 + i as i64 * 10)
    };
    let loop_name = "hand-written loop, count per (key, window)";
    let rows = vec![
        Contender::new(
            "windowed",
            loop_name,
            None,
            n,
            0,
            || broker_with("events", n, events),
            move |broker: Broker| {
                let mut consumer = group_consumer(&broker, "events");
                let mut counts: HashMap<(String, i64), i64> = HashMap::new();
                let mut seen = 0;
                while seen < n {
                    for r in consumer.poll(Duration::from_millis(100)).expect("poll") {
                        seen += 1;
                        let key = String::from_utf8(r.key.as_deref().unwrap_or(b"").to_vec())
                            .expect("utf-8");
                        let window = r.timestamp - r.timestamp % 60_000;
                        *counts.entry((key, window)).or_insert(0) += 1;
                    }
                }
                consumer.commit_sync().expect("commit");
                consumer.close().expect("close");
                broker
            },
        ),
        Contender::new(
            "windowed",
            "KafkaStreams windowed count (tumbling 1 min)",
            Some(loop_name),
            n,
            0,
            || broker_with("events", n, events),
            move |broker: Broker| {
                run_streams(&broker, windowed_topology(), n);
                broker
            },
        ),
    ];
    report.measure_interleaved(rows);

    // 3. Restore of a store of `n` keys from its changelog.
    let changelog = "bench-counts-changelog";
    let keys = n;
    let fill = move || {
        let broker = Broker::temporary().expect("broker");
        for topic in ["lines", "out"] {
            broker
                .create_topic(topic, TopicConfig::default().partitions(1))
                .expect("topic");
        }
        broker
            .create_topic(
                changelog,
                TopicConfig::default()
                    .partitions(1)
                    .cleanup_policy(embroker::CleanupPolicy::Compact),
            )
            .expect("changelog");
        let producer = broker
            .producer(ProducerConfig::default())
            .expect("producer");
        for i in 0..keys {
            let record = ProducerRecord::new(changelog, (i as i64).to_be_bytes().to_vec())
                .key(format!("key{i:07}"))
                .timestamp(1);
            drop(producer.send(record).expect("send"));
        }
        producer.close().expect("close");
        broker
    };
    let floor = "plain consumer: changelog into a BTreeMap";
    let rows = vec![
        Contender::new(
            "restore",
            floor,
            None,
            keys,
            0,
            fill,
            move |broker: Broker| {
                let mut config = ConsumerConfig::default();
                config.auto_offset_reset = OffsetReset::Earliest;
                config.max_poll_records = 10_000;
                let mut consumer = broker.consumer(config).expect("consumer");
                let tp = TopicPartition::new(changelog, 0);
                consumer.assign(std::slice::from_ref(&tp)).expect("assign");
                let mut map = BTreeMap::new();
                while consumer.position(&tp).expect("position") < keys as i64 {
                    for r in consumer.poll(Duration::from_millis(100)).expect("poll") {
                        let k = String::from_utf8(r.key.unwrap().to_vec()).expect("utf-8");
                        let v = i64::from_be_bytes(r.value.unwrap()[..].try_into().expect("8"));
                        map.insert(k, v);
                    }
                }
                assert_eq!(map.len() as u64, keys);
                broker
            },
        ),
        Contender::new(
            "restore",
            "KafkaStreams start with an empty state directory until RUNNING",
            Some(floor),
            keys,
            0,
            fill,
            move |broker: Broker| {
                // WordCount on the application id whose store `counts` has this changelog.
                let streams =
                    KafkaStreams::new(word_count_topology(), StreamsConfig::new("bench"), &broker)
                        .expect("streams");
                streams.start().expect("start");
                streams
                    .wait_until_running(Duration::from_secs(600))
                    .expect("running");
                assert_eq!(streams.stats().restored_records, keys);
                streams.close().expect("close");
                broker
            },
        ),
    ];
    report.measure_interleaved(rows);

    // 4. Persistent store: restore, clean restart, WordCount, each against the in-memory store.
    let restore_into = |store: Store, prepare_state: bool| {
        move || {
            let broker = fill();
            let state = tempfile::tempdir().expect("state dir");
            if prepare_state {
                // A first run restores the store and closes cleanly (store files or the
                // persistent store's own, and the checkpoint).
                run_until_running(&broker, store, state.path(), keys);
            }
            (broker, state)
        }
    };
    let restore_row =
        |name: &'static str, baseline: Option<&'static str>, store: Store, clean: bool| {
            Contender::new(
                if clean {
                    "clean restart"
                } else {
                    "restore (store kind)"
                },
                name,
                baseline,
                keys,
                0,
                restore_into(store, clean),
                move |(broker, state): (Broker, tempfile::TempDir)| {
                    let restored = run_until_running(&broker, store, state.path(), keys);
                    assert_eq!(restored, if clean { 0 } else { keys });
                    (broker, state)
                },
            )
        };
    let in_memory_restore = "in-memory store, empty state directory, until RUNNING";
    let in_memory_restart = "in-memory store (loads its store file), until RUNNING";
    report.measure_interleaved(vec![
        restore_row(in_memory_restore, None, Store::InMemory, false),
        restore_row(
            "persistent store, empty state directory, until RUNNING",
            Some(in_memory_restore),
            Store::Persistent,
            false,
        ),
        restore_row(in_memory_restart, None, Store::InMemory, true),
        restore_row(
            "persistent store (restores nothing), until RUNNING",
            Some(in_memory_restart),
            Store::Persistent,
            true,
        ),
    ]);
    let in_memory_wc = "Processor-API WordCount, in-memory store";
    let wc_row = |name: &'static str, baseline: Option<&'static str>, store: Store| {
        Contender::new(
            "wordcount (store kind)",
            name,
            baseline,
            n,
            bytes,
            || {
                (
                    broker_with("lines", n, lines),
                    tempfile::tempdir().expect("state dir"),
                )
            },
            move |(broker, state): (Broker, tempfile::TempDir)| {
                let config = StreamsConfig::new("bench")
                    .with_properties(&[("state.dir", state.path().to_str().expect("utf-8"))])
                    .expect("config");
                let streams = KafkaStreams::new(processor_word_count(store), config, &broker)
                    .expect("streams");
                streams.start().expect("start");
                // Three words per line, each through the repartition topic.
                while streams.stats().processed_records < 4 * n {
                    std::thread::sleep(Duration::from_millis(1));
                }
                streams.close().expect("close");
                (broker, state)
            },
        )
    };
    report.measure_interleaved(vec![
        wc_row(in_memory_wc, None, Store::InMemory),
        wc_row(
            "Processor-API WordCount, persistent store",
            Some(in_memory_wc),
            Store::Persistent,
        ),
    ]);
    report.print("Kafka Streams runtime (issue #21)");
}

/// Which key-value store a Processor-API row counts in.
#[derive(Clone, Copy)]
enum Store {
    InMemory,
    Persistent,
}

/// Counts each key's records in the store `counts` (of either kind).
struct CountKeys;

impl Processor<String, String, String, Option<i64>> for CountKeys {
    fn process(
        &mut self,
        record: Record<String, String>,
        context: &mut ProcessorContext<'_, String, Option<i64>>,
    ) -> embroker::Result<()> {
        let store = context.key_value_store::<String, i64>("counts")?;
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

/// WordCount with a processor counting in a `store` named `counts` (changelog
/// `bench-counts-changelog`, the restore rows' topic).
fn processor_word_count(store: Store) -> Topology {
    let supplier = match store {
        Store::InMemory => Stores::in_memory_key_value_store("counts"),
        Store::Persistent => Stores::persistent_key_value_store("counts"),
    };
    let builder = StreamsBuilder::new();
    builder.add_state_store_builder(Stores::key_value_store_builder::<String, i64>(
        supplier, Builtin, Builtin,
    ));
    builder
        .stream("lines", Consumed::<(), String>::with(Builtin, Builtin))
        .flat_map(|_, line: String| {
            line.split_whitespace()
                .map(|w| (w.to_string(), w.to_string()))
                .collect::<Vec<_>>()
        })
        .repartition(Repartitioned::with(Builtin, Builtin).with_name("words"))
        .process(|| CountKeys, &["counts"])
        .to("out", Produced::with(Builtin, Builtin));
    builder.build().expect("topology")
}

/// Start the Processor-API WordCount over `store` with `state` as its state directory until
/// RUNNING, check its store holds `keys` keys, close it cleanly; the records it restored.
fn run_until_running(broker: &Broker, store: Store, state: &std::path::Path, keys: u64) -> u64 {
    let config = StreamsConfig::new("bench")
        .with_properties(&[("state.dir", state.to_str().expect("utf-8"))])
        .expect("config");
    let streams = KafkaStreams::new(processor_word_count(store), config, broker).expect("streams");
    streams.start().expect("start");
    streams
        .wait_until_running(Duration::from_secs(600))
        .expect("running");
    let restored = streams.stats().restored_records;
    // The first and last keys, not a count: the view counts by reading every entry, which
    // would time the reads of the whole persistent store.
    let counts = streams.store::<String, i64>("counts").expect("store");
    for k in [0, keys - 1] {
        assert!(counts.get(&format!("key{k:07}")).expect("get").is_some());
    }
    streams.close().expect("close");
    restored
}
