//! [`TypedProducer`]: a [`Producer`] that sends keys and values of application types.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::ops::Deref;

use super::serdes::{Builtin, RecordPart, Serializer};
use crate::error::{Error, Result};
use crate::producer::{Producer, ProducerRecord, RecordMetadata, SendFuture};
use crate::types::{Bytes, Header};

/// A record to send with a key of type `K` and a value of type `V`: [`ProducerRecord`] with
/// typed key and value (Kafka's `ProducerRecord<K, V>`). `None` stays null: a `None` value is
/// a tombstone.
///
/// ```
/// use embroker::TypedProducerRecord;
/// let r = TypedProducerRecord::new("orders", 42u64).key("customer-7".to_string()).partition(1);
/// assert_eq!((r.key.as_deref(), r.value, r.partition), (Some("customer-7"), Some(42), Some(1)));
/// let delete = TypedProducerRecord::<String, u64>::tombstone("orders", "customer-7".into());
/// assert!(delete.value.is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypedProducerRecord<K, V> {
    /// The topic (borrowed when `'static`, as in [`ProducerRecord::topic`]).
    pub topic: Cow<'static, str>,
    /// The partition, or `None` to let the partitioner choose (from the serialized key).
    pub partition: Option<i32>,
    /// The key, if any.
    pub key: Option<K>,
    /// The value; `None` is a tombstone.
    pub value: Option<V>,
    /// Headers, in order (serializers may add more).
    pub headers: Vec<Header>,
    /// Milliseconds since the Unix epoch; `None` takes the broker clock's time at send.
    pub timestamp: Option<i64>,
}

impl<K, V> TypedProducerRecord<K, V> {
    /// A record with this value, no key, for the partitioner to place.
    pub fn new(topic: impl Into<Cow<'static, str>>, value: V) -> Self {
        TypedProducerRecord {
            topic: topic.into(),
            partition: None,
            key: None,
            value: Some(value),
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// A tombstone: this key and no value.
    pub fn tombstone(topic: impl Into<Cow<'static, str>>, key: K) -> Self {
        TypedProducerRecord {
            topic: topic.into(),
            partition: None,
            key: Some(key),
            value: None,
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// Sets the key.
    #[must_use]
    pub fn key(mut self, key: K) -> Self {
        self.key = Some(key);
        self
    }

    /// Sends to this partition, bypassing the partitioner.
    #[must_use]
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Sets the timestamp (milliseconds since the Unix epoch).
    #[must_use]
    pub fn timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp = Some(timestamp_ms);
        self
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header::new(key, value));
        self
    }
}

/// A [`Producer`] typed by key and value: Kafka's `KafkaProducer<K, V>` with its key and value
/// serializers. Made by [`Producer::typed`] (Kafka's built-in encodings, [`Builtin`]) or
/// [`TypedProducer::with_serializers`].
///
/// It dereferences to the untyped [`Producer`] for `flush`, `close`, `config` and the untyped
/// `send`; cloning it clones the handle (the same producer). Serializing happens on the
/// calling thread, in `send`, before the record is queued; a failure is
/// [`Error::Serialization`] and nothing is sent.
///
/// ```
/// use embroker::{Broker, ProducerConfig, TopicConfig, TypedProducerRecord};
/// let broker = Broker::temporary()?;
/// broker.create_topic("scores", TopicConfig::default())?;
/// let producer = broker.producer(ProducerConfig::default())?.typed::<String, i64>();
/// let meta = producer
///     .send(TypedProducerRecord::new("scores", 1_000i64).key("alice".to_string()))?
///     .wait()?;
/// assert_eq!(meta.offset, 0);
/// producer.close()?;
/// # Ok::<(), embroker::Error>(())
/// ```
pub struct TypedProducer<K, V, KS = Builtin, VS = Builtin> {
    producer: Producer,
    key_serializer: KS,
    value_serializer: VS,
    types: PhantomData<fn(K, V)>,
}

impl Producer {
    /// This producer, typed: keys of type `K` and values of type `V`, serialized with
    /// Kafka's built-in encodings ([`Builtin`]: strings, bytes, big-endian numbers).
    pub fn typed<K, V>(self) -> TypedProducer<K, V>
    where
        Builtin: Serializer<K> + Serializer<V>,
    {
        TypedProducer::with_serializers(self, Builtin, Builtin)
    }
}

impl<K, V, KS, VS> TypedProducer<K, V, KS, VS>
where
    KS: Serializer<K>,
    VS: Serializer<V>,
{
    /// `producer`, typed, with these serializers (Kafka's `KafkaProducer(config, keySerializer,
    /// valueSerializer)`).
    pub fn with_serializers(producer: Producer, key_serializer: KS, value_serializer: VS) -> Self {
        TypedProducer {
            producer,
            key_serializer,
            value_serializer,
            types: PhantomData,
        }
    }

    /// Serializes the key and value, then sends as [`Producer::send`] does (the same errors,
    /// plus [`Error::Serialization`]).
    #[inline]
    pub fn send(&self, record: TypedProducerRecord<K, V>) -> Result<SendFuture> {
        let record = self.serialize(record)?;
        self.producer.send(record)
    }

    /// Serializes the key and value, then sends as [`Producer::send_with_callback`] does. If
    /// serializing fails, nothing is sent and the callback is dropped without running.
    pub fn send_with_callback<F>(
        &self,
        record: TypedProducerRecord<K, V>,
        callback: F,
    ) -> Result<()>
    where
        F: FnOnce(Result<RecordMetadata>) + Send + 'static,
    {
        let record = self.serialize(record)?;
        self.producer.send_with_callback(record, callback)
    }

    /// The untyped handle.
    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// The untyped handle, giving up the serializers.
    pub fn into_inner(self) -> Producer {
        self.producer
    }

    #[inline]
    fn serialize(&self, record: TypedProducerRecord<K, V>) -> Result<ProducerRecord> {
        let TypedProducerRecord {
            topic,
            partition,
            key,
            value,
            mut headers,
            timestamp,
        } = record;
        let fail = |part, e: super::SerdeError| Error::Serialization {
            topic: topic.to_string(),
            part,
            reason: e.to_string(),
        };
        let key = match key {
            Some(k) => Some(
                self.key_serializer
                    .serialize(&topic, &mut headers, k)
                    .map_err(|e| fail(RecordPart::Key, e))?,
            ),
            None => None,
        };
        let value = match value {
            Some(v) => Some(
                self.value_serializer
                    .serialize(&topic, &mut headers, v)
                    .map_err(|e| fail(RecordPart::Value, e))?,
            ),
            None => None,
        };
        Ok(ProducerRecord {
            topic,
            partition,
            key,
            value,
            headers,
            timestamp,
        })
    }
}

impl<K, V, KS, VS> Deref for TypedProducer<K, V, KS, VS> {
    type Target = Producer;

    fn deref(&self) -> &Producer {
        &self.producer
    }
}

impl<K, V, KS: Clone, VS: Clone> Clone for TypedProducer<K, V, KS, VS> {
    fn clone(&self) -> Self {
        TypedProducer {
            producer: self.producer.clone(),
            key_serializer: self.key_serializer.clone(),
            value_serializer: self.value_serializer.clone(),
            types: PhantomData,
        }
    }
}

impl<K, V, KS, VS> std::fmt::Debug for TypedProducer<K, V, KS, VS> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedProducer")
            .field("producer", &self.producer)
            .field("key", &std::any::type_name::<K>())
            .field("value", &std::any::type_name::<V>())
            .finish_non_exhaustive()
    }
}
