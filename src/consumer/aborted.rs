//! What a `read_committed` consumer drops from a read: the batches of aborted transactions,
//! found with the Kafka consumer's algorithm (`CompletedFetch.nextFetchedRecord`,
//! `clients/src/main/java/org/apache/kafka/clients/consumer/internals/CompletedFetch.java`).
//!
//! The log hands the read the aborted transactions that overlap it. Taken in order of first
//! offset, a transaction's producer joins the aborted set once a batch with a producer id
//! reaches (by its last offset) the transaction's first offset; while in the set, that
//! producer's transactional batches are dropped; its ABORT marker takes it out again. Control batches are never shown to the application in either mode.
//!
//! Invariant: only batches are dropped, never reordered, and the read's next offset is kept,
//! so the position moves past what was dropped.

use std::collections::HashSet;

use crate::codec::{Batch, ControlRecordType};
use crate::log::{AbortedTxn, Records};

/// `records` without the batches of the `aborted` transactions.
pub(crate) fn drop_aborted(records: Records, mut aborted: Vec<AbortedTxn>) -> Records {
    if aborted.is_empty() {
        return records;
    }
    aborted.sort_by_key(|a| a.first_offset);
    let mut queue = aborted.into_iter().peekable();
    let mut producers: HashSet<i64> = HashSet::new();
    records.retain_batches(|batch| {
        let h = &batch.header;
        if h.producer_id < 0 {
            return true;
        }
        // Kafka's consumeAbortedTransactionsUpTo(batch.lastOffset).
        while let Some(a) = queue.next_if(|a| a.first_offset <= h.last_offset()) {
            producers.insert(a.producer_id);
        }
        if is_abort_marker(batch) {
            producers.remove(&h.producer_id);
            return true;
        }
        !(h.is_transactional() && producers.contains(&h.producer_id))
    })
}

/// Whether `batch` is a control batch whose first record is an ABORT marker.
fn is_abort_marker(batch: &Batch<'_>) -> bool {
    if !batch.header.is_control() {
        return false;
    }
    let Some(record) = batch.records().next() else {
        return false;
    };
    record
        .key
        .is_some_and(|k| ControlRecordType::parse_key(k) == Ok(ControlRecordType::Abort))
}
