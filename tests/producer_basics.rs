//! The producer's two sending models, acks, batching by size and by linger, flush and close.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use embroker::{
    Acks, Broker, Bytes, Error, Producer, ProducerConfig, ProducerRecord, RecordMetadata,
    TopicConfig,
};

fn broker_with(topic: &str, partitions: i32) -> Broker {
    let broker = Broker::temporary().unwrap();
    broker
        .create_topic(topic, TopicConfig::default().partitions(partitions))
        .unwrap();
    broker
}

#[test]
fn producer_is_clone_send_sync() {
    fn assert_bounds<T: Clone + Send + Sync + 'static>() {}
    assert_bounds::<Producer>();
    fn assert_send<T: Send + 'static>() {}
    assert_send::<embroker::SendFuture>();
}

#[test]
fn sync_send_returns_metadata_and_stores_every_field() {
    let broker = broker_with("t", 1);
    let producer = broker.producer(ProducerConfig::default()).unwrap();
    let meta = producer
        .send(
            ProducerRecord::new("t", "v0")
                .key("k0")
                .header("h", "x")
                .timestamp(1_234),
        )
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(
        meta,
        RecordMetadata {
            topic: "t",
            partition: 0,
            offset: 0,
            timestamp: 1_234
        }
    );
    let tomb = producer
        .send(ProducerRecord::tombstone("t", "k0"))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(tomb.offset, 1);
    // Payloads from String and Vec<u8> as well as &'static str.
    producer
        .send(ProducerRecord::new("t", String::from("v2")).key(vec![1u8, 2]))
        .unwrap()
        .wait()
        .unwrap();

    let p = broker.topic("t").unwrap().partition(0).unwrap();
    let stored = common::read_all(&p, 0);
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[0].key.as_deref(), Some(&b"k0"[..]));
    assert_eq!(stored[0].value.as_deref(), Some(&b"v0"[..]));
    assert_eq!(stored[0].timestamp, 1_234);
    assert_eq!(stored[0].headers.len(), 1);
    assert_eq!(stored[0].headers[0].key, "h");
    assert_eq!(stored[0].headers[0].value, Some(Bytes::from("x")));
    assert_eq!(stored[1].key.as_deref(), Some(&b"k0"[..]));
    assert!(stored[1].value.is_none(), "tombstone has no value");
    assert_eq!(stored[2].key.as_deref(), Some(&[1u8, 2][..]));
    // A record without a timestamp gets the clock's time at send.
    assert!(stored[1].timestamp > 1_600_000_000_000);
    producer.close().unwrap();
}

#[test]
fn callback_gets_the_same_metadata_as_the_future() {
    let broker = broker_with("t", 2);
    let producer = broker.producer(ProducerConfig::default()).unwrap();
    let (tx, rx) = mpsc::channel();
    producer
        .send_with_callback(ProducerRecord::new("t", "a").partition(1), move |r| {
            tx.send(r).unwrap();
        })
        .unwrap();
    let meta = rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!((meta.partition, meta.offset), (1, 0));
    let future = producer
        .send(ProducerRecord::new("t", "b").partition(1))
        .unwrap();
    assert_eq!(future.partition(), 1);
    assert_eq!(future.wait().unwrap().offset, 1);
}

#[test]
fn lone_send_with_linger_zero_does_not_wait_for_a_timer() {
    let broker = broker_with("t", 1);
    let producer = broker
        .producer(ProducerConfig::default().linger_ms(0))
        .unwrap();
    // Warm up (thread start, first segment write).
    producer
        .send(ProducerRecord::new("t", "w"))
        .unwrap()
        .wait()
        .unwrap();
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let start = Instant::now();
        producer
            .send(ProducerRecord::new("t", "x"))
            .unwrap()
            .wait()
            .unwrap();
        slowest = slowest.max(start.elapsed());
    }
    // No timer is involved: each round trip is a thread wake-up and an append. The bound is
    // generous for a loaded shared machine and far below any linger worth configuring.
    assert!(slowest < Duration::from_millis(200), "{slowest:?}");
}

#[test]
fn a_record_after_a_full_batch_goes_out_without_flush() {
    // The record that opens a batch while the lane still holds a full one does not signal the
    // sender (the full batch did); the sender must find it when it takes the full one.
    for linger_ms in [0, 20] {
        let broker = broker_with("t", 1);
        let producer = broker
            .producer(
                ProducerConfig::default()
                    .linger_ms(linger_ms)
                    .batch_size(1_000),
            )
            .unwrap();
        for round in 0..50 {
            // Ten records of 100 bytes fill a 1,000-byte batch; the eleventh opens the next.
            let futures: Vec<_> = (0..11)
                .map(|_| {
                    producer
                        .send(ProducerRecord::new("t", vec![7u8; 100]))
                        .unwrap()
                })
                .collect();
            for (i, f) in futures.iter().enumerate() {
                if let Err(e) = f.wait_timeout(Duration::from_secs(10)) {
                    panic!("linger.ms={linger_ms}, round {round}, record {i}: {e}");
                }
            }
        }
    }
}

