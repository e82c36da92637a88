//! The result of a read: whole checked batches in one shared buffer, iterated as records.

use std::sync::Arc;

use bytes::Bytes;

use crate::codec::{self, Batch};
use crate::codec::{BatchHeader, RecordHeaders};
use crate::headers::Headers;
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
        Records::gap(from_offset, from_offset, topic, partition)
    }

    /// No records from `from_offset` up to `next_offset`: compaction removed them all.
    pub(crate) fn gap(
        from_offset: i64,
        next_offset: i64,
        topic: Arc<str>,
        partition: i32,
    ) -> Records {
        Records {
            bytes: Bytes::new(),
            from_offset,
            next_offset: next_offset.max(from_offset),
            topic: Some(topic),
            partition,
        }
    }

    /// The batches as read, for the wire protocol's Fetch.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// True when the read found nothing.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Bytes of the batches read.
    pub fn size_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// The offset to read next: one past the last batch read. When the read found nothing, the
    /// read's start, or past the gap compaction left there.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// The offset the records start at: records below it in the first batch are passed
    /// over (after [`Records::skip`], one past the last record skipped).
    pub(crate) fn start_offset(&self) -> i64 {
        self.from_offset
    }

    /// The topic read from.
    pub fn topic(&self) -> &str {
        self.topic.as_deref().unwrap_or("")
    }

    /// The partition read from.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The batches read (for inspection tools), uncompressed: a batch stored compressed
    /// appears as its uncompressed equivalent, with the same header but for the codec bits,
    /// length and CRC (see [`crate::codec::inflate_batch`]).
    pub fn batches(&self) -> impl Iterator<Item = Batch<'_>> {
        BatchIter { bytes: &self.bytes }
    }

    /// The records, in offset order.
    pub fn iter(&self) -> RecordsIter<'_> {
        RecordsIter {
            records: self,
            views: self.views(),
        }
    }

    /// The records as borrowed views: no reference counting per record, for callers that
    /// look at each record and move on (the fastest way to scan a log).
    pub fn views(&self) -> RecordViews<'_> {
        RecordViews {
            from_offset: self.from_offset,
            base_offset: 0,
            base_timestamp: 0,
            log_append_time: None,
            records: codec::RecordIter::default(),
            rest: &self.bytes,
        }
    }

    /// The record `view` of the batch with header `h`, as an owned record sharing the buffer.
    #[inline]
    fn stored(&self, h: &BatchHeader, offset: i64, view: codec::RecordView<'_>) -> StoredRecord {
        let (timestamp, timestamp_type) = timestamp(h, &view);
        StoredRecord {
            offset,
            timestamp,
            timestamp_type,
            key: view.key.map(|s| self.share(s)),
            value: view.value.map(|s| self.share(s)),
            headers: self.headers(view.headers),
        }
    }

    /// `s`, a part of this read's buffer, as a `Bytes` sharing it.
    #[inline]
    pub(crate) fn share(&self, s: &[u8]) -> Bytes {
        // `Bytes::slice_ref` by hand: `slice` is generic, so it is inlined here, where
        // `slice_ref` is a call into the bytes crate on every record.
        let start = (s.as_ptr() as usize).wrapping_sub(self.bytes.as_ptr() as usize);
        self.bytes.slice(start..start.saturating_add(s.len()))
    }

    /// A record's headers, their values sharing this read's buffer.
    #[inline(always)]
    pub(crate) fn headers(&self, headers: RecordHeaders<'_>) -> Vec<Header> {
        // Most records have none: an empty `Vec` made in the caller's registers, not returned
        // through memory by a call (whose 8-byte stores a 16-byte load of the record then
        // cannot forward: the owned loop's hottest stall).
        if headers.is_empty() {
            return Vec::new();
        }
        self.collect_headers(headers)
    }

    /// A record's headers as a consumer's record holds them: no allocation, one null
    /// pointer, when there are none.
    #[inline(always)]
    pub(crate) fn header_list(&self, headers: RecordHeaders<'_>) -> Headers {
        if headers.is_empty() {
            return Headers::new();
        }
        Headers::from(self.collect_headers(headers))
    }

    /// [`Records::headers`] of a record that has some.
    #[inline(never)]
    fn collect_headers(&self, headers: RecordHeaders<'_>) -> Vec<Header> {
        headers
            .map(|(k, v)| Header {
                key: k.to_string(),
                value: v.map(|s| self.share(s)),
            })
            .collect()
    }

    /// Hands up to `n` records to `f`, in offset order, and returns how many it handed out and
    /// the records left: the same buffer, sliced from the batch holding the next record (a
    /// consumer hands out a read over several polls without copying or re-reading it).
    /// The consumer now uses [`Records::skip`] and builds records as iterated; `take` stays as
    /// the reference the tests check `skip` and the iterators against.
    #[cfg(test)]
    pub(crate) fn take(&self, n: usize, mut f: impl FnMut(StoredRecord)) -> (usize, Records) {
        let mut taken = 0;
        let mut position = 0;
        let mut from = self.from_offset;
        'batches: while position < self.bytes.len() && taken < n {
            let Some(batch) = codec::decode_batch_unchecked(&self.bytes[position..]) else {
                break;
            };
            let h = &batch.header;
            let mut records = batch.data_records();
            // In a batch without gaps the i-th record has offset delta i: jump over the records
            // an earlier `take` handed out by their length prefixes alone.
            if i64::from(h.record_count) == i64::from(h.last_offset_delta) + 1
                && from > h.base_offset
            {
                let skip = (from - h.base_offset).min(i64::from(h.record_count));
                records.skip_records(skip as usize);
            }
            for view in records {
                let offset = batch.header.base_offset + i64::from(view.offset_delta);
                if offset < from {
                    continue;
                }
                if taken == n {
                    // This batch still has records: the rest starts with it.
                    break 'batches;
                }
                f(self.stored(&batch.header, offset, view));
                taken += 1;
                from = offset + 1;
            }
            position += batch.header.total_bytes();
        }
        (taken, self.rest(position, from))
    }

    /// What is left of this read from byte `position` (a batch boundary), starting at `from`.
    fn rest(&self, position: usize, from: i64) -> Records {
        Records {
            bytes: self.bytes.slice(position..),
            from_offset: from,
            next_offset: self.next_offset,
            topic: self.topic.clone(),
            partition: self.partition,
        }
    }

    /// The records left after the first `n`, and how many were passed over (fewer than `n`
    /// when the read holds fewer): what [`Records::take`] returns, found from batch headers
    /// and record length prefixes alone. A consumer hands a read out in parts this way and
    /// builds each record only when it is iterated.
    pub(crate) fn skip(&self, n: usize) -> (usize, Records) {
        let mut skipped = 0;
        let mut position = 0;
        let mut from = self.from_offset;
        'batches: while position < self.bytes.len() && skipped < n {
            let Some(batch) = codec::decode_batch_unchecked(&self.bytes[position..]) else {
                break;
            };
            let h = &batch.header;
            if h.is_control() {
                // A control batch holds no record a reader sees.
            } else if i64::from(h.record_count) == i64::from(h.last_offset_delta) + 1 {
                // No gaps: the records at or after `from` are the offsets `from..next`.
                let first = from.max(h.base_offset);
                let left = usize::try_from(h.next_offset() - first).unwrap_or(0);
                if n - skipped < left {
                    from = first + (n - skipped) as i64;
                    skipped = n;
                    break;
                }
                skipped += left;
                from = from.max(h.next_offset());
            } else {
                for view in batch.data_records() {
                    let offset = h.base_offset + i64::from(view.offset_delta);
                    if offset < from {
                        continue;
                    }
                    if skipped == n {
                        break 'batches;
                    }
                    skipped += 1;
                    from = offset + 1;
                }
            }
            position += h.total_bytes();
        }
        (skipped, self.rest(position, from))
    }

    /// The read with only the batches `keep` accepts (a `read_committed` reader drops aborted
    /// transactions' batches this way). The next offset stays the read's, so a reader moves
    /// past what was dropped. Shares the buffer when every batch is kept; copies otherwise.
    pub(crate) fn retain_batches(&self, mut keep: impl FnMut(&Batch<'_>) -> bool) -> Records {
        let mut kept: Vec<std::ops::Range<usize>> = Vec::new();
        let mut position = 0usize;
        let mut all = true;
        for batch in self.batches() {
            let len = batch.header.total_bytes();
            if keep(&batch) {
                match kept.last_mut() {
                    Some(r) if r.end == position => r.end += len,
                    _ => kept.push(position..position + len),
                }
            } else {
                all = false;
            }
            position += len;
        }
        if all {
            return self.clone();
        }
        let bytes = match kept.as_slice() {
            [] => Bytes::new(),
            [one] => self.bytes.slice(one.clone()),
            many => {
                let mut out = Vec::with_capacity(many.iter().map(|r| r.len()).sum());
                for r in many {
                    out.extend_from_slice(&self.bytes[r.clone()]);
                }
                Bytes::from(out)
            }
        };
        Records {
            bytes,
            from_offset: self.from_offset,
            next_offset: self.next_offset,
            topic: self.topic.clone(),
            partition: self.partition,
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

/// A record's timestamp and its type, from its batch's header.
#[inline]
pub(crate) fn timestamp(h: &BatchHeader, view: &codec::RecordView<'_>) -> (i64, TimestampType) {
    let timestamp_type = h.timestamp_type();
    let timestamp = match timestamp_type {
        TimestampType::LogAppendTime => h.max_timestamp,
        TimestampType::CreateTime => h.base_timestamp + view.timestamp_delta,
    };
    (timestamp, timestamp_type)
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

/// Iterator over the records of [`Records`]: the borrowed views of [`Records::views`], each
/// made an owned record sharing the read's buffer (the small view iterator stays in the
/// caller's registers; see [`RecordViews`]).
pub struct RecordsIter<'a> {
    records: &'a Records,
    views: RecordViews<'a>,
}

impl Iterator for RecordsIter<'_> {
    type Item = StoredRecord;

    #[inline]
    fn next(&mut self) -> Option<StoredRecord> {
        let r = self.views.next()?;
        Some(StoredRecord {
            offset: r.offset,
            timestamp: r.timestamp,
            timestamp_type: r.timestamp_type,
            key: r.key.map(|s| self.records.share(s)),
            value: r.value.map(|s| self.records.share(s)),
            headers: self.records.headers(r.headers),
        })
    }
}

/// Owning iterator over the records of [`Records`], from `Records::into_iter`: decodes one
/// record at a time from the shared buffer it keeps, as [`RecordsIter`] does from a borrowed
/// one. It holds byte positions instead of borrowed slices, so it can be stored (a consumer's
/// record stream holds one).
#[derive(Clone, Debug)]
pub struct RecordsIntoIter {
    records: Records,
    /// The header of the batch being iterated (meaningful while `remaining > 0`).
    header: BatchHeader,
    /// Byte position of the batch's next record in `records.bytes`.
    position: usize,
    /// End of the batch being iterated in `records.bytes`.
    batch_end: usize,
    /// Records of the batch not yet decoded.
    remaining: usize,
}

impl RecordsIntoIter {
    /// Moves to the next batch; false at the end of the buffer.
    #[cold]
    fn next_batch(&mut self) -> bool {
        let Some(batch) = self
            .records
            .bytes
            .get(self.batch_end..)
            .and_then(codec::decode_batch_unchecked)
        else {
            return false;
        };
        let start = self.batch_end;
        let mut records = batch.data_records();
        let h = batch.header;
        let from = self.records.from_offset;
        // Pass over the records before the start by their length prefixes, as `iter` does.
        if i64::from(h.record_count) == i64::from(h.last_offset_delta) + 1 && from > h.base_offset {
            let skip = (from - h.base_offset).min(i64::from(h.record_count));
            records.skip_records(skip as usize);
        }
        self.batch_end = start + h.total_bytes();
        self.position = self.batch_end - records.bytes.len();
        self.remaining = records.remaining;
        self.header = h;
        true
    }
}

impl RecordsIntoIter {
    /// The next record, built by `make` from the read, its batch's header, its offset and
    /// its view (a caller building its own record type builds it in place this way).
    #[inline]
    pub(crate) fn next_with<T>(
        &mut self,
        make: impl FnOnce(&Records, &BatchHeader, i64, codec::RecordView<'_>) -> T,
    ) -> Option<T> {
        loop {
            while self.remaining > 0 {
                let bytes = self.records.bytes.get(self.position..self.batch_end)?;
                let mut records = codec::RecordIter {
                    bytes,
                    remaining: self.remaining,
                };
                let view = records.next();
                self.position = self.batch_end - records.bytes.len();
                self.remaining = records.remaining;
                let Some(view) = view else {
                    // Unreachable for a checked batch; end the batch rather than loop.
                    self.remaining = 0;
                    break;
                };
                let h = &self.header;
                let offset = h.base_offset + i64::from(view.offset_delta);
                if offset < self.records.from_offset {
                    continue;
                }
                return Some(make(&self.records, h, offset, view));
            }
            if !self.next_batch() {
                return None;
            }
        }
    }
}

impl Iterator for RecordsIntoIter {
    type Item = StoredRecord;

    #[inline]
    fn next(&mut self) -> Option<StoredRecord> {
        self.next_with(|records, h, offset, view| records.stored(h, offset, view))
    }
}

impl IntoIterator for Records {
    type Item = StoredRecord;
    type IntoIter = RecordsIntoIter;

    fn into_iter(self) -> RecordsIntoIter {
        RecordsIntoIter {
            records: self,
            header: BatchHeader::default(),
            position: 0,
            batch_end: 0,
            remaining: 0,
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
///
/// Holds the few header fields each record needs rather than the batch: the per-record path is
/// inlined into the caller's loop, and a small iterator stays in registers there (this took
/// 100-byte reads from 27.7 to 18.7 ns a record; see docs/ARCHITECTURE.md).
pub struct RecordViews<'a> {
    from_offset: i64,
    /// The current batch's base offset and base timestamp.
    base_offset: i64,
    base_timestamp: i64,
    /// `Some(max_timestamp)` when the current batch's records take the log's append time.
    log_append_time: Option<i64>,
    records: codec::RecordIter<'a>,
    rest: &'a [u8],
}

impl<'a> RecordViews<'a> {
    /// Moves to the next batch; `None` at the end of the buffer. Out of line: once a batch,
    /// and it keeps the inlined `next` small.
    #[inline(never)]
    fn next_batch(&mut self) -> Option<()> {
        let batch = BatchIter { bytes: self.rest }.next()?;
        let h = &batch.header;
        self.rest = &self.rest[h.total_bytes()..];
        self.base_offset = h.base_offset;
        self.base_timestamp = h.base_timestamp;
        self.log_append_time =
            (h.timestamp_type() == TimestampType::LogAppendTime).then_some(h.max_timestamp);
        self.records = batch.data_records();
        // A read that starts inside a batch (a consumer handing out part of a read) passes
        // over the records before its start by their length prefixes, without decoding them.
        if i64::from(h.record_count) == i64::from(h.last_offset_delta) + 1
            && self.from_offset > h.base_offset
        {
            let skip = (self.from_offset - h.base_offset).min(i64::from(h.record_count));
            self.records.skip_records(skip as usize);
        }
        Some(())
    }
}

impl<'a> Iterator for RecordViews<'a> {
    type Item = RecordRef<'a>;

    // Always inlined: returned through memory from a call, the record's fields are stored
    // 8 bytes at a time and reloaded 16 at a time by the caller, which stalls every record.
    #[inline(always)]
    fn next(&mut self) -> Option<RecordRef<'a>> {
        loop {
            for view in self.records.by_ref() {
                let offset = self.base_offset + i64::from(view.offset_delta);
                if offset < self.from_offset {
                    continue;
                }
                let (timestamp, timestamp_type) = match self.log_append_time {
                    Some(t) => (t, TimestampType::LogAppendTime),
                    None => (
                        self.base_timestamp + view.timestamp_delta,
                        TimestampType::CreateTime,
                    ),
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
            self.next_batch()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Batches of `batch_sizes` records back to back; a size of 0 is a control batch (a
    /// transaction marker, one offset, no record a reader sees).
    fn records(batch_sizes: &[usize], from_skip: usize) -> Records {
        let mut bytes = Vec::new();
        let mut base = 0i64;
        for &n in batch_sizes {
            let mut batch = if n == 0 {
                codec::EndTransactionMarker {
                    kind: codec::ControlRecordType::Commit,
                    coordinator_epoch: 0,
                }
                .encode_batch(codec::ProducerFields::NONE, 1_000)
                .unwrap()
            } else {
                let mut b = codec::BatchBuilder::new();
                for i in 0..n {
                    let v = format!("v{}", base + i as i64);
                    b.push(1_000 + i as i64, Some(b"k"), Some(v.as_bytes()), &[])
                        .unwrap();
                }
                b.finish()
            };
            codec::set_base_offset(&mut batch, base);
            bytes.extend_from_slice(&batch);
            base += n.max(1) as i64;
        }
        Records::new(Bytes::from(bytes), from_skip as i64, Arc::from("t"), 0)
    }

    /// The offsets a reader sees in `records(batch_sizes, from)`: control batches' are not.
    fn visible(batch_sizes: &[usize], from: usize) -> Vec<i64> {
        let mut out = Vec::new();
        let mut base = 0i64;
        for &n in batch_sizes {
            out.extend((base..base + n as i64).filter(|o| *o >= from as i64));
            base += n.max(1) as i64;
        }
        out
    }

    proptest! {
        /// Handing a read out in takes of any sizes yields exactly what iterating it yields.
        #[test]
        fn takes_concatenate_to_the_iteration(
            batch_sizes in proptest::collection::vec(0usize..30, 1..6),
            from_skip in 0usize..10,
            takes in proptest::collection::vec(1usize..40, 1..20),
        ) {
            let all = records(&batch_sizes, from_skip);
            let expected: Vec<i64> = all.iter().map(|r| r.offset).collect();
            prop_assert_eq!(&expected, &visible(&batch_sizes, from_skip));
            let viewed: Vec<i64> = all.views().map(|r| r.offset).collect();
            prop_assert_eq!(&viewed, &expected);
            let mut got = Vec::new();
            let mut rest = all.clone();
            for n in takes.iter().cycle().take(200) {
                if rest.is_empty() {
                    break;
                }
                let (taken, next) = rest.take(*n, |r| got.push(r.offset));
                prop_assert!(taken <= *n);
                rest = next;
            }
            prop_assert_eq!(got, expected);
        }

        /// Skipping parts of a read and iterating the rest yields what iterating it yields,
        /// from the same place `take` would leave it.
        #[test]
        fn skips_match_takes(
            batch_sizes in proptest::collection::vec(0usize..30, 1..6),
            from_skip in 0usize..10,
            steps in proptest::collection::vec(0usize..40, 1..20),
        ) {
            let all = records(&batch_sizes, from_skip);
            let expected: Vec<i64> = all.iter().map(|r| r.offset).collect();
            let mut rest = all.clone();
            let mut passed = 0;
            for n in &steps {
                let (skipped, skip_rest) = rest.skip(*n);
                let (taken, take_rest) = rest.take(*n, |_| {});
                prop_assert_eq!(skipped, taken);
                let after_skip: Vec<i64> = skip_rest.iter().map(|r| r.offset).collect();
                let after_take: Vec<i64> = take_rest.iter().map(|r| r.offset).collect();
                prop_assert_eq!(&after_skip, &after_take);
                passed += skipped;
                prop_assert_eq!(&after_skip[..], &expected[passed.min(expected.len())..]);
                rest = skip_rest;
            }
        }

        /// The owning iterator yields the same records as the borrowing one, from the start
        /// of a read and from any point a skip leaves it at.
        #[test]
        fn into_iter_matches_iter(
            batch_sizes in proptest::collection::vec(0usize..30, 1..6),
            from_skip in 0usize..10,
            skip in 0usize..60,
        ) {
            let all = records(&batch_sizes, from_skip);
            let (_, rest) = all.skip(skip);
            for read in [all, rest] {
                let borrowed: Vec<StoredRecord> = read.iter().collect();
                let owned: Vec<StoredRecord> = read.clone().into_iter().collect();
                prop_assert_eq!(owned, borrowed);
            }
        }
    }
}
