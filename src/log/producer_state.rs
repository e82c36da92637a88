//! Producer state of one partition: per producer id, its epoch, the last batches it appended,
//! and its open transaction; which transactions are open; and the `.snapshot` file format.
//!
//! Follows Kafka's `ProducerStateManager`, `ProducerStateEntry` and `ProducerAppendInfo`
//! (`storage/src/main/java/org/apache/kafka/storage/internals/log/`).
//!
//! Owns: the rules an idempotent or transactional producer's batch must meet (epoch, sequence,
//! transaction state), what a transaction marker does to that state, and the bytes of a
//! snapshot. Does no I/O: the partition log reads and writes the files.
//!
//! Invariants:
//! - A [`ProducerAppend`] is checked against the state after the last successful write and
//!   changes nothing until [`ProducerStates::update`]; the log calls that only after the
//!   batches are in the file, under its writer lock, so the state never runs ahead of the log.
//! - An entry keeps the metadata of at most [`BATCHES_TO_RETAIN`] batches, all of its current
//!   epoch, oldest first.
//! - `ongoing` holds exactly the producers whose entry has an open transaction, keyed by that
//!   transaction's first offset.
//! - Decoding a snapshot never panics: bad bytes are a [`SnapshotError`].

use std::collections::{BTreeMap, VecDeque};

use crate::codec;

/// Batches whose metadata an entry keeps for duplicate detection (Kafka's
/// `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`; why `max.in.flight` must be at most 5).
pub(crate) const BATCHES_TO_RETAIN: usize = 5;

/// No sequence (Kafka's `RecordBatch.NO_SEQUENCE`).
pub(crate) const NO_SEQUENCE: i32 = -1;

/// No epoch (Kafka's `RecordBatch.NO_PRODUCER_EPOCH`).
pub(crate) const NO_EPOCH: i16 = -1;

/// `sequence` moved on by `increment`, wrapping after `i32::MAX` to 0 (Kafka's
/// `DefaultRecordBatch.incrementSequence`).
///
/// Java's `int` arithmetic wraps, and so does this: values from a snapshot are not checked,
/// and must never make it panic.
pub(crate) fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX.wrapping_sub(increment) {
        increment
            .wrapping_sub(i32::MAX.wrapping_sub(sequence))
            .wrapping_sub(1)
    } else {
        sequence.wrapping_add(increment)
    }
}

/// `sequence` moved back by `decrement`, wrapping below 0 to `i32::MAX` (Kafka's
/// `DefaultRecordBatch.decrementSequence`).
/// Wraps as Java's `int` arithmetic does.
pub(crate) fn decrement_sequence(sequence: i32, decrement: i32) -> i32 {
    if sequence < decrement {
        i32::MAX
            .wrapping_sub(decrement.wrapping_sub(sequence))
            .wrapping_add(1)
    } else {
        sequence.wrapping_sub(decrement)
    }
}

/// Whether `next` follows `last` (Kafka's `ProducerAppendInfo.inSequence`).
fn in_sequence(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}

/// What the log remembers of one appended batch (Kafka's `BatchMetadata`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BatchMetadata {
    pub last_seq: i32,
    pub last_offset: i64,
    /// Last offset minus first offset.
    pub offset_delta: i32,
    pub timestamp: i64,
}

impl BatchMetadata {
    pub(crate) fn first_seq(&self) -> i32 {
        decrement_sequence(self.last_seq, self.offset_delta)
    }

    pub(crate) fn first_offset(&self) -> i64 {
        self.last_offset - i64::from(self.offset_delta)
    }
}

/// One producer's state in a partition (Kafka's `ProducerStateEntry`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProducerEntry {
    pub producer_id: i64,
    pub epoch: i16,
    /// The last batches of the current epoch, oldest first.
    pub batches: VecDeque<BatchMetadata>,
    /// The max timestamp of the last batch, or the marker's timestamp.
    pub last_timestamp: i64,
    pub coordinator_epoch: i32,
    /// First offset of the open transaction, if one is open.
    pub current_txn_first_offset: Option<i64>,
}

impl ProducerEntry {
    /// An entry for a producer the partition has not seen.
    pub(crate) fn empty(producer_id: i64) -> ProducerEntry {
        ProducerEntry {
            producer_id,
            epoch: NO_EPOCH,
            batches: VecDeque::new(),
            last_timestamp: -1,
            coordinator_epoch: -1,
            current_txn_first_offset: None,
        }
    }

    pub(crate) fn last_seq(&self) -> i32 {
        self.batches.back().map_or(NO_SEQUENCE, |b| b.last_seq)
    }

    pub(crate) fn last_data_offset(&self) -> i64 {
        self.batches.back().map_or(-1, |b| b.last_offset)
    }

