//! acks=all group commit: concurrent senders share fsyncs, counted through `fsync_count`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Barrier;

use embroker::{Acks, Broker, ProducerConfig, ProducerRecord, TopicConfig};

const THREADS: usize = 16;

fn run(rounds: usize, per_round: usize) -> (u64, u64) {
    // A persistent broker: a temporary one fsyncs nothing.
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    broker
        .create_topic("t", TopicConfig::default().partitions(1))
        .unwrap();
    let partition = broker.topic("t").unwrap().partition(0).unwrap();
    let producer = broker
        .producer(ProducerConfig::default().acks(Acks::All))
        .unwrap();
    let before = partition.fsync_count();
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let producer = producer.clone();
            let barrier = &barrier;
            s.spawn(move || {
                for r in 0..rounds {
                    barrier.wait();
                    for i in 0..per_round {
                        producer
                            .send(ProducerRecord::new("t", format!("{t}:{r}:{i}")))
                            .unwrap()
                            .wait()
                            .unwrap();
                    }
                }
            });
        }
    });
    let fsyncs = partition.fsync_count() - before;
    let records = (THREADS * rounds * per_round) as u64;
    assert_eq!(partition.log_end_offset() as u64, records);
    (records, fsyncs)
}

/// 16 threads each send one record and wait, all at once (20 times over): the records of a
/// round share a few fsyncs instead of taking one each.
#[test]
fn sixteen_threads_one_record_each_share_fsyncs() {
    let (records, fsyncs) = run(20, 1);
    eprintln!("{records} records, {fsyncs} fsyncs");
    assert!(fsyncs >= 20, "every round is fsynced");
    assert!(
        fsyncs * 4 <= records,
        "{fsyncs} fsyncs for {records} records"
    );
}

/// 16 threads each send 100 records one at a time, waiting for each: while one fsync runs,
/// the other threads' next records gather into the next batch.
#[test]
fn sixteen_threads_in_a_loop_share_fsyncs() {
    let (records, fsyncs) = run(1, 100);
    eprintln!("{records} records, {fsyncs} fsyncs");
    assert!(
        fsyncs * 4 <= records,
        "{fsyncs} fsyncs for {records} records"
    );
}
