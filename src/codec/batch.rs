//! The record batch: a 61-byte header and varint-framed records. Big-endian throughout.
//!
//! ```text
//! off size field
//!   0    8 base_offset            i64   assigned by the log at append
//!   8    4 batch_length           i32   bytes after this field
//!  12    4 partition_leader_epoch i32   reserved, -1
//!  16    1 magic                  u8    1 (format v1)
//!  17    4 crc                    u32   CRC-32 (IEEE) of bytes 21..end
//!  21    2 attributes             i16   bit 3: LogAppendTime; bit 6: delete horizon set;
//!                                         others reserved, 0
//!  23    4 last_offset_delta      i32
//!  27    8 base_timestamp         i64   record timestamps are deltas from it (the
//!                                         delete horizon when bit 6 is set)
//!  35    8 max_timestamp          i64
//!  43    8 producer_id            i64   reserved, -1
//!  51    2 producer_epoch         i16   reserved, -1
//!  53    4 base_sequence          i32   reserved, -1
//!  57    4 record_count           i32
//!  61    … records
//! ```
//!
//! The CRC skips the base offset, length, epoch and magic, as Kafka's does, so the log can
//! stamp the base offset on a batch the producer encoded without recomputing the checksum.

use super::record::{self, RecordIter};
use super::DecodeError;
use crate::types::{Header, TimestampType};

/// Bytes of the batch header.
pub const HEADER_BYTES: usize = 61;
/// Bytes before `batch_length` counts: base offset and the length field itself.
pub const LENGTH_PREFIX_BYTES: usize = 12;
/// The format version this crate writes and reads.
pub const MAGIC: u8 = 1;

pub(crate) const CRC_START: usize = 21;
const ATTR_TIMESTAMP_TYPE: i16 = 1 << 3;
/// Kafka's KIP-534 bit: `base_timestamp` holds the time after which the log cleaner may remove
/// the batch's tombstones, set when the cleaner first rewrites a batch holding any.
pub(crate) const ATTR_DELETE_HORIZON: i16 = 1 << 6;
/// Attribute bits this version defines; a batch with any other bit set is rejected so that a
/// future version's batches are never misread.
const ATTR_KNOWN: i16 = ATTR_TIMESTAMP_TYPE | ATTR_DELETE_HORIZON;

const _: () = assert!(HEADER_BYTES == 61);
const _: () = assert!(CRC_START == 17 + 4);
const _: () = assert!(HEADER_BYTES > LENGTH_PREFIX_BYTES);

/// The decoded fixed header of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the length field.
    pub batch_length: i32,
    /// Reserved (-1).
    pub partition_leader_epoch: i32,
    /// Format version.
    pub magic: u8,
    /// The stored CRC.
    pub crc: u32,
    /// Attribute bits.
    pub attributes: i16,
    /// Last offset minus base offset.
    pub last_offset_delta: i32,
    /// The timestamp record deltas are relative to: the first record's when the batch was
    /// produced, or the delete horizon once the log cleaner set one (attribute bit 6).
    pub base_timestamp: i64,
    /// Largest record timestamp (the append time under LogAppendTime).
    pub max_timestamp: i64,
    /// Reserved (-1).
    pub producer_id: i64,
    /// Reserved (-1).
    pub producer_epoch: i16,
    /// Reserved (-1).
    pub base_sequence: i32,
    /// Number of records.
    pub record_count: i32,
}

