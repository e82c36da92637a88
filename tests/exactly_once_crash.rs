//! Kill a consume-transform-produce pipeline at random moments and restart it: every input
//! record ends up in the output exactly once.
//!
//! Scenario: a child process (this test binary re-run on one test) is the seeds' pipeline: a
//! group member of `billing` reads `orders`, and for each poll a transactional producer
//! (`transactional.id=billing`) begins a transaction, sends the consumer's positions with
//! `send_offsets_to_transaction`, writes one invoice per order to `invoices` (key and value:
//! the order's partition and offset), and commits (offsets first: the invoices are then in
//! flight at the commit, whose decision's fsync overlaps theirs). The parent kills it (SIGKILL)
//! after a random delay, so kills land in `init_transactions`, in polls, between sends, inside
//! `commit_transaction`; then reopens the data directory and checks, before starting the next
//! child on the same directory:
//!
//! - a `read_committed` reader of `invoices` sees no invoice twice;
//! - the invoices it sees are exactly the orders below the group's committed offsets (the
//!   output and the input offsets were committed together or not at all);
//! - reopening left no transaction open: the last stable offset of every `invoices`
//!   partition is its log end.
//!
//! A second test kills the child between the commit decision (`PrepareCommit` durable in
//! `__transaction_state`) and its markers, through the coordinator's test hook
//! (`embroker::__testing`): reopening completes the transaction, its invoices become visible
//! and its offsets committed. A third kills it there too and then cuts the last byte off the
//! `invoices` data, as a power loss does to data whose fsync was still running alongside the
//! decision's (a SIGKILL alone loses nothing the process wrote): reopening aborts the
//! transaction (the decision records where its data ends, and the log ends before that), and
//! the restarted pipeline then invoices every order exactly once.
//!
//! Before each run the parent appends 0 to 40 new orders per partition, so most runs have work
//! when they are killed. CI: 30 kills. `EMBROKER_LONG=1`: 1,000 kills.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{seed, XorShift};

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use embroker::{
    Acks, Broker, ConsumerConfig, Error, IsolationLevel, OffsetAndMetadata, OffsetReset,
    ProducerConfig, ProducerRecord, Record, TopicConfig, TopicPartition,
};

const DIR_ENV: &str = "EMBROKER_EOS_CHILD_DIR";
const HOOK_ENV: &str = "EMBROKER_EOS_CHILD_DIE_AFTER_DECISION";
/// The value of [`HOOK_ENV`] that kills the child at a decision written with data in flight.
const BEFORE_DATA: &str = "before-data";
const GROUP: &str = "billing";
const TXN_ID: &str = "billing";
const PARTITIONS: i32 = 2;
const INITIAL_ORDERS: usize = 200;
const CI_KILLS: usize = 30;
const LONG_KILLS: usize = 1_000;

fn consumer_config() -> ConsumerConfig {
    ConsumerConfig::default()
        .group_id(GROUP)
        .auto_offset_reset(OffsetReset::Earliest)
        .enable_auto_commit(false)
        .isolation_level(IsolationLevel::ReadCommitted)
        .max_poll_records(25)
}

fn producer_config() -> ProducerConfig {
    ProducerConfig::default()
        .acks(Acks::All)
        .transactional_id(TXN_ID)
}

/// Runs the pipeline until it has been idle for `idle` (or forever, until killed).
fn run_pipeline(broker: &Broker, idle: Duration, ready: bool) -> usize {
    let mut consumer = broker.consumer(consumer_config()).unwrap();
    consumer.subscribe(&["orders"]).unwrap();
    let producer = broker.producer(producer_config()).unwrap();
    producer.init_transactions().unwrap();
    if ready {
        println!("READY");
    }
    let mut processed = 0;
    let mut last_work = Instant::now();
    while last_work.elapsed() < idle {
        let records = consumer.poll(Duration::from_millis(20)).unwrap();
        if records.is_empty() {
            continue;
        }
        last_work = Instant::now();
        producer.begin_transaction().unwrap();
        let mut offsets: BTreeMap<TopicPartition, OffsetAndMetadata> = BTreeMap::new();
        for r in records.iter() {
            offsets.insert(
                TopicPartition::new("orders", r.partition),
                OffsetAndMetadata::new(r.offset + 1),
            );
        }
        let metadata = consumer.group_metadata().unwrap();
        // Kafka allows them in any order; offsets first leaves the invoices in flight at the
        // commit, whose decision's fsync then runs alongside theirs.
        producer
            .send_offsets_to_transaction(&offsets, &metadata)
            .unwrap();
        for r in records.iter() {
            let id = format!("{}:{}", r.partition, r.offset);
            // The invoice goes to the order's partition, so output order follows input order.
            let invoice = ProducerRecord::new("invoices", id.clone())
                .key(id)
                .partition(r.partition);
            drop(producer.send(invoice).unwrap());
        }
        producer.commit_transaction().unwrap();
        processed += records.count();
    }
    producer.close().unwrap();
    consumer.close().unwrap();
    processed
}

