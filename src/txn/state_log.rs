//! The records of the internal compacted topic `__transaction_state`, byte for byte as Kafka
//! writes them (`TransactionLogKey.json`, `TransactionLogValue.json` in Kafka's
//! `transaction-coordinator/src/main/resources/common/message/`; `TransactionLog.scala`).
//!
//! Owns: the record codec (pure: bytes in, values out, never a panic on any input), the topic's
//! name, partition count and the partition of a transactional id. The coordinator appends the
//! records and replays them; this module does no I/O.
//!
//! All integers are big-endian. Key (version 0 only):
//!
//! ```text
//! version i16 = 0 | transactional_id: i16 length + UTF-8
//! ```
//!
//! Value, version 0 (what Kafka writes for transactions of the classic protocol, and what
//! embroker writes), absent for a tombstone:
//!
//! ```text
//! version i16 = 0 | producer_id i64 | producer_epoch i16 | transaction_timeout_ms i32
//! | transaction_status i8 | transaction_partitions: i32 count (-1: null), each
//!   { topic: i16 length + UTF-8 | partition_ids: i32 count, each i32 }
//! | transaction_last_update_timestamp_ms i64 | transaction_start_timestamp_ms i64
//! ```
//!
//! Version 1 (Kafka's flexible version, written for KIP-890 transactions) is read too: compact
//! strings and arrays (unsigned varint length + 1, 0 for null), a tagged-field section after each
//! partition entry and after the whole value, whose tags 0 (`PreviousProducerId`, i64),
//! 1 (`NextProducerId`, i64) and 2 (`ClientTransactionVersion`, i16) are kept; unknown tags are
//! skipped, as Kafka skips them. Embroker adds one tag of its own to a topic entry, tag
//! [`END_OFFSETS_TAG`] (`DataEndOffsets`): one i64 per partition id, in the same order, the end
//! offset that partition's data of the transaction reaches (written on `PrepareCommit`: see
//! the coordinator's recovery). Kafka and older embroker builds skip it as an unknown tag.
//!
//! A record decoded from bytes re-encodes to a record that decodes to the same value. It
//! re-encodes to the same bytes in version 0 always, and in version 1 when it is written as
//! Kafka writes it: every varint in the fewest bytes, no tags after a partition entry, and
//! after the value only tags 0, 1 and 2, each at most once, in increasing order and not at its
//! default (the decoder accepts overlong varints, unknown, repeated or out-of-order tags and
//! tags at their defaults, as Kafka's does).

use crate::error::Result;
use crate::record_cursor::{java_hash, Cursor};
use crate::txn::metadata::TxnState;

/// The internal topic holding transaction state.
pub(crate) const TXN_TOPIC: &str = "__transaction_state";
/// Partitions of [`TXN_TOPIC`]: Kafka's `transaction.state.log.num.partitions` default.
pub(crate) const TXN_PARTITIONS: i32 = 50;
/// Segment size of [`TXN_TOPIC`] (Kafka's `transaction.state.log.segment.bytes` is 100 MiB;
/// records are small and only closed segments are compacted, as for `__consumer_offsets`).
pub(crate) const TXN_SEGMENT_BYTES: u32 = 1 << 20;

const KEY_VERSION: i16 = 0;
/// The value version embroker writes.
pub const VALUE_VERSION: i16 = 0;
const STRING_BYTES_MAX: usize = i16::MAX as usize;

/// Embroker's tagged field of a version 1 topic entry: the data end offsets (module docs).
pub const END_OFFSETS_TAG: u32 = 100;

/// The partitions of one topic in a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnTopicPartitions {
    /// The topic.
    pub topic: String,
    /// Its partitions in the transaction.
    pub partitions: Vec<i32>,
    /// Version 1 tag `END_OFFSETS_TAG` (100): per partition (same order), the offset the
    /// transaction's data in it ends before; empty when absent (always in version 0, and
    /// not written unless it has exactly one end per partition).
    pub end_offsets: Vec<i64>,
}

