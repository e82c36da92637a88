//! Consumer benchmark (issues #19 and #20), every figure next to its baseline from the same
//! run, rows interleaved:
//! - **read**: a single consumer reading 1,000,000 records of 100 bytes, against a raw
//!   `BufReader` over a length-prefixed file of the same records (each record handed to the
//!   loop as a slice of the reader's buffer; target >= 0.85x) and a direct `Partition::read`
//!   loop over the same log;
//! - **async**: `recv().await` and the record streams (`Consumer::stream`, a poll's records per
//!   item, and `Consumer::record_stream`, a record per item) next to their blocking forms
//!   (target >= 0.9x);
//! - **latency**: append -> poll, one `Partition::append` of one record at a time on one thread
//!   and one consumer thread blocked in `poll`, against a `crossbeam_channel` send -> recv
//!   between the same two threads, samples alternating (targets p50 <= 1.2x, p99 <= 1.5x).
//!
//! `cargo bench --bench consumer`; `EMBROKER_BENCH_SCALE=0.1` for a smoke run.

// The shared harness's `Report::measure` takes eight arguments; allowed here, where it is included.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::too_many_arguments)]

#[path = "support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use embroker::{Broker, ConsumerConfig, OffsetReset, Record, TopicConfig, TopicPartition};
use support::{percentiles, scaled, Contender, Report};

const VALUE_BYTES: usize = 100;
const APPEND_BATCH: usize = 1_000;
const READ_BYTES: usize = 1 << 20;

fn filled_broker(records: u64) -> Broker {
    // On the file system of the baseline's `tempfile` directory, not `/dev/shm` where a
    // temporary broker goes by default: the rows compare the same disk.
    let broker = Broker::builder()
        .temporary_dir_in(std::env::temp_dir())
        .open_temporary()
        .expect("broker");
    broker
        .create_topic("bench", TopicConfig::default())
        .expect("topic");
    let p = broker.topic("bench").unwrap().partition(0).unwrap();
    let value = vec![b'x'; VALUE_BYTES];
    let mut left = records as usize;
    while left > 0 {
        let n = left.min(APPEND_BATCH);
        let batch: Vec<Record> = (0..n).map(|_| Record::new(value.clone())).collect();
        p.append(&batch).expect("append");
        left -= n;
    }
    broker
}

fn direct_read(broker: &Broker, records: u64) -> u64 {
    let p = broker.topic("bench").unwrap().partition(0).unwrap();
    let (mut at, mut n, mut bytes) = (0i64, 0u64, 0u64);
    while n < records {
        let rs = p.read(at, READ_BYTES).expect("read");
        for r in rs.iter() {
            bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
            n += 1;
        }
        at = rs.next_offset();
    }
    assert_eq!(n, records);
    bytes
}

/// As `direct_read`, through borrowed views: no `Bytes` (reference count) per record.
fn direct_views(broker: &Broker, records: u64) -> u64 {
    let p = broker.topic("bench").unwrap().partition(0).unwrap();
    let (mut at, mut n, mut bytes) = (0i64, 0u64, 0u64);
    while n < records {
        let rs = p.read(at, READ_BYTES).expect("read");
        for r in rs.views() {
            bytes += r.value.map_or(0, |v| v.len() as u64);
            n += 1;
        }
        at = rs.next_offset();
    }
    assert_eq!(n, records);
    bytes
}

fn consumer(broker: &Broker, max_poll_records: u32) -> embroker::Consumer {
    let mut c = broker
        .consumer(
            ConsumerConfig::default()
                .auto_offset_reset(OffsetReset::Earliest)
                .max_poll_records(max_poll_records),
        )
        .expect("consumer");
    c.assign(&[TopicPartition::new("bench", 0)]).unwrap();
    c
}

/// As `consume`, with `recv().await` in place of `poll`.
async fn consume_async(mut c: embroker::Consumer, records: u64) -> u64 {
    let (mut n, mut bytes) = (0u64, 0u64);
    while n < records {
        let rs = c.recv().await.expect("recv");
        for r in &rs {
            bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
            n += 1;
        }
    }
    assert_eq!(n, records);
    bytes
}

