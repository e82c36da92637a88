//! Metrics snapshots (`Producer::metrics`, `Consumer::metrics`, `Partition::metrics`,
//! `TopicDescription::metrics`, `GroupDescription::metrics`): Kafka's names, in Kafka's groups,
//! with totals that match what was done.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use embroker::{
    Broker, ConsumerConfig, ManualClock, OffsetReset, ProducerConfig, ProducerRecord, Record,
    TopicConfig, TopicPartition,
};

const T0: i64 = 1_700_000_000_000;

/// A broker on a manual clock, with topic `t` of one partition.
fn broker_on(clock: &Arc<ManualClock>) -> Broker {
    let broker = Broker::builder()
        .log_cleaner(false)
        .clock(clock.clone())
        .open_temporary()
        .unwrap();
    broker
        .create_topic("t", TopicConfig::default().partitions(1))
        .unwrap();
    broker
}

fn broker_with(topic: &str, partitions: i32) -> Broker {
    let broker = Broker::temporary().unwrap();
    broker
        .create_topic(topic, TopicConfig::default().partitions(partitions))
        .unwrap();
    broker
}

/// N records sent, some refused as too large: the totals count both, the batch sizes fit in
/// what was sent, and every metric is in `producer-metrics` with the client id.
#[test]
fn producer_totals_count_sent_and_failed_records() {
    let broker = broker_with("t", 2);
    let producer = broker
        .producer(
            ProducerConfig::default()
                .client_id("p1")
                .max_request_size(1_000),
        )
        .unwrap();
    let sent = 250;
    let mut refused = 0;
    for i in 0..sent + 3 {
        let value = if i % 100 == 7 {
            vec![b'x'; 2_000]
        } else {
            vec![b'v'; 20]
        };
        match producer.send(ProducerRecord::new("t", value).key(format!("k{i}"))) {
            Ok(_) => {}
            Err(_) => refused += 1,
        }
    }
    assert_eq!(refused, 3);
    producer.flush().unwrap();
    let m = producer.metrics();
    assert_eq!(m.get("record-send-total"), Some(f64::from(sent)));
    assert_eq!(m.get("record-error-total"), Some(3.0));
    assert!(m.get("record-send-rate").unwrap() > 0.0);
    assert!(m.get("record-error-rate").unwrap() > 0.0);
    let stored: i64 = (0..2)
        .map(|p| {
            broker
                .topic("t")
                .unwrap()
                .partition(p)
                .unwrap()
                .log_end_offset()
        })
        .sum();
    assert_eq!(stored, i64::from(sent));
    // Every batch holds at least one record of ~30 bytes and at most all of them, header
    // included (61 bytes).
    let bytes_sent_max = f64::from(sent) * 40.0 + 61.0;
    let avg = m.get("batch-size-avg").unwrap();
    let max = m.get("batch-size-max").unwrap();
    assert!(
        avg > 61.0 && avg <= max && max <= bytes_sent_max,
        "{avg} {max}"
    );
    let requests = m.get("request-total").unwrap();
    assert!(requests >= 1.0);
    let per_request = m.get("records-per-request-avg").unwrap();
    assert!((per_request * requests - f64::from(sent)).abs() < 1e-6);
    assert_eq!(m.get("compression-rate-avg"), Some(1.0));
    assert!(m.get("request-latency-max").unwrap() >= m.get("request-latency-avg").unwrap());
    assert_eq!(m.get("buffer-total-bytes"), Some(33_554_432.0));
    // Everything written and completed: the whole buffer is free again.
    assert_eq!(m.get("buffer-available-bytes"), Some(33_554_432.0));
    for metric in &m {
        assert_eq!(metric.name.group, "producer-metrics");
        assert_eq!(
            metric.name.tags.get("client-id").map(String::as_str),
            Some("p1")
        );
    }
    assert!(m
        .find(
            "producer-metrics",
            "record-send-total",
            &[("client-id", "p1")]
        )
        .is_some());
    producer.close().unwrap();
}

#[test]
fn compressed_batches_report_their_compression_rate() {
    let broker = broker_with("t", 1);
    let config = ProducerConfig::from_properties(&[("compression.type", "gzip")]).unwrap();
    let producer = broker.producer(config).unwrap();
    for _ in 0..100 {
        drop(
            producer
                .send(ProducerRecord::new("t", vec![b'a'; 200]))
                .unwrap(),
        );
    }
    producer.flush().unwrap();
    let rate = producer.metrics().get("compression-rate-avg").unwrap();
    assert!(rate > 0.0 && rate < 0.5, "{rate}");
    producer.close().unwrap();
}

