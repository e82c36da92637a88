//! Typed configuration, and parsing of Kafka's own property keys into it.
//!
//! Every config type has chainable setters for use from Rust, a `from_properties` that takes
//! Kafka's keys (`retention.ms`, `linger.ms`, ...) and a `from_file` that reads a Java
//! `.properties` file (`java_properties`). Every key Kafka defines for the config is accepted:
//! applied, or ignored with a reason when it cannot apply in one process (`known_keys`, which
//! also lists the librdkafka aliases accepted); ignored keys are kept (`ignored_keys()`) and
//! logged once per load. A key Kafka does not define is an error that suggests the closest known
//! key; bad values are errors that name the key. Validation happens where the config is used (`create_topic`, `producer`,
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
