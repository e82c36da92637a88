//! The log start offset of a partition, where DeleteRecords moved it past the first
//! segment's base offset.
//!
//! File `log-start-offset` in the partition directory, big-endian: magic `EBLS`, version u16
//! (1), the log start offset i64, CRC-32 u32 of the 14 bytes before it (18 bytes in all).
//! Replaced atomically and durably (the file and its directory are fsynced) before the log
//! start moves in memory, so an answer to DeleteRecords is never undone by a crash.
//!
//! Invariant: the log start at open is the larger of the first segment's base and this
//! file's offset, never above the log end. Retention and segment deletion may move the
//! first segment past the file's offset; the file is then stale and harmless (the larger
//! wins). A missing file means no DeleteRecords moved the start; a damaged one is logged
//! and ignored, which can only bring deleted records back, never lose any.

use std::path::Path;

use super::sealed;
use crate::error::Result;
use crate::io;

pub(crate) const FILE_NAME: &str = "log-start-offset";
const MAGIC: &[u8; 4] = b"EBLS";
const VERSION: u16 = 1;
/// Far more than the file's 18 bytes: a larger file is not read.
const MAX_FILE_BYTES: u64 = 4096;

/// The offset the file holds; `None` without a file or with a damaged one (logged).
pub(crate) fn read(dir: &Path) -> Result<Option<i64>> {
    let path = dir.join(FILE_NAME);
    match io::read_small(&path, MAX_FILE_BYTES)? {
        io::SmallFile::Bytes(b) => match decode(&b) {
            Some(offset) => Ok(Some(offset)),
            None => {
                log::warn!(
                    "{}: damaged, ignored (records DeleteRecords removed may reappear)",
                    path.display()
                );
                Ok(None)
            }
        },
        io::SmallFile::Missing => Ok(None),
        io::SmallFile::TooLarge(_) => {
            log::warn!("{}: too large to be ours, ignored", path.display());
            Ok(None)
        }
    }
}

/// Writes `offset` durably.
pub(crate) fn write(dir: &Path, offset: i64) -> Result<()> {
    io::write_atomic(&dir.join(FILE_NAME), &encode(offset))
}

fn encode(offset: i64) -> Vec<u8> {
    sealed::seal_i64s(MAGIC, VERSION, &[offset])
}

fn decode(b: &[u8]) -> Option<i64> {
    let [offset] = sealed::open_i64s(MAGIC, VERSION, b)?;
    (offset >= 0).then_some(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_damage_and_absence() {
        let b = encode(1234);
        assert_eq!(b.len(), 18);
        assert_eq!(decode(&b), Some(1234));
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 0x01;
            assert_eq!(decode(&bad), None, "byte {i}");
        }
        assert_eq!(decode(&encode(-1)), None);
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(read(tmp.path()).unwrap(), None);
        write(tmp.path(), 77).unwrap();
        assert_eq!(read(tmp.path()).unwrap(), Some(77));
        std::fs::write(tmp.path().join(FILE_NAME), b"garbage").unwrap();
        assert_eq!(read(tmp.path()).unwrap(), None);
    }
}