/// Polls count records and bytes; lag-max is the end offset minus the position; commits are
/// counted and timed.
#[test]
fn consumer_totals_lag_and_commits() {
    let broker = broker_with("t", 2);
    let p0 = broker.topic("t").unwrap().partition(0).unwrap();
    let p1 = broker.topic("t").unwrap().partition(1).unwrap();
    let records: Vec<Record> = (0..10).map(|i| Record::new(format!("v{i}"))).collect();
    p0.append(&records).unwrap();
    p1.append(&records[..4]).unwrap();
    let mut consumer = broker
        .consumer(
            ConsumerConfig::default()
                .client_id("c1")
                .group_id("g")
                .enable_auto_commit(false)
                .auto_offset_reset(OffsetReset::Earliest)
                .max_poll_records(3),
        )
        .unwrap();
    let tp0 = TopicPartition::new("t", 0);
    let tp1 = TopicPartition::new("t", 1);
    consumer.assign(&[tp0.clone(), tp1.clone()]).unwrap();
    let before = consumer.metrics();
    assert_eq!(before.get("records-consumed-total"), Some(0.0));
    assert_eq!(before.get("commit-total"), Some(0.0));
    assert_eq!(before.get("assigned-partitions"), Some(2.0));

    let mut consumed = 0;
    for _ in 0..3 {
        consumed += consumer.poll(Duration::from_secs(1)).unwrap().count();
    }
    let m = consumer.metrics();
    assert_eq!(m.get("records-consumed-total"), Some(consumed as f64));
    assert!(m.get("records-consumed-rate").unwrap() > 0.0);
    // Bytes count as each stored batch is passed: none yet, each partition's one batch is
    // partly read.
    assert_eq!(m.get("bytes-consumed-total"), Some(0.0));
    assert!(m.get("fetch-total").unwrap() >= 3.0);
    let lag0 = p0.log_end_offset() - consumer.position(&tp0).unwrap();
    let lag1 = p1.log_end_offset() - consumer.position(&tp1).unwrap();
    // The largest lag of the passes in the window: at least the lag now.
    let lag_max = m.get("records-lag-max").unwrap();
    assert!(
        lag_max >= lag0.max(lag1) as f64 && lag_max <= 10.0,
        "{lag_max}"
    );
    assert!(lag0.max(lag1) > 0, "the test leaves records unread");

    consumer.commit_sync().unwrap();
    consumer.commit_sync().unwrap();
    let m = consumer.metrics();
    assert_eq!(
        m.find(
            "consumer-coordinator-metrics",
            "commit-total",
            &[("client-id", "c1")]
        ),
        Some(2.0)
    );
    assert!(m.get("commit-rate").unwrap() > 0.0);
    let (avg, max) = (
        m.get("commit-latency-avg").unwrap(),
        m.get("commit-latency-max").unwrap(),
    );
    assert!(avg > 0.0 && avg <= max, "{avg} {max}");
    assert!(m
        .find(
            "consumer-fetch-manager-metrics",
            "records-lag-max",
            &[("client-id", "c1")]
        )
        .is_some());

    // Reading everything: every record and byte counted (the lag going to 0 shows once the
    // earlier passes leave the window: `windowed_consumer_metrics_forget_old_passes`).
    while consumer.poll(Duration::from_millis(10)).unwrap().count() > 0 {}
    let m = consumer.metrics();
    assert_eq!(m.get("records-consumed-total"), Some(14.0));
    let stored = p0.metrics().get("size").unwrap() + p1.metrics().get("size").unwrap();
    assert_eq!(m.get("bytes-consumed-total"), Some(stored));
    consumer.close().unwrap();
}

#[test]
fn a_group_member_counts_its_rebalances() {
    let broker = broker_with("t", 2);
    let mut consumer = broker
        .consumer(ConsumerConfig::default().group_id("g"))
        .unwrap();
    consumer.subscribe(&["t"]).unwrap();
    consumer.poll(Duration::from_millis(50)).unwrap();
    let m = consumer.metrics();
    assert_eq!(m.get("rebalance-total"), Some(1.0));
    assert_eq!(m.get("assigned-partitions"), Some(2.0));
    consumer.close().unwrap();
}

