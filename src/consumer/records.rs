//! What `poll` returns: [`ConsumerRecord`]s grouped by partition in [`ConsumerRecords`].
//!
//! Key, value and header values are [`Bytes`] slices of the buffer the fetch read (no copy per
//! record); the topic name is one shared `Arc<str>` per partition.

use std::sync::Arc;

use crate::types::{Bytes, Header, TimestampType, TopicPartition};

/// A record as a consumer receives it. Kafka's `ConsumerRecord`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
    /// The record's offset in its partition.
    pub offset: i64,
    /// The record's timestamp (ms since the epoch).
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

impl ConsumerRecord {
    /// The record's topic and partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(&*self.topic, self.partition)
    }
}

/// The records one `poll` returned, grouped by partition, each partition's in offset order.
/// Kafka's `ConsumerRecords`.
#[derive(Clone, Debug, Default)]
pub struct ConsumerRecords {
    parts: Vec<(TopicPartition, Vec<ConsumerRecord>)>,
    count: usize,
}

impl ConsumerRecords {
    pub(crate) fn new(parts: Vec<(TopicPartition, Vec<ConsumerRecord>)>) -> Self {
        let count = parts.iter().map(|(_, r)| r.len()).sum();
        ConsumerRecords { parts, count }
    }

    /// Number of records.
    pub fn count(&self) -> usize {
        self.count
    }

    /// True when `poll` returned nothing.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The partitions that have records here, in the order `poll` visited them.
    pub fn partitions(&self) -> Vec<TopicPartition> {
        self.parts.iter().map(|(tp, _)| tp.clone()).collect()
    }

    /// The records of one partition (empty if none).
    pub fn records(&self, tp: &TopicPartition) -> &[ConsumerRecord] {
        self.parts
            .iter()
            .find(|(t, _)| t == tp)
            .map_or(&[], |(_, r)| r.as_slice())
    }

    /// Every record, partition by partition.
    pub fn iter(&self) -> ConsumerRecordsIter<'_> {
        ConsumerRecordsIter {
            parts: self.parts.iter(),
            current: [].iter(),
        }
    }
}

/// Iterator over `&ConsumerRecord`, from [`ConsumerRecords::iter`].
#[derive(Debug)]
pub struct ConsumerRecordsIter<'a> {
    parts: std::slice::Iter<'a, (TopicPartition, Vec<ConsumerRecord>)>,
    current: std::slice::Iter<'a, ConsumerRecord>,
}

impl<'a> Iterator for ConsumerRecordsIter<'a> {
    type Item = &'a ConsumerRecord;

    fn next(&mut self) -> Option<&'a ConsumerRecord> {
        loop {
            if let Some(r) = self.current.next() {
                return Some(r);
            }
            self.current = self.parts.next()?.1.iter();
        }
    }
}

/// Owning iterator over the records, from `ConsumerRecords::into_iter`.
#[derive(Debug)]
pub struct ConsumerRecordsIntoIter {
    parts: std::vec::IntoIter<(TopicPartition, Vec<ConsumerRecord>)>,
    current: std::vec::IntoIter<ConsumerRecord>,
}

impl Iterator for ConsumerRecordsIntoIter {
    type Item = ConsumerRecord;

    fn next(&mut self) -> Option<ConsumerRecord> {
        loop {
            if let Some(r) = self.current.next() {
                return Some(r);
            }
            self.current = self.parts.next()?.1.into_iter();
        }
    }
}

impl<'a> IntoIterator for &'a ConsumerRecords {
    type Item = &'a ConsumerRecord;
    type IntoIter = ConsumerRecordsIter<'a>;

    fn into_iter(self) -> ConsumerRecordsIter<'a> {
        self.iter()
    }
}

impl IntoIterator for ConsumerRecords {
    type Item = ConsumerRecord;
    type IntoIter = ConsumerRecordsIntoIter;

    fn into_iter(self) -> ConsumerRecordsIntoIter {
        ConsumerRecordsIntoIter {
            parts: self.parts.into_iter(),
            current: Vec::new().into_iter(),
        }
    }
}
