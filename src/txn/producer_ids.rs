//! Producer id allocation: ids handed out in blocks, each block recorded on disk before any of
//! its ids is handed out, so that no id is ever handed out twice, even after a crash.
//!
//! Owns the file `producer-ids` in the data directory (format in `docs/FORMAT.md`): a 4-byte
//! magic `EPID`, a big-endian u16 version (1), the big-endian i64 end of the last block
//! reserved (the first id no earlier run may have handed out), and a big-endian CRC-32 (IEEE)
//! of everything before it. It is replaced atomically (`io::write_atomic`: temporary file,
//! fsync, rename, fsync of the directory).
//!
//! Kafka's controller hands brokers blocks of 1000 ids (`ProducerIdManager`, KIP-730) and
//! records each block in its metadata log; this is the same idea with one broker and one file.
//!
//! Invariants:
//! - every id handed out is below the recorded end, and at or above the end recorded when the
//!   broker opened: ids only grow, across restarts too;
//! - a file that does not decode (torn, foreign, damaged) is an error naming it, never a reset
//!   to 0, which would hand out ids that still own state in partition logs;
//! - a temporary broker keeps its ids in memory (its directory does not outlive it).

use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::io::{self, SmallFile};

/// The file's name in the data directory.
pub(crate) const FILE_NAME: &str = "producer-ids";
/// Ids reserved per write of the file (Kafka's `ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`).
pub(crate) const BLOCK_SIZE: i64 = 1000;
const MAGIC: &[u8; 4] = b"EPID";
const VERSION: u16 = 1;
/// magic, version, the i64, the CRC.
const FILE_BYTES: usize = 4 + 2 + 8 + 4;

/// Hands out producer ids (see the module docs).
#[derive(Debug)]
pub(crate) struct ProducerIds {
    /// `None` for a temporary broker: nothing is written.
    path: Option<PathBuf>,
    state: Mutex<Block>,
}

#[derive(Debug)]
struct Block {
    /// The next id to hand out.
    next: i64,
    /// The end (exclusive) of the block recorded on disk.
    end: i64,
}

impl ProducerIds {
    /// Ids for the broker in `dir`, continuing after every block an earlier run reserved;
    /// `durable` false keeps them in memory only.
    pub(crate) fn open(dir: &Path, durable: bool) -> Result<ProducerIds> {
        if !durable {
            return Ok(ProducerIds {
                path: None,
                state: Mutex::new(Block { next: 0, end: 0 }),
            });
        }
        let path = dir.join(FILE_NAME);
        let end = match io::read_small(&path, FILE_BYTES as u64)? {
            SmallFile::Missing => 0,
            SmallFile::TooLarge(len) => {
                return Err(Error::Corrupt {
                    path,
                    position: 0,
                    reason: format!("producer id file of {len} bytes, expected {FILE_BYTES}"),
                })
            }
            SmallFile::Bytes(bytes) => decode(&bytes).ok_or_else(|| Error::Corrupt {
                path: path.clone(),
                position: 0,
                reason: "producer id file: bad magic, version, length, CRC or a negative id".into(),
            })?,
        };
        Ok(ProducerIds {
            path: Some(path),
            state: Mutex::new(Block { next: end, end }),
        })
    }

    /// A producer id no one had before: from the current block, or from a new one recorded
    /// durably first.
    pub(crate) fn next_id(&self) -> Result<i64> {
        let mut block = self.state.lock();
        if block.next >= block.end {
            let end = block
                .end
                .checked_add(BLOCK_SIZE)
                .ok_or_else(|| Error::IllegalState {
                    reason: "producer ids exhausted".into(),
                })?;
            if let Some(path) = &self.path {
                io::write_atomic(path, &encode(end))?;
            }
            block.end = end;
        }
        let id = block.next;
        block.next += 1;
        Ok(id)
    }
}

/// The file's bytes recording `end`.
pub(crate) fn encode(end: i64) -> Vec<u8> {
    let mut b = Vec::with_capacity(FILE_BYTES);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&VERSION.to_be_bytes());
    b.extend_from_slice(&end.to_be_bytes());
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_be_bytes());
    b
}

/// The recorded end, if the file is whole and ours.
pub(crate) fn decode(bytes: &[u8]) -> Option<i64> {
    if bytes.len() != FILE_BYTES {
        return None;
    }
    let (framed, crc) = bytes.split_last_chunk::<4>()?;
    if u32::from_be_bytes(*crc) != crc32fast::hash(framed) {
        return None;
    }
    let (head, body) = framed.split_first_chunk::<6>()?;
    if head[..4] != MAGIC[..] || head[4..] != VERSION.to_be_bytes() {
        return None;
    }
    let end = i64::from_be_bytes(*body.first_chunk::<8>()?);
    (end >= 0).then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_grow_across_reopen_and_skip_the_rest_of_a_block() {
        let dir = tempfile::tempdir().unwrap();
        let ids = ProducerIds::open(dir.path(), true).unwrap();
        assert_eq!(ids.next_id().unwrap(), 0);
        assert_eq!(ids.next_id().unwrap(), 1);
        drop(ids);
        // A crash after handing out 0 and 1: the next run starts after the whole block.
        let ids = ProducerIds::open(dir.path(), true).unwrap();
        assert_eq!(ids.next_id().unwrap(), BLOCK_SIZE);
        let bytes = std::fs::read(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(decode(&bytes), Some(2 * BLOCK_SIZE));
    }

    #[test]
    fn a_block_is_written_only_when_the_last_one_is_used_up() {
        let dir = tempfile::tempdir().unwrap();
        let ids = ProducerIds::open(dir.path(), true).unwrap();
        for want in 0..=BLOCK_SIZE {
            assert_eq!(ids.next_id().unwrap(), want);
        }
        let bytes = std::fs::read(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(decode(&bytes), Some(2 * BLOCK_SIZE));
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = encode(5000);
        assert_eq!(decode(&bytes), Some(5000));
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert_eq!(decode(&bad), None, "byte {i}");
        }
        for n in 0..bytes.len() {
            assert_eq!(decode(&bytes[..n]), None);
        }
        bytes[0] ^= 1;
        std::fs::write(dir.path().join(FILE_NAME), &bytes).unwrap();
        let e = ProducerIds::open(dir.path(), true).unwrap_err();
        assert!(e.to_string().contains(FILE_NAME), "{e}");
    }

    #[test]
    fn a_temporary_broker_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let ids = ProducerIds::open(dir.path(), false).unwrap();
        assert_eq!(ids.next_id().unwrap(), 0);
        assert!(!dir.path().join(FILE_NAME).exists());
    }
}
