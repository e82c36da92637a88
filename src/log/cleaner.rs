//! One log-cleaner pass over one partition: Kafka's log compaction (`LogCleaner.scala`).
//!
//! A pass, holding the partition's maintenance lock (so retention never runs at the same
//! time; appends and reads go on):
//! 1. **Plan.** The cleanable range is the sealed segments below both the active segment and
//!    the recovery point (only durable bytes are cleaned), up to the first segment holding a
//!    record younger than `min.compaction.lag.ms`. Segments before the first dirty offset (the
//!    cleaner checkpoint) are clean; the rest are dirty. A pass is due when the dirty ratio
//!    dirty / (clean + dirty) is above `min.cleanable.dirty.ratio`, when the oldest dirty
//!    record is older than `max.compaction.lag.ms`, or when a kept tombstone's delete horizon
//!    has passed.
//! 2. **Map.** Read the dirty records into the [`OffsetMap`] (key → latest offset). When the
//!    map is full the pass maps only up to that record (`map_end`), as Kafka's does.
//! 3. **Clean.** Rewrite every segment from the log start up to `map_end`, in groups, each
//!    into one `.cleaned` segment named after the group's first; a group takes segments while
//!    what it wrote plus the next segment whole fits `segment.bytes`, so sparse segments merge. A record at or after `map_end` is kept; before it, a keyless record is
//!    removed (it cannot be compacted, as in Kafka), a record whose key has a later offset in
//!    the map is removed, and a tombstone is kept until the delete horizon of its batch has
//!    passed. The first pass that keeps a tombstone sets that horizon to now +
//!    `delete.retention.ms` (KIP-534). Offsets never change: removed records leave gaps.
//! 4. **Swap** ([`super::clean_swap`]): commit, then replace the old segments in the segment
//!    list. A reader holding an old segment keeps its open file and map and finishes.
//! 5. **Checkpoint** the first dirty offset (`map_end`), the earliest kept tombstone horizon
//!    and the time.
//!
//! Invariants: the active segment and anything past the recovery point are never touched;
//! the latest record of every key (and every record at or after `map_end`) survives a pass;
//! a pass that fails or is cancelled before its commit leaves the log as it was.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::clean_swap::{self, cleaned_path, SwapEntry};
use super::cleaner_checkpoint::CleanerCheckpoint;
use super::index::{OffsetEntry, SegmentIndex, TimeEntry};
use super::offset_map::OffsetMap;
use super::partition_log::PartitionLog;
use super::segment::{Segment, NO_TIMESTAMP};
use super::throttle::Throttle;
use super::txn_index::{self, AbortedTxn};
use crate::codec::{self, Batch};
use crate::error::{Error, Result};
use crate::io;

/// Bytes read from a segment at once.
const READ_CHUNK_BYTES: usize = 1 << 20;
/// Cleaned bytes buffered before they are written.
const WRITE_CHUNK_BYTES: usize = 1 << 20;

/// The cleaner's state in one partition: its checkpoint and its last error.
#[derive(Clone, Debug, Default)]
pub(crate) struct CleanerState {
    pub checkpoint: CleanerCheckpoint,
    /// Why the last pass failed.
    pub error: Option<String>,
    /// The failed pass failed with an I/O error before its swap was committed (or after the
    /// swapped segments were installed): the log is as a finished pass or no pass left it,
    /// and the next pass retries (a full disk, no file descriptors). Otherwise the cleaner
    /// skips the partition until it is reopened (Kafka marks such a partition uncleanable).
    pub retry: bool,
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CleanStats {
    /// Bytes of log read (mapping the dirty part, then rewriting the cleaned range).
    pub bytes_read: u64,
    /// Bytes of cleaned segments written.
    pub bytes_written: u64,
    /// Records examined while rewriting.
    pub records_read: u64,
    /// Records removed (superseded, expired tombstones, keyless).
    pub records_removed: u64,
    /// Segments replaced by cleaned ones.
    pub segments_replaced: usize,
}

/// The cleaner's view of a partition, for `describe_topic`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CleanerView {
    pub clean_bytes: u64,
    pub dirty_bytes: u64,
    pub last_clean_ms: Option<i64>,
    pub error: Option<String>,
}

