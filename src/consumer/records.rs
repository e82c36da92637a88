//! What `poll` returns: [`ConsumerRecord`]s grouped by partition in [`ConsumerRecords`].
//!
//! A `ConsumerRecords` keeps, per partition, the part of a read that `poll` handed out (the
//! read's shared buffer and a record count) and builds each [`ConsumerRecord`] as it is
//! iterated, rather than building, storing and later dropping them all inside `poll`: a
//! record then costs what iterating the read directly costs. Key, value and header values
//! are [`Bytes`] slices of the read's buffer (no copy per record), and the topic name is
//! interned (`topic_names`), so a record carries it without a reference count.
//!
//! [`ConsumerRecords::views`] hands the same records out borrowed ([`ConsumerRecordRef`]): key,
//! value and headers as slices of the read's buffer, so a loop that looks at each record and
//! moves on pays no reference count per record (the owned record's `Bytes` clone and drop are
//! two atomic operations, most of what a record costs beyond reading the bytes; figures in
//! docs/ARCHITECTURE.md, "#20: consumer poll and latency").

use std::fmt;

use crate::codec::RecordHeaders;
use crate::headers::Headers;
use crate::log::{self, RecordViews, Records, RecordsIntoIter};
use crate::types::{Bytes, TimestampType, TopicPartition};

/// A record as a consumer receives it. Kafka's `ConsumerRecord`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// The topic. Topic names are interned: the process keeps one copy of each name a
    /// consumer was assigned (at most 249 bytes each) for as long as it runs, so that a
    /// record carries its topic without a reference count (an `Arc<str>` per record cost
    /// `poll` about a fifth of its throughput).
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
    pub key: Option<Bytes>,
    /// The value; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// Headers, in order: one pointer wide, nothing allocated when there are none (most
    /// records); reads as a `&[Header]`.
    pub headers: Headers,
}

impl ConsumerRecord {
    /// The record's topic and partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic, self.partition)
    }
}

/// The records of one partition that one `poll` handed out.
#[derive(Clone, Debug)]
pub(crate) struct PartitionRecords {
    tp: TopicPartition,
    topic: &'static str,
    /// The read, starting at the first record handed out.
    records: Records,
    /// How many of its records were handed out.
    count: usize,
}

impl PartitionRecords {
    pub(crate) fn new(
        tp: TopicPartition,
        topic: &'static str,
        records: Records,
        count: usize,
    ) -> Self {
        PartitionRecords {
            tp,
            topic,
            records,
            count,
        }
    }
}

/// The records one `poll` returned, grouped by partition, each partition's in offset order.
/// Kafka's `ConsumerRecords`.
///
/// Records are built as they are iterated, from the buffer of the read they came from, which
/// the `ConsumerRecords` keeps alive (a clone is cheap: it shares that buffer). Iterating
/// twice builds them twice, the same records both times.
#[derive(Clone, Debug, Default)]
pub struct ConsumerRecords {
    parts: Vec<PartitionRecords>,
    count: usize,
}

impl ConsumerRecords {
    pub(crate) fn new(parts: Vec<PartitionRecords>) -> Self {
        let count = parts.iter().map(|p| p.count).sum();
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
        self.parts.iter().map(|p| p.tp.clone()).collect()
    }

    /// The records of one partition, in offset order (empty if none); built on each call.
    pub fn records(&self, tp: &TopicPartition) -> Vec<ConsumerRecord> {
        self.views()
            .filter(|r| r.partition == tp.partition && r.topic == tp.topic)
            .map(|r| r.to_record())
            .collect()
    }

