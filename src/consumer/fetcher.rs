//! Per-partition consumer state (position, lazy seek, pause) and the fetch buffer.
//!
//! Owns: the assigned partitions' positions and buffered records. Invariants:
//! - a partition's buffer holds only records at or after its position, in offset order, all
//!   from one read (whose `Bytes` they share);
//! - the position moves only when records are handed out (to last returned + 1, or to the end
//!   of the read once its buffer is drained) or by a seek/reset, and a seek empties the
//!   buffer;
//! - one `collect` returns at most `max` records and starts at the partition after the one
//!   the previous `collect` started at, so a busy partition cannot starve the others.

use std::sync::Arc;

use super::aborted::drop_aborted;
use super::records::PartitionRecords;
use crate::config::OffsetReset;
use crate::error::{Error, Result};
use crate::log::{PartitionLog, ReadHint, Records};
use crate::topic_names::intern_topic;
use crate::types::TopicPartition;

/// A lazy seek, resolved at the next `poll` or `position` (Kafka's `seekToBeginning/End`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LazySeek {
    Beginning,
    End,
}

pub(crate) struct PartitionState {
    pub(crate) tp: TopicPartition,
    /// `tp.topic`, interned (see `ConsumerRecord::topic`).
    topic: &'static str,
    pub(crate) log: Arc<PartitionLog>,
    pub(crate) position: Option<i64>,
    pub(crate) lazy_seek: Option<LazySeek>,
    pub(crate) paused: bool,
    /// The unread part of the last read (records are built only when handed out).
    buffer: Option<Records>,
    /// The offset after the read the buffer came from.
    next_fetch: i64,
    /// Where the last read ended in the log, so that the next one starts there rather than
    /// at an index entry and a scan (`PartitionLog::read_continuing`).
    hint: Option<ReadHint>,
}

impl PartitionState {
    pub(crate) fn new(tp: TopicPartition, log: Arc<PartitionLog>) -> Self {
        PartitionState {
            topic: intern_topic(&tp.topic),
            tp,
            log,
            position: None,
            lazy_seek: None,
            paused: false,
            buffer: None,
            next_fetch: 0,
            hint: None,
        }
    }

    /// Sets the position (seek), dropping buffered records.
    pub(crate) fn seek(&mut self, offset: i64) {
        self.position = Some(offset);
        self.lazy_seek = None;
        self.buffer = None;
    }

    /// Records a lazy seek, dropping the position and buffered records.
    pub(crate) fn seek_lazy(&mut self, to: LazySeek) {
        self.position = None;
        self.lazy_seek = Some(to);
        self.buffer = None;
    }

    /// Reads into the buffer from the position. An out-of-range position is reset by
    /// `reset` (or is the error under `none`). Under `read_committed` the read stops at the
    /// last stable offset and drops aborted transactions.
    fn fill(&mut self, fetch_bytes: usize, reset: OffsetReset, read_committed: bool) -> Result<()> {
        let Some(mut position) = self.position else {
            return Ok(());
        };
        let hint = &mut self.hint;
        let log = &self.log;
        let mut read = |position: i64| -> Result<Records> {
            if read_committed {
                let (records, aborted) = log.read_committed(position, fetch_bytes)?;
                Ok(drop_aborted(records, aborted))
            } else {
                let (records, next) = log.read_continuing(position, fetch_bytes, *hint)?;
                *hint = next;
                Ok(records)
            }
        };
        let records = match read(position) {
            Ok(r) => r,
            Err(e @ Error::OffsetOutOfRange { .. }) => {
                position = match reset {
                    OffsetReset::Earliest => log.log_start_offset(),
                    OffsetReset::Latest => end_offset(log, read_committed),
                    OffsetReset::None => return Err(e),
                };
                read(position)?
            }
            Err(e) => return Err(e),
        };
        self.position = Some(position);
        self.next_fetch = records.next_offset().max(position);
        self.buffer = Some(records);
        Ok(())
    }
}

/// The offset a consumer's "end" is: the last stable offset under `read_committed`, else the
/// log end (Kafka's `endOffsets`, `seekToEnd` and `latest` reset follow the isolation level).
pub(crate) fn end_offset(log: &PartitionLog, read_committed: bool) -> i64 {
    if read_committed {
        log.last_stable_offset()
    } else {
        log.log_end_offset()
    }
}

