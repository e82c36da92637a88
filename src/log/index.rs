//! A segment's sparse offset index and time index.
//!
//! Entries live in memory and are written to `<base>.index` (8-byte entries: relative offset
//! u32, byte position u32) and `<base>.timeindex` (12-byte entries: timestamp i64, relative
//! offset u32), big-endian, when the segment is checkpointed or sealed.
//!
//! Invariants:
//! - Offset entries are strictly increasing in both offset and position; each maps the base
//!   offset of a batch to the batch's byte position.
//! - Time entries are strictly increasing in timestamp; entry `(t, o)` means every record of the
//!   segment at or before relative offset `o` (the last offset of the batch that reached `t`)
//!   has a timestamp `<= t`.
//! - Indexes are hints: a missing or short index only makes lookups scan further. A loaded index
//!   that breaks an invariant or points past its log is discarded and rebuilt from the log.

use std::fs::OpenOptions;
use std::path::Path;

use crate::error::{Error, Result};
use crate::io;

/// Bytes of an offset-index entry.
pub(crate) const OFFSET_ENTRY_BYTES: usize = 8;
/// Bytes of a time-index entry.
pub(crate) const TIME_ENTRY_BYTES: usize = 12;

/// Offset index entry: a batch's base offset (relative to the segment) and its position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// Time index entry: the largest timestamp so far, and the batch it was reached by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

/// What [`SegmentIndex::load_files`] found.
#[derive(Debug)]
pub(crate) enum Loaded {
    /// Both files, consistent with the log.
    Index(SegmentIndex),
    /// Neither file, beside a non-empty log.
    Missing,
    /// Files missing one of the two, too large, or inconsistent with the log: rebuilt.
    Unusable,
}

/// Both indexes of one segment.
#[derive(Debug, Default)]
pub(crate) struct SegmentIndex {
    offsets: Vec<OffsetEntry>,
    times: Vec<TimeEntry>,
    offsets_persisted: usize,
    times_persisted: usize,
    /// The files on disk may hold entries this index no longer has (after a rebuild): the next
    /// persist rewrites both whole, even when the index is empty.
    rewrite: bool,
}

impl SegmentIndex {
    /// Position of the last indexed batch at or before `relative_offset`; 0 if none.
    pub(crate) fn position_for(&self, relative_offset: u32) -> u32 {
        self.entry_for(relative_offset).map_or(0, |e| e.position)
    }

    /// The last entry at or before `relative_offset`, if any.
    pub(crate) fn entry_for(&self, relative_offset: u32) -> Option<OffsetEntry> {
        let i = self
            .offsets
            .partition_point(|e| e.relative_offset <= relative_offset);
        i.checked_sub(1).map(|i| self.offsets[i])
    }

    /// A relative offset from which a scan for the first record with timestamp `>= target`
    /// may start: every record before it is older than `target`.
    pub(crate) fn scan_start_for_time(&self, target: i64) -> u32 {
        let i = self.times.partition_point(|e| e.timestamp < target);
        if i == 0 {
            0
        } else {
            self.times[i - 1].relative_offset
        }
    }

    /// The largest timestamp recorded by the time index, if any.
    pub(crate) fn max_timestamp(&self) -> Option<i64> {
        self.times.last().map(|e| e.timestamp)
    }

    pub(crate) fn push_offset(&mut self, entry: OffsetEntry) {
        if let Some(last) = self.offsets.last() {
            debug_assert!(entry.relative_offset > last.relative_offset);
            debug_assert!(entry.position > last.position);
            if entry.relative_offset <= last.relative_offset || entry.position <= last.position {
                return;
            }
        }
        self.offsets.push(entry);
    }

    /// Records a new maximum timestamp; ignored unless it is larger than the last one.
    pub(crate) fn push_time(&mut self, entry: TimeEntry) {
        if self
            .times
            .last()
            .is_some_and(|last| entry.timestamp <= last.timestamp)
        {
            return;
        }
        self.times.push(entry);
    }

