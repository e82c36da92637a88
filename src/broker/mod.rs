//! The broker: a data directory with its lock, its topics and their partition logs, and the
//! background threads: one for retention and periodic flushes, one for the log cleaner, one
//! (`syncer`) for the fsyncs of async durable commits.
//!
//! Owns: the data directory layout above partition directories (the `.lock` file, `topics/`),
//! topic names and configs, and the `Broker`, `Topic` and `Partition` handles.
//!
//! Invariants:
//! - At most one `Broker` has a data directory open at a time (the lock).
//! - A topic exists exactly when its file in `topics/` does; partition directories that no
//!   file accounts for are leftovers of interrupted work and are removed at open.
//! - A partition that fails to open is kept offline with its error; the rest of the broker
//!   works.
//! - Metadata changes (create, delete, alter, add partitions) are serialized by one lock.

#[allow(clippy::module_inception)]
mod broker;
mod cleaner;
#[cfg(test)]
mod durability_tests;
mod handles;
pub(crate) mod names;
mod syncer;
mod tasks;
mod topic_store;

pub use broker::{Broker, BrokerBuilder};
pub(crate) use broker::{BrokerInner, PartitionSlot, TopicState};
pub use cleaner::CleanerReport;
pub use handles::{
    BatchesAppended, OffsetAndTimestamp, OpenTransaction, Partition, PartitionDescription, Topic,
    TopicDescription,
};
pub(crate) use syncer::Durable;
