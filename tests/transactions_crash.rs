//! Exactly-once across SIGKILLs: a consume-transform-produce worker (read `orders`, write one
//! invoice per order to `invoices`, commit the input offsets inside the same transaction) is
//! killed at random moments, over and over, on one data directory; each new worker reopens the
//! directory (the coordinator completes a durable commit decision and aborts any other open
//! transaction) and its `init_transactions` fences what is left of the dead one. A last worker
//! runs to the end. Then the invoices under COMMIT markers are exactly one per order, every
//! transaction in `invoices` ended with a marker, and the committed input offsets are at the
//! end of `orders`.
//!
//! Visibility is checked from the batches and markers themselves (the records of a producer
//! between its data batches and its COMMIT marker), which is what `read_committed` shows.
//!
//! CI: 30 kills. `EMBROKER_LONG=1`: 300 kills, more orders.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use embroker::codec::{ControlRecordType, EndTransactionMarker};
use embroker::{
    Acks, Broker, ConsumerConfig, OffsetAndMetadata, OffsetReset, ProducerConfig, ProducerRecord,
    TopicConfig, TopicPartition,
};

const DIR_VAR: &str = "EMBROKER_TXN_KILL_DIR";
const CHILD_TEST: &str = "child_transforms_until_killed";
const ORDER_PARTITIONS: i32 = 2;

fn orders() -> usize {
    if std::env::var_os("EMBROKER_LONG").is_some() {
        5_000
    } else {
        400
    }
}

/// One worker: processes polls in transactions until the committed offsets reach `total`
/// orders (or forever, when killed first). Prints `READY` once it has initialized.
fn work(dir: &std::path::Path, max_poll: u32, total: usize) {
    let broker = Broker::open(dir).unwrap();
    let mut consumer = broker
        .consumer(
            ConsumerConfig::default()
                .group_id("invoicer")
                .enable_auto_commit(false)
                .auto_offset_reset(OffsetReset::Earliest)
                .max_poll_records(max_poll),
        )
        .unwrap();
    consumer.subscribe(&["orders"]).unwrap();
    let producer = broker
        .producer(
            ProducerConfig::default()
                .acks(Acks::All)
                .transactional_id("invoicer-1"),
        )
        .unwrap();
    producer.init_transactions().unwrap();
    println!("READY");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done: i64 = (0..ORDER_PARTITIONS)
            .map(|p| {
                consumer
                    .committed(&TopicPartition::new("orders", p))
                    .unwrap()
                    .map_or(0, |o| o.offset)
            })
            .sum();
        if done as usize >= total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "worker stuck at {done} of {total}"
        );
        let records = consumer.poll(Duration::from_millis(100)).unwrap();
        if records.is_empty() {
            continue;
        }
        producer.begin_transaction().unwrap();
        let mut next = BTreeMap::new();
        for r in records.iter() {
            let order = String::from_utf8(r.value.as_deref().unwrap().to_vec()).unwrap();
            drop(
                producer
                    .send(ProducerRecord::new(
                        "invoices",
                        format!("invoice for {order}"),
                    ))
                    .unwrap(),
            );
            next.insert(
                TopicPartition::new(r.topic, r.partition),
                OffsetAndMetadata::new(r.offset + 1),
            );
        }
        producer
            .send_offsets_to_transaction(&next, &consumer.group_metadata().unwrap())
            .unwrap();
        producer.commit_transaction().unwrap();
    }
    consumer.close().unwrap();
    producer.close().unwrap();
    broker.close().unwrap();
}

/// The child side: does nothing unless started by the parent test with the directory set.
#[test]
fn child_transforms_until_killed() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let max_poll = std::env::var("EMBROKER_TXN_KILL_POLL")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    work(std::path::Path::new(&dir), max_poll, usize::MAX);
}