/// The value of a `__transaction_state` record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnLogValue {
    /// 0 or 1 (see the module docs).
    pub version: i16,
    /// The producer id the transactional id uses.
    pub producer_id: i64,
    /// Its epoch.
    pub producer_epoch: i16,
    /// `transaction.timeout.ms` of the producer.
    pub timeout_ms: i32,
    /// The transaction's state.
    pub state: TxnState,
    /// The transaction's partitions; `None` is Kafka's null (written for `Empty`).
    pub partitions: Option<Vec<TxnTopicPartitions>>,
    /// When the state last changed (ms).
    pub last_update_ms: i64,
    /// When the transaction began (ms), -1 without one.
    pub start_ms: i64,
    /// Version 1 tag 0, default -1.
    pub previous_producer_id: i64,
    /// Version 1 tag 1, default -1.
    pub next_producer_id: i64,
    /// Version 1 tag 2, default 0.
    pub client_transaction_version: i16,
}

/// One decoded `__transaction_state` record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnLogRecord {
    /// The transactional id (the key).
    pub transactional_id: String,
    /// `None` for a tombstone: the id was removed.
    pub value: Option<TxnLogValue>,
}

/// The key of `transactional_id`'s record.
pub fn encode_key(transactional_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + transactional_id.len());
    out.extend_from_slice(&KEY_VERSION.to_be_bytes());
    put_str(&mut out, transactional_id);
    out
}

/// The value bytes of `v` in its version (0, or 1 for any other number).
pub fn encode_value(v: &TxnLogValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    let flexible = v.version >= 1;
    out.extend_from_slice(&(if flexible { 1i16 } else { 0 }).to_be_bytes());
    out.extend_from_slice(&v.producer_id.to_be_bytes());
    out.extend_from_slice(&v.producer_epoch.to_be_bytes());
    out.extend_from_slice(&v.timeout_ms.to_be_bytes());
    out.extend_from_slice(&v.state.id().to_be_bytes());
    match &v.partitions {
        None if flexible => put_uvarint(&mut out, 0),
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        Some(topics) => {
            put_len(&mut out, topics.len(), flexible);
            for t in topics {
                if flexible {
                    put_compact_str(&mut out, &t.topic);
                } else {
                    put_str(&mut out, &t.topic);
                }
                put_len(&mut out, t.partitions.len(), flexible);
                for p in &t.partitions {
                    out.extend_from_slice(&p.to_be_bytes());
                }
                if flexible {
                    // Written only when it has one end per partition id (what the decoder
                    // accepts).
                    if t.end_offsets.is_empty() || t.end_offsets.len() != t.partitions.len() {
                        put_uvarint(&mut out, 0);
                    } else {
                        put_uvarint(&mut out, 1);
                        put_uvarint(&mut out, END_OFFSETS_TAG);
                        let size = t.end_offsets.len().saturating_mul(8);
                        put_uvarint(&mut out, u32::try_from(size).unwrap_or(u32::MAX));
                        for end in &t.end_offsets {
                            out.extend_from_slice(&end.to_be_bytes());
                        }
                    }
                }
            }
        }
    }
    out.extend_from_slice(&v.last_update_ms.to_be_bytes());
    out.extend_from_slice(&v.start_ms.to_be_bytes());
    if flexible {
        let mut tags: Vec<(u32, Vec<u8>)> = Vec::new();
        if v.previous_producer_id != -1 {
            tags.push((0, v.previous_producer_id.to_be_bytes().to_vec()));
        }
        if v.next_producer_id != -1 {
            tags.push((1, v.next_producer_id.to_be_bytes().to_vec()));
        }
        if v.client_transaction_version != 0 {
            tags.push((2, v.client_transaction_version.to_be_bytes().to_vec()));
        }
        put_uvarint(&mut out, tags.len() as u32);
        for (tag, bytes) in tags {
            put_uvarint(&mut out, tag);
            put_uvarint(&mut out, bytes.len() as u32);
            out.extend_from_slice(&bytes);
        }
    }
    out
}

