//! [`TypedConsumer`]: a [`Consumer`] whose records have keys and values of application types.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use super::serdes::{Builtin, Deserializer, RecordPart};
use crate::consumer::{Consumer, ConsumerRecord};
use crate::error::{Error, Result};
use crate::types::{Header, TimestampType, TopicPartition};

/// A record as a [`TypedConsumer`] returns it: [`ConsumerRecord`] with the key and value
/// deserialized (Kafka's `ConsumerRecord<K, V>`). A null key or value stays `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypedConsumerRecord<K, V> {
    /// The topic (interned, as in [`ConsumerRecord::topic`]).
    pub topic: &'static str,
    /// The partition.
    pub partition: i32,
    /// The record's offset in its partition.
    pub offset: i64,
    /// The record's timestamp (ms since the epoch).
    pub timestamp: i64,
    /// Whether the timestamp is the producer's or the log's.
    pub timestamp_type: TimestampType,
    /// The key, if any.
    pub key: Option<K>,
    /// The value; `None` is a tombstone.
    pub value: Option<V>,
    /// Headers, in order.
    pub headers: Vec<Header>,
}

impl<K, V> TypedConsumerRecord<K, V> {
    /// The record's topic and partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic, self.partition)
    }
}

/// A [`Consumer`] typed by key and value: Kafka's `KafkaConsumer<K, V>` with its key and value
/// deserializers. Made by [`Consumer::typed`] (Kafka's built-in encodings, [`Builtin`]) or
/// [`TypedConsumer::with_deserializers`].
///
/// It dereferences to the untyped [`Consumer`] for everything but `poll`: `assign`,
/// `subscribe`, `seek`, `position`, `commit_sync`, ... .
///
/// **A record that does not deserialize** is handled as Kafka's consumer handles it
/// (`RecordDeserializationException`): `poll` returns the records before it, and leaves the
/// partition's position at the bad record; the `poll` that reaches it first fails with
/// [`Error::Deserialization`] naming its topic, partition, offset and whether the key or the
/// value failed, and so does every later `poll` until the application seeks past it. Records
/// of other partitions are not lost either: any the underlying poll fetched after the failure
/// are returned again by a later `poll`.
///
/// ```
/// use std::time::Duration;
/// use embroker::{Broker, ConsumerConfig, Error, OffsetReset, ProducerConfig, ProducerRecord};
/// use embroker::{TopicConfig, TopicPartition};
/// let broker = Broker::temporary()?;
/// broker.create_topic("counts", TopicConfig::default())?;
/// let producer = broker.producer(ProducerConfig::default())?;
/// producer.send(ProducerRecord::new("counts", 7i32.to_be_bytes().to_vec()).key("a"))?;
/// producer.send(ProducerRecord::new("counts", "oops"[..3].to_string()))?; // 3 bytes: no i32
/// producer.send(ProducerRecord::new("counts", 9i32.to_be_bytes().to_vec()))?;
/// producer.flush()?;
///
/// let config = ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest);
/// let mut consumer = broker.consumer(config)?.typed::<String, i32>();
/// let tp = TopicPartition::new("counts", 0);
/// consumer.assign(std::slice::from_ref(&tp))?;
/// let first = consumer.poll(Duration::from_secs(1))?;
/// assert_eq!((first[0].key.as_deref(), first[0].value), (Some("a"), Some(7)));
/// let err = consumer.poll(Duration::from_secs(1)).unwrap_err();
/// assert!(matches!(err, Error::Deserialization { offset: 1, .. }));
/// assert_eq!(consumer.position(&tp)?, 1); // still at the bad record
/// consumer.seek(&tp, 2)?;                 // skip it
/// assert_eq!(consumer.poll(Duration::from_secs(1))?[0].value, Some(9));
/// # Ok::<(), embroker::Error>(())
/// ```
pub struct TypedConsumer<K, V, KD = Builtin, VD = Builtin> {
    consumer: Consumer,
    key_deserializer: KD,
    value_deserializer: VD,
    types: PhantomData<fn() -> (K, V)>,
}

impl Consumer {
    /// This consumer, typed: keys of type `K` and values of type `V`, deserialized with
    /// Kafka's built-in encodings ([`Builtin`]).
    pub fn typed<K, V>(self) -> TypedConsumer<K, V>
    where
        Builtin: Deserializer<K> + Deserializer<V>,
    {
        TypedConsumer::with_deserializers(self, Builtin, Builtin)
    }
}

