//! Quickstart: open a broker in a temporary directory, create a topic with several partitions,
//! append records (keyed records land where Kafka's Java client would put them), read them
//! back, consume them as a group, and show what is on disk.
//!
//! `cargo run --release --example quickstart`

use std::time::Duration;

use embroker::{murmur2, to_positive, Broker, ConsumerConfig, OffsetReset, Record, TopicConfig};

fn main() -> embroker::Result<()> {
    let broker = Broker::temporary()?;
    println!("opened a broker in {}", broker.path().display());

    let partitions = 3;
    broker.create_topic("orders", TopicConfig::default().partitions(partitions))?;
    println!("created topic 'orders' with {partitions} partitions");

    // Place each keyed record as Kafka's default partitioner does, and append it.
    let orders = [
        ("alice", "2 apples"),
        ("bob", "1 pear"),
        ("carol", "5 plums"),
        ("alice", "1 melon"),
    ];
    for (customer, order) in orders {
        let partition = to_positive(murmur2(customer.as_bytes())) % partitions;
        let p = broker.topic("orders")?.partition(partition)?;
        let offset = p.append(&[Record::new(order).key(customer)])?;
        println!("appended {customer:>5}: {order:<8} -> partition {partition}, offset {offset}");
    }

    // Read each partition directly.
    for partition in 0..partitions {
        let p = broker.topic("orders")?.partition(partition)?;
        let records = p.read(p.log_start_offset(), 1 << 20)?;
        for r in records.views() {
            println!(
                "read partition {partition} offset {}: {} = {}",
                r.offset,
                String::from_utf8_lossy(r.key.unwrap_or_default()),
                String::from_utf8_lossy(r.value.unwrap_or_default()),
            );
        }
    }

    // Consume the topic as a consumer group, and commit what was processed.
    let mut consumer = broker.consumer(
        ConsumerConfig::default()
            .group_id("billing")
            .auto_offset_reset(OffsetReset::Earliest),
    )?;
    consumer.subscribe(&["orders"])?;
    let mut seen = 0;
    while seen < orders.len() {
        let records = consumer.poll(Duration::from_secs(1))?;
        seen += records.count();
        for r in records.iter() {
            println!(
                "group 'billing' got {}-{}@{}",
                r.topic, r.partition, r.offset
            );
        }
    }
    consumer.commit_sync()?;
    consumer.close()?;

    let description = broker.describe_topic("orders")?;
    for p in &description.partitions {
        println!(
            "partition {}: offsets {}..{}, {} bytes in {} segment(s)",
            p.partition, p.log_start_offset, p.log_end_offset, p.size_bytes, p.segment_count
        );
    }
    broker.close()?;
    println!("closed; the temporary directory is removed when the broker is dropped");
    Ok(())
}
