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
//! As in Kafka, rates, averages and maxes are windowed: each is a `SampledStat` over the last
//! `metrics.num.samples` samples (default 2) of `metrics.sample.window.ms` each (default
//! 30000), keys of [`ProducerConfig`](crate::ProducerConfig) and
//! [`ConsumerConfig`](crate::ConsumerConfig). Time is the broker's clock
//! ([`BrokerBuilder::clock`](crate::BrokerBuilder::clock)), so a
//! [`ManualClock`](crate::ManualClock) moves the windows too.
//!
//! - `*-total`: the count since the client was created (cumulative, never windowed);
//! - `*-rate`: per second, the sum of the measures in the samples whose last measure is less
//!   than `num.samples × window` old, divided by the time from the oldest such sample's start
//!   to now, counted as at least `num.samples − 1` full windows (Kafka's `Rate.windowSize`, so
//!   that a young client's first burst is not a huge rate) and at least 1 ms. After
//!   `num.samples × window` without a measure, a rate is 0;
//! - `*-avg`: the mean of the measures in those samples;
//! - `*-max`: the largest measure in those samples.
//!
//! A sample starts with the first measure after the previous one is `window` old, and takes the
//! oldest's place once there are `num.samples + 1` (Kafka's current `SampledStat`: a sample
//! that began before the window but overlaps it still counts). Kafka's current
//! `Rate.windowSize` has no 1 ms floor; here it only keeps `num.samples = 1` from dividing by
//! 0.
//!
//! An average or maximum with no measure in the window is `NaN` in Kafka; embroker reports `0`
//! (and `compression-rate-avg` 1), so that values compare, sum and serialize (JSON has no
//! `NaN`).
//!
//! The counts behind the rates are measured per batch, poll pass or commit, never per record:
//! the producer's sender thread adds a round's measures together and records them under one
//! lock at the end of the round (sends pay nothing; the totals are atomics); the consumer's are
//! plain fields. Sends refused by `send` are counted with an atomic add and moved into the
//! error rate's window at the next round or snapshot, so they count from then.
//!
//! Times are in milliseconds, as in Kafka.
//!
//! # Producer (group `producer-metrics`, tag `client-id`)
//!
//! Counted by the sender thread once per batch it writes: the sending threads pay nothing per
//! record (a send rejected before it is queued adds one to `record-error-total`). The windows
//! are recorded at the end of the sender's round, after its batches complete: after
//! [`Producer::flush`](crate::Producer::flush) they include every record sent before it.
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
//! | `records-lag-max` | the largest lag in records of any partition | the largest `log end offset − position` over the assigned partitions, measured once per pass of `poll`, maximum over the window |
//!
//! Group `consumer-coordinator-metrics`:
//!
//! | Name | Kafka's meaning | How embroker measures it |
//! |---|---|---|
//! | `commit-total`, `commit-rate` | offset commits | commits that wrote offsets (sync, async and auto; failed ones included) |
//! | `commit-latency-avg`, `commit-latency-max` | commit request latency | time of each such commit, its fsync included for `commit_sync` |
//! | `assigned-partitions` | partitions currently assigned | partitions currently assigned (by `assign` or the group) |
//! | `rebalance-total`, `rebalance-rate-per-hour` | rebalances this member took part in | assignments this member received from its group (the rate: per hour over the window) |
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
use std::time::Duration;

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

/// Kafka's `MetricConfig` for windowed stats: `metrics.num.samples` samples of
/// `metrics.sample.window.ms` each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    /// Length of one sample, in milliseconds (`metrics.sample.window.ms`).
    pub(crate) window_ms: i64,
    /// Samples kept (`metrics.num.samples`), at least 1.
    pub(crate) samples: usize,
}

impl Window {
    /// From the config's values (a sample count below 1 is taken as 1, a negative window as 0).
    pub(crate) fn new(window_ms: i64, samples: u32) -> Window {
        Window {
            window_ms: window_ms.max(0),
            samples: usize::try_from(samples).unwrap_or(usize::MAX).max(1),
        }
    }

    /// Age from which a sample no longer counts (Kafka's `samples × timeWindowMs`).
    fn expire_ms(&self) -> i64 {
        i64::try_from(self.samples)
            .unwrap_or(i64::MAX)
            .saturating_mul(self.window_ms)
    }
}

/// Measures added together before they are recorded: a round's batches, recorded at once
/// under one lock (they share the round's timestamp, hence one sample).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Agg {
    count: u64,
    sum: f64,
    max: f64,
}