/// What a pass will work on.
struct Plan {
    segments: Arc<Vec<Arc<Segment>>>,
    /// Segments `[..cleanable]` may be cleaned.
    cleanable: usize,
    /// Segments `[dirty_from..cleanable]` hold dirty records.
    dirty_from: usize,
    first_dirty: i64,
}

/// One cleaned segment written next to the old ones it replaces.
struct Cleaned {
    base: i64,
    old: Vec<Arc<Segment>>,
    size: u64,
    next_offset: i64,
    max_timestamp: i64,
}

impl PartitionLog {
    /// Clean and dirty bytes of the closed segments, the last clean, the last error.
    pub(crate) fn cleaner_view(&self) -> CleanerView {
        let state = self.cleaner.lock().clone();
        let segments = self.segments.read().clone();
        let sealed = &segments[..segments.len().saturating_sub(1)];
        let first_dirty = state.checkpoint.first_dirty.max(self.log_start_offset());
        let clean = sealed.partition_point(|s| s.next_offset() <= first_dirty);
        CleanerView {
            clean_bytes: sealed[..clean].iter().map(|s| s.size()).sum(),
            dirty_bytes: sealed[clean..].iter().map(|s| s.size()).sum(),
            last_clean_ms: (state.checkpoint.last_clean_ms != i64::MIN)
                .then_some(state.checkpoint.last_clean_ms),
            error: state.error,
        }
    }

    /// How dirty the cleanable range is, when a pass is due now (the cleaner cleans the
    /// dirtiest partition first); `None` when no pass is due.
    pub(crate) fn cleaning_due(&self, now: i64) -> Option<f64> {
        self.plan(now).map(|(_, ratio)| ratio)
    }

    fn plan(&self, now: i64) -> Option<(Plan, f64)> {
        let config = self.config();
        // A log that failed a write is left alone until reopened, as appends are.
        if !config.cleanup_policy.compacts()
            || self.closed.load(Ordering::Acquire)
            || self.failed.load(Ordering::Acquire)
        {
            return None;
        }
        let state = self.cleaner.lock().clone();
        if state.error.is_some() && !state.retry {
            return None;
        }
        let segments = self.segments.read().clone();
        let bound = {
            let w = self.writer.lock();
            w.active.base_offset().min(w.recovery_point.segment_base)
        };
        // Nothing at or past the last stable offset is cleaned (Kafka's first uncleanable
        // offset): an open transaction may still abort, and its records must not have
        // superseded anything.
        let lso = self.last_stable_offset();
        let young = now.saturating_sub(config.min_compaction_lag_ms);
        let cleanable = segments
            .iter()
            .take_while(|s| {
                s.base_offset() < bound && s.next_offset() <= lso && s.max_timestamp() <= young
            })
            .count();
        if cleanable == 0 {
            return None;
        }
        let first_dirty = state.checkpoint.first_dirty.max(self.log_start_offset());
        let dirty_from = segments[..cleanable].partition_point(|s| s.next_offset() <= first_dirty);
        let clean: u64 = segments[..dirty_from].iter().map(|s| s.size()).sum();
        let dirty: u64 = segments[dirty_from..cleanable]
            .iter()
            .map(|s| s.size())
            .sum();
        let ratio = if clean + dirty == 0 {
            0.0
        } else {
            dirty as f64 / (clean + dirty) as f64
        };
        let lag_due = config.max_compaction_lag_ms != i64::MAX
            && segments[dirty_from..cleanable].iter().any(|s| {
                let first = s.first_timestamp();
                first != NO_TIMESTAMP && now.saturating_sub(first) > config.max_compaction_lag_ms
            });
        let horizon_due = state.checkpoint.tombstone_horizon <= now;
        let due =
            (dirty > 0 && (ratio > config.min_cleanable_dirty_ratio || lag_due)) || horizon_due;
        due.then_some((
            Plan {
                segments,
                cleanable,
                dirty_from,
                first_dirty,
            },
            ratio,
        ))
    }

