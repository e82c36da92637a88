//! One segment: a `.log` file of whole batches, named by its 20-digit base offset, and its
//! sparse indexes.
//!
//! Invariants:
//! - Bytes below `size` are whole batches in offset order, and never change while the segment
//!   is in the log (compaction replaces whole segments; it never rewrites one in place).
//! - `size` and `next_offset` are published (release) after the bytes they cover are written,
//!   so a reader that loads them (acquire) reads only whole batches.
//! - Only the partition's writer (holding the writer lock) appends, truncates or indexes.
//! - A segment's map covers at least the size a reader loaded; a growing segment's map runs
//!   at most about twice its size ahead (from 1 MiB, doubling, capped at `segment.bytes`), so
//!   address space grows with data, not with the number of partitions times `segment.bytes`.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use super::file_budget::{FileBudget, Handles};
use super::index::{Loaded, OffsetEntry, PersistPlan, SegmentIndex, TimeEntry};
use super::txn_index::{self, AbortedTxn};
use crate::codec::{self, BatchHeader, DecodeError, HEADER_BYTES};
use crate::error::{Error, Result};
use crate::io;
use crate::io::SegmentMap;

/// No timestamp seen yet.
pub(crate) const NO_TIMESTAMP: i64 = i64::MIN;

/// The least a growing segment's map covers (see `Segment::mapped`).
const MAP_MIN_BYTES: u64 = 1 << 20;

/// Largest chunk read at once while scanning during recovery.
const SCAN_CHUNK_BYTES: usize = 1 << 20;

/// The file name of a segment's log for `base_offset`.
pub(crate) fn file_name(base_offset: i64, extension: &str) -> String {
    format!("{base_offset:020}.{extension}")
}

/// A segment's log file and indexes.
#[derive(Debug)]
pub(crate) struct Segment {
    base_offset: i64,
    log_path: PathBuf,
    index_path: PathBuf,
    time_index_path: PathBuf,
    txn_index_path: PathBuf,
    /// The log file and its map, opened on first use and closed by the budget when it needs
    /// the descriptor for another segment (see `file_budget`).
    handles: Arc<Handles>,
    budget: Arc<FileBudget>,
    size: AtomicU64,
    next_offset: AtomicI64,
    max_timestamp: AtomicI64,
    first_timestamp: AtomicI64,
    created_ms: i64,
    index: RwLock<SegmentIndex>,
    /// Bytes below this are known to hold well-framed records (appended from `BatchBuilder`
    /// in this process, or fully checked once), so reads check only their CRC. Advanced only
    /// contiguously from 0.
    framing_checked: AtomicU64,
    /// The most a map of this segment is made beyond its size: the size it may grow to
    /// (`segment.bytes`) for an active segment, 0 for a sealed one.
    map_len_hint: u64,
    /// True once the files were deleted. Held while the index files are written, so a
    /// persist racing with retention never writes index files back after their deletion.
    files: Mutex<FilesState>,
    /// The aborted transactions whose markers are in this segment (see `txn_index`).
    txn: Mutex<TxnIndexState>,
}

/// A segment's transaction index in memory.
#[derive(Debug, Default)]
struct TxnIndexState {
    entries: Vec<AbortedTxn>,
    /// The file does not hold `entries` yet.
    dirty: bool,
}

/// Whether a segment's files still exist (see `Segment::files`).
#[derive(Debug, Default)]
struct FilesState {
    deleted: bool,
}

/// Up to one header's worth of bytes at `pos`, for describing damage.
fn buf_at(segment: &Segment, pos: u64, file_len: u64) -> Result<Vec<u8>> {
    let len = (file_len - pos).min(1 << 16) as usize;
    let mut buf = vec![0u8; len];
    io::read_at(&*segment.file()?, &mut buf, pos, &segment.log_path)?;
    Ok(buf)
}

/// Why [`Segment::append`] failed.
#[derive(Debug)]
pub(crate) enum AppendError {
    /// The write failed and the file was cut back to its published size: the segment is as
    /// it was, and a later append may succeed.
    Undone(Error),
    /// The write failed and the partial batch could not be cut off.
    Torn(Error),
}

/// Where [`Segment::scan`] stopped, and what it read.
struct Scanned {
    /// The byte after the last whole batch read.
    end: u64,
    /// The offset after that batch.
    next: i64,
    max_timestamp: i64,
    /// The first batch's max timestamp, when the scan started at byte 0.
    first_timestamp: i64,
    /// Each batch's base offset was the offset after the one before (the first: the offset
    /// the scan started at).
    contiguous: bool,
}

/// What a recovery scan found.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScanOutcome {
    /// Bytes truncated off the end (0 when the log was whole).
    pub truncated_bytes: u64,
}

