//! The record cache of `count` under `KafkaStreams` (Kafka's `statestore.cache.max.bytes`):
//! updates of a key are forwarded and logged once per flush (at commit, and before the
//! rebalance listener commits), an evicted key is forwarded when it is evicted, and
//! `Materialized::with_caching_disabled` forwards every update. The test
//! driver's side (one output per input, as Kafka's driver commits after every record) is
//! covered by `streams_dsl`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use embroker::streams::{
    Consumed, Grouped, KafkaStreams, Materialized, Produced, ReadOnlyKeyValueStore, StreamsBuilder,
    StreamsConfig, Topology,
};
use embroker::{
    Broker, Builtin, ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord, TopicConfig,
    TopicPartition,
};

fn counting(materialized: Materialized) -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream("in", Consumed::<String, String>::with(Builtin, Builtin))
        .group_by_key(Grouped::with(Builtin, Builtin))
        .count(materialized)
        .to_stream()
        .to("out", Produced::with(Builtin, Builtin));
    builder.build().unwrap()
}

/// A broker whose topic `in` holds `keys` in order, one record each.
fn broker_with(keys: &[&str]) -> Broker {
    let broker = Broker::temporary().unwrap();
    for topic in ["in", "out"] {
        broker
            .create_topic(topic, TopicConfig::default().partitions(1))
            .unwrap();
    }
    let producer = broker.producer(ProducerConfig::default()).unwrap();
    for key in keys {
        drop(
            producer
                .send(ProducerRecord::new("in", "v").key(key.to_string()))
                .unwrap(),
        );
    }
    producer.close().unwrap();
    broker
}

