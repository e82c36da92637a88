//! Handles to a topic and a partition, and what `describe_topic` reports.

use std::sync::Arc;
use std::time::Duration;

use super::broker::{Broker, PartitionSlot, TopicState};
use crate::config::TopicConfig;
use crate::error::{Error, Result};
use crate::log::{PartitionLog, Records};
use crate::metrics::{self, Metrics};
use crate::types::{Record, TopicPartition};

/// A handle to a topic.
#[derive(Clone)]
pub struct Topic {
    broker: Broker,
    state: Arc<TopicState>,
}

impl std::fmt::Debug for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Topic({})", self.state.name)
    }
}

impl Topic {
    pub(crate) fn new(broker: Broker, state: Arc<TopicState>) -> Topic {
        Topic { broker, state }
    }

    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// How many partitions it has now.
    pub fn partition_count(&self) -> i32 {
        self.state.partitions.read().len() as i32
    }

    /// Its current config.
    pub fn config(&self) -> TopicConfig {
        (*self.state.config.read().clone()).clone()
    }

    /// A handle to partition `partition`.
    pub fn partition(&self, partition: i32) -> Result<Partition> {
        let log = self
            .broker
            .inner
            .partition_log(&self.state.name, partition)?;
        Ok(Partition {
            _broker: self.broker.clone(),
            log,
        })
    }
}

/// The earliest offset at or after a timestamp, and that record's timestamp (Kafka's
/// `OffsetAndTimestamp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetAndTimestamp {
    /// The offset.
    pub offset: i64,
    /// The record's timestamp.
    pub timestamp: i64,
}

/// A handle to one partition's log: append, read, offsets, flush, and waiting for data.
///
/// ```
/// use std::time::Duration;
/// use embroker::{Broker, Record, TopicConfig};
/// let broker = Broker::temporary()?;
/// broker.create_topic("events", TopicConfig::default())?;
/// let p = broker.topic("events")?.partition(0)?;
/// assert_eq!(p.append(&[Record::new("a").timestamp(1_000)])?, 0);
/// assert_eq!(p.append(&[Record::new("b").timestamp(2_000)])?, 1);
/// assert_eq!(p.log_end_offset(), 2);
/// assert_eq!(p.offset_for_timestamp(1_500)?.map(|o| o.offset), Some(1));
/// assert!(p.wait_for_end_offset_past(1, Duration::from_millis(1)));
/// # Ok::<(), embroker::Error>(())
/// ```
#[derive(Clone)]
pub struct Partition {
    // Keeps the broker (and a temporary directory) alive while the handle is.
    _broker: Broker,
    log: Arc<PartitionLog>,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Partition({}-{})",
            self.log.topic(),
            self.log.partition()
        )
    }
}

/// What [`Partition::append_batches`] wrote: the fields of Kafka's produce response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchesAppended {
    /// Offset of the first record of the first batch.
    pub base_offset: i64,
    /// Offset of the last record of the last batch.
    pub last_offset: i64,
    /// The broker's timestamp on the batches when the topic is LogAppendTime.
    pub log_append_time: Option<i64>,
    /// The partition's log start offset after the append.
    pub log_start_offset: i64,
    /// The call repeated a batch its producer already wrote (one of its last five): nothing
    /// was written, and the offsets are the original's, as Kafka acknowledges a retry.
    pub duplicate: bool,
}

impl Partition {
    /// The topic's name.
    pub fn topic(&self) -> &str {
        self.log.topic()
    }

    /// The partition number.
    pub fn partition(&self) -> i32 {
        self.log.partition()
    }

