//! The idempotent producer's sequence numbers: per partition, the sequence of the next record
//! this producer id and epoch append (Kafka's `TransactionManager` sequence bookkeeping,
//! `clients/.../producer/internals/TransactionManager.java`).
//!
//! Owned by the sender thread alone (no lock): it stamps each batch with the producer id, epoch
//! and the partition's next sequence just before the batch is appended, in append order, and
//! moves the sequence past the batch's records only when the append succeeded. A batch whose
//! append failed wrote nothing, so the next batch reuses its sequence and the log sees no gap.
//!
//! Invariant: for one (producer id, epoch) and partition, the base sequences stamped on
//! successfully appended batches are consecutive (each the previous plus its record count,
//! wrapping to 0 after `i32::MAX` as Kafka's `DefaultRecordBatch.incrementSequence`); a new
//! epoch or producer id starts every partition at 0.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use crate::codec::ProducerFields;
use crate::log::PartitionLog;

/// The next sequence per partition for one producer id and epoch.
#[derive(Default)]
pub(crate) struct Sequences {
    owner: Option<(i64, i16)>,
    /// By the log's address. The `Weak` keeps the address from being reused while listed
    /// (an allocation lives while a weak reference does) without keeping a deleted topic's
    /// log, and its files, open.
    next: HashMap<usize, (Weak<PartitionLog>, i32)>,
}

impl Sequences {
    /// The fields to stamp on the next batch for `log`. Resets every partition when the
    /// producer id or epoch changed (a new epoch starts at sequence 0).
    pub(crate) fn fields(
        &mut self,
        producer_id: i64,
        epoch: i16,
        log: &Arc<PartitionLog>,
    ) -> ProducerFields {
        if self.owner != Some((producer_id, epoch)) {
            self.next.clear();
            self.owner = Some((producer_id, epoch));
        }
        let key = Arc::as_ptr(log) as usize;
        let base_sequence = self.next.get(&key).map_or(0, |(_, s)| *s);
        ProducerFields {
            producer_id,
            producer_epoch: epoch,
            base_sequence,
        }
    }

    /// Moves `log`'s sequence past a batch of `records` appended with `fields`.
    pub(crate) fn appended(
        &mut self,
        log: &Arc<PartitionLog>,
        fields: ProducerFields,
        records: i32,
    ) {
        let key = Arc::as_ptr(log) as usize;
        let next = increment(fields.base_sequence, records);
        self.next
            .entry(key)
            .and_modify(|(_, s)| *s = next)
            .or_insert_with(|| (Arc::downgrade(log), next));
    }
}

/// `sequence + increment`, wrapping to 0 after `i32::MAX` (Kafka's
/// `DefaultRecordBatch.incrementSequence`).
pub(crate) fn increment(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wraps_as_kafka() {
        assert_eq!(increment(0, 5), 5);
        assert_eq!(increment(i32::MAX, 1), 0);
        assert_eq!(increment(i32::MAX - 1, 3), 1);
        assert_eq!(increment(i32::MAX - 4, 5), 0);
    }

    proptest! {
        /// The sum of increments, modulo 2^31: what a reader computing sequences expects.
        #[test]
        fn increments_add_up_modulo_2_31(start in 0..=i32::MAX, steps in prop::collection::vec(1..=1000i32, 0..50)) {
            let mut s = start;
            let mut total = i64::from(start);
            for step in steps {
                s = increment(s, step);
                total += i64::from(step);
                prop_assert!(s >= 0);
                prop_assert_eq!(i64::from(s), total % (i64::from(i32::MAX) + 1));
            }
        }
    }
}
