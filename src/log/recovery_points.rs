//! The recovery points of a data directory's partitions in one file, `recovery-points` (what
//! Kafka keeps in `recovery-point-offset-checkpoint`), written whole by a clean close so that
//! a close writes one file for the directory instead of one per partition.
//!
//! Layout (docs/FORMAT.md §8b), big-endian, in the frame of `sealed` (magic `EBRD`, version
//! u16 1, body, CRC-32 of everything before it): entry count u32, then
//! per entry: directory name length u16, the name (UTF-8, `topic-partition`), topic id u64,
//! recovery offset i64, segment base offset i64, byte position u64, max timestamp i64, flags
//! u8 (bit 0: the partition had no producer state at the recovery offset).
//!
//! Invariants: an entry is only trusted for a partition whose directory has that name *and*
//! whose topic has that id (a random id written in the topic file at creation), so an entry
//! left from a topic deleted and created again under the same name is never applied to the
//! new one. The file is replaced atomically (temporary file, sync, rename) and only names
//! bytes made durable before the rename. A missing, foreign, damaged or oversized file is
//! ignored whole: open then uses each partition's own `recovery-point` file, or scans.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::checkpoint::RecoveryPoint;
use super::sealed;
use crate::error::Result;
use crate::io;

/// The file's name in the data directory.
pub(crate) const FILE_NAME: &str = "recovery-points";
const MAGIC: &[u8; 4] = b"EBRD";
const VERSION: u16 = 1;
/// Flag bit: no producer state at the recovery offset (no `.snapshot` was written for it).
const NO_PRODUCERS: u8 = 1;
/// Bytes of an entry besides its name.
const ENTRY_FIXED_BYTES: usize = 2 + 8 + 4 * 8 + 1;
/// A bound far above any real file (200,000 partitions of 300-byte names): a larger file
/// is damage and not read.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// One partition's entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The partition directory's name, `topic-partition`.
    pub dir_name: String,
    /// The id of the topic the entry was written for (see the module docs).
    pub topic_id: u64,
    pub point: RecoveryPoint,
    /// The partition had no producer state at `point.offset`.
    pub no_producers: bool,
}

/// What an entry tells the open of its partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DirPoint {
    pub point: RecoveryPoint,
    pub no_producers: bool,
}

/// Encodes `entries` as the whole file.
pub(crate) fn encode(entries: &[Entry]) -> Vec<u8> {
    let names: usize = entries.iter().map(|e| e.dir_name.len()).sum();
    let mut body = Vec::with_capacity(4 + entries.len() * ENTRY_FIXED_BYTES + names);
    // Counts and name lengths saturate: a partition name is at most 255 bytes and a data
    // directory never holds 2^32 partitions; an entry that would not fit is left out.
    let fits = |e: &&Entry| u16::try_from(e.dir_name.len()).is_ok();
    let count = entries.iter().filter(fits).count().min(u32::MAX as usize);
    body.extend_from_slice(&(count as u32).to_be_bytes());
    for e in entries.iter().filter(fits).take(count) {
        body.extend_from_slice(&(e.dir_name.len() as u16).to_be_bytes());
        body.extend_from_slice(e.dir_name.as_bytes());
        body.extend_from_slice(&e.topic_id.to_be_bytes());
        body.extend_from_slice(&e.point.offset.to_be_bytes());
        body.extend_from_slice(&e.point.segment_base.to_be_bytes());
        body.extend_from_slice(&e.point.position.to_be_bytes());
        body.extend_from_slice(&e.point.max_timestamp.to_be_bytes());
        body.push(if e.no_producers { NO_PRODUCERS } else { 0 });
    }
    sealed::seal(MAGIC, VERSION, &body)
}

/// Splits off the first `n` bytes of `b`.
fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if b.len() < n {
        return None;
    }
    let (head, rest) = b.split_at(n);
    *b = rest;
    Some(head)
}

fn take_u64(b: &mut &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(take(b, 8)?.try_into().ok()?))
}

fn take_i64(b: &mut &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(take(b, 8)?.try_into().ok()?))
}

/// The entries of a well-formed file; `None` for anything else (wrong magic, version or CRC,
/// a count or length that runs past the end, trailing bytes, a name that is not UTF-8, an
/// entry whose point is impossible, unknown flags).
pub(crate) fn decode(bytes: &[u8]) -> Option<Vec<Entry>> {
    let mut b = sealed::open(MAGIC, VERSION, bytes)?;
    let count = u32::from_be_bytes(take(&mut b, 4)?.try_into().ok()?) as usize;
    // Each entry takes at least its fixed bytes: a count the body cannot hold is damage
    // (and never sizes an allocation).
    if count > b.len() / ENTRY_FIXED_BYTES {
        return None;
    }
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let len = u16::from_be_bytes(take(&mut b, 2)?.try_into().ok()?) as usize;
        let dir_name = std::str::from_utf8(take(&mut b, len)?).ok()?.to_string();
        let topic_id = take_u64(&mut b)?;
        let point = RecoveryPoint {
            offset: take_i64(&mut b)?,
            segment_base: take_i64(&mut b)?,
            position: take_u64(&mut b)?,
            max_timestamp: take_i64(&mut b)?,
        };
        let flags = *take(&mut b, 1)?.first()?;
        let sane = point.offset >= point.segment_base
            && point.segment_base >= 0
            && i64::try_from(point.position).is_ok();
        if !sane || flags & !NO_PRODUCERS != 0 {
            return None;
        }
        entries.push(Entry {
            dir_name,
            topic_id,
            point,
            no_producers: flags & NO_PRODUCERS != 0,
        });
    }
    b.is_empty().then_some(entries)
}

