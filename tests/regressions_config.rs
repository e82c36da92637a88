//! Issue #15, defect 6: every setting and wait that takes a `Duration` or a count of
//! milliseconds accepts any value and saturates. `Duration::MAX` (and `i64::MAX` ms from
//! properties) means "never" or "wait without a deadline", never a panic; `Duration::ZERO`
//! means "do not wait" or, for the broker's periods, a config error naming the Kafka key.
//! Waits without a deadline are ended by another thread (an append, a wakeup, a close) so the
//! tests return.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use embroker::{
    Broker, ConsumerConfig, Error, ManualClock, ProducerConfig, ProducerRecord, Record,
    TopicConfig, TopicPartition,
};

/// Runs `f` on a thread and fails the test if it has not finished within `limit` (a wait that
/// should have ended, a hang), returning its result.
fn within<T: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(e) => panic!("{what}: no result within {limit:?} ({e})"),
    }
}

#[test]
fn broker_periods_of_duration_max_open_run_and_close() {
    let broker = within(
        "open with Duration::MAX periods",
        Duration::from_secs(20),
        || {
            Broker::builder()
                .retention_check_interval(Duration::MAX)
                .checkpoint_interval(Duration::MAX)
                .cleaner_backoff(Duration::MAX)
                .open_temporary()
        },
    )
    .expect("a broker opens with Duration::MAX periods");
    // A compacted topic starts the cleaner thread with its Duration::MAX backoff.
    broker
        .create_topic(
            "c",
            TopicConfig::default()
                .cleanup_policy(embroker::CleanupPolicy::Compact)
                .segment_bytes(1024),
        )
        .unwrap();
    let p = broker.topic("c").unwrap().partition(0).unwrap();
    for i in 0..50 {
        p.append(&[Record::new(vec![b'v'; 40]).key(format!("k{}", i % 5))])
            .unwrap();
    }
    // Let the tasks thread tick a few times with its far-off deadlines.
    std::thread::sleep(Duration::from_millis(250));
    broker.enforce_retention().unwrap();
    broker.run_log_cleaner().unwrap();
    p.flush().unwrap();
    // Closing stops both threads at once: none sleeps out its period.
    let started = Instant::now();
    within("close", Duration::from_secs(20), move || broker.close()).unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn broker_periods_of_zero_are_config_errors_naming_the_key() {
    type Setter = fn(&mut embroker::BrokerBuilder) -> &mut embroker::BrokerBuilder;
    let cases: [(&str, Setter); 3] = [
        ("log.retention.check.interval.ms", |b| {
            b.retention_check_interval(Duration::ZERO)
        }),
        ("log.flush.offset.checkpoint.interval.ms", |b| {
            b.checkpoint_interval(Duration::ZERO)
        }),
        ("log.cleaner.backoff.ms", |b| {
            b.cleaner_backoff(Duration::ZERO)
        }),
    ];
    for (key, set) in cases {
        let mut builder = Broker::builder();
        let err = set(&mut builder).open_temporary().unwrap_err();
        assert!(
            matches!(&err, Error::InvalidConfig { .. }) && err.to_string().contains(key),
            "{key}: {err}"
        );
    }
    // The smallest positive periods run.
    let broker = Broker::builder()
        .retention_check_interval(Duration::from_nanos(1))
        .checkpoint_interval(Duration::from_nanos(1))
        .cleaner_backoff(Duration::from_nanos(1))
        .open_temporary()
        .unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    broker.close().unwrap();
}

#[test]
fn wait_for_end_offset_past_duration_max_returns_on_append_and_on_close() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    let p = broker.topic("t").unwrap().partition(0).unwrap();

    // ZERO: an immediate answer either way.
    let started = Instant::now();
    assert!(!p.wait_for_end_offset_past(0, Duration::ZERO));
    assert!(started.elapsed() < Duration::from_secs(5));

    // MAX: returns true once another thread appends.
    let waiter = p.clone();
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        let _ = tx.send(waiter.wait_for_end_offset_past(0, Duration::MAX));
    });
    std::thread::sleep(Duration::from_millis(50));
    p.append(&[Record::new("r0")]).unwrap();
    let woke = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("wait_for_end_offset_past(MAX) returned after the append");
    assert!(woke);
    t.join().unwrap();
    assert!(p.wait_for_end_offset_past(0, Duration::ZERO));
    assert!(p.wait_for_end_offset_past(0, Duration::MAX));

    // MAX: returns false when the broker closes under it.
    let waiter = p.clone();
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        let _ = tx.send(waiter.wait_for_end_offset_past(5, Duration::MAX));
    });
    std::thread::sleep(Duration::from_millis(50));
    broker.close().unwrap();
    let woke = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("wait_for_end_offset_past(MAX) returned after close");
    assert!(!woke);
    t.join().unwrap();
}