impl Segment {
    /// Creates a new empty segment. The caller fsyncs the directory.
    pub(crate) fn create(
        dir: &Path,
        base_offset: i64,
        now_ms: i64,
        map_len_hint: u64,
        budget: &Arc<FileBudget>,
    ) -> Result<Segment> {
        let segment = Segment::create_in_empty_dir(dir, base_offset, now_ms, map_len_hint, budget)?;
        // Stale index files from an earlier life of this base offset would mislead lookups;
        // the index files are written when the segment is first synced.
        for path in [
            &segment.index_path,
            &segment.time_index_path,
            &segment.txn_index_path,
        ] {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("removing stale index", path.as_path(), e)),
            }
        }
        Ok(segment)
    }

    /// [`Segment::create`] in a directory known to hold no file of this base offset (made
    /// empty just now by the caller): no stale index file to remove.
    pub(crate) fn create_in_empty_dir(
        dir: &Path,
        base_offset: i64,
        now_ms: i64,
        map_len_hint: u64,
        budget: &Arc<FileBudget>,
    ) -> Result<Segment> {
        let segment = Segment::with_size(dir, base_offset, 0, now_ms, map_len_hint, budget);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&segment.log_path)
            .map_err(|e| Error::io("creating segment", &segment.log_path, e))?;
        *segment.handles.file.write() = Some(Arc::new(file));
        budget.opened(&segment.handles);
        Ok(segment)
    }

    /// Opens an existing segment; the caller loads or rebuilds its index and sets its end.
    /// The file itself is opened on first use (see `file_budget`).
    pub(crate) fn open(
        dir: &Path,
        base_offset: i64,
        now_ms: i64,
        map_len_hint: u64,
        budget: &Arc<FileBudget>,
    ) -> Result<Segment> {
        let log_path = dir.join(file_name(base_offset, "log"));
        let size = std::fs::metadata(&log_path)
            .map_err(|e| Error::io("opening segment", &log_path, e))?
            .len();
        Ok(Segment::with_size(
            dir,
            base_offset,
            size,
            now_ms,
            map_len_hint,
            budget,
        ))
    }

    fn with_size(
        dir: &Path,
        base_offset: i64,
        size: u64,
        now_ms: i64,
        map_len_hint: u64,
        budget: &Arc<FileBudget>,
    ) -> Segment {
        // The offset formatted once for the four names, not per name (docs/ARCHITECTURE.md,
        // "Fourteenth session: the temporary broker").
        let log_path = dir.join(file_name(base_offset, "log"));
        let with = |ext: &str| {
            let mut p = log_path.clone();
            p.set_extension(ext);
            p
        };
        let (index_path, time_index_path, txn_index_path) =
            (with("index"), with("timeindex"), with("txnindex"));
        Segment {
            base_offset,
            log_path,
            index_path,
            time_index_path,
            txn_index_path,
            handles: Handles::new(budget.clone()),
            budget: budget.clone(),
            size: AtomicU64::new(size),
            next_offset: AtomicI64::new(base_offset),
            max_timestamp: AtomicI64::new(NO_TIMESTAMP),
            first_timestamp: AtomicI64::new(NO_TIMESTAMP),
            created_ms: now_ms,
            index: RwLock::new(SegmentIndex::default()),
            framing_checked: AtomicU64::new(0),
            map_len_hint,
            files: Mutex::new(FilesState::default()),
            txn: Mutex::new(TxnIndexState::default()),
        }
    }

    /// A map covering at least `size` bytes (made, or remade larger, as needed).
    ///
    /// A growing (active) segment is mapped only a little past what is written, not as large
    /// as it may grow: each such map used to reserve a whole `segment.bytes` of address space,
    /// so reads failed after ~60 partitions under a 4 GiB `RLIMIT_AS`. The first map is at
    /// least [`MAP_MIN_BYTES`] and each remap at least doubles, so a segment growing to
    /// `segment.bytes` is remapped only a few times, and never past `map_len_hint` unless its
    /// size is. A reader holding an older, shorter map keeps it (readers touch only bytes
    /// below the size they loaded, which that map covers).
    fn mapped(&self, size: u64) -> Result<Arc<SegmentMap>> {
        self.handles.used.store(true, Ordering::Relaxed);
        if let Some(map) = self.handles.map.read().as_ref() {
            if map.len() as u64 >= size {
                return Ok(map.clone());
            }
        }
        // Before the map lock: opening the file may close other segments' files, which
        // takes their map locks (never blocking) under the budget's lock.
        let file = self.file()?;
        let mut slot = self.handles.map.write();
        let current = match slot.as_ref() {
            Some(map) if map.len() as u64 >= size => return Ok(map.clone()),
            Some(map) => map.len() as u64,
            None => 0,
        };
        let len = current
            .saturating_mul(2)
            .max(MAP_MIN_BYTES)
            .min(self.map_len_hint)
            .max(size)
            .max(1);
        let len = usize::try_from(len).map_err(|_| Error::Corrupt {
            path: self.log_path.clone(),
            position: size,
            reason: "segment larger than the address space".into(),
        })?;
        let map = SegmentMap::new(&file, len, &self.log_path)?;
        *slot = Some(map.clone());
        Ok(map)
    }

    /// Drops the segment's map (a reader holding it keeps it until done); the next read
    /// would make a new one. For a closed log, so its address space is given back.
    pub(crate) fn release_map(&self) {
        *self.handles.map.write() = None;
    }

    /// The log file, opened now if the budget closed it (or it was never opened).
    fn file(&self) -> Result<Arc<File>> {
        self.handles.used.store(true, Ordering::Relaxed);
        if let Some(f) = self.handles.file.read().as_ref() {
            return Ok(f.clone());
        }
        let file = {
            let mut slot = self.handles.file.write();
            if let Some(f) = slot.as_ref() {
                return Ok(f.clone());
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&self.log_path)
                .map_err(|e| Error::io("opening segment", &self.log_path, e))?;
            let file = Arc::new(file);
            *slot = Some(file.clone());
            file
        };
        self.budget.opened(&self.handles);
        Ok(file)
    }

    /// Records that a sync (a batched checkpoint's) covered the first `size` bytes: the
    /// budget may close the file again.
    pub(crate) fn mark_synced(&self, size: u64) {
        self.handles.synced.fetch_max(size, Ordering::AcqRel);
    }

    pub(crate) fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Published size in bytes.
    pub(crate) fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// The offset after the last batch (the base offset when empty).
    pub(crate) fn next_offset(&self) -> i64 {
        self.next_offset.load(Ordering::Acquire)
    }

    /// Largest record timestamp, or [`NO_TIMESTAMP`].
    pub(crate) fn max_timestamp(&self) -> i64 {
        self.max_timestamp.load(Ordering::Acquire)
    }

    /// Timestamp of the first batch, or [`NO_TIMESTAMP`].
    pub(crate) fn first_timestamp(&self) -> i64 {
        self.first_timestamp.load(Ordering::Acquire)
    }

    /// The time retention ages the segment by (Kafka's `LogSegment.largestTimestamp`): its
    /// largest record timestamp; for a segment holding records but no valid (non-negative)
    /// timestamp, the log file's last-modified time (the time it was opened here if the file
    /// system cannot say). `None` for an empty segment.
    pub(crate) fn retention_timestamp(&self) -> Option<i64> {
        let max = self.max_timestamp();
        if max >= 0 {
            return Some(max);
        }
        if self.is_empty() {
            return None;
        }
        let modified = std::fs::metadata(&self.log_path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Some(modified.unwrap_or(self.created_ms))
    }

    pub(crate) fn created_ms(&self) -> i64 {
        self.created_ms
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.size() == 0
    }

    /// Sets the end after loading: trusted size, next offset and max timestamp.
    pub(crate) fn set_loaded_end(&self, size: u64, next_offset: i64, max_timestamp: i64) {
        self.size.store(size, Ordering::Release);
        self.next_offset.store(next_offset, Ordering::Release);
        self.max_timestamp.store(max_timestamp, Ordering::Release);
    }

    /// Installs an index loaded from disk; `None` when the files are missing or inconsistent.
    pub(crate) fn load_index(&self, next_offset: Option<i64>) -> Result<bool> {
        let next_relative = next_offset.map(|n| (n - self.base_offset).max(0) as u64);
        match SegmentIndex::load(
            &self.index_path,
            &self.time_index_path,
            self.size(),
            next_relative,
        )? {
            Some(index) => {
                *self.index.write() = index;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// [`Segment::load_index`] for the segment a recovery point names: `None` when both index
    /// files are missing beside a non-empty log (see [`Segment::rebuild_index`]), else
    /// whether the index loaded.
    pub(crate) fn load_index_unless_missing(&self) -> Result<Option<bool>> {
        match SegmentIndex::load_files(&self.index_path, &self.time_index_path, self.size(), None)?
        {
            Loaded::Index(index) => {
                *self.index.write() = index;
                Ok(Some(true))
            }
            Loaded::Missing => Ok(None),
            Loaded::Unusable => Ok(Some(false)),
        }
    }

    /// The index entry at or before `relative_offset` (tests).
    #[cfg(test)]
    pub(crate) fn index_entry_for(&self, relative_offset: u32) -> Option<OffsetEntry> {
        self.index.read().entry_for(relative_offset)
    }

    /// Bytes known well framed (tests).
    #[cfg(test)]
    pub(crate) fn framing_checked(&self) -> u64 {
        self.framing_checked.load(Ordering::Acquire)
    }

    /// The timestamp the time index ends with (the segment's max after it was sealed).
    pub(crate) fn indexed_max_timestamp(&self) -> Option<i64> {
        self.index.read().max_timestamp()
    }

    /// Appends one encoded batch (base offset already stamped) at the end. Writer only.
    pub(crate) fn append(
        &self,
        batch: &[u8],
        header: &BatchHeader,
        index_interval_bytes: u32,
        bytes_since_index: &mut u64,
    ) -> std::result::Result<(), AppendError> {
        self.append_run(
            &[batch],
            std::slice::from_ref(header),
            index_interval_bytes,
            bytes_since_index,
        )
    }

    /// Appends encoded batches (base offsets already stamped, consecutive) at the end with one
    /// write, then indexes and publishes each as [`Segment::append`] does. `batches[i]` has
    /// header `headers[i]`. Writer only. A failed write publishes none of them.
    pub(crate) fn append_run(
        &self,
        batches: &[&[u8]],
        headers: &[BatchHeader],
        index_interval_bytes: u32,
        bytes_since_index: &mut u64,
    ) -> std::result::Result<(), AppendError> {
        debug_assert_eq!(batches.len(), headers.len());
        let start = self.size.load(Ordering::Relaxed);
        let run_bytes: u64 = batches.iter().map(|b| b.len() as u64).sum();
        debug_assert!(headers
            .first()
            .is_none_or(|h| h.base_offset >= self.next_offset.load(Ordering::Relaxed)));
        debug_assert!(u32::try_from(start + run_bytes).is_ok());
        let file = self.file().map_err(AppendError::Undone)?;
        // Pinned before the write: the budget never closes a file holding unsynced bytes.
        self.handles
            .written
            .fetch_max(start + run_bytes, Ordering::AcqRel);
        let written = match batches {
            [one] => io::write_all_at(&file, one, start, &self.log_path),
            _ => io::write_all_vectored_at(&file, batches, start, &self.log_path),
        };
        if let Err(e) = written {
            // Nothing was published. Cutting off whatever part of the run reached the file
            // leaves file, page cache and published size agreeing again, so the log can take
            // the next append once space returns (a full disk, a file-size limit).
            return Err(match file.set_len(start) {
                Ok(()) => AppendError::Undone(e),
                Err(_) => AppendError::Torn(e),
            });
        }
        let mut position = start;
        for (batch, header) in batches.iter().zip(headers) {
            self.published(
                batch.len() as u64,
                header,
                position,
                index_interval_bytes,
                bytes_since_index,
            );
            position += batch.len() as u64;
        }
        Ok(())
    }

    /// Indexes and publishes a batch of `len` bytes written at `position`.
    fn published(
        &self,
        len: u64,
        header: &BatchHeader,
        position: u64,
        index_interval_bytes: u32,
        bytes_since_index: &mut u64,
    ) {
        let relative = (header.base_offset - self.base_offset) as u32;
        let last_relative = (header.last_offset() - self.base_offset) as u32;
        let max_ts = self
            .max_timestamp
            .load(Ordering::Relaxed)
            .max(header.max_timestamp);
        if *bytes_since_index > u64::from(index_interval_bytes) {
            let mut index = self.index.write();
            index.push_offset(OffsetEntry {
                relative_offset: relative,
                position: position as u32,
            });
            index.push_time(TimeEntry {
                timestamp: max_ts,
                relative_offset: last_relative,
            });
            *bytes_since_index = 0;
        }
        *bytes_since_index += len;
        if position == 0 {
            self.first_timestamp
                .store(header.max_timestamp, Ordering::Release);
        }
        self.max_timestamp.store(max_ts, Ordering::Release);
        // Every appended batch comes from `BatchBuilder` (the log's own or the producer's), so
        // its framing is known good: reads of it check only the CRC. Only a contiguous
        // watermark moves (a segment recovered without a full scan starts below its end).
        let end = position + len;
        let _ = self.framing_checked.compare_exchange(
            position,
            end,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
        // The next offset is published before the size: a reader that sees the new size (with
        // Acquire) also sees a next offset covering it, which `read` relies on.
        self.next_offset
            .store(header.next_offset(), Ordering::Release);
        self.size.store(end, Ordering::Release);
    }

    /// Reads whole batches starting with the one that holds `from` (or the first after it),
    /// up to `max_bytes` (at least one batch, however large), and only batches that end before
    /// `below` (the log end offset the caller loaded). `None` when the segment holds nothing
    /// at or after `from` and below `below`. Every returned batch has been checked (CRC and
    /// framing). The bytes are shared with the segment's map, not copied, unless a batch is
    /// compressed: the read then returns every batch uncompressed (see [`Segment::inflate`]),
    /// so readers see records whatever the producer or topic compressed them with.
    ///
    /// `below` is what keeps a read within the published log end: the writer publishes a
    /// segment's size before the partition's log end, so the size a reader loads may already
    /// cover a batch at or past the log end it loaded; that batch is not returned.
    pub(crate) fn read(&self, from: i64, max_bytes: usize, below: i64) -> Result<Option<Bytes>> {
        Ok(self
            .read_batches(from, max_bytes, below, true, None)?
            .map(|(_, _, bytes)| bytes))
    }

    /// [`Segment::read`] starting at byte `hint` when the batch there starts at `from` (where
    /// a previous read of the same reader ended), instead of at the index entry below `from`
    /// and a scan of batch headers from there. A hint that does not land on that batch is
    /// ignored, as an index entry that does not land is. Returns also the byte position after
    /// the last batch read: the next read's hint.
    pub(crate) fn read_hinted(
        &self,
        from: i64,
        max_bytes: usize,
        below: i64,
        hint: Option<usize>,
    ) -> Result<Option<(usize, Bytes)>> {
        Ok(self
            .read_batches(from, max_bytes, below, true, hint)?
            .map(|(_, end, bytes)| (end, bytes)))
    }

    /// [`Segment::read`] without decompressing: the batches as stored (the log cleaner keeps
    /// each batch's codec), and the byte position in the file where they start. The records of
    /// a compressed batch have not been checked.
    pub(crate) fn read_stored(
        &self,
        from: i64,
        max_bytes: usize,
        below: i64,
    ) -> Result<Option<(u64, Bytes)>> {
        Ok(self
            .read_batches(from, max_bytes, below, false, None)?
            .map(|(start, _, bytes)| (start, bytes)))
    }

    fn read_batches(
        &self,
        from: i64,
        max_bytes: usize,
        below: i64,
        inflate: bool,
        hint: Option<usize>,
    ) -> Result<Option<(u64, usize, Bytes)>> {
        let size = self.size();
        if size == 0 || from >= below {
            return Ok(None);
        }
        // Loaded after the size: `append` publishes the next offset first, so this one covers
        // every batch below `size`.
        let end_offset = self.next_offset();
        let map = self.mapped(size)?;
        let data = map.slice(0, size as usize);
        // A reader's hint is used only where it lands on the batch that starts at `from`.
        // Each batch header is decoded once: the header of the batch at `position`, once
        // looked at, is kept in `ahead` for the step that reads that batch.
        let mut ahead = None;
        let hinted = hint.and_then(|h| {
            let header = codec::peek_header(data.get(h..)?).ok()?;
            (header.base_offset == from).then(|| {
                ahead = Some(Ok(header));
                h
            })
        });
        let entry = match hinted {
            Some(_) => None,
            None => {
                let relative = u32::try_from((from - self.base_offset).max(0)).unwrap_or(u32::MAX);
                self.index.read().entry_for(relative)
            }
        };
        let mut position = hinted.unwrap_or_else(|| entry.map_or(0, |e| e.position as usize));
        // The offset the batch at `position` must start at or after.
        let mut min_base = if hinted.is_some() {
            from
        } else {
            self.base_offset
        };
        // Indexes carry no checksum: an entry that does not land on the batch it names is a
        // damaged index, not a damaged log. Scan from the start instead (correct, slower).
        if let Some(e) = entry {
            let named = self.base_offset + i64::from(e.relative_offset);
            let landed = data
                .get(position..)
                .and_then(|rest| codec::peek_header(rest).ok())
                .filter(|h| h.base_offset == named);
            if landed.is_some() {
                min_base = named;
                ahead = landed.map(Ok);
            } else {
                position = 0;
            }
        }
        loop {
            if position >= data.len() {
                return Ok(None);
            }
            let header = ahead
                .take()
                .unwrap_or_else(|| codec::peek_header(&data[position..]))
                .map_err(|e| self.corrupt(position as u64, e))?;
            self.check_order(position, &header, min_base, end_offset)?;
            if header.last_offset() >= below {
                return Ok(None);
            }
            if header.last_offset() >= from {
                ahead = Some(Ok(header));
                break;
            }
            min_base = header.next_offset();
            position += header.total_bytes();
        }
        let start = position;
        let limit = start.saturating_add(max_bytes);
        let checked = self.framing_checked.load(Ordering::Acquire) as usize;
        let mut compressed = false;
        while position < data.len() {
            let header = ahead
                .take()
                .unwrap_or_else(|| codec::peek_header(&data[position..]));
            // A batch past the fetch size or `below` is left for the next read, which checks
            // it: checked here too, its CRC would be computed twice.
            if position > start {
                let past = header.as_ref().is_ok_and(|h| {
                    position.saturating_add(h.total_bytes()) > limit
                        || h.base_offset.saturating_add(h.last_offset_delta.into()) >= below
                });
                if past {
                    break;
                }
            }
            let decoded = header.and_then(|header| {
                let batch = codec::decode_batch_crc_with(&data[position..], header)?;
                // A compressed batch's records are checked where they are decompressed,
                // below: checking them here too would decompress them twice.
                if position >= checked && !batch.header.is_compressed() {
                    codec::check_plain_records(&batch)?;
                }
                Ok(batch)
            });
            match decoded {
                Ok(batch) => {
                    compressed |= batch.header.is_compressed();
                    let next = position + batch.header.total_bytes();
                    if position > start && (next > limit || batch.header.last_offset() >= below) {
                        break;
                    }
                    // `base_offset` is outside the CRC: a batch is returned only if its offsets
                    // follow the previous batch's and end before the next batch's and the
                    // segment's end. Damage after a good batch is reported by the next read.
                    ahead = data.get(next..).map(codec::peek_header);
                    let next_base = ahead
                        .as_ref()
                        .and_then(|h| h.as_ref().ok())
                        .map_or(end_offset, |h| h.base_offset.min(end_offset));
                    if let Err(e) = self.check_order(position, &batch.header, min_base, next_base) {
                        if position > start {
                            break;
                        }
                        return Err(e);
                    }
                    min_base = batch.header.next_offset();
                    if position >= checked {
                        let _ = self.framing_checked.compare_exchange(
                            position as u64,
                            next as u64,
                            Ordering::AcqRel,
                            Ordering::Relaxed,
                        );
                    }
                    position = next;
                }
                // Damage after a good batch is reported by the read that starts there.
                Err(_) if position > start => break,
                Err(e) => return Err(self.corrupt(position as u64, e)),
            }
        }
        let bytes = crate::io::share(&map, start, position);
        if !compressed || !inflate {
            return Ok(Some((start as u64, position, bytes)));
        }
        Ok(Some((start as u64, position, self.inflate(&bytes, start)?)))
    }

    /// The batches of `bytes` (read from byte `start` of this segment, whole and CRC-checked)
    /// with every compressed one replaced by its uncompressed equivalent, so that readers
    /// iterate records whatever the producer or topic compressed them with.
    fn inflate(&self, bytes: &[u8], start: usize) -> Result<Bytes> {
        let mut out = Vec::with_capacity(bytes.len().saturating_mul(4));
        let mut at = 0;
        while at < bytes.len() {
            let batch = codec::decode_batch_unchecked(&bytes[at..]).ok_or_else(|| {
                self.corrupt(
                    (start + at) as u64,
                    DecodeError::corrupt(0, "batch header does not decode"),
                )
            })?;
            codec::inflate_batch(&batch, &mut out)
                .map_err(|e| self.corrupt((start + at) as u64, e))?;
            at += batch.header.total_bytes();
        }
        Ok(Bytes::from(out))
    }

    /// Checks that the batch at `position` starts at or after `min_base` and ends before
    /// `next_base`: `base_offset` is outside the CRC, so a damaged one shows only as offsets
    /// out of order with the batch's neighbours or the segment's bounds.
    fn check_order(
        &self,
        position: usize,
        header: &BatchHeader,
        min_base: i64,
        next_base: i64,
    ) -> Result<()> {
        if header.base_offset < min_base || header.last_offset() >= next_base {
            return Err(Error::Corrupt {
                path: self.log_path.clone(),
                position: position as u64,
                reason: format!(
                    "batch offsets {}..={} out of order: expected within {min_base}..{next_base} (base offset damaged?)",
                    header.base_offset,
                    header.last_offset()
                ),
            });
        }
        Ok(())
    }

    /// Decodes the header of the batch at `position`; damage there is an error naming the file.
    pub(crate) fn header_at(&self, position: u64, size: u64) -> Result<BatchHeader> {
        let len = (size - position).min(HEADER_BYTES as u64) as usize;
        let mut buf = [0u8; HEADER_BYTES];
        io::read_at(&*self.file()?, &mut buf[..len], position, &self.log_path)?;
        let header = codec::peek_header(&buf[..len]).map_err(|e| self.corrupt(position, e))?;
        if position + header.total_bytes() as u64 > size {
            return Err(self.corrupt(
                position,
                DecodeError::corrupt(8, "batch runs past the end of the segment"),
            ));
        }
        Ok(header)
    }

    /// Builds the error for damage at `position` (plus the decoder's relative position).
    pub(crate) fn corrupt(&self, position: u64, e: DecodeError) -> Error {
        let (at, reason) = match e {
            DecodeError::Corrupt {
                position: p,
                reason,
            } => (position + p as u64, reason),
            DecodeError::Incomplete { needed, available } => (
                position,
                format!("batch needs {needed} bytes but only {available} remain"),
            ),
        };
        Error::Corrupt {
            path: self.log_path.clone(),
            position: at,
            reason,
        }
    }

    /// Scans from `position` (a batch boundary whose offsets are known up to `next_offset`),
    /// checking every batch and rebuilding the index past `position`; truncates the file at the
    /// first batch that is torn or does not check out. Sets the segment's end.
    ///
    /// Damage before `trusted_until` (data a recovery point says was durable) is not truncated:
    /// it is an error naming the file and position.
    pub(crate) fn recover(
        &self,
        position: u64,
        next_offset: i64,
        max_timestamp: i64,
        index_interval_bytes: u32,
        trusted_until: u64,
    ) -> Result<ScanOutcome> {
        let file = self.file()?;
        let file_len = file
            .metadata()
            .map_err(|e| Error::io("reading metadata of", &self.log_path, e))?
            .len();
        let Scanned {
            end: pos,
            next,
            max_timestamp: max_ts,
            first_timestamp: first_ts,
            ..
        } = self.scan(
            &file,
            file_len,
            position,
            next_offset,
            max_timestamp,
            index_interval_bytes,
        )?;
        let truncated_bytes = file_len - pos;
        if pos < trusted_until {
            let reason = match codec::decode_batch(&buf_at(self, pos, file_len)?) {
                Err(e) => e.to_string(),
                Ok(_) => "offsets out of order".to_string(),
            };
            return Err(Error::Corrupt {
                path: self.log_path.clone(),
                position: pos,
                reason: format!("damage in data that was flushed: {reason}"),
            });
        }
        if truncated_bytes > 0 {
            file.set_len(pos)
                .map_err(|e| Error::io("truncating torn tail of", &self.log_path, e))?;
            io::sync::all(&file, &self.log_path)
                .map_err(|e| Error::io("syncing", &self.log_path, e))?;
        }
        {
            let mut index = self.index.write();
            index.mark_unpersisted();
        }
        if position == 0 && first_ts != NO_TIMESTAMP {
            self.first_timestamp.store(first_ts, Ordering::Release);
        }
        if position == 0 {
            // The scan fully checked every batch it kept.
            self.framing_checked.store(pos, Ordering::Release);
        }
        self.set_loaded_end(pos, next, max_ts);
        Ok(ScanOutcome { truncated_bytes })
    }

    /// Reads whole batches from `position` (where offset `next_offset` starts) to the first
    /// that does not decode, goes backwards or leaves the segment, or to `file_len`, adding
    /// index entries every `index_interval_bytes` (the index is first cut back to
    /// `position`). Changes nothing on disk and neither end nor size: the caller decides.
    fn scan(
        &self,
        file: &File,
        file_len: u64,
        position: u64,
        next_offset: i64,
        max_timestamp: i64,
        index_interval_bytes: u32,
    ) -> Result<Scanned> {
        let start_relative = (next_offset - self.base_offset).max(0) as u32;
        self.index.write().truncate(position as u32, start_relative);
        let mut pos = position;
        let mut contiguous = true;
        let mut next = next_offset;
        let mut max_ts = max_timestamp;
        let mut first_ts = NO_TIMESTAMP;
        let mut since_index = 0u64;
        let mut buf = Vec::new();
        'scan: while pos < file_len {
            let chunk = ((file_len - pos) as usize).min(SCAN_CHUNK_BYTES);
            buf.resize(chunk, 0);
            io::read_at(file, &mut buf, pos, &self.log_path)?;
            let mut at = 0usize;
            loop {
                match codec::decode_batch(&buf[at..]) {
                    Ok(batch) => {
                        let h = batch.header;
                        let relative = h.base_offset - self.base_offset;
                        let last_relative = h.last_offset() - self.base_offset;
                        if h.base_offset < next
                            || relative > i64::from(u32::MAX)
                            || last_relative > i64::from(u32::MAX)
                        {
                            // Offsets go backwards or leave the segment: cut at this batch,
                            // keeping the good ones before it in this chunk (found by the
                            // open_partition_dir fuzz target: without this the cut fell at the
                            // chunk start, losing them while the log end still counted them).
                            pos += at as u64;
                            break 'scan;
                        }
                        contiguous &= h.base_offset == next;
                        let batch_pos = pos + at as u64;
                        max_ts = max_ts.max(h.max_timestamp);
                        if batch_pos == 0 {
                            first_ts = h.max_timestamp;
                        }
                        if since_index > u64::from(index_interval_bytes) {
                            let mut index = self.index.write();
                            index.push_offset(OffsetEntry {
                                relative_offset: relative as u32,
                                position: batch_pos as u32,
                            });
                            index.push_time(TimeEntry {
                                timestamp: max_ts,
                                relative_offset: last_relative as u32,
                            });
                            since_index = 0;
                        }
                        since_index += h.total_bytes() as u64;
                        next = h.next_offset();
                        at += h.total_bytes();
                        if at == buf.len() {
                            pos += at as u64;
                            continue 'scan;
                        }
                    }
                    Err(DecodeError::Incomplete { needed, .. }) => {
                        let batch_pos = pos + at as u64;
                        if at > 0 && batch_pos + needed as u64 <= file_len {
                            pos = batch_pos; // the batch continues past this chunk: read on
                            if needed > SCAN_CHUNK_BYTES {
                                buf.reserve(needed);
                            }
                            continue 'scan;
                        }
                        if at == 0 && needed > chunk && pos + needed as u64 <= file_len {
                            // One batch larger than the chunk: read it whole.
                            buf.resize(needed, 0);
                            io::read_at(file, &mut buf, pos, &self.log_path)?;
                            continue;
                        }
                        pos = batch_pos;
                        break 'scan; // torn tail
                    }
                    Err(DecodeError::Corrupt { .. }) => {
                        if codec::is_format_1_batch(&buf[at..]) {
                            return Err(Error::FormatChanged {
                                path: self.log_path.clone(),
                                position: pos + at as u64,
                                found: "a record batch of embroker's format 1 (magic 1)".into(),
                            });
                        }
                        pos += at as u64;
                        break 'scan;
                    }
                }
            }
        }
        Ok(Scanned {
            end: pos,
            next,
            max_timestamp: max_ts,
            first_timestamp: first_ts,
            contiguous,
        })
    }

    /// Rebuilds the index of the first `size` bytes of a segment, which a recovery point
    /// says are durable and were checked when written, the batch after them at
    /// `next_offset`, their largest timestamp `max_timestamp`; sets the segment's end there
    /// (a caller's `recover` from `size` reads on past it). What a clean close leaves of a
    /// small active segment, whose index it keeps in memory only
    /// (`PartitionLog::checkpoint_begin`).
    ///
    /// The end is the point's, never the scan's: a scan takes a damaged `base_offset` (outside
    /// the batch CRC) for the truth, and a trusted segment's damage is for the read that
    /// reaches it to report (`tests/reliability_regressions.rs`). So the index the scan
    /// built is kept only if the scan read every batch, each following the one before, and
    /// ended exactly at the point; otherwise the index stays empty (a lookup then starts at
    /// the segment's first batch, and each read checks the batches it passes).
    pub(crate) fn rebuild_index(
        &self,
        size: u64,
        next_offset: i64,
        max_timestamp: i64,
        index_interval_bytes: u32,
    ) -> Result<()> {
        let file = self.file()?;
        let scanned = self.scan(
            &file,
            size,
            0,
            self.base_offset,
            NO_TIMESTAMP,
            index_interval_bytes,
        )?;
        let whole = scanned.contiguous && scanned.end == size && scanned.next == next_offset;
        if whole {
            // Every batch was read and checked, as `recover` from 0 does.
            self.framing_checked.store(size, Ordering::Release);
            if scanned.first_timestamp != NO_TIMESTAMP {
                self.first_timestamp
                    .store(scanned.first_timestamp, Ordering::Release);
            }
        } else {
            log::warn!(
                "{}: the log does not read to where its recovery point says (byte {size}, \
                 offset {next_offset}; read to byte {}, offset {}); its index is rebuilt empty \
                 and each read checks the batches it passes",
                self.log_path.display(),
                scanned.end,
                scanned.next
            );
            *self.index.write() = SegmentIndex::default();
        }
        // Nothing on disk: the next persist writes both files whole.
        self.index.write().mark_unpersisted();
        self.set_loaded_end(size, next_offset, max_timestamp);
        if whole {
            // The entry the clean close gave the time index (`close_needs_checkpoint`): the
            // rebuilt index is what the files would have held.
            self.finish_time_index();
        }
        Ok(())
    }

    /// Marks every byte below `size` as well framed (a cleaned segment this process wrote
    /// from checked batches), so reads check only CRCs.
    pub(crate) fn mark_framing_checked(&self, size: u64) {
        self.framing_checked.store(size, Ordering::Release);
    }

    /// Sets the timestamp of the first batch (after loading).
    pub(crate) fn set_first_timestamp(&self, ts: i64) {
        self.first_timestamp.store(ts, Ordering::Release);
    }

    /// Seeds `first_timestamp` of a loaded segment from its first batch.
    pub(crate) fn load_first_timestamp(&self) -> Result<()> {
        let size = self.size();
        if size > 0 {
            let header = self.header_at(0, size)?;
            self.first_timestamp
                .store(header.max_timestamp, Ordering::Release);
        }
        Ok(())
    }

    /// Fsyncs the log's data.
    pub(crate) fn sync(&self) -> Result<()> {
        let size = self.size();
        io::sync::data(&*self.file()?, &self.log_path)
            .map_err(|e| Error::io("syncing", &self.log_path, e))?;
        self.mark_synced(size);
        Ok(())
    }

    /// Writes index entries not yet on disk and fsyncs the index files. The index itself is
    /// only locked to copy the unwritten entries out, not across the writes and fsyncs.
    ///
    /// A failure changes nothing anything relies on (the index files are hints, trusted at
    /// open only for segments before the recovery point, which never passes a segment whose
    /// index has not been persisted): the next persist rewrites both files whole, so pages a
    /// failed write or fsync left behind are written again, and the caller retries later.
    pub(crate) fn persist_index(&self) -> Result<()> {
        let files = self.files.lock();
        if files.deleted {
            return Ok(());
        }
        let plan = self
            .index
            .read()
            .plan_persist(&self.index_path, &self.time_index_path);
        match plan.write(&self.index_path, &self.time_index_path) {
            Ok(()) => {
                self.index.write().persisted(&plan);
            }
            Err(e) => {
                self.index.write().mark_unpersisted();
                return Err(e);
            }
        }
        self.persist_txn_index()
    }

    /// Writes the index entries not yet on disk without fsyncing them (a batched checkpoint
    /// syncs them with everything else): the plan to hand to [`Segment::index_synced`] once
    /// they are durable. The transaction index, rarely dirty, is written and fsynced here.
    /// `None` when the files were deleted.
    pub(crate) fn write_index_unsynced(&self) -> Result<Option<PersistPlan>> {
        let files = self.files.lock();
        if files.deleted {
            return Ok(None);
        }
        self.write_index_unsynced_locked()
    }

    /// The body of [`Segment::write_index_unsynced`], with `files` held and the files not
    /// deleted.
    fn write_index_unsynced_locked(&self) -> Result<Option<PersistPlan>> {
        let plan = self
            .index
            .read()
            .plan_persist(&self.index_path, &self.time_index_path);
        if let Err(e) = plan.write_unsynced(&self.index_path, &self.time_index_path) {
            self.index.write().mark_unpersisted();
            return Err(e);
        }
        self.persist_txn_index()?;
        Ok(Some(plan))
    }

    /// The offset and time index files.
    pub(crate) fn index_paths(&self) -> [PathBuf; 2] {
        [self.index_path.clone(), self.time_index_path.clone()]
    }

    /// Records that what [`Segment::write_index_unsynced`] wrote is durable.
    pub(crate) fn index_synced(&self, plan: &PersistPlan) {
        self.index.write().persisted(plan);
    }

    /// Writes the transaction index whole if it changed (aborts are rare): through a `.tmp`
    /// file, so a crash leaves the old list or the new one. Called with `files` held.
    fn persist_txn_index(&self) -> Result<()> {
        let bytes = {
            let txn = self.txn.lock();
            if !txn.dirty {
                return Ok(());
            }
            txn_index::encode(&txn.entries)
        };
        // An entry appended meanwhile keeps the index dirty: only a write of the whole list
        // clears it.
        let written = bytes.len() / txn_index::ENTRY_BYTES;
        let result = if bytes.is_empty() {
            match std::fs::remove_file(&self.txn_index_path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io("removing", self.txn_index_path.as_path(), e)),
            }
        } else {
            io::write_atomic(&self.txn_index_path, &bytes)
        };
        if result.is_ok() {
            let mut txn = self.txn.lock();
            if txn.entries.len() == written {
                txn.dirty = false;
            }
        }
        result
    }

    /// Persists the transaction index alone, if it changed (after open rebuilt it).
    pub(crate) fn persist_txn_index_only(&self) -> Result<()> {
        let files = self.files.lock();
        if files.deleted {
            return Ok(());
        }
        self.persist_txn_index()
    }

    /// Records an aborted transaction whose marker was just appended to this segment.
    pub(crate) fn append_aborted(&self, entry: AbortedTxn) {
        let mut txn = self.txn.lock();
        txn.entries.push(entry);
        txn.dirty = true;
    }

    /// Forgets the entries whose marker is at or after `offset` (they are rebuilt by replaying
    /// the log from before it).
    pub(crate) fn truncate_aborted_from(&self, offset: i64) {
        let mut txn = self.txn.lock();
        let keep = txn.entries.partition_point(|e| e.last_offset < offset);
        if keep < txn.entries.len() {
            txn.entries.truncate(keep);
            txn.dirty = true;
        }
    }

    /// The aborted transactions whose markers are in this segment.
    pub(crate) fn aborted(&self) -> Vec<AbortedTxn> {
        self.txn.lock().entries.clone()
    }

    /// Adds the entries overlapping `[from, upper)` to `out` (see [`txn_index::collect`]);
    /// true when no later segment can add more.
    pub(crate) fn collect_aborted(&self, from: i64, upper: i64, out: &mut Vec<AbortedTxn>) -> bool {
        txn_index::collect(&self.txn.lock().entries, from, upper, out).complete
    }

    /// Loads `<base>.txnindex` if there is one. A file that does not decode is an error the
    /// caller answers by rebuilding the index from the log.
    pub(crate) fn load_txn_index(&self) -> Result<()> {
        let bytes = match std::fs::read(&self.txn_index_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("reading", self.txn_index_path.as_path(), e)),
        };
        let entries = txn_index::decode(&bytes).map_err(|e| Error::Corrupt {
            path: self.txn_index_path.clone(),
            position: e.position as u64,
            reason: e.reason,
        })?;
        let mut txn = self.txn.lock();
        txn.entries = entries;
        txn.dirty = false;
        Ok(())
    }

    /// Records the segment's max timestamp as a final time-index entry (what retention reads
    /// after a restart), in memory; the next [`Segment::persist_index`] writes it.
    pub(crate) fn finish_time_index(&self) {
        let max_ts = self.max_timestamp();
        if max_ts != NO_TIMESTAMP {
            let last_relative = (self.next_offset() - 1 - self.base_offset).max(0) as u32;
            self.index.write().push_time(TimeEntry {
                timestamp: max_ts,
                relative_offset: last_relative,
            });
        }
    }

    /// Relative offset from which a timestamp search may start, and its position.
    pub(crate) fn time_scan_start(&self, target: i64) -> u64 {
        let index = self.index.read();
        let relative = index.scan_start_for_time(target);
        u64::from(index.position_for(relative))
    }

    /// Removes the segment's files (log first: stray index files are cleaned up at open).
    /// Once the log file is gone the segment is deleted: a failure to remove an index file
    /// after it is only logged (open removes index files whose log is gone). Unlinking needs
    /// no free space and no file descriptor, so this works on a full disk.
    pub(crate) fn delete_files(&self) -> Result<()> {
        let mut files = self.files.lock();
        match std::fs::remove_file(&self.log_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("deleting", self.log_path.as_path(), e)),
        }
        files.deleted = true;
        for path in [
            &self.index_path,
            &self.time_index_path,
            &self.txn_index_path,
        ] {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => log::warn!(
                    "{}; left for the next open to remove",
                    Error::io("deleting", path.as_path(), e)
                ),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::BatchBuilder;

    fn append_value(seg: &Segment, value: &[u8], since_index: &mut u64) {
        let mut b = BatchBuilder::new();
        b.push(1_000, None, Some(value), &[]).expect("push");
        let mut batch = b.finish();
        codec::set_base_offset(&mut batch, seg.next_offset());
        let header = codec::peek_header(&batch).expect("header");
        assert!(seg.append(&batch, &header, 4096, since_index).is_ok());
    }

    /// The four paths a segment derives from one formatted offset are the names `file_name`
    /// gives each extension (the on-disk names of docs/FORMAT.md), for any base offset.
    #[test]
    fn segment_paths_are_file_name_for_each_extension() {
        let dir = tempfile::tempdir().expect("dir");
        let budget = FileBudget::new(16);
        for base in [0, 1, 42, 1 << 40, i64::MAX, -1] {
            let seg = Segment::with_size(dir.path(), base, 0, 0, 0, &budget);
            let name = |ext: &str| dir.path().join(file_name(base, ext));
            assert_eq!(seg.log_path, name("log"), "{base}");
            assert_eq!(seg.index_path, name("index"), "{base}");
            assert_eq!(seg.time_index_path, name("timeindex"), "{base}");
            assert_eq!(seg.txn_index_path, name("txnindex"), "{base}");
        }
    }

    /// A reader's hint that lands on the batch it names starts the read there and reads what
    /// a read from the index reads; a hint that does not land (another position, another
    /// offset) is ignored.
    #[test]
    fn a_hinted_read_reads_what_an_unhinted_one_does_and_a_bad_hint_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let budget = FileBudget::new(10);
        let seg = Segment::create(dir.path(), 0, 0, 64 << 20, &budget).expect("create");
        let mut since_index = 0;
        // 100 one-record batches of ~170 bytes: several index entries, batches between them.
        for i in 0..100u8 {
            append_value(&seg, &[i; 100], &mut since_index);
        }
        let end = seg.next_offset();
        // Where each batch starts, from reads of one batch each.
        let mut starts = vec![0usize];
        for from in 0..end {
            let (next, bytes) = seg
                .read_hinted(from, 1, end, starts.last().copied())
                .expect("read")
                .expect("a batch");
            assert_eq!(next - starts[from as usize], bytes.len());
            assert_eq!(seg.read(from, 1, end).expect("read"), Some(bytes));
            starts.push(next);
        }
        for from in [0, 1, 37, 63, 99] {
            let plain = seg.read(from, 4096, end).expect("read");
            let at = starts[from as usize];
            for hint in [
                Some(at),
                None,
                Some(at + 1),
                Some(starts[from as usize + 1]),
                Some(1 << 30),
            ] {
                let read = seg.read_hinted(from, 4096, end, hint).expect("read");
                assert_eq!(read.map(|(_, b)| b), plain, "from {from}, hint {hint:?}");
            }
        }
    }

    /// A read returns whole batches from the one holding `from`: at least one, then as many
    /// as end within `max_bytes` and below `below`, whichever way it found its start (a hint,
    /// the index, a scan); each batch header is decoded once on the way.
    #[test]
    fn a_read_stops_at_the_fetch_size_and_below_wherever_it_starts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let budget = FileBudget::new(10);
        let seg = Segment::create(dir.path(), 0, 0, 64 << 20, &budget).expect("create");
        let mut since_index = 0;
        // One-record batches of growing values: batch i holds offset i.
        for i in 0..60u8 {
            append_value(&seg, &vec![i; 20 + 7 * usize::from(i)], &mut since_index);
        }
        let end = seg.next_offset();
        let mut starts = vec![0usize];
        for from in 0..end {
            let (next, _) = seg
                .read_hinted(from, 1, end, None)
                .expect("read")
                .expect("a batch");
            starts.push(next);
        }
        for from in [0i64, 1, 17, 30, 58, 59] {
            let f = from as usize;
            for max_bytes in [0usize, 1, 200, 1_000, 4_096, 1 << 20] {
                for below in [from, from + 1, from + 5, end] {
                    let expected = (from < below).then(|| {
                        let mut k = f + 1;
                        while (k as i64) < below.min(end) && starts[k + 1] - starts[f] <= max_bytes
                        {
                            k += 1;
                        }
                        (starts[k], starts[k] - starts[f])
                    });
                    for hint in [Some(starts[f]), None, Some(starts[f] + 1)] {
                        let read = seg
                            .read_hinted(from, max_bytes, below, hint)
                            .expect("read")
                            .map(|(next, b)| (next, b.len()));
                        assert_eq!(
                            read, expected,
                            "from {from}, max {max_bytes}, below {below}, hint {hint:?}"
                        );
                    }
                }
            }
        }
    }

    fn map_len(seg: &Segment) -> Option<usize> {
        seg.handles.map.read().as_ref().map(|m| m.len())
    }

    #[test]
    fn a_growing_segment_is_mapped_a_little_past_its_size_not_to_its_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limit = 64u64 << 20;
        let budget = FileBudget::new(10);
        let seg = Segment::create(dir.path(), 0, 0, limit, &budget).expect("create");
        let mut since_index = 0;
        append_value(&seg, b"small", &mut since_index);
        assert!(seg.read(0, 1 << 20, i64::MAX).expect("read").is_some());
        assert_eq!(map_len(&seg), Some(MAP_MIN_BYTES as usize));
        // Past the first map: the next one doubles it.
        let value = vec![7u8; 300 << 10];
        let mut remaps = 0;
        let mut last = map_len(&seg);
        while seg.size() < 5 << 20 {
            append_value(&seg, &value, &mut since_index);
            let end = seg.next_offset();
            assert!(seg.read(end - 1, 1 << 20, end).expect("read").is_some());
            let len = map_len(&seg).expect("mapped");
            assert!(len as u64 >= seg.size() && (len as u64) < 2 * seg.size().max(MAP_MIN_BYTES));
            remaps += usize::from(Some(len) != last);
            last = Some(len);
        }
        assert_eq!(last, Some(8 << 20));
        assert_eq!(remaps, 3, "1 -> 2 -> 4 -> 8 MiB");
        // A sealed segment is mapped exactly as large as it is.
        let size = seg.size();
        drop(seg);
        let sealed = Segment::open(dir.path(), 0, 0, 0, &budget).expect("open");
        sealed
            .recover(0, 0, NO_TIMESTAMP, 4096, 0)
            .expect("recover");
        assert!(sealed.read(0, 1 << 20, i64::MAX).expect("read").is_some());
        assert_eq!(map_len(&sealed), Some(size as usize));
    }
}