#[test]
fn killed_workers_leave_every_order_invoiced_exactly_once() {
    let seed = common::seed();
    let hint = common::replay_hint(seed);
    let mut rng = common::XorShift(seed);
    let long = std::env::var_os("EMBROKER_LONG").is_some();
    let kills = if long { 300 } else { 30 };
    let total = orders();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        let broker = Broker::open(dir).unwrap();
        broker
            .create_topic(
                "orders",
                TopicConfig::default().partitions(ORDER_PARTITIONS),
            )
            .unwrap();
        broker
            .create_topic("invoices", TopicConfig::default())
            .unwrap();
        let p = broker.producer(ProducerConfig::default()).unwrap();
        for i in 0..total {
            drop(
                p.send(ProducerRecord::new("orders", format!("order-{i}")).key(format!("{i}")))
                    .unwrap(),
            );
        }
        p.close().unwrap();
        broker.close().unwrap();
    }
    let started = Instant::now();
    for kill in 0..kills {
        let poll = 1 + rng.below(20);
        let (mut child, _lines) =
            common::spawn_ready_child(CHILD_TEST, dir, &format!("kill {kill}; {hint}"), |c| {
                c.env(DIR_VAR, dir)
                    .env("EMBROKER_TXN_KILL_POLL", poll.to_string());
            });
        std::thread::sleep(Duration::from_micros(rng.below(120_000)));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    // A last worker in this process runs to the end.
    work(dir, 50, total);

    let broker = Broker::open(dir).unwrap();
    let p = broker.topic("invoices").unwrap().partition(0).unwrap();
    let records = p.read(0, 256 << 20).unwrap();
    let mut open: BTreeMap<(i64, i16), Vec<String>> = BTreeMap::new();
    let mut committed: Vec<String> = Vec::new();
    let (mut commits, mut aborts) = (0, 0);
    for b in records.batches() {
        let h = b.header;
        assert!(h.is_transactional(), "{hint}");
        if h.is_control() {
            let r = b.records().next().unwrap();
            let marker = EndTransactionMarker::parse(r.key.unwrap(), r.value).unwrap();
            // A marker ends every open transaction of its producer id at or below its epoch.
            let ended: Vec<_> = open
                .keys()
                .filter(|(pid, epoch)| *pid == h.producer_id && *epoch <= h.producer_epoch)
                .copied()
                .collect();
            for key in ended {
                let values = open.remove(&key).unwrap_or_default();
                if marker.kind == ControlRecordType::Commit {
                    committed.extend(values);
                }
            }
            match marker.kind {
                ControlRecordType::Commit => commits += 1,
                _ => aborts += 1,
            }
        } else {
            let values = open.entry((h.producer_id, h.producer_epoch)).or_default();
            for r in b.records() {
                values.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
            }
        }
    }
    assert!(
        open.is_empty(),
        "transactions without a marker: {open:?}; {hint}"
    );
    let distinct: BTreeSet<&String> = committed.iter().collect();
    let expected: BTreeSet<String> = (0..total)
        .map(|i| format!("invoice for order-{i}"))
        .collect();
    assert_eq!(committed.len(), total, "committed invoices; {hint}");
    assert_eq!(distinct.len(), total, "an order invoiced twice; {hint}");
    assert!(
        distinct.iter().all(|v| expected.contains(*v)),
        "unexpected invoice; {hint}"
    );
    let c = broker
        .consumer(ConsumerConfig::default().group_id("invoicer"))
        .unwrap();
    let done: i64 = (0..ORDER_PARTITIONS)
        .map(|p| {
            c.committed(&TopicPartition::new("orders", p))
                .unwrap()
                .map_or(0, |o| o.offset)
        })
        .sum();
    assert_eq!(done as usize, total, "{hint}");
    eprintln!(
        "transactions crash: {kills} kills, {total} orders, {commits} COMMIT and {aborts} ABORT \
         markers, {} invoices written ({} aborted), {:.1} s; {hint}",
        committed.len() + (p.log_end_offset() as usize - committed.len() - commits - aborts),
        p.log_end_offset() as usize - committed.len() - commits - aborts,
        started.elapsed().as_secs_f64()
    );
}