    /// Runs one cleaner pass if one is due. `Ok(None)`: nothing was due, or `cancelled` said
    /// stop before the commit (the log is then as it was). An error is also kept for
    /// `describe_topic`; the cleaner retries the partition or skips it until it is reopened
    /// (see [`CleanerState::retry`]).
    pub(crate) fn clean(
        &self,
        dedupe_buffer_bytes: usize,
        throttle: &mut Throttle,
        now: i64,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Option<CleanStats>> {
        let _maintenance = self.maintenance.lock();
        let Some((plan, _)) = self.plan(now) else {
            return Ok(None);
        };
        let cancelled = || cancelled() || self.closed.load(Ordering::Acquire);
        let mut swapping = false;
        let result = self.clean_planned(
            &plan,
            dedupe_buffer_bytes,
            throttle,
            now,
            &cancelled,
            &mut swapping,
        );
        if let Err(e) = &result {
            if swapping {
                // The swap is committed on disk but memory still lists the old segments (say
                // the new ones could not be opened): retention or a new roll acting on that
                // list could delete the files that now hold their records. Stop writes until
                // a reopen finishes the swap; reads go on from the old segments' open files.
                let _ = self.fail(e.clone());
            }
            let mut state = self.cleaner.lock();
            state.error = Some(e.to_string());
            // Only I/O errors are retried: damage found in a segment would fail every pass.
            state.retry = !swapping && matches!(e, Error::Io { .. });
        }
        result
    }

    fn clean_planned(
        &self,
        plan: &Plan,
        dedupe_buffer_bytes: usize,
        throttle: &mut Throttle,
        now: i64,
        cancelled: &dyn Fn() -> bool,
        swapping: &mut bool,
    ) -> Result<Option<CleanStats>> {
        let config = self.config();
        let mut stats = CleanStats::default();
        let segments = &plan.segments[..plan.cleanable];
        // 2. Map the dirty records, up to `map_end` if the map fills.
        let mut map = OffsetMap::with_memory(dedupe_buffer_bytes);
        let mut map_end = segments[segments.len() - 1].next_offset();
        // Records of aborted transactions supersede nothing (Kafka skips them when mapping).
        let mut aborted = AbortedBatches::new(aborted_from(plan.first_dirty, &plan.segments));
        'map: for seg in &segments[plan.dirty_from..] {
            let mut from = plan.first_dirty.max(seg.base_offset());
            // Sealed segments lie wholly below the log end: no bound needed.
            while let Some(bytes) = seg.read(from, READ_CHUNK_BYTES, i64::MAX)? {
                stats.bytes_read += bytes.len() as u64;
                for batch in batches(&bytes) {
                    if aborted.is_aborted(&batch) {
                        from = batch.header.next_offset();
                        continue;
                    }
                    // A control record's key is its marker type, not a user key: it must not
                    // shadow a user record that happens to share the bytes.
                    for r in batch.data_records() {
                        let offset = batch.header.base_offset + i64::from(r.offset_delta);
                        if offset < plan.first_dirty {
                            continue;
                        }
                        if let Some(key) = r.key {
                            if !map.put(key, offset) {
                                map_end = offset;
                                break 'map;
                            }
                        }
                    }
                    from = batch.header.next_offset();
                }
                if !throttle.pace(bytes.len(), cancelled) {
                    return Ok(None);
                }
            }
        }
        // 3. Rewrite every segment that starts before `map_end`, in groups.
        let to_clean = &segments[..segments.partition_point(|s| s.base_offset() < map_end)];
        let rule = Retain {
            map: &map,
            map_end,
            now,
            new_horizon: now.saturating_add(config.delete_retention_ms),
            last_batches: self.last_batches(),
        };
        let mut aborted = AbortedBatches::new(aborted_from(
            to_clean.first().map_or(map_end, |s| s.base_offset()),
            &plan.segments,
        ));
        let mut min_horizon = i64::MAX;
        let mut cleaned = Vec::new();
        let mut written_paths = Vec::new();
        let outcome = (|| -> Result<bool> {
            let mut start = 0;
            while start < to_clean.len() {
                let base = to_clean[start].base_offset();
                for ext in ["log", "index", "timeindex", "txnindex"] {
                    written_paths.push(cleaned_path(&self.dir, base, ext));
                }
                let mut group = Group {
                    stats: &mut stats,
                    min_horizon: &mut min_horizon,
                    throttle: &mut *throttle,
                    cancelled,
                    aborted: &mut aborted,
                };
                let Some((c, end)) = self.clean_group(to_clean, start, &rule, &mut group)? else {
                    return Ok(false);
                };
                cleaned.extend(c);
                start = end;
            }
            Ok(!cancelled())
        })();
        match outcome {
            Ok(true) => {}
            Ok(false) | Err(_) => {
                for path in &written_paths {
                    let _ = std::fs::remove_file(path);
                }
                return outcome.map(|_| None);
            }
        }
        // 4. Commit and swap.
        if !cleaned.is_empty() {
            let entries: Vec<SwapEntry> = cleaned
                .iter()
                .map(|c| SwapEntry {
                    new_base: c.base,
                    old_bases: c.old.iter().map(|s| s.base_offset()).collect(),
                })
                .collect();
            // From here until the new segments are installed, a failure leaves memory and
            // disk disagreeing: the log fails until a reopen, which finishes the swap.
            *swapping = true;
            if let Err(e) = clean_swap::commit(&self.dir, &entries) {
                if !self.dir.join(clean_swap::MANIFEST).exists() {
                    // The manifest, the commit point, was never put in place (no space for
                    // it): nothing was swapped, and this pass is undone like any other.
                    *swapping = false;
                    for path in &written_paths {
                        let _ = std::fs::remove_file(path);
                    }
                }
                return Err(e);
            }
            self.install(&cleaned, now)?;
            *swapping = false;
            stats.segments_replaced = cleaned.iter().map(|c| c.old.len()).sum();
        }
        // 5. Checkpoint.
        let checkpoint = CleanerCheckpoint {
            // A pass with nothing dirty (only due to a tombstone horizon) moves nothing back.
            first_dirty: map_end.max(plan.first_dirty),
            tombstone_horizon: min_horizon,
            last_clean_ms: now,
        };
        checkpoint.write(&self.dir)?;
        let mut state = self.cleaner.lock();
        state.checkpoint = checkpoint;
        state.error = None;
        state.retry = false;
        Ok(Some(stats))
    }

