//! embroker: Apache Kafka's semantics in-process.
//!
//! (Crate docs are filled in with the tour once the public API lands.)

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod broker;
mod clock;
pub mod codec;
mod config;
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
pub use error::{Error, Result};
pub use group::{
    assignor_by_name, Assignment, Assignor, CooperativeStickyAssignor, RangeAssignor,
    RebalanceProtocol, RoundRobinAssignor, StickyAssignor, Subscription,
};
pub use log::{Records, RecordsIter};
pub use producer::{
    murmur2, to_positive, DefaultPartitioner, NullKeyStrategy, Partitioner, Producer,
    ProducerRecord, RandomPartitioner, RecordMetadata, RoundRobinPartitioner, SendFuture,
};
pub use types::{Bytes, Header, Record, StoredRecord, TimestampType, TopicPartition};
