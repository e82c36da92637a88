//! Bad input and exhausted limits: each gives its own error, from `send`, at once (or after
//! `max.block.ms` for a full buffer), and the producer keeps working afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use embroker::{Broker, Error, ProducerConfig, ProducerRecord, TopicConfig};

fn broker_with(topic: &str, partitions: i32) -> Broker {
    let broker = Broker::temporary().unwrap();
    broker
        .create_topic(topic, TopicConfig::default().partitions(partitions))
        .unwrap();
    broker
}

#[test]
fn unknown_topic_is_an_error() {
    let broker = broker_with("t", 1);
    let producer = broker.producer(ProducerConfig::default()).unwrap();
    let e = producer.send(ProducerRecord::new("nope", "v")).unwrap_err();
    assert!(
        matches!(&e, Error::UnknownTopic { topic } if topic == "nope"),
        "{e}"
    );
    assert!(broker.topics() == ["t"], "no topic was created");
}

#[test]
fn unknown_topic_is_created_when_the_broker_auto_creates() {
    let broker = Broker::builder()
        .auto_create_topics(true)
        .open_temporary()
        .unwrap();
    let producer = broker.producer(ProducerConfig::default()).unwrap();
    let meta = producer
        .send(ProducerRecord::new("fresh", "v"))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!((meta.topic, meta.offset), ("fresh", 0));
    assert_eq!(broker.topics(), ["fresh"]);
}

#[test]
fn a_record_over_max_request_size_is_refused_naming_topic_partition_and_limit() {
    let broker = broker_with("t", 2);
    let producer = broker
        .producer(ProducerConfig::default().max_request_size(1_000))
        .unwrap();
    let e = producer
        .send(ProducerRecord::new("t", vec![0u8; 2_000]).partition(1))
        .unwrap_err();
    match &e {
        Error::RecordTooLarge {
            topic,
            partition,
            size,
            limit,
            limit_name,
        } => {
            assert_eq!((topic.as_str(), *partition), ("t", 1));
            assert_eq!((*limit, *limit_name), (1_000, "max.request.size"));
            assert!(*size > 2_000);
        }
        other => panic!("{other}"),
    }
    let text = e.to_string();
    assert!(
        text.contains("t-1") && text.contains("max.request.size=1000"),
        "{text}"
    );
    // Nothing was written, and a record that fits goes through.
    let ok = producer
        .send(ProducerRecord::new("t", vec![0u8; 500]).partition(1))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(ok.offset, 0);
}

#[test]
fn a_record_over_the_topics_max_message_bytes_is_refused() {
    let broker = Broker::temporary().unwrap();
    broker
        .create_topic(
            "small",
            TopicConfig::default()
                .with_properties(&[("max.message.bytes", "500")])
                .unwrap(),
        )
        .unwrap();
    let producer = broker.producer(ProducerConfig::default()).unwrap();
    let e = producer
        .send(ProducerRecord::new("small", vec![0u8; 600]))
        .unwrap_err();
    assert!(
        matches!(
            &e,
            Error::RecordTooLarge { topic, partition: 0, limit: 500, limit_name: "max.message.bytes", .. }
                if topic == "small"
        ),
        "{e}"
    );
    // Small records still batch up to the limit, never past it.
    let futures: Vec<_> = (0..40)
        .map(|_| {
            producer
                .send(ProducerRecord::new("small", vec![1u8; 100]))
                .unwrap()
        })
        .collect();
    for f in futures {
        f.wait().unwrap();
    }
}

#[test]
fn a_record_over_buffer_memory_is_refused_at_once() {
    let broker = broker_with("t", 1);
    let producer = broker
        .producer(ProducerConfig::default().buffer_memory(1_000))
        .unwrap();
    let start = Instant::now();
    let e = producer
        .send(ProducerRecord::new("t", vec![0u8; 2_000]))
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::RecordTooLarge {
                limit: 1_000,
                limit_name: "buffer.memory",
                ..
            }
        ),
        "{e}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "no blocking for a hopeless record"
    );
}

/// The sender thread is held inside the first record's callback, so nothing drains and the
/// buffer fills: the next sends block for `max.block.ms`, then fail with `Timeout`. Once the
/// callback returns, the buffer drains and a blocked send goes through.
#[test]
fn a_full_buffer_blocks_for_max_block_ms_then_times_out() {
    let broker = broker_with("t", 1);
    let producer = broker
        .producer(
            ProducerConfig::default()
                .buffer_memory(10_000)
                .max_block_ms(300),
        )
        .unwrap();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    producer
        .send_with_callback(ProducerRecord::new("t", vec![0u8; 1_000]), move |r| {
            r.unwrap();
            entered_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        })
        .unwrap();
    entered_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let mut accepted = 0;
    let (e, waited) = loop {
        let start = Instant::now();
        match producer.send(ProducerRecord::new("t", vec![0u8; 1_000])) {
            Ok(_) => accepted += 1,
            Err(e) => break (e, start.elapsed()),
        }
        assert!(accepted < 20, "buffer.memory is not enforced");
    };
    assert!(
        matches!(e, Error::Timeout { timeout, .. } if timeout == Duration::from_millis(300)),
        "{e}"
    );
    assert!(
        waited >= Duration::from_millis(250),
        "gave up after {waited:?}"
    );
    assert!(
        (7..=10).contains(&accepted),
        "{accepted} records fit in 10,000 bytes"
    );

    // A send that blocks is let through when space frees within max.block.ms.
    std::thread::scope(|s| {
        let blocked = s.spawn(|| producer.send(ProducerRecord::new("t", vec![0u8; 1_000])));
        std::thread::sleep(Duration::from_millis(50));
        release_tx.send(()).unwrap();
        blocked.join().unwrap().unwrap().wait().unwrap();
    });
    producer.flush().unwrap();
    assert_eq!(
        broker
            .topic("t")
            .unwrap()
            .partition(0)
            .unwrap()
            .log_end_offset(),
        accepted + 2
    );
}

#[test]
fn a_negative_timestamp_is_an_invalid_argument() {
    let broker = broker_with("t", 1);
    let producer = broker.producer(ProducerConfig::default()).unwrap();
    let e = producer
        .send(ProducerRecord::new("t", "v").timestamp(-5))
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidArgument {
                name: "timestamp",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn a_closed_broker_refuses_sends() {
    let broker = broker_with("t", 1);
    let producer = broker.producer(ProducerConfig::default()).unwrap();
    broker.close().unwrap();
    let e = producer.send(ProducerRecord::new("t", "v")).unwrap_err();
    assert!(matches!(e, Error::Closed { what: "broker" }), "{e}");
    producer.close().unwrap();
}

#[test]
fn a_bad_config_is_refused_when_creating_the_producer() {
    let broker = broker_with("t", 1);
    // Idempotence asked for explicitly with acks=1: Kafka's ConfigException, naming both keys.
    let e = broker
        .producer(ProducerConfig::default().enable_idempotence(true))
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidConfig { key, reason, .. }
            if key == "enable.idempotence" && reason.contains("acks")),
        "{e}"
    );
    let e = broker
        .producer(ProducerConfig::default().linger_ms(-1))
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidConfig { key, .. } if key == "linger.ms"),
        "{e}"
    );
}