    /// Writes one cleaned segment from `segments[start..end]`, taking segments while what it
    /// wrote so far plus the next segment whole still fits `segment.bytes` (and offsets fit the
    /// index's `u32`), so sparse cleaned segments merge. Returns the cleaned segment (`None`
    /// when the group is one segment that cleaning would not change: it is left alone) and
    /// `end`; `Ok(None)` when cancelled.
    fn clean_group(
        &self,
        segments: &[Arc<Segment>],
        start: usize,
        rule: &Retain<'_>,
        g: &mut Group<'_, '_>,
    ) -> Result<Option<(Option<Cleaned>, usize)>> {
        let base = segments[start].base_offset();
        let config = self.config();
        let max_bytes = u64::from(config.segment_bytes);
        let mut out = SegmentWriter::create(&self.dir, base, config.index_interval_bytes)?;
        let mut changed = false;
        let mut end = start;
        while let Some(seg) = segments.get(end) {
            if end > start {
                let fits = out.size() + seg.size() <= max_bytes
                    && seg.next_offset() - base <= i64::from(u32::MAX);
                if !fits {
                    break;
                }
                changed = true;
            }
            let mut from = seg.base_offset();
            // Sealed segments lie wholly below the log end: no bound needed.
            // As stored: a compressed batch is rewritten with its own codec, as Kafka's cleaner
            // does, and one that loses nothing is copied as it is.
            let mut scratch = Vec::new();
            while let Some((position, bytes)) = seg.read_stored(from, READ_CHUNK_BYTES, i64::MAX)? {
                g.stats.bytes_read += bytes.len() as u64;
                let mut at = position;
                for batch in batches(&bytes) {
                    let count = batch.header.record_count as usize;
                    let last_of_producer = rule.is_last_of_producer(&batch);
                    if g.aborted.is_aborted(&batch) && !last_of_producer {
                        // An aborted transaction's records: no reader at read_committed sees
                        // them, and compaction drops them (Kafka's cleaner does).
                        at += batch.header.total_bytes() as u64;
                        g.stats.records_read += count as u64;
                        g.stats.records_removed += count as u64;
                        changed = true;
                        from = batch.header.next_offset();
                        continue;
                    }
                    let (kept, horizon) = if last_of_producer {
                        // A producer's last batch stays whole, so its sequence and epoch
                        // survive compaction (Kafka keeps it, emptied if need be; a batch here
                        // cannot be empty).
                        out.buf.extend_from_slice(batch.bytes);
                        (count, None)
                    } else if batch.header.is_compressed() {
                        rule.filter_compressed(&batch, &mut out.buf, &mut scratch)
                            .map_err(|e| seg.corrupt(at, e))?
                    } else {
                        rule.filter(&batch, &mut out.buf)
                    };
                    at += batch.header.total_bytes() as u64;
                    g.stats.records_read += count as u64;
                    g.stats.records_removed += (count - kept) as u64;
                    let stamped = horizon.is_some() && batch.header.delete_horizon().is_none();
                    changed |= kept < count || (kept > 0 && stamped);
                    if let Some(h) = horizon {
                        *g.min_horizon = (*g.min_horizon).min(h);
                    }
                    out.finish_batch(base)?;
                    from = batch.header.next_offset();
                }
                if !g.throttle.pace(bytes.len(), g.cancelled) {
                    return Ok(None);
                }
            }
            end += 1;
        }
        if !changed {
            out.abandon(&self.dir, base);
            return Ok(Some((None, end)));
        }
        let next_offset = segments[end - 1].next_offset();
        let (size, max_timestamp) = out.finish(&self.dir, base, next_offset)?;
        // The aborted transactions of the old segments stay listed (their markers stay too).
        let aborted: Vec<_> = segments[start..end]
            .iter()
            .flat_map(|s| s.aborted())
            .collect();
        if !aborted.is_empty() {
            io::write_atomic(
                &cleaned_path(&self.dir, base, "txnindex"),
                &txn_index::encode(&aborted),
            )?;
        }
        g.stats.bytes_written += size;
        if !g.throttle.pace(size as usize, g.cancelled) {
            return Ok(None);
        }
        let cleaned = Cleaned {
            base,
            old: segments[start..end].to_vec(),
            size,
            next_offset,
            max_timestamp,
        };
        Ok(Some((Some(cleaned), end)))
    }

