//! Where records go: Kafka's murmur2 placement for keys, explicit partitions, custom
//! partitioners and their mistakes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use embroker::{
    murmur2, to_positive, Broker, Error, Partitioner, PartitionerChoice, ProducerConfig,
    ProducerRecord, TopicConfig,
};

fn broker_with(topic: &str, partitions: i32) -> Broker {
    let broker = Broker::temporary().unwrap();
    broker
        .create_topic(topic, TopicConfig::default().partitions(partitions))
        .unwrap();
    broker
}

#[test]
fn keyed_records_land_where_kafka_puts_them() {
    // Kafka's own test keys, whose partitions over 3/6/10/12 are in kafka-semantics.md §2.2.
    let vectors: [(&str, [i32; 4]); 7] = [
        ("21", [0, 0, 0, 0]),
        ("foobar", [0, 0, 6, 6]),
        ("abc", [0, 3, 7, 3]),
        ("a-little-bit-long-string", [2, 2, 2, 8]),
        ("a-little-bit-longer-string", [2, 5, 9, 11]),
        (
            "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            [2, 5, 7, 5],
        ),
        ("", [0, 3, 1, 9]),
    ];
    for (i, count) in [3, 6, 10, 12].into_iter().enumerate() {
        let broker = broker_with("t", count);
        let producer = broker.producer(ProducerConfig::default()).unwrap();
        for (key, expected) in &vectors {
            let meta = producer
                .send(ProducerRecord::new("t", "v").key(*key))
                .unwrap()
                .wait()
                .unwrap();
            assert_eq!(meta.partition, expected[i], "key {key:?} over {count}");
        }
        // Many more keys, against the formula, and read back from the partition.
        for n in 0..500 {
            let key = format!("user-{n}");
            let want = to_positive(murmur2(key.as_bytes())) % count;
            let meta = producer
                .send(ProducerRecord::new("t", key.clone()).key(key.clone()))
                .unwrap()
                .wait()
                .unwrap();
            assert_eq!(meta.partition, want, "{key}");
            let p = broker.topic("t").unwrap().partition(want).unwrap();
            let stored = p.read(meta.offset, 1).unwrap().iter().next().unwrap();
            assert_eq!(stored.key.as_deref(), Some(key.as_bytes()));
        }
    }
}

#[test]
fn an_explicit_partition_wins_over_the_key() {
    let broker = broker_with("t", 12);
    let producer = broker.producer(ProducerConfig::default()).unwrap();
    // murmur2 puts "foobar" on 6 of 12; the record asks for 3.
    let meta = producer
        .send(ProducerRecord::new("t", "v").key("foobar").partition(3))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(meta.partition, 3);
}

#[test]
fn a_partition_the_topic_lacks_is_an_error() {
    let broker = broker_with("t", 3);
    let producer = broker.producer(ProducerConfig::default()).unwrap();
    for p in [3, 100, -1] {
        let e = producer
            .send(ProducerRecord::new("t", "v").partition(p))
            .unwrap_err();
        assert!(
            matches!(
                &e,
                Error::UnknownPartition { topic, partition, partitions: 3 }
                    if topic == "t" && *partition == p
            ),
            "{e}"
        );
    }
}

#[derive(Debug)]
struct Fixed(i32);

impl Partitioner for Fixed {
    fn partition(
        &self,
        _topic: &str,
        _key: Option<&[u8]>,
        _value: Option<&[u8]>,
        _partition_count: i32,
    ) -> embroker::Result<i32> {
        Ok(self.0)
    }
}

#[derive(Debug)]
struct Refuses;

impl Partitioner for Refuses {
    fn partition(
        &self,
        _topic: &str,
        _key: Option<&[u8]>,
        _value: Option<&[u8]>,
        _partition_count: i32,
    ) -> embroker::Result<i32> {
        Err(Error::Callback {
            callback: "partitioner",
            reason: "no partition for you".into(),
        })
    }
}

#[test]
fn a_custom_partitioner_places_records() {
    let broker = broker_with("t", 4);
    let config =
        ProducerConfig::default().partitioner(PartitionerChoice::Custom(Arc::new(Fixed(2))));
    let producer = broker.producer(config).unwrap();
    for key in ["a", "b", "c"] {
        let meta = producer
            .send(ProducerRecord::new("t", "v").key(key))
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(meta.partition, 2);
    }
}

