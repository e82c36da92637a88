//! The record batch codec: bytes in, values out. Kafka's RecordBatch v2 (magic 2), documented
//! in `docs/FORMAT.md`.
//!
//! Owns: the byte layout of a batch and its records, the CRC-32C, varints, control records.
//!
//! Invariants:
//! - No I/O, no clock, no global state: every function is a pure function of its input, which
//!   is what lets the decoder be fuzzed alone and reused by recovery, reads and the CLI.
//! - The decoder never panics and never reads past its input: every length is checked against
//!   what is there before it is used, and positions in errors are relative to the input.
//! - A batch that [`decode_batch`] accepts has a CRC that holds and records that parse to its
//!   exact end, so iterating its records cannot fail.

mod batch;
mod compression;
mod control;
mod filter;
mod inflate;
mod record;
pub(crate) mod varint;

pub(crate) use batch::{
    batch_crc, check_plain_records, decode_batch_crc_with, decode_batch_unchecked,
    is_format_1_batch, Placement,
};
pub use batch::{
    decode_batch, decode_batch_crc_only, peek_header, set_base_offset, set_log_append_time,
    set_max_timestamp, Batch, BatchBuilder, BatchHeader, ProducerFields, HEADER_BYTES,
    LENGTH_PREFIX_BYTES, MAGIC,
};
pub use compression::{compress, decompress, Compression, CompressionCodec, CompressionError};
pub use control::{ControlRecordType, EndTransactionMarker};
pub(crate) use filter::filter_batch;
pub(crate) use inflate::check_batch_records_each;
pub use inflate::{batch_records, compress_batch, inflate_batch, BatchRecords, INFLATED_BYTES_MAX};
pub(crate) use record::{fields_size, placed_size};
pub use record::{RecordHeaders, RecordIter, RecordView};

use std::fmt;

/// Why a slice of bytes is not a valid batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ends before the batch does. At the end of a file this is a torn write.
    Incomplete {
        /// Bytes the batch needs in all (at least the header, when the length is unknown).
        needed: usize,
        /// Bytes there were.
        available: usize,
    },
    /// The bytes are there but do not hold together.
    Corrupt {
        /// Position relative to the start of the input.
        position: usize,
        /// What is wrong.
        reason: String,
    },
}

impl DecodeError {
    pub(crate) fn corrupt(position: usize, reason: impl Into<String>) -> Self {
        DecodeError::Corrupt {
            position,
            reason: reason.into(),
        }
    }

    /// Shifts the position by `delta` (when a sub-slice was decoded).
    pub(crate) fn at(self, delta: usize) -> Self {
        match self {
            DecodeError::Corrupt { position, reason } => DecodeError::Corrupt {
                position: position + delta,
                reason,
            },
            other => other,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Incomplete { needed, available } => {
                write!(f, "batch needs {needed} bytes but only {available} remain")
            }
            DecodeError::Corrupt { position, reason } => write!(f, "at byte {position}: {reason}"),
        }
    }
}

impl std::error::Error for DecodeError {}
