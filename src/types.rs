//! Plain value types shared by every layer: topic-partition names, headers, records.
//!
//! Payloads are [`Bytes`], so a record read from the log shares the read buffer instead of
//! copying its key and value (one copy per read, none per record).

use std::fmt;

pub use bytes::Bytes;

/// A topic name and a partition number, as in Kafka's `TopicPartition`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition number, `0..partitions`.
    pub partition: i32,
}

impl TopicPartition {
    /// Builds a `TopicPartition`.
    ///
    /// ```
    /// let tp = embroker::TopicPartition::new("orders", 3);
    /// assert_eq!(tp.to_string(), "orders-3");
    /// ```
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    /// Kafka's spelling, which is also the partition's directory name: `topic-partition`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// A record header: a string key and a bytes value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// The header's key.
    pub key: String,
    /// The header's value; `None` is a null value (Kafka's header values are nullable: length
    /// -1 in the record, `null` from Java's `Header.value()`), distinct from an empty one.
    pub value: Option<Bytes>,
}

impl Header {
    /// A header with this value.
    pub fn new(key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        Header {
            key: key.into(),
            value: Some(value.into()),
        }
    }

    /// A header with a null value.
    pub fn null(key: impl Into<String>) -> Self {
        Header {
            key: key.into(),
            value: None,
        }
    }
}

/// How a record's timestamp was set: by the producer, or by the log at append time.
/// Kafka's `message.timestamp.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum TimestampType {
    /// The producer's timestamp is stored (Kafka's default).
    #[default]
    CreateTime,
    /// The log overwrites every timestamp with its clock when the batch is appended.
    LogAppendTime,
}

impl TimestampType {
    /// Kafka's name for the setting value.
    pub fn as_str(self) -> &'static str {
        match self {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        }
    }
}

/// A record to append to a partition: optional key, optional value (`None` is a tombstone),
/// headers and an optional timestamp (milliseconds since the Unix epoch; `None` means "now").
///
/// ```
/// use embroker::Record;
/// let r = Record::new("hello").key("user-1").timestamp(1_700_000_000_000).header("trace", "abc");
/// assert_eq!(r.key.as_deref(), Some(&b"user-1"[..]));
/// let tombstone = Record::tombstone("user-1");
/// assert!(tombstone.value.is_none());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// The key, if any.
    pub key: Option<Bytes>,
    /// The value; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<Header>,
    /// Timestamp in milliseconds since the epoch, never negative (an append of a record with a
    /// negative one is [`Error::InvalidArgument`](crate::Error::InvalidArgument), as Kafka's
    /// `ProducerRecord` refuses it); `None` takes the clock's time at append.
    pub timestamp: Option<i64>,
}

impl Record {
    /// A record with this value and no key.
    pub fn new(value: impl Into<Bytes>) -> Self {
        Record {
            value: Some(value.into()),
            ..Record::default()
        }
    }

    /// A tombstone (no value) for this key.
    pub fn tombstone(key: impl Into<Bytes>) -> Self {
        Record {
            key: Some(key.into()),
            ..Record::default()
        }
    }

    /// Sets the key.
    #[must_use]
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the timestamp (milliseconds since the epoch).
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

/// A record as stored in a partition: its offset and timestamp, key, value and headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    /// The record's offset in its partition.
    pub offset: i64,
    /// The record's timestamp (milliseconds since the epoch).
    pub timestamp: i64,
    /// Whether the timestamp is the producer's or the log's.
    pub timestamp_type: TimestampType,
    /// The key, if any.
    pub key: Option<Bytes>,
    /// The value; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<Header>,
}
