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
//!
//! `cargo bench --bench streams`; `EMBROKER_BENCH_SCALE=0.1` for a quick run.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use embroker::streams::{
    Consumed, Grouped, KafkaStreams, Materialized, Produced, StreamsBuilder, StreamsConfig,
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
    report.print("Kafka Streams runtime (issue #21)");
}
