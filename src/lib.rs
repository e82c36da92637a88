#![doc = include_str!("../README.md")]
//!
//! # Brief overview
//!
//! - [`Broker`] opens a data directory (or a temporary one) and owns its topics. It is a cheap
//!   handle: clone it freely; [`Broker::close`] flushes and releases the directory.
//! - [`Topic`] and [`Partition`] are handles to the storage layer: append, read, offsets,
//!   flush, wait for data.
//! - [`Consumer`] reads with Kafka's consumer semantics, by assignment or as a group member.
//! - [`TopicPartition`] names a partition; [`Record`], [`StoredRecord`] and the consumer's
//!   records carry keys, values, headers and timestamps as zero-copy [`Bytes`].
//! - [`Error`] is the one error type; its messages name the file, position, topic, partition or
//!   config key involved.
//! - [`codec`] is the pure record-batch codec, for inspection tools and fuzzing.

// Only `io::mmap` may use unsafe code, and it says why each use holds.
#![deny(unsafe_code)]
#![warn(missing_docs)]
// Library code reports failures as `Error`s; tests and examples may panic freely.
#![warn(clippy::unwrap_used, clippy::expect_used)]

mod broker;
mod clock;
pub mod codec;
mod config;
mod consumer;
mod error;
mod group;
mod io;
mod log;
mod notify;
mod producer;
mod types;

pub use broker::{
    Broker, BrokerBuilder, OffsetAndTimestamp, Partition, PartitionDescription, Topic,
    TopicDescription,
};
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use config::{
    Acks, AssignmentStrategy, CleanupPolicy, ConsumerConfig, IsolationLevel, OffsetReset,
    PartitionerChoice, ProducerConfig, TopicConfig,
};
pub use consumer::{
    Consumer, ConsumerRecord, ConsumerRecords, ConsumerRecordsIntoIter, ConsumerRecordsIter,
    RebalanceListener, WakeupHandle,
};
pub use error::{Error, Result};
pub use group::{
    assignor_by_name, Assignment, Assignor, CooperativeStickyAssignor, GroupDescription,
    GroupListing, GroupState, MemberDescription, OffsetAndMetadata, OffsetSpec, PartitionOffsets,
    RangeAssignor, RebalanceProtocol, RoundRobinAssignor, StickyAssignor, Subscription,
};
pub use log::{RecordRef, RecordViews, Records, RecordsIter};
pub use producer::{
    murmur2, to_positive, DefaultPartitioner, NullKeyStrategy, Partitioner, Producer,
    ProducerRecord, RandomPartitioner, RecordMetadata, RoundRobinPartitioner, SendFuture,
};
pub use types::{Bytes, Header, Record, StoredRecord, TimestampType, TopicPartition};
