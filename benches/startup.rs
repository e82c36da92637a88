//! What a fake Kafka costs in a test: a temporary broker, a topic of one partition, one
//! `send().wait()` through a producer, one `poll` that returns the record, and everything
//! dropped (the directory removed). Median and p99 of `EMBROKER_STARTUP_RUNS` runs (default
//! 1,000), next to the target (issue #20: a median of at most 0.2 ms) and a baseline measured
//! in the same run, interleaved run by run: a temporary directory made, one 100-byte file
//! written, read back and the directory removed. That baseline is the least any fake that
//! keeps its records in files can do (the same `tempfile` call, the same system calls for one
//! record's bytes), so the ratio shows what the broker adds on top of the file system.
//!
//! The run is also split into its steps (open, create, producer + send, consumer + poll,
//! drop), each a median over the same runs, to show where the time goes; and the same run with
//! a group consumer (`subscribe`, which runs the group protocol in its first poll).
//!
//! A temporary broker makes its directory in `/dev/shm` when that is writable and `TMPDIR` is
//! not set, so the baseline runs twice: in the system's temporary directory, and in the
//! directory the broker uses.
//!
//! `cargo bench --bench startup`; `EMBROKER_BENCH_SCALE=0.1` runs 100.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use embroker::{
    Broker, ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord, TopicConfig,
    TopicPartition,
};

/// The target for the whole run's median (issue #20).
const TARGET: Duration = Duration::from_micros(200);

fn runs() -> usize {
    let base = std::env::var("EMBROKER_STARTUP_RUNS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1_000);
    let scale: f64 = std::env::var("EMBROKER_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((base as f64 * scale) as usize).max(1)
}

/// Steps of one run, in order.
const STEPS: [&str; 5] = [
    "Broker::temporary()",
    "create_topic (1 partition)",
    "producer + send().wait()",
    "consumer + assign + poll",
    "drop all (dir removed)",
];

/// One run with an assigned consumer: the time of each step.
fn fake_kafka_run() -> [Duration; 5] {
    let mut t = [Duration::ZERO; 5];
    let mut at = Instant::now();
    let mut lap = |i: usize| {
        let now = Instant::now();
        t[i] = now - at;
        at = now;
    };
    let broker = Broker::temporary().expect("broker");
    lap(0);
    broker
        .create_topic("t", TopicConfig::default().partitions(1))
        .expect("topic");
    lap(1);
    let producer = broker
        .producer(ProducerConfig::default())
        .expect("producer");
    let meta = producer
        .send(ProducerRecord::new("t", "hello"))
        .expect("send")
        .wait()
        .expect("stored");
    assert_eq!(meta.offset, 0);
    lap(2);
    let mut consumer = broker
        .consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest))
        .expect("consumer");
    consumer
        .assign(&[TopicPartition::new("t", 0)])
        .expect("assign");
    let records = consumer.poll(Duration::from_secs(5)).expect("poll");
    assert_eq!(records.count(), 1);
    lap(3);
    drop(records);
    drop(consumer);
    drop(producer);
    drop(broker);
    lap(4);
    t
}

/// The same with a group consumer (`subscribe`): the first poll joins the group.
fn fake_kafka_group_run() -> Duration {
    let start = Instant::now();
    let broker = Broker::temporary().expect("broker");
    broker
        .create_topic("t", TopicConfig::default().partitions(1))
        .expect("topic");
    let producer = broker
        .producer(ProducerConfig::default())
        .expect("producer");
    producer
        .send(ProducerRecord::new("t", "hello"))
        .expect("send")
        .wait()
        .expect("stored");
    let mut consumer = broker
        .consumer(
            ConsumerConfig::default()
                .group_id("g")
                .auto_offset_reset(OffsetReset::Earliest),
        )
        .expect("consumer");
    consumer.subscribe(&["t"]).expect("subscribe");
    let records = consumer.poll(Duration::from_secs(5)).expect("poll");
    assert_eq!(records.count(), 1);
    drop(records);
    drop(consumer);
    drop(producer);
    drop(broker);
    start.elapsed()
}

