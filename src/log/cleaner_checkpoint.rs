//! Where the log cleaner got to in one partition (Kafka's `cleaner-offset-checkpoint`).
//!
//! File `cleaner-checkpoint` in the partition directory, big-endian: magic `EBCC`, version u16
//! (1), first dirty offset i64, earliest delete horizon of a kept tombstone i64 (`i64::MAX`:
//! none), time of the last clean i64 (`i64::MIN`: never), CRC-32 u32 of the 30 bytes before it
//! (34 bytes in all). Replaced atomically after each pass. A missing or damaged file only costs
//! work: the whole log counts as dirty and the next pass cleans it all again.

use std::path::Path;

use super::sealed;
use crate::error::Result;
use crate::io;

pub(crate) const FILE_NAME: &str = "cleaner-checkpoint";
const MAGIC: &[u8; 4] = b"EBCC";
const VERSION: u16 = 1;
/// Far more than any version's checkpoint (34 bytes): a larger file is not read.
const MAX_FILE_BYTES: u64 = 4096;

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
    fn encode(&self) -> Vec<u8> {
        let values = [self.first_dirty, self.tombstone_horizon, self.last_clean_ms];
        sealed::seal_i64s(MAGIC, VERSION, &values)
    }

    fn decode(b: &[u8]) -> Option<CleanerCheckpoint> {
        let [first_dirty, tombstone_horizon, last_clean_ms] = sealed::open_i64s(MAGIC, VERSION, b)?;
        let c = CleanerCheckpoint {
            first_dirty,
            tombstone_horizon,
            last_clean_ms,
        };
        (c.first_dirty >= 0).then_some(c)
    }

    /// The checkpoint in `dir`, or the default (nothing cleaned) when missing or damaged.
    pub(crate) fn read(dir: &Path) -> Result<CleanerCheckpoint> {
        // A file far larger than a checkpoint is damage, like one that does not decode.
        Ok(
            match io::read_small(&dir.join(FILE_NAME), MAX_FILE_BYTES)? {
                io::SmallFile::Bytes(b) => CleanerCheckpoint::decode(&b).unwrap_or_default(),
                io::SmallFile::Missing | io::SmallFile::TooLarge(_) => CleanerCheckpoint::default(),
            },
        )
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
        assert_eq!(b.len(), 34);
        assert_eq!(CleanerCheckpoint::decode(&b), Some(c));
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 0x20;
            assert_eq!(CleanerCheckpoint::decode(&bad), None, "byte {i}");
        }
        assert_eq!(CleanerCheckpoint::decode(&b[..b.len() - 1]), None);
    }
}