    /// Every record borrowed, partition by partition: as [`ConsumerRecords::iter`], with key,
    /// value and headers as slices of the read's buffer instead of [`Bytes`] (no reference
    /// count per record: the fastest way to look at each record and move on; take an owned
    /// [`ConsumerRecord`] with [`ConsumerRecordRef::to_record`] where one must outlive the
    /// `ConsumerRecords`).
    ///
    /// ```
    /// # use embroker::{Broker, ConsumerConfig, OffsetReset, Record, TopicConfig, TopicPartition};
    /// # use std::time::Duration;
    /// let broker = Broker::temporary()?;
    /// broker.create_topic("events", TopicConfig::default())?;
    /// broker.topic("events")?.partition(0)?.append(&[Record::new("hello").key("k")])?;
    /// let mut consumer = broker.consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest))?;
    /// consumer.assign(&[TopicPartition::new("events", 0)])?;
    /// let records = consumer.poll(Duration::from_secs(1))?;
    /// for r in records.views() {
    ///     assert_eq!((r.key, r.value), (Some(&b"k"[..]), Some(&b"hello"[..])));
    /// }
    /// # Ok::<(), embroker::Error>(())
    /// ```
    pub fn views(&self) -> ConsumerRecordViews<'_> {
        ConsumerRecordViews {
            parts: self.parts.iter(),
            current: None,
            left: self.count,
        }
    }

    /// Every record, partition by partition.
    pub fn iter(&self) -> ConsumerRecordsIter<'_> {
        ConsumerRecordsIter {
            parts: self.parts.iter(),
            current: None,
            left: self.count,
        }
    }
}

/// A record borrowed from the [`ConsumerRecords`] it came in, from
/// [`ConsumerRecords::views`]: the fields of a [`ConsumerRecord`], with key, value and headers
/// as slices of the read's buffer.
#[derive(Clone)]
pub struct ConsumerRecordRef<'a> {
    /// The topic (interned, as [`ConsumerRecord::topic`]).
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
    pub key: Option<&'a [u8]>,
    /// The value; `None` is a tombstone.
    pub value: Option<&'a [u8]>,
    /// Headers, in order, decoded as iterated (key and nullable value).
    pub headers: RecordHeaders<'a>,
    /// The read the slices borrow from (to share its buffer in `to_record`).
    read: &'a Records,
}

// By hand: the record's fields, not the whole read it borrows from.
impl fmt::Debug for ConsumerRecordRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerRecordRef")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("offset", &self.offset)
            .field("timestamp", &self.timestamp)
            .field("timestamp_type", &self.timestamp_type)
            .field("key", &self.key)
            .field("value", &self.value)
            .field("headers", &self.headers)
            .finish()
    }
}

impl ConsumerRecordRef<'_> {
    /// The record's topic and partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic, self.partition)
    }

    /// The owned record: key, value and header values share the read's buffer (no copy).
    pub fn to_record(&self) -> ConsumerRecord {
        ConsumerRecord {
            topic: self.topic,
            partition: self.partition,
            offset: self.offset,
            timestamp: self.timestamp,
            timestamp_type: self.timestamp_type,
            key: self.key.map(|s| self.read.share(s)),
            value: self.value.map(|s| self.read.share(s)),
            headers: self.read.header_list(self.headers.clone()),
        }
    }
}

/// Iterator over the records of a [`ConsumerRecords`], borrowed; from
/// [`ConsumerRecords::views`].
pub struct ConsumerRecordViews<'a> {
    parts: std::slice::Iter<'a, PartitionRecords>,
    current: Option<PartitionViews<'a>>,
    /// Records not yet yielded.
    left: usize,
}

/// The borrowed records of one partition.
struct PartitionViews<'a> {
    part: &'a PartitionRecords,
    views: RecordViews<'a>,
    left: usize,
}

impl fmt::Debug for ConsumerRecordViews<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerRecordViews")
            .field("left", &self.left)
            .finish_non_exhaustive()
    }
}

impl<'a> Iterator for ConsumerRecordViews<'a> {
    type Item = ConsumerRecordRef<'a>;

