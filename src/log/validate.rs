//! Validating batches a client encoded, before the log appends them: what Kafka's
//! `LogValidator` (`storage/src/main/java/org/apache/kafka/storage/internals/log/LogValidator.java`)
//! checks for a client's produce request.
//!
//! Owns: the rules a client batch must meet, and the fixes Kafka makes in place (a CreateTime
//! batch's `max_timestamp` recomputed from its records).
//!
//! Invariants:
//! - [`validate`] checks every batch of a call before any is written: a call is refused whole,
//!   with an error that names the batch, its byte position and what is wrong.
//! - A batch that passes is whole, CRC-checked, magic 2, not a control batch, its records
//!   parse to its exact end with offset deltas 0, 1, 2, ... and timestamps Kafka would accept;
//!   the log may then stamp its base offset (and LogAppendTime) without looking again.

use std::ops::Range;

use crate::codec::{self, BatchHeader, DecodeError, RecordView};
use crate::config::TopicConfig;
use crate::error::{Error, Result};
use crate::types::TimestampType;

/// One batch of a call that passed, and where it lies in the call's bytes.
#[derive(Clone, Debug)]
pub(crate) struct ValidBatch {
    pub range: Range<usize>,
    pub header: BatchHeader,
}

/// Where a failure is, for errors.
struct At<'a> {
    topic: &'a str,
    partition: i32,
    batch: usize,
    position: usize,
}

impl At<'_> {
    fn invalid(&self, reason: impl std::fmt::Display) -> Error {
        Error::InvalidRecord {
            topic: self.topic.to_string(),
            partition: self.partition,
            reason: format!(
                "batch {} (at byte {} of the appended bytes): {reason}",
                self.batch, self.position
            ),
        }
    }

    fn corrupt(&self, e: &DecodeError) -> Error {
        Error::CorruptRecord {
            topic: self.topic.to_string(),
            partition: self.partition,
            position: self.position as u64,
            reason: format!("batch {}: {e}", self.batch),
        }
    }
}

/// Checks every batch in `bytes` (whole v2 batches, back to back, as a Kafka producer sends a
/// partition's records) against `config`, fixing what Kafka fixes in place. `now` is the
/// broker clock's time, for the timestamp bounds.
pub(crate) fn validate(
    bytes: &mut [u8],
    config: &TopicConfig,
    now: i64,
    topic: &str,
    partition: i32,
) -> Result<Vec<ValidBatch>> {
    let mut out = Vec::new();
    let mut position = 0usize;
    if bytes.is_empty() {
        return Err(Error::InvalidRecord {
            topic: topic.to_string(),
            partition,
            reason: "an append needs at least one batch".into(),
        });
    }
    while position < bytes.len() {
        let at = At {
            topic,
            partition,
            batch: out.len(),
            position,
        };
        let rest = &bytes[position..];
        let header = match codec::peek_header(rest) {
            Ok(h) => h,
            Err(DecodeError::Incomplete { needed, available }) => {
                return Err(at.invalid(format!(
                    "the bytes end inside a batch header ({available} of {needed} bytes)"
                )))
            }
            Err(e) => return Err(at.corrupt(&e)),
        };
        let total = header.total_bytes();
        if total > config.max_message_bytes as usize {
            return Err(Error::RecordTooLarge {
                topic: topic.to_string(),
                partition,
                size: total as u64,
                limit: u64::from(config.max_message_bytes),
                limit_name: "max.message.bytes",
            });
        }
        let batch = codec::decode_batch_crc_only(rest).map_err(|e| match e {
            DecodeError::Incomplete { needed, available } => at.invalid(format!(
                "the bytes end inside the batch ({available} of its {needed} bytes)"
            )),
            e => at.corrupt(&e),
        })?;
        check_header(&at, &header)?;
        // Each record is checked as the batch's framing is: one parse of it, not two.
        let mut max_timestamp = i64::MIN;
        let mut refused = None;
        codec::check_batch_records_each(&batch, |i, r| {
            match check_record(&at, config, now, &header, i, r) {
                Ok(timestamp) => {
                    max_timestamp = max_timestamp.max(timestamp);
                    true
                }
                Err(e) => {
                    refused = Some(e);
                    false
                }
            }
        })
        .map_err(|e| at.corrupt(&e))?;
        if let Some(e) = refused {
            return Err(e);
        }
        if config.timestamp_type == TimestampType::CreateTime
            && header.timestamp_type() == TimestampType::CreateTime
            && header.max_timestamp != max_timestamp
        {
            // Kafka recomputes a CreateTime batch's max timestamp from its records.
            codec::set_max_timestamp(&mut bytes[position..position + total], max_timestamp);
        }
        let header = codec::peek_header(&bytes[position..]).map_err(|e| at.corrupt(&e))?;
        out.push(ValidBatch {
            range: position..position + total,
            header,
        });
        position += total;
    }
    Ok(out)
}

