//! The one error type of the crate.
//!
//! Every failure says what went wrong and where: the file and byte position, the topic and
//! partition, or the config key. Messages read as sentences (`Display`), the I/O cause is
//! reachable through `source()`. Bad file contents are always an `Error`, never a panic.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in embroker.
///
/// The enum is `#[non_exhaustive]`: new failure kinds may be added in minor releases.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O call failed.
    #[error("I/O error while {action} {}: {source}", path.display())]
    Io {
        /// What we were doing, as a verb phrase ("writing", "opening", "syncing").
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },

    /// A network call of the Kafka protocol server (feature `server`) failed.
    #[error("network error while {action} {address}: {source}")]
    Network {
        /// What we were doing, as a verb phrase ("binding").
        action: &'static str,
        /// The address involved.
        address: String,
        /// The cause.
        #[source]
        source: io::Error,
    },

    /// Another `Broker` (in this or another process) holds the data directory.
    #[error("data directory {} is locked by another broker (this or another process)", path.display())]
    DirectoryLocked {
        /// The data directory.
        path: PathBuf,
    },

    /// A file's bytes do not hold together (bad length, bad field, bad checksum).
    #[error("corrupt data in {} at byte {position}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte position in the file where the damage was found.
        position: u64,
        /// What is wrong.
        reason: String,
    },

    /// A file was written in an on-disk format this version no longer reads (embroker's format
    /// 1, before batches became Kafka's RecordBatch v2). Nothing is converted or truncated.
    #[error(
        "{} was written in an older on-disk format ({found}, at byte {position}); this version \
         of embroker reads format 2 (Kafka's record batch v2) only and does not convert old \
         data: recreate the data directory, or read it with the version that wrote it",
        path.display()
    )]
    FormatChanged {
        /// The file.
        path: PathBuf,
        /// Byte position in the file where the old format was recognised.
        position: u64,
        /// What was found.
        found: String,
    },

    /// A topic name breaks one of Kafka's naming rules.
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName {
        /// The name as given.
        name: String,
        /// The rule it broke.
        reason: &'static str,
    },

    /// `create_topic` for a topic that already exists.
    #[error("topic {topic:?} already exists")]
    TopicExists {
        /// The topic.
        topic: String,
    },

    /// The topic does not exist (and auto-creation is off).
    #[error("unknown topic {topic:?}")]
    UnknownTopic {
        /// The topic.
        topic: String,
    },

    /// The partition number is outside `0..partitions`.
    #[error("topic {topic:?} has no partition {partition} (it has {partitions})")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: i32,
        /// How many partitions the topic has.
        partitions: i32,
    },

    /// `create_partitions` with a count that is not an increase.
    #[error(
        "topic {topic:?} already has {current} partition(s); {requested} would not be an increase"
    )]
    InvalidPartitionCount {
        /// The topic.
        topic: String,
        /// The current partition count.
        current: i32,
        /// The count asked for.
        requested: i32,
    },

    /// A config file could not be read as Java `.properties` (a malformed escape, ...).
    #[error("config file {} line {line}: {reason}", path.display())]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// The line (1-based) where the entry starts.
        line: usize,
        /// What is wrong.
        reason: String,
    },

    /// A config key is unknown or its value is bad.
    #[error("invalid config {key}={value:?}: {reason}")]
    InvalidConfig {
        /// The config key (Kafka's name, e.g. `retention.ms`).
        key: String,
        /// The value as given.
        value: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A fetch at an offset outside `[log_start, log_end]`.
    #[error(
        "offset {offset} is out of range for {topic}-{partition} (log start {log_start}, log end {log_end})"
    )]
    OffsetOutOfRange {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The offset asked for.
        offset: i64,
        /// The first offset still in the log.
        log_start: i64,
        /// The next offset to be written.
        log_end: i64,
    },

    /// A record or batch is larger than a configured limit.
    #[error("record batch of {size} bytes for {topic}-{partition} exceeds {limit_name}={limit}")]
    RecordTooLarge {
        /// The topic.
        topic: String,
        /// The partition (-1 when not yet chosen).
        partition: i32,
        /// The size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
        /// The config key that sets the limit.
        limit_name: &'static str,
    },

    /// A record was refused by the log (for example a keyless record on a compacted topic).
    #[error("record rejected by {topic}-{partition}: {reason}")]
    InvalidRecord {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// Why.
        reason: String,
    },

    /// A batch given to [`crate::Partition::append_batches`] is damaged: its CRC does not hold,
    /// or its bytes do not parse (Kafka's `CORRUPT_MESSAGE`).
    #[error(
        "corrupt batch for {topic}-{partition} at byte {position} of the appended bytes: {reason}"
    )]
    CorruptRecord {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// Byte position in the appended bytes where the batch starts.
        position: u64,
        /// What is wrong.
        reason: String,
    },

    /// A record's timestamp is outside what the topic accepts (negative, or outside
    /// `message.timestamp.before.max.ms` / `message.timestamp.after.max.ms` of the broker's
    /// time; Kafka's `INVALID_TIMESTAMP`).
    #[error("timestamp {timestamp} rejected by {topic}-{partition}: {reason}")]
    InvalidTimestamp {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The record's timestamp.
        timestamp: i64,
        /// Which bound it broke.
        reason: String,
    },

    /// A producer's batch does not follow its last one: its first sequence is not the last
    /// acknowledged sequence plus one (wrapping after `i32::MAX` to 0), or a new epoch does
    /// not start at 0. Kafka's `OUT_OF_ORDER_SEQUENCE_NUMBER`; nothing was written.
    #[error(
        "out of order sequence from producer {producer_id} to {topic}-{partition}: expected \
         {expected}, received {received}"
    )]
    OutOfOrderSequence {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The producer id.
        producer_id: i64,
        /// The first sequence the log expected (the last one plus one, or 0 for a new epoch).
        expected: i32,
        /// The batch's first sequence.
        received: i32,
    },

    /// A producer's batch (or a transaction marker for it) carries an epoch older than the
    /// one the partition last saw from that producer: a newer instance has taken over.
    /// Kafka's `INVALID_PRODUCER_EPOCH`; nothing was written.
    #[error(
        "producer {producer_id} sent epoch {received} to {topic}-{partition}, older than its \
         current epoch {expected}"
    )]
    InvalidProducerEpoch {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The producer id.
        producer_id: i64,
        /// The epoch the partition last saw.
        expected: i16,
        /// The epoch the batch carried.
        received: i16,
    },

    /// An earlier fsync of this partition's data or directory failed (or a failed write left a
    /// partial batch that could not be cut off, or a cleaner swap stopped halfway); the log
    /// refuses further appends until the broker is reopened, because the page cache (or the
    /// segment list) can no longer be trusted. A write or open that fails cleanly (a full disk,
    /// no file descriptors) is an [`Error::Io`] instead, and the log takes appends again once
    /// space or descriptors return.
    #[error(
        "partition {topic}-{partition} failed earlier ({cause}); reopen the broker to recover"
    )]
    LogFailed {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The first failure, as text.
        cause: String,
    },

    /// The broker (or the producer/consumer) was closed.
    #[error("{what} is closed")]
    Closed {
        /// What was closed ("broker", "producer", "consumer").
        what: &'static str,
    },

    /// A blocking operation did not complete in time.
    #[error("timed out after {timeout:?} while {operation}")]
    Timeout {
        /// What we were waiting for.
        operation: String,
        /// How long we waited.
        timeout: Duration,
    },

    /// A call that is valid in general is not valid in the current state
    /// (Kafka's `IllegalStateException`), e.g. mixing `assign` and `subscribe`.
    #[error("illegal state: {reason}")]
    IllegalState {
        /// What is wrong.
        reason: String,
    },

    /// An argument is out of its domain (negative offset, empty list, ...).
    #[error("invalid argument {name}: {reason}")]
    InvalidArgument {
        /// The argument's name.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// A feature that is accepted in config but not implemented yet.
    #[error("not supported yet: {feature}")]
    Unsupported {
        /// What is not supported.
        feature: String,
    },

    /// A consumer has no committed offset for these partitions and `auto.offset.reset=none`.
    #[error("no committed offset and auto.offset.reset=none for {partitions:?}")]
    NoOffsetForPartition {
        /// The partitions, as `topic-partition` strings.
        partitions: Vec<String>,
    },

    /// A commit from a group member whose generation is no longer current.
    #[error(
        "commit failed for group {group:?}: member {member_id:?} of generation {generation} is stale (current generation {current_generation}); the partitions were reassigned"
    )]
    CommitFailed {
        /// The group.
        group: String,
        /// The member that tried to commit.
        member_id: String,
        /// The generation it had.
        generation: i32,
        /// The group's current generation.
        current_generation: i32,
    },

    /// A commit from a group member whose generation the group has moved past in a rebalance
    /// the member has not completed yet, for partitions no other member owns: retryable.
    /// `poll` (which completes the rebalance) and commit again what is still assigned.
    /// Kafka's `RebalanceInProgressException`.
    #[error(
        "commit not possible now in group {group:?}: member {member_id:?} of generation {generation} has not completed the group's rebalance to generation {current_generation}; poll and retry"
    )]
    RebalanceInProgress {
        /// The group.
        group: String,
        /// The member that tried to commit.
        member_id: String,
        /// The generation it had.
        generation: i32,
        /// The group's current generation.
        current_generation: i32,
    },

    /// Another consumer joined the group with this consumer's `group.instance.id` and
    /// replaced it: this consumer is no longer a member, and every later group call fails
    /// with this error (fatal for the consumer; close it). Kafka's `FencedInstanceIdException`.
    #[error(
        "consumer of group {group:?} with group.instance.id {instance_id:?} was fenced: another consumer joined with the same group.instance.id"
    )]
    FencedInstanceId {
        /// The group.
        group: String,
        /// The shared `group.instance.id`.
        instance_id: String,
    },

    /// A blocking consumer call was interrupted by `wakeup()`.
    #[error("consumer woken up")]
    Wakeup,

    /// The consumer group does not exist.
    #[error("unknown consumer group {group:?}")]
    UnknownGroup {
        /// The group.
        group: String,
    },

    /// A group operation that needs an empty group found active members.
    #[error("consumer group {group:?} has {members} active member(s)")]
    GroupNotEmpty {
        /// The group.
        group: String,
        /// How many members it has.
        members: usize,
    },

    /// A user callback (partitioner, rebalance listener) failed.
    #[error("user callback {callback} failed: {reason}")]
    Callback {
        /// Which callback.
        callback: &'static str,
        /// Its error, as text.
        reason: String,
    },

    /// A [`TypedProducer`](crate::TypedProducer)'s serializer failed on a record's key or
    /// value (Kafka's `SerializationException`); the record was not sent.
    #[error("could not serialize the {part} of a record for topic {topic:?}: {reason}")]
    Serialization {
        /// The record's topic.
        topic: String,
        /// The key or the value.
        part: crate::RecordPart,
        /// The serializer's error, as text.
        reason: String,
    },

    /// A [`TypedConsumer`](crate::TypedConsumer)'s deserializer failed on a record's key or
    /// value (Kafka's `RecordDeserializationException`). The partition's position stays at
    /// the record: seek past it to skip it.
    #[error(
        "could not deserialize the {part} of the record at offset {offset} of {topic}-{partition}: \
         {reason} (the position stays at this record; seek to {} to skip it)",
        offset.saturating_add(1)
    )]
    Deserialization {
        /// The record's topic.
        topic: String,
        /// The record's partition.
        partition: i32,
        /// The record's offset.
        offset: i64,
        /// The key or the value.
        part: crate::RecordPart,
        /// The deserializer's error, as text.
        reason: String,
    },

    /// A streams topology is not valid (Kafka's `TopologyException`): a topic read by two
    /// sources, a name used twice, a store not added, handles of two builders mixed, or a
    /// processor given records of types it does not process.
    #[error("invalid topology: {reason}")]
    InvalidTopology {
        /// What is wrong, naming the processor, topic or store.
        reason: String,
    },

    /// A streams state store cannot be used as asked: it does not exist, is not connected to
    /// the processor, or holds other types.
    #[error("state store {store:?}: {reason}")]
    StateStore {
        /// The store's name.
        store: String,
        /// Why it cannot be used.
        reason: String,
    },

    /// The inputs of a streams join do not have the same number of partitions, so records
    /// of one key would reach different tasks and never meet (Kafka's "Topics not
    /// co-partitioned"); found before the application starts.
    #[error(
        "topics not co-partitioned: {}: a join needs its input topics to have the same \
         number of partitions",
        topics.iter().map(|(t, n)| format!("{t} ({n} partitions)")).collect::<Vec<_>>().join(", ")
    )]
    NotCopartitioned {
        /// Each topic of the join's co-partition group with its partition count.
        topics: Vec<(String, i32)>,
    },

    /// A newer producer with the same `transactional.id` (or the coordinator, aborting a
    /// transaction past its `transaction.timeout.ms`) bumped the producer's epoch: this
    /// producer can no longer write or end transactions. Fatal for the producer: close it.
    /// Kafka's `ProducerFencedException`.
    #[error(
        "producer with transactional.id {transactional_id:?} (producer id {producer_id}, epoch {epoch}) was fenced by a newer epoch {current_epoch}: another producer initialized the same transactional.id, or the transaction timed out; close this producer"
    )]
    ProducerFenced {
        /// The transactional id.
        transactional_id: String,
        /// The fenced producer's id.
        producer_id: i64,
        /// The fenced producer's epoch.
        epoch: i16,
        /// The epoch the coordinator holds now.
        current_epoch: i16,
    },

    /// A transactional call that the transaction's state does not allow (a commit with no
    /// transaction begun, a send before `init_transactions`, ...). Kafka's
    /// `InvalidTxnStateException` and the client's `IllegalStateException`.
    #[error("transactional.id {transactional_id:?}: cannot {operation} in state {state}")]
    InvalidTxnState {
        /// The transactional id.
        transactional_id: String,
        /// The state the transaction (or the producer's transaction manager) is in.
        state: String,
        /// What was attempted.
        operation: &'static str,
    },

    /// The transaction failed (one of its sends failed, or it was aborted by the
    /// coordinator): the records of its sends are not committed. `abort_transaction` and
    /// begin again. Kafka's `TransactionAbortedException` / abortable error.
    #[error("transaction of transactional.id {transactional_id:?} must be aborted: {reason}")]
    TransactionAborted {
        /// The transactional id.
        transactional_id: String,
        /// What failed.
        reason: String,
    },

    /// `transaction.timeout.ms` above the broker's `transaction.max.timeout.ms` (or not
    /// positive). Kafka's `InvalidTxnTimeoutException`.
    #[error(
        "transaction.timeout.ms={timeout_ms} for transactional.id {transactional_id:?} must be 1..={max_ms} (the broker's transaction.max.timeout.ms)"
    )]
    InvalidTransactionTimeout {
        /// The transactional id.
        transactional_id: String,
        /// The timeout asked for.
        timeout_ms: i64,
        /// The broker's `transaction.max.timeout.ms`.
        max_ms: i64,
    },
}

