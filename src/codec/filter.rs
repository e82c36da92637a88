//! Rewriting a batch without some of its records: what the log cleaner does to every batch.
//!
//! Invariants of a filtered batch (Kafka's cleaner keeps the same ones):
//! - It keeps the original's base offset, `last_offset_delta` and every kept record's offset
//!   delta, so offsets never change and the batch still spans the original's offsets; the
//!   removed records leave gaps.
//! - Kept records keep their timestamps. A batch that keeps every record and gets no new
//!   delete horizon is copied untouched. Otherwise it is rebuilt as Kafka's cleaner rebuilds
//!   it: `base_timestamp` becomes the delete horizon (attribute bit 6) if the batch has or
//!   gets one, else the first kept record's timestamp (a LogAppendTime batch's records all
//!   take its max timestamp), and each record's timestamp delta is re-encoded from there.
//! - The result is a whole batch that [`super::decode_batch`] accepts.

use super::batch::{write_crc, Batch, ATTR_DELETE_HORIZON, HEADER_BYTES, LENGTH_PREFIX_BYTES};
use super::record::{self, RecordView};
use crate::types::TimestampType;

/// Appends to `out` the batch `batch` holding only the records `keep` accepts, and returns
/// how many it kept. Nothing is appended when it keeps none (a batch needs a record).
///
/// `delete_horizon` sets Kafka's KIP-534 delete horizon on a batch that has none; a batch that
/// has one keeps it. A horizon that would push a record's timestamp delta past `i64` is not
/// set (the batch is then rewritten without one).
pub(crate) fn filter_batch(
    batch: &Batch<'_>,
    delete_horizon: Option<i64>,
    out: &mut Vec<u8>,
    mut keep: impl FnMut(&RecordView<'_>) -> bool,
) -> usize {
    let h = &batch.header;
    let horizon = delete_horizon.filter(|_| h.delete_horizon().is_none());
    let log_append_time = h.timestamp_type() == TimestampType::LogAppendTime;
    // Kafka reads a LogAppendTime batch's records as stamped with its max timestamp.
    let timestamp_of = |view: &RecordView<'_>| {
        if log_append_time {
            h.max_timestamp
        } else {
            h.base_timestamp.saturating_add(view.timestamp_delta)
        }
    };
    // Which records stay (asking `keep` once each), with their bytes and timestamps.
    let mut kept_records: Vec<(&[u8], i64)> = Vec::new();
    let mut rest = &batch.bytes[HEADER_BYTES..];
    while let Some((view, n)) = record::parse_checked(rest) {
        let raw = &rest[..n];
        rest = &rest[n..];
        if keep(&view) {
            kept_records.push((raw, timestamp_of(&view)));
        }
    }
    debug_assert!(rest.is_empty(), "filtering a batch that was not checked");
    let kept = kept_records.len() as i32;
    if kept == 0 {
        return 0;
    }
    let all_kept = kept == h.record_count && horizon.is_none();
    if all_kept {
        // Kafka writes a batch that loses nothing as it was.
        out.extend_from_slice(batch.bytes);
        return kept as usize;
    }
    // Only a horizon far from the records' timestamps can overflow a delta: the batch is
    // then rewritten without one.
    // A batch that has a horizon keeps it (and its bit), as Kafka's does.
    write_kept(batch, &kept_records, horizon.or(h.delete_horizon()), out)
        .or_else(|| write_kept(batch, &kept_records, None, out))
        .unwrap_or(0)
}

