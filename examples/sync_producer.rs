//! The classic synchronous producer: send each record and wait for its metadata before the
//! next one (Kafka's `producer.send(record).get()`).
//!
//! Run with `cargo run --example sync_producer`.

use embroker::{Acks, Broker, ProducerConfig, ProducerRecord, TopicConfig};

fn main() -> embroker::Result<()> {
    let broker = Broker::temporary()?;
    broker.create_topic("greetings", TopicConfig::default().partitions(3))?;

    // acks=all: each send returns once the record is fsynced.
    let producer = broker.producer(ProducerConfig::default().acks(Acks::All))?;
    for i in 0..10 {
        let record =
            ProducerRecord::new("greetings", format!("hello #{i}")).key(format!("user-{}", i % 4));
        let meta = producer.send(record)?.wait()?;
        println!(
            "sent hello #{i} (key user-{}) to {}-{} at offset {}",
            i % 4,
            meta.topic,
            meta.partition,
            meta.offset
        );
    }
    producer.close()?;

    for p in 0..3 {
        let partition = broker.topic("greetings")?.partition(p)?;
        println!(
            "greetings-{p} holds {} record(s)",
            partition.log_end_offset()
        );
    }
    Ok(())
}