impl Agg {
    /// Adds one measure.
    pub(crate) fn add(&mut self, value: f64) {
        self.max = if self.count == 0 {
            value
        } else {
            self.max.max(value)
        };
        self.count += 1;
        self.sum += value;
    }

    /// The sum of the measures.
    pub(crate) fn sum(&self) -> f64 {
        self.sum
    }
}

/// One sample of a [`Sampled`]: the measures recorded from `start_ms` on, the last at
/// `last_event_ms`.
#[derive(Clone, Copy, Debug)]
struct Sample {
    start_ms: i64,
    last_event_ms: i64,
    count: u64,
    sum: f64,
    max: f64,
}

impl Sample {
    fn new(start_ms: i64) -> Sample {
        Sample {
            start_ms,
            last_event_ms: start_ms,
            count: 0,
            sum: 0.0,
            max: 0.0,
        }
    }
}

/// Kafka's `SampledStat`, with the `Rate`, `WindowedCount`/`WindowedSum`, `Avg` and `Max`
/// stats read from the same samples (as Kafka's trunk has them). Recording moves to the
/// next sample when the current one started `window_ms` ago, keeping `samples + 1` of them
/// (the oldest reused); reading ignores a sample whose last measure is `samples × window_ms`
/// old or older, as Kafka's `purgeObsoleteSamples` resets it (a sample that overlaps the
/// monitored window is kept, even if it started before it).
///
/// Not synchronized: the producer keeps its own under a lock taken once per sender round, the
/// consumer as a plain field.
#[derive(Clone, Debug, Default)]
pub(crate) struct Sampled {
    samples: Vec<Sample>,
    current: usize,
}

impl Sampled {
    /// Records one measure at `now_ms`.
    pub(crate) fn record(&mut self, w: Window, value: f64, now_ms: i64) {
        let mut agg = Agg::default();
        agg.add(value);
        self.record_agg(w, agg, now_ms);
    }

    /// Records measures added together, all at `now_ms` (nothing if there are none).
    pub(crate) fn record_agg(&mut self, w: Window, agg: Agg, now_ms: i64) {
        if agg.count == 0 {
            return;
        }
        if self.samples.is_empty() {
            self.samples.push(Sample::new(now_ms));
            self.current = 0;
        }
        let complete = self
            .samples
            .get(self.current)
            .is_none_or(|s| now_ms.saturating_sub(s.start_ms) >= w.window_ms);
        if complete {
            // Kafka keeps one sample more than `samples` (see `live`).
            self.current = (self.current + 1) % w.samples.saturating_add(1);
            if self.current >= self.samples.len() {
                self.samples.push(Sample::new(now_ms));
                self.current = self.samples.len() - 1;
            } else if let Some(s) = self.samples.get_mut(self.current) {
                *s = Sample::new(now_ms);
            }
        }
        if let Some(s) = self.samples.get_mut(self.current) {
            s.max = if s.count == 0 {
                agg.max
            } else {
                s.max.max(agg.max)
            };
            s.count += agg.count;
            s.sum += agg.sum;
            s.last_event_ms = now_ms;
        }
    }

    /// The samples still counted at `now_ms`.
    fn live(&self, w: Window, now_ms: i64) -> impl Iterator<Item = &Sample> {
        let expire = w.expire_ms();
        self.samples
            .iter()
            .filter(move |s| now_ms.saturating_sub(s.last_event_ms) < expire)
    }

    /// Kafka's `Rate.windowSize`: from the oldest sample's start to `now_ms`, counted as at
    /// least `samples − 1` full windows (so that a young stat does not report a burst as a
    /// huge rate), and at least 1 ms. An obsolete sample counts as starting now.
    fn window_size_ms(&self, w: Window, now_ms: i64) -> i64 {
        let expire = w.expire_ms();
        let oldest = self
            .samples
            .iter()
            .map(|s| {
                if now_ms.saturating_sub(s.last_event_ms) < expire {
                    s.start_ms
                } else {
                    now_ms
                }
            })
            .min()
            .unwrap_or(now_ms);
        let mut elapsed = now_ms.saturating_sub(oldest);
        let full = if w.window_ms > 0 {
            elapsed / w.window_ms
        } else {
            i64::MAX
        };
        let min_full = i64::try_from(w.samples - 1).unwrap_or(i64::MAX);
        if full < min_full {
            elapsed = elapsed.saturating_add((min_full - full).saturating_mul(w.window_ms));
        }
        elapsed.max(1)
    }

    /// Kafka's `Rate` over `WindowedSum`: the sum of the measures of the live samples per
    /// second.
    pub(crate) fn rate(&self, w: Window, now_ms: i64) -> f64 {
        let sum: f64 = self.live(w, now_ms).map(|s| s.sum).sum();
        sum * 1000.0 / self.window_size_ms(w, now_ms) as f64
    }

