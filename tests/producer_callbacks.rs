//! `send_with_callback`: every accepted record's callback runs exactly once, with metadata or
//! the storage error, including records still pending at close or drop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use embroker::{Broker, Error, ProducerConfig, ProducerRecord, TopicConfig};

fn broker_with(topic: &str, partitions: i32) -> Broker {
    let broker = Broker::temporary().unwrap();
    broker
        .create_topic(topic, TopicConfig::default().partitions(partitions))
        .unwrap();
    broker
}

/// Counts callback runs per record index.
fn counters(n: usize) -> Arc<Vec<AtomicUsize>> {
    Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect())
}

#[test]
fn callbacks_fire_exactly_once_including_records_pending_at_close() {
    const N: usize = 5_000;
    let broker = broker_with("t", 4);
    // A linger of ten minutes and room for every record in one batch: nothing is written
    // until close.
    let producer = broker
        .producer(
            ProducerConfig::default()
                .linger_ms(600_000)
                .batch_size(1 << 20),
        )
        .unwrap();
    let calls = counters(N);
    let offsets = Arc::new(parking_lot::Mutex::new(Vec::new()));
    for i in 0..N {
        let calls = Arc::clone(&calls);
        let offsets = Arc::clone(&offsets);
        producer
            .send_with_callback(
                ProducerRecord::new("t", format!("v{i}")).key(format!("k{i}")),
                move |r| {
                    let meta = r.unwrap();
                    offsets.lock().push((meta.partition, meta.offset));
                    calls[i].fetch_add(1, Ordering::SeqCst);
                },
            )
            .unwrap();
    }
    let pending = calls
        .iter()
        .filter(|c| c.load(Ordering::SeqCst) == 0)
        .count();
    assert!(
        pending > N / 2,
        "records should be lingering, {pending} pending"
    );
    producer.close().unwrap();
    for (i, c) in calls.iter().enumerate() {
        assert_eq!(c.load(Ordering::SeqCst), 1, "callback {i}");
    }
    let mut offsets = offsets.lock().clone();
    offsets.sort_unstable();
    offsets.dedup();
    assert_eq!(offsets.len(), N, "every record got its own offset");
    // Closing again does not run anything twice.
    producer.close().unwrap();
    assert!(calls.iter().all(|c| c.load(Ordering::SeqCst) == 1));
}

#[test]
fn callbacks_fire_when_the_last_handle_is_dropped() {
    let broker = broker_with("t", 1);
    let producer = broker
        .producer(ProducerConfig::default().linger_ms(600_000))
        .unwrap();
    let calls = counters(100);
    for i in 0..100 {
        let calls = Arc::clone(&calls);
        producer
            .send_with_callback(ProducerRecord::new("t", "v"), move |r| {
                r.unwrap();
                calls[i].fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
    }
    drop(producer);
    assert!(calls.iter().all(|c| c.load(Ordering::SeqCst) == 1));
}

#[test]
fn a_storage_error_reaches_the_callback_and_the_future() {
    let broker = broker_with("t", 1);
    let producer = broker
        .producer(ProducerConfig::default().linger_ms(600_000))
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let big = vec![0u8; 3_000];
    producer
        .send_with_callback(ProducerRecord::new("t", big.clone()), move |r| {
            tx.send(r).unwrap();
        })
        .unwrap();
    let future = producer.send(ProducerRecord::new("t", big)).unwrap();
    // The topic's limit drops below the pending batch's size before the batch is written:
    // the log refuses it, and both records hear about it.
    broker
        .alter_topic_config("t", &[("max.message.bytes", "1000")])
        .unwrap();
    producer.flush().unwrap();
    let e = rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::RecordTooLarge {
                limit: 1000,
                limit_name: "max.message.bytes",
                ..
            }
        ),
        "{e}"
    );
    assert!(matches!(future.wait(), Err(Error::RecordTooLarge { .. })));
    // The producer goes on working.
    let ok = producer.send(ProducerRecord::new("t", "small")).unwrap();
    producer.flush().unwrap();
    let ok = ok.wait().unwrap();
    assert_eq!(ok.offset, 0);
}

#[test]
fn a_panicking_callback_does_not_take_the_producer_down() {
    let broker = broker_with("t", 1);
    let producer = broker.producer(ProducerConfig::default()).unwrap();
    producer
        .send_with_callback(ProducerRecord::new("t", "a"), |_| panic!("user bug"))
        .unwrap();
    producer.flush().unwrap();
    let meta = producer
        .send(ProducerRecord::new("t", "b"))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(meta.offset, 1);
}

#[test]
fn flush_from_a_callback_is_an_error_and_close_from_a_callback_does_not_hang() {
    let broker = broker_with("t", 1);
    let producer = broker.producer(ProducerConfig::default()).unwrap();
    let (tx, rx) = mpsc::channel();
    let inner = producer.clone();
    producer
        .send_with_callback(ProducerRecord::new("t", "a"), move |_| {
            let flushed = inner.flush();
            let closed = inner.close();
            tx.send((flushed, closed)).unwrap();
        })
        .unwrap();
    let (flushed, closed) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        matches!(flushed, Err(Error::IllegalState { .. })),
        "{flushed:?}"
    );
    closed.unwrap();
    assert!(matches!(
        producer.send(ProducerRecord::new("t", "b")),
        Err(Error::Closed { .. })
    ));
    producer.close().unwrap();
}
