//! Global tables under `KafkaStreams`: the KStream-GlobalKTable joins (inner, left) with two
//! stream threads and a global topic of more partitions than the stream's input, updates of
//! the global topic while running seen by later joins, the global store read by interactive
//! queries, a clean restart that reads only what came after the global checkpoint, a deleted
//! state directory rebuilt from the topic, `read_committed` under `exactly_once_v2`, and the
//! global thread's failure reaching the uncaught-error handler and ending in ERROR.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use embroker::streams::{
    Consumed, KafkaStreams, Materialized, Produced, ReadOnlyKeyValueStore, State,
    StreamThreadExceptionResponse, StreamsBuilder, StreamsConfig, Topology,
};
use embroker::{
    Acks, Broker, Builtin, ConsumerConfig, OffsetReset, Producer, ProducerConfig, ProducerRecord,
    TopicConfig, TopicPartition,
};

const ORDER_PARTITIONS: i32 = 2;
/// More than the orders have: a global topic is not co-partitioned.
const PRODUCT_PARTITIONS: i32 = 5;

/// Orders (customer -> product id) joined with product names (product id -> name).
fn shop() -> Topology {
    let builder = StreamsBuilder::new();
    let products = builder.global_table(
        "products",
        Consumed::<i64, String>::with(Builtin, Builtin),
        Materialized::as_("products-store"),
    );
    let orders = builder.stream("orders", Consumed::<String, i64>::with(Builtin, Builtin));
    orders
        .join_global(&products, |_, id| *id, |id, name| format!("{id}:{name}"))
        .to("inner", Produced::with(Builtin, Builtin));
    orders
        .left_join_global(
            &products,
            |_, id| *id,
            |id, name| format!("{id}:{}", name.map_or("?", String::as_str)),
        )
        .to("left", Produced::with(Builtin, Builtin));
    builder.build().unwrap()
}

fn setup() -> Broker {
    let broker = Broker::temporary().unwrap();
    for (topic, partitions) in [
        ("orders", ORDER_PARTITIONS),
        ("products", PRODUCT_PARTITIONS),
        ("inner", 1),
        ("left", 1),
    ] {
        broker
            .create_topic(topic, TopicConfig::default().partitions(partitions))
            .unwrap();
    }
    broker
}

fn config(state_dir: &std::path::Path, extra: &[(&str, &str)]) -> StreamsConfig {
    let mut props = vec![
        ("commit.interval.ms", "20"),
        ("num.stream.threads", "2"),
        ("state.dir", state_dir.to_str().unwrap()),
    ];
    props.extend_from_slice(extra);
    StreamsConfig::new("shop").with_properties(&props).unwrap()
}

fn send_product(producer: &Producer, id: i64, name: &str) {
    let partition = (id % i64::from(PRODUCT_PARTITIONS)) as i32;
    producer
        .send(
            ProducerRecord::new("products", name.to_string())
                .key(id.to_be_bytes().to_vec())
                .partition(partition),
        )
        .unwrap()
        .wait()
        .unwrap();
}

fn send_order(producer: &Producer, customer: &str, id: i64) {
    let partition = (id % i64::from(ORDER_PARTITIONS)) as i32;
    producer
        .send(
            ProducerRecord::new("orders", id.to_be_bytes().to_vec())
                .key(customer.to_string())
                .partition(partition),
        )
        .unwrap()
        .wait()
        .unwrap();
}

/// The values of `topic` (one partition), once there are at least `n`, as a sorted list.
fn read_values(broker: &Broker, topic: &str, n: usize) -> Vec<String> {
    let mut cc = ConsumerConfig::default();
    cc.auto_offset_reset = OffsetReset::Earliest;
    let mut consumer = broker.consumer(cc).unwrap();
    consumer.assign(&[TopicPartition::new(topic, 0)]).unwrap();
    let mut values = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while values.len() < n {
        assert!(
            Instant::now() < deadline,
            "{topic}: {} of {n} records after 60 s: {values:?}",
            values.len()
        );
        for r in consumer.poll(Duration::from_millis(50)).unwrap() {
            let bytes = r.value.unwrap();
            values.push(String::from_utf8(bytes.to_vec()).unwrap());
        }
    }
    values.sort();
    values
}

