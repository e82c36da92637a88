//! Persistent key-value stores under `KafkaStreams` (Kafka's `Stores.persistentKeyValueStore`):
//! a count store whose entries live in `state.dir/<application.id>/<task>/<store>/`.
//!
//! - A clean restart restores nothing (`StreamsStats::restored_records` is 0) and writes no
//!   `.store` file: the store's own files, flushed before the checkpoint, are the state.
//! - Without the checkpoint (what a crash leaves under `exactly_once_v2`, whose runtime drops
//!   the persistent stores' offsets while it runs), exactly-once wipes the store and restores
//!   the whole changelog; at-least-once keeps the store and restores the changelog from its
//!   start over it (Kafka's `ProcessorStateManager`): a key written into the store files
//!   and not into the changelog ("ghost", what a crash can leave) is gone under
//!   exactly-once and kept under at-least-once, and the changelog's keys are right in both.
//! - Deleting the state directory restores the store from its changelog.
//!
//! The SIGKILL runs of a persistent store are in `streams_crash.rs`; the test driver's in
//! `streams_dsl.rs`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use embroker::streams::{
    Consumed, KafkaStreams, KeyValueStore, PersistentKeyValueStore, Processor, ProcessorContext,
    Produced, ReadOnlyKeyValueStore, Record, Stores, StreamsBuilder, StreamsConfig, Topology,
    TopologyTestDriver,
};
use embroker::{
    Broker, Builtin, ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord, TopicConfig,
    TopicPartition,
};

/// Counts each key's records in the store `counts`, forwarding the count.
struct Count;