    /// Drops every entry at or past `position` / `relative_offset` (after a truncation).
    pub(crate) fn truncate(&mut self, position: u32, relative_offset: u32) {
        self.offsets.retain(|e| e.position < position);
        self.times.retain(|e| e.relative_offset < relative_offset);
        self.offsets_persisted = self.offsets_persisted.min(self.offsets.len());
        self.times_persisted = self.times_persisted.min(self.times.len());
    }

    /// Loads both index files. `None` when either breaks an invariant or disagrees with the log
    /// (an entry past `log_size`, or an offset past `next_relative_offset`): rebuild it then.
    pub(crate) fn load(
        offset_path: &Path,
        time_path: &Path,
        log_size: u64,
        next_relative_offset: Option<u64>,
    ) -> Result<Option<SegmentIndex>> {
        Ok(
            match Self::load_files(offset_path, time_path, log_size, next_relative_offset)? {
                Loaded::Index(index) => Some(index),
                Loaded::Missing | Loaded::Unusable => None,
            },
        )
    }

    /// [`SegmentIndex::load`], telling a non-empty log's two missing files (what a clean
    /// close of a small active segment leaves, see `PartitionLog::checkpoint_begin`) from
    /// files that are there but cannot be used.
    pub(crate) fn load_files(
        offset_path: &Path,
        time_path: &Path,
        log_size: u64,
        next_relative_offset: Option<u64>,
    ) -> Result<Loaded> {
        // Each entry names a different batch of at least a header's size (the time index has
        // one more, its final max timestamp): a larger file is damage, and reading a huge
        // (sparse) one whole made the partition fail to open or exhausted memory.
        let batches = log_size / crate::codec::HEADER_BYTES as u64 + 2;
        let bound = |entry: usize| batches.saturating_mul(entry as u64);
        let offset_bytes = io::read_small(offset_path, bound(OFFSET_ENTRY_BYTES))?;
        let time_bytes = io::read_small(time_path, bound(TIME_ENTRY_BYTES))?;
        let (offset_bytes, time_bytes) = match (offset_bytes, time_bytes) {
            (io::SmallFile::Bytes(o), io::SmallFile::Bytes(t)) => (o, t),
            (io::SmallFile::TooLarge(_), _) | (_, io::SmallFile::TooLarge(_)) => {
                return Ok(Loaded::Unusable)
            }
            _ if log_size == 0 => return Ok(Loaded::Index(SegmentIndex::default())),
            // A non-empty log whose index files are missing: rebuilt from the log.
            (io::SmallFile::Missing, io::SmallFile::Missing) => return Ok(Loaded::Missing),
            _ => return Ok(Loaded::Unusable),
        };
        if offset_bytes.len() % OFFSET_ENTRY_BYTES != 0 || time_bytes.len() % TIME_ENTRY_BYTES != 0
        {
            return Ok(Loaded::Unusable);
        }
        let mut index = SegmentIndex::default();
        for chunk in offset_bytes.chunks_exact(OFFSET_ENTRY_BYTES) {
            let entry = OffsetEntry {
                relative_offset: u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]),
                position: u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]),
            };
            let in_log = u64::from(entry.position) < log_size;
            let in_offsets =
                next_relative_offset.is_none_or(|n| u64::from(entry.relative_offset) < n);
            let increasing = index.offsets.last().is_none_or(|l| {
                entry.relative_offset > l.relative_offset && entry.position > l.position
            });
            if !(in_log && in_offsets && increasing) {
                return Ok(Loaded::Unusable);
            }
            index.offsets.push(entry);
        }
        for chunk in time_bytes.chunks_exact(TIME_ENTRY_BYTES) {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&chunk[0..8]);
            let entry = TimeEntry {
                timestamp: i64::from_be_bytes(ts),
                relative_offset: u32::from_be_bytes([chunk[8], chunk[9], chunk[10], chunk[11]]),
            };
            let in_offsets =
                next_relative_offset.is_none_or(|n| u64::from(entry.relative_offset) < n);
            let increasing = index
                .times
                .last()
                .is_none_or(|l| entry.timestamp > l.timestamp);
            if !(in_offsets && increasing) {
                return Ok(Loaded::Unusable);
            }
            index.times.push(entry);
        }
        index.offsets_persisted = index.offsets.len();
        index.times_persisted = index.times.len();
        Ok(Loaded::Index(index))
    }

    /// Writes entries not yet on disk and fsyncs the files; true if it wrote anything.
    pub(crate) fn persist(&mut self, offset_path: &Path, time_path: &Path) -> Result<bool> {
        let plan = self.plan_persist(offset_path, time_path);
        plan.write(offset_path, time_path)?;
        self.persisted(&plan);
        Ok(plan.writes())
    }

    /// What the next persist must write, copied out so the files can be written and fsynced
    /// without holding the index (appends and reads then never wait on that I/O).
    pub(crate) fn plan_persist(&self, offset_path: &Path, time_path: &Path) -> PersistPlan {
        let offsets = (self.offsets_persisted < self.offsets.len()
            || self.rewrite
            || !offset_path.exists())
        .then(|| {
            let mut bytes = Vec::with_capacity((self.offsets.len() - self.offsets_persisted) * 8);
            for e in &self.offsets[self.offsets_persisted..] {
                bytes.extend_from_slice(&e.relative_offset.to_be_bytes());
                bytes.extend_from_slice(&e.position.to_be_bytes());
            }
            let at = (self.offsets_persisted * OFFSET_ENTRY_BYTES) as u64;
            (bytes, at)
        });
        let times = (self.times_persisted < self.times.len()
            || self.rewrite
            || !time_path.exists())
        .then(|| {
            let mut bytes = Vec::with_capacity((self.times.len() - self.times_persisted) * 12);
            for e in &self.times[self.times_persisted..] {
                bytes.extend_from_slice(&e.timestamp.to_be_bytes());
                bytes.extend_from_slice(&e.relative_offset.to_be_bytes());
            }
            let at = (self.times_persisted * TIME_ENTRY_BYTES) as u64;
            (bytes, at)
        });
        PersistPlan {
            offsets,
            times,
            offsets_count: self.offsets.len(),
            times_count: self.times.len(),
        }
    }

    /// Records that `plan` (made from this index, whose entries only grew since) is on disk.
    pub(crate) fn persisted(&mut self, plan: &PersistPlan) {
        self.offsets_persisted = plan.offsets_count.min(self.offsets.len());
        self.times_persisted = plan.times_count.min(self.times.len());
        self.rewrite = false;
    }

    /// Forgets what was persisted, so the next persist rewrites both files whole.
    pub(crate) fn mark_unpersisted(&mut self) {
        self.offsets_persisted = 0;
        self.times_persisted = 0;
        self.rewrite = true;
    }
}

