//! Where the log cleaner got to in one partition (Kafka's `cleaner-offset-checkpoint`).
//!
//! File `cleaner-checkpoint` in the partition directory, big-endian: magic `EBCC`, version u16
//! (1), first dirty offset i64, earliest delete horizon of a kept tombstone i64 (`i64::MAX`:
//! none), time of the last clean i64 (`i64::MIN`: never), CRC-32 u32 of the 30 bytes before it
//! (34 bytes in all). Replaced atomically after each pass. A missing or damaged file only costs
//! work: the whole log counts as dirty and the next pass cleans it all again.

use std::path::Path;

use crate::error::Result;
use crate::io;

pub(crate) const FILE_NAME: &str = "cleaner-checkpoint";
const MAGIC: &[u8; 4] = b"EBCC";
const VERSION: u16 = 1;
const BYTES: usize = 34;

/// The cleaner's progress in one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CleanerCheckpoint {
    /// Records before this offset were cleaned by some pass (the log's "clean" part).
    pub first_dirty: i64,
    /// The earliest delete horizon of a tombstone the last pass kept: once it passes, a pass
    /// is due even without new dirty records. `i64::MAX` when none was kept.
    pub tombstone_horizon: i64,
    /// When the last pass finished (`i64::MIN`: never).
    pub last_clean_ms: i64,
}

impl Default for CleanerCheckpoint {
    fn default() -> Self {
        CleanerCheckpoint {
            first_dirty: 0,
            tombstone_horizon: i64::MAX,
            last_clean_ms: i64::MIN,
        }
    }
}

impl CleanerCheckpoint {
    fn encode(&self) -> [u8; BYTES] {
        let mut b = [0u8; BYTES];
        b[0..4].copy_from_slice(MAGIC);
        b[4..6].copy_from_slice(&VERSION.to_be_bytes());
        b[6..14].copy_from_slice(&self.first_dirty.to_be_bytes());
        b[14..22].copy_from_slice(&self.tombstone_horizon.to_be_bytes());
        b[22..30].copy_from_slice(&self.last_clean_ms.to_be_bytes());
        let crc = crc32fast::hash(&b[..30]);
        b[30..34].copy_from_slice(&crc.to_be_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<CleanerCheckpoint> {
        if b.len() != BYTES || &b[0..4] != MAGIC || b[4..6] != VERSION.to_be_bytes() {
            return None;
        }
        if u32::from_be_bytes([b[30], b[31], b[32], b[33]]) != crc32fast::hash(&b[..30]) {
            return None;
        }
        let i64_at = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[at..at + 8]);
            i64::from_be_bytes(a)
        };
        let c = CleanerCheckpoint {
            first_dirty: i64_at(6),
            tombstone_horizon: i64_at(14),
            last_clean_ms: i64_at(22),
        };
        (c.first_dirty >= 0).then_some(c)
    }

    /// The checkpoint in `dir`, or the default (nothing cleaned) when missing or damaged.
    pub(crate) fn read(dir: &Path) -> Result<CleanerCheckpoint> {
        Ok(io::read_small(&dir.join(FILE_NAME))?
            .and_then(|b| CleanerCheckpoint::decode(&b))
            .unwrap_or_default())
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
        let c = CleanerCheckpoint {
            first_dirty: 1234,
            tombstone_horizon: 99,
            last_clean_ms: 7,
        };
        let b = c.encode();
        assert_eq!(CleanerCheckpoint::decode(&b), Some(c));
        for i in 0..BYTES {
            let mut bad = b;
            bad[i] ^= 0x20;
            assert_eq!(CleanerCheckpoint::decode(&bad), None, "byte {i}");
        }
        assert_eq!(CleanerCheckpoint::decode(&b[..BYTES - 1]), None);
    }
}