impl<K, V, KD, VD> TypedConsumer<K, V, KD, VD>
where
    KD: Deserializer<K>,
    VD: Deserializer<V>,
{
    /// `consumer`, typed, with these deserializers (Kafka's `KafkaConsumer(config,
    /// keyDeserializer, valueDeserializer)`).
    pub fn with_deserializers(
        consumer: Consumer,
        key_deserializer: KD,
        value_deserializer: VD,
    ) -> Self {
        TypedConsumer {
            consumer,
            key_deserializer,
            value_deserializer,
            types: PhantomData,
        }
    }

    /// [`Consumer::poll`], with every record's key and value deserialized, in the order the
    /// untyped poll returns them (partition by partition, each in offset order).
    ///
    /// Errors: those of [`Consumer::poll`], and [`Error::Deserialization`] when the first record
    /// this poll would return does not deserialize (see the type's docs: the position stays at
    /// that record). When a later record fails, the records before it are returned and the
    /// failure comes from the next poll that reaches it.
    pub fn poll(&mut self, timeout: Duration) -> Result<Vec<TypedConsumerRecord<K, V>>> {
        let records = self.consumer.poll(timeout)?;
        let mut out = Vec::with_capacity(records.count());
        let mut failure = None;
        // Partitions with records not handed out, and the first such offset of each.
        let mut rewind: Vec<(TopicPartition, i64)> = Vec::new();
        for r in records.iter() {
            if failure.is_some() {
                let seen = rewind
                    .last()
                    .is_some_and(|(tp, _)| tp.partition == r.partition && tp.topic == r.topic);
                if !seen {
                    rewind.push((r.topic_partition(), r.offset));
                }
                continue;
            }
            let (tp, offset) = (r.topic_partition(), r.offset);
            match self.deserialize(r) {
                Ok(t) => out.push(t),
                Err(e) => {
                    failure = Some(e);
                    rewind.push((tp, offset));
                }
            }
        }
        // Records of a partition come together, so `rewind` has each partition once. Kafka
        // leaves the position at the bad record; the untyped poll has moved past it.
        for (tp, offset) in &rewind {
            self.consumer.seek(tp, *offset)?;
        }
        match failure {
            Some(e) if out.is_empty() => Err(e),
            _ => Ok(out),
        }
    }

    /// The untyped handle.
    pub fn consumer(&self) -> &Consumer {
        &self.consumer
    }

    /// The untyped handle, mutably.
    pub fn consumer_mut(&mut self) -> &mut Consumer {
        &mut self.consumer
    }

    /// The untyped handle, giving up the deserializers.
    pub fn into_inner(self) -> Consumer {
        self.consumer
    }

    /// [`Consumer::close`].
    pub fn close(self) -> Result<()> {
        self.consumer.close()
    }

    #[inline]
    fn deserialize(&self, r: ConsumerRecord) -> Result<TypedConsumerRecord<K, V>> {
        let ConsumerRecord {
            topic,
            partition,
            offset,
            timestamp,
            timestamp_type,
            key,
            value,
            headers,
        } = r;
        let fail = |part, e: super::SerdeError| Error::Deserialization {
            topic: topic.to_string(),
            partition,
            offset,
            part,
            reason: e.to_string(),
        };
        let key = match key {
            Some(k) => Some(
                self.key_deserializer
                    .deserialize(topic, &headers, k)
                    .map_err(|e| fail(RecordPart::Key, e))?,
            ),
            None => None,
        };
        let value = match value {
            Some(v) => Some(
                self.value_deserializer
                    .deserialize(topic, &headers, v)
                    .map_err(|e| fail(RecordPart::Value, e))?,
            ),
            None => None,
        };
        Ok(TypedConsumerRecord {
            topic,
            partition,
            offset,
            timestamp,
            timestamp_type,
            key,
            value,
            headers: headers.into_vec(),
        })
    }
}

impl<K, V, KD, VD> Deref for TypedConsumer<K, V, KD, VD> {
    type Target = Consumer;

    fn deref(&self) -> &Consumer {
        &self.consumer
    }
}

impl<K, V, KD, VD> DerefMut for TypedConsumer<K, V, KD, VD> {
    fn deref_mut(&mut self) -> &mut Consumer {
        &mut self.consumer
    }
}

impl<K, V, KD, VD> std::fmt::Debug for TypedConsumer<K, V, KD, VD> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedConsumer")
            .field("consumer", &self.consumer)
            .field("key", &std::any::type_name::<K>())
            .field("value", &std::any::type_name::<V>())
            .finish_non_exhaustive()
    }
}