/// As `consume`, from `Consumer::stream` (one poll's records per item), each item iterated
/// as the blocking loop iterates `poll`'s result, in the form async code writes it
/// (`while let Some(item) = stream.next().await`).
#[cfg(feature = "stream")]
async fn consume_stream(mut c: embroker::Consumer, records: u64) -> u64 {
    use futures::StreamExt;
    let mut stream = c.stream();
    let (mut n, mut bytes) = (0u64, 0u64);
    while let Some(item) = stream.next().await {
        for r in &item.expect("records") {
            bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
            n += 1;
        }
        if n >= records {
            break;
        }
    }
    assert_eq!(n, records);
    bytes
}

/// As `consume`, one record at a time from `Consumer::record_stream`.
#[cfg(feature = "stream")]
async fn consume_record_stream(mut c: embroker::Consumer, records: u64) -> u64 {
    use futures::StreamExt;
    let mut stream = c.record_stream();
    let (mut n, mut bytes) = (0u64, 0u64);
    while let Some(item) = stream.next().await {
        let r = item.expect("record");
        bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
        n += 1;
        if n == records {
            break;
        }
    }
    assert_eq!(n, records);
    bytes
}

/// As `consume`, looking at each record borrowed (`ConsumerRecords::views`).
fn consume_views(broker: &Broker, records: u64, max_poll_records: u32) -> u64 {
    let mut c = consumer(broker, max_poll_records);
    let (mut n, mut bytes) = (0u64, 0u64);
    while n < records {
        let rs = c.poll(Duration::from_secs(1)).expect("poll");
        for r in rs.views() {
            bytes += r.value.map_or(0, |v| v.len() as u64);
            n += 1;
        }
    }
    assert_eq!(n, records);
    bytes
}

fn consume(broker: &Broker, records: u64, max_poll_records: u32) -> u64 {
    let mut c = broker
        .consumer(
            ConsumerConfig::default()
                .auto_offset_reset(OffsetReset::Earliest)
                .max_poll_records(max_poll_records),
        )
        .expect("consumer");
    c.assign(&[TopicPartition::new("bench", 0)]).unwrap();
    let (mut n, mut bytes) = (0u64, 0u64);
    while n < records {
        let rs = c.poll(Duration::from_secs(1)).expect("poll");
        for r in &rs {
            bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
            n += 1;
        }
    }
    assert_eq!(n, records);
    bytes
}

/// Writes `records` records of `VALUE_BYTES` as a raw length-prefixed file (4-byte big-endian
/// length, then the value): the baseline's input, the same records without Kafka's framing.
#[allow(clippy::disallowed_methods)] // the baseline's own file, not embroker's
fn raw_file(dir: &Path, records: u64) -> PathBuf {
    let path = dir.join("raw-records");
    let mut w = BufWriter::new(std::fs::File::create(&path).expect("raw file"));
    let value = vec![b'x'; VALUE_BYTES];
    for _ in 0..records {
        w.write_all(&(VALUE_BYTES as u32).to_be_bytes()).unwrap();
        w.write_all(&value).unwrap();
    }
    w.into_inner().unwrap().sync_all().unwrap();
    path
}

/// The baseline: a `BufReader` (of the consumer's fetch size) over the raw file, each record
/// handed to the loop as a slice of the reader's own buffer (no copy), a record that straddles
/// two fills read whole into a scratch buffer.
fn raw_read(path: &Path, records: u64) -> u64 {
    let file = std::fs::File::open(path).expect("raw file");
    let mut r = BufReader::with_capacity(READ_BYTES, file);
    let mut scratch = Vec::new();
    let (mut n, mut bytes) = (0u64, 0u64);
    while n < records {
        let buf = r.fill_buf().expect("fill");
        assert!(!buf.is_empty(), "raw file ended early");
        let mut used = 0;
        while n < records {
            let rest = &buf[used..];
            let Some(len) = rest.get(..4) else { break };
            let len = u32::from_be_bytes(len.try_into().unwrap()) as usize;
            let Some(value) = rest.get(4..4 + len) else {
                break;
            };
            bytes += std::hint::black_box(value).len() as u64;
            n += 1;
            used += 4 + len;
        }
        if used > 0 {
            r.consume(used);
        } else {
            let mut len = [0u8; 4];
            r.read_exact(&mut len).expect("length");
            scratch.resize(u32::from_be_bytes(len) as usize, 0);
            r.read_exact(&mut scratch).expect("value");
            bytes += std::hint::black_box(&scratch).len() as u64;
            n += 1;
        }
    }
    assert_eq!(n, records);
    bytes
}