#[test]
fn a_custom_partitioner_out_of_range_is_an_error() {
    let broker = broker_with("t", 4);
    for bad in [4, 99, -1] {
        let config =
            ProducerConfig::default().partitioner(PartitionerChoice::Custom(Arc::new(Fixed(bad))));
        let producer = broker.producer(config).unwrap();
        let e = producer.send(ProducerRecord::new("t", "v")).unwrap_err();
        assert!(
            matches!(&e, Error::Callback { callback: "partitioner", reason } if reason.contains(&format!("partition {bad}"))),
            "{e}"
        );
    }
    // A partitioner's own error comes back as it is.
    let config =
        ProducerConfig::default().partitioner(PartitionerChoice::Custom(Arc::new(Refuses)));
    let producer = broker.producer(config).unwrap();
    let e = producer.send(ProducerRecord::new("t", "v")).unwrap_err();
    assert!(e.to_string().contains("no partition for you"), "{e}");
}

#[test]
fn keyless_records_spread_round_robin_by_default() {
    let broker = broker_with("t", 3);
    let producer = broker.producer(ProducerConfig::default()).unwrap();
    let partitions: Vec<i32> = (0..6)
        .map(|_| {
            producer
                .send(ProducerRecord::new("t", "v"))
                .unwrap()
                .partition()
        })
        .collect();
    assert_eq!(partitions, [0, 1, 2, 0, 1, 2]);
}

#[test]
fn partitions_added_later_are_used() {
    let broker = broker_with("t", 1);
    let producer = broker.producer(ProducerConfig::default()).unwrap();
    producer
        .send(ProducerRecord::new("t", "v"))
        .unwrap()
        .wait()
        .unwrap();
    broker.create_partitions("t", 4).unwrap();
    let meta = producer
        .send(ProducerRecord::new("t", "v").partition(3))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!((meta.partition, meta.offset), (3, 0));
}

#[test]
fn a_custom_partitioner_is_asked_on_a_topic_of_one_partition() {
    // Built-in partitioners are skipped there (they can only answer 0); the caller's own may
    // count or refuse, so it is always asked.
    let broker = broker_with("one", 1);
    let refuses =
        ProducerConfig::default().partitioner(PartitionerChoice::Custom(Arc::new(Refuses)));
    let e = broker
        .producer(refuses)
        .unwrap()
        .send(ProducerRecord::new("one", "v"))
        .unwrap_err();
    assert!(e.to_string().contains("no partition for you"), "{e}");
    let out_of_range =
        ProducerConfig::default().partitioner(PartitionerChoice::Custom(Arc::new(Fixed(1))));
    let e = broker
        .producer(out_of_range)
        .unwrap()
        .send(ProducerRecord::new("one", "v"))
        .unwrap_err();
    assert!(
        matches!(&e, Error::Callback { callback: "partitioner", reason } if reason.contains("partition 1")),
        "{e}"
    );
}

#[test]
fn built_in_partitioners_use_partition_0_of_one_then_every_partition_added() {
    for choice in [
        PartitionerChoice::Default,
        PartitionerChoice::UniformSticky,
        PartitionerChoice::RoundRobin,
        PartitionerChoice::Random,
    ] {
        let broker = broker_with("t", 1);
        let producer = broker
            .producer(ProducerConfig::default().partitioner(choice))
            .unwrap();
        for record in [
            ProducerRecord::new("t", "v"),
            ProducerRecord::new("t", "v").key("k"),
        ] {
            assert_eq!(producer.send(record).unwrap().partition(), 0);
        }
        broker.create_partitions("t", 3).unwrap();
        let used: std::collections::BTreeSet<i32> = (0..3_000)
            .map(|i| {
                producer
                    .send(ProducerRecord::new("t", vec![b'v'; 200]).key(format!("k{i}")))
                    .unwrap()
                    .partition()
            })
            .collect();
        assert_eq!(used.len(), 3, "{used:?}");
    }
}
