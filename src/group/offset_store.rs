//! Committed offsets on disk: the records of the internal compacted topic `__consumer_offsets`.
//!
//! Owns: the byte format of offset-commit records, and the only path by which committed
//! offsets reach disk (an ordinary append to the `__consumer_offsets` partition log) and come
//! back (a scan of that log when the broker opens). The group coordinator keeps the offsets in
//! memory and calls this module to persist each commit; it knows nothing of files.
//!
//! # The topic
//!
//! `__consumer_offsets` is created on the first commit, with [`OFFSETS_PARTITIONS`] partition
//! (Kafka uses 50 because the partitions spread groups over brokers; one process has one
//! broker) and `cleanup.policy=compact`, so that only the latest commit per key survives once
//! the cleaner runs. A group's partition is Kafka's `Utils.abs(groupId.hashCode()) %
//! partitions` with Java's `String.hashCode`, so raising the count later moves no existing
//! record: at open every partition is read.
//!
//! # Record format (version 1)
//!
//! All integers are big-endian (network order, as in Kafka's own `__consumer_offsets`
//! schemas). Strings are a `u16` byte length followed by that many bytes of UTF-8.
//!
//! Key (identifies the committed position of one group in one partition):
//!
//! | bytes | field | type | meaning |
//! |---|---|---|---|
//! | 0..2 | `key_version` | i16 | 1 (Kafka's offset-commit keys are 0 and 1; 2 is group metadata) |
//! | 2..4 | `group_len` | u16 | length of the group id, 1..=32767 |
//! | 4..4+g | `group` | UTF-8 | the group id |
//! | .. +2 | `topic_len` | u16 | length of the topic name, 1..=249 |
//! | .. +t | `topic` | UTF-8 | the topic |
//! | .. +4 | `partition` | i32 | the partition, >= 0 |
//!
//! Value (absent: a tombstone, which deletes the committed offset):
//!
//! | bytes | field | type | meaning |
//! |---|---|---|---|
//! | 0..2 | `value_version` | i16 | 1 |
//! | 2..10 | `offset` | i64 | the committed offset: the next offset to read, >= 0 |
//! | 10..12 | `metadata_len` | u16 | length of the metadata, 0..=4096 |
//! | 12..12+m | `metadata` | UTF-8 | the commit's metadata string |
//! | .. +8 | `commit_timestamp` | i64 | when the commit was made, ms since the epoch (broker clock) |
//!
//! Nothing may follow the last field. A decoder meets every other length, version or UTF-8
//! problem with an [`Error::Corrupt`], never a panic ([`decode_offset_commit`] is a fuzz
//! target). When the broker opens, records that do not decode are skipped (they can only be
//! written by a newer version), later records win over earlier ones, and a tombstone removes
//! the key.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::broker::BrokerInner;
use crate::codec::{self, BatchBuilder, ControlRecordType, EndTransactionMarker, ProducerFields};
use crate::config::{CleanupPolicy, TopicConfig};
use crate::error::{Error, Result};
use crate::log::PartitionLog;
use crate::record_cursor::{java_hash, Cursor};
use crate::types::{Record, TopicPartition};

/// The internal topic holding committed offsets.
pub(crate) const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Segment size of [`OFFSETS_TOPIC`]. Only closed segments are compacted, so this bounds how
/// much an offsets log holds between cleanings: commits are small, and Kafka's 100 MiB
/// (`offsets.topic.segment.bytes`) would let one busy group keep 100 MiB of old commits.
const OFFSETS_SEGMENT_BYTES: u32 = 1 << 20;
/// Partitions of [`OFFSETS_TOPIC`] (Kafka's `offsets.topic.num.partitions` is 50).
pub(crate) const OFFSETS_PARTITIONS: i32 = 1;
/// Kafka's `offset.metadata.max.bytes` default.
pub(crate) const METADATA_BYTES_MAX: usize = 4096;
/// Longest group id a key can hold (Kafka strings have an i16 length).
pub(crate) const GROUP_BYTES_MAX: usize = i16::MAX as usize;
/// Longest topic name (Kafka's rule).
const TOPIC_BYTES_MAX: usize = 249;
const KEY_VERSION: i16 = 1;
const VALUE_VERSION: i16 = 1;
/// Bytes read per scan step when loading.
const LOAD_READ_BYTES: usize = 1 << 20;

