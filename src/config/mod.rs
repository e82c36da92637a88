//! Typed configuration, and parsing of Kafka's own property keys into it.
//!
//! Every config type has chainable setters for use from Rust and a `from_properties` that takes
//! Kafka's keys (`retention.ms`, `linger.ms`, ...). Unknown keys and bad values are errors that
//! name the key. Validation happens where the config is used (`create_topic`, `producer`,
//! `consumer`), so a typed setter with a bad value fails there, naming the same key.

pub(crate) mod compression;
pub(crate) mod consumer;
pub(crate) mod java_properties;
pub(crate) mod known_keys;
pub(crate) mod load;
pub(crate) mod producer;
pub(crate) mod properties;
pub(crate) mod topic;

pub use compression::CompressionLevels;
pub use consumer::{AssignmentStrategy, ConsumerConfig, IsolationLevel, OffsetReset};
pub use producer::{Acks, PartitionerChoice, ProducerConfig};
pub use topic::{CleanupPolicy, TopicCompression, TopicConfig};