/// Wait until the global store holds `key` with `value`.
fn wait_for_row(streams: &KafkaStreams, key: i64, value: &str) {
    let store = streams.store::<i64, String>("products-store").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.get(&key).unwrap().as_deref() != Some(value) {
        assert!(
            Instant::now() < deadline,
            "product {key} never became {value:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn start(broker: &Broker, state_dir: &std::path::Path, extra: &[(&str, &str)]) -> KafkaStreams {
    let streams = KafkaStreams::new(shop(), config(state_dir, extra), broker).unwrap();
    streams.start().unwrap();
    streams.wait_until_running(Duration::from_secs(60)).unwrap();
    streams
}

#[test]
fn global_joins_run_under_two_threads_and_see_updates_made_while_running() {
    let broker = setup();
    let producer = broker.producer(ProducerConfig::default()).unwrap();
    for id in 0..20 {
        send_product(&producer, id, &format!("p{id}"));
    }
    let state = tempfile::tempdir().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let streams = KafkaStreams::new(shop(), config(state.path(), &[]), &broker).unwrap();
    let s = Arc::clone(&seen);
    streams.set_state_listener(move |new, _| s.lock().unwrap().push(new));
    // `start` returns once the global store is bootstrapped: it holds every product before
    // any stream thread runs.
    streams.start().unwrap();
    assert_eq!(streams.stats().global_restored_records, 20);
    let store = streams.store::<i64, String>("products-store").unwrap();
    streams.wait_until_running(Duration::from_secs(60)).unwrap();
    assert_eq!(store.approximate_num_entries().unwrap(), 20);
    assert_eq!(store.get(&7).unwrap().as_deref(), Some("p7"));
    assert_eq!(
        store.range(&3, &5).unwrap(),
        vec![
            (3, "p3".to_string()),
            (4, "p4".to_string()),
            (5, "p5".to_string())
        ]
    );

    // Orders over both input partitions (so both threads' tasks), one of an unknown product.
    for id in 0..20 {
        send_order(&producer, &format!("c{id}"), id);
    }
    send_order(&producer, "c100", 100);
    let mut want: Vec<String> = (0..20).map(|id| format!("{id}:p{id}")).collect();
    want.sort();
    assert_eq!(read_values(&broker, "inner", 20), want);
    let mut want_left = want.clone();
    want_left.push("100:?".to_string());
    want_left.sort();
    assert_eq!(read_values(&broker, "left", 21), want_left);

    // The global topic changes while running: later orders see the new rows.
    send_product(&producer, 100, "new");
    send_product(&producer, 0, "renamed");
    producer
        .send(ProducerRecord::tombstone("products", 5i64.to_be_bytes().to_vec()).partition(0))
        .unwrap()
        .wait()
        .unwrap();
    wait_for_row(&streams, 100, "new");
    wait_for_row(&streams, 0, "renamed");
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.get(&5).unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "the tombstone of product 5 was not applied"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    send_order(&producer, "d100", 100);
    send_order(&producer, "d0", 0);
    send_order(&producer, "d5", 5);
    let inner = read_values(&broker, "inner", 22);
    assert!(inner.contains(&"100:new".to_string()), "{inner:?}");
    assert!(inner.contains(&"0:renamed".to_string()), "{inner:?}");
    assert!(!inner.iter().any(|v| v == "5:?"), "{inner:?}");
    let left = read_values(&broker, "left", 24);
    assert_eq!(left.iter().filter(|v| *v == "5:?").count(), 1, "{left:?}");
    assert!(left.contains(&"100:new".to_string()), "{left:?}");

    streams.close().unwrap();
    assert_eq!(streams.state(), State::NotRunning);
    assert_eq!(
        seen.lock().unwrap().first(),
        Some(&State::Rebalancing),
        "REBALANCING while the global store bootstraps"
    );
    assert!(seen.lock().unwrap().contains(&State::Running));
}

#[test]
fn a_clean_restart_reads_only_past_the_global_checkpoint_and_a_deleted_state_dir_rebuilds() {
    let broker = setup();
    let producer = broker.producer(ProducerConfig::default()).unwrap();
    for id in 0..30 {
        send_product(&producer, id, &format!("p{id}"));
    }
    let state = tempfile::tempdir().unwrap();
    let global_dir = state.path().join("shop").join("global");

    let streams = start(&broker, state.path(), &[]);
    let stats = streams.stats();
    assert_eq!(
        (
            stats.global_restored_records,
            stats.global_restored_from_files
        ),
        (30, 0)
    );
    streams.close().unwrap();
    let checkpoint = std::fs::read_to_string(global_dir.join(".checkpoint")).unwrap();
    assert!(
        checkpoint.starts_with(&format!("0\n{PRODUCT_PARTITIONS}\n")),
        "one line per partition of the global topic: {checkpoint:?}"
    );
    assert!(checkpoint.contains("products 0 6\n"), "{checkpoint:?}");
    assert!(global_dir.join("products-store.store").exists());
    drop(streams);

    // Four records after the checkpoint: two updates, two new products.
    send_product(&producer, 1, "one");
    send_product(&producer, 2, "two");
    send_product(&producer, 30, "p30");
    send_product(&producer, 31, "p31");
    let streams = start(&broker, state.path(), &[]);
    let stats = streams.stats();
    assert_eq!(
        (
            stats.global_restored_records,
            stats.global_restored_from_files
        ),
        (4, 30),
        "only what came after the checkpoint is read from the topic"
    );
    let store = streams.store::<i64, String>("products-store").unwrap();
    assert_eq!(store.approximate_num_entries().unwrap(), 32);
    assert_eq!(store.get(&1).unwrap().as_deref(), Some("one"));
    assert_eq!(store.get(&31).unwrap().as_deref(), Some("p31"));
    streams.close().unwrap();
    drop(streams);

    // Nothing new: nothing read from the topic.
    let streams = start(&broker, state.path(), &[]);
    let stats = streams.stats();
    assert_eq!(
        (
            stats.global_restored_records,
            stats.global_restored_from_files
        ),
        (0, 32)
    );
    streams.close().unwrap();
    drop(streams);

    // The state directory deleted: the global store is rebuilt from its topic, whole.
    std::fs::remove_dir_all(state.path().join("shop")).unwrap();
    let streams = start(&broker, state.path(), &[]);
    let stats = streams.stats();
    assert_eq!(
        (
            stats.global_restored_records,
            stats.global_restored_from_files
        ),
        (34, 0)
    );
    let store = streams.store::<i64, String>("products-store").unwrap();
    let all: BTreeMap<i64, String> = store.all().unwrap().into_iter().collect();
    assert_eq!(all.len(), 32);
    assert_eq!(all.get(&2).map(String::as_str), Some("two"));
    send_order(&producer, "ann", 2);
    assert_eq!(read_values(&broker, "inner", 1), vec!["2:two".to_string()]);
    streams.close().unwrap();
}

#[test]
fn under_exactly_once_the_global_store_reads_committed_records_only() {
    let broker = setup();
    let plain = broker.producer(ProducerConfig::default()).unwrap();
    send_product(&plain, 1, "p1");
    let txn = broker
        .producer(
            ProducerConfig::default()
                .acks(Acks::All)
                .transactional_id("products-writer"),
        )
        .unwrap();
    txn.init_transactions().unwrap();
    txn.begin_transaction().unwrap();
    send_product(&txn, 2, "aborted");
    txn.abort_transaction().unwrap();
    // An open transaction: its record is past the last stable offset.
    txn.begin_transaction().unwrap();
    send_product(&txn, 3, "open");

    let state = tempfile::tempdir().unwrap();
    let streams = start(
        &broker,
        state.path(),
        &[("processing.guarantee", "exactly_once_v2")],
    );
    let store = streams.store::<i64, String>("products-store").unwrap();
    assert_eq!(store.get(&1).unwrap().as_deref(), Some("p1"));
    assert_eq!(store.get(&2).unwrap(), None, "an aborted record");
    assert_eq!(
        store.get(&3).unwrap(),
        None,
        "a record of an open transaction"
    );
    txn.commit_transaction().unwrap();
    wait_for_row(&streams, 3, "open");
    assert_eq!(store.get(&2).unwrap(), None);
    streams.close().unwrap();
}

#[test]
fn a_global_thread_failure_reaches_the_handler_and_ends_in_error() {
    let broker = setup();
    let producer = broker.producer(ProducerConfig::default()).unwrap();
    send_product(&producer, 1, "p1");
    let state = tempfile::tempdir().unwrap();
    let streams = KafkaStreams::new(shop(), config(state.path(), &[]), &broker).unwrap();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let e = Arc::clone(&errors);
    // The global thread cannot be replaced (as in Kafka): the client shuts down anyway.
    streams.set_uncaught_exception_handler(move |err| {
        e.lock().unwrap().push(err.to_string());
        StreamThreadExceptionResponse::ReplaceThread
    });
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    streams.set_state_listener(move |new, _| s.lock().unwrap().push(new));
    streams.start().unwrap();
    streams.wait_until_running(Duration::from_secs(60)).unwrap();
    // A key of 3 bytes is no i64.
    producer
        .send(
            ProducerRecord::new("products", "bad")
                .key(vec![1u8, 2, 3])
                .partition(4),
        )
        .unwrap()
        .wait()
        .unwrap();
    // The listener hears of ERROR just after the state is set: wait for the listener.
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.lock().unwrap().last() != Some(&State::Error) {
        assert!(Instant::now() < deadline, "state {:?}", streams.state());
        std::thread::sleep(Duration::from_millis(10));
    }
    let errors = errors.lock().unwrap().clone();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("products-4") && errors[0].contains("key"),
        "{errors:?}"
    );
    let seen = seen.lock().unwrap().clone();
    let n = seen.len();
    assert_eq!(
        &seen[n - 2..],
        &[State::PendingError, State::Error],
        "{seen:?}"
    );
    streams.close().unwrap();
    assert_eq!(streams.state(), State::Error);
    drop(streams);

    // The bad record is in the topic: a new instance fails while bootstrapping, and start
    // says why.
    let streams = KafkaStreams::new(shop(), config(state.path(), &[]), &broker).unwrap();
    let err = streams.start().unwrap_err();
    assert!(
        matches!(err, embroker::Error::Deserialization { .. }),
        "{err}"
    );
    assert_eq!(streams.state(), State::Error);
}
