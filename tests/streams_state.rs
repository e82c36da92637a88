//! State under `KafkaStreams`: every kind of store Kafka logs is restored from its changelog
//! (`<application.id>-<store>-changelog`) after the state directory is deleted: the
//! `aggregate` of a grouped stream, of time windows, of sessions and of sliding windows
//! (with `Materialized::with_value_serde`), a grouped table's aggregate, and a store a
//! Processor-API processor declares with `Stores::key_value_store_builder`. A store whose
//! logging is disabled has no changelog and starts empty again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use embroker::streams::{
    Consumed, Grouped, InMemoryKeyValueStore, KafkaStreams, KeyValueStore, Materialized, Processor,
    ProcessorContext, Produced, ReadOnlyKeyValueStore, Record, SessionWindows, SlidingWindows,
    Stores, StreamsBuilder, StreamsConfig, TimeWindows, Topology,
};
use embroker::{
    Broker, Builtin, Consumer, ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord,
    TopicConfig, TopicPartition,
};

/// Counts the records of each key in the store `seen`, forwarding the count.
struct CountSeen;

impl Processor<String, i64, String, Option<i64>> for CountSeen {
    fn process(
        &mut self,
        record: Record<String, i64>,
        context: &mut ProcessorContext<'_, String, Option<i64>>,
    ) -> embroker::Result<()> {
        let store = context.state_store::<InMemoryKeyValueStore<String, i64>>("seen")?;
        let n = store.get(&record.key)?.unwrap_or(0) + 1;
        store.put(record.key.clone(), n)?;
        let unlogged = context.state_store::<InMemoryKeyValueStore<String, i64>>("unlogged")?;
        let u = unlogged.get(&record.key)?.unwrap_or(0) + 1;
        unlogged.put(record.key.clone(), u)?;
        context.forward(Record {
            key: format!("processor:{}", record.key),
            value: Some(n),
            timestamp: record.timestamp,
            headers: record.headers.clone(),
        })?;
        context.forward(Record {
            key: format!("unlogged:{}", record.key),
            value: Some(u),
            timestamp: record.timestamp,
            headers: record.headers,
        })?;
        Ok(())
    }
}

