//! At-least-once processing with manual commits: a consumer processes each record, then commits
//! the offset after it (a committed offset is the *next* offset to read). A crash between
//! processing and commit replays from the last commit; nothing is skipped.
//!
//! The example simulates the crash: the first consumer processes 7 of 10 records, commits after
//! the 5th, and "dies" (is dropped without committing); a second consumer in the same group
//! resumes from the committed offset, so records 5 and 6 are processed twice, none lost.
//!
//! `cargo run --example at_least_once`

use std::collections::BTreeMap;
use std::time::Duration;

use embroker::{
    Broker, ConsumerConfig, OffsetAndMetadata, OffsetReset, ProducerConfig, ProducerRecord,
    TopicConfig, TopicPartition,
};

fn consumer(broker: &Broker) -> embroker::Result<embroker::Consumer> {
    let mut c = broker.consumer(
        ConsumerConfig::default()
            .group_id("payments-processor")
            .enable_auto_commit(false)
            .auto_offset_reset(OffsetReset::Earliest)
            .max_poll_records(1),
    )?;
    c.subscribe(&["payments"])?;
    Ok(c)
}

fn main() -> embroker::Result<()> {
    let broker = Broker::temporary()?;
    broker.create_topic("payments", TopicConfig::default())?;
    let producer = broker.producer(ProducerConfig::default())?;
    for i in 0..10 {
        producer
            .send(ProducerRecord::new("payments", format!("payment-{i}")))?
            .wait()?;
    }

    let mut processed = Vec::new();
    {
        let mut first = consumer(&broker)?;
        while processed.len() < 7 {
            for r in first.poll(Duration::from_secs(1))?.iter() {
                processed.push(r.offset);
                println!("first consumer processed offset {}", r.offset);
                if r.offset == 4 {
                    // Commit after processing: the next offset to read is 5.
                    let tp = TopicPartition::new(r.topic.to_string(), r.partition);
                    let offsets = BTreeMap::from([(tp, OffsetAndMetadata::new(r.offset + 1))]);
                    first.commit_offsets_sync(&offsets)?;
                    println!("first consumer committed offset 5");
                }
            }
        }
        println!("first consumer crashes without committing offsets 5 and 6");
        // Dropped here: it leaves the group, its uncommitted progress is lost.
    }

    let mut second = consumer(&broker)?;
    while processed.iter().filter(|&&o| o == 9).count() == 0 {
        for r in second.poll(Duration::from_secs(1))?.iter() {
            processed.push(r.offset);
            println!("second consumer processed offset {}", r.offset);
        }
        second.commit_sync()?;
    }
    second.close()?;

    let mut distinct = processed.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct,
        (0..10).collect::<Vec<i64>>(),
        "every record processed"
    );
    println!(
        "processed {} times for 10 records: every record at least once, replays only after the last commit",
        processed.len()
    );
    Ok(())
}