/// Appends the batch holding `kept` (record bytes and timestamps, in order), built as Kafka's
/// cleaner builds it (`MemoryRecordsBuilder`): its base timestamp is the delete horizon when
/// it gets one, else its first record's timestamp, and each record's delta is taken from
/// there. `None` (nothing appended) when a delta does not fit.
fn write_kept(
    batch: &Batch<'_>,
    kept: &[(&[u8], i64)],
    horizon: Option<i64>,
    out: &mut Vec<u8>,
) -> Option<usize> {
    let h = &batch.header;
    let first_timestamp = kept.first()?.1;
    let base_timestamp = horizon.unwrap_or(first_timestamp);
    let start = out.len();
    out.extend_from_slice(&batch.bytes[..HEADER_BYTES]);
    for &(raw, timestamp) in kept {
        let encoded = timestamp
            .checked_sub(base_timestamp)
            .and_then(|delta| record::encode_with_timestamp_delta(out, raw, delta));
        if encoded.is_none() {
            out.truncate(start);
            return None;
        }
    }
    let max_timestamp = if h.timestamp_type() == TimestampType::LogAppendTime {
        h.max_timestamp
    } else {
        kept.iter()
            .map(|&(_, t)| t)
            .max()
            .unwrap_or(first_timestamp)
    };
    let attributes = if horizon.is_some() {
        h.attributes | ATTR_DELETE_HORIZON
    } else {
        h.attributes
    };
    let count = kept.len() as i32;
    let b = &mut out[start..];
    let batch_length = (b.len() - LENGTH_PREFIX_BYTES) as i32;
    b[8..12].copy_from_slice(&batch_length.to_be_bytes());
    b[21..23].copy_from_slice(&attributes.to_be_bytes());
    b[27..35].copy_from_slice(&base_timestamp.to_be_bytes());
    b[35..43].copy_from_slice(&max_timestamp.to_be_bytes());
    b[57..61].copy_from_slice(&count.to_be_bytes());
    write_crc(b);
    Some(kept.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode_batch, set_base_offset, BatchBuilder};
    use proptest::prelude::*;

    type Rec = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

    fn batch_of(records: &[Rec]) -> Vec<u8> {
        let mut b = BatchBuilder::new();
        for (ts, k, v) in records {
            b.push(
                *ts,
                k.as_deref(),
                v.as_deref(),
                &[crate::Header::new("h", "x")],
            )
            .unwrap();
        }
        let mut bytes = b.finish();
        set_base_offset(&mut bytes, 100);
        bytes
    }

    fn records() -> impl Strategy<Value = Vec<Rec>> {
        proptest::collection::vec(
            (
                -1_000_000i64..1_000_000,
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
            ),
            1..30,
        )
    }

    proptest! {
        /// Whatever subset is kept, with or without a new horizon: the result decodes, spans
        /// the same offsets, and holds exactly the kept records with their offsets, keys,
        /// values, headers and timestamps.
        #[test]
        fn keeps_exactly_the_chosen_records(
            recs in records(),
            mask in proptest::collection::vec(any::<bool>(), 30),
            horizon in proptest::option::of(-10_000_000i64..10_000_000),
        ) {
            let bytes = batch_of(&recs);
            let original = decode_batch(&bytes).unwrap();
            let mut i = 0;
            let mut out = vec![0xAA]; // appends after what is there
            let kept = filter_batch(&original, horizon, &mut out, |_| {
                i += 1;
                mask[i - 1]
            });
            let expected: Vec<(i64, &Rec)> = recs
                .iter()
                .enumerate()
                .filter(|(i, _)| mask[*i])
                .map(|(i, r)| (100 + i as i64, r))
                .collect();
            prop_assert_eq!(kept, expected.len());
            if kept == 0 {
                prop_assert_eq!(out.len(), 1);
                return Ok(());
            }
            let filtered = decode_batch(&out[1..]).unwrap();
            prop_assert_eq!(filtered.bytes.len(), out.len() - 1);
            prop_assert_eq!(filtered.header.base_offset, 100);
            prop_assert_eq!(filtered.header.last_offset_delta, original.header.last_offset_delta);
            prop_assert_eq!(filtered.header.delete_horizon(), horizon);
            let got: Vec<_> = filtered.records().collect();
            for (view, (offset, (ts, k, v))) in got.iter().zip(&expected) {
                prop_assert_eq!(100 + i64::from(view.offset_delta), *offset);
                prop_assert_eq!(filtered.header.base_timestamp + view.timestamp_delta, *ts);
                prop_assert_eq!(view.key, k.as_deref());
                prop_assert_eq!(view.value, v.as_deref());
                prop_assert_eq!(view.headers.clone().collect::<Vec<_>>(), vec![("h", Some(&b"x"[..]))]);
            }
            let max = expected.iter().map(|(_, r)| r.0).max().unwrap();
            prop_assert_eq!(filtered.header.max_timestamp, max);
        }
    }

    #[test]
    fn keeping_everything_without_a_horizon_copies_the_batch() {
        let bytes = batch_of(&[
            (5, Some(b"a".to_vec()), None),
            (9, None, Some(b"v".to_vec())),
        ]);
        let batch = decode_batch(&bytes).unwrap();
        let mut out = Vec::new();
        assert_eq!(filter_batch(&batch, None, &mut out, |_| true), 2);
        assert_eq!(out, bytes);
    }

    #[test]
    fn an_existing_horizon_is_kept() {
        let bytes = batch_of(&[
            (5, Some(b"a".to_vec()), None),
            (9, Some(b"b".to_vec()), None),
        ]);
        let batch = decode_batch(&bytes).unwrap();
        let mut once = Vec::new();
        filter_batch(&batch, Some(1_000), &mut once, |_| true);
        let once = decode_batch(&once).unwrap();
        assert_eq!(once.header.delete_horizon(), Some(1_000));
        let mut twice = Vec::new();
        filter_batch(&once, Some(2_000), &mut twice, |v| v.key == Some(b"b"));
        let twice = decode_batch(&twice).unwrap();
        assert_eq!(twice.header.delete_horizon(), Some(1_000));
        let r = twice.records().next().unwrap();
        assert_eq!(twice.header.base_timestamp + r.timestamp_delta, 9);
    }

    #[test]
    fn a_horizon_that_overflows_a_delta_is_not_set() {
        let bytes = batch_of(&[(-1_000, Some(b"a".to_vec()), None)]);
        let batch = decode_batch(&bytes).unwrap();
        let mut out = Vec::new();
        assert_eq!(filter_batch(&batch, Some(i64::MAX), &mut out, |_| true), 1);
        let b = decode_batch(&out).unwrap();
        assert_eq!(b.header.delete_horizon(), None);
    }
}
