//! Metrics: snapshots of counters with Kafka's metric names, groups and meanings.
//!
//! [`Producer::metrics`](crate::Producer::metrics), [`Consumer::metrics`](crate::Consumer::metrics),
//! [`Partition::metrics`](crate::Partition::metrics),
//! [`TopicDescription::metrics`](crate::TopicDescription::metrics) and
//! [`GroupDescription::metrics`](crate::GroupDescription::metrics) each return a [`Metrics`]: a
//! list of ([`MetricName`], value) pairs, as Kafka's `metrics()` returns `MetricName` →
//! `KafkaMetric`. A snapshot is a copy; it does not change as the client goes on.
//!
//! # What "rate" and "avg" mean here
//!
//! Kafka's rates and averages are windowed (two samples of 30 s by default). embroker keeps
//! only monotonic totals (atomic counters, no lock, no allocation) and computes at snapshot
//! time:
//!
//! - `*-total`: the count since the client was created;
//! - `*-rate`: that total divided by the seconds since the client was created (a lifetime
//!   rate: for the rate over an interval, subtract two snapshots' totals and divide by the
//!   interval);
//! - `*-avg`: the sum of the measured values divided by their number, since creation
//!   (`0` before the first measure, where Kafka reports `NaN`);
//! - `*-max`: the largest value since creation (`0` before the first measure).
//!
//! Times are in milliseconds, as in Kafka.
//!
//! # Producer (group `producer-metrics`, tag `client-id`)
//!
//! Counted by the sender thread once per batch it writes: the sending threads pay nothing per
//! record (a send rejected before it is queued adds one to `record-error-total`).
//!
//! | Name | Kafka's meaning | How embroker measures it |
//! |---|---|---|
//! | `record-send-total`, `record-send-rate` | records sent | records of the batches the sender thread wrote (appended or failed) |
//! | `record-error-total`, `record-error-rate` | record sends that resulted in errors | records of batches whose append (or fsync under `acks=all`) failed, plus sends rejected by `send` (too large, unknown topic, timeout, closed) |
//! | `batch-size-avg`, `batch-size-max` | bytes per partition per request | bytes of each batch as encoded (uncompressed), header included |
//! | `compression-rate-avg` | compressed size / uncompressed size of batches | the same ratio per batch (1 without compression) |
//! | `records-per-request-avg` | records per produce request | records per round of the sender thread (one round writes every batch that was due) |
//! | `request-total`, `request-rate` | produce requests sent | rounds of the sender thread |
//! | `request-latency-avg`, `request-latency-max` | produce request latency | from a round's start to each of its batches' completion: the append, and the fsync under `acks=all` |
//! | `record-queue-time-avg`, `record-queue-time-max` | time batches spend in the accumulator | from a batch's creation to the round that writes it |
//! | `buffer-total-bytes` | `buffer.memory` | `buffer.memory` |
//! | `buffer-available-bytes` | buffer memory not in use | `buffer.memory` minus the bytes held by batches not yet completed |
//!
//! # Consumer (tag `client-id`)
//!
//! The consumer is used by one thread at a time, so these are plain fields updated once per
//! poll or commit, never per record.
//!
//! Group `consumer-fetch-manager-metrics`:
//!
//! | Name | Kafka's meaning | How embroker measures it |
//! |---|---|---|
//! | `records-consumed-total`, `records-consumed-rate` | records consumed | records returned by `poll` |
//! | `bytes-consumed-total`, `bytes-consumed-rate` | bytes consumed | bytes of the stored batches `poll` has handed out, each counted once its last record is handed out |
//! | `fetch-total`, `fetch-rate` | fetch requests | reads of the assigned partitions by `poll` (one per pass over them) |
//! | `fetch-latency-avg`, `fetch-latency-max` | fetch request latency | time of one such pass (waiting for records is not counted) |
//! | `records-lag-max` | the largest lag in records of any partition | at the last `poll` that read, the largest `log end offset − position` over the assigned partitions |
//!
//! Group `consumer-coordinator-metrics`:
//!
//! | Name | Kafka's meaning | How embroker measures it |
//! |---|---|---|
//! | `commit-total`, `commit-rate` | offset commits | commits that wrote offsets (sync, async and auto; failed ones included) |
//! | `commit-latency-avg`, `commit-latency-max` | commit request latency | time of each such commit, its fsync included for `commit_sync` |
//! | `assigned-partitions` | partitions currently assigned | partitions currently assigned (by `assign` or the group) |
//! | `rebalance-total`, `rebalance-rate-per-hour` | rebalances this member took part in | assignments this member received from its group |
//!
//! # Partitions (group `kafka.log`, tags `topic`, `partition`)
//!
//! The broker's `kafka.log:type=Log` gauges, read when the snapshot is taken:
//!
//! | Name | Kafka's JMX name | Meaning |
//! |---|---|---|
//! | `log-start-offset` | `LogStartOffset` | the first offset still in the log |
//! | `log-end-offset` | `LogEndOffset` | the offset the next record will get |
//! | `size` | `Size` | bytes of the partition's segments |
//! | `num-log-segments` | `NumLogSegments` | segments of the partition |
//!
//! # Groups (group `consumer-group-metrics`, tag `group`; per partition also `topic`, `partition`)
//!
//! What `kafka-consumer-groups.sh --describe` shows, as metrics, from the committed offsets at
//! the time of [`Broker::describe_group`](crate::Broker::describe_group): `records-lag`
//! (per partition with a commit: log end offset − committed offset), `records-lag-max` and
//! `records-lag-sum` over those partitions, `members`, and `assigned-partitions` (over all
//! members).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The name of a metric: its group, its name within the group, and its tags (Kafka's
/// `org.apache.kafka.common.MetricName`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MetricName {
    /// The group (`producer-metrics`, `consumer-fetch-manager-metrics`, `kafka.log`, ...).
    pub group: String,
    /// The name within the group (`record-send-rate`, ...).
    pub name: String,
    /// The tags (`client-id`, `topic`, `partition`, ...).
    pub tags: BTreeMap<String, String>,
}

