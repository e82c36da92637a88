//! Control records: the transaction markers (COMMIT, ABORT) a control batch carries.
//!
//! Owns the key and value layout of a control record, as Kafka's `ControlRecordType` and
//! `EndTransactionMarker` (`clients/src/main/java/org/apache/kafka/common/record/`) define it:
//!
//! ```text
//! key:   version i16 (0) | type i16 (0 ABORT, 1 COMMIT, other values other control kinds)
//! value: version i16 (0) | coordinator_epoch i32          (transaction markers only)
//! ```
//!
//! Invariant: parsing accepts what Kafka's reader accepts (a key of at least 4 bytes with a
//! version of 0 or more; a marker value of at least 6 bytes with a version of 0 or more;
//! newer versions are read as version 0, as Kafka does) and never panics.

use super::batch::{BatchBuilder, ProducerFields};
use super::DecodeError;

/// The control record version Kafka writes (key and marker value alike).
const CURRENT_VERSION: i16 = 0;

/// What a control record says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ControlRecordType {
    /// The producer's transaction was aborted: readers at `read_committed` drop its records.
    Abort,
    /// The producer's transaction was committed.
    Commit,
    /// Another control kind (Kafka uses 2 and above for its own Raft log), kept by number.
    Other(i16),
}

impl ControlRecordType {
    /// Kafka's number for the type.
    pub fn id(self) -> i16 {
        match self {
            ControlRecordType::Abort => 0,
            ControlRecordType::Commit => 1,
            ControlRecordType::Other(id) => id,
        }
    }

    /// The type Kafka numbers `id`.
    pub fn from_id(id: i16) -> Self {
        match id {
            0 => ControlRecordType::Abort,
            1 => ControlRecordType::Commit,
            other => ControlRecordType::Other(other),
        }
    }

    /// Decodes a control record's key.
    pub fn parse_key(key: &[u8]) -> Result<Self, DecodeError> {
        let [v0, v1, t0, t1] = *key.first_chunk::<4>().ok_or_else(|| {
            DecodeError::corrupt(0, format!("control record key of {} bytes", key.len()))
        })?;
        let version = i16::from_be_bytes([v0, v1]);
        if version < 0 {
            return Err(DecodeError::corrupt(
                0,
                format!("control record key version {version}"),
            ));
        }
        Ok(ControlRecordType::from_id(i16::from_be_bytes([t0, t1])))
    }

    /// The key Kafka writes for this type.
    pub fn encode_key(self) -> [u8; 4] {
        let mut key = [0u8; 4];
        key[..2].copy_from_slice(&CURRENT_VERSION.to_be_bytes());
        key[2..].copy_from_slice(&self.id().to_be_bytes());
        key
    }
}

/// A transaction marker: the one record of a control batch that ends a transaction.
///
/// ```
/// use embroker::codec::{decode_batch, ControlRecordType, EndTransactionMarker, ProducerFields};
/// let marker = EndTransactionMarker { kind: ControlRecordType::Commit, coordinator_epoch: 3 };
/// let producer = ProducerFields { producer_id: 7, producer_epoch: 1, base_sequence: -1 };
/// let bytes = marker.encode_batch(producer, 1_700_000_000_000).unwrap();
/// let batch = decode_batch(&bytes).unwrap();
/// assert!(batch.header.is_control() && batch.header.is_transactional());
/// let record = batch.records().next().unwrap();
/// assert_eq!(EndTransactionMarker::parse(record.key.unwrap(), record.value), Ok(marker));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndTransactionMarker {
    /// COMMIT or ABORT.
    pub kind: ControlRecordType,
    /// The transaction coordinator's epoch when it wrote the marker.
    pub coordinator_epoch: i32,
}

impl EndTransactionMarker {
    /// The marker value Kafka writes.
    pub fn encode_value(&self) -> [u8; 6] {
        let mut value = [0u8; 6];
        value[..2].copy_from_slice(&CURRENT_VERSION.to_be_bytes());
        value[2..].copy_from_slice(&self.coordinator_epoch.to_be_bytes());
        value
    }

    /// Decodes a control record as a transaction marker: its type must be COMMIT or ABORT.
    pub fn parse(key: &[u8], value: Option<&[u8]>) -> Result<Self, DecodeError> {
        let kind = ControlRecordType::parse_key(key)?;
        if !matches!(kind, ControlRecordType::Commit | ControlRecordType::Abort) {
            return Err(DecodeError::corrupt(
                2,
                format!(
                    "control record type {} is not a transaction marker",
                    kind.id()
                ),
            ));
        }
        let value = value.unwrap_or_default();
        let [v0, v1, e0, e1, e2, e3] = *value.first_chunk::<6>().ok_or_else(|| {
            DecodeError::corrupt(
                0,
                format!("transaction marker value of {} bytes", value.len()),
            )
        })?;
        let version = i16::from_be_bytes([v0, v1]);
        if version < 0 {
            return Err(DecodeError::corrupt(
                0,
                format!("transaction marker version {version}"),
            ));
        }
        Ok(EndTransactionMarker {
            kind,
            coordinator_epoch: i32::from_be_bytes([e0, e1, e2, e3]),
        })
    }

