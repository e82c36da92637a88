//! Typed producers and consumers (issue #19): every provided encoding round trips through a
//! real broker, nulls stay null, a record that does not deserialize stops the consumer at its
//! offset until the application seeks past it (Kafka's `RecordDeserializationException`), and
//! JSON works with `--features serde`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Debug;
use std::time::Duration;

use embroker::{
    Broker, Builtin, Bytes, ConsumerConfig, Deserializer, Error, OffsetReset, ProducerConfig,
    ProducerRecord, RecordPart, Serializer, TopicConfig, TopicPartition, TypedConsumer,
    TypedConsumerRecord, TypedProducerRecord,
};

const POLL: Duration = Duration::from_secs(2);

/// Reads from the beginning (the default, as in Kafka, is the end).
fn earliest() -> ConsumerConfig {
    ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest)
}

fn broker_with(topic: &str, partitions: i32) -> Broker {
    let broker = Broker::temporary().unwrap();
    broker
        .create_topic(topic, TopicConfig::default().partitions(partitions))
        .unwrap();
    broker
}

/// Polls until `n` records came back (failing on any error or an empty poll).
fn poll_n<K, V, KD, VD>(
    consumer: &mut TypedConsumer<K, V, KD, VD>,
    n: usize,
) -> Vec<TypedConsumerRecord<K, V>>
where
    KD: Deserializer<K>,
    VD: Deserializer<V>,
{
    let mut out = Vec::new();
    while out.len() < n {
        let got = consumer.poll(POLL).unwrap();
        assert!(
            !got.is_empty(),
            "poll came back empty after {} of {n}",
            out.len()
        );
        out.extend(got);
    }
    out
}

/// Sends each key/value pair typed, reads them back typed, and checks they are the same.
fn round_trip<K, V>(pairs: Vec<(Option<K>, Option<V>)>)
where
    K: Clone + Debug + PartialEq,
    V: Clone + Debug + PartialEq,
    Builtin: Serializer<K> + Serializer<V> + Deserializer<K> + Deserializer<V>,
{
    let broker = broker_with("t", 1);
    let producer = broker
        .producer(ProducerConfig::default())
        .unwrap()
        .typed::<K, V>();
    for (key, value) in &pairs {
        let record = TypedProducerRecord {
            topic: "t".into(),
            partition: None,
            key: key.clone(),
            value: value.clone(),
            headers: Vec::new(),
            timestamp: None,
        };
        drop(producer.send(record).unwrap());
    }
    producer.flush().unwrap();
    let mut consumer = broker.consumer(earliest()).unwrap().typed::<K, V>();
    consumer.assign(&[TopicPartition::new("t", 0)]).unwrap();
    let got = poll_n(&mut consumer, pairs.len());
    let got_pairs: Vec<(Option<K>, Option<V>)> = got
        .iter()
        .map(|r| (r.key.clone(), r.value.clone()))
        .collect();
    assert_eq!(got_pairs, pairs);
    let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (0..pairs.len() as i64).collect::<Vec<_>>());
}

#[test]
fn strings_round_trip_with_null_keys_and_tombstones() {
    round_trip::<String, String>(vec![
        (Some("k".into()), Some("v".into())),
        (None, Some("no key".into())),
        (Some("deleted".into()), None),
        (None, None),
        (Some(String::new()), Some("empty key is not null".into())),
        (Some("ключ".into()), Some("значение ✓".into())),
    ]);
}

#[test]
fn str_keys_are_read_back_as_strings() {
    let broker = broker_with("t", 1);
    let producer = broker
        .producer(ProducerConfig::default())
        .unwrap()
        .typed::<&str, &str>();
    drop(
        producer
            .send(TypedProducerRecord::new("t", "v").key("k"))
            .unwrap(),
    );
    producer.flush().unwrap();
    let mut consumer = broker
        .consumer(earliest())
        .unwrap()
        .typed::<String, String>();
    consumer.assign(&[TopicPartition::new("t", 0)]).unwrap();
    let got = poll_n(&mut consumer, 1);
    assert_eq!(got[0].key.as_deref(), Some("k"));
    assert_eq!(got[0].value.as_deref(), Some("v"));
}

#[test]
fn bytes_and_byte_vectors_round_trip() {
    round_trip::<Vec<u8>, Bytes>(vec![
        (Some(vec![0, 255]), Some(Bytes::from_static(b"\x00\x01"))),
        (None, Some(Bytes::new())),
        (Some(Vec::new()), None),
    ]);
    round_trip::<Bytes, Vec<u8>>(vec![(Some(Bytes::from_static(b"k")), Some(vec![1; 1000]))]);
}