/// A partition's `kafka.log` gauges are `describe_topic`'s figures.
#[test]
fn partition_metrics_equal_describe_topic() {
    let broker = Broker::temporary().unwrap();
    broker
        .create_topic(
            "t",
            TopicConfig::default().partitions(2).segment_bytes(1_024),
        )
        .unwrap();
    let p0 = broker.topic("t").unwrap().partition(0).unwrap();
    for i in 0..50 {
        p0.append(&[Record::new(vec![b'x'; 100]).key(format!("k{i}"))])
            .unwrap();
    }
    let d = broker.describe_topic("t").unwrap();
    let from_description = d.metrics();
    assert_eq!(from_description.len(), 8);
    for p in &d.partitions {
        let part = p.partition.to_string();
        let tags = [("topic", "t"), ("partition", part.as_str())];
        let of = |name: &str| from_description.find("kafka.log", name, &tags);
        assert_eq!(of("log-start-offset"), Some(p.log_start_offset as f64));
        assert_eq!(of("log-end-offset"), Some(p.log_end_offset as f64));
        assert_eq!(of("size"), Some(p.size_bytes as f64));
        assert_eq!(of("num-log-segments"), Some(p.segment_count as f64));
        let live = broker
            .topic("t")
            .unwrap()
            .partition(p.partition)
            .unwrap()
            .metrics();
        assert_eq!(live.iter().collect::<Vec<_>>(), {
            let mine: Vec<_> = from_description
                .iter()
                .filter(|m| m.name.tags.get("partition") == Some(&part))
                .collect();
            mine
        });
    }
    assert!(d.partitions[0].segment_count > 1, "the test rolls segments");
}

#[test]
fn group_metrics_are_the_lag_of_committed_offsets() {
    let broker = broker_with("t", 2);
    let p0 = broker.topic("t").unwrap().partition(0).unwrap();
    p0.append(&[Record::new("a"), Record::new("b"), Record::new("c")])
        .unwrap();
    let mut consumer = broker
        .consumer(
            ConsumerConfig::default()
                .group_id("g")
                .auto_offset_reset(OffsetReset::Earliest)
                .max_poll_records(1),
        )
        .unwrap();
    consumer.subscribe(&["t"]).unwrap();
    assert_eq!(consumer.poll(Duration::from_secs(1)).unwrap().count(), 1);
    consumer.commit_sync().unwrap();
    let d = broker.describe_group("g").unwrap();
    let m = d.metrics();
    assert_eq!(
        m.find(
            "consumer-group-metrics",
            "records-lag-max",
            &[("group", "g")]
        ),
        Some(2.0)
    );
    assert_eq!(m.get("records-lag-sum"), Some(2.0));
    assert_eq!(m.get("members"), Some(1.0));
    assert_eq!(m.get("assigned-partitions"), Some(2.0));
    assert_eq!(
        m.find(
            "consumer-group-metrics",
            "records-lag",
            &[("topic", "t"), ("partition", "0")]
        ),
        Some(2.0)
    );
    consumer.close().unwrap();
}