#[test]
fn linger_holds_a_partial_batch_until_it_expires() {
    let broker = broker_with("t", 1);
    let producer = broker
        .producer(ProducerConfig::default().linger_ms(300))
        .unwrap();
    let start = Instant::now();
    let futures: Vec<_> = (0..5)
        .map(|i| {
            producer
                .send(ProducerRecord::new("t", format!("v{i}")))
                .unwrap()
        })
        .collect();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    assert_eq!(p.log_end_offset(), 0, "a partial batch lingers");
    let offsets: Vec<i64> = futures
        .into_iter()
        .map(|f| f.wait().unwrap().offset)
        .collect();
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(offsets, [0, 1, 2, 3, 4]);
    assert_eq!(p.log_end_offset(), 5);
}

#[test]
fn a_full_batch_is_written_without_waiting_for_linger() {
    let broker = broker_with("t", 1);
    let producer = broker
        .producer(
            ProducerConfig::default()
                .linger_ms(600_000)
                .batch_size(1_000),
        )
        .unwrap();
    let futures: Vec<_> = (0..50)
        .map(|_| {
            producer
                .send(ProducerRecord::new("t", vec![7u8; 100]))
                .unwrap()
        })
        .collect();
    // About 9 records fill 1,000 bytes: the first batches go at once, the last one lingers.
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    assert!(p.wait_for_end_offset_past(0, Duration::from_secs(10)));
    let first = futures[0].wait_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(first.offset, 0);
    assert!(!futures[49].is_done(), "the last, partial batch lingers");
    assert!(p.log_end_offset() < 50);
    producer.flush().unwrap();
    assert!(futures[49].is_done());
    assert_eq!(p.log_end_offset(), 50);
    // Every batch stayed within batch.size.
    let mut at = 0;
    while at < p.log_end_offset() {
        let records = p.read(at, 1).unwrap(); // one batch per read
        assert!(records.len() <= 10, "batch of {} records", records.len());
        at = records.next_offset();
    }
}

#[test]
fn flush_sends_lingering_records_and_waits() {
    let broker = broker_with("t", 3);
    let producer = broker
        .producer(ProducerConfig::default().linger_ms(600_000))
        .unwrap();
    let futures: Vec<_> = (0..30)
        .map(|i| {
            producer
                .send(ProducerRecord::new("t", format!("v{i}")).key(format!("k{i}")))
                .unwrap()
        })
        .collect();
    assert!(futures.iter().all(|f| !f.is_done()));
    producer.flush().unwrap();
    assert!(futures.iter().all(|f| f.is_done()));
    let total: i64 = (0..3)
        .map(|p| {
            broker
                .topic("t")
                .unwrap()
                .partition(p)
                .unwrap()
                .log_end_offset()
        })
        .sum();
    assert_eq!(total, 30);
}

#[test]
fn acks_zero_reports_offset_minus_one_at_once_and_still_writes() {
    let broker = broker_with("t", 1);
    let producer = broker
        .producer(
            ProducerConfig::default()
                .acks(Acks::None)
                .linger_ms(600_000),
        )
        .unwrap();
    let f = producer.send(ProducerRecord::new("t", "x")).unwrap();
    assert!(f.is_done(), "acks=0 awaits nothing");
    let meta = f.wait().unwrap();
    assert_eq!(meta.offset, -1);
    let (tx, rx) = mpsc::channel();
    producer
        .send_with_callback(ProducerRecord::new("t", "y"), move |r| {
            tx.send(r.map(|m| m.offset)).unwrap();
        })
        .unwrap();
    producer.flush().unwrap();
    assert_eq!(rx.recv().unwrap().unwrap(), -1);
    assert_eq!(
        broker
            .topic("t")
            .unwrap()
            .partition(0)
            .unwrap()
            .log_end_offset(),
        2
    );
}

#[test]
fn acks_all_reports_after_an_fsync() {
    // A persistent broker: a temporary one fsyncs nothing.
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    broker
        .create_topic("t", TopicConfig::default().partitions(1))
        .unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    let producer = broker
        .producer(ProducerConfig::default().acks(Acks::All))
        .unwrap();
    let before = p.fsync_count();
    let meta = producer
        .send(ProducerRecord::new("t", "durable"))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(meta.offset, 0);
    assert!(p.fsync_count() > before, "acks=all fsyncs before success");
}

#[test]
fn acks_one_does_not_fsync() {
    let broker = broker_with("t", 1);
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    let producer = broker.producer(ProducerConfig::default()).unwrap();
    let before = p.fsync_count();
    for _ in 0..10 {
        producer
            .send(ProducerRecord::new("t", "x"))
            .unwrap()
            .wait()
            .unwrap();
    }
    assert_eq!(p.fsync_count(), before);
}