    fn last_offset_delta(&self) -> i32 {
        self.batches.back().map_or(0, |b| b.offset_delta)
    }

    /// Moves to `epoch`, forgetting the batches of an older one; true if it changed.
    fn maybe_update_epoch(&mut self, epoch: i16) -> bool {
        if self.epoch == epoch {
            return false;
        }
        self.batches.clear();
        self.epoch = epoch;
        true
    }

    fn add_batch(&mut self, epoch: i16, batch: BatchMetadata) {
        self.maybe_update_epoch(epoch);
        if self.batches.len() == BATCHES_TO_RETAIN {
            self.batches.pop_front();
        }
        self.last_timestamp = batch.timestamp;
        self.batches.push_back(batch);
    }

    /// The cached batch with exactly this epoch and sequence range (Kafka's
    /// `findDuplicateBatch`).
    pub(crate) fn find_duplicate(
        &self,
        epoch: i16,
        first_seq: i32,
        last_seq: i32,
    ) -> Option<BatchMetadata> {
        if epoch != self.epoch {
            return None;
        }
        self.batches
            .iter()
            .find(|b| b.first_seq() == first_seq && b.last_seq == last_seq)
            .copied()
    }
}

/// Who is appending, which decides what is checked (Kafka's `AppendOrigin`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A producer's batches: epoch, sequence and transaction state are checked.
    Client,
    /// The transaction coordinator's markers and the group coordinator's transactional
    /// offset commits: epochs are checked, sequences are not (they carry none).
    Coordinator,
    /// Batches already in the log, replayed at open: nothing is checked.
    Replay,
}

/// Why a producer's batch was refused. The log turns it into an [`crate::Error`] naming the
/// topic and partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StateError {
    /// The first sequence does not follow (Kafka's `OutOfOrderSequenceException`).
    OutOfOrder {
        producer_id: i64,
        expected: i32,
        received: i32,
    },
    /// An epoch older than the current one (Kafka's `InvalidProducerEpochException`).
    OldEpoch {
        producer_id: i64,
        current: i16,
        received: i16,
    },
    /// A batch that breaks the transaction rules, or a marker from an older coordinator
    /// (Kafka's `InvalidTxnStateException`, `TransactionCoordinatorFencedException`).
    Invalid { producer_id: i64, reason: String },
}

/// A transaction a marker ended (Kafka's `CompletedTxn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The marker's offset.
    pub last_offset: i64,
    pub aborted: bool,
}

/// The facts of one batch the state needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BatchFacts {
    pub producer_id: i64,
    pub epoch: i16,
    pub base_sequence: i32,
    /// Last offset minus base offset.
    pub last_offset_delta: i32,
    pub base_offset: i64,
    pub max_timestamp: i64,
    pub transactional: bool,
    /// For a control batch: its marker (`None` for an empty control batch, which the cleaner
    /// leaves once a transaction is gone, or an unknown control type).
    pub control: Option<Option<Marker>>,
}

impl BatchFacts {
    pub(crate) fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    pub(crate) fn last_sequence(&self) -> i32 {
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }
}

/// A transaction marker's content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Marker {
    pub commit: bool,
    pub coordinator_epoch: i32,
    pub timestamp: i64,
}

/// The facts of `batch` (whose header says where it landed). A control batch's marker is
/// parsed; `Err` says why a control record is not a transaction marker.
pub(crate) fn batch_facts(batch: &codec::Batch<'_>) -> Result<BatchFacts, String> {
    let h = &batch.header;
    let control = if h.is_control() {
        let records = codec::batch_records(batch).map_err(|e| e.to_string())?;
        let first = records.iter().next();
        match first {
            None => Some(None),
            Some(r) => {
                let key = r.key.unwrap_or_default();
                match codec::EndTransactionMarker::parse(key, r.value) {
                    Ok(m) => Some(Some(Marker {
                        commit: m.kind == codec::ControlRecordType::Commit,
                        coordinator_epoch: m.coordinator_epoch,
                        timestamp: h.base_timestamp.saturating_add(r.timestamp_delta),
                    })),
                    Err(e) => match codec::ControlRecordType::parse_key(key) {
                        // Another control kind: nothing a producer's state records.
                        Ok(codec::ControlRecordType::Other(_)) => Some(None),
                        _ => return Err(e.to_string()),
                    },
                }
            }
        }
    } else {
        None
    };
    Ok(BatchFacts {
        producer_id: h.producer_id,
        epoch: h.producer_epoch,
        base_sequence: h.base_sequence,
        last_offset_delta: h.last_offset_delta,
        base_offset: h.base_offset,
        max_timestamp: h.max_timestamp,
        transactional: h.is_transactional(),
        control,
    })
}