/// A committed offset: the next offset to read, and a free-form metadata string. Kafka's
/// `OffsetAndMetadata`.
///
/// ```
/// use embroker::OffsetAndMetadata;
/// let o = OffsetAndMetadata::new(42).metadata("processed by worker 3");
/// assert_eq!(o.offset, 42);
/// assert_eq!(o.metadata, "processed by worker 3");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct OffsetAndMetadata {
    /// The next offset to read (last processed offset + 1).
    pub offset: i64,
    /// Metadata stored with the commit (at most 4096 bytes). Default: empty.
    pub metadata: String,
}

impl OffsetAndMetadata {
    /// A commit of `offset` with no metadata.
    pub fn new(offset: i64) -> Self {
        OffsetAndMetadata {
            offset,
            metadata: String::new(),
        }
    }

    /// Sets the metadata string.
    #[must_use]
    pub fn metadata(mut self, metadata: impl Into<String>) -> Self {
        self.metadata = metadata.into();
        self
    }
}

// The two record types and the three functions below are `pub` only so that `lib.rs` can
// re-export them in `__fuzz` for the `offsets_log` fuzz target; they are not part of the
// stable API.

/// The value of an offset-commit record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitValue {
    /// The committed offset (the next offset to read), >= 0.
    pub offset: i64,
    /// The commit's metadata string, at most 4096 bytes.
    pub metadata: String,
    /// When the commit was made, ms since the epoch (broker clock).
    pub commit_timestamp: i64,
}

/// One decoded `__consumer_offsets` record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetCommitRecord {
    /// The group id, 1..=32767 bytes.
    pub group: String,
    /// The committed partition (topic 1..=249 bytes, partition >= 0).
    pub topic_partition: TopicPartition,
    /// `None` for a tombstone.
    pub value: Option<CommitValue>,
}

/// Committed offsets of every group, as rebuilt from the log.
pub(crate) type OffsetTable = BTreeMap<String, BTreeMap<TopicPartition, OffsetAndMetadata>>;
/// Transactional offsets without a marker yet: by group, then producer id.
pub(crate) type PendingTable =
    BTreeMap<String, BTreeMap<i64, BTreeMap<TopicPartition, OffsetAndMetadata>>>;

/// Checks the parts of a commit that the format bounds.
pub(crate) fn check_commit(group: &str, tp: &TopicPartition, om: &OffsetAndMetadata) -> Result<()> {
    if group.is_empty() || group.len() > GROUP_BYTES_MAX {
        return Err(Error::argument(
            "group.id",
            format!("must be 1..={GROUP_BYTES_MAX} bytes"),
        ));
    }
    if tp.topic.is_empty() || tp.topic.len() > TOPIC_BYTES_MAX || tp.partition < 0 {
        return Err(Error::argument(
            "topic_partition",
            format!("{tp} is not valid"),
        ));
    }
    if om.offset < 0 {
        return Err(Error::argument(
            "offset",
            format!("{} for {tp} is negative", om.offset),
        ));
    }
    if om.metadata.len() > METADATA_BYTES_MAX {
        return Err(Error::argument(
            "metadata",
            format!(
                "{} bytes for {tp} exceeds offset.metadata.max.bytes={METADATA_BYTES_MAX}",
                om.metadata.len()
            ),
        ));
    }
    Ok(())
}

/// Encodes a key. The caller has checked lengths with `check_commit`; a string past its
/// bound is still written (cut to 65535 bytes if longer), and the decoder rejects the record.
pub fn encode_key(group: &str, tp: &TopicPartition) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + group.len() + tp.topic.len());
    out.extend_from_slice(&KEY_VERSION.to_be_bytes());
    put_str(&mut out, group);
    put_str(&mut out, &tp.topic);
    out.extend_from_slice(&tp.partition.to_be_bytes());
    out
}