    #[inline]
    fn next(&mut self) -> Option<ConsumerRecordRef<'a>> {
        loop {
            if let Some(p) = self.current.as_mut().filter(|p| p.left > 0) {
                if let Some(r) = p.views.next() {
                    p.left -= 1;
                    self.left -= 1;
                    return Some(ConsumerRecordRef {
                        topic: p.part.topic,
                        partition: p.part.tp.partition,
                        offset: r.offset,
                        timestamp: r.timestamp,
                        timestamp_type: r.timestamp_type,
                        key: r.key,
                        value: r.value,
                        headers: r.headers,
                        read: &p.part.records,
                    });
                }
            }
            let part = self.parts.next()?;
            self.current = Some(PartitionViews {
                part,
                views: part.records.views(),
                left: part.count,
            });
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for ConsumerRecordViews<'_> {}

/// Iterator over the records of a [`ConsumerRecords`], from [`ConsumerRecords::iter`]; each
/// record is built as it is reached.
pub struct ConsumerRecordsIter<'a> {
    parts: std::slice::Iter<'a, PartitionRecords>,
    /// The partition being iterated, its records as borrowed views (the small view iterator
    /// stays in the caller's registers) and how many of them are left to yield.
    current: Option<(&'a PartitionRecords, RecordViews<'a>, usize)>,
    /// Records not yet yielded.
    left: usize,
}

impl fmt::Debug for ConsumerRecordsIter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerRecordsIter")
            .field("left", &self.left)
            .finish_non_exhaustive()
    }
}