/// The checked effect of one call's batches of one producer (Kafka's `ProducerAppendInfo`).
#[derive(Clone, Debug)]
pub(crate) struct ProducerAppend {
    origin: Origin,
    current: ProducerEntry,
    updated: ProducerEntry,
    /// First offsets of transactions this call begins.
    started: Vec<i64>,
}

impl ProducerAppend {
    fn new(current: ProducerEntry, origin: Origin) -> ProducerAppend {
        ProducerAppend {
            origin,
            updated: current.clone(),
            current,
            started: Vec::new(),
        }
    }

    pub(crate) fn producer_id(&self) -> i64 {
        self.current.producer_id
    }

    fn check_epoch(&self, epoch: i16) -> Result<(), StateError> {
        if epoch < self.updated.epoch && self.origin != Origin::Replay {
            return Err(StateError::OldEpoch {
                producer_id: self.producer_id(),
                current: self.updated.epoch,
                received: epoch,
            });
        }
        Ok(())
    }

    fn check_sequence(&self, epoch: i16, first_seq: i32) -> Result<(), StateError> {
        if epoch != self.updated.epoch {
            // A new epoch starts at 0; an unknown producer may start anywhere (KIP-360: its
            // earlier batches may be gone with retention).
            if first_seq != 0 && self.updated.epoch != NO_EPOCH {
                return Err(StateError::OutOfOrder {
                    producer_id: self.producer_id(),
                    expected: 0,
                    received: first_seq,
                });
            }
            return Ok(());
        }
        let last = if !self.updated.batches.is_empty() {
            self.updated.last_seq()
        } else if epoch == self.current.epoch {
            self.current.last_seq()
        } else {
            NO_SEQUENCE
        };
        if self.current.epoch == NO_EPOCH || in_sequence(last, first_seq) {
            return Ok(());
        }
        Err(StateError::OutOfOrder {
            producer_id: self.producer_id(),
            expected: increment_sequence(last, 1),
            received: first_seq,
        })
    }

    /// Checks and applies one batch (already given its offsets); returns the transaction a
    /// marker completed.
    pub(crate) fn append(
        &mut self,
        batch: &BatchFacts,
    ) -> Result<Option<CompletedTxn>, StateError> {
        match batch.control {
            Some(Some(marker)) => self.append_marker(batch, marker),
            // An empty control batch: the cleaner removed the whole transaction.
            Some(None) => Ok(None),
            None => {
                self.append_data(batch)?;
                Ok(None)
            }
        }
    }

    fn append_data(&mut self, batch: &BatchFacts) -> Result<(), StateError> {
        self.check_epoch(batch.epoch)?;
        if self.origin == Origin::Client {
            if batch.base_sequence < 0 {
                return Err(StateError::Invalid {
                    producer_id: self.producer_id(),
                    reason: format!(
                        "base sequence {} in a batch with a producer id",
                        batch.base_sequence
                    ),
                });
            }
            self.check_sequence(batch.epoch, batch.base_sequence)?;
        }
        let first_offset = batch.base_offset;
        if self.updated.current_txn_first_offset.is_some()
            && !batch.transactional
            && self.origin != Origin::Replay
        {
            return Err(StateError::Invalid {
                producer_id: self.producer_id(),
                reason: format!(
                    "a non-transactional batch at offset {first_offset} while the producer's \
                     transaction is open (Kafka's INVALID_TXN_STATE)"
                ),
            });
        }
        self.updated.add_batch(
            batch.epoch,
            BatchMetadata {
                last_seq: batch.last_sequence(),
                last_offset: batch.last_offset(),
                offset_delta: batch.last_offset_delta,
                timestamp: batch.max_timestamp,
            },
        );
        if self.updated.current_txn_first_offset.is_none() && batch.transactional {
            self.updated.current_txn_first_offset = Some(first_offset);
            self.started.push(first_offset);
        }
        Ok(())
    }

    fn append_marker(
        &mut self,
        batch: &BatchFacts,
        marker: Marker,
    ) -> Result<Option<CompletedTxn>, StateError> {
        self.check_epoch(batch.epoch)?;
        if self.updated.coordinator_epoch > marker.coordinator_epoch
            && self.origin != Origin::Replay
        {
            return Err(StateError::Invalid {
                producer_id: self.producer_id(),
                reason: format!(
                    "transaction marker from coordinator epoch {} (zombie), the current one is {} \
                     (Kafka's TRANSACTION_COORDINATOR_FENCED)",
                    marker.coordinator_epoch, self.updated.coordinator_epoch
                ),
            });
        }
        // Only a transaction with data completes: a marker alone moves neither the LSO nor
        // the transaction index.
        let completed = self
            .updated
            .current_txn_first_offset
            .map(|first_offset| CompletedTxn {
                producer_id: self.producer_id(),
                first_offset,
                last_offset: batch.base_offset,
                aborted: !marker.commit,
            });
        self.updated.maybe_update_epoch(batch.epoch);
        self.updated.current_txn_first_offset = None;
        self.updated.coordinator_epoch = marker.coordinator_epoch;
        self.updated.last_timestamp = marker.timestamp;
        Ok(completed)
    }
}

