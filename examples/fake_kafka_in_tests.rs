//! embroker as a fake Kafka inside `#[test]`s: a temporary broker starts in well under a
//! millisecond, behaves like Kafka (same partition for the same key, same range assignment,
//! same offset rules), and disappears with its directory when dropped.
//!
//! Run the tests with `cargo test --example fake_kafka_in_tests`; `cargo run --example
//! fake_kafka_in_tests` runs the same checks as a program.

use std::time::Duration;

use embroker::{
    murmur2, to_positive, Broker, ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord,
    TopicConfig,
};

/// The code under test: publishes an order event keyed by customer.
fn publish_order(
    producer: &embroker::Producer,
    customer: &str,
    item: &str,
) -> embroker::Result<i32> {
    let meta = producer
        .send(ProducerRecord::new("orders", item.to_string()).key(customer.to_string()))?
        .wait()?;
    Ok(meta.partition)
}

fn keyed_records_land_where_kafka_puts_them() -> embroker::Result<()> {
    let broker = Broker::temporary()?;
    broker.create_topic("orders", TopicConfig::default().partitions(6))?;
    let producer = broker.producer(ProducerConfig::default())?;
    let partition = publish_order(&producer, "alice", "apples")?;
    // The Java client's DefaultPartitioner would pick the same partition.
    assert_eq!(partition, to_positive(murmur2(b"alice")) % 6);
    Ok(())
}

fn a_consumer_group_sees_what_was_published() -> embroker::Result<()> {
    let broker = Broker::temporary()?;
    broker.create_topic("orders", TopicConfig::default().partitions(2))?;
    let producer = broker.producer(ProducerConfig::default())?;
    publish_order(&producer, "bob", "pears")?;
    let mut consumer = broker.consumer(
        ConsumerConfig::default()
            .group_id("test")
            .auto_offset_reset(OffsetReset::Earliest),
    )?;
    consumer.subscribe(&["orders"])?;
    let records = consumer.poll(Duration::from_secs(5))?;
    let values: Vec<_> = records
        .iter()
        .map(|r| r.value.clone().unwrap_or_default())
        .collect();
    assert_eq!(values, ["pears"]);
    Ok(())
}

fn main() -> embroker::Result<()> {
    let start = std::time::Instant::now();
    keyed_records_land_where_kafka_puts_them()?;
    a_consumer_group_sees_what_was_published()?;
    println!("both fake-Kafka checks passed in {:?}", start.elapsed());
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn keyed_records_land_where_kafka_puts_them() {
        super::keyed_records_land_where_kafka_puts_them().unwrap();
    }

    #[test]
    fn a_consumer_group_sees_what_was_published() {
        super::a_consumer_group_sees_what_was_published().unwrap();
    }
}
