//! One producer shared by 8 threads: every record lands exactly once, and records with the
//! same key land in one partition in the order their thread sent them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use embroker::{Broker, ProducerConfig, ProducerRecord, TopicConfig};

const THREADS: usize = 8;
const PER_THREAD: usize = 12_500;
const KEYS_PER_THREAD: usize = 50;
const PARTITIONS: i32 = 6;

/// 8 threads × 12,500 keyed records through one shared producer (default acks=1, linger 0).
/// Each value is `thread:seq`, each key `thread-k{seq % 50}`, so per key the sequence numbers
/// must appear in increasing order, and all 100,000 (thread, seq) pairs exactly once.
#[test]
fn eight_threads_share_one_producer_exactly_once_in_key_order() {
    let broker = Broker::temporary().unwrap();
    broker
        .create_topic("t", TopicConfig::default().partitions(PARTITIONS))
        .unwrap();
    let producer = broker.producer(ProducerConfig::default()).unwrap();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let producer = producer.clone();
            s.spawn(move || {
                let mut last = None;
                for i in 0..PER_THREAD {
                    let key = format!("{t}-k{}", i % KEYS_PER_THREAD);
                    let f = producer
                        .send(ProducerRecord::new("t", format!("{t}:{i}")).key(key))
                        .unwrap();
                    // Wait on some futures, drop the rest: both are normal uses.
                    if i % 1000 == 999 {
                        f.wait().unwrap();
                    } else {
                        last = Some(f);
                    }
                }
                last.unwrap().wait().unwrap();
            });
        }
    });
    producer.close().unwrap();

    let mut seen = vec![vec![false; PER_THREAD]; THREADS];
    let mut key_partition: HashMap<Vec<u8>, i32> = HashMap::new();
    let mut key_last_seq: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut total = 0;
    for p in 0..PARTITIONS {
        let part = broker.topic("t").unwrap().partition(p).unwrap();
        let records = common::read_all(&part, 0);
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.offset, i as i64, "offsets are dense");
            let key = r.key.clone().unwrap().to_vec();
            let value = String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap();
            let (t, seq) = value.split_once(':').unwrap();
            let (t, seq): (usize, usize) = (t.parse().unwrap(), seq.parse().unwrap());
            assert!(!seen[t][seq], "{value} stored twice");
            seen[t][seq] = true;
            assert_eq!(
                *key_partition.entry(key.clone()).or_insert(p),
                p,
                "key split"
            );
            if let Some(prev) = key_last_seq.insert(key.clone(), seq) {
                assert!(prev < seq, "key {key:?}: {prev} stored before {seq}");
            }
            total += 1;
        }
    }
    assert_eq!(total, THREADS * PER_THREAD);
    assert!(seen.iter().flatten().all(|s| *s));
    assert_eq!(key_partition.len(), THREADS * KEYS_PER_THREAD);
}