/// Encodes a value. The caller has checked lengths with `check_commit`; a string past its
/// bound is still written (cut to 65535 bytes if longer), and the decoder rejects the record.
pub fn encode_value(om: &OffsetAndMetadata, commit_timestamp: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + om.metadata.len());
    out.extend_from_slice(&VALUE_VERSION.to_be_bytes());
    out.extend_from_slice(&om.offset.to_be_bytes());
    put_str(&mut out, &om.metadata);
    out.extend_from_slice(&commit_timestamp.to_be_bytes());
    out
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
}

/// Decodes one `__consumer_offsets` record (`value` `None` is a tombstone). Never panics.
///
/// A record it accepts re-encodes to the same bytes (there is one encoding of each record).
/// An error is [`Error::Corrupt`] whose `position` is the byte within the key or the value
/// (its `reason` says which), not within a file.
pub fn decode_offset_commit(key: &[u8], value: Option<&[u8]>) -> Result<OffsetCommitRecord> {
    let mut k = Cursor::new(key, OFFSETS_TOPIC, "offset-commit", "key");
    let version = k.i16()?;
    if version != KEY_VERSION {
        return Err(k.corrupt(format!("unknown key version {version}")));
    }
    let group = k.bounded_string(1, GROUP_BYTES_MAX)?;
    let topic = k.bounded_string(1, TOPIC_BYTES_MAX)?;
    let partition = k.i32()?;
    if partition < 0 {
        return Err(k.corrupt(format!("negative partition {partition}")));
    }
    k.finish()?;
    let value = match value {
        None => None,
        Some(value) => {
            let mut v = Cursor::new(value, OFFSETS_TOPIC, "offset-commit", "value");
            let version = v.i16()?;
            if version != VALUE_VERSION {
                return Err(v.corrupt(format!("unknown value version {version}")));
            }
            let offset = v.i64()?;
            if offset < 0 {
                return Err(v.corrupt(format!("negative offset {offset}")));
            }
            let metadata = v.bounded_string(0, METADATA_BYTES_MAX)?;
            let commit_timestamp = v.i64()?;
            v.finish()?;
            Some(CommitValue {
                offset,
                metadata,
                commit_timestamp,
            })
        }
    };
    Ok(OffsetCommitRecord {
        group,
        topic_partition: TopicPartition::new(topic, partition),
        value,
    })
}

/// Kafka's string (i16 length) of `min..=max` bytes, as offset-commit records hold them.
impl Cursor<'_> {
    fn bounded_string(&mut self, min: usize, max: usize) -> Result<String> {
        let len = usize::from(u16::from_be_bytes(self.array()?));
        if len < min || len > max {
            return Err(self.corrupt(format!("string length {len} outside {min}..={max}")));
        }
        self.utf8(len)
    }
}

/// The `__consumer_offsets` partition of a group: Kafka's `Utils.abs(hashCode) % partitions`
/// (where `abs(i32::MIN)` is 0).
pub(crate) fn partition_for(group: &str) -> i32 {
    partition_of(group, OFFSETS_PARTITIONS)
}