    /// Replaces the old segments of each cleaned group by the cleaned segment, whose files the
    /// committed swap put in place.
    fn install(&self, cleaned: &[Cleaned], now: i64) -> Result<()> {
        let mut fresh = Vec::with_capacity(cleaned.len());
        for c in cleaned {
            let seg = Segment::open(&self.dir, c.base, now, 0, &self.budget)?;
            if !seg.load_index(Some(c.next_offset))? {
                return Err(Error::Corrupt {
                    path: seg.log_path().to_path_buf(),
                    position: 0,
                    reason: "the index the cleaner just wrote does not load".into(),
                });
            }
            seg.set_loaded_end(c.size, c.next_offset, c.max_timestamp);
            seg.mark_framing_checked(c.size);
            seg.load_txn_index()?;
            seg.load_first_timestamp()?;
            fresh.push(Arc::new(seg));
        }
        let mut list = self.segments.write();
        let mut next = Vec::with_capacity(list.len());
        for seg in list.iter() {
            let mut replaced = false;
            for (c, new) in cleaned.iter().zip(&fresh) {
                if Arc::ptr_eq(&c.old[0], seg) {
                    next.push(new.clone());
                }
                replaced |= c.old.iter().any(|old| Arc::ptr_eq(old, seg));
            }
            if !replaced {
                next.push(seg.clone());
            }
        }
        *list = Arc::new(next);
        Ok(())
    }
}