/// Append -> poll latency against a crossbeam channel between the same two threads, samples
/// alternating: the main thread appends one record (`Partition::append`, one record per call)
/// or sends one message, the consumer thread, blocked in `poll` (or `recv`), takes the time of
/// receipt. Each sample waits for the previous one's acknowledgement and then a pause (50 µs,
/// `EMBROKER_BENCH_PAUSE_US`), so the receiver is waiting (parked) when the next one is sent.
fn latency(report: &mut Report) {
    // `EMBROKER_BENCH_PAUSE_US` (default 50): long enough that both receivers park.
    let pause = Duration::from_micros(
        std::env::var("EMBROKER_BENCH_PAUSE_US")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(50),
    );
    let broker = Broker::temporary().expect("broker");
    broker
        .create_topic("lat", TopicConfig::default())
        .expect("topic");
    let samples = scaled(100_000);
    let base = Instant::now();
    let mut consumer = broker
        .consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest))
        .unwrap();
    let tp = TopicPartition::new("lat", 0);
    consumer.assign(std::slice::from_ref(&tp)).unwrap();
    consumer.position(&tp).unwrap();
    let (tx, rx) = crossbeam_channel::unbounded::<u64>();
    let (ack_tx, ack_rx) = crossbeam_channel::unbounded::<()>();
    let reader = std::thread::spawn(move || {
        let mut polled = Vec::with_capacity(samples as usize);
        let mut channel = Vec::with_capacity(samples as usize);
        for i in 0..2 * samples {
            if i % 2 == 0 {
                let rs = loop {
                    let rs = consumer.poll(Duration::from_secs(5)).expect("poll");
                    if !rs.is_empty() {
                        break rs;
                    }
                };
                let now = base.elapsed();
                for r in &rs {
                    let v = r.value.as_ref().unwrap();
                    let sent = u64::from_be_bytes(v[..8].try_into().unwrap());
                    polled.push(now.saturating_sub(Duration::from_nanos(sent)));
                }
            } else {
                let sent = rx.recv().expect("recv");
                let now = base.elapsed();
                channel.push(now.saturating_sub(Duration::from_nanos(sent)));
            }
            ack_tx.send(()).unwrap();
        }
        (polled, channel)
    });
    let p = broker.topic("lat").unwrap().partition(0).unwrap();
    let mut value = vec![0u8; VALUE_BYTES];
    let mut appends = Vec::with_capacity(samples as usize);
    for i in 0..2 * samples {
        let paused = Instant::now();
        while paused.elapsed() < pause {
            std::hint::spin_loop();
        }
        let sent = base.elapsed().as_nanos() as u64;
        if i % 2 == 0 {
            value[..8].copy_from_slice(&sent.to_be_bytes());
            let record = Record::new(value.clone());
            let start = Instant::now();
            p.append(&[record]).expect("append");
            appends.push(start.elapsed());
        } else {
            tx.send(sent).unwrap();
        }
        ack_rx.recv().unwrap();
    }
    let (polled, channel) = reader.join().unwrap();
    let polled = percentiles(polled, &[50.0, 99.0]);
    let channel = percentiles(channel, &[50.0, 99.0]);
    let appends = percentiles(appends, &[50.0, 99.0]);
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    report.note(
        "latency",
        "crossbeam_channel send -> recv (baseline)",
        format!(
            "p50 {:.1} µs, p99 {:.1} µs ({samples} samples, {} µs pause)",
            us(channel[0]),
            us(channel[1]),
            pause.as_micros()
        ),
    );
    report.note(
        "latency",
        "Partition::append -> Consumer::poll",
        format!(
            "p50 {:.1} µs ({:.2}x), p99 {:.1} µs ({:.2}x) of crossbeam, samples alternating; \
             the append call alone p50 {:.1} µs, p99 {:.1} µs",
            us(polled[0]),
            polled[0].as_secs_f64() / channel[0].as_secs_f64(),
            us(polled[1]),
            polled[1].as_secs_f64() / channel[1].as_secs_f64(),
            us(appends[0]),
            us(appends[1])
        ),
    );
}

