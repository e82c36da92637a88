//! The durability switch through the whole broker (issue #20): a temporary broker issues no
//! fsync at all, from open through topic creation, an acks=all send, a poll, a durable offset
//! commit, a flush and close; a persistent broker doing the same issues them. Counted by
//! `io::sync`'s test record, by path, so tests running in parallel do not disturb the count.

use std::path::Path;
use std::time::Duration;

use crate::io::sync::record;
use crate::{
    Acks, Broker, ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord, TopicConfig,
};

/// Everything a test usually does with a broker, ending with close.
fn workload(broker: &Broker) {
    broker
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let producer = broker
        .producer(ProducerConfig::default().acks(Acks::All))
        .unwrap();
    for i in 0..10 {
        producer
            .send(ProducerRecord::new("t", format!("v{i}")).key(format!("k{i}")))
            .unwrap()
            .wait()
            .unwrap();
    }
    producer.close().unwrap();
    let mut consumer = broker
        .consumer(
            ConsumerConfig::default()
                .group_id("g")
                .enable_auto_commit(false)
                .auto_offset_reset(OffsetReset::Earliest),
        )
        .unwrap();
    consumer.subscribe(&["t"]).unwrap();
    let mut read = 0;
    while read < 10 {
        read += consumer.poll(Duration::from_secs(5)).unwrap().count();
    }
    consumer.commit_sync().unwrap();
    consumer.close().unwrap();
    broker.flush().unwrap();
    broker.close().unwrap();
}

#[test]
fn a_temporary_broker_never_fsyncs() {
    let broker = Broker::temporary().unwrap();
    let dir = broker.path().to_path_buf();
    workload(&broker);
    let (performed, skipped) = record::under(&dir);
    assert_eq!(performed, 0, "a temporary broker fsynced {performed} times");
    // The switch was asked, so the workload did reach the syncs it skipped.
    assert!(skipped > 0, "no sync was even asked for");
}

#[test]
fn a_persistent_broker_fsyncs_the_same_workload() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    workload(&broker);
    let (performed, skipped) = record::under(Path::new(dir.path()));
    assert!(performed > 0, "a persistent broker did not fsync");
    assert_eq!(skipped, 0, "a persistent broker skipped {skipped} syncs");
}