    /// The topic and partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.log.topic(), self.log.partition())
    }

    /// Appends `records` as one batch and returns the offset of the first. Records without a
    /// timestamp get the broker clock's time. When this returns, the batch is in the log (the
    /// OS page cache: it survives a crash of the process); [`Partition::flush`] makes it
    /// survive power loss.
    pub fn append(&self, records: &[Record]) -> Result<i64> {
        self.log
            .append_records(records)
            .map(|info| info.base_offset)
    }

    /// Appends whole Kafka record batches (v2, back to back), as a Kafka producer encodes a
    /// partition's records in a produce request. Each batch is checked as Kafka's broker
    /// checks a client's: whole and CRC-32C-valid, magic 2, not a control batch, record count
    /// and offset deltas consistent (0, 1, 2, ...), a key on every record of a compacted
    /// topic, timestamps within `message.timestamp.before.max.ms` / `.after.max.ms`, and at
    /// most `max.message.bytes` (compressed size, as Kafka counts it). A bad batch refuses the
    /// whole call and nothing of it is written: [`Error::CorruptRecord`] for a CRC or framing
    /// fault, [`Error::InvalidRecord`], [`Error::InvalidTimestamp`] or
    /// [`Error::RecordTooLarge`] for the rest, each naming the batch and its byte position.
    ///
    /// A batch with a producer id (`BatchBuilder::set_producer`, an idempotent producer's) is
    /// checked against that producer's state in the partition, as Kafka's broker checks it:
    /// a repeat of one of its last five batches (same epoch, first and last sequence) writes
    /// nothing and is acknowledged with the original offsets (`duplicate`); a first sequence
    /// that does not follow its last one is [`Error::OutOfOrderSequence`]; an epoch older than
    /// its current one is [`Error::InvalidProducerEpoch`]. The state survives a reopen.
    ///
    /// The log gives the batches consecutive offsets by rewriting each base offset (and, for
    /// a LogAppendTime topic, the timestamp type and max timestamp); the records are not
    /// re-encoded. A CreateTime batch whose `max_timestamp` is not its records' largest gets
    /// the right one, as Kafka fixes it.
    ///
    /// ```
    /// use embroker::codec::BatchBuilder;
    /// use embroker::{Broker, TopicConfig};
    ///
    /// let broker = Broker::temporary()?;
    /// broker.create_topic("events", TopicConfig::default())?;
    /// let p = broker.topic("events")?.partition(0)?;
    /// let mut bytes = Vec::new();
    /// for i in 0..2 {
    ///     let mut b = BatchBuilder::new();
    ///     b.push(1_700_000_000_000, Some(b"k"), Some(format!("v{i}").as_bytes()), &[]).unwrap();
    ///     b.push(1_700_000_000_001, None, Some(b"w"), &[]).unwrap();
    ///     bytes.extend_from_slice(&b.finish());
    /// }
    /// let appended = p.append_batches(&bytes)?;
    /// assert_eq!((appended.base_offset, appended.last_offset), (0, 3));
    ///
    /// bytes[30] ^= 1; // damage the first batch: the call writes nothing
    /// assert!(p.append_batches(&bytes).is_err());
    /// assert_eq!(p.log_end_offset(), 4);
    /// # Ok::<(), embroker::Error>(())
    /// ```
    pub fn append_batches(&self, batches: &[u8]) -> Result<BatchesAppended> {
        let info = self.log.append_client_batches(batches)?;
        Ok(BatchesAppended {
            base_offset: info.base_offset,
            last_offset: info.last_offset,
            log_append_time: info.log_append_time,
            log_start_offset: self.log.log_start_offset(),
            duplicate: info.duplicate,
        })
    }

    /// Reads whole record batches starting at `from_offset`, up to about `max_bytes` (at least
    /// one batch, so a large record is never stuck). Reading at the log end returns nothing;
    /// outside `[log_start_offset, log_end_offset]` is [`Error::OffsetOutOfRange`].
    pub fn read(&self, from_offset: i64, max_bytes: usize) -> Result<Records> {
        self.log.read(from_offset, max_bytes)
    }

    /// The first offset still in the log.
    pub fn log_start_offset(&self) -> i64 {
        self.log.log_start_offset()
    }

    /// Deletes every record before `before_offset` (Kafka's `DeleteRecords`, the admin
    /// client's `deleteRecords`): the log start offset moves up to it, durably (it survives a
    /// restart), and segments wholly below it are removed from disk. `-1` means the log end
    /// (Kafka's high watermark on one broker). Returns the new log start offset. An offset
    /// at or below the current start changes nothing; one past the log end is
    /// [`Error::OffsetOutOfRange`].
    ///
    /// ```
    /// use embroker::{Broker, Record, TopicConfig};
    /// let broker = Broker::temporary()?;
    /// broker.create_topic("t", TopicConfig::default())?;
    /// let p = broker.topic("t")?.partition(0)?;
    /// p.append(&[Record::new("a"), Record::new("b"), Record::new("c")])?;
    /// assert_eq!(p.delete_records(2)?, 2);
    /// assert_eq!(p.log_start_offset(), 2);
    /// assert!(p.read(1, 1 << 20).is_err()); // below the start: out of range
    /// assert_eq!(p.delete_records(-1)?, 3); // everything
    /// # Ok::<(), embroker::Error>(())
    /// ```
    pub fn delete_records(&self, before_offset: i64) -> Result<i64> {
        self.log.delete_records(before_offset)
    }

    /// The offset the next record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }

    /// The last stable offset (LSO): the first offset of the earliest transaction still open
    /// here, or the log end when none is. A `read_committed` consumer reads below it.
    pub fn last_stable_offset(&self) -> i64 {
        self.log.last_stable_offset()
    }

    /// A snapshot of the partition's `kafka.log` gauges (Kafka's `kafka.log:type=Log`):
    /// `log-start-offset`, `log-end-offset`, `size` and `num-log-segments`, tagged with
    /// `topic` and `partition` (see the [`metrics` module docs](crate::metrics)).
    ///
    /// ```
    /// use embroker::{Broker, Record, TopicConfig};
    ///
    /// let broker = Broker::temporary()?;
    /// broker.create_topic("t", TopicConfig::default())?;
    /// let p = broker.topic("t")?.partition(0)?;
    /// p.append(&[Record::new("a"), Record::new("b")])?;
    /// let metrics = p.metrics();
    /// assert_eq!(metrics.get("log-end-offset"), Some(2.0));
    /// assert_eq!(metrics.get("num-log-segments"), Some(1.0));
    /// # Ok::<(), embroker::Error>(())
    /// ```
    pub fn metrics(&self) -> Metrics {
        let s = self.log.stats();
        let mut out = Metrics::default();
        let figures = (
            s.log_start_offset,
            s.log_end_offset,
            s.size_bytes,
            s.segment_count,
        );
        metrics::push_log(&mut out, self.log.topic(), self.log.partition(), figures);
        out
    }

    /// The earliest record whose timestamp is at least `timestamp_ms`; `None` if every record
    /// is older. A negative timestamp is an error.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<OffsetAndTimestamp>> {
        if timestamp_ms < 0 {
            return Err(Error::argument(
                "timestamp_ms",
                format!("{timestamp_ms} is negative"),
            ));
        }
        Ok(self
            .log
            .offset_for_timestamp(timestamp_ms)?
            .map(|(offset, timestamp)| OffsetAndTimestamp { offset, timestamp }))
    }

    /// Fsyncs the log and its indexes and records the recovery point.
    pub fn flush(&self) -> Result<()> {
        self.log.checkpoint()
    }

    /// Waits until the log end offset is greater than `offset` (a record at `offset` exists)
    /// or `timeout` passes. Woken by the append, not by polling. Returns whether it happened.
    /// A timeout too long to add to the current instant (`Duration::MAX`) waits until the
    /// append or until the broker closes.
    pub fn wait_for_end_offset_past(&self, offset: i64, timeout: Duration) -> bool {
        self.log.wait_for_end_past(offset, timeout)
    }

    /// Fsyncs issued for this partition so far (appends under a flush policy, `flush`,
    /// group-committed syncs, rolls). For tests and metrics. Always 0 on a temporary broker,
    /// which never fsyncs.
    pub fn fsync_count(&self) -> u64 {
        self.log.fsync_count()
    }
}