/// Kafka's record-level checks for record `i` of a client's batch (`LogValidator`'s
/// `validateRecord`): offset deltas numbered from 0, a key on a compacted topic, the timestamp
/// bounds. Returns the record's timestamp.
fn check_record(
    at: &At<'_>,
    config: &TopicConfig,
    now: i64,
    header: &BatchHeader,
    i: usize,
    r: &RecordView<'_>,
) -> Result<i64> {
    if i64::from(r.offset_delta) != i as i64 {
        return Err(at.invalid(format!(
            "record {i} has offset delta {}; a client's records are numbered 0, 1, 2, ...",
            r.offset_delta
        )));
    }
    if config.cleanup_policy.compacts() && r.key.is_none() {
        return Err(at.invalid(format!(
            "record {i} has no key, and a compacted topic cannot accept a record without a key"
        )));
    }
    let timestamp = header.base_timestamp.saturating_add(r.timestamp_delta);
    check_timestamp(at, config, now, i, timestamp)?;
    Ok(timestamp)
}

/// Kafka's batch-level checks for a client's v2 batch (`LogValidator.validateBatch`).
fn check_header(at: &At<'_>, h: &BatchHeader) -> Result<()> {
    if i64::from(h.last_offset_delta) + 1 != i64::from(h.record_count) {
        return Err(at.invalid(format!(
            "last offset delta {} does not match record count {} (a client's batch has no gaps)",
            h.last_offset_delta, h.record_count
        )));
    }
    if h.is_control() {
        return Err(at.invalid("clients are not allowed to write control records"));
    }
    if h.producer_id >= 0 && h.base_sequence < 0 {
        return Err(at.invalid(format!(
            "producer id {} with base sequence {}: a producer id needs a sequence",
            h.producer_id, h.base_sequence
        )));
    }
    Ok(())
}

/// Kafka's CreateTime bounds (`message.timestamp.before.max.ms`, `.after.max.ms`), and
/// embroker's rule that timestamps are not negative.
fn check_timestamp(
    at: &At<'_>,
    config: &TopicConfig,
    now: i64,
    index: usize,
    timestamp: i64,
) -> Result<()> {
    let bad = |reason: String| Error::InvalidTimestamp {
        topic: at.topic.to_string(),
        partition: at.partition,
        timestamp,
        reason: format!("batch {} record {index}: {reason}", at.batch),
    };
    if timestamp < 0 {
        return Err(bad(
            "timestamps are milliseconds since the Unix epoch".into()
        ));
    }
    if config.timestamp_type != TimestampType::CreateTime {
        return Ok(());
    }
    if now.saturating_sub(timestamp) > config.message_timestamp_before_max_ms {
        return Err(bad(format!(
            "more than message.timestamp.before.max.ms={} before the broker's time {now}",
            config.message_timestamp_before_max_ms
        )));
    }
    if timestamp.saturating_sub(now) > config.message_timestamp_after_max_ms {
        return Err(bad(format!(
            "more than message.timestamp.after.max.ms={} after the broker's time {now}",
            config.message_timestamp_after_max_ms
        )));
    }
    Ok(())
}