/// One sum per kind of store, each written to `out` as `<kind>:<key>[@<window start>]`.
fn topology() -> Topology {
    let builder = StreamsBuilder::new();
    let events = builder.stream("events", Consumed::<String, i64>::with(Builtin, Builtin));
    let grouped = || events.group_by_key(Grouped::with(Builtin, Builtin));
    let sum = || |_: &String, v: i64, agg: i64| agg + v;
    let out = || Produced::<String, Option<i64>>::with(Builtin, Builtin);
    grouped()
        .aggregate(
            || 0i64,
            sum(),
            Materialized::as_("totals")
                .with_value_serde::<i64>(Builtin)
                .with_caching_disabled(),
        )
        .to_stream()
        .map(|k, v| (format!("kv:{k}"), v))
        .to("out", out());
    grouped()
        .windowed_by(TimeWindows::of_size_and_grace(
            Duration::from_secs(60),
            Duration::from_secs(600),
        ))
        .aggregate(
            || 0i64,
            sum(),
            Materialized::as_("window-totals").with_value_serde::<i64>(Builtin),
        )
        .to_stream()
        .map(|w, v| (format!("window:{}@{}", w.key, w.window.start), v))
        .to("out", out());
    grouped()
        .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(
            Duration::from_secs(10),
            Duration::from_secs(600),
        ))
        .aggregate(
            || 0i64,
            sum(),
            |_, a, b| a + b,
            Materialized::as_("session-totals").with_value_serde::<i64>(Builtin),
        )
        .to_stream()
        .map(|w, v| (format!("session:{}@{}", w.key, w.window.start), v))
        .to("out", out());
    grouped()
        .windowed_by_sliding(SlidingWindows::of_time_difference_and_grace(
            Duration::from_secs(10),
            Duration::from_secs(600),
        ))
        .aggregate(
            || 0i64,
            sum(),
            Materialized::as_("sliding-totals").with_value_serde::<i64>(Builtin),
        )
        .to_stream()
        .map(|w, v| (format!("sliding:{}@{}", w.key, w.window.start), v))
        .to("out", out());
    grouped()
        .count(Materialized::as_("unlogged-counts").with_logging_disabled())
        .to_stream()
        .map(|k, v| (format!("count:{k}"), v))
        .to("out", out());
    // A table of each key's latest price, re-grouped under one key and summed: the grouped
    // table's aggregate.
    builder
        .table(
            "prices",
            Consumed::<String, i64>::with(Builtin, Builtin),
            Materialized::as_("prices"),
        )
        .group_by(
            |_, v| ("all".to_string(), *v),
            Grouped::with(Builtin, Builtin),
        )
        .aggregate(
            || 0i64,
            |_, v, agg| agg + v,
            |_, v, agg| agg - v,
            Materialized::as_("price-sum").with_value_serde::<i64>(Builtin),
        )
        .to_stream()
        .map(|k, v| (format!("table:{k}"), v))
        .to("out", out());
    // The stream read as a table with both serdes named (to_table), then summed over all
    // keys: after a restore, the sum subtracts the restored old value.
    events
        .map_values(Some)
        .to_table(
            Materialized::as_("latest")
                .with_key_serde::<String>(Builtin)
                .with_value_serde::<i64>(Builtin),
        )
        .group_by(
            |_, v| ("all".to_string(), *v),
            Grouped::with(Builtin, Builtin),
        )
        .reduce(|a, b| a + b, |a, b| a - b, Materialized::as_("latest-sum"))
        .to_stream()
        .map(|k, v| (format!("to_table:{k}"), v))
        .to("out", out());
    builder.add_state_store_builder(Stores::key_value_store_builder::<String, i64>(
        Stores::in_memory_key_value_store("seen"),
        Builtin,
        Builtin,
    ));
    builder.add_state_store_builder(
        Stores::key_value_store_builder::<String, i64>(
            Stores::in_memory_key_value_store("unlogged"),
            Builtin,
            Builtin,
        )
        .with_logging_disabled(),
    );
    events
        .process(|| CountSeen, &["seen", "unlogged"])
        .to("out", out());
    builder.build().unwrap()
}

fn config(state_dir: &std::path::Path) -> StreamsConfig {
    StreamsConfig::new("st")
        .with_properties(&[
            ("commit.interval.ms", "20"),
            ("state.dir", state_dir.to_str().unwrap()),
        ])
        .unwrap()
}

/// Read `out` until every key of `want` has its value (later values of a key replace
/// earlier ones), or fail after 60 s naming what was read.
fn read_until(consumer: &mut Consumer, seen: &mut BTreeMap<String, i64>, want: &[(&str, i64)]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !want.iter().all(|(k, v)| seen.get(*k) == Some(v)) {
        assert!(Instant::now() < deadline, "read {seen:?}, want {want:?}");
        for r in consumer.poll(Duration::from_millis(50)).unwrap() {
            use embroker::streams::Serde;
            let key: String = Builtin.deserialize("out", &[], r.key).unwrap();
            let value: Option<i64> = Builtin.deserialize("out", &[], r.value).unwrap();
            match value {
                Some(v) => seen.insert(key, v),
                None => seen.remove(&key),
            };
        }
    }
}

