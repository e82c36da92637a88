//! A batch's records as plain bytes, whatever its compression, and a batch recompressed with
//! another codec: the one place that turns compressed batches into records and back, for
//! readers, the log cleaner, validation, the producer and the CLI.
//!
//! Invariants:
//! - [`batch_records`] returns records only when they parse to the exact end of the
//!   (decompressed) records section and number `record_count`, so iterating them cannot fail.
//! - Decompression never produces more than [`INFLATED_BYTES_MAX`] bytes of records: a small
//!   batch that would inflate to gigabytes is an error, not an allocation.
//! - [`inflate_batch`] writes a whole uncompressed batch that [`super::decode_batch`] accepts,
//!   with the original's header fields (offsets, timestamps, producer fields, other attribute
//!   bits) and records. [`compress_batch`] does the same the other way, with the codec's id in
//!   attributes bits 0-2.

use std::borrow::Cow;

use super::batch::{
    check_records, write_crc, Batch, ATTR_COMPRESSION_MASK, HEADER_BYTES, LENGTH_PREFIX_BYTES,
};
use super::record::RecordIter;
use super::DecodeError;

/// The most bytes a batch's records may inflate to. Kafka reads compressed records as a
/// stream and sets no such bound; embroker inflates a batch whole, so it bounds it.
pub const INFLATED_BYTES_MAX: usize = 256 << 20;

/// The records of one batch, decompressed if the batch was compressed.
#[derive(Clone, Debug)]
pub struct BatchRecords<'a> {
    bytes: Cow<'a, [u8]>,
    count: usize,
}

impl BatchRecords<'_> {
    /// The records, in offset order.
    pub fn iter(&self) -> RecordIter<'_> {
        RecordIter {
            bytes: &self.bytes,
            remaining: self.count,
        }
    }

    /// Bytes of the records, uncompressed.
    pub fn size_bytes(&self) -> usize {
        self.bytes.len()
    }
}

/// The records of `batch` (whose CRC [`super::decode_batch_crc_only`] or
/// [`super::decode_batch`] checked): borrowed when it is not compressed, decompressed and
/// checked when it is.
pub fn batch_records<'a>(batch: &Batch<'a>) -> Result<BatchRecords<'a>, DecodeError> {
    let count = usize::try_from(batch.header.record_count).unwrap_or(0);
    let section = &batch.bytes[HEADER_BYTES..];
    if !batch.header.is_compressed() {
        check_records(&batch.header, section).map_err(|e| e.at(HEADER_BYTES))?;
        return Ok(BatchRecords {
            bytes: Cow::Borrowed(section),
            count,
        });
    }
    let mut plain = Vec::new();
    decompress_records(batch, &mut plain)?;
    check_records(&batch.header, &plain)?;
    Ok(BatchRecords {
        bytes: Cow::Owned(plain),
        count,
    })
}

/// Appends to `out` the records section of `batch` decompressed.
fn decompress_records(batch: &Batch<'_>, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let id = batch.header.compression_id();
    let codec = super::Compression::from_id(id)
        .ok_or_else(|| DecodeError::corrupt(21, format!("unknown compression codec id {id}")))?;
    super::compression::decompress(codec, &batch.bytes[HEADER_BYTES..], out, INFLATED_BYTES_MAX)
        .map_err(|e| DecodeError::corrupt(HEADER_BYTES, e.to_string()))
}

/// Appends to `out` `batch` as an uncompressed batch: the same header with the compression
/// bits cleared, its length and CRC recomputed, and the records decompressed and checked. An
/// uncompressed batch is copied as it is.
pub fn inflate_batch(batch: &Batch<'_>, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    if !batch.header.is_compressed() {
        out.extend_from_slice(batch.bytes);
        return Ok(());
    }
    let start = out.len();
    out.extend_from_slice(&batch.bytes[..HEADER_BYTES]);
    let checked = decompress_records(batch, out)
        .and_then(|()| check_records(&batch.header, &out[start + HEADER_BYTES..]));
    if let Err(e) = checked {
        out.truncate(start);
        return Err(e);
    }
    let Ok(length) = i32::try_from(out.len() - start - LENGTH_PREFIX_BYTES) else {
        out.truncate(start);
        return Err(DecodeError::corrupt(
            HEADER_BYTES,
            "records do not fit one batch once decompressed",
        ));
    };
    let b = &mut out[start..];
    b[8..12].copy_from_slice(&length.to_be_bytes());
    let attributes = batch.header.attributes & !ATTR_COMPRESSION_MASK;
    b[21..23].copy_from_slice(&attributes.to_be_bytes());
    write_crc(b);
    Ok(())
}

/// Appends to `out` `batch` with its records compressed by `codec` (decompressed first if the
/// batch is compressed with another codec; copied as it is if it already uses `codec`'s
/// codec), the header otherwise the same, its length, attributes and CRC recomputed. With
/// [`super::Compression::None`] this is [`inflate_batch`]. On error `out` is as it was.
pub fn compress_batch(
    batch: &Batch<'_>,
    codec: super::CompressionCodec,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    let target = codec.compression().id();
    if batch.header.compression_id() == target {
        out.extend_from_slice(batch.bytes);
        return Ok(());
    }
    if target == 0 {
        return inflate_batch(batch, out);
    }
    let records = batch_records(batch)?;
    let start = out.len();
    out.extend_from_slice(&batch.bytes[..HEADER_BYTES]);
    if let Err(e) = super::compression::compress(codec, &records.bytes, out) {
        out.truncate(start);
        return Err(DecodeError::corrupt(HEADER_BYTES, e.to_string()));
    }
    let Ok(length) = i32::try_from(out.len() - start - LENGTH_PREFIX_BYTES) else {
        out.truncate(start);
        return Err(DecodeError::corrupt(
            HEADER_BYTES,
            "compressed records do not fit one batch",
        ));
    };
    let b = &mut out[start..];
    b[8..12].copy_from_slice(&length.to_be_bytes());
    let attributes = (batch.header.attributes & !ATTR_COMPRESSION_MASK) | target;
    b[21..23].copy_from_slice(&attributes.to_be_bytes());
    write_crc(b);
    Ok(())
}
