//! The producer side: choosing a partition for each record, batching records per partition,
//! and writing batches to the partition logs under the configured `acks`.
//!
//! Owns: [`Producer`] and its sender thread, the record accumulator, [`SendFuture`],
//! [`ProducerRecord`], [`RecordMetadata`], and the partitioners.
//!
//! - `partitioner` owns Kafka's murmur2 and the built-in partitioners. It is pure computation:
//!   no I/O, no clock, no knowledge of logs; the producer asks it for a partition number and
//!   checks the answer lies in `0..partition_count`.
//! - `accumulator` holds, per partition, the batch being filled (already encoded with the
//!   codec's `BatchBuilder`) and the closed batches waiting to be written.
//! - `producer` is the handle (`send`, `flush`, `close`) and the one sender loop per
//!   producer that writes batches and completes them.
//! - `sender_pool` owns the threads the sender loops run on: a producer's creation takes an
//!   idle one (or spawns one), its close waits for its loop's end instead of joining a thread.
//! - `future` is the once-set result of a batch that every record's future shares.
//!
//! Invariants:
//! - Records for one partition reach the log in the order `send` accepted them (one open
//!   batch per partition, batches written in creation order by one thread).
//! - Every record `send` accepted is answered exactly once: its future is set and its
//!   callback runs, with metadata or an error, including when the producer is flushed, closed
//!   or dropped.
//! - A success is reported only after the record is in the log (`acks=1`) or in the log and
//!   fsynced (`acks=all`); under `acks=0` the future is complete at once.
//! - The room batches hold in `buffer.memory` never exceeds it. A batch takes room ahead of
//!   its records, up to `batch.size` at a time (as Kafka's buffer pool allocates whole
//!   batches), and gives back what it did not use once the sender takes it; a send that finds
//!   no room waits at most `max.block.ms`.
//! - The producer reaches storage only through `PartitionLog::append_batch` and `sync_to`.

mod accumulator;
mod future;
mod idempotence;
pub(crate) mod partitioner;
#[allow(clippy::module_inception)]
mod producer;
mod record;
mod sender_pool;
mod transaction;

pub use future::SendFuture;
pub use partitioner::{
    murmur2, to_positive, DefaultPartitioner, NullKeyStrategy, Partitioner, RandomPartitioner,
    RoundRobinPartitioner,
};
pub use producer::{Flush, Producer};
pub use record::{ProducerRecord, RecordMetadata};