#[test]
fn every_logged_store_kind_is_restored_from_its_changelog_after_the_state_directory_is_deleted() {
    let broker = Broker::temporary().unwrap();
    for topic in ["events", "prices", "out"] {
        broker
            .create_topic(topic, TopicConfig::default().partitions(1))
            .unwrap();
    }
    let producer = broker.producer(ProducerConfig::default()).unwrap();
    let send_to = |topic: &'static str, key: &str, value: i64, t: i64| {
        producer
            .send(
                ProducerRecord::new(topic, value.to_be_bytes().to_vec())
                    .key(key.to_string())
                    .timestamp(t),
            )
            .unwrap()
            .wait()
            .unwrap();
    };
    let send = |key: &str, value: i64, t: i64| send_to("events", key, value, t);
    let mut consumer = broker
        .consumer({
            let mut c = ConsumerConfig::default();
            c.auto_offset_reset = OffsetReset::Earliest;
            c
        })
        .unwrap();
    consumer.assign(&[TopicPartition::new("out", 0)]).unwrap();
    let mut seen = BTreeMap::new();
    let state = tempfile::tempdir().unwrap();

    // ann: 1 at 1 s, 2 at 2 s; bob: 10 at 3 s.
    send("ann", 1, 1_000);
    send("ann", 2, 2_000);
    send("bob", 10, 3_000);
    send_to("prices", "ann", 1, 1_000);
    send_to("prices", "bob", 10, 1_000);
    let streams = KafkaStreams::new(topology(), config(state.path()), &broker).unwrap();
    streams.start().unwrap();
    read_until(
        &mut consumer,
        &mut seen,
        &[
            ("kv:ann", 3),
            ("kv:bob", 10),
            ("window:ann@0", 3),
            ("session:ann@1000", 3),
            ("sliding:ann@0", 3),
            ("count:ann", 2),
            ("table:all", 11),
            ("to_table:all", 12),
            ("processor:ann", 2),
            ("unlogged:ann", 2),
        ],
    );
    streams.close().unwrap();
    for store in [
        "totals",
        "window-totals",
        "session-totals",
        "sliding-totals",
        "prices",
        "price-sum",
        "latest",
        "latest-sum",
        "seen",
    ] {
        let topic = format!("st-{store}-changelog");
        let described = broker.describe_topic(&topic);
        assert!(
            described.is_ok_and(|d| d.config.cleanup_policy.compacts()),
            "{topic} is a compacted changelog"
        );
    }
    for unlogged in ["unlogged", "unlogged-counts"] {
        assert!(
            broker
                .describe_topic(&format!("st-{unlogged}-changelog"))
                .is_err(),
            "{unlogged} has logging disabled"
        );
    }

    std::fs::remove_dir_all(state.path()).unwrap();
    // ann: 4 at 4 s, and ann's price 1 -> 4. Each restored store continues from its sums; the
    // unlogged ones start again from nothing.
    send("ann", 4, 4_000);
    send_to("prices", "ann", 4, 4_000);
    let streams = KafkaStreams::new(topology(), config(state.path()), &broker).unwrap();
    streams.start().unwrap();
    read_until(
        &mut consumer,
        &mut seen,
        &[
            ("kv:ann", 7),
            ("window:ann@0", 7),
            ("session:ann@1000", 7),
            ("count:ann", 1),
            ("table:all", 14),
            ("to_table:all", 14),
            ("processor:ann", 3),
            ("unlogged:ann", 1),
        ],
    );
    // The sliding window ending at the new record, [-6 s, 4 s] (Kafka's early records go to
    // [0, 10 s]), holds all three of ann's records.
    read_until(&mut consumer, &mut seen, &[("sliding:ann@0", 7)]);
    assert!(streams.stats().restored_records > 0);
    let totals = streams.store::<String, i64>("totals").unwrap();
    assert_eq!(totals.get(&"ann".to_string()).unwrap(), Some(7));
    assert_eq!(totals.get(&"bob".to_string()).unwrap(), Some(10));
    streams.close().unwrap();
}

#[test]
fn a_value_serde_of_another_type_than_the_aggregate_is_refused_at_build() {
    let builder = StreamsBuilder::new();
    builder
        .stream("events", Consumed::<String, i64>::with(Builtin, Builtin))
        .group_by_key(Grouped::with(Builtin, Builtin))
        .aggregate(
            String::new,
            |_, v, agg| format!("{agg}{v}"),
            Materialized::as_("strings").with_value_serde::<i64>(Builtin),
        );
    let err = builder
        .build()
        .err()
        .expect("a mismatched serde is refused");
    let text = err.to_string();
    assert!(text.contains("\"strings\""), "{text}");
    assert!(text.contains("i64"), "{text}");
}

