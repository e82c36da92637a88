//! The recovery point of a partition: how far its log is known to be durable.
//!
//! File `recovery-point` in the partition directory, big-endian:
//! magic `EBRP`, version u16 (2: format 2, Kafka's batches), recovery offset i64, segment base offset i64, byte position
//! u64 in that segment, max timestamp i64 of that segment's durable part, CRC-32 u32 of the 38
//! bytes before it (42 bytes in all). Replaced atomically. A missing or
//! damaged checkpoint only costs time: open then scans the whole log.

use std::path::Path;

use super::sealed;
use crate::error::{Error, Result};
use crate::io;

pub(crate) const FILE_NAME: &str = "recovery-point";
const MAGIC: &[u8; 4] = b"EBRP";
const VERSION: u16 = 2;
/// The version embroker's format 1 (its own batches, magic 1) wrote: a directory holding one
/// was written by that format, which this version does not read.
const FORMAT_1_VERSION: u16 = 1;
/// Far more than any version's checkpoint (42 bytes): a larger file is not read.
const MAX_FILE_BYTES: u64 = 4096;

/// Everything before `position` in segment `segment_base` (and every earlier segment) is
/// durable and was checked when written; `offset` is the log end offset there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecoveryPoint {
    pub offset: i64,
    pub segment_base: i64,
    pub position: u64,
    /// Largest record timestamp in the segment before `position` (`i64::MIN`: none).
    pub max_timestamp: i64,
}

impl RecoveryPoint {
    pub(crate) fn encode(&self) -> Vec<u8> {
        // The position is stored as the i64 with its bits (it is below 2^63 in practice).
        let values = [
            self.offset,
            self.segment_base,
            self.position as i64,
            self.max_timestamp,
        ];
        sealed::seal_i64s(MAGIC, VERSION, &values)
    }

    /// `None` for anything that is not a well-formed checkpoint.
    pub(crate) fn decode(b: &[u8]) -> Option<RecoveryPoint> {
        let [offset, segment_base, position, max_timestamp] = sealed::open_i64s(MAGIC, VERSION, b)?;
        let rp = RecoveryPoint {
            offset,
            segment_base,
            position: position as u64,
            max_timestamp,
        };
        (rp.offset >= rp.segment_base && rp.segment_base >= 0).then_some(rp)
    }

    /// The partition's recovery point; `None` when there is none or it is damaged, and
    /// [`Error::FormatChanged`] when it was written by embroker's format 1.
    pub(crate) fn read(dir: &Path) -> Result<Option<RecoveryPoint>> {
        let path = dir.join(FILE_NAME);
        // A file far larger than a checkpoint is damage, like one that does not decode.
        match io::read_small(&path, MAX_FILE_BYTES)? {
            io::SmallFile::Bytes(b) if sealed::open(MAGIC, FORMAT_1_VERSION, &b).is_some() => {
                Err(Error::FormatChanged {
                    path,
                    position: 4,
                    found: "recovery point version 1, written by embroker's format 1".into(),
                })
            }
            io::SmallFile::Bytes(b) => Ok(RecoveryPoint::decode(&b)),
            io::SmallFile::Missing | io::SmallFile::TooLarge(_) => Ok(None),
        }
    }

    pub(crate) fn write(&self, dir: &Path) -> Result<()> {
        io::write_atomic(&dir.join(FILE_NAME), &self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let rp = RecoveryPoint {
            offset: 42,
            segment_base: 40,
            position: 1234,
            max_timestamp: 7,
        };
        let b = rp.encode();
        assert_eq!(b.len(), 42);
        assert_eq!(RecoveryPoint::decode(&b), Some(rp));
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 0x10;
            assert_eq!(RecoveryPoint::decode(&bad), None, "byte {i}");
        }
        assert_eq!(RecoveryPoint::decode(&b[..41]), None);
    }

    #[test]
    fn a_format_1_recovery_point_is_a_format_error_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let old = sealed::seal_i64s(MAGIC, FORMAT_1_VERSION, &[1, 0, 100, 5]);
        std::fs::write(tmp.path().join(FILE_NAME), old).unwrap();
        let err = RecoveryPoint::read(tmp.path()).unwrap_err();
        assert!(matches!(err, Error::FormatChanged { .. }), "{err}");
        assert!(err.to_string().contains(FILE_NAME), "{err}");
    }
}
