//! The consumer: Kafka's `KafkaConsumer` over an in-process broker.
//!
//! Owns: one consumer's view of its partitions (positions, lazy seeks, pauses, buffered
//! records), its membership in a group as seen from the member's side (generation, rebalance
//! callbacks, auto-commit timing), and the records handed to the user.
//!
//! Invariants:
//! - `assign` and `subscribe` are exclusive; `poll` with neither is an error.
//! - A position is the offset of the next record `poll` returns; it moves only when records
//!   are returned, on seek, or on an out-of-range reset. A committed offset is a position.
//! - Records are never copied: key, value and headers share the buffer one read returned,
//!   records are built only as the `ConsumerRecords` holding them is iterated, and records
//!   fetched but not yet returned stay buffered for the next `poll`.
//! - Listener callbacks run on the consumer's thread, inside `poll`, `unsubscribe` or `close`,
//!   never while a group lock is held.
//! - Time (auto-commit interval, `max.poll.interval.ms`) is the broker's clock.

mod aborted;
mod commit;
#[allow(clippy::module_inception)]
mod consumer;
mod fetcher;
mod listener;
mod records;
mod recv;

pub use commit::Commit;
pub use consumer::Consumer;
pub use listener::{RebalanceListener, WakeupHandle};
pub use records::{
    ConsumerRecord, ConsumerRecordRef, ConsumerRecordViews, ConsumerRecords,
    ConsumerRecordsIntoIter, ConsumerRecordsIter,
};
pub use recv::Recv;
#[cfg(feature = "stream")]
pub use recv::{BatchStream, RecordStream};
#[cfg(test)]
mod read_committed_tests;

/// The consumer's aborted-transaction filter, for the log's tests.
#[cfg(test)]
pub(crate) use aborted::drop_aborted as drop_aborted_for_tests;