/// The batches of a checked read.
fn batches(bytes: &[u8]) -> impl Iterator<Item = Batch<'_>> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        let batch = codec::decode_batch_unchecked(rest)?;
        rest = &rest[batch.bytes.len()..];
        Some(batch)
    })
}

/// What writing groups accumulates and obeys.
struct Group<'a, 'c> {
    stats: &'a mut CleanStats,
    min_horizon: &'a mut i64,
    throttle: &'a mut Throttle,
    cancelled: &'c dyn Fn() -> bool,
    aborted: &'a mut AbortedBatches,
}

/// Tells, batch by batch in offset order, which belong to aborted transactions (the Kafka
/// consumer's algorithm, as in `consumer::aborted`), given the aborted transactions whose
/// marker is at or after the first batch fed.
struct AbortedBatches {
    queue: std::iter::Peekable<std::vec::IntoIter<AbortedTxn>>,
    producers: HashSet<i64>,
}

impl AbortedBatches {
    fn new(mut aborted: Vec<AbortedTxn>) -> Self {
        aborted.sort_by_key(|a| a.first_offset);
        AbortedBatches {
            queue: aborted.into_iter().peekable(),
            producers: HashSet::new(),
        }
    }

    fn is_aborted(&mut self, batch: &Batch<'_>) -> bool {
        let h = &batch.header;
        if h.producer_id < 0 {
            return false;
        }
        while let Some(a) = self.queue.next_if(|a| a.first_offset <= h.last_offset()) {
            self.producers.insert(a.producer_id);
        }
        if h.is_control() {
            let abort = batch.records().next().and_then(|r| r.key).is_some_and(|k| {
                codec::ControlRecordType::parse_key(k) == Ok(codec::ControlRecordType::Abort)
            });
            if abort {
                self.producers.remove(&h.producer_id);
            }
            return false;
        }
        h.is_transactional() && self.producers.contains(&h.producer_id)
    }
}

/// The aborted transactions whose marker is at or after `from`, from every segment's index
/// (a marker may lie past the cleaned range, up to the last stable offset).
fn aborted_from(from: i64, segments: &[Arc<Segment>]) -> Vec<AbortedTxn> {
    segments
        .iter()
        .flat_map(|s| s.aborted())
        .filter(|a| a.last_offset >= from)
        .collect()
}

impl PartitionLog {
    /// Each producer's last batch, by its last offset.
    fn last_batches(&self) -> HashMap<i64, i64> {
        let w = self.writer.lock();
        w.producers
            .entries()
            .filter(|e| e.last_data_offset() >= 0)
            .map(|e| (e.producer_id, e.last_data_offset()))
            .collect()
    }
}

/// Which records of the cleaned range survive.
struct Retain<'a> {
    map: &'a OffsetMap,
    map_end: i64,
    now: i64,
    /// The delete horizon a batch gets when this pass first keeps a tombstone of it.
    new_horizon: i64,
    /// Each producer's last batch (by last offset): kept whole.
    last_batches: HashMap<i64, i64>,
}