/// Run `topology` over everything in `in`, close it, and return what it wrote to `out`.
fn run(broker: &Broker, topology: Topology, cache_bytes: &str, records: u64) -> Vec<(String, i64)> {
    let config = StreamsConfig::from_properties(&[
        ("application.id", "cache"),
        ("statestore.cache.max.bytes", cache_bytes),
    ])
    .unwrap();
    let streams = KafkaStreams::new(topology, config, broker).unwrap();
    streams.start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while streams.stats().processed_records < records {
        assert!(Instant::now() < deadline, "not processed in 60 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    streams.close().unwrap();
    let mut config = ConsumerConfig::default();
    config.auto_offset_reset = OffsetReset::Earliest;
    let mut consumer = broker.consumer(config).unwrap();
    let tp = TopicPartition::new("out", 0);
    consumer.assign(std::slice::from_ref(&tp)).unwrap();
    let end = broker
        .topic("out")
        .unwrap()
        .partition(0)
        .unwrap()
        .log_end_offset();
    let mut out = Vec::new();
    while consumer.position(&tp).unwrap() < end {
        for r in consumer.poll(Duration::from_millis(100)).unwrap() {
            let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
            let value = i64::from_be_bytes(r.value.unwrap()[..].try_into().unwrap());
            out.push((key, value));
        }
    }
    out
}

fn last_per_key(out: &[(String, i64)]) -> BTreeMap<String, i64> {
    out.iter().cloned().collect()
}

#[test]
fn a_cached_count_forwards_a_key_once_per_flush_not_once_per_update() {
    let keys = vec!["a"; 300];
    let broker = broker_with(&keys);
    let out = run(
        &broker,
        counting(Materialized::as_("counts")),
        "10485760",
        300,
    );
    // Flushed at each commit (`commit.interval.ms`, 30 s, and the close's): far fewer than
    // 300 outputs (one, unless a commit fell inside the run), the last one the full count, and
    // every output a count the key really had.
    assert!(out.len() < 300, "{} outputs for 300 updates", out.len());
    assert_eq!(last_per_key(&out), BTreeMap::from([("a".to_string(), 300)]));
    assert!(out.windows(2).all(|w| w[0].1 < w[1].1), "{out:?}");
}

#[test]
fn caching_disabled_forwards_every_update() {
    let keys = vec!["a"; 300];
    let broker = broker_with(&keys);
    let out = run(
        &broker,
        counting(Materialized::as_("counts").with_caching_disabled()),
        "10485760",
        300,
    );
    let expected: Vec<(String, i64)> = (1..=300).map(|n| ("a".to_string(), n)).collect();
    assert_eq!(out, expected);
}

#[test]
fn a_zero_budget_forwards_every_update() {
    let keys = vec!["a"; 50];
    let broker = broker_with(&keys);
    let out = run(&broker, counting(Materialized::as_("counts")), "0", 50);
    let expected: Vec<(String, i64)> = (1..=50).map(|n| ("a".to_string(), n)).collect();
    assert_eq!(out, expected);
}

#[test]
fn an_evicted_key_is_forwarded_when_it_leaves_the_cache() {
    // A budget of one entry (a `String` key and an `i64` count are counted as 136 bytes,
    // module `cache`): keys alternating a, b, a, b, ... evict each other on every update, so
    // every update is forwarded, in order, with the right counts.
    let keys: Vec<&str> = (0..100)
        .map(|i| if i % 2 == 0 { "a" } else { "b" })
        .collect();
    let broker = broker_with(&keys);
    let out = run(&broker, counting(Materialized::as_("counts")), "200", 100);
    let expected: Vec<(String, i64)> = (0..100)
        .map(|i| (keys[i].to_string(), i as i64 / 2 + 1))
        .collect();
    assert_eq!(out, expected);
    // The same budget holds one key's repeated updates as one entry: no eviction.
    let keys = vec!["a"; 100];
    let broker = broker_with(&keys);
    let out = run(&broker, counting(Materialized::as_("counts")), "200", 100);
    assert!(out.len() < 100, "{} outputs for 100 updates", out.len());
    assert_eq!(last_per_key(&out), BTreeMap::from([("a".to_string(), 100)]));
}

/// Every record of `topic` partition `partition` as (key, count).
fn read_counts(broker: &Broker, topic: &str, partition: i32) -> Vec<(String, i64)> {
    let mut config = ConsumerConfig::default();
    config.auto_offset_reset = OffsetReset::Earliest;
    let mut consumer = broker.consumer(config).unwrap();
    let tp = TopicPartition::new(topic, partition);
    consumer.assign(std::slice::from_ref(&tp)).unwrap();
    let end = broker
        .topic(topic)
        .unwrap()
        .partition(partition)
        .unwrap()
        .log_end_offset();
    let mut out = Vec::new();
    while consumer.position(&tp).unwrap() < end {
        for r in consumer.poll(Duration::from_millis(100)).unwrap() {
            let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
            let value = i64::from_be_bytes(r.value.unwrap()[..].try_into().unwrap());
            out.push((key, value));
        }
    }
    out
}

fn end_offset(broker: &Broker, topic: &str, partition: i32) -> i64 {
    broker
        .topic(topic)
        .map_or(0, |t| t.partition(partition).unwrap().log_end_offset())
}

fn wait_processed(streams: &KafkaStreams, records: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while streams.stats().processed_records < records {
        assert!(Instant::now() < deadline, "not processed in 60 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_cache_flushes_at_commit_one_output_and_one_changelog_record_per_key() {
    // 3,000 updates of three keys (three polled batches) inside one commit interval: nothing
    // goes out until the commit (the close's), then one output and one changelog record per
    // key, as Kafka's caching store does; a query meanwhile reads the newest counts.
    let keys: Vec<&str> = (0..3000).map(|i| ["a", "b", "c"][i % 3]).collect();
    let broker = broker_with(&keys);
    let config = StreamsConfig::from_properties(&[
        ("application.id", "cache"),
        ("commit.interval.ms", "600000"),
    ])
    .unwrap();
    let streams =
        KafkaStreams::new(counting(Materialized::as_("counts")), config, &broker).unwrap();
    streams.start().unwrap();
    wait_processed(&streams, 3000);
    let store = streams.store::<String, i64>("counts").unwrap();
    for key in ["a", "b", "c"] {
        assert_eq!(store.get(&key.to_string()).unwrap(), Some(1000), "{key}");
    }
    assert_eq!(
        end_offset(&broker, "out", 0),
        0,
        "forwarded before the commit"
    );
    assert_eq!(
        end_offset(&broker, "cache-counts-changelog", 0),
        0,
        "logged before the commit"
    );
    streams.close().unwrap();
    let expected: Vec<(String, i64)> = ["a", "b", "c"]
        .iter()
        .map(|k| (k.to_string(), 1000))
        .collect();
    assert_eq!(read_counts(&broker, "out", 0), expected);
    assert_eq!(read_counts(&broker, "cache-counts-changelog", 0), expected);
}

#[test]
fn a_rebalance_flushes_the_caches_before_the_listener_commits() {
    // Two partitions, a commit interval longer than the test: the only commits are the
    // rebalance listener's and the closes'. When a second instance joins, the first one's
    // listener must flush its caches (outputs and changelog) before it commits, so the moved
    // task restores every count and nothing is processed twice: the final counts are exact.
    let broker = Broker::temporary().unwrap();
    for topic in ["in", "out"] {
        broker
            .create_topic(topic, TopicConfig::default().partitions(2))
            .unwrap();
    }
    let producer = broker.producer(ProducerConfig::default()).unwrap();
    let mut truth: BTreeMap<String, i64> = BTreeMap::new();
    let mut send = |from: usize, n: usize| {
        for i in from..from + n {
            let key = format!("k{}", i % 10);
            *truth.entry(key.clone()).or_default() += 1;
            drop(
                producer
                    .send(ProducerRecord::new("in", "v").key(key))
                    .unwrap(),
            );
        }
        producer.flush().unwrap();
    };
    send(0, 1000);
    let config = || {
        StreamsConfig::from_properties(&[
            ("application.id", "cache"),
            ("commit.interval.ms", "600000"),
        ])
        .unwrap()
    };
    let a = KafkaStreams::new(counting(Materialized::as_("counts")), config(), &broker).unwrap();
    a.start().unwrap();
    wait_processed(&a, 1000);
    assert_eq!(
        end_offset(&broker, "out", 0) + end_offset(&broker, "out", 1),
        0
    );

    let b = KafkaStreams::new(counting(Materialized::as_("counts")), config(), &broker).unwrap();
    b.start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(a.state() == embroker::streams::State::Running
        && b.state() == embroker::streams::State::Running
        && b.stats().restored_records > 0)
    {
        assert!(
            Instant::now() < deadline,
            "a {:?} b {:?}",
            a.state(),
            b.stats()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The listener's commit covered everything processed, after the flush.
    let group = broker
        .consumer(ConsumerConfig::default().group_id("cache"))
        .unwrap();
    for p in 0..2 {
        let committed = group
            .committed(&TopicPartition::new("in", p))
            .unwrap()
            .map(|o| o.offset);
        assert_eq!(committed, Some(end_offset(&broker, "in", p)), "in-{p}");
    }
    send(1000, 500);
    let deadline = Instant::now() + Duration::from_secs(60);
    while a.stats().processed_records + b.stats().processed_records < 1500 {
        assert!(Instant::now() < deadline, "not processed in 60 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    b.close().unwrap();
    a.close().unwrap();
    let mut last = BTreeMap::new();
    for p in 0..2 {
        last.extend(read_counts(&broker, "out", p));
    }
    assert_eq!(last, truth);
}
