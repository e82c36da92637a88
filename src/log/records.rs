//! The result of a read: whole checked batches in one shared buffer, iterated as records.

use std::sync::Arc;

use bytes::Bytes;

use crate::codec::RecordHeaders;
use crate::codec::{self, Batch};
use crate::types::{Header, StoredRecord, TimestampType};

/// Records read from a partition: whole batches, already checked (CRC and framing), sharing one
/// buffer. Iterating yields [`StoredRecord`]s whose key and value share that buffer too.
///
/// Records below the offset the read started at (in the first batch) are skipped, as Kafka's
/// consumer skips them.
#[derive(Clone, Debug, Default)]
pub struct Records {
    bytes: Bytes,
    from_offset: i64,
    next_offset: i64,
    topic: Option<Arc<str>>,
    partition: i32,
}

impl Records {
    pub(crate) fn new(bytes: Bytes, from_offset: i64, topic: Arc<str>, partition: i32) -> Records {
        let mut next_offset = from_offset;
        for batch in (BatchIter { bytes: &bytes }) {
            next_offset = batch.header.next_offset();
        }
        Records {
            bytes,
            from_offset,
            next_offset,
            topic: Some(topic),
            partition,
        }
    }

    pub(crate) fn empty(from_offset: i64, topic: Arc<str>, partition: i32) -> Records {
        Records {
            bytes: Bytes::new(),
            from_offset,
            next_offset: from_offset,
            topic: Some(topic),
            partition,
        }
    }

    /// True when the read found nothing.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Bytes of the batches read.
    pub fn size_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// The offset to read next: one past the last batch read (or the read's start when empty).
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// The topic read from.
    pub fn topic(&self) -> &str {
        self.topic.as_deref().unwrap_or("")
    }

    /// The partition read from.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The raw batches (for inspection tools).
    pub fn batches(&self) -> impl Iterator<Item = Batch<'_>> {
        BatchIter { bytes: &self.bytes }
    }

    /// The records, in offset order.
    pub fn iter(&self) -> RecordsIter<'_> {
        RecordsIter {
            records: self,
            batch: None,
            rest: &self.bytes,
        }
    }

    /// The records as borrowed views: no reference counting per record, for callers that
    /// look at each record and move on (the fastest way to scan a log).
    pub fn views(&self) -> RecordViews<'_> {
        RecordViews {
            from_offset: self.from_offset,
            batch: None,
            rest: &self.bytes,
        }
    }

    /// Number of records (walks the batches).
    pub fn len(&self) -> usize {
        self.iter().count()
    }
}

impl<'a> IntoIterator for &'a Records {
    type Item = StoredRecord;
    type IntoIter = RecordsIter<'a>;

    fn into_iter(self) -> RecordsIter<'a> {
        self.iter()
    }
}

/// Iterates the batches of a checked buffer.
struct BatchIter<'a> {
    bytes: &'a [u8],
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Batch<'a>;

    fn next(&mut self) -> Option<Batch<'a>> {
        if self.bytes.is_empty() {
            return None;
        }
        let batch = codec::decode_batch_unchecked(self.bytes)?;
        self.bytes = &self.bytes[batch.header.total_bytes()..];
        Some(batch)
    }
}

/// Iterator over the records of [`Records`].
pub struct RecordsIter<'a> {
    records: &'a Records,
    batch: Option<(Batch<'a>, codec::RecordIter<'a>)>,
    rest: &'a [u8],
}

impl Iterator for RecordsIter<'_> {
    type Item = StoredRecord;

    fn next(&mut self) -> Option<StoredRecord> {
        loop {
            if let Some((batch, records)) = &mut self.batch {
                for view in records.by_ref() {
                    let h = &batch.header;
                    let offset = h.base_offset + i64::from(view.offset_delta);
                    if offset < self.records.from_offset {
                        continue;
                    }
                    let timestamp_type = h.timestamp_type();
                    let timestamp = match timestamp_type {
                        TimestampType::LogAppendTime => h.max_timestamp,
                        TimestampType::CreateTime => h.base_timestamp + view.timestamp_delta,
                    };
                    let share = |s: &[u8]| self.records.bytes.slice_ref(s);
                    return Some(StoredRecord {
                        offset,
                        timestamp,
                        timestamp_type,
                        key: view.key.map(share),
                        value: view.value.map(share),
                        headers: view
                            .headers
                            .map(|(k, v)| Header {
                                key: k.to_string(),
                                value: share(v),
                            })
                            .collect(),
                    });
                }
            }
            let batch = BatchIter { bytes: self.rest }.next()?;
            self.rest = &self.rest[batch.header.total_bytes()..];
            let records = batch.records();
            self.batch = Some((batch, records));
        }
    }
}

/// A record borrowed from a [`Records`] buffer; see [`Records::views`].
#[derive(Clone, Debug)]
pub struct RecordRef<'a> {
    /// The record's offset.
    pub offset: i64,
    /// Its timestamp (milliseconds since the epoch).
    pub timestamp: i64,
    /// Whose timestamp it is.
    pub timestamp_type: TimestampType,
    /// The key, if any.
    pub key: Option<&'a [u8]>,
    /// The value; `None` is a tombstone.
    pub value: Option<&'a [u8]>,
    /// The headers, decoded as iterated.
    pub headers: RecordHeaders<'a>,
}

/// Iterator of [`RecordRef`]s.
pub struct RecordViews<'a> {
    from_offset: i64,
    batch: Option<(Batch<'a>, codec::RecordIter<'a>)>,
    rest: &'a [u8],
}

impl<'a> Iterator for RecordViews<'a> {
    type Item = RecordRef<'a>;

    fn next(&mut self) -> Option<RecordRef<'a>> {
        loop {
            if let Some((batch, records)) = &mut self.batch {
                let h = &batch.header;
                for view in records.by_ref() {
                    let offset = h.base_offset + i64::from(view.offset_delta);
                    if offset < self.from_offset {
                        continue;
                    }
                    let timestamp_type = h.timestamp_type();
                    let timestamp = match timestamp_type {
                        TimestampType::LogAppendTime => h.max_timestamp,
                        TimestampType::CreateTime => h.base_timestamp + view.timestamp_delta,
                    };
                    return Some(RecordRef {
                        offset,
                        timestamp,
                        timestamp_type,
                        key: view.key,
                        value: view.value,
                        headers: view.headers,
                    });
                }
            }
            let batch = BatchIter { bytes: self.rest }.next()?;
            self.rest = &self.rest[batch.header.total_bytes()..];
            let records = batch.records();
            self.batch = Some((batch, records));
        }
    }
}