/// The child's body; does nothing unless started by a parent test with its env vars.
#[test]
fn eos_child_pipeline() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    let hook = std::env::var(HOOK_ENV).ok();
    if hook.as_deref() == Some(BEFORE_DATA) {
        // Die the moment a commit decision written with its invoices still in flight is
        // durable, before the coordinator waits for their fsync.
        embroker::__testing::on_commit_decision_before_data(Box::new(|| std::process::abort()));
    } else if hook.is_some() {
        // Die the moment the first commit decision is durable, before any marker.
        embroker::__testing::on_commit_decision(Box::new(|| std::process::abort()));
    }
    let broker = Broker::open(&dir).unwrap();
    run_pipeline(&broker, Duration::from_secs(60), true);
}

fn append_orders(broker: &Broker, per_partition: usize, next: &mut usize) {
    let topic = broker.topic("orders").unwrap();
    for p in 0..PARTITIONS {
        let records: Vec<Record> = (0..per_partition)
            .map(|i| Record::new(format!("order-{}", *next + i)))
            .collect();
        if !records.is_empty() {
            topic.partition(p).unwrap().append(&records).unwrap();
        }
        *next += per_partition;
    }
}

/// The group's committed offset per `orders` partition (0 without one).
fn committed(broker: &Broker) -> BTreeMap<i32, i64> {
    let mut out: BTreeMap<i32, i64> = (0..PARTITIONS).map(|p| (p, 0)).collect();
    match broker.describe_group(GROUP) {
        Ok(d) => {
            for p in &d.offsets {
                if let Some(om) = &p.committed {
                    out.insert(p.topic_partition.partition, om.offset);
                }
            }
        }
        Err(Error::UnknownGroup { .. }) => {}
        Err(e) => panic!("describe_group: {e}"),
    }
    out
}

/// Every invoice a read_committed reader sees, as (partition, order offset), in read order.
fn committed_invoices(broker: &Broker) -> Vec<(i32, i64)> {
    let mut c = broker
        .consumer(
            ConsumerConfig::default()
                .auto_offset_reset(OffsetReset::Earliest)
                .isolation_level(IsolationLevel::ReadCommitted)
                .max_poll_records(10_000),
        )
        .unwrap();
    let tps: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new("invoices", p))
        .collect();
    c.assign(&tps).unwrap();
    let ends = c.end_offsets(&tps).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let done = tps.iter().all(|tp| c.position(tp).unwrap() >= ends[tp]);
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "reading invoices took too long");
        for r in c.poll(Duration::from_millis(10)).unwrap().iter() {
            let id = String::from_utf8(r.value.as_deref().unwrap().to_vec()).unwrap();
            let (p, o) = id.split_once(':').unwrap();
            let (p, o): (i32, i64) = (p.parse().unwrap(), o.parse().unwrap());
            assert_eq!(p, r.partition, "invoice {id} in partition {}", r.partition);
            out.push((p, o));
        }
    }
    out
}

/// Checks the exactly-once invariants of a reopened directory; returns the committed offsets.
fn check(run: usize, broker: &Broker) -> BTreeMap<i32, i64> {
    let committed = committed(broker);
    let invoices = committed_invoices(broker);
    let mut seen = BTreeSet::new();
    for (p, o) in &invoices {
        assert!(
            seen.insert((*p, *o)),
            "run {run}: order {p}:{o} invoiced twice (read_committed)"
        );
    }
    for p in 0..PARTITIONS {
        let end = committed[&p];
        let got: Vec<i64> = invoices
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, o)| *o)
            .collect();
        let want: Vec<i64> = (0..end).collect();
        assert_eq!(
            got, want,
            "run {run}: partition {p}: the committed invoices are not exactly the orders below \
             the committed offset {end}"
        );
        let d = broker.describe_topic("invoices").unwrap();
        let part = &d.partitions[p as usize];
        assert_eq!(
            part.last_stable_offset, part.log_end_offset,
            "run {run}: invoices-{p} has a transaction left open after reopen: {part:?}"
        );
    }
    committed
}

fn setup(data: &Path) -> usize {
    let broker = Broker::open(data).unwrap();
    broker
        .create_topic("orders", TopicConfig::default().partitions(PARTITIONS))
        .unwrap();
    broker
        .create_topic("invoices", TopicConfig::default().partitions(PARTITIONS))
        .unwrap();
    let mut next = 0;
    append_orders(&broker, INITIAL_ORDERS / PARTITIONS as usize, &mut next);
    broker.close().unwrap();
    next
}

#[test]
fn killed_pipeline_restarts_exactly_once() {
    let seed = seed();
    eprintln!("seed {seed}");
    common::with_seed(seed, || kill_and_restart(seed));
}

