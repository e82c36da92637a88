//! N threads in one consumer group share a topic's partitions (a queue: each record goes to
//! one member); then a second group reads the same topic and gets every record again
//! (broadcast).
//!
//! Run: `cargo run --example group_consumer`

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use embroker::{Broker, ConsumerConfig, OffsetReset, Record, TopicConfig};

const PARTITIONS: i32 = 4;
const RECORDS: usize = 4_000;
const MEMBERS: usize = 3;

fn run_group(broker: &Broker, group: &str, members: usize) -> embroker::Result<usize> {
    let total = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for m in 0..members {
        let broker = broker.clone();
        let group = group.to_string();
        let total = total.clone();
        threads.push(std::thread::spawn(move || -> embroker::Result<usize> {
            let config = ConsumerConfig::default()
                .group_id(group)
                .client_id(format!("member-{m}"))
                .auto_offset_reset(OffsetReset::Earliest);
            let mut consumer = broker.consumer(config)?;
            consumer.subscribe(&["jobs"])?;
            let mut mine = 0;
            let deadline = Instant::now() + Duration::from_secs(20);
            while total.load(Ordering::SeqCst) < RECORDS && Instant::now() < deadline {
                let records = consumer.poll(Duration::from_millis(50))?;
                mine += records.count();
                total.fetch_add(records.count(), Ordering::SeqCst);
            }
            // close commits the positions (auto-commit is on) and leaves the group.
            consumer.close()?;
            Ok(mine)
        }));
    }
    for (m, t) in threads.into_iter().enumerate() {
        match t.join() {
            Ok(result) => println!("  {group}: member-{m} processed {}", result?),
            Err(_) => {
                return Err(embroker::Error::IllegalState {
                    reason: "member panicked".into(),
                })
            }
        }
    }
    Ok(total.load(Ordering::SeqCst))
}

fn main() -> embroker::Result<()> {
    let broker = Broker::temporary()?;
    broker.create_topic("jobs", TopicConfig::default().partitions(PARTITIONS))?;
    let topic = broker.topic("jobs")?;
    for i in 0..RECORDS {
        topic
            .partition(i as i32 % PARTITIONS)?
            .append(&[Record::new(format!("job-{i}"))])?;
    }

    let first = run_group(&broker, "workers", MEMBERS)?;
    println!("group workers: {first} records across {MEMBERS} members");
    let second = run_group(&broker, "auditors", 1)?;
    println!("group auditors: {second} records (the same topic, read again)");
    assert!(first >= RECORDS && second >= RECORDS);
    for group in broker.list_groups()? {
        let d = broker.describe_group(&group.group_id)?;
        let lag: i64 = d.offsets.iter().filter_map(|o| o.lag).sum();
        println!(
            "{}: state {}, total lag {lag}",
            d.group_id,
            d.state.as_str()
        );
    }
    broker.close()
}