/// Rates, averages and maxes cover the last `metrics.num.samples` windows of
/// `metrics.sample.window.ms` (here 2 × 1 s of the broker's clock), as Kafka's `SampledStat`s:
/// a burst then idle shows the rates falling to 0 while the totals stay, and a later burst's
/// maximum does not remember the first.
#[test]
fn windowed_producer_metrics_forget_old_bursts() {
    let clock = ManualClock::new(T0);
    let broker = broker_on(&clock);
    let producer = broker
        .producer(
            ProducerConfig::default()
                .max_request_size(1_000)
                .metrics_sample_window_ms(1_000)
                .metrics_num_samples(2),
        )
        .unwrap();
    let sent: Vec<_> = (0..100)
        .map(|_| {
            producer
                .send(ProducerRecord::new("t", vec![b'x'; 500]))
                .unwrap()
        })
        .collect();
    assert!(producer
        .send(ProducerRecord::new("t", vec![b'x'; 2_000]))
        .is_err());
    for f in sent {
        f.wait().unwrap();
    }
    // The windows are recorded at the end of the sender's round, after its completions.
    producer.flush().unwrap();
    let m = producer.metrics();
    // Everything at T0: Kafka's rule counts a window not yet full as `num.samples − 1` full
    // windows, so 100 records over 1 s.
    assert_eq!(m.get("record-send-rate"), Some(100.0));
    assert_eq!(m.get("record-error-rate"), Some(1.0));
    let big_max = m.get("batch-size-max").unwrap();
    assert!(big_max > 500.0, "{big_max}");
    assert!(m.get("request-rate").unwrap() > 0.0);

    // Half a window on: the same records over 1.5 s.
    clock.advance_ms(500);
    let m = producer.metrics();
    assert_eq!(m.get("record-send-rate"), Some(100.0 / 1.5));

    // Both windows past: rates, averages and maxes are back to 0, the totals stay.
    clock.advance_ms(1_500);
    let m = producer.metrics();
    for name in [
        "record-send-rate",
        "record-error-rate",
        "request-rate",
        "batch-size-avg",
        "batch-size-max",
        "records-per-request-avg",
        "request-latency-avg",
        "request-latency-max",
        "record-queue-time-avg",
        "record-queue-time-max",
    ] {
        assert_eq!(m.get(name), Some(0.0), "{name}");
    }
    assert_eq!(m.get("compression-rate-avg"), Some(1.0));
    assert_eq!(m.get("record-send-total"), Some(100.0));
    assert_eq!(m.get("record-error-total"), Some(1.0));
    assert!(m.get("request-total").unwrap() >= 1.0);

    // A burst of small records: the maximum is theirs, not the first burst's.
    let sent: Vec<_> = (0..10)
        .map(|_| {
            producer
                .send(ProducerRecord::new("t", vec![b'y'; 10]))
                .unwrap()
        })
        .collect();
    for f in sent {
        f.wait().unwrap();
    }
    // The windows are recorded at the end of the sender's round, after its completions.
    producer.flush().unwrap();
    let m = producer.metrics();
    let small_max = m.get("batch-size-max").unwrap();
    assert!(small_max > 0.0 && small_max < 500.0, "{small_max}");
    assert_eq!(m.get("record-send-rate"), Some(10.0));
    assert_eq!(m.get("record-send-total"), Some(110.0));
    producer.close().unwrap();
}

/// The consumer's windowed metrics, on the broker's manual clock: the lag maximum, rates and
/// latencies forget the passes older than the windows.
#[test]
fn windowed_consumer_metrics_forget_old_passes() {
    let clock = ManualClock::new(T0);
    let broker = broker_on(&clock);
    let p0 = broker.topic("t").unwrap().partition(0).unwrap();
    let records: Vec<Record> = (0..10).map(|i| Record::new(format!("v{i}"))).collect();
    p0.append(&records).unwrap();
    let mut consumer = broker
        .consumer(
            ConsumerConfig::default()
                .group_id("g")
                .enable_auto_commit(false)
                .auto_offset_reset(OffsetReset::Earliest)
                .max_poll_records(4)
                .metrics_sample_window_ms(1_000)
                .metrics_num_samples(2),
        )
        .unwrap();
    let tp = TopicPartition::new("t", 0);
    consumer.assign(&[tp]).unwrap();
    let before = consumer.metrics();
    assert_eq!(before.get("records-lag-max"), Some(0.0));
    assert_eq!(before.get("fetch-latency-avg"), Some(0.0));

    assert_eq!(consumer.poll(Duration::from_secs(1)).unwrap().count(), 4);
    consumer.commit_sync().unwrap();
    let m = consumer.metrics();
    assert_eq!(m.get("records-consumed-rate"), Some(4.0));
    assert_eq!(m.get("records-lag-max"), Some(6.0));
    assert_eq!(m.get("commit-rate"), Some(1.0));

    // Two windows on, a second pass: only it counts.
    clock.advance_ms(2_000);
    assert_eq!(consumer.poll(Duration::from_secs(1)).unwrap().count(), 4);
    let m = consumer.metrics();
    assert_eq!(m.get("records-consumed-rate"), Some(4.0));
    assert_eq!(m.get("records-lag-max"), Some(2.0));
    assert_eq!(m.get("commit-rate"), Some(0.0));
    assert_eq!(m.get("commit-latency-max"), Some(0.0));
    assert_eq!(m.get("commit-total"), Some(1.0));

    // Idle for two more windows: rates and latencies 0, totals kept.
    clock.advance_ms(2_000);
    let m = consumer.metrics();
    for name in [
        "records-consumed-rate",
        "fetch-rate",
        "fetch-latency-avg",
        "fetch-latency-max",
        "records-lag-max",
        "commit-rate",
        "commit-latency-avg",
    ] {
        assert_eq!(m.get(name), Some(0.0), "{name}");
    }
    assert_eq!(m.get("records-consumed-total"), Some(8.0));
    assert!(m.get("fetch-total").unwrap() >= 2.0);
    consumer.close().unwrap();
}