impl Retain<'_> {
    fn is_last_of_producer(&self, batch: &Batch<'_>) -> bool {
        let h = &batch.header;
        h.producer_id >= 0
            && !h.is_control()
            && self.last_batches.get(&h.producer_id) == Some(&h.last_offset())
    }
}

impl Retain<'_> {
    /// Appends the batch's surviving records to `out` as one batch; returns how many survived
    /// and, if tombstones did, their batch's delete horizon.
    fn filter(&self, batch: &Batch<'_>, out: &mut Vec<u8>) -> (usize, Option<i64>) {
        let base = batch.header.base_offset;
        // Control batches (transaction markers) are kept whole: Kafka drops one only once the
        // transaction's records are gone, which needs transaction state this cleaner does not
        // keep yet; keeping it costs a few bytes and never changes what a reader sees.
        if base >= self.map_end || batch.header.is_control() {
            out.extend_from_slice(batch.bytes);
            return (batch.header.record_count as usize, None);
        }
        let existing = batch.header.delete_horizon();
        let tombstones = std::cell::Cell::new(false);
        let keep = |r: &codec::RecordView<'_>| {
            let offset = base + i64::from(r.offset_delta);
            if offset >= self.map_end {
                return true;
            }
            let Some(key) = r.key else {
                return false;
            };
            if self.map.get(key).is_some_and(|latest| latest > offset) {
                return false;
            }
            if r.value.is_none() {
                if existing.is_some_and(|h| self.now >= h) {
                    return false;
                }
                tombstones.set(true);
            }
            true
        };
        let start = out.len();
        let kept = codec::filter_batch(batch, None, out, keep);
        if !tombstones.get() {
            return (kept, None);
        }
        if existing.is_some() {
            return (kept, existing);
        }
        // First time a tombstone of this batch is kept: stamp the horizon on the batch.
        out.truncate(start);
        let kept = codec::filter_batch(batch, Some(self.new_horizon), out, keep);
        let set = out
            .get(start..)
            .and_then(|b| codec::peek_header(b).ok())
            .and_then(|h| h.delete_horizon());
        (kept, set)
    }
}

impl Retain<'_> {
    /// [`Retain::filter`] for a compressed batch: decompressed into `scratch`, filtered, and
    /// compressed again with the batch's own codec (at its default level); a batch that keeps
    /// every record and gets no new delete horizon is copied as it is.
    fn filter_compressed(
        &self,
        batch: &Batch<'_>,
        out: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
    ) -> std::result::Result<(usize, Option<i64>), codec::DecodeError> {
        let count = batch.header.record_count as usize;
        if batch.header.base_offset >= self.map_end {
            out.extend_from_slice(batch.bytes);
            return Ok((count, None));
        }
        scratch.clear();
        codec::inflate_batch(batch, scratch)?;
        let plain = codec::decode_batch_unchecked(scratch)
            .ok_or_else(|| codec::DecodeError::corrupt(0, "decompressed batch does not decode"))?;
        let mut filtered = Vec::with_capacity(scratch.len());
        let (kept, horizon) = self.filter(&plain, &mut filtered);
        let existing = batch.header.delete_horizon();
        if kept == 0 {
            return Ok((0, horizon));
        }
        if kept == count && (horizon.is_none() || existing.is_some()) {
            out.extend_from_slice(batch.bytes);
            return Ok((kept, horizon));
        }
        let filtered = codec::decode_batch_unchecked(&filtered)
            .ok_or_else(|| codec::DecodeError::corrupt(0, "filtered batch does not decode"))?;
        let id = batch.header.compression_id();
        let compression = codec::Compression::from_id(id)
            .ok_or_else(|| codec::DecodeError::corrupt(21, format!("unknown codec id {id}")))?;
        codec::compress_batch(&filtered, codec::CompressionCodec::new(compression), out)?;
        Ok((kept, horizon))
    }
}