/// The baseline: a temporary directory in `parent`, one 100-byte file written and read back,
/// the directory removed.
fn tempdir_file_run(parent: &Path) -> Duration {
    let start = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("embroker-")
        .tempdir_in(parent)
        .expect("dir");
    let path = dir.path().join("00000000000000000000.log");
    let mut f = std::fs::File::create(&path).expect("create");
    f.write_all(&[b'x'; 100]).expect("write");
    drop(f);
    let mut back = Vec::new();
    std::fs::File::open(&path)
        .expect("open")
        .read_to_end(&mut back)
        .expect("read");
    assert_eq!(back.len(), 100);
    drop(dir);
    start.elapsed()
}

/// A thread spawned and joined: what each background thread a broker starts costs.
fn thread_run() -> Duration {
    let start = Instant::now();
    std::thread::spawn(|| {}).join().expect("thread");
    start.elapsed()
}

fn quantile(v: &mut [Duration], q: f64) -> Duration {
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    v[i.min(v.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// The directory a temporary broker makes its own in (`/dev/shm` where it is writable and
/// `TMPDIR` is not set).
fn broker_parent() -> PathBuf {
    let broker = Broker::temporary().expect("broker");
    broker.path().parent().expect("parent").to_path_buf()
}

fn main() {
    let n = runs();
    let system_tmp = std::env::temp_dir();
    let parent = broker_parent();
    // Warm-up: the first runs pay for page faults and the allocator's growth.
    for _ in 0..n.min(20) {
        fake_kafka_run();
        tempdir_file_run(&system_tmp);
        tempdir_file_run(&parent);
    }
    let mut whole = Vec::with_capacity(n);
    let mut steps: Vec<Vec<Duration>> = vec![Vec::with_capacity(n); STEPS.len()];
    let mut group = Vec::with_capacity(n);
    let mut baseline = Vec::with_capacity(n);
    let mut baseline_parent = Vec::with_capacity(n);
    let mut thread = Vec::with_capacity(n);
    for _ in 0..n {
        // Interleaved run by run, so that every row meets the same machine.
        let t = fake_kafka_run();
        whole.push(t.iter().sum::<Duration>());
        for (i, d) in t.iter().enumerate() {
            steps[i].push(*d);
        }
        baseline.push(tempdir_file_run(&system_tmp));
        baseline_parent.push(tempdir_file_run(&parent));
        group.push(fake_kafka_group_run());
        thread.push(thread_run());
    }
    let (med, p99) = (quantile(&mut whole, 0.5), quantile(&mut whole, 0.99));
    let (bmed, bp99) = (quantile(&mut baseline, 0.5), quantile(&mut baseline, 0.99));
    let (pmed, pp99) = (
        quantile(&mut baseline_parent, 0.5),
        quantile(&mut baseline_parent, 0.99),
    );
    let (gmed, gp99) = (quantile(&mut group, 0.5), quantile(&mut group, 0.99));
    let (tmed, tp99) = (quantile(&mut thread, 0.5), quantile(&mut thread, 0.99));
    println!("\n### Startup ({n} runs, interleaved)\n");
    println!("| what | median | p99 | vs target / baseline |");
    println!("|---|---:|---:|---|");
    println!(
        "| temporary broker + topic + send().wait() + poll + drop | {} | {} | target {} median: {}; {:.1}x the baseline's median |",
        ms(med),
        ms(p99),
        ms(TARGET),
        if med <= TARGET { "met" } else { "NOT met" },
        med.as_secs_f64() / bmed.as_secs_f64()
    );
    for (name, mut v) in STEPS.iter().zip(steps) {
        println!(
            "| step: {name} | {} | {} | |",
            ms(quantile(&mut v, 0.5)),
            ms(quantile(&mut v, 0.99))
        );
    }
    println!(
        "| the same with a group consumer (subscribe) | {} | {} | |",
        ms(gmed),
        ms(gp99)
    );
    println!(
        "| baseline: tempdir + one 100 B file written, read back, removed ({}) | {} | {} | |",
        system_tmp.display(),
        ms(bmed),
        ms(bp99)
    );
    println!(
        "| the same baseline where the temporary broker's directory goes ({}) | {} | {} | broker {:.1}x this |",
        parent.display(),
        ms(pmed),
        ms(pp99),
        med.as_secs_f64() / pmed.as_secs_f64()
    );
    println!(
        "| reference: one thread spawned and joined | {} | {} | |",
        ms(tmed),
        ms(tp99)
    );
}
