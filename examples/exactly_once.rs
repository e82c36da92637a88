//! Exactly-once consume-transform-produce: a worker reads `orders`, writes one invoice per order
//! to `invoices`, and commits its input offsets *inside* the same transaction
//! (`send_offsets_to_transaction`), so an order's invoice and the offset past the order are
//! committed together or not at all.
//!
//! The example simulates a crash: the first worker invoices 4 orders and dies before it
//! commits. The second worker (same `transactional.id`, same group) calls
//! `init_transactions`, which aborts the first worker's transaction and fences it; it resumes
//! from the committed offsets (none yet) and invoices all 10 orders. A `read_committed` reader
//! of `invoices` then sees each order invoiced exactly once; the aborted invoices stay in the log
//! (a `read_uncommitted` reader sees them) but are never visible as committed.
//!
//! `cargo run --example exactly_once`

use std::collections::BTreeMap;
use std::time::Duration;

use embroker::{
    Acks, Broker, Consumer, ConsumerConfig, IsolationLevel, OffsetAndMetadata, OffsetReset,
    Producer, ProducerConfig, ProducerRecord, TopicConfig, TopicPartition,
};

const ORDERS: usize = 10;

fn worker(broker: &Broker, max_poll_records: u32) -> embroker::Result<(Consumer, Producer)> {
    let mut consumer = broker.consumer(
        ConsumerConfig::default()
            .group_id("invoicer")
            .enable_auto_commit(false)
            .auto_offset_reset(OffsetReset::Earliest)
            .max_poll_records(max_poll_records),
    )?;
    consumer.subscribe(&["orders"])?;
    // A transactional producer needs acks=all (idempotence), as in Kafka.
    let producer = broker.producer(
        ProducerConfig::default()
            .acks(Acks::All)
            .transactional_id("invoicer-1"),
    )?;
    // Fences any older producer with this id and aborts its open transaction.
    producer.init_transactions()?;
    Ok((consumer, producer))
}

/// One poll, transformed and committed in one transaction; returns the orders processed.
fn process_once(
    consumer: &mut Consumer,
    producer: &Producer,
    commit: bool,
) -> embroker::Result<usize> {
    let records = consumer.poll(Duration::from_millis(500))?;
    if records.is_empty() {
        return Ok(0);
    }
    producer.begin_transaction()?;
    let mut next: BTreeMap<TopicPartition, OffsetAndMetadata> = BTreeMap::new();
    for r in records.iter() {
        let order = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).to_string();
        let invoice = ProducerRecord::new("invoices", format!("invoice for {order}"));
        drop(producer.send(invoice)?);
        next.insert(
            TopicPartition::new(r.topic, r.partition),
            OffsetAndMetadata::new(r.offset + 1),
        );
    }
    producer.send_offsets_to_transaction(&next, &consumer.group_metadata()?)?;
    if commit {
        producer.commit_transaction()?;
    }
    Ok(records.count())
}

fn main() -> embroker::Result<()> {
    let broker = Broker::temporary()?;
    broker.create_topic("orders", TopicConfig::default().partitions(2))?;
    broker.create_topic("invoices", TopicConfig::default())?;
    let input = broker.producer(ProducerConfig::default())?;
    for i in 0..ORDERS {
        let order = ProducerRecord::new("orders", format!("order-{i}")).key(format!("{i}"));
        drop(input.send(order)?);
    }
    input.flush()?;

    {
        let (mut consumer, producer) = worker(&broker, 4)?;
        let mut done = 0;
        while done == 0 {
            done = process_once(&mut consumer, &producer, false)?;
        }
        producer.flush()?;
        println!("first worker wrote {done} invoices and crashed before committing");
        // Dropped without commit: the transaction stays open until the next worker's
        // init_transactions (or transaction.timeout.ms) aborts it.
    }

    let (mut consumer, producer) = worker(&broker, 500)?;
    let mut done = 0;
    while done < ORDERS {
        done += process_once(&mut consumer, &producer, true)?;
    }
    println!("second worker invoiced {done} orders, committing each batch with its offsets");
    consumer.close()?;
    producer.close()?;

    let committed: i64 = (0..2)
        .map(|p| {
            let c = broker.consumer(ConsumerConfig::default().group_id("invoicer"))?;
            Ok(c.committed(&TopicPartition::new("orders", p))?
                .map_or(0, |o| o.offset))
        })
        .sum::<embroker::Result<i64>>()?;
    assert_eq!(
        committed, ORDERS as i64,
        "every order's offset committed once"
    );
    let description = broker.describe_transaction("invoicer-1")?;
    println!("transaction state: {description:?}");

    let read = |isolation: IsolationLevel| -> embroker::Result<Vec<String>> {
        let mut c = broker.consumer(
            ConsumerConfig::default()
                .auto_offset_reset(OffsetReset::Earliest)
                .isolation_level(isolation),
        )?;
        c.assign(&[TopicPartition::new("invoices", 0)])?;
        let mut out = Vec::new();
        for _ in 0..5 {
            for r in c.poll(Duration::from_millis(100))?.iter() {
                out.push(
                    String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).to_string(),
                );
            }
        }
        Ok(out)
    };
    let everything = read(IsolationLevel::ReadUncommitted)?;
    println!(
        "read_uncommitted sees {} invoices (the aborted ones too)",
        everything.len()
    );
    let mut invoices = read(IsolationLevel::ReadCommitted)?;
    invoices.sort();
    let mut distinct = invoices.clone();
    distinct.dedup();
    assert_eq!(invoices.len(), ORDERS, "one invoice per order");
    assert_eq!(distinct.len(), ORDERS, "no order invoiced twice");
    println!("read_committed sees {ORDERS} invoices: each order exactly once");
    Ok(())
}