/// What [`Broker::describe_topic`] reports.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TopicDescription {
    /// The topic.
    pub name: String,
    /// Its config.
    pub config: TopicConfig,
    /// One entry per partition, in order.
    pub partitions: Vec<PartitionDescription>,
}

/// Offsets and sizes of one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionDescription {
    /// The partition number.
    pub partition: i32,
    /// The first offset still in the log.
    pub log_start_offset: i64,
    /// The offset the next record will get.
    pub log_end_offset: i64,
    /// Bytes of log on disk.
    pub size_bytes: u64,
    /// Number of segments.
    pub segment_count: usize,
    /// Why the partition is offline, if it is (it failed to open).
    pub error: Option<String>,
    /// Bytes of closed segments the log cleaner has cleaned (compacted topics; 0 otherwise).
    pub clean_bytes: u64,
    /// Bytes of closed segments written since the cleaner last got to them (on a topic that
    /// is not compacted, every closed segment).
    pub dirty_bytes: u64,
    /// When the log cleaner last finished a pass over this partition (ms since the epoch, by
    /// the broker's clock), if it ever has.
    pub last_clean_ms: Option<i64>,
    /// Why the log cleaner's last pass over this partition failed. A pass that failed before
    /// replacing any segment (out of space, out of file descriptors) is retried; after any
    /// other failure the cleaner skips the partition until the broker is reopened.
    pub cleaner_error: Option<String>,
    /// The last stable offset: the first offset of the earliest open transaction, or the log
    /// end when none is open (-1 when offline).
    pub last_stable_offset: i64,
    /// The transactions open in this partition (data written, no marker yet), oldest first.
    pub open_transactions: Vec<OpenTransaction>,
}