#[test]
fn close_flushes_then_refuses_sends() {
    let broker = broker_with("t", 1);
    let producer = broker
        .producer(ProducerConfig::default().linger_ms(600_000))
        .unwrap();
    let other = producer.clone();
    let f = producer.send(ProducerRecord::new("t", "pending")).unwrap();
    producer.close().unwrap();
    assert_eq!(f.wait().unwrap().offset, 0);
    let e = other.send(ProducerRecord::new("t", "late")).unwrap_err();
    assert!(matches!(e, Error::Closed { what: "producer" }), "{e}");
    assert!(matches!(
        other.send_with_callback(ProducerRecord::new("t", "late"), |_| {}),
        Err(Error::Closed { .. })
    ));
    other.close().unwrap();
    other.flush().unwrap();
}

#[test]
fn dropping_the_last_handle_flushes() {
    let broker = broker_with("t", 1);
    let producer = broker
        .producer(ProducerConfig::default().linger_ms(600_000))
        .unwrap();
    let f = producer.send(ProducerRecord::new("t", "pending")).unwrap();
    let clone = producer.clone();
    drop(producer);
    assert!(!f.is_done(), "a clone still holds the producer open");
    drop(clone);
    assert_eq!(f.wait().unwrap().offset, 0);
    assert_eq!(
        broker
            .topic("t")
            .unwrap()
            .partition(0)
            .unwrap()
            .log_end_offset(),
        1
    );
}

#[test]
fn log_append_time_topic_reports_the_logs_timestamp() {
    let broker = Broker::temporary().unwrap();
    broker
        .create_topic(
            "t",
            TopicConfig::default()
                .with_properties(&[("message.timestamp.type", "LogAppendTime")])
                .unwrap(),
        )
        .unwrap();
    let producer = broker.producer(ProducerConfig::default()).unwrap();
    let meta = producer
        .send(ProducerRecord::new("t", "x").timestamp(5))
        .unwrap()
        .wait()
        .unwrap();
    assert!(meta.timestamp > 1_600_000_000_000, "{meta:?}");
}

#[test]
fn a_producer_ported_from_kafka_properties_works() {
    let broker = broker_with("t", 1);
    let config = ProducerConfig::from_properties(&[
        ("bootstrap.servers", "localhost:9092"),
        ("acks", "all"),
        ("linger.ms", "1"),
        ("client.id", "ported"),
    ])
    .unwrap();
    let producer = broker.producer(config).unwrap();
    assert_eq!(producer.config().client_id, "ported");
    assert_eq!(
        producer
            .send(ProducerRecord::new("t", "x"))
            .unwrap()
            .wait()
            .unwrap()
            .offset,
        0
    );
}

/// Batches reuse the buffers and result slots of batches already written (a pool, as Kafka's
/// producer has): a future kept from an early batch still answers for that batch, and futures
/// of later batches, sent after many batches whose futures were dropped, answer for theirs.
#[test]
fn futures_answer_for_their_own_batch_across_reused_batches() {
    let broker = broker_with("t", 2);
    broker.create_topic("u", TopicConfig::default()).unwrap();
    // Small batches, so that the rounds below open and reuse many of them.
    let producer = broker
        .producer(ProducerConfig::default().batch_size(512))
        .unwrap();
    let kept = producer
        .send(ProducerRecord::new("t", "first").partition(0))
        .unwrap();
    let mut expected = [1i64, 0];
    for round in 0..20 {
        for i in 0..200 {
            let p = i % 2;
            drop(
                producer
                    .send(ProducerRecord::new("t", vec![b'x'; 40]).partition(p))
                    .unwrap(),
            );
            expected[p as usize] += 1;
        }
        producer.flush().unwrap();
        let p = round % 2;
        let meta = producer
            .send(ProducerRecord::new("t", "marker").partition(p))
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!((meta.partition, meta.offset), (p, expected[p as usize]));
        expected[p as usize] += 1;
        // A completion last used for "t" now answers for "u": its place moves with it.
        for _ in 0..50 {
            drop(producer.send(ProducerRecord::new("u", "y")).unwrap());
        }
        producer.flush().unwrap();
        let meta = producer
            .send(ProducerRecord::new("u", "marker"))
            .unwrap()
            .wait()
            .unwrap();
        let u_offset = i64::from(round) * 51 + 50;
        assert_eq!(
            (meta.topic, meta.partition, meta.offset),
            ("u", 0, u_offset)
        );
    }
    let first = kept.wait().unwrap();
    assert_eq!((first.topic, first.partition, first.offset), ("t", 0, 0));
    let p0 = broker.topic("t").unwrap().partition(0).unwrap();
    let got = p0.read(0, 1 << 20).unwrap();
    assert_eq!(
        got.iter().next().unwrap().value.as_deref(),
        Some(&b"first"[..])
    );
    producer.close().unwrap();
}
