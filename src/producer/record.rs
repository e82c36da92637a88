//! What a producer sends ([`ProducerRecord`]) and what it gets back ([`RecordMetadata`]),
//! named after Kafka's classes of the same names.

use std::borrow::Cow;

use crate::types::{Bytes, Header, TopicPartition};

/// A record to send: the topic, and optionally a partition, key, value (`None` is a
/// tombstone), headers and timestamp. Kafka's `ProducerRecord`.
///
/// Without a partition, the producer's partitioner chooses one (for a keyed record under the
/// default partitioner, the same one Kafka's Java client chooses). Without a timestamp, the
/// broker clock's time at `send` is used (Kafka's `CreateTime`).
///
/// ```
/// use embroker::ProducerRecord;
/// let r = ProducerRecord::new("orders", "42 apples")
///     .key("customer-7")
///     .header("trace-id", "abc")
///     .timestamp(1_700_000_000_000);
/// assert_eq!(r.key.as_deref(), Some(&b"customer-7"[..]));
/// let pinned = ProducerRecord::new("orders", "to partition 2").partition(2);
/// assert_eq!(pinned.partition, Some(2));
/// let delete = ProducerRecord::tombstone("orders", "customer-7");
/// assert!(delete.value.is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerRecord {
    /// The topic to send to: borrowed when given as a `&'static str` (a literal or a
    /// `const`), so that sending to a fixed topic allocates nothing for its name.
    pub topic: Cow<'static, str>,
    /// The partition, or `None` to let the partitioner choose.
    pub partition: Option<i32>,
    /// The key, if any.
    pub key: Option<Bytes>,
    /// The value; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<Header>,
    /// Milliseconds since the Unix epoch (must not be negative); `None` takes the broker
    /// clock's time when the record is sent.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record with this value, no key, for the partitioner to place.
    ///
    /// `topic` is a `&'static str` (kept by reference: a fixed topic costs no allocation per
    /// record) or a `String` (moved in); pass a name borrowed for less than `'static` as
    /// `name.to_owned()`.
    pub fn new(topic: impl Into<Cow<'static, str>>, value: impl Into<Bytes>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            partition: None,
            key: None,
            value: Some(value.into()),
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// A tombstone (a record with this key and no value): on a compacted topic, it deletes the
    /// key.
    pub fn tombstone(topic: impl Into<Cow<'static, str>>, key: impl Into<Bytes>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            partition: None,
            key: Some(key.into()),
            value: None,
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// Sets the key.
    #[must_use]
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sends to this partition, bypassing the partitioner. A partition the topic does not
    /// have fails the send with [`Error::UnknownPartition`](crate::Error::UnknownPartition).
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

/// Where a sent record was stored. Kafka's `RecordMetadata`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RecordMetadata {
    /// The topic. Interned, as [`ConsumerRecord::topic`](crate::ConsumerRecord) is: one copy of
    /// each distinct topic name, kept for the life of the process, so that a send's result
    /// carries no allocation.
    pub topic: &'static str,
    /// The partition the record went to.
    pub partition: i32,
    /// The record's offset in the partition; -1 under `acks=0`, where nothing is awaited
    /// (as in Kafka).
    pub offset: i64,
    /// The record's timestamp: the producer's (`CreateTime`), or the log's under a topic with
    /// `message.timestamp.type=LogAppendTime`.
    pub timestamp: i64,
}

impl RecordMetadata {
    /// The topic and partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_static_topic_is_borrowed_and_a_string_moved_in() {
        const TOPIC: &str = "orders";
        let r = ProducerRecord::new(TOPIC, "v");
        assert!(matches!(&r.topic, Cow::Borrowed(t) if std::ptr::eq(*t, TOPIC)));
        let name = String::from("orders");
        let at = name.as_ptr();
        let r = ProducerRecord::tombstone(name, "k");
        assert!(matches!(&r.topic, Cow::Owned(t) if t.as_ptr() == at));
        assert_eq!(r.topic, "orders");
    }
}
