//! The record batch: Kafka's RecordBatch v2 (magic 2), a 61-byte header and varint-framed
//! records. Big-endian throughout. Kafka's own layout is in its
//! `clients/src/main/java/org/apache/kafka/common/record/DefaultRecordBatch.java`.
//!
//! ```text
//! off size field
//!   0    8 base_offset            i64   assigned by the log at append
//!   8    4 batch_length           i32   bytes after this field
//!  12    4 partition_leader_epoch i32   -1 (no leader epochs in one process)
//!  16    1 magic                  i8    2
//!  17    4 crc                    u32   CRC-32C (Castagnoli) of bytes 21..end
//!  21    2 attributes             i16   bits 0-2 compression codec, 3 LogAppendTime,
//!                                         4 transactional, 5 control, 6 delete horizon set;
//!                                         7-15 unused, 0
//!  23    4 last_offset_delta      i32
//!  27    8 base_timestamp         i64   record timestamps are deltas from it (the
//!                                         delete horizon when bit 6 is set)
//!  35    8 max_timestamp          i64
//!  43    8 producer_id            i64   -1 unless idempotent or transactional
//!  51    2 producer_epoch         i16   -1 unless idempotent or transactional
//!  53    4 base_sequence          i32   -1 unless idempotent or transactional
//!  57    4 record_count           i32
//!  61    … records (one compressed stream when bits 0-2 are not 0)
//! ```
//!
//! The CRC skips the base offset, length, epoch and magic, as Kafka's does, so the log can
//! stamp the base offset on a batch the producer encoded without recomputing the checksum.

use super::record::{self, RecordIter, RecordView};
use super::DecodeError;
use crate::types::{Header, TimestampType};

/// Bytes of the batch header.
pub const HEADER_BYTES: usize = 61;
/// Bytes before `batch_length` counts: base offset and the length field itself.
pub const LENGTH_PREFIX_BYTES: usize = 12;
/// The batch format this crate writes and reads: Kafka's RecordBatch v2.
pub const MAGIC: u8 = 2;

pub(crate) const CRC_START: usize = 21;
/// Bits 0-2: the compression codec's id (Kafka's `CompressionType`: 0 none, 1 gzip, 2 snappy,
/// 3 lz4, 4 zstd; 5-7 undefined).
pub(crate) const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_TIMESTAMP_TYPE: i16 = 1 << 3;
/// The batch belongs to a transaction (KIP-98).
pub(crate) const ATTR_TRANSACTIONAL: i16 = 1 << 4;
/// The batch holds one control record (a transaction marker), not user data.
pub(crate) const ATTR_CONTROL: i16 = 1 << 5;
/// Kafka's KIP-534 bit: `base_timestamp` holds the time after which the log cleaner may remove
/// the batch's tombstones, set when the cleaner first rewrites a batch holding any.
pub(crate) const ATTR_DELETE_HORIZON: i16 = 1 << 6;
/// Attribute bits Kafka defines; a batch with any other bit set is rejected so that a future
/// version's batches are never misread.
const ATTR_KNOWN: i16 = ATTR_COMPRESSION_MASK
    | ATTR_TIMESTAMP_TYPE
    | ATTR_TRANSACTIONAL
    | ATTR_CONTROL
    | ATTR_DELETE_HORIZON;
/// The largest compression codec id Kafka defines (zstd).
const MAX_COMPRESSION_ID: i16 = 4;

/// The CRC a v2 batch carries: CRC-32C (Castagnoli) of everything from the attributes on.
pub(crate) fn batch_crc(bytes_from_attributes: &[u8]) -> u32 {
    // crc-fast returns the 32-bit CRC in a u64.
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes_from_attributes) as u32
}