fn put_len(out: &mut Vec<u8>, len: usize, flexible: bool) {
    if flexible {
        put_uvarint(out, u32::try_from(len).unwrap_or(u32::MAX - 1) + 1);
    } else {
        out.extend_from_slice(&i32::try_from(len).unwrap_or(i32::MAX).to_be_bytes());
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = s.len().min(STRING_BYTES_MAX);
    out.extend_from_slice(&(len as i16).to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..len]);
}

fn put_compact_str(out: &mut Vec<u8>, s: &str) {
    let len = s.len().min(STRING_BYTES_MAX);
    put_uvarint(out, len as u32 + 1);
    out.extend_from_slice(&s.as_bytes()[..len]);
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Decodes one record (`value` `None`: a tombstone). Never panics; an error is
/// [`Error::Corrupt`](crate::Error::Corrupt) whose position is the byte within the key or the value.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<TxnLogRecord> {
    let mut k = Cursor::new(key, TXN_TOPIC, "transaction log", "key");
    let version = k.i16()?;
    if version != KEY_VERSION {
        return Err(k.corrupt(format!("unknown key version {version}")));
    }
    let transactional_id = k.string()?;
    k.finish()?;
    let value = match value {
        None => None,
        Some(bytes) => Some(decode_value(bytes)?),
    };
    Ok(TxnLogRecord {
        transactional_id,
        value,
    })
}

fn decode_value(bytes: &[u8]) -> Result<TxnLogValue> {
    let mut v = Cursor::new(bytes, TXN_TOPIC, "transaction log", "value");
    let version = v.i16()?;
    if !(0..=1).contains(&version) {
        return Err(v.corrupt(format!("unknown value version {version}")));
    }
    let flexible = version == 1;
    let producer_id = v.i64()?;
    let producer_epoch = v.i16()?;
    let timeout_ms = v.i32()?;
    let status = v.i8()?;
    let state =
        TxnState::from_id(status).ok_or_else(|| v.corrupt(format!("unknown status {status}")))?;
    let count = v.len(flexible)?;
    let partitions = match count {
        None => None,
        Some(n) => {
            let mut topics = Vec::new();
            for _ in 0..n {
                let topic = if flexible {
                    v.compact_string()?
                } else {
                    v.string()?
                };
                let ids = v
                    .len(flexible)?
                    .ok_or_else(|| v.corrupt("null partition list".into()))?;
                let mut partitions = Vec::new();
                for _ in 0..ids {
                    partitions.push(v.i32()?);
                }
                let end_offsets = if flexible {
                    v.topic_tags(partitions.len())?
                } else {
                    Vec::new()
                };
                topics.push(TxnTopicPartitions {
                    topic,
                    partitions,
                    end_offsets,
                });
            }
            Some(topics)
        }
    };
    let last_update_ms = v.i64()?;
    let start_ms = v.i64()?;
    let mut value = TxnLogValue {
        version,
        producer_id,
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        last_update_ms,
        start_ms,
        previous_producer_id: -1,
        next_producer_id: -1,
        client_transaction_version: 0,
    };
    if flexible {
        let tags = v.uvarint()?;
        for _ in 0..tags {
            let tag = v.uvarint()?;
            let size = v.uvarint()? as usize;
            // Errors name the byte within the value (a known tag of the wrong width is
            // reported at its data, not within the field).
            match (tag, size) {
                (0, 8) => value.previous_producer_id = v.i64()?,
                (1, 8) => value.next_producer_id = v.i64()?,
                (2, 2) => value.client_transaction_version = v.i16()?,
                (0..=2, _) => {
                    return Err(v.corrupt(format!("tagged field {tag} of {size} bytes")));
                }
                _ => {
                    v.take(size)?;
                }
            }
        }
    }
    v.finish()?;
    Ok(value)
}

