//! A partitioner of your own, the classic Kafka example: keys look like `sensor.<n>` and
//! sensor `n` goes to partition `n % partitions`; records without a usable key go to
//! partition 0.
//!
//! Run with `cargo run --example custom_partitioner`.

use std::sync::Arc;

use embroker::{
    Broker, Partitioner, PartitionerChoice, ProducerConfig, ProducerRecord, TopicConfig,
};

#[derive(Debug)]
struct SensorPartitioner;

impl Partitioner for SensorPartitioner {
    fn partition(
        &self,
        _topic: &str,
        key: Option<&[u8]>,
        _value: Option<&[u8]>,
        partition_count: i32,
    ) -> embroker::Result<i32> {
        let sensor = key
            .and_then(|k| std::str::from_utf8(k).ok())
            .and_then(|k| k.strip_prefix("sensor."))
            .and_then(|n| n.parse::<i64>().ok());
        Ok(match sensor {
            Some(n) => i32::try_from(n.rem_euclid(i64::from(partition_count))).unwrap_or(0),
            None => 0,
        })
    }
}

fn main() -> embroker::Result<()> {
    let broker = Broker::temporary()?;
    broker.create_topic("readings", TopicConfig::default().partitions(4))?;
    let config = ProducerConfig::default()
        .partitioner(PartitionerChoice::Custom(Arc::new(SensorPartitioner)));
    let producer = broker.producer(config)?;

    for (key, value) in [
        ("sensor.1", "21.5C"),
        ("sensor.2", "19.0C"),
        ("sensor.6", "22.1C"),
        ("sensor.1", "21.7C"),
        ("thermostat", "on"),
    ] {
        let meta = producer
            .send(ProducerRecord::new("readings", value).key(key))?
            .wait()?;
        println!(
            "{key} = {value} -> partition {} offset {}",
            meta.partition, meta.offset
        );
    }
    producer.close()?;

    for p in 0..4 {
        let partition = broker.topic("readings")?.partition(p)?;
        let records = partition.read(0, 1 << 20)?;
        let keys: Vec<String> = records
            .iter()
            .map(|r| String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned())
            .collect();
        println!("readings-{p}: {keys:?}");
    }
    Ok(())
}