impl Iterator for ConsumerRecordsIter<'_> {
    type Item = ConsumerRecord;

    /// Each record is built here, at one place, from its view: key, value and header values
    /// shared from the read's buffer.
    #[inline]
    fn next(&mut self) -> Option<ConsumerRecord> {
        loop {
            if let Some((part, views, left)) = self.current.as_mut().filter(|c| c.2 > 0) {
                if let Some(r) = views.next() {
                    *left -= 1;
                    self.left -= 1;
                    let read = &part.records;
                    return Some(ConsumerRecord {
                        topic: part.topic,
                        partition: part.tp.partition,
                        offset: r.offset,
                        timestamp: r.timestamp,
                        timestamp_type: r.timestamp_type,
                        key: r.key.map(|s| read.share(s)),
                        value: r.value.map(|s| read.share(s)),
                        headers: read.header_list(r.headers),
                    });
                }
            }
            let part = self.parts.next()?;
            self.current = Some((part, part.records.views(), part.count));
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for ConsumerRecordsIter<'_> {}

/// Owning iterator over the records, from `ConsumerRecords::into_iter`: each record is
/// decoded from the read's buffer as it is reached, as [`ConsumerRecords::iter`] does.
#[derive(Debug)]
pub struct ConsumerRecordsIntoIter {
    parts: std::vec::IntoIter<PartitionRecords>,
    current: Option<PartitionIntoIter>,
    /// Records not yet yielded.
    left: usize,
}

/// The records of one partition, owned, built as iterated.
#[derive(Debug)]
struct PartitionIntoIter {
    topic: &'static str,
    partition: i32,
    records: RecordsIntoIter,
    left: usize,
}

impl PartitionIntoIter {
    #[inline]
    fn next(&mut self) -> Option<ConsumerRecord> {
        if self.left == 0 {
            return None;
        }
        let (topic, partition) = (self.topic, self.partition);
        // Built in place from the record's view, not through a `StoredRecord`.
        let record = self.records.next_with(|read, h, offset, view| {
            let (timestamp, timestamp_type) = log::timestamp(h, &view);
            ConsumerRecord {
                topic,
                partition,
                offset,
                timestamp,
                timestamp_type,
                key: view.key.map(|s| read.share(s)),
                value: view.value.map(|s| read.share(s)),
                headers: read.header_list(view.headers),
            }
        })?;
        self.left -= 1;
        Some(record)
    }
}

impl Iterator for ConsumerRecordsIntoIter {
    type Item = ConsumerRecord;

    #[inline]
    fn next(&mut self) -> Option<ConsumerRecord> {
        loop {
            if let Some(r) = self.current.as_mut().and_then(PartitionIntoIter::next) {
                self.left -= 1;
                return Some(r);
            }
            // A partition's records are decoded one at a time once the iteration reaches it.
            let part = self.parts.next()?;
            self.current = Some(PartitionIntoIter {
                topic: part.topic,
                partition: part.tp.partition,
                records: part.records.into_iter(),
                left: part.count,
            });
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for ConsumerRecordsIntoIter {}

impl<'a> IntoIterator for &'a ConsumerRecords {
    type Item = ConsumerRecord;
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
            current: None,
            left: self.count,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::codec::{self, BatchBuilder};
    use crate::topic_names::intern_topic;
    use crate::types::Header;

    /// Two batches of 5 records (offsets 0..10), read from `from`.
    fn read(from: i64) -> Records {
        let mut bytes = Vec::new();
        for base in [0i64, 5] {
            let mut b = BatchBuilder::new();
            for i in 0..5 {
                let v = format!("v{}", base + i);
                // Odd offsets carry a header (one with a null value).
                let headers = match (base + i) % 2 {
                    1 => vec![Header::new("h", v.clone()), Header::null("n")],
                    _ => Vec::new(),
                };
                b.push(1_000 + i, Some(b"k"), Some(v.as_bytes()), &headers)
                    .unwrap();
            }
            let mut batch = b.finish();
            codec::set_base_offset(&mut batch, base);
            bytes.extend_from_slice(&batch);
        }
        Records::new(Bytes::from(bytes), from, Arc::from("t"), 3)
    }

    fn offsets(records: impl IntoIterator<Item = ConsumerRecord>) -> Vec<i64> {
        records.into_iter().map(|r| r.offset).collect()
    }

    /// The owned record's size docs/ARCHITECTURE.md names ("Thirteenth session: owned
    /// records"): one word of headers, not a `Vec`'s three.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn an_owned_record_is_112_bytes() {
        assert_eq!(std::mem::size_of::<ConsumerRecord>(), 112);
    }

    #[test]
    fn every_way_of_reading_yields_the_handed_out_part() {
        let tp = TopicPartition::new("t", 3);
        let topic = intern_topic("t");
        // Offsets 2..9 of the read, in two parts as two polls would hand them out.
        let (first, rest) = read(2).skip(4);
        assert_eq!(first, 4);
        let records = ConsumerRecords::new(vec![
            PartitionRecords::new(tp.clone(), topic, read(2), 4),
            PartitionRecords::new(tp.clone(), topic, rest, 3),
        ]);
        let expected: Vec<i64> = (2..9).collect();
        assert_eq!(records.count(), 7);
        assert_eq!(records.iter().len(), 7);
        assert_eq!(offsets(&records), expected);
        // Records are built anew on each iteration, the same each time.
        assert_eq!(offsets(records.iter()), expected);
        assert_eq!(offsets(records.records(&tp)), expected);
        assert!(records.records(&TopicPartition::new("t", 0)).is_empty());
        let built: Vec<ConsumerRecord> = records.clone().into_iter().collect();
        assert_eq!(built, records.iter().collect::<Vec<_>>());
        // Borrowed views are the same records.
        assert_eq!(records.views().len(), 7);
        let shown = format!("{:?}", records.views().next().unwrap());
        assert!(
            shown.contains("offset: 2") && !shown.contains("read"),
            "{shown}"
        );
        let viewed: Vec<ConsumerRecord> = records.views().map(|r| r.to_record()).collect();
        assert_eq!(viewed, built);
        for (v, r) in records.views().zip(&built) {
            assert_eq!((v.offset, v.timestamp), (r.offset, r.timestamp));
            assert_eq!((v.key, v.value), (r.key.as_deref(), r.value.as_deref()));
            assert_eq!(v.topic_partition(), tp);
            let headers: Vec<(String, Option<Vec<u8>>)> = v
                .headers
                .clone()
                .map(|(k, v)| (k.to_string(), v.map(<[u8]>::to_vec)))
                .collect();
            let expected: Vec<(String, Option<Vec<u8>>)> = r
                .headers
                .iter()
                .map(|h| (h.key.clone(), h.value.as_deref().map(<[u8]>::to_vec)))
                .collect();
            assert_eq!(headers, expected);
            assert_eq!(headers.len(), if v.offset % 2 == 1 { 2 } else { 0 });
        }
        let first = &built[0];
        assert_eq!((first.topic, first.partition), ("t", 3));
        assert_eq!(first.value.as_deref(), Some(&b"v2"[..]));
        assert_eq!(first.timestamp, 1_002);
    }
}
