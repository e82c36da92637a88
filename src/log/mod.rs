//! The storage layer: partition logs made of segments, their indexes, recovery, retention
//! and compaction (the log cleaner).
//!
//! Owns: every file inside a partition directory, the data directory's `recovery-points`
//! (every partition's recovery point as of the last clean close), and each partition's producer state
//! (idempotence, transactions, the last stable offset; `producer_state`, `txn_index`). Knows
//! nothing of topics beyond a name, nothing of consumers or groups, and of producers only what
//! their batches' producer fields say.
//!
//! Invariants (details in each module):
//! - Appends go through one writer per partition; reads never block on it.
//! - A reader sees only whole, CRC-checked batches below a published end.
//! - Bytes below the recovery point are durable and not rescanned at open (but to rebuild a
//!   missing index, where damage is an error, never a cut); bytes after it are checked at
//!   open and cut at the first damaged or torn batch.
//! - The producer state follows the log: it changes only after a write, and a `.snapshot`
//!   exists only for an offset below which every byte is durable. A recovery point with the
//!   no-producers flag (`recovery_points`) stands for an empty snapshot at its offset.

mod checkpoint;
mod checkpoint_batch;
mod clean_swap;
mod cleaner;
mod cleaner_checkpoint;
mod file_budget;
mod index;
mod log_start;
mod offset_map;
mod partition_log;
mod producer_state;
mod records;
pub(crate) mod recovery_points;
mod retention;
mod sealed;
mod segment;
mod throttle;
mod txn_index;
mod validate;

pub(crate) use checkpoint_batch::{checkpoint_many, PointsFile};
pub(crate) use file_budget::{FileBudget, OPEN_FILES_DEFAULT};
#[allow(unused_imports)] // for the transaction coordinator (src/txn)
pub(crate) use partition_log::ProducerStateInfo;
pub(crate) use partition_log::{dir_name, AppendInfo, LogOpen, PartitionLog, ReadHint};
pub(crate) use records::timestamp;
pub use records::{RecordRef, RecordViews, Records, RecordsIntoIter, RecordsIter};
pub(crate) use recovery_points::{DirPoint, Entry as RecoveryPointEntry};
pub(crate) use throttle::Throttle;
pub(crate) use txn_index::AbortedTxn;
#[cfg(test)]
mod txn_tests;