impl Processor<String, String, String, Option<i64>> for Count {
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

fn topology() -> Topology {
    let builder = StreamsBuilder::new();
    builder.add_state_store_builder(Stores::key_value_store_builder::<String, i64>(
        Stores::persistent_key_value_store("counts"),
        Builtin,
        Builtin,
    ));
    builder
        .stream("events", Consumed::<String, String>::with(Builtin, Builtin))
        .process(|| Count, &["counts"])
        .to("out", Produced::with(Builtin, Builtin));
    builder.build().unwrap()
}

fn config(state: &Path, guarantee: &str) -> StreamsConfig {
    StreamsConfig::new("ps")
        .with_properties(&[
            ("commit.interval.ms", "20"),
            ("processing.guarantee", guarantee),
            ("state.dir", state.to_str().unwrap()),
        ])
        .unwrap()
}

fn send(broker: &Broker, keys: &[&str]) {
    let producer = broker.producer(ProducerConfig::default()).unwrap();
    for k in keys {
        producer
            .send(ProducerRecord::new("events", b"x".to_vec()).key(k.to_string()))
            .unwrap()
            .wait()
            .unwrap();
    }
}

/// Run the application until its store holds `want`, then close it cleanly; the records it
/// restored on start.
fn run_until(broker: &Broker, state: &Path, guarantee: &str, want: &[(&str, i64)]) -> u64 {
    let streams = KafkaStreams::new(topology(), config(state, guarantee), broker).unwrap();
    streams.start().unwrap();
    let store = streams.store::<String, i64>("counts").unwrap();
    let want: BTreeMap<String, i64> = want.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: BTreeMap<String, i64> = store.all().unwrap_or_default().into_iter().collect();
        if got == want {
            break;
        }
        assert!(Instant::now() < deadline, "store {got:?}, want {want:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let restored = streams.stats().restored_records;
    streams.close().unwrap();
    restored
}

/// The records of the store's changelog (under exactly-once its offsets also count
/// transaction markers, which are not records).
fn changelog_records(broker: &Broker) -> u64 {
    let end = broker
        .topic("ps-counts-changelog")
        .unwrap()
        .partition(0)
        .unwrap()
        .log_end_offset();
    let mut config = ConsumerConfig::default();
    config.auto_offset_reset = OffsetReset::Earliest;
    let mut consumer = broker.consumer(config).unwrap();
    let tp = TopicPartition::new("ps-counts-changelog", 0);
    consumer.assign(std::slice::from_ref(&tp)).unwrap();
    let mut records = 0;
    while consumer.position(&tp).unwrap() < end {
        records += consumer
            .poll(Duration::from_millis(50))
            .unwrap()
            .into_iter()
            .count() as u64;
    }
    records
}

fn setup() -> (Broker, tempfile::TempDir) {
    let broker = Broker::temporary().unwrap();
    for topic in ["events", "out"] {
        broker
            .create_topic(topic, TopicConfig::default().partitions(1))
            .unwrap();
    }
    (broker, tempfile::tempdir().unwrap())
}

fn check_restarts(guarantee: &str) {
    let (broker, state) = setup();
    let task = state.path().join("ps").join("0_0");
    send(&broker, &["a", "a", "b"]);
    assert_eq!(
        run_until(&broker, state.path(), guarantee, &[("a", 2), ("b", 1)]),
        0
    );
    assert!(task.join("counts").join("data.log").is_file());
    assert!(
        !task.join("counts.store").exists(),
        "no snapshot of a persistent store"
    );
    assert!(task.join(".checkpoint").is_file());

    // A clean restart restores nothing: the store's files are its state.
    send(&broker, &["a"]);
    assert_eq!(
        run_until(&broker, state.path(), guarantee, &[("a", 3), ("b", 1)]),
        0
    );

    // No checkpoint: a crash's leftovers. Exactly-once wipes the store and restores the
    // whole changelog; at-least-once keeps it and restores the changelog over it.
    // A write the crash left in the store and not in the changelog: "ghost".
    std::fs::remove_file(task.join(".checkpoint")).unwrap();
    let mut store = PersistentKeyValueStore::<String, i64>::open(
        "counts",
        &task.join("counts"),
        Builtin,
        Builtin,
    )
    .unwrap();
    store.put("ghost".to_string(), 9).unwrap();
    store.flush().unwrap();
    drop(store);
    let end = changelog_records(&broker);
    assert!(end > 0);
    send(&broker, &["b"]);
    let want: &[(&str, i64)] = if guarantee == "exactly_once_v2" {
        &[("a", 3), ("b", 2)]
    } else {
        &[("a", 3), ("b", 2), ("ghost", 9)]
    };
    let restored = run_until(&broker, state.path(), guarantee, want);
    assert_eq!(restored, end, "{guarantee}: the whole changelog, once");
    if guarantee != "exactly_once_v2" {
        // Not in the changelog: gone with the state directory.
        let mut store = PersistentKeyValueStore::<String, i64>::open(
            "counts",
            &task.join("counts"),
            Builtin,
            Builtin,
        )
        .unwrap();
        store.delete(&"ghost".to_string()).unwrap();
        store.flush().unwrap();
    }

    // The state directory deleted: restored from the changelog.
    std::fs::remove_dir_all(state.path()).unwrap();
    let end = changelog_records(&broker);
    send(&broker, &["c"]);
    let restored = run_until(
        &broker,
        state.path(),
        guarantee,
        &[("a", 3), ("b", 2), ("c", 1)],
    );
    assert_eq!(restored, end);
}

#[test]
fn at_least_once_a_clean_restart_restores_nothing_and_a_lost_checkpoint_restores_over_the_store() {
    check_restarts("at_least_once");
}

#[test]
fn exactly_once_a_clean_restart_restores_nothing_and_a_lost_checkpoint_wipes_the_store() {
    check_restarts("exactly_once_v2");
}

#[test]
fn exactly_once_drops_the_persistent_offsets_from_the_checkpoint_while_running() {
    let (broker, state) = setup();
    let task = state.path().join("ps").join("0_0");
    send(&broker, &["a"]);
    run_until(&broker, state.path(), "exactly_once_v2", &[("a", 1)]);
    let streams =
        KafkaStreams::new(topology(), config(state.path(), "exactly_once_v2"), &broker).unwrap();
    streams.start().unwrap();
    let store = streams.store::<String, i64>("counts").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.get(&"a".to_string()).ok().flatten() != Some(1) {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    // Running: a crash now would leave no offset for the store, so the next start wipes it.
    let text = std::fs::read_to_string(task.join(".checkpoint")).unwrap();
    assert!(!text.contains("ps-counts-changelog"), "{text:?}");
    streams.close().unwrap();
    let text = std::fs::read_to_string(task.join(".checkpoint")).unwrap();
    assert!(text.contains("ps-counts-changelog 0 "), "{text:?}");
}

#[test]
fn the_test_driver_runs_a_persistent_store_in_a_directory_it_removes() {
    let config = StreamsConfig::new("ps");
    let driver = TopologyTestDriver::new(topology(), config).unwrap();
    let input = driver.create_input_topic::<String, String>("events", Builtin, Builtin);
    for k in ["a", "b", "a"] {
        input.pipe_input(k.to_string(), "x".to_string()).unwrap();
    }
    let store = driver.get_key_value_store::<String, i64>("counts").unwrap();
    assert_eq!(store.get(&"a".to_string()).unwrap(), Some(2));
    assert_eq!(
        store.all().unwrap(),
        vec![("a".to_string(), 2), ("b".to_string(), 1)]
    );
}
