//! The broker's log-cleaner thread (Kafka's `LogCleaner`) and what one round of it reports.
//!
//! One named thread per broker (`embroker-cleaner`), started with the first compacted topic
//! (at open, or when one is created or altered to compact) unless the builder turns it off. Every `log.cleaner.backoff.ms` it runs a round: the partitions whose
//! cleaning is due, dirtiest first, one pass each (see `log::cleaner`). Like the tasks thread
//! it holds only a weak reference to the broker; closing the broker cancels a pass in flight
//! (it stops before its commit and leaves the log as it was) and joins the thread.

use std::sync::Weak;
use std::time::Duration;

use super::broker::BrokerInner;
use super::tasks::Background;
use crate::error::Result;
use crate::types::TopicPartition;

/// What one round of the log cleaner did ([`Broker::run_log_cleaner`](crate::Broker::run_log_cleaner)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CleanerReport {
    /// Partitions a pass cleaned.
    pub partitions_cleaned: usize,
    /// Partitions whose pass failed; each one's error is in its
    /// [`PartitionDescription::cleaner_error`](crate::PartitionDescription::cleaner_error), which
    /// says whether the cleaner retries it or skips it until the broker is reopened.
    pub partitions_failed: Vec<TopicPartition>,
    /// Bytes of log read.
    pub bytes_read: u64,
    /// Bytes of cleaned segments written.
    pub bytes_written: u64,
    /// Records examined while rewriting segments.
    pub records_read: u64,
    /// Records removed: superseded by a later record with the same key, tombstones past their
    /// delete horizon, and records without a key.
    pub records_removed: u64,
    /// Old segments replaced by cleaned ones.
    pub segments_replaced: usize,
}

/// Starts the cleaner thread: a round every `backoff`.
pub(crate) fn start(broker: Weak<BrokerInner>, backoff: Duration) -> Result<Background> {
    Background::spawn("embroker-cleaner", broker, backoff, |broker| {
        // Failures are kept per partition (describe_topic) and logged by the round.
        let _ = broker.run_log_cleaner();
    })
}
