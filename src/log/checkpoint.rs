//! The recovery point of a partition: how far its log is known to be durable.
//!
//! File `recovery-point` in the partition directory, big-endian:
//! magic `EBRP`, version u16 (1), recovery offset i64, segment base offset i64, byte position
//! u64 in that segment, max timestamp i64 of that segment's durable part, CRC-32 u32 of the 38
//! bytes before it (42 bytes in all). Replaced atomically. A missing or
//! damaged checkpoint only costs time: open then scans the whole log.

use std::path::Path;

use crate::error::Result;
use crate::io;

pub(crate) const FILE_NAME: &str = "recovery-point";
const MAGIC: &[u8; 4] = b"EBRP";
const VERSION: u16 = 1;
const BYTES: usize = 42;

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
    pub(crate) fn encode(&self) -> [u8; BYTES] {
        let mut b = [0u8; BYTES];
        b[0..4].copy_from_slice(MAGIC);
        b[4..6].copy_from_slice(&VERSION.to_be_bytes());
        b[6..14].copy_from_slice(&self.offset.to_be_bytes());
        b[14..22].copy_from_slice(&self.segment_base.to_be_bytes());
        b[22..30].copy_from_slice(&self.position.to_be_bytes());
        b[30..38].copy_from_slice(&self.max_timestamp.to_be_bytes());
        let crc = crc32fast::hash(&b[..38]);
        b[38..42].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// `None` for anything that is not a well-formed checkpoint.
    pub(crate) fn decode(b: &[u8]) -> Option<RecoveryPoint> {
        if b.len() != BYTES || &b[0..4] != MAGIC || b[4..6] != VERSION.to_be_bytes() {
            return None;
        }
        let crc = u32::from_be_bytes([b[38], b[39], b[40], b[41]]);
        if crc != crc32fast::hash(&b[..38]) {
            return None;
        }
        let i64_at = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[at..at + 8]);
            a
        };
        let rp = RecoveryPoint {
            offset: i64::from_be_bytes(i64_at(6)),
            segment_base: i64::from_be_bytes(i64_at(14)),
            position: u64::from_be_bytes(i64_at(22)),
            max_timestamp: i64::from_be_bytes(i64_at(30)),
        };
        (rp.offset >= rp.segment_base && rp.segment_base >= 0).then_some(rp)
    }

    pub(crate) fn read(dir: &Path) -> Result<Option<RecoveryPoint>> {
        Ok(io::read_small(&dir.join(FILE_NAME))?.and_then(|b| RecoveryPoint::decode(&b)))
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
        assert_eq!(RecoveryPoint::decode(&b), Some(rp));
        for i in 0..BYTES {
            let mut bad = b;
            bad[i] ^= 0x10;
            assert_eq!(RecoveryPoint::decode(&bad), None, "byte {i}");
        }
        assert_eq!(RecoveryPoint::decode(&b[..41]), None);
    }
}
