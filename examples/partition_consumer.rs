//! One thread per partition, each assigned its partition explicitly, seeking to a chosen
//! offset and tracking its own offsets (no group membership, no commits): the "partition
//! consumer" pattern.
//!
//! Run: `cargo run --example partition_consumer`

use std::time::Duration;

use embroker::{Broker, ConsumerConfig, Record, TopicConfig, TopicPartition};

const PARTITIONS: i32 = 3;
const PER_PARTITION: i64 = 1_000;
const START_AT: i64 = 250;

fn main() -> embroker::Result<()> {
    let broker = Broker::temporary()?;
    broker.create_topic("events", TopicConfig::default().partitions(PARTITIONS))?;
    let topic = broker.topic("events")?;
    for p in 0..PARTITIONS {
        let partition = topic.partition(p)?;
        let batch: Vec<Record> = (0..PER_PARTITION)
            .map(|i| Record::new(format!("p{p}-{i}")).key(format!("k{i}")))
            .collect();
        partition.append(&batch)?;
    }

    let mut workers = Vec::new();
    for p in 0..PARTITIONS {
        let broker = broker.clone();
        workers.push(std::thread::spawn(
            move || -> embroker::Result<(i32, i64, i64)> {
                let tp = TopicPartition::new("events", p);
                let mut consumer =
                    broker.consumer(ConsumerConfig::default().client_id(format!("worker-{p}")))?;
                consumer.assign(std::slice::from_ref(&tp))?;
                consumer.seek(&tp, START_AT)?;
                // The application tracks its own offsets: the next one it expects.
                let mut next = START_AT;
                let end = consumer.end_offsets(std::slice::from_ref(&tp))?[&tp];
                while next < end {
                    for record in consumer.poll(Duration::from_millis(100))? {
                        assert_eq!(record.offset, next, "records arrive in offset order");
                        next = record.offset + 1;
                    }
                }
                Ok((p, next, next - START_AT))
            },
        ));
    }
    for worker in workers {
        let (p, next, read) = match worker.join() {
            Ok(result) => result?,
            Err(_) => {
                return Err(embroker::Error::IllegalState {
                    reason: "worker panicked".into(),
                })
            }
        };
        println!("partition {p}: read {read} records, next offset {next}");
        assert_eq!(next, PER_PARTITION);
    }
    broker.close()
}