#[test]
fn consumer_poll_duration_max_returns_on_a_record_and_on_wakeup() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    let mut consumer = broker
        .consumer(ConsumerConfig::default().auto_offset_reset(embroker::OffsetReset::Earliest))
        .unwrap();
    consumer.assign(&[TopicPartition::new("t", 0)]).unwrap();
    let started = Instant::now();
    assert_eq!(consumer.poll(Duration::ZERO).unwrap().count(), 0);
    assert!(started.elapsed() < Duration::from_secs(5));

    let p = broker.topic("t").unwrap().partition(0).unwrap();
    let appender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        p.append(&[Record::new("r0")]).unwrap();
    });
    let (consumer, n) = within("poll(MAX) with a record coming", Duration::from_secs(20), {
        move || {
            let n = consumer.poll(Duration::MAX).unwrap().count();
            (consumer, n)
        }
    });
    appender.join().unwrap();
    assert_eq!(n, 1);

    let mut consumer = consumer;
    let wakeup = consumer.wakeup_handle();
    let waker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        wakeup.wakeup();
    });
    let result = within(
        "poll(MAX) then wakeup",
        Duration::from_secs(20),
        move || consumer.poll(Duration::MAX).map(|r| r.count()),
    );
    waker.join().unwrap();
    assert!(matches!(result, Err(Error::Wakeup)), "{result:?}");
}

#[test]
fn send_future_waits_and_producer_ms_settings_of_i64_max() {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    // linger.ms and max.block.ms at i64::MAX: linger for ever (flush still sends), block for
    // ever for space (there is space).
    let config = ProducerConfig::from_properties(&[
        ("linger.ms", i64::MAX.to_string()),
        ("max.block.ms", i64::MAX.to_string()),
    ])
    .unwrap();
    let producer = broker.producer(config).unwrap();
    let future = producer.send(ProducerRecord::new("t", "v0")).unwrap();
    // ZERO: lingering, not sent yet, so an immediate timeout, and the future stays usable.
    match future.wait_timeout(Duration::ZERO) {
        Err(Error::Timeout { .. }) | Ok(_) => {}
        other => panic!("wait_timeout(ZERO): {other:?}"),
    }
    let flusher = producer.clone();
    let f = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        flusher.flush().unwrap();
    });
    let meta = within(
        "wait_timeout(MAX) until flush",
        Duration::from_secs(20),
        move || future.wait_timeout(Duration::MAX),
    )
    .unwrap();
    f.join().unwrap();
    assert_eq!(meta.offset, 0);
    within(
        "close with i64::MAX linger",
        Duration::from_secs(20),
        move || producer.close(),
    )
    .unwrap();
}

#[test]
fn topic_ms_settings_of_i64_max_and_a_clock_at_the_ends() {
    let clock = ManualClock::new(0);
    let broker = Broker::builder()
        .clock(clock.clone())
        .open_temporary()
        .unwrap();
    let max = i64::MAX.to_string();
    for policy in ["delete", "compact", "compact,delete"] {
        let cfg = TopicConfig::from_properties(&[
            ("segment.bytes", "1024"),
            ("segment.ms", max.as_str()),
            ("retention.ms", max.as_str()),
            ("flush.ms", max.as_str()),
            ("delete.retention.ms", max.as_str()),
            ("min.compaction.lag.ms", "0"),
            ("max.compaction.lag.ms", max.as_str()),
            ("cleanup.policy", policy),
        ])
        .unwrap();
        let name = format!("t-{}", policy.replace(',', "-"));
        broker.create_topic(&name, cfg).unwrap();
        let p = broker.topic(&name).unwrap().partition(0).unwrap();
        // The clock at zero, at the far end and back: every comparison with a setting of
        // i64::MAX saturates.
        for (round, now) in [0, i64::MAX, 1, i64::MAX].into_iter().enumerate() {
            clock.set_ms(now);
            for i in 0..20 {
                p.append(&[Record::new(vec![b'v'; 40]).key(format!("k{}", i % 4))])
                    .unwrap_or_else(|e| panic!("{name} round {round} append {i}: {e}"));
            }
            broker.enforce_retention().unwrap();
            broker.run_log_cleaner().unwrap();
            p.flush().unwrap();
        }
        assert_eq!(p.log_end_offset(), 80, "{name}");
    }
    // The manual clock itself saturates.
    clock.set_ms(i64::MAX - 1);
    clock.advance_ms(i64::MAX);
    assert_eq!(embroker::Clock::now_ms(clock.as_ref()), i64::MAX);
    clock.set_ms(i64::MIN + 1);
    clock.advance_ms(i64::MIN);
    assert_eq!(embroker::Clock::now_ms(clock.as_ref()), i64::MIN);
    broker.close().unwrap();
}

#[test]
fn group_timers_at_int_max_and_a_clock_near_its_end() {
    let clock = ManualClock::new(i64::MAX - 1_000);
    let broker = Broker::builder()
        .clock(clock.clone())
        .open_temporary()
        .unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    let int_max = i32::MAX.to_string();
    let config = ConsumerConfig::from_properties(&[
        ("group.id", "g"),
        ("session.timeout.ms", int_max.as_str()),
        ("max.poll.interval.ms", int_max.as_str()),
        ("auto.commit.interval.ms", int_max.as_str()),
        ("auto.offset.reset", "earliest"),
    ])
    .unwrap();
    let mut consumer = broker.consumer(config).unwrap();
    consumer.subscribe(&["t"]).unwrap();
    broker
        .topic("t")
        .unwrap()
        .partition(0)
        .unwrap()
        .append(&[Record::new("r0")])
        .unwrap();
    let mut got = 0;
    for _ in 0..50 {
        got += consumer.poll(Duration::from_millis(20)).unwrap().count();
        clock.advance_ms(i64::MAX);
        if got > 0 {
            break;
        }
    }
    assert_eq!(got, 1);
    consumer.commit_sync().unwrap();
    consumer.close().unwrap();
}