impl fmt::Display for MetricName {
    /// Kafka's `--print-metrics` form: `group:name:{tag=value, ...}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{{", self.group, self.name)?;
        for (i, (k, v)) in self.tags.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}={v}")?;
        }
        f.write_str("}")
    }
}

/// One metric of a snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    /// Its name.
    pub name: MetricName,
    /// Its value when the snapshot was taken.
    pub value: f64,
}

/// A snapshot of metrics, in the order they were added (see the [module docs](self) for every
/// name and what it means).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    metrics: Vec<Metric>,
}

impl Metrics {
    /// The value of the first metric called `name` (in any group, with any tags).
    pub fn get(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|m| m.name.name == name)
            .map(|m| m.value)
    }

    /// The value of the metric `group`/`name` whose tags include every one of `tags`.
    pub fn find(&self, group: &str, name: &str, tags: &[(&str, &str)]) -> Option<f64> {
        self.metrics
            .iter()
            .find(|m| {
                m.name.group == group
                    && m.name.name == name
                    && tags
                        .iter()
                        .all(|(k, v)| m.name.tags.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|m| m.value)
    }

    /// Every metric, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Metric> {
        self.metrics.iter()
    }

    /// Number of metrics.
    pub fn len(&self) -> usize {
        self.metrics.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty()
    }

    /// Adds the metrics of `other` after these.
    pub fn extend(&mut self, other: Metrics) {
        self.metrics.extend(other.metrics);
    }

    pub(crate) fn push(&mut self, group: &str, name: &str, tags: &Tags, value: f64) {
        self.metrics.push(Metric {
            name: MetricName {
                group: group.to_string(),
                name: name.to_string(),
                tags: tags.clone(),
            },
            value,
        });
    }
}