    /// Kafka's `Rate` over `WindowedCount`: the number of measures of the live samples per
    /// second.
    pub(crate) fn count_rate(&self, w: Window, now_ms: i64) -> f64 {
        let count: u64 = self.live(w, now_ms).map(|s| s.count).sum();
        count as f64 * 1000.0 / self.window_size_ms(w, now_ms) as f64
    }

    /// Kafka's `Avg`: the mean of the live samples' measures; `None` without one (Kafka's
    /// `NaN`).
    pub(crate) fn avg(&self, w: Window, now_ms: i64) -> Option<f64> {
        let (count, sum) = self
            .live(w, now_ms)
            .fold((0u64, 0.0), |(c, s), x| (c + x.count, s + x.sum));
        (count > 0).then(|| sum / count as f64)
    }

    /// Kafka's `Max`: the largest of the live samples' measures; `None` without one (Kafka's
    /// `NaN`).
    pub(crate) fn max(&self, w: Window, now_ms: i64) -> Option<f64> {
        self.live(w, now_ms)
            .filter(|s| s.count > 0)
            .map(|s| s.max)
            .reduce(f64::max)
    }
}

/// An average or maximum as reported: `0` when there was no measure in the window (Kafka
/// reports `NaN`; see the [module docs](self)).
pub(crate) fn or_zero(value: Option<f64>) -> f64 {
    value.unwrap_or(0.0)
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

#[cfg(test)]
mod tests {
    use super::*;

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

    const W: Window = Window {
        window_ms: 1000,
        samples: 2,
    };

    #[test]
    fn an_empty_stat_has_no_average_or_maximum_and_no_rate() {
        let s = Sampled::default();
        assert_eq!(s.avg(W, 0), None);
        assert_eq!(s.max(W, 0), None);
        assert_eq!(s.rate(W, 0), 0.0);
    }

    #[test]
    fn a_young_rate_counts_at_least_samples_minus_one_windows() {
        let mut s = Sampled::default();
        s.record(W, 10.0, 0);
        // 10 over max(0 ms, 1 full window of 1 s): Kafka's rule for a window not yet full.
        assert_eq!(s.rate(W, 0), 10.0);
        assert_eq!(s.count_rate(W, 0), 1.0);
        // Half a second later: 10 over 1 s still (the elapsed 0.5 s + the 1 s minimum).
        assert_eq!(s.rate(W, 500), 10.0 / 1.5);
    }

    #[test]
    fn samples_roll_and_expire() {
        let mut s = Sampled::default();
        s.record(W, 10.0, 0);
        s.record(W, 30.0, 500);
        assert_eq!(s.avg(W, 500), Some(20.0));
        assert_eq!(s.max(W, 500), Some(30.0));
        // A second sample from 1000 on.
        s.record(W, 2.0, 1000);
        assert_eq!(s.avg(W, 1500), Some(14.0));
        assert_eq!(s.rate(W, 1500), 42.0 / 1.5);
        // A third sample: the first, whose last measure (500) is less than 2 windows old, is
        // still counted.
        s.record(W, 4.0, 2100);
        assert_eq!(s.avg(W, 2100), Some(11.5));
        assert_eq!(s.max(W, 2100), Some(30.0));
        // Two windows after its last measure, 10 and 30 are forgotten; the rate runs from the
        // second sample's start.
        assert_eq!(s.avg(W, 2500), Some(3.0));
        assert_eq!(s.max(W, 2500), Some(4.0));
        assert_eq!(s.rate(W, 2500), 6.0 / 1.5);
        // A fourth takes the first's place (3 samples are kept for 2); the second's last
        // measure (1000) is now 2 windows old.
        s.record(W, 8.0, 3100);
        assert_eq!(s.samples.len(), 3);
        assert_eq!(s.avg(W, 3100), Some(6.0));
        // Two windows after the last measure, nothing is left.
        assert_eq!(s.avg(W, 5100), None);
        assert_eq!(s.max(W, 5100), None);
        assert_eq!(s.rate(W, 5100), 0.0);
    }

    #[test]
    fn measures_added_together_record_as_many() {
        let mut s = Sampled::default();
        let mut agg = Agg::default();
        agg.add(5.0);
        agg.add(1.0);
        s.record_agg(W, agg, 0);
        s.record_agg(W, Agg::default(), 0);
        assert_eq!(s.count_rate(W, 0), 2.0);
        assert_eq!(s.max(W, 0), Some(5.0));
        assert_eq!(s.avg(W, 0), Some(3.0));
    }
}