fn main() {
    let records = scaled(1_000_000);
    let bytes = records * VALUE_BYTES as u64;
    let broker = filled_broker(records);
    let mut report = Report::default();
    let dir = tempfile::tempdir().expect("dir");
    let raw = raw_file(dir.path(), records);
    let baseline = "raw BufReader over a length-prefixed file";
    let direct = "direct Partition::read loop";
    let mut reads = vec![Contender::new(
        "read",
        baseline,
        None,
        records,
        bytes,
        || (),
        |()| raw_read(&raw, records),
    )];
    reads.push(Contender::new(
        "read",
        direct,
        Some(baseline),
        records,
        bytes,
        || (),
        |()| direct_read(&broker, records),
    ));
    reads.push(Contender::new(
        "read",
        "direct Partition::read, borrowed views",
        Some(baseline),
        records,
        bytes,
        || (),
        |()| direct_views(&broker, records),
    ));
    let shared = &broker;
    for max in [500, 5000] {
        reads.push(Contender::new(
            "read",
            &format!("Consumer::poll (max.poll.records={max})"),
            Some(baseline),
            records,
            bytes,
            || (),
            move |()| consume(shared, records, max),
        ));
    }
    for max in [500, 5000] {
        reads.push(Contender::new(
            "read",
            &format!("Consumer::poll, borrowed views (max.poll.records={max})"),
            Some(baseline),
            records,
            bytes,
            || (),
            move |()| consume_views(shared, records, max),
        ));
    }
    report.measure_interleaved(reads);
    for max in [500, 5000] {
        report.compare(
            "read",
            &format!("Consumer::poll (max.poll.records={max})"),
            direct,
        );
    }
    // The async receive next to the blocking poll, interleaved (same consumer settings).
    let blocking = "blocking Consumer::poll loop (max.poll.records=500)";
    let mut rows = vec![Contender::new(
        "async",
        blocking,
        None,
        records,
        bytes,
        || consumer(&broker, 500),
        |mut c| {
            let (mut n, mut bytes) = (0u64, 0u64);
            while n < records {
                for r in &c.poll(Duration::from_secs(1)).expect("poll") {
                    bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
                    n += 1;
                }
            }
            (c, bytes)
        },
    )];
    let owning = "blocking Consumer::poll loop, owning ConsumerRecords::into_iter";
    rows.push(Contender::new(
        "async",
        owning,
        Some(blocking),
        records,
        bytes,
        || consumer(&broker, 500),
        |mut c| {
            let (mut n, mut bytes) = (0u64, 0u64);
            while n < records {
                for r in c.poll(Duration::from_secs(1)).expect("poll") {
                    bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
                    n += 1;
                }
            }
            (c, bytes)
        },
    ));
    rows.push(Contender::new(
        "async",
        "Consumer::recv().await loop, futures::executor",
        Some(blocking),
        records,
        bytes,
        || consumer(&broker, 500),
        |c| futures::executor::block_on(consume_async(c, records)),
    ));
    rows.push(Contender::new(
        "async",
        "Consumer::recv().await loop, tokio current-thread",
        Some(blocking),
        records,
        bytes,
        || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            (rt, consumer(&broker, 500))
        },
        |(rt, c)| {
            let bytes = rt.block_on(consume_async(c, records));
            (rt, bytes)
        },
    ));
    #[cfg(feature = "stream")]
    rows.push(Contender::new(
        "async",
        "Consumer::stream (a poll's records per item), futures::executor",
        Some(blocking),
        records,
        bytes,
        || consumer(&broker, 500),
        |c| futures::executor::block_on(consume_stream(c, records)),
    ));
    #[cfg(feature = "stream")]
    rows.push(Contender::new(
        "async",
        "Consumer::record_stream (a record per item), futures::executor",
        Some(blocking),
        records,
        bytes,
        || consumer(&broker, 500),
        |c| futures::executor::block_on(consume_record_stream(c, records)),
    ));
    report.measure_interleaved(rows);
    // A stream of owned records next to the blocking loop that owns each record too.
    #[cfg(feature = "stream")]
    report.compare(
        "async",
        "Consumer::record_stream (a record per item), futures::executor",
        owning,
    );
    if support::selected("latency") {
        latency(&mut report);
    }
    report.print("consumer");
}