/// The producer state of one partition (Kafka's `ProducerStateManager`, without files).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProducerStates {
    producers: BTreeMap<i64, ProducerEntry>,
    /// Open transactions: first offset -> producer id.
    ongoing: BTreeMap<i64, i64>,
    /// The offset up to which the state reflects the log (Kafka's `lastMapOffset`).
    map_end_offset: i64,
}

impl ProducerStates {
    /// An empty state for a log whose state is known up to `map_end_offset`.
    pub(crate) fn new(map_end_offset: i64) -> ProducerStates {
        ProducerStates {
            map_end_offset,
            ..ProducerStates::default()
        }
    }

    pub(crate) fn entry(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = &ProducerEntry> {
        self.producers.values()
    }

    pub(crate) fn map_end_offset(&self) -> i64 {
        self.map_end_offset
    }

    /// No producer is known: a snapshot of this state would hold no entry.
    pub(crate) fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub(crate) fn set_map_end_offset(&mut self, offset: i64) {
        self.map_end_offset = offset;
    }

    /// Starts checking a call's batches of `producer_id`.
    pub(crate) fn prepare(&self, producer_id: i64, origin: Origin) -> ProducerAppend {
        let current = self
            .producers
            .get(&producer_id)
            .cloned()
            .unwrap_or_else(|| ProducerEntry::empty(producer_id));
        ProducerAppend::new(current, origin)
    }

    /// Applies a checked append (Kafka's `update`).
    pub(crate) fn update(&mut self, append: ProducerAppend) {
        for first in &append.started {
            self.ongoing.insert(*first, append.producer_id());
        }
        self.producers.insert(append.producer_id(), append.updated);
    }

    /// The offset readers at `read_committed` may not pass for `completed`'s transaction
    /// index entry: the first offset of the next open transaction of another producer, or
    /// the offset after the marker (Kafka's `lastStableOffset(CompletedTxn)`).
    pub(crate) fn last_stable_offset_after(&self, completed: &CompletedTxn) -> i64 {
        self.ongoing
            .iter()
            .find(|(_, pid)| **pid != completed.producer_id)
            .map_or(completed.last_offset + 1, |(first, _)| *first)
    }

    /// Removes a completed transaction from the open ones.
    pub(crate) fn complete(&mut self, completed: &CompletedTxn) {
        self.ongoing.remove(&completed.first_offset);
    }

    /// The first offset of the earliest open transaction.
    pub(crate) fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
    }

    /// Open transactions as (producer id, first offset), earliest first.
    pub(crate) fn ongoing(&self) -> Vec<(i64, i64)> {
        self.ongoing.iter().map(|(f, p)| (*p, *f)).collect()
    }

    /// Forgets producers with no open transaction whose last write is at least
    /// `expiration_ms` old (Kafka's `isProducerExpired`); returns how many.
    pub(crate) fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| !is_expired(e, now_ms, expiration_ms));
        before - self.producers.len()
    }

    /// Adds an entry read from a snapshot.
    fn load(&mut self, entry: ProducerEntry) {
        if let Some(first) = entry.current_txn_first_offset {
            self.ongoing.insert(first, entry.producer_id);
        }
        self.producers.insert(entry.producer_id, entry);
    }
}

fn is_expired(e: &ProducerEntry, now_ms: i64, expiration_ms: i64) -> bool {
    e.current_txn_first_offset.is_none() && now_ms.saturating_sub(e.last_timestamp) >= expiration_ms
}

/// The snapshot version Kafka writes (`PRODUCER_SNAPSHOT_VERSION`).
const SNAPSHOT_VERSION: i16 = 1;
/// Where the CRC'd part starts: after version (2) and CRC (4).
const SNAPSHOT_ENTRIES_OFFSET: usize = 6;
/// Bytes of one entry: id 8, epoch 2, last sequence 4, last offset 8, offset delta 4,
/// timestamp 8, coordinator epoch 4, transaction first offset 8.
pub(crate) const SNAPSHOT_ENTRY_BYTES: usize = 46;
const _: () = assert!(SNAPSHOT_ENTRY_BYTES == 8 + 2 + 4 + 8 + 4 + 8 + 4 + 8);

/// Why a snapshot could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SnapshotError(pub String);