/// Kafka's flexible-version reads (varints, compact strings, arrays, tagged fields).
impl Cursor<'_> {
    fn uvarint(&mut self) -> Result<u32> {
        let mut v: u32 = 0;
        for i in 0..5 {
            let [b] = self.array::<1>()?;
            v |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if i == 4 && b > 0x0f {
                    break;
                }
                return Ok(v);
            }
        }
        Err(self.corrupt("unsigned varint longer than 32 bits".into()))
    }

    /// An array length: `None` for null. Bounded by the bytes left (each element takes at
    /// least one byte), so a huge count costs nothing.
    fn len(&mut self, flexible: bool) -> Result<Option<usize>> {
        let n = if flexible {
            match self.uvarint()? {
                0 => return Ok(None),
                n => (n - 1) as usize,
            }
        } else {
            match self.i32()? {
                -1 => return Ok(None),
                n if n < 0 => return Err(self.corrupt(format!("array length {n}"))),
                n => n as usize,
            }
        };
        if n > self.bytes.len() - self.at {
            return Err(self.corrupt(format!("array of {n} elements in fewer bytes")));
        }
        Ok(Some(n))
    }

    fn string(&mut self) -> Result<String> {
        let len = self.i16()?;
        let len = usize::try_from(len).map_err(|_| self.corrupt(format!("string length {len}")))?;
        self.utf8(len)
    }

    fn compact_string(&mut self) -> Result<String> {
        match self.uvarint()? {
            0 => Err(self.corrupt("null string".into())),
            n if (n - 1) as usize > STRING_BYTES_MAX => {
                Err(self.corrupt(format!("string length {}", n - 1)))
            }
            n => self.utf8((n - 1) as usize),
        }
    }

    /// A topic entry's tagged fields: the end offsets of tag [`END_OFFSETS_TAG`] (one i64
    /// per partition id, so `size` must be `8 * partitions`; empty without the tag); other
    /// tags skipped.
    fn topic_tags(&mut self, partitions: usize) -> Result<Vec<i64>> {
        let tags = self.uvarint()?;
        let mut ends = Vec::new();
        for _ in 0..tags {
            let tag = self.uvarint()?;
            let size = self.uvarint()? as usize;
            if tag != END_OFFSETS_TAG {
                self.take(size)?;
                continue;
            }
            if partitions == 0 || size != partitions.saturating_mul(8) {
                return Err(self.corrupt(format!(
                    "tagged field {tag} of {size} bytes for {partitions} partitions"
                )));
            }
            ends.clear();
            for _ in 0..partitions {
                ends.push(self.i64()?);
            }
        }
        Ok(ends)
    }
}

