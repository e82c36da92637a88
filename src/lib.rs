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
//! - [`TypedProducer`] and [`TypedConsumer`] (from [`Producer::typed`], [`Consumer::typed`])
//!   send and receive keys and values of application types through Kafka-style
//!   [`Serializer`]s and [`Deserializer`]s: strings, bytes, big-endian numbers ([`Builtin`]),
//!   JSON with feature `serde`.
//! - Exactly-once: an `acks=all` [`Producer`] is idempotent (Kafka's producer id, epoch and
//!   sequence in every batch); with a `transactional.id` it writes transactions
//!   ([`Producer::init_transactions`], [`Producer::send_offsets_to_transaction`] with a
//!   consumer's [`ConsumerGroupMetadata`], [`Producer::commit_transaction`]) through the
//!   broker's transaction coordinator; [`Broker::list_transactions`] shows their state.
//! - [`Error`] is the one error type; its messages name the file, position, topic, partition or
//!   config key involved.
//! - [`codec`] is the pure record-batch codec, for inspection tools and fuzzing.
//! - [`streams`] is Kafka Streams in-process: a `StreamsBuilder` DSL (`KStream`, `KTable`,
//!   grouping, windows, aggregations into state stores), the Processor API, and Kafka's
//!   `TopologyTestDriver` to run a topology record by record in a test.
//!
//! # The three uses
//!
//! **A durable queue inside an application.** Open a directory, produce with `acks=all` so an
//! acknowledged record survives power loss, consume as a group and commit; after a restart the
//! group resumes after its last commit.
//!
//! ```
//! use std::time::Duration;
//! use embroker::{Acks, Broker, ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord, TopicConfig};
//! let dir = tempfile::tempdir()?;
//! {
//!     let broker = Broker::open(dir.path())?;
//!     broker.create_topic("jobs", TopicConfig::default().partitions(2))?;
//!     let producer = broker.producer(ProducerConfig::default().acks(Acks::All))?;
//!     for i in 0..4 {
//!         producer.send(ProducerRecord::new("jobs", format!("job {i}")).key(format!("{i}")))?.wait()?;
//!     }
//!     let mut worker = broker.consumer(
//!         ConsumerConfig::default().group_id("workers").auto_offset_reset(OffsetReset::Earliest),
//!     )?;
//!     worker.subscribe(&["jobs"])?;
//!     let mut done = 0;
//!     while done < 4 {
//!         done += worker.poll(Duration::from_secs(5))?.count();
//!     }
//!     worker.commit_sync()?;
//!     worker.close()?;
//!     broker.close()?;
//! }
//! // After a restart, the group has nothing left to do.
//! let broker = Broker::open(dir.path())?;
//! let mut worker = broker.consumer(ConsumerConfig::default().group_id("workers"))?;
//! worker.subscribe(&["jobs"])?;
//! assert_eq!(worker.poll(Duration::from_millis(200))?.count(), 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! **A fake Kafka in a test.** A temporary broker starts in well under a millisecond and
//! places keyed records exactly where Kafka's Java client would.
//!
//! ```
//! use embroker::{murmur2, to_positive, Broker, ProducerConfig, ProducerRecord, TopicConfig};
//! let broker = Broker::temporary()?;
//! broker.create_topic("orders", TopicConfig::default().partitions(12))?;
//! let producer = broker.producer(ProducerConfig::default())?;
//! let meta = producer.send(ProducerRecord::new("orders", "1 melon").key("foobar"))?.wait()?;
//! assert_eq!(meta.partition, 6); // Kafka's own test vector: murmur2("foobar") -> 6 of 12
//! assert_eq!(meta.partition, to_positive(murmur2(b"foobar")) % 12);
//! # Ok::<(), embroker::Error>(())
//! ```
//!
//! **Reading the log format.** Segment files are concatenated record batches in Kafka's own
//! format (RecordBatch v2: magic 2, CRC-32C; `docs/FORMAT.md` has every byte);
//! [`codec::decode_batch`] checks and decodes one without any I/O.
//!
//! ```
//! use embroker::{codec, Broker, Record, TopicConfig};
//! let broker = Broker::temporary()?;
//! broker.create_topic("t", TopicConfig::default())?;
//! broker.topic("t")?.partition(0)?.append(&[Record::new("hello").key("k")])?;
//! broker.flush()?;
//! let bytes = std::fs::read(broker.path().join("t-0/00000000000000000000.log")).unwrap();
//! let batch = codec::decode_batch(&bytes).expect("a whole batch with a good CRC");
//! assert_eq!(batch.header.base_offset, 0);
//! let record = batch.records().next().unwrap();
//! assert_eq!((record.key, record.value), (Some(&b"k"[..]), Some(&b"hello"[..])));
//! # Ok::<(), embroker::Error>(())
//! ```

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
mod headers;
mod io;
mod log;
pub mod metrics;
mod notify;
mod producer;
mod record_cursor;
#[cfg(feature = "server")]
mod server;
pub mod streams;
mod topic_names;
mod txn;
mod typed;
mod types;