/// Encodes `states` as Kafka's producer snapshot (`ProducerStateManager.writeSnapshot`):
/// `version i16 | crc u32 | count i32 | entries`, big-endian; the CRC-32C covers everything
/// after the CRC field.
pub(crate) fn encode_snapshot(states: &ProducerStates) -> Vec<u8> {
    let count = states.producers.len();
    let mut out = Vec::with_capacity(SNAPSHOT_ENTRIES_OFFSET + 4 + count * SNAPSHOT_ENTRY_BYTES);
    out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    // A partition never holds 2^31 producers: each costs memory long before.
    let count = i32::try_from(count).unwrap_or(i32::MAX);
    out.extend_from_slice(&count.to_be_bytes());
    for e in states.producers.values().take(count as usize) {
        out.extend_from_slice(&e.producer_id.to_be_bytes());
        out.extend_from_slice(&e.epoch.to_be_bytes());
        out.extend_from_slice(&e.last_seq().to_be_bytes());
        out.extend_from_slice(&e.last_data_offset().to_be_bytes());
        out.extend_from_slice(&e.last_offset_delta().to_be_bytes());
        out.extend_from_slice(&e.last_timestamp.to_be_bytes());
        out.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
        out.extend_from_slice(&e.current_txn_first_offset.unwrap_or(-1).to_be_bytes());
    }
    let crc = codec::batch_crc(&out[SNAPSHOT_ENTRIES_OFFSET..]);
    out[2..6].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Decodes a snapshot written for offset `map_end_offset` (Kafka's `readSnapshot`, which also
/// keeps only the last batch of each producer). Producers already expired at `now_ms` are
/// left out, as Kafka's `loadFromSnapshot` does.
pub(crate) fn decode_snapshot(
    bytes: &[u8],
    map_end_offset: i64,
    now_ms: i64,
    expiration_ms: i64,
) -> Result<ProducerStates, SnapshotError> {
    let err = |m: String| Err(SnapshotError(m));
    let Some((head, rest)) = bytes.split_first_chunk::<SNAPSHOT_ENTRIES_OFFSET>() else {
        return err(format!("{} bytes, shorter than a header", bytes.len()));
    };
    let version = i16::from_be_bytes([head[0], head[1]]);
    if version != SNAPSHOT_VERSION {
        return err(format!("unknown snapshot version {version}"));
    }
    let stored = u32::from_be_bytes([head[2], head[3], head[4], head[5]]);
    let computed = codec::batch_crc(rest);
    if stored != computed {
        return err(format!(
            "CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"
        ));
    }
    let Some((count, mut entries)) = rest.split_first_chunk::<4>() else {
        return err("no entry count".into());
    };
    let count = i32::from_be_bytes(*count);
    let Ok(count) = usize::try_from(count) else {
        return err(format!("entry count {count}"));
    };
    if entries.len() != count.saturating_mul(SNAPSHOT_ENTRY_BYTES) {
        return err(format!(
            "{count} entries need {} bytes, found {}",
            count.saturating_mul(SNAPSHOT_ENTRY_BYTES),
            entries.len()
        ));
    }
    let mut states = ProducerStates::new(map_end_offset);
    while let Some((e, rest)) = entries.split_first_chunk::<SNAPSHOT_ENTRY_BYTES>() {
        entries = rest;
        let i64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&e[at..at + 8]);
            i64::from_be_bytes(b)
        };
        let i32_at = |at: usize| i32::from_be_bytes([e[at], e[at + 1], e[at + 2], e[at + 3]]);
        let producer_id = i64_at(0);
        let epoch = i16::from_be_bytes([e[8], e[9]]);
        let last_seq = i32_at(10);
        let last_offset = i64_at(14);
        let offset_delta = i32_at(22);
        let timestamp = i64_at(26);
        let coordinator_epoch = i32_at(34);
        let txn_first = i64_at(38);
        if producer_id < 0 || offset_delta < 0 || last_offset < i64::from(offset_delta) - 1 {
            return err(format!(
                "entry for producer {producer_id} has last offset {last_offset} and offset \
                 delta {offset_delta}"
            ));
        }
        let mut entry = ProducerEntry::empty(producer_id);
        entry.epoch = epoch;
        entry.last_timestamp = timestamp;
        entry.coordinator_epoch = coordinator_epoch;
        entry.current_txn_first_offset = (txn_first >= 0).then_some(txn_first);
        if last_offset >= 0 {
            entry.batches.push_back(BatchMetadata {
                last_seq,
                last_offset,
                offset_delta,
                timestamp,
            });
        }
        if !is_expired(&entry, now_ms, expiration_ms) {
            states.load(entry);
        }
    }
    Ok(states)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn data(pid: i64, epoch: i16, seq: i32, count: i32, base: i64) -> BatchFacts {
        BatchFacts {
            producer_id: pid,
            epoch,
            base_sequence: seq,
            last_offset_delta: count - 1,
            base_offset: base,
            max_timestamp: 100 + base,
            transactional: false,
            control: None,
        }
    }

    fn txn(pid: i64, epoch: i16, seq: i32, count: i32, base: i64) -> BatchFacts {
        BatchFacts {
            transactional: true,
            ..data(pid, epoch, seq, count, base)
        }
    }

    fn marker(pid: i64, epoch: i16, commit: bool, base: i64) -> BatchFacts {
        BatchFacts {
            producer_id: pid,
            epoch,
            base_sequence: -1,
            last_offset_delta: 0,
            base_offset: base,
            max_timestamp: 500,
            transactional: true,
            control: Some(Some(Marker {
                commit,
                coordinator_epoch: 0,
                timestamp: 500,
            })),
        }
    }

    /// Appends one batch as a client (or the coordinator, for markers), as the log does.
    fn apply(s: &mut ProducerStates, b: &BatchFacts) -> Result<Option<CompletedTxn>, StateError> {
        let origin = if b.control.is_some() {
            Origin::Coordinator
        } else {
            Origin::Client
        };
        let mut a = s.prepare(b.producer_id, origin);
        let completed = a.append(b)?;
        s.update(a);
        if let Some(c) = &completed {
            s.complete(c);
        }
        Ok(completed)
    }

    #[test]
    fn sequences_wrap_as_kafkas() {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(increment_sequence(5, 3), 8);
        assert_eq!(decrement_sequence(1, 3), i32::MAX - 1);
        assert_eq!(decrement_sequence(8, 3), 5);
        assert!(in_sequence(i32::MAX, 0));
        assert!(in_sequence(-1, 0));
        assert!(!in_sequence(4, 6));
    }

    #[test]
    fn a_producer_numbers_its_batches_in_order() {
        let mut s = ProducerStates::new(0);
        apply(&mut s, &data(1, 0, 0, 3, 0)).unwrap();
        apply(&mut s, &data(1, 0, 3, 2, 3)).unwrap();
        let e = s.entry(1).unwrap();
        assert_eq!((e.epoch, e.last_seq(), e.last_data_offset()), (0, 4, 4));
        assert_eq!(
            apply(&mut s, &data(1, 0, 6, 1, 5)),
            Err(StateError::OutOfOrder {
                producer_id: 1,
                expected: 5,
                received: 6
            })
        );
        // A refused batch changed nothing.
        assert_eq!(s.entry(1).unwrap().last_seq(), 4);
    }

    #[test]
    fn duplicates_are_found_among_the_last_five_batches() {
        let mut s = ProducerStates::new(0);
        for i in 0..7 {
            apply(&mut s, &data(1, 0, i * 2, 2, i64::from(i) * 2)).unwrap();
        }
        let e = s.entry(1).unwrap();
        assert_eq!(e.batches.len(), BATCHES_TO_RETAIN);
        let dup = e.find_duplicate(0, 4, 5).unwrap();
        assert_eq!((dup.first_offset(), dup.last_offset), (4, 5));
        assert!(e.find_duplicate(0, 2, 3).is_none(), "only 5 are kept");
        assert!(e.find_duplicate(0, 4, 4).is_none(), "the exact range");
        assert!(e.find_duplicate(1, 4, 5).is_none(), "the same epoch");
    }

    #[test]
    fn epochs_fence_and_a_new_epoch_starts_at_zero() {
        let mut s = ProducerStates::new(0);
        apply(&mut s, &data(1, 3, 0, 1, 0)).unwrap();
        assert_eq!(
            apply(&mut s, &data(1, 2, 1, 1, 1)),
            Err(StateError::OldEpoch {
                producer_id: 1,
                current: 3,
                received: 2
            })
        );
        assert_eq!(
            apply(&mut s, &data(1, 4, 5, 1, 1)),
            Err(StateError::OutOfOrder {
                producer_id: 1,
                expected: 0,
                received: 5
            })
        );
        apply(&mut s, &data(1, 4, 0, 1, 1)).unwrap();
        assert_eq!(
            s.entry(1).unwrap().batches.len(),
            1,
            "old epoch's batches forgotten"
        );
    }

    #[test]
    fn an_unknown_producer_may_start_at_any_sequence() {
        // KIP-360: its earlier batches may have been removed by retention.
        let mut s = ProducerStates::new(0);
        apply(&mut s, &data(9, 0, 42, 1, 0)).unwrap();
        assert_eq!(s.entry(9).unwrap().last_seq(), 42);
        assert!(apply(&mut s, &data(9, 0, 44, 1, 1)).is_err());
    }

    #[test]
    fn client_batches_with_a_producer_id_need_a_sequence() {
        let mut s = ProducerStates::new(0);
        assert!(matches!(
            apply(&mut s, &data(1, 0, -1, 1, 0)),
            Err(StateError::Invalid { .. })
        ));
        // The coordinator's offset commits carry none.
        let mut a = s.prepare(1, Origin::Coordinator);
        a.append(&txn(1, 0, -1, 1, 0)).unwrap();
    }

    #[test]
    fn transactions_open_and_complete() {
        let mut s = ProducerStates::new(0);
        apply(&mut s, &txn(1, 0, 0, 2, 10)).unwrap();
        apply(&mut s, &txn(2, 0, 0, 1, 12)).unwrap();
        apply(&mut s, &txn(1, 0, 2, 1, 13)).unwrap();
        assert_eq!(s.first_unstable_offset(), Some(10));
        assert_eq!(s.ongoing(), vec![(1, 10), (2, 12)]);
        // A non-transactional batch while the transaction is open.
        assert!(matches!(
            apply(&mut s, &data(1, 0, 3, 1, 14)),
            Err(StateError::Invalid { .. })
        ));
        let abort = CompletedTxn {
            producer_id: 1,
            first_offset: 10,
            last_offset: 14,
            aborted: true,
        };
        let mut a = s.prepare(1, Origin::Coordinator);
        assert_eq!(a.append(&marker(1, 0, false, 14)), Ok(Some(abort)));
        s.update(a);
        // The next open transaction of another producer bounds what readers see.
        assert_eq!(s.last_stable_offset_after(&abort), 12);
        s.complete(&abort);
        assert_eq!(s.first_unstable_offset(), Some(12));
        let commit = apply(&mut s, &marker(2, 0, true, 15)).unwrap().unwrap();
        assert!(!commit.aborted);
        assert_eq!(s.first_unstable_offset(), None);
        // A marker without a transaction completes nothing.
        assert_eq!(apply(&mut s, &marker(2, 0, true, 16)), Ok(None));
        // A marker with an older epoch is refused.
        apply(&mut s, &txn(3, 5, 0, 1, 17)).unwrap();
        assert!(matches!(
            apply(&mut s, &marker(3, 4, false, 18)),
            Err(StateError::OldEpoch { .. })
        ));
    }

    #[test]
    fn expiry_keeps_producers_with_open_transactions() {
        let mut s = ProducerStates::new(0);
        apply(&mut s, &data(1, 0, 0, 1, 0)).unwrap(); // timestamp 100
        apply(&mut s, &txn(2, 0, 0, 1, 1)).unwrap(); // timestamp 101
        assert_eq!(s.expire(150, 100), 0);
        assert_eq!(s.expire(200, 100), 1);
        assert!(s.entry(1).is_none());
        assert_eq!(s.expire(10_000, 100), 0, "open transaction");
        assert!(s.entry(2).is_some());
    }

    #[test]
    fn snapshot_bytes_are_kafkas() {
        let mut s = ProducerStates::new(0);
        apply(&mut s, &txn(7, 2, 0, 3, 10)).unwrap();
        let bytes = encode_snapshot(&s);
        assert_eq!(bytes.len(), 6 + 4 + SNAPSHOT_ENTRY_BYTES);
        assert_eq!(&bytes[..2], &[0, 1]);
        assert_eq!(&bytes[6..10], &[0, 0, 0, 1]);
        let e = &bytes[10..];
        assert_eq!(&e[..8], &7i64.to_be_bytes());
        assert_eq!(&e[8..10], &2i16.to_be_bytes());
        assert_eq!(&e[10..14], &2i32.to_be_bytes()); // last sequence
        assert_eq!(&e[14..22], &12i64.to_be_bytes()); // last offset
        assert_eq!(&e[22..26], &2i32.to_be_bytes()); // offset delta
        assert_eq!(&e[26..34], &110i64.to_be_bytes()); // timestamp
        assert_eq!(&e[34..38], &(-1i32).to_be_bytes()); // coordinator epoch
        assert_eq!(&e[38..46], &10i64.to_be_bytes()); // transaction first offset
        let crc = crc32c::crc32c(&bytes[6..]);
        assert_eq!(&bytes[2..6], &crc.to_be_bytes());
        let back = decode_snapshot(&bytes, 13, 0, i64::MAX).unwrap();
        assert_eq!(back.entry(7), s.entry(7));
        assert_eq!(back.first_unstable_offset(), Some(10));
        assert_eq!(back.map_end_offset(), 13);
    }

    #[test]
    fn damaged_snapshots_are_errors_not_panics() {
        let mut s = ProducerStates::new(0);
        apply(&mut s, &data(7, 0, 0, 1, 0)).unwrap();
        apply(&mut s, &data(8, 0, 0, 1, 1)).unwrap();
        let bytes = encode_snapshot(&s);
        for cut in 0..bytes.len() {
            assert!(
                decode_snapshot(&bytes[..cut], 0, 0, i64::MAX).is_err(),
                "cut at {cut}"
            );
        }
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(
                decode_snapshot(&bad, 0, 0, i64::MAX).is_err(),
                "flip at {i}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_snapshot(&longer, 0, 0, i64::MAX).is_err());
    }

    /// A simple model: per producer, epoch, next sequence, and whether a transaction is open.
    #[derive(Clone, Copy, Debug)]
    enum Op {
        Data {
            pid: i64,
            epoch: i16,
            seq: i32,
            count: i32,
            txn: bool,
        },
        Marker {
            pid: i64,
            epoch: i16,
            commit: bool,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0i64..3, 0i16..3, 0i32..12, 1i32..4, any::<bool>()).prop_map(
                |(pid, epoch, seq, count, txn)| Op::Data { pid, epoch, seq, count, txn }
            ),
            1 => (0i64..3, 0i16..3, any::<bool>())
                .prop_map(|(pid, epoch, commit)| Op::Marker { pid, epoch, commit }),
        ]
    }

    #[derive(Clone, Copy, Default)]
    struct ModelEntry {
        epoch: Option<i16>,
        next_seq: i32,
        open: Option<i64>,
    }

    proptest! {
        #[test]
        fn state_machine_matches_a_model(ops in proptest::collection::vec(op(), 1..60)) {
            let mut s = ProducerStates::new(0);
            let mut model: BTreeMap<i64, ModelEntry> = BTreeMap::new();
            let mut offset = 0i64;
            for op in ops {
                let m = model.get(&match op { Op::Data { pid, .. } | Op::Marker { pid, .. } => pid })
                    .copied().unwrap_or_default();
                match op {
                    Op::Data { pid, epoch, seq, count, txn: t } => {
                        let b = if t { txn(pid, epoch, seq, count, offset) } else { data(pid, epoch, seq, count, offset) };
                        let expect_ok = match m.epoch {
                            None => true,
                            Some(e) if epoch < e => false,
                            Some(e) if epoch > e => seq == 0,
                            Some(_) => seq == m.next_seq,
                        } && !(m.open.is_some() && !t && m.epoch.is_some_and(|e| epoch >= e));
                        let got = apply(&mut s, &b);
                        prop_assert_eq!(got.is_ok(), expect_ok, "{:?} -> {:?}", op, got);
                        if expect_ok {
                            let open = m.open.or(t.then_some(offset));
                            model.insert(pid, ModelEntry { epoch: Some(epoch), next_seq: seq + count, open });
                            offset += i64::from(count);
                        }
                    }
                    Op::Marker { pid, epoch, commit } => {
                        let b = marker(pid, epoch, commit, offset);
                        let expect_ok = m.epoch.is_none_or(|e| epoch >= e);
                        let got = apply(&mut s, &b);
                        prop_assert_eq!(got.is_ok(), expect_ok, "{:?} -> {:?}", op, got);
                        if let Ok(done) = got {
                            prop_assert_eq!(done.map(|c| c.first_offset), m.open);
                            let next_seq = if m.epoch == Some(epoch) { m.next_seq } else { 0 };
                            model.insert(pid, ModelEntry { epoch: Some(epoch), next_seq, open: None });
                            offset += 1;
                        }
                    }
                }
                let first_open = model.values().filter_map(|e| e.open).min();
                prop_assert_eq!(s.first_unstable_offset(), first_open);
            }
            // A snapshot keeps what the model knows.
            let back = decode_snapshot(&encode_snapshot(&s), offset, 0, i64::MAX).unwrap();
            prop_assert_eq!(back.first_unstable_offset(), s.first_unstable_offset());
            for e in s.entries() {
                let b = back.entry(e.producer_id).unwrap();
                prop_assert_eq!((b.epoch, b.last_seq(), b.current_txn_first_offset), (e.epoch, e.last_seq(), e.current_txn_first_offset));
            }
        }

        #[test]
        fn snapshot_decoding_never_panics(bytes: Vec<u8>) {
            let _ = decode_snapshot(&bytes, 0, 0, 0);
        }

        #[test]
        fn sequence_arithmetic_never_panics(a: i32, b: i32, epoch: i16) {
            let _ = increment_sequence(a, b);
            let _ = decrement_sequence(a, b);
            let meta = BatchMetadata { last_seq: a, last_offset: 0, offset_delta: b.max(0), timestamp: 0 };
            let _ = meta.first_seq();
            let mut e = ProducerEntry::empty(1);
            e.epoch = epoch;
            e.batches.push_back(meta);
            let _ = e.find_duplicate(epoch, a, b);
        }
    }
}