#[test]
fn integers_round_trip() {
    round_trip::<i16, i32>(vec![
        (Some(i16::MIN), Some(i32::MAX)),
        (Some(-1), Some(0)),
        (None, Some(-7)),
        (Some(3), None),
    ]);
    round_trip::<i64, u64>(vec![(Some(i64::MIN), Some(u64::MAX)), (Some(0), Some(1))]);
    round_trip::<u16, u32>(vec![(Some(u16::MAX), Some(u32::MAX)), (None, None)]);
    round_trip::<f32, f64>(vec![
        (Some(-0.5), Some(f64::MAX)),
        (Some(1e-9), Some(-3.25)),
    ]);
}

#[test]
fn integer_keys_are_partitioned_by_their_big_endian_bytes() {
    // Kafka's producer hashes the serialized key, so a typed key lands where the same bytes
    // sent untyped land.
    let broker = broker_with("t", 12);
    let untyped = broker.producer(ProducerConfig::default()).unwrap();
    let typed = untyped.clone().typed::<i32, String>();
    for key in [0i32, 1, 42, -5, 1_000_000] {
        let a = typed
            .send(TypedProducerRecord::new("t", "x".to_string()).key(key))
            .unwrap()
            .wait()
            .unwrap();
        let b = untyped
            .send(ProducerRecord::new("t", "x").key(key.to_be_bytes().to_vec()))
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(a.partition, b.partition, "key {key}");
    }
}