/// The path of the file in `data_dir`.
pub(crate) fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// The path the file is written to before its rename.
pub(crate) fn tmp_path(data_dir: &Path) -> PathBuf {
    data_dir.join(format!("{FILE_NAME}.tmp"))
}

/// The entries of `data_dir`'s file by directory name; empty (logged) when the file is
/// missing, damaged or too large: each partition then opens from its own files.
pub(crate) fn read(data_dir: &Path) -> Result<HashMap<String, Entry>> {
    let path = path(data_dir);
    let entries = match io::read_small(&path, MAX_FILE_BYTES)? {
        io::SmallFile::Missing => Vec::new(),
        io::SmallFile::TooLarge(len) => {
            log::warn!(
                "{}: {len} bytes, more than any recovery-points file; ignored (partitions open from their own files)",
                path.display()
            );
            Vec::new()
        }
        io::SmallFile::Bytes(b) => decode(&b).unwrap_or_else(|| {
            log::warn!(
                "{}: damaged or not a recovery-points file; ignored (partitions open from their own files)",
                path.display()
            );
            Vec::new()
        }),
    };
    Ok(entries
        .into_iter()
        .map(|e| (e.dir_name.clone(), e))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<Entry> {
        vec![
            Entry {
                dir_name: "orders-0".into(),
                topic_id: 0x0123_4567_89ab_cdef,
                point: RecoveryPoint {
                    offset: 110,
                    segment_base: 0,
                    position: 12_345,
                    max_timestamp: 1_700_000_000_000,
                },
                no_producers: true,
            },
            Entry {
                dir_name: "a.b_c-12".into(),
                topic_id: 7,
                point: RecoveryPoint {
                    offset: 40,
                    segment_base: 40,
                    position: 0,
                    max_timestamp: i64::MIN,
                },
                no_producers: false,
            },
        ]
    }

    #[test]
    fn round_trip_and_every_damage_is_refused() {
        let b = encode(&entries());
        assert_eq!(decode(&b), Some(entries()));
        assert_eq!(decode(&encode(&[])), Some(Vec::new()));
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 0x04;
            assert_eq!(decode(&bad), None, "byte {i}");
        }
        for len in 0..b.len() {
            assert_eq!(decode(&b[..len]), None, "length {len}");
        }
    }

    #[test]
    fn well_framed_nonsense_is_refused() {
        // A count larger than the body holds, impossible points, unknown flags, trailing bytes:
        // each sealed with a valid CRC, as a crafted file would be.
        let mut body = Vec::new();
        body.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(decode(&sealed::seal(MAGIC, VERSION, &body)), None);
        let good = encode(&entries());
        let inner = sealed::open(MAGIC, VERSION, &good).unwrap().to_vec();
        let mut trailing = inner.clone();
        trailing.push(0);
        assert_eq!(decode(&sealed::seal(MAGIC, VERSION, &trailing)), None);
        let mut flags = inner.clone();
        *flags.last_mut().unwrap() = 0x80;
        assert_eq!(decode(&sealed::seal(MAGIC, VERSION, &flags)), None);
        let mut e = entries();
        e[0].point.offset = -1;
        assert_eq!(decode(&encode(&e)), None);
        let mut e = entries();
        e[1].point.position = u64::MAX;
        assert_eq!(decode(&encode(&e)), None);
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes: Vec<u8>) {
            if let Some(entries) = decode(&bytes) {
                proptest::prop_assert_eq!(encode(&entries), bytes);
            }
        }

        #[test]
        fn entries_round_trip(
            raw in proptest::collection::vec(
                ("[a-z._-]{1,40}-[0-9]{1,4}", proptest::prelude::any::<u64>(), 0i64..1 << 40,
                 0i64..1 << 40, 0u64..1 << 40, proptest::prelude::any::<i64>(),
                 proptest::prelude::any::<bool>()),
                0..20,
            )
        ) {
            let entries: Vec<Entry> = raw
                .into_iter()
                .map(|(dir_name, topic_id, base, extra, position, max_timestamp, no_producers)| Entry {
                    dir_name,
                    topic_id,
                    point: RecoveryPoint {
                        offset: base + extra,
                        segment_base: base,
                        position,
                        max_timestamp,
                    },
                    no_producers,
                })
                .collect();
            let bytes = encode(&entries);
            proptest::prop_assert_eq!(decode(&bytes), Some(entries));
        }
    }

    #[test]
    fn a_missing_damaged_or_huge_file_reads_as_no_entries() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(read(tmp.path()).unwrap().is_empty());
        std::fs::write(path(tmp.path()), b"not a checkpoint").unwrap();
        assert!(read(tmp.path()).unwrap().is_empty());
        let f = std::fs::File::create(path(tmp.path())).unwrap();
        f.set_len(MAX_FILE_BYTES + 1).unwrap();
        assert!(read(tmp.path()).unwrap().is_empty());
        std::fs::write(path(tmp.path()), encode(&entries())).unwrap();
        let read = read(tmp.path()).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read["orders-0"], entries()[0]);
    }
}
