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

/// One thread pipelines sends with callbacks at acks=all (idempotent) into two partitions of
/// small segments, with small batches: while the sender fsyncs, many batches gather in each
/// lane, and the sender appends each lane's batches with one write (rolls falling inside
/// them). Every record is acknowledged at its own offset, in send order per partition, and
/// reads back in that order, before and after the broker is reopened.
#[test]
fn pipelined_batches_appended_together_keep_their_order_and_offsets() {
    use std::sync::{Arc, Mutex};
    const RECORDS: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let topic = TopicConfig::default().partitions(2).segment_bytes(64 << 10);
    {
        let broker = Broker::open(dir.path()).unwrap();
        broker.create_topic("t", topic.clone()).unwrap();
        let producer = broker
            .producer(ProducerConfig::default().acks(Acks::All).batch_size(1_024))
            .unwrap();
        let acked = Arc::new(Mutex::new(vec![Vec::<(i64, usize)>::new(); 2]));
        for i in 0..RECORDS {
            let acked = Arc::clone(&acked);
            let p = (i % 2) as i32;
            producer
                .send_with_callback(
                    ProducerRecord::new("t", format!("record-{i}")).partition(p),
                    move |m| {
                        let m = m.unwrap();
                        acked.lock().unwrap()[m.partition as usize].push((m.offset, i));
                    },
                )
                .unwrap();
        }
        producer.flush().unwrap();
        let acked = acked.lock().unwrap();
        for (p, got) in acked.iter().enumerate() {
            // Callbacks of one partition run in offset order, one per offset.
            let offsets: Vec<i64> = got.iter().map(|(o, _)| *o).collect();
            let expected: Vec<i64> = (0..(RECORDS / 2) as i64).collect();
            assert_eq!(offsets, expected, "partition {p}");
            assert!(got.windows(2).all(|w| w[0].1 < w[1].1), "partition {p}");
        }
        producer.close().unwrap();
    }
    let broker = Broker::open(dir.path()).unwrap();
    for p in 0..2 {
        let partition = broker.topic("t").unwrap().partition(p).unwrap();
        let segments = partition.metrics().get("num-log-segments").unwrap();
        assert!(segments > 2.0, "{segments} segments");
        let mut next = 0i64;
        while next < (RECORDS / 2) as i64 {
            for r in partition.read(next, 1 << 20).unwrap().iter() {
                assert_eq!(r.offset, next);
                let expected = format!("record-{}", next as usize * 2 + p as usize);
                assert_eq!(r.value.as_deref(), Some(expected.as_bytes()));
                next += 1;
            }
        }
    }
}