/// The scenario of Kafka's `RecordDeserializationException`: a record whose value is 3 bytes
/// where an `i32` needs 4, between good records. The consumer returns the records before it,
/// then fails at its offset on every poll, with the position held there, until the
/// application seeks past it; nothing after it is lost.
#[test]
fn a_wrong_length_integer_stops_at_its_offset_until_seeked_past() {
    let broker = broker_with("t", 1);
    let producer = broker.producer(ProducerConfig::default()).unwrap();
    for i in 0..3i32 {
        drop(
            producer
                .send(ProducerRecord::new("t", i.to_be_bytes().to_vec()))
                .unwrap(),
        );
    }
    drop(
        producer
            .send(ProducerRecord::new("t", vec![1u8, 2, 3]))
            .unwrap(),
    ); // offset 3
    for i in 4..6i32 {
        drop(
            producer
                .send(ProducerRecord::new("t", i.to_be_bytes().to_vec()))
                .unwrap(),
        );
    }
    producer.flush().unwrap();

    let tp = TopicPartition::new("t", 0);
    let mut consumer = broker.consumer(earliest()).unwrap().typed::<Bytes, i32>();
    consumer.assign(std::slice::from_ref(&tp)).unwrap();
    let first = consumer.poll(POLL).unwrap();
    let values: Vec<Option<i32>> = first.iter().map(|r| r.value).collect();
    assert_eq!(values, vec![Some(0), Some(1), Some(2)]);
    assert_eq!(consumer.position(&tp).unwrap(), 3);
    for _ in 0..2 {
        let err = consumer.poll(POLL).unwrap_err();
        assert!(
            matches!(
                &err,
                Error::Deserialization { topic, partition: 0, offset: 3, part: RecordPart::Value, .. }
                    if topic == "t"
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("value of the record at offset 3 of t-0"),
            "{text}"
        );
        assert!(text.contains("3 bytes"), "{text}");
        assert_eq!(consumer.position(&tp).unwrap(), 3);
    }
    consumer.seek(&tp, 4).unwrap();
    let rest = poll_n(&mut consumer, 2);
    assert_eq!(
        rest.iter().map(|r| (r.offset, r.value)).collect::<Vec<_>>(),
        vec![(4, Some(4)), (5, Some(5))]
    );
}

/// A bad key is reported as the key, and records of other partitions fetched in the same poll
/// after the bad one are not lost: they come back in a later poll.
#[test]
fn a_bad_key_does_not_lose_other_partitions_records() {
    let broker = broker_with("t", 2);
    let producer = broker.producer(ProducerConfig::default()).unwrap();
    for p in 0..2 {
        let bad = ProducerRecord::new("t", "bad").key(vec![0u8; 3]);
        drop(producer.send(bad.partition(p)).unwrap());
        for i in 0..3i32 {
            drop(
                producer
                    .send(
                        ProducerRecord::new("t", "good")
                            .key(i.to_be_bytes().to_vec())
                            .partition(p),
                    )
                    .unwrap(),
            );
        }
    }
    producer.flush().unwrap();
    let tps = [TopicPartition::new("t", 0), TopicPartition::new("t", 1)];
    let mut consumer = broker.consumer(earliest()).unwrap().typed::<i32, String>();
    consumer.assign(&tps).unwrap();
    let mut errors = Vec::new();
    let mut good = Vec::new();
    for _ in 0..6 {
        match consumer.poll(POLL) {
            Ok(records) => good.extend(records),
            Err(Error::Deserialization {
                partition,
                offset,
                part,
                ..
            }) => {
                assert_eq!(part, RecordPart::Key);
                errors.push((partition, offset));
                let tp = TopicPartition::new("t", partition);
                assert_eq!(consumer.position(&tp).unwrap(), offset);
                if errors.len() == 1 {
                    // Each partition starts with a bad record: the first failure leaves both
                    // at 0, whichever the underlying poll reached first.
                    for tp in &tps {
                        assert_eq!(consumer.position(tp).unwrap(), 0);
                    }
                }
                consumer
                    .seek(&TopicPartition::new("t", partition), offset + 1)
                    .unwrap();
            }
            Err(e) => panic!("{e}"),
        }
    }
    errors.sort_unstable();
    assert_eq!(errors, vec![(0, 0), (1, 0)]);
    let mut seen: Vec<(i32, i64, Option<i32>)> = good
        .iter()
        .map(|r| (r.partition, r.offset, r.key))
        .collect();
    seen.sort_unstable();
    let expected: Vec<(i32, i64, Option<i32>)> = (0..2)
        .flat_map(|p| (1..4).map(move |o| (p, o, Some(o as i32 - 1))))
        .collect();
    assert_eq!(seen, expected);
}

#[cfg(feature = "serde")]
mod json {
    use super::*;
    use embroker::{Json, TypedConsumer, TypedProducer};

    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Order {
        id: u64,
        items: Vec<String>,
        note: Option<String>,
    }

    #[test]
    fn json_values_round_trip_and_bad_json_is_reported() {
        let broker = broker_with("orders", 1);
        let untyped = broker.producer(ProducerConfig::default()).unwrap();
        let producer =
            TypedProducer::with_serializers(untyped.clone(), Builtin, Json::<Order>::new());
        let order = Order {
            id: 7,
            items: vec!["pear".into()],
            note: None,
        };
        drop(
            producer
                .send(TypedProducerRecord::new("orders", order.clone()).key("c-1".to_string()))
                .unwrap(),
        );
        drop(
            producer
                .send(TypedProducerRecord::tombstone("orders", "c-2".to_string()))
                .unwrap(),
        );
        drop(
            untyped
                .send(ProducerRecord::new("orders", "{not json"))
                .unwrap(),
        );
        producer.flush().unwrap();
        let raw = broker.topic("orders").unwrap().partition(0).unwrap();
        assert_eq!(raw.log_end_offset(), 3);

        let consumer = broker.consumer(earliest()).unwrap();
        let mut consumer: TypedConsumer<String, Order, Builtin, Json<Order>> =
            TypedConsumer::with_deserializers(consumer, Builtin, Json::new());
        consumer
            .assign(&[TopicPartition::new("orders", 0)])
            .unwrap();
        let got = consumer.poll(POLL).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].key.as_deref(), Some("c-1"));
        assert_eq!(got[0].value, Some(order));
        assert_eq!((got[1].key.as_deref(), &got[1].value), (Some("c-2"), &None));
        let err = consumer.poll(POLL).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Deserialization {
                    offset: 2,
                    part: RecordPart::Value,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_value_json_cannot_write_is_a_serialization_error_and_nothing_is_sent() {
        use std::collections::HashMap;
        let broker = broker_with("t", 1);
        let untyped = broker.producer(ProducerConfig::default()).unwrap();
        // JSON object keys must be strings: a map keyed by a tuple does not serialize.
        let producer =
            TypedProducer::with_serializers(untyped, Builtin, Json::<HashMap<(u8, u8), u8>>::new());
        let value = HashMap::from([((1, 2), 3)]);
        let err = producer
            .send(TypedProducerRecord::<String, _>::new("t", value))
            .unwrap_err();
        assert!(
            matches!(&err, Error::Serialization { topic, part: RecordPart::Value, .. } if topic == "t"),
            "{err:?}"
        );
        producer.flush().unwrap();
        assert_eq!(
            broker
                .topic("t")
                .unwrap()
                .partition(0)
                .unwrap()
                .log_end_offset(),
            0
        );
    }
}