fn partition_of(group: &str, partitions: i32) -> i32 {
    let h = java_hash(group);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

/// The offsets log of `group`, creating the topic on first use.
pub(crate) fn offsets_log(broker: &BrokerInner, group: &str) -> Result<Arc<PartitionLog>> {
    let partition = partition_for(group);
    match broker.partition_log(OFFSETS_TOPIC, partition) {
        Err(Error::UnknownTopic { .. }) => {
            let config = TopicConfig::default()
                .partitions(OFFSETS_PARTITIONS)
                .cleanup_policy(CleanupPolicy::Compact)
                .segment_bytes(OFFSETS_SEGMENT_BYTES);
            match broker.create_topic(OFFSETS_TOPIC, config, true) {
                Ok(()) | Err(Error::TopicExists { .. }) => {}
                Err(e) => return Err(e),
            }
            broker.partition_log(OFFSETS_TOPIC, partition)
        }
        other => other,
    }
}

/// Where a commit was appended: the offsets log and the end offset just past its batch, for
/// [`PartitionLog::sync_to`] when the commit must be durable.
pub(crate) struct Appended {
    pub(crate) log: Arc<PartitionLog>,
    pub(crate) end_offset: i64,
}

impl Appended {
    /// Fsyncs the offsets log through this commit (shared with concurrent callers: group
    /// commit).
    pub(crate) fn sync(&self) -> Result<()> {
        self.log.sync_to(self.end_offset)
    }
}

/// Appends one commit (several partitions, one batch) to the group's offsets log, to the page
/// cache (it survives a crash of the process, not of the machine; see [`Appended::sync`]).
/// `None` values are tombstones. `None` when there was nothing to append.
pub(crate) fn append_commits(
    broker: &BrokerInner,
    group: &str,
    commits: &[(TopicPartition, Option<OffsetAndMetadata>)],
) -> Result<Option<Appended>> {
    if commits.is_empty() {
        return Ok(None);
    }
    let now = broker.clock().now_ms();
    let records: Vec<Record> = commits
        .iter()
        .map(|(tp, om)| {
            let key = encode_key(group, tp);
            match om {
                Some(om) => Record::new(encode_value(om, now)).key(key),
                None => Record::tombstone(key),
            }
        })
        .collect();
    let log = offsets_log(broker, group)?;
    let info = log.append_records(&records)?;
    Ok(Some(Appended {
        log,
        end_offset: info.last_offset.saturating_add(1),
    }))
}

/// Appends offsets of producer `producer_id`'s transaction to the group's offsets log as one
/// transactional batch (Kafka's `GroupMetadataManager.storeOffsets` for a `TxnOffsetCommit`),
/// durably: they become committed offsets only when the transaction's COMMIT marker follows.
/// The batch carries no sequence number (-1): like Kafka's coordinator writes, it is not a
/// client append and takes no part in the producer's sequences.
pub(crate) fn append_txn_commits(
    broker: &BrokerInner,
    group: &str,
    producer_id: i64,
    producer_epoch: i16,
    offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
) -> Result<()> {
    let now = broker.clock().now_ms().max(0);
    let mut builder = BatchBuilder::new();
    builder.set_producer(ProducerFields {
        producer_id,
        producer_epoch,
        base_sequence: -1,
    });
    builder.set_transactional(true);
    for (tp, om) in offsets {
        let key = encode_key(group, tp);
        let value = encode_value(om, now);
        builder
            .push(now, Some(&key), Some(&value), &[])
            .ok_or_else(|| Error::IllegalState {
                reason: format!(
                    "transactional offset commit of group {group:?} does not fit a batch"
                ),
            })?;
    }
    let log = offsets_log(broker, group)?;
    let mut batch = builder.finish();
    let info = log.append_batch(&mut batch)?;
    log.sync_to(info.last_offset.saturating_add(1))
}

/// Rebuilds every group's committed offsets from `__consumer_offsets` (empty if it does not
/// exist yet), and the transactional offsets still waiting for their marker. A transactional
/// batch's offsets are pending under its producer id; that producer's COMMIT marker makes them
/// committed, its ABORT marker discards them (Kafka's `GroupMetadataManager.loadGroupsAndOffsets`).
pub(crate) fn load(broker: &BrokerInner) -> Result<(OffsetTable, PendingTable)> {
    let mut table = OffsetTable::new();
    let mut pending: BTreeMap<i64, Vec<OffsetCommitRecord>> = BTreeMap::new();
    let count = match broker.partition_count(OFFSETS_TOPIC) {
        Ok(n) => n,
        Err(Error::UnknownTopic { .. }) => return Ok((table, PendingTable::new())),
        Err(e) => return Err(e),
    };
    for p in 0..count {
        let log = broker.partition_log(OFFSETS_TOPIC, p)?;
        let mut at = log.log_start_offset();
        let end = log.log_end_offset();
        while at < end {
            let records = log.read(at, LOAD_READ_BYTES)?;
            // An empty read may still move past a gap compaction left.
            if records.next_offset() <= at {
                break;
            }
            for batch in records.batches() {
                let header = batch.header;
                if header.is_control() {
                    let commit = batch
                        .records()
                        .next()
                        .and_then(|r| EndTransactionMarker::parse(r.key?, r.value).ok())
                        .map(|m| m.kind == ControlRecordType::Commit);
                    let done = pending.remove(&header.producer_id);
                    if let (Some(true), Some(recs)) = (commit, done) {
                        recs.into_iter().for_each(|rec| apply(&mut table, rec));
                    }
                    continue;
                }
                let Ok(recs) = codec::batch_records(&batch) else {
                    continue;
                };
                for r in recs.iter() {
                    let Some(key) = r.key else { continue };
                    // Undecodable records can only come from a newer version: skip them.
                    let Ok(rec) = decode_offset_commit(key, r.value) else {
                        continue;
                    };
                    if header.is_transactional() {
                        pending.entry(header.producer_id).or_default().push(rec);
                    } else {
                        apply(&mut table, rec);
                    }
                }
            }
            at = records.next_offset();
        }
    }
    let mut out = PendingTable::new();
    for (producer_id, recs) in pending {
        for rec in recs {
            if let Some(v) = rec.value {
                out.entry(rec.group)
                    .or_default()
                    .entry(producer_id)
                    .or_default()
                    .insert(
                        rec.topic_partition,
                        OffsetAndMetadata {
                            offset: v.offset,
                            metadata: v.metadata,
                        },
                    );
            }
        }
    }
    Ok((table, out))
}

fn apply(table: &mut OffsetTable, rec: OffsetCommitRecord) {
    match rec.value {
        Some(v) => {
            table.entry(rec.group).or_default().insert(
                rec.topic_partition,
                OffsetAndMetadata {
                    offset: v.offset,
                    metadata: v.metadata,
                },
            );
        }
        None => {
            if let Some(offsets) = table.get_mut(&rec.group) {
                offsets.remove(&rec.topic_partition);
                if offsets.is_empty() {
                    table.remove(&rec.group);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_exact_bytes() {
        let tp = TopicPartition::new("t", 2);
        let key = encode_key("g", &tp);
        assert_eq!(key, [0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 2]);
        let om = OffsetAndMetadata::new(7).metadata("m");
        let value = encode_value(&om, 9);
        assert_eq!(
            value,
            [0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 1, b'm', 0, 0, 0, 0, 0, 0, 0, 9]
        );
        let rec = decode_offset_commit(&key, Some(&value)).unwrap();
        assert_eq!(rec.group, "g");
        assert_eq!(rec.topic_partition, tp);
        assert_eq!(
            rec.value,
            Some(CommitValue {
                offset: 7,
                metadata: "m".into(),
                commit_timestamp: 9
            })
        );
        let tomb = decode_offset_commit(&key, None).unwrap();
        assert!(tomb.value.is_none());
    }

    #[test]
    fn decoder_rejects_every_truncation_and_trailing_bytes() {
        let key = encode_key("group", &TopicPartition::new("topic", 1));
        let value = encode_value(&OffsetAndMetadata::new(5).metadata("x"), 1);
        for n in 0..key.len() {
            assert!(decode_offset_commit(&key[..n], None).is_err());
        }
        for n in 0..value.len() {
            assert!(decode_offset_commit(&key, Some(&value[..n])).is_err());
        }
        let mut long = value.clone();
        long.push(0);
        assert!(decode_offset_commit(&key, Some(&long)).is_err());
        let mut bad_version = key.clone();
        bad_version[1] = 2;
        assert!(decode_offset_commit(&bad_version, None).is_err());
    }

    #[test]
    fn decoder_survives_arbitrary_bytes() {
        let mut seed = 0x1234_5678_u64;
        for len in 0..200usize {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed & 0xff) as u8
                })
                .collect();
            let _ = decode_offset_commit(&bytes, Some(&bytes));
            let _ = decode_offset_commit(&bytes, None);
        }
    }

    #[test]
    fn java_string_hash_matches() {
        assert_eq!(java_hash(""), 0);
        assert_eq!(java_hash("a"), 97);
        assert_eq!(java_hash("hello"), 99_162_322);
        assert_eq!(partition_for("anything"), 0);
        // Kafka with 50 partitions: abs("hello".hashCode()) % 50 = 99162322 % 50 = 22.
        assert_eq!(partition_of("hello", 50), 22);
    }
}
