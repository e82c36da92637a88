//! Typed-records benchmark (issue #19): a `TypedProducer<Bytes, String>` sending `String`
//! values next to the untyped `Producer` sending the same `String`s, in the same run, their
//! passes taken in turn. Both rows start from the application's `String`s and build the record
//! inside the timed loop (the untyped row converts with `ProducerRecord::new`'s `Into<Bytes>`,
//! the typed one through `Builtin`'s `String` serializer), then flush. Target: the typed row at
//! 0.95x or better of the untyped.
//!
//! `cargo bench --bench typed`; `EMBROKER_BENCH_SCALE=0.1` for a quick run.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[allow(clippy::too_many_arguments)]
#[path = "support/mod.rs"]
mod support;

use embroker::{Broker, Bytes, Producer, ProducerConfig, ProducerRecord, TopicConfig};
use embroker::{TypedProducer, TypedProducerRecord};
use support::{scaled, Contender, Report};

const VALUE_BYTES: usize = 100;
const UNTYPED: &str = "untyped Producer::send(ProducerRecord::new(topic, String))";

/// A fresh broker with one single-partition topic, a default producer, and `n` distinct
/// 100-byte `String`s (each its own allocation, as an application's would be).
fn setup(n: u64) -> (Broker, Producer, Vec<String>) {
    let broker = Broker::temporary().expect("broker");
    broker
        .create_topic("bench", TopicConfig::default().partitions(1))
        .expect("topic");
    let producer = broker
        .producer(ProducerConfig::default())
        .expect("producer");
    let values = (0..n)
        .map(|i| format!("{i:0width$}", width = VALUE_BYTES))
        .collect();
    (broker, producer, values)
}

fn check(broker: &Broker, n: u64) {
    let p = broker.topic("bench").unwrap().partition(0).unwrap();
    assert_eq!(p.log_end_offset() as u64, n);
}

fn main() {
    let mut report = Report::default();
    let n = scaled(1_000_000);
    let bytes = n * VALUE_BYTES as u64;
    let rows = vec![
        Contender::new(
            "acks=1",
            UNTYPED,
            None,
            n,
            bytes,
            || setup(n),
            |(broker, producer, values)| {
                for v in values {
                    drop(
                        producer
                            .send(ProducerRecord::new("bench", v))
                            .expect("send"),
                    );
                }
                producer.flush().expect("flush");
                check(&broker, n);
                (broker, producer)
            },
        ),
        Contender::new(
            "acks=1",
            "typed TypedProducer<Bytes, String>::send(TypedProducerRecord::new(topic, String))",
            Some(UNTYPED),
            n,
            bytes,
            || {
                let (broker, producer, values) = setup(n);
                let typed: TypedProducer<Bytes, String> = producer.typed();
                (broker, typed, values)
            },
            |(broker, producer, values)| {
                for v in values {
                    drop(
                        producer
                            .send(TypedProducerRecord::new("bench", v))
                            .expect("send"),
                    );
                }
                producer.flush().expect("flush");
                check(&broker, n);
                (broker, producer)
            },
        ),
    ];
    report.measure_interleaved(rows);
    report.print("Typed producer");
}