    /// A whole control batch holding this marker, as Kafka's broker writes it: transactional
    /// and control bits set, the producer's id and epoch, base sequence -1, base offset 0 (the
    /// log stamps the real one). `None` when `timestamp` is negative (timestamps are checked
    /// where they enter, as the producer's are).
    pub fn encode_batch(&self, producer: ProducerFields, timestamp: i64) -> Option<Vec<u8>> {
        if timestamp < 0 {
            return None;
        }
        let mut b = BatchBuilder::with_capacity(super::HEADER_BYTES + 32);
        b.set_producer(ProducerFields {
            base_sequence: -1,
            ..producer
        });
        b.set_transactional(true);
        b.set_control(true);
        b.push(
            timestamp,
            Some(&self.kind.encode_key()),
            Some(&self.encode_value()),
            &[],
        )?;
        Some(b.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::decode_batch;
    use proptest::prelude::*;

    #[test]
    fn bytes_are_kafkas() {
        // Kafka's ControlRecordType.COMMIT key and an EndTransactionMarker(COMMIT, 5) value.
        assert_eq!(ControlRecordType::Commit.encode_key(), [0, 0, 0, 1]);
        assert_eq!(ControlRecordType::Abort.encode_key(), [0, 0, 0, 0]);
        let m = EndTransactionMarker {
            kind: ControlRecordType::Commit,
            coordinator_epoch: 5,
        };
        assert_eq!(m.encode_value(), [0, 0, 0, 0, 0, 5]);
    }

    #[test]
    fn a_control_batch_carries_the_header_kafka_writes() {
        let m = EndTransactionMarker {
            kind: ControlRecordType::Abort,
            coordinator_epoch: -1,
        };
        let producer = ProducerFields {
            producer_id: 42,
            producer_epoch: 3,
            base_sequence: 17,
        };
        let bytes = m.encode_batch(producer, 10).unwrap();
        let batch = decode_batch(&bytes).unwrap();
        let h = batch.header;
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (42, 3, -1)
        );
        assert!(h.is_control() && h.is_transactional() && !h.is_compressed());
        assert_eq!(h.attributes, 0x30);
        let r = batch.records().next().unwrap();
        assert_eq!(EndTransactionMarker::parse(r.key.unwrap(), r.value), Ok(m));
        assert!(m.encode_batch(producer, -1).is_none());
    }

    #[test]
    fn newer_versions_read_as_version_0_and_other_types_are_kept() {
        assert_eq!(
            ControlRecordType::parse_key(&[0, 1, 0, 7, 9]),
            Ok(ControlRecordType::Other(7))
        );
        assert!(ControlRecordType::parse_key(&[0xff, 0xff, 0, 1]).is_err());
        assert!(EndTransactionMarker::parse(&[0, 0, 0, 3], Some(&[0, 0, 0, 0, 0, 1])).is_err());
        assert_eq!(
            EndTransactionMarker::parse(&[0, 0, 0, 1], Some(&[0, 1, 0, 0, 0, 9, 1])),
            Ok(EndTransactionMarker {
                kind: ControlRecordType::Commit,
                coordinator_epoch: 9
            })
        );
        assert!(EndTransactionMarker::parse(&[0, 0, 0, 1], None).is_err());
    }

    proptest! {
        #[test]
        fn parsing_never_panics(key: Vec<u8>, value: Option<Vec<u8>>) {
            let _ = ControlRecordType::parse_key(&key);
            let _ = EndTransactionMarker::parse(&key, value.as_deref());
        }

        #[test]
        fn markers_round_trip(commit: bool, epoch: i32, pid in 0i64..i64::MAX, pepoch in 0i16..i16::MAX) {
            let m = EndTransactionMarker {
                kind: if commit { ControlRecordType::Commit } else { ControlRecordType::Abort },
                coordinator_epoch: epoch,
            };
            let producer = ProducerFields { producer_id: pid, producer_epoch: pepoch, base_sequence: -1 };
            let bytes = m.encode_batch(producer, 0).unwrap();
            let batch = decode_batch(&bytes).unwrap();
            let r = batch.records().next().unwrap();
            prop_assert_eq!(EndTransactionMarker::parse(r.key.unwrap(), r.value), Ok(m));
        }
    }
}
