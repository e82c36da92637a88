//! Typed records: a producer of `String` keys and `i64` values, a consumer that reads them back
//! as such (Kafka's `StringSerializer` and `LongSerializer` encodings, big-endian), and what
//! happens when a record on the topic is not an `i64`: the consumer stops at it, reports its
//! offset, and goes on once the application seeks past it.
//!
//! `cargo run --example typed_records`

use std::time::Duration;

use embroker::{
    Broker, ConsumerConfig, Error, OffsetReset, ProducerConfig, ProducerRecord, TopicConfig,
    TopicPartition, TypedProducerRecord,
};

fn main() -> embroker::Result<()> {
    let broker = Broker::temporary()?;
    broker.create_topic("balances", TopicConfig::default())?;

    // Typed: no conversion by hand. Keys are UTF-8, values 8 bytes big-endian.
    let producer = broker
        .producer(ProducerConfig::default())?
        .typed::<String, i64>();
    for (account, cents) in [("alice", 1_250i64), ("bob", -300), ("carol", 42)] {
        let meta = producer
            .send(TypedProducerRecord::new("balances", cents).key(account.to_string()))?
            .wait()?;
        println!("sent {account:>5} = {cents:>6} -> offset {}", meta.offset);
    }
    // A tombstone: the key with a null value (a null is never handed to a serializer).
    producer
        .send(TypedProducerRecord::tombstone(
            "balances",
            "bob".to_string(),
        ))?
        .wait()?;
    // Through the untyped handle, a value that is not an i64 (4 bytes), then a good one.
    let raw = ProducerRecord::new("balances", 7i32.to_be_bytes().to_vec());
    producer.producer().send(raw)?.wait()?;
    producer
        .send(TypedProducerRecord::new("balances", 99i64).key("dave".to_string()))?
        .wait()?;
    producer.close()?;

    let config = ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest);
    let mut consumer = broker.consumer(config)?.typed::<String, i64>();
    let tp = TopicPartition::new("balances", 0);
    consumer.assign(std::slice::from_ref(&tp))?;
    let mut read = 0;
    while read < 6 {
        match consumer.poll(Duration::from_secs(1)) {
            Ok(records) => {
                for r in records {
                    read += 1;
                    let account = r.key.as_deref().unwrap_or("(no key)");
                    match r.value {
                        Some(cents) => println!("read {account:>8} = {cents:>6} @ {}", r.offset),
                        None => println!("read {account:>8} deleted  @ {}", r.offset),
                    }
                }
            }
            Err(e @ Error::Deserialization { offset, .. }) => {
                println!("{e}");
                assert_eq!(consumer.position(&tp)?, offset);
                consumer.seek(&tp, offset + 1)?;
                read += 1;
            }
            Err(e) => return Err(e),
        }
    }
    consumer.close()?;
    broker.close()
}