/// The assigned partitions, sorted, with a round-robin cursor.
#[derive(Default)]
pub(crate) struct Fetcher {
    /// `isolation.level=read_committed`: reads stop at the last stable offset and drop
    /// aborted transactions.
    pub(crate) read_committed: bool,
    partitions: Vec<PartitionState>,
    cursor: usize,
    /// Bytes of the stored batches that `collect` handed records out from, since creation
    /// (the consumer's `bytes-consumed-total`).
    pub(crate) bytes_handed_out: u64,
}

impl Fetcher {
    /// No partitions yet; `read_committed` for `isolation.level=read_committed`.
    pub(crate) fn new(read_committed: bool) -> Self {
        Fetcher {
            read_committed,
            ..Fetcher::default()
        }
    }

    pub(crate) fn assigned(&self) -> Vec<TopicPartition> {
        self.partitions.iter().map(|p| p.tp.clone()).collect()
    }

    pub(crate) fn contains(&self, tp: &TopicPartition) -> bool {
        self.get(tp).is_some()
    }

    pub(crate) fn get(&self, tp: &TopicPartition) -> Option<&PartitionState> {
        self.partitions.iter().find(|p| &p.tp == tp)
    }

    pub(crate) fn get_mut(&mut self, tp: &TopicPartition) -> Option<&mut PartitionState> {
        self.partitions.iter_mut().find(|p| &p.tp == tp)
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut PartitionState> {
        self.partitions.iter_mut()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &PartitionState> {
        self.partitions.iter()
    }

    /// Adds partitions not already present (fresh state: no position).
    pub(crate) fn add(&mut self, states: Vec<PartitionState>) {
        for s in states {
            if !self.contains(&s.tp) {
                self.partitions.push(s);
            }
        }
        self.partitions.sort_by(|a, b| a.tp.cmp(&b.tp));
    }

    /// Removes these partitions and their buffers.
    pub(crate) fn remove(&mut self, tps: &[TopicPartition]) {
        self.partitions.retain(|p| !tps.contains(&p.tp));
    }

    pub(crate) fn clear(&mut self) {
        self.partitions.clear();
    }

    /// Hands out up to `max` records across the unpaused partitions that have a position,
    /// reading into empty buffers as needed. A partition's records are handed out as the part
    /// of its buffer they occupy (`Records::skip` finds where the rest starts); they are built
    /// only when the caller iterates them.
    pub(crate) fn collect(
        &mut self,
        max: usize,
        fetch_bytes: usize,
        reset: OffsetReset,
    ) -> Result<Vec<PartitionRecords>> {
        let n = self.partitions.len();
        let mut out = Vec::new();
        if n == 0 {
            return Ok(out);
        }
        let start = self.cursor % n;
        self.cursor = (start + 1) % n;
        let mut remaining = max;
        for i in 0..n {
            if remaining == 0 {
                break;
            }
            let p = &mut self.partitions[(start + i) % n];
            if p.paused || p.position.is_none() {
                continue;
            }
            if p.buffer.is_none() {
                p.fill(fetch_bytes, reset, self.read_committed)?;
            }
            let Some(buffer) = p.buffer.take() else {
                continue;
            };
            let (count, rest) = buffer.skip(remaining);
            let drained = rest.is_empty();
            if count == 0 {
                if drained {
                    // Nothing visible in the read (a compaction gap): skip past it.
                    p.position = Some(p.next_fetch);
                }
                continue;
            }
            remaining -= count;
            let bytes = buffer.size_bytes().saturating_sub(rest.size_bytes());
            self.bytes_handed_out = self.bytes_handed_out.saturating_add(bytes as u64);
            // One past the last record handed out.
            let next = rest.start_offset();
            p.position = Some(if drained {
                p.next_fetch.max(next)
            } else {
                next
            });
            if !drained {
                p.buffer = Some(rest);
            }
            out.push(PartitionRecords::new(p.tp.clone(), p.topic, buffer, count));
        }
        Ok(out)
    }
}
