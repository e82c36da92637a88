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
    check_records, check_records_each, write_crc, Batch, ATTR_COMPRESSION_MASK, HEADER_BYTES,
    LENGTH_PREFIX_BYTES,
};
use super::record::{RecordIter, RecordView};
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

/// The checks of [`batch_records`], handing each record to `each` (its index and view) as it is
/// checked, and keeping none: for a caller that looks at every record once (the validator of a
/// client's batches), one parse of each instead of a check and then an iteration. `each`
/// returning false stops the walk, with `Ok` (the caller keeps its own reason).
pub(crate) fn check_batch_records_each(
    batch: &Batch<'_>,
    each: impl FnMut(usize, &RecordView<'_>) -> bool,
) -> Result<(), DecodeError> {
    let section = &batch.bytes[HEADER_BYTES..];
    if !batch.header.is_compressed() {
        return check_records_each(&batch.header, section, each).map_err(|e| e.at(HEADER_BYTES));
    }
    let mut plain = Vec::new();
    decompress_records(batch, &mut plain)?;
    check_records_each(&batch.header, &plain, each)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode_batch, BatchBuilder, Compression, CompressionCodec};
    use proptest::prelude::*;

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    type Rec = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

    fn plain_batch(records: &[Rec], attributes: (bool, bool)) -> Vec<u8> {
        let mut b = BatchBuilder::new();
        b.set_transactional(attributes.0);
        b.set_producer(crate::codec::ProducerFields {
            producer_id: 5,
            producer_epoch: 1,
            base_sequence: 9,
        });
        for (ts, k, v) in records {
            b.push(*ts, k.as_deref(), v.as_deref(), &[]).unwrap();
        }
        let mut bytes = b.finish();
        if attributes.1 {
            crate::codec::set_log_append_time(&mut bytes, 42);
        }
        bytes
    }

    fn rec() -> impl Strategy<Value = Rec> {
        (
            0i64..1_000_000,
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..30)),
            proptest::option::of(proptest::collection::vec(0u8..4, 0..300)),
        )
    }

    proptest! {
        /// Compressing a plain batch and inflating it gives back the very same bytes, for
        /// every codec and the header bits around the codec's.
        #[test]
        fn compress_then_inflate_is_the_identity(
            records in proptest::collection::vec(rec(), 1..30),
            codec in 0usize..5,
            transactional: bool,
            log_append_time: bool,
        ) {
            let plain = plain_batch(&records, (transactional, log_append_time));
            let batch = decode_batch(&plain).unwrap();
            let compression = CODECS[codec];
            let mut compressed = Vec::new();
            compress_batch(&batch, CompressionCodec::new(compression), &mut compressed).unwrap();
            let c = decode_batch(&compressed).unwrap();
            prop_assert_eq!(c.header.compression_id(), compression.id());
            prop_assert_eq!(c.header.is_transactional(), transactional);
            let ours: Vec<_> = batch_records(&c).unwrap().iter().map(|r| (r.key.map(<[u8]>::to_vec), r.value.map(<[u8]>::to_vec))).collect();
            let theirs: Vec<_> = batch.records().map(|r| (r.key.map(<[u8]>::to_vec), r.value.map(<[u8]>::to_vec))).collect();
            prop_assert_eq!(ours, theirs);
            let mut back = Vec::new();
            inflate_batch(&c, &mut back).unwrap();
            prop_assert_eq!(back, plain);
        }

        /// Whatever follows a compressed batch's header, decoding and inflating it returns an
        /// error or a batch, never a panic, and never more than the inflate limit.
        #[test]
        fn any_compressed_payload_errors_or_decodes(
            payload in proptest::collection::vec(any::<u8>(), 0..400),
            codec in 1usize..5,
        ) {
            let plain = plain_batch(&[(1, None, Some(b"v".to_vec()))], (false, false));
            let mut bytes = plain[..crate::codec::HEADER_BYTES].to_vec();
            bytes.extend_from_slice(&payload);
            let len = (bytes.len() - LENGTH_PREFIX_BYTES) as i32;
            bytes[8..12].copy_from_slice(&len.to_be_bytes());
            bytes[21..23].copy_from_slice(&(CODECS[codec].id()).to_be_bytes());
            write_crc(&mut bytes);
            if let Ok(batch) = crate::codec::decode_batch_crc_only(&bytes) {
                let _ = batch_records(&batch);
                let mut out = Vec::new();
                if inflate_batch(&batch, &mut out).is_ok() {
                    prop_assert!(decode_batch(&out).is_ok());
                } else {
                    prop_assert!(out.is_empty());
                }
            }
            let _ = decode_batch(&bytes);
        }
    }

    #[test]
    fn a_decompression_bomb_is_refused_not_allocated() {
        // 300 MiB of zeros compresses to a few hundred kilobytes with zstd; its records
        // would pass the inflate limit, so reading it is an error.
        let zeros = vec![0u8; INFLATED_BYTES_MAX + 1024];
        let mut stream = Vec::new();
        crate::codec::compress(
            CompressionCodec::new(Compression::Zstd),
            &zeros,
            &mut stream,
        )
        .unwrap();
        drop(zeros);
        let plain = plain_batch(&[(1, None, Some(b"v".to_vec()))], (false, false));
        let mut bytes = plain[..crate::codec::HEADER_BYTES].to_vec();
        bytes.extend_from_slice(&stream);
        let len = (bytes.len() - LENGTH_PREFIX_BYTES) as i32;
        bytes[8..12].copy_from_slice(&len.to_be_bytes());
        bytes[21..23].copy_from_slice(&Compression::Zstd.id().to_be_bytes());
        write_crc(&mut bytes);
        let batch = crate::codec::decode_batch_crc_only(&bytes).unwrap();
        let err = batch_records(&batch).unwrap_err().to_string();
        assert!(err.contains("limit"), "{err}");
    }
}