/// Writes the CRC of a whole encoded batch into its header.
pub(crate) fn write_crc(batch: &mut [u8]) {
    let crc = batch_crc(&batch[CRC_START..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

const _: () = assert!(HEADER_BYTES == 61);
const _: () = assert!(CRC_START == 17 + 4);
const _: () = assert!(HEADER_BYTES > LENGTH_PREFIX_BYTES);

/// The decoded fixed header of a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the length field.
    pub batch_length: i32,
    /// The leader epoch (-1: embroker has no leaders; a client's value is kept as sent).
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
    /// The idempotent or transactional producer's id; -1 for any other producer.
    pub producer_id: i64,
    /// The producer's epoch; -1 without a producer id.
    pub producer_epoch: i16,
    /// The first record's sequence number for this producer and partition; -1 without one.
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

    /// The compression codec's id (attributes bits 0-2): 0 none, 1 gzip, 2 snappy, 3 lz4,
    /// 4 zstd, as Kafka's `CompressionType` numbers them.
    pub fn compression_id(&self) -> i16 {
        self.attributes & ATTR_COMPRESSION_MASK
    }

    /// True when the records are one compressed stream (attributes bits 0-2 are not 0).
    pub fn is_compressed(&self) -> bool {
        self.compression_id() != 0
    }

    /// True when the batch belongs to a transaction (attributes bit 4).
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// True when the batch holds a control record, such as a transaction marker (bit 5).
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
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
        let reason = match h.magic {
            0 | 1 => format!(
                "magic {} is an older message format (embroker's format 1, or Kafka's v0/v1 \
                 messages); this version reads Kafka's record batch v2 (magic 2) only",
                h.magic
            ),
            _ => format!("unknown magic byte {}", h.magic),
        };
        return Err(DecodeError::corrupt(16, reason));
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
    if h.compression_id() > MAX_COMPRESSION_ID {
        return Err(DecodeError::corrupt(
            21,
            format!("unknown compression codec id {}", h.compression_id()),
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

/// True when `buf` starts with a whole batch of embroker's format 1: this layout with magic 1
/// and a CRC-32 (IEEE) that holds. Recovery asks before truncating anything it cannot decode,
/// so that data of the old format is reported as such and never cut as a torn tail (a torn
/// write of this version cannot hold a magic-1 batch whose CRC-32 holds).
pub(crate) fn is_format_1_batch(buf: &[u8]) -> bool {
    if buf.len() < HEADER_BYTES || buf[16] != 1 {
        return false;
    }
    let length = be_i32(buf, 8);
    let Ok(length) = usize::try_from(length) else {
        return false;
    };
    let Some(total) = length.checked_add(LENGTH_PREFIX_BYTES) else {
        return false;
    };
    if total < HEADER_BYTES || total > buf.len() {
        return false;
    }
    let stored = u32::from_be_bytes([buf[17], buf[18], buf[19], buf[20]]);
    crc32fast::hash(&buf[CRC_START..total]) == stored
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
    /// The records, in offset order, of an uncompressed batch. A compressed batch's records
    /// are one compressed stream: this iterates none of them, and [`super::batch_records`]
    /// decompresses them.
    pub fn records(&self) -> RecordIter<'a> {
        let remaining = if self.header.is_compressed() {
            0
        } else {
            self.header.record_count as usize
        };
        RecordIter {
            bytes: &self.bytes[HEADER_BYTES..],
            remaining,
        }
    }

    /// The records an application sees: [`Batch::records`], but none of a control batch (a
    /// transaction marker takes an offset and is never handed to readers, as in Kafka).
    pub(crate) fn data_records(&self) -> RecordIter<'a> {
        if self.header.is_control() {
            RecordIter::default()
        } else {
            self.records()
        }
    }
}

/// Decodes the batch at the front of `buf` and checks its header and CRC, but not the framing
/// of its records. For bytes whose framing is already known good (written by
/// [`BatchBuilder`] in this process, or checked by [`decode_batch`] before): a batch whose CRC
/// holds has the bytes that were checked.
pub fn decode_batch_crc_only(buf: &[u8]) -> Result<Batch<'_>, DecodeError> {
    let header = peek_header(buf)?;
    decode_batch_crc_with(buf, header)
}

/// [`decode_batch_crc_only`] for a caller that has already decoded the batch's header (with
/// [`peek_header`] on the same `buf`): the batch's length and CRC are checked, the header is
/// not parsed again.
#[inline]
pub(crate) fn decode_batch_crc_with(
    buf: &[u8],
    header: BatchHeader,
) -> Result<Batch<'_>, DecodeError> {
    let total = header.total_bytes();
    if buf.len() < total {
        return Err(DecodeError::Incomplete {
            needed: total,
            available: buf.len(),
        });
    }
    let bytes = &buf[..total];
    let actual = batch_crc(&bytes[CRC_START..]);
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
///
/// A compressed batch is decompressed to check its records (and the result dropped): callers
/// that want the records too call [`decode_batch_crc_only`] and [`super::batch_records`].
pub fn decode_batch(buf: &[u8]) -> Result<Batch<'_>, DecodeError> {
    let batch = decode_batch_crc_only(buf)?;
    super::inflate::batch_records(&batch)?;
    Ok(batch)
}

/// Checks the framing of an uncompressed batch's records (its CRC already checked), as
/// [`decode_batch`] does after the CRC.
pub(crate) fn check_plain_records(batch: &Batch<'_>) -> Result<(), DecodeError> {
    check_records(&batch.header, &batch.bytes[HEADER_BYTES..]).map_err(|e| e.at(HEADER_BYTES))
}

pub(crate) fn check_records(header: &BatchHeader, rest: &[u8]) -> Result<(), DecodeError> {
    check_records_each(header, rest, |_, _| true)
}

/// [`check_records`], handing each record to `each` (its index and view) as it is checked: a
/// caller that looks at every record anyway (the validator of a client's batches) parses them
/// once instead of twice. `each` returning false stops the walk (the caller keeps its reason);
/// the result is then `Ok`.
pub(crate) fn check_records_each(
    header: &BatchHeader,
    mut rest: &[u8],
    mut each: impl FnMut(usize, &RecordView<'_>) -> bool,
) -> Result<(), DecodeError> {
    let mut pos = 0;
    let mut previous_delta = -1i64;
    for index in 0..usize::try_from(header.record_count).unwrap_or(0) {
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
        if !each(index, &r) {
            return Ok(());
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

/// Sets an encoded batch's `max_timestamp` and recomputes its CRC.
pub fn set_max_timestamp(batch: &mut [u8], max_timestamp: i64) {
    debug_assert!(batch.len() >= HEADER_BYTES);
    batch[35..43].copy_from_slice(&max_timestamp.to_be_bytes());
    write_crc(batch);
}

/// Marks an encoded batch as LogAppendTime with `now_ms` as its timestamp, and recomputes the
/// CRC. Readers report `max_timestamp` as every record's timestamp in such a batch.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    debug_assert!(batch.len() >= HEADER_BYTES);
    let attributes = be_i16(batch, 21) | ATTR_TIMESTAMP_TYPE;
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    batch[35..43].copy_from_slice(&now_ms.to_be_bytes());
    write_crc(batch);
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
    producer: ProducerFields,
    /// Attribute bits set by the caller (transactional, control).
    attributes: i16,
}

/// The idempotence fields of a batch header, -1 each as Kafka writes them for a producer
/// without idempotence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerFields {
    /// The producer id the broker handed out.
    pub producer_id: i64,
    /// The producer's epoch.
    pub producer_epoch: i16,
    /// The first record's sequence number for this producer and partition.
    pub base_sequence: i32,
}

impl ProducerFields {
    /// No producer id: what a producer without idempotence writes.
    pub const NONE: ProducerFields = ProducerFields {
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
    };
}

impl Default for ProducerFields {
    fn default() -> Self {
        ProducerFields::NONE
    }
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
            producer: ProducerFields::NONE,
            attributes: 0,
        }
    }

    /// Sets the producer id, epoch and base sequence the header carries (all -1 unless set).
    pub fn set_producer(&mut self, fields: ProducerFields) {
        self.producer = fields;
    }

    /// Marks the batch as part of a transaction (attributes bit 4).
    pub fn set_transactional(&mut self, transactional: bool) {
        self.set_attribute(ATTR_TRANSACTIONAL, transactional);
    }

    /// Marks the batch as a control batch (attributes bit 5): its one record is a control
    /// record such as [`super::EndTransactionMarker`] encodes.
    pub fn set_control(&mut self, control: bool) {
        self.set_attribute(ATTR_CONTROL, control);
    }

    fn set_attribute(&mut self, bit: i16, on: bool) {
        if on {
            self.attributes |= bit;
        } else {
            self.attributes &= !bit;
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
        b[21..23].copy_from_slice(&self.attributes.to_be_bytes());
        b[23..27].copy_from_slice(&(self.record_count - 1).to_be_bytes());
        b[27..35].copy_from_slice(&self.base_timestamp.to_be_bytes());
        b[35..43].copy_from_slice(&self.max_timestamp.to_be_bytes());
        b[43..51].copy_from_slice(&self.producer.producer_id.to_be_bytes());
        b[51..53].copy_from_slice(&self.producer.producer_epoch.to_be_bytes());
        b[53..57].copy_from_slice(&self.producer.base_sequence.to_be_bytes());
        b[57..61].copy_from_slice(&self.record_count.to_be_bytes());
        write_crc(b);
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
        build_into(BatchBuilder::new(), recs)
    }

    fn build_into(mut b: BatchBuilder, recs: &[Rec]) -> Vec<u8> {
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
                    view.headers.map(|(k, v)| (k.to_string(), v.unwrap_or_default().to_vec())).collect();
                prop_assert_eq!(&hs, &r.headers);
            }
        }

        #[test]
        fn a_reused_buffer_gives_the_bytes_a_fresh_one_gives(
            recs in proptest::collection::vec(rec(), 1..20),
            old in proptest::collection::vec(any::<u8>(), 0..600),
            spare in 0usize..600,
        ) {
            // Neither what the buffer held nor its spare capacity may show in the batch.
            let mut dirty = old;
            dirty.reserve(spare);
            let reused = build_into(BatchBuilder::with_buffer(dirty), &recs);
            prop_assert_eq!(reused, build(&recs));
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
    fn every_attribute_bit_and_producer_field_round_trips() {
        for transactional in [false, true] {
            for control in [false, true] {
                let mut b = BatchBuilder::new();
                let producer = ProducerFields {
                    producer_id: 1 << 40,
                    producer_epoch: 7,
                    base_sequence: 99,
                };
                b.set_producer(producer);
                b.set_transactional(transactional);
                b.set_control(control);
                b.push(5, Some(b"k"), Some(b"v"), &[]).unwrap();
                let bytes = b.finish();
                let h = decode_batch(&bytes).unwrap().header;
                assert_eq!(h.magic, 2);
                assert_eq!(h.is_transactional(), transactional);
                assert_eq!(h.is_control(), control);
                assert_eq!(h.delete_horizon(), None);
                assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
                assert_eq!(
                    (h.producer_id, h.producer_epoch, h.base_sequence),
                    (1 << 40, 7, 99)
                );
            }
        }
        // Without a producer, the idempotence fields are -1 as Kafka writes them.
        let mut b = BatchBuilder::new();
        b.push(5, None, Some(b"v"), &[]).unwrap();
        let h = decode_batch(&b.finish()).unwrap().header;
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (-1, -1, -1)
        );
        assert_eq!((h.partition_leader_epoch, h.attributes), (-1, 0));
    }

    /// A batch with `attributes` forced in and its CRC recomputed.
    fn with_attributes(attributes: i16) -> Vec<u8> {
        let mut b = BatchBuilder::new();
        b.push(5, None, Some(b"v"), &[]).unwrap();
        let mut bytes = b.finish();
        bytes[21..23].copy_from_slice(&attributes.to_be_bytes());
        write_crc(&mut bytes);
        bytes
    }

    #[test]
    fn undefined_attribute_bits_and_codec_ids_are_refused() {
        for id in 5..=7 {
            let err = peek_header(&with_attributes(id)).unwrap_err();
            assert!(err.to_string().contains("compression codec id"), "{err}");
        }
        for bit in 7..16 {
            let err = peek_header(&with_attributes(1 << bit)).unwrap_err();
            assert!(err.to_string().contains("attribute bits"), "{err}");
        }
        for id in 1..=4 {
            assert_eq!(
                peek_header(&with_attributes(id)).unwrap().compression_id(),
                id
            );
        }
    }

    #[test]
    fn the_crc_is_crc32c_of_attributes_to_end() {
        let bytes = build(&[Rec {
            ts: 5,
            key: None,
            value: Some(b"x".to_vec()),
            headers: vec![],
        }]);
        let stored = u32::from_be_bytes([bytes[17], bytes[18], bytes[19], bytes[20]]);
        assert_eq!(stored, crc32c::crc32c(&bytes[21..]));
        // The well-known CRC-32C check value (RFC 3720 appendix B.4).
        assert_eq!(batch_crc(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn an_older_magic_is_named_as_an_older_format() {
        let mut bytes = with_attributes(0);
        bytes[16] = 1;
        let err = peek_header(&bytes).unwrap_err().to_string();
        assert!(err.contains("older message format"), "{err}");
        assert!(
            !is_format_1_batch(&bytes),
            "the CRC is CRC-32C, not format 1's"
        );
        let crc = crc32fast::hash(&bytes[CRC_START..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(is_format_1_batch(&bytes));
        assert!(!is_format_1_batch(&bytes[..bytes.len() - 1]));
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