pub use broker::{
    BatchesAppended, Broker, BrokerBuilder, CleanerReport, OffsetAndTimestamp, OpenTransaction,
    Partition, PartitionDescription, Topic, TopicDescription,
};
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use config::{
    Acks, AssignmentStrategy, CleanupPolicy, CompressionLevels, ConsumerConfig, IsolationLevel,
    OffsetReset, PartitionerChoice, ProducerConfig, TopicCompression, TopicConfig,
};
#[cfg(feature = "stream")]
pub use consumer::{BatchStream, RecordStream};
pub use consumer::{
    Commit, Consumer, ConsumerRecord, ConsumerRecordRef, ConsumerRecordViews, ConsumerRecords,
    ConsumerRecordsIntoIter, ConsumerRecordsIter, RebalanceListener, Recv, WakeupHandle,
};
pub use error::{Error, Result};
pub use group::{
    assignor_by_name, Assignment, Assignor, ConsumerGroupMetadata, CooperativeStickyAssignor,
    GroupDescription, GroupListing, GroupState, MemberDescription, OffsetAndMetadata, OffsetSpec,
    PartitionOffsets, RangeAssignor, RebalanceProtocol, RoundRobinAssignor, StickyAssignor,
    Subscription,
};
pub use headers::Headers;
pub use log::{RecordRef, RecordViews, Records, RecordsIntoIter, RecordsIter};
pub use metrics::{Metric, MetricName, Metrics};
pub use producer::{
    murmur2, to_positive, DefaultPartitioner, Flush, NullKeyStrategy, Partitioner, Producer,
    ProducerRecord, RandomPartitioner, RecordMetadata, RoundRobinPartitioner, SendFuture,
};
#[cfg(feature = "server")]
pub use server::{SaslPlainUsers, Server, ServerConfig};
pub use txn::{TransactionDescription, TxnState};
#[cfg(feature = "serde")]
pub use typed::Json;
pub use typed::{
    Builtin, Deserializer, RecordPart, SerdeError, Serializer, TypedConsumer, TypedConsumerRecord,
    TypedProducer, TypedProducerRecord,
};
pub use types::{Bytes, Header, Record, StoredRecord, TimestampType, TopicPartition};

/// Internals that embroker's fuzz targets (`fuzz/`) need and the public API does not offer:
/// fuzz targets use the public API only, so these are re-exported here.
///
/// **Not part of the stable API.** Hidden from the documentation; anything here may change or
/// disappear in any release, without a major version bump. Do not use it from applications.
/// Test seams for crash tests (see `__testing::on_commit_decision`).
///
/// **Not part of the stable API.** Hidden from the documentation; do not use it from
/// applications.
#[doc(hidden)]
pub mod __testing {
    pub use crate::txn::testing::{on_commit_decision, on_commit_decision_before_data};
}

#[doc(hidden)]
pub mod __fuzz {
    /// The `__consumer_offsets` record codec (format in `src/group/offset_store.rs`), for the
    /// `offsets_log` fuzz target.
    pub use crate::group::{
        decode_offset_commit, encode_offset_commit_key, encode_offset_commit_value,
        OffsetCommitRecord, OffsetCommitValue,
    };
    /// The `__transaction_state` record codec (format in `src/txn/state_log.rs`).
    pub use crate::txn::{
        decode_txn_log_record, encode_txn_log_key, encode_txn_log_value, TxnLogRecord, TxnLogValue,
        TxnTopicPartitions,
    };

    /// One Kafka request frame (without its 4-byte size prefix) answered against `broker` as
    /// a server connection answers it (feature `server`), for the `server_request` fuzz
    /// target: the response frame (size prefix included), or `None` when the connection
    /// would send nothing (a Produce with acks=0) or be closed. Fetch long polls do not wait.
    #[cfg(feature = "server")]
    pub fn server_answer(broker: &crate::Broker, frame: &[u8]) -> Option<Vec<u8>> {
        crate::server::answer_frame(broker, frame)
    }
}