#[test]
fn a_stream_stream_left_join_keeps_its_windows_and_unmatched_records_across_a_deleted_state_directory(
) {
    use embroker::streams::{JoinWindows, StreamJoined};
    let broker = Broker::temporary().unwrap();
    for topic in ["views", "clicks", "joined"] {
        broker
            .create_topic(topic, TopicConfig::default().partitions(1))
            .unwrap();
    }
    let topology = || {
        let builder = StreamsBuilder::new();
        let views = builder.stream("views", Consumed::<String, String>::with(Builtin, Builtin));
        let clicks = builder.stream("clicks", Consumed::<String, String>::with(Builtin, Builtin));
        views
            .left_join_with(
                &clicks,
                |v, c| format!("{v}+{}", c.map_or("null", String::as_str)),
                JoinWindows::of_time_difference_with_no_grace(Duration::from_secs(10)),
                StreamJoined::with(Builtin, Builtin, Builtin),
            )
            .to("joined", Produced::with(Builtin, Builtin));
        builder.build().unwrap()
    };
    let producer = broker.producer(ProducerConfig::default()).unwrap();
    let send = |topic: &'static str, key: &str, value: &str, t: i64| {
        producer
            .send(
                ProducerRecord::new(topic, value.to_string())
                    .key(key.to_string())
                    .timestamp(t),
            )
            .unwrap()
            .wait()
            .unwrap();
    };
    let mut consumer = broker
        .consumer({
            let mut c = ConsumerConfig::default();
            c.auto_offset_reset = OffsetReset::Earliest;
            c
        })
        .unwrap();
    consumer
        .assign(&[TopicPartition::new("joined", 0)])
        .unwrap();
    let mut out: Vec<(String, String)> = Vec::new();
    let state = tempfile::tempdir().unwrap();

    // ann and bob view at 1 s; nothing joins yet and both windows are open.
    send("views", "ann", "home", 1_000);
    send("views", "bob", "home", 1_000);
    let streams = KafkaStreams::new(topology(), config(state.path()), &broker).unwrap();
    streams.start().unwrap();
    let stores = [
        "st-KSTREAM-JOINTHIS-0000000002-store-changelog",
        "st-KSTREAM-OUTEROTHER-0000000003-store-changelog",
        "st-KSTREAM-OUTERSHARED-0000000004-store-changelog",
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    // Wait until both views reached the changelogs (the buffer holds two entries).
    loop {
        let end = broker
            .topic(stores[2])
            .and_then(|t| t.partition(0))
            .map(|p| p.log_end_offset())
            .unwrap_or(0);
        if end >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the outer buffer's changelog has {end}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    streams.close().unwrap();
    for topic in stores {
        assert!(
            broker
                .describe_topic(topic)
                .is_ok_and(|d| d.config.cleanup_policy.compacts()),
            "{topic}"
        );
    }
    std::fs::remove_dir_all(state.path()).unwrap();

    // ann clicks at 2 s: joins the restored view. carl's view at 100 s closes bob's window:
    // bob's restored unmatched view comes out as home+null; ann's, joined, does not.
    send("clicks", "ann", "buy", 2_000);
    send("views", "carl", "home", 100_000);
    let streams = KafkaStreams::new(topology(), config(state.path()), &broker).unwrap();
    streams.start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < 2 {
        assert!(Instant::now() < deadline, "joined {out:?}");
        for r in consumer.poll(Duration::from_millis(50)).unwrap() {
            use embroker::streams::Serde;
            let key: String = Builtin.deserialize("joined", &[], r.key).unwrap();
            let value: String = Builtin.deserialize("joined", &[], r.value).unwrap();
            out.push((key, value));
        }
    }
    // Nothing more within a moment (ann is not emitted unmatched, carl's window is open).
    let settle = Instant::now() + Duration::from_millis(300);
    while Instant::now() < settle {
        for r in consumer.poll(Duration::from_millis(50)).unwrap() {
            use embroker::streams::Serde;
            let key: String = Builtin.deserialize("joined", &[], r.key).unwrap();
            let value: String = Builtin.deserialize("joined", &[], r.value).unwrap();
            out.push((key, value));
        }
    }
    assert_eq!(
        out,
        vec![
            ("ann".to_string(), "home+buy".to_string()),
            ("bob".to_string(), "home+null".to_string()),
        ]
    );
    assert!(streams.stats().restored_records >= 4);
    streams.close().unwrap();
}