impl BatchHeader {
    /// Bytes the whole batch takes.
    pub fn total_bytes(&self) -> usize {
        LENGTH_PREFIX_BYTES + self.batch_length as usize
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// The offset after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// When the log cleaner may remove this batch's tombstones (Kafka's KIP-534 delete
    /// horizon), if a cleaning has set one.
    pub fn delete_horizon(&self) -> Option<i64> {
        (self.attributes & ATTR_DELETE_HORIZON != 0).then_some(self.base_timestamp)
    }

    /// Whose timestamps the batch carries.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & ATTR_TIMESTAMP_TYPE != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

/// Decodes the fixed header at the front of `buf` and checks what can be checked without the
/// body: the length is large enough, the magic is ours, counts are sane. The CRC is not checked.
///
/// Returns [`DecodeError::Incomplete`] when `buf` is shorter than the header.
pub fn peek_header(buf: &[u8]) -> Result<BatchHeader, DecodeError> {
    if buf.len() < HEADER_BYTES {
        return Err(DecodeError::Incomplete {
            needed: HEADER_BYTES,
            available: buf.len(),
        });
    }
    let h = BatchHeader {
        base_offset: be_i64(buf, 0),
        batch_length: be_i32(buf, 8),
        partition_leader_epoch: be_i32(buf, 12),
        magic: buf[16],
        crc: u32::from_be_bytes([buf[17], buf[18], buf[19], buf[20]]),
        attributes: be_i16(buf, 21),
        last_offset_delta: be_i32(buf, 23),
        base_timestamp: be_i64(buf, 27),
        max_timestamp: be_i64(buf, 35),
        producer_id: be_i64(buf, 43),
        producer_epoch: be_i16(buf, 51),
        base_sequence: be_i32(buf, 53),
        record_count: be_i32(buf, 57),
    };
    if (h.batch_length as i64) < (HEADER_BYTES - LENGTH_PREFIX_BYTES) as i64 {
        return Err(DecodeError::corrupt(
            8,
            format!("batch length {} is too small", h.batch_length),
        ));
    }
    if h.magic != MAGIC {
        return Err(DecodeError::corrupt(
            16,
            format!("unknown magic byte {}", h.magic),
        ));
    }
    if h.base_offset < 0 {
        return Err(DecodeError::corrupt(
            0,
            format!("negative base offset {}", h.base_offset),
        ));
    }
    if h.attributes & !ATTR_KNOWN != 0 {
        return Err(DecodeError::corrupt(
            21,
            format!("unknown attribute bits {:#x}", h.attributes),
        ));
    }
    if h.record_count < 1 {
        return Err(DecodeError::corrupt(
            57,
            format!("record count {}", h.record_count),
        ));
    }
    if h.last_offset_delta < h.record_count - 1 {
        return Err(DecodeError::corrupt(
            23,
            format!(
                "last offset delta {} is less than record count {} minus one",
                h.last_offset_delta, h.record_count
            ),
        ));
    }
    // The offset after the batch (`next_offset`, what the log and readers move to) must exist
    // too: a last offset of i64::MAX would overflow there. Found by the decode_batch fuzz target.
    if h.base_offset
        .checked_add(i64::from(h.last_offset_delta))
        .and_then(|last| last.checked_add(1))
        .is_none()
    {
        return Err(DecodeError::corrupt(23, "last offset overflows"));
    }
    Ok(h)
}

/// A batch whose CRC holds and whose records parse, borrowing its bytes.
#[derive(Clone, Debug)]
pub struct Batch<'a> {
    /// The header.
    pub header: BatchHeader,
    /// The whole batch, header included.
    pub bytes: &'a [u8],
}

impl<'a> Batch<'a> {
    /// The records, in offset order.
    pub fn records(&self) -> RecordIter<'a> {
        RecordIter {
            bytes: &self.bytes[HEADER_BYTES..],
            remaining: self.header.record_count as usize,
        }
    }
}

/// Decodes the batch at the front of `buf` and checks its header and CRC, but not the framing
/// of its records. For bytes whose framing is already known good (written by
/// [`BatchBuilder`] in this process, or checked by [`decode_batch`] before): a batch whose CRC
/// holds has the bytes that were checked.
pub fn decode_batch_crc_only(buf: &[u8]) -> Result<Batch<'_>, DecodeError> {
    let header = peek_header(buf)?;
    let total = header.total_bytes();
    if buf.len() < total {
        return Err(DecodeError::Incomplete {
            needed: total,
            available: buf.len(),
        });
    }
    let bytes = &buf[..total];
    let actual = crc32fast::hash(&bytes[CRC_START..]);
    if actual != header.crc {
        return Err(DecodeError::corrupt(
            17,
            format!(
                "CRC mismatch: stored {:#010x}, computed {actual:#010x}",
                header.crc
            ),
        ));
    }
    Ok(Batch { header, bytes })
}

/// Decodes and fully checks the batch at the front of `buf`: header, CRC, and every record's
/// framing (offset deltas increasing and within `last_offset_delta`, exact end).
///
/// Returns [`DecodeError::Incomplete`] when `buf` ends before the batch does.
pub fn decode_batch(buf: &[u8]) -> Result<Batch<'_>, DecodeError> {
    let batch = decode_batch_crc_only(buf)?;
    check_records(&batch.header, &batch.bytes[HEADER_BYTES..]).map_err(|e| e.at(HEADER_BYTES))?;
    Ok(batch)
}