/// The tails of both index files one persist writes (see [`SegmentIndex::plan_persist`]).
#[derive(Debug)]
pub(crate) struct PersistPlan {
    offsets: Option<(Vec<u8>, u64)>,
    times: Option<(Vec<u8>, u64)>,
    offsets_count: usize,
    times_count: usize,
}

impl PersistPlan {
    /// Whether the plan writes anything.
    pub(crate) fn writes(&self) -> bool {
        self.offsets.is_some() || self.times.is_some()
    }

    /// Writes and fsyncs the planned tails. A failure leaves the index to be rewritten whole
    /// by the caller (`mark_unpersisted`): nothing trusts these files until a persist succeeds.
    pub(crate) fn write(&self, offset_path: &Path, time_path: &Path) -> Result<()> {
        self.write_tails(offset_path, time_path, true)
    }

    /// Writes the planned tails without fsyncing them: for a batched checkpoint, whose one
    /// pass of syncs covers them before anything trusts them.
    pub(crate) fn write_unsynced(&self, offset_path: &Path, time_path: &Path) -> Result<()> {
        self.write_tails(offset_path, time_path, false)
    }

    fn write_tails(&self, offset_path: &Path, time_path: &Path, sync: bool) -> Result<()> {
        if let Some((bytes, at)) = &self.offsets {
            write_tail(offset_path, bytes, *at, sync)?;
        }
        if let Some((bytes, at)) = &self.times {
            write_tail(time_path, bytes, *at, sync)?;
        }
        Ok(())
    }
}