impl Error {
    /// Builds an [`Error::Io`]. `action` is a verb phrase: "writing", "opening", ...
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Builds an [`Error::InvalidConfig`].
    pub(crate) fn config(
        key: impl Into<String>,
        value: impl fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        Error::InvalidConfig {
            key: key.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// Builds an [`Error::InvalidArgument`].
    pub(crate) fn argument(name: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            name,
            reason: reason.into(),
        }
    }

    /// True when the error reports damaged bytes in a file.
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corrupt { .. })
    }
}

impl Clone for Error {
    /// Errors are cloned to hand one failure to several waiters (every record of a failed batch).
    /// An I/O cause is cloned as its kind and message.
    fn clone(&self) -> Self {
        match self {
            Error::Io {
                action,
                path,
                source,
            } => Error::Io {
                action,
                path: path.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            Error::Network {
                action,
                address,
                source,
            } => Error::Network {
                action,
                address: address.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            Error::DirectoryLocked { path } => Error::DirectoryLocked { path: path.clone() },
            Error::Corrupt {
                path,
                position,
                reason,
            } => Error::Corrupt {
                path: path.clone(),
                position: *position,
                reason: reason.clone(),
            },
            Error::FormatChanged {
                path,
                position,
                found,
            } => Error::FormatChanged {
                path: path.clone(),
                position: *position,
                found: found.clone(),
            },
            Error::InvalidTopicName { name, reason } => Error::InvalidTopicName {
                name: name.clone(),
                reason,
            },
            Error::TopicExists { topic } => Error::TopicExists {
                topic: topic.clone(),
            },
            Error::UnknownTopic { topic } => Error::UnknownTopic {
                topic: topic.clone(),
            },
            Error::UnknownPartition {
                topic,
                partition,
                partitions,
            } => Error::UnknownPartition {
                topic: topic.clone(),
                partition: *partition,
                partitions: *partitions,
            },
            Error::InvalidPartitionCount {
                topic,
                current,
                requested,
            } => Error::InvalidPartitionCount {
                topic: topic.clone(),
                current: *current,
                requested: *requested,
            },
            Error::ConfigFile { path, line, reason } => Error::ConfigFile {
                path: path.clone(),
                line: *line,
                reason: reason.clone(),
            },
            Error::InvalidConfig { key, value, reason } => Error::InvalidConfig {
                key: key.clone(),
                value: value.clone(),
                reason: reason.clone(),
            },
            Error::OffsetOutOfRange {
                topic,
                partition,
                offset,
                log_start,
                log_end,
            } => Error::OffsetOutOfRange {
                topic: topic.clone(),
                partition: *partition,
                offset: *offset,
                log_start: *log_start,
                log_end: *log_end,
            },
            Error::RecordTooLarge {
                topic,
                partition,
                size,
                limit,
                limit_name,
            } => Error::RecordTooLarge {
                topic: topic.clone(),
                partition: *partition,
                size: *size,
                limit: *limit,
                limit_name,
            },
            Error::CorruptRecord {
                topic,
                partition,
                position,
                reason,
            } => Error::CorruptRecord {
                topic: topic.clone(),
                partition: *partition,
                position: *position,
                reason: reason.clone(),
            },
            Error::InvalidTimestamp {
                topic,
                partition,
                timestamp,
                reason,
            } => Error::InvalidTimestamp {
                topic: topic.clone(),
                partition: *partition,
                timestamp: *timestamp,
                reason: reason.clone(),
            },
            Error::InvalidRecord {
                topic,
                partition,
                reason,
            } => Error::InvalidRecord {
                topic: topic.clone(),
                partition: *partition,
                reason: reason.clone(),
            },
            Error::OutOfOrderSequence {
                topic,
                partition,
                producer_id,
                expected,
                received,
            } => Error::OutOfOrderSequence {
                topic: topic.clone(),
                partition: *partition,
                producer_id: *producer_id,
                expected: *expected,
                received: *received,
            },
            Error::InvalidProducerEpoch {
                topic,
                partition,
                producer_id,
                expected,
                received,
            } => Error::InvalidProducerEpoch {
                topic: topic.clone(),
                partition: *partition,
                producer_id: *producer_id,
                expected: *expected,
                received: *received,
            },
            Error::LogFailed {
                topic,
                partition,
                cause,
            } => Error::LogFailed {
                topic: topic.clone(),
                partition: *partition,
                cause: cause.clone(),
            },
            Error::Closed { what } => Error::Closed { what },
            Error::Timeout { operation, timeout } => Error::Timeout {
                operation: operation.clone(),
                timeout: *timeout,
            },
            Error::IllegalState { reason } => Error::IllegalState {
                reason: reason.clone(),
            },
            Error::InvalidArgument { name, reason } => Error::InvalidArgument {
                name,
                reason: reason.clone(),
            },
            Error::Unsupported { feature } => Error::Unsupported {
                feature: feature.clone(),
            },
            Error::NoOffsetForPartition { partitions } => Error::NoOffsetForPartition {
                partitions: partitions.clone(),
            },
            Error::CommitFailed {
                group,
                member_id,
                generation,
                current_generation,
            } => Error::CommitFailed {
                group: group.clone(),
                member_id: member_id.clone(),
                generation: *generation,
                current_generation: *current_generation,
            },
            Error::RebalanceInProgress {
                group,
                member_id,
                generation,
                current_generation,
            } => Error::RebalanceInProgress {
                group: group.clone(),
                member_id: member_id.clone(),
                generation: *generation,
                current_generation: *current_generation,
            },
            Error::FencedInstanceId { group, instance_id } => Error::FencedInstanceId {
                group: group.clone(),
                instance_id: instance_id.clone(),
            },
            Error::Wakeup => Error::Wakeup,
            Error::UnknownGroup { group } => Error::UnknownGroup {
                group: group.clone(),
            },
            Error::GroupNotEmpty { group, members } => Error::GroupNotEmpty {
                group: group.clone(),
                members: *members,
            },
            Error::Callback { callback, reason } => Error::Callback {
                callback,
                reason: reason.clone(),
            },
            Error::Serialization {
                topic,
                part,
                reason,
            } => Error::Serialization {
                topic: topic.clone(),
                part: *part,
                reason: reason.clone(),
            },
            Error::Deserialization {
                topic,
                partition,
                offset,
                part,
                reason,
            } => Error::Deserialization {
                topic: topic.clone(),
                partition: *partition,
                offset: *offset,
                part: *part,
                reason: reason.clone(),
            },
            Error::InvalidTopology { reason } => Error::InvalidTopology {
                reason: reason.clone(),
            },
            Error::StateStore { store, reason } => Error::StateStore {
                store: store.clone(),
                reason: reason.clone(),
            },
            Error::NotCopartitioned { topics } => Error::NotCopartitioned {
                topics: topics.clone(),
            },
            Error::ProducerFenced {
                transactional_id,
                producer_id,
                epoch,
                current_epoch,
            } => Error::ProducerFenced {
                transactional_id: transactional_id.clone(),
                producer_id: *producer_id,
                epoch: *epoch,
                current_epoch: *current_epoch,
            },
            Error::InvalidTxnState {
                transactional_id,
                state,
                operation,
            } => Error::InvalidTxnState {
                transactional_id: transactional_id.clone(),
                state: state.clone(),
                operation,
            },
            Error::TransactionAborted {
                transactional_id,
                reason,
            } => Error::TransactionAborted {
                transactional_id: transactional_id.clone(),
                reason: reason.clone(),
            },
            Error::InvalidTransactionTimeout {
                transactional_id,
                timeout_ms,
                max_ms,
            } => Error::InvalidTransactionTimeout {
                transactional_id: transactional_id.clone(),
                timeout_ms: *timeout_ms,
                max_ms: *max_ms,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_send_sync_static() {
        fn assert_bounds<T: Send + Sync + 'static>() {}
        assert_bounds::<Error>();
    }

    #[test]
    fn messages_name_the_place() {
        let e = Error::Corrupt {
            path: PathBuf::from("/d/orders-0/00000000000000000000.log"),
            position: 4096,
            reason: "batch CRC mismatch".into(),
        };
        let text = e.to_string();
        assert!(text.contains("orders-0/00000000000000000000.log"), "{text}");
        assert!(text.contains("4096"), "{text}");
        let e = Error::config("retention.ms", "abc", "not an integer");
        assert_eq!(
            e.to_string(),
            "invalid config retention.ms=\"abc\": not an integer"
        );
    }

    #[test]
    fn a_deserialization_error_names_the_record() {
        let e = Error::Deserialization {
            topic: "counts".into(),
            partition: 2,
            offset: 41,
            part: crate::RecordPart::Value,
            reason: "3 bytes".into(),
        };
        let text = e.clone().to_string();
        assert!(
            text.starts_with(
                "could not deserialize the value of the record at offset 41 of counts-2: 3 bytes"
            ),
            "{text}"
        );
        assert!(text.contains("seek to 42"), "{text}");
    }

    #[test]
    fn streams_errors_name_the_store_or_topology_problem() {
        let e = Error::StateStore {
            store: "counts".into(),
            reason: "no such store in the topology".into(),
        };
        assert_eq!(
            e.clone().to_string(),
            "state store \"counts\": no such store in the topology"
        );
        let e = Error::InvalidTopology {
            reason: "topic \"t\" has already been registered by another source".into(),
        };
        assert!(e
            .clone()
            .to_string()
            .starts_with("invalid topology: topic \"t\""));
        let e = Error::NotCopartitioned {
            topics: vec![("orders".into(), 3), ("customers".into(), 4)],
        };
        assert!(e.clone().to_string().starts_with(
            "topics not co-partitioned: orders (3 partitions), customers (4 partitions)"
        ));
    }

    #[test]
    fn io_error_keeps_its_source() {
        use std::error::Error as _;
        let e = Error::io(
            "opening",
            "/x",
            io::Error::new(io::ErrorKind::NotFound, "gone"),
        );
        assert!(e.source().is_some());
        assert!(e.clone().to_string().contains("gone"));
    }
}