/// The `__transaction_state` partition of a transactional id: Kafka's
/// `Utils.abs(transactionalId.hashCode) % partitions` (`abs(i32::MIN)` is 0).
pub(crate) fn partition_for(transactional_id: &str) -> i32 {
    let h = java_hash(transactional_id);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % TXN_PARTITIONS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use proptest::prelude::*;

    fn value(version: i16) -> TxnLogValue {
        TxnLogValue {
            version,
            producer_id: 7,
            producer_epoch: 2,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: Some(vec![TxnTopicPartitions {
                topic: "t".into(),
                partitions: vec![0, 3],
                end_offsets: Vec::new(),
            }]),
            last_update_ms: 11,
            start_ms: 10,
            previous_producer_id: -1,
            next_producer_id: -1,
            client_transaction_version: 0,
        }
    }

    #[test]
    fn version_0_bytes_are_kafkas() {
        assert_eq!(encode_key("tx"), [0, 0, 0, 2, b't', b'x']);
        let bytes = encode_value(&value(0));
        let mut want = vec![0, 0];
        want.extend_from_slice(&7i64.to_be_bytes());
        want.extend_from_slice(&2i16.to_be_bytes());
        want.extend_from_slice(&60_000i32.to_be_bytes());
        want.push(1);
        want.extend_from_slice(&1i32.to_be_bytes());
        want.extend_from_slice(&[0, 1, b't']);
        want.extend_from_slice(&2i32.to_be_bytes());
        want.extend_from_slice(&0i32.to_be_bytes());
        want.extend_from_slice(&3i32.to_be_bytes());
        want.extend_from_slice(&11i64.to_be_bytes());
        want.extend_from_slice(&10i64.to_be_bytes());
        assert_eq!(bytes, want);
        let rec = decode(&encode_key("tx"), Some(&bytes)).unwrap();
        assert_eq!(rec.transactional_id, "tx");
        assert_eq!(rec.value, Some(value(0)));
        assert_eq!(decode(&encode_key("tx"), None).unwrap().value, None);
    }

    #[test]
    fn null_partitions_and_version_1_tags() {
        let mut v = value(0);
        v.partitions = None;
        v.state = TxnState::Empty;
        let bytes = encode_value(&v);
        assert_eq!(&bytes[17..21], &(-1i32).to_be_bytes());
        assert_eq!(decode_value(&bytes).unwrap(), v);
        let mut v1 = value(1);
        v1.next_producer_id = 9;
        v1.client_transaction_version = 2;
        let bytes = encode_value(&v1);
        assert_eq!(decode_value(&bytes).unwrap(), v1);
        // An unknown tag is skipped.
        let mut with_unknown = bytes.clone();
        let n = with_unknown.len();
        // The tag count opens the trailing section: 2 tags (tag, size, 8 bytes; tag, size, 2).
        let section = n - (2 + 8) - (2 + 2) - 1;
        with_unknown[section] = 3;
        with_unknown.extend_from_slice(&[9, 1, 0xff]);
        assert_eq!(decode_value(&with_unknown).unwrap(), v1);
    }

    /// Embroker's end offsets: tag 100 of the topic entry, one i64 per partition; a record
    /// without it reads as before, and one whose size does not match the partitions is corrupt.
    #[test]
    fn end_offsets_are_a_topic_entry_tag() {
        let mut v1 = value(1);
        v1.state = TxnState::PrepareCommit;
        v1.client_transaction_version = 2;
        let plain = encode_value(&v1);
        if let Some(topics) = v1.partitions.as_mut() {
            topics[0].end_offsets = vec![5, 1 << 40];
        }
        let bytes = encode_value(&v1);
        // The topic entry: compact string "t" (2, 't'), 2 partitions (3, then two i32), then
        // its tags: 1 tag, tag 100, 16 bytes, the two i64.
        let entry = 2 + 8 + 2 + 4 + 1 + 1;
        let mut want = vec![2, b't', 3];
        want.extend_from_slice(&0i32.to_be_bytes());
        want.extend_from_slice(&3i32.to_be_bytes());
        want.extend_from_slice(&[1, 100, 16]);
        want.extend_from_slice(&5i64.to_be_bytes());
        want.extend_from_slice(&(1i64 << 40).to_be_bytes());
        assert_eq!(&bytes[entry..entry + want.len()], &want[..]);
        assert_eq!(bytes.len(), plain.len() + 2 + 16);
        assert_eq!(decode_value(&bytes).unwrap(), v1);
        // A size that is not 8 per partition is corrupt.
        let mut bad = bytes.clone();
        bad[entry + 11 + 2] = 8;
        assert!(decode_value(&bad).is_err());
        // Ends that do not match the partitions are not written.
        if let Some(topics) = v1.partitions.as_mut() {
            topics[0].end_offsets = vec![5];
        }
        assert_eq!(encode_value(&v1), plain);
    }

    /// Found by the `txn_state_log` fuzz target's seeds: a known tag of the wrong width was
    /// reported at a byte of the tagged field, not of the value.
    #[test]
    fn a_known_tag_of_the_wrong_width_is_an_error_at_its_byte_in_the_value() {
        let mut v1 = value(1);
        v1.client_transaction_version = 2;
        let mut bytes = encode_value(&v1);
        let n = bytes.len();
        // The trailing section: count 1, tag 2, size 2, the i16.
        assert_eq!(bytes[n - 5..n - 2], [1, 2, 2]);
        bytes[n - 3] = 3;
        bytes.push(0);
        match decode_value(&bytes) {
            Err(Error::Corrupt {
                position, reason, ..
            }) => {
                assert_eq!(position, (n - 2) as u64);
                assert!(reason.starts_with("transaction log value"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        for v in [value(0), value(1)] {
            let bytes = encode_value(&v);
            for n in 0..bytes.len() {
                assert!(decode_value(&bytes[..n]).is_err(), "{n}");
            }
        }
        let key = encode_key("abc");
        for n in 0..key.len() {
            assert!(decode(&key[..n], None).is_err());
        }
    }

    #[test]
    fn partition_of_a_transactional_id_is_kafkas() {
        // abs("hello".hashCode()) % 50 = 99162322 % 50 = 22.
        assert_eq!(partition_for("hello"), 22);
        assert_eq!(partition_for(""), 0);
    }

    fn arb_value() -> impl Strategy<Value = TxnLogValue> {
        (
            0i16..=1,
            any::<i64>(),
            any::<i16>(),
            any::<i32>(),
            0usize..8,
            prop::option::of(prop::collection::vec(
                (
                    "[a-z._-]{0,20}",
                    prop::collection::vec((any::<i32>(), any::<i64>()), 0..5),
                    any::<bool>(),
                ),
                0..4,
            )),
            any::<i64>(),
            any::<i64>(),
            any::<i64>(),
            any::<i64>(),
            any::<i16>(),
        )
            .prop_map(
                |(version, pid, epoch, timeout, s, parts, upd, start, prev, next, ctv)| {
                    let flexible = version == 1;
                    TxnLogValue {
                        version,
                        producer_id: pid,
                        producer_epoch: epoch,
                        timeout_ms: timeout,
                        state: TxnState::ALL[s],
                        partitions: parts.map(|p| {
                            p.into_iter()
                                .map(|(topic, ids, ends)| TxnTopicPartitions {
                                    topic,
                                    partitions: ids.iter().map(|&(p, _)| p).collect(),
                                    // End offsets only in version 1, one per partition.
                                    end_offsets: if flexible && ends {
                                        ids.iter().map(|&(_, e)| e).collect()
                                    } else {
                                        Vec::new()
                                    },
                                })
                                .collect()
                        }),
                        last_update_ms: upd,
                        start_ms: start,
                        previous_producer_id: if flexible { prev } else { -1 },
                        next_producer_id: if flexible { next } else { -1 },
                        client_transaction_version: if flexible { ctv } else { 0 },
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn round_trip(id in "\\PC{0,40}", v in prop::option::of(arb_value())) {
            let key = encode_key(&id);
            let bytes = v.as_ref().map(encode_value);
            let rec = decode(&key, bytes.as_deref()).unwrap();
            prop_assert_eq!(&rec.transactional_id, &id);
            prop_assert_eq!(&rec.value, &v);
            // One encoding per record.
            if let (Some(v), Some(bytes)) = (&rec.value, &bytes) {
                prop_assert_eq!(&encode_value(v), bytes);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(key in prop::collection::vec(any::<u8>(), 0..64),
                                       value in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&key, Some(&value));
            let _ = decode(&key, None);
            let mut v1 = value.clone();
            if v1.len() >= 2 { v1[0] = 0; v1[1] = 1; }
            let _ = decode_value(&v1);
        }
    }
}