/// Writes one cleaned segment (`.cleaned` files) and its indexes.
struct SegmentWriter {
    file: std::fs::File,
    path: std::path::PathBuf,
    /// Cleaned batches not yet written; `finish_batch` indexes the last one appended.
    buf: Vec<u8>,
    /// Bytes of `buf` already indexed.
    indexed: usize,
    written: u64,
    index: SegmentIndex,
    index_interval_bytes: u32,
    bytes_since_index: u64,
    max_timestamp: i64,
}

impl SegmentWriter {
    fn create(dir: &Path, base: i64, index_interval_bytes: u32) -> Result<SegmentWriter> {
        let path = cleaned_path(dir, base, "log");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| Error::io("creating cleaned segment", &path, e))?;
        Ok(SegmentWriter {
            file,
            path,
            buf: Vec::with_capacity(WRITE_CHUNK_BYTES + (64 << 10)),
            indexed: 0,
            written: 0,
            index: SegmentIndex::default(),
            index_interval_bytes,
            bytes_since_index: 0,
            max_timestamp: NO_TIMESTAMP,
        })
    }

    /// Indexes the batch just appended to `buf` (if any), as `Segment::append` would, and
    /// writes `buf` out once it is large.
    fn finish_batch(&mut self, base: i64) -> Result<()> {
        if self.indexed < self.buf.len() {
            let Ok(h) = codec::peek_header(&self.buf[self.indexed..]) else {
                return Err(Error::Corrupt {
                    path: self.path.clone(),
                    position: self.written + self.indexed as u64,
                    reason: "the cleaner produced a batch that does not decode".into(),
                });
            };
            debug_assert!(codec::decode_batch(&self.buf[self.indexed..]).is_ok());
            let position = self.written + self.indexed as u64;
            self.max_timestamp = self.max_timestamp.max(h.max_timestamp);
            if self.bytes_since_index > u64::from(self.index_interval_bytes) {
                self.index.push_offset(OffsetEntry {
                    relative_offset: (h.base_offset - base) as u32,
                    position: position as u32,
                });
                self.index.push_time(TimeEntry {
                    timestamp: self.max_timestamp,
                    relative_offset: (h.last_offset() - base) as u32,
                });
                self.bytes_since_index = 0;
            }
            self.bytes_since_index += h.total_bytes() as u64;
            self.indexed = self.buf.len();
        }
        if self.buf.len() >= WRITE_CHUNK_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Bytes of the cleaned segment so far.
    fn size(&self) -> u64 {
        self.written + self.buf.len() as u64
    }

    fn flush(&mut self) -> Result<()> {
        io::write_all_at(&self.file, &self.buf, self.written, &self.path)?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        self.indexed = 0;
        Ok(())
    }

    /// Writes the rest, ends the time index with the segment's max timestamp, and fsyncs the
    /// log and both indexes. Returns the size and max timestamp.
    fn finish(mut self, dir: &Path, base: i64, next_offset: i64) -> Result<(u64, i64)> {
        self.flush()?;
        if self.max_timestamp != NO_TIMESTAMP {
            self.index.push_time(TimeEntry {
                timestamp: self.max_timestamp,
                relative_offset: (next_offset - 1 - base).max(0) as u32,
            });
        }
        io::sync::data(&self.file, &self.path).map_err(|e| Error::io("syncing", &self.path, e))?;
        self.index.persist(
            &cleaned_path(dir, base, "index"),
            &cleaned_path(dir, base, "timeindex"),
        )?;
        Ok((self.written, self.max_timestamp))
    }

    /// Removes what was written: the group was left as it was.
    fn abandon(self, dir: &Path, base: i64) {
        drop(self.file);
        for ext in ["log", "index", "timeindex"] {
            let _ = std::fs::remove_file(cleaned_path(dir, base, ext));
        }
    }
}