fn check_records(header: &BatchHeader, mut rest: &[u8]) -> Result<(), DecodeError> {
    let mut pos = 0;
    let mut previous_delta = -1i64;
    for _ in 0..header.record_count {
        let (r, n) = record::parse(rest).map_err(|e| e.at(pos))?;
        let delta = i64::from(r.offset_delta);
        if delta <= previous_delta || delta > i64::from(header.last_offset_delta) {
            return Err(DecodeError::corrupt(
                pos,
                format!("record offset delta {delta} out of order"),
            ));
        }
        if header
            .base_timestamp
            .checked_add(r.timestamp_delta)
            .is_none()
        {
            return Err(DecodeError::corrupt(pos, "record timestamp overflows"));
        }
        previous_delta = delta;
        rest = &rest[n..];
        pos += n;
    }
    if !rest.is_empty() {
        return Err(DecodeError::corrupt(pos, "bytes after the last record"));
    }
    Ok(())
}

/// The batch at the front of bytes that [`decode_batch`] already accepted: header and slice,
/// without checking the CRC again. `None` if the header does not parse or the batch is cut.
pub(crate) fn decode_batch_unchecked(buf: &[u8]) -> Option<Batch<'_>> {
    let header = peek_header(buf).ok()?;
    let bytes = buf.get(..header.total_bytes())?;
    Some(Batch { header, bytes })
}