impl<'a> IntoIterator for &'a Metrics {
    type Item = &'a Metric;
    type IntoIter = std::slice::Iter<'a, Metric>;

    fn into_iter(self) -> Self::IntoIter {
        self.metrics.iter()
    }
}

impl fmt::Display for Metrics {
    /// One metric a line, `group:name:{tags} : value`, as Kafka's `--print-metrics`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for m in &self.metrics {
            writeln!(f, "{} : {}", m.name, m.value)?;
        }
        Ok(())
    }
}

/// Tags of a metric.
pub(crate) type Tags = BTreeMap<String, String>;

/// Tags from pairs.
pub(crate) fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

/// Pushes the `kafka.log` gauges of one partition.
pub(crate) fn push_log(
    out: &mut Metrics,
    topic: &str,
    partition: i32,
    (start, end, size, segments): (i64, i64, u64, usize),
) {
    let tags = tags(&[("topic", topic), ("partition", &partition.to_string())]);
    out.push("kafka.log", "log-start-offset", &tags, start as f64);
    out.push("kafka.log", "log-end-offset", &tags, end as f64);
    out.push("kafka.log", "size", &tags, size as f64);
    out.push("kafka.log", "num-log-segments", &tags, segments as f64);
}

/// Milliseconds of `nanos` nanoseconds, as Kafka reports latencies.
pub(crate) fn ms(nanos: f64) -> f64 {
    nanos / 1e6
}

/// Nanoseconds of `d`, saturated.
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// `total` per second over `elapsed` (0 over no time).
pub(crate) fn rate(total: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        total as f64 / secs
    } else {
        0.0
    }
}

/// `sum / count`, 0 when there is no measure.
pub(crate) fn avg(sum: u64, count: u64) -> f64 {
    if count == 0 {
        0.0
    } else {
        sum as f64 / count as f64
    }
}

/// A monotonic count, added to with one relaxed atomic add.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Measures of one quantity: their count, sum and maximum (three relaxed atomic operations a
/// measure). Kafka's `Avg` and `Max` stats on one sensor.
#[derive(Debug, Default)]
pub(crate) struct Stat {
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

impl Stat {
    pub(crate) fn record(&self, value: u64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
        self.max.fetch_max(value, Ordering::Relaxed);
    }

    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub(crate) fn avg(&self) -> f64 {
        // Read separately: a measure racing with the snapshot may be half counted.
        avg(self.sum.load(Ordering::Relaxed), self.count())
    }

    pub(crate) fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }
}

/// Single-threaded measures (the consumer's): count, sum and maximum.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LocalStat {
    pub(crate) count: u64,
    pub(crate) sum: u64,
    pub(crate) max: u64,
}

impl LocalStat {
    pub(crate) fn record(&mut self, value: u64) {
        self.count += 1;
        self.sum = self.sum.saturating_add(value);
        self.max = self.max.max(value);
    }

    pub(crate) fn avg(&self) -> f64 {
        avg(self.sum, self.count)
    }
}

/// When a client was created, for its lifetime rates.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Since(Instant);

impl Since {
    pub(crate) fn now() -> Since {
        Since(Instant::now())
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_keeps_count_average_and_maximum() {
        let s = Stat::default();
        assert_eq!(s.avg(), 0.0);
        s.record(10);
        s.record(30);
        assert_eq!(s.count(), 2);
        assert_eq!(s.avg(), 20.0);
        assert_eq!(s.max(), 30);
    }

    #[test]
    fn a_name_prints_as_kafka_prints_it() {
        let name = MetricName {
            group: "producer-metrics".into(),
            name: "record-send-rate".into(),
            tags: tags(&[("client-id", "p1")]),
        };
        assert_eq!(
            name.to_string(),
            "producer-metrics:record-send-rate:{client-id=p1}"
        );
    }

    #[test]
    fn rates_over_no_time_are_zero() {
        assert_eq!(rate(5, Duration::ZERO), 0.0);
        assert_eq!(rate(5, Duration::from_secs(2)), 2.5);
    }
}