/// Writes `bytes` at `position`, cuts the file there, and fsyncs it if `sync`.
fn write_tail(path: &Path, bytes: &[u8], position: u64, sync: bool) -> Result<()> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io("opening index", path, e))?;
    io::write_all_at(&file, bytes, position, path)?;
    file.set_len(position + bytes.len() as u64)
        .map_err(|e| Error::io("truncating index", path, e))?;
    if !sync {
        return Ok(());
    }
    io::sync::data(&file, path).map_err(|e| Error::io("syncing index", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SegmentIndex {
        let mut ix = SegmentIndex::default();
        for i in 1..=5u32 {
            ix.push_offset(OffsetEntry {
                relative_offset: i * 10,
                position: i * 1000,
            });
            ix.push_time(TimeEntry {
                timestamp: i64::from(i) * 100,
                relative_offset: i * 10,
            });
        }
        ix
    }

    #[test]
    fn lookups_find_greatest_entry_at_or_before() {
        let ix = sample();
        assert_eq!(ix.position_for(0), 0);
        assert_eq!(ix.position_for(9), 0);
        assert_eq!(ix.position_for(10), 1000);
        assert_eq!(ix.position_for(35), 3000);
        assert_eq!(ix.position_for(1_000), 5000);
        assert_eq!(ix.scan_start_for_time(50), 0);
        assert_eq!(ix.scan_start_for_time(100), 0);
        assert_eq!(ix.scan_start_for_time(101), 10);
        assert_eq!(ix.scan_start_for_time(10_000), 50);
    }

    #[test]
    fn persist_load_round_trip_and_rejects_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let (o, t) = (dir.path().join("0.index"), dir.path().join("0.timeindex"));
        let mut ix = sample();
        assert!(ix.persist(&o, &t).unwrap());
        assert!(!ix.persist(&o, &t).unwrap());
        ix.push_offset(OffsetEntry {
            relative_offset: 60,
            position: 6000,
        });
        assert!(ix.persist(&o, &t).unwrap());
        let loaded = SegmentIndex::load(&o, &t, 10_000, Some(100))
            .unwrap()
            .unwrap();
        assert_eq!(loaded.offsets, ix.offsets);
        assert_eq!(loaded.times, ix.times);
        // An entry past the log's end means the index is ahead of its log.
        assert!(SegmentIndex::load(&o, &t, 5_500, Some(100))
            .unwrap()
            .is_none());
        // A torn entry.
        std::fs::write(&o, [0u8; 7]).unwrap();
        assert!(SegmentIndex::load(&o, &t, 10_000, None).unwrap().is_none());
        // Decreasing entries.
        std::fs::write(&o, [0, 0, 0, 9, 0, 0, 0, 9, 0, 0, 0, 8, 0, 0, 0, 10]).unwrap();
        assert!(SegmentIndex::load(&o, &t, 10_000, None).unwrap().is_none());
    }

    #[test]
    fn truncate_drops_entries_past_the_cut() {
        let mut ix = sample();
        ix.truncate(3000, 30);
        assert_eq!(ix.position_for(1_000), 2000);
        assert_eq!(ix.max_timestamp(), Some(200));
    }
}