fn kill_and_restart(seed: u64) {
    let long = std::env::var("EMBROKER_LONG").is_ok_and(|v| v == "1");
    let kills = if long { LONG_KILLS } else { CI_KILLS };
    let mut rng = XorShift(seed);
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut next_order = setup(&data);
    let mut committed_before = BTreeMap::new();
    let mut progressed = 0;
    for run in 0..kills {
        let (mut child, _lines) =
            common::spawn_ready_child("eos_child_pipeline", dir.path(), "eos child", |c| {
                c.env(DIR_ENV, &data);
            });
        std::thread::sleep(Duration::from_micros(rng.next() % 20_000));
        child.kill().unwrap();
        child.wait().unwrap();

        let broker = Broker::open(&data).unwrap();
        let committed_after = check(run, &broker);
        for p in 0..PARTITIONS {
            let before = committed_before.get(&p).copied().unwrap_or(0);
            assert!(
                committed_after[&p] >= before,
                "run {run}: partition {p}'s committed offset went back from {before} to {}",
                committed_after[&p]
            );
        }
        if committed_after != committed_before {
            progressed += 1;
        }
        append_orders(&broker, (rng.next() % 41) as usize, &mut next_order);
        broker.close().unwrap();
        committed_before = committed_after;
        if long && run % 100 == 99 {
            eprintln!("run {run}: committed {committed_before:?}");
        }
    }

    // The final run, in process: the pipeline finishes the rest.
    let broker = Broker::open(&data).unwrap();
    run_pipeline(&broker, Duration::from_millis(500), false);
    let committed = check(kills, &broker);
    let topic = broker.topic("orders").unwrap();
    let mut total = 0;
    for p in 0..PARTITIONS {
        let end = topic.partition(p).unwrap().log_end_offset();
        assert_eq!(committed[&p], end, "partition {p}: every order processed");
        total += end;
    }
    broker.close().unwrap();
    eprintln!(
        "exactly-once kill test: {kills} kills ({progressed} runs committed something), {total} \
         orders, each invoiced exactly once, offsets committed with them, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn kill_after_the_commit_decision_completes_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    setup(&data);
    let (mut child, _lines) =
        common::spawn_ready_child("eos_child_pipeline", dir.path(), "eos child", |c| {
            c.env(DIR_ENV, &data).env(HOOK_ENV, "1");
        });
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child died at its commit decision");
    {
        // Nothing was committed yet as far as the log is concerned: reading the raw files
        // shows invoices without markers. Reopening completes the transaction.
        let broker = Broker::open(&data).unwrap();
        let committed = check(0, &broker);
        assert!(
            committed.values().any(|&o| o > 0),
            "the decided transaction was completed: offsets {committed:?}"
        );
        let description = broker.describe_transaction(TXN_ID).unwrap();
        eprintln!("after reopen: {description:?}");
        broker.close().unwrap();
    }
}

#[test]
fn kill_after_the_commit_decision_with_its_data_cut_short_aborts_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut next = setup(&data);
    let (mut child, _lines) =
        common::spawn_ready_child("eos_child_pipeline", dir.path(), "eos child", |c| {
            c.env(DIR_ENV, &data).env(HOOK_ENV, BEFORE_DATA);
        });
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child died at its commit decision");
    // The dying transaction's invoices are the last batches of the `invoices` partitions it
    // wrote to (earlier transactions end with their markers); tear the last byte of each
    // such partition, as a power loss leaves a write whose fsync had not returned.
    let mut torn = 0;
    for p in 0..PARTITIONS {
        let path = data
            .join(format!("invoices-{p}"))
            .join(format!("{:020}.log", 0));
        let bytes = std::fs::read(&path).unwrap();
        let Some(last) = last_batch_start(&bytes) else {
            continue;
        };
        // Attributes at byte 21 of the batch (big-endian i16): bit 5 is a control batch.
        let control = bytes[last + 22] & 0x20 != 0;
        if !control {
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.set_len(bytes.len() as u64 - 1).unwrap();
            torn += 1;
        }
    }
    assert!(torn > 0, "the dying transaction wrote invoices");
    {
        let broker = Broker::open(&data).unwrap();
        // Exactly the invoices of the orders below the committed offsets: the torn
        // transaction is aborted whole, its offsets with it.
        check(0, &broker);
        let d = broker.describe_transaction(TXN_ID).unwrap().unwrap();
        assert_eq!(d.state, embroker::TxnState::CompleteAbort, "{d:?}");
        // The pipeline restarts on the same directory and processes every order once.
        append_orders(&broker, 10, &mut next);
        run_pipeline(&broker, Duration::from_millis(1_500), false);
        broker.close().unwrap();
    }
    let broker = Broker::open(&data).unwrap();
    let committed = check(1, &broker);
    let total: i64 = committed.values().sum();
    assert_eq!(total, next as i64, "every order processed: {committed:?}");
    broker.close().unwrap();
}

/// Where the last batch of a segment's bytes starts (batches are laid end to end: base offset
/// i64, then the length i32 of what follows).
fn last_batch_start(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    let mut last = None;
    while at + 12 <= bytes.len() {
        let length = i32::from_be_bytes(bytes[at + 8..at + 12].try_into().unwrap());
        last = Some(at);
        at += 12 + usize::try_from(length).unwrap();
    }
    last
}