/// Stamps the base offset on an encoded batch. The CRC does not cover it.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    debug_assert!(batch.len() >= HEADER_BYTES);
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Marks an encoded batch as LogAppendTime with `now_ms` as its timestamp, and recomputes the
/// CRC. Readers report `max_timestamp` as every record's timestamp in such a batch.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    debug_assert!(batch.len() >= HEADER_BYTES);
    let attributes = be_i16(batch, 21) | ATTR_TIMESTAMP_TYPE;
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    batch[35..43].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32fast::hash(&batch[CRC_START..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Where the next record lands in a batch, from [`BatchBuilder::place`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Placement {
    /// Bytes the record takes, its length prefix included.
    pub size: usize,
    body_len: i32,
    timestamp_delta: i64,
    /// The batch's base timestamp with the record in it.
    base_timestamp: i64,
    offset_delta: i32,
}

/// Encodes records into one batch, as the producer accumulates them.
///
/// ```
/// use embroker::codec::{decode_batch, BatchBuilder};
/// let mut b = BatchBuilder::new();
/// b.push(1_000, Some(b"k"), Some(b"v"), &[]).unwrap();
/// b.push(1_005, None, None, &[]).unwrap();
/// let bytes = b.finish();
/// let batch = decode_batch(&bytes).unwrap();
/// assert_eq!(batch.header.record_count, 2);
/// assert_eq!(batch.records().nth(1).unwrap().timestamp_delta, 5);
/// ```
#[derive(Clone, Debug)]
pub struct BatchBuilder {
    buf: Vec<u8>,
    record_count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchBuilder {
    /// An empty batch.
    pub fn new() -> Self {
        Self::with_capacity(HEADER_BYTES + 256)
    }

    /// An empty batch whose buffer can hold `bytes` without growing.
    pub fn with_capacity(bytes: usize) -> Self {
        Self::with_buffer(Vec::with_capacity(bytes.max(HEADER_BYTES)))
    }

    /// An empty batch encoded into `buf` (cleared first), reusing its allocation: callers that
    /// encode many batches keep one buffer instead of allocating (and faulting in) each time.
    pub fn with_buffer(mut buf: Vec<u8>) -> Self {
        buf.clear();
        buf.resize(HEADER_BYTES, 0);
        BatchBuilder {
            buf,
            record_count: 0,
            base_timestamp: 0,
            max_timestamp: i64::MIN,
        }
    }

    /// Bytes the batch would take if finished now.
    pub fn size_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Records pushed so far.
    pub fn record_count(&self) -> i32 {
        self.record_count
    }

    /// True when no record was pushed.
    pub fn is_empty(&self) -> bool {
        self.record_count == 0
    }

    /// Bytes a record would add to this batch (for size limits before pushing).
    pub fn record_size(
        &self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header],
    ) -> Option<usize> {
        let fields = record::fields_size(key, value, headers)?;
        self.place(timestamp, fields).map(|at| at.size)
    }

    /// Where a record stamped `timestamp` whose [`record::fields_size`] is `fields` would land
    /// next, for [`BatchBuilder::push_at`]; `None` when it cannot (see [`BatchBuilder::push`]).
    #[inline]
    pub(crate) fn place(&self, timestamp: i64, fields: usize) -> Option<Placement> {
        if self.record_count == i32::MAX {
            return None;
        }
        let base_timestamp = self.base_timestamp_for(timestamp);
        let timestamp_delta = timestamp.checked_sub(base_timestamp)?;
        let (size, body_len) = record::placed_size(fields, timestamp_delta, self.record_count)?;
        if self.buf.len() + size - LENGTH_PREFIX_BYTES > i32::MAX as usize {
            return None;
        }
        Some(Placement {
            size,
            body_len,
            timestamp_delta,
            base_timestamp,
            offset_delta: self.record_count,
        })
    }

    /// The batch's base timestamp once a record stamped `timestamp` is in it.
    fn base_timestamp_for(&self, timestamp: i64) -> i64 {
        if self.record_count == 0 {
            timestamp
        } else {
            self.base_timestamp
        }
    }

    /// Appends a record with the next offset delta. Returns the bytes it took, or `None` when a
    /// field is too large for the format (over `i32::MAX` bytes, or the batch would be), or
    /// when `timestamp` minus the batch's first timestamp does not fit an `i64` (only possible
    /// with negative timestamps, which the log and the producer refuse before encoding) — the
    /// batch is then unchanged.
    pub fn push(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header],
    ) -> Option<usize> {
        let at = self.place(timestamp, record::fields_size(key, value, headers)?)?;
        self.push_at(at, timestamp, key, value, headers)
    }

    /// Appends a record where [`BatchBuilder::place`] placed it: the producer places each
    /// record once, to check its batch's size, and encodes it there without sizing it again.
    /// `None` (the batch unchanged) if records were pushed since `at` was computed.
    pub(crate) fn push_at(
        &mut self,
        at: Placement,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header],
    ) -> Option<usize> {
        if at.offset_delta != self.record_count
            || at.base_timestamp != self.base_timestamp_for(timestamp)
        {
            return None;
        }
        record::encode(
            &mut self.buf,
            at.body_len,
            at.timestamp_delta,
            at.offset_delta,
            key,
            value,
            headers,
        );
        self.base_timestamp = at.base_timestamp;
        self.max_timestamp = self.max_timestamp.max(timestamp);
        self.record_count += 1;
        Some(at.size)
    }

    /// Writes the header (base offset 0; the log stamps the real one) and returns the bytes.
    pub fn finish(mut self) -> Vec<u8> {
        debug_assert!(self.record_count > 0, "finishing an empty batch");
        let batch_length = (self.buf.len() - LENGTH_PREFIX_BYTES) as i32;
        let b = &mut self.buf;
        b[0..8].copy_from_slice(&0i64.to_be_bytes());
        b[8..12].copy_from_slice(&batch_length.to_be_bytes());
        b[12..16].copy_from_slice(&(-1i32).to_be_bytes());
        b[16] = MAGIC;
        b[21..23].copy_from_slice(&0i16.to_be_bytes());
        b[23..27].copy_from_slice(&(self.record_count - 1).to_be_bytes());
        b[27..35].copy_from_slice(&self.base_timestamp.to_be_bytes());
        b[35..43].copy_from_slice(&self.max_timestamp.to_be_bytes());
        b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
        b[51..53].copy_from_slice(&(-1i16).to_be_bytes());
        b[53..57].copy_from_slice(&(-1i32).to_be_bytes());
        b[57..61].copy_from_slice(&self.record_count.to_be_bytes());
        let crc = crc32fast::hash(&b[CRC_START..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_placement_encodes_as_push_does_and_only_where_it_was_made() {
        let fields = |k: &[u8], v: &[u8]| record::fields_size(Some(k), Some(v), &[]).unwrap();
        let mut pushed = BatchBuilder::new();
        pushed.push(1_000, Some(b"k"), Some(b"v1"), &[]).unwrap();
        pushed.push(1_007, Some(b"k"), Some(b"v22"), &[]).unwrap();

        let mut placed = BatchBuilder::new();
        let first = placed.place(1_000, fields(b"k", b"v1")).unwrap();
        let second_too_early = placed.place(1_007, fields(b"k", b"v22")).unwrap();
        assert_eq!(
            placed.push_at(first, 1_000, Some(b"k"), Some(b"v1"), &[]),
            Some(first.size)
        );
        // Made before the first record went in: its offset delta and base timestamp are stale.
        assert_eq!(
            placed.push_at(second_too_early, 1_007, Some(b"k"), Some(b"v22"), &[]),
            None
        );
        assert_eq!(placed.record_count(), 1);
        let second = placed.place(1_007, fields(b"k", b"v22")).unwrap();
        assert_eq!(
            placed.push_at(second, 1_007, Some(b"k"), Some(b"v22"), &[]),
            Some(second.size)
        );
        assert_eq!(placed.finish(), pushed.finish());
    }

    #[derive(Debug, Clone)]
    struct Rec {
        ts: i64,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        headers: Vec<(String, Vec<u8>)>,
    }

    fn rec() -> impl Strategy<Value = Rec> {
        (
            -1_000_000i64..1_000_000,
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
            proptest::collection::vec(
                ("[a-z]{0,8}", proptest::collection::vec(any::<u8>(), 0..8)),
                0..3,
            ),
        )
            .prop_map(|(ts, key, value, headers)| Rec {
                ts: 1_700_000_000_000 + ts,
                key,
                value,
                headers,
            })
    }

    fn build(recs: &[Rec]) -> Vec<u8> {
        let mut b = BatchBuilder::new();
        for r in recs {
            let headers: Vec<Header> = r
                .headers
                .iter()
                .map(|(k, v)| Header::new(k.clone(), v.clone()))
                .collect();
            b.push(r.ts, r.key.as_deref(), r.value.as_deref(), &headers)
                .unwrap();
        }
        b.finish()
    }

    proptest! {
        #[test]
        fn round_trip(recs in proptest::collection::vec(rec(), 1..20), base in 0i64..i64::MAX / 2) {
            let mut bytes = build(&recs);
            set_base_offset(&mut bytes, base);
            let batch = decode_batch(&bytes).unwrap();
            prop_assert_eq!(batch.header.base_offset, base);
            prop_assert_eq!(batch.header.record_count as usize, recs.len());
            prop_assert_eq!(batch.header.total_bytes(), bytes.len());
            prop_assert_eq!(batch.header.max_timestamp, recs.iter().map(|r| r.ts).max().unwrap());
            for (i, (view, r)) in batch.records().zip(&recs).enumerate() {
                prop_assert_eq!(view.offset_delta as usize, i);
                prop_assert_eq!(batch.header.base_timestamp + view.timestamp_delta, r.ts);
                prop_assert_eq!(view.key, r.key.as_deref());
                prop_assert_eq!(view.value, r.value.as_deref());
                let hs: Vec<(String, Vec<u8>)> =
                    view.headers.map(|(k, v)| (k.to_string(), v.to_vec())).collect();
                prop_assert_eq!(&hs, &r.headers);
            }
        }

        #[test]
        fn any_single_byte_flip_is_caught(recs in proptest::collection::vec(rec(), 1..5), at: prop::sample::Index, bit in 0u8..8) {
            let bytes = build(&recs);
            let at = at.index(bytes.len());
            // The base offset and epoch are outside the CRC by design; flips there may decode.
            prop_assume!(at >= 8 && !(12..16).contains(&at));
            let mut bad = bytes.clone();
            bad[at] ^= 1 << bit;
            prop_assert!(decode_batch(&bad).is_err());
        }

        #[test]
        fn decoder_never_panics(bytes: Vec<u8>) {
            let _ = decode_batch(&bytes);
            let _ = peek_header(&bytes);
        }

        #[test]
        fn truncation_is_incomplete(recs in proptest::collection::vec(rec(), 1..5), cut: prop::sample::Index) {
            let bytes = build(&recs);
            let cut = cut.index(bytes.len());
            let is_incomplete = matches!(decode_batch(&bytes[..cut]), Err(DecodeError::Incomplete { .. }));
            prop_assert!(is_incomplete);
        }
    }

    #[test]
    fn log_append_time_rewrites_and_keeps_crc_valid() {
        let mut bytes = build(&[Rec {
            ts: 5,
            key: None,
            value: Some(b"x".to_vec()),
            headers: vec![],
        }]);
        set_log_append_time(&mut bytes, 99);
        let batch = decode_batch(&bytes).unwrap();
        assert_eq!(batch.header.max_timestamp, 99);
        assert_eq!(batch.header.timestamp_type(), TimestampType::LogAppendTime);
    }

    #[test]
    fn zeroed_tail_is_corrupt_not_a_panic() {
        // A preallocated or torn file tail reads as zeros: length 0 is too small.
        assert!(matches!(
            decode_batch(&[0u8; 100]),
            Err(DecodeError::Corrupt { position: 8, .. })
        ));
    }
}