/// A transaction with data in a partition and no COMMIT or ABORT marker after it yet (Kafka's
/// `kafka-transactions.sh describe-producers` shows the same pair).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenTransaction {
    /// The producer that wrote it.
    pub producer_id: i64,
    /// The offset of its first batch in the partition.
    pub first_offset: i64,
}

impl PartitionDescription {
    /// Kafka's dirty ratio: dirty bytes over all bytes of the closed segments (0 when there
    /// are none). The cleaner compacts a partition once this passes
    /// `min.cleanable.dirty.ratio`.
    pub fn dirty_ratio(&self) -> f64 {
        let total = self.clean_bytes + self.dirty_bytes;
        if total == 0 {
            0.0
        } else {
            self.dirty_bytes as f64 / total as f64
        }
    }
}

impl TopicDescription {
    /// The `kafka.log` gauges of the topic's partitions, as described (see
    /// [`Partition::metrics`]); an offline partition has none.
    pub fn metrics(&self) -> Metrics {
        let mut out = Metrics::default();
        for p in self.partitions.iter().filter(|p| p.error.is_none()) {
            let figures = (
                p.log_start_offset,
                p.log_end_offset,
                p.size_bytes,
                p.segment_count,
            );
            metrics::push_log(&mut out, &self.name, p.partition, figures);
        }
        out
    }
}

impl PartitionDescription {
    pub(crate) fn of(partition: i32, slot: &PartitionSlot) -> PartitionDescription {
        match slot {
            PartitionSlot::Online(log) => {
                let s = log.stats();
                let c = log.cleaner_view();
                PartitionDescription {
                    partition,
                    log_start_offset: s.log_start_offset,
                    log_end_offset: s.log_end_offset,
                    size_bytes: s.size_bytes,
                    segment_count: s.segment_count,
                    error: None,
                    clean_bytes: c.clean_bytes,
                    dirty_bytes: c.dirty_bytes,
                    last_clean_ms: c.last_clean_ms,
                    cleaner_error: c.error,
                    last_stable_offset: log.last_stable_offset(),
                    open_transactions: log
                        .ongoing_transactions()
                        .into_iter()
                        .map(|(producer_id, first_offset)| OpenTransaction {
                            producer_id,
                            first_offset,
                        })
                        .collect(),
                }
            }
            PartitionSlot::Offline(e) => PartitionDescription {
                partition,
                log_start_offset: -1,
                log_end_offset: -1,
                size_bytes: 0,
                segment_count: 0,
                error: Some(e.to_string()),
                clean_bytes: 0,
                dirty_bytes: 0,
                last_clean_ms: None,
                cleaner_error: None,
                last_stable_offset: -1,
                open_transactions: Vec::new(),
            },
        }
    }
}
